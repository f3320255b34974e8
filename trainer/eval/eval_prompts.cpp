#include "trainer/eval/eval_prompts.h"

#include <map>
#include <set>
#include <stdexcept>

namespace bmos {

namespace {

bool python_isspace(uint32_t c) {
  return (c >= 0x09 && c <= 0x0d) || (c >= 0x1c && c <= 0x20) || c == 0x85 || c == 0xa0 || c == 0x1680 ||
         (c >= 0x2000 && c <= 0x200a) || c == 0x2028 || c == 0x2029 || c == 0x202f || c == 0x205f || c == 0x3000;
}

// Decodes the code point starting at byte i (invalid bytes count as themselves, one byte each).
uint32_t decode_at(const std::string& s, size_t i, size_t* len) {
  const auto b = static_cast<unsigned char>(s[i]);
  size_t n = b < 0x80 ? 1 : (b >> 5) == 0x6 ? 2 : (b >> 4) == 0xe ? 3 : (b >> 3) == 0x1e ? 4 : 1;
  if (i + n > s.size()) n = 1;
  uint32_t c = n == 1 ? b : n == 2 ? (b & 0x1f) : n == 3 ? (b & 0x0f) : (b & 0x07);
  for (size_t k = 1; k < n; ++k) c = (c << 6) | (static_cast<unsigned char>(s[i + k]) & 0x3f);
  *len = n;
  return c;
}

// str.replace(old, new): non-overlapping, left to right.
std::string replace_all(const std::string& s, const std::string& from, const std::string& to) {
  std::string out;
  size_t pos = 0;
  while (true) {
    const size_t hit = s.find(from, pos);
    if (hit == std::string::npos) break;
    out.append(s, pos, hit - pos);
    out += to;
    pos = hit + from.size();
  }
  out.append(s, pos, std::string::npos);
  return out;
}

// re.sub("\\[.*?\\]", "", s): each '[' with a later ']' on the line loses everything up to the first such ']'.
std::string remove_brackets(const std::string& s) {
  std::string out;
  size_t pos = 0;
  while (pos < s.size()) {
    const size_t open = s.find('[', pos);
    if (open == std::string::npos) break;
    const size_t close = s.find_first_of("]\n", open + 1);
    if (close == std::string::npos || s[close] == '\n') {
      out.append(s, pos, open + 1 - pos);  // no match at this '[': keep it, try from the next character
      pos = open + 1;
      continue;
    }
    out.append(s, pos, open - pos);
    pos = close + 1;
  }
  out.append(s, pos, std::string::npos);
  return out;
}

// WikiHow's top-level categories, which HellaSwag uses as activity_label for its WikiHow items (ctx_b is empty
// there); every other label is an ActivityNet activity whose ctx_b is the lowercase start of the next caption.
const std::set<std::string>& wikihow_categories() {
  static const std::set<std::string> s = {
      "Arts and Entertainment", "Cars & Other Vehicles", "Computers and Electronics", "Education and Communications",
      "Family Life", "Finance and Business", "Food and Entertaining", "Health", "Hobbies and Crafts",
      "Holidays and Traditions", "Home and Garden", "Home,Categories", "Personal Care and Style", "Pets and Animals",
      "Philosophy and Religion", "Relationships", "Sports and Fitness", "Travel", "Uncategorized", "Work World",
      "Youth"};
  return s;
}

}  // namespace

int64_t python_len(const std::string& utf8) {
  int64_t n = 0;
  for (size_t i = 0; i < utf8.size();) {
    size_t len;
    decode_at(utf8, i, &len);
    i += len;
    ++n;
  }
  return n;
}

std::string python_strip(const std::string& s) {
  size_t begin = 0, end = s.size();
  while (begin < end) {
    size_t len;
    if (!python_isspace(decode_at(s, begin, &len))) break;
    begin += len;
  }
  while (end > begin) {
    // step back to the start of the last code point
    size_t start = end - 1;
    while (start > begin && (static_cast<unsigned char>(s[start]) & 0xc0) == 0x80) --start;
    size_t len;
    const uint32_t c = decode_at(s, start, &len);
    if (start + len != end || !python_isspace(c)) break;
    end = start;
  }
  return s.substr(begin, end - begin);
}

std::string hellaswag_preprocess(const std::string& text) {
  std::string t = python_strip(text);
  t = replace_all(t, " [title]", ". ");
  t = remove_brackets(t);
  t = replace_all(t, "  ", " ");
  return t;
}

std::string hellaswag_query(const std::string& context_line) {
  std::string line = context_line;
  const size_t colon = line.find(": ");
  const std::string label = colon == std::string::npos ? std::string() : line.substr(0, colon);
  if (colon != std::string::npos && !wikihow_categories().count(label)) {
    // ctx_b starts after the last sentence end of the context (ctx_a is whole caption sentences).
    const size_t ctx_start = colon + 2;
    size_t frag = ctx_start;
    for (const char* end : {". ", "? ", "! "}) {
      const size_t k = line.rfind(end);
      if (k != std::string::npos && k >= ctx_start && k + 2 > frag) frag = k + 2;
    }
    if (frag < line.size() && line[frag] >= 'a' && line[frag] <= 'z') line[frag] = static_cast<char>(line[frag] - 32);
  }
  return hellaswag_preprocess(line);
}

const TaskProtocol& task_protocol(const std::string& task) {
  static const std::map<std::string, TaskProtocol> protocols = {
      {"piqa", {"piqa", "acc_norm", true, ""}},
      {"arc_easy", {"arc_easy", "acc_norm", true, ""}},
      {"arc_challenge", {"arc_challenge", "acc_norm", true, ""}},
      {"hellaswag",
       {"hellaswag", "acc_norm", true,
        "llama.cpp text format; harness preprocessing re-applied (ctx_b capitalised, [..] removed)"}},
      {"winogrande", {"winogrande", "acc", false, "partial evaluation (score the text after the blank)"}},
      {"boolq",
       {"boolq", "acc", false,
        "question-only: the data has no passages, prompt 'Question: {q}?\\nAnswer:' (harness: passage first)"}},
  };
  const auto it = protocols.find(task);
  if (it == protocols.end()) throw std::runtime_error("no harness protocol for task '" + task + "'");
  return it->second;
}

PromptedItem harness_prompt(const std::string& task, const TaskRecord& r) {
  PromptedItem p;
  p.label = r.label;
  const auto multiple_choice = [&](const std::string& query, const std::vector<std::string>& choices) {
    for (const auto& c : choices) {
      p.requests.push_back({query, " " + c});
      p.norm_chars.push_back(static_cast<double>(python_len(c)));
    }
  };
  if (task == "piqa" || task == "arc_easy" || task == "arc_challenge") {
    multiple_choice("Question: " + r.context + "\nAnswer:", r.choices);
  } else if (task == "hellaswag") {
    std::vector<std::string> endings;
    for (const auto& e : r.choices) endings.push_back(hellaswag_preprocess(e));
    multiple_choice(hellaswag_query(r.context), endings);
  } else if (task == "winogrande") {
    const size_t blank = r.context.find('_');
    if (blank == std::string::npos) throw std::runtime_error("winogrande record at line " + std::to_string(r.line) +
                                                             " has no '_' blank");
    const std::string target = " " + python_strip(r.context.substr(blank + 1));
    for (const auto& option : r.choices) {
      p.requests.push_back({r.context.substr(0, blank) + option, target});
      p.norm_chars.push_back(static_cast<double>(python_len(target)));
    }
  } else if (task == "boolq") {
    const std::string query = "Question: " + r.context + "?\nAnswer:";
    for (const auto& c : r.choices) {
      p.requests.push_back({query, " " + c});
      p.norm_chars.push_back(static_cast<double>(python_len(c)));
    }
  } else {
    throw std::runtime_error("no harness prompt for task '" + task + "'");
  }
  return p;
}

}  // namespace bmos
