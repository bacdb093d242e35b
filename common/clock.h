// Clocks. The cache measures expiry in whole unix seconds, as memcached does,
// so that a TTL of N seconds behaves the same way on both.
//
// Clock is an interface so tests can drive time (tests/support/fake_clock.h).
// Thread safety: all methods are safe to call from any thread concurrently.
#pragma once

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

}  // namespace strata::common
