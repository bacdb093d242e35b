// Large items on the SSD tier (records larger than a region: pieces and a
// head with their manifest, ssd_format.h) on a real file device (io_uring
// where the kernel allows it, else the thread pool) with real LZ4: written,
// read back from the buffers and from the device, overwritten, deleted,
// reclaimed, recovered, and damage to one piece costing that item only.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "common/hash.h"
#include "tests/support/fake_clock.h"
#include "tests/support/ssd_test_util.h"
#include "tiers/ssd/ssd_log.h"

namespace strata::tiers {
namespace {

constexpr uint32_t kRegion = 1u << 20;  // pieces of 256 KiB, so items span regions
constexpr uint32_t kRegions = 32;

using ssd_test::Done;
using ssd_test::MakeItem;

// Incompressible (random from the key) or compressible, and different per
// version.
using ssd_test::ValueFor;

struct Found {
  uint64_t offset;  // on the device
  RecordType type;
  std::string key;
  size_t stored_at;  // device offset of the stored value
  size_t stored_len;
};

class SsdLargeTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const char* base = getenv("TMPDIR");
    std::string dir = std::string(base ? base : ".") + "/strata-large-XXXXXX";
    ASSERT_NE(mkdtemp(dir.data()), nullptr);
    dir_ = dir;
    path_ = dir_ + "/cache.bin";
    OpenDevice();
  }
  void TearDown() override {
    log_.reset();
    device_.reset();
    unlink(path_.c_str());
    rmdir(dir_.c_str());
  }
  void OpenDevice() {
    auto dev = OpenFileDevice({path_, uint64_t{kRegions} * kRegion, IoMode::kAuto, 4});
    ASSERT_TRUE(dev.ok()) << dev.status().message();
    device_ = std::move(*dev);
  }
  SsdLog& Open(bool compress = true, uint64_t pending_bytes = 512ull << 20,
               uint64_t read_bytes = 256ull << 20) {
    log_.reset();
    device_.reset();
    OpenDevice();
    SsdLogOptions o;
    o.region_size = kRegion;
    o.compress = compress;
    o.write_chunk = 256 * 1024;
    o.large_pending_bytes = pending_bytes;
    o.large_read_bytes = read_bytes;
    log_ = std::make_unique<SsdLog>(o, *device_, clock_);
    EXPECT_TRUE(log_->Recover().ok());
    return *log_;
  }
  bool Put(const std::string& key, const std::string& value, uint64_t cas = 1) {
    return log_->Append(*MakeItem(key, value, 0, 7, cas), common::HashKey(key));
  }
  ItemRef Read(const std::string& key) {
    auto queue = device_->NewQueue(16);
    Done done;
    log_->Read(key, common::HashKey(key), *queue, &done);
    queue->Submit();
    DrainQueue(*queue);
    EXPECT_EQ(done.calls, 1);
    return done.item;
  }
  // Records of the live regions, read from the file (the log stopped).
  std::vector<Found> Walk() {
    std::vector<Found> out;
    int fd = open(path_.c_str(), O_RDONLY);
    EXPECT_GE(fd, 0);
    std::vector<char> region(kRegion);
    for (uint32_t r = 0; r < kRegions; ++r) {
      if (pread(fd, region.data(), kRegion, off_t{r} * kRegion) != kRegion) continue;
      ssd_test::ForEachRecord(
          region.data(), kRegion, /*valid_only=*/false,
          [&](size_t off, uint64_t /*seq*/, const DecodedRecord& rec) {
            uint64_t at = uint64_t{r} * kRegion + off;
            out.push_back({at, rec.meta.type, std::string(rec.key),
                           static_cast<size_t>(at + kRecordHeaderSize + rec.key.size()),
                           rec.stored.size()});
          });
    }
    close(fd);
    return out;
  }
  void Flip(uint64_t offset) {
    int fd = open(path_.c_str(), O_RDWR);
    ASSERT_GE(fd, 0);
    char c = 0;
    ASSERT_EQ(pread(fd, &c, 1, static_cast<off_t>(offset)), 1);
    c ^= 0x10;
    ASSERT_EQ(pwrite(fd, &c, 1, static_cast<off_t>(offset)), 1);
    fsync(fd);
    close(fd);
  }
  void Close() {
    log_.reset();
    device_.reset();
  }

  std::string dir_, path_;
  common::FakeClock clock_;
  std::unique_ptr<BlockDevice> device_;
  std::unique_ptr<SsdLog> log_;
};

// An item of several regions is written as pieces and a head, and reads
// back byte-exact from the region buffers, from the device (with several
// piece reads in flight) and after a restart; compressible pieces are
// stored compressed.
TEST_F(SsdLargeTest, SpansRegionsAndReadsBackByteExact) {
  SsdLog& log = Open();
  const std::string noise = ValueFor("noise", 5 * kRegion + 12345, false);
  const std::string text = ValueFor("text", 3 * kRegion + 7, true);
  ASSERT_TRUE(Put("noise", noise));
  ASSERT_TRUE(Put("text", text));
  ASSERT_TRUE(Put("small", "v"));
  ItemRef got = Read("noise");  // partly still in the buffers
  ASSERT_TRUE(got);
  EXPECT_TRUE(got->ValueView() == noise);
  log.Sync();
  got = Read("noise");
  ASSERT_TRUE(got);
  EXPECT_TRUE(got->ValueView() == noise);
  EXPECT_EQ(got->Flags(), 7u);
  got = Read("text");
  ASSERT_TRUE(got);
  EXPECT_TRUE(got->ValueView() == text);
  SsdLogStats st = log.Stats();
  EXPECT_EQ(st.large_demoted, 2u);
  EXPECT_EQ(st.large_items, 2u);
  EXPECT_GT(st.large_piece_reads, 20u);
  EXPECT_LT(st.stored_value_bytes, noise.size() + text.size() / 4);  // text compressed
  EXPECT_EQ(st.dropped_too_large, 0u);
  Close();
  std::vector<Found> all = Walk();
  size_t pieces = 0, heads = 0;
  std::vector<uint64_t> piece_regions;
  for (const Found& f : all) {
    if (f.key == "noise" && f.type == RecordType::kPiece) {
      ++pieces;
      piece_regions.push_back(f.offset / kRegion);
    }
    if (f.key == "noise" && f.type == RecordType::kLarge) ++heads;
  }
  EXPECT_EQ(pieces, (noise.size() + kRegion / 4 - 1) / (kRegion / 4));
  EXPECT_EQ(heads, 1u);
  EXPECT_GE(piece_regions.back() - piece_regions.front(), 5u);  // spans regions
  Open();
  got = Read("noise");
  ASSERT_TRUE(got);
  EXPECT_TRUE(got->ValueView() == noise);
  got = Read("text");
  ASSERT_TRUE(got);
  EXPECT_TRUE(got->ValueView() == text);
  EXPECT_TRUE(Read("small"));
  EXPECT_EQ(log_->Stats().large_items, 2u);
}

// A delete leaves a tombstone; an overwrite's newer head wins; both hold
// across a restart.
TEST_F(SsdLargeTest, DeleteAndOverwriteHoldAcrossARestart) {
  SsdLog& log = Open();
  ASSERT_TRUE(Put("gone", ValueFor("gone", 2 * kRegion, false)));
  ASSERT_TRUE(Put("twice", ValueFor("twice", 2 * kRegion, false, 1), 1));
  ASSERT_TRUE(Put("twice", ValueFor("twice", 2 * kRegion + 100, false, 2), 2));
  EXPECT_TRUE(log.Remove("gone", common::HashKey("gone")));
  EXPECT_FALSE(Read("gone"));
  ItemRef got = Read("twice");
  ASSERT_TRUE(got);
  EXPECT_TRUE(got->ValueView() == ValueFor("twice", 2 * kRegion + 100, false, 2));
  EXPECT_EQ(got->Cas(), 2u);
  EXPECT_EQ(log.Stats().large_items, 1u);
  Close();
  Open();
  EXPECT_FALSE(Read("gone"));
  got = Read("twice");
  ASSERT_TRUE(got);
  EXPECT_TRUE(got->ValueView() == ValueFor("twice", 2 * kRegion + 100, false, 2));
  EXPECT_EQ(log_->Stats().large_items, 1u);
  // flush_all forgets large items too.
  log_->Flush();
  EXPECT_FALSE(Read("twice"));
  EXPECT_EQ(log_->Stats().large_items, 0u);
  EXPECT_EQ(log_->Stats().large_bytes, 0u);
  Close();
  Open();
  EXPECT_FALSE(Read("twice"));
}

// A flipped byte in one piece costs that item: its read is a miss
// (counted, never a wrong value), and it stays a miss after a restart; the
// records around it, a small item in the same region and another large
// item, read back intact.
TEST_F(SsdLargeTest, DamageToAPieceCostsThatItemOnly) {
  Open(/*compress=*/false);
  const std::string a = ValueFor("a", 2 * kRegion + 5000, false);
  const std::string b = ValueFor("b", 2 * kRegion + 3000, false);
  ASSERT_TRUE(Put("before", "x1"));
  ASSERT_TRUE(Put("a", a));
  ASSERT_TRUE(Put("between", "x2"));
  ASSERT_TRUE(Put("b", b));
  ASSERT_TRUE(Put("after", "x3"));
  Close();
  std::vector<Found> all = Walk();
  const Found* third = nullptr;
  int n = 0;
  for (const Found& f : all) {
    if (f.key == "a" && f.type == RecordType::kPiece && n++ == 3) third = &f;
  }
  ASSERT_NE(third, nullptr);
  Flip(third->stored_at + third->stored_len / 2);
  SsdLog& log = Open(false);
  EXPECT_EQ(log.recovery().damaged_records, 1u);  // the scan sees the piece's value damaged
  EXPECT_FALSE(Read("a"));
  ItemRef got = Read("b");
  ASSERT_TRUE(got);
  EXPECT_TRUE(got->ValueView() == b);
  EXPECT_TRUE(Read("before"));
  EXPECT_TRUE(Read("between"));
  EXPECT_TRUE(Read("after"));
  Close();
  Open(false);
  EXPECT_FALSE(Read("a"));
  EXPECT_TRUE(Read("b"));
}

// Damage found by a read (not by recovery): the read is a miss and counted,
// the item's entry goes with a tombstone, so it stays a miss after a
// restart even once the bytes read fine again.
TEST_F(SsdLargeTest, DamageFoundByAReadIsAMissAndStaysOne) {
  SsdLog& log = Open(false);
  const std::string a = ValueFor("a", 3 * kRegion, false);
  ASSERT_TRUE(Put("a", a));
  ASSERT_TRUE(Put("n", ValueFor("n", 2 * kRegion, false)));
  log.Sync();
  std::vector<Found> all;
  {
    // Read the layout without stopping the log (the file is shared).
    all = Walk();
  }
  const Found* piece = nullptr;
  for (const Found& f : all) {
    if (f.key == "a" && f.type == RecordType::kPiece) piece = &f;  // the last one
  }
  ASSERT_NE(piece, nullptr);
  Flip(piece->stored_at + 10);
  const uint64_t corrupt = log.Stats().corrupt_records;
  EXPECT_FALSE(Read("a"));
  EXPECT_EQ(log.Stats().corrupt_records, corrupt + 1);
  EXPECT_FALSE(Read("a"));  // its entry is gone
  EXPECT_TRUE(Read("n"));
  Flip(piece->stored_at + 10);  // repaired: the tombstone still hides it
  Close();
  Open(false);
  EXPECT_FALSE(Read("a"));
  EXPECT_TRUE(Read("n"));
}

// When the log wraps, a large item dies with the region of its first
// piece (it is never rewritten): a miss, not a wrong value, also after a
// restart, and its bytes no longer count as live.
TEST_F(SsdLargeTest, ReclaimDropsALargeItemWithItsFirstRegion) {
  SsdLog& log = Open(false);
  const std::string big = ValueFor("big", 4 * kRegion, false);
  ASSERT_TRUE(Put("big", big));
  EXPECT_GT(log.Stats().large_bytes, big.size());
  ItemRef got = Read("big");
  ASSERT_TRUE(got);
  EXPECT_TRUE(got->ValueView() == big);
  // Move the log on by most of its length: big's regions are reused.
  for (int i = 0; i < 30 * 250; ++i) {
    std::string k = "f" + std::to_string(i);
    Put(k, ValueFor(k, 4000, false));
    if (i % 250 == 249) log.Sync();
  }
  log.Sync();
  SsdLogStats st = log.Stats();
  EXPECT_EQ(st.large_dropped, 1u);
  EXPECT_EQ(st.large_items, 0u);
  EXPECT_EQ(st.large_bytes, 0u);
  EXPECT_FALSE(Read("big"));
  Close();
  Open(false);
  EXPECT_FALSE(Read("big"));
  EXPECT_EQ(log_->Stats().large_items, 0u);
  // A new large item after the wrap works.
  ASSERT_TRUE(Put("big", ValueFor("big", 4 * kRegion, false, 3)));
  log_->Sync();
  got = Read("big");
  ASSERT_TRUE(got);
  EXPECT_TRUE(got->ValueView() == ValueFor("big", 4 * kRegion, false, 3));
}

// A head whose record does not verify is not recovered (its pieces are
// never indexed on their own), and costs nothing else.
TEST_F(SsdLargeTest, ADamagedHeadIsNotRecovered) {
  Open(false);
  ASSERT_TRUE(Put("a", ValueFor("a", 2 * kRegion, false)));
  ASSERT_TRUE(Put("b", ValueFor("b", 2 * kRegion, false)));
  ASSERT_TRUE(Put("c", "small"));
  Close();
  std::vector<Found> all = Walk();
  const Found* head = nullptr;
  for (const Found& f : all) {
    if (f.key == "a" && f.type == RecordType::kLarge) head = &f;
  }
  ASSERT_NE(head, nullptr);
  Flip(head->offset + 20);  // its stored length: the header no longer verifies
  Open(false);
  EXPECT_FALSE(Read("a"));
  EXPECT_TRUE(Read("b"));
  EXPECT_TRUE(Read("c"));
  EXPECT_EQ(log_->Stats().large_items, 1u);
}

// Several reads of large items in flight on one queue, with reads of small
// items between them: each completes once with its own value.
// Several large reads on one queue, with a small one among them: all in
// flight at once, or, with large_read_bytes at one item, one after the
// other in order (the others wait; none is lost).
TEST_F(SsdLargeTest, ConcurrentReadsOnOneQueue) {
  const size_t len = 2 * kRegion + 99;
  std::vector<std::string> keys = {"l0", "l1", "l2"};
  for (const uint64_t read_bytes : {uint64_t{256} << 20, uint64_t{len} + 2}) {
    SCOPED_TRACE(read_bytes);
    SsdLog& log = Open(true, 512ull << 20, read_bytes);
    for (const std::string& k : keys) ASSERT_TRUE(Put(k, ValueFor(k, len, false)));
    ASSERT_TRUE(Put("s", "small"));
    log.Sync();
    auto queue = device_->NewQueue(8);
    Done done[4];
    for (size_t i = 0; i < keys.size(); ++i) {
      log.Read(keys[i], common::HashKey(keys[i]), *queue, &done[i]);
    }
    log.Read("s", common::HashKey("s"), *queue, &done[3]);
    queue->Submit();
    DrainQueue(*queue);
    for (size_t i = 0; i < keys.size(); ++i) {
      EXPECT_EQ(done[i].calls, 1);
      ASSERT_TRUE(done[i].item);
      EXPECT_TRUE(done[i].item->ValueView() == ValueFor(keys[i], len, false));
    }
    EXPECT_EQ(done[3].calls, 1);
    EXPECT_TRUE(done[3].item);
    EXPECT_EQ(log.Stats().large_reads_waited, read_bytes > len + 2 ? 0u : 2u);
  }
}

// AppendAsync(): the caller does not wait; the item reads back at once
// (from memory while it is queued), a Remove() or Flush() cancels it, the
// queue's byte cap refuses what would pass it, and once appended it is an
// ordinary large item, across a restart too.
TEST_F(SsdLargeTest, AppendAsyncReadsAtOnceAndIsCancelledByRemoveOrFlush) {
  SsdLog& log = Open(true, 5 * kRegion);
  auto async = [&](const std::string& key, const std::string& value) {
    return log.AppendAsync(MakeItem(key, value), common::HashKey(key), nullptr, nullptr);
  };
  const std::string a = ValueFor("a", 3 * kRegion, false);
  ASSERT_EQ(async("a", a), SsdLog::AsyncResult::kQueued);
  ItemRef got = Read("a");
  ASSERT_TRUE(got);
  EXPECT_TRUE(got->ValueView() == a);
  EXPECT_TRUE(log.Contains(common::HashKey("a")));
  EXPECT_TRUE(log.Remove("a", common::HashKey("a")));
  EXPECT_FALSE(Read("a"));
  EXPECT_EQ(async("huge", ValueFor("huge", 6 * kRegion, false)), SsdLog::AsyncResult::kNoRoom);
  EXPECT_EQ(log.Stats().large_refused, 1u);
  ASSERT_EQ(async("c", ValueFor("c", 2 * kRegion, true)), SsdLog::AsyncResult::kQueued);
  log.Flush();
  EXPECT_FALSE(Read("c"));
  const std::string d = ValueFor("d", 2 * kRegion + 77, false);
  ASSERT_EQ(async("d", d), SsdLog::AsyncResult::kQueued);
  // A `now_current` that says no: nothing is queued.
  EXPECT_EQ(log.AppendAsync(MakeItem("e", d), common::HashKey("e"), [] { return false; }, nullptr),
            SsdLog::AsyncResult::kSkipped);
  // A `later_current` that says no: queued, then not appended (a miss).
  ASSERT_EQ(log.AppendAsync(MakeItem("f", d), common::HashKey("f"), nullptr, [] { return false; }),
            SsdLog::AsyncResult::kQueued);
  log.Sync();
  SsdLogStats st = log.Stats();
  EXPECT_EQ(st.large_pending_items, 0u);
  EXPECT_EQ(st.large_pending_bytes, 0u);
  EXPECT_EQ(st.large_items, 1u);
  EXPECT_FALSE(Read("e"));
  EXPECT_FALSE(Read("f"));
  got = Read("d");
  ASSERT_TRUE(got);
  EXPECT_TRUE(got->ValueView() == d);
  Close();
  Open();
  EXPECT_FALSE(Read("a"));
  EXPECT_FALSE(Read("c"));
  got = Read("d");
  ASSERT_TRUE(got);
  EXPECT_TRUE(got->ValueView() == d);
}

}  // namespace
}  // namespace strata::tiers
