// ItemTable: a RAM-tier shard's index from key to Item, by open addressing
// with linear probing.
//
// A slot is a 5-byte PackedItemPtrs entry: the item's handle and 8 bits of
// the key's hash. A lookup reads one run of adjacent slots (usually one
// cache line) and dereferences only the items whose 8 bits match, about 1 in
// 256 of the others, instead of every item of a hash chain. Items carry no
// link field.
//
// Erasing shifts the rest of the run back into the hole (no tombstones), so a
// run never holds an empty slot and probes stay short. A slot has no room for
// its entry's home, so an erase hashes again the keys of the entries after it
// in the run (SsdIndex, whose 31-bit tags give the home, does not need to;
// that is why the two tables do not share code). The table doubles when it is
// 80% full; it never shrinks (a flush keeps its size too).
//
// Positions returned by Find() are valid until the next InsertAt() or
// EraseAt().
//
// Thread safety: none; used under the owning shard's lock.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string_view>

#include "tiers/item/item.h"
#include "tiers/item/packed_item_ptrs.h"

namespace strata::tiers {

class ItemTable {
 public:
  using Slots = PackedItemPtrs<5>;
  static constexpr size_t kInitialSlots = 64;

  // Where Find() stopped: the slot holding the key, or the empty slot that
  // ended the probe (where the key would go).
  struct Pos {
    size_t slot;
    bool found;
  };

  ItemTable() : slots_(kInitialSlots) {}

  // The home slot of `hash` is hash & (capacity() - 1).
  Pos Find(std::string_view key, uint64_t hash) const {
    const size_t mask = slots_.size() - 1;
    const uint64_t tag = Tag(hash);
    for (size_t i = hash & mask;; i = (i + 1) & mask) {
      const Entry s = slots_.Get(i);
      if (s == 0) return {i, false};
      if (Slots::BitsOf(s) != tag) continue;
      const Item* it = Slots::ItemOf(s);
      if (it->key_len == key.size() && std::memcmp(it->Data(), key.data(), key.size()) == 0) {
        return {i, true};
      }
    }
  }

  Item* At(size_t slot) const { return Slots::ItemOf(slots_.Get(slot)); }

  // Bytes the slots take (5 a slot).
  size_t bytes() const { return slots_.bytes(); }

  // Puts `item`, whose key hashes to `hash` and is not in the table, at
  // `pos` from Find(). May grow the table.
  void InsertAt(Pos pos, Item* item, uint64_t hash) {
    slots_.Set(pos.slot, Slots::Encode(item, Tag(hash)));
    ++count_;
    if (count_ * 5 > slots_.size() * 4) Grow();
  }

  // Replaces the item at `slot` with `item`, which has the same key.
  void ReplaceAt(size_t slot, Item* item) {
    slots_.Set(slot, Slots::Encode(item, Slots::BitsOf(slots_.Get(slot))));
  }

  // Empties `slot`, moving later entries of its run back into the hole.
  void EraseAt(size_t slot) {
    const size_t mask = slots_.size() - 1;
    size_t hole = slot;
    for (size_t j = (hole + 1) & mask;; j = (j + 1) & mask) {
      const Entry s = slots_.Get(j);
      if (s == 0) break;
      // An entry may fill the hole only if its home is not in (hole, j]:
      // it would no longer be found from its home otherwise.
      const size_t home = HomeOf(s) & mask;
      if (((j - home) & mask) >= ((j - hole) & mask)) {
        slots_.Set(hole, s);
        hole = j;
      }
    }
    slots_.Set(hole, 0);
    --count_;
  }

  // Empties the table, keeping its capacity, without touching the items.
  void Clear() {
    slots_.Clear();
    count_ = 0;
  }

  size_t size() const { return count_; }
  size_t capacity() const { return slots_.size(); }

 private:
  using Entry = Slots::Entry;

  static uint64_t Tag(uint64_t hash) { return (hash >> 48) & ((1u << Slots::kSpareBits) - 1); }
  // The hash an entry was placed by: its key hashed again (erase and growth).
  static uint64_t HomeOf(Entry s);

  void Grow();

  Slots slots_;  // size is a power of two; 0 = empty
  size_t count_ = 0;
};

}  // namespace strata::tiers
