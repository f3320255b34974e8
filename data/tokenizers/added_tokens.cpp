#include "data/tokenizers/added_tokens.h"

#include <algorithm>

namespace bmos {

void AddedTokens::add(const std::string& content, int32_t id) {
  auto& bucket = by_first_byte_[static_cast<unsigned char>(content[0])];
  bucket.emplace_back(content, id);
  std::stable_sort(bucket.begin(), bucket.end(),
                   [](const auto& a, const auto& b) { return a.first.size() > b.first.size(); });
  ++count_;
}

std::vector<AddedTokens::Segment> AddedTokens::split(const std::string& text) const {
  std::vector<Segment> out;
  size_t plain = 0;  // start of the current plain segment
  for (size_t i = 0; i < text.size();) {
    const auto& bucket = by_first_byte_[static_cast<unsigned char>(text[i])];
    const auto it = std::find_if(bucket.begin(), bucket.end(),
                                 [&](const auto& t) { return text.compare(i, t.first.size(), t.first) == 0; });
    if (it == bucket.end()) {
      ++i;
      continue;
    }
    if (i > plain) out.push_back({plain, i - plain, -1});
    out.push_back({i, it->first.size(), it->second});
    i += it->first.size();
    plain = i;
  }
  if (text.size() > plain) out.push_back({plain, text.size() - plain, -1});
  return out;
}

}  // namespace bmos
