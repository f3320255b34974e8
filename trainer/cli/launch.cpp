#include "trainer/cli/launch.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <stdexcept>

namespace bmos {

namespace {

std::atomic<bool> g_interrupt{false};
void on_sigint(int) { g_interrupt = true; }

// A port the kernel says is free on loopback now (the store binds it moments later).
int free_port() {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) throw std::runtime_error(std::string("--nproc: cannot open a socket: ") + std::strerror(errno));
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = 0;
  socklen_t len = sizeof a;
  if (::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 ||
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) != 0) {
    ::close(fd);
    throw std::runtime_error(std::string("--nproc: cannot find a free port: ") + std::strerror(errno));
  }
  ::close(fd);
  return ntohs(a.sin_port);
}

struct Rank {
  pid_t pid = -1;
  int fd = -1;          // its stdout + stderr
  std::string partial;  // an unfinished line
  bool done = false;
  int status = 0;
};

void print_lines(int rank, Rank& r, const char* data, size_t n, bool flush) {
  r.partial.append(data, n);
  size_t start = 0;
  for (size_t nl; (nl = r.partial.find('\n', start)) != std::string::npos; start = nl + 1)
    std::fprintf(stderr, "[rank %d] %.*s\n", rank, int(nl - start), r.partial.data() + start);
  r.partial.erase(0, start);
  if (flush && !r.partial.empty()) {
    std::fprintf(stderr, "[rank %d] %s\n", rank, r.partial.c_str());
    r.partial.clear();
  }
}

}  // namespace

int launch_local_ranks(int nproc, const std::vector<std::string>& args) {
  if (nproc < 2) throw std::invalid_argument("--nproc must be >= 2 (or 1, a plain run), got " + std::to_string(nproc));
  if (std::getenv("WORLD_SIZE")) throw std::invalid_argument("--nproc inside a launched rank (WORLD_SIZE is set)");
  const std::string port = std::to_string(free_port());
  std::vector<Rank> ranks(nproc);
  for (int i = 0; i < nproc; ++i) {
    int p[2];
    if (::pipe(p) != 0) throw std::runtime_error(std::string("--nproc: pipe: ") + std::strerror(errno));
    const pid_t pid = ::fork();
    if (pid < 0) throw std::runtime_error(std::string("--nproc: fork: ") + std::strerror(errno));
    if (pid == 0) {
      ::prctl(PR_SET_PDEATHSIG, SIGKILL);  // a launcher killed outright takes its ranks with it
      ::dup2(p[1], STDOUT_FILENO);
      ::dup2(p[1], STDERR_FILENO);
      ::close(p[0]);
      ::close(p[1]);
      ::setenv("RANK", std::to_string(i).c_str(), 1);
      ::setenv("LOCAL_RANK", std::to_string(i).c_str(), 1);
      ::setenv("WORLD_SIZE", std::to_string(nproc).c_str(), 1);
      ::setenv("LOCAL_WORLD_SIZE", std::to_string(nproc).c_str(), 1);
      ::setenv("MASTER_ADDR", "127.0.0.1", 1);
      ::setenv("MASTER_PORT", port.c_str(), 1);
      std::vector<char*> argv{const_cast<char*>("bmos")};
      for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
      argv.push_back(nullptr);
      ::execv("/proc/self/exe", argv.data());
      std::fprintf(stderr, "cannot start /proc/self/exe: %s\n", std::strerror(errno));
      ::_exit(127);
    }
    ::close(p[1]);
    ranks[i].pid = pid;
    ranks[i].fd = p[0];
  }
  std::fprintf(stderr, "[launch] %d ranks on 127.0.0.1:%s\n", nproc, port.c_str());
  auto old = std::signal(SIGINT, on_sigint);
  bool forwarded = false;
  int failed = -1;  // the first rank to fail
  for (int running = nproc; running > 0;) {
    if (g_interrupt && !forwarded) {  // Ctrl-C: every rank saves one checkpoint and stops
      for (auto& r : ranks)
        if (!r.done) ::kill(r.pid, SIGINT);
      forwarded = true;
    }
    std::vector<pollfd> fds;
    std::vector<int> which;  // the rank of each polled fd
    for (int i = 0; i < nproc; ++i)
      if (ranks[i].fd >= 0) {
        fds.push_back({ranks[i].fd, POLLIN, 0});
        which.push_back(i);
      }
    if (!fds.empty() && ::poll(fds.data(), fds.size(), 200) < 0 && errno != EINTR)
      throw std::runtime_error(std::string("--nproc: poll: ") + std::strerror(errno));
    for (size_t k = 0; k < fds.size(); ++k) {
      if (!(fds[k].revents & (POLLIN | POLLHUP | POLLERR))) continue;  // a quiet rank: reading would block
      const int i = which[k];
      Rank& r = ranks[i];
      char buf[4096];
      const ssize_t n = ::read(r.fd, buf, sizeof buf);
      if (n > 0) {
        print_lines(i, r, buf, size_t(n), false);
      } else if (n == 0 || (n < 0 && errno != EINTR && errno != EAGAIN)) {
        print_lines(i, r, "", 0, true);
        ::close(r.fd);
        r.fd = -1;
      }
    }
    for (int i = 0; i < nproc; ++i) {
      Rank& r = ranks[i];
      if (r.done || r.fd >= 0) continue;  // reap once its output is drained
      if (::waitpid(r.pid, &r.status, 0) < 0) continue;
      r.done = true;
      --running;
      const bool ok = WIFEXITED(r.status) && WEXITSTATUS(r.status) == 0;
      const bool interrupted = WIFEXITED(r.status) && WEXITSTATUS(r.status) == 130;
      if (!ok && !interrupted && failed < 0) {
        failed = i;
        std::fprintf(stderr, "[launch] rank %d %s %d; stopping the other ranks\n", i,
                     WIFSIGNALED(r.status) ? "was killed by signal" : "exited with status",
                     WIFSIGNALED(r.status) ? WTERMSIG(r.status) : WEXITSTATUS(r.status));
        for (auto& o : ranks)
          if (!o.done) ::kill(o.pid, SIGTERM);
      }
    }
  }
  std::signal(SIGINT, old);
  if (failed >= 0) {
    std::fprintf(stderr, "[launch] failed: rank %d (its lines above say why)\n", failed);
    return 1;
  }
  for (const auto& r : ranks)
    if (WIFEXITED(r.status) && WEXITSTATUS(r.status) == 130) return 130;
  return 0;
}

}  // namespace bmos
