// MetricsServer: the HTTP endpoint Prometheus and Kubernetes probes talk
// to, on its own address (metrics.listen, default 127.0.0.1:9150):
//   GET /metrics  200, the exposition text of a Snapshot taken right then
//                 (text/plain; version=0.0.4)
//   GET /healthz  200 "ok" while the process runs (liveness)
//   GET /readyz   200 "ready" once SetReady(true), 503 "not ready" before
//                 that and after SetReady(false) (readiness: the server
//                 flips it once it listens, which is after the SSD index is
//                 recovered; and back while it drains on SIGTERM)
// Anything else is 404.
//
// The server is civetweb, the HTTP server prometheus-cpp's pull Exposer is
// built on, driven through its C API: the Exposer can only answer 200, and
// /readyz must be able to say 503. prometheus-cpp (core) provides the
// metric families and the text format (exposition.h).
//
// Scrapes run on the server's own threads (`threads`, default 2, so a probe
// is answered while a scrape runs); the Source is called there, once per
// scrape, and must be safe to call from any thread. Nothing here throws:
// a failure to listen comes back from Start() as a Status, and an
// exception from rendering becomes a 500 reply.
//
// Thread safety: SetReady(), ready() and port() from any thread; Start()
// and the destructor from one thread. The Source must outlive the server.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>

#include "common/status.h"
#include "metrics/snapshot.h"

struct mg_context;
struct mg_connection;

namespace strata::metrics {

struct MetricsServerOptions {
  // "ADDR:PORT": an IPv4 literal (0.0.0.0 = every interface) or
  // "localhost", and a port (0 picks a free one; see port()). Debian's
  // civetweb is built without IPv6, so IPv6 addresses are not accepted.
  std::string listen = "127.0.0.1:9150";
  uint32_t threads = 2;
};

class MetricsServer {
 public:
  // Fills the snapshot a scrape renders (everything but `ready`).
  using Source = std::function<void(Snapshot*)>;

  // Starts listening and serving. Returns InvalidArgument for a malformed
  // `listen`, or Unavailable with a message naming the address when it
  // cannot be bound ("cannot listen on 127.0.0.1:9150: ... Address already
  // in use").
  static common::Result<std::unique_ptr<MetricsServer>> Start(const MetricsServerOptions& options,
                                                              Source source);
  // Stops serving; waits for the requests in progress.
  ~MetricsServer();
  MetricsServer(const MetricsServer&) = delete;
  MetricsServer& operator=(const MetricsServer&) = delete;

  void SetReady(bool ready) { ready_.store(ready, std::memory_order_relaxed); }
  bool ready() const { return ready_.load(std::memory_order_relaxed); }
  // The bound TCP port.
  uint16_t port() const { return port_; }

 private:
  explicit MetricsServer(Source source) : source_(std::move(source)) {}

  static int OnMetrics(mg_connection* conn, void* self);
  static int OnHealthz(mg_connection* conn, void* self);
  static int OnReadyz(mg_connection* conn, void* self);
  static int OnLog(const mg_connection* conn, const char* message);

  Source source_;
  std::atomic<bool> ready_{false};
  mg_context* ctx_ = nullptr;
  uint16_t port_ = 0;
  bool wake_ = false;                 // the listener is reachable on loopback
  std::atomic<bool> started_{false};  // mg_start2() has succeeded
  std::mutex start_error_mu_;
  std::string start_error_;  // the first message civetweb logged while starting
};

// Splits "ADDR:PORT" as MetricsServerOptions::listen describes it (the
// rule config/ validates with). Returns false if it is malformed.
bool ParseListenAddress(const std::string& listen, std::string* host, uint16_t* port);

}  // namespace strata::metrics
