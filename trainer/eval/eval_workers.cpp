#include "trainer/eval/eval_workers.h"

#include <atomic>
#include <exception>
#include <mutex>
#include <thread>
#include <vector>

#include <ATen/Parallel.h>
#include <torch/torch.h>

namespace bmos {

void run_on_workers(int64_t n, int workers, const std::function<void(int64_t)>& fn) {
  if (n <= 0) return;
  torch::NoGradGuard no_grad;
  if (workers <= 1 || n == 1) {
    for (int64_t i = 0; i < n; ++i) fn(i);
    return;
  }
  fn(0);
  // OpenMP keeps its thread count per thread: new threads would each start full-width teams on top of each other.
  const int intra_op = at::get_num_threads();
  std::atomic<int64_t> next{1};
  std::atomic<bool> failed{false};
  std::exception_ptr error;
  std::mutex error_mutex;
  std::vector<std::thread> threads;
  for (int w = 0; w < workers; ++w) {
    threads.emplace_back([&] {
      torch::NoGradGuard worker_no_grad;  // grad mode is per thread
      at::set_num_threads(intra_op);
      try {
        for (int64_t i = next++; i < n && !failed; i = next++) fn(i);
      } catch (...) {
        std::lock_guard<std::mutex> lock(error_mutex);
        if (!error) error = std::current_exception();
        failed = true;
      }
    });
  }
  for (auto& t : threads) t.join();
  if (error) std::rethrow_exception(error);
}

}  // namespace bmos
