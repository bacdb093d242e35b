// ConnectionMemory: the process-wide cap on the bytes client connections
// hold (server.max_connection_memory): read buffers, the data block of a
// store being received, queued replies (text and the values they
// reference), the values of an SSD batch waiting to be queued, and the
// buffers of SSD reads in flight.
//
// Each worker takes a Lease and charges it with what its connections hold,
// as it changes. A lease reserves bytes from the shared pool in chunks
// (ConnectionMemory::chunk()), so the common case (a connection's buffers
// growing and shrinking by a few KiB) touches no shared cache line; the
// pool's total is the sum of the reservations, which is at least what the
// connections hold and at most that plus 2 chunks per lease.
//
// Enforcement is the caller's (Connection, Worker): before a step that
// makes a connection hold more (a receive into a new or bigger buffer, a
// command), it asks WouldExceed(); past the limit it stops reading from
// the connection until the pool has room again, and a worker closes its
// connections that have held the most beyond their share (limit /
// connections) without making progress. What can pass the limit is one
// step per worker (at most one value of max_item_size, since a multi-get
// and an SSD batch check the limit between keys) and what LZ4 adds when an
// SSD read in flight (charged at its size on the device) is decoded.
//
// Invariant: charged() == sum over leases of their reservation, and each
// lease's reservation >= what it was charged (never negative).
//
// Thread safety: ConnectionMemory's methods may be called from any thread;
// a Lease belongs to one thread (its worker's), except that its
// destructor may run on whichever thread destroys the worker.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <vector>

#include "tiers/ssd/block_device.h"

namespace strata::proxy {

class ConnectionMemory {
 public:
  // `limit` in bytes (> 0).
  explicit ConnectionMemory(uint64_t limit);
  ConnectionMemory(const ConnectionMemory&) = delete;
  ConnectionMemory& operator=(const ConnectionMemory&) = delete;

  uint64_t limit() const { return limit_; }
  // Bytes reserved by all leases (>= what connections hold).
  uint64_t charged() const { return charged_.load(std::memory_order_relaxed); }
  // The reservation granule: limit / 64, between 4 KiB and 256 KiB.
  uint64_t chunk() const { return chunk_; }
  bool over() const { return charged() > limit_; }
  // The fair share of each of `connections` connections: limit / connections.
  uint64_t ShareOf(uint64_t connections) const {
    return connections == 0 ? limit_ : limit_ / connections;
  }
  // `fn` is called (on the thread that made it happen, with no lock held)
  // each time the pool's total goes from at most the limit to above it; it
  // must be thread-safe and quick (the server wakes every worker with it).
  // Set it before any lease is charged.
  void set_on_over(std::function<void()> fn) { on_over_ = std::move(fn); }

  // A worker's part of the pool.
  class Lease {
   public:
    explicit Lease(ConnectionMemory& pool) : pool_(pool) {}
    // Gives the reservation back.
    ~Lease();
    Lease(const Lease&) = delete;
    Lease& operator=(const Lease&) = delete;

    // Adds `delta` bytes (negative: released) to what this worker's
    // connections hold. Requires used() + delta >= 0.
    void Charge(int64_t delta);
    // True if holding `more` bytes beyond used() would pass the limit,
    // counting the other leases' reservations and this lease's exact use.
    bool WouldExceed(uint64_t more) const {
      const uint64_t others = pool_.charged() - reserved_;
      return others + used_ + more > pool_.limit_;
    }
    bool Over() const { return WouldExceed(0); }
    uint64_t used() const { return used_; }
    uint64_t reserved() const { return reserved_; }
    ConnectionMemory& pool() const { return pool_; }

   private:
    ConnectionMemory& pool_;
    uint64_t used_ = 0;
    uint64_t reserved_ = 0;
  };

 private:
  void Reserve(uint64_t bytes);
  void Release(uint64_t bytes) { charged_.fetch_sub(bytes, std::memory_order_relaxed); }

  const uint64_t limit_;
  const uint64_t chunk_;
  std::atomic<uint64_t> charged_{0};
  std::function<void()> on_over_;
};

// An IoQueue that charges a lease with the buffers of the reads queued on
// it (their length) until each completes: the SSD reads a worker's
// connections wait for count against the cap from the moment they are
// issued. Writes pass through uncharged. Everything else is `inner`'s.
//
// Thread safety: as IoQueue (one thread: the lease's).
class ChargedIoQueue final : public tiers::IoQueue {
 public:
  ChargedIoQueue(std::unique_ptr<tiers::IoQueue> inner, ConnectionMemory::Lease& lease)
      : inner_(std::move(inner)), lease_(lease) {}
  ~ChargedIoQueue() override;

  void Read(uint64_t offset, void* buf, size_t len, tiers::IoCompletion* done) override;
  void Write(uint64_t offset, const void* buf, size_t len, tiers::IoCompletion* done) override {
    inner_->Write(offset, buf, len, done);
  }
  void Submit() override { inner_->Submit(); }
  size_t Reap() override { return inner_->Reap(); }
  int event_fd() const override { return inner_->event_fd(); }
  size_t in_flight() const override { return inner_->in_flight(); }
  // Bytes of reads queued or in flight.
  uint64_t read_bytes() const { return read_bytes_; }

 private:
  struct Tracked final : tiers::IoCompletion {
    ChargedIoQueue* queue = nullptr;
    tiers::IoCompletion* done = nullptr;
    size_t len = 0;
    void OnIoComplete(int64_t result) override;
  };

  std::unique_ptr<tiers::IoQueue> inner_;
  ConnectionMemory::Lease& lease_;
  uint64_t read_bytes_ = 0;
  std::vector<std::unique_ptr<Tracked>> owned_;  // every completion made
  std::vector<Tracked*> spare_;                  // those not in use
};

// The default of server.max_connection_memory for a RAM tier of
// `ram_bytes`: an eighth of it, at least 32 MiB and at most 1 GiB.
uint64_t DefaultConnectionMemory(uint64_t ram_bytes);

}  // namespace strata::proxy
