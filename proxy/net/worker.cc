#include "proxy/net/worker.h"

#include <fcntl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <string>
#include <utility>

#include "common/log.h"
#include "proxy/net/connection.h"

namespace strata::proxy {
namespace {
constexpr uint64_t kMaintenanceIntervalMs = 100;
constexpr size_t kReapItemsPerTick = 20'000;
constexpr unsigned kIoQueueDepth = 256;
// Connections accepted per readable event of a listener (fairness).
constexpr int kAcceptPerWakeup = 64;
// Out of descriptors: the listeners rest this long; connections wait in the
// backlog meanwhile.
constexpr uint64_t kAcceptRetryMs = 100;
// Sends per batch (bounds the iovec scratch: 1 KiB per send, 256 KiB).
constexpr size_t kNetChunk = 256;
// Connection memory: the tick, while connections wait or the pool is over
// the cap, and how long a connection must have moved no byte before it may
// be closed for holding too much (10 ticks: 500 ms).
constexpr uint64_t kMemoryTickMs = 50;
constexpr uint32_t kStallTicks = 10;
// A client whose queued replies pass server.max_output_buffer (a value
// larger than it, sent from the item) and that reads nothing for this long
// is cut off. Long enough for a client's pause (a GC, a busy thread).
constexpr uint64_t kOutputStallMs = 2000;
// At most one "at its cap" line per worker this often.
constexpr uint64_t kMemoryLogEveryMs = 10'000;

// "2.3 MiB" (or "512 KiB" below a MiB), for log lines.
std::string Approx(uint64_t bytes) {
  char buf[32];
  if (bytes < (1 << 20)) {
    std::snprintf(buf, sizeof(buf), "%llu KiB", static_cast<unsigned long long>(bytes >> 10));
  } else {
    std::snprintf(buf, sizeof(buf), "%.1f MiB", static_cast<double>(bytes) / (1 << 20));
  }
  return buf;
}

common::Status Listen(int fd, int backlog, const char* what) {
  int flags = fcntl(fd, F_GETFL);
  if (flags < 0 || fcntl(fd, F_SETFL, flags | O_NONBLOCK) < 0 || ::listen(fd, backlog) != 0) {
    return common::Status::IoError(std::string(what) + ": " + std::strerror(errno));
  }
  return common::Status::Ok();
}

}  // namespace

Worker::Worker(ServerContext& ctx, int index)
    : ctx_(ctx),
      index_(index),
      lease_(*ctx.conn_memory),
      dispatcher_(ctx, stats_),
      iovs_(new struct iovec[kNetChunk * Connection::kMaxIov]) {
  uv_loop_init(&loop_);
  read_ahead_done_.worker = this;
  if (ctx_.upstream != nullptr) {
    pool_ = std::make_unique<upstream::Pool>(&loop_, ctx_.upstream->membership->current(),
                                             static_cast<size_t>(index),
                                             ctx_.upstream->connections_per_server,
                                             ctx_.upstream->timeouts, ctx_.upstream->health,
                                             // the probes' jitter: differs by worker and start
                                             uv_hrtime() ^ (static_cast<uint64_t>(index) << 48));
    near_ = std::make_unique<NearCache>(*ctx_.upstream, *pool_, *ctx_.cache, *ctx_.clock, stats_);
  }
}

Worker::~Worker() {
  Join();
  UnregisterListeners();
  uv_loop_close(&loop_);
}

void Worker::RegisterListener(int fd, std::string addr, ConnInfo* info) {
  info->addr = std::move(addr);
  info->state.store(ConnState::kListening, std::memory_order_relaxed);
  info->last_cmd_unix.store(ctx_.clock->NowSeconds(), std::memory_order_relaxed);
  ctx_.conns.Add(fd, info);
  registered_listeners_.push_back(fd);
}

void Worker::UnregisterListeners() {
  // Before the descriptors close: another thread may reuse their numbers.
  for (int fd : registered_listeners_) ctx_.conns.Remove(fd);
  registered_listeners_.clear();
}

common::Status Worker::Init(int tcp_fd, int unix_fd) {
  uv_async_init(&loop_, &stop_async_, OnStop);
  stop_async_.data = this;
  uv_timer_init(&loop_, &drain_timer_);
  drain_timer_.data = this;
  uv_timer_init(&loop_, &maintenance_timer_);
  maintenance_timer_.data = this;
  uv_timer_init(&loop_, &memory_timer_);
  memory_timer_.data = this;
  {
    common::MutexLock lock(&memory_wake_mu_);
    uv_async_init(&loop_, &memory_wake_, OnMemoryWake);
    memory_wake_.data = this;
    if (pool_) {
      uv_async_init(&loop_, &membership_wake_, OnMembershipWake);
      membership_wake_.data = this;
    }
    memory_handles_open_ = true;
  }
  uv_timer_start(&maintenance_timer_, OnMaintenance, kMaintenanceIntervalMs,
                 kMaintenanceIntervalMs);
  std::string net_error;
  net_ = NetBatch::Create(ctx_.options.network_io, &net_error);
  if (net_ == nullptr) {
    return common::Status::Unavailable("server.network_io is io_uring, but " + net_error);
  }
  if (!net_error.empty() && index_ == 0) {
    common::Log(common::LogLevel::kWarn,
                "socket I/O: io_uring is unavailable (%s); using one system call per read "
                "and write",
                net_error.c_str());
  }
  uv_check_init(&loop_, &loop_check_);
  loop_check_.data = this;
  uv_check_start(&loop_check_, OnLoopCheck);
  uv_prepare_init(&loop_, &loop_prepare_);
  loop_prepare_.data = this;
  uv_prepare_start(&loop_prepare_, OnLoopPrepare);
  uv_idle_init(&loop_, &net_idle_);
  io_handles_open_ = true;
  if (ctx_.ssd_device != nullptr) {
    io_ = std::make_unique<ChargedIoQueue>(ctx_.ssd_device->NewQueue(kIoQueueDepth), lease_);
    uv_poll_init(&loop_, &io_poll_, io_->event_fd());
    io_poll_.data = this;
    uv_poll_start(&io_poll_, UV_READABLE, OnIoReadable);
  }
  if (ctx_.cache != nullptr && ctx_.cache->ssd() != nullptr) {
    ssd_log_ = ctx_.cache->ssd();
    uv_async_init(&loop_, &durable_async_, OnDurable);
    durable_async_.data = this;
    // Group commits are written from this loop when the log's writer is
    // idle (SsdLog::AddCommitListener): no thread hand-off on the way.
    commit_listener_ = ssd_log_->AddCommitListener([this] { uv_async_send(&durable_async_); },
                                                   /*inline_commits=*/true);
    uv_poll_init(&loop_, &commit_poll_, ssd_log_->commit_event_fd(commit_listener_));
    commit_poll_.data = this;
    uv_poll_start(&commit_poll_, UV_READABLE, OnCommitReadable);
  }
  uv_timer_init(&loop_, &accept_retry_timer_);
  accept_retry_timer_.data = this;
  if (tcp_fd >= 0) {
    tcp_fd_ = tcp_fd;
    has_tcp_ = true;
    if (auto st = Listen(tcp_fd_, ctx_.options.backlog, "listen"); !st.ok()) return st;
    uv_poll_init(&loop_, &tcp_poll_, tcp_fd_);
    tcp_poll_.data = this;
    tcp_listen_addr_ = "tcp:" + ctx_.options.listen + ":" + std::to_string(ctx_.bound_port);
    RegisterListener(tcp_fd_, tcp_listen_addr_, &tcp_listener_info_);
  }
  if (unix_fd >= 0) {
    unix_fd_ = dup(unix_fd);
    if (unix_fd_ < 0) {
      return common::Status::IoError(std::string("unix listen: ") + std::strerror(errno));
    }
    has_unix_ = true;
    if (auto st = Listen(unix_fd_, ctx_.options.backlog, "unix listen"); !st.ok()) return st;
    uv_poll_init(&loop_, &unix_poll_, unix_fd_);
    unix_poll_.data = this;
    RegisterListener(unix_fd_, "unix:" + ctx_.options.unix_socket, &unix_listener_info_);
  }
  StartListening(true);
  return common::Status::Ok();
}

void Worker::Start() {
  thread_ = std::thread([this] {
    // Large items' blocks are kept for the next ones (trimmed by
    // OnMaintenance()).
    tiers::Item::KeepSpareBlocks();
    uv_run(&loop_, UV_RUN_DEFAULT);
  });
}

void Worker::Join() {
  if (thread_.joinable()) thread_.join();
}

void Worker::RequestStop() { uv_async_send(&stop_async_); }

void Worker::WakeForMemory() {
  common::MutexLock lock(&memory_wake_mu_);
  if (memory_handles_open_) uv_async_send(&memory_wake_);
}

void Worker::WakeForMembership() {
  common::MutexLock lock(&memory_wake_mu_);
  if (memory_handles_open_ && pool_) uv_async_send(&membership_wake_);
}

void Worker::OnMembershipWake(uv_async_t* async) {
  auto* self = static_cast<Worker*>(async->data);
  if (self->pool_ && !self->stopping_) {
    self->pool_->Apply(self->ctx_.upstream->membership->current());
  }
}

void Worker::OnStop(uv_async_t* async) { static_cast<Worker*>(async->data)->BeginStop(); }

void Worker::BeginStop() {
  if (stopping_) return;
  stopping_ = true;
  // uv_close stops a poll at once, so the descriptors can go now.
  UnregisterListeners();
  if (has_tcp_) {
    uv_close(reinterpret_cast<uv_handle_t*>(&tcp_poll_), nullptr);
    ::close(tcp_fd_);
  }
  if (has_unix_) {
    uv_close(reinterpret_cast<uv_handle_t*>(&unix_poll_), nullptr);
    ::close(unix_fd_);
  }
  uv_timer_stop(&accept_retry_timer_);
  uv_close(reinterpret_cast<uv_handle_t*>(&accept_retry_timer_), nullptr);
  uv_timer_stop(&maintenance_timer_);
  uv_close(reinterpret_cast<uv_handle_t*>(&maintenance_timer_), nullptr);
  uv_close(reinterpret_cast<uv_handle_t*>(&stop_async_), nullptr);
  {
    // Connections still draining let their waiters go from RunNet().
    common::MutexLock lock(&memory_wake_mu_);
    memory_handles_open_ = false;
    uv_close(reinterpret_cast<uv_handle_t*>(&memory_wake_), nullptr);
    if (pool_) uv_close(reinterpret_cast<uv_handle_t*>(&membership_wake_), nullptr);
  }
  uv_timer_stop(&memory_timer_);
  uv_close(reinterpret_cast<uv_handle_t*>(&memory_timer_), nullptr);
  memory_tick_on_ = false;
  // Finish owed replies; whatever is still open at the deadline is closed.
  for (Connection* c = conns_; c != nullptr;) {
    Connection* next = c->next;
    c->Drain();
    c = next;
  }
  if (conns_ != nullptr) {
    uv_timer_start(&drain_timer_, OnDrainTimeout, ctx_.options.drain_timeout_ms, 0);
    uv_unref(reinterpret_cast<uv_handle_t*>(&drain_timer_));
  } else {
    uv_close(reinterpret_cast<uv_handle_t*>(&drain_timer_), nullptr);
    CloseIoHandles();
  }
}

void Worker::OnDrainTimeout(uv_timer_t* timer) {
  auto* self = static_cast<Worker*>(timer->data);
  int open = 0;
  for (Connection* c = self->conns_; c != nullptr;) {
    Connection* next = c->next;
    c->Close();
    ++open;
    c = next;
  }
  if (open > 0) {
    common::Log(common::LogLevel::kWarn, "drain timeout: closed %d connections with replies owed",
                open);
  }
  uv_close(reinterpret_cast<uv_handle_t*>(&self->drain_timer_), nullptr);
}

void Worker::OnMaintenance(uv_timer_t* timer) {
  auto* self = static_cast<Worker*>(timer->data);
  // Spare item blocks this worker did not reuse for 100-200 ms go back.
  tiers::Item::TrimSpareBlocks();
  if (self->index_ != 0) return;
  tiers::RamTier& tier = *self->ctx_.tier;
  // The reaper is memcached's LRU crawler here (`lru_crawler disable`).
  if (self->ctx_.lru_crawler.load(std::memory_order_relaxed)) {
    tier.ReapExpired(kReapItemsPerTick);
  } else {
    tier.RunDueFlush();
  }
}

void Worker::OnIoReadable(uv_poll_t* poll, int, int) {
  auto* self = static_cast<Worker*>(poll->data);
  self->io_->Reap();
  // Values that landed in waiting get batches count from now on (their
  // read buffers stopped counting as the reads completed).
  for (Connection* c : self->io_waiters_) c->UpdateHeld();
}

void Worker::OnCommitReadable(uv_poll_t* poll, int, int) {
  auto* self = static_cast<Worker*>(poll->data);
  self->ssd_log_->ReapCommits(self->commit_listener_);
}

void Worker::OnLoopCheck(uv_check_t* check) {
  auto* self = static_cast<Worker*>(check->data);
  self->RunNet();
  // Every upstream request this iteration queued: one write per server.
  if (self->pool_) self->pool_->Flush();
  // One group commit for every reply this iteration holds back.
  if (self->durable_wanted_ > self->durable_requested_) {
    self->durable_requested_ = self->durable_wanted_;
    self->ssd_log_->RequestCommit(self->durable_wanted_, self->commit_listener_);
  }
  // Everything this iteration queued for the SSD goes in one submission.
  if (self->io_) self->io_->Submit();
}

void Worker::OnLoopPrepare(uv_prepare_t* prepare) {
  auto* self = static_cast<Worker*>(prepare->data);
  // Replies (and receives) left for the next batch must not wait for a
  // socket to become ready: with the idle handle active, the poll that
  // follows does not block.
  const bool pending = !self->recv_ready_.empty() || !self->send_ready_.empty();
  if (pending != self->idle_active_) {
    self->idle_active_ = pending;
    if (pending) {
      uv_idle_start(&self->net_idle_, [](uv_idle_t*) {});
    } else {
      uv_idle_stop(&self->net_idle_);
    }
  }
  if (self->io_) self->io_->Submit();
}

bool Worker::Durable(uint64_t ticket) const {
  return ssd_log_ == nullptr || ssd_log_->Durable(ticket);
}

void Worker::WaitDurable(Connection* conn, uint64_t ticket) {
  if (!conn->durable_waiting) {
    conn->durable_waiting = true;
    durable_waiters_.push_back(conn);
  }
  durable_wanted_ = std::max(durable_wanted_, ticket);
}

void Worker::OnDurable(uv_async_t* async) {
  auto* self = static_cast<Worker*>(async->data);
  std::vector<Connection*> ready;
  ready.swap(self->durable_waiters_);
  for (Connection* conn : ready) conn->durable_waiting = false;
  // Each sends, or waits again for a later ticket.
  for (Connection* conn : ready) conn->OnDurable();
}

std::unique_ptr<char[]> Worker::TakeReadBuffer() {
  if (read_buffers_.empty()) {
    // Not value-initialized: only the pages a receive writes become resident.
    return std::unique_ptr<char[]>(new char[kReadBufferSize]);
  }
  std::unique_ptr<char[]> buf = std::move(read_buffers_.back());
  read_buffers_.pop_back();
  return buf;
}

void Worker::ReturnReadBuffer(std::unique_ptr<char[]> buf) {
  if (read_buffers_.size() < kSpareReadBuffers) read_buffers_.push_back(std::move(buf));
}

void Worker::QueueRecv(Connection* conn) {
  if (conn->recv_queued) return;
  conn->recv_queued = true;
  recv_ready_.push_back(conn);
}

void Worker::QueueSend(Connection* conn) {
  if (conn->send_queued) return;
  conn->send_queued = true;
  send_ready_.push_back(conn);
}

void Worker::ForgetBatches(Connection* conn) {
  if (conn->memory_waiting) {
    std::erase(memory_waiters_, conn);
    conn->memory_waiting = false;
  }
  if (conn->io_waiting) RemoveIoWaiter(conn);
  if (conn->recv_queued) {
    std::erase(recv_ready_, conn);
    conn->recv_queued = false;
  }
  if (conn->send_queued) {
    std::erase(send_ready_, conn);
    conn->send_queued = false;
  }
  if (conn->durable_waiting) {
    std::erase(durable_waiters_, conn);
    conn->durable_waiting = false;
  }
}

void Worker::RunNet() {
  if (recv_ready_.empty() && send_ready_.empty()) return;
  ops_.clear();
  // The replies queued since the last batch (at most kNetChunk connections;
  // the rest wait for the next), then the receives of the sockets the poll
  // reported, in one NetBatch. A socket in both sends before it receives.
  const size_t sends = std::min(send_ready_.size(), kNetChunk);
  // Each send takes at most kMaxIov iovecs, so `used` stays below
  // sends * kMaxIov.
  size_t used = 0;
  for (size_t i = 0; i < sends; ++i) {
    Connection* conn = send_ready_[i];
    conn->send_queued = false;
    NetOp op;
    if (conn->PrepareSend(&op, &iovs_[used])) {
      used += op.msg.msg_iovlen;
      ops_.push_back(op);
    }
  }
  send_ready_.erase(send_ready_.begin(), send_ready_.begin() + static_cast<std::ptrdiff_t>(sends));
  const size_t first_recv = ops_.size();
  batch_conns_.swap(recv_ready_);
  for (Connection* conn : batch_conns_) {
    conn->recv_queued = false;
    NetOp op;
    if (conn->PrepareRecv(&op)) ops_.push_back(op);
  }
  batch_conns_.clear();
  net_->Run(ops_.data(), ops_.size());
  // Replies and receives queued while these run go to the next batch.
  for (size_t i = 0; i < first_recv; ++i) static_cast<Connection*>(ops_[i].owner)->OnSend(ops_[i]);
  for (size_t i = first_recv; i < ops_.size(); ++i) {
    static_cast<Connection*>(ops_[i].owner)->OnRecv(ops_[i]);
  }
  // Sends may have made room for the connections waiting for memory.
  if (!memory_waiters_.empty() && !lease_.Over()) ResumeMemoryWaiters();
  if (!net_->failure().empty() && !net_failure_logged_) {
    net_failure_logged_ = true;
    common::Log(common::LogLevel::kError, "socket I/O: %s; using plain system calls from now on",
                net_->failure().c_str());
  }
}

void Worker::CloseIoHandles() {
  if (!io_handles_open_) return;
  io_handles_open_ = false;
  // Requests still in flight (closed connections' gets) fail now.
  if (pool_) pool_->Close();
  if (io_) {
    uv_poll_stop(&io_poll_);
    uv_close(reinterpret_cast<uv_handle_t*>(&io_poll_), nullptr);
  }
  uv_check_stop(&loop_check_);
  uv_close(reinterpret_cast<uv_handle_t*>(&loop_check_), nullptr);
  uv_prepare_stop(&loop_prepare_);
  uv_close(reinterpret_cast<uv_handle_t*>(&loop_prepare_), nullptr);
  uv_idle_stop(&net_idle_);
  uv_close(reinterpret_cast<uv_handle_t*>(&net_idle_), nullptr);
  if (ssd_log_ != nullptr) {
    uv_poll_stop(&commit_poll_);
    uv_close(reinterpret_cast<uv_handle_t*>(&commit_poll_), nullptr);
    ssd_log_->RemoveCommitListener(commit_listener_);  // waits for its commit in flight
    uv_close(reinterpret_cast<uv_handle_t*>(&durable_async_), nullptr);
  }
}

void Worker::OnListenerReadable(uv_poll_t* poll, int status, int) {
  auto* self = static_cast<Worker*>(poll->data);
  if (status < 0 || self->stopping_) return;
  const bool is_unix = poll == &self->unix_poll_;
  self->AcceptAll(is_unix ? self->unix_fd_ : self->tcp_fd_, is_unix);
}

void Worker::OnAcceptRetry(uv_timer_t* timer) {
  auto* self = static_cast<Worker*>(timer->data);
  if (!self->stopping_) self->StartListening(true);
}

void Worker::StartListening(bool on) {
  for (auto [has, poll] : {std::pair{has_tcp_, &tcp_poll_}, std::pair{has_unix_, &unix_poll_}}) {
    if (!has) continue;
    if (on) {
      uv_poll_start(poll, UV_READABLE, OnListenerReadable);
    } else {
      uv_poll_stop(poll);
    }
  }
}

void Worker::AcceptAll(int listen_fd, bool is_unix) {
  for (int i = 0; i < kAcceptPerWakeup; ++i) {
    int fd = accept4(listen_fd, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0) {
      const int err = errno;
      if (err == EINTR || err == ECONNABORTED || err == EPROTO) continue;
      // Nothing waiting (or another worker took it from the shared unix socket).
      if (err == EAGAIN || err == EWOULDBLOCK) return;
      common::Log(common::LogLevel::kWarn, "accept: %s; accepting again in %llu ms",
                  std::strerror(err), static_cast<unsigned long long>(kAcceptRetryMs));
      StartListening(false);
      uv_timer_start(&accept_retry_timer_, OnAcceptRetry, kAcceptRetryMs, 0);
      return;
    }
    auto* conn =
        new Connection(*this, is_unix ? Connection::Kind::kUnix : Connection::Kind::kTcp, fd);
    conn->next = conns_;
    if (conns_ != nullptr) conns_->prev = conn;
    conns_ = conn;
    if (ctx_.curr_connections.load(std::memory_order_relaxed) >= ctx_.options.max_connections) {
      conn->Reject();
      continue;
    }
    conn->Start(is_unix ? "unix:" + ctx_.options.unix_socket : tcp_listen_addr_);
  }
}

void Worker::Unlink(Connection* conn) {
  if (conn->prev != nullptr) conn->prev->next = conn->next;
  if (conn->next != nullptr) conn->next->prev = conn->prev;
  if (conns_ == conn) conns_ = conn->next;
  conn->prev = conn->next = nullptr;
  if (stopping_ && conns_ == nullptr) {
    if (!uv_is_closing(reinterpret_cast<uv_handle_t*>(&drain_timer_))) {
      uv_timer_stop(&drain_timer_);
      uv_close(reinterpret_cast<uv_handle_t*>(&drain_timer_), nullptr);
    }
    // Closed connections wait for their SSD reads before they go.
    if (zombies_ == 0) CloseIoHandles();
  }
}

void Worker::WaitForMemory(Connection* conn) {
  if (conn->memory_waiting) return;
  conn->memory_waiting = true;
  memory_waiters_.push_back(conn);
  StartMemoryTick();
}

void Worker::AddIoWaiter(Connection* conn) {
  if (conn->io_waiting) return;
  conn->io_waiting = true;
  io_waiters_.push_back(conn);
}

void Worker::RemoveIoWaiter(Connection* conn) {
  if (!conn->io_waiting) return;
  conn->io_waiting = false;
  std::erase(io_waiters_, conn);
}

void Worker::OnMemoryWake(uv_async_t* async) {
  auto* self = static_cast<Worker*>(async->data);
  if (self->lease_.Over()) self->StartMemoryTick();
}

void Worker::OnMemoryTick(uv_timer_t* timer) { static_cast<Worker*>(timer->data)->MemoryTick(); }

void Worker::StartMemoryTick() {
  if (!MemoryHandlesOpenOnLoop() || memory_tick_on_) return;
  memory_tick_on_ = true;
  for (Connection* c = conns_; c != nullptr; c = c->next) c->StartStallClock();
  uv_timer_start(&memory_timer_, OnMemoryTick, kMemoryTickMs, kMemoryTickMs);
  const ConnectionMemory& pool = lease_.pool();
  const uint64_t now = uv_now(&loop_);
  if (pool.over() && (memory_logged_ms_ == 0 || now - memory_logged_ms_ >= kMemoryLogEveryMs)) {
    memory_logged_ms_ = now;
    common::Log(common::LogLevel::kWarn,
                "connection memory is at its cap (%s of %s, server.max_connection_memory): "
                "connections that need more stop reading until there is room",
                Approx(pool.charged()).c_str(), Approx(pool.limit()).c_str());
  }
}

void Worker::MemoryTick() {
  for (Connection* c = conns_; c != nullptr; c = c->next) c->NoteTick();
  if (over_output_cap_ > 0) CloseStalledOutput();
  if (lease_.Over()) CloseMemoryHogs();
  if (!lease_.Over()) ResumeMemoryWaiters();
  if (memory_waiters_.empty() && !lease_.Over() && over_output_cap_ == 0) {
    uv_timer_stop(&memory_timer_);
    memory_tick_on_ = false;
  }
}

void Worker::ResumeMemoryWaiters() {
  std::vector<Connection*> waiting;
  waiting.swap(memory_waiters_);
  size_t i = 0;
  for (; i < waiting.size() && !lease_.Over(); ++i) {
    Connection* c = waiting[i];
    c->memory_waiting = false;
    c->ResumeAfterMemory();  // may wait again (at the back)
  }
  // The rest keep their place, ahead of those that waited again.
  memory_waiters_.insert(memory_waiters_.begin(), waiting.begin() + static_cast<std::ptrdiff_t>(i),
                         waiting.end());
}

size_t Worker::CloseMemoryHogs() {
  const ConnectionMemory& pool = lease_.pool();
  const uint64_t share = pool.ShareOf(ctx_.curr_connections.load(std::memory_order_relaxed));
  std::vector<Connection*> hogs;
  for (Connection* c = conns_; c != nullptr; c = c->next) {
    if (c->held() > share && c->stalled_ticks() >= kStallTicks) hogs.push_back(c);
  }
  std::sort(hogs.begin(), hogs.end(),
            [](const Connection* a, const Connection* b) { return a->held() > b->held(); });
  size_t closed = 0;
  uint64_t freed = 0;
  std::string largest;
  uint64_t largest_held = 0;
  for (Connection* c : hogs) {
    if (!lease_.Over()) break;
    if (closed == 0) {
      largest = c->addr();
      largest_held = c->held();
    }
    freed += c->held();
    c->Close();  // gives back its charge at once
    stats_.Add(Counter::kConnMemoryClosed);
    ++closed;
  }
  if (closed > 0) {
    common::Log(common::LogLevel::kWarn,
                "connection memory over its cap (server.max_connection_memory %s): closed %zu "
                "connection(s) holding %s, each more than its share (%s) and without a byte "
                "read or sent for %llu ms; the largest, %s, held %s",
                Approx(pool.limit()).c_str(), closed, Approx(freed).c_str(), Approx(share).c_str(),
                static_cast<unsigned long long>(kStallTicks * kMemoryTickMs),
                largest.empty() ? "?" : largest.c_str(), Approx(largest_held).c_str());
  }
  return closed;
}

void Worker::NoteOverOutputCap(int delta) {
  over_output_cap_ = static_cast<uint32_t>(static_cast<int>(over_output_cap_) + delta);
  if (delta > 0) StartMemoryTick();
}

void Worker::CloseStalledOutput() {
  std::vector<Connection*> stalled;
  for (Connection* c = conns_; c != nullptr; c = c->next) {
    if (c->over_output_cap() && c->stalled_ticks() * kMemoryTickMs >= kOutputStallMs) {
      stalled.push_back(c);
    }
  }
  for (Connection* c : stalled) {
    common::Log(common::LogLevel::kWarn,
                "closing %s: %s of replies queued, over the cap (server.max_output_buffer %s), "
                "and the client read nothing for %llu ms",
                c->addr().c_str(), Approx(c->queued_bytes()).c_str(),
                Approx(ctx_.options.max_output_buffer).c_str(),
                static_cast<unsigned long long>(kOutputStallMs));
    c->Close();
  }
}

void Worker::ZombieGone() {
  --zombies_;
  if (stopping_ && conns_ == nullptr && zombies_ == 0) CloseIoHandles();
}

}  // namespace strata::proxy
