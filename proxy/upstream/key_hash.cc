#include "proxy/upstream/key_hash.h"

#include <md5.h>
#include <zlib.h>

#define XXH_INLINE_ALL
#include <xxhash.h>

#include <climits>
#include <cstring>

namespace strata::upstream::hash {
namespace {

uint32_t Rotl32(uint32_t x, int r) { return (x << r) | (x >> (32 - r)); }

// The code point of the UTF-8 sequence at data[*i], advancing *i past it;
// -1 if the bytes there are not well-formed UTF-8 (as Python's strict
// decoder rules: no overlong forms, no surrogates, nothing above U+10FFFF).
int32_t DecodeUtf8(std::string_view data, size_t* i) {
  auto byte = [&](size_t at) { return static_cast<uint8_t>(data[at]); };
  const uint8_t b0 = byte(*i);
  if (b0 < 0x80) {
    ++*i;
    return b0;
  }
  size_t len = 0;
  uint8_t lo = 0x80;
  uint8_t hi = 0xBF;
  if (b0 >= 0xC2 && b0 <= 0xDF) {
    len = 2;
  } else if (b0 >= 0xE0 && b0 <= 0xEF) {
    len = 3;
    if (b0 == 0xE0) lo = 0xA0;
    if (b0 == 0xED) hi = 0x9F;
  } else if (b0 >= 0xF0 && b0 <= 0xF4) {
    len = 4;
    if (b0 == 0xF0) lo = 0x90;
    if (b0 == 0xF4) hi = 0x8F;
  } else {
    return -1;
  }
  if (*i + len > data.size()) return -1;
  int32_t cp = b0 & (0x7F >> len);
  for (size_t k = 1; k < len; ++k) {
    const uint8_t b = byte(*i + k);
    if (k == 1 ? (b < lo || b > hi) : (b < 0x80 || b > 0xBF)) return -1;
    cp = (cp << 6) | (b & 0x3F);
  }
  *i += len;
  return cp;
}

// The length of the digit run at s[*pos] as natsort counts it (see
// NaturalLess), advancing *pos over the leading zeros it skips.
size_t DigitRun(std::string_view s, size_t* pos) {
  size_t len = 1;
  char first = s[*pos];
  while (*pos + len < s.size()) {
    const char next = s[*pos + len];
    if (first == '0') {
      ++*pos;
      first = next;
      continue;
    }
    if (next < '0' || next > '9') break;
    ++len;
  }
  return len;
}

bool IsDigit(char c) { return c >= '0' && c <= '9'; }

}  // namespace

std::array<uint8_t, 16> Md5(std::string_view data) {
  MD5_CTX ctx;
  MD5Init(&ctx);
  MD5Update(&ctx, reinterpret_cast<const uint8_t*>(data.data()), data.size());
  std::array<uint8_t, 16> digest{};
  MD5Final(digest.data(), &ctx);
  return digest;
}

uint32_t KetamaWord(const std::array<uint8_t, 16>& digest, int alignment) {
  const auto at = static_cast<size_t>(alignment) * 4;
  return static_cast<uint32_t>(digest[at + 3]) << 24 | static_cast<uint32_t>(digest[at + 2]) << 16 |
         static_cast<uint32_t>(digest[at + 1]) << 8 | static_cast<uint32_t>(digest[at]);
}

uint32_t Crc32(std::string_view data) {
  uLong crc = crc32(0L, Z_NULL, 0);
  const auto* bytes = reinterpret_cast<const Bytef*>(data.data());
  size_t left = data.size();
  while (left > 0) {  // zlib takes a uInt length
    const uInt chunk = left > UINT_MAX ? UINT_MAX : static_cast<uInt>(left);
    crc = crc32(crc, bytes, chunk);
    bytes += chunk;
    left -= chunk;
  }
  return static_cast<uint32_t>(crc);
}

uint64_t Xxh64(std::string_view data) { return XXH64(data.data(), data.size(), 0); }

uint32_t Murmur3_32(std::string_view data, uint32_t seed) {
  constexpr uint32_t kC1 = 0xcc9e2d51;
  constexpr uint32_t kC2 = 0x1b873593;
  const auto* p = reinterpret_cast<const uint8_t*>(data.data());
  const size_t n = data.size();
  const size_t blocks = n / 4;
  uint32_t h = seed;
  for (size_t i = 0; i < blocks; ++i) {
    uint32_t k = static_cast<uint32_t>(p[4 * i]) | static_cast<uint32_t>(p[4 * i + 1]) << 8 |
                 static_cast<uint32_t>(p[4 * i + 2]) << 16 |
                 static_cast<uint32_t>(p[4 * i + 3]) << 24;
    k *= kC1;
    k = Rotl32(k, 15);
    k *= kC2;
    h ^= k;
    h = Rotl32(h, 13);
    h = h * 5 + 0xe6546b64;
  }
  const uint8_t* tail = p + blocks * 4;
  uint32_t k = 0;
  switch (n & 3) {
    case 3:
      k ^= static_cast<uint32_t>(tail[2]) << 16;
      [[fallthrough]];
    case 2:
      k ^= static_cast<uint32_t>(tail[1]) << 8;
      [[fallthrough]];
    case 1:
      k ^= tail[0];
      k *= kC1;
      k = Rotl32(k, 15);
      k *= kC2;
      h ^= k;
  }
  h ^= static_cast<uint32_t>(n);
  h ^= h >> 16;
  h *= 0x85ebca6b;
  h ^= h >> 13;
  h *= 0xc2b2ae35;
  h ^= h >> 16;
  return h;
}

int32_t JumpHash(uint64_t key, int32_t buckets) {
  int64_t b = -1;
  int64_t j = 0;
  while (j < buckets) {
    b = j;
    key = key * 2862933555777941757ULL + 1;
    j = static_cast<int64_t>(static_cast<double>(b + 1) * (static_cast<double>(int64_t{1} << 31) /
                                                           static_cast<double>((key >> 33) + 1)));
  }
  return static_cast<int32_t>(b);
}

bool NaturalLess(std::string_view a, std::string_view b) {
  size_t pa = 0;
  size_t pb = 0;
  for (;;) {
    if (pa >= a.size()) return pb < b.size();
    if (pb >= b.size()) return false;
    const char ca = a[pa];
    const char cb = b[pb];
    if (IsDigit(ca) && IsDigit(cb)) {
      const size_t la = DigitRun(a, &pa);
      const size_t lb = DigitRun(b, &pb);
      if (la != lb) return la < lb;
      const int c = a.substr(pa, la).compare(b.substr(pb, lb));
      if (c != 0) return c < 0;
      pa += la;
      pb += lb;
      continue;
    }
    if (ca != cb) return static_cast<uint8_t>(ca) < static_cast<uint8_t>(cb);
    ++pa;
    ++pb;
  }
}

std::string_view PymemcacheText(std::string_view key, std::string* scratch) {
  size_t i = 0;
  while (i < key.size() && static_cast<uint8_t>(key[i]) < 0x80) ++i;
  if (i == key.size()) return key;  // ASCII: one byte per character already
  scratch->assign(key.substr(0, i));
  while (i < key.size()) {
    const int32_t cp = DecodeUtf8(key, &i);
    if (cp < 0) return key;
    scratch->push_back(static_cast<char>(cp & 0xFF));
  }
  return *scratch;
}

}  // namespace strata::upstream::hash
