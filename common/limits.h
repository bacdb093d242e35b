// Limits of memcached's data model that both the protocol parser and the
// item store enforce, kept in one place so they cannot disagree.
//
// Thread safety: constants; safe from any thread.
#pragma once

#include <cstddef>

namespace strata::common {

// The longest key, in bytes (memcached's KEY_MAX_LENGTH): the parser
// refuses longer keys, and an Item stores the length in one byte.
inline constexpr size_t kMaxKeyLength = 250;

}  // namespace strata::common
