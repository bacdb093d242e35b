// Request latency histograms, kept per worker thread and merged at scrape
// time into strata_request_duration_seconds{command, tier}.
//
// A worker owns one RequestLatency and is its only writer: Observe() is a
// few relaxed loads and stores, no lock and no locked instruction. Scrapes
// read every worker's histograms from another thread with AddTo() and sum
// them; a scrape that races an Observe() may see a bucket count without the
// matching sum (or the reverse) for that one observation, never a torn value.
//
// A connection does not read the clock per command: LatencyBatch times a
// read batch (from the read that delivered the requests to the write that
// sent their replies) and gives that duration to every command that started
// and finished in it. A command that spans batches (a data block still to
// read, a multi-get paused by back-pressure) is timed from the start of the
// batch it began in to the end of the batch it finished in.
//
// Label values: `command` is the memcached command (get gets gat gats set
// add replace append prepend cas delete incr decr touch flush_all, and
// "other" for the rest: common/command.h); `tier` says which tier served a
// get-family command: "ssd" (a key was read from flash), "ram" (a key hit
// in RAM, none was read from flash) or "miss" (no key hit), and "none" for
// commands that fetch no value. A command with several keys is labelled
// with the slowest tier that served one of them.
//
// Thread safety: RequestLatency::Observe() only from the owning worker;
// RequestLatency::AddTo() from any thread. LatencyBatch and LatencySnapshot
// are plain values owned by one thread.
#pragma once

#include <array>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "common/command.h"

namespace strata::metrics {

// The `command` label is the command's common::CommandLabelName().
using common::CommandType;
using common::kCommandLabels;

// An upstream tier would add kUpstream (before kMiss is fine: the numeric
// values are not exported).
enum class TierLabel : uint8_t {
  kRam,
  kSsd,
  kMiss,
  kNone,
  kCount,
};

inline constexpr size_t kTierLabels = static_cast<size_t>(TierLabel::kCount);
inline constexpr size_t kLatencySeries = kCommandLabels * kTierLabels;

// The label value as exported ("ram", "ssd", ...).
std::string_view TierLabelName(TierLabel t);

// Upper bounds of the histogram buckets, in nanoseconds (2 us .. 1 s); a
// last, implicit bucket is +Inf: microsecond buckets for RAM hits, the
// 100 us range for SSD reads, and up to a second for slow round trips.
inline constexpr std::array<uint64_t, 17> kLatencyBoundsNs = {
    2'000,      5'000,      10'000,      20'000,      50'000,        100'000,
    200'000,    500'000,    1'000'000,   2'000'000,   5'000'000,     10'000'000,
    20'000'000, 50'000'000, 100'000'000, 250'000'000, 1'000'000'000,
};
inline constexpr size_t kLatencyBuckets = kLatencyBoundsNs.size() + 1;  // with +Inf

// One series of a merged snapshot: per-bucket (not cumulative) counts, the
// last one being +Inf, and the sum of the observed durations.
struct LatencySeries {
  std::array<uint64_t, kLatencyBuckets> buckets{};
  uint64_t sum_ns = 0;
  uint64_t Count() const;
};

// Every (command, tier) series, summed over workers.
struct LatencySnapshot {
  std::array<LatencySeries, kLatencySeries> series{};

  // Commands that share a label (every "other" command) share a series.
  static size_t Index(CommandType c, TierLabel t) {
    return common::CommandLabelIndex(c) * kTierLabels + static_cast<size_t>(t);
  }
  LatencySeries& at(CommandType c, TierLabel t) { return series[Index(c, t)]; }
  const LatencySeries& at(CommandType c, TierLabel t) const { return series[Index(c, t)]; }
};

// One worker's histograms.
class RequestLatency {
 public:
  // Records `count` requests of (command, tier) that each took `nanos`.
  void Observe(CommandType c, TierLabel t, uint64_t nanos, uint64_t count = 1) {
    const size_t s = LatencySnapshot::Index(c, t);
    size_t b = 0;
    while (b < kLatencyBoundsNs.size() && nanos > kLatencyBoundsNs[b]) ++b;
    Bump(buckets_[s * kLatencyBuckets + b], count);
    Bump(sum_ns_[s], nanos * count);
  }

  // Adds this worker's histograms into *out.
  void AddTo(LatencySnapshot* out) const;

 private:
  static void Bump(std::atomic<uint64_t>& v, uint64_t n) {
    v.store(v.load(std::memory_order_relaxed) + n, std::memory_order_relaxed);
  }

  std::array<std::atomic<uint64_t>, kLatencySeries * kLatencyBuckets> buckets_{};
  std::array<std::atomic<uint64_t>, kLatencySeries> sum_ns_{};
};

// Times the commands of one read batch on one connection (see the top of
// this file). Begin()/End() nest: only the outermost pair opens and closes
// the batch, so a batch resumed from inside another counts as one.
class LatencyBatch {
 public:
  void Begin(uint64_t now_ns) {
    if (depth_++ == 0) start_ns_ = now_ns;
  }

  // The start of the open batch: the start to give Add() for a command
  // that begins now.
  uint64_t start_ns() const { return start_ns_; }
  bool open() const { return depth_ > 0; }
  // Begin()s not yet End()ed: End() closes the batch when this is 1.
  uint32_t depth() const { return depth_; }

  // A command that began at `start_ns` (a batch's start_ns()) has finished.
  // Ignored when no batch is open.
  void Add(CommandType c, TierLabel t, uint64_t start_ns) {
    if (depth_ == 0) return;
    if (start_ns == start_ns_) {
      const size_t s = LatencySnapshot::Index(c, t);
      ++counts_[s];
      used_ |= uint64_t{1} << s;
    } else if (spans_ < spanning_.size()) {
      spanning_[spans_++] = Spanning{c, t, start_ns};
    }
  }

  // Closes a Begin(); the outermost one records every command added since
  // into *sink, timed up to `now_ns`.
  void End(uint64_t now_ns, RequestLatency* sink);

 private:
  static_assert(kLatencySeries <= 64, "used_ is a 64-bit mask of series");
  struct Spanning {
    CommandType command;
    TierLabel tier;
    uint64_t start_ns;
  };

  uint32_t depth_ = 0;
  uint64_t start_ns_ = 0;
  uint64_t used_ = 0;
  std::array<uint32_t, kLatencySeries> counts_{};
  std::array<Spanning, 2> spanning_{};
  size_t spans_ = 0;
};

}  // namespace strata::metrics
