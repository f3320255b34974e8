// The text a completion streams, built from the byte pieces a tokenizer decodes one token at a time (no torch):
// a UTF-8 character split over several tokens (byte-fallback pieces <0xE2><0x80><0x9C>) is held until it is whole,
// and text that may be the start of a stop string is held until it is known not to be one. The concatenated deltas
// are the whole completion's text, so a streamed answer and a plain one are the same text.
#pragma once

#include <string>
#include <vector>

namespace bmos::serve {

class TextStream {
 public:
  explicit TextStream(std::vector<std::string> stop = {});
  // One token's bytes in; the text now safe to send out (often empty). When a stop string completes, the delta ends
  // just before it and stopped() turns true; later pieces are ignored.
  std::string push(const std::string& piece);
  // Generation ended: what was held back (an incomplete character goes out as it is; the JSON writer turns it into
  // U+FFFD). Empty after a stop string.
  std::string finish();
  bool stopped() const { return stopped_; }

 private:
  std::vector<std::string> stop_;
  std::string bytes_;  // an incomplete UTF-8 character at the end
  std::string held_;   // whole characters that may begin a stop string
  bool stopped_ = false;
};

// Bytes of `s` up to its last complete UTF-8 character (s.size() when nothing is cut or the tail is not UTF-8 at all).
size_t complete_utf8_prefix(const std::string& s);

}  // namespace bmos::serve
