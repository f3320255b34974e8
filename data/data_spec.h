// What the data step is asked to prepare: the corpus sources and where their token shards go. The job file's data:
// section becomes this struct (trainer/job/job_data.h); the data step never sees the job itself.
#pragma once

#include <string>
#include <vector>

namespace bmos {

struct DataSource {
  std::string name;                  // data.sources[i].name
  std::string format = "text";       // data.sources[i].format   text | jsonl | jsonl.gz (json lines with "text")
  std::vector<std::string> files;    // data.sources[i].files
  double weight = 1.0;               // data.sources[i].weight   share of training blocks, or "size" (kWeightBySize):
                                     //   the source's blocks, so sources mix as if concatenated (the paper's data)
  static constexpr double kWeightBySize = -1.0;
  std::string text_key = "text";     // data.sources[i].text_key
  std::string doc_split = "line";    // data.sources[i].doc_split (format text) line | blank_line | file
  bool skip_bad_lines = false;       // data.sources[i].skip_bad_lines  count and skip malformed json lines
};

struct DataSpec {
  std::vector<DataSource> sources;   // in the job's order: the mixture's source indices
  std::string cache_dir;             // folder of the token shards (required)
  std::string origin;                // where the sources were named (the job file), for error messages
};

}  // namespace bmos
