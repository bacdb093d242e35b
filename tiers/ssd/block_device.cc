#include "tiers/ssd/block_device.h"

#include <fcntl.h>
#include <liburing.h>
#include <linux/fs.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/file.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <thread>
#include <vector>

#include "common/mutex.h"

namespace strata::tiers {
namespace {

constexpr size_t kBlockSize = 4096;

struct Request {
  bool write;
  uint64_t offset;
  void* buf;
  size_t len;
  IoCompletion* done;
};

int NewEventFd() { return eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC); }

void ClearEventFd(int fd) {
  uint64_t v;
  while (read(fd, &v, sizeof(v)) > 0) {
  }
}

// ------------------------------------------------------------- io_uring

class IoUringQueue final : public IoQueue {
 public:
  static common::Result<std::unique_ptr<IoQueue>> Create(int fd, unsigned depth) {
    auto q = std::unique_ptr<IoUringQueue>(new IoUringQueue(fd, depth));
    int rc = io_uring_queue_init(depth, &q->ring_, 0);
    if (rc < 0) return common::Status::Unavailable(std::string("io_uring_queue_init: ") + std::strerror(-rc));
    q->ring_ok_ = true;
    q->efd_ = NewEventFd();
    if (q->efd_ < 0) return common::Status::IoError(std::string("eventfd: ") + std::strerror(errno));
    rc = io_uring_register_eventfd(&q->ring_, q->efd_);
    if (rc < 0) {
      return common::Status::Unavailable(std::string("io_uring_register_eventfd: ") +
                                         std::strerror(-rc));
    }
    return std::unique_ptr<IoQueue>(std::move(q));
  }

  ~IoUringQueue() override {
    if (ring_ok_) io_uring_queue_exit(&ring_);
    if (efd_ >= 0) close(efd_);
  }

  void Read(uint64_t offset, void* buf, size_t len, IoCompletion* done) override {
    backlog_.push_back({false, offset, buf, len, done});
    ++in_flight_;
  }
  void Write(uint64_t offset, const void* buf, size_t len, IoCompletion* done) override {
    backlog_.push_back({true, offset, const_cast<void*>(buf), len, done});
    ++in_flight_;
  }

  void Submit() override {
    bool queued = false;
    while (!backlog_.empty() && in_ring_ < depth_) {
      io_uring_sqe* sqe = io_uring_get_sqe(&ring_);
      if (sqe == nullptr) break;
      const Request& r = backlog_.front();
      if (r.write) {
        io_uring_prep_write(sqe, fd_, r.buf, static_cast<unsigned>(r.len), r.offset);
      } else {
        io_uring_prep_read(sqe, fd_, r.buf, static_cast<unsigned>(r.len), r.offset);
      }
      io_uring_sqe_set_data(sqe, r.done);
      backlog_.pop_front();
      ++in_ring_;
      queued = true;
    }
    if (queued) io_uring_submit(&ring_);
  }

  size_t Reap() override {
    ClearEventFd(efd_);
    size_t n = 0;
    io_uring_cqe* cqe = nullptr;
    while (io_uring_peek_cqe(&ring_, &cqe) == 0 && cqe != nullptr) {
      auto* done = static_cast<IoCompletion*>(io_uring_cqe_get_data(cqe));
      int64_t res = cqe->res;
      io_uring_cqe_seen(&ring_, cqe);
      --in_ring_;
      --in_flight_;
      ++n;
      done->OnIoComplete(res);
    }
    if (!backlog_.empty()) Submit();
    return n;
  }

  int event_fd() const override { return efd_; }
  size_t in_flight() const override { return in_flight_; }

 private:
  IoUringQueue(int fd, unsigned depth) : fd_(fd), depth_(depth) {}

  int fd_;
  unsigned depth_;
  io_uring ring_;
  bool ring_ok_ = false;
  int efd_ = -1;
  std::deque<Request> backlog_;
  unsigned in_ring_ = 0;
  size_t in_flight_ = 0;
};

// ----------------------------------------------------------- thread pool

class ThreadPoolQueue;

// The pool's threads run pread/pwrite for every queue of one device.
class IoThreadPool {
 public:
  struct Job {
    Request req;
    ThreadPoolQueue* queue;
  };

  IoThreadPool(int fd, unsigned threads) : fd_(fd) {
    for (unsigned i = 0; i < threads; ++i) threads_.emplace_back([this] { Run(); });
  }
  ~IoThreadPool() {
    {
      common::MutexLock lock(&mu_);
      stop_ = true;
    }
    cv_.NotifyAll();
    for (auto& t : threads_) t.join();
  }
  void Push(std::vector<Job>& jobs) EXCLUDES(mu_) {
    {
      common::MutexLock lock(&mu_);
      for (Job& j : jobs) jobs_.push_back(j);
    }
    cv_.NotifyAll();
    jobs.clear();
  }

 private:
  void Run() EXCLUDES(mu_);

  int fd_;
  common::Mutex mu_;  // a leaf
  common::CondVar cv_;
  std::deque<Job> jobs_ GUARDED_BY(mu_);
  bool stop_ GUARDED_BY(mu_) = false;
  std::vector<std::thread> threads_;
};

class ThreadPoolQueue final : public IoQueue {
 public:
  explicit ThreadPoolQueue(IoThreadPool& pool) : pool_(pool), efd_(NewEventFd()) {}
  ~ThreadPoolQueue() override {
    common::MutexLock lock(&mu_);  // a pool thread may still be leaving Complete()
    if (efd_ >= 0) close(efd_);
  }

  void Read(uint64_t offset, void* buf, size_t len, IoCompletion* done) override {
    pending_.push_back({{false, offset, buf, len, done}, this});
    ++in_flight_;
  }
  void Write(uint64_t offset, const void* buf, size_t len, IoCompletion* done) override {
    pending_.push_back({{true, offset, const_cast<void*>(buf), len, done}, this});
    ++in_flight_;
  }
  void Submit() override {
    if (!pending_.empty()) pool_.Push(pending_);
  }
  size_t Reap() override {
    ClearEventFd(efd_);
    std::vector<std::pair<IoCompletion*, int64_t>> done;
    {
      common::MutexLock lock(&mu_);
      done.swap(completed_);
    }
    for (auto& [c, res] : done) {
      --in_flight_;
      c->OnIoComplete(res);
    }
    return done.size();
  }
  int event_fd() const override { return efd_; }
  size_t in_flight() const override { return in_flight_; }

  // Called by pool threads. The eventfd is signalled under the lock: once
  // Reap() can take the completion, this thread no longer touches the
  // queue, which its owner may then destroy. (Signalled after the unlock,
  // the write could hit a closed, even reused, descriptor:
  // ThreadSanitizer caught the warm-up thread's queue closing its eventfd
  // under a pool thread's write.)
  void Complete(IoCompletion* c, int64_t result) EXCLUDES(mu_) {
    common::MutexLock lock(&mu_);
    completed_.emplace_back(c, result);
    uint64_t one = 1;
    ssize_t ignored = write(efd_, &one, sizeof(one));
    (void)ignored;
  }

 private:
  IoThreadPool& pool_;
  int efd_;
  std::vector<IoThreadPool::Job> pending_;
  common::Mutex mu_;  // a leaf
  std::vector<std::pair<IoCompletion*, int64_t>> completed_ GUARDED_BY(mu_);
  size_t in_flight_ = 0;
};

void IoThreadPool::Run() {
  for (;;) {
    Job job;
    {
      common::MutexLock lock(&mu_);
      while (!stop_ && jobs_.empty()) cv_.Wait(mu_);
      if (jobs_.empty()) return;
      job = jobs_.front();
      jobs_.pop_front();
    }
    const Request& r = job.req;
    size_t done = 0;
    int64_t result = 0;
    while (done < r.len) {
      ssize_t n = r.write ? pwrite(fd_, static_cast<char*>(r.buf) + done, r.len - done,
                                   static_cast<off_t>(r.offset + done))
                          : pread(fd_, static_cast<char*>(r.buf) + done, r.len - done,
                                  static_cast<off_t>(r.offset + done));
      if (n < 0) {
        if (errno == EINTR) continue;
        result = -errno;
        break;
      }
      if (n == 0) break;  // end of file: a short transfer
      done += static_cast<size_t>(n);
    }
    job.queue->Complete(r.done, result < 0 ? result : static_cast<int64_t>(done));
  }
}

// ----------------------------------------------------------- the device

class FileDevice final : public BlockDevice {
 public:
  FileDevice(int fd, uint64_t size, uint64_t preexisting, bool use_uring, unsigned pool_threads)
      : fd_(fd), size_(size), preexisting_(preexisting), use_uring_(use_uring) {
    if (!use_uring_) pool_ = std::make_unique<IoThreadPool>(fd_, pool_threads);
  }
  ~FileDevice() override {
    pool_.reset();
    close(fd_);
  }
  uint64_t size() const override { return size_; }
  uint64_t preexisting_bytes() const override { return preexisting_; }
  size_t block_size() const override { return kBlockSize; }
  std::string_view mode() const override { return use_uring_ ? "io_uring" : "threadpool"; }
  std::unique_ptr<IoQueue> NewQueue(unsigned depth) override {
    if (use_uring_) {
      auto q = IoUringQueue::Create(fd_, depth);
      if (q.ok()) return std::move(q).value();
      // A ring that worked at open but fails now (e.g. memlock limits):
      // this queue uses a private pool instead.
      if (!pool_) pool_ = std::make_unique<IoThreadPool>(fd_, 2);
    }
    return std::make_unique<ThreadPoolQueue>(*pool_);
  }

 private:
  int fd_;
  uint64_t size_;
  uint64_t preexisting_;
  bool use_uring_;
  std::unique_ptr<IoThreadPool> pool_;
};

}  // namespace

void AlignedFree::operator()(void* p) const {
  if (mapped != 0) {
    munmap(p, mapped);
  } else {
    std::free(p);
  }
}

std::unique_ptr<char, AlignedFree> AllocateAligned(size_t len, size_t alignment) {
  size_t rounded = (len + alignment - 1) / alignment * alignment;
  if (rounded == 0) rounded = alignment;
  const size_t page = static_cast<size_t>(sysconf(_SC_PAGESIZE));
  if (rounded >= kMappedBufferBytes && page % alignment == 0) {
    rounded = (rounded + page - 1) / page * page;
    void* p = mmap(nullptr, rounded, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) return nullptr;
    return std::unique_ptr<char, AlignedFree>(static_cast<char*>(p), AlignedFree{rounded});
  }
  void* p = nullptr;
  if (posix_memalign(&p, alignment, rounded) != 0) return nullptr;
  return std::unique_ptr<char, AlignedFree>(static_cast<char*>(p));
}

namespace {

std::string Mib(uint64_t bytes) {
  char buf[64];
  std::snprintf(buf, sizeof(buf), "%.1f MiB (%llu bytes)", static_cast<double>(bytes) / (1 << 20),
                static_cast<unsigned long long>(bytes));
  return buf;
}

// Bytes of the file's blocks (st_blocks counts 512-byte units).
uint64_t AllocatedBytes(const struct stat& st) { return static_cast<uint64_t>(st.st_blocks) * 512; }

// True if [0, size) of the file may have a hole: SEEK_HOLE finds one
// before `size` (a file shorter than `size` has one at its end), or fewer
// bytes are allocated than `size`.
bool MayHaveHoles(int fd, const struct stat& st, uint64_t size) {
  if (AllocatedBytes(st) < size) return true;
  const off_t hole = lseek(fd, 0, SEEK_HOLE);
  return hole < 0 || static_cast<uint64_t>(hole) < size;
}

// Writes zeros over the holes of [0, size), for file systems without
// fallocate; returns 0 or an errno. `fd` may be O_DIRECT: writes are
// aligned, from an aligned buffer.
int ZeroHoles(int fd, uint64_t size) {
  constexpr size_t kChunk = size_t{1} << 20;
  auto zeros = AllocateAligned(kChunk);
  if (!zeros) return ENOMEM;
  std::memset(zeros.get(), 0, kChunk);
  uint64_t pos = 0;
  while (pos < size) {
    off_t hole = lseek(fd, static_cast<off_t>(pos), SEEK_HOLE);
    if (hole < 0) {
      if (errno != ENXIO) return errno;
      hole = static_cast<off_t>(pos);  // past the end of the file: all hole
    }
    // A hole starts on a block boundary, but the one at the end of a file
    // whose length is not a multiple of the block starts after data.
    uint64_t start = (static_cast<uint64_t>(hole) + kBlockSize - 1) / kBlockSize * kBlockSize;
    if (start >= size) break;
    off_t data = lseek(fd, static_cast<off_t>(start), SEEK_DATA);
    uint64_t end = data < 0 ? size : std::min<uint64_t>(size, static_cast<uint64_t>(data));
    if (data < 0 && errno != ENXIO) return errno;
    end = end / kBlockSize * kBlockSize;
    if (end <= start) end = std::min<uint64_t>(size, start + kBlockSize);
    for (uint64_t off = start; off < end;) {
      const size_t n = static_cast<size_t>(std::min<uint64_t>(kChunk, end - off));
      const ssize_t w = pwrite(fd, zeros.get(), n, static_cast<off_t>(off));
      if (w < 0) {
        if (errno == EINTR) continue;
        return errno;
      }
      if (w == 0) return EIO;
      off += static_cast<uint64_t>(w);
    }
    pos = end;
  }
  return 0;
}

}  // namespace

common::Result<uint64_t> ReserveFileBlocks(int fd, const std::string& path, uint64_t size,
                                           bool use_fallocate) {
  struct stat before;
  if (fstat(fd, &before) != 0) return common::Status::IoError(path + ": " + std::strerror(errno));
  if (!MayHaveHoles(fd, before, size)) return uint64_t{0};
  // fallocate (mode 0) allocates what is not allocated in the range, keeps
  // every byte already written, and extends a shorter file to `size`.
  int err = 0;
  if (use_fallocate) {
    while (fallocate(fd, 0, 0, static_cast<off_t>(size)) != 0) {
      if (errno == EINTR) continue;
      err = errno;
      break;
    }
  }
  if (!use_fallocate || err == EOPNOTSUPP || err == ENOSYS) err = ZeroHoles(fd, size);
  struct stat after;
  if (fstat(fd, &after) != 0) after = before;
  if (err == 0) {
    return AllocatedBytes(after) > AllocatedBytes(before)
               ? AllocatedBytes(after) - AllocatedBytes(before)
               : uint64_t{0};
  }
  const uint64_t have = std::min<uint64_t>(size, AllocatedBytes(after));
  struct statvfs fs;
  std::string free_space = "an unknown amount";
  if (fstatvfs(fd, &fs) == 0) {
    free_space = Mib(static_cast<uint64_t>(fs.f_bavail) * fs.f_frsize);
  }
  return common::Status::IoError(path + ": cannot reserve the SSD tier's " + Mib(size) + ": " +
                                 Mib(size - have) +
                                 " of it could not be allocated (the file system has " +
                                 free_space + " free): " + std::strerror(err));
}

common::Result<std::unique_ptr<BlockDevice>> OpenFileDevice(const FileDeviceOptions& options,
                                                            std::string* why_fallback,
                                                            uint64_t* reserved_bytes) {
  if (reserved_bytes != nullptr) *reserved_bytes = 0;
  if (options.size == 0 || options.size % kBlockSize != 0) {
    return common::Status::InvalidArgument("device size must be a positive multiple of 4096");
  }
  int fd = open(options.path.c_str(), O_RDWR | O_CREAT | O_DIRECT | O_CLOEXEC, 0600);
  if (fd < 0) {
    return common::Status::IoError(options.path + ": " + std::strerror(errno) +
                                   (errno == EINVAL ? " (does the file system support O_DIRECT?)" : ""));
  }
  // One process per cache file: a second strata on the same file (two pods
  // sharing a hostPath, a restart overlapping the old process) would
  // corrupt the log.
  // A process that just died (kill -9) may hold the lock a moment longer:
  // the kernel tears its io_uring rings down asynchronously, and they keep
  // the file open until then. Wait for it a little.
  int locked = flock(fd, LOCK_EX | LOCK_NB);
  for (int waited_ms = 0; locked != 0 && errno == EWOULDBLOCK && waited_ms < options.lock_wait_ms;
       waited_ms += 20) {
    usleep(20'000);
    locked = flock(fd, LOCK_EX | LOCK_NB);
  }
  if (locked != 0) {
    std::string msg = options.path + ": " +
                      (errno == EWOULDBLOCK ? std::string("in use by another process (locked)")
                                            : std::string("cannot lock: ") + std::strerror(errno));
    close(fd);
    return common::Status::IoError(msg);
  }
  struct stat st;
  if (fstat(fd, &st) != 0) {
    std::string msg = options.path + ": " + std::strerror(errno);
    close(fd);
    return common::Status::IoError(msg);
  }
  uint64_t preexisting = options.size;
  if (S_ISBLK(st.st_mode)) {
    uint64_t bytes = 0;
    if (ioctl(fd, BLKGETSIZE64, &bytes) != 0 || bytes < options.size) {
      close(fd);
      return common::Status::InvalidArgument(options.path + ": block device is smaller than " +
                                             std::to_string(options.size) + " bytes");
    }
  } else if (S_ISREG(st.st_mode)) {
    preexisting = std::min<uint64_t>(static_cast<uint64_t>(st.st_size), options.size);
    // A short file is extended, and a sparse one (of full length, made with
    // truncate) gets its holes allocated: otherwise region writes would
    // fail with ENOSPC later, when the file system fills.
    common::Result<uint64_t> reserved = ReserveFileBlocks(fd, options.path, options.size);
    if (!reserved.ok()) {
      close(fd);
      return reserved.status();
    }
    if (reserved_bytes != nullptr) *reserved_bytes = *reserved;
  } else {
    close(fd);
    return common::Status::InvalidArgument(options.path + ": not a regular file or block device");
  }
  bool use_uring = options.mode != IoMode::kThreadPool;
  if (use_uring) {
    io_uring probe;
    int rc = io_uring_queue_init(2, &probe, 0);
    if (rc < 0) {
      if (options.mode == IoMode::kIoUring) {
        close(fd);
        return common::Status::Unavailable(std::string("io_uring: ") + std::strerror(-rc));
      }
      use_uring = false;
      if (why_fallback != nullptr) *why_fallback = std::string("io_uring: ") + std::strerror(-rc);
    } else {
      io_uring_queue_exit(&probe);
    }
  }
  return std::unique_ptr<BlockDevice>(
      new FileDevice(fd, options.size, preexisting, use_uring, options.pool_threads));
}

void DrainQueue(IoQueue& queue) {
  queue.Submit();
  while (queue.in_flight() > 0) {
    if (queue.Reap() == 0) {
      struct pollfd pfd = {queue.event_fd(), POLLIN, 0};
      poll(&pfd, 1, 100);
    }
  }
}

}  // namespace strata::tiers
