// Tests for Item::Create and the item layout: every metadata field starts
// cleared, even when malloc hands back memory that held other bytes; flags
// take room only when non-zero; the CAS unique keeps 48 bits.

#include "tiers/item.h"

#include <gtest/gtest.h>

#include <cstdlib>
#include <cstring>
#include <string>

namespace strata::tiers {
namespace {

TEST(ItemTest, CreateClearsEveryFlagInReusedMemory) {
  const size_t total = sizeof(Item) + 4 + 3 + 10 + 2;  // flags 7 take 4 bytes
  for (int i = 0; i < 4; ++i) {
    // glibc gives a freed chunk back to the next request of its size.
    void* junk = std::malloc(total);
    ASSERT_NE(junk, nullptr);
    std::memset(junk, 0xff, total);
    std::free(junk);
    Item* item = Item::Create("key", 7, 9, 10);
    ASSERT_NE(item, nullptr);
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
    EXPECT_EQ(std::string_view(item->Value() + 10, 2), "\r\n");
    Item::Destroy(item);
  }
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
