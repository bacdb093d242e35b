// A bounded concurrent workout of RamTier: four threads run mixed operations
// on overlapping keys while the clock moves, the crawler runs and flushes
// happen, then the byte accounting is checked against the resident items.
// Its main value is under ASan/TSan; the final checks hold on any schedule.

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <random>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

#include "tests/support/fake_clock.h"
#include "tiers/item/item.h"
#include "tiers/ram/eviction_policy.h"
#include "tiers/ram/ram_tier.h"

namespace strata::tiers {
namespace {

constexpr uint64_t kMiB = 1ull << 20;
constexpr int kThreads = 4;
constexpr int kOpsPerThread = 6000;
constexpr int kKeys = 1000;

std::string Key(int i) {
  char buf[16];
  std::snprintf(buf, sizeof(buf), "c%05d", i);
  return buf;
}

// Every value the workload writes is made of digits and spaces.
bool ValueLooksRight(const Item& item) {
  if (item.ValueWithCrlf().substr(item.value_len) != "\r\n") return false;
  for (char c : item.ValueView()) {
    if (!((c >= '0' && c <= '9') || c == ' ')) return false;
  }
  return true;
}

class CountingSink : public EvictionSink {
 public:
  void OnEvicted(std::vector<ItemRef>& items) override {
    for (ItemRef& item : items) {
      if (!item || item->linked != 0 || !ValueLooksRight(*item)) bad.fetch_add(1);
    }
    evicted.fetch_add(items.size());
    // Calling back into the tier here must not deadlock.
    if (tier != nullptr) (void)tier->Get(items.front()->Key());
  }
  RamTier* tier = nullptr;
  std::atomic<uint64_t> evicted{0};
  std::atomic<uint64_t> bad{0};
};

struct Held {
  ItemRef ref;
  std::string copy;
};

void Worker(int id, RamTier& tier, common::FakeClock& clock, std::atomic<int>& errors) {
  std::mt19937_64 rng(1000 + id);
  std::vector<Held> held;
  auto fail = [&](const char* what) {
    errors.fetch_add(1);
    ADD_FAILURE() << "thread " << id << ": " << what;
  };
  auto put = [&](StoreMode mode, const std::string& key, uint64_t cas = 0) {
    size_t len = 1 + rng() % (rng() % 4 == 0 ? 16000 : 12);
    uint32_t exptime =
        rng() % 3 == 0 ? static_cast<uint32_t>(clock.NowSeconds() + 1 + rng() % 3) : 0;
    AllocResult why;
    ItemRef item = tier.Allocate(key, static_cast<uint32_t>(rng() % 3), exptime,
                                 static_cast<uint32_t>(len), &why);
    if (!item) {
      fail("Allocate failed");
      return;
    }
    char digit = static_cast<char>('0' + rng() % 10);
    std::memset(item->MutableValue(), digit, len);
    uint64_t stored_cas = 0;
    StoreResult r = tier.Store(mode, std::move(item), cas, &stored_cas);
    if (r == StoreResult::kStored && stored_cas == 0) fail("stored without a CAS unique");
    if (r == StoreResult::kTooLarge || r == StoreResult::kNoMemory) fail("unexpected result");
  };
  for (int op = 0; op < kOpsPerThread; ++op) {
    std::string key = Key(static_cast<int>(rng() % kKeys));
    uint64_t dice = rng() % 100;
    if (dice < 30) {
      ItemRef item = tier.Get(key);
      if (item) {
        if (!ValueLooksRight(*item)) fail("corrupt value");
        if (item->Key() != key) fail("wrong key");
        Held h{item, std::string(item->ValueView())};
        if (held.size() < 8) {
          held.push_back(std::move(h));
        } else {
          Held& slot = held[rng() % held.size()];
          if (slot.ref->ValueView() != slot.copy) fail("held value changed");
          slot = std::move(h);
        }
      }
    } else if (dice < 50) {
      put(StoreMode::kSet, key);
    } else if (dice < 54) {
      put(StoreMode::kAdd, key);
    } else if (dice < 58) {
      put(StoreMode::kReplace, key);
    } else if (dice < 62) {
      put(StoreMode::kAppend, key);
    } else if (dice < 66) {
      put(StoreMode::kPrepend, key);
    } else if (dice < 71) {
      ItemRef item = tier.Get(key);
      uint64_t cas = item ? item->Cas() : 1;
      item.Reset();
      put(StoreMode::kCas, key, cas);
    } else if (dice < 80) {
      (void)tier.Delete(key);
    } else if (dice < 92) {
      uint64_t result = 0;
      DeltaResult r = tier.Delta(key, rng() % 2 == 0, rng() % 1000, &result);
      (void)r;
    } else if (dice < 96) {
      (void)tier.Touch(key, static_cast<uint32_t>(clock.NowSeconds() + rng() % 4));
    } else {
      uint32_t exptime = 0;
      ItemRef item = tier.Get(key, &exptime);
      if (item && !ValueLooksRight(*item)) fail("corrupt value (gat)");
    }
    // Background-ish duties, spread over the threads.
    if (id == 0 && op % 400 == 399) clock.Advance(1);
    if (id == 1 && op % 300 == 0) (void)tier.ReapExpired(64);
    if (id == 2 && op == kOpsPerThread / 2) tier.FlushAll(0);
    if (id == 3 && op == kOpsPerThread / 3) tier.FlushAll(clock.NowSeconds() + 2);
    if (id == 3 && op == kOpsPerThread / 4) (void)tier.SetLimit(kMiB);
  }
  for (Held& h : held) {
    if (h.ref->ValueView() != h.copy) fail("held value changed");
  }
}

class RamTierConcurrencyTest : public ::testing::TestWithParam<EvictionKind> {};

TEST_P(RamTierConcurrencyTest, MixedOpsKeepAccountingExact) {
  common::FakeClock clock;
  RamTierOptions options;
  options.size_bytes = 2 * kMiB;  // lowered to 1 MiB during the run
  options.max_item_size = 64 * 1024;
  options.shards = 8;
  options.eviction = GetParam();
  CountingSink sink;
  RamTier tier(options, clock, &sink);
  sink.tier = &tier;

  std::atomic<int> errors{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back(Worker, t, std::ref(tier), std::ref(clock), std::ref(errors));
  }
  for (std::thread& t : threads) t.join();
  EXPECT_EQ(errors.load(), 0);
  EXPECT_EQ(sink.bad.load(), 0u);

  // Take back whatever expired (and run a due delayed flush), then every
  // resident item is live and visible through Get.
  (void)tier.ReapExpired(SIZE_MAX);
  RamTierStats stats = tier.Stats();
  uint64_t found = 0;
  uint64_t charged = 0;
  for (int i = 0; i < kKeys; ++i) {
    ItemRef item = tier.Get(Key(i));
    if (!item) continue;
    ++found;
    charged += ItemCharge(item.get());
    EXPECT_TRUE(ValueLooksRight(*item));
  }
  EXPECT_EQ(found, stats.curr_items);
  EXPECT_EQ(charged, stats.bytes);
  EXPECT_LE(stats.bytes, tier.limit());
  EXPECT_EQ(tier.limit(), kMiB);
  EXPECT_EQ(sink.evicted.load(), stats.evictions);
  EXPECT_GT(stats.evictions, 0u);
  EXPECT_GE(stats.total_items, stats.curr_items);

  // Everything can still be deleted and the accounting returns to zero.
  for (int i = 0; i < kKeys; ++i) (void)tier.Delete(Key(i));
  stats = tier.Stats();
  EXPECT_EQ(stats.curr_items, 0u);
  EXPECT_EQ(stats.bytes, 0u);
}

INSTANTIATE_TEST_SUITE_P(Policies, RamTierConcurrencyTest,
                         ::testing::Values(EvictionKind::kS3Fifo, EvictionKind::kLru),
                         [](const ::testing::TestParamInfo<EvictionKind>& info) {
                           return std::string(EvictionKindName(info.param));
                         });

TEST(RamTierConcurrentCasTest, UniquesAreUniqueAcrossThreadsAndShards) {
  common::FakeClock clock;
  RamTierOptions options;
  options.size_bytes = 64 * kMiB;
  options.shards = 64;
  RamTier tier(options, clock);
  constexpr int kStores = 2000;
  std::vector<std::vector<uint64_t>> uniques(kThreads);
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&tier, &uniques, t] {
      for (int i = 0; i < kStores; ++i) {
        AllocResult why;
        ItemRef item = tier.Allocate(Key(i % 300), 0, 0, 1, &why);
        ASSERT_TRUE(item);
        item->MutableValue()[0] = '1';
        uint64_t cas = 0;
        ASSERT_EQ(tier.Store(StoreMode::kSet, std::move(item), 0, &cas), StoreResult::kStored);
        uniques[t].push_back(cas);
      }
    });
  }
  for (std::thread& t : threads) t.join();
  std::vector<uint64_t> all;
  for (const std::vector<uint64_t>& mine : uniques) {
    // Each thread sees its own uniques increase.
    EXPECT_TRUE(std::is_sorted(mine.begin(), mine.end()));
    all.insert(all.end(), mine.begin(), mine.end());
  }
  std::sort(all.begin(), all.end());
  EXPECT_EQ(std::adjacent_find(all.begin(), all.end()), all.end()) << "a CAS unique repeated";
  EXPECT_EQ(all.size(), static_cast<size_t>(kThreads * kStores));
  EXPECT_NE(all.front(), 0u);
}

}  // namespace
}  // namespace strata::tiers
