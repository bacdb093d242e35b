// strata_trace_replay: replays a cache request trace against a memcached text-protocol
// server, as a cache-aside client would, and reports miss ratios, hit ratios per window of
// the trace, and the server's tier counters.
//
// Trace format (../shared/traces/README.md): one request per line,
// `timestamp_ms op key_id value_size ttl_s` with op get|set|delete; `#` lines are headers,
// and `# marker: NAME INDEX` headers (written by strata_trace_gen) name request indexes.
// Files ending in .gz are read through `gzip -dc`. Timestamps are ignored: the trace is
// replayed as fast as the pipeline allows.
//
// Client model. --sets write (the default): a get that misses is followed by a set of the
// trace's value size; a trace set is sent as `add` (STORED: the key was absent, a miss) and,
// when the add finds the key (a hit), as the `set` that overwrites it; deletes are sent as
// they come. --sets get replays every set as a get, which is libCacheSim's model (its
// simulators ignore the operation). Requests for one key never overtake each other: a key
// has at most one operation (a get and the set that may follow) in flight, later requests
// for it wait, and a key always uses the same connection. Requests for other keys go past a
// waiting one, at most --lookahead trace positions past the oldest unfinished request.
//
// Values. Bytes 0-15 hold the key id and a version (little-endian u64s), the rest is a slice
// of a seeded random pool chosen by (key, version, size): LZ4 cannot shrink them, and every
// hit is checked byte by byte against the newest version this client wrote; a wrong key, a
// stale version, a wrong size or corrupt bytes count as errors.
//
// Servers. With --server-bin each run starts a fresh server on a free port, sized from the
// trace's working set (--ram-share, --ssd-share), and stops it by PID at the end; otherwise
// --host/--port name a running server (flushed first unless --no-flush). `stats` is read
// before the replay, at every 1% of the trace and at the markers (the pipeline is drained
// first, so the counters split exactly), and after it.
//
// Exit status: 0 done, 1 bad usage, 2 a run failed (server, connection, timeout),
// 3 wrong values or an unmet --expect.
//
// Thread safety: single-threaded (one poll loop per run); the only global is the interrupt
// flag set by the SIGINT/SIGTERM handler.

#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cinttypes>
#include <cmath>
#include <cstdarg>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "common/units.h"

namespace strata::bench {
namespace {

constexpr size_t kHeaderLen = 16;          // value bytes holding key id and version
constexpr size_t kReadBuffer = 256 << 10;  // per connection
constexpr uint64_t kMiB = uint64_t{1} << 20;
constexpr uint64_t kMinStrataRam = kMiB;  // strata's tiers.ram.size minimum
constexpr int kGridSteps = 100;           // stats are read at every 1% of the trace

volatile sig_atomic_t g_interrupted = 0;
void OnSignal(int) { g_interrupted = 1; }

uint64_t NowNs() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<uint64_t>(ts.tv_sec) * 1000000000u + static_cast<uint64_t>(ts.tv_nsec);
}

// splitmix64.
uint64_t Mix(uint64_t z) {
  z += 0x9e3779b97f4a7c15ULL;
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

std::string Format(const char* fmt, ...) __attribute__((format(printf, 1, 2)));
std::string Format(const char* fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  char buf[512];
  int n = std::vsnprintf(buf, sizeof(buf), fmt, ap);
  va_end(ap);
  if (n < 0) return {};
  if (static_cast<size_t>(n) < sizeof(buf)) return std::string(buf, static_cast<size_t>(n));
  std::string out(static_cast<size_t>(n) + 1, '\0');
  va_start(ap, fmt);
  std::vsnprintf(out.data(), out.size(), fmt, ap);
  va_end(ap);
  out.resize(static_cast<size_t>(n));
  return out;
}

std::string Ratio(uint64_t num, uint64_t den) {
  if (den == 0) return "-";
  return Format("%.4f", static_cast<double>(num) / static_cast<double>(den));
}

std::string Trim(std::string_view s) {
  size_t b = s.find_first_not_of(" \t\r\n");
  if (b == std::string_view::npos) return {};
  size_t e = s.find_last_not_of(" \t\r\n");
  return std::string(s.substr(b, e - b + 1));
}

std::vector<std::string_view> Tokens(std::string_view s) {
  std::vector<std::string_view> out;
  size_t i = 0;
  while (i < s.size()) {
    while (i < s.size() && (s[i] == ' ' || s[i] == '\t' || s[i] == '\r')) ++i;
    size_t b = i;
    while (i < s.size() && s[i] != ' ' && s[i] != '\t' && s[i] != '\r') ++i;
    if (i > b) out.push_back(s.substr(b, i - b));
  }
  return out;
}

template <typename T>
bool ParseInt(std::string_view s, T* out) {
  auto [ptr, ec] = std::from_chars(s.data(), s.data() + s.size(), *out);
  return ec == std::errc() && ptr == s.data() + s.size() && !s.empty();
}

// Splits a command line like a POSIX shell would for words: whitespace separates, single
// quotes keep everything, double quotes keep everything but \" and \\, backslash escapes.
bool SplitArgs(std::string_view s, std::vector<std::string>* out, std::string* error) {
  std::string word;
  bool in_word = false;
  for (size_t i = 0; i < s.size(); ++i) {
    char c = s[i];
    if (c == ' ' || c == '\t' || c == '\n') {
      if (in_word) out->push_back(std::move(word));
      word.clear();
      in_word = false;
    } else if (c == '\'') {
      size_t end = s.find('\'', i + 1);
      if (end == std::string_view::npos) {
        *error = "unterminated ' in: " + std::string(s);
        return false;
      }
      word.append(s.substr(i + 1, end - i - 1));
      i = end;
      in_word = true;
    } else if (c == '"') {
      ++i;
      for (; i < s.size() && s[i] != '"'; ++i) {
        if (s[i] == '\\' && i + 1 < s.size() && (s[i + 1] == '"' || s[i + 1] == '\\')) ++i;
        word.push_back(s[i]);
      }
      if (i >= s.size()) {
        *error = "unterminated \" in: " + std::string(s);
        return false;
      }
      in_word = true;
    } else if (c == '\\' && i + 1 < s.size()) {
      word.push_back(s[++i]);
      in_word = true;
    } else {
      word.push_back(c);
      in_word = true;
    }
  }
  if (in_word) out->push_back(std::move(word));
  return true;
}

std::string BaseName(std::string_view path) {
  size_t slash = path.rfind('/');
  return std::string(slash == std::string_view::npos ? path : path.substr(slash + 1));
}

// "twitter_n_5s.txt.gz" -> "twitter_n_5s".
std::string TraceStem(std::string_view path) {
  std::string name = BaseName(path);
  for (std::string_view ext : {".gz", ".txt", ".trace"}) {
    if (name.size() > ext.size() && name.ends_with(ext)) name.resize(name.size() - ext.size());
  }
  return name;
}

// ---------------------------------------------------------------------------------------
// Options

enum class SetMode { kWrite, kGet };
enum class ServerKind { kAuto, kStrata, kMemcached };
enum class WssMode { kFirst, kMax };

struct Options {
  std::string trace;
  std::string traces_dir;
  uint64_t max_requests = 0;  // 0: the whole trace
  double value_scale = 1;
  SetMode sets = SetMode::kWrite;
  bool use_ttl = false;

  double ram_share = 0.10;
  double ssd_share = 0;
  uint64_t item_overhead = 0;
  WssMode wss = WssMode::kFirst;

  std::string host = "127.0.0.1";
  std::string port = "11211";
  std::string server_bin;
  ServerKind server_kind = ServerKind::kAuto;
  std::optional<std::string> server_args;
  std::string server_extra;
  std::optional<std::string> server_yaml;
  std::string eviction;
  int server_threads = 2;
  double start_timeout_s = 10;
  bool flush = true;
  bool keep_tmp = false;

  int connections = 4;
  int depth = 32;
  int lookahead = 0;  // 0: 4 x depth
  uint64_t seed = 42;
  double window = 0.05;
  double recovery_tolerance = 0.02;
  std::string ssd_hits_stat = "ssd_hits";
  double timeout_s = 10;
  double time_limit_s = 300;
  std::string expect;
  double restart_at = -1;             // share of the trace; < 0: no restart
  std::string restart_mode = "warm";  // warm | cold | none
};

void PrintUsage(FILE* out) {
  std::fprintf(out,
               "usage: strata_trace_replay --trace FILE [options]\n"
               "trace:\n"
               "  --trace PATH|NAME        trace file, or a name in --traces-dir (twitter_n_5s)\n"
               "  --traces-dir DIR         where names are looked up ($STRATA_TRACES or "
               "/work/shared/traces)\n"
               "  --max-requests N         replay only the first N requests\n"
               "  --value-scale F          multiply every value size by F (1)\n"
               "  --sets write|get         trace sets: add, then set when present (write) or\n"
               "                           replayed as gets, libCacheSim's model (get)  [write]\n"
               "  --ttl                    send the trace's TTLs (default: exptime 0)\n"
               "sizing (shares of the working set):\n"
               "  --ram-share F            RAM budget (0.10)\n"
               "  --ssd-share F            SSD budget, for {ssd_bytes}/{ssd_mb} (0)\n"
               "  --wss first|max          a key's size in the working set: first seen (as\n"
               "                           libCacheSim) or largest (first)\n"
               "  --item-overhead B        bytes added per distinct key before taking shares (0)\n"
               "server (started per run with --server-bin, else --host/--port):\n"
               "  --host H --port N        a running server (127.0.0.1 11211)\n"
               "  --server-bin PATH        start this server on a free port, stop it by PID\n"
               "  --server-kind auto|strata|memcached   default arguments to use (auto: by name)\n"
               "  --server-args ARGS       replace the default arguments; placeholders {port}\n"
               "                           {ram_bytes} {ram_mb} {ssd_bytes} {ssd_mb} {yaml} {dir}\n"
               "                           {threads} {item_max} {eviction}\n"
               "  --server-extra ARGS      append to the arguments\n"
               "  --server-yaml TEXT       contents of {yaml} (same placeholders)\n"
               "  --eviction NAME          strata: tiers.ram.eviction in the default {yaml}\n"
               "  --server-threads N       worker threads, {threads} (2)\n"
               "  --start-timeout T        wait this long for the server to accept (10s)\n"
               "  --no-flush               do not flush_all a running server first\n"
               "  --keep-tmp               keep the run's temp dir (server log, yaml)\n"
               "client:\n"
               "  --connections N          TCP connections; a key always uses the same one (4)\n"
               "  --depth N                requests in flight over all connections (32)\n"
               "  --lookahead N            how far past the oldest unfinished request (4 x depth)\n"
               "  --seed N                 value pool seed (42)\n"
               "  --timeout T              fail when no reply arrives for this long (10s)\n"
               "  --time-limit T           fail a run that takes longer (300s)\n"
               "report:\n"
               "  --window F               hit ratio per window of this share of the trace (0.05)\n"
               "  --recovery-tolerance F   recovered: within F of the hit ratio before (0.02)\n"
               "  --restart-at F           at this share of the trace, drain, SIGTERM the server\n"
               "                           (--server-bin), start it again on the same files and\n"
               "                           report the miss ratio over the next 10%%\n"
               "  --restart warm|cold|none warm: as is (strata reloads its sketch and promotes\n"
               "                           its saved hot keys); cold: those files ({dir}/*.hot,\n"
               "                           *.sketch) are removed first; none: no restart, the\n"
               "                           same window reported\n"
               "                           (the baseline)  [warm]\n"
               "  --ssd-hits-stat NAME     server stat counting SSD hits; RAM hits = hits - it\n"
               "                           (ssd_hits)\n"
               "  --expect K=V[,K=V...]    exit 3 unless these JSON fields have these values\n"
               "runs:\n"
               "  --config \"NAME: OPTIONS\" one run with these options over the others (repeat)\n"
               "  --configs FILE           one \"NAME: OPTIONS\" per line (# comments)\n");
}

[[noreturn]] void UsageError(const std::string& message) {
  std::fprintf(stderr, "strata_trace_replay: %s\n", message.c_str());
  std::fprintf(stderr, "(strata_trace_replay --help lists the options)\n");
  std::exit(1);
}

double ParseDoubleArg(const std::string& name, const std::string& text, std::string* suffix) {
  char* end = nullptr;
  errno = 0;
  double value = std::strtod(text.c_str(), &end);
  if (end == text.c_str() || errno != 0 || !std::isfinite(value)) {
    UsageError("bad value for " + name + ": " + text);
  }
  *suffix = end;
  return value;
}

double ParsePlainDouble(const std::string& name, const std::string& text, double lo, double hi) {
  std::string suffix;
  double v = ParseDoubleArg(name, text, &suffix);
  if (!suffix.empty() || v < lo || v > hi) {
    UsageError(name + " must be a number between " + Format("%g and %g", lo, hi) + ": " + text);
  }
  return v;
}

// "10s", "1.5m", "500ms", a bare number of seconds (common::ParseDurationSeconds()).
double ParseSeconds(const std::string& name, const std::string& text) {
  const std::optional<double> value = common::ParseDurationSeconds(text);
  if (!value) UsageError("bad duration for " + name + ": " + text);
  if (*value <= 0) UsageError(name + " must be positive");
  return *value;
}

// A size in bytes with an optional binary unit ("4096", "4k"), as
// common::ParseSize() reads sizes.
uint64_t ParseBytes(const std::string& name, const std::string& text, uint64_t hi) {
  const std::optional<uint64_t> value = common::ParseSize(text);
  if (!value || *value > hi) {
    UsageError(name + Format(" must be a size of at most %" PRIu64 " bytes", hi) + ": " + text);
  }
  return *value;
}

uint64_t ParseCountArg(const std::string& name, const std::string& text, uint64_t lo, uint64_t hi) {
  uint64_t v = 0;
  if (!ParseInt(text, &v) || v < lo || v > hi) {
    UsageError(name + Format(" must be an integer between %" PRIu64 " and %" PRIu64, lo, hi) +
               ": " + text);
  }
  return v;
}

struct NamedConfig {
  std::string name;
  std::vector<std::string> args;
};

// Applies `args` to `opt`. Configuration lines (`where` non-empty) may not name others.
void ParseArgs(const std::vector<std::string>& args, Options* opt,
               std::vector<NamedConfig>* configs, const std::string& where) {
  auto fail = [&](const std::string& m) { UsageError(where.empty() ? m : where + ": " + m); };
  for (size_t i = 0; i < args.size(); ++i) {
    std::string arg = args[i];
    std::string value;
    bool has_value = false;
    if (size_t eq = arg.find('='); arg.rfind("--", 0) == 0 && eq != std::string::npos) {
      value = arg.substr(eq + 1);
      arg.resize(eq);
      has_value = true;
    }
    auto flag = [&]() {
      if (has_value) fail(arg + " takes no value");
    };
    auto next = [&]() -> std::string {
      if (has_value) return value;
      if (i + 1 >= args.size()) fail(arg + " needs a value");
      return args[++i];
    };
    if (arg == "--help" || arg == "-h") {
      PrintUsage(stdout);
      std::exit(0);
    } else if (arg == "--trace") {
      opt->trace = next();
    } else if (arg == "--traces-dir") {
      opt->traces_dir = next();
    } else if (arg == "--max-requests") {
      opt->max_requests = ParseCountArg(arg, next(), 1, UINT32_MAX - 1);
    } else if (arg == "--value-scale") {
      opt->value_scale = ParsePlainDouble(arg, next(), 1e-6, 1e6);
    } else if (arg == "--sets") {
      std::string v = next();
      if (v == "write") {
        opt->sets = SetMode::kWrite;
      } else if (v == "get") {
        opt->sets = SetMode::kGet;
      } else {
        fail("--sets must be write or get: " + v);
      }
    } else if (arg == "--ttl") {
      flag();
      opt->use_ttl = true;
    } else if (arg == "--ram-share") {
      opt->ram_share = ParsePlainDouble(arg, next(), 0, 1000);
    } else if (arg == "--ssd-share") {
      opt->ssd_share = ParsePlainDouble(arg, next(), 0, 1000);
    } else if (arg == "--wss") {
      std::string v = next();
      if (v == "first") {
        opt->wss = WssMode::kFirst;
      } else if (v == "max") {
        opt->wss = WssMode::kMax;
      } else {
        fail("--wss must be first or max: " + v);
      }
    } else if (arg == "--item-overhead") {
      opt->item_overhead = ParseBytes(arg, next(), 1 << 20);
    } else if (arg == "--host") {
      opt->host = next();
    } else if (arg == "--port") {
      opt->port = next();
    } else if (arg == "--server-bin") {
      opt->server_bin = next();
    } else if (arg == "--server-kind") {
      std::string v = next();
      if (v == "auto") {
        opt->server_kind = ServerKind::kAuto;
      } else if (v == "strata") {
        opt->server_kind = ServerKind::kStrata;
      } else if (v == "memcached") {
        opt->server_kind = ServerKind::kMemcached;
      } else {
        fail("--server-kind must be auto, strata or memcached: " + v);
      }
    } else if (arg == "--server-args") {
      opt->server_args = next();
    } else if (arg == "--server-extra") {
      opt->server_extra = next();
    } else if (arg == "--server-yaml") {
      opt->server_yaml = next();
    } else if (arg == "--eviction") {
      opt->eviction = next();
    } else if (arg == "--server-threads") {
      opt->server_threads = static_cast<int>(ParseCountArg(arg, next(), 1, 256));
    } else if (arg == "--start-timeout") {
      opt->start_timeout_s = ParseSeconds(arg, next());
    } else if (arg == "--no-flush") {
      flag();
      opt->flush = false;
    } else if (arg == "--keep-tmp") {
      flag();
      opt->keep_tmp = true;
    } else if (arg == "--connections") {
      opt->connections = static_cast<int>(ParseCountArg(arg, next(), 1, 256));
    } else if (arg == "--depth") {
      opt->depth = static_cast<int>(ParseCountArg(arg, next(), 1, 1 << 16));
    } else if (arg == "--lookahead") {
      opt->lookahead = static_cast<int>(ParseCountArg(arg, next(), 1, 1 << 24));
    } else if (arg == "--seed") {
      opt->seed = ParseCountArg(arg, next(), 0, UINT64_MAX);
    } else if (arg == "--timeout") {
      opt->timeout_s = ParseSeconds(arg, next());
    } else if (arg == "--time-limit") {
      opt->time_limit_s = ParseSeconds(arg, next());
    } else if (arg == "--window") {
      opt->window = ParsePlainDouble(arg, next(), 0.001, 1);
    } else if (arg == "--recovery-tolerance") {
      opt->recovery_tolerance = ParsePlainDouble(arg, next(), 0, 1);
    } else if (arg == "--ssd-hits-stat") {
      opt->ssd_hits_stat = next();
    } else if (arg == "--expect") {
      opt->expect = next();
    } else if (arg == "--restart-at") {
      opt->restart_at = ParsePlainDouble(arg, next(), 0, 1);
    } else if (arg == "--restart") {
      opt->restart_mode = next();
      if (opt->restart_mode != "warm" && opt->restart_mode != "cold" &&
          opt->restart_mode != "none") {
        fail("--restart: warm, cold or none, got \"" + opt->restart_mode + "\"");
      }
    } else if (arg == "--config" || arg == "--configs") {
      if (configs == nullptr) fail(arg + " is not allowed inside a configuration");
      std::vector<std::string> lines;
      if (arg == "--config") {
        lines.push_back(next());
      } else {
        std::string path = next();
        FILE* f = std::fopen(path.c_str(), "r");
        if (f == nullptr) fail("cannot read " + path + ": " + strerror(errno));
        char* line = nullptr;
        size_t cap = 0;
        while (getline(&line, &cap, f) > 0) {
          std::string t = Trim(line);
          if (!t.empty() && t[0] != '#') lines.push_back(t);
        }
        std::free(line);
        std::fclose(f);
      }
      for (const std::string& line : lines) {
        size_t colon = line.find(':');
        if (colon == std::string::npos || Trim(line.substr(0, colon)).empty()) {
          fail("a configuration is \"NAME: OPTIONS\", got: " + line);
        }
        NamedConfig c;
        c.name = Trim(line.substr(0, colon));
        std::string error;
        if (!SplitArgs(line.substr(colon + 1), &c.args, &error)) fail(error);
        configs->push_back(std::move(c));
      }
    } else {
      fail("unknown option " + arg);
    }
  }
}

// ---------------------------------------------------------------------------------------
// Traces

enum class TraceOp : uint8_t { kGet, kSet, kDelete };

struct TraceRequest {
  uint64_t key_id;
  uint32_t size;
  uint32_t ttl;
  uint32_t key;  // dense index into Trace::key_ids
  TraceOp op;
};

struct Trace {
  std::string path;
  std::string name;
  std::vector<TraceRequest> requests;
  std::vector<uint64_t> key_ids;                          // dense index -> key id
  std::vector<std::pair<std::string, uint64_t>> markers;  // "# marker: NAME INDEX"
  std::string sizes_header;                               // "# sizes: ..." if present
};

// Resolves a trace argument: an existing path, or a name in the traces directory.
std::string ResolveTrace(const Options& opt) {
  struct stat st;
  if (stat(opt.trace.c_str(), &st) == 0) return opt.trace;
  std::string dir = opt.traces_dir;
  if (dir.empty()) {
    const char* env = std::getenv("STRATA_TRACES");
    dir = env != nullptr && *env != '\0' ? env : "/work/shared/traces";
  }
  for (const char* ext : {"", ".txt.gz", ".gz", ".txt"}) {
    std::string p = dir + "/" + opt.trace + ext;
    if (stat(p.c_str(), &st) == 0) return p;
  }
  return opt.trace;
}

// Opens a file for reading; .gz files through a `gzip -dc` child. Returns null on error.
FILE* OpenTrace(const std::string& path, pid_t* child) {
  *child = -1;
  if (!path.ends_with(".gz")) return std::fopen(path.c_str(), "r");
  if (access(path.c_str(), R_OK) != 0) return nullptr;
  int fds[2];
  if (pipe2(fds, O_CLOEXEC) != 0) return nullptr;
  pid_t pid = fork();
  if (pid < 0) {
    close(fds[0]);
    close(fds[1]);
    return nullptr;
  }
  if (pid == 0) {
    dup2(fds[1], STDOUT_FILENO);
    execlp("gzip", "gzip", "-dc", "--", path.c_str(), static_cast<char*>(nullptr));
    _exit(127);
  }
  close(fds[1]);
  *child = pid;
  return fdopen(fds[0], "r");
}

bool LoadTrace(const std::string& path, std::shared_ptr<Trace>* out, std::string* error) {
  pid_t child = -1;
  FILE* f = OpenTrace(path, &child);
  if (f == nullptr) {
    *error = "cannot read trace " + path + ": " + strerror(errno);
    return false;
  }
  auto trace = std::make_shared<Trace>();
  trace->path = path;
  trace->name = TraceStem(path);
  std::unordered_map<uint64_t, uint32_t> dense;
  char* line = nullptr;
  size_t cap = 0;
  ssize_t len;
  uint64_t lineno = 0;
  bool ok = true;
  while ((len = getline(&line, &cap, f)) > 0) {
    ++lineno;
    std::string_view s(line, static_cast<size_t>(len));
    while (!s.empty() && (s.back() == '\n' || s.back() == '\r')) s.remove_suffix(1);
    if (s.empty()) continue;
    if (s[0] == '#') {
      std::string body = Trim(s.substr(1));
      if (body.starts_with("marker:")) {
        auto t = Tokens(std::string_view(body).substr(7));
        uint64_t index = 0;
        if (t.size() != 2 || !ParseInt(t[1], &index)) {
          *error = Format("%s:%" PRIu64 ": bad marker line", path.c_str(), lineno);
          ok = false;
          break;
        }
        trace->markers.emplace_back(std::string(t[0]), index);
      } else if (body.starts_with("sizes:")) {
        trace->sizes_header = Trim(std::string_view(body).substr(6));
      }
      continue;
    }
    auto t = Tokens(s);
    TraceRequest r{};
    uint64_t size = 0;
    uint64_t ttl = 0;
    if (t.size() < 4 || !ParseInt(t[2], &r.key_id) || !ParseInt(t[3], &size) ||
        size > (uint64_t{1} << 30) || (t.size() >= 5 && !ParseInt(t[4], &ttl))) {
      *error = Format("%s:%" PRIu64 ": expected \"timestamp_ms op key_id value_size ttl_s\"",
                      path.c_str(), lineno);
      ok = false;
      break;
    }
    if (t[1] == "get") {
      r.op = TraceOp::kGet;
    } else if (t[1] == "set") {
      r.op = TraceOp::kSet;
    } else if (t[1] == "delete") {
      r.op = TraceOp::kDelete;
    } else {
      *error = Format("%s:%" PRIu64 ": unknown op ", path.c_str(), lineno) + std::string(t[1]);
      ok = false;
      break;
    }
    r.size = static_cast<uint32_t>(size);
    r.ttl = static_cast<uint32_t>(std::min<uint64_t>(ttl, UINT32_MAX));
    auto [it, inserted] = dense.try_emplace(r.key_id, static_cast<uint32_t>(dense.size()));
    if (inserted) trace->key_ids.push_back(r.key_id);
    r.key = it->second;
    trace->requests.push_back(r);
    if (trace->requests.size() >= UINT32_MAX - 1) {
      *error = path + ": more than 4G requests";
      ok = false;
      break;
    }
  }
  std::free(line);
  std::fclose(f);
  if (child > 0) {
    int status = 0;
    if (!ok) kill(child, SIGTERM);
    waitpid(child, &status, 0);
    if (ok && !(WIFEXITED(status) && WEXITSTATUS(status) == 0)) {
      *error = "gzip -dc " + path + " failed";
      ok = false;
    }
  }
  if (ok && trace->requests.empty()) {
    *error = path + ": no requests";
    ok = false;
  }
  if (ok) *out = std::move(trace);
  return ok;
}

struct WorkingSet {
  uint64_t requests = 0;
  uint64_t objects = 0;
  uint64_t first_bytes = 0;  // sum over keys of the first size seen (libCacheSim)
  uint64_t max_bytes = 0;    // sum over keys of the largest size seen
  uint64_t max_value = 0;
  uint64_t gets = 0;
  uint64_t sets = 0;
  uint64_t deletes = 0;
};

uint32_t ScaledSize(uint32_t size, double scale) {
  if (scale == 1) return size;
  double v = std::round(static_cast<double>(size) * scale);
  return static_cast<uint32_t>(std::min(v, 1073741824.0));
}

WorkingSet MeasureWorkingSet(const Trace& trace, uint64_t n, double scale) {
  WorkingSet ws;
  ws.requests = n;
  std::vector<uint32_t> first(trace.key_ids.size(), UINT32_MAX);
  std::vector<uint32_t> largest(trace.key_ids.size(), 0);
  for (uint64_t i = 0; i < n; ++i) {
    const TraceRequest& r = trace.requests[i];
    uint32_t size = ScaledSize(r.size, scale);
    if (r.op == TraceOp::kGet) ++ws.gets;
    if (r.op == TraceOp::kSet) ++ws.sets;
    if (r.op == TraceOp::kDelete) {
      ++ws.deletes;
      continue;
    }
    if (first[r.key] == UINT32_MAX) {
      first[r.key] = size;
      ++ws.objects;
      ws.first_bytes += size;
    }
    largest[r.key] = std::max(largest[r.key], size);
    ws.max_value = std::max<uint64_t>(ws.max_value, size);
  }
  for (uint32_t v : largest) ws.max_bytes += v;
  return ws;
}

// libCacheSim's reference miss ratios from the README beside the trace: for `stem` at
// `share`, the best algorithm's and LRU's. Empty when not listed.
struct Reference {
  std::string best_name;
  double best = -1;
  double lru = -1;
};

Reference LookUpReference(const std::string& trace_path, const std::string& stem, double share) {
  Reference ref;
  size_t slash = trace_path.rfind('/');
  std::string readme =
      (slash == std::string::npos ? std::string(".") : trace_path.substr(0, slash)) + "/README.md";
  FILE* f = std::fopen(readme.c_str(), "r");
  if (f == nullptr) return ref;
  auto cells = [](std::string_view row) {
    std::vector<std::string> out;
    size_t i = row.find('|');
    while (i != std::string_view::npos) {
      size_t j = row.find('|', i + 1);
      if (j == std::string_view::npos) break;
      out.push_back(Trim(row.substr(i + 1, j - i - 1)));
      i = j;
    }
    return out;
  };
  std::vector<std::string> header;
  char* line = nullptr;
  size_t cap = 0;
  while (getline(&line, &cap, f) > 0) {
    std::string row = Trim(line);
    if (!row.starts_with("|")) continue;
    std::vector<std::string> c = cells(row);
    if (c.size() >= 3 && c[0] == "trace" && c[1] == "size") {
      header = c;
      continue;
    }
    if (header.empty() || c.size() != header.size()) continue;
    if (c[0] != stem && !c[0].starts_with(stem + " ")) continue;
    std::string size = c[1];
    size.erase(std::remove(size.begin(), size.end(), ' '), size.end());
    if (!size.ends_with("%")) continue;
    double pct = std::strtod(size.c_str(), nullptr);
    if (std::fabs(pct / 100 - share) > 1e-9) continue;
    for (size_t k = 2; k < c.size(); ++k) {
      double v = std::strtod(c[k].c_str(), nullptr);
      if (header[k] == "LRU") ref.lru = v;
      if (ref.best < 0 || v < ref.best) {
        ref.best = v;
        ref.best_name = header[k];
      }
    }
    break;
  }
  std::free(line);
  std::fclose(f);
  return ref;
}

// ---------------------------------------------------------------------------------------
// Sockets and stats

// Returns a connected TCP socket (blocking unless `nonblocking`) with TCP_NODELAY, or -1.
int Connect(const std::string& host, const std::string& port, bool nonblocking, double timeout_s,
            std::string* error) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* res = nullptr;
  int rc = getaddrinfo(host.c_str(), port.c_str(), &hints, &res);
  if (rc != 0) {
    *error = host + ":" + port + ": " + gai_strerror(rc);
    return -1;
  }
  int fd = -1;
  *error = "no address";
  for (addrinfo* ai = res; ai != nullptr && fd < 0; ai = ai->ai_next) {
    fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, ai->ai_protocol);
    if (fd < 0) {
      *error = strerror(errno);
      continue;
    }
    int err = 0;
    if (connect(fd, ai->ai_addr, ai->ai_addrlen) != 0) {
      if (errno != EINPROGRESS) {
        err = errno;
      } else {
        pollfd p{fd, POLLOUT, 0};
        socklen_t len = sizeof(err);
        if (poll(&p, 1, static_cast<int>(timeout_s * 1000)) != 1) {
          err = ETIMEDOUT;
        } else if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0) {
          err = errno;
        }
      }
    }
    if (err != 0) {
      *error = "connect " + host + ":" + port + ": " + strerror(err);
      close(fd);
      fd = -1;
    }
  }
  freeaddrinfo(res);
  if (fd < 0) return -1;
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
  if (!nonblocking) {
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK);
    timeval tv{};
    tv.tv_sec = static_cast<time_t>(timeout_s);
    tv.tv_usec = static_cast<suseconds_t>((timeout_s - static_cast<double>(tv.tv_sec)) * 1e6);
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
  }
  return fd;
}

bool SendAll(int fd, std::string_view data) {
  while (!data.empty()) {
    ssize_t n = send(fd, data.data(), data.size(), MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    data.remove_prefix(static_cast<size_t>(n));
  }
  return true;
}

// Sends `command` on a blocking socket and reads reply lines until one equals one of
// `ends` (or starts with an error reply). Returns false on I/O error or timeout.
bool Exchange(int fd, std::string_view command, std::vector<std::string>* lines) {
  if (!SendAll(fd, command)) return false;
  std::string buf;
  char chunk[16384];
  while (true) {
    size_t nl;
    while ((nl = buf.find("\r\n")) != std::string::npos) {
      std::string line = buf.substr(0, nl);
      buf.erase(0, nl + 2);
      bool last = line == "END" || line == "OK" || line == "ERROR" ||
                  line.starts_with("CLIENT_ERROR") || line.starts_with("SERVER_ERROR");
      lines->push_back(std::move(line));
      if (last) return true;
    }
    ssize_t n = recv(fd, chunk, sizeof(chunk), 0);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    buf.append(chunk, static_cast<size_t>(n));
  }
}

using Stats = std::map<std::string, std::string>;

// Reads `stats`; returns false when the connection failed (an ERROR reply gives empty stats).
bool ReadStats(int fd, Stats* out) {
  out->clear();
  std::vector<std::string> lines;
  if (!Exchange(fd, "stats\r\n", &lines)) return false;
  for (const std::string& line : lines) {
    auto t = Tokens(line);
    if (t.size() >= 3 && t[0] == "STAT") (*out)[std::string(t[1])] = std::string(t[2]);
  }
  return true;
}

std::optional<int64_t> StatInt(const Stats& s, const std::string& name) {
  auto it = s.find(name);
  int64_t v = 0;
  if (it == s.end() || !ParseInt(it->second, &v)) return std::nullopt;
  return v;
}

// ---------------------------------------------------------------------------------------
// The server under test

std::string Substitute(std::string text, const std::map<std::string, std::string>& vars) {
  for (const auto& [name, value] : vars) {
    std::string token = "{" + name + "}";
    size_t pos = 0;
    while ((pos = text.find(token, pos)) != std::string::npos) {
      text.replace(pos, token.size(), value);
      pos += value.size();
    }
  }
  return text;
}

int FreePort() {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return -1;
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  socklen_t len = sizeof(addr);
  int port = -1;
  if (bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0 &&
      getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) == 0) {
    port = ntohs(addr.sin_port);
  }
  close(fd);
  return port;
}

struct Budget {
  uint64_t base = 0;       // the bytes the shares apply to
  uint64_t ram_bytes = 0;  // ram_share x base
  uint64_t ssd_bytes = 0;  // ssd_share x base
  uint64_t max_value = 0;
};

std::string TailOfFile(const std::string& path, size_t max_bytes) {
  FILE* f = std::fopen(path.c_str(), "r");
  if (f == nullptr) return {};
  std::fseek(f, 0, SEEK_END);
  long size = std::ftell(f);
  long from = std::max<long>(0, size - static_cast<long>(max_bytes));
  std::fseek(f, from, SEEK_SET);
  std::string out(static_cast<size_t>(size - from), '\0');
  size_t n = std::fread(out.data(), 1, out.size(), f);
  out.resize(n);
  std::fclose(f);
  return out;
}

// A server process started for one run: its own temp dir (log, yaml), a free port, stopped
// by PID (SIGTERM, then SIGKILL after 5 s) in Stop() or the destructor.
class ServerProcess {
 public:
  ServerProcess() = default;
  ~ServerProcess() { Stop(); }
  ServerProcess(const ServerProcess&) = delete;
  ServerProcess& operator=(const ServerProcess&) = delete;

  bool Start(const Options& opt, const Budget& budget, std::string* error) {
    char dir_template[] = "/tmp/strata-replay-XXXXXX";
    if (mkdtemp(dir_template) == nullptr) {
      *error = std::string("mkdtemp: ") + strerror(errno);
      return false;
    }
    dir_ = dir_template;
    keep_dir_ = opt.keep_tmp;
    ServerKind kind = opt.server_kind;
    if (kind == ServerKind::kAuto) {
      kind = BaseName(opt.server_bin).find("memcached") != std::string::npos
                 ? ServerKind::kMemcached
                 : ServerKind::kStrata;
    }
    uint64_t ram_bytes = budget.ram_bytes;
    if (kind == ServerKind::kStrata && ram_bytes < kMinStrataRam) {
      notes_ += Format("RAM budget %" PRIu64 " B raised to strata's minimum %" PRIu64 " B; ",
                       ram_bytes, kMinStrataRam);
      ram_bytes = kMinStrataRam;
    }
    uint64_t ram_mb = std::max<uint64_t>(1, (ram_bytes + kMiB / 2) / kMiB);
    uint64_t ssd_mb = (budget.ssd_bytes + kMiB - 1) / kMiB;
    uint64_t item_max = kMiB;
    while (item_max < budget.max_value + 1024) item_max *= 2;
    std::map<std::string, std::string> vars = {
        {"ram_bytes", std::to_string(ram_bytes)},
        {"ram_mb", std::to_string(ram_mb)},
        {"ssd_bytes", std::to_string(budget.ssd_bytes)},
        {"ssd_mb", std::to_string(ssd_mb)},
        {"dir", dir_},
        {"yaml", dir_ + "/server.yaml"},
        {"threads", std::to_string(opt.server_threads)},
        {"item_max", std::to_string(item_max)},
        {"eviction", opt.eviction},
    };
    std::string args_template;
    if (opt.server_args) {
      args_template = *opt.server_args;
    } else if (kind == ServerKind::kMemcached) {
      args_template = "-p {port} -l 127.0.0.1 -U 0 -t {threads} -c 4096 -m {ram_mb}";
      if (geteuid() == 0) args_template += " -u root";
      if (item_max > kMiB) args_template += " -I {item_max}";
      ram_note_ = Format("memcached -m %" PRIu64 " (%" PRIu64 " B)", ram_mb, ram_mb * kMiB);
    } else {
      args_template = "-C {yaml} -p {port} -l 127.0.0.1 -t {threads}";
      ram_note_ = Format("strata tiers.ram.size %" PRIu64 " B", ram_bytes);
    }
    if (!opt.server_extra.empty()) args_template += " " + opt.server_extra;
    std::string yaml;
    if (opt.server_yaml) {
      yaml = *opt.server_yaml;
    } else if (kind == ServerKind::kStrata) {
      yaml = "# written by strata_trace_replay\ntiers:\n  ram:\n    size: {ram_bytes}\n";
      if (!opt.eviction.empty()) yaml += "    eviction: {eviction}\n";
      if (item_max > kMiB) yaml += "    max_item_size: {item_max}\n";
      yaml += "metrics:\n  enabled: false\n";
    }
    if (opt.ssd_share > 0 && args_template.find("{ssd_") == std::string::npos &&
        yaml.find("{ssd_") == std::string::npos) {
      notes_ +=
          "--ssd-share given but neither the server arguments nor the yaml use "
          "{ssd_bytes}/{ssd_mb}; ";
    }
    log_path_ = dir_ + "/server.log";
    for (int attempt = 0; attempt < 3; ++attempt) {
      int port = FreePort();
      if (port <= 0) {
        *error = "no free port";
        return false;
      }
      vars["port"] = std::to_string(port);
      if (!yaml.empty()) {
        std::string text = Substitute(yaml, vars);
        FILE* f = std::fopen(vars["yaml"].c_str(), "w");
        if (f == nullptr || std::fwrite(text.data(), 1, text.size(), f) != text.size()) {
          if (f != nullptr) std::fclose(f);
          *error = "cannot write " + vars["yaml"];
          return false;
        }
        std::fclose(f);
      }
      std::vector<std::string> words;
      if (!SplitArgs(args_template, &words, error)) return false;
      std::vector<std::string> argv_strings = {opt.server_bin};
      for (const std::string& w : words) argv_strings.push_back(Substitute(w, vars));
      command_ = argv_strings[0];
      for (size_t i = 1; i < argv_strings.size(); ++i) command_ += " " + argv_strings[i];
      if (Spawn(argv_strings, error) && WaitReady(std::to_string(port), opt, error)) {
        port_ = port;
        argv_ = argv_strings;
        return true;
      }
      StopProcess();
      bool exited_early = error->find("exited") != std::string::npos;
      if (!exited_early || attempt == 2) return false;  // a port race is worth a retry
    }
    return false;
  }

  // Stops the server by PID and removes the temp dir (unless --keep-tmp). Idempotent.
  void Stop() {
    StopProcess();
    if (!dir_.empty() && !keep_dir_) {
      std::error_code ec;
      std::filesystem::remove_all(dir_, ec);
      if (ec) std::fprintf(stderr, "could not remove %s: %s\n", dir_.c_str(), ec.message().c_str());
    }
    dir_.clear();
  }

  // SIGTERM, wait, and the same command again on the same port and files. `cold`
  // removes what strata saves for a warm restart ({dir}/*.hot, {dir}/*.sketch) in
  // between.
  bool Restart(const Options& opt, bool cold, std::string* error) {
    StopProcess();
    if (cold) {
      std::error_code ec;
      for (const auto& e : std::filesystem::directory_iterator(dir_, ec)) {
        auto ext = e.path().extension();
        if (ext == ".hot" || ext == ".sketch") std::filesystem::remove(e.path(), ec);
      }
    }
    if (Spawn(argv_, error) && WaitReady(std::to_string(port_), opt, error)) return true;
    StopProcess();
    return false;
  }

  int port() const { return port_; }
  const std::string& command() const { return command_; }
  const std::string& ram_note() const { return ram_note_; }
  const std::string& notes() const { return notes_; }

 private:
  // SIGTERM, up to 5 s to exit, then SIGKILL; always reaped.
  void StopProcess() {
    if (pid_ > 0) {
      kill(pid_, SIGTERM);
      int status = 0;
      uint64_t deadline = NowNs() + 5'000'000'000ull;
      bool reaped = false;
      while (NowNs() < deadline) {
        pid_t r = waitpid(pid_, &status, WNOHANG);
        if (r == pid_ || (r < 0 && errno == ECHILD)) {
          reaped = true;
          break;
        }
        usleep(10000);
      }
      if (!reaped) {
        kill(pid_, SIGKILL);
        waitpid(pid_, &status, 0);
      }
      pid_ = -1;
    }
  }

  bool Spawn(const std::vector<std::string>& args, std::string* error) {
    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid < 0) {
      *error = std::string("fork: ") + strerror(errno);
      return false;
    }
    if (pid == 0) {
      // The server dies with the replayer, even if the replayer is SIGKILLed.
      prctl(PR_SET_PDEATHSIG, SIGKILL);
      if (getppid() != parent) _exit(127);
      int log = open(log_path_.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
      if (log >= 0) {
        dup2(log, STDOUT_FILENO);
        dup2(log, STDERR_FILENO);
      }
      int devnull = open("/dev/null", O_RDONLY | O_CLOEXEC);
      if (devnull >= 0) dup2(devnull, STDIN_FILENO);
      std::vector<char*> argv;
      for (const std::string& a : args) argv.push_back(const_cast<char*>(a.c_str()));
      argv.push_back(nullptr);
      execv(argv[0], argv.data());
      std::fprintf(stderr, "exec %s: %s\n", argv[0], strerror(errno));
      _exit(127);
    }
    pid_ = pid;
    return true;
  }

  bool WaitReady(const std::string& port, const Options& opt, std::string* error) {
    uint64_t deadline = NowNs() + static_cast<uint64_t>(opt.start_timeout_s * 1e9);
    while (NowNs() < deadline) {
      int status = 0;
      if (waitpid(pid_, &status, WNOHANG) == pid_) {
        pid_ = -1;
        *error = "server exited at start (" + command_ + "): " + TailOfFile(log_path_, 2000);
        return false;
      }
      std::string ignored;
      int fd = Connect("127.0.0.1", port, false, 1, &ignored);
      if (fd >= 0) {
        close(fd);
        return true;
      }
      usleep(20000);
    }
    *error = "server did not accept connections within the start timeout (" + command_ +
             "): " + TailOfFile(log_path_, 2000);
    return false;
  }

  pid_t pid_ = -1;
  int port_ = -1;
  std::vector<std::string> argv_;
  std::string dir_;
  bool keep_dir_ = false;
  std::string log_path_;
  std::string command_;
  std::string ram_note_;
  std::string notes_;
};

// ---------------------------------------------------------------------------------------
// Values: 16 header bytes (key id, version) + a slice of a random pool.

class ValuePool {
 public:
  ValuePool(uint64_t seed, uint64_t max_value) {
    size_ = std::max<uint64_t>(4 * kMiB, 2 * max_value + 64);
    bytes_ = std::make_unique<char[]>(size_);
    uint64_t s = Mix(seed ^ 0x5eed5eed5eedULL);
    for (uint64_t i = 0; i < size_; i += 8) {
      s = Mix(s);
      std::memcpy(bytes_.get() + i, &s, std::min<uint64_t>(8, size_ - i));
    }
  }

  static void Header(uint64_t key_id, uint64_t version, char out[kHeaderLen]) {
    for (int i = 0; i < 8; ++i) {
      out[i] = static_cast<char>(key_id >> (8 * i));
      out[8 + i] = static_cast<char>(version >> (8 * i));
    }
  }

  // The body (bytes after the header) of a value of `size` bytes.
  const char* Body(uint64_t key_id, uint64_t version, uint64_t size) const {
    uint64_t body = size > kHeaderLen ? size - kHeaderLen : 0;
    uint64_t off = Mix(Mix(key_id) ^ (version * 0x9e3779b97f4a7c15ULL)) % (size_ - body + 1);
    return bytes_.get() + off;
  }

  void Append(uint64_t key_id, uint64_t version, uint64_t size, std::string* out) const {
    char h[kHeaderLen];
    Header(key_id, version, h);
    out->append(h, std::min<uint64_t>(size, kHeaderLen));
    if (size > kHeaderLen) out->append(Body(key_id, version, size), size - kHeaderLen);
  }

 private:
  uint64_t size_;
  std::unique_ptr<char[]> bytes_;
};

// ---------------------------------------------------------------------------------------
// The replay

enum class Wire : uint8_t { kGet, kSetAfterMiss, kAdd, kSetAfterAdd, kDelete };
enum class Outcome : uint8_t { kPending, kHit, kMiss, kSetHit, kSetMiss, kDeleted };
enum class KeyState : uint8_t { kAbsent, kKnown, kUnknown };
enum class Verdict : uint8_t { kOk, kWrongKey, kStale, kWrongSize, kCorrupt };
enum class ParseState { kLine, kData, kDataEnd };

struct KeySlot {
  uint64_t version = 0;
  uint32_t size = 0;
  KeyState state = KeyState::kAbsent;
  bool busy = false;  // an operation is in flight, or the next one is ready to go
  int32_t parked_head = -1;
  int32_t parked_tail = -1;
};

struct Pending {
  uint32_t idx;
  Wire wire;
};

struct Conn {
  int fd = -1;
  std::string out;
  size_t out_pos = 0;
  std::deque<Pending> pending;
  std::unique_ptr<char[]> rbuf;
  size_t rpos = 0;
  size_t wpos = 0;
  ParseState state = ParseState::kLine;
  // The value being received.
  bool got_value = false;
  uint64_t value_len = 0;
  uint64_t value_pos = 0;
  Verdict verdict = Verdict::kOk;
  bool decided = false;  // header checked, body pointer known
  char header[kHeaderLen] = {};
  const char* body = nullptr;
};

struct Counters {
  uint64_t gets = 0;  // trace gets replayed
  uint64_t get_hits = 0;
  uint64_t get_misses = 0;
  uint64_t sets = 0;  // trace sets replayed
  uint64_t set_hits = 0;
  uint64_t set_misses = 0;
  uint64_t deletes = 0;
  uint64_t wire_gets = 0;
  uint64_t wire_sets = 0;
  uint64_t wire_adds = 0;
  uint64_t wire_deletes = 0;
  uint64_t wrong_key = 0;
  uint64_t stale = 0;
  uint64_t wrong_size = 0;
  uint64_t corrupt = 0;
  uint64_t error_replies = 0;
  uint64_t bytes_sent = 0;
  uint64_t bytes_received = 0;

  uint64_t value_errors() const { return wrong_key + stale + wrong_size + corrupt; }
};

struct RunResult {
  std::string name;
  std::string trace_name;
  Options opt;
  WorkingSet ws;
  Budget budget;
  std::string server_command;
  std::string server_ram_note;
  std::string notes;
  bool ok = true;
  std::string failure;
  std::string first_error;
  Counters c;
  double seconds = 0;
  Stats stats_before;
  Stats stats_after;
  bool have_stats = false;
  std::vector<uint64_t> boundaries;  // where stats were read, 0 and n included
  std::vector<Stats> boundary_stats;
  std::vector<uint64_t> prefix_lookups;  // per trace index: lookups (wire gets) so far
  std::vector<uint64_t> prefix_hits;
  Reference ref;
  std::vector<std::pair<std::string, uint64_t>> markers;
  std::map<std::string, double> fields;  // the numeric JSON fields, for --expect
  int64_t restart_index = -1;  // --restart-at: the request index (restarted or not)
  bool restarted = false;
};

class Replayer {
 public:
  // `restart` (may be empty) restarts the server for --restart-at.
  Replayer(const Options& opt, const Trace& trace, uint64_t n, const ValuePool& pool,
           RunResult* result, std::function<bool(std::string*)> restart = nullptr)
      : opt_(opt), trace_(trace), n_(n), pool_(pool), r_(*result), restart_(std::move(restart)) {}
  ~Replayer() { Close(); }
  Replayer(const Replayer&) = delete;
  Replayer& operator=(const Replayer&) = delete;

  // Replays requests [0, n) against host:port. Returns false when the run failed.
  bool Run(const std::string& host, const std::string& port) {
    slots_.assign(trace_.key_ids.size(), KeySlot{});
    if (!opt_.flush) {
      for (KeySlot& s : slots_) s.state = KeyState::kUnknown;
    }
    parked_next_.assign(n_, -1);
    outcome_.assign(n_, Outcome::kPending);
    lookahead_ = opt_.lookahead > 0 ? static_cast<uint64_t>(opt_.lookahead)
                                    : 4 * static_cast<uint64_t>(opt_.depth);
    std::string error;
    if (!Open(host, port, &error)) return Fail(error);
    if (opt_.flush) {
      std::vector<std::string> lines;
      if (!Exchange(control_fd_, "flush_all\r\n", &lines) || lines.empty() ||
          lines.back() != "OK") {
        return Fail("flush_all failed");
      }
    }
    Stats s;
    if (!ReadStats(control_fd_, &s)) return Fail("stats failed");
    r_.have_stats = !s.empty();
    r_.stats_before = s;
    r_.boundaries = Boundaries();
    r_.boundary_stats.push_back(s);

    start_ns_ = last_progress_ns_ = NowNs();
    std::map<std::string, int64_t> offset;  // counters of the server before a restart
    for (size_t b = 1; b < r_.boundaries.size(); ++b) {
      limit_ = r_.boundaries[b];
      if (!RunUntilDrained()) return false;
      if (r_.have_stats) {
        if (!ReadStats(control_fd_, &s)) return Fail("stats failed");
        s = Continued(s, offset);
      }
      r_.boundary_stats.push_back(s);
      if (static_cast<int64_t>(limit_) == r_.restart_index && restart_) {
        // Every request before it is answered: stop, start again, reconnect.
        Close();
        if (!restart_(&error)) return Fail("restart: " + error);
        if (!Open(host, port, &error)) return Fail("after the restart: " + error);
        r_.restarted = true;
        Stats fresh;
        if (r_.have_stats && ReadStats(control_fd_, &fresh)) {
          // Counters go on from where the old process left them.
          for (const auto& [name, value] : s) {
            auto before = StatInt(s, name);
            auto now = StatInt(fresh, name);
            if (before && now && !IsGauge(name)) offset[name] = *before - *now;
          }
        }
      }
    }
    r_.seconds = static_cast<double>(NowNs() - start_ns_) / 1e9;
    r_.stats_after = s;
    Close();
    // Prefix sums of lookups (requests answered by a wire get) and their hits.
    r_.prefix_lookups.assign(n_ + 1, 0);
    r_.prefix_hits.assign(n_ + 1, 0);
    for (uint64_t i = 0; i < n_; ++i) {
      bool lookup = outcome_[i] == Outcome::kHit || outcome_[i] == Outcome::kMiss;
      r_.prefix_lookups[i + 1] = r_.prefix_lookups[i] + (lookup ? 1 : 0);
      r_.prefix_hits[i + 1] = r_.prefix_hits[i] + (outcome_[i] == Outcome::kHit ? 1 : 0);
    }
    return true;
  }

 private:
  bool Fail(const std::string& why) {
    if (r_.ok) {
      r_.ok = false;
      r_.failure = why;
    }
    if (start_ns_ != 0) r_.seconds = static_cast<double>(NowNs() - start_ns_) / 1e9;
    Close();
    return false;
  }

  void Close() {
    for (auto& c : conns_) {
      if (c->fd >= 0) close(c->fd);
      c->fd = -1;
    }
    conns_.clear();
    if (control_fd_ >= 0) close(control_fd_);
    control_fd_ = -1;
  }

  // The control connection and the request connections.
  bool Open(const std::string& host, const std::string& port, std::string* error) {
    control_fd_ = Connect(host, port, false, opt_.timeout_s, error);
    if (control_fd_ < 0) return false;
    for (int i = 0; i < opt_.connections; ++i) {
      auto c = std::make_unique<Conn>();
      c->fd = Connect(host, port, true, opt_.timeout_s, error);
      if (c->fd < 0) return false;
      c->rbuf = std::make_unique<char[]>(kReadBuffer);
      conns_.push_back(std::move(c));
    }
    return true;
  }

  // Stats whose value is a level, not a count (not carried over a restart).
  static bool IsGauge(const std::string& name) {
    static const char* const kGauges[] = {"pid", "uptime", "time", "curr_items", "bytes",
                                          "limit_maxbytes", "curr_connections", "threads",
                                          "pointer_size", "ssd_index_entries",
                                          "ssd_index_bytes", "ssd_reads_in_flight",
                                          "ssd_regions", "hash_bytes", "total_malloced"};
    for (const char* g : kGauges) {
      if (name == g) return true;
    }
    return name.starts_with("rusage_");
  }

  // `s` with the counters of the processes before a restart added.
  static Stats Continued(const Stats& s, const std::map<std::string, int64_t>& offset) {
    if (offset.empty()) return s;
    Stats out = s;
    for (const auto& [name, add] : offset) {
      auto v = StatInt(s, name);
      if (v) out[name] = std::to_string(*v + add);
    }
    return out;
  }

  // Where stats are read: every 1% of the trace, every window edge, every marker, and
  // one window before and after each marker.
  std::vector<uint64_t> Boundaries() const {
    std::vector<uint64_t> b = {0, n_};
    if (r_.restart_index > 0) {
      b.push_back(static_cast<uint64_t>(r_.restart_index));
      b.push_back(std::min<uint64_t>(n_, static_cast<uint64_t>(r_.restart_index) + n_ / 10));
    }
    for (int i = 1; i < kGridSteps; ++i) b.push_back(n_ * static_cast<uint64_t>(i) / kGridSteps);
    uint64_t w = WindowLen();
    for (uint64_t e = w; e < n_; e += w) b.push_back(e);
    for (const auto& [name, index] : trace_.markers) {
      if (index >= n_) continue;
      b.push_back(index);
      b.push_back(index >= w ? index - w : 0);
      b.push_back(std::min(n_, index + w));
    }
    std::sort(b.begin(), b.end());
    b.erase(std::unique(b.begin(), b.end()), b.end());
    return b;
  }

  uint64_t WindowLen() const {
    return std::max<uint64_t>(1, static_cast<uint64_t>(std::llround(opt_.window * n_)));
  }

  // Issues and completes requests until every request before limit_ is done.
  bool RunUntilDrained() {
    std::vector<pollfd> pfds(conns_.size());
    while (true) {
      Pump();
      for (auto& c : conns_) {
        if (!Flush(*c)) return false;
      }
      if (next_ == limit_ && in_flight_ == 0 && ready_.empty()) return true;
      for (size_t i = 0; i < conns_.size(); ++i) {
        Conn& c = *conns_[i];
        pfds[i] = {c.fd, static_cast<short>(POLLIN | (c.out_pos < c.out.size() ? POLLOUT : 0)), 0};
      }
      int n = poll(pfds.data(), pfds.size(), 100);
      if (n < 0 && errno != EINTR) return Fail(std::string("poll: ") + strerror(errno));
      for (size_t i = 0; i < conns_.size() && n > 0; ++i) {
        if (pfds[i].revents & (POLLIN | POLLHUP | POLLERR)) {
          if (!Read(*conns_[i])) return false;
        }
      }
      uint64_t now = NowNs();
      if (g_interrupted) return Fail("interrupted");
      if (in_flight_ > 0 && now - last_progress_ns_ > static_cast<uint64_t>(opt_.timeout_s * 1e9)) {
        return Fail(Format("no reply for %.1f s", opt_.timeout_s));
      }
      if (now - start_ns_ > static_cast<uint64_t>(opt_.time_limit_s * 1e9)) {
        return Fail(
            Format("time limit of %.0f s reached at request %" PRIu64, opt_.time_limit_s, next_));
      }
    }
  }

  // Starts operations: ready ones first, then new trace requests, within depth and lookahead.
  void Pump() {
    while (in_flight_ < static_cast<uint64_t>(opt_.depth)) {
      if (!ready_.empty()) {
        uint32_t idx = ready_.front();
        ready_.pop_front();
        Issue(idx);
        continue;
      }
      if (next_ >= limit_) break;
      while (oldest_ < next_ && outcome_[oldest_] != Outcome::kPending) ++oldest_;
      if (next_ - oldest_ >= lookahead_) break;
      uint32_t idx = static_cast<uint32_t>(next_++);
      KeySlot& slot = slots_[trace_.requests[idx].key];
      if (slot.busy) {
        if (slot.parked_tail >= 0) {
          parked_next_[static_cast<size_t>(slot.parked_tail)] = static_cast<int32_t>(idx);
        } else {
          slot.parked_head = static_cast<int32_t>(idx);
        }
        slot.parked_tail = static_cast<int32_t>(idx);
      } else {
        slot.busy = true;
        Issue(idx);
      }
    }
  }

  Conn& ConnFor(const TraceRequest& r) { return *conns_[Mix(r.key_id) % conns_.size()]; }

  void Issue(uint32_t idx) {
    const TraceRequest& r = trace_.requests[idx];
    Conn& c = ConnFor(r);
    ++in_flight_;
    if (r.op == TraceOp::kGet) ++r_.c.gets;
    if (r.op == TraceOp::kSet) ++r_.c.sets;
    if (r.op == TraceOp::kDelete) ++r_.c.deletes;
    if (r.op == TraceOp::kGet || (r.op == TraceOp::kSet && opt_.sets == SetMode::kGet)) {
      SendGet(c, idx);
    } else if (r.op == TraceOp::kSet) {
      SendStore(c, idx, Wire::kAdd);
    } else {
      AppendKeyCommand(c, "delete ", r.key_id);
      c.out.append("\r\n");
      c.pending.push_back({idx, Wire::kDelete});
      ++r_.c.wire_deletes;
    }
  }

  void AppendKeyCommand(Conn& c, std::string_view verb, uint64_t key_id) {
    c.out.append(verb);
    c.out.append("t:");
    char digits[24];
    c.out.append(digits, std::to_chars(digits, digits + sizeof(digits), key_id).ptr);
  }

  void SendGet(Conn& c, uint32_t idx) {
    AppendKeyCommand(c, "get ", trace_.requests[idx].key_id);
    c.out.append("\r\n");
    c.pending.push_back({idx, Wire::kGet});
    ++r_.c.wire_gets;
  }

  // Versions: request idx writes version 2*idx+1, and 2*idx+2 for the set after an add.
  static uint64_t VersionOf(uint32_t idx, Wire wire) {
    return 2 * static_cast<uint64_t>(idx) + (wire == Wire::kSetAfterAdd ? 2 : 1);
  }

  uint32_t SizeOf(uint32_t idx) const {
    return ScaledSize(trace_.requests[idx].size, opt_.value_scale);
  }

  void SendStore(Conn& c, uint32_t idx, Wire wire) {
    const TraceRequest& r = trace_.requests[idx];
    uint32_t size = SizeOf(idx);
    AppendKeyCommand(c, wire == Wire::kAdd ? "add " : "set ", r.key_id);
    c.out.append(Format(" 0 %u %u\r\n", opt_.use_ttl ? r.ttl : 0u, size));
    pool_.Append(r.key_id, VersionOf(idx, wire), size, &c.out);
    c.out.append("\r\n");
    c.pending.push_back({idx, wire});
    if (wire == Wire::kAdd) {
      ++r_.c.wire_adds;
    } else {
      ++r_.c.wire_sets;
    }
  }

  // Finishes request idx's operation; the next parked request for its key becomes ready.
  void Complete(uint32_t idx, Outcome outcome) {
    outcome_[idx] = outcome;
    --in_flight_;
    KeySlot& slot = slots_[trace_.requests[idx].key];
    if (slot.parked_head >= 0) {
      uint32_t next = static_cast<uint32_t>(slot.parked_head);
      slot.parked_head = parked_next_[next];
      if (slot.parked_head < 0) slot.parked_tail = -1;
      ready_.push_back(next);  // the slot stays busy, so nothing overtakes it
    } else {
      slot.busy = false;
    }
  }

  bool Flush(Conn& c) {
    while (c.out_pos < c.out.size()) {
      ssize_t n = send(c.fd, c.out.data() + c.out_pos, c.out.size() - c.out_pos, MSG_NOSIGNAL);
      if (n < 0) {
        if (errno == EINTR) continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK) break;
        return Fail(std::string("send: ") + strerror(errno));
      }
      c.out_pos += static_cast<size_t>(n);
      r_.c.bytes_sent += static_cast<uint64_t>(n);
    }
    if (c.out_pos == c.out.size()) {
      c.out.clear();
      c.out_pos = 0;
    } else if (c.out_pos > (1u << 20)) {
      c.out.erase(0, c.out_pos);
      c.out_pos = 0;
    }
    return true;
  }

  bool Read(Conn& c) {
    while (true) {
      if (c.wpos == kReadBuffer) {
        if (c.rpos == 0) return Fail("reply line longer than the read buffer");
        std::memmove(c.rbuf.get(), c.rbuf.get() + c.rpos, c.wpos - c.rpos);
        c.wpos -= c.rpos;
        c.rpos = 0;
      }
      size_t room = kReadBuffer - c.wpos;
      ssize_t n = read(c.fd, c.rbuf.get() + c.wpos, room);
      if (n > 0) {
        r_.c.bytes_received += static_cast<uint64_t>(n);
        last_progress_ns_ = NowNs();
        c.wpos += static_cast<size_t>(n);
        if (!Parse(c)) return false;
        if (static_cast<size_t>(n) < room) return true;
      } else if (n == 0) {
        return Fail("server closed a connection");
      } else if (errno == EAGAIN || errno == EWOULDBLOCK) {
        return true;
      } else if (errno != EINTR) {
        return Fail(std::string("read: ") + strerror(errno));
      }
    }
  }

  bool Parse(Conn& c) {
    char* buf = c.rbuf.get();
    while (true) {
      size_t avail = c.wpos - c.rpos;
      if (c.state == ParseState::kLine) {
        char* begin = buf + c.rpos;
        auto* nl = static_cast<char*>(std::memchr(begin, '\n', avail));
        if (nl == nullptr) break;
        size_t len = static_cast<size_t>(nl - begin);
        if (len == 0 || begin[len - 1] != '\r') return Fail("reply line not terminated by CRLF");
        c.rpos += len + 1;
        if (!OnLine(c, std::string_view(begin, len - 1))) return false;
      } else if (c.state == ParseState::kData) {
        size_t take = static_cast<size_t>(std::min<uint64_t>(c.value_len - c.value_pos, avail));
        if (take == 0) break;
        CheckValueBytes(c, buf + c.rpos, take);
        c.rpos += take;
        if (c.value_pos == c.value_len) c.state = ParseState::kDataEnd;
      } else {
        if (avail < 2) break;
        if (buf[c.rpos] != '\r' || buf[c.rpos + 1] != '\n')
          return Fail("value not followed by CRLF");
        c.rpos += 2;
        c.state = ParseState::kLine;
      }
    }
    if (c.rpos == c.wpos) c.rpos = c.wpos = 0;
    return true;
  }

  static bool IsErrorReply(std::string_view line) {
    return line == "ERROR" || line.starts_with("CLIENT_ERROR") || line.starts_with("SERVER_ERROR");
  }

  void NoteError(const std::string& what) {
    if (r_.first_error.empty()) r_.first_error = what;
  }

  // Starts checking a value of `bytes` bytes for the key of request idx.
  void BeginValue(Conn& c, uint32_t idx, uint64_t bytes) {
    const KeySlot& slot = slots_[trace_.requests[idx].key];
    c.got_value = true;
    c.value_len = bytes;
    c.value_pos = 0;
    c.decided = false;
    c.body = nullptr;
    c.verdict = Verdict::kOk;
    if (slot.state == KeyState::kAbsent) {
      c.verdict = Verdict::kStale;  // a key this client deleted (or never wrote) came back
    } else if (slot.state == KeyState::kKnown && bytes != slot.size) {
      c.verdict = Verdict::kWrongSize;
    }
    c.state = bytes > 0 ? ParseState::kData : ParseState::kDataEnd;
    if (bytes == 0) DecideHeader(c, idx);
  }

  // With the header in hand: checks key and version, and finds the expected body.
  void DecideHeader(Conn& c, uint32_t idx) {
    c.decided = true;
    if (c.verdict != Verdict::kOk) return;
    const TraceRequest& r = trace_.requests[idx];
    const KeySlot& slot = slots_[r.key];
    size_t have = static_cast<size_t>(std::min<uint64_t>(c.value_len, kHeaderLen));
    uint64_t version = slot.version;
    if (have == kHeaderLen) {
      uint64_t key_id = 0;
      uint64_t got_version = 0;
      for (int i = 7; i >= 0; --i) {
        key_id = (key_id << 8) | static_cast<uint8_t>(c.header[i]);
        got_version = (got_version << 8) | static_cast<uint8_t>(c.header[8 + i]);
      }
      if (key_id != r.key_id) {
        c.verdict = Verdict::kWrongKey;
        return;
      }
      if (slot.state == KeyState::kUnknown) {
        version = got_version;  // any version this client may have written
      } else if (got_version != version) {
        c.verdict = Verdict::kStale;
        return;
      }
    } else if (slot.state == KeyState::kKnown) {
      char want[kHeaderLen];
      ValuePool::Header(r.key_id, version, want);
      if (std::memcmp(want, c.header, have) != 0) c.verdict = Verdict::kCorrupt;
      return;
    }
    c.body = pool_.Body(r.key_id, version, c.value_len);
  }

  void CheckValueBytes(Conn& c, const char* data, size_t len) {
    uint32_t idx = c.pending.front().idx;
    if (c.value_pos < kHeaderLen) {
      size_t want = static_cast<size_t>(std::min<uint64_t>(c.value_len, kHeaderLen));
      size_t t = std::min(len, want - static_cast<size_t>(c.value_pos));
      std::memcpy(c.header + c.value_pos, data, t);
      c.value_pos += t;
      data += t;
      len -= t;
      if (c.value_pos == want) DecideHeader(c, idx);
    }
    if (len > 0 && c.verdict == Verdict::kOk && c.body != nullptr &&
        std::memcmp(c.body + (c.value_pos - kHeaderLen), data, len) != 0) {
      c.verdict = Verdict::kCorrupt;
    }
    c.value_pos += len;
  }

  bool OnLine(Conn& c, std::string_view line) {
    if (c.pending.empty()) return Fail("reply without a request: " + std::string(line));
    Pending p = c.pending.front();
    const TraceRequest& r = trace_.requests[p.idx];
    KeySlot& slot = slots_[r.key];
    switch (p.wire) {
      case Wire::kGet: {
        if (line.starts_with("VALUE ")) {
          auto t = Tokens(line);
          uint64_t bytes = 0;
          uint32_t flags = 0;
          if (c.got_value || t.size() < 4 || t.size() > 5 || !ParseInt(t[2], &flags) ||
              !ParseInt(t[3], &bytes)) {
            return Fail("unexpected reply to get: " + std::string(line));
          }
          char digits[24];
          std::string key = "t:";
          key.append(digits, std::to_chars(digits, digits + sizeof(digits), r.key_id).ptr);
          if (t[1] != key) return Fail("reply for key " + std::string(t[1]) + " to get " + key);
          BeginValue(c, p.idx, bytes);
          return true;
        }
        if (line == "END") {
          c.pending.pop_front();
          bool hit = c.got_value && c.verdict == Verdict::kOk;
          if (c.got_value && !hit) {
            switch (c.verdict) {
              case Verdict::kWrongKey:
                ++r_.c.wrong_key;
                break;
              case Verdict::kStale:
                ++r_.c.stale;
                break;
              case Verdict::kWrongSize:
                ++r_.c.wrong_size;
                break;
              default:
                ++r_.c.corrupt;
            }
            NoteError(Format("request %u: wrong value for t:%" PRIu64 " (%s)", p.idx, r.key_id,
                             c.verdict == Verdict::kStale       ? "stale version"
                             : c.verdict == Verdict::kWrongKey  ? "another key's value"
                             : c.verdict == Verdict::kWrongSize ? "wrong size"
                                                                : "corrupt bytes"));
          }
          c.got_value = false;
          Count(r.op, hit);
          if (hit) {
            Complete(p.idx, Outcome::kHit);
          } else {
            // A miss (or a wrong value, treated as one): the cache-aside client fills it.
            SendStore(c, p.idx, Wire::kSetAfterMiss);
          }
          return true;
        }
        if (IsErrorReply(line)) {
          c.pending.pop_front();
          ++r_.c.error_replies;
          NoteError("get: " + std::string(line));
          Count(r.op, false);
          Complete(p.idx, Outcome::kMiss);
          return true;
        }
        return Fail("unexpected reply to get: " + std::string(line));
      }
      case Wire::kAdd:
        c.pending.pop_front();
        if (line == "STORED") {
          slot.version = VersionOf(p.idx, p.wire);
          slot.size = SizeOf(p.idx);
          slot.state = KeyState::kKnown;
          ++r_.c.set_misses;
          Complete(p.idx, Outcome::kSetMiss);
        } else if (line == "NOT_STORED") {
          ++r_.c.set_hits;
          SendStore(c, p.idx, Wire::kSetAfterAdd);
        } else if (IsErrorReply(line) || line == "EXISTS" || line == "NOT_FOUND") {
          ++r_.c.error_replies;
          NoteError("add: " + std::string(line));
          slot.state = KeyState::kUnknown;
          ++r_.c.set_misses;
          Complete(p.idx, Outcome::kSetMiss);
        } else {
          return Fail("unexpected reply to add: " + std::string(line));
        }
        return true;
      case Wire::kSetAfterMiss:
      case Wire::kSetAfterAdd: {
        c.pending.pop_front();
        Outcome done = p.wire == Wire::kSetAfterAdd ? Outcome::kSetHit : Outcome::kMiss;
        if (line == "STORED") {
          slot.version = VersionOf(p.idx, p.wire);
          slot.size = SizeOf(p.idx);
          slot.state = KeyState::kKnown;
        } else if (IsErrorReply(line) || line == "NOT_STORED" || line == "EXISTS" ||
                   line == "NOT_FOUND") {
          ++r_.c.error_replies;
          NoteError("set: " + std::string(line));
          slot.state = KeyState::kUnknown;  // the server may keep an older version
        } else {
          return Fail("unexpected reply to set: " + std::string(line));
        }
        Complete(p.idx, done);
        return true;
      }
      case Wire::kDelete:
        c.pending.pop_front();
        if (line == "DELETED" || line == "NOT_FOUND") {
          slot.state = KeyState::kAbsent;
        } else if (IsErrorReply(line)) {
          ++r_.c.error_replies;
          NoteError("delete: " + std::string(line));
          slot.state = KeyState::kUnknown;
        } else {
          return Fail("unexpected reply to delete: " + std::string(line));
        }
        Complete(p.idx, Outcome::kDeleted);
        return true;
    }
    return Fail("internal: unknown request kind");
  }

  // Counts a lookup: a trace get, or a trace set replayed as a get (--sets get).
  void Count(TraceOp op, bool hit) {
    if (op == TraceOp::kSet) {
      ++(hit ? r_.c.set_hits : r_.c.set_misses);
    } else {
      ++(hit ? r_.c.get_hits : r_.c.get_misses);
    }
  }

  const Options& opt_;
  const Trace& trace_;
  const uint64_t n_;
  const ValuePool& pool_;
  RunResult& r_;
  std::function<bool(std::string*)> restart_;

  std::vector<std::unique_ptr<Conn>> conns_;
  int control_fd_ = -1;
  std::vector<KeySlot> slots_;
  std::vector<int32_t> parked_next_;
  std::vector<Outcome> outcome_;
  std::deque<uint32_t> ready_;
  uint64_t next_ = 0;    // next trace request to read
  uint64_t limit_ = 0;   // do not read past this one yet
  uint64_t oldest_ = 0;  // no unfinished request before this one
  uint64_t lookahead_ = 128;
  uint64_t in_flight_ = 0;
  uint64_t start_ns_ = 0;
  uint64_t last_progress_ns_ = 0;
};

// ---------------------------------------------------------------------------------------
// Reporting

bool IsTierStat(const std::string& name) {
  return name.starts_with("ssd_") || name.starts_with("tier_");
}

int64_t StatDelta(const Stats& before, const Stats& after, const std::string& name) {
  return StatInt(after, name).value_or(0) - StatInt(before, name).value_or(0);
}

// Hit ratios over [a, b): all hits (client-side), and RAM hits (hits minus the server's SSD
// hit counter between those boundaries; a and b must be boundaries for the RAM figure).
struct RangeRatio {
  uint64_t lookups = 0;
  uint64_t hits = 0;
  int64_t ram_hits = -1;  // -1: no SSD hit counter, RAM hits = hits
};

RangeRatio RatioOver(const RunResult& r, uint64_t a, uint64_t b) {
  RangeRatio out;
  out.lookups = r.prefix_lookups[b] - r.prefix_lookups[a];
  out.hits = r.prefix_hits[b] - r.prefix_hits[a];
  auto ia = std::lower_bound(r.boundaries.begin(), r.boundaries.end(), a);
  auto ib = std::lower_bound(r.boundaries.begin(), r.boundaries.end(), b);
  if (ia != r.boundaries.end() && *ia == a && ib != r.boundaries.end() && *ib == b) {
    const Stats& sa = r.boundary_stats[static_cast<size_t>(ia - r.boundaries.begin())];
    const Stats& sb = r.boundary_stats[static_cast<size_t>(ib - r.boundaries.begin())];
    if (StatInt(sb, r.opt.ssd_hits_stat)) {
      out.ram_hits = static_cast<int64_t>(out.hits) - StatDelta(sa, sb, r.opt.ssd_hits_stat);
    }
  }
  return out;
}

double HitRatio(const RangeRatio& x, bool ram) {
  if (x.lookups == 0) return 0;
  double hits =
      ram && x.ram_hits >= 0 ? static_cast<double>(x.ram_hits) : static_cast<double>(x.hits);
  return hits / static_cast<double>(x.lookups);
}

std::optional<uint64_t> Marker(const RunResult& r, const std::string& name) {
  for (const auto& [m, index] : r.markers) {
    if (m == name && index < r.ws.requests) return index;
  }
  return std::nullopt;
}

void Report(RunResult& r) {
  const Counters& c = r.c;
  const WorkingSet& ws = r.ws;
  std::printf("== %s: %s\n", r.name.c_str(), r.trace_name.c_str());
  std::printf("  trace: %" PRIu64 " requests (get %" PRIu64 ", set %" PRIu64 ", delete %" PRIu64
              "), %" PRIu64 " objects, value scale %g, sets %s%s\n",
              ws.requests, ws.gets, ws.sets, ws.deletes, ws.objects, r.opt.value_scale,
              r.opt.sets == SetMode::kWrite ? "written (add, then set if present)"
                                            : "replayed as gets (libCacheSim)",
              r.opt.use_ttl ? ", TTLs sent" : "");
  std::printf("  working set: %" PRIu64 " B first-seen sizes, %" PRIu64
              " B largest sizes; budget base %" PRIu64 " B (%s%s)\n",
              ws.first_bytes, ws.max_bytes, r.budget.base,
              r.opt.wss == WssMode::kFirst ? "first-seen" : "largest",
              r.opt.item_overhead
                  ? Format(" + %" PRIu64 " B per object", r.opt.item_overhead).c_str()
                  : "");
  std::printf(
      "  budget: RAM %.4g x %" PRIu64 " = %" PRIu64 " B, SSD %.4g x %" PRIu64 " = %" PRIu64
      " B; server: %s\n",
      r.opt.ram_share, r.budget.base, r.budget.ram_bytes, r.opt.ssd_share, r.budget.base,
      r.budget.ssd_bytes,
      r.server_ram_note.empty() ? "not started here (its own size)" : r.server_ram_note.c_str());
  if (!r.server_command.empty()) std::printf("  server: %s\n", r.server_command.c_str());
  if (auto limit =
          StatInt(r.stats_after.empty() ? r.stats_before : r.stats_after, "limit_maxbytes")) {
    std::printf("  server limit_maxbytes: %" PRId64 "\n", *limit);
  }
  if (!r.notes.empty()) std::printf("  note: %s\n", r.notes.c_str());
  if (!r.ok) std::printf("  FAILED: %s\n", r.failure.c_str());
  uint64_t done = c.gets + c.sets + c.deletes;
  std::printf("  replay: %" PRIu64 " requests in %.2f s (%.0f req/s), %d conns, depth %d\n", done,
              r.seconds, r.seconds > 0 ? static_cast<double>(done) / r.seconds : 0,
              r.opt.connections, r.opt.depth);
  std::printf("  gets %" PRIu64 ": hits %" PRIu64 ", misses %" PRIu64 " -> get miss ratio %s\n",
              c.gets, c.get_hits, c.get_misses, Ratio(c.get_misses, c.gets).c_str());
  std::printf("  sets %" PRIu64 ": key present %" PRIu64 ", absent %" PRIu64
              " (%s); deletes %" PRIu64 "\n",
              c.sets, c.set_hits, c.set_misses,
              r.opt.sets == SetMode::kWrite ? "from add" : "looked up with get", c.deletes);
  std::printf("  requests %" PRIu64 " (gets + sets): misses %" PRIu64 " -> request miss ratio %s\n",
              c.gets + c.sets, c.get_misses + c.set_misses,
              Ratio(c.get_misses + c.set_misses, c.gets + c.sets).c_str());
  std::printf("  wire: get %" PRIu64 ", set %" PRIu64 ", add %" PRIu64 ", delete %" PRIu64
              "; %.1f MB sent, %.1f MB received\n",
              c.wire_gets, c.wire_sets, c.wire_adds, c.wire_deletes,
              static_cast<double>(c.bytes_sent) / 1e6, static_cast<double>(c.bytes_received) / 1e6);
  std::printf("  errors: %" PRIu64 " wrong values (wrong key %" PRIu64 ", stale %" PRIu64
              ", wrong size %" PRIu64 ", corrupt %" PRIu64 "), %" PRIu64 " error replies%s%s\n",
              c.value_errors(), c.wrong_key, c.stale, c.wrong_size, c.corrupt, c.error_replies,
              r.first_error.empty() ? "" : "; first: ", r.first_error.c_str());
  if (r.ref.best >= 0) {
    std::printf("  reference (libCacheSim, %g%%): best %.4f (%s), LRU %.4f\n",
                100 * std::max(r.opt.ram_share, r.opt.ssd_share), r.ref.best,
                r.ref.best_name.c_str(), r.ref.lru);
  }
  if (r.have_stats) {
    std::vector<std::string> names = {"get_hits", "get_misses", "cmd_get", "cmd_set", "evictions"};
    for (const auto& [name, value] : r.stats_after) {
      if (IsTierStat(name)) names.push_back(name);
    }
    std::string line;
    for (const std::string& name : names) {
      if (!StatInt(r.stats_after, name)) continue;
      line += Format(" %s %+" PRId64, name.c_str(), StatDelta(r.stats_before, r.stats_after, name));
    }
    std::printf("  server stats delta:%s\n", line.c_str());
    auto items = StatInt(r.stats_after, "curr_items");
    auto bytes = StatInt(r.stats_after, "bytes");
    if (items && bytes) {
      std::printf("  server at end: %" PRId64 " items, %" PRId64
                  " bytes (its own count of what it holds: %.2f x the RAM budget)\n",
                  *items, *bytes,
                  r.budget.ram_bytes ? static_cast<double>(*bytes) / r.budget.ram_bytes : 0.0);
    }
  }
  if (!r.ok || r.prefix_lookups.empty()) return;

  // Hit ratio per window.
  uint64_t n = r.ws.requests;
  uint64_t w = std::max<uint64_t>(1, static_cast<uint64_t>(std::llround(r.opt.window * n)));
  std::string all;
  std::string ram;
  bool have_ram = false;
  for (uint64_t a = 0; a < n; a += w) {
    RangeRatio x = RatioOver(r, a, std::min(n, a + w));
    all += x.lookups ? Format(" %.3f", HitRatio(x, false)) : " -";
    ram += x.lookups ? Format(" %.3f", HitRatio(x, true)) : " -";
    have_ram |= x.ram_hits >= 0;
  }
  std::printf("  hit ratio per %.3g%% window:%s\n", 100 * r.opt.window, all.c_str());
  if (have_ram) std::printf("  RAM hit ratio per window:%s\n", ram.c_str());

  // --restart-at: the window of 10% of the trace that follows the restart point.
  if (r.restart_index > 0 && !r.prefix_lookups.empty()) {
    uint64_t a = static_cast<uint64_t>(r.restart_index);
    uint64_t b = std::min<uint64_t>(r.prefix_lookups.size() - 1, a + (r.prefix_lookups.size() - 1) / 10);
    RangeRatio x = RatioOver(r, a, b);
    std::printf("  %s at request %" PRIu64 ": miss ratio %.4f over the next 10%% of the trace "
                "(RAM hit ratio %.4f)\n",
                r.restarted ? (r.opt.restart_mode == "cold" ? "cold restart (sketch and hot keys removed)"
                                                            : "warm restart")
                            : "no restart (baseline)",
                a, 1 - HitRatio(x, false), x.ram_hits >= 0 ? HitRatio(x, true) : -1.0);
  }
  // Scan and shift markers (strata_trace_gen).
  auto scan_start = Marker(r, "scan_start");
  auto scan_end = Marker(r, "scan_end");
  if (scan_start && scan_end) {
    RangeRatio before = RatioOver(r, *scan_start >= w ? *scan_start - w : 0, *scan_start);
    RangeRatio during = RatioOver(r, *scan_start, *scan_end);
    RangeRatio after = RatioOver(r, *scan_end, std::min(n, *scan_end + w));
    double b = HitRatio(before, true);
    double a = HitRatio(after, true);
    std::printf("  scan [%" PRIu64 ", %" PRIu64
                "): RAM hit ratio %.4f in the window before, "
                "%.4f during, %.4f in the window after (after - before %+.4f)\n",
                *scan_start, *scan_end, b, HitRatio(during, true), a, a - b);
    r.fields["scan_before_hit_ratio"] = b;
    r.fields["scan_after_hit_ratio"] = a;
    r.fields["scan_delta"] = a - b;
  }
  if (auto shift = Marker(r, "shift")) {
    RangeRatio before = RatioOver(r, *shift >= w ? *shift - w : 0, *shift);
    double base = HitRatio(before, true);
    // Recovered: the first 1% step after the shift whose hit ratio is back within the
    // tolerance of the window before it.
    std::optional<uint64_t> recovered;
    std::string steps;
    uint64_t step = std::max<uint64_t>(1, n / kGridSteps);
    for (auto it = std::upper_bound(r.boundaries.begin(), r.boundaries.end(), *shift);
         it != r.boundaries.end(); ++it) {
      uint64_t a = *(it - 1);
      if (a < *shift) continue;
      RangeRatio x = RatioOver(r, a, *it);
      if (*it - a < step / 2 && *it != n) continue;  // a sliver between two boundaries
      double h = HitRatio(x, true);
      if (steps.size() < 7 * 15) steps += Format(" %.3f", h);
      if (!recovered && x.lookups > 0 && h >= base - r.opt.recovery_tolerance) recovered = *it;
    }
    std::printf("  shift at %" PRIu64
                ": RAM hit ratio %.4f in the window before; per 1%% after:%s\n",
                *shift, base, steps.c_str());
    if (recovered) {
      double pct = 100.0 * static_cast<double>(*recovered - *shift) / static_cast<double>(n);
      std::printf("  shift: back within %.3g of it after %" PRIu64
                  " requests (%.1f%% of the trace)\n",
                  r.opt.recovery_tolerance, *recovered - *shift, pct);
      r.fields["shift_recovery_share"] = pct / 100;
    } else {
      std::printf("  shift: not back within %.3g by the end of the trace\n",
                  r.opt.recovery_tolerance);
      r.fields["shift_recovery_share"] = -1;
    }
    r.fields["shift_before_hit_ratio"] = base;
  }
}

void FillFields(RunResult& r) {
  const Counters& c = r.c;
  auto& f = r.fields;
  auto ratio = [](uint64_t a, uint64_t b) {
    return b ? static_cast<double>(a) / static_cast<double>(b) : 0.0;
  };
  f["ok"] = r.ok ? 1 : 0;
  f["requests"] = static_cast<double>(c.gets + c.sets + c.deletes);
  f["gets"] = static_cast<double>(c.gets);
  f["get_hits"] = static_cast<double>(c.get_hits);
  f["get_misses"] = static_cast<double>(c.get_misses);
  f["sets"] = static_cast<double>(c.sets);
  f["set_hits"] = static_cast<double>(c.set_hits);
  f["set_misses"] = static_cast<double>(c.set_misses);
  f["deletes"] = static_cast<double>(c.deletes);
  f["get_miss_ratio"] = ratio(c.get_misses, c.gets);
  f["request_miss_ratio"] = ratio(c.get_misses + c.set_misses, c.gets + c.sets);
  if (r.restart_index > 0 && !r.prefix_lookups.empty()) {
    uint64_t a = static_cast<uint64_t>(r.restart_index);
    uint64_t b = std::min<uint64_t>(r.prefix_lookups.size() - 1, a + (r.prefix_lookups.size() - 1) / 10);
    RangeRatio x = RatioOver(r, a, b);
    f["restart_index"] = static_cast<double>(a);
    f["restarted"] = r.restarted ? 1 : 0;
    f["restart_window_miss_ratio"] = 1 - HitRatio(x, false);
  }
  f["wire_gets"] = static_cast<double>(c.wire_gets);
  f["wire_sets"] = static_cast<double>(c.wire_sets);
  f["wire_adds"] = static_cast<double>(c.wire_adds);
  f["wire_deletes"] = static_cast<double>(c.wire_deletes);
  f["errors"] = static_cast<double>(c.value_errors());
  f["wrong_key"] = static_cast<double>(c.wrong_key);
  f["stale"] = static_cast<double>(c.stale);
  f["wrong_size"] = static_cast<double>(c.wrong_size);
  f["corrupt"] = static_cast<double>(c.corrupt);
  f["error_replies"] = static_cast<double>(c.error_replies);
  f["seconds"] = r.seconds;
  f["objects"] = static_cast<double>(r.ws.objects);
  f["wss_bytes"] = static_cast<double>(r.budget.base);
  f["ram_bytes"] = static_cast<double>(r.budget.ram_bytes);
  f["ssd_bytes"] = static_cast<double>(r.budget.ssd_bytes);
  f["ram_share"] = r.opt.ram_share;
  f["ssd_share"] = r.opt.ssd_share;
  if (r.ref.best >= 0) {
    f["ref_best"] = r.ref.best;
    f["ref_lru"] = r.ref.lru;
  }
  if (r.have_stats) {
    if (auto v = StatInt(r.stats_after, "bytes")) f["server_bytes_end"] = static_cast<double>(*v);
    if (auto v = StatInt(r.stats_after, "curr_items")) {
      f["server_items_end"] = static_cast<double>(*v);
    }
    for (const auto& [name, value] : r.stats_after) {
      if (IsTierStat(name) || name == "get_hits" || name == "get_misses" || name == "evictions") {
        if (StatInt(r.stats_after, name)) {
          f["server_" + name] = static_cast<double>(StatDelta(r.stats_before, r.stats_after, name));
        }
      }
    }
  }
}

void PrintJson(const RunResult& r) {
  std::string out = "JSON {\"name\": \"" + r.name + "\", \"trace\": \"" + r.trace_name + "\"";
  if (!r.ok) {
    std::string why;
    for (char ch : r.failure) {
      if (ch == '"' || ch == '\\') why.push_back('\\');
      if (static_cast<unsigned char>(ch) >= 0x20) why.push_back(ch);
    }
    out += ", \"failure\": \"" + why + "\"";
  }
  for (const auto& [k, v] : r.fields) {
    if (v == std::floor(v) && std::fabs(v) < 1e15) {
      out += Format(", \"%s\": %.0f", k.c_str(), v);
    } else {
      out += Format(", \"%s\": %.6f", k.c_str(), v);
    }
  }
  out += "}";
  std::printf("%s\n", out.c_str());
}

// Checks --expect; returns the unmet expectations.
std::vector<std::string> CheckExpect(const RunResult& r) {
  std::vector<std::string> unmet;
  std::string_view spec = r.opt.expect;
  while (!spec.empty()) {
    size_t comma = spec.find(',');
    std::string item = Trim(spec.substr(0, comma));
    spec = comma == std::string_view::npos ? std::string_view() : spec.substr(comma + 1);
    if (item.empty()) continue;
    size_t eq = item.find('=');
    if (eq == std::string::npos) {
      unmet.push_back("bad --expect item " + item);
      continue;
    }
    std::string key = Trim(item.substr(0, eq));
    double want = std::strtod(item.c_str() + eq + 1, nullptr);
    auto it = r.fields.find(key);
    if (it == r.fields.end()) {
      unmet.push_back(key + " is not reported");
    } else if (std::fabs(it->second - want) > 5e-5) {
      unmet.push_back(Format("%s = %g, expected %g", key.c_str(), it->second, want));
    }
  }
  return unmet;
}

std::string Column(const RunResult& r, const std::string& stat) {
  auto it = r.fields.find("server_" + stat);
  return it == r.fields.end() ? "-" : Format("%.0f", it->second);
}

void PrintTable(const std::vector<RunResult>& results) {
  std::printf("\n%-30s %-20s %6s %6s %12s %9s %8s %8s %8s %16s %11s %12s %10s %10s %7s %7s\n",
              "config", "trace", "ram", "ssd", "ram_bytes", "requests", "get_miss", "req_miss",
              "ref_lru", "ref_best", "held_bytes", "ssd_written", "promotions", "adm_reject",
              "errors", "secs");
  for (const RunResult& r : results) {
    std::string best =
        r.ref.best >= 0 ? Format("%.4f %s", r.ref.best, r.ref.best_name.c_str()) : "-";
    std::string lru = r.ref.lru >= 0 ? Format("%.4f", r.ref.lru) : "-";
    std::string get_miss = r.ok ? Ratio(r.c.get_misses, r.c.gets) : "FAILED";
    std::string req_miss = r.ok ? Ratio(r.c.get_misses + r.c.set_misses, r.c.gets + r.c.sets) : "-";
    std::printf("%-30s %-20s %6.3g %6.3g %12" PRIu64 " %9" PRIu64
                " %8s %8s %8s %16s %11s %12s %10s %10s %7" PRIu64 " %7.1f\n",
                r.name.c_str(), r.trace_name.c_str(), r.opt.ram_share, r.opt.ssd_share,
                r.budget.ram_bytes, r.c.gets + r.c.sets + r.c.deletes, get_miss.c_str(),
                req_miss.c_str(), lru.c_str(), best.c_str(), Column(r, "bytes_end").c_str(),
                Column(r, "ssd_device_bytes_written").c_str(), Column(r, "ssd_promotions").c_str(),
                Column(r, "ssd_admissions_rejected").c_str(), r.c.value_errors(), r.seconds);
  }
}

// ---------------------------------------------------------------------------------------
// Main

int Main(int argc, char** argv) {
  Options base;
  std::vector<NamedConfig> configs;
  ParseArgs(std::vector<std::string>(argv + 1, argv + argc), &base, &configs, "");
  if (configs.empty()) configs.push_back({"run", {}});

  struct sigaction sa {};
  sa.sa_handler = OnSignal;
  sigaction(SIGINT, &sa, nullptr);
  sigaction(SIGTERM, &sa, nullptr);
  signal(SIGPIPE, SIG_IGN);

  std::map<std::string, std::shared_ptr<Trace>> traces;
  std::vector<RunResult> results;
  bool any_failed = false;
  bool any_wrong = false;
  for (const NamedConfig& config : configs) {
    if (g_interrupted) break;
    Options opt = base;
    ParseArgs(config.args, &opt, nullptr, "config " + config.name);
    if (opt.trace.empty()) UsageError("no --trace (config " + config.name + ")");
    std::string path = ResolveTrace(opt);
    if (!traces.count(path)) {
      std::string error;
      std::shared_ptr<Trace> t;
      if (!LoadTrace(path, &t, &error)) {
        std::fprintf(stderr, "strata_trace_replay: %s\n", error.c_str());
        return 2;
      }
      traces[path] = t;
    }
    const Trace& trace = *traces[path];
    uint64_t n = trace.requests.size();
    if (opt.max_requests > 0) n = std::min<uint64_t>(n, opt.max_requests);

    RunResult r;
    r.name = config.name;
    r.trace_name = trace.name;
    r.opt = opt;
    r.markers = trace.markers;
    if (opt.restart_at > 0) {
      r.restart_index = static_cast<int64_t>(std::llround(opt.restart_at * static_cast<double>(n)));
    }
    r.ws = MeasureWorkingSet(trace, n, opt.value_scale);
    uint64_t bytes = opt.wss == WssMode::kFirst ? r.ws.first_bytes : r.ws.max_bytes;
    r.budget.base = bytes + r.ws.objects * opt.item_overhead;
    r.budget.ram_bytes =
        static_cast<uint64_t>(std::llround(opt.ram_share * static_cast<double>(r.budget.base)));
    // Rounded down to whole 4 KiB blocks, as a device size must be.
    r.budget.ssd_bytes =
        static_cast<uint64_t>(std::llround(opt.ssd_share * static_cast<double>(r.budget.base))) /
        4096 * 4096;
    r.budget.max_value = r.ws.max_value;
    r.ref = LookUpReference(path, trace.name, std::max(opt.ram_share, opt.ssd_share));

    ValuePool pool(opt.seed, r.ws.max_value);
    ServerProcess server;
    std::string host = opt.host;
    std::string port = opt.port;
    bool started = true;
    if (!opt.server_bin.empty()) {
      std::string error;
      if (!server.Start(opt, r.budget, &error)) {
        r.ok = false;
        r.failure = error;
        started = false;
      } else {
        host = "127.0.0.1";
        port = std::to_string(server.port());
      }
      r.server_command = server.command();
      r.server_ram_note = server.ram_note();
      r.notes = server.notes();
    }
    if (started) {
      std::function<bool(std::string*)> restart;
      if (r.restart_index > 0 && opt.restart_mode != "none") {
        if (opt.server_bin.empty()) {
          r.notes += "--restart-at needs --server-bin: no restart; ";
        } else {
          restart = [&server, &opt](std::string* error) {
            return server.Restart(opt, opt.restart_mode == "cold", error);
          };
        }
      }
      Replayer replayer(opt, trace, n, pool, &r, std::move(restart));
      replayer.Run(host, port);
    }
    server.Stop();
    FillFields(r);
    Report(r);
    PrintJson(r);
    std::vector<std::string> unmet = CheckExpect(r);
    for (const std::string& u : unmet) std::printf("  EXPECTATION FAILED: %s\n", u.c_str());
    std::fflush(stdout);
    if (!r.ok) {
      any_failed = true;
    } else if (r.c.value_errors() > 0 || !unmet.empty()) {
      any_wrong = true;
    }
    results.push_back(std::move(r));
  }
  PrintTable(results);
  if (any_failed || g_interrupted) return 2;
  return any_wrong ? 3 : 0;
}

}  // namespace
}  // namespace strata::bench

int main(int argc, char** argv) { return strata::bench::Main(argc, argv); }
