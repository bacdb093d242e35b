// Pool: one worker's connections to the upstream memcached servers.
//
// Each worker owns one Pool on its libuv loop: persistent TCP connections
// to each server (upstream.connections_per_server; opened on first use,
// reopened after a failure), over which meta requests (meta_request.h) are
// pipelined. A key always uses the same connection of its server, so the
// requests for one key keep their order. Requests queued during
// a loop iteration are written together at Flush() (the worker calls it at
// the end of each iteration), so a multi-get becomes one write per server.
// Replies come back in request order per connection; each request's
// OnReply() is called exactly once: with the server's reply, or with
// kFailed when the connection failed, was refused, or the oldest reply
// took longer than the request timeout (the connection is then reset: its
// replies come in order, so one stalled reply would delay every later one,
// and every request sent on it fails). Nothing blocks the loop.
//
// Each server is up, down or probing, in each worker on its own
// (PoolHealth). It is marked down after `down_after_connect_failures`
// failed connects (refused, unreachable or timed out) or
// `down_after_timeouts` request timeouts in a row (a reply resets both
// counts); everything queued or sent to it then fails. While it is not up,
// and while it has `max_in_flight` requests queued or sent, a request to it
// fails at the next Flush() without touching the network (kFailed; counted
// as outcome `rejected`). A down server is probed (a connect and `mn`) after
// a delay that doubles from probe_min_ms to probe_max_ms, with jitter
// (ProbeDelayMs); a probe that gets any reply marks it up. Its keys never
// move to another server. Connections use TCP keepalive, and one idle for
// longer than PoolTimeouts::revalidate_idle_ms sends `mn` alone before its
// next requests, which go on a new connection if no answer comes within
// connect_ms: a connection a firewall dropped silently costs no request.
//
// Which server owns a key is the membership's Placement's (placement.h,
// membership.h) decision. The membership may change at runtime: Apply()
// moves the pool to a newer snapshot (membership_watcher.h hands them out).
//
// Thread safety: a Pool and its requests belong to one worker thread; only
// the counters (ServerCounters, the state included: relaxed atomics) are
// read from other threads (scrapes, stats).
#pragma once

#include <sys/socket.h>

#include <atomic>
#include <cstdint>
#include <deque>
#include <memory>
#include <random>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "metrics/latency.h"
#include "proxy/upstream/meta_reply.h"
#include "tiers/item/item.h"

typedef struct uv_loop_s uv_loop_t;

namespace strata::upstream {

// A resolved server address.
struct ResolvedServer {
  std::string label;  // "host:port", for logs and metric labels
  sockaddr_storage addr{};
  socklen_t addr_len = 0;
};

// What a request is, for the per-server counters.
// kProbe: the `mn` that probes a down server or re-validates an idle
// connection.
enum class RequestOp : uint8_t {
  kGet, kTouch, kStore, kDelete, kArith, kFlush, kProbe, kCount
};
inline constexpr size_t kRequestOps = static_cast<size_t>(RequestOp::kCount);
const char* RequestOpName(RequestOp op);

// How a request ended, for the per-server counters.
enum class RequestOutcome : uint8_t {
  kHit,      // VA, HD, OK
  kMiss,     // EN, NF, NS, EX
  kError,    // CLIENT_ERROR, SERVER_ERROR, ERROR
  kFailed,   // no reply (connection failure or timeout)
  kRejected, // not sent: the server is not up, or has max_in_flight requests
  kCount,
};
inline constexpr size_t kRequestOutcomes = static_cast<size_t>(RequestOutcome::kCount);
const char* RequestOutcomeName(RequestOutcome o);

// A server's health in one worker.
enum class ServerState : uint8_t {
  kUp,       // requests are sent
  kDown,     // requests fail at once; a probe is due after a backoff
  kProbing,  // requests fail at once; a probe is in flight
  kLeaving,  // left the membership; requests fail at once until the removal
             // grace ends (membership.h; set by the snapshot, not a worker)
  kCount,
};
inline constexpr size_t kServerStates = static_cast<size_t>(ServerState::kCount);
const char* ServerStateName(ServerState s);

// One server's counters in one worker (summed over workers at scrape).
struct ServerCounters {
  std::atomic<uint8_t> state{0};               // a ServerState
  std::atomic<uint64_t> marked_down{0};        // times marked down
  std::atomic<uint64_t> requests[kRequestOps][kRequestOutcomes] = {};
  std::atomic<uint64_t> connects{0};         // connections opened
  std::atomic<uint64_t> connect_failures{0};
  std::atomic<uint64_t> resets{0};           // connections reset (error, timeout, bad reply)
  std::atomic<uint64_t> timeouts{0};         // of which by the request timeout
  std::atomic<uint64_t> in_flight{0};        // requests queued or sent, not answered
  // Send-to-reply time of answered requests (metrics::kLatencyBoundsNs).
  std::atomic<uint64_t> latency_buckets[metrics::kLatencyBuckets] = {};
  std::atomic<uint64_t> latency_sum_ns{0};

  void Observe(uint64_t nanos);
  // This worker's figures added into *out (a scrape's sum).
  void AddLatencyTo(metrics::LatencySeries* out) const;
};

// A request to one server. The pool owns none: the caller keeps it alive
// until OnReply(), which may delete it.
class Request : public ValueSink {
 public:
  Request(RequestOp op, std::string head) : op_(op), head_(std::move(head)) {}
  virtual ~Request() = default;
  // The reply (kFailed: none came). Called once, on the pool's loop.
  virtual void OnReply(MetaReply& reply) = 0;
  char* ValueBuffer(const MetaReply&) override { return nullptr; }

  // A value sent after the head line, followed by "\r\n" (ms): the item
  // is kept until it is written.
  void set_body(tiers::ItemRef item) { body_ = std::move(item); }
  // A quiet meta command (its q flag): memcached answers it only when it
  // has something to say, so an "mn\r\n" is sent after it (and after its
  // body) and the request's reply ends at the MN. OnReply() gets the
  // command's own reply when one came before the MN, else the MN (kOk).
  void set_until_mn() { until_mn_ = true; }
  RequestOp op() const { return op_; }

 private:
  friend class ServerConnection;
  RequestOp op_;
  std::string head_;  // the request line(s), with "\r\n"
  tiers::ItemRef body_;
  bool until_mn_ = false;
  bool held_ = false;      // until_mn_: the command's reply came; the MN is next
  MetaReply held_reply_;
  uint64_t sent_ns_ = 0;
};

struct PoolTimeouts {
  uint32_t connect_ms = 100;
  // The oldest reply outstanding may stay silent (no byte of it arriving)
  // this long; then the connection is reset. A large value that keeps
  // arriving never times out.
  uint32_t request_ms = 200;
  // A connection idle (nothing written or read) for longer is re-validated
  // before it carries requests again: an `mn` is sent alone, and the
  // requests follow its answer, or go on a new connection when it does not
  // answer within connect_ms (a firewall dropped it silently). 0: never.
  uint32_t revalidate_idle_ms = 10'000;
};

// When a server is marked down, how it is probed back, and how many
// requests it may have in flight (pool_options.h has their meaning).
struct PoolHealth {
  uint32_t down_after_timeouts = 3;
  uint32_t down_after_connect_failures = 1;
  uint32_t probe_min_ms = 100;
  uint32_t probe_max_ms = 10'000;
  uint32_t max_in_flight = 1024;  // queued or sent, per server and worker
};

// The delay before probe number `attempt` (0: the first after the server
// was marked down) of a down server: probe_min_ms doubled `attempt`
// times, at most probe_max_ms, then drawn uniformly from [d/2, d] by
// `random` (any 64-bit value; "equal jitter", so the probes of many
// workers and pods spread out but never come sooner than half the
// schedule). Pure, for tests.
uint64_t ProbeDelayMs(const PoolHealth& health, uint32_t attempt, uint64_t random);

class ServerConnection;
class ServerHealth;
struct Membership;
struct MemberCounters;

class Pool {
 public:
  // The pool of `membership` (membership.h; its placement decides which
  // server owns a key); this worker's counters are entry `worker` of each
  // member's. `per_server` >= 1 connections are kept to each server;
  // `seed` seeds the probes' jitter.
  Pool(uv_loop_t* loop, std::shared_ptr<const Membership> membership, size_t worker,
       uint32_t per_server, PoolTimeouts timeouts, PoolHealth health, uint64_t seed);
  ~Pool();
  Pool(const Pool&) = delete;
  Pool& operator=(const Pool&) = delete;

  size_t size() const { return servers_.size(); }
  const Membership& membership() const { return *membership_; }

  // Moves to a newer membership: the servers that stay keep their
  // connections, health and counters; new ones get connections opened at
  // their first request; a server that left the snapshot has its
  // connections closed (what was queued or sent to it fails). A member
  // flagged `leaving` takes no new request (each fails at the next Flush()
  // as for a down server) while what it has in flight completes. Flushes
  // first. Not from a request's callback.
  void Apply(std::shared_ptr<const Membership> membership);

  // Queues `req` for the server that owns `key` (written at the next
  // Flush(), on the connection `key_hash` picks). A request the server
  // cannot take now (not up, leaving, or max_in_flight reached; or no
  // member at all) fails at the next Flush(). After Close() the request
  // fails at once.
  void Send(std::string_view key, uint64_t key_hash, Request* req);
  // The same for server `server` (an index into membership().members).
  void SendTo(size_t server, uint64_t key_hash, Request* req);
  // Fails the requests refused since the last Flush(), then writes every
  // queued request (one write per connection).
  void Flush();
  // The server's state in this worker.
  ServerState state(size_t server) const;
  // Fails every request and closes the connections (worker shutdown);
  // their handles are closed by the loop's next iteration.
  void Close();

 private:
  struct Server;  // one member's health and connections

  uv_loop_t* loop_;
  size_t worker_;
  uint32_t per_server_;
  PoolTimeouts timeouts_;
  PoolHealth health_options_;
  std::mt19937_64 rng_;
  std::shared_ptr<const Membership> membership_;
  std::vector<std::unique_ptr<Server>> servers_;  // as membership_->members
  std::vector<ServerConnection*> dirty_;  // with requests queued since the last Flush()
  // (counters, request) to fail at Flush(); the counters may be null (no
  // member owns the key).
  std::vector<std::pair<ServerCounters*, Request*>> rejected_;
  bool closing_ = false;
};

}  // namespace strata::upstream
