#include "proxy/upstream/pool.h"

#include <uv.h>

#include <algorithm>
#include <utility>

#include "common/log.h"

namespace strata::upstream {
namespace {

constexpr size_t kReadBufferSize = 64 * 1024;

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
    case RequestOutcome::kCount: break;
  }
  return "other";
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

// One server's connection in one worker: requests queued (unsent_), then
// written and waiting for their replies in order (sent_).
class ServerConnection {
 public:
  ServerConnection(uv_loop_t* loop, const ResolvedServer& server, PoolTimeouts timeouts,
                   ServerCounters* counters)
      : loop_(loop),
        server_(server),
        timeouts_(timeouts),
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
    unsent_.push_back(req);
  }

  void Flush() {
    if (closed_ || unsent_.empty()) return;
    if (sock_ == nullptr) {
      Connect();
      return;
    }
    if (!connected_) return;  // OnConnect() flushes
    auto* batch = new WriteBatch;
    batch->req.data = batch;
    // The text first (it must not move once buffers point into it), then
    // the buffers: heads and "\r\n" from the text, values from their items.
    struct Piece {
      size_t off, len;
      const tiers::Item* item;
    };
    std::vector<Piece> pieces;
    const uint64_t now = uv_hrtime();
    for (Request* req : unsent_) {
      pieces.push_back({batch->text.size(), req->head_.size(), nullptr});
      batch->text += req->head_;
      if (req->body_) {
        pieces.push_back({0, req->body_->value_len, req->body_.get()});
        pieces.push_back({batch->text.size(), 2, nullptr});
        batch->text += "\r\n";
        batch->items.push_back(std::move(req->body_));
      }
      req->sent_ns_ = now;
      sent_.push_back(req);
    }
    unsent_.clear();
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
      Reset(/*fail_unsent=*/true, uv_strerror(rc));
    }
  }

  static void OnConnect(uv_connect_t* req, int status) {
    auto* sock = static_cast<Socket*>(req->data);
    ServerConnection* self = sock->owner;
    if (self == nullptr) return;  // reset meanwhile
    if (status != 0) {
      Bump(self->counters_->connect_failures);
      self->Reset(/*fail_unsent=*/true, uv_strerror(status));
      return;
    }
    Bump(self->counters_->connects);
    self->connected_ = true;
    uv_tcp_nodelay(&sock->tcp, 1);
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
      self->sent_.pop_front();
      self->counters_->Observe(uv_hrtime() - req->sent_ns_);
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
        self->Reset(/*fail_unsent=*/true, "connect timed out");
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
    if (now - since > uint64_t{self->timeouts_.request_ms} * 1'000'000) {
      Bump(self->counters_->timeouts);
      self->Reset(/*fail_unsent=*/false, "request timed out");
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
    req->OnReply(reply);
  }

  // Closes the socket; the requests sent on it fail, and so do the unsent
  // ones when `fail_unsent` (the server cannot be reached); otherwise they
  // go on a new connection.
  void Reset(bool fail_unsent, const char* why) {
    if (sock_ != nullptr) {
      if (why != nullptr) {
        common::Log(common::LogLevel::kWarn, "upstream %s: %s; %zu requests failed",
                    server_.label.c_str(), why, sent_.size() + (fail_unsent ? unsent_.size() : 0));
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
    for (Request* r : failed) {
      MetaReply reply;  // kFailed
      Complete(r, reply);
    }
    // Requests that were not sent go on a new connection (not after a
    // failed connect: those failed above, and new ones connect again at
    // the next Flush()).
    if (!closed_ && !fail_unsent && !unsent_.empty() && sock_ == nullptr) Connect();
    if (timer_ != nullptr && sent_.empty() && unsent_.empty() && sock_ == nullptr) {
      uv_timer_stop(timer_);
    }
  }

  uv_loop_t* loop_;
  ResolvedServer server_;
  PoolTimeouts timeouts_;
  ServerCounters* counters_;
  std::unique_ptr<char[]> rbuf_;
  uv_timer_t* timer_;  // freed by its close callback
  Socket* sock_ = nullptr;
  bool connected_ = false;
  bool closed_ = false;
  uint64_t connect_start_ns_ = 0;
  uint64_t last_progress_ns_ = 0;  // the last reply bytes, or the first send after idle
  std::deque<Request*> unsent_;
  std::deque<Request*> sent_;
  MetaReplyParser parser_;
};

Pool::Pool(uv_loop_t* loop, const std::vector<ResolvedServer>& servers, uint32_t per_server,
           PoolTimeouts timeouts, ServerCounters* counters)
    : servers_(servers.size()), per_server_(std::max<uint32_t>(per_server, 1)) {
  conns_.reserve(servers_ * per_server_);
  for (size_t i = 0; i < servers_; ++i) {
    for (uint32_t c = 0; c < per_server_; ++c) {
      conns_.push_back(
          std::make_unique<ServerConnection>(loop, servers[i], timeouts, &counters[i]));
    }
  }
}

Pool::~Pool() = default;

void Pool::Send(size_t server, uint64_t key_hash, Request* req) {
  if (closing_) {
    MetaReply reply;  // kFailed
    req->OnReply(reply);
    return;
  }
  ServerConnection* conn = conns_[server * per_server_ + key_hash % per_server_].get();
  conn->Enqueue(req);
  if (!conn->dirty) {
    conn->dirty = true;
    dirty_.push_back(conn);
  }
}

void Pool::Flush() {
  while (!dirty_.empty()) {
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
  for (auto& conn : conns_) {
    conn->dirty = false;
    conn->Close();
  }
}

}  // namespace strata::upstream
