// Fuzzes proxy::ParseCommand over arbitrary bytes: parses commands through
// the input as a connection would (skipping storage commands' data blocks)
// and checks, for every command:
//   - framing: consumed <= size, progress, kNeedMore only without a '\n',
//     kClose only by the 2048-byte rule or for an HTTP request line;
//   - resumability: the line alone parses to the same Command, and the line
//     minus its last byte needs more bytes (or closes by the 2048-byte rule);
//   - views (key, keys, args) lie inside the line;
//   - keys are <= 250 bytes unless bad_key_index says which one is not;
//   - a differential check against an independent re-implementation of
//     memcached's tokenizer and util.c's number parsers on glibc: the
//     command name, token counts, noreply, every number and the HTTP rule;
//     for the admin commands strata answers from the parse (slabs, lru,
//     lru_crawler, watch, stats cachedump), the reply memcached's
//     proto_text.c would send, written from its code with strtok_r and
//     strtod;
//   - the caller's line limit: with kReadBufferSize - 1 instead of
//     kLineLimit, a line without its newline closes only past 16 KiB.

#include <algorithm>
#include <climits>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>

#include "proxy/protocol/protocol.h"
#include "tests/fuzz/command_text.h"
#include "tests/fuzz/fuzz_check.h"
#include "tests/fuzz/safe_strto_oracle.h"

namespace strata::proxy {
namespace {

// memcached's tokenizer, written independently of protocol.cc: split on
// ' ', at most 23 tokens, the rest of the line left unsplit.
struct RefTokens {
  std::string_view t[kMaxTokens];
  size_t n = 0;
};

RefTokens RefTokenize(std::string_view line) {
  RefTokens tk;
  size_t i = 0;
  while (i < line.size() && tk.n < kMaxTokens - 1) {
    while (i < line.size() && line[i] == ' ') ++i;
    if (i == line.size()) break;
    size_t j = i;
    while (j < line.size() && line[j] != ' ') ++j;
    tk.t[tk.n++] = line.substr(i, j - i);
    i = j;
  }
  return tk;
}

// The command line as memcached sees it: up to the '\n', one '\r' dropped
// if something precedes it, cut at the first NUL.
std::string_view RefLine(std::string_view input, size_t newline) {
  std::string_view line = input.substr(0, newline);
  if (newline > 1 && line.back() == '\r') line.remove_suffix(1);
  size_t nul = line.find('\0');
  if (nul != std::string_view::npos) line = line.substr(0, nul);
  return line;
}

bool ClosesWithoutNewline(std::string_view in, size_t limit = kLineLimit) {
  if (in.size() <= limit) return false;
  size_t spaces = 0;
  while (spaces < in.size() && in[spaces] == ' ') ++spaces;
  std::string_view rest = in.substr(spaces);
  bool multiget = rest.starts_with("get ") || rest.starts_with("gets ");
  return spaces > 100 || !multiget || in.size() > kMaxMultigetLine;
}

bool Within(std::string_view part, std::string_view whole) {
  if (part.empty()) return true;
  return part.data() >= whole.data() && part.data() + part.size() <= whole.data() + whole.size();
}

bool IsKnownError(std::string_view reply) {
  return reply == "ERROR" || reply == "CLIENT_ERROR bad command line format" ||
         reply == "CLIENT_ERROR watch commands not allowed" ||
         reply == "CLIENT_ERROR invalid exptime argument" ||
         reply == "CLIENT_ERROR invalid numeric delta argument" ||
         reply == "CLIENT_ERROR bad command line format.  Usage: delete <key> [noreply]" ||
         // the meta commands' (proto_text.c)
         reply == "CLIENT_ERROR options flags are too long" ||
         reply == "CLIENT_ERROR options flags too long" || reply == "CLIENT_ERROR duplicate flag" ||
         reply == "CLIENT_ERROR invalid flag" ||
         reply == "CLIENT_ERROR bad token in command line format" ||
         reply == "CLIENT_ERROR error decoding key" ||
         reply == "CLIENT_ERROR incorrect length for M token" ||
         reply == "CLIENT_ERROR invalid numeric initial value" ||
         reply == "CLIENT_ERROR invalid numeric delta value" ||
         reply == "CLIENT_ERROR invalid or duplicate flag" ||
         reply == "CLIENT_ERROR invalid mode for ms M token" ||
         reply == "CLIENT_ERROR invalid mode for ma M token" ||
         reply == "CLIENT_ERROR opaque token too long";
}

// The names that never reach memcached's HTTP check.
bool IsKnownName(std::string_view name) {
  static constexpr std::string_view kNames[] = {
      "get",       "gets",    "gat",  "gats",      "bget",           "set",     "add",   "replace",
      "append",    "prepend", "cas",  "incr",      "decr",           "delete",  "touch", "stats",
      "flush_all", "version", "quit", "verbosity", "cache_memlimit", "shutdown", "slabs", "lru",
      "lru_crawler", "watch"};
  for (std::string_view n : kNames) {
    if (n == name) return true;
  }
  return false;
}

// Whether memcached would close the connection on this (complete) line.
bool RefIsHttpClose(const RefTokens& tk) {
  if (tk.n < 1 || tk.t[0].size() < 2) return false;
  std::string_view name = tk.t[0];
  char first = name[0];
  if (first == 'g' || (first == 'm' && name.size() == 2)) return false;
  if (std::string_view("sacidt").find(first) != std::string_view::npos) return false;
  if (IsKnownName(name)) return false;
  return tk.t[tk.n - 1].starts_with("HTTP/");
}

// What memcached 1.6.18 (default options, no watchers as with -W) does with
// the admin commands strata answers from the parse. `ntokens` counts the
// terminating token as memcached's tokenize_command() does.
struct RefAdmin {
  bool applies = false;
  CommandType type = CommandType::kError;
  std::string reply;
  bool noreply = false;
  CrawlerOp crawler = CrawlerOp::kNone;
  uint32_t number = 0;
  uint64_t delta = 0;
};

// crawler.c's lru_crawler_crawl() class list: the reply when refused ("" if
// accepted) and whether class 1 is selected.
void RefCrawlerClasses(std::string_view list, bool metadump, RefAdmin* ref) {
  std::string copy = oracle::CString(list);
  if (copy == "all") {
    ref->number = 1;
    return;
  }
  if (copy == "hash") {
    if (metadump) {
      ref->number = 1;
    } else {
      ref->reply = "ERROR an unknown error happened";
    }
    return;
  }
  int starts = 0;
  char* save = nullptr;
  for (char* p = strtok_r(copy.data(), ",", &save); p != nullptr; p = strtok_r(nullptr, ",", &save)) {
    uint32_t sid = 0;
    if (!oracle::McSafeStrtoul(p, &sid) || sid < 1 || sid >= 64) {
      ref->reply = "BADCLASS invalid class id";
      ref->number = 0;
      return;
    }
    ++starts;
    if (sid == 1) ref->number = 1;
  }
  if (starts == 0) ref->reply = "NOTSTARTED no items to crawl";
}

RefAdmin RefAdminCommand(const RefTokens& tk) {
  RefAdmin ref;
  if (tk.n < 1 || tk.t[0].size() < 2) return ref;
  const size_t ntokens = tk.n + 1;
  auto tok = [&](size_t i) { return i < tk.n ? std::string_view(tk.t[i]) : std::string_view(); };
  const bool noreply_last = tok(ntokens - 2) == "noreply";
  auto fixed = [&](std::string reply, bool noreply) {
    ref.applies = true;
    ref.type = CommandType::kFixedReply;
    ref.reply = std::move(reply);
    ref.noreply = noreply;
  };
  auto error = [&](std::string reply, bool noreply) {
    ref.applies = true;
    ref.type = CommandType::kError;
    ref.reply = std::move(reply);
    ref.noreply = noreply;
  };
  const std::string_view name = tk.t[0];
  if (name == "slabs") {
    if (ntokens == 5 && tok(1) == "reassign") {
      int32_t src = 0;
      int32_t dst = 0;
      if (!oracle::SafeStrtol(tok(2), &src) || !oracle::SafeStrtol(tok(3), &dst)) {
        fixed("CLIENT_ERROR bad command line format", false);
      } else if (src == dst) {
        fixed("SAME src and dst class are identical", false);
      } else if (src < 0 || src > 1 || dst < 0 || dst > 1) {  // power_largest: 1
        fixed("BADCLASS invalid src or dst class id", false);
      } else {
        fixed("NOSPARE source class has no spare pages", false);
      }
    } else if (ntokens >= 4 && tok(1) == "automove") {
      double ratio = 0;
      uint32_t level = 0;
      if (tok(2) == "ratio") {
        fixed(ntokens < 5 || !oracle::SafeStrtod(tok(3), &ratio) ? "ERROR" : "OK", noreply_last);
      } else if (!oracle::SafeStrtoul(tok(2), &level)) {
        fixed("CLIENT_ERROR bad command line format", noreply_last);
      } else {
        fixed(level <= 2 ? "OK" : "ERROR", noreply_last);
      }
    } else {
      fixed("ERROR", false);
    }
  } else if (name == "lru") {
    if (ntokens < 3) {
      error("ERROR", false);
      return ref;
    }
    uint32_t hot = 0;
    uint32_t warm = 0;
    double hot_factor = 0;
    double factor = 0;
    int32_t ttl = 0;
    if (tok(1) == "tune" && ntokens >= 7) {
      if (!oracle::SafeStrtoul(tok(2), &hot) || !oracle::SafeStrtoul(tok(3), &warm) ||
          !oracle::SafeStrtod(tok(4), &hot_factor) || !oracle::SafeStrtod(tok(5), &factor)) {
        fixed("ERROR", noreply_last);
      } else if (static_cast<uint32_t>(hot + warm) > 80) {
        fixed("ERROR hot and warm pcts must not exceed 80", noreply_last);
      } else if (factor <= 0 || hot_factor <= 0) {
        fixed("ERROR hot/warm age factors must be greater than 0", noreply_last);
      } else {
        fixed("OK", noreply_last);
      }
    } else if (tok(1) == "mode" && ntokens >= 4) {
      fixed(tok(2) == "flat" || tok(2) == "segmented" ? "OK" : "ERROR", noreply_last);
    } else if (tok(1) == "temp_ttl" && ntokens >= 4) {
      fixed(oracle::SafeStrtol(tok(2), &ttl) ? "OK" : "ERROR", noreply_last);
    } else {
      fixed("ERROR", noreply_last);
    }
  } else if (name == "lru_crawler") {
    uint32_t v = 0;
    if (ntokens == 4 && (tok(1) == "crawl" || tok(1) == "metadump")) {
      ref.applies = true;
      ref.type = CommandType::kLruCrawler;
      const bool metadump = tok(1) == "metadump";
      ref.crawler = metadump ? CrawlerOp::kMetadump : CrawlerOp::kCrawl;
      RefCrawlerClasses(tok(2), metadump, &ref);
    } else if (ntokens == 4 && tok(1) == "tocrawl") {
      fixed(oracle::SafeStrtoul(tok(2), &v) ? "OK" : "CLIENT_ERROR bad command line format", false);
    } else if (ntokens == 4 && tok(1) == "sleep") {
      if (!oracle::SafeStrtoul(tok(2), &v)) {
        fixed("CLIENT_ERROR bad command line format", false);
      } else {
        fixed(v > 1000000 ? "CLIENT_ERROR sleep must be one second or less" : "OK", false);
      }
    } else if (ntokens == 3 && (tok(1) == "enable" || tok(1) == "disable")) {
      ref.applies = true;
      ref.type = CommandType::kLruCrawler;
      ref.crawler = tok(1) == "enable" ? CrawlerOp::kEnable : CrawlerOp::kDisable;
    } else {
      error("ERROR", false);
    }
  } else if (name == "watch") {
    error("CLIENT_ERROR watch commands not allowed", noreply_last);
  } else if (name == "stats" && ntokens > 2 && tok(1) == "cachedump") {
    uint32_t id = 0;
    uint32_t limit = 0;
    if (ntokens < 5) {
      error("CLIENT_ERROR bad command line", false);
    } else if (!oracle::SafeStrtoul(tok(2), &id) || !oracle::SafeStrtoul(tok(3), &limit)) {
      error("CLIENT_ERROR bad command line format", false);
    } else if (id >= 64) {
      error("CLIENT_ERROR Illegal slab id", false);
    } else {
      ref.applies = true;
      ref.type = CommandType::kStats;
      ref.number = id;
      ref.delta = limit;
    }
  }
  return ref;
}

// What a failed check prints: the line (escaped, cut) and the command.
std::string Context(std::string_view raw_line, const Command& cmd) {
  Command line;
  line.keys = raw_line.substr(0, 300);
  return "line: " + DescribeCommand(line) + "\n  cmd: " + DescribeCommand(cmd).substr(0, 800);
}

void CheckCommand(const Command& cmd, std::string_view raw_line, std::string_view line) {
#define CHECK_CMD(cond) FUZZ_CHECK(cond, Context(raw_line, cmd))
  const RefTokens tk = RefTokenize(line);
  const bool last_is_noreply = tk.n > 0 && tk.t[tk.n - 1] == "noreply";

  CHECK_CMD(Within(cmd.key, line));
  CHECK_CMD(Within(cmd.keys, line));
  CHECK_CMD(cmd.nargs <= kMaxTokens - 2);
  for (size_t i = 0; i < cmd.nargs && i < Command::kKeptArgs; ++i) {
    CHECK_CMD(Within(cmd.args[i], line));
  }
  // Classic commands are quiet by a last "noreply"; meta ones by a q flag
  // (checked below).
  const bool is_meta = cmd.type == CommandType::kMetaGet || cmd.type == CommandType::kMetaSet ||
                       cmd.type == CommandType::kMetaDelete ||
                       cmd.type == CommandType::kMetaArithmetic;
  if (cmd.noreply && !is_meta) CHECK_CMD(last_is_noreply);
  CHECK_CMD(Within(cmd.meta_tokens, line));

  const RefAdmin admin = RefAdminCommand(tk);
  if (admin.applies) {
    CHECK_CMD(cmd.type == admin.type);
    CHECK_CMD(cmd.noreply == admin.noreply);
    CHECK_CMD(cmd.crawler == admin.crawler);
    if (admin.type == CommandType::kStats) {
      CHECK_CMD(cmd.number == admin.number && cmd.delta == admin.delta);
    } else {
      CHECK_CMD(cmd.reply == admin.reply);
      if (admin.type == CommandType::kLruCrawler) CHECK_CMD(cmd.number == admin.number);
      return;
    }
  } else {
    CHECK_CMD(cmd.type != CommandType::kFixedReply && cmd.type != CommandType::kLruCrawler);
  }

  if (cmd.type == CommandType::kError) {
    CHECK_CMD(IsKnownError(cmd.reply));
    CHECK_CMD(!RefIsHttpClose(tk));
    if (tk.n == 0 || tk.t[0].size() < 2) CHECK_CMD(cmd.reply == "ERROR" && !cmd.noreply);
    // Only an ms refused after its data length was read swallows its data.
    if (cmd.swallow) {
      CHECK_CMD(tk.t[0] == "ms" && tk.n >= 3 && tk.n < 20 && !cmd.noreply);
      int32_t vlen = -1;
      CHECK_CMD(oracle::SafeStrtol(tk.t[2], &vlen) && vlen >= 0 &&
                static_cast<uint32_t>(vlen) == cmd.value_len);
    }
    return;
  }
  CHECK_CMD(tk.n >= 1);
  const std::string_view name = tk.t[0];
  CHECK_CMD(!RefIsHttpClose(tk));

  if (IsGetFamily(cmd.type)) {
    const bool touch = cmd.type == CommandType::kGat || cmd.type == CommandType::kGats;
    switch (cmd.type) {
      case CommandType::kGet:
        CHECK_CMD(name == "get" || name == "bget");
        break;
      case CommandType::kGets:
        CHECK_CMD(name == "gets");
        break;
      case CommandType::kGat:
        CHECK_CMD(name == "gat");
        break;
      default:
        CHECK_CMD(name == "gats");
        break;
    }
    CHECK_CMD(tk.n >= 2);
    CHECK_CMD(!cmd.noreply);
    if (touch) {
      int32_t e = 0;
      CHECK_CMD(oracle::SafeStrtol(tk.t[1], &e) && e == cmd.exptime);
    }
    // The keys run to the end of the line and start at the first key token.
    size_t first_key = touch ? 2 : 1;
    if (tk.n > first_key) {
      CHECK_CMD(cmd.keys.data() == tk.t[first_key].data());
      CHECK_CMD(cmd.keys.data() + cmd.keys.size() == line.data() + line.size());
    } else {
      CHECK_CMD(cmd.keys.find_first_not_of(' ') == std::string_view::npos);
    }
    // Every key before bad_key_index is <= 250, the one at it is longer.
    std::string_view keys = cmd.keys;
    std::string_view key;
    int64_t index = 0;
    bool found_bad = false;
    while (NextKey(&keys, &key)) {
      CHECK_CMD(!key.empty() && key.find(' ') == std::string_view::npos);
      if (key.size() > kMaxKeyLength) {
        CHECK_CMD(cmd.bad_key_index == index);
        found_bad = true;
        break;
      }
      ++index;
    }
    if (!found_bad) CHECK_CMD(cmd.bad_key_index == -1);
    return;
  }

  if (IsStorage(cmd.type)) {
    const bool is_cas = cmd.type == CommandType::kCas;
    CHECK_CMD(name == CommandTypeName(cmd.type));
    const size_t want = is_cas ? 6 : 5;
    CHECK_CMD(tk.n == want || tk.n == want + 1);
    CHECK_CMD(cmd.key == tk.t[1] && cmd.key.size() <= kMaxKeyLength);
    CHECK_CMD(cmd.noreply == last_is_noreply);
    uint32_t flags = 0;
    int32_t exptime = 0;
    int32_t vlen = 0;
    CHECK_CMD(oracle::SafeStrtoul(tk.t[2], &flags) && flags == cmd.flags);
    CHECK_CMD(oracle::SafeStrtol(tk.t[3], &exptime) && exptime == cmd.exptime);
    CHECK_CMD(oracle::SafeStrtol(tk.t[4], &vlen) && vlen >= 0 && vlen <= INT_MAX - 2);
    CHECK_CMD(static_cast<uint32_t>(vlen) == cmd.value_len);
    if (is_cas) {
      uint64_t cas = 0;
      CHECK_CMD(oracle::SafeStrtoull(tk.t[5], &cas) && cas == cmd.cas_unique);
    }
    return;
  }

  switch (cmd.type) {
    case CommandType::kDelete: {
      CHECK_CMD(name == "delete");
      CHECK_CMD(tk.n >= 2 && tk.n <= 4);
      CHECK_CMD(cmd.key == tk.t[1] && cmd.key.size() <= kMaxKeyLength);
      if (tk.n == 3) CHECK_CMD(tk.t[2] == "0" || tk.t[2] == "noreply");
      if (tk.n == 4) CHECK_CMD(tk.t[2] == "0" && tk.t[3] == "noreply");
      CHECK_CMD(cmd.noreply == (tk.n > 2 && last_is_noreply));
      break;
    }
    case CommandType::kIncr:
    case CommandType::kDecr: {
      CHECK_CMD(name == CommandTypeName(cmd.type));
      CHECK_CMD(tk.n == 3 || tk.n == 4);
      CHECK_CMD(cmd.key == tk.t[1] && cmd.key.size() <= kMaxKeyLength);
      uint64_t delta = 0;
      CHECK_CMD(oracle::SafeStrtoull(tk.t[2], &delta) && delta == cmd.delta);
      CHECK_CMD(cmd.noreply == last_is_noreply);
      break;
    }
    case CommandType::kTouch: {
      CHECK_CMD(name == "touch");
      CHECK_CMD(tk.n == 3 || tk.n == 4);
      CHECK_CMD(cmd.key == tk.t[1] && cmd.key.size() <= kMaxKeyLength);
      int32_t e = 0;
      CHECK_CMD(oracle::SafeStrtol(tk.t[2], &e) && e == cmd.exptime);
      CHECK_CMD(cmd.noreply == last_is_noreply);
      break;
    }
    case CommandType::kFlushAll: {
      CHECK_CMD(name == "flush_all");
      CHECK_CMD(tk.n >= 1 && tk.n <= 3);
      CHECK_CMD(cmd.noreply == last_is_noreply);
      CHECK_CMD(cmd.has_exptime == (tk.n != (last_is_noreply ? 2u : 1u)));
      if (cmd.has_exptime) {
        int32_t e = 0;
        CHECK_CMD(oracle::SafeStrtol(tk.t[1], &e) && e == cmd.exptime);
      }
      break;
    }
    case CommandType::kVerbosity:
    case CommandType::kCacheMemlimit: {
      CHECK_CMD(name == CommandTypeName(cmd.type));
      CHECK_CMD(tk.n == 2 || tk.n == 3);
      uint32_t number = 0;
      CHECK_CMD(oracle::SafeStrtoul(tk.t[1], &number) && number == cmd.number);
      CHECK_CMD(cmd.noreply == last_is_noreply);
      break;
    }
    case CommandType::kStats:
    case CommandType::kShutdown: {
      CHECK_CMD(name == CommandTypeName(cmd.type));
      CHECK_CMD(cmd.nargs == tk.n - 1);
      for (size_t i = 0; i < cmd.nargs && i < Command::kKeptArgs; ++i) {
        CHECK_CMD(cmd.args[i] == tk.t[i + 1]);
      }
      break;
    }
    case CommandType::kVersion:
    case CommandType::kQuit:
      CHECK_CMD(name == CommandTypeName(cmd.type));
      break;
    case CommandType::kMetaNoop:
      CHECK_CMD(name == "mn");
      break;
    case CommandType::kMetaGet:
    case CommandType::kMetaSet:
    case CommandType::kMetaDelete:
    case CommandType::kMetaArithmetic:
    case CommandType::kMetaDebug: {
      CHECK_CMD(name == CommandTypeName(cmd.type));
      CHECK_CMD(tk.n >= 2 && cmd.key == tk.t[1] && cmd.key.size() <= kMaxKeyLength);
      if (cmd.type == CommandType::kMetaDebug) break;
      // Flags: at most 18 tokens after the key, each one known and once.
      CHECK_CMD(tk.n < 20);
      CHECK_CMD(cmd.meta_tokens.empty() == (tk.n == 2));
      if (tk.n > 2) CHECK_CMD(cmd.meta_tokens.data() == tk.t[2].data());
      bool seen[256] = {};
      for (size_t i = cmd.type == CommandType::kMetaSet ? 3 : 2; i < tk.n; ++i) {
        const auto c = static_cast<unsigned char>(tk.t[i][0]);
        CHECK_CMD(!seen[c] &&
                  std::string_view("bNTRlOPLkstcfhvuqFCMJDI").find(static_cast<char>(c)) !=
                      std::string_view::npos);
        seen[c] = true;
      }
      CHECK_CMD(cmd.noreply == seen[static_cast<unsigned char>('q')]);
      CHECK_CMD(cmd.meta.key_binary == seen[static_cast<unsigned char>('b')]);
      if (cmd.type == CommandType::kMetaSet) {
        int32_t vlen = -1;
        CHECK_CMD(tk.n >= 3 && oracle::SafeStrtol(tk.t[2], &vlen) && vlen >= 0 &&
                  static_cast<uint32_t>(vlen) == cmd.value_len);
      }
      break;
    }
    default:
      CHECK_CMD(false);
  }
#undef CHECK_CMD
}

}  // namespace
}  // namespace strata::proxy

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace strata::proxy;  // NOLINT(build/namespaces)
  const std::string_view input(reinterpret_cast<const char*>(data), size);
  size_t off = 0;
  while (off < input.size()) {
    const std::string_view rest = input.substr(off);
    Command cmd;
    const ParseResult r = ParseCommand(rest, &cmd);
    FUZZ_CHECK(r.consumed <= rest.size());
    const size_t newline = rest.find('\n');

    if (newline == std::string_view::npos) {
      // While more of a read may come, the limit is memcached's buffer.
      Command c;
      const ParseResult wide = ParseCommand(rest, &c, kReadBufferSize - 1);
      FUZZ_CHECK(wide.consumed == 0);
      FUZZ_CHECK(wide.status == (ClosesWithoutNewline(rest, kReadBufferSize - 1)
                                     ? ParseStatus::kClose
                                     : ParseStatus::kNeedMore));
    }
    if (r.status == ParseStatus::kNeedMore) {
      FUZZ_CHECK(newline == std::string_view::npos);
      FUZZ_CHECK(r.consumed == 0);
      FUZZ_CHECK(!ClosesWithoutNewline(rest));
      break;
    }
    if (r.status == ParseStatus::kClose) {
      if (newline == std::string_view::npos) {
        FUZZ_CHECK(ClosesWithoutNewline(rest));
      } else {
        FUZZ_CHECK(r.consumed == newline + 1);
        FUZZ_CHECK(RefIsHttpClose(RefTokenize(RefLine(rest, newline))));
      }
      break;
    }

    FUZZ_CHECK(r.status == ParseStatus::kCommand);
    FUZZ_CHECK(newline != std::string_view::npos && r.consumed == newline + 1);
    const std::string_view raw_line = rest.substr(0, r.consumed);
    CheckCommand(cmd, raw_line, RefLine(rest, newline));

    // Resumable: the line alone gives the same command...
    Command again;
    const ParseResult alone = ParseCommand(raw_line, &again);
    FUZZ_CHECK(alone.status == ParseStatus::kCommand && alone.consumed == r.consumed);
    FUZZ_CHECK(SameCommand(again, cmd),
               "whole: " + DescribeCommand(cmd) + "\n  line alone: " + DescribeCommand(again));
    // ...and one byte less is not a command yet.
    const std::string_view short_line = raw_line.substr(0, raw_line.size() - 1);
    const ParseResult partial = ParseCommand(short_line, &again);
    FUZZ_CHECK(partial.consumed == 0);
    FUZZ_CHECK(partial.status ==
               (ClosesWithoutNewline(short_line) ? ParseStatus::kClose : ParseStatus::kNeedMore));

    off += r.consumed;
    if (HasDataBlock(cmd)) {
      off +=
          static_cast<size_t>(std::min<uint64_t>(uint64_t{cmd.value_len} + 2, input.size() - off));
    }
  }
  return 0;
}
