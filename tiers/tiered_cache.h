// TieredCache: the one facade over the RAM tier and the (optional) SSD tier.
//
// RAM evictions are demoted to the SSD log (EvictionSink) when the
// admission policy (hotness.h) lets them, judged by a frequency sketch fed
// by every get, hit or miss (not by sets: a cache-aside client's get that
// misses and the set that fills it are one access); a promoted item
// that has not changed keeps its SSD record valid, so evicting it again
// costs no write. Every write that lands in RAM (store, incr/decr, touch,
// gat) invalidates the key's SSD record at once (the log appends a
// tombstone), deletes remove it from both tiers, and flush_all flushes
// both, so the newest acknowledged write always wins, across restarts too.
// A demotion whose item is no longer its key's value (RamTier::
// StillEvicting(): the key was written, deleted or read since the
// eviction) is skipped; the check is atomic with the append. Until then
// the evicted item stays visible in RAM, so a key moving between the tiers
// is always in one of them.
//
// Reads and writes other than `set` that find the key only on SSD must
// first Promote() it (an asynchronous read) and then run against RAM; the
// proxy does that, keeping each connection's commands in order.
//
// Thread safety: every method may be called from any thread, except that
// Promote()'s queue must belong to the calling thread.
#pragma once

#include <atomic>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "common/clock.h"
#include "tiers/policy/hotness.h"
#include "tiers/ram/ram_tier.h"
#include "tiers/ssd/ssd_log.h"

namespace strata::tiers {

// How TieredCache::Promote() treats what it read.
struct PromoteOptions {
  // For a get that has not run yet; the item is marked so that get
  // counts as an SSD hit (Get's *read_ahead).
  bool read_ahead = false;
  // Plain gets: the item goes to RAM only if WorthPromoting() its key;
  // otherwise the record read is the answer if it is still the key's
  // newest version (checked as a promotion would be), and RAM is left to
  // the items of its probation queue.
  bool only_if_hot = false;
  // gat/gats: the item enters RAM with this expiry (its SSD record is
  // invalidated), or RAM's newer version of the key is touched instead.
  // Must stay valid until `done` is called.
  const uint32_t* new_exptime = nullptr;
};

class TieredCache final : public EvictionSink {
 public:
  // Owns its RAM tier. `ssd` may be null (RAM only); it must outlive the
  // cache. `admission` decides which evictions are written to flash.
  TieredCache(const RamTierOptions& ram_options, const common::Clock& clock, SsdLog* ssd,
              const AdmissionOptions& admission = {});
  // A RAM-only view over an existing RAM tier, which must outlive it.
  explicit TieredCache(RamTier& ram);
  ~TieredCache() override;
  TieredCache(const TieredCache&) = delete;
  TieredCache& operator=(const TieredCache&) = delete;

  RamTier& ram() { return ram_; }
  SsdLog* ssd() { return ssd_; }
  // The frequency sketch (null without an SSD tier).
  FrequencySketch* sketch() { return sketch_.get(); }

  // True when the key is not in RAM (nor in transit there) but the SSD
  // index has it: Promote() before anything but a set or delete.
  bool NeedsPromotion(std::string_view key);

  // Reads the key from SSD and puts it back in RAM with its CAS unique
  // (unless RAM got the key meanwhile, which then wins). done->OnSsdRead()
  // receives the item to answer with (RAM-resident, or served from its
  // record; see PromoteOptions) or an empty ref.
  void Promote(std::string_view key, IoQueue& queue, SsdReadDone* done,
               const PromoteOptions& options = {});
  // True if an SSD hit on the key, for an item that costs RAM `charge`
  // bytes, should put it in RAM (TinyLFU's rule, with a floor): the sketch
  // has seen the key read at least AdmissionOptions::promote_threshold
  // times lately, and more often than the item RAM would evict to make
  // room (RamTier::EvictionCandidate()), if RAM is full.
  bool WorthPromoting(uint64_t hash, size_t charge);
  // The checks RestoreFromSsd() makes, without storing: true if `item`, read
  // from `at`, may be served as the key's value.
  bool StillCurrent(const Item& item, uint64_t hash, const SsdLocation& at, uint64_t epoch);

  // Items whose RAM charge exceeds this skip RAM (0: none; see
  // AdmissionOptions::large_item_percent).
  uint64_t large_item_bytes() const { return large_item_bytes_; }

  // The writes below take an optional `ticket`: with an SSD tier it is
  // raised to the log position that must be durable before the write is
  // acknowledged (SsdLog::AckTicket: the key's invalidation, or one that
  // still covers it), and left alone when nothing is pending.
  // An add fails if the SSD tier has the key (checked atomically with RAM).
  // `stored_cas` and `set_stale`: RamTier::Store's (meta set).
  // A plain set (kSet, no CAS, no stale mark) of an item larger than
  // large_item_bytes() goes straight to the SSD tier: the key's RAM copy
  // and SSD record are removed as by a delete (its tombstone is what
  // *ticket waits for), and the item is appended to the log (blocking the
  // caller while its pieces are written); kNoMemory if the log could not
  // take it.
  StoreResult Store(StoreMode mode, ItemRef item, uint64_t cas_unique = 0,
                    uint64_t* ticket = nullptr, uint64_t* stored_cas = nullptr,
                    bool set_stale = false);
  // Puts `item`, read from the SSD record at `at`, back in RAM unless the
  // key is in RAM, was deleted since `epoch` (EvictionEpoch() before the
  // read), or has a newer record. True if it was stored.
  bool RestoreFromSsd(ItemRef& item, uint64_t hash, const SsdLocation& at, uint64_t epoch);
  bool Delete(std::string_view key, uint64_t* ticket = nullptr);
  // `cas_check` and `after`: RamTier::Delta's (meta arithmetic).
  DeltaResult Delta(std::string_view key, bool incr, uint64_t delta, uint64_t* result,
                    uint64_t* ticket = nullptr, uint64_t cas_check = 0,
                    const MetaItemFn* after = nullptr);
  // Meta get: RamTier::MetaGet on the RAM tier (the caller promotes a key
  // only the SSD has first), fed to the frequency sketch as a get. A vivify
  // is refused (kElsewhere) while the SSD tier has the key. An item whose
  // expiry or win bit changed, or that was created, invalidates the key's
  // SSD record (so a later read from SSD cannot hand out the win again, or
  // bring back the old expiry).
  // *read_ahead: RamTier::MetaGet's.
  MetaGetResult MetaGet(std::string_view key, ItemRef vivify, bool bump, const MetaItemFn& fn,
                        ItemRef* out, uint64_t* ticket = nullptr, bool* read_ahead = nullptr);
  // Meta delete: RamTier::MetaDelete; a delete removes the key from both
  // tiers (as Delete()), a stale mark invalidates its SSD record.
  MetaDeleteResult MetaDelete(std::string_view key, const uint64_t* cas, bool mark_stale,
                              const uint32_t* new_exptime, uint64_t* ticket = nullptr);
  bool Touch(std::string_view key, uint32_t exptime, uint64_t* ticket = nullptr);
  // RAM lookup; with `new_exptime` (gat) the SSD record is invalidated.
  // *read_ahead is set if a read-ahead promoted the item for this get.
  // With `on_ssd`, a RAM miss is resolved: *on_ssd says whether the SSD
  // tier has the key (then Promote() it: that answers with RAM's item if
  // RAM got the key meanwhile), and an empty ref with *on_ssd false is a
  // miss in both tiers.
  ItemRef Get(std::string_view key, const uint32_t* new_exptime = nullptr,
              bool* read_ahead = nullptr, uint64_t* ticket = nullptr, bool* on_ssd = nullptr);
  // The ticket a write of `key` would wait for now (0: none).
  uint64_t AckTicket(std::string_view key) const;
  // RamTier::FlushAll's rules; with an SSD tier the flush reaches it too
  // (a delayed one is recorded there at once).
  void FlushAll(int64_t at_unix, uint64_t* ticket = nullptr);

  // Writes every RAM item that has no valid SSD record to the SSD log and
  // waits for the device (graceful shutdown). Returns items written.
  size_t DemoteAll();

  void OnEvicted(std::vector<ItemRef>& items) override { OnEvictedSince(items, 0); }
  uint64_t EvictionEpoch() const override {
    return delete_epoch_.load(std::memory_order_acquire);
  }
  // Demotes `items` that are still their key's value (RamTier::
  // StillEvicting(): a delete or a write that raced with the eviction
  // wins). `epoch` is not needed for that.
  void OnEvictedSince(std::vector<ItemRef>& items, uint64_t epoch) override;

  // The upstream pool's near cache (proxy/exec/near_cache.h). A value
  // fetched from the pool is kept locally only if no local write, delete
  // or flush_all of its key came after the fetch was sent: the fetch notes
  // FillEpoch() before it is sent, and FillFromUpstream() checks it.
  uint64_t FillEpoch() const { return delete_epoch_.load(std::memory_order_acquire); }
  // True if a Delete() of `key` (or of a key sharing its slot in the table
  // of recent deletes) or a FlushAll() came after `epoch`.
  bool ChangedSince(std::string_view key, uint64_t epoch) const;
  // Puts `item` (fetched from the pool, with the pool's CAS unique) in RAM
  // unless RAM has the key or ChangedSince(key, epoch) (asked under the RAM
  // shard's lock, as a promotion asks). True if it was stored.
  bool FillFromUpstream(ItemRef item, uint64_t epoch);

  // The keys of the live RAM items, hottest first by the frequency sketch
  // (for a warm restart: warm_restart.h).
  std::vector<std::string> HotKeys();

  struct Counters {
    uint64_t large_to_ssd = 0;         // sets written straight to SSD (large items)
    uint64_t large_evictions_queued = 0;  // evictions of large items written in the background
    uint64_t promotions = 0;           // SSD reads put back in RAM
    uint64_t admitted = 0;             // evictions written to flash
    uint64_t rejected_cold = 0;        // evictions the admission policy called cold
    uint64_t rejected_budget = 0;      // evictions over the write budget
    // The mean sketch estimate (0..15) of the records region reclaim dropped
    // lately, which admission `reaccessed` compares evicted items with.
    double victim_estimate = 0;
  };
  Counters counters() const;
  // The flash write budget in bytes per second (0 = none).
  uint64_t write_budget() const { return write_budget_; }

 private:
  class PromoteOp;
  // Store() of a large item: straight to the SSD tier.
  StoreResult StoreToSsd(ItemRef item, uint64_t* ticket, uint64_t* stored_cas);
  // Removes the key's SSD record (a tombstone) and raises *ticket.
  void Invalidate(std::string_view key, uint64_t* ticket);
  void RaiseTicket(uint64_t hash, uint64_t* ticket) const;
  // A promotion's read completed with `item` from `at`: puts it in RAM (or
  // not) as `options` say and returns the item to answer with.
  ItemRef FinishPromotion(ItemRef item, uint64_t hash, const SsdLocation& at, uint64_t epoch,
                          const PromoteOptions& options);
  // A promotion's answer when RAM has the key after all: RAM's item, and
  // for a gat (`new_exptime`) that item touched and the key's SSD record
  // invalidated.
  ItemRef GetFromRam(std::string_view key, const uint32_t* new_exptime);

  std::unique_ptr<RamTier> owned_ram_;
  RamTier& ram_;
  SsdLog* ssd_;
  const common::Clock* clock_ = nullptr;  // with an SSD tier
  std::unique_ptr<FrequencySketch> sketch_;    // with an SSD tier: fed by gets
  std::unique_ptr<AdmissionPolicy> admission_;
  uint64_t write_budget_ = 0;
  uint32_t promote_threshold_ = 0;
  uint64_t large_item_bytes_ = 0;  // 0: no item skips RAM
  std::atomic<uint64_t> large_to_ssd_{0};
  std::atomic<uint64_t> large_evictions_queued_{0};
  // Deletes stamped by key hash in a lossy table of epochs (the newest
  // delete of any key in the slot): a delete that lands between an item's
  // eviction from RAM and its append to SSD, during a promotion's read, or
  // during an upstream fetch, must win. Kept with or without an SSD tier.
  bool DeletedSince(uint64_t hash, uint64_t epoch) const;
  // No delete since `epoch` and the index still points at `at`: asked under
  // the RAM shard's lock by a promotion and by a read served without one.
  bool RecordStillNewest(uint64_t hash, const SsdLocation& at, uint64_t epoch) const;
  void StampDelete(uint64_t hash);
  static constexpr size_t kRecentDeletes = 1 << 14;
  std::unique_ptr<std::atomic<uint64_t>[]> recent_deletes_;
  std::atomic<uint64_t> delete_epoch_{0};
  std::atomic<uint64_t> flush_epoch_{0};  // the epoch of the last FlushAll()
  std::atomic<uint64_t> promotions_{0};
  std::atomic<uint64_t> admitted_{0};
  std::atomic<uint64_t> rejected_cold_{0};
  std::atomic<uint64_t> rejected_budget_{0};
};

}  // namespace strata::tiers
