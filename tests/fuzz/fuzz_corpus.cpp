// Corpus files through CorpusReader (data/corpus_reader.h), plain or gzip (zlib tells them apart): the first byte
// picks the reader's options (format text/jsonl, the text split, skip_bad_lines), the rest is the file.
#include "data/corpus_reader.h"
#include "tests/fuzz/fuzz_target.h"

BMOS_FUZZ_TARGET(corpus) {
  if (size == 0) return 0;
  const uint8_t mode = data[0];
  bmos::CorpusOptions opt;
  opt.format = (mode & 1) ? "jsonl" : "text";
  opt.skip_bad_lines = (mode & 2) != 0;
  const char* splits[] = {"line", "blank_line", "file", "line"};
  opt.doc_split = splits[(mode >> 2) & 3];
  if (mode & 16) opt.text_key = "content";
  const std::string path = bmos_fuzz::write_file("corpus.json.gz", data + 1, size - 1);
  try {
    bmos::CorpusReader reader(path, opt);
    std::string doc;
    while (reader.next(doc)) reader.file_offset();
  } catch (const std::exception& e) {
    bmos_fuzz::refused(e);
  }
  return 0;
}
