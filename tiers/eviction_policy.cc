#include "tiers/eviction_policy.h"

#include <algorithm>
#include <vector>

#include "common/hash.h"
#include "tiers/item_ring.h"

namespace strata::tiers {

std::string_view EvictionKindName(EvictionKind kind) {
  return kind == EvictionKind::kLru ? "lru" : "s3fifo";
}

namespace {

// ---------------------------------------------------------------- S3-FIFO

// The ghost queue: keys recently evicted from the small queue, remembered
// while the bytes evicted after them stay within a window of 0.9 x the
// shard's size (libCacheSim's S3-FIFO keeps 90% of the cache's size). A key
// is a 4-byte entry in a 4-way set-associative table: a 24-bit fingerprint
// and the 8-bit epoch of its insertion, where an epoch is 1/48 of the
// window in evicted bytes. Lookups ignore entries older than the window,
// and an insert replaces the oldest entry of its set, so the table behaves
// like a FIFO of the window's length. A ghost that remembers too long sends
// keys that come back after a long absence straight to the main queue: a
// fixed 1024-entry ghost per shard made cloudphysics miss 0.787 instead of
// 0.729 at 10% of its working set.
class GhostSet {
 public:
  // Sizes the table for `entries` keys (1.5x to 3x, a power of two, so set
  // conflicts rarely drop a key inside the window). Forgets everything.
  void Resize(size_t entries) {
    size_t want = entries + entries / 2;
    size_t sets = 1;
    while (sets * kWays < want) sets <<= 1;
    if (sets * kWays == slots_.size()) return;
    slots_.assign(sets * kWays, 0);
    set_mask_ = sets - 1;
    bytes_in_ = 0;
  }
  size_t capacity() const { return slots_.size(); }

  // Sets the window in bytes. Epochs keep the length they were cut for
  // until the window leaves [1/2, 2] x that; then the ghost starts over.
  void SetWindow(uint64_t window_bytes) {
    window_ = window_bytes;
    if (window_bytes > epoch_bytes_ * 2 * kEpochsPerWindow ||
        window_bytes < epoch_bytes_ * kEpochsPerWindow / 2) {
      epoch_bytes_ = std::max<uint64_t>(1, window_bytes / kEpochsPerWindow);
      std::fill(slots_.begin(), slots_.end(), 0);
      bytes_in_ = 0;
    }
  }

  // Remembers a key whose item of `bytes` was evicted.
  void Insert(uint64_t hash, uint64_t bytes) {
    if (slots_.empty()) return;
    bytes_in_ += bytes;  // its age counts what is evicted after it
    uint32_t* set = &slots_[(hash & set_mask_) * kWays];
    uint32_t epoch = Epoch();
    uint32_t* victim = &set[0];
    uint32_t oldest = 0;
    for (size_t i = 0; i < kWays; ++i) {
      if (set[i] == 0) {
        victim = &set[i];
        break;
      }
      uint32_t age = (epoch - set[i]) & 0xff;
      if (age >= oldest) oldest = age, victim = &set[i];
    }
    *victim = Fingerprint(hash) | epoch;
  }

  // Returns true and forgets the key if it is remembered within the window
  // (to within an epoch).
  bool TakeIfPresent(uint64_t hash) {
    if (slots_.empty()) return false;
    uint32_t* set = &slots_[(hash & set_mask_) * kWays];
    uint32_t fp = Fingerprint(hash);
    uint32_t epoch = Epoch();
    for (size_t i = 0; i < kWays; ++i) {
      if (set[i] != 0 && (set[i] & ~0xffu) == fp) {
        uint64_t age = (epoch - set[i]) & 0xff;
        set[i] = 0;
        return age * epoch_bytes_ <= window_;
      }
    }
    return false;
  }

 private:
  static constexpr size_t kWays = 4;
  static constexpr uint64_t kEpochsPerWindow = 48;  // at most 96 + 1 < 256 in use
  static uint32_t Fingerprint(uint64_t hash) {
    return (static_cast<uint32_t>(hash >> 32) | 0x100u) & ~0xffu;
  }
  uint32_t Epoch() const { return static_cast<uint32_t>(bytes_in_ / epoch_bytes_) & 0xff; }
  std::vector<uint32_t> slots_;
  uint64_t set_mask_ = 0;
  uint64_t window_ = 0;
  uint64_t epoch_bytes_ = 0;
  uint64_t bytes_in_ = 0;
};

// policy byte layout: bits 0-1 frequency, bits 2-3 queue.
constexpr uint8_t kFreqMask = 0x3;
constexpr uint8_t kInSmall = 0x4;
constexpr uint8_t kInMain = 0x8;

class S3FifoPolicy final : public EvictionPolicy {
 public:
  explicit S3FifoPolicy(const S3FifoOptions& options) : options_(options) { ghost_.Resize(16); }

  void OnInsert(Item* item, uint64_t hash) override {
    size_t charge = ItemCharge(item);
    if (ghost_.TakeIfPresent(hash)) {
      item->policy = kInMain;
      main_.Push(item);
      main_bytes_ += charge;
    } else {
      item->policy = kInSmall;
      small_.Push(item);
      small_bytes_ += charge;
    }
    // The ghost's window is 0.9 x the most bytes the shard has held (its
    // size, as far as it is known); its table grows with the resident
    // count (4-12 bytes per resident item).
    size_t resident = small_.size() + main_.size();
    if (resident > ghost_.capacity()) ghost_.Resize(resident);
    if (small_bytes_ + main_bytes_ > peak_bytes_) {
      peak_bytes_ = small_bytes_ + main_bytes_;
      ghost_.SetWindow(peak_bytes_ - peak_bytes_ / 10);
    }
  }

  void OnHit(Item* item) override {
    uint8_t freq = item->policy & kFreqMask;
    if (freq < 3) item->policy = static_cast<uint8_t>(item->policy + 1);
  }

  void OnRemove(Item* item) override {
    size_t charge = ItemCharge(item);
    if (item->policy & kInSmall) {
      small_.Erase(item);
      small_bytes_ -= charge;
    } else if (item->policy & kInMain) {
      main_.Erase(item);
      main_bytes_ -= charge;
    }
    item->policy = 0;
  }

  Item* Evict() override {
    while (!small_.empty() || !main_.empty()) {
      bool from_small =
          !small_.empty() &&
          (main_.empty() ||
           static_cast<double>(small_bytes_) >=
               options_.small_ratio * static_cast<double>(small_bytes_ + main_bytes_));
      if (from_small) {
        Item* item = small_.Pop();
        size_t charge = ItemCharge(item);
        small_bytes_ -= charge;
        if ((item->policy & kFreqMask) >= options_.move_to_main_threshold) {
          item->policy = kInMain;  // frequency starts over in the main queue
          main_.Push(item);
          main_bytes_ += charge;
          continue;
        }
        ghost_.Insert(common::HashKey(item->Key()), charge);
        item->policy = 0;
        return item;
      }
      Item* item = main_.Pop();
      uint8_t freq = item->policy & kFreqMask;
      if (freq > 0) {
        item->policy = static_cast<uint8_t>(kInMain | (freq - 1));
        main_.Push(item);
        continue;
      }
      main_bytes_ -= ItemCharge(item);
      item->policy = 0;
      return item;
    }
    return nullptr;
  }

  void Clear() override {
    small_.Clear();
    main_.Clear();
    small_bytes_ = main_bytes_ = 0;
    peak_bytes_ = 0;
  }

 private:
  S3FifoOptions options_;
  ItemRing small_;
  ItemRing main_;
  GhostSet ghost_;
  size_t small_bytes_ = 0;
  size_t main_bytes_ = 0;
  size_t peak_bytes_ = 0;  // what the window is cut from
};

// -------------------------------------------------------------------- LRU

class LruPolicy final : public EvictionPolicy {
 public:
  void OnInsert(Item* item, uint64_t) override { ring_.Push(item); }
  void OnHit(Item* item) override {
    ring_.Erase(item);
    ring_.Push(item);
  }
  void OnRemove(Item* item) override { ring_.Erase(item); }
  Item* Evict() override { return ring_.Pop(); }
  void Clear() override { ring_.Clear(); }

 private:
  ItemRing ring_;
};

}  // namespace

std::unique_ptr<EvictionPolicy> MakeS3FifoPolicy(const S3FifoOptions& options) {
  return std::make_unique<S3FifoPolicy>(options);
}

std::unique_ptr<EvictionPolicy> MakeLruPolicy() { return std::make_unique<LruPolicy>(); }

std::unique_ptr<EvictionPolicy> MakePolicy(EvictionKind kind) {
  if (kind == EvictionKind::kLru) return MakeLruPolicy();
  return MakeS3FifoPolicy(S3FifoOptions{});
}

}  // namespace strata::tiers
