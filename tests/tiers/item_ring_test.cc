// Tests for ItemRing: FIFO order, O(1) erase from the middle, and that growth
// and compaction keep both the order and every item's queue_pos right
// (checked by erasing through queue_pos afterwards, against a std::deque).

#include "tiers/item_ring.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <random>
#include <string>
#include <unordered_set>
#include <vector>

#include "tests/tiers/item_pool.h"
#include "tiers/item.h"

namespace strata::tiers {
namespace {

std::vector<Item*> Drain(ItemRing& ring) {
  std::vector<Item*> out;
  while (Item* item = ring.Pop()) out.push_back(item);
  return out;
}

TEST(ItemRingTest, EmptyRingPopsNothing) {
  ItemRing ring;
  EXPECT_TRUE(ring.empty());
  EXPECT_EQ(ring.size(), 0u);
  EXPECT_EQ(ring.Pop(), nullptr);
}

TEST(ItemRingTest, PopsInPushOrder) {
  ItemPool pool;
  ItemRing ring;
  std::vector<Item*> pushed;
  for (int i = 0; i < 10; ++i) {
    pushed.push_back(pool.New());
    ring.Push(pushed.back());
  }
  EXPECT_EQ(ring.size(), 10u);
  EXPECT_EQ(Drain(ring), pushed);
  EXPECT_TRUE(ring.empty());
  EXPECT_EQ(ring.Pop(), nullptr);
}

TEST(ItemRingTest, EraseFromMiddleHeadAndTail) {
  ItemPool pool;
  ItemRing ring;
  std::vector<Item*> items;
  for (int i = 0; i < 6; ++i) {
    items.push_back(pool.New());
    ring.Push(items.back());
  }
  ring.Erase(items[2]);  // middle
  ring.Erase(items[0]);  // head
  ring.Erase(items[5]);  // tail
  EXPECT_EQ(ring.size(), 3u);
  EXPECT_EQ(Drain(ring), (std::vector<Item*>{items[1], items[3], items[4]}));
}

TEST(ItemRingTest, EraseEverythingLeavesEmptyRing) {
  ItemPool pool;
  ItemRing ring;
  std::vector<Item*> items;
  for (int i = 0; i < 5; ++i) {
    items.push_back(pool.New());
    ring.Push(items.back());
  }
  for (Item* item : items) ring.Erase(item);
  EXPECT_TRUE(ring.empty());
  EXPECT_EQ(ring.Pop(), nullptr);
  // Still usable afterwards.
  Item* again = pool.New();
  ring.Push(again);
  EXPECT_EQ(ring.Pop(), again);
}

TEST(ItemRingTest, GrowthKeepsOrderAndPositions) {
  ItemPool pool;
  ItemRing ring;
  std::deque<Item*> model;
  // Far past the initial 16 slots, with the head moved off slot 0 first so
  // the ring wraps before it grows.
  for (int i = 0; i < 5; ++i) {
    model.push_back(pool.New());
    ring.Push(model.back());
  }
  for (int i = 0; i < 3; ++i) {
    ASSERT_EQ(ring.Pop(), model.front());
    model.pop_front();
  }
  for (int i = 0; i < 1000; ++i) {
    model.push_back(pool.New());
    ring.Push(model.back());
  }
  ASSERT_EQ(ring.size(), model.size());
  // Erase every third item through its (relocated) queue_pos.
  std::vector<Item*> kept;
  for (size_t i = 0; i < model.size(); ++i) {
    if (i % 3 == 0) {
      ring.Erase(model[i]);
    } else {
      kept.push_back(model[i]);
    }
  }
  EXPECT_EQ(ring.size(), kept.size());
  EXPECT_EQ(Drain(ring), kept);
}

TEST(ItemRingTest, CompactionKeepsOrderAndPositions) {
  ItemPool pool;
  ItemRing ring;
  std::deque<Item*> model;
  // Keep a handful live while pushing and erasing many: the ring fills with
  // holes and must compact (not grow without bound) many times over.
  for (int round = 0; round < 2000; ++round) {
    Item* item = pool.New();
    ring.Push(item);
    model.push_back(item);
    if (model.size() > 8) {
      // Erase the second oldest: a hole behind the head.
      Item* victim = model[1];
      ring.Erase(victim);
      model.erase(model.begin() + 1);
    }
  }
  ASSERT_EQ(ring.size(), model.size());
  // Erase through queue_pos after the last compaction, then check order.
  ring.Erase(model[3]);
  model.erase(model.begin() + 3);
  EXPECT_EQ(Drain(ring), std::vector<Item*>(model.begin(), model.end()));
}

TEST(ItemRingTest, ClearForgetsEverything) {
  ItemPool pool;
  ItemRing ring;
  for (int i = 0; i < 40; ++i) ring.Push(pool.New());
  ring.Clear();
  EXPECT_TRUE(ring.empty());
  EXPECT_EQ(ring.Pop(), nullptr);
  Item* a = pool.New();
  Item* b = pool.New();
  ring.Push(a);
  ring.Push(b);
  EXPECT_EQ(Drain(ring), (std::vector<Item*>{a, b}));
}

// Random pushes, pops and erases against a std::deque model. Distinct
// queue_pos values among live items, and erase-by-queue_pos hitting exactly
// the right item, are what keeps the model and the ring in agreement.
TEST(ItemRingTest, RandomizedAgainstDequeModel) {
  for (uint64_t seed : {1u, 2u, 3u, 42u, 1234u}) {
    SCOPED_TRACE("seed " + std::to_string(seed));
    std::mt19937_64 rng(seed);
    ItemPool pool;
    ItemRing ring;
    std::deque<Item*> model;
    for (int step = 0; step < 20000; ++step) {
      // Phases bias the ring towards growing, then shrinking, so both
      // doubling and in-place compaction happen repeatedly.
      bool growing = (step / 2500) % 2 == 0;
      uint64_t dice = rng() % 100;
      if (dice < (growing ? 60u : 30u)) {
        Item* item = pool.New();
        ring.Push(item);
        model.push_back(item);
      } else if (dice < (growing ? 75u : 60u)) {
        Item* got = ring.Pop();
        if (model.empty()) {
          ASSERT_EQ(got, nullptr);
        } else {
          ASSERT_EQ(got, model.front());
          model.pop_front();
        }
      } else if (!model.empty()) {
        size_t i = rng() % model.size();
        ring.Erase(model[i]);
        model.erase(model.begin() + static_cast<std::ptrdiff_t>(i));
      }
      ASSERT_EQ(ring.size(), model.size());
      ASSERT_EQ(ring.empty(), model.empty());
      if (step % 997 == 0) {
        std::unordered_set<uint32_t> positions;
        for (Item* item : model) {
          ASSERT_TRUE(positions.insert(item->queue_pos).second)
              << "two live items share queue_pos " << item->queue_pos;
        }
      }
    }
    EXPECT_EQ(Drain(ring), std::vector<Item*>(model.begin(), model.end()));
  }
}

}  // namespace
}  // namespace strata::tiers
