#include "tiers/tiered_cache.h"

#include <algorithm>

#include "common/hash.h"

namespace strata::tiers {

TieredCache::TieredCache(const RamTierOptions& ram_options, const common::Clock& clock,
                         SsdLog* ssd, const AdmissionOptions& admission)
    : owned_ram_(std::make_unique<RamTier>(ram_options, clock, ssd != nullptr ? this : nullptr)),
      ram_(*owned_ram_),
      ssd_(ssd) {
  if (ssd_ != nullptr) {
    // About one key per 256 bytes of RAM tier: 4 bytes of sketch per key.
    size_t keys = static_cast<size_t>(std::clamp<uint64_t>(ram_options.size_bytes / 256, 1 << 16, 1 << 24));
    sketch_ = std::make_unique<FrequencySketch>(keys);
    admission_ = std::make_unique<AdmissionPolicy>(admission, *sketch_, clock);
    recent_deletes_ = std::make_unique<RecentDelete[]>(kRecentDeletes);
    write_budget_ = admission.write_budget;
    ram_.EnsureCasAbove(ssd_->max_recovered_cas());
    ram_.SetFlushHook([this] { ssd_->Flush(); });
  }
}

TieredCache::TieredCache(RamTier& ram) : ram_(ram), ssd_(nullptr) {}

void TieredCache::Invalidate(std::string_view key) {
  if (ssd_ != nullptr) ssd_->Remove(key, common::HashKey(key));
}

bool TieredCache::NeedsPromotion(std::string_view key) {
  return ssd_ != nullptr && ssd_->Contains(common::HashKey(key)) && !ram_.Contains(key);
}

namespace {

// Puts the item read from SSD into RAM, then answers the caller.
class PromoteOp final : public SsdReadDone {
 public:
  PromoteOp(RamTier& ram, std::atomic<uint64_t>& promotions, SsdReadDone* done)
      : ram_(ram), promotions_(promotions), done_(done) {}
  void OnSsdRead(ItemRef item) override {
    ItemRef result;
    if (item) {
      std::string key(item->Key());
      item->ssd_copy = 1;  // unchanged since its record: no rewrite on eviction
      if (ram_.Store(StoreMode::kRestore, item) == StoreResult::kStored) {
        promotions_.fetch_add(1, std::memory_order_relaxed);
        // The verified record is the answer, even if RAM evicts it again.
        result = std::move(item);
      } else {
        // RAM got the key meanwhile: that newer version wins.
        result = ram_.Get(key);
      }
    }
    SsdReadDone* done = done_;
    delete this;
    done->OnSsdRead(std::move(result));
  }

 private:
  RamTier& ram_;
  std::atomic<uint64_t>& promotions_;
  SsdReadDone* done_;
};

}  // namespace

void TieredCache::Promote(std::string_view key, IoQueue& queue, SsdReadDone* done) {
  if (ssd_ == nullptr) {
    done->OnSsdRead({});
    return;
  }
  ssd_->Read(key, common::HashKey(key), queue, new PromoteOp(ram_, promotions_, done));
}

StoreResult TieredCache::Store(StoreMode mode, ItemRef item, uint64_t cas_unique) {
  if (ssd_ == nullptr) return ram_.Store(mode, std::move(item), cas_unique);
  std::string key(item->Key());
  sketch_->Record(common::HashKey(key));
  StoreResult r = ram_.Store(mode, std::move(item), cas_unique);
  if (r == StoreResult::kStored) Invalidate(key);
  return r;
}

bool TieredCache::Delete(std::string_view key) {
  if (ssd_ == nullptr) return ram_.Delete(key);
  uint64_t hash = common::HashKey(key);
  // Recorded first, so a demotion of this key already under way sees it
  // (its append checks under the log's lock, which Remove() takes after).
  uint64_t epoch = delete_epoch_.fetch_add(1, std::memory_order_acq_rel) + 1;
  RecentDelete& slot = recent_deletes_[hash & (kRecentDeletes - 1)];
  slot.epoch.store(epoch, std::memory_order_relaxed);
  slot.hash.store(hash, std::memory_order_release);
  bool in_ram = ram_.Delete(key);
  bool on_ssd = ssd_->Remove(key, hash);
  return in_ram || on_ssd;
}

bool TieredCache::DeletedSince(uint64_t hash, uint64_t epoch) const {
  const RecentDelete& slot = recent_deletes_[hash & (kRecentDeletes - 1)];
  return slot.hash.load(std::memory_order_acquire) == hash &&
         slot.epoch.load(std::memory_order_relaxed) > epoch;
}

DeltaResult TieredCache::Delta(std::string_view key, bool incr, uint64_t delta, uint64_t* result) {
  DeltaResult r = ram_.Delta(key, incr, delta, result);
  if (r == DeltaResult::kOk) Invalidate(key);
  return r;
}

bool TieredCache::Touch(std::string_view key, uint32_t exptime) {
  bool ok = ram_.Touch(key, exptime);
  if (ok) Invalidate(key);
  return ok;
}

ItemRef TieredCache::Get(std::string_view key, const uint32_t* new_exptime) {
  if (sketch_ != nullptr) sketch_->Record(common::HashKey(key));
  ItemRef item = ram_.Get(key, new_exptime);
  if (item && new_exptime != nullptr) Invalidate(key);
  return item;
}

void TieredCache::OnEvictedSince(std::vector<ItemRef>& items, uint64_t epoch) {
  if (ssd_ == nullptr) return;
  for (ItemRef& item : items) {
    uint64_t hash = common::HashKey(item->Key());
    if (item->ssd_copy && ssd_->Contains(hash)) continue;  // its record is still valid
    uint64_t bytes = uint64_t{item->key_len} + item->value_len + 40;
    switch (admission_->Admit(*item, hash, bytes)) {
      case AdmissionVerdict::kRejectCold:
        rejected_cold_.fetch_add(1, std::memory_order_relaxed);
        continue;
      case AdmissionVerdict::kRejectBudget:
        rejected_budget_.fetch_add(1, std::memory_order_relaxed);
        continue;
      case AdmissionVerdict::kAdmit:
        break;
    }
    std::string_view key = item->Key();
    // Checked under the log's lock: a newer version in RAM, a flush_all
    // since the item was stored, or a delete since the eviction began makes
    // this one stale.
    const Item& evicted = *item;
    if (ssd_->Append(evicted, hash, [&] {
          return !ram_.Contains(key) && !ram_.IsFlushed(evicted) && !DeletedSince(hash, epoch);
        })) {
      admitted_.fetch_add(1, std::memory_order_relaxed);
    }
  }
}

TieredCache::Counters TieredCache::counters() const {
  Counters c;
  c.promotions = promotions_.load(std::memory_order_relaxed);
  c.admitted = admitted_.load(std::memory_order_relaxed);
  c.rejected_cold = rejected_cold_.load(std::memory_order_relaxed);
  c.rejected_budget = rejected_budget_.load(std::memory_order_relaxed);
  return c;
}

size_t TieredCache::DemoteAll() {
  if (ssd_ == nullptr) return 0;
  size_t written = 0;
  ram_.ForEachItem([&](ItemRef& item) {
    uint64_t hash = common::HashKey(item->Key());
    if (item->ssd_copy && ssd_->Contains(hash)) return;
    // Shutdown may wait for the device: if the writer is behind, let it
    // catch up and try again.
    if (ssd_->Append(*item, hash) || (ssd_->Sync(), ssd_->Append(*item, hash))) ++written;
  });
  ssd_->Sync();
  return written;
}

}  // namespace strata::tiers
