// PackedItemPtrs: a fixed-size array of Item pointers at 6 bytes each
// instead of 8, for the per-item arrays of the RAM tier (ItemTable's slots,
// ItemRing's queue). Each entry also has 3 spare bits for its owner.
//
// An item's address fits in 45 bits once its 3 low bits (Item::Create
// returns 8-byte aligned memory) and its 16 high bits (Item::Create
// refuses an address at or above 2^48) are dropped, so an entry is that
// 45-bit number, the owner's 3 bits above it, and 0 for "empty". Saving
// 2 of 8 bytes per slot is 2.6 bytes per 100-byte item in each of the two
// arrays at their usual load.
//
// Entries are read with one unaligned 8-byte load (the array keeps 2 bytes
// of padding after the last entry) and written with a 6-byte store.
//
// Thread safety: none; the owner serializes access.
#pragma once

#include <bit>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <utility>

#include "tiers/item.h"
#include "tiers/item_slabs.h"

namespace strata::tiers {

class PackedItemPtrs {
 public:
  // An entry: 0 (empty) or Encode(item, bits).
  using Entry = uint64_t;
  static constexpr unsigned kSpareBits = 3;

  PackedItemPtrs() = default;
  // `n` empty entries.
  explicit PackedItemPtrs(size_t n) : bytes_(new uint8_t[n * kBytes + kPad]()), size_(n) {}

  // A moved-from array is empty (size 0).
  PackedItemPtrs(PackedItemPtrs&& o) noexcept
      : bytes_(std::move(o.bytes_)), size_(std::exchange(o.size_, 0)) {}
  PackedItemPtrs& operator=(PackedItemPtrs&& o) noexcept {
    bytes_ = std::move(o.bytes_);
    size_ = std::exchange(o.size_, 0);
    return *this;
  }

  size_t size() const { return size_; }

  Entry Get(size_t i) const {
    uint64_t v;
    std::memcpy(&v, bytes_.get() + i * kBytes, sizeof(v));
    return v & kEntryMask;
  }
  void Set(size_t i, Entry e) { std::memcpy(bytes_.get() + i * kBytes, &e, kBytes); }

  // Every entry empty.
  void Clear() { std::memset(bytes_.get(), 0, size_ * kBytes + kPad); }

  // `item` must come from Item::Create; `bits` < 2^kSpareBits.
  static Entry Encode(const Item* item, uint64_t bits = 0) {
    return reinterpret_cast<uintptr_t>(item) >> kAlignShift | bits << kPtrBits;
  }
  static Item* ItemOf(Entry e) {
    return reinterpret_cast<Item*>(static_cast<uintptr_t>(e & kPtrMask) << kAlignShift);
  }
  static uint64_t BitsOf(Entry e) { return e >> kPtrBits; }

 private:
  static constexpr size_t kBytes = 6;
  static constexpr size_t kPad = sizeof(uint64_t) - kBytes;
  static constexpr unsigned kAlignShift = 3;
  static constexpr unsigned kPtrBits = 48 - kAlignShift;
  static constexpr uint64_t kPtrMask = (uint64_t{1} << kPtrBits) - 1;
  static constexpr uint64_t kEntryMask = (uint64_t{1} << (kBytes * 8)) - 1;
  static_assert(kPtrBits + kSpareBits == kBytes * 8);
  static_assert(alignof(std::max_align_t) >= 8 && ItemSlabs::kGranule % 8 == 0,
                "Item::Create returns 8-byte aligned memory");
  static_assert(std::endian::native == std::endian::little, "Get() masks the low 6 bytes");
  static_assert(kItemAddressLimit == uint64_t{1} << 48, "entries hold 48-bit addresses");

  std::unique_ptr<uint8_t[]> bytes_;
  size_t size_ = 0;
};

}  // namespace strata::tiers
