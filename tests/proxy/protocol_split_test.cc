// "Every request split at every byte": the parser is resumable. For a corpus
// of request streams (pipelined sequences, storage commands with their data
// blocks, errors, long multigets), every prefix of a command line shorter
// than the line needs more bytes, and once the line is complete the parse is
// the same Command as the parse of the whole stream. Then the streams are
// fed through a simulated connection buffer in chunks of every size, and the
// command sequence must not depend on the chunking.
//
// Data blocks are not parsed by ParseCommand: the driver skips value_len + 2
// bytes after a storage command, as the connection does.

#include <gtest/gtest.h>

#include <algorithm>
#include <string>
#include <string_view>
#include <vector>

#include "proxy/protocol/protocol.h"
#include "tests/fuzz/command_text.h"

namespace strata::proxy {
namespace {

// What one ParseCommand step produced, rendered for comparison.
struct Step {
  ParseStatus status;
  size_t consumed;
  std::string command;  // DescribeCommand(), or "" for kNeedMore / kClose
};

bool operator==(const Step& a, const Step& b) {
  return a.status == b.status && a.consumed == b.consumed && a.command == b.command;
}

std::ostream& operator<<(std::ostream& os, const Step& s) {
  return os << "{status=" << static_cast<int>(s.status) << " consumed=" << s.consumed << " "
            << s.command << "}";
}

Step ParseStep(std::string_view in) {
  Command cmd;
  ParseResult r = ParseCommand(in, &cmd);
  Step s{r.status, r.consumed, ""};
  if (r.status == ParseStatus::kCommand) s.command = DescribeCommand(cmd);
  return s;
}

// Whether the memcached rule closes a buffer that holds `in` and no newline.
bool ClosesWithoutNewline(std::string_view in) {
  if (in.size() <= kLineLimit) return false;
  size_t spaces = in.find_first_not_of(' ');
  if (spaces == std::string_view::npos) spaces = in.size();
  std::string_view rest = in.substr(spaces);
  bool multiget = rest.starts_with("get ") || rest.starts_with("gets ");
  return spaces > 100 || !multiget || in.size() > kMaxMultigetLine;
}

// The whole stream parsed in one buffer: the steps, with data blocks skipped.
std::vector<Step> ParseAll(std::string_view stream) {
  std::vector<Step> steps;
  size_t off = 0;
  while (off < stream.size()) {
    Command cmd;
    ParseResult r = ParseCommand(stream.substr(off), &cmd);
    Step s{r.status, r.consumed, ""};
    if (r.status != ParseStatus::kCommand) {
      steps.push_back(s);
      break;
    }
    s.command = DescribeCommand(cmd);
    steps.push_back(s);
    off += r.consumed;
    if (HasDataBlock(cmd)) off += std::min<size_t>(cmd.value_len + 2ull, stream.size() - off);
  }
  return steps;
}

// The stream arriving `chunk` bytes at a time into a connection buffer that
// is parsed after each arrival (a data block being read is skipped as it
// arrives). Returns the completed steps and the final kNeedMore/kClose.
std::vector<Step> ParseChunked(std::string_view stream, size_t chunk) {
  std::vector<Step> steps;
  std::string buf;
  size_t fed = 0;
  uint64_t skip = 0;  // data block bytes still to drop
  while (true) {
    // Drop data-block bytes already buffered.
    size_t drop = static_cast<size_t>(std::min<uint64_t>(skip, buf.size()));
    buf.erase(0, drop);
    skip -= drop;
    bool progressed = false;
    if (skip == 0 && !buf.empty()) {
      Command cmd;
      ParseResult r = ParseCommand(buf, &cmd);
      if (r.status == ParseStatus::kClose) {
        steps.push_back({r.status, r.consumed, ""});
        return steps;
      }
      if (r.status == ParseStatus::kCommand) {
        steps.push_back({r.status, r.consumed, DescribeCommand(cmd)});
        if (HasDataBlock(cmd)) skip = cmd.value_len + 2ull;
        buf.erase(0, r.consumed);
        progressed = true;
      }
    }
    if (progressed) continue;
    if (fed == stream.size()) break;
    size_t n = std::min(chunk, stream.size() - fed);
    buf.append(stream.substr(fed, n));
    fed += n;
  }
  if (skip == 0 && !buf.empty()) steps.push_back({ParseStatus::kNeedMore, 0, ""});
  return steps;
}

std::vector<std::string> Corpus() {
  std::vector<std::string> c = {
      "get a\r\n",
      "get a b c\r\ngets a\r\nbget z\r\n",
      "gat 10 a b\r\ngats -1 c\r\n",
      "get   spaced    keys   \r\n",
      "set a 0 0 1\r\nx\r\nget a\r\n",
      "set k 1 2 5 noreply\r\nab\ncd\r\nget k\n",  // a '\n' inside the data block
      "add k 0 0 3\r\nabc\r\nreplace k 0 0 1\r\nz\r\n",
      "append k 0 0 2\r\n!!\r\nprepend k 0 0 2 noreply\r\n??\r\n",
      "cas k 1 2 3 4\r\nabc\r\ncas k 1 2 3 4 noreply\r\nabc\r\n",
      "set big 0 0 10\r\n0123456789\r\nset empty 0 0 0\r\n\r\n",
      "delete k\r\ndelete k 0\r\ndelete k noreply\r\ndelete k 0 noreply\r\n",
      "incr k 1\nincr k 2 noreply\ndecr k 18446744073709551615\n",
      "touch k 1\r\ntouch k -1 noreply\r\n",
      "flush_all\r\nflush_all 10\r\nflush_all noreply\r\nflush_all 10 noreply\r\n",
      "version\r\nverbosity 1\r\nverbosity 1 noreply\r\nquit\r\n",
      "stats\r\nstats items\r\nstats detail on\r\n",
      "cache_memlimit 64\r\ncache_memlimit x noreply\r\n",
      "shutdown\r\nshutdown graceful\r\nmn\r\n",
      "\r\n\n\r\n",
      "bogus\r\nset k x 0 1 noreply\r\ndelete k 1\r\nincr k x\r\ngat x k\r\n",
      "set k 0 0 -1\r\nset k 0 0\r\n",
      std::string("get a\0b\r\nversion\r\n", 18),
      "get " + std::string(251, 'L') + " b\r\n",
      "set " + std::string(250, 'K') + " 0 0 1\r\nv\r\n",
      "get a\r\r\nversion\r\r\n",
      "stats a b c d e f g h i j k l m n o p q r s t u v w x y z\r\n",
      "GET / HTTP/1.1\r\nHost: x\r\n\r\n",
      "version\r\nPOST /x HTTP/1.0\r\n",
      "set k 0 0 1\r\n",  // the data block never arrives
      "get incomplete",   // nor the newline
      // Meta commands: every flag of each, quiet mode, base64 keys.
      "mg k\r\nmg k v\r\nmg k s v t c f l h k Oop q u\r\n",
      "mg k N30 T60 R10 v c\r\nmg a2V5 b k v\r\nmg k E5\r\nmg k C99\r\n",
      "ms k 2\r\nhi\r\nms k 2 T60 F5 c k Oxy q b I C7 MS\r\nhi\r\n",
      "ms k 1 ME\r\na\r\nms k 1 MA\r\nb\r\nms k 1 MP\r\nc\r\nms k 1 MR\r\nd\r\n",
      "md k\r\nmd k q\r\nmd k I T30 C5 k O1 b\r\nmd k x\r\n",
      "ma k\r\nma k N0 J5 D3 MD T9 C1 v c t k O1 q\r\nma k M+\r\nma k M-\r\n",
      "me k\r\nme a2V5 b\r\nme\r\nmn\r\n",
      // Refused: errors before the data length (no swallow) and after it.
      "ms k\r\nms k x\r\nms k 1 zz\r\nv\r\nms k 1 MZ\r\nv\r\nms k 1 T1 T2\r\nv\r\n",
      "mg k zz\r\nmg k v v\r\nmg k Nx\r\nmg k Mxy\r\nmg !!! b\r\nmg\r\n",
      "md k Cx\r\nma k Jx\r\nma k Dx\r\nma k MX\r\nme\r\n",
      "mg k a b c d e f g h i j k l m n o p q r s\r\n",
      "ms k 1 " + std::string(40, 'O') + "\r\nv\r\n",
      "mg " + std::string(251, 'K') + " v\r\n",
  };
  // A multiget longer than the 2048-byte rule.
  std::string multiget = "get";
  for (int i = 0; i < 400; ++i) multiget += " key" + std::to_string(i);
  c.push_back(multiget + "\r\nversion\r\n");
  c.push_back("gets" + multiget.substr(3) + "\n");
  return c;
}

TEST(ProtocolSplitTest, EveryPrefixOfEveryLine) {
  for (const std::string& stream : Corpus()) {
    size_t off = 0;
    while (off < stream.size()) {
      std::string_view rest = std::string_view(stream).substr(off);
      Step whole = ParseStep(rest);
      if (whole.status != ParseStatus::kCommand) break;
      const size_t line_len = whole.consumed;
      // Shorter than the line: more bytes are needed (or, for a long
      // non-multiget line, the connection is closed).
      for (size_t p = 0; p < line_len; ++p) {
        Step s = ParseStep(rest.substr(0, p));
        ParseStatus want =
            ClosesWithoutNewline(rest.substr(0, p)) ? ParseStatus::kClose : ParseStatus::kNeedMore;
        ASSERT_EQ(s.status, want) << "stream " << ::testing::PrintToString(stream) << " offset "
                                  << off << " prefix " << p;
        ASSERT_EQ(s.consumed, 0u);
      }
      // The line alone and every longer prefix: the same command.
      for (size_t p = line_len; p <= rest.size(); ++p) {
        ASSERT_EQ(ParseStep(rest.substr(0, p)), whole)
            << "stream " << ::testing::PrintToString(stream) << " offset " << off << " prefix "
            << p;
      }
      Command cmd;
      (void)ParseCommand(rest, &cmd);
      off += line_len;
      if (HasDataBlock(cmd)) off += std::min<size_t>(cmd.value_len + 2ull, stream.size() - off);
    }
  }
}

TEST(ProtocolSplitTest, ChunkingDoesNotMatter) {
  for (const std::string& stream : Corpus()) {
    std::vector<Step> whole = ParseAll(stream);
    // A final kNeedMore from ParseAll (the last line incomplete) is what the
    // chunked driver reports too.
    for (size_t chunk = 1; chunk <= stream.size(); ++chunk) {
      std::vector<Step> chunked = ParseChunked(stream, chunk);
      ASSERT_EQ(chunked, whole) << "stream " << ::testing::PrintToString(stream) << " chunk "
                                << chunk;
    }
  }
}

TEST(ProtocolSplitTest, CorpusParsesAsExpected) {
  // Spot checks that the corpus exercises what it claims.
  std::vector<Step> steps = ParseAll("set k 1 2 5 noreply\r\nab\ncd\r\nget k\n");
  ASSERT_EQ(steps.size(), 2u);
  EXPECT_NE(steps[0].command.find("set noreply=1"), std::string::npos) << steps[0];
  EXPECT_NE(steps[1].command.find("keys=\"k\""), std::string::npos) << steps[1];

  std::vector<Step> http = ParseAll("version\r\nPOST /x HTTP/1.0\r\n");
  ASSERT_EQ(http.size(), 2u);
  EXPECT_EQ(http[1].status, ParseStatus::kClose);

  std::vector<Step> meta = ParseAll("ms k 2 T60 q\r\nhi\r\nms k 1 MZ\r\nv\r\nmn\r\n");
  ASSERT_EQ(meta.size(), 3u);
  EXPECT_NE(meta[0].command.find("ms noreply=1"), std::string::npos) << meta[0];
  EXPECT_NE(meta[1].command.find("swallow=1"), std::string::npos) << meta[1];
  EXPECT_NE(meta[2].command.find("mn"), std::string::npos) << meta[2];

  std::vector<Step> pending = ParseAll("get incomplete");
  ASSERT_EQ(pending.size(), 1u);
  EXPECT_EQ(pending[0].status, ParseStatus::kNeedMore);
}

}  // namespace
}  // namespace strata::proxy
