// Server: binds the listeners, owns the workers and the shared context, and
// stops gracefully.
//
// Start() creates one SO_REUSEPORT TCP socket per worker on the configured
// address and port (port 0 picks a free port, shared by all workers) and,
// when configured, one unix socket with the configured permissions that
// every worker accepts from. RequestStop() may be called from any thread
// (a signal handler's loop, the `shutdown` command): workers stop accepting,
// finish the replies they owe (bounded by drain_timeout) and exit; Wait()
// returns when all have.
//
// A background thread keeps RSS near the RAM budget: items of mixed sizes
// above ItemSlabs::kMaxBytes leave holes in malloc's heap as they are
// evicted or deleted, and when the
// process holds more than the budget plus a sixteenth plus 8 MiB, with a
// sixteenth of the budget released since the last time, it returns whole
// free pages to the OS (malloc_trim), off the workers' loops.
//
// Thread safety: Start/Wait from one thread; RequestStop from any thread.
#pragma once

#include <atomic>
#include <memory>
#include <thread>
#include <vector>

#include "common/clock.h"
#include "common/mutex.h"
#include "common/status.h"
#include "proxy/shared/server_context.h"
#include "tiers/ssd/block_device.h"
#include "tiers/tiered_cache.h"

namespace strata::proxy {

class Worker;

// The number of CPUs this process may use: its affinity mask, further
// limited by a cgroup CPU quota (v2 cpu.max or v1 cfs quota), at least 1.
uint32_t UsableCpus();

class Server {
 public:
  // `ssd_device` is the SSD tier's device (null when there is none): each
  // worker gets its own I/O queue on it.
  Server(const ServerOptions& options, tiers::TieredCache& cache, tiers::BlockDevice* ssd_device,
         const common::Clock& clock);
  ~Server();

  // The upstream pool the workers forward local misses and writes to
  // (proxy/exec/near_cache.h); before Start().
  void SetUpstream(std::unique_ptr<UpstreamContext> upstream);
  common::Status Start();
  void RequestStop();
  void Wait();

  // The TCP port actually bound (useful with port 0).
  uint16_t port() const { return ctx_.bound_port; }
  size_t workers() const { return workers_.size(); }
  ServerContext& context() { return ctx_; }

 private:
  ServerContext ctx_;
  std::vector<std::unique_ptr<Worker>> workers_;
  // Returns freed heap pages to the OS when RSS runs over the budget.
  void TrimLoop() EXCLUDES(trim_mu_);
  std::thread trimmer_;
  common::Mutex trim_mu_;  // a leaf
  common::CondVar trim_cv_;
  bool trim_stop_ GUARDED_BY(trim_mu_) = false;
  int unix_fd_ = -1;
  std::atomic<bool> stop_requested_{false};
};

}  // namespace strata::proxy
