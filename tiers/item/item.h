// Item: one cached key/value with its memcached metadata, in a single
// allocation laid out as [header][flags, only if non-zero][key][value]["\r\n"].
//
// The value is immutable once the item is published to a tier (Store()); a
// write makes a new item. Items are shared through ItemRef, an intrusive
// reference-counted handle: a reply that is being written keeps its item
// alive after the key was deleted or replaced. The trailing "\r\n" lets a
// reply send value and terminator from the item's memory in one piece.
//
// The header is 28 bytes. As in memcached, client flags take 4 bytes only
// when they are non-zero, and the CAS unique is kept in 48 bits (kMaxCas:
// 8.9 years of 1 million stores a second). The last word holds what the
// meta protocol shows and memcached keeps in it->time and it_flags: the
// last access time (`mg l`, `me la=`), the stale and win-token-sent bits
// (`md I`, `mg` W/X/Z) and whether the key was stored base64-decoded (`b`,
// re-encoded in `k` and `me`).
//
// Every item has a 32-bit Handle() (PackedItemPtrs keeps handles): an item
// of up to ItemSlabs::kMaxBytes lives in the ItemSlabs arena, and its handle
// is its offset there / 8; a larger one (or a small one once the slab part
// of the arena is used up) comes from malloc with 8 bytes in front of it
// that name an arena cell holding its address, and its handle is the
// cell's.
//
// Invariant: key_len <= kMaxKeyLength; value_len <= kMaxValueLength;
// Data()[value_len, value_len+2) is "\r\n"; FromHandle(Handle()) == this.
//
// Thread safety: the reference count is atomic, so ItemRefs may be copied and
// dropped on any thread. The metadata fields `exptime`, `queue_pos`, `policy`,
// `linked`, `fetched`, `ssd_copy`, `read_ahead`, `atime`, `active`,
// `win_sent`, `stale` and `key_binary` belong to the tier holding the item
// and are only touched (read or written: several share a word) under that
// tier's shard lock (or before the item is published); everything else is
// immutable after Store().
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string_view>
#include <utility>

#include "common/limits.h"
#include "tiers/item/item_slabs.h"

namespace strata::tiers {

using common::kMaxKeyLength;  // the parser refuses longer keys too
static_assert(kMaxKeyLength <= UINT8_MAX, "Item::key_len is one byte");

inline constexpr size_t kMaxValueLength = (size_t{1} << 31) - 1;
inline constexpr uint64_t kMaxCas = (uint64_t{1} << 48) - 1;
inline constexpr uint32_t kMaxAtime = (uint32_t{1} << 28) - 1;  // 8.5 years

struct Item {
  std::atomic<uint32_t> refs;
  uint32_t value_len : 31;  // bytes of value, without the "\r\n"
  uint32_t has_flags : 1;   // 4 bytes of client flags precede the key
  uint32_t cas_lo;          // CAS unique, bits 0-31 (see Cas())
  uint16_t cas_hi;          // CAS unique, bits 32-47
  uint8_t key_len;
  uint8_t policy : 4;      // owned by the eviction policy (queue id, frequency)
  uint8_t linked : 1;      // 1 while reachable from a tier's table
  uint8_t fetched : 1;     // a get returned it (for stats)
  uint8_t ssd_copy : 1;    // this exact version also has a valid SSD record
  uint8_t read_ahead : 1;  // promoted ahead of its get; that get counts an SSD hit
  uint32_t exptime;        // absolute unix seconds; 0 = never expires
  uint32_t queue_pos;      // owned by the eviction policy
  // memcached's it->time: seconds since the tier's start (RamTier::
  // RelativeNow()) of the item's store or of its "second fetch" (see
  // RamTier), saturating at kMaxAtime.
  uint32_t atime : 28;
  uint32_t active : 1;      // memcached's ITEM_ACTIVE: fetched twice since its atime was set
  uint32_t win_sent : 1;    // memcached's ITEM_TOKEN_SENT: a client was handed the win (W)
  uint32_t stale : 1;       // memcached's ITEM_STALE: invalidated by `md I` or `ms I`
  uint32_t key_binary : 1;  // memcached's ITEM_KEY_BINARY: stored with `b` (base64 key)
  // Followed in memory by: flags (if has_flags), key bytes, value bytes, "\r\n".

  // Unique per stored version; 0 until stored.
  uint64_t Cas() const { return uint64_t{cas_hi} << 32 | cas_lo; }
  // `cas` must be <= kMaxCas.
  void SetCas(uint64_t cas) {
    cas_lo = static_cast<uint32_t>(cas);
    cas_hi = static_cast<uint16_t>(cas >> 32);
  }
  // Client flags, returned untouched.
  uint32_t Flags() const {
    uint32_t flags = 0;
    if (has_flags) std::memcpy(&flags, reinterpret_cast<const char*>(this + 1), sizeof(flags));
    return flags;
  }

  const char* Data() const { return reinterpret_cast<const char*>(this + 1) + FlagsBytes(); }
  char* MutableData() { return reinterpret_cast<char*>(this + 1) + FlagsBytes(); }
  std::string_view Key() const { return {Data(), key_len}; }
  const char* Value() const { return Data() + key_len; }
  char* MutableValue() { return MutableData() + key_len; }
  std::string_view ValueView() const { return {Value(), value_len}; }
  // The value followed by "\r\n", ready to send.
  std::string_view ValueWithCrlf() const { return {Value(), size_t{value_len} + 2}; }

  // Bytes this item occupies in memory: its ItemSlabs size class in the
  // arena, else malloc's chunk with its header plus the cell. The RAM tier
  // adds its per-item index overhead.
  size_t AllocatedBytes() const;

  // This item's handle: never 0.
  uint32_t Handle() const {
    const uint64_t off =
        reinterpret_cast<uintptr_t>(this) - reinterpret_cast<uintptr_t>(ItemSlabs::GlobalBase());
    if (off < ItemSlabs::kArenaBytes) return static_cast<uint32_t>(off / ItemSlabs::kGranule);
    uint32_t cell;
    std::memcpy(&cell, reinterpret_cast<const char*>(this) - kCellPrefix, sizeof(cell));
    return cell;
  }
  // The item with handle `h` (from Handle(), the item still alive).
  static Item* FromHandle(uint32_t h) {
    char* p = ItemSlabs::GlobalBase() + uint64_t{h} * ItemSlabs::kGranule;
    if (h >= ItemSlabs::kCellHandles) return reinterpret_cast<Item*>(p);
    Item* item;
    std::memcpy(&item, p, sizeof(item));
    return item;
  }

  // Allocates an unpublished item with refs = 1, copying `key` and writing
  // the trailing "\r\n"; the value bytes are left for the caller to fill.
  // SizeFor() bytes come from ItemSlabs up to ItemSlabs::kMaxBytes (while
  // its slab part lasts), else from malloc with a cell.
  // Returns nullptr if memory (or a cell) cannot be had.
  static Item* Create(std::string_view key, uint32_t flags, uint32_t exptime, uint32_t value_len);
  // Bytes Create() asks the allocator for.
  static size_t SizeFor(size_t key_len, uint32_t flags, size_t value_len) {
    return sizeof(Item) + (flags != 0 ? sizeof(flags) : 0) + key_len + value_len + 2;
  }
  static void Destroy(Item* item);

  // Spare blocks. glibc maps every block of 32 MiB or more on its own and
  // unmaps it at free(), so each large item a worker reads from SSD or
  // receives faulted in and zeroed every page of its value (a quarter of
  // the CPU of 64 MiB gets). A thread that calls KeepSpareBlocks() keeps
  // up to kSpareBlocks freed blocks of kSpareMinBytes or more for its next
  // items of about their size (at most a quarter smaller); its
  // TrimSpareBlocks(), called now and then, frees those its items did not
  // reuse since the last call. So they never raise the peak (each was an
  // item's a moment before) and are gone one quiet period later.
  static constexpr size_t kSpareMinBytes = size_t{16} << 20;
  static constexpr size_t kSpareBlocks = 2;
  static void KeepSpareBlocks();
  static void TrimSpareBlocks();
  // Bytes in this thread's spare blocks.
  static size_t SpareBytes();

 private:
  // Bytes in front of an item outside the arena: its cell's handle, padded
  // to keep the item 8-byte aligned.
  static constexpr size_t kCellPrefix = 8;

  size_t FlagsBytes() const { return has_flags ? sizeof(uint32_t) : 0; }
};

// Intrusive shared handle to an Item. Moving is free; copying costs one
// atomic increment.
class ItemRef {
 public:
  ItemRef() = default;
  // Adopts a reference the caller already owns (e.g. from Item::Create).
  static ItemRef Adopt(Item* item) { return ItemRef(item); }
  // Takes a new reference.
  static ItemRef Share(Item* item) {
    if (item) item->refs.fetch_add(1, std::memory_order_relaxed);
    return ItemRef(item);
  }
  ItemRef(const ItemRef& o) : item_(o.item_) {
    if (item_) item_->refs.fetch_add(1, std::memory_order_relaxed);
  }
  ItemRef(ItemRef&& o) noexcept : item_(std::exchange(o.item_, nullptr)) {}
  ItemRef& operator=(ItemRef o) noexcept {
    std::swap(item_, o.item_);
    return *this;
  }
  ~ItemRef() { Reset(); }

  void Reset() {
    if (item_ && item_->refs.fetch_sub(1, std::memory_order_acq_rel) == 1) Item::Destroy(item_);
    item_ = nullptr;
  }
  // Gives up ownership without dropping the reference.
  Item* Release() { return std::exchange(item_, nullptr); }

  Item* get() const { return item_; }
  Item* operator->() const { return item_; }
  Item& operator*() const { return *item_; }
  explicit operator bool() const { return item_ != nullptr; }

 private:
  explicit ItemRef(Item* item) : item_(item) {}
  Item* item_ = nullptr;
};

static_assert(sizeof(Item) == 28, "Item header grew");

}  // namespace strata::tiers
