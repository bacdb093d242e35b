#include "proxy/net/server.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <malloc.h>
#include <netinet/in.h>
#include <sched.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstring>
#include <fstream>
#include <string>

#include "proxy/net/worker.h"

namespace strata::proxy {
namespace {

std::string Errno(const std::string& what) { return what + ": " + std::strerror(errno); }

// Reads a cgroup CPU limit; returns 0 when unlimited or unknown.
double CgroupCpuLimit() {
  std::ifstream v2("/sys/fs/cgroup/cpu.max");
  std::string quota;
  double period = 0;
  if (v2 >> quota >> period) {
    if (quota != "max" && period > 0) return std::stod(quota) / period;
    return 0;
  }
  std::ifstream q("/sys/fs/cgroup/cpu/cpu.cfs_quota_us");
  std::ifstream p("/sys/fs/cgroup/cpu/cpu.cfs_period_us");
  double quota_us = 0;
  double period_us = 0;
  if ((q >> quota_us) && (p >> period_us) && quota_us > 0 && period_us > 0) {
    return quota_us / period_us;
  }
  return 0;
}

// Fills *ss with `address` (IPv4, IPv6 or "localhost") and `port`; returns
// the address length, or 0 if it is not an IP address.
socklen_t ResolveAddress(const std::string& address, uint16_t port, struct sockaddr_storage* ss) {
  std::memset(ss, 0, sizeof(*ss));
  std::string host = address == "localhost" ? "127.0.0.1" : address;
  auto* sin = reinterpret_cast<struct sockaddr_in*>(ss);
  auto* sin6 = reinterpret_cast<struct sockaddr_in6*>(ss);
  if (inet_pton(AF_INET, host.c_str(), &sin->sin_addr) == 1) {
    sin->sin_family = AF_INET;
    sin->sin_port = htons(port);
    return sizeof(*sin);
  }
  if (inet_pton(AF_INET6, host.c_str(), &sin6->sin6_addr) == 1) {
    sin6->sin6_family = AF_INET6;
    sin6->sin6_port = htons(port);
    return sizeof(*sin6);
  }
  return 0;
}

// Creates a bound (not yet listening) TCP socket with SO_REUSEPORT.
common::Result<int> BindTcp(const std::string& address, uint16_t port) {
  struct sockaddr_storage ss;
  socklen_t len = ResolveAddress(address, port, &ss);
  if (len == 0) return common::Status::InvalidArgument("not an IP address: " + address);
  int fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return common::Status::IoError(Errno("socket"));
  int one = 1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  if (setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) != 0) {
    close(fd);
    return common::Status::IoError(Errno("SO_REUSEPORT"));
  }
  if (ss.ss_family == AF_INET6) setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
  if (bind(fd, reinterpret_cast<struct sockaddr*>(&ss), len) != 0) {
    std::string msg = Errno("bind " + address + ":" + std::to_string(port));
    close(fd);
    return common::Status::IoError(msg);
  }
  return fd;
}

// SO_REUSEPORT would let this process share a port another process already
// listens on (the kernel would then split connections between the two).
// A plain bind tells whether the port is free.
common::Status CheckPortFree(const std::string& address, uint16_t port) {
  if (port == 0) return common::Status::Ok();
  struct sockaddr_storage ss;
  socklen_t len = ResolveAddress(address, port, &ss);
  if (len == 0) return common::Status::InvalidArgument("not an IP address: " + address);
  int fd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return common::Status::IoError(Errno("socket"));
  int one = 1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));  // TIME_WAIT is fine
  int rc = bind(fd, reinterpret_cast<struct sockaddr*>(&ss), len);
  int err = errno;
  close(fd);
  if (rc != 0) {
    errno = err;
    return common::Status::IoError(Errno("bind " + address + ":" + std::to_string(port)));
  }
  return common::Status::Ok();
}

uint16_t LocalPort(int fd) {
  struct sockaddr_storage ss;
  socklen_t len = sizeof(ss);
  if (getsockname(fd, reinterpret_cast<struct sockaddr*>(&ss), &len) != 0) return 0;
  if (ss.ss_family == AF_INET) return ntohs(reinterpret_cast<struct sockaddr_in*>(&ss)->sin_port);
  return ntohs(reinterpret_cast<struct sockaddr_in6*>(&ss)->sin6_port);
}

common::Result<int> ListenUnix(const std::string& path, uint32_t mode, int backlog) {
  struct sockaddr_un sun;
  std::memset(&sun, 0, sizeof(sun));
  if (path.size() >= sizeof(sun.sun_path)) {
    return common::Status::InvalidArgument("unix socket path too long: " + path);
  }
  sun.sun_family = AF_UNIX;
  std::memcpy(sun.sun_path, path.c_str(), path.size());
  struct stat st;
  if (lstat(path.c_str(), &st) == 0) {
    if (!S_ISSOCK(st.st_mode)) {
      return common::Status::InvalidArgument(path + " exists and is not a socket");
    }
    unlink(path.c_str());  // a stale socket from an earlier run
  }
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return common::Status::IoError(Errno("socket"));
  // Create the socket file with the requested permissions from the start.
  mode_t old_umask = umask(static_cast<mode_t>(~mode & 0777));
  int rc = bind(fd, reinterpret_cast<struct sockaddr*>(&sun), sizeof(sun));
  umask(old_umask);
  if (rc != 0 || chmod(path.c_str(), static_cast<mode_t>(mode)) != 0 || listen(fd, backlog) != 0) {
    std::string msg = Errno("unix socket " + path);
    close(fd);
    return common::Status::IoError(msg);
  }
  return fd;
}

}  // namespace

uint32_t UsableCpus() {
  cpu_set_t set;
  uint32_t cpus = 1;
  if (sched_getaffinity(0, sizeof(set), &set) == 0) {
    cpus = static_cast<uint32_t>(CPU_COUNT(&set));
  }
  double limit = CgroupCpuLimit();
  if (limit > 0) cpus = std::min(cpus, static_cast<uint32_t>(std::ceil(limit)));
  return cpus == 0 ? 1 : cpus;
}

Server::Server(const ServerOptions& options, tiers::TieredCache& cache,
               tiers::BlockDevice* ssd_device, const common::Clock& clock) {
  ctx_.options = options;
  ctx_.tier = &cache.ram();
  ctx_.cache = &cache;
  ctx_.ssd_device = ssd_device;
  ctx_.clock = &clock;
  ctx_.started_unix = clock.NowSeconds();
  if (ctx_.options.max_connection_memory == 0) {
    ctx_.options.max_connection_memory = DefaultConnectionMemory(cache.ram().limit());
  }
  ctx_.conn_memory = std::make_unique<ConnectionMemory>(ctx_.options.max_connection_memory);
}

void Server::SetUpstream(std::unique_ptr<UpstreamContext> upstream) {
  ctx_.upstream = std::move(upstream);
}

Server::~Server() {
  RequestStop();
  Wait();
  if (unix_fd_ >= 0) {
    close(unix_fd_);
    unlink(ctx_.options.unix_socket.c_str());
  }
}

common::Status Server::Start() {
  uint32_t n = ctx_.options.workers == 0 ? UsableCpus() : ctx_.options.workers;
  ctx_.options.workers = n;
  uint16_t port = ctx_.options.port;
  common::Status free = CheckPortFree(ctx_.options.listen, port);
  if (!free.ok()) return free;
  std::vector<int> tcp_fds;
  auto close_all = [&] {
    for (int fd : tcp_fds) close(fd);
  };
  for (uint32_t i = 0; i < n; ++i) {
    auto fd = BindTcp(ctx_.options.listen, port);
    if (!fd.ok()) {
      close_all();
      return fd.status();
    }
    tcp_fds.push_back(*fd);
    if (port == 0) port = LocalPort(*fd);
  }
  ctx_.bound_port = port;
  if (!ctx_.options.unix_socket.empty()) {
    auto fd = ListenUnix(ctx_.options.unix_socket, ctx_.options.unix_socket_mode,
                         ctx_.options.backlog);
    if (!fd.ok()) {
      close_all();
      return fd.status();
    }
    unix_fd_ = *fd;
  }
  if (ctx_.upstream != nullptr) {
    // The first snapshot, with counters for n workers (the workers' pools
    // start with it).
    ctx_.upstream->membership->Start(n);
  }
  for (uint32_t i = 0; i < n; ++i) {
    auto worker = std::make_unique<Worker>(ctx_, static_cast<int>(i));
    ctx_.worker_stats.push_back(&worker->stats());
    workers_.push_back(std::move(worker));
  }
  // Past the cap, every worker looks at its connections (workers_ does not
  // change from here on).
  ctx_.conn_memory->set_on_over([this] {
    for (auto& w : workers_) w->WakeForMemory();
  });
  for (uint32_t i = 0; i < n; ++i) {
    common::Status st = workers_[i]->Init(tcp_fds[i], unix_fd_);
    if (!st.ok()) {
      for (uint32_t j = i + 1; j < n; ++j) close(tcp_fds[j]);
      return st;
    }
  }
  // Every worker makes the same choice (a fallback is the machine's, not
  // the worker's); worker 0's is the one reported.
  ctx_.network_io_mode = workers_[0]->net_uses_io_uring() ? "io_uring" : "syscalls";
  for (auto& w : workers_) w->Start();
  if (ctx_.upstream != nullptr) {
    // Each later snapshot wakes every worker to apply it (workers_ does
    // not change from here on; the watcher stops in Wait(), before the
    // workers go).
    ctx_.upstream->membership->Watch([this] {
      for (auto& w : workers_) w->WakeForMembership();
    });
  }
  trimmer_ = std::thread([this] { TrimLoop(); });
  return common::Status::Ok();
}

namespace {
// The process's resident set size, from /proc/self/statm.
uint64_t ResidentBytes() {
  std::ifstream statm("/proc/self/statm");
  uint64_t size = 0;
  uint64_t resident = 0;
  if (!(statm >> size >> resident)) return 0;
  return resident * static_cast<uint64_t>(sysconf(_SC_PAGESIZE));
}
}  // namespace

void Server::TrimLoop() {
  tiers::RamTier& tier = *ctx_.tier;
  uint64_t released_at_last_trim = tier.released_bytes();
  common::MutexLock lock(&trim_mu_);
  for (;;) {
    // Every 100 ms until stopped (std::condition_variable::wait_for with a
    // predicate, spelled out so the analysis sees trim_stop_ read under the
    // lock).
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(100);
    bool timed_out = false;
    while (!trim_stop_ && !timed_out) {
      timed_out = trim_cv_.WaitUntil(trim_mu_, deadline) == std::cv_status::timeout;
    }
    if (trim_stop_) return;
    uint64_t limit = tier.limit();
    uint64_t released = tier.released_bytes();
    if (released - released_at_last_trim < std::max<uint64_t>(limit / 8, 1 << 20)) continue;
    if (ResidentBytes() < limit + limit / 8 + (8 << 20)) continue;
    released_at_last_trim = released;
    malloc_trim(0);
  }
}

void Server::RequestStop() {
  if (stop_requested_.exchange(true)) return;
  for (auto& w : workers_) w->RequestStop();
}

void Server::Wait() {
  if (ctx_.upstream != nullptr) ctx_.upstream->membership->Stop();
  for (auto& w : workers_) w->Join();
  if (trimmer_.joinable()) {
    {
      common::MutexLock lock(&trim_mu_);
      trim_stop_ = true;
    }
    trim_cv_.NotifyAll();
    trimmer_.join();
  }
}

}  // namespace strata::proxy
