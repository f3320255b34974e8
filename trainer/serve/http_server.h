// bmos serve's HTTP side (cpp-httplib, plain HTTP only): GET /health and OpenAI's POST /v1/completions, plain or as
// server-sent events. httplib's threads accept and parse; completions wait in a bounded queue for the one worker
// thread that owns the model (it is not thread-safe), so the accept loop never waits on generation and a full queue
// answers 503 at once. Requests run one after another: no batching.
#pragma once

#include <memory>
#include <string>

#include "trainer/serve/engine.h"

namespace bmos::serve {

struct ServerOptions {
  std::string host = "127.0.0.1";  // loopback unless the caller asks for more (0.0.0.0: every interface)
  int port = 8080;                 // 0: any free port (bind() says which)
  int max_queue = 32;              // completions waiting behind the running one; one more gets 503
};

class HttpServer {
 public:
  HttpServer(Engine& engine, ServerOptions options);
  ~HttpServer();
  // Binds host:port and returns the port (the one picked for port 0). Throws std::runtime_error naming host:port.
  int bind();
  // Serves until stop(); returns once the worker and every request thread have ended.
  void run();
  // From any thread (not a signal handler): queued completions get 503, the running one is cut short, run() returns.
  void stop();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace bmos::serve
