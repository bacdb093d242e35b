// Tests of the memcached text-protocol parser (proxy/protocol/protocol.h): every
// command form, every error reply (the strings memcached 1.6.18's
// proto_text.c sends), noreply on errors, key length limits, line framing
// (LF vs CRLF, NUL, the 23-token split), the 2048-byte rule for lines without
// a newline, the multiget cap and HTTP request lines.

#include "proxy/protocol/protocol.h"

#include <gtest/gtest.h>

#include <climits>
#include <string>
#include <string_view>
#include <vector>

#include "common/numbers.h"
#include "tests/fuzz/command_text.h"

namespace strata::proxy {
namespace {

constexpr std::string_view kError = "ERROR";
constexpr std::string_view kBadFormat = "CLIENT_ERROR bad command line format";
constexpr std::string_view kBadExptime = "CLIENT_ERROR invalid exptime argument";
constexpr std::string_view kBadDelta = "CLIENT_ERROR invalid numeric delta argument";
constexpr std::string_view kBadDelete =
    "CLIENT_ERROR bad command line format.  Usage: delete <key> [noreply]";

// One parse of an input that the object owns, so the views stay valid.
struct Parsed {
  explicit Parsed(std::string in) : input(std::move(in)) { result = ParseCommand(input, &cmd); }
  std::string input;
  Command cmd;
  ParseResult result{};
};

// Parses `line` + "\r\n" and expects a whole command.
Command Cmd(const std::string& line, std::vector<std::string>* keep) {
  keep->push_back(line + "\r\n");
  Command cmd;
  ParseResult r = ParseCommand(keep->back(), &cmd);
  EXPECT_EQ(r.status, ParseStatus::kCommand) << line;
  EXPECT_EQ(r.consumed, line.size() + 2) << line;
  return cmd;
}

class ProtocolTest : public ::testing::Test {
 protected:
  Command Parse(const std::string& line) { return Cmd(line, &keep_); }

  // Expects `line` to be answered with the error `reply` and `noreply`.
  void ExpectError(const std::string& line, std::string_view reply, bool noreply = false) {
    Command cmd = Parse(line);
    EXPECT_EQ(cmd.type, CommandType::kError) << line << " -> " << DescribeCommand(cmd);
    EXPECT_EQ(cmd.reply, reply) << line;
    EXPECT_EQ(cmd.noreply, noreply) << line;
  }

  std::vector<std::string> Keys(const Command& cmd) {
    std::vector<std::string> out;
    std::string_view keys = cmd.keys;
    std::string_view key;
    while (NextKey(&keys, &key)) out.emplace_back(key);
    return out;
  }

  std::vector<std::string> keep_;
};

std::string KeyList(int n, const std::string& prefix = "k") {
  std::string s;
  for (int i = 0; i < n; ++i) {
    if (i > 0) s += ' ';
    s += prefix + std::to_string(i);
  }
  return s;
}

// ---------------------------------------------------------------- get family

TEST_F(ProtocolTest, GetFamilyOneKey) {
  struct Case {
    const char* name;
    CommandType type;
  };
  for (const Case& c : {Case{"get", CommandType::kGet}, Case{"gets", CommandType::kGets},
                        Case{"bget", CommandType::kGet}}) {
    Command cmd = Parse(std::string(c.name) + " foo");
    EXPECT_EQ(cmd.type, c.type) << c.name;
    EXPECT_EQ(cmd.keys, "foo");
    EXPECT_EQ(cmd.bad_key_index, -1);
    EXPECT_FALSE(cmd.noreply);
  }
  Command gat = Parse("gat 100 foo");
  EXPECT_EQ(gat.type, CommandType::kGat);
  EXPECT_EQ(gat.exptime, 100);
  EXPECT_EQ(gat.keys, "foo");
  Command gats = Parse("gats -1 foo");
  EXPECT_EQ(gats.type, CommandType::kGats);
  EXPECT_EQ(gats.exptime, -1);
  EXPECT_EQ(gats.keys, "foo");
}

TEST_F(ProtocolTest, GetFamilyManyKeys) {
  for (int n : {1, 2, 5, 21, 22, 23, 24, 100, 1000, 5000}) {
    const std::string keys = KeyList(n);
    std::vector<std::string> want;
    for (int i = 0; i < n; ++i) want.push_back("k" + std::to_string(i));
    for (const char* name : {"get", "gets"}) {
      Command cmd = Parse(std::string(name) + " " + keys);
      EXPECT_EQ(Keys(cmd), want) << name << " " << n;
      EXPECT_EQ(cmd.bad_key_index, -1);
    }
    for (const char* name : {"gat", "gats"}) {
      Command cmd = Parse(std::string(name) + " 30 " + keys);
      EXPECT_EQ(cmd.exptime, 30);
      EXPECT_EQ(Keys(cmd), want) << name << " " << n;
      EXPECT_EQ(cmd.bad_key_index, -1);
    }
  }
}

TEST_F(ProtocolTest, GetKeysWithRepeatedSpaces) {
  Command cmd = Parse("get  a   b    c ");
  EXPECT_EQ(Keys(cmd), (std::vector<std::string>{"a", "b", "c"}));
  // Past the 23rd token the rest of the line is one piece; keys in it are
  // still split on spaces.
  std::string line = "get";
  for (int i = 0; i < 40; ++i) line += "   x" + std::to_string(i);
  Command many = Parse(line + "   ");
  std::vector<std::string> keys = Keys(many);
  ASSERT_EQ(keys.size(), 40u);
  EXPECT_EQ(keys[39], "x39");
}

TEST_F(ProtocolTest, GetFamilyErrors) {
  ExpectError("get", kError);
  ExpectError("gets", kError);
  ExpectError("gat", kError);
  ExpectError("gats", kError);
  ExpectError("bget", kError);
  ExpectError("gett k", kError);
  ExpectError("ge k", kError);
  ExpectError("gat abc k", kBadExptime);
  ExpectError("gats 1x k", kBadExptime);
  ExpectError("gat 99999999999999999999 k", kBadExptime);  // ERANGE
  // get has no noreply: the word is a key.
  Command cmd = Parse("get k noreply");
  EXPECT_EQ(cmd.type, CommandType::kGet);
  EXPECT_FALSE(cmd.noreply);
  EXPECT_EQ(Keys(cmd), (std::vector<std::string>{"k", "noreply"}));
  // gat with an exptime and no key answers END: an empty key list.
  Command gat = Parse("gat 10");
  EXPECT_EQ(gat.type, CommandType::kGat);
  EXPECT_TRUE(Keys(gat).empty());
}

TEST_F(ProtocolTest, GetKeyLength) {
  const std::string k250(250, 'a');
  const std::string k251(251, 'b');
  Command ok = Parse("get " + k250);
  EXPECT_EQ(ok.type, CommandType::kGet);
  EXPECT_EQ(ok.bad_key_index, -1);
  EXPECT_EQ(Keys(ok), std::vector<std::string>{k250});

  Command first = Parse("get " + k251);
  EXPECT_EQ(first.type, CommandType::kGet);
  EXPECT_EQ(first.bad_key_index, 0);

  Command mid = Parse("gets a " + k251 + " c " + k251);
  EXPECT_EQ(mid.bad_key_index, 1);

  Command gat = Parse("gat 5 a b " + k251);
  EXPECT_EQ(gat.bad_key_index, 2);

  // A bad key far past the 23-token split.
  for (int i : {0, 21, 22, 23, 30, 999}) {
    std::string line = "get " + KeyList(i);
    if (i > 0) line += " ";
    line += k251 + " z";
    Command cmd = Parse(line);
    EXPECT_EQ(cmd.bad_key_index, i) << i;
  }
}

// ------------------------------------------------------------------ storage

TEST_F(ProtocolTest, StorageCommands) {
  struct Case {
    const char* name;
    CommandType type;
  };
  for (const Case& c :
       {Case{"set", CommandType::kSet}, Case{"add", CommandType::kAdd},
        Case{"replace", CommandType::kReplace}, Case{"append", CommandType::kAppend},
        Case{"prepend", CommandType::kPrepend}}) {
    Command cmd = Parse(std::string(c.name) + " key 123 -45 6");
    EXPECT_EQ(cmd.type, c.type) << c.name;
    EXPECT_EQ(cmd.key, "key");
    EXPECT_EQ(cmd.flags, 123u);
    EXPECT_EQ(cmd.exptime, -45);
    EXPECT_EQ(cmd.value_len, 6u);
    EXPECT_FALSE(cmd.noreply);

    Command quiet = Parse(std::string(c.name) + " key 4294967295 2592000 0 noreply");
    EXPECT_EQ(quiet.type, c.type);
    EXPECT_EQ(quiet.flags, 4294967295u);
    EXPECT_EQ(quiet.exptime, 2592000);
    EXPECT_EQ(quiet.value_len, 0u);
    EXPECT_TRUE(quiet.noreply);

    // A sixth token that is not "noreply" is accepted and ignored.
    Command extra = Parse(std::string(c.name) + " key 0 0 1 whatever");
    EXPECT_EQ(extra.type, c.type);
    EXPECT_FALSE(extra.noreply);

    ExpectError(std::string(c.name) + " key 0 0", kError);
    ExpectError(std::string(c.name) + " key 0 0 1 noreply x", kError);
    ExpectError(std::string(c.name), kError);
  }
  Command cas = Parse("cas key 1 2 3 18446744073709551615");
  EXPECT_EQ(cas.type, CommandType::kCas);
  EXPECT_EQ(cas.key, "key");
  EXPECT_EQ(cas.flags, 1u);
  EXPECT_EQ(cas.exptime, 2);
  EXPECT_EQ(cas.value_len, 3u);
  EXPECT_EQ(cas.cas_unique, 18446744073709551615ull);
  EXPECT_FALSE(cas.noreply);
  Command cas_quiet = Parse("cas key 1 2 3 4 noreply");
  EXPECT_EQ(cas_quiet.cas_unique, 4u);
  EXPECT_TRUE(cas_quiet.noreply);
  ExpectError("cas key 0 0 1", kError);
  ExpectError("cas key 0 0 1 1 noreply x", kError);
}

TEST_F(ProtocolTest, StorageNumberRules) {
  // memcached's quirks, kept: flags keep the low 32 bits of a 64-bit value,
  // so do exptime and the length (a length that wraps to a small positive
  // int32 is accepted).
  EXPECT_EQ(Parse("set k 4294967296 0 1").flags, 0u);
  EXPECT_EQ(Parse("set k 4294967297 0 1").flags, 1u);
  EXPECT_EQ(Parse("set k 0 4294967306 1").exptime, 10);
  EXPECT_EQ(Parse("set k 0 0 4294967297").value_len, 1u);
  EXPECT_EQ(Parse("set k 0 0 2147483645").value_len, 2147483645u);
  EXPECT_EQ(Parse("set k +5 0 1").flags, 5u);
  EXPECT_EQ(Parse("set k 0 0 007").value_len, 7u);
  EXPECT_EQ(Parse("cas k 0 0 1 9223372036854775808").cas_unique, 9223372036854775808ull);
  // "-0" and small negatives as flags: strtoul negates, and only a result
  // that is negative as a signed number is rejected.
  EXPECT_EQ(Parse("set k -0 0 1").flags, 0u);

  ExpectError("set k x 0 1", kBadFormat);
  ExpectError("set k 1x 0 1", kBadFormat);
  ExpectError("set k -1 0 1", kBadFormat);
  ExpectError("set k 18446744073709551616 0 1", kBadFormat);
  ExpectError("set k 0 x 1", kBadFormat);
  ExpectError("set k 0 9223372036854775808 1", kBadFormat);  // strtol ERANGE
  ExpectError("set k 0 0 x", kBadFormat);
  ExpectError("set k 0 0 -1", kBadFormat);
  ExpectError("set k 0 0 2147483646", kBadFormat);  // > INT_MAX - 2
  ExpectError("set k 0 0 2147483647", kBadFormat);
  ExpectError("set k 0 0 2147483648", kBadFormat);  // wraps to INT_MIN
  ExpectError("cas k 0 0 1 x", kBadFormat);
  ExpectError("cas k 0 0 1 -1", kBadFormat);
  ExpectError("cas k 0 0 1 18446744073709551616", kBadFormat);
}

TEST_F(ProtocolTest, StorageErrorsHonourNoreply) {
  ExpectError("set k x 0 1 noreply", kBadFormat, true);
  ExpectError("add k 0 x 1 noreply", kBadFormat, true);
  ExpectError("replace k 0 0 -1 noreply", kBadFormat, true);
  ExpectError("cas k 0 0 1 x noreply", kBadFormat, true);
  // The last token decides, even where a number belongs.
  ExpectError("set k 0 0 noreply", kBadFormat, true);
  // A wrong token count is ERROR, and noreply is not looked at.
  ExpectError("set k 0 noreply", kError, false);
}

TEST_F(ProtocolTest, StorageKeyLength) {
  const std::string k250(250, 'k');
  const std::string k251(251, 'k');
  Command ok = Parse("set " + k250 + " 0 0 1");
  EXPECT_EQ(ok.type, CommandType::kSet);
  EXPECT_EQ(ok.key, k250);
  ExpectError("set " + k251 + " 0 0 1", kBadFormat);
  ExpectError("set " + k251 + " 0 0 1 noreply", kBadFormat, true);
  ExpectError("cas " + k251 + " 0 0 1 1", kBadFormat);
  // The key is checked before the numbers.
  ExpectError("set " + k251 + " x x x", kBadFormat);
}

// ------------------------------------------------------------------- delete

TEST_F(ProtocolTest, Delete) {
  Command plain = Parse("delete k");
  EXPECT_EQ(plain.type, CommandType::kDelete);
  EXPECT_EQ(plain.key, "k");
  EXPECT_FALSE(plain.noreply);

  Command zero = Parse("delete k 0");
  EXPECT_EQ(zero.type, CommandType::kDelete);
  EXPECT_FALSE(zero.noreply);

  Command quiet = Parse("delete k noreply");
  EXPECT_EQ(quiet.type, CommandType::kDelete);
  EXPECT_TRUE(quiet.noreply);

  Command zero_quiet = Parse("delete k 0 noreply");
  EXPECT_EQ(zero_quiet.type, CommandType::kDelete);
  EXPECT_EQ(zero_quiet.key, "k");
  EXPECT_TRUE(zero_quiet.noreply);

  ExpectError("delete", kError);
  ExpectError("delete k 0 noreply x", kError);
  ExpectError("delete k 1", kBadDelete);
  ExpectError("delete k 00", kBadDelete);
  ExpectError("delete k x", kBadDelete);
  ExpectError("delete k 1 noreply", kBadDelete, true);
  ExpectError("delete k noreply 0", kBadDelete, false);
  ExpectError("delete k noreply noreply", kBadDelete, true);

  const std::string k251(251, 'd');
  EXPECT_EQ(Parse("delete " + std::string(250, 'd')).type, CommandType::kDelete);
  ExpectError("delete " + k251, kBadFormat);
  ExpectError("delete " + k251 + " noreply", kBadFormat, true);
  ExpectError("delete " + k251 + " 0", kBadFormat);
  // The hold-time form is checked before the key length.
  ExpectError("delete " + k251 + " 5", kBadDelete);
}

// ---------------------------------------------------------------- incr/decr

TEST_F(ProtocolTest, Arithmetic) {
  for (auto [name, type] :
       {std::pair{"incr", CommandType::kIncr}, std::pair{"decr", CommandType::kDecr}}) {
    std::string n = name;
    Command cmd = Parse(n + " k 5");
    EXPECT_EQ(cmd.type, type);
    EXPECT_EQ(cmd.key, "k");
    EXPECT_EQ(cmd.delta, 5u);
    EXPECT_FALSE(cmd.noreply);

    Command quiet = Parse(n + " k 18446744073709551615 noreply");
    EXPECT_EQ(quiet.type, type);
    EXPECT_EQ(quiet.delta, 18446744073709551615ull);
    EXPECT_TRUE(quiet.noreply);

    // The fourth token is not checked.
    Command extra = Parse(n + " k 1 x");
    EXPECT_EQ(extra.type, type);
    EXPECT_FALSE(extra.noreply);

    ExpectError(n, kError);
    ExpectError(n + " k", kError);
    ExpectError(n + " k 1 noreply x", kError);
    ExpectError(n + " k x", kBadDelta);
    ExpectError(n + " k -1", kBadDelta);
    ExpectError(n + " k 18446744073709551616", kBadDelta);
    ExpectError(n + " k 1.5", kBadDelta);
    ExpectError(n + " k x noreply", kBadDelta, true);
    ExpectError(n + " " + std::string(251, 'k') + " 1", kBadFormat);
    ExpectError(n + " " + std::string(251, 'k') + " 1 noreply", kBadFormat, true);
    EXPECT_EQ(Parse(n + " " + std::string(250, 'k') + " 1").type, type);
  }
  // A '-' is only refused when the result is negative as a signed number;
  // "-0" is zero.
  EXPECT_EQ(Parse("incr k -0").delta, 0u);
}

// -------------------------------------------------------------------- touch

TEST_F(ProtocolTest, Touch) {
  Command cmd = Parse("touch k 10");
  EXPECT_EQ(cmd.type, CommandType::kTouch);
  EXPECT_EQ(cmd.key, "k");
  EXPECT_EQ(cmd.exptime, 10);
  EXPECT_FALSE(cmd.noreply);
  Command quiet = Parse("touch k -1 noreply");
  EXPECT_EQ(quiet.exptime, -1);
  EXPECT_TRUE(quiet.noreply);

  ExpectError("touch", kError);
  ExpectError("touch k", kError);
  ExpectError("touch k 1 noreply x", kError);
  ExpectError("touch k x", kBadExptime);
  ExpectError("touch k x noreply", kBadExptime, true);
  ExpectError("touch " + std::string(251, 't') + " 1", kBadFormat);
  ExpectError("touch " + std::string(251, 't') + " 1 noreply", kBadFormat, true);
}

// ---------------------------------------------------------------- flush_all

TEST_F(ProtocolTest, FlushAll) {
  Command plain = Parse("flush_all");
  EXPECT_EQ(plain.type, CommandType::kFlushAll);
  EXPECT_FALSE(plain.has_exptime);
  EXPECT_FALSE(plain.noreply);

  Command delay = Parse("flush_all 10");
  EXPECT_TRUE(delay.has_exptime);
  EXPECT_EQ(delay.exptime, 10);
  EXPECT_FALSE(delay.noreply);

  Command quiet = Parse("flush_all noreply");
  EXPECT_FALSE(quiet.has_exptime);
  EXPECT_TRUE(quiet.noreply);

  Command both = Parse("flush_all 10 noreply");
  EXPECT_TRUE(both.has_exptime);
  EXPECT_EQ(both.exptime, 10);
  EXPECT_TRUE(both.noreply);

  Command zero = Parse("flush_all 0");
  EXPECT_TRUE(zero.has_exptime);
  EXPECT_EQ(zero.exptime, 0);

  Command negative = Parse("flush_all -5");
  EXPECT_EQ(negative.exptime, -5);

  ExpectError("flush_all x", kBadExptime);
  ExpectError("flush_all x noreply", kBadExptime, true);
  ExpectError("flush_all 1 noreply x", kError);
  // Two tokens after the name, the last one not "noreply": the first is
  // the delay and the second is ignored.
  Command odd = Parse("flush_all 7 x");
  EXPECT_EQ(odd.type, CommandType::kFlushAll);
  EXPECT_EQ(odd.exptime, 7);
  EXPECT_FALSE(odd.noreply);
}

// ------------------------------------------------------- the other commands

TEST_F(ProtocolTest, VersionQuitMn) {
  EXPECT_EQ(Parse("version").type, CommandType::kVersion);
  EXPECT_EQ(Parse("version extra args").type, CommandType::kVersion);
  EXPECT_EQ(Parse("quit").type, CommandType::kQuit);
  EXPECT_EQ(Parse("quit now").type, CommandType::kQuit);
  EXPECT_EQ(Parse("mn").type, CommandType::kMetaNoop);
  EXPECT_EQ(Parse("mn x").type, CommandType::kMetaNoop);
  // Other two-letter m commands are not meta commands.
  ExpectError("mx k v", kError);
  ExpectError("mz", kError);
}

TEST_F(ProtocolTest, Verbosity) {
  Command cmd = Parse("verbosity 1");
  EXPECT_EQ(cmd.type, CommandType::kVerbosity);
  EXPECT_EQ(cmd.number, 1u);
  EXPECT_FALSE(cmd.noreply);
  Command quiet = Parse("verbosity 5 noreply");
  EXPECT_EQ(quiet.number, 5u);
  EXPECT_TRUE(quiet.noreply);
  ExpectError("verbosity", kError);
  ExpectError("verbosity 1 noreply x", kError);
  ExpectError("verbosity x", kBadFormat);
  ExpectError("verbosity -1", kBadFormat);
  ExpectError("verbosity x noreply", kBadFormat, true);
  ExpectError("verbosity noreply", kBadFormat, true);
}

TEST_F(ProtocolTest, CacheMemlimit) {
  Command cmd = Parse("cache_memlimit 100");
  EXPECT_EQ(cmd.type, CommandType::kCacheMemlimit);
  EXPECT_EQ(cmd.number, 100u);
  EXPECT_FALSE(cmd.noreply);
  Command quiet = Parse("cache_memlimit 64 noreply");
  EXPECT_EQ(quiet.number, 64u);
  EXPECT_TRUE(quiet.noreply);
  ExpectError("cache_memlimit", kError);
  ExpectError("cache_memlimit 1 noreply x", kError);
  // memcached answers a bad number with plain ERROR, which noreply hides.
  ExpectError("cache_memlimit x", kError, false);
  ExpectError("cache_memlimit x noreply", kError, true);
}

TEST_F(ProtocolTest, Stats) {
  Command plain = Parse("stats");
  EXPECT_EQ(plain.type, CommandType::kStats);
  EXPECT_EQ(plain.nargs, 0u);
  Command items = Parse("stats items");
  ASSERT_EQ(items.nargs, 1u);
  EXPECT_EQ(items.args[0], "items");
  Command detail = Parse("stats  detail   on ");
  ASSERT_EQ(detail.nargs, 2u);
  EXPECT_EQ(detail.args[0], "detail");
  EXPECT_EQ(detail.args[1], "on");
  // At most 22 arguments are separated (23 tokens with the name); all are
  // counted, the first Command::kKeptArgs kept.
  Command many = Parse("stats " + KeyList(40, "a"));
  EXPECT_EQ(many.nargs, 22u);
  static_assert(Command::kKeptArgs == 2);
  EXPECT_EQ(many.args[0], "a0");
  EXPECT_EQ(many.args[1], "a1");
}

// ------------------------------------------------------- admin commands
// Every reply below is what memcached 1.6.18 (Debian's build, default
// options) sends for the same line, as test_differential.py checks on the
// real binary.

class AdminTest : public ProtocolTest {
 protected:
  // Expects a kFixedReply with `reply` and `noreply`.
  void ExpectFixed(const std::string& line, std::string_view reply, bool noreply = false) {
    Command cmd = Parse(line);
    EXPECT_EQ(cmd.type, CommandType::kFixedReply) << line << " -> " << DescribeCommand(cmd);
    EXPECT_EQ(cmd.reply, reply) << line;
    EXPECT_EQ(cmd.noreply, noreply) << line;
  }
};

TEST_F(AdminTest, SlabsAutomove) {
  for (const char* level : {"0", "1", "2", " 1", "4294967297", "+1"}) {
    ExpectFixed(std::string("slabs automove ") + level, "OK");
  }
  ExpectFixed("slabs automove 1 2 3", "OK");  // extra tokens are ignored
  ExpectFixed("slabs automove 3", kError);
  ExpectFixed("slabs automove -1", kBadFormat);
  ExpectFixed("slabs automove invalid", kBadFormat);
  ExpectFixed("slabs automove 1x", kBadFormat);
  // noreply hides every reply of automove, errors too.
  ExpectFixed("slabs automove 1 noreply", "OK", true);
  ExpectFixed("slabs automove invalid noreply", kBadFormat, true);
  ExpectFixed("slabs automove noreply", kBadFormat, true);
  ExpectFixed("slabs automove ratio 0.5", "OK");
  ExpectFixed("slabs automove ratio 1e3 x", "OK");
  ExpectFixed("slabs automove ratio .5 noreply", "OK", true);
  ExpectFixed("slabs automove ratio", kError);
  ExpectFixed("slabs automove ratio abc", kError);
  ExpectFixed("slabs automove ratio 0.5x", kError);
  ExpectFixed("slabs automove ratio 1e999", kError);   // ERANGE
  ExpectFixed("slabs automove ratio 1e-999", kError);  // underflow is ERANGE too
}

TEST_F(AdminTest, SlabsReassign) {
  ExpectFixed("slabs reassign 1 1", "SAME src and dst class are identical");
  ExpectFixed("slabs reassign 5 5", "SAME src and dst class are identical");
  ExpectFixed("slabs reassign 1 0", "NOSPARE source class has no spare pages");
  ExpectFixed("slabs reassign 0 1", "NOSPARE source class has no spare pages");
  // strata has classes 0 (memcached's page pool) and 1; -1 picks a class
  // with a spare page, of which there is none.
  ExpectFixed("slabs reassign 1 2", "BADCLASS invalid src or dst class id");
  ExpectFixed("slabs reassign -1 1", "BADCLASS invalid src or dst class id");
  ExpectFixed("slabs reassign 1 200", "BADCLASS invalid src or dst class id");
  ExpectFixed("slabs reassign a b", kBadFormat);
  ExpectFixed("slabs reassign 1 b", kBadFormat);
  // Exactly four tokens, and no noreply.
  ExpectFixed("slabs reassign 1", kError);
  ExpectFixed("slabs reassign 1 2 noreply", kError);
  ExpectFixed("slabs", kError);
  ExpectFixed("slabs automove", kError);
  ExpectFixed("slabs foo 1 2", kError);
  ExpectFixed("slabs noreply", kError);
}

TEST_F(AdminTest, Lru) {
  ExpectFixed("lru tune 10 10 0.1 2.0", "OK");
  ExpectFixed("lru tune 10 10 0.1 2.0 noreply", "OK", true);
  ExpectFixed("lru tune 50 50 0.1 2.0", "ERROR hot and warm pcts must not exceed 80");
  ExpectFixed("lru tune 40 40 1 1", "OK");
  // The sum is a 32-bit unsigned one, as memcached's.
  ExpectFixed("lru tune 4294967295 2 0.1 2.0", "OK");
  ExpectFixed("lru tune 10 10 0 2.0", "ERROR hot/warm age factors must be greater than 0");
  ExpectFixed("lru tune 10 10 0.1 -1", "ERROR hot/warm age factors must be greater than 0");
  ExpectFixed("lru tune 10 10 nan 2", "OK");  // NaN <= 0 is false
  ExpectFixed("lru tune a 10 0.1 2.0", kError);
  ExpectFixed("lru tune 10 10 0.1", kError);
  ExpectFixed("lru tune 10 10 0.1 noreply", kError, true);
  ExpectFixed("lru mode flat", "OK");
  ExpectFixed("lru mode segmented", "OK");
  ExpectFixed("lru mode segmented noreply", "OK", true);
  ExpectFixed("lru mode foo", kError);
  ExpectFixed("lru mode", kError);
  ExpectFixed("lru temp_ttl 100", "OK");
  ExpectFixed("lru temp_ttl -1", "OK");
  ExpectFixed("lru temp_ttl abc", kError);
  ExpectFixed("lru foo", kError);
  ExpectFixed("lru noreply", kError, true);
  ExpectError("lru", kError);  // memcached wants two tokens before it looks
}

TEST_F(AdminTest, LruCrawlerTunables) {
  ExpectFixed("lru_crawler tocrawl 100", "OK");
  ExpectFixed("lru_crawler tocrawl abc", kBadFormat);
  ExpectFixed("lru_crawler sleep 0", "OK");
  ExpectFixed("lru_crawler sleep 1000000", "OK");
  ExpectFixed("lru_crawler sleep 1000001", "CLIENT_ERROR sleep must be one second or less");
  ExpectFixed("lru_crawler sleep abc", kBadFormat);
  // lru_crawler never takes noreply: a fourth token is ERROR.
  ExpectError("lru_crawler sleep 100 noreply", kError);
  ExpectError("lru_crawler", kError);
  ExpectError("lru_crawler crawl", kError);
  ExpectError("lru_crawler crawl all noreply", kError);
  ExpectError("lru_crawler foo", kError);
  ExpectError("lru_crawler foo bar", kError);
  ExpectError("lru_crawler enable now", kError);
}

TEST_F(AdminTest, LruCrawlerCommands) {
  auto crawler = [&](const std::string& line, CrawlerOp op, std::string_view reply,
                     uint32_t class1) {
    Command cmd = Parse(line);
    EXPECT_EQ(cmd.type, CommandType::kLruCrawler) << line;
    EXPECT_EQ(cmd.crawler, op) << line;
    EXPECT_EQ(cmd.reply, reply) << line;
    EXPECT_EQ(cmd.number, class1) << line;
    EXPECT_FALSE(cmd.noreply) << line;
  };
  crawler("lru_crawler enable", CrawlerOp::kEnable, "", 0);
  crawler("lru_crawler disable", CrawlerOp::kDisable, "", 0);
  crawler("lru_crawler crawl all", CrawlerOp::kCrawl, "", 1);
  crawler("lru_crawler crawl 1", CrawlerOp::kCrawl, "", 1);
  crawler("lru_crawler crawl 2,1", CrawlerOp::kCrawl, "", 1);
  crawler("lru_crawler crawl 2,3", CrawlerOp::kCrawl, "", 0);
  crawler("lru_crawler crawl 63", CrawlerOp::kCrawl, "", 0);
  crawler("lru_crawler crawl ,,1,,", CrawlerOp::kCrawl, "", 1);  // strtok skips empties
  crawler("lru_crawler crawl 0", CrawlerOp::kCrawl, "BADCLASS invalid class id", 0);
  crawler("lru_crawler crawl 64", CrawlerOp::kCrawl, "BADCLASS invalid class id", 0);
  crawler("lru_crawler crawl 1,x", CrawlerOp::kCrawl, "BADCLASS invalid class id", 0);
  crawler("lru_crawler crawl abc", CrawlerOp::kCrawl, "BADCLASS invalid class id", 0);
  crawler("lru_crawler crawl ,,,", CrawlerOp::kCrawl, "NOTSTARTED no items to crawl", 0);
  crawler("lru_crawler crawl hash", CrawlerOp::kCrawl, "ERROR an unknown error happened", 0);
  crawler("lru_crawler metadump all", CrawlerOp::kMetadump, "", 1);
  crawler("lru_crawler metadump hash", CrawlerOp::kMetadump, "", 1);
  crawler("lru_crawler metadump 1", CrawlerOp::kMetadump, "", 1);
  crawler("lru_crawler metadump 5", CrawlerOp::kMetadump, "", 0);
  crawler("lru_crawler metadump 0", CrawlerOp::kMetadump, "BADCLASS invalid class id", 0);
  crawler("lru_crawler metadump x", CrawlerOp::kMetadump, "BADCLASS invalid class id", 0);
}

TEST_F(AdminTest, Watch) {
  // As memcached started with -W: strata has no log stream to watch.
  ExpectError("watch", "CLIENT_ERROR watch commands not allowed");
  ExpectError("watch fetchers mutations", "CLIENT_ERROR watch commands not allowed");
  ExpectError("watch foo", "CLIENT_ERROR watch commands not allowed");
  ExpectError("watch fetchers noreply", "CLIENT_ERROR watch commands not allowed", true);
}

TEST_F(AdminTest, StatsCachedump) {
  Command dump = Parse("stats cachedump 1 100");
  EXPECT_EQ(dump.type, CommandType::kStats);
  ASSERT_EQ(dump.nargs, 3u);
  EXPECT_EQ(dump.args[0], "cachedump");
  EXPECT_EQ(dump.number, 1u);
  EXPECT_EQ(dump.delta, 100u);
  Command all = Parse("stats cachedump 63 0 extra");
  EXPECT_EQ(all.number, 63u);
  EXPECT_EQ(all.delta, 0u);
  ExpectError("stats cachedump", "CLIENT_ERROR bad command line");
  ExpectError("stats cachedump 1", "CLIENT_ERROR bad command line");
  ExpectError("stats cachedump a b", kBadFormat);
  ExpectError("stats cachedump 1 -1", kBadFormat);
  ExpectError("stats cachedump 64 1", "CLIENT_ERROR Illegal slab id");
  // memcached truncates to 32 bits: 2^32 is class 0, 2^32 + 1 class 1.
  EXPECT_EQ(Parse("stats cachedump 4294967296 1").number, 0u);
  EXPECT_EQ(Parse("stats cachedump 4294967297 1").number, 1u);
}

TEST_F(AdminTest, SafeStrtod) {
  double d = 0;
  EXPECT_TRUE(common::SafeStrtod("0.5", &d));
  EXPECT_EQ(d, 0.5);
  EXPECT_TRUE(common::SafeStrtod(" -2e1", &d));
  EXPECT_EQ(d, -20);
  EXPECT_TRUE(common::SafeStrtod("1.5\t", &d));  // white space may follow
  EXPECT_TRUE(common::SafeStrtod("inf", &d));
  EXPECT_TRUE(common::SafeStrtod("0x10", &d));
  EXPECT_EQ(d, 16);
  EXPECT_FALSE(common::SafeStrtod("", &d));
  EXPECT_FALSE(common::SafeStrtod("x", &d));
  EXPECT_FALSE(common::SafeStrtod("1.5x", &d));
  EXPECT_FALSE(common::SafeStrtod("1e400", &d));
  EXPECT_EQ(d, 0);
  std::string long_number = "0." + std::string(200, '0') + "1";
  EXPECT_TRUE(common::SafeStrtod(long_number, &d));
  EXPECT_GT(d, 0);
}

TEST_F(ProtocolTest, Shutdown) {
  Command plain = Parse("shutdown");
  EXPECT_EQ(plain.type, CommandType::kShutdown);
  EXPECT_EQ(plain.nargs, 0u);
  Command graceful = Parse("shutdown graceful");
  EXPECT_EQ(graceful.type, CommandType::kShutdown);
  ASSERT_EQ(graceful.nargs, 1u);
  EXPECT_EQ(graceful.args[0], "graceful");
  Command other = Parse("shutdown now please");
  EXPECT_EQ(other.nargs, 2u);
}

TEST_F(ProtocolTest, UnknownCommands) {
  ExpectError("bogus", kError);
  ExpectError("sets k 0 0 1", kError);
  ExpectError("SET k 0 0 1", kError);
  ExpectError("g", kError);
  ExpectError("x", kError);
  ExpectError("slab automove 1", kError);
  ExpectError("lru_crawl crawl all", kError);
  ExpectError("watches", kError);
  ExpectError("", kError);
  ExpectError("    ", kError);
}

// ------------------------------------------------------------ line framing

TEST_F(ProtocolTest, LfAndCrLf) {
  Parsed lf("get a\n");
  ASSERT_EQ(lf.result.status, ParseStatus::kCommand);
  EXPECT_EQ(lf.result.consumed, 6u);
  Parsed crlf("get a\r\n");
  ASSERT_EQ(crlf.result.status, ParseStatus::kCommand);
  EXPECT_EQ(crlf.result.consumed, 7u);
  EXPECT_EQ(DescribeCommand(lf.cmd), DescribeCommand(crlf.cmd));
  EXPECT_EQ(lf.cmd.keys, "a");

  // Only one '\r' is dropped: a second one stays in the last token.
  Parsed two_cr("get a\r\r\n");
  EXPECT_EQ(two_cr.cmd.keys, "a\r");
  Parsed version_cr("version\r\r\n");
  EXPECT_EQ(version_cr.cmd.type, CommandType::kError);
  // '\r' inside a token is just a byte; a number followed by '\r' is fine
  // (strtol stops at white space).
  Parsed inner("touch k 5\r\r\n");
  EXPECT_EQ(inner.cmd.type, CommandType::kTouch);
  EXPECT_EQ(inner.cmd.exptime, 5);
}

TEST_F(ProtocolTest, EmptyLines) {
  Parsed lf("\n");
  ASSERT_EQ(lf.result.status, ParseStatus::kCommand);
  EXPECT_EQ(lf.result.consumed, 1u);
  EXPECT_EQ(lf.cmd.type, CommandType::kError);
  EXPECT_EQ(lf.cmd.reply, kError);

  // "\r\n" alone: the '\r' is kept (memcached drops it only after at least
  // one other byte), a one-byte token, ERROR.
  Parsed crlf("\r\n");
  ASSERT_EQ(crlf.result.status, ParseStatus::kCommand);
  EXPECT_EQ(crlf.result.consumed, 2u);
  EXPECT_EQ(crlf.cmd.type, CommandType::kError);
  EXPECT_EQ(crlf.cmd.reply, kError);

  Parsed spaces("   \r\n");
  EXPECT_EQ(spaces.cmd.type, CommandType::kError);
}

TEST_F(ProtocolTest, NulTruncatesTheLine) {
  Parsed get(std::string("get a\0b c\r\nversion\r\n", 20));
  ASSERT_EQ(get.result.status, ParseStatus::kCommand);
  EXPECT_EQ(get.result.consumed, 11u);  // the whole line is consumed
  EXPECT_EQ(get.cmd.type, CommandType::kGet);
  EXPECT_EQ(get.cmd.keys, "a");

  Parsed lead(std::string("\0version\r\n", 10));
  EXPECT_EQ(lead.cmd.type, CommandType::kError);
  EXPECT_EQ(lead.cmd.reply, kError);
  EXPECT_EQ(lead.result.consumed, 10u);

  // The cut can drop a storage command's arguments.
  Parsed set(std::string("set k 0 0\0 5\r\n", 14));
  EXPECT_EQ(set.cmd.type, CommandType::kError);
  EXPECT_EQ(set.cmd.reply, kError);

  // Or the noreply.
  Parsed quiet(std::string("delete k\0 noreply\r\n", 19));
  EXPECT_EQ(quiet.cmd.type, CommandType::kDelete);
  EXPECT_FALSE(quiet.cmd.noreply);
}

TEST_F(ProtocolTest, TokenLimit) {
  // Exactly 23 tokens are separated; the 24th and later stay in one piece,
  // so a storage command with trailing junk tokens is ERROR, and noreply at
  // the end of such a line is not seen.
  std::string junk = KeyList(20, "j");
  ExpectError("set k 0 0 1 " + junk, kError);
  ExpectError("delete k 0 " + junk + " noreply", kError);

  // The 23rd token is the last one looked at by the HTTP check.
  std::string http = "FOO " + KeyList(21, "x") + " HTTP/1.1";  // 23 tokens
  Parsed close(http + "\r\n");
  EXPECT_EQ(close.result.status, ParseStatus::kClose);
  Parsed no_close("FOO " + KeyList(22, "x") + " HTTP/1.1\r\n");  // 24 tokens
  EXPECT_EQ(no_close.result.status, ParseStatus::kCommand);
  EXPECT_EQ(no_close.cmd.reply, kError);
}

TEST_F(ProtocolTest, Pipelined) {
  Parsed p("get a\r\nget b\r\nset k 0 0 1\r\nx\r\n");
  ASSERT_EQ(p.result.status, ParseStatus::kCommand);
  EXPECT_EQ(p.result.consumed, 7u);
  EXPECT_EQ(p.cmd.keys, "a");
}

// ---------------------------------------------- lines without a newline

TEST_F(ProtocolTest, NeedMore) {
  for (const char* in : {"", "g", "get", "get a", "get a\r", "set k 0 0 1", "\r", " "}) {
    Parsed p(in);
    EXPECT_EQ(p.result.status, ParseStatus::kNeedMore) << in;
    EXPECT_EQ(p.result.consumed, 0u);
  }
}

TEST_F(ProtocolTest, LineLimit) {
  // Up to 2048 bytes without a newline: wait for more.
  EXPECT_EQ(Parsed(std::string(kLineLimit, 'x')).result.status, ParseStatus::kNeedMore);
  EXPECT_EQ(Parsed("set " + std::string(kLineLimit - 4, 'x')).result.status,
            ParseStatus::kNeedMore);
  // One byte more closes, unless it is a multiget.
  EXPECT_EQ(Parsed(std::string(kLineLimit + 1, 'x')).result.status, ParseStatus::kClose);
  EXPECT_EQ(Parsed("set " + std::string(kLineLimit - 3, 'x')).result.status, ParseStatus::kClose);
  for (const char* prefix : {"gat ", "gats ", "bget ", "get", "gets", "GET ", "get\t", "mget "}) {
    std::string in = prefix + std::string(kLineLimit, 'k');
    EXPECT_EQ(Parsed(in).result.status, ParseStatus::kClose) << prefix;
  }
  for (const char* prefix : {"get ", "gets ", "get  ", "gets x"}) {
    std::string in = prefix + std::string(kLineLimit, 'k');
    EXPECT_EQ(Parsed(in).result.status, ParseStatus::kNeedMore) << prefix;
  }
  // Up to 100 leading spaces are skipped.
  std::string keys(3000, 'k');
  EXPECT_EQ(Parsed(std::string(100, ' ') + "get " + keys).result.status, ParseStatus::kNeedMore);
  EXPECT_EQ(Parsed(std::string(101, ' ') + "get " + keys).result.status, ParseStatus::kClose);
  EXPECT_EQ(Parsed(std::string(3000, ' ')).result.status, ParseStatus::kClose);
  // A long line that does have its newline is parsed whatever it is.
  Parsed long_line("stats " + std::string(5000, 's') + "\r\n");
  EXPECT_EQ(long_line.result.status, ParseStatus::kCommand);
  EXPECT_EQ(long_line.cmd.type, CommandType::kStats);
}

// memcached applies the 2048-byte rule to what its 16 KiB buffer holds after
// a read: the caller passes a larger limit while more of a read is coming.
TEST_F(ProtocolTest, CallersLineLimit) {
  auto status = [](const std::string& in, size_t limit) {
    Command cmd;
    return ParseCommand(in, &cmd, limit).status;
  };
  const std::string garbage(5000, 'x');
  EXPECT_EQ(status(garbage, kLineLimit), ParseStatus::kClose);
  EXPECT_EQ(status(garbage, kReadBufferSize - 1), ParseStatus::kNeedMore);
  EXPECT_EQ(status(std::string(kReadBufferSize - 1, 'x'), kReadBufferSize - 1),
            ParseStatus::kNeedMore);
  EXPECT_EQ(status(std::string(kReadBufferSize, 'x'), kReadBufferSize - 1), ParseStatus::kClose);
  // A limit below memcached's 2048 is raised to it.
  EXPECT_EQ(status(std::string(kLineLimit, 'x'), 10), ParseStatus::kNeedMore);
  // Whatever the limit, a line with its newline is parsed, and a get line
  // may grow.
  EXPECT_EQ(status(garbage + "\r\n", kLineLimit), ParseStatus::kCommand);
  EXPECT_EQ(status("get " + garbage, kLineLimit), ParseStatus::kNeedMore);
  Command cmd;
  ParseResult r = ParseCommand(std::string(15000, 'x') + "\r\n", &cmd, kLineLimit);
  EXPECT_EQ(r.status, ParseStatus::kCommand);
  EXPECT_EQ(cmd.reply, kError);
}

TEST_F(ProtocolTest, MultigetCap) {
  std::string at_cap = "get " + std::string(kMaxMultigetLine - 4, 'k');
  ASSERT_EQ(at_cap.size(), kMaxMultigetLine);
  EXPECT_EQ(Parsed(at_cap).result.status, ParseStatus::kNeedMore);
  EXPECT_EQ(Parsed(at_cap + "k").result.status, ParseStatus::kClose);
  // A get line longer than the cap that is complete is still a command.
  Parsed complete("get " + KeyList(2000000 / 8, "key") + "\r\n");
  EXPECT_EQ(complete.result.status, ParseStatus::kCommand);
}

// ---------------------------------------------------------- HTTP requests

TEST_F(ProtocolTest, HttpRequestLine) {
  for (const char* line : {"GET / HTTP/1.1", "POST /x HTTP/1.0", "HEAD / HTTP/1.1",
                           "PUT /a/b HTTP/2", "OPTIONS * HTTP/1.1", "get_x HTTP/1.1"}) {
    Parsed p(std::string(line) + "\r\n");
    // "get_x" starts with 'g': memcached's get branch answers ERROR.
    if (line[0] == 'g') {
      EXPECT_EQ(p.result.status, ParseStatus::kCommand) << line;
      EXPECT_EQ(p.cmd.reply, kError);
    } else {
      EXPECT_EQ(p.result.status, ParseStatus::kClose) << line;
    }
  }
  // Every first letter: memcached closes only when the name's first letter
  // is not one it dispatches on ('s','a','c','i','d','t', and 'g' and
  // two-letter 'm..' names).
  for (int c = 1; c < 256; ++c) {
    if (c == ' ' || c == '\n' || c == '\r') continue;
    std::string name(1, static_cast<char>(c));
    name += "xx";
    Parsed p(name + " / HTTP/1.1\r\n");
    bool dispatched =
        std::string_view("sacidtg").find(static_cast<char>(c)) != std::string_view::npos;
    if (dispatched) {
      EXPECT_EQ(p.result.status, ParseStatus::kCommand) << c;
      EXPECT_EQ(p.cmd.reply, kError) << c;
    } else {
      EXPECT_EQ(p.result.status, ParseStatus::kClose) << c;
    }
  }
  // A two-letter name starting with 'm' is a meta command: ERROR.
  Parsed meta("mx / HTTP/1.1\r\n");
  EXPECT_EQ(meta.result.status, ParseStatus::kCommand);
  EXPECT_EQ(meta.cmd.reply, kError);
  // Known commands are dispatched whatever their last token.
  EXPECT_EQ(Parsed("version HTTP/1.1\r\n").cmd.type, CommandType::kVersion);
  EXPECT_EQ(Parsed("set / HTTP/1.1\r\n").cmd.reply, kError);
  EXPECT_EQ(Parsed("delete / HTTP/1.1\r\n").cmd.reply, kBadDelete);
  // The HTTP token must be the last one.
  Parsed not_last("GET / HTTP/1.1 x\r\n");
  EXPECT_EQ(not_last.result.status, ParseStatus::kCommand);
  EXPECT_EQ(not_last.cmd.reply, kError);
  Parsed lower("GET / http/1.1\r\n");
  EXPECT_EQ(lower.result.status, ParseStatus::kCommand);
}

// ------------------------------------------------------------------ NextKey

TEST(NextKeyTest, SplitsOnSpaces) {
  std::string_view keys = "  a bb   ccc ";
  std::string_view key;
  ASSERT_TRUE(NextKey(&keys, &key));
  EXPECT_EQ(key, "a");
  ASSERT_TRUE(NextKey(&keys, &key));
  EXPECT_EQ(key, "bb");
  ASSERT_TRUE(NextKey(&keys, &key));
  EXPECT_EQ(key, "ccc");
  EXPECT_FALSE(NextKey(&keys, &key));
  EXPECT_TRUE(keys.empty());
  std::string_view empty;
  EXPECT_FALSE(NextKey(&empty, &key));
  // Only ' ' separates keys.
  std::string_view tabs = "a\tb";
  ASSERT_TRUE(NextKey(&tabs, &key));
  EXPECT_EQ(key, "a\tb");
}

}  // namespace
}  // namespace strata::proxy
