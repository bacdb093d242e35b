#include "tiers/ram/item_table.h"

#include <utility>

#include "common/hash.h"

namespace strata::tiers {

uint64_t ItemTable::HomeOf(Entry s) { return common::HashKey(Slots::ItemOf(s)->Key()); }

void ItemTable::Grow() {
  Slots next(slots_.size() * 2);
  const size_t mask = next.size() - 1;
  for (size_t j = 0; j < slots_.size(); ++j) {
    const Entry s = slots_.Get(j);
    if (s == 0) continue;
    size_t i = HomeOf(s) & mask;
    while (next.Get(i) != 0) i = (i + 1) & mask;
    next.Set(i, s);
  }
  slots_ = std::move(next);
}

}  // namespace strata::tiers
