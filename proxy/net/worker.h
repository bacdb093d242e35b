// Worker: one thread, one libuv loop, its listeners and its connections.
//
// Each worker listens on the shared TCP port through its own SO_REUSEPORT
// socket (the kernel spreads connections across workers) and, when
// configured, accepts from the shared unix socket. Connections never move
// between workers.
//
// Socket I/O is batched per loop iteration: the poll phase only notes which
// connections are readable (QueueRecv); running commands notes which have
// replies (QueueSend). The check phase runs RunNet(): one NetBatch that sends
// the replies queued since the last batch and receives from the readable
// sockets, then the commands those bytes hold, whose replies wait for the
// next batch; then the SSD queue's submission. While replies wait, the
// prepare phase keeps an idle handle active, so the next poll does not block
// and the next batch comes at once. So a loop iteration that serves k
// pipeline-1 clients makes 2 system calls (epoll_wait and io_uring_enter),
// not 2k + 1. Stop() (from any thread) makes the worker stop accepting,
// drain its connections' owed replies and exit its loop, closing what is
// left after the drain timeout.
//
// Connection memory: the worker's connections charge its Lease of the
// process-wide cap (connection_memory.h); SSD reads in flight on its queue
// are charged too (ChargedIoQueue). A connection that would pass the cap
// waits on the worker's list; the worker lets the waiting ones go on when
// the cap has room again (after each socket batch, and on a 50 ms tick
// that runs while any wait or the pool is over the cap). On that tick,
// while the pool is over the cap, it closes its connections that hold
// more than their share (limit / connections) and have moved no byte for
// 500 ms, the most beyond their share first, until the pool is under the
// cap, and logs one line; `stats` counts both (connection_memory_stalls,
// connection_memory_closed).
//
// Thread safety: Start/Join from the owning Server's thread; RequestStop()
// from any thread; everything else runs on the worker's own thread.
#pragma once

#include <uv.h>

#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "common/mutex.h"
#include "common/status.h"
#include "proxy/exec/dispatch.h"
#include "proxy/net/net_batch.h"
#include "proxy/shared/connection_memory.h"
#include "proxy/shared/server_context.h"
#include "proxy/shared/worker_stats.h"
#include "tiers/ssd/block_device.h"

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
  // listening unix socket (duplicated) or -1. Fails if the socket I/O mode
  // asked for (ServerOptions::network_io) cannot be had.
  common::Status Init(int tcp_fd, int unix_fd);
  // Runs the loop on a new thread.
  void Start();
  void RequestStop();
  void Join();
  // The pool went over the cap: look at this worker's connections (from
  // any thread).
  void WakeForMemory() EXCLUDES(memory_wake_mu_);
  // The upstream membership changed: apply the new snapshot to this
  // worker's pool (from any thread).
  void WakeForMembership() EXCLUDES(memory_wake_mu_);

  ServerContext& ctx() { return ctx_; }
  Dispatcher& dispatcher() { return dispatcher_; }
  WorkerStats& stats() { return stats_; }
  uv_loop_t* loop() { return &loop_; }
  // This worker's SSD I/O queue (null without an SSD tier). Requests queued
  // during a loop iteration are submitted together at its end; completions
  // run on this thread.
  tiers::IoQueue* io() { return io_.get(); }
  // This worker's near cache over the upstream pool (null without one).
  NearCache* near_cache() { return near_.get(); }
  // Connections' read buffers: taken when a receive needs one, given back
  // when every byte has been used, so idle connections hold none (the pool
  // keeps at most kSpareReadBuffers). 1 KiB holds a pipeline of 16 small
  // gets, and four busy connections' buffers share a page; a connection
  // that needs more doubles its own (Connection).
  static constexpr size_t kReadBufferSize = 1024;
  static constexpr size_t kSpareReadBuffers = 64;
  std::unique_ptr<char[]> TakeReadBuffer();
  void ReturnReadBuffer(std::unique_ptr<char[]> buf);
  // Connections' reply text blocks, shared the same way (OutputQueue).
  std::vector<std::string>* text_blocks() { return &text_blocks_; }
  // Whether socket batches go through io_uring (else plain system calls).
  bool net_uses_io_uring() const { return net_ && net_->uses_io_uring(); }
  // A connection's socket is readable / it has replies to send: it joins
  // the current iteration's batch (RunNet).
  void QueueRecv(Connection* conn);
  void QueueSend(Connection* conn);
  // A closing connection leaves the batch lists.
  void ForgetBatches(Connection* conn);
  void Unlink(Connection* conn);
  // This worker's share of the connection memory cap.
  ConnectionMemory::Lease& memory() { return lease_; }
  // `conn` holds back until the cap has room (ResumeAfterMemory()).
  void WaitForMemory(Connection* conn);
  // `conn` waits for SSD reads; its held bytes are re-counted as they land.
  void AddIoWaiter(Connection* conn);
  void RemoveIoWaiter(Connection* conn);
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
  // Durability of acknowledged writes (SsdLog::AckTicket): true if `ticket`
  // is on the device; else WaitDurable() parks the connection until it is.
  // The tickets a loop iteration collects are committed together, in one
  // device write (RequestCommit at the iteration's end).
  bool Durable(uint64_t ticket) const;
  void WaitDurable(Connection* conn, uint64_t ticket);
  // A connection's queued replies went over server.max_output_buffer (+1)
  // or back under it, or it closed (-1). While any is over, the worker's
  // tick closes those whose client has read nothing for kOutputStallMs.
  void NoteOverOutputCap(int delta);
  // One value per worker, the first of one connection's queued replies, is
  // sent without being charged to connection memory (the chart's memory
  // formula counts one such value and one step past the cap per worker):
  // true if `conn` has it (it keeps it until it releases it).
  bool ClaimStream(Connection* conn) {
    if (streaming_ == nullptr) streaming_ = conn;
    return streaming_ == conn;
  }
  void ReleaseStream(Connection* conn) {
    if (streaming_ == conn) streaming_ = nullptr;
  }

 private:
  static void OnListenerReadable(uv_poll_t* poll, int status, int events);
  static void OnAcceptRetry(uv_timer_t* timer);
  static void OnStop(uv_async_t* async);
  static void OnDrainTimeout(uv_timer_t* timer);
  static void OnMaintenance(uv_timer_t* timer);
  static void OnIoReadable(uv_poll_t* poll, int status, int events);
  static void OnCommitReadable(uv_poll_t* poll, int status, int events);
  static void OnLoopCheck(uv_check_t* check);
  static void OnLoopPrepare(uv_prepare_t* prepare);
  static void OnDurable(uv_async_t* async);
  static void OnMemoryTick(uv_timer_t* timer);
  static void OnMemoryWake(uv_async_t* async);
  static void OnMembershipWake(uv_async_t* async);
  void RunNet();
  // Starts the memory tick if it is not running.
  void StartMemoryTick();
  // memory_handles_open_, read on the loop thread, which is the only thread
  // that changes it once the loop runs. The analysis cannot see which
  // thread runs, hence NO_THREAD_SAFETY_ANALYSIS.
  bool MemoryHandlesOpenOnLoop() const NO_THREAD_SAFETY_ANALYSIS { return memory_handles_open_; }
  void MemoryTick();
  // Lets the waiting connections go on while the cap has room.
  void ResumeMemoryWaiters();
  // Closes stalled connections that hold the most beyond their share until
  // the pool is under the cap; returns how many.
  size_t CloseMemoryHogs();
  // Closes the connections over server.max_output_buffer whose client has
  // read nothing for kOutputStallMs.
  void CloseStalledOutput();
  void CloseIoHandles();
  // Accepts what `listen_fd` has waiting (bounded per call).
  void AcceptAll(int listen_fd, bool is_unix);
  // Lists a listener in ctx_.conns, and takes the listeners off it.
  void RegisterListener(int fd, std::string addr, ConnInfo* info);
  void UnregisterListeners();
  void StartListening(bool on);
  void BeginStop();

  ServerContext& ctx_;
  int index_;
  WorkerStats stats_;
  ConnectionMemory::Lease lease_;  // before io_, which charges it
  Dispatcher dispatcher_;
  uv_loop_t loop_;
  uv_poll_t tcp_poll_;
  uv_poll_t unix_poll_;
  int tcp_fd_ = -1;
  int unix_fd_ = -1;
  bool has_tcp_ = false;
  bool has_unix_ = false;
  uv_timer_t accept_retry_timer_;  // out of descriptors: accept again later
  std::string tcp_listen_addr_;
  // The listeners' lines in `stats conns` (memcached lists its listeners).
  ConnInfo tcp_listener_info_;
  ConnInfo unix_listener_info_;
  std::vector<int> registered_listeners_;
  uv_async_t stop_async_;
  uv_timer_t drain_timer_;
  uv_timer_t maintenance_timer_;
  std::unique_ptr<ChargedIoQueue> io_;
  // The upstream pool's connections and the near cache over them (with
  // ServerContext::upstream); closed by CloseIoHandles().
  std::unique_ptr<upstream::Pool> pool_;
  std::unique_ptr<NearCache> near_;
  uv_poll_t io_poll_;
  uv_check_t loop_check_;
  uv_prepare_t loop_prepare_;
  uv_idle_t net_idle_;  // active while a batch is pending: the poll must not block
  bool idle_active_ = false;
  bool io_handles_open_ = false;
  std::unique_ptr<NetBatch> net_;
  std::vector<Connection*> recv_ready_;
  std::vector<Connection*> send_ready_;
  std::vector<Connection*> batch_conns_;  // scratch for RunNet
  std::vector<NetOp> ops_;
  // The sends' iovecs, packed one after another (kNetChunk * kMaxIov
  // entries, allocated once and never cleared, so only the pages a batch
  // has used are resident).
  std::unique_ptr<struct iovec[]> iovs_;
  std::vector<std::unique_ptr<char[]>> read_buffers_;
  std::vector<std::string> text_blocks_;
  bool net_failure_logged_ = false;
  int zombies_ = 0;  // closed connections and read-aheads with reads in flight
  struct ReadAheadDone final : tiers::SsdReadDone {
    Worker* worker = nullptr;
    void OnSsdRead(tiers::ItemRef) override { worker->ZombieGone(); }
  };
  ReadAheadDone read_ahead_done_;
  bool stopping_ = false;
  tiers::SsdLog* ssd_log_ = nullptr;  // null without an SSD tier
  uv_async_t durable_async_;          // the log's writer: a commit is done
  int commit_listener_ = -1;
  uv_poll_t commit_poll_;  // the listener's inline commits (SsdLog::ReapCommits)
  std::vector<Connection*> durable_waiters_;
  uint64_t durable_wanted_ = 0;     // the largest ticket a connection waits for
  uint64_t durable_requested_ = 0;  // the largest one asked of the log
  Connection* conns_ = nullptr;  // intrusive list head
  std::vector<Connection*> memory_waiters_;  // in the order they began to wait
  std::vector<Connection*> io_waiters_;
  uv_timer_t memory_timer_;
  uv_async_t memory_wake_;
  uv_async_t membership_wake_;  // with a pool: opened and closed with memory_wake_
  // memory_wake_ and membership_wake_ are sent from other threads; a leaf.
  common::Mutex memory_wake_mu_;
  // Written under memory_wake_mu_ by Start() (before the loop runs) and on
  // the loop thread; read under it by other threads, and without it on the
  // loop thread (MemoryHandlesOpenOnLoop()).
  bool memory_handles_open_ GUARDED_BY(memory_wake_mu_) = false;
  bool memory_tick_on_ = false;
  uint32_t over_output_cap_ = 0;  // connections over server.max_output_buffer
  Connection* streaming_ = nullptr;  // ClaimStream()
  uint64_t memory_logged_ms_ = 0;  // uv_now() of the last "at its cap" line
  std::thread thread_;
};

}  // namespace strata::proxy
