// The zero-shot prompts of lm-evaluation-harness 0.3 (tasks/piqa.py, arc.py, hellaswag.py, winogrande.py,
// superglue.py BoolQ, base.py MultipleChoiceTask), turning a TaskRecord into one loglikelihood request per choice.
//
//   piqa          "Question: {goal}\nAnswer:"                       + " {sol}"
//   arc_*         "Question: {question}\nAnswer:"                   + " {choice}"
//   hellaswag     preprocess(label + ": " + ctx_a + " " + ctx_b.capitalize())  + " " + preprocess(ending)
//   winogrande    sentence[:idx("_")] + option  (partial evaluation) + " " + sentence[idx("_")+1:].strip()
//   boolq         "Question: {question}?\nAnswer:"                  + " yes" / " no"
//                 (the harness prompt is "{passage}\nQuestion: {question}?\nAnswer:"; our file has no passages, so
//                 BoolQ is scored question-only and every report says so)
//
// acc_norm divides by the length in characters (Python len: code points) of the choice text without the leading space,
// as MultipleChoiceTask does. No torch here.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "data/eval/tasks.h"

namespace bmos {

struct LoglikRequest {
  std::string context;       // conditioned on (harness: context_enc = tok_encode(context))
  std::string continuation;  // scored (harness: continuation_enc = tok_encode(continuation)), leading space included
};

struct PromptedItem {
  std::vector<LoglikRequest> requests;  // one per choice
  std::vector<double> norm_chars;       // acc_norm denominators, one per choice
  int label = 0;
};

struct TaskProtocol {
  std::string name;
  std::string metric;     // the number the paper reports: "acc_norm" or "acc"
  bool has_acc_norm;      // the harness reports acc_norm for this task
  std::string note;       // protocol remarks that belong in every report
};

// Throws std::runtime_error for an unknown task name.
const TaskProtocol& task_protocol(const std::string& task);
PromptedItem harness_prompt(const std::string& task, const TaskRecord& record);

// Pieces of the protocol, exposed for tests.
int64_t python_len(const std::string& utf8);                 // code points
std::string python_strip(const std::string& s);              // str.strip() (ASCII and Unicode whitespace)
std::string hellaswag_preprocess(const std::string& text);   // HellaSwag.preprocess
// The harness query from a llama.cpp-format context line ("label: ctx_a ctx_b", already partly preprocessed):
// capitalizes ctx_b (the trailing caption fragment of ActivityNet items; WikiHow items have an empty ctx_b) and applies
// hellaswag_preprocess.
std::string hellaswag_query(const std::string& context_line);

}  // namespace bmos
