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

}  // namespace

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
    char* block = static_cast<char*>(std::malloc(kCellPrefix + bytes));
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
  item->~Item();
  slabs.FreeCell(cell);
  std::free(BlockOf(item, kCellPrefix));
}

}  // namespace strata::tiers
