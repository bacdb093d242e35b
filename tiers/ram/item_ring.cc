#include "tiers/ram/item_ring.h"

#include <utility>

namespace strata::tiers {

namespace {

// Blocks [first, last) hold positions [head, tail): a block exists from
// the moment the tail enters it until the head leaves it.
uint64_t FirstBlock(uint64_t head) { return head / ItemRing::kBlockEntries; }
uint64_t EndBlock(uint64_t tail) {
  return (tail + ItemRing::kBlockEntries - 1) / ItemRing::kBlockEntries;
}

}  // namespace

size_t ItemRing::blocks() const {
  size_t n = spare_.size() > 0 ? 1 : 0;
  for (const Block& b : map_) n += b.size() > 0 ? 1 : 0;
  return n;
}

void ItemRing::AdvanceHead() {
  ++head_;
  if (head_ % kBlockEntries != 0) return;
  Block& left = map_[(head_ / kBlockEntries - 1) & (map_.size() - 1)];
  if (spare_.size() == 0) {
    spare_ = std::move(left);
  } else {
    left = Block();
  }
}

void ItemRing::AddTailBlock() {
  const uint64_t block = tail_ / kBlockEntries;
  const uint64_t needed = block - FirstBlock(head_) + 1;
  if (needed > map_.size()) {
    size_t size = map_.empty() ? 2 : map_.size();
    while (size < needed) size *= 2;
    std::vector<Block> next(size);
    for (uint64_t b = FirstBlock(head_); b < block; ++b) {
      next[b & (size - 1)] = std::move(map_[b & (map_.size() - 1)]);
    }
    map_ = std::move(next);
  }
  Block& slot = map_[block & (map_.size() - 1)];
  slot = spare_.size() > 0 ? std::move(spare_) : Block(kBlockEntries);
}

void ItemRing::Compact() {
  uint64_t w = head_;
  for (uint64_t r = head_; r != tail_; ++r) {
    // The entry moves as it is: no handle to compute again.
    const Block::Entry entry = BlockOf(r).Get(r % kBlockEntries);
    if (entry == 0) continue;
    if (w != r) BlockOf(w).Set(w % kBlockEntries, entry);
    Block::ItemOf(entry)->queue_pos = static_cast<uint32_t>(w);
    ++w;
  }
  for (uint64_t b = EndBlock(w); b < EndBlock(tail_); ++b) {
    Block& freed = map_[b & (map_.size() - 1)];
    if (spare_.size() == 0) {
      spare_ = std::move(freed);
    } else {
      freed = Block();
    }
  }
  tail_ = w;
}

}  // namespace strata::tiers
