#include "proxy/stats/server_metrics.h"

#include <algorithm>

#include <sys/resource.h>

#include <string>

namespace strata::proxy {
namespace {

double Seconds(const struct timeval& tv) {
  return static_cast<double>(tv.tv_sec) + static_cast<double>(tv.tv_usec) / 1e6;
}

// The upstream pool's figures: the per-server counters of every worker
// summed, and the near cache's counters.
void FillUpstream(const ServerContext& ctx, metrics::UpstreamFigures* u) {
  const UpstreamContext& up = *ctx.upstream;
  u->present = true;
  for (size_t op = 0; op < upstream::kRequestOps; ++op) {
    u->ops.emplace_back(upstream::RequestOpName(static_cast<upstream::RequestOp>(op)));
  }
  for (size_t o = 0; o < upstream::kRequestOutcomes; ++o) {
    u->outcomes.emplace_back(
        upstream::RequestOutcomeName(static_cast<upstream::RequestOutcome>(o)));
  }
  for (size_t st = 0; st < upstream::kServerStates; ++st) {
    u->states.emplace_back(upstream::ServerStateName(static_cast<upstream::ServerState>(st)));
  }
  const std::shared_ptr<const upstream::Membership> membership = up.membership->current();
  for (const upstream::Member& m : membership->members) {
    metrics::UpstreamServerFigures s;
    s.state = static_cast<size_t>(WorstServerState(m));
    s.server = m.resolved.label;
    s.requests.assign(upstream::kRequestOps, std::vector<uint64_t>(upstream::kRequestOutcomes));
    u->members += 1;
    u->leaving += m.leaving;
    for (size_t w = 0; w < m.counters->workers; ++w) {
      const upstream::ServerCounters& c = m.counters->per_worker[w];
      auto get = [](const std::atomic<uint64_t>& v) { return v.load(std::memory_order_relaxed); };
      for (size_t op = 0; op < upstream::kRequestOps; ++op) {
        for (size_t o = 0; o < upstream::kRequestOutcomes; ++o) {
          s.requests[op][o] += get(c.requests[op][o]);
        }
      }
      s.connects += get(c.connects);
      s.connect_failures += get(c.connect_failures);
      s.resets += get(c.resets);
      s.timeouts += get(c.timeouts);
      s.in_flight += get(c.in_flight);
      s.marked_down += get(c.marked_down);
      c.AddLatencyTo(&s.latency);
    }
    u->servers.push_back(std::move(s));
  }
  for (const upstream::SourceFigures& f : up.membership->figures()) {
    u->sources.push_back(
        metrics::UpstreamSourceFigures{f.source, f.members, f.last_success_unix, f.failures});
  }
  u->fetches = ctx.Sum(Counter::kUpstreamFetches);
  u->coalesced = ctx.Sum(Counter::kUpstreamCoalesced);
  u->fills = ctx.Sum(Counter::kUpstreamFills);
  u->local_hits = ctx.Sum(Counter::kRamHits) + ctx.Sum(Counter::kSsdHits);
}

}  // namespace

void FillProcessSnapshot(const ServerContext& ctx, metrics::Snapshot* out) {
  metrics::ServerFigures& s = out->server;
  const int64_t now = ctx.clock->NowSeconds();
  s.version = kVersion;
  s.time = now;
  s.uptime = static_cast<uint64_t>(now > ctx.started_unix ? now - ctx.started_unix : 0);
  struct rusage usage;
  if (getrusage(RUSAGE_SELF, &usage) == 0) {
    s.rusage_user = Seconds(usage.ru_utime);
    s.rusage_system = Seconds(usage.ru_stime);
  }
  s.max_connections = ctx.options.max_connections;
}

void FillSnapshot(const ServerContext& ctx, metrics::Snapshot* out) {
  FillProcessSnapshot(ctx, out);
  metrics::ServerFigures& s = out->server;
  auto sum = [&](Counter c) { return ctx.Sum(c); };
  s.curr_connections = ctx.curr_connections.load(std::memory_order_relaxed);
  s.total_connections = sum(Counter::kTotalConnections);
  s.rejected_connections = sum(Counter::kRejectedConnections);
  s.conn_yields = sum(Counter::kConnYields);
  s.bytes_read = sum(Counter::kBytesRead);
  s.bytes_written = sum(Counter::kBytesWritten);
  s.threads = ctx.worker_stats.size();
  s.network_io_mode = ctx.network_io_mode;
  if (ctx.conn_memory) {
    s.connection_memory = ctx.conn_memory->charged();
    s.connection_memory_limit = ctx.conn_memory->limit();
  }
  s.connection_memory_stalls = sum(Counter::kConnMemoryStalls);
  s.connection_memory_closed = sum(Counter::kConnMemoryClosed);
  s.cmd_set = sum(Counter::kCmdSet);
  s.cmd_flush = sum(Counter::kCmdFlush);
  s.get_hits = sum(Counter::kGetHits);
  s.get_misses = sum(Counter::kGetMisses);
  s.delete_hits = sum(Counter::kDeleteHits);
  s.delete_misses = sum(Counter::kDeleteMisses);
  s.incr_hits = sum(Counter::kIncrHits);
  s.incr_misses = sum(Counter::kIncrMisses);
  s.decr_hits = sum(Counter::kDecrHits);
  s.decr_misses = sum(Counter::kDecrMisses);
  s.cas_hits = sum(Counter::kCasHits);
  s.cas_misses = sum(Counter::kCasMisses);
  s.cas_badval = sum(Counter::kCasBadval);
  s.touch_hits = sum(Counter::kTouchHits);
  s.touch_misses = sum(Counter::kTouchMisses);
  s.store_too_large = sum(Counter::kStoreTooLarge);
  s.store_no_memory = sum(Counter::kStoreNoMemory);

  const tiers::RamTierStats ram = ctx.tier->Stats();
  s.curr_items = ram.curr_items;
  s.total_items = ram.total_items;
  s.bytes = ram.bytes;
  s.limit_maxbytes = ram.limit_bytes;
  s.evictions = ram.evictions;
  s.reclaimed = ram.reclaimed;
  s.crawler_reclaimed = ram.crawler_reclaimed;
  s.crawler_items_checked = ram.crawler_items_checked;

  metrics::TierFigures t;
  t.name = "ram";
  t.hits = sum(Counter::kRamHits);
  t.misses = sum(Counter::kRamMisses);
  t.items = ram.curr_items;
  t.bytes = ram.bytes;
  t.limit_bytes = ram.limit_bytes;
  t.evictions = ram.evictions;
  t.evicted_unfetched = ram.evicted_unfetched;
  t.expired_reclaimed = ram.reclaimed;
  t.expired_unfetched = ram.expired_unfetched;
  out->tiers.push_back(std::move(t));
  out->ram.eviction_policy = std::string(tiers::EvictionKindName(ctx.tier->eviction()));

  if (ctx.cache != nullptr && ctx.cache->ssd() != nullptr) {
    const tiers::SsdLog& log = *ctx.cache->ssd();
    const tiers::SsdLogStats d = log.Stats();
    const tiers::TieredCache::Counters c = ctx.cache->counters();
    metrics::TierFigures ssd;
    ssd.name = "ssd";
    ssd.hits = sum(Counter::kSsdHits);
    ssd.misses = sum(Counter::kSsdMisses);
    ssd.items = d.index_entries;
    ssd.bytes = std::min<uint64_t>(d.record_bytes, log.capacity_bytes());
    ssd.limit_bytes = log.capacity_bytes();
    ssd.evictions = d.entries_reclaimed;
    out->tiers.push_back(std::move(ssd));
    metrics::SsdFigures& f = out->ssd;
    f.present = true;
    f.io_mode = std::string(log.device_mode());
    f.promotions = c.promotions;
    f.demotions = d.demoted_items;
    f.rejected_cold = c.rejected_cold;
    f.rejected_budget = c.rejected_budget;
    f.victim_estimate = c.victim_estimate;
    f.dropped = d.dropped_backlog + d.dropped_too_large;
    f.device_bytes_written = d.device_bytes_written;
    f.device_bytes_read = d.device_bytes_read;
    f.reads_in_flight = d.reads_in_flight;
    f.raw_bytes = d.demoted_value_bytes;
    f.stored_bytes = d.stored_value_bytes;
    f.write_budget = ctx.cache->write_budget();
    f.regions_reclaimed = d.regions_reclaimed;
    f.records_rewritten = d.records_rewritten;
    f.bytes_rewritten = d.bytes_rewritten;
    f.index_entries = d.index_entries;
    f.index_bytes = d.index_bytes;
    f.read_errors = d.read_errors;
    f.write_errors = d.write_errors;
    f.corrupt_records = d.corrupt_records;
    f.stale_reads = d.stale_reads;
    f.tombstones = d.tombstones;
  }

  if (ctx.upstream != nullptr) FillUpstream(ctx, &out->upstream);

  for (const WorkerStats* w : ctx.worker_stats) w->latency().AddTo(&out->latency);
}

}  // namespace strata::proxy
