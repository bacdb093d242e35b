// Tests for the eviction policies, driven directly (no RAM tier): S3-FIFO on
// small crafted sequences, LRU against an exact model, and both on a seeded
// Zipf workload with scans mixed in.

#include "tiers/ram/eviction_policy.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <list>
#include <memory>
#include <random>
#include <string>
#include <unordered_map>
#include <vector>

#include "common/hash.h"
#include "tiers/item/item.h"
#include "tiers/policy/ghost_set.h"

namespace strata::tiers {
namespace {

constexpr uint32_t kValueLen = 100;

// Fixed-width keys so every item costs the same.
std::string Key(char prefix, int i) {
  char buf[16];
  std::snprintf(buf, sizeof(buf), "%c%07d", prefix, i);
  return buf;
}

// Owns the items of a test; every item has the same key and value length so
// all charges are equal and byte ratios are item-count ratios.
class Items {
 public:
  ~Items() {
    for (Item* item : all_) Item::Destroy(item);
  }
  // A new item (a new version if the key was used before).
  Item* New(const std::string& key) {
    Item* item = Item::Create(key, 0, 0, kValueLen);
    all_.push_back(item);
    return item;
  }

 private:
  std::vector<Item*> all_;
};

void Insert(EvictionPolicy& policy, Item* item) {
  policy.OnInsert(item, common::HashKey(item->Key()));
}

std::string EvictKey(EvictionPolicy& policy) {
  Item* item = policy.Evict();
  return item == nullptr ? std::string("<none>") : std::string(item->Key());
}

std::vector<std::string> EvictAll(EvictionPolicy& policy) {
  std::vector<std::string> out;
  while (Item* item = policy.Evict()) out.emplace_back(item->Key());
  return out;
}

TEST(EvictionPolicyTest, KindNames) {
  EXPECT_EQ(EvictionKindName(EvictionKind::kS3Fifo), "s3fifo");
  EXPECT_EQ(EvictionKindName(EvictionKind::kLru), "lru");
}

TEST(EvictionPolicyTest, EmptyPoliciesEvictNothing) {
  for (EvictionKind kind : {EvictionKind::kS3Fifo, EvictionKind::kLru}) {
    auto policy = MakePolicy(kind);
    EXPECT_EQ(policy->Evict(), nullptr) << EvictionKindName(kind);
    EXPECT_EQ(policy->Candidate(), nullptr) << EvictionKindName(kind);
  }
}

std::string CandidateKey(const EvictionPolicy& policy) {
  Item* item = policy.Candidate();
  return item == nullptr ? std::string("<none>") : std::string(item->Key());
}

// ---------------------------------------------------------------- S3-FIFO

TEST(S3FifoTest, UnhitItemsLeaveInInsertionOrder) {
  Items items;
  auto policy = MakeS3FifoPolicy({});
  std::vector<std::string> keys;
  for (int i = 0; i < 5; ++i) {
    keys.push_back(Key('a', i));
    Insert(*policy, items.New(keys.back()));
  }
  EXPECT_EQ(EvictAll(*policy), keys);
  EXPECT_EQ(policy->Evict(), nullptr);
}

TEST(S3FifoTest, OneHitWonderScanDoesNotEvictReaccessedItem) {
  Items items;
  auto s3fifo = MakeS3FifoPolicy({});
  auto lru = MakeLruPolicy();
  Items lru_items;
  Item* hot = items.New(Key('h', 0));
  Item* lru_hot = lru_items.New(Key('h', 0));
  Insert(*s3fifo, hot);
  Insert(*lru, lru_hot);
  s3fifo->OnHit(hot);
  lru->OnHit(lru_hot);
  constexpr int kScan = 100;
  for (int i = 0; i < kScan; ++i) {
    Insert(*s3fifo, items.New(Key('s', i)));
    Insert(*lru, lru_items.New(Key('s', i)));
  }
  // S3-FIFO drops the whole scan before the item that was hit.
  for (int i = 0; i < kScan; ++i) ASSERT_EQ(EvictKey(*s3fifo), Key('s', i)) << i;
  EXPECT_EQ(EvictKey(*s3fifo), Key('h', 0));
  // LRU, the baseline, loses it first: it was least recently used.
  EXPECT_EQ(EvictKey(*lru), Key('h', 0));
}

TEST(S3FifoTest, ItemHitInSmallQueueMovesToMain) {
  Items items;
  auto policy = MakeS3FifoPolicy({});
  Item* a = items.New(Key('a', 0));
  Item* b = items.New(Key('b', 0));
  Item* c = items.New(Key('c', 0));
  Insert(*policy, a);
  Insert(*policy, b);
  Insert(*policy, c);
  policy->OnHit(b);
  // a leaves from the small queue; b, hit there, goes to main and c (never
  // hit, younger than b) leaves before it. Candidate() names each victim
  // before Evict() takes it, passing over b while it would move to main,
  // and changes nothing.
  EXPECT_EQ(CandidateKey(*policy), Key('a', 0));
  EXPECT_EQ(CandidateKey(*policy), Key('a', 0));
  EXPECT_EQ(EvictKey(*policy), Key('a', 0));
  EXPECT_EQ(CandidateKey(*policy), Key('c', 0));
  EXPECT_EQ(EvictKey(*policy), Key('c', 0));
  EXPECT_EQ(CandidateKey(*policy), Key('b', 0));
  EXPECT_EQ(EvictKey(*policy), Key('b', 0));
  EXPECT_EQ(policy->Candidate(), nullptr);
}

// A promoted item skips the small queue: with the small queue at 90% (as
// in front of an SSD tier) it leaves before the probationary items that a
// promotion into the small queue would push out.
TEST(S3FifoTest, PromotedItemsGoToTheMainQueue) {
  Items items;
  S3FifoOptions options;
  options.small_ratio = 0.9;
  auto policy = MakeS3FifoPolicy(options);
  Insert(*policy, items.New(Key('a', 0)));
  Insert(*policy, items.New(Key('b', 0)));
  Item* p = items.New(Key('p', 0));
  policy->OnPromote(p, common::HashKey(p->Key()));
  EXPECT_EQ(CandidateKey(*policy), Key('p', 0));
  EXPECT_EQ(EvictAll(*policy), (std::vector<std::string>{Key('p', 0), Key('a', 0), Key('b', 0)}));
}

TEST(S3FifoTest, MoveToMainThresholdIsHonoured) {
  Items items;
  S3FifoOptions options;
  options.move_to_main_threshold = 2;
  auto policy = MakeS3FifoPolicy(options);
  Item* once = items.New(Key('o', 0));
  Item* twice = items.New(Key('t', 0));
  Item* never = items.New(Key('n', 0));
  Insert(*policy, once);
  Insert(*policy, twice);
  Insert(*policy, never);
  policy->OnHit(once);
  policy->OnHit(twice);
  policy->OnHit(twice);
  EXPECT_EQ(EvictAll(*policy), (std::vector<std::string>{Key('o', 0), Key('n', 0), Key('t', 0)}));
}

TEST(S3FifoTest, GhostHitGoesStraightToMain) {
  Items items;
  auto policy = MakeS3FifoPolicy({});
  // "g" is evicted from the small queue without a hit: it becomes a ghost.
  Insert(*policy, items.New(Key('g', 0)));
  ASSERT_EQ(EvictKey(*policy), Key('g', 0));
  // Its return is admitted to main; a never-seen key "n" goes to small.
  Insert(*policy, items.New(Key('g', 0)));
  Insert(*policy, items.New(Key('n', 0)));
  constexpr int kFill = 20;
  for (int i = 0; i < kFill; ++i) Insert(*policy, items.New(Key('f', i)));
  // Everything in the small queue (n, then the fill) leaves before g.
  std::vector<std::string> order = EvictAll(*policy);
  ASSERT_EQ(order.size(), static_cast<size_t>(kFill + 2));
  EXPECT_EQ(order.front(), Key('n', 0));
  EXPECT_EQ(order.back(), Key('g', 0));
}

TEST(S3FifoTest, GhostRemembersAboutNinetyPercentOfTheCache) {
  Items items;
  auto policy = MakeS3FifoPolicy({});
  // 20 items of one size: the ghost remembers keys while fewer than 18
  // items' bytes have been evicted after them. g1 has 19 evicted after it,
  // g2 has 9.
  Insert(*policy, items.New(Key('g', 1)));
  for (int i = 0; i < 9; ++i) Insert(*policy, items.New(Key('f', i)));
  Insert(*policy, items.New(Key('g', 2)));
  for (int i = 9; i < 18; ++i) Insert(*policy, items.New(Key('f', i)));
  ASSERT_EQ(EvictAll(*policy).size(), 20u);
  // g1 is forgotten (small queue, leaves first); g2 goes to main.
  Insert(*policy, items.New(Key('g', 1)));
  Insert(*policy, items.New(Key('g', 2)));
  Insert(*policy, items.New(Key('n', 0)));
  EXPECT_EQ(EvictAll(*policy), (std::vector<std::string>{Key('g', 1), Key('n', 0), Key('g', 2)}));
}

TEST(S3FifoTest, GhostIsConsumedByItsHit) {
  Items items;
  auto policy = MakeS3FifoPolicy({});
  Insert(*policy, items.New(Key('g', 0)));
  ASSERT_EQ(EvictKey(*policy), Key('g', 0));
  Insert(*policy, items.New(Key('g', 0)));  // ghost hit: main
  // Evicted from main (not from small), so it is not remembered again.
  ASSERT_EQ(EvictKey(*policy), Key('g', 0));
  Insert(*policy, items.New(Key('g', 0)));  // no ghost: small
  Insert(*policy, items.New(Key('x', 0)));
  EXPECT_EQ(EvictAll(*policy), (std::vector<std::string>{Key('g', 0), Key('x', 0)}));
}

TEST(S3FifoTest, MainQueueReinsertsWithFrequencyDecrement) {
  Items items;
  auto policy = MakeS3FifoPolicy({});
  // Make a, b, c ghosts, then bring them back so they sit in main in that
  // order with frequency 0. (The fill makes the cache big enough for its
  // ghost, 0.9 x its peak size, to remember all three.)
  for (int i = 0; i < 10; ++i) Insert(*policy, items.New(Key('f', i)));
  for (char k : {'a', 'b', 'c'}) Insert(*policy, items.New(Key(k, 0)));
  ASSERT_EQ(EvictAll(*policy).size(), 13u);
  Item* a = items.New(Key('a', 0));
  Item* b = items.New(Key('b', 0));
  Item* c = items.New(Key('c', 0));
  Insert(*policy, a);
  Insert(*policy, b);
  Insert(*policy, c);
  policy->OnHit(a);
  policy->OnHit(a);  // freq 2
  policy->OnHit(c);  // freq 1
  // Pass 1: a (2) goes back with 1, b (0) leaves; Candidate() passes over a.
  EXPECT_EQ(CandidateKey(*policy), Key('b', 0));
  EXPECT_EQ(EvictKey(*policy), Key('b', 0));
  // Queue is now c(1), a(1): c back with 0, a back with 0, c leaves.
  EXPECT_EQ(EvictKey(*policy), Key('c', 0));
  EXPECT_EQ(EvictKey(*policy), Key('a', 0));
  EXPECT_EQ(policy->Evict(), nullptr);
}

TEST(S3FifoTest, FrequencySaturatesAtMaxFrequency) {
  for (uint8_t max : {2, 3}) {
    Items items;
    S3FifoOptions options;
    options.max_frequency = max;
    auto policy = MakeS3FifoPolicy(options);
    for (char k : {'a', 'b'}) Insert(*policy, items.New(Key(k, 0)));
    ASSERT_EQ(EvictAll(*policy).size(), 2u);
    // Both come back to main (ghost hits) in the order a, b.
    Item* a = items.New(Key('a', 0));
    Item* b = items.New(Key('b', 0));
    Insert(*policy, a);
    Insert(*policy, b);
    for (int i = 0; i < 100; ++i) policy->OnHit(a);
    for (int i = 0; i < 2; ++i) policy->OnHit(b);
    // At max 2 both counters stop at 2, so a, older, leaves first (an
    // unbounded or overflowing counter would evict b first); at max 3, a
    // has one more pass than b.
    std::vector<std::string> want = max == 2 ? std::vector<std::string>{Key('a', 0), Key('b', 0)}
                                             : std::vector<std::string>{Key('b', 0), Key('a', 0)};
    EXPECT_EQ(EvictAll(*policy), want) << int{max};
  }
}

TEST(S3FifoTest, RemovedItemsAreNeverEvicted) {
  Items items;
  auto policy = MakeS3FifoPolicy({});
  Item* small_item = items.New(Key('s', 0));
  Item* keep = items.New(Key('k', 0));
  Insert(*policy, small_item);
  Insert(*policy, keep);
  Insert(*policy, items.New(Key('g', 0)));
  // Removed from the small queue: never comes out of Evict().
  policy->OnRemove(small_item);
  ASSERT_EQ(EvictKey(*policy), Key('k', 0));
  ASSERT_EQ(EvictKey(*policy), Key('g', 0));  // a ghost now
  // Back through a ghost hit into main, then removed from there.
  Item* in_main = items.New(Key('g', 0));
  Insert(*policy, in_main);
  Insert(*policy, items.New(Key('z', 0)));
  policy->OnRemove(in_main);
  EXPECT_EQ(EvictAll(*policy), (std::vector<std::string>{Key('z', 0)}));
}

TEST(S3FifoTest, ClearForgetsResidentItems) {
  Items items;
  auto policy = MakeS3FifoPolicy({});
  for (int i = 0; i < 10; ++i) Insert(*policy, items.New(Key('a', i)));
  policy->Clear();
  EXPECT_EQ(policy->Evict(), nullptr);
  Insert(*policy, items.New(Key('b', 0)));
  EXPECT_EQ(EvictAll(*policy), (std::vector<std::string>{Key('b', 0)}));
}

// A cache that has not evicted anything has no ghost to pay for: the table
// is taken by the first Insert(), sized as Resize() said, and works from then.
TEST(GhostSetTest, TakesMemoryOnlyOnFirstInsert) {
  GhostSet ghost;
  ghost.Resize(1000);
  ghost.SetWindow(1 << 20);
  EXPECT_EQ(ghost.capacity(), 2048u);
  EXPECT_EQ(ghost.memory_bytes(), 0u);
  EXPECT_FALSE(ghost.TakeIfPresent(common::HashKey("k1")));
  EXPECT_EQ(ghost.memory_bytes(), 0u);

  ghost.Insert(common::HashKey("k1"), 100);
  EXPECT_EQ(ghost.memory_bytes(), 2048u * sizeof(uint32_t));
  EXPECT_TRUE(ghost.TakeIfPresent(common::HashKey("k1")));
  EXPECT_FALSE(ghost.TakeIfPresent(common::HashKey("k1")));

  // Resizing forgets, gives the memory back, and the next Insert takes the
  // new size.
  ghost.Insert(common::HashKey("k2"), 100);
  ghost.Resize(3000);
  EXPECT_EQ(ghost.memory_bytes(), 0u);
  EXPECT_FALSE(ghost.TakeIfPresent(common::HashKey("k2")));
  ghost.Insert(common::HashKey("k3"), 100);
  EXPECT_EQ(ghost.memory_bytes(), ghost.capacity() * sizeof(uint32_t));
  EXPECT_TRUE(ghost.TakeIfPresent(common::HashKey("k3")));
}

// -------------------------------------------------------------------- LRU

TEST(LruTest, EvictsLeastRecentlyUsed) {
  Items items;
  auto policy = MakeLruPolicy();
  Item* a = items.New(Key('a', 0));
  Item* b = items.New(Key('b', 0));
  Item* c = items.New(Key('c', 0));
  Insert(*policy, a);
  Insert(*policy, b);
  Insert(*policy, c);
  policy->OnHit(a);
  policy->OnHit(b);
  policy->OnHit(a);
  EXPECT_EQ(CandidateKey(*policy), Key('c', 0));
  EXPECT_EQ(EvictAll(*policy), (std::vector<std::string>{Key('c', 0), Key('b', 0), Key('a', 0)}));
}

TEST(LruTest, RandomizedAgainstExactModel) {
  std::mt19937_64 rng(7);
  Items items;
  auto policy = MakeLruPolicy();
  std::list<Item*> model;  // front = least recently used
  std::unordered_map<Item*, std::list<Item*>::iterator> where;
  std::vector<Item*> resident;
  int next_key = 0;
  auto forget = [&](Item* item) {
    model.erase(where.at(item));
    where.erase(item);
    resident.erase(std::find(resident.begin(), resident.end(), item));
  };
  for (int step = 0; step < 20000; ++step) {
    uint64_t dice = rng() % 100;
    if (dice < 35 || resident.empty()) {
      Item* item = items.New(Key('k', next_key++));
      Insert(*policy, item);
      model.push_back(item);
      where[item] = std::prev(model.end());
      resident.push_back(item);
    } else if (dice < 75) {
      Item* item = resident[rng() % resident.size()];
      policy->OnHit(item);
      model.splice(model.end(), model, where.at(item));
    } else if (dice < 85) {
      Item* item = resident[rng() % resident.size()];
      policy->OnRemove(item);
      forget(item);
    } else {
      Item* victim = policy->Evict();
      ASSERT_EQ(victim, model.front()) << "step " << step;
      forget(victim);
    }
  }
  for (Item* expected : std::vector<Item*>(model.begin(), model.end())) {
    ASSERT_EQ(policy->Evict(), expected);
  }
  EXPECT_EQ(policy->Evict(), nullptr);
}

// ------------------------------------------------------------ hit ratio

// A byte-bounded cache around one policy, the way a RAM-tier shard uses it.
class Simulator {
 public:
  Simulator(std::unique_ptr<EvictionPolicy> policy, size_t capacity_bytes)
      : policy_(std::move(policy)), capacity_(capacity_bytes) {}
  ~Simulator() {
    for (auto& [key, item] : resident_) Item::Destroy(item);
  }

  void Access(const std::string& key) {
    auto it = resident_.find(key);
    if (it != resident_.end()) {
      ++hits_;
      policy_->OnHit(it->second);
      return;
    }
    ++misses_;
    Item* item = Item::Create(key, 0, 0, kValueLen);
    resident_.emplace(key, item);
    bytes_ += ItemCharge(item);
    policy_->OnInsert(item, common::HashKey(key));
    while (bytes_ > capacity_) {
      Item* victim = policy_->Evict();
      ASSERT_NE(victim, nullptr);
      bytes_ -= ItemCharge(victim);
      ASSERT_EQ(resident_.erase(std::string(victim->Key())), 1u);
      Item::Destroy(victim);
    }
  }

  double HitRatio() const { return static_cast<double>(hits_) / (hits_ + misses_); }

 private:
  std::unique_ptr<EvictionPolicy> policy_;
  size_t capacity_;
  size_t bytes_ = 0;
  std::unordered_map<std::string, Item*> resident_;
  uint64_t hits_ = 0;
  uint64_t misses_ = 0;
};

// Zipf(alpha) over [0, n) by inverse CDF; uniform draws come straight from
// the 64-bit engine so the sequence is the same on every standard library.
class ZipfSampler {
 public:
  ZipfSampler(int n, double alpha) : cdf_(n) {
    double sum = 0;
    for (int i = 0; i < n; ++i) {
      sum += 1.0 / std::pow(i + 1, alpha);
      cdf_[i] = sum;
    }
    for (double& c : cdf_) c /= sum;
  }
  int Sample(std::mt19937_64& rng) const {
    double u = static_cast<double>(rng() >> 11) * 0x1.0p-53;
    auto it = std::lower_bound(cdf_.begin(), cdf_.end(), u);
    return static_cast<int>(std::min<ptrdiff_t>(it - cdf_.begin(), cdf_.size() - 1));
  }

 private:
  std::vector<double> cdf_;
};

struct WorkloadResult {
  double s3fifo;
  double lru;
};

// Zipf requests over `keys` keys, with a one-pass scan of `scan_len` fresh
// keys after every `scan_every` requests; the cache holds `capacity` items.
WorkloadResult RunWorkload(uint64_t seed, int keys, double alpha, int requests, int scan_every,
                           int scan_len, int capacity) {
  size_t charge = 0;
  {
    Item* probe = Item::Create(Key('z', 0), 0, 0, kValueLen);
    charge = ItemCharge(probe);
    Item::Destroy(probe);
  }
  Simulator s3fifo(MakeS3FifoPolicy({}), charge * capacity);
  Simulator lru(MakeLruPolicy(), charge * capacity);
  ZipfSampler zipf(keys, alpha);
  std::mt19937_64 rng(seed);
  int scanned = 0;
  for (int r = 0; r < requests; ++r) {
    std::string key = Key('z', zipf.Sample(rng));
    s3fifo.Access(key);
    lru.Access(key);
    if (scan_every > 0 && (r + 1) % scan_every == 0) {
      for (int i = 0; i < scan_len; ++i) {
        std::string scan_key = Key('s', scanned++);
        s3fifo.Access(scan_key);
        lru.Access(scan_key);
      }
    }
  }
  return {s3fifo.HitRatio(), lru.HitRatio()};
}

TEST(HitRatioTest, S3FifoBeatsLruOnZipfWithScans) {
  for (uint64_t seed : {11u, 22u, 33u}) {
    WorkloadResult r = RunWorkload(seed, /*keys=*/20000, /*alpha=*/1.0, /*requests=*/100000,
                                   /*scan_every=*/5000, /*scan_len=*/3000, /*capacity=*/2000);
    SCOPED_TRACE("seed " + std::to_string(seed));
    RecordProperty("s3fifo_" + std::to_string(seed), std::to_string(r.s3fifo));
    RecordProperty("lru_" + std::to_string(seed), std::to_string(r.lru));
    std::printf("zipf+scan seed %llu: s3fifo %.4f lru %.4f\n",
                static_cast<unsigned long long>(seed), r.s3fifo, r.lru);
    // A scan flushes LRU; S3-FIFO keeps the hot set in main.
    EXPECT_GT(r.s3fifo, r.lru + 0.02);
  }
}

TEST(HitRatioTest, S3FifoAtLeastAsGoodAsLruOnPlainZipf) {
  WorkloadResult r = RunWorkload(/*seed=*/5, /*keys=*/20000, /*alpha=*/0.9, /*requests=*/100000,
                                 /*scan_every=*/0, /*scan_len=*/0, /*capacity=*/2000);
  std::printf("zipf seed 5: s3fifo %.4f lru %.4f\n", r.s3fifo, r.lru);
  EXPECT_GE(r.s3fifo, r.lru);
}

}  // namespace
}  // namespace strata::tiers
