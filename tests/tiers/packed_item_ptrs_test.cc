// Tests for PackedItemPtrs: entries round-trip real items, small ones in the
// ItemSlabs arena and large ones through their cells, with every value of
// the spare bits; writing one entry never changes its neighbours, in both
// widths.

#include "tiers/item/packed_item_ptrs.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "tiers/item/item.h"
#include "tiers/item/item_slabs.h"

namespace strata::tiers {
namespace {

// Owns items of a value size each, freed at the end.
class Items {
 public:
  ~Items() {
    for (Item* item : items_) Item::Destroy(item);
  }
  Item* New(const std::string& key, uint32_t value_len) {
    Item* item = Item::Create(key, 0, 0, value_len);
    if (item != nullptr) items_.push_back(item);
    return item;
  }

 private:
  std::vector<Item*> items_;
};

TEST(PackedItemPtrsTest, SmallAndLargeItemsRoundTripWithEveryTag) {
  Items items;
  Item* small = items.New("small", 10);
  Item* large = items.New("large", 100000);
  ASSERT_NE(small, nullptr);
  ASSERT_NE(large, nullptr);
  EXPECT_TRUE(ItemSlabs::Global().InSlabs(small));
  EXPECT_FALSE(ItemSlabs::Global().InSlabs(large));
  // A small item's handle is its arena offset; a large one's is its cell's.
  EXPECT_GE(small->Handle(), ItemSlabs::kCellHandles);
  EXPECT_GT(large->Handle(), 0u);
  EXPECT_LT(large->Handle(), ItemSlabs::kCellHandles);
  for (Item* item : {small, large}) {
    for (uint64_t bits = 0; bits < 256; ++bits) {
      const PackedItemPtrs<5>::Entry e = PackedItemPtrs<5>::Encode(item, bits);
      ASSERT_NE(e, 0u);
      ASSERT_EQ(PackedItemPtrs<5>::ItemOf(e), item) << bits;
      ASSERT_EQ(PackedItemPtrs<5>::BitsOf(e), bits);
    }
    EXPECT_EQ(PackedItemPtrs<4>::ItemOf(PackedItemPtrs<4>::Encode(item)), item);
    EXPECT_EQ(Item::FromHandle(item->Handle())->Key(), item->Key());
  }
  EXPECT_EQ(PackedItemPtrs<5>::ItemOf(0), nullptr);
  EXPECT_EQ(PackedItemPtrs<4>::ItemOf(0), nullptr);
}

TEST(PackedItemPtrsTest, CellsAreReusedAndHandlesStayDistinct) {
  // Many large items alive at once have distinct handles; freeing them and
  // making more reuses cells, still with no two alike.
  std::vector<Item*> live;
  std::vector<uint32_t> handles;
  for (int i = 0; i < 3000; ++i) {
    live.push_back(Item::Create("k" + std::to_string(i), 0, 0, 2000));
    ASSERT_NE(live.back(), nullptr);
    handles.push_back(live.back()->Handle());
  }
  std::vector<uint32_t> sorted = handles;
  std::sort(sorted.begin(), sorted.end());
  EXPECT_EQ(std::adjacent_find(sorted.begin(), sorted.end()), sorted.end());
  const size_t cells = ItemSlabs::Global().stats().cells_in_use;
  EXPECT_GE(cells, live.size());
  for (size_t i = 0; i < live.size(); i += 2) Item::Destroy(live[i]);
  EXPECT_EQ(ItemSlabs::Global().stats().cells_in_use, cells - live.size() / 2);
  for (size_t i = 0; i < live.size(); i += 2) {
    live[i] = Item::Create("again" + std::to_string(i), 0, 0, 5000);
    ASSERT_NE(live[i], nullptr);
  }
  EXPECT_EQ(ItemSlabs::Global().stats().cells_in_use, cells);
  for (size_t i = 0; i < live.size(); ++i) {
    ASSERT_EQ(Item::FromHandle(live[i]->Handle()), live[i]) << i;
    handles[i] = live[i]->Handle();
  }
  std::sort(handles.begin(), handles.end());
  EXPECT_EQ(std::adjacent_find(handles.begin(), handles.end()), handles.end());
  for (Item* item : live) Item::Destroy(item);
}

template <size_t kBytes>
void CheckSetChangesOnlyItsEntry() {
  using Ptrs = PackedItemPtrs<kBytes>;
  constexpr size_t kN = 37;
  Items items;
  std::vector<Item*> pool;
  for (size_t i = 0; i < kN; ++i)
    pool.push_back(items.New("k" + std::to_string(i), i % 2 ? 3 : 3000));
  Ptrs a(kN);
  for (size_t i = 0; i < kN; ++i) EXPECT_EQ(a.Get(i), 0u) << i;

  // Every entry all ones, then each one rewritten in turn: its neighbours
  // keep their value.
  const typename Ptrs::Entry ones = (uint64_t{1} << (8 * kBytes)) - 1;
  for (size_t i = 0; i < kN; ++i) a.Set(i, ones);
  std::vector<typename Ptrs::Entry> model(kN, ones);
  for (size_t i = 0; i < kN; ++i) {
    model[i] = Ptrs::Encode(pool[i], i % (uint64_t{1} << Ptrs::kSpareBits));
    a.Set(i, model[i]);
    for (size_t j = 0; j < kN; ++j) ASSERT_EQ(a.Get(j), model[j]) << "set " << i << " read " << j;
  }
  for (size_t i = 0; i < kN; ++i) EXPECT_EQ(Ptrs::ItemOf(a.Get(i)), pool[i]);
  a.Set(kN - 1, 0);
  EXPECT_EQ(a.Get(kN - 1), 0u);
  EXPECT_EQ(a.Get(kN - 2), model[kN - 2]);

  a.Clear();
  for (size_t i = 0; i < kN; ++i) EXPECT_EQ(a.Get(i), 0u) << i;

  // Moving hands the entries over and leaves an empty array behind.
  a.Set(3, model[3]);
  Ptrs b = std::move(a);
  EXPECT_EQ(a.size(), 0u);  // NOLINT(bugprone-use-after-move)
  ASSERT_EQ(b.size(), kN);
  EXPECT_EQ(b.Get(3), model[3]);
}

TEST(PackedItemPtrsTest, SetChangesOnlyItsEntryFiveBytes) { CheckSetChangesOnlyItsEntry<5>(); }
TEST(PackedItemPtrsTest, SetChangesOnlyItsEntryFourBytes) { CheckSetChangesOnlyItsEntry<4>(); }

}  // namespace
}  // namespace strata::tiers
