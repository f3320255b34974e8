// A checkpoint's manifest.json (trainer/checkpoint/checkpoint.h: parse_checkpoint_manifest).
#include "tests/fuzz/fuzz_target.h"
#include "trainer/checkpoint/checkpoint.h"

BMOS_FUZZ_TARGET(checkpoint_manifest) {
  try {
    bmos::parse_checkpoint_manifest(std::string(reinterpret_cast<const char*>(data), size), "manifest.json");
  } catch (const std::exception& e) {
    bmos_fuzz::refused(e);
  }
  return 0;
}
