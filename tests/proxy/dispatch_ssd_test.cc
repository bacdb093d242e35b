// Tests of the Dispatcher's SSD path: a TieredCache over a RAM tier and an
// SsdLog on the in-memory device, driven without sockets the way
// proxy/net/connection.cc drives it: Execute(), CompleteStore() and
// ContinueGet() with the connection's AsyncState; on kWaitIo the worker's
// I/O queue is drained (completions run here, on the test's thread), the
// waiter must have been told exactly once, and Resume() continues.
//
// Keys reach the SSD deterministically: Evict() takes a key out of RAM and
// hands it to the tiered cache as RAM's eviction does, which leaves its
// record in the open region's buffer (a read of it completes at once);
// Seal() then fills that region with filler records and writes the log, so
// the records appended before it are read from the device (the command
// waits).
//
// Expected replies are memcached 1.6.18's. The SSD is invisible to clients,
// so each request stream below without its evictions is what memcached
// answers: dispatch_ssd_replies.py (beside this file) sends the streams to a
// fresh `memcached -p PORT -U 0 -l 127.0.0.1` (CAS uniques then count from
// 1, as in a fresh cache here) and compares the replies byte for byte; run
// it after changing an expected reply. Device faults and the bounded retry
// have no memcached counterpart: there the rule is strata's own (a miss,
// counted, never a wrong value).

#include <gtest/gtest.h>
#include <sys/uio.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstring>
#include <functional>
#include <initializer_list>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "common/hash.h"
#include "proxy/exec/dispatch.h"
#include "proxy/protocol/output_queue.h"
#include "proxy/protocol/protocol.h"
#include "proxy/shared/server_context.h"
#include "proxy/shared/worker_stats.h"
#include "tests/support/fake_clock.h"
#include "tests/support/memory_device.h"
#include "tiers/policy/hotness.h"
#include "tiers/ssd/ssd_log.h"
#include "tiers/tiered_cache.h"

namespace strata::proxy {
namespace {

constexpr int64_t kStart = 1'700'000'000;

// The connection's part of IoWaiter: counts the times it is told, and
// may say the connection memory cap is reached.
struct RecordingWaiter final : IoWaiter {
  int done = 0;
  int full_every = 0;  // MemoryFull() on every n-th question (0: never)
  int asked = 0;
  void OnIoDone() override { ++done; }
  bool MemoryFull(const AsyncState&) override {
    ++asked;
    return full_every > 0 && asked % full_every == 0;
  }
};

// One client connection: its reply queue and its AsyncState.
struct Conn {
  Conn() { async.waiter = &waiter; }
  OutputQueue out;
  RecordingWaiter waiter;
  AsyncState async;
  int waits = 0;  // kWaitIo outcomes so far
};

// What the worker hands Dispatcher::ReadAhead().
struct ReadAheadDone final : tiers::SsdReadDone {
  int calls = 0;
  tiers::ItemRef item;
  void OnSsdRead(tiers::ItemRef i) override {
    item = std::move(i);
    ++calls;
  }
};

// Bytes LZ4 cannot shrink, from a seed.
std::string Incompressible(size_t len, uint64_t seed) {
  std::string v(len, '\0');
  uint64_t x = 0x9e3779b97f4a7c15ull * (seed + 1);
  for (char& c : v) {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    c = static_cast<char>(x);
  }
  return v;
}

class SsdDispatchTest : public ::testing::Test {
 protected:
  SsdDispatchTest() : clock_(kStart), device_(16u << 20) {
    tiers::SsdLogOptions options;
    options.region_size = 1u << 20;
    options.write_chunk = 64 * 1024;
    log_ = std::make_unique<tiers::SsdLog>(options, device_, clock_);
    EXPECT_TRUE(log_->Recover().ok());
    tiers::RamTierOptions ram;
    ram.size_bytes = 8u << 20;  // nothing leaves RAM but what Evict() takes
    ram.shards = 4;
    tiers::AdmissionOptions admission;
    admission.kind = tiers::AdmissionKind::kAll;  // promote_threshold stays 3
    cache_ = std::make_unique<tiers::TieredCache>(ram, clock_, log_.get(), admission);
    ctx_.clock = &clock_;
    ctx_.started_unix = kStart;
    ctx_.worker_stats = {&stats_};
    ctx_.tier = &cache_->ram();
    ctx_.cache = cache_.get();
    ctx_.ssd_device = &device_;
    dispatcher_ = std::make_unique<Dispatcher>(ctx_, stats_);
    io_ = device_.NewQueue(64);
    conn_.async.io = io_.get();
    other_.async.io = io_.get();
    listener_ = log_->AddCommitListener([this] {
      std::lock_guard lock(commit_mu_);
      ++commits_heard_;
      commit_cv_.notify_all();
    });
  }

  ~SsdDispatchTest() override {
    EXPECT_EQ(io_->in_flight(), 0u);
    log_->RemoveCommitListener(listener_);
  }

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

  // Runs the worker's I/O queue until nothing is in flight (a completion may
  // queue another read: a promotion that re-reads a moved record).
  void Drain() {
    for (int rounds = 0; io_->in_flight() > 0; ++rounds) {
      ASSERT_LT(rounds, 100) << "reads never finish";
      io_->Submit();
      io_->Reap();
    }
  }

  // Called at each kWaitIo of a Run(), with the wait's number on its
  // connection, before the queue is drained: another connection's command,
  // an eviction, a fault.
  using AtWait = std::function<void(int wait)>;

  // Runs the request bytes `in` on `c` to the end and returns the reply
  // bytes, as the connection would send them.
  std::string Run(Conn& c, std::string_view in, const AtWait& at_wait = nullptr) {
    size_t off = 0;
    while (off < in.size()) {
      Command cmd;
      ParseResult r = ParseCommand(in.substr(off), &cmd);
      if (r.status != ParseStatus::kCommand) {
        ADD_FAILURE() << "no command at " << off;
        break;
      }
      off += r.consumed;
      PendingStore store;
      Outcome o = dispatcher_->Execute(cmd, c.out, &store, &c.async);
      if (o == Outcome::kReadData) {
        EXPECT_LE(store.remaining, in.size() - off) << "data block cut short";
        size_t n = static_cast<size_t>(std::min<uint64_t>(store.remaining, in.size() - off));
        o = Outcome::kDone;
        if (store.item) {
          std::memcpy(store.item->MutableValue(), in.data() + off, n);
          const char* end = store.item->Value() + store.item->value_len;
          o = dispatcher_->CompleteStore(store, end[0] == '\r' && end[1] == '\n', c.out, &c.async);
        }
        off += n;
      }
      for (;;) {
        if (o == Outcome::kPaused) {
          o = dispatcher_->ContinueGet(cmd, c.out, &c.async);
          continue;
        }
        if (o != Outcome::kWaitIo) break;
        ++c.waits;
        EXPECT_GT(c.async.pending, 0u);
        EXPECT_EQ(c.waiter.done, 0) << "told before the reads were done";
        if (at_wait) at_wait(c.waits);
        Drain();
        EXPECT_EQ(c.waiter.done, 1) << "not told once when the reads were done";
        c.waiter.done = 0;
        o = dispatcher_->Resume(cmd, c.out, &store, &c.async);
      }
      EXPECT_EQ(o, Outcome::kDone);
      EXPECT_EQ(c.async.pending, 0u);
    }
    return TakeOutput(c.out);
  }
  std::string Run(std::string_view in, const AtWait& at_wait = nullptr) {
    return Run(conn_, in, at_wait);
  }

  // Takes `key` out of RAM as an eviction does: the tiered cache appends it
  // to the open region (or, for a promoted item whose record is still
  // valid, keeps that record).
  void Evict(const std::string& key) {
    ASSERT_TRUE(cache_->ram().Evict(key)) << key;
    ASSERT_TRUE(cache_->NeedsPromotion(key)) << key;
  }

  // Fills the open region with 1.1 MiB of filler records, so the log moves
  // on to the next one, and writes everything: the records appended before
  // are then read from the device.
  void Seal() {
    constexpr uint32_t kFillerBytes = 16 << 10;
    for (int i = 0; i < 70; ++i) {
      std::string key = "~filler" + std::to_string(fillers_++);
      std::string value = Incompressible(kFillerBytes, 1000 + fillers_);
      tiers::ItemRef item = tiers::ItemRef::Adopt(tiers::Item::Create(key, 0, 0, kFillerBytes));
      std::memcpy(item->MutableValue(), value.data(), value.size());
      ASSERT_TRUE(log_->Append(*item, common::HashKey(key)));
    }
    log_->Sync();
  }

  // Evicts `keys` and seals: reading any of them waits for the device.
  void ToDevice(std::initializer_list<std::string> keys) {
    for (const std::string& key : keys) Evict(key);
    Seal();
  }

  // Checks that the commands run since the device had `written_before`
  // bytes left a ticket to wait for. It may be 0 only if the log's writer
  // wrote meanwhile: its tail write (after 100 ms without a full chunk) can
  // make an invalidation durable before the dispatcher takes its ticket.
  void ExpectTicket(uint64_t written_before, const std::string& what) {
    if (conn_.async.ack_ticket == 0) {
      EXPECT_NE(device_.bytes_written(), written_before) << "no ticket: " << what;
    }
  }

  // Asks the log to commit up to `ticket` and waits for the listener.
  void Commit(uint64_t ticket) {
    log_->RequestCommit(ticket, listener_);
    std::unique_lock lock(commit_mu_);
    EXPECT_TRUE(
        commit_cv_.wait_for(lock, std::chrono::seconds(30), [&] { return log_->Durable(ticket); }));
  }

  // Where on the device `bytes` are (a value stored uncompressed).
  uint64_t FindOnDevice(std::string_view bytes) {
    std::string medium(device_.size(), '\0');
    device_.Peek(0, medium.data(), medium.size());
    size_t at = medium.find(bytes);
    EXPECT_NE(at, std::string::npos);
    EXPECT_EQ(medium.find(bytes, at + 1), std::string::npos);
    return at;
  }

  uint64_t Stat(Counter c) const { return stats_.Get(c); }

  // A reply short enough to print, or its size.
  static std::string Brief(const std::string& reply) {
    return reply.size() <= 200 ? reply : "<" + std::to_string(reply.size()) + " bytes>";
  }

  common::FakeClock clock_;
  tiers::MemoryDevice device_;
  std::unique_ptr<tiers::SsdLog> log_;
  std::unique_ptr<tiers::TieredCache> cache_;
  WorkerStats stats_;
  ServerContext ctx_;
  std::unique_ptr<Dispatcher> dispatcher_;
  std::unique_ptr<tiers::IoQueue> io_;  // the worker's queue
  Conn conn_;
  Conn other_;  // another connection of the same worker
  int fillers_ = 0;
  int listener_ = -1;
  std::mutex commit_mu_;
  std::condition_variable commit_cv_;
  std::atomic<int> commits_heard_{0};  // the listener's calls (writer thread)
};

// ------------------------------------------------- waiting for reads

// One get over keys in RAM, on the device, in the open region's buffer and
// missing: one wait for the batch, replies in request order, and the
// counters say where each key was found.
TEST_F(SsdDispatchTest, GetWaitsForTheDeviceAndAnswersInRequestOrder) {
  ASSERT_EQ(Run("set r 1 0 3\r\nram\r\nset d 2 0 4\r\ndisk\r\nset b 3 0 6\r\nbuffer\r\n"),
            "STORED\r\nSTORED\r\nSTORED\r\n");  // CAS uniques 1, 2, 3
  ToDevice({"d"});
  Evict("b");
  EXPECT_EQ(Run("get r d missing b d\r\n"),
            "VALUE r 1 3\r\nram\r\nVALUE d 2 4\r\ndisk\r\nVALUE b 3 6\r\nbuffer\r\n"
            "VALUE d 2 4\r\ndisk\r\nEND\r\n");
  EXPECT_EQ(conn_.waits, 1);
  EXPECT_EQ(Stat(Counter::kCmdGet), 5u);
  EXPECT_EQ(Stat(Counter::kGetHits), 4u);
  EXPECT_EQ(Stat(Counter::kGetMisses), 1u);
  EXPECT_EQ(Stat(Counter::kRamHits), 1u);
  EXPECT_EQ(Stat(Counter::kRamMisses), 4u);
  EXPECT_EQ(Stat(Counter::kSsdHits), 3u);
  EXPECT_EQ(Stat(Counter::kSsdMisses), 0u);  // `missing` is not on SSD: not asked
  // Read twice, d stayed on SSD (promote_threshold 3); the CAS uniques are
  // those of the sets.
  EXPECT_FALSE(cache_->ram().Contains("d"));
  EXPECT_EQ(Run("gets d b r\r\n"),
            "VALUE d 2 4 2\r\ndisk\r\nVALUE b 3 6 3\r\nbuffer\r\nVALUE r 1 3 1\r\nram\r\n"
            "END\r\n");
  EXPECT_EQ(conn_.waits, 2);
  // The third read promoted d: now a RAM hit, no wait.
  EXPECT_TRUE(cache_->ram().Contains("d"));
  EXPECT_EQ(Run("gets d\r\n"), "VALUE d 2 4 2\r\ndisk\r\nEND\r\n");
  EXPECT_EQ(conn_.waits, 2);
  EXPECT_EQ(Stat(Counter::kRamHits), 3u);
}

// A multi-get of more keys than a batch (64) waits once per batch that
// reads the device, and pausing at the output watermark between batches
// yields the same bytes.
TEST_F(SsdDispatchTest, MultiGetWaitsOncePerBatch) {
  std::string request = "get";
  std::string reply;
  for (int i = 0; i < 150; ++i) {
    std::string key = "k" + std::to_string(i);
    request += " " + key;
    if (i % 3 == 2) continue;  // missing
    std::string value = std::string(static_cast<size_t>(10 + i), static_cast<char>('a' + i % 26));
    ASSERT_EQ(Run("set " + key + " " + std::to_string(i) + " 0 " + std::to_string(value.size()) +
                  "\r\n" + value + "\r\n"),
              "STORED\r\n");
    reply += "VALUE " + key + " " + std::to_string(i) + " " + std::to_string(value.size()) +
             "\r\n" + value + "\r\n";
  }
  request += "\r\n";
  reply += "END\r\n";
  for (int i = 0; i < 150; i += 3) Evict("k" + std::to_string(i));  // every third key
  Seal();
  EXPECT_EQ(Run(request), reply);
  EXPECT_EQ(conn_.waits, 3);  // keys 0-63, 64-127, 128-149
  ctx_.options.output_high_watermark = 1;
  const uint64_t yields = Stat(Counter::kConnYields);
  EXPECT_EQ(Run(request), reply);
  EXPECT_EQ(conn_.waits, 6);
  EXPECT_EQ(Stat(Counter::kConnYields) - yields, 2u);
  // The connection memory cap ends a batch early (asked before each key
  // but a batch's first) and pauses the get: more, shorter batches.
  ctx_.options.output_high_watermark = uint64_t{1} << 40;
  conn_.waiter.full_every = 5;
  EXPECT_EQ(Run(request), reply);
  EXPECT_GT(conn_.waits, 6 + 3);
  EXPECT_GT(conn_.waiter.asked, 150);
}

// gat/gats of keys only the SSD has: the item returns to RAM with the new
// expiry, its old record is invalidated (the reply waits for that), the
// CAS unique is kept.
TEST_F(SsdDispatchTest, GatOnTheSsdAppliesTheNewExpiry) {
  ASSERT_EQ(Run("set g 0 100 5\r\nhello\r\nset h 7 0 5\r\nworld\r\n"), "STORED\r\nSTORED\r\n");
  ToDevice({"g", "h"});
  conn_.async.ack_ticket = 0;
  const uint64_t written = device_.bytes_written();
  EXPECT_EQ(Run("gat 1000 g missing h\r\n"),
            "VALUE g 0 5\r\nhello\r\nVALUE h 7 5\r\nworld\r\nEND\r\n");
  ExpectTicket(written, "gat");
  EXPECT_EQ(conn_.waits, 1);
  EXPECT_EQ(Stat(Counter::kCmdTouch), 3u);
  EXPECT_EQ(Stat(Counter::kTouchHits), 2u);
  EXPECT_EQ(Stat(Counter::kTouchMisses), 1u);
  EXPECT_EQ(Stat(Counter::kSsdHits), 2u);
  EXPECT_TRUE(cache_->ram().Contains("g"));
  EXPECT_FALSE(log_->Contains(common::HashKey("g")));
  EXPECT_FALSE(log_->Contains(common::HashKey("h")));
  // g's old expiry (100 s) has passed, the new one has not.
  clock_.Advance(500);
  EXPECT_EQ(Run("get g\r\n"), "VALUE g 0 5\r\nhello\r\nEND\r\n");
  // Evicted again, the item is written with its new expiry.
  Evict("g");
  EXPECT_EQ(Run("gets g h\r\n"), "VALUE g 0 5 1\r\nhello\r\nVALUE h 7 5 2\r\nworld\r\nEND\r\n");
  clock_.Advance(500);  // kStart + 1000: both expire, g read from its new record
  EXPECT_EQ(Run("gets g h\r\n"), "END\r\n");
}

// Meta commands on SSD-resident keys promote first, and the meta marks
// (stale, win handed out, base64 key, fetched) come back from the device.
TEST_F(SsdDispatchTest, MetaMarksSurviveTheDevice) {
  // A lease: the win, handed out in RAM, is not handed out again after the
  // item went to the device and came back.
  EXPECT_EQ(Run("mg lease c N30\r\n"), "HD c1 W\r\n");
  ToDevice({"lease"});
  EXPECT_EQ(Run("mg lease c h\r\n"), "HD c1 h1 Z\r\n");
  EXPECT_EQ(Stat(Counter::kSsdHits), 1u);
  // Stale: md I, to the device, back: X and one W, then Z X.
  EXPECT_EQ(Run("ms s 5 T100\r\nvalue\r\n"), "HD\r\n");
  ToDevice({"s"});
  EXPECT_EQ(Run("md s I T30\r\n"), "HD\r\n");  // promoted first, then marked
  ToDevice({"s"});
  EXPECT_EQ(Run("mg s v t\r\n"), "VA 5 t30 X W\r\nvalue\r\n");
  ToDevice({"s"});
  EXPECT_EQ(Run("mg s v t h\r\n"), "VA 5 t30 h1 Z X\r\nvalue\r\n");
  // A base64 key comes back encoded; an unfetched item unfetched.
  EXPECT_EQ(Run("ms YmluYXJ5 2 b\r\nhi\r\nms plain 2\r\nho\r\n"), "HD\r\nHD\r\n");
  ToDevice({"binary", "plain"});
  EXPECT_EQ(Run("mg binary k v u\r\n"), "VA 2 kYmluYXJ5 b\r\nhi\r\n");
  EXPECT_EQ(Run("mg plain h\r\n"), "HD h0\r\n");
  // A first fetch after the trip makes the next eviction write the record
  // again (with the fetched bit): h1 after one more trip.
  ToDevice({"plain"});
  EXPECT_EQ(Run("mg plain h\r\n"), "HD h1\r\n");
  // ma and ms on a key only the device has.
  EXPECT_EQ(Run("ms n 1\r\n5\r\n"), "HD\r\n");
  ToDevice({"n"});
  EXPECT_EQ(Run("ma n v\r\n"), "VA 1\r\n6\r\n");
  ToDevice({"n"});
  EXPECT_EQ(Run("ms n 1 MA\r\n7\r\n"), "HD\r\n");
  EXPECT_EQ(Run("mg n v\r\n"), "VA 2\r\n67\r\n");
  ToDevice({"n"});
  EXPECT_EQ(Run("md n q\r\nmg n v\r\nmn\r\n"), "EN\r\nMN\r\n");
  EXPECT_FALSE(log_->Contains(common::HashKey("n")));
}

// gat -1 returns the item once, then it is gone: from RAM and from SSD.
TEST_F(SsdDispatchTest, GatThatExpiresAnSsdKeyLeavesNothingBehind) {
  ASSERT_EQ(Run("set k 0 0 5\r\nhello\r\n"), "STORED\r\n");
  ToDevice({"k"});
  EXPECT_EQ(Run("gat -1 k\r\nget k\r\n"), "VALUE k 0 5\r\nhello\r\nEND\r\nEND\r\n");
  EXPECT_EQ(conn_.waits, 1);
  EXPECT_FALSE(log_->Contains(common::HashKey("k")));
}

// A read-ahead (another connection's pipelined get) brings the key to RAM
// while a gat's own read is in flight: the gat touches RAM's copy, and the
// record it read, with the old expiry, must go too, or it comes back once
// RAM's copy expires.
TEST_F(SsdDispatchTest, GatRacingAReadAheadDropsTheOldRecord) {
  ASSERT_EQ(Run("set k 0 0 5\r\nhello\r\nset j 0 0 5\r\nworld\r\n"), "STORED\r\nSTORED\r\n");
  ToDevice({"k", "j"});
  ReadAheadDone ahead;
  ASSERT_TRUE(dispatcher_->ReadAhead("k", *io_, &ahead));  // completes first
  EXPECT_EQ(Run("gat -1 k\r\nget k\r\n"), "VALUE k 0 5\r\nhello\r\nEND\r\nEND\r\n");
  EXPECT_EQ(ahead.calls, 1);
  EXPECT_FALSE(log_->Contains(common::HashKey("k")));

  ReadAheadDone ahead_j;
  ASSERT_TRUE(dispatcher_->ReadAhead("j", *io_, &ahead_j));
  conn_.async.ack_ticket = 0;
  const uint64_t written = device_.bytes_written();
  EXPECT_EQ(Run("gat 100 j\r\n"), "VALUE j 0 5\r\nworld\r\nEND\r\n");
  ExpectTicket(written, "gat of a key RAM got meanwhile");  // the record's invalidation
  clock_.Advance(100);
  EXPECT_EQ(Run("get j\r\n"), "END\r\n");
}

// ------------------------------------------- commands that promote first

// Each command memcached runs against the item, on a key only the SSD has
// (on the device: one wait; in the open region's buffer: none), with and
// without noreply. set and delete never wait.
TEST_F(SsdDispatchTest, CommandsOnSsdKeysPromoteFirst) {
  struct Case {
    std::string request;  // "K" stands for the key, "CAS" for its CAS unique
    std::string reply;
    std::string value;  // `get K` afterwards
    int waits;          // when the key is on the device
  };
  // Every key is first set to "10" with flags 5.
  const std::vector<Case> cases = {
      {"add K 0 0 2\r\n42\r\n", "NOT_STORED", "VALUE K 5 2\r\n10\r\n", 1},
      {"replace K 0 0 2\r\n42\r\n", "STORED", "VALUE K 0 2\r\n42\r\n", 1},
      {"append K 0 0 2\r\n42\r\n", "STORED", "VALUE K 5 4\r\n1042\r\n", 1},
      {"prepend K 0 0 2\r\n42\r\n", "STORED", "VALUE K 5 4\r\n4210\r\n", 1},
      {"cas K 0 0 2 CAS\r\n42\r\n", "STORED", "VALUE K 0 2\r\n42\r\n", 1},
      {"cas K 0 0 2 999999\r\n42\r\n", "EXISTS", "VALUE K 5 2\r\n10\r\n", 1},
      {"incr K 5\r\n", "15", "VALUE K 5 2\r\n15\r\n", 1},
      {"decr K 3\r\n", "7", "VALUE K 5 2\r\n7 \r\n", 1},
      {"decr K 30\r\n", "0", "VALUE K 5 2\r\n0 \r\n", 1},
      {"incr K 18446744073709551615\r\n", "9", "VALUE K 5 2\r\n9 \r\n", 1},
      {"incr K x\r\n", "CLIENT_ERROR invalid numeric delta argument", "VALUE K 5 2\r\n10\r\n", 0},
      {"touch K 100\r\n", "TOUCHED", "VALUE K 5 2\r\n10\r\n", 1},
      {"touch K -1\r\n", "TOUCHED", "", 1},
      {"delete K\r\n", "DELETED", "", 0},
      {"set K 0 0 2\r\n42\r\n", "STORED", "VALUE K 0 2\r\n42\r\n", 0},
  };
  auto replace = [](std::string s, std::string_view what, const std::string& with) {
    for (size_t at; (at = s.find(what)) != std::string::npos;) s.replace(at, what.size(), with);
    return s;
  };
  int round = 0;
  for (bool on_device : {true, false}) {
    for (bool noreply : {false, true}) {
      ++round;
      std::vector<std::string> keys;
      std::vector<uint64_t> cas;
      for (size_t i = 0; i < cases.size(); ++i) {
        keys.push_back("r" + std::to_string(round) + "c" + std::to_string(i));
        ASSERT_EQ(Run("set " + keys[i] + " 5 0 2\r\n10\r\n"), "STORED\r\n");
        cas.push_back(cache_->ram().Get(keys[i])->Cas());
        Evict(keys[i]);
      }
      if (on_device) Seal();
      for (size_t i = 0; i < cases.size(); ++i) {
        const Case& c = cases[i];
        std::string request = replace(c.request, "K", keys[i]);
        request = replace(request, "CAS", std::to_string(cas[i]));
        if (noreply) request.insert(request.find("\r\n"), " noreply");
        const std::string what =
            request.substr(0, request.find("\r\n")) + (on_device ? " (device)" : " (buffer)");
        const int waits = conn_.waits;
        EXPECT_EQ(Run(request), noreply ? "" : c.reply + "\r\n") << what;
        EXPECT_EQ(conn_.waits - waits, on_device ? c.waits : 0) << what;
        EXPECT_EQ(Run("get " + keys[i] + "\r\n"), replace(c.value, "K", keys[i]) + "END\r\n")
            << what;
      }
    }
  }
}

// The issue's bug: a command whose promotion read completed at once (the
// record was still in the open region's buffer) left a flag that made the
// next command of the pipeline skip its own promotion (append answered
// NOT_STORED, touch NOT_FOUND). Every pair of such commands, the first on
// a key in the buffer, the second on a key in the buffer or on the device,
// in one pipeline; noreply on every other first command.
TEST_F(SsdDispatchTest, EveryCommandOfAPipelinePromotesItsKey) {
  struct Command {
    std::string request;  // "K" stands for the key, "CAS" for its CAS unique
    std::string reply;
    std::string value;  // the key's value afterwards
  };
  // Every key is first set to "10".
  const std::vector<Command> commands = {
      {"incr K 5\r\n", "15", "15"},
      {"decr K 3\r\n", "7", "7 "},
      {"touch K 100\r\n", "TOUCHED", "10"},
      {"append K 0 0 2\r\n42\r\n", "STORED", "1042"},
      {"prepend K 0 0 2\r\n42\r\n", "STORED", "4210"},
      {"add K 0 0 2\r\n42\r\n", "NOT_STORED", "10"},
      {"replace K 0 0 2\r\n42\r\n", "STORED", "42"},
      {"cas K 0 0 2 CAS\r\n42\r\n", "STORED", "42"},
  };
  for (bool second_on_device : {false, true}) {
    const std::string prefix = second_on_device ? "dev" : "buf";
    std::string request, reply, get = "get", values;
    std::vector<std::string> in_buffer, on_device;
    int pair = 0;
    auto add = [&](const Command& c, const std::string& key, bool noreply) {
      ASSERT_EQ(Run("set " + key + " 0 0 2\r\n10\r\n"), "STORED\r\n");
      std::string r = c.request;
      r.replace(r.find('K'), 1, key);
      if (size_t at = r.find("CAS"); at != std::string::npos) {
        r.replace(at, 3, std::to_string(cache_->ram().Get(key)->Cas()));
      }
      if (noreply) r.insert(r.find("\r\n"), " noreply");
      request += r;
      if (!noreply) reply += c.reply + "\r\n";
      get += " " + key;
      values += "VALUE " + key + " 0 " + std::to_string(c.value.size()) + "\r\n" + c.value + "\r\n";
    };
    for (const Command& first : commands) {
      for (const Command& second : commands) {
        const std::string key = prefix + std::to_string(pair);
        add(first, key + "a", pair % 2 == 1);
        add(second, key + "b", false);
        in_buffer.push_back(key + "a");
        (second_on_device ? on_device : in_buffer).push_back(key + "b");
        ++pair;
      }
    }
    for (const std::string& key : on_device) Evict(key);
    if (second_on_device) Seal();
    for (const std::string& key : in_buffer) Evict(key);
    const int waits = conn_.waits;
    EXPECT_EQ(Run(request), reply) << prefix;
    EXPECT_EQ(conn_.waits - waits, second_on_device ? 64 : 0) << prefix;
    EXPECT_EQ(Run(get + "\r\n"), values + "END\r\n") << prefix;
  }
}

// The minimal cases of the issue, as sent there.
TEST_F(SsdDispatchTest, TheIssuesPipelines) {
  ASSERT_EQ(Run("set a 0 0 5\r\naaaaa\r\nset b 0 0 5\r\nbbbbb\r\nset x 0 0 2\r\n10\r\n"),
            "STORED\r\nSTORED\r\nSTORED\r\n");
  Evict("b");
  Seal();  // b on the device
  Evict("a");
  Evict("x");  // a and x in the open region's buffer
  EXPECT_EQ(Run("touch a -1\r\nappend b 0 0 4\r\ntail\r\n"), "TOUCHED\r\nSTORED\r\n");
  EXPECT_EQ(Run("get b\r\n"), "VALUE b 0 9\r\nbbbbbtail\r\nEND\r\n");
  ASSERT_EQ(Run("set a 0 0 5\r\naaaaa\r\n"), "STORED\r\n");
  Evict("a");
  EXPECT_EQ(Run("decr x 5 noreply\r\ntouch a -1\r\nget x a\r\n"),
            "TOUCHED\r\nVALUE x 0 2\r\n5 \r\nEND\r\n");
}

// memcached rewrites a number in place, padded with spaces, when the
// result is no longer and nobody else holds the item; a promotion's own
// reference must not count (nor the copy a get's reply made of it).
TEST_F(SsdDispatchTest, IncrDecrAfterAPromotionFollowMemcachedsPadding) {
  ASSERT_EQ(Run("set n 0 0 3\r\n100\r\nset m 0 0 2\r\n99\r\nset p 0 0 3\r\n100\r\n"
                "set q 0 0 3\r\n100\r\n"),
            "STORED\r\nSTORED\r\nSTORED\r\nSTORED\r\n");
  ToDevice({"n", "m", "q"});
  Evict("p");
  EXPECT_EQ(Run("decr n 95\r\nget n\r\n"), "5\r\nVALUE n 0 3\r\n5  \r\nEND\r\n");
  EXPECT_EQ(Run("incr m 1\r\nget m\r\n"), "100\r\nVALUE m 0 3\r\n100\r\nEND\r\n");  // grows
  EXPECT_EQ(conn_.waits, 2);
  EXPECT_EQ(Run("decr p 95\r\nget p\r\n"), "5\r\nVALUE p 0 3\r\n5  \r\nEND\r\n");  // at once
  EXPECT_EQ(conn_.waits, 2);
  EXPECT_EQ(Run("get q\r\ndecr q 95\r\nget q\r\n"),
            "VALUE q 0 3\r\n100\r\nEND\r\n5\r\nVALUE q 0 3\r\n5  \r\nEND\r\n");
  EXPECT_EQ(Run("incr q 1000\r\nget q\r\n"), "1005\r\nVALUE q 0 4\r\n1005\r\nEND\r\n");
}

// Another worker's eviction can push the key back to SSD between the
// promotion and the command: the command promotes it again.
TEST_F(SsdDispatchTest, KeyEvictedAgainBeforeItsCommandIsPromotedAgain) {
  ASSERT_EQ(Run("set k 0 0 2\r\n10\r\nset j 0 0 2\r\n10\r\n"), "STORED\r\nSTORED\r\n");
  ToDevice({"k", "j"});
  auto evict_again = [&](const std::string& key) {
    return [this, key](int) {
      Drain();  // the promotion completes...
      EXPECT_TRUE(cache_->ram().Contains(key));
      Evict(key);  // ...and the item leaves RAM again (its record stays valid)
    };
  };
  EXPECT_EQ(Run("incr k 1\r\n",
                [&](int wait) {
                  if (wait == 1) evict_again("k")(wait);
                }),
            "11\r\n");
  EXPECT_EQ(conn_.waits, 2);
  // Bounded: after 8 promotions the command runs against RAM (here a miss,
  // as if the key had been evicted for good), and the next command starts
  // counting afresh.
  EXPECT_EQ(Run("touch j 0\r\n", evict_again("j")), "NOT_FOUND\r\n");
  EXPECT_EQ(conn_.waits, 2 + 8);
  EXPECT_EQ(Run("touch j 0\r\nincr j 5\r\n"), "TOUCHED\r\n15\r\n");
  EXPECT_EQ(conn_.waits, 2 + 8 + 1);
}

// ---------------------------------------------------------- read-ahead

// A read-ahead promotes the key whatever the sketch says and marks it: the
// get it was made for counts an SSD hit without waiting, later gets count
// RAM hits.
TEST_F(SsdDispatchTest, ReadAheadPromotesAndTheGetCountsAnSsdHit) {
  ASSERT_EQ(Run("set k 3 0 5\r\nhello\r\nset r 0 0 1\r\nx\r\n"), "STORED\r\nSTORED\r\n");
  ToDevice({"k"});
  ReadAheadDone unused;
  EXPECT_FALSE(dispatcher_->ReadAhead("r", *io_, &unused));  // in RAM
  EXPECT_FALSE(dispatcher_->ReadAhead("missing", *io_, &unused));
  EXPECT_EQ(Stat(Counter::kSsdReadAheads), 0u);
  ReadAheadDone ahead;
  ASSERT_TRUE(dispatcher_->ReadAhead("k", *io_, &ahead));
  EXPECT_EQ(Stat(Counter::kSsdReadAheads), 1u);
  EXPECT_EQ(io_->in_flight(), 1u);
  Drain();
  ASSERT_EQ(ahead.calls, 1);
  ASSERT_TRUE(ahead.item);
  EXPECT_EQ(ahead.item->ValueView(), "hello");
  ahead.item.Reset();
  EXPECT_TRUE(cache_->ram().Contains("k"));
  EXPECT_EQ(unused.calls, 0);

  EXPECT_EQ(Run("gets k\r\n"), "VALUE k 3 5 1\r\nhello\r\nEND\r\n");
  EXPECT_EQ(conn_.waits, 0);
  EXPECT_EQ(Stat(Counter::kSsdHits), 1u);
  EXPECT_EQ(Stat(Counter::kRamHits), 0u);
  EXPECT_EQ(Run("get k\r\n"), "VALUE k 3 5\r\nhello\r\nEND\r\n");
  EXPECT_EQ(Stat(Counter::kSsdHits), 1u);
  EXPECT_EQ(Stat(Counter::kRamHits), 1u);
}

// A delete (or set) between the read-ahead and the get wins: while the read
// is in flight, and after it completed.
TEST_F(SsdDispatchTest, DeleteOrSetBetweenReadAheadAndGetWins) {
  ASSERT_EQ(Run("set a 0 0 3\r\nold\r\nset b 0 0 3\r\nold\r\nset c 0 0 3\r\nold\r\n"
                "set d 0 0 3\r\nold\r\n"),
            "STORED\r\nSTORED\r\nSTORED\r\nSTORED\r\n");
  ToDevice({"a", "b", "c", "d"});
  ReadAheadDone ahead_a, ahead_b, ahead_c, ahead_d;
  ASSERT_TRUE(dispatcher_->ReadAhead("a", *io_, &ahead_a));
  ASSERT_TRUE(dispatcher_->ReadAhead("b", *io_, &ahead_b));
  ASSERT_TRUE(dispatcher_->ReadAhead("c", *io_, &ahead_c));
  EXPECT_EQ(Run(other_, "delete a\r\nset c 0 0 3\r\nnew\r\n"), "DELETED\r\nSTORED\r\n");
  Drain();  // a's and c's reads complete after the writes
  EXPECT_EQ(ahead_a.calls, 1);
  EXPECT_FALSE(ahead_a.item);
  EXPECT_FALSE(cache_->ram().Contains("a"));
  EXPECT_EQ(Run(other_, "delete b\r\n"), "DELETED\r\n");  // b's read-ahead is done
  ASSERT_TRUE(dispatcher_->ReadAhead("d", *io_, &ahead_d));
  Drain();
  EXPECT_EQ(Run(other_, "set d 0 0 3\r\nnew\r\n"), "STORED\r\n");
  const uint64_t ssd_hits = Stat(Counter::kSsdHits);
  EXPECT_EQ(Run("get a b c d\r\n"), "VALUE c 0 3\r\nnew\r\nVALUE d 0 3\r\nnew\r\nEND\r\n");
  EXPECT_EQ(conn_.waits, 0);
  EXPECT_EQ(Stat(Counter::kSsdHits), ssd_hits);  // the new items were not read ahead
  for (const char* key : {"a", "b", "c", "d"}) {
    EXPECT_FALSE(log_->Contains(common::HashKey(key))) << key;
  }
}

// ----------------------------------------------------- promotion races

// A delete or set of the key from another connection while a read is in
// flight wins: the waiting command never sees the old value, and neither
// does anything after it.
TEST_F(SsdDispatchTest, WriteDuringAnSsdReadWins) {
  std::string sets;
  for (const char* key : {"a", "b", "c", "d", "e", "f", "g", "h"}) {
    sets += std::string("set ") + key + " 0 0 3\r\nold\r\n";
  }
  ASSERT_EQ(Run(sets), [] {
    std::string r;
    for (int i = 0; i < 8; ++i) r += "STORED\r\n";
    return r;
  }());  // CAS uniques 1 to 8
  ToDevice({"a", "b", "c", "d", "e", "f", "g", "h"});
  auto from_other = [this](const std::string& request, const std::string& reply) {
    return [this, request, reply](int) { EXPECT_EQ(Run(other_, request), reply) << request; };
  };
  // A cold key's get (served from the record, RAM left alone)...
  EXPECT_EQ(Run("get a\r\n", from_other("delete a\r\n", "DELETED\r\n")), "END\r\n");
  EXPECT_EQ(Run("gets b\r\n", from_other("set b 0 0 3\r\nnew\r\n", "STORED\r\n")),
            "VALUE b 0 3 9\r\nnew\r\nEND\r\n");
  // ...a hot key's (promoted: two earlier reads make a third one promote)...
  EXPECT_EQ(Run("get c\r\nget c\r\n"),
            "VALUE c 0 3\r\nold\r\nEND\r\nVALUE c 0 3\r\nold\r\nEND\r\n");
  EXPECT_FALSE(cache_->ram().Contains("c"));
  EXPECT_EQ(Run("get c\r\n", from_other("delete c\r\n", "DELETED\r\n")), "END\r\n");
  // ...a gat's...
  EXPECT_EQ(Run("gat 0 d\r\n", from_other("delete d\r\n", "DELETED\r\n")), "END\r\n");
  EXPECT_EQ(Run("gats 0 e\r\n", from_other("set e 0 0 3\r\nnew\r\n", "STORED\r\n")),
            "VALUE e 0 3 10\r\nnew\r\nEND\r\n");
  // ...and the promotions of commands that change the item.
  EXPECT_EQ(Run("append f 0 0 1\r\n!\r\n", from_other("delete f\r\n", "DELETED\r\n")),
            "NOT_STORED\r\n");
  EXPECT_EQ(Run("incr g 1\r\n", from_other("set g 0 0 2\r\n20\r\n", "STORED\r\n")), "21\r\n");
  EXPECT_EQ(Run("touch h 0\r\n", from_other("delete h\r\n", "DELETED\r\n")), "NOT_FOUND\r\n");
  EXPECT_EQ(conn_.waits, 10);
  EXPECT_EQ(Run("get a b c d e f g h\r\n"),
            "VALUE b 0 3\r\nnew\r\nVALUE e 0 3\r\nnew\r\nVALUE g 0 2\r\n21\r\nEND\r\n");
  EXPECT_EQ(conn_.waits, 10);
}

// flush_all from another connection while a read is in flight wins too.
TEST_F(SsdDispatchTest, FlushAllDuringAnSsdReadWins) {
  ASSERT_EQ(Run("set a 0 0 3\r\nold\r\nset b 0 0 3\r\nold\r\nset c 0 0 2\r\n10\r\n"),
            "STORED\r\nSTORED\r\nSTORED\r\n");
  ToDevice({"a", "b", "c"});
  auto flush = [this](int) { EXPECT_EQ(Run(other_, "flush_all\r\n"), "OK\r\n"); };
  EXPECT_EQ(Run("get a b\r\n", flush), "END\r\n");
  ASSERT_EQ(Run("set a 0 0 3\r\nold\r\nset b 0 0 3\r\nold\r\n"), "STORED\r\nSTORED\r\n");
  ToDevice({"a", "b"});
  EXPECT_EQ(Run("append a 0 0 1\r\n!\r\n", flush), "NOT_STORED\r\n");
  EXPECT_EQ(Run("get a b c\r\n"), "END\r\n");
  EXPECT_EQ(conn_.waits, 2);
}

// ---------------------------------------------------------- durability

// A write to a key with an SSD copy holds its reply for the invalidation
// (AsyncState::ack_ticket), which the log's commit makes durable; a write
// to a key without one holds nothing.
TEST_F(SsdDispatchTest, WritesOfSsdKeysWaitForTheirInvalidation) {
  const std::vector<std::pair<std::string, std::string>> writes = {
      {"delete K\r\n", "DELETED\r\n"},
      {"set K 0 0 1\r\nx\r\n", "STORED\r\n"},
      {"touch K 100\r\n", "TOUCHED\r\n"},
      {"incr K 1\r\n", "11\r\n"},
      {"decr K 1 noreply\r\n", ""},
      {"append K 0 0 1\r\nx\r\n", "STORED\r\n"},
      {"gat 100 K\r\n", "VALUE K 0 2\r\n10\r\nEND\r\n"},
  };
  auto with_key = [](std::string s, const std::string& key) {
    if (size_t at = s.find('K'); at != std::string::npos) s.replace(at, 1, key);
    return s;
  };
  for (size_t i = 0; i < writes.size(); ++i) {
    for (const std::string& key : {"s" + std::to_string(i), "r" + std::to_string(i)}) {
      ASSERT_EQ(Run("set " + key + " 0 0 2\r\n10\r\n"), "STORED\r\n");
    }
  }
  for (size_t i = 0; i < writes.size(); ++i) Evict("s" + std::to_string(i));
  Seal();  // writes everything: no ticket is pending now
  for (size_t i = 0; i < writes.size(); ++i) {
    const std::string key = "s" + std::to_string(i);
    conn_.async.ack_ticket = 0;
    const uint64_t written = device_.bytes_written();
    EXPECT_EQ(Run(with_key(writes[i].first, key)), with_key(writes[i].second, key));
    ExpectTicket(written, writes[i].first);
    const uint64_t ticket = conn_.async.ack_ticket;
    EXPECT_FALSE(log_->Contains(common::HashKey(key))) << writes[i].first;
    if (i % 2 == 0) {
      Commit(ticket);
    } else {
      log_->Sync();
    }
    EXPECT_TRUE(log_->Durable(ticket)) << writes[i].first;
    EXPECT_EQ(cache_->AckTicket(key), 0u) << writes[i].first;
  }
  EXPECT_GT(commits_heard_.load(), 0);
  for (size_t i = 0; i < writes.size(); ++i) {
    const std::string key = "r" + std::to_string(i);
    conn_.async.ack_ticket = 0;
    EXPECT_EQ(Run(with_key(writes[i].first, key)), with_key(writes[i].second, key));
    EXPECT_EQ(conn_.async.ack_ticket, 0u) << writes[i].first << " of a RAM-only key";
  }
}

// ------------------------------------------------------- device faults

// A read the device fails: a miss, counted, and the entry is dropped (the
// next read does not try again). A command that had to promote the key
// finds nothing.
TEST_F(SsdDispatchTest, AFailedReadIsAMiss) {
  ASSERT_EQ(Run("set a 0 0 3\r\naaa\r\nset b 0 0 3\r\nbbb\r\nset c 0 0 2\r\n10\r\n"),
            "STORED\r\nSTORED\r\nSTORED\r\n");
  ToDevice({"a", "b", "c"});
  device_.AddFault({tiers::Fault::Kind::kFailRead, 0, UINT64_MAX, 5, 1});  // the first read
  EXPECT_EQ(Run("get a b\r\n"), "VALUE b 0 3\r\nbbb\r\nEND\r\n");
  EXPECT_EQ(log_->Stats().read_errors, 1u);
  EXPECT_EQ(Stat(Counter::kSsdMisses), 1u);
  EXPECT_EQ(Stat(Counter::kSsdHits), 1u);
  EXPECT_EQ(Stat(Counter::kGetMisses), 1u);
  EXPECT_FALSE(log_->Contains(common::HashKey("a")));
  EXPECT_EQ(Run("get a\r\n"), "END\r\n");
  EXPECT_EQ(conn_.waits, 1);
  device_.AddFault({tiers::Fault::Kind::kFailRead, 0, UINT64_MAX, 5, 1});
  EXPECT_EQ(Run("incr c 1\r\nget c\r\n"), "NOT_FOUND\r\nEND\r\n");
  EXPECT_EQ(log_->Stats().read_errors, 2u);
  const std::string stats = Run("stats\r\n");
  EXPECT_NE(stats.find("STAT ssd_read_errors 2\r\n"), std::string::npos);
}

// A bit flipped on its way from the device: the record's checksum catches
// it; a miss, counted, never the damaged value.
TEST_F(SsdDispatchTest, AFlippedBitIsAMissNeverAWrongValue) {
  const std::string v1 = Incompressible(3000, 1);
  const std::string v2 = Incompressible(3000, 2);
  ASSERT_EQ(Run("set v1 0 0 3000\r\n" + v1 + "\r\nset v2 0 0 3000\r\n" + v2 + "\r\n"),
            "STORED\r\nSTORED\r\n");
  ToDevice({"v1", "v2"});
  const uint64_t at1 = FindOnDevice(v1);
  const uint64_t at2 = FindOnDevice(v2);
  // One fault at a time: the block-aligned read of one record may cover its
  // neighbour's bytes too.
  device_.AddFault({tiers::Fault::Kind::kFlipBitOnRead, at1 + 1234, at1 + 1235});
  EXPECT_EQ(Brief(Run("gets v1\r\n")), "END\r\n");
  EXPECT_EQ(log_->Stats().corrupt_records, 1u);
  EXPECT_EQ(Stat(Counter::kSsdMisses), 1u);
  EXPECT_EQ(Stat(Counter::kGetMisses), 1u);
  device_.ClearFaults();
  device_.AddFault({tiers::Fault::Kind::kFlipBitOnRead, at2 + 10, at2 + 11});
  EXPECT_EQ(Run("append v2 0 0 1\r\n!\r\n"), "NOT_STORED\r\n");
  EXPECT_EQ(log_->Stats().corrupt_records, 2u);
  EXPECT_EQ(conn_.waits, 2);
  // Both entries are gone: no further reads, even once the device is fine.
  device_.ClearFaults();
  EXPECT_EQ(Brief(Run("get v1 v2\r\n")), "END\r\n");
  EXPECT_EQ(conn_.waits, 2);
  const std::string stats = Run("stats\r\n");
  EXPECT_NE(stats.find("STAT ssd_corrupt_records 2\r\n"), std::string::npos);
  EXPECT_NE(stats.find("STAT badcrc_from_extstore 2\r\n"), std::string::npos);
}

}  // namespace
}  // namespace strata::proxy
