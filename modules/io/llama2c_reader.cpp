#include "modules/io/llama2c_reader.h"

#include <sys/stat.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <stdexcept>
#include <vector>

namespace bmos {

namespace {

constexpr uint32_t kMagicAk42 = 0x616b3432;  // "ak42" as written by llama2.c's export.py (struct.pack('I', ...))
constexpr uint64_t kLegacyHeaderBytes = 7 * 4;
constexpr uint64_t kV1HeaderBytes = 256;

[[noreturn]] void fail(const std::string& path, const std::string& what) {
  throw std::runtime_error("llama2.c checkpoint '" + path + "': " + what);
}

// What the header says, before anything else is trusted.
struct Header {
  int version = 0;  // 0 = legacy
  int32_t p[7] = {};  // dim, hidden_dim, n_layers, n_heads, n_kv_heads, vocab_size, seq_len (as stored)
  bool shared_classifier = true;
  uint64_t data_offset = 0;
};

std::string params_text(const int32_t* p) {
  return "dim=" + std::to_string(p[0]) + " hidden_dim=" + std::to_string(p[1]) + " n_layers=" +
         std::to_string(p[2]) + " n_heads=" + std::to_string(p[3]) + " n_kv_heads=" + std::to_string(p[4]) +
         " vocab_size=" + std::to_string(p[5]) + " seq_len=" + std::to_string(p[6]);
}

LlamaConfig config_of(const Header& h) {
  LlamaConfig c;
  c.dim = h.p[0];
  c.hidden_dim = h.p[1];
  c.n_layers = h.p[2];
  c.n_heads = h.p[3];
  c.n_kv_heads = h.p[4];
  c.vocab_size = h.p[5] < 0 ? -static_cast<int64_t>(h.p[5]) : h.p[5];
  c.max_seq_len = h.p[6];
  c.tie_embeddings = h.shared_classifier;
  // llama2.c's model.py defaults, which its files do not store.
  c.norm_eps = 1e-5;
  c.rope_theta = 10000.0;
  c.bos_id = 1;
  c.eos_id = 2;
  return c;
}

// Bytes the file must have, computed wide enough that a garbage header cannot overflow it.
unsigned __int128 expected_bytes(const Header& h, const LlamaConfig& c) {
  using u128 = unsigned __int128;
  const u128 D = c.dim, F = c.hidden_dim, L = c.n_layers, V = c.vocab_size, hd = c.head_dim();
  const u128 q_rows = c.n_heads * hd, kv_rows = c.n_kv_heads * hd;
  u128 floats = V * D                                       // token embedding
                + L * (2 * D                                // rms_att, rms_ffn
                       + q_rows * D + 2 * kv_rows * D       // wq, wk, wv
                       + D * q_rows                         // wo
                       + 3 * F * D)                         // w1, w2, w3
                + D;                                        // rms_final
  if (h.version == 0) floats += static_cast<u128>(c.max_seq_len) * hd;  // freq_cis_real + imag, (seq_len, hd/2) each
  if (!h.shared_classifier) floats += V * D;                              // wcls
  return h.data_offset + 4 * floats;
}

std::string bytes_text(unsigned __int128 v) {
  if (v > static_cast<unsigned __int128>(UINT64_MAX)) return "more than 2^64";
  return std::to_string(static_cast<uint64_t>(v));
}

// Reads raw bytes; a short read is reported as truncation (the size check makes it unreachable short of a race).
void read_into(std::ifstream& in, void* dst, uint64_t bytes, const std::string& path, const std::string& what) {
  in.read(static_cast<char*>(dst), static_cast<std::streamsize>(bytes));
  if (static_cast<uint64_t>(in.gcount()) != bytes) fail(path, "file ended while reading " + what + " (truncated)");
}

}  // namespace

LoadedCheckpoint read_llama2c(const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0)
    fail(path, std::string("cannot open: ") + std::strerror(errno) +
                   " (expected a llama2.c .bin file, e.g. ../shared/data/models/stories260K/stories260K.bin)");
  if (!S_ISREG(st.st_mode)) fail(path, "is not a regular file (expected a llama2.c .bin file)");
  const uint64_t file_size = static_cast<uint64_t>(st.st_size);
  std::ifstream in(path, std::ios::binary);
  if (!in) fail(path, std::string("cannot open: ") + std::strerror(errno));

  // ------------------------------------------------------------------------------------------------------ header
  if (file_size < kLegacyHeaderBytes)
    fail(path, "only " + std::to_string(file_size) + " bytes, shorter than any llama2.c header (28 bytes legacy, " +
                   "256 bytes version 1)");
  unsigned char head[kV1HeaderBytes] = {};
  read_into(in, head, std::min<uint64_t>(file_size, kV1HeaderBytes), path, "the header");
  uint32_t magic = 0;
  std::memcpy(&magic, head, 4);
  Header h;
  char magic_hex[16];
  std::snprintf(magic_hex, sizeof magic_hex, "0x%08x", magic);
  std::string layout;  // for messages
  if (magic == kMagicAk42) {
    int32_t version = 0;
    std::memcpy(&version, head + 4, 4);
    if (version != 1)
      fail(path, "'ak42' file of version " + std::to_string(version) +
                     "; this reader knows version 1 (fp32) and the legacy layout (llama2.c's version 2 is its int8 "
                     "Q8_0 export: re-export with --version 1)");
    if (file_size < kV1HeaderBytes)
      fail(path, "truncated: a version-1 header is 256 bytes, the file has " + std::to_string(file_size));
    h.version = 1;
    std::memcpy(h.p, head + 8, sizeof h.p);
    h.shared_classifier = head[36] != 0;
    h.data_offset = kV1HeaderBytes;
    layout = "version-1 ('ak42') header";
  } else {
    h.version = 0;
    std::memcpy(h.p, head, sizeof h.p);
    h.shared_classifier = h.p[5] > 0;
    h.data_offset = kLegacyHeaderBytes;
    layout = "legacy header";
  }

  const LlamaConfig config = config_of(h);
  try {
    if (h.version == 1 && h.p[5] <= 0) throw std::invalid_argument("vocab_size must be > 0 in a version-1 file");
    config.validate();
  } catch (const std::invalid_argument& e) {
    // A legacy file has no magic, so a corrupt magic lands here: say both readings.
    const std::string legacy_note = h.version == 1 ? "" : std::string(" (no 'ak42' magic: the first 4 bytes are ") +
                                                              magic_hex + ", not 0x616b3432, so it was read as a "
                                                              "legacy export)";
    fail(path, "not a valid llama2.c checkpoint: its " + layout + legacy_note + " gives " + params_text(h.p) +
                   ", which is not a model (" + e.what() + "). Expected a llama2.c .bin export (legacy or "
                   "--version 1).");
  }
  const unsigned __int128 want = expected_bytes(h, config);
  if (want != file_size)
    fail(path, std::string(file_size < want ? "truncated" : "size mismatch") + ": its " + layout + " gives " +
                   params_text(h.p) + (h.shared_classifier ? " (shared classifier)" : " (separate classifier)") +
                   ", which needs " + bytes_text(want) + " bytes, but the file has " + std::to_string(file_size) +
                   (file_size < want ? " (incomplete download or copy?)" : " (not this layout, or a corrupt header)"));

  // ------------------------------------------------------------------------------------------------------ tensors
  LoadedCheckpoint ck;
  ck.config = config;
  ck.source = path;
  const int64_t D = config.dim, F = config.hidden_dim, L = config.n_layers, V = config.vocab_size;
  const int64_t hd = config.head_dim(), q_rows = config.n_heads * hd, kv_rows = config.n_kv_heads * hd;
  in.clear();
  in.seekg(static_cast<std::streamoff>(h.data_offset));

  // Reads one tensor of `shape` straight into its fp32 storage (the file is read once, never whole in memory twice).
  auto read_tensor = [&](const std::string& name, std::vector<int64_t> shape) {
    torch::Tensor t = torch::empty(shape, torch::kFloat32);
    read_into(in, t.data_ptr<float>(), static_cast<uint64_t>(t.numel()) * 4, path, "tensor " + name);
    ck.tensors[name] = t;
  };
  // The same tensor for every layer, layer after layer (how both layouts store per-layer weights).
  auto read_layers = [&](const std::string& suffix, std::vector<int64_t> shape) {
    for (int64_t i = 0; i < L; ++i) read_tensor("layers." + std::to_string(i) + "." + suffix, shape);
  };

  if (h.version == 0) {
    read_tensor("tok_embeddings.weight", {V, D});
    read_layers("attention_norm.weight", {D});
    read_layers("attention.wq.weight", {q_rows, D});
    read_layers("attention.wk.weight", {kv_rows, D});
    read_layers("attention.wv.weight", {kv_rows, D});
    read_layers("attention.wo.weight", {D, q_rows});
    read_layers("ffn_norm.weight", {D});
    read_layers("feed_forward.w1.weight", {F, D});
    read_layers("feed_forward.w2.weight", {D, F});
    read_layers("feed_forward.w3.weight", {F, D});
    read_tensor("norm.weight", {D});
    // freq_cis_real/imag: a precomputed rotary table; the model computes its own.
    in.seekg(static_cast<std::streamoff>(config.max_seq_len * hd * 4), std::ios::cur);
  } else {
    read_layers("attention_norm.weight", {D});
    read_layers("ffn_norm.weight", {D});
    read_tensor("norm.weight", {D});
    read_tensor("tok_embeddings.weight", {V, D});
    read_layers("attention.wq.weight", {q_rows, D});
    read_layers("attention.wk.weight", {kv_rows, D});
    read_layers("attention.wv.weight", {kv_rows, D});
    read_layers("attention.wo.weight", {D, q_rows});
    read_layers("feed_forward.w1.weight", {F, D});
    read_layers("feed_forward.w2.weight", {D, F});
    read_layers("feed_forward.w3.weight", {F, D});
  }
  if (!h.shared_classifier) read_tensor("output.weight", {V, D});
  return ck;
}

}  // namespace bmos
