// BlockDevice tests: the in-memory device and its faults, and real files
// through io_uring and through the thread-pool fallback.
#include "tiers/block_device.h"

#include <gtest/gtest.h>

#include <chrono>

#include <thread>
#include <stdlib.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <string>

#include "common/crc32c.h"
#include "tiers/memory_device.h"

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

TEST(FileDeviceOpenTest, RejectsBadSizesAndPaths) {
  EXPECT_FALSE(OpenFileDevice({"/nonexistent-dir/x", 1 << 20}).ok());
  EXPECT_FALSE(OpenFileDevice({"./x", 1000}).ok());  // not a multiple of 4096
  EXPECT_FALSE(OpenFileDevice({"/dev/null", 1 << 20}).ok());  // not a file or block device
}

}  // namespace
}  // namespace strata::tiers
