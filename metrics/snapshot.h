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
  std::string name;  // "ram"; issue 3 adds "ssd"
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

// Extension point for issue 3 (SSD tier). When it lands, add a struct
// SsdFigures here and render it in exposition.cc as:
//   strata_tier_*{tier="ssd"}            through TierFigures (hits, misses,
//                                        items, bytes, limit, evictions)
//   strata_promotions_total, strata_demotions_total
//   strata_ssd_admissions_rejected_total{reason}
//   strata_ssd_read_bytes_total, strata_ssd_written_bytes_total
//   strata_ssd_write_budget_bytes_per_second (gauge: the configured budget)
//   strata_ssd_regions_reclaimed_total, strata_ssd_records_rewritten_total
//   strata_ssd_stored_bytes_total, strata_ssd_raw_bytes_total (compression
//                                        ratio = raw / stored)
//   strata_ssd_index_entries, strata_ssd_index_bytes
//   strata_ssd_io_errors_total{op}, strata_ssd_corrupt_records_total
//   strata_ssd_io_mode_info{mode="io_uring"|"threadpool"}
//   strata_ssd_reads_in_flight
// plus memcached_exporter's extstore names where they mean the same thing
// (memcached_extstore_bytes_written_total, _bytes_read_total,
// _objects_read_total, _objects_written_total, _bytes_used, _bytes_limit).
struct Snapshot {
  bool ready = false;  // what /readyz answers; set by MetricsServer
  ServerFigures server;
  std::vector<TierFigures> tiers;
  RamFigures ram;
  LatencySnapshot latency;
};

}  // namespace strata::metrics
