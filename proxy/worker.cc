#include "proxy/worker.h"


#include <unistd.h>

#include "common/log.h"
#include "proxy/connection.h"

namespace strata::proxy {
namespace {
constexpr uint64_t kMaintenanceIntervalMs = 100;
constexpr size_t kReapItemsPerTick = 20'000;
constexpr unsigned kIoQueueDepth = 256;

}  // namespace

Worker::Worker(ServerContext& ctx, int index)
    : ctx_(ctx), index_(index), dispatcher_(ctx, stats_) {
  uv_loop_init(&loop_);
  read_ahead_done_.worker = this;
}

Worker::~Worker() {
  Join();
  uv_loop_close(&loop_);
}

common::Status Worker::Init(int tcp_fd, int unix_fd) {
  uv_async_init(&loop_, &stop_async_, OnStop);
  stop_async_.data = this;
  uv_timer_init(&loop_, &drain_timer_);
  drain_timer_.data = this;
  uv_timer_init(&loop_, &maintenance_timer_);
  maintenance_timer_.data = this;
  if (index_ == 0) {
    uv_timer_start(&maintenance_timer_, OnMaintenance, kMaintenanceIntervalMs,
                   kMaintenanceIntervalMs);
  }
  if (ctx_.ssd_device != nullptr) {
    io_ = ctx_.ssd_device->NewQueue(kIoQueueDepth);
    uv_poll_init(&loop_, &io_poll_, io_->event_fd());
    io_poll_.data = this;
    uv_poll_start(&io_poll_, UV_READABLE, OnIoReadable);
    uv_check_init(&loop_, &io_check_);
    io_check_.data = this;
    uv_check_start(&io_check_, OnLoopCheck);
    io_handles_open_ = true;
  }
  if (tcp_fd >= 0) {
    uv_tcp_init(&loop_, &tcp_listener_);
    tcp_listener_.data = this;
    has_tcp_ = true;
    int rc = uv_tcp_open(&tcp_listener_, tcp_fd);
    if (rc == 0) rc = uv_listen(reinterpret_cast<uv_stream_t*>(&tcp_listener_),
                                ctx_.options.backlog, OnTcpConnection);
    if (rc != 0) return common::Status::IoError(std::string("listen: ") + uv_strerror(rc));
    tcp_listen_addr_ = "tcp:" + ctx_.options.listen + ":" + std::to_string(ctx_.bound_port);
  }
  if (unix_fd >= 0) {
    uv_pipe_init(&loop_, &unix_listener_, 0);
    unix_listener_.data = this;
    has_unix_ = true;
    int fd = dup(unix_fd);
    int rc = fd < 0 ? UV_EBADF : uv_pipe_open(&unix_listener_, fd);
    if (rc == 0) rc = uv_listen(reinterpret_cast<uv_stream_t*>(&unix_listener_),
                                ctx_.options.backlog, OnUnixConnection);
    if (rc != 0) return common::Status::IoError(std::string("unix listen: ") + uv_strerror(rc));
  }
  return common::Status::Ok();
}

void Worker::Start() {
  thread_ = std::thread([this] { uv_run(&loop_, UV_RUN_DEFAULT); });
}

void Worker::Join() {
  if (thread_.joinable()) thread_.join();
}

void Worker::RequestStop() { uv_async_send(&stop_async_); }

void Worker::OnStop(uv_async_t* async) { static_cast<Worker*>(async->data)->BeginStop(); }

void Worker::BeginStop() {
  if (stopping_) return;
  stopping_ = true;
  if (has_tcp_) uv_close(reinterpret_cast<uv_handle_t*>(&tcp_listener_), nullptr);
  if (has_unix_) uv_close(reinterpret_cast<uv_handle_t*>(&unix_listener_), nullptr);
  uv_timer_stop(&maintenance_timer_);
  uv_close(reinterpret_cast<uv_handle_t*>(&maintenance_timer_), nullptr);
  uv_close(reinterpret_cast<uv_handle_t*>(&stop_async_), nullptr);
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
  tiers::RamTier& tier = *self->ctx_.tier;
  tier.ReapExpired(kReapItemsPerTick);
}

void Worker::OnIoReadable(uv_poll_t* poll, int, int) {
  auto* self = static_cast<Worker*>(poll->data);
  self->io_->Reap();
}

void Worker::OnLoopCheck(uv_check_t* check) {
  // Everything this iteration queued goes to the kernel in one submission.
  static_cast<Worker*>(check->data)->io_->Submit();
}

void Worker::CloseIoHandles() {
  if (!io_handles_open_) return;
  io_handles_open_ = false;
  uv_poll_stop(&io_poll_);
  uv_close(reinterpret_cast<uv_handle_t*>(&io_poll_), nullptr);
  uv_check_stop(&io_check_);
  uv_close(reinterpret_cast<uv_handle_t*>(&io_check_), nullptr);
}

void Worker::OnTcpConnection(uv_stream_t* server, int status) {
  if (status < 0) return;
  static_cast<Worker*>(server->data)->Accept(server, false);
}

void Worker::OnUnixConnection(uv_stream_t* server, int status) {
  if (status < 0) return;
  static_cast<Worker*>(server->data)->Accept(server, true);
}

void Worker::Accept(uv_stream_t* server, bool is_unix) {
  auto* conn = new Connection(*this, is_unix ? Connection::Kind::kUnix : Connection::Kind::kTcp);
  conn->next = conns_;
  if (conns_ != nullptr) conns_->prev = conn;
  conns_ = conn;
  if (uv_accept(server, conn->stream()) != 0) {
    // Another worker took it (shared unix socket) or the peer left.
    conn->Close();
    return;
  }
  if (stopping_) {
    conn->Close();
    return;
  }
  if (ctx_.curr_connections.load(std::memory_order_relaxed) >= ctx_.options.max_connections) {
    conn->Reject();
    return;
  }
  conn->Start(is_unix ? "unix:" + ctx_.options.unix_socket : tcp_listen_addr_);
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

void Worker::ZombieGone() {
  --zombies_;
  if (stopping_ && conns_ == nullptr && zombies_ == 0) CloseIoHandles();
}

}  // namespace strata::proxy
