// The oracle for common::SafeStrtoull/SafeStrtoul/SafeStrtol/SafeStrtod
// (common/numbers.h): memcached's util.c safe_strto* logic, calling glibc's
// strtoull/strtoul/strtol exactly as util.c does (errno, endptr and the '-'
// check), on a NUL-terminated copy of the token. Shared by the unit tests (tests/proxy) and fuzz_numbers.
//
// Tokens never hold a NUL (the parser cuts the line at the first one, as
// memcached's strlen() does), so the copy stops at the first NUL: that is
// what libc sees.
//
// Thread safety: pure functions (errno is thread-local).
#pragma once

#include <cctype>
#include <cerrno>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <string>
#include <string_view>

namespace strata::oracle {

// util.c's xisspace().
inline bool McIsSpace(char c) { return std::isspace(static_cast<unsigned char>(c)) != 0; }

// memcached safe_strtoull(): strtoull; fail on ERANGE or no digits; the end
// must be white space or the end of the string; a value that is negative as
// a signed number fails if a '-' is in the parsed part.
inline bool McSafeStrtoull(const char* str, uint64_t* out) {
  errno = 0;
  *out = 0;
  char* endptr = nullptr;
  unsigned long long ull = std::strtoull(str, &endptr, 10);  // NOLINT(runtime/int)
  if (errno == ERANGE || str == endptr) return false;
  if (McIsSpace(*endptr) || (*endptr == '\0' && endptr != str)) {
    if (static_cast<long long>(ull) < 0) {  // NOLINT(runtime/int)
      if (std::memchr(str, '-', static_cast<size_t>(endptr - str)) != nullptr) return false;
    }
    *out = ull;
    return true;
  }
  return false;
}

// memcached safe_strtoul(): strtoul (64-bit unsigned long), the same checks,
// then *out = l keeps the low 32 bits.
inline bool McSafeStrtoul(const char* str, uint32_t* out) {
  *out = 0;
  errno = 0;
  char* endptr = nullptr;
  unsigned long l = std::strtoul(str, &endptr, 10);  // NOLINT(runtime/int)
  if (errno == ERANGE || str == endptr) return false;
  if (McIsSpace(*endptr) || (*endptr == '\0' && endptr != str)) {
    if (static_cast<long>(l) < 0) {  // NOLINT(runtime/int)
      if (std::memchr(str, '-', static_cast<size_t>(endptr - str)) != nullptr) return false;
    }
    *out = static_cast<uint32_t>(l);
    return true;
  }
  return false;
}

// memcached safe_strtol(): strtol (64-bit long), the same end checks, then
// *out = l keeps the low 32 bits.
inline bool McSafeStrtol(const char* str, int32_t* out) {
  errno = 0;
  *out = 0;
  char* endptr = nullptr;
  long l = std::strtol(str, &endptr, 10);  // NOLINT(runtime/int)
  if (errno == ERANGE || str == endptr) return false;
  if (McIsSpace(*endptr) || (*endptr == '\0' && endptr != str)) {
    *out = static_cast<int32_t>(static_cast<uint32_t>(l));
    return true;
  }
  return false;
}

// memcached safe_strtod(): strtod; fail on ERANGE or nothing parsed; the
// end must be white space or the end of the string.
inline bool McSafeStrtod(const char* str, double* out) {
  errno = 0;
  *out = 0;
  char* endptr = nullptr;
  double d = std::strtod(str, &endptr);
  if (errno == ERANGE || str == endptr) return false;
  if (McIsSpace(*endptr) || (*endptr == '\0' && endptr != str)) {
    *out = d;
    return true;
  }
  return false;
}

// The NUL-terminated copy libc would see for `token`.
inline std::string CString(std::string_view token) {
  return std::string(token.substr(0, token.find('\0')));
}

inline bool SafeStrtoull(std::string_view token, uint64_t* out) {
  return McSafeStrtoull(CString(token).c_str(), out);
}
inline bool SafeStrtoul(std::string_view token, uint32_t* out) {
  return McSafeStrtoul(CString(token).c_str(), out);
}
inline bool SafeStrtol(std::string_view token, int32_t* out) {
  return McSafeStrtol(CString(token).c_str(), out);
}
inline bool SafeStrtod(std::string_view token, double* out) {
  return McSafeStrtod(CString(token).c_str(), out);
}

}  // namespace strata::oracle
