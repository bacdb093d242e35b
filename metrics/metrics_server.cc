#include "metrics/metrics_server.h"

#include <arpa/inet.h>
#include <civetweb.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <charconv>
#include <chrono>
#include <cstring>
#include <exception>
#include <string_view>
#include <thread>

#include "common/log.h"
#include "metrics/exposition.h"

namespace strata::metrics {
namespace {

constexpr const char* kTextFormat = "text/plain; version=0.0.4; charset=utf-8";

// Writes a whole response; civetweb closes the connection afterwards
// (keep-alive is off).
int Reply(mg_connection* conn, int status, const char* reason, const char* content_type,
          std::string_view body) {
  mg_printf(conn,
            "HTTP/1.1 %d %s\r\n"
            "Content-Type: %s\r\n"
            "Content-Length: %zu\r\n"
            "Cache-Control: no-store\r\n"
            "Connection: close\r\n\r\n",
            status, reason, content_type, body.size());
  const mg_request_info* info = mg_get_request_info(conn);
  if (info == nullptr || info->request_method == nullptr ||
      std::strcmp(info->request_method, "HEAD") != 0) {
    mg_write(conn, body.data(), body.size());
  }
  return status;
}

bool IsGetOrHead(mg_connection* conn) {
  const mg_request_info* info = mg_get_request_info(conn);
  return info != nullptr && info->request_method != nullptr &&
         (std::strcmp(info->request_method, "GET") == 0 ||
          std::strcmp(info->request_method, "HEAD") == 0);
}

int MethodNotAllowed(mg_connection* conn) {
  return Reply(conn, 405, "Method Not Allowed", "text/plain", "only GET and HEAD\n");
}

// Opens and drops a connection to the server's port on loopback, which
// wakes civetweb's accept loop (it polls with a 2 s timeout) so that a stop
// takes milliseconds instead of up to 2 s.
void PokeListener(uint16_t port) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return;
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(port);
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  (void)connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a));
  close(fd);
}

}  // namespace

bool ParseListenAddress(const std::string& listen, std::string* host, uint16_t* port) {
  const size_t colon = listen.rfind(':');
  if (colon == std::string::npos || colon == 0 || colon + 1 == listen.size()) return false;
  std::string_view digits = std::string_view(listen).substr(colon + 1);
  unsigned value = 0;
  auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), value);
  if (ec != std::errc() || end != digits.data() + digits.size() || value > 65535) return false;
  std::string h = listen.substr(0, colon);
  unsigned char buf[sizeof(in_addr)];
  if (h == "localhost") {
    h = "127.0.0.1";
  } else if (inet_pton(AF_INET, h.c_str(), buf) != 1) {
    return false;
  }
  *host = h;
  *port = static_cast<uint16_t>(value);
  return true;
}

common::Result<std::unique_ptr<MetricsServer>> MetricsServer::Start(
    const MetricsServerOptions& options, Source source) {
  std::string host;
  uint16_t port = 0;
  if (!ParseListenAddress(options.listen, &host, &port)) {
    return common::Status::InvalidArgument("metrics listen address \"" + options.listen +
                                           "\": expected ADDR:PORT, e.g. 127.0.0.1:9150");
  }
  std::unique_ptr<MetricsServer> server(new MetricsServer(std::move(source)));
  const std::string ports = host + ":" + std::to_string(port);
  const std::string threads = std::to_string(options.threads == 0 ? 1 : options.threads);
  // clang-format off
  const char* config[] = {
      "listening_ports",    ports.c_str(),
      "num_threads",        threads.c_str(),
      "request_timeout_ms", "10000",
      "enable_keep_alive",  "no",
      nullptr,
  };
  // clang-format on
  mg_callbacks callbacks;
  std::memset(&callbacks, 0, sizeof(callbacks));
  callbacks.log_message = &MetricsServer::OnLog;
  char error_text[256] = "";
  mg_error_data error;
  std::memset(&error, 0, sizeof(error));
  error.text = error_text;
  error.text_buffer_size = sizeof(error_text);
  mg_init_data init;
  std::memset(&init, 0, sizeof(init));
  init.callbacks = &callbacks;
  init.user_data = server.get();
  init.configuration_options = config;
  server->ctx_ = mg_start2(&init, &error);
  if (server->ctx_ == nullptr) {
    // civetweb's error text is generic ("Failed to setup server ports");
    // the cause (bind's errno) went to the log callback.
    common::MutexLock lock(&server->start_error_mu_);
    std::string why = !server->start_error_.empty() ? server->start_error_
                      : error_text[0] != '\0'       ? std::string(error_text)
                                                    : std::string("unknown error");
    return common::Status::Unavailable("cannot listen on " + options.listen +
                                       " for metrics: " + why);
  }
  server->started_.store(true);
  mg_server_port bound[4];
  std::memset(bound, 0, sizeof(bound));
  if (mg_get_server_ports(server->ctx_, 4, bound) > 0) {
    server->port_ = static_cast<uint16_t>(bound[0].port);
  }
  server->wake_ = host == "127.0.0.1" || host == "0.0.0.0";
  mg_set_request_handler(server->ctx_, "/metrics$", &MetricsServer::OnMetrics, server.get());
  mg_set_request_handler(server->ctx_, "/healthz$", &MetricsServer::OnHealthz, server.get());
  mg_set_request_handler(server->ctx_, "/readyz$", &MetricsServer::OnReadyz, server.get());
  return server;
}

MetricsServer::~MetricsServer() {
  if (ctx_ == nullptr) return;
  std::atomic<bool> stopped{false};
  std::thread stopper([this, &stopped] {
    mg_stop(ctx_);
    stopped.store(true);
  });
  // Only a loopback or wildcard listener can be woken from here; for any
  // other address the stop waits for civetweb's poll timeout.
  while (!stopped.load()) {
    if (wake_) PokeListener(port_);
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  stopper.join();
}

int MetricsServer::OnMetrics(mg_connection* conn, void* self) {
  if (!IsGetOrHead(conn)) return MethodNotAllowed(conn);
  auto* server = static_cast<MetricsServer*>(self);
  std::string body;
  try {
    Snapshot snapshot;
    server->source_(&snapshot);
    snapshot.ready = server->ready();
    body = RenderText(snapshot);
  } catch (const std::exception& e) {
    // prometheus-cpp's serializer and the allocator may throw; nothing may
    // escape into civetweb's C code.
    common::Log(common::LogLevel::kWarn, "metrics scrape failed: %s", e.what());
    return Reply(conn, 500, "Internal Server Error", "text/plain", "scrape failed\n");
  }
  return Reply(conn, 200, "OK", kTextFormat, body);
}

int MetricsServer::OnHealthz(mg_connection* conn, void*) {
  if (!IsGetOrHead(conn)) return MethodNotAllowed(conn);
  return Reply(conn, 200, "OK", "text/plain", "ok\n");
}

int MetricsServer::OnReadyz(mg_connection* conn, void* self) {
  if (!IsGetOrHead(conn)) return MethodNotAllowed(conn);
  if (static_cast<MetricsServer*>(self)->ready()) {
    return Reply(conn, 200, "OK", "text/plain", "ready\n");
  }
  return Reply(conn, 503, "Service Unavailable", "text/plain", "not ready\n");
}

int MetricsServer::OnLog(const mg_connection* conn, const char* message) {
  // While Start() runs (on its thread, before any request), the first
  // message is the reason a start fails: keep it for the Status.
  const mg_context* ctx = conn != nullptr ? mg_get_context(conn) : nullptr;
  auto* self = ctx != nullptr ? static_cast<MetricsServer*>(mg_get_user_data(ctx)) : nullptr;
  if (self != nullptr && !self->started_.load()) {
    common::MutexLock lock(&self->start_error_mu_);
    if (self->start_error_.empty()) self->start_error_ = message;
  }
  // Otherwise civetweb's own errors (a client that hangs up, a bad request).
  common::Log(common::LogLevel::kDebug, "metrics http: %s", message);
  return 1;  // handled: civetweb writes no log of its own
}

}  // namespace strata::metrics
