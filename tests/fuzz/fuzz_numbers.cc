// Fuzzes common::SafeStrtoull/SafeStrtoul/SafeStrtol against memcached's
// util.c logic on glibc (safe_strto_oracle.h). The input is cut at NUL
// bytes into tokens (a protocol token never holds a NUL) and each token must
// get the same verdict and the same value from both. The whole input, NULs
// included, must not crash the parsers.

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "common/numbers.h"
#include "tests/fuzz/fuzz_check.h"
#include "tests/fuzz/safe_strto_oracle.h"

namespace {

std::string Shown(std::string_view token) {
  std::string s = "token \"";
  for (char c : token) {
    auto u = static_cast<unsigned char>(c);
    if (u < 0x20 || u >= 0x7f || c == '"' || c == '\\') {
      static const char kHex[] = "0123456789abcdef";
      s += "\\x";
      s += kHex[u >> 4];
      s += kHex[u & 15];
    } else {
      s += c;
    }
  }
  return s + "\"";
}

void CheckToken(std::string_view token) {
  namespace common = strata::common;
  namespace oracle = strata::oracle;
  uint64_t u64 = 1;
  uint64_t want_u64 = 2;
  bool ok = common::SafeStrtoull(token, &u64);
  FUZZ_CHECK(ok == oracle::SafeStrtoull(token, &want_u64), Shown(token) + " (strtoull)");
  FUZZ_CHECK(u64 == want_u64, Shown(token) + " (strtoull value)");

  uint32_t u32 = 1;
  uint32_t want_u32 = 2;
  ok = common::SafeStrtoul(token, &u32);
  FUZZ_CHECK(ok == oracle::SafeStrtoul(token, &want_u32), Shown(token) + " (strtoul)");
  FUZZ_CHECK(u32 == want_u32, Shown(token) + " (strtoul value)");

  int32_t i32 = 1;
  int32_t want_i32 = 2;
  ok = common::SafeStrtol(token, &i32);
  FUZZ_CHECK(ok == oracle::SafeStrtol(token, &want_i32), Shown(token) + " (strtol)");
  FUZZ_CHECK(i32 == want_i32, Shown(token) + " (strtol value)");
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view input(reinterpret_cast<const char*>(data), size);
  size_t start = 0;
  while (true) {
    size_t nul = input.find('\0', start);
    CheckToken(input.substr(start, nul == std::string_view::npos ? nul : nul - start));
    if (nul == std::string_view::npos) break;
    start = nul + 1;
  }
  // Bytes the protocol never passes (NULs inside): only must not crash.
  uint64_t u64 = 0;
  uint32_t u32 = 0;
  int32_t i32 = 0;
  (void)strata::common::SafeStrtoull(input, &u64);
  (void)strata::common::SafeStrtoul(input, &u32);
  (void)strata::common::SafeStrtol(input, &i32);
  return 0;
}
