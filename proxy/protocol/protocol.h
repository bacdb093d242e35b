// The memcached text protocol parser: bytes in, commands out. Pure (no I/O,
// no cache access), resumable (call again with more bytes), and exact: it
// reproduces memcached 1.6.18's tokenizer (proto_text.c) and number parsing
// (util.c safe_strto*, in common/numbers.h), including their quirks, so that
// every reply strata composes from its result is the one memcached would
// send.
//
// Framing: a command line ends at '\n' (a preceding '\r' is dropped); a NUL
// byte ends the line early, as memcached's strlen() does. Tokens are split on
// ' ' only; at most 23 tokens are separated, the rest of the line stays one
// piece (memcached's MAX_TOKENS). A line that has no '\n' within the caller's
// `line_limit` of buffered bytes closes the connection unless it is a
// "get "/"gets " line, which may grow up to kMaxMultigetLine. memcached
// applies its 2048-byte limit (kLineLimit) to what its buffer holds after a
// read of up to 16 KiB (kReadBufferSize): the caller passes kLineLimit once
// the bytes that arrived together are all buffered, and a larger limit while
// more of them may still be in the socket. Storage commands are returned with
// the length of their data block; reading that block is the caller's job.
//
// Meta commands (mg ms md ma me mn): the flags are checked here as
// proto_text.c's _meta_flag_preparse() and the process_m*_command()
// functions check them before touching the cache, with their exact error
// lines; Command::meta holds what they say, and Command::meta_tokens the
// flag tokens in request order (replies echo O, k and the return flags in
// that order). A `b` key is checked here (its encoded length, then that it
// decodes) and decoded by the dispatcher (Base64Decode). An `ms` refused
// after its data length was read comes back as kError with `swallow` set:
// its data block (value_len + 2 bytes) is to be read and dropped.
// Checks memcached makes while it composes the reply (an opaque longer
// than 32 bytes) are the dispatcher's, in the same order.
//
// Admin commands: `slabs`, `lru` and `lru_crawler tocrawl|sleep` tune
// memcached's slab mover, segmented LRU and crawler, which strata does not
// have; they come back as kFixedReply with memcached's reply to them (OK for
// a valid request). `watch` is answered as memcached started with -W (no
// watchers) answers it. `lru_crawler crawl|metadump|enable|disable` and
// `stats cachedump` are validated here and run by the dispatcher.
//
// Thread safety: pure functions over caller-owned buffers; safe anywhere.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>

#include "common/command.h"
#include "common/limits.h"

namespace strata::proxy {

using common::kMaxKeyLength;
inline constexpr size_t kMaxTokens = 24;            // memcached's MAX_TOKENS
inline constexpr size_t kLineLimit = 2048;          // bytes without '\n' before closing
inline constexpr size_t kReadBufferSize = 16384;    // memcached's READ_BUFFER_SIZE
inline constexpr size_t kMaxMultigetLine = 8 << 20; // cap on a get line's length
inline constexpr uint32_t kMaxSlabClasses = 64;     // memcached's MAX_NUMBER_OF_SLAB_CLASSES

// The command enum is shared with metrics/ (latency labels): see
// common/command.h. kError: `reply` holds the complete error line to send
// (without "\r\n"); kFixedReply: `reply` holds memcached's reply (suppressed
// when `noreply`); kLruCrawler: see Command::crawler.
using common::CommandType;

// lru_crawler subcommands the dispatcher runs.
enum class CrawlerOp : uint8_t {
  kNone,
  kCrawl,     // crawl <classes|all>
  kMetadump,  // metadump <classes|all|hash>
  kEnable,
  kDisable,
};

// What the flags of a meta command say (proto_text.c's struct _meta_flags).
// Times are as sent; the dispatcher applies memcached's
// EXPTIME_TO_POSITIVE_TIME() and realtime().
struct MetaFlags {
  bool vivify = false;      // N<ttl>
  bool new_ttl = false;     // T<ttl>
  bool recache = false;     // R<ttl>
  bool value = false;       // v
  bool no_update = false;   // u
  bool set_stale = false;   // I
  bool key_binary = false;  // b
  bool has_cas = false;     // C<cas>
  bool locked = false;      // N, T, R, l or h: memcached bumps the item after the reply
  char mode = 0;            // M<c>
  int32_t ttl = 0;
  int32_t vivify_ttl = 0;
  int32_t recache_ttl = 0;
  uint32_t client_flags = 0;  // F<flags>
  uint64_t cas = 0;
  uint64_t delta = 1;    // D<n> (ma)
  uint64_t initial = 0;  // J<n> (ma)
};

inline constexpr size_t kMaxOpaqueLength = 32;  // memcached's MFLAG_MAX_OPAQUE_LENGTH

struct Command {
  CommandType type = CommandType::kError;
  bool noreply = false;
  // kLruCrawler: the subcommand. For kCrawl and kMetadump, `reply` holds
  // memcached's reply when it refuses the class list (BADCLASS, ...) and is
  // empty when it accepts it; `number` is 1 when the list selects strata's
  // one slab class 1 ("all", "hash", or a list that names 1), else 0.
  CrawlerOp crawler = CrawlerOp::kNone;
  std::string_view reply;     // kError, kFixedReply: the line to send
  std::string_view key;       // single-key commands
  // get-family: the keys, space separated, possibly with repeated spaces.
  // Every key in it is <= kMaxKeyLength unless `bad_key_index` is set.
  std::string_view keys;
  // get-family: index of the first key longer than kMaxKeyLength, or -1.
  // memcached processes the keys before it, then replies only
  // "CLIENT_ERROR bad command line format".
  int64_t bad_key_index = -1;
  uint32_t flags = 0;
  int32_t exptime = 0;         // as sent (memcached's relative/absolute rules apply)
  bool has_exptime = false;    // flush_all: a delay was given
  uint32_t value_len = 0;      // storage: bytes of data that follow (without "\r\n")
  uint64_t cas_unique = 0;     // cas
  uint64_t delta = 0;          // incr/decr; stats cachedump: the limit
  // verbosity level, cache_memlimit megabytes, stats cachedump slab class
  // (< kMaxSlabClasses), lru_crawler (above)
  uint32_t number = 0;
  // stats, shutdown: the count of arguments after the name (0 for plain
  // stats), and the first kKeptArgs of them (all that either looks at; a
  // Command lives in every connection, so it stays small). A `stats
  // cachedump` that memcached would refuse comes back as kError.
  static constexpr size_t kKeptArgs = 2;
  std::string_view args[kKeptArgs];
  size_t nargs = 0;
  // Meta commands: `key` is the key as sent (base64 if meta.key_binary);
  // `meta_tokens` the tokens after the key (after the data length for ms),
  // space separated (NextKey() walks them). `noreply` is the q flag.
  MetaFlags meta;
  std::string_view meta_tokens;
  // kError for an ms whose data block must be swallowed (value_len bytes
  // and "\r\n").
  bool swallow = false;
};

enum class ParseStatus : uint8_t {
  kNeedMore,  // no complete line yet; call again with more bytes
  kCommand,   // *cmd is filled; `consumed` bytes of the input were used
  kClose,     // the input is not the protocol; close the connection
};

struct ParseResult {
  ParseStatus status;
  size_t consumed;
};

// Parses the first command line in `input`. Views in *cmd point into
// `input`. For storage commands (kSet..kCas) the caller must then read
// value_len + 2 bytes of data block, which must end in "\r\n".
// `line_limit`: with no '\n' in more than this many bytes, a line that is
// not a get/gets line closes the connection (see Framing above); at least
// kLineLimit.
ParseResult ParseCommand(std::string_view input, Command* cmd, size_t line_limit = kLineLimit);

// Splits the next key off a get-family key list; returns false when none
// is left. `keys` is advanced past it.
bool NextKey(std::string_view* keys, std::string_view* key);

}  // namespace strata::proxy
