#include "trainer/serve/text_stream.h"

#include <algorithm>

namespace bmos::serve {

size_t complete_utf8_prefix(const std::string& s) {
  // Walk back over at most 3 continuation bytes (10xxxxxx) to the byte that starts the last character.
  const size_t n = s.size();
  for (size_t back = 1; back <= std::min<size_t>(4, n); ++back) {
    const unsigned char c = s[n - back];
    if ((c & 0xC0) == 0x80) continue;
    const size_t need = c < 0x80 ? 1 : (c & 0xE0) == 0xC0 ? 2 : (c & 0xF0) == 0xE0 ? 3 : (c & 0xF8) == 0xF0 ? 4 : 1;
    return back < need ? n - back : n;
  }
  return n;
}

TextStream::TextStream(std::vector<std::string> stop) : stop_(std::move(stop)) {}

std::string TextStream::push(const std::string& piece) {
  if (stopped_) return "";
  bytes_ += piece;
  const size_t whole = complete_utf8_prefix(bytes_);
  held_.append(bytes_, 0, whole);
  bytes_.erase(0, whole);
  // The earliest stop string now in the held text (none ends in text already sent: its start would still be held).
  size_t at = std::string::npos;
  for (const auto& s : stop_) at = std::min(at, held_.find(s));
  if (at != std::string::npos) {
    stopped_ = true;
    std::string out = held_.substr(0, at);
    held_.clear();
    bytes_.clear();
    return out;
  }
  // Keep the longest tail that is a proper prefix of some stop string.
  size_t keep = 0;
  for (const auto& s : stop_)
    for (size_t k = std::min(s.size() - 1, held_.size()); k > keep; --k)
      if (held_.compare(held_.size() - k, k, s, 0, k) == 0) {
        keep = k;
        break;
      }
  std::string out = held_.substr(0, held_.size() - keep);
  held_.erase(0, held_.size() - keep);
  return out;
}

std::string TextStream::finish() {
  if (stopped_) return "";
  std::string out = held_ + bytes_;
  held_.clear();
  bytes_.clear();
  return out;
}

}  // namespace bmos::serve
