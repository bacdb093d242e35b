#include "tiers/item.h"

#include <malloc.h>

#include <cstdlib>
#include <new>

#include "tiers/item_slabs.h"

namespace strata::tiers {

namespace {

// Small items live in ItemSlabs, the rest in malloc's heap; the size, which
// never changes after Create, says which.
bool InSlabs(size_t bytes) { return bytes <= ItemSlabs::kMaxBytes; }

}  // namespace

size_t Item::AllocatedBytes() const {
  const size_t bytes = SizeFor(key_len, has_flags, value_len);
  if (InSlabs(bytes)) return ItemSlabs::ClassBytes(bytes);
  // malloc_usable_size reports the chunk's usable bytes; glibc adds an
  // 8-byte header in front of every chunk.
  return malloc_usable_size(const_cast<Item*>(this)) + sizeof(size_t);
}

Item* Item::Create(std::string_view key, uint32_t flags, uint32_t exptime, uint32_t value_len) {
  if (key.size() > kMaxKeyLength || value_len > kMaxValueLength) return nullptr;
  const size_t bytes = SizeFor(key.size(), flags, value_len);
  void* mem;
  if (InSlabs(bytes)) {
    mem = ItemSlabs::Global().Allocate(bytes);  // 8-byte aligned, below the limit
    if (mem == nullptr) return nullptr;
  } else {
    // malloc aligns for max_align_t: 16 bytes.
    mem = std::malloc(bytes);
    if (mem == nullptr) return nullptr;
    if (reinterpret_cast<uintptr_t>(mem) >= kItemAddressLimit) {
      std::free(mem);
      return nullptr;
    }
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
  if (flags != 0) std::memcpy(reinterpret_cast<char*>(item + 1), &flags, sizeof(flags));
  char* data = item->MutableData();
  std::memcpy(data, key.data(), key.size());
  data[key.size() + value_len] = '\r';
  data[key.size() + value_len + 1] = '\n';
  return item;
}

void Item::Destroy(Item* item) {
  const size_t bytes = SizeFor(item->key_len, item->has_flags, item->value_len);
  item->~Item();
  if (InSlabs(bytes)) {
    ItemSlabs::Global().Free(item);
  } else {
    std::free(item);
  }
}

}  // namespace strata::tiers
