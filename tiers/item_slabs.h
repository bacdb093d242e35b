// ItemSlabs: the allocator for small items (up to kMaxBytes). Items are
// carved from 64 KiB slabs in size classes 8 bytes apart, with no per-item
// header: a 135-byte item takes 136 bytes here against a 144-byte glibc
// chunk (8-byte chunk header, 16-byte steps). Larger items stay with
// malloc, where the header is noise.
//
// A slab holds one size class. Its header (at the slab's 64 KiB-aligned
// start) keeps the free slots in a list threaded through them, a bump
// offset for slots never handed out (so a fresh slab's untouched pages are
// not resident), and the number in use; Free() finds it by masking the
// address. Classes are kept per stripe (a mutex and, per class, a list of
// the slabs with free slots); each thread allocates from its own stripe
// (threads are spread over kStripes round-robin), and a free goes to the
// stripe of the item's slab. A slab that empties goes back to a shared pool
// for any class; past kWarmSlabs pooled slabs its pages are given back to the
// kernel (madvise MADV_DONTNEED), so RSS follows what is in use.
//
// Slabs come from mmap regions of kRegionBytes (virtual until touched, never
// unmapped while the allocator lives); every address handed out is 8-byte
// aligned and below 2^48 (a region mapped higher is refused).
//
// Invariant: a slot is either handed out or on its slab's free list or past
// its slab's bump offset; a slab with free slots and at least one in use is
// on its stripe's list for its class; a slab with none in use is in the pool
// (or, between ReturnSlab and Cool, having its pages given back).
//
// Thread safety: Allocate() and Free() may be called from any thread; a
// slot may be freed on another thread than the one that allocated it.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <mutex>
#include <vector>

namespace strata::tiers {

class ItemSlabs {
 public:
  static constexpr size_t kSlabBytes = 64 * 1024;
  static constexpr size_t kGranule = 8;
  // Items larger than this go to malloc (Item::Create decides by size).
  static constexpr size_t kMaxBytes = 1024;
  static constexpr size_t kStripes = 8;
  // Empty slabs kept resident for reuse before pages go back to the kernel.
  static constexpr size_t kWarmSlabs = 16;
  static constexpr size_t kRegionBytes = 64 * 1024 * 1024;

  // Bytes a request of `bytes` (1..kMaxBytes) takes: its size class.
  static constexpr size_t ClassBytes(size_t bytes) {
    return (bytes + kGranule - 1) & ~(kGranule - 1);
  }

  // The allocator Item::Create uses.
  static ItemSlabs& Global();

  ItemSlabs();
  ~ItemSlabs();  // unmaps every region: no slot may be in use
  ItemSlabs(const ItemSlabs&) = delete;
  ItemSlabs& operator=(const ItemSlabs&) = delete;

  // ClassBytes(bytes) bytes, 8-byte aligned and below 2^48, or nullptr if
  // no memory can be mapped. `bytes` must be in 1..kMaxBytes.
  void* Allocate(size_t bytes);
  // `p` came from Allocate() of this allocator and is not in use any more.
  void Free(void* p);

  struct Stats {
    size_t slabs_in_use = 0;  // hold at least one slot in use
    size_t slabs_warm = 0;    // empty, pages kept
    size_t slabs_cold = 0;    // empty, pages given back
    size_t slots_in_use = 0;
    size_t bytes_in_use = 0;  // sum of ClassBytes of the slots in use
  };
  Stats stats() const;

 private:
  struct Slab;
  struct alignas(64) Stripe {
    mutable std::mutex mu;
    std::array<Slab*, kMaxBytes / kGranule> partial{};  // by class index
    size_t slots_in_use = 0;
    size_t bytes_in_use = 0;
  };

  Slab* TakeSlab();
  bool ReturnSlab(Slab* slab);
  void Cool(Slab* slab);
  static void Unlink(Stripe& stripe, Slab* slab);
  static void Link(Stripe& stripe, Slab* slab);

  std::array<Stripe, kStripes> stripes_;

  mutable std::mutex pool_mu_;  // guards everything below
  std::vector<char*> regions_;
  char* bump_ = nullptr;  // next never-used slab in the newest region
  char* bump_end_ = nullptr;
  std::vector<Slab*> warm_;
  std::vector<Slab*> cold_;
  size_t slabs_in_use_ = 0;
  size_t slabs_cooling_ = 0;  // returned, pages being given back
};

}  // namespace strata::tiers
