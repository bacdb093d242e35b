// WorkerStats: the counters one worker thread keeps for `stats` and for
// Prometheus (proxy/stats/server_metrics.h sums them at scrape time), and its
// request latency histograms (metrics/latency.h). Each worker writes only its
// own; readers on other threads sum all workers at read time. Counters are
// relaxed atomics written with a plain load+store by their single writer, so
// the hot path takes no lock and no locked instruction. Reset() (`stats
// reset`) clears the counters, not the latency histograms.
//
// Thread safety: Add() and latency() writes only from the owning worker
// thread; Get(), Reset() and latency() reads from any thread.
#pragma once

#include <array>
#include <atomic>
#include <cstdint>

#include "metrics/latency.h"

namespace strata::proxy {

enum class Counter : uint8_t {
  kCmdGet,
  kCmdSet,
  kCmdFlush,
  kCmdTouch,
  kCmdMeta,  // me (memcached counts no other meta command in cmd_meta)
  kGetHits,
  kGetMisses,
  kGetExpired,
  kGetFlushed,
  kDeleteMisses,
  kDeleteHits,
  kIncrMisses,
  kIncrHits,
  kDecrMisses,
  kDecrHits,
  kCasMisses,
  kCasHits,
  kCasBadval,
  kTouchHits,
  kTouchMisses,
  kStoreTooLarge,
  kStoreNoMemory,
  kBytesRead,
  kBytesWritten,
  kTotalConnections,
  kRejectedConnections,
  kConnYields,
  kRamHits,           // get/gets/gat/gats keys found in the RAM tier
  kRamMisses,         // ... and not found there
  kSsdHits,           // get-family keys RAM missed and the SSD tier served
  kSsdMisses,         // ... that the SSD tier was asked for and did not have
  kSsdReadAheads,     // promotions started for gets buffered behind a waiting command
  kConnMemoryStalls,  // connections stopped because connection memory was at its cap
  kConnMemoryClosed,  // connections closed for holding the most of it without progress
  // The upstream pool (proxy/exec/near_cache.h):
  kUpstreamFetches,    // mg requests sent for get-family keys both local tiers missed
  kUpstreamCoalesced,  // ... keys that joined a fetch of the same key in flight instead
  kUpstreamPrefetches, // fetches started ahead for gets buffered behind a waiting command
  kUpstreamHits,       // fetches the pool answered with a value
  kUpstreamMisses,     // fetches the pool had no value for
  kUpstreamFailures,   // fetches that got no reply (answered as misses)
  kUpstreamFills,      // fetched values kept in the local tiers
  kUpstreamDropped,    // fetched values strata had no memory for (answered as misses)
  kUpstreamNotKept,    // fetched values the pool had marked stale or leased (W X Z): not kept
  kUpstreamWinsReturned,  // win tokens a get or touch was handed by accident, given back
  kCount,
};

class WorkerStats {
 public:
  void Add(Counter c, uint64_t n = 1) {
    auto& v = values_[static_cast<size_t>(c)];
    v.store(v.load(std::memory_order_relaxed) + n, std::memory_order_relaxed);
  }
  uint64_t Get(Counter c) const {
    return values_[static_cast<size_t>(c)].load(std::memory_order_relaxed);
  }
  void Reset() {
    for (auto& v : values_) v.store(0, std::memory_order_relaxed);
  }
  metrics::RequestLatency& latency() { return latency_; }
  const metrics::RequestLatency& latency() const { return latency_; }

 private:
  std::array<std::atomic<uint64_t>, static_cast<size_t>(Counter::kCount)> values_{};
  metrics::RequestLatency latency_;
};

}  // namespace strata::proxy
