#include "common/units.h"

#include <cctype>
#include <charconv>
#include <cmath>
#include <limits>
#include <utility>

namespace strata::common {
namespace {

// Splits "123abc" into (123, "abc"); nullopt if there is no leading number or
// it overflows.
std::optional<std::pair<uint64_t, std::string_view>> SplitNumber(std::string_view text) {
  while (!text.empty() && text.front() == ' ') text.remove_prefix(1);
  while (!text.empty() && text.back() == ' ') text.remove_suffix(1);
  size_t i = 0;
  uint64_t value = 0;
  while (i < text.size() && std::isdigit(static_cast<unsigned char>(text[i]))) {
    uint64_t digit = static_cast<uint64_t>(text[i] - '0');
    if (value > (std::numeric_limits<uint64_t>::max() - digit) / 10) return std::nullopt;
    value = value * 10 + digit;
    ++i;
  }
  if (i == 0) return std::nullopt;
  std::string_view unit = text.substr(i);
  while (!unit.empty() && unit.front() == ' ') unit.remove_prefix(1);
  return std::make_pair(value, unit);
}

std::optional<uint64_t> Multiply(uint64_t value, uint64_t unit) {
  if (unit != 0 && value > std::numeric_limits<uint64_t>::max() / unit) return std::nullopt;
  return value * unit;
}

}  // namespace

std::optional<uint64_t> ParseSize(std::string_view text) {
  auto split = SplitNumber(text);
  if (!split) return std::nullopt;
  auto [value, unit] = *split;
  struct Unit {
    std::string_view name;
    uint64_t bytes;
  };
  static constexpr Unit kUnits[] = {
      {"", 1},           {"B", 1},
      {"k", 1ULL << 10}, {"K", 1ULL << 10}, {"KB", 1ULL << 10}, {"KiB", 1ULL << 10},
      {"m", 1ULL << 20}, {"M", 1ULL << 20}, {"MB", 1ULL << 20}, {"MiB", 1ULL << 20},
      {"g", 1ULL << 30}, {"G", 1ULL << 30}, {"GB", 1ULL << 30}, {"GiB", 1ULL << 30},
      {"t", 1ULL << 40}, {"T", 1ULL << 40}, {"TB", 1ULL << 40}, {"TiB", 1ULL << 40},
  };
  for (const Unit& u : kUnits) {
    if (unit == u.name) return Multiply(value, u.bytes);
  }
  return std::nullopt;
}

std::optional<uint64_t> ParseDurationMs(std::string_view text) {
  auto split = SplitNumber(text);
  if (!split) return std::nullopt;
  auto [value, unit] = *split;
  if (unit == "ms") return value;
  if (unit == "" || unit == "s") return Multiply(value, 1000);
  if (unit == "m") return Multiply(value, 60'000);
  if (unit == "h") return Multiply(value, 3'600'000);
  if (unit == "d") return Multiply(value, 86'400'000);
  return std::nullopt;
}

std::optional<double> ParseDurationSeconds(std::string_view text) {
  while (!text.empty() && text.front() == ' ') text.remove_prefix(1);
  while (!text.empty() && text.back() == ' ') text.remove_suffix(1);
  if (!text.empty() && text.front() == '+') text.remove_prefix(1);
  double value = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec != std::errc() || !std::isfinite(value) || value < 0) return std::nullopt;
  std::string_view unit(end, static_cast<size_t>(text.data() + text.size() - end));
  while (!unit.empty() && unit.front() == ' ') unit.remove_prefix(1);
  if (unit == "ms") return value / 1000;
  if (unit == "" || unit == "s") return value;
  if (unit == "m") return value * 60;
  if (unit == "h") return value * 3600;
  if (unit == "d") return value * 86400;
  return std::nullopt;
}

std::string FormatSize(uint64_t bytes) {
  static constexpr std::pair<uint64_t, const char*> kUnits[] = {
      {1ULL << 40, "TiB"}, {1ULL << 30, "GiB"}, {1ULL << 20, "MiB"}, {1ULL << 10, "KiB"}};
  if (bytes != 0) {
    for (auto [size, name] : kUnits) {
      if (bytes % size == 0) return std::to_string(bytes / size) + name;
    }
  }
  return std::to_string(bytes) + "B";
}

}  // namespace strata::common
