// MemoryDevice: a BlockDevice in RAM for tests, with injectable faults (test
// support: in strata_test_support, which no production target links).
//
// Requests run when Submit() is called and complete at the next Reap(), so
// code under test sees the same asynchronous shape as with a real device.
// Faults apply to requests that overlap a byte range: failed reads/writes
// (an errno), short reads/writes (half the length), bits flipped in what a
// read returns, and lost writes (reported as done, never stored: a crash
// before the data reached the medium).
//
// Thread safety: all methods may be called from any thread; each queue
// belongs to one thread, as for every BlockDevice.
#pragma once

#include <algorithm>
#include <cstdint>
#include <vector>

#include "common/mutex.h"
#include "tiers/ssd/block_device.h"

namespace strata::tiers {

struct Fault {
  enum class Kind { kFailRead, kFailWrite, kShortRead, kShortWrite, kFlipBitOnRead, kLoseWrite };
  Kind kind;
  uint64_t begin = 0;                 // byte range the fault applies to
  uint64_t end = UINT64_MAX;
  int error = 5;                      // errno for kFail* (EIO)
  int times = -1;                     // how many requests it hits; -1 = forever
};

class MemoryDevice final : public BlockDevice {
 public:
  explicit MemoryDevice(uint64_t size, size_t block_size = 4096);

  uint64_t size() const override { return bytes_.size(); }
  uint64_t preexisting_bytes() const override { return std::min<uint64_t>(preexisting_, size()); }
  // As if the file had been this long when opened (a truncated file).
  void SetPreexistingBytes(uint64_t bytes) { preexisting_ = bytes; }
  size_t block_size() const override { return block_size_; }
  std::string_view mode() const override { return "memory"; }
  std::unique_ptr<IoQueue> NewQueue(unsigned depth) override;

  void AddFault(const Fault& fault) EXCLUDES(mu_);
  void ClearFaults() EXCLUDES(mu_);
  // Direct access to the medium, for tests that corrupt or inspect it.
  void Poke(uint64_t offset, const void* data, size_t len) EXCLUDES(mu_);
  void Peek(uint64_t offset, void* data, size_t len) const EXCLUDES(mu_);
  uint64_t bytes_written() const EXCLUDES(mu_);

  // Runs one request against the medium; returns the result it completes
  // with. Used by the queues.
  int64_t Execute(bool write, uint64_t offset, void* buf, size_t len) EXCLUDES(mu_);

 private:
  // Returns the first matching fault (consuming one of its uses), or null.
  const Fault* Match(Fault::Kind kind, uint64_t offset, size_t len) REQUIRES(mu_);

  size_t block_size_;
  mutable common::Mutex mu_;  // a leaf
  // The medium: its size is fixed, its bytes are read and written under
  // mu_ (not GUARDED_BY: size() reads the size without the lock).
  std::vector<char> bytes_;
  std::vector<Fault> faults_ GUARDED_BY(mu_);
  Fault matched_ GUARDED_BY(mu_) = {};
  uint64_t bytes_written_ GUARDED_BY(mu_) = 0;
  uint64_t preexisting_ = UINT64_MAX;
};

}  // namespace strata::tiers
