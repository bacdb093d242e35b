#include "metrics/exposition.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <map>
#include <set>
#include <sstream>
#include <string>

namespace strata::metrics {
namespace {

Snapshot Sample() {
  Snapshot s;
  s.ready = true;
  ServerFigures& f = s.server;
  f.version = "1.6.18-strata-0.1.0";
  f.uptime = 42;
  f.time = 1'700'000'000;
  f.rusage_user = 1.5;
  f.rusage_system = 0.25;
  f.max_connections = 4096;
  f.curr_connections = 3;
  f.total_connections = 10;
  f.rejected_connections = 1;
  f.conn_yields = 2;
  f.bytes_read = 1000;
  f.bytes_written = 2000;
  f.threads = 2;
  f.cmd_set = 20;  // 3 of them cas
  f.cmd_flush = 1;
  f.get_hits = 7;
  f.get_misses = 5;
  f.delete_hits = 1;
  f.delete_misses = 2;
  f.incr_hits = 3;
  f.incr_misses = 4;
  f.decr_hits = 5;
  f.decr_misses = 6;
  f.cas_hits = 1;
  f.cas_misses = 1;
  f.cas_badval = 1;
  f.touch_hits = 8;
  f.touch_misses = 9;
  f.store_too_large = 11;
  f.store_no_memory = 12;
  f.curr_items = 13;
  f.total_items = 14;
  f.bytes = 15'000;
  f.limit_maxbytes = 64ull << 20;
  f.evictions = 16;
  f.reclaimed = 17;
  f.crawler_reclaimed = 18;
  f.crawler_items_checked = 19;
  TierFigures ram;
  ram.name = "ram";
  ram.hits = 9;
  ram.misses = 5;
  ram.items = 13;
  ram.bytes = 15'000;
  ram.limit_bytes = 64ull << 20;
  ram.evictions = 16;
  ram.evicted_unfetched = 4;
  ram.expired_reclaimed = 17;
  ram.expired_unfetched = 3;
  s.tiers.push_back(ram);
  s.ram.eviction_policy = "s3fifo";
  s.server.network_io_mode = "io_uring";
  f.connection_memory = 3u << 20;
  f.connection_memory_limit = 32u << 20;
  f.connection_memory_stalls = 21;
  f.connection_memory_closed = 2;
  s.latency.at(CommandType::kGet, TierLabel::kRam).buckets[0] = 5;
  s.latency.at(CommandType::kGet, TierLabel::kRam).buckets[3] = 2;
  s.latency.at(CommandType::kGet, TierLabel::kRam).sum_ns = 50'000;
  s.latency.at(CommandType::kSet, TierLabel::kNone).buckets[kLatencyBuckets - 1] = 1;
  s.latency.at(CommandType::kSet, TierLabel::kNone).sum_ns = 2'000'000'000;
  // An upstream pool with a dynamic membership source.
  UpstreamFigures& u = s.upstream;
  u.present = true;
  u.ops = {"get"};
  u.outcomes = {"hit", "rejected"};
  u.states = {"up", "down", "probing", "leaving"};
  UpstreamServerFigures server;
  server.server = "10.0.0.1:11211";
  server.requests = {{3, 1}};
  server.state = 3;
  u.servers.push_back(server);
  u.members = 1;
  u.leaving = 1;
  u.sources.push_back(UpstreamSourceFigures{"dnssrv+_memcache._tcp.mc.ns.svc.cluster.local", 1,
                                            1'700'000'000.5, 2});
  return s;
}

// The text format, parsed: "name{labels}" -> value, and name -> TYPE.
struct Parsed {
  std::map<std::string, double> samples;
  std::map<std::string, std::string> types;
  std::set<std::string> helps;
};

Parsed Parse(const std::string& text) {
  Parsed p;
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("# TYPE ", 0) == 0) {
      std::istringstream l(line.substr(7));
      std::string name, type;
      l >> name >> type;
      p.types[name] = type;
    } else if (line.rfind("# HELP ", 0) == 0) {
      std::istringstream l(line.substr(7));
      std::string name;
      l >> name;
      p.helps.insert(name);
    } else if (!line.empty()) {
      const size_t space = line.rfind(' ');
      p.samples[line.substr(0, space)] = std::stod(line.substr(space + 1));
    }
  }
  return p;
}

TEST(ExpositionTest, MemcachedExporterNamesAndValues) {
  Parsed p = Parse(RenderText(Sample()));
  EXPECT_EQ(p.samples["memcached_up"], 1);
  EXPECT_EQ(p.samples["memcached_uptime_seconds"], 42);
  EXPECT_EQ(p.types["memcached_uptime_seconds"], "gauge");
  EXPECT_EQ(p.samples["memcached_time_seconds"], 1'700'000'000);
  EXPECT_EQ(p.samples["memcached_version{version=\"1.6.18-strata-0.1.0\"}"], 1);
  EXPECT_EQ(p.samples["memcached_process_user_cpu_seconds_total"], 1.5);
  EXPECT_EQ(p.samples["memcached_process_system_cpu_seconds_total"], 0.25);
  EXPECT_EQ(p.samples["memcached_read_bytes_total"], 1000);
  EXPECT_EQ(p.samples["memcached_written_bytes_total"], 2000);
  EXPECT_EQ(p.samples["memcached_current_connections"], 3);
  EXPECT_EQ(p.samples["memcached_max_connections"], 4096);
  EXPECT_EQ(p.samples["memcached_connections_total"], 10);
  EXPECT_EQ(p.samples["memcached_connections_rejected_total"], 1);
  EXPECT_EQ(p.samples["memcached_connections_yielded_total"], 2);
  EXPECT_EQ(p.samples["memcached_current_items"], 13);
  EXPECT_EQ(p.samples["memcached_items_total"], 14);
  EXPECT_EQ(p.samples["memcached_current_bytes"], 15'000);
  EXPECT_EQ(p.samples["memcached_limit_bytes"], 64 << 20);
  EXPECT_EQ(p.samples["memcached_items_evicted_total"], 16);
  EXPECT_EQ(p.samples["memcached_items_reclaimed_total"], 17);
  EXPECT_EQ(p.samples["memcached_item_too_large_total"], 11);
  EXPECT_EQ(p.samples["memcached_item_no_memory_total"], 12);
  EXPECT_EQ(p.samples["memcached_lru_crawler_reclaimed_total"], 18);
  EXPECT_EQ(p.samples["memcached_lru_crawler_items_checked_total"], 19);
}

TEST(ExpositionTest, CommandsFollowTheExporter) {
  Parsed p = Parse(RenderText(Sample()));
  auto cmd = [&](const char* command, const char* status) {
    std::string key = std::string("memcached_commands_total{command=\"") + command +
                      "\",status=\"" + status + "\"}";
    EXPECT_TRUE(p.samples.count(key)) << key;
    return p.samples[key];
  };
  EXPECT_EQ(cmd("get", "hit"), 7);
  EXPECT_EQ(cmd("get", "miss"), 5);
  EXPECT_EQ(cmd("delete", "hit"), 1);
  EXPECT_EQ(cmd("delete", "miss"), 2);
  EXPECT_EQ(cmd("incr", "hit"), 3);
  EXPECT_EQ(cmd("incr", "miss"), 4);
  EXPECT_EQ(cmd("decr", "hit"), 5);
  EXPECT_EQ(cmd("decr", "miss"), 6);
  EXPECT_EQ(cmd("cas", "hit"), 1);
  EXPECT_EQ(cmd("cas", "miss"), 1);
  EXPECT_EQ(cmd("cas", "badval"), 1);
  EXPECT_EQ(cmd("touch", "hit"), 8);
  EXPECT_EQ(cmd("touch", "miss"), 9);
  EXPECT_EQ(cmd("flush", "hit"), 1);
  EXPECT_EQ(cmd("set", "hit"), 17);  // cmd_set without the cas commands
  EXPECT_EQ(p.types["memcached_commands_total"], "counter");
}

TEST(ExpositionTest, SetNeverGoesNegative) {
  Snapshot s = Sample();
  s.server.cmd_set = 1;  // fewer than the cas counters (after `stats reset` races)
  Parsed p = Parse(RenderText(s));
  EXPECT_EQ(p.samples["memcached_commands_total{command=\"set\",status=\"hit\"}"], 0);
}

TEST(ExpositionTest, StrataTierFigures) {
  Parsed p = Parse(RenderText(Sample()));
  EXPECT_EQ(p.samples["strata_ready"], 1);
  EXPECT_EQ(p.samples["strata_workers"], 2);
  EXPECT_EQ(p.samples["strata_tier_hits_total{tier=\"ram\"}"], 9);
  EXPECT_EQ(p.samples["strata_tier_misses_total{tier=\"ram\"}"], 5);
  EXPECT_EQ(p.samples["strata_tier_items{tier=\"ram\"}"], 13);
  EXPECT_EQ(p.samples["strata_tier_bytes{tier=\"ram\"}"], 15'000);
  EXPECT_EQ(p.samples["strata_tier_limit_bytes{tier=\"ram\"}"], 64 << 20);
  EXPECT_EQ(p.samples["strata_tier_evictions_total{tier=\"ram\"}"], 16);
  EXPECT_EQ(p.samples["strata_tier_evicted_unfetched_total{tier=\"ram\"}"], 4);
  EXPECT_EQ(p.samples["strata_tier_expired_reclaimed_total{tier=\"ram\"}"], 17);
  EXPECT_EQ(p.samples["strata_tier_expired_unfetched_total{tier=\"ram\"}"], 3);
  EXPECT_EQ(p.samples["strata_ram_eviction_policy_info{policy=\"s3fifo\"}"], 1);
  EXPECT_EQ(p.samples["strata_network_io_mode_info{mode=\"io_uring\"}"], 1);
  // No SSD figures until the SSD tier exists.
  for (const auto& [key, value] : p.samples) EXPECT_EQ(key.find("ssd"), std::string::npos);
}

TEST(ExpositionTest, LatencyHistogram) {
  Parsed p = Parse(RenderText(Sample()));
  EXPECT_EQ(p.types["strata_request_duration_seconds"], "histogram");
  const std::string get = "command=\"get\",tier=\"ram\"";
  EXPECT_EQ(p.samples["strata_request_duration_seconds_bucket{" + get + ",le=\"2e-06\"}"], 5);
  EXPECT_EQ(p.samples["strata_request_duration_seconds_bucket{" + get + ",le=\"1e-05\"}"], 5);
  EXPECT_EQ(p.samples["strata_request_duration_seconds_bucket{" + get + ",le=\"2e-05\"}"], 7);
  EXPECT_EQ(p.samples["strata_request_duration_seconds_bucket{" + get + ",le=\"+Inf\"}"], 7);
  EXPECT_EQ(p.samples["strata_request_duration_seconds_count{" + get + "}"], 7);
  EXPECT_DOUBLE_EQ(p.samples["strata_request_duration_seconds_sum{" + get + "}"], 50e-6);
  const std::string set = "command=\"set\",tier=\"none\"";
  EXPECT_EQ(p.samples["strata_request_duration_seconds_bucket{" + set + ",le=\"1\"}"], 0);
  EXPECT_EQ(p.samples["strata_request_duration_seconds_bucket{" + set + ",le=\"+Inf\"}"], 1);
  EXPECT_EQ(p.samples["strata_request_duration_seconds_sum{" + set + "}"], 2);
  // Series never observed are left out.
  for (const auto& [key, value] : p.samples) {
    EXPECT_EQ(key.find("tier=\"miss\""), std::string::npos) << key;
  }
}

TEST(ExpositionTest, ConnectionMemoryCap) {
  Parsed p = Parse(RenderText(Sample()));
  EXPECT_EQ(p.samples["strata_connection_memory_bytes"], 3u << 20);
  EXPECT_EQ(p.types["strata_connection_memory_bytes"], "gauge");
  EXPECT_EQ(p.samples["strata_connection_memory_limit_bytes"], 32u << 20);
  EXPECT_EQ(p.types["strata_connection_memory_limit_bytes"], "gauge");
  EXPECT_EQ(p.samples["strata_connection_memory_stalls_total"], 21);
  EXPECT_EQ(p.types["strata_connection_memory_stalls_total"], "counter");
  EXPECT_EQ(p.samples["strata_connection_memory_closed_total"], 2);
  EXPECT_EQ(p.types["strata_connection_memory_closed_total"], "counter");
}

TEST(ExpositionTest, EveryFamilyHasHelpAndType) {
  Parsed p = Parse(RenderText(Sample()));
  for (const auto& [name, type] : p.types) EXPECT_TRUE(p.helps.count(name)) << name;
  for (const auto& [key, value] : p.samples) {
    std::string name = key.substr(0, key.find('{'));
    for (const char* suffix : {"_bucket", "_sum", "_count"}) {
      if (name.size() > strlen(suffix) &&
          name.compare(name.size() - strlen(suffix), strlen(suffix), suffix) == 0 &&
          p.types.count(name.substr(0, name.size() - strlen(suffix)))) {
        name = name.substr(0, name.size() - strlen(suffix));
      }
    }
    EXPECT_TRUE(p.types.count(name)) << key;
    if (p.types[name] == "counter") {
      EXPECT_EQ(name.substr(name.size() - 6), "_total") << name;
    } else {
      EXPECT_NE(name.substr(name.size() - 6), "_total") << name;
    }
  }
}

TEST(ExpositionTest, UpstreamMembership) {
  const std::string text = RenderText(Sample());
  EXPECT_NE(text.find("strata_upstream_members{state=\"serving\"} 0\n"), std::string::npos);
  EXPECT_NE(text.find("strata_upstream_members{state=\"leaving\"} 1\n"), std::string::npos);
  const std::string src = "{source=\"dnssrv+_memcache._tcp.mc.ns.svc.cluster.local\"}";
  EXPECT_NE(text.find("strata_upstream_source_members" + src + " 1\n"), std::string::npos);
  EXPECT_NE(text.find("strata_upstream_source_refresh_failures_total" + src + " 2\n"),
            std::string::npos);
  EXPECT_NE(text.find("strata_upstream_source_last_success_timestamp_seconds" + src), std::string::npos);
  EXPECT_NE(text.find("strata_upstream_server_state{server=\"10.0.0.1:11211\",state=\"leaving\"} 1"),
            std::string::npos);
}

TEST(ExpositionTest, AnEmptySnapshotRenders) {
  Parsed p = Parse(RenderText(Snapshot{}));
  EXPECT_EQ(p.samples["memcached_up"], 1);
  EXPECT_EQ(p.samples["strata_ready"], 0);
}

// promtool's linter, when it is installed (Debian's `prometheus`).
TEST(ExpositionTest, PromtoolCheckMetricsIsSilent) {
  if (access("/usr/bin/promtool", X_OK) != 0) GTEST_SKIP() << "promtool not installed";
  char path[] = "/tmp/strata-metrics-XXXXXX";
  int fd = mkstemp(path);
  ASSERT_GE(fd, 0);
  close(fd);
  {
    std::ofstream out(path);
    out << RenderText(Sample());
  }
  std::string cmd = std::string("/usr/bin/promtool check metrics < ") + path + " 2>&1";
  FILE* pipe = popen(cmd.c_str(), "r");
  ASSERT_NE(pipe, nullptr);
  std::string output;
  char buf[512];
  while (fgets(buf, sizeof(buf), pipe) != nullptr) output += buf;
  int rc = pclose(pipe);
  unlink(path);
  EXPECT_EQ(rc, 0) << output;
  EXPECT_EQ(output, "");
}

}  // namespace
}  // namespace strata::metrics
