// What the upstream pool is configured to be: its servers, how keys are
// placed on them, and the near-cache rules (issue 23). A plain value built
// by proxy/options_from_config.cc from `upstream.*`; the defaults here are
// the defaults of the configuration (config/strata.yaml writes them out).
//
// Thread safety: a plain value; copy it freely.
#pragma once

#include <cstdint>
#include <vector>

#include "common/server_spec.h"
#include "proxy/upstream/placement.h"

namespace strata::upstream {

inline constexpr uint64_t kDefaultNearCacheTtlMs = 60'000;
inline constexpr uint32_t kMaxConnectionsPerServer = 64;

struct PoolOptions {
  // The pool, in configuration order; empty means no pool: a local miss is
  // a miss, as without this module.
  std::vector<common::ServerSpec> servers;
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

  bool enabled() const { return !servers.empty(); }
};

}  // namespace strata::upstream
