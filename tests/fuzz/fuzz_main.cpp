// libFuzzer's entry point for one harness: compiled once per harness with BMOS_FUZZ_NAME=<name> (CMakeLists.txt).
#include <cstddef>
#include <cstdint>

#define BMOS_FUZZ_CAT2(a, b) a##b
#define BMOS_FUZZ_CAT(a, b) BMOS_FUZZ_CAT2(a, b)
#define BMOS_FUZZ_ENTRY BMOS_FUZZ_CAT(bmos_fuzz_, BMOS_FUZZ_NAME)

extern "C" int BMOS_FUZZ_ENTRY(const uint8_t* data, size_t size);

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) { return BMOS_FUZZ_ENTRY(data, size); }
