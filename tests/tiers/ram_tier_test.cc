// Tests for RamTier: memcached storage semantics (every StoreMode, CAS,
// expiry, touch, delete, incr/decr, flush_all), the byte budget and eviction
// (through the EvictionSink), the expiry crawler and the size checks. Time
// is a FakeClock; nothing sleeps.

#include "tiers/ram/ram_tier.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <cstdio>
#include <cstring>
#include <functional>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <unordered_set>
#include <vector>

#include "common/hash.h"
#include "tests/support/fake_clock.h"
#include "tiers/item/item.h"
#include "tiers/ram/eviction_policy.h"

namespace strata::tiers {
namespace {

constexpr uint64_t kMiB = 1ull << 20;

std::string Key(int i) {
  char buf[16];
  std::snprintf(buf, sizeof(buf), "key%06d", i);
  return buf;
}

class RamTierTest : public ::testing::Test {
 protected:
  static RamTierOptions DefaultOptions() {
    RamTierOptions options;
    options.size_bytes = 64 * kMiB;
    options.shards = 16;
    return options;
  }

  RamTierTest() : tier_(std::make_unique<RamTier>(DefaultOptions(), clock_)) {}

  void Reset(const RamTierOptions& options, EvictionSink* sink = nullptr) {
    tier_ = std::make_unique<RamTier>(options, clock_, sink);
  }

  uint32_t Now() const { return static_cast<uint32_t>(clock_.NowSeconds()); }

  // Allocates, fills and stores one item.
  StoreResult Put(std::string_view key, std::string_view value, StoreMode mode = StoreMode::kSet,
                  uint32_t flags = 0, uint32_t exptime = 0, uint64_t cas = 0,
                  uint64_t* stored_cas = nullptr) {
    AllocResult why = AllocResult::kOk;
    ItemRef item = tier_->Allocate(key, flags, exptime, static_cast<uint32_t>(value.size()), &why);
    EXPECT_EQ(why, AllocResult::kOk);
    if (!item) return StoreResult::kNoMemory;
    std::memcpy(item->MutableValue(), value.data(), value.size());
    return tier_->Store(mode, std::move(item), cas, stored_cas);
  }

  std::optional<std::string> Value(std::string_view key) {
    ItemRef item = tier_->Get(key);
    if (!item) return std::nullopt;
    return std::string(item->ValueView());
  }

  uint64_t CasOf(std::string_view key) {
    ItemRef item = tier_->Get(key);
    return item ? item->Cas() : 0;
  }

  // Sum of ItemCharge over the given keys that are resident (through Get).
  uint64_t ChargeOf(const std::vector<std::string>& keys, uint64_t* found = nullptr) {
    uint64_t total = 0;
    uint64_t n = 0;
    for (const std::string& key : keys) {
      ItemRef item = tier_->Get(key);
      if (!item) continue;
      total += ItemCharge(item.get());
      ++n;
    }
    if (found != nullptr) *found = n;
    return total;
  }

  common::FakeClock clock_;
  std::unique_ptr<RamTier> tier_;
};

// ------------------------------------------------------------ store modes

TEST_F(RamTierTest, SetThenGet) {
  EXPECT_EQ(Value("k"), std::nullopt);
  ASSERT_EQ(Put("k", "hello", StoreMode::kSet, /*flags=*/123), StoreResult::kStored);
  ItemRef item = tier_->Get("k");
  ASSERT_TRUE(item);
  EXPECT_EQ(item->Key(), "k");
  EXPECT_EQ(item->ValueView(), "hello");
  EXPECT_EQ(item->ValueWithCrlf(), "hello\r\n");
  EXPECT_EQ(item->Flags(), 123u);
  EXPECT_NE(item->Cas(), 0u);
  EXPECT_EQ(item->linked, 1);
  // Set overwrites.
  ASSERT_EQ(Put("k", "world!", StoreMode::kSet, 7), StoreResult::kStored);
  EXPECT_EQ(Value("k"), "world!");
  // The reference held from before still sees the old version.
  EXPECT_EQ(item->ValueView(), "hello");
  EXPECT_EQ(item->linked, 0);
  RamTierStats stats = tier_->Stats();
  EXPECT_EQ(stats.curr_items, 1u);
  EXPECT_EQ(stats.total_items, 2u);
}

TEST_F(RamTierTest, EmptyValue) {
  ASSERT_EQ(Put("k", ""), StoreResult::kStored);
  EXPECT_EQ(Value("k"), "");
  EXPECT_EQ(tier_->Get("k")->ValueWithCrlf(), "\r\n");
}

TEST_F(RamTierTest, AddOnlyWhenAbsent) {
  EXPECT_EQ(Put("k", "first", StoreMode::kAdd), StoreResult::kStored);
  EXPECT_EQ(Put("k", "second", StoreMode::kAdd), StoreResult::kNotStored);
  EXPECT_EQ(Value("k"), "first");
}

TEST_F(RamTierTest, ReplaceOnlyWhenPresent) {
  EXPECT_EQ(Put("k", "v", StoreMode::kReplace), StoreResult::kNotStored);
  EXPECT_EQ(Value("k"), std::nullopt);
  ASSERT_EQ(Put("k", "v1"), StoreResult::kStored);
  EXPECT_EQ(Put("k", "v2", StoreMode::kReplace, 5), StoreResult::kStored);
  EXPECT_EQ(Value("k"), "v2");
  EXPECT_EQ(tier_->Get("k")->Flags(), 5u);
}

TEST_F(RamTierTest, AppendAndPrepend) {
  EXPECT_EQ(Put("k", "x", StoreMode::kAppend), StoreResult::kNotStored);
  EXPECT_EQ(Put("k", "x", StoreMode::kPrepend), StoreResult::kNotStored);
  EXPECT_EQ(Value("k"), std::nullopt);
  ASSERT_EQ(Put("k", "middle"), StoreResult::kStored);
  EXPECT_EQ(Put("k", "-end", StoreMode::kAppend), StoreResult::kStored);
  EXPECT_EQ(Put("k", "start-", StoreMode::kPrepend), StoreResult::kStored);
  EXPECT_EQ(Value("k"), "start-middle-end");
  EXPECT_EQ(tier_->Get("k")->ValueWithCrlf(), "start-middle-end\r\n");
}

TEST_F(RamTierTest, AppendPrependKeepOldFlagsAndExptime) {
  uint32_t exptime = Now() + 100;
  ASSERT_EQ(Put("k", "a", StoreMode::kSet, /*flags=*/42, exptime), StoreResult::kStored);
  uint64_t cas_before = CasOf("k");
  uint64_t cas_after = 0;
  ASSERT_EQ(Put("k", "b", StoreMode::kAppend, /*flags=*/9, /*exptime=*/0, 0, &cas_after),
            StoreResult::kStored);
  ASSERT_EQ(Put("k", "c", StoreMode::kPrepend, /*flags=*/0, /*exptime=*/Now() + 5000),
            StoreResult::kStored);
  ItemRef item = tier_->Get("k");
  ASSERT_TRUE(item);
  EXPECT_EQ(item->ValueView(), "cab");
  EXPECT_EQ(item->Flags(), 42u);
  EXPECT_EQ(item->exptime, exptime);
  EXPECT_GT(cas_after, cas_before);
  item.Reset();
  // It still expires when the original item would have.
  clock_.Advance(100);
  EXPECT_EQ(Value("k"), std::nullopt);
}

TEST_F(RamTierTest, AppendBeyondMaxItemSizeIsNotStored) {
  RamTierOptions options = DefaultOptions();
  options.max_item_size = 1024;
  Reset(options);
  // Key 1 byte, flags 0: value fits up to 1024 - 56 - 2 - 2 = 964 bytes.
  ASSERT_EQ(Put("k", std::string(900, 'a')), StoreResult::kStored);
  EXPECT_EQ(Put("k", std::string(64, 'b'), StoreMode::kAppend), StoreResult::kStored);
  EXPECT_EQ(Value("k")->size(), 964u);
  EXPECT_EQ(Put("k", "c", StoreMode::kAppend), StoreResult::kNotStored);
  EXPECT_EQ(Put("k", "c", StoreMode::kPrepend), StoreResult::kNotStored);
  EXPECT_EQ(Value("k")->size(), 964u);
}

TEST_F(RamTierTest, CasSemantics) {
  EXPECT_EQ(Put("k", "v", StoreMode::kCas, 0, 0, /*cas=*/1), StoreResult::kNotFound);
  uint64_t cas1 = 0;
  ASSERT_EQ(Put("k", "v1", StoreMode::kSet, 0, 0, 0, &cas1), StoreResult::kStored);
  EXPECT_EQ(CasOf("k"), cas1);
  EXPECT_EQ(Put("k", "bad", StoreMode::kCas, 0, 0, cas1 + 1000), StoreResult::kExists);
  EXPECT_EQ(Value("k"), "v1");
  uint64_t cas2 = 0;
  EXPECT_EQ(Put("k", "v2", StoreMode::kCas, 3, 0, cas1, &cas2), StoreResult::kStored);
  EXPECT_GT(cas2, cas1);
  EXPECT_EQ(Value("k"), "v2");
  EXPECT_EQ(tier_->Get("k")->Flags(), 3u);
  // The old unique is stale now.
  EXPECT_EQ(Put("k", "v3", StoreMode::kCas, 0, 0, cas1), StoreResult::kExists);
  EXPECT_EQ(Value("k"), "v2");
  // A deleted key is NOT_FOUND, even with its last unique.
  ASSERT_TRUE(tier_->Delete("k"));
  EXPECT_EQ(Put("k", "v4", StoreMode::kCas, 0, 0, cas2), StoreResult::kNotFound);
}

TEST_F(RamTierTest, CasOnExpiredItemIsNotFound) {
  uint64_t cas = 0;
  ASSERT_EQ(Put("k", "v", StoreMode::kSet, 0, Now() + 1, 0, &cas), StoreResult::kStored);
  clock_.Advance(1);
  EXPECT_EQ(Put("k", "v2", StoreMode::kCas, 0, 0, cas), StoreResult::kNotFound);
}

TEST_F(RamTierTest, FailedStoresReturnNoCasAndChangeNothing) {
  ASSERT_EQ(Put("k", "v"), StoreResult::kStored);
  RamTierStats before = tier_->Stats();
  uint64_t cas = 12345;
  EXPECT_EQ(Put("k", "x", StoreMode::kAdd, 0, 0, 0, &cas), StoreResult::kNotStored);
  EXPECT_EQ(Put("nope", "x", StoreMode::kReplace, 0, 0, 0, &cas), StoreResult::kNotStored);
  EXPECT_EQ(cas, 12345u);
  RamTierStats after = tier_->Stats();
  EXPECT_EQ(after.bytes, before.bytes);
  EXPECT_EQ(after.curr_items, before.curr_items);
  EXPECT_EQ(after.total_items, before.total_items);
}

// Items keep 48 bits of CAS: a recovered unique beyond that is clamped, and
// the counter wraps to 1, never to 0 (which means "not stored").
TEST_F(RamTierTest, CasCounterWrapsAtFortyEightBitsSkippingZero) {
  tier_->EnsureCasAbove(~uint64_t{0});
  uint64_t cas = 0;
  ASSERT_EQ(Put("a", "1", StoreMode::kSet, 0, 0, 0, &cas), StoreResult::kStored);
  EXPECT_EQ(cas, kMaxCas);
  EXPECT_EQ(CasOf("a"), kMaxCas);
  ASSERT_EQ(Put("b", "2", StoreMode::kSet, 0, 0, 0, &cas), StoreResult::kStored);
  EXPECT_EQ(cas, 1u);
  EXPECT_EQ(CasOf("b"), 1u);
  EXPECT_EQ(Put("a", "3", StoreMode::kCas, 0, 0, kMaxCas), StoreResult::kStored);
  EXPECT_EQ(Value("a"), "3");

  // A flush just before the wrap does not hide the items stored after it.
  Reset(DefaultOptions());
  tier_->EnsureCasAbove(kMaxCas - 2);
  ASSERT_EQ(Put("c", "4", StoreMode::kSet, 0, 0, 0, &cas), StoreResult::kStored);
  EXPECT_EQ(cas, kMaxCas - 1);
  tier_->FlushAll(clock_.NowSeconds() - 1);
  clock_.Advance(1);  // a flush also hides items stored in its own second
  EXPECT_FALSE(Value("c"));
  ASSERT_EQ(Put("d", "5", StoreMode::kSet, 0, 0, 0, &cas), StoreResult::kStored);
  EXPECT_EQ(cas, kMaxCas);
  ASSERT_EQ(Put("e", "6", StoreMode::kSet, 0, 0, 0, &cas), StoreResult::kStored);
  EXPECT_EQ(cas, 1u);
  EXPECT_EQ(Value("d"), "5");
  EXPECT_EQ(Value("e"), "6");
}

TEST_F(RamTierTest, CasUniquesIncreaseAcrossKeysAndShards) {
  RamTierOptions options = DefaultOptions();
  options.shards = 64;
  Reset(options);
  std::set<uint64_t> seen;
  uint64_t last = 0;
  for (int i = 0; i < 2000; ++i) {
    uint64_t cas = 0;
    std::string key = Key(i % 500);  // overwrites too
    StoreMode mode = i % 3 == 0 && i >= 500 ? StoreMode::kAppend : StoreMode::kSet;
    ASSERT_EQ(Put(key, "1", mode, 0, 0, 0, &cas), StoreResult::kStored);
    ASSERT_GT(cas, last) << i;
    ASSERT_TRUE(seen.insert(cas).second);
    ASSERT_EQ(CasOf(key), cas);
    last = cas;
  }
  // incr/decr make a new version, with a new unique, too.
  ASSERT_EQ(Put("n", "10"), StoreResult::kStored);
  uint64_t before = CasOf("n");
  uint64_t result = 0;
  ASSERT_EQ(tier_->Delta("n", true, 1, &result), DeltaResult::kOk);
  EXPECT_GT(CasOf("n"), before);
}

// ----------------------------------------------------------------- expiry

TEST_F(RamTierTest, ExpiredItemIsNotReturnedAndIsReclaimed) {
  ASSERT_EQ(Put("k", "v", StoreMode::kSet, 0, Now() + 10), StoreResult::kStored);
  clock_.Advance(9);
  EXPECT_EQ(Value("k"), "v");
  clock_.Advance(1);  // exptime <= now: expired
  EXPECT_EQ(Value("k"), std::nullopt);
  RamTierStats stats = tier_->Stats();
  EXPECT_EQ(stats.reclaimed, 1u);
  EXPECT_EQ(stats.curr_items, 0u);
  EXPECT_EQ(stats.bytes, 0u);
  EXPECT_EQ(stats.evictions, 0u);
}

TEST_F(RamTierTest, ExpiredUnfetchedIsCounted) {
  ASSERT_EQ(Put("fetched", "v", StoreMode::kSet, 0, Now() + 1), StoreResult::kStored);
  ASSERT_EQ(Put("unfetched", "v", StoreMode::kSet, 0, Now() + 1), StoreResult::kStored);
  EXPECT_TRUE(Value("fetched"));
  clock_.Advance(1);
  EXPECT_FALSE(Value("fetched"));
  EXPECT_FALSE(Value("unfetched"));
  RamTierStats stats = tier_->Stats();
  EXPECT_EQ(stats.reclaimed, 2u);
  EXPECT_EQ(stats.expired_unfetched, 1u);
}

TEST_F(RamTierTest, ExptimeZeroNeverExpires) {
  ASSERT_EQ(Put("k", "v", StoreMode::kSet, 0, 0), StoreResult::kStored);
  clock_.Advance(10ll * 365 * 24 * 3600);
  EXPECT_EQ(Value("k"), "v");
  EXPECT_EQ(tier_->ReapExpired(1000), 0u);
  EXPECT_EQ(Value("k"), "v");
}

TEST_F(RamTierTest, StoreOverExpiredItemBehavesAsAbsent) {
  ASSERT_EQ(Put("k", "old", StoreMode::kSet, 0, Now() + 1), StoreResult::kStored);
  clock_.Advance(1);
  EXPECT_EQ(Put("k", "x", StoreMode::kReplace), StoreResult::kNotStored);
  EXPECT_EQ(Put("k", "x", StoreMode::kAppend), StoreResult::kNotStored);
  EXPECT_EQ(Put("k", "new", StoreMode::kAdd), StoreResult::kStored);
  EXPECT_EQ(Value("k"), "new");
  RamTierStats stats = tier_->Stats();
  EXPECT_EQ(stats.reclaimed, 1u);
  EXPECT_EQ(stats.curr_items, 1u);
  EXPECT_EQ(stats.bytes, ChargeOf({"k"}));
}

// Regression: storing over an expired item that other keys follow in its
// probe run must keep them reachable (the erase shifts them back before the
// store takes a slot). With one shard a key's home slot is
// HashKey(key) & (slots - 1), 64 slots at first.
TEST_F(RamTierTest, StoreOverExpiredItemKeepsItsHashChain) {
  RamTierOptions options = DefaultOptions();
  options.shards = 1;
  for (StoreMode mode : {StoreMode::kSet, StoreMode::kAdd}) {
    Reset(options);
    const std::string expiring = "expiring";
    uint64_t home = common::HashKey(expiring) & 63;
    std::vector<std::string> neighbours;
    for (int i = 0; neighbours.size() < 3; ++i) {
      std::string key = "n" + std::to_string(i);
      if ((common::HashKey(key) & 63) == home) neighbours.push_back(key);
    }
    // The expiring item first, so the neighbours follow it in the run.
    ASSERT_EQ(Put(expiring, "v", StoreMode::kSet, 0, Now() + 1), StoreResult::kStored);
    for (const std::string& key : neighbours) ASSERT_EQ(Put(key, key), StoreResult::kStored);
    clock_.Advance(1);
    ASSERT_EQ(Put(expiring, "fresh", mode), StoreResult::kStored);
    EXPECT_EQ(Value(expiring), "fresh");
    for (const std::string& key : neighbours) EXPECT_EQ(Value(key), key) << key;
    std::vector<std::string> all = neighbours;
    all.push_back(expiring);
    uint64_t found = 0;
    uint64_t charge = ChargeOf(all, &found);
    RamTierStats stats = tier_->Stats();
    EXPECT_EQ(found, 4u);
    EXPECT_EQ(stats.curr_items, 4u);
    EXPECT_EQ(stats.bytes, charge);
    // Every item must still be deletable (a lost one would leak or crash).
    for (const std::string& key : all) EXPECT_TRUE(tier_->Delete(key)) << key;
    EXPECT_EQ(tier_->Stats().bytes, 0u);
  }
}

// ------------------------------------------------------------ touch / gat

TEST_F(RamTierTest, Touch) {
  EXPECT_FALSE(tier_->Touch("missing", Now() + 10));
  ASSERT_EQ(Put("k", "v", StoreMode::kSet, 0, Now() + 5), StoreResult::kStored);
  EXPECT_TRUE(tier_->Touch("k", Now() + 100));
  EXPECT_EQ(tier_->Get("k")->exptime, Now() + 100);
  clock_.Advance(50);
  EXPECT_EQ(Value("k"), "v");
  // Touch to 0: never expires.
  EXPECT_TRUE(tier_->Touch("k", 0));
  clock_.Advance(1000);
  EXPECT_EQ(Value("k"), "v");
  // Touching into the past expires it.
  EXPECT_TRUE(tier_->Touch("k", Now() - 1));
  EXPECT_EQ(Value("k"), std::nullopt);
  // An expired item cannot be touched back to life.
  ASSERT_EQ(Put("e", "v", StoreMode::kSet, 0, Now() + 1), StoreResult::kStored);
  clock_.Advance(1);
  EXPECT_FALSE(tier_->Touch("e", 0));
  EXPECT_EQ(Value("e"), std::nullopt);
}

TEST_F(RamTierTest, GetWithNewExptime) {
  uint32_t later = Now() + 30;
  EXPECT_FALSE(tier_->Get("missing", &later));
  ASSERT_EQ(Put("k", "v", StoreMode::kSet, 0, Now() + 5), StoreResult::kStored);
  ItemRef item = tier_->Get("k", &later);
  ASSERT_TRUE(item);
  EXPECT_EQ(item->ValueView(), "v");
  EXPECT_EQ(item->exptime, later);
  item.Reset();
  clock_.Advance(29);
  EXPECT_EQ(Value("k"), "v");
  clock_.Advance(1);
  EXPECT_EQ(Value("k"), std::nullopt);
}

// ----------------------------------------------------------------- delete

TEST_F(RamTierTest, Delete) {
  EXPECT_FALSE(tier_->Delete("k"));
  ASSERT_EQ(Put("k", "v"), StoreResult::kStored);
  ItemRef held = tier_->Get("k");
  EXPECT_TRUE(tier_->Delete("k"));
  EXPECT_FALSE(tier_->Delete("k"));
  EXPECT_EQ(Value("k"), std::nullopt);
  // A holder keeps the deleted item's memory alive and intact.
  EXPECT_EQ(held->ValueView(), "v");
  RamTierStats stats = tier_->Stats();
  EXPECT_EQ(stats.curr_items, 0u);
  EXPECT_EQ(stats.bytes, 0u);
  EXPECT_EQ(stats.evictions, 0u);
}

TEST_F(RamTierTest, DeleteOfExpiredItemReturnsFalseAndReclaims) {
  ASSERT_EQ(Put("k", "v", StoreMode::kSet, 0, Now() + 1), StoreResult::kStored);
  clock_.Advance(1);
  EXPECT_FALSE(tier_->Delete("k"));
  RamTierStats stats = tier_->Stats();
  EXPECT_EQ(stats.reclaimed, 1u);
  EXPECT_EQ(stats.curr_items, 0u);
  EXPECT_EQ(stats.bytes, 0u);
}

// ------------------------------------------------------------- incr/decr

TEST_F(RamTierTest, DeltaBasics) {
  uint64_t result = 0;
  EXPECT_EQ(tier_->Delta("n", true, 1, &result), DeltaResult::kNotFound);
  ASSERT_EQ(Put("n", "10"), StoreResult::kStored);
  EXPECT_EQ(tier_->Delta("n", true, 5, &result), DeltaResult::kOk);
  EXPECT_EQ(result, 15u);
  EXPECT_EQ(Value("n"), "15");
  EXPECT_EQ(tier_->Delta("n", false, 3, &result), DeltaResult::kOk);
  EXPECT_EQ(result, 12u);
  EXPECT_EQ(Value("n"), "12");
  EXPECT_EQ(tier_->Delta("n", true, 0, &result), DeltaResult::kOk);
  EXPECT_EQ(result, 12u);
}

TEST_F(RamTierTest, IncrWrapsAt2To64) {
  uint64_t result = 0;
  ASSERT_EQ(Put("n", "18446744073709551615"), StoreResult::kStored);
  EXPECT_EQ(tier_->Delta("n", true, 1, &result), DeltaResult::kOk);
  EXPECT_EQ(result, 0u);
  ASSERT_EQ(Put("n", "18446744073709551615"), StoreResult::kStored);
  EXPECT_EQ(tier_->Delta("n", true, 2, &result), DeltaResult::kOk);
  EXPECT_EQ(result, 1u);
  ASSERT_EQ(Put("m", "18446744073709551610"), StoreResult::kStored);
  EXPECT_EQ(tier_->Delta("m", true, 5, &result), DeltaResult::kOk);
  EXPECT_EQ(result, UINT64_MAX);
  EXPECT_EQ(Value("m"), "18446744073709551615");
}

TEST_F(RamTierTest, DecrClampsAtZero) {
  uint64_t result = 99;
  ASSERT_EQ(Put("n", "5"), StoreResult::kStored);
  EXPECT_EQ(tier_->Delta("n", false, 6, &result), DeltaResult::kOk);
  EXPECT_EQ(result, 0u);
  EXPECT_EQ(Value("n"), "0");
  EXPECT_EQ(tier_->Delta("n", false, UINT64_MAX, &result), DeltaResult::kOk);
  EXPECT_EQ(result, 0u);
  ASSERT_EQ(Put("m", "7"), StoreResult::kStored);
  EXPECT_EQ(tier_->Delta("m", false, 7, &result), DeltaResult::kOk);
  EXPECT_EQ(result, 0u);
}

TEST_F(RamTierTest, DeltaOnNonNumericValues) {
  const char* bad[] = {"abc", "", "12abc", "-5", "18446744073709551616", " ", "-", "0x10", "+-1"};
  for (const char* value : bad) {
    SCOPED_TRACE(std::string("value \"") + value + "\"");
    ASSERT_EQ(Put("n", value), StoreResult::kStored);
    uint64_t result = 77;
    EXPECT_EQ(tier_->Delta("n", true, 1, &result), DeltaResult::kNonNumeric);
    EXPECT_EQ(tier_->Delta("n", false, 1, &result), DeltaResult::kNonNumeric);
    EXPECT_EQ(Value("n"), value);  // untouched
  }
}

TEST_F(RamTierTest, DeltaAcceptsWhatStrtoullAccepts) {
  struct Case {
    const char* value;
    uint64_t parsed;
  };
  // Leading white space, a sign, trailing white space; "-0" is 0; a negative
  // number that is still positive as int64 after negation is accepted by
  // memcached's safe_strtoull too.
  const Case cases[] = {{" 5", 5}, {"\t7", 7}, {"-0", 0},       {"+9", 9},
                        {"5 ", 5}, {"007", 7}, {"12 junk", 12}, {"-18446744073709551615", 1}};
  for (const Case& c : cases) {
    SCOPED_TRACE(std::string("value \"") + c.value + "\"");
    ASSERT_EQ(Put("n", c.value), StoreResult::kStored);
    uint64_t result = 77;
    ASSERT_EQ(tier_->Delta("n", true, 0, &result), DeltaResult::kOk);
    EXPECT_EQ(result, c.parsed);
  }
}

TEST_F(RamTierTest, DeltaInPlacePadsWithSpaces) {
  ASSERT_EQ(Put("n", "100", StoreMode::kSet, /*flags=*/3, Now() + 100), StoreResult::kStored);
  Item* before = tier_->Get("n").get();  // the table keeps it alive
  uint64_t cas_before = before->Cas();
  uint64_t result = 0;
  ASSERT_EQ(tier_->Delta("n", false, 95, &result), DeltaResult::kOk);
  EXPECT_EQ(result, 5u);
  ItemRef after = tier_->Get("n");
  EXPECT_EQ(after.get(), before);  // same item, updated in place
  EXPECT_EQ(after->ValueView(), "5  ");
  EXPECT_EQ(after->ValueWithCrlf(), "5  \r\n");
  EXPECT_GT(after->Cas(), cas_before);
  EXPECT_EQ(after->Flags(), 3u);
  EXPECT_EQ(after->exptime, Now() + 100);
  after.Reset();
  // A padded value is still a number.
  ASSERT_EQ(tier_->Delta("n", true, 10, &result), DeltaResult::kOk);
  EXPECT_EQ(result, 15u);
  EXPECT_EQ(Value("n"), "15 ");
  // "-0" is rewritten in place too.
  ASSERT_EQ(Put("z", "-0"), StoreResult::kStored);
  ASSERT_EQ(tier_->Delta("z", true, 3, &result), DeltaResult::kOk);
  EXPECT_EQ(Value("z"), "3 ");
  EXPECT_EQ(tier_->Stats().bytes, ChargeOf({"n", "z"}));
}

TEST_F(RamTierTest, DeltaWithHeldRefMakesNewExactItem) {
  ASSERT_EQ(Put("n", "100", StoreMode::kSet, /*flags=*/8, Now() + 100), StoreResult::kStored);
  ItemRef held = tier_->Get("n");
  ASSERT_TRUE(held);
  uint64_t result = 0;
  ASSERT_EQ(tier_->Delta("n", false, 95, &result), DeltaResult::kOk);
  EXPECT_EQ(result, 5u);
  // Values are immutable to holders.
  EXPECT_EQ(held->ValueView(), "100");
  EXPECT_EQ(held->ValueWithCrlf(), "100\r\n");
  ItemRef now = tier_->Get("n");
  ASSERT_TRUE(now);
  EXPECT_NE(now.get(), held.get());
  EXPECT_EQ(now->ValueView(), "5");
  EXPECT_EQ(now->ValueWithCrlf(), "5\r\n");
  EXPECT_EQ(now->Flags(), 8u);
  EXPECT_EQ(now->exptime, Now() + 100);
  EXPECT_GT(now->Cas(), held->Cas());
  EXPECT_EQ(held->linked, 0);
  RamTierStats stats = tier_->Stats();
  EXPECT_EQ(stats.curr_items, 1u);
  EXPECT_EQ(stats.bytes, ItemCharge(now.get()));
}

TEST_F(RamTierTest, IncrThatGrowsMakesNewItem) {
  ASSERT_EQ(Put("n", "99"), StoreResult::kStored);
  uint64_t result = 0;
  ASSERT_EQ(tier_->Delta("n", true, 1, &result), DeltaResult::kOk);
  EXPECT_EQ(result, 100u);
  ItemRef after = tier_->Get("n");
  EXPECT_EQ(after->ValueView(), "100");
  EXPECT_EQ(after->value_len, 3u);
  EXPECT_EQ(after->ValueWithCrlf(), "100\r\n");
  RamTierStats stats = tier_->Stats();
  EXPECT_EQ(stats.curr_items, 1u);
  EXPECT_EQ(stats.bytes, ItemCharge(after.get()));
}

TEST_F(RamTierTest, DeltaOnExpiredItemIsNotFound) {
  ASSERT_EQ(Put("n", "1", StoreMode::kSet, 0, Now() + 1), StoreResult::kStored);
  clock_.Advance(1);
  uint64_t result = 0;
  EXPECT_EQ(tier_->Delta("n", true, 1, &result), DeltaResult::kNotFound);
  RamTierStats stats = tier_->Stats();
  EXPECT_EQ(stats.reclaimed, 1u);
  EXPECT_EQ(stats.bytes, 0u);
}

// -------------------------------------------------------------- flush_all

TEST_F(RamTierTest, FlushAllNow) {
  std::vector<std::string> keys;
  for (int i = 0; i < 100; ++i) {
    keys.push_back(Key(i));
    ASSERT_EQ(Put(keys.back(), "v"), StoreResult::kStored);
  }
  tier_->FlushAll(clock_.NowSeconds() - 1);
  for (const std::string& key : keys) EXPECT_EQ(Value(key), std::nullopt);
  RamTierStats stats = tier_->Stats();
  EXPECT_EQ(stats.curr_items, 0u);
  EXPECT_EQ(stats.bytes, 0u);
  EXPECT_EQ(stats.evictions, 0u);
  // Writes after the flush stay.
  ASSERT_EQ(Put("after", "v"), StoreResult::kStored);
  EXPECT_EQ(Value("after"), "v");
  // A time in the past means now as well.
  tier_->FlushAll(clock_.NowSeconds() - 100);
  EXPECT_EQ(Value("after"), std::nullopt);
}

TEST_F(RamTierTest, FlushAllZeroCancelsAPendingFlush) {
  ASSERT_EQ(Put("kept", "v"), StoreResult::kStored);
  tier_->FlushAll(clock_.NowSeconds() + 10);
  tier_->FlushAll(0);  // memcached's oldest_live = 0: no flush at all
  clock_.Advance(20);
  EXPECT_EQ(Value("kept"), "v");
}

TEST_F(RamTierTest, FlushAllDelayed) {
  ASSERT_EQ(Put("early", "v"), StoreResult::kStored);
  tier_->FlushAll(clock_.NowSeconds() + 10);
  ASSERT_EQ(Put("before-deadline", "v"), StoreResult::kStored);
  clock_.Advance(9);
  EXPECT_EQ(Value("early"), "v");
  EXPECT_EQ(Value("before-deadline"), "v");
  clock_.Advance(1);
  EXPECT_EQ(Value("early"), std::nullopt);
  EXPECT_EQ(Value("before-deadline"), std::nullopt);
  EXPECT_EQ(tier_->Stats().bytes, 0u);
  // Stored during the deadline second itself: covered by the flush too.
  EXPECT_EQ(Put("deadline-second", "v"), StoreResult::kStored);
  EXPECT_EQ(Value("deadline-second"), std::nullopt);
  EXPECT_EQ(tier_->Stats().bytes, 0u);
  // The flush happens once: later writes stay.
  clock_.Advance(1);
  ASSERT_EQ(Put("after", "v"), StoreResult::kStored);
  clock_.Advance(100);
  EXPECT_EQ(Value("after"), "v");
}

TEST_F(RamTierTest, FlushAllAtThisSecondHidesStoresDuringIt) {
  ASSERT_EQ(Put("old", "v"), StoreResult::kStored);
  tier_->FlushAll(clock_.NowSeconds());
  EXPECT_EQ(Value("old"), std::nullopt);
  uint64_t cas = 0;
  EXPECT_EQ(Put("same-second", "v", StoreMode::kSet, 0, 0, 0, &cas), StoreResult::kStored);
  EXPECT_NE(cas, 0u);
  EXPECT_EQ(Value("same-second"), std::nullopt);
  RamTierStats stats = tier_->Stats();
  EXPECT_EQ(stats.curr_items, 0u);
  EXPECT_EQ(stats.bytes, 0u);
  clock_.Advance(1);
  ASSERT_EQ(Put("next-second", "v"), StoreResult::kStored);
  EXPECT_EQ(Value("next-second"), "v");
}

TEST_F(RamTierTest, FlushAllInThePastFlushesNowAndNothingMore) {
  ASSERT_EQ(Put("old", "v"), StoreResult::kStored);
  tier_->FlushAll(clock_.NowSeconds() - 1);
  EXPECT_EQ(Value("old"), std::nullopt);
  ASSERT_EQ(Put("new", "v"), StoreResult::kStored);
  EXPECT_EQ(Value("new"), "v");
}

TEST_F(RamTierTest, DelayedFlushRunsBeforeTheFirstStoreAfterTheDeadline) {
  ASSERT_EQ(Put("old", "v"), StoreResult::kStored);
  tier_->FlushAll(clock_.NowSeconds() + 5);
  clock_.Advance(6);
  // The first call after the deadline is a store: it must not be flushed.
  ASSERT_EQ(Put("new", "v"), StoreResult::kStored);
  EXPECT_EQ(Value("new"), "v");
  EXPECT_EQ(Value("old"), std::nullopt);
}

TEST_F(RamTierTest, NewerFlushAllReplacesPendingOne) {
  ASSERT_EQ(Put("k", "v"), StoreResult::kStored);
  tier_->FlushAll(clock_.NowSeconds() + 5);
  tier_->FlushAll(clock_.NowSeconds() + 50);
  clock_.Advance(10);
  EXPECT_EQ(Value("k"), "v");
  clock_.Advance(40);
  EXPECT_EQ(Value("k"), std::nullopt);
}

// ---------------------------------------------------------- byte budget

// Records evicted items; optionally calls back into the tier from inside
// OnEvicted, which deadlocks if a shard lock were held.
class RecordingSink : public EvictionSink {
 public:
  void OnEvicted(std::vector<ItemRef>& items) override {
    ++calls;
    for (ItemRef& item : items) {
      ASSERT_TRUE(item);
      EXPECT_EQ(item->linked, 0);
      keys.emplace_back(item->Key());
      exptimes.push_back(item->exptime);
      if (clock != nullptr && item->exptime != 0 && item->exptime <= clock->NowSeconds()) {
        ++expired_items;
      }
      values_ok = values_ok && item->ValueWithCrlf().substr(item->value_len) == "\r\n";
      if (tier != nullptr) {
        // Out of the table (linked == 0 above) but in transit: still the
        // key's value until the sink returns.
        EXPECT_TRUE(tier->StillEvicting(*item)) << item->Key();
        EXPECT_TRUE(tier->Contains(item->Key())) << item->Key();
        // Reach into other shards as well.
        for (const std::string& probe : probes) (void)tier->Get(probe);
      }
    }
  }
  RamTier* tier = nullptr;
  const common::Clock* clock = nullptr;
  std::vector<std::string> probes;
  int expired_items = 0;  // expired when handed over
  std::vector<std::string> keys;
  std::vector<uint32_t> exptimes;
  bool values_ok = true;
  int calls = 0;
};

TEST_F(RamTierTest, ByteBudgetHoldsAndEvicts) {
  for (EvictionKind kind : {EvictionKind::kS3Fifo, EvictionKind::kLru}) {
    SCOPED_TRACE(std::string(EvictionKindName(kind)));
    RamTierOptions options = DefaultOptions();
    options.size_bytes = kMiB;
    options.eviction = kind;
    RecordingSink sink;
    Reset(options, &sink);
    const std::string value(1000, 'v');
    AllocResult why;
    ItemRef probe = tier_->Allocate(Key(0), 0, 0, static_cast<uint32_t>(value.size()), &why);
    ASSERT_TRUE(probe);
    const uint64_t max_charge = ItemCharge(probe.get());
    probe.Reset();
    std::vector<std::string> keys;
    for (int i = 0; i < 5000; ++i) {  // ~5 MiB through a 1 MiB budget
      keys.push_back(Key(i));
      ASSERT_EQ(Put(keys.back(), value), StoreResult::kStored);
      if (i % 50 == 0) {
        ASSERT_LE(tier_->Stats().bytes, kMiB + max_charge) << i;
      }
    }
    RamTierStats stats = tier_->Stats();
    EXPECT_LE(stats.bytes, kMiB + max_charge);
    EXPECT_GT(stats.evictions, 0u);
    EXPECT_EQ(stats.limit_bytes, kMiB);
    EXPECT_EQ(sink.keys.size(), stats.evictions);
    EXPECT_EQ(stats.evicted_unfetched, stats.evictions);  // none was read
    uint64_t found = 0;
    EXPECT_EQ(ChargeOf(keys, &found), stats.bytes);
    EXPECT_EQ(found, stats.curr_items);
    EXPECT_EQ(found + stats.evictions, keys.size());
    // The budget is used, not wasted: at least 3/4 of it holds items.
    EXPECT_GE(stats.bytes, kMiB * 3 / 4);
  }
}

// Runs `during` for each evicted item while it is in transit (the sink has
// not returned), then records whether it was still its key's value.
class TransitSink : public EvictionSink {
 public:
  void OnEvicted(std::vector<ItemRef>& items) override {
    for (ItemRef& item : items) {
      if (during) during(*item);
      still_evicting.push_back(tier->StillEvicting(*item));
    }
  }
  RamTier* tier = nullptr;
  std::function<void(const Item&)> during;
  std::vector<bool> still_evicting;
};

class RamTierTransitTest : public RamTierTest {
 protected:
  RamTierTransitTest() {
    Reset(DefaultOptions(), &sink_);
    sink_.tier = tier_.get();
  }
  // Evicts `key` with `during` run while it is in transit; returns whether
  // the sink could still take it afterwards.
  bool EvictWith(std::string_view key, std::function<void(const Item&)> during) {
    sink_.during = std::move(during);
    sink_.still_evicting.clear();
    EXPECT_TRUE(tier_->Evict(key));
    EXPECT_EQ(sink_.still_evicting.size(), 1u);
    sink_.during = nullptr;
    return !sink_.still_evicting.empty() && sink_.still_evicting[0];
  }
  TransitSink sink_;
};

// Undisturbed, the sink takes the item and RAM no longer has it.
TEST_F(RamTierTransitTest, TheSinkTakesAnUndisturbedItem) {
  ASSERT_EQ(Put("a", "va"), StoreResult::kStored);
  EXPECT_TRUE(EvictWith("a", [&](const Item& item) {
    EXPECT_EQ(item.linked, 0);  // out of the table...
    EXPECT_TRUE(tier_->StillEvicting(item));  // ...and in transit
    EXPECT_TRUE(tier_->Contains("a"));
  }));
  EXPECT_FALSE(tier_->Contains("a"));
  EXPECT_EQ(Value("a"), std::nullopt);
  EXPECT_EQ(tier_->Stats().evictions, 1u);
}

// A get while the item is in transit finds it, with its flags and CAS
// unique, and leaves it to the sink; a gat takes it back to change it.
TEST_F(RamTierTransitTest, AGetInTransitFindsTheItem) {
  uint64_t cas = 0;
  ASSERT_EQ(Put("a", "va", StoreMode::kSet, 7, 0, 0, &cas), StoreResult::kStored);
  EXPECT_TRUE(EvictWith("a", [&](const Item& evicted) {
    ItemRef got = tier_->Get("a");
    ASSERT_TRUE(got);
    EXPECT_EQ(got.get(), &evicted);
    EXPECT_EQ(got->ValueView(), "va");
    EXPECT_EQ(got->Cas(), cas);
    EXPECT_EQ(got->Flags(), 7u);
  }));
  EXPECT_EQ(Value("a"), std::nullopt);

  ASSERT_EQ(Put("b", "vb"), StoreResult::kStored);
  cas = CasOf("b");
  const uint32_t exptime = Now() + 100;
  EXPECT_FALSE(EvictWith("b", [&](const Item& evicted) {
    ItemRef got = tier_->Get("b", &exptime);
    ASSERT_TRUE(got);
    EXPECT_NE(got.get(), &evicted);  // a copy: the sink may be reading the original
    EXPECT_EQ(got->exptime, exptime);
    EXPECT_EQ(evicted.exptime, 0u);
  }));
  EXPECT_TRUE(tier_->Contains("b"));
  EXPECT_EQ(Value("b"), "vb");
  EXPECT_EQ(CasOf("b"), cas);
}

// A set, a delete or a flush_all while the item is in transit win over it.
TEST_F(RamTierTransitTest, ASetADeleteOrAFlushInTransitWin) {
  ASSERT_EQ(Put("a", "va"), StoreResult::kStored);
  EXPECT_FALSE(EvictWith("a", [&](const Item&) { EXPECT_EQ(Put("a", "new"), StoreResult::kStored); }));
  EXPECT_EQ(Value("a"), "new");

  ASSERT_EQ(Put("b", "vb"), StoreResult::kStored);
  EXPECT_FALSE(EvictWith("b", [&](const Item&) { EXPECT_TRUE(tier_->Delete("b")); }));
  EXPECT_EQ(Value("b"), std::nullopt);

  // A flush leaves the item in transit but dead: nothing finds it.
  ASSERT_EQ(Put("c", "vc"), StoreResult::kStored);
  EvictWith("c", [&](const Item& item) {
    tier_->FlushAll(Now());
    EXPECT_TRUE(tier_->IsFlushed(item));
    EXPECT_FALSE(tier_->Get("c"));
    EXPECT_FALSE(tier_->Delete("c"));
  });
  EXPECT_EQ(Value("c"), std::nullopt);
}

// Every command that needs the key sees it in transit: add fails, replace,
// append, prepend, cas, incr/decr and touch work on it.
TEST_F(RamTierTransitTest, CommandsInTransitSeeTheKey) {
  ASSERT_EQ(Put("n", "10"), StoreResult::kStored);
  uint64_t cas = CasOf("n");
  EXPECT_FALSE(EvictWith("n", [&](const Item&) { EXPECT_EQ(Put("n", "x", StoreMode::kAdd), StoreResult::kNotStored); }));
  EXPECT_EQ(Value("n"), "10");
  EXPECT_EQ(CasOf("n"), cas);

  EXPECT_FALSE(EvictWith("n", [&](const Item&) {
    uint64_t result = 0;
    EXPECT_EQ(tier_->Delta("n", true, 5, &result), DeltaResult::kOk);
    EXPECT_EQ(result, 15u);
  }));
  EXPECT_EQ(Value("n"), "15");

  EXPECT_FALSE(EvictWith("n", [&](const Item&) { EXPECT_EQ(Put("n", "!", StoreMode::kAppend), StoreResult::kStored); }));
  EXPECT_FALSE(EvictWith("n", [&](const Item&) { EXPECT_EQ(Put("n", "<", StoreMode::kPrepend), StoreResult::kStored); }));
  EXPECT_EQ(Value("n"), "<15!");

  cas = CasOf("n");
  EXPECT_FALSE(EvictWith("n", [&](const Item&) {
    EXPECT_EQ(Put("n", "c", StoreMode::kCas, 0, 0, cas), StoreResult::kStored);
  }));
  EXPECT_EQ(Value("n"), "c");
  EXPECT_FALSE(EvictWith("n", [&](const Item&) { EXPECT_EQ(Put("n", "r", StoreMode::kReplace), StoreResult::kStored); }));
  EXPECT_EQ(Value("n"), "r");

  EXPECT_FALSE(EvictWith("n", [&](const Item&) { EXPECT_TRUE(tier_->Touch("n", Now() + 100)); }));
  ItemRef item = tier_->Get("n");
  ASSERT_TRUE(item);
  EXPECT_EQ(item->exptime, Now() + 100);
  // A promotion (kRestore) of an older record finds the key present.
  EXPECT_FALSE(EvictWith("n", [&](const Item&) {
    AllocResult why;
    ItemRef old = tier_->Allocate("n", 0, 0, 3, &why);
    std::memcpy(old->MutableValue(), "old", 3);
    EXPECT_EQ(tier_->Restore(std::move(old), [] { return true; }), StoreResult::kNotStored);
  }));
  EXPECT_EQ(Value("n"), "r");
}

TEST_F(RamTierTest, SinkReceivesExactlyTheEvictedItemsWithoutLocks) {
  RamTierOptions options = DefaultOptions();
  options.size_bytes = kMiB;
  options.shards = 4;
  RecordingSink sink;
  Reset(options, &sink);
  sink.tier = tier_.get();
  sink.clock = &clock_;
  sink.probes = {"probe-a", "probe-b", "probe-c", "probe-d", "probe-e", "probe-f"};
  const std::string value(2000, 'x');
  std::vector<std::string> keys;
  std::unordered_set<std::string> deleted;
  std::unordered_set<std::string> expiring;
  for (int i = 0; i < 3000; ++i) {
    std::string key = Key(i);
    keys.push_back(key);
    // Every 7th item expires in a second; the clock moves every 100 stores.
    bool expires = i % 7 == 0;
    if (expires) expiring.insert(key);
    ASSERT_EQ(Put(key, value, StoreMode::kSet, 0, expires ? Now() + 1 : 0), StoreResult::kStored);
    if (i % 100 == 99) clock_.Advance(1);
    // Every 5th earlier item is deleted if still there.
    if (i % 5 == 0 && i >= 10) {
      std::string victim = Key(i - 10);
      if (tier_->Delete(victim)) deleted.insert(victim);
    }
  }
  RamTierStats stats = tier_->Stats();
  ASSERT_GT(stats.evictions, 0u);
  EXPECT_GT(sink.calls, 0);
  EXPECT_TRUE(sink.values_ok);
  EXPECT_EQ(sink.keys.size(), stats.evictions);
  std::unordered_set<std::string> evicted(sink.keys.begin(), sink.keys.end());
  EXPECT_EQ(evicted.size(), sink.keys.size()) << "an item was evicted twice";
  EXPECT_EQ(sink.expired_items, 0);
  for (const std::string& key : sink.keys) {
    EXPECT_EQ(deleted.count(key), 0u) << key << " was deleted, then evicted";
  }
  // Every key is exactly one of: resident, evicted, deleted, expired.
  uint64_t resident = 0;
  for (const std::string& key : keys) {
    bool live = static_cast<bool>(tier_->Get(key));
    resident += live ? 1 : 0;
    int where = (live ? 1 : 0) + static_cast<int>(evicted.count(key)) +
                static_cast<int>(deleted.count(key));
    if (expiring.count(key) != 0) {
      EXPECT_LE(where, 1) << key;
    } else {
      EXPECT_EQ(where, 1) << key;
    }
  }
  EXPECT_GT(tier_->Stats().reclaimed, 0u);
  EXPECT_EQ(resident, tier_->Stats().curr_items);
}

TEST_F(RamTierTest, ExpiredItemsAreNotSentToSink) {
  RamTierOptions options = DefaultOptions();
  options.size_bytes = kMiB;
  options.shards = 1;
  RecordingSink sink;
  Reset(options, &sink);
  sink.clock = &clock_;
  const std::string value(1000, 'e');
  // Fill the budget with items that all expire, then let them expire and
  // push new items in: what leaves now is reclaimed, not evicted.
  int i = 0;
  while (tier_->Stats().bytes + 2000 < kMiB) {
    ASSERT_EQ(Put(Key(i++), value, StoreMode::kSet, 0, Now() + 1), StoreResult::kStored);
  }
  ASSERT_EQ(tier_->Stats().evictions, 0u);
  clock_.Advance(1);
  for (int j = 0; j < i / 2; ++j)
    ASSERT_EQ(Put("fresh" + std::to_string(j), value), StoreResult::kStored);
  RamTierStats stats = tier_->Stats();
  EXPECT_EQ(sink.keys.size(), stats.evictions);
  EXPECT_EQ(stats.evictions, 0u);
  EXPECT_GT(stats.reclaimed, 0u);
  EXPECT_EQ(sink.expired_items, 0);
}

TEST_F(RamTierTest, SetLimit) {
  RamTierOptions options = DefaultOptions();
  options.size_bytes = 4 * kMiB;
  RecordingSink sink;
  Reset(options, &sink);
  EXPECT_FALSE(tier_->SetLimit(kMiB - 1));
  EXPECT_EQ(tier_->limit(), 4 * kMiB);
  const std::string value(1000, 's');
  std::vector<std::string> keys;
  for (int i = 0; i < 3500; ++i) {
    keys.push_back(Key(i));
    ASSERT_EQ(Put(keys.back(), value), StoreResult::kStored);
  }
  ASSERT_EQ(tier_->Stats().evictions, 0u);
  ASSERT_GT(tier_->Stats().bytes, 2 * kMiB);
  EXPECT_TRUE(tier_->SetLimit(2 * kMiB));
  EXPECT_EQ(tier_->limit(), 2 * kMiB);
  RamTierStats stats = tier_->Stats();
  EXPECT_EQ(stats.limit_bytes, 2 * kMiB);
  EXPECT_LE(stats.bytes, 2 * kMiB);
  EXPECT_GT(stats.evictions, 0u);
  EXPECT_EQ(sink.keys.size(), stats.evictions);
  EXPECT_EQ(ChargeOf(keys), stats.bytes);
  // Raising it evicts nothing more.
  EXPECT_TRUE(tier_->SetLimit(8 * kMiB));
  EXPECT_EQ(tier_->Stats().evictions, stats.evictions);
  EXPECT_TRUE(tier_->SetLimit(kMiB));  // the minimum is allowed
  EXPECT_LE(tier_->Stats().bytes, kMiB);
}

// -------------------------------------------------------- expiry crawler

// With one shard the 400 items share one table, in long probe runs: the
// reaper's erases shift live items back into slots it has just looked at.
TEST_F(RamTierTest, ReapExpiredFreesBytesWithoutEviction) {
  for (uint32_t shards : {0u, 1u}) {
    RamTierOptions options = DefaultOptions();
    options.shards = shards;
    Reset(options);
    std::vector<std::string> keep;
    std::vector<std::string> expire;
    for (int i = 0; i < 400; ++i) {
      std::string key = Key(i);
      bool expires = i % 2 == 0;
      ASSERT_EQ(Put(key, std::string(100 + i, 'r'), StoreMode::kSet, 0, expires ? Now() + 5 : 0),
                StoreResult::kStored);
      (expires ? expire : keep).push_back(key);
    }
    uint64_t keep_bytes = ChargeOf(keep);
    EXPECT_EQ(tier_->ReapExpired(100000), 0u);  // nothing due yet
    clock_.Advance(5);
    size_t removed = 0;
    // Bounded steps: each call looks at no more than it was asked to.
    for (int round = 0; round < 1000 && removed < expire.size(); ++round) {
      size_t n = tier_->ReapExpired(16);
      EXPECT_LE(n, 16u);
      removed += n;
    }
    EXPECT_EQ(removed, expire.size());
    RamTierStats stats = tier_->Stats();
    EXPECT_EQ(stats.bytes, keep_bytes);
    EXPECT_EQ(stats.curr_items, keep.size());
    EXPECT_EQ(stats.evictions, 0u);
    EXPECT_EQ(stats.reclaimed, expire.size());
    EXPECT_EQ(stats.crawler_reclaimed, expire.size());
    EXPECT_EQ(stats.expired_unfetched, expire.size());
    EXPECT_GE(stats.crawler_items_checked, 400u);
    for (const std::string& key : keep) EXPECT_TRUE(Value(key)) << key;
    EXPECT_EQ(tier_->ReapExpired(100000), 0u);
  }
}

TEST_F(RamTierTest, ReapExpiredRunsDueDelayedFlush) {
  ASSERT_EQ(Put("k", "v"), StoreResult::kStored);
  tier_->FlushAll(clock_.NowSeconds() + 1);
  clock_.Advance(1);
  tier_->ReapExpired(10);
  EXPECT_EQ(tier_->Stats().curr_items, 0u);
}

// ------------------------------------------------------------- size checks

TEST_F(RamTierTest, ItemSizeOkBoundary) {
  RamTierOptions options = DefaultOptions();
  options.max_item_size = 1000;
  Reset(options);
  // 56 + key + 1 + value + 2 (+ 4 with flags) <= 1000.
  EXPECT_TRUE(tier_->ItemSizeOk(10, 0, 1000 - 56 - 11 - 2));
  EXPECT_FALSE(tier_->ItemSizeOk(10, 0, 1000 - 56 - 11 - 2 + 1));
  EXPECT_TRUE(tier_->ItemSizeOk(10, 1, 1000 - 56 - 11 - 2 - 4));
  EXPECT_FALSE(tier_->ItemSizeOk(10, 1, 1000 - 56 - 11 - 2 - 4 + 1));
  EXPECT_TRUE(tier_->ItemSizeOk(250, 0xffffffff, 1000 - 56 - 251 - 2 - 4));
  EXPECT_FALSE(tier_->ItemSizeOk(250, 0xffffffff, 1000 - 56 - 251 - 2 - 4 + 1));
  EXPECT_FALSE(tier_->ItemSizeOk(1, 0, UINT64_MAX - 100));
  EXPECT_EQ(tier_->max_item_size(), 1000u);

  AllocResult why = AllocResult::kNoMemory;
  std::string key(10, 'k');
  ItemRef ok = tier_->Allocate(key, 0, 0, 1000 - 56 - 11 - 2, &why);
  EXPECT_EQ(why, AllocResult::kOk);
  ASSERT_TRUE(ok);
  EXPECT_EQ(ok->Key(), key);
  EXPECT_EQ(ok->Cas(), 0u);
  EXPECT_EQ(ok->ValueWithCrlf().substr(ok->value_len), "\r\n");
  ItemRef big = tier_->Allocate(key, 0, 0, 1000 - 56 - 11 - 2 + 1, &why);
  EXPECT_FALSE(big);
  EXPECT_EQ(why, AllocResult::kTooLarge);
  big = tier_->Allocate(key, 1, 0, 1000 - 56 - 11 - 2 - 3, &why);
  EXPECT_FALSE(big);
  EXPECT_EQ(why, AllocResult::kTooLarge);
}

TEST_F(RamTierTest, AllocateBeyondBudgetIsNoMemory) {
  RamTierOptions options = DefaultOptions();
  options.size_bytes = 4096;  // below what SetLimit allows, fine for a test
  options.max_item_size = kMiB;
  Reset(options);
  AllocResult why = AllocResult::kOk;
  EXPECT_FALSE(tier_->Allocate("k", 0, 0, 8000, &why));
  EXPECT_EQ(why, AllocResult::kNoMemory);
  ItemRef fits = tier_->Allocate("k", 0, 0, 100, &why);
  EXPECT_TRUE(fits);
  EXPECT_EQ(why, AllocResult::kOk);
}

TEST_F(RamTierTest, StatsReportOptions) {
  RamTierOptions options = DefaultOptions();
  options.shards = 5;  // rounded up to 8
  options.eviction = EvictionKind::kLru;
  Reset(options);
  EXPECT_EQ(tier_->eviction(), EvictionKind::kLru);
  RamTierStats stats = tier_->Stats();
  EXPECT_EQ(stats.limit_bytes, options.size_bytes);
  EXPECT_EQ(stats.hash_buckets % 8, 0u);
  EXPECT_GE(stats.hash_buckets, 8u);
  // 5 bytes a slot, and 3 bytes of padding after each of the 8 shards' tables.
  EXPECT_EQ(stats.hash_bytes, stats.hash_buckets * 5 + 8 * 3);
}

TEST_F(RamTierTest, TableGrowthKeepsEveryItem) {
  RamTierOptions options = DefaultOptions();
  options.shards = 1;
  Reset(options);
  std::vector<std::string> keys;
  for (int i = 0; i < 5000; ++i) {
    keys.push_back(Key(i));
    ASSERT_EQ(Put(keys.back(), keys.back()), StoreResult::kStored);
  }
  EXPECT_GT(tier_->Stats().hash_buckets, 64u);
  for (const std::string& key : keys) ASSERT_EQ(Value(key), key);
  uint64_t found = 0;
  EXPECT_EQ(ChargeOf(keys, &found), tier_->Stats().bytes);
  EXPECT_EQ(found, keys.size());
}

TEST_F(RamTierTest, ListItemsWalksEveryLiveItemOnce) {
  // An empty tier: nothing, in calls that each visit a bounded run of slots.
  uint64_t cursor = 0;
  std::vector<RamTier::ListedItem> listed;
  size_t empty_calls = 0;
  while (tier_->ListItems(&cursor, 1, &listed)) ++empty_calls;
  EXPECT_TRUE(listed.empty());
  EXPECT_GT(empty_calls, 2u);
  for (int i = 0; i < 1000; ++i) ASSERT_EQ(Put(Key(i), "v"), StoreResult::kStored);
  ASSERT_EQ(Put("expiring", "v", StoreMode::kSet, 0, Now() + 10), StoreResult::kStored);
  ASSERT_EQ(Put("expired", "v", StoreMode::kSet, 0, Now() + 1), StoreResult::kStored);
  ASSERT_TRUE(Value(Key(7)));  // fetched
  clock_.Advance(1);
  // Batches of 7: every shard is walked, in steps that resume mid-shard.
  cursor = 0;
  std::multiset<std::string> keys;
  size_t calls = 0;
  bool more = true;
  while (more) {
    std::vector<RamTier::ListedItem> batch;
    more = tier_->ListItems(&cursor, 7, &batch);
    EXPECT_LE(batch.size(), 7u);
    ++calls;
    for (const RamTier::ListedItem& l : batch) {
      keys.insert(std::string(l.item->Key()));
      EXPECT_EQ(l.fetched, l.item->Key() == Key(7)) << l.item->Key();
      EXPECT_EQ(l.exptime, l.item->Key() == "expiring" ? Now() + 9 : 0u) << l.item->Key();
    }
  }
  EXPECT_GE(calls, 1001u / 7);
  EXPECT_EQ(keys.size(), 1001u);  // the expired one is not listed
  EXPECT_EQ(keys.count("expired"), 0u);
  EXPECT_EQ(keys.count("expiring"), 1u);
  for (int i = 0; i < 1000; ++i) EXPECT_EQ(keys.count(Key(i)), 1u) << i;
  // A finished walk stays finished.
  listed.clear();
  EXPECT_FALSE(tier_->ListItems(&cursor, 7, &listed));
  EXPECT_TRUE(listed.empty());
}

}  // namespace
}  // namespace strata::tiers
