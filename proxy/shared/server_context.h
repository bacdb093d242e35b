// ServerContext: what every worker shares: the options, the cache, the
// clock, every worker's counters (for `stats`), the connection registry
// (for `stats conns` and max_connections), the cap on connection memory,
// the settings that admin commands change at run time (verbosity, `stats
// detail`, `stats sizes_enable`, `lru_crawler enable|disable`) and the
// shutdown hook.
//
// Thread safety: options and pointers are set before workers start and then
// only read; counters are atomics; the registry has its own mutex.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "common/clock.h"
#include "common/mutex.h"
#include "proxy/shared/connection_memory.h"
#include "proxy/shared/network_io_mode.h"
#include "proxy/shared/prefix_stats.h"
#include "proxy/shared/worker_stats.h"
#include "proxy/upstream/membership_watcher.h"
#include "proxy/upstream/placement.h"
#include "proxy/upstream/pool.h"
#include "tiers/ram/ram_tier.h"
#include "tiers/ssd/block_device.h"
#include "tiers/tiered_cache.h"

namespace strata::proxy {

inline constexpr const char* kVersion = "1.6.18-strata-0.1.0";

struct ServerOptions {
  std::string listen = "127.0.0.1";
  uint16_t port = 11211;
  std::string unix_socket;           // empty = none
  uint32_t unix_socket_mode = 0700;
  uint32_t workers = 0;              // 0 = the CPUs this process may use
  uint32_t max_connections = 4096;
  bool enable_shutdown = false;
  uint64_t drain_timeout_ms = 10'000;
  uint64_t max_output_buffer = 64ull << 20;  // hard cap per connection
  // Process-wide cap on what connections hold (ConnectionMemory); 0 =
  // DefaultConnectionMemory() of the RAM tier's size.
  uint64_t max_connection_memory = 0;
  uint64_t output_high_watermark = 4ull << 20;  // stop reading above this
  int backlog = 1024;
  bool measure_latency = true;  // fill WorkerStats::latency() (metrics on)
  // How sockets are read and written (NetBatch): io_uring batches, falling
  // back to plain system calls where io_uring cannot be had (kAuto).
  NetworkIoMode network_io = NetworkIoMode::kAuto;
};

// memcached's connection states that `stats conns` shows, as strata's
// connections map onto them.
enum class ConnState : uint8_t {
  kListening,  // a listening socket
  kRead,       // waiting for a command (or the rest of one)
  kParseCmd,   // running a command
  kNread,      // reading a storage command's data block
  kSwallow,    // reading a rejected store's data block to drop it
  kMwrite,     // replies wait for the client to read them
  kIoQueue,    // a command waits for the SSD tier
};
const char* ConnStateName(ConnState state);

// One line of `stats conns`.
struct ConnInfo {
  std::string addr;         // "tcp:127.0.0.1:5555" or "unix:/path"
  std::string listen_addr;  // empty for a listener
  std::atomic<int64_t> last_cmd_unix{0};
  std::atomic<ConnState> state{ConnState::kRead};
};

class ConnRegistry {
 public:
  void Add(int fd, ConnInfo* info) EXCLUDES(mu_) {
    common::MutexLock lock(&mu_);
    conns_[fd] = info;
  }
  void Remove(int fd) EXCLUDES(mu_) {
    common::MutexLock lock(&mu_);
    conns_.erase(fd);
  }
  // Calls fn(fd, info) for each connection under the registry lock (fn
  // must take no lock: this one is a leaf).
  template <typename Fn>
  void ForEach(Fn&& fn) const EXCLUDES(mu_) {
    common::MutexLock lock(&mu_);
    for (const auto& [fd, info] : conns_) fn(fd, *info);
  }

 private:
  mutable common::Mutex mu_;
  std::map<int, ConnInfo*> conns_ GUARDED_BY(mu_);
};

// The upstream memcached pool (proxy/upstream/), when upstream.servers is
// set. Built before the workers start; read-only after, but for the
// membership (its watcher hands out snapshots; membership_watcher.h) and
// the counters (atomics, in the members).
struct UpstreamContext {
  std::unique_ptr<upstream::MembershipWatcher> membership;
  upstream::PoolTimeouts timeouts;
  upstream::PoolHealth health;  // down-marking, probes, the in-flight limit
  uint32_t near_cache_ttl_s = 0;  // 0: keep nothing locally (pure routing)
  bool forward_flush = false;     // flush_all reaches the servers too
  uint32_t connections_per_server = 1;  // per worker
};

// A member's state as the workers see it: leaving when it left the
// membership (its removal grace), else the worst of the workers': down when
// one has it down, else probing when one probes it, else up.
inline upstream::ServerState WorstServerState(const upstream::Member& m) {
  if (m.leaving) return upstream::ServerState::kLeaving;
  bool probing = false;
  for (size_t w = 0; w < m.counters->workers; ++w) {
    const auto s = static_cast<upstream::ServerState>(
        m.counters->per_worker[w].state.load(std::memory_order_relaxed));
    if (s == upstream::ServerState::kDown) return s;
    probing |= s == upstream::ServerState::kProbing;
  }
  return probing ? upstream::ServerState::kProbing : upstream::ServerState::kUp;
}

struct ServerContext {
  ServerOptions options;
  tiers::RamTier* tier = nullptr;          // the RAM tier of `cache`
  tiers::TieredCache* cache = nullptr;
  tiers::BlockDevice* ssd_device = nullptr;  // null when there is no SSD tier
  const common::Clock* clock = nullptr;
  int64_t started_unix = 0;
  uint16_t bound_port = 0;
  std::vector<WorkerStats*> worker_stats;
  // "io_uring" or "syscalls": how sockets are read and written. Set before
  // the workers start, read-only after.
  std::string network_io_mode;
  std::atomic<uint32_t> curr_connections{0};
  std::atomic<uint32_t> verbosity{0};
  // memcached's LRU crawler switch (`lru_crawler enable|disable`). strata's
  // crawler is the RAM tier's expiry reaper, which runs while this is set.
  std::atomic<bool> lru_crawler{true};
  // `stats sizes_enable`: the histogram counts the RAM items whose CAS
  // unique is above sizes_cas_min (those stored since), as memcached's does.
  std::atomic<bool> sizes_enabled{false};
  std::atomic<uint64_t> sizes_cas_min{0};
  PrefixStats prefix_stats;  // `stats detail`
  ConnRegistry conns;
  std::function<void()> request_shutdown;
  // The cap on connection memory, shared by the workers' leases; made by
  // Server before the workers.
  std::unique_ptr<ConnectionMemory> conn_memory;
  // The upstream pool; null when there is none.
  std::unique_ptr<UpstreamContext> upstream;

  uint64_t Sum(Counter c) const {
    uint64_t total = 0;
    for (const WorkerStats* s : worker_stats) total += s->Get(c);
    return total;
  }
};

}  // namespace strata::proxy
