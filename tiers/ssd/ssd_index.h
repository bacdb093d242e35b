// SsdIndex: the compact in-RAM index of the SSD tier, from a key's hash to
// where its newest record lies on the device.
//
// Each entry is 12 bytes: a 31-bit tag derived from the key's hash, an
// "accessed" bit (the record was read since it was written), and a
// packed location (region 18 bits, offset 23 bits and size 23 bits, both in
// 8-byte units, so regions and records are at most 64 MiB). Entries live in
// sharded Robin Hood hash tables (linear probing, backward-shift deletion)
// kept between 80% and 90% full: 13 to 15 bytes of RAM per item. The full
// key is not kept: it is on disk, and readers compare it. Two keys whose
// 31-bit tags collide within a shard share one entry; the later insert wins
// and the earlier key becomes a miss, never a wrong value.
//
// It also keeps the bytes of the records its entries point at (live bytes),
// in all and per region, which admission and reclaim decide by.
//
// Thread safety: every method may be called from any thread; each shard
// has its own mutex (a leaf in the lock order of common/mutex.h: taken
// under the SSD log's lock, nothing is taken under it).
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <vector>

namespace strata::tiers {

struct SsdLocation {
  uint32_t region = 0;  // < 2^18
  uint32_t offset = 0;  // bytes from the region start; a multiple of 8, < 64 MiB
  uint32_t size = 0;    // record bytes; a multiple of 8, < 64 MiB

  bool operator==(const SsdLocation&) const = default;
};

inline constexpr uint32_t kMaxIndexedRegions = 1u << 18;
inline constexpr uint32_t kMaxIndexedRegionSize = 64u << 20;

class SsdIndex {
 public:
  // `regions`: the log's region count (live bytes are kept per region).
  explicit SsdIndex(uint32_t regions, unsigned shards = 64);
  ~SsdIndex();

  // Points `hash` at `loc`, with the accessed bit as given (a new record
  // is unread); returns the location it replaced, if any.
  std::optional<SsdLocation> Insert(uint64_t hash, SsdLocation loc, bool accessed = false);
  // Where the key's record is; *accessed (if given) says whether it was
  // read since it was written.
  std::optional<SsdLocation> Lookup(uint64_t hash, bool* accessed = nullptr) const;
  // Marks the record read (reclaim may then rewrite it), if the entry still
  // points at `loc`. Returns whether it did.
  bool MarkAccessed(uint64_t hash, SsdLocation loc);
  // Removes the entry; returns what it pointed at, if there was one.
  std::optional<SsdLocation> Remove(uint64_t hash);
  // Removes the entry only if it still points at `loc` (a reader or the
  // reclaimer that found `loc` stale must not drop a newer entry).
  bool RemoveIf(uint64_t hash, SsdLocation loc);
  // Removes every entry that points into `region`; returns how many.
  size_t RemoveRegion(uint32_t region);
  // Removes the entries of records in `region` that overlap [begin, end).
  size_t RemoveRange(uint32_t region, uint32_t begin, uint32_t end);
  void Clear();

  size_t size() const;
  // Bytes of RAM the tables use.
  size_t memory_bytes() const;
  // Bytes of the records the entries point at: in all, and in `region`.
  uint64_t live_bytes() const { return live_bytes_.load(std::memory_order_relaxed); }
  uint64_t region_bytes(uint32_t region) const {
    return region < regions_ ? region_bytes_[region].load(std::memory_order_relaxed) : 0;
  }

 private:
  struct Shard;
  Shard& ShardFor(uint64_t hash) const;
  void Count(const SsdLocation& loc, int64_t sign);
  uint32_t regions_;
  std::unique_ptr<std::atomic<uint64_t>[]> region_bytes_;
  std::atomic<uint64_t> live_bytes_{0};
  std::vector<std::unique_ptr<Shard>> shards_;
  unsigned shard_shift_;
};

}  // namespace strata::tiers
