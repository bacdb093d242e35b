// FrequencySketch and AdmissionPolicy decisions on small crafted sequences.
#include "tiers/policy/hotness.h"

#include <gtest/gtest.h>

#include <string>

#include "common/hash.h"
#include "tests/support/fake_clock.h"

namespace strata::tiers {
namespace {

uint64_t H(const std::string& k) { return common::HashKey(k); }

TEST(FrequencySketchTest, CountsCapsAndAges) {
  FrequencySketch sketch(1 << 16);
  EXPECT_EQ(sketch.Estimate(H("a")), 0u);
  for (int i = 0; i < 5; ++i) sketch.Record(H("a"));
  EXPECT_EQ(sketch.Estimate(H("a")), 5u);
  for (int i = 0; i < 100; ++i) sketch.Record(H("a"));
  EXPECT_EQ(sketch.Estimate(H("a")), 15u);  // 4-bit counters
  sketch.Age();
  EXPECT_EQ(sketch.Estimate(H("a")), 7u);
  EXPECT_LE(sketch.Estimate(H("never-seen")), 1u);
}

TEST(FrequencySketchTest, FewFalsePositivesAmongManyKeys) {
  FrequencySketch sketch(100000);
  for (int i = 0; i < 100000; ++i) sketch.Record(H("k" + std::to_string(i)));
  int inflated = 0;
  for (int i = 0; i < 100000; ++i) inflated += sketch.Estimate(H("k" + std::to_string(i))) > 1;
  EXPECT_LT(inflated, 5000);  // count-min overestimates only on collisions in all rows
}

TEST(FrequencySketchTest, AgesAutomaticallyAfterTheSample) {
  FrequencySketch sketch(1024);
  for (int i = 0; i < 10; ++i) sketch.Record(H("hot"));
  uint32_t before = sketch.Estimate(H("hot"));
  for (uint64_t i = 0; i < sketch.sample(); ++i) sketch.Record(H("noise" + std::to_string(i % 50000)));
  EXPECT_LT(sketch.Estimate(H("hot")), before);
}

class AdmissionTest : public ::testing::Test {
 protected:
  AdmissionTest() : sketch_(1 << 16) {
    item_ = ItemRef::Adopt(Item::Create("key", 0, 0, 100));
  }
  static AdmissionOptions ReaccessedWithAWindowOf1000() {
    AdmissionOptions o{AdmissionKind::kReaccessed, 2, 0};
    o.ghost_window_bytes = 1000;
    return o;
  }
  FrequencySketch sketch_;
  common::FakeClock clock_;
  ItemRef item_;
};

TEST_F(AdmissionTest, AllAdmitsEverything) {
  AdmissionPolicy p({AdmissionKind::kAll, 2, 0}, sketch_, clock_);
  EXPECT_EQ(p.Admit(*item_, H("key"), 100, /*room=*/false), AdmissionVerdict::kAdmit);
}

TEST_F(AdmissionTest, ReaccessedAdmitsReadItemsAndKeysThatComeBack) {
  AdmissionPolicy p(ReaccessedWithAWindowOf1000(), sketch_, clock_);
  // Never read in RAM: rejected, and remembered.
  EXPECT_EQ(p.Admit(*item_, H("key"), 100, /*room=*/false), AdmissionVerdict::kRejectCold);
  // Read in RAM: admitted.
  item_->fetched = 1;
  EXPECT_EQ(p.Admit(*item_, H("key"), 100, /*room=*/false), AdmissionVerdict::kAdmit);
  // Evicted unread again soon after its rejection: it came back, admitted
  // (once: the ghost forgets it).
  item_->fetched = 0;
  EXPECT_EQ(p.Admit(*item_, H("key"), 100, /*room=*/false), AdmissionVerdict::kAdmit);
  EXPECT_EQ(p.Admit(*item_, H("key"), 100, /*room=*/false), AdmissionVerdict::kRejectCold);
  // The sketch admits a key it calls hot (5 reads), not one merely warm.
  for (int i = 0; i < 4; ++i) sketch_.Record(H("warm"));
  EXPECT_EQ(p.Admit(*item_, H("warm"), 100, /*room=*/false), AdmissionVerdict::kRejectCold);
  for (int i = 0; i < 5; ++i) sketch_.Record(H("hot"));
  EXPECT_EQ(p.Admit(*item_, H("hot"), 100, /*room=*/false), AdmissionVerdict::kAdmit);
}

TEST_F(AdmissionTest, ReaccessedRemembersAWindowOfRejectedBytes) {
  AdmissionPolicy p(ReaccessedWithAWindowOf1000(), sketch_, clock_);
  // "near" has 900 bytes rejected after it, "far" 1100: only near is
  // still remembered when it comes back.
  EXPECT_EQ(p.Admit(*item_, H("far"), 100, /*room=*/false), AdmissionVerdict::kRejectCold);
  EXPECT_EQ(p.Admit(*item_, H("x0"), 100, /*room=*/false), AdmissionVerdict::kRejectCold);
  EXPECT_EQ(p.Admit(*item_, H("near"), 100, /*room=*/false), AdmissionVerdict::kRejectCold);
  for (int i = 1; i < 10; ++i) {
    EXPECT_EQ(p.Admit(*item_, H("x" + std::to_string(i)), 100, /*room=*/false),
              AdmissionVerdict::kRejectCold);
  }
  EXPECT_EQ(p.Admit(*item_, H("near"), 100, /*room=*/false), AdmissionVerdict::kAdmit);
  EXPECT_EQ(p.Admit(*item_, H("far"), 100, /*room=*/false), AdmissionVerdict::kRejectCold);
}

TEST_F(AdmissionTest, ReaccessedComparesWithWhatReclaimDrops) {
  AdmissionPolicy p(ReaccessedWithAWindowOf1000(), sketch_, clock_);
  AdmissionOptions off = ReaccessedWithAWindowOf1000();
  off.victim_percent = 0;
  AdmissionPolicy no_victims(off, sketch_, clock_);
  item_->fetched = 1;
  for (int i = 0; i < 7; ++i) sketch_.Record(H("warm"));
  for (int i = 0; i < 8; ++i) sketch_.Record(H("hot"));
  for (int i = 0; i < 10; ++i) sketch_.Record(H("victim"));
  // Before any reclaim, an item read in RAM is admitted however cold.
  EXPECT_EQ(p.Admit(*item_, H("warm"), 100, /*room=*/false), AdmissionVerdict::kAdmit);
  // A record that is kept is no victim: the mean stays at 0.
  EXPECT_EQ(p.ReclaimScore(H("victim"), /*accessed=*/true), 11u);
  EXPECT_EQ(p.dropped_estimate_x16(), 0u);
  // Reclaim drops records of estimate 10: the mean (in 1/16ths) nears 160.
  for (int i = 0; i < 64; ++i) {
    EXPECT_EQ(p.ReclaimScore(H("victim"), /*accessed=*/false), 0u);
    p.NoteReclaimDropped(H("victim"));
    no_victims.NoteReclaimDropped(H("victim"));
  }
  EXPECT_GE(p.dropped_estimate_x16(), 150u);
  EXPECT_LE(p.dropped_estimate_x16(), 160u);
  // An item read in RAM now needs 75% of that: 8 reads, not 7.
  EXPECT_EQ(p.Admit(*item_, H("warm"), 100, /*room=*/false), AdmissionVerdict::kRejectCold);
  EXPECT_EQ(p.Admit(*item_, H("hot"), 100, /*room=*/false), AdmissionVerdict::kAdmit);
  // victim_percent 0 leaves the comparison out.
  EXPECT_EQ(no_victims.Admit(*item_, H("warm"), 100, /*room=*/false), AdmissionVerdict::kAdmit);
  // Other admission kinds do not compare.
  AdmissionPolicy all({AdmissionKind::kAll, 2, 0}, sketch_, clock_);
  for (int i = 0; i < 64; ++i) all.NoteReclaimDropped(H("victim"));
  EXPECT_EQ(all.Admit(*item_, H("warm"), 100, /*room=*/false), AdmissionVerdict::kAdmit);
}

// While the SSD has room no live record needs, the filter does not decide:
// everything goes, within the write budget.
TEST_F(AdmissionTest, RoomAdmitsWhateverTheKind) {
  AdmissionPolicy reaccessed(ReaccessedWithAWindowOf1000(), sketch_, clock_);
  AdmissionPolicy sketch({AdmissionKind::kSketch, 3, 0}, sketch_, clock_);
  item_->fetched = 0;
  EXPECT_EQ(reaccessed.Admit(*item_, H("once"), 100, /*room=*/true), AdmissionVerdict::kAdmit);
  EXPECT_EQ(sketch.Admit(*item_, H("once"), 100, /*room=*/true), AdmissionVerdict::kAdmit);
  EXPECT_EQ(reaccessed.Admit(*item_, H("once"), 100, /*room=*/false),
            AdmissionVerdict::kRejectCold);
  EXPECT_EQ(sketch.Admit(*item_, H("once"), 100, /*room=*/false), AdmissionVerdict::kRejectCold);
  AdmissionPolicy budget({AdmissionKind::kReaccessed, 2, 1000}, sketch_, clock_);
  EXPECT_EQ(budget.Admit(*item_, H("a"), 900, /*room=*/true), AdmissionVerdict::kAdmit);
  EXPECT_EQ(budget.Admit(*item_, H("b"), 200, /*room=*/true), AdmissionVerdict::kRejectBudget);
}

TEST_F(AdmissionTest, ReclaimScoresOnlyReadAndWarmRecordsAndSpendsTheBudget) {
  AdmissionPolicy p({AdmissionKind::kReaccessed, 2, 1000}, sketch_, clock_);
  EXPECT_EQ(p.ReclaimScore(H("k"), /*accessed=*/true), 0u);  // not warm
  sketch_.Record(H("k"));
  EXPECT_EQ(p.ReclaimScore(H("k"), /*accessed=*/false), 0u);  // not read since written
  EXPECT_EQ(p.ReclaimScore(H("k"), /*accessed=*/true), 2u);
  // 1000 B of budget: a cold record may spend it only while it is half full.
  EXPECT_TRUE(p.SpendOnReclaim(600, 0));
  EXPECT_FALSE(p.SpendOnReclaim(100, 0));
  EXPECT_TRUE(p.SpendOnReclaim(100, 6));
}

TEST_F(AdmissionTest, SketchNeedsTheThreshold) {
  AdmissionPolicy p({AdmissionKind::kSketch, 3, 0}, sketch_, clock_);
  sketch_.Record(H("key"));
  sketch_.Record(H("key"));
  EXPECT_EQ(p.Admit(*item_, H("key"), 100, /*room=*/false), AdmissionVerdict::kRejectCold);
  sketch_.Record(H("key"));
  EXPECT_EQ(p.Admit(*item_, H("key"), 100, /*room=*/false), AdmissionVerdict::kAdmit);
}

TEST_F(AdmissionTest, WriteBudgetRejectsColdFirstAndRefills) {
  AdmissionPolicy p({AdmissionKind::kAll, 2, 1000}, sketch_, clock_);  // 1000 B/s
  // A full bucket admits anything that fits.
  EXPECT_EQ(p.Admit(*item_, H("cold"), 600, /*room=*/false), AdmissionVerdict::kAdmit);
  // 400 left (< half): a cold item is rejected, a hot one passes.
  EXPECT_EQ(p.Admit(*item_, H("cold"), 100, /*room=*/false), AdmissionVerdict::kRejectBudget);
  for (int i = 0; i < 5; ++i) sketch_.Record(H("hot"));
  EXPECT_EQ(p.Admit(*item_, H("hot"), 300, /*room=*/false), AdmissionVerdict::kAdmit);
  // 100 left: even hot items that do not fit are rejected.
  EXPECT_EQ(p.Admit(*item_, H("hot"), 200, /*room=*/false), AdmissionVerdict::kRejectBudget);
  clock_.Advance(1);  // one second refills the bucket
  EXPECT_EQ(p.Admit(*item_, H("cold"), 900, /*room=*/false), AdmissionVerdict::kAdmit);
}

}  // namespace
}  // namespace strata::tiers
