// The C ABI between binarymos and its SentencePiece plugin (libbmos_sentencepiece.so, data/tokenizers/sentencepiece_plugin.cpp).
// The plugin is opened with dlopen(RTLD_NOW|RTLD_LOCAL|RTLD_DEEPBIND) so that libsentencepiece's protobuf never meets
// libtorch's. Strings cross as (pointer, length); functions that fill a caller buffer return the full length needed
// (or -1 on failure) and write only when it fits, so the caller retries once with a bigger buffer.
// Bump BMOS_SP_ABI_VERSION whenever a signature below changes.
#pragma once

#include <cstddef>
#include <cstdint>

#define BMOS_SP_ABI_VERSION 1

extern "C" {
int bmos_sp_abi_version();
// Returns a handle, or nullptr with the library's message in err.
void* bmos_sp_load(const char* path, char* err, size_t err_cap);
void bmos_sp_free(void* handle);
// Ids of text (no BOS/EOS): the count, written to out when count <= cap; -1 when the library fails.
int64_t bmos_sp_encode(void* handle, const char* text, size_t len, int32_t* out, size_t cap);
// The library's own decode of a whole id sequence (bytes needed; written when they fit).
int64_t bmos_sp_decode(void* handle, const int32_t* ids, size_t n, char* out, size_t cap);
// The raw piece (with U+2581 for spaces); -1 for an id out of range.
int64_t bmos_sp_id_to_piece(void* handle, int32_t id, char* out, size_t cap);
float bmos_sp_score(void* handle, int32_t id);
int32_t bmos_sp_vocab_size(void* handle);
int32_t bmos_sp_bos_id(void* handle);
int32_t bmos_sp_eos_id(void* handle);
int32_t bmos_sp_is_control(void* handle, int32_t id);
}
