// Zero-shot task files (the ../shared/data/tasks layout) read into plain (context, choices, label) records. The prompt
// each task turns a record into lives with the scorer (trainer/eval/eval_prompts.h); here the fields are as in the files.
//
//   task           file (under tasks_dir)                          context            choices              items
//   piqa           piqa/valid.jsonl + piqa/valid-labels.lst        goal               [sol1, sol2]          1838
//   winogrande     winogrande/dev.jsonl                            sentence (with _)  [option1, option2]    1267
//   hellaswag      hellaswag/hellaswag_val_full.txt.bz2            "label: ctx" line  4 endings            10042
//   arc_easy       arc_easy/test.jsonl                             question           choices (3-5)         2376
//   arc_challenge  arc_challenge/test.jsonl                        question           choices (3-5)         1172
//   boolq          boolq/dev.questions_only.jsonl                  question           ["no", "yes"]         3270
//
// HellaSwag is the llama.cpp text format (6 lines per item: context, gold index, 4 endings; klosax/hellaswag_text_data),
// read from the .bz2 with libbz2 (or a plain .txt). BoolQ there has no passages. Every malformed record is an error
// naming the file and line. No torch here.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace bmos {

struct TaskRecord {
  std::string context;
  std::vector<std::string> choices;
  int label = 0;       // index into choices
  int64_t line = 0;    // 1-based line of the record in its file (the first line for multi-line records)
};

// The six task names above, in the paper's table order.
const std::vector<std::string>& zero_shot_task_names();

// Reads `name` from tasks_dir (the layout above). limit > 0 keeps the first `limit` records. Throws
// std::runtime_error "FILE:LINE: what is wrong" for a malformed record, naming the file for a missing one, and listing
// the known names for an unknown task.
std::vector<TaskRecord> read_task(const std::string& name, const std::string& tasks_dir, int64_t limit = 0);

// The readers behind read_task, one per file format (exposed for tests on hand-made files).
std::vector<TaskRecord> read_piqa(const std::string& jsonl_path, const std::string& labels_path);
std::vector<TaskRecord> read_winogrande(const std::string& jsonl_path);
std::vector<TaskRecord> read_hellaswag(const std::string& path);  // .txt.bz2 or .txt
std::vector<TaskRecord> read_arc(const std::string& jsonl_path);
std::vector<TaskRecord> read_boolq(const std::string& jsonl_path);

}  // namespace bmos
