// Record and region-header format: round trips, every kind of damage, LZ4.
#include "tiers/ssd_format.h"

#include <gtest/gtest.h>

#include <random>
#include <string>
#include <vector>

namespace strata::tiers {
namespace {

TEST(SsdFormatTest, RegionHeaderRoundTripAndDamage) {
  std::vector<char> block(kRegionHeaderSize, 'x');
  EncodeRegionHeader({42, 16u << 20, 1700000000}, block.data());
  RegionHeader h;
  ASSERT_TRUE(DecodeRegionHeader(block.data(), &h));
  EXPECT_EQ(h.seq, 42u);
  EXPECT_EQ(h.region_size, 16u << 20);
  EXPECT_EQ(h.created_unix, 1700000000u);
  for (size_t i : {0, 8, 12, 16, 24, 33}) {
    std::vector<char> bad = block;
    bad[i] ^= 1;
    EXPECT_FALSE(DecodeRegionHeader(bad.data(), &h)) << "byte " << i;
  }
  std::vector<char> zero(kRegionHeaderSize, 0);
  EXPECT_FALSE(DecodeRegionHeader(zero.data(), &h));
}

TEST(SsdFormatTest, RecordRoundTrip) {
  RecordMeta meta{RecordType::kItem, Codec::kNone, 0xDEADBEEF, 1800000000, 987654321, 5};
  std::vector<char> buf(RecordSize(3, 5));
  ASSERT_EQ(buf.size() % kRecordAlign, 0u);
  size_t n = EncodeRecord(9, meta, "key", "hello", buf.data());
  EXPECT_EQ(n, buf.size());
  DecodedRecord rec;
  ASSERT_TRUE(DecodeRecord(9, buf.data(), buf.size(), &rec));
  EXPECT_EQ(rec.meta.type, RecordType::kItem);
  EXPECT_EQ(rec.meta.flags, 0xDEADBEEFu);
  EXPECT_EQ(rec.meta.exptime, 1800000000u);
  EXPECT_EQ(rec.meta.cas, 987654321u);
  EXPECT_EQ(rec.key, "key");
  EXPECT_EQ(rec.stored, "hello");
  EXPECT_EQ(rec.size, n);
}

TEST(SsdFormatTest, TombstoneAndFlushRecords) {
  std::vector<char> buf(RecordSize(250, 0));
  std::string key(250, 'k');
  EncodeRecord(9, {RecordType::kTombstone, Codec::kNone, 0, 0, 7, 0}, key, "", buf.data());
  DecodedRecord rec;
  ASSERT_TRUE(DecodeRecord(9, buf.data(), buf.size(), &rec));
  EXPECT_EQ(rec.meta.type, RecordType::kTombstone);
  EXPECT_EQ(rec.key, key);
  std::vector<char> flush(RecordSize(0, 0));
  EncodeRecord(9, {RecordType::kFlush, Codec::kNone, 0, 1234, 99, 0}, "", "", flush.data());
  ASSERT_TRUE(DecodeRecord(9, flush.data(), flush.size(), &rec));
  EXPECT_EQ(rec.meta.type, RecordType::kFlush);
  EXPECT_EQ(rec.meta.cas, 99u);
}

TEST(SsdFormatTest, EveryFlippedBitIsDetected) {
  std::vector<char> buf(RecordSize(4, 11));
  EncodeRecord(9, {RecordType::kItem, Codec::kNone, 1, 2, 3, 11}, "abcd", "hello world", buf.data());
  size_t used = kRecordHeaderSize + 4 + 11;
  DecodedRecord rec;
  for (size_t byte = 0; byte < used; ++byte) {
    for (int bit = 0; bit < 8; ++bit) {
      std::vector<char> bad = buf;
      bad[byte] ^= static_cast<char>(1 << bit);
      EXPECT_FALSE(DecodeRecord(9, bad.data(), bad.size(), &rec)) << byte << ":" << bit;
    }
  }
}

TEST(SsdFormatTest, RecordOfAnotherRegionUseIsRejected) {
  std::vector<char> buf(RecordSize(3, 5));
  EncodeRecord(9, {RecordType::kItem, Codec::kNone, 0, 0, 1, 5}, "key", "value", buf.data());
  DecodedRecord rec;
  EXPECT_TRUE(DecodeRecord(9, buf.data(), buf.size(), &rec));
  EXPECT_FALSE(DecodeRecord(10, buf.data(), buf.size(), &rec));
}

TEST(SsdFormatTest, TruncatedOrEmptyInputIsNoRecord) {
  std::vector<char> buf(RecordSize(3, 100));
  EncodeRecord(9, {RecordType::kItem, Codec::kNone, 0, 0, 1, 100}, "key", std::string(100, 'v'),
               buf.data());
  DecodedRecord rec;
  for (size_t avail = 0; avail < kRecordHeaderSize + 3 + 100; ++avail) {
    EXPECT_FALSE(DecodeRecord(9, buf.data(), avail, &rec)) << avail;
  }
  std::vector<char> zeros(4096, 0);
  EXPECT_FALSE(DecodeRecord(9, zeros.data(), zeros.size(), &rec));  // never-written space
}

TEST(SsdFormatTest, Lz4KeptOnlyWhenItSaves) {
  std::string compressible(10000, 'a');
  std::string out;
  ASSERT_TRUE(CompressLz4(compressible, &out));
  EXPECT_LT(out.size(), compressible.size());
  std::string back(compressible.size(), '\0');
  ASSERT_TRUE(DecompressLz4(out, back.data(), static_cast<uint32_t>(back.size())));
  EXPECT_EQ(back, compressible);

  std::mt19937_64 rng(7);
  std::string noise(10000, '\0');
  for (char& c : noise) c = static_cast<char>(rng());
  EXPECT_FALSE(CompressLz4(noise, &out));  // incompressible: stored as is
  EXPECT_FALSE(CompressLz4("short", &out));

  std::string corrupt = "\xff\xff\xff\xff garbage";
  EXPECT_FALSE(DecompressLz4(corrupt, back.data(), 100));
  // Wrong expected length is also corruption.
  ASSERT_TRUE(CompressLz4(compressible, &out));
  EXPECT_FALSE(DecompressLz4(out, back.data(), 9999));
}

}  // namespace
}  // namespace strata::tiers
