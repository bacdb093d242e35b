// RamTier: the hot tier. A sharded hash table of Items under a byte budget
// that counts every byte an item costs (its allocation, the allocator's
// header and its share of the table and queues), with a pluggable eviction
// policy per shard (S3-FIFO by default, LRU as the baseline).
//
// It implements memcached's storage semantics: set/add/replace/append/
// prepend/cas, incr/decr with memcached's in-place rules, touch, delete,
// flush_all with an optional delay, and CAS uniques that are unique across
// the whole cache. Times are absolute unix seconds (0 = never expires); the
// protocol layer converts memcached's relative/absolute exptime.
//
// Invariants:
//   - An expired or flushed item is never returned, and the memory of
//     expired items is reclaimed by ReapExpired() without waiting for
//     eviction.
//   - Bytes in use exceed the limit by at most the items being inserted
//     concurrently (eviction runs right after each insert) and the items
//     commands took back from transit (below) since the last insert.
//   - Evicted items leave through the EvictionSink, outside any lock, so a
//     lower tier can take them. Until the sink has returned, an evicted
//     item is "in transit": it is still its key's value, and every
//     operation on the key sees it (a get reads it; gat, touch, incr/decr,
//     add, replace, append, prepend and cas put a copy of it back in the
//     table first; a set or a delete drops it), so a key on its way to the
//     lower tier never looks absent. StillEvicting() tells the sink whether
//     it still is.
//   - No I/O runs under a shard lock. The only callbacks that run under
//     one are the checks given to Restore(), AddIf() and
//     StillCurrentAbsent(), on purpose (no delete of the key can come
//     between the check and the store); they may take the SSD index's
//     locks (which come after the shard locks in the lock order of
//     common/mutex.h) and nothing else. The EvictionSink and the flush hook
//     run with no shard lock held.
//
// Thread safety: every public method is safe to call concurrently from any
// thread, with no shard lock held. Each shard has its own mutex; the SSD
// log's lock comes before them (the log calls StillEvicting() and
// Delete(key, false) under it); counters are atomics.
#pragma once

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <string_view>
#include <vector>

#include "common/clock.h"
#include "common/function_ref.h"
#include "common/mutex.h"
#include "tiers/item/item.h"
#include "tiers/ram/eviction_policy.h"

namespace strata::tiers {

// Automatic sharding. Each shard runs its own eviction policy, which needs
// a few hundred items to behave like one cache, so a shard gets at least
// kShardBytes of the budget (the measurement is in bench/README.md,
// "Measurements behind the code's defaults").
inline constexpr uint64_t kShardBytes = 4ull << 20;
inline constexpr uint32_t kMaxAutoShards = 64;

struct RamTierOptions {
  uint64_t size_bytes = 256ull << 20;    // the byte budget
  uint64_t max_item_size = 1ull << 20;   // largest item, memcached's accounting
  EvictionKind eviction = EvictionKind::kS3Fifo;
  // Rounded up to a power of two. 0: kShardBytes of the initial budget per
  // shard, 1 to kMaxAutoShards shards.
  uint32_t shards = 0;
  // S3-FIFO's small-queue share of each shard. 0: 20%, or 90% when an
  // EvictionSink (the SSD tier) takes what RAM evicts. RAM is then the
  // small queue of one S3-FIFO cache over both tiers, and the SSD log its
  // main queue: a small share leaves items too little time in RAM to be
  // read a second time. 20% rather than the paper's 10% alone: a shifted
  // hot set takes over sooner, at almost no cost in miss ratio. (Figures:
  // bench/README.md, "Measurements behind the code's defaults".)
  double small_share = 0;
};

// Receives items the RAM tier evicts (not those deleted, replaced, expired
// or flushed). Called on the thread that caused the eviction, with no lock
// held. The items stay in transit (see RamTier) until it returns; it must
// keep its references to them until then.
class EvictionSink {
 public:
  virtual ~EvictionSink() = default;
  virtual void OnEvicted(std::vector<ItemRef>& items) = 0;
  // A counter the sink advances on changes that must win over evictions
  // already under way (deletes). The RAM tier reads it before it unlinks
  // victims and hands it to OnEvictedSince().
  virtual uint64_t EvictionEpoch() const { return 0; }
  virtual void OnEvictedSince(std::vector<ItemRef>& items, uint64_t /*epoch*/) {
    OnEvicted(items);
  }
};

// kRestore puts back an item read from a lower tier: like kAdd, but the
// item keeps its CAS unique and enters with one access counted.
enum class StoreMode { kSet, kAdd, kReplace, kAppend, kPrepend, kCas, kRestore };
enum class StoreResult { kStored, kNotStored, kExists, kNotFound, kTooLarge, kNoMemory };
// kCasMismatch: a meta arithmetic's CAS check failed (Delta's cas_check).
enum class DeltaResult { kOk, kNotFound, kNonNumeric, kNoMemory, kCasMismatch };

// What a meta get (MetaGet) found.
enum class MetaGetResult {
  kHit,        // the key's live item
  kCreated,    // none; the vivify item was stored in its place
  kMiss,       // none (and no vivify item, or it could not be had)
  kElsewhere,  // none, but absent_elsewhere() said a lower tier has the key
};

// What a meta delete (MetaDelete) did.
enum class MetaDeleteResult { kNotFound, kExists, kDeleted, kMarkedStale };

// Runs under a key's shard lock on its item (nullptr on a miss), with
// `created` true for an item a vivify just stored. It may read every field
// and change `exptime` and `win_sent`; it must not block or take a lock.
// Returns false to skip the access's bump (MetaGet: the command failed).
// A reference (no allocation per command): the callable must outlive the
// call it is passed to.
using MetaItemFn = common::FunctionRef<bool(Item* item, bool created)>;
enum class AllocResult { kOk, kTooLarge, kNoMemory };

struct RamTierStats {
  uint64_t curr_items = 0;
  uint64_t total_items = 0;       // items ever stored
  uint64_t bytes = 0;             // charged bytes in use
  uint64_t limit_bytes = 0;
  uint64_t evictions = 0;
  uint64_t evicted_unfetched = 0;
  uint64_t reclaimed = 0;         // expired items whose memory was taken back
  uint64_t expired_unfetched = 0;
  uint64_t crawler_reclaimed = 0; // of which by ReapExpired()
  uint64_t crawler_items_checked = 0;
  uint64_t hash_buckets = 0;      // slots of the shards' hash tables
  uint64_t hash_bytes = 0;        // bytes those slots take (5 a slot)
  uint64_t released_bytes = 0;    // charged bytes ever given back (evicted, deleted, ...)
};

class RamTier {
 public:
  RamTier(const RamTierOptions& options, const common::Clock& clock, EvictionSink* sink = nullptr);
  ~RamTier();
  RamTier(const RamTier&) = delete;
  RamTier& operator=(const RamTier&) = delete;

  // memcached's size check: header (56 bytes with CAS), key + 1, value + 2,
  // and 4 bytes of flags when non-zero must fit in max_item_size.
  bool ItemSizeOk(size_t key_len, uint32_t flags, uint64_t value_len) const;

  // Allocates an unpublished item for a store whose value the caller will
  // fill in. On failure returns an empty ref and sets *why (kTooLarge also
  // for a key longer than kMaxKeyLength).
  ItemRef Allocate(std::string_view key, uint32_t flags, uint32_t exptime, uint32_t value_len,
                   AllocResult* why);

  // Publishes `item` (from Allocate, value filled) under memcached's rules
  // for `mode`. `cas_unique` is checked for kCas. For append/prepend the
  // existing item's flags and exptime are kept. On kStored, *stored_cas (if
  // given) receives the new CAS unique.
  // Meta set extensions: for kAppend/kPrepend a non-zero `cas_unique` must
  // equal the item's (else kExists); for kCas with `set_stale`, a
  // `cas_unique` lower than the item's stores the item anyway, marked
  // stale, with the old item's expiry and win bit (memcached's CAS_STALE).
  StoreResult Store(StoreMode mode, ItemRef item, uint64_t cas_unique = 0,
                    uint64_t* stored_cas = nullptr, bool set_stale = false);

  // kRestore with a condition: `item` (read back from the SSD tier, with
  // its CAS unique) is published only if the key is absent, no flush_all
  // has passed it, and still_valid() (asked under the shard's lock, so no
  // delete of the key can come between) returns true. The policy learns of
  // it through EvictionPolicy::OnPromote().
  StoreResult Restore(ItemRef item, const std::function<bool()>& still_valid);

  // kAdd that also fails (kNotStored) when RAM has no item for the key but
  // a lower tier has it (asked under the key's shard lock, so a demotion
  // under way is either still in transit or already there): the key is
  // present. `absent_elsewhere` returns true when
  // no lower tier has the key.
  StoreResult AddIf(ItemRef item, const std::function<bool()>& absent_elsewhere,
                    uint64_t* stored_cas = nullptr);

  // For an item read from a lower tier and served without being stored:
  // true if, under the key's shard lock, RAM has no live item for the key,
  // no flush_all has passed `item`, and still_valid() returns true (the
  // same checks as Restore(), which then would have stored it).
  bool StillCurrentAbsent(const Item& item, const std::function<bool()>& still_valid);

  // If storing `charge` more bytes would make the tier evict: sets
  // *victim_hash to HashKey() of the item the tier would evict next (the
  // EvictionPolicy::Candidate() of the shard EnforceLimit() would start
  // with for `hash`) and returns true.
  // Returns false when there is room, or no candidate is known.
  bool EvictionCandidate(uint64_t hash, size_t charge, uint64_t* victim_hash);

  // Returns the live item for `key` and records a hit with the policy, or
  // an empty ref. If `new_exptime` is given the item's expiry is updated
  // first (gat/gats). An item in transit is found too (a gat puts a copy
  // of it back in the table; a plain get leaves it to the sink).
  // *read_ahead (if given) is set when the item was promoted ahead of this
  // get (Item::read_ahead, which the get clears).
  ItemRef Get(std::string_view key, const uint32_t* new_exptime = nullptr,
              bool* read_ahead = nullptr);

  // For memcached's meta get (mg): under the key's shard lock, finds the
  // live item (an item in transit goes back into the table first, as for a
  // gat); if there is none and `vivify` (an unpublished item from
  // Allocate()) is given, stores it in the key's place when
  // `absent_elsewhere` (null = always) says no lower tier has the key
  // (else kElsewhere). Then calls fn(item, created), and, if `bump`,
  // records the access as memcached's do_item_bump() does after it
  // (fetched, last access time, a policy hit). *out receives the item on
  // kHit and kCreated. *changed is set when fn changed the item's expiry
  // or win bit (its lower-tier copy no longer matches it); *read_ahead (if
  // given) when the item was promoted ahead of this command (as for Get).
  MetaGetResult MetaGet(std::string_view key, ItemRef vivify,
                        const std::function<bool()>* absent_elsewhere, bool bump,
                        const MetaItemFn& fn, ItemRef* out, bool* changed,
                        bool* read_ahead = nullptr);
  // memcached's meta delete (md): with `cas` (not null) only if the live
  // item's CAS unique equals it (else kExists); with `mark_stale` the item
  // is not removed but replaced by a copy marked stale, with its win bit
  // cleared, a new CAS unique and, if given, `new_exptime` (md I [T]).
  // `run_due_flush`: as for Delete().
  MetaDeleteResult MetaDelete(std::string_view key, const uint64_t* cas, bool mark_stale,
                              const uint32_t* new_exptime, bool run_due_flush = true);
  // The last access time an access now would record (Item::atime's scale).
  uint32_t AtimeNow() const { return AtimeAt(clock_.NowSeconds()); }

  // Updates the expiry of a live item. Returns false if there is none.
  bool Touch(std::string_view key, uint32_t exptime);

  // True if a live item with `key` is resident (no policy hit recorded),
  // in transit included.
  bool Contains(std::string_view key);
  // A new CAS unique, for an item stored elsewhere than in RAM (a large
  // item that goes straight to the SSD tier): ordered with RAM's stores and
  // flushes like theirs.
  uint64_t IssueCas() { return NextCas(); }

  // True while `item`, evicted, is in transit and still its key's value:
  // no store, delete, get or other operation on the key has come since its
  // eviction (the sink asks under its own lock before it keeps the item).
  bool StillEvicting(const Item& item);

  // Evicts the key's live item now, through the sink, as the eviction
  // policy would (for tests and tools). False if there is none.
  bool Evict(std::string_view key);

  // True if a flush_all has taken effect since `item` was stored.
  bool IsFlushed(const Item& item) const {
    return item.Cas() < flushed_below_cas_.load(std::memory_order_acquire);
  }

  // Makes every CAS unique issued from now on larger than `cas` (after
  // items with persisted uniques were recovered); `cas` is capped at
  // kMaxCas - 1.
  void EnsureCasAbove(uint64_t cas);
  // The largest CAS unique issued so far (0: none), for the next start.
  uint64_t HighestCasIssued() const {
    return (next_cas_.load(std::memory_order_relaxed) - 1) & kMaxCas;
  }

  // Calls fn(item) for every live item, a shard at a time, outside the
  // shard's lock (shutdown demotion).
  template <typename Fn>
  void ForEachItem(Fn&& fn) {
    std::vector<ItemRef> batch;
    for (size_t i = 0; i < shards_.size(); ++i) {
      CollectShard(i, &batch);
      for (ItemRef& it : batch) fn(it);
      batch.clear();
    }
  }

  // A live item and the metadata the tier owns, read under its shard lock.
  struct ListedItem {
    ItemRef item;
    uint32_t exptime = 0;
    bool fetched = false;
    int64_t last_access_unix = 0;  // Item::atime as unix seconds
  };
  // For listings (stats cachedump, lru_crawler metadump): appends up to
  // `max_items` live items to *out, walking the shards' tables from
  // *cursor (0 to start), and advances *cursor. Returns false once the walk
  // is complete (a call may list fewer items, even none, and return true).
  // Holds one shard lock at a time, for at most `max_items` items and
  // 16 * `max_items` table slots. Items stored, moved or removed during a
  // walk may be missed or listed twice (memcached's crawler makes no
  // snapshot either).
  bool ListItems(uint64_t* cursor, size_t max_items, std::vector<ListedItem>* out);

  // Called (outside any lock) when a flush takes effect, immediate or
  // delayed, so a lower tier can flush too.
  void SetFlushHook(std::function<void()> hook) { flush_hook_ = std::move(hook); }

  // Removes a live item (one in transit too). Returns false if there is
  // none. With
  // `run_due_flush` false a delayed flush_all whose time has come is not
  // started here (a caller holding the SSD log's lock must not run the
  // flush hook; it calls RunDueFlush() first).
  bool Delete(std::string_view key, bool run_due_flush = true);
  // Starts a delayed flush_all whose time has come, if any.
  void RunDueFlush() { MaybeRunDelayedFlush(clock_.NowSeconds()); }

  // incr/decr: the value must be a decimal uint64 (memcached's strtoull
  // rules); incr wraps at 2^64, decr stops at 0. When the result is no longer
  // than the old value and nobody else holds the item, the value is updated
  // in place and padded with spaces (as memcached does); otherwise a new item
  // of the exact length replaces it (kNoMemory if it cannot be allocated).
  // *result receives the new number.
  // Meta arithmetic (ma): with a non-zero `cas_check` the item's CAS unique
  // must equal it (else kCasMismatch, checked after the value is found
  // non-empty, as memcached does); on kOk `after` (if given) runs under the
  // shard's lock on the resulting item, as a MetaItemFn with created false.
  DeltaResult Delta(std::string_view key, bool incr, uint64_t delta, uint64_t* result,
                    uint64_t cas_check = 0, const MetaItemFn* after = nullptr);

  // Invalidates every item stored at or before second `at_unix` (memcached's
  // oldest_live): if that second is now or past, at once, and items stored
  // during the rest of that second are invisible too; if it is in the
  // future, when it arrives. at_unix < now flushes now and nothing more.
  // at_unix == 0 cancels a pending delayed flush and flushes nothing
  // (memcached's oldest_live = 0).
  void FlushAll(int64_t at_unix);

  // Changes the byte budget, evicting down to it. Returns false if `bytes`
  // is below what the tier can run with (1 MiB).
  bool SetLimit(uint64_t bytes);
  uint64_t limit() const { return limit_.load(std::memory_order_relaxed); }
  // Charged bytes given back so far (evicted, deleted, replaced, expired,
  // flushed); cheap, for deciding when to return memory to the OS.
  uint64_t released_bytes() const { return released_bytes_.load(std::memory_order_relaxed); }
  uint64_t max_item_size() const { return options_.max_item_size; }
  EvictionKind eviction() const { return options_.eviction; }

  // Scans about `max_items` items and table slots (continuing where the
  // previous call stopped) and removes the expired items. Returns items
  // removed.
  size_t ReapExpired(size_t max_items) EXCLUDES(reap_mu_);

  RamTierStats Stats() const;

 private:
  struct Shard;
  void CollectShard(size_t index, std::vector<ItemRef>* out);
  StoreResult StoreImpl(StoreMode mode, ItemRef item, uint64_t cas_unique, uint64_t* stored_cas,
                        const std::function<bool()>* still_valid, bool set_stale = false);
  // Item::atime for unix second `now`: seconds since the tier started.
  uint32_t AtimeAt(int64_t now) const {
    return static_cast<uint32_t>(std::clamp<int64_t>(now - start_unix_, 0, kMaxAtime));
  }
  // memcached's do_item_bump() with its segmented LRU: the first fetch sets
  // `fetched`, the second sets `active` and the last access time, later
  // ones change neither (memcached's LRU maintainer clears ITEM_ACTIVE when
  // it moves an item between its queues; strata has no such queues, so
  // `active` stays). Also records a hit with the policy. A first fetch
  // clears `ssd_copy`: the SSD record keeps the fetched bit, and must be
  // written again to say it. REQUIRES(shard.mu), said on the definition.
  void BumpLocked(Shard& shard, Item* it, int64_t now);

  size_t ShardIndex(uint64_t hash) const;
  Shard& ShardFor(uint64_t hash);
  // The shard eviction starts with when `writing_shard` stores: that shard
  // while it holds at least its share of the budget, otherwise the shard
  // holding the most bytes, so no shard is drained below its share for the
  // others.
  size_t EvictionShard(size_t writing_shard) const;
  // Expired, or older than the last flush (items a flush is still clearing
  // from other shards are already invisible).
  bool Expired(const Item* item, int64_t now) const {
    return (item->exptime != 0 && static_cast<int64_t>(item->exptime) <= now) ||
           item->Cas() < flushed_below_cas_.load(std::memory_order_acquire);
  }
  // The pending delayed flush, run by whichever call first sees it due.
  void MaybeRunDelayedFlush(int64_t now);
  void FlushNow();
  // Takes `bytes` off the usage and counts them as released.
  void ReleaseBytes(int64_t bytes);
  // Who found an expired item: a command on its key, EnforceLimit() (the
  // policy's Evict() has already taken it out of the policy) or
  // ReapExpired() (the crawler, counted in crawler_reclaimed too).
  enum class ReclaimBy { kCommand, kEviction, kCrawler };
  // Under the shard's lock: removes the expired item in table slot `slot`,
  // takes its charge off the shard's and the tier's bytes, and counts it as
  // reclaimed (and expired_unfetched if no get read it). Returns its
  // reference, for the caller to drop outside the lock. Other positions
  // from ItemTable::Find() are stale afterwards. REQUIRES(shard.mu), said
  // on the definition (Shard is incomplete here).
  Item* ReclaimExpiredLocked(Shard& shard, size_t slot, ReclaimBy by);
  // Evicts until usage is within the limit, starting with `first_shard`;
  // never evicts `keep` (the item just stored).
  void EnforceLimit(size_t first_shard, const Item* keep = nullptr);
  // Gives `evicted` (in transit, from shards `from`) to the sink, then ends
  // their transit.
  void HandOver(std::vector<ItemRef>& evicted, const std::vector<size_t>& from, uint64_t epoch);
  // Under the shard's lock, when its table has no item for `key`: if the
  // key's item is in transit and live, a copy of it (the sink may be
  // reading the original) goes back into the table, and the original's
  // transit ends. Returns the copy, or nullptr. Like a promotion, but it
  // does not evict: the next insert does.
  Item* RescueLocked(Shard& shard, std::string_view key, uint64_t hash, int64_t now);
  // Items keep 48 bits of CAS (kMaxCas). After 2^48 stores the counter
  // wraps to 1 (0 means "not stored"); the flush threshold, which earlier
  // uniques no longer compare with, starts over at 0 (a flush clears the
  // shards at once, so it only guards stores racing with that flush).
  uint64_t NextCas() {
    uint64_t cas = next_cas_.fetch_add(1, std::memory_order_relaxed) & kMaxCas;
    if (cas != 0) return cas;
    flushed_below_cas_.store(0, std::memory_order_release);
    return next_cas_.fetch_add(1, std::memory_order_relaxed) & kMaxCas;
  }

  RamTierOptions options_;
  const common::Clock& clock_;
  const int64_t start_unix_;  // Item::atime counts from here
  EvictionSink* sink_;
  std::vector<std::unique_ptr<Shard>> shards_;
  size_t shard_shift_;
  std::atomic<uint64_t> limit_;
  std::atomic<int64_t> used_bytes_{0};
  std::atomic<uint64_t> released_bytes_{0};
  std::atomic<uint64_t> next_cas_{1};
  std::atomic<uint64_t> flushed_below_cas_{0};  // items with a lower CAS are flushed
  std::atomic<int64_t> pending_flush_at_{0};
  std::atomic<int64_t> flush_horizon_{0};  // items stored at or before it are invisible
  std::function<void()> flush_hook_;
  // First in the lock order (common/mutex.h): a flush it starts takes the
  // SSD log's lock through the flush hook, then the shard locks.
  common::Mutex reap_mu_;
  size_t reap_shard_ GUARDED_BY(reap_mu_) = 0;
  size_t reap_slot_ GUARDED_BY(reap_mu_) = 0;
};

}  // namespace strata::tiers
