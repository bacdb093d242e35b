// NetBatch against real sockets, through io_uring and through plain system
// calls: every operation gets its result in the one Run(), nothing blocks,
// and a batch larger than the ring is split.
#include "proxy/net/net_batch.h"

#include <gtest/gtest.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <string>
#include <vector>

namespace strata::proxy {
namespace {

struct SocketPair {
  int a = -1;  // the batch's end
  int b = -1;  // the peer
  SocketPair() {
    int fds[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, fds) == 0) {
      a = fds[0];
      b = fds[1];
    }
  }
  ~SocketPair() {
    if (a >= 0) close(a);
    if (b >= 0) close(b);
  }
  SocketPair(const SocketPair&) = delete;
  SocketPair& operator=(const SocketPair&) = delete;
};

NetOp Recv(int fd, char* buf, size_t len) {
  NetOp op;
  op.kind = NetOp::Kind::kRecv;
  op.fd = fd;
  op.buf = buf;
  op.len = len;
  return op;
}

NetOp Send(int fd, struct iovec* iov, size_t n) {
  NetOp op;
  op.kind = NetOp::Kind::kSend;
  op.fd = fd;
  op.msg.msg_iov = iov;
  op.msg.msg_iovlen = n;
  return op;
}

class NetBatchTest : public ::testing::TestWithParam<NetBatch::Mode> {
 protected:
  void SetUp() override {
    std::string error;
    batch_ = NetBatch::Create(GetParam(), &error);
    if (batch_ == nullptr) GTEST_SKIP() << "io_uring is not available here: " << error;
    ASSERT_EQ(batch_->uses_io_uring(), GetParam() == NetBatch::Mode::kIoUring);
  }
  std::unique_ptr<NetBatch> batch_;
};

TEST_P(NetBatchTest, ReceivesWhatArrivedAndAnEmptySocketSaysEagain) {
  SocketPair full, empty;
  ASSERT_EQ(write(full.b, "get k\r\n", 7), 7);
  char buf1[64], buf2[64];
  NetOp ops[] = {Recv(full.a, buf1, sizeof(buf1)), Recv(empty.a, buf2, sizeof(buf2))};
  batch_->Run(ops, 2);
  ASSERT_EQ(ops[0].result, 7);
  EXPECT_EQ(std::string(buf1, 7), "get k\r\n");
  EXPECT_EQ(ops[1].result, -EAGAIN);
}

TEST_P(NetBatchTest, SendsEveryIovecInOrder) {
  SocketPair p;
  std::string a = "VALUE k 0 5\r\n", b = "hello\r\n", c = "END\r\n";
  struct iovec iov[] = {{a.data(), a.size()}, {b.data(), b.size()}, {c.data(), c.size()}};
  NetOp op = Send(p.a, iov, 3);
  batch_->Run(&op, 1);
  ASSERT_EQ(op.result, static_cast<ssize_t>(a.size() + b.size() + c.size()));
  char buf[64];
  ssize_t n = read(p.b, buf, sizeof(buf));
  EXPECT_EQ(std::string(buf, static_cast<size_t>(n)), a + b + c);
}

TEST_P(NetBatchTest, AFullSocketTakesPartAndThenNothingWithoutBlocking) {
  SocketPair p;
  int small = 4096;
  ASSERT_EQ(setsockopt(p.a, SOL_SOCKET, SO_SNDBUF, &small, sizeof(small)), 0);
  std::string big(4 << 20, 'x');
  struct iovec iov = {big.data(), big.size()};
  NetOp first = Send(p.a, &iov, 1);
  batch_->Run(&first, 1);
  ASSERT_GT(first.result, 0);
  EXPECT_LT(first.result, static_cast<ssize_t>(big.size()));
  NetOp second = Send(p.a, &iov, 1);
  batch_->Run(&second, 1);
  EXPECT_EQ(second.result, -EAGAIN);
}

TEST_P(NetBatchTest, APeerThatLeftFailsTheSendWithoutASignal) {
  SocketPair p;
  close(p.b);
  p.b = -1;
  std::string reply = "STORED\r\n";
  struct iovec iov = {reply.data(), reply.size()};
  NetOp op = Send(p.a, &iov, 1);
  batch_->Run(&op, 1);  // a SIGPIPE would end the test binary here
  EXPECT_EQ(op.result, -EPIPE);
  char buf[8];
  NetOp eof = Recv(p.a, buf, sizeof(buf));
  batch_->Run(&eof, 1);
  EXPECT_EQ(eof.result, 0);
}

TEST_P(NetBatchTest, ABatchLargerThanTheRingIsSplitAndEveryOperationAnswered) {
  constexpr size_t kPairs = 300;  // the ring takes 256 at a time
  std::vector<std::unique_ptr<SocketPair>> pairs;
  for (size_t i = 0; i < kPairs; ++i) {
    pairs.push_back(std::make_unique<SocketPair>());
    ASSERT_GE(pairs.back()->a, 0);
    std::string msg = "get key" + std::to_string(i) + "\r\n";
    ASSERT_EQ(write(pairs.back()->b, msg.data(), msg.size()), static_cast<ssize_t>(msg.size()));
  }
  std::vector<std::string> bufs(kPairs, std::string(32, '\0'));
  std::vector<NetOp> ops;
  for (size_t i = 0; i < kPairs; ++i) ops.push_back(Recv(pairs[i]->a, bufs[i].data(), 32));
  batch_->Run(ops.data(), ops.size());
  for (size_t i = 0; i < kPairs; ++i) {
    std::string msg = "get key" + std::to_string(i) + "\r\n";
    ASSERT_EQ(ops[i].result, static_cast<ssize_t>(msg.size())) << i;
    EXPECT_EQ(bufs[i].substr(0, msg.size()), msg) << i;
  }
  if (GetParam() == NetBatch::Mode::kIoUring) {
    EXPECT_EQ(batch_->submits(), 2u);  // 256 + 44: two system calls for 300 reads
  } else {
    EXPECT_EQ(batch_->submits(), 0u);
  }
}

INSTANTIATE_TEST_SUITE_P(Modes, NetBatchTest,
                         ::testing::Values(NetBatch::Mode::kIoUring, NetBatch::Mode::kSyscalls),
                         [](const auto& info) {
                           return info.param == NetBatch::Mode::kIoUring ? "io_uring" : "syscalls";
                         });

TEST(NetBatchModeTest, AutoUsesIoUringWhereverIoUringModeWorks) {
  std::string error;
  auto forced = NetBatch::Create(NetBatch::Mode::kIoUring, &error);
  auto autod = NetBatch::Create(NetBatch::Mode::kAuto, &error);
  ASSERT_NE(autod, nullptr);  // auto always gets a batch
  EXPECT_EQ(autod->uses_io_uring(), forced != nullptr);
}

}  // namespace
}  // namespace strata::proxy
