#include "kernels/cpu/spin_pool.h"

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <exception>
#include <memory>
#include <mutex>
#include <pthread.h>
#include <thread>
#include <vector>

#if defined(__x86_64__)
#include <immintrin.h>
#define BMOS_PAUSE() _mm_pause()
#else
#define BMOS_PAUSE() std::this_thread::yield()
#endif

namespace bmos::kernels {

namespace {

thread_local bool t_in_part = false;  // inside a part: nested calls run inline
// Set in the child of a fork() after the pool started: the child has none of the workers (fork copies only the
// calling thread), and a job would wait for them forever; there every call runs its parts inline.
std::atomic<bool> g_forked{false};

// One step of a spin-wait: a pause, and every 64th a yield, so a waiter that shares its core with the thread it waits
// for (more threads than free cores: another process, or parts > cores) hands the core over instead of burning its
// time slice (without the yield, 4 parts on 2 busy cores took 3 ms a job instead of microseconds).
inline void relax(int i) {
  if ((i & 63) == 63) std::this_thread::yield();
  else BMOS_PAUSE();
}

class SpinPool {
 public:
  SpinPool() {
    const char* env = std::getenv("BMOS_SPIN_US");
    spin_ = std::chrono::microseconds(env ? std::atoll(env) : 2000);
    pthread_atfork(nullptr, nullptr, [] { g_forked.store(true, std::memory_order_relaxed); });
  }
  ~SpinPool() {
    {
      std::lock_guard<std::mutex> lock(sleep_mutex_);
      stop_ = true;
      ticket_.store(ticket_.load() + (uint64_t{1} << 16), std::memory_order_release);
    }
    wake_.notify_all();
    for (auto& t : workers_) t.join();
  }

  void run(int parts, const std::function<void(int, int)>& fn) {
    std::lock_guard<std::mutex> job_lock(job_mutex_);  // one job at a time
    while (static_cast<int>(workers_.size()) < parts - 1) {
      const int index = static_cast<int>(workers_.size()) + 1;  // the part it runs
      const uint64_t now = ticket_.load(std::memory_order_relaxed);  // the worker waits for the next ticket, even
      workers_.emplace_back([this, index, now] { worker(index, now); });  // if it starts after it was posted
    }
    fn_ = &fn;
    error_ = nullptr;
    pending_.store(parts - 1, std::memory_order_relaxed);
    {
      std::lock_guard<std::mutex> lock(sleep_mutex_);  // a worker about to sleep sees the new ticket
      const uint64_t generation = (ticket_.load(std::memory_order_relaxed) >> 16) + 1;
      ticket_.store(generation << 16 | static_cast<uint64_t>(parts), std::memory_order_release);
    }
    wake_.notify_all();
    part(0, parts);
    for (int i = 0; pending_.load(std::memory_order_acquire) != 0; ++i) relax(i);
    fn_ = nullptr;
    if (error_) std::rethrow_exception(error_);
  }

 private:
  void part(int index, int parts) {
    t_in_part = true;
    try {
      (*fn_)(index, parts);
    } catch (...) {
      std::lock_guard<std::mutex> lock(error_mutex_);
      if (!error_) error_ = std::current_exception();
    }
    t_in_part = false;
  }

  // A ticket is (generation << 16 | parts), one atomic, so a worker reads a job's part count with its generation.
  // A worker with index < parts takes part `index` and must report before the caller can post the next job.
  void worker(int index, uint64_t seen) {
    for (;;) {
      // Spin for new work, then sleep.
      const auto until = std::chrono::steady_clock::now() + spin_;
      uint64_t t = ticket_.load(std::memory_order_acquire);
      for (int i = 0; t == seen; ++i) {
        relax(i);
        if ((i & 1023) == 1023 && std::chrono::steady_clock::now() > until) break;
        t = ticket_.load(std::memory_order_acquire);
      }
      if (t == seen) {
        std::unique_lock<std::mutex> lock(sleep_mutex_);
        wake_.wait(lock, [&] { return ticket_.load(std::memory_order_acquire) != seen; });
        t = ticket_.load(std::memory_order_acquire);
      }
      seen = t;
      if (stop_) return;
      const int parts = static_cast<int>(t & 0xFFFF);
      if (index < parts) {  // jobs with fewer parts leave the higher workers idle
        part(index, parts);
        pending_.fetch_sub(1, std::memory_order_acq_rel);
      }
    }
  }

  std::chrono::microseconds spin_;
  std::mutex job_mutex_, sleep_mutex_, error_mutex_;
  std::condition_variable wake_;
  std::atomic<uint64_t> ticket_{0};
  std::atomic<int> pending_{0};
  const std::function<void(int, int)>* fn_ = nullptr;
  std::exception_ptr error_;
  bool stop_ = false;
  std::vector<std::thread> workers_;
};

}  // namespace

void spin_pool_run(int parts, const std::function<void(int, int)>& fn) {
  // (g_forked is set only by the fork handler the pool's constructor registers, so it is false until a pool exists.)
  if (parts <= 1 || t_in_part || g_forked.load(std::memory_order_relaxed)) {
    for (int p = 0; p < parts; ++p) fn(p, parts);
    return;
  }
  static SpinPool pool;  // lives for the process; joined at exit
  pool.run(parts, fn);
}

}  // namespace bmos::kernels
