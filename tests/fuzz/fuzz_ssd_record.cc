// Fuzzes the SSD tier's record and manifest decoders (tiers/ssd/
// ssd_format.h) over arbitrary bytes, as recovery and reads meet them on a
// damaged device. The first 8 bytes are the region's sequence number, the
// rest the bytes at a record's place. Checks, for every input:
//   - DecodeRecord never reads past `avail` (ASan), and a record it accepts
//     lies within the input, with its key and stored value inside it;
//   - a record it accepts re-encodes to the same bytes (for its header,
//     key and value);
//   - DecodeManifest on any stored value either refuses it or gives pieces
//     that add up to the head's length, each within piece_bytes, and
//     EncodeManifest gives back the same bytes.
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>
#include <vector>

#include "tests/fuzz/fuzz_check.h"
#include "tiers/ssd/ssd_format.h"

namespace strata::tiers {
namespace {

void CheckManifest(std::string_view stored, uint32_t value_len) {
  LargeManifest m;
  if (!DecodeManifest(stored, value_len, &m)) return;
  uint64_t total = 0;
  for (const LargePiece& p : m.pieces) {
    FUZZ_CHECK(p.value_len > 0 && p.value_len <= m.piece_bytes);
    FUZZ_CHECK(p.size >= kRecordHeaderSize && p.size % kRecordAlign == 0);
    total += p.value_len;
  }
  FUZZ_CHECK(total == value_len);
  std::string again = EncodeManifest(m);
  // Bytes 8..16 of the header are reserved (not kept).
  FUZZ_CHECK(again.size() == stored.size());
  FUZZ_CHECK(again.compare(0, 8, stored.substr(0, 8)) == 0);
  FUZZ_CHECK(again.compare(kManifestHeaderSize, std::string::npos,
                           stored.substr(kManifestHeaderSize)) == 0);
}

}  // namespace
}  // namespace strata::tiers

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace strata::tiers;
  if (size < 8) return 0;
  uint64_t seq = 0;
  std::memcpy(&seq, data, 8);
  // An exact-size copy: ASan sees any read past it.
  std::vector<char> buf(reinterpret_cast<const char*>(data) + 8,
                        reinterpret_cast<const char*>(data) + size);
  const char* src = buf.data();
  const size_t avail = buf.size();
  DecodedRecord rec;
  RecordCheck check = DecodeRecord(seq, src, avail, &rec);
  if (check != RecordCheck::kInvalid) {
    FUZZ_CHECK(rec.key.data() == src + kRecordHeaderSize);
    FUZZ_CHECK(kRecordHeaderSize + rec.key.size() + rec.stored.size() <= avail);
    FUZZ_CHECK(rec.stored.data() == rec.key.data() + rec.key.size());
    if (check == RecordCheck::kValid && rec.meta.type != RecordType::kSkip) {
      std::vector<char> again(RecordSize(rec.key.size(), rec.stored.size()));
      EncodeRecord(seq, rec.meta, rec.key, rec.stored, again.data());
      size_t used = kRecordHeaderSize + rec.key.size() + rec.stored.size();
      FUZZ_CHECK(std::memcmp(again.data(), src, used) == 0);
    }
    if (rec.meta.type == RecordType::kLarge) CheckManifest(rec.stored, rec.meta.value_len);
  }
  // The manifest parser on the raw bytes too (a head whose crc matched
  // damaged content is not possible, but the parser must not trust that).
  std::string_view raw(src, avail);
  uint32_t value_len = 0;
  if (avail >= 4) std::memcpy(&value_len, src, 4);
  CheckManifest(raw.substr(avail >= 4 ? 4 : 0), value_len);
  return 0;
}
