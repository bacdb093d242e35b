// NetBatch: the socket receives and sends of one loop iteration, made in one
// system call.
//
// Each worker gathers, per loop iteration, the connections with replies to
// send and those whose sockets are readable, and hands them to Run() as one
// batch of operations (Worker::RunNet). With io_uring, the whole batch is one
// io_uring_enter(): the ring is used as a way to make many non-blocking
// recv/sendmsg calls at the price of one system call (on the virtual
// machines this runs on, a system call costs about 1 us, as much as the
// rest of a small request). Every operation carries MSG_DONTWAIT, so the
// kernel completes it inline, with the bytes it could move or -EAGAIN, and
// never keeps a buffer after Run() returns. Without io_uring (a container's
// seccomp profile denies it, or `server.network_io: syscalls`), Run() makes
// the same calls one by one.
//
// Invariant: after Run() returns, every operation has its result (bytes moved
// or -errno) and the kernel holds no reference to any buffer of the batch. If
// the ring itself fails, the operations not yet reaped fail with -EIO and
// later batches use plain calls.
//
// Thread safety: none; a NetBatch belongs to one worker thread.
#pragma once

#include <liburing.h>
#include <sys/socket.h>
#include <sys/uio.h>

#include <cstddef>
#include <memory>
#include <string>

#include "proxy/shared/network_io_mode.h"

namespace strata::proxy {

struct NetOp {
  enum class Kind : uint8_t { kRecv, kSend };
  Kind kind = Kind::kRecv;
  int fd = -1;
  // kRecv: one buffer. kSend: msg.msg_iov / msg_iovlen.
  void* buf = nullptr;
  size_t len = 0;
  struct msghdr msg {};
  void* owner = nullptr;  // the caller's, untouched
  ssize_t result = 0;     // bytes moved or -errno, set by Run()
};

class NetBatch {
 public:
  using Mode = NetworkIoMode;

  // kAuto and kIoUring try io_uring; kAuto falls back to system calls when it
  // cannot be set up, kIoUring reports why in *error and returns nullptr.
  static std::unique_ptr<NetBatch> Create(Mode mode, std::string* error);
  ~NetBatch();
  NetBatch(const NetBatch&) = delete;
  NetBatch& operator=(const NetBatch&) = delete;

  // Performs every operation of ops[0..n) and fills in its result.
  void Run(NetOp* ops, size_t n);

  bool uses_io_uring() const { return ring_ok_; }
  // Why the ring was abandoned mid-run, or empty.
  const std::string& failure() const { return failure_; }
  // io_uring_enter() calls made, for the tests and the benchmark notes.
  uint64_t submits() const { return submits_; }

 private:
  NetBatch() = default;
  void RunSyscalls(NetOp* ops, size_t n);

  struct io_uring ring_ {};
  bool ring_ok_ = false;
  std::string failure_;
  uint64_t submits_ = 0;
};

}  // namespace strata::proxy
