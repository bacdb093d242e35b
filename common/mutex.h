// Mutex, MutexLock, ReleasableMutexLock and CondVar: std::mutex and
// std::condition_variable with clang thread-safety annotations
// (common/thread_annotations.h), which libstdc++'s types lack. Every lock
// in strata is a common::Mutex; the data it guards is GUARDED_BY it, and a
// function that expects it held is REQUIRES it, so a clang build with
// -DSTRATA_THREAD_SAFETY=ON (-Werror=thread-safety) rejects an access
// without the lock. The wrappers are inline and add nothing to
// std::mutex's cost: Lock() is std::mutex::lock(), a CondVar wait is
// std::condition_variable's.
//
// Lock order. A thread that holds several of these locks took them in this
// order (a lock further down is never held while one further up is taken):
//   0. tiers: RamTier::reap_mu_ (ReapExpired() holds it while it starts a
//      delayed flush_all that has come due, and the flush hook takes the
//      SSD log's lock; then it takes the shard locks)
//   1. tiers: SsdLog::mu_ (the SSD log; Append()'s still_current and
//      Remove()'s `first` callbacks run under it and take RAM shard locks)
//   2. tiers: RamTier's shard locks (one at a time)
//   3. tiers: SsdIndex's shard locks (one at a time; taken under the log's
//      lock, under a RAM shard lock by the checks RamTier::Restore(),
//      AddIf() and StillCurrentAbsent() run there, or alone)
//   4. tiers: ItemSlabs' stripe locks, then pool_mu_; and cells_mu_ (taken
//      by item allocation and release, which may run under any lock above)
// Every other lock is a leaf: nothing else is taken while it is held
// (SsdLog::pending_mu_, taken under the log's lock or a RAM shard lock;
// Hotness::ghost_mu_, the block device's queue locks, MemoryDevice::mu_,
// PrefixStats::mu_, the ServerContext and Server locks, Worker's
// memory_wake_mu_, MetricsServer's start_error_mu_). Where two ordered
// locks are members of one class (RamTier, ItemSlabs), ACQUIRED_AFTER states
// the order and clang checks it (-Wthread-safety-beta). Across classes (the
// SSD log, the RAM tier and the SSD index do not include each other) clang
// cannot check it: it is stated here and at the methods whose callbacks
// cross it (SsdLog::Append() and Remove(), RamTier::Restore(), AddIf() and
// StillCurrentAbsent()).
//
// Thread safety: a Mutex is shared by the threads it serializes; a
// MutexLock or ReleasableMutexLock belongs to the thread that made it; a
// CondVar may be waited on and notified from any thread.
#pragma once

#include <chrono>
#include <condition_variable>
#include <mutex>

#include "common/thread_annotations.h"

namespace strata::common {

class CondVar;

// A std::mutex the analysis knows as a capability.
class CAPABILITY("mutex") Mutex {
 public:
  Mutex() = default;
  Mutex(const Mutex&) = delete;
  Mutex& operator=(const Mutex&) = delete;

  void Lock() ACQUIRE() { mu_.lock(); }
  void Unlock() RELEASE() { mu_.unlock(); }
  // True if the lock was free and is now held.
  bool TryLock() TRY_ACQUIRE(true) { return mu_.try_lock(); }
  // Tells the analysis the lock is held where it cannot see it (checks
  // nothing at run time, as LevelDB's).
  void AssertHeld() ASSERT_CAPABILITY(this) {}

 private:
  friend class CondVar;
  std::mutex mu_;
};

// Holds `mu` for its scope (std::lock_guard).
class SCOPED_CAPABILITY MutexLock {
 public:
  explicit MutexLock(Mutex* mu) ACQUIRE(mu) : mu_(mu) { mu_->Lock(); }
  ~MutexLock() RELEASE() { mu_->Unlock(); }
  MutexLock(const MutexLock&) = delete;
  MutexLock& operator=(const MutexLock&) = delete;

 private:
  Mutex* const mu_;
};

// Holds `mu` for its scope, except between Unlock() and Lock() (a
// std::unique_lock that is released early or for a while).
class SCOPED_CAPABILITY ReleasableMutexLock {
 public:
  explicit ReleasableMutexLock(Mutex* mu) ACQUIRE(mu) : mu_(mu) { mu_->Lock(); }
  ~ReleasableMutexLock() RELEASE() {
    if (held_) mu_->Unlock();
  }
  ReleasableMutexLock(const ReleasableMutexLock&) = delete;
  ReleasableMutexLock& operator=(const ReleasableMutexLock&) = delete;

  // Requires the lock held by this object; releases it.
  void Unlock() RELEASE() {
    held_ = false;
    mu_->Unlock();
  }
  // Requires the lock released by Unlock(); takes it again.
  void Lock() ACQUIRE() {
    mu_->Lock();
    held_ = true;
  }

 private:
  Mutex* const mu_;
  bool held_ = true;
};

// A std::condition_variable waited on with a common::Mutex held. There is
// no predicate form: a caller loops (`while (!ready) cv.Wait(mu);`, which
// is what std::condition_variable::wait(lock, pred) does), so the analysis
// sees the guarded reads in the loop condition made with the lock held.
class CondVar {
 public:
  CondVar() = default;
  CondVar(const CondVar&) = delete;
  CondVar& operator=(const CondVar&) = delete;

  // Releases `mu`, waits for a notification (or a spurious wakeup), takes
  // `mu` again.
  void Wait(Mutex& mu) REQUIRES(mu) {
    std::unique_lock<std::mutex> lock(mu.mu_, std::adopt_lock);
    cv_.wait(lock);
    lock.release();
  }
  // The same, until `deadline` at the latest; returns
  // std::cv_status::timeout if it passed.
  template <class Clock, class Duration>
  std::cv_status WaitUntil(Mutex& mu, const std::chrono::time_point<Clock, Duration>& deadline)
      REQUIRES(mu) {
    std::unique_lock<std::mutex> lock(mu.mu_, std::adopt_lock);
    std::cv_status status = cv_.wait_until(lock, deadline);
    lock.release();
    return status;
  }
  void NotifyOne() { cv_.notify_one(); }
  void NotifyAll() { cv_.notify_all(); }

 private:
  std::condition_variable cv_;
};

}  // namespace strata::common
