// Tests for Item::Create and the item layout: every metadata field starts
// cleared, even when the allocator hands back memory that held other bytes;
// small items take their ItemSlabs class, large ones a malloc chunk; flags
// take room only when non-zero; the CAS unique keeps 48 bits; a worker's
// spare blocks for large items are reused and trimmed.

#include "tiers/item/item.h"

#include <gtest/gtest.h>

#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>

#include "tiers/item/item_slabs.h"

namespace strata::tiers {
namespace {

TEST(ItemTest, CreateClearsEveryFlagInReusedMemory) {
  // A small item (ItemSlabs) and a large one (malloc): each is created in
  // memory that a freed item of its size left full of ones.
  for (uint32_t value_len : {10u, 3000u}) {
    SCOPED_TRACE(value_len);
    const size_t total = Item::SizeFor(3, 7, value_len);  // flags 7 take 4 bytes
    for (int i = 0; i < 4; ++i) {
      Item* junk = Item::Create("key", 7, 9, value_len);
      ASSERT_NE(junk, nullptr);
      std::memset(static_cast<void*>(junk), 0xff, total);
      junk->value_len = value_len;  // Destroy reads the size back
      junk->key_len = 3;
      junk->has_flags = 1;
      const void* where = junk;
      Item::Destroy(junk);
      Item* item = Item::Create("key", 7, 9, value_len);
      ASSERT_NE(item, nullptr);
      // Slabs hand back the slot just freed on this thread.
      if (total <= ItemSlabs::kMaxBytes) {
        EXPECT_EQ(static_cast<const void*>(item), where);
      }
      EXPECT_EQ(item->refs.load(), 1u);
      EXPECT_EQ(item->Cas(), 0u);
      EXPECT_EQ(item->Flags(), 7u);
      EXPECT_EQ(item->exptime, 9u);
      EXPECT_EQ(item->queue_pos, 0u);
      EXPECT_EQ(item->policy, 0);
      EXPECT_EQ(item->linked, 0);
      EXPECT_EQ(item->fetched, 0);
      EXPECT_EQ(item->ssd_copy, 0);
      EXPECT_EQ(item->read_ahead, 0);
      EXPECT_EQ(item->Key(), "key");
      EXPECT_EQ(std::string_view(item->Value() + value_len, 2), "\r\n");
      Item::Destroy(item);
    }
  }
}

TEST(ItemTest, SmallItemsTakeTheirSlabClassLargeOnesAMallocChunk) {
  const std::string key(9, 'k');
  for (uint32_t value_len : {0u, 100u, 101u, 990u, 991u, 5000u, 100000u}) {
    SCOPED_TRACE(value_len);
    const size_t bytes = Item::SizeFor(key.size(), 0, value_len);
    const ItemSlabs::Stats before = ItemSlabs::Global().stats();
    Item* item = Item::Create(key, 0, 0, value_len);
    ASSERT_NE(item, nullptr);
    EXPECT_EQ(reinterpret_cast<uintptr_t>(item) % 8, 0u);
    const ItemSlabs::Stats during = ItemSlabs::Global().stats();
    if (bytes <= ItemSlabs::kMaxBytes) {
      EXPECT_EQ(item->AllocatedBytes(), ItemSlabs::ClassBytes(bytes));
      EXPECT_EQ(during.bytes_in_use - before.bytes_in_use, ItemSlabs::ClassBytes(bytes));
      EXPECT_EQ(during.cells_in_use, before.cells_in_use);
      EXPECT_TRUE(ItemSlabs::Global().InSlabs(item));
    } else {
      // glibc: the usable size (the 8-byte cell prefix included) rounded up
      // to 16 with its 8-byte header, and the 8-byte cell.
      EXPECT_GE(item->AllocatedBytes(), bytes + 8 + 8 + 8);
      EXPECT_LT(item->AllocatedBytes(), bytes + 8 + 8 + 8 + 16);
      EXPECT_EQ(during.bytes_in_use, before.bytes_in_use);
      EXPECT_EQ(during.cells_in_use, before.cells_in_use + 1);
      EXPECT_FALSE(ItemSlabs::Global().InSlabs(item));
    }
    EXPECT_EQ(Item::FromHandle(item->Handle()), item);
    Item::Destroy(item);
    EXPECT_EQ(ItemSlabs::Global().stats().bytes_in_use, before.bytes_in_use);
    EXPECT_EQ(ItemSlabs::Global().stats().cells_in_use, before.cells_in_use);
  }
  // The benchmark's item: 28-byte header, 9-byte key, 100-byte value, "\r\n".
  EXPECT_EQ(ItemSlabs::ClassBytes(Item::SizeFor(9, 0, 100)), 144u);
}

TEST(ItemTest, FlagsTakeFourBytesOnlyWhenNonZero) {
  for (uint32_t flags : {0u, 1u, 0x80000000u, 0xffffffffu}) {
    SCOPED_TRACE(flags);
    Item* item = Item::Create("some-key", flags, 0, 5);
    ASSERT_NE(item, nullptr);
    std::memcpy(item->MutableValue(), "hello", 5);
    EXPECT_EQ(item->Flags(), flags);
    EXPECT_EQ(item->has_flags, flags != 0 ? 1 : 0);
    const char* after_header = reinterpret_cast<const char*>(item + 1);
    EXPECT_EQ(item->Data(), after_header + (flags != 0 ? 4 : 0));
    EXPECT_EQ(item->Key(), "some-key");
    EXPECT_EQ(item->ValueWithCrlf(), "hello\r\n");
    Item::Destroy(item);
  }
}

TEST(ItemTest, CasKeepsFortyEightBits) {
  Item* item = Item::Create("k", 3, 0, 0);
  ASSERT_NE(item, nullptr);
  for (uint64_t cas : {uint64_t{1}, uint64_t{0xffffffff}, uint64_t{0x100000000},
                       uint64_t{0x123456789abc}, kMaxCas}) {
    item->SetCas(cas);
    EXPECT_EQ(item->Cas(), cas);
    EXPECT_EQ(item->Flags(), 3u);  // neighbours untouched
    EXPECT_EQ(item->key_len, 1u);
  }
  Item::Destroy(item);
}

TEST(ItemTest, CreateRefusesWhatTheHeaderCannotHold) {
  EXPECT_EQ(Item::Create(std::string(kMaxKeyLength + 1, 'k'), 0, 0, 1), nullptr);
  EXPECT_EQ(Item::Create("k", 0, 0, static_cast<uint32_t>(kMaxValueLength) + 1), nullptr);
}

}  // namespace
}  // namespace strata::tiers

namespace strata::tiers {
namespace {

// A worker's freed large blocks are reused by its next items of about
// their size, and go back at the second trim without reuse; a thread that
// did not ask keeps none. The value of a reused block is the new item's.
TEST(ItemTest, SpareBlocksAreReusedByTheirThreadAndTrimmed) {
  std::thread([] {
    Item::KeepSpareBlocks();
    const uint32_t len = 40u << 20;
    Item* a = Item::Create("a", 0, 0, len);
    ASSERT_NE(a, nullptr);
    std::memset(a->MutableValue(), 'a', len);
    const Item* at = a;
    Item::Destroy(a);
    EXPECT_GE(Item::SpareBytes(), size_t{len});
    // Too small for the block (more than a quarter smaller): not reused.
    Item* small = Item::Create("s", 0, 0, len / 2);
    ASSERT_NE(small, nullptr);
    EXPECT_GE(Item::SpareBytes(), size_t{len});
    Item* b = Item::Create("bb", 7, 0, len - 100);
    ASSERT_NE(b, nullptr);
    EXPECT_EQ(Item::SpareBytes(), 0u);
    EXPECT_EQ(b, at);  // the same block
    EXPECT_EQ(b->Key(), "bb");
    EXPECT_EQ(b->Flags(), 7u);
    EXPECT_EQ(b->Data()[2 + b->value_len], '\r');
    Item::Destroy(b);
    Item::Destroy(small);  // kept too: two blocks
    EXPECT_GE(Item::SpareBytes(), size_t{len} + len / 2);
    Item::TrimSpareBlocks();  // reused since the last trim: kept
    EXPECT_GT(Item::SpareBytes(), 0u);
    Item::TrimSpareBlocks();
    EXPECT_EQ(Item::SpareBytes(), 0u);
  }).join();
  std::thread([] {
    Item* a = Item::Create("a", 0, 0, 20u << 20);
    ASSERT_NE(a, nullptr);
    Item::Destroy(a);
    EXPECT_EQ(Item::SpareBytes(), 0u);
  }).join();
}

}  // namespace
}  // namespace strata::tiers
