// The on-device format: round trips, every kind of damage, the mirror, LZ4.
#include "tiers/ssd/ssd_format.h"

#include <gtest/gtest.h>

#include <cstring>
#include <random>
#include <string>
#include <vector>

namespace strata::tiers {
namespace {

RecordMeta Meta(RecordType type, uint32_t flags, uint32_t exptime, uint64_t cas,
                uint32_t value_len, Codec codec = Codec::kNone) {
  RecordMeta m;
  m.type = type;
  m.codec = codec;
  m.flags = flags;
  m.exptime = exptime;
  m.cas = cas;
  m.value_len = value_len;
  return m;
}

TEST(SsdFormatTest, RegionHeaderRoundTripAndDamage) {
  std::vector<char> block(kRegionHeaderSize, 'x');
  EncodeRegionHeader({42, 16u << 20, 64, RegionState::kDead, 1700000000}, block.data());
  RegionHeader h;
  ASSERT_EQ(DecodeRegionHeader(block.data(), &h), HeaderKind::kValid);
  EXPECT_EQ(h.seq, 42u);
  EXPECT_EQ(h.region_size, 16u << 20);
  EXPECT_EQ(h.region_count, 64u);
  EXPECT_EQ(h.state, RegionState::kDead);
  EXPECT_EQ(h.created_unix, 1700000000u);
  for (size_t i : {0, 12, 16, 24, 28, 33, 40}) {
    std::vector<char> bad = block;
    bad[i] ^= 1;
    EXPECT_EQ(DecodeRegionHeader(bad.data(), &h), HeaderKind::kDamaged) << "byte " << i;
  }
  std::vector<char> zero(kRegionHeaderSize, 0);
  EXPECT_EQ(DecodeRegionHeader(zero.data(), &h), HeaderKind::kBlank);
}

TEST(SsdFormatTest, AnotherFormatVersionIsRecognized) {
  std::vector<char> block(kRegionHeaderSize, 0);
  EncodeRegionHeader({1, 1u << 20, 8, RegionState::kLive, 0}, block.data());
  uint32_t v1 = 1;
  std::memcpy(block.data() + 8, &v1, sizeof(v1));  // what format 1 wrote there
  RegionHeader h;
  uint32_t version = 0;
  EXPECT_EQ(DecodeRegionHeader(block.data(), &h, &version), HeaderKind::kOtherFormat);
  EXPECT_EQ(version, 1u);
}

TEST(SsdFormatTest, RecordRoundTrip) {
  RecordMeta meta = Meta(RecordType::kItem, 0xDEADBEEF, 1800000000, 987654321, 5);
  meta.mirror_count = 7;
  std::vector<char> buf(RecordSize(3, 5));
  ASSERT_EQ(buf.size() % kRecordAlign, 0u);
  size_t n = EncodeRecord(9, meta, "key", "hello", buf.data());
  EXPECT_EQ(n, buf.size());
  DecodedRecord rec;
  ASSERT_EQ(DecodeRecord(9, buf.data(), buf.size(), &rec), RecordCheck::kValid);
  EXPECT_EQ(rec.meta.type, RecordType::kItem);
  EXPECT_EQ(rec.meta.flags, 0xDEADBEEFu);
  EXPECT_EQ(rec.meta.exptime, 1800000000u);
  EXPECT_EQ(rec.meta.cas, 987654321u);
  EXPECT_EQ(rec.meta.mirror_count, 7u);
  EXPECT_EQ(rec.key, "key");
  EXPECT_EQ(rec.stored, "hello");
  EXPECT_EQ(rec.size, n);
}

TEST(SsdFormatTest, ItemBitsRoundTripAndOnlyItemsCarryThem) {
  for (uint8_t bits = 0; bits <= kItemBitsMask; ++bits) {
    RecordMeta meta = Meta(RecordType::kItem, 1, 2, 3, 1);
    meta.item_bits = bits;
    std::vector<char> buf(RecordSize(1, 1));
    EncodeRecord(9, meta, "k", "v", buf.data());
    DecodedRecord rec;
    ASSERT_EQ(DecodeRecord(9, buf.data(), buf.size(), &rec), RecordCheck::kValid);
    EXPECT_EQ(rec.meta.item_bits, bits);
  }
  // A tombstone never carries them, and a record whose byte 11 has an
  // unknown bit is not a record.
  RecordMeta tomb = Meta(RecordType::kTombstone, 0, 0, 7, 0);
  tomb.item_bits = kItemStale;
  std::vector<char> buf(RecordSize(1, 0));
  EncodeRecord(9, tomb, "k", "", buf.data());
  DecodedRecord rec;
  ASSERT_EQ(DecodeRecord(9, buf.data(), buf.size(), &rec), RecordCheck::kValid);
  EXPECT_EQ(rec.meta.item_bits, 0);
  std::vector<char> item(RecordSize(1, 1));
  EncodeRecord(9, Meta(RecordType::kItem, 1, 2, 3, 1), "k", "v", item.data());
  item[11] = 0x10;
  EXPECT_EQ(DecodeRecord(9, item.data(), item.size(), &rec), RecordCheck::kInvalid);
}

TEST(SsdFormatTest, InvalidationAndSealRecords) {
  std::vector<char> buf(RecordSize(250, 0));
  std::string key(250, 'k');
  EncodeRecord(9, Meta(RecordType::kTombstone, 0, 0, 7, 0), key, "", buf.data());
  DecodedRecord rec;
  ASSERT_EQ(DecodeRecord(9, buf.data(), buf.size(), &rec), RecordCheck::kValid);
  EXPECT_EQ(rec.meta.type, RecordType::kTombstone);
  EXPECT_EQ(rec.key, key);
  for (RecordType t : {RecordType::kFlush, RecordType::kDelayedFlush, RecordType::kSeal}) {
    std::vector<char> b(RecordSize(0, 0));
    EncodeRecord(9, Meta(t, 0, 1234, 99, 0), "", "", b.data());
    ASSERT_EQ(DecodeRecord(9, b.data(), b.size(), &rec), RecordCheck::kValid);
    EXPECT_EQ(rec.meta.type, t);
    EXPECT_EQ(rec.meta.exptime, 1234u);
  }
  EXPECT_TRUE(IsInvalidation(RecordType::kTombstone));
  EXPECT_TRUE(IsInvalidation(RecordType::kFlush));
  EXPECT_TRUE(IsInvalidation(RecordType::kDelayedFlush));
  EXPECT_FALSE(IsInvalidation(RecordType::kItem));
  EXPECT_FALSE(IsInvalidation(RecordType::kSeal));
}

// A flipped bit in the header or key makes the record not one; in the value
// the record still says which key it was (kDamagedValue).
TEST(SsdFormatTest, EveryFlippedBitIsDetected) {
  std::vector<char> buf(RecordSize(4, 11));
  EncodeRecord(9, Meta(RecordType::kItem, 1, 2, 3, 11), "abcd", "hello world", buf.data());
  const size_t value_at = kRecordHeaderSize + 4;
  const size_t used = value_at + 11;
  DecodedRecord rec;
  for (size_t byte = 0; byte < used; ++byte) {
    for (int bit = 0; bit < 8; ++bit) {
      std::vector<char> bad = buf;
      bad[byte] ^= static_cast<char>(1 << bit);
      RecordCheck check = DecodeRecord(9, bad.data(), bad.size(), &rec);
      if (byte >= value_at) {
        ASSERT_EQ(check, RecordCheck::kDamagedValue) << byte << ":" << bit;
        EXPECT_EQ(rec.key, "abcd");
      } else {
        EXPECT_EQ(check, RecordCheck::kInvalid) << byte << ":" << bit;
      }
    }
  }
}

TEST(SsdFormatTest, RecordOfAnotherRegionUseIsRejected) {
  std::vector<char> buf(RecordSize(3, 5));
  EncodeRecord(9, Meta(RecordType::kItem, 0, 0, 1, 5), "key", "value", buf.data());
  DecodedRecord rec;
  EXPECT_EQ(DecodeRecord(9, buf.data(), buf.size(), &rec), RecordCheck::kValid);
  EXPECT_EQ(DecodeRecord(10, buf.data(), buf.size(), &rec), RecordCheck::kInvalid);
}

TEST(SsdFormatTest, TruncatedOrEmptyInputIsNoRecord) {
  std::vector<char> buf(RecordSize(3, 100));
  EncodeRecord(9, Meta(RecordType::kItem, 0, 0, 1, 100), "key", std::string(100, 'v'),
               buf.data());
  DecodedRecord rec;
  for (size_t avail = 0; avail < kRecordHeaderSize + 3 + 100; ++avail) {
    EXPECT_EQ(DecodeRecord(9, buf.data(), avail, &rec), RecordCheck::kInvalid) << avail;
  }
  std::vector<char> zeros(4096, 0);
  EXPECT_EQ(DecodeRecord(9, zeros.data(), zeros.size(), &rec), RecordCheck::kInvalid);
}

TEST(SsdFormatTest, MirrorBlockRoundTripAndDamage) {
  std::vector<MirrorEntry> entries;
  for (uint32_t i = 0; i < kMirrorEntriesPerBlock; ++i) {
    entries.push_back({4096 + 64 * i, i % 7 == 0 ? RecordType::kFlush : RecordType::kTombstone,
                       i, 0x1234567890abcdefull + i});
  }
  std::vector<char> block(kBlockSize, 'x');
  EncodeMirrorBlock(5, 3, entries.data(), entries.size(), block.data());
  MirrorEntry out[kMirrorEntriesPerBlock];
  bool blank = true;
  ASSERT_EQ(DecodeMirrorBlock(5, 3, block.data(), out, &blank),
            static_cast<int>(kMirrorEntriesPerBlock));
  EXPECT_FALSE(blank);
  for (size_t i = 0; i < entries.size(); ++i) {
    EXPECT_EQ(out[i].offset, entries[i].offset);
    EXPECT_EQ(out[i].type, entries[i].type);
    EXPECT_EQ(out[i].exptime, entries[i].exptime);
    EXPECT_EQ(out[i].hash, entries[i].hash);
  }
  // Another region's (or another use's) block, another index, any flip.
  EXPECT_EQ(DecodeMirrorBlock(6, 3, block.data(), out, &blank), -1);
  EXPECT_EQ(DecodeMirrorBlock(5, 2, block.data(), out, &blank), -1);
  EXPECT_FALSE(blank);
  std::mt19937 rng(3);
  for (int i = 0; i < 200; ++i) {
    std::vector<char> bad = block;
    bad[rng() % kBlockSize] ^= static_cast<char>(1 << (rng() % 8));
    EXPECT_EQ(DecodeMirrorBlock(5, 3, bad.data(), out, &blank), -1);
    EXPECT_FALSE(blank);
  }
  std::vector<char> zero(kBlockSize, 0);
  EXPECT_EQ(DecodeMirrorBlock(5, 0, zero.data(), out, &blank), -1);
  EXPECT_TRUE(blank);
  EXPECT_EQ(MirrorBlocks(0), 0u);
  EXPECT_EQ(MirrorBlocks(1), 1u);
  EXPECT_EQ(MirrorBlocks(kMirrorEntriesPerBlock), 1u);
  EXPECT_EQ(MirrorBlocks(kMirrorEntriesPerBlock + 1), 2u);
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
