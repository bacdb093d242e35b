// The memcached commands strata serves, as one enum for the whole server:
// the protocol parser returns them (proxy::Command::type), the dispatcher
// runs them, and the request-latency histograms (metrics/latency.h) are
// labelled by them. It lives here because metrics/ may include only
// common/.
//
// Invariant: the commands with a latency label of their own come first, in
// label order (kGet .. kFlushAll), so a command's label index is its value;
// every later command shares the label "other" (kOtherCommandLabel), and
// the first of them, kError, has the value kOtherCommandLabel.
//
// Thread safety: constants and pure functions; safe from any thread.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>

namespace strata::common {

enum class CommandType : uint8_t {
  // Labelled by name in the latency histograms.
  kGet,
  kGets,
  kGat,
  kGats,
  kSet,
  kAdd,
  kReplace,
  kAppend,
  kPrepend,
  kCas,
  kDelete,
  kIncr,
  kDecr,
  kTouch,
  kFlushAll,
  // Labelled "other".
  kError,  // the parser's reply holds the complete error line to send
  kVersion,
  kVerbosity,
  kQuit,
  kStats,
  kCacheMemlimit,
  kShutdown,
  kMetaNoop,        // "mn"
  kMetaGet,         // "mg"
  kMetaSet,         // "ms"
  kMetaDelete,      // "md"
  kMetaArithmetic,  // "ma"
  kMetaDebug,       // "me"
  // A valid or invalid request to tune something strata does not have
  // (slabs, lru, lru_crawler tocrawl|sleep): the parser's reply holds
  // memcached's reply, and nothing else happens.
  kFixedReply,
  kLruCrawler,  // lru_crawler crawl|metadump|enable|disable
};

// The latency label of every command after kFlushAll.
inline constexpr size_t kOtherCommandLabel = static_cast<size_t>(CommandType::kFlushAll) + 1;
// Distinct command label values, "other" included.
inline constexpr size_t kCommandLabels = kOtherCommandLabel + 1;
static_assert(static_cast<size_t>(CommandType::kError) == kOtherCommandLabel);

// The label index of `t`: its value for the labelled commands, else
// kOtherCommandLabel. Always < kCommandLabels.
constexpr size_t CommandLabelIndex(CommandType t) {
  const auto i = static_cast<size_t>(t);
  return i < kOtherCommandLabel ? i : kOtherCommandLabel;
}

// A command whose label index is `index` (< kCommandLabels): the labelled
// command itself, or kError for kOtherCommandLabel.
constexpr CommandType CommandWithLabel(size_t index) { return static_cast<CommandType>(index); }

// The label value as exported: "get", "flush_all", ..., "other".
inline constexpr std::string_view kCommandLabelNames[kCommandLabels] = {
    "get",    "gets",    "gat",  "gats", "set",  "add",   "replace",   "append",
    "prepend", "cas",    "delete", "incr", "decr", "touch", "flush_all", "other",
};
constexpr std::string_view CommandLabelName(CommandType t) {
  return kCommandLabelNames[CommandLabelIndex(t)];
}

}  // namespace strata::common
