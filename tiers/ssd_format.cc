#include "tiers/ssd_format.h"

#include <lz4.h>

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
//   28 reserved u32 | 32 created_unix u64 | 40..64 reserved
constexpr size_t kHeaderCovered = 64;

// Record layout:
//   0 crc u32 | 4 type u8 | 5 codec u8 | 6 key_len u8 | 7 reserved u8
//   8 flags u32 | 12 exptime u32 | 16 cas u64 | 24 stored_len u32
//   28 value_len u32 | 32 reserved u64 | 40 key | value
}  // namespace

void EncodeRegionHeader(const RegionHeader& h, char* block) {
  std::memset(block, 0, kRegionHeaderSize);
  Put<uint64_t>(block, kRegionMagic);
  Put<uint32_t>(block + 8, kFormatVersion);
  Put<uint64_t>(block + 16, h.seq);
  Put<uint32_t>(block + 24, h.region_size);
  Put<uint64_t>(block + 32, h.created_unix);
  Put<uint32_t>(block + 12, common::Crc32c(block + 16, kHeaderCovered - 16));
}

bool DecodeRegionHeader(const char* block, RegionHeader* h) {
  if (Get<uint64_t>(block) != kRegionMagic) return false;
  if (Get<uint32_t>(block + 8) != kFormatVersion) return false;
  if (Get<uint32_t>(block + 12) != common::Crc32c(block + 16, kHeaderCovered - 16)) return false;
  h->seq = Get<uint64_t>(block + 16);
  h->region_size = Get<uint32_t>(block + 24);
  h->created_unix = Get<uint64_t>(block + 32);
  return true;
}

uint32_t RecordCrc(uint64_t region_seq, const char* rec, size_t used) {
  return common::Crc32cExtend(common::Crc32c(&region_seq, sizeof(region_seq)), rec + 4, used - 4);
}

size_t EncodeRecord(uint64_t region_seq, const RecordMeta& meta, std::string_view key,
                    std::string_view stored, char* dst) {
  size_t size = RecordSize(key.size(), stored.size());
  Put<uint8_t>(dst + 4, static_cast<uint8_t>(meta.type));
  Put<uint8_t>(dst + 5, static_cast<uint8_t>(meta.codec));
  Put<uint8_t>(dst + 6, static_cast<uint8_t>(key.size()));
  Put<uint8_t>(dst + 7, 0);
  Put<uint32_t>(dst + 8, meta.flags);
  Put<uint32_t>(dst + 12, meta.exptime);
  Put<uint64_t>(dst + 16, meta.cas);
  Put<uint32_t>(dst + 24, static_cast<uint32_t>(stored.size()));
  Put<uint32_t>(dst + 28, meta.value_len);
  Put<uint64_t>(dst + 32, 0);
  std::memcpy(dst + kRecordHeaderSize, key.data(), key.size());
  std::memcpy(dst + kRecordHeaderSize + key.size(), stored.data(), stored.size());
  size_t used = kRecordHeaderSize + key.size() + stored.size();
  std::memset(dst + used, 0, size - used);
  Put<uint32_t>(dst, RecordCrc(region_seq, dst, used));
  return size;
}

bool DecodeRecord(uint64_t region_seq, const char* src, size_t avail, DecodedRecord* out) {
  if (avail < kRecordHeaderSize) return false;
  uint8_t type = Get<uint8_t>(src + 4);
  uint8_t codec = Get<uint8_t>(src + 5);
  uint8_t key_len = Get<uint8_t>(src + 6);
  uint32_t stored_len = Get<uint32_t>(src + 24);
  uint32_t value_len = Get<uint32_t>(src + 28);
  if (type < 1 || type > 3 || codec > 1) return false;
  if (uint64_t{kRecordHeaderSize} + key_len + stored_len > avail) return false;
  size_t used = kRecordHeaderSize + key_len + stored_len;
  if (Get<uint32_t>(src) != RecordCrc(region_seq, src, used)) return false;
  if (codec == 0 && stored_len != value_len) return false;
  out->meta.type = static_cast<RecordType>(type);
  out->meta.codec = static_cast<Codec>(codec);
  out->meta.flags = Get<uint32_t>(src + 8);
  out->meta.exptime = Get<uint32_t>(src + 12);
  out->meta.cas = Get<uint64_t>(src + 16);
  out->meta.value_len = value_len;
  out->key = std::string_view(src + kRecordHeaderSize, key_len);
  out->stored = std::string_view(src + kRecordHeaderSize + key_len, stored_len);
  out->size = RecordSize(key_len, stored_len);
  return true;
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

}  // namespace strata::tiers
