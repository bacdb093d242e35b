// Tests for ItemTable: lookups, inserts, replaces and erases against a
// std::unordered_map, with keys chosen so their home slots crowd together
// (long runs, runs that wrap past the table's end, equal tags), through
// growth; and that an erase leaves every other key findable.

#include "tiers/ram/item_table.h"

#include <gtest/gtest.h>

#include <cstddef>
#include <cstdint>
#include <map>
#include <random>
#include <string>
#include <vector>

#include "common/hash.h"
#include "tests/tiers/item_pool.h"
#include "tiers/item/item.h"

namespace strata::tiers {
namespace {

uint64_t H(const std::string& key) { return common::HashKey(key); }

// `n` keys whose home slot in a table of `capacity` slots is one of `homes`.
std::vector<std::string> KeysWithHomes(size_t n, size_t capacity, std::vector<size_t> homes) {
  std::vector<std::string> keys;
  for (int i = 0; keys.size() < n; ++i) {
    std::string key = "key" + std::to_string(i);
    size_t home = H(key) & (capacity - 1);
    for (size_t h : homes) {
      if (home == h) keys.push_back(key);
    }
  }
  return keys;
}

void Insert(ItemTable& table, ItemPool& pool, const std::string& key,
            std::map<std::string, Item*>* model) {
  ItemTable::Pos pos = table.Find(key, H(key));
  ASSERT_FALSE(pos.found) << key;
  Item* item = pool.New(key);
  table.InsertAt(pos, item, H(key));
  (*model)[key] = item;
}

void ExpectMatches(const ItemTable& table, const std::map<std::string, Item*>& model,
                   const std::vector<std::string>& universe) {
  ASSERT_EQ(table.size(), model.size());
  for (const std::string& key : universe) {
    ItemTable::Pos pos = table.Find(key, H(key));
    auto it = model.find(key);
    if (it == model.end()) {
      EXPECT_FALSE(pos.found) << key;
    } else {
      ASSERT_TRUE(pos.found) << key;
      EXPECT_EQ(table.At(pos.slot), it->second) << key;
    }
  }
  size_t occupied = 0;
  for (size_t slot = 0; slot < table.capacity(); ++slot) occupied += table.At(slot) != nullptr;
  EXPECT_EQ(occupied, model.size());
}

TEST(ItemTableTest, EmptyTableFindsNothing) {
  ItemTable table;
  EXPECT_EQ(table.size(), 0u);
  EXPECT_EQ(table.capacity(), ItemTable::kInitialSlots);
  ItemTable::Pos pos = table.Find("k", H("k"));
  EXPECT_FALSE(pos.found);
  EXPECT_EQ(table.At(pos.slot), nullptr);
}

// Slots hold Item::Handle() (the offset / 8) with the tag in spare bits
// above it: items need 8-byte alignment, whatever their size.
TEST(ItemTableTest, ItemsAreAlignedForTheirHandles) {
  ItemPool pool;
  for (int i = 0; i < 100; ++i) {
    Item* item = pool.New(std::string(static_cast<size_t>(i % 7), 'k'));
    EXPECT_EQ(reinterpret_cast<uintptr_t>(item) % ItemSlabs::kGranule, 0u);
    EXPECT_EQ(Item::FromHandle(item->Handle()), item);
  }
}

// Every erase position in a run that wraps past the last slot: the keys left
// must all be found, wherever their home is.
TEST(ItemTableTest, EraseAnywhereInAWrappingRunKeepsTheRestFindable) {
  const size_t cap = ItemTable::kInitialSlots;
  // 12 keys homed in the last two slots and 12 in the first two: one run of
  // 24 that starts at slot cap-2 and wraps.
  std::vector<std::string> keys = KeysWithHomes(12, cap, {cap - 2, cap - 1});
  std::vector<std::string> front = KeysWithHomes(12, cap, {0, 1});
  keys.insert(keys.end(), front.begin(), front.end());
  for (size_t victim = 0; victim < keys.size(); ++victim) {
    ItemPool pool;
    ItemTable table;
    std::map<std::string, Item*> model;
    // Interleaved so entries sit away from their homes.
    for (size_t i = 0; i < 12; ++i) {
      Insert(table, pool, keys[i], &model);
      Insert(table, pool, keys[12 + i], &model);
    }
    ASSERT_EQ(table.capacity(), cap);
    ItemTable::Pos pos = table.Find(keys[victim], H(keys[victim]));
    ASSERT_TRUE(pos.found);
    table.EraseAt(pos.slot);
    model.erase(keys[victim]);
    ExpectMatches(table, model, keys);
  }
}

TEST(ItemTableTest, ReplaceKeepsTheSlotAndTag) {
  ItemPool pool;
  ItemTable table;
  std::map<std::string, Item*> model;
  std::vector<std::string> keys = KeysWithHomes(6, ItemTable::kInitialSlots, {5});
  for (const std::string& key : keys) Insert(table, pool, key, &model);
  ItemTable::Pos pos = table.Find(keys[3], H(keys[3]));
  ASSERT_TRUE(pos.found);
  Item* fresh = pool.New(keys[3]);
  table.ReplaceAt(pos.slot, fresh);
  model[keys[3]] = fresh;
  ExpectMatches(table, model, keys);
}

TEST(ItemTableTest, GrowsAtFourFifthsAndKeepsEveryKey) {
  ItemPool pool;
  ItemTable table;
  std::map<std::string, Item*> model;
  std::vector<std::string> keys;
  for (int i = 0; i < 2000; ++i) keys.push_back("g" + std::to_string(i));
  for (size_t i = 0; i < keys.size(); ++i) {
    Insert(table, pool, keys[i], &model);
    EXPECT_LE(table.size() * 5, table.capacity() * 4) << i;
  }
  EXPECT_EQ(table.capacity(), 4096u);  // 2000 > 0.8 * 2048
  ExpectMatches(table, model, keys);
}

TEST(ItemTableTest, ClearKeepsCapacity) {
  ItemPool pool;
  ItemTable table;
  std::map<std::string, Item*> model;
  for (int i = 0; i < 100; ++i) Insert(table, pool, "c" + std::to_string(i), &model);
  size_t cap = table.capacity();
  table.Clear();
  EXPECT_EQ(table.size(), 0u);
  EXPECT_EQ(table.capacity(), cap);
  EXPECT_FALSE(table.Find("c1", H("c1")).found);
}

// Random inserts, replaces and erases over a small universe of crowded keys,
// through several growths, checked against a std::map after every step.
TEST(ItemTableTest, RandomOperationsMatchAMap) {
  std::vector<std::string> universe;
  for (int i = 0; i < 600; ++i) universe.push_back("r" + std::to_string(i));
  for (uint32_t seed : {1u, 2u, 3u}) {
    std::mt19937 rng(seed);
    ItemPool pool;
    ItemTable table;
    std::map<std::string, Item*> model;
    for (int step = 0; step < 6000; ++step) {
      const std::string& key = universe[rng() % universe.size()];
      ItemTable::Pos pos = table.Find(key, H(key));
      ASSERT_EQ(pos.found, model.count(key) == 1) << key << " step " << step;
      if (!pos.found) {
        Item* item = pool.New(key);
        table.InsertAt(pos, item, H(key));
        model[key] = item;
      } else if (rng() % 3 == 0) {
        Item* item = pool.New(key);
        table.ReplaceAt(pos.slot, item);
        model[key] = item;
      } else {
        table.EraseAt(pos.slot);
        model.erase(key);
      }
      if (step % 500 == 0) ExpectMatches(table, model, universe);
    }
    ExpectMatches(table, model, universe);
  }
}

}  // namespace
}  // namespace strata::tiers
