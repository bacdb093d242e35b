#include "proxy/upstream/pool.h"

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <uv.h>

#include <algorithm>
#include <cstring>
#include <map>
#include <utility>

#include "common/log.h"
#include "proxy/upstream/membership.h"

namespace strata::upstream {
namespace {

constexpr size_t kReadBufferSize = 64 * 1024;
// TCP keepalive on every connection: the first probe after 30 s idle, then
// every 5 s, the connection dropped after 3 unanswered, so a connection a
// firewall or NAT dropped is noticed (and reopened at its next use) within
// about 45 s of idleness.
constexpr unsigned kKeepaliveIdleS = 30;
constexpr int kKeepaliveIntervalS = 5;
constexpr int kKeepaliveCount = 3;

RequestOutcome OutcomeOf(ReplyKind k) {
  switch (k) {
    case ReplyKind::kValue:
    case ReplyKind::kHit:
    case ReplyKind::kOk:
      return RequestOutcome::kHit;
    case ReplyKind::kMiss:
    case ReplyKind::kNotFound:
    case ReplyKind::kNotStored:
    case ReplyKind::kExists:
      return RequestOutcome::kMiss;
    case ReplyKind::kError:
      return RequestOutcome::kError;
    case ReplyKind::kFailed:
      break;
  }
  return RequestOutcome::kFailed;
}

void Bump(std::atomic<uint64_t>& v, int64_t n = 1) {
  v.store(v.load(std::memory_order_relaxed) + static_cast<uint64_t>(n), std::memory_order_relaxed);
}

}  // namespace

const char* RequestOpName(RequestOp op) {
  switch (op) {
    case RequestOp::kGet: return "get";
    case RequestOp::kTouch: return "touch";
    case RequestOp::kStore: return "store";
    case RequestOp::kDelete: return "delete";
    case RequestOp::kArith: return "arith";
    case RequestOp::kFlush: return "flush";
    case RequestOp::kProbe: return "probe";
    case RequestOp::kCount: break;
  }
  return "other";
}

const char* RequestOutcomeName(RequestOutcome o) {
  switch (o) {
    case RequestOutcome::kHit: return "hit";
    case RequestOutcome::kMiss: return "miss";
    case RequestOutcome::kError: return "error";
    case RequestOutcome::kFailed: return "failed";
    case RequestOutcome::kRejected: return "rejected";
    case RequestOutcome::kCount: break;
  }
  return "other";
}

const char* ServerStateName(ServerState s) {
  switch (s) {
    case ServerState::kUp: return "up";
    case ServerState::kDown: return "down";
    case ServerState::kProbing: return "probing";
    case ServerState::kLeaving: return "leaving";
    case ServerState::kCount: break;
  }
  return "other";
}

uint64_t ProbeDelayMs(const PoolHealth& health, uint32_t attempt, uint64_t random) {
  const uint64_t lo = std::max<uint64_t>(health.probe_min_ms, 1);
  const uint64_t hi = std::max<uint64_t>(health.probe_max_ms, lo);
  uint64_t d = lo;
  for (uint32_t i = 0; i < attempt && d < hi; ++i) d *= 2;
  d = std::min(d, hi);
  const uint64_t half = d / 2;
  return d - half + random % (half + 1);  // in [d - d/2, d]
}

void ServerCounters::Observe(uint64_t nanos) {
  size_t b = 0;
  while (b < metrics::kLatencyBoundsNs.size() && nanos > metrics::kLatencyBoundsNs[b]) ++b;
  Bump(latency_buckets[b]);
  Bump(latency_sum_ns, static_cast<int64_t>(nanos));
}

void ServerCounters::AddLatencyTo(metrics::LatencySeries* out) const {
  for (size_t b = 0; b < metrics::kLatencyBuckets; ++b) {
    out->buckets[b] += latency_buckets[b].load(std::memory_order_relaxed);
  }
  out->sum_ns += latency_sum_ns.load(std::memory_order_relaxed);
}

// One server's health in one worker (pool.h): its state, the failures in
// a row that mark it down, the probe that marks it up, the requests it has
// in flight.
class ServerHealth {
 public:
  ServerHealth(uv_loop_t* loop, std::string label, const PoolHealth& options,
               ServerCounters* counters, std::mt19937_64* rng)
      : label_(std::move(label)),
        options_(options),
        counters_(counters),
        rng_(rng),
        timer_(new uv_timer_t),
        probe_(this) {
    uv_timer_init(loop, timer_);
    timer_->data = this;
    counters_->state.store(static_cast<uint8_t>(ServerState::kUp), std::memory_order_relaxed);
  }

  void AddConnection(ServerConnection* conn) { conns_.push_back(conn); }
  ServerState state() const { return state_; }
  bool up() const { return state_ == ServerState::kUp; }
  // Whether a new request must be refused (the in-flight limit).
  bool full() const { return in_flight_ >= options_.max_in_flight; }
  void Added() { ++in_flight_; }
  void Removed() { --in_flight_; }

  // A reply came: the failures in a row start over.
  void Replied() {
    timeouts_ = 0;
    connect_failures_ = 0;
  }
  void Connected() { connect_failures_ = 0; }
  // Failures count only while up (a probe's own failure decides the rest).
  void TimedOut() {
    if (up() && ++timeouts_ >= options_.down_after_timeouts) {
      MarkDown(std::to_string(timeouts_) + " request timeouts in a row");
    }
  }
  void ConnectFailed() {
    if (up() && ++connect_failures_ >= options_.down_after_connect_failures) {
      MarkDown(std::to_string(connect_failures_) + " failed connects in a row");
    }
  }

  // Stops probing (worker shutdown); the timer's handle is closed.
  void Close() {
    closed_ = true;
    uv_timer_stop(timer_);
    uv_close(reinterpret_cast<uv_handle_t*>(timer_),
             [](uv_handle_t* h) { delete reinterpret_cast<uv_timer_t*>(h); });
    timer_ = nullptr;
  }

 private:
  // The `mn` a probe sends; any reply means the server answers.
  class Probe : public Request {
   public:
    explicit Probe(ServerHealth* owner) : Request(RequestOp::kProbe, "mn\r\n"), owner_(owner) {}
    void OnReply(MetaReply& reply) override { owner_->Probed(reply.kind != ReplyKind::kFailed); }

   private:
    ServerHealth* owner_;
  };

  void SetState(ServerState s) {
    state_ = s;
    counters_->state.store(static_cast<uint8_t>(s), std::memory_order_relaxed);
  }

  void MarkDown(const std::string& why);  // after ServerConnection
  void ScheduleProbe() {
    if (closed_) return;
    const uint64_t delay = ProbeDelayMs(options_, attempt_, (*rng_)());
    uv_timer_start(timer_, OnProbeTimer, delay, 0);
  }
  static void OnProbeTimer(uv_timer_t* timer);  // after ServerConnection

  void Probed(bool ok) {
    if (closed_) return;
    if (ok) {
      common::Log(common::LogLevel::kInfo, "upstream %s: up again (probe %u answered)",
                  label_.c_str(), attempt_ + 1);
      timeouts_ = 0;
      connect_failures_ = 0;
      SetState(ServerState::kUp);
      return;
    }
    SetState(ServerState::kDown);
    ++attempt_;
    ScheduleProbe();
  }

  std::string label_;
  PoolHealth options_;
  ServerCounters* counters_;
  std::mt19937_64* rng_;
  uv_timer_t* timer_;  // the next probe; freed by its close callback
  Probe probe_;
  std::vector<ServerConnection*> conns_;
  ServerState state_ = ServerState::kUp;
  uint32_t timeouts_ = 0;          // request timeouts in a row
  uint32_t connect_failures_ = 0;  // failed connects in a row
  uint32_t attempt_ = 0;           // probes since marked down
  uint32_t in_flight_ = 0;         // queued or sent on its connections
  bool closed_ = false;
};

// One server's connection in one worker: requests queued (unsent_), then
// written and waiting for their replies in order (sent_).
class ServerConnection {
 public:
  ServerConnection(uv_loop_t* loop, const ResolvedServer& server, PoolTimeouts timeouts,
                   ServerHealth* health, ServerCounters* counters)
      : loop_(loop),
        server_(server),
        timeouts_(timeouts),
        health_(health),
        counters_(counters),
        rbuf_(new char[kReadBufferSize]),
        timer_(new uv_timer_t) {
    uv_timer_init(loop_, timer_);
    timer_->data = this;
  }

  ~ServerConnection() = default;  // Close() ran: no handle is left

  bool dirty = false;  // in the pool's list of connections to flush

  void Enqueue(Request* req) {
    Bump(counters_->in_flight);
    health_->Added();
    unsent_.push_back(req);
  }

  void Flush() {
    if (closed_ || unsent_.empty()) return;
    if (sock_ == nullptr) {
      Connect();
      return;
    }
    if (!connected_ || validating_) return;  // OnConnect() / the validation flush
    const uint64_t now = uv_hrtime();
    size_t count = unsent_.size();
    if (timeouts_.revalidate_idle_ms != 0 && sent_.empty() &&
        now - last_used_ns_ > uint64_t{timeouts_.revalidate_idle_ms} * 1'000'000) {
      // Idle for long: a firewall may have dropped the connection without
      // a word. An `mn` goes first, alone; the requests follow its answer,
      // or go on a new connection if it does not come within the connect
      // timeout.
      validating_ = true;
      Bump(counters_->in_flight);
      health_->Added();
      unsent_.push_front(&validation_);
      count = 1;
    }
    last_used_ns_ = now;
    auto* batch = new WriteBatch;
    batch->req.data = batch;
    // The text first (it must not move once buffers point into it), then
    // the buffers: heads and "\r\n" from the text, values from their items.
    struct Piece {
      size_t off, len;
      const tiers::Item* item;
    };
    std::vector<Piece> pieces;
    for (size_t i = 0; i < count; ++i) {
      Request* req = unsent_[i];
      pieces.push_back({batch->text.size(), req->head_.size(), nullptr});
      batch->text += req->head_;
      if (req->body_) {
        pieces.push_back({0, req->body_->value_len, req->body_.get()});
        pieces.push_back({batch->text.size(), 2, nullptr});
        batch->text += "\r\n";
        batch->items.push_back(std::move(req->body_));
      }
      if (req->until_mn_) {
        pieces.push_back({batch->text.size(), 4, nullptr});
        batch->text += "mn\r\n";
      }
      req->sent_ns_ = now;
      sent_.push_back(req);
    }
    unsent_.erase(unsent_.begin(), unsent_.begin() + static_cast<ptrdiff_t>(count));
    batch->bufs.reserve(pieces.size());
    for (const Piece& p : pieces) {
      char* base = p.item != nullptr ? const_cast<char*>(p.item->Value()) : batch->text.data() + p.off;
      batch->bufs.push_back(uv_buf_init(base, static_cast<unsigned>(p.len)));
    }
    ArmTimer();
    int rc = uv_write(&batch->req, reinterpret_cast<uv_stream_t*>(&sock_->tcp), batch->bufs.data(),
                      static_cast<unsigned>(batch->bufs.size()), OnWrite);
    if (rc != 0) {
      delete batch;
      Reset(/*fail_unsent=*/false, "write failed");
    }
  }

  // Fails everything queued or sent and closes the socket (the server was
  // marked down).
  void Fail() { Reset(/*fail_unsent=*/true, nullptr); }

  // Fails everything and closes the handles (worker shutdown).
  void Close() {
    if (closed_) return;
    closed_ = true;
    Reset(/*fail_unsent=*/true, nullptr);
    uv_timer_stop(timer_);
    uv_close(reinterpret_cast<uv_handle_t*>(timer_),
             [](uv_handle_t* h) { delete reinterpret_cast<uv_timer_t*>(h); });
    timer_ = nullptr;
  }

 private:
  // One TCP connection's handles; freed by their close callback, so a
  // reset never waits for libuv.
  struct Socket {
    uv_tcp_t tcp;
    uv_connect_t connect;
    ServerConnection* owner;  // null once the connection let it go
  };
  struct WriteBatch {
    uv_write_t req;
    std::string text;
    std::vector<tiers::ItemRef> items;
    std::vector<uv_buf_t> bufs;
  };
  // The `mn` that re-validates a connection idle for revalidate_idle_ms
  // before it carries requests again.
  class Validation : public Request {
   public:
    explicit Validation(ServerConnection* owner)
        : Request(RequestOp::kProbe, "mn\r\n"), owner_(owner) {}
    void OnReply(MetaReply& reply) override {
      owner_->validating_ = false;
      // On a failure the reset already moved the waiting requests to a
      // new connection.
      if (reply.kind != ReplyKind::kFailed) owner_->Flush();
    }

   private:
    ServerConnection* owner_;
  };

  void Connect() {
    sock_ = new Socket;
    sock_->owner = this;
    uv_tcp_init(loop_, &sock_->tcp);
    sock_->tcp.data = sock_;
    sock_->connect.data = sock_;
    connect_start_ns_ = uv_hrtime();
    ArmTimer();
    int rc = uv_tcp_connect(&sock_->connect, &sock_->tcp,
                            reinterpret_cast<const sockaddr*>(&server_.addr), OnConnect);
    if (rc != 0) {
      Bump(counters_->connect_failures);
      Reset(/*fail_unsent=*/true, uv_strerror(rc), Failure::kConnect);
    }
  }

  static void OnConnect(uv_connect_t* req, int status) {
    auto* sock = static_cast<Socket*>(req->data);
    ServerConnection* self = sock->owner;
    if (self == nullptr) return;  // reset meanwhile
    if (status != 0) {
      Bump(self->counters_->connect_failures);
      self->Reset(/*fail_unsent=*/true, uv_strerror(status), Failure::kConnect);
      return;
    }
    Bump(self->counters_->connects);
    self->connected_ = true;
    self->last_used_ns_ = uv_hrtime();
    self->health_->Connected();
    uv_tcp_nodelay(&sock->tcp, 1);
    SetKeepalive(&sock->tcp);
    uv_read_start(reinterpret_cast<uv_stream_t*>(&sock->tcp), OnAlloc, OnRead);
    self->Flush();
  }

  static void OnAlloc(uv_handle_t* h, size_t, uv_buf_t* buf) {
    ServerConnection* self = static_cast<Socket*>(h->data)->owner;
    if (self == nullptr) {
      *buf = uv_buf_init(nullptr, 0);
      return;
    }
    *buf = uv_buf_init(self->rbuf_.get(), kReadBufferSize);
  }

  static void OnRead(uv_stream_t* stream, ssize_t nread, const uv_buf_t* buf) {
    Socket* sock = static_cast<Socket*>(stream->data);
    ServerConnection* self = sock->owner;
    if (self == nullptr || nread == 0) return;
    if (nread < 0) {
      self->Reset(/*fail_unsent=*/false, nread == UV_EOF ? "closed by the server" : uv_strerror(static_cast<int>(nread)));
      return;
    }
    self->last_progress_ns_ = uv_hrtime();
    self->last_used_ns_ = self->last_progress_ns_;
    std::string_view data(buf->base, static_cast<size_t>(nread));
    while (!data.empty()) {
      if (self->sent_.empty()) {
        self->Reset(/*fail_unsent=*/false, "a reply nobody asked for");
        return;
      }
      Request* req = self->sent_.front();
      size_t used = 0;
      MetaReply reply;
      MetaReplyParser::Status st = self->parser_.Parse(data, &used, req, &reply);
      data.remove_prefix(used);
      if (st == MetaReplyParser::Status::kNeedMore) break;
      if (st == MetaReplyParser::Status::kBroken) {
        self->Reset(/*fail_unsent=*/false, "a reply strata cannot read");
        return;
      }
      if (req->until_mn_) {
        // A quiet command's own reply (if any), then the MN of its "mn".
        if (reply.kind != ReplyKind::kOk) {
          if (req->held_) {
            self->Reset(/*fail_unsent=*/false, "a reply strata cannot read");
            return;
          }
          req->held_ = true;
          req->held_reply_ = std::move(reply);
          continue;
        }
        if (req->held_) reply = std::move(req->held_reply_);
      }
      self->sent_.pop_front();
      self->counters_->Observe(uv_hrtime() - req->sent_ns_);
      self->health_->Replied();
      self->Complete(req, reply);
      // The callback may have reset or closed this connection.
      if (sock->owner != self) return;
    }
    if (self->sent_.empty() && self->unsent_.empty()) uv_timer_stop(self->timer_);
  }

  static void OnWrite(uv_write_t* req, int status) {
    auto* batch = static_cast<WriteBatch*>(req->data);
    Socket* sock = static_cast<Socket*>(req->handle->data);
    delete batch;
    if (status != 0 && status != UV_ECANCELED && sock->owner != nullptr) {
      sock->owner->Reset(/*fail_unsent=*/false, uv_strerror(status));
    }
  }

  static void OnTimer(uv_timer_t* timer) {
    auto* self = static_cast<ServerConnection*>(timer->data);
    const uint64_t now = uv_hrtime();
    if (self->sock_ != nullptr && !self->connected_) {
      if (now - self->connect_start_ns_ > uint64_t{self->timeouts_.connect_ms} * 1'000'000) {
        Bump(self->counters_->connect_failures);
        Bump(self->counters_->timeouts);
        self->Reset(/*fail_unsent=*/true, "connect timed out", Failure::kConnect);
      }
      return;
    }
    if (self->sent_.empty()) {
      if (self->unsent_.empty()) uv_timer_stop(timer);
      return;
    }
    // The oldest reply must make progress: a large value keeps arriving,
    // a stalled server sends nothing.
    const uint64_t since = std::max(self->last_progress_ns_, self->sent_.front()->sent_ns_);
    if (self->sent_.front() == &self->validation_) {
      // An idle connection that does not answer: not the server's fault
      // (yet); its requests go on a new connection.
      if (now - since > uint64_t{self->timeouts_.connect_ms} * 1'000'000) {
        self->Reset(/*fail_unsent=*/false, "an idle connection did not answer");
      }
      return;
    }
    if (now - since > uint64_t{self->timeouts_.request_ms} * 1'000'000) {
      Bump(self->counters_->timeouts);
      self->Reset(/*fail_unsent=*/false, "request timed out", Failure::kTimeout);
    }
  }

  void ArmTimer() {
    if (timer_ == nullptr || uv_is_active(reinterpret_cast<uv_handle_t*>(timer_))) return;
    const uint64_t tick = std::max<uint64_t>(
        5, std::min<uint32_t>(timeouts_.connect_ms, timeouts_.request_ms) / 4);
    uv_timer_start(timer_, OnTimer, tick, tick);
  }

  void Complete(Request* req, MetaReply& reply) {
    Bump(counters_->requests[static_cast<size_t>(req->op())]
                            [static_cast<size_t>(OutcomeOf(reply.kind))]);
    Bump(counters_->in_flight, -1);
    health_->Removed();
    req->OnReply(reply);
  }

  static void SetKeepalive(uv_tcp_t* tcp) {
    uv_tcp_keepalive(tcp, 1, kKeepaliveIdleS);
    uv_os_fd_t fd;
    if (uv_fileno(reinterpret_cast<uv_handle_t*>(tcp), &fd) == 0) {
      setsockopt(fd, IPPROTO_TCP, TCP_KEEPINTVL, &kKeepaliveIntervalS, sizeof(int));
      setsockopt(fd, IPPROTO_TCP, TCP_KEEPCNT, &kKeepaliveCount, sizeof(int));
    }
  }

  // What a reset tells the server's health.
  enum class Failure : uint8_t { kNone, kConnect, kTimeout };

  // Closes the socket; the requests sent on it fail, and so do the unsent
  // ones when `fail_unsent` (the server cannot be reached); otherwise they
  // go on a new connection. A connect failure or a timeout is counted
  // towards marking the server down, which fails what is left.
  void Reset(bool fail_unsent, const char* why, Failure failure = Failure::kNone) {
    if (sock_ != nullptr) {
      if (why != nullptr) {
        // A down server's failed probes are expected: not a warning.
        common::Log(health_->up() ? common::LogLevel::kWarn : common::LogLevel::kDebug,
                    "upstream %s: %s; %zu requests failed", server_.label.c_str(), why,
                    sent_.size() + (fail_unsent ? unsent_.size() : 0));
      }
      Bump(counters_->resets);
      sock_->owner = nullptr;
      uv_close(reinterpret_cast<uv_handle_t*>(&sock_->tcp),
               [](uv_handle_t* h) { delete static_cast<Socket*>(h->data); });
      sock_ = nullptr;
    }
    connected_ = false;
    parser_.Reset();
    std::deque<Request*> failed;
    failed.swap(sent_);
    if (fail_unsent) {
      for (Request* r : unsent_) failed.push_back(r);
      unsent_.clear();
    }
    // May mark the server down, which fails this connection's unsent
    // requests too (and the other connections').
    if (failure == Failure::kConnect) health_->ConnectFailed();
    if (failure == Failure::kTimeout) health_->TimedOut();
    for (Request* r : failed) {
      MetaReply reply;  // kFailed
      Complete(r, reply);
    }
    // Requests that were not sent go on a new connection (not after a
    // failed connect: those failed above, and new ones connect again at
    // the next Flush(); nor to a server that is not up).
    if (!closed_ && !fail_unsent && !unsent_.empty() && sock_ == nullptr) {
      if (health_->up()) {
        Connect();
      } else {
        Reset(/*fail_unsent=*/true, nullptr);
        return;
      }
    }
    if (timer_ != nullptr && sent_.empty() && unsent_.empty() && sock_ == nullptr) {
      uv_timer_stop(timer_);
    }
  }

  uv_loop_t* loop_;
  ResolvedServer server_;
  PoolTimeouts timeouts_;
  ServerHealth* health_;
  ServerCounters* counters_;
  std::unique_ptr<char[]> rbuf_;
  uv_timer_t* timer_;  // freed by its close callback
  Socket* sock_ = nullptr;
  bool connected_ = false;
  bool closed_ = false;
  uint64_t connect_start_ns_ = 0;
  uint64_t last_progress_ns_ = 0;  // the last reply bytes, or the first send after idle
  uint64_t last_used_ns_ = 0;      // the last write or reply bytes
  bool validating_ = false;        // validation_ is in flight; unsent_ waits for it
  Validation validation_{this};
  std::deque<Request*> unsent_;
  std::deque<Request*> sent_;
  MetaReplyParser parser_;
};

void ServerHealth::MarkDown(const std::string& why) {
  SetState(ServerState::kDown);
  Bump(counters_->marked_down);
  attempt_ = 0;
  const uint64_t delay = ProbeDelayMs(options_, attempt_, (*rng_)());
  common::Log(common::LogLevel::kWarn,
              "upstream %s: marked down (%s); its requests fail until a probe answers, "
              "the first in %llu ms",
              label_.c_str(), why.c_str(), static_cast<unsigned long long>(delay));
  if (!closed_) uv_timer_start(timer_, OnProbeTimer, delay, 0);
  for (ServerConnection* conn : conns_) conn->Fail();
}

void ServerHealth::OnProbeTimer(uv_timer_t* timer) {
  auto* self = static_cast<ServerHealth*>(timer->data);
  if (self->closed_ || self->conns_.empty()) return;
  self->SetState(ServerState::kProbing);
  // On the server's first connection, which stays open for its requests
  // once the probe has answered.
  self->conns_.front()->Enqueue(&self->probe_);
  self->conns_.front()->Flush();
}

struct Pool::Server {
  ResolvedServer resolved;
  bool leaving = false;
  std::shared_ptr<MemberCounters> counters;  // keeps `mine` alive
  ServerCounters* mine = nullptr;            // this worker's
  std::unique_ptr<ServerHealth> health;
  std::vector<std::unique_ptr<ServerConnection>> conns;

  void Close() {
    health->Close();
    for (auto& conn : conns) {
      conn->dirty = false;
      conn->Close();
    }
  }
};

Pool::Pool(uv_loop_t* loop, std::shared_ptr<const Membership> membership, size_t worker,
           uint32_t per_server, PoolTimeouts timeouts, PoolHealth health, uint64_t seed)
    : loop_(loop),
      worker_(worker),
      per_server_(std::max<uint32_t>(per_server, 1)),
      timeouts_(timeouts),
      health_options_(health),
      rng_(seed) {
  Apply(std::move(membership));
}

Pool::~Pool() = default;

void Pool::Apply(std::shared_ptr<const Membership> membership) {
  if (closing_ || membership == nullptr || membership.get() == membership_.get()) return;
  Flush();
  std::map<std::string, std::unique_ptr<Server>> old;
  for (auto& srv : servers_) {
    std::string label = srv->resolved.label;
    old.emplace(std::move(label), std::move(srv));
  }
  std::vector<std::unique_ptr<Server>> next;
  next.reserve(membership->members.size());
  for (const Member& m : membership->members) {
    auto it = old.find(m.resolved.label);
    if (it != old.end() && it->second->resolved.addr_len == m.resolved.addr_len &&
        std::memcmp(&it->second->resolved.addr, &m.resolved.addr, m.resolved.addr_len) == 0) {
      it->second->leaving = m.leaving;
      next.push_back(std::move(it->second));
      old.erase(it);
      continue;
    }
    auto srv = std::make_unique<Server>();
    srv->resolved = m.resolved;
    srv->leaving = m.leaving;
    srv->counters = m.counters;
    srv->mine = &m.counters->per_worker[worker_];
    srv->health = std::make_unique<ServerHealth>(loop_, m.resolved.label, health_options_,
                                                 srv->mine, &rng_);
    for (uint32_t c = 0; c < per_server_; ++c) {
      srv->conns.push_back(std::make_unique<ServerConnection>(loop_, m.resolved, timeouts_,
                                                              srv->health.get(), srv->mine));
      srv->health->AddConnection(srv->conns.back().get());
    }
    next.push_back(std::move(srv));
  }
  servers_ = std::move(next);
  membership_ = std::move(membership);
  // What the departed servers had queued or sent fails now; the callbacks
  // see the new membership.
  for (auto& [label, srv] : old) {
    srv->Close();
  }
}

ServerState Pool::state(size_t server) const {
  if (servers_[server]->leaving) return ServerState::kLeaving;
  return servers_[server]->health->state();
}

void Pool::Send(std::string_view key, uint64_t key_hash, Request* req) {
  if (closing_ || membership_->placement == nullptr) {
    if (closing_) {
      MetaReply reply;  // kFailed
      req->OnReply(reply);
      return;
    }
    rejected_.emplace_back(nullptr, req);
    return;
  }
  SendTo(membership_->placement->Pick(key), key_hash, req);
}

void Pool::SendTo(size_t server, uint64_t key_hash, Request* req) {
  if (closing_) {
    MetaReply reply;  // kFailed
    req->OnReply(reply);
    return;
  }
  Server& srv = *servers_[server];
  if (srv.leaving || !srv.health->up() || srv.health->full()) {
    rejected_.emplace_back(srv.mine, req);
    return;
  }
  ServerConnection* conn = srv.conns[key_hash % per_server_].get();
  conn->Enqueue(req);
  if (!conn->dirty) {
    conn->dirty = true;
    dirty_.push_back(conn);
  }
}

void Pool::Flush() {
  while (!dirty_.empty() || !rejected_.empty()) {
    // Refused requests fail first; their callbacks may queue more.
    std::vector<std::pair<ServerCounters*, Request*>> refused;
    refused.swap(rejected_);
    for (auto [counters, req] : refused) {
      if (counters != nullptr) {
        Bump(counters->requests[static_cast<size_t>(req->op())]
                               [static_cast<size_t>(RequestOutcome::kRejected)]);
      }
      MetaReply reply;  // kFailed
      req->OnReply(reply);
    }
    // A flush can complete requests (a failed connect), whose callbacks may
    // queue more.
    std::vector<ServerConnection*> now;
    now.swap(dirty_);
    for (ServerConnection* conn : now) {
      conn->dirty = false;
      conn->Flush();
    }
  }
}

void Pool::Close() {
  closing_ = true;
  dirty_.clear();
  std::vector<std::pair<ServerCounters*, Request*>> refused;
  refused.swap(rejected_);
  for (auto [counters, req] : refused) {
    MetaReply reply;  // kFailed
    req->OnReply(reply);
  }
  for (auto& srv : servers_) srv->Close();
}

}  // namespace strata::upstream
