// Exposition: turns a Snapshot into Prometheus' text format (version
// 0.0.4), with memcached_exporter's names where the exporter has one, so
// existing memcached dashboards and alerts work unchanged, and strata's own
// figures under strata_. The output passes `promtool check metrics`.
//
// memcached_exporter names (pkg/exporter/exporter.go), from the Snapshot:
//   memcached_up                                 gauge    1 (strata answers its own scrape)
//   memcached_uptime_seconds                     gauge    server.uptime (*)
//   memcached_time_seconds                       gauge    server.time
//   memcached_version{version}                   gauge    1
//   memcached_process_user_cpu_seconds_total     counter  server.rusage_user
//   memcached_process_system_cpu_seconds_total   counter  server.rusage_system
//   memcached_read_bytes_total                   counter  server.bytes_read
//   memcached_written_bytes_total                counter  server.bytes_written
//   memcached_current_connections                gauge    server.curr_connections
//   memcached_max_connections                    gauge    server.max_connections
//   memcached_connections_total                  counter  server.total_connections
//   memcached_connections_rejected_total         counter  server.rejected_connections
//   memcached_connections_yielded_total          counter  server.conn_yields
//   memcached_commands_total{command,status}     counter  as the exporter: get|delete|incr|
//       decr|cas|touch x hit|miss, cas/badval, flush/hit = cmd_flush,
//       set/hit = cmd_set - cas_hits - cas_misses - cas_badval
//   memcached_current_items                      gauge    server.curr_items
//   memcached_items_total                        counter  server.total_items
//   memcached_current_bytes                      gauge    server.bytes
//   memcached_limit_bytes                        gauge    server.limit_maxbytes
//   memcached_items_evicted_total                counter  server.evictions
//   memcached_items_reclaimed_total              counter  server.reclaimed
//   memcached_item_too_large_total               counter  server.store_too_large
//   memcached_item_no_memory_total               counter  server.store_no_memory
//   memcached_lru_crawler_reclaimed_total        counter  server.crawler_reclaimed
//   memcached_lru_crawler_items_checked_total    counter  server.crawler_items_checked
// (*) the exporter types uptime as a counter; promtool requires counters to
// end in _total, so strata keeps the name and exports it as a gauge.
// The exporter's slab, LRU-segment and proxy metrics are not exported:
// strata has no slab classes or segmented LRU, and they would be constant.
//
// strata's own:
//   strata_ready                                 gauge    1 when /readyz answers 200
//   strata_workers                               gauge    worker threads
//   strata_tier_hits_total{tier}                 counter  get-family keys found in the tier
//   strata_tier_misses_total{tier}               counter  ... that reached it and were not
//   strata_tier_items{tier}                      gauge
//   strata_tier_bytes{tier}                      gauge    bytes charged to the tier's budget
//   strata_tier_limit_bytes{tier}                gauge    the budget
//   strata_tier_evictions_total{tier}            counter
//   strata_tier_evicted_unfetched_total{tier}    counter
//   strata_tier_expired_reclaimed_total{tier}    counter
//   strata_tier_expired_unfetched_total{tier}    counter
//   strata_ram_eviction_policy_info{policy}      gauge    1
//   strata_connection_memory_bytes               gauge    server.connection_memory
//   strata_connection_memory_limit_bytes         gauge    server.connection_memory_limit
//   strata_connection_memory_stalls_total        counter  server.connection_memory_stalls
//   strata_connection_memory_closed_total        counter  server.connection_memory_closed
//   strata_request_duration_seconds{command,tier} histogram (latency.h)
//   strata_network_io_mode_info{mode}            gauge    1 (when the server names one)
// With an SSD tier (SsdFigures::present), the tier families above also
// carry tier="ssd", and these are added:
//   strata_ssd_io_mode_info{mode}                gauge    1
//   strata_promotions_total                      counter  SSD items put back in RAM
//   strata_demotions_total                       counter  RAM evictions written to flash
//   strata_ssd_admissions_rejected_total{reason} counter  cold | budget
//   strata_ssd_admission_victim_estimate         gauge
//   strata_ssd_demotions_dropped_total           counter
//   strata_ssd_written_bytes_total               counter  device bytes
//   strata_ssd_read_bytes_total                  counter  device bytes
//   strata_ssd_reads_in_flight                   gauge
//   strata_ssd_raw_bytes_total                   counter  values demoted, before compression
//   strata_ssd_stored_bytes_total                counter  values demoted, as stored
//   strata_ssd_write_budget_bytes_per_second     gauge    0 = none
//   strata_ssd_regions_reclaimed_total           counter
//   strata_ssd_records_rewritten_total           counter
//   strata_ssd_rewritten_bytes_total             counter
//   strata_ssd_index_entries                     gauge
//   strata_ssd_index_bytes                       gauge
//   strata_ssd_io_errors_total{op}               counter  read | write
//   strata_ssd_corrupt_records_total             counter
//   strata_ssd_stale_reads_total                 counter
//   strata_ssd_tombstones_total                  counter
//
// Thread safety: pure functions.
#pragma once

#include <string>

#include "metrics/snapshot.h"

namespace strata::metrics {

// The exposition text of `snapshot`. Latency series with no observation
// are left out; every other family is always present.
std::string RenderText(const Snapshot& snapshot);

}  // namespace strata::metrics
