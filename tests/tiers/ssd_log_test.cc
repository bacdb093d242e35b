// SsdLog on the in-memory device: round trips, region wrap, restart and
// recovery, tombstones, flush, torn writes, corruption and I/O faults.
#include "tiers/ssd/ssd_log.h"

#include <gtest/gtest.h>

#include <atomic>

#include <cstring>
#include <random>
#include <set>
#include <string>
#include <thread>
#include <chrono>

#include "common/hash.h"
#include "tests/support/fake_clock.h"
#include "tests/support/memory_device.h"
#include "tests/support/ssd_test_util.h"

namespace strata::tiers {
namespace {

constexpr uint32_t kRegion = 1u << 20;  // small regions so tests wrap quickly

using ssd_test::Done;
using ssd_test::MakeItem;
using ssd_test::ValueFor;  // a value that verifies itself: from key and length


// A record found on the device by walking every live region.
struct Found {
  uint32_t region;
  uint32_t offset;
  uint32_t size;
  uint64_t seq;
  RecordType type;
  std::string key;
};

std::vector<Found> WalkDevice(const MemoryDevice& dev, uint32_t region_size) {
  std::vector<Found> out;
  std::vector<char> region(region_size);
  for (uint32_t r = 0; r < dev.size() / region_size; ++r) {
    dev.Peek(uint64_t{r} * region_size, region.data(), region_size);
    ssd_test::ForEachRecord(region.data(), region_size, /*valid_only=*/true,
                            [&](size_t off, uint64_t seq, const DecodedRecord& rec) {
                              out.push_back({r, static_cast<uint32_t>(off),
                                             static_cast<uint32_t>(rec.size), seq, rec.meta.type,
                                             std::string(rec.key)});
                            });
  }
  return out;
}

const Found* FindRecord(const std::vector<Found>& all, RecordType type, const std::string& key) {
  for (const Found& f : all) {
    if (f.type == type && f.key == key) return &f;
  }
  return nullptr;
}

void FlipByte(MemoryDevice& dev, uint64_t offset) {
  char c;
  dev.Peek(offset, &c, 1);
  c ^= 0x10;
  dev.Poke(offset, &c, 1);
}

class SsdLogTest : public ::testing::Test {
 protected:
  SsdLogTest() : device_(8 * kRegion) {}

  std::unique_ptr<SsdLog> Open(bool compress = true) {
    auto log = std::make_unique<SsdLog>(SsdLogOptions{kRegion, compress, 64 * 1024}, device_, clock_);
    EXPECT_TRUE(log->Recover().ok());
    return log;
  }

  ItemRef Read(SsdLog& log, const std::string& key) {
    auto queue = device_.NewQueue(16);
    Done done;
    log.Read(key, common::HashKey(key), *queue, &done);
    DrainQueue(*queue);
    EXPECT_EQ(done.calls, 1);
    return done.item;
  }

  // Of keys[0..300), every tenth (the hot ones) reads back intact, and no
  // other does.
  void ExpectOnlyEveryTenthOfTheFirst300(SsdLog& log, const std::vector<std::string>& keys) {
    int hot_hits = 0, cold_hits = 0;
    for (int i = 0; i < 300; ++i) {
      ItemRef it = Read(log, keys[i]);
      if (it) {
        EXPECT_EQ(it->ValueView(), ValueFor(keys[i], 4000, false));
      }
      (i % 10 == 0 ? hot_hits : cold_hits) += it ? 1 : 0;
    }
    EXPECT_EQ(hot_hits, 30);
    EXPECT_EQ(cold_hits, 0);
  }

  bool Put(SsdLog& log, const std::string& key, const std::string& value, uint32_t exptime = 0) {
    return log.Append(*MakeItem(key, value, exptime), common::HashKey(key));
  }

  // After a restart the newest region is the open one again and its records
  // are read from RAM: filler moves the log on, so they are read from the
  // device (for the tests of device faults).
  void PushOutOfBuffer(SsdLog& log) {
    for (int i = 0; i < 3; ++i) {
      std::string key = "filler" + std::to_string(i);
      ASSERT_TRUE(Put(log, key, ValueFor(key, 400 * 1024, false)));
    }
    log.Sync();
  }

  common::FakeClock clock_;
  MemoryDevice device_;
};

TEST_F(SsdLogTest, NeedsFourRegions) {
  MemoryDevice small(3 * kRegion);
  SsdLog log({kRegion, true, 64 * 1024}, small, clock_);
  EXPECT_FALSE(log.Recover().ok());
}

TEST_F(SsdLogTest, RoundTripFromBufferAndFromDevice) {
  auto log = Open();
  std::string v1 = ValueFor("a", 3000, true);
  std::string v2 = ValueFor("b", 3000, false);
  ASSERT_TRUE(Put(*log, "a", v1));
  ASSERT_TRUE(Put(*log, "b", v2));
  ItemRef a = Read(*log, "a");  // still in the open region's buffer
  ASSERT_TRUE(a);
  EXPECT_EQ(a->ValueView(), v1);
  EXPECT_EQ(a->Flags(), 7u);
  log->Sync();
  // Reopen: now it comes from the device.
  log.reset();
  log = Open();
  ItemRef b = Read(*log, "b");
  ASSERT_TRUE(b);
  EXPECT_EQ(b->ValueView(), v2);
  a = Read(*log, "a");
  ASSERT_TRUE(a);
  EXPECT_EQ(a->ValueView(), v1);
  EXPECT_FALSE(Read(*log, "missing"));
}

TEST_F(SsdLogTest, CompressionOnlyWhenItSaves) {
  auto log = Open();
  ASSERT_TRUE(Put(*log, "z", ValueFor("z", 10000, true)));
  ASSERT_TRUE(Put(*log, "n", ValueFor("n", 10000, false)));
  SsdLogStats s = log->Stats();
  EXPECT_EQ(s.demoted_value_bytes, 20000u);
  EXPECT_LT(s.stored_value_bytes, 12000u);  // the compressible one shrank a lot
  EXPECT_GE(s.stored_value_bytes, 10000u);  // the random one was stored as is
}

TEST_F(SsdLogTest, WrapReclaimsOldestRegionsNewestStayReadable) {
  auto log = Open(/*compress=*/false);
  std::vector<std::string> keys;
  for (int i = 0; i < 4000; ++i) {  // ~4000 * 4 KiB = 16 MiB through an 8 MiB device
    std::string key = "k" + std::to_string(i);
    keys.push_back(key);
    ASSERT_TRUE(Put(*log, key, ValueFor(key, 4000, false)));
    if (i % 200 == 0) log->Sync();  // let the writer keep up
  }
  log->Sync();
  SsdLogStats s = log->Stats();
  EXPECT_GT(s.regions_reclaimed, 0u);
  EXPECT_LT(s.index_entries, 4000u);
  int hits = 0;
  for (int i = 0; i < 4000; ++i) {
    ItemRef it = Read(*log, keys[i]);
    if (it) {
      ++hits;
      EXPECT_EQ(it->ValueView(), ValueFor(keys[i], 4000, false)) << keys[i];
    }
  }
  EXPECT_EQ(static_cast<uint64_t>(hits), s.index_entries);
  EXPECT_TRUE(Read(*log, keys.back()));  // the newest are kept
}

// The writer thread drops the index entries of the region the log opens
// next ahead of time, off the log's lock (no stall at rotation): once the
// log has wrapped, at most region_count - 1 regions hold indexed records.
TEST_F(SsdLogTest, TheNextRegionIsReclaimedAhead) {
  auto log = Open(/*compress=*/false);
  for (int i = 0; i < 4000; ++i) {
    std::string key = "k" + std::to_string(10000 + i);  // one record size for all
    ASSERT_TRUE(Put(*log, key, ValueFor(key, 4000, false)));
    if (i % 200 == 0) log->Sync();
  }
  log->Sync();
  const uint64_t per_region = (kRegion - kRegionHeaderSize) / RecordSize(6, 4000);
  const uint64_t regions = log->region_count();
  // Full regions besides the open one, and the open one's records: fewer
  // than region_count - 1 regions' worth.
  uint64_t entries = 0;
  for (int wait = 0; wait < 200; ++wait) {
    entries = log->Stats().index_entries;
    if (entries < (regions - 1) * per_region) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  EXPECT_LT(entries, (regions - 1) * per_region);
  EXPECT_GE(entries, (regions - 2) * per_region);
  EXPECT_TRUE(Read(*log, "k13999"));
}

// Reclaim rewrites the live records the filter keeps to the log's head:
// they survive the log wrapping twice, and so does a restart; the others go.
TEST_F(SsdLogTest, ReclaimRewritesTheRecordsTheFilterKeeps) {
  auto log = Open(/*compress=*/false);
  std::set<uint64_t> hot;
  std::vector<std::string> keys;
  for (int i = 0; i < 4000; ++i) {
    keys.push_back("k" + std::to_string(10000 + i));
    if (i < 300 && i % 10 == 0) hot.insert(common::HashKey(keys.back()));
  }
  log->SetReclaimHooks(
      {[&hot](uint64_t hash, bool) { return hot.count(hash) > 0 ? 1u : 0u; }, nullptr, nullptr});
  for (int i = 0; i < 4000; ++i) {
    ASSERT_TRUE(Put(*log, keys[i], ValueFor(keys[i], 4000, false)));
    if (i % 100 == 0) log->Sync();  // let the writer keep up
  }
  log->Sync();
  SsdLogStats s = log->Stats();
  EXPECT_GE(s.records_rewritten, hot.size());
  ExpectOnlyEveryTenthOfTheFirst300(*log, keys);
  log->SetReclaimHooks({});
  log.reset();
  auto again = Open(false);
  for (int i = 0; i < 300; i += 10) EXPECT_TRUE(Read(*again, keys[i])) << keys[i];
}

// The filter is told which records were read since they were written (a
// verified read marks the index entry; a rewrite starts the record over):
// with S3-FIFO's rule, rewrite what was read, the keys read now and then
// survive two wraps, the rest go.
TEST_F(SsdLogTest, ReclaimSeesWhichRecordsWereRead) {
  auto log = Open(/*compress=*/false);
  std::vector<std::string> keys;
  for (int i = 0; i < 4000; ++i) keys.push_back("k" + std::to_string(10000 + i));
  std::atomic<int> asked_read{0}, asked_unread{0};
  log->SetReclaimHooks({[&](uint64_t, bool accessed) {
                          ++(accessed ? asked_read : asked_unread);
                          return accessed ? 1u : 0u;
                        },
                        nullptr, nullptr});
  for (int i = 0; i < 4000; ++i) {
    ASSERT_TRUE(Put(*log, keys[i], ValueFor(keys[i], 4000, false)));
    if (i % 100 == 99) {
      log->Sync();
      for (int h = 0; h < 300 && h <= i; h += 10) ASSERT_TRUE(Read(*log, keys[h])) << keys[h];
    }
  }
  log->Sync();
  EXPECT_GT(asked_read.load(), 0);
  EXPECT_GT(asked_unread.load(), 0);
  ExpectOnlyEveryTenthOfTheFirst300(*log, keys);
  log->SetReclaimHooks({});
}

// Whether a record was read is not on the device: records recovered at a
// restart count as read, so reclaim asks the sketch about them (after a warm
// restart it still knows which are hot) instead of dropping them all.
TEST_F(SsdLogTest, RecoveredRecordsCountAsRead) {
  {
    auto log = Open(/*compress=*/false);
    for (int i = 0; i < 300; ++i) {
      std::string key = "old" + std::to_string(i);
      ASSERT_TRUE(Put(*log, key, ValueFor(key, 4000, false)));
    }
    log->Sync();
  }
  auto log = Open(/*compress=*/false);
  std::atomic<int> asked_read{0};
  log->SetReclaimHooks({[&](uint64_t, bool accessed) {
                          asked_read += accessed ? 1 : 0;
                          return 0u;
                        },
                        nullptr, nullptr});
  for (int i = 0; i < 2500; ++i) {
    std::string key = "new" + std::to_string(i);
    ASSERT_TRUE(Put(*log, key, ValueFor(key, 4000, false)));
    if (i % 100 == 99) log->Sync();
  }
  log->Sync();
  EXPECT_GT(asked_read.load(), 0);
  log->SetReclaimHooks({});
}

// A record whose entry reclaim dropped ahead of time must not come back at
// a restart (its key may have a newer version that never reached the SSD):
// the region's header is erased on the device before its entries go.
TEST_F(SsdLogTest, RecordsReclaimedAheadStayGoneAfterARestart) {
  auto log = Open(/*compress=*/false);
  ASSERT_TRUE(Put(*log, "victim", ValueFor("victim", 4000, false)));
  uint64_t victim = common::HashKey("victim");
  // Fill until the log is about to wrap onto the victim's region.
  for (int i = 0; i < 4000 && log->Contains(victim); ++i) {
    std::string key = "f" + std::to_string(i);
    ASSERT_TRUE(Put(*log, key, ValueFor(key, 4000, false)));
    if (i % 50 == 0) {
      log->Sync();
      for (int wait = 0; wait < 10 && log->Contains(victim); ++wait) {
        std::this_thread::sleep_for(std::chrono::milliseconds(2));
      }
    }
  }
  ASSERT_FALSE(log->Contains(victim)) << "the victim's region was never reclaimed";
  log.reset();
  log = Open(false);
  EXPECT_FALSE(log->Contains(victim));
  EXPECT_FALSE(Read(*log, "victim"));
}

// A restart goes on appending to the newest region where its records end,
// instead of leaving the rest of that region unused.
TEST_F(SsdLogTest, ARestartResumesTheNewestRegion) {
  struct At : SsdReadDone {
    SsdLocation at;
    void OnSsdRead(ItemRef) override {}
    void OnSsdReadAt(ItemRef, SsdLocation where) override { at = where; }
  };
  auto where = [&](SsdLog& log, const std::string& key) {
    auto queue = device_.NewQueue(4);
    At done;
    log.Read(key, common::HashKey(key), *queue, &done);
    DrainQueue(*queue);
    return done.at;
  };
  auto log = Open();
  ASSERT_TRUE(Put(*log, "before", "v1"));
  log->Sync();
  SsdLocation first = where(*log, "before");
  log.reset();
  for (int restart = 0; restart < 3; ++restart) {
    log = Open();
    std::string key = "after" + std::to_string(restart);
    ASSERT_TRUE(Put(*log, key, "v2"));
    log->Sync();
    SsdLocation next = where(*log, key);
    EXPECT_EQ(next.region, first.region) << "restart " << restart;
    EXPECT_GT(next.offset, first.offset);
    log.reset();
  }
  log = Open();
  ASSERT_TRUE(Read(*log, "before"));
  for (int restart = 0; restart < 3; ++restart) {
    ItemRef it = Read(*log, "after" + std::to_string(restart));
    ASSERT_TRUE(it);
    EXPECT_EQ(it->ValueView(), "v2");
  }
  EXPECT_EQ(log->Stats().regions_reclaimed, 0u);
}

TEST_F(SsdLogTest, RecoveryAppliesTombstonesFlushAndExpiry) {
  {
    auto log = Open();
    ASSERT_TRUE(Put(*log, "kept", "v1"));
    ASSERT_TRUE(Put(*log, "deleted", "v2"));
    ASSERT_TRUE(Put(*log, "expiring", "v3", static_cast<uint32_t>(clock_.NowSeconds() + 10)));
    ASSERT_TRUE(Put(*log, "overwritten", "old"));
    ASSERT_TRUE(Put(*log, "overwritten", "new"));
    log->Remove("deleted", common::HashKey("deleted"));
    EXPECT_FALSE(Read(*log, "deleted"));
    log->Sync();
  }
  clock_.Advance(20);
  auto log = Open();
  ASSERT_TRUE(Read(*log, "kept"));
  EXPECT_EQ(Read(*log, "kept")->ValueView(), "v1");
  EXPECT_FALSE(Read(*log, "deleted"));
  EXPECT_FALSE(Read(*log, "expiring"));
  EXPECT_EQ(Read(*log, "overwritten")->ValueView(), "new");

  ASSERT_TRUE(Put(*log, "after-restart", "x"));
  log->Flush();
  ASSERT_TRUE(Put(*log, "after-flush", "y"));
  log->Sync();
  log.reset();
  log = Open();
  EXPECT_FALSE(Read(*log, "kept"));
  EXPECT_FALSE(Read(*log, "after-restart"));
  ASSERT_TRUE(Read(*log, "after-flush"));
}

TEST_F(SsdLogTest, ReusedRegionNeverResurrectsOldRecords) {
  // Fill every region once, then wrap onto region 0 with only a few records:
  // the old records after them on the device must not come back.
  {
    auto log = Open(false);
    for (int i = 0; i < 2400; ++i) {
      std::string key = "old" + std::to_string(i);
      ASSERT_TRUE(Put(*log, key, ValueFor(key, 3000, false)));
      if (i % 100 == 0) log->Sync();
    }
    log->Sync();
  }
  auto log = Open(false);
  int before = 0;
  for (int i = 0; i < 2400; ++i) before += Read(*log, "old" + std::to_string(i)) ? 1 : 0;
  ASSERT_GT(before, 0);
  ASSERT_TRUE(Put(*log, "fresh", "f"));
  log->Sync();
  log.reset();
  log = Open(false);
  EXPECT_TRUE(Read(*log, "fresh"));
  int after = 0;
  for (int i = 0; i < 2400; ++i) {
    ItemRef it = Read(*log, "old" + std::to_string(i));
    if (it) {
      ++after;
      EXPECT_EQ(it->ValueView(), ValueFor("old" + std::to_string(i), 3000, false));
    }
  }
  EXPECT_LE(after, before);
}

TEST_F(SsdLogTest, TornWriteLosesOnlyTheTail) {
  {
    auto log = Open(false);
    for (int i = 0; i < 20; ++i) ASSERT_TRUE(Put(*log, "a" + std::to_string(i), ValueFor("a", 4000, false)));
    log->Sync();
    // The next writes are "lost" (a crash before they reached the medium).
    device_.AddFault({Fault::Kind::kLoseWrite, 0, UINT64_MAX, 0, -1});
    for (int i = 0; i < 20; ++i) ASSERT_TRUE(Put(*log, "b" + std::to_string(i), ValueFor("b", 4000, false)));
    log->Sync();
  }
  device_.ClearFaults();
  auto log = Open(false);
  for (int i = 0; i < 20; ++i) {
    ItemRef a = Read(*log, "a" + std::to_string(i));
    ASSERT_TRUE(a) << i;
    EXPECT_EQ(a->ValueView(), ValueFor("a", 4000, false));
    ItemRef b = Read(*log, "b" + std::to_string(i));
    if (b) {
      EXPECT_EQ(b->ValueView(), ValueFor("b", 4000, false));
    }
  }
}

TEST_F(SsdLogTest, FlippedBitOnReadIsAMissNeverAWrongValue) {
  auto log = Open(false);
  ASSERT_TRUE(Put(*log, "key", ValueFor("key", 5000, false)));
  log->Sync();
  log.reset();
  log = Open(false);
  PushOutOfBuffer(*log);
  device_.AddFault({Fault::Kind::kFlipBitOnRead, kRegion + 4096 + 100, kRegion + 4096 + 101, 0, -1});
  device_.AddFault({Fault::Kind::kFlipBitOnRead, 4096 + 100, 4096 + 101, 0, -1});
  EXPECT_FALSE(Read(*log, "key"));
  EXPECT_EQ(log->Stats().corrupt_records, 1u);
  device_.ClearFaults();
  EXPECT_FALSE(Read(*log, "key"));  // the entry was dropped
}

TEST_F(SsdLogTest, ReadErrorIsAMiss) {
  auto log = Open(false);
  ASSERT_TRUE(Put(*log, "key", "value"));
  log->Sync();
  log.reset();
  log = Open(false);
  PushOutOfBuffer(*log);
  device_.AddFault({Fault::Kind::kFailRead, 0, UINT64_MAX, 5, -1});
  EXPECT_FALSE(Read(*log, "key"));
  EXPECT_EQ(log->Stats().read_errors, 1u);
  device_.ClearFaults();
  device_.AddFault({Fault::Kind::kShortRead, 0, UINT64_MAX, 0, -1});
  EXPECT_FALSE(Read(*log, "key"));
}

TEST_F(SsdLogTest, WriteErrorsDropRecordsButTheLogGoesOn) {
  auto log = Open(false);
  device_.AddFault({Fault::Kind::kFailWrite, 0, UINT64_MAX, 28, -1});  // ENOSPC
  ASSERT_TRUE(Put(*log, "doomed", ValueFor("d", 4000, false)));
  log->Sync();
  EXPECT_GT(log->Stats().write_errors, 0u);
  EXPECT_FALSE(Read(*log, "doomed"));
  device_.ClearFaults();
  ASSERT_TRUE(Put(*log, "fine", "ok"));
  log->Sync();
  log.reset();
  log = Open(false);
  EXPECT_TRUE(Read(*log, "fine"));
}

TEST_F(SsdLogTest, StaleReadIsDiscarded) {
  auto log = Open(false);
  ASSERT_TRUE(Put(*log, "key", "first"));
  log->Sync();
  log.reset();
  log = Open(false);
  PushOutOfBuffer(*log);
  auto queue = device_.NewQueue(4);
  Done done;
  log->Read("key", common::HashKey("key"), *queue, &done);  // queued, not yet done
  log->Remove("key", common::HashKey("key"));              // a delete wins
  DrainQueue(*queue);
  EXPECT_EQ(done.calls, 1);
  EXPECT_FALSE(done.item);
  EXPECT_EQ(log->Stats().stale_reads, 1u);
}

// A large item may fill at most half of the log (ssd_log.h): beyond that
// it is dropped and counted.
TEST_F(SsdLogTest, TooLargeIsDropped) {
  auto log = Open(false);
  EXPECT_FALSE(Put(*log, "big", ValueFor("big", 4 * kRegion, false)));
  EXPECT_EQ(log->Stats().dropped_too_large, 1u);
  EXPECT_FALSE(Read(*log, "big"));
}


// ------------------------------------------------- damage and recovery

class SsdRecoveryTest : public SsdLogTest {
 protected:
  std::vector<std::string> Fill(SsdLog& log, const std::string& prefix, int count) {
    std::vector<std::string> keys;
    for (int i = 0; i < count; ++i) {
      keys.push_back(prefix + std::to_string(i));
      EXPECT_TRUE(Put(log, keys.back(), ValueFor(keys.back(), 4000, false)));
      if (i % 100 == 99) log.Sync();
    }
    log.Sync();
    return keys;
  }
  // Keys that read back intact; fails on a wrong value.
  int CountIntact(SsdLog& log, const std::vector<std::string>& keys) {
    int n = 0;
    for (const std::string& k : keys) {
      ItemRef it = Read(log, k);
      if (!it) continue;
      EXPECT_EQ(it->ValueView(), ValueFor(k, 4000, false)) << k;
      ++n;
    }
    return n;
  }
};

// A record whose header no longer verifies costs that record: the scan
// finds the next one.
TEST_F(SsdRecoveryTest, ADamagedRecordCostsOnlyItself) {
  std::vector<std::string> keys;
  {
    auto log = Open(false);
    keys = Fill(*log, "k", 600);  // about 2.4 regions: region 0 is not the newest
  }
  auto all = WalkDevice(device_, kRegion);
  const Found* victim = FindRecord(all, RecordType::kItem, "k100");
  ASSERT_NE(victim, nullptr);
  ASSERT_EQ(victim->region, 0u);
  FlipByte(device_, uint64_t{victim->region} * kRegion + victim->offset + 12);  // its flags
  const Found* value_hit = FindRecord(all, RecordType::kItem, "k200");
  FlipByte(device_, uint64_t{value_hit->region} * kRegion + value_hit->offset + 500);
  auto log = Open(false);
  EXPECT_EQ(CountIntact(*log, keys), 598);
  EXPECT_FALSE(Read(*log, "k100"));
  EXPECT_FALSE(Read(*log, "k200"));
  EXPECT_EQ(log->recovery().damaged_records, 2u);
  EXPECT_EQ(log->recovery().refusals, 0u);
  EXPECT_EQ(log->Stats().corrupt_records, 2u);
}

// A record whose value is damaged but whose header verifies hides the
// older versions of its key: they must not come back in its place.
TEST_F(SsdRecoveryTest, ADamagedValueHidesOlderVersionsOfItsKey) {
  {
    auto log = Open(false);
    ASSERT_TRUE(Put(*log, "twice", ValueFor("v1", 4000, false)));
    Fill(*log, "a", 300);
    ASSERT_TRUE(Put(*log, "twice", ValueFor("v2", 4000, false)));
    Fill(*log, "b", 300);
  }
  auto all = WalkDevice(device_, kRegion);
  const Found* newer = nullptr;
  for (const Found& f : all) {
    if (f.key == "twice") newer = &f;  // the later one
  }
  ASSERT_NE(newer, nullptr);
  FlipByte(device_, uint64_t{newer->region} * kRegion + newer->offset + 1000);
  auto log = Open(false);
  EXPECT_FALSE(Read(*log, "twice"));
}

// A damaged tombstone: the region's mirror still has it, so the value it
// hid stays hidden; nothing older is given up.
TEST_F(SsdRecoveryTest, ADamagedTombstoneIsTakenFromTheMirror) {
  std::vector<std::string> keys;
  {
    auto log = Open(false);
    keys = Fill(*log, "k", 300);
    ASSERT_TRUE(log->Remove("k7", common::HashKey("k7")));
    keys.erase(keys.begin() + 7);
    auto more = Fill(*log, "m", 400);  // the tombstone's region is then not the newest
    keys.insert(keys.end(), more.begin(), more.end());
  }
  auto all = WalkDevice(device_, kRegion);
  const Found* tomb = FindRecord(all, RecordType::kTombstone, "k7");
  ASSERT_NE(tomb, nullptr);
  FlipByte(device_, uint64_t{tomb->region} * kRegion + tomb->offset + 10);  // its key length
  auto log = Open(false);
  EXPECT_FALSE(Read(*log, "k7"));
  EXPECT_EQ(CountIntact(*log, keys), static_cast<int>(keys.size()));
  EXPECT_GE(log->recovery().mirrored_invalidations, 1u);
  EXPECT_EQ(log->recovery().refusals, 0u);
}

// Both the tombstone and its mirror copy are damaged: recovery cannot rule
// out that it hid something, so every older record is refused (misses, never
// the deleted value); newer records are kept.
TEST_F(SsdRecoveryTest, ATombstoneAndItsMirrorCopyDamagedRefusesOlderRecords) {
  std::vector<std::string> older, newer;
  {
    auto log = Open(false);
    older = Fill(*log, "k", 300);
    ASSERT_TRUE(log->Remove("k7", common::HashKey("k7")));
    newer = Fill(*log, "m", 400);
  }
  auto all = WalkDevice(device_, kRegion);
  const Found* tomb = FindRecord(all, RecordType::kTombstone, "k7");
  ASSERT_NE(tomb, nullptr);
  FlipByte(device_, uint64_t{tomb->region} * kRegion + tomb->offset + 10);
  // Mirror block 0 of that region.
  FlipByte(device_, uint64_t{tomb->region} * kRegion + kRegion - kBlockSize + 100);
  auto log = Open(false);
  EXPECT_FALSE(Read(*log, "k7"));
  EXPECT_EQ(CountIntact(*log, older), 0);
  EXPECT_GE(log->recovery().refusals, 1u);
  // The records after the damaged one in its region and later regions stay.
  EXPECT_GT(CountIntact(*log, newer), 300);
}

// A damaged region header: the region is read with the sequence number its
// neighbours imply; nothing is lost.
TEST_F(SsdRecoveryTest, ADamagedRegionHeaderIsReadWithTheSequenceItsNeighboursImply) {
  std::vector<std::string> keys;
  {
    auto log = Open(false);
    keys = Fill(*log, "k", 1000);  // regions 0..3
  }
  FlipByte(device_, uint64_t{1} * kRegion + 20);  // region 1's sequence number
  std::vector<char> zero(kBlockSize, 0);
  device_.Poke(uint64_t{2} * kRegion, zero.data(), zero.size());  // region 2's header zeroed
  auto log = Open(false);
  EXPECT_EQ(CountIntact(*log, keys), 1000);
  EXPECT_EQ(log->recovery().damaged_headers, 2u);
  EXPECT_EQ(log->recovery().lost_regions, 0u);
}

// The region after the newest is the oldest, and may have been reclaimed:
// with its header damaged its records are given up (they are the oldest,
// so nothing they hid matters), never read.
TEST_F(SsdRecoveryTest, TheOldestRegionWithADamagedHeaderIsGivenUp) {
  {
    auto log = Open(false);
    // 7 regions and a bit: the log has wrapped onto region 0.
    Fill(*log, "k", 1900);
  }
  auto all = WalkDevice(device_, kRegion);
  uint32_t newest = 0;
  uint64_t newest_seq = 0;
  for (const Found& f : all) {
    if (f.seq > newest_seq) newest_seq = f.seq, newest = f.region;
  }
  uint32_t oldest = (newest + 1) % 8;
  FlipByte(device_, uint64_t{oldest} * kRegion + 20);
  auto log = Open(false);
  EXPECT_EQ(log->recovery().lost_regions, 1u);
  for (const Found& f : all) {
    if (f.region == oldest && f.type == RecordType::kItem) {
      EXPECT_FALSE(Read(*log, f.key)) << f.key;
    }
  }
}

// A file in another on-device format is discarded (a cold start), once.
TEST_F(SsdRecoveryTest, AFileInAnotherFormatIsDiscarded) {
  {
    auto log = Open(false);
    Fill(*log, "k", 300);
  }
  uint32_t v1 = 1;
  device_.Poke(8, &v1, sizeof(v1));  // region 0's header says format 1
  auto log = Open(false);
  EXPECT_EQ(log->recovery().discarded_format, 1u);
  EXPECT_EQ(log->Stats().index_entries, 0u);
  EXPECT_FALSE(Read(*log, "k5"));
  ASSERT_TRUE(Put(*log, "fresh", "v"));
  log->Sync();
  log.reset();
  log = Open(false);
  EXPECT_EQ(log->recovery().discarded_format, 0u);
  EXPECT_TRUE(Read(*log, "fresh"));
}

// A file of format 2 (before records carried the meta protocol's item
// bits: its byte 11 was always zero, which format 3 would read as "not
// stale, no win handed out") is discarded too, never misread.
TEST_F(SsdRecoveryTest, AFileOfFormat2IsDiscarded) {
  {
    auto log = Open(false);
    Fill(*log, "k", 300);
  }
  for (uint32_t r = 0; r < 8; ++r) {  // every region's header says format 2
    uint32_t v2 = 2;
    device_.Poke(uint64_t{r} * kRegion + 8, &v2, sizeof(v2));
  }
  auto log = Open(false);
  EXPECT_EQ(log->recovery().discarded_format, 2u);
  EXPECT_EQ(log->Stats().index_entries, 0u);
  EXPECT_FALSE(Read(*log, "k5"));
}

// The meta protocol's marks (stale, win handed out, base64 key) and the
// fetched bit survive a trip through the log, from its buffer and from the
// device; an item without them comes back without them.
TEST_F(SsdLogTest, ItemBitsSurviveTheLog) {
  auto opened = Open();
  SsdLog& log = *opened;
  for (int bits = 0; bits < 16; ++bits) {
    ItemRef item = MakeItem("bits" + std::to_string(bits), "value");
    item->stale = bits & 1;
    item->win_sent = (bits >> 1) & 1;
    item->key_binary = (bits >> 2) & 1;
    item->fetched = (bits >> 3) & 1;
    ASSERT_TRUE(log.Append(*item, common::HashKey(item->Key())));
  }
  auto check = [&](const char* where) {
    for (int bits = 0; bits < 16; ++bits) {
      SCOPED_TRACE(std::string(where) + " bits " + std::to_string(bits));
      ItemRef got = Read(log, "bits" + std::to_string(bits));
      ASSERT_TRUE(got);
      EXPECT_EQ(got->stale, bits & 1);
      EXPECT_EQ(got->win_sent, (bits >> 1) & 1);
      EXPECT_EQ(got->key_binary, (bits >> 2) & 1);
      EXPECT_EQ(got->fetched, (bits >> 3) & 1);
      EXPECT_EQ(got->ValueView(), "value");
    }
  };
  check("buffer");
  PushOutOfBuffer(log);
  check("device");
}

// A file cut short right after its newest region: the regions after it may
// have held newer records (tombstones included), so nothing is trusted.
TEST_F(SsdRecoveryTest, AFileTruncatedAfterItsNewestRegionIsNotTrusted) {
  {
    auto log = Open(false);
    Fill(*log, "k", 1000);  // regions 0..3, the newest is 3
    log->Remove("k1", common::HashKey("k1"));
    log->Sync();
  }
  device_.SetPreexistingBytes(4 * kRegion);
  auto log = Open(false);
  EXPECT_EQ(log->Stats().index_entries, 0u);
  device_.SetPreexistingBytes(UINT64_MAX);
}

TEST_F(SsdRecoveryTest, ADelayedFlushSurvivesARestartAndItsTimeIsKept) {
  const int64_t now = clock_.NowSeconds();
  {
    auto log = Open(false);
    Fill(*log, "k", 10);
    log->FlushAt(now + 100);
    log->Sync();
  }
  {
    auto log = Open(false);
    EXPECT_EQ(log->recovered_delayed_flush(), now + 100);
    EXPECT_TRUE(Read(*log, "k3"));  // not yet
    log->FlushAt(0);                // cancelled
    log->Sync();
  }
  {
    auto log = Open(false);
    EXPECT_EQ(log->recovered_delayed_flush(), 0);
    EXPECT_TRUE(Read(*log, "k3"));
    log->FlushAt(now + 10);
    log->Sync();
  }
  clock_.Advance(20);  // its time came while strata was down
  auto log = Open(false);
  EXPECT_EQ(log->recovered_delayed_flush(), 0);
  EXPECT_FALSE(Read(*log, "k3"));
}

// Each region ends with a seal, and its mirror lists its invalidations.
TEST_F(SsdRecoveryTest, RegionsAreSealedAndTheirMirrorHoldsTheirInvalidations) {
  {
    auto log = Open(false);
    Fill(*log, "k", 100);
    for (int i = 0; i < 200; ++i) log->Remove("k" + std::to_string(i % 100), common::HashKey("k" + std::to_string(i % 100)));
    Fill(*log, "m", 400);
  }
  auto all = WalkDevice(device_, kRegion);
  int seals = 0;
  for (const Found& f : all) seals += f.type == RecordType::kSeal ? 1 : 0;
  EXPECT_GE(seals, 1);
  std::vector<char> block(kBlockSize);
  device_.Peek(kRegion - kBlockSize, block.data(), block.size());
  MirrorEntry entries[kMirrorEntriesPerBlock];
  bool blank = false;
  RegionHeader h;
  std::vector<char> header(kBlockSize);
  device_.Peek(0, header.data(), header.size());
  ASSERT_EQ(DecodeRegionHeader(header.data(), &h), HeaderKind::kValid);
  EXPECT_EQ(DecodeMirrorBlock(h.seq, 0, block.data(), entries, &blank), 100);  // k0..k99 once
}

// ----------------------------------------------------------- durability

TEST_F(SsdLogTest, AnInvalidationIsAcknowledgedOnlyOnceOnTheDevice) {
  auto log = Open(false);
  std::atomic<int> notified{0};
  int listener = log->AddCommitListener([&] { ++notified; });
  const uint64_t h = common::HashKey("key");
  ASSERT_TRUE(Put(*log, "key", "v"));
  EXPECT_EQ(log->AckTicket(h), 0u);  // a demotion needs no wait
  ASSERT_TRUE(log->Remove("key", h));
  uint64_t ticket = log->AckTicket(h);
  ASSERT_NE(ticket, 0u);
  EXPECT_EQ(log->AckTicket(common::HashKey("other")) != 0,
            (h & ((1 << 14) - 1)) == (common::HashKey("other") & ((1 << 14) - 1)));
  // The 100 ms tail write has not run yet: only a commit makes it durable.
  EXPECT_FALSE(log->Durable(ticket));
  log->RequestCommit(ticket, listener);
  for (int i = 0; i < 200 && notified.load() == 0; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  EXPECT_EQ(notified.load(), 1);
  EXPECT_TRUE(log->Durable(ticket));
  EXPECT_EQ(log->AckTicket(h), 0u);
  log->RemoveCommitListener(listener);
}

// An inline-commit listener writes the group commit from its own thread
// (its queue) when the writer thread is idle: the ticket is durable once
// the listener reaps the completion, not before, and a restart finds the
// tombstone. Meanwhile the writer thread writes nothing (jobs keep their
// order on the device): a Sync() from another thread waits for the reap.
TEST_F(SsdLogTest, AnInlineCommitIsWrittenFromTheListenersQueue) {
  auto log = Open(false);
  int notified = 0;
  int listener = log->AddCommitListener([&] { ++notified; }, /*inline_commits=*/true);
  ASSERT_GE(log->commit_event_fd(listener), 0);
  const uint64_t h = common::HashKey("key");
  ASSERT_TRUE(Put(*log, "key", "v"));
  log->Sync();  // the writer thread is idle
  ASSERT_TRUE(log->Remove("key", h));
  const uint64_t ticket = log->AckTicket(h);
  ASSERT_NE(ticket, 0u);
  const uint64_t written = log->Stats().device_bytes_written;
  log->RequestCommit(ticket, listener);
  EXPECT_FALSE(log->Durable(ticket));  // in flight on the listener's queue
  std::atomic<bool> synced{false};
  std::thread syncer([&] {
    ASSERT_TRUE(Put(*log, "later", "w"));
    log->Sync();
    synced = true;
  });
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  EXPECT_FALSE(synced.load());  // the writer waits for the inline commit
  EXPECT_EQ(log->Stats().device_bytes_written, written);
  log->ReapCommits(listener);
  EXPECT_TRUE(log->Durable(ticket));
  EXPECT_EQ(notified, 1);
  EXPECT_GT(log->Stats().device_bytes_written, written);
  syncer.join();
  EXPECT_TRUE(synced.load());
  // In flight when the listener goes: RemoveCommitListener() waits for it.
  ASSERT_TRUE(Put(*log, "key2", "v"));
  log->Sync();
  ASSERT_TRUE(log->Remove("key2", common::HashKey("key2")));
  const uint64_t ticket2 = log->AckTicket(common::HashKey("key2"));
  log->RequestCommit(ticket2, listener);
  log->RemoveCommitListener(listener);
  EXPECT_TRUE(log->Durable(ticket2));
  EXPECT_EQ(notified, 1);  // a removed listener is not called
  log.reset();
  log = Open(false);
  EXPECT_FALSE(Read(*log, "key"));
  EXPECT_FALSE(Read(*log, "key2"));
  EXPECT_TRUE(Read(*log, "later"));
}

// Appends go on while the writer thread writes the open region's partial
// last block (a group commit here; the 100 ms tail write too). The write
// is made from a copy taken when it was queued: ThreadSanitizer reported
// the device reading the buffer's last block while an append filled it
// (with the thread-pool device in the stress test).
class SsdLogAppendTest : public SsdLogTest, public ::testing::WithParamInterface<bool> {};

// With inline commits (GetParam()), the committing thread writes the
// commits the idle writer thread would have, and reaps them.
TEST_P(SsdLogAppendTest, AppendsGoOnWhileTheTailIsWritten) {
  auto log = Open(false);
  const bool inline_commits = GetParam();
  int listener = log->AddCommitListener([] {}, inline_commits);
  constexpr int kKeys = 3000;
  std::atomic<bool> stop{false};
  // About 300 KiB of tombstones and their items, each committed at once:
  // the log (8 regions of 1 MiB) never wraps.
  std::thread committer([&] {
    for (int i = 0; i < kKeys && (i < 100 || !stop.load(std::memory_order_relaxed)); ++i) {
      std::string key = "gone" + std::to_string(i % 50);
      uint64_t h = common::HashKey(key);
      Put(*log, key, "x");
      log->Remove(key, h);
      if (uint64_t ticket = log->AckTicket(h)) {
        log->RequestCommit(ticket, listener);
        while (inline_commits && !log->Durable(ticket)) {
          log->ReapCommits(listener);
          std::this_thread::yield();
        }
      }
    }
  });
  auto key = [](int i) { return "k" + std::to_string(i); };
  std::vector<bool> appended(kKeys);
  int dropped = 0;
  for (int i = 0; i < kKeys; ++i) {
    appended[i] = Put(*log, key(i), ValueFor(key(i), 100 + i % 500, false));
    if (!appended[i]) ++dropped;  // the writer was a region behind (a busy machine)
  }
  stop = true;
  committer.join();
  log->RemoveCommitListener(listener);
  EXPECT_GT(log->Stats().commits, 10u);
  EXPECT_LE(static_cast<uint64_t>(dropped), log->Stats().dropped_backlog);
  EXPECT_LT(dropped, kKeys / 2);
  log.reset();  // everything is written; the records are read from the device
  log = Open(false);
  for (int i = 0; i < kKeys; ++i) {
    if (!appended[i]) continue;
    ItemRef it = Read(*log, key(i));
    ASSERT_TRUE(it) << key(i);
    EXPECT_EQ(it->ValueView(), ValueFor(key(i), 100 + i % 500, false)) << key(i);
  }
}

INSTANTIATE_TEST_SUITE_P(Commits, SsdLogAppendTest, ::testing::Bool(),
                         [](const auto& info) { return info.param ? "inline" : "writer"; });

// While live records fit under live_share, reclaim keeps them all (the log
// compacts); beyond it only the hot ones.
TEST_F(SsdLogTest, ReclaimKeepsLiveRecordsWhileTheyFit) {
  auto log = Open(false);
  std::vector<std::string> keep;
  for (int i = 0; i < 200; ++i) {
    keep.push_back("keep" + std::to_string(i));
    ASSERT_TRUE(Put(*log, keep.back(), ValueFor(keep.back(), 4000, false)));
  }
  // Overwrites of a few keys: dead records pile up, the live set stays small.
  for (int i = 0; i < 3000; ++i) {
    std::string key = "hot" + std::to_string(i % 50);
    ASSERT_TRUE(Put(*log, key, ValueFor(key, 4000, false)));
    if (i % 100 == 99) log->Sync();
  }
  log->Sync();
  SsdLogStats s = log->Stats();
  EXPECT_GT(s.regions_reclaimed, 4u);  // the log wrapped
  EXPECT_GT(s.records_rewritten, 0u);
  for (const std::string& k : keep) {
    ItemRef it = Read(*log, k);
    ASSERT_TRUE(it) << k;
    EXPECT_EQ(it->ValueView(), ValueFor(k, 4000, false));
  }
  EXPECT_TRUE(log->HasRoom(4096));
}

}  // namespace
}  // namespace strata::tiers
