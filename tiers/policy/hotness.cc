#include "tiers/policy/hotness.h"

#include <algorithm>
#include <bit>

namespace strata::tiers {

FrequencySketch::FrequencySketch(size_t expected_keys) {
  // 8 four-bit counters per expected key (4 bytes), rounded up to a power
  // of two of 64-bit words: at that load, about 2% of keys have all four of
  // their counters shared with others.
  size_t words = std::bit_ceil(std::max<size_t>(expected_keys, 1024) / 2);
  words_ = std::vector<std::atomic<uint64_t>>(words);
  mask_ = words - 1;
  sample_ = 10 * std::max<size_t>(expected_keys, 1024);
}

size_t FrequencySketch::Index(uint64_t hash, int row) const {
  static constexpr uint64_t kSeeds[4] = {0xc3a5c85c97cb3127ull, 0xb492b66fbe98f273ull,
                                         0x9ae16a3b2f90404full, 0xcbf29ce484222325ull};
  uint64_t h = (hash + kSeeds[row]) * 0x9E3779B97F4A7C15ull;
  return static_cast<size_t>(h >> 32);
}

void FrequencySketch::Record(uint64_t hash) {
  for (int row = 0; row < 4; ++row) {
    size_t idx = Index(hash, row);
    std::atomic<uint64_t>& word = words_[idx & mask_];
    int shift = static_cast<int>(((idx >> 28) & 15) * 4);  // one of 16 nibbles
    uint64_t cur = word.load(std::memory_order_relaxed);
    if (((cur >> shift) & 15) == 15) continue;
    word.fetch_add(uint64_t{1} << shift, std::memory_order_relaxed);
  }
  if (records_.fetch_add(1, std::memory_order_relaxed) + 1 >= sample_) {
    records_.store(0, std::memory_order_relaxed);
    Age();
  }
}

uint32_t FrequencySketch::Estimate(uint64_t hash) const {
  uint32_t best = 15;
  for (int row = 0; row < 4; ++row) {
    size_t idx = Index(hash, row);
    uint64_t word = words_[idx & mask_].load(std::memory_order_relaxed);
    int shift = static_cast<int>(((idx >> 28) & 15) * 4);
    best = std::min(best, static_cast<uint32_t>((word >> shift) & 15));
  }
  return best;
}

std::string FrequencySketch::Serialize() const {
  std::string out;
  out.reserve(8 * (words_.size() + 2));
  auto put = [&out](uint64_t v) {
    for (int i = 0; i < 8; ++i) out.push_back(static_cast<char>((v >> (8 * i)) & 0xff));
  };
  put(words_.size());
  put(records_.load(std::memory_order_relaxed));
  for (const auto& w : words_) put(w.load(std::memory_order_relaxed));
  return out;
}

bool FrequencySketch::Restore(std::string_view bytes) {
  if (bytes.size() != 8 * (words_.size() + 2)) return false;
  auto get = [&bytes](size_t i) {
    uint64_t v = 0;
    for (int b = 0; b < 8; ++b) v |= uint64_t{static_cast<uint8_t>(bytes[8 * i + b])} << (8 * b);
    return v;
  };
  if (get(0) != words_.size()) return false;
  records_.store(std::min(get(1), sample_ - 1), std::memory_order_relaxed);
  for (size_t i = 0; i < words_.size(); ++i) words_[i].store(get(i + 2), std::memory_order_relaxed);
  return true;
}

void FrequencySketch::Age() {
  for (auto& w : words_) {
    uint64_t v = w.load(std::memory_order_relaxed);
    // Halve all 16 nibbles at once: shift right, drop the bit that crossed
    // into each nibble's top.
    w.store((v >> 1) & 0x7777777777777777ull, std::memory_order_relaxed);
  }
}

AdmissionPolicy::AdmissionPolicy(const AdmissionOptions& options, const FrequencySketch& sketch,
                                 const common::Clock& clock)
    : options_(options),
      sketch_(sketch),
      clock_(clock),
      tokens_(static_cast<int64_t>(options.write_budget)),
      last_refill_ns_(clock.MonotonicNanos()) {
  if (options_.kind == AdmissionKind::kReaccessed) {
    ghost_.Resize(1024);
    ghost_.SetWindow(std::max<uint64_t>(1, options_.ghost_window_bytes));
  }
}

bool AdmissionPolicy::CameBack(uint64_t hash, uint64_t bytes) {
  common::MutexLock lock(&ghost_mu_);
  if (ghost_.TakeIfPresent(hash)) return true;
  // The table grows (starting over) when the window holds more keys of
  // the mean rejected size than it has entries.
  ++ghost_inserts_;
  ghost_bytes_ += bytes;
  uint64_t mean = std::max<uint64_t>(1, ghost_bytes_ / ghost_inserts_);
  uint64_t want = options_.ghost_window_bytes / mean;
  if (options_.ghost_max_keys != 0) want = std::min(want, options_.ghost_max_keys);
  if (want > ghost_.capacity()) ghost_.Resize(static_cast<size_t>(want));
  ghost_.Insert(hash, bytes);
  return false;
}

bool AdmissionPolicy::TakeBudget(uint64_t bytes, uint32_t frequency) {
  if (options_.write_budget == 0) return true;
  const int64_t budget = static_cast<int64_t>(options_.write_budget);
  int64_t now = clock_.MonotonicNanos();
  int64_t last = last_refill_ns_.load(std::memory_order_relaxed);
  if (now > last && last_refill_ns_.compare_exchange_strong(last, now)) {
    int64_t add = static_cast<int64_t>(static_cast<double>(now - last) * 1e-9 * static_cast<double>(budget));
    int64_t cur = tokens_.load(std::memory_order_relaxed);
    while (!tokens_.compare_exchange_weak(cur, std::min(budget, cur + add))) {
    }
  }
  // The emptier the bucket, the hotter an item must be: with a full bucket
  // everything passes; below a quarter only items seen 4+ times do.
  int64_t cur = tokens_.load(std::memory_order_relaxed);
  uint32_t needed = cur >= budget / 2 ? 0 : cur >= budget / 4 ? 2 : 4;
  if (frequency < needed) return false;
  if (cur < static_cast<int64_t>(bytes)) return false;
  tokens_.fetch_sub(static_cast<int64_t>(bytes), std::memory_order_relaxed);
  return true;
}

AdmissionVerdict AdmissionPolicy::Admit(const Item& item, uint64_t hash, uint64_t bytes,
                                        bool room) {
  uint32_t frequency = sketch_.Estimate(hash);
  switch (room ? AdmissionKind::kAll : options_.kind) {
    case AdmissionKind::kAll:
      break;
    case AdmissionKind::kReaccessed:
      if (!item.fetched && frequency < options_.reaccessed_sketch_threshold &&
          !CameBack(hash, bytes)) {
        return AdmissionVerdict::kRejectCold;
      }
      if (uint64_t{frequency} * 16 * 100 <
          uint64_t{dropped_estimate_x16()} * options_.victim_percent) {
        return AdmissionVerdict::kRejectCold;
      }
      break;
    case AdmissionKind::kSketch:
      if (frequency < options_.sketch_threshold) return AdmissionVerdict::kRejectCold;
      break;
  }
  return TakeBudget(bytes, frequency) ? AdmissionVerdict::kAdmit : AdmissionVerdict::kRejectBudget;
}

void AdmissionPolicy::NoteDropped(uint32_t frequency) {
  uint32_t cur = dropped_x16_.load(std::memory_order_relaxed);
  uint32_t next;
  do {
    next = cur - cur / 16 + frequency;  // cur + (16 * frequency - cur) / 16
  } while (!dropped_x16_.compare_exchange_weak(cur, next, std::memory_order_relaxed));
}

uint32_t AdmissionPolicy::ReclaimScore(uint64_t hash, bool accessed) const {
  if (options_.rewrite_threshold == 0 || !accessed) return 0;
  uint32_t frequency = sketch_.Estimate(hash);
  return frequency < options_.rewrite_threshold ? 0 : 1 + frequency;
}

bool AdmissionPolicy::SpendOnReclaim(uint64_t bytes, uint32_t score) {
  return TakeBudget(bytes, score > 0 ? score - 1 : 0);
}

}  // namespace strata::tiers
