// YAML -> JobConfig. The only file that knows YAML.
#include "trainer/job/job_config.h"

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <sstream>
#include <stdexcept>

#include <yaml-cpp/yaml.h>

#include "kernels/cpu/cpu_isa.h"
#include "modules/device.h"

namespace bmos {
namespace {

namespace fs = std::filesystem;

// One YAML mapping being read: remembers the keys it was asked for, so unknown keys can be reported.
class Section {
 public:
  Section(YAML::Node node, std::string path, const std::string* file, std::map<std::string, std::string>* resolved)
      : node_(node), path_(std::move(path)), file_(file), resolved_(resolved) {
    if (node_ && !node_.IsNull() && !node_.IsMap()) fail(path_, "expected a mapping (key: value pairs)", node_);
  }

  bool has(const std::string& key) {
    seen_.insert(key);
    return node_ && node_.IsMap() && node_[key] && !node_[key].IsNull();
  }

  template <typename T>
  void get(const std::string& key, T& out) {
    if (has(key)) out = convert<T>(node_[key], join(key));
    record(key, out);
  }

  template <typename T>
  void get_list(const std::string& key, std::vector<T>& out) {
    if (has(key)) {
      YAML::Node n = node_[key];
      if (n.IsScalar()) {  // a single value where a list is expected is accepted as a one-element list
        out = {convert<T>(n, join(key))};
      } else {
        if (!n.IsSequence()) fail(join(key), "expected a list", n);
        out.clear();
        for (size_t i = 0; i < n.size(); ++i) out.push_back(convert<T>(n[i], join(key) + "[" + std::to_string(i) + "]"));
      }
    }
    record(key, out);
  }

  // A value as JobConfig::resolved holds it.
  template <typename T>
  static std::string show(const T& v) {
    if constexpr (std::is_same_v<T, std::string>) return v;
    else if constexpr (std::is_same_v<T, bool>) return v ? "true" : "false";
    else if constexpr (std::is_floating_point_v<T>) {  // the shortest text that reads back as the same double
      char buf[32];
      for (int digits = 15; digits <= 17; ++digits) {
        std::snprintf(buf, sizeof buf, "%.*g", digits, double(v));
        if (std::strtod(buf, nullptr) == double(v)) break;
      }
      return buf;
    } else return std::to_string(v);
  }
  template <typename T>
  static std::string show(const std::vector<T>& v) {
    std::string s = "[";
    for (size_t i = 0; i < v.size(); ++i) s += (i ? ", " : "") + show(v[i]);
    return s + "]";
  }
  template <typename T>
  void record(const std::string& key, const T& value) {
    if (resolved_) (*resolved_)[join(key)] = show(value);
  }

  Section sub(const std::string& key) {
    seen_.insert(key);
    return Section(node_ && node_.IsMap() ? node_[key] : YAML::Node(), join(key), file_, resolved_);
  }

  // Sequence of mappings under key.
  std::vector<Section> sub_list(const std::string& key) {
    std::vector<Section> out;
    if (!has(key)) return out;
    YAML::Node n = node_[key];
    if (!n.IsSequence()) fail(join(key), "expected a list of mappings", n);
    for (size_t i = 0; i < n.size(); ++i) out.emplace_back(n[i], join(key) + "[" + std::to_string(i) + "]", file_, resolved_);
    return out;
  }

  // Every key not asked for is an error (typos must not be silently ignored).
  void check_unknown() const {
    if (!node_ || !node_.IsMap()) return;
    for (const auto& kv : node_) {
      const std::string key = kv.first.as<std::string>();
      if (!seen_.count(key)) {
        std::string known;
        for (const auto& k : seen_) known += (known.empty() ? "" : ", ") + k;
        fail(join(key), "unknown key (known keys here: " + known + ")", kv.first);
      }
    }
  }

  [[noreturn]] void fail(const std::string& keypath, const std::string& what, const YAML::Node& at) const {
    std::ostringstream msg;
    msg << *file_;
    if (at && at.Mark().line >= 0) msg << ":" << at.Mark().line + 1;
    msg << ": " << keypath << ": " << what;
    throw std::runtime_error(msg.str());
  }
  [[noreturn]] void fail(const std::string& key, const std::string& what) const {
    fail(join(key), what, node_ && node_.IsMap() && node_[key] ? node_[key] : node_);
  }

 private:
  std::string join(const std::string& key) const { return path_.empty() ? key : path_ + "." + key; }

  template <typename T>
  T convert(const YAML::Node& n, const std::string& keypath) const {
    if (!n.IsScalar()) fail(keypath, "expected a single value", n);
    try {
      if constexpr (std::is_same_v<T, bool>) {
        const std::string s = n.Scalar();
        if (s != "true" && s != "false") throw YAML::BadConversion(n.Mark());
      }
      return n.as<T>();
    } catch (const YAML::BadConversion&) {
      const char* want = std::is_same_v<T, bool>              ? "true or false"
                         : std::is_floating_point_v<T>         ? "a number"
                         : std::is_unsigned_v<T>               ? "a non-negative integer"
                         : std::is_integral_v<T>               ? "an integer"
                                                               : "a string";
      fail(keypath, std::string("expected ") + want + ", got '" + n.Scalar() + "'", n);
    }
  }

  YAML::Node node_;
  std::string path_;
  const std::string* file_;
  std::map<std::string, std::string>* resolved_;  // JobConfig::resolved
  std::set<std::string> seen_;
};

std::string resolve(const std::string& base_dir, const std::string& p) {
  if (p.empty() || base_dir.empty() || fs::path(p).is_absolute()) return p;
  return (fs::path(base_dir) / p).lexically_normal().string();
}

// The job's YAML mapping; errors name the file and line.
YAML::Node load_root(const std::string& text, const std::string& file) {
  YAML::Node root;
  try {
    root = YAML::Load(text);
  } catch (const YAML::ParserException& e) {
    throw std::runtime_error(file + ":" + std::to_string(e.mark.line + 1) + ": not valid YAML: " + e.msg);
  }
  if (!root.IsMap()) throw std::runtime_error(file + ": a job file is a mapping with sections run, teacher, quant, ...");
  return root;
}

}  // namespace

bool teacher_bf16(const std::string& dtype, bool cuda) {
  if (dtype != "auto") return dtype == "bf16";
  return cuda || kernels::cpu_has_bf16_dot();
}

int64_t logit_chunk_tokens(int64_t setting, int64_t vocab_size) {
  if (setting < 0) return 0;
  if (setting > 0) return setting;
  return std::max<int64_t>(1, (int64_t{256} << 20) / (4 * std::max<int64_t>(vocab_size, 1)));
}

JobConfig parse_job(const std::string& text, const std::string& file, const std::string& base_dir) {
  JobConfig job;
  job.file = file;
  job.text = text;
  YAML::Node root = load_root(text, file);
  Section top(root, "", &job.file, &job.resolved);

  Section run = top.sub("run");
  run.get("name", job.run.name);
  run.get("out_dir", job.run.out_dir);
  run.get("seed", job.run.seed);
  run.get("device", job.run.device);
  run.get("threads", job.run.threads);
  run.get("dist_timeout_s", job.run.dist_timeout_s);
  run.get("tensorboard", job.run.tensorboard);
  run.check_unknown();
  if (job.run.name.empty()) job.run.name = fs::path(file).stem().string();
  if (job.run.out_dir.empty()) job.run.out_dir = "runs/" + job.run.name;
  if (!is_device_name(job.run.device)) run.fail("device", "must be cpu, cuda or cuda:N");
  if (job.run.threads < 0) run.fail("threads", "must be >= 0 (0 = all cores)");
  if (job.run.dist_timeout_s < 1) run.fail("dist_timeout_s", "must be >= 1 (seconds)");

  Section teacher = top.sub("teacher");
  teacher.get("format", job.teacher.format);
  teacher.get("path", job.teacher.path);
  teacher.get("dtype", job.teacher.dtype);
  job.teacher.path = resolve(base_dir, job.teacher.path);
  {
    Section init = teacher.sub("init");
    init.get("dim", job.teacher.dim);
    init.get("hidden_dim", job.teacher.hidden_dim);
    init.get("n_layers", job.teacher.n_layers);
    init.get("n_heads", job.teacher.n_heads);
    init.get("n_kv_heads", job.teacher.n_kv_heads);
    init.get("max_seq_len", job.teacher.max_seq_len);
    init.check_unknown();
  }
  teacher.check_unknown();
  if (job.teacher.dtype != "auto" && job.teacher.dtype != "bf16" && job.teacher.dtype != "fp32")
    teacher.fail("dtype", "must be auto, bf16 or fp32");
  static const std::set<std::string> kFormats = {"auto", "llama2c", "hf", "checkpoint", "random"};
  if (!kFormats.count(job.teacher.format)) teacher.fail("format", "must be one of auto, llama2c, hf, checkpoint, random");
  if (job.teacher.format == "random") {
    if (job.teacher.dim <= 0 || job.teacher.n_layers <= 0 || job.teacher.n_heads <= 0)
      teacher.fail("init", "format: random needs init: {dim, hidden_dim, n_layers, n_heads, n_kv_heads, max_seq_len}");
  } else if (job.teacher.path.empty()) {
    teacher.fail("path", "missing: the teacher model file or folder");
  }

  Section tok = top.sub("tokenizer");
  tok.get("kind", job.tokenizer.kind);
  tok.get("path", job.tokenizer.path);
  tok.get("add_bos", job.tokenizer.add_bos);
  tok.get("add_eos", job.tokenizer.add_eos);
  tok.check_unknown();
  job.tokenizer.path = resolve(base_dir, job.tokenizer.path);

  Section quant = top.sub("quant");
  quant.get("method", job.quant.method);
  quant.get("experts", job.quant.experts);
  quant.get_list("layers", job.quant.layers);
  quant.get("init", job.quant.init);
  quant.check_unknown();
  if (job.quant.method != "binarymos" && job.quant.method != "sign" && job.quant.method != "none")
    quant.fail("method", "must be binarymos, sign or none");
  if (job.quant.experts < 1 || job.quant.experts > 64) quant.fail("experts", "must be between 1 and 64");
  if (job.quant.init != "auto" && job.quant.init != "svd" && job.quant.init != "power")
    quant.fail("init", "must be auto, svd or power");

  Section data = top.sub("data");
  data.get("seq_len", job.data.seq_len);
  data.get("cache_dir", job.data.cache_dir);
  for (Section& s : data.sub_list("sources")) {
    DataSource src;
    s.get("name", src.name);
    s.get("format", src.format);
    s.get_list("files", src.files);
    std::string weight = "1";  // a number, or "size": mixed as if the corpora were concatenated
    s.get("weight", weight);
    s.get("text_key", src.text_key);
    s.get("doc_split", src.doc_split);
    s.get("skip_bad_lines", src.skip_bad_lines);
    s.check_unknown();
    if (src.name.empty()) s.fail("name", "missing: every source needs a name");
    if (src.format != "text" && src.format != "jsonl" && src.format != "jsonl.gz")
      s.fail("format", "must be text, jsonl or jsonl.gz");
    if (src.files.empty()) s.fail("files", "missing: a list of corpus files");
    if (weight == "size") {
      src.weight = DataSource::kWeightBySize;
    } else {
      size_t used = 0;
      try {
        src.weight = std::stod(weight, &used);
      } catch (const std::exception&) {
        used = 0;
      }
      if (used != weight.size() || !(src.weight > 0))
        s.fail("weight", "must be a number > 0 or \"size\" (the source's share of blocks, as concatenated corpora "
                         "mix), got '" + weight + "'");
    }
    if (src.doc_split != "line" && src.doc_split != "blank_line" && src.doc_split != "file")
      s.fail("doc_split", "must be line, blank_line or file");
    for (auto& f : src.files) f = resolve(base_dir, f);
    job.data.sources.push_back(std::move(src));
  }
  data.check_unknown();
  if (job.data.seq_len < 2) data.fail("seq_len", "must be >= 2");
  if (job.data.cache_dir.empty())
    job.data.cache_dir = (fs::path(job.run.out_dir).parent_path() / "data-cache").lexically_normal().string();
  else
    job.data.cache_dir = resolve(base_dir, job.data.cache_dir);

  Section gen = top.sub("generate");
  gen.get("out", job.generate.out);
  gen.get("count", job.generate.count);
  gen.get("max_tokens", job.generate.max_tokens);
  gen.get("temperature", job.generate.temperature);
  gen.get("top_p", job.generate.top_p);
  gen.get("seed", job.generate.seed);
  gen.get("batch", job.generate.batch);
  gen.check_unknown();
  job.generate.out = resolve(base_dir, job.generate.out);
  if (job.generate.temperature < 0) gen.fail("temperature", "must be >= 0");
  if (!(job.generate.top_p > 0 && job.generate.top_p <= 1)) gen.fail("top_p", "must be in (0, 1]");

  Section train = top.sub("train");
  train.get("tokens", job.train.tokens);
  train.get("steps", job.train.steps);
  train.get("epochs", job.train.epochs);
  train.get("batch_size", job.train.batch_size);
  train.get("grad_accum", job.train.grad_accum);
  train.get("lr", job.train.lr);
  train.get("lr_scales", job.train.lr_scales);
  train.get("lr_router", job.train.lr_router);
  train.get("weight_decay", job.train.weight_decay);
  if (train.has("betas")) {
    std::vector<double> b;
    train.get_list("betas", b);
    if (b.size() != 2) train.fail("betas", "expected [beta1, beta2]");
    job.train.beta1 = b[0];
    job.train.beta2 = b[1];
  }
  train.record("betas", std::vector<double>{job.train.beta1, job.train.beta2});
  train.get("warmup_ratio", job.train.warmup_ratio);
  train.get("schedule", job.train.schedule);
  train.get("min_lr_ratio", job.train.min_lr_ratio);
  train.get("clip", job.train.clip);
  train.get("log_every", job.train.log_every);
  train.get_list("freeze", job.train.freeze);
  train.get("activation_checkpointing", job.train.activation_checkpointing);
  train.get("shard_optimizer", job.train.shard_optimizer);
  train.get("attention_chunk", job.train.attention_chunk);
  train.get("logit_chunk", job.train.logit_chunk);
  train.check_unknown();
  if (job.train.attention_chunk < 0) train.fail("attention_chunk", "must be >= 0 (0 = the whole sequence at once)");
  if (job.train.logit_chunk < -1) train.fail("logit_chunk", "must be -1 (off), 0 (auto) or a token count");
  if (job.train.batch_size < 1) train.fail("batch_size", "must be >= 1");
  if (job.train.grad_accum < 1) train.fail("grad_accum", "must be >= 1");
  if (!(job.train.lr > 0)) train.fail("lr", "must be > 0");
  if (job.train.warmup_ratio < 0 || job.train.warmup_ratio >= 1) train.fail("warmup_ratio", "must be in [0, 1)");
  if (job.train.schedule != "cosine" && job.train.schedule != "linear" && job.train.schedule != "constant")
    train.fail("schedule", "must be cosine, linear or constant");
  if (job.train.tokens < 0 || job.train.steps < 0) train.fail("tokens", "tokens and steps must be >= 0");
  if (job.train.epochs < 0) train.fail("epochs", "must be >= 0");
  if ((job.train.tokens > 0) + (job.train.steps > 0) + (job.train.epochs > 0) > 1)
    train.fail(job.train.epochs > 0 ? "epochs" : "steps", "set one budget: tokens, steps or epochs");
  if (job.train.log_every < 1) train.fail("log_every", "must be >= 1");

  Section distill = top.sub("distill");
  distill.get("kl", job.distill.kl);
  distill.get("hidden_mse", job.distill.hidden_mse);
  distill.get("ce", job.distill.ce);
  distill.get("temperature", job.distill.temperature);
  distill.get("kl_reduction", job.distill.kl_reduction);
  distill.get("hidden_states", job.distill.hidden_states);
  distill.check_unknown();
  if (job.distill.kl_reduction != "token_mean" && job.distill.kl_reduction != "sequence_sum")
    distill.fail("kl_reduction", "must be token_mean or sequence_sum");
  if (job.distill.hidden_states != "blocks" && job.distill.hidden_states != "hf")
    distill.fail("hidden_states", "must be blocks or hf");
  if (!(job.distill.temperature > 0)) distill.fail("temperature", "must be > 0");

  Section eval = top.sub("eval");
  eval.get("every", job.eval.every);
  for (Section& s : eval.sub_list("ppl")) {
    PplSet p;
    s.get("name", p.name);
    s.get("file", p.file);
    s.get("format", p.format);
    s.get("seq_len", p.seq_len);
    s.get("windows", p.windows);
    s.check_unknown();
    if (p.file.empty()) s.fail("file", "missing: the evaluation text file");
    if (p.name.empty()) p.name = fs::path(p.file).stem().string();
    if (p.format != "wikitext" && p.format != "c4" && p.format != "text") s.fail("format", "must be wikitext, c4 or text");
    if (p.seq_len < 2) s.fail("seq_len", "must be >= 2");
    p.file = resolve(base_dir, p.file);
    job.eval.ppl.push_back(std::move(p));
  }
  eval.get_list("tasks", job.eval.tasks);
  eval.get("tasks_dir", job.eval.tasks_dir);
  eval.get("limit", job.eval.limit);
  eval.check_unknown();
  job.eval.tasks_dir = resolve(base_dir, job.eval.tasks_dir);

  Section ck = top.sub("checkpoint");
  ck.get("every", job.checkpoint.every);
  ck.get("keep", job.checkpoint.keep);
  ck.check_unknown();
  if (job.checkpoint.keep < 1) ck.fail("keep", "must be >= 1");

  top.check_unknown();
  return job;
}

std::string apply_overrides(const std::string& text, const std::vector<std::string>& overrides,
                            const std::string& file) {
  if (overrides.empty()) return text;
  YAML::Node root = load_root(text, file);
  std::string applied;
  for (const std::string& o : overrides) {
    const size_t eq = o.find('=');
    if (eq == std::string::npos || eq == 0)
      throw std::runtime_error("override '" + o + "': expected key.path=value, e.g. quant.experts=2");
    const std::string key = o.substr(0, eq), value = o.substr(eq + 1);
    YAML::Node v;
    try {
      v = YAML::Load(value);
    } catch (const YAML::ParserException& e) {
      throw std::runtime_error("override '" + o + "': value is not valid YAML: " + e.msg);
    }
    std::vector<std::string> parts;
    std::stringstream ks(key);
    for (std::string part; std::getline(ks, part, '.');) {
      if (part.empty()) throw std::runtime_error("override '" + o + "': empty component in key '" + key + "'");
      parts.push_back(part);
    }
    // Walk with references to nodes that stay in the tree (YAML::Node assignment would rebind, not replace).
    std::vector<YAML::Node> path{root};
    for (size_t i = 0; i + 1 < parts.size(); ++i) {
      YAML::Node child = path.back()[parts[i]];
      if (child.IsDefined() && !child.IsMap())
        throw std::runtime_error("override '" + o + "': '" + parts[i] + "' is not a section in " + file);
      if (!child.IsDefined()) path.back()[parts[i]] = YAML::Node(YAML::NodeType::Map);
      path.push_back(path.back()[parts[i]]);
    }
    path.back()[parts.back()] = v;
    applied += (applied.empty() ? "" : "; ") + o;
  }
  YAML::Emitter out;
  out << root;
  return "# " + file + " with overrides: " + applied + "\n" + out.c_str() + "\n";
}

JobConfig load_job(const std::string& path, const std::vector<std::string>& overrides) {
  std::ifstream in(path);
  if (!in) {
    throw std::runtime_error(path + ": cannot open job file (check the path; jobs live in configs/, e.g. "
                             "configs/stories260k_e4.yaml)");
  }
  std::stringstream ss;
  ss << in.rdbuf();
  const std::string text = apply_overrides(ss.str(), overrides, path);
  if (overrides.empty()) return parse_job(text, path, /*base_dir=*/"");
  try {
    return parse_job(text, path, /*base_dir=*/"");
  } catch (const std::runtime_error& e) {  // the YAML was re-emitted: its line numbers are not the file's
    throw std::runtime_error(std::string(e.what()) + " [with --set overrides applied; the line is of the rewritten job]");
  }
}

}  // namespace bmos
