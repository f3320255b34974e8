#include "trainer/serve/http_server.h"

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <ctime>
#include <deque>
#include <mutex>
#include <random>
#include <stdexcept>
#include <thread>

#include <httplib.h>
#include <nlohmann/json.hpp>

namespace bmos::serve {

namespace {

// One completion between its request thread and the worker.
struct Job {
  CompletionRequest request;
  CompletionId id;
  std::mutex m;
  std::condition_variable cv;
  std::string pending;  // text the worker decoded that the request thread has not sent yet
  bool done = false;
  CompletionResult result;
  int error_status = 0;  // set when generation failed or the server stopped under it
  std::string error_message;
  std::atomic<bool> cancelled{false};  // the client went away, or the server stops

  void finish(int status = 0, const std::string& message = "") {
    std::lock_guard<std::mutex> lock(m);
    error_status = status;
    error_message = message;
    done = true;
    cv.notify_all();
  }
};

const char* const kJson = "application/json";

void send_error(httplib::Response& res, int status, const std::string& message, const std::string& type,
                const std::string& param = "") {
  res.status = status;
  res.set_content(error_json(message, type, param), kJson);
}

std::string error_type(int status) { return status >= 500 ? "server_error" : "invalid_request_error"; }

}  // namespace

struct HttpServer::Impl {
  Engine& engine;
  ServerOptions options;
  httplib::Server http;
  std::mutex m;
  std::condition_variable cv;
  std::deque<std::shared_ptr<Job>> queue;
  std::shared_ptr<Job> running;
  std::atomic<bool> stopping{false}, in_run{false};
  std::atomic<uint64_t> served{0};
  const uint64_t id_salt = (uint64_t(std::random_device{}()) << 32) | std::random_device{}();

  Impl(Engine& e, ServerOptions o) : engine(e), options(std::move(o)) {
    // Threads that parse requests and wait on their completion: the queue's worth, the running one, and a few
    // spare ones that answer /health, errors and 503s while the rest wait.
    const size_t threads = size_t(options.max_queue) + 8;
    http.new_task_queue = [threads] { return new httplib::ThreadPool(threads); };
    http.set_payload_max_length(size_t(1) << 20);
    http.set_pre_routing_handler([this](const httplib::Request& req, httplib::Response& res) {
      return route_check(req, res);
    });
    http.Get("/health", [this](const httplib::Request&, httplib::Response& res) {
      res.set_content(nlohmann::json{{"status", "ok"}, {"model", engine.model_name()}}.dump(), kJson);
    });
    http.Post("/v1/completions",
              [this](const httplib::Request& req, httplib::Response& res) { completions(req, res); });
    // Every status >= 400 passes here, ours too (they carry a body already); httplib's own (400, 413, ...) have none.
    using Reply = httplib::Server::HandlerResponse;
    using ErrorHandler = httplib::Server::HandlerWithResponse;
    http.set_error_handler(ErrorHandler([](const httplib::Request& req, httplib::Response& res) {
      if (!res.body.empty()) return Reply::Unhandled;
      send_error(res, res.status, "HTTP " + std::to_string(res.status) + " on " + req.method + " " + req.path,
                 error_type(res.status));
      return Reply::Handled;
    }));
    http.set_exception_handler([](const httplib::Request&, httplib::Response& res, std::exception_ptr ep) {
      std::string what = "unknown error";
      try {
        std::rethrow_exception(ep);
      } catch (const std::exception& e) {
        what = e.what();
      } catch (...) {
      }
      send_error(res, 500, what, "server_error");
    });
  }

  // 404 for a path we do not serve, 405 (with Allow) for a method a path does not take; anything else goes on.
  httplib::Server::HandlerResponse route_check(const httplib::Request& req, httplib::Response& res) {
    const std::string allowed = req.path == "/health" ? "GET" : req.path == "/v1/completions" ? "POST" : "";
    if (allowed.empty()) {
      send_error(res, 404, "no such path: " + req.path + " (this server answers GET /health and POST /v1/completions)",
                 "invalid_request_error");
      return httplib::Server::HandlerResponse::Handled;
    }
    if (req.method != allowed && !(allowed == "GET" && req.method == "HEAD")) {
      res.set_header("Allow", allowed);
      send_error(res, 405, req.method + " is not allowed on " + req.path + " (use " + allowed + ")",
                 "invalid_request_error");
      return httplib::Server::HandlerResponse::Handled;
    }
    return httplib::Server::HandlerResponse::Unhandled;
  }

  void completions(const httplib::Request& req, httplib::Response& res) {
    ParsedRequest parsed = parse_completion_request(req.body);
    if (!parsed.request)
      return send_error(res, parsed.error.status, parsed.error.message, "invalid_request_error", parsed.error.param);
    if (auto e = engine.check(*parsed.request))
      return send_error(res, e->status, e->message, "invalid_request_error", e->param);
    auto job = std::make_shared<Job>();
    job->request = std::move(*parsed.request);
    char id[40];
    std::snprintf(id, sizeof id, "cmpl-%016llx-%llu", (unsigned long long)id_salt, (unsigned long long)++served);
    job->id = {id, int64_t(std::time(nullptr)), engine.model_name()};
    {
      std::lock_guard<std::mutex> lock(m);
      if (stopping) return send_error(res, 503, "the server is shutting down", "server_error");
      if (int(queue.size()) >= options.max_queue) {
        res.set_header("Retry-After", "1");
        return send_error(res, 503,
                          "the queue is full (" + std::to_string(queue.size()) + " completions waiting); retry later",
                          "server_error");
      }
      queue.push_back(job);
    }
    cv.notify_one();
    if (!job->request.stream) {
      std::unique_lock<std::mutex> lock(job->m);
      job->cv.wait(lock, [&] { return job->done; });
      if (job->error_status) return send_error(res, job->error_status, job->error_message, "server_error");
      res.set_content(completion_json(job->id, job->result), kJson);
      return;
    }
    res.set_header("Cache-Control", "no-cache");
    res.set_chunked_content_provider(
        "text/event-stream",
        [job](size_t, httplib::DataSink& sink) {
          const auto write = [&](const std::string& s) { return sink.write(s.data(), s.size()); };
          while (true) {
            std::string text;
            bool done;
            {
              std::unique_lock<std::mutex> lock(job->m);
              job->cv.wait(lock, [&] { return job->done || !job->pending.empty(); });
              text.swap(job->pending);
              done = job->done;
            }
            if (!text.empty() && !write(sse_event(chunk_json(job->id, text)))) {
              job->cancelled = true;
              return false;
            }
            if (done) break;
          }
          // After the headers went out an error can only be an event of its own.
          const std::string last = job->error_status
                                       ? error_json(job->error_message, "server_error")
                                       : chunk_json(job->id, "", job->result.finish_reason);
          write(sse_event(last) + kSseDone);
          sink.done();
          return true;
        },
        [job](bool success) {
          if (!success) job->cancelled = true;
        });
  }

  void worker() {
    while (true) {
      std::shared_ptr<Job> job;
      {
        std::unique_lock<std::mutex> lock(m);
        cv.wait(lock, [&] { return stopping || !queue.empty(); });
        if (queue.empty()) return;
        job = queue.front();
        queue.pop_front();
        running = job;
      }
      run_job(*job);
      std::lock_guard<std::mutex> lock(m);
      running.reset();
    }
  }

  void run_job(Job& job) {
    if (job.cancelled) return job.finish(499, "the client went away");
    const auto t0 = std::chrono::steady_clock::now();
    try {
      job.result = engine.complete(job.request, [&](const std::string& delta) {
        if (job.request.stream) {
          std::lock_guard<std::mutex> lock(job.m);
          job.pending += delta;
          job.cv.notify_all();
        }
        return !job.cancelled;
      });
    } catch (const std::exception& e) {
      std::fprintf(stderr, "bmos serve: %s failed: %s\n", job.id.id.c_str(), e.what());
      return job.finish(500, std::string("generation failed: ") + e.what());
    }
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    std::fprintf(stderr, "bmos serve: %s: %lld prompt + %lld tokens in %.3f s (%.1f tok/s), finish %s%s\n",
                 job.id.id.c_str(), (long long)job.result.prompt_tokens, (long long)job.result.completion_tokens, s,
                 job.result.completion_tokens / s, job.result.finish_reason.c_str(),
                 job.cancelled ? " (cancelled)" : "");
    if (job.cancelled && stopping) return job.finish(503, "the server is shutting down");
    job.finish();
  }
};

HttpServer::HttpServer(Engine& engine, ServerOptions options)
    : impl_(std::make_unique<Impl>(engine, std::move(options))) {
  if (impl_->options.max_queue < 1) throw std::invalid_argument("max_queue must be at least 1");
}

HttpServer::~HttpServer() { stop(); }

int HttpServer::bind() {
  const auto& o = impl_->options;
  int port = o.port;
  if (o.port == 0) port = impl_->http.bind_to_any_port(o.host);
  else if (!impl_->http.bind_to_port(o.host, o.port)) port = -1;
  if (port <= 0)
    throw std::runtime_error("cannot listen on " + o.host + ":" + std::to_string(o.port) +
                             " (port in use, or not an address of this machine? --port 0 picks a free port)");
  return port;
}

void HttpServer::run() {
  Impl& s = *impl_;
  s.in_run = true;
  if (!s.stopping) {
    std::thread worker([&s] { s.worker(); });
    s.http.listen_after_bind();  // returns after stop(), once httplib's request threads have ended
    {
      std::lock_guard<std::mutex> lock(s.m);
      s.stopping = true;
    }
    s.cv.notify_all();
    worker.join();
  }
  s.in_run = false;
}

void HttpServer::stop() {
  Impl& s = *impl_;
  {
    std::lock_guard<std::mutex> lock(s.m);
    s.stopping = true;
    for (auto& job : s.queue) job->finish(503, "the server is shutting down");
    s.queue.clear();
    if (s.running) s.running->cancelled = true;
  }
  s.cv.notify_all();
  // httplib's stop() does nothing before listen has started: wait for it, unless run() is not serving at all.
  while (s.in_run && !s.http.is_running()) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  if (s.http.is_running()) s.http.stop();
}

}  // namespace bmos::serve
