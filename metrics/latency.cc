#include "metrics/latency.h"

namespace strata::metrics {

std::string_view TierLabelName(TierLabel t) {
  switch (t) {
    case TierLabel::kRam:
      return "ram";
    case TierLabel::kSsd:
      return "ssd";
    case TierLabel::kMiss:
      return "miss";
    case TierLabel::kNone:
    case TierLabel::kCount:
      break;
  }
  return "none";
}

uint64_t LatencySeries::Count() const {
  uint64_t n = 0;
  for (uint64_t b : buckets) n += b;
  return n;
}

void RequestLatency::AddTo(LatencySnapshot* out) const {
  for (size_t s = 0; s < kLatencySeries; ++s) {
    LatencySeries& dst = out->series[s];
    for (size_t b = 0; b < kLatencyBuckets; ++b) {
      dst.buckets[b] += buckets_[s * kLatencyBuckets + b].load(std::memory_order_relaxed);
    }
    dst.sum_ns += sum_ns_[s].load(std::memory_order_relaxed);
  }
}

void LatencyBatch::End(uint64_t now_ns, RequestLatency* sink) {
  if (depth_ == 0 || --depth_ > 0) return;
  const uint64_t took = now_ns > start_ns_ ? now_ns - start_ns_ : 0;
  while (used_ != 0) {
    const auto s = static_cast<size_t>(__builtin_ctzll(used_));
    used_ &= used_ - 1;
    sink->Observe(common::CommandWithLabel(s / kTierLabels),
                  static_cast<TierLabel>(s % kTierLabels), took, counts_[s]);
    counts_[s] = 0;
  }
  for (size_t i = 0; i < spans_; ++i) {
    const Spanning& sp = spanning_[i];
    sink->Observe(sp.command, sp.tier, now_ns > sp.start_ns ? now_ns - sp.start_ns : 0);
  }
  spans_ = 0;
}

}  // namespace strata::metrics
