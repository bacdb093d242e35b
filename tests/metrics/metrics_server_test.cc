#include "metrics/metrics_server.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <stdexcept>
#include <string>

namespace strata::metrics {
namespace {

struct Response {
  int status = 0;
  std::string headers;
  std::string body;
};

// A minimal HTTP/1.0 client for 127.0.0.1.
Response Request(uint16_t port, const std::string& method, const std::string& path) {
  Response r;
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return r;
  struct timeval tv {
    5, 0
  };
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port);
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    close(fd);
    return r;
  }
  std::string req = method + " " + path + " HTTP/1.0\r\nHost: localhost\r\n\r\n";
  if (write(fd, req.data(), req.size()) != static_cast<ssize_t>(req.size())) {
    close(fd);
    return r;
  }
  std::string all;
  char buf[4096];
  ssize_t n;
  while ((n = read(fd, buf, sizeof(buf))) > 0) all.append(buf, static_cast<size_t>(n));
  close(fd);
  size_t end = all.find("\r\n\r\n");
  if (all.rfind("HTTP/1.", 0) != 0 || end == std::string::npos) return r;
  r.status = std::stoi(all.substr(9, 3));
  r.headers = all.substr(0, end);
  r.body = all.substr(end + 4);
  return r;
}

MetricsServer::Source FixedSource(std::atomic<int>* calls = nullptr) {
  return [calls](Snapshot* s) {
    if (calls != nullptr) ++*calls;
    s->server.version = "test";
    s->server.get_hits = 3;
    s->tiers.push_back(TierFigures{.name = "ram", .hits = 3});
  };
}

std::unique_ptr<MetricsServer> StartOnFreePort(MetricsServer::Source source) {
  auto started = MetricsServer::Start({.listen = "127.0.0.1:0"}, std::move(source));
  EXPECT_TRUE(started.ok()) << started.status().message();
  if (!started.ok()) return nullptr;
  EXPECT_NE((*started)->port(), 0);
  return std::move(started).value();
}

TEST(MetricsServerTest, HealthzAnswersWhileRunning) {
  auto server = StartOnFreePort(FixedSource());
  ASSERT_NE(server, nullptr);
  Response r = Request(server->port(), "GET", "/healthz");
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.body, "ok\n");
}

TEST(MetricsServerTest, ReadyzFollowsTheFlag) {
  auto server = StartOnFreePort(FixedSource());
  ASSERT_NE(server, nullptr);
  EXPECT_FALSE(server->ready());
  Response r = Request(server->port(), "GET", "/readyz");
  EXPECT_EQ(r.status, 503);
  EXPECT_EQ(r.body, "not ready\n");
  server->SetReady(true);
  r = Request(server->port(), "GET", "/readyz");
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.body, "ready\n");
  server->SetReady(false);  // draining
  EXPECT_EQ(Request(server->port(), "GET", "/readyz").status, 503);
  // Liveness does not depend on readiness.
  EXPECT_EQ(Request(server->port(), "GET", "/healthz").status, 200);
}

TEST(MetricsServerTest, MetricsRendersAFreshSnapshotPerScrape) {
  std::atomic<int> calls{0};
  auto server = StartOnFreePort(FixedSource(&calls));
  ASSERT_NE(server, nullptr);
  Response r = Request(server->port(), "GET", "/metrics");
  EXPECT_EQ(r.status, 200);
  EXPECT_NE(r.headers.find("Content-Type: text/plain; version=0.0.4"), std::string::npos)
      << r.headers;
  EXPECT_NE(r.body.find("memcached_commands_total{command=\"get\",status=\"hit\"} 3"),
            std::string::npos)
      << r.body;
  EXPECT_NE(r.body.find("strata_tier_hits_total{tier=\"ram\"} 3"), std::string::npos);
  EXPECT_NE(r.body.find("strata_ready 0"), std::string::npos);
  server->SetReady(true);
  r = Request(server->port(), "GET", "/metrics");
  EXPECT_NE(r.body.find("strata_ready 1"), std::string::npos);
  EXPECT_EQ(calls.load(), 2);
}

TEST(MetricsServerTest, HeadHasNoBody) {
  auto server = StartOnFreePort(FixedSource());
  ASSERT_NE(server, nullptr);
  Response r = Request(server->port(), "HEAD", "/metrics");
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.body, "");
}

TEST(MetricsServerTest, OtherPathsAndMethods) {
  auto server = StartOnFreePort(FixedSource());
  ASSERT_NE(server, nullptr);
  EXPECT_EQ(Request(server->port(), "GET", "/").status, 404);
  EXPECT_EQ(Request(server->port(), "GET", "/metricsx").status, 404);
  EXPECT_EQ(Request(server->port(), "GET", "/healthz/x").status, 404);
  EXPECT_EQ(Request(server->port(), "POST", "/metrics").status, 405);
}

TEST(MetricsServerTest, AnExceptionInTheScrapeIsA500) {
  auto server = StartOnFreePort([](Snapshot*) { throw std::runtime_error("boom"); });
  ASSERT_NE(server, nullptr);
  EXPECT_EQ(Request(server->port(), "GET", "/metrics").status, 500);
  EXPECT_EQ(Request(server->port(), "GET", "/healthz").status, 200);
}

TEST(MetricsServerTest, ATakenPortIsAClearError) {
  auto first = StartOnFreePort(FixedSource());
  ASSERT_NE(first, nullptr);
  const std::string listen = "127.0.0.1:" + std::to_string(first->port());
  auto second = MetricsServer::Start({.listen = listen}, FixedSource());
  ASSERT_FALSE(second.ok());
  EXPECT_EQ(second.status().code(), common::StatusCode::kUnavailable);
  EXPECT_NE(second.status().message().find("cannot listen on " + listen), std::string::npos)
      << second.status().message();
  EXPECT_NE(second.status().message().find("in use"), std::string::npos)
      << second.status().message();
  // The first one is unharmed.
  EXPECT_EQ(Request(first->port(), "GET", "/healthz").status, 200);
}

TEST(MetricsServerTest, AMalformedAddressIsRejected) {
  auto started = MetricsServer::Start({.listen = "nowhere:9150"}, FixedSource());
  ASSERT_FALSE(started.ok());
  EXPECT_EQ(started.status().code(), common::StatusCode::kInvalidArgument);
}

TEST(MetricsServerTest, StopsCleanlyWhileScraped) {
  auto server = StartOnFreePort(FixedSource());
  ASSERT_NE(server, nullptr);
  const uint16_t port = server->port();
  for (int i = 0; i < 20; ++i) EXPECT_EQ(Request(port, "GET", "/metrics").status, 200);
  server.reset();
  EXPECT_EQ(Request(port, "GET", "/healthz").status, 0);  // refused
}

TEST(ParseListenAddressTest, Forms) {
  std::string host;
  uint16_t port = 0;
  EXPECT_TRUE(ParseListenAddress("127.0.0.1:9150", &host, &port));
  EXPECT_EQ(host, "127.0.0.1");
  EXPECT_EQ(port, 9150);
  EXPECT_TRUE(ParseListenAddress("0.0.0.0:0", &host, &port));
  EXPECT_EQ(port, 0);
  EXPECT_TRUE(ParseListenAddress("localhost:80", &host, &port));
  EXPECT_EQ(host, "127.0.0.1");
  for (const char* bad : {"", "9150", ":9150", "127.0.0.1", "127.0.0.1:", "127.0.0.1:65536",
                          "127.0.0.1:-1", "127.0.0.1:x", "::1:9150", "[::1]:9150", "[::1]",
                          "[1.2.3.4]:1", "example.com:9150", "127.0.0.1:9150 "}) {
    EXPECT_FALSE(ParseListenAddress(bad, &host, &port)) << bad;
  }
}

}  // namespace
}  // namespace strata::metrics
