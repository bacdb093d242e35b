#include "proxy/shared/prefix_stats.h"

#include <charconv>
#include <cstring>

namespace strata::proxy {
namespace {

uint32_t Rotl32(uint32_t x, int r) { return (x << r) | (x >> (32 - r)); }

void AppendU64(std::string* s, uint64_t v) {
  char buf[24];
  s->append(buf, static_cast<size_t>(std::to_chars(buf, buf + sizeof(buf), v).ptr - buf));
}

}  // namespace

uint32_t PrefixStats::Murmur3(std::string_view data) {
  const auto* bytes = reinterpret_cast<const uint8_t*>(data.data());
  const size_t nblocks = data.size() / 4;
  constexpr uint32_t c1 = 0xcc9e2d51;
  constexpr uint32_t c2 = 0x1b873593;
  uint32_t h1 = 0;
  for (size_t i = 0; i < nblocks; ++i) {
    uint32_t k1;
    std::memcpy(&k1, bytes + i * 4, 4);  // little-endian, as memcached reads it on x86
    k1 *= c1;
    k1 = Rotl32(k1, 15);
    k1 *= c2;
    h1 ^= k1;
    h1 = Rotl32(h1, 13);
    h1 = h1 * 5 + 0xe6546b64;
  }
  const uint8_t* tail = bytes + nblocks * 4;
  uint32_t k1 = 0;
  switch (data.size() & 3) {
    case 3:
      k1 ^= uint32_t{tail[2]} << 16;
      [[fallthrough]];
    case 2:
      k1 ^= uint32_t{tail[1]} << 8;
      [[fallthrough]];
    case 1:
      k1 ^= tail[0];
      k1 *= c1;
      k1 = Rotl32(k1, 15);
      k1 *= c2;
      h1 ^= k1;
  }
  h1 ^= static_cast<uint32_t>(data.size());
  h1 ^= h1 >> 16;
  h1 *= 0x85ebca6b;
  h1 ^= h1 >> 13;
  h1 *= 0xc2b2ae35;
  h1 ^= h1 >> 16;
  return h1;
}

PrefixStats::Entry* PrefixStats::Find(std::string_view key) {
  const size_t length = key.find(kDelimiter);
  if (length == std::string_view::npos) return nullptr;
  const std::string_view prefix = key.substr(0, length);
  std::vector<Entry>& bucket = buckets_[Murmur3(prefix) % kBuckets];
  // memcached walks the bucket newest first and matches with
  // strncmp(entry, key, length): the first entry that starts with the prefix.
  for (auto it = bucket.rbegin(); it != bucket.rend(); ++it) {
    if (std::string_view(it->prefix).substr(0, length) == prefix) return &*it;
  }
  if (count_ >= kMaxPrefixes) return nullptr;
  ++count_;
  bucket.push_back(Entry{std::string(prefix)});
  return &bucket.back();
}

void PrefixStats::RecordGet(std::string_view key, bool hit) {
  if (!enabled()) return;
  common::MutexLock lock(&mu_);
  if (Entry* e = Find(key)) {
    ++e->gets;
    if (hit) ++e->hits;
  }
}

void PrefixStats::RecordSet(std::string_view key) {
  if (!enabled()) return;
  common::MutexLock lock(&mu_);
  if (Entry* e = Find(key)) ++e->sets;
}

void PrefixStats::RecordDelete(std::string_view key) {
  if (!enabled()) return;
  common::MutexLock lock(&mu_);
  if (Entry* e = Find(key)) ++e->deletes;
}

void PrefixStats::Clear() {
  common::MutexLock lock(&mu_);
  for (std::vector<Entry>& bucket : buckets_) std::vector<Entry>().swap(bucket);
  count_ = 0;
}

std::string PrefixStats::Dump() const {
  std::string out;
  common::MutexLock lock(&mu_);
  for (const std::vector<Entry>& bucket : buckets_) {
    for (auto it = bucket.rbegin(); it != bucket.rend(); ++it) {
      out.append("PREFIX ").append(it->prefix).append(" get ");
      AppendU64(&out, it->gets);
      out.append(" hit ");
      AppendU64(&out, it->hits);
      out.append(" set ");
      AppendU64(&out, it->sets);
      out.append(" del ");
      AppendU64(&out, it->deletes);
      out.append("\r\n");
    }
  }
  out.append("END\r\n");
  return out;
}

}  // namespace strata::proxy
