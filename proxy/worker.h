// Worker: one thread, one libuv loop, its listeners and its connections.
//
// Each worker listens on the shared TCP port through its own SO_REUSEPORT
// socket (the kernel spreads connections across workers) and, when
// configured, accepts from the shared unix socket. Connections never move
// between workers. Stop() (from any thread) makes the worker stop accepting,
// drain its connections' owed replies and exit its loop, closing what is
// left after the drain timeout.
//
// Thread safety: Start/Join from the owning Server's thread; RequestStop()
// from any thread; everything else runs on the worker's own thread.
#pragma once

#include <uv.h>

#include <memory>
#include <string>
#include <thread>

#include "common/status.h"
#include "proxy/dispatch.h"
#include "proxy/server_context.h"
#include "proxy/worker_stats.h"
#include "tiers/block_device.h"

namespace strata::proxy {

class Connection;

class Worker {
 public:
  Worker(ServerContext& ctx, int index);
  ~Worker();
  Worker(const Worker&) = delete;
  Worker& operator=(const Worker&) = delete;

  // Sets up the loop and listeners on the caller's thread: `tcp_fd` is this
  // worker's own bound SO_REUSEPORT socket (adopted), `unix_fd` a shared
  // listening unix socket (duplicated) or -1.
  common::Status Init(int tcp_fd, int unix_fd);
  // Runs the loop on a new thread.
  void Start();
  void RequestStop();
  void Join();

  ServerContext& ctx() { return ctx_; }
  Dispatcher& dispatcher() { return dispatcher_; }
  WorkerStats& stats() { return stats_; }
  uv_loop_t* loop() { return &loop_; }
  // This worker's SSD I/O queue (null without an SSD tier). Requests queued
  // during a loop iteration are submitted together at its end; completions
  // run on this thread.
  tiers::IoQueue* io() { return io_.get(); }
  void Unlink(Connection* conn);
  // A closed connection waits for its SSD reads before it is deleted.
  void AddZombie() { ++zombies_; }
  void ZombieGone();
  // A read-ahead promotion (Connection::ReadAhead) about to be issued: the
  // returned completion belongs to the worker, which waits for it before
  // closing its I/O queue.
  tiers::SsdReadDone* BeginReadAhead() {
    ++zombies_;
    return &read_ahead_done_;
  }
  // The read-ahead begun was not needed (the key was not SSD-only).
  void CancelReadAhead() { --zombies_; }

 private:
  static void OnTcpConnection(uv_stream_t* server, int status);
  static void OnUnixConnection(uv_stream_t* server, int status);
  static void OnStop(uv_async_t* async);
  static void OnDrainTimeout(uv_timer_t* timer);
  static void OnMaintenance(uv_timer_t* timer);
  static void OnIoReadable(uv_poll_t* poll, int status, int events);
  static void OnLoopCheck(uv_check_t* check);
  void CloseIoHandles();
  void Accept(uv_stream_t* server, bool is_unix);
  void BeginStop();

  ServerContext& ctx_;
  int index_;
  WorkerStats stats_;
  Dispatcher dispatcher_;
  uv_loop_t loop_;
  uv_tcp_t tcp_listener_;
  uv_pipe_t unix_listener_;
  bool has_tcp_ = false;
  bool has_unix_ = false;
  std::string tcp_listen_addr_;
  uv_async_t stop_async_;
  uv_timer_t drain_timer_;
  uv_timer_t maintenance_timer_;
  std::unique_ptr<tiers::IoQueue> io_;
  uv_poll_t io_poll_;
  uv_check_t io_check_;
  bool io_handles_open_ = false;
  int zombies_ = 0;  // closed connections and read-aheads with reads in flight
  struct ReadAheadDone final : tiers::SsdReadDone {
    Worker* worker = nullptr;
    void OnSsdRead(tiers::ItemRef) override { worker->ZombieGone(); }
  };
  ReadAheadDone read_ahead_done_;
  bool stopping_ = false;
  Connection* conns_ = nullptr;  // intrusive list head
  std::thread thread_;
};

}  // namespace strata::proxy
