// Base64 as memcached 1.6.18's base64.c does it, for the meta protocol's
// binary keys (`b`): the decoder skips bytes outside the alphabet, needs a
// multiple of four alphabet bytes, and stops at the first padded block; the
// encoder pads with '='.
//
// Thread safety: pure functions over caller-owned buffers; safe anywhere.
#pragma once

#include <cstddef>
#include <string_view>

namespace strata::proxy {

// Decodes `src` into `out` (at least src.size() bytes: decoding never
// grows). Returns the decoded length, or 0 when memcached's base64_decode()
// fails (no alphabet bytes, a count not a multiple of four, bad padding).
size_t Base64Decode(std::string_view src, char* out);

// Encodes `src` into `out` (at least Base64EncodedSize(src.size()) bytes);
// returns the encoded length.
size_t Base64Encode(std::string_view src, char* out);
constexpr size_t Base64EncodedSize(size_t n) { return (n + 2) / 3 * 4; }

}  // namespace strata::proxy
