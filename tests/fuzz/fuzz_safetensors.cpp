// model.safetensors: the 8-byte length, the JSON header and every tensor's range (modules/io/safetensors.h).
#include "modules/io/safetensors.h"
#include "tests/fuzz/fuzz_target.h"

BMOS_FUZZ_TARGET(safetensors) {
  const std::string path = bmos_fuzz::write_file("model.safetensors", data, size);
  try {
    bmos::SafetensorsFile file(path);
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
