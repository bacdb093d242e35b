#include "tiers/tiered_cache.h"

#include "common/hash.h"

namespace strata::tiers {

TieredCache::TieredCache(const RamTierOptions& ram_options, const common::Clock& clock,
                         SsdLog* ssd)
    : ram_(ram_options, clock, ssd != nullptr ? this : nullptr), ssd_(ssd) {
  if (ssd_ != nullptr) {
    ram_.EnsureCasAbove(ssd_->max_recovered_cas());
    ram_.SetFlushHook([this] { ssd_->Flush(); });
  }
}

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
  PromoteOp(RamTier& ram, SsdReadDone* done) : ram_(ram), done_(done) {}
  void OnSsdRead(ItemRef item) override {
    ItemRef result;
    if (item) {
      std::string key(item->Key());
      item->ssd_copy = 1;  // unchanged since its record: no rewrite on eviction
      ram_.Store(StoreMode::kRestore, item);
      // Whatever RAM holds now (the promoted item, or a newer write) wins.
      result = ram_.Get(key);
    }
    SsdReadDone* done = done_;
    delete this;
    done->OnSsdRead(std::move(result));
  }

 private:
  RamTier& ram_;
  SsdReadDone* done_;
};

}  // namespace

void TieredCache::Promote(std::string_view key, IoQueue& queue, SsdReadDone* done) {
  if (ssd_ == nullptr) {
    done->OnSsdRead({});
    return;
  }
  ssd_->Read(key, common::HashKey(key), queue, new PromoteOp(ram_, done));
}

StoreResult TieredCache::Store(StoreMode mode, ItemRef item, uint64_t cas_unique) {
  std::string_view key = item->Key();
  std::string key_copy = ssd_ != nullptr ? std::string(key) : std::string();
  StoreResult r = ram_.Store(mode, std::move(item), cas_unique);
  if (r == StoreResult::kStored) Invalidate(key_copy);
  return r;
}

bool TieredCache::Delete(std::string_view key) {
  bool in_ram = ram_.Delete(key);
  bool on_ssd = ssd_ != nullptr && ssd_->Remove(key, common::HashKey(key));
  return in_ram || on_ssd;
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
  ItemRef item = ram_.Get(key, new_exptime);
  if (item && new_exptime != nullptr) Invalidate(key);
  return item;
}

void TieredCache::OnEvicted(std::vector<ItemRef>& items) {
  if (ssd_ == nullptr) return;
  for (ItemRef& item : items) {
    uint64_t hash = common::HashKey(item->Key());
    if (item->ssd_copy && ssd_->Contains(hash)) continue;  // its record is still valid
    std::string_view key = item->Key();
    ssd_->Append(*item, hash, [&] { return !ram_.Contains(key); });
  }
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
