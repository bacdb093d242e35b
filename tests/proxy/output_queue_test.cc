// Tests of OutputQueue: text appends, reserved space, values copied below
// kCopyValueLimit and referenced above it, Gather/Consume in arbitrary
// chunk sizes reproducing the exact byte stream, and sealed (in-flight)
// blocks staying put while more is appended.

#include "proxy/protocol/output_queue.h"

#include <gtest/gtest.h>
#include <sys/uio.h>

#include <cstring>
#include <random>
#include <string>
#include <string_view>
#include <vector>

#include "tiers/item/item.h"

namespace strata::proxy {
namespace {

// An unpublished item holding `value` (and its trailing "\r\n").
tiers::ItemRef MakeItem(std::string_view key, std::string_view value) {
  tiers::Item* item = tiers::Item::Create(key, 0, 0, static_cast<uint32_t>(value.size()));
  EXPECT_NE(item, nullptr);
  std::memcpy(item->MutableValue(), value.data(), value.size());
  return tiers::ItemRef::Adopt(item);
}

std::string Pattern(size_t n, uint32_t seed) {
  std::string s(n, '\0');
  uint32_t x = seed * 2654435761u + 1;
  for (size_t i = 0; i < n; ++i) {
    x = x * 1103515245u + 12345u;
    s[i] = static_cast<char>('a' + (x >> 16) % 26);
  }
  return s;
}

// Everything queued, in order, without consuming it.
std::string Peek(const OutputQueue& q) {
  std::vector<struct iovec> iov(4096);
  size_t total = 0;
  size_t n = q.Gather(iov.data(), iov.size(), &total);
  std::string s;
  for (size_t i = 0; i < n; ++i)
    s.append(static_cast<const char*>(iov[i].iov_base), iov[i].iov_len);
  EXPECT_EQ(s.size(), total);
  return s;
}

// Drains the queue as a socket would: gathers at most `max_iov` iovecs,
// "writes" up to `max_bytes` of them, consumes that much.
std::string Drain(OutputQueue& q, size_t max_iov, size_t max_bytes) {
  std::string out;
  std::vector<struct iovec> iov(max_iov);
  while (!q.empty()) {
    size_t total = 0;
    size_t n = q.Gather(iov.data(), max_iov, &total);
    EXPECT_GT(n, 0u);
    size_t budget = std::min(total, max_bytes);
    size_t written = 0;
    for (size_t i = 0; i < n && written < budget; ++i) {
      size_t take = std::min(iov[i].iov_len, budget - written);
      out.append(static_cast<const char*>(iov[i].iov_base), take);
      written += take;
    }
    q.Consume(written);
  }
  return out;
}

TEST(OutputQueueTest, AppendTextAndSpace) {
  OutputQueue q;
  EXPECT_TRUE(q.empty());
  EXPECT_EQ(q.bytes(), 0u);
  q.Append("VALUE k 0 1\r\n");
  char* p = q.AppendSpace(3);
  std::memcpy(p, "x\r\n", 3);
  q.Append("END\r\n");
  EXPECT_EQ(q.bytes(), 21u);
  EXPECT_FALSE(q.empty());
  // Small appends share one block: a single iovec.
  struct iovec iov[4];
  size_t total = 0;
  EXPECT_EQ(q.Gather(iov, 4, &total), 1u);
  EXPECT_EQ(total, 21u);
  EXPECT_EQ(Peek(q), "VALUE k 0 1\r\nx\r\nEND\r\n");
  q.Consume(21);
  EXPECT_TRUE(q.empty());
  EXPECT_EQ(q.Gather(iov, 4, &total), 0u);
}

// A send takes at most max_bytes: the last iovec is cut short, and what is
// left goes whole in later sends, in order.
TEST(OutputQueueTest, GatherStopsAtMaxBytes) {
  const std::string value = Pattern(3000000, 7);
  OutputQueue q;
  q.Append("VALUE big 0 3000000\r\n");
  q.AppendValue(MakeItem("big", value));
  q.Append("END\r\n");
  const std::string want = "VALUE big 0 3000000\r\n" + value + "\r\nEND\r\n";
  std::string out;
  struct iovec iov[8];
  while (!q.empty()) {
    size_t total = 0;
    const size_t n = q.Gather(iov, 8, &total, 1 << 20);
    ASSERT_GT(n, 0u);
    ASSERT_LE(total, size_t{1} << 20);
    size_t sum = 0;
    for (size_t i = 0; i < n; ++i) {
      out.append(static_cast<const char*>(iov[i].iov_base), iov[i].iov_len);
      sum += iov[i].iov_len;
    }
    ASSERT_EQ(sum, total);
    // Full sends while more than a send's worth is left.
    if (q.bytes() > (size_t{1} << 20)) {
      ASSERT_EQ(total, size_t{1} << 20);
    }
    q.Consume(total);
  }
  EXPECT_EQ(out, want);
}

TEST(OutputQueueTest, SmallValuesAreCopied) {
  const size_t limit = OutputQueue::kCopyValueLimit;
  for (size_t len : {size_t{0}, size_t{1}, size_t{100}, limit - 2}) {
    OutputQueue q;
    std::string value = Pattern(len, 1);
    tiers::ItemRef item = MakeItem("k", value);
    q.Append("head\r\n");
    q.AppendValue(item);
    q.Append("END\r\n");
    EXPECT_EQ(q.bytes(), 6 + len + 2 + 5);
    struct iovec iov[8];
    size_t total = 0;
    ASSERT_EQ(q.Gather(iov, 8, &total), 1u) << len;  // one contiguous block
    // The block does not point into the item.
    const char* base = static_cast<const char*>(iov[0].iov_base);
    EXPECT_FALSE(base <= item->Value() && item->Value() < base + iov[0].iov_len);
    // The copy is independent of the item.
    item.Reset();
    EXPECT_EQ(Peek(q), "head\r\n" + value + "\r\nEND\r\n");
  }
}

TEST(OutputQueueTest, LargeValuesAreReferenced) {
  const size_t limit = OutputQueue::kCopyValueLimit;
  for (size_t len : {limit - 1, limit, size_t{100000}}) {
    OutputQueue q;
    std::string value = Pattern(len, 2);
    tiers::ItemRef item = MakeItem("k", value);
    const char* value_ptr = item->Value();
    q.Append("head\r\n");
    q.AppendValue(item);
    q.Append("END\r\n");
    EXPECT_EQ(q.bytes(), 6 + len + 2 + 5);
    struct iovec iov[8];
    size_t total = 0;
    ASSERT_EQ(q.Gather(iov, 8, &total), 3u) << len;
    EXPECT_EQ(iov[1].iov_base, value_ptr);
    EXPECT_EQ(iov[1].iov_len, len + 2);
    // The queue keeps the item alive (ASan would catch a use after free).
    item.Reset();
    EXPECT_EQ(Peek(q), "head\r\n" + value + "\r\nEND\r\n");
    // Text after a referenced value starts a new block.
    EXPECT_EQ(std::string(static_cast<const char*>(iov[2].iov_base), iov[2].iov_len), "END\r\n");
  }
}

TEST(OutputQueueTest, GatherRespectsMax) {
  OutputQueue q;
  std::string want;
  for (int i = 0; i < 10; ++i) {
    std::string value = Pattern(5000, static_cast<uint32_t>(i));
    q.AppendValue(MakeItem("k", value));
    want += value + "\r\n";
  }
  struct iovec iov[3];
  size_t total = 0;
  EXPECT_EQ(q.Gather(iov, 3, &total), 3u);
  EXPECT_EQ(total, 3 * 5002u);
  EXPECT_EQ(Drain(q, 3, SIZE_MAX), want);
}

// A random mix of appends, consumed in random chunk sizes, reproduces the
// exact stream.
TEST(OutputQueueTest, RandomAppendsAndPartialWrites) {
  std::mt19937_64 rng(42);
  for (int round = 0; round < 200; ++round) {
    OutputQueue q;
    std::string want;
    std::string got;
    std::vector<struct iovec> iov(64);
    size_t max_iov = 1 + rng() % 8;
    int ops = 1 + static_cast<int>(rng() % 60);
    for (int op = 0; op < ops; ++op) {
      switch (rng() % 5) {
        case 0: {
          std::string text = Pattern(rng() % 200, static_cast<uint32_t>(rng()));
          q.Append(text);
          want += text;
          break;
        }
        case 1: {
          size_t n = rng() % 40000;  // sometimes larger than a text block
          std::string text = Pattern(n, static_cast<uint32_t>(rng()));
          std::memcpy(q.AppendSpace(n), text.data(), n);
          want += text;
          break;
        }
        case 2:
        case 3: {
          size_t n = rng() % 3 == 0 ? rng() % 20000 : rng() % 5000;
          std::string value = Pattern(n, static_cast<uint32_t>(rng()));
          q.AppendValue(MakeItem("key", value));
          want += value + "\r\n";
          break;
        }
        case 4: {
          // A partial write of a random size.
          size_t total = 0;
          size_t n = q.Gather(iov.data(), max_iov, &total);
          size_t budget = total == 0 ? 0 : rng() % (total + 1);
          size_t written = 0;
          for (size_t i = 0; i < n && written < budget; ++i) {
            size_t take = std::min(iov[i].iov_len, budget - written);
            got.append(static_cast<const char*>(iov[i].iov_base), take);
            written += take;
          }
          q.Consume(written);
          break;
        }
      }
      ASSERT_EQ(q.bytes(), want.size() - got.size());
    }
    got += Drain(q, max_iov, 1 + rng() % 70000);
    ASSERT_EQ(got, want) << "round " << round;
    ASSERT_TRUE(q.empty());
  }
}

// Bytes handed to an asynchronous write (Gather, then Seal) must stay where
// they are and unchanged while more replies are appended, until Consume.
TEST(OutputQueueTest, SealedBlocksStayStable) {
  std::mt19937_64 rng(7);
  for (int round = 0; round < 100; ++round) {
    OutputQueue q;
    std::string want;
    // Some queued replies, partly written already.
    int n0 = 1 + static_cast<int>(rng() % 10);
    for (int i = 0; i < n0; ++i) {
      if (rng() % 3 == 0) {
        std::string value = Pattern(rng() % 9000, static_cast<uint32_t>(rng()));
        q.AppendValue(MakeItem("k", value));
        want += value + "\r\n";
      } else {
        std::string text = Pattern(1 + rng() % 3000, static_cast<uint32_t>(rng()));
        q.Append(text);
        want += text;
      }
    }
    size_t pre = rng() % (want.size() + 1);
    std::string drained;
    {
      std::vector<struct iovec> iov(64);
      size_t total = 0;
      size_t n = q.Gather(iov.data(), iov.size(), &total);
      size_t written = 0;
      for (size_t i = 0; i < n && written < pre; ++i) {
        size_t take = std::min(iov[i].iov_len, pre - written);
        drained.append(static_cast<const char*>(iov[i].iov_base), take);
        written += take;
      }
      q.Consume(written);
    }
    // The in-flight write.
    std::vector<struct iovec> inflight(1 + rng() % 8);
    size_t inflight_bytes = 0;
    size_t count = q.Gather(inflight.data(), inflight.size(), &inflight_bytes);
    inflight.resize(count);
    std::vector<std::string> snapshot;
    for (const struct iovec& v : inflight) {
      snapshot.emplace_back(static_cast<const char*>(v.iov_base), v.iov_len);
    }
    q.Seal(count);
    // Lots of appends while the write is in flight: small text (which would
    // fit in a partly used block), big text, values of both kinds.
    for (int i = 0; i < 50; ++i) {
      switch (rng() % 4) {
        case 0: {
          std::string text = Pattern(1 + rng() % 100, static_cast<uint32_t>(rng()));
          q.Append(text);
          want += text;
          break;
        }
        case 1: {
          size_t n = rng() % 30000;
          std::string text = Pattern(n, static_cast<uint32_t>(rng()));
          std::memcpy(q.AppendSpace(n), text.data(), n);
          want += text;
          break;
        }
        default: {
          std::string value = Pattern(rng() % 10000, static_cast<uint32_t>(rng()));
          q.AppendValue(MakeItem("k", value));
          want += value + "\r\n";
          break;
        }
      }
    }
    // The in-flight bytes are where they were, unchanged.
    for (size_t i = 0; i < inflight.size(); ++i) {
      ASSERT_EQ(
          std::string_view(static_cast<const char*>(inflight[i].iov_base), inflight[i].iov_len),
          snapshot[i])
          << "round " << round << " iovec " << i;
      drained += snapshot[i];
    }
    // The write completes.
    q.Consume(inflight_bytes);
    q.Unseal();
    drained += Drain(q, 1 + rng() % 16, 1 + rng() % 50000);
    ASSERT_EQ(drained, want) << "round " << round;
  }
}

// A long stream (a multi-get held back by a slow client): thousands of
// segments, written a few iovecs at a time while more are appended. The
// written front is compacted away and the vector grows under sealed
// segments; the bytes of an in-flight write must not move.
TEST(OutputQueueTest, LongStreamKeepsInFlightBytesInPlace) {
  std::mt19937_64 rng(11);
  OutputQueue q;
  std::string want;
  std::string got;
  auto append_some = [&](int n) {
    for (int i = 0; i < n; ++i) {
      std::string head = "VALUE k" + std::to_string(want.size()) + "\r\n";
      q.Append(head);
      want += head;
      std::string value =
          Pattern(OutputQueue::kCopyValueLimit + rng() % 3000, static_cast<uint32_t>(rng()));
      q.AppendValue(MakeItem("k", value));
      want += value + "\r\n";
    }
  };
  append_some(500);
  for (int round = 0; round < 3000 && !q.empty(); ++round) {
    std::vector<struct iovec> inflight(1 + rng() % 8);
    size_t bytes = 0;
    inflight.resize(q.Gather(inflight.data(), inflight.size(), &bytes));
    std::vector<std::string> snapshot;
    for (const struct iovec& v : inflight) {
      snapshot.emplace_back(static_cast<const char*>(v.iov_base), v.iov_len);
    }
    q.Seal(inflight.size());
    if (round < 1500) append_some(static_cast<int>(rng() % 3));
    size_t written = rng() % (bytes + 1);
    size_t left = written;
    for (size_t i = 0; i < inflight.size(); ++i) {
      ASSERT_EQ(
          std::string_view(static_cast<const char*>(inflight[i].iov_base), inflight[i].iov_len),
          snapshot[i])
          << "round " << round << " iovec " << i;
      size_t take = std::min(left, snapshot[i].size());
      got.append(snapshot[i], 0, take);
      left -= take;
    }
    q.Consume(written);
    q.Unseal();
  }
  got += Drain(q, 16, 1 << 20);
  EXPECT_EQ(got, want);
  EXPECT_TRUE(q.empty());
}

// Text appended between writes stays one piece up to 16 KiB, however it
// grows from the first small block.
TEST(OutputQueueTest, TextStaysContiguousWhileItGrows) {
  OutputQueue q;
  std::string want;
  while (want.size() + 100 <= 16 * 1024) {
    std::string text = Pattern(1 + want.size() % 97, static_cast<uint32_t>(want.size()));
    q.Append(text);
    want += text;
    struct iovec iov[4];
    size_t total = 0;
    ASSERT_EQ(q.Gather(iov, 4, &total), 1u) << want.size();
  }
  EXPECT_EQ(Peek(q), want);
}

TEST(OutputQueueTest, ReusableAfterDraining) {
  OutputQueue q;
  for (int i = 0; i < 20; ++i) {
    std::string text = Pattern(20000, static_cast<uint32_t>(i));
    q.Append(text);
    q.Append("\r\n");
    EXPECT_EQ(Drain(q, 4, 7000), text + "\r\n");
    EXPECT_TRUE(q.empty());
  }
}

// held_bytes() is what the connection memory cap charges: the text
// blocks' capacity, every referenced value in full (the queue keeps it
// alive), and the segment array; it never falls below bytes() and goes
// back to (about) nothing when the queue drains.
TEST(OutputQueueTest, HeldBytesCoverTextBlocksAndReferencedValues) {
  OutputQueue q;
  const size_t empty = q.held_bytes();
  EXPECT_LT(empty, 1024u);
  q.Append("STORED\r\n");
  EXPECT_GE(q.held_bytes(), empty + 256);  // a first text block
  const std::string big = Pattern(100 * 1024, 3);
  tiers::ItemRef item = MakeItem("k", big);
  q.Append("VALUE k 0 102400\r\n");
  q.AppendValue(item);
  q.Append("END\r\n");
  EXPECT_GE(q.held_bytes(), q.bytes());
  EXPECT_GE(q.held_bytes(), big.size() + 2 + 256);
  // A partly written value is still held whole (the item stays alive).
  q.Consume(q.bytes() - 10);
  EXPECT_GE(q.held_bytes(), big.size() + 2);
  q.Consume(10);
  EXPECT_TRUE(q.empty());
  EXPECT_LE(q.held_bytes(), 256 + 16 * 64u);  // the tail block and the kept slots
  // Many copied values grow the text up to its largest block and more blocks.
  std::mt19937 rng(5);
  size_t appended = 0;
  for (int i = 0; i < 200; ++i) {
    const std::string v = Pattern(rng() % 4000 + 1, static_cast<uint32_t>(i));
    tiers::ItemRef small = MakeItem("s", v);
    q.AppendValue(small);
    appended += v.size() + 2;
    ASSERT_GE(q.held_bytes(), q.bytes());
  }
  EXPECT_EQ(q.bytes(), appended);
  // Capacity is at most about twice what is queued, plus one block.
  EXPECT_LE(q.held_bytes(), 2 * appended + 16 * 1024 + 64 * 1024);
  EXPECT_EQ(Drain(q, 64, 5000).size(), appended);
  EXPECT_LE(q.held_bytes(), 16 * 1024 + 16 * 64u);
}

}  // namespace
}  // namespace strata::proxy
