#include "trainer/eval/eval_suite.h"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <sstream>
#include <stdexcept>

#include "data/eval/tasks.h"
#include "trainer/eval/ppl_sets.h"

namespace bmos {

namespace {

using Clock = std::chrono::steady_clock;

double since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

// "\r[eval] what done/total unit  elapsed" on stderr, at most ~5 times a second, and a newline at the end.
class ProgressLine {
 public:
  ProgressLine(bool on, std::string what, std::string unit)
      : on_(on), what_(std::move(what)), unit_(std::move(unit)), t0_(Clock::now()), last_(t0_) {}
  void update(int64_t done, int64_t total) {
    if (!on_) return;
    const auto now = Clock::now();
    if (done < total && std::chrono::duration<double>(now - last_).count() < 0.2) return;
    last_ = now;
    const double s = since(t0_);
    const double eta = done > 0 ? s * static_cast<double>(total - done) / static_cast<double>(done) : 0;
    std::fprintf(stderr, "\r[eval] %-14s %lld/%lld %s  %.1fs (eta %.0fs)   ", what_.c_str(),
                 static_cast<long long>(done), static_cast<long long>(total), unit_.c_str(), s, eta);
    if (done >= total) std::fprintf(stderr, "\n");
    std::fflush(stderr);
  }

 private:
  bool on_;
  std::string what_, unit_;
  Clock::time_point t0_, last_;
};

}  // namespace

EvalReport run_eval_suite(LanguageModel& model, const Tokenizer& tok, const EvalConfig& config,
                          const EvalRunOptions& options) {
  const auto t0 = Clock::now();
  EvalReport report;
  report.limit = config.limit;
  report.tasks_dir = config.tasks_dir;
  report.max_length = model.max_seq_len();
  if (tok.vocab_size() > model.vocab_size())
    throw std::runtime_error("tokenizer " + tok.path() + " has " + std::to_string(tok.vocab_size()) +
                             " tokens but the model only " + std::to_string(model.vocab_size()) +
                             " (wrong tokenizer for this model?)");
  for (const PplSet& set : config.ppl) {
    const EvalWindows w = load_eval_windows(set, tok);
    ProgressLine line(options.progress, set.name, "windows");
    PplOptions opt;
    opt.batch_windows = std::max<int64_t>(1, options.token_budget / set.seq_len);
    opt.workers = options.workers;
    opt.progress = [&](int64_t d, int64_t n) { line.update(d, n); };
    report.ppl.push_back(evaluate_perplexity(model, w, set.name, opt));
    report.ppl_sets.push_back(set);
  }
  for (const std::string& task : config.tasks) {
    const auto records = read_task(task, config.tasks_dir, config.limit);
    ProgressLine line(options.progress, task, "requests");
    ZeroShotOptions opt;
    opt.token_budget = options.token_budget;
    opt.share_context = options.share_context;
    opt.workers = options.workers;
    opt.progress = [&](int64_t d, int64_t n) { line.update(d, n); };
    report.tasks.push_back(score_task(model, tok, task, records, opt));
  }
  double sum = 0;
  for (const auto& t : report.tasks) sum += t.reported();
  report.zero_shot_average = report.tasks.empty() ? 0 : sum / static_cast<double>(report.tasks.size());
  report.seconds = since(t0);
  return report;
}

std::string format_eval_table(const EvalReport& r) {
  std::ostringstream out;
  char buf[256];
  if (!r.ppl.empty()) {
    std::snprintf(buf, sizeof buf, "%-14s %8s %8s %12s %10s %8s\n", "perplexity", "seq_len", "windows", "tokens",
                  "ppl", "time");
    out << buf;
    for (const auto& p : r.ppl) {
      std::snprintf(buf, sizeof buf, "%-14s %8lld %8lld %12lld %10.4f %7.1fs\n", p.name.c_str(),
                    static_cast<long long>(p.seq_len), static_cast<long long>(p.windows),
                    static_cast<long long>(p.tokens_scored), p.ppl, p.seconds);
      out << buf;
    }
  }
  if (!r.tasks.empty()) {
    if (!r.ppl.empty()) out << "\n";
    std::snprintf(buf, sizeof buf, "%-14s %8s %8s %8s %8s %8s %8s\n", "zero-shot", "metric", "value", "acc",
                  "acc_norm", "items", "time");
    out << buf;
    for (const auto& t : r.tasks) {
      char norm[32] = "-";
      if (t.has_acc_norm) std::snprintf(norm, sizeof norm, "%.2f", 100 * t.acc_norm);
      std::snprintf(buf, sizeof buf, "%-14s %8s %8.2f %8.2f %8s %8lld %7.1fs\n", t.task.c_str(), t.metric.c_str(),
                    100 * t.reported(), 100 * t.acc, norm, static_cast<long long>(t.items), t.seconds);
      out << buf;
    }
    std::snprintf(buf, sizeof buf, "%-14s %8s %8.2f\n", "average", "", 100 * r.zero_shot_average);
    out << buf;
    out << "(lm-eval-harness 0.3 semantics, 0-shot; max_length " << r.max_length
        << (r.limit > 0 ? "; limit " + std::to_string(r.limit) + " items per task: NOT the full protocol" : "")
        << ")\n";
    for (const auto& t : r.tasks) {
      if (!t.note.empty()) out << "note: " << t.task << ": " << t.note << "\n";
      if (t.truncated > 0)
        out << "note: " << t.task << ": " << t.truncated << " requests longer than max_length + 1 were cut from the left"
            << (t.continuation_clipped > 0 ? ", " + std::to_string(t.continuation_clipped) +
                                                 " of them scored on their last max_length continuation tokens"
                                           : std::string())
            << "\n";
    }
  }
  for (const auto& p : r.ppl) out << "note: " << p.name << ": " << p.protocol << "\n";
  return out.str();
}

nlohmann::json eval_report_json(const EvalReport& r) {
  nlohmann::json j;
  j["seconds"] = r.seconds;
  j["perplexity"] = nlohmann::json::array();
  for (size_t i = 0; i < r.ppl.size(); ++i) {
    const PplResult& p = r.ppl[i];
    const PplSet& s = r.ppl_sets[i];
    j["perplexity"].push_back({{"name", p.name},
                               {"file", s.file},
                               {"format", s.format},
                               {"seq_len", p.seq_len},
                               {"windows", p.windows},
                               {"windows_requested", s.windows},
                               {"tokens_scored", p.tokens_scored},
                               {"nll_sum", p.nll_sum},
                               {"mean_nll", p.nll_sum / static_cast<double>(p.tokens_scored)},
                               {"ppl", p.ppl},
                               {"seconds", p.seconds},
                               {"protocol", p.protocol}});
  }
  j["zero_shot"] = nlohmann::json::array();
  for (const auto& t : r.tasks) {
    nlohmann::json e = {{"task", t.task},
                        {"metric", t.metric},
                        {"value", t.reported()},
                        {"acc", t.acc},
                        {"acc_stderr", t.acc_stderr},
                        {"items", t.items},
                        {"requests", t.requests},
                        {"tokens", t.tokens},
                        {"truncated_requests", t.truncated},
                        {"continuation_clipped_requests", t.continuation_clipped},
                        {"seconds", t.seconds},
                        {"scoring", t.scoring},
                        {"note", t.note}};
    if (t.has_acc_norm) {
      e["acc_norm"] = t.acc_norm;
      e["acc_norm_stderr"] = t.acc_norm_stderr;
    }
    j["zero_shot"].push_back(e);
  }
  if (!r.tasks.empty()) j["zero_shot_average"] = r.zero_shot_average;
  j["protocol"] = {
      {"perplexity", "GPTQ: non-overlapping seq_len windows, NLL of tokens 1..T-1 of each window, sums in double, "
                     "ppl = exp(sum / count)"},
      {"zero_shot", "lm-evaluation-harness 0.3 semantics, 0-shot: loglikelihood of tok_encode(continuation) after "
                    "tok_encode(context) (no BOS), left-truncated to max_length; acc = argmax ll, acc_norm = argmax "
                    "ll / len(choice chars)"},
      {"zero_shot_max_length", r.max_length},
      {"limit", r.limit},
      {"tasks_dir", r.tasks_dir},
      {"average_of", "each task's paper metric: acc_norm for piqa, hellaswag, arc_easy, arc_challenge; acc for "
                     "boolq, winogrande"}};
  return j;
}

}  // namespace bmos
