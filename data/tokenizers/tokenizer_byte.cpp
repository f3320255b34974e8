#include "data/tokenizers/tokenizer_byte.h"

namespace bmos {
namespace {

constexpr int32_t kOffset = 3;

class ByteTokenizer : public Tokenizer {
 public:
  std::vector<int32_t> encode(const std::string& text) const override {
    std::vector<int32_t> ids(text.size());
    for (size_t i = 0; i < text.size(); ++i) ids[i] = kOffset + static_cast<unsigned char>(text[i]);
    return ids;
  }
  std::string decode(const std::vector<int32_t>& ids) const override {
    std::string s;
    for (int32_t id : ids)
      if (id >= kOffset && id < kOffset + 256) s.push_back(static_cast<char>(id - kOffset));
    return s;
  }
  std::string decode_piece(int32_t, int32_t id) const override { return decode({id}); }
  int32_t vocab_size() const override { return kOffset + 256; }
  int32_t bos_id() const override { return 1; }
  int32_t eos_id() const override { return 2; }
  std::string hash() const override { return "byte-tokenizer-v1"; }
  std::string kind() const override { return "byte"; }
  std::string path() const override { return ""; }
};

}  // namespace

std::unique_ptr<Tokenizer> make_byte_tokenizer() { return std::make_unique<ByteTokenizer>(); }

}  // namespace bmos
