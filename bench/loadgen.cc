// strata_loadgen: a memcached text-protocol load generator.
//
// Each connection keeps `--pipeline` requests in flight: it sends a batch, parses exactly
// that many replies, then sends the next batch. Keys are drawn uniformly at random over
// the key space from a per-connection seeded RNG; gets and sets are mixed by --get-ratio.
// Every value is self-describing (its first 8 bytes are the key's index in hex), so a
// reply with another key's value, a wrong length or a malformed frame is an error.
// A request's latency runs from the send of its batch to the read that completed its
// reply (CLOCK_MONOTONIC); latencies go into a log-bucketed histogram (< 1% error).
// Values are streamed through a fixed read buffer, never accumulated: 1 MiB values cost
// no more memory than 100-byte ones, and large set payloads are sent from one shared
// buffer with writev.
//
// Output: one human-readable line and one line prefixed "JSON " for scripts.
// Exit status: 0 done, 1 bad usage, 2 connection failure (cannot connect, server closed
// a connection, malformed reply or timeout).
//
// Thread safety: each worker thread owns its connections, its epoll instance and its
// counters; threads share only the read-only options and one atomic request counter.

#include <fcntl.h>
#include <limits.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <bit>
#include <cerrno>
#include <charconv>
#include <cinttypes>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "common/units.h"

namespace strata::bench {
namespace {

constexpr size_t kTagLen = 8;                 // value bytes that encode the key's index
constexpr size_t kInlineFiller = 4096;        // larger payloads go out as their own iovec
constexpr size_t kMinReadBuffer = 16 << 10;   // per connection
constexpr size_t kMaxReadBuffer = 256 << 10;  // per connection

uint64_t NowNs() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<uint64_t>(ts.tv_sec) * 1000000000u + static_cast<uint64_t>(ts.tv_nsec);
}

struct Options {
  std::string host = "127.0.0.1";
  std::string port = "11211";
  std::string unix_socket;  // when set, connect there instead of host:port
  int connections = 50;
  int threads = 1;
  int pipeline = 16;
  int warmup_pipeline = 0;  // 0: max(pipeline, 16)
  uint64_t keys = 100000;
  double zipf = 0;  // > 0: keys drawn with Zipf's law of this exponent (key 0 the hottest)
  uint64_t value_size = 100;
  double get_ratio = 0.9;
  double delete_ratio = 0;  // of the requests that are not gets
  double duration_s = 10;
  uint64_t requests = 0;  // when > 0, run this many requests instead of a duration
  bool warmup = false;
  bool warmup_only = false;
  uint64_t warmup_rate = 0;    // sets/s over all connections while preloading; 0 = unlimited
  bool random_values = false;  // incompressible value filler
  bool meta_gets = false;      // gets as memcached's meta get, "mg <key> v"
  uint64_t seed = 42;
  std::string key_prefix = "key:";
  double timeout_s = 10;  // a phase fails when no reply arrives for this long
};

void PrintUsage(FILE* out) {
  std::fprintf(out,
               "usage: strata_loadgen [options]\n"
               "  --host H             server address (127.0.0.1)\n"
               "  --port N             server port (11211)\n"
               "  --unix-socket PATH   connect to a unix socket instead of host:port\n"
               "  --connections N      connections (50)\n"
               "  --threads N          load generator threads (1)\n"
               "  --pipeline N         requests in flight per connection (16)\n"
               "  --keys N             key space size (100000)\n"
               "  --zipf S             draw keys by Zipf's law with exponent S (e.g. 0.99;\n"
               "                       key 0 hottest) instead of uniformly\n"
               "  --value-size N       value bytes, suffixes k/m allowed (100)\n"
               "  --get-ratio F        fraction of gets, the rest are sets (0.9)\n"
               "  --delete-ratio F     of the requests that are not gets, the fraction\n"
               "                       that are deletes instead of sets (0)\n"
               "  --duration T         measured phase length: 10s, 500ms, 2m (10s)\n"
               "  --requests N         run N requests instead of a duration\n"
               "  --warmup             preload every key with pipelined sets first\n"
               "  --warmup-only        preload every key, then exit without measuring\n"
               "  --warmup-pipeline N  sets in flight per connection while preloading\n"
               "  --warmup-rate N      at most N sets/s while preloading, all connections\n"
               "                       together; suffixes k/m allowed (0 = unlimited)\n"
               "  --random-values      incompressible values (pseudo-random printable filler)\n"
               "  --meta-gets          send gets as meta gets, \"mg <key> v\" (replies VA/EN)\n"
               "  --seed N             RNG seed (42)\n"
               "  --key-prefix S       key prefix (\"key:\")\n"
               "  --timeout T          fail when no reply arrives for this long (10s)\n");
}

[[noreturn]] void UsageError(const std::string& message) {
  std::fprintf(stderr, "strata_loadgen: %s\n", message.c_str());
  PrintUsage(stderr);
  std::exit(1);
}

// A count or a size: a whole number with an optional binary unit (k = 1024,
// m = 2^20, ...), as common::ParseSize() reads sizes.
uint64_t ParseCount(std::string_view name, std::string_view text) {
  const std::optional<uint64_t> value = common::ParseSize(text);
  if (!value) UsageError("bad value for " + std::string(name) + ": " + std::string(text));
  return *value;
}

double ParseDouble(std::string_view name, const std::string& text, std::string* suffix) {
  char* end = nullptr;
  errno = 0;
  double value = std::strtod(text.c_str(), &end);
  if (end == text.c_str() || errno != 0 || !std::isfinite(value)) {
    UsageError("bad value for " + std::string(name) + ": " + text);
  }
  *suffix = end;
  return value;
}

// "10s", "1.5m", "500ms", a bare number of seconds (common::ParseDurationSeconds()).
double ParseSeconds(std::string_view name, const std::string& text) {
  const std::optional<double> value = common::ParseDurationSeconds(text);
  if (!value) UsageError("bad duration for " + std::string(name) + ": " + text);
  return *value;
}

Options ParseOptions(int argc, char** argv) {
  Options opt;
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    std::string value;
    bool has_value = false;
    if (size_t eq = arg.find('='); arg.rfind("--", 0) == 0 && eq != std::string::npos) {
      value = arg.substr(eq + 1);
      arg.resize(eq);
      has_value = true;
    }
    auto flag = [&]() {
      if (has_value) UsageError(arg + " takes no value");
    };
    auto next = [&]() -> std::string {
      if (has_value) return value;
      if (i + 1 >= argc) UsageError(arg + " needs a value");
      return argv[++i];
    };
    auto positive = [&](uint64_t v) -> uint64_t {
      if (v == 0 || v > INT_MAX)
        UsageError(arg + " must be between 1 and " + std::to_string(INT_MAX));
      return v;
    };
    if (arg == "--help" || arg == "-h") {
      PrintUsage(stdout);
      std::exit(0);
    } else if (arg == "--host") {
      opt.host = next();
    } else if (arg == "--unix-socket") {
      opt.unix_socket = next();
    } else if (arg == "--port") {
      opt.port = next();
    } else if (arg == "--connections") {
      opt.connections = static_cast<int>(positive(ParseCount(arg, next())));
    } else if (arg == "--threads") {
      opt.threads = static_cast<int>(positive(ParseCount(arg, next())));
    } else if (arg == "--pipeline") {
      opt.pipeline = static_cast<int>(positive(ParseCount(arg, next())));
    } else if (arg == "--warmup-rate") {
      opt.warmup_rate = ParseCount(arg, next());
    } else if (arg == "--warmup-pipeline") {
      opt.warmup_pipeline = static_cast<int>(positive(ParseCount(arg, next())));
    } else if (arg == "--keys") {
      opt.keys = positive(ParseCount(arg, next()));
    } else if (arg == "--zipf") {
      std::string suffix;
      opt.zipf = ParseDouble(arg, next(), &suffix);
      if (!suffix.empty() || opt.zipf <= 0 || opt.zipf > 10) {
        UsageError("--zipf must be an exponent in (0, 10]");
      }
    } else if (arg == "--value-size") {
      opt.value_size = ParseCount(arg, next());
    } else if (arg == "--get-ratio") {
      std::string suffix;
      opt.get_ratio = ParseDouble(arg, next(), &suffix);
      if (!suffix.empty() || opt.get_ratio < 0 || opt.get_ratio > 1) {
        UsageError("--get-ratio must be between 0 and 1");
      }
    } else if (arg == "--delete-ratio") {
      std::string suffix;
      opt.delete_ratio = ParseDouble(arg, next(), &suffix);
      if (!suffix.empty() || opt.delete_ratio < 0 || opt.delete_ratio > 1) {
        UsageError("--delete-ratio must be between 0 and 1");
      }
    } else if (arg == "--duration") {
      opt.duration_s = ParseSeconds(arg, next());
    } else if (arg == "--requests") {
      opt.requests = ParseCount(arg, next());
    } else if (arg == "--warmup") {
      flag();
      opt.warmup = true;
    } else if (arg == "--warmup-only") {
      flag();
      opt.warmup_only = true;
    } else if (arg == "--random-values") {
      flag();
      opt.random_values = true;
    } else if (arg == "--meta-gets") {
      flag();
      opt.meta_gets = true;
    } else if (arg == "--seed") {
      opt.seed = ParseCount(arg, next());
    } else if (arg == "--key-prefix") {
      opt.key_prefix = next();
    } else if (arg == "--timeout") {
      opt.timeout_s = ParseSeconds(arg, next());
    } else {
      UsageError("unknown option " + arg);
    }
  }
  if (opt.warmup_pipeline == 0) opt.warmup_pipeline = std::max(opt.pipeline, 16);
  opt.threads = std::min(opt.threads, opt.connections);
  if (opt.key_prefix.size() + 20 > 250) UsageError("--key-prefix is too long for memcached keys");
  for (char c : opt.key_prefix) {
    if (c <= ' ' || c == 0x7f) UsageError("--key-prefix must not contain spaces or controls");
  }
  if (opt.value_size > (uint64_t{1} << 30)) UsageError("--value-size must be at most 1g");
  if (opt.timeout_s <= 0) UsageError("--timeout must be positive");
  return opt;
}

// splitmix64: small, fast and good enough to pick keys.
uint64_t Mix(uint64_t z) {
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

class Rng {
 public:
  explicit Rng(uint64_t seed) : state_(seed) {}
  uint64_t Next() { return Mix(state_ += 0x9e3779b97f4a7c15ULL); }
  // Returns a value in [0, n); requires n > 0. The modulo bias is below 2^-30 here.
  uint64_t Below(uint64_t n) { return Next() % n; }
  // Returns a value in [0, 1).
  double Unit() { return static_cast<double>(Next() >> 11) * 0x1.0p-53; }

 private:
  uint64_t state_;
};

// Latency histogram in nanoseconds: exact below 128 ns, then 64 buckets per power of two
// (HDR style), so any recorded value is reported within 1%.
class Histogram {
 public:
  Histogram() : counts_(kBuckets, 0) {}

  void Record(uint64_t v) {
    ++counts_[Index(v)];
    ++count_;
    sum_ += v;
    max_ = std::max(max_, v);
  }

  void Merge(const Histogram& other) {
    for (size_t i = 0; i < kBuckets; ++i) counts_[i] += other.counts_[i];
    count_ += other.count_;
    sum_ += other.sum_;
    max_ = std::max(max_, other.max_);
  }

  // Returns the value at quantile q in [0, 1] (bucket midpoint), or 0 when empty.
  uint64_t Quantile(double q) const {
    if (count_ == 0) return 0;
    uint64_t rank = static_cast<uint64_t>(std::ceil(q * static_cast<double>(count_)));
    rank = std::clamp<uint64_t>(rank, 1, count_);
    uint64_t seen = 0;
    for (size_t i = 0; i < kBuckets; ++i) {
      seen += counts_[i];
      if (seen >= rank) {
        uint64_t low = Lower(i);
        uint64_t high = i + 1 < kBuckets ? Lower(i + 1) - 1 : low;
        return std::min(low + (high - low) / 2, max_);
      }
    }
    return max_;
  }

  uint64_t count() const { return count_; }
  uint64_t max() const { return max_; }
  double mean() const { return count_ ? static_cast<double>(sum_) / count_ : 0; }

 private:
  static constexpr int kSubBits = 7;
  static constexpr uint64_t kSub = uint64_t{1} << kSubBits;
  static constexpr uint64_t kHalf = kSub / 2;
  static constexpr size_t kBuckets = (64 - kSubBits + 2) * kHalf;

  static size_t Index(uint64_t v) {
    if (v < kSub) return v;
    int shift = 63 - std::countl_zero(v) - (kSubBits - 1);
    return shift * kHalf + (v >> shift);
  }
  static uint64_t Lower(size_t index) {
    if (index < kSub) return index;
    uint64_t shift = index / kHalf - 1;
    return (index - shift * kHalf) << shift;
  }

  std::vector<uint64_t> counts_;
  uint64_t count_ = 0;
  uint64_t sum_ = 0;
  uint64_t max_ = 0;
};

// Keys are prefix + decimal index; a value is its key's index as 8 hex digits followed
// by a shared filler (truncated when the value is shorter than 8 bytes). The filler is
// "abc...z" repeated, which LZ4 shrinks ~60x, or with --random-values fixed pseudo-random
// printable bytes, which no per-value compressor shrinks.
// Draws the keys of the measured phase: uniformly, or by Zipf's law (the
// cumulative weights of every rank, searched with a uniform draw).
class KeyPicker {
 public:
  KeyPicker(uint64_t keys, double zipf) : keys_(keys) {
    if (zipf <= 0) return;
    cdf_.resize(keys);
    double sum = 0;
    for (uint64_t i = 0; i < keys; ++i) {
      sum += 1.0 / std::pow(static_cast<double>(i + 1), zipf);
      cdf_[i] = sum;
    }
    for (double& c : cdf_) c /= sum;
  }
  uint64_t Pick(Rng& rng) const {
    if (cdf_.empty()) return rng.Below(keys_);
    auto it = std::lower_bound(cdf_.begin(), cdf_.end(), rng.Unit());
    return std::min<uint64_t>(static_cast<uint64_t>(it - cdf_.begin()), keys_ - 1);
  }

 private:
  uint64_t keys_;
  std::vector<double> cdf_;
};

class Keyspace {
 public:
  Keyspace(const std::string& prefix, uint64_t value_size, bool random_values)
      : prefix_(prefix),
        value_size_(value_size),
        tag_len_(std::min<uint64_t>(kTagLen, value_size)),
        filler_(value_size - tag_len_, '\0') {
    static constexpr char kChars[] =
        "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789+/";
    uint64_t state = 0x5eed;
    for (size_t i = 0; i < filler_.size(); ++i) {
      filler_[i] = random_values ? kChars[Mix(state += 0x9e3779b97f4a7c15ULL) & 63]
                                 : static_cast<char>('a' + i % 26);
    }
  }

  void AppendKey(uint64_t index, std::string* out) const {
    out->append(prefix_);
    char digits[24];
    auto end = std::to_chars(digits, digits + sizeof(digits), index).ptr;
    out->append(digits, end);
  }

  // Writes the first tag_len() bytes of the value of `index`.
  void Tag(uint64_t index, char out[kTagLen]) const {
    static constexpr char kHex[] = "0123456789abcdef";
    char full[kTagLen];
    for (size_t i = 0; i < kTagLen; ++i) {
      full[kTagLen - 1 - i] = kHex[(index >> (4 * i)) & 0xf];
    }
    std::memcpy(out, full, tag_len_);
  }

  uint64_t value_size() const { return value_size_; }
  size_t tag_len() const { return tag_len_; }
  std::string_view filler() const { return filler_; }

 private:
  std::string prefix_;
  uint64_t value_size_;
  size_t tag_len_;
  std::string filler_;
};

struct Counters {
  uint64_t gets = 0;     // get replies (hit, miss or error reply)
  uint64_t sets = 0;     // set replies (stored or error reply)
  uint64_t deletes = 0;  // delete replies (deleted, not found or error reply)
  uint64_t hits = 0;
  uint64_t misses = 0;
  uint64_t error_replies = 0;  // ERROR, CLIENT_ERROR, SERVER_ERROR, NOT_STORED, ...
  uint64_t bad_values = 0;     // wrong key, length or content
  uint64_t lost = 0;           // requests whose connection failed before the reply
  uint64_t conn_failures = 0;

  uint64_t ops() const { return gets + sets + deletes; }
  uint64_t errors() const { return error_replies + bad_values + lost; }
  void Add(const Counters& o) {
    gets += o.gets;
    sets += o.sets;
    deletes += o.deletes;
    hits += o.hits;
    misses += o.misses;
    error_replies += o.error_replies;
    bad_values += o.bad_values;
    lost += o.lost;
    conn_failures += o.conn_failures;
  }
};

enum class Phase { kWarmup = 0, kMeasure = 1 };

// State shared by the workers of one phase.
struct PhaseControl {
  uint64_t stop_issuing_ns = 0;   // duration mode: no batch starts after this; 0 = none
  uint64_t hard_deadline_ns = 0;  // outstanding requests are abandoned after this; 0 = none
  uint64_t total_requests = 0;    // requests mode: 0 = unlimited
  std::atomic<uint64_t> issued{0};
};

struct Request {
  bool is_get;
  uint64_t key;
  bool is_delete = false;
};

enum class ParseState { kLine, kData, kDataEnd };

struct Connection {
  int fd = -1;
  Rng rng{0};
  bool dead = false;
  bool busy = false;  // a batch is in flight
  uint64_t warm_next = 0;
  uint64_t warm_end = 0;

  // The batch in flight.
  std::vector<Request> batch;
  size_t replied = 0;
  uint64_t batch_start_ns = 0;

  // Send side: text holds commands; segments refer to it (base == nullptr) or to the
  // shared filler; iov is built once the batch is complete.
  struct Segment {
    const char* base;
    size_t offset;
    size_t len;
  };
  std::string text;
  size_t text_segment_begin = 0;
  std::vector<Segment> segments;
  std::vector<iovec> iov;
  size_t iov_pos = 0;

  // Receive side: [rpos, wpos) of rbuf is unparsed.
  std::unique_ptr<char[]> rbuf;
  size_t rcap = 0;
  size_t rpos = 0;
  size_t wpos = 0;
  ParseState state = ParseState::kLine;
  uint64_t data_left = 0;
  bool got_value = false;
  bool value_bad = false;
  char tag[kTagLen] = {};
  size_t tag_have = 0;
  size_t tag_want = 0;
};

class Worker {
 public:
  Worker(const Options& opt, const Keyspace& keyspace, const KeyPicker& picker)
      : opt_(opt),
        keyspace_(keyspace),
        picker_(picker),
        warm_rate_(static_cast<double>(opt.warmup_rate) / opt.threads) {
    epoll_fd_ = epoll_create1(EPOLL_CLOEXEC);
    if (epoll_fd_ < 0) {
      std::perror("strata_loadgen: epoll_create1");
      std::exit(2);
    }
  }
  ~Worker() {
    for (auto& c : conns_) {
      if (!c->dead) close(c->fd);
    }
    close(epoll_fd_);
  }
  Worker(const Worker&) = delete;
  Worker& operator=(const Worker&) = delete;

  // Takes ownership of a connected non-blocking socket; `id` seeds its RNG and
  // [warm_begin, warm_end) are the keys it preloads.
  void AddConnection(int fd, uint64_t id, uint64_t warm_begin, uint64_t warm_end) {
    auto c = std::make_unique<Connection>();
    c->fd = fd;
    c->rng = Rng(Mix(opt_.seed ^ Mix(id + 1)));
    c->warm_next = warm_begin;
    c->warm_end = warm_end;
    uint64_t per_reply = std::min<uint64_t>(keyspace_.value_size(), 64 << 10) + 320;
    c->rcap = std::clamp<uint64_t>(per_reply * opt_.pipeline, kMinReadBuffer, kMaxReadBuffer);
    c->rbuf = std::make_unique<char[]>(c->rcap);
    c->text.reserve(opt_.pipeline * (64 + opt_.key_prefix.size() +
                                     std::min<uint64_t>(keyspace_.value_size(), kInlineFiller)));
    epoll_event ev{};
    ev.events = EPOLLIN | EPOLLOUT | EPOLLET | EPOLLRDHUP;
    ev.data.ptr = c.get();
    if (epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, fd, &ev) != 0) {
      std::perror("strata_loadgen: epoll_ctl");
      std::exit(2);
    }
    conns_.push_back(std::move(c));
  }

  // Runs one phase until every connection has nothing left to send and no reply pending.
  void Run(Phase phase, PhaseControl* control) {
    phase_ = phase;
    control_ = control;
    last_rx_ns_ = NowNs();
    phase_start_ns_ = last_rx_ns_;
    paced_sets_ = 0;
    for (auto& c : conns_) {
      if (!c->dead) StartBatch(*c);
    }
    const uint64_t stall_ns = static_cast<uint64_t>(opt_.timeout_s * 1e9);
    epoll_event events[256];
    while (active_ > 0 || !paced_.empty()) {
      int wait_ms = 100;
      if (!paced_.empty()) {
        // Sleep until the rate allows the next batch (see PaceAllows).
        double due_s = static_cast<double>(paced_sets_) / warm_rate_;
        double elapsed_s = static_cast<double>(NowNs() - phase_start_ns_) / 1e9;
        wait_ms = static_cast<int>(std::clamp((due_s - elapsed_s) * 1000.0 + 1.0, 0.0, 100.0));
      }
      int n = epoll_wait(epoll_fd_, events, 256, wait_ms);
      if (n < 0 && errno != EINTR) {
        std::perror("strata_loadgen: epoll_wait");
        std::exit(2);
      }
      for (int i = 0; i < n; ++i) {
        auto* c = static_cast<Connection*>(events[i].data.ptr);
        if (!c->dead) HandleEvents(*c);
      }
      if (!paced_.empty()) {
        std::vector<Connection*> waiting;
        waiting.swap(paced_);
        for (Connection* c : waiting) {
          if (!c->dead) StartBatch(*c);  // re-queues itself when still too early
        }
      }
      uint64_t now = NowNs();
      bool stalled = now - last_rx_ns_ > stall_ns;
      bool past_deadline = control_->hard_deadline_ns && now > control_->hard_deadline_ns;
      if (active_ > 0 && (stalled || past_deadline)) {
        for (auto& c : conns_) {
          if (c->busy) Kill(*c, stalled ? "timed out waiting for a reply" : "past the deadline");
        }
      }
    }
  }

  const Counters& counters(Phase phase) const { return counters_[static_cast<int>(phase)]; }
  const Histogram& histogram() const { return histogram_; }
  uint64_t last_reply_ns() const { return last_reply_ns_; }
  const std::string& first_error() const { return first_error_; }
  const std::string& first_failure() const { return first_failure_; }

 private:
  Counters& counters() { return counters_[static_cast<int>(phase_)]; }

  // Builds and sends the connection's next batch; returns false when there is none.
  bool StartBatch(Connection& c) {
    c.batch.clear();
    c.text.clear();
    c.segments.clear();
    c.iov.clear();
    c.iov_pos = 0;
    c.replied = 0;
    c.text_segment_begin = 0;
    if (phase_ == Phase::kWarmup) {
      uint64_t n = std::min<uint64_t>(opt_.warmup_pipeline, c.warm_end - c.warm_next);
      if (n > 0 && !PaceAllows(n)) {
        paced_.push_back(&c);
        return false;
      }
      for (uint64_t i = 0; i < n; ++i) AddSet(c, c.warm_next++);
    } else {
      uint64_t n = opt_.pipeline;
      if (control_->stop_issuing_ns && NowNs() >= control_->stop_issuing_ns) return false;
      if (control_->total_requests) {
        uint64_t prev = control_->issued.fetch_add(n, std::memory_order_relaxed);
        if (prev >= control_->total_requests) return false;
        n = std::min(n, control_->total_requests - prev);
      }
      for (uint64_t i = 0; i < n; ++i) {
        uint64_t key = picker_.Pick(c.rng);
        if (c.rng.Unit() < opt_.get_ratio) {
          AddGet(c, key);
        } else if (opt_.delete_ratio > 0 && c.rng.Unit() < opt_.delete_ratio) {
          AddDelete(c, key);
        } else {
          AddSet(c, key);
        }
      }
    }
    if (c.batch.empty()) return false;
    CloseTextSegment(c);
    for (const auto& s : c.segments) {
      const char* base = s.base ? s.base : c.text.data();
      c.iov.push_back({const_cast<char*>(base + s.offset), s.len});
    }
    c.busy = true;
    c.batch_start_ns = NowNs();
    // After a paced pause nothing was in flight: the stall timer starts now.
    if (active_++ == 0) last_rx_ns_ = std::max(last_rx_ns_, c.batch_start_ns);
    Flush(c);
    return true;
  }

  // Warmup rate limit (--warmup-rate): a batch of n sets may start while this worker's
  // sets so far stay within rate x elapsed time; returns true and counts them if so.
  bool PaceAllows(uint64_t n) {
    if (warm_rate_ <= 0) return true;
    double elapsed_s = static_cast<double>(NowNs() - phase_start_ns_) / 1e9;
    if (static_cast<double>(paced_sets_) > warm_rate_ * elapsed_s) return false;
    paced_sets_ += n;
    return true;
  }

  void AddGet(Connection& c, uint64_t key) {
    c.text.append(opt_.meta_gets ? "mg " : "get ");
    keyspace_.AppendKey(key, &c.text);
    c.text.append(opt_.meta_gets ? " v\r\n" : "\r\n");
    c.batch.push_back({true, key});
  }

  void AddDelete(Connection& c, uint64_t key) {
    c.text.append("delete ");
    keyspace_.AppendKey(key, &c.text);
    c.text.append("\r\n");
    c.batch.push_back({false, key, true});
  }

  void AddSet(Connection& c, uint64_t key) {
    c.text.append("set ");
    keyspace_.AppendKey(key, &c.text);
    c.text.append(" 0 0 ");
    c.text.append(std::to_string(keyspace_.value_size()));
    c.text.append("\r\n");
    char tag[kTagLen];
    keyspace_.Tag(key, tag);
    c.text.append(tag, keyspace_.tag_len());
    std::string_view filler = keyspace_.filler();
    if (filler.size() <= kInlineFiller) {
      c.text.append(filler);
    } else {
      CloseTextSegment(c);
      c.segments.push_back({filler.data(), 0, filler.size()});
    }
    c.text.append("\r\n");
    c.batch.push_back({false, key});
  }

  static void CloseTextSegment(Connection& c) {
    if (c.text.size() > c.text_segment_begin) {
      c.segments.push_back({nullptr, c.text_segment_begin, c.text.size() - c.text_segment_begin});
      c.text_segment_begin = c.text.size();
    }
  }

  // Writes until the batch is sent or the socket is full; kills the connection on error.
  void Flush(Connection& c) {
    while (c.iov_pos < c.iov.size()) {
      int count = static_cast<int>(std::min<size_t>(c.iov.size() - c.iov_pos, IOV_MAX));
      ssize_t n = writev(c.fd, &c.iov[c.iov_pos], count);
      if (n < 0) {
        if (errno == EINTR) continue;
        if (errno != EAGAIN && errno != EWOULDBLOCK)
          Kill(c, std::string("write: ") + strerror(errno));
        return;
      }
      size_t left = static_cast<size_t>(n);
      while (left > 0) {
        iovec& v = c.iov[c.iov_pos];
        if (left >= v.iov_len) {
          left -= v.iov_len;
          ++c.iov_pos;
        } else {
          v.iov_base = static_cast<char*>(v.iov_base) + left;
          v.iov_len -= left;
          left = 0;
        }
      }
    }
  }

  void HandleEvents(Connection& c) {
    if (c.iov_pos < c.iov.size()) Flush(c);
    while (!c.dead) {
      if (c.wpos == c.rcap) {
        if (c.rpos == 0) {
          Kill(c, "reply line longer than the read buffer");
          return;
        }
        std::memmove(c.rbuf.get(), c.rbuf.get() + c.rpos, c.wpos - c.rpos);
        c.wpos -= c.rpos;
        c.rpos = 0;
      }
      size_t room = c.rcap - c.wpos;
      ssize_t n = read(c.fd, c.rbuf.get() + c.wpos, room);
      if (n > 0) {
        uint64_t now = NowNs();
        last_rx_ns_ = now;
        c.wpos += static_cast<size_t>(n);
        Parse(c, now);
        // A short read drained the socket; edge-triggered epoll reports new data.
        if (static_cast<size_t>(n) < room) return;
      } else if (n == 0) {
        Kill(c, "server closed the connection");
      } else if (errno == EAGAIN || errno == EWOULDBLOCK) {
        return;
      } else if (errno != EINTR) {
        Kill(c, std::string("read: ") + strerror(errno));
      }
    }
  }

  void Parse(Connection& c, uint64_t now) {
    char* buf = c.rbuf.get();
    while (!c.dead) {
      size_t avail = c.wpos - c.rpos;
      if (c.state == ParseState::kLine) {
        char* begin = buf + c.rpos;
        auto* nl = static_cast<char*>(std::memchr(begin, '\n', avail));
        if (nl == nullptr) break;
        size_t len = static_cast<size_t>(nl - begin);
        if (len == 0 || begin[len - 1] != '\r') {
          Kill(c, "reply line not terminated by CRLF");
          return;
        }
        c.rpos += len + 1;
        if (!c.busy) {
          Kill(c, "reply without a request: " + std::string(begin, len - 1));
          return;
        }
        OnLine(c, std::string_view(begin, len - 1), now);
      } else if (c.state == ParseState::kData) {
        size_t take = static_cast<size_t>(std::min<uint64_t>(c.data_left, avail));
        if (take == 0) break;
        if (c.tag_have < c.tag_want) {
          size_t t = std::min(take, c.tag_want - c.tag_have);
          std::memcpy(c.tag + c.tag_have, buf + c.rpos, t);
          c.tag_have += t;
        }
        c.rpos += take;
        c.data_left -= take;
        if (c.data_left == 0) c.state = ParseState::kDataEnd;
      } else {
        if (avail < 2) break;
        if (buf[c.rpos] != '\r' || buf[c.rpos + 1] != '\n') {
          Kill(c, "value not terminated by CRLF");
          return;
        }
        c.rpos += 2;
        c.state = ParseState::kLine;
        // A meta get's reply ends with its value: what END ends for get.
        if (opt_.meta_gets && c.busy && c.batch[c.replied].is_get && c.got_value) {
          OnLine(c, "END", now);
        }
      }
    }
    if (!c.dead && c.rpos == c.wpos) c.rpos = c.wpos = 0;
  }

  static bool IsErrorReply(std::string_view line) {
    return line == "ERROR" || line.starts_with("CLIENT_ERROR") ||
           line.starts_with("SERVER_ERROR") || line == "NOT_STORED" || line == "EXISTS" ||
           line == "NOT_FOUND";
  }

  // Parses "VALUE <key> <flags> <bytes> [<cas>]"; returns false when malformed.
  static bool ParseValueLine(std::string_view line, std::string_view* key, uint64_t* bytes) {
    line.remove_prefix(6);
    std::string_view tokens[4];
    int n = 0;
    while (!line.empty()) {
      size_t sp = line.find(' ');
      std::string_view token = line.substr(0, sp);
      if (token.empty() || n == 4) return false;
      tokens[n++] = token;
      line = sp == std::string_view::npos ? std::string_view() : line.substr(sp + 1);
    }
    if (n < 3) return false;
    uint64_t flags = 0;
    for (int i : {1, 2}) {
      uint64_t* out = i == 1 ? &flags : bytes;
      auto [ptr, ec] = std::from_chars(tokens[i].data(), tokens[i].data() + tokens[i].size(), *out);
      if (ec != std::errc() || ptr != tokens[i].data() + tokens[i].size()) return false;
    }
    *key = tokens[0];
    return true;
  }

  void OnLine(Connection& c, std::string_view line, uint64_t now) {
    const Request& req = c.batch[c.replied];
    Counters& k = counters();
    if (req.is_get) {
      if (line.starts_with("VALUE ")) {
        std::string_view key;
        uint64_t bytes = 0;
        if (c.got_value || !ParseValueLine(line, &key, &bytes)) {
          Kill(c, "unexpected reply to get: " + std::string(line));
          return;
        }
        scratch_.clear();
        keyspace_.AppendKey(req.key, &scratch_);
        c.got_value = true;
        c.value_bad = key != scratch_ || bytes != keyspace_.value_size();
        c.data_left = bytes;
        c.tag_have = 0;
        c.tag_want = static_cast<size_t>(std::min<uint64_t>(kTagLen, bytes));
        c.state = bytes > 0 ? ParseState::kData : ParseState::kDataEnd;
        return;
      }
      if (opt_.meta_gets && line.starts_with("VA ")) {
        uint64_t bytes = 0;
        const std::string_view n = line.substr(3);
        auto [ptr, ec] = std::from_chars(n.data(), n.data() + n.size(), bytes);
        if (c.got_value || ec != std::errc() || ptr != n.data() + n.size()) {
          Kill(c, "unexpected reply to mg: " + std::string(line));
          return;
        }
        c.got_value = true;
        c.value_bad = bytes != keyspace_.value_size();
        c.data_left = bytes;
        c.tag_have = 0;
        c.tag_want = static_cast<size_t>(std::min<uint64_t>(kTagLen, bytes));
        c.state = bytes > 0 ? ParseState::kData : ParseState::kDataEnd;
        return;
      }
      if (line == "END" || (opt_.meta_gets && line == "EN")) {
        if (!c.got_value) {
          ++k.misses;
        } else {
          char want[kTagLen];
          keyspace_.Tag(req.key, want);
          bool ok = !c.value_bad && c.tag_have == keyspace_.tag_len() &&
                    std::memcmp(want, c.tag, c.tag_have) == 0;
          if (ok) {
            ++k.hits;
          } else {
            ++k.bad_values;
            if (first_error_.empty()) {
              first_error_ = "wrong value for key index " + std::to_string(req.key);
            }
          }
        }
      } else if (IsErrorReply(line)) {
        ++k.error_replies;
        if (first_error_.empty()) first_error_ = "get: " + std::string(line);
      } else {
        Kill(c, "unexpected reply to get: " + std::string(line));
        return;
      }
      c.got_value = false;
      ++k.gets;
    } else if (req.is_delete) {
      if (line != "DELETED" && line != "NOT_FOUND") {
        if (!IsErrorReply(line)) {
          Kill(c, "unexpected reply to delete: " + std::string(line));
          return;
        }
        ++k.error_replies;
        if (first_error_.empty()) first_error_ = "delete: " + std::string(line);
      }
      ++k.deletes;
    } else {
      if (line != "STORED") {
        if (!IsErrorReply(line)) {
          Kill(c, "unexpected reply to set: " + std::string(line));
          return;
        }
        ++k.error_replies;
        if (first_error_.empty()) first_error_ = "set: " + std::string(line);
      }
      ++k.sets;
    }
    if (phase_ == Phase::kMeasure) histogram_.Record(now - c.batch_start_ns);
    last_reply_ns_ = now;
    if (++c.replied == c.batch.size()) {
      c.busy = false;
      --active_;
      StartBatch(c);
    }
  }

  void Kill(Connection& c, const std::string& reason) {
    if (c.dead) return;
    Counters& k = counters();
    if (c.busy) {
      k.lost += c.batch.size() - c.replied;
      c.busy = false;
      --active_;
    }
    ++k.conn_failures;
    if (first_failure_.empty()) first_failure_ = reason;
    close(c.fd);
    c.dead = true;
  }

  const Options& opt_;
  const Keyspace& keyspace_;
  const KeyPicker& picker_;
  int epoll_fd_ = -1;
  std::vector<std::unique_ptr<Connection>> conns_;
  Phase phase_ = Phase::kWarmup;
  PhaseControl* control_ = nullptr;
  int active_ = 0;          // connections with a batch in flight
  const double warm_rate_;  // this worker's share of --warmup-rate; 0 = unlimited
  uint64_t phase_start_ns_ = 0;
  uint64_t paced_sets_ = 0;         // warmup sets started by this worker in this phase
  std::vector<Connection*> paced_;  // idle connections waiting for the rate limit
  uint64_t last_rx_ns_ = 0;
  uint64_t last_reply_ns_ = 0;
  Counters counters_[2];
  Histogram histogram_;
  std::string scratch_;
  std::string first_error_;
  std::string first_failure_;
};

// Returns a connected non-blocking unix socket, or -1 (reason printed).
int ConnectUnix(const Options& opt) {
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (opt.unix_socket.size() >= sizeof(addr.sun_path)) {
    std::fprintf(stderr, "strata_loadgen: %s: path too long\n", opt.unix_socket.c_str());
    return -1;
  }
  std::memcpy(addr.sun_path, opt.unix_socket.data(), opt.unix_socket.size());
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0 || connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    std::fprintf(stderr, "strata_loadgen: connect %s: %s\n", opt.unix_socket.c_str(),
                 strerror(errno));
    if (fd >= 0) close(fd);
    return -1;
  }
  fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
  return fd;
}

// Returns a connected non-blocking TCP socket with TCP_NODELAY (or a unix
// socket with --unix-socket), or -1 (reason printed).
int Connect(const Options& opt) {
  if (!opt.unix_socket.empty()) return ConnectUnix(opt);
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* res = nullptr;
  int rc = getaddrinfo(opt.host.c_str(), opt.port.c_str(), &hints, &res);
  if (rc != 0) {
    std::fprintf(stderr, "strata_loadgen: %s:%s: %s\n", opt.host.c_str(), opt.port.c_str(),
                 gai_strerror(rc));
    return -1;
  }
  int fd = -1;
  std::string error = "no address";
  for (addrinfo* ai = res; ai != nullptr && fd < 0; ai = ai->ai_next) {
    fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, ai->ai_protocol);
    if (fd < 0) {
      error = strerror(errno);
      continue;
    }
    if (connect(fd, ai->ai_addr, ai->ai_addrlen) != 0 && errno != EINPROGRESS) {
      error = strerror(errno);
      close(fd);
      fd = -1;
      continue;
    }
    pollfd p{fd, POLLOUT, 0};
    int err = 0;
    socklen_t len = sizeof(err);
    if (poll(&p, 1, static_cast<int>(opt.timeout_s * 1000)) != 1) {
      err = ETIMEDOUT;
    } else if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0) {
      err = errno;
    }
    if (err != 0) {
      error = strerror(err);
      close(fd);
      fd = -1;
    }
  }
  freeaddrinfo(res);
  if (fd < 0) {
    std::fprintf(stderr, "strata_loadgen: connect %s:%s: %s\n", opt.host.c_str(), opt.port.c_str(),
                 error.c_str());
    return -1;
  }
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
  return fd;
}

// Runs one phase on every worker (one thread each) and returns when all are done.
void RunPhase(std::vector<std::unique_ptr<Worker>>& workers, Phase phase, PhaseControl* control) {
  if (workers.size() == 1) {
    workers[0]->Run(phase, control);
    return;
  }
  std::vector<std::thread> threads;
  for (auto& w : workers) threads.emplace_back([&w, phase, control] { w->Run(phase, control); });
  for (auto& t : threads) t.join();
}

double Us(uint64_t ns) { return static_cast<double>(ns) / 1000.0; }

int Main(int argc, char** argv) {
  Options opt = ParseOptions(argc, argv);
  signal(SIGPIPE, SIG_IGN);
  Keyspace keyspace(opt.key_prefix, opt.value_size, opt.random_values);
  KeyPicker picker(opt.keys, opt.zipf);

  std::vector<std::unique_ptr<Worker>> workers;
  for (int t = 0; t < opt.threads; ++t) workers.push_back(std::make_unique<Worker>(opt, keyspace, picker));
  const uint64_t conns = static_cast<uint64_t>(opt.connections);
  for (uint64_t i = 0; i < conns; ++i) {
    int fd = Connect(opt);
    if (fd < 0) return 2;
    workers[i % workers.size()]->AddConnection(fd, i, opt.keys * i / conns,
                                               opt.keys * (i + 1) / conns);
  }

  double warmup_s = 0;
  if (opt.warmup || opt.warmup_only) {
    PhaseControl control;
    uint64_t start = NowNs();
    RunPhase(workers, Phase::kWarmup, &control);
    warmup_s = static_cast<double>(NowNs() - start) / 1e9;
  }

  double duration_s = 0;
  if (!opt.warmup_only) {
    PhaseControl control;
    uint64_t start = NowNs();
    if (opt.requests > 0) {
      control.total_requests = opt.requests;
    } else {
      control.stop_issuing_ns = start + static_cast<uint64_t>(opt.duration_s * 1e9);
      control.hard_deadline_ns =
          control.stop_issuing_ns + static_cast<uint64_t>(opt.timeout_s * 1e9);
    }
    RunPhase(workers, Phase::kMeasure, &control);
    uint64_t end = start;
    for (auto& w : workers) end = std::max(end, w->last_reply_ns());
    duration_s = static_cast<double>(end - start) / 1e9;
  }

  Counters warm;
  Counters total;
  Histogram hist;
  std::string first_error;
  std::string first_failure;
  for (auto& w : workers) {
    warm.Add(w->counters(Phase::kWarmup));
    total.Add(w->counters(Phase::kMeasure));
    hist.Merge(w->histogram());
    if (first_error.empty()) first_error = w->first_error();
    if (first_failure.empty()) first_failure = w->first_failure();
  }
  double ops_per_s = duration_s > 0 ? static_cast<double>(total.ops()) / duration_s : 0;
  double p50 = Us(hist.Quantile(0.5));
  double p90 = Us(hist.Quantile(0.9));
  double p99 = Us(hist.Quantile(0.99));
  double p999 = Us(hist.Quantile(0.999));

  if (opt.warmup || opt.warmup_only) {
    std::printf("warmup: %" PRIu64 " sets in %.3f s (%.0f sets/s), errors %" PRIu64 "\n", warm.sets,
                warmup_s, warmup_s > 0 ? static_cast<double>(warm.sets) / warmup_s : 0,
                warm.errors());
  }
  if (!opt.warmup_only) {
    std::printf("%s:%s %d conns x pipeline %d, %" PRIu64 " keys, %" PRIu64
                " B values, get ratio %.2f: %.0f ops/s in %.3f s; gets %" PRIu64 " (hits %" PRIu64
                ", misses %" PRIu64 "), sets %" PRIu64 ", deletes %" PRIu64 ", errors %" PRIu64
                "; latency us p50 %.1f p90 %.1f p99 %.1f p99.9 %.1f max %.1f\n",
                opt.host.c_str(), opt.port.c_str(), opt.connections, opt.pipeline, opt.keys,
                opt.value_size, opt.get_ratio, ops_per_s, duration_s, total.gets, total.hits,
                total.misses, total.sets, total.deletes, total.errors(), p50, p90, p99, p999,
                Us(hist.max()));
  }
  std::printf(
      "JSON {\"ops_per_s\": %.1f, \"ops\": %" PRIu64 ", \"gets\": %" PRIu64 ", \"sets\": %" PRIu64
      ", \"deletes\": %" PRIu64
      ", \"hits\": %" PRIu64 ", \"misses\": %" PRIu64 ", \"errors\": %" PRIu64
      ", \"error_replies\": %" PRIu64 ", \"bad_values\": %" PRIu64 ", \"lost\": %" PRIu64
      ", \"conn_failures\": %" PRIu64
      ", \"p50_us\": %.1f, \"p90_us\": %.1f, \"p99_us\": %.1f, \"p999_us\": %.1f, "
      "\"max_us\": %.1f, \"mean_us\": %.1f, \"duration_s\": %.4f, \"warmup_s\": %.4f, "
      "\"warmup_sets\": %" PRIu64 ", \"warmup_errors\": %" PRIu64 ", \"warmup_rate\": %" PRIu64
      ", \"random_values\": %s"
      ", \"connections\": %d, "
      "\"threads\": %d, \"pipeline\": %d, \"keys\": %" PRIu64 ", \"value_size\": %" PRIu64
      ", \"get_ratio\": %.4f, \"delete_ratio\": %.4f, \"seed\": %" PRIu64 "}\n",
      ops_per_s, total.ops(), total.gets, total.sets, total.deletes, total.hits, total.misses, total.errors(),
      total.error_replies, total.bad_values, total.lost, total.conn_failures + warm.conn_failures,
      p50, p90, p99, p999, Us(hist.max()), hist.mean() / 1000.0, duration_s, warmup_s, warm.sets,
      warm.errors(), opt.warmup_rate, opt.random_values ? "true" : "false", opt.connections,
      opt.threads, opt.pipeline, opt.keys, opt.value_size, opt.get_ratio, opt.delete_ratio,
      opt.seed);
  std::fflush(stdout);
  if (!first_error.empty())
    std::fprintf(stderr, "strata_loadgen: first error: %s\n", first_error.c_str());
  if (!first_failure.empty()) {
    std::fprintf(stderr, "strata_loadgen: connection failure: %s\n", first_failure.c_str());
    return 2;
  }
  return 0;
}

}  // namespace
}  // namespace strata::bench

int main(int argc, char** argv) { return strata::bench::Main(argc, argv); }
