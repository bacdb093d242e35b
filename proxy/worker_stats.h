// WorkerStats: the counters one worker thread keeps for `stats` (and, later,
// Prometheus). Each worker writes only its own; readers on other threads sum
// all workers at read time. Counters are relaxed atomics written with a plain
// load+store by their single writer, so the hot path takes no lock and no
// locked instruction.
//
// Thread safety: Add() only from the owning worker thread; Get() and
// Reset() from any thread.
#pragma once

#include <array>
#include <atomic>
#include <cstdint>

namespace strata::proxy {

enum class Counter : uint8_t {
  kCmdGet,
  kCmdSet,
  kCmdFlush,
  kCmdTouch,
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

 private:
  std::array<std::atomic<uint64_t>, static_cast<size_t>(Counter::kCount)> values_{};
};

}  // namespace strata::proxy
