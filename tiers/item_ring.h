// ItemRing: a FIFO of Item pointers on a growable ring buffer of 6-byte
// PackedItemPtrs entries, with O(1) removal from the middle (the slot is
// cleared and skipped later). The item's `queue_pos` records its slot.
// Holes are compacted away when they outnumber live entries, so memory stays
// proportional to the live count.
//
// Thread safety: none; used under the owning shard's lock.
#pragma once

#include <cstddef>
#include <cstdint>
#include <utility>

#include "tiers/item.h"
#include "tiers/packed_item_ptrs.h"

namespace strata::tiers {

class ItemRing {
 public:
  ItemRing() : slots_(kInitialSlots) {}

  // Appends at the tail (newest end).
  void Push(Item* item) {
    if (tail_ - head_ == slots_.size()) Grow();
    slots_.Set(tail_ & (slots_.size() - 1), PackedItemPtrs::Encode(item));
    item->queue_pos = static_cast<uint32_t>(tail_);
    ++tail_;
    ++live_;
  }

  // Removes and returns the oldest item, or nullptr if empty.
  Item* Pop() {
    while (head_ != tail_) {
      Item* item = At(head_);
      slots_.Set(head_ & (slots_.size() - 1), 0);
      ++head_;
      if (item != nullptr) {
        --live_;
        return item;
      }
    }
    return nullptr;
  }

  // Removes `item`, which must be in this ring.
  void Erase(Item* item) {
    slots_.Set(item->queue_pos & (slots_.size() - 1), 0);
    --live_;
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

  void Clear() {
    slots_ = PackedItemPtrs(kInitialSlots);
    head_ = tail_ = 0;
    live_ = 0;
  }

 private:
  static constexpr size_t kInitialSlots = 16;

  // The item in the slot of position `pos`, or nullptr for a hole.
  Item* At(uint64_t pos) const {
    return PackedItemPtrs::ItemOf(slots_.Get(pos & (slots_.size() - 1)));
  }

  // Called when the ring is full: compacts in place if at least half the
  // slots are holes, otherwise doubles.
  void Grow() {
    size_t capacity = slots_.size();
    if (live_ * 2 > capacity) capacity *= 2;
    PackedItemPtrs next(capacity);
    uint64_t pos = 0;
    for (uint64_t i = head_; i != tail_; ++i) {
      Item* item = At(i);
      if (item == nullptr) continue;
      next.Set(pos, PackedItemPtrs::Encode(item));
      item->queue_pos = static_cast<uint32_t>(pos);
      ++pos;
    }
    slots_ = std::move(next);
    head_ = 0;
    tail_ = pos;
  }

  PackedItemPtrs slots_;      // size is a power of two
  uint64_t head_ = 0;         // oldest
  uint64_t tail_ = 0;         // one past newest
  size_t live_ = 0;
};

}  // namespace strata::tiers
