#include "proxy/net/net_batch.h"

#include <cerrno>
#include <cstring>

namespace strata::proxy {
namespace {
// Operations per io_uring_enter(); a larger batch takes several.
constexpr unsigned kRingEntries = 256;
constexpr int kSendFlags = MSG_DONTWAIT | MSG_NOSIGNAL;
constexpr int kRecvFlags = MSG_DONTWAIT;
}  // namespace

std::unique_ptr<NetBatch> NetBatch::Create(Mode mode, std::string* error) {
  std::unique_ptr<NetBatch> batch(new NetBatch());
  if (mode == Mode::kSyscalls) return batch;
  int rc = io_uring_queue_init(kRingEntries, &batch->ring_, 0);
  if (rc < 0) {
    if (error != nullptr) *error = std::string("io_uring_queue_init: ") + std::strerror(-rc);
    if (mode == Mode::kIoUring) return nullptr;
    return batch;
  }
  batch->ring_ok_ = true;
  return batch;
}

NetBatch::~NetBatch() {
  if (ring_ok_ || !failure_.empty()) io_uring_queue_exit(&ring_);
}

void NetBatch::RunSyscalls(NetOp* ops, size_t n) {
  for (size_t i = 0; i < n; ++i) {
    NetOp& op = ops[i];
    ssize_t r;
    do {
      if (op.kind == NetOp::Kind::kRecv) {
        r = ::recv(op.fd, op.buf, op.len, kRecvFlags);
      } else if (op.msg.msg_iovlen == 1) {
        r = ::send(op.fd, op.msg.msg_iov[0].iov_base, op.msg.msg_iov[0].iov_len, kSendFlags);
      } else {
        r = ::sendmsg(op.fd, &op.msg, kSendFlags);
      }
    } while (r < 0 && errno == EINTR);
    op.result = r < 0 ? -errno : r;
  }
}

void NetBatch::Run(NetOp* ops, size_t n) {
  if (!ring_ok_) {
    RunSyscalls(ops, n);
    return;
  }
  size_t done = 0;
  while (done < n) {
    // Queue as many as the ring takes.
    unsigned queued = 0;
    while (done + queued < n) {
      struct io_uring_sqe* sqe = io_uring_get_sqe(&ring_);
      if (sqe == nullptr) break;
      NetOp& op = ops[done + queued];
      if (op.kind == NetOp::Kind::kRecv) {
        io_uring_prep_recv(sqe, op.fd, op.buf, op.len, kRecvFlags);
      } else if (op.msg.msg_iovlen == 1) {
        // One piece (the usual batch of small replies): plain send is the
        // cheaper operation.
        io_uring_prep_send(sqe, op.fd, op.msg.msg_iov[0].iov_base, op.msg.msg_iov[0].iov_len,
                           kSendFlags);
      } else {
        io_uring_prep_sendmsg(sqe, op.fd, &op.msg, kSendFlags);
      }
      io_uring_sqe_set_data64(sqe, done + queued);
      op.result = -EIO;  // unless its completion says otherwise
      ++queued;
    }
    // MSG_DONTWAIT: each operation completes during the submission, so its
    // completion is there when io_uring_submit() returns. Any that is not
    // (whatever the kernel decides) is waited for below, so that no buffer is
    // left with the kernel.
    int rc;
    do {
      rc = io_uring_submit(&ring_);
      ++submits_;
    } while (rc == -EINTR);
    unsigned seen = 0;
    while (rc >= 0 && seen < queued) {
      struct io_uring_cqe* cqe = nullptr;
      rc = io_uring_peek_cqe(&ring_, &cqe);
      if (rc == -EAGAIN) {
        do {
          rc = io_uring_wait_cqe(&ring_, &cqe);
        } while (rc == -EINTR);
      }
      if (rc < 0) break;
      ops[io_uring_cqe_get_data64(cqe)].result = cqe->res;
      io_uring_cqe_seen(&ring_, cqe);
      ++seen;
    }
    if (rc < 0) {
      // The ring itself failed (short of a kernel bug it does not). Whether
      // the operations not reaped ran is unknown, so they fail with EIO (their
      // connections close; no byte is sent twice), and the ring is abandoned:
      // later batches use plain calls.
      ring_ok_ = false;
      failure_ = std::string("io_uring: ") + std::strerror(-rc);
      RunSyscalls(ops + done + queued, n - done - queued);  // never queued
      return;
    }
    done += queued;
  }
}

}  // namespace strata::proxy
