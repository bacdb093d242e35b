// GhostSet: the keys of items recently evicted, remembered while the
// bytes evicted after them stay within a window (S3-FIFO's ghost queue).
// Used by the S3-FIFO RAM policy (keys evicted from its small queue) and
// by the `reaccessed` SSD admission (keys RAM evicted that were not written
// to flash).
//
// A key is a 4-byte entry in a 4-way set-associative table: a 24-bit
// fingerprint and the 8-bit epoch of its insertion, where an epoch is 1/48
// of the window in evicted bytes. Lookups ignore entries older than the
// window, and an insert replaces the oldest entry of its set, so the table
// behaves like a FIFO of the window's length at 4 bytes per key (a real
// queue would cost a key and two pointers). A ghost that remembers too
// long is as harmful as none, hence a window in bytes rather than a fixed
// number of keys (bench/README.md, "Measurements behind the code's
// defaults", has what a fixed-size ghost cost).
//
// Thread safety: none; the owner serializes calls.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <vector>

namespace strata::tiers {

class GhostSet {
 public:
  // Sizes the table for `entries` keys (1.5x to 3x, a power of two, so set
  // conflicts rarely drop a key inside the window). Forgets everything.
  // The memory is taken by the first Insert(): a cache that has evicted
  // nothing yet pays nothing for its ghost.
  void Resize(size_t entries) {
    size_t want = entries + entries / 2;
    size_t sets = 1;
    while (sets * kWays < want) sets <<= 1;
    if (sets * kWays == capacity_) return;
    capacity_ = sets * kWays;
    slots_.clear();
    slots_.shrink_to_fit();
    set_mask_ = sets - 1;
    bytes_in_ = 0;
  }
  // Entries the table holds once it is in use.
  size_t capacity() const { return capacity_; }
  // Bytes of memory the table uses now.
  size_t memory_bytes() const { return slots_.capacity() * sizeof(uint32_t); }

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
    if (capacity_ == 0) return;
    if (slots_.empty()) slots_.assign(capacity_, 0);
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
  std::vector<uint32_t> slots_;  // empty, or capacity_ entries
  size_t capacity_ = 0;
  uint64_t set_mask_ = 0;
  uint64_t window_ = 0;
  uint64_t epoch_bytes_ = 1;  // set by SetWindow(); never 0
  uint64_t bytes_in_ = 0;
};

}  // namespace strata::tiers
