// PackedItemPtrs<kBytes>: a fixed-size array of item references at kBytes
// (4 or 5) bytes each instead of an 8-byte pointer, for the per-item arrays
// of the RAM tier: ItemRing's queue blocks take 4 bytes an entry, and
// ItemTable's slots 5 (with 8 bits of the key's hash).
//
// An entry is the item's 32-bit Item::Handle() (never 0), with the owner's
// kSpareBits = 8 * (kBytes - 4) bits above it, and 0 for "empty". Against
// 8-byte pointers that saves 4 bytes per ring entry and 3 per table slot
// (per item: bench/README.md, "Measurements behind the code's defaults").
//
// Entries are read with one unaligned 8-byte load (the array keeps 8 -
// kBytes bytes of padding after the last entry) and written with a kBytes
// store.
//
// Thread safety: none; the owner serializes access.
#pragma once

#include <bit>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <utility>

#include "tiers/item/item.h"

namespace strata::tiers {

template <size_t kBytes>
class PackedItemPtrs {
  static_assert(kBytes == 4 || kBytes == 5);

 public:
  // An entry: 0 (empty) or Encode(item, bits).
  using Entry = uint64_t;
  static constexpr unsigned kSpareBits = 8 * (kBytes - 4);

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
  // Bytes the array takes: kBytes per entry and the padding.
  size_t bytes() const { return bytes_ ? size_ * kBytes + kPad : 0; }

  Entry Get(size_t i) const {
    uint64_t v;
    std::memcpy(&v, bytes_.get() + i * kBytes, sizeof(v));
    return v & kEntryMask;
  }
  void Set(size_t i, Entry e) { std::memcpy(bytes_.get() + i * kBytes, &e, kBytes); }

  // Every entry empty.
  void Clear() { std::memset(bytes_.get(), 0, size_ * kBytes + kPad); }

  // `item` must come from Item::Create and be alive; `bits` < 2^kSpareBits.
  static Entry Encode(const Item* item, uint64_t bits = 0) {
    return uint64_t{item->Handle()} | bits << 32;
  }
  // The item of a non-empty entry, or nullptr for 0.
  static Item* ItemOf(Entry e) {
    const auto h = static_cast<uint32_t>(e);
    return h == 0 ? nullptr : Item::FromHandle(h);
  }
  static uint64_t BitsOf(Entry e) { return e >> 32; }

 private:
  static constexpr size_t kPad = sizeof(uint64_t) - kBytes;
  static constexpr uint64_t kEntryMask = (uint64_t{1} << (kBytes * 8)) - 1;
  static_assert(std::endian::native == std::endian::little, "Get() masks the low kBytes bytes");

  std::unique_ptr<uint8_t[]> bytes_;
  size_t size_ = 0;
};

}  // namespace strata::tiers
