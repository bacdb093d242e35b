#include "proxy/exec/dispatch.h"

#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <charconv>
#include <cstdio>
#include <cstring>
#include <map>
#include <string>
#include <vector>

#include "common/units.h"

namespace strata::proxy {
namespace {

constexpr int64_t kRealtimeMaxDelta = 60 * 60 * 24 * 30;  // memcached's REALTIME_MAXDELTA
// memcached's process_started is its start time minus ITEM_UPDATE_INTERVAL
// (60 s) minus 2.
constexpr int64_t kProcessStartedSlack = 62;

char* PutU64(char* p, uint64_t v) { return std::to_chars(p, p + 20, v).ptr; }

void Stat(OutputQueue& out, std::string_view name, std::string_view value) {
  std::string line;
  line.reserve(8 + name.size() + value.size());
  line.append("STAT ").append(name).append(" ").append(value).append("\r\n");
  out.Append(line);
}

void Stat(OutputQueue& out, std::string_view name, uint64_t value) {
  char buf[24];
  Stat(out, name, std::string_view(buf, static_cast<size_t>(PutU64(buf, value) - buf)));
}

// Items per RamTier::ListItems() call of a listing: one shard lock hold.
constexpr size_t kListBatch = 256;
// memcached's cap on a `stats cachedump` reply (items.c's item_cachedump).
constexpr size_t kCachedumpMaxBytes = 2 * 1024 * 1024;

// ITEM_ntotal() of memcached 1.6.18 on 64 bits for the same item: its
// 48-byte header, the key and a NUL, the value with "\r\n", 4 bytes of
// client flags when they are non-zero and 8 of CAS unique. metadump's
// size= and the `stats sizes` histogram report it.
uint64_t MemcachedItemSize(const tiers::Item& item) {
  return 48 + uint64_t{item.key_len} + 1 + uint64_t{item.value_len} + 2 +
         (item.Flags() != 0 ? 4 : 0) + 8;
}

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
// strata keeps no last-access time: la= is the time of the dump.
void AppendMetadumpLine(const tiers::RamTier::ListedItem& listed, int64_t now, std::string* out) {
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
  num(static_cast<uint64_t>(now));
  out->append(" cas=");
  num(item.Cas());
  out->append(listed.fetched ? " fetch=yes" : " fetch=no");
  out->append(" cls=1 size=");
  num(MemcachedItemSize(item));
  out->append("\n");
}

std::string Rusage(const struct timeval& tv) {
  char buf[48];
  std::snprintf(buf, sizeof(buf), "%ld.%06ld", static_cast<long>(tv.tv_sec),
                static_cast<long>(tv.tv_usec));
  return buf;
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
    if (--async->pending == 0 && async->waiting != AsyncState::Waiting::kNothing) {
      async->waiter->OnIoDone();
    }
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
    if (--async->pending == 0 && async->waiting != AsyncState::Waiting::kNothing) {
      async->waiter->OnIoDone();
    }
  }

 private:
  AsyncState* async_;
};

}  // namespace

Dispatcher::Dispatcher(ServerContext& ctx, WorkerStats& stats)
    : ctx_(ctx),
      stats_(stats),
      ram_only_(ctx.cache == nullptr ? std::make_unique<tiers::TieredCache>(*ctx.tier) : nullptr),
      cache_(ctx.cache != nullptr ? *ctx.cache : *ram_only_) {}

bool Dispatcher::PromoteFirst(AsyncState* async, std::string_view key,
                              AsyncState::Waiting why) {
  if (async == nullptr || async->io == nullptr) return false;
  // Until RAM has the key: a promotion that completes puts it there, but
  // another worker may evict it again before this command runs (then it
  // is on SSD again and is promoted again, a bounded number of times).
  while (cache_.NeedsPromotion(key) && async->promote_attempts < kMaxPromoteAttempts) {
    ++async->promote_attempts;
    // The count starts at two so a read that completes at once (the
    // record was still in RAM) cannot signal before we decide to wait.
    async->pending = 2;
    async->waiting = AsyncState::Waiting::kNothing;
    cache_.Promote(key, *async->io, new PromoteWait(async));
    if (--async->pending > 0) {
      async->waiting = why;
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

uint64_t* Dispatcher::Ticket(AsyncState* async) {
  return async != nullptr && async->io != nullptr ? &async->ack_ticket : nullptr;
}

bool Dispatcher::ReadAhead(std::string_view key, tiers::IoQueue& io, tiers::SsdReadDone* done) {
  // Read-ahead promotes whatever the sketch says: the item must wait in RAM
  // for its get. Gating it as plain gets are cut SSD hits/s by a third in
  // bench/ssd_bench.py (uniform gets: every key cold, so nothing was read
  // ahead and reads in flight fell).
  if (!cache_.NeedsPromotion(key)) return false;
  stats_.Add(Counter::kSsdReadAheads);
  cache_.Promote(key, io, done, {.read_ahead = true});
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
  char* p = out.AppendSpace(line.size() + 2);
  std::memcpy(p, line.data(), line.size());
  p[line.size()] = '\r';
  p[line.size() + 1] = '\n';
}

Outcome Dispatcher::Execute(Command& cmd, OutputQueue& out, PendingStore* store,
                            AsyncState* async) {
  if (async != nullptr && !async->resumed) {  // a new command
    async->moved_retries = 0;
    async->promote_attempts = 0;
  }
  tiers::RamTier& tier = cache_.ram();
  switch (cmd.type) {
    case CommandType::kError:
      Reply(out, cmd.noreply, cmd.reply);
      return Outcome::kDone;

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
        // A failed set must not leave the old value readable.
        if (cmd.type == CommandType::kSet) cache_.Delete(cmd.key, Ticket(async));
      }
      return Outcome::kReadData;
    }

    case CommandType::kDelete:
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
      if (PromoteFirst(async, cmd.key, AsyncState::Waiting::kCommand)) return Outcome::kWaitIo;
      bool incr = cmd.type == CommandType::kIncr;
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
      }
      return Outcome::kDone;
    }

    case CommandType::kTouch: {
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
      Reply(out, cmd.noreply, "OK");
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
      Stats(cmd, out);
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
  const int64_t now = ctx_.clock->NowSeconds();
  std::vector<tiers::RamTier::ListedItem> batch;
  bool more = cmd.number == 1;  // the list selects strata's class 1
  while (more) {
    batch.clear();
    more = tier.ListItems(&cmd.delta, kListBatch, &batch);
    std::string text;
    for (const tiers::RamTier::ListedItem& listed : batch) {
      AppendMetadumpLine(listed, now, &text);
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

  auto count = [&](std::string_view k, bool hit, bool asked_ssd = false, bool from_ssd = false) {
    ctx_.prefix_stats.RecordGet(k, hit);
    stats_.Add(hit && !from_ssd ? Counter::kRamHits : Counter::kRamMisses);
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

  if (async != nullptr && async->io != nullptr) {
    // With an SSD tier: batches of keys, the SSD reads of a batch together,
    // the batch's replies in request order once they are all back.
    for (;;) {
      if (!async->batch_ready) {
        async->slots.clear();
        async->gat_exptime = exptime;  // outlives this call, for the reads
        async->pending = 1;  // held until every read is issued
        async->waiting = AsyncState::Waiting::kNothing;
        for (size_t n = 0;
             n < kGetBatch && (n == 0 || !MemoryFull(async)) && NextKey(&cmd.keys, &key); ++n) {
          size_t index = async->slots.size();
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
      for (AsyncState::Slot& slot : async->slots) {
        tiers::ItemRef item = std::move(slot.item);
        // A gat that brought its key back from SSD invalidated the record.
        if (touch && slot.from_ssd) {
          async->ack_ticket = std::max(async->ack_ticket, tier.AckTicket(slot.key));
        }
        count(slot.key, static_cast<bool>(item), slot.asked_ssd, slot.from_ssd && item);
        if (item) AppendValue(out, slot.key, item, with_cas);
      }
      async->slots.clear();
      async->batch_ready = false;
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
  }
  if (terminated && store.type != CommandType::kSet &&
      PromoteFirst(async, store.item->Key(), AsyncState::Waiting::kStore)) {
    // add/replace/append/prepend/cas need to know what the SSD holds.
    return Outcome::kWaitIo;
  }
  if (!terminated) {
    stats_.Add(Counter::kCmdSet);
    store.item.Reset();
    Reply(out, store.noreply, "CLIENT_ERROR bad data chunk");
    return Outcome::kDone;
  }
  tiers::StoreMode mode = tiers::StoreMode::kSet;
  switch (store.type) {
    case CommandType::kAdd: mode = tiers::StoreMode::kAdd; break;
    case CommandType::kReplace: mode = tiers::StoreMode::kReplace; break;
    case CommandType::kAppend: mode = tiers::StoreMode::kAppend; break;
    case CommandType::kPrepend: mode = tiers::StoreMode::kPrepend; break;
    case CommandType::kCas: mode = tiers::StoreMode::kCas; break;
    default: break;
  }
  // The item is kept until the command is done: it runs again if RAM lost
  // the key to SSD just before (add checks the SSD itself).
  tiers::StoreResult result;
  for (;;) {
    result = cache_.Store(mode, store.item, store.cas_unique, Ticket(async));
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
  store.item.Reset();
  stats_.Add(Counter::kCmdSet);
  bool is_cas = store.type == CommandType::kCas;
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
  return Outcome::kDone;
}

void Dispatcher::Stats(const Command& cmd, OutputQueue& out) {
  if (cmd.nargs == 0) {
    StatsGeneral(out);
  } else {
    std::string_view sub = cmd.args[0];
    if (sub == "reset") {
      for (WorkerStats* s : ctx_.worker_stats) s->Reset();
      ctx_.prefix_stats.Clear();
      Reply(out, false, "RESET");
      return;
    }
    if (sub == "detail") {
      if (cmd.nargs >= 2 && (cmd.args[1] == "on" || cmd.args[1] == "off")) {
        ctx_.prefix_stats.SetEnabled(cmd.args[1] == "on");
        Reply(out, false, "OK");
      } else if (cmd.nargs >= 2 && cmd.args[1] == "dump") {
        out.Append(ctx_.prefix_stats.Dump());
      } else {
        Reply(out, false, "CLIENT_ERROR usage: stats detail on|off|dump");
      }
      return;
    }
    if (sub == "cachedump") {
      StatsCachedump(cmd, out);
      return;
    }
    if (sub == "sizes_enable" || sub == "sizes_disable") {
      // memcached answers these without an END line.
      StatsSizesSwitch(sub == "sizes_enable", out);
      return;
    }
    if (sub == "settings") {
      StatsSettings(out);
    } else if (sub == "items") {
      StatsItems(out);
    } else if (sub == "slabs") {
      StatsSlabs(out);
    } else if (sub == "conns") {
      StatsConns(out);
    } else if (sub == "sizes") {
      StatsSizes(out);
    } else if (sub == "extstore") {
      // What memcached built with extstore answers when none is configured:
      // its page and bucket figures have no counterpart in strata's log.
    } else {
      Reply(out, false, "ERROR");
      return;
    }
  }
  out.Append("END\r\n");
}

void Dispatcher::StatsCachedump(const Command& cmd, OutputQueue& out) {
  // items.c's item_cachedump: up to `limit` items (0: all) of one slab
  // class, at most 2 MB. strata's one class is 1.
  std::string text;
  if (cmd.number == 1) {
    tiers::RamTier& tier = cache_.ram();
    const uint64_t limit = cmd.delta;
    uint64_t cursor = 0;
    uint64_t shown = 0;
    std::vector<tiers::RamTier::ListedItem> batch;
    bool more = true;
    while (more && (limit == 0 || shown < limit)) {
      batch.clear();
      more = tier.ListItems(&cursor, kListBatch, &batch);
      for (const tiers::RamTier::ListedItem& listed : batch) {
        if (limit != 0 && shown >= limit) break;
        const tiers::Item& item = *listed.item;
        char line[kMaxKeyLength + 64];
        int len = std::snprintf(line, sizeof(line), "ITEM %.*s [%u b; %u s]\r\n",
                                static_cast<int>(item.key_len), item.Key().data(),
                                static_cast<unsigned>(item.value_len),
                                static_cast<unsigned>(listed.exptime));
        if (text.size() + static_cast<size_t>(len) + 6 > kCachedumpMaxBytes) {
          more = false;
          break;
        }
        text.append(line, static_cast<size_t>(len));
        ++shown;
      }
    }
  }
  text.append("END\r\n");
  out.Append(text);
}

void Dispatcher::StatsSizesSwitch(bool enable, OutputQueue& out) {
  if (enable) {
    if (!ctx_.sizes_enabled.load()) {
      // Items stored from now on: memcached takes a fresh CAS unique as
      // the threshold; the largest one in RAM serves the same purpose.
      uint64_t max_cas = 0;
      uint64_t cursor = 0;
      std::vector<tiers::RamTier::ListedItem> batch;
      bool more = true;
      while (more) {
        batch.clear();
        more = cache_.ram().ListItems(&cursor, kListBatch, &batch);
        for (const tiers::RamTier::ListedItem& listed : batch) {
          max_cas = std::max(max_cas, listed.item->Cas());
        }
      }
      ctx_.sizes_cas_min.store(max_cas);
      ctx_.sizes_enabled.store(true);
    }
    Stat(out, "sizes_status", "enabled");
  } else {
    ctx_.sizes_enabled.store(false);
    Stat(out, "sizes_status", "disabled");
  }
}

void Dispatcher::StatsSizes(OutputQueue& out) {
  if (!ctx_.sizes_enabled.load()) {
    Stat(out, "sizes_status", "disabled");
    return;
  }
  // items.c's histogram: items by their memcached size, in 32-byte steps
  // rounded up, below item_size_max; here computed from the RAM items
  // stored since sizes_enable.
  const uint64_t cas_min = ctx_.sizes_cas_min.load();
  const uint64_t buckets = cache_.ram().max_item_size() / 32 + 1;
  std::map<uint64_t, uint64_t> histogram;
  uint64_t cursor = 0;
  std::vector<tiers::RamTier::ListedItem> batch;
  bool more = true;
  while (more) {
    batch.clear();
    more = cache_.ram().ListItems(&cursor, kListBatch, &batch);
    for (const tiers::RamTier::ListedItem& listed : batch) {
      if (listed.item->Cas() <= cas_min) continue;
      const uint64_t bucket = (MemcachedItemSize(*listed.item) + 31) / 32;
      if (bucket < buckets) ++histogram[bucket];
    }
  }
  for (const auto& [bucket, count] : histogram) Stat(out, std::to_string(bucket * 32), count);
}

void Dispatcher::StatsGeneral(OutputQueue& out) {
  const tiers::RamTierStats ram = ctx_.tier->Stats();
  int64_t now = ctx_.clock->NowSeconds();
  struct rusage usage;
  getrusage(RUSAGE_SELF, &usage);
  auto sum = [&](Counter c) { return ctx_.Sum(c); };
  Stat(out, "pid", static_cast<uint64_t>(getpid()));
  Stat(out, "uptime", static_cast<uint64_t>(now - ctx_.started_unix));
  Stat(out, "time", static_cast<uint64_t>(now));
  Stat(out, "version", kVersion);
  Stat(out, "pointer_size", 64);
  Stat(out, "rusage_user", Rusage(usage.ru_utime));
  Stat(out, "rusage_system", Rusage(usage.ru_stime));
  Stat(out, "max_connections", ctx_.options.max_connections);
  Stat(out, "curr_connections", ctx_.curr_connections.load(std::memory_order_relaxed));
  Stat(out, "total_connections", sum(Counter::kTotalConnections));
  Stat(out, "rejected_connections", sum(Counter::kRejectedConnections));
  Stat(out, "connection_structures", ctx_.curr_connections.load(std::memory_order_relaxed));
  Stat(out, "cmd_get", sum(Counter::kCmdGet));
  Stat(out, "cmd_set", sum(Counter::kCmdSet));
  Stat(out, "cmd_flush", sum(Counter::kCmdFlush));
  Stat(out, "cmd_touch", sum(Counter::kCmdTouch));
  Stat(out, "cmd_meta", 0);
  Stat(out, "get_hits", sum(Counter::kGetHits));
  Stat(out, "get_misses", sum(Counter::kGetMisses));
  Stat(out, "get_expired", sum(Counter::kGetExpired));
  Stat(out, "get_flushed", sum(Counter::kGetFlushed));
  Stat(out, "delete_misses", sum(Counter::kDeleteMisses));
  Stat(out, "delete_hits", sum(Counter::kDeleteHits));
  Stat(out, "incr_misses", sum(Counter::kIncrMisses));
  Stat(out, "incr_hits", sum(Counter::kIncrHits));
  Stat(out, "decr_misses", sum(Counter::kDecrMisses));
  Stat(out, "decr_hits", sum(Counter::kDecrHits));
  Stat(out, "cas_misses", sum(Counter::kCasMisses));
  Stat(out, "cas_hits", sum(Counter::kCasHits));
  Stat(out, "cas_badval", sum(Counter::kCasBadval));
  Stat(out, "touch_hits", sum(Counter::kTouchHits));
  Stat(out, "touch_misses", sum(Counter::kTouchMisses));
  Stat(out, "store_too_large", sum(Counter::kStoreTooLarge));
  Stat(out, "store_no_memory", sum(Counter::kStoreNoMemory));
  Stat(out, "auth_cmds", 0);
  Stat(out, "auth_errors", 0);
  Stat(out, "bytes_read", sum(Counter::kBytesRead));
  Stat(out, "bytes_written", sum(Counter::kBytesWritten));
  Stat(out, "limit_maxbytes", ram.limit_bytes);
  Stat(out, "accepting_conns", 1);
  Stat(out, "listen_disabled_num", 0);
  Stat(out, "time_in_listen_disabled_us", 0);
  Stat(out, "threads", ctx_.worker_stats.size());
  Stat(out, "conn_yields", sum(Counter::kConnYields));
  Stat(out, "hash_power_level", 0);
  Stat(out, "hash_bytes", ram.hash_buckets * sizeof(void*));
  Stat(out, "hash_is_expanding", 0);
  Stat(out, "malloc_fails", 0);
  Stat(out, "bytes", ram.bytes);
  Stat(out, "curr_items", ram.curr_items);
  Stat(out, "total_items", ram.total_items);
  Stat(out, "expired_unfetched", ram.expired_unfetched);
  Stat(out, "evicted_unfetched", ram.evicted_unfetched);
  Stat(out, "evicted_active", 0);
  Stat(out, "evictions", ram.evictions);
  Stat(out, "reclaimed", ram.reclaimed);
  Stat(out, "crawler_reclaimed", ram.crawler_reclaimed);
  Stat(out, "crawler_items_checked", ram.crawler_items_checked);
  // memcached's segmented-LRU counters; S3-FIFO has no such moves.
  Stat(out, "lrutail_reflocked", 0);
  Stat(out, "moves_to_cold", 0);
  Stat(out, "moves_to_warm", 0);
  Stat(out, "moves_within_lru", 0);
  Stat(out, "direct_reclaims", 0);
  Stat(out, "lru_crawler_running", 0);
  Stat(out, "lru_crawler_starts", 0);
  Stat(out, "lru_maintainer_juggles", 0);
  Stat(out, "ram_eviction_policy", tiers::EvictionKindName(ctx_.tier->eviction()));
  Stat(out, "network_io_mode", ctx_.network_io_mode);
  // The cap on what connections hold (server.max_connection_memory).
  Stat(out, "connection_memory", ctx_.conn_memory ? ctx_.conn_memory->charged() : 0);
  Stat(out, "connection_memory_limit", ctx_.conn_memory ? ctx_.conn_memory->limit() : 0);
  Stat(out, "connection_memory_stalls", sum(Counter::kConnMemoryStalls));
  Stat(out, "connection_memory_closed", sum(Counter::kConnMemoryClosed));
  if (tiers::SsdLog* ssd = cache_.ssd()) {
    const tiers::SsdLogStats d = ssd->Stats();
    const tiers::TieredCache::Counters c = cache_.counters();
    // memcached's extstore names where one means the same thing...
    Stat(out, "get_extstore", d.hits);
    Stat(out, "badcrc_from_extstore", d.corrupt_records);
    Stat(out, "miss_from_extstore", d.reads - d.hits);
    Stat(out, "recache_from_extstore", c.promotions);
    Stat(out, "extstore_objects_written", d.demoted_items);
    Stat(out, "extstore_bytes_written", d.device_bytes_written);
    Stat(out, "extstore_bytes_read", d.device_bytes_read);
    // ...and strata's own.
    Stat(out, "ssd_io_mode", ssd->device_mode());
    Stat(out, "ssd_regions", d.regions);
    Stat(out, "ssd_index_entries", d.index_entries);
    Stat(out, "ssd_index_bytes", d.index_bytes);
    Stat(out, "ssd_live_bytes", d.live_bytes);
    Stat(out, "ssd_live_capacity", d.capacity_bytes);
    Stat(out, "ssd_reads", d.reads);
    Stat(out, "ssd_hits", d.hits);
    Stat(out, "ssd_promotions", c.promotions);
    Stat(out, "ssd_read_aheads", ctx_.Sum(Counter::kSsdReadAheads));
    Stat(out, "ssd_admitted", c.admitted);
    Stat(out, "ssd_admissions_rejected", c.rejected_cold + c.rejected_budget);
    Stat(out, "ssd_admissions_rejected_cold", c.rejected_cold);
    Stat(out, "ssd_admissions_rejected_budget", c.rejected_budget);
    char victim[32];
    std::snprintf(victim, sizeof(victim), "%.2f", c.victim_estimate);
    Stat(out, "ssd_admission_victim_estimate", victim);
    Stat(out, "ssd_demoted_items", d.demoted_items);
    Stat(out, "ssd_demoted_bytes", d.demoted_value_bytes);
    Stat(out, "ssd_stored_bytes", d.stored_value_bytes);
    Stat(out, "ssd_record_bytes", d.record_bytes);
    Stat(out, "ssd_demoted_record_bytes", d.demoted_record_bytes);
    Stat(out, "ssd_device_bytes_written", d.device_bytes_written);
    Stat(out, "ssd_device_bytes_read", d.device_bytes_read);
    Stat(out, "ssd_reads_in_flight", d.reads_in_flight);
    char ratio[32];
    std::snprintf(ratio, sizeof(ratio), "%.3f",
                  d.stored_value_bytes == 0 ? 1.0
                                            : static_cast<double>(d.demoted_value_bytes) /
                                                  static_cast<double>(d.stored_value_bytes));
    Stat(out, "ssd_compression_ratio", ratio);
    Stat(out, "ssd_tombstones", d.tombstones);
    Stat(out, "ssd_regions_reclaimed", d.regions_reclaimed);
    Stat(out, "ssd_entries_reclaimed", d.entries_reclaimed);
    Stat(out, "ssd_records_rewritten", d.records_rewritten);
    Stat(out, "ssd_bytes_rewritten", d.bytes_rewritten);
    Stat(out, "ssd_dropped_too_large", d.dropped_too_large);
    Stat(out, "ssd_dropped_backlog", d.dropped_backlog);
    Stat(out, "ssd_write_errors", d.write_errors);
    Stat(out, "ssd_read_errors", d.read_errors);
    Stat(out, "ssd_corrupt_records", d.corrupt_records);
    Stat(out, "ssd_stale_reads", d.stale_reads);
    Stat(out, "ssd_commits", d.commits);
  }
}

void Dispatcher::StatsSettings(OutputQueue& out) {
  const ServerOptions& o = ctx_.options;
  char umask[8];
  std::snprintf(umask, sizeof(umask), "%o", o.unix_socket_mode);
  Stat(out, "maxbytes", ctx_.tier->limit());
  Stat(out, "maxconns", o.max_connections);
  Stat(out, "tcpport", ctx_.bound_port);
  Stat(out, "udpport", 0);
  Stat(out, "inter", o.listen);
  Stat(out, "verbosity", ctx_.verbosity.load(std::memory_order_relaxed));
  Stat(out, "oldest", 0);
  Stat(out, "evictions", "on");
  Stat(out, "domain_socket", o.unix_socket.empty() ? std::string("NULL") : o.unix_socket);
  Stat(out, "umask", umask);
  Stat(out, "shutdown_command", o.enable_shutdown ? "yes" : "no");
  Stat(out, "num_threads", ctx_.worker_stats.size());
  Stat(out, "stat_key_prefix", ":");
  Stat(out, "detail_enabled", ctx_.prefix_stats.enabled() ? "yes" : "no");
  Stat(out, "cas_enabled", "yes");
  Stat(out, "tcp_backlog", static_cast<uint64_t>(o.backlog));
  Stat(out, "binding_protocol", "ascii");
  Stat(out, "auth_enabled_sasl", "no");
  Stat(out, "auth_enabled_ascii", "no");
  Stat(out, "item_size_max", ctx_.tier->max_item_size());
  Stat(out, "maxconns_fast", "yes");
  Stat(out, "hashpower_init", 0);
  Stat(out, "flush_enabled", "yes");
  Stat(out, "dump_enabled", "yes");
  // memcached's LRU crawler is the RAM tier's expiry reaper here; the
  // crawler's and LRU's tunables are memcached's defaults (the commands that
  // set them are accepted and change nothing). There is no LRU maintainer.
  Stat(out, "lru_crawler", ctx_.lru_crawler.load() ? "yes" : "no");
  Stat(out, "lru_crawler_sleep", 100);
  Stat(out, "lru_crawler_tocrawl", 0);
  Stat(out, "lru_maintainer_thread", "no");
  Stat(out, "hot_lru_pct", 20);
  Stat(out, "warm_lru_pct", 40);
  Stat(out, "hot_max_factor", "0.20");
  Stat(out, "warm_max_factor", "2.00");
  Stat(out, "track_sizes", ctx_.sizes_enabled.load() ? "yes" : "no");
  Stat(out, "idle_timeout", 0);
  Stat(out, "eviction_policy", tiers::EvictionKindName(ctx_.tier->eviction()));
  Stat(out, "max_output_buffer", o.max_output_buffer);
  Stat(out, "max_connection_memory", o.max_connection_memory);
}

void Dispatcher::StatsItems(OutputQueue& out) {
  // strata has no slab classes; all items are reported under class 1, and
  // only when there are items, as memcached lists only populated classes.
  const tiers::RamTierStats ram = ctx_.tier->Stats();
  if (ram.curr_items == 0) return;
  Stat(out, "items:1:number", ram.curr_items);
  // memcached's segmented LRU (hot/warm/cold/temp) does not exist here.
  for (const char* seg : {"hot", "warm", "cold"}) {
    Stat(out, std::string("items:1:number_") + seg, 0);
  }
  Stat(out, "items:1:age_hot", 0);
  Stat(out, "items:1:age_warm", 0);
  Stat(out, "items:1:age", 0);
  Stat(out, "items:1:mem_requested", ram.bytes);
  Stat(out, "items:1:evicted", ram.evictions);
  Stat(out, "items:1:evicted_nonzero", 0);
  Stat(out, "items:1:evicted_time", 0);
  Stat(out, "items:1:outofmemory", ctx_.Sum(Counter::kStoreNoMemory));
  Stat(out, "items:1:tailrepairs", 0);
  Stat(out, "items:1:reclaimed", ram.reclaimed);
  Stat(out, "items:1:expired_unfetched", ram.expired_unfetched);
  Stat(out, "items:1:evicted_unfetched", ram.evicted_unfetched);
  Stat(out, "items:1:evicted_active", 0);
  Stat(out, "items:1:crawler_reclaimed", ram.crawler_reclaimed);
  Stat(out, "items:1:crawler_items_checked", ram.crawler_items_checked);
  Stat(out, "items:1:lrutail_reflocked", 0);
  Stat(out, "items:1:moves_to_cold", 0);
  Stat(out, "items:1:moves_to_warm", 0);
  Stat(out, "items:1:moves_within_lru", 0);
  Stat(out, "items:1:direct_reclaims", 0);
  for (const char* seg : {"hot", "warm", "cold", "temp"}) {
    Stat(out, std::string("items:1:hits_to_") + seg, 0);
  }
}

void Dispatcher::StatsSlabs(OutputQueue& out) {
  const tiers::RamTierStats ram = ctx_.tier->Stats();
  if (ram.curr_items > 0) {
    // Class 1 holds every item, up to the largest one allowed.
    Stat(out, "1:chunk_size", ctx_.tier->max_item_size());
    Stat(out, "1:chunks_per_page", 1);
    Stat(out, "1:total_pages", ram.curr_items);
    Stat(out, "1:total_chunks", ram.curr_items);
    Stat(out, "1:used_chunks", ram.curr_items);
    Stat(out, "1:free_chunks", 0);
    Stat(out, "1:free_chunks_end", 0);
    Stat(out, "1:get_hits", ctx_.Sum(Counter::kGetHits));
    Stat(out, "1:cmd_set", ctx_.Sum(Counter::kCmdSet));
    Stat(out, "1:delete_hits", ctx_.Sum(Counter::kDeleteHits));
    Stat(out, "1:incr_hits", ctx_.Sum(Counter::kIncrHits));
    Stat(out, "1:decr_hits", ctx_.Sum(Counter::kDecrHits));
    Stat(out, "1:cas_hits", ctx_.Sum(Counter::kCasHits));
    Stat(out, "1:cas_badval", ctx_.Sum(Counter::kCasBadval));
    Stat(out, "1:touch_hits", ctx_.Sum(Counter::kTouchHits));
  }
  Stat(out, "active_slabs", ram.curr_items > 0 ? 1 : 0);
  Stat(out, "total_malloced", ram.bytes);
}

const char* ConnStateName(ConnState state) {
  switch (state) {
    case ConnState::kListening:
      return "conn_listening";
    case ConnState::kRead:
      return "conn_read";
    case ConnState::kParseCmd:
      return "conn_parse_cmd";
    case ConnState::kNread:
      return "conn_nread";
    case ConnState::kSwallow:
      return "conn_swallow";
    case ConnState::kMwrite:
      return "conn_mwrite";
    case ConnState::kIoQueue:
      return "conn_io_queue";
  }
  return "conn_read";
}

void Dispatcher::StatsConns(OutputQueue& out) {
  int64_t now = ctx_.clock->NowSeconds();
  ctx_.conns.ForEach([&](int fd, const ConnInfo& info) {
    std::string prefix = std::to_string(fd) + ":";
    ConnState state = info.state.load(std::memory_order_relaxed);
    Stat(out, prefix + "addr", info.addr);
    if (state != ConnState::kListening) Stat(out, prefix + "listen_addr", info.listen_addr);
    Stat(out, prefix + "state", ConnStateName(state));
    int64_t last = info.last_cmd_unix.load(std::memory_order_relaxed);
    Stat(out, prefix + "secs_since_last_cmd", static_cast<uint64_t>(last ? now - last : 0));
  });
}

}  // namespace strata::proxy
