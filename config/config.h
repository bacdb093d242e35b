// strata's configuration: the YAML file (--config FILE) plus memcached-style
// command-line flags that override it.
//
// Every field is optional: an unset field means "use the owning module's
// default" (the defaults live in each module's options struct, e.g.
// tiers::RamTierOptions, proxy::ServerOptions; proxy/options_from_config.h
// maps Config onto them).
// Validation is complete here: a Config returned by ParseYaml(), LoadFile()
// or ParseCommandLine() holds only values the modules accept, and every
// rejection starts with the offending path (or flag), then says what was
// expected and what was found; YAML errors end with where the key is:
//   tiers.ram.size: expected a size like 256MiB, got "lots" (strata.yaml:3:5)
//   server.bogus: unknown key; expected one of listen, port, ... (strata.yaml:2:3)
//   tiers.ram: duplicate key "size" (strata.yaml:5:5)
//   -p: expected an integer 0..65535, got "x"
// Cross-field rules: max_item_size <= tiers.ram.size, checked only when both
// are set (the RAM tier's default size is its own); an upstream server's
// weight or name must suit upstream.distribution when that is set (the
// default, ketama, takes both). Two placement rules are left to
// upstream::Placement::Build() (proxy::PoolOptionsFromConfig() applies it):
// ketama servers hashing by the same name, jump addresses equal in natural
// order.
//
// Schema (all keys optional; unknown keys, duplicate keys, non-string keys
// and wrong types are errors; a section left empty, like "server:" with
// nothing under it, is an empty map; the top level must be a map, and an
// empty file or one of only comments is an empty config). The shipped
// config/strata.yaml writes out every default.
//   server:
//     listen: 127.0.0.1          # IPv4/IPv6 literal (inet_pton) or localhost (-l)
//     port: 11211                # TCP port, 0..65535; 0 = pick a free one (-p)
//     unix_socket: /path         # also listen on a unix socket, <= 107 bytes (-s)
//     unix_socket_mode: "0700"   # octal permissions <= 0777, read as octal
//                                # whether written "0700", 700 or 0o700 (-a)
//     workers: 0                 # worker threads, 0..256; 0 = CPUs usable (-t)
//     max_connections: 4096      # 1..4294967295 (-c)
//     enable_shutdown: false     # true/false (yes/on/1 are errors) (-A)
//     drain_timeout: 10s         # SIGTERM: time allowed to finish replies
//     max_output_buffer: 64MiB   # per-connection cap on queued reply bytes, >= 1KiB
//     max_connection_memory: auto  # process-wide cap on what connections hold
//                                # (read buffers, data blocks being received,
//                                # queued replies), >= 1MiB; auto = RAM tier / 8,
//                                # 32MiB..1GiB (--max-connection-memory)
//     network_io: auto           # auto | io_uring | syscalls (--network-io)
//   tiers:
//     ram:
//       size: 256MiB             # byte budget of the RAM tier, >= 1MiB (-m, in MiB)
//       max_item_size: 1MiB      # largest key+value accepted (-I), 1KiB..1GiB
//       eviction: s3fifo         # s3fifo | lru
//     ssd:                       # off unless `path` is set (--ssd-path)
//       path: ./var/strata-cache.bin  # file (preallocated) or block device
//       size: 1GiB               # at least 4 regions (--ssd-size)
//       region_size: 16MiB       # 1MiB..64MiB, a multiple of 4KiB
//       compression: lz4         # lz4 | none
//       io: auto                 # auto | io_uring | threadpool (--ssd-io)
//       admission: reaccessed    # reaccessed | sketch | all
//       write_budget: 0          # bytes/s written to flash, 0 = unlimited
//       promote_threshold: 3     # 0..15: recent reads (sketch) a get needs to
//                                # move an SSD item to RAM, and more than the
//                                # item RAM would evict for it; 0 = always
//       large_item_percent: 10   # 1..100: a set of an item larger than this
//                                # percent of tiers.ram.size goes straight to
//                                # SSD, and gets serve it from there; 100 = off
//       demote_on_shutdown: true # SIGTERM writes RAM items to SSD (warm restart)
//   upstream:                   # the shared memcached pool (off without servers)
//     servers: []                # "host:port", "host:port:weight" or
//                                # "host:port:weight name" (common/server_spec.h),
//                                # or a source: "file:/path", "dns+host:port",
//                                # "dnssrv+_port._tcp.name" (member_source.h);
//                                # empty = no pool; no address twice
//     dns_resolver: ""           # "ip:port" of the DNS server; "" = resolv.conf
//     dns_refresh: 30s           # 100ms..1h: dns+ and dnssrv+ re-resolved
//     file_refresh: 5s           # 100ms..1h: file: sources re-read
//     removal_grace: 30s         # 0..1h: a member that left stays in the ring,
//                                # down, this long
//     distribution: ketama       # ketama | rendezvous | jump | modula; weights
//                                # only with ketama or modula, names only with
//                                # ketama
//     near_cache_ttl: 60s        # how long a copy from the pool is served
//                                # locally, 0..30d; 0 = nothing kept locally
//     forward_flush: false       # flush_all also flushes the pool
//     connections_per_server: 1  # per worker, 1..64
//     connect_timeout: 100ms     # 1ms..60s
//     request_timeout: 200ms     # 1ms..60s: the longest a reply may stay silent
//     down_after_timeouts: 3     # 1..1000 request timeouts in a row mark a
//                                # server down (its requests then fail at once)
//     down_after_connect_failures: 1  # 1..1000 failed connects in a row
//     probe_interval: 100ms      # 1ms..60s: a down server's first probe;
//                                # doubled after each failed one, jittered
//     probe_interval_max: 10s    # 1ms..60s, >= probe_interval
//     max_in_flight: 1024        # per server and worker, 1..1048576; more fail
//     revalidate_idle: 10s       # 0..1h: a connection idle longer sends mn
//                                # first; 0 = never
//   metrics:
//     enabled: true              # serve /metrics, /healthz, /readyz over HTTP
//     listen: 127.0.0.1:9150     # IPv4 ADDR:PORT (or localhost:PORT); port 0
//                                # picks a free one (--metrics-listen)
//   log:
//     level: info                # error | warn | info | debug
// Sizes are common::ParseSize() strings ("256MiB", "64k"); a plain integer is
// bytes. Durations are common::ParseDurationMs() strings ("30s", "1500ms"); a
// plain integer is seconds. Integers are plain decimal digits.
//
// Thread safety: all functions are pure (LoadFile() and ParseCommandLine()
// read files); Config is a plain value. Nothing here throws: yaml-cpp's
// exceptions are caught and returned as Status.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "common/member_source.h"
#include "common/server_spec.h"
#include "common/status.h"

namespace strata::config {

struct ServerConfig {
  std::optional<std::string> listen;
  std::optional<uint16_t> port;
  std::optional<std::string> unix_socket;
  std::optional<uint32_t> unix_socket_mode;  // permission bits, e.g. 0700
  std::optional<uint32_t> workers;           // 0 = auto
  std::optional<uint32_t> max_connections;
  std::optional<bool> enable_shutdown;
  std::optional<uint64_t> drain_timeout_ms;
  std::optional<uint64_t> max_output_buffer;
  std::optional<uint64_t> max_connection_memory;  // 0 = auto
  std::optional<std::string> network_io;  // "auto", "io_uring" or "syscalls"
};

struct RamConfig {
  std::optional<uint64_t> size;
  std::optional<uint64_t> max_item_size;
  std::optional<std::string> eviction;  // "s3fifo" or "lru"
};

struct SsdConfig {
  std::optional<std::string> path;         // file or block device; the tier is off without it
  std::optional<uint64_t> size;            // bytes, at least 4 regions
  std::optional<uint64_t> region_size;     // 1MiB..64MiB, a multiple of 4KiB
  std::optional<std::string> compression;  // "lz4" or "none"
  std::optional<std::string> io;           // "auto", "io_uring" or "threadpool"
  std::optional<std::string> admission;    // "all", "reaccessed" or "sketch"
  std::optional<uint64_t> write_budget;    // bytes per second to flash, 0 = none
  std::optional<uint32_t> promote_threshold;  // reads a get needs to promote, 0..15
  std::optional<uint32_t> large_item_percent;  // items above this % of RAM skip it, 1..100
  std::optional<bool> demote_on_shutdown;  // write RAM items to SSD on SIGTERM
  bool disabled = false;                   // --no-ssd
};

struct TiersConfig {
  RamConfig ram;
  SsdConfig ssd;
};

struct MetricsConfig {
  std::optional<bool> enabled;
  std::optional<std::string> listen;  // "ADDR:PORT"
};

struct UpstreamConfig {
  std::optional<std::vector<common::ServerSpec>> servers;  // [] = no pool
  std::optional<std::string> distribution;                 // "ketama" "rendezvous" "jump" "modula"
  std::optional<uint64_t> near_cache_ttl_ms;               // 0 = keep nothing from the pool locally
  std::optional<bool> forward_flush;
  std::optional<uint32_t> connections_per_server;  // per worker, 1..64
  std::optional<uint64_t> connect_timeout_ms;      // 1ms..60s
  std::optional<uint64_t> request_timeout_ms;      // 1ms..60s: a reply's silence
  std::optional<uint32_t> down_after_timeouts;          // 1..1000
  std::optional<uint32_t> down_after_connect_failures;  // 1..1000
  std::optional<uint64_t> probe_interval_ms;            // 1ms..60s: the first probe's delay
  std::optional<uint64_t> probe_interval_max_ms;        // 1ms..60s: the longest
  std::optional<uint32_t> max_in_flight;  // per server and worker, 1..1048576
  std::optional<uint64_t> revalidate_idle_ms;  // 0..1h; 0 = never
  // Every upstream.servers entry as a membership source (static, file:,
  // dns+, dnssrv+; common/member_source.h), in order; `servers` holds the
  // static ones again.
  std::optional<std::vector<common::MemberSource>> sources;
  std::optional<std::string> dns_resolver;    // "host:port" (IP literal); unset = resolv.conf
  std::optional<uint64_t> dns_refresh_ms;     // 100ms..1h: dns+/dnssrv+ re-resolution
  std::optional<uint64_t> file_refresh_ms;    // 100ms..1h: file: re-reads
  std::optional<uint64_t> removal_grace_ms;   // 0..1h: a departed member is down this long
};

struct LogConfig {
  std::optional<std::string> level;  // "error" "warn" "info" "debug"
};

struct Config {
  std::optional<std::string> config_file;  // the file it was read from, if any
  ServerConfig server;
  TiersConfig tiers;
  UpstreamConfig upstream;
  MetricsConfig metrics;
  LogConfig log;
};

// What the command line asked for besides configuration.
struct CommandLine {
  Config config;
  bool show_help = false;
  bool show_version = false;
};

// Parses YAML text. `origin` names the source in messages ("strata.yaml";
// "<config>" if empty). Returns the config (config_file unset) or an
// InvalidArgument error for the first problem in document order, whose
// message starts with the path of the offending key ("tiers.ram.size: ...")
// and ends with " (<origin>:<line>:<col>)"; YAML syntax errors, and a second
// document in the text, give "<origin>:<line>:<col>: <message>".
common::Result<Config> ParseYaml(const std::string& text, const std::string& origin);

// Reads and parses a YAML file (see ParseYaml; `path` is the origin) and sets
// config_file to `path`. Errors: NotFound "<path>: cannot open: No such file
// or directory"; IoError "<path>: cannot open|read: <reason>" (a directory
// included); InvalidArgument for a file over 1MiB or invalid content.
common::Result<Config> LoadFile(const std::string& path);

// Parses argv (argv[0] is the program name): --config FILE (or -C FILE),
// then memcached-style overrides
//   -p PORT  -l ADDR  -m MEGABYTES  -t THREADS  -c MAXCONNS  -I SIZE (1m, 64k)
//   -s SOCKET  -a MASK (octal)  -A (enable shutdown)  -v (log level debug)
//   -h/--help  -V/--version
// and long forms --port --listen --memory-limit --threads --conn-limit
// --max-item-size --unix-socket --unix-mask --enable-shutdown --verbose;
// --metrics-listen ADDR:PORT and --max-connection-memory SIZE (or auto)
// have only a long form, as do the --ssd-* flags, --network-io and --no-ssd.
// Long forms also take --flag=VALUE; short ones may be glued (-p11211) and
// clustered as with getopt (-Av, -Ap 11211). -m is a whole number of MiB
// (>= 1), as in memcached; -I takes memcached's "2m", "512k", "1048576".
// The file is loaded first and the flags laid over it, whatever their order
// on the line; a flag given twice keeps its last value; --config may appear
// once. -h/-V stop parsing at once (later arguments and the file are not
// read) and set show_help/show_version. Values pass the same rules as the
// file's, and errors name the flag as written:
//   -m: expected megabytes (an integer >= 1), got "x"
//   --bogus: unknown flag      -p: missing PORT      unexpected argument "x"
// Errors from the config file come back as LoadFile() returns them.
common::Result<CommandLine> ParseCommandLine(int argc, const char* const* argv);

// Usage text for --help.
std::string Usage();

}  // namespace strata::config
