#include "config/fields.h"

#include <arpa/inet.h>
#include <sys/un.h>

#include <cstdio>
#include <limits>

#include "common/server_spec.h"
#include "common/units.h"

namespace strata::config::internal {
namespace {

using common::Result;
using common::Status;

constexpr size_t kQuoteLimit = 64;

// The longest path a unix socket can bind: sun_path holds it plus its NUL.
constexpr size_t kMaxSocketPath = sizeof(sockaddr_un{}.sun_path) - 1;

// "expected <what>, got <quoted text>"
Status Expected(std::string_view what, std::string_view text) {
  return Status::InvalidArgument("expected " + std::string(what) + ", got " + Quote(text));
}

Status Invalid(std::string message) { return Status::InvalidArgument(std::move(message)); }

// An integer in [lo, hi], or the rule's "expected" message.
template <typename T>
Result<T> ParseBounded(std::string_view text, uint64_t lo, uint64_t hi, const char* expected) {
  std::optional<uint64_t> value = ParseDecimal(text);
  if (!value || *value < lo || *value > hi) return Expected(expected, text);
  return static_cast<T>(*value);
}

Result<std::string> ParseOneOf(std::string_view text, std::initializer_list<std::string_view> names,
                               const char* expected) {
  for (std::string_view name : names) {
    if (text == name) return std::string(text);
  }
  return Expected(expected, text);
}

}  // namespace

std::string Quote(std::string_view text) {
  bool cut = false;
  if (text.size() > kQuoteLimit) {
    size_t end = kQuoteLimit;
    // Do not split a UTF-8 sequence: back up over continuation bytes.
    while (end > 0 && (static_cast<unsigned char>(text[end]) & 0xC0) == 0x80) --end;
    text = text.substr(0, end);
    cut = true;
  }
  std::string out = "\"";
  for (char c : text) {
    auto byte = static_cast<unsigned char>(c);
    switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\t':
        out += "\\t";
        break;
      case '\r':
        out += "\\r";
        break;
      default:
        if (byte < 0x20 || byte == 0x7F) {
          char buf[5];
          std::snprintf(buf, sizeof(buf), "\\x%02X", byte);
          out += buf;
        } else {
          out += c;
        }
    }
  }
  out += cut ? "...\"" : "\"";
  return out;
}

std::string PathComponent(std::string_view key) {
  bool plain = !key.empty();
  for (char c : key) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '_' || c == '-';
    if (!ok) plain = false;
  }
  return plain ? std::string(key) : Quote(key);
}

std::optional<uint64_t> ParseDecimal(std::string_view text) {
  if (text.empty()) return std::nullopt;
  uint64_t value = 0;
  for (char c : text) {
    if (c < '0' || c > '9') return std::nullopt;
    auto digit = static_cast<uint64_t>(c - '0');
    if (value > (std::numeric_limits<uint64_t>::max() - digit) / 10) return std::nullopt;
    value = value * 10 + digit;
  }
  return value;
}

Result<std::string> ParseListen(std::string_view text) {
  if (text == "localhost") return std::string(text);
  // c_str() would stop at an embedded NUL and accept "127.0.0.1\0junk".
  if (text.find('\0') == std::string_view::npos) {
    std::string address(text);
    unsigned char buf[sizeof(in6_addr)];
    if (inet_pton(AF_INET, address.c_str(), buf) == 1 ||
        inet_pton(AF_INET6, address.c_str(), buf) == 1) {
      return address;
    }
  }
  return Expected(kListen.expected, text);
}

Result<uint16_t> ParsePort(std::string_view text) {
  return ParseBounded<uint16_t>(text, 0, 65535, kPort.expected);
}

Result<std::string> ParseUnixSocket(std::string_view text) {
  if (text.empty()) return Expected(kUnixSocket.expected, text);
  if (text.find('\0') != std::string_view::npos) {
    return Invalid("socket path contains a NUL byte: " + Quote(text));
  }
  if (text.size() > kMaxSocketPath) {
    return Invalid("socket path is " + std::to_string(text.size()) + " bytes, longer than the " +
                   std::to_string(kMaxSocketPath) + " a unix socket allows: " + Quote(text));
  }
  return std::string(text);
}

Result<uint32_t> ParseUnixSocketMode(std::string_view text) {
  std::string_view digits = text;
  if (digits.starts_with("0o") || digits.starts_with("0O")) digits.remove_prefix(2);
  if (digits.empty()) return Expected(kUnixSocketMode.expected, text);
  uint32_t mode = 0;
  for (char c : digits) {
    if (c < '0' || c > '7') return Expected(kUnixSocketMode.expected, text);
    mode = mode * 8 + static_cast<uint32_t>(c - '0');
    if (mode > 0777) return Expected(kUnixSocketMode.expected, text);
  }
  return mode;
}

Result<uint32_t> ParseWorkers(std::string_view text) {
  return ParseBounded<uint32_t>(text, 0, kMaxWorkers, kWorkers.expected);
}

Result<uint32_t> ParseMaxConnections(std::string_view text) {
  return ParseBounded<uint32_t>(text, 1, std::numeric_limits<uint32_t>::max(),
                                kMaxConnections.expected);
}

Result<bool> ParseBool(std::string_view text) {
  // YAML 1.2's core schema spellings; "yes", "on", "1" are rejected on purpose.
  if (text == "true" || text == "True" || text == "TRUE") return true;
  if (text == "false" || text == "False" || text == "FALSE") return false;
  return Expected(kBool.expected, text);
}

Result<uint64_t> ParseDrainTimeoutMs(std::string_view text) {
  std::optional<uint64_t> ms = common::ParseDurationMs(text);
  if (!ms) return Expected(kDrainTimeout.expected, text);
  return *ms;
}

Result<uint64_t> ParseMaxOutputBuffer(std::string_view text) {
  std::optional<uint64_t> bytes = common::ParseSize(text);
  if (!bytes) return Expected(kMaxOutputBuffer.expected, text);
  if (*bytes < kMinMaxOutputBuffer) {
    return Invalid("must be at least " + common::FormatSize(kMinMaxOutputBuffer) + ", got " +
                   Quote(text));
  }
  return *bytes;
}

Result<uint64_t> ParseMaxConnectionMemory(std::string_view text) {
  if (text == "auto") return uint64_t{0};
  std::optional<uint64_t> bytes = common::ParseSize(text);
  if (!bytes) return Expected(kMaxConnectionMemory.expected, text);
  if (*bytes < kMinMaxConnectionMemory) {
    return Invalid("must be at least " + common::FormatSize(kMinMaxConnectionMemory) +
                   " (or auto), got " + Quote(text));
  }
  return *bytes;
}

Result<uint64_t> ParseRamSize(std::string_view text) {
  std::optional<uint64_t> bytes = common::ParseSize(text);
  if (!bytes) return Expected(kRamSize.expected, text);
  if (*bytes < kMinRamSize) {
    return Invalid("must be at least " + common::FormatSize(kMinRamSize) + ", got " + Quote(text));
  }
  return *bytes;
}

Result<uint64_t> ParseMaxItemSize(std::string_view text) {
  std::optional<uint64_t> bytes = common::ParseSize(text);
  if (!bytes) return Expected(kMaxItemSize.expected, text);
  if (*bytes < kMinMaxItemSize || *bytes > kMaxMaxItemSize) {
    return Invalid("must be between " + common::FormatSize(kMinMaxItemSize) + " and " +
                   common::FormatSize(kMaxMaxItemSize) + ", got " + Quote(text));
  }
  return *bytes;
}

Result<std::string> ParseEviction(std::string_view text) {
  return ParseOneOf(text, {"s3fifo", "lru"}, kEviction.expected);
}

Result<std::string> ParseSsdPath(std::string_view text) {
  if (text.empty() || text.find('\0') != std::string_view::npos) {
    return Expected(kSsdPath.expected, text);
  }
  return std::string(text);
}

Result<uint64_t> ParseSsdSize(std::string_view text) {
  std::optional<uint64_t> bytes = common::ParseSize(text);
  if (!bytes || *bytes == 0) return Expected(kSsdSize.expected, text);
  if (*bytes % 4096 != 0) return Invalid("must be a multiple of 4KiB, got " + Quote(text));
  return *bytes;
}

Result<uint64_t> ParseRegionSize(std::string_view text) {
  std::optional<uint64_t> bytes = common::ParseSize(text);
  if (!bytes) return Expected(kRegionSize.expected, text);
  if (*bytes < kMinRegionSize || *bytes > kMaxRegionSize || *bytes % 4096 != 0) {
    return Invalid("must be a multiple of 4KiB between " + common::FormatSize(kMinRegionSize) +
                   " and " + common::FormatSize(kMaxRegionSize) + ", got " + Quote(text));
  }
  return *bytes;
}

Result<std::string> ParseCompression(std::string_view text) {
  return ParseOneOf(text, {"lz4", "none"}, kCompression.expected);
}

Result<std::string> ParseIoMode(std::string_view text) {
  return ParseOneOf(text, {"auto", "io_uring", "threadpool"}, kIoMode.expected);
}

Result<std::string> ParseNetworkIo(std::string_view text) {
  return ParseOneOf(text, {"auto", "io_uring", "syscalls"}, kNetworkIo.expected);
}

Result<std::string> ParseAdmission(std::string_view text) {
  return ParseOneOf(text, {"all", "reaccessed", "sketch"}, kAdmission.expected);
}

Result<uint64_t> ParseWriteBudget(std::string_view text) {
  std::optional<uint64_t> bytes = common::ParseSize(text);
  if (!bytes) return Expected(kWriteBudget.expected, text);
  return *bytes;
}

Result<uint32_t> ParsePromoteThreshold(std::string_view text) {
  // The sketch's counters saturate at 15.
  return ParseBounded<uint32_t>(text, 0, 15, kPromoteThreshold.expected);
}

Result<uint32_t> ParseLargeItemPercent(std::string_view text) {
  return ParseBounded<uint32_t>(text, 1, 100, kLargeItemPercent.expected);
}

Result<std::string> ParseLogLevel(std::string_view text) {
  return ParseOneOf(text, {"error", "warn", "info", "debug"}, kLogLevel.expected);
}

Result<std::string> ParseMetricsListen(std::string_view text) {
  const size_t colon = text.rfind(':');
  if (colon != std::string_view::npos && colon > 0 && text.find('\0') == std::string_view::npos) {
    const std::string host(text.substr(0, colon));
    std::optional<uint64_t> port = ParseDecimal(text.substr(colon + 1));
    unsigned char buf[sizeof(in_addr)];
    if (port && *port <= 65535 &&
        (host == "localhost" || inet_pton(AF_INET, host.c_str(), buf) == 1)) {
      return std::string(text);
    }
  }
  return Expected(kMetricsListen.expected, text);
}

Result<std::string> ParseDistribution(std::string_view text) {
  return ParseOneOf(text, {"ketama", "rendezvous", "jump", "modula"}, kDistribution.expected);
}

Result<uint64_t> ParseNearCacheTtlMs(std::string_view text) {
  std::optional<uint64_t> ms = common::ParseDurationMs(text);
  if (!ms) return Expected(kNearCacheTtl.expected, text);
  if (*ms > kMaxNearCacheTtlMs) return Invalid("must be at most 30d, got " + Quote(text));
  return *ms;
}

Result<uint64_t> ParseUpstreamTimeoutMs(std::string_view text) {
  std::optional<uint64_t> ms = common::ParseDurationMs(text);
  if (!ms) return Expected(kUpstreamTimeout.expected, text);
  if (*ms < 1 || *ms > 60'000) return Invalid("must be 1ms..60s, got " + Quote(text));
  return *ms;
}

Result<uint32_t> ParseConnectionsPerServer(std::string_view text) {
  return ParseBounded<uint32_t>(text, 1, kMaxConnectionsPerServer, kConnectionsPerServer.expected);
}

Result<uint32_t> ParseDownAfter(std::string_view text) {
  return ParseBounded<uint32_t>(text, 1, 1000, kDownAfter.expected);
}

Result<uint64_t> ParseRevalidateIdleMs(std::string_view text) {
  std::optional<uint64_t> ms = common::ParseDurationMs(text);
  if (!ms) return Expected(kRevalidateIdle.expected, text);
  if (*ms > 3'600'000) return Invalid("must be at most 1h, got " + Quote(text));
  return *ms;
}

Result<uint32_t> ParseMaxInFlight(std::string_view text) {
  return ParseBounded<uint32_t>(text, 1, 1u << 20, kMaxInFlight.expected);
}

Result<std::string> ParseDnsResolver(std::string_view text) {
  if (text.empty()) return std::string();
  Result<common::ServerSpec> spec = common::ParseServerSpec(text);
  if (spec.ok() && spec->weight == 1 && spec->name.empty() &&
      std::string_view(text).find(':') != std::string_view::npos) {
    unsigned char buf[sizeof(in6_addr)];
    if (inet_pton(AF_INET, spec->host.c_str(), buf) == 1 ||
        inet_pton(AF_INET6, spec->host.c_str(), buf) == 1) {
      return spec->Address();
    }
  }
  return Expected(kDnsResolver.expected, text);
}

Result<uint64_t> ParseMembershipRefreshMs(std::string_view text) {
  std::optional<uint64_t> ms = common::ParseDurationMs(text);
  if (!ms) return Expected(kMembershipRefresh.expected, text);
  if (*ms < 100 || *ms > 3'600'000) return Invalid("must be 100ms..1h, got " + Quote(text));
  return *ms;
}

Result<uint64_t> ParseRemovalGraceMs(std::string_view text) {
  std::optional<uint64_t> ms = common::ParseDurationMs(text);
  if (!ms) return Expected(kRemovalGrace.expected, text);
  if (*ms > 3'600'000) return Invalid("must be at most 1h, got " + Quote(text));
  return *ms;
}

Result<uint64_t> ParseMegabytes(std::string_view text) {
  std::optional<uint64_t> mb = ParseDecimal(text);
  constexpr uint64_t kMaxMb = std::numeric_limits<uint64_t>::max() >> 20;
  if (!mb || *mb < 1 || *mb > kMaxMb) return Expected(kMegabytes.expected, text);
  return *mb << 20;
}

}  // namespace strata::config::internal
