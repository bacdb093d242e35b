#include "proxy/upstream/membership.h"

#include <algorithm>
#include <unordered_map>
#include <unordered_set>

#include "proxy/upstream/key_hash.h"

namespace strata::upstream {

bool MembershipTracker::Update(const std::vector<common::ServerSpec>& listed, uint64_t now_ms) {
  std::vector<Entry> next;
  std::unordered_set<std::string> seen;
  for (const common::ServerSpec& s : listed) {
    if (!seen.insert(s.Address()).second) continue;
    next.push_back(Entry{s, false, 0});
  }
  for (const Entry& e : ring_) {
    if (seen.count(e.spec.Address()) != 0) continue;
    if (e.leaving) {
      next.push_back(e);
    } else if (grace_ms_ > 0) {
      next.push_back(Entry{e.spec, true, now_ms + grace_ms_});
    }
  }
  std::vector<Entry> before = std::move(ring_);
  ring_ = std::move(next);
  Order();
  if (!sorted_) {
    // Static order: the listed ones first, as listed, then the leaving.
    std::stable_partition(ring_.begin(), ring_.end(), [](const Entry& e) { return !e.leaving; });
  }
  if (before.size() != ring_.size()) return true;
  for (size_t i = 0; i < ring_.size(); ++i) {
    if (!(before[i].spec == ring_[i].spec) || before[i].leaving != ring_[i].leaving) return true;
  }
  return false;
}

bool MembershipTracker::Expire(uint64_t now_ms) {
  const size_t n = ring_.size();
  ring_.erase(std::remove_if(ring_.begin(), ring_.end(),
                             [&](const Entry& e) { return e.leaving && e.leave_at_ms <= now_ms; }),
              ring_.end());
  return ring_.size() != n;
}

std::optional<uint64_t> MembershipTracker::NextExpiry() const {
  std::optional<uint64_t> next;
  for (const Entry& e : ring_) {
    if (e.leaving && (!next || e.leave_at_ms < *next)) next = e.leave_at_ms;
  }
  return next;
}

void MembershipTracker::Order() {
  if (!sorted_) return;
  std::stable_sort(ring_.begin(), ring_.end(), [](const Entry& a, const Entry& b) {
    return hash::NaturalLess(a.spec.Address(), b.spec.Address());
  });
}

}  // namespace strata::upstream
