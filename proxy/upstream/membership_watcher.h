// MembershipWatcher: keeps the upstream pool's membership (membership.h)
// up to date from its sources (common/member_source.h) and hands each new
// snapshot to the workers.
//
// Static entries never change. A `file:` source is re-read every
// `file_refresh` (polling, not inotify: Kubernetes updates a mounted
// ConfigMap by swapping a `..data` symlink, which an inotify watch on the
// file's path never sees, and polling a small file costs nothing); a
// `dns+` or `dnssrv+` source is re-resolved every `dns_refresh` with
// c-ares (dns_client.h). A read or lookup that fails, or gives an empty
// list, keeps that source's last good list: it is logged (when the reason
// changes) and counted (`failures`). When the merged list changes, the
// watcher publishes a new snapshot (MembershipTracker: order, removal
// grace) and calls `on_change`; each worker then applies current() to its
// Pool. A member that left is kept `leaving` for `removal_grace`, then the
// watcher publishes the snapshot without it.
//
// All of this runs on the watcher's own thread (started only when a source
// is dynamic): file reads, getaddrinfo for the host names of static and
// file entries (once per name), DNS queries. No worker loop ever waits.
//
// Thread safety: current() and figures() may be called from any thread;
// Start(), Watch() and Stop() from the thread that owns the watcher.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "common/member_source.h"
#include "common/mutex.h"
#include "common/status.h"
#include "proxy/upstream/membership.h"
#include "proxy/upstream/placement.h"

namespace strata::upstream {

inline constexpr uint64_t kDefaultDnsRefreshMs = 30'000;
inline constexpr uint64_t kDefaultFileRefreshMs = 5'000;
inline constexpr uint64_t kDefaultRemovalGraceMs = 30'000;

class DnsClient;

// Reads and parses a server file (common::ParseServerFile()): the list, or
// InvalidArgument/IoError with the reason ("cannot read: No such file or
// directory", "line 3: ...", "lists no server"). Blocks on the file.
common::Result<std::vector<common::ServerSpec>> ReadServerFile(const std::string& path);

struct MembershipOptions {
  std::vector<common::MemberSource> sources;  // every upstream.servers entry, in order
  Distribution distribution = Distribution::kKetama;
  std::string dns_resolver;  // "ip:port"; empty: /etc/resolv.conf
  uint64_t dns_refresh_ms = kDefaultDnsRefreshMs;
  uint64_t file_refresh_ms = kDefaultFileRefreshMs;
  uint64_t removal_grace_ms = kDefaultRemovalGraceMs;
};

// One dynamic source's figures, for metrics and `stats`.
struct SourceFigures {
  std::string source;            // the entry as written
  uint64_t members = 0;          // in its last good list
  double last_success_unix = 0;  // the last read or lookup that gave a list; 0: never
  uint64_t failures = 0;         // reads or lookups that failed or gave nothing
};

class MembershipWatcher {
 public:
  // Reads every source once. InvalidArgument ("upstream.servers[i]: ...")
  // for a static host that does not resolve, a file that cannot be read,
  // does not parse, or lists nothing, or a pool the distribution refuses.
  // A DNS source whose lookup fails or is empty starts empty (logged,
  // counted): the pool may start with no member, every request failing,
  // until a lookup answers.
  static common::Result<std::unique_ptr<MembershipWatcher>> Create(MembershipOptions options);
  ~MembershipWatcher();
  MembershipWatcher(const MembershipWatcher&) = delete;
  MembershipWatcher& operator=(const MembershipWatcher&) = delete;

  // Publishes the first snapshot, with counters for `workers`. Once.
  void Start(size_t workers);
  // Starts the thread when a source is dynamic; `on_change` is called on it
  // after each later snapshot. Once, after Start().
  void Watch(std::function<void()> on_change);
  // Stops and joins the thread (idempotent). current() stays valid.
  void Stop();

  // The latest snapshot (null before Start()).
  std::shared_ptr<const Membership> current() const;
  // The dynamic sources' figures, in entry order.
  std::vector<SourceFigures> figures() const;
  bool dynamic() const { return dynamic_; }

 private:
  struct Source;

  explicit MembershipWatcher(MembershipOptions options);
  // Reads one source; true when its list changed.
  bool Refresh(Source& s, bool startup, std::string* error);
  // Builds and publishes a snapshot of the tracker's ring; false (logged,
  // counted on no source) when the placement refuses it.
  bool Publish();
  common::Result<ResolvedServer> ResolveAddress(const common::ServerSpec& spec);
  std::vector<common::ServerSpec> Listed() const;
  void Run();

  MembershipOptions options_;
  bool dynamic_ = false;
  std::vector<std::unique_ptr<Source>> sources_;
  MembershipTracker tracker_;
  size_t workers_ = 1;
  uint64_t generation_ = 0;
  std::map<std::string, ResolvedServer> resolved_;  // by "host:port" text
  std::function<void()> on_change_;
  std::unique_ptr<DnsClient> dns_;  // made at the first DNS lookup
  std::thread thread_;

  mutable common::Mutex mu_;
  common::CondVar cv_;
  bool stop_ GUARDED_BY(mu_) = false;
  std::shared_ptr<const Membership> current_ GUARDED_BY(mu_);
};

}  // namespace strata::upstream
