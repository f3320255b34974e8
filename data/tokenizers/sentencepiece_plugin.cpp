// The SentencePiece plugin: a C ABI over libsentencepiece, built as its own MODULE library and dlopen'ed with
// RTLD_LOCAL|RTLD_DEEPBIND (see sentencepiece_abi.h), because libsentencepiece's protobuf and libtorch's protobuf
// segfault when they meet in one symbol namespace. Nothing here may include torch.
#include <sentencepiece_processor.h>

#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "sentencepiece_abi.h"  // same folder: this target has no include path of its own

namespace {

void set_error(char* err, size_t cap, const std::string& msg) {
  if (err == nullptr || cap == 0) return;
  std::strncpy(err, msg.c_str(), cap - 1);
  err[cap - 1] = '\0';
}

// Copies `s` into out (when it fits) and returns its full length, so a caller can retry with a bigger buffer.
int64_t copy_out(const std::string& s, char* out, size_t cap) {
  if (out != nullptr && s.size() <= cap) std::memcpy(out, s.data(), s.size());
  return static_cast<int64_t>(s.size());
}

sentencepiece::SentencePieceProcessor* sp(void* h) { return static_cast<sentencepiece::SentencePieceProcessor*>(h); }

}  // namespace

extern "C" {

int bmos_sp_abi_version() { return BMOS_SP_ABI_VERSION; }

void* bmos_sp_load(const char* path, char* err, size_t err_cap) {
  auto proc = std::make_unique<sentencepiece::SentencePieceProcessor>();
  const auto status = proc->Load(path);
  if (!status.ok()) {
    set_error(err, err_cap, status.ToString());
    return nullptr;
  }
  return proc.release();
}

void bmos_sp_free(void* h) { delete sp(h); }

int64_t bmos_sp_encode(void* h, const char* text, size_t len, int32_t* out, size_t cap) {
  std::vector<int> ids;
  if (!sp(h)->Encode(std::string(text, len), &ids).ok()) return -1;
  if (ids.size() <= cap) {
    for (size_t i = 0; i < ids.size(); ++i) out[i] = ids[i];
  }
  return static_cast<int64_t>(ids.size());
}

int64_t bmos_sp_decode(void* h, const int32_t* ids, size_t n, char* out, size_t cap) {
  std::vector<int> v(ids, ids + n);
  std::string text;
  if (!sp(h)->Decode(v, &text).ok()) return -1;
  return copy_out(text, out, cap);
}

int64_t bmos_sp_id_to_piece(void* h, int32_t id, char* out, size_t cap) {
  if (id < 0 || id >= sp(h)->GetPieceSize()) return -1;
  return copy_out(sp(h)->IdToPiece(id), out, cap);
}

float bmos_sp_score(void* h, int32_t id) { return sp(h)->GetScore(id); }

int32_t bmos_sp_vocab_size(void* h) { return sp(h)->GetPieceSize(); }
int32_t bmos_sp_bos_id(void* h) { return sp(h)->bos_id(); }
int32_t bmos_sp_eos_id(void* h) { return sp(h)->eos_id(); }
int32_t bmos_sp_is_control(void* h, int32_t id) { return sp(h)->IsControl(id) ? 1 : 0; }

}  // extern "C"
