#include "proxy/shared/connection_memory.h"

#include <algorithm>

namespace strata::proxy {

ConnectionMemory::ConnectionMemory(uint64_t limit)
    : limit_(limit), chunk_(std::clamp<uint64_t>(limit / 64, 4096, 256 * 1024)) {}

void ConnectionMemory::Reserve(uint64_t bytes) {
  const uint64_t before = charged_.fetch_add(bytes, std::memory_order_relaxed);
  if (before <= limit_ && before + bytes > limit_ && on_over_) on_over_();
}

ConnectionMemory::Lease::~Lease() {
  if (reserved_ > 0) pool_.Release(reserved_);
}

void ConnectionMemory::Lease::Charge(int64_t delta) {
  used_ = static_cast<uint64_t>(static_cast<int64_t>(used_) + delta);
  const uint64_t chunk = pool_.chunk_;
  if (used_ > reserved_) {
    // Take what is missing and one chunk of slack.
    const uint64_t take = used_ - reserved_ + chunk;
    reserved_ += take;
    pool_.Reserve(take);
  } else if (reserved_ - used_ > 2 * chunk) {
    // Keep one chunk of slack; give the rest back.
    const uint64_t give = reserved_ - used_ - chunk;
    reserved_ -= give;
    pool_.Release(give);
  }
}

ChargedIoQueue::~ChargedIoQueue() {
  // The inner queue goes first: it may still hold requests (the worker
  // drains it before closing, but a failed start may not have).
  inner_.reset();
}

void ChargedIoQueue::Read(uint64_t offset, void* buf, size_t len, tiers::IoCompletion* done) {
  Tracked* t;
  if (spare_.empty()) {
    owned_.push_back(std::make_unique<Tracked>());
    t = owned_.back().get();
    t->queue = this;
  } else {
    t = spare_.back();
    spare_.pop_back();
  }
  t->done = done;
  t->len = len;
  read_bytes_ += len;
  lease_.Charge(static_cast<int64_t>(len));
  inner_->Read(offset, buf, len, t);
}

void ChargedIoQueue::Tracked::OnIoComplete(int64_t result) {
  ChargedIoQueue* q = queue;
  tiers::IoCompletion* d = done;
  q->read_bytes_ -= len;
  q->lease_.Charge(-static_cast<int64_t>(len));
  done = nullptr;
  q->spare_.push_back(this);
  d->OnIoComplete(result);
}

uint64_t DefaultConnectionMemory(uint64_t ram_bytes) {
  return std::clamp<uint64_t>(ram_bytes / 8, uint64_t{32} << 20, uint64_t{1} << 30);
}

}  // namespace strata::proxy
