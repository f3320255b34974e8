// llama2.c checkpoints: the legacy 7-int header and the version-1 "ak42" header, checked against the file size
// (modules/io/llama2c_reader.h).
#include "modules/io/llama2c_reader.h"
#include "tests/fuzz/fuzz_target.h"

BMOS_FUZZ_TARGET(llama2c_model) {
  const std::string path = bmos_fuzz::write_file("model.bin", data, size);
  try {
    bmos::read_llama2c(path);
  } catch (const std::exception& e) {
    bmos_fuzz::refused(e);
  }
  return 0;
}
