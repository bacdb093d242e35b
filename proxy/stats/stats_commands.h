// StatsCommands: memcached 1.6.18's `stats` command family, with its exact
// replies: `stats` (general), `settings`, `items`, `slabs`, `conns`,
// `sizes`, `sizes_enable|sizes_disable`, `cachedump`, `detail on|off|dump`,
// `reset` and `extstore`. It reads every worker's counters, the connection
// registry and the run-time settings from the ServerContext, and the tiers'
// statistics from the TieredCache; `reset`, `detail on|off` and
// `sizes_enable|sizes_disable` change those settings. The Dispatcher
// (proxy/exec/dispatch.h) hands it every `stats` command.
//
// Thread safety: one StatsCommands per Dispatcher (one per worker thread);
// what it reads and changes in the ServerContext is shared by the workers
// under that struct's rules (atomics, the registry's and PrefixStats' own
// locks).
#pragma once

#include <cstddef>
#include <cstdint>

#include "proxy/protocol/output_queue.h"
#include "proxy/protocol/protocol.h"
#include "proxy/shared/server_context.h"
#include "tiers/item/item.h"
#include "tiers/tiered_cache.h"

namespace strata::proxy {

// Items per RamTier::ListItems() call of a listing (`stats cachedump`,
// `stats sizes`, `lru_crawler metadump`): one shard lock hold.
inline constexpr size_t kListBatch = 256;

// ITEM_ntotal() of memcached 1.6.18 on 64 bits for the same item: its
// 48-byte header, the key and a NUL, the value with "\r\n", 4 bytes of
// client flags when they are non-zero and 8 of CAS unique. metadump's
// size= and the `stats sizes` histogram report it.
inline uint64_t MemcachedItemSize(const tiers::Item& item) {
  return 48 + uint64_t{item.key_len} + 1 + uint64_t{item.value_len} + 2 +
         (item.Flags() != 0 ? 4 : 0) + 8;
}

class StatsCommands {
 public:
  // `cache` is the cache the worker's commands run against (ctx.cache, or
  // the Dispatcher's RAM-only one); both must outlive this object.
  StatsCommands(ServerContext& ctx, tiers::TieredCache& cache);

  // Runs a `stats` command (cmd.type == CommandType::kStats) and queues its
  // whole reply on `out`: STAT lines and END, or the reply of a
  // sub-command that has none (RESET, OK, ERROR, sizes_status).
  void Run(const Command& cmd, OutputQueue& out);

 private:
  void StatsGeneral(OutputQueue& out);
  void StatsSettings(OutputQueue& out);
  void StatsItems(OutputQueue& out);
  void StatsSlabs(OutputQueue& out);
  void StatsConns(OutputQueue& out);
  void StatsCachedump(const Command& cmd, OutputQueue& out);
  void StatsSizesSwitch(bool enable, OutputQueue& out);
  void StatsSizes(OutputQueue& out);

  ServerContext& ctx_;
  tiers::TieredCache& cache_;
};

}  // namespace strata::proxy
