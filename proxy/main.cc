// strata: a memcached-compatible tiered cache. This file wires the modules
// together: configuration -> options structs -> RAM tier -> server, plus the
// signals that stop it.
#include <malloc.h>
#include <signal.h>
#include <uv.h>

#include <cstdio>
#include <string>

#include "common/clock.h"
#include "common/log.h"
#include "common/units.h"
#include "config/config.h"
#include "proxy/server.h"
#include "tiers/ram_tier.h"

namespace {

using strata::common::Log;
using strata::common::LogLevel;

struct MainLoop {
  uv_loop_t* loop = nullptr;
  uv_signal_t sigterm;
  uv_signal_t sigint;
  uv_async_t shutdown;
  strata::proxy::Server* server = nullptr;
  bool stopping = false;
};

void Stop(MainLoop* m, const char* why) {
  if (m->stopping) return;
  m->stopping = true;
  Log(LogLevel::kInfo, "%s: draining connections and stopping", why);
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
  // Items live in malloc's heap. Large items (up to tens of MiB) must not get
  // a fresh mmap each (every new page faults while the value is read into
  // it, and munmap follows on eviction): keep them in the heap, and keep
  // freed memory for the next item instead of trimming it; the RAM tier's
  // budget bounds what the heap holds.
  mallopt(M_MMAP_THRESHOLD, 64 << 20);
  mallopt(M_TRIM_THRESHOLD, 256 << 20);
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
  if (server_options.output_high_watermark > server_options.max_output_buffer / 2) {
    server_options.output_high_watermark = server_options.max_output_buffer / 2;
  }

  const strata::common::Clock& clock = strata::common::SystemClock::Instance();
  strata::tiers::RamTier tier(ram, clock);
  strata::proxy::Server server(server_options, tier, clock);

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

  strata::common::Status st = server.Start();
  if (!st.ok()) {
    Log(LogLevel::kError, "cannot start: %s", st.message().c_str());
    return 1;
  }
  Log(LogLevel::kInfo,
      "strata %s listening on %s:%u%s%s with %zu workers; RAM tier %s (%s), max item %s",
      strata::proxy::kVersion, server_options.listen.c_str(), server.port(),
      server_options.unix_socket.empty() ? "" : " and unix:",
      server_options.unix_socket.c_str(), server.workers(),
      strata::common::FormatSize(ram.size_bytes).c_str(),
      std::string(strata::tiers::EvictionKindName(ram.eviction)).c_str(),
      strata::common::FormatSize(ram.max_item_size).c_str());

  uv_run(m.loop, UV_RUN_DEFAULT);
  server.Wait();
  uv_loop_close(m.loop);
  Log(LogLevel::kInfo, "stopped");
  return 0;
}
