// Fuzzes config::ParseYaml (the config file is a parser too): arbitrary text
// must never crash, hang or throw, a rejection must carry a message, and an
// accepted Config must hold only values the modules accept, as config.h
// promises (ranges, enumerations, the max_item_size <= size rule).

#include <arpa/inet.h>

#include <cstddef>
#include <cstdint>
#include <exception>
#include <string>

#include "config/config.h"
#include "tests/fuzz/fuzz_check.h"

namespace {

constexpr uint64_t kKiB = uint64_t{1} << 10;
constexpr uint64_t kMiB = uint64_t{1} << 20;
constexpr uint64_t kGiB = uint64_t{1} << 30;

bool IsAddress(const std::string& s) {
  unsigned char buf[16];
  if (s.find('\0') != std::string::npos) return false;
  return s == "localhost" || inet_pton(AF_INET, s.c_str(), buf) == 1 ||
         inet_pton(AF_INET6, s.c_str(), buf) == 1;
}

void CheckConfig(const strata::config::Config& c, const std::string& text) {
  // The context is built only when a check fails.
#define CHECK_CONFIG(cond) FUZZ_CHECK(cond, "accepted:\n" + text.substr(0, 2000))
  const auto& s = c.server;
  CHECK_CONFIG(!c.config_file.has_value());
  if (s.listen) CHECK_CONFIG(IsAddress(*s.listen));
  if (s.unix_socket) {
    CHECK_CONFIG(!s.unix_socket->empty() && s.unix_socket->size() <= 107);
    CHECK_CONFIG(s.unix_socket->find('\0') == std::string::npos);
  }
  if (s.unix_socket_mode) CHECK_CONFIG(*s.unix_socket_mode <= 0777);
  if (s.workers) CHECK_CONFIG(*s.workers <= 256);
  if (s.max_connections) CHECK_CONFIG(*s.max_connections >= 1);
  if (s.max_output_buffer) CHECK_CONFIG(*s.max_output_buffer >= kKiB);
  const auto& ram = c.tiers.ram;
  if (ram.size) CHECK_CONFIG(*ram.size >= kMiB);
  if (ram.max_item_size) {
    CHECK_CONFIG(*ram.max_item_size >= kKiB && *ram.max_item_size <= kGiB);
  }
  if (ram.size && ram.max_item_size) CHECK_CONFIG(*ram.max_item_size <= *ram.size);
  if (ram.eviction) CHECK_CONFIG(*ram.eviction == "s3fifo" || *ram.eviction == "lru");
  if (c.log.level) {
    const std::string& l = *c.log.level;
    CHECK_CONFIG(l == "error" || l == "warn" || l == "info" || l == "debug");
  }
#undef CHECK_CONFIG
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  try {
    strata::common::Result<strata::config::Config> r = strata::config::ParseYaml(text, "fuzz.yaml");
    if (r.ok()) {
      CheckConfig(r.value(), text);
    } else {
      FUZZ_CHECK(!r.status().message().empty(), text.substr(0, 2000));
      FUZZ_CHECK(r.status().code() == strata::common::StatusCode::kInvalidArgument,
                 r.status().message());
    }
  } catch (const std::exception& e) {
    FUZZ_CHECK(false, std::string("ParseYaml threw: ") + e.what());
  } catch (...) {
    FUZZ_CHECK(false, "ParseYaml threw a non-std exception");
  }
  return 0;
}
