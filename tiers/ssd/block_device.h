// BlockDevice and IoQueue: the SSD tier's only way to the disk.
//
// A BlockDevice is a file or block device of fixed size, opened for direct
// I/O: offsets, lengths and buffer addresses must be multiples of
// block_size(). I/O is asynchronous and goes through IoQueues: each thread
// that does I/O owns one queue; Read()/Write() queue a request, Submit()
// hands queued requests to the kernel, and Reap() runs the completions of
// finished requests on the calling thread. event_fd() becomes readable when
// completions are waiting, so an event loop can watch it (the proxy watches
// it with a uv_poll_t, so completions run on the worker that submitted).
//
// Implementations:
//   - io_uring (liburing): one ring per queue, completions signalled through
//     an eventfd registered with the ring.
//   - thread pool (pread/pwrite): the fallback when io_uring cannot be set
//     up (seccomp profiles of container runtimes deny it with EPERM, some
//     kernels disable it); the same queue interface, completions signalled
//     through an eventfd.
//   - memory (tests/support/memory_device.h): for tests, with injectable
//     faults; in strata_test_support, not in this library.
//
// A regular file is reserved when it is opened: it is extended to the
// device's size and every hole in it is allocated (ReserveFileBlocks), so a
// sparse file (made with `truncate`, or copied without its zeros) cannot
// run out of space later, in the middle of region writes. When the file
// system cannot give the blocks, the open fails and says how many bytes
// are missing.
//
// Invariant: every request's completion runs exactly once, from Reap() on
// the queue's thread, with the bytes transferred or -errno.
//
// Thread safety: a BlockDevice may be shared by all threads; an IoQueue
// belongs to one thread (the one that calls Read/Write/Submit/Reap).
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "common/status.h"

namespace strata::tiers {

// Receives the result of one request: bytes transferred (possibly fewer than
// asked: a short transfer) or a negative errno.
class IoCompletion {
 public:
  virtual void OnIoComplete(int64_t result) = 0;

 protected:
  ~IoCompletion() = default;
};

class IoQueue {
 public:
  virtual ~IoQueue() = default;
  // Queue a request. `buf`, `offset` and `len` must be block aligned; `buf`
  // and `done` must stay valid until the completion has run.
  virtual void Read(uint64_t offset, void* buf, size_t len, IoCompletion* done) = 0;
  virtual void Write(uint64_t offset, const void* buf, size_t len, IoCompletion* done) = 0;
  // Hands queued requests to the kernel (or the pool).
  virtual void Submit() = 0;
  // Runs the completions that are ready; returns how many ran.
  virtual size_t Reap() = 0;
  // Readable when Reap() has work.
  virtual int event_fd() const = 0;
  // Requests queued or in flight whose completion has not run yet.
  virtual size_t in_flight() const = 0;
};

// How a file device does its I/O.
enum class IoMode { kAuto, kIoUring, kThreadPool };

class BlockDevice {
 public:
  virtual ~BlockDevice() = default;
  virtual uint64_t size() const = 0;
  // Bytes the device held before it was opened: less than size() when a
  // file shorter than the log was extended (new, or truncated).
  virtual uint64_t preexisting_bytes() const { return size(); }
  virtual size_t block_size() const = 0;
  // "io_uring", "threadpool" or "memory".
  virtual std::string_view mode() const = 0;
  // A queue for the calling thread with room for `depth` requests in flight
  // (more are held back and submitted as room frees up).
  virtual std::unique_ptr<IoQueue> NewQueue(unsigned depth) = 0;
};

struct FileDeviceOptions {
  std::string path;
  uint64_t size = 0;            // bytes; a regular file is reserved to it (ReserveFileBlocks)
  IoMode mode = IoMode::kAuto;  // kAuto: io_uring, else the thread pool
  unsigned pool_threads = 4;   // thread-pool mode
  // How long to wait for the file's lock held by another process (one that
  // is exiting releases it within moments) before failing.
  int lock_wait_ms = 5000;
};

// Opens (creating it if needed) a file or block device with O_DIRECT. A
// regular file is reserved first (ReserveFileBlocks); *reserved_bytes (if
// given) receives the bytes that took (0 for a file already whole). In
// kAuto mode a failed io_uring setup falls back to the thread pool;
// *why_fallback (if given) receives the reason. The file is locked (flock,
// exclusive) while the device is open: a second open fails (after
// FileDeviceOptions::lock_wait_ms).
common::Result<std::unique_ptr<BlockDevice>> OpenFileDevice(const FileDeviceOptions& options,
                                                            std::string* why_fallback = nullptr,
                                                            uint64_t* reserved_bytes = nullptr);

// Makes every block of [0, size) of the regular file open as `fd` (named
// `path` in messages) allocated: extends a shorter file to `size` and fills
// the holes of a sparse one, keeping the data it has. Holes are found with
// SEEK_HOLE, and a file with fewer allocated blocks than `size` counts as
// holed too. They are allocated with fallocate(2); where the file system
// has no fallocate (or `use_fallocate` is false, for tests), zeros are
// written over them (`fd` may be O_DIRECT). Returns the bytes newly
// allocated, or IoError "<path>: cannot reserve the SSD tier's <size>: <n>
// of it could not be allocated (the file system has <free> free): <reason>"
// with the sizes in MiB and bytes. Blocking; for startup.
common::Result<uint64_t> ReserveFileBlocks(int fd, const std::string& path, uint64_t size,
                                           bool use_fallocate = true);

// Waits (blocking the calling thread) until `queue` has no request in
// flight, reaping completions as they come. Only for threads that may
// block: recovery at startup, the SSD log's writer and reclaim threads
// (each on its own queue), the warm-up thread, and tests; never a worker's
// event loop.
void DrainQueue(IoQueue& queue);

// Allocates a buffer aligned for direct I/O, or nullptr. Buffers of
// kMappedBufferBytes or more (region buffers, a reclaim's read-back) are
// mapped with mmap instead of taken from malloc's heap: they never leave
// holes in the heap the items live in, only the pages written become
// resident, and freeing one gives its pages back to the kernel at once.
struct AlignedFree {
  size_t mapped = 0;  // bytes mapped; 0 when the buffer came from posix_memalign
  void operator()(void* p) const;
};
inline constexpr size_t kMappedBufferBytes = size_t{1} << 20;
std::unique_ptr<char, AlignedFree> AllocateAligned(size_t len, size_t alignment = 4096);

}  // namespace strata::tiers
