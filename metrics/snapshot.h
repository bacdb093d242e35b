// Snapshot: every figure strata exports, as plain numbers, filled by the
// server at scrape time (proxy sums its per-worker counters and reads the
// tiers' statistics into it) and turned into Prometheus families by
// RenderText() (exposition.h). Keeping the figures in a plain struct lets
// metrics/ name and type every metric without knowing proxy/ or tiers/, and
// lets tests render any state without a server.
//
// Field names follow memcached's `stats` names where one exists, so the
// mapping to memcached_exporter's metrics (documented in exposition.h) reads
// like the exporter's own.
//
// Thread safety: a plain value.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "metrics/latency.h"

namespace strata::metrics {

// memcached's general `stats`, summed over workers.
struct ServerFigures {
  std::string version;       // memcached_version{version}
  uint64_t uptime = 0;       // seconds since start
  int64_t time = 0;          // unix seconds, the server's clock
  double rusage_user = 0;    // seconds of user CPU
  double rusage_system = 0;  // seconds of system CPU
  uint64_t max_connections = 0;
  uint64_t curr_connections = 0;
  uint64_t total_connections = 0;
  uint64_t rejected_connections = 0;
  uint64_t conn_yields = 0;
  uint64_t bytes_read = 0;
  uint64_t bytes_written = 0;
  uint64_t threads = 0;
  std::string network_io_mode;  // "io_uring" | "syscalls"; strata's own
  // The cap on what connections hold (strata's own): bytes reserved for
  // them now, the cap, connections stopped at it, connections closed by it.
  uint64_t connection_memory = 0;
  uint64_t connection_memory_limit = 0;
  uint64_t connection_memory_stalls = 0;
  uint64_t connection_memory_closed = 0;

  uint64_t cmd_set = 0;  // every store, cas included (memcached's rule)
  uint64_t cmd_flush = 0;
  uint64_t get_hits = 0;
  uint64_t get_misses = 0;
  uint64_t delete_hits = 0;
  uint64_t delete_misses = 0;
  uint64_t incr_hits = 0;
  uint64_t incr_misses = 0;
  uint64_t decr_hits = 0;
  uint64_t decr_misses = 0;
  uint64_t cas_hits = 0;
  uint64_t cas_misses = 0;
  uint64_t cas_badval = 0;
  uint64_t touch_hits = 0;
  uint64_t touch_misses = 0;
  uint64_t store_too_large = 0;
  uint64_t store_no_memory = 0;

  // The cache as a whole (memcached's meaning: items and bytes in memory).
  uint64_t curr_items = 0;
  uint64_t total_items = 0;
  uint64_t bytes = 0;
  uint64_t limit_maxbytes = 0;
  uint64_t evictions = 0;
  uint64_t reclaimed = 0;
  uint64_t crawler_reclaimed = 0;
  uint64_t crawler_items_checked = 0;
};

// One tier's figures, exported with a tier="<name>" label.
struct TierFigures {
  std::string name;  // "ram" or "ssd"
  // Lookups that reached this tier (get, gets, gat, gats keys) and were
  // found in it, or not.
  uint64_t hits = 0;
  uint64_t misses = 0;
  uint64_t items = 0;
  uint64_t bytes = 0;        // bytes charged against the tier's budget
  uint64_t limit_bytes = 0;  // the budget
  uint64_t evictions = 0;
  uint64_t evicted_unfetched = 0;
  uint64_t expired_reclaimed = 0;  // expired items whose space was taken back
  uint64_t expired_unfetched = 0;
};

// RAM-tier facts that are not per-tier counters.
struct RamFigures {
  std::string eviction_policy;  // "s3fifo" | "lru"
};

// The SSD tier's own figures (present only when it is configured). Its
// hits, misses, items, bytes and reclaims also appear as a TierFigures
// named "ssd".
struct SsdFigures {
  bool present = false;
  std::string io_mode;               // "io_uring" | "threadpool"
  uint64_t promotions = 0;           // SSD reads put back in RAM
  uint64_t demotions = 0;            // RAM evictions written to the log
  uint64_t rejected_cold = 0;        // evictions the admission policy called cold
  uint64_t rejected_budget = 0;      // evictions over the write budget
  double victim_estimate = 0;        // mean sketch estimate of the records reclaim dropped lately
  uint64_t dropped = 0;              // demotions dropped (writer behind, too large)
  uint64_t device_bytes_written = 0;
  uint64_t device_bytes_read = 0;
  uint64_t reads_in_flight = 0;
  uint64_t raw_bytes = 0;            // value bytes demoted, before compression
  uint64_t stored_bytes = 0;         // value bytes as written
  uint64_t write_budget = 0;         // bytes per second, 0 = none
  uint64_t regions_reclaimed = 0;
  uint64_t records_rewritten = 0;    // hot records moved to the log's head at reclaim
  uint64_t bytes_rewritten = 0;
  uint64_t index_entries = 0;
  uint64_t index_bytes = 0;
  uint64_t read_errors = 0;
  uint64_t write_errors = 0;
  uint64_t corrupt_records = 0;
  uint64_t stale_reads = 0;
  uint64_t tombstones = 0;
};

// One upstream pool server's figures, summed over workers, exported with a
// server="host:port" label.
struct UpstreamServerFigures {
  std::string server;
  // requests[op][outcome]: op in kUpstreamOps, outcome in kUpstreamOutcomes.
  std::vector<std::vector<uint64_t>> requests;
  uint64_t connects = 0;
  uint64_t connect_failures = 0;
  uint64_t resets = 0;
  uint64_t timeouts = 0;
  uint64_t in_flight = 0;
  uint64_t marked_down = 0;  // times a worker marked it down
  // Its state as the workers see it: "leaving" when it left the membership
  // (its removal grace), else the worst of them: "down" when one has it
  // down, else "probing" when one is probing it, else "up".
  size_t state = 0;  // index in UpstreamFigures::states
  LatencySeries latency;
};

// One dynamic membership source (file:, dns+, dnssrv+), exported with a
// source="<entry as written>" label.
struct UpstreamSourceFigures {
  std::string source;
  uint64_t members = 0;          // in its last good list
  double last_success_unix = 0;  // 0: never
  uint64_t failures = 0;         // reads or lookups that failed or gave nothing
};

// The upstream pool (present only when one is configured).
struct UpstreamFigures {
  bool present = false;
  std::vector<std::string> ops;       // request op label values, in index order
  std::vector<std::string> outcomes;  // outcome label values, in index order
  std::vector<std::string> states;    // server state label values, in index order
  std::vector<UpstreamServerFigures> servers;
  uint64_t members = 0;  // in the ring, leaving ones included
  uint64_t leaving = 0;
  std::vector<UpstreamSourceFigures> sources;
  uint64_t fetches = 0;    // mg sent for keys both local tiers missed
  uint64_t coalesced = 0;  // ... keys that joined a fetch in flight instead
  uint64_t fills = 0;      // fetched values kept locally
  uint64_t local_hits = 0; // get-family keys the local tiers served
};

struct Snapshot {
  bool ready = false;  // what /readyz answers; set by MetricsServer
  ServerFigures server;
  std::vector<TierFigures> tiers;
  RamFigures ram;
  SsdFigures ssd;
  UpstreamFigures upstream;
  LatencySnapshot latency;
};

}  // namespace strata::metrics
