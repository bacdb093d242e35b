// Tests for ItemSlabs: slots are 8-byte aligned, sized by class and never
// overlap; freed slots are reused; an emptied slab serves any class; past
// the warm reserve an empty slab's pages really leave the process (mincore);
// slots freed on other threads than their allocator's stay consistent; under
// AddressSanitizer a freed slot is poisoned.

#include "tiers/item/item_slabs.h"

#include <gtest/gtest.h>
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <random>
#include <thread>
#include <vector>

namespace strata::tiers {
namespace {

struct Slot {
  char* p;
  size_t bytes;
  uint8_t fill;
};

void Fill(const Slot& s) { std::memset(s.p, s.fill, s.bytes); }

bool Intact(const Slot& s) {
  for (size_t i = 0; i < s.bytes; ++i) {
    if (static_cast<uint8_t>(s.p[i]) != s.fill) return false;
  }
  return true;
}

// Resident pages of [p, p + len).
size_t ResidentPages(const void* p, size_t len) {
  const size_t page = static_cast<size_t>(sysconf(_SC_PAGESIZE));
  std::vector<unsigned char> vec((len + page - 1) / page);
  EXPECT_EQ(mincore(const_cast<void*>(p), len, vec.data()), 0);
  size_t n = 0;
  for (unsigned char v : vec) n += v & 1;
  return n;
}

TEST(ItemSlabsTest, ClassesAreEightBytesApart) {
  EXPECT_EQ(ItemSlabs::ClassBytes(1), 8u);
  EXPECT_EQ(ItemSlabs::ClassBytes(8), 8u);
  EXPECT_EQ(ItemSlabs::ClassBytes(9), 16u);
  EXPECT_EQ(ItemSlabs::ClassBytes(135), 136u);
  EXPECT_EQ(ItemSlabs::ClassBytes(ItemSlabs::kMaxBytes), ItemSlabs::kMaxBytes);
}

TEST(ItemSlabsTest, EverySizeGetsAlignedSlotsThatNeverOverlap) {
  ItemSlabs slabs;
  std::vector<Slot> slots;
  size_t bytes_total = 0;
  for (int round = 0; round < 3; ++round) {
    for (size_t bytes = 1; bytes <= ItemSlabs::kMaxBytes; ++bytes) {
      char* p = static_cast<char*>(slabs.Allocate(bytes));
      ASSERT_NE(p, nullptr);
      EXPECT_EQ(reinterpret_cast<uintptr_t>(p) % 8, 0u) << bytes;
      EXPECT_TRUE(slabs.InSlabs(p) && slabs.InSlabs(p + bytes - 1)) << bytes;
      slots.push_back({p, ItemSlabs::ClassBytes(bytes), static_cast<uint8_t>(slots.size())});
      Fill(slots.back());
      bytes_total += ItemSlabs::ClassBytes(bytes);
    }
  }
  for (const Slot& s : slots) ASSERT_TRUE(Intact(s)) << s.bytes;
  ItemSlabs::Stats st = slabs.stats();
  EXPECT_EQ(st.slots_in_use, slots.size());
  EXPECT_EQ(st.bytes_in_use, bytes_total);
  EXPECT_GE(st.slabs_in_use, ItemSlabs::kMaxBytes / ItemSlabs::kGranule);

  for (const Slot& s : slots) slabs.Free(s.p);
  st = slabs.stats();
  EXPECT_EQ(st.slots_in_use, 0u);
  EXPECT_EQ(st.bytes_in_use, 0u);
  EXPECT_EQ(st.slabs_in_use, 0u);
  EXPECT_EQ(st.slabs_warm, ItemSlabs::kWarmSlabs);
  EXPECT_GT(st.slabs_cold, 0u);
}

TEST(ItemSlabsTest, FreedSlotIsReusedAndEmptySlabServesAnotherClass) {
  ItemSlabs slabs;
  void* a = slabs.Allocate(136);
  void* b = slabs.Allocate(130);  // same class
  EXPECT_EQ(static_cast<char*>(b) - static_cast<char*>(a), 136);
  slabs.Free(a);
  EXPECT_EQ(slabs.Allocate(136), a);
  slabs.Free(a);
  slabs.Free(b);
  EXPECT_EQ(slabs.stats().slabs_in_use, 0u);
  EXPECT_EQ(slabs.stats().slabs_warm, 1u);
  // The emptied slab is the one the next class gets.
  void* c = slabs.Allocate(1000);
  const uintptr_t mask = ~(uintptr_t{ItemSlabs::kSlabBytes} - 1);
  EXPECT_EQ(reinterpret_cast<uintptr_t>(c) & mask, reinterpret_cast<uintptr_t>(a) & mask);
  EXPECT_EQ(slabs.stats().slabs_warm, 0u);
  slabs.Free(c);
}

TEST(ItemSlabsTest, FullSlabsMoveOnAndComeBackWhenASlotIsFreed) {
  ItemSlabs slabs;
  const size_t per_slab = (ItemSlabs::kSlabBytes - 64) / 512;
  std::vector<void*> slots;
  for (size_t i = 0; i < 3 * per_slab; ++i) slots.push_back(slabs.Allocate(512));
  EXPECT_EQ(slabs.stats().slabs_in_use, 3u);
  // A slot freed in the first (full) slab is the next one handed out.
  slabs.Free(slots[5]);
  EXPECT_EQ(slabs.Allocate(512), slots[5]);
  EXPECT_EQ(slabs.stats().slabs_in_use, 3u);
  for (void* p : slots) slabs.Free(p);
  EXPECT_EQ(slabs.stats().slabs_in_use, 0u);
}

TEST(ItemSlabsTest, EmptySlabsPastTheWarmReserveLeaveRss) {
  ItemSlabs slabs;
  const size_t per_slab = (ItemSlabs::kSlabBytes - 64) / 1024;
  const size_t n_slabs = ItemSlabs::kWarmSlabs + 8;
  std::vector<char*> slots;
  for (size_t i = 0; i < n_slabs * per_slab; ++i) {
    char* p = static_cast<char*>(slabs.Allocate(1024));
    std::memset(p, 0x5a, 1024);
    slots.push_back(p);
  }
  const size_t all_pages =
      n_slabs * ItemSlabs::kSlabBytes / static_cast<size_t>(sysconf(_SC_PAGESIZE));
  // Slabs are carved in address order from one region.
  const uintptr_t mask = ~(uintptr_t{ItemSlabs::kSlabBytes} - 1);
  const char* first =
      reinterpret_cast<const char*>(reinterpret_cast<uintptr_t>(slots.front()) & mask);
  EXPECT_EQ(ResidentPages(first, n_slabs * ItemSlabs::kSlabBytes), all_pages);

  for (char* p : slots) slabs.Free(p);
  ItemSlabs::Stats st = slabs.stats();
  EXPECT_EQ(st.slabs_warm, ItemSlabs::kWarmSlabs);
  EXPECT_EQ(st.slabs_cold, 8u);
  const size_t pages_per_slab = all_pages / n_slabs;
  EXPECT_EQ(ResidentPages(first, n_slabs * ItemSlabs::kSlabBytes),
            ItemSlabs::kWarmSlabs * pages_per_slab);

  // A cold slab is handed out again once the warm ones are gone, zeroed.
  std::vector<char*> again;
  for (size_t i = 0; i < n_slabs * per_slab; ++i)
    again.push_back(static_cast<char*>(slabs.Allocate(1024)));
  EXPECT_EQ(slabs.stats().slabs_in_use, n_slabs);
  EXPECT_EQ(slabs.stats().slabs_cold, 0u);
  // Warm slabs are used first; the last 8 slabs' worth of slots are the
  // cold ones, and read back as zeros.
  for (size_t i = ItemSlabs::kWarmSlabs * per_slab; i < again.size(); ++i) {
    for (size_t b = 0; b < 1024; ++b) ASSERT_EQ(again[i][b], 0) << i << " " << b;
  }
  for (char* p : again) slabs.Free(p);
}

TEST(ItemSlabsTest, UntouchedSlotsOfAFreshSlabAreNotResident) {
  ItemSlabs slabs;
  char* p = static_cast<char*>(slabs.Allocate(64));
  std::memset(p, 1, 64);
  const uintptr_t mask = ~(uintptr_t{ItemSlabs::kSlabBytes} - 1);
  const char* slab = reinterpret_cast<const char*>(reinterpret_cast<uintptr_t>(p) & mask);
  EXPECT_EQ(ResidentPages(slab, ItemSlabs::kSlabBytes), 1u);
  slabs.Free(p);
}

TEST(ItemSlabsTest, ModelCheckedRandomAllocationsAndFrees) {
  ItemSlabs slabs;
  std::mt19937_64 rng(7);
  std::vector<Slot> live;
  size_t bytes = 0;
  for (int step = 0; step < 200000; ++step) {
    if (live.empty() || rng() % 100 < 52) {
      const size_t n = 1 + rng() % ItemSlabs::kMaxBytes;
      char* p = static_cast<char*>(slabs.Allocate(n));
      ASSERT_NE(p, nullptr);
      live.push_back({p, ItemSlabs::ClassBytes(n), static_cast<uint8_t>(rng())});
      Fill(live.back());
      bytes += live.back().bytes;
    } else {
      const size_t i = rng() % live.size();
      ASSERT_TRUE(Intact(live[i])) << "step " << step;
      slabs.Free(live[i].p);
      bytes -= live[i].bytes;
      live[i] = live.back();
      live.pop_back();
    }
  }
  for (const Slot& s : live) ASSERT_TRUE(Intact(s));
  EXPECT_EQ(slabs.stats().slots_in_use, live.size());
  EXPECT_EQ(slabs.stats().bytes_in_use, bytes);
  for (const Slot& s : live) slabs.Free(s.p);
  EXPECT_EQ(slabs.stats().slabs_in_use, 0u);
}

TEST(ItemSlabsTest, SlotsFreedOnOtherThreads) {
  ItemSlabs slabs;
  constexpr int kThreads = 4;
  constexpr int kPerThread = 20000;
  // Each thread allocates its share; then each frees the next thread's
  // slots while allocating more of its own.
  std::vector<std::vector<Slot>> made(kThreads);
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      std::mt19937_64 rng(t);
      for (int i = 0; i < kPerThread; ++i) {
        const size_t n = 24 + rng() % 500;
        Slot s{static_cast<char*>(slabs.Allocate(n)), ItemSlabs::ClassBytes(n),
               static_cast<uint8_t>(t * 31 + i)};
        Fill(s);
        made[t].push_back(s);
      }
    });
  }
  for (auto& th : threads) th.join();
  threads.clear();
  std::vector<std::vector<Slot>> more(kThreads);
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      std::mt19937_64 rng(100 + t);
      for (const Slot& s : made[(t + 1) % kThreads]) {
        if (!Intact(s)) std::abort();
        slabs.Free(s.p);
        const size_t n = 24 + rng() % 500;
        Slot m{static_cast<char*>(slabs.Allocate(n)), ItemSlabs::ClassBytes(n),
               static_cast<uint8_t>(t)};
        Fill(m);
        more[t].push_back(m);
      }
    });
  }
  for (auto& th : threads) th.join();
  size_t n = 0;
  for (const auto& v : more) {
    for (const Slot& s : v) ASSERT_TRUE(Intact(s));
    n += v.size();
  }
  EXPECT_EQ(slabs.stats().slots_in_use, n);
  for (const auto& v : more) {
    for (const Slot& s : v) slabs.Free(s.p);
  }
  EXPECT_EQ(slabs.stats().slots_in_use, 0u);
  EXPECT_EQ(slabs.stats().slabs_in_use, 0u);
}

#if defined(__SANITIZE_ADDRESS__)
// A freed slot is poisoned but for its free-list link (its last 8 bytes),
// so AddressSanitizer reports a use after free of an item's header.
TEST(ItemSlabsDeathTest, UseOfAFreedSlotIsReportedUnderAsan) {
  ItemSlabs slabs;
  char* p = static_cast<char*>(slabs.Allocate(100));
  p[0] = 1;
  slabs.Free(p);
  EXPECT_DEATH(
      {
        volatile char* v = p;
        v[0] = 2;
      },
      "use-after-poison");
  // Handed out again, the slot is usable.
  EXPECT_EQ(slabs.Allocate(100), p);
  p[0] = 3;
  slabs.Free(p);
}
#endif

// Cells: never handle 0, below kCellHandles, each holding what it was
// given; freed ones are reused; past the first writable slab's worth too.
TEST(ItemSlabsTest, CellsHoldTheirTargetsAndAreReused) {
  ItemSlabs slabs;
  constexpr size_t kN = 3 * ItemSlabs::kSlabBytes / ItemSlabs::kGranule;  // three slabs' worth
  std::vector<uint32_t> cells;
  std::vector<char> targets(kN);
  for (size_t i = 0; i < kN; ++i) {
    const uint32_t h = slabs.NewCell(&targets[i]);
    ASSERT_NE(h, 0u);
    ASSERT_LT(h, ItemSlabs::kCellHandles);
    cells.push_back(h);
  }
  EXPECT_EQ(slabs.stats().cells_in_use, kN);
  std::vector<uint32_t> sorted = cells;
  std::sort(sorted.begin(), sorted.end());
  EXPECT_EQ(std::adjacent_find(sorted.begin(), sorted.end()), sorted.end());
  // A freed cell is handed out again before any new one.
  slabs.FreeCell(cells[100]);
  slabs.FreeCell(cells[7]);
  EXPECT_EQ(slabs.stats().cells_in_use, kN - 2);
  const uint32_t again = slabs.NewCell(&targets[0]);
  EXPECT_EQ(again, cells[7]);
  EXPECT_EQ(slabs.NewCell(&targets[1]), cells[100]);
  for (uint32_t h : cells) slabs.FreeCell(h);
  EXPECT_EQ(slabs.stats().cells_in_use, 0u);
}

// Slab memory is never a cell: InSlabs() tells them apart.
TEST(ItemSlabsTest, SlotsAreInSlabsNothingElseIs) {
  ItemSlabs slabs;
  void* p = slabs.Allocate(100);
  ASSERT_NE(p, nullptr);
  EXPECT_TRUE(slabs.InSlabs(p));
  int on_stack = 0;
  EXPECT_FALSE(slabs.InSlabs(&on_stack));
  std::vector<char> heap(64);
  EXPECT_FALSE(slabs.InSlabs(heap.data()));
  slabs.Free(p);
}

}  // namespace
}  // namespace strata::tiers
