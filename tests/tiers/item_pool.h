// ItemPool: owns the Items a test makes and frees them at the end, for tests
// of structures that hold Item pointers without owning them.
//
// Thread safety: none; one test thread.
#pragma once

#include <string>
#include <vector>

#include "tiers/item/item.h"

namespace strata::tiers {

class ItemPool {
 public:
  ItemPool() = default;
  ItemPool(const ItemPool&) = delete;
  ItemPool& operator=(const ItemPool&) = delete;
  ~ItemPool() {
    for (Item* item : items_) Item::Destroy(item);
  }
  // An empty item with `key`.
  Item* New(const std::string& key) {
    Item* item = Item::Create(key, 0, 0, 0);
    items_.push_back(item);
    return item;
  }
  // An empty item with a key of its own ("k0", "k1", ...).
  Item* New() { return New("k" + std::to_string(items_.size())); }

 private:
  std::vector<Item*> items_;
};

}  // namespace strata::tiers
