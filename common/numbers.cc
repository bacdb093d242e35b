#include "common/numbers.h"

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <string>

namespace strata::common {
namespace {

bool IsSpace(char c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\v' || c == '\f' || c == '\r';
}

// glibc strtoull/strtoll digit scan over one token.
struct Scan {
  bool digits = false;     // at least one digit
  bool negative = false;
  bool overflow = false;   // magnitude > UINT64_MAX
  uint64_t magnitude = 0;
  size_t end = 0;          // index of the first unparsed byte
};

Scan ScanNumber(std::string_view t) {
  Scan s;
  size_t i = 0;
  while (i < t.size() && IsSpace(t[i])) ++i;
  if (i < t.size() && (t[i] == '+' || t[i] == '-')) {
    s.negative = t[i] == '-';
    ++i;
  }
  size_t first = i;
  while (i < t.size() && t[i] >= '0' && t[i] <= '9') {
    uint64_t d = static_cast<uint64_t>(t[i] - '0');
    if (s.magnitude > (UINT64_MAX - d) / 10) s.overflow = true;
    s.magnitude = s.magnitude * 10 + d;
    ++i;
  }
  s.digits = i > first;
  s.end = s.digits ? i : 0;  // strto* sets endptr to the start when nothing parsed
  return s;
}

// The check memcached makes on endptr: white space or the end of the token,
// with something parsed.
bool EndsWell(std::string_view t, const Scan& s) {
  if (!s.digits) return false;
  return s.end == t.size() || IsSpace(t[s.end]);
}

}  // namespace

bool SafeStrtoull(std::string_view token, uint64_t* out) {
  *out = 0;
  Scan s = ScanNumber(token);
  if (s.overflow || !EndsWell(token, s)) return false;
  uint64_t value = s.negative ? 0 - s.magnitude : s.magnitude;
  if (static_cast<int64_t>(value) < 0 && std::memchr(token.data(), '-', s.end) != nullptr) {
    return false;
  }
  *out = value;
  return true;
}

bool SafeStrtoul(std::string_view token, uint32_t* out) {
  // unsigned long is 64 bits: the same checks, then truncation to 32 bits.
  uint64_t value = 0;
  *out = 0;
  if (!SafeStrtoull(token, &value)) return false;
  *out = static_cast<uint32_t>(value);
  return true;
}

bool SafeStrtol(std::string_view token, int32_t* out) {
  *out = 0;
  Scan s = ScanNumber(token);
  if (s.overflow || !EndsWell(token, s)) return false;
  // strtol's range is that of a 64-bit long.
  if (!s.negative && s.magnitude > static_cast<uint64_t>(INT64_MAX)) return false;
  if (s.negative && s.magnitude > static_cast<uint64_t>(INT64_MAX) + 1) return false;
  uint64_t bits = s.negative ? 0 - s.magnitude : s.magnitude;
  *out = static_cast<int32_t>(static_cast<uint32_t>(bits));  // *out = l, as in util.c
  return true;
}

bool SafeStrtod(std::string_view token, double* out) {
  *out = 0;
  // strtod needs a terminated string; a token is short except in abuse.
  char small[64];
  std::string large;
  const char* str = small;
  if (token.size() < sizeof(small)) {
    std::memcpy(small, token.data(), token.size());
    small[token.size()] = '\0';
  } else {
    large.assign(token);
    str = large.c_str();
  }
  // memcached's strings end at the first NUL; so does strtod.
  errno = 0;
  char* end = nullptr;
  double d = std::strtod(str, &end);
  if (errno == ERANGE || end == str) return false;
  if (IsSpace(*end) || *end == '\0') {
    *out = d;
    return true;
  }
  return false;
}

}  // namespace strata::common
