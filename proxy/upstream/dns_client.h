// DnsClient: the lookups of the pool's DNS membership sources (dns+,
// dnssrv+; membership_watcher.h), made with c-ares, blocking the calling
// thread (the membership watcher's own, never a loop) for at most about
// `timeout_ms` per query.
//
// The DNS server is `server` ("ip:port", "[ipv6]:port") when given, else
// those of /etc/resolv.conf (with its search list and ndots, as the system
// resolver would use them: Kubernetes' short service names work).
//
// Thread safety: one thread at a time per DnsClient (c-ares channels are
// not shared).
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "common/status.h"

namespace strata::upstream {

struct SrvTarget {
  std::string host;  // the record's target name
  uint16_t port = 0;
};

class DnsClient {
 public:
  // InvalidArgument if `server` is not an address c-ares takes; Internal if
  // c-ares cannot start.
  static common::Result<std::unique_ptr<DnsClient>> Create(const std::string& server,
                                                           uint32_t timeout_ms);
  ~DnsClient();
  DnsClient(const DnsClient&) = delete;
  DnsClient& operator=(const DnsClient&) = delete;

  // The A and AAAA addresses of `host` as IP text (IPv6 without brackets),
  // each once, in the order c-ares returns them. An answer without address
  // is NotFound; a failed lookup (SERVFAIL, refused, timeout) Unavailable.
  common::Result<std::vector<std::string>> ResolveHost(const std::string& host);
  // The SRV records of `name`. No record is NotFound; a failed lookup
  // Unavailable.
  common::Result<std::vector<SrvTarget>> ResolveSrv(const std::string& name);

 private:
  struct Channel;
  explicit DnsClient(std::unique_ptr<Channel> channel);
  void Wait();

  std::unique_ptr<Channel> channel_;
};

}  // namespace strata::upstream
