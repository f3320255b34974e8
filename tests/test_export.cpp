// Packed export and serving: PackedBinaryMoSLinear against the training layers, the export -> load round trip on
// small random models (E = 1 / 4, biases, odd shapes, FP layers left in, Sign layers, int8 embeddings), format 2
// mapped in place and format 1 still read, refusal of unknown format versions, the 7B/13B size arithmetic, and stories260K end to end (greedy text of the packed model
// equals the training graph's).
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include "kernels/cpu/binary_matmul.h"
#include "kernels/packed_format.h"
#include "modules/binarymos_linear.h"
#include "modules/generate.h"
#include "modules/io/model_loader.h"
#include "modules/packed/packed_binarymos_linear.h"
#include "modules/packed/packed_model.h"
#include "modules/replace.h"
#include "modules/sign_linear.h"
#include "trainer/export/export.h"
#include "trainer/export/export_size.h"
#include "trainer/export/export_stream.h"
#include "modules/io/hf_llama.h"
#include "modules/io/model_files.h"
#include "modules/io/safetensors.h"
#include "tests/test_util.h"

namespace bmos {
namespace {

namespace fs = std::filesystem;

using test::max_rel;

// Experts that differ from each other and a router that spreads tokens over them (a fresh from_linear layer has
// identical experts, which would hide a wrong router).
void randomize_experts(BinaryMoSLinearImpl& l, uint64_t seed) {
  torch::NoGradGuard no_grad;
  torch::manual_seed(seed);
  l.s_in.mul_(1 + 0.3 * torch::randn_like(l.s_in));
  l.s_out.mul_(1 + 0.3 * torch::randn_like(l.s_out));
  if (l.router.defined()) l.router.normal_(0, 2.0 / std::sqrt(double(l.in_features())));
  if (l.bias.defined()) l.bias.normal_(0, 0.1);
}

std::shared_ptr<BinaryMoSLinearImpl> random_binarymos(int64_t in, int64_t out, int64_t E, bool bias, uint64_t seed) {
  torch::manual_seed(seed);
  auto l = BinaryMoSLinearImpl::from_linear(torch::randn({out, in}) * 0.05,
                                            bias ? torch::randn({out}) : torch::Tensor(), E);
  randomize_experts(*l, seed + 1);
  return l;
}

// ----------------------------------------------------------------------------------------------- the packed layer
// The linears that carry biases in the real families (configs/shapes): Qwen2.5-0.5B's q and k (896 -> 896, 896 -> 128),
// OPT-125M's fc1/fc2 (768 <-> 3072) and OPT-1.3B's q (2048 -> 2048), as one decode token (GEMV) and a 16-token prefill.
TEST(PackedLinear, BiasOnRealFamilyShapes) {
  torch::NoGradGuard no_grad;
  for (auto [in, out] : {std::pair<int64_t, int64_t>{896, 896}, {896, 128}, {768, 3072}, {3072, 768}, {2048, 2048}}) {
    auto train = random_binarymos(in, out, 4, /*bias=*/true, in + out);
    auto packed = PackedBinaryMoSLinearImpl::from_binarymos(*train);
    for (int64_t tokens : {1, 16}) {
      const torch::Tensor x = torch::randn({tokens, in});
      const double err = max_rel(packed->forward(x), train->forward(x));
      EXPECT_LE(err, 1e-5) << in << "x" << out << " tokens " << tokens << ": max rel diff " << err;
      // a bias left out (or added twice) would show: it is not small next to the outputs
      EXPECT_GT(max_rel(packed->forward(x) - train->bias, train->forward(x)), 1e-3);
    }
  }
}

TEST(PackedLinear, MatchesBinaryMoSLayerOnOddShapes) {
  torch::NoGradGuard no_grad;
  for (auto [in, out] : {std::pair<int64_t, int64_t>{37, 53}, {100, 61}, {64, 64}, {1, 5}, {33, 1}}) {
    for (int64_t E : {1, 4}) {
      for (bool bias : {false, true}) {
        auto train = random_binarymos(in, out, E, bias, 10 * in + out + E);
        auto packed = PackedBinaryMoSLinearImpl::from_binarymos(*train);
        EXPECT_TRUE(torch::equal(packed->bits(), pack_sign_bits(train->weight)));
        EXPECT_EQ(packed->experts(), E);
        for (const auto& shape : {std::vector<int64_t>{1, in}, {7, in}, {2, 3, in}}) {
          const torch::Tensor x = torch::randn(shape);
          const torch::Tensor want = train->forward(x), got = packed->forward(x);
          ASSERT_EQ(got.sizes(), want.sizes());
          const double err = max_rel(got, want);
          EXPECT_LE(err, 1e-5) << in << "x" << out << " E=" << E << " bias=" << bias << ": max rel diff " << err;
        }
      }
    }
  }
}

TEST(PackedLinear, MatchesSignLayerAsE1WithUnitInputScale) {
  torch::NoGradGuard no_grad;
  torch::manual_seed(3);
  auto train = SignLinearImpl::from_linear(torch::randn({45, 70}), torch::randn({45}));
  auto packed = PackedBinaryMoSLinearImpl::from_sign(*train);
  EXPECT_TRUE(packed->is_sign());
  const torch::Tensor x = torch::randn({9, 70});
  const double err = max_rel(packed->forward(x), train->forward(x));
  EXPECT_LE(err, 1e-5) << "max rel diff " << err;
}

TEST(PackedLinear, SignOfZeroIsPlusOne) {
  // A zero weight must pack as +1, the rule of training's ste_sign.
  const torch::Tensor w = torch::tensor({{0.0f, -1.0f, 2.0f}});
  const torch::Tensor bits = pack_sign_bits(w);
  EXPECT_EQ(bits.item<int32_t>(), 0b101);
}

// The CUDA path (kernels/cuda through modules/packed/packed_cuda.cpp) against the CPU kernels, where a GPU and a CUDA
// build exist (scripts/gpu_check.sh runs it there); skipped, and said so, everywhere else.
TEST(PackedLinear, CudaMatchesCpuForDecodeAndPrefillShapes) {
  if (!torch::cuda::is_available()) GTEST_SKIP() << "no CUDA device in this libtorch: the CUDA path is not run here";
  ASSERT_TRUE(packed_cuda_built()) << "libtorch has CUDA but this build has no CUDA kernels (nvcc missing?)";
  torch::NoGradGuard no_grad;
  const torch::Device cuda(torch::kCUDA);
  // E = 4 layers carry a bias (the kernels' epilogue), also on real biased family shapes: Qwen2.5-0.5B's k (896 ->
  // 128) and OPT-125M's fc2 (3072 -> 768).
  for (auto [in, out] : {std::pair<int64_t, int64_t>{64, 172}, {300, 61}, {4096, 1024}, {896, 128}, {3072, 768}}) {
    for (int64_t E : {1, 4}) {
      auto packed = PackedBinaryMoSLinearImpl::from_binarymos(*random_binarymos(in, out, E, E == 4, in + out + E));
      for (int64_t M : {1, 7, 17, 32, 33, 100, 300}) {
        const torch::Tensor x = torch::randn({M, in});
        const torch::Tensor want = packed->forward(x);  // CPU, fp32
        for (auto dtype : {torch::kFloat32, torch::kHalf, torch::kBFloat16}) {
          const torch::Tensor got = packed->forward(x.to(cuda, dtype));
          ASSERT_EQ(got.scalar_type(), dtype);
          ASSERT_TRUE(got.is_cuda());
          // fp16 (the fp32 input's kernel dtype) keeps ~3 significant digits, bf16 ~2.
          const double tol = dtype == torch::kBFloat16 ? 3e-2 : 3e-3;
          const double err = ((got.cpu().to(torch::kFloat) - want).abs().max() / want.abs().max()).item<double>();
          std::printf("cuda %lldx%lld E=%lld M=%lld %s: max err / max |y| = %.2e\n", (long long)in, (long long)out,
                      (long long)E, (long long)M, c10::toString(dtype), err);
          EXPECT_LE(err, tol) << in << "x" << out << " E=" << E << " M=" << M << " " << dtype;
        }
      }
    }
  }
}

TEST(PackedLinear, RefusesGradientsAndWrongWidths) {
  auto packed = PackedBinaryMoSLinearImpl::from_binarymos(*random_binarymos(8, 4, 2, false, 1));
  const torch::Tensor x = torch::randn({2, 8}, torch::requires_grad());
  EXPECT_THROW(packed->forward(x), std::invalid_argument);
  EXPECT_THROW(packed->forward(torch::randn({2, 9})), std::invalid_argument);
  packed->to(torch::kDouble);  // scales the kernels cannot read: refused by name, never misread as fp32
  EXPECT_THROW(packed->forward(torch::randn({2, 8})), std::invalid_argument);
}

// Scales of one 16-bit dtype are kept as given; mixed dtypes all become fp32.
TEST(PackedLinear, KeepsOneScaleDtypeAndWidensMixedOnes) {
  auto l = random_binarymos(8, 4, 2, false, 2);
  const torch::Tensor bits = pack_sign_bits(l->weight);
  const auto half = [](const torch::Tensor& t) { return t.detach().to(torch::kHalf); };
  PackedBinaryMoSLinearImpl kept(bits, 8, half(l->router), half(l->s_in), half(l->s_out), {});
  EXPECT_EQ(kept.router.scalar_type(), torch::kHalf);
  EXPECT_EQ(kept.s_in.scalar_type(), torch::kHalf);
  EXPECT_EQ(kept.s_out.scalar_type(), torch::kHalf);
  PackedBinaryMoSLinearImpl mixed(bits, 8, half(l->router), half(l->s_in).to(torch::kFloat), half(l->s_out), {});
  EXPECT_EQ(mixed.router.scalar_type(), torch::kFloat);
  EXPECT_EQ(mixed.s_in.scalar_type(), torch::kFloat);
  EXPECT_EQ(mixed.s_out.scalar_type(), torch::kFloat);
  torch::NoGradGuard no_grad;
  const torch::Tensor x = torch::randn({3, 8});
  EXPECT_TRUE(kept.forward(x).equal(mixed.forward(x))) << "the same values, kept 16-bit or widened";
}

// ------------------------------------------------------------------------------------------- model round trips
LlamaConfig odd_config(bool tied) {
  LlamaConfig c;
  c.dim = 48;
  c.hidden_dim = 100;  // neither a multiple of 32 (packed words) nor of 30 (the kernels' words)
  c.n_layers = 2;
  c.n_heads = 4;
  c.n_kv_heads = 2;
  c.vocab_size = 67;
  c.max_seq_len = 32;
  c.tie_embeddings = tied;
  return c;
}

Llama random_student(const LlamaConfig& c, const QuantSpec& spec, bool biases, uint64_t seed) {
  Llama m(c);
  m->init_random(seed);
  replace_linears(m, spec);
  torch::NoGradGuard no_grad;
  uint64_t s = seed;
  for (const auto& name : m->linear_names()) {
    if (auto b = std::dynamic_pointer_cast<BinaryMoSLinearImpl>(m->get_linear(name))) {
      if (biases && name.find("w2") != std::string::npos) {  // some layers with a bias
        auto withb = BinaryMoSLinearImpl::from_linear(b->weight, torch::randn({b->out_features()}) * 0.1, b->experts());
        m->set_linear(name, withb);
        b = withb;
      }
      randomize_experts(*b, ++s);
    }
  }
  m->eval();
  return m;
}

torch::Tensor sample_tokens(const LlamaConfig& c, int64_t B, int64_t T, uint64_t seed) {
  torch::manual_seed(seed);
  return torch::randint(0, c.vocab_size, {B, T}, torch::kLong);
}

// Every float tensor of the training model rounded to what the file stores: scales/router/int8 rows as scale_dtype,
// the rest as fp_dtype. The packed model must then match it to fp32 summation order.
void round_like_file(Llama& m, const PackedQuantization& q) {
  torch::NoGradGuard no_grad;
  for (auto& p : m->named_parameters()) {
    const std::string& n = p.key();
    const bool is_scale = n.find(".s_in") != std::string::npos || n.find(".s_out") != std::string::npos ||
                          n.find(".router") != std::string::npos;
    const bool is_embedding = n == "tok_embeddings.weight" || n == "output.weight";
    if (n.size() > 7 && n.compare(n.size() - 7, 7, ".weight") == 0) {
      auto l = std::dynamic_pointer_cast<LinearLike>(m->named_modules()[n.substr(0, n.size() - 7)]);
      if (l && l->kind() != "fp") continue;  // latent weights of 1-bit layers: only their signs are stored
    }
    if (is_embedding && q.embedding_bits == 8) {
      auto [codes, scale] = quantize_rows_int8(p.value(), q.scale_dtype);
      p.value().copy_(dequantize_rows_int8(codes, scale));
    } else {
      p.value().copy_(round_to_dtype(p.value(), is_scale ? q.scale_dtype : q.fp_dtype));
    }
  }
}

int64_t safetensors_header_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  uint64_t n = 0;
  in.read(reinterpret_cast<char*>(&n), 8);
  return 8 + static_cast<int64_t>(n);
}

struct RoundTripCase {
  const char* name;
  bool tied;
  QuantSpec spec;
  bool biases;
  ExportOptions options;
};

std::vector<RoundTripCase> round_trip_cases() {
  QuantSpec e4, e1, attention_only, sign;
  e1.experts = 1;
  attention_only.patterns = {"layers.*.attention.*"};
  sign.method = "sign";
  ExportOptions f32, f16, bf16_int8, f16_int8;  // (a Sign layer's alpha is computed from its latent weights: f32 only)
  f32.scale_dtype = f32.fp_dtype = "f32";
  bf16_int8.scale_dtype = "bf16";
  bf16_int8.embedding_bits = 8;
  f16_int8.embedding_bits = 8;
  return {{"e4_f32_untied", false, e4, false, f32},     {"e4_f16_tied_bias", true, e4, true, f16},
          {"e1_f32_bias", false, e1, true, f32},        {"e1_f16_untied", false, e1, false, f16},
          {"attention_only_f16", true, attention_only, false, f16},
          {"sign_f32", false, sign, true, f32},         {"e4_bf16_int8_untied", false, e4, false, bf16_int8},
          {"e4_f16_int8_tied", true, e4, false, f16_int8}};
}

TEST(Export, RoundTripLogitsMatchTrainingGraph) {
  torch::NoGradGuard no_grad;
  uint64_t seed = 100;
  for (auto cs : round_trip_cases()) {
    SCOPED_TRACE(cs.name);
    const LlamaConfig c = odd_config(cs.tied);
    Llama train = random_student(c, cs.spec, cs.biases, ++seed);
    const std::string dir = test::temp_dir(std::string("export_") + cs.name);
    cs.options.sample_sequences = 2;
    cs.options.sample_len = 12;
    const ExportReport report = export_packed(train, dir + "/out", cs.options);

    // The file: the layout's tensors and nothing else, behind one header.
    const std::string st = dir + "/out/model.safetensors";
    EXPECT_EQ(report.file_bytes, static_cast<int64_t>(fs::file_size(st)));
    EXPECT_EQ(report.file_bytes, safetensors_header_bytes(st) + report.payload_bytes);
    EXPECT_FALSE(fs::exists(dir + "/out.tmp." + std::to_string(::getpid())));
    const int64_t quantized = cs.spec.patterns.size() == 1 ? 4 * c.n_layers : 7 * c.n_layers;
    EXPECT_EQ(static_cast<int64_t>(report.layers.size()), quantized);

    // Loaded the way `bmos generate` / `bmos eval` load it.
    LoadedModel loaded = load_model(dir + "/out");
    EXPECT_EQ(loaded.format, "packed");
    int64_t packed_layers = 0;
    for (const auto& n : loaded.model->linear_names()) packed_layers += loaded.model->get_linear(n)->kind() == "packed";
    EXPECT_EQ(packed_layers, quantized);
    if (report.quantization.embedding_bits == 8) {  // int8 rows stay int8: the table and the head
      EXPECT_TRUE(loaded.model->token_rows != nullptr);
      EXPECT_EQ(loaded.model->tok_embeddings->weight.numel(), 0);
      EXPECT_EQ((cs.tied ? loaded.model->tied_head : loaded.model->output)->kind(), "int8_rows");
    }

    round_like_file(train, report.quantization);
    const torch::Tensor tokens = sample_tokens(c, 3, 17, seed);
    const torch::Tensor want = train->forward(tokens).logits, got = loaded.model->forward(tokens).logits;
    const double err = max_rel(got, want);
    std::printf("[export %s] packed vs training-graph logits (file-rounded weights): max rel diff %.3e; export "
                "report worst layer %s %.3e\n",
                cs.name, err, report.worst_layer.c_str(), report.worst_max_rel);
    EXPECT_LE(err, 2e-5) << "packed model logits differ from the training graph's";
    EXPECT_EQ(got.argmax(-1).ne(want.argmax(-1)).sum().item<int64_t>(), 0);
    // The report's error is the one the file's rounding makes: fp32 files are exact up to summation order.
    if (report.quantization.scale_dtype == "F32") EXPECT_LE(report.worst_max_rel, 1e-5);
    else EXPECT_LE(report.worst_max_rel, 2e-2);

    // Decoding through the KV cache gives the same logits as the full forward.
    KVCache cache = loaded.model->new_cache(1, 17);
    const torch::Tensor first = loaded.model->forward_cached(tokens.slice(0, 0, 1).slice(1, 0, 9), cache);
    const torch::Tensor rest = loaded.model->forward_cached(tokens.slice(0, 0, 1).slice(1, 9, 17), cache);
    const double cache_err = max_rel(torch::cat({first, rest}, 1), got.slice(0, 0, 1));
    EXPECT_LE(cache_err, 1e-5) << "cached decode vs full forward";

    // The packed linears keep the file's scale dtype, and give bitwise the logits of those scales widened to fp32.
    const torch::ScalarType stored = torch_float_dtype(report.quantization.scale_dtype);
    for (const auto& n : loaded.model->linear_names())
      if (auto p = std::dynamic_pointer_cast<PackedBinaryMoSLinearImpl>(loaded.model->get_linear(n))) {
        EXPECT_EQ(p->s_in.scalar_type(), stored) << n;
        EXPECT_EQ(p->s_out.scalar_type(), stored) << n;
        if (p->router.defined()) {
          EXPECT_EQ(p->router.scalar_type(), stored) << n;
        }
      }
    if (stored != torch::kFloat) {
      Llama widened = load_model(dir + "/out").model;
      for (const auto& n : widened->linear_names())
        if (auto p = std::dynamic_pointer_cast<PackedBinaryMoSLinearImpl>(widened->get_linear(n))) {
          p->to(torch::kFloat);
          ASSERT_EQ(p->s_out.scalar_type(), torch::kFloat) << n;
        }
      EXPECT_TRUE(widened->forward(tokens).logits.equal(got)) << "16-bit scales vs the same scales as fp32";
      KVCache wc = widened->new_cache(1, 9);
      EXPECT_TRUE(widened->forward_cached(tokens.slice(0, 0, 1).slice(1, 0, 9), wc).equal(first));
    }
  }
}

TEST(Export, ReplacesAnEarlierExportButNothingElse) {
  Llama train = random_student(odd_config(true), QuantSpec{}, false, 7);
  ExportOptions o;
  o.sample_sequences = 1;
  o.sample_len = 4;
  const std::string dir = test::temp_dir("export_replace");
  export_packed(train, dir + "/out", o);
  EXPECT_NO_THROW(export_packed(train, dir + "/out", o));
  fs::create_directories(dir + "/other");
  std::ofstream(dir + "/other/notes.txt") << "mine";
  EXPECT_THROW(export_packed(train, dir + "/other", o), std::invalid_argument);
  EXPECT_TRUE(fs::exists(dir + "/other/notes.txt"));
  Llama fp(odd_config(true));
  EXPECT_THROW(export_packed(fp, dir + "/fp", o), std::invalid_argument);  // nothing to pack
  EXPECT_FALSE(fs::exists(dir + "/fp"));
}

// ------------------------------------------------------------------------------------------- format refusal
void edit_quantization(const std::string& dir, const std::string& key, const nlohmann::json& value) {
  nlohmann::json j;
  {
    std::ifstream in(dir + "/config.json");
    j = nlohmann::json::parse(in);
  }
  j["quantization"][key] = value;
  std::ofstream(dir + "/config.json") << j.dump(2);
}

std::string load_error(const std::string& dir) {
  try {
    load_model(dir);
  } catch (const std::exception& e) {
    return e.what();
  }
  return "";
}

// Format 2 is served from the file's mapping: every qweight 64-byte aligned in the file and used in place, the int8
// codes too. A format 1 folder (canonical bits, as the previous release wrote) still loads, repacked, to bitwise the
// same logits.
TEST(Export, MapsFormat2InPlaceAndStillReadsFormat1) {
  torch::NoGradGuard no_grad;
  const LlamaConfig c = odd_config(false);
  Llama train = random_student(c, QuantSpec{}, true, 21);
  ExportOptions o;
  o.sample_sequences = 1;
  o.sample_len = 4;
  o.embedding_bits = 8;
  const std::string dir = test::temp_dir("export_mapped");
  export_packed(train, dir + "/v2", o);

  PackedModel v2 = load_packed_model(dir + "/v2");
  EXPECT_EQ(v2.quantization.format_version, 2);
  const SafetensorsFile file(dir + "/v2/model.safetensors");
  int64_t qweight_bytes = 0;
  std::vector<SafetensorsEntry> v1_entries;  // the same model in format 1
  for (const auto& name : file.names()) {
    const SafetensorsInfo& info = file.info(name);
    if (name.size() > 8 && name.compare(name.size() - 8, 8, ".qweight") == 0) {
      const std::string linear = name.substr(0, name.size() - 8);
      auto layer = std::dynamic_pointer_cast<PackedBinaryMoSLinearImpl>(v2.model->get_linear(linear));
      ASSERT_TRUE(layer) << linear;
      EXPECT_TRUE(layer->bits_mapped()) << linear;
      EXPECT_EQ(reinterpret_cast<uintptr_t>(file.mapped(name).data) % 64, 0u) << name << " not 64-byte aligned";
      EXPECT_EQ(info.shape, (std::vector<int64_t>{packed::row_tiles(layer->out_features()),
                                                  packed::tile_words_per_row(layer->in_features()), 16}));
      qweight_bytes += static_cast<int64_t>(info.end - info.begin);
      v1_entries.push_back({name, layer->bits(), "U32"});
    } else {
      v1_entries.push_back({name, file.load(name), info.dtype});
    }
  }
  const int64_t codes_bytes = 2 * c.vocab_size * c.embedding_dim();  // untied: table and head
  EXPECT_EQ(v2.mapped_bytes, qweight_bytes + codes_bytes);

  fs::create_directories(dir + "/v1");
  fs::copy_file(dir + "/v2/config.json", dir + "/v1/config.json");
  write_safetensors(dir + "/v1/model.safetensors", v1_entries);
  edit_quantization(dir + "/v1", "format_version", 1);
  edit_quantization(dir + "/v1", "bit_order", packed::kBitOrderV1);
  PackedModel v1 = load_packed_model(dir + "/v1");
  EXPECT_EQ(v1.quantization.format_version, 1);
  EXPECT_EQ(v1.packed_layers, v2.packed_layers);
  for (const auto& name : v1.model->linear_names())
    EXPECT_FALSE(std::dynamic_pointer_cast<PackedBinaryMoSLinearImpl>(v1.model->get_linear(name))->bits_mapped());

  const torch::Tensor tokens = sample_tokens(c, 2, 11, 5);
  const torch::Tensor want = v1.model->forward(tokens).logits, got = v2.model->forward(tokens).logits;
  EXPECT_TRUE(got.equal(want)) << "mapped format 2 and repacked format 1 logits differ: max rel "
                               << max_rel(got, want);
}

// An exported random BinaryMoS student of config c (seed), in a fresh temporary folder named after `name`.
std::string export_random_student(const LlamaConfig& c, uint64_t seed, const std::string& name) {
  Llama train = random_student(c, QuantSpec{}, true, seed);
  ExportOptions o;
  o.sample_sequences = 0;
  const std::string dir = test::temp_dir(name) + "/out";
  export_packed(train, dir, o);
  return dir;
}

// Decodes the first sequence of `tokens` one token at a time through both models: the logits equal bitwise.
void expect_same_decode(Llama& a, Llama& b, const torch::Tensor& tokens, int64_t steps) {
  KVCache ca = a->new_cache(1, steps), cb = b->new_cache(1, steps);
  for (int64_t i = 0; i < steps; ++i) {
    const torch::Tensor t = tokens.slice(0, 0, 1).slice(1, i, i + 1);
    EXPECT_TRUE(a->forward_cached(t, ca).equal(b->forward_cached(t, cb))) << "position " << i;
  }
}

// --prefill_tables int8 (LoadOptions::prefill_tables): the packed linears' products of 2 or more tokens round their
// tables to int8. Logits move a little, one token at a time (decode) does not move at all, and the option is refused
// for a model that has no packed linears.
TEST(Export, Int8PrefillTablesAreOptInCloseAndDecodeStaysExact) {
  if (!kernels::cpu_supports_int8_lut()) GTEST_SKIP() << "SKIPPED: this CPU has no AVX-512 VBMI + VNNI";
  torch::NoGradGuard no_grad;
  const LlamaConfig c = odd_config(false);
  const std::string dir = export_random_student(c, 23, "export_int8_tables");
  LoadOptions int8;
  int8.prefill_tables = kernels::LutPrecision::kInt8;
  Llama exact = load_model(dir).model, rounded = load_model(dir, int8).model;
  int64_t packed_layers = 0;
  for (const auto& name : rounded->linear_names()) {
    auto l = std::dynamic_pointer_cast<PackedBinaryMoSLinearImpl>(rounded->get_linear(name));
    ASSERT_TRUE(l) << name;
    EXPECT_EQ(l->prefill_tables(), kernels::LutPrecision::kInt8) << name;
    ++packed_layers;
  }
  EXPECT_EQ(packed_layers, c.n_layers * 7);

  const torch::Tensor tokens = sample_tokens(c, 2, 12, 7);
  const torch::Tensor want = exact->forward(tokens).logits, got = rounded->forward(tokens).logits;
  const double rel = ((got - want).norm() / want.norm()).item<double>();
  std::printf("int8 tables, odd 2-layer model: relative logit difference %.4f\n", rel);
  EXPECT_GT(rel, 1e-5) << "the int8 tables were not used";
  EXPECT_LT(rel, 0.05);
  expect_same_decode(rounded, exact, tokens, 4);  // one token per product is always the exact kernel
}

// --nommap (LoadOptions::map_weights = false): the file is read into (huge-page) memory instead of mapped; the same
// weights, so the same logits bitwise (refused for other formats: PackedOnlyLoadOptions... below).
TEST(Export, NoMmapReadsTheSameWeightsIntoMemory) {
  torch::NoGradGuard no_grad;
  const LlamaConfig c = odd_config(false);
  const std::string dir = export_random_student(c, 29, "export_nommap");
  LoadOptions read;
  read.map_weights = false;
  Llama mapped = load_model(dir).model, in_memory = load_model(dir, read).model;
  const torch::Tensor tokens = sample_tokens(c, 2, 9, 3);
  EXPECT_TRUE(in_memory->forward(tokens).logits.equal(mapped->forward(tokens).logits));
  expect_same_decode(in_memory, mapped, tokens, 3);
  // A truncated file is an error naming it, in this mode too.
  std::filesystem::resize_file(dir + "/model.safetensors", 100);
  EXPECT_HAS(test::error_of([&] { load_model(dir, read); }), "model.safetensors");
}

// The load options of exported packed models only (int8 prefill tables, --nommap) are refused for a llama2c model,
// each with an error that says so.
TEST(Export, PackedOnlyLoadOptionsRefusedForAModelWithoutPackedLinears) {
  BMOS_REQUIRE_DATA(model_path, "models/stories260K/stories260K.bin");
  LoadOptions int8, read;
  int8.prefill_tables = kernels::LutPrecision::kInt8;
  read.map_weights = false;
  for (const auto& [options, message] : {std::pair<LoadOptions, std::string>{int8, "apply to an exported packed model"},
                                         {read, "(--nommap) applies to an exported packed model"}}) {
    try {
      load_model(model_path, options);
      ADD_FAILURE() << "a llama2c model loaded with a packed-only option; expected: " << message;
    } catch (const std::invalid_argument& e) {
      EXPECT_NE(std::string(e.what()).find(message), std::string::npos) << e.what();
    }
  }
}

TEST(Export, ReadersRefuseUnknownFormatVersionAndBitOrder) {
  Llama train = random_student(odd_config(false), QuantSpec{}, false, 9);
  ExportOptions o;
  o.sample_sequences = 1;
  o.sample_len = 4;
  const std::string dir = test::temp_dir("export_version") + "/out";
  export_packed(train, dir, o);
  ASSERT_EQ(load_error(dir), "");

  edit_quantization(dir, "format_version", 3);
  const std::string e = load_error(dir);
  EXPECT_NE(e.find("format_version is 3"), std::string::npos) << e;
  EXPECT_NE(e.find("reads format_version 1 and 2"), std::string::npos) << e;
  EXPECT_NE(e.find("config.json"), std::string::npos) << e;

  edit_quantization(dir, "format_version", packed::kFormatVersion);
  edit_quantization(dir, "bit_order", "col_major");
  EXPECT_NE(load_error(dir).find("bit_order"), std::string::npos);
  edit_quantization(dir, "format_version", 1);  // version 1 with version 2's bit order
  edit_quantization(dir, "bit_order", packed::kBitOrder);
  EXPECT_NE(load_error(dir).find("format_version 1 has \"row_major_lsb_first_u32\""), std::string::npos);

  edit_quantization(dir, "format_version", packed::kFormatVersion);
  edit_quantization(dir, "bit_order", packed::kBitOrder);
  edit_quantization(dir, "experts", 2);  // the tensors hold 4 experts
  EXPECT_NE(load_error(dir).find("experts"), std::string::npos);
}

// ------------------------------------------------------------------------------------------- size arithmetic
// Exact bytes of a LLaMA with every decoder linear packed (E experts, fp16 scales/router/embeddings/head/norms),
// written out from the shapes here rather than taken from the exporter's table. kv: outputs of wk and wv. `tiles`:
// format 2's sign bits (32-bit words of 30 columns, rows padded to 16), else format 1's (1 bit per weight, rows padded
// to 32 columns: the paper's count).
int64_t expected_bytes(int64_t dim, int64_t hidden, int64_t layers, int64_t vocab, int64_t E, int64_t kv,
                       bool tied, bool tiles = true) {
  auto linear = [&](int64_t in, int64_t out) {
    const int64_t bits = tiles ? (out + 15) / 16 * 16 * ((in + 29) / 30) * 4 : out * ((in + 31) / 32) * 4;
    const int64_t scales = 2 * (E * in + E * out + (E > 1 ? E * in : 0));
    return bits + scales;
  };
  const int64_t block = 2 * linear(dim, dim) + 2 * linear(dim, kv) + 2 * linear(dim, hidden) + linear(hidden, dim) +
                        2 * dim * 2;
  return layers * block + (tied ? 1 : 2) * vocab * dim * 2 + dim * 2;
}

TEST(ExportSize, Llama2ShapesReproduceThePaper) {
  PackedQuantization q;  // binarymos E=4, F16 scales, F16 rest, format 2
  PackedQuantization q1 = q;
  q1.format_version = 1;  // 1 bit per weight: the paper's arithmetic
  const LlamaConfig c7 = llama_shape_preset("llama2-7b"), c13 = llama_shape_preset("llama2-13b");
  const ShapeSize s7 = size_from_shapes("llama2-7b", c7, q), s13 = size_from_shapes("llama2-13b", c13, q);
  const ShapeSize p7 = size_from_shapes("llama2-7b", c7, q1), p13 = size_from_shapes("llama2-13b", c13, q1);
  EXPECT_EQ(p7.packed.total(), expected_bytes(4096, 11008, 32, 32000, 4, 4096, false, false));
  EXPECT_EQ(p13.packed.total(), expected_bytes(5120, 13824, 40, 32000, 4, 5120, false, false));
  EXPECT_EQ(p7.onebit.total(), expected_bytes(4096, 11008, 32, 32000, 1, 4096, false, false));
  EXPECT_EQ(s7.packed.total(), expected_bytes(4096, 11008, 32, 32000, 4, 4096, false));
  EXPECT_EQ(s13.packed.total(), expected_bytes(5120, 13824, 40, 32000, 4, 5120, false));
  EXPECT_EQ(s7.params, 6738415616);  // LLaMA-2-7B's published parameter count
  EXPECT_LE(p7.packed.total(), 1.40e9);
  EXPECT_LE(p13.packed.total(), 2.33e9);
  // The tile order costs 32/30 bits per weight: about 4 % more file than the paper's count.
  EXPECT_LE(s7.packed.total(), 1.05 * p7.packed.total());
  std::printf("[size] llama2-7b %.4f GB at 1 bit per weight, %.4f GB as format 2 tiles; llama2-13b %.4f / %.4f GB; "
              "paper: 1.40 / 2.33 GB\n",
              p7.packed.total() / 1e9, s7.packed.total() / 1e9, p13.packed.total() / 1e9, s13.packed.total() / 1e9);

  // int8 embeddings and head: one byte per weight plus one fp16 scale per row, instead of two bytes.
  PackedQuantization q8 = q;
  q8.embedding_bits = 8;
  const ShapeSize s7_8 = size_from_shapes("llama2-7b", c7, q8);
  EXPECT_EQ(s7.packed.total() - s7_8.packed.total(), 2 * (32000 * 4096 - 32000 * 2));
}

TEST(ExportSize, ExportedFileMatchesTheShapeArithmetic) {
  // The size report and the exporter share one table; check it against a real file of the same config.
  LlamaConfig c = odd_config(false);
  Llama train = random_student(c, QuantSpec{}, false, 11);
  ExportOptions o;
  o.sample_sequences = 1;
  o.sample_len = 4;
  const ExportReport r = export_packed(train, test::temp_dir("export_size") + "/out", o);
  PackedQuantization q;
  EXPECT_EQ(r.payload_bytes, size_from_shapes("odd", c, q).packed.total());
  EXPECT_EQ(r.payload_bytes,
            expected_bytes(c.dim, c.hidden_dim, c.n_layers, c.vocab_size, 4, c.n_kv_heads * c.head_dim(), false));
}

// ------------------------------------------------------------------------------------------- int8 embeddings
TEST(Export, Int8RowsRoundTripWithinHalfAStep) {
  torch::manual_seed(5);
  const torch::Tensor w = torch::randn({20, 33});
  auto [codes, scale] = quantize_rows_int8(w, "F16");
  EXPECT_EQ(codes.scalar_type(), torch::kInt8);
  const torch::Tensor back = dequantize_rows_int8(codes, scale);
  const torch::Tensor err = (back - w).abs().amax(1) / scale;  // in units of the row's step
  EXPECT_LE(err.max().item<double>(), 0.5 + 1e-3);
}

// ------------------------------------------------------------------------------------------- streaming export
std::string file_bytes_of(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

TEST(SafetensorsWriter, TensorsInAnyOrderAndNothingHalfWritten) {
  const std::string dir = test::temp_dir("st_writer");
  const std::vector<SafetensorsInfo> layout = {{"a", "F32", {2, 3}, 0, 0}, {"b", "I8", {5}, 0, 0},
                                               {"c", "U32", {2}, 0, 0}};
  {
    SafetensorsWriter w(dir + "/x.safetensors", layout);
    w.put("c", torch::tensor({7, -1}, torch::kInt32));
    w.put("a", torch::arange(6, torch::kFloat).view({2, 3}));
    EXPECT_THROW(w.put("a", torch::zeros({2, 3})), std::runtime_error);            // twice
    EXPECT_THROW(w.put("b", torch::zeros({4}, torch::kInt8)), std::runtime_error);  // wrong shape
    EXPECT_THROW(w.put("zz", torch::zeros({1})), std::runtime_error);               // not in the layout
    EXPECT_THROW(w.commit(), std::runtime_error);                                   // b never written
  }
  EXPECT_FALSE(fs::exists(dir + "/x.safetensors"));  // no half file took the name, and no temporary is left
  for (const auto& e : fs::directory_iterator(dir)) ADD_FAILURE() << "left behind: " << e.path();
  {
    SafetensorsWriter w(dir + "/x.safetensors", layout);
    w.put("b", torch::arange(5, torch::kInt8));
    w.put("c", torch::tensor({7, -1}, torch::kInt32));
    w.put("a", torch::arange(6, torch::kFloat).view({2, 3}));
    w.commit();
  }
  const SafetensorsFile f(dir + "/x.safetensors");
  EXPECT_EQ(f.names(), (std::vector<std::string>{"a", "b", "c"}));  // layout order, whatever the order of puts
  EXPECT_TRUE(f.load("a").equal(torch::arange(6, torch::kFloat).view({2, 3})));
  EXPECT_TRUE(f.load("b").equal(torch::arange(5, torch::kInt8)));
  EXPECT_EQ(f.load("c")[1].item<int32_t>(), -1);
}

TEST(ExportStream, CheckpointStreamingWritesTheSameFolderAsTheInMemoryExport) {
  // The streaming exporter reads model.json + model.safetensors tensor by tensor; the in-memory one walks the
  // loaded model. Same options, same layout: the files must be byte-identical.
  torch::NoGradGuard no_grad;
  uint64_t seed = 300;
  for (auto cs : round_trip_cases()) {
    SCOPED_TRACE(cs.name);
    const LlamaConfig c = odd_config(cs.tied);
    Llama train = random_student(c, cs.spec, cs.biases, ++seed);
    const std::string dir = test::temp_dir(std::string("export_stream_") + cs.name);
    save_model_files(dir + "/ckpt", train);
    cs.options.sample_sequences = 1;
    cs.options.sample_len = 4;
    export_packed(train, dir + "/memory", cs.options);
    StreamExportOptions so;
    so.scale_dtype = cs.options.scale_dtype;
    so.fp_dtype = cs.options.fp_dtype;
    so.embedding_bits = cs.options.embedding_bits;
    const StreamExportReport r = export_checkpoint_streaming(dir + "/ckpt", dir + "/stream", so);
    EXPECT_EQ(file_bytes_of(dir + "/stream/model.safetensors"), file_bytes_of(dir + "/memory/model.safetensors"));
    EXPECT_EQ(file_bytes_of(dir + "/stream/config.json"), file_bytes_of(dir + "/memory/config.json"));
    const int64_t quantized = cs.spec.patterns.size() == 1 ? 4 * c.n_layers : 7 * c.n_layers;
    EXPECT_EQ(static_cast<int64_t>(r.layers.size()), quantized);
    if (r.quantization.scale_dtype == "F32") EXPECT_LE(r.worst_max_rel, 1e-5);
    else EXPECT_LE(r.worst_max_rel, 2e-2);
    EXPECT_GT(r.worst_max_rel, 0.0);  // the check ran (fp32 files still differ by summation order)
    EXPECT_EQ(r.file_bytes, static_cast<int64_t>(fs::file_size(dir + "/stream/model.safetensors")));
    EXPECT_FALSE(fs::exists(dir + "/stream.tmp." + std::to_string(::getpid())));
  }
}

TEST(ExportStream, TeacherBinarizedWithTheRank1InitAndNoTraining) {
  // An HF folder -> every decoder linear BinaryMoS E=4 with BinaryMoSLinear::from_linear's init: the sign bits and
  // scales must be those of replace_linears on the loaded FP model (routers are random: checked by shape).
  torch::NoGradGuard no_grad;
  for (const bool tied : {false, true}) {
    SCOPED_TRACE(tied ? "tied" : "untied");
    const LlamaConfig c = odd_config(tied);
    Llama fp(c);
    fp->init_random(11);
    LoadedCheckpoint ck;
    ck.config = c;
    for (const auto& p : fp->named_parameters()) ck.tensors[p.key()] = p.value().detach().clone();
    const std::string dir = test::temp_dir(std::string("export_teacher_") + (tied ? "tied" : "untied"));
    write_hf_llama(dir + "/hf", ck);
    StreamExportOptions so;
    so.scale_dtype = so.fp_dtype = "f32";
    so.embedding_bits = 8;
    const StreamExportReport r = export_teacher_streaming(dir + "/hf", "binarymos", 4, dir + "/out", so);
    EXPECT_EQ(static_cast<int64_t>(r.layers.size()), 7 * c.n_layers);
    EXPECT_LE(r.worst_max_rel, 1e-5);

    Llama want = load_model(dir + "/hf").model;
    replace_linears(want, QuantSpec{});  // E=4, rank-1 init from the FP weights
    const SafetensorsFile f(dir + "/out/model.safetensors");
    for (const auto& name : want->linear_names()) {
      auto b = std::dynamic_pointer_cast<BinaryMoSLinearImpl>(want->get_linear(name));
      ASSERT_TRUE(b) << name;
      EXPECT_TRUE(f.load(name + ".qweight").equal(canonical_to_tiles(pack_sign_bits(b->weight), b->in_features())))
          << name;
      EXPECT_LE(max_rel(f.load_float(name + ".s_in"), b->s_in), 1e-5) << name;
      EXPECT_LE(max_rel(f.load_float(name + ".s_out"), b->s_out), 1e-5) << name;
      EXPECT_EQ(f.info(name + ".router").shape, (std::vector<int64_t>{4, b->in_features()})) << name;
    }
    auto [codes, scale] = quantize_rows_int8(fp->tok_embeddings->weight, "F32");
    EXPECT_TRUE(f.load("tok_embeddings.weight").equal(codes));
    EXPECT_EQ(f.contains("output.weight"), !tied);
    // It loads and runs as bmos generate would.
    LoadedModel packed = load_model(dir + "/out");
    EXPECT_EQ(packed.model->forward(sample_tokens(c, 1, 5, 3)).logits.sizes(),
              torch::IntArrayRef({1, 5, c.vocab_size}));
  }
}

TEST(ExportStream, AFailedExportLeavesNoFolder) {
  const std::string dir = test::temp_dir("export_stream_fail");
  fs::create_directories(dir + "/hf");
  std::ofstream(dir + "/hf/config.json") << "{\"model_type\": \"llama\"}";
  EXPECT_THROW(export_teacher_streaming(dir + "/hf", "binarymos", 4, dir + "/out", {}), std::exception);
  EXPECT_THROW(export_teacher_streaming(dir + "/hf", "ternary", 4, dir + "/out", {}), std::invalid_argument);
  EXPECT_FALSE(fs::exists(dir + "/out"));
  EXPECT_FALSE(fs::exists(dir + "/out.tmp." + std::to_string(::getpid())));
}

// ------------------------------------------------------------------------------------------- stories260K
TEST(Export, Stories260KGreedyTextMatchesTrainingGraph) {
  BMOS_REQUIRE_DATA(model_path, "models/stories260K/stories260K.bin");
  BMOS_REQUIRE_DATA(tok_path, "models/stories260K/tok512.model");
  torch::NoGradGuard no_grad;
  Llama train = load_model(model_path).model;
  replace_linears(train, QuantSpec{});  // BinaryMoS E=4 on every decoder linear
  uint64_t seed = 40;
  for (const auto& name : train->linear_names())
    randomize_experts(*std::dynamic_pointer_cast<BinaryMoSLinearImpl>(train->get_linear(name)), ++seed);
  train->eval();
  ExportOptions o;  // the defaults: fp16 scales and FP rest
  o.tokenizer = tok_path;
  const std::string dir = test::temp_dir("export_stories260k") + "/out";
  const ExportReport r = export_packed(train, dir, o);
  std::printf("%s", r.text().c_str());
  EXPECT_TRUE(fs::exists(dir + "/tok512.model"));
  EXPECT_EQ(find_tokenizer_near(dir), dir + "/tok512.model");

  Llama packed = load_model(dir).model;
  GenerateOptions g;
  g.steps = 128;
  g.temperature = 0.0;
  const auto want = generate(train, {1}, g), got = generate(packed, {1}, g);
  size_t same = 0;
  while (same < want.size() && same < got.size() && want[same] == got[same]) ++same;
  std::printf("[stories260k] greedy: %zu of %zu tokens equal (training graph %zu tokens, packed %zu)\n", same,
              want.size(), want.size(), got.size());
  EXPECT_GE(same, 65u) << "BOS + 64 generated tokens must match";
  EXPECT_EQ(got, want);
}

}  // namespace
}  // namespace bmos
