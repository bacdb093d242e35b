// common::SafeStrtoull/SafeStrtoul/SafeStrtol (common/numbers.h) against
// memcached's util.c logic run on glibc (tests/fuzz/safe_strto_oracle.h),
// over a table of edge cases and a large seeded random corpus of tokens:
// digits, signs, leading white space (\t \v \f \r \n and ' '), leading
// zeros, the edges 2^31, 2^32, 2^63, 2^64 and their neighbours, and junk
// suffixes.

#include <gtest/gtest.h>

#include <cstdint>
#include <random>
#include <string>
#include <string_view>
#include <vector>

#include "common/numbers.h"
#include "tests/fuzz/safe_strto_oracle.h"

namespace strata::common {
namespace {

// Checks the three parsers against the oracle on `token`.
void ExpectSameAsMemcached(std::string_view token) {
  std::string shown = ::testing::PrintToString(std::string(token));
  {
    uint64_t got = 7;
    uint64_t want = 7;
    bool got_ok = SafeStrtoull(token, &got);
    bool want_ok = oracle::SafeStrtoull(token, &want);
    ASSERT_EQ(got_ok, want_ok) << "SafeStrtoull(" << shown << ")";
    ASSERT_EQ(got, want) << "SafeStrtoull(" << shown << ")";
  }
  {
    uint32_t got = 7;
    uint32_t want = 7;
    bool got_ok = SafeStrtoul(token, &got);
    bool want_ok = oracle::SafeStrtoul(token, &want);
    ASSERT_EQ(got_ok, want_ok) << "SafeStrtoul(" << shown << ")";
    ASSERT_EQ(got, want) << "SafeStrtoul(" << shown << ")";
  }
  {
    int32_t got = 7;
    int32_t want = 7;
    bool got_ok = SafeStrtol(token, &got);
    bool want_ok = oracle::SafeStrtol(token, &want);
    ASSERT_EQ(got_ok, want_ok) << "SafeStrtol(" << shown << ")";
    ASSERT_EQ(got, want) << "SafeStrtol(" << shown << ")";
  }
}

const std::vector<std::string>& EdgeNumbers() {
  static const std::vector<std::string> kEdges = {
      "0",
      "1",
      "9",
      "10",
      "2147483646",
      "2147483647",
      "2147483648",
      "2147483649",
      "4294967294",
      "4294967295",
      "4294967296",
      "4294967297",
      "9223372036854775806",
      "9223372036854775807",
      "9223372036854775808",
      "9223372036854775809",
      "18446744073709551614",
      "18446744073709551615",
      "18446744073709551616",
      "18446744073709551617",
      "18446744073709551620",
      "27670116110564327424",  // 1.5 * 2^64
      "99999999999999999999",
      "100000000000000000000",
      "340282366920938463463374607431768211456",  // 2^128
  };
  return kEdges;
}

TEST(SafeStrtoTest, Table) {
  // Explicit expectations for the rules that matter to the protocol.
  uint64_t u64 = 0;
  uint32_t u32 = 0;
  int32_t i32 = 0;
  EXPECT_TRUE(SafeStrtoull("18446744073709551615", &u64));
  EXPECT_EQ(u64, UINT64_MAX);
  EXPECT_FALSE(SafeStrtoull("18446744073709551616", &u64));  // ERANGE
  EXPECT_EQ(u64, 0u);                                        // *out is cleared
  EXPECT_FALSE(SafeStrtoull("-1", &u64));                    // negative as signed, '-' present
  EXPECT_TRUE(SafeStrtoull("-9223372036854775809", &u64));   // wraps positive
  EXPECT_EQ(u64, 9223372036854775807ull);
  EXPECT_TRUE(SafeStrtoull(" \t\v\f\r\n5", &u64));  // leading white space
  EXPECT_EQ(u64, 5u);
  EXPECT_TRUE(SafeStrtoull("5\t", &u64));  // white space after the number
  EXPECT_FALSE(SafeStrtoull("5x", &u64));
  EXPECT_FALSE(SafeStrtoull("", &u64));
  EXPECT_FALSE(SafeStrtoull(" ", &u64));
  EXPECT_FALSE(SafeStrtoull("\t", &u64));  // no digits
  EXPECT_FALSE(SafeStrtoull("+", &u64));
  EXPECT_FALSE(SafeStrtoull("0x10", &u64));
  EXPECT_TRUE(SafeStrtoull("+7", &u64));
  EXPECT_EQ(u64, 7u);

  EXPECT_TRUE(SafeStrtoul("4294967296", &u32));  // keeps the low 32 bits
  EXPECT_EQ(u32, 0u);
  EXPECT_TRUE(SafeStrtoul("4294967301", &u32));
  EXPECT_EQ(u32, 5u);
  EXPECT_TRUE(SafeStrtoul("-0", &u32));
  EXPECT_FALSE(SafeStrtoul("-1", &u32));
  EXPECT_FALSE(SafeStrtoul("-4294967295", &u32));  // 2^64 - 2^32 + 1: negative as long

  EXPECT_TRUE(SafeStrtol("-2147483648", &i32));
  EXPECT_EQ(i32, INT32_MIN);
  EXPECT_TRUE(SafeStrtol("2147483648", &i32));  // in range for long: truncated
  EXPECT_EQ(i32, INT32_MIN);
  EXPECT_TRUE(SafeStrtol("4294967295", &i32));
  EXPECT_EQ(i32, -1);
  EXPECT_TRUE(SafeStrtol("9223372036854775807", &i32));
  EXPECT_EQ(i32, -1);
  EXPECT_FALSE(SafeStrtol("9223372036854775808", &i32));  // ERANGE for long
  EXPECT_TRUE(SafeStrtol("-9223372036854775808", &i32));
  EXPECT_EQ(i32, 0);
  EXPECT_FALSE(SafeStrtol("-9223372036854775809", &i32));

  // And all of those agree with the oracle.
  for (const char* t : {"18446744073709551615",
                        "18446744073709551616",
                        "-1",
                        "-9223372036854775809",
                        " \t\v\f\r\n5",
                        "5\t",
                        "5x",
                        "",
                        " ",
                        "\t",
                        "+",
                        "0x10",
                        "+7",
                        "4294967296",
                        "4294967301",
                        "-0",
                        "-4294967295",
                        "-2147483648",
                        "2147483648",
                        "4294967295",
                        "9223372036854775807",
                        "9223372036854775808",
                        "-9223372036854775808",
                        "-9223372036854775809"}) {
    ExpectSameAsMemcached(t);
  }
}

TEST(SafeStrtoTest, EdgesWithSignsWhitespaceAndSuffixes) {
  const std::vector<std::string> prefixes = {"",    " ",   "\t",  "\v", "\f", "\r", "\n",
                                             " \t", "0",   "000", "+",  "-",  "+0", "-0",
                                             " -",  "\t+", "--",  "+-", "- ", "x"};
  const std::vector<std::string> suffixes = {"",   " ",  "\t",   "\r",    "\n",  "\v",   "\f",
                                             "x",  "-",  "0",    " junk", "\t-", "\t-1", " -",
                                             ".5", "e3", "\x80", "\xff",  "9"};
  for (const std::string& number : EdgeNumbers()) {
    for (const std::string& prefix : prefixes) {
      for (const std::string& suffix : suffixes) {
        ExpectSameAsMemcached(prefix + number + suffix);
        if (::testing::Test::HasFatalFailure()) return;
      }
    }
  }
}

// A token built from random pieces; leans towards near-valid numbers.
std::string RandomToken(std::mt19937_64& rng) {
  auto pick = [&](size_t n) { return static_cast<size_t>(rng() % n); };
  static const char kSpaces[] = " \t\v\f\r\n";
  static const char kJunk[] = "-+x.eE0123456789 \t\r\n\v\f/:;aZ\x7f\x80\xff";
  std::string t;
  // Leading white space.
  if (pick(3) == 0) {
    size_t n = 1 + pick(3);
    for (size_t i = 0; i < n; ++i) t += kSpaces[pick(sizeof(kSpaces) - 1)];
  }
  // A sign (or two).
  switch (pick(6)) {
    case 0:
      t += '-';
      break;
    case 1:
      t += '+';
      break;
    case 2:
      t += pick(2) ? "-+" : "--";
      break;
    default:
      break;
  }
  // Leading zeros.
  if (pick(5) == 0) t.append(1 + pick(4), '0');
  // The digits: an edge value, an edge +/- a little, or random digits.
  switch (pick(4)) {
    case 0: {
      t += EdgeNumbers()[pick(EdgeNumbers().size())];
      break;
    }
    case 1: {
      static const uint64_t kBases[] = {1ull << 31, 1ull << 32, 1ull << 63, UINT64_MAX};
      uint64_t v = kBases[pick(4)];
      uint64_t d = pick(5);
      t += std::to_string(pick(2) ? v - d : v + d);  // wraps near 2^64 on purpose
      break;
    }
    default: {
      size_t n = pick(26);
      for (size_t i = 0; i < n; ++i) t += static_cast<char>('0' + pick(10));
      break;
    }
  }
  // A suffix: nothing, white space, junk, or white space then junk.
  switch (pick(5)) {
    case 0:
      t += kSpaces[pick(sizeof(kSpaces) - 1)];
      break;
    case 1: {
      size_t n = 1 + pick(4);
      for (size_t i = 0; i < n; ++i) t += kJunk[pick(sizeof(kJunk) - 1)];
      break;
    }
    case 2: {
      t += kSpaces[pick(sizeof(kSpaces) - 1)];
      size_t n = 1 + pick(4);
      for (size_t i = 0; i < n; ++i) t += kJunk[pick(sizeof(kJunk) - 1)];
      break;
    }
    default:
      break;
  }
  // Now and then, pure noise.
  if (pick(20) == 0) {
    t.clear();
    size_t n = pick(30);
    for (size_t i = 0; i < n; ++i) t += kJunk[pick(sizeof(kJunk) - 1)];
  }
  return t;
}

TEST(SafeStrtoTest, RandomCorpusMatchesGlibc) {
  std::mt19937_64 rng(20240601);
  size_t accepted = 0;
  constexpr int kTokens = 300000;
  for (int i = 0; i < kTokens; ++i) {
    std::string token = RandomToken(rng);
    ExpectSameAsMemcached(token);
    if (::testing::Test::HasFatalFailure()) return;
    uint64_t v = 0;
    accepted += oracle::SafeStrtoull(token, &v) ? 1 : 0;
  }
  // The corpus is useful only if it has both outcomes in quantity.
  EXPECT_GT(accepted, kTokens / 10);
  EXPECT_LT(accepted, kTokens * 9 / 10);
}

TEST(SafeStrtoTest, NoDigitsAfterWhitespaceOrSign) {
  for (const char* t : {"-", "+", " -", "\t+", "-x", " ", "\t\t", "\n", "-\t5"}) {
    ExpectSameAsMemcached(t);
    uint64_t v = 1;
    EXPECT_FALSE(SafeStrtoull(t, &v)) << ::testing::PrintToString(std::string(t));
  }
}

}  // namespace
}  // namespace strata::common
