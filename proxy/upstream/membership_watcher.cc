#include "proxy/upstream/membership_watcher.h"

#include <fcntl.h>
#include <netdb.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <iterator>
#include <utility>

#include "common/log.h"
#include "proxy/upstream/dns_client.h"

namespace strata::upstream {
namespace {

using common::Log;
using common::LogLevel;
using common::MemberSource;
using common::ServerSpec;

constexpr uint32_t kDnsTimeoutMs = 1000;

uint64_t NowMs() {
  return static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::milliseconds>(
                                   std::chrono::steady_clock::now().time_since_epoch())
                                   .count());
}

double UnixNow() {
  return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
}

// The whole file, at most kMaxServerFileBytes (+1 to tell it is larger).
common::Result<std::string> ReadSmallFile(const std::string& path) {
  const int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return common::Status::IoError(std::string("cannot read: ") + std::strerror(errno));
  std::string out;
  char buf[16384];
  for (;;) {
    const ssize_t n = read(fd, buf, sizeof(buf));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      const int err = errno;
      close(fd);
      return common::Status::IoError(std::string("cannot read: ") + std::strerror(err));
    }
    if (n == 0) break;
    out.append(buf, static_cast<size_t>(n));
    if (out.size() > common::kMaxServerFileBytes) break;
  }
  close(fd);
  return out;
}

}  // namespace

common::Result<std::vector<ServerSpec>> ReadServerFile(const std::string& path) {
  common::Result<std::string> text = ReadSmallFile(path);
  if (!text.ok()) return text.status();
  common::Result<std::vector<ServerSpec>> parsed = common::ParseServerFile(*text);
  if (!parsed.ok()) return parsed.status();
  if (parsed->empty()) return common::Status::InvalidArgument("lists no server");
  return parsed;
}

struct MembershipWatcher::Source {
  MemberSource spec;
  std::string path;              // "upstream.servers[i]"
  std::vector<ServerSpec> good;  // the last good list
  std::string last_error;        // the last failure's message, logged once
  uint64_t due_ms = 0;           // the next refresh
  uint64_t interval_ms = 0;
  std::atomic<uint64_t> members{0};
  std::atomic<double> last_success{0};
  std::atomic<uint64_t> failures{0};
};

MembershipWatcher::MembershipWatcher(MembershipOptions options)
    : options_(std::move(options)), tracker_(options_.removal_grace_ms, false) {
  for (const MemberSource& s : options_.sources) dynamic_ |= s.dynamic();
  tracker_ = MembershipTracker(options_.removal_grace_ms, dynamic_);
}

MembershipWatcher::~MembershipWatcher() { Stop(); }

common::Result<std::unique_ptr<MembershipWatcher>> MembershipWatcher::Create(
    MembershipOptions options) {
  std::unique_ptr<MembershipWatcher> w(new MembershipWatcher(std::move(options)));
  for (size_t i = 0; i < w->options_.sources.size(); ++i) {
    auto s = std::make_unique<Source>();
    s->spec = w->options_.sources[i];
    s->path = "upstream.servers[" + std::to_string(i) + "]";
    switch (s->spec.kind) {
      case MemberSource::Kind::kStatic:
        s->good.push_back(s->spec.server);
        break;
      case MemberSource::Kind::kFile:
        s->interval_ms = w->options_.file_refresh_ms;
        break;
      case MemberSource::Kind::kDns:
      case MemberSource::Kind::kDnsSrv:
        s->interval_ms = w->options_.dns_refresh_ms;
        break;
    }
    w->sources_.push_back(std::move(s));
  }
  for (auto& s : w->sources_) {
    if (!s->spec.dynamic()) continue;
    std::string error;
    w->Refresh(*s, /*startup=*/true, &error);
    if (!error.empty() && s->spec.kind == MemberSource::Kind::kFile) {
      return common::Status::InvalidArgument(s->path + ": " + s->spec.text + ": " + error);
    }
  }
  for (auto& s : w->sources_) {
    if (s->spec.dynamic()) continue;
    common::Result<ResolvedServer> r = w->ResolveAddress(s->spec.server);
    if (!r.ok()) return common::Status::InvalidArgument(s->path + ": " + r.status().message());
  }
  w->tracker_.Update(w->Listed(), NowMs());
  std::vector<ServerSpec> specs;
  for (const auto& e : w->tracker_.ring()) specs.push_back(e.spec);
  if (!specs.empty()) {
    common::Result<Placement> p =
        Placement::Build(w->options_.distribution, specs, "upstream.servers");
    if (!p.ok()) return p.status();
  }
  return w;
}

std::vector<ServerSpec> MembershipWatcher::Listed() const {
  std::vector<ServerSpec> all;
  for (const auto& s : sources_) all.insert(all.end(), s->good.begin(), s->good.end());
  return all;
}

common::Result<ResolvedServer> MembershipWatcher::ResolveAddress(const ServerSpec& spec) {
  const std::string label = spec.Address();
  auto it = resolved_.find(label);
  if (it != resolved_.end()) return it->second;
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* res = nullptr;
  const std::string port = std::to_string(spec.port);
  const int rc = getaddrinfo(spec.host.c_str(), port.c_str(), &hints, &res);
  if (rc != 0 || res == nullptr) {
    if (res != nullptr) freeaddrinfo(res);
    return common::Status::Unavailable("upstream server " + label + ": " + gai_strerror(rc));
  }
  ResolvedServer server;
  server.label = label;
  std::memcpy(&server.addr, res->ai_addr, res->ai_addrlen);
  server.addr_len = res->ai_addrlen;
  freeaddrinfo(res);
  resolved_.emplace(label, server);
  return server;
}

bool MembershipWatcher::Refresh(Source& s, bool startup, std::string* error) {
  std::vector<ServerSpec> list;
  std::string why;
  if (s.spec.kind == MemberSource::Kind::kFile) {
    common::Result<std::vector<ServerSpec>> read = ReadServerFile(s.spec.target);
    if (!read.ok()) {
      why = read.status().message();
    } else {
      list = std::move(read).value();
    }
  } else {
    if (dns_ == nullptr) {
      common::Result<std::unique_ptr<DnsClient>> c =
          DnsClient::Create(options_.dns_resolver, kDnsTimeoutMs);
      if (!c.ok()) {
        why = c.status().message();
      } else {
        dns_ = std::move(c).value();
      }
    }
    if (dns_ != nullptr && s.spec.kind == MemberSource::Kind::kDns) {
      common::Result<std::vector<std::string>> addrs = dns_->ResolveHost(s.spec.target);
      if (!addrs.ok()) {
        why = addrs.status().message();
      } else {
        for (const std::string& ip : *addrs) list.push_back(ServerSpec{ip, s.spec.port, 1, {}});
      }
    } else if (dns_ != nullptr) {
      common::Result<std::vector<SrvTarget>> targets = dns_->ResolveSrv(s.spec.target);
      if (!targets.ok()) {
        why = targets.status().message();
      } else {
        for (const SrvTarget& t : *targets) {
          common::Result<std::vector<std::string>> addrs = dns_->ResolveHost(t.host);
          if (!addrs.ok()) {
            why = addrs.status().message();
            list.clear();
            break;
          }
          for (const std::string& ip : *addrs) list.push_back(ServerSpec{ip, t.port, 1, {}});
        }
      }
    }
    // Each address once, in natural order (the ring sorts anyway).
    std::sort(list.begin(), list.end(),
              [](const ServerSpec& a, const ServerSpec& b) { return a.Address() < b.Address(); });
    list.erase(std::unique(list.begin(), list.end(),
                           [](const ServerSpec& a, const ServerSpec& b) {
                             return a.Address() == b.Address();
                           }),
               list.end());
    if (why.empty() && list.empty()) why = "no address";
    if (list.size() > common::kMaxMembers) {
      why = "more than " + std::to_string(common::kMaxMembers) + " addresses";
      list.clear();
    }
  }
  if (!why.empty()) {
    s.failures.fetch_add(1, std::memory_order_relaxed);
    if (why != s.last_error || startup) {
      Log(LogLevel::kWarn, "%s: %s: %s; %s", s.path.c_str(), s.spec.text.c_str(), why.c_str(),
          startup
              ? "it starts with no server"
              : ("keeping its last list (" + std::to_string(s.good.size()) + " servers)").c_str());
    }
    s.last_error = why;
    *error = why;
    return false;
  }
  if (!s.last_error.empty() && !startup) {
    Log(LogLevel::kInfo, "%s: %s: read again (%zu servers)", s.path.c_str(), s.spec.text.c_str(),
        list.size());
  }
  s.last_error.clear();
  s.last_success.store(UnixNow(), std::memory_order_relaxed);
  s.members.store(list.size(), std::memory_order_relaxed);
  if (list == s.good) return false;
  s.good = std::move(list);
  return true;
}

bool MembershipWatcher::Publish() {
  auto m = std::make_shared<Membership>();
  std::shared_ptr<const Membership> before = current();
  std::map<std::string, std::shared_ptr<MemberCounters>> kept;
  if (before != nullptr) {
    for (const Member& old : before->members) kept.emplace(old.resolved.label, old.counters);
  }
  std::vector<ServerSpec> specs;
  for (const MembershipTracker::Entry& e : tracker_.ring()) {
    Member mem;
    mem.spec = e.spec;
    mem.leaving = e.leaving;
    common::Result<ResolvedServer> r = ResolveAddress(e.spec);
    if (r.ok()) {
      mem.resolved = *r;
    } else {
      // Kept in the ring (its keys do not move) but unreachable: each
      // connect fails, so the pools mark it down and probe it.
      Log(LogLevel::kWarn, "%s; its keys fail until it resolves", r.status().message().c_str());
      mem.resolved.label = e.spec.Address();
    }
    auto it = kept.find(mem.resolved.label);
    mem.counters = it != kept.end() ? it->second : std::make_shared<MemberCounters>(workers_);
    specs.push_back(e.spec);
    m->members.push_back(std::move(mem));
  }
  if (!specs.empty()) {
    common::Result<Placement> p = Placement::Build(options_.distribution, specs, "servers");
    if (!p.ok()) {
      Log(LogLevel::kError, "upstream membership: %s; keeping the previous list",
          p.status().message().c_str());
      return false;
    }
    m->placement = std::make_shared<const Placement>(std::move(p).value());
  }
  m->generation = ++generation_;
  // Addresses no longer in the ring are forgotten (DNS churns pod IPs; a
  // host name that comes back is looked up again).
  for (auto it = resolved_.begin(); it != resolved_.end();) {
    const bool used = std::any_of(m->members.begin(), m->members.end(), [&](const Member& mem) {
      return mem.resolved.label == it->first;
    });
    it = used ? std::next(it) : resolved_.erase(it);
  }
  size_t leaving = 0;
  for (const Member& mem : m->members) leaving += mem.leaving;
  if (before != nullptr) {
    Log(LogLevel::kInfo, "upstream membership: %zu servers (%zu leaving)", m->members.size(),
        leaving);
  }
  common::MutexLock lock(&mu_);
  current_ = std::move(m);
  return true;
}

void MembershipWatcher::Start(size_t workers) {
  workers_ = std::max<size_t>(workers, 1);
  Publish();
}

void MembershipWatcher::Watch(std::function<void()> on_change) {
  on_change_ = std::move(on_change);
  if (!dynamic_ || thread_.joinable()) return;
  const uint64_t now = NowMs();
  for (auto& s : sources_) s->due_ms = now + s->interval_ms;
  thread_ = std::thread([this] { Run(); });
}

void MembershipWatcher::Stop() {
  {
    common::MutexLock lock(&mu_);
    stop_ = true;
  }
  cv_.NotifyAll();
  if (thread_.joinable()) thread_.join();
}

std::shared_ptr<const Membership> MembershipWatcher::current() const {
  common::MutexLock lock(&mu_);
  return current_;
}

std::vector<SourceFigures> MembershipWatcher::figures() const {
  std::vector<SourceFigures> out;
  for (const auto& s : sources_) {
    if (!s->spec.dynamic()) continue;
    out.push_back(SourceFigures{s->spec.text, s->members.load(std::memory_order_relaxed),
                                s->last_success.load(std::memory_order_relaxed),
                                s->failures.load(std::memory_order_relaxed)});
  }
  return out;
}

void MembershipWatcher::Run() {
  for (;;) {
    {
      common::MutexLock lock(&mu_);
      if (stop_) return;
    }
    uint64_t now = NowMs();
    bool listed_changed = false;
    for (auto& s : sources_) {
      if (!s->spec.dynamic() || s->due_ms > now) continue;
      std::string error;
      listed_changed |= Refresh(*s, /*startup=*/false, &error);
      s->due_ms = NowMs() + s->interval_ms;
    }
    now = NowMs();
    const MembershipTracker previous = tracker_;
    bool ring_changed = false;
    if (listed_changed) ring_changed |= tracker_.Update(Listed(), now);
    ring_changed |= tracker_.Expire(now);
    if (ring_changed) {
      if (Publish()) {
        if (on_change_) on_change_();
      } else {
        tracker_ = previous;
      }
    }
    uint64_t wake = UINT64_MAX;
    for (const auto& s : sources_) {
      if (s->spec.dynamic()) wake = std::min(wake, s->due_ms);
    }
    if (std::optional<uint64_t> e = tracker_.NextExpiry()) wake = std::min(wake, *e);
    const auto deadline = std::chrono::steady_clock::time_point(std::chrono::milliseconds(wake));
    common::MutexLock lock(&mu_);
    while (!stop_ && std::chrono::steady_clock::now() < deadline) cv_.WaitUntil(mu_, deadline);
  }
}

}  // namespace strata::upstream
