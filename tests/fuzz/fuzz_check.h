// FUZZ_CHECK: the fuzzers' assertion. On failure it prints the condition,
// the place and an optional context string, then aborts, which libFuzzer
// (and the fuzz_replay tests) report as a crash. Active in every build
// type, unlike assert().
#pragma once

#include <cstdio>
#include <cstdlib>
#include <string>

namespace strata::fuzz {

[[noreturn]] inline void CheckFailed(const char* cond, const char* file, int line,
                                     const std::string& context) {
  std::fprintf(stderr, "%s:%d: FUZZ_CHECK(%s) failed\n", file, line, cond);
  if (!context.empty()) std::fprintf(stderr, "  %s\n", context.c_str());
  std::fflush(stderr);
  std::abort();
}

}  // namespace strata::fuzz

// FUZZ_CHECK(cond) or FUZZ_CHECK(cond, context): `context` is evaluated
// only on failure.
#define FUZZ_CHECK(cond, ...)                                                                      \
  do {                                                                                             \
    if (!(cond)) ::strata::fuzz::CheckFailed(#cond, __FILE__, __LINE__, std::string{__VA_ARGS__}); \
  } while (0)
