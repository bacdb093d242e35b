#include "proxy/protocol/base64.h"

#include <array>
#include <cstdint>

namespace strata::proxy {
namespace {

constexpr char kAlphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
constexpr uint8_t kNotBase64 = 0x80;

// memcached's dtable: '=' decodes to 0 (and counts as padding).
constexpr std::array<uint8_t, 256> MakeTable() {
  std::array<uint8_t, 256> t{};
  for (auto& v : t) v = kNotBase64;
  for (uint8_t i = 0; i < 64; ++i) t[static_cast<uint8_t>(kAlphabet[i])] = i;
  t['='] = 0;
  return t;
}
constexpr std::array<uint8_t, 256> kTable = MakeTable();

}  // namespace

size_t Base64Decode(std::string_view src, char* out) {
  size_t count = 0;
  for (char c : src) {
    if (kTable[static_cast<uint8_t>(c)] != kNotBase64) ++count;
  }
  if (count == 0 || count % 4 != 0) return 0;
  uint8_t block[4];
  size_t n = 0;
  size_t pos = 0;
  int pad = 0;
  for (char c : src) {
    const uint8_t v = kTable[static_cast<uint8_t>(c)];
    if (v == kNotBase64) continue;
    if (c == '=') ++pad;
    block[n++] = v;
    if (n < 4) continue;
    out[pos++] = static_cast<char>((block[0] << 2) | (block[1] >> 4));
    out[pos++] = static_cast<char>((block[1] << 4) | (block[2] >> 2));
    out[pos++] = static_cast<char>((block[2] << 6) | block[3]);
    n = 0;
    if (pad != 0) {
      if (pad > 2) return 0;  // invalid padding
      pos -= static_cast<size_t>(pad);
      break;
    }
  }
  return pos;
}

size_t Base64Encode(std::string_view src, char* out) {
  const auto* in = reinterpret_cast<const uint8_t*>(src.data());
  size_t len = src.size();
  size_t pos = 0;
  while (len >= 3) {
    out[pos++] = kAlphabet[in[0] >> 2];
    out[pos++] = kAlphabet[((in[0] & 0x03) << 4) | (in[1] >> 4)];
    out[pos++] = kAlphabet[((in[1] & 0x0f) << 2) | (in[2] >> 6)];
    out[pos++] = kAlphabet[in[2] & 0x3f];
    in += 3;
    len -= 3;
  }
  if (len != 0) {
    out[pos++] = kAlphabet[in[0] >> 2];
    if (len == 1) {
      out[pos++] = kAlphabet[(in[0] & 0x03) << 4];
      out[pos++] = '=';
    } else {
      out[pos++] = kAlphabet[((in[0] & 0x03) << 4) | (in[1] >> 4)];
      out[pos++] = kAlphabet[(in[1] & 0x0f) << 2];
    }
    out[pos++] = '=';
  }
  return pos;
}

}  // namespace strata::proxy
