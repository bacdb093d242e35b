// Clocks. The cache measures expiry in whole unix seconds, as memcached does,
// so that a TTL of N seconds behaves the same way on both.
//
// Clock is an interface so tests can drive time with FakeClock.
// Thread safety: all methods are safe to call from any thread concurrently.
#pragma once

#include <atomic>
#include <cstdint>

namespace strata::common {

class Clock {
 public:
  virtual ~Clock() = default;
  // Unix time in whole seconds.
  virtual int64_t NowSeconds() const = 0;
  // A monotonic time in nanoseconds, for measuring intervals.
  virtual int64_t MonotonicNanos() const = 0;
};

// The real clocks (CLOCK_REALTIME / CLOCK_MONOTONIC).
class SystemClock final : public Clock {
 public:
  int64_t NowSeconds() const override;
  int64_t MonotonicNanos() const override;
  // A process-wide instance; it holds no state.
  static const SystemClock& Instance();
};

// A clock that moves only when told to.
class FakeClock final : public Clock {
 public:
  explicit FakeClock(int64_t now_seconds = 1'700'000'000) : now_(now_seconds) {}
  int64_t NowSeconds() const override { return now_.load(std::memory_order_relaxed); }
  int64_t MonotonicNanos() const override { return NowSeconds() * 1'000'000'000; }
  void Advance(int64_t seconds) { now_.fetch_add(seconds, std::memory_order_relaxed); }
  void Set(int64_t now_seconds) { now_.store(now_seconds, std::memory_order_relaxed); }

 private:
  std::atomic<int64_t> now_;
};

}  // namespace strata::common
