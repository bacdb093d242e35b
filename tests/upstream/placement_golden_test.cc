// Placement::Pick against the golden vectors of tests/upstream/golden/: for
// every case of every file, every key must land on the server the client
// library put it on. The vectors were made by the libraries (pymemcache,
// pylibmc/libmemcached, nutcracker, gomemcache, xxhash + jump), never by
// strata; golden/check.sh regenerates them in CI.

#include <gtest/gtest.h>

#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "proxy/upstream/placement.h"

namespace strata::upstream {
namespace {

struct GoldenCase {
  std::string file;
  std::string name;
  std::string distribution;
  std::vector<std::string> servers;
  std::vector<std::pair<std::string, size_t>> keys;  // key bytes, server index
};

std::string FromHex(const std::string& hex) {
  std::string out;
  for (size_t i = 0; i + 1 < hex.size(); i += 2) {
    out.push_back(static_cast<char>(std::stoi(hex.substr(i, 2), nullptr, 16)));
  }
  return out;
}

std::vector<GoldenCase> Load(const std::string& file) {
  std::ifstream in(std::string(STRATA_GOLDEN_DIR) + "/" + file);
  EXPECT_TRUE(in) << "cannot open " << file;
  std::vector<GoldenCase> cases;
  GoldenCase current;
  std::string line;
  while (std::getline(in, line)) {
    if (line.empty() || line[0] == '#') continue;
    const size_t space = line.find(' ');
    const std::string word = line.substr(0, space);
    const std::string rest = space == std::string::npos ? "" : line.substr(space + 1);
    if (word == "case") {
      current = GoldenCase{file, rest, "", {}, {}};
    } else if (word == "distribution") {
      current.distribution = rest;
    } else if (word == "server") {
      current.servers.push_back(rest);
    } else if (word == "key") {
      const size_t sep = rest.find(' ');
      current.keys.emplace_back(FromHex(rest.substr(0, sep)), std::stoul(rest.substr(sep + 1)));
    } else if (word == "end") {
      cases.push_back(current);
    } else {
      ADD_FAILURE() << file << ": unexpected line " << line;
    }
  }
  return cases;
}

void CheckFile(const std::string& file, const std::string& distribution, size_t min_cases) {
  const std::vector<GoldenCase> cases = Load(file);
  ASSERT_GE(cases.size(), min_cases) << file;
  for (const GoldenCase& c : cases) {
    SCOPED_TRACE(file + " case " + c.name);
    ASSERT_EQ(c.distribution, distribution);
    std::vector<ServerSpec> specs;
    for (const std::string& s : c.servers) {
      common::Result<ServerSpec> spec = ParseServerSpec(s);
      ASSERT_TRUE(spec.ok()) << s << ": " << spec.status().message();
      specs.push_back(*spec);
    }
    common::Result<Distribution> d = ParseDistribution(c.distribution);
    ASSERT_TRUE(d.ok());
    common::Result<Placement> placement = Placement::Build(*d, specs);
    ASSERT_TRUE(placement.ok()) << placement.status().message();
    ASSERT_GE(c.keys.size(), 300u);
    size_t wrong = 0;
    for (const auto& [key, want] : c.keys) {
      ASSERT_LT(want, c.servers.size()) << "a vector names no server of its case";
      const size_t got = placement->Pick(key);
      if (got != want && ++wrong <= 5) {
        ADD_FAILURE() << "key \"" << key << "\": strata picks servers[" << got << "] "
                      << c.servers[got] << ", the library picked servers[" << want << "] "
                      << c.servers[want];
      }
    }
    EXPECT_EQ(wrong, 0u) << "keys placed differently";
  }
}

TEST(PlacementGoldenTest, KetamaMatchesPylibmcKetamaWeighted) {
  CheckFile("ketama_pylibmc.txt", "ketama", 6);
}

TEST(PlacementGoldenTest, KetamaMatchesNutcrackerMd5Ketama) {
  CheckFile("ketama_nutcracker.txt", "ketama", 8);
}

TEST(PlacementGoldenTest, RendezvousMatchesPymemcacheHashClient) {
  CheckFile("rendezvous_pymemcache.txt", "rendezvous", 4);
}

TEST(PlacementGoldenTest, JumpMatchesDskitXxhashJump) { CheckFile("jump_dskit.txt", "jump", 5); }

TEST(PlacementGoldenTest, ModulaMatchesGomemcacheServerList) {
  CheckFile("modula_gomemcache.txt", "modula", 5);
}

}  // namespace
}  // namespace strata::upstream
