// Hotness: how often keys were accessed lately, and the policies built on
// it: which RAM evictions are worth writing to flash (admission), within a
// flash write budget.
//
// FrequencySketch is a count-min sketch (TinyLFU): 4 rows of 4-bit
// counters packed 16 to a 64-bit word, indexed by the key's hash. Every
// access increments the key's counters (capped at 15); after `sample`
// increments all counters are halved, so old popularity fades. Increments
// are relaxed atomic read-modify-writes on the word, so every worker can
// feed it without a lock; a lost update under a race only makes an
// estimate slightly low.
//
// AdmissionPolicy decides for each evicted item whether it goes to flash.
// While the SSD has room that no live record needs (SsdLog::HasRoom), every
// evicted item goes (within the write budget); beyond that, the kind
// decides:
//   all         every evicted item (the baseline)
//   reaccessed  (default) only items read at least once while in RAM, or
//               whose key RAM evicted and this policy rejected recently
//               (within 2x the SSD's size of rejected bytes) and that came
//               back: S3-FIFO's rule, with RAM as the small queue and the
//               SSD log as the main one, and a GhostSet as its ghost; or
//               whose key the sketch calls hot (5 reads lately: the sketch
//               survives a warm restart, the ghost does not); and in every
//               case only if the key's estimate is at least 75% of what the
//               SSD is evicting: the mean estimate of the records region
//               reclaim lately dropped (TinyLFU's comparison of a candidate
//               with the victim, for a log whose victims are whole regions)
//   sketch      items whose key's estimated frequency reaches a threshold
// and on top of each, a write budget (bytes per second, a token bucket
// with one second of burst): over it, candidates are rejected, colder ones
// first (an item must be hotter the emptier the bucket is).
//
// Thread safety: FrequencySketch is lock-free and safe from any thread;
// AdmissionPolicy::Admit may be called from any thread (the bucket is a
// mutex-free atomic; the ghost has its own mutex).
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "common/clock.h"
#include "common/mutex.h"
#include "tiers/item/item.h"
#include "tiers/policy/ghost_set.h"

namespace strata::tiers {

class FrequencySketch {
 public:
  // Sized for about `expected_keys` distinct keys (at least 1024).
  explicit FrequencySketch(size_t expected_keys);

  void Record(uint64_t hash);
  // Estimated recent accesses of the key, 0..15.
  uint32_t Estimate(uint64_t hash) const;
  // Halves every counter (done automatically every `sample` records).
  void Age();
  uint64_t sample() const { return sample_; }

  // The counters as bytes (a warm restart saves them, warm_restart.h), and
  // back. Restore() refuses bytes from a sketch of another size.
  std::string Serialize() const;
  bool Restore(std::string_view bytes);

 private:
  size_t Index(uint64_t hash, int row) const;
  std::vector<std::atomic<uint64_t>> words_;
  size_t mask_;  // word index mask
  uint64_t sample_;
  std::atomic<uint64_t> records_{0};
};

enum class AdmissionKind { kAll, kReaccessed, kSketch };

struct AdmissionOptions {
  AdmissionKind kind = AdmissionKind::kReaccessed;
  uint32_t sketch_threshold = 2;   // estimated accesses needed (kSketch)
  uint64_t write_budget = 0;       // bytes per second to flash; 0 = no budget
  // At reclaim, a record read since it was written (or recovered at a
  // restart) is rewritten if the sketch still gives its key at least this
  // estimate (0 = never rewrite).
  uint32_t rewrite_threshold = 1;
  // kReaccessed: bytes of rejected items whose keys are remembered (2x the
  // SSD's size), and at most this many keys (4 bytes each; 0 = no limit).
  uint64_t ghost_window_bytes = 0;
  uint64_t ghost_max_keys = 0;
  // kReaccessed: an estimate that admits without a read in RAM, so keys
  // that were hot before a warm restart get back in (the sketch is saved,
  // the ghost is not); a lower threshold lets too much in (figures:
  // bench/README.md, "Measurements behind the code's defaults").
  uint32_t reaccessed_sketch_threshold = 5;
  // A get that finds its key only on SSD puts the item in RAM if the sketch
  // has seen the key read at least this often lately (the get included),
  // and more often than the item RAM would evict for it when RAM is full
  // (TieredCache::WorthPromoting); 0 promotes every SSD hit.
  // Otherwise the item is served from the record read, so a pass over cold SSD
  // data does not push RAM's items out. Commands that change the item, gat,
  // read-ahead (pipelined gets) and the warm-up after a restart always
  // promote. 1, 2 and 3 gave the same miss ratios on the traces
  // (bench/README.md); 3 keeps a pass over cold SSD data by a client that
  // does not pipeline out of RAM.
  uint32_t promote_threshold = 3;
  // Large items skip RAM: a plain set of an item whose RAM charge exceeds
  // this percent of the RAM tier's size is written straight to the SSD
  // tier, and a get serves such an item from its record without promoting
  // it (TieredCache::Store, WorthPromoting). 100: none skip (no item may be
  // larger than the RAM tier).
  uint32_t large_item_percent = 10;
  // kReaccessed: an item passes only if 100 x its estimate is at least this
  // many times the mean estimate of the records reclaim dropped lately (an
  // average over about the last 16; 0 before any reclaim). Only a reclaim
  // that runs ahead of the writer reads its region and feeds the mean (the
  // usual case; a region the writer reaches first is dropped unread). 0
  // turns the comparison off. 75 trades flash writes against miss ratio
  // on bench/trace_matrix_ssd.conf's traces; bench/README.md ("Measurements
  // behind the code's defaults") has the figures and the range around it.
  uint32_t victim_percent = 75;
};

enum class AdmissionVerdict { kAdmit, kRejectCold, kRejectBudget };

class AdmissionPolicy {
 public:
  AdmissionPolicy(const AdmissionOptions& options, const FrequencySketch& sketch,
                  const common::Clock& clock);
  // Decides for an item RAM evicted; `bytes` is what writing it would cost.
  // `room`: the SSD has room for it that no live record needs; then only
  // the write budget can turn it away (the filter decides only when
  // admitting it means dropping a live record).
  AdmissionVerdict Admit(const Item& item, uint64_t hash, uint64_t bytes, bool room);
  // Scores a live record of a region being reclaimed (SsdLog's
  // ReclaimHooks): 1 + its sketch estimate when it was read since it was
  // written (S3-FIFO reinserts an item hit in its main queue) and the
  // sketch still calls the key warm (at least `rewrite_threshold`), else 0
  // (cold: kept only while the log has room).
  uint32_t ReclaimScore(uint64_t hash, bool accessed) const;
  // True if `bytes` may be written to keep a record of that score (the
  // write budget; a cold record needs a fuller bucket).
  bool SpendOnReclaim(uint64_t bytes, uint32_t score);
  // A live record reclaim dropped: its estimate enters the mean that
  // kReaccessed compares candidates with.
  void NoteReclaimDropped(uint64_t hash) { NoteDropped(sketch_.Estimate(hash)); }
  // The mean estimate of the records reclaim dropped lately, in 1/16ths.
  uint32_t dropped_estimate_x16() const {
    return dropped_x16_.load(std::memory_order_relaxed);
  }

 private:
  bool TakeBudget(uint64_t bytes, uint32_t frequency);
  // kReaccessed: true (and forgets it) if the key was rejected within the
  // window; otherwise remembers it and returns false.
  bool CameBack(uint64_t hash, uint64_t bytes) EXCLUDES(ghost_mu_);
  // Moves the dropped records' mean 1/16 of the way to `frequency`.
  void NoteDropped(uint32_t frequency);

  AdmissionOptions options_;
  const FrequencySketch& sketch_;
  const common::Clock& clock_;
  std::atomic<int64_t> tokens_;           // bytes that may still be written
  std::atomic<int64_t> last_refill_ns_;
  std::atomic<uint32_t> dropped_x16_{0};  // see dropped_estimate_x16()
  common::Mutex ghost_mu_;
  GhostSet ghost_ GUARDED_BY(ghost_mu_);              // keys rejected lately (kReaccessed)
  uint64_t ghost_inserts_ GUARDED_BY(ghost_mu_) = 0;  // for the mean size of a rejected item
  uint64_t ghost_bytes_ GUARDED_BY(ghost_mu_) = 0;
};

}  // namespace strata::tiers
