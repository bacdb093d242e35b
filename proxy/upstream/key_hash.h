// The hash functions and orderings the pool's key distributions are made of,
// each exactly as the client library that defines the distribution computes
// it (placement.h says which distribution uses which). Exposed for
// placement.cc and its tests; nothing else should need them.
//
// Sources: MD5 from libmd (Debian's libmd-dev), CRC-32 from zlib, XXH64 from
// libxxhash; murmur3_32, the jump hash and the natural order are written
// here (no Debian C library has them).
//
// Thread safety: pure functions, safe from any thread.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <string_view>

namespace strata::upstream::hash {

// MD5 digest of `data`.
std::array<uint8_t, 16> Md5(std::string_view data);

// libmemcached's and twemproxy's ketama hash: the little-endian uint32 at
// bytes [4*alignment, 4*alignment+4) of `digest`. Requires alignment < 4.
uint32_t KetamaWord(const std::array<uint8_t, 16>& digest, int alignment);

// CRC-32 (IEEE 802.3, zlib's and Go's hash/crc32.ChecksumIEEE).
uint32_t Crc32(std::string_view data);

// XXH64 with seed 0 (Go's github.com/cespare/xxhash Sum64).
uint64_t Xxh64(std::string_view data);

// MurmurHash3 x86_32 of `data` (Austin Appleby's reference, little-endian
// blocks), as pymemcache's murmur3_32 computes it on bytes.
uint32_t Murmur3_32(std::string_view data, uint32_t seed = 0);

// The jump consistent hash of Lamping and Veach ("A Fast, Minimal Memory,
// Consistent Hash Algorithm", 2014) in the integer and float64 arithmetic of
// the Go version dskit uses. Returns a bucket in [0, buckets). Requires
// buckets >= 1.
int32_t JumpHash(uint64_t key, int32_t buckets);

// The natural order of github.com/facette/natsort (the version dskit pins,
// 2018-12-10), used by dskit to number its servers: strings compare byte by
// byte, except that where both have a digit, the digit runs compare as
// numbers: leading zeros skipped, a longer run is larger, equal lengths
// compare as text. Returns whether `a` sorts before `b`. Quirks kept on
// purpose: skipping zeros may step onto the next non-digit byte, which then
// belongs to the run (so "1.0.2" and "1.00.2" compare equal).
bool NaturalLess(std::string_view a, std::string_view b);

// The text pymemcache's HashClient hashes for a key given as a Python str:
// pymemcache's murmur3_32 reads `ord(c) & 0xff` of each character, so for a
// key that is valid UTF-8 the result is the low byte of each code point, one
// byte per character; any other key (which pymemcache could not have been
// given as str) is returned unchanged. `scratch` holds the result when it
// differs from `key`; the returned view points into `key` or `scratch`.
std::string_view PymemcacheText(std::string_view key, std::string* scratch);

}  // namespace strata::upstream::hash
