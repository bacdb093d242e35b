// Key hashing (xxHash3, from Debian's libxxhash). One hash function for the
// whole cache: the RAM tier's shard choice and table slot, and later the SSD
// index, all derive from HashKey().
//
// Thread safety: pure functions, safe from any thread.
#pragma once

#include <cstdint>
#include <string_view>

namespace strata::common {

// 64-bit hash of `key`. Stable across runs and machines (it is persisted by
// the SSD tier), so the seed is fixed.
uint64_t HashKey(std::string_view key);

}  // namespace strata::common
