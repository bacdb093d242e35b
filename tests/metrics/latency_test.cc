#include "metrics/latency.h"

#include <gtest/gtest.h>

#include <thread>

namespace strata::metrics {
namespace {

LatencySnapshot Snap(const RequestLatency& l) {
  LatencySnapshot s;
  l.AddTo(&s);
  return s;
}

// The bucket an observation of `nanos` lands in.
size_t BucketOf(uint64_t nanos) {
  RequestLatency l;
  l.Observe(CommandType::kGet, TierLabel::kRam, nanos);
  const LatencySeries s = Snap(l).at(CommandType::kGet, TierLabel::kRam);
  for (size_t b = 0; b < kLatencyBuckets; ++b) {
    if (s.buckets[b] != 0) return b;
  }
  return kLatencyBuckets;
}

TEST(LatencyTest, LabelNames) {
  EXPECT_EQ(CommandLabelName(CommandType::kGet), "get");
  EXPECT_EQ(CommandLabelName(CommandType::kFlushAll), "flush_all");
  EXPECT_EQ(CommandLabelName(CommandType::kVersion), "other");
  EXPECT_EQ(TierLabelName(TierLabel::kRam), "ram");
  EXPECT_EQ(TierLabelName(TierLabel::kMiss), "miss");
  EXPECT_EQ(TierLabelName(TierLabel::kNone), "none");
}

TEST(LatencyTest, BucketBoundsAreInclusiveUpperBounds) {
  EXPECT_EQ(BucketOf(0), 0u);
  EXPECT_EQ(BucketOf(2'000), 0u);  // le="2e-06" includes 2 us
  EXPECT_EQ(BucketOf(2'001), 1u);
  EXPECT_EQ(BucketOf(1'000'000'000), kLatencyBoundsNs.size() - 1);
  EXPECT_EQ(BucketOf(1'000'000'001), kLatencyBoundsNs.size());  // +Inf
}

TEST(LatencyTest, ObserveCountsAndSums) {
  RequestLatency l;
  l.Observe(CommandType::kSet, TierLabel::kNone, 3'000, 4);
  l.Observe(CommandType::kSet, TierLabel::kNone, 7'000);
  LatencySnapshot s = Snap(l);
  const LatencySeries& set = s.at(CommandType::kSet, TierLabel::kNone);
  EXPECT_EQ(set.Count(), 5u);
  EXPECT_EQ(set.sum_ns, 4 * 3'000u + 7'000u);
  EXPECT_EQ(set.buckets[1], 4u);  // (2 us, 5 us]
  EXPECT_EQ(set.buckets[2], 1u);  // (5 us, 10 us]
  EXPECT_EQ(s.at(CommandType::kGet, TierLabel::kRam).Count(), 0u);
}

TEST(LatencyTest, SnapshotsOfWorkersAddUp) {
  RequestLatency a;
  RequestLatency b;
  a.Observe(CommandType::kGet, TierLabel::kRam, 1'000, 2);
  b.Observe(CommandType::kGet, TierLabel::kRam, 1'000, 3);
  b.Observe(CommandType::kGet, TierLabel::kMiss, 1'000);
  LatencySnapshot s;
  a.AddTo(&s);
  b.AddTo(&s);
  EXPECT_EQ(s.at(CommandType::kGet, TierLabel::kRam).Count(), 5u);
  EXPECT_EQ(s.at(CommandType::kGet, TierLabel::kMiss).Count(), 1u);
}

TEST(LatencyBatchTest, CommandsOfABatchShareItsDuration) {
  RequestLatency sink;
  LatencyBatch batch;
  batch.Begin(1'000'000);
  const uint64_t start = batch.start_ns();
  batch.Add(CommandType::kGet, TierLabel::kRam, start);
  batch.Add(CommandType::kGet, TierLabel::kRam, start);
  batch.Add(CommandType::kGet, TierLabel::kMiss, start);
  batch.Add(CommandType::kSet, TierLabel::kNone, start);
  batch.End(1'004'000, &sink);
  LatencySnapshot s = Snap(sink);
  EXPECT_EQ(s.at(CommandType::kGet, TierLabel::kRam).Count(), 2u);
  EXPECT_EQ(s.at(CommandType::kGet, TierLabel::kRam).sum_ns, 8'000u);
  EXPECT_EQ(s.at(CommandType::kGet, TierLabel::kMiss).Count(), 1u);
  EXPECT_EQ(s.at(CommandType::kSet, TierLabel::kNone).sum_ns, 4'000u);

  // The batch state is cleared: a second batch records only its own.
  batch.Begin(2'000'000);
  batch.Add(CommandType::kDelete, TierLabel::kNone, batch.start_ns());
  batch.End(2'001'000, &sink);
  s = Snap(sink);
  EXPECT_EQ(s.at(CommandType::kGet, TierLabel::kRam).Count(), 2u);
  EXPECT_EQ(s.at(CommandType::kDelete, TierLabel::kNone).sum_ns, 1'000u);
}

TEST(LatencyBatchTest, NestedBatchesCountAsOne) {
  RequestLatency sink;
  LatencyBatch batch;
  batch.Begin(100);
  batch.Add(CommandType::kGet, TierLabel::kRam, batch.start_ns());
  batch.Begin(150);  // a resume inside the batch
  EXPECT_EQ(batch.start_ns(), 100u);
  batch.Add(CommandType::kGet, TierLabel::kRam, batch.start_ns());
  batch.End(180, &sink);
  EXPECT_TRUE(batch.open());
  EXPECT_EQ(Snap(sink).at(CommandType::kGet, TierLabel::kRam).Count(), 0u);
  batch.End(300, &sink);
  EXPECT_FALSE(batch.open());
  const LatencySeries s = Snap(sink).at(CommandType::kGet, TierLabel::kRam);
  EXPECT_EQ(s.Count(), 2u);
  EXPECT_EQ(s.sum_ns, 400u);
}

TEST(LatencyBatchTest, CommandSpanningBatchesIsTimedFromItsStart) {
  RequestLatency sink;
  LatencyBatch batch;
  batch.Begin(1'000);
  const uint64_t store_start = batch.start_ns();  // a set whose data block is not all here
  batch.End(2'000, &sink);
  batch.Begin(50'000);
  batch.Add(CommandType::kSet, TierLabel::kNone, store_start);
  batch.Add(CommandType::kGet, TierLabel::kMiss, batch.start_ns());
  batch.End(60'000, &sink);
  LatencySnapshot s = Snap(sink);
  EXPECT_EQ(s.at(CommandType::kSet, TierLabel::kNone).Count(), 1u);
  EXPECT_EQ(s.at(CommandType::kSet, TierLabel::kNone).sum_ns, 59'000u);
  EXPECT_EQ(s.at(CommandType::kGet, TierLabel::kMiss).sum_ns, 10'000u);
}

TEST(LatencyBatchTest, AddOutsideABatchIsIgnored) {
  RequestLatency sink;
  LatencyBatch batch;
  batch.Add(CommandType::kGet, TierLabel::kRam, 0);
  batch.End(10, &sink);  // unmatched End is harmless
  EXPECT_EQ(Snap(sink).at(CommandType::kGet, TierLabel::kRam).Count(), 0u);
}

TEST(LatencyTest, ConcurrentScrapesSeeMonotonicCounts) {
  RequestLatency l;
  std::atomic<bool> done{false};
  std::thread writer([&] {
    for (int i = 0; i < 200'000; ++i) l.Observe(CommandType::kGet, TierLabel::kRam, 1'000);
    done = true;
  });
  uint64_t last = 0;
  while (!done) {
    uint64_t n = Snap(l).at(CommandType::kGet, TierLabel::kRam).Count();
    EXPECT_GE(n, last);
    last = n;
  }
  writer.join();
  EXPECT_EQ(Snap(l).at(CommandType::kGet, TierLabel::kRam).Count(), 200'000u);
}

}  // namespace
}  // namespace strata::metrics
