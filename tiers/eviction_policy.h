// EvictionPolicy: decides which item of a RAM-tier shard leaves first.
//
// A policy keeps its own queues of the items it was told about and nothing
// else: it never frees or unlinks an item; Evict() only hands back the item
// the shard should drop. Policies are tiny and swappable:
//   - S3-FIFO (default): a small FIFO that filters one-hit wonders, a main
//     FIFO with reinsertion (2-bit frequency), and a ghost of recently
//     evicted keys (Yang et al., "FIFO queues are all you need for cache
//     eviction", SOSP 2023).
//   - LRU: the baseline, for comparisons.
// Queue bytes are measured with ItemCharge(), the bytes the item costs the
// tier's budget.
//
// Thread safety: none; a policy belongs to one shard and is only called
// under that shard's lock.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string_view>

#include "tiers/item.h"

namespace strata::tiers {

// Bytes of RAM an item costs beyond its allocation: its share of the hash
// table and of the policy's queues.
inline constexpr size_t kPerItemIndexOverhead = 16;

// What a stored item costs the RAM tier's byte budget.
inline size_t ItemCharge(const Item* item) {
  return item->AllocatedBytes() + kPerItemIndexOverhead;
}

enum class EvictionKind { kS3Fifo, kLru };

// Returns "s3fifo" or "lru".
std::string_view EvictionKindName(EvictionKind kind);

class EvictionPolicy {
 public:
  virtual ~EvictionPolicy() = default;
  // A new item became resident. `hash` is HashKey(item->Key()).
  virtual void OnInsert(Item* item, uint64_t hash) = 0;
  // A resident item was read.
  virtual void OnHit(Item* item) = 0;
  // A resident item left for another reason than Evict() (deleted, replaced,
  // expired, flushed).
  virtual void OnRemove(Item* item) = 0;
  // Picks the next victim, removes it from the policy and returns it, or
  // returns nullptr if the policy holds no item.
  virtual Item* Evict() = 0;
  // Forgets every item (after a flush); ghost history may be kept.
  virtual void Clear() = 0;
};

struct S3FifoOptions {
  // Share of the shard's bytes given to the small (probationary) queue.
  double small_ratio = 0.10;
  // Hits an item needs while in the small queue to move to the main queue.
  uint8_t move_to_main_threshold = 1;
};

std::unique_ptr<EvictionPolicy> MakeS3FifoPolicy(const S3FifoOptions& options);
std::unique_ptr<EvictionPolicy> MakeLruPolicy();
// `small_ratio` is S3FifoOptions::small_ratio (ignored for LRU).
std::unique_ptr<EvictionPolicy> MakePolicy(EvictionKind kind, double small_ratio = 0.10);

}  // namespace strata::tiers
