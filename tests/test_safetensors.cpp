// safetensors: every dtype round-trips bit for bit; malformed headers are refused before any data is read, with a
// message naming the file and the tensor.
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <string>

#include <gtest/gtest.h>
#include <torch/torch.h>

#include "modules/io/safetensors.h"
#include "tests/test_util.h"

namespace bmos {
namespace {

// Bytes of a file, for checking what the writer put where.
std::string file_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

// A hand-made file: 8-byte length, header text, then `data_bytes` bytes of data.
std::string raw_file(const std::string& dir, const std::string& name, const std::string& header, size_t data_bytes,
                     int64_t header_len_override = -1) {
  const std::string path = dir + "/" + name;
  std::ofstream out(path, std::ios::binary);
  const uint64_t n = header_len_override >= 0 ? static_cast<uint64_t>(header_len_override) : header.size();
  out.write(reinterpret_cast<const char*>(&n), 8);
  out << header << std::string(data_bytes, '\x01');
  return path;
}

// Runs `fn`, which must throw; returns the message.
using test::error_of;

TEST(Safetensors, EveryDtypeRoundTripsBitForBit) {
  const std::string dir = test::temp_dir("st_roundtrip");
  const std::string path = dir + "/all.safetensors";
  torch::manual_seed(0);
  const torch::Tensor f32 = torch::randn({3, 5});
  const torch::Tensor u32_bits = torch::tensor({-1, 0, 1, INT32_MIN, INT32_MAX, 0x5a5a5a5a}, torch::kInt32);
  std::vector<SafetensorsEntry> entries = {
      {"f32", f32, ""},
      {"f16", torch::randn({7}).to(torch::kFloat16), ""},
      {"bf16", torch::randn({2, 3}).to(torch::kBFloat16), ""},
      {"i64", torch::tensor({int64_t{-5}, int64_t{1} << 40}, torch::kInt64), ""},
      {"i32", torch::tensor({-3, 4, 5}, torch::kInt32), ""},
      {"packed.u32", u32_bits.reshape({2, 3}), "U32"},
      {"i8", torch::tensor({-128, 0, 127}, torch::kInt8), ""},
      {"u8", torch::tensor({0, 200, 255}, torch::kUInt8), ""},
      {"bool", torch::tensor({true, false, true}), ""},
      {"scalar", torch::tensor(2.5f), ""},
      {"empty", torch::zeros({0, 4}), ""},
      {"strided", f32.t(), ""},  // non-contiguous input is written row-major
  };
  write_safetensors(path, entries, {{"format", "pt"}, {"note", "round trip"}});
  EXPECT_FALSE(std::filesystem::exists(path + ".tmp." + std::to_string(::getpid()))) << "temporary file left behind";

  SafetensorsFile f(path);
  EXPECT_EQ(f.metadata().at("format"), "pt");
  EXPECT_EQ(f.metadata().at("note"), "round trip");
  std::vector<std::string> order;
  for (const auto& e : entries) order.push_back(e.name);
  EXPECT_EQ(f.names(), order) << "tensors must come back in write order";
  for (const auto& e : entries) {
    SCOPED_TRACE(e.name);
    const torch::Tensor back = f.load(e.name);
    EXPECT_EQ(back.sizes(), e.tensor.sizes());
    if (e.name == "packed.u32") {
      EXPECT_EQ(f.info(e.name).dtype, "U32");
      EXPECT_EQ(back.scalar_type(), torch::kInt32);
    } else {
      EXPECT_EQ(back.scalar_type(), e.tensor.scalar_type());
    }
    EXPECT_TRUE(torch::equal(back, e.tensor.contiguous()));
  }
  EXPECT_EQ(f.info("f16").dtype, "F16");
  EXPECT_EQ(f.info("bool").dtype, "BOOL");
  EXPECT_TRUE(torch::equal(f.load_float("bf16"), entries[2].tensor.to(torch::kFloat32)));
  EXPECT_EQ(f.load_float("f16").scalar_type(), torch::kFloat32);

  // Layout: data buffer starts 8-byte aligned, tensors contiguous (no gaps: Python's reader demands it).
  const std::string bytes = file_bytes(path);
  uint64_t header_len = 0;
  std::memcpy(&header_len, bytes.data(), 8);
  EXPECT_EQ((8 + header_len) % 8, 0u);
  uint64_t next = 0;
  for (const auto& name : f.names()) {
    EXPECT_EQ(f.info(name).begin, next) << name;
    next = f.info(name).end;
  }
  EXPECT_EQ(8 + header_len + next, bytes.size());
  EXPECT_EQ(f.info("f32").begin % 8, 0u);
  // U32 bits are stored little-endian exactly as given: -1 -> ff ff ff ff, INT32_MIN -> 00 00 00 80.
  const size_t u32_at = 8 + header_len + f.info("packed.u32").begin;
  EXPECT_EQ(bytes.substr(u32_at, 4), std::string(4, '\xff'));
  EXPECT_EQ(bytes.substr(u32_at + 12, 4), std::string("\x00\x00\x00\x80", 4));
}

TEST(Safetensors, WriterRefusesWhatItCannotStore) {
  const std::string dir = test::temp_dir("st_writer_errors");
  EXPECT_NE(error_of([&] { write_safetensors(dir + "/a.safetensors", {{"w", torch::zeros({2}), "U32"}}); })
                .find("only U32 overrides, for an int32 tensor"),
            std::string::npos);
  EXPECT_NE(error_of([&] {
              write_safetensors(dir + "/a.safetensors", {{"w", torch::zeros({2}), ""}, {"w", torch::ones({2}), ""}});
            }).find("tensor 'w' given twice"),
            std::string::npos);
  EXPECT_NE(error_of([&] { write_safetensors(dir + "/a.safetensors", {{"d", torch::zeros({2}, torch::kFloat64), ""}}); })
                .find("tensor 'd' has torch dtype Double"),
            std::string::npos);
  EXPECT_NE(error_of([&] { write_safetensors(dir + "/no/such/folder/a.safetensors", {}); }).find("does not exist"),
            std::string::npos);
}

TEST(Safetensors, LoadFloatRefusesIntegers) {
  const std::string dir = test::temp_dir("st_load_float");
  write_safetensors(dir + "/i.safetensors", {{"ids", torch::tensor({1, 2}, torch::kInt32), ""}});
  SafetensorsFile f(dir + "/i.safetensors");
  const std::string msg = error_of([&] { f.load_float("ids"); });
  EXPECT_NE(msg.find("tensor 'ids'"), std::string::npos) << msg;
  EXPECT_NE(msg.find("not a floating-point type"), std::string::npos) << msg;
  const std::string absent = error_of([&] { f.info("nope"); });
  EXPECT_NE(absent.find("tensor 'nope': not in this file"), std::string::npos) << absent;
}

// Each malformed file: the message names the file, the tensor when there is one, and the defect.
struct Malformed {
  const char* what;
  std::string header;
  size_t data_bytes;
  int64_t header_len_override;
  std::vector<std::string> message_parts;
};

TEST(Safetensors, MalformedHeadersGiveClearErrors) {
  const std::string dir = test::temp_dir("st_malformed");
  const std::vector<Malformed> cases = {
      {"header length past EOF", R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}})", 4, 1000000,
       {"header length 1000000 runs past the end of the file"}},
      {"not JSON", "{not json at all}", 0, -1, {"header is not valid JSON"}},
      {"not an object", "[1, 2, 3]", 0, -1, {"does not start with a JSON object"}},
      {"offsets past EOF", R"({"a":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}})", 8, -1,
       {"tensor 'a'", "run past the end of the data (8 bytes"}},
      {"overlapping", R"({"a":{"dtype":"F32","shape":[4],"data_offsets":[0,16]},)"
                      R"("b":{"dtype":"F32","shape":[2],"data_offsets":[8,16]}})",
       16, -1, {"tensor 'b'", "overlap tensor 'a' [0, 16)"}},
      {"shape/dtype mismatch", R"({"a":{"dtype":"F32","shape":[2,3],"data_offsets":[0,20]}})", 20, -1,
       {"tensor 'a'", "shape [2,3] x 4 bytes (F32) = 24 bytes", "span 20"}},
      {"same shape, wider dtype", R"({"a":{"dtype":"I64","shape":[3],"data_offsets":[0,12]}})", 12, -1,
       {"tensor 'a'", "(I64) = 24 bytes"}},
      {"unknown dtype", R"({"a":{"dtype":"F64","shape":[1],"data_offsets":[0,8]}})", 8, -1,
       {"tensor 'a'", "unsupported dtype 'F64'", "supported: F32, F16, BF16"}},
      {"negative offset", R"({"a":{"dtype":"U8","shape":[1],"data_offsets":[-1,0]}})", 8, -1,
       {"tensor 'a'", "expected a non-negative integer"}},
      {"end before begin", R"({"a":{"dtype":"U8","shape":[0],"data_offsets":[4,2]}})", 8, -1,
       {"tensor 'a'", "end before they begin"}},
      {"missing field", R"({"a":{"dtype":"U8","shape":[1]}})", 8, -1, {"tensor 'a'", "data_offsets"}},
      {"metadata not strings", R"({"__metadata__":{"k":3}})", 0, -1, {"__metadata__['k'] must be a string"}},
  };
  int i = 0;
  for (const auto& c : cases) {
    SCOPED_TRACE(c.what);
    const std::string path = raw_file(dir, "bad" + std::to_string(i++) + ".safetensors", c.header, c.data_bytes,
                                      c.header_len_override);
    const std::string msg = error_of([&] { SafetensorsFile f(path); });
    EXPECT_NE(msg.find(path), std::string::npos) << "message must name the file: " << msg;
    for (const auto& part : c.message_parts) EXPECT_NE(msg.find(part), std::string::npos) << msg;
  }

  // Too short for the length field, and a path that does not exist.
  const std::string tiny = dir + "/tiny.safetensors";
  std::ofstream(tiny) << "abc";
  EXPECT_NE(error_of([&] { SafetensorsFile f(tiny); }).find("only 3 bytes"), std::string::npos);
  const std::string msg = error_of([&] { SafetensorsFile f(dir + "/missing.safetensors"); });
  EXPECT_NE(msg.find("missing.safetensors': cannot open: No such file"), std::string::npos) << msg;
}

TEST(Safetensors, AcceptsZeroSizedTensorsAndGapsBetweenTensors) {
  // Not what our writer produces, but valid input: a zero-sized tensor at a boundary and padding between tensors.
  const std::string dir = test::temp_dir("st_lenient");
  const std::string path = raw_file(dir, "ok.safetensors",
                                    R"({"a":{"dtype":"U8","shape":[4],"data_offsets":[0,4]},)"
                                    R"("z":{"dtype":"F32","shape":[0],"data_offsets":[4,4]},)"
                                    R"("b":{"dtype":"U8","shape":[2],"data_offsets":[8,10]}})",
                                    10);
  SafetensorsFile f(path);
  EXPECT_EQ(f.names(), (std::vector<std::string>{"a", "z", "b"}));
  EXPECT_EQ(f.load("z").numel(), 0);
  EXPECT_TRUE(torch::equal(f.load("b"), torch::full({2}, 1, torch::kUInt8)));
}

}  // namespace
}  // namespace bmos
