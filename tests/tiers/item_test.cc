// Tests for Item::Create: every metadata field starts cleared, even when
// malloc hands back memory that held other bytes.

#include "tiers/item.h"

#include <gtest/gtest.h>

#include <cstdlib>
#include <cstring>

namespace strata::tiers {
namespace {

TEST(ItemTest, CreateClearsEveryFlagInReusedMemory) {
  const size_t total = sizeof(Item) + 3 + 10 + 2;
  for (int i = 0; i < 4; ++i) {
    // glibc gives a freed chunk back to the next request of its size.
    void* junk = std::malloc(total);
    ASSERT_NE(junk, nullptr);
    std::memset(junk, 0xff, total);
    std::free(junk);
    Item* item = Item::Create("key", 7, 9, 10);
    ASSERT_NE(item, nullptr);
    EXPECT_EQ(item->refs.load(), 1u);
    EXPECT_EQ(item->cas, 0u);
    EXPECT_EQ(item->flags, 7u);
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

}  // namespace
}  // namespace strata::tiers
