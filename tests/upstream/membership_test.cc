#include "proxy/upstream/membership.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace strata::upstream {
namespace {

using common::ServerSpec;

std::vector<ServerSpec> Specs(std::initializer_list<const char*> addrs) {
  std::vector<ServerSpec> out;
  for (const char* a : addrs) out.push_back(*common::ParseServerSpec(a));
  return out;
}

// "addr" or "addr(leaving)" per ring entry.
std::vector<std::string> Ring(const MembershipTracker& t) {
  std::vector<std::string> out;
  for (const auto& e : t.ring()) out.push_back(e.spec.Address() + (e.leaving ? "(leaving)" : ""));
  return out;
}

TEST(MembershipTrackerTest, SortedNaturallyAndDeduplicated) {
  MembershipTracker t(30'000, /*sorted=*/true);
  EXPECT_TRUE(t.Update(Specs({"10.0.0.10:11211", "10.0.0.9:11211", "10.0.0.9:11211"}), 0));
  EXPECT_EQ(Ring(t), (std::vector<std::string>{"10.0.0.9:11211", "10.0.0.10:11211"}));
  // The same set in another order is no change.
  EXPECT_FALSE(t.Update(Specs({"10.0.0.9:11211", "10.0.0.10:11211"}), 5));
  EXPECT_FALSE(t.NextExpiry());
}

TEST(MembershipTrackerTest, StaticOrderIsKept) {
  MembershipTracker t(30'000, /*sorted=*/false);
  t.Update(Specs({"b:1", "a:1"}), 0);
  EXPECT_EQ(Ring(t), (std::vector<std::string>{"b:1", "a:1"}));
}

TEST(MembershipTrackerTest, ARemovedMemberLeavesAfterTheGrace) {
  MembershipTracker t(30'000, true);
  t.Update(Specs({"a:1", "b:1", "c:1"}), 1'000);
  EXPECT_TRUE(t.Update(Specs({"a:1", "c:1"}), 2'000));
  EXPECT_EQ(Ring(t), (std::vector<std::string>{"a:1", "b:1(leaving)", "c:1"}));
  ASSERT_TRUE(t.NextExpiry());
  EXPECT_EQ(*t.NextExpiry(), 32'000u);
  // A later refresh without it does not restart its grace.
  EXPECT_FALSE(t.Update(Specs({"c:1", "a:1"}), 10'000));
  EXPECT_EQ(*t.NextExpiry(), 32'000u);
  EXPECT_FALSE(t.Expire(31'999));
  EXPECT_TRUE(t.Expire(32'000));
  EXPECT_EQ(Ring(t), (std::vector<std::string>{"a:1", "c:1"}));
  EXPECT_FALSE(t.NextExpiry());
}

TEST(MembershipTrackerTest, AMemberBackWithinTheGraceStays) {
  MembershipTracker t(30'000, true);
  t.Update(Specs({"a:1", "b:1"}), 0);
  t.Update(Specs({"a:1"}), 1'000);
  EXPECT_TRUE(t.Update(Specs({"a:1", "b:1"}), 2'000));
  EXPECT_EQ(Ring(t), (std::vector<std::string>{"a:1", "b:1"}));
  EXPECT_FALSE(t.NextExpiry());
}

TEST(MembershipTrackerTest, NoGraceMeansAtOnce) {
  MembershipTracker t(0, true);
  t.Update(Specs({"a:1", "b:1"}), 0);
  EXPECT_TRUE(t.Update(Specs({"a:1"}), 1));
  EXPECT_EQ(Ring(t), (std::vector<std::string>{"a:1"}));
}

TEST(MembershipTrackerTest, AdditionsJoinAtOnceWhileOthersLeave) {
  MembershipTracker t(10, true);
  t.Update(Specs({"a:1", "b:1"}), 0);
  EXPECT_TRUE(t.Update(Specs({"a:1", "c:1"}), 5));
  EXPECT_EQ(Ring(t), (std::vector<std::string>{"a:1", "b:1(leaving)", "c:1"}));
  EXPECT_TRUE(t.Expire(15));
  EXPECT_EQ(Ring(t), (std::vector<std::string>{"a:1", "c:1"}));
}

TEST(MembershipTrackerTest, AWeightChangeIsAChange) {
  MembershipTracker t(10, true);
  t.Update(Specs({"a:1", "b:1"}), 0);
  EXPECT_TRUE(t.Update(Specs({"a:1:2", "b:1"}), 1));
  EXPECT_EQ(t.ring()[0].spec.weight, 2u);
}

// Ketama over the ring: adding a fourth server moves about a quarter of
// the keys, and a leaving member keeps its keys (the ring is unchanged).
TEST(MembershipTrackerTest, KetamaMovesAQuarterOnAnAddition) {
  auto build = [](const MembershipTracker& t) {
    std::vector<ServerSpec> specs;
    for (const auto& e : t.ring()) specs.push_back(e.spec);
    return *Placement::Build(Distribution::kKetama, specs);
  };
  MembershipTracker t(10, true);
  t.Update(Specs({"127.0.0.1:1", "127.0.0.1:2", "127.0.0.1:3"}), 0);
  Placement p3 = build(t);
  t.Update(Specs({"127.0.0.1:1", "127.0.0.1:2", "127.0.0.1:3", "127.0.0.1:4"}), 1);
  Placement p4 = build(t);
  int moved = 0;
  for (int i = 0; i < 2000; ++i) {
    const std::string key = "key:" + std::to_string(i);
    const std::string a = p3.servers()[p3.Pick(key)].Address();
    const std::string b = p4.servers()[p4.Pick(key)].Address();
    if (a != b) {
      ++moved;
      EXPECT_EQ(b, "127.0.0.1:4");  // only to the new server
    }
  }
  EXPECT_GT(moved, 300);
  EXPECT_LT(moved, 700);
  t.Update(Specs({"127.0.0.1:1", "127.0.0.1:2", "127.0.0.1:4"}), 2);
  Placement leaving = build(t);
  for (int i = 0; i < 200; ++i) {
    const std::string key = "key:" + std::to_string(i);
    EXPECT_EQ(leaving.servers()[leaving.Pick(key)].Address(), p4.servers()[p4.Pick(key)].Address());
  }
}

}  // namespace
}  // namespace strata::upstream
