// The YAML half of the config module: ParseYaml() and LoadFile(). The rules
// for each value live in fields.cc; the command line in flags.cc.
//
// yaml-cpp is used only to build the node tree; the walk below checks every
// key itself, because yaml-cpp 0.7 keeps both pairs of a duplicated key (and
// node["k"] silently returns the first one).

#include "config/config.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>
#include <yaml-cpp/eventhandler.h>
#include <yaml-cpp/yaml.h>

#include <cerrno>
#include <set>
#include <sstream>
#include <system_error>
#include <vector>

#include "common/units.h"
#include "config/fields.h"

namespace strata::config {
namespace {

using common::Result;
using common::Status;
using internal::Quote;
using internal::Rule;

// A config file larger than this is certainly a mistake (or /dev/zero).
constexpr size_t kMaxFileBytes = size_t{1} << 20;

// Path shown for problems with the document itself.
constexpr const char* kTopLevel = "top level";

// What a node is, for "expected X, got <this>".
std::string Describe(const YAML::Node& node) {
  switch (node.Type()) {
    case YAML::NodeType::Null:
      return "null";
    case YAML::NodeType::Scalar:
      return Quote(node.Scalar());
    case YAML::NodeType::Sequence:
      return "a sequence";
    case YAML::NodeType::Map:
      return "a map";
    case YAML::NodeType::Undefined:
      break;
  }
  return "nothing";
}

std::string Join(const std::string& parent, const std::string& key) {
  std::string component = internal::PathComponent(key);
  return parent.empty() ? component : parent + "." + component;
}

// Walks one YAML document into a Config, stopping at the first problem.
class Walker {
 public:
  explicit Walker(std::string origin) : origin_(std::move(origin)) {}

  Status Document(const YAML::Node& root, Config* config) {
    config_ = config;
    if (root.IsNull()) return Status::Ok();  // empty, or only comments
    if (!root.IsMap()) {
      return Error(kTopLevel, root.Mark(), "expected a map, got " + Describe(root));
    }
    Status s = ForEachKey(root, "", {"server", "tiers", "upstream", "metrics", "log"},
                          [this](const std::string& key, const std::string& path,
                                 const YAML::Node& k, const YAML::Node& v) -> Status {
                            if (key == "server") return Section(path, k, v, &Walker::Server);
                            if (key == "tiers") return Section(path, k, v, &Walker::Tiers);
                            if (key == "upstream") return Section(path, k, v, &Walker::Upstream);
                            if (key == "metrics") return Section(path, k, v, &Walker::Metrics);
                            return Section(path, k, v, &Walker::Log);
                          });
    if (!s.ok()) return s;
    s = CheckSsd();
    if (!s.ok()) return s;
    s = CheckUpstream();
    if (!s.ok()) return s;
    return CheckItemFitsRam();
  }

 private:
  using SectionFn = Status (Walker::*)(const std::string& path, const YAML::Node& map);

  // A section that must be a map; null (a key with nothing under it) is an
  // empty section.
  Status Section(const std::string& path, const YAML::Node& key, const YAML::Node& value,
                 SectionFn fn) {
    if (value.IsNull()) return Status::Ok();
    if (!value.IsMap()) return Error(path, key.Mark(), "expected a map, got " + Describe(value));
    return (this->*fn)(path, value);
  }

  Status Server(const std::string& path, const YAML::Node& map) {
    ServerConfig& s = config_->server;
    return ForEachKey(map, path,
                      {"listen", "port", "unix_socket", "unix_socket_mode", "workers",
                       "max_connections", "enable_shutdown", "drain_timeout", "max_output_buffer",
                       "max_connection_memory", "network_io"},
                      [&](const std::string& key, const std::string& p, const YAML::Node& k,
                          const YAML::Node& v) -> Status {
                        if (key == "listen") return Read(p, k, v, internal::kListen, &s.listen);
                        if (key == "port") return Read(p, k, v, internal::kPort, &s.port);
                        if (key == "unix_socket")
                          return Read(p, k, v, internal::kUnixSocket, &s.unix_socket);
                        if (key == "unix_socket_mode") {
                          return Read(p, k, v, internal::kUnixSocketMode, &s.unix_socket_mode);
                        }
                        if (key == "workers") return Read(p, k, v, internal::kWorkers, &s.workers);
                        if (key == "max_connections") {
                          return Read(p, k, v, internal::kMaxConnections, &s.max_connections);
                        }
                        if (key == "enable_shutdown")
                          return Read(p, k, v, internal::kBool, &s.enable_shutdown);
                        if (key == "drain_timeout") {
                          return Read(p, k, v, internal::kDrainTimeout, &s.drain_timeout_ms);
                        }
                        if (key == "network_io") {
                          return Read(p, k, v, internal::kNetworkIo, &s.network_io);
                        }
                        if (key == "max_connection_memory") {
                          return Read(p, k, v, internal::kMaxConnectionMemory,
                                      &s.max_connection_memory);
                        }
                        return Read(p, k, v, internal::kMaxOutputBuffer, &s.max_output_buffer);
                      });
  }

  Status Tiers(const std::string& path, const YAML::Node& map) {
    return ForEachKey(map, path, {"ram", "ssd"},
                      [this](const std::string& key, const std::string& p, const YAML::Node& k,
                             const YAML::Node& v) {
                        if (key == "ram") return Section(p, k, v, &Walker::Ram);
                        ssd_mark_ = k.Mark();
                        return Section(p, k, v, &Walker::Ssd);
                      });
  }

  Status Ssd(const std::string& path, const YAML::Node& map) {
    SsdConfig& d = config_->tiers.ssd;
    return ForEachKey(map, path,
                      {"path", "size", "region_size", "compression", "io", "admission",
                       "write_budget", "promote_threshold", "large_item_percent",
                       "demote_on_shutdown"},
                      [&](const std::string& key, const std::string& p, const YAML::Node& k,
                          const YAML::Node& v) -> Status {
                        if (key == "path") return Read(p, k, v, internal::kSsdPath, &d.path);
                        if (key == "size") return Read(p, k, v, internal::kSsdSize, &d.size);
                        if (key == "region_size") {
                          return Read(p, k, v, internal::kRegionSize, &d.region_size);
                        }
                        if (key == "compression") {
                          return Read(p, k, v, internal::kCompression, &d.compression);
                        }
                        if (key == "io") return Read(p, k, v, internal::kIoMode, &d.io);
                        if (key == "admission") {
                          return Read(p, k, v, internal::kAdmission, &d.admission);
                        }
                        if (key == "write_budget") {
                          return Read(p, k, v, internal::kWriteBudget, &d.write_budget);
                        }
                        if (key == "promote_threshold") {
                          return Read(p, k, v, internal::kPromoteThreshold, &d.promote_threshold);
                        }
                        if (key == "large_item_percent") {
                          return Read(p, k, v, internal::kLargeItemPercent,
                                      &d.large_item_percent);
                        }
                        return Read(p, k, v, internal::kBool, &d.demote_on_shutdown);
                      });
  }

  // The SSD tier needs a path and room for at least 4 regions.
  Status CheckSsd() {
    const SsdConfig& d = config_->tiers.ssd;
    bool any = d.size || d.region_size || d.compression || d.io || d.admission || d.write_budget ||
               d.promote_threshold || d.large_item_percent || d.demote_on_shutdown;
    if (!d.path && any) return Error("tiers.ssd.path", ssd_mark_, "required when tiers.ssd is set");
    if (!d.path) return Status::Ok();
    if (!d.size) return Error("tiers.ssd.size", ssd_mark_, "required when tiers.ssd.path is set");
    uint64_t region = d.region_size.value_or(internal::kDefaultRegionSize);
    if (*d.size < internal::kMinRegions * region) {
      return Error("tiers.ssd.size", ssd_mark_,
                   "must be at least 4 regions (4 x " + common::FormatSize(region) + "), got " +
                       common::FormatSize(*d.size));
    }
    return Status::Ok();
  }

  Status Ram(const std::string& path, const YAML::Node& map) {
    RamConfig& r = config_->tiers.ram;
    return ForEachKey(map, path, {"size", "max_item_size", "eviction"},
                      [&](const std::string& key, const std::string& p, const YAML::Node& k,
                          const YAML::Node& v) -> Status {
                        if (key == "size") return Read(p, k, v, internal::kRamSize, &r.size);
                        if (key == "max_item_size") {
                          item_mark_ = k.Mark();
                          return Read(p, k, v, internal::kMaxItemSize, &r.max_item_size);
                        }
                        return Read(p, k, v, internal::kEviction, &r.eviction);
                      });
  }

  Status Upstream(const std::string& path, const YAML::Node& map) {
    UpstreamConfig& u = config_->upstream;
    return ForEachKey(
        map, path,
        {"servers", "distribution", "near_cache_ttl", "forward_flush", "connections_per_server",
         "connect_timeout", "request_timeout", "down_after_timeouts", "down_after_connect_failures",
         "probe_interval", "probe_interval_max", "max_in_flight", "revalidate_idle",
         "dns_resolver", "dns_refresh", "file_refresh", "removal_grace"},
        [&](const std::string& key, const std::string& p, const YAML::Node& k,
            const YAML::Node& v) -> Status {
          if (key == "servers") return Servers(p, k, v);
          if (key == "distribution") {
            return Read(p, k, v, internal::kDistribution, &u.distribution);
          }
          if (key == "near_cache_ttl") {
            return Read(p, k, v, internal::kNearCacheTtl, &u.near_cache_ttl_ms);
          }
          if (key == "forward_flush") {
            return Read(p, k, v, internal::kBool, &u.forward_flush);
          }
          if (key == "connect_timeout") {
            return Read(p, k, v, internal::kUpstreamTimeout, &u.connect_timeout_ms);
          }
          if (key == "request_timeout") {
            return Read(p, k, v, internal::kUpstreamTimeout, &u.request_timeout_ms);
          }
          if (key == "down_after_timeouts") {
            return Read(p, k, v, internal::kDownAfter, &u.down_after_timeouts);
          }
          if (key == "down_after_connect_failures") {
            return Read(p, k, v, internal::kDownAfter, &u.down_after_connect_failures);
          }
          if (key == "probe_interval") {
            return Read(p, k, v, internal::kUpstreamTimeout, &u.probe_interval_ms);
          }
          if (key == "probe_interval_max") {
            return Read(p, k, v, internal::kUpstreamTimeout, &u.probe_interval_max_ms);
          }
          if (key == "revalidate_idle") {
            return Read(p, k, v, internal::kRevalidateIdle, &u.revalidate_idle_ms);
          }
          if (key == "dns_resolver") {
            return Read(p, k, v, internal::kDnsResolver, &u.dns_resolver);
          }
          if (key == "dns_refresh") {
            return Read(p, k, v, internal::kMembershipRefresh, &u.dns_refresh_ms);
          }
          if (key == "file_refresh") {
            return Read(p, k, v, internal::kMembershipRefresh, &u.file_refresh_ms);
          }
          if (key == "removal_grace") {
            return Read(p, k, v, internal::kRemovalGrace, &u.removal_grace_ms);
          }
          if (key == "max_in_flight") {
            return Read(p, k, v, internal::kMaxInFlight, &u.max_in_flight);
          }
          return Read(p, k, v, internal::kConnectionsPerServer, &u.connections_per_server);
        });
  }

  // upstream.servers: a sequence of server entries; null or [] is no pool.
  Status Servers(const std::string& path, const YAML::Node& key, const YAML::Node& value) {
    std::vector<common::ServerSpec>& servers = config_->upstream.servers.emplace();
    std::vector<common::MemberSource>& sources = config_->upstream.sources.emplace();
    server_marks_.clear();
    server_index_.clear();
    if (value.IsNull()) return Status::Ok();
    if (!value.IsSequence()) {
      return Error(path, key.Mark(), "expected a list of servers, got " + Describe(value));
    }
    size_t i = 0;
    for (const auto& item : value) {
      const YAML::Node entry = item;
      const std::string entry_path = path + "[" + std::to_string(i) + "]";
      if (!entry.IsScalar()) {
        return Error(entry_path, entry.Mark(),
                     R"(expected "host:port", "host:port:weight" or "host:port:weight name", )"
                     "got " +
                         Describe(entry));
      }
      Result<common::MemberSource> source = common::ParseMemberSource(entry.Scalar());
      if (!source.ok()) return Error(entry_path, entry.Mark(), source.status().message());
      if (source->dynamic()) {
        for (size_t j = 0; j < sources.size(); ++j) {
          if (sources[j].dynamic() && sources[j].text == source->text) {
            return Error(entry_path, entry.Mark(),
                         source->text + " is listed twice (also " + path + "[" +
                             std::to_string(j) + "])");
          }
        }
        sources.push_back(std::move(source).value());
        ++i;
        continue;
      }
      sources.push_back(*source);
      common::ServerSpec spec = std::move(source->server);
      for (size_t j = 0; j < servers.size(); ++j) {
        if (servers[j].Address() == spec.Address()) {
          return Error(entry_path, entry.Mark(),
                       spec.Address() + " is listed twice (also " + path + "[" +
                           std::to_string(server_index_[j]) + "])");
        }
      }
      servers.push_back(std::move(spec));
      server_marks_.push_back(entry.Mark());
      server_index_.push_back(i);
      ++i;
    }
    return Status::Ok();
  }

  // Weights and names must suit an explicitly chosen distribution (ketama,
  // the default, takes both).
  Status CheckUpstream() {
    const UpstreamConfig& u = config_->upstream;
    if (!u.servers || !u.distribution || *u.distribution == "ketama") return Status::Ok();
    const std::string& d = *u.distribution;
    for (size_t i = 0; i < u.servers->size(); ++i) {
      const common::ServerSpec& s = (*u.servers)[i];
      const std::string path = "upstream.servers[" + std::to_string(server_index_[i]) + "]";
      if (s.weight != 1 && d != "modula") {
        return Error(path, server_marks_[i],
                     "weight " + std::to_string(s.weight) + ": upstream.distribution " + d +
                         " has no weights (its clients give every server one share); use "
                         "ketama or modula");
      }
      if (!s.name.empty()) {
        return Error(path, server_marks_[i],
                     "a server name (" + Quote(s.name) +
                         ") is used only by "
                         "upstream.distribution ketama, not " +
                         d);
      }
    }
    return Status::Ok();
  }

  Status Metrics(const std::string& path, const YAML::Node& map) {
    MetricsConfig& m = config_->metrics;
    return ForEachKey(map, path, {"enabled", "listen"},
                      [&](const std::string& key, const std::string& p, const YAML::Node& k,
                          const YAML::Node& v) -> Status {
                        if (key == "enabled") return Read(p, k, v, internal::kBool, &m.enabled);
                        return Read(p, k, v, internal::kMetricsListen, &m.listen);
                      });
  }

  Status Log(const std::string& path, const YAML::Node& map) {
    return ForEachKey(
        map, path, {"level"},
        [this](const std::string&, const std::string& p, const YAML::Node& k, const YAML::Node& v) {
          return Read(p, k, v, internal::kLogLevel, &config_->log.level);
        });
  }

  // Calls visit(key, path_of_key, key_node, value_node) for each pair of
  // `map` in document order, after rejecting keys that are not strings, not
  // in `known`, or seen before in this map.
  template <typename Visit>
  Status ForEachKey(const YAML::Node& map, const std::string& path,
                    std::initializer_list<std::string_view> known, Visit visit) {
    std::set<std::string, std::less<>> seen;
    const std::string& where = path.empty() ? std::string(kTopLevel) : path;
    for (const auto& pair : map) {
      // Copies (they share the tree): iterator_value is a temporary.
      const YAML::Node k = pair.first;
      const YAML::Node v = pair.second;
      if (!k.IsScalar()) {
        return Error(where, k.Mark(), "expected a string key, got " + Describe(k));
      }
      const std::string& key = k.Scalar();
      if (!seen.insert(key).second) {
        return Error(where, k.Mark(), "duplicate key " + Quote(key));
      }
      std::string key_path = Join(path, key);
      bool is_known = false;
      std::string names;
      for (std::string_view name : known) {
        if (name == key) is_known = true;
        names += names.empty() ? "" : ", ";
        names += name;
      }
      if (!is_known) return Error(key_path, k.Mark(), "unknown key; expected one of " + names);
      Status s = visit(key, key_path, k, v);
      if (!s.ok()) return s;
    }
    return Status::Ok();
  }

  // Reads a scalar setting with `rule` into *out.
  template <typename T>
  Status Read(const std::string& path, const YAML::Node& key, const YAML::Node& value,
              const Rule<T>& rule, std::optional<T>* out) {
    if (!value.IsScalar()) {
      return Error(path, key.Mark(),
                   "expected " + std::string(rule.expected) + ", got " + Describe(value));
    }
    Result<T> parsed = rule.parse(value.Scalar());
    if (!parsed.ok()) return Error(path, key.Mark(), parsed.status().message());
    *out = std::move(parsed).value();
    return Status::Ok();
  }

  Status CheckItemFitsRam() {
    const RamConfig& r = config_->tiers.ram;
    if (!r.size || !r.max_item_size || *r.max_item_size <= *r.size) return Status::Ok();
    return Error("tiers.ram.max_item_size", item_mark_,
                 common::FormatSize(*r.max_item_size) + " is larger than tiers.ram.size (" +
                     common::FormatSize(*r.size) + ")");
  }

  // "<path>: <detail> (<origin>:<line>:<column>)"
  Status Error(const std::string& path, const YAML::Mark& mark, const std::string& detail) const {
    std::string message = path + ": " + detail;
    if (!mark.is_null()) {
      message += " (" + origin_ + ":" + std::to_string(mark.line + 1) + ":" +
                 std::to_string(mark.column + 1) + ")";
    }
    return Status::InvalidArgument(std::move(message));
  }

  std::string origin_;
  Config* config_ = nullptr;
  YAML::Mark item_mark_ = YAML::Mark::null_mark();
  YAML::Mark ssd_mark_ = YAML::Mark::null_mark();
  std::vector<YAML::Mark> server_marks_;  // upstream.servers[i]'s entry
  std::vector<size_t> server_index_;      // the static server i's index in upstream.servers
};

std::string ErrnoMessage(int err) { return std::generic_category().message(err); }

}  // namespace

// Counts the documents of a YAML stream, stopping at `limit`, and records
// where the second one starts. (YAML::LoadAll is not used: yaml-cpp 0.7
// loops forever on some malformed input, such as a lone ",".)
class DocumentCounter final : public YAML::EventHandler {
 public:
  size_t Count(const std::string& text, size_t limit) {
    std::istringstream in(text);
    YAML::Parser parser(in);
    size_t n = 0;
    while (n < limit && parser.HandleNextDocument(*this)) ++n;
    return n;
  }
  YAML::Mark second_start() const { return second_; }

  void OnDocumentStart(const YAML::Mark& mark) override {
    if (++started_ == 2) second_ = mark;
  }
  void OnDocumentEnd() override {}
  void OnNull(const YAML::Mark&, YAML::anchor_t) override {}
  void OnAlias(const YAML::Mark&, YAML::anchor_t) override {}
  void OnScalar(const YAML::Mark&, const std::string&, YAML::anchor_t,
                const std::string&) override {}
  void OnSequenceStart(const YAML::Mark&, const std::string&, YAML::anchor_t,
                       YAML::EmitterStyle::value) override {}
  void OnSequenceEnd() override {}
  void OnMapStart(const YAML::Mark&, const std::string&, YAML::anchor_t,
                  YAML::EmitterStyle::value) override {}
  void OnMapEnd() override {}

 private:
  size_t started_ = 0;
  YAML::Mark second_ = YAML::Mark::null_mark();
};

Result<Config> ParseYaml(const std::string& text, const std::string& origin) {
  const std::string name = origin.empty() ? std::string("<config>") : origin;
  try {
    DocumentCounter counter;
    size_t documents = counter.Count(text, 2);
    Config config;
    if (documents == 0) return config;
    if (documents > 1) {
      const YAML::Mark mark = counter.second_start();
      return Status::InvalidArgument(name + ":" + std::to_string(mark.line + 1) + ":" +
                                     std::to_string(mark.column + 1) +
                                     ": expected one YAML document, found more");
    }
    Status s = Walker(name).Document(YAML::Load(text), &config);
    if (!s.ok()) return s;
    return config;
  } catch (const YAML::ParserException& e) {
    return Status::InvalidArgument(name + ":" + std::to_string(e.mark.line + 1) + ":" +
                                   std::to_string(e.mark.column + 1) + ": " + e.msg);
  } catch (const std::exception& e) {
    // yaml-cpp's other exceptions (and bad_alloc) are not expected here, but
    // nothing may escape this module.
    return Status::Internal(name + ": " + e.what());
  }
}

Result<Config> LoadFile(const std::string& path) {
  int fd = -1;
  do {
    fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  } while (fd < 0 && errno == EINTR);
  if (fd < 0) {
    int err = errno;
    std::string message = path + ": cannot open: " + ErrnoMessage(err);
    return err == ENOENT ? Status::NotFound(message) : Status::IoError(message);
  }
  struct stat st {};
  if (::fstat(fd, &st) == 0 && S_ISDIR(st.st_mode)) {
    ::close(fd);
    return Status::IoError(path + ": cannot read: is a directory");
  }
  // Read until EOF rather than trusting st_size, so pipes and /proc work.
  std::string text;
  char buf[16384];
  for (;;) {
    ssize_t n = ::read(fd, buf, sizeof(buf));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      int err = errno;
      ::close(fd);
      return Status::IoError(path + ": cannot read: " + ErrnoMessage(err));
    }
    if (n == 0) break;
    text.append(buf, static_cast<size_t>(n));
    if (text.size() > kMaxFileBytes) {
      ::close(fd);
      return Status::InvalidArgument(path + ": larger than " + common::FormatSize(kMaxFileBytes) +
                                     ", not a config file");
    }
  }
  ::close(fd);
  Result<Config> config = ParseYaml(text, path);
  if (config.ok()) config->config_file = path;
  return config;
}

}  // namespace strata::config
