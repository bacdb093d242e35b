// Warm restart: the hot-key list's file format, and WarmUp promoting a list
// back into a fresh RAM tier on the in-memory device.
#include "tiers/warm_restart.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <fstream>
#include <optional>
#include <set>
#include <string>

#include "common/hash.h"
#include "tests/support/fake_clock.h"
#include "tests/support/memory_device.h"

namespace strata::tiers {
namespace {

std::string TempPath(const char* name) {
  const char* dir = std::getenv("TMPDIR");
  return std::string(dir != nullptr ? dir : "/tmp") + "/strata-warm-" + std::to_string(getpid()) +
         "-" + name;
}

TEST(HotKeysFileTest, RoundTripAndUsedOnce) {
  std::string path = TempPath("roundtrip");
  std::vector<std::string> keys{"a", std::string(250, 'k'), "key with\x01control"};
  ASSERT_TRUE(SaveHotKeys(keys, path).ok());
  std::string why;
  EXPECT_EQ(LoadHotKeys(path, &why), keys);
  EXPECT_TRUE(why.empty());
  EXPECT_NE(access(path.c_str(), F_OK), 0);  // removed once read
  EXPECT_TRUE(LoadHotKeys(path, &why).empty());
  EXPECT_TRUE(why.empty());  // no file: a plain cold start
}

TEST(HotKeysFileTest, DamagedFileIsIgnored) {
  std::string path = TempPath("damaged");
  ASSERT_TRUE(SaveHotKeys({"alpha", "beta", "gamma"}, path).ok());
  {
    std::fstream f(path, std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(20);
    f.put('X');  // inside the keys: the checksum no longer matches
  }
  std::string why;
  EXPECT_TRUE(LoadHotKeys(path, &why).empty());
  EXPECT_EQ(why, "checksum mismatch");

  std::ofstream(path) << "something else entirely\n";
  why.clear();
  EXPECT_TRUE(LoadHotKeys(path, &why).empty());
  EXPECT_EQ(why, "not a hot-key list");
}

TEST(CasFileTest, RoundTripUsedOnceAndDamageRefused) {
  std::string path = TempPath("cas");
  ASSERT_TRUE(SaveCasHighWater(0x0000'8765'4321'0fedULL, path).ok());
  std::string why;
  EXPECT_EQ(LoadCasHighWater(path, &why), std::optional<uint64_t>(0x0000'8765'4321'0fedULL));
  EXPECT_TRUE(why.empty());
  EXPECT_FALSE(LoadCasHighWater(path, &why).has_value());  // removed once read
  EXPECT_TRUE(why.empty());

  ASSERT_TRUE(SaveCasHighWater(42, path).ok());
  {
    std::fstream f(path, std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(14);
    f.put('\x7f');  // inside the number
  }
  EXPECT_FALSE(LoadCasHighWater(path, &why).has_value());
  EXPECT_EQ(why, "checksum mismatch");
}

TEST(SketchFileTest, RoundTripKeepsTheEstimatesAndRefusesAnotherSize) {
  std::string path = TempPath("sketch");
  FrequencySketch saved(1 << 16);
  for (int i = 0; i < 1000; ++i) {
    for (int n = 0; n < i % 7; ++n) saved.Record(common::HashKey("k" + std::to_string(i)));
  }
  ASSERT_TRUE(SaveSketch(saved, path).ok());
  FrequencySketch loaded(1 << 16);
  std::string why;
  ASSERT_TRUE(LoadSketch(&loaded, path, &why)) << why;
  for (int i = 0; i < 1000; ++i) {
    uint64_t h = common::HashKey("k" + std::to_string(i));
    EXPECT_EQ(loaded.Estimate(h), saved.Estimate(h)) << i;
  }
  EXPECT_FALSE(LoadSketch(&loaded, path, &why));  // used once
  ASSERT_TRUE(SaveSketch(saved, path).ok());
  FrequencySketch other(1 << 18);  // another RAM tier size
  why.clear();
  EXPECT_FALSE(LoadSketch(&other, path, &why));
  EXPECT_EQ(why, "saved for another RAM tier size");
  EXPECT_EQ(other.Estimate(common::HashKey("k6")), 0u);
}

class WarmUpTest : public ::testing::Test {
 protected:
  WarmUpTest() : device_(32u << 20) {}

  void Start(uint64_t ram_bytes) {
    cache_.reset();
    log_.reset();
    log_ = std::make_unique<SsdLog>(SsdLogOptions{1u << 20, true, 64 * 1024}, device_, clock_);
    ASSERT_TRUE(log_->Recover().ok());
    RamTierOptions ram;
    ram.size_bytes = ram_bytes;
    ram.shards = 4;
    cache_ = std::make_unique<TieredCache>(ram, clock_, log_.get(),
                                           AdmissionOptions{AdmissionKind::kAll, 2, 0});
  }

  void Put(const std::string& key) {
    AllocResult why;
    ItemRef item = cache_->ram().Allocate(key, 0, 0, 1000, &why);
    std::memset(item->MutableValue(), key.back(), 1000);
    ASSERT_EQ(cache_->Store(StoreMode::kSet, std::move(item)), StoreResult::kStored);
  }

  common::FakeClock clock_;
  MemoryDevice device_;
  std::unique_ptr<SsdLog> log_;
  std::unique_ptr<TieredCache> cache_;
};

TEST_F(WarmUpTest, ARestartGetsTheHotKeysBackInRam) {
  Start(1u << 20);
  std::vector<std::string> keys;
  for (int i = 0; i < 300; ++i) keys.push_back("hot" + std::to_string(i));
  for (const auto& k : keys) Put(k);
  for (int round = 0; round < 3; ++round) {
    for (int i = 0; i < 100; ++i) ASSERT_TRUE(cache_->Get(keys[i]));  // the hottest third
  }
  cache_->DemoteAll();
  std::vector<std::string> hot = cache_->HotKeys();
  ASSERT_EQ(hot.size(), keys.size());
  // Hottest first: the keys read three more times lead the list.
  std::set<std::string> first(hot.begin(), hot.begin() + 100);
  for (int i = 0; i < 100; ++i) EXPECT_TRUE(first.count(keys[i])) << keys[i];

  Start(1u << 20);  // a restart: RAM is empty, the SSD has everything
  EXPECT_FALSE(cache_->ram().Contains(keys[0]));
  WarmUp warm(*cache_, device_, hot);
  warm.Wait();
  WarmUpStats st = warm.stats();
  EXPECT_TRUE(st.finished);
  EXPECT_FALSE(st.ram_full);
  EXPECT_EQ(st.promoted, keys.size());
  for (const auto& k : keys) {
    ItemRef it = cache_->Get(k);
    ASSERT_TRUE(it) << k;
    EXPECT_EQ(it->ValueView(), std::string(1000, k.back()));
  }
}

TEST_F(WarmUpTest, StopsAtTheFillMarkAndSkipsWhatChanged) {
  Start(4u << 20);
  std::vector<std::string> keys;
  for (int i = 0; i < 3000; ++i) keys.push_back("k" + std::to_string(i));
  for (const auto& k : keys) Put(k);
  cache_->DemoteAll();
  Start(1u << 20);  // restarted with a smaller RAM tier
  ASSERT_TRUE(cache_->Delete(keys[0]));  // deleted before the warm-up reaches it
  WarmUp warm(*cache_, device_, keys, 0.5);
  warm.Wait();
  WarmUpStats st = warm.stats();
  EXPECT_TRUE(st.ram_full);
  EXPECT_LT(st.promoted, keys.size());
  EXPECT_GT(st.promoted, 0u);
  EXPECT_LE(cache_->ram().Stats().bytes, cache_->ram().limit() * 6 / 10);
  EXPECT_FALSE(cache_->Get(keys[0]));
}

}  // namespace
}  // namespace strata::tiers
