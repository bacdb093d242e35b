// The SSD tier's on-device format (version 4): regions, records, large
// items and the invalidation mirror.
//
// The device is cut into regions of `region_size` bytes used as a circular
// log. A region holds, from its start:
//
//   RegionHeader (block 0)
//     magic "STRATA\0\1" (shared by every format version), format version,
//     a crc32c, the region's log sequence number (monotonic across the
//     device; region p only ever has seq = p + 1 modulo the region count),
//     region size and count, state (live, or dead: reclaimed, its records
//     gone) and creation time.
//   Records, from byte 4096 up, each 8-byte aligned:
//     hcrc     crc32c over the region's sequence number, the rest of the
//              header (vcrc included) and the key: a record whose header
//              verifies says truthfully what it is (type, key, lengths),
//              even if its value is damaged
//     vcrc     crc32c over the stored value
//     type     item | tombstone | flush | delayed flush | seal (the
//              region's last record: nothing was lost after it) | skip
//              (a stretch a crash tore, marked by recovery) | clean (a
//              clean stop: what precedes it was not torn by a crash) |
//              piece (part of a large item's value; version 4) | large
//              (a large item's head: its manifest; version 4)
//     codec    none | lz4 (items only)
//     key_len, item bits (items only: the meta protocol's stale, win-sent
//     and binary-key marks and the fetched bit, kItemStale | kItemWinSent |
//     kItemKeyBinary | kItemFetched; version 3), flags, exptime (absolute unix s, 0 = never; for a
//     delayed flush the time it takes effect, 0 = cancel), stored_len, value_len, mirror_count
//     (invalidation records of this region up to and including this one), cas; then the key and the
//     stored value.
//   The invalidation mirror, from the region's end down: blocks of 4096
//     bytes (block k at region_size - 4096 * (k + 1)), each with its own
//     crc (bound to the sequence number), holding a copy of every
//     tombstone, flush and delayed flush of the region in order: its
//     offset, type and key hash (and time). A damaged stretch of records
//     can therefore be checked for invalidations it held: their copies are
//     elsewhere on the device. The block after the mirror's last one is
//     kept blank (zeroed when the region opens or the mirror grows), so the
//     mirror's end is never in doubt.
//
// Large items (version 4). An item whose record would not fit in a region
// is stored as pieces followed by a head, all ordinary records of the log
// (so regions, the writer, torn-write detection and the mirror treat them
// like any other record):
//   piece    one stretch of the value (LargeManifest::piece_bytes of it,
//            the last one shorter), LZ4-compressed on its own when that
//            saves space; key = the item's key, cas = the item's cas,
//            flags = the piece's index, value_len = its uncompressed
//            length. Its vcrc is the piece's checksum: damage costs the
//            item it belongs to, never a neighbour. Pieces are never
//            indexed; the mirror does not copy them.
//   large    written after the item's last piece: the item's key, flags,
//            exptime, cas and item bits, value_len = the whole value's
//            length, codec none, and as stored value its manifest
//            (EncodeManifest): for each piece, in order, the region, the
//            region's sequence number, offset and record size, and the
//            piece's uncompressed length. The index points at the head.
// Pieces precede their head in log order, so the region of a large item's
// first piece is always reclaimed before its head's: the item dies then
// (it is never rewritten by reclaim), and a head whose pieces' regions no
// longer carry the sequence numbers it names is not recovered.
//
// Binding every crc to the region's sequence number means a reused region
// can never bring back records or mirror entries of its earlier use.
//
// Thread safety: pure functions over caller-owned buffers.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace strata::tiers {

inline constexpr uint64_t kRegionMagic = 0x0100415441525453ull;  // "STRATA\0\1"
// 3: records carry the item bits (byte 11, zero in version 2).
// 4: large items (piece and large records). A file of another version is
// discarded at startup (SsdLog), never misread.
inline constexpr uint32_t kFormatVersion = 4;
inline constexpr size_t kBlockSize = 4096;
inline constexpr size_t kRegionHeaderSize = 4096;
inline constexpr size_t kRecordHeaderSize = 40;
inline constexpr size_t kRecordAlign = 8;

// kSeal ends a region: the last record written before the log moves on.
// kSkip covers a stretch that a crash tore (recovery marks it so, so that
// later scans do not count it as damage); its "value" is whatever is there.
enum class RecordType : uint8_t {
  kItem = 1,
  kTombstone = 2,
  kFlush = 3,
  kDelayedFlush = 4,
  kSeal = 5,
  kSkip = 6,
  kClean = 7,  // the process stopped cleanly here (damage before it is not a torn write)
  kPiece = 8,  // a piece of a large item's value
  kLarge = 9,  // a large item's head (its manifest)
};
enum class Codec : uint8_t { kNone = 0, kLz4 = 1 };
enum class RegionState : uint32_t { kLive = 1, kDead = 2 };

// True for the records the mirror copies: they hide older records.
inline bool IsInvalidation(RecordType t) {
  return t == RecordType::kTombstone || t == RecordType::kFlush || t == RecordType::kDelayedFlush;
}

// Records that carry RecordMeta::item_bits: an item, and a large item's head.
inline bool CarriesItemBits(RecordType t) {
  return t == RecordType::kItem || t == RecordType::kLarge;
}

struct RegionHeader {
  uint64_t seq = 0;  // log sequence number (> 0)
  uint32_t region_size = 0;
  uint32_t region_count = 0;  // regions of the log that wrote it
  RegionState state = RegionState::kLive;
  uint64_t created_unix = 0;
};

// What block 0 of a region holds.
enum class HeaderKind {
  kValid,      // a header of this format version (*h filled)
  kOtherFormat,  // strata's magic with another format version
  kBlank,      // all zeros: never written (or zeroed by damage)
  kDamaged,    // anything else
};

// Writes the header into the first kRegionHeaderSize bytes of `block`.
void EncodeRegionHeader(const RegionHeader& h, char* block);
// Classifies block 0; fills *h for kValid and *version for kOtherFormat.
HeaderKind DecodeRegionHeader(const char* block, RegionHeader* h, uint32_t* version = nullptr);

// RecordMeta::item_bits.
inline constexpr uint8_t kItemStale = 1;      // Item::stale
inline constexpr uint8_t kItemWinSent = 2;    // Item::win_sent
inline constexpr uint8_t kItemKeyBinary = 4;  // Item::key_binary
inline constexpr uint8_t kItemFetched = 8;    // Item::fetched
inline constexpr uint8_t kItemBitsMask = kItemStale | kItemWinSent | kItemKeyBinary | kItemFetched;

struct RecordMeta {
  RecordType type = RecordType::kItem;
  Codec codec = Codec::kNone;
  uint8_t item_bits = 0;  // kItem and kLarge only
  uint32_t flags = 0;
  uint32_t exptime = 0;
  uint64_t cas = 0;
  uint32_t value_len = 0;     // uncompressed (kLarge: the whole value's)
  uint32_t mirror_count = 0;  // invalidations of the region so far, this one included
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

// Turns the `len` bytes at `dst` (len >= kRecordHeaderSize + key_len, a
// multiple of kRecordAlign) into a kSkip record over what they hold; the
// `key_len` bytes after the header are its key (the key of a record whose
// value was torn: a skip with a key hides older versions of it).
void EncodeSkipRecord(uint64_t region_seq, size_t len, size_t key_len, uint32_t mirror_count,
                      char* dst);

struct DecodedRecord {
  RecordMeta meta;
  std::string_view key;
  std::string_view stored;  // the value as stored (compressed if codec != none)
  size_t size = 0;          // bytes the record occupies, padding included
};

enum class RecordCheck {
  kValid,          // header, key and value verify
  kDamagedValue,   // header and key verify (*out is filled), the value does not
  kInvalid,        // no record of this region here (damage, padding, old data)
};

// Parses and verifies the record at the start of `src` (at most `avail`
// bytes) of a region whose sequence number is `region_seq`.
RecordCheck DecodeRecord(uint64_t region_seq, const char* src, size_t avail, DecodedRecord* out);

// The invalidation mirror.
inline constexpr size_t kMirrorHeaderSize = 32;
inline constexpr size_t kMirrorEntrySize = 24;
inline constexpr size_t kMirrorEntriesPerBlock =
    (kBlockSize - kMirrorHeaderSize) / kMirrorEntrySize;  // 169

struct MirrorEntry {
  uint32_t offset = 0;  // of the record in its region
  RecordType type = RecordType::kTombstone;
  uint32_t exptime = 0;  // a delayed flush's time
  uint64_t hash = 0;     // the key's HashKey() (tombstones)
};

// Mirror blocks needed for `count` entries.
inline size_t MirrorBlocks(size_t count) {
  return (count + kMirrorEntriesPerBlock - 1) / kMirrorEntriesPerBlock;
}

// Writes mirror block `index` (entries index * kMirrorEntriesPerBlock on;
// `count` of them, at most kMirrorEntriesPerBlock) into `block`.
void EncodeMirrorBlock(uint64_t region_seq, uint32_t index, const MirrorEntry* entries,
                       size_t count, char* block);
// Verifies mirror block `index` of a region with `region_seq`; returns the
// entry count (0..kMirrorEntriesPerBlock) and fills `entries`, or -1 if the
// block does not verify (damaged, or never written: see *blank).
int DecodeMirrorBlock(uint64_t region_seq, uint32_t index, const char* block,
                      MirrorEntry* entries, bool* blank);

// A large item's manifest (the stored value of its kLarge head).
inline constexpr size_t kManifestHeaderSize = 16;
inline constexpr size_t kManifestEntrySize = 24;

struct LargePiece {
  uint64_t seq = 0;     // sequence number of the region when the piece was written
  uint32_t region = 0;
  uint32_t offset = 0;  // of the piece record in its region
  uint32_t size = 0;    // of the piece record (RecordSize)
  uint32_t value_len = 0;  // the piece's uncompressed bytes
};

struct LargeManifest {
  uint32_t piece_bytes = 0;  // uncompressed bytes of every piece but the last
  std::vector<LargePiece> pieces;
};

std::string EncodeManifest(const LargeManifest& m);
// Parses a manifest; false unless it is well formed and its pieces add up
// to `value_len` bytes (the head's).
bool DecodeManifest(std::string_view stored, uint32_t value_len, LargeManifest* m);

// LZ4 on demotion: returns the compressed form in *out and true only when it
// is smaller than the input (so the record keeps the codec that saves
// space).
bool CompressLz4(std::string_view value, std::string* out);
// Decompresses exactly `value_len` bytes into `dst`; false on corrupt input.
bool DecompressLz4(std::string_view stored, char* dst, uint32_t value_len);

}  // namespace strata::tiers
