// Dispatcher: runs parsed commands against the tiered cache and composes
// memcached 1.6.18's exact replies into a connection's OutputQueue.
//
// Storage commands are two-phase: Execute() returns kReadData with a
// PendingStore whose item the connection fills with the data block, then
// CompleteStore() publishes it. Get-family commands stream: ContinueGet()
// emits keys until the queue passes a watermark, then returns kPaused and
// resumes later where it stopped, so a multi-get of thousands of keys never
// builds one giant buffer. `lru_crawler metadump` streams the RAM items the
// same way. The `stats` family is StatsCommands' (proxy/stats/
// stats_commands.h), which Execute() hands it to. The tuning commands of
// memcached's slab mover, LRU and crawler that strata has no use for are
// answered as memcached answers them (kFixedReply).
//
// With an SSD tier, every write (store, delete, incr/decr, touch, gat,
// flush_all) records in AsyncState::ack_ticket the SSD log position its
// reply must wait for (TieredCache's tickets): the connection holds its
// replies until that position is durable, so an acknowledged write is
// never undone by a crash.
//
// With an SSD tier, commands may wait for it (Outcome::kWaitIo): a get
// looks up a batch of keys in RAM, reads the ones only the SSD has (all at
// once, on the worker's I/O queue) and replies for the batch in order once
// they are back; other commands on a key only the SSD has first promote it
// to RAM. The connection stops running commands while one waits, so
// replies and effects keep request order. When the reads are done the
// AsyncState's waiter is told, and the connection calls Resume().
//
// Thread safety: one Dispatcher per worker thread; not shared.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "proxy/exec/near_cache.h"
#include "proxy/protocol/output_queue.h"
#include "proxy/protocol/protocol.h"
#include "proxy/shared/server_context.h"
#include "proxy/stats/stats_commands.h"
#include "tiers/item/item.h"

namespace strata::proxy {

// A store waiting for its data block.
// A write the upstream pool did not answer.
inline constexpr std::string_view kUpstreamUnavailable = "SERVER_ERROR upstream unavailable";

struct PendingStore {
  tiers::ItemRef item;        // empty when the data is to be swallowed
  CommandType type = CommandType::kSet;
  uint64_t cas_unique = 0;
  bool noreply = false;
  uint64_t remaining = 0;     // bytes of data block (value + "\r\n") still to read
  int32_t exptime = 0;        // as the client sent it (for the upstream pool)
  // ms (type kMetaSet): the store mode its M flag (and C) chose, whether a
  // lower CAS stores the item stale (I), whether its key was sent base64
  // (b), and its return flags (O, k, c tokens, space separated, in request
  // order; copied: the read buffer is reused for the data block).
  tiers::StoreMode mode = tiers::StoreMode::kSet;
  bool set_stale = false;
  bool key_binary = false;
  std::string meta_ret;
  // With an upstream pool: the ms as it goes to the key's server (its line,
  // as the client wrote it), and whether it had the q flag.
  std::string relay_head;
  bool relay_quiet = false;
};

enum class Outcome {
  kDone,      // reply (if any) is queued
  kReadData,  // read the data block into PendingStore (or swallow it)
  kPaused,    // a get stopped at the output watermark; call ContinueGet later
  kClose,     // close the connection after flushing (quit, shutdown)
  kWaitIo,    // waiting for SSD reads; call Resume() when told they are done
};

struct AsyncState;

// Told (on the worker thread) when all SSD reads of the waiting command
// have completed.
class IoWaiter {
 public:
  virtual void OnIoDone() = 0;
  // Asked between the keys of a get: after each key queued, and before
  // each key of an SSD batch but the first. True stops the get there, as
  // the output watermark does (kPaused), or ends the batch. The connection
  // answers for the process-wide connection memory cap
  // (connection_memory.h).
  virtual bool MemoryFull(const AsyncState& /*state*/) { return false; }

 protected:
  ~IoWaiter() = default;
};

// A connection's state for a command that waits for the SSD tier.
struct AsyncState {
  enum class Waiting : uint8_t { kNothing, kGetBatch, kStore, kCommand };
  IoWaiter* waiter = nullptr;
  tiers::IoQueue* io = nullptr;  // the worker's queue; null without SSD
  Waiting waiting = Waiting::kNothing;
  size_t pending = 0;            // reads in flight
  struct Slot {
    std::string_view key;        // a view into the connection's read buffer
    tiers::ItemRef item;
    bool from_ssd = false;   // the item was read from the SSD tier
    bool asked_ssd = false;  // RAM missed and the SSD tier was asked
    bool asked_upstream = false;  // both tiers missed and the pool was asked
  };
  std::vector<Slot> slots;       // the current get batch, in request order
  bool batch_ready = false;      // every slot of the batch is resolved locally
  bool upstream_asked = false;   // the batch's local misses were sent to the pool
  // The worker's near cache; null without an upstream pool. With one,
  // writes go to the pool first (Dispatcher::Forward()).
  NearCache* near = nullptr;
  // The connection's fetches ahead (with `near`).
  Prefetches* prefetches = nullptr;
  // A write forwarded to the pool: its reply, once it came.
  struct Forwarded {
    bool sent = false;
    bool answered = false;
    upstream::ReplyKind kind = upstream::ReplyKind::kFailed;
    std::string line;   // kError: the server's error line; a relayed reply's line
    std::string value;  // kValue of an ma: the number; of a relayed reply: the value
    bool marked = false;  // the reply had a lease mark (W, X or Z)
    bool won = false;     // ... W: this request won the item's win token
    uint64_t cas = 0;     // the reply's c
  } forwarded;
  uint32_t promote_attempts = 0;  // promotions of the current command's key (at most 8)
  // Runs of the current command again because its key moved between the
  // tiers just before it ran (Dispatcher::LookAgain()).
  uint32_t moved_retries = 0;
  bool resumed = false;  // Resume() is running the command
  uint32_t gat_exptime = 0;      // gat/gats: the new expiry, for its SSD reads
  // The SSD log position the replies queued so far must wait for (their
  // commands' invalidations are durable once it is; 0 = none). The
  // connection clears it when it sends.
  uint64_t ack_ticket = 0;

  // One piece of the command's asynchronous work (an SSD read, a fetch, a
  // forwarded write) is done: the waiter is told when it was the last one
  // and the command waits.
  void OneDone() {
    if (--pending == 0 && waiting != Waiting::kNothing) waiter->OnIoDone();
  }
  // Starts one piece of work with start(), which may complete at once;
  // true when the command must wait for it (kWaitIo, resumed as `why`).
  template <typename Start>
  bool WaitFor(Waiting why, Start&& start) {
    // Held at two while start() runs, so that work completing at once
    // cannot signal before the command has decided to wait.
    pending = 2;
    waiting = Waiting::kNothing;
    start();
    if (--pending > 0) {
      waiting = why;
      return true;
    }
    return false;
  }
};

class Dispatcher {
 public:
  Dispatcher(ServerContext& ctx, WorkerStats& stats);

  // Runs `cmd`. For kReadData, *store describes the data block to read.
  // `async` (null = never wait) holds what a kWaitIo needs to resume.
  Outcome Execute(Command& cmd, OutputQueue& out, PendingStore* store,
                  AsyncState* async = nullptr);

  // Continues a get-family command (cmd.keys holds the keys not yet done)
  // or an `lru_crawler metadump` (cmd.delta holds the RAM walk's cursor)
  // that returned kPaused.
  Outcome ContinueGet(Command& cmd, OutputQueue& out, AsyncState* async = nullptr);

  // Finishes a store whose data block was read; `terminated` tells whether
  // the block ended in "\r\n". Returns kDone, or kWaitIo while the key is
  // promoted from SSD first (then `store` must be kept for Resume()).
  Outcome CompleteStore(PendingStore& store, bool terminated, OutputQueue& out,
                        AsyncState* async = nullptr);

  // Read-ahead for a get that will run later on this connection: if only
  // the SSD tier has `key`, starts its promotion (completing on `done`) and
  // returns true. Invisible to clients: a promotion never changes a value.
  bool ReadAhead(std::string_view key, tiers::IoQueue& io, tiers::SsdReadDone* done);

  // Read-ahead through the upstream pool: if neither local tier has `key`,
  // starts fetching it into `prefetches` and returns true.
  bool Prefetch(std::string_view key, NearCache& near, Prefetches& prefetches);

  // Continues the command that returned kWaitIo, once its reads are done.
  Outcome Resume(Command& cmd, OutputQueue& out, PendingStore* store, AsyncState* async);

  // memcached's realtime(): the client's exptime as absolute unix seconds
  // (0 = never; negative or past = already expired).
  uint32_t AbsoluteExptime(int32_t exptime) const;

 private:
  void Reply(OutputQueue& out, bool noreply, std::string_view line);
  // The meta commands (meta.cc), as proto_text.c's process_m*_command().
  Outcome MetaGet(Command& cmd, OutputQueue& out, AsyncState* async);
  Outcome MetaSet(Command& cmd, OutputQueue& out, PendingStore* store, AsyncState* async);
  Outcome MetaDelete(Command& cmd, OutputQueue& out, AsyncState* async);
  Outcome MetaArithmetic(Command& cmd, OutputQueue& out, AsyncState* async);
  Outcome MetaDebug(Command& cmd, OutputQueue& out, AsyncState* async);
  // Replies to an ms whose data block was read (CompleteStore's part).
  void MetaStoreReply(const PendingStore& store, tiers::StoreResult result, uint64_t cas,
                      OutputQueue& out);
  // memcached's "t" flag: the seconds `exptime` has left, "-1" for none.
  void AppendTtl(std::string* line, uint32_t exptime) const;
  // lru_crawler crawl|metadump|enable|disable; a metadump lists the RAM
  // items in batches and pauses (kPaused) at the output watermark.
  Outcome LruCrawler(Command& cmd, OutputQueue& out);
  Outcome ContinueMetadump(Command& cmd, OutputQueue& out);

  // Starts promoting `key` if only the SSD has it; true when the command
  // must wait (kWaitIo) for it.
  bool PromoteFirst(AsyncState* async, std::string_view key, AsyncState::Waiting why);
  // The command found no key in RAM and changed nothing; but the key may
  // have moved between the tiers since PromoteFirst() looked (RAM evicted
  // it to SSD, another connection promoted it back). kInRam: RAM has it
  // now, run the command again at once; kPromoting: only the SSD has it, a
  // promotion is started (kWaitIo), the command runs again when it is
  // back; kGone: the key is in neither tier. At most kMaxPromoteAttempts
  // times per command, then kGone.
  enum class LookedAgain { kGone, kInRam, kPromoting };
  LookedAgain LookAgain(AsyncState* async, std::string_view key, AsyncState::Waiting why);
  // With an upstream pool: sends the write `head` (and `body`, for ms) to
  // `key`'s server and returns true (kWaitIo: the command runs again with
  // async->forwarded answered). False once it has been answered.
  // `relay`: a client's meta command, whose reply is kept as it came
  // (line and value) to be passed on; `quiet`: it has the q flag (the
  // request ends with an mn, upstream::Request::set_until_mn()).
  bool Forward(AsyncState* async, std::string_view key, upstream::RequestOp op, std::string head,
               tiers::ItemRef body, AsyncState::Waiting why, bool relay = false,
               bool quiet = false);
  // The pool's answer to a forwarded command, after the key's local copy
  // was dropped (its SSD invalidation joins the reply's ticket).
  AsyncState::Forwarded TakeAnswer(AsyncState* async, std::string_view key);
  // The pool's answer to a forwarded write: drops the key's local copy
  // (its SSD invalidation joins the reply's ticket) and returns the reply
  // kind, or sets *error_line for an answer that is passed on as it is.
  upstream::ReplyKind TakeForwarded(AsyncState* async, std::string_view key,
                                    std::string* error_line);
  // The classic reply to a store's result (and its cas counters).
  void StoreReply(const PendingStore& store, tiers::StoreResult result, OutputQueue& out);
  // CompleteStore() with an upstream pool: the store goes to the key's
  // server as an ms; the reply maps back to the classic one.
  Outcome ForwardStore(PendingStore& store, OutputQueue& out, AsyncState* async);
  // The meta commands with an upstream pool (meta.cc): sent to the key's
  // server as the client wrote them (me too), and its reply passed on byte
  // for byte, so the owning server decides leases (N, R), stale marks (I)
  // and win tokens for every pod. A plain mg (only v f c k O q s b) is
  // answered from the local tiers when they have the key.
  Outcome RelayMeta(Command& cmd, OutputQueue& out, AsyncState* async);
  Outcome RelayMetaStore(PendingStore& store, OutputQueue& out, AsyncState* async);
  // Passes on a relayed reply of a command of `type`; `plain_get`: an mg
  // whose failure answers as a miss (EN with `miss_flags`, hidden by q).
  void PassOnRelayed(CommandType type, const AsyncState::Forwarded& answer, bool plain_get,
                     bool quiet, std::string_view miss_flags, OutputQueue& out);
  // Where a write's durability ticket goes: the connection's (null when
  // there is no SSD tier, or no connection).
  static uint64_t* Ticket(AsyncState* async);
  // Appends "VALUE <key> <flags> <bytes>[ <cas>]\r\n" and the value.
  void AppendValue(OutputQueue& out, std::string_view key, const tiers::ItemRef& item,
                   bool with_cas);

  ServerContext& ctx_;
  WorkerStats& stats_;
  std::unique_ptr<tiers::TieredCache> ram_only_;  // when ctx has no cache
  tiers::TieredCache& cache_;
  StatsCommands stats_commands_;  // the `stats` family, on cache_
};

}  // namespace strata::proxy
