// BlockDevice tests: the in-memory device and its faults, real files
// through io_uring and through the thread-pool fallback, sparse and short
// files reserved at open (with and without fallocate), and the buffers
// for direct I/O.
#include "tiers/ssd/block_device.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <thread>
#include <vector>

#include <cerrno>
#include <cstring>
#include <string>

#include "common/crc32c.h"
#include "tests/support/memory_device.h"

namespace strata::tiers {
namespace {

// Records one completion.
struct Done : IoCompletion {
  int64_t result = INT64_MIN;
  int calls = 0;
  void OnIoComplete(int64_t r) override {
    result = r;
    ++calls;
  }
};

std::string TempDir() {
  const char* base = getenv("TMPDIR");
  // The build tree's file system supports O_DIRECT; /tmp may be tmpfs.
  std::string dir = std::string(base ? base : ".") + "/strata-bdev-XXXXXX";
  char* made = mkdtemp(dir.data());
  return made ? std::string(made) : std::string();
}

void Fill(char* buf, size_t len, uint8_t seed) {
  for (size_t i = 0; i < len; ++i) buf[i] = static_cast<char>(seed + i * 7);
}

TEST(Crc32cTest, KnownVectorAndExtension) {
  EXPECT_EQ(common::Crc32c("123456789", 9), 0xE3069283u);
  EXPECT_EQ(common::Crc32c("", 0), 0u);
  uint32_t part = common::Crc32c("1234", 4);
  EXPECT_EQ(common::Crc32cExtend(part, "56789", 5), 0xE3069283u);
}

TEST(MemoryDeviceTest, WriteThenReadCompletesOnReap) {
  MemoryDevice dev(1 << 20);
  auto q = dev.NewQueue(8);
  auto wbuf = AllocateAligned(8192);
  auto rbuf = AllocateAligned(8192);
  Fill(wbuf.get(), 8192, 3);
  Done w;
  q->Write(4096, wbuf.get(), 8192, &w);
  EXPECT_EQ(w.calls, 0);
  q->Submit();
  EXPECT_EQ(w.calls, 0);  // completions run only from Reap()
  EXPECT_EQ(q->Reap(), 1u);
  EXPECT_EQ(w.result, 8192);
  Done r;
  q->Read(4096, rbuf.get(), 8192, &r);
  DrainQueue(*q);
  EXPECT_EQ(r.result, 8192);
  EXPECT_EQ(std::memcmp(wbuf.get(), rbuf.get(), 8192), 0);
  EXPECT_EQ(dev.bytes_written(), 8192u);
}

TEST(MemoryDeviceTest, UnalignedRequestsFailLikeODirect) {
  MemoryDevice dev(1 << 20);
  auto q = dev.NewQueue(8);
  auto buf = AllocateAligned(8192);
  Done a, b;
  q->Read(100, buf.get(), 4096, &a);
  q->Write(0, buf.get(), 1000, &b);
  DrainQueue(*q);
  EXPECT_EQ(a.result, -EINVAL);
  EXPECT_EQ(b.result, -EINVAL);
}

TEST(MemoryDeviceTest, InjectedFaults) {
  MemoryDevice dev(1 << 20);
  auto q = dev.NewQueue(8);
  auto buf = AllocateAligned(8192);
  Fill(buf.get(), 8192, 9);
  Done ok;
  q->Write(0, buf.get(), 8192, &ok);
  DrainQueue(*q);
  ASSERT_EQ(ok.result, 8192);

  dev.AddFault({Fault::Kind::kFailRead, 0, 4096, 5, 1});
  Done failed;
  q->Read(0, buf.get(), 4096, &failed);
  DrainQueue(*q);
  EXPECT_EQ(failed.result, -5);
  Done again;  // the fault was for one request only
  q->Read(0, buf.get(), 4096, &again);
  DrainQueue(*q);
  EXPECT_EQ(again.result, 4096);

  dev.AddFault({Fault::Kind::kShortRead, 0, 8192, 0, 1});
  Done shorter;
  q->Read(0, buf.get(), 8192, &shorter);
  DrainQueue(*q);
  EXPECT_EQ(shorter.result, 4096);

  auto expect = AllocateAligned(4096);
  dev.Peek(0, expect.get(), 4096);
  dev.AddFault({Fault::Kind::kFlipBitOnRead, 10, 11, 0, 1});
  Done flipped;
  q->Read(0, buf.get(), 4096, &flipped);
  DrainQueue(*q);
  EXPECT_EQ(flipped.result, 4096);
  EXPECT_NE(buf.get()[10], expect.get()[10]);
  EXPECT_EQ(std::memcmp(buf.get(), expect.get(), 10), 0);

  dev.AddFault({Fault::Kind::kLoseWrite, 0, UINT64_MAX, 0, 1});
  Fill(buf.get(), 4096, 77);
  Done lost;
  q->Write(65536, buf.get(), 4096, &lost);
  DrainQueue(*q);
  EXPECT_EQ(lost.result, 4096);  // reported done...
  char first = 0;
  dev.Peek(65536, &first, 1);
  EXPECT_EQ(first, 0);  // ...but never stored

  dev.AddFault({Fault::Kind::kFailWrite, 0, UINT64_MAX, 28, -1});
  Done nospace;
  q->Write(0, buf.get(), 4096, &nospace);
  DrainQueue(*q);
  EXPECT_EQ(nospace.result, -28);
  dev.ClearFaults();
}

class FileDeviceTest : public ::testing::TestWithParam<IoMode> {
 protected:
  void SetUp() override {
    dir_ = TempDir();
    ASSERT_FALSE(dir_.empty());
    path_ = dir_ + "/cache.bin";
    if (GetParam() == IoMode::kIoUring) {
      // Where a seccomp profile denies io_uring (Docker 25+, containerd's
      // RuntimeDefault, an image build) the io_uring runs cannot happen:
      // skipped, said so; the thread-pool runs still test the device.
      auto probe = OpenFileDevice({path_, 1 << 20, IoMode::kIoUring, 2});
      if (!probe.ok()) {
        GTEST_SKIP() << "io_uring is not usable here: " << probe.status().message();
      }
    }
  }
  void TearDown() override {
    unlink(path_.c_str());
    rmdir(dir_.c_str());
  }
  std::string dir_;
  std::string path_;
};

TEST_P(FileDeviceTest, ManyConcurrentRequestsRoundTrip) {
  std::string why;
  auto dev = OpenFileDevice({path_, 8 << 20, GetParam(), 4}, &why);
  ASSERT_TRUE(dev.ok()) << dev.status().message();
  EXPECT_EQ((*dev)->size(), 8u << 20);
  EXPECT_EQ((*dev)->mode(), GetParam() == IoMode::kThreadPool ? "threadpool" : "io_uring");
  auto q = (*dev)->NewQueue(4);  // fewer slots than requests: the rest wait
  constexpr int kBlocks = 64;
  auto buf = AllocateAligned(kBlocks * 4096);
  Fill(buf.get(), kBlocks * 4096, 1);
  Done writes[kBlocks];
  for (int i = 0; i < kBlocks; ++i) {
    q->Write(uint64_t(i) * 4096, buf.get() + i * 4096, 4096, &writes[i]);
  }
  DrainQueue(*q);
  for (const Done& d : writes) {
    EXPECT_EQ(d.calls, 1);
    EXPECT_EQ(d.result, 4096);
  }
  auto back = AllocateAligned(kBlocks * 4096);
  Done read;
  q->Read(0, back.get(), kBlocks * 4096, &read);
  DrainQueue(*q);
  EXPECT_EQ(read.result, kBlocks * 4096);
  EXPECT_EQ(std::memcmp(buf.get(), back.get(), kBlocks * 4096), 0);
  // Reads past the end are short, not errors.
  Done tail;
  q->Read((8 << 20) - 4096, back.get(), 8192, &tail);
  DrainQueue(*q);
  EXPECT_EQ(tail.result, 4096);
}

// A queue may be destroyed as soon as its last completion is reaped (the
// warm-up thread's is): the device must not touch it after that.
// ThreadSanitizer reported a pool thread signalling the eventfd of a queue
// being destroyed. Thread pool only: an io_uring queue has no other thread,
// and TSan cannot follow liburing's rings from one thread's to the next at
// the same address (tests/tsan.supp).
TEST_P(FileDeviceTest, AQueueGoesRightAfterItsLastCompletion) {
  if (GetParam() != IoMode::kThreadPool) GTEST_SKIP() << "thread pool only";
  auto dev = OpenFileDevice({path_, 1 << 20, GetParam(), 4});
  ASSERT_TRUE(dev.ok()) << dev.status().message();
  std::vector<std::thread> threads;
  for (int t = 0; t < 2; ++t) {
    threads.emplace_back([&] {
      auto buf = AllocateAligned(4096);
      for (int i = 0; i < 300; ++i) {
        auto q = (*dev)->NewQueue(2);
        Done read;
        q->Read(uint64_t(i % 16) * 4096, buf.get(), 4096, &read);
        DrainQueue(*q);
        EXPECT_EQ(read.result, 4096);
      }  // the queue goes here
    });
  }
  for (std::thread& t : threads) t.join();
}

TEST_P(FileDeviceTest, SurvivesReopen) {
  {
    auto dev = OpenFileDevice({path_, 1 << 20, GetParam(), 2});
    ASSERT_TRUE(dev.ok()) << dev.status().message();
    auto q = (*dev)->NewQueue(2);
    auto buf = AllocateAligned(4096);
    Fill(buf.get(), 4096, 42);
    Done w;
    q->Write(8192, buf.get(), 4096, &w);
    DrainQueue(*q);
    ASSERT_EQ(w.result, 4096);
  }
  auto dev = OpenFileDevice({path_, 1 << 20, GetParam(), 2});
  ASSERT_TRUE(dev.ok());
  auto q = (*dev)->NewQueue(2);
  auto buf = AllocateAligned(4096);
  Done r;
  q->Read(8192, buf.get(), 4096, &r);
  DrainQueue(*q);
  ASSERT_EQ(r.result, 4096);
  auto expect = AllocateAligned(4096);
  Fill(expect.get(), 4096, 42);
  EXPECT_EQ(std::memcmp(buf.get(), expect.get(), 4096), 0);
}

TEST_P(FileDeviceTest, ASecondOpenOfTheSameFileIsRefused) {
  auto first = OpenFileDevice({path_, 1 << 20, GetParam(), 2});
  ASSERT_TRUE(first.ok()) << first.status().message();
  auto second = OpenFileDevice({path_, 1 << 20, GetParam(), 2, /*lock_wait_ms=*/100});
  ASSERT_FALSE(second.ok());
  EXPECT_NE(second.status().message().find("in use by another process"), std::string::npos)
      << second.status().message();
  first = common::Status::IoError("closed");  // closing the first releases the lock
  EXPECT_TRUE(OpenFileDevice({path_, 1 << 20, GetParam(), 2}).ok());
}

// A process that is exiting releases the lock within moments (after a
// kill -9 its io_uring rings keep the file open a little longer): an open
// waits for it.
TEST_P(FileDeviceTest, AnOpenWaitsForALockThatIsReleasedSoon) {
  auto first = OpenFileDevice({path_, 1 << 20, GetParam(), 2});
  ASSERT_TRUE(first.ok()) << first.status().message();
  std::thread release([&first] {
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
    first = common::Status::IoError("closed");
  });
  auto second = OpenFileDevice({path_, 1 << 20, GetParam(), 2, /*lock_wait_ms=*/5000});
  release.join();
  EXPECT_TRUE(second.ok()) << second.status().message();
}

INSTANTIATE_TEST_SUITE_P(Modes, FileDeviceTest,
                         ::testing::Values(IoMode::kIoUring, IoMode::kThreadPool),
                         [](const auto& info) {
                           return info.param == IoMode::kIoUring ? std::string("io_uring")
                                                                 : std::string("threadpool");
                         });

// A sparse file and the blocks it owns.
class SparseFileTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = TempDir();
    ASSERT_FALSE(dir_.empty());
    path_ = dir_ + "/cache.bin";
  }
  void TearDown() override {
    unlink(path_.c_str());
    rmdir(dir_.c_str());
  }
  // Makes a file of `length` with no blocks, then writes `data` at `at`.
  void MakeSparse(uint64_t length, uint64_t at = 0, const std::string& data = "") {
    int fd = open(path_.c_str(), O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    ASSERT_GE(fd, 0);
    ASSERT_EQ(ftruncate(fd, static_cast<off_t>(length)), 0);
    if (!data.empty()) {
      ASSERT_EQ(pwrite(fd, data.data(), data.size(), static_cast<off_t>(at)),
                static_cast<ssize_t>(data.size()));
    }
    ASSERT_EQ(fsync(fd), 0);
    close(fd);
    struct stat st;
    ASSERT_EQ(stat(path_.c_str(), &st), 0);
    if (static_cast<uint64_t>(st.st_blocks) * 512 >= length) {
      GTEST_SKIP() << "this file system does not make sparse files";
    }
  }
  uint64_t Allocated() const {
    struct stat st;
    EXPECT_EQ(stat(path_.c_str(), &st), 0);
    return static_cast<uint64_t>(st.st_blocks) * 512;
  }
  uint64_t Length() const {
    struct stat st;
    EXPECT_EQ(stat(path_.c_str(), &st), 0);
    return static_cast<uint64_t>(st.st_size);
  }
  std::string ReadAt(uint64_t at, size_t n) const {
    int fd = open(path_.c_str(), O_RDONLY | O_CLOEXEC);
    EXPECT_GE(fd, 0);
    std::string out(n, '\0');
    EXPECT_EQ(pread(fd, out.data(), n, static_cast<off_t>(at)), static_cast<ssize_t>(n));
    close(fd);
    return out;
  }
  std::string dir_;
  std::string path_;
};

TEST_F(SparseFileTest, AFullLengthSparseFileGetsEveryBlockAtOpen) {
  constexpr uint64_t kSize = 8 << 20;
  const std::string mark = "data the cache wrote before the restart";
  MakeSparse(kSize, 3 << 20, mark);
  if (IsSkipped()) return;
  ASSERT_LT(Allocated(), kSize / 2);
  uint64_t reserved = 0;
  auto dev = OpenFileDevice({path_, kSize, IoMode::kThreadPool, 2}, nullptr, &reserved);
  ASSERT_TRUE(dev.ok()) << dev.status().message();
  EXPECT_GE(Allocated(), kSize);
  EXPECT_GE(reserved, kSize - (1 << 20));  // all but the block(s) the mark had
  EXPECT_EQ(Length(), kSize);
  EXPECT_EQ(ReadAt(3 << 20, mark.size()), mark);  // data kept
  EXPECT_EQ(ReadAt(0, 16), std::string(16, '\0'));
  // Opening it again finds nothing to do.
  dev = common::Status::IoError("closed");
  reserved = 1;
  dev = OpenFileDevice({path_, kSize, IoMode::kThreadPool, 2}, nullptr, &reserved);
  ASSERT_TRUE(dev.ok()) << dev.status().message();
  EXPECT_EQ(reserved, 0u);
}

TEST_F(SparseFileTest, AShortSparseFileIsExtendedAndFilled) {
  MakeSparse(1 << 20, 4096, "x");
  if (IsSkipped()) return;
  auto dev = OpenFileDevice({path_, 4 << 20, IoMode::kThreadPool, 2});
  ASSERT_TRUE(dev.ok()) << dev.status().message();
  EXPECT_EQ(Length(), 4u << 20);
  EXPECT_GE(Allocated(), 4u << 20);
  EXPECT_EQ(ReadAt(4096, 1), "x");
}

TEST_F(SparseFileTest, WithoutFallocateTheHolesAreWrittenWithZeros) {
  constexpr uint64_t kSize = 6 << 20;
  const std::string a(4096, 'a');
  MakeSparse(kSize, 1 << 20, a);
  if (IsSkipped()) return;
  {  // a second block of data further on, so there are holes on both sides
    int fd = open(path_.c_str(), O_RDWR | O_CLOEXEC);
    ASSERT_GE(fd, 0);
    ASSERT_EQ(pwrite(fd, "b", 1, (4 << 20) + 100), 1);
    close(fd);
  }
  // O_DIRECT, as the device opens it: the zero writes must be aligned.
  int fd = open(path_.c_str(), O_RDWR | O_DIRECT | O_CLOEXEC);
  ASSERT_GE(fd, 0);
  auto reserved = ReserveFileBlocks(fd, path_, kSize, /*use_fallocate=*/false);
  close(fd);
  ASSERT_TRUE(reserved.ok()) << reserved.status().message();
  EXPECT_GE(*reserved, kSize - (2 << 20));
  EXPECT_GE(Allocated(), kSize);
  EXPECT_EQ(ReadAt(1 << 20, a.size()), a);
  EXPECT_EQ(ReadAt((4 << 20) + 100, 1), "b");
  EXPECT_EQ(ReadAt(0, 64), std::string(64, '\0'));
  EXPECT_EQ(ReadAt(kSize - 64, 64), std::string(64, '\0'));
  // A short file the same way: extended.
  MakeSparse(1 << 20);
  if (IsSkipped()) return;
  fd = open(path_.c_str(), O_RDWR | O_DIRECT | O_CLOEXEC);
  ASSERT_GE(fd, 0);
  reserved = ReserveFileBlocks(fd, path_, 3 << 20, /*use_fallocate=*/false);
  close(fd);
  ASSERT_TRUE(reserved.ok()) << reserved.status().message();
  EXPECT_EQ(Length(), 3u << 20);
  EXPECT_GE(Allocated(), 3u << 20);
}

// Blocks that cannot be had stop the open, and the message names the path
// and the bytes missing. A file size limit (RLIMIT_FSIZE) makes the
// extension fail here (EFBIG); the full-file-system case (ENOSPC) runs in
// tests/integration/test_sparse_file.py on a small file system it mounts.
TEST_F(SparseFileTest, BlocksThatCannotBeHadStopTheOpenWithTheBytesMissing) {
  MakeSparse(1 << 20);
  if (IsSkipped()) return;
  struct rlimit old_limit;
  ASSERT_EQ(getrlimit(RLIMIT_FSIZE, &old_limit), 0);
  struct rlimit small = old_limit;
  small.rlim_cur = 2 << 20;
  auto old_handler = signal(SIGXFSZ, SIG_IGN);
  ASSERT_EQ(setrlimit(RLIMIT_FSIZE, &small), 0);
  auto dev = OpenFileDevice({path_, 8 << 20, IoMode::kThreadPool, 2});
  setrlimit(RLIMIT_FSIZE, &old_limit);
  signal(SIGXFSZ, old_handler);
  ASSERT_FALSE(dev.ok());
  const std::string& msg = dev.status().message();
  EXPECT_NE(msg.find(path_ + ": cannot reserve the SSD tier's 8.0 MiB (8388608 bytes): "),
            std::string::npos)
      << msg;
  EXPECT_NE(msg.find("of it could not be allocated (the file system has "), std::string::npos)
      << msg;
  EXPECT_NE(msg.find(std::strerror(EFBIG)), std::string::npos) << msg;
  // The bytes it could not get: at least the 7 MiB past the old end.
  const size_t at = msg.find("bytes): ");
  ASSERT_NE(at, std::string::npos);
  const double missing_mib = std::strtod(msg.c_str() + at + 8, nullptr);
  EXPECT_GE(missing_mib, 7.0) << msg;
  EXPECT_LE(missing_mib, 8.0) << msg;
}

TEST(AllocateAlignedTest, LargeBuffersAreMappedAndSmallOnesAreNot) {
  auto small = AllocateAligned(8192);
  ASSERT_NE(small, nullptr);
  EXPECT_EQ(small.get_deleter().mapped, 0u);
  EXPECT_EQ(reinterpret_cast<uintptr_t>(small.get()) % 4096, 0u);
  auto big = AllocateAligned(kMappedBufferBytes + 1);
  ASSERT_NE(big, nullptr);
  EXPECT_GE(big.get_deleter().mapped, kMappedBufferBytes + 1);
  EXPECT_EQ(reinterpret_cast<uintptr_t>(big.get()) % 4096, 0u);
  std::memset(big.get(), 0x5a, kMappedBufferBytes + 1);  // all of it is usable
  EXPECT_EQ(big.get()[kMappedBufferBytes], 0x5a);
  // Moved buffers keep their deleter (and free the right way).
  std::unique_ptr<char, AlignedFree> moved = std::move(big);
  EXPECT_GE(moved.get_deleter().mapped, kMappedBufferBytes);
  moved.reset();
}

TEST(FileDeviceOpenTest, RejectsBadSizesAndPaths) {
  EXPECT_FALSE(OpenFileDevice({"/nonexistent-dir/x", 1 << 20}).ok());
  EXPECT_FALSE(OpenFileDevice({"./x", 1000}).ok());  // not a multiple of 4096
  EXPECT_FALSE(OpenFileDevice({"/dev/null", 1 << 20}).ok());  // not a file or block device
}

}  // namespace
}  // namespace strata::tiers
