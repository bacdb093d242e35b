// The hash functions under the distributions, against published reference
// values. (The distributions as a whole are pinned by the golden vectors.)

#include "proxy/upstream/key_hash.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <string>
#include <vector>

namespace strata::upstream::hash {
namespace {

TEST(KeyHashTest, Md5MatchesRfc1321) {
  // RFC 1321, appendix A.5.
  const auto d = Md5("abc");
  const uint8_t want[16] = {0x90, 0x01, 0x50, 0x98, 0x3c, 0xd2, 0x4f, 0xb0,
                            0xd6, 0x96, 0x3f, 0x7d, 0x28, 0xe1, 0x7f, 0x72};
  EXPECT_TRUE(std::equal(d.begin(), d.end(), want));
  EXPECT_EQ(KetamaWord(d, 0), 0x98500190u);
  EXPECT_EQ(KetamaWord(d, 3), 0x727fe128u);
}

TEST(KeyHashTest, Crc32IsIeee) {
  EXPECT_EQ(Crc32(""), 0u);
  EXPECT_EQ(Crc32("123456789"), 0xCBF43926u);  // the standard check value
}

TEST(KeyHashTest, Xxh64SeedZero) {
  EXPECT_EQ(Xxh64(""), 0xEF46DB3751D8E999ull);  // xxHash's reference values
  EXPECT_EQ(Xxh64("a"), 0xD24EC4F1A98C6E5Bull);
}

TEST(KeyHashTest, Murmur3MatchesReference) {
  // Values of the reference MurmurHash3_x86_32 (SMHasher), seed 0 unless
  // given: empty input, the tail cases 1..3 and whole blocks.
  EXPECT_EQ(Murmur3_32(""), 0u);
  EXPECT_EQ(Murmur3_32("", 1), 0x514E28B7u);
  EXPECT_EQ(Murmur3_32("a"), 0x3C2569B2u);
  EXPECT_EQ(Murmur3_32("ab"), 0x9BBFD75Fu);
  EXPECT_EQ(Murmur3_32("abc"), 0xB3DD93FAu);
  EXPECT_EQ(Murmur3_32("abcd"), 0x43ED676Au);
  EXPECT_EQ(Murmur3_32("Hello, world!", 1234), 0xFAF6CDB3u);
  EXPECT_EQ(Murmur3_32("The quick brown fox jumps over the lazy dog"), 0x2E4FF723u);
}

TEST(KeyHashTest, JumpHashStaysInRangeAndMovesLittle) {
  EXPECT_EQ(JumpHash(0, 1), 0);
  EXPECT_EQ(JumpHash(12345, 1), 0);
  // Growing from n to n+1 buckets moves a key only into the new bucket.
  for (uint64_t key = 1; key < 2000; ++key) {
    const uint64_t k = key * 0x9E3779B97F4A7C15ull;
    for (int32_t n = 1; n < 40; ++n) {
      const int32_t a = JumpHash(k, n);
      const int32_t b = JumpHash(k, n + 1);
      ASSERT_GE(a, 0);
      ASSERT_LT(a, n);
      ASSERT_TRUE(b == a || b == n) << key << " " << n;
    }
  }
}

TEST(KeyHashTest, NaturalOrderOfAddresses) {
  std::vector<std::string> list = {
      "memcached-10.mc:11211", "10.0.0.10:11211", "memcached-2.mc:11211", "10.0.0.9:11211",
      "10.0.0.2:11211",        "127.0.0.1:9000",  "127.0.0.1:11211",      "memcached-1.mc:11211",
      "[::1]:11211",           "10.0.0.2:9000",
  };
  std::stable_sort(list.begin(), list.end(), NaturalLess);
  const std::vector<std::string> want = {
      "10.0.0.2:9000",        "10.0.0.2:11211",        "10.0.0.9:11211", "10.0.0.10:11211",
      "127.0.0.1:9000",       "127.0.0.1:11211",       "[::1]:11211",    "memcached-1.mc:11211",
      "memcached-2.mc:11211", "memcached-10.mc:11211",
  };
  EXPECT_EQ(list, want);
}

TEST(KeyHashTest, NaturalOrderDetails) {
  EXPECT_TRUE(NaturalLess("z2.doc", "z10.doc"));
  EXPECT_FALSE(NaturalLess("z10.doc", "z2.doc"));
  EXPECT_TRUE(NaturalLess("a", "ab"));
  EXPECT_FALSE(NaturalLess("ab", "a"));
  EXPECT_FALSE(NaturalLess("abc", "abc"));
  EXPECT_TRUE(NaturalLess("Alpha 2A-900", "Alpha 2A-8000"));
  EXPECT_TRUE(NaturalLess("Allegia 50 Clasteron", "Allegia 50B Clasteron"));
  EXPECT_TRUE(NaturalLess("x9", "x10"));
  // Leading zeros are skipped: equal either way.
  EXPECT_FALSE(NaturalLess("a01", "a1"));
  EXPECT_FALSE(NaturalLess("a1", "a01"));
  EXPECT_FALSE(NaturalLess("1.0.2", "1.00.2"));
  EXPECT_FALSE(NaturalLess("1.00.2", "1.0.2"));
  // Bytes compare unsigned.
  EXPECT_TRUE(NaturalLess("a", "\xC3"));
}

TEST(KeyHashTest, PymemcacheTextIsLowByteOfEachCodePoint) {
  std::string scratch;
  EXPECT_EQ(PymemcacheText("plain:key", &scratch), "plain:key");
  EXPECT_EQ(PymemcacheText("caf\xC3\xA9", &scratch), "caf\xE9");  // U+00E9
  EXPECT_EQ(PymemcacheText("\xE2\x82\xAC", &scratch), "\xAC");    // U+20AC
  EXPECT_EQ(PymemcacheText("\xF0\x9F\x94\x91"
                           "1",
                           &scratch),
            "\x11"
            "1");                                                         // U+1F511
  EXPECT_EQ(PymemcacheText("\xC4\x80", &scratch), std::string(1, '\0'));  // U+0100
  // Not UTF-8: unchanged (overlong, surrogate, truncated, above U+10FFFF).
  for (std::string bad : {"\xC0\xAF", "\xED\xA0\x80", "ab\xE2\x82", "\xF4\x90\x80\x80", "\xFF"}) {
    EXPECT_EQ(PymemcacheText(bad, &scratch), bad);
  }
}

}  // namespace
}  // namespace strata::upstream::hash
