#include "common/crc32c.h"

#include <isa-l/crc.h>

#include <climits>

namespace strata::common {

uint32_t Crc32cExtend(uint32_t crc, const void* data, size_t len) {
  // ISA-L's crc32_iscsi works on the inverted register and takes an int
  // length; feed it in pieces.
  uint32_t reg = ~crc;
  auto* p = static_cast<unsigned char*>(const_cast<void*>(data));
  while (len > 0) {
    int n = len > static_cast<size_t>(INT_MAX) ? INT_MAX : static_cast<int>(len);
    reg = crc32_iscsi(p, n, reg);
    p += n;
    len -= static_cast<size_t>(n);
  }
  return ~reg;
}

uint32_t Crc32c(const void* data, size_t len) { return Crc32cExtend(0, data, len); }

}  // namespace strata::common
