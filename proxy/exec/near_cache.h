// NearCache: one worker's side of the upstream pool: the local tiers as a
// near cache in front of the fleet's shared memcached servers.
//
// - Reads: a get that misses RAM and SSD is fetched from the key's server
//   (`mg <key> v f c t`). Gets of a key whose fetch is in flight on this
//   worker join it (one upstream request), unless this pod wrote, deleted
//   or flushed the key since that fetch was sent (then they send their
//   own: a client never reads a value older than its own write). A value
//   fetched is kept in the local tiers for at most upstream.near_cache_ttl
//   and never past its upstream expiry, with the upstream's CAS unique, and
//   only if no local write, delete or flush of its key came after the fetch
//   was sent (TieredCache::FillFromUpstream()). near_cache_ttl 0 keeps
//   nothing: pure routing.
// - Writes (set, add, replace, append, prepend, cas, incr, decr, touch,
//   delete, gat) go to the key's server and are answered once it has
//   answered; the local copy is dropped before the reply leaves (a delete
//   of it, whose SSD invalidation the reply waits for), so the next get
//   fetches the value the server now has.
// - A request that gets no reply (connection failure, timeout) is a miss
//   for a get and `SERVER_ERROR upstream unavailable` for a write.
//
// Thread safety: one NearCache per worker thread; not shared. The fills
// and drops go through TieredCache, which is thread-safe.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <functional>

#include "proxy/shared/server_context.h"
#include "proxy/shared/worker_stats.h"
#include "proxy/upstream/pool.h"
#include "tiers/tiered_cache.h"

namespace strata::proxy {

// Told when a fetch is done.
class FetchDone {
 public:
  // `item`: the value (empty: the server has none, or it could not be
  // had). `failed`: no reply came.
  virtual void OnFetched(tiers::ItemRef item, bool failed) = 0;

 protected:
  ~FetchDone() = default;
};

class NearCache;

// Values fetched ahead for gets a connection has buffered behind the
// command it waits for (Connection::ReadAhead()), so that a pipeline of
// gets costs one batch of requests per server, not one round trip each. A
// get takes its key's value from here only if no local write, delete or
// flush of the key came after the fetch ahead was sent (the same rule as
// joining a fetch); otherwise it fetches again.
//
// Thread safety: one per connection, on its worker's thread.
class Prefetches : public std::enable_shared_from_this<Prefetches> {
 public:
  // Fetches ahead kept at once (as many as a read-ahead scan starts); more
  // are not started.
  static constexpr size_t kMaxEntries = 64;

  // Starts fetching `key` ahead unless it already is (or the table is
  // full); true if it did.
  bool Start(NearCache& near, std::string_view key);
  // For a get about to fetch `key`: true, with *item (empty: a miss), when
  // a fetch ahead of it has completed and is still current. Forgets the
  // key either way.
  bool Take(std::string_view key, const tiers::TieredCache& cache, tiers::ItemRef* item);
  // A get found `key` locally (a fetch ahead may have filled it): its
  // entry, if any, is not needed.
  void Forget(std::string_view key);
  bool empty() const { return entries_.empty(); }

 private:
  class Done;
  struct Entry {
    uint64_t id = 0;
    uint64_t epoch = 0;  // TieredCache::FillEpoch() when it was started
    bool ready = false;
    tiers::ItemRef item;
  };
  std::unordered_map<std::string, Entry> entries_;
  uint64_t next_id_ = 1;
};

class NearCache {
 public:
  NearCache(const UpstreamContext& upstream, upstream::Pool& pool, tiers::TieredCache& cache,
            const common::Clock& clock, WorkerStats& stats);
  ~NearCache();
  NearCache(const NearCache&) = delete;
  NearCache& operator=(const NearCache&) = delete;

  // Fetches `key` (get, gets); `done` is told once, maybe before this
  // returns (when the pool is closing).
  void Fetch(std::string_view key, FetchDone* done);
  // gat/gats: fetches `key` and sets its expiry upstream (never joined,
  // never kept locally: the local copy is dropped when it answers).
  void FetchTouch(std::string_view key, int64_t exptime, FetchDone* done);
  // Sends a write to `key`'s server; the request's OnReply() answers.
  void Send(std::string_view key, upstream::Request* req);
  // A set strata refused (too large, no memory): the pool's old value goes
  // too, as memcached drops it, with no reply awaited (the key's later
  // requests use the same connection, so they come after it).
  void DropInPool(std::string_view key);
  // Gives back a win token the pool handed a classic get or touch (an mg
  // of an item marked stale wins it; upstream::MetaReturnWinRequest), so
  // the meta client that recaches the item can win it; no reply awaited.
  void ReturnWin(std::string_view key, uint64_t cas);
  // Sends `flush_all [delay]` to every server; `done` is told once all
  // have answered (true: every one said OK).
  void FlushAll(int64_t delay, std::function<void(bool)> done);

  bool keeps_values() const { return ttl_s_ > 0; }
  tiers::TieredCache& cache() { return cache_; }

 private:
  class FetchOp;
  friend class FetchOp;

  upstream::Pool& pool_;
  tiers::TieredCache& cache_;
  const common::Clock& clock_;
  WorkerStats& stats_;
  const uint32_t ttl_s_;
  // Fetches in flight by key (plain gets only), for joining.
  std::unordered_map<std::string, FetchOp*> fetches_;
};

}  // namespace strata::proxy
