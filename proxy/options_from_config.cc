#include "proxy/options_from_config.h"

#include <string>

#include "proxy/upstream/membership_watcher.h"

namespace strata::proxy {

std::optional<common::LogLevel> LogLevelFromConfig(const config::Config& cfg) {
  if (!cfg.log.level) return std::nullopt;
  const std::string& level = *cfg.log.level;
  if (level == "error") return common::LogLevel::kError;
  if (level == "warn") return common::LogLevel::kWarn;
  if (level == "debug") return common::LogLevel::kDebug;
  return common::LogLevel::kInfo;
}

tiers::RamTierOptions RamTierOptionsFromConfig(const config::Config& cfg) {
  tiers::RamTierOptions ram;
  if (cfg.tiers.ram.size) ram.size_bytes = *cfg.tiers.ram.size;
  if (cfg.tiers.ram.max_item_size) ram.max_item_size = *cfg.tiers.ram.max_item_size;
  if (cfg.tiers.ram.eviction) {
    ram.eviction =
        *cfg.tiers.ram.eviction == "lru" ? tiers::EvictionKind::kLru : tiers::EvictionKind::kS3Fifo;
  }
  return ram;
}

ServerOptions ServerOptionsFromConfig(const config::Config& cfg) {
  ServerOptions server_options;
  const config::ServerConfig& s = cfg.server;
  if (s.listen) server_options.listen = *s.listen;
  if (s.port) server_options.port = *s.port;
  if (s.unix_socket) server_options.unix_socket = *s.unix_socket;
  if (s.unix_socket_mode) server_options.unix_socket_mode = *s.unix_socket_mode;
  if (s.workers) server_options.workers = *s.workers;
  if (s.max_connections) server_options.max_connections = *s.max_connections;
  if (s.enable_shutdown) server_options.enable_shutdown = *s.enable_shutdown;
  if (s.drain_timeout_ms) server_options.drain_timeout_ms = *s.drain_timeout_ms;
  if (s.max_output_buffer) server_options.max_output_buffer = *s.max_output_buffer;
  if (s.max_connection_memory) server_options.max_connection_memory = *s.max_connection_memory;
  if (s.network_io) {
    server_options.network_io = *s.network_io == "io_uring"   ? NetworkIoMode::kIoUring
                                : *s.network_io == "syscalls" ? NetworkIoMode::kSyscalls
                                                              : NetworkIoMode::kAuto;
  }
  if (server_options.output_high_watermark > server_options.max_output_buffer / 2) {
    server_options.output_high_watermark = server_options.max_output_buffer / 2;
  }
  server_options.measure_latency = MetricsEnabled(cfg);
  return server_options;
}

bool MetricsEnabled(const config::Config& cfg) { return cfg.metrics.enabled.value_or(true); }

metrics::MetricsServerOptions MetricsServerOptionsFromConfig(const config::Config& cfg) {
  metrics::MetricsServerOptions metrics_options;
  if (cfg.metrics.listen) metrics_options.listen = *cfg.metrics.listen;
  return metrics_options;
}

bool SsdEnabled(const config::SsdConfig& ssd) { return ssd.path && !ssd.disabled; }

tiers::FileDeviceOptions FileDeviceOptionsFromConfig(const config::SsdConfig& ssd) {
  tiers::FileDeviceOptions dev_options;
  dev_options.path = *ssd.path;
  dev_options.size = *ssd.size;
  const std::string io = ssd.io.value_or("auto");
  dev_options.mode = io == "io_uring"     ? tiers::IoMode::kIoUring
                     : io == "threadpool" ? tiers::IoMode::kThreadPool
                                          : tiers::IoMode::kAuto;
  return dev_options;
}

tiers::SsdLogOptions SsdLogOptionsFromConfig(const config::SsdConfig& ssd,
                                             uint64_t max_item_size) {
  tiers::SsdLogOptions log_options;
  // Large items set straight to SSD wait in memory while they are written:
  // two of the largest at most (README, "Memory").
  log_options.large_pending_bytes = 2 * max_item_size;
  log_options.large_read_bytes = max_item_size;
  if (ssd.region_size) log_options.region_size = static_cast<uint32_t>(*ssd.region_size);
  log_options.compress = ssd.compression.value_or("lz4") == "lz4";
  return log_options;
}

tiers::AdmissionOptions AdmissionOptionsFromConfig(const config::SsdConfig& ssd) {
  tiers::AdmissionOptions admission;
  const std::string adm = ssd.admission.value_or("reaccessed");
  admission.kind = adm == "all"          ? tiers::AdmissionKind::kAll
                   : adm == "reaccessed" ? tiers::AdmissionKind::kReaccessed
                                         : tiers::AdmissionKind::kSketch;
  admission.write_budget = ssd.write_budget.value_or(0);
  if (ssd.promote_threshold) admission.promote_threshold = *ssd.promote_threshold;
  if (ssd.large_item_percent) admission.large_item_percent = *ssd.large_item_percent;
  return admission;
}

common::Result<upstream::PoolOptions> PoolOptionsFromConfig(const config::Config& cfg) {
  const config::UpstreamConfig& u = cfg.upstream;
  upstream::PoolOptions pool;
  if (u.servers) pool.servers = *u.servers;
  if (u.sources) pool.sources = *u.sources;
  // A server file must be good at startup (later, a bad one keeps the last
  // list): its errors are configuration errors.
  for (size_t i = 0; i < pool.sources.size(); ++i) {
    const common::MemberSource& src = pool.sources[i];
    if (src.kind != common::MemberSource::Kind::kFile) continue;
    common::Result<std::vector<common::ServerSpec>> read = upstream::ReadServerFile(src.target);
    if (!read.ok()) {
      return common::Status::InvalidArgument("upstream.servers[" + std::to_string(i) +
                                             "]: " + src.target + ": " + read.status().message());
    }
  }
  if (u.dns_resolver) pool.dns_resolver = *u.dns_resolver;
  if (u.dns_refresh_ms) pool.dns_refresh_ms = *u.dns_refresh_ms;
  if (u.file_refresh_ms) pool.file_refresh_ms = *u.file_refresh_ms;
  if (u.removal_grace_ms) pool.removal_grace_ms = *u.removal_grace_ms;
  if (u.distribution) {
    common::Result<upstream::Distribution> d = upstream::ParseDistribution(*u.distribution);
    if (!d.ok())
      return common::Status::InvalidArgument("upstream.distribution: " + d.status().message());
    pool.distribution = *d;
  }
  if (u.near_cache_ttl_ms) pool.near_cache_ttl_ms = *u.near_cache_ttl_ms;
  if (u.forward_flush) pool.forward_flush = *u.forward_flush;
  if (u.connections_per_server) pool.connections_per_server = *u.connections_per_server;
  if (u.connect_timeout_ms) pool.connect_timeout_ms = static_cast<uint32_t>(*u.connect_timeout_ms);
  if (u.request_timeout_ms) pool.request_timeout_ms = static_cast<uint32_t>(*u.request_timeout_ms);
  if (u.down_after_timeouts) pool.down_after_timeouts = *u.down_after_timeouts;
  if (u.down_after_connect_failures) {
    pool.down_after_connect_failures = *u.down_after_connect_failures;
  }
  if (u.probe_interval_ms) pool.probe_interval_ms = static_cast<uint32_t>(*u.probe_interval_ms);
  if (u.probe_interval_max_ms) {
    pool.probe_interval_max_ms = static_cast<uint32_t>(*u.probe_interval_max_ms);
  }
  if (u.max_in_flight) pool.max_in_flight = *u.max_in_flight;
  if (u.revalidate_idle_ms) pool.revalidate_idle_ms = *u.revalidate_idle_ms;
  if (pool.probe_interval_ms > pool.probe_interval_max_ms) {
    return common::Status::InvalidArgument(
        "upstream.probe_interval_max: must be at least upstream.probe_interval (" +
        std::to_string(pool.probe_interval_ms) + "ms), got " +
        std::to_string(pool.probe_interval_max_ms) + "ms");
  }
  if (!pool.servers.empty()) {
    common::Result<upstream::Placement> placement =
        upstream::Placement::Build(pool.distribution, pool.servers, "upstream.servers");
    if (!placement.ok()) return placement.status();
  }
  return pool;
}

}  // namespace strata::proxy
