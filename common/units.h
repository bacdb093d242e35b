// Byte sizes and durations written with units, as they appear in config files
// and on the command line: "256MiB", "1m", "64k", "30s", "1500ms".
//
// Sizes: a non-negative integer with an optional unit. Binary units B, KiB,
// MiB, GiB, TiB; memcached's short forms k, m, g (and K, M, G, KB, MB, GB)
// are also binary (1k = 1024), as memcached's -I option treats them. A bare
// number is bytes. Durations: an integer with ms, s, m, h or d; a bare number
// is seconds (ParseDurationSeconds() also takes fractions).
//
// Thread safety: pure functions, safe from any thread.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace strata::common {

// Returns the number of bytes, or nullopt if `text` is not a size (empty,
// negative, fractional, unknown unit, or overflowing 64 bits).
std::optional<uint64_t> ParseSize(std::string_view text);

// Returns the duration in milliseconds, or nullopt if `text` is not one.
std::optional<uint64_t> ParseDurationMs(std::string_view text);

// The duration in seconds, for command-line tools: the units of
// ParseDurationMs(), but the number may have a fraction or an exponent and
// a leading '+' ("1.5s", "10.0s", "0.25", "2e3ms"). Returns nullopt if
// `text` is not a duration (negative, not finite, unknown unit).
std::optional<double> ParseDurationSeconds(std::string_view text);

// Formats a byte count in the largest binary unit that divides it exactly:
// 268435456 -> "256MiB", 1000 -> "1000B".
std::string FormatSize(uint64_t bytes);

}  // namespace strata::common
