#include "tiers/item/item.h"

#include <malloc.h>

#include <cstdlib>
#include <new>

#include "tiers/item/item_slabs.h"

namespace strata::tiers {

namespace {

// An item outside the arena starts kCellPrefix bytes into its malloc block.
char* BlockOf(const Item* item, size_t prefix) {
  return const_cast<char*>(reinterpret_cast<const char*>(item)) - prefix;
}

// The calling thread's spare blocks (Item::KeepSpareBlocks()).
struct SpareBlocks {
  bool on = false;
  size_t count = 0;
  char* block[Item::kSpareBlocks] = {};
  size_t usable[Item::kSpareBlocks] = {};
  bool reused = false;  // since the last TrimSpareBlocks()

  ~SpareBlocks() { Trim(true); }
  // A block for `bytes` (with the cell prefix), or nullptr.
  char* Take(size_t bytes) {
    for (size_t i = 0; i < count; ++i) {
      if (usable[i] >= bytes && usable[i] - usable[i] / 4 <= bytes) {
        char* b = block[i];
        --count;
        block[i] = block[count];
        usable[i] = usable[count];
        reused = true;
        return b;
      }
    }
    return nullptr;
  }
  // True if it keeps `b`.
  bool Keep(char* b) {
    if (!on || count == Item::kSpareBlocks) return false;
    const size_t n = malloc_usable_size(b);
    if (n < Item::kSpareMinBytes) return false;
    block[count] = b;
    usable[count] = n;
    ++count;
    return true;
  }
  void Trim(bool all) {
    if (all || !reused) {
      for (size_t i = 0; i < count; ++i) std::free(block[i]);
      count = 0;
    }
    reused = false;
  }
};

SpareBlocks& Spares() {
  thread_local SpareBlocks spares;
  return spares;
}

}  // namespace

void Item::KeepSpareBlocks() { Spares().on = true; }

void Item::TrimSpareBlocks() { Spares().Trim(false); }

size_t Item::SpareBytes() {
  const SpareBlocks& s = Spares();
  size_t n = 0;
  for (size_t i = 0; i < s.count; ++i) n += s.usable[i];
  return n;
}

size_t Item::AllocatedBytes() const {
  if (ItemSlabs::Global().InSlabs(this)) {
    return ItemSlabs::ClassBytes(SizeFor(key_len, has_flags, value_len));
  }
  // malloc_usable_size reports the chunk's usable bytes; glibc adds an
  // 8-byte header in front of every chunk. The cell is 8 more.
  return malloc_usable_size(BlockOf(this, kCellPrefix)) + sizeof(size_t) + ItemSlabs::kGranule;
}

Item* Item::Create(std::string_view key, uint32_t flags, uint32_t exptime, uint32_t value_len) {
  if (key.size() > kMaxKeyLength || value_len > kMaxValueLength) return nullptr;
  const size_t bytes = SizeFor(key.size(), flags, value_len);
  ItemSlabs& slabs = ItemSlabs::Global();
  void* mem = bytes <= ItemSlabs::kMaxBytes ? slabs.Allocate(bytes) : nullptr;
  if (mem == nullptr) {
    // malloc aligns for max_align_t (16 bytes): the item, kCellPrefix in,
    // is 8-byte aligned.
    char* block = nullptr;
    if (kCellPrefix + bytes >= kSpareMinBytes) block = Spares().Take(kCellPrefix + bytes);
    if (block == nullptr) block = static_cast<char*>(std::malloc(kCellPrefix + bytes));
    if (block == nullptr) return nullptr;
    const uint32_t cell = slabs.NewCell(block + kCellPrefix);
    if (cell == 0) {
      std::free(block);
      return nullptr;
    }
    std::memcpy(block, &cell, sizeof(cell));
    mem = block + kCellPrefix;
  }
  Item* item = new (mem) Item;
  item->refs.store(1, std::memory_order_relaxed);
  item->value_len = value_len;
  item->has_flags = flags != 0 ? 1 : 0;
  item->SetCas(0);
  item->key_len = static_cast<uint8_t>(key.size());
  item->policy = 0;
  item->linked = 0;
  item->fetched = 0;
  item->ssd_copy = 0;
  item->read_ahead = 0;
  item->exptime = exptime;
  item->queue_pos = 0;
  item->atime = 0;
  item->active = 0;
  item->win_sent = 0;
  item->stale = 0;
  item->key_binary = 0;
  if (flags != 0) std::memcpy(reinterpret_cast<char*>(item + 1), &flags, sizeof(flags));
  char* data = item->MutableData();
  std::memcpy(data, key.data(), key.size());
  data[key.size() + value_len] = '\r';
  data[key.size() + value_len + 1] = '\n';
  return item;
}

void Item::Destroy(Item* item) {
  ItemSlabs& slabs = ItemSlabs::Global();
  if (slabs.InSlabs(item)) {
    item->~Item();
    slabs.Free(item);
    return;
  }
  const uint32_t cell = item->Handle();
  const bool big = kCellPrefix + SizeFor(item->key_len, item->has_flags, item->value_len) >=
                   kSpareMinBytes;
  item->~Item();
  slabs.FreeCell(cell);
  char* block = BlockOf(item, kCellPrefix);
  if (!big || !Spares().Keep(block)) std::free(block);
}

}  // namespace strata::tiers
