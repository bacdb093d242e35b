#include "tiers/block_device.h"

#include <fcntl.h>
#include <liburing.h>
#include <linux/fs.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/file.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <condition_variable>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <mutex>
#include <thread>
#include <vector>

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
      std::lock_guard lock(mu_);
      stop_ = true;
    }
    cv_.notify_all();
    for (auto& t : threads_) t.join();
  }
  void Push(std::vector<Job>& jobs) {
    {
      std::lock_guard lock(mu_);
      for (Job& j : jobs) jobs_.push_back(j);
    }
    cv_.notify_all();
    jobs.clear();
  }

 private:
  void Run();

  int fd_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<Job> jobs_;
  bool stop_ = false;
  std::vector<std::thread> threads_;
};

class ThreadPoolQueue final : public IoQueue {
 public:
  explicit ThreadPoolQueue(IoThreadPool& pool) : pool_(pool), efd_(NewEventFd()) {}
  ~ThreadPoolQueue() override {
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
      std::lock_guard lock(mu_);
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

  // Called by pool threads.
  void Complete(IoCompletion* c, int64_t result) {
    {
      std::lock_guard lock(mu_);
      completed_.emplace_back(c, result);
    }
    uint64_t one = 1;
    ssize_t ignored = write(efd_, &one, sizeof(one));
    (void)ignored;
  }

 private:
  IoThreadPool& pool_;
  int efd_;
  std::vector<IoThreadPool::Job> pending_;
  std::mutex mu_;
  std::vector<std::pair<IoCompletion*, int64_t>> completed_;
  size_t in_flight_ = 0;
};

void IoThreadPool::Run() {
  for (;;) {
    Job job;
    {
      std::unique_lock lock(mu_);
      cv_.wait(lock, [this] { return stop_ || !jobs_.empty(); });
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

void AlignedFree::operator()(void* p) const { std::free(p); }

std::unique_ptr<char, AlignedFree> AllocateAligned(size_t len, size_t alignment) {
  void* p = nullptr;
  size_t rounded = (len + alignment - 1) / alignment * alignment;
  if (posix_memalign(&p, alignment, rounded == 0 ? alignment : rounded) != 0) return nullptr;
  return std::unique_ptr<char, AlignedFree>(static_cast<char*>(p));
}

common::Result<std::unique_ptr<BlockDevice>> OpenFileDevice(const FileDeviceOptions& options,
                                                            std::string* why_fallback) {
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
    if (static_cast<uint64_t>(st.st_size) < options.size) {
      int rc = posix_fallocate(fd, 0, static_cast<off_t>(options.size));
      if (rc != 0) {
        close(fd);
        return common::Status::IoError(options.path + ": cannot preallocate " +
                                       std::to_string(options.size) + " bytes: " + std::strerror(rc));
      }
    }
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
