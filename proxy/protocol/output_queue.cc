#include "proxy/protocol/output_queue.h"

#include <algorithm>
#include <cstring>

namespace strata::proxy {
namespace {
// Segment slots an empty queue keeps (and the written front a busy one
// carries before compacting).
constexpr size_t kKeptSegments = 16;
}  // namespace

OutputQueue::Segment& OutputQueue::TextTail(size_t need) {
  if (count() > sealed_) {
    Segment& tail = segments_.back();
    if (!tail.item) {
      const size_t want = tail.text.size() + need;
      if (want <= tail.text.capacity()) return tail;
      if (want <= kMaxTextBlock) {
        // Doubling, and with room for a short reply after this one (the
        // "END" after a value).
        const size_t before = tail.text.capacity();
        tail.text.reserve(
            std::min(kMaxTextBlock, std::max(want + kFirstTextBlock, 2 * tail.text.capacity())));
        text_capacity_ += tail.text.capacity() - before;
        return tail;
      }
    }
  }
  Segment seg;
  std::vector<std::string>& spare = shared_spare_ != nullptr ? *shared_spare_ : spare_;
  if (!spare.empty()) {
    seg.text = std::move(spare.back());
    spare.pop_back();
  }
  seg.text.reserve(std::max(kFirstTextBlock, need));
  text_capacity_ += seg.text.capacity();
  segments_.push_back(std::move(seg));
  return segments_.back();
}

void OutputQueue::PopFront() {
  Segment& front = segments_[head_];
  if (front.item) {
    value_bytes_ -= front.size();
  } else {
    text_capacity_ -= front.text.capacity();
    Recycle(std::move(front.text));
  }
  front = Segment();  // frees a block Recycle() did not keep, drops the item
  ++head_;
  if (sealed_ > 0) --sealed_;
  if (head_ == segments_.size()) {
    // Empty: keep a small vector's storage, give back a big one's.
    segments_.clear();
    if (segments_.capacity() > kKeptSegments) std::vector<Segment>().swap(segments_);
    head_ = 0;
  } else if (head_ >= kKeptSegments && head_ * 2 >= segments_.size()) {
    // A long stream (a multi-get held back by a slow client): drop the
    // written front so the vector does not grow without bound.
    segments_.erase(segments_.begin(), segments_.begin() + static_cast<std::ptrdiff_t>(head_));
    head_ = 0;
  }
}

void OutputQueue::Recycle(std::string&& text) {
  std::vector<std::string>& spare = shared_spare_ != nullptr ? *shared_spare_ : spare_;
  const size_t max = shared_spare_ != nullptr ? kMaxSharedSpare : kMaxSpare;
  if (spare.size() < max && text.capacity() == kFirstTextBlock) {
    text.clear();
    spare.push_back(std::move(text));
  }
}

void OutputQueue::Append(std::string_view text) {
  Segment& tail = TextTail(text.size());
  tail.text.append(text);
  bytes_ += text.size();
  text_bytes_ += text.size();
}

char* OutputQueue::AppendSpace(size_t n) {
  Segment& tail = TextTail(n);
  size_t old = tail.text.size();
  tail.text.resize(old + n);
  bytes_ += n;
  text_bytes_ += n;
  return tail.text.data() + old;
}

void OutputQueue::AppendValue(const tiers::ItemRef& item) {
  size_t n = size_t{item->value_len} + 2;
  if (n <= kCopyValueLimit) {
    std::memcpy(AppendSpace(n), item->Value(), n);
    return;
  }
  Segment seg;
  seg.item = item;
  segments_.push_back(std::move(seg));
  bytes_ += n;
  value_bytes_ += n;
}

size_t OutputQueue::FirstValueBytes() const {
  if (value_bytes_ == 0) return 0;
  for (size_t i = head_; i < segments_.size(); ++i) {
    if (segments_[i].item) return segments_[i].size();
  }
  return 0;
}

size_t OutputQueue::Gather(struct iovec* iov, size_t max, size_t* total,
                           size_t max_bytes) const {
  size_t count = 0;
  size_t room = max_bytes;
  for (size_t i = head_; i < segments_.size(); ++i) {
    const Segment& seg = segments_[i];
    if (count == max || room == 0) break;
    const size_t len = std::min(seg.size() - seg.offset, room);
    if (len == 0) continue;
    room -= len;
    iov[count].iov_base = const_cast<char*>(seg.data() + seg.offset);
    iov[count].iov_len = len;
    *total += len;
    ++count;
  }
  return count;
}

void OutputQueue::Consume(size_t n) {
  bytes_ -= n;
  while (n > 0 && count() > 0) {
    Segment& front = segments_[head_];
    size_t left = front.size() - front.offset;
    const size_t taken = std::min(n, left);
    if (!front.item) text_bytes_ -= taken;
    if (n < left) {
      front.offset += n;
      return;
    }
    n -= left;
    PopFront();
  }
  // Drop fully written segments (e.g. empty text tails).
  while (count() > 1 && segments_[head_].size() == segments_[head_].offset) PopFront();
}

}  // namespace strata::proxy
