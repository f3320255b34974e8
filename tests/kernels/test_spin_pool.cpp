// spin_pool_run: every part runs exactly once per job, whatever the sequence of part counts (workers that sit out a
// job must not run a later one twice), exceptions reach the caller, nested calls run inline, and two callers on two
// threads take turns; the child of a fork runs its jobs inline.
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <stdexcept>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "kernels/cpu/spin_pool.h"

namespace bmos {
namespace {

TEST(SpinPool, EveryPartOnceAcrossChangingPartCounts) {
  std::vector<std::atomic<int>> hits(8);
  int64_t expected_total = 0;
  for (int job = 0; job < 4000; ++job) {
    const int parts = 1 + (job * 7 + job / 3) % 4;  // 1..4, in an irregular order
    for (auto& h : hits) h.store(0);
    kernels::spin_pool_run(parts, [&](int part, int n) {
      ASSERT_EQ(n, parts);
      hits[part].fetch_add(1);
    });
    for (int p = 0; p < 8; ++p) ASSERT_EQ(hits[p].load(), p < parts ? 1 : 0) << "job " << job << " part " << p;
    expected_total += parts;
  }
  EXPECT_GT(expected_total, 0);
}

TEST(SpinPool, ExceptionsReachTheCallerAndThePoolStillWorks) {
  EXPECT_THROW(kernels::spin_pool_run(3, [](int part, int) {
                 if (part == 2) throw std::runtime_error("part 2 failed");
               }),
               std::runtime_error);
  std::atomic<int> n{0};
  kernels::spin_pool_run(3, [&](int, int) { n.fetch_add(1); });
  EXPECT_EQ(n.load(), 3);
}

TEST(SpinPool, NestedCallsRunInline) {
  std::atomic<int> inner{0};
  kernels::spin_pool_run(2, [&](int, int) { kernels::spin_pool_run(3, [&](int, int) { inner.fetch_add(1); }); });
  EXPECT_EQ(inner.load(), 6);
}

TEST(SpinPool, TwoCallersTakeTurns) {
  std::atomic<int64_t> sum{0};
  auto caller = [&] {
    for (int i = 0; i < 2000; ++i) kernels::spin_pool_run(2, [&](int part, int) { sum.fetch_add(part + 1); });
  };
  std::thread a(caller), b(caller);
  a.join();
  b.join();
  EXPECT_EQ(sum.load(), 2 * 2000 * 3);
}

TEST(SpinPool, ForkedChildRunsItsJobsInline) {
  // The pool is started (workers exist) before the fork; the child has none of them. Without the fork handler the
  // child's job waits forever for its parts, so the parent gives it 20 s and fails the test on a timeout.
  std::atomic<int> n{0};
  kernels::spin_pool_run(2, [&](int, int) { n.fetch_add(1); });
  ASSERT_EQ(n.load(), 2);
  const pid_t pid = fork();
  ASSERT_NE(pid, -1);
  if (pid == 0) {
    std::atomic<int> parts{0};
    kernels::spin_pool_run(3, [&](int, int) { parts.fetch_add(1); });
    _exit(parts.load() == 3 ? 0 : 1);
  }
  int status = 0;
  pid_t done = 0;
  for (int i = 0; i < 2000 && (done = waitpid(pid, &status, WNOHANG)) == 0; ++i) usleep(10000);
  if (done == 0) {
    kill(pid, SIGKILL);
    waitpid(pid, &status, 0);
    FAIL() << "the forked child's spin_pool_run did not return within 20 s";
  }
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 0) << "the forked child ran a wrong number of parts";
  n.store(0);
  kernels::spin_pool_run(2, [&](int, int) { n.fetch_add(1); });  // the parent's pool still works
  EXPECT_EQ(n.load(), 2);
}

}  // namespace
}  // namespace bmos
