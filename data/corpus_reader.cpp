#include "data/corpus_reader.h"

#include <zlib.h>

#include <cerrno>
#include <cstring>
#include <stdexcept>

#include <nlohmann/json.hpp>

namespace bmos {

namespace {

constexpr size_t kReadChunk = 1 << 20;

bool blank(const std::string& s) {
  for (char c : s)
    if (c != ' ' && c != '\t' && c != '\r' && c != '\n' && c != '\f' && c != '\v') return false;
  return true;
}

}  // namespace

CorpusReader::CorpusReader(const std::string& path, const CorpusOptions& options) : path_(path), opt_(options) {
  if (opt_.format != "text" && opt_.format != "jsonl" && opt_.format != "jsonl.gz")
    throw std::runtime_error(path + ": unknown corpus format '" + opt_.format + "' (use text, jsonl or jsonl.gz)");
  if (opt_.format == "text" && opt_.doc_split != "line" && opt_.doc_split != "blank_line" && opt_.doc_split != "file")
    throw std::runtime_error(path + ": unknown doc_split '" + opt_.doc_split + "' (use line, blank_line or file)");
  gz_ = gzopen(path.c_str(), "rb");
  if (gz_ == nullptr)
    throw std::runtime_error(path + ": cannot open corpus file (" + std::strerror(errno) +
                             "); check data.sources[].files");
  gzbuffer(static_cast<gzFile>(gz_), 1 << 18);
}

CorpusReader::~CorpusReader() {
  if (gz_ != nullptr) gzclose(static_cast<gzFile>(gz_));
}

int64_t CorpusReader::file_offset() const { return gzoffset(static_cast<gzFile>(gz_)); }

bool CorpusReader::next_line(std::string& line) {
  line.clear();
  while (true) {
    const size_t nl = buf_.find('\n', buf_pos_);
    if (nl != std::string::npos) {
      line.append(buf_, buf_pos_, nl - buf_pos_);
      buf_pos_ = nl + 1;
      break;
    }
    line.append(buf_, buf_pos_, std::string::npos);
    buf_.clear();
    buf_pos_ = 0;
    if (eof_) {
      if (line.empty()) return false;
      break;  // last line without '\n'
    }
    buf_.resize(kReadChunk);
    const int n = gzread(static_cast<gzFile>(gz_), buf_.data(), static_cast<unsigned>(kReadChunk));
    if (n < 0) {
      int err = 0;
      const char* msg = gzerror(static_cast<gzFile>(gz_), &err);
      throw std::runtime_error(path_ + ": read error after line " + std::to_string(line_) + " (" + msg +
                               "); a truncated .gz file?");
    }
    buf_.resize(n);
    if (n == 0) eof_ = true;
  }
  ++line_;
  if (!line.empty() && line.back() == '\r') line.pop_back();
  return true;
}

bool CorpusReader::next(std::string& doc) { return opt_.format == "text" ? next_text(doc) : next_json(doc); }

bool CorpusReader::next_text(std::string& doc) {
  doc.clear();
  std::string line;
  if (opt_.doc_split == "line") {
    while (next_line(line))
      if (!blank(line)) {
        doc.swap(line);
        return true;
      }
    return false;
  }
  if (opt_.doc_split == "blank_line") {
    while (next_line(line)) {
      if (blank(line)) {
        if (!doc.empty()) return true;
        continue;
      }
      if (!doc.empty()) doc += '\n';
      doc += line;
    }
    return !doc.empty();
  }
  // file: the whole file, lines joined with '\n' (one document; empty when the file has no text)
  bool any = false;
  while (next_line(line)) {
    if (any) doc += '\n';
    doc += line;
    any = true;
    if (static_cast<int64_t>(doc.size()) > kMaxFileDocumentBytes)
      throw std::runtime_error(path_ + ": doc_split file reads the whole file as one document, and it is over " +
                               std::to_string(kMaxFileDocumentBytes >> 20) + " MB; use doc_split line or blank_line");
  }
  if (blank(doc)) {
    doc.clear();
    return false;
  }
  return any;
}

bool CorpusReader::next_json(std::string& doc) {
  std::string line;
  while (next_line(line)) {
    if (blank(line)) continue;
    std::string problem;
    try {
      auto j = nlohmann::json::parse(line);
      if (!j.is_object()) {
        problem = "not a JSON object";
      } else {
        auto it = j.find(opt_.text_key);
        if (it == j.end()) problem = "no \"" + opt_.text_key + "\" field (set data.sources[].text_key)";
        else if (!it->is_string()) problem = "field \"" + opt_.text_key + "\" is not a string";
        else doc = it->get<std::string>();
      }
    } catch (const nlohmann::json::exception& e) {
      problem = std::string("bad JSON: ") + e.what();
    }
    if (problem.empty()) return true;
    if (!opt_.skip_bad_lines)
      throw std::runtime_error(path_ + ":" + std::to_string(line_) + ": " + problem +
                               " (fix the line, or set skip_bad_lines: true on the source to skip and count such lines)");
    ++bad_lines_;
  }
  return false;
}

}  // namespace bmos
