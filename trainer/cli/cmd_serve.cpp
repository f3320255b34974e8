// bmos serve: an OpenAI-compatible completions server over any model bmos generate reads (trainer/serve/).
#include <signal.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <stdexcept>
#include <thread>

#include "data/tokenizers/tokenizer.h"
#include "modules/io/model_loader.h"
#include "modules/threads.h"
#include "trainer/checkpoint/checkpoint.h"
#include "trainer/cli/cli_flags.h"
#include "trainer/cli/commands.h"
#include "trainer/serve/http_server.h"
#include "trainer/serve/model_engine.h"

DEFINE_string(host, "127.0.0.1", "address to listen on (0.0.0.0 serves every interface: anyone who reaches this "
                                 "machine can use the model)");
DEFINE_int32(port, 8080, "TCP port (0: a free one, printed as 'listening on http://HOST:PORT')");
DEFINE_int32(max_queue, 32, "completions that may wait behind the running one; one more is answered 503");

namespace bmos {

namespace {

int stop_pipe[2] = {-1, -1};

void on_stop_signal(int sig) {
  const unsigned char c = static_cast<unsigned char>(sig);
  if (write(stop_pipe[1], &c, 1) != 1) {}  // async-signal-safe; a full pipe means a stop is already on its way
}

}  // namespace

int cmd_serve(const std::vector<std::string>& args) {
  if (!args.empty()) throw std::invalid_argument("unexpected argument '" + args[0] + "'");
  if (FLAGS_model.empty()) throw std::invalid_argument("--model PATH is required (a llama2.c .bin, a HF folder, ...)");
  if (FLAGS_port < 0 || FLAGS_port > 65535) throw std::invalid_argument("--port must be in 0..65535 (0: a free one)");
  if (FLAGS_max_queue < 1) throw std::invalid_argument("--max_queue must be at least 1");
  set_compute_threads(FLAGS_threads);  // 0: every core this process may use (libtorch alone may start with fewer)
  LoadOptions load;
  load.device = device_from_flag();
  load.prefill_tables = prefill_tables_from_flag();
  load.map_weights = FLAGS_mmap;
  load.fp16_kv_cache = fp16_kv_cache_from_flag();
  LoadedModel loaded = load_model(resolve_model_path(FLAGS_model), load);
  const std::string tok_path = FLAGS_tokenizer.empty() ? loaded.tokenizer : FLAGS_tokenizer;
  if (tok_path.empty())
    throw std::invalid_argument("no tokenizer found beside " + FLAGS_model + ": pass --tokenizer PATH");
  const std::string name = std::filesystem::path(loaded.path).filename().string();
  // A request's KV cache holds its prompt + max_tokens positions; what one position and the whole context cost.
  const double kv_mb = double(loaded.model->kv_cache_bytes_per_position()) / 1e6;
  const int64_t context = loaded.model->config.max_seq_len;
  const torch::Dtype kv = loaded.model->kv_cache_dtype();
  const std::string kv_dtype = kv == torch::kFloat      ? "fp32"
                               : kv == torch::kHalf     ? "fp16"
                               : kv == torch::kBFloat16 ? "bf16"
                                                        : c10::toString(kv);
  auto engine = serve::make_model_engine(std::move(loaded), load_tokenizer(tok_path), name);

  serve::ServerOptions options;
  options.host = FLAGS_host;
  options.port = FLAGS_port;
  options.max_queue = FLAGS_max_queue;
  serve::HttpServer server(*engine, options);
  const int port = server.bind();
  // SIGINT/SIGTERM stop the server. A handler may run on any thread (OpenBLAS starts its own before main, so no
  // signal mask covers them all); it only writes the signal to a pipe, and one thread reads it and calls stop().
  if (pipe(stop_pipe) != 0) throw std::runtime_error(std::string("pipe: ") + std::strerror(errno));
  struct sigaction sa = {};
  sa.sa_handler = on_stop_signal;
  sa.sa_flags = SA_RESTART;
  sigaction(SIGINT, &sa, nullptr);
  sigaction(SIGTERM, &sa, nullptr);
  if (FLAGS_host != "127.0.0.1" && FLAGS_host != "localhost" && FLAGS_host != "::1")
    std::fprintf(stderr, "bmos serve: listening beyond loopback (%s): no authentication, no TLS\n", FLAGS_host.c_str());
  std::printf("listening on http://%s:%d\n", FLAGS_host.c_str(), port);
  std::fprintf(stderr, "bmos serve: %d CPU threads; KV cache %s, %.3f MB a position (%lld positions: %.2f GB)\n",
               compute_threads(), kv_dtype.c_str(), kv_mb, static_cast<long long>(context), kv_mb * context / 1e3);
  std::fflush(stdout);

  unsigned char caught = 0;  // the signal, or 0 when run() ended on its own
  std::thread on_signal([&] {
    if (read(stop_pipe[0], &caught, 1) == 1 && caught) server.stop();
  });
  server.run();
  const unsigned char none = 0;
  if (write(stop_pipe[1], &none, 1) != 1) {}  // releases the reader when no signal came (else it has gone already)
  on_signal.join();
  if (!caught) throw std::runtime_error("the listener on " + FLAGS_host + ":" + std::to_string(port) + " stopped");
  std::fprintf(stderr, "bmos serve: stopped by %s\n", strsignal(caught));
  return 0;
}

}  // namespace bmos
