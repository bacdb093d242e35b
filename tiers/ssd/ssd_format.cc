#include "tiers/ssd/ssd_format.h"

#include <lz4.h>

#include <algorithm>
#include <climits>
#include <cstring>

#include "common/crc32c.h"

namespace strata::tiers {
namespace {

template <typename T>
void Put(char* p, T v) {
  std::memcpy(p, &v, sizeof(T));
}
template <typename T>
T Get(const char* p) {
  T v;
  std::memcpy(&v, p, sizeof(T));
  return v;
}

// Region header layout (little endian, the host order on x86-64 and arm64):
//   0 magic u64 | 8 version u32 | 12 crc u32 | 16 seq u64 | 24 region_size u32
//   28 state u32 | 32 created_unix u64 | 40 region_count u32 | 44..64 reserved
constexpr size_t kHeaderCovered = 64;

// Record layout:
//   0 hcrc u32 | 4 vcrc u32 | 8 type u8 | 9 codec u8 | 10 key_len u8
//   11 reserved u8 | 12 flags u32 | 16 exptime u32 | 20 stored_len u32
//   24 value_len u32 | 28 mirror_count u32 | 32 cas u64 | 40 key | value
// hcrc covers the sequence number, bytes 4..40 and the key.

// Mirror block layout:
//   0 magic u32 | 4 crc u32 (sequence number and bytes 8..4096) | 8 seq u64
//   16 index u32 | 20 count u32 | 24..32 reserved | 32 entries
// Entry: 0 offset u32 | 4 type u8 | 5..8 reserved | 8 exptime u32
//   12 reserved u32 | 16 hash u64
constexpr uint32_t kMirrorMagic = 0x424d5453;  // "STMB"

uint32_t SeqCrc(uint64_t seq) { return common::Crc32c(&seq, sizeof(seq)); }

bool AllZero(const char* p, size_t n) {
  for (size_t i = 0; i < n; ++i) {
    if (p[i] != 0) return false;
  }
  return true;
}

}  // namespace

void EncodeRegionHeader(const RegionHeader& h, char* block) {
  std::memset(block, 0, kRegionHeaderSize);
  Put<uint64_t>(block, kRegionMagic);
  Put<uint32_t>(block + 8, kFormatVersion);
  Put<uint64_t>(block + 16, h.seq);
  Put<uint32_t>(block + 24, h.region_size);
  Put<uint32_t>(block + 28, static_cast<uint32_t>(h.state));
  Put<uint64_t>(block + 32, h.created_unix);
  Put<uint32_t>(block + 40, h.region_count);
  Put<uint32_t>(block + 12, common::Crc32c(block + 16, kHeaderCovered - 16));
}

HeaderKind DecodeRegionHeader(const char* block, RegionHeader* h, uint32_t* version) {
  if (Get<uint64_t>(block) == kRegionMagic) {
    uint32_t v = Get<uint32_t>(block + 8);
    if (v != kFormatVersion) {
      if (version != nullptr) *version = v;
      return HeaderKind::kOtherFormat;
    }
    uint32_t state = Get<uint32_t>(block + 28);
    if (Get<uint32_t>(block + 12) == common::Crc32c(block + 16, kHeaderCovered - 16) &&
        Get<uint64_t>(block + 16) != 0 &&
        (state == static_cast<uint32_t>(RegionState::kLive) ||
         state == static_cast<uint32_t>(RegionState::kDead))) {
      h->seq = Get<uint64_t>(block + 16);
      h->region_size = Get<uint32_t>(block + 24);
      h->state = static_cast<RegionState>(state);
      h->created_unix = Get<uint64_t>(block + 32);
      h->region_count = Get<uint32_t>(block + 40);
      return HeaderKind::kValid;
    }
    return HeaderKind::kDamaged;
  }
  return AllZero(block, kRegionHeaderSize) ? HeaderKind::kBlank : HeaderKind::kDamaged;
}

size_t EncodeRecord(uint64_t region_seq, const RecordMeta& meta, std::string_view key,
                    std::string_view stored, char* dst) {
  size_t size = RecordSize(key.size(), stored.size());
  Put<uint32_t>(dst + 4, common::Crc32c(stored.data(), stored.size()));
  Put<uint8_t>(dst + 8, static_cast<uint8_t>(meta.type));
  Put<uint8_t>(dst + 9, static_cast<uint8_t>(meta.codec));
  Put<uint8_t>(dst + 10, static_cast<uint8_t>(key.size()));
  Put<uint8_t>(dst + 11, CarriesItemBits(meta.type) ? meta.item_bits & kItemBitsMask : 0);
  Put<uint32_t>(dst + 12, meta.flags);
  Put<uint32_t>(dst + 16, meta.exptime);
  Put<uint32_t>(dst + 20, static_cast<uint32_t>(stored.size()));
  Put<uint32_t>(dst + 24, meta.value_len);
  Put<uint32_t>(dst + 28, meta.mirror_count);
  Put<uint64_t>(dst + 32, meta.cas);
  std::memcpy(dst + kRecordHeaderSize, key.data(), key.size());
  std::memcpy(dst + kRecordHeaderSize + key.size(), stored.data(), stored.size());
  size_t used = kRecordHeaderSize + key.size() + stored.size();
  std::memset(dst + used, 0, size - used);
  uint32_t hcrc = common::Crc32cExtend(SeqCrc(region_seq), dst + 4,
                                       kRecordHeaderSize - 4 + key.size());
  Put<uint32_t>(dst, hcrc);
  return size;
}

void EncodeSkipRecord(uint64_t region_seq, size_t len, size_t key_len, uint32_t mirror_count,
                      char* dst) {
  size_t stored = len - kRecordHeaderSize - key_len;
  Put<uint32_t>(dst + 4, common::Crc32c(dst + kRecordHeaderSize + key_len, stored));
  Put<uint8_t>(dst + 8, static_cast<uint8_t>(RecordType::kSkip));
  Put<uint8_t>(dst + 9, 0);
  Put<uint8_t>(dst + 10, static_cast<uint8_t>(key_len));
  Put<uint8_t>(dst + 11, 0);
  Put<uint32_t>(dst + 12, 0);
  Put<uint32_t>(dst + 16, 0);
  Put<uint32_t>(dst + 20, static_cast<uint32_t>(stored));
  Put<uint32_t>(dst + 24, static_cast<uint32_t>(stored));
  Put<uint32_t>(dst + 28, mirror_count);
  Put<uint64_t>(dst + 32, 0);
  Put<uint32_t>(dst, common::Crc32cExtend(SeqCrc(region_seq), dst + 4,
                                          kRecordHeaderSize - 4 + key_len));
}

RecordCheck DecodeRecord(uint64_t region_seq, const char* src, size_t avail,
                         DecodedRecord* out) {
  if (avail < kRecordHeaderSize) return RecordCheck::kInvalid;
  uint8_t type = Get<uint8_t>(src + 8);
  uint8_t codec = Get<uint8_t>(src + 9);
  uint8_t key_len = Get<uint8_t>(src + 10);
  uint32_t stored_len = Get<uint32_t>(src + 20);
  uint32_t value_len = Get<uint32_t>(src + 24);
  // Cheap checks first: a scan for the next record tries every 8 bytes.
  const uint8_t item_bits = Get<uint8_t>(src + 11);
  if (type < 1 || type > 9 || codec > 1 || (item_bits & ~kItemBitsMask) != 0 ||
      (item_bits != 0 && !CarriesItemBits(static_cast<RecordType>(type)))) {
    return RecordCheck::kInvalid;
  }
  // A large item's head stores its manifest, not its value.
  if (type == static_cast<uint8_t>(RecordType::kLarge) && codec != 0) return RecordCheck::kInvalid;
  if (codec == 0 && stored_len != value_len && type != static_cast<uint8_t>(RecordType::kLarge)) {
    return RecordCheck::kInvalid;
  }
  if (uint64_t{kRecordHeaderSize} + key_len + stored_len > avail) return RecordCheck::kInvalid;
  uint32_t hcrc = common::Crc32cExtend(SeqCrc(region_seq), src + 4, kRecordHeaderSize - 4 + key_len);
  if (Get<uint32_t>(src) != hcrc) return RecordCheck::kInvalid;
  out->meta.type = static_cast<RecordType>(type);
  out->meta.codec = static_cast<Codec>(codec);
  out->meta.item_bits = item_bits;
  out->meta.flags = Get<uint32_t>(src + 12);
  out->meta.exptime = Get<uint32_t>(src + 16);
  out->meta.value_len = value_len;
  out->meta.mirror_count = Get<uint32_t>(src + 28);
  out->meta.cas = Get<uint64_t>(src + 32);
  out->key = std::string_view(src + kRecordHeaderSize, key_len);
  out->stored = std::string_view(src + kRecordHeaderSize + key_len, stored_len);
  out->size = RecordSize(key_len, stored_len);
  if (Get<uint32_t>(src + 4) != common::Crc32c(out->stored.data(), stored_len)) {
    return RecordCheck::kDamagedValue;
  }
  return RecordCheck::kValid;
}

void EncodeMirrorBlock(uint64_t region_seq, uint32_t index, const MirrorEntry* entries,
                       size_t count, char* block) {
  std::memset(block, 0, kBlockSize);
  Put<uint32_t>(block, kMirrorMagic);
  Put<uint64_t>(block + 8, region_seq);
  Put<uint32_t>(block + 16, index);
  Put<uint32_t>(block + 20, static_cast<uint32_t>(count));
  for (size_t i = 0; i < count; ++i) {
    char* e = block + kMirrorHeaderSize + i * kMirrorEntrySize;
    Put<uint32_t>(e, entries[i].offset);
    Put<uint8_t>(e + 4, static_cast<uint8_t>(entries[i].type));
    Put<uint32_t>(e + 8, entries[i].exptime);
    Put<uint64_t>(e + 16, entries[i].hash);
  }
  Put<uint32_t>(block + 4, common::Crc32cExtend(SeqCrc(region_seq), block + 8, kBlockSize - 8));
}

int DecodeMirrorBlock(uint64_t region_seq, uint32_t index, const char* block,
                      MirrorEntry* entries, bool* blank) {
  *blank = false;
  if (Get<uint32_t>(block) != kMirrorMagic || Get<uint64_t>(block + 8) != region_seq ||
      Get<uint32_t>(block + 16) != index) {
    *blank = AllZero(block, kBlockSize);
    return -1;
  }
  uint32_t count = Get<uint32_t>(block + 20);
  if (count > kMirrorEntriesPerBlock ||
      Get<uint32_t>(block + 4) !=
          common::Crc32cExtend(SeqCrc(region_seq), block + 8, kBlockSize - 8)) {
    return -1;
  }
  for (uint32_t i = 0; i < count; ++i) {
    const char* e = block + kMirrorHeaderSize + i * kMirrorEntrySize;
    entries[i].offset = Get<uint32_t>(e);
    entries[i].type = static_cast<RecordType>(Get<uint8_t>(e + 4));
    entries[i].exptime = Get<uint32_t>(e + 8);
    entries[i].hash = Get<uint64_t>(e + 16);
  }
  return static_cast<int>(count);
}

bool CompressLz4(std::string_view value, std::string* out) {
  if (value.size() > static_cast<size_t>(LZ4_MAX_INPUT_SIZE) || value.size() < 16) return false;
  int bound = LZ4_compressBound(static_cast<int>(value.size()));
  out->resize(static_cast<size_t>(bound));
  int n = LZ4_compress_default(value.data(), out->data(), static_cast<int>(value.size()), bound);
  if (n <= 0 || static_cast<size_t>(n) >= value.size()) return false;
  out->resize(static_cast<size_t>(n));
  return true;
}

bool DecompressLz4(std::string_view stored, char* dst, uint32_t value_len) {
  if (stored.size() > INT_MAX || value_len > INT_MAX) return false;
  int n = LZ4_decompress_safe(stored.data(), dst, static_cast<int>(stored.size()),
                              static_cast<int>(value_len));
  return n >= 0 && static_cast<uint32_t>(n) == value_len;
}

// Manifest: 0 piece_count u32 | 4 piece_bytes u32 | 8 reserved u64, then
// per piece: 0 seq u64 | 8 region u32 | 12 offset u32 | 16 size u32 |
// 20 value_len u32.
std::string EncodeManifest(const LargeManifest& m) {
  std::string out(kManifestHeaderSize + kManifestEntrySize * m.pieces.size(), '\0');
  char* p = out.data();
  Put<uint32_t>(p, static_cast<uint32_t>(m.pieces.size()));
  Put<uint32_t>(p + 4, m.piece_bytes);
  p += kManifestHeaderSize;
  for (const LargePiece& piece : m.pieces) {
    Put<uint64_t>(p, piece.seq);
    Put<uint32_t>(p + 8, piece.region);
    Put<uint32_t>(p + 12, piece.offset);
    Put<uint32_t>(p + 16, piece.size);
    Put<uint32_t>(p + 20, piece.value_len);
    p += kManifestEntrySize;
  }
  return out;
}

bool DecodeManifest(std::string_view stored, uint32_t value_len, LargeManifest* m) {
  if (stored.size() < kManifestHeaderSize) return false;
  const char* p = stored.data();
  uint32_t count = Get<uint32_t>(p);
  m->piece_bytes = Get<uint32_t>(p + 4);
  if (count == 0 || m->piece_bytes == 0 ||
      stored.size() != kManifestHeaderSize + size_t{kManifestEntrySize} * count) {
    return false;
  }
  p += kManifestHeaderSize;
  m->pieces.resize(count);
  uint64_t total = 0;
  for (LargePiece& piece : m->pieces) {
    piece.seq = Get<uint64_t>(p);
    piece.region = Get<uint32_t>(p + 8);
    piece.offset = Get<uint32_t>(p + 12);
    piece.size = Get<uint32_t>(p + 16);
    piece.value_len = Get<uint32_t>(p + 20);
    if (piece.value_len == 0 || piece.value_len > m->piece_bytes ||
        piece.size < kRecordHeaderSize || piece.offset % kRecordAlign != 0 ||
        piece.size % kRecordAlign != 0) {
      return false;
    }
    total += piece.value_len;
    p += kManifestEntrySize;
  }
  return total == value_len;
}

}  // namespace strata::tiers
