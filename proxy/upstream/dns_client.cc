#include "proxy/upstream/dns_client.h"

#include <ares.h>
#include <arpa/inet.h>
#include <arpa/nameser.h>
#include <netinet/in.h>
#include <poll.h>

#include <algorithm>
#include <mutex>

namespace strata::upstream {
namespace {

std::once_flag g_ares_init;

common::Status LookupError(const std::string& what, int status) {
  const std::string msg = what + ": " + ares_strerror(status);
  if (status == ARES_ENODATA || status == ARES_ENOTFOUND) return common::Status::NotFound(msg);
  return common::Status::Unavailable(msg);
}

struct HostResult {
  bool done = false;
  int status = ARES_SUCCESS;
  std::vector<std::string> addrs;
};

void OnAddrInfo(void* arg, int status, int, ares_addrinfo* res) {
  auto* out = static_cast<HostResult*>(arg);
  out->done = true;
  out->status = status;
  if (status != ARES_SUCCESS || res == nullptr) {
    if (res != nullptr) ares_freeaddrinfo(res);
    return;
  }
  for (ares_addrinfo_node* n = res->nodes; n != nullptr; n = n->ai_next) {
    char text[INET6_ADDRSTRLEN] = {};
    if (n->ai_family == AF_INET) {
      inet_ntop(AF_INET, &reinterpret_cast<sockaddr_in*>(n->ai_addr)->sin_addr, text, sizeof(text));
    } else if (n->ai_family == AF_INET6) {
      inet_ntop(AF_INET6, &reinterpret_cast<sockaddr_in6*>(n->ai_addr)->sin6_addr, text,
                sizeof(text));
    } else {
      continue;
    }
    if (std::find(out->addrs.begin(), out->addrs.end(), text) == out->addrs.end()) {
      out->addrs.emplace_back(text);
    }
  }
  ares_freeaddrinfo(res);
}

struct SrvResult {
  bool done = false;
  int status = ARES_SUCCESS;
  std::vector<SrvTarget> targets;
};

void OnSrv(void* arg, int status, int, unsigned char* abuf, int alen) {
  auto* out = static_cast<SrvResult*>(arg);
  out->done = true;
  out->status = status;
  if (status != ARES_SUCCESS) return;
  ares_srv_reply* srv = nullptr;
  const int rc = ares_parse_srv_reply(abuf, alen, &srv);
  if (rc != ARES_SUCCESS) {
    out->status = rc;
    return;
  }
  for (ares_srv_reply* r = srv; r != nullptr; r = r->next) {
    out->targets.push_back(SrvTarget{r->host, r->port});
  }
  ares_free_data(srv);
}

}  // namespace

struct DnsClient::Channel {
  ares_channel channel = nullptr;
  ~Channel() {
    if (channel != nullptr) ares_destroy(channel);
  }
};

common::Result<std::unique_ptr<DnsClient>> DnsClient::Create(const std::string& server,
                                                             uint32_t timeout_ms) {
  std::call_once(g_ares_init, [] { ares_library_init(ARES_LIB_INIT_ALL); });
  auto ch = std::make_unique<Channel>();
  ares_options opts{};
  opts.timeout = static_cast<int>(std::max<uint32_t>(timeout_ms, 1));
  opts.tries = 2;
  const int rc = ares_init_options(&ch->channel, &opts, ARES_OPT_TIMEOUTMS | ARES_OPT_TRIES);
  if (rc != ARES_SUCCESS) {
    return common::Status::Internal(std::string("c-ares: ") + ares_strerror(rc));
  }
  if (!server.empty()) {
    const int set = ares_set_servers_ports_csv(ch->channel, server.c_str());
    if (set != ARES_SUCCESS) {
      return common::Status::InvalidArgument("DNS server " + server + ": " + ares_strerror(set));
    }
  }
  return std::unique_ptr<DnsClient>(new DnsClient(std::move(ch)));
}

DnsClient::DnsClient(std::unique_ptr<Channel> channel) : channel_(std::move(channel)) {}

DnsClient::~DnsClient() = default;

void DnsClient::Wait() {
  ares_channel ch = channel_->channel;
  for (;;) {
    ares_socket_t socks[ARES_GETSOCK_MAXNUM];
    const int bits = ares_getsock(ch, socks, ARES_GETSOCK_MAXNUM);
    pollfd fds[ARES_GETSOCK_MAXNUM];
    nfds_t n = 0;
    for (int i = 0; i < ARES_GETSOCK_MAXNUM; ++i) {
      short events = 0;
      if (ARES_GETSOCK_READABLE(bits, i)) events |= POLLIN;
      if (ARES_GETSOCK_WRITABLE(bits, i)) events |= POLLOUT;
      if (events == 0) continue;
      fds[n++] = pollfd{socks[i], events, 0};
    }
    if (n == 0) return;  // nothing pending
    timeval tv{};
    timeval* tvp = ares_timeout(ch, nullptr, &tv);
    const int ms = tvp == nullptr ? 1000 : static_cast<int>(tv.tv_sec * 1000 + tv.tv_usec / 1000);
    const int ready = poll(fds, n, std::max(ms, 1));
    if (ready <= 0) {
      ares_process_fd(ch, ARES_SOCKET_BAD, ARES_SOCKET_BAD);  // timeouts
      continue;
    }
    for (nfds_t i = 0; i < n; ++i) {
      const ares_socket_t r =
          (fds[i].revents & (POLLIN | POLLERR | POLLHUP)) ? fds[i].fd : ARES_SOCKET_BAD;
      const ares_socket_t w = (fds[i].revents & POLLOUT) ? fds[i].fd : ARES_SOCKET_BAD;
      if (r != ARES_SOCKET_BAD || w != ARES_SOCKET_BAD) ares_process_fd(ch, r, w);
    }
  }
}

common::Result<std::vector<std::string>> DnsClient::ResolveHost(const std::string& host) {
  HostResult result;
  ares_addrinfo_hints hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  ares_getaddrinfo(channel_->channel, host.c_str(), nullptr, &hints, OnAddrInfo, &result);
  Wait();
  if (!result.done) return common::Status::Unavailable(host + ": no answer");
  if (result.status != ARES_SUCCESS) return LookupError(host, result.status);
  if (result.addrs.empty()) return common::Status::NotFound(host + ": no address");
  return result.addrs;
}

common::Result<std::vector<SrvTarget>> DnsClient::ResolveSrv(const std::string& name) {
  SrvResult result;
  ares_search(channel_->channel, name.c_str(), ns_c_in, ns_t_srv, OnSrv, &result);
  Wait();
  if (!result.done) return common::Status::Unavailable(name + ": no answer");
  if (result.status != ARES_SUCCESS) return LookupError(name + " (SRV)", result.status);
  if (result.targets.empty()) return common::Status::NotFound(name + ": no SRV record");
  return result.targets;
}

}  // namespace strata::upstream
