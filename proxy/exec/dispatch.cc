#include "proxy/exec/dispatch.h"

#include <algorithm>
#include <charconv>
#include <cstring>
#include <string>
#include <vector>

#include "common/units.h"
#include "proxy/stats/stats_commands.h"
#include "proxy/upstream/meta_request.h"

namespace strata::proxy {
namespace {

constexpr int64_t kRealtimeMaxDelta = 60 * 60 * 24 * 30;  // memcached's REALTIME_MAXDELTA
// memcached's process_started is its start time minus ITEM_UPDATE_INTERVAL
// (60 s) minus 2.
constexpr int64_t kProcessStartedSlack = 62;

char* PutU64(char* p, uint64_t v) { return std::to_chars(p, p + 20, v).ptr; }

// memcached's uriencode(): bytes other than letters, digits and "-._~" as
// %XX.
void AppendUriEncoded(std::string_view key, std::string* out) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  for (char c : key) {
    auto u = static_cast<unsigned char>(c);
    if ((u >= '0' && u <= '9') || (u >= 'a' && u <= 'z') || (u >= 'A' && u <= 'Z') || c == '-' ||
        c == '.' || c == '_' || c == '~') {
      out->push_back(c);
    } else {
      out->push_back('%');
      out->push_back(kHex[u >> 4]);
      out->push_back(kHex[u & 15]);
    }
  }
}

// One line of `lru_crawler metadump` (crawler.c's crawler_metadump_eval).
void AppendMetadumpLine(const tiers::RamTier::ListedItem& listed, std::string* out) {
  const tiers::Item& item = *listed.item;
  char buf[24];
  auto num = [&](uint64_t v) {
    out->append(buf, static_cast<size_t>(std::to_chars(buf, buf + sizeof(buf), v).ptr - buf));
  };
  out->append("key=");
  AppendUriEncoded(item.Key(), out);
  out->append(" exp=");
  if (listed.exptime == 0) {
    out->append("-1");
  } else {
    num(listed.exptime);
  }
  out->append(" la=");
  num(static_cast<uint64_t>(listed.last_access_unix));
  out->append(" cas=");
  num(item.Cas());
  out->append(listed.fetched ? " fetch=yes" : " fetch=no");
  out->append(" cls=1 size=");
  num(MemcachedItemSize(item));
  out->append("\n");
}

}  // namespace

namespace {

// Keys looked up per get batch when an SSD tier may have to be read.
constexpr size_t kGetBatch = 64;
// Promotions a command makes of its key before it runs against RAM anyway
// (each one lost its item to another worker's eviction before it could run).
constexpr uint32_t kMaxPromoteAttempts = 8;

// The connection memory cap is reached (IoWaiter::MemoryFull).
bool MemoryFull(const AsyncState* async) {
  return async != nullptr && async->waiter != nullptr && async->waiter->MemoryFull(*async);
}

// Completes one slot of a get batch.
class SlotRead final : public tiers::SsdReadDone {
 public:
  SlotRead(AsyncState* async, size_t index) : async_(async), index_(index) {}
  void OnSsdRead(tiers::ItemRef item) override {
    AsyncState* async = async_;
    AsyncState::Slot& slot = async->slots[index_];
    slot.from_ssd = static_cast<bool>(item);
    slot.item = std::move(item);
    delete this;
    async->OneDone();
  }

 private:
  AsyncState* async_;
  size_t index_;
};

// Completes the promotion a write waits for.
class PromoteWait final : public tiers::SsdReadDone {
 public:
  explicit PromoteWait(AsyncState* async) : async_(async) {}
  void OnSsdRead(tiers::ItemRef item) override {
    // Let go of the item before the command runs: incr/decr rewrite a
    // value in place only when nobody else holds the item (memcached's rule).
    item.Reset();
    AsyncState* async = async_;
    delete this;
    async->OneDone();
  }

 private:
  AsyncState* async_;
};

// Completes one slot of a get batch from the upstream pool.
class SlotFetch final : public FetchDone {
 public:
  SlotFetch(AsyncState* async, size_t index) : async_(async), index_(index) {}
  void OnFetched(tiers::ItemRef item, bool /*failed*/) override {
    AsyncState* async = async_;
    async->slots[index_].item = std::move(item);
    delete this;
    async->OneDone();
  }

 private:
  AsyncState* async_;
  size_t index_;
};

// A write forwarded to the pool; its reply goes to AsyncState::forwarded.
class ForwardOp final : public upstream::Request {
 public:
  ForwardOp(AsyncState* async, upstream::RequestOp op, std::string head, bool relay)
      : Request(op, std::move(head)), async_(async), relay_(relay) {}
  char* ValueBuffer(const upstream::MetaReply& reply) override {
    // An ma's number (at most 20 digits) or a relayed mg's value (at most
    // a value strata could hold); anything longer is dropped.
    if (reply.value_len > (relay_ ? tiers::kMaxValueLength : 20)) return nullptr;
    async_->forwarded.value.resize(reply.value_len);
    return async_->forwarded.value.data();
  }
  bool KeepsLine() const override { return relay_; }
  void OnReply(upstream::MetaReply& reply) override {
    AsyncState* async = async_;
    async->forwarded.answered = true;
    async->forwarded.kind = reply.kind;
    async->forwarded.marked = reply.won || reply.stale || reply.win_sent;
    async->forwarded.won = reply.won;
    async->forwarded.cas = reply.cas;
    if (reply.kind == upstream::ReplyKind::kValue && !reply.value_taken) {
      async->forwarded.kind = upstream::ReplyKind::kFailed;
    }
    async->forwarded.line = std::move(reply.line);
    delete this;
    async->OneDone();
  }

 private:
  AsyncState* async_;
  bool relay_;
};

}  // namespace

Dispatcher::Dispatcher(ServerContext& ctx, WorkerStats& stats)
    : ctx_(ctx),
      stats_(stats),
      ram_only_(ctx.cache == nullptr ? std::make_unique<tiers::TieredCache>(*ctx.tier) : nullptr),
      cache_(ctx.cache != nullptr ? *ctx.cache : *ram_only_),
      stats_commands_(ctx, cache_) {}

bool Dispatcher::PromoteFirst(AsyncState* async, std::string_view key,
                              AsyncState::Waiting why) {
  if (async == nullptr || async->io == nullptr) return false;
  // Until RAM has the key: a promotion that completes puts it there, but
  // another worker may evict it again before this command runs (then it
  // is on SSD again and is promoted again, a bounded number of times).
  while (cache_.NeedsPromotion(key) && async->promote_attempts < kMaxPromoteAttempts) {
    ++async->promote_attempts;
    // A read that completes at once (the record was still in the log's
    // buffer) does not make the command wait.
    if (async->WaitFor(why, [&] { cache_.Promote(key, *async->io, new PromoteWait(async)); })) {
      return true;
    }
  }
  return false;
}

Dispatcher::LookedAgain Dispatcher::LookAgain(AsyncState* async, std::string_view key,
                                              AsyncState::Waiting why) {
  if (async == nullptr || async->io == nullptr) return LookedAgain::kGone;  // RAM only
  if (async->moved_retries >= kMaxPromoteAttempts) return LookedAgain::kGone;
  ++async->moved_retries;
  if (cache_.ram().Contains(key)) return LookedAgain::kInRam;
  if (PromoteFirst(async, key, why)) return LookedAgain::kPromoting;
  // The promotion completed at once (its record was still in the log's
  // buffer), or another connection's did, or there is none to make.
  return cache_.ram().Contains(key) ? LookedAgain::kInRam : LookedAgain::kGone;
}

bool Dispatcher::Forward(AsyncState* async, std::string_view key, upstream::RequestOp op,
                         std::string head, tiers::ItemRef body, AsyncState::Waiting why,
                         bool relay, bool quiet) {
  if (async->forwarded.sent) return false;
  async->forwarded = {};
  async->forwarded.sent = true;
  auto* req = new ForwardOp(async, op, std::move(head), relay);
  if (body) req->set_body(std::move(body));
  if (quiet) req->set_until_mn();
  // A reply may come at once (the pool is closing).
  return async->WaitFor(why, [&] { async->near->Send(key, req); });
}

AsyncState::Forwarded Dispatcher::TakeAnswer(AsyncState* async, std::string_view key) {
  AsyncState::Forwarded f = std::move(async->forwarded);
  async->forwarded = {};
  // The pool has the write (or may have it, when no reply came): the local
  // copy goes before the reply leaves, and the next get fetches the
  // server's value.
  cache_.Delete(key, Ticket(async));
  return f;
}

upstream::ReplyKind Dispatcher::TakeForwarded(AsyncState* async, std::string_view key,
                                              std::string* error_line) {
  AsyncState::Forwarded f = TakeAnswer(async, key);
  if (f.kind == upstream::ReplyKind::kError) {
    *error_line = std::move(f.line);
  } else if (f.kind == upstream::ReplyKind::kFailed) {
    *error_line = kUpstreamUnavailable;
  } else if (f.kind == upstream::ReplyKind::kValue) {
    *error_line = std::move(f.value);  // an ma's number
  }
  return f.kind;
}

uint64_t* Dispatcher::Ticket(AsyncState* async) {
  return async != nullptr && async->io != nullptr ? &async->ack_ticket : nullptr;
}

bool Dispatcher::ReadAhead(std::string_view key, tiers::IoQueue& io, tiers::SsdReadDone* done) {
  // Read-ahead promotes whatever the sketch says: the item must wait in RAM
  // for its get. Gated as plain gets are, it would read almost nothing ahead
  // under uniform gets (every key is cold), and fewer reads would be in
  // flight (bench/README.md has the ssd_bench.py figure).
  if (!cache_.NeedsPromotion(key)) return false;
  stats_.Add(Counter::kSsdReadAheads);
  cache_.Promote(key, io, done, {.read_ahead = true});
  return true;
}

bool Dispatcher::Prefetch(std::string_view key, NearCache& near, Prefetches& prefetches) {
  if (cache_.ram().Contains(key) || cache_.NeedsPromotion(key)) return false;
  if (prefetches.Start(near, key)) stats_.Add(Counter::kUpstreamPrefetches);
  return true;
}

Outcome Dispatcher::Resume(Command& cmd, OutputQueue& out, PendingStore* store,
                           AsyncState* async) {
  AsyncState::Waiting why = async->waiting;
  async->waiting = AsyncState::Waiting::kNothing;
  Outcome o = Outcome::kDone;
  async->resumed = true;
  switch (why) {
    case AsyncState::Waiting::kGetBatch:
      async->batch_ready = true;
      o = ContinueGet(cmd, out, async);
      break;
    case AsyncState::Waiting::kStore:
      o = CompleteStore(*store, true, out, async);
      break;
    case AsyncState::Waiting::kCommand:
      o = Execute(cmd, out, store, async);
      break;
    case AsyncState::Waiting::kNothing:
      break;
  }
  async->resumed = false;
  return o;
}

uint32_t Dispatcher::AbsoluteExptime(int32_t exptime) const {
  int64_t e = exptime < 0 ? kRealtimeMaxDelta + 1 : exptime;
  if (e == 0) return 0;
  int64_t now = ctx_.clock->NowSeconds();
  if (e > kRealtimeMaxDelta) return e <= now ? 1 : static_cast<uint32_t>(e);  // absolute
  return static_cast<uint32_t>(now + e);
}

void Dispatcher::Reply(OutputQueue& out, bool noreply, std::string_view line) {
  if (noreply) return;
  out.AppendLine(line);
}

Outcome Dispatcher::Execute(Command& cmd, OutputQueue& out, PendingStore* store,
                            AsyncState* async) {
  if (async != nullptr && !async->resumed) {  // a new command
    async->moved_retries = 0;
    async->promote_attempts = 0;
    async->forwarded = {};
  }
  tiers::RamTier& tier = cache_.ram();
  NearCache* near = async != nullptr ? async->near : nullptr;
  if (near != nullptr && (cmd.type == CommandType::kMetaDelete ||
                          cmd.type == CommandType::kMetaArithmetic ||
                          cmd.type == CommandType::kMetaDebug ||
                          (cmd.type == CommandType::kMetaGet && async->forwarded.sent))) {
    return RelayMeta(cmd, out, async);  // an mg: its local lookup missed
  }
  switch (cmd.type) {
    case CommandType::kError:
      Reply(out, cmd.noreply, cmd.reply);
      if (cmd.swallow) {  // a refused ms: its data block is read and dropped
        store->type = CommandType::kMetaSet;
        store->item.Reset();
        store->remaining = uint64_t{cmd.value_len} + 2;
        return Outcome::kReadData;
      }
      return Outcome::kDone;

    case CommandType::kMetaGet:
      return MetaGet(cmd, out, async);
    case CommandType::kMetaSet:
      return MetaSet(cmd, out, store, async);
    case CommandType::kMetaDelete:
      return MetaDelete(cmd, out, async);
    case CommandType::kMetaArithmetic:
      return MetaArithmetic(cmd, out, async);
    case CommandType::kMetaDebug:
      return MetaDebug(cmd, out, async);

    case CommandType::kGet:
    case CommandType::kGets:
    case CommandType::kGat:
    case CommandType::kGats:
      return ContinueGet(cmd, out, async);

    case CommandType::kSet:
    case CommandType::kAdd:
    case CommandType::kReplace:
    case CommandType::kAppend:
    case CommandType::kPrepend:
    case CommandType::kCas: {
      ctx_.prefix_stats.RecordSet(cmd.key);
      store->type = cmd.type;
      store->noreply = cmd.noreply;
      store->cas_unique = cmd.cas_unique;
      store->exptime = cmd.exptime;
      store->remaining = uint64_t{cmd.value_len} + 2;
      tiers::AllocResult why;
      store->item = tier.Allocate(cmd.key, cmd.flags, AbsoluteExptime(cmd.exptime),
                                  cmd.value_len, &why);
      if (!store->item) {
        if (why == tiers::AllocResult::kTooLarge) {
          Reply(out, cmd.noreply, "SERVER_ERROR object too large for cache");
          stats_.Add(Counter::kStoreTooLarge);
        } else {
          Reply(out, cmd.noreply, "SERVER_ERROR out of memory storing object");
          stats_.Add(Counter::kStoreNoMemory);
        }
        // A failed set must not leave the old value readable, here or in
        // the pool.
        if (cmd.type == CommandType::kSet) {
          cache_.Delete(cmd.key, Ticket(async));
          if (near != nullptr) near->DropInPool(cmd.key);
        }
      }
      return Outcome::kReadData;
    }

    case CommandType::kDelete:
      if (near != nullptr) {
        if (Forward(async, cmd.key, upstream::RequestOp::kDelete,
                    upstream::MetaDeleteRequest(cmd.key), {}, AsyncState::Waiting::kCommand)) {
          return Outcome::kWaitIo;
        }
        ctx_.prefix_stats.RecordDelete(cmd.key);
        std::string line;
        switch (TakeForwarded(async, cmd.key, &line)) {
          case upstream::ReplyKind::kHit:
            stats_.Add(Counter::kDeleteHits);
            Reply(out, cmd.noreply, "DELETED");
            break;
          case upstream::ReplyKind::kNotFound:
            stats_.Add(Counter::kDeleteMisses);
            Reply(out, cmd.noreply, "NOT_FOUND");
            break;
          default:
            Reply(out, cmd.noreply, line.empty() ? kUpstreamUnavailable : line);
            break;
        }
        return Outcome::kDone;
      }
      ctx_.prefix_stats.RecordDelete(cmd.key);
      if (cache_.Delete(cmd.key, Ticket(async))) {
        stats_.Add(Counter::kDeleteHits);
        Reply(out, cmd.noreply, "DELETED");
      } else {
        stats_.Add(Counter::kDeleteMisses);
        Reply(out, cmd.noreply, "NOT_FOUND");
      }
      return Outcome::kDone;

    case CommandType::kIncr:
    case CommandType::kDecr: {
      bool incr = cmd.type == CommandType::kIncr;
      if (near != nullptr) {
        if (Forward(async, cmd.key, upstream::RequestOp::kArith,
                    upstream::MetaArithRequest(cmd.key, incr, cmd.delta), {},
                    AsyncState::Waiting::kCommand)) {
          return Outcome::kWaitIo;
        }
        std::string line;
        switch (TakeForwarded(async, cmd.key, &line)) {
          case upstream::ReplyKind::kValue:
            stats_.Add(incr ? Counter::kIncrHits : Counter::kDecrHits);
            Reply(out, cmd.noreply, line);
            break;
          case upstream::ReplyKind::kNotFound:
            stats_.Add(incr ? Counter::kIncrMisses : Counter::kDecrMisses);
            Reply(out, cmd.noreply, "NOT_FOUND");
            break;
          default:
            Reply(out, cmd.noreply, line.empty() ? kUpstreamUnavailable : line);
            break;
        }
        return Outcome::kDone;
      }
      if (PromoteFirst(async, cmd.key, AsyncState::Waiting::kCommand)) return Outcome::kWaitIo;
      uint64_t value = 0;
      tiers::DeltaResult result;
      for (;;) {
        result = cache_.Delta(cmd.key, incr, cmd.delta, &value, Ticket(async));
        if (result != tiers::DeltaResult::kNotFound) break;
        LookedAgain again = LookAgain(async, cmd.key, AsyncState::Waiting::kCommand);
        if (again == LookedAgain::kPromoting) return Outcome::kWaitIo;
        if (again == LookedAgain::kGone) break;
      }
      switch (result) {
        case tiers::DeltaResult::kOk: {
          stats_.Add(incr ? Counter::kIncrHits : Counter::kDecrHits);
          char buf[24];
          Reply(out, cmd.noreply, std::string_view(buf, static_cast<size_t>(PutU64(buf, value) - buf)));
          break;
        }
        case tiers::DeltaResult::kNotFound:
          stats_.Add(incr ? Counter::kIncrMisses : Counter::kDecrMisses);
          Reply(out, cmd.noreply, "NOT_FOUND");
          break;
        case tiers::DeltaResult::kNonNumeric:
          Reply(out, cmd.noreply, "CLIENT_ERROR cannot increment or decrement non-numeric value");
          break;
        case tiers::DeltaResult::kNoMemory:
          Reply(out, cmd.noreply, "SERVER_ERROR out of memory");
          break;
        case tiers::DeltaResult::kCasMismatch:  // no CAS was given
          break;
      }
      return Outcome::kDone;
    }

    case CommandType::kTouch: {
      if (near != nullptr) {
        if (Forward(async, cmd.key, upstream::RequestOp::kTouch,
                    upstream::MetaTouchRequest(cmd.key, cmd.exptime), {},
                    AsyncState::Waiting::kCommand)) {
          return Outcome::kWaitIo;
        }
        if (async->forwarded.won) near->ReturnWin(cmd.key, async->forwarded.cas);
        std::string line;
        upstream::ReplyKind kind = TakeForwarded(async, cmd.key, &line);
        stats_.Add(Counter::kCmdTouch);
        if (kind == upstream::ReplyKind::kHit) {
          stats_.Add(Counter::kTouchHits);
          Reply(out, cmd.noreply, "TOUCHED");
        } else if (kind == upstream::ReplyKind::kMiss) {
          stats_.Add(Counter::kTouchMisses);
          Reply(out, cmd.noreply, "NOT_FOUND");
        } else {
          Reply(out, cmd.noreply, line.empty() ? kUpstreamUnavailable : line);
        }
        return Outcome::kDone;
      }
      if (PromoteFirst(async, cmd.key, AsyncState::Waiting::kCommand)) return Outcome::kWaitIo;
      bool touched;
      for (;;) {
        touched = cache_.Touch(cmd.key, AbsoluteExptime(cmd.exptime), Ticket(async));
        if (touched) break;
        LookedAgain again = LookAgain(async, cmd.key, AsyncState::Waiting::kCommand);
        if (again == LookedAgain::kPromoting) return Outcome::kWaitIo;
        if (again == LookedAgain::kGone) break;
      }
      if (!touched) {
        stats_.Add(Counter::kCmdTouch);
        stats_.Add(Counter::kTouchMisses);
        Reply(out, cmd.noreply, "NOT_FOUND");
      } else {
        stats_.Add(Counter::kCmdTouch);
        stats_.Add(Counter::kTouchHits);
        Reply(out, cmd.noreply, "TOUCHED");
      }
      return Outcome::kDone;
    }

    case CommandType::kFlushAll: {
      bool forwarded_ok = true;
      if (near != nullptr && ctx_.upstream->forward_flush) {
        // upstream.forward_flush: every server first, then the local tiers.
        if (!async->forwarded.sent) {
          async->forwarded = {};
          async->forwarded.sent = true;
          const int64_t delay = cmd.has_exptime ? cmd.exptime : -1;
          if (async->WaitFor(AsyncState::Waiting::kCommand, [&] {
                near->FlushAll(delay, [async](bool ok) {
                  async->forwarded.answered = true;
                  async->forwarded.kind =
                      ok ? upstream::ReplyKind::kOk : upstream::ReplyKind::kFailed;
                  async->OneDone();
                });
              })) {
            return Outcome::kWaitIo;
          }
        }
        forwarded_ok = async->forwarded.kind == upstream::ReplyKind::kOk;
        async->forwarded = {};
      }
      stats_.Add(Counter::kCmdFlush);
      // memcached's oldest_live: now - 1 for an immediate flush (items stored
      // later in this second survive), realtime(exptime) - 1 for a delay. An
      // absolute time before the process started makes oldest_live 0, which
      // cancels any pending flush and flushes nothing.
      int64_t now = ctx_.clock->NowSeconds();
      int64_t at = now - 1;
      if (cmd.has_exptime && cmd.exptime > 0) {
        int64_t e = cmd.exptime;
        if (e <= kRealtimeMaxDelta) {
          at = now + e - 1;
        } else if (e <= ctx_.started_unix - kProcessStartedSlack) {
          at = 0;
        } else {
          at = e - 1;
        }
      }
      cache_.FlushAll(at, Ticket(async));
      Reply(out, cmd.noreply, forwarded_ok ? std::string_view("OK") : kUpstreamUnavailable);
      return Outcome::kDone;
    }

    case CommandType::kVersion:
      Reply(out, false, std::string("VERSION ") + kVersion);
      return Outcome::kDone;

    case CommandType::kVerbosity:
      ctx_.verbosity.store(cmd.number > 2 ? 2 : cmd.number, std::memory_order_relaxed);
      Reply(out, cmd.noreply, "OK");
      return Outcome::kDone;

    case CommandType::kQuit:
      return Outcome::kClose;

    case CommandType::kMetaNoop:
      Reply(out, false, "MN");
      return Outcome::kDone;

    case CommandType::kCacheMemlimit:
      if (cmd.number < 8) {
        Reply(out, cmd.noreply, "MEMLIMIT_TOO_SMALL cannot set maxbytes to less than 8m");
      } else if (cmd.number > 1000000000) {
        Reply(out, cmd.noreply, "MEMLIMIT_ADJUST_FAILED input value is megabytes not bytes");
      } else if (tier.SetLimit(uint64_t{cmd.number} << 20)) {
        Reply(out, cmd.noreply, "OK");
      } else {
        Reply(out, cmd.noreply, "MEMLIMIT_ADJUST_FAILED out of bounds or unable to adjust");
      }
      return Outcome::kDone;

    case CommandType::kShutdown:
      if (!ctx_.options.enable_shutdown) {
        Reply(out, false, "ERROR: shutdown not enabled");
        return Outcome::kDone;
      }
      if (cmd.nargs == 0 || (cmd.nargs == 1 && cmd.args[0] == "graceful")) {
        if (ctx_.request_shutdown) ctx_.request_shutdown();
        return Outcome::kClose;
      }
      Reply(out, false, "CLIENT_ERROR invalid shutdown mode");
      return Outcome::kDone;

    case CommandType::kStats:
      stats_commands_.Run(cmd, out);
      return Outcome::kDone;

    case CommandType::kFixedReply:
      Reply(out, cmd.noreply, cmd.reply);
      return Outcome::kDone;

    case CommandType::kLruCrawler:
      return LruCrawler(cmd, out);
  }
  return Outcome::kDone;
}

Outcome Dispatcher::LruCrawler(Command& cmd, OutputQueue& out) {
  // proto_text.c's process_lru_crawler_command, in its order of checks.
  switch (cmd.crawler) {
    case CrawlerOp::kEnable:
      // memcached refuses to start a crawler that runs.
      Reply(out, false,
            ctx_.lru_crawler.exchange(true) ? "ERROR failed to start lru crawler thread" : "OK");
      return Outcome::kDone;
    case CrawlerOp::kDisable:
      ctx_.lru_crawler.store(false);
      Reply(out, false, "OK");
      return Outcome::kDone;
    case CrawlerOp::kCrawl:
    case CrawlerOp::kMetadump:
      break;
    case CrawlerOp::kNone:
      Reply(out, false, "ERROR");
      return Outcome::kDone;
  }
  if (!ctx_.lru_crawler.load()) {
    Reply(out, false, "CLIENT_ERROR lru crawler disabled");
    return Outcome::kDone;
  }
  if (cmd.crawler == CrawlerOp::kCrawl) {
    // The reaper already walks the RAM tier for expired items all the time.
    Reply(out, false, cmd.reply.empty() ? std::string_view("OK") : cmd.reply);
    return Outcome::kDone;
  }
  if (!out.empty()) {
    // memcached hands the connection to its crawler thread, which it cannot
    // do with replies still queued.
    Reply(out, false, "ERROR cannot pipeline other commands before metadump");
    return Outcome::kDone;
  }
  if (!cmd.reply.empty()) {
    Reply(out, false, cmd.reply);
    return Outcome::kDone;
  }
  cmd.delta = 0;  // the walk's cursor
  return ContinueMetadump(cmd, out);
}

Outcome Dispatcher::ContinueMetadump(Command& cmd, OutputQueue& out) {
  tiers::RamTier& tier = cache_.ram();
  std::vector<tiers::RamTier::ListedItem> batch;
  bool more = cmd.number == 1;  // the list selects strata's class 1
  while (more) {
    batch.clear();
    more = tier.ListItems(&cmd.delta, kListBatch, &batch);
    std::string text;
    for (const tiers::RamTier::ListedItem& listed : batch) {
      AppendMetadumpLine(listed, &text);
    }
    out.Append(text);
    if (more && out.bytes() > ctx_.options.output_high_watermark) {
      stats_.Add(Counter::kConnYields);
      return Outcome::kPaused;
    }
  }
  out.Append("END\r\n");
  return Outcome::kDone;
}

void Dispatcher::AppendValue(OutputQueue& out, std::string_view key, const tiers::ItemRef& item,
                             bool with_cas) {
  char line[6 + kMaxKeyLength + 1 + 10 + 1 + 10 + 1 + 20 + 2];
  char* p = line;
  std::memcpy(p, "VALUE ", 6);
  p += 6;
  std::memcpy(p, key.data(), key.size());
  p += key.size();
  *p++ = ' ';
  p = PutU64(p, item->Flags());
  *p++ = ' ';
  p = PutU64(p, item->value_len);
  if (with_cas) {
    *p++ = ' ';
    p = PutU64(p, item->Cas());
  }
  *p++ = '\r';
  *p++ = '\n';
  out.Append(std::string_view(line, static_cast<size_t>(p - line)));
  out.AppendValue(item);
}

Outcome Dispatcher::ContinueGet(Command& cmd, OutputQueue& out, AsyncState* async) {
  if (cmd.type == CommandType::kLruCrawler) return ContinueMetadump(cmd, out);
  tiers::TieredCache& tier = cache_;
  const bool touch = cmd.type == CommandType::kGat || cmd.type == CommandType::kGats;
  const bool with_cas = cmd.type == CommandType::kGets || cmd.type == CommandType::kGats;
  const uint32_t exptime = touch ? AbsoluteExptime(cmd.exptime) : 0;
  const uint32_t* new_exptime = touch ? &exptime : nullptr;
  std::string_view key;

  auto count = [&](std::string_view k, bool hit, bool asked_ssd = false, bool from_ssd = false,
                   bool from_upstream = false) {
    ctx_.prefix_stats.RecordGet(k, hit);
    stats_.Add(hit && !from_ssd && !from_upstream ? Counter::kRamHits : Counter::kRamMisses);
    if (asked_ssd) stats_.Add(from_ssd ? Counter::kSsdHits : Counter::kSsdMisses);
    if (touch) {
      stats_.Add(Counter::kCmdTouch);
      stats_.Add(hit ? Counter::kTouchHits : Counter::kTouchMisses);
    } else {
      stats_.Add(Counter::kCmdGet);
      stats_.Add(hit ? Counter::kGetHits : Counter::kGetMisses);
    }
  };

  if (cmd.bad_key_index >= 0) {
    // memcached looks up the keys before the bad one, then discards the
    // reply and sends only the error.
    for (int64_t i = 0; i < cmd.bad_key_index && NextKey(&cmd.keys, &key); ++i) {
      count(key, static_cast<bool>(tier.Get(key, new_exptime, nullptr, Ticket(async))));
    }
    Reply(out, false, "CLIENT_ERROR bad command line format");
    return Outcome::kDone;
  }

  NearCache* near = async != nullptr ? async->near : nullptr;
  if (async != nullptr && (async->io != nullptr || near != nullptr)) {
    // With an SSD tier or an upstream pool: batches of keys, the SSD reads
    // of a batch together, then the pool's fetches of what both tiers
    // missed (one write per server), the batch's replies in request order
    // once they are all back.
    for (;;) {
      if (!async->batch_ready) {
        async->slots.clear();
        async->gat_exptime = exptime;  // outlives this call, for the reads
        async->pending = 1;  // held until every read is issued
        async->waiting = AsyncState::Waiting::kNothing;
        for (size_t n = 0;
             n < kGetBatch && (n == 0 || !MemoryFull(async)) && NextKey(&cmd.keys, &key); ++n) {
          size_t index = async->slots.size();
          if (touch && near != nullptr) {
            // gat/gats go to the pool (which owns the expiry); the local
            // copy is dropped when it answers.
            async->slots.push_back({key, {}, false, false});
            continue;
          }
          bool read_ahead = false;
          bool on_ssd = false;
          async->slots.push_back(
              {key, tier.Get(key, new_exptime, &read_ahead, Ticket(async), &on_ssd), false, false});
          if (read_ahead) {
            // A read-ahead brought it from SSD for this get.
            async->slots[index].asked_ssd = async->slots[index].from_ssd = true;
          } else if (!async->slots[index].item && on_ssd) {
            async->slots[index].asked_ssd = true;
            ++async->pending;
            // A plain get leaves a cold key's item on SSD; gat puts it in RAM
            // with its new expiry.
            tier.Promote(key, *async->io, new SlotRead(async, index),
                         {.only_if_hot = !touch,
                          .new_exptime = touch ? &async->gat_exptime : nullptr});
          }
        }
        if (--async->pending > 0) {
          async->waiting = AsyncState::Waiting::kGetBatch;
          return Outcome::kWaitIo;
        }
        async->batch_ready = true;
      }
      if (near != nullptr && !async->upstream_asked) {
        async->upstream_asked = true;
        async->pending = 1;  // held until every fetch is sent
        async->waiting = AsyncState::Waiting::kNothing;
        for (size_t i = 0; i < async->slots.size(); ++i) {
          AsyncState::Slot& slot = async->slots[i];
          if (slot.item) {
            // Found locally (perhaps filled by its own fetch ahead).
            if (async->prefetches != nullptr) async->prefetches->Forget(slot.key);
            continue;
          }
          slot.asked_upstream = true;
          if (!touch && async->prefetches != nullptr &&
              async->prefetches->Take(slot.key, cache_, &slot.item)) {
            continue;  // fetched ahead
          }
          ++async->pending;
          if (touch) {
            near->FetchTouch(slot.key, cmd.exptime, new SlotFetch(async, i));
          } else {
            near->Fetch(slot.key, new SlotFetch(async, i));
          }
        }
        if (--async->pending > 0) {
          async->waiting = AsyncState::Waiting::kGetBatch;
          return Outcome::kWaitIo;
        }
      }
      for (AsyncState::Slot& slot : async->slots) {
        tiers::ItemRef item = std::move(slot.item);
        // A gat that brought its key back from SSD invalidated the record.
        if (touch && slot.from_ssd) {
          async->ack_ticket = std::max(async->ack_ticket, tier.AckTicket(slot.key));
        }
        // A gat through the pool changed the key's expiry there: the local
        // copy goes.
        if (touch && slot.asked_upstream) cache_.Delete(slot.key, Ticket(async));
        count(slot.key, static_cast<bool>(item), slot.asked_ssd, slot.from_ssd && item,
              slot.asked_upstream);
        if (item) AppendValue(out, slot.key, item, with_cas);
      }
      async->slots.clear();
      async->batch_ready = false;
      async->upstream_asked = false;
      std::string_view rest = cmd.keys;
      std::string_view next;
      if (!NextKey(&rest, &next)) break;
      if (out.bytes() > ctx_.options.output_high_watermark || MemoryFull(async)) {
        stats_.Add(Counter::kConnYields);
        return Outcome::kPaused;
      }
    }
    out.Append("END\r\n");
    return Outcome::kDone;
  }

  while (NextKey(&cmd.keys, &key)) {
    tiers::ItemRef item = tier.Get(key, new_exptime);
    count(key, static_cast<bool>(item));
    if (item) AppendValue(out, key, item, with_cas);
    if (out.bytes() > ctx_.options.output_high_watermark || MemoryFull(async)) {
      std::string_view rest = cmd.keys;
      std::string_view next;
      if (NextKey(&rest, &next)) {
        stats_.Add(Counter::kConnYields);
        return Outcome::kPaused;
      }
    }
  }
  out.Append("END\r\n");
  return Outcome::kDone;
}

Outcome Dispatcher::CompleteStore(PendingStore& store, bool terminated, OutputQueue& out,
                                  AsyncState* async) {
  if (async != nullptr && !async->resumed) {  // a new command
    async->moved_retries = 0;
    async->promote_attempts = 0;
    async->forwarded = {};
  }
  if (terminated && async != nullptr && async->near != nullptr) {
    return store.type == CommandType::kMetaSet ? RelayMetaStore(store, out, async)
                                               : ForwardStore(store, out, async);
  }
  const bool meta = store.type == CommandType::kMetaSet;
  tiers::StoreMode mode = tiers::StoreMode::kSet;
  switch (store.type) {
    case CommandType::kAdd: mode = tiers::StoreMode::kAdd; break;
    case CommandType::kReplace: mode = tiers::StoreMode::kReplace; break;
    case CommandType::kAppend: mode = tiers::StoreMode::kAppend; break;
    case CommandType::kPrepend: mode = tiers::StoreMode::kPrepend; break;
    case CommandType::kCas: mode = tiers::StoreMode::kCas; break;
    case CommandType::kMetaSet:
      mode = store.mode;
      break;
    default: break;
  }
  if (terminated && mode != tiers::StoreMode::kSet &&
      PromoteFirst(async, store.item->Key(), AsyncState::Waiting::kStore)) {
    // add/replace/append/prepend/cas need to know what the SSD holds.
    return Outcome::kWaitIo;
  }
  if (!terminated) {
    stats_.Add(Counter::kCmdSet);
    store.item.Reset();
    // An ms always shows its errors.
    Reply(out, store.noreply && !meta, "CLIENT_ERROR bad data chunk");
    return Outcome::kDone;
  }
  // The item is kept until the command is done: it runs again if RAM lost
  // the key to SSD just before (add checks the SSD itself).
  tiers::StoreResult result;
  uint64_t cas = 0;
  for (;;) {
    result = cache_.Store(mode, store.item, store.cas_unique, Ticket(async), &cas,
                          meta && store.set_stale);
    const bool key_missing =
        (result == tiers::StoreResult::kNotStored &&
         (mode == tiers::StoreMode::kReplace || mode == tiers::StoreMode::kAppend ||
          mode == tiers::StoreMode::kPrepend)) ||
        (result == tiers::StoreResult::kNotFound && mode == tiers::StoreMode::kCas);
    if (!key_missing) break;
    LookedAgain again = LookAgain(async, store.item->Key(), AsyncState::Waiting::kStore);
    if (again == LookedAgain::kPromoting) return Outcome::kWaitIo;
    if (again == LookedAgain::kGone) break;
  }
  stats_.Add(Counter::kCmdSet);
  if (meta) {
    MetaStoreReply(store, result, cas, out);
    store.item.Reset();
    return Outcome::kDone;
  }
  store.item.Reset();
  StoreReply(store, result, out);
  return Outcome::kDone;
}

void Dispatcher::StoreReply(const PendingStore& store, tiers::StoreResult result,
                            OutputQueue& out) {
  const bool is_cas = store.type == CommandType::kCas;
  switch (result) {
    case tiers::StoreResult::kStored:
      if (is_cas) stats_.Add(Counter::kCasHits);
      Reply(out, store.noreply, "STORED");
      break;
    case tiers::StoreResult::kExists:
      if (is_cas) stats_.Add(Counter::kCasBadval);
      Reply(out, store.noreply, "EXISTS");
      break;
    case tiers::StoreResult::kNotFound:
      if (is_cas) stats_.Add(Counter::kCasMisses);
      Reply(out, store.noreply, "NOT_FOUND");
      break;
    case tiers::StoreResult::kNotStored:
      Reply(out, store.noreply, "NOT_STORED");
      break;
    case tiers::StoreResult::kTooLarge:
      Reply(out, store.noreply, "SERVER_ERROR object too large for cache");
      break;
    case tiers::StoreResult::kNoMemory:
      Reply(out, store.noreply, "SERVER_ERROR out of memory storing object");
      break;
  }
}

Outcome Dispatcher::ForwardStore(PendingStore& store, OutputQueue& out, AsyncState* async) {
  const std::string key(store.item->Key());
  if (!async->forwarded.sent) {
    upstream::StoreMode mode = upstream::StoreMode::kSet;
    switch (store.type) {
      case CommandType::kAdd: mode = upstream::StoreMode::kAdd; break;
      case CommandType::kReplace: mode = upstream::StoreMode::kReplace; break;
      case CommandType::kAppend: mode = upstream::StoreMode::kAppend; break;
      case CommandType::kPrepend: mode = upstream::StoreMode::kPrepend; break;
      default: break;
    }
    const bool is_cas = store.type == CommandType::kCas;
    std::string head = upstream::MetaSetRequest(key, store.item->value_len, store.item->Flags(),
                                                store.exptime, mode,
                                                is_cas ? &store.cas_unique : nullptr);
    if (Forward(async, key, upstream::RequestOp::kStore, std::move(head), store.item,
                AsyncState::Waiting::kStore)) {
      return Outcome::kWaitIo;
    }
  }
  store.item.Reset();
  stats_.Add(Counter::kCmdSet);
  std::string line;
  switch (TakeForwarded(async, key, &line)) {
    case upstream::ReplyKind::kHit:
      StoreReply(store, tiers::StoreResult::kStored, out);
      break;
    case upstream::ReplyKind::kExists:
      StoreReply(store, tiers::StoreResult::kExists, out);
      break;
    case upstream::ReplyKind::kNotFound:
      StoreReply(store, tiers::StoreResult::kNotFound, out);
      break;
    case upstream::ReplyKind::kNotStored:
      StoreReply(store, tiers::StoreResult::kNotStored, out);
      break;
    default:
      Reply(out, store.noreply, line.empty() ? kUpstreamUnavailable : line);
      break;
  }
  return Outcome::kDone;
}

}  // namespace strata::proxy
