#include "metrics/exposition.h"

#include <prometheus/client_metric.h>
#include <prometheus/metric_family.h>
#include <prometheus/text_serializer.h>

#include <initializer_list>
#include <limits>
#include <sstream>
#include <utility>
#include <vector>

namespace strata::metrics {
namespace {

using prometheus::ClientMetric;
using prometheus::MetricFamily;
using prometheus::MetricType;
using Labels = std::initializer_list<std::pair<const char*, std::string>>;

class Families {
 public:
  // Starts a family; the samples added next belong to it.
  Families& Family(const char* name, MetricType type, const char* help) {
    families_.push_back(MetricFamily{name, help, type, {}});
    return *this;
  }

  // Adds a counter or gauge sample (the family's type decides which).
  Families& Sample(double value, Labels labels = {}) {
    MetricFamily& f = families_.back();
    ClientMetric m;
    for (const auto& [name, v] : labels) m.label.push_back({name, v});
    if (f.type == MetricType::Counter) {
      m.counter.value = value;
    } else {
      m.gauge.value = value;
    }
    f.metric.push_back(std::move(m));
    return *this;
  }

  Families& HistogramSample(const LatencySeries& s, Labels labels) {
    ClientMetric m;
    for (const auto& [name, v] : labels) m.label.push_back({name, v});
    uint64_t cumulative = 0;
    for (size_t b = 0; b < kLatencyBuckets; ++b) {
      cumulative += s.buckets[b];
      const double bound = b < kLatencyBoundsNs.size()
                               ? static_cast<double>(kLatencyBoundsNs[b]) / 1e9
                               : std::numeric_limits<double>::infinity();
      m.histogram.bucket.push_back({cumulative, bound});
    }
    m.histogram.sample_count = cumulative;
    m.histogram.sample_sum = static_cast<double>(s.sum_ns) / 1e9;
    families_.back().metric.push_back(std::move(m));
    return *this;
  }

  std::vector<MetricFamily>& get() { return families_; }

 private:
  std::vector<MetricFamily> families_;
};

double D(uint64_t v) { return static_cast<double>(v); }

void AddMemcached(const ServerFigures& s, Families& f) {
  f.Family("memcached_up", MetricType::Gauge, "Could the memcached server be reached.").Sample(1);
  f.Family("memcached_uptime_seconds", MetricType::Gauge,
           "Number of seconds since the server started.")
      .Sample(D(s.uptime));
  f.Family("memcached_time_seconds", MetricType::Gauge,
           "current UNIX time according to the server.")
      .Sample(static_cast<double>(s.time));
  f.Family("memcached_version", MetricType::Gauge, "The version of this memcached server.")
      .Sample(1, {{"version", s.version}});
  f.Family("memcached_process_user_cpu_seconds_total", MetricType::Counter,
           "Accumulated user time for this process.")
      .Sample(s.rusage_user);
  f.Family("memcached_process_system_cpu_seconds_total", MetricType::Counter,
           "Accumulated system time for this process.")
      .Sample(s.rusage_system);
  f.Family("memcached_read_bytes_total", MetricType::Counter,
           "Total number of bytes read by this server from network.")
      .Sample(D(s.bytes_read));
  f.Family("memcached_written_bytes_total", MetricType::Counter,
           "Total number of bytes sent by this server to network.")
      .Sample(D(s.bytes_written));
  f.Family("memcached_current_connections", MetricType::Gauge,
           "Current number of open connections.")
      .Sample(D(s.curr_connections));
  f.Family("memcached_max_connections", MetricType::Gauge, "Maximum number of clients allowed.")
      .Sample(D(s.max_connections));
  f.Family("memcached_connections_total", MetricType::Counter,
           "Total number of connections opened since the server started running.")
      .Sample(D(s.total_connections));
  f.Family("memcached_connections_rejected_total", MetricType::Counter,
           "Total number of connections rejected due to hitting the max_connections limit.")
      .Sample(D(s.rejected_connections));
  f.Family("memcached_connections_yielded_total", MetricType::Counter,
           "Total number of times a multi-get paused to let its client read the replies.")
      .Sample(D(s.conn_yields));

  f.Family("memcached_commands_total", MetricType::Counter,
           "Total number of all requests broken down by command (get, set, etc.) and status.");
  const struct {
    const char* command;
    uint64_t hits;
    uint64_t misses;
  } ops[] = {
      {"get", s.get_hits, s.get_misses},    {"delete", s.delete_hits, s.delete_misses},
      {"incr", s.incr_hits, s.incr_misses}, {"decr", s.decr_hits, s.decr_misses},
      {"cas", s.cas_hits, s.cas_misses},    {"touch", s.touch_hits, s.touch_misses},
  };
  for (const auto& op : ops) {
    f.Sample(D(op.hits), {{"command", op.command}, {"status", "hit"}});
    f.Sample(D(op.misses), {{"command", op.command}, {"status", "miss"}});
  }
  f.Sample(D(s.cas_badval), {{"command", "cas"}, {"status", "badval"}});
  f.Sample(D(s.cmd_flush), {{"command", "flush"}, {"status", "hit"}});
  // memcached counts cas commands in cmd_set too; the exporter takes them out.
  const uint64_t cas = s.cas_hits + s.cas_misses + s.cas_badval;
  f.Sample(D(s.cmd_set > cas ? s.cmd_set - cas : 0), {{"command", "set"}, {"status", "hit"}});

  f.Family("memcached_current_items", MetricType::Gauge,
           "Current number of items stored by this instance.")
      .Sample(D(s.curr_items));
  f.Family("memcached_items_total", MetricType::Counter,
           "Total number of items stored during the life of this instance.")
      .Sample(D(s.total_items));
  f.Family("memcached_current_bytes", MetricType::Gauge,
           "Current number of bytes used to store items.")
      .Sample(D(s.bytes));
  f.Family("memcached_limit_bytes", MetricType::Gauge,
           "Number of bytes this server is allowed to use for storage.")
      .Sample(D(s.limit_maxbytes));
  f.Family("memcached_items_evicted_total", MetricType::Counter,
           "Total number of valid items removed from cache to free memory for new items.")
      .Sample(D(s.evictions));
  f.Family("memcached_items_reclaimed_total", MetricType::Counter,
           "Total number of expired items whose memory was taken back.")
      .Sample(D(s.reclaimed));
  f.Family("memcached_item_too_large_total", MetricType::Counter,
           "The number of times an item exceeded the max-item-size when being stored.")
      .Sample(D(s.store_too_large));
  f.Family("memcached_item_no_memory_total", MetricType::Counter,
           "The number of times an item could not be stored due to no more memory.")
      .Sample(D(s.store_no_memory));
  f.Family("memcached_lru_crawler_reclaimed_total", MetricType::Counter,
           "Total items freed by the expiry scan (memcached's LRU crawler).")
      .Sample(D(s.crawler_reclaimed));
  f.Family("memcached_lru_crawler_items_checked_total", MetricType::Counter,
           "Total items examined by the expiry scan (memcached's LRU crawler).")
      .Sample(D(s.crawler_items_checked));
}

void AddTiers(const std::vector<TierFigures>& tiers, Families& f) {
  struct Field {
    const char* name;
    MetricType type;
    const char* help;
    uint64_t TierFigures::*value;
  };
  static constexpr Field kFields[] = {
      {"strata_tier_hits_total", MetricType::Counter,
       "Keys of get, gets, gat and gats found in this tier.", &TierFigures::hits},
      {"strata_tier_misses_total", MetricType::Counter,
       "Keys of get, gets, gat and gats that reached this tier and were not found in it.",
       &TierFigures::misses},
      {"strata_tier_items", MetricType::Gauge, "Items held by this tier.", &TierFigures::items},
      {"strata_tier_bytes", MetricType::Gauge,
       "Bytes this tier charges against its budget (keys, values and per-item overhead).",
       &TierFigures::bytes},
      {"strata_tier_limit_bytes", MetricType::Gauge, "The byte budget of this tier.",
       &TierFigures::limit_bytes},
      {"strata_tier_evictions_total", MetricType::Counter,
       "Live items this tier removed to make room.", &TierFigures::evictions},
      {"strata_tier_evicted_unfetched_total", MetricType::Counter,
       "Evicted items that were never read after being stored.", &TierFigures::evicted_unfetched},
      {"strata_tier_expired_reclaimed_total", MetricType::Counter,
       "Expired items whose space this tier took back.", &TierFigures::expired_reclaimed},
      {"strata_tier_expired_unfetched_total", MetricType::Counter,
       "Expired items that were never read after being stored.", &TierFigures::expired_unfetched},
  };
  for (const Field& field : kFields) {
    f.Family(field.name, field.type, field.help);
    for (const TierFigures& t : tiers) f.Sample(D(t.*field.value), {{"tier", t.name}});
  }
}

void AddLatency(const LatencySnapshot& latency, Families& f) {
  f.Family("strata_request_duration_seconds", MetricType::Histogram,
           "Time from the read that delivered a request to the write of its reply, by "
           "command and by the tier that served it.");
  for (size_t c = 0; c < kCommandLabels; ++c) {
    for (size_t t = 0; t < kTierLabels; ++t) {
      const CommandType command = common::CommandWithLabel(c);
      const auto tier = static_cast<TierLabel>(t);
      const LatencySeries& s = latency.at(command, tier);
      if (s.Count() == 0) continue;
      f.HistogramSample(s, {{"command", std::string(common::CommandLabelName(command))},
                            {"tier", std::string(TierLabelName(tier))}});
    }
  }
}

void AddSsd(const SsdFigures& d, Families& f) {
  if (!d.present) return;
  auto counter = [&f](const char* name, const char* help, uint64_t v) {
    f.Family(name, MetricType::Counter, help).Sample(D(v));
  };
  auto gauge = [&f](const char* name, const char* help, uint64_t v) {
    f.Family(name, MetricType::Gauge, help).Sample(D(v));
  };
  f.Family("strata_ssd_io_mode_info", MetricType::Gauge,
           "How the SSD tier does its I/O (io_uring, or a thread pool when io_uring is "
           "refused), as a label.")
      .Sample(1, {{"mode", d.io_mode}});
  counter("strata_promotions_total", "SSD items read and put back in RAM.", d.promotions);
  counter("strata_demotions_total", "RAM evictions written to the SSD tier.", d.demotions);
  auto& rejected = f.Family("strata_ssd_admissions_rejected_total", MetricType::Counter,
                            "RAM evictions not written to flash, by reason.");
  rejected.Sample(D(d.rejected_cold), {{"reason", "cold"}});
  rejected.Sample(D(d.rejected_budget), {{"reason", "budget"}});
  f.Family("strata_ssd_admission_victim_estimate", MetricType::Gauge,
           "Mean recent reads (sketch estimate, 0..15) of the records region reclaim dropped "
           "lately; admission 'reaccessed' writes an evicted item only if it has 75% of that.")
      .Sample(d.victim_estimate);
  counter("strata_ssd_demotions_dropped_total",
          "Demotions dropped because the writer was a region behind or the item did not fit "
          "a region.",
          d.dropped);
  counter("strata_ssd_written_bytes_total", "Bytes written to the SSD device.",
          d.device_bytes_written);
  counter("strata_ssd_read_bytes_total", "Bytes read from the SSD device.", d.device_bytes_read);
  gauge("strata_ssd_reads_in_flight", "SSD device reads issued and not yet completed.",
        d.reads_in_flight);
  counter("strata_ssd_raw_bytes_total", "Value bytes demoted, before compression.", d.raw_bytes);
  counter("strata_ssd_stored_bytes_total",
          "Value bytes demoted, as stored (compression ratio = raw / stored).", d.stored_bytes);
  gauge("strata_ssd_write_budget_bytes_per_second",
        "The configured flash write budget; 0 means none.", d.write_budget);
  counter("strata_ssd_regions_reclaimed_total", "Log regions reclaimed when the log wrapped.",
          d.regions_reclaimed);
  counter("strata_ssd_records_rewritten_total",
          "Hot records rewritten to the log's head when their region was reclaimed.",
          d.records_rewritten);
  counter("strata_ssd_rewritten_bytes_total",
          "Record bytes rewritten at reclaim (part of the device writes).", d.bytes_rewritten);
  gauge("strata_ssd_index_entries", "Entries in the SSD tier's in-RAM index.", d.index_entries);
  gauge("strata_ssd_index_bytes", "RAM used by the SSD tier's index.", d.index_bytes);
  auto& io_errors = f.Family("strata_ssd_io_errors_total", MetricType::Counter,
                             "SSD reads and writes that failed.");
  io_errors.Sample(D(d.read_errors), {{"op", "read"}});
  io_errors.Sample(D(d.write_errors), {{"op", "write"}});
  counter("strata_ssd_corrupt_records_total",
          "SSD records whose checksum or key did not match on read (served as misses).",
          d.corrupt_records);
  counter("strata_ssd_stale_reads_total",
          "SSD reads discarded because the key changed while they were in flight.",
          d.stale_reads);
  counter("strata_ssd_tombstones_total", "Tombstones written for deleted or overwritten keys.",
          d.tombstones);
}

void AddUpstream(const UpstreamFigures& u, Families& f) {
  if (!u.present) return;
  auto& requests = f.Family("strata_upstream_requests_total", MetricType::Counter,
                            "Requests sent to each upstream pool server, by operation and "
                            "outcome (hit: a value or success; miss: not found, not stored or "
                            "exists; error: the server's error reply; failed: no reply; "
                            "rejected: not sent, the server being down or at its in-flight "
                            "limit). Op probe: the mn that probes a down server or "
                            "re-validates an idle connection.");
  for (const UpstreamServerFigures& s : u.servers) {
    for (size_t op = 0; op < s.requests.size(); ++op) {
      for (size_t o = 0; o < s.requests[op].size(); ++o) {
        requests.Sample(D(s.requests[op][o]),
                        {{"server", s.server}, {"op", u.ops[op]}, {"outcome", u.outcomes[o]}});
      }
    }
  }
  auto per_server = [&](const char* name, MetricType type, const char* help,
                        uint64_t UpstreamServerFigures::*field) {
    f.Family(name, type, help);
    for (const UpstreamServerFigures& s : u.servers) f.Sample(D(s.*field), {{"server", s.server}});
  };
  per_server("strata_upstream_connects_total", MetricType::Counter,
             "Connections opened to each upstream server.", &UpstreamServerFigures::connects);
  per_server("strata_upstream_connect_failures_total", MetricType::Counter,
             "Connections to each upstream server refused or timed out.",
             &UpstreamServerFigures::connect_failures);
  per_server("strata_upstream_resets_total", MetricType::Counter,
             "Connections to each upstream server closed on an error, a timeout or a reply "
             "strata could not read (the requests sent on them failed).",
             &UpstreamServerFigures::resets);
  per_server("strata_upstream_timeouts_total", MetricType::Counter,
             "Connects and replies to each upstream server that took longer than allowed.",
             &UpstreamServerFigures::timeouts);
  per_server("strata_upstream_requests_in_flight", MetricType::Gauge,
             "Requests to each upstream server queued or sent and not yet answered.",
             &UpstreamServerFigures::in_flight);
  per_server("strata_upstream_marked_down_total", MetricType::Counter,
             "Times a worker marked each upstream server down (failed connects or request "
             "timeouts in a row).",
             &UpstreamServerFigures::marked_down);
  auto& state = f.Family("strata_upstream_server_state", MetricType::Gauge,
                         "Each upstream server's state, one-hot: 1 for the state it is in (the "
                         "worst over the workers: down, then probing, then up; leaving for a "
                         "server that left the membership, during its removal grace), 0 for "
                         "the others. While down, probing or leaving its requests fail at "
                         "once.");
  for (const UpstreamServerFigures& s : u.servers) {
    for (size_t st = 0; st < u.states.size(); ++st) {
      state.Sample(s.state == st ? 1 : 0, {{"server", s.server}, {"state", u.states[st]}});
    }
  }
  f.Family("strata_upstream_request_duration_seconds", MetricType::Histogram,
           "Time from sending a request to an upstream server to its reply.");
  for (const UpstreamServerFigures& s : u.servers) {
    f.HistogramSample(s.latency, {{"server", s.server}});
  }
  f.Family("strata_upstream_members", MetricType::Gauge,
           "Servers in the upstream pool's ring, by state: serving, or leaving (gone from "
           "their source, failing fast until upstream.removal_grace ends).");
  f.Sample(D(u.members - u.leaving), {{"state", "serving"}});
  f.Sample(D(u.leaving), {{"state", "leaving"}});
  // One family per figure of the dynamic membership sources, a sample each.
  auto per_source = [&](const char* name, MetricType type, const char* help,
                        double (*value)(const UpstreamSourceFigures&)) {
    if (u.sources.empty()) return;
    f.Family(name, type, help);
    for (const UpstreamSourceFigures& s : u.sources) f.Sample(value(s), {{"source", s.source}});
  };
  per_source("strata_upstream_source_members", MetricType::Gauge,
             "Servers in each dynamic membership source's last good list (file:, dns+, "
             "dnssrv+).",
             [](const UpstreamSourceFigures& s) { return D(s.members); });
  per_source("strata_upstream_source_last_success_timestamp_seconds", MetricType::Gauge,
             "When each dynamic membership source was last read or resolved successfully "
             "(Unix time; 0: never).",
             [](const UpstreamSourceFigures& s) { return s.last_success_unix; });
  per_source("strata_upstream_source_refresh_failures_total", MetricType::Counter,
             "Reads or lookups of each dynamic membership source that failed or gave an "
             "empty list (the last good list was kept).",
             [](const UpstreamSourceFigures& s) { return D(s.failures); });
  f.Family("strata_upstream_fetches_total", MetricType::Counter,
           "Get-family keys both local tiers missed that were fetched from the pool.")
      .Sample(D(u.fetches));
  f.Family("strata_upstream_coalesced_total", MetricType::Counter,
           "Get-family keys that joined a fetch of the same key already in flight.")
      .Sample(D(u.coalesced));
  f.Family("strata_upstream_fills_total", MetricType::Counter,
           "Values fetched from the pool and kept in the local tiers (the near cache).")
      .Sample(D(u.fills));
  f.Family("strata_near_cache_hits_total", MetricType::Counter,
           "Get-family keys served by the local tiers with a pool configured.")
      .Sample(D(u.local_hits));
}

}  // namespace

std::string RenderText(const Snapshot& snapshot) {
  Families f;
  AddMemcached(snapshot.server, f);
  f.Family("strata_ready", MetricType::Gauge,
           "1 when strata is ready to serve (what /readyz reports), 0 otherwise.")
      .Sample(snapshot.ready ? 1 : 0);
  f.Family("strata_workers", MetricType::Gauge, "Worker threads serving clients.")
      .Sample(D(snapshot.server.threads));
  AddTiers(snapshot.tiers, f);
  f.Family("strata_ram_eviction_policy_info", MetricType::Gauge,
           "The RAM tier's eviction policy, as a label.")
      .Sample(1, {{"policy", snapshot.ram.eviction_policy}});
  if (!snapshot.server.network_io_mode.empty()) {
    f.Family("strata_network_io_mode_info", MetricType::Gauge,
             "How sockets are read and written (io_uring batches, or one system call each "
             "where io_uring is refused), as a label.")
        .Sample(1, {{"mode", snapshot.server.network_io_mode}});
  }
  const ServerFigures& s = snapshot.server;
  f.Family("strata_connection_memory_bytes", MetricType::Gauge,
           "Bytes client connections hold (read buffers, data blocks being received, queued "
           "replies and the values they reference, SSD reads they wait for), as reserved "
           "against server.max_connection_memory.")
      .Sample(D(s.connection_memory));
  f.Family("strata_connection_memory_limit_bytes", MetricType::Gauge,
           "server.max_connection_memory: the cap on what connections hold together.")
      .Sample(D(s.connection_memory_limit));
  f.Family("strata_connection_memory_stalls_total", MetricType::Counter,
           "Times a connection stopped reading because connection memory was at its cap.")
      .Sample(D(s.connection_memory_stalls));
  f.Family("strata_connection_memory_closed_total", MetricType::Counter,
           "Connections closed because connection memory was over its cap and they held the "
           "most beyond their share without reading or sending for 500 ms.")
      .Sample(D(s.connection_memory_closed));
  AddSsd(snapshot.ssd, f);
  AddUpstream(snapshot.upstream, f);
  AddLatency(snapshot.latency, f);
  std::ostringstream out;
  prometheus::TextSerializer().Serialize(out, f.get());
  return out.str();
}

}  // namespace strata::metrics
