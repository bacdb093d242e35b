// CRC-32C (Castagnoli), the checksum of every record and region header the
// SSD tier writes. Computed by Intel ISA-L (Debian's libisal), which uses
// the SSE4.2/PCLMUL instructions when the CPU has them.
//
// Thread safety: pure functions, safe from any thread.
#pragma once

#include <cstddef>
#include <cstdint>

namespace strata::common {

// CRC-32C of `len` bytes; Crc32c("123456789", 9) == 0xE3069283.
uint32_t Crc32c(const void* data, size_t len);

// Continues a CRC-32C: Crc32cExtend(Crc32c(a), b) == Crc32c(a + b).
uint32_t Crc32cExtend(uint32_t crc, const void* data, size_t len);

}  // namespace strata::common
