#include "data/prepare.h"

#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <deque>
#include <filesystem>
#include <condition_variable>
#include <exception>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <thread>

#include "data/hash.h"

namespace bmos {

namespace fs = std::filesystem;

namespace {

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

// One status line on stderr: rewritten in place on a terminal, a line every 10 s otherwise (logs stay short).
class ProgressLine {
 public:
  explicit ProgressLine(bool enabled) : enabled_(enabled), tty_(isatty(fileno(stderr)) != 0) {}
  void update(const std::string& text, bool final = false) {
    if (!enabled_) return;
    const double since = seconds_since(last_);
    if (!final && since < (tty_ ? 0.5 : 10.0)) return;
    last_ = Clock::now();
    if (tty_) std::fprintf(stderr, "\r%s\033[K%s", text.c_str(), final ? "\n" : "");
    else std::fprintf(stderr, "%s\n", text.c_str());
    std::fflush(stderr);
  }

 private:
  bool enabled_, tty_;
  Clock::time_point last_ = Clock::now();
};

std::string short_hash(const std::string& h) { return h.substr(0, 12); }

std::string reader_signature(const CorpusOptions& c) {
  if (c.format == "text") return "text doc_split=" + c.doc_split;
  return "jsonl text_key=" + c.text_key + " skip_bad_lines=" + (c.skip_bad_lines ? "1" : "0");
}

struct FileStamp {
  std::string path;  // absolute, normalised
  int64_t size = 0, mtime = 0;
};

FileStamp stamp(const std::string& file) {
  struct stat st {};
  if (stat(file.c_str(), &st) != 0) throw std::runtime_error(file + ": corpus file not found (check data.sources[].files)");
  return {fs::absolute(file).lexically_normal().string(), static_cast<int64_t>(st.st_size),
          static_cast<int64_t>(st.st_mtime)};
}

struct Batch {
  std::vector<std::string> docs;
  std::vector<int64_t> sizes;  // bytes of each document's text
  std::vector<std::vector<int32_t>> ids;
  int64_t text_bytes = 0;
};

// Long-lived tokenizer workers (so per-thread word caches stay warm across batches) that hand batches back in
// submission order. At most `workers + 1` batches are pending: memory stays bounded whatever the file size.
class EncodePool {
 public:
  EncodePool(const Tokenizer& tok, int workers) : tok_(tok), limit_(static_cast<size_t>(workers) + 1) {
    for (int i = 0; i < workers; ++i) threads_.emplace_back([this] { work(); });
  }
  ~EncodePool() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      stop_ = true;
    }
    cv_.notify_all();
    for (auto& t : threads_) t.join();
  }
  bool full() {
    std::lock_guard<std::mutex> lock(mu_);
    return order_.size() >= limit_;
  }
  bool empty() {
    std::lock_guard<std::mutex> lock(mu_);
    return order_.empty();
  }
  void submit(Batch b) {
    auto slot = std::make_shared<Slot>();
    slot->batch = std::move(b);
    {
      std::lock_guard<std::mutex> lock(mu_);
      order_.push_back(slot);
      todo_.push_back(slot);
    }
    cv_.notify_all();
  }
  // The oldest submitted batch, tokenized (waits for it); rethrows a worker's exception.
  Batch take() {
    std::unique_lock<std::mutex> lock(mu_);
    cv_.wait(lock, [&] { return order_.front()->done; });
    auto slot = order_.front();
    order_.pop_front();
    if (slot->error) std::rethrow_exception(slot->error);
    return std::move(slot->batch);
  }

 private:
  struct Slot {
    Batch batch;
    bool done = false;
    std::exception_ptr error;
  };
  void work() {
    while (true) {
      std::shared_ptr<Slot> slot;
      {
        std::unique_lock<std::mutex> lock(mu_);
        cv_.wait(lock, [&] { return stop_ || !todo_.empty(); });
        if (stop_) return;
        slot = todo_.front();
        todo_.pop_front();
      }
      try {
        Batch& b = slot->batch;
        b.ids.reserve(b.docs.size());
        for (const auto& d : b.docs) b.ids.push_back(tok_.encode(d));
        b.docs = std::vector<std::string>();
      } catch (...) {
        slot->error = std::current_exception();
      }
      {
        std::lock_guard<std::mutex> lock(mu_);
        slot->done = true;
      }
      cv_.notify_all();
    }
  }

  const Tokenizer& tok_;
  const size_t limit_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::shared_ptr<Slot>> order_, todo_;
  std::vector<std::thread> threads_;
  bool stop_ = false;
};

constexpr int64_t kBatchBytes = 256 << 10;
constexpr size_t kBatchDocs = 8192;

std::string mb(double bytes) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.1f MB", bytes / 1e6);
  return buf;
}

}  // namespace

std::string shard_path(const std::string& cache_dir, const std::string& source_name, const std::string& file) {
  Sha256 h;
  h.update(fs::absolute(file).lexically_normal().string());
  const std::string tag = h.hex().substr(0, 8);
  return (fs::path(cache_dir) / source_name / (fs::path(file).filename().string() + "." + tag + ".h5")).string();
}

CorpusOptions corpus_options(const DataSource& source) {
  CorpusOptions c;
  c.format = source.format == "jsonl.gz" ? "jsonl" : source.format;
  c.text_key = source.text_key;
  c.doc_split = source.doc_split;
  c.skip_bad_lines = source.skip_bad_lines;
  return c;
}

ShardInfo tokenize_file(const std::string& file, const CorpusOptions& corpus, const Tokenizer& tok,
                        const std::string& shard, int threads, bool progress) {
  const FileStamp st = stamp(file);
  ShardInfo info;
  info.tokenizer_hash = tok.hash();
  info.tokenizer_kind = tok.kind();
  info.tokenizer_path = tok.path().empty() ? tok.kind() : fs::absolute(tok.path()).lexically_normal().string();
  info.vocab_size = tok.vocab_size();
  info.source_file = st.path;
  info.source_size = st.size;
  info.source_mtime = st.mtime;
  info.reader = reader_signature(corpus);

  const int workers = threads > 0 ? threads : std::max(1u, std::thread::hardware_concurrency());
  CorpusReader reader(file, corpus);
  ShardWriter writer(shard, info);
  ProgressLine line(progress);
  const auto t0 = Clock::now();
  int64_t bytes_done = 0, tokens_done = 0;
  const std::string name = fs::path(file).filename().string();
  const auto report = [&](bool final) {
    const double s = std::max(seconds_since(t0), 1e-9);
    char buf[256];
    std::snprintf(buf, sizeof buf, "[prepare] %s: %s of %s read, %s text, %.2f MB/s, %lld tokens", name.c_str(),
                  mb(reader.file_offset()).c_str(), mb(st.size).c_str(), mb(bytes_done).c_str(), bytes_done / 1e6 / s,
                  static_cast<long long>(tokens_done));
    line.update(buf, final);
  };

  EncodePool pool(tok, workers);
  const auto write_front = [&] {
    const Batch b = pool.take();
    for (size_t i = 0; i < b.ids.size(); ++i) {
      writer.add_document(b.ids[i].data(), b.ids[i].size(), b.sizes[i]);
      tokens_done += b.ids[i].size();
    }
    bytes_done += b.text_bytes;
    report(false);
  };

  Batch batch;
  std::string doc;
  bool more = true;
  while (more) {
    more = reader.next(doc);
    if (more) {
      batch.text_bytes += doc.size();
      batch.sizes.push_back(static_cast<int64_t>(doc.size()));
      batch.docs.push_back(std::move(doc));
      doc = std::string();
    }
    if (!batch.docs.empty() && (!more || batch.text_bytes >= kBatchBytes || batch.docs.size() >= kBatchDocs)) {
      while (pool.full()) write_front();
      pool.submit(std::move(batch));
      batch = Batch();
    }
  }
  while (!pool.empty()) write_front();
  writer.set_bad_lines(reader.bad_lines());
  ShardInfo done = writer.finish();
  report(true);
  return done;
}

std::vector<PreparedSource> prepare_data(const DataSpec& spec, const Tokenizer& tok, const PrepareOptions& options,
                                         PrepareStats* stats) {
  const auto t0 = Clock::now();
  PrepareStats local;
  PrepareStats& s = stats ? *stats : local;
  s = PrepareStats();
  const std::string& cache = spec.cache_dir;
  if (cache.empty()) throw std::invalid_argument(spec.origin + ": data.cache_dir: no folder for the token shards");
  if (spec.sources.empty())
    throw std::runtime_error(spec.origin + ": data.sources is empty (list at least one corpus source)");
  std::vector<PreparedSource> out;
  for (size_t i = 0; i < spec.sources.size(); ++i) {
    const DataSource& src = spec.sources[i];
    const std::string where = "data.sources[" + std::to_string(i) + "] '" + src.name + "'";
    if (src.files.empty()) throw std::runtime_error(spec.origin + ": " + where + " has no files");
    PreparedSource ps;
    ps.name = src.name;
    ps.weight = src.weight;
    const CorpusOptions corpus = corpus_options(src);
    for (const std::string& file : src.files) {
      const std::string shard = shard_path(cache, src.name, file);
      ShardInfo info;
      bool up_to_date = false;
      if (fs::exists(shard)) {
        info = read_shard_info(shard);
        if (info.tokenizer_hash != tok.hash())
          throw std::runtime_error(
              shard + ": this shard was made with another tokenizer (" + info.tokenizer_kind + " " +
              info.tokenizer_path + ", sha256 " + short_hash(info.tokenizer_hash) + "...) than this job's (" +
              tok.kind() + " " + tok.path() + ", sha256 " + short_hash(tok.hash()) +
              "...). Delete the shard (or its folder) to re-tokenize, or give this job its own data.cache_dir");
        const FileStamp st = stamp(file);
        up_to_date = !options.force && info.source_file == st.path && info.source_size == st.size &&
                     info.source_mtime == st.mtime && info.reader == reader_signature(corpus);
        if (!up_to_date && options.progress)
          std::fprintf(stderr, "[prepare] %s: %s %s, rebuilding\n", src.name.c_str(), shard.c_str(),
                       options.force ? "exists (--rebuild)" : "is stale (source file or reader options changed)");
      }
      if (up_to_date) {
        ++s.shards_skipped;
        if (options.progress)
          std::fprintf(stderr, "[prepare] %s: %s up to date (%lld tokens)\n", src.name.c_str(), shard.c_str(),
                       static_cast<long long>(info.n_tokens));
      } else {
        if (!fs::exists(file))
          throw std::runtime_error(file + ": corpus file not found (" + where + " in " + spec.origin +
                                   "; check the path, relative paths start at the job file's folder)");
        try {
          info = tokenize_file(file, corpus, tok, shard, options.threads, options.progress);
        } catch (const std::runtime_error& e) {
          throw std::runtime_error(where + ": " + e.what());
        }
        ++s.shards_written;
        s.text_bytes += info.text_bytes;
        s.tokens += info.n_tokens;
        s.docs += info.n_docs;
        if (info.bad_lines > 0)
          std::fprintf(stderr, "[prepare] %s: skipped %lld malformed lines in %s\n", src.name.c_str(),
                       static_cast<long long>(info.bad_lines), file.c_str());
      }
      ps.shards.push_back(shard);
      ps.tokens += info.n_tokens;
      ps.docs += info.n_docs;
      ps.text_bytes += info.text_bytes;
      ps.bad_lines += info.bad_lines;
    }
    if (ps.docs == 0)
      throw std::runtime_error(spec.origin + ": " + where + " has no documents (its files are empty or blank" +
                               std::string(src.format == "text" ? "" : ", or every line was skipped as malformed") +
                               "); check data.sources[" + std::to_string(i) + "].files");
    out.push_back(std::move(ps));
  }
  s.seconds = seconds_since(t0);
  return out;
}

}  // namespace bmos
