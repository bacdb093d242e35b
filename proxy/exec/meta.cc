// The meta commands (mg ms md ma me), as memcached 1.6.18's proto_text.c
// runs them: process_mget_command, process_mset_command (with
// _finalize_mset), process_mdelete_command, process_marithmetic_command
// and process_meta_command. The parser (protocol.cc) has checked the flags;
// what memcached checks while it composes a reply (an opaque token longer
// than kMaxOpaqueLength) is checked here at the same point, with the same
// effects before it.
//
// On an SSD tier, each command first promotes its key if only the SSD has
// it (PromoteFirst), and runs again if the key moved between the tiers
// just before it ran (LookAgain), as the classic single-key commands do.
#include <charconv>
#include <cstring>
#include <string>

#include "proxy/exec/dispatch.h"
#include "proxy/protocol/base64.h"
#include "proxy/stats/stats_commands.h"

namespace strata::proxy {
namespace {

// memcached's process_started is its start minus ITEM_UPDATE_INTERVAL
// (60 s) minus 2: its current_time counts from there.
constexpr int64_t kProcessStartedSlack = 62;

void PutNumber(std::string* s, uint64_t v) {
  char buf[24];
  s->append(buf, static_cast<size_t>(std::to_chars(buf, buf + sizeof(buf), v).ptr - buf));
}

void PutSigned(std::string* s, int64_t v) {
  char buf[24];
  s->append(buf, static_cast<size_t>(std::to_chars(buf, buf + sizeof(buf), v).ptr - buf));
}

// The key a meta command works on: decoded into `buf` (kMaxKeyLength
// bytes) when it was sent base64 (the parser checked that it decodes).
std::string_view MetaKey(const Command& cmd, char* buf) {
  if (!cmd.meta.key_binary) return cmd.key;
  return {buf, Base64Decode(cmd.key, buf)};
}

// memcached's META_KEY(): " k" and the key, base64 again if `binary`.
void PutKey(std::string* line, std::string_view key, bool binary) {
  line->append(" k");
  if (!binary) {
    line->append(key);
    return;
  }
  char enc[Base64EncodedSize(kMaxKeyLength)];
  line->append(enc, Base64Encode(key, enc));
  line->append(" b");
}

// The O and k flags of a reply that has no item (EN, NF, EX, HD of md):
// false if an opaque is too long (memcached's "opaque token too long").
bool PutOpaqueAndKey(std::string* line, std::string_view tokens, std::string_view key,
                     bool binary) {
  std::string_view t;
  while (NextKey(&tokens, &t)) {
    if (t[0] == 'O') {
      if (t.size() > kMaxOpaqueLength) return false;
      line->push_back(' ');
      line->append(t);
    } else if (t[0] == 'k') {
      PutKey(line, key, binary);
    }
  }
  return true;
}

constexpr std::string_view kOpaqueTooLong = "CLIENT_ERROR opaque token too long";

// An mg a near cache may answer from its local copy: its flags only read
// the value, flags, CAS, size and key (no T N R E that change or lease the
// item, and no t h l: a local copy's expiry and access marks are its own,
// not the pool's).
bool PlainMetaGet(std::string_view tokens) {
  std::string_view t;
  while (NextKey(&tokens, &t)) {
    switch (t[0]) {
      case 'v': case 'f': case 'c': case 'k': case 'O': case 'q': case 's': case 'b':
        break;
      default:
        return false;
    }
  }
  return true;
}

// A meta command's line as it goes to the pool: the client's key token
// (base64 when it has b) and the tokens after it (an ms's data length
// first), q included (the pool's Request then ends it with an mn).
std::string RelayHead(std::string_view verb, std::string_view key_token,
                      std::string_view tokens) {
  std::string head;
  head.reserve(verb.size() + key_token.size() + tokens.size() + 8);
  head.append(verb);
  head.push_back(' ');
  head.append(key_token);
  std::string_view t;
  while (NextKey(&tokens, &t)) {
    head.push_back(' ');
    head.append(t);
  }
  head.append("\r\n");
  return head;
}

}  // namespace

void Dispatcher::AppendTtl(std::string* line, uint32_t exptime) const {
  if (exptime == 0) {
    line->append("-1");
    return;
  }
  const int64_t now = ctx_.clock->NowSeconds();
  if (static_cast<int64_t>(exptime) > now) {
    PutNumber(line, static_cast<uint64_t>(exptime - now));
    return;
  }
  // Only an item a T or N in this very command expired (realtime() made
  // it 1) gets here: memcached prints 1 - current_time as unsigned.
  const int64_t current = now - (ctx_.started_unix - kProcessStartedSlack);
  PutNumber(line, static_cast<uint32_t>(1 - current));
}

Outcome Dispatcher::MetaGet(Command& cmd, OutputQueue& out, AsyncState* async) {
  char keybuf[kMaxKeyLength];
  const std::string_view key = MetaKey(cmd, keybuf);
  const bool pool = async != nullptr && async->near != nullptr;
  // With a pool only a plain mg may be answered here; the rest go to the
  // key's server.
  if (pool && !PlainMetaGet(cmd.meta_tokens)) return RelayMeta(cmd, out, async);
  if (PromoteFirst(async, key, AsyncState::Waiting::kCommand)) return Outcome::kWaitIo;
  const MetaFlags& f = cmd.meta;
  const uint32_t ttl = f.new_ttl ? AbsoluteExptime(f.ttl) : 0;
  const uint32_t vivify_ttl = f.vivify ? AbsoluteExptime(f.vivify_ttl) : 0;
  const uint32_t recache_ttl = f.recache ? AbsoluteExptime(f.recache_ttl) : 0;
  // memcached "locks" the item for N, T, R, l and h, and then bumps it
  // after the reply is composed (skipped if that fails); otherwise its
  // fetch bumped the item before.
  const bool locked = f.locked;
  std::string line;
  bool failed = false;  // an opaque too long, found while composing the hit
  bool ttl_set = false;
  auto fn = [&](tiers::Item* it, bool created) {
    if (it == nullptr) return true;
    line.clear();
    if (f.value) {
      line.append("VA ");
      PutNumber(&line, it->value_len);
    } else {
      line.append("HD");
    }
    bool won = false;
    std::string_view tokens = cmd.meta_tokens;
    std::string_view t;
    while (NextKey(&tokens, &t)) {
      switch (t[0]) {
        case 'T':
          ttl_set = true;
          it->exptime = ttl;
          break;
        case 'N':
          if (created) {
            it->exptime = vivify_ttl;
            won = true;
          }
          break;
        case 'R':
          // A token not yet handed out, and the item expires before the
          // recache time: this client recaches it.
          if (!it->win_sent && !created && it->exptime != 0 && it->exptime < recache_ttl) {
            won = true;
          }
          break;
        case 's':
          line.append(" s");
          PutNumber(&line, it->value_len);
          break;
        case 't':
          line.append(" t");
          AppendTtl(&line, it->exptime);
          break;
        case 'c':
          line.append(" c");
          PutNumber(&line, it->Cas());
          break;
        case 'f':
          line.append(" f");
          PutNumber(&line, it->Flags());
          break;
        case 'l':
          line.append(" l");
          PutNumber(&line, cache_.ram().AtimeNow() - it->atime);
          break;
        case 'h':
          line.append(it->fetched ? " h1" : " h0");
          break;
        case 'O':
          if (t.size() > kMaxOpaqueLength) {
            failed = true;
            return !locked;
          }
          line.push_back(' ');
          line.append(t);
          break;
        case 'k':
          PutKey(&line, it->Key(), it->key_binary);
          break;
        default:
          break;
      }
    }
    // A token already handed out: Z (before any W, as memcached orders them).
    if (it->win_sent) line.append(" Z");
    if (it->stale) {
      line.append(" X");
      if (!it->win_sent) won = true;  // stale, and nobody is recaching it yet
    }
    if (won) {
      line.append(" W");
      it->win_sent = 1;
    }
    return true;
  };

  tiers::ItemRef item;
  tiers::MetaGetResult result;
  bool read_ahead = false;
  for (;;) {
    tiers::ItemRef vivify;
    if (f.vivify) {
      tiers::AllocResult why;
      vivify = cache_.ram().Allocate(key, 0, 0, 0, &why);
    }
    failed = false;
    ttl_set = false;
    result =
        cache_.MetaGet(key, std::move(vivify), !f.no_update, fn, &item, Ticket(async), &read_ahead);
    if (result == tiers::MetaGetResult::kHit || result == tiers::MetaGetResult::kCreated) break;
    LookedAgain again = LookAgain(async, key, AsyncState::Waiting::kCommand);
    if (again == LookedAgain::kPromoting) return Outcome::kWaitIo;
    if (again == LookedAgain::kGone) break;
  }

  if (item) {
    if (failed) {
      Reply(out, false, kOpaqueTooLong);
      return Outcome::kDone;
    }
    if (ttl_set) {
      stats_.Add(Counter::kCmdTouch);
      stats_.Add(Counter::kTouchHits);
    } else {
      stats_.Add(Counter::kCmdGet);
      stats_.Add(Counter::kGetHits);
    }
    // A key this command promoted from SSD is an SSD hit (the tier label
    // of its latency, and `stats`), as for a get.
    if (read_ahead || (async != nullptr && async->promote_attempts > 0)) {
      stats_.Add(Counter::kRamMisses);
      stats_.Add(Counter::kSsdHits);
    } else {
      stats_.Add(Counter::kRamHits);
    }
    line.append("\r\n");
    out.Append(line);
    if (f.value) out.AppendValue(item);
    return Outcome::kDone;
  }
  // Not here: the pool's answer is the reply.
  if (pool) return RelayMeta(cmd, out, async);
  // A miss (memcached counts it as a get even with T).
  stats_.Add(Counter::kCmdGet);
  stats_.Add(Counter::kGetMisses);
  stats_.Add(Counter::kRamMisses);
  line.assign("EN");
  if (!PutOpaqueAndKey(&line, cmd.meta_tokens, key, f.key_binary)) {
    Reply(out, false, kOpaqueTooLong);
    return Outcome::kDone;
  }
  Reply(out, cmd.noreply, line);  // q hides only EN
  return Outcome::kDone;
}

Outcome Dispatcher::MetaSet(Command& cmd, OutputQueue& out, PendingStore* store,
                            AsyncState* async) {
  char keybuf[kMaxKeyLength];
  const std::string_view key = MetaKey(cmd, keybuf);
  const MetaFlags& f = cmd.meta;
  const bool pool = async != nullptr && async->near != nullptr;
  if (pool) {
    store->relay_head = RelayHead("ms", cmd.key, cmd.meta_tokens);
    store->relay_quiet = cmd.noreply;
  }
  store->type = CommandType::kMetaSet;
  store->noreply = cmd.noreply;
  store->remaining = uint64_t{cmd.value_len} + 2;
  store->cas_unique = f.cas;  // memcached sets the new item's CAS to it
  switch (f.mode) {
    case 'E':
      store->mode = tiers::StoreMode::kAdd;
      break;
    case 'A':
      store->mode = tiers::StoreMode::kAppend;
      break;
    case 'P':
      store->mode = tiers::StoreMode::kPrepend;
      break;
    case 'R':
      store->mode = tiers::StoreMode::kReplace;
      break;
    default:  // 0, 'S' (the parser refused the others)
      store->mode = tiers::StoreMode::kSet;
      break;
  }
  // A CAS turns set and replace into cas (replace + CAS works as cas).
  if (f.has_cas &&
      (store->mode == tiers::StoreMode::kSet || store->mode == tiers::StoreMode::kReplace)) {
    store->mode = tiers::StoreMode::kCas;
  }
  store->set_stale = f.set_stale && store->mode == tiers::StoreMode::kCas;
  store->key_binary = f.key_binary;
  store->meta_ret.clear();
  std::string_view tokens = cmd.meta_tokens;
  std::string_view t;
  while (NextKey(&tokens, &t)) {
    if (t[0] == 'O' || t[0] == 'k' || t[0] == 'c') {
      store->meta_ret.append(t[0] == 'O' ? t : t.substr(0, 1));
      store->meta_ret.push_back(' ');
    }
  }
  tiers::AllocResult why;
  store->item =
      cache_.ram().Allocate(key, f.client_flags, AbsoluteExptime(f.ttl), cmd.value_len, &why);
  if (!store->item) {
    if (why == tiers::AllocResult::kTooLarge) {
      Reply(out, false, "SERVER_ERROR object too large for cache");
      stats_.Add(Counter::kStoreTooLarge);
    } else {
      Reply(out, false, "SERVER_ERROR out of memory storing object");
      stats_.Add(Counter::kStoreNoMemory);
    }
    // A failed store must not leave the old value readable (any mode),
    // here or in the pool.
    cache_.Delete(key, Ticket(async));
    if (pool) async->near->DropInPool(key);
    return Outcome::kReadData;  // swallows the data block
  }
  store->item->key_binary = f.key_binary ? 1 : 0;
  return Outcome::kReadData;
}

void Dispatcher::MetaStoreReply(const PendingStore& store, tiers::StoreResult result, uint64_t cas,
                                OutputQueue& out) {
  const bool is_cas = store.mode == tiers::StoreMode::kCas;
  std::string line;
  switch (result) {
    case tiers::StoreResult::kStored:
      if (is_cas) stats_.Add(Counter::kCasHits);
      line = "HD";
      break;
    case tiers::StoreResult::kExists:
      if (is_cas) stats_.Add(Counter::kCasBadval);
      line = "EX";
      break;
    case tiers::StoreResult::kNotFound:
      if (is_cas) stats_.Add(Counter::kCasMisses);
      line = "NF";
      break;
    case tiers::StoreResult::kNotStored:
      line = "NS";
      break;
    case tiers::StoreResult::kTooLarge:
      Reply(out, false, "SERVER_ERROR object too large for cache");
      return;
    case tiers::StoreResult::kNoMemory:
      Reply(out, false, "SERVER_ERROR out of memory storing object");
      return;
  }
  std::string_view tokens = store.meta_ret;
  std::string_view t;
  while (NextKey(&tokens, &t)) {
    switch (t[0]) {
      case 'O':
        line.push_back(' ');
        line.append(t);
        break;
      case 'k':
        PutKey(&line, store.item->Key(), store.key_binary);
        break;
      case 'c':
        line.append(" c");
        PutNumber(&line, result == tiers::StoreResult::kStored ? cas : 0);
        break;
      default:
        break;
    }
  }
  // Only a stored item's reply is quiet.
  Reply(out, store.noreply && result == tiers::StoreResult::kStored, line);
}

Outcome Dispatcher::MetaDelete(Command& cmd, OutputQueue& out, AsyncState* async) {
  char keybuf[kMaxKeyLength];
  const std::string_view key = MetaKey(cmd, keybuf);
  const MetaFlags& f = cmd.meta;
  std::string flags;
  if (!PutOpaqueAndKey(&flags, cmd.meta_tokens, key, f.key_binary)) {
    Reply(out, false, kOpaqueTooLong);
    return Outcome::kDone;
  }
  if (PromoteFirst(async, key, AsyncState::Waiting::kCommand)) return Outcome::kWaitIo;
  const uint32_t ttl = AbsoluteExptime(f.ttl);
  tiers::MetaDeleteResult r;
  for (;;) {
    r = cache_.MetaDelete(key, f.has_cas ? &f.cas : nullptr, f.set_stale,
                          f.new_ttl ? &ttl : nullptr, Ticket(async));
    if (r != tiers::MetaDeleteResult::kNotFound) break;
    LookedAgain again = LookAgain(async, key, AsyncState::Waiting::kCommand);
    if (again == LookedAgain::kPromoting) return Outcome::kWaitIo;
    if (again == LookedAgain::kGone) break;
  }
  std::string line;
  bool quiet = false;
  switch (r) {
    case tiers::MetaDeleteResult::kNotFound:
      stats_.Add(Counter::kDeleteMisses);
      line = "NF";
      break;
    case tiers::MetaDeleteResult::kExists:
      stats_.Add(Counter::kDeleteMisses);
      line = "EX";
      break;
    case tiers::MetaDeleteResult::kDeleted:
      stats_.Add(Counter::kDeleteHits);
      line = "HD";
      quiet = cmd.noreply;
      break;
    case tiers::MetaDeleteResult::kMarkedStale:
      line = "HD";
      quiet = cmd.noreply;
      break;
  }
  line.append(flags);
  Reply(out, quiet, line);
  return Outcome::kDone;
}

Outcome Dispatcher::MetaArithmetic(Command& cmd, OutputQueue& out, AsyncState* async) {
  char keybuf[kMaxKeyLength];
  const std::string_view key = MetaKey(cmd, keybuf);
  if (PromoteFirst(async, key, AsyncState::Waiting::kCommand)) return Outcome::kWaitIo;
  const MetaFlags& f = cmd.meta;
  const bool incr = !(f.mode == 'D' || f.mode == '-');
  const uint32_t ttl = AbsoluteExptime(f.ttl);
  const uint32_t vivify_ttl = AbsoluteExptime(f.vivify_ttl);
  std::string line;
  bool failed = false;  // an opaque too long
  uint64_t value = 0;

  // The reply's flags, walked in request order against the item's expiry
  // (which T, and N for an item this command created, change on the way)
  // and its CAS unique. Returns the expiry it leaves.
  auto walk = [&](uint32_t exptime, uint64_t cas, bool created) {
    std::string_view tokens = cmd.meta_tokens;
    std::string_view t;
    while (NextKey(&tokens, &t)) {
      switch (t[0]) {
        case 'c':
          line.append(" c");
          PutNumber(&line, cas);
          break;
        case 't':
          line.append(" t");
          AppendTtl(&line, exptime);
          break;
        case 'T':
          exptime = ttl;
          break;
        case 'N':
          if (created) exptime = vivify_ttl;
          break;
        case 'O':
          if (t.size() > kMaxOpaqueLength) {
            failed = true;
            return exptime;
          }
          line.push_back(' ');
          line.append(t);
          break;
        case 'k':
          PutKey(&line, key, f.key_binary);
          break;
        default:
          break;
      }
    }
    return exptime;
  };
  auto head = [&](size_t digits) {
    if (f.value) {
      line.assign("VA ");
      PutNumber(&line, digits);
    } else {
      line.assign("HD");
    }
  };
  auto digits_of = [](uint64_t v) {
    char buf[24];
    return static_cast<size_t>(std::to_chars(buf, buf + sizeof(buf), v).ptr - buf);
  };
  auto finish = [&](bool quiet) {
    if (failed) {
      Reply(out, false, kOpaqueTooLong);
      return Outcome::kDone;
    }
    if (f.value) {
      line.append("\r\n");
      PutNumber(&line, value);
    }
    Reply(out, quiet, line);
    return Outcome::kDone;
  };

  auto after_fn = [&](tiers::Item* it, bool /*created*/) {
    head(digits_of(value));
    it->exptime = walk(it->exptime, it->Cas(), false);
    return true;
  };
  const tiers::MetaItemFn after = after_fn;  // refers to after_fn, which outlives it
  tiers::DeltaResult result;
  for (;;) {
    failed = false;
    result = cache_.Delta(key, incr, f.delta, &value, Ticket(async), f.cas, &after);
    if (result != tiers::DeltaResult::kNotFound) break;
    LookedAgain again = LookAgain(async, key, AsyncState::Waiting::kCommand);
    if (again == LookedAgain::kPromoting) return Outcome::kWaitIo;
    if (again == LookedAgain::kGone) break;
  }
  switch (result) {
    case tiers::DeltaResult::kOk:
      stats_.Add(incr ? Counter::kIncrHits : Counter::kDecrHits);
      return finish(cmd.noreply);
    case tiers::DeltaResult::kNonNumeric:
      Reply(out, false, "CLIENT_ERROR cannot increment or decrement non-numeric value");
      return Outcome::kDone;
    case tiers::DeltaResult::kNoMemory:
      Reply(out, false, "SERVER_ERROR out of memory");
      return Outcome::kDone;
    case tiers::DeltaResult::kCasMismatch:
      line.assign("EX");
      if (!PutOpaqueAndKey(&line, cmd.meta_tokens, key, f.key_binary)) failed = true;
      value = 0;
      if (failed) return finish(false);
      Reply(out, false, line);
      return Outcome::kDone;
    case tiers::DeltaResult::kNotFound:
      break;
  }
  if (!f.vivify) {
    stats_.Add(incr ? Counter::kIncrMisses : Counter::kDecrMisses);
    line.assign("NF");
    if (!PutOpaqueAndKey(&line, cmd.meta_tokens, key, f.key_binary)) {
      Reply(out, false, kOpaqueTooLong);
      return Outcome::kDone;
    }
    Reply(out, false, line);
    return Outcome::kDone;
  }
  // N: the key is created with the initial value (J), as an add.
  value = f.initial;
  char digits[24];
  const size_t len =
      static_cast<size_t>(std::to_chars(digits, digits + sizeof(digits), value).ptr - digits);
  // The expiry the flags leave it with, to create it with.
  const uint32_t exptime = walk(0, 0, true);
  line.clear();
  failed = false;
  tiers::AllocResult why;
  tiers::ItemRef item = cache_.ram().Allocate(key, 0, exptime, static_cast<uint32_t>(len), &why);
  if (!item) {
    Reply(out, false, "SERVER_ERROR Out of memory allocating new item");
    return Outcome::kDone;
  }
  std::memcpy(item->MutableValue(), digits, len);
  uint64_t cas = 0;
  if (cache_.Store(tiers::StoreMode::kAdd, std::move(item), 0, Ticket(async), &cas) !=
      tiers::StoreResult::kStored) {
    // Another client created the key meanwhile (memcached holds the key's
    // lock across both steps, so it never gets here).
    line.assign("NS");
    if (!PutOpaqueAndKey(&line, cmd.meta_tokens, key, f.key_binary)) failed = true;
    return finish(false);
  }
  head(len);
  walk(0, cas, true);
  return finish(false);  // a created item's reply is never quiet
}

Outcome Dispatcher::MetaDebug(Command& cmd, OutputQueue& out, AsyncState* async) {
  char keybuf[kMaxKeyLength];
  const std::string_view key = MetaKey(cmd, keybuf);
  if (PromoteFirst(async, key, AsyncState::Waiting::kCommand)) return Outcome::kWaitIo;
  const int64_t now = ctx_.clock->NowSeconds();
  std::string line;
  auto fn = [&](tiers::Item* it, bool /*created*/) {
    if (it == nullptr) return true;
    line.assign("ME ");
    if (it->key_binary) {
      char enc[Base64EncodedSize(kMaxKeyLength)];
      line.append(enc, Base64Encode(it->Key(), enc));
    } else {
      line.append(it->Key());
    }
    // memcached prints current_time - exptime: negative for a live item.
    line.append(" exp=");
    PutSigned(&line, it->exptime == 0 ? -1 : static_cast<int32_t>(now - int64_t{it->exptime}));
    line.append(" la=");
    PutNumber(&line, cache_.ram().AtimeNow() - it->atime);
    line.append(" cas=");
    PutNumber(&line, it->Cas());
    line.append(it->fetched ? " fetch=yes" : " fetch=no");
    line.append(" cls=1 size=");
    PutNumber(&line, MemcachedItemSize(*it));
    return true;
  };
  tiers::ItemRef item;
  for (;;) {
    if (cache_.MetaGet(key, {}, /*bump=*/false, fn, &item) == tiers::MetaGetResult::kHit) break;
    LookedAgain again = LookAgain(async, key, AsyncState::Waiting::kCommand);
    if (again == LookedAgain::kPromoting) return Outcome::kWaitIo;
    if (again == LookedAgain::kGone) break;
  }
  stats_.Add(Counter::kCmdMeta);
  Reply(out, false, item ? std::string_view(line) : std::string_view("EN"));
  return Outcome::kDone;
}

// Through the upstream pool.

Outcome Dispatcher::RelayMeta(Command& cmd, OutputQueue& out, AsyncState* async) {
  char keybuf[kMaxKeyLength];
  const std::string_view key = MetaKey(cmd, keybuf);
  upstream::RequestOp op = upstream::RequestOp::kGet;
  std::string_view verb = "mg";
  if (cmd.type == CommandType::kMetaDelete) {
    op = upstream::RequestOp::kDelete;
    verb = "md";
  } else if (cmd.type == CommandType::kMetaArithmetic) {
    op = upstream::RequestOp::kArith;
    verb = "ma";
  } else if (cmd.type == CommandType::kMetaDebug) {
    verb = "me";
  }
  if (Forward(async, key, op, RelayHead(verb, cmd.key, cmd.meta_tokens), {},
              AsyncState::Waiting::kCommand, /*relay=*/true, /*quiet=*/cmd.noreply)) {
    return Outcome::kWaitIo;
  }
  const bool plain = cmd.type == CommandType::kMetaGet && PlainMetaGet(cmd.meta_tokens);
  AsyncState::Forwarded answer;
  if ((plain || cmd.type == CommandType::kMetaDebug) && !async->forwarded.marked) {
    // A read (of a key the local tiers did not have, for an mg): nothing
    // to drop.
    answer = std::move(async->forwarded);
    async->forwarded = {};
  } else {
    // A write, a lease or touch, or an item the pool has marked stale or
    // handed a win token for: no local copy may stay.
    answer = TakeAnswer(async, key);
  }
  std::string miss;
  if (plain) PutOpaqueAndKey(&miss, cmd.meta_tokens, key, cmd.meta.key_binary);
  PassOnRelayed(cmd.type, answer, plain, cmd.noreply, miss, out);
  return Outcome::kDone;
}

Outcome Dispatcher::RelayMetaStore(PendingStore& store, OutputQueue& out, AsyncState* async) {
  const std::string key(store.item->Key());
  if (Forward(async, key, upstream::RequestOp::kStore, store.relay_head, store.item,
              AsyncState::Waiting::kStore, /*relay=*/true, /*quiet=*/store.relay_quiet)) {
    return Outcome::kWaitIo;
  }
  store.item.Reset();
  stats_.Add(Counter::kCmdSet);
  PassOnRelayed(CommandType::kMetaSet, TakeAnswer(async, key), false, store.relay_quiet, {}, out);
  return Outcome::kDone;
}

void Dispatcher::PassOnRelayed(CommandType type, const AsyncState::Forwarded& answer,
                               bool plain_get, bool quiet, std::string_view miss_flags,
                               OutputQueue& out) {
  const bool get = type == CommandType::kMetaGet;
  switch (answer.kind) {
    case upstream::ReplyKind::kOk:
      return;  // only the MN came: memcached held a quiet command's reply back
    case upstream::ReplyKind::kFailed:
      if (plain_get) {
        // As a classic get: no answer from the pool is a miss.
        stats_.Add(Counter::kCmdGet);
        stats_.Add(Counter::kGetMisses);
        if (!quiet) {
          std::string line("EN");
          line.append(miss_flags);
          out.AppendLine(line);
        }
        return;
      }
      out.AppendLine(kUpstreamUnavailable);
      return;
    case upstream::ReplyKind::kError:
      out.AppendLine(answer.line);
      return;
    case upstream::ReplyKind::kValue:
      out.AppendLine(answer.line);
      out.Append(answer.value);
      out.Append("\r\n");
      break;
    default:
      out.AppendLine(answer.line);
      break;
  }
  if (get) {
    stats_.Add(Counter::kCmdGet);
    stats_.Add(answer.kind == upstream::ReplyKind::kMiss ? Counter::kGetMisses
                                                         : Counter::kGetHits);
  } else if (type == CommandType::kMetaDelete) {
    stats_.Add(answer.kind == upstream::ReplyKind::kHit ? Counter::kDeleteHits
                                                        : Counter::kDeleteMisses);
  } else if (type == CommandType::kMetaDebug) {
    stats_.Add(Counter::kCmdMeta);
  }
}

}  // namespace strata::proxy
