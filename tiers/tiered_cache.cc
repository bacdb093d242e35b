#include "tiers/tiered_cache.h"

#include <algorithm>

#include "common/hash.h"

namespace strata::tiers {

TieredCache::TieredCache(const RamTierOptions& ram_options, const common::Clock& clock,
                         SsdLog* ssd, const AdmissionOptions& admission)
    : owned_ram_(std::make_unique<RamTier>(ram_options, clock, ssd != nullptr ? this : nullptr)),
      ram_(*owned_ram_),
      ssd_(ssd),
      clock_(&clock),
      recent_deletes_(std::make_unique<std::atomic<uint64_t>[]>(kRecentDeletes)) {
  if (ssd_ != nullptr) {
    // About one key per 256 bytes of RAM tier: 4 bytes of sketch per key.
    size_t keys = static_cast<size_t>(std::clamp<uint64_t>(ram_options.size_bytes / 256, 1 << 16, 1 << 24));
    sketch_ = std::make_unique<FrequencySketch>(keys);
    AdmissionOptions adm = admission;
    // The ghost of rejected keys spans twice the SSD's size, which did
    // best against 1x and 4x in a simulation (bench/README.md), at most one
    // key per 512 bytes of SSD.
    if (adm.ghost_window_bytes == 0) adm.ghost_window_bytes = 2 * ssd_->capacity_bytes();
    if (adm.ghost_max_keys == 0) adm.ghost_max_keys = ssd_->capacity_bytes() / 512;
    admission_ = std::make_unique<AdmissionPolicy>(adm, *sketch_, clock);
    write_budget_ = admission.write_budget;
    promote_threshold_ = admission.promote_threshold;
    if (admission.large_item_percent < 100) {
      large_item_bytes_ = ram_options.size_bytes / 100 * admission.large_item_percent;
    }
    ram_.EnsureCasAbove(ssd_->max_recovered_cas());
    ram_.SetFlushHook([this] { ssd_->Flush(); });
    // Reclaim keeps live records while the log has room, and beyond that
    // moves the records read since they were written, which the sketch
    // still calls warm, to the log's head.
    ssd_->SetReclaimHooks(
        {[this](uint64_t hash, bool accessed) { return admission_->ReclaimScore(hash, accessed); },
         [this](uint64_t bytes, uint32_t score) { return admission_->SpendOnReclaim(bytes, score); },
         [this](uint64_t hash) { admission_->NoteReclaimDropped(hash); }});
    // A flush_all that was to take effect after a restart still does.
    if (int64_t at = ssd_->recovered_delayed_flush(); at != 0) ram_.FlushAll(at);
  }
}

TieredCache::~TieredCache() {
  if (ssd_ != nullptr) ssd_->SetReclaimHooks({});
}

TieredCache::TieredCache(RamTier& ram)
    : ram_(ram),
      ssd_(nullptr),
      recent_deletes_(std::make_unique<std::atomic<uint64_t>[]>(kRecentDeletes)) {}

void TieredCache::Invalidate(std::string_view key, uint64_t* ticket) {
  if (ssd_ == nullptr) return;
  uint64_t hash = common::HashKey(key);
  ssd_->Remove(key, hash);
  RaiseTicket(hash, ticket);
}

void TieredCache::RaiseTicket(uint64_t hash, uint64_t* ticket) const {
  if (ticket == nullptr || ssd_ == nullptr) return;
  uint64_t t = ssd_->AckTicket(hash);
  if (t > *ticket) *ticket = t;
}

bool TieredCache::NeedsPromotion(std::string_view key) {
  return ssd_ != nullptr && ssd_->Contains(common::HashKey(key)) && !ram_.Contains(key);
}

// Puts the item read from SSD into RAM, then answers the caller. If the
// key's record moved while the read was in flight (RAM evicted the item
// again and the log has a newer copy), the newer record is read instead.
class TieredCache::PromoteOp final : public SsdReadDone {
 public:
  PromoteOp(TieredCache& cache, std::string_view key, uint64_t hash, IoQueue& queue,
            const PromoteOptions& options, SsdReadDone* done)
      : cache_(cache), key_(key), hash_(hash), queue_(queue), options_(options), done_(done) {}
  void Start() {
    // Read before the index lookup: a delete that the lookup does not see
    // carries a later epoch.
    epoch_ = cache_.delete_epoch_.load(std::memory_order_acquire);
    cache_.ssd_->Read(key_, hash_, queue_, this);
  }
  void OnSsdRead(ItemRef item) override { Finish(std::move(item), nullptr); }
  void OnSsdReadAt(ItemRef item, SsdLocation at) override { Finish(std::move(item), &at); }

 private:
  static constexpr int kMaxReads = 4;
  void Finish(ItemRef item, const SsdLocation* at) {
    ItemRef result;
    if (item && at != nullptr) {
      result = cache_.FinishPromotion(std::move(item), hash_, *at, epoch_, options_);
    }
    if (!result) {
      if (++reads_ < kMaxReads && cache_.NeedsPromotion(key_)) {
        Start();
        return;
      }
      // The key left the log while it was looked up or read (superseded,
      // or promoted by another command): RAM's version, if any, is the
      // answer.
      result = cache_.GetFromRam(key_, options_.new_exptime);
    }
    SsdReadDone* done = done_;
    delete this;
    done->OnSsdRead(std::move(result));
  }

  TieredCache& cache_;
  std::string key_;
  uint64_t hash_;
  IoQueue& queue_;
  uint64_t epoch_ = 0;
  int reads_ = 0;
  PromoteOptions options_;
  SsdReadDone* done_;
};

ItemRef TieredCache::FinishPromotion(ItemRef item, uint64_t hash, const SsdLocation& at,
                                     uint64_t epoch, const PromoteOptions& options) {
  std::string key(item->Key());
  item->read_ahead = options.read_ahead ? 1 : 0;
  if (options.new_exptime != nullptr) {
    // gat: the item goes back to RAM with its new expiry, and its record
    // (which has the old one) is invalidated once it is there.
    item->exptime = *options.new_exptime;
    item->ssd_copy = 0;
    if (RestoreFromSsd(item, hash, at, epoch)) {
      Invalidate(key, nullptr);  // the gat's own reply waits (its command asks)
      return item;
    }
    // RAM got the key meanwhile: that version is the one to touch.
    return GetFromRam(key, options.new_exptime);
  }
  item->ssd_copy = 1;  // unchanged since its record: no rewrite on eviction
  if (options.only_if_hot && !WorthPromoting(hash, ItemCharge(item.get()))) {
    // Served from the record; RAM keeps its room.
    if (StillCurrent(*item, hash, at, epoch)) return item;
    return ram_.Get(key);
  }
  // The verified record is the answer, even if RAM evicts it again.
  if (RestoreFromSsd(item, hash, at, epoch)) return item;
  // RAM got the key meanwhile (that newer version wins), or the key was
  // deleted, overwritten or flushed while the read was in flight.
  return ram_.Get(key);
}

ItemRef TieredCache::GetFromRam(std::string_view key, const uint32_t* new_exptime) {
  ItemRef item = ram_.Get(key, new_exptime);
  // A gat that touched RAM's copy: if that copy came from SSD (a read-ahead
  // or another command promoted it), the record it left, with the old
  // expiry, must go too, or it comes back once RAM's copy has expired, and
  // after a restart (the gat's reply waits for this: its command asks
  // AckTicket).
  if (item && new_exptime != nullptr) Invalidate(key, nullptr);
  return item;
}

void TieredCache::Promote(std::string_view key, IoQueue& queue, SsdReadDone* done,
                          const PromoteOptions& options) {
  if (ssd_ == nullptr) {
    done->OnSsdRead({});
    return;
  }
  (new PromoteOp(*this, key, common::HashKey(key), queue, options, done))->Start();
}

bool TieredCache::WorthPromoting(uint64_t hash, size_t charge) {
  if (large_item_bytes_ != 0 && charge > large_item_bytes_) return false;  // served from SSD
  if (sketch_ == nullptr || promote_threshold_ == 0) return true;
  uint32_t estimate = sketch_->Estimate(hash);
  if (estimate < promote_threshold_) return false;
  uint64_t victim = 0;
  if (!ram_.EvictionCandidate(hash, charge, &victim)) return true;
  return estimate > sketch_->Estimate(victim);
}

bool TieredCache::StillCurrent(const Item& item, uint64_t hash, const SsdLocation& at,
                               uint64_t epoch) {
  return ram_.StillCurrentAbsent(item, [&] { return RecordStillNewest(hash, at, epoch); });
}

bool TieredCache::RestoreFromSsd(ItemRef& item, uint64_t hash, const SsdLocation& at,
                                 uint64_t epoch) {
  // Asked under the RAM shard's lock: a delete removes the RAM copy under
  // that lock after stamping its epoch, so it either sees the restored item
  // or the restore sees its stamp.
  StoreResult r = ram_.Restore(item, [&] { return RecordStillNewest(hash, at, epoch); });
  if (r != StoreResult::kStored) return false;
  promotions_.fetch_add(1, std::memory_order_relaxed);
  return true;
}

StoreResult TieredCache::Store(StoreMode mode, ItemRef item, uint64_t cas_unique, uint64_t* ticket,
                               uint64_t* stored_cas, bool set_stale) {
  if (ssd_ == nullptr) return ram_.Store(mode, std::move(item), cas_unique, stored_cas, set_stale);
  if (mode == StoreMode::kSet && cas_unique == 0 && !set_stale && large_item_bytes_ != 0 &&
      ItemCharge(item.get()) > large_item_bytes_) {
    return StoreToSsd(std::move(item), ticket, stored_cas);
  }
  std::string key(item->Key());
  const uint64_t hash = common::HashKey(key);
  // An add whose key RAM evicted to SSD since the caller promoted it (the
  // proxy promotes first) finds the key there.
  StoreResult r = mode == StoreMode::kAdd
                      ? ram_.AddIf(
                            std::move(item), [&] { return !ssd_->Contains(hash); }, stored_cas)
                      : ram_.Store(mode, std::move(item), cas_unique, stored_cas, set_stale);
  if (r == StoreResult::kStored) Invalidate(key, ticket);
  return r;
}

StoreResult TieredCache::StoreToSsd(ItemRef item, uint64_t* ticket, uint64_t* stored_cas) {
  const std::string key(item->Key());
  const uint64_t hash = common::HashKey(key);
  ram_.RunDueFlush();  // not under the log's lock: it calls the flush hook
  // The key's older versions go first, as in Delete(): its RAM copy, and
  // its SSD record with a tombstone (what the reply waits for).
  uint64_t epoch = 0;
  ssd_->Remove(key, hash, [&] {
    StampDelete(hash);
    ram_.Delete(key, /*run_due_flush=*/false);
    epoch = delete_epoch_.load(std::memory_order_acquire);
  });
  RaiseTicket(hash, ticket);
  const uint64_t cas = ram_.IssueCas();
  item->SetCas(cas);
  if (stored_cas != nullptr) *stored_cas = cas;
  // Stored already expired (a negative exptime): memcached's set answers
  // STORED and the key is gone, which the delete above did.
  if (item->exptime != 0 && static_cast<int64_t>(item->exptime) <= clock_->NowSeconds()) {
    return StoreResult::kStored;
  }
  // Asked under the log's lock when it is queued and right before its head
  // is appended: a delete, a write that landed in RAM, or a flush_all
  // since this set began wins over it (they came later). (Later ones
  // cancel it in the log: Remove(), Flush().)
  const Item* stored = item.get();
  ItemRef fallback = item;  // for RAM, when the queue to SSD is full
  auto current = [this, hash, epoch, key, stored] {
    return !DeletedSince(hash, epoch) && !ram_.Contains(key) && !ram_.IsFlushed(*stored);
  };
  // The log's large-append thread compresses and writes it; reads find it
  // meanwhile. (`stored` stays alive: the log holds the item until then.)
  switch (ssd_->AppendAsync(std::move(item), hash, current, current)) {
    case SsdLog::AsyncResult::kQueued:
      large_to_ssd_.fetch_add(1, std::memory_order_relaxed);
      return StoreResult::kStored;
    case SsdLog::AsyncResult::kSkipped:
      return StoreResult::kStored;  // superseded by a later write: the set happened, then that
    case SsdLog::AsyncResult::kNoRoom:
      break;
  }
  // The queue to SSD is full (sets come faster than the device takes
  // them): the item is stored in RAM as a smaller one is (its memory is
  // already charged there), and RAM evicts to make room, rather than a
  // set memcached would store being refused.
  StoreResult r = ram_.Store(StoreMode::kSet, std::move(fallback), 0, stored_cas, false);
  if (r == StoreResult::kStored) Invalidate(key, ticket);
  return r;
}

void TieredCache::FlushAll(int64_t at_unix, uint64_t* ticket) {
  // A delayed flush (or the cancel of one) is recorded on SSD first, so a
  // restart before it takes effect still has it.
  if (ssd_ != nullptr && (at_unix == 0 || at_unix > clock_->NowSeconds())) ssd_->FlushAt(at_unix);
  // Upstream fills sent before the flush are refused (ChangedSince()).
  flush_epoch_.store(delete_epoch_.fetch_add(1, std::memory_order_acq_rel) + 1,
                     std::memory_order_release);
  ram_.FlushAll(at_unix);
  RaiseTicket(0, ticket);  // a flush marker holds back every key
}

bool TieredCache::Delete(std::string_view key, uint64_t* ticket) {
  uint64_t hash = common::HashKey(key);
  if (ssd_ == nullptr) {
    // Stamped before and after, as below: a fill from the upstream pool
    // sent before this delete must not land after it.
    StampDelete(hash);
    bool in_ram = ram_.Delete(key);
    StampDelete(hash);
    return in_ram;
  }
  ram_.RunDueFlush();  // not under the log's lock: it calls the flush hook
  bool in_ram = false;
  // Under the log's lock, so no demotion of the key is appended between the
  // RAM delete and the index removal:
  // - the first stamp comes before the RAM delete, so a promotion that
  //   read the record earlier and restores after the delete sees it;
  // - the second comes after it, so an eviction that took the item out of
  //   RAM before the delete (its epoch is older) and appends after it sees
  //   it too.
  bool on_ssd = ssd_->Remove(key, hash, [&] {
    StampDelete(hash);
    in_ram = ram_.Delete(key, /*run_due_flush=*/false);
    StampDelete(hash);
  });
  RaiseTicket(hash, ticket);
  return in_ram || on_ssd;
}

void TieredCache::StampDelete(uint64_t hash) {
  uint64_t epoch = delete_epoch_.fetch_add(1, std::memory_order_acq_rel) + 1;
  std::atomic<uint64_t>& slot = recent_deletes_[hash & (kRecentDeletes - 1)];
  uint64_t seen = slot.load(std::memory_order_relaxed);
  while (seen < epoch && !slot.compare_exchange_weak(seen, epoch, std::memory_order_acq_rel)) {
  }
}

bool TieredCache::RecordStillNewest(uint64_t hash, const SsdLocation& at, uint64_t epoch) const {
  return !DeletedSince(hash, epoch) && ssd_->StillAt(hash, at);
}

bool TieredCache::ChangedSince(std::string_view key, uint64_t epoch) const {
  return flush_epoch_.load(std::memory_order_acquire) > epoch ||
         DeletedSince(common::HashKey(key), epoch);
}

bool TieredCache::FillFromUpstream(ItemRef item, uint64_t epoch) {
  const std::string key(item->Key());
  return ram_.Restore(std::move(item), [&] { return !ChangedSince(key, epoch); }) ==
         StoreResult::kStored;
}

bool TieredCache::DeletedSince(uint64_t hash, uint64_t epoch) const {
  // The slot is shared by many keys: a delete of any of them since `epoch`
  // counts (dropping a demotion or a promotion is only a miss).
  return recent_deletes_[hash & (kRecentDeletes - 1)].load(std::memory_order_acquire) > epoch;
}

DeltaResult TieredCache::Delta(std::string_view key, bool incr, uint64_t delta, uint64_t* result,
                               uint64_t* ticket, uint64_t cas_check, const MetaItemFn* after) {
  DeltaResult r = ram_.Delta(key, incr, delta, result, cas_check, after);
  if (r == DeltaResult::kOk) Invalidate(key, ticket);
  return r;
}

MetaGetResult TieredCache::MetaGet(std::string_view key, ItemRef vivify, bool bump,
                                   const MetaItemFn& fn, ItemRef* out, uint64_t* ticket,
                                   bool* read_ahead) {
  if (ssd_ == nullptr) {
    bool changed = false;
    return ram_.MetaGet(key, std::move(vivify), nullptr, bump, fn, out, &changed, read_ahead);
  }
  const uint64_t hash = common::HashKey(key);
  if (sketch_ != nullptr) sketch_->Record(hash);
  const std::function<bool()> absent = [&] { return !ssd_->Contains(hash); };
  bool changed = false;
  MetaGetResult r =
      ram_.MetaGet(key, std::move(vivify), &absent, bump, fn, out, &changed, read_ahead);
  if (changed || r == MetaGetResult::kCreated) Invalidate(key, ticket);
  return r;
}

MetaDeleteResult TieredCache::MetaDelete(std::string_view key, const uint64_t* cas, bool mark_stale,
                                         const uint32_t* new_exptime, uint64_t* ticket) {
  if (ssd_ == nullptr) return ram_.MetaDelete(key, cas, mark_stale, new_exptime);
  if (mark_stale) {
    MetaDeleteResult r = ram_.MetaDelete(key, cas, true, new_exptime);
    if (r == MetaDeleteResult::kMarkedStale) Invalidate(key, ticket);
    return r;
  }
  if (cas == nullptr)
    return Delete(key, ticket) ? MetaDeleteResult::kDeleted : MetaDeleteResult::kNotFound;
  // As Delete(), with the CAS checked on RAM's item (the caller promoted
  // the key first). The SSD record goes whatever RAM says: RAM's item,
  // when it stays, is written again if it is evicted.
  const uint64_t hash = common::HashKey(key);
  ram_.RunDueFlush();
  MetaDeleteResult r = MetaDeleteResult::kNotFound;
  ssd_->Remove(key, hash, [&] {
    StampDelete(hash);
    r = ram_.MetaDelete(key, cas, false, nullptr, /*run_due_flush=*/false);
    StampDelete(hash);
  });
  RaiseTicket(hash, ticket);
  return r;
}

bool TieredCache::Touch(std::string_view key, uint32_t exptime, uint64_t* ticket) {
  bool ok = ram_.Touch(key, exptime);
  if (ok) Invalidate(key, ticket);
  return ok;
}

ItemRef TieredCache::Get(std::string_view key, const uint32_t* new_exptime, bool* read_ahead,
                         uint64_t* ticket, bool* on_ssd) {
  const uint64_t hash = common::HashKey(key);
  if (sketch_ != nullptr) sketch_->Record(hash);
  ItemRef item = ram_.Get(key, new_exptime, read_ahead);
  if (!item && on_ssd != nullptr && ssd_ != nullptr) {
    // Where the key is, without asking RAM first (as NeedsPromotion() does):
    // another connection may have promoted it since RAM missed, and the
    // promotion then answers with RAM's item. If the SSD tier does not
    // have it, RAM may have got it since (promoted, then written).
    *on_ssd = ssd_->Contains(hash);
    if (!*on_ssd) item = ram_.Get(key, new_exptime, read_ahead);
  }
  if (new_exptime != nullptr && ssd_ != nullptr) {
    if (item) {
      Invalidate(key, ticket);
    } else {
      RaiseTicket(hash, ticket);
    }
  }
  return item;
}

uint64_t TieredCache::AckTicket(std::string_view key) const {
  uint64_t t = 0;
  RaiseTicket(common::HashKey(key), &t);
  return t;
}

void TieredCache::OnEvictedSince(std::vector<ItemRef>& items, uint64_t /*epoch*/) {
  if (ssd_ == nullptr) return;
  for (ItemRef& item : items) {
    uint64_t hash = common::HashKey(item->Key());
    if (item->ssd_copy && ssd_->Contains(hash)) continue;  // its record is still valid
    uint64_t bytes = uint64_t{item->key_len} + item->value_len + 40;
    switch (admission_->Admit(*item, hash, bytes, ssd_->HasRoom(bytes))) {
      case AdmissionVerdict::kRejectCold:
        rejected_cold_.fetch_add(1, std::memory_order_relaxed);
        continue;
      case AdmissionVerdict::kRejectBudget:
        rejected_budget_.fetch_add(1, std::memory_order_relaxed);
        continue;
      case AdmissionVerdict::kAdmit:
        break;
    }
    // Checked under the log's lock: the item must still be in transit in
    // RAM (no store, delete or read of its key since its eviction: a store
    // or a delete would have dropped it, a read taken it back) and not be
    // older than a flush_all. So an older version is never appended after
    // a newer one was stored (which RAM may have evicted in turn, and the
    // admission rejected), and a delete always wins.
    const Item& evicted = *item;
    auto in_transit = [&] { return ram_.StillEvicting(evicted) && !ram_.IsFlushed(evicted); };
    if (ssd_->IsLarge(evicted.key_len, evicted.value_len)) {
      // Larger than a region (and under large_item_percent, or it would not
      // have been in RAM): the log's large-append thread compresses and
      // writes its pieces, as for a large set, so this worker does not spend
      // tens of ms on them. It is queued only if still in transit, under
      // the log's lock, and from then on reads find it in the queue; a
      // later store, delete or flush of the key cancels it there (Remove(),
      // Flush()), so `later_current` has only the flush time to check.
      const Item* queued = item.get();
      switch (ssd_->AppendAsync(item, hash, in_transit,
                                [this, queued] { return !ram_.IsFlushed(*queued); })) {
        case SsdLog::AsyncResult::kQueued:
          admitted_.fetch_add(1, std::memory_order_relaxed);
          large_evictions_queued_.fetch_add(1, std::memory_order_relaxed);
          continue;
        case SsdLog::AsyncResult::kSkipped:
          continue;  // no longer in transit: stored, deleted or read since
        case SsdLog::AsyncResult::kNoRoom:
          break;  // the queue is full: written here, so the SSD still keeps it
      }
    }
    if (ssd_->Append(evicted, hash, in_transit)) admitted_.fetch_add(1, std::memory_order_relaxed);
  }
}

std::vector<std::string> TieredCache::HotKeys() {
  std::vector<std::pair<uint32_t, std::string>> hot;
  ram_.ForEachItem([&](ItemRef& item) {
    std::string_view key = item->Key();
    uint32_t f = sketch_ != nullptr ? sketch_->Estimate(common::HashKey(key)) : 0;
    hot.emplace_back(f, std::string(key));
  });
  std::stable_sort(hot.begin(), hot.end(),
                   [](const auto& a, const auto& b) { return a.first > b.first; });
  std::vector<std::string> keys;
  keys.reserve(hot.size());
  for (auto& [f, k] : hot) keys.push_back(std::move(k));
  return keys;
}

TieredCache::Counters TieredCache::counters() const {
  Counters c;
  c.promotions = promotions_.load(std::memory_order_relaxed);
  c.large_to_ssd = large_to_ssd_.load(std::memory_order_relaxed);
  c.large_evictions_queued = large_evictions_queued_.load(std::memory_order_relaxed);
  c.admitted = admitted_.load(std::memory_order_relaxed);
  c.rejected_cold = rejected_cold_.load(std::memory_order_relaxed);
  c.rejected_budget = rejected_budget_.load(std::memory_order_relaxed);
  if (admission_) c.victim_estimate = admission_->dropped_estimate_x16() / 16.0;
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
