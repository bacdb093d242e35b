// SsdIndex: behaves like a map from hash to location, stays compact.
#include "tiers/ssd/ssd_index.h"

#include <gtest/gtest.h>

#include <random>
#include <unordered_map>

#include "common/hash.h"

namespace strata::tiers {
namespace {

SsdLocation Loc(uint32_t r, uint32_t off, uint32_t size) { return {r, off, size}; }

TEST(SsdIndexTest, InsertLookupReplaceRemove) {
  SsdIndex index(16, 4);
  uint64_t h = common::HashKey("a");
  EXPECT_FALSE(index.Lookup(h));
  EXPECT_FALSE(index.Insert(h, Loc(1, 4096, 64)));
  EXPECT_EQ(index.Lookup(h), Loc(1, 4096, 64));
  EXPECT_EQ(index.Insert(h, Loc(2, 8192, 128)), Loc(1, 4096, 64));
  EXPECT_FALSE(index.RemoveIf(h, Loc(1, 4096, 64)));  // stale: kept
  EXPECT_EQ(index.Lookup(h), Loc(2, 8192, 128));
  EXPECT_TRUE(index.RemoveIf(h, Loc(2, 8192, 128)));
  EXPECT_FALSE(index.Lookup(h));
  EXPECT_FALSE(index.Remove(h));
  EXPECT_EQ(index.size(), 0u);
}

TEST(SsdIndexTest, ExtremeLocationsPack) {
  SsdIndex index(16, 1);
  SsdLocation far = Loc(kMaxIndexedRegions - 1, kMaxIndexedRegionSize - 8, kMaxIndexedRegionSize - 8);
  index.Insert(5, far);
  EXPECT_EQ(index.Lookup(5), far);
}

TEST(SsdIndexTest, AccessedBitFollowsTheRecord) {
  SsdIndex index(16, 4);
  uint64_t h = common::HashKey("a");
  bool accessed = true;
  EXPECT_FALSE(index.MarkAccessed(h, Loc(1, 0, 64)));  // no entry
  index.Insert(h, Loc(1, 4096, 64));
  EXPECT_EQ(index.Lookup(h, &accessed), Loc(1, 4096, 64));
  EXPECT_FALSE(accessed);
  EXPECT_FALSE(index.MarkAccessed(h, Loc(1, 8192, 64)));  // another record
  EXPECT_TRUE(index.MarkAccessed(h, Loc(1, 4096, 64)));
  EXPECT_EQ(index.Lookup(h, &accessed), Loc(1, 4096, 64));
  EXPECT_TRUE(accessed);
  index.Insert(h, Loc(2, 4096, 64));  // a new record is unread
  EXPECT_EQ(index.Lookup(h, &accessed), Loc(2, 4096, 64));
  EXPECT_FALSE(accessed);
}

// Inserts, removes, lookups and read marks against a map: the location and
// the accessed bit stay with their key through Robin Hood moves, backward
// shifts and growth.
TEST(SsdIndexTest, RandomOperationsMatchAModel) {
  SsdIndex index(16, 8);
  struct Entry {
    SsdLocation loc;
    bool accessed;
  };
  std::unordered_map<uint64_t, Entry> model;
  std::mt19937_64 rng(1);
  for (int i = 0; i < 200000; ++i) {
    uint64_t key = common::HashKey(std::to_string(rng() % 20000));
    int op = static_cast<int>(rng() % 10);
    if (op < 6) {
      SsdLocation loc = Loc(static_cast<uint32_t>(rng() % 1000), static_cast<uint32_t>(rng() % 1000) * 8,
                            static_cast<uint32_t>(1 + rng() % 1000) * 8);
      auto old = index.Insert(key, loc);
      auto it = model.find(key);
      EXPECT_EQ(old.has_value(), it != model.end());
      model[key] = {loc, false};
    } else if (op < 8) {
      auto removed = index.Remove(key);
      EXPECT_EQ(removed.has_value(), model.erase(key) == 1);
    } else if (op == 8) {
      bool accessed = false;
      auto got = index.Lookup(key, &accessed);
      auto it = model.find(key);
      ASSERT_EQ(got.has_value(), it != model.end());
      if (got) {
        EXPECT_EQ(*got, it->second.loc);
        EXPECT_EQ(accessed, it->second.accessed);
      }
    } else {
      auto it = model.find(key);
      if (it == model.end()) {
        EXPECT_FALSE(index.MarkAccessed(key, Loc(1, 0, 8)));
      } else {
        EXPECT_TRUE(index.MarkAccessed(key, it->second.loc));
        it->second.accessed = true;
      }
    }
  }
  EXPECT_EQ(index.size(), model.size());
  for (const auto& [k, e] : model) {
    bool accessed = false;
    EXPECT_EQ(index.Lookup(k, &accessed), e.loc);
    EXPECT_EQ(accessed, e.accessed);
  }
}

TEST(SsdIndexTest, RemoveRegionDropsOnlyThatRegion) {
  SsdIndex index(16, 4);
  for (uint64_t i = 0; i < 10000; ++i) {
    index.Insert(common::HashKey(std::to_string(i)), Loc(static_cast<uint32_t>(i % 10), 8, 8));
  }
  EXPECT_EQ(index.RemoveRegion(3), 1000u);
  for (uint64_t i = 0; i < 10000; ++i) {
    EXPECT_EQ(index.Lookup(common::HashKey(std::to_string(i))).has_value(), i % 10 != 3);
  }
}

TEST(SsdIndexTest, AboutSixteenBytesPerEntry) {
  SsdIndex index(16, 64);
  constexpr size_t kItems = 1'000'000;
  for (size_t i = 0; i < kItems; ++i) index.Insert(common::HashKey(std::to_string(i)), Loc(1, 8, 8));
  // 1M distinct keys may share a few 32-bit tags within a shard.
  EXPECT_GT(index.size(), kItems - 100);
  double per_item = static_cast<double>(index.memory_bytes()) / static_cast<double>(index.size());
  RecordProperty("bytes_per_item", std::to_string(per_item));
  EXPECT_LE(per_item, 16.0);  // 12 bytes at 80..90% load
}

}  // namespace
}  // namespace strata::tiers
