// EvictionPolicy: decides which item of a RAM-tier shard leaves first.
//
// A policy keeps its own queues of the items it was told about and nothing
// else: it never frees or unlinks an item; Evict() only hands back the item
// the shard should drop. Policies are tiny and swappable:
//   - S3-FIFO (default): a small FIFO that filters one-hit wonders, a main
//     FIFO with reinsertion (frequency capped at 2), and a ghost of recently
//     evicted keys (Yang et al., "FIFO queues are all you need for cache
//     eviction", SOSP 2023). Items promoted from the SSD tier go straight
//     to the main queue.
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

#include "tiers/item/item.h"

namespace strata::tiers {

// Bytes of RAM an item costs beyond its allocation: its share of the hash
// table and of the policy's queues.
inline constexpr size_t kPerItemIndexOverhead = 16;

// Items EvictionPolicy::Candidate() looks at, at most.
inline constexpr size_t kCandidateLookahead = 8;

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
  // An item read back from a lower tier became resident because it is hot
  // (a promotion). By default: OnInsert() and OnHit().
  virtual void OnPromote(Item* item, uint64_t hash) {
    OnInsert(item, hash);
    OnHit(item);
  }
  // A resident item was read.
  virtual void OnHit(Item* item) = 0;
  // A resident item left for another reason than Evict() (deleted, replaced,
  // expired, flushed).
  virtual void OnRemove(Item* item) = 0;
  // Picks the next victim, removes it from the policy and returns it, or
  // returns nullptr if the policy holds no item.
  virtual Item* Evict() = 0;
  // The item Evict() would most likely return next, without changing
  // anything (the "victim" a TinyLFU-style promotion is compared with), or
  // nullptr if none is known. S3-FIFO looks past at most
  // kCandidateLookahead items that Evict() would move or reinsert rather
  // than evict; if all of them would be, the last one stands in.
  virtual Item* Candidate() const = 0;
  // Forgets every item (after a flush); ghost history may be kept.
  virtual void Clear() = 0;
};

struct S3FifoOptions {
  // Share of the shard's bytes given to the small (probationary) queue.
  double small_ratio = 0.10;
  // Hits an item needs while in the small queue to move to the main queue.
  uint8_t move_to_main_threshold = 1;
  // Hits counted per item (1..3): an item in the main queue is passed over
  // this many times at most. The paper counts to 3; 2 lets the main queue
  // forget a hot set that has moved on sooner (bench/trace_gen's hot-set
  // shift), with hardly a change in the traces' miss ratios (figures:
  // bench/README.md, "Measurements behind the code's defaults").
  uint8_t max_frequency = 2;
};

std::unique_ptr<EvictionPolicy> MakeS3FifoPolicy(const S3FifoOptions& options);
std::unique_ptr<EvictionPolicy> MakeLruPolicy();
// `small_ratio` is S3FifoOptions::small_ratio (ignored for LRU).
std::unique_ptr<EvictionPolicy> MakePolicy(EvictionKind kind, double small_ratio = 0.20);

}  // namespace strata::tiers
