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
// The arena. All memory comes from one reservation of kArenaBytes (32 GiB
// of address space, PROT_NONE until used), so that any address in it has a
// 32-bit handle: its offset / 8. The RAM tier's table and queues keep these
// handles instead of pointers. Slabs are carved from the part above
// kCellAreaBytes in regions of kRegionBytes (made writable as they are
// needed, resident only once touched, never given back to the reservation
// while the allocator lives). The first kCellAreaBytes hold cells: 8-byte
// slots, each the address of an item kept outside the arena (larger than
// kMaxBytes, or small once the slab part is used up), which gives that item
// a handle too (handles below kCellHandles).
//
// Invariant: a slot is either handed out or on its slab's free list or past
// its slab's bump offset; a slab with free slots and at least one in use is
// on its stripe's list for its class; a slab with none in use is in the pool
// (or, between ReturnSlab and Cool, having its pages given back).
//
// Thread safety: Allocate(), Free(), NewCell() and FreeCell() may be called
// from any thread; a slot or cell may be freed on another thread than the
// one that allocated it.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <vector>

#include "common/mutex.h"

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
  static constexpr uint64_t kArenaBytes = uint64_t{kGranule} << 32;  // every 32-bit handle
  static constexpr uint64_t kCellAreaBytes = uint64_t{1} << 30;
  static constexpr uint32_t kCellHandles = kCellAreaBytes / kGranule;

  // Bytes a request of `bytes` (1..kMaxBytes) takes: its size class.
  static constexpr size_t ClassBytes(size_t bytes) {
    return (bytes + kGranule - 1) & ~(kGranule - 1);
  }

  // The allocator Item::Create uses.
  static ItemSlabs& Global();
  // Global()'s arena; null until Global() is first called.
  static char* GlobalBase() { return global_base_; }

  // Reserves the arena; throws std::bad_alloc if the address space cannot
  // be had.
  ItemSlabs();
  ~ItemSlabs();  // unmaps the arena: no slot or cell may be in use
  ItemSlabs(const ItemSlabs&) = delete;
  ItemSlabs& operator=(const ItemSlabs&) = delete;

  // ClassBytes(bytes) bytes, 8-byte aligned, in the slab part of the arena;
  // nullptr once that is used up (or cannot be made writable). `bytes` must
  // be in 1..kMaxBytes.
  void* Allocate(size_t bytes);
  // `p` came from Allocate() of this allocator and is not in use any more.
  void Free(void* p);
  // Whether `p` is in the slab part of this allocator's arena.
  bool InSlabs(const void* p) const {
    const uint64_t off = reinterpret_cast<uintptr_t>(p) - reinterpret_cast<uintptr_t>(base_);
    return off >= kCellAreaBytes && off < kArenaBytes;
  }

  // A cell holding `target`; returns its handle (0 < handle < kCellHandles),
  // or 0 if the cell part is used up.
  uint32_t NewCell(void* target);
  // `handle` came from NewCell() and is not in use any more.
  void FreeCell(uint32_t handle);

  struct Stats {
    size_t slabs_in_use = 0;  // hold at least one slot in use
    size_t slabs_warm = 0;    // empty, pages kept
    size_t slabs_cold = 0;    // empty, pages given back
    size_t slots_in_use = 0;
    size_t bytes_in_use = 0;  // sum of ClassBytes of the slots in use
    size_t cells_in_use = 0;
  };
  Stats stats() const;

 private:
  struct Slab;
  struct alignas(64) Stripe {
    // Guards the stripe's fields and the fields of its slabs (the analysis
    // sees only the former). Taken before pool_mu_.
    mutable common::Mutex mu;
    std::array<Slab*, kMaxBytes / kGranule> partial GUARDED_BY(mu) = {};  // by class index
    size_t slots_in_use GUARDED_BY(mu) = 0;
    size_t bytes_in_use GUARDED_BY(mu) = 0;
  };

  Slab* TakeSlab() EXCLUDES(pool_mu_);
  bool ReturnSlab(Slab* slab) EXCLUDES(pool_mu_);
  void Cool(Slab* slab) EXCLUDES(pool_mu_);
  static void Unlink(Stripe& stripe, Slab* slab) REQUIRES(stripe.mu);
  static void Link(Stripe& stripe, Slab* slab) REQUIRES(stripe.mu);

  static inline char* global_base_ = nullptr;

  char* base_ = nullptr;  // the arena, kSlabBytes-aligned
  std::array<Stripe, kStripes> stripes_;

  mutable common::Mutex cells_mu_;  // guards the cell fields; a leaf
  // A freed cell, holding the next one's handle; 0: none.
  uint32_t free_cell_ GUARDED_BY(cells_mu_) = 0;
  // Next never-used cell (handle 0 means "none").
  uint32_t cell_bump_ GUARDED_BY(cells_mu_) = 1;
  uint32_t cell_writable_ GUARDED_BY(cells_mu_) = 0;  // cells below this handle are writable
  size_t cells_in_use_ GUARDED_BY(cells_mu_) = 0;

  // Guards everything below; a leaf, taken under a stripe's lock.
  mutable common::Mutex pool_mu_ ACQUIRED_AFTER(Stripe::mu);
  char* regions_end_ GUARDED_BY(pool_mu_) = nullptr;  // end of the writable slab regions
  char* bump_ GUARDED_BY(pool_mu_) = nullptr;         // next never-used slab in the newest region
  char* bump_end_ GUARDED_BY(pool_mu_) = nullptr;
  std::vector<Slab*> warm_ GUARDED_BY(pool_mu_);
  std::vector<Slab*> cold_ GUARDED_BY(pool_mu_);
  size_t slabs_in_use_ GUARDED_BY(pool_mu_) = 0;
  size_t slabs_cooling_ GUARDED_BY(pool_mu_) = 0;  // returned, pages being given back
};

}  // namespace strata::tiers
