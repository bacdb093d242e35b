#include "proxy/exec/near_cache.h"

#include <algorithm>
#include <utility>
#include <vector>

#include "common/hash.h"
#include "proxy/upstream/meta_request.h"

namespace strata::proxy {

// One mg in flight, and the gets waiting for it.
class NearCache::FetchOp final : public upstream::Request {
 public:
  FetchOp(NearCache& nc, std::string_view key, std::string head, bool joinable)
      : Request(upstream::RequestOp::kGet, std::move(head)),
        nc_(nc),
        key_(key),
        epoch_(nc.cache_.FillEpoch()),
        joinable_(joinable) {}

  uint64_t epoch() const { return epoch_; }
  void AddWaiter(FetchDone* done) { waiters_.push_back(done); }

  char* ValueBuffer(const upstream::MetaReply& reply) override {
    if (reply.value_len > tiers::kMaxValueLength) return nullptr;
    tiers::AllocResult why;
    item_ = nc_.cache_.ram().Allocate(key_, reply.flags, 0, static_cast<uint32_t>(reply.value_len),
                                      &why);
    return item_ ? item_->MutableValue() : nullptr;
  }

  void OnReply(upstream::MetaReply& reply) override {
    if (joinable_) {
      auto it = nc_.fetches_.find(key_);
      if (it != nc_.fetches_.end() && it->second == this) nc_.fetches_.erase(it);
    }
    const bool failed =
        reply.kind == upstream::ReplyKind::kFailed || reply.kind == upstream::ReplyKind::kError;
    // memcached hands a win token to any mg of a stale item; a get is no
    // meta client that would recache it, so the token goes back.
    if (reply.won) nc_.ReturnWin(key_, reply.cas);
    const bool leased = reply.won || reply.stale || reply.win_sent;
    tiers::ItemRef result;
    if (reply.kind == upstream::ReplyKind::kValue && reply.value_taken && item_ &&
        reply.cas <= tiers::kMaxCas) {
      item_->SetCas(reply.cas);
      result = std::move(item_);
      nc_.stats_.Add(Counter::kUpstreamHits);
      // Kept locally for at most near_cache_ttl, never past the upstream
      // expiry; a gat's value is not kept (its local copy is dropped), nor
      // one the pool marked stale or whose win token is out (the pool's
      // next answer for it differs).
      if (leased) {
        nc_.stats_.Add(Counter::kUpstreamNotKept);
      } else if (joinable_ && nc_.ttl_s_ > 0 && reply.ttl != 0) {
        const int64_t now = nc_.clock_.NowSeconds();
        int64_t until = now + nc_.ttl_s_;
        if (reply.ttl > 0) until = std::min(until, now + reply.ttl);
        result->exptime = static_cast<uint32_t>(until);
        if (nc_.cache_.FillFromUpstream(result, epoch_)) nc_.stats_.Add(Counter::kUpstreamFills);
      }
    } else if (reply.kind == upstream::ReplyKind::kValue) {
      // No local memory for it (or a CAS unique wider than strata keeps):
      // answered as a miss.
      nc_.stats_.Add(Counter::kUpstreamDropped);
    } else if (failed) {
      nc_.stats_.Add(Counter::kUpstreamFailures);
    } else {
      nc_.stats_.Add(Counter::kUpstreamMisses);
    }
    item_.Reset();
    std::vector<FetchDone*> waiters = std::move(waiters_);
    delete this;
    for (FetchDone* w : waiters) w->OnFetched(result, failed);
  }

 private:
  NearCache& nc_;
  std::string key_;
  uint64_t epoch_;  // TieredCache::FillEpoch() before it was sent
  bool joinable_;
  tiers::ItemRef item_;  // the value being read
  std::vector<FetchDone*> waiters_;
};

namespace {

// One server's flush_all of a forwarded flush.
class FlushOp final : public upstream::Request {
 public:
  struct Shared {
    size_t left;
    bool all_ok = true;
    std::function<void(bool)> done;
  };
  FlushOp(std::shared_ptr<Shared> shared, int64_t delay)
      : Request(upstream::RequestOp::kFlush, upstream::FlushAllRequest(delay)),
        shared_(std::move(shared)) {}
  void OnReply(upstream::MetaReply& reply) override {
    std::shared_ptr<Shared> shared = std::move(shared_);
    delete this;
    if (reply.kind != upstream::ReplyKind::kOk) shared->all_ok = false;
    if (--shared->left == 0) shared->done(shared->all_ok);
  }

 private:
  std::shared_ptr<Shared> shared_;
};

}  // namespace

// Completes one fetch ahead (the table may have forgotten it meanwhile).
class Prefetches::Done final : public FetchDone {
 public:
  Done(std::shared_ptr<Prefetches> table, std::string_view key, uint64_t id)
      : table_(std::move(table)), key_(key), id_(id) {}
  void OnFetched(tiers::ItemRef item, bool /*failed*/) override {
    auto it = table_->entries_.find(key_);
    if (it != table_->entries_.end() && it->second.id == id_) {
      it->second.ready = true;
      it->second.item = std::move(item);
    }
    delete this;
  }

 private:
  std::shared_ptr<Prefetches> table_;
  std::string key_;
  uint64_t id_;
};

bool Prefetches::Start(NearCache& near, std::string_view key) {
  if (entries_.size() >= kMaxEntries) return false;
  auto [it, added] = entries_.try_emplace(std::string(key));
  if (!added) return false;
  it->second.id = next_id_++;
  it->second.epoch = near.cache().FillEpoch();
  near.Fetch(key, new Done(shared_from_this(), key, it->second.id));
  return true;
}

bool Prefetches::Take(std::string_view key, const tiers::TieredCache& cache,
                      tiers::ItemRef* item) {
  if (entries_.empty()) return false;
  auto it = entries_.find(std::string(key));
  if (it == entries_.end()) return false;
  const bool usable = it->second.ready && !cache.ChangedSince(key, it->second.epoch);
  if (usable) *item = std::move(it->second.item);
  entries_.erase(it);
  return usable;
}

void Prefetches::Forget(std::string_view key) {
  if (!entries_.empty()) entries_.erase(std::string(key));
}

NearCache::NearCache(const UpstreamContext& upstream, upstream::Pool& pool,
                     tiers::TieredCache& cache, const common::Clock& clock, WorkerStats& stats)
    : pool_(pool),
      cache_(cache),
      clock_(clock),
      stats_(stats),
      ttl_s_(upstream.near_cache_ttl_s) {}

NearCache::~NearCache() = default;

void NearCache::Fetch(std::string_view key, FetchDone* done) {
  auto it = fetches_.find(std::string(key));
  if (it != fetches_.end() && !cache_.ChangedSince(key, it->second->epoch())) {
    it->second->AddWaiter(done);
    stats_.Add(Counter::kUpstreamCoalesced);
    return;
  }
  auto* op = new FetchOp(*this, key, upstream::MetaGetRequest(key), /*joinable=*/true);
  op->AddWaiter(done);
  // Replaces a fetch this pod's own write has passed: that one still
  // answers its own waiters.
  fetches_[std::string(key)] = op;
  stats_.Add(Counter::kUpstreamFetches);
  pool_.Send(key, common::HashKey(key), op);
}

void NearCache::FetchTouch(std::string_view key, int64_t exptime, FetchDone* done) {
  auto* op = new FetchOp(*this, key, upstream::MetaGetRequest(key, &exptime), /*joinable=*/false);
  op->AddWaiter(done);
  stats_.Add(Counter::kUpstreamFetches);
  pool_.Send(key, common::HashKey(key), op);
}

void NearCache::Send(std::string_view key, upstream::Request* req) {
  pool_.Send(key, common::HashKey(key), req);
}

namespace {

// A request whose reply nobody waits for (a delete, a win given back).
class DropOp final : public upstream::Request {
 public:
  explicit DropOp(std::string_view key)
      : Request(upstream::RequestOp::kDelete, upstream::MetaDeleteRequest(key)) {}
  DropOp(upstream::RequestOp op, std::string head) : Request(op, std::move(head)) {}
  void OnReply(upstream::MetaReply&) override { delete this; }
};

}  // namespace

void NearCache::DropInPool(std::string_view key) { Send(key, new DropOp(key)); }

void NearCache::ReturnWin(std::string_view key, uint64_t cas) {
  stats_.Add(Counter::kUpstreamWinsReturned);
  Send(key, new DropOp(upstream::RequestOp::kDelete, upstream::MetaReturnWinRequest(key, cas)));
}

void NearCache::FlushAll(int64_t delay, std::function<void(bool)> done) {
  if (pool_.size() == 0) {  // no member (yet): the pool cannot be flushed
    done(false);
    return;
  }
  auto shared = std::make_shared<FlushOp::Shared>();
  shared->left = pool_.size();
  shared->done = std::move(done);
  for (size_t i = 0; i < pool_.size(); ++i) pool_.SendTo(i, 0, new FlushOp(shared, delay));
}

}  // namespace strata::proxy
