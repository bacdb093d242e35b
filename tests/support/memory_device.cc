#include "tests/support/memory_device.h"

#include <sys/eventfd.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <deque>

namespace strata::tiers {
namespace {

class MemoryQueue final : public IoQueue {
 public:
  explicit MemoryQueue(MemoryDevice& dev) : dev_(dev), efd_(eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC)) {}
  ~MemoryQueue() override { close(efd_); }

  void Read(uint64_t offset, void* buf, size_t len, IoCompletion* done) override {
    pending_.push_back({false, offset, buf, len, done});
  }
  void Write(uint64_t offset, const void* buf, size_t len, IoCompletion* done) override {
    pending_.push_back({true, offset, const_cast<void*>(buf), len, done});
  }
  void Submit() override {
    if (pending_.empty()) return;
    for (const Req& r : pending_) {
      ready_.emplace_back(r.done, dev_.Execute(r.write, r.offset, r.buf, r.len));
    }
    pending_.clear();
    uint64_t one = 1;
    ssize_t ignored = write(efd_, &one, sizeof(one));
    (void)ignored;
  }
  size_t Reap() override {
    uint64_t v;
    while (read(efd_, &v, sizeof(v)) > 0) {
    }
    std::deque<std::pair<IoCompletion*, int64_t>> ready;
    ready.swap(ready_);
    for (auto& [done, res] : ready) done->OnIoComplete(res);
    return ready.size();
  }
  int event_fd() const override { return efd_; }
  size_t in_flight() const override { return pending_.size() + ready_.size(); }

 private:
  struct Req {
    bool write;
    uint64_t offset;
    void* buf;
    size_t len;
    IoCompletion* done;
  };
  MemoryDevice& dev_;
  int efd_;
  std::vector<Req> pending_;
  std::deque<std::pair<IoCompletion*, int64_t>> ready_;
};

}  // namespace

MemoryDevice::MemoryDevice(uint64_t size, size_t block_size)
    : block_size_(block_size), bytes_(size, 0) {}

std::unique_ptr<IoQueue> MemoryDevice::NewQueue(unsigned) {
  return std::make_unique<MemoryQueue>(*this);
}

void MemoryDevice::AddFault(const Fault& fault) {
  common::MutexLock lock(&mu_);
  faults_.push_back(fault);
}

void MemoryDevice::ClearFaults() {
  common::MutexLock lock(&mu_);
  faults_.clear();
}

void MemoryDevice::Poke(uint64_t offset, const void* data, size_t len) {
  common::MutexLock lock(&mu_);
  std::memcpy(bytes_.data() + offset, data, len);
}

void MemoryDevice::Peek(uint64_t offset, void* data, size_t len) const {
  common::MutexLock lock(&mu_);
  std::memcpy(data, bytes_.data() + offset, len);
}

uint64_t MemoryDevice::bytes_written() const {
  common::MutexLock lock(&mu_);
  return bytes_written_;
}

const Fault* MemoryDevice::Match(Fault::Kind kind, uint64_t offset, size_t len) {
  for (auto it = faults_.begin(); it != faults_.end(); ++it) {
    if (it->kind != kind || offset + len <= it->begin || offset >= it->end) continue;
    matched_ = *it;
    if (it->times > 0 && --it->times == 0) faults_.erase(it);
    return &matched_;
  }
  return nullptr;
}

int64_t MemoryDevice::Execute(bool write, uint64_t offset, void* buf, size_t len) {
  common::MutexLock lock(&mu_);
  if (offset % block_size_ != 0 || len % block_size_ != 0 ||
      reinterpret_cast<uintptr_t>(buf) % block_size_ != 0) {
    return -EINVAL;  // what O_DIRECT says to unaligned requests
  }
  if (offset >= bytes_.size()) return 0;
  if (offset + len > bytes_.size()) len = bytes_.size() - offset;
  if (write) {
    if (const Fault* f = Match(Fault::Kind::kFailWrite, offset, len)) return -f->error;
    if (Match(Fault::Kind::kLoseWrite, offset, len)) return static_cast<int64_t>(len);
    if (Match(Fault::Kind::kShortWrite, offset, len)) len = len / 2 / block_size_ * block_size_;
    std::memcpy(bytes_.data() + offset, buf, len);
    bytes_written_ += len;
    return static_cast<int64_t>(len);
  }
  if (const Fault* f = Match(Fault::Kind::kFailRead, offset, len)) return -f->error;
  if (Match(Fault::Kind::kShortRead, offset, len)) len = len / 2 / block_size_ * block_size_;
  std::memcpy(buf, bytes_.data() + offset, len);
  if (const Fault* f = Match(Fault::Kind::kFlipBitOnRead, offset, len)) {
    uint64_t at = std::max<uint64_t>(f->begin, offset) - offset;
    if (at < len) static_cast<char*>(buf)[at] ^= 0x10;
  }
  return static_cast<int64_t>(len);
}

}  // namespace strata::tiers
