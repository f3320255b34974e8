// What every harness in tests/fuzz/ shares: its entry point and a private folder for the files a path-taking parser
// reads. A harness is `bmos_fuzz_<name>` (BMOS_FUZZ_TARGET); built with -DBMOS_FUZZ=ON (clang, libFuzzer) fuzz_main.cpp
// makes it the binary's LLVMFuzzerTestOneInput, and ctest's test_fuzz_replay (any compiler) calls the same function on
// the committed corpus and crash inputs. A std::exception is the parser refusing bad input (the expected outcome);
// anything else escapes the harness: a crash, a sanitizer report, a hang or a non-std exception is a finding.
#pragma once

#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <exception>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <string>
#include <vector>

#define BMOS_FUZZ_TARGET(name) extern "C" int bmos_fuzz_##name(const uint8_t* data, size_t size)

namespace bmos_fuzz {

// A folder of this process's own under /tmp (each input overwrites the harness's files), removed at exit.
inline const std::string& temp_dir() {
  // Never destroyed, so the exit handler that removes the folder can still read its name.
  static const std::string* dir = [] {
    auto* d = new std::string(
        (std::filesystem::temp_directory_path() / ("bmos_fuzz_" + std::to_string(::getpid()))).string());
    std::filesystem::create_directories(*d);
    std::atexit([] { std::error_code ec; std::filesystem::remove_all(temp_dir(), ec); });
    return d;
  }();
  return *dir;
}

// Writes `bytes` to temp_dir()/name (sub-folders created) and returns the path.
inline std::string write_file(const std::string& name, const std::string& bytes) {
  const std::filesystem::path p = std::filesystem::path(temp_dir()) / name;
  std::filesystem::create_directories(p.parent_path());
  std::ofstream(p, std::ios::binary | std::ios::trunc).write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  return p.string();
}
inline std::string write_file(const std::string& name, const uint8_t* data, size_t size) {
  return write_file(name, std::string(reinterpret_cast<const char*>(data), size));
}

// Inputs made of several files (vocab.json + merges.txt, a job + its overrides) are the files joined by kSplit; the
// dictionaries list it. Missing parts are empty.
inline constexpr const char* kSplit = "\n@@@@\n";
inline std::vector<std::string> split_parts(const uint8_t* data, size_t size, size_t n) {
  const std::string s(reinterpret_cast<const char*>(data), size), sep(kSplit);
  std::vector<std::string> parts;
  size_t pos = 0;
  while (parts.size() + 1 < n) {
    const size_t at = s.find(sep, pos);
    if (at == std::string::npos) break;
    parts.push_back(s.substr(pos, at - pos));
    pos = at + sep.size();
  }
  parts.push_back(s.substr(pos));
  parts.resize(n);
  return parts;
}

// A parser's refusal: the expected outcome, printed when BMOS_FUZZ_VERBOSE is set (to see why a seed is refused).
inline void refused(const std::exception& e) {
  static const bool verbose = std::getenv("BMOS_FUZZ_VERBOSE") != nullptr;
  if (verbose) std::cerr << "refused: " << e.what() << "\n";
}

// Real files the harnesses build on (a model's safetensors for the folder reader), under ../shared/data.
inline std::string shared_data(const std::string& rel) { return std::string(BMOS_SOURCE_DIR) + "/../shared/data/" + rel; }

}  // namespace bmos_fuzz
