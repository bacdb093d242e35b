// Options from the configuration: maps a validated config::Config (strings
// and optional values, as config/ parses them) onto the options structs and
// enums of the modules strata is built from. A field left unset keeps the
// default of the module's options struct. config/ may not depend on tiers/
// or proxy/, so the mapping lives here, beside main().
//
// Thread safety: pure functions of their arguments.
#pragma once

#include <optional>

#include "common/log.h"
#include "config/config.h"
#include "metrics/metrics_server.h"
#include "proxy/shared/server_context.h"
#include "proxy/upstream/pool_options.h"
#include "tiers/tiered_cache.h"

namespace strata::proxy {

// log.level, if set.
std::optional<common::LogLevel> LogLevelFromConfig(const config::Config& cfg);

// tiers.ram.
tiers::RamTierOptions RamTierOptionsFromConfig(const config::Config& cfg);

// server.*, with the output high watermark capped at half of
// max_output_buffer, and latency measured only when metrics are enabled.
ServerOptions ServerOptionsFromConfig(const config::Config& cfg);

// metrics.enabled (default true) and metrics.listen.
bool MetricsEnabled(const config::Config& cfg);
metrics::MetricsServerOptions MetricsServerOptionsFromConfig(const config::Config& cfg);

// The SSD tier is on when tiers.ssd.path is set and --no-ssd was not given.
bool SsdEnabled(const config::SsdConfig& ssd);
// tiers.ssd.path, size and io. Requires SsdEnabled(ssd) (and so a size,
// which validation guarantees with a path).
tiers::FileDeviceOptions FileDeviceOptionsFromConfig(const config::SsdConfig& ssd);
// tiers.ssd.region_size and compression; large items queued for the SSD
// (SsdLog::AppendAsync) may hold 2 x `max_item_size` (tiers.ram's).
tiers::SsdLogOptions SsdLogOptionsFromConfig(const config::SsdConfig& ssd,
                                             uint64_t max_item_size);
// tiers.ssd.admission, write_budget and promote_threshold.
tiers::AdmissionOptions AdmissionOptionsFromConfig(const config::SsdConfig& ssd);

// upstream.*: the pool's servers and membership sources, distribution,
// near_cache_ttl, forward_flush, connections_per_server, the timeouts and
// the membership settings. Also builds the static servers' placement once,
// so that the two rules config/ cannot check (ketama servers hashing by the
// same name, jump addresses equal in natural order) fail here, and reads
// each `file:` source once (a file that cannot be read, does not parse or
// lists nothing), as an InvalidArgument "upstream.servers[i]: ..." that
// main() reports like a configuration error. No entry:
// PoolOptions::enabled() is false.
common::Result<upstream::PoolOptions> PoolOptionsFromConfig(const config::Config& cfg);

}  // namespace strata::proxy
