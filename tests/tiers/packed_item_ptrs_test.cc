// Tests for PackedItemPtrs: entries round-trip an item's address and its 3
// spare bits, including the highest address Item::Create may return, and
// writing one entry never changes its neighbours.

#include "tiers/packed_item_ptrs.h"

#include <gtest/gtest.h>

#include <cstddef>
#include <cstdint>
#include <utility>
#include <vector>

#include "tiers/item.h"

namespace strata::tiers {
namespace {

Item* FakeItem(uint64_t address) {
  return reinterpret_cast<Item*>(static_cast<uintptr_t>(address));
}

TEST(PackedItemPtrsTest, EntriesRoundTripAddressAndBits) {
  const uint64_t addresses[] = {8, 0x7f12'3456'7898, 0x5555'5555'5550, kItemAddressLimit - 8};
  for (uint64_t a : addresses) {
    for (uint64_t bits = 0; bits < (1u << PackedItemPtrs::kSpareBits); ++bits) {
      PackedItemPtrs::Entry e = PackedItemPtrs::Encode(FakeItem(a), bits);
      EXPECT_NE(e, 0u);
      EXPECT_EQ(e >> 48, 0u) << "an entry is 6 bytes";
      EXPECT_EQ(PackedItemPtrs::ItemOf(e), FakeItem(a)) << std::hex << a << " " << bits;
      EXPECT_EQ(PackedItemPtrs::BitsOf(e), bits);
    }
  }
  EXPECT_EQ(PackedItemPtrs::ItemOf(0), nullptr);
}

TEST(PackedItemPtrsTest, SetChangesOnlyItsEntry) {
  constexpr size_t kN = 37;
  PackedItemPtrs a(kN);
  for (size_t i = 0; i < kN; ++i) EXPECT_EQ(a.Get(i), 0u) << i;

  // Every entry all ones, then each one rewritten in turn: its neighbours
  // keep their value.
  const PackedItemPtrs::Entry ones = PackedItemPtrs::Encode(FakeItem(kItemAddressLimit - 8), 7);
  for (size_t i = 0; i < kN; ++i) a.Set(i, ones);
  std::vector<PackedItemPtrs::Entry> model(kN, ones);
  for (size_t i = 0; i < kN; ++i) {
    model[i] = PackedItemPtrs::Encode(FakeItem(8 * (i + 1)), i % 8);
    a.Set(i, model[i]);
    for (size_t j = 0; j < kN; ++j) ASSERT_EQ(a.Get(j), model[j]) << "set " << i << " read " << j;
  }
  a.Set(kN - 1, 0);
  EXPECT_EQ(a.Get(kN - 1), 0u);
  EXPECT_EQ(a.Get(kN - 2), model[kN - 2]);

  a.Clear();
  for (size_t i = 0; i < kN; ++i) EXPECT_EQ(a.Get(i), 0u) << i;

  // Moving hands the entries over and leaves an empty array behind.
  a.Set(3, model[3]);
  PackedItemPtrs b = std::move(a);
  EXPECT_EQ(a.size(), 0u);  // NOLINT(bugprone-use-after-move)
  ASSERT_EQ(b.size(), kN);
  EXPECT_EQ(b.Get(3), model[3]);
}

TEST(PackedItemPtrsTest, RealItemsRoundTrip) {
  Item* item = Item::Create("key", 7, 0, 10);
  ASSERT_NE(item, nullptr);
  EXPECT_LT(reinterpret_cast<uintptr_t>(item), kItemAddressLimit);
  PackedItemPtrs a(1);
  a.Set(0, PackedItemPtrs::Encode(item, 9));
  EXPECT_EQ(PackedItemPtrs::ItemOf(a.Get(0)), item);
  EXPECT_EQ(PackedItemPtrs::ItemOf(a.Get(0))->Key(), "key");
  Item::Destroy(item);
}

}  // namespace
}  // namespace strata::tiers
