#include "proxy/upstream/placement.h"

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <limits>
#include <map>

#include "proxy/upstream/key_hash.h"

namespace strata::upstream {
namespace {

using common::Result;
using common::Status;

constexpr uint32_t kKetamaPointsPerServer = 160;  // libmemcached's and twemproxy's
constexpr uint32_t kKetamaPointsPerHash = 4;
constexpr size_t kGomemcacheKeyBuffer = 256;  // gomemcache's keyBufPool buffers

// "<path>[i]"
std::string Entry(std::string_view path, size_t i) {
  return std::string(path) + "[" + std::to_string(i) + "]";
}

// The text ketama hashes for a server (see placement.h).
std::string KetamaName(const ServerSpec& s) {
  if (!s.name.empty()) return s.name;
  if (s.port == common::kMemcachedDefaultPort) return s.host;
  return s.host + ":" + std::to_string(s.port);
}

// Points of one server, in the float arithmetic of libmemcached's
// update_continuum() and twemproxy's ketama_update():
//   (uint32_t)(floor((float)(pct * 160 / 4 * (float)n + 0.0000000001))) * 4
// with `float pct = (float)weight / (float)total`.
uint32_t KetamaPoints(uint32_t weight, uint64_t total, size_t n) {
  const float pct = static_cast<float>(weight) / static_cast<float>(total);
  float scaled = pct * static_cast<float>(kKetamaPointsPerServer);
  scaled = scaled / static_cast<float>(kKetamaPointsPerHash);
  scaled = scaled * static_cast<float>(n);
  const auto nudged = static_cast<float>(static_cast<double>(scaled) + 0.0000000001);
  return static_cast<uint32_t>(std::floor(nudged)) * kKetamaPointsPerHash;
}

}  // namespace

std::string_view DistributionName(Distribution d) {
  switch (d) {
    case Distribution::kKetama:
      return "ketama";
    case Distribution::kRendezvous:
      return "rendezvous";
    case Distribution::kJump:
      return "jump";
    case Distribution::kModula:
      return "modula";
  }
  return "unknown";
}

Result<Distribution> ParseDistribution(std::string_view name) {
  for (Distribution d : {Distribution::kKetama, Distribution::kRendezvous, Distribution::kJump,
                         Distribution::kModula}) {
    if (name == DistributionName(d)) return d;
  }
  return Status::InvalidArgument("expected one of ketama, rendezvous, jump, modula, got \"" +
                                 std::string(name) + "\"");
}

Result<Placement> Placement::Build(Distribution d, std::vector<ServerSpec> servers,
                                   std::string_view path) {
  auto error = [path](size_t i, const std::string& detail) {
    return Status::InvalidArgument(Entry(path, i) + ": " + detail);
  };
  if (servers.empty()) return Status::InvalidArgument("no servers");
  if (servers.size() > std::numeric_limits<uint32_t>::max() / kKetamaPointsPerServer) {
    return Status::InvalidArgument("too many servers");
  }
  std::map<std::string, size_t> addresses;
  std::map<std::string, size_t> ketama_names;
  for (size_t i = 0; i < servers.size(); ++i) {
    const ServerSpec& s = servers[i];
    auto [it, fresh] = addresses.emplace(s.Address(), i);
    if (!fresh) {
      return error(i, s.Address() + " is listed twice (also " + Entry(path, it->second) + ")");
    }
    if (s.weight < 1 || s.weight > common::kMaxServerWeight) {
      return error(i, "weight must be 1.." + std::to_string(common::kMaxServerWeight));
    }
    if (s.weight != 1 && (d == Distribution::kRendezvous || d == Distribution::kJump)) {
      return error(i, "weight " + std::to_string(s.weight) + ": distribution " +
                          std::string(DistributionName(d)) +
                          " has no weights (its clients give every server one share)");
    }
    if (!s.name.empty() && d != Distribution::kKetama) {
      return error(i, "a server name (\"" + s.name + "\") is used only by ketama, not " +
                          std::string(DistributionName(d)));
    }
    if (d == Distribution::kKetama) {
      auto [named, unique] = ketama_names.emplace(KetamaName(s), i);
      if (!unique) {
        return error(
            i, "hashes by the same name \"" + named->first + "\" as " + Entry(path, named->second));
      }
    }
  }

  Placement p(d, std::move(servers));
  const size_t n = p.servers_.size();
  switch (d) {
    case Distribution::kKetama: {
      uint64_t total = 0;
      for (const ServerSpec& s : p.servers_) total += s.weight;
      for (size_t i = 0; i < n; ++i) {
        const ServerSpec& s = p.servers_[i];
        const std::string name = KetamaName(s);
        const uint32_t hashes = KetamaPoints(s.weight, total, n) / kKetamaPointsPerHash;
        for (uint32_t h = 0; h < hashes; ++h) {
          const auto digest = hash::Md5(name + "-" + std::to_string(h));
          for (int word = 0; word < static_cast<int>(kKetamaPointsPerHash); ++word) {
            p.continuum_.push_back({hash::KetamaWord(digest, word), static_cast<uint32_t>(i)});
          }
        }
      }
      std::stable_sort(p.continuum_.begin(), p.continuum_.end(),
                       [](const Point& a, const Point& b) { return a.value < b.value; });
      break;
    }
    case Distribution::kRendezvous:
      for (const ServerSpec& s : p.servers_) {
        p.prefixes_.push_back(s.host + ":" + std::to_string(s.port) + "-");
      }
      break;
    case Distribution::kJump: {
      std::vector<std::string> text;
      for (const ServerSpec& s : p.servers_) text.push_back(s.Address());
      // Insertion sort, as Go sorts short lists: it needs nothing of the
      // comparison (natsort's zero skipping makes it no strict weak order
      // on odd input, which std::sort may not be given), and addresses equal
      // in it are refused below.
      for (uint32_t i = 0; i < n; ++i) {
        size_t at = p.order_.size();
        while (at > 0 && hash::NaturalLess(text[i], text[p.order_[at - 1]])) --at;
        p.order_.insert(p.order_.begin() + static_cast<std::ptrdiff_t>(at), i);
      }
      for (size_t i = 1; i < n; ++i) {
        const uint32_t a = p.order_[i - 1];
        const uint32_t b = p.order_[i];
        if (!hash::NaturalLess(text[a], text[b])) {
          return error(b, text[b] + " and " + Entry(path, a) + " (" + text[a] +
                              ") are equal in the natural order of jump");
        }
      }
      break;
    }
    case Distribution::kModula:
      for (uint32_t i = 0; i < n; ++i) {
        p.order_.insert(p.order_.end(), p.servers_[i].weight, i);
      }
      break;
  }
  return p;
}

size_t Placement::Pick(std::string_view key) const {
  switch (distribution_) {
    case Distribution::kKetama:
      return PickKetama(key);
    case Distribution::kRendezvous:
      return PickRendezvous(key);
    case Distribution::kJump:
      return PickJump(key);
    case Distribution::kModula:
      return PickModula(key);
  }
  return 0;
}

size_t Placement::PickKetama(std::string_view key) const {
  if (servers_.size() == 1) return 0;
  const uint32_t h = hash::KetamaWord(hash::Md5(key), 0);
  auto it = std::lower_bound(continuum_.begin(), continuum_.end(), h,
                             [](const Point& p, uint32_t v) { return p.value < v; });
  if (it == continuum_.end()) it = continuum_.begin();
  return it->server;
}

size_t Placement::PickRendezvous(std::string_view key) const {
  std::string scratch;
  const std::string_view text = hash::PymemcacheText(key, &scratch);
  // "host:port-" + text, composed on the stack for keys of ordinary size.
  char stack[512];
  std::string heap;
  int64_t best_score = -1;
  size_t best = 0;
  for (size_t i = 0; i < prefixes_.size(); ++i) {
    const std::string& prefix = prefixes_[i];
    const size_t len = prefix.size() + text.size();
    char* buf = stack;
    if (len > sizeof(stack)) {
      heap.resize(len);
      buf = heap.data();
    }
    std::copy(prefix.begin(), prefix.end(), buf);
    std::copy(text.begin(), text.end(), buf + prefix.size());
    const int64_t score = hash::Murmur3_32(std::string_view(buf, len));
    // pymemcache keeps the first maximum, except that a tie goes to the
    // greater node text ("host:port").
    if (score > best_score || (score == best_score && Node(i) > Node(best))) {
      best_score = score;
      best = i;
    }
  }
  return best;
}

std::string_view Placement::Node(size_t i) const {
  const std::string& prefix = prefixes_[i];
  return std::string_view(prefix).substr(0, prefix.size() - 1);  // without the '-'
}

size_t Placement::PickJump(std::string_view key) const {
  if (order_.size() == 1) return order_[0];
  const int32_t bucket = hash::JumpHash(hash::Xxh64(key), static_cast<int32_t>(order_.size()));
  return order_[static_cast<size_t>(bucket)];
}

size_t Placement::PickModula(std::string_view key) const {
  if (order_.size() == 1) return order_[0];
  const uint32_t crc = hash::Crc32(key.substr(0, std::min(key.size(), kGomemcacheKeyBuffer)));
  return order_[crc % order_.size()];
}

}  // namespace strata::upstream
