// Helpers shared by the SsdLog and TieredCache unit tests: a read completion
// that keeps the item, items and self-verifying values made from a key, and
// a walk over the records of one region image. Test support only (header
// only, in strata_test_support's folder; no production target includes it).
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <random>
#include <string>
#include <utility>

#include "common/hash.h"
#include "tiers/item/item.h"
#include "tiers/ssd/ssd_format.h"
#include "tiers/ssd/ssd_log.h"

namespace strata::tiers::ssd_test {

// An SsdReadDone that keeps the item it was given and counts its calls.
struct Done : SsdReadDone {
  ItemRef item;
  int calls = 0;
  void OnSsdRead(ItemRef i) override {
    item = std::move(i);
    ++calls;
  }
};

inline ItemRef MakeItem(const std::string& key, const std::string& value, uint32_t exptime = 0,
                        uint32_t flags = 7, uint64_t cas = 1) {
  Item* it = Item::Create(key, flags, exptime, static_cast<uint32_t>(value.size()));
  std::memcpy(it->MutableValue(), value.data(), value.size());
  it->SetCas(cas);
  return ItemRef::Adopt(it);
}

// A value that verifies itself: derived from key and length, incompressible
// (random from the key) or compressible, and different per `version`.
inline std::string ValueFor(const std::string& key, size_t len, bool compressible,
                            int version = 0) {
  std::string v(len, '\0');
  std::mt19937_64 rng(common::HashKey(key) + static_cast<uint64_t>(version));
  for (size_t i = 0; i < len; ++i) {
    v[i] = compressible ? static_cast<char>('a' + (i / 64 + static_cast<size_t>(version)) % 26)
                        : static_cast<char>(rng());
  }
  return v;
}

// Calls visit(offset, region_seq, rec) for the records of `region` (the
// `region_size` bytes of one region, nothing if it is not a valid live
// region), from the first on, up to the first DecodeRecord finds invalid or,
// with `valid_only`, the first not kValid (a damaged value).
template <typename Visit>
void ForEachRecord(const char* region, size_t region_size, bool valid_only, Visit&& visit) {
  RegionHeader h;
  if (DecodeRegionHeader(region, &h) != HeaderKind::kValid || h.state != RegionState::kLive) {
    return;
  }
  size_t off = kRegionHeaderSize;
  DecodedRecord rec;
  while (off + kRecordHeaderSize <= region_size) {
    RecordCheck check = DecodeRecord(h.seq, region + off, region_size - off, &rec);
    if (check == RecordCheck::kInvalid || (valid_only && check != RecordCheck::kValid)) break;
    visit(off, h.seq, rec);
    off += rec.size;
  }
}

}  // namespace strata::tiers::ssd_test
