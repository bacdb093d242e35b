#include "proxy/protocol/protocol.h"

#include <algorithm>
#include <climits>
#include <cstring>

#include "common/numbers.h"
#include "proxy/protocol/base64.h"

namespace strata::proxy {

using common::SafeStrtod;
using common::SafeStrtol;
using common::SafeStrtoul;
using common::SafeStrtoull;

namespace {

constexpr std::string_view kBadFormat = "CLIENT_ERROR bad command line format";
constexpr std::string_view kBadExptime = "CLIENT_ERROR invalid exptime argument";
constexpr std::string_view kBadDelta = "CLIENT_ERROR invalid numeric delta argument";
constexpr std::string_view kBadDelete =
    "CLIENT_ERROR bad command line format.  Usage: delete <key> [noreply]";
constexpr std::string_view kError = "ERROR";
constexpr std::string_view kOk = "OK";
constexpr std::string_view kBadLine = "CLIENT_ERROR bad command line";
constexpr std::string_view kBadClass = "BADCLASS invalid class id";

struct Tokens {
  std::string_view t[kMaxTokens];
  size_t n = 0;              // real tokens (<= kMaxTokens - 1)
  std::string_view rest;     // unseparated remainder after 23 tokens
};

// memcached's tokenize_command().
void Tokenize(std::string_view line, Tokens* out) {
  size_t s = 0;
  size_t e = 0;
  out->n = 0;
  out->rest = {};
  for (; e < line.size(); ++e) {
    if (line[e] == ' ') {
      if (s != e) {
        out->t[out->n++] = line.substr(s, e - s);
        if (out->n == kMaxTokens - 1) {
          ++e;
          s = e;
          out->rest = line.substr(e);
          return;
        }
      }
      s = e + 1;
    }
  }
  if (s != e) out->t[out->n++] = line.substr(s, e - s);
}

ParseResult Error(Command* cmd, std::string_view reply, bool noreply, size_t consumed) {
  cmd->type = CommandType::kError;
  cmd->reply = reply;
  cmd->noreply = noreply;
  return {ParseStatus::kCommand, consumed};
}

bool IsNoreply(const Tokens& tk) { return tk.n > 0 && tk.t[tk.n - 1] == "noreply"; }

// Counts the `n` - 1 arguments after the command name; keeps the first
// Command::kKeptArgs.
void KeepArgs(const Tokens& tk, size_t n, Command* cmd) {
  for (size_t i = 1; i < n; ++i) {
    if (cmd->nargs < Command::kKeptArgs) cmd->args[cmd->nargs] = tk.t[i];
    ++cmd->nargs;
  }
}

// The keys of a get-family command: everything after token `first_key`.
std::string_view KeysFrom(std::string_view line, std::string_view first_key) {
  return line.substr(static_cast<size_t>(first_key.data() - line.data()));
}

void FindBadKey(Command* cmd) {
  std::string_view keys = cmd->keys;
  std::string_view key;
  int64_t index = 0;
  while (NextKey(&keys, &key)) {
    if (key.size() > kMaxKeyLength) {
      cmd->bad_key_index = index;
      return;
    }
    ++index;
  }
}

// `slabs reassign <src> <dst>` and `slabs automove <0|1|2|ratio N>`
// (proto_text.c's process_slabs_command). strata has no slab classes to
// move pages between: it reports one class, 1, and answers a reassignment
// as memcached answers one whose source has no spare pages.
ParseResult Slabs(const Tokens& tk, Command* cmd, size_t consumed) {
  const size_t n = tk.n;
  auto fixed = [&](std::string_view reply, bool noreply) {
    cmd->type = CommandType::kFixedReply;
    cmd->reply = reply;
    cmd->noreply = noreply;
    return ParseResult{ParseStatus::kCommand, consumed};
  };
  if (n == 4 && tk.t[1] == "reassign") {
    int32_t src = 0;
    int32_t dst = 0;
    if (!SafeStrtol(tk.t[2], &src) || !SafeStrtol(tk.t[3], &dst)) {
      return fixed(kBadFormat, false);
    }
    if (src == dst) return fixed("SAME src and dst class are identical", false);
    // -1 asks memcached to pick any class with a spare page: none here.
    // Class 0 is memcached's global page pool.
    if (src < 0 || src > 1 || dst < 0 || dst > 1) {
      return fixed("BADCLASS invalid src or dst class id", false);
    }
    return fixed("NOSPARE source class has no spare pages", false);
  }
  if (n >= 3 && tk.t[1] == "automove") {
    const bool noreply = IsNoreply(tk);
    if (tk.t[2] == "ratio") {
      double ratio = 0;
      if (n < 4 || !SafeStrtod(tk.t[3], &ratio)) return fixed(kError, noreply);
      return fixed(kOk, noreply);
    }
    uint32_t level = 0;
    if (!SafeStrtoul(tk.t[2], &level)) return fixed(kBadFormat, noreply);
    return fixed(level <= 2 ? kOk : kError, noreply);
  }
  return fixed(kError, false);
}

// `lru tune|mode|temp_ttl ...` (process_lru_command), as memcached with its
// default LRU maintainer answers them. strata's RAM tier has no segmented
// LRU to tune.
ParseResult Lru(const Tokens& tk, Command* cmd, size_t consumed) {
  const size_t n = tk.n;
  const bool noreply = IsNoreply(tk);
  auto fixed = [&](std::string_view reply) {
    cmd->type = CommandType::kFixedReply;
    cmd->reply = reply;
    cmd->noreply = noreply;
    return ParseResult{ParseStatus::kCommand, consumed};
  };
  if (n < 2) return Error(cmd, kError, false, consumed);
  if (tk.t[1] == "tune" && n >= 6) {
    uint32_t pct_hot = 0;
    uint32_t pct_warm = 0;
    double hot_factor = 0;
    double factor = 0;
    if (!SafeStrtoul(tk.t[2], &pct_hot) || !SafeStrtoul(tk.t[3], &pct_warm) ||
        !SafeStrtod(tk.t[4], &hot_factor) || !SafeStrtod(tk.t[5], &factor)) {
      return fixed(kError);
    }
    if (pct_hot + pct_warm > 80) return fixed("ERROR hot and warm pcts must not exceed 80");
    if (factor <= 0 || hot_factor <= 0) {
      return fixed("ERROR hot/warm age factors must be greater than 0");
    }
    return fixed(kOk);
  }
  if (tk.t[1] == "mode" && n >= 3) {
    return fixed(tk.t[2] == "flat" || tk.t[2] == "segmented" ? kOk : kError);
  }
  if (tk.t[1] == "temp_ttl" && n >= 3) {
    int32_t ttl = 0;
    return fixed(SafeStrtol(tk.t[2], &ttl) ? kOk : kError);
  }
  return fixed(kError);
}

// The class list of `lru_crawler crawl|metadump` (crawler.c's
// lru_crawler_crawl): "all", "hash", or class ids separated by commas.
// Sets cmd->reply when memcached refuses it, and cmd->number to 1 when it
// selects class 1.
void CrawlerClasses(std::string_view list, bool metadump, Command* cmd) {
  if (list == "all") {
    cmd->number = 1;
    return;
  }
  if (list == "hash") {
    // Walking the hash table is for metadump only.
    if (metadump) {
      cmd->number = 1;
    } else {
      cmd->reply = "ERROR an unknown error happened";
    }
    return;
  }
  bool any = false;
  size_t i = 0;
  while (i < list.size()) {
    size_t j = list.find(',', i);
    if (j == std::string_view::npos) j = list.size();
    if (j > i) {  // strtok_r skips empty pieces
      uint32_t id = 0;
      if (!SafeStrtoul(list.substr(i, j - i), &id) || id < 1 || id >= kMaxSlabClasses) {
        cmd->reply = kBadClass;
        cmd->number = 0;
        return;
      }
      any = true;
      if (id == 1) cmd->number = 1;
    }
    i = j + 1;
  }
  if (!any) cmd->reply = "NOTSTARTED no items to crawl";
}

// `lru_crawler ...` (process_lru_crawler_command). Never noreply.
ParseResult LruCrawler(const Tokens& tk, Command* cmd, size_t consumed) {
  const size_t n = tk.n;
  auto fixed = [&](std::string_view reply) {
    cmd->type = CommandType::kFixedReply;
    cmd->reply = reply;
    return ParseResult{ParseStatus::kCommand, consumed};
  };
  auto op = [&](CrawlerOp which) {
    cmd->type = CommandType::kLruCrawler;
    cmd->crawler = which;
    return ParseResult{ParseStatus::kCommand, consumed};
  };
  if (n == 3) {
    const std::string_view sub = tk.t[1];
    if (sub == "crawl" || sub == "metadump") {
      const bool metadump = sub == "metadump";
      CrawlerClasses(tk.t[2], metadump, cmd);
      return op(metadump ? CrawlerOp::kMetadump : CrawlerOp::kCrawl);
    }
    if (sub == "tocrawl") {
      uint32_t tocrawl = 0;
      return fixed(SafeStrtoul(tk.t[2], &tocrawl) ? kOk : kBadFormat);
    }
    if (sub == "sleep") {
      uint32_t sleep = 0;
      if (!SafeStrtoul(tk.t[2], &sleep)) return fixed(kBadFormat);
      return fixed(sleep > 1000000 ? "CLIENT_ERROR sleep must be one second or less" : kOk);
    }
  } else if (n == 2) {
    if (tk.t[1] == "enable") return op(CrawlerOp::kEnable);
    if (tk.t[1] == "disable") return op(CrawlerOp::kDisable);
  }
  return Error(cmd, kError, false, consumed);
}

// `stats ...`: the arguments are kept for the dispatcher; `stats cachedump
// <class> <limit>` is checked here as process_stat checks it.
ParseResult Stats(const Tokens& tk, Command* cmd, size_t consumed) {
  const size_t n = tk.n;
  if (n >= 2 && tk.t[1] == "cachedump") {
    if (n < 4) return Error(cmd, kBadLine, false, consumed);
    uint32_t id = 0;
    uint32_t limit = 0;
    if (!SafeStrtoul(tk.t[2], &id) || !SafeStrtoul(tk.t[3], &limit)) {
      return Error(cmd, kBadFormat, false, consumed);
    }
    if (id >= kMaxSlabClasses) return Error(cmd, "CLIENT_ERROR Illegal slab id", false, consumed);
    cmd->number = id;
    cmd->delta = limit;
  }
  cmd->type = CommandType::kStats;
  KeepArgs(tk, n, cmd);
  return {ParseStatus::kCommand, consumed};
}

// Meta commands (proto_text.c). `n` counts real tokens; memcached's
// ntokens is n + 1 (its terminal token).
constexpr size_t kMaxMetaTokens = 20;  // MFLAG_MAX_OPT_LENGTH, against ntokens

// _meta_flag_preparse() over tokens [start, n): fills cmd->meta; returns
// the error line, or an empty view.
std::string_view MetaPreparse(const Tokens& tk, size_t start, Command* cmd) {
  MetaFlags& of = cmd->meta;
  std::string_view errstr;
  bool has_error = false;
  bool seen[127] = {};
  for (size_t i = start; i < tk.n; ++i) {
    const std::string_view t = tk.t[i];
    const auto o = static_cast<uint8_t>(t[0]);
    if (o >= 127 || seen[o]) return "CLIENT_ERROR duplicate flag";
    seen[o] = true;
    const std::string_view arg = t.substr(1);
    auto bad_token = [&] {
      errstr = "CLIENT_ERROR bad token in command line format";
      has_error = true;
    };
    switch (o) {
      case 'b': {
        char decoded[kMaxKeyLength];
        if (Base64Decode(tk.t[1], decoded) == 0) {
          errstr = "CLIENT_ERROR error decoding key";
          has_error = true;
        }
        of.key_binary = true;
        break;
      }
      case 'N':
        of.vivify = true;
        of.locked = true;
        if (!SafeStrtol(arg, &of.vivify_ttl)) bad_token();
        break;
      case 'T':
        of.locked = true;
        if (!SafeStrtol(arg, &of.ttl)) {
          bad_token();
        } else {
          of.new_ttl = true;
        }
        break;
      case 'R':
        of.locked = true;
        if (!SafeStrtol(arg, &of.recache_ttl)) {
          bad_token();
        } else {
          of.recache = true;
        }
        break;
      case 'l':
      case 'h':
        of.locked = true;  // memcached delays the bump to show the state before it
        break;
      case 'O':
      case 'P':
      case 'L':
      case 'k':
      case 's':
      case 't':
      case 'c':
      case 'f':
        break;
      case 'v':
        of.value = true;
        break;
      case 'u':
        of.no_update = true;
        break;
      case 'q':
        cmd->noreply = true;
        break;
      case 'F':
        if (!SafeStrtoul(arg, &of.client_flags)) has_error = true;
        break;
      case 'C':
        if (!SafeStrtoull(arg, &of.cas)) {
          bad_token();
        } else {
          of.has_cas = true;
        }
        break;
      case 'M':
        if (t.size() != 2) {
          errstr = "CLIENT_ERROR incorrect length for M token";
          has_error = true;
        } else {
          of.mode = t[1];
        }
        break;
      case 'J':
        if (!SafeStrtoull(arg, &of.initial)) {
          errstr = "CLIENT_ERROR invalid numeric initial value";
          has_error = true;
        }
        break;
      case 'D':
        if (!SafeStrtoull(arg, &of.delta)) {
          errstr = "CLIENT_ERROR invalid numeric delta value";
          has_error = true;
        }
        break;
      case 'I':
        of.set_stale = true;
        break;
      default:
        return "CLIENT_ERROR invalid flag";
    }
  }
  if (!has_error) return {};
  return errstr.empty() ? kBadFormat : errstr;
}

// The meta error reply: memcached's out_errstring() sends it even in
// quiet mode.
ParseResult MetaError(Command* cmd, std::string_view reply, size_t consumed) {
  cmd->noreply = false;
  return Error(cmd, reply, false, consumed);
}

ParseResult Meta(const Tokens& tk, Command* cmd, size_t consumed) {
  const size_t n = tk.n;
  const char which = tk.t[0][1];
  if (which == 'n') {
    cmd->type = CommandType::kMetaNoop;
    return {ParseStatus::kCommand, consumed};
  }
  if (which == 'e') {  // process_meta_command
    if (n < 2 || tk.t[1].size() > kMaxKeyLength) return MetaError(cmd, kBadFormat, consumed);
    if (n >= 3 && tk.t[2] == "b") {
      char decoded[kMaxKeyLength];
      if (Base64Decode(tk.t[1], decoded) == 0) return MetaError(cmd, kBadFormat, consumed);
      cmd->meta.key_binary = true;
    }
    cmd->type = CommandType::kMetaDebug;
    cmd->key = tk.t[1];
    return {ParseStatus::kCommand, consumed};
  }
  CommandType type;
  switch (which) {
    case 'g':
      type = CommandType::kMetaGet;
      break;
    case 's':
      type = CommandType::kMetaSet;
      break;
    case 'd':
      type = CommandType::kMetaDelete;
      break;
    case 'a':
      type = CommandType::kMetaArithmetic;
      break;
    default:
      return Error(cmd, kError, false, consumed);
  }
  if (n < 2) return Error(cmd, kError, false, consumed);  // WANT_TOKENS_MIN(ntokens, 3)
  if (tk.t[1].size() > kMaxKeyLength) return MetaError(cmd, kBadFormat, consumed);
  size_t first_flag = 2;
  if (type == CommandType::kMetaSet) {
    if (n == 2) return MetaError(cmd, kBadFormat, consumed);
    if (n + 1 > kMaxMetaTokens) {
      return MetaError(cmd, "CLIENT_ERROR options flags too long", consumed);
    }
    int32_t vlen = 0;
    if (!SafeStrtol(tk.t[2], &vlen) || vlen < 0 || vlen > INT_MAX - 2) {
      return MetaError(cmd, kBadFormat, consumed);
    }
    cmd->value_len = static_cast<uint32_t>(vlen);
    first_flag = 3;
  } else if (n + 1 > kMaxMetaTokens) {
    return MetaError(cmd,
                     type == CommandType::kMetaGet ? "CLIENT_ERROR options flags are too long"
                                                   : "CLIENT_ERROR options flags too long",
                     consumed);
  }
  cmd->key = tk.t[1];
  if (n > 2) {
    const char* end = tk.t[n - 1].data() + tk.t[n - 1].size();
    cmd->meta_tokens = std::string_view(tk.t[2].data(), static_cast<size_t>(end - tk.t[2].data()));
  }
  std::string_view err = MetaPreparse(tk, first_flag, cmd);
  if (!err.empty()) {
    if (type == CommandType::kMetaDelete || type == CommandType::kMetaArithmetic) {
      err = "CLIENT_ERROR invalid or duplicate flag";
    }
    const uint32_t vlen = cmd->value_len;
    MetaError(cmd, err, consumed);
    if (type == CommandType::kMetaSet) {
      cmd->swallow = true;
      cmd->value_len = vlen;
    }
    return {ParseStatus::kCommand, consumed};
  }
  if (type == CommandType::kMetaSet) {
    // The return flags are looked at before the mode, but the mode's error
    // wins (process_mset_command).
    bool long_opaque = false;
    std::string_view rest = cmd->meta_tokens;
    std::string_view t;
    while (NextKey(&rest, &t)) {
      if (t[0] == 'O' && t.size() > kMaxOpaqueLength) {
        long_opaque = true;
        break;
      }
    }
    std::string_view mode_error;
    switch (cmd->meta.mode) {
      case 0:
      case 'E':
      case 'A':
      case 'P':
      case 'R':
      case 'S':
        break;
      default:
        mode_error = "CLIENT_ERROR invalid mode for ms M token";
    }
    if (!mode_error.empty() || long_opaque) {
      const uint32_t vlen = cmd->value_len;
      MetaError(cmd, mode_error.empty() ? "CLIENT_ERROR opaque token too long" : mode_error,
                consumed);
      cmd->swallow = true;
      cmd->value_len = vlen;
      return {ParseStatus::kCommand, consumed};
    }
  } else if (type == CommandType::kMetaArithmetic) {
    switch (cmd->meta.mode) {
      case 0:
      case 'I':
      case '+':
      case 'D':
      case '-':
        break;
      default:
        return MetaError(cmd, "CLIENT_ERROR invalid mode for ma M token", consumed);
    }
  }
  cmd->type = type;
  return {ParseStatus::kCommand, consumed};
}

}  // namespace

bool NextKey(std::string_view* keys, std::string_view* key) {
  size_t i = 0;
  while (i < keys->size() && (*keys)[i] == ' ') ++i;
  if (i == keys->size()) {
    *keys = {};
    return false;
  }
  size_t j = i;
  while (j < keys->size() && (*keys)[j] != ' ') ++j;
  *key = keys->substr(i, j - i);
  *keys = keys->substr(j);
  return true;
}

ParseResult ParseCommand(std::string_view input, Command* cmd, size_t line_limit) {
  const void* nl = std::memchr(input.data(), '\n', input.size());
  if (nl == nullptr) {
    if (input.size() > std::max(line_limit, kLineLimit)) {
      size_t spaces = 0;
      while (spaces < input.size() && input[spaces] == ' ') ++spaces;
      std::string_view start = input.substr(spaces);
      bool multiget = start.starts_with("get ") || start.starts_with("gets ");
      if (spaces > 100 || !multiget || input.size() > kMaxMultigetLine) {
        return {ParseStatus::kClose, 0};
      }
    }
    return {ParseStatus::kNeedMore, 0};
  }
  size_t el = static_cast<size_t>(static_cast<const char*>(nl) - input.data());
  size_t consumed = el + 1;
  std::string_view line = input.substr(0, el);
  if (el > 1 && line.back() == '\r') line.remove_suffix(1);
  if (const void* nul = std::memchr(line.data(), '\0', line.size())) {
    line = line.substr(0, static_cast<size_t>(static_cast<const char*>(nul) - line.data()));
  }

  *cmd = Command{};
  Tokens tk;
  Tokenize(line, &tk);
  if (tk.n < 1 || tk.t[0].size() < 2) return Error(cmd, kError, false, consumed);
  std::string_view name = tk.t[0];
  const size_t n = tk.n;

  auto storage = [&](CommandType type) -> ParseResult {
    bool is_cas = type == CommandType::kCas;
    size_t want = is_cas ? 6 : 5;
    if (n != want && n != want + 1) return Error(cmd, kError, false, consumed);
    bool noreply = IsNoreply(tk);
    if (tk.t[1].size() > kMaxKeyLength) return Error(cmd, kBadFormat, noreply, consumed);
    int32_t vlen = 0;
    if (!(SafeStrtoul(tk.t[2], &cmd->flags) && SafeStrtol(tk.t[3], &cmd->exptime) &&
          SafeStrtol(tk.t[4], &vlen))) {
      return Error(cmd, kBadFormat, noreply, consumed);
    }
    if (is_cas && !SafeStrtoull(tk.t[5], &cmd->cas_unique)) {
      return Error(cmd, kBadFormat, noreply, consumed);
    }
    if (vlen < 0 || vlen > INT_MAX - 2) return Error(cmd, kBadFormat, noreply, consumed);
    cmd->type = type;
    cmd->noreply = noreply;
    cmd->key = tk.t[1];
    cmd->value_len = static_cast<uint32_t>(vlen);
    return {ParseStatus::kCommand, consumed};
  };

  auto get = [&](CommandType type, bool touch) -> ParseResult {
    if (n < 2) return Error(cmd, kError, false, consumed);
    cmd->type = type;
    if (touch) {
      if (!SafeStrtol(tk.t[1], &cmd->exptime)) return Error(cmd, kBadExptime, false, consumed);
      cmd->keys = n >= 3 ? KeysFrom(line, tk.t[2])
                         : (tk.rest.empty() ? std::string_view{} : tk.rest);
    } else {
      cmd->keys = KeysFrom(line, tk.t[1]);
    }
    FindBadKey(cmd);
    return {ParseStatus::kCommand, consumed};
  };

  auto arithmetic = [&](CommandType type) -> ParseResult {
    if (n != 3 && n != 4) return Error(cmd, kError, false, consumed);
    bool noreply = IsNoreply(tk);
    if (tk.t[1].size() > kMaxKeyLength) return Error(cmd, kBadFormat, noreply, consumed);
    if (!SafeStrtoull(tk.t[2], &cmd->delta)) return Error(cmd, kBadDelta, noreply, consumed);
    cmd->type = type;
    cmd->noreply = noreply;
    cmd->key = tk.t[1];
    return {ParseStatus::kCommand, consumed};
  };

  const char first = name[0];
  if (first == 'm' && name.size() == 2) return Meta(tk, cmd, consumed);
  if (first == 'g') {
    if (n < 2) return Error(cmd, kError, false, consumed);
    if (name == "get") return get(CommandType::kGet, false);
    if (name == "gets") return get(CommandType::kGets, false);
    if (name == "gat") return get(CommandType::kGat, true);
    if (name == "gats") return get(CommandType::kGats, true);
    return Error(cmd, kError, false, consumed);
  }
  if (name == "set") return storage(CommandType::kSet);
  if (name == "add") return storage(CommandType::kAdd);
  if (name == "append") return storage(CommandType::kAppend);
  if (name == "cas") return storage(CommandType::kCas);
  if (name == "replace") return storage(CommandType::kReplace);
  if (name == "prepend") return storage(CommandType::kPrepend);
  if (name == "incr") return arithmetic(CommandType::kIncr);
  if (name == "decr") return arithmetic(CommandType::kDecr);
  if (name == "bget") return get(CommandType::kGet, false);
  if (name == "delete") {
    if (n < 2 || n > 4) return Error(cmd, kError, false, consumed);
    bool noreply = false;
    if (n > 2) {
      bool hold_is_zero = tk.t[2] == "0";
      noreply = IsNoreply(tk);
      bool valid = (n == 3 && (hold_is_zero || noreply)) || (n == 4 && hold_is_zero && noreply);
      if (!valid) return Error(cmd, kBadDelete, noreply, consumed);
    }
    if (tk.t[1].size() > kMaxKeyLength) return Error(cmd, kBadFormat, noreply, consumed);
    cmd->type = CommandType::kDelete;
    cmd->noreply = noreply;
    cmd->key = tk.t[1];
    return {ParseStatus::kCommand, consumed};
  }
  if (name == "touch") {
    if (n != 3 && n != 4) return Error(cmd, kError, false, consumed);
    bool noreply = IsNoreply(tk);
    if (tk.t[1].size() > kMaxKeyLength) return Error(cmd, kBadFormat, noreply, consumed);
    if (!SafeStrtol(tk.t[2], &cmd->exptime)) return Error(cmd, kBadExptime, noreply, consumed);
    cmd->type = CommandType::kTouch;
    cmd->noreply = noreply;
    cmd->key = tk.t[1];
    return {ParseStatus::kCommand, consumed};
  }
  if (name == "stats") return Stats(tk, cmd, consumed);
  if (name == "slabs") return Slabs(tk, cmd, consumed);
  if (name == "lru") return Lru(tk, cmd, consumed);
  if (name == "lru_crawler") return LruCrawler(tk, cmd, consumed);
  if (name == "watch") {
    // As memcached -W: strata has no log stream to attach a watcher to.
    return Error(cmd, "CLIENT_ERROR watch commands not allowed", IsNoreply(tk), consumed);
  }
  if (name == "flush_all") {
    if (n < 1 || n > 3) return Error(cmd, kError, false, consumed);
    bool noreply = IsNoreply(tk);
    if (n != (noreply ? 2u : 1u)) {
      if (!SafeStrtol(tk.t[1], &cmd->exptime)) return Error(cmd, kBadExptime, noreply, consumed);
      cmd->has_exptime = true;
    }
    cmd->type = CommandType::kFlushAll;
    cmd->noreply = noreply;
    return {ParseStatus::kCommand, consumed};
  }
  if (name == "version") {
    cmd->type = CommandType::kVersion;
    return {ParseStatus::kCommand, consumed};
  }
  if (name == "quit") {
    cmd->type = CommandType::kQuit;
    return {ParseStatus::kCommand, consumed};
  }
  if (name == "verbosity") {
    if (n != 2 && n != 3) return Error(cmd, kError, false, consumed);
    bool noreply = IsNoreply(tk);
    if (!SafeStrtoul(tk.t[1], &cmd->number)) return Error(cmd, kBadFormat, noreply, consumed);
    cmd->type = CommandType::kVerbosity;
    cmd->noreply = noreply;
    return {ParseStatus::kCommand, consumed};
  }
  if (name == "cache_memlimit") {
    if (n != 2 && n != 3) return Error(cmd, kError, false, consumed);
    bool noreply = IsNoreply(tk);
    if (!SafeStrtoul(tk.t[1], &cmd->number)) return Error(cmd, kError, noreply, consumed);
    cmd->type = CommandType::kCacheMemlimit;
    cmd->noreply = noreply;
    return {ParseStatus::kCommand, consumed};
  }
  if (name == "shutdown") {
    cmd->type = CommandType::kShutdown;
    KeepArgs(tk, n, cmd);
    return {ParseStatus::kCommand, consumed};
  }
  // memcached dispatches on the first letter; for the letters it knows, an
  // unknown name is ERROR. Otherwise an HTTP request line closes the
  // connection.
  if (std::string_view("sacidt").find(first) == std::string_view::npos &&
      tk.t[n - 1].starts_with("HTTP/")) {
    return {ParseStatus::kClose, consumed};
  }
  return Error(cmd, kError, false, consumed);
}

}  // namespace strata::proxy
