#include "data/eval/tasks.h"

#include <bzlib.h>

#include <filesystem>
#include <fstream>
#include <stdexcept>

#include <nlohmann/json.hpp>

namespace bmos {

namespace {

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

std::string read_bytes(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f)
    throw std::runtime_error(path + ": cannot open task file (expected the ../shared/data/tasks layout; pass "
                                    "--tasks_dir DIR)");
  return std::string(std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>());
}

// bunzip2 of a whole file (concatenated streams included, as bzip2 -dc does).
std::string bunzip2(const std::string& path) {
  const std::string in = read_bytes(path);
  std::string out;
  size_t consumed = 0;
  char buf[1 << 16];
  while (consumed < in.size()) {
    bz_stream s{};
    if (BZ2_bzDecompressInit(&s, 0, 0) != BZ_OK) throw std::runtime_error(path + ": libbz2 init failed");
    s.next_in = const_cast<char*>(in.data() + consumed);
    s.avail_in = static_cast<unsigned>(in.size() - consumed);
    int rc = BZ_OK;
    while (rc == BZ_OK) {
      s.next_out = buf;
      s.avail_out = sizeof buf;
      rc = BZ2_bzDecompress(&s);
      out.append(buf, sizeof buf - s.avail_out);
      if (rc == BZ_OK && s.avail_in == 0 && s.avail_out != 0) {
        BZ2_bzDecompressEnd(&s);
        throw std::runtime_error(path + ": truncated bzip2 stream (re-copy the file)");
      }
    }
    const size_t used = (in.size() - consumed) - s.avail_in;
    BZ2_bzDecompressEnd(&s);
    if (rc != BZ_STREAM_END)
      throw std::runtime_error(path + ": corrupt bzip2 data (libbz2 error " + std::to_string(rc) + ")");
    consumed += used;
  }
  return out;
}

// Lines of a file (a trailing newline does not start an extra line; '\r' before '\n' is dropped).
std::vector<std::string> read_lines(const std::string& path) {
  const std::string data = ends_with(path, ".bz2") ? bunzip2(path) : read_bytes(path);
  std::vector<std::string> lines;
  size_t pos = 0;
  while (pos < data.size()) {
    size_t end = data.find('\n', pos);
    if (end == std::string::npos) end = data.size();
    std::string line = data.substr(pos, end - pos);
    if (!line.empty() && line.back() == '\r') line.pop_back();
    lines.push_back(std::move(line));
    pos = end + 1;
  }
  return lines;
}

[[noreturn]] void bad(const std::string& path, int64_t line, const std::string& what) {
  throw std::runtime_error(path + ":" + std::to_string(line) + ": " + what);
}

// Calls fn(json, line_no) for every line of a JSON-lines file; blank lines are errors (they shift labels files).
template <typename Fn>
void for_each_json_line(const std::string& path, Fn fn) {
  const auto lines = read_lines(path);
  if (lines.empty()) throw std::runtime_error(path + ": empty task file");
  for (size_t i = 0; i < lines.size(); ++i) {
    const int64_t line_no = static_cast<int64_t>(i) + 1;
    nlohmann::json j;
    try {
      j = nlohmann::json::parse(lines[i]);
    } catch (const nlohmann::json::exception& e) {
      bad(path, line_no, std::string("not valid JSON (") + e.what() + ")");
    }
    if (!j.is_object()) bad(path, line_no, "expected a JSON object");
    fn(j, line_no);
  }
}

std::string get_string(const nlohmann::json& j, const char* key, const std::string& path, int64_t line) {
  if (!j.contains(key)) bad(path, line, std::string("missing field \"") + key + "\"");
  if (!j[key].is_string()) bad(path, line, std::string("field \"") + key + "\" must be a string");
  return j[key].get<std::string>();
}

}  // namespace

const std::vector<std::string>& zero_shot_task_names() {
  static const std::vector<std::string> names = {"piqa", "arc_easy", "arc_challenge", "hellaswag", "winogrande",
                                                 "boolq"};
  return names;
}

std::vector<TaskRecord> read_piqa(const std::string& jsonl_path, const std::string& labels_path) {
  std::vector<TaskRecord> out;
  for_each_json_line(jsonl_path, [&](const nlohmann::json& j, int64_t line) {
    TaskRecord r;
    r.context = get_string(j, "goal", jsonl_path, line);
    r.choices = {get_string(j, "sol1", jsonl_path, line), get_string(j, "sol2", jsonl_path, line)};
    r.line = line;
    out.push_back(std::move(r));
  });
  const auto labels = read_lines(labels_path);
  if (labels.size() != out.size())
    throw std::runtime_error(labels_path + ": " + std::to_string(labels.size()) + " labels for " +
                             std::to_string(out.size()) + " questions in " + jsonl_path +
                             " (the files must be line-aligned)");
  for (size_t i = 0; i < labels.size(); ++i) {
    if (labels[i] != "0" && labels[i] != "1")
      bad(labels_path, static_cast<int64_t>(i) + 1, "label must be 0 or 1, got '" + labels[i] + "'");
    out[i].label = labels[i] == "1" ? 1 : 0;
  }
  return out;
}

std::vector<TaskRecord> read_winogrande(const std::string& jsonl_path) {
  std::vector<TaskRecord> out;
  for_each_json_line(jsonl_path, [&](const nlohmann::json& j, int64_t line) {
    TaskRecord r;
    r.context = get_string(j, "sentence", jsonl_path, line);
    if (r.context.find('_') == std::string::npos) bad(jsonl_path, line, "sentence has no '_' blank");
    r.choices = {get_string(j, "option1", jsonl_path, line), get_string(j, "option2", jsonl_path, line)};
    const std::string answer = get_string(j, "answer", jsonl_path, line);
    if (answer != "1" && answer != "2") bad(jsonl_path, line, "answer must be \"1\" or \"2\", got \"" + answer + "\"");
    r.label = answer == "1" ? 0 : 1;
    r.line = line;
    out.push_back(std::move(r));
  });
  return out;
}

std::vector<TaskRecord> read_hellaswag(const std::string& path) {
  const auto lines = read_lines(path);
  if (lines.empty()) throw std::runtime_error(path + ": empty task file");
  if (lines.size() % 6 != 0)
    throw std::runtime_error(path + ": " + std::to_string(lines.size()) +
                             " lines is not a multiple of 6 (llama.cpp hellaswag format: context, gold index 0-3, "
                             "4 endings per item); the last item is incomplete or a line was split");
  std::vector<TaskRecord> out;
  out.reserve(lines.size() / 6);
  for (size_t i = 0; i < lines.size(); i += 6) {
    TaskRecord r;
    r.line = static_cast<int64_t>(i) + 1;
    r.context = lines[i];
    if (r.context.empty()) bad(path, r.line, "empty context line");
    const std::string& g = lines[i + 1];
    if (g.size() != 1 || g[0] < '0' || g[0] > '3')
      bad(path, r.line + 1, "gold index must be one of 0-3, got '" + g + "' (are the 6-line items misaligned?)");
    r.label = g[0] - '0';
    r.choices.assign(lines.begin() + static_cast<int64_t>(i) + 2, lines.begin() + static_cast<int64_t>(i) + 6);
    out.push_back(std::move(r));
  }
  return out;
}

std::vector<TaskRecord> read_arc(const std::string& jsonl_path) {
  std::vector<TaskRecord> out;
  for_each_json_line(jsonl_path, [&](const nlohmann::json& j, int64_t line) {
    TaskRecord r;
    r.context = get_string(j, "question", jsonl_path, line);
    if (!j.contains("choices") || !j["choices"].is_array()) bad(jsonl_path, line, "\"choices\" must be an array");
    for (const auto& c : j["choices"]) {
      if (!c.is_string()) bad(jsonl_path, line, "every choice must be a string");
      r.choices.push_back(c.get<std::string>());
    }
    if (r.choices.size() < 2) bad(jsonl_path, line, "needs at least 2 choices");
    if (!j.contains("label") || !j["label"].is_number_integer())
      bad(jsonl_path, line, "\"label\" must be an integer (0-based index into choices)");
    const int64_t label = j["label"].get<int64_t>();
    if (label < 0 || label >= static_cast<int64_t>(r.choices.size()))
      bad(jsonl_path, line, "label " + std::to_string(label) + " is out of range for " +
                                std::to_string(r.choices.size()) + " choices");
    r.label = static_cast<int>(label);
    r.line = line;
    out.push_back(std::move(r));
  });
  return out;
}

std::vector<TaskRecord> read_boolq(const std::string& jsonl_path) {
  std::vector<TaskRecord> out;
  for_each_json_line(jsonl_path, [&](const nlohmann::json& j, int64_t line) {
    TaskRecord r;
    r.context = get_string(j, "question", jsonl_path, line);
    if (!j.contains("answer") || !j["answer"].is_boolean()) bad(jsonl_path, line, "\"answer\" must be true or false");
    r.choices = {"no", "yes"};  // index 0 on a tie: the harness predicts yes only when ll(yes) > ll(no)
    r.label = j["answer"].get<bool>() ? 1 : 0;
    r.line = line;
    out.push_back(std::move(r));
  });
  return out;
}

std::vector<TaskRecord> read_task(const std::string& name, const std::string& tasks_dir, int64_t limit) {
  namespace fs = std::filesystem;
  const auto at = [&](const std::string& rel) { return (fs::path(tasks_dir) / rel).string(); };
  std::vector<TaskRecord> records;
  if (name == "piqa") {
    records = read_piqa(at("piqa/valid.jsonl"), at("piqa/valid-labels.lst"));
  } else if (name == "winogrande") {
    records = read_winogrande(at("winogrande/dev.jsonl"));
  } else if (name == "hellaswag") {
    const std::string bz = at("hellaswag/hellaswag_val_full.txt.bz2"), txt = at("hellaswag/hellaswag_val_full.txt");
    records = read_hellaswag(fs::exists(bz) || !fs::exists(txt) ? bz : txt);
  } else if (name == "arc_easy" || name == "arc_challenge") {
    records = read_arc(at(name + "/test.jsonl"));
  } else if (name == "boolq") {
    records = read_boolq(at("boolq/dev.questions_only.jsonl"));
  } else {
    std::string known;
    for (const auto& n : zero_shot_task_names()) known += (known.empty() ? "" : ", ") + n;
    throw std::runtime_error("unknown zero-shot task '" + name + "' (known: " + known + ")");
  }
  if (limit > 0 && static_cast<int64_t>(records.size()) > limit) records.resize(static_cast<size_t>(limit));
  return records;
}

}  // namespace bmos
