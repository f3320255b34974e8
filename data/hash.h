// The hashes we record: SHA-256 (FIPS 180-4) for the tokenizer hash that token shards record, FNV-1a 64 for short
// stable tags (job hashes, per-source seeds). Plain and self-contained: no OpenSSL.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <string>

namespace bmos {

class Sha256 {
 public:
  Sha256();
  void update(const void* data, size_t len);
  void update(const std::string& s) { update(s.data(), s.size()); }
  std::array<uint8_t, 32> digest();  // finishes the hash; the object is spent afterwards
  std::string hex();                 // digest() as 64 lowercase hex characters

 private:
  void block(const uint8_t* p);
  std::array<uint32_t, 8> h_;
  std::array<uint8_t, 64> buf_{};
  size_t buf_len_ = 0;
  uint64_t total_ = 0;
};

// Hash of a file's bytes; throws std::runtime_error naming the path when it cannot be read.
std::string sha256_file(const std::string& path);

// FNV-1a 64 of the bytes: stable across runs, machines and libraries (std::hash is none of these).
inline uint64_t fnv1a64(const std::string& s) {
  uint64_t h = 1469598103934665603ull;
  for (unsigned char c : s) h = (h ^ c) * 1099511628211ull;
  return h;
}

}  // namespace bmos
