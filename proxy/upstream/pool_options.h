// What the upstream pool is configured to be: its servers, how keys are
// placed on them, and the near-cache rules (issue 23). A plain value built
// by proxy/options_from_config.cc from `upstream.*`; the defaults here are
// the defaults of the configuration (config/strata.yaml writes them out).
//
// Thread safety: a plain value; copy it freely.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "common/member_source.h"
#include "common/server_spec.h"
#include "proxy/upstream/placement.h"

namespace strata::upstream {

inline constexpr uint64_t kDefaultNearCacheTtlMs = 60'000;
inline constexpr uint32_t kMaxConnectionsPerServer = 64;

struct PoolOptions {
  // The static servers, in configuration order.
  std::vector<common::ServerSpec> servers;
  // Every upstream.servers entry as a membership source (static ones too),
  // in configuration order (membership_watcher.h); empty means no pool: a
  // local miss is a miss, as without this module.
  std::vector<common::MemberSource> sources;
  // The DNS server of dns+ and dnssrv+ ("ip:port"); empty: resolv.conf.
  std::string dns_resolver;
  uint64_t dns_refresh_ms = 30'000;   // dns+ and dnssrv+ re-resolved
  uint64_t file_refresh_ms = 5'000;   // file: re-read
  // A member that left its source stays in the ring this long, down (its
  // keys fail fast rather than move), then leaves it.
  uint64_t removal_grace_ms = 30'000;
  Distribution distribution = Distribution::kKetama;
  // How long a copy fetched from the pool may be served locally (and never
  // past its upstream expiry); another pod's write reaches this pod within
  // this bound. 0: nothing fetched from the pool is kept locally (pure
  // routing).
  uint64_t near_cache_ttl_ms = kDefaultNearCacheTtlMs;
  // flush_all also flushes the pool (otherwise only the local tiers).
  bool forward_flush = false;
  // Connections each worker keeps to each server, 1..64.
  uint32_t connections_per_server = 1;
  // A connect that takes longer fails its requests; a reply that stays
  // silent longer (no byte of it arrives) resets its connection and fails
  // every request sent on it (replies come in order).
  uint32_t connect_timeout_ms = 100;
  uint32_t request_timeout_ms = 200;
  // A server is marked down (in each worker on its own) after this many
  // request timeouts in a row, or this many failed connects (refused,
  // unreachable or timed out) in a row; a reply starts both counts over.
  // While down, its requests fail at once (a get is a miss, a write
  // SERVER_ERROR) and its keys do not move to another server.
  uint32_t down_after_timeouts = 3;
  uint32_t down_after_connect_failures = 1;
  // A down server is probed (connect, `mn`) after probe_interval, then
  // after twice that after each failed probe, at most probe_interval_max,
  // each delay drawn from [d/2, d] (jitter); a probe that answers marks it
  // up. probe_interval <= probe_interval_max.
  uint32_t probe_interval_ms = 100;
  uint32_t probe_interval_max_ms = 10'000;
  // Requests a worker may have queued or sent to one server; more fail at
  // once (as if the server were down).
  uint32_t max_in_flight = 1024;
  // A connection idle (nothing written or read) for longer is re-validated
  // with an `mn` before it carries requests again; 0: never.
  uint64_t revalidate_idle_ms = 10'000;

  bool enabled() const { return !sources.empty(); }
};

}  // namespace strata::upstream
