#include "tiers/item_table.h"

#include "common/hash.h"

namespace strata::tiers {

uint64_t ItemTable::HomeOf(uintptr_t s) { return common::HashKey(Ptr(s)->Key()); }

void ItemTable::Grow() {
  std::vector<uintptr_t> next(slots_.size() * 2, 0);
  const size_t mask = next.size() - 1;
  for (uintptr_t s : slots_) {
    if (s == 0) continue;
    size_t i = HomeOf(s) & mask;
    while (next[i] != 0) i = (i + 1) & mask;
    next[i] = s;
  }
  slots_.swap(next);
}

}  // namespace strata::tiers
