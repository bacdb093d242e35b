// strata: a memcached-compatible tiered cache. main() is the sequence of
// startup and shutdown; each step is in proxy/startup.h, and the mapping
// from the configuration to the modules' options in
// proxy/options_from_config.h.
//
// Exit status: 0 after a clean stop (and for --help, --version), 1 when a
// step of the startup fails, 2 for a bad command line or configuration.
#include <cstdio>
#include <memory>

#include "common/clock.h"
#include "common/log.h"
#include "config/config.h"
#include "proxy/net/server.h"
#include "proxy/options_from_config.h"
#include "proxy/startup.h"
#include "tiers/tiered_cache.h"
#include "tiers/warm_restart.h"

namespace common = strata::common;
namespace config = strata::config;
namespace proxy = strata::proxy;
namespace tiers = strata::tiers;

int main(int argc, char** argv) {
  proxy::TuneProcess();
  auto parsed = config::ParseCommandLine(argc, argv);
  if (!parsed.ok()) {
    std::fprintf(stderr, "strata: %s\n", parsed.status().message().c_str());
    std::fprintf(stderr, "Run 'strata --help' for the options.\n");
    return 2;
  }
  if (parsed->show_help) {
    std::fputs(config::Usage().c_str(), stdout);
    return 0;
  }
  if (parsed->show_version) {
    std::printf("strata %s\n", proxy::kVersion);
    return 0;
  }
  const config::Config& cfg = parsed->config;
  if (auto level = proxy::LogLevelFromConfig(cfg)) common::SetLogLevel(*level);
  const tiers::RamTierOptions ram = proxy::RamTierOptionsFromConfig(cfg);
  const proxy::ServerOptions server_options = proxy::ServerOptionsFromConfig(cfg);
  // The upstream pool: validated here, resolved once the metrics run.
  const common::Result<strata::upstream::PoolOptions> pool = proxy::PoolOptionsFromConfig(cfg);
  if (!pool.ok()) {
    std::fprintf(stderr, "strata: %s\n", pool.status().message().c_str());
    return 2;
  }
  const common::Clock& clock = common::SystemClock::Instance();

  // The metrics server starts first, so that a taken metrics port stops
  // strata before it serves anything, and /readyz answers 503 while the SSD
  // index loads.
  proxy::MetricsEndpoint metrics;
  if (!metrics.Start(cfg)) return 1;
  // The SSD tier: open (and preallocate) the device, rebuild the index from
  // what is on it, before serving anything.
  proxy::SsdTier ssd;
  if (!ssd.Open(cfg.tiers.ssd, ram.max_item_size, clock)) return 1;

  tiers::TieredCache cache(ram, clock, ssd.log(), ssd.admission());
  ssd.RestoreCas(cache.ram());
  proxy::Server server(server_options, cache, ssd.device(), clock);
  if (pool->enabled()) {
    std::unique_ptr<proxy::UpstreamContext> upstream = proxy::BuildUpstream(*pool);
    if (upstream == nullptr) return 1;
    server.SetUpstream(std::move(upstream));
  }
  proxy::StopMetricsFirst stop_metrics_first(metrics);
  proxy::MainLoop main_loop(server, metrics.server());
  metrics.Watch(server.context());
  common::Status started = server.Start();
  if (!started.ok()) {
    common::Log(common::LogLevel::kError, "cannot start: %s", started.message().c_str());
    return 1;
  }
  metrics.MarkServing();
  proxy::LogListening(server_options, server, ram);
  // A warm restart: the keys RAM held at the last SIGTERM come back from
  // SSD in the background while strata serves.
  std::unique_ptr<tiers::WarmUp> warm_up = ssd.StartWarmUp(cache);

  main_loop.ServeUntilStopped();
  warm_up.reset();  // stops it if it is still running
  ssd.SaveForWarmRestart(cache, clock);
  common::Log(common::LogLevel::kInfo, "stopped");
  return 0;
}
