// Tests for ItemRing: FIFO order, O(1) erase from the middle, that growth
// and compaction keep both the order and every item's queue_pos right
// (checked by erasing through queue_pos afterwards, against a std::deque),
// and that its blocks follow the live span.

#include "tiers/ram/item_ring.h"

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
#include "tiers/item/item.h"

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
  // Far past one block, with the head moved off position 0 first, so the
  // block map grows while the head is inside a block.
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
    // One run with positions that pass 2^32 on the way.
    ItemRing ring(seed == 42 ? (uint64_t{1} << 32) - 3000 : 0);
    std::deque<Item*> model;
    for (int step = 0; step < 20000; ++step) {
      // Phases bias the ring towards growing, then shrinking, so both
      // new blocks and in-place compaction happen repeatedly.
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
      // The span is at most twice the live count plus a block; add a block
      // at each end and the spare.
      constexpr size_t kB = ItemRing::kBlockEntries;
      ASSERT_LE(ring.blocks(), (2 * model.size() + kB) / kB + 3);
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

TEST(ItemRingTest, BlocksFollowHeadAndTail) {
  ItemPool pool;
  ItemRing ring;
  EXPECT_EQ(ring.blocks(), 0u);
  constexpr size_t kB = ItemRing::kBlockEntries;
  std::deque<Item*> model;
  for (size_t i = 0; i < 10 * kB; ++i) {
    model.push_back(pool.New());
    ring.Push(model.back());
  }
  EXPECT_EQ(ring.blocks(), 10u);
  for (size_t i = 0; i < 5 * kB; ++i) {
    ASSERT_EQ(ring.Pop(), model.front());
    model.pop_front();
  }
  // Five blocks left behind: one kept as the spare, four freed.
  EXPECT_EQ(ring.blocks(), 6u);
  // The next block the tail needs is the spare.
  for (size_t i = 0; i < kB; ++i) {
    model.push_back(pool.New());
    ring.Push(model.back());
  }
  EXPECT_EQ(ring.blocks(), 6u);
  EXPECT_EQ(Drain(ring), std::vector<Item*>(model.begin(), model.end()));
  EXPECT_EQ(ring.blocks(), 1u);  // only the spare
  ring.Clear();
  EXPECT_EQ(ring.blocks(), 0u);
}

TEST(ItemRingTest, SteadyFifoKeepsItsBlocks) {
  ItemPool pool;
  ItemRing ring;
  std::deque<Item*> model;
  for (int i = 0; i < 300; ++i) {
    model.push_back(pool.New());
    ring.Push(model.back());
  }
  for (int i = 0; i < 20000; ++i) {
    ASSERT_EQ(ring.Pop(), model.front());
    model.pop_front();
    model.push_back(pool.New());
    ring.Push(model.back());
    // 300 entries span at most 4 blocks, plus the spare.
    ASSERT_LE(ring.blocks(), 5u);
  }
  EXPECT_EQ(Drain(ring), std::vector<Item*>(model.begin(), model.end()));
}

TEST(ItemRingTest, ErasingMostItemsGivesBlocksBack) {
  ItemPool pool;
  ItemRing ring;
  constexpr size_t kB = ItemRing::kBlockEntries;
  std::vector<Item*> items;
  for (size_t i = 0; i < 20 * kB; ++i) {
    items.push_back(pool.New());
    ring.Push(items.back());
  }
  std::vector<Item*> kept;
  for (size_t i = 0; i < items.size(); ++i) {
    if (i % 16 == 5) {
      kept.push_back(items[i]);
    } else {
      ring.Erase(items[i]);
    }
  }
  ASSERT_EQ(ring.size(), kept.size());
  // 160 live entries after compaction: two blocks, a spare, and at most
  // one more block of holes erased since the last compaction.
  EXPECT_LE(ring.blocks(), 4u);
  // Positions were rewritten by compaction: erase through them.
  ring.Erase(kept[7]);
  kept.erase(kept.begin() + 7);
  EXPECT_EQ(Drain(ring), kept);
}

// queue_pos keeps the low 32 bits of a position: erasing must still find
// the right slot when positions pass 2^32.
TEST(ItemRingTest, PositionsPastTwoToThe32) {
  ItemPool pool;
  ItemRing ring((uint64_t{1} << 32) - 200);
  std::deque<Item*> model;
  for (int i = 0; i < 600; ++i) {
    model.push_back(pool.New());
    ring.Push(model.back());
  }
  EXPECT_GT(model.front()->queue_pos, model.back()->queue_pos);  // wrapped
  for (size_t i = 0; i < model.size(); i += 3) ring.Erase(model[i]);
  std::vector<Item*> kept;
  for (size_t i = 0; i < model.size(); ++i) {
    if (i % 3 != 0) kept.push_back(model[i]);
  }
  EXPECT_EQ(Drain(ring), kept);
}

}  // namespace
}  // namespace strata::tiers
