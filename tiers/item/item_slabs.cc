#include "tiers/item/item_slabs.h"

#include <sys/mman.h>

#include <atomic>
#include <cstring>
#include <new>

#if defined(__has_feature)
#if __has_feature(address_sanitizer)
#define STRATA_ASAN 1
#endif
#endif
#if defined(__SANITIZE_ADDRESS__)
#define STRATA_ASAN 1
#endif
#ifdef STRATA_ASAN
#include <sanitizer/asan_interface.h>
#endif

namespace strata::tiers {

struct ItemSlabs::Slab {
  Slab* prev;
  Slab* next;
  Stripe* stripe;   // set when the slab is taken for a class
  char* free_list;  // freed slots, each ending with the next one's address
  uint32_t bump;    // offset of the first slot never handed out
  uint32_t end;     // offset past the last slot
  uint32_t used;    // slots handed out and not freed
  uint32_t slot_bytes;
  bool linked;  // on stripe->partial[class]
};

namespace {

constexpr size_t kFirstSlot = 64;
static_assert(sizeof(void*) == 8 && kFirstSlot >= 56, "slab header fits before the first slot");

std::atomic<size_t> g_next_stripe{0};

size_t ThreadStripe() {
  thread_local const size_t stripe =
      g_next_stripe.fetch_add(1, std::memory_order_relaxed) % ItemSlabs::kStripes;
  return stripe;
}

size_t ClassIndex(size_t slot_bytes) { return slot_bytes / ItemSlabs::kGranule - 1; }

// A free slot keeps the next free slot's address in its last 8 bytes. Under
// AddressSanitizer the rest of it is poisoned, so a use after free of an
// item's header or key is reported as it would be with malloc.
char** LinkOf(char* slot, size_t slot_bytes) {
  return reinterpret_cast<char**>(slot + slot_bytes - sizeof(char*));
}

void PoisonFreed([[maybe_unused]] char* slot, [[maybe_unused]] size_t slot_bytes) {
#ifdef STRATA_ASAN
  ASAN_POISON_MEMORY_REGION(slot, slot_bytes - sizeof(char*));
#endif
}

void Unpoison([[maybe_unused]] char* slot, [[maybe_unused]] size_t slot_bytes) {
#ifdef STRATA_ASAN
  ASAN_UNPOISON_MEMORY_REGION(slot, slot_bytes);
#endif
}

}  // namespace

ItemSlabs& ItemSlabs::Global() {
  // Never destroyed: items may be freed by static destructors and by threads
  // still running at exit.
  static ItemSlabs* const global = [] {
    auto* slabs = new ItemSlabs;
    global_base_ = slabs->base_;
    return slabs;
  }();
  return *global;
}

ItemSlabs::ItemSlabs() {
  // Address space only: PROT_NONE is neither resident nor committed. Over-
  // reserve by a slab to align the start, then drop the excess.
  const size_t span = kArenaBytes + kSlabBytes;
  void* raw = mmap(nullptr, span, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (raw == MAP_FAILED) throw std::bad_alloc();
  const uintptr_t start = reinterpret_cast<uintptr_t>(raw);
  const uintptr_t aligned = (start + kSlabBytes - 1) & ~(uintptr_t{kSlabBytes} - 1);
  if (aligned > start) munmap(raw, aligned - start);
  const uintptr_t tail = start + span - (aligned + kArenaBytes);
  if (tail > 0) munmap(reinterpret_cast<void*>(aligned + kArenaBytes), tail);
  base_ = reinterpret_cast<char*>(aligned);
  regions_end_ = bump_ = bump_end_ = base_ + kCellAreaBytes;
}

ItemSlabs::~ItemSlabs() {
  // The addresses may be mapped again: clear what was poisoned.
  Unpoison(base_ + kCellAreaBytes, static_cast<size_t>(regions_end_ - (base_ + kCellAreaBytes)));
  munmap(base_, kArenaBytes);
}

uint32_t ItemSlabs::NewCell(void* target) {
  common::MutexLock lock(&cells_mu_);
  uint32_t h = free_cell_;
  if (h != 0) {
    std::memcpy(&free_cell_, base_ + uint64_t{h} * kGranule, sizeof(free_cell_));
  } else {
    if (cell_bump_ == kCellHandles) return 0;
    if (cell_bump_ >= cell_writable_) {
      // Cells are made writable a slab's worth at a time.
      const uint64_t from = uint64_t{cell_writable_} * kGranule;
      if (mprotect(base_ + from, kSlabBytes, PROT_READ | PROT_WRITE) != 0) return 0;
      cell_writable_ = static_cast<uint32_t>((from + kSlabBytes) / kGranule);
    }
    h = cell_bump_++;
  }
  std::memcpy(base_ + uint64_t{h} * kGranule, &target, sizeof(target));
  ++cells_in_use_;
  return h;
}

void ItemSlabs::FreeCell(uint32_t handle) {
  common::MutexLock lock(&cells_mu_);
  char* cell = base_ + uint64_t{handle} * kGranule;
  std::memset(cell, 0, kGranule);
  std::memcpy(cell, &free_cell_, sizeof(free_cell_));
  free_cell_ = handle;
  --cells_in_use_;
}

void ItemSlabs::Link(Stripe& stripe, Slab* slab) {
  Slab*& head = stripe.partial[ClassIndex(slab->slot_bytes)];
  slab->prev = nullptr;
  slab->next = head;
  if (head != nullptr) head->prev = slab;
  head = slab;
  slab->linked = true;
}

void ItemSlabs::Unlink(Stripe& stripe, Slab* slab) {
  if (slab->prev != nullptr) {
    slab->prev->next = slab->next;
  } else {
    stripe.partial[ClassIndex(slab->slot_bytes)] = slab->next;
  }
  if (slab->next != nullptr) slab->next->prev = slab->prev;
  slab->prev = slab->next = nullptr;
  slab->linked = false;
}

ItemSlabs::Slab* ItemSlabs::TakeSlab() {
  common::MutexLock lock(&pool_mu_);
  char* mem = nullptr;
  if (!warm_.empty()) {
    mem = reinterpret_cast<char*>(warm_.back());
    warm_.pop_back();
  } else if (!cold_.empty()) {
    mem = reinterpret_cast<char*>(cold_.back());
    cold_.pop_back();
  } else {
    if (bump_ == bump_end_) {
      // The next region of the arena becomes writable (not resident yet).
      if (regions_end_ == base_ + kArenaBytes) return nullptr;
      if (mprotect(regions_end_, kRegionBytes, PROT_READ | PROT_WRITE) != 0) return nullptr;
      bump_ = regions_end_;
      regions_end_ += kRegionBytes;
      bump_end_ = regions_end_;
    }
    mem = bump_;
    bump_ += kSlabBytes;
  }
  ++slabs_in_use_;
  return reinterpret_cast<Slab*>(mem);
}

// Called with the slab's stripe locked; returns true if the caller must give
// the slab's pages back and then hand it to cold_ (done outside the locks).
bool ItemSlabs::ReturnSlab(Slab* slab) {
  common::MutexLock lock(&pool_mu_);
  --slabs_in_use_;
  if (warm_.size() < kWarmSlabs) {
    warm_.push_back(slab);
    return false;
  }
  ++slabs_cooling_;
  return true;
}

void ItemSlabs::Cool(Slab* slab) {
  madvise(slab, kSlabBytes, MADV_DONTNEED);
  common::MutexLock lock(&pool_mu_);
  --slabs_cooling_;
  cold_.push_back(slab);
}

void* ItemSlabs::Allocate(size_t bytes) {
  const size_t slot_bytes = ClassBytes(bytes);
  Stripe& stripe = stripes_[ThreadStripe()];
  common::MutexLock lock(&stripe.mu);
  Slab* slab = stripe.partial[ClassIndex(slot_bytes)];
  if (slab == nullptr) {
    slab = TakeSlab();
    if (slab == nullptr) return nullptr;
    Unpoison(reinterpret_cast<char*>(slab), kSlabBytes);  // may hold another class's freed slots
    slab->stripe = &stripe;
    slab->free_list = nullptr;
    slab->bump = kFirstSlot;
    slab->end =
        static_cast<uint32_t>(kFirstSlot + (kSlabBytes - kFirstSlot) / slot_bytes * slot_bytes);
    slab->used = 0;
    slab->slot_bytes = static_cast<uint32_t>(slot_bytes);
    Link(stripe, slab);
  }
  char* p;
  if (slab->free_list != nullptr) {
    p = slab->free_list;
    slab->free_list = *LinkOf(p, slot_bytes);
    Unpoison(p, slot_bytes);
  } else {
    p = reinterpret_cast<char*>(slab) + slab->bump;
    slab->bump += static_cast<uint32_t>(slot_bytes);
  }
  ++slab->used;
  if (slab->free_list == nullptr && slab->bump == slab->end) Unlink(stripe, slab);
  ++stripe.slots_in_use;
  stripe.bytes_in_use += slot_bytes;
  return p;
}

void ItemSlabs::Free(void* p) {
  Slab* slab =
      reinterpret_cast<Slab*>(reinterpret_cast<uintptr_t>(p) & ~(uintptr_t{kSlabBytes} - 1));
  // The slab's stripe was set before the slot was handed out, and the slot
  // reached this thread after that.
  Stripe& stripe = *slab->stripe;
  bool cool = false;
  {
    common::MutexLock lock(&stripe.mu);
    char* slot = static_cast<char*>(p);
    *LinkOf(slot, slab->slot_bytes) = slab->free_list;
    PoisonFreed(slot, slab->slot_bytes);
    slab->free_list = slot;
    --slab->used;
    --stripe.slots_in_use;
    stripe.bytes_in_use -= slab->slot_bytes;
    if (slab->used == 0) {
      if (slab->linked) Unlink(stripe, slab);
      cool = ReturnSlab(slab);
    } else if (!slab->linked) {
      Link(stripe, slab);
    }
  }
  if (cool) Cool(slab);
}

ItemSlabs::Stats ItemSlabs::stats() const {
  Stats s;
  for (const Stripe& stripe : stripes_) {
    common::MutexLock lock(&stripe.mu);
    s.slots_in_use += stripe.slots_in_use;
    s.bytes_in_use += stripe.bytes_in_use;
  }
  {
    common::MutexLock lock(&cells_mu_);
    s.cells_in_use = cells_in_use_;
  }
  common::MutexLock lock(&pool_mu_);
  s.slabs_in_use = slabs_in_use_;
  s.slabs_warm = warm_.size();
  s.slabs_cold = cold_.size() + slabs_cooling_;
  return s;
}

}  // namespace strata::tiers
