#include "tiers/ssd/ssd_index.h"

#include <bit>
#include <cassert>

#include "common/mutex.h"

namespace strata::tiers {
namespace {

constexpr size_t kInitialSlots = 256;

// A slot's 32 bits: the key's 31-bit tag and, on top, whether the record
// was read since it was written (kAccessed).
constexpr uint32_t kAccessed = 0x80000000u;

uint32_t TagOf(uint64_t hash) {
  // Independent of the shard bits (the top of the hash): remix first.
  uint32_t t = static_cast<uint32_t>((hash * 0x9E3779B97F4A7C15ull) >> 33);
  return t == 0 ? 1 : t;  // 0 marks an empty slot
}

uint64_t Pack(const SsdLocation& loc) {
  assert(loc.region < kMaxIndexedRegions && loc.offset % 8 == 0 && loc.size % 8 == 0);
  return (uint64_t{loc.region} << 46) | (uint64_t{loc.offset / 8} << 23) | (loc.size / 8);
}

SsdLocation Unpack(uint64_t v) {
  SsdLocation loc;
  loc.region = static_cast<uint32_t>(v >> 46);
  loc.offset = static_cast<uint32_t>((v >> 23) & ((1u << 23) - 1)) * 8;
  loc.size = static_cast<uint32_t>(v & ((1u << 23) - 1)) * 8;
  return loc;
}

}  // namespace

struct SsdIndex::Shard {
  mutable common::Mutex mu;
  std::vector<uint32_t> tags GUARDED_BY(mu) = std::vector<uint32_t>(kInitialSlots, 0);
  std::vector<uint64_t> locs GUARDED_BY(mu) = std::vector<uint64_t>(kInitialSlots, 0);
  size_t count GUARDED_BY(mu) = 0;

  // Any capacity (not only powers of two), so the table can grow by half.
  // `tag` may carry kAccessed; the home slot ignores it.
  size_t Home(uint32_t tag) const REQUIRES(mu) {
    return static_cast<size_t>((uint64_t{tag & ~kAccessed} * tags.size()) >> 31);
  }
  size_t Next(size_t slot) const REQUIRES(mu) { return slot + 1 == tags.size() ? 0 : slot + 1; }
  size_t Distance(size_t slot) const REQUIRES(mu) {
    size_t home = Home(tags[slot]);
    return slot >= home ? slot - home : slot + tags.size() - home;
  }

  // Returns the slot holding `tag`, or SIZE_MAX.
  size_t Find(uint32_t tag) const REQUIRES(mu) {
    size_t slot = Home(tag);
    for (size_t dist = 0;; ++dist, slot = Next(slot)) {
      if (tags[slot] == 0 || Distance(slot) < dist) return SIZE_MAX;
      if ((tags[slot] & ~kAccessed) == tag) return slot;
    }
  }

  // Inserts a tag known to be absent.
  void Place(uint32_t tag, uint64_t loc) REQUIRES(mu) {
    size_t slot = Home(tag);
    for (size_t dist = 0;; ++dist, slot = Next(slot)) {
      if (tags[slot] == 0) {
        tags[slot] = tag;
        locs[slot] = loc;
        return;
      }
      size_t theirs = Distance(slot);
      if (theirs < dist) {  // Robin Hood: the richer entry moves on
        std::swap(tags[slot], tag);
        std::swap(locs[slot], loc);
        dist = theirs;
      }
    }
  }

  void EraseAt(size_t slot) REQUIRES(mu) {
    // Backward-shift deletion keeps probe sequences short without markers.
    size_t next = Next(slot);
    while (tags[next] != 0 && Distance(next) > 0) {
      tags[slot] = tags[next];
      locs[slot] = locs[next];
      slot = next;
      next = Next(next);
    }
    tags[slot] = 0;
    locs[slot] = 0;
    --count;
  }

  void Resize(size_t slots) REQUIRES(mu) {
    std::vector<uint32_t> old_tags(slots, 0);
    std::vector<uint64_t> old_locs(slots, 0);
    old_tags.swap(tags);
    old_locs.swap(locs);
    for (size_t i = 0; i < old_tags.size(); ++i) {
      if (old_tags[i] != 0) Place(old_tags[i], old_locs[i]);
    }
  }
};

SsdIndex::SsdIndex(uint32_t regions, unsigned shards)
    : regions_(regions), region_bytes_(std::make_unique<std::atomic<uint64_t>[]>(regions)) {
  size_t n = std::bit_ceil(std::max(1u, shards));
  shard_shift_ = 64 - static_cast<unsigned>(std::countr_zero(n));
  for (size_t i = 0; i < n; ++i) shards_.push_back(std::make_unique<Shard>());
}

SsdIndex::~SsdIndex() = default;

void SsdIndex::Count(const SsdLocation& loc, int64_t sign) {
  uint64_t delta = static_cast<uint64_t>(sign) * loc.size;  // wraps for -1
  live_bytes_.fetch_add(delta, std::memory_order_relaxed);
  if (loc.region < regions_) region_bytes_[loc.region].fetch_add(delta, std::memory_order_relaxed);
}

SsdIndex::Shard& SsdIndex::ShardFor(uint64_t hash) const {
  return *shards_[shard_shift_ == 64 ? 0 : hash >> shard_shift_];
}

std::optional<SsdLocation> SsdIndex::Insert(uint64_t hash, SsdLocation loc, bool accessed) {
  Shard& s = ShardFor(hash);
  const uint32_t tag = TagOf(hash) | (accessed ? kAccessed : 0);
  common::MutexLock lock(&s.mu);
  size_t slot = s.Find(tag & ~kAccessed);
  if (slot != SIZE_MAX) {
    SsdLocation old = Unpack(s.locs[slot]);
    s.locs[slot] = Pack(loc);
    s.tags[slot] = tag;  // the bit belongs to the new record
    Count(old, -1);
    Count(loc, 1);
    return old;
  }
  // Grow by an eighth at 90% full: the table stays 80%..90% full, 13 to 15
  // bytes per entry (Robin Hood probing keeps lookups short at that load).
  if ((s.count + 1) * 10 > s.tags.size() * 9) {
    s.Resize(s.tags.size() + s.tags.size() / 8);
  }
  s.Place(tag, Pack(loc));
  ++s.count;
  Count(loc, 1);
  return std::nullopt;
}

std::optional<SsdLocation> SsdIndex::Lookup(uint64_t hash, bool* accessed) const {
  Shard& s = ShardFor(hash);
  common::MutexLock lock(&s.mu);
  size_t slot = s.Find(TagOf(hash));
  if (slot == SIZE_MAX) return std::nullopt;
  if (accessed != nullptr) *accessed = (s.tags[slot] & kAccessed) != 0;
  return Unpack(s.locs[slot]);
}

bool SsdIndex::MarkAccessed(uint64_t hash, SsdLocation loc) {
  Shard& s = ShardFor(hash);
  common::MutexLock lock(&s.mu);
  size_t slot = s.Find(TagOf(hash));
  if (slot == SIZE_MAX || s.locs[slot] != Pack(loc)) return false;
  s.tags[slot] |= kAccessed;
  return true;
}

std::optional<SsdLocation> SsdIndex::Remove(uint64_t hash) {
  Shard& s = ShardFor(hash);
  common::MutexLock lock(&s.mu);
  size_t slot = s.Find(TagOf(hash));
  if (slot == SIZE_MAX) return std::nullopt;
  SsdLocation old = Unpack(s.locs[slot]);
  s.EraseAt(slot);
  Count(old, -1);
  return old;
}

bool SsdIndex::RemoveIf(uint64_t hash, SsdLocation loc) {
  Shard& s = ShardFor(hash);
  common::MutexLock lock(&s.mu);
  size_t slot = s.Find(TagOf(hash));
  if (slot == SIZE_MAX || s.locs[slot] != Pack(loc)) return false;
  s.EraseAt(slot);
  Count(loc, -1);
  return true;
}

size_t SsdIndex::RemoveRegion(uint32_t region) { return RemoveRange(region, 0, UINT32_MAX); }

size_t SsdIndex::RemoveRange(uint32_t region, uint32_t begin, uint32_t end) {
  size_t removed = 0;
  for (auto& sp : shards_) {
    Shard& s = *sp;
    common::MutexLock lock(&s.mu);
    for (size_t i = 0; i < s.tags.size();) {
      SsdLocation loc = Unpack(s.locs[i]);
      if (s.tags[i] != 0 && loc.region == region && loc.offset < end &&
          uint64_t{loc.offset} + loc.size > begin) {
        s.EraseAt(i);  // the next entry may have shifted into slot i
        Count(loc, -1);
        ++removed;
      } else {
        ++i;
      }
    }
  }
  return removed;
}

void SsdIndex::Clear() {
  for (auto& sp : shards_) {
    common::MutexLock lock(&sp->mu);
    for (size_t i = 0; i < sp->tags.size(); ++i) {
      if (sp->tags[i] != 0) Count(Unpack(sp->locs[i]), -1);
    }
    sp->tags.assign(kInitialSlots, 0);
    sp->locs.assign(kInitialSlots, 0);
    sp->count = 0;
  }
}

size_t SsdIndex::size() const {
  size_t n = 0;
  for (const auto& sp : shards_) {
    common::MutexLock lock(&sp->mu);
    n += sp->count;
  }
  return n;
}

size_t SsdIndex::memory_bytes() const {
  size_t n = 0;
  for (const auto& sp : shards_) {
    common::MutexLock lock(&sp->mu);
    n += sp->tags.capacity() * sizeof(uint32_t) + sp->locs.capacity() * sizeof(uint64_t);
  }
  return n;
}

}  // namespace strata::tiers
