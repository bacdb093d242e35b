// The steps of the strata binary's startup and shutdown, in the order main()
// (proxy/main.cc) takes them:
//
//   TuneProcess()                    SIGPIPE ignored, malloc's settings
//   MetricsEndpoint::Start()         /metrics, /healthz, /readyz (503 until serving)
//   SsdTier::Open()                  the SSD device, preallocated, and its
//                                    index rebuilt (recovery) before serving
//   TieredCache, Server              built from the options
//   BuildUpstream()                  the upstream pool's addresses resolved,
//                                    its placement (Server::SetUpstream())
//   StopMetricsFirst                 on every way out from there, the metrics
//                                    server stops before what a scrape reads
//   MainLoop                         SIGTERM, SIGINT and the shutdown command
//   Server::Start()                  the workers listen
//   MetricsEndpoint::MarkServing()   /readyz 200, the full snapshot
//   LogListening()
//   SsdTier::StartWarmUp()           the keys RAM held at the last stop come
//                                    back from SSD in the background
//   MainLoop::ServeUntilStopped()    serve; drain and stop on a signal
//   SsdTier::SaveForWarmRestart()    RAM demoted to SSD, hot keys and the
//                                    frequency sketch saved
//
// A step that fails logs "cannot start: ..." and returns false (or an error
// Status); main() then exits with status 1.
//
// Thread safety: all of it runs on the main thread, except what a scrape
// calls (MetricsEndpoint's source, on the metrics server's threads) and
// what a worker calls (the shutdown command's MainLoop wake-up, uv_async_send).
#pragma once

#include <uv.h>

#include <atomic>
#include <memory>
#include <string>

#include "common/clock.h"
#include "config/config.h"
#include "metrics/metrics_server.h"
#include "proxy/net/server.h"
#include "proxy/upstream/pool_options.h"
#include "tiers/ssd/block_device.h"
#include "tiers/ssd/ssd_log.h"
#include "tiers/tiered_cache.h"
#include "tiers/warm_restart.h"

namespace strata::proxy {

// Process-wide settings made before anything else runs: SIGPIPE is ignored
// (a client that goes away is an EPIPE on its socket), and malloc keeps
// large items in its heap, in one arena.
void TuneProcess();

// The metrics HTTP server and what a scrape reads: nothing until Watch(),
// the process figures until MarkServing(), then everything (FillSnapshot).
class MetricsEndpoint {
 public:
  MetricsEndpoint() = default;
  MetricsEndpoint(const MetricsEndpoint&) = delete;
  MetricsEndpoint& operator=(const MetricsEndpoint&) = delete;

  // Starts the server when metrics are enabled (MetricsEnabled(cfg));
  // /readyz answers 503 until MarkServing(). Returns false (logged) when it
  // cannot start (a taken port), true otherwise.
  bool Start(const config::Config& cfg);
  // Scrapes read `ctx` from now on. Requires ctx to outlive the server
  // (StopMetricsFirst).
  void Watch(const ServerContext& ctx);
  // The workers listen: scrapes see every figure, /readyz answers 200, and
  // the metrics address is logged.
  void MarkServing();
  // Stops the server (waiting for the scrapes in progress); idempotent.
  void Stop() { server_.reset(); }
  // The running server, or null (metrics disabled, or stopped).
  metrics::MetricsServer* server() const { return server_.get(); }

 private:
  metrics::MetricsServerOptions options_;
  std::atomic<bool> serving_{false};
  std::atomic<const ServerContext*> ctx_{nullptr};
  std::unique_ptr<metrics::MetricsServer> server_;  // last: stops first
};

// Stops the metrics server when it goes out of scope. Declared after the
// cache and the Server, it runs before they are destroyed on every way out
// of main(): a scrape reads them (ThreadSanitizer caught a scrape during
// shutdown reading the workers' counters as they were freed).
class StopMetricsFirst {
 public:
  explicit StopMetricsFirst(MetricsEndpoint& metrics) : metrics_(metrics) {}
  ~StopMetricsFirst() { metrics_.Stop(); }
  StopMetricsFirst(const StopMetricsFirst&) = delete;
  StopMetricsFirst& operator=(const StopMetricsFirst&) = delete;

 private:
  MetricsEndpoint& metrics_;
};

// The SSD tier as configured (tiers.ssd): off without a path or with
// --no-ssd; otherwise the device, opened and preallocated, and the log,
// recovered from what is on it. Also the warm restart around it.
class SsdTier {
 public:
  SsdTier() = default;
  SsdTier(const SsdTier&) = delete;
  SsdTier& operator=(const SsdTier&) = delete;

  // Opens the device and recovers the log, logging what recovery found
  // (`max_item_size`: tiers.ram's, for SsdLogOptionsFromConfig()).
  // Returns false (logged) when the device cannot be opened or recovery
  // fails; true otherwise, also when the tier is off.
  bool Open(const config::SsdConfig& cfg, uint64_t max_item_size, const common::Clock& clock);

  // Null when the tier is off.
  tiers::BlockDevice* device() const { return device_.get(); }
  tiers::SsdLog* log() const { return log_.get(); }
  // The admission policy (the default when the tier is off).
  const tiers::AdmissionOptions& admission() const { return admission_; }

  // Loads the frequency sketch and starts promoting the hot keys saved at
  // the last stop. Returns the running warm-up, or null (the tier is off,
  // or no keys were saved). Logs what it loaded and why it did not.
  std::unique_ptr<tiers::WarmUp> StartWarmUp(tiers::TieredCache& cache);

  // Unless the tier is off or tiers.ssd.demote_on_shutdown is false: demotes
  // what RAM holds to SSD and saves its keys (hottest first) and the
  // frequency sketch for the next start. Requires the workers stopped.
  // With the tier on, also saves the CAS high-water mark
  // (tiers::SaveCasHighWater).
  void SaveForWarmRestart(tiers::TieredCache& cache, const common::Clock& clock);
  // Before serving: every CAS unique issued from now on is larger than any
  // the last process issued (its saved high-water mark; after a crash, the
  // largest on the device plus tiers::kCrashCasMargin). Logs which.
  void RestoreCas(tiers::RamTier& ram);

 private:
  std::string path_;
  bool demote_on_shutdown_ = true;
  tiers::AdmissionOptions admission_;
  std::unique_ptr<tiers::BlockDevice> device_;
  std::unique_ptr<tiers::SsdLog> log_;  // after device_: destroyed first
};

// The upstream pool of `options` (enabled()): its membership read once, now
// (MembershipWatcher::Create(): static hosts resolved with getaddrinfo,
// files read, DNS names looked up), and its placement checked. Logs and
// returns null when a static host does not resolve, a file is bad, or the
// placement is refused.
std::unique_ptr<UpstreamContext> BuildUpstream(const upstream::PoolOptions& options);

// The "listening on ..." line: address, port, workers, RAM tier.
void LogListening(const ServerOptions& options, const Server& server,
                  const tiers::RamTierOptions& ram);

// The main thread's libuv loop: it waits for SIGTERM, SIGINT or the
// `shutdown` command (a worker wakes it), then asks the server to drain and
// stop, with /readyz answering 503 meanwhile. Uses the default loop; one
// per process. Must outlive the server's workers (their shutdown command
// wakes it).
class MainLoop {
 public:
  // Installs the handlers and sets server.context().request_shutdown.
  // `metrics` may be null (metrics disabled).
  MainLoop(Server& server, metrics::MetricsServer* metrics);
  MainLoop(const MainLoop&) = delete;
  MainLoop& operator=(const MainLoop&) = delete;

  // Runs until a stop was requested and the server's workers have exited,
  // then closes the loop.
  void ServeUntilStopped();

 private:
  void Stop(const char* why);
  static void OnSignal(uv_signal_t* handle, int signum);
  static void OnShutdownCommand(uv_async_t* handle);

  uv_loop_t* loop_;
  uv_signal_t sigterm_;
  uv_signal_t sigint_;
  uv_async_t shutdown_;
  Server& server_;
  metrics::MetricsServer* metrics_;
  bool stopping_ = false;
};

}  // namespace strata::proxy
