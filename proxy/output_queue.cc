#include "proxy/output_queue.h"

#include <algorithm>
#include <cstring>

namespace strata::proxy {
namespace {
constexpr size_t kTextBlock = 16 * 1024;
}  // namespace

OutputQueue::Segment& OutputQueue::TextTail(size_t need) {
  if (!segments_.empty() && segments_.size() > sealed_) {
    Segment& tail = segments_.back();
    if (!tail.item && tail.text.capacity() - tail.text.size() >= need) return tail;
  }
  Segment seg;
  std::vector<std::string>& spare = shared_spare_ != nullptr ? *shared_spare_ : spare_;
  if (!spare.empty()) {
    seg.text = std::move(spare.back());
    spare.pop_back();
  }
  seg.text.reserve(std::max(kTextBlock, need));
  segments_.push_back(std::move(seg));
  return segments_.back();
}

void OutputQueue::Recycle(std::string&& text) {
  std::vector<std::string>& spare = shared_spare_ != nullptr ? *shared_spare_ : spare_;
  const size_t max = shared_spare_ != nullptr ? kMaxSharedSpare : kMaxSpare;
  if (spare.size() < max && text.capacity() <= 4 * kTextBlock) {
    text.clear();
    spare.push_back(std::move(text));
  }
}

void OutputQueue::Append(std::string_view text) {
  Segment& tail = TextTail(text.size());
  tail.text.append(text);
  bytes_ += text.size();
}

char* OutputQueue::AppendSpace(size_t n) {
  Segment& tail = TextTail(n);
  size_t old = tail.text.size();
  tail.text.resize(old + n);
  bytes_ += n;
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
}

size_t OutputQueue::Gather(struct iovec* iov, size_t max, size_t* total) const {
  size_t count = 0;
  for (const Segment& seg : segments_) {
    if (count == max) break;
    size_t len = seg.size() - seg.offset;
    if (len == 0) continue;
    iov[count].iov_base = const_cast<char*>(seg.data() + seg.offset);
    iov[count].iov_len = len;
    *total += len;
    ++count;
  }
  return count;
}

void OutputQueue::Consume(size_t n) {
  bytes_ -= n;
  while (n > 0 && !segments_.empty()) {
    Segment& front = segments_.front();
    size_t left = front.size() - front.offset;
    if (n < left) {
      front.offset += n;
      return;
    }
    n -= left;
    if (!front.item) Recycle(std::move(front.text));
    segments_.pop_front();
    if (sealed_ > 0) --sealed_;
  }
  // Drop fully written segments (e.g. empty text tails).
  while (!segments_.empty() && segments_.front().size() == segments_.front().offset &&
         segments_.size() > 1) {
    if (!segments_.front().item) Recycle(std::move(segments_.front().text));
    segments_.pop_front();
    if (sealed_ > 0) --sealed_;
  }
}

}  // namespace strata::proxy
