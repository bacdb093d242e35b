// Placement::Build's rules and Pick's basic properties. Exact placement is
// pinned by placement_golden_test.cc.

#include "proxy/upstream/placement.h"

#include <gtest/gtest.h>

#include <map>
#include <string>
#include <thread>
#include <vector>

namespace strata::upstream {
namespace {

std::vector<ServerSpec> Specs(const std::vector<std::string>& texts) {
  std::vector<ServerSpec> out;
  for (const std::string& t : texts) {
    common::Result<ServerSpec> s = ParseServerSpec(t);
    EXPECT_TRUE(s.ok()) << t;
    if (s.ok()) out.push_back(*s);
  }
  return out;
}

std::string BuildError(Distribution d, const std::vector<std::string>& texts) {
  common::Result<Placement> p = Placement::Build(d, Specs(texts));
  EXPECT_FALSE(p.ok());
  return p.ok() ? "" : p.status().message();
}

constexpr Distribution kAll[] = {Distribution::kKetama, Distribution::kRendezvous,
                                 Distribution::kJump, Distribution::kModula};

TEST(PlacementTest, DistributionNames) {
  for (Distribution d : kAll) {
    common::Result<Distribution> back = ParseDistribution(DistributionName(d));
    ASSERT_TRUE(back.ok());
    EXPECT_EQ(*back, d);
  }
  common::Result<Distribution> bad = ParseDistribution("consistent");
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.status().message(),
            "expected one of ketama, rendezvous, jump, modula, got \"consistent\"");
}

TEST(PlacementTest, RejectsWhatNoClientDoes) {
  for (Distribution d : kAll) {
    EXPECT_EQ(BuildError(d, {}), "no servers");
    EXPECT_EQ(BuildError(d, {"10.0.0.1:11211", "10.0.0.2:11211", "10.0.0.1:11211:2"}),
              "servers[2]: 10.0.0.1:11211 is listed twice (also servers[0])");
  }
  EXPECT_EQ(BuildError(Distribution::kRendezvous, {"a:1", "b:1:2"}),
            "servers[1]: weight 2: distribution rendezvous has no weights (its clients give "
            "every server one share)");
  EXPECT_EQ(BuildError(Distribution::kJump, {"a:1:3"}),
            "servers[0]: weight 3: distribution jump has no weights (its clients give every "
            "server one share)");
  EXPECT_EQ(BuildError(Distribution::kModula, {"a:1 alpha"}),
            "servers[0]: a server name (\"alpha\") is used only by ketama, not modula");
  EXPECT_EQ(BuildError(Distribution::kKetama, {"a:1 same", "b:1 same"}),
            "servers[1]: hashes by the same name \"same\" as servers[0]");
  // Port 11211 hashes by the host alone, like an explicit name would.
  EXPECT_EQ(BuildError(Distribution::kKetama, {"cache:11211", "b:1 cache"}),
            "servers[1]: hashes by the same name \"cache\" as servers[0]");
  EXPECT_EQ(BuildError(Distribution::kJump, {"h01:1", "h1:1"}),
            "servers[1]: h1:1 and servers[0] (h01:1) are equal in the natural order of jump");
}

TEST(PlacementTest, AcceptsWeightOneEverywhere) {
  for (Distribution d : kAll) {
    common::Result<Placement> p = Placement::Build(d, Specs({"a:1:1", "b:2"}));
    ASSERT_TRUE(p.ok()) << DistributionName(d) << ": " << p.status().message();
    EXPECT_EQ(p->distribution(), d);
    EXPECT_EQ(p->servers().size(), 2u);
  }
}

TEST(PlacementTest, OneServerTakesEveryKey) {
  for (Distribution d : kAll) {
    common::Result<Placement> p = Placement::Build(d, Specs({"10.0.0.1:11211"}));
    ASSERT_TRUE(p.ok());
    for (const char* key : {"", "a", "key:1", "\xFF\xFE"}) EXPECT_EQ(p->Pick(key), 0u);
  }
}

TEST(PlacementTest, SpreadsKeysAndHonoursWeights) {
  const std::vector<std::string> servers = {"10.0.0.1:11211", "10.0.0.2:11211", "10.0.0.3:11211",
                                            "10.0.0.4:11211"};
  for (Distribution d : kAll) {
    common::Result<Placement> p = Placement::Build(d, Specs(servers));
    ASSERT_TRUE(p.ok());
    std::map<size_t, int> count;
    for (int i = 0; i < 40000; ++i) ++count[p->Pick("key:" + std::to_string(i))];
    ASSERT_EQ(count.size(), 4u) << DistributionName(d);
    for (const auto& [server, n] : count) {
      EXPECT_GT(n, 7000) << DistributionName(d) << " server " << server;
      EXPECT_LT(n, 13000) << DistributionName(d) << " server " << server;
    }
  }
  for (Distribution d : {Distribution::kKetama, Distribution::kModula}) {
    common::Result<Placement> p = Placement::Build(d, Specs({"a:1:1", "b:1:3"}));
    ASSERT_TRUE(p.ok());
    int heavy = 0;
    for (int i = 0; i < 40000; ++i) heavy += p->Pick("key:" + std::to_string(i)) == 1 ? 1 : 0;
    EXPECT_GT(heavy, 27000) << DistributionName(d);
    EXPECT_LT(heavy, 33000) << DistributionName(d);
  }
}

TEST(PlacementTest, ConsistentDistributionsMoveFewKeysWhenAServerIsAdded) {
  const std::vector<std::string> four = {"10.0.0.1:11211", "10.0.0.2:11211", "10.0.0.3:11211",
                                         "10.0.0.4:11211"};
  std::vector<std::string> five = four;
  five.push_back("10.0.0.5:11211");
  for (Distribution d : {Distribution::kKetama, Distribution::kRendezvous, Distribution::kJump}) {
    common::Result<Placement> before = Placement::Build(d, Specs(four));
    common::Result<Placement> after = Placement::Build(d, Specs(five));
    ASSERT_TRUE(before.ok() && after.ok());
    int moved = 0;
    for (int i = 0; i < 20000; ++i) {
      const std::string key = "key:" + std::to_string(i);
      const size_t a = before->Pick(key);
      const size_t b = after->Pick(key);
      if (a != b) {
        ++moved;
        EXPECT_EQ(b, 4u) << DistributionName(d) << ": a key moved between old servers";
      }
    }
    EXPECT_LT(moved, 20000 * 3 / 10) << DistributionName(d);
  }
}

TEST(PlacementTest, JumpNumbersServersInNaturalOrderWhateverTheConfigOrder) {
  common::Result<Placement> a =
      Placement::Build(Distribution::kJump, Specs({"10.0.0.10:1", "10.0.0.2:1", "10.0.0.9:1"}));
  common::Result<Placement> b =
      Placement::Build(Distribution::kJump, Specs({"10.0.0.2:1", "10.0.0.9:1", "10.0.0.10:1"}));
  ASSERT_TRUE(a.ok() && b.ok());
  for (int i = 0; i < 1000; ++i) {
    const std::string key = "k" + std::to_string(i);
    EXPECT_EQ(a->servers()[a->Pick(key)], b->servers()[b->Pick(key)]);
  }
}

TEST(PlacementTest, LongKeysAndAnyBytes) {
  for (Distribution d : kAll) {
    common::Result<Placement> p = Placement::Build(d, Specs({"a:1", "b:1", "c:1"}));
    ASSERT_TRUE(p.ok());
    const std::string long_key(4096, 'k');
    EXPECT_LT(p->Pick(long_key), 3u);
    EXPECT_LT(p->Pick(std::string("\0\xFF\x80", 3)), 3u);
  }
  // gomemcache hashes only a key's first 256 bytes.
  common::Result<Placement> modula = Placement::Build(Distribution::kModula, Specs({"a:1", "b:1"}));
  ASSERT_TRUE(modula.ok());
  for (int i = 0; i < 50; ++i) {
    const std::string head(256, static_cast<char>('a' + i % 26));
    EXPECT_EQ(modula->Pick(head + "x" + std::to_string(i)), modula->Pick(head));
  }
}

TEST(PlacementTest, PickIsSafeFromManyThreads) {
  common::Result<Placement> p =
      Placement::Build(Distribution::kRendezvous, Specs({"a:1", "b:1", "c:1"}));
  ASSERT_TRUE(p.ok());
  std::vector<size_t> want(1000);
  for (size_t i = 0; i < want.size(); ++i) want[i] = p->Pick("key:" + std::to_string(i));
  std::vector<std::thread> threads;
  std::vector<int> mismatches(4, 0);
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      for (size_t i = 0; i < want.size(); ++i) {
        if (p->Pick("key:" + std::to_string(i)) != want[i]) ++mismatches[t];
      }
    });
  }
  for (std::thread& t : threads) t.join();
  for (int m : mismatches) EXPECT_EQ(m, 0);
}

}  // namespace
}  // namespace strata::upstream
