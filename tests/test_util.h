// Helpers shared by the tests: where ../shared/data is, a loud skip when it is absent, expected errors, tensor
// comparison.
#pragma once

#include <cstdlib>
#include <exception>
#include <filesystem>
#include <iostream>
#include <string>

#include <unistd.h>

#include <gtest/gtest.h>
#include <torch/torch.h>  // in every test's precompiled header already

namespace bmos::test {

// ../shared/data beside the repository (or $BMOS_DATA). Empty when absent.
inline std::string data_dir() {
  if (const char* env = std::getenv("BMOS_DATA")) return env;
  const std::string p = std::string(BMOS_SOURCE_DIR) + "/../shared/data";
  return std::filesystem::exists(p) ? std::filesystem::canonical(p).string() : std::string();
}

// The build folder holding the bmos binary ($BMOS_BUILD, else the one these tests were built in).
inline std::string build_dir() {
  const char* env = std::getenv("BMOS_BUILD");
  return env ? env : BMOS_BUILD_DIR;
}

// A scratch folder for one test process (ctest runs tests in parallel processes), removed first if it exists.
inline std::string temp_dir(const std::string& name) {
  auto p = std::filesystem::temp_directory_path() / ("bmos_test_" + name + "_" + std::to_string(::getpid()));
  std::filesystem::remove_all(p);
  std::filesystem::create_directories(p);
  return p.string();
}

// The message of the exception fn() throws (and printed, so the log shows what a user would read); a test failure
// when it throws none.
template <class F>
std::string error_of(F fn) {
  try {
    fn();
  } catch (const std::exception& e) {
    std::cout << "  (expected error) " << e.what() << "\n";
    return e.what();
  }
  ADD_FAILURE() << "expected an exception";
  return "";
}

// Whether /usr/bin/python3 can import torch, which the test-time tools in tests/reference/ need.
inline bool python_has_torch() {
  return std::filesystem::exists("/usr/bin/python3") &&
         std::system("/usr/bin/python3 -c 'import torch' >/dev/null 2>&1") == 0;
}

// Relative error of a fast path: max |got - want| / max |want|.
inline double max_rel(const torch::Tensor& got, const torch::Tensor& want) {
  return (got - want).abs().max().item<double>() / want.abs().max().item<double>();
}

}  // namespace bmos::test

// Expects `part` inside the message `msg`, showing the whole message when it is not.
#define EXPECT_HAS(msg, part) EXPECT_NE((msg).find(part), std::string::npos) << "message: " << (msg)

// Skips the test, loudly, when ../shared/data (or the file below it) is missing. Sets `var` to the full path.
#define BMOS_REQUIRE_DATA(var, relpath)                                                              \
  std::string var = ::bmos::test::data_dir();                                                        \
  if (var.empty() || !std::filesystem::exists(var + "/" + (relpath))) {                              \
    GTEST_SKIP() << "SKIPPED: shared data file " << (relpath) << " not found (set BMOS_DATA or put " \
                 << "shared/ beside the repo)";                                                      \
  }                                                                                                  \
  var = var + "/" + (relpath)
