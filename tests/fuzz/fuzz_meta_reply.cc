// Fuzzes upstream::MetaReplyParser (the replies of the upstream pool's
// servers) over arbitrary bytes: the first byte picks a cut every
// 1..128 bytes and whether the sink keeps reply lines (a relayed meta
// command's, ValueSink::KeepsLine()), the rest is the stream. Checks, for every input:
//   - framing: consumed <= size, kNeedMore uses every byte given, a reply
//     always consumes at least one byte;
//   - resumability: parsing the stream in pieces gives the same replies
//     (kinds, flags, CAS, TTL, lease marks, lengths, lines, value bytes) and the
//     same end (broken or not) as parsing it whole;
//   - a VA's sink buffer is written only within its length (the sink's
//     buffers are exact-size heap strings, so ASan sees any overrun).
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "proxy/upstream/meta_reply.h"
#include "tests/fuzz/fuzz_check.h"

namespace strata::upstream {
namespace {

class Sink : public ValueSink {
 public:
  explicit Sink(bool keep) : keep_(keep) {}
  bool KeepsLine() const override { return keep_; }
  char* ValueBuffer(const MetaReply& reply) override {
    // Values over 1 MiB are dropped (as strata drops what it has no
    // memory for), which also keeps the fuzzer's memory bounded.
    if (reply.value_len > (1u << 20)) return nullptr;
    values.emplace_back(reply.value_len, '\0');
    return values.back().data();
  }
  std::vector<std::string> values;

 private:
  bool keep_;
};

struct Run {
  std::vector<MetaReply> replies;
  std::vector<std::string> values;
  bool broken = false;
};

Run ParseInPieces(std::string_view stream, size_t step, bool keep) {
  MetaReplyParser parser;
  Sink sink(keep);
  Run run;
  for (size_t start = 0; start < stream.size() && !run.broken; start += step) {
    std::string_view piece = stream.substr(start, step);
    while (!piece.empty()) {
      size_t used = 0;
      MetaReply reply;
      auto st = parser.Parse(piece, &used, &sink, &reply);
      FUZZ_CHECK(used <= piece.size());
      if (st == MetaReplyParser::Status::kBroken) {
        run.broken = true;
        break;
      }
      if (st == MetaReplyParser::Status::kNeedMore) {
        FUZZ_CHECK(used == piece.size());
        break;
      }
      piece.remove_prefix(used);
      run.replies.push_back(reply);
    }
  }
  run.values = std::move(sink.values);
  return run;
}

bool Same(const MetaReply& a, const MetaReply& b) {
  return a.kind == b.kind && a.flags == b.flags && a.cas == b.cas && a.ttl == b.ttl &&
         a.value_len == b.value_len && a.value_taken == b.value_taken && a.line == b.line &&
         a.won == b.won && a.stale == b.stale && a.win_sent == b.win_sent;
}

}  // namespace
}  // namespace strata::upstream

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace strata::upstream;
  if (size == 0) return 0;
  const size_t step = static_cast<size_t>(data[0] & 0x7f) + 1;
  const bool keep = (data[0] & 0x80) != 0;
  std::string_view stream(reinterpret_cast<const char*>(data + 1), size - 1);
  Run whole = ParseInPieces(stream, stream.size() + 1, keep);
  Run pieces = ParseInPieces(stream, step, keep);
  // A kept line is the reply's line as it came (no "\r\n" in it).
  for (const MetaReply& r : whole.replies) {
    FUZZ_CHECK(r.line.find('\n') == std::string::npos);
    if (keep && r.kind != ReplyKind::kFailed) FUZZ_CHECK(!r.line.empty());
  }
  // Broken input may break at a different reply only if the whole parse
  // broke too; up to there both agree.
  FUZZ_CHECK(whole.broken == pieces.broken, "step " + std::to_string(step));
  FUZZ_CHECK(whole.replies.size() == pieces.replies.size(), "step " + std::to_string(step));
  for (size_t i = 0; i < whole.replies.size(); ++i) {
    FUZZ_CHECK(Same(whole.replies[i], pieces.replies[i]), "reply " + std::to_string(i));
  }
  FUZZ_CHECK(whole.values.size() == pieces.values.size());
  for (size_t i = 0; i < whole.values.size(); ++i) {
    // A value cut off by a broken end is partly filled in either run.
    if (i + 1 == whole.values.size() && whole.broken) break;
    FUZZ_CHECK(whole.values[i] == pieces.values[i], "value " + std::to_string(i));
  }
  return 0;
}
