#include "tiers/ram/ram_tier.h"

#include <algorithm>
#include <bit>
#include <charconv>
#include <cstring>

#include "common/hash.h"
#include "common/numbers.h"
#include "tiers/ram/item_table.h"

namespace strata::tiers {

namespace {

constexpr uint64_t kMinLimit = 1ull << 20;

}  // namespace

// A shard's charged bytes: changed only under the shard's lock, read without
// it when EnforceLimit() picks the shard to evict from.
class ShardBytes {
 public:
  operator int64_t() const { return v_.load(std::memory_order_relaxed); }
  ShardBytes& operator+=(int64_t d) {
    v_.store(v_.load(std::memory_order_relaxed) + d, std::memory_order_relaxed);
    return *this;
  }
  ShardBytes& operator-=(int64_t d) { return *this += -d; }
  ShardBytes& operator=(int64_t v) {
    v_.store(v, std::memory_order_relaxed);
    return *this;
  }

 private:
  std::atomic<int64_t> v_{0};
};

struct RamTier::Shard {
  // Second in the lock order (common/mutex.h): taken under the SSD log's
  // lock and the reaper's; the SSD index's shard locks and the item
  // allocator's are taken under it.
  common::Mutex mu ACQUIRED_AFTER(RamTier::reap_mu_);
  ItemTable table GUARDED_BY(mu);
  ShardBytes bytes;  // written under mu, read without it (see ShardBytes)
  std::unique_ptr<EvictionPolicy> policy PT_GUARDED_BY(mu);
  uint64_t total_items GUARDED_BY(mu) = 0;
  uint64_t evictions GUARDED_BY(mu) = 0;
  uint64_t evicted_unfetched GUARDED_BY(mu) = 0;
  uint64_t reclaimed GUARDED_BY(mu) = 0;
  uint64_t expired_unfetched GUARDED_BY(mu) = 0;
  uint64_t crawler_reclaimed GUARDED_BY(mu) = 0;
  uint64_t crawler_items_checked GUARDED_BY(mu) = 0;
  // Items EnforceLimit() evicted that the sink has not taken yet (not
  // owning: the eviction's batch holds them). Each is still its key's value,
  // so every operation on the key sees it (RescueLocked()). At most one per
  // key, and only while the table has no item for the key.
  std::vector<Item*> transit GUARDED_BY(mu);

  // The item in transit with `key`, or transit.end().
  std::vector<Item*>::iterator FindTransit(std::string_view key) REQUIRES(mu) {
    return std::find_if(transit.begin(), transit.end(),
                        [&](const Item* it) { return it->Key() == key; });
  }

  // The item at `pos`, or nullptr if Find() did not find the key.
  Item* At(ItemTable::Pos pos) const REQUIRES(mu) {
    return pos.found ? table.At(pos.slot) : nullptr;
  }
  // The item with `key`, expired or not, or nullptr.
  Item* Lookup(std::string_view key, uint64_t hash) const REQUIRES(mu) {
    return At(table.Find(key, hash));
  }

  // Makes `item` (whose reference the table now owns) reachable at `pos`,
  // where Find() did not find its key.
  // `promoted`: the item was read back from a lower tier because it is hot
  // (EvictionPolicy::OnPromote()).
  void LinkAt(ItemTable::Pos pos, Item* item, uint64_t hash, bool promoted = false) REQUIRES(mu) {
    table.InsertAt(pos, item, hash);
    item->linked = 1;
    ++total_items;
    if (promoted) {
      policy->OnPromote(item, hash);
    } else {
      policy->OnInsert(item, hash);
    }
  }

  // Replaces the item at `pos` with `item`; returns the old one's reference.
  Item* ReplaceAt(ItemTable::Pos pos, Item* item, uint64_t hash) REQUIRES(mu) {
    Item* old = table.At(pos.slot);
    table.ReplaceAt(pos.slot, item);
    item->linked = 1;
    old->linked = 0;
    policy->OnRemove(old);
    ++total_items;
    policy->OnInsert(item, hash);
    return old;
  }

  // Unlinks the item at `pos` (not through the policy's Evict) and returns
  // its reference for the caller to drop outside the lock. Other positions
  // from Find() are stale afterwards.
  Item* UnlinkAt(ItemTable::Pos pos, bool via_policy_evict) REQUIRES(mu) {
    Item* old = table.At(pos.slot);
    table.EraseAt(pos.slot);
    old->linked = 0;
    if (!via_policy_evict) policy->OnRemove(old);
    return old;
  }
};

RamTier::RamTier(const RamTierOptions& options, const common::Clock& clock, EvictionSink* sink)
    : options_(options),
      clock_(clock),
      start_unix_(clock.NowSeconds()),
      sink_(sink),
      limit_(options.size_bytes) {
  size_t n = std::bit_ceil(std::max<uint32_t>(1, options_.shards));
  if (options_.shards == 0) {
    uint64_t by_size = std::max<uint64_t>(1, options_.size_bytes / kShardBytes);
    n = std::bit_floor(std::min<uint64_t>(by_size, kMaxAutoShards));
  }
  shard_shift_ = 64 - static_cast<size_t>(std::countr_zero(n));
  const double small_share =
      options_.small_share > 0 ? options_.small_share : sink_ != nullptr ? 0.90 : 0.20;
  shards_.reserve(n);
  for (size_t i = 0; i < n; ++i) {
    auto shard = std::make_unique<Shard>();
    shard->policy = MakePolicy(options_.eviction, small_share);
    shards_.push_back(std::move(shard));
  }
}

RamTier::~RamTier() { FlushNow(); }

size_t RamTier::ShardIndex(uint64_t hash) const {
  return shard_shift_ == 64 ? 0 : static_cast<size_t>(hash >> shard_shift_);
}

RamTier::Shard& RamTier::ShardFor(uint64_t hash) { return *shards_[ShardIndex(hash)]; }

size_t RamTier::EvictionShard(size_t writing_shard) const {
  const size_t n = shards_.size();
  const size_t idx = writing_shard % n;
  if (shards_[idx]->bytes >= static_cast<int64_t>(limit() / n)) return idx;
  // Read without locks; a stale pick only evicts from a slightly smaller
  // shard.
  size_t best = 0;
  int64_t best_bytes = INT64_MIN;
  for (size_t i = 0; i < n; ++i) {
    int64_t b = shards_[i]->bytes;
    if (b > best_bytes) best_bytes = b, best = i;
  }
  return best;
}

bool RamTier::ItemSizeOk(size_t key_len, uint32_t flags, uint64_t value_len) const {
  uint64_t total = 56 + key_len + 1 + value_len + 2 + (flags != 0 ? 4 : 0);
  return total <= options_.max_item_size;
}

ItemRef RamTier::Allocate(std::string_view key, uint32_t flags, uint32_t exptime,
                          uint32_t value_len, AllocResult* why) {
  if (key.size() > kMaxKeyLength || !ItemSizeOk(key.size(), flags, value_len)) {
    *why = AllocResult::kTooLarge;
    return {};
  }
  if (Item::SizeFor(key.size(), flags, value_len) + kPerItemIndexOverhead > limit()) {
    *why = AllocResult::kNoMemory;
    return {};
  }
  Item* item = Item::Create(key, flags, exptime, value_len);
  if (item == nullptr) {
    *why = AllocResult::kNoMemory;
    return {};
  }
  *why = AllocResult::kOk;
  return ItemRef::Adopt(item);
}

void RamTier::ReleaseBytes(int64_t bytes) {
  used_bytes_.fetch_sub(bytes, std::memory_order_relaxed);
  released_bytes_.fetch_add(static_cast<uint64_t>(bytes), std::memory_order_relaxed);
}

Item* RamTier::ReclaimExpiredLocked(Shard& shard, size_t slot, ReclaimBy by)
    REQUIRES(shard.mu) {
  Item* it = shard.table.At(slot);
  ++shard.reclaimed;
  if (by == ReclaimBy::kCrawler) ++shard.crawler_reclaimed;
  if (!it->fetched) ++shard.expired_unfetched;
  const auto charge = static_cast<int64_t>(ItemCharge(it));
  shard.bytes -= charge;
  ReleaseBytes(charge);
  return shard.UnlinkAt({slot, true}, /*via_policy_evict=*/by == ReclaimBy::kEviction);
}

void RamTier::MaybeRunDelayedFlush(int64_t now) {
  int64_t at = pending_flush_at_.load(std::memory_order_relaxed);
  if (at == 0 || now < at) return;
  if (pending_flush_at_.compare_exchange_strong(at, 0)) {
    flush_horizon_.store(at, std::memory_order_relaxed);
    FlushNow();
    if (flush_hook_) flush_hook_();
  }
}

Item* RamTier::RescueLocked(Shard& shard, std::string_view key, uint64_t hash, int64_t now)
    REQUIRES(shard.mu) {
  if (shard.transit.empty()) return nullptr;
  auto t = shard.FindTransit(key);
  if (t == shard.transit.end()) return nullptr;
  const Item* gone = *t;
  shard.transit.erase(t);  // the sink skips it now (StillEvicting())
  if (Expired(gone, now)) return nullptr;
  // A copy: the sink may be reading the original's fields on its thread.
  Item* copy = Item::Create(key, gone->Flags(), gone->exptime, gone->value_len);
  if (copy == nullptr) return nullptr;
  std::memcpy(copy->MutableValue(), gone->Value(), gone->value_len);
  copy->SetCas(gone->Cas());
  copy->fetched = gone->fetched;
  copy->ssd_copy = gone->ssd_copy;
  copy->atime = gone->atime;
  copy->active = gone->active;
  copy->win_sent = gone->win_sent;
  copy->stale = gone->stale;
  copy->key_binary = gone->key_binary;
  shard.LinkAt(shard.table.Find(key, hash), copy, hash, /*promoted=*/true);
  const int64_t charge = static_cast<int64_t>(ItemCharge(copy));
  shard.bytes += charge;
  used_bytes_.fetch_add(charge, std::memory_order_relaxed);
  return copy;
}

bool RamTier::StillEvicting(const Item& item) {
  Shard& shard = ShardFor(common::HashKey(item.Key()));
  common::MutexLock lock(&shard.mu);
  return std::find(shard.transit.begin(), shard.transit.end(), &item) != shard.transit.end();
}

StoreResult RamTier::Restore(ItemRef item, const std::function<bool()>& still_valid) {
  return StoreImpl(StoreMode::kRestore, std::move(item), 0, nullptr, &still_valid);
}

StoreResult RamTier::AddIf(ItemRef item, const std::function<bool()>& absent_elsewhere,
                           uint64_t* stored_cas) {
  return StoreImpl(StoreMode::kAdd, std::move(item), 0, stored_cas, &absent_elsewhere);
}

StoreResult RamTier::Store(StoreMode mode, ItemRef item, uint64_t cas_unique, uint64_t* stored_cas,
                           bool set_stale) {
  return StoreImpl(mode, std::move(item), cas_unique, stored_cas, nullptr, set_stale);
}

void RamTier::BumpLocked(Shard& shard, Item* it, int64_t now) REQUIRES(shard.mu) {
  if (!it->active) {
    if (!it->fetched) {
      it->fetched = 1;
      // The SSD record (if any) says unfetched: rewrite it on eviction, so
      // `mg h` and `me fetch=` read it back as memcached would show it.
      it->ssd_copy = 0;
    } else {
      it->active = 1;
      it->atime = AtimeAt(now);
    }
  }
  shard.policy->OnHit(it);
}

StoreResult RamTier::StoreImpl(StoreMode mode, ItemRef item, uint64_t cas_unique,
                               uint64_t* stored_cas, const std::function<bool()>* still_valid,
                               bool set_stale) {
  int64_t now = clock_.NowSeconds();
  MaybeRunDelayedFlush(now);
  std::string_view key = item->Key();
  uint64_t hash = common::HashKey(key);
  Shard& shard = ShardFor(hash);
  ItemRef doomed;     // dropped after the lock is released
  ItemRef combined;   // append/prepend result
  StoreResult result = StoreResult::kStored;
  const Item* published = nullptr;  // only compared, never dereferenced after unlock
  {
    common::MutexLock lock(&shard.mu);
    ItemTable::Pos pos = shard.table.Find(key, hash);
    Item* old = shard.At(pos);
    if (old != nullptr && Expired(old, now)) {
      doomed = ItemRef::Adopt(ReclaimExpiredLocked(shard, pos.slot, ReclaimBy::kCommand));
      old = nullptr;
      pos = shard.table.Find(key, hash);  // the erase moved the run
    }
    if (old == nullptr && !shard.transit.empty()) {
      if (mode == StoreMode::kSet) {
        // The key's evicted item is superseded: the sink must not take it.
        if (auto t = shard.FindTransit(key); t != shard.transit.end()) shard.transit.erase(t);
      } else if ((old = RescueLocked(shard, key, hash, now)) != nullptr) {
        pos = shard.table.Find(key, hash);
      }
    }
    Item* publish = item.get();
    switch (mode) {
      case StoreMode::kSet:
        break;
      case StoreMode::kRestore:
        if (old != nullptr || IsFlushed(*item) || (still_valid != nullptr && !(*still_valid)())) {
          result = StoreResult::kNotStored;
        }
        break;
      case StoreMode::kAdd:
        if (old != nullptr) {
          shard.policy->OnHit(old);  // memcached bumps the existing item
          result = StoreResult::kNotStored;
        } else if (still_valid != nullptr && !(*still_valid)()) {
          result = StoreResult::kNotStored;  // a lower tier has the key (AddIf)
        }
        break;
      case StoreMode::kReplace:
        if (old == nullptr) result = StoreResult::kNotStored;
        break;
      case StoreMode::kCas:
        if (old == nullptr) {
          result = StoreResult::kNotFound;
        } else if (set_stale && cas_unique != 0 && cas_unique < old->Cas()) {
          // memcached's CAS_STALE: stored, but stale, keeping the old
          // item's expiry and win bit.
          item->exptime = old->exptime;
          item->stale = 1;
          item->win_sent = old->win_sent;
        } else if (cas_unique == 0 || old->Cas() != cas_unique) {
          result = StoreResult::kExists;
        }
        break;
      case StoreMode::kAppend:
      case StoreMode::kPrepend: {
        if (old == nullptr) {
          result = StoreResult::kNotStored;
          break;
        }
        if (cas_unique != 0 && cas_unique != old->Cas()) {
          result = StoreResult::kExists;
          break;
        }
        uint64_t total = uint64_t{old->value_len} + item->value_len;
        if (!ItemSizeOk(key.size(), old->Flags(), total) || total > kMaxValueLength) {
          result = StoreResult::kNotStored;
          break;
        }
        Item* c = Item::Create(key, old->Flags(), old->exptime, static_cast<uint32_t>(total));
        if (c == nullptr) {
          result = StoreResult::kNotStored;
          break;
        }
        combined = ItemRef::Adopt(c);
        const Item* first = mode == StoreMode::kAppend ? old : item.get();
        const Item* second = mode == StoreMode::kAppend ? item.get() : old;
        std::memcpy(c->MutableValue(), first->Value(), first->value_len);
        std::memcpy(c->MutableValue() + first->value_len, second->Value(), second->value_len);
        publish = c;
        break;
      }
    }
    if (result == StoreResult::kStored &&
        now <= flush_horizon_.load(std::memory_order_relaxed)) {
      // Stored during the second a flush_all covers: invisible at once, as
      // in memcached. The old value (if any) goes too.
      publish->SetCas(NextCas());
      if (stored_cas != nullptr) *stored_cas = publish->Cas();
      if (old != nullptr) {
        int64_t old_charge = static_cast<int64_t>(ItemCharge(old));
        shard.bytes -= old_charge;
        ReleaseBytes(old_charge);
        doomed = ItemRef::Adopt(shard.UnlinkAt(pos, false));
      }
    } else if (result == StoreResult::kStored) {
      if (mode != StoreMode::kRestore) publish->SetCas(NextCas());
      publish->atime = AtimeAt(now);
      if (stored_cas != nullptr) *stored_cas = publish->Cas();
      int64_t charge = static_cast<int64_t>(ItemCharge(publish));
      ItemRef& owner = publish == item.get() ? item : combined;
      if (old != nullptr) {
        int64_t old_charge = static_cast<int64_t>(ItemCharge(old));
        doomed = ItemRef::Adopt(shard.ReplaceAt(pos, owner.Release(), hash));
        charge -= old_charge;
      } else {
        shard.LinkAt(pos, owner.Release(), hash, mode == StoreMode::kRestore);
      }
      published = publish;
      shard.bytes += charge;
      used_bytes_.fetch_add(charge, std::memory_order_relaxed);
    }
  }
  if (result == StoreResult::kStored &&
      used_bytes_.load(std::memory_order_relaxed) > static_cast<int64_t>(limit())) {
    EnforceLimit(ShardIndex(hash), published);
  }
  return result;
}

bool RamTier::StillCurrentAbsent(const Item& item, const std::function<bool()>& still_valid) {
  int64_t now = clock_.NowSeconds();
  MaybeRunDelayedFlush(now);
  std::string_view key = item.Key();
  uint64_t hash = common::HashKey(key);
  Shard& shard = ShardFor(hash);
  common::MutexLock lock(&shard.mu);
  Item* it = shard.Lookup(key, hash);
  if (it != nullptr && !Expired(it, now)) return false;
  return !IsFlushed(item) && now > flush_horizon_.load(std::memory_order_relaxed) &&
         still_valid();
}

bool RamTier::EvictionCandidate(uint64_t hash, size_t charge, uint64_t* victim_hash) {
  if (used_bytes_.load(std::memory_order_relaxed) + static_cast<int64_t>(charge) <=
      static_cast<int64_t>(limit())) {
    return false;
  }
  Shard& shard = *shards_[EvictionShard(ShardIndex(hash))];
  common::MutexLock lock(&shard.mu);
  const Item* victim = shard.policy->Candidate();
  if (victim == nullptr) return false;
  *victim_hash = common::HashKey(victim->Key());
  return true;
}

ItemRef RamTier::Get(std::string_view key, const uint32_t* new_exptime, bool* read_ahead) {
  int64_t now = clock_.NowSeconds();
  MaybeRunDelayedFlush(now);
  uint64_t hash = common::HashKey(key);
  Shard& shard = ShardFor(hash);
  ItemRef doomed;
  {
    common::MutexLock lock(&shard.mu);
    ItemTable::Pos pos = shard.table.Find(key, hash);
    Item* it = shard.At(pos);
    if (it == nullptr) {
      // Evicted, and not yet taken by the sink: still the key's value. A
      // plain get reads it where it is; a gat takes it back to change it.
      if (shard.transit.empty()) return {};
      if (new_exptime == nullptr) {
        auto t = shard.FindTransit(key);
        if (t == shard.transit.end() || Expired(*t, now)) return {};
        return ItemRef::Share(*t);
      }
      it = RescueLocked(shard, key, hash, now);
      if (it == nullptr) return {};
    } else if (Expired(it, now)) {
      doomed = ItemRef::Adopt(ReclaimExpiredLocked(shard, pos.slot, ReclaimBy::kCommand));
      return {};
    }
    if (new_exptime != nullptr) {
      it->exptime = *new_exptime;
      it->ssd_copy = 0;  // the SSD record has the old expiry
    }
    if (it->read_ahead) {
      it->read_ahead = 0;
      if (read_ahead != nullptr) *read_ahead = true;
    }
    BumpLocked(shard, it, now);
    return ItemRef::Share(it);
  }
}

MetaGetResult RamTier::MetaGet(std::string_view key, ItemRef vivify,
                               const std::function<bool()>* absent_elsewhere, bool bump,
                               const MetaItemFn& fn, ItemRef* out, bool* changed,
                               bool* read_ahead) {
  int64_t now = clock_.NowSeconds();
  MaybeRunDelayedFlush(now);
  uint64_t hash = common::HashKey(key);
  Shard& shard = ShardFor(hash);
  ItemRef doomed;
  MetaGetResult result = MetaGetResult::kHit;
  *changed = false;
  {
    common::MutexLock lock(&shard.mu);
    ItemTable::Pos pos = shard.table.Find(key, hash);
    Item* it = shard.At(pos);
    if (it != nullptr && Expired(it, now)) {
      doomed = ItemRef::Adopt(ReclaimExpiredLocked(shard, pos.slot, ReclaimBy::kCommand));
      it = nullptr;
      pos = shard.table.Find(key, hash);
    }
    // Evicted, and not yet taken by the sink: still the key's value, which
    // this command may change.
    if (it == nullptr && (it = RescueLocked(shard, key, hash, now)) != nullptr) {
      pos = shard.table.Find(key, hash);
    }
    if (it == nullptr && vivify) {
      if (absent_elsewhere != nullptr && !(*absent_elsewhere)()) {
        result = MetaGetResult::kElsewhere;
      } else if (now <= flush_horizon_.load(std::memory_order_relaxed)) {
        // Stored during the second a flush_all covers: invisible at once
        // (StoreImpl's rule); memcached's item would be too.
        result = MetaGetResult::kMiss;
      } else {
        it = vivify.Release();
        it->SetCas(NextCas());
        it->atime = AtimeAt(now);
        shard.LinkAt(pos, it, hash);
        const auto charge = static_cast<int64_t>(ItemCharge(it));
        shard.bytes += charge;
        used_bytes_.fetch_add(charge, std::memory_order_relaxed);
        result = MetaGetResult::kCreated;
      }
    } else if (it == nullptr) {
      result = MetaGetResult::kMiss;
    }
    if (it != nullptr) {
      const uint32_t exptime = it->exptime;
      const uint32_t win = it->win_sent;
      const bool ok = fn(it, result == MetaGetResult::kCreated);
      if (it->exptime != exptime || it->win_sent != win) {
        it->ssd_copy = 0;
        *changed = true;
      }
      if (bump && ok) BumpLocked(shard, it, now);
      if (it->read_ahead) {
        it->read_ahead = 0;
        if (read_ahead != nullptr) *read_ahead = true;
      }
      *out = ItemRef::Share(it);
    } else {
      fn(nullptr, false);
    }
  }
  if (result == MetaGetResult::kCreated &&
      used_bytes_.load(std::memory_order_relaxed) > static_cast<int64_t>(limit())) {
    EnforceLimit(ShardIndex(hash), out->get());
  }
  return result;
}

MetaDeleteResult RamTier::MetaDelete(std::string_view key, const uint64_t* cas, bool mark_stale,
                                     const uint32_t* new_exptime, bool run_due_flush) {
  int64_t now = clock_.NowSeconds();
  if (run_due_flush) MaybeRunDelayedFlush(now);
  uint64_t hash = common::HashKey(key);
  Shard& shard = ShardFor(hash);
  ItemRef doomed;
  common::MutexLock lock(&shard.mu);
  ItemTable::Pos pos = shard.table.Find(key, hash);
  Item* it = shard.At(pos);
  if (it != nullptr && Expired(it, now)) {
    doomed = ItemRef::Adopt(ReclaimExpiredLocked(shard, pos.slot, ReclaimBy::kCommand));
    return MetaDeleteResult::kNotFound;
  }
  if (it == nullptr) {
    if ((it = RescueLocked(shard, key, hash, now)) == nullptr) return MetaDeleteResult::kNotFound;
    pos = shard.table.Find(key, hash);
  }
  if (cas != nullptr && it->Cas() != *cas) return MetaDeleteResult::kExists;
  if (!mark_stale) {
    int64_t charge = static_cast<int64_t>(ItemCharge(it));
    shard.bytes -= charge;
    ReleaseBytes(charge);
    doomed = ItemRef::Adopt(shard.UnlinkAt(pos, false));
    return MetaDeleteResult::kDeleted;
  }
  // A copy, marked: readers may hold the item, whose CAS is immutable.
  Item* copy = Item::Create(key, it->Flags(), new_exptime != nullptr ? *new_exptime : it->exptime,
                            it->value_len);
  if (copy == nullptr) {
    // No memory for the copy: the key goes, which a client recomputing it
    // handles as it handles a miss.
    int64_t charge = static_cast<int64_t>(ItemCharge(it));
    shard.bytes -= charge;
    ReleaseBytes(charge);
    doomed = ItemRef::Adopt(shard.UnlinkAt(pos, false));
    return MetaDeleteResult::kDeleted;
  }
  std::memcpy(copy->MutableValue(), it->Value(), it->value_len);
  copy->SetCas(NextCas());
  copy->fetched = it->fetched;
  copy->active = it->active;
  copy->atime = it->atime;
  copy->key_binary = it->key_binary;
  copy->stale = 1;
  copy->win_sent = 0;
  const int64_t charge =
      static_cast<int64_t>(ItemCharge(copy)) - static_cast<int64_t>(ItemCharge(it));
  doomed = ItemRef::Adopt(shard.ReplaceAt(pos, copy, hash));
  shard.bytes += charge;
  used_bytes_.fetch_add(charge, std::memory_order_relaxed);
  return MetaDeleteResult::kMarkedStale;
}

bool RamTier::Touch(std::string_view key, uint32_t exptime) {
  return static_cast<bool>(Get(key, &exptime));
}

bool RamTier::Contains(std::string_view key) {
  int64_t now = clock_.NowSeconds();
  uint64_t hash = common::HashKey(key);
  Shard& shard = ShardFor(hash);
  common::MutexLock lock(&shard.mu);
  Item* it = shard.Lookup(key, hash);
  if (it == nullptr && !shard.transit.empty()) {
    auto t = shard.FindTransit(key);
    if (t != shard.transit.end()) it = *t;
  }
  return it != nullptr && !Expired(it, now);
}

void RamTier::EnsureCasAbove(uint64_t cas) {
  cas = std::min(cas, kMaxCas - 1);
  uint64_t cur = next_cas_.load(std::memory_order_relaxed);
  while (cur <= cas && !next_cas_.compare_exchange_weak(cur, cas + 1)) {
  }
}

void RamTier::CollectShard(size_t index, std::vector<ItemRef>* out) {
  int64_t now = clock_.NowSeconds();
  Shard& shard = *shards_[index];
  common::MutexLock lock(&shard.mu);
  for (size_t slot = 0; slot < shard.table.capacity(); ++slot) {
    Item* it = shard.table.At(slot);
    if (it != nullptr && !Expired(it, now)) out->push_back(ItemRef::Share(it));
  }
}

bool RamTier::ListItems(uint64_t* cursor, size_t max_items, std::vector<ListedItem>* out) {
  int64_t now = clock_.NowSeconds();
  size_t index = static_cast<size_t>(*cursor >> 32);
  size_t slot = static_cast<size_t>(*cursor & 0xffffffffu);
  size_t taken = 0;
  size_t visited = 0;  // slots, empty ones too: a sparse table is walked in steps
  while (index < shards_.size() && taken < max_items && visited < 16 * max_items) {
    Shard& shard = *shards_[index];
    {
      common::MutexLock lock(&shard.mu);
      for (; slot < shard.table.capacity() && taken < max_items && visited < 16 * max_items;
           ++slot, ++visited) {
        Item* it = shard.table.At(slot);
        if (it == nullptr || Expired(it, now)) continue;
        out->push_back(
            {ItemRef::Share(it), it->exptime, it->fetched != 0, start_unix_ + int64_t{it->atime}});
        ++taken;
      }
      if (slot < shard.table.capacity()) break;
    }
    ++index;
    slot = 0;
  }
  *cursor = (uint64_t{index} << 32) | slot;
  return index < shards_.size();
}

bool RamTier::Delete(std::string_view key, bool run_due_flush) {
  int64_t now = clock_.NowSeconds();
  if (run_due_flush) MaybeRunDelayedFlush(now);
  uint64_t hash = common::HashKey(key);
  Shard& shard = ShardFor(hash);
  ItemRef doomed;
  common::MutexLock lock(&shard.mu);
  ItemTable::Pos pos = shard.table.Find(key, hash);
  Item* it = shard.At(pos);
  if (it == nullptr) {
    // Evicted and not yet taken by the sink: it must not be.
    auto t = shard.FindTransit(key);
    if (t == shard.transit.end()) return false;
    bool live = !Expired(*t, now);
    shard.transit.erase(t);
    return live;
  }
  if (Expired(it, now)) {
    doomed = ItemRef::Adopt(ReclaimExpiredLocked(shard, pos.slot, ReclaimBy::kCommand));
    return false;
  }
  int64_t charge = static_cast<int64_t>(ItemCharge(it));
  shard.bytes -= charge;
  ReleaseBytes(charge);
  doomed = ItemRef::Adopt(shard.UnlinkAt(pos, false));
  return true;
}

DeltaResult RamTier::Delta(std::string_view key, bool incr, uint64_t delta, uint64_t* result,
                           uint64_t cas_check, const MetaItemFn* after) {
  int64_t now = clock_.NowSeconds();
  MaybeRunDelayedFlush(now);
  uint64_t hash = common::HashKey(key);
  Shard& shard = ShardFor(hash);
  ItemRef doomed;
  bool grew = false;
  const DeltaResult r = [&] {
    common::MutexLock lock(&shard.mu);
    ItemTable::Pos pos = shard.table.Find(key, hash);
    Item* it = shard.At(pos);
    if (it == nullptr) {
      // Evicted, and not yet taken by the sink: it comes back.
      it = RescueLocked(shard, key, hash, now);
      if (it == nullptr) return DeltaResult::kNotFound;
      pos = shard.table.Find(key, hash);
    } else if (Expired(it, now)) {
      doomed = ItemRef::Adopt(ReclaimExpiredLocked(shard, pos.slot, ReclaimBy::kCommand));
      return DeltaResult::kNotFound;
    }
    // memcached's safe_strtoull() on the value with its "\r\n": the digits
    // may be followed by white space (the padding of an earlier decr).
    uint64_t value = 0;
    if (it->value_len == 0) return DeltaResult::kNonNumeric;
    if (cas_check != 0 && it->Cas() != cas_check) return DeltaResult::kCasMismatch;
    if (!common::SafeStrtoull(std::string_view(it->Value(), it->value_len + 2), &value)) {
      return DeltaResult::kNonNumeric;
    }
    if (incr) {
      value += delta;
    } else {
      value = delta > value ? 0 : value - delta;
    }
    *result = value;
    char buf[24];
    auto [end, ec] = std::to_chars(buf, buf + sizeof(buf), value);
    size_t len = static_cast<size_t>(end - buf);
    shard.policy->OnHit(it);
    if (len <= it->value_len && it->refs.load(std::memory_order_acquire) == 1) {
      // Nobody else holds the item: update in place, as memcached does.
      std::memcpy(it->MutableValue(), buf, len);
      std::memset(it->MutableValue() + len, ' ', it->value_len - len);
      it->SetCas(NextCas());
      it->ssd_copy = 0;
      if (after != nullptr) (*after)(it, false);
      return DeltaResult::kOk;
    }
    Item* fresh = Item::Create(key, it->Flags(), it->exptime, static_cast<uint32_t>(len));
    if (fresh == nullptr) return DeltaResult::kNoMemory;
    std::memcpy(fresh->MutableValue(), buf, len);
    fresh->SetCas(NextCas());
    if (len <= it->value_len) {
      // Only because another reference holds the item (a reply being
      // written, which memcached has usually sent by now): the item keeps
      // what an update in place keeps.
      fresh->fetched = it->fetched;
      fresh->active = it->active;
      fresh->atime = it->atime;
      fresh->stale = it->stale;
      fresh->win_sent = it->win_sent;
      fresh->key_binary = it->key_binary;
      if (after != nullptr) (*after)(fresh, false);
    } else {
      fresh->atime = AtimeAt(now);  // a new item, as memcached's do_add_delta makes
      // memcached hands ma the old item here, with the new CAS: what ma's
      // T and N change is lost with it, the new item keeps the old expiry.
      if (after != nullptr) {
        (*after)(fresh, false);
        fresh->exptime = it->exptime;
      }
    }
    int64_t charge = static_cast<int64_t>(ItemCharge(fresh)) - static_cast<int64_t>(ItemCharge(it));
    doomed = ItemRef::Adopt(shard.ReplaceAt(pos, fresh, hash));
    shard.bytes += charge;
    used_bytes_.fetch_add(charge, std::memory_order_relaxed);
    grew = charge > 0;
    return DeltaResult::kOk;
  }();
  if (grew &&
      used_bytes_.load(std::memory_order_relaxed) > static_cast<int64_t>(limit())) {
    EnforceLimit(ShardIndex(hash));
  }
  return r;
}

void RamTier::FlushAll(int64_t at_unix) {
  int64_t now = clock_.NowSeconds();
  if (at_unix == 0) {
    pending_flush_at_.store(0, std::memory_order_relaxed);
    flush_horizon_.store(0, std::memory_order_relaxed);
  } else if (at_unix <= now) {
    pending_flush_at_.store(0, std::memory_order_relaxed);
    flush_horizon_.store(at_unix, std::memory_order_relaxed);
    FlushNow();
    if (flush_hook_) flush_hook_();
  } else {
    pending_flush_at_.store(at_unix, std::memory_order_relaxed);
  }
}

void RamTier::FlushNow() {
  // Everything stored so far becomes invisible at once; the shards are then
  // cleared one by one.
  flushed_below_cas_.store(next_cas_.load(std::memory_order_relaxed) & kMaxCas,
                           std::memory_order_release);
  std::vector<Item*> doomed;
  for (auto& shard_ptr : shards_) {
    Shard& shard = *shard_ptr;
    {
      common::MutexLock lock(&shard.mu);
      for (size_t slot = 0; slot < shard.table.capacity(); ++slot) {
        Item* it = shard.table.At(slot);
        if (it == nullptr) continue;
        it->linked = 0;
        doomed.push_back(it);
      }
      shard.table.Clear();
      shard.policy->Clear();
      ReleaseBytes(shard.bytes);
      shard.bytes = 0;
    }
    for (Item* it : doomed) ItemRef::Adopt(it).Reset();
    doomed.clear();
  }
}

void RamTier::EnforceLimit(size_t first_shard, const Item* keep) {
  std::vector<ItemRef> evicted;
  std::vector<size_t> evicted_from;  // shard of each, with a sink
  std::vector<ItemRef> expired;  // freed after the loop, never under a lock
  const size_t n = shards_.size();
  const uint64_t epoch = sink_ != nullptr ? sink_->EvictionEpoch() : 0;
  size_t empty_in_a_row = 0;
  int64_t now = clock_.NowSeconds();
  size_t idx = EvictionShard(first_shard);
  while (used_bytes_.load(std::memory_order_relaxed) > static_cast<int64_t>(limit()) &&
         empty_in_a_row < n) {
    Shard& shard = *shards_[idx];
    common::MutexLock lock(&shard.mu);
    Item* victim = shard.policy->Evict();
    if (victim == keep && victim != nullptr) {
      // The item just stored is this shard's only candidate: put it back
      // and evict elsewhere.
      shard.policy->OnInsert(victim, common::HashKey(victim->Key()));
      shard.policy->OnHit(victim);
      victim = nullptr;
    }
    if (victim == nullptr) {
      ++empty_in_a_row;
      idx = (idx + 1) % n;
      continue;
    }
    empty_in_a_row = 0;
    const ItemTable::Pos pos = shard.table.Find(victim->Key(), common::HashKey(victim->Key()));
    if (Expired(victim, now)) {
      Item* gone = ReclaimExpiredLocked(shard, pos.slot, ReclaimBy::kEviction);
      expired.push_back(ItemRef::Adopt(gone));
      continue;
    }
    shard.UnlinkAt(pos, /*via_policy_evict=*/true);
    int64_t charge = static_cast<int64_t>(ItemCharge(victim));
    shard.bytes -= charge;
    ReleaseBytes(charge);
    ++shard.evictions;
    if (!victim->fetched) ++shard.evicted_unfetched;
    if (sink_ != nullptr) {
      // Until the sink has it, the item stays the key's value (transit).
      shard.transit.push_back(victim);
      evicted_from.push_back(idx);
    }
    evicted.push_back(ItemRef::Adopt(victim));
    idx = EvictionShard(idx);
  }
  if (sink_ != nullptr && !evicted.empty()) HandOver(evicted, evicted_from, epoch);
}

void RamTier::HandOver(std::vector<ItemRef>& evicted, const std::vector<size_t>& from,
                       uint64_t epoch) {
  // The sink may drop or reorder its references; keep the batch alive until
  // the transit entries are gone.
  std::vector<const Item*> batch;
  batch.reserve(evicted.size());
  for (const ItemRef& it : evicted) batch.push_back(it.get());
  std::vector<ItemRef> keep(evicted);
  sink_->OnEvictedSince(evicted, epoch);
  for (size_t i = 0; i < batch.size(); ++i) {
    Shard& shard = *shards_[from[i]];
    common::MutexLock lock(&shard.mu);
    auto t = std::find(shard.transit.begin(), shard.transit.end(), batch[i]);
    if (t != shard.transit.end()) shard.transit.erase(t);
  }
}

bool RamTier::Evict(std::string_view key) {
  int64_t now = clock_.NowSeconds();
  uint64_t hash = common::HashKey(key);
  const size_t idx = ShardIndex(hash);
  Shard& shard = *shards_[idx];
  const uint64_t epoch = sink_ != nullptr ? sink_->EvictionEpoch() : 0;
  std::vector<ItemRef> evicted;
  std::vector<size_t> from{idx};
  {
    common::MutexLock lock(&shard.mu);
    ItemTable::Pos pos = shard.table.Find(key, hash);
    Item* it = shard.At(pos);
    if (it == nullptr || Expired(it, now)) return false;
    shard.UnlinkAt(pos, /*via_policy_evict=*/false);
    int64_t charge = static_cast<int64_t>(ItemCharge(it));
    shard.bytes -= charge;
    ReleaseBytes(charge);
    ++shard.evictions;
    if (!it->fetched) ++shard.evicted_unfetched;
    if (sink_ != nullptr) shard.transit.push_back(it);
    evicted.push_back(ItemRef::Adopt(it));
  }
  if (sink_ != nullptr) HandOver(evicted, from, epoch);
  return true;
}

bool RamTier::SetLimit(uint64_t bytes) {
  if (bytes < kMinLimit) return false;
  limit_.store(bytes, std::memory_order_relaxed);
  if (used_bytes_.load(std::memory_order_relaxed) > static_cast<int64_t>(bytes)) EnforceLimit(0);
  return true;
}

size_t RamTier::ReapExpired(size_t max_items) {
  common::MutexLock reap_lock(&reap_mu_);
  int64_t now = clock_.NowSeconds();
  MaybeRunDelayedFlush(now);
  size_t removed = 0;
  size_t scanned = 0;
  std::vector<Item*> doomed;
  size_t shards_visited = 0;
  while (scanned < max_items && shards_visited <= shards_.size()) {
    Shard& shard = *shards_[reap_shard_];
    {
      common::MutexLock lock(&shard.mu);
      // Visit a bounded run of slots per lock hold.
      size_t stop = std::min(shard.table.capacity(), reap_slot_ + 256);
      while (reap_slot_ < stop && scanned < max_items) {
        ++scanned;  // an empty slot costs a visit too
        Item* it = shard.table.At(reap_slot_);
        if (it == nullptr) {
          ++reap_slot_;
          continue;
        }
        ++scanned;
        ++shard.crawler_items_checked;
        if (!Expired(it, now)) {
          ++reap_slot_;
          continue;
        }
        // The erase may move a later item of the run into this slot, so the
        // slot is looked at again.
        doomed.push_back(ReclaimExpiredLocked(shard, reap_slot_, ReclaimBy::kCrawler));
        ++removed;
      }
      if (reap_slot_ >= shard.table.capacity()) {
        reap_slot_ = 0;
        reap_shard_ = (reap_shard_ + 1) % shards_.size();
        ++shards_visited;
      }
    }
    for (Item* it : doomed) ItemRef::Adopt(it).Reset();
    doomed.clear();
  }
  return removed;
}

RamTierStats RamTier::Stats() const {
  RamTierStats s;
  for (const auto& shard_ptr : shards_) {
    Shard& shard = *shard_ptr;
    common::MutexLock lock(&shard.mu);
    s.curr_items += shard.table.size();
    s.total_items += shard.total_items;
    s.bytes += static_cast<uint64_t>(std::max<int64_t>(0, shard.bytes));
    s.evictions += shard.evictions;
    s.evicted_unfetched += shard.evicted_unfetched;
    s.reclaimed += shard.reclaimed;
    s.expired_unfetched += shard.expired_unfetched;
    s.crawler_reclaimed += shard.crawler_reclaimed;
    s.crawler_items_checked += shard.crawler_items_checked;
    s.hash_buckets += shard.table.capacity();
    s.hash_bytes += shard.table.bytes();
  }
  s.limit_bytes = limit();
  s.released_bytes = released_bytes_.load(std::memory_order_relaxed);
  return s;
}

}  // namespace strata::tiers
