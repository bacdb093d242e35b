// ProbeDelayMs (proxy/upstream/pool.h): the delay before each probe of a
// down server doubles from probe_min_ms to probe_max_ms, and its jitter
// keeps it in [d/2, d].
#include <gtest/gtest.h>

#include <cstdint>
#include <limits>
#include <random>

#include "proxy/upstream/pool.h"

namespace strata::upstream {
namespace {

TEST(ProbeDelayTest, DoublesUpToTheMaximum) {
  PoolHealth h;  // 100 ms .. 10 s
  // random % (d/2 + 1) == d/2 with random = d/2: the top of the range.
  const uint64_t expect[] = {100, 200, 400, 800, 1600, 3200, 6400, 10'000, 10'000};
  for (uint32_t attempt = 0; attempt < 9; ++attempt) {
    EXPECT_EQ(ProbeDelayMs(h, attempt, expect[attempt] / 2), expect[attempt]) << attempt;
    EXPECT_EQ(ProbeDelayMs(h, attempt, 0), expect[attempt] - expect[attempt] / 2) << attempt;
  }
  // No overflow however many probes failed.
  EXPECT_LE(ProbeDelayMs(h, 1'000'000, std::numeric_limits<uint64_t>::max()), 10'000u);
}

TEST(ProbeDelayTest, JitterStaysWithinHalfAndWholeAndSpreads) {
  PoolHealth h;
  std::mt19937_64 rng(7);
  for (uint32_t attempt = 0; attempt < 12; ++attempt) {
    const uint64_t d = std::min<uint64_t>(100ull << std::min(attempt, 20u), 10'000);
    uint64_t lo = UINT64_MAX, hi = 0;
    for (int i = 0; i < 2000; ++i) {
      const uint64_t v = ProbeDelayMs(h, attempt, rng());
      ASSERT_GE(v, d - d / 2);
      ASSERT_LE(v, d);
      lo = std::min(lo, v);
      hi = std::max(hi, v);
    }
    // 2000 draws cover most of the range: the workers' probes spread out.
    EXPECT_LT(lo, d - d / 2 + d / 10) << attempt;
    EXPECT_GT(hi, d - d / 10) << attempt;
  }
}

TEST(ProbeDelayTest, DegenerateSettings) {
  PoolHealth h;
  h.probe_min_ms = 0;  // treated as 1 ms
  h.probe_max_ms = 0;
  EXPECT_EQ(ProbeDelayMs(h, 0, 0), 1u);
  EXPECT_EQ(ProbeDelayMs(h, 5, 1), 1u);
  h.probe_min_ms = 500;  // max below min: min wins
  h.probe_max_ms = 100;
  EXPECT_EQ(ProbeDelayMs(h, 3, 250), 500u);
  h.probe_min_ms = 7;  // odd values: [d - d/2, d]
  h.probe_max_ms = 7;
  EXPECT_EQ(ProbeDelayMs(h, 0, 0), 4u);
  EXPECT_EQ(ProbeDelayMs(h, 0, 3), 7u);
}

TEST(PoolNamesTest, StatesOpsAndOutcomes) {
  EXPECT_STREQ(ServerStateName(ServerState::kUp), "up");
  EXPECT_STREQ(ServerStateName(ServerState::kDown), "down");
  EXPECT_STREQ(ServerStateName(ServerState::kProbing), "probing");
  EXPECT_STREQ(RequestOpName(RequestOp::kProbe), "probe");
  EXPECT_STREQ(RequestOutcomeName(RequestOutcome::kRejected), "rejected");
}

}  // namespace
}  // namespace strata::upstream
