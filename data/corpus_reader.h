// Streaming readers of corpus files, one document at a time, in bounded memory (a 300 MB C4 shard is read through a
// 1 MB buffer). Every file is opened through zlib, so gzip-compressed files (`.json.gz`) and plain ones read alike.
//   text   documents are lines (doc_split line), paragraphs separated by blank lines (blank_line), or the whole file
//          (file); blank (whitespace-only) lines are never documents. A trailing '\r' is dropped from every line.
//   jsonl  one JSON object per line; the document is its string field `text_key`. A malformed line (not JSON, not an
//          object, no such string field) is an error "FILE:LINE: ..." unless skip_bad_lines, which skips and counts it.
//          Blank lines are skipped.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

namespace bmos {

struct CorpusOptions {
  std::string format = "text";      // text | jsonl | jsonl.gz (jsonl.gz is jsonl: compression is detected)
  std::string text_key = "text";    // jsonl field holding the document
  std::string doc_split = "line";   // text only: line | blank_line | file
  bool skip_bad_lines = false;      // jsonl only: count and skip malformed lines instead of failing
};

class CorpusReader {
 public:
  // Throws std::runtime_error "PATH: cannot open ..." for a missing/unreadable file, and for a bad format or split.
  CorpusReader(const std::string& path, const CorpusOptions& options);
  ~CorpusReader();
  CorpusReader(const CorpusReader&) = delete;
  CorpusReader& operator=(const CorpusReader&) = delete;

  // The next document into `doc`; false at the end of the file.
  bool next(std::string& doc);

  int64_t line() const { return line_; }                // lines read so far
  int64_t bad_lines() const { return bad_lines_; }      // malformed lines skipped (skip_bad_lines)
  int64_t file_offset() const;                          // position in the file on disk (compressed bytes for .gz)
  const std::string& path() const { return path_; }

  // Largest document `file` split reads (a whole-file document must fit in memory): bigger files need line splits.
  static constexpr int64_t kMaxFileDocumentBytes = int64_t(1) << 30;

 private:
  bool next_line(std::string& line);  // false at the end of the file
  bool next_text(std::string& doc);
  bool next_json(std::string& doc);

  std::string path_;
  CorpusOptions opt_;
  void* gz_ = nullptr;  // gzFile, kept out of this header
  std::string buf_;
  size_t buf_pos_ = 0;
  bool eof_ = false;
  int64_t line_ = 0, bad_lines_ = 0;
};

}  // namespace bmos
