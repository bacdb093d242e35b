// FakeClock: a Clock (common/clock.h) that moves only when told to, so tests
// drive expiry and intervals deterministically. Test support only: it is in
// strata_test_support, which no production target links.
//
// Thread safety: every method may be called from any thread concurrently
// (the time is one relaxed atomic).
#pragma once

#include <atomic>
#include <cstdint>

#include "common/clock.h"

namespace strata::common {

class FakeClock final : public Clock {
 public:
  explicit FakeClock(int64_t now_seconds = 1'700'000'000) : now_(now_seconds) {}
  int64_t NowSeconds() const override { return now_.load(std::memory_order_relaxed); }
  int64_t MonotonicNanos() const override { return NowSeconds() * 1'000'000'000; }
  // Moves the time forward by `seconds` (backward if negative).
  void Advance(int64_t seconds) { now_.fetch_add(seconds, std::memory_order_relaxed); }
  void Set(int64_t now_seconds) { now_.store(now_seconds, std::memory_order_relaxed); }

 private:
  std::atomic<int64_t> now_;
};

}  // namespace strata::common
