// OutputQueue: a connection's pending reply bytes, in request order.
//
// Replies are appended as text (copied into pooled text blocks that start at
// 256 bytes and grow up to 16 KiB, so a batch of small replies leaves in one
// contiguous piece while a short reply holds little) or as an item's value
// (sent from the item's own memory; the ItemRef keeps it alive until the
// bytes are written). Gather() exposes the front as iovecs for writev;
// Consume() drops what the socket took. Blocks handed to an asynchronous
// write are sealed: later appends never move them.
//
// Thread safety: none; owned by one connection on one loop thread.
#pragma once

#include <sys/uio.h>

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>
#include <vector>

#include "tiers/item/item.h"

namespace strata::proxy {

class OutputQueue {
 public:
  // Values at most this long are copied into the text stream; longer ones
  // are referenced.
  static constexpr size_t kCopyValueLimit = 4096;
  // Spare text blocks kept: by a queue of its own, or in a shared pool.
  static constexpr size_t kMaxSpare = 4;
  static constexpr size_t kMaxSharedSpare = 64;

  // Text blocks written out go to `pool` (shared by the queues of one
  // thread: a worker's connections), and new ones come from it, so an empty
  // queue holds no block. Without it, a queue keeps up to kMaxSpare of its own.
  void ShareSpareBlocks(std::vector<std::string>* pool) { shared_spare_ = pool; }

  void Append(std::string_view text);
  // Reserves `n` contiguous bytes at the end of the text stream; the caller
  // fills them at once.
  char* AppendSpace(size_t n);
  // Appends a reply line: `line` and "\r\n".
  void AppendLine(std::string_view line) {
    char* p = AppendSpace(line.size() + 2);
    std::memcpy(p, line.data(), line.size());
    p[line.size()] = '\r';
    p[line.size() + 1] = '\n';
  }
  // Appends item->ValueWithCrlf(): copied if short, referenced if long.
  void AppendValue(const tiers::ItemRef& item);

  size_t bytes() const { return bytes_; }
  bool empty() const { return bytes_ == 0; }
  // Of bytes(), those not sent yet from text segments (replies composed or
  // copied here), as opposed to values sent from their items' memory.
  size_t text_bytes() const { return text_bytes_; }
  // Memory the queue holds: its text blocks (their capacity), the whole
  // of every value it references (kept alive by the queue, even after the
  // cache has let go of it) and its segment array.
  size_t held_bytes() const {
    return text_capacity_ + value_bytes_ + segments_.capacity() * sizeof(Segment);
  }
  // Of held_bytes(), the referenced values'.
  size_t value_bytes() const { return value_bytes_; }
  // The size (value + "\r\n") of the first value the queue references,
  // the one being sent or next to be; 0 if none.
  size_t FirstValueBytes() const;

  // Fills up to `max` iovecs, of at most `max_bytes` together (the last one
  // cut short), from the front of the queue; returns the count and adds
  // their total length to *total.
  size_t Gather(struct iovec* iov, size_t max, size_t* total,
                size_t max_bytes = SIZE_MAX) const;
  // Drops `n` bytes from the front.
  void Consume(size_t n);
  // Seals the first `segments` segments (they are in an async write).
  void Seal(size_t segments) { sealed_ = segments; }
  void Unseal() { sealed_ = 0; }

 private:
  struct Segment {
    std::string text;     // used when item is empty
    tiers::ItemRef item;  // when set, the bytes are item->ValueWithCrlf()
    size_t offset = 0;    // bytes already written
    size_t size() const { return item ? item->value_len + 2 : text.size(); }
    const char* data() const { return item ? item->Value() : text.data(); }
  };
  Segment& TextTail(size_t need);
  void Recycle(std::string&& text);
  size_t count() const { return segments_.size() - head_; }
  void PopFront();

  // A text block starts at kFirstTextBlock bytes, so the many connections
  // of a batch that each owe a short reply hold little, and grows (copied
  // to a bigger block, while it is not sealed) up to kMaxTextBlock, so a
  // batch's replies of up to that size still leave as one piece. Only blocks
  // still at their first size are recycled; grown ones go back to malloc.
  static constexpr size_t kFirstTextBlock = 256;
  static constexpr size_t kMaxTextBlock = 16 * 1024;
  // Never held inline in the std::string (see segments_): a string's inline
  // buffer is smaller than the string object (15 of 32 bytes in libstdc++).
  // Not std::string().capacity(), which clang 14 cannot evaluate at compile
  // time with libstdc++ 12.
  static_assert(kFirstTextBlock >= sizeof(std::string));

  // The queued segments are segments_[head_, end). A vector, not a deque:
  // an empty queue allocates nothing, and a busy one holds a few 48-byte
  // segments rather than a 512-byte deque node. Moving a Segment (when the
  // vector grows or PopFront() compacts it) never moves its bytes: a text
  // block is reserved at kFirstTextBlock or more, so never held inline, and a
  // value stays in its item. That is what keeps sealed segments in place.
  std::vector<Segment> segments_;
  size_t head_ = 0;
  std::vector<std::string> spare_;  // recycled text blocks, when not shared
  std::vector<std::string>* shared_spare_ = nullptr;
  size_t bytes_ = 0;
  size_t text_bytes_ = 0;  // of bytes_, in text segments
  size_t sealed_ = 0;
  size_t text_capacity_ = 0;  // capacity of the queued text blocks
  size_t value_bytes_ = 0;    // value + "\r\n" of the queued value segments
};

}  // namespace strata::proxy
