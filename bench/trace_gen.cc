// strata_trace_gen: writes a seeded synthetic trace, in the format of ../shared/traces/
// (`timestamp_ms op key_id value_size ttl_s`), that tests whether a cache keeps its hot set
// through a scan and how fast it follows a change of hot set:
//
//   [0, scan_start)          gets of a hot set: --hot-keys keys, Zipf(--zipf) popularity
//   [scan_start, scan_end)   the same, mixed with a one-time scan: a request is, with
//                            probability --scan-mix, the next of many cold keys, each read
//                            exactly once
//   [scan_end, shift)        the hot set again
//   [shift, end)             a new hot set of as many fresh keys, same popularity
//
// Every request is a get (the replayer fills misses, cache-aside) of --value-size bytes.
// Key ids are dense: the first hot set, then the scan keys, then the second hot set; a
// key's popularity rank is a seeded permutation of its id. Headers carry the markers,
// `# marker: NAME INDEX` with the 0-based index of the first request of the phase, which
// strata_trace_replay reads to report hit ratios before and after the scan and the
// recovery after the shift.
//
// Thread safety: single-threaded.

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cinttypes>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <optional>
#include <string>
#include <vector>

#include "common/units.h"

namespace strata::bench {
namespace {

struct Options {
  uint64_t requests = 1000000;
  uint64_t hot_keys = 20000;
  double zipf = 1.0;
  double scan_start = 0.40;   // share of the trace
  double scan_length = 0.10;  // share of the trace; 0: no scan
  double scan_mix = 0.5;      // share of the scan phase's requests that go to scan keys
  double shift_at = 0.70;     // share of the trace; 0: no shift
  uint64_t value_size = 4096;
  uint64_t seed = 42;
  std::string output;  // empty: stdout
};

void PrintUsage(FILE* out) {
  std::fprintf(out,
               "usage: strata_trace_gen [options] [-o FILE]\n"
               "  --requests N      trace length (1000000)\n"
               "  --hot-keys N      keys in each hot set (20000)\n"
               "  --zipf S          Zipf exponent of the hot set's popularity (1.0)\n"
               "  --scan-start F    scan begins at this share of the trace (0.40)\n"
               "  --scan-length F   scan phase length as a share of the trace; 0 = none (0.10)\n"
               "  --scan-mix F      share of the scan phase's requests that are scan keys (0.5)\n"
               "  --shift-at F      the hot set moves to new keys here; 0 = never (0.70)\n"
               "  --value-size N    bytes per value, suffixes k/m allowed (4096)\n"
               "  --seed N          RNG seed (42)\n"
               "  -o, --output FILE write here instead of stdout\n");
}

[[noreturn]] void UsageError(const std::string& message) {
  std::fprintf(stderr, "strata_trace_gen: %s\n", message.c_str());
  PrintUsage(stderr);
  std::exit(1);
}

uint64_t ParseCount(const std::string& name, const std::string& text, uint64_t lo, uint64_t hi) {
  uint64_t v = 0;
  auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  if (ec != std::errc() || ptr != text.data() + text.size() || text.empty() || v < lo || v > hi) {
    UsageError(name + " must be an integer between " + std::to_string(lo) + " and " +
               std::to_string(hi) + ": " + text);
  }
  return v;
}

// A size in bytes with an optional binary unit ("4096", "4k"), as
// common::ParseSize() reads sizes.
uint64_t ParseBytes(const std::string& name, const std::string& text, uint64_t hi) {
  const std::optional<uint64_t> v = common::ParseSize(text);
  if (!v || *v > hi) {
    UsageError(name + " must be a size of at most " + std::to_string(hi) + " bytes: " + text);
  }
  return *v;
}

double ParseShare(const std::string& name, const std::string& text, double lo, double hi) {
  char* end = nullptr;
  errno = 0;
  double v = std::strtod(text.c_str(), &end);
  if (end == text.c_str() || *end != '\0' || errno != 0 || !(v >= lo && v <= hi)) {
    UsageError(name + " must be a number between " + std::to_string(lo) + " and " +
               std::to_string(hi) + ": " + text);
  }
  return v;
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
    auto next = [&]() -> std::string {
      if (has_value) return value;
      if (i + 1 >= argc) UsageError(arg + " needs a value");
      return argv[++i];
    };
    if (arg == "--help" || arg == "-h") {
      PrintUsage(stdout);
      std::exit(0);
    } else if (arg == "--requests") {
      opt.requests = ParseCount(arg, next(), 1, 1'000'000'000);
    } else if (arg == "--hot-keys") {
      opt.hot_keys = ParseCount(arg, next(), 1, 100'000'000);
    } else if (arg == "--zipf") {
      opt.zipf = ParseShare(arg, next(), 0, 10);
    } else if (arg == "--scan-start") {
      opt.scan_start = ParseShare(arg, next(), 0, 1);
    } else if (arg == "--scan-length") {
      opt.scan_length = ParseShare(arg, next(), 0, 1);
    } else if (arg == "--scan-mix") {
      opt.scan_mix = ParseShare(arg, next(), 0, 1);
    } else if (arg == "--shift-at") {
      opt.shift_at = ParseShare(arg, next(), 0, 1);
    } else if (arg == "--value-size") {
      opt.value_size = ParseBytes(arg, next(), 1 << 30);
    } else if (arg == "--seed") {
      opt.seed = ParseCount(arg, next(), 0, UINT64_MAX);
    } else if (arg == "-o" || arg == "--output") {
      opt.output = next();
    } else {
      UsageError("unknown option " + arg);
    }
  }
  if (opt.scan_start + opt.scan_length > 1) UsageError("the scan must end inside the trace");
  if (opt.shift_at > 0 && opt.scan_length > 0 && opt.shift_at < opt.scan_start + opt.scan_length) {
    UsageError("--shift-at must come after the scan");
  }
  return opt;
}

// splitmix64.
class Rng {
 public:
  explicit Rng(uint64_t seed) : state_(seed) {}
  uint64_t Next() {
    uint64_t z = (state_ += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
  }
  // Returns a value in [0, 1).
  double Unit() { return static_cast<double>(Next() >> 11) * 0x1.0p-53; }
  // Returns a value in [0, n); requires n > 0.
  uint64_t Below(uint64_t n) { return Next() % n; }

 private:
  uint64_t state_;
};

// Draws ranks 0..n-1 with P(rank r) proportional to 1 / (r + 1)^s, by inverting the CDF.
class Zipf {
 public:
  Zipf(uint64_t n, double s) : cdf_(n) {
    double sum = 0;
    for (uint64_t r = 0; r < n; ++r) {
      sum += 1.0 / std::pow(static_cast<double>(r + 1), s);
      cdf_[r] = sum;
    }
    for (double& c : cdf_) c /= sum;
  }
  uint64_t Draw(Rng& rng) const {
    double u = rng.Unit();
    auto it = std::upper_bound(cdf_.begin(), cdf_.end(), u);
    return std::min<uint64_t>(static_cast<uint64_t>(it - cdf_.begin()), cdf_.size() - 1);
  }

 private:
  std::vector<double> cdf_;
};

std::vector<uint64_t> Permutation(uint64_t n, uint64_t first_id, Rng& rng) {
  std::vector<uint64_t> p(n);
  for (uint64_t i = 0; i < n; ++i) p[i] = first_id + i;
  for (uint64_t i = n; i > 1; --i) std::swap(p[i - 1], p[rng.Below(i)]);
  return p;
}

int Main(int argc, char** argv) {
  Options opt = ParseOptions(argc, argv);
  const uint64_t n = opt.requests;
  const uint64_t scan_start = static_cast<uint64_t>(std::llround(opt.scan_start * n));
  const uint64_t scan_end =
      std::min(n, scan_start + static_cast<uint64_t>(std::llround(opt.scan_length * n)));
  const bool has_scan = scan_end > scan_start;
  const uint64_t shift = static_cast<uint64_t>(std::llround(opt.shift_at * n));
  const bool has_shift = opt.shift_at > 0 && shift < n;

  // The scan decisions have their own RNG stream, so the scan keys can be counted first
  // and the second hot set's ids follow them.
  const uint64_t scan_seed = opt.seed ^ 0x5ca45ca45ca4ULL;
  auto is_scan = [&](Rng& scan_rng, uint64_t i) {
    return has_scan && i >= scan_start && i < scan_end && scan_rng.Unit() < opt.scan_mix;
  };
  Rng count_rng(scan_seed);
  uint64_t scan_keys = 0;
  for (uint64_t i = scan_start; i < scan_end; ++i) scan_keys += is_scan(count_rng, i) ? 1 : 0;
  const uint64_t scan_first = opt.hot_keys;
  const uint64_t hot2_first = scan_first + scan_keys;

  // Draw the whole trace first: the header states its distinct keys.
  Rng rng(opt.seed);
  Rng scan_rng(scan_seed);
  Zipf zipf(opt.hot_keys, opt.zipf);
  const std::vector<uint64_t> hot1 = Permutation(opt.hot_keys, 0, rng);
  const std::vector<uint64_t> hot2 =
      has_shift ? Permutation(opt.hot_keys, hot2_first, rng) : std::vector<uint64_t>();
  std::vector<uint64_t> keys(n);
  uint64_t scan_next = scan_first;
  for (uint64_t i = 0; i < n; ++i) {
    if (is_scan(scan_rng, i)) {
      keys[i] = scan_next++;
    } else if (has_shift && i >= shift) {
      keys[i] = hot2[zipf.Draw(rng)];
    } else {
      keys[i] = hot1[zipf.Draw(rng)];
    }
  }
  std::vector<uint8_t> seen(hot2_first + (has_shift ? opt.hot_keys : 0), 0);
  uint64_t distinct = 0;
  for (uint64_t k : keys) {
    if (!seen[k]) {
      seen[k] = 1;
      ++distinct;
    }
  }

  FILE* out = stdout;
  if (!opt.output.empty()) {
    out = std::fopen(opt.output.c_str(), "w");
    if (out == nullptr) {
      std::fprintf(stderr, "strata_trace_gen: %s: %s\n", opt.output.c_str(), strerror(errno));
      return 2;
    }
  }
  static char buffer[1 << 20];
  std::setvbuf(out, buffer, _IOFBF, sizeof(buffer));
  std::fprintf(out, "# format: timestamp_ms op key_id value_size ttl_s\n");
  std::fprintf(out,
               "# source: strata_trace_gen --requests %" PRIu64 " --hot-keys %" PRIu64
               " --zipf %g --scan-start %g --scan-length %g --scan-mix %g --shift-at %g"
               " --value-size %" PRIu64 " --seed %" PRIu64 "\n",
               n, opt.hot_keys, opt.zipf, opt.scan_start, opt.scan_length, opt.scan_mix,
               opt.shift_at, opt.value_size, opt.seed);
  std::fprintf(out, "# time: virtual (1 ms per request)\n");
  std::fprintf(out, "# sizes: constant %" PRIu64 "\n", opt.value_size);
  std::fprintf(out, "# requests: %" PRIu64 "  distinct_keys: %" PRIu64 "  ops: get=%" PRIu64 "\n",
               n, distinct, n);
  std::fprintf(out, "# keys: hot set [0, %" PRIu64 "), scan [%" PRIu64 ", %" PRIu64 ")",
               opt.hot_keys, scan_first, hot2_first);
  if (has_shift)
    std::fprintf(out, ", second hot set [%" PRIu64 ", %" PRIu64 ")", hot2_first,
                 hot2_first + opt.hot_keys);
  std::fprintf(out, "\n");
  if (has_scan) {
    std::fprintf(out, "# marker: scan_start %" PRIu64 "\n", scan_start);
    std::fprintf(out, "# marker: scan_end %" PRIu64 "\n", scan_end);
  }
  if (has_shift) std::fprintf(out, "# marker: shift %" PRIu64 "\n", shift);
  for (uint64_t i = 0; i < n; ++i) {
    std::fprintf(out, "%" PRIu64 " get %" PRIu64 " %" PRIu64 " 0\n", i, keys[i], opt.value_size);
  }
  bool ok = std::fflush(out) == 0 && !std::ferror(out);
  if (out != stdout) ok = std::fclose(out) == 0 && ok;
  if (!ok) {
    std::fprintf(stderr, "strata_trace_gen: write failed: %s\n", strerror(errno));
    return 2;
  }
  return 0;
}

}  // namespace
}  // namespace strata::bench

int main(int argc, char** argv) { return strata::bench::Main(argc, argv); }
