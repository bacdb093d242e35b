// One server of an upstream memcached pool as the configuration names it:
// host, port, weight and (twemproxy's) explicit name, parsed from one
// `upstream.servers` entry. It lives in common/ because both config/ (which
// validates the entries) and proxy/upstream/ (which places keys on them) read
// it, and config/ may not depend on proxy/.
//
// Accepted entries (one server each):
//   host:port                 10.0.0.1:11211, memcached-0.mc:11211
//   host:port:weight          10.0.0.1:11211:2 (libmemcached, pylibmc)
//   host:port:weight name     10.0.0.1:11211:2 cache-a (twemproxy)
//   host:port name            the same with weight 1
// host is a DNS name or IPv4 literal ([A-Za-z0-9._-], at most 253 bytes) or
// an IPv6 literal in brackets ([::1]:11211); port is 1..65535; weight is
// 1..65535; name is 1..255 printable ASCII bytes without spaces, separated
// from the address by spaces or tabs. The host is kept as written (no DNS
// lookup, no case folding): the key distributions hash it as text.
//
// Thread safety: pure functions; ServerSpec is a plain value.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "common/status.h"

namespace strata::common {

inline constexpr uint16_t kMemcachedDefaultPort = 11211;
inline constexpr uint32_t kMaxServerWeight = 65535;

struct ServerSpec {
  std::string host;  // as written; an IPv6 literal without its brackets
  uint16_t port = kMemcachedDefaultPort;
  uint32_t weight = 1;
  std::string name;  // twemproxy's explicit server name; empty if none

  // "host:port", with an IPv6 host in brackets ("[::1]:11211").
  std::string Address() const;
  bool operator==(const ServerSpec&) const = default;
};

// Parses one entry (see above). Returns the spec, or InvalidArgument with a
// message that says what was expected and what was found, e.g.
//   port must be 1..65535, got "0" in "10.0.0.1:0"
// (callers put the setting's path in front).
Result<ServerSpec> ParseServerSpec(std::string_view text);

}  // namespace strata::common
