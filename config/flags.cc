// The command-line half of the config module: ParseCommandLine() and
// Usage(). Values go through the same rules as the YAML file (fields.h), with
// the flag, as written, in front of the message.

#include <optional>
#include <string>
#include <string_view>

#include "common/units.h"
#include "config/config.h"
#include "config/fields.h"

namespace strata::config {
namespace {

using common::Result;
using common::Status;
using internal::Quote;

enum class Flag {
  kConfig,
  kPort,
  kListen,
  kUnixSocket,
  kUnixMask,
  kMemory,
  kMaxItemSize,
  kThreads,
  kConnLimit,
  kEnableShutdown,
  kVerbose,
  kMetricsListen,
  kSsdPath,
  kSsdSize,
  kSsdIo,
  kNetworkIo,
  kMaxConnectionMemory,
  kNoSsd,
  kHelp,
  kVersion,
};

struct FlagSpec {
  Flag flag;
  char short_name;  // '\0': long form only
  std::string_view long_name;
  std::string_view arg;  // empty: the flag takes no value
  std::string_view help;
  std::string_view setting;  // the YAML setting it overrides, if any
};

// Every flag, in the order Usage() lists them.
constexpr FlagSpec kFlags[] = {
    {Flag::kConfig, 'C', "config", "FILE", "read settings from this YAML file first", ""},
    {Flag::kListen, 'l', "listen", "ADDR", "IPv4/IPv6 address or localhost", "server.listen"},
    {Flag::kPort, 'p', "port", "PORT", "TCP port, 0 = any free one", "server.port"},
    {Flag::kUnixSocket, 's', "unix-socket", "PATH", "also listen on this socket",
     "server.unix_socket"},
    {Flag::kUnixMask, 'a', "unix-mask", "MASK", "its octal mode, e.g. 0700",
     "server.unix_socket_mode"},
    {Flag::kThreads, 't', "threads", "N", "workers, 0 = one per CPU", "server.workers"},
    {Flag::kConnLimit, 'c', "conn-limit", "N", "most connections at once",
     "server.max_connections"},
    {Flag::kEnableShutdown, 'A', "enable-shutdown", "", "allow the shutdown command",
     "server.enable_shutdown"},
    {Flag::kMemory, 'm', "memory-limit", "MB", "RAM tier size in MiB", "tiers.ram.size"},
    {Flag::kMaxItemSize, 'I', "max-item-size", "SIZE", "largest item: 1m, 512k...",
     "tiers.ram.max_item_size"},
    {Flag::kVerbose, 'v', "verbose", "", "log at debug level", "log.level"},
    {Flag::kMetricsListen, '\0', "metrics-listen", "ADDR:PORT", "metrics HTTP address",
     "metrics.listen"},
    {Flag::kSsdPath, '\0', "ssd-path", "PATH", "SSD tier file or block device", "tiers.ssd.path"},
    {Flag::kSsdSize, '\0', "ssd-size", "SIZE", "SSD tier size, e.g. 2GiB", "tiers.ssd.size"},
    {Flag::kSsdIo, '\0', "ssd-io", "MODE", "auto, io_uring or threadpool", "tiers.ssd.io"},
    {Flag::kNetworkIo, '\0', "network-io", "MODE", "auto, io_uring or syscalls",
     "server.network_io"},
    {Flag::kMaxConnectionMemory, '\0', "max-connection-memory", "SIZE", "cap, or auto",
     "server.max_connection_memory"},
    {Flag::kNoSsd, '\0', "no-ssd", "", "run RAM only, whatever the file says", ""},
    {Flag::kHelp, 'h', "help", "", "print this help and exit", ""},
    {Flag::kVersion, 'V', "version", "", "print the version and exit", ""},
};

const FlagSpec* FindShort(char c) {
  for (const FlagSpec& spec : kFlags) {
    if (spec.short_name != '\0' && spec.short_name == c) return &spec;
  }
  return nullptr;
}

const FlagSpec* FindLong(std::string_view name) {
  for (const FlagSpec& spec : kFlags) {
    if (spec.long_name == name) return &spec;
  }
  return nullptr;
}

// A flag as written, safe to print: quoted if it has spaces or odd bytes.
std::string ShowFlag(std::string_view flag) {
  for (char c : flag) {
    if (c <= ' ' || c > '~') return Quote(flag);
  }
  return std::string(flag);
}

Status FlagError(std::string_view flag, const std::string& detail) {
  return Status::InvalidArgument(ShowFlag(flag) + ": " + detail);
}

// The command line's settings, before they are laid over the config file.
class Overrides {
 public:
  enum class Next { kContinue, kStop };

  // Applies one flag; `written` is the flag as the user wrote it ("-p",
  // "--port"), for messages. `value` is empty for flags without a value.
  Result<Next> Apply(const FlagSpec& spec, std::string_view written, std::string_view value) {
    ServerConfig& server = config_.server;
    RamConfig& ram = config_.tiers.ram;
    Status s;
    switch (spec.flag) {
      case Flag::kConfig:
        if (config_file_) return FlagError(written, "config file given more than once");
        if (value.empty()) return FlagError(written, "expected a file path, got \"\"");
        config_file_ = std::string(value);
        break;
      case Flag::kPort:
        s = Set(written, value, internal::kPort, &server.port);
        break;
      case Flag::kListen:
        s = Set(written, value, internal::kListen, &server.listen);
        break;
      case Flag::kUnixSocket:
        s = Set(written, value, internal::kUnixSocket, &server.unix_socket);
        break;
      case Flag::kUnixMask:
        s = Set(written, value, internal::kUnixSocketMode, &server.unix_socket_mode);
        break;
      case Flag::kThreads:
        s = Set(written, value, internal::kWorkers, &server.workers);
        break;
      case Flag::kConnLimit:
        s = Set(written, value, internal::kMaxConnections, &server.max_connections);
        break;
      case Flag::kEnableShutdown:
        server.enable_shutdown = true;
        break;
      case Flag::kMemory:
        s = Set(written, value, internal::kMegabytes, &ram.size);
        size_flag_ = std::string(written);
        break;
      case Flag::kMaxItemSize:
        s = Set(written, value, internal::kMaxItemSize, &ram.max_item_size);
        item_flag_ = std::string(written);
        break;
      case Flag::kVerbose:
        config_.log.level = "debug";
        break;
      case Flag::kMetricsListen:
        s = Set(written, value, internal::kMetricsListen, &config_.metrics.listen);
        break;
      case Flag::kSsdPath:
        s = Set(written, value, internal::kSsdPath, &config_.tiers.ssd.path);
        break;
      case Flag::kSsdSize:
        s = Set(written, value, internal::kSsdSize, &config_.tiers.ssd.size);
        break;
      case Flag::kSsdIo:
        s = Set(written, value, internal::kIoMode, &config_.tiers.ssd.io);
        break;
      case Flag::kNetworkIo:
        s = Set(written, value, internal::kNetworkIo, &config_.server.network_io);
        break;
      case Flag::kMaxConnectionMemory:
        s = Set(written, value, internal::kMaxConnectionMemory,
                &config_.server.max_connection_memory);
        break;
      case Flag::kNoSsd:
        config_.tiers.ssd.disabled = true;
        break;
      case Flag::kHelp:
        show_help_ = true;
        return Next::kStop;
      case Flag::kVersion:
        show_version_ = true;
        return Next::kStop;
    }
    if (!s.ok()) return s;
    return Next::kContinue;
  }

  // Loads the config file, if one was named, lays the flags over it and
  // checks the settings that depend on each other.
  Result<CommandLine> Finish() const {
    CommandLine line;
    line.show_help = show_help_;
    line.show_version = show_version_;
    if (show_help_ || show_version_) return line;
    if (config_file_) {
      Result<Config> loaded = LoadFile(*config_file_);
      if (!loaded.ok()) return loaded.status();
      line.config = std::move(loaded).value();
    }
    Merge(&line.config);
    Status s = CheckItemFitsRam(line.config.tiers.ram);
    if (!s.ok()) return s;
    s = CheckSsd(line.config.tiers.ssd);
    if (!s.ok()) return s;
    return line;
  }

 private:
  template <typename T, typename U>
  static Status Set(std::string_view written, std::string_view value, const internal::Rule<T>& rule,
                    std::optional<U>* out) {
    Result<T> parsed = rule.parse(value);
    if (!parsed.ok()) return FlagError(written, parsed.status().message());
    *out = std::move(parsed).value();
    return Status::Ok();
  }

  template <typename T>
  static void Over(std::optional<T>* base, const std::optional<T>& flag) {
    if (flag) *base = *flag;
  }

  void Merge(Config* c) const {
    const Config& f = config_;
    Over(&c->server.listen, f.server.listen);
    Over(&c->server.port, f.server.port);
    Over(&c->server.unix_socket, f.server.unix_socket);
    Over(&c->server.unix_socket_mode, f.server.unix_socket_mode);
    Over(&c->server.workers, f.server.workers);
    Over(&c->server.max_connections, f.server.max_connections);
    Over(&c->server.enable_shutdown, f.server.enable_shutdown);
    Over(&c->server.drain_timeout_ms, f.server.drain_timeout_ms);
    Over(&c->server.max_output_buffer, f.server.max_output_buffer);
    Over(&c->server.max_connection_memory, f.server.max_connection_memory);
    Over(&c->server.network_io, f.server.network_io);
    Over(&c->tiers.ram.size, f.tiers.ram.size);
    Over(&c->tiers.ram.max_item_size, f.tiers.ram.max_item_size);
    Over(&c->tiers.ram.eviction, f.tiers.ram.eviction);
    Over(&c->tiers.ssd.path, f.tiers.ssd.path);
    Over(&c->tiers.ssd.size, f.tiers.ssd.size);
    Over(&c->tiers.ssd.io, f.tiers.ssd.io);
    if (f.tiers.ssd.disabled) c->tiers.ssd = SsdConfig{.disabled = true};
    Over(&c->metrics.enabled, f.metrics.enabled);
    Over(&c->metrics.listen, f.metrics.listen);
    Over(&c->log.level, f.log.level);
  }

  // With flags merged: a path needs a size of at least 4 regions.
  static Status CheckSsd(const SsdConfig& d) {
    if (d.disabled || !d.path) return Status::Ok();
    if (!d.size) return FlagError("--ssd-path", "needs --ssd-size (or tiers.ssd.size)");
    uint64_t region = d.region_size.value_or(internal::kDefaultRegionSize);
    if (*d.size < internal::kMinRegions * region) {
      return FlagError("--ssd-size", "must be at least 4 regions (4 x " +
                                         common::FormatSize(region) + "), got " +
                                         common::FormatSize(*d.size));
    }
    return Status::Ok();
  }

  // max_item_size <= size once flags and file are merged; the message starts
  // with the flag that made them clash when there is one.
  Status CheckItemFitsRam(const RamConfig& ram) const {
    if (!ram.size || !ram.max_item_size || *ram.max_item_size <= *ram.size) return Status::Ok();
    const std::string item = common::FormatSize(*ram.max_item_size);
    const std::string size = common::FormatSize(*ram.size);
    const std::string size_name = size_flag_.empty() ? "tiers.ram.size" : size_flag_;
    if (!item_flag_.empty()) {
      return FlagError(item_flag_,
                       item + " is larger than the RAM tier size (" + size_name + " " + size + ")");
    }
    if (!size_flag_.empty()) {
      return FlagError(size_flag_, size + " is smaller than tiers.ram.max_item_size (" + item +
                                       ") in " + config_file_.value_or("the config file"));
    }
    // Both came from the file (LoadFile() rejects that already).
    return Status::InvalidArgument("tiers.ram.max_item_size: " + item +
                                   " is larger than tiers.ram.size (" + size + ")");
  }

  Config config_;
  std::optional<std::string> config_file_;
  std::string size_flag_;  // the flag that set tiers.ram.size, if any
  std::string item_flag_;  // the flag that set tiers.ram.max_item_size, if any
  bool show_help_ = false;
  bool show_version_ = false;
};

}  // namespace

Result<CommandLine> ParseCommandLine(int argc, const char* const* argv) {
  auto arg_at = [argv](int i) -> std::string_view { return argv[i] != nullptr ? argv[i] : ""; };
  Overrides overrides;
  for (int i = 1; i < argc; ++i) {
    const std::string_view arg = arg_at(i);
    if (arg == "--") {
      if (i + 1 < argc)
        return Status::InvalidArgument("unexpected argument " + Quote(arg_at(i + 1)));
      break;
    }
    if (arg.starts_with("--")) {
      // --name, --name VALUE, --name=VALUE
      const size_t eq = arg.find('=');
      const std::string_view written = arg.substr(0, eq);
      const FlagSpec* spec = FindLong(written.substr(2));
      if (spec == nullptr) return FlagError(written, "unknown flag");
      std::string_view value;
      if (spec->arg.empty()) {
        if (eq != std::string_view::npos) return FlagError(written, "takes no value");
      } else if (eq != std::string_view::npos) {
        value = arg.substr(eq + 1);
      } else if (i + 1 < argc) {
        value = arg_at(++i);
      } else {
        return FlagError(written, "missing " + std::string(spec->arg));
      }
      Result<Overrides::Next> next = overrides.Apply(*spec, written, value);
      if (!next.ok()) return next.status();
      if (*next == Overrides::Next::kStop) break;
      continue;
    }
    if (arg.size() < 2 || arg[0] != '-') {
      return Status::InvalidArgument("unexpected argument " + Quote(arg));
    }
    // A getopt-style cluster: "-A", "-vv", "-p11211", "-Ap 11211".
    bool stop = false;
    for (size_t j = 1; j < arg.size() && !stop; ++j) {
      const std::string written = std::string("-") + arg[j];
      const FlagSpec* spec = FindShort(arg[j]);
      if (spec == nullptr) return FlagError(written, "unknown flag");
      std::string_view value;
      if (!spec->arg.empty()) {
        if (j + 1 < arg.size()) {
          value = arg.substr(j + 1);
        } else if (i + 1 < argc) {
          value = arg_at(++i);
        } else {
          return FlagError(written, "missing " + std::string(spec->arg));
        }
        j = arg.size();  // the value ends the cluster
      }
      Result<Overrides::Next> next = overrides.Apply(*spec, written, value);
      if (!next.ok()) return next.status();
      stop = *next == Overrides::Next::kStop;
    }
    if (stop) break;
  }
  return overrides.Finish();
}

std::string Usage() {
  std::string text =
      "Usage: strata [options]\n"
      "\n"
      "A memcached-compatible tiered cache. Settings come from the YAML file named\n"
      "by --config, then from these flags, which override the file whatever their\n"
      "order. Long flags also take --flag=VALUE; short ones -pVALUE. [x.y] names\n"
      "the setting a flag overrides.\n"
      "\n";
  constexpr size_t kHelpColumn = 28;
  for (const FlagSpec& spec : kFlags) {
    const size_t line_start = text.size();
    if (spec.short_name != '\0') {
      text.append("  -").append(1, spec.short_name).append(", --").append(spec.long_name);
    } else {
      text.append("      --").append(spec.long_name);
    }
    if (!spec.arg.empty()) text.append(" ").append(spec.arg);
    const size_t width = text.size() - line_start;
    text.append(width < kHelpColumn ? kHelpColumn - width : 1, ' ');
    text.append(spec.help);
    if (!spec.setting.empty()) text.append(" [").append(spec.setting).append("]");
    text.append("\n");
  }
  return text;
}

}  // namespace strata::config
