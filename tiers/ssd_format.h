// The SSD tier's on-disk format: regions and records.
//
// The device is cut into regions of `region_size` bytes used as a circular
// log. Each region starts with a 4096-byte header block; records follow,
// each 8-byte aligned:
//
//   RegionHeader (in block 0 of the region)
//     magic "STRATA\0\1", format version, region size, the region's log
//     sequence number (monotonic across the device; 0 = never written), and
//     a crc32c over the header.
//   Record
//     crc32c   over the region's sequence number and everything after this
//              field (header, key, value): a record left over from an
//              earlier use of the region fails it, so a reused region never
//              resurrects old data past its new records
//     type     item | tombstone | flush
//     codec    none | lz4 (items only)
//     key_len, flags, exptime (absolute unix s, 0 = never), cas,
//     stored_len (bytes on disk), value_len (bytes after decompression),
//     then the key and the stored value.
//
// A record whose crc does not match, whose lengths run past the region, or
// whose type is unknown ends the scan of that region: everything after it
// in the region is ignored (a torn or never-written tail). Readers of a
// single record verify the crc and compare the full key, so a damaged or
// recycled record is a miss, never a wrong value.
//
// Thread safety: pure functions over caller-owned buffers.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace strata::tiers {

inline constexpr uint64_t kRegionMagic = 0x0100415441525453ull;  // "STRATA\0\1"
inline constexpr uint32_t kFormatVersion = 1;
inline constexpr size_t kRegionHeaderSize = 4096;
inline constexpr size_t kRecordHeaderSize = 40;
inline constexpr size_t kRecordAlign = 8;

enum class RecordType : uint8_t { kItem = 1, kTombstone = 2, kFlush = 3 };
enum class Codec : uint8_t { kNone = 0, kLz4 = 1 };

struct RegionHeader {
  uint64_t seq = 0;          // log sequence number; 0 = never written
  uint32_t region_size = 0;
  uint64_t created_unix = 0;
};

// Writes the header into the first kRegionHeaderSize bytes of `block`
// (the rest of the block is zeroed).
void EncodeRegionHeader(const RegionHeader& h, char* block);
// Returns true and fills *h if `block` holds a valid header.
bool DecodeRegionHeader(const char* block, RegionHeader* h);

struct RecordMeta {
  RecordType type = RecordType::kItem;
  Codec codec = Codec::kNone;
  uint32_t flags = 0;
  uint32_t exptime = 0;
  uint64_t cas = 0;
  uint32_t value_len = 0;   // uncompressed
};

// Bytes a record with this key and stored value occupies, padding included.
inline size_t RecordSize(size_t key_len, size_t stored_len) {
  size_t n = kRecordHeaderSize + key_len + stored_len;
  return (n + kRecordAlign - 1) / kRecordAlign * kRecordAlign;
}

// Writes a record at `dst` (which must have RecordSize() bytes) and returns
// its size. `stored` is the value as it goes to disk (compressed or not);
// `region_seq` is the sequence number of the region it is written into.
size_t EncodeRecord(uint64_t region_seq, const RecordMeta& meta, std::string_view key,
                    std::string_view stored, char* dst);

struct DecodedRecord {
  RecordMeta meta;
  std::string_view key;
  std::string_view stored;  // the value as stored (compressed if codec != none)
  size_t size = 0;          // bytes the record occupies, padding included
};

// Parses and verifies the record at the start of `src` (at most `avail`
// bytes) of a region whose sequence number is `region_seq`. Returns false
// if there is none: bad crc (or another region's record), bad lengths,
// unknown type, or not enough bytes.
bool DecodeRecord(uint64_t region_seq, const char* src, size_t avail, DecodedRecord* out);

// LZ4 on demotion: returns the compressed form in *out and true only when it
// is smaller than the input (so the record keeps the codec that saves
// space).
bool CompressLz4(std::string_view value, std::string* out);
// Decompresses exactly `value_len` bytes into `dst`; false on corrupt input.
bool DecompressLz4(std::string_view stored, char* dst, uint32_t value_len);

}  // namespace strata::tiers
