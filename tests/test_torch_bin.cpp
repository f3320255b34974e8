// pytorch_model.bin (torch.save's zip format) read through our restricted unpickler: every dtype bit for bit against
// the tensors PyTorch itself saved (tests/reference/make_torch_bin.py), as a plain dict, an OrderedDict with
// _metadata, pickle protocol 4 and a one-entry dict; tied weights and views sharing one storage; and the refusals:
// globals that would run code or build objects, the legacy format, crafted pickles, broken files.
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <string>
#include <vector>

#include <caffe2/serialize/inline_container.h>
#include <gtest/gtest.h>
#include <torch/torch.h>

#include "modules/io/safetensors.h"
#include "modules/io/tensor_file.h"
#include "modules/io/torch_bin.h"
#include "tests/test_util.h"

namespace bmos {
namespace {

namespace fs = std::filesystem;
using test::error_of;

constexpr int kBigMb = 64;  // big.bin, for the memory test

// The tensors the test writes as safetensors and PyTorch re-saves: every dtype, bit patterns a float conversion
// would change (-0, inf, nan, a denormal), a 0-d and an empty tensor. "base" (2-D F32) is the one the views share.
std::vector<SafetensorsEntry> source_tensors() {
  torch::manual_seed(16);
  const float inf = std::numeric_limits<float>::infinity();
  return {
      {"base", torch::randn({5, 6}), ""},
      {"special", torch::tensor({-0.0f, inf, -inf, std::nanf(""), 1e-45f, 3.0f}), ""},
      {"f16", torch::randn({7}).to(torch::kFloat16), ""},
      {"bf16", torch::randn({2, 3}).to(torch::kBFloat16), ""},
      {"i64", torch::tensor({int64_t{-5}, int64_t{1} << 40, int64_t{7}}, torch::kInt64), ""},
      {"i32", torch::tensor({-3, 4, 5}, torch::kInt32), ""},
      {"i8", torch::tensor({-128, 0, 127}, torch::kInt8), ""},
      {"u8", torch::tensor({0, 200, 255}, torch::kUInt8), ""},
      {"bool", torch::tensor({true, false, true}), ""},
      {"scalar", torch::tensor(2.5f), ""},
      {"empty", torch::zeros({0, 4}), ""},
  };
}

// Same dtype, shape and bytes; `got` contiguous (load promises an owned contiguous copy).
void expect_same_bits(const torch::Tensor& got, const torch::Tensor& want, const std::string& what) {
  ASSERT_EQ(got.scalar_type(), want.scalar_type()) << what;
  ASSERT_EQ(got.sizes(), want.sizes()) << what;
  EXPECT_TRUE(got.is_contiguous()) << what;
  const torch::Tensor w = want.contiguous();
  if (got.nbytes() > 0) {
    EXPECT_EQ(std::memcmp(got.data_ptr(), w.data_ptr(), got.nbytes()), 0) << what << " differs";
  }
}

// Storage records ("data/<key>") in a torch.save archive.
size_t storage_records(const std::string& path) {
  caffe2::serialize::PyTorchStreamReader zip(path);
  size_t n = 0;
  for (const auto& r : zip.getAllRecords()) n += r.rfind("data/", 0) == 0;
  return n;
}

long rss_kb() {
  std::ifstream in("/proc/self/status");
  std::string key;
  long kb = -1;
  while (in >> key)
    if (key == "VmRSS:") in >> kb;
  return kb;
}

// ------------------------------------------------------------------------------------- files written by PyTorch
class TorchBin : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    if (!test::python_has_torch()) return;
    dir_ = test::temp_dir("torch_bin");
    write_safetensors(dir_ + "/src.safetensors", source_tensors());
    const std::string cmd = std::string("/usr/bin/python3 ") + BMOS_SOURCE_DIR +
                            "/tests/reference/make_torch_bin.py " + dir_ + "/src.safetensors " + dir_ +
                            " --big-mb " + std::to_string(kBigMb);
    ASSERT_EQ(std::system(cmd.c_str()), 0) << cmd;
  }
  static void TearDownTestSuite() {
    if (!dir_.empty()) fs::remove_all(dir_);
  }
  void SetUp() override {
    if (dir_.empty())
      GTEST_SKIP() << "SKIPPED: /usr/bin/python3 has no torch, so tests/reference/make_torch_bin.py cannot write the "
                      "torch.save files; install it with `apt-get install python3-torch` (scripts/setup.sh does)";
  }
  static std::string file(const std::string& name) { return dir_ + "/" + name; }
  static std::string dir_;
};
std::string TorchBin::dir_;

TEST_F(TorchBin, EveryDtypeBitForBit) {
  const TorchBinFile f(file("plain.bin"));
  const SafetensorsFile src(file("src.safetensors"));
  for (const auto& e : source_tensors()) {
    SCOPED_TRACE(e.name);
    ASSERT_TRUE(f.contains(e.name));
    EXPECT_EQ(f.info(e.name).dtype, src.info(e.name).dtype);
    EXPECT_EQ(f.info(e.name).shape, e.tensor.sizes().vec());
    expect_same_bits(f.load(e.name), e.tensor, e.name);
    const std::string& dtype = f.info(e.name).dtype;
    if (dtype == "F32" || dtype == "F16" || dtype == "BF16")
      expect_same_bits(f.load_float(e.name), e.tensor.to(torch::kFloat32), e.name + " as fp32");
  }
  EXPECT_HAS(error_of([&] { f.load_float("i64"); }), "'i64': has dtype I64");
  const std::string missing = error_of([&] { f.info("nope"); });
  EXPECT_HAS(missing, file("plain.bin"));
  EXPECT_HAS(missing, "no tensor named 'nope'");
}

TEST_F(TorchBin, OrderedDictProtocol4AndOneEntryDictsReadTheSame) {
  const TorchBinFile plain(file("plain.bin"));
  for (const char* name : {"ordereddict.bin", "protocol4.bin"}) {
    SCOPED_TRACE(name);
    const TorchBinFile f(file(name));
    ASSERT_EQ(f.names().size(), source_tensors().size());
    for (const auto& e : source_tensors()) expect_same_bits(f.load(e.name), plain.load(e.name), e.name);
  }
  const TorchBinFile single(file("single.bin"));  // pickled with SETITEM, which libtorch 1.13's unpickler lacks
  EXPECT_EQ(single.names(), std::vector<std::string>{"base"});
  expect_same_bits(single.load("base"), source_tensors()[0].tensor, "single");
}

TEST_F(TorchBin, TiedWeightsAndViewsShareOneStorage) {
  // One record per source tensor: the tied copies and views were saved inside base's storage, not as their own.
  ASSERT_EQ(storage_records(file("plain.bin")), source_tensors().size());
  const TorchBinFile f(file("plain.bin"));
  const torch::Tensor base = source_tensors()[0].tensor;
  expect_same_bits(f.load("base.tied"), base, "base.tied");  // base.detach(): another tensor object
  expect_same_bits(f.load("base.same"), base, "base.same");  // the same object (the pickle memo)
  expect_same_bits(f.load("base.t"), base.t(), "base.t");    // strides (1, 6)
  expect_same_bits(f.load("base.slice"), base.slice(0, 1).slice(1, 1, 6, 2), "base.slice");  // offset 7, strides (6, 2)
  EXPECT_EQ(f.info("base.t").shape, (std::vector<int64_t>{6, 5}));
  // Saved order: the source tensors, then the views.
  std::vector<std::string> want;
  for (const auto& e : source_tensors()) want.push_back(e.name);
  for (const char* v : {"base.tied", "base.same", "base.t", "base.slice"}) want.push_back(v);
  EXPECT_EQ(f.names(), want);
}

TEST_F(TorchBin, OpenTensorFileChoosesByContent) {
  const auto bin = open_tensor_file(file("plain.bin"));
  const auto st = open_tensor_file(file("src.safetensors"));
  fs::copy_file(file("plain.bin"), file("weights_no_extension"), fs::copy_options::overwrite_existing);
  const auto renamed = open_tensor_file(file("weights_no_extension"));
  EXPECT_NE(dynamic_cast<const TorchBinFile*>(bin.get()), nullptr);
  EXPECT_NE(dynamic_cast<const TorchBinFile*>(renamed.get()), nullptr);
  EXPECT_NE(dynamic_cast<const SafetensorsFile*>(st.get()), nullptr);
  for (const auto& name : st->names()) {
    SCOPED_TRACE(name);
    EXPECT_EQ(bin->info(name).dtype, st->info(name).dtype);
    expect_same_bits(bin->load(name), st->load(name), name);
  }
}

TEST_F(TorchBin, RefusesGlobalsThatRunCodeOrBuildObjects) {
  const struct {
    const char* file;
    const char* global;
  } cases[] = {
      {"evil.bin", "'posix.system'"},
      {"eval.bin", "'__builtin__.eval'"},  // protocol 2 names builtins as Python 2 did
      {"numpy.bin", "'numpy.core.multiarray._reconstruct'"},
      {"parameter.bin", "'torch._utils._rebuild_parameter'"},
      {"quantized.bin", "'torch._utils._rebuild_qtensor'"},
      {"crafted_stack_global.bin", "'posix.system'"},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.file);
    const std::string msg = error_of([&] { TorchBinFile f(file(c.file)); });
    EXPECT_HAS(msg, file(c.file));
    EXPECT_HAS(msg, std::string("refuses the pickled global ") + c.global);
    // The same through the interface.
    EXPECT_HAS(error_of([&] { open_tensor_file(file(c.file)); }), c.global);
  }
  EXPECT_FALSE(fs::exists(file("pwned"))) << "a pickled os.system or eval ran";
}

TEST_F(TorchBin, RefusesWhatItDoesNotRead) {
  const struct {
    const char* file;
    const char* part;
  } cases[] = {
      {"legacy.bin", "legacy format (PyTorch < 1.6"},
      {"list.bin", "data.pkl holds a list, expected a dict of tensor name -> tensor"},
      {"nested.bin", "key 'state_dict': holds a dict, expected a tensor"},
      {"int.bin", "key 'step': holds an int, expected a tensor"},
      {"overrun.bin", "key 'overrun': its view (offset 2, shape [3], strides [1]) runs past its storage of 4 elements"},
      {"crafted_truncated.bin", "ends inside an opcode: a truncated or corrupt pickle"},
      {"crafted_memo.bin", "data.pkl, byte 2: memo entry 5 was never stored"},
      {"crafted_opcode.bin", "unsupported pickle opcode 0x49"},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.file);
    const std::string msg = error_of([&] { TorchBinFile f(file(c.file)); });
    EXPECT_HAS(msg, file(c.file));
    EXPECT_HAS(msg, c.part);
  }
  EXPECT_HAS(error_of([&] { TorchBinFile t(file("legacy.bin")); }), "torch.save(torch.load(f, map_location='cpu'), f)");
}

TEST_F(TorchBin, RefusesATruncatedFile) {
  std::ifstream in(file("plain.bin"), std::ios::binary);
  const std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  for (const size_t keep : {bytes.size() / 2, bytes.size() - 10}) {
    std::ofstream(file("truncated.bin"), std::ios::binary) << bytes.substr(0, keep);
    const std::string msg = error_of([&] { TorchBinFile f(file("truncated.bin")); });
    EXPECT_HAS(msg, file("truncated.bin"));
    EXPECT_HAS(msg, "truncated");
  }
}

TEST_F(TorchBin, OpeningReadsNoTensorData) {
  // big.bin holds kBigMb MiB; opening it reads only data.pkl, and loading keeps one storage at a time.
  const long before = rss_kb();
  const TorchBinFile f(file("big.bin"));
  const long after_open = rss_kb();
  std::cout << "  RSS: +" << (after_open - before) / 1024 << " MiB after opening a " << kBigMb << " MiB file\n";
  EXPECT_LT(after_open - before, kBigMb * 1024 / 4);
  ASSERT_EQ(f.names().size(), static_cast<size_t>(kBigMb / 4));
  for (const auto& name : f.names()) {
    const torch::Tensor t = f.load(name);
    ASSERT_EQ(t.sizes(), (torch::IntArrayRef{1024, 1024}));
    ASSERT_TRUE(torch::isfinite(t).all().item<bool>());
  }
}

// ----------------------------------------------------------------------------------------- files of our own making
TEST(TorchBinFiles, RefusesNonTorchFiles) {
  const std::string dir = test::temp_dir("torch_bin_bad");
  std::ofstream(dir + "/garbage.bin", std::ios::binary) << "not a zip, not a pickle";
  std::ofstream(dir + "/bare.bin", std::ios::binary) << "\x80\x02}q\x00.";
  std::ofstream(dir + "/empty.bin", std::ios::binary);
  EXPECT_HAS(error_of([&] { TorchBinFile f(dir + "/garbage.bin"); }), "not a zip archive");
  EXPECT_HAS(error_of([&] { TorchBinFile f(dir + "/empty.bin"); }), "not a zip archive (0 bytes)");
  EXPECT_HAS(error_of([&] { TorchBinFile f(dir + "/bare.bin"); }), "a bare pickle, not a torch.save file");
  const std::string missing = error_of([&] { TorchBinFile f(dir + "/missing.bin"); });
  EXPECT_HAS(missing, dir + "/missing.bin");
  EXPECT_HAS(missing, "cannot open");
  // open_tensor_file: a .bin is a torch file whatever its bytes; another name falls to safetensors' message.
  EXPECT_HAS(error_of([&] { open_tensor_file(dir + "/garbage.bin"); }), "PyTorch file '" + dir + "/garbage.bin'");
  fs::copy_file(dir + "/garbage.bin", dir + "/garbage.safetensors");
  EXPECT_HAS(error_of([&] { open_tensor_file(dir + "/garbage.safetensors"); }), "safetensors file '");
  fs::remove_all(dir);
}

}  // namespace
}  // namespace bmos
