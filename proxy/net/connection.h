// Connection: one client socket (TCP or unix) on one worker's loop.
//
// It reads into a buffer, parses as many commands as the bytes hold, runs
// them, and writes all their replies together, in request order. The socket
// is watched with a uv_poll_t; the reads and writes themselves are made by
// the worker in batches (Worker::RunNet, NetBatch): when the socket is
// readable the worker receives into PrepareRecv()'s buffer and calls
// OnRecv(); replies queued by Flush() leave in the worker's next send batch
// (PrepareSend()/OnSend()). A write the socket could not take whole waits for
// the socket to become writable. A storage command's data block is read
// straight into the new item; large blocks are received by the socket
// directly into the item's memory. Back-pressure: when queued replies pass
// the high watermark the connection stops reading and stops running commands
// (a multi-get pauses between keys) until the client has read them; past the
// hard cap (max_output_buffer) it is closed.
//
// Durability: replies of writes whose invalidation is not yet on the SSD
// (AsyncState::ack_ticket) are held, with everything queued after them,
// until the worker's group commit makes it durable (Worker::WaitDurable).
//
// Connection memory: what the connection holds (its read buffer, the item
// of a store whose data block is arriving, its queued replies with the
// values they reference, the values of an SSD batch waiting to be queued)
// is charged to the worker's lease of the process-wide cap
// (connection_memory.h) as it changes. Before a step that would hold more
// (a receive into a new or bigger buffer, a command, the next key of a
// get) past the cap, the connection stops reading and running commands
// and waits on the worker's list until there is room again; the worker may
// close it if it holds the most beyond its share without progress.
//
// Long lines: memcached reads into a 16 KiB buffer and closes a connection
// whose buffer holds more than 2048 bytes without a newline after a read
// (unless it is a get/gets line). A connection here reads a command line
// 16 KiB at most at a time too, and applies the 2048-byte limit only once a
// receive no longer fills its buffer (or finds nothing more), so a line that
// arrives whole is parsed as memcached parses it.
//
// Request latency (when ServerOptions::measure_latency): each read batch is
// timed once, from the read to the queueing of its replies, and every
// command finished in it is counted in the worker's histograms with that
// duration (metrics::LatencyBatch); get-family commands are labelled with the
// tier that served them.
//
// Thread safety: none; a connection lives and dies on its worker's thread.
#pragma once

#include <uv.h>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "metrics/latency.h"
#include "proxy/exec/dispatch.h"
#include "proxy/net/net_batch.h"
#include "proxy/protocol/output_queue.h"
#include "proxy/protocol/protocol.h"
#include "proxy/shared/server_context.h"

namespace strata::proxy {

class Worker;

class Connection final : public IoWaiter {
 public:
  enum class Kind { kTcp, kUnix };

  // Most iovecs one send takes.
  static constexpr size_t kMaxIov = 64;

  // Takes ownership of `fd`, an accepted non-blocking socket.
  Connection(Worker& worker, Kind kind, int fd);
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;

  // Starts serving the socket.
  void Start(const std::string& listen_addr);
  // Refuses an accepted socket: sends memcached's "too many connections"
  // error and closes.
  void Reject();
  // Stops reading; closes once the replies already owed are written.
  void Drain();
  // Closes now.
  void Close();

  // A command's SSD reads are done: resume it, then the pipeline.
  void OnIoDone() override;
  // The SSD log position the queued replies wait for is durable.
  void OnDurable();
  // Charges what it holds now; true if that leaves the cap passed (a get
  // then stops between keys).
  bool MemoryFull(const AsyncState& state) override;

  // A referenced value at least this large may be the worker's streaming
  // value (Worker::ClaimStream), not charged to connection memory.
  static constexpr size_t kStreamMinBytes = size_t{1} << 20;
  // Connection memory (the worker's side). held(): bytes charged now.
  uint64_t held() const { return held_; }
  // Re-charges what it holds (after SSD reads landed in its batch).
  void UpdateHeld();
  // The worker found room again: runs what was held back, reads again.
  void ResumeAfterMemory();
  // Progress for the worker's stall check: NoteTick() counts a tick in
  // which no byte was received or sent; StartStallClock() forgets them.
  void NoteTick() {
    stalled_ticks_ = progress_ == progress_seen_ ? stalled_ticks_ + 1 : 0;
    progress_seen_ = progress_;
  }
  void StartStallClock() {
    stalled_ticks_ = 0;
    progress_seen_ = progress_;
  }
  uint32_t stalled_ticks() const { return stalled_ticks_; }
  // Its queued replies pass server.max_output_buffer (by the values they
  // send from items' memory; text past it closes the connection at once).
  bool over_output_cap() const { return over_output_cap_; }
  size_t queued_bytes() const { return out_.bytes(); }
  const std::string& addr() const { return info_.addr; }

  // The worker's batches. PrepareRecv/PrepareSend fill `op` and return true
  // if the connection has something to do (`iov` has room for kMaxIov
  // entries and must live until OnSend); OnRecv/OnSend take the result.
  bool PrepareRecv(NetOp* op);
  void OnRecv(const NetOp& op);
  bool PrepareSend(NetOp* op, struct iovec* iov);
  void OnSend(const NetOp& op);

  // Set while the connection is in one of the worker's batch lists.
  bool recv_queued = false;
  bool send_queued = false;
  bool durable_waiting = false;
  // Set while it is on the worker's list of connections waiting for
  // connection memory / waiting for SSD reads (Worker::WaitForMemory,
  // Worker::AddIoWaiter).
  bool memory_waiting = false;
  bool io_waiting = false;

  // Intrusive list of the worker's connections.
  Connection* prev = nullptr;
  Connection* next = nullptr;

 private:
  static void OnPoll(uv_poll_t* poll, int status, int events);
  static void OnClose(uv_handle_t* handle);

  // Watches the socket for what the connection now waits for: readable
  // while reading_, writable while want_writable_.
  void UpdatePoll();
  // Arms poll_ for exactly `events` (UV_READABLE, UV_WRITABLE).
  void ApplyPoll(int events);
  void PrepareReadBuffer(char** buf, size_t* len);
  void MaybeReleaseReadBuffer();
  void ProcessInput();
  void FinishDataBlock();
  void Flush();
  void Pause();
  void MaybeResume();
  // Tells `stats conns` (ConnInfo::state) what the connection waits for.
  void PublishState();
  // Applies server.max_output_buffer to the queued replies (see the .cc);
  // false if it closed the connection.
  bool CheckOutputCap();
  // Stops reading and running commands until OnIoDone(), after ReadAhead().
  void WaitForIo();
  // While a command waits for the SSD tier, the get-family commands already
  // buffered behind it start the promotions of their SSD-only keys, so their
  // device reads overlap with this one's (a pipeline of gets keeps many
  // reads in flight, not one). Scans at most kReadAheadKeys keys of complete
  // commands, never the same bytes twice; stops at any command other than
  // get-family, storage (its data block is skipped), delete, incr, decr and
  // touch.
  void ReadAhead();
  // Bytes it holds now (see the class comment).
  uint64_t HeldNow() const;
  // Read-buffer bytes the next receive must allocate (0 when it reads into
  // room it has, or straight into a store's item).
  size_t ReadBufferGrowth() const;
  // Charges what it holds; if holding `more` beyond that would pass the
  // cap, stops reading and waits on the worker's list (true).
  bool MemoryGate(uint64_t more);
  // Latency: opens/closes a batch (they nest), and counts a finished command
  // that began at `start_ns`; `ram_hits_before` is the worker's RAM-hit
  // count when it began (a get-family command that moved it hit in RAM).
  void BeginBatch();
  void EndBatch();
  // `ssd_hits_before`: the worker's SSD-hit count when the command started,
  // for commands that waited for the SSD tier (UINT64_MAX otherwise).
  void CountCommand(CommandType type, uint64_t start_ns, uint64_t ram_hits_before,
                    uint64_t ssd_hits_before = UINT64_MAX);
  uv_handle_t* handle() { return reinterpret_cast<uv_handle_t*>(&poll_); }

  Worker& worker_;
  ServerContext& ctx_;
  Dispatcher& dispatcher_;
  WorkerStats& stats_;
  Kind kind_;
  uv_poll_t poll_;
  int poll_events_ = 0;  // what poll_ watches now
  int fd_ = -1;
  bool registered_ = false;
  ConnInfo info_;

  // Read buffer: taken from the worker's pool (Worker::TakeReadBuffer) when
  // a receive needs it, given back once every byte in it has been used and
  // no command points into it, so an idle connection holds none.
  std::unique_ptr<char[]> rbuf_;
  size_t rbuf_size_ = 0;
  size_t rstart_ = 0;
  size_t rend_ = 0;
  size_t read_ahead_to_ = 0;  // rbuf_ offset up to which ReadAhead() has looked
  bool direct_read_ = false;   // the pending read lands in store_.item
  // The last receive filled its buffer: more of the bytes that arrived
  // together may still be in the socket (see ProcessInput's line limit).
  bool read_incomplete_ = false;

  OutputQueue out_;
  Command cmd_;
  bool get_in_progress_ = false;
  PendingStore store_;
  bool reading_data_ = false;
  AsyncState async_;
  // Gets fetched ahead from the upstream pool (with one), shared with the
  // fetches in flight so that they outlive a closed connection harmlessly.
  std::shared_ptr<Prefetches> prefetches_;
  bool waiting_io_ = false;  // a command waits for SSD reads
  bool zombie_ = false;      // closed while reads were in flight

  bool write_in_flight_ = false;  // between PrepareSend and OnSend
  bool want_writable_ = false;    // the socket took part of a write
  size_t inflight_bytes_ = 0;
  bool reading_ = false;  // wants readable events
  bool paused_ = false;
  bool draining_ = false;
  bool close_after_flush_ = false;
  bool closing_ = false;

  uint64_t held_ = 0;           // bytes charged to the worker's lease
  uint32_t progress_ = 0;       // receives and sends that moved bytes
  uint32_t progress_seen_ = 0;  // progress_ at the worker's last tick
  uint32_t stalled_ticks_ = 0;  // ticks in a row without progress
  bool over_output_cap_ = false;  // counted in Worker::NoteOverOutputCap()

  const bool measure_latency_;
  metrics::LatencyBatch batch_;
  uint64_t pending_start_ns_ = 0;  // a store or paused get that spans batches
  uint64_t pending_ram_hits_ = 0;
  uint64_t pending_ssd_hits_ = UINT64_MAX;
};

}  // namespace strata::proxy
