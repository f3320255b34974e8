// Reader for llama2.c checkpoint files (https://github.com/karpathy/llama2.c, export.py / run.c), fp32 only.
//
// Legacy ("version 0") layout:
//   7 x int32   dim, hidden_dim, n_layers, n_heads, n_kv_heads, vocab_size, seq_len
//               (vocab_size < 0 means an unshared classifier: wcls follows at the end)
//   fp32        token_embedding (vocab, dim), rms_att (L, dim), wq (L, H*hd, dim), wk (L, KV*hd, dim),
//               wv (L, KV*hd, dim), wo (L, dim, H*hd), rms_ffn (L, dim), w1 (L, hidden, dim), w2 (L, dim, hidden),
//               w3 (L, hidden, dim), rms_final (dim), freq_cis_real (seq_len, hd/2), freq_cis_imag (idem),
//               [wcls (vocab, dim)]
// Version 1 ("ak42") layout:
//   uint32 magic 0x616b3432, int32 version = 1, 7 x int32 as above (vocab_size > 0), uint8 shared_classifier,
//   zero padding to 256 bytes; then fp32 rms_att (L, dim), rms_ffn (L, dim), rms_final (dim), tok_embeddings,
//   wq, wk, wv, wo, w1, w2, w3 (shapes as above), [wcls]. No freq_cis.
// Every matrix is stored row-major as torch's (out, in) weight; q/k rows keep Meta's interleaved rotary pairs, which
// is our canonical layout (modules/io/state_dict.h), so no permutation is needed.
#pragma once

#include <string>

#include "modules/io/state_dict.h"

namespace bmos {

// Reads either layout (told apart by the magic). The file size is checked against the header before any weight is
// read; a missing, truncated or unrecognised file is an error that names the path and says what was expected.
LoadedCheckpoint read_llama2c(const std::string& path);

}  // namespace bmos
