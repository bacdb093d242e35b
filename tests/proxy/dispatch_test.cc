// Tests of the Dispatcher against a real RamTier and a FakeClock: the exact
// reply bytes of a scripted session, multi-gets that pause at the output
// watermark and resume to the same bytes, memcached's exptime rules and
// flush_all with and without a delay.
//
// The Session driver does what a connection does with the parser and the
// dispatcher: parse a line, execute it, read (or swallow) a storage
// command's data block, continue paused gets, and collect the output bytes.

#include "proxy/exec/dispatch.h"

#include <gtest/gtest.h>
#include <sys/uio.h>

#include <algorithm>
#include <cstring>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "proxy/protocol/output_queue.h"
#include "proxy/protocol/protocol.h"
#include "proxy/shared/prefix_stats.h"
#include "proxy/shared/server_context.h"
#include "proxy/shared/worker_stats.h"
#include "tests/support/fake_clock.h"
#include "tiers/ram/ram_tier.h"

namespace strata::proxy {
namespace {

constexpr int64_t kStart = 1'700'000'000;
constexpr int64_t kThirtyDays = 60 * 60 * 24 * 30;

class DispatchTest : public ::testing::Test {
 protected:
  DispatchTest() : clock_(kStart) {
    ctx_.clock = &clock_;
    ctx_.started_unix = kStart;
    ctx_.worker_stats = {&stats_};
    ResetCache();
  }

  // A fresh, empty RAM tier (CAS uniques start again from 1) and a
  // dispatcher over it (with no TieredCache in the context, the dispatcher
  // wraps ctx.tier in a RAM-only one, so it is rebuilt with the tier).
  void ResetCache() {
    dispatcher_.reset();
    tiers::RamTierOptions options;
    options.size_bytes = 64ull << 20;
    options.shards = 4;
    tier_ = std::make_unique<tiers::RamTier>(options, clock_);
    ctx_.tier = tier_.get();
    dispatcher_ = std::make_unique<Dispatcher>(ctx_, stats_);
  }

  // Everything queued in `out`, consumed.
  static std::string TakeOutput(OutputQueue& out) {
    std::string s;
    while (!out.empty()) {
      struct iovec iov[16];
      size_t total = 0;
      size_t n = out.Gather(iov, 16, &total);
      for (size_t i = 0; i < n; ++i) {
        s.append(static_cast<const char*>(iov[i].iov_base), iov[i].iov_len);
      }
      out.Consume(total);
    }
    return s;
  }

  // Runs the request bytes `in` to the end and returns the reply bytes.
  // A connection close (quit, shutdown, HTTP) appends "<close>" and stops.
  // `drain_on_pause`: empty the output queue at each pause, as a socket
  // that keeps up would; otherwise the queue only grows.
  std::string Run(std::string_view in, bool drain_on_pause = true, int* pauses = nullptr) {
    OutputQueue out;
    std::string reply;
    size_t off = 0;
    while (off < in.size()) {
      Command cmd;
      ParseResult r = ParseCommand(in.substr(off), &cmd);
      if (r.status == ParseStatus::kNeedMore) {
        ADD_FAILURE() << "incomplete request at " << off;
        break;
      }
      if (r.status == ParseStatus::kClose) {
        reply += TakeOutput(out) + "<close>";
        return reply;
      }
      off += r.consumed;
      PendingStore store;
      Outcome outcome = dispatcher_->Execute(cmd, out, &store);
      while (outcome == Outcome::kPaused) {
        if (pauses != nullptr) ++*pauses;
        if (drain_on_pause) reply += TakeOutput(out);
        outcome = dispatcher_->ContinueGet(cmd, out);
      }
      if (outcome == Outcome::kReadData) {
        EXPECT_EQ(store.remaining, cmd.value_len + 2ull);
        size_t n = static_cast<size_t>(std::min<uint64_t>(store.remaining, in.size() - off));
        EXPECT_EQ(n, store.remaining) << "data block cut short";
        if (store.item) {
          std::memcpy(store.item->MutableValue(), in.data() + off, n);
          const char* end = store.item->Value() + store.item->value_len;
          bool terminated = end[0] == '\r' && end[1] == '\n';
          EXPECT_EQ(dispatcher_->CompleteStore(store, terminated, out), Outcome::kDone);
        }
        off += n;
      }
      if (outcome == Outcome::kClose) {
        reply += TakeOutput(out) + "<close>";
        return reply;
      }
    }
    return reply + TakeOutput(out);
  }

  std::string Get(const std::string& key) { return Run("get " + key + "\r\n"); }
  bool Hit(const std::string& key) { return Get(key) != "END\r\n"; }

  std::string Set(const std::string& key, int64_t exptime, const std::string& value = "v") {
    return Run("set " + key + " 0 " + std::to_string(exptime) + " " + std::to_string(value.size()) +
               "\r\n" + value + "\r\n");
  }

  common::FakeClock clock_;
  std::unique_ptr<tiers::RamTier> tier_;
  WorkerStats stats_;
  ServerContext ctx_;
  std::unique_ptr<Dispatcher> dispatcher_;
};

// A scripted session; every reply byte as memcached 1.6.18 sends it. CAS
// uniques come from a fresh tier, so they count up from 1 with each store.
TEST_F(DispatchTest, ScriptedSession) {
  struct Exchange {
    std::string request;
    std::string reply;
  };
  const std::vector<Exchange> script = {
      {"set foo 5 0 3\r\nbar\r\n", "STORED\r\n"},  // cas 1
      {"get foo\r\n", "VALUE foo 5 3\r\nbar\r\nEND\r\n"},
      {"gets foo\r\n", "VALUE foo 5 3 1\r\nbar\r\nEND\r\n"},
      {"get foo missing foo\r\n", "VALUE foo 5 3\r\nbar\r\nVALUE foo 5 3\r\nbar\r\nEND\r\n"},
      {"get missing\r\n", "END\r\n"},
      {"cas foo 7 0 3 999\r\nbaz\r\n", "EXISTS\r\n"},
      {"cas foo 7 0 3 1\r\nbaz\r\n", "STORED\r\n"},  // cas 2
      {"gets foo\r\n", "VALUE foo 7 3 2\r\nbaz\r\nEND\r\n"},
      {"cas missing 0 0 1 1\r\nx\r\n", "NOT_FOUND\r\n"},
      {"add foo 0 0 1\r\nx\r\n", "NOT_STORED\r\n"},
      {"add new 1 0 1\r\nx\r\n", "STORED\r\n"},  // cas 3
      {"replace missing 0 0 1\r\nx\r\n", "NOT_STORED\r\n"},
      {"replace new 2 0 2\r\nyy\r\n", "STORED\r\n"},  // cas 4
      {"append foo 0 0 2\r\n!!\r\n", "STORED\r\n"},   // cas 5
      {"prepend foo 0 0 2\r\n<<\r\n", "STORED\r\n"},  // cas 6
      {"append missing 0 0 1\r\nx\r\n", "NOT_STORED\r\n"},
      {"gets foo new\r\n", "VALUE foo 7 7 6\r\n<<baz!!\r\nVALUE new 2 2 4\r\nyy\r\nEND\r\n"},
      {"set n 0 0 2\r\n10\r\n", "STORED\r\n"},
      {"incr n 5\r\n", "15\r\n"},
      {"decr n 20\r\n", "0\r\n"},
      {"get n\r\n", "VALUE n 0 2\r\n0 \r\nEND\r\n"},  // decr pads in place
      {"incr n 18446744073709551615\r\n", "18446744073709551615\r\n"},
      {"incr n 2\r\n", "1\r\n"},  // wraps at 2^64
      {"incr missing 1\r\n", "NOT_FOUND\r\n"},
      {"decr missing 1\r\n", "NOT_FOUND\r\n"},
      {"incr foo 1\r\n", "CLIENT_ERROR cannot increment or decrement non-numeric value\r\n"},
      {"incr n x\r\n", "CLIENT_ERROR invalid numeric delta argument\r\n"},
      {"touch foo 100\r\n", "TOUCHED\r\n"},
      {"touch missing 100\r\n", "NOT_FOUND\r\n"},
      {"gat 100 foo missing\r\n", "VALUE foo 7 7\r\n<<baz!!\r\nEND\r\n"},
      {"gats 0 foo\r\n", "VALUE foo 7 7 6\r\n<<baz!!\r\nEND\r\n"},
      {"gat x foo\r\n", "CLIENT_ERROR invalid exptime argument\r\n"},
      {"delete foo\r\n", "DELETED\r\n"},
      {"delete foo\r\n", "NOT_FOUND\r\n"},
      {"delete new 0\r\n", "DELETED\r\n"},
      {"delete foo 5\r\n",
       "CLIENT_ERROR bad command line format.  Usage: delete <key> [noreply]\r\n"},
      {"get " + std::string(251, 'k') + "\r\n", "CLIENT_ERROR bad command line format\r\n"},
      {"set a 0 0 1 noreply\r\na\r\n", ""},
      {"get a " + std::string(251, 'k') + " a\r\n", "CLIENT_ERROR bad command line format\r\n"},
      {"add a 0 0 1 noreply\r\nb\r\n", ""},
      {"delete a noreply\r\n", ""},
      {"delete a 0 noreply\r\n", ""},
      {"incr a 1 noreply\r\n", ""},
      {"touch a 1 noreply\r\n", ""},
      {"set a x 0 1 noreply\r\n", ""},  // the error is quiet too
      {"set a 0 0 3\r\nabcde\r\n", "CLIENT_ERROR bad data chunk\r\nERROR\r\n"},
      {"set a 0 0 3 noreply\r\nabcde\r\n", "ERROR\r\n"},
      {"set a 0 0 -1\r\n", "CLIENT_ERROR bad command line format\r\n"},
      {"set k 0 0 2000000\r\n" + std::string(2000000, 'x') + "\r\n",
       "SERVER_ERROR object too large for cache\r\n"},
      {"bogus\r\n", "ERROR\r\n"},
      {"\r\n", "ERROR\r\n"},
      {"flush_all\r\n", "OK\r\n"},
      {"flush_all noreply\r\n", ""},
      {"flush_all x\r\n", "CLIENT_ERROR invalid exptime argument\r\n"},
      {"get n\r\n", "END\r\n"},
      {"version\r\n", "VERSION 1.6.18-strata-0.1.0\r\n"},
      {"verbosity 1\r\n", "OK\r\n"},
      {"verbosity 1 noreply\r\n", ""},
      {"verbosity x\r\n", "CLIENT_ERROR bad command line format\r\n"},
      {"cache_memlimit 7\r\n", "MEMLIMIT_TOO_SMALL cannot set maxbytes to less than 8m\r\n"},
      {"cache_memlimit 1000000001\r\n",
       "MEMLIMIT_ADJUST_FAILED input value is megabytes not bytes\r\n"},
      {"cache_memlimit 100\r\n", "OK\r\n"},
      {"cache_memlimit x\r\n", "ERROR\r\n"},
      {"shutdown\r\n", "ERROR: shutdown not enabled\r\n"},
      {"shutdown graceful\r\n", "ERROR: shutdown not enabled\r\n"},
      {"mn\r\n", "MN\r\n"},
      {"mg foo v\r\n", "EN\r\n"},
      {"stats reset\r\n", "RESET\r\n"},
      {"stats bogus\r\n", "ERROR\r\n"},
      {"stats detail\r\n", "CLIENT_ERROR usage: stats detail on|off|dump\r\n"},
      {"stats detail on\r\n", "OK\r\n"},
      {"stats sizes\r\n", "STAT sizes_status disabled\r\nEND\r\n"},
      {"quit\r\n", "<close>"},
  };
  for (const Exchange& e : script) {
    EXPECT_EQ(Run(e.request), e.reply) << ::testing::PrintToString(e.request.substr(0, 80));
  }
  EXPECT_EQ(tier_->limit(), 100ull << 20);
  EXPECT_EQ(ctx_.verbosity.load(), 1u);

  // The same session pipelined in one buffer gives the concatenation.
  std::string all_requests;
  std::string all_replies;
  ResetCache();  // so the CAS uniques start again from 1
  for (const Exchange& e : script) {
    all_requests += e.request;
    all_replies += e.reply;
  }
  EXPECT_EQ(Run(all_requests), all_replies);
}

// The meta commands: every reply below is what memcached 1.6.18 answered
// to the same session (CAS uniques from 1, no time passing); run one
// exchange at a time and then pipelined in one buffer.
TEST_F(DispatchTest, MetaSession) {
  struct Exchange {
    std::string request;
    std::string reply;
  };
  const std::vector<Exchange> script = {
      {"ms foo 3 T100 F5\r\nbar\r\n", "HD\r\n"},
      {"mg foo v s t f c k\r\n", "VA 3 s3 t100 f5 c1 kfoo\r\nbar\r\n"},
      {"mg foo h l\r\n", "HD h1 l0\r\n"},
      {"mg foo h\r\n", "HD h1\r\n"},
      {"mg foo u h\r\n", "HD h1\r\n"},
      {"mg missing v\r\n", "EN\r\n"},
      {"mg missing v q\r\n", ""},
      {"mg missing k Oabc\r\n", "EN kmissing Oabc\r\n"},
      {"mg Zm9v b k v\r\n", "VA 3 kfoo\r\nbar\r\n"},
      {"ms YmluYXJ5 2 b c k\r\nhi\r\n", "HD c2 kYmluYXJ5 b\r\n"},
      {"mg YmluYXJ5 b k v\r\n", "VA 2 kYmluYXJ5 b\r\nhi\r\n"},
      {"mg binary k s\r\n", "HD kYmluYXJ5 b s2\r\n"},
      {"me foo2\r\n", "EN\r\n"},
      {"ms foo 3 C999\r\nxyz\r\n", "EX\r\n"},
      {"ms foo 3 C2 c\r\nxyz\r\n", "EX c0\r\n"},
      {"ms foo 1 I C1 c\r\ns\r\n", "HD c3\r\n"},
      {"mg foo c v\r\n", "VA 1 c3\r\ns\r\n"},
      {"ms foo 2 MA\r\n!!\r\n", "HD\r\n"},
      {"mg foo v\r\n", "VA 3\r\ns!!\r\n"},
      {"ms foo 2 MP C999\r\n<<\r\n", "EX\r\n"},
      {"ms newkey 1 MR\r\nx\r\n", "NS\r\n"},
      {"ms newkey 1 ME\r\nx\r\n", "HD\r\n"},
      {"ms newkey 1 ME\r\ny\r\n", "NS\r\n"},
      {"ms newkey 1 MS q\r\nz\r\n", ""},
      {"mg newkey v\r\n", "VA 1\r\nz\r\n"},
      {"ms bad 1 MZ\r\nx\r\n", "CLIENT_ERROR invalid mode for ms M token\r\n"},
      {"ms bad 1 zz\r\nx\r\n", "CLIENT_ERROR invalid flag\r\n"},
      {"ms bad x\r\n", "CLIENT_ERROR bad command line format\r\n"},
      {"mg newkey v v\r\n", "CLIENT_ERROR duplicate flag\r\n"},
      {"mg newkey E1\r\n", "CLIENT_ERROR invalid flag\r\n"},
      {"md newkey x\r\n", "CLIENT_ERROR invalid or duplicate flag\r\n"},
      {"mg newkey O123456789012345678901234567890123\r\n",
       "CLIENT_ERROR opaque token too long\r\n"},
      {"md newkey C1\r\n", "EX\r\n"},
      {"md newkey I T30\r\n", "HD\r\n"},
      {"mg newkey v c t\r\n", "VA 1 c7 t30 X W\r\nz\r\n"},
      {"mg newkey v c t\r\n", "VA 1 c7 t30 Z X\r\nz\r\n"},
      {"ms newkey 1 T60 C8\r\nN\r\n", "EX\r\n"},
      {"mg newkey v c t\r\n", "VA 1 c7 t30 Z X\r\nz\r\n"},
      {"md newkey q\r\n", ""},
      {"md newkey\r\n", "NF\r\n"},
      {"md newkey q\r\n", "NF\r\n"},
      {"ma cnt\r\n", "NF\r\n"},
      {"ma cnt N0 J10 v\r\n", "VA 2\r\n10\r\n"},
      {"ma cnt v\r\n", "VA 2\r\n11\r\n"},
      {"ma cnt MD D3 v t\r\n", "VA 1 t-1\r\n8\r\n"},
      {"ma cnt T50 t c\r\n", "HD t50 c11\r\n"},
      {"ma cnt C1 v\r\n", "EX\r\n"},
      {"ma cnt q\r\n", ""},
      {"ma cnt q v\r\n", ""},
      {"ma cnt MX\r\n", "CLIENT_ERROR invalid mode for ma M token\r\n"},
      {"ma foo\r\n", "CLIENT_ERROR cannot increment or decrement non-numeric value\r\n"},
      {"mg lease v c N30\r\n", "VA 0 c14 W\r\n\r\n"},
      {"mg lease v c N30\r\n", "VA 0 c14 Z\r\n\r\n"},
      {"mg lease c R10\r\n", "HD c14 Z\r\n"},
      {"ms lease 2 T20\r\nok\r\n", "HD\r\n"},
      {"mg lease c R30 t\r\n", "HD c15 t20 W\r\n"},
      {"mg lease c R30\r\n", "HD c15 Z\r\n"},
      {"mn\r\n", "MN\r\n"},
  };
  ASSERT_EQ(Run("stats reset\r\n"), "RESET\r\n");
  for (const Exchange& e : script) {
    EXPECT_EQ(Run(e.request), e.reply) << ::testing::PrintToString(e.request);
  }
  // The counters memcached 1.6.18 showed after the same session.
  const std::string stats = Run("stats\r\n");
  for (const char* want : {"cmd_get 21", "cmd_set 13", "cmd_touch 0", "cmd_meta 1", "get_hits 18",
                           "get_misses 3", "touch_hits 0", "touch_misses 0", "delete_hits 1",
                           "delete_misses 3", "incr_hits 4", "incr_misses 1", "decr_hits 1",
                           "decr_misses 0", "cas_hits 1", "cas_misses 0", "cas_badval 3"}) {
    EXPECT_NE(stats.find(std::string("STAT ") + want + "\r\n"), std::string::npos) << want;
  }
  std::string all_requests;
  std::string all_replies;
  ResetCache();
  for (const Exchange& e : script) {
    all_requests += e.request;
    all_replies += e.reply;
  }
  EXPECT_EQ(Run(all_requests), all_replies);
}

// Times: `t` counts down, `l` and `me la=` count from the store and from the
// second fetch (memcached's segmented LRU bump), `me exp=` is memcached's
// current_time - exptime; T, N and R against the clock.
TEST_F(DispatchTest, MetaTimes) {
  EXPECT_EQ(Run("ms k 2 T100\r\nhi\r\n"), "HD\r\n");
  clock_.Advance(30);
  EXPECT_EQ(Run("mg k t l h\r\n"), "HD t70 l30 h0\r\n");  // first fetch: time kept
  clock_.Advance(5);
  EXPECT_EQ(Run("mg k t l h\r\n"), "HD t65 l35 h1\r\n");  // second: time set after
  EXPECT_EQ(Run("mg k l\r\n"), "HD l0\r\n");
  clock_.Advance(4);
  std::string me = Run("me k\r\n");
  EXPECT_EQ(me.rfind("ME k exp=-61 la=4 cas=1 fetch=yes cls=1 size=", 0), 0u) << me;
  EXPECT_EQ(Run("mg k T0 t\r\n"), "HD t-1\r\n");
  EXPECT_EQ(Run("mg k T-1 t\r\n").substr(0, 4), "HD t");  // expired by this very command
  EXPECT_EQ(Run("mg k\r\n"), "EN\r\n");
  // R: a win once the item has less than the recache time left.
  EXPECT_EQ(Run("ms r 1 T100\r\nx\r\n"), "HD\r\n");
  EXPECT_EQ(Run("mg r R50 t\r\n"), "HD t100\r\n");
  clock_.Advance(60);
  EXPECT_EQ(Run("mg r R50 t\r\n"), "HD t40 W\r\n");
  EXPECT_EQ(Run("mg r R50 t\r\n"), "HD t40 Z\r\n");
  // N: the vivified item takes the N time, and T after it wins.
  EXPECT_EQ(Run("mg v N30 t\r\n"), "HD t30 W\r\n");
  EXPECT_EQ(Run("mg w N30 T90 t\r\n"), "HD t90 W\r\n");
  EXPECT_EQ(Run("mg w2 t N30\r\n"), "HD t-1 W\r\n");  // t shows the time before N
  EXPECT_EQ(Run("mg w2 t\r\n"), "HD t30 Z\r\n");
  EXPECT_EQ(Run("ma m t N40 T9 J5 v\r\n"), "VA 1 t-1\r\n5\r\n");
  EXPECT_EQ(Run("mg m t v\r\n"), "VA 1 t9\r\n5\r\n");
  std::string stats = Run("stats\r\n");
  EXPECT_NE(stats.find("STAT cmd_meta 1\r\n"), std::string::npos);
}

TEST_F(DispatchTest, StatsEndWithEnd) {
  std::string general = Run("stats\r\n");
  EXPECT_EQ(general.rfind("STAT pid ", 0), 0u) << general.substr(0, 40);
  EXPECT_TRUE(general.ends_with("END\r\n"));
  EXPECT_NE(general.find("STAT version 1.6.18-strata-0.1.0\r\n"), std::string::npos);
  EXPECT_NE(general.find("STAT time 1700000000\r\n"), std::string::npos);
  std::string settings = Run("stats settings\r\n");
  EXPECT_NE(settings.find("STAT maxbytes 67108864\r\n"), std::string::npos);
  EXPECT_TRUE(settings.ends_with("END\r\n"));
  EXPECT_EQ(Run("stats items\r\n"), "END\r\n");  // no items yet
  Set("k", 0);
  EXPECT_NE(Run("stats items\r\n").find("STAT items:1:number 1\r\n"), std::string::npos);
}

TEST_F(DispatchTest, ShutdownWhenEnabled) {
  ctx_.options.enable_shutdown = true;
  int requested = 0;
  ctx_.request_shutdown = [&] { ++requested; };
  EXPECT_EQ(Run("shutdown foo\r\n"), "CLIENT_ERROR invalid shutdown mode\r\n");
  EXPECT_EQ(Run("shutdown graceful now\r\n"), "CLIENT_ERROR invalid shutdown mode\r\n");
  EXPECT_EQ(requested, 0);
  EXPECT_EQ(Run("shutdown graceful\r\n"), "<close>");
  EXPECT_EQ(Run("shutdown\r\n"), "<close>");
  EXPECT_EQ(requested, 2);
}

TEST_F(DispatchTest, HttpClosesAfterEarlierReplies) {
  EXPECT_EQ(Run("version\r\nGET / HTTP/1.1\r\nversion\r\n"),
            "VERSION 1.6.18-strata-0.1.0\r\n<close>");
}

// ------------------------------------------------------- admin commands
// The bytes memcached 1.6.18 sends for the same requests (with its 48-byte
// item header in size= and the histogram, one slab class 1 here).

TEST_F(DispatchTest, FixedRepliesHonourNoreply) {
  EXPECT_EQ(Run("slabs automove 1\r\nslabs automove 1 noreply\r\nlru tune 10 10 0.1 2\r\n"),
            "OK\r\nOK\r\n");
  EXPECT_EQ(Run("slabs reassign 1 1\r\nlru_crawler sleep 5\r\nwatch noreply\r\nwatch\r\n"),
            "SAME src and dst class are identical\r\nOK\r\n"
            "CLIENT_ERROR watch commands not allowed\r\n");
}

TEST_F(DispatchTest, StatsCachedump) {
  EXPECT_EQ(Run("stats cachedump 1 0\r\n"), "END\r\n");
  Set("plain", 0, "abc");
  Set("expiring", 100, std::string(70, 'x'));
  EXPECT_EQ(Run("stats cachedump 2 0\r\n"), "END\r\n");  // strata's items are all in class 1
  std::string all = Run("stats cachedump 1 0\r\n");
  EXPECT_TRUE(all.ends_with("END\r\n"));
  EXPECT_NE(all.find("ITEM plain [3 b; 0 s]\r\n"), std::string::npos) << all;
  EXPECT_NE(all.find("ITEM expiring [70 b; " + std::to_string(kStart + 100) + " s]\r\n"),
            std::string::npos)
      << all;
  std::string one = Run("stats cachedump 1 1\r\n");
  EXPECT_EQ(std::count(one.begin(), one.end(), '\n'), 2) << one;
  EXPECT_EQ(Run("stats cachedump 1\r\nstats cachedump 64 1\r\n"),
            "CLIENT_ERROR bad command line\r\nCLIENT_ERROR Illegal slab id\r\n");
}

TEST_F(DispatchTest, StatsCachedumpStopsAtTwoMegabytes) {
  // 20,000 keys of 200 bytes: about 4.3 MB of ITEM lines without the cap.
  for (int i = 0; i < 20000; ++i) {
    std::string key = std::to_string(i) + std::string(200, 'k');
    ASSERT_EQ(Set(key, 0), "STORED\r\n");
  }
  std::string dump = Run("stats cachedump 1 0\r\n");
  EXPECT_TRUE(dump.ends_with("END\r\n"));
  EXPECT_LE(dump.size(), 2u * 1024 * 1024 - 1);
  EXPECT_GT(dump.size(), 2u * 1024 * 1024 - 300);
}

TEST_F(DispatchTest, Metadump) {
  EXPECT_EQ(Run("lru_crawler metadump all\r\n"), "END\r\n");
  Set("foo", 0, "bar");
  // cas=1: the first store of a fresh tier; la= is the time of the dump.
  const std::string line =
      "key=foo exp=-1 la=" + std::to_string(kStart) + " cas=1 fetch=no cls=1 size=65\n";
  EXPECT_EQ(Run("lru_crawler metadump all\r\n"), line + "END\r\n");
  EXPECT_EQ(Run("lru_crawler metadump hash\r\n"), line + "END\r\n");
  EXPECT_EQ(Run("lru_crawler metadump 1,2\r\n"), line + "END\r\n");
  EXPECT_EQ(Run("lru_crawler metadump 2\r\n"), "END\r\n");
  EXPECT_EQ(Run("lru_crawler metadump 0\r\n"), "BADCLASS invalid class id\r\n");
  // Keys are URI-encoded; fetch= follows gets; flags add 4 bytes to size=.
  Run("set a%b:c 5 100 2\r\nxy\r\nget a%b:c\r\n");
  std::string dump = Run("lru_crawler metadump all\r\n");
  EXPECT_NE(dump.find("key=a%25b%3Ac exp=" + std::to_string(kStart + 100) +
                      " la=" + std::to_string(kStart) + " cas=2 fetch=yes cls=1 size=70\n"),
            std::string::npos)
      << dump;
  // Earlier replies still queued: memcached refuses, and so does strata.
  EXPECT_EQ(Run("version\r\nlru_crawler metadump all\r\n"),
            "VERSION 1.6.18-strata-0.1.0\r\nERROR cannot pipeline other commands before "
            "metadump\r\n");
}

TEST_F(DispatchTest, MetadumpPausesAndResumesToTheSameBytes) {
  for (int i = 0; i < 3000; ++i) ASSERT_EQ(Set("key" + std::to_string(i), 0), "STORED\r\n");
  ctx_.options.output_high_watermark = uint64_t{1} << 40;
  int pauses = 0;
  std::string whole = Run("lru_crawler metadump all\r\n", true, &pauses);
  EXPECT_EQ(pauses, 0);
  EXPECT_EQ(std::count(whole.begin(), whole.end(), '\n'), 3001);
  ctx_.options.output_high_watermark = 4096;
  EXPECT_EQ(Run("lru_crawler metadump all\r\n", true, &pauses), whole);
  EXPECT_GT(pauses, 5);
}

TEST_F(DispatchTest, LruCrawlerSwitch) {
  EXPECT_EQ(Run("lru_crawler enable\r\n"), "ERROR failed to start lru crawler thread\r\n");
  EXPECT_EQ(Run("lru_crawler crawl all\r\nlru_crawler crawl 0\r\n"),
            "OK\r\nBADCLASS invalid class id\r\n");
  EXPECT_NE(Run("stats settings\r\n").find("STAT lru_crawler yes\r\n"), std::string::npos);
  EXPECT_EQ(Run("lru_crawler disable\r\nlru_crawler disable\r\n"), "OK\r\nOK\r\n");
  EXPECT_FALSE(ctx_.lru_crawler.load());
  EXPECT_NE(Run("stats settings\r\n").find("STAT lru_crawler no\r\n"), std::string::npos);
  // Disabled, the crawler refuses before it looks at the class list.
  EXPECT_EQ(Run("lru_crawler crawl 0\r\nlru_crawler metadump all\r\n"),
            "CLIENT_ERROR lru crawler disabled\r\nCLIENT_ERROR lru crawler disabled\r\n");
  EXPECT_EQ(Run("lru_crawler enable\r\nlru_crawler crawl all\r\n"), "OK\r\nOK\r\n");
}

TEST_F(DispatchTest, StatsSizes) {
  EXPECT_EQ(Run("stats sizes\r\n"), "STAT sizes_status disabled\r\nEND\r\n");
  Set("before", 0, "x");
  // memcached sends no END after these two.
  EXPECT_EQ(Run("stats sizes_enable\r\n"), "STAT sizes_status enabled\r\n");
  EXPECT_NE(Run("stats settings\r\n").find("STAT track_sizes yes\r\n"), std::string::npos);
  // Only items stored since: 48 + 3 + 1 + 5 + 8 = 65 bytes is the 96 bucket.
  Set("foo", 0, "bar");
  Set("big", 0, std::string(1000, 'b'));  // 48 + 3 + 1 + 1002 + 8 = 1062: 1088
  EXPECT_EQ(Run("stats sizes\r\n"), "STAT 96 1\r\nSTAT 1088 1\r\nEND\r\n");
  EXPECT_EQ(Run("stats sizes_enable\r\n"), "STAT sizes_status enabled\r\n");
  EXPECT_EQ(Run("stats sizes_disable\r\n"), "STAT sizes_status disabled\r\n");
  EXPECT_EQ(Run("stats sizes\r\n"), "STAT sizes_status disabled\r\nEND\r\n");
}

TEST_F(DispatchTest, StatsDetail) {
  EXPECT_EQ(Run("stats detail dump\r\n"), "END\r\n");
  EXPECT_EQ(Run("stats detail\r\nstats detail x\r\n"),
            "CLIENT_ERROR usage: stats detail on|off|dump\r\n"
            "CLIENT_ERROR usage: stats detail on|off|dump\r\n");
  Run("set foo:1 0 0 1\r\nx\r\n");  // not counted: detail is off
  EXPECT_EQ(Run("stats detail on\r\n"), "OK\r\n");
  EXPECT_NE(Run("stats settings\r\n").find("STAT detail_enabled yes\r\n"), std::string::npos);
  // Gets (hit or not, gat too), stores (failed ones too) and deletes count;
  // keys without a ':' do not.
  Run("set foo:123 0 0 6\r\nfooval\r\nget foo:123 foo:124 nocolon\r\ndelete foo:125\r\n"
      "gat 0 foo:123\r\nadd foo:123 0 0 1\r\nx\r\nincr foo:9 1\r\ntouch foo:123 0\r\n"
      "set user:1 0 0 1\r\nx\r\n");
  // memcached's order: bucket murmur3("user") % 256 = 13 before foo's 32.
  EXPECT_EQ(Run("stats detail dump\r\n"),
            "PREFIX user get 0 hit 0 set 1 del 0\r\n"
            "PREFIX foo get 3 hit 2 set 2 del 1\r\nEND\r\n");
  EXPECT_EQ(Run("stats reset\r\nstats detail dump\r\n"), "RESET\r\nEND\r\n");
  EXPECT_EQ(Run("stats detail off\r\nget foo:123\r\nstats detail dump\r\n"),
            "OK\r\nVALUE foo:123 0 6\r\nfooval\r\nEND\r\nEND\r\n");
}

TEST(PrefixStatsTest, MurmurMatchesMemcached) {
  // Values from memcached 1.6.18's murmur3_hash.c.
  EXPECT_EQ(PrefixStats::Murmur3(""), 0u);
  EXPECT_EQ(PrefixStats::Murmur3("a"), 1009084850u);
  EXPECT_EQ(PrefixStats::Murmur3("ab"), 2613040991u);
  EXPECT_EQ(PrefixStats::Murmur3("abc"), 3017643002u);
  EXPECT_EQ(PrefixStats::Murmur3("abcd"), 1139631978u);
  EXPECT_EQ(PrefixStats::Murmur3("abcde"), 3902511862u);
  EXPECT_EQ(PrefixStats::Murmur3("session"), 3104698976u);
}

TEST(PrefixStatsTest, MatchesAsMemcachedDoes) {
  PrefixStats p;
  p.RecordSet("a:1");  // off: nothing
  EXPECT_EQ(p.Dump(), "END\r\n");
  p.SetEnabled(true);
  p.RecordSet("ab:1");
  // memcached's strncmp(prefix, key, length) also matches an entry that
  // only starts with the key's prefix, when both land in one bucket; "ab"
  // and "a" do not, so they are two prefixes.
  p.RecordGet("a:1", true);
  p.RecordDelete("ab:2");
  EXPECT_EQ(p.Dump(),
            "PREFIX ab get 0 hit 0 set 1 del 1\r\nPREFIX a get 1 hit 1 set 0 del 0\r\n"
            "END\r\n");
  // An empty prefix is one too (memcached would count it under any prefix
  // already in its bucket, 0: strncmp of 0 bytes).
  p.RecordGet(":x", false);
  EXPECT_NE(p.Dump().find("PREFIX  get 1 hit 0"), std::string::npos);
  p.Clear();
  EXPECT_EQ(p.Dump(), "END\r\n");
}

TEST(PrefixStatsTest, KeepsAtMostMaxPrefixes) {
  PrefixStats p;
  p.SetEnabled(true);
  for (size_t i = 0; i < PrefixStats::kMaxPrefixes + 50; ++i) p.RecordSet(std::to_string(i) + ":k");
  std::string dump = p.Dump();
  EXPECT_EQ(static_cast<size_t>(std::count(dump.begin(), dump.end(), '\n')),
            PrefixStats::kMaxPrefixes + 1);
}

// ----------------------------------------------------- paused multi-gets

class PausedGetTest : public DispatchTest {
 protected:
  // 300 keys with values of mixed sizes (copied and referenced), and a
  // request for all of them plus misses, repeated keys and a trailing space.
  std::string Populate() {
    std::string request = "get";
    for (int i = 0; i < 300; ++i) {
      std::string key = "key" + std::to_string(i);
      size_t len = (i % 7 == 0) ? 20000 : (i % 3 == 0 ? 4095 : 100 + i);
      std::string value(len, static_cast<char>('a' + i % 26));
      EXPECT_EQ(Set(key, 0, value), "STORED\r\n");
      request += " " + key;
      if (i % 50 == 0) request += " nosuchkey" + std::to_string(i) + " " + key;
    }
    return request + " \r\n";
  }
};

TEST_F(PausedGetTest, ResumesToTheSameBytes) {
  std::string request = Populate();
  for (const char* name : {"get", "gets", "gat 0", "gats 0"}) {
    std::string req = std::string(name) + request.substr(3);
    ctx_.options.output_high_watermark = uint64_t{1} << 40;
    int pauses = 0;
    std::string unpaused = Run(req, true, &pauses);
    EXPECT_EQ(pauses, 0);
    ASSERT_TRUE(unpaused.ends_with("END\r\n"));
    ASSERT_NE(unpaused.find("VALUE key299 "), std::string::npos);

    for (uint64_t watermark : {uint64_t{1}, uint64_t{5000}, uint64_t{64} << 10}) {
      ctx_.options.output_high_watermark = watermark;
      pauses = 0;
      EXPECT_EQ(Run(req, true, &pauses), unpaused) << name << " watermark " << watermark;
      EXPECT_GT(pauses, 0) << name << " watermark " << watermark;
      // A client that does not read: every call still makes progress.
      pauses = 0;
      EXPECT_EQ(Run(req, false, &pauses), unpaused) << name << " watermark " << watermark;
      EXPECT_GT(pauses, 0);
    }
  }
}

TEST_F(PausedGetTest, PausesOnlyWhenKeysRemain) {
  ASSERT_EQ(Set("only", 0, std::string(10000, 'z')), "STORED\r\n");
  ctx_.options.output_high_watermark = 1;
  int pauses = 0;
  // The watermark is passed on the last key: no pause, END follows.
  EXPECT_EQ(Run("get only\r\n", true, &pauses),
            "VALUE only 0 10000\r\n" + std::string(10000, 'z') + "\r\nEND\r\n");
  EXPECT_EQ(pauses, 0);
  // Trailing spaces are not keys.
  EXPECT_EQ(Run("get only    \r\n", true, &pauses),
            "VALUE only 0 10000\r\n" + std::string(10000, 'z') + "\r\nEND\r\n");
  EXPECT_EQ(pauses, 0);
  Run("get only only\r\n", true, &pauses);
  EXPECT_EQ(pauses, 1);
}

TEST_F(PausedGetTest, ExecuteReturnsPausedAndContinueGetFinishes) {
  std::string request = Populate();
  ctx_.options.output_high_watermark = 10000;
  Command cmd;
  ParseResult r = ParseCommand(request, &cmd);
  ASSERT_EQ(r.status, ParseStatus::kCommand);
  OutputQueue out;
  PendingStore store;
  ASSERT_EQ(dispatcher_->Execute(cmd, out, &store), Outcome::kPaused);
  EXPECT_GT(out.bytes(), 10000u);
  std::string bytes = TakeOutput(out);
  int calls = 0;
  Outcome o;
  while ((o = dispatcher_->ContinueGet(cmd, out)) == Outcome::kPaused) {
    bytes += TakeOutput(out);
    ++calls;
  }
  EXPECT_EQ(o, Outcome::kDone);
  bytes += TakeOutput(out);
  EXPECT_GT(calls, 10);
  ctx_.options.output_high_watermark = uint64_t{1} << 40;
  EXPECT_EQ(bytes, Run(request));
  EXPECT_GT(stats_.Get(Counter::kConnYields), 0u);
}

// The connection memory cap (IoWaiter::MemoryFull) pauses a multi-get
// between keys as the watermark does, and the resumed get yields the same
// bytes; the waiter is asked after each key queued.
struct CapWaiter final : IoWaiter {
  int calls = 0;
  int full_every = 0;  // full on every n-th question (0: never)
  void OnIoDone() override {}
  bool MemoryFull(const AsyncState&) override {
    ++calls;
    return full_every > 0 && calls % full_every == 0;
  }
};

TEST_F(PausedGetTest, TheMemoryCapPausesBetweenKeysAndResumesToTheSameBytes) {
  std::string request = Populate();
  ctx_.options.output_high_watermark = uint64_t{1} << 40;
  const std::string unpaused = Run(request);
  Command cmd;
  ASSERT_EQ(ParseCommand(request, &cmd).status, ParseStatus::kCommand);
  CapWaiter waiter;
  waiter.full_every = 7;
  AsyncState async;
  async.waiter = &waiter;  // no SSD tier: async.io stays null
  OutputQueue out;
  PendingStore store;
  const uint64_t yields = stats_.Get(Counter::kConnYields);
  ASSERT_EQ(dispatcher_->Execute(cmd, out, &store, &async), Outcome::kPaused);
  EXPECT_EQ(waiter.calls, 7);  // asked once per key, paused at the 7th
  std::string bytes = TakeOutput(out);
  int pauses = 1;
  Outcome o;
  while ((o = dispatcher_->ContinueGet(cmd, out, &async)) == Outcome::kPaused) {
    bytes += TakeOutput(out);
    ++pauses;
  }
  EXPECT_EQ(o, Outcome::kDone);
  bytes += TakeOutput(out);
  EXPECT_EQ(bytes, unpaused);
  EXPECT_GE(pauses, 300 / 7);
  EXPECT_EQ(stats_.Get(Counter::kConnYields) - yields, static_cast<uint64_t>(pauses));
  // Never full: no pause at all.
  waiter.full_every = 0;
  ASSERT_EQ(ParseCommand(request, &cmd).status, ParseStatus::kCommand);
  EXPECT_EQ(dispatcher_->Execute(cmd, out, &store, &async), Outcome::kDone);
  EXPECT_EQ(TakeOutput(out), unpaused);
}

// ---------------------------------------------------------------- exptime

TEST_F(DispatchTest, AbsoluteExptime) {
  const int64_t now = clock_.NowSeconds();
  EXPECT_EQ(dispatcher_->AbsoluteExptime(0), 0u);  // never
  EXPECT_EQ(dispatcher_->AbsoluteExptime(1), now + 1);
  EXPECT_EQ(dispatcher_->AbsoluteExptime(kThirtyDays), now + kThirtyDays);  // relative
  EXPECT_EQ(dispatcher_->AbsoluteExptime(kThirtyDays + 1), 1u);  // absolute, 1970: expired
  EXPECT_EQ(dispatcher_->AbsoluteExptime(static_cast<int32_t>(now + 50)), now + 50);
  EXPECT_EQ(dispatcher_->AbsoluteExptime(static_cast<int32_t>(now)), 1u);  // absolute now
  EXPECT_EQ(dispatcher_->AbsoluteExptime(static_cast<int32_t>(now - 1)), 1u);
  EXPECT_EQ(dispatcher_->AbsoluteExptime(-1), 1u);  // negative: expired
  EXPECT_EQ(dispatcher_->AbsoluteExptime(INT32_MIN), 1u);
  EXPECT_EQ(dispatcher_->AbsoluteExptime(INT32_MAX), static_cast<uint32_t>(INT32_MAX));
}

TEST_F(DispatchTest, ExptimeZeroNeverExpires) {
  ASSERT_EQ(Set("k", 0), "STORED\r\n");
  clock_.Advance(10 * kThirtyDays);
  EXPECT_TRUE(Hit("k"));
}

TEST_F(DispatchTest, NegativeExptimeIsExpired) {
  ASSERT_EQ(Set("k", -1), "STORED\r\n");
  EXPECT_FALSE(Hit("k"));
  ASSERT_EQ(Set("k", 0), "STORED\r\n");
  ASSERT_EQ(Set("k", -100), "STORED\r\n");  // replaces the live value
  EXPECT_FALSE(Hit("k"));
}

TEST_F(DispatchTest, RelativeExptime) {
  for (int64_t ttl : {int64_t{1}, int64_t{100}, kThirtyDays}) {
    std::string key = "k" + std::to_string(ttl);
    ASSERT_EQ(Set(key, ttl), "STORED\r\n");
    clock_.Advance(ttl - 1);
    EXPECT_TRUE(Hit(key)) << ttl;
    clock_.Advance(1);
    EXPECT_FALSE(Hit(key)) << ttl;
  }
}

TEST_F(DispatchTest, AbsoluteExptimes) {
  const int64_t now = clock_.NowSeconds();
  ASSERT_EQ(Set("future", now + 50), "STORED\r\n");
  ASSERT_EQ(Set("past", now - 1), "STORED\r\n");
  ASSERT_EQ(Set("now", now), "STORED\r\n");
  ASSERT_EQ(Set("just_over_30_days", kThirtyDays + 1), "STORED\r\n");  // 1970
  EXPECT_TRUE(Hit("future"));
  EXPECT_FALSE(Hit("past"));
  EXPECT_FALSE(Hit("now"));
  EXPECT_FALSE(Hit("just_over_30_days"));
  clock_.Advance(49);
  EXPECT_TRUE(Hit("future"));
  clock_.Advance(1);
  EXPECT_FALSE(Hit("future"));
}

TEST_F(DispatchTest, TouchAndGatChangeExptime) {
  ASSERT_EQ(Set("t", 10), "STORED\r\n");
  ASSERT_EQ(Set("g", 10), "STORED\r\n");
  EXPECT_EQ(Run("touch t 100\r\n"), "TOUCHED\r\n");
  EXPECT_EQ(Run("gat 0 g\r\n"), "VALUE g 0 1\r\nv\r\nEND\r\n");
  clock_.Advance(50);
  EXPECT_TRUE(Hit("t"));
  EXPECT_TRUE(Hit("g"));
  EXPECT_EQ(Run("touch t -1\r\n"), "TOUCHED\r\n");
  EXPECT_FALSE(Hit("t"));
  EXPECT_EQ(Run("gat -1 g\r\n"), "VALUE g 0 1\r\nv\r\nEND\r\n");  // returned, then gone
  EXPECT_FALSE(Hit("g"));
  EXPECT_EQ(Run("touch g 10\r\n"), "NOT_FOUND\r\n");
}

// -------------------------------------------------------------- flush_all

TEST_F(DispatchTest, ImmediateFlushLetsLaterStoresInTheSameSecondSurvive) {
  ASSERT_EQ(Set("before", 0), "STORED\r\n");
  clock_.Advance(5);
  ASSERT_EQ(Set("same_second_before", 0), "STORED\r\n");
  EXPECT_EQ(Run("flush_all\r\n"), "OK\r\n");
  EXPECT_FALSE(Hit("before"));
  EXPECT_FALSE(Hit("same_second_before"));
  ASSERT_EQ(Set("same_second_after", 0), "STORED\r\n");
  EXPECT_TRUE(Hit("same_second_after"));
  clock_.Advance(1);
  EXPECT_TRUE(Hit("same_second_after"));
  ASSERT_EQ(Set("later", 0), "STORED\r\n");
  EXPECT_TRUE(Hit("later"));
}

TEST_F(DispatchTest, FlushAllZeroOrNegativeIsImmediate) {
  for (const char* cmd : {"flush_all 0\r\n", "flush_all -5\r\n", "flush_all 0 noreply\r\n"}) {
    ASSERT_EQ(Set("k", 0), "STORED\r\n");
    clock_.Advance(1);
    std::string reply = Run(cmd);
    EXPECT_EQ(reply, std::string_view(cmd).ends_with("noreply\r\n") ? "" : "OK\r\n");
    EXPECT_FALSE(Hit("k")) << cmd;
    ASSERT_EQ(Set("k2", 0), "STORED\r\n");
    EXPECT_TRUE(Hit("k2")) << cmd;
  }
}

TEST_F(DispatchTest, DelayedFlush) {
  const int64_t t = clock_.NowSeconds();
  ASSERT_EQ(Set("a", 0), "STORED\r\n");
  EXPECT_EQ(Run("flush_all 10\r\n"), "OK\r\n");
  // Nothing vanishes before second t+9.
  EXPECT_TRUE(Hit("a"));
  clock_.Set(t + 8);
  ASSERT_EQ(Set("b", 0), "STORED\r\n");  // stored at t+8
  EXPECT_TRUE(Hit("a"));
  EXPECT_TRUE(Hit("b"));
  // At t+9 (= now + delay - 1) everything stored at or before it is gone,
  // including stores made during that second.
  clock_.Set(t + 9);
  EXPECT_FALSE(Hit("a"));
  EXPECT_FALSE(Hit("b"));
  ASSERT_EQ(Set("c", 0), "STORED\r\n");  // stored during t+9
  EXPECT_FALSE(Hit("c"));
  // From t+10 stores survive.
  clock_.Set(t + 10);
  ASSERT_EQ(Set("d", 0), "STORED\r\n");
  EXPECT_TRUE(Hit("d"));
  clock_.Advance(100);
  EXPECT_TRUE(Hit("d"));
}

TEST_F(DispatchTest, DelayedFlushNotObservedUntilItsSecond) {
  // The flush is due at t+9 even if nobody touches the cache until later.
  const int64_t t = clock_.NowSeconds();
  ASSERT_EQ(Set("a", 0), "STORED\r\n");
  EXPECT_EQ(Run("flush_all 10 noreply\r\n"), "");
  clock_.Set(t + 20);
  EXPECT_FALSE(Hit("a"));
  ASSERT_EQ(Set("b", 0), "STORED\r\n");
  EXPECT_TRUE(Hit("b"));
}

TEST_F(DispatchTest, DelayedFlushAtAnAbsoluteTime) {
  const int64_t t = clock_.NowSeconds();
  ASSERT_EQ(Set("a", 0), "STORED\r\n");
  EXPECT_EQ(Run("flush_all " + std::to_string(t + 5) + "\r\n"), "OK\r\n");
  clock_.Set(t + 3);
  EXPECT_TRUE(Hit("a"));
  clock_.Set(t + 4);
  EXPECT_FALSE(Hit("a"));
  clock_.Set(t + 5);
  ASSERT_EQ(Set("b", 0), "STORED\r\n");
  EXPECT_TRUE(Hit("b"));
}

TEST_F(DispatchTest, AbsoluteFlushTimeInThePast) {
  // memcached: realtime() of an absolute time at or before process_started
  // (start - 62 s) is 1, so oldest_live is 0: nothing is flushed and a
  // pending delayed flush is cancelled.
  const int64_t t = clock_.NowSeconds();
  ASSERT_EQ(Set("a", 0), "STORED\r\n");
  EXPECT_EQ(Run("flush_all 10\r\n"), "OK\r\n");
  EXPECT_EQ(Run("flush_all " + std::to_string(kStart - 62) + "\r\n"), "OK\r\n");
  EXPECT_TRUE(Hit("a"));
  clock_.Set(t + 20);
  EXPECT_TRUE(Hit("a"));
  // After process_started but in the past: an immediate flush.
  EXPECT_EQ(Run("flush_all " + std::to_string(kStart - 61) + "\r\n"), "OK\r\n");
  EXPECT_FALSE(Hit("a"));
  ASSERT_EQ(Set("b", 0), "STORED\r\n");
  EXPECT_TRUE(Hit("b"));
}

TEST_F(DispatchTest, DelayOfOneFlushesTheCurrentSecond) {
  // flush_all 1: oldest_live = now + 1 - 1 = now, so even stores later in
  // this second are invisible (unlike an immediate flush_all).
  ASSERT_EQ(Set("a", 0), "STORED\r\n");
  EXPECT_EQ(Run("flush_all 1\r\n"), "OK\r\n");
  EXPECT_FALSE(Hit("a"));
  ASSERT_EQ(Set("b", 0), "STORED\r\n");
  EXPECT_FALSE(Hit("b"));
  clock_.Advance(1);
  ASSERT_EQ(Set("c", 0), "STORED\r\n");
  EXPECT_TRUE(Hit("c"));
}

// ----------------------------------------------------------- counters

TEST_F(DispatchTest, Counters) {
  Set("k", 0);
  Run("get k nope\r\n");
  Run("touch k 1\r\ntouch nope 1\r\n");
  Run("delete nope\r\n");
  Run("incr nope 1\r\ndecr nope 1\r\n");
  Run("cas nope 0 0 1 5\r\nx\r\n");
  Run("flush_all\r\n");
  EXPECT_EQ(stats_.Get(Counter::kCmdSet), 2u);
  EXPECT_EQ(stats_.Get(Counter::kCmdGet), 2u);
  EXPECT_EQ(stats_.Get(Counter::kGetHits), 1u);
  EXPECT_EQ(stats_.Get(Counter::kGetMisses), 1u);
  EXPECT_EQ(stats_.Get(Counter::kCmdTouch), 2u);
  EXPECT_EQ(stats_.Get(Counter::kTouchHits), 1u);
  EXPECT_EQ(stats_.Get(Counter::kTouchMisses), 1u);
  EXPECT_EQ(stats_.Get(Counter::kDeleteMisses), 1u);
  EXPECT_EQ(stats_.Get(Counter::kIncrMisses), 1u);
  EXPECT_EQ(stats_.Get(Counter::kDecrMisses), 1u);
  EXPECT_EQ(stats_.Get(Counter::kCasMisses), 1u);
  EXPECT_EQ(stats_.Get(Counter::kCmdFlush), 1u);
}

}  // namespace
}  // namespace strata::proxy
