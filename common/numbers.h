// memcached's number parsers (util.c safe_strto*) on one token, exactly as
// memcached 1.6.18's 64-bit build on glibc behaves, quirks included. The
// protocol parser (proxy/protocol/protocol.h) reads command arguments with them and
// the RAM tier (incr/decr) reads stored values with them, as memcached
// does; tests/fuzz/safe_strto_oracle.h is the reference they are checked
// against (tests/proxy/safe_strto_test.cc, tests/fuzz/fuzz_numbers.cc).
//
// Rules of the integer forms: strtoul/strtol semantics (leading white space,
// one sign), at least one digit, the number must end at the token's end or
// at white space, ERANGE fails, a '-' on a value that is negative as signed
// fails for the unsigned forms, and the 32-bit forms keep the low 32 bits of
// a larger value. No leading "0x" or octal: base 10 only. On failure *out is
// 0.
//
// Thread safety: pure functions over caller-owned memory; safe from any
// thread.
#pragma once

#include <cstdint>
#include <string_view>

namespace strata::common {

// util.c's safe_strtoull.
bool SafeStrtoull(std::string_view token, uint64_t* out);
// util.c's safe_strtoul (unsigned long is 64 bits: the checks of
// SafeStrtoull, then truncation to 32 bits).
bool SafeStrtoul(std::string_view token, uint32_t* out);
// util.c's safe_strtol (a 64-bit long's range, then truncation to 32 bits).
bool SafeStrtol(std::string_view token, int32_t* out);
// util.c's safe_strtod: glibc strtod, the number must end at the token's
// end or at white space, ERANGE (overflow or underflow) fails.
bool SafeStrtod(std::string_view token, double* out);

}  // namespace strata::common
