// ItemRing: a FIFO of items in blocks of kBlockEntries 4-byte
// PackedItemPtrs entries (item handles), with O(1) removal from the middle
// (the slot is cleared and skipped later). The item's `queue_pos` records
// its position.
//
// Positions count up from 0 for the life of the ring; the block holding a
// position is found through a small power-of-two map of block pointers. A
// block is allocated when the tail enters it and freed when the head leaves
// it (one is kept back, so a steady FIFO allocates nothing), so memory
// follows the span from head to tail within one block at each end: about 4
// bytes per entry, where a doubling array would average 5.3 and leave its old
// arrays behind in the heap as it grows. Holes are compacted away, in place,
// when they outnumber live entries (and fill at least a block), so the span
// stays within twice the live count plus a block.
//
// Invariant: tail - head < 2^32, so a 32-bit queue_pos names a position.
//
// Thread safety: none; used under the owning shard's lock.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "tiers/item/item.h"
#include "tiers/item/packed_item_ptrs.h"

namespace strata::tiers {

class ItemRing {
 public:
  using Block = PackedItemPtrs<4>;
  static constexpr size_t kBlockEntries = 128;

  ItemRing() = default;
  // Positions start at `first` rounded down to a block boundary instead of
  // at 0 (tests: queue_pos wrapping).
  explicit ItemRing(uint64_t first) : head_(first - first % kBlockEntries), tail_(head_) {}
  ItemRing(const ItemRing&) = delete;
  ItemRing& operator=(const ItemRing&) = delete;

  // Appends at the tail (newest end).
  void Push(Item* item) {
    if (tail_ % kBlockEntries == 0) AddTailBlock();
    BlockOf(tail_).Set(tail_ % kBlockEntries, Block::Encode(item));
    item->queue_pos = static_cast<uint32_t>(tail_);
    ++tail_;
    ++live_;
  }

  // Removes and returns the oldest item, or nullptr if empty.
  Item* Pop() {
    while (head_ != tail_) {
      Item* item = At(head_);
      AdvanceHead();
      if (item != nullptr) {
        --live_;
        MaybeCompact();
        return item;
      }
    }
    return nullptr;
  }

  // Removes `item`, which must be in this ring.
  void Erase(Item* item) {
    const uint64_t pos =
        head_ + static_cast<uint32_t>(item->queue_pos - static_cast<uint32_t>(head_));
    BlockOf(pos).Set(pos % kBlockEntries, 0);
    --live_;
    MaybeCompact();
  }

  // The oldest live item for which `passed_over(item)` is false, looking at
  // no more than `max_live` live items (and 4x as many slots, holes
  // included); if every item looked at is passed over, the last of them.
  // nullptr if none was looked at. Changes nothing.
  template <class PassedOver>
  Item* Oldest(size_t max_live, PassedOver&& passed_over) const {
    Item* last = nullptr;
    size_t slots = 4 * max_live;
    for (uint64_t i = head_; i != tail_ && max_live > 0 && slots > 0; ++i, --slots) {
      Item* item = At(i);
      if (item == nullptr) continue;
      last = item;
      --max_live;
      if (!passed_over(item)) return item;
    }
    return last;
  }

  size_t size() const { return live_; }
  bool empty() const { return live_ == 0; }
  // Blocks allocated, the spare included (for tests).
  size_t blocks() const;

  void Clear() {
    map_.clear();
    spare_ = Block();
    head_ = tail_ = 0;
    live_ = 0;
  }

 private:
  Block& BlockOf(uint64_t pos) { return map_[(pos / kBlockEntries) & (map_.size() - 1)]; }
  const Block& BlockOf(uint64_t pos) const {
    return map_[(pos / kBlockEntries) & (map_.size() - 1)];
  }
  // The item at position `pos` (head <= pos < tail), or nullptr for a hole.
  Item* At(uint64_t pos) const { return Block::ItemOf(BlockOf(pos).Get(pos % kBlockEntries)); }

  void MaybeCompact() {
    const uint64_t holes = tail_ - head_ - live_;
    if (holes > live_ && holes >= kBlockEntries) Compact();
  }
  // Moves the head one position on, freeing the block it leaves.
  void AdvanceHead();
  // The tail is at the start of a block that has no storage yet.
  void AddTailBlock();
  // Moves the live entries back over the holes, keeping their order, and
  // frees the blocks past the new tail.
  void Compact();

  std::vector<Block> map_;  // by block number mod size; size is 0 or a power of two
  Block spare_;             // a freed block kept for the next one the tail needs
  uint64_t head_ = 0;       // position of the oldest slot
  uint64_t tail_ = 0;       // one past the newest
  size_t live_ = 0;
};

}  // namespace strata::tiers
