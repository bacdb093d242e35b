// Internal to config/: the rule for each setting's value, shared by the YAML
// loader (config.cc) and the command-line parser (flags.cc), so a value is
// accepted or rejected the same way wherever it comes from.
//
// Each rule parses a setting's text and returns the value, or an
// InvalidArgument status whose message is the detail that follows
// "<path>: " or "<flag>: ", e.g. `expected an integer 0..65535, got "x"`.
// Callers add the path or flag in front.
//
// Thread safety: pure functions and constants, safe from any thread.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "common/status.h"

namespace strata::config::internal {

// How a setting's value is read.
template <typename T>
struct Rule {
  // What a valid value looks like, completing "expected ..., got a map"
  // when the value is not even a scalar: "an integer 0..65535".
  const char* expected;
  // Parses the text; on failure the status message is the detail.
  common::Result<T> (*parse)(std::string_view text);
};

// Renders `text` for a message: in double quotes, with quotes, backslashes
// and control bytes escaped, and cut to 64 bytes ("..." marks the cut).
std::string Quote(std::string_view text);

// Renders a map key as one component of a dotted path: as is when it is made
// of [A-Za-z0-9_-] only, otherwise quoted (see Quote).
std::string PathComponent(std::string_view key);

// Returns a decimal integer, or nothing if `text` is empty, has anything but
// the digits 0-9 (no sign, no spaces), or overflows 64 bits.
std::optional<uint64_t> ParseDecimal(std::string_view text);

common::Result<std::string> ParseListen(std::string_view text);
common::Result<uint16_t> ParsePort(std::string_view text);
common::Result<std::string> ParseUnixSocket(std::string_view text);
common::Result<uint32_t> ParseUnixSocketMode(std::string_view text);
common::Result<uint32_t> ParseWorkers(std::string_view text);
common::Result<uint32_t> ParseMaxConnections(std::string_view text);
common::Result<bool> ParseBool(std::string_view text);
common::Result<uint64_t> ParseDrainTimeoutMs(std::string_view text);
common::Result<uint64_t> ParseMaxOutputBuffer(std::string_view text);
// server.max_connection_memory: a size of at least 1MiB, or "auto" (0).
common::Result<uint64_t> ParseMaxConnectionMemory(std::string_view text);
common::Result<uint64_t> ParseRamSize(std::string_view text);
common::Result<uint64_t> ParseMaxItemSize(std::string_view text);
common::Result<std::string> ParseEviction(std::string_view text);
common::Result<std::string> ParseLogLevel(std::string_view text);
common::Result<std::string> ParseSsdPath(std::string_view text);
common::Result<uint64_t> ParseSsdSize(std::string_view text);
common::Result<uint64_t> ParseRegionSize(std::string_view text);
common::Result<std::string> ParseCompression(std::string_view text);
common::Result<std::string> ParseIoMode(std::string_view text);
common::Result<std::string> ParseNetworkIo(std::string_view text);
common::Result<std::string> ParseAdmission(std::string_view text);
common::Result<uint64_t> ParseWriteBudget(std::string_view text);
common::Result<uint32_t> ParsePromoteThreshold(std::string_view text);
common::Result<uint32_t> ParseLargeItemPercent(std::string_view text);
// metrics.listen: "ADDR:PORT", ADDR an IPv4 literal or localhost (the
// metrics HTTP server has no IPv6), PORT 0..65535.
common::Result<std::string> ParseMetricsListen(std::string_view text);
common::Result<std::string> ParseDistribution(std::string_view text);
// upstream.near_cache_ttl: a duration of at most 30 days; 0 is allowed.
common::Result<uint64_t> ParseNearCacheTtlMs(std::string_view text);
common::Result<uint32_t> ParseConnectionsPerServer(std::string_view text);
// upstream.connect_timeout, upstream.request_timeout: 1ms..60s.
common::Result<uint64_t> ParseUpstreamTimeoutMs(std::string_view text);
// upstream.down_after_timeouts, upstream.down_after_connect_failures:
// 1..1000.
common::Result<uint32_t> ParseDownAfter(std::string_view text);
// upstream.revalidate_idle: a duration of at most 1h; 0 is allowed.
common::Result<uint64_t> ParseRevalidateIdleMs(std::string_view text);
// upstream.max_in_flight: 1..1048576.
common::Result<uint32_t> ParseMaxInFlight(std::string_view text);
// upstream.dns_resolver: "IP:PORT" (IPv4, or IPv6 in brackets), port 1..65535;
// "" (unset: /etc/resolv.conf's servers).
common::Result<std::string> ParseDnsResolver(std::string_view text);
// upstream.dns_refresh, upstream.file_refresh: 100ms..1h.
common::Result<uint64_t> ParseMembershipRefreshMs(std::string_view text);
// upstream.removal_grace: a duration of at most 1h; 0 is allowed.
common::Result<uint64_t> ParseRemovalGraceMs(std::string_view text);
// memcached's -m: a whole number of MiB, at least 1. Returns bytes.
common::Result<uint64_t> ParseMegabytes(std::string_view text);

inline constexpr Rule<std::string> kListen{"an IPv4 or IPv6 address or \"localhost\"",
                                           &ParseListen};
inline constexpr Rule<uint16_t> kPort{"an integer 0..65535", &ParsePort};
inline constexpr Rule<std::string> kUnixSocket{"a socket path", &ParseUnixSocket};
inline constexpr Rule<uint32_t> kUnixSocketMode{"octal permissions like \"0700\", at most 0777",
                                                &ParseUnixSocketMode};
inline constexpr Rule<uint32_t> kWorkers{"an integer 0..256", &ParseWorkers};
inline constexpr Rule<uint32_t> kMaxConnections{"an integer 1..4294967295", &ParseMaxConnections};
inline constexpr Rule<bool> kBool{"true or false", &ParseBool};
inline constexpr Rule<uint64_t> kDrainTimeout{"a duration like 10s or 1500ms",
                                              &ParseDrainTimeoutMs};
inline constexpr Rule<uint64_t> kMaxOutputBuffer{"a size like 64MiB", &ParseMaxOutputBuffer};
inline constexpr Rule<uint64_t> kMaxConnectionMemory{"a size like 64MiB, or auto",
                                                     &ParseMaxConnectionMemory};
inline constexpr Rule<uint64_t> kRamSize{"a size like 256MiB", &ParseRamSize};
inline constexpr Rule<uint64_t> kMaxItemSize{"a size like 1MiB", &ParseMaxItemSize};
inline constexpr Rule<std::string> kEviction{"one of s3fifo, lru", &ParseEviction};
inline constexpr Rule<std::string> kLogLevel{"one of error, warn, info, debug", &ParseLogLevel};
inline constexpr Rule<std::string> kSsdPath{"a file or block device path", &ParseSsdPath};
inline constexpr Rule<uint64_t> kSsdSize{"a size like 1GiB", &ParseSsdSize};
inline constexpr Rule<uint64_t> kRegionSize{"a size like 16MiB", &ParseRegionSize};
inline constexpr Rule<std::string> kCompression{"one of lz4, none", &ParseCompression};
inline constexpr Rule<std::string> kIoMode{"one of auto, io_uring, threadpool", &ParseIoMode};
inline constexpr Rule<std::string> kNetworkIo{"one of auto, io_uring, syscalls", &ParseNetworkIo};
inline constexpr Rule<std::string> kAdmission{"one of all, reaccessed, sketch", &ParseAdmission};
inline constexpr Rule<uint64_t> kWriteBudget{"bytes per second like 50MiB, or 0",
                                             &ParseWriteBudget};
inline constexpr Rule<uint32_t> kPromoteThreshold{"an integer 0..15", &ParsePromoteThreshold};
inline constexpr Rule<uint32_t> kLargeItemPercent{"an integer 1..100", &ParseLargeItemPercent};
inline constexpr Rule<std::string> kMetricsListen{"an IPv4 address and port like 127.0.0.1:9150",
                                                  &ParseMetricsListen};
inline constexpr Rule<std::string> kDistribution{"one of ketama, rendezvous, jump, modula",
                                                 &ParseDistribution};
inline constexpr Rule<uint64_t> kNearCacheTtl{"a duration like 60s, at most 30d, or 0",
                                              &ParseNearCacheTtlMs};
inline constexpr Rule<uint64_t> kUpstreamTimeout{"a duration like 200ms, 1ms..60s",
                                                 &ParseUpstreamTimeoutMs};
inline constexpr Rule<uint32_t> kConnectionsPerServer{"an integer 1..64",
                                                      &ParseConnectionsPerServer};
inline constexpr Rule<uint32_t> kDownAfter{"an integer 1..1000", &ParseDownAfter};
inline constexpr Rule<uint64_t> kRevalidateIdle{"a duration like 10s, at most 1h, or 0",
                                                &ParseRevalidateIdleMs};
inline constexpr Rule<uint32_t> kMaxInFlight{"an integer 1..1048576", &ParseMaxInFlight};
inline constexpr Rule<std::string> kDnsResolver{
    "an IP address and port like 10.96.0.10:53 or [fd00::a]:53, or \"\"", &ParseDnsResolver};
inline constexpr Rule<uint64_t> kMembershipRefresh{"a duration like 30s, 100ms..1h",
                                                   &ParseMembershipRefreshMs};
inline constexpr Rule<uint64_t> kRemovalGrace{"a duration like 30s, at most 1h, or 0",
                                              &ParseRemovalGraceMs};
inline constexpr Rule<uint64_t> kMegabytes{"megabytes (an integer >= 1)", &ParseMegabytes};

// Limits, exposed for tests and messages.
inline constexpr uint64_t kMinRamSize = uint64_t{1} << 20;          // 1MiB
inline constexpr uint64_t kMinMaxItemSize = uint64_t{1} << 10;      // 1KiB
inline constexpr uint64_t kMaxMaxItemSize = uint64_t{1} << 30;      // 1GiB
inline constexpr uint64_t kMinMaxOutputBuffer = uint64_t{1} << 10;  // 1KiB
inline constexpr uint64_t kMinMaxConnectionMemory = uint64_t{1} << 20;  // 1MiB
inline constexpr uint32_t kMaxWorkers = 256;
inline constexpr uint64_t kMinRegionSize = uint64_t{1} << 20;   // 1MiB
inline constexpr uint64_t kMaxRegionSize = uint64_t{64} << 20;  // 64MiB
inline constexpr uint64_t kDefaultRegionSize = uint64_t{16} << 20;
inline constexpr uint64_t kMinRegions = 4;
inline constexpr uint64_t kMaxNearCacheTtlMs = uint64_t{30} * 24 * 3600 * 1000;  // 30 days
inline constexpr uint32_t kMaxConnectionsPerServer = 64;

}  // namespace strata::config::internal
