// pytorch_model.bin: the zip archive and data.pkl through our restricted unpickler, then every tensor's storage record
// (modules/io/torch_bin.h).
#include "modules/io/torch_bin.h"
#include "tests/fuzz/fuzz_target.h"

BMOS_FUZZ_TARGET(torch_bin) {
  const std::string path = bmos_fuzz::write_file("pytorch_model.bin", data, size);
  try {
    bmos::TorchBinFile file(path);
    for (const std::string& name : file.names()) {
      const bmos::SafetensorsInfo& info = file.info(name);
      file.load(name);
      if (info.dtype == "F32" || info.dtype == "F16" || info.dtype == "BF16") file.load_float(name);
    }
  } catch (const std::exception& e) {
    bmos_fuzz::refused(e);
  }
  return 0;
}
