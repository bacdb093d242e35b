// MetaReplyParser: every reply memcached 1.6.18 sends to strata's meta
// requests (the byte strings below were read off memcached 1.6.18 answering
// meta_request.h's requests), parsed whole and split at every byte, and the
// replies strata must refuse.
#include "proxy/upstream/meta_reply.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "proxy/upstream/meta_request.h"

namespace strata::upstream {
namespace {

// A sink that keeps values in strings.
class StringSink : public ValueSink {
 public:
  char* ValueBuffer(const MetaReply& reply) override {
    if (refuse) return nullptr;
    values.emplace_back(reply.value_len, '\0');
    return values.back().data();
  }
  bool refuse = false;
  std::vector<std::string> values;
};

// Feeds `stream` in pieces cut at `cuts` and returns the replies; stops at
// kBroken (*broken set).
std::vector<MetaReply> ParseAll(const std::string& stream, const std::vector<size_t>& cuts,
                                StringSink* sink, bool* broken) {
  MetaReplyParser parser;
  std::vector<MetaReply> replies;
  *broken = false;
  size_t start = 0;
  std::vector<size_t> ends = cuts;
  ends.push_back(stream.size());
  for (size_t end : ends) {
    std::string_view piece(stream.data() + start, end - start);
    start = end;
    while (!piece.empty()) {
      size_t used = 0;
      MetaReply reply;
      auto st = parser.Parse(piece, &used, sink, &reply);
      EXPECT_LE(used, piece.size());
      piece.remove_prefix(used);
      if (st == MetaReplyParser::Status::kBroken) {
        *broken = true;
        return replies;
      }
      if (st == MetaReplyParser::Status::kNeedMore) {
        EXPECT_TRUE(piece.empty());
        break;
      }
      replies.push_back(reply);
    }
  }
  return replies;
}

const std::string kStream =
    "EN\r\n"
    "VA 3 f5 c3 t100\r\nabc\r\n"
    "HD\r\n"
    "HD c2\r\n"
    "NS\r\n"
    "EX\r\n"
    "NF\r\n"
    "VA 2\r\n15\r\n"
    "VA 0 f0 c9 t-1\r\n\r\n"
    "CLIENT_ERROR cannot increment or decrement non-numeric value\r\n"
    "SERVER_ERROR object too large for cache\r\n"
    "ERROR\r\n"
    "OK\r\n"
    "MN\r\n"
    "VA 4 f4294967295 c18446744073709551615 t-1\r\na\r\nb\r\n";

void CheckStream(const std::vector<MetaReply>& r, const StringSink& sink) {
  ASSERT_EQ(r.size(), 15u);
  EXPECT_EQ(r[0].kind, ReplyKind::kMiss);
  EXPECT_EQ(r[1].kind, ReplyKind::kValue);
  EXPECT_EQ(r[1].flags, 5u);
  EXPECT_EQ(r[1].cas, 3u);
  EXPECT_EQ(r[1].ttl, 100);
  EXPECT_EQ(r[1].value_len, 3u);
  EXPECT_TRUE(r[1].value_taken);
  EXPECT_EQ(r[2].kind, ReplyKind::kHit);
  EXPECT_EQ(r[3].kind, ReplyKind::kHit);
  EXPECT_EQ(r[3].cas, 2u);
  EXPECT_EQ(r[4].kind, ReplyKind::kNotStored);
  EXPECT_EQ(r[5].kind, ReplyKind::kExists);
  EXPECT_EQ(r[6].kind, ReplyKind::kNotFound);
  EXPECT_EQ(r[7].kind, ReplyKind::kValue);
  EXPECT_EQ(r[8].kind, ReplyKind::kValue);
  EXPECT_EQ(r[8].value_len, 0u);
  EXPECT_EQ(r[8].ttl, -1);
  EXPECT_EQ(r[8].cas, 9u);
  EXPECT_EQ(r[9].kind, ReplyKind::kError);
  EXPECT_EQ(r[9].line, "CLIENT_ERROR cannot increment or decrement non-numeric value");
  EXPECT_EQ(r[10].line, "SERVER_ERROR object too large for cache");
  EXPECT_EQ(r[11].kind, ReplyKind::kError);
  EXPECT_EQ(r[11].line, "ERROR");
  EXPECT_EQ(r[12].kind, ReplyKind::kOk);
  EXPECT_EQ(r[13].kind, ReplyKind::kOk);  // mn (a probe)
  EXPECT_EQ(r[14].flags, 4294967295u);
  EXPECT_EQ(r[14].cas, 18446744073709551615u);
  ASSERT_EQ(sink.values.size(), 4u);
  EXPECT_EQ(sink.values[0], "abc");
  EXPECT_EQ(sink.values[1], "15");
  EXPECT_EQ(sink.values[2], "");
  EXPECT_EQ(sink.values[3], "a\r\nb");  // data is binary: "\r\n" inside it is data
}

TEST(MetaReplyParser, WholeStream) {
  StringSink sink;
  bool broken;
  auto r = ParseAll(kStream, {}, &sink, &broken);
  EXPECT_FALSE(broken);
  CheckStream(r, sink);
}

TEST(MetaReplyParser, SplitAtEveryByte) {
  for (size_t cut = 1; cut < kStream.size(); ++cut) {
    StringSink sink;
    bool broken;
    auto r = ParseAll(kStream, {cut}, &sink, &broken);
    EXPECT_FALSE(broken) << cut;
    CheckStream(r, sink);
  }
}

TEST(MetaReplyParser, ByteByByte) {
  std::vector<size_t> cuts;
  for (size_t i = 1; i < kStream.size(); ++i) cuts.push_back(i);
  StringSink sink;
  bool broken;
  auto r = ParseAll(kStream, cuts, &sink, &broken);
  EXPECT_FALSE(broken);
  CheckStream(r, sink);
}

TEST(MetaReplyParser, DroppedValueKeepsStep) {
  StringSink sink;
  sink.refuse = true;
  bool broken;
  auto r = ParseAll("VA 3 f1\r\nabc\r\nEN\r\n", {5, 11}, &sink, &broken);
  EXPECT_FALSE(broken);
  ASSERT_EQ(r.size(), 2u);
  EXPECT_EQ(r[0].kind, ReplyKind::kValue);
  EXPECT_FALSE(r[0].value_taken);
  EXPECT_EQ(r[1].kind, ReplyKind::kMiss);
}

TEST(MetaReplyParser, RefusesWhatIsNotAReply) {
  for (std::string bad : {"VALUE k 0 1\r\n", "VA x\r\n", "VA 3\r\nabcd\r\n", "HD\n",
                          "XX\r\n", "HDX\r\n", "VA 3 fz\r\nabc\r\n", "HD c-1\r\n",
                          "VA 18446744073709551616\r\n", "\r\n", "END\r\n"}) {
    StringSink sink;
    bool broken;
    ParseAll(bad, {}, &sink, &broken);
    EXPECT_TRUE(broken) << bad;
  }
  // A line with no end in sight.
  StringSink sink;
  bool broken;
  ParseAll(std::string(MetaReplyParser::kMaxLine + 10, 'H'), {}, &sink, &broken);
  EXPECT_TRUE(broken);
}

// The lease marks memcached adds by itself (read off 1.6.18 answering an
// mg of an item an `md k I` marked stale, and a second mg of it), and the
// lines a relayed request keeps (an me's too), split at every byte.
TEST(MetaReplyParser, LeaseMarksAndKeptLines) {
  const std::string stream =
      "VA 2 f0 c7 t-1 W X\r\nhi\r\n"
      "HD c7 Z X\r\n"
      "EN\r\n"
      "HD Oab k\r\n"
      "MN\r\n"
      "ME foo exp=-1 la=3 cas=2 fetch=no cls=1 size=63\r\n";
  class KeepingSink : public StringSink {
   public:
    bool KeepsLine() const override { return true; }
  };
  for (size_t cut = 0; cut <= stream.size(); ++cut) {
    KeepingSink sink;
    bool broken = false;
    auto r = ParseAll(stream, {cut}, &sink, &broken);
    ASSERT_FALSE(broken);
    ASSERT_EQ(r.size(), 6u);
    EXPECT_EQ(r[5].kind, ReplyKind::kHit);
    EXPECT_EQ(r[5].line, "ME foo exp=-1 la=3 cas=2 fetch=no cls=1 size=63");
    EXPECT_EQ(r[0].kind, ReplyKind::kValue);
    EXPECT_TRUE(r[0].won);
    EXPECT_TRUE(r[0].stale);
    EXPECT_FALSE(r[0].win_sent);
    EXPECT_EQ(r[0].cas, 7u);
    EXPECT_EQ(r[0].line, "VA 2 f0 c7 t-1 W X");
    EXPECT_EQ(sink.values.at(0), "hi");
    EXPECT_EQ(r[1].kind, ReplyKind::kHit);
    EXPECT_FALSE(r[1].won);
    EXPECT_TRUE(r[1].stale);
    EXPECT_TRUE(r[1].win_sent);
    EXPECT_EQ(r[1].line, "HD c7 Z X");
    EXPECT_EQ(r[2].line, "EN");
    EXPECT_EQ(r[3].line, "HD Oab k");
    EXPECT_EQ(r[4].kind, ReplyKind::kOk);
    EXPECT_EQ(r[4].line, "MN");
  }
  // Without KeepsLine(), only error lines are kept (and an ME line is no
  // reply to anything strata asks itself).
  StringSink plain;
  bool broken = false;
  auto r = ParseAll(stream, {}, &plain, &broken);
  EXPECT_TRUE(broken);
  ASSERT_EQ(r.size(), 5u);
  EXPECT_TRUE(r[0].line.empty());
  EXPECT_TRUE(r[0].won);
}

TEST(MetaRequest, Lines) {
  int64_t t = -1;
  uint64_t cas = 0;
  EXPECT_EQ(MetaGetRequest("k"), "mg k v f c t\r\n");
  EXPECT_EQ(MetaGetRequest("k", &t), "mg k v f c t T-1\r\n");
  EXPECT_EQ(MetaTouchRequest("k", 100), "mg k c T100\r\n");
  EXPECT_EQ(MetaReturnWinRequest("k", 42), "md k I C42\r\n");
  EXPECT_EQ(MetaSetRequest("k", 3, 5, 0, StoreMode::kSet, nullptr), "ms k 3 F5 T0 MS\r\n");
  EXPECT_EQ(MetaSetRequest("k", 3, 0, 9, StoreMode::kAppend, nullptr), "ms k 3 F0 T9 MA\r\n");
  EXPECT_EQ(MetaSetRequest("k", 1, 0, 0, StoreMode::kSet, &cas), "ms k 1 F0 T0 MS C0\r\n");
  EXPECT_EQ(MetaDeleteRequest("k"), "md k\r\n");
  EXPECT_EQ(MetaArithRequest("k", true, 5), "ma k v D5 MI\r\n");
  EXPECT_EQ(MetaArithRequest("k", false, 18446744073709551615u),
            "ma k v D18446744073709551615 MD\r\n");
  EXPECT_EQ(FlushAllRequest(-1), "flush_all\r\n");
  EXPECT_EQ(FlushAllRequest(0), "flush_all 0\r\n");
}

}  // namespace
}  // namespace strata::upstream
