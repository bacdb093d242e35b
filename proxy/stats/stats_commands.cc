#include "proxy/stats/stats_commands.h"

#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <charconv>
#include <cstdio>
#include <cstring>
#include <map>
#include <string>
#include <vector>

namespace strata::proxy {
namespace {

// memcached's cap on a `stats cachedump` reply (items.c's item_cachedump).
constexpr size_t kCachedumpMaxBytes = 2 * 1024 * 1024;

void Stat(OutputQueue& out, std::string_view name, std::string_view value) {
  std::string line;
  line.reserve(8 + name.size() + value.size());
  line.append("STAT ").append(name).append(" ").append(value).append("\r\n");
  out.Append(line);
}

void Stat(OutputQueue& out, std::string_view name, uint64_t value) {
  char buf[24];
  const char* end = std::to_chars(buf, buf + sizeof(buf), value).ptr;
  Stat(out, name, std::string_view(buf, static_cast<size_t>(end - buf)));
}

std::string Rusage(const struct timeval& tv) {
  char buf[48];
  std::snprintf(buf, sizeof(buf), "%ld.%06ld", static_cast<long>(tv.tv_sec),
                static_cast<long>(tv.tv_usec));
  return buf;
}

}  // namespace

StatsCommands::StatsCommands(ServerContext& ctx, tiers::TieredCache& cache)
    : ctx_(ctx), cache_(cache) {}

void StatsCommands::Run(const Command& cmd, OutputQueue& out) {
  if (cmd.nargs == 0) {
    StatsGeneral(out);
  } else {
    std::string_view sub = cmd.args[0];
    if (sub == "reset") {
      for (WorkerStats* s : ctx_.worker_stats) s->Reset();
      ctx_.prefix_stats.Clear();
      out.AppendLine("RESET");
      return;
    }
    if (sub == "detail") {
      if (cmd.nargs >= 2 && (cmd.args[1] == "on" || cmd.args[1] == "off")) {
        ctx_.prefix_stats.SetEnabled(cmd.args[1] == "on");
        out.AppendLine("OK");
      } else if (cmd.nargs >= 2 && cmd.args[1] == "dump") {
        out.Append(ctx_.prefix_stats.Dump());
      } else {
        out.AppendLine("CLIENT_ERROR usage: stats detail on|off|dump");
      }
      return;
    }
    if (sub == "cachedump") {
      StatsCachedump(cmd, out);
      return;
    }
    if (sub == "sizes_enable" || sub == "sizes_disable") {
      // memcached answers these without an END line.
      StatsSizesSwitch(sub == "sizes_enable", out);
      return;
    }
    if (sub == "settings") {
      StatsSettings(out);
    } else if (sub == "items") {
      StatsItems(out);
    } else if (sub == "slabs") {
      StatsSlabs(out);
    } else if (sub == "conns") {
      StatsConns(out);
    } else if (sub == "sizes") {
      StatsSizes(out);
    } else if (sub == "extstore") {
      // What memcached built with extstore answers when none is configured:
      // its page and bucket figures have no counterpart in strata's log.
    } else {
      out.AppendLine("ERROR");
      return;
    }
  }
  out.Append("END\r\n");
}

void StatsCommands::StatsCachedump(const Command& cmd, OutputQueue& out) {
  // items.c's item_cachedump: up to `limit` items (0: all) of one slab
  // class, at most 2 MB. strata's one class is 1.
  std::string text;
  if (cmd.number == 1) {
    tiers::RamTier& tier = cache_.ram();
    const uint64_t limit = cmd.delta;
    uint64_t cursor = 0;
    uint64_t shown = 0;
    std::vector<tiers::RamTier::ListedItem> batch;
    bool more = true;
    while (more && (limit == 0 || shown < limit)) {
      batch.clear();
      more = tier.ListItems(&cursor, kListBatch, &batch);
      for (const tiers::RamTier::ListedItem& listed : batch) {
        if (limit != 0 && shown >= limit) break;
        const tiers::Item& item = *listed.item;
        char line[kMaxKeyLength + 64];
        int len = std::snprintf(line, sizeof(line), "ITEM %.*s [%u b; %u s]\r\n",
                                static_cast<int>(item.key_len), item.Key().data(),
                                static_cast<unsigned>(item.value_len),
                                static_cast<unsigned>(listed.exptime));
        if (text.size() + static_cast<size_t>(len) + 6 > kCachedumpMaxBytes) {
          more = false;
          break;
        }
        text.append(line, static_cast<size_t>(len));
        ++shown;
      }
    }
  }
  text.append("END\r\n");
  out.Append(text);
}

void StatsCommands::StatsSizesSwitch(bool enable, OutputQueue& out) {
  if (enable) {
    if (!ctx_.sizes_enabled.load()) {
      // Items stored from now on: memcached takes a fresh CAS unique as
      // the threshold; the largest one in RAM serves the same purpose.
      uint64_t max_cas = 0;
      uint64_t cursor = 0;
      std::vector<tiers::RamTier::ListedItem> batch;
      bool more = true;
      while (more) {
        batch.clear();
        more = cache_.ram().ListItems(&cursor, kListBatch, &batch);
        for (const tiers::RamTier::ListedItem& listed : batch) {
          max_cas = std::max(max_cas, listed.item->Cas());
        }
      }
      ctx_.sizes_cas_min.store(max_cas);
      ctx_.sizes_enabled.store(true);
    }
    Stat(out, "sizes_status", "enabled");
  } else {
    ctx_.sizes_enabled.store(false);
    Stat(out, "sizes_status", "disabled");
  }
}

void StatsCommands::StatsSizes(OutputQueue& out) {
  if (!ctx_.sizes_enabled.load()) {
    Stat(out, "sizes_status", "disabled");
    return;
  }
  // items.c's histogram: items by their memcached size, in 32-byte steps
  // rounded up, below item_size_max; here computed from the RAM items
  // stored since sizes_enable.
  const uint64_t cas_min = ctx_.sizes_cas_min.load();
  const uint64_t buckets = cache_.ram().max_item_size() / 32 + 1;
  std::map<uint64_t, uint64_t> histogram;
  uint64_t cursor = 0;
  std::vector<tiers::RamTier::ListedItem> batch;
  bool more = true;
  while (more) {
    batch.clear();
    more = cache_.ram().ListItems(&cursor, kListBatch, &batch);
    for (const tiers::RamTier::ListedItem& listed : batch) {
      if (listed.item->Cas() <= cas_min) continue;
      const uint64_t bucket = (MemcachedItemSize(*listed.item) + 31) / 32;
      if (bucket < buckets) ++histogram[bucket];
    }
  }
  for (const auto& [bucket, count] : histogram) Stat(out, std::to_string(bucket * 32), count);
}

void StatsCommands::StatsGeneral(OutputQueue& out) {
  const tiers::RamTierStats ram = ctx_.tier->Stats();
  int64_t now = ctx_.clock->NowSeconds();
  struct rusage usage;
  getrusage(RUSAGE_SELF, &usage);
  auto sum = [&](Counter c) { return ctx_.Sum(c); };
  Stat(out, "pid", static_cast<uint64_t>(getpid()));
  Stat(out, "uptime", static_cast<uint64_t>(now - ctx_.started_unix));
  Stat(out, "time", static_cast<uint64_t>(now));
  Stat(out, "version", kVersion);
  Stat(out, "pointer_size", 64);
  Stat(out, "rusage_user", Rusage(usage.ru_utime));
  Stat(out, "rusage_system", Rusage(usage.ru_stime));
  Stat(out, "max_connections", ctx_.options.max_connections);
  Stat(out, "curr_connections", ctx_.curr_connections.load(std::memory_order_relaxed));
  Stat(out, "total_connections", sum(Counter::kTotalConnections));
  Stat(out, "rejected_connections", sum(Counter::kRejectedConnections));
  Stat(out, "connection_structures", ctx_.curr_connections.load(std::memory_order_relaxed));
  Stat(out, "cmd_get", sum(Counter::kCmdGet));
  Stat(out, "cmd_set", sum(Counter::kCmdSet));
  Stat(out, "cmd_flush", sum(Counter::kCmdFlush));
  Stat(out, "cmd_touch", sum(Counter::kCmdTouch));
  Stat(out, "cmd_meta", sum(Counter::kCmdMeta));
  Stat(out, "get_hits", sum(Counter::kGetHits));
  Stat(out, "get_misses", sum(Counter::kGetMisses));
  Stat(out, "get_expired", sum(Counter::kGetExpired));
  Stat(out, "get_flushed", sum(Counter::kGetFlushed));
  Stat(out, "delete_misses", sum(Counter::kDeleteMisses));
  Stat(out, "delete_hits", sum(Counter::kDeleteHits));
  Stat(out, "incr_misses", sum(Counter::kIncrMisses));
  Stat(out, "incr_hits", sum(Counter::kIncrHits));
  Stat(out, "decr_misses", sum(Counter::kDecrMisses));
  Stat(out, "decr_hits", sum(Counter::kDecrHits));
  Stat(out, "cas_misses", sum(Counter::kCasMisses));
  Stat(out, "cas_hits", sum(Counter::kCasHits));
  Stat(out, "cas_badval", sum(Counter::kCasBadval));
  Stat(out, "touch_hits", sum(Counter::kTouchHits));
  Stat(out, "touch_misses", sum(Counter::kTouchMisses));
  Stat(out, "store_too_large", sum(Counter::kStoreTooLarge));
  Stat(out, "store_no_memory", sum(Counter::kStoreNoMemory));
  Stat(out, "auth_cmds", 0);
  Stat(out, "auth_errors", 0);
  Stat(out, "bytes_read", sum(Counter::kBytesRead));
  Stat(out, "bytes_written", sum(Counter::kBytesWritten));
  Stat(out, "limit_maxbytes", ram.limit_bytes);
  Stat(out, "accepting_conns", 1);
  Stat(out, "listen_disabled_num", 0);
  Stat(out, "time_in_listen_disabled_us", 0);
  Stat(out, "threads", ctx_.worker_stats.size());
  Stat(out, "conn_yields", sum(Counter::kConnYields));
  Stat(out, "hash_power_level", 0);
  Stat(out, "hash_bytes", ram.hash_bytes);
  Stat(out, "hash_is_expanding", 0);
  Stat(out, "malloc_fails", 0);
  Stat(out, "bytes", ram.bytes);
  Stat(out, "curr_items", ram.curr_items);
  Stat(out, "total_items", ram.total_items);
  Stat(out, "expired_unfetched", ram.expired_unfetched);
  Stat(out, "evicted_unfetched", ram.evicted_unfetched);
  Stat(out, "evicted_active", 0);
  Stat(out, "evictions", ram.evictions);
  Stat(out, "reclaimed", ram.reclaimed);
  Stat(out, "crawler_reclaimed", ram.crawler_reclaimed);
  Stat(out, "crawler_items_checked", ram.crawler_items_checked);
  // memcached's segmented-LRU counters; S3-FIFO has no such moves.
  Stat(out, "lrutail_reflocked", 0);
  Stat(out, "moves_to_cold", 0);
  Stat(out, "moves_to_warm", 0);
  Stat(out, "moves_within_lru", 0);
  Stat(out, "direct_reclaims", 0);
  Stat(out, "lru_crawler_running", 0);
  Stat(out, "lru_crawler_starts", 0);
  Stat(out, "lru_maintainer_juggles", 0);
  Stat(out, "ram_eviction_policy", tiers::EvictionKindName(ctx_.tier->eviction()));
  Stat(out, "network_io_mode", ctx_.network_io_mode);
  // The cap on what connections hold (server.max_connection_memory).
  Stat(out, "connection_memory", ctx_.conn_memory ? ctx_.conn_memory->charged() : 0);
  Stat(out, "connection_memory_limit", ctx_.conn_memory ? ctx_.conn_memory->limit() : 0);
  Stat(out, "connection_memory_stalls", sum(Counter::kConnMemoryStalls));
  Stat(out, "connection_memory_closed", sum(Counter::kConnMemoryClosed));
  if (tiers::SsdLog* ssd = cache_.ssd()) {
    const tiers::SsdLogStats d = ssd->Stats();
    const tiers::TieredCache::Counters c = cache_.counters();
    // memcached's extstore names where one means the same thing...
    Stat(out, "get_extstore", d.hits);
    Stat(out, "badcrc_from_extstore", d.corrupt_records);
    Stat(out, "miss_from_extstore", d.reads - d.hits);
    Stat(out, "recache_from_extstore", c.promotions);
    Stat(out, "extstore_objects_written", d.demoted_items);
    Stat(out, "extstore_bytes_written", d.device_bytes_written);
    Stat(out, "extstore_bytes_read", d.device_bytes_read);
    // ...and strata's own.
    Stat(out, "ssd_io_mode", ssd->device_mode());
    Stat(out, "ssd_regions", d.regions);
    Stat(out, "ssd_index_entries", d.index_entries);
    Stat(out, "ssd_index_bytes", d.index_bytes);
    Stat(out, "ssd_live_bytes", d.live_bytes);
    Stat(out, "ssd_live_capacity", d.capacity_bytes);
    Stat(out, "ssd_reads", d.reads);
    Stat(out, "ssd_hits", d.hits);
    Stat(out, "ssd_promotions", c.promotions);
    Stat(out, "ssd_large_sets", c.large_to_ssd);
    Stat(out, "ssd_large_evictions", c.large_evictions_queued);
    Stat(out, "ssd_large_item_bytes", cache_.large_item_bytes());
    Stat(out, "ssd_read_aheads", ctx_.Sum(Counter::kSsdReadAheads));
    Stat(out, "ssd_admitted", c.admitted);
    Stat(out, "ssd_admissions_rejected", c.rejected_cold + c.rejected_budget);
    Stat(out, "ssd_admissions_rejected_cold", c.rejected_cold);
    Stat(out, "ssd_admissions_rejected_budget", c.rejected_budget);
    char victim[32];
    std::snprintf(victim, sizeof(victim), "%.2f", c.victim_estimate);
    Stat(out, "ssd_admission_victim_estimate", victim);
    Stat(out, "ssd_demoted_items", d.demoted_items);
    Stat(out, "ssd_demoted_bytes", d.demoted_value_bytes);
    Stat(out, "ssd_stored_bytes", d.stored_value_bytes);
    Stat(out, "ssd_record_bytes", d.record_bytes);
    Stat(out, "ssd_demoted_record_bytes", d.demoted_record_bytes);
    Stat(out, "ssd_device_bytes_written", d.device_bytes_written);
    Stat(out, "ssd_device_bytes_read", d.device_bytes_read);
    Stat(out, "ssd_reads_in_flight", d.reads_in_flight);
    char ratio[32];
    std::snprintf(ratio, sizeof(ratio), "%.3f",
                  d.stored_value_bytes == 0 ? 1.0
                                            : static_cast<double>(d.demoted_value_bytes) /
                                                  static_cast<double>(d.stored_value_bytes));
    Stat(out, "ssd_compression_ratio", ratio);
    Stat(out, "ssd_tombstones", d.tombstones);
    Stat(out, "ssd_regions_reclaimed", d.regions_reclaimed);
    Stat(out, "ssd_entries_reclaimed", d.entries_reclaimed);
    Stat(out, "ssd_records_rewritten", d.records_rewritten);
    Stat(out, "ssd_bytes_rewritten", d.bytes_rewritten);
    Stat(out, "ssd_dropped_too_large", d.dropped_too_large);
    Stat(out, "ssd_dropped_backlog", d.dropped_backlog);
    Stat(out, "ssd_write_errors", d.write_errors);
    Stat(out, "ssd_read_errors", d.read_errors);
    Stat(out, "ssd_corrupt_records", d.corrupt_records);
    Stat(out, "ssd_stale_reads", d.stale_reads);
    Stat(out, "ssd_commits", d.commits);
    Stat(out, "ssd_large_items", d.large_items);
    Stat(out, "ssd_large_bytes", d.large_bytes);
    Stat(out, "ssd_large_demoted", d.large_demoted);
    Stat(out, "ssd_large_abandoned", d.large_abandoned);
    Stat(out, "ssd_large_dropped", d.large_dropped);
    Stat(out, "ssd_large_piece_reads", d.large_piece_reads);
    Stat(out, "ssd_large_pending_items", d.large_pending_items);
    Stat(out, "ssd_large_pending_bytes", d.large_pending_bytes);
    Stat(out, "ssd_large_refused", d.large_refused);
    Stat(out, "ssd_large_reads_waited", d.large_reads_waited);
  }
  if (ctx_.upstream != nullptr) {
    // The upstream pool (strata's own; per-server figures are in
    // /metrics).
    const auto membership = ctx_.upstream->membership->current();
    size_t down = 0;  // not up in some worker, or leaving
    size_t leaving = 0;
    for (const upstream::Member& m : membership->members) {
      down += WorstServerState(m) != upstream::ServerState::kUp;
      leaving += m.leaving;
    }
    Stat(out, "upstream_servers", membership->members.size());
    Stat(out, "upstream_servers_down", down);
    Stat(out, "upstream_servers_leaving", leaving);
    uint64_t refresh_failures = 0;
    for (const upstream::SourceFigures& f : ctx_.upstream->membership->figures()) {
      refresh_failures += f.failures;
    }
    Stat(out, "upstream_membership_generation", membership->generation);
    Stat(out, "upstream_membership_refresh_failures", refresh_failures);
    Stat(out, "upstream_fetches", ctx_.Sum(Counter::kUpstreamFetches));
    Stat(out, "upstream_coalesced", ctx_.Sum(Counter::kUpstreamCoalesced));
    Stat(out, "upstream_prefetches", ctx_.Sum(Counter::kUpstreamPrefetches));
    Stat(out, "upstream_hits", ctx_.Sum(Counter::kUpstreamHits));
    Stat(out, "upstream_misses", ctx_.Sum(Counter::kUpstreamMisses));
    Stat(out, "upstream_failures", ctx_.Sum(Counter::kUpstreamFailures));
    Stat(out, "upstream_fills", ctx_.Sum(Counter::kUpstreamFills));
    Stat(out, "upstream_dropped", ctx_.Sum(Counter::kUpstreamDropped));
    Stat(out, "upstream_not_kept", ctx_.Sum(Counter::kUpstreamNotKept));
    Stat(out, "upstream_wins_returned", ctx_.Sum(Counter::kUpstreamWinsReturned));
  }
}

void StatsCommands::StatsSettings(OutputQueue& out) {
  const ServerOptions& o = ctx_.options;
  char umask[8];
  std::snprintf(umask, sizeof(umask), "%o", o.unix_socket_mode);
  Stat(out, "maxbytes", ctx_.tier->limit());
  Stat(out, "maxconns", o.max_connections);
  Stat(out, "tcpport", ctx_.bound_port);
  Stat(out, "udpport", 0);
  Stat(out, "inter", o.listen);
  Stat(out, "verbosity", ctx_.verbosity.load(std::memory_order_relaxed));
  Stat(out, "oldest", 0);
  Stat(out, "evictions", "on");
  Stat(out, "domain_socket", o.unix_socket.empty() ? std::string("NULL") : o.unix_socket);
  Stat(out, "umask", umask);
  Stat(out, "shutdown_command", o.enable_shutdown ? "yes" : "no");
  Stat(out, "num_threads", ctx_.worker_stats.size());
  Stat(out, "stat_key_prefix", ":");
  Stat(out, "detail_enabled", ctx_.prefix_stats.enabled() ? "yes" : "no");
  Stat(out, "cas_enabled", "yes");
  Stat(out, "tcp_backlog", static_cast<uint64_t>(o.backlog));
  Stat(out, "binding_protocol", "ascii");
  Stat(out, "auth_enabled_sasl", "no");
  Stat(out, "auth_enabled_ascii", "no");
  Stat(out, "item_size_max", ctx_.tier->max_item_size());
  Stat(out, "maxconns_fast", "yes");
  Stat(out, "hashpower_init", 0);
  Stat(out, "flush_enabled", "yes");
  Stat(out, "dump_enabled", "yes");
  // memcached's LRU crawler is the RAM tier's expiry reaper here; the
  // crawler's and LRU's tunables are memcached's defaults (the commands that
  // set them are accepted and change nothing). There is no LRU maintainer.
  Stat(out, "lru_crawler", ctx_.lru_crawler.load() ? "yes" : "no");
  Stat(out, "lru_crawler_sleep", 100);
  Stat(out, "lru_crawler_tocrawl", 0);
  Stat(out, "lru_maintainer_thread", "no");
  Stat(out, "hot_lru_pct", 20);
  Stat(out, "warm_lru_pct", 40);
  Stat(out, "hot_max_factor", "0.20");
  Stat(out, "warm_max_factor", "2.00");
  Stat(out, "track_sizes", ctx_.sizes_enabled.load() ? "yes" : "no");
  Stat(out, "idle_timeout", 0);
  Stat(out, "eviction_policy", tiers::EvictionKindName(ctx_.tier->eviction()));
  Stat(out, "max_output_buffer", o.max_output_buffer);
  Stat(out, "max_connection_memory", o.max_connection_memory);
}

void StatsCommands::StatsItems(OutputQueue& out) {
  // strata has no slab classes; all items are reported under class 1, and
  // only when there are items, as memcached lists only populated classes.
  const tiers::RamTierStats ram = ctx_.tier->Stats();
  if (ram.curr_items == 0) return;
  Stat(out, "items:1:number", ram.curr_items);
  // memcached's segmented LRU (hot/warm/cold/temp) does not exist here.
  for (const char* seg : {"hot", "warm", "cold"}) {
    Stat(out, std::string("items:1:number_") + seg, 0);
  }
  Stat(out, "items:1:age_hot", 0);
  Stat(out, "items:1:age_warm", 0);
  Stat(out, "items:1:age", 0);
  Stat(out, "items:1:mem_requested", ram.bytes);
  Stat(out, "items:1:evicted", ram.evictions);
  Stat(out, "items:1:evicted_nonzero", 0);
  Stat(out, "items:1:evicted_time", 0);
  Stat(out, "items:1:outofmemory", ctx_.Sum(Counter::kStoreNoMemory));
  Stat(out, "items:1:tailrepairs", 0);
  Stat(out, "items:1:reclaimed", ram.reclaimed);
  Stat(out, "items:1:expired_unfetched", ram.expired_unfetched);
  Stat(out, "items:1:evicted_unfetched", ram.evicted_unfetched);
  Stat(out, "items:1:evicted_active", 0);
  Stat(out, "items:1:crawler_reclaimed", ram.crawler_reclaimed);
  Stat(out, "items:1:crawler_items_checked", ram.crawler_items_checked);
  Stat(out, "items:1:lrutail_reflocked", 0);
  Stat(out, "items:1:moves_to_cold", 0);
  Stat(out, "items:1:moves_to_warm", 0);
  Stat(out, "items:1:moves_within_lru", 0);
  Stat(out, "items:1:direct_reclaims", 0);
  for (const char* seg : {"hot", "warm", "cold", "temp"}) {
    Stat(out, std::string("items:1:hits_to_") + seg, 0);
  }
}

void StatsCommands::StatsSlabs(OutputQueue& out) {
  const tiers::RamTierStats ram = ctx_.tier->Stats();
  if (ram.curr_items > 0) {
    // Class 1 holds every item, up to the largest one allowed.
    Stat(out, "1:chunk_size", ctx_.tier->max_item_size());
    Stat(out, "1:chunks_per_page", 1);
    Stat(out, "1:total_pages", ram.curr_items);
    Stat(out, "1:total_chunks", ram.curr_items);
    Stat(out, "1:used_chunks", ram.curr_items);
    Stat(out, "1:free_chunks", 0);
    Stat(out, "1:free_chunks_end", 0);
    Stat(out, "1:get_hits", ctx_.Sum(Counter::kGetHits));
    Stat(out, "1:cmd_set", ctx_.Sum(Counter::kCmdSet));
    Stat(out, "1:delete_hits", ctx_.Sum(Counter::kDeleteHits));
    Stat(out, "1:incr_hits", ctx_.Sum(Counter::kIncrHits));
    Stat(out, "1:decr_hits", ctx_.Sum(Counter::kDecrHits));
    Stat(out, "1:cas_hits", ctx_.Sum(Counter::kCasHits));
    Stat(out, "1:cas_badval", ctx_.Sum(Counter::kCasBadval));
    Stat(out, "1:touch_hits", ctx_.Sum(Counter::kTouchHits));
  }
  Stat(out, "active_slabs", ram.curr_items > 0 ? 1 : 0);
  Stat(out, "total_malloced", ram.bytes);
}

void StatsCommands::StatsConns(OutputQueue& out) {
  int64_t now = ctx_.clock->NowSeconds();
  ctx_.conns.ForEach([&](int fd, const ConnInfo& info) {
    std::string prefix = std::to_string(fd) + ":";
    ConnState state = info.state.load(std::memory_order_relaxed);
    Stat(out, prefix + "addr", info.addr);
    if (state != ConnState::kListening) Stat(out, prefix + "listen_addr", info.listen_addr);
    Stat(out, prefix + "state", ConnStateName(state));
    int64_t last = info.last_cmd_unix.load(std::memory_order_relaxed);
    Stat(out, prefix + "secs_since_last_cmd", static_cast<uint64_t>(last ? now - last : 0));
  });
}

}  // namespace strata::proxy
