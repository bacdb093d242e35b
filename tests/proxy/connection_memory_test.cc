// Tests of the connection memory cap's accounting (ConnectionMemory, its
// leases and ChargedIoQueue): reservations cover what is charged, slack
// stays within two chunks, WouldExceed() counts the other leases'
// reservations and this lease's exact use, the over-the-cap hook fires on
// each crossing, leases give everything back, many threads charging at once
// leave the pool consistent, and SSD reads are charged from issue to
// completion (on the in-memory device with its faults).

#include "proxy/shared/connection_memory.h"

#include <gtest/gtest.h>

#include <atomic>
#include <cerrno>
#include <random>
#include <thread>
#include <vector>

#include "tests/support/memory_device.h"

namespace strata::proxy {
namespace {

constexpr uint64_t kMiB = 1 << 20;

TEST(ConnectionMemoryTest, ChunkIsASixtyFourthOfTheLimitWithinBounds) {
  EXPECT_EQ(ConnectionMemory(64 * kMiB).chunk(), kMiB / 4 * 1);         // 1 MiB -> 256 KiB
  EXPECT_EQ(ConnectionMemory(8 * kMiB).chunk(), 128u * 1024);           // 8 MiB / 64
  EXPECT_EQ(ConnectionMemory(kMiB).chunk(), 16u * 1024);                // 1 MiB / 64
  EXPECT_EQ(ConnectionMemory(64 * 1024).chunk(), 4096u);                // floor
  EXPECT_EQ(ConnectionMemory(uint64_t{1} << 40).chunk(), 256u * 1024);  // ceiling
}

TEST(ConnectionMemoryTest, DefaultIsAnEighthOfTheRamTierWithinBounds) {
  EXPECT_EQ(DefaultConnectionMemory(64 * kMiB), 32 * kMiB);  // floor
  EXPECT_EQ(DefaultConnectionMemory(256 * kMiB), 32 * kMiB);
  EXPECT_EQ(DefaultConnectionMemory(1024 * kMiB), 128 * kMiB);
  EXPECT_EQ(DefaultConnectionMemory(uint64_t{64} << 30), uint64_t{1} << 30);  // ceiling
}

TEST(ConnectionMemoryTest, ReservationCoversUseWithBoundedSlack) {
  ConnectionMemory pool(64 * kMiB);
  const uint64_t chunk = pool.chunk();
  ConnectionMemory::Lease lease(pool);
  std::mt19937_64 rng(7);
  uint64_t used = 0;
  for (int i = 0; i < 20000; ++i) {
    int64_t delta;
    if (used == 0 || rng() % 2 == 0) {
      delta = static_cast<int64_t>(rng() % (3 * chunk));
    } else {
      delta = -static_cast<int64_t>(rng() % (used + 1));
    }
    lease.Charge(delta);
    used = static_cast<uint64_t>(static_cast<int64_t>(used) + delta);
    ASSERT_EQ(lease.used(), used);
    ASSERT_GE(lease.reserved(), used);
    ASSERT_LE(lease.reserved() - used, 2 * chunk);
    ASSERT_EQ(pool.charged(), lease.reserved());
  }
  lease.Charge(-static_cast<int64_t>(used));
  EXPECT_EQ(lease.used(), 0u);
  EXPECT_LE(lease.reserved(), 2 * chunk);
}

TEST(ConnectionMemoryTest, SmallChangesTouchThePoolOnlyAtChunkBoundaries) {
  ConnectionMemory pool(64 * kMiB);  // chunk 256 KiB
  ConnectionMemory::Lease lease(pool);
  lease.Charge(1024);
  const uint64_t reserved = pool.charged();
  EXPECT_EQ(reserved, 1024 + pool.chunk());
  for (int i = 0; i < 1000; ++i) {  // a busy connection's buffers come and go
    lease.Charge(4096);
    lease.Charge(-4096);
    EXPECT_EQ(pool.charged(), reserved);
  }
}

TEST(ConnectionMemoryTest, WouldExceedCountsOthersReservationsAndOwnUse) {
  ConnectionMemory pool(4 * kMiB);  // chunk 64 KiB
  ConnectionMemory::Lease a(pool);
  ConnectionMemory::Lease b(pool);
  a.Charge(3 * kMiB);  // reserves 3 MiB + a chunk
  EXPECT_FALSE(a.Over());
  EXPECT_FALSE(b.Over());
  // b's own use is exact; a's reservation counts in full.
  const uint64_t room_for_b = pool.limit() - a.reserved();
  EXPECT_FALSE(b.WouldExceed(room_for_b));
  EXPECT_TRUE(b.WouldExceed(room_for_b + 1));
  // a sees its own use, not its slack.
  EXPECT_FALSE(a.WouldExceed(kMiB));
  EXPECT_TRUE(a.WouldExceed(kMiB + 1));
  b.Charge(static_cast<int64_t>(room_for_b));
  EXPECT_FALSE(b.Over());
  b.Charge(1);
  EXPECT_TRUE(b.Over());
  // a sees b's reservation (b's use rounded up to its chunk of slack).
  EXPECT_EQ(b.reserved(), room_for_b + pool.chunk());
  EXPECT_TRUE(a.WouldExceed(1));
  b.Charge(static_cast<int64_t>(pool.chunk()));
  EXPECT_TRUE(a.Over());
  EXPECT_TRUE(pool.over());
  a.Charge(-static_cast<int64_t>(3 * kMiB));
  EXPECT_FALSE(b.Over());
  EXPECT_FALSE(pool.over());
}

TEST(ConnectionMemoryTest, OnOverFiresOncePerCrossing) {
  ConnectionMemory pool(kMiB);  // chunk 16 KiB
  int fired = 0;
  pool.set_on_over([&fired] { ++fired; });
  ConnectionMemory::Lease lease(pool);
  lease.Charge(kMiB / 2);
  EXPECT_EQ(fired, 0);
  lease.Charge(kMiB / 2 + 1);  // crosses
  EXPECT_EQ(fired, 1);
  lease.Charge(kMiB);  // further over: no new crossing
  EXPECT_EQ(fired, 1);
  lease.Charge(-static_cast<int64_t>(2 * kMiB));  // back under
  EXPECT_FALSE(pool.over());
  lease.Charge(2 * kMiB);  // over again
  EXPECT_EQ(fired, 2);
}

TEST(ConnectionMemoryTest, ALeaseGivesEverythingBack) {
  ConnectionMemory pool(16 * kMiB);
  {
    ConnectionMemory::Lease a(pool);
    ConnectionMemory::Lease b(pool);
    a.Charge(5 * kMiB);
    b.Charge(20 * kMiB);  // over the limit: charging never fails
    EXPECT_EQ(pool.charged(), a.reserved() + b.reserved());
    EXPECT_TRUE(pool.over());
  }
  EXPECT_EQ(pool.charged(), 0u);
}

TEST(ConnectionMemoryTest, ManyThreadsChargingAtOnceStayConsistent) {
  ConnectionMemory pool(256 * kMiB);
  constexpr int kThreads = 8;
  std::atomic<uint64_t> sum_reserved{0};
  std::atomic<int> ready{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      ConnectionMemory::Lease lease(pool);
      std::mt19937_64 rng(static_cast<uint64_t>(t) + 1);
      uint64_t used = 0;
      for (int i = 0; i < 100000; ++i) {
        int64_t delta = used > 0 && rng() % 2 ? -static_cast<int64_t>(rng() % (used + 1))
                                              : static_cast<int64_t>(rng() % 100000);
        lease.Charge(delta);
        used = lease.used();
        ASSERT_GE(lease.reserved(), used);
        // The pool always covers at least this lease.
        ASSERT_GE(pool.charged(), lease.reserved());
      }
      sum_reserved.fetch_add(lease.reserved());
      // Hold the lease until every thread is done, then check the sum.
      ready.fetch_add(1);
      while (ready.load() < kThreads) std::this_thread::yield();
      EXPECT_EQ(pool.charged(), sum_reserved.load());
      ready.fetch_add(1);
      while (ready.load() < 2 * kThreads) std::this_thread::yield();
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(pool.charged(), 0u);
}

// Records one completion.
struct Done : tiers::IoCompletion {
  int64_t result = INT64_MIN;
  int calls = 0;
  void OnIoComplete(int64_t r) override {
    result = r;
    ++calls;
  }
};

TEST(ChargedIoQueueTest, ReadsCountFromIssueToCompletion) {
  tiers::MemoryDevice dev(1 << 20);
  ConnectionMemory pool(64 * kMiB);
  ConnectionMemory::Lease lease(pool);
  ChargedIoQueue q(dev.NewQueue(8), lease);
  auto buf = tiers::AllocateAligned(64 * 1024);
  Done w;
  q.Write(0, buf.get(), 8192, &w);  // writes are not the connections'
  EXPECT_EQ(lease.used(), 0u);
  Done r1, r2;
  q.Read(0, buf.get(), 8192, &r1);
  q.Read(8192, buf.get() + 8192, 16384, &r2);
  EXPECT_EQ(lease.used(), 8192u + 16384u);
  EXPECT_EQ(q.read_bytes(), 8192u + 16384u);
  EXPECT_EQ(q.in_flight(), 3u);
  tiers::DrainQueue(q);
  EXPECT_EQ(w.result, 8192);
  EXPECT_EQ(r1.result, 8192);
  EXPECT_EQ(r2.result, 16384);
  EXPECT_EQ(r1.calls + r2.calls, 2);
  EXPECT_EQ(lease.used(), 0u);
  EXPECT_EQ(q.read_bytes(), 0u);
  // Completions are recycled; a failed read is uncharged all the same.
  dev.AddFault({tiers::Fault::Kind::kFailRead, 0, UINT64_MAX, EIO, -1});
  Done bad;
  q.Read(0, buf.get(), 4096, &bad);
  EXPECT_EQ(lease.used(), 4096u);
  tiers::DrainQueue(q);
  EXPECT_EQ(bad.result, -EIO);
  EXPECT_EQ(lease.used(), 0u);
}

TEST(ChargedIoQueueTest, DestroyedWithReadsInFlightLeaksNothing) {
  tiers::MemoryDevice dev(1 << 20);
  ConnectionMemory pool(64 * kMiB);
  ConnectionMemory::Lease lease(pool);
  auto buf = tiers::AllocateAligned(4096);
  Done r;
  {
    ChargedIoQueue q(dev.NewQueue(8), lease);
    q.Read(0, buf.get(), 4096, &r);  // never reaped (ASan checks for leaks)
  }
  EXPECT_EQ(r.calls, 0);
}

}  // namespace
}  // namespace strata::proxy
