// strata: a memcached-compatible tiered cache. This file wires the modules
// together: configuration -> options structs -> RAM tier -> server, the
// metrics server (/metrics, /healthz, /readyz), plus the signals that stop
// it.
#include <malloc.h>
#include <signal.h>
#include <uv.h>

#include <atomic>
#include <cstdio>
#include <memory>
#include <string>

#include "common/clock.h"
#include "common/log.h"
#include "common/units.h"
#include "config/config.h"
#include "metrics/metrics_server.h"
#include "proxy/net/server.h"
#include "proxy/stats/server_metrics.h"
#include "tiers/ram/ram_tier.h"
#include "tiers/ssd/block_device.h"
#include "tiers/ssd/ssd_log.h"
#include "tiers/tiered_cache.h"
#include "tiers/warm_restart.h"

namespace {

using strata::common::Log;
using strata::common::LogLevel;

struct MainLoop {
  uv_loop_t* loop = nullptr;
  uv_signal_t sigterm;
  uv_signal_t sigint;
  uv_async_t shutdown;
  strata::proxy::Server* server = nullptr;
  strata::metrics::MetricsServer* metrics = nullptr;
  bool stopping = false;
};

void Stop(MainLoop* m, const char* why) {
  if (m->stopping) return;
  m->stopping = true;
  Log(LogLevel::kInfo, "%s: draining connections and stopping", why);
  if (m->metrics != nullptr) m->metrics->SetReady(false);  // /readyz: 503 while draining
  m->server->RequestStop();
  uv_close(reinterpret_cast<uv_handle_t*>(&m->sigterm), nullptr);
  uv_close(reinterpret_cast<uv_handle_t*>(&m->sigint), nullptr);
  uv_close(reinterpret_cast<uv_handle_t*>(&m->shutdown), nullptr);
}

void OnSignal(uv_signal_t* handle, int signum) {
  Stop(static_cast<MainLoop*>(handle->data), signum == SIGTERM ? "SIGTERM" : "SIGINT");
}

void OnShutdownCommand(uv_async_t* handle) {
  Stop(static_cast<MainLoop*>(handle->data), "shutdown command");
}

LogLevel ParseLevel(const std::string& level) {
  if (level == "error") return LogLevel::kError;
  if (level == "warn") return LogLevel::kWarn;
  if (level == "debug") return LogLevel::kDebug;
  return LogLevel::kInfo;
}

}  // namespace

int main(int argc, char** argv) {
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
  // arena grows its own slack. test_memory.py (-m 64, 1 GiB of mixed sizes,
  // 2 workers) peaked at 85-86 MiB of RSS with one arena and 85-95 MiB
  // with glibc's default; small allocations still go through the
  // per-thread tcache without the arena's lock.
  mallopt(M_ARENA_MAX, 1);
  auto parsed = strata::config::ParseCommandLine(argc, argv);
  if (!parsed.ok()) {
    std::fprintf(stderr, "strata: %s\n", parsed.status().message().c_str());
    std::fprintf(stderr, "Run 'strata --help' for the options.\n");
    return 2;
  }
  if (parsed->show_help) {
    std::fputs(strata::config::Usage().c_str(), stdout);
    return 0;
  }
  if (parsed->show_version) {
    std::printf("strata %s\n", strata::proxy::kVersion);
    return 0;
  }
  const strata::config::Config& cfg = parsed->config;
  if (cfg.log.level) strata::common::SetLogLevel(ParseLevel(*cfg.log.level));

  strata::tiers::RamTierOptions ram;
  if (cfg.tiers.ram.size) ram.size_bytes = *cfg.tiers.ram.size;
  if (cfg.tiers.ram.max_item_size) ram.max_item_size = *cfg.tiers.ram.max_item_size;
  if (cfg.tiers.ram.eviction) {
    ram.eviction = *cfg.tiers.ram.eviction == "lru" ? strata::tiers::EvictionKind::kLru
                                                     : strata::tiers::EvictionKind::kS3Fifo;
  }

  strata::proxy::ServerOptions server_options;
  const auto& s = cfg.server;
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
    server_options.network_io =
        *s.network_io == "io_uring"   ? strata::proxy::NetworkIoMode::kIoUring
        : *s.network_io == "syscalls" ? strata::proxy::NetworkIoMode::kSyscalls
                                      : strata::proxy::NetworkIoMode::kAuto;
  }
  if (server_options.output_high_watermark > server_options.max_output_buffer / 2) {
    server_options.output_high_watermark = server_options.max_output_buffer / 2;
  }
  const bool metrics_enabled = cfg.metrics.enabled.value_or(true);
  server_options.measure_latency = metrics_enabled;
  strata::metrics::MetricsServerOptions metrics_options;
  if (cfg.metrics.listen) metrics_options.listen = *cfg.metrics.listen;

  const strata::common::Clock& clock = strata::common::SystemClock::Instance();

  // The metrics server starts first, so that a taken metrics port stops
  // strata before it serves anything, and /readyz answers 503 while the SSD
  // index loads. Until the server exists a scrape sees no figures; until
  // the workers listen, only the process figures.
  std::atomic<bool> serving{false};
  std::atomic<const strata::proxy::ServerContext*> ctx_for_metrics{nullptr};
  std::unique_ptr<strata::metrics::MetricsServer> metrics;
  if (metrics_enabled) {
    auto started = strata::metrics::MetricsServer::Start(
        metrics_options, [&ctx_for_metrics, &serving](strata::metrics::Snapshot* snapshot) {
          const strata::proxy::ServerContext* ctx =
              ctx_for_metrics.load(std::memory_order_acquire);
          if (ctx == nullptr) return;
          if (serving.load(std::memory_order_acquire)) {
            strata::proxy::FillSnapshot(*ctx, snapshot);
          } else {
            strata::proxy::FillProcessSnapshot(*ctx, snapshot);
          }
        });
    if (!started.ok()) {
      Log(LogLevel::kError, "cannot start: %s (metrics.listen, --metrics-listen)",
          started.status().message().c_str());
      return 1;
    }
    metrics = std::move(started).value();
  }

  // The SSD tier: open (and preallocate) the device, rebuild the index from
  // what is on it, before serving anything.
  const strata::config::SsdConfig& ssd_cfg = cfg.tiers.ssd;
  std::unique_ptr<strata::tiers::BlockDevice> device;
  std::unique_ptr<strata::tiers::SsdLog> ssd_log;
  strata::tiers::AdmissionOptions admission;
  if (ssd_cfg.path && !ssd_cfg.disabled) {
    strata::tiers::FileDeviceOptions dev_options;
    dev_options.path = *ssd_cfg.path;
    dev_options.size = *ssd_cfg.size;
    std::string io = ssd_cfg.io.value_or("auto");
    dev_options.mode = io == "io_uring"     ? strata::tiers::IoMode::kIoUring
                       : io == "threadpool" ? strata::tiers::IoMode::kThreadPool
                                            : strata::tiers::IoMode::kAuto;
    std::string fallback;
    uint64_t reserved = 0;
    auto opened = strata::tiers::OpenFileDevice(dev_options, &fallback, &reserved);
    if (!opened.ok()) {
      Log(LogLevel::kError, "cannot start: tiers.ssd.path: %s", opened.status().message().c_str());
      return 1;
    }
    device = std::move(opened).value();
    if (reserved > 0) {
      Log(LogLevel::kInfo, "%s: allocated %.1f MiB the file did not have (it was short or sparse)",
          dev_options.path.c_str(), static_cast<double>(reserved) / (1 << 20));
    }
    if (!fallback.empty()) {
      Log(LogLevel::kWarn,
          "io_uring cannot be used (%s): the SSD tier does its I/O on a thread pool instead",
          fallback.c_str());
    }
    strata::tiers::SsdLogOptions log_options;
    if (ssd_cfg.region_size) log_options.region_size = static_cast<uint32_t>(*ssd_cfg.region_size);
    log_options.compress = ssd_cfg.compression.value_or("lz4") == "lz4";
    ssd_log = std::make_unique<strata::tiers::SsdLog>(log_options, *device, clock);
    strata::common::Status recovered = ssd_log->Recover();
    if (!recovered.ok()) {
      Log(LogLevel::kError, "cannot start: tiers.ssd: %s", recovered.message().c_str());
      return 1;
    }
    const strata::tiers::SsdRecoveryStats& rs = ssd_log->recovery();
    Log(LogLevel::kInfo,
        "SSD tier %s (%s, %s, %u regions): %llu items recovered in %.2f s; damage: %llu "
        "records, %llu region headers, %llu regions lost, %llu invalidations taken from "
        "mirrors, %llu refusals of older records; %llu torn records at the log's end",
        ssd_cfg.path->c_str(), strata::common::FormatSize(*ssd_cfg.size).c_str(),
        std::string(device->mode()).c_str(), ssd_log->region_count(),
        static_cast<unsigned long long>(rs.items), rs.seconds,
        static_cast<unsigned long long>(rs.damaged_records),
        static_cast<unsigned long long>(rs.damaged_headers),
        static_cast<unsigned long long>(rs.lost_regions),
        static_cast<unsigned long long>(rs.mirrored_invalidations),
        static_cast<unsigned long long>(rs.refusals),
        static_cast<unsigned long long>(rs.torn_records));
    std::string adm = ssd_cfg.admission.value_or("reaccessed");
    admission.kind = adm == "all"          ? strata::tiers::AdmissionKind::kAll
                     : adm == "reaccessed" ? strata::tiers::AdmissionKind::kReaccessed
                                           : strata::tiers::AdmissionKind::kSketch;
    admission.write_budget = ssd_cfg.write_budget.value_or(0);
    if (ssd_cfg.promote_threshold) admission.promote_threshold = *ssd_cfg.promote_threshold;
  }
  strata::tiers::TieredCache cache(ram, clock, ssd_log.get(), admission);
  strata::proxy::Server server(server_options, cache, device.get(), clock);
  // A scrape reads the server's context and the cache: on every way out of
  // main from here on, the metrics server stops (and waits for the scrapes
  // in progress) before they are destroyed. ThreadSanitizer caught a scrape
  // during shutdown reading the workers' counters as they were freed.
  struct StopMetricsFirst {
    std::unique_ptr<strata::metrics::MetricsServer>& metrics;
    ~StopMetricsFirst() { metrics.reset(); }
  } stop_metrics_first{metrics};

  MainLoop m;
  m.loop = uv_default_loop();
  m.server = &server;
  uv_signal_init(m.loop, &m.sigterm);
  uv_signal_init(m.loop, &m.sigint);
  uv_async_init(m.loop, &m.shutdown, OnShutdownCommand);
  m.sigterm.data = m.sigint.data = m.shutdown.data = &m;
  uv_signal_start(&m.sigterm, OnSignal, SIGTERM);
  uv_signal_start(&m.sigint, OnSignal, SIGINT);
  server.context().request_shutdown = [&m] { uv_async_send(&m.shutdown); };

  if (metrics != nullptr) {
    ctx_for_metrics.store(&server.context(), std::memory_order_release);
    m.metrics = metrics.get();
  }

  strata::common::Status st = server.Start();
  if (!st.ok()) {
    Log(LogLevel::kError, "cannot start: %s", st.message().c_str());
    return 1;
  }
  serving.store(true, std::memory_order_release);
  if (metrics != nullptr) {
    metrics->SetReady(true);
    std::string host;
    uint16_t port = 0;
    strata::metrics::ParseListenAddress(metrics_options.listen, &host, &port);
    Log(LogLevel::kInfo, "metrics on http://%s:%u/metrics (and /healthz, /readyz)", host.c_str(),
        metrics->port());
  }
  Log(LogLevel::kInfo,
      "strata %s listening on %s:%u%s%s with %zu workers; RAM tier %s (%s), max item %s",
      strata::proxy::kVersion, server_options.listen.c_str(), server.port(),
      server_options.unix_socket.empty() ? "" : " and unix:",
      server_options.unix_socket.c_str(), server.workers(),
      strata::common::FormatSize(ram.size_bytes).c_str(),
      std::string(strata::tiers::EvictionKindName(ram.eviction)).c_str(),
      strata::common::FormatSize(ram.max_item_size).c_str());

  // A warm restart: the keys RAM held at the last SIGTERM come back from
  // SSD in the background while strata serves.
  std::unique_ptr<strata::tiers::WarmUp> warm_up;
  if (ssd_log != nullptr) {
    std::string why;
    const std::string sketch_path = strata::tiers::SketchPath(*ssd_cfg.path);
    if (strata::tiers::LoadSketch(cache.sketch(), sketch_path, &why)) {
      Log(LogLevel::kInfo, "warm restart: frequency sketch loaded from %s", sketch_path.c_str());
    } else if (!why.empty()) {
      Log(LogLevel::kWarn, "%s: %s; the frequency sketch starts empty", sketch_path.c_str(),
          why.c_str());
    }
    why.clear();
    std::vector<std::string> hot =
        strata::tiers::LoadHotKeys(strata::tiers::HotKeysPath(*ssd_cfg.path), &why);
    if (!why.empty()) {
      Log(LogLevel::kWarn, "%s: %s; no warm restart",
          strata::tiers::HotKeysPath(*ssd_cfg.path).c_str(), why.c_str());
    }
    if (!hot.empty()) {
      Log(LogLevel::kInfo, "warm restart: promoting up to %zu keys from the SSD tier", hot.size());
      warm_up = std::make_unique<strata::tiers::WarmUp>(cache, *device, std::move(hot));
    }
  }

  uv_run(m.loop, UV_RUN_DEFAULT);
  server.Wait();
  uv_loop_close(m.loop);
  if (warm_up != nullptr) {
    warm_up.reset();  // stops it if it is still running
  }
  if (ssd_log != nullptr && ssd_cfg.demote_on_shutdown.value_or(true)) {
    // A warm restart: what RAM holds goes to SSD (items whose SSD record is
    // still valid are not written again), and its keys, hottest first, to
    // the list the next start promotes back.
    int64_t t0 = clock.MonotonicNanos();
    size_t demoted = cache.DemoteAll();
    std::vector<std::string> hot = cache.HotKeys();
    strata::common::Status saved =
        strata::tiers::SaveHotKeys(hot, strata::tiers::HotKeysPath(*ssd_cfg.path));
    if (!saved.ok()) {
      Log(LogLevel::kWarn, "cannot save the hot-key list: %s", saved.message().c_str());
    }
    strata::common::Status sketch_saved = strata::tiers::SaveSketch(
        *cache.sketch(), strata::tiers::SketchPath(*ssd_cfg.path));
    if (!sketch_saved.ok()) {
      Log(LogLevel::kWarn, "cannot save the frequency sketch: %s",
          sketch_saved.message().c_str());
    }
    Log(LogLevel::kInfo, "demoted %zu RAM items to the SSD tier and saved %zu hot keys in %.2f s",
        demoted, saved.ok() ? hot.size() : size_t{0},
        static_cast<double>(clock.MonotonicNanos() - t0) / 1e9);
  }
  Log(LogLevel::kInfo, "stopped");
  return 0;
}
