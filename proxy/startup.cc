#include "proxy/startup.h"

#include <malloc.h>
#include <netdb.h>
#include <signal.h>

#include <algorithm>
#include <cstdint>
#include <optional>
#include <utility>
#include <vector>

#include "common/log.h"
#include "common/units.h"
#include "proxy/upstream/membership_watcher.h"
#include "proxy/upstream/placement.h"
#include "proxy/options_from_config.h"
#include "proxy/stats/server_metrics.h"

namespace strata::proxy {

using common::Log;
using common::LogLevel;

void TuneProcess() {
  signal(SIGPIPE, SIG_IGN);
  // Items above 1 KiB live in malloc's heap (smaller ones in ItemSlabs,
  // tiers/item/item_slabs.h). Large items (up to tens of MiB) must not get
  // a fresh mmap each (every new page faults while the value is read into
  // it, and munmap follows on eviction): keep them in the heap, and keep
  // freed memory for the next item instead of trimming it; the RAM tier's
  // budget bounds what the heap holds.
  mallopt(M_MMAP_THRESHOLD, 64 << 20);
  mallopt(M_TRIM_THRESHOLD, 256 << 20);
  // One arena: an item is often freed by another thread than the one that
  // allocated it (eviction, replies, SSD completions), and with an arena per
  // thread the space it frees is reusable only by its own arena, so each
  // arena grows its own slack (test_memory.py's peak RSS with and without:
  // bench/README.md); small allocations still go through the per-thread
  // tcache without the arena's lock.
  mallopt(M_ARENA_MAX, 1);
}

// ---------------------------------------------------------------- metrics

bool MetricsEndpoint::Start(const config::Config& cfg) {
  if (!MetricsEnabled(cfg)) return true;
  options_ = MetricsServerOptionsFromConfig(cfg);
  // Until the server exists a scrape sees no figures; until the workers
  // listen, only the process figures.
  auto started = metrics::MetricsServer::Start(options_, [this](metrics::Snapshot* snapshot) {
    const ServerContext* ctx = ctx_.load(std::memory_order_acquire);
    if (ctx == nullptr) return;
    if (serving_.load(std::memory_order_acquire)) {
      FillSnapshot(*ctx, snapshot);
    } else {
      FillProcessSnapshot(*ctx, snapshot);
    }
  });
  if (!started.ok()) {
    Log(LogLevel::kError, "cannot start: %s (metrics.listen, --metrics-listen)",
        started.status().message().c_str());
    return false;
  }
  server_ = std::move(started).value();
  return true;
}

void MetricsEndpoint::Watch(const ServerContext& ctx) {
  if (server_ != nullptr) ctx_.store(&ctx, std::memory_order_release);
}

void MetricsEndpoint::MarkServing() {
  serving_.store(true, std::memory_order_release);
  if (server_ == nullptr) return;
  server_->SetReady(true);
  std::string host;
  uint16_t port = 0;
  metrics::ParseListenAddress(options_.listen, &host, &port);
  Log(LogLevel::kInfo, "metrics on http://%s:%u/metrics (and /healthz, /readyz)", host.c_str(),
      server_->port());
}

// ---------------------------------------------------------------- SSD tier

bool SsdTier::Open(const config::SsdConfig& cfg, uint64_t max_item_size,
                   const common::Clock& clock) {
  if (!SsdEnabled(cfg)) return true;
  path_ = *cfg.path;
  demote_on_shutdown_ = cfg.demote_on_shutdown.value_or(true);
  const tiers::FileDeviceOptions dev_options = FileDeviceOptionsFromConfig(cfg);
  std::string fallback;
  uint64_t reserved = 0;
  auto opened = tiers::OpenFileDevice(dev_options, &fallback, &reserved);
  if (!opened.ok()) {
    Log(LogLevel::kError, "cannot start: tiers.ssd.path: %s", opened.status().message().c_str());
    return false;
  }
  device_ = std::move(opened).value();
  if (reserved > 0) {
    Log(LogLevel::kInfo, "%s: allocated %.1f MiB the file did not have (it was short or sparse)",
        dev_options.path.c_str(), static_cast<double>(reserved) / (1 << 20));
  }
  if (!fallback.empty()) {
    Log(LogLevel::kWarn,
        "io_uring cannot be used (%s): the SSD tier does its I/O on a thread pool instead",
        fallback.c_str());
  }
  log_ = std::make_unique<tiers::SsdLog>(SsdLogOptionsFromConfig(cfg, max_item_size), *device_,
                                         clock);
  common::Status recovered = log_->Recover();
  if (!recovered.ok()) {
    Log(LogLevel::kError, "cannot start: tiers.ssd: %s", recovered.message().c_str());
    return false;
  }
  const tiers::SsdRecoveryStats& rs = log_->recovery();
  Log(LogLevel::kInfo,
      "SSD tier %s (%s, %s, %u regions): %llu items recovered in %.2f s; damage: %llu "
      "records, %llu region headers, %llu regions lost, %llu invalidations taken from "
      "mirrors, %llu refusals of older records; %llu torn records at the log's end",
      cfg.path->c_str(), common::FormatSize(*cfg.size).c_str(),
      std::string(device_->mode()).c_str(), log_->region_count(),
      static_cast<unsigned long long>(rs.items), rs.seconds,
      static_cast<unsigned long long>(rs.damaged_records),
      static_cast<unsigned long long>(rs.damaged_headers),
      static_cast<unsigned long long>(rs.lost_regions),
      static_cast<unsigned long long>(rs.mirrored_invalidations),
      static_cast<unsigned long long>(rs.refusals),
      static_cast<unsigned long long>(rs.torn_records));
  admission_ = AdmissionOptionsFromConfig(cfg);
  return true;
}

std::unique_ptr<tiers::WarmUp> SsdTier::StartWarmUp(tiers::TieredCache& cache) {
  if (log_ == nullptr) return nullptr;
  std::string why;
  const std::string sketch_path = tiers::SketchPath(path_);
  if (tiers::LoadSketch(cache.sketch(), sketch_path, &why)) {
    Log(LogLevel::kInfo, "warm restart: frequency sketch loaded from %s", sketch_path.c_str());
  } else if (!why.empty()) {
    Log(LogLevel::kWarn, "%s: %s; the frequency sketch starts empty", sketch_path.c_str(),
        why.c_str());
  }
  why.clear();
  std::vector<std::string> hot = tiers::LoadHotKeys(tiers::HotKeysPath(path_), &why);
  if (!why.empty()) {
    Log(LogLevel::kWarn, "%s: %s; no warm restart", tiers::HotKeysPath(path_).c_str(), why.c_str());
  }
  if (hot.empty()) return nullptr;
  Log(LogLevel::kInfo, "warm restart: promoting up to %zu keys from the SSD tier", hot.size());
  return std::make_unique<tiers::WarmUp>(cache, *device_, std::move(hot));
}

void SsdTier::RestoreCas(tiers::RamTier& ram) {
  if (log_ == nullptr) return;
  std::string why;
  const std::string path = tiers::CasPath(path_);
  std::optional<uint64_t> saved = tiers::LoadCasHighWater(path, &why);
  if (!why.empty()) Log(LogLevel::kWarn, "%s: %s", path.c_str(), why.c_str());
  const uint64_t on_device = log_->max_recovered_cas();
  if (saved) {
    ram.EnsureCasAbove(std::max(*saved, on_device));
    return;
  }
  // No mark: the last process did not stop cleanly (or the file is new).
  // A log that holds nothing had nothing to outlive the crash.
  if (on_device == 0 && log_->recovery().regions == 0) return;
  ram.EnsureCasAbove(on_device + tiers::kCrashCasMargin);
  Log(LogLevel::kInfo,
      "no CAS high-water mark from the last stop: CAS uniques start %llu above the "
      "largest on the SSD tier (%llu)",
      static_cast<unsigned long long>(tiers::kCrashCasMargin),
      static_cast<unsigned long long>(on_device));
}

void SsdTier::SaveForWarmRestart(tiers::TieredCache& cache, const common::Clock& clock) {
  if (log_ == nullptr) return;
  common::Status cas_saved =
      tiers::SaveCasHighWater(cache.ram().HighestCasIssued(), tiers::CasPath(path_));
  if (!cas_saved.ok()) {
    Log(LogLevel::kWarn, "cannot save the CAS high-water mark: %s", cas_saved.message().c_str());
  }
  if (!demote_on_shutdown_) return;
  // What RAM holds goes to SSD (items whose SSD record is still valid are
  // not written again), and its keys, hottest first, to the list the next
  // start promotes back.
  int64_t t0 = clock.MonotonicNanos();
  size_t demoted = cache.DemoteAll();
  std::vector<std::string> hot = cache.HotKeys();
  common::Status saved = tiers::SaveHotKeys(hot, tiers::HotKeysPath(path_));
  if (!saved.ok()) {
    Log(LogLevel::kWarn, "cannot save the hot-key list: %s", saved.message().c_str());
  }
  common::Status sketch_saved = tiers::SaveSketch(*cache.sketch(), tiers::SketchPath(path_));
  if (!sketch_saved.ok()) {
    Log(LogLevel::kWarn, "cannot save the frequency sketch: %s", sketch_saved.message().c_str());
  }
  Log(LogLevel::kInfo, "demoted %zu RAM items to the SSD tier and saved %zu hot keys in %.2f s",
      demoted, saved.ok() ? hot.size() : size_t{0},
      static_cast<double>(clock.MonotonicNanos() - t0) / 1e9);
}

// ---------------------------------------------------------------- serving

std::unique_ptr<UpstreamContext> BuildUpstream(const upstream::PoolOptions& options) {
  auto ctx = std::make_unique<UpstreamContext>();
  upstream::MembershipOptions m;
  m.sources = options.sources;
  m.distribution = options.distribution;
  m.dns_resolver = options.dns_resolver;
  m.dns_refresh_ms = options.dns_refresh_ms;
  m.file_refresh_ms = options.file_refresh_ms;
  m.removal_grace_ms = options.removal_grace_ms;
  auto watcher = upstream::MembershipWatcher::Create(std::move(m));
  if (!watcher.ok()) {
    common::Log(common::LogLevel::kError, "cannot start: %s",
                watcher.status().message().c_str());
    return nullptr;
  }
  ctx->membership = std::move(watcher).value();
  // Local copies carry whole-second expiries: a bound under a second is
  // rounded up.
  ctx->near_cache_ttl_s = static_cast<uint32_t>((options.near_cache_ttl_ms + 999) / 1000);
  ctx->forward_flush = options.forward_flush;
  ctx->connections_per_server = options.connections_per_server;
  ctx->timeouts.connect_ms = options.connect_timeout_ms;
  ctx->timeouts.request_ms = options.request_timeout_ms;
  ctx->timeouts.revalidate_idle_ms = static_cast<uint32_t>(options.revalidate_idle_ms);
  ctx->health.down_after_timeouts = options.down_after_timeouts;
  ctx->health.down_after_connect_failures = options.down_after_connect_failures;
  ctx->health.probe_min_ms = options.probe_interval_ms;
  ctx->health.probe_max_ms = options.probe_interval_max_ms;
  ctx->health.max_in_flight = options.max_in_flight;
  common::Log(common::LogLevel::kInfo,
              "upstream pool: %zu sources%s (%s), near cache %s, flush_all %s",
              options.sources.size(), ctx->membership->dynamic() ? ", watched" : "",
              std::string(upstream::DistributionName(options.distribution)).c_str(),
              ctx->near_cache_ttl_s == 0
                  ? "off (pure routing)"
                  : ("up to " + std::to_string(ctx->near_cache_ttl_s) + " s").c_str(),
              options.forward_flush ? "forwarded" : "local only");
  return ctx;
}

void LogListening(const ServerOptions& options, const Server& server,
                  const tiers::RamTierOptions& ram) {
  Log(LogLevel::kInfo,
      "strata %s listening on %s:%u%s%s with %zu workers; RAM tier %s (%s), max item %s", kVersion,
      options.listen.c_str(), server.port(),
      options.unix_socket.empty() ? "" : " and unix:", options.unix_socket.c_str(),
      server.workers(), common::FormatSize(ram.size_bytes).c_str(),
      std::string(tiers::EvictionKindName(ram.eviction)).c_str(),
      common::FormatSize(ram.max_item_size).c_str());
}

MainLoop::MainLoop(Server& server, metrics::MetricsServer* metrics)
    : loop_(uv_default_loop()), server_(server), metrics_(metrics) {
  uv_signal_init(loop_, &sigterm_);
  uv_signal_init(loop_, &sigint_);
  uv_async_init(loop_, &shutdown_, OnShutdownCommand);
  sigterm_.data = sigint_.data = shutdown_.data = this;
  uv_signal_start(&sigterm_, OnSignal, SIGTERM);
  uv_signal_start(&sigint_, OnSignal, SIGINT);
  server_.context().request_shutdown = [this] { uv_async_send(&shutdown_); };
}

void MainLoop::ServeUntilStopped() {
  uv_run(loop_, UV_RUN_DEFAULT);
  server_.Wait();
  uv_loop_close(loop_);
}

void MainLoop::Stop(const char* why) {
  if (stopping_) return;
  stopping_ = true;
  Log(LogLevel::kInfo, "%s: draining connections and stopping", why);
  if (metrics_ != nullptr) metrics_->SetReady(false);  // /readyz: 503 while draining
  server_.RequestStop();
  uv_close(reinterpret_cast<uv_handle_t*>(&sigterm_), nullptr);
  uv_close(reinterpret_cast<uv_handle_t*>(&sigint_), nullptr);
  uv_close(reinterpret_cast<uv_handle_t*>(&shutdown_), nullptr);
}

void MainLoop::OnSignal(uv_signal_t* handle, int signum) {
  static_cast<MainLoop*>(handle->data)->Stop(signum == SIGTERM ? "SIGTERM" : "SIGINT");
}

void MainLoop::OnShutdownCommand(uv_async_t* handle) {
  static_cast<MainLoop*>(handle->data)->Stop("shutdown command");
}

}  // namespace strata::proxy
