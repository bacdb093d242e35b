#include "common/clock.h"

#include <time.h>

namespace strata::common {

int64_t SystemClock::NowSeconds() const {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME_COARSE, &ts);
  return ts.tv_sec;
}

int64_t SystemClock::MonotonicNanos() const {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return int64_t{ts.tv_sec} * 1'000'000'000 + ts.tv_nsec;
}

const SystemClock& SystemClock::Instance() {
  static const SystemClock kClock;
  return kClock;
}

}  // namespace strata::common
