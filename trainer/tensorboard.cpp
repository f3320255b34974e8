#include "trainer/tensorboard.h"

#include <array>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <stdexcept>

#include <unistd.h>

namespace bmos {

namespace {

// ------------------------------------------------------------------------------------------------ CRC-32C
std::array<uint32_t, 256> crc32c_table() {
  std::array<uint32_t, 256> t{};
  for (uint32_t i = 0; i < 256; ++i) {
    uint32_t c = i;
    for (int k = 0; k < 8; ++k) c = c & 1 ? (c >> 1) ^ 0x82f63b78u : c >> 1;  // Castagnoli, reflected
    t[i] = c;
  }
  return t;
}

// ------------------------------------------------------------------------------------------ protobuf wire format
void put_le(std::string& out, uint64_t v, int bytes) {
  for (int i = 0; i < bytes; ++i) out.push_back(char((v >> (8 * i)) & 0xff));
}

void put_varint(std::string& out, uint64_t v) {
  while (v >= 0x80) {
    out.push_back(char((v & 0x7f) | 0x80));
    v >>= 7;
  }
  out.push_back(char(v));
}

enum Wire { kVarint = 0, kFixed64 = 1, kBytes = 2, kFixed32 = 5 };
void put_key(std::string& out, int field, Wire wire) { put_varint(out, uint64_t(field) << 3 | wire); }

void put_bytes(std::string& out, int field, const std::string& bytes) {
  put_key(out, field, kBytes);
  put_varint(out, bytes.size());
  out += bytes;
}

// Event fields 1 and 2; zeros left out, as proto3 encodes them (so a parser's re-encoding gives the same bytes).
std::string event_head(double wall_time, int64_t step) {
  std::string e;
  if (wall_time != 0) {
    uint64_t bits;
    std::memcpy(&bits, &wall_time, 8);
    put_key(e, 1, kFixed64);
    put_le(e, bits, 8);
  }
  if (step != 0) {
    put_key(e, 2, kVarint);
    put_varint(e, uint64_t(step));
  }
  return e;
}

double unix_seconds() {
  return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
}

}  // namespace

uint32_t crc32c(const std::string& bytes) {
  static const std::array<uint32_t, 256> table = crc32c_table();
  uint32_t c = 0xffffffffu;
  for (unsigned char b : bytes) c = table[(c ^ b) & 0xff] ^ (c >> 8);
  return c ^ 0xffffffffu;
}

uint32_t masked_crc32c(const std::string& bytes) {
  const uint32_t c = crc32c(bytes);
  return ((c >> 15) | (c << 17)) + 0xa282ead8u;
}

std::string tfrecord(const std::string& data) {
  std::string len;
  put_le(len, data.size(), 8);
  std::string r = len;
  put_le(r, masked_crc32c(len), 4);
  r += data;
  put_le(r, masked_crc32c(data), 4);
  return r;
}

std::string file_version_event(double wall_time) {
  std::string e = event_head(wall_time, 0);
  put_bytes(e, 3, "brain.Event:2");
  return e;
}

std::string session_start_event(double wall_time, int64_t step) {
  std::string log;
  put_key(log, 1, kVarint);
  put_varint(log, 1);  // SessionLog.START
  std::string e = event_head(wall_time, step);
  put_bytes(e, 6, log);
  return e;
}

std::string scalars_event(double wall_time, int64_t step, const Scalars& scalars) {
  std::string summary;
  for (const auto& [tag, value] : scalars) {
    std::string v;
    put_bytes(v, 1, tag);
    uint32_t bits;
    std::memcpy(&bits, &value, 4);
    put_key(v, 2, kFixed32);
    put_le(v, bits, 4);
    put_bytes(summary, 1, v);
  }
  std::string e = event_head(wall_time, step);
  put_bytes(e, 5, summary);
  return e;
}

// ------------------------------------------------------------------------------------------------- the writer
TensorBoardWriter::TensorBoardWriter(const std::string& dir, int64_t first_step) {
  char host[256] = "localhost";
  gethostname(host, sizeof host - 1);
  const double now = unix_seconds();
  const std::string base = (std::filesystem::path(dir) / "events.out.tfevents.").string() +
                           std::to_string(int64_t(now)) + "." + host;
  path_ = base;
  for (int n = 1; std::filesystem::exists(path_); ++n) path_ = base + "." + std::to_string(n);
  out_.open(path_, std::ios::binary);
  if (!out_) throw std::runtime_error(path_ + ": cannot create the TensorBoard events file (is " + dir + " writable?)");
  write(file_version_event(now));
  write(session_start_event(now, first_step));
}

void TensorBoardWriter::add_scalars(int64_t step, const Scalars& scalars) {
  write(scalars_event(unix_seconds(), step, scalars));
}

void TensorBoardWriter::write(const std::string& event) {
  out_ << tfrecord(event);
  out_.flush();
  if (!out_) throw std::runtime_error(path_ + ": writing the TensorBoard events file failed (disk full?)");
}

}  // namespace bmos
