// Membership: the upstream pool's members at one moment, as an immutable
// snapshot every worker's Pool applies (pool.h), and the pure bookkeeping
// that makes the next snapshot from the sources' lists (MembershipTracker:
// merging, ordering, the removal grace).
//
// The ring a snapshot places keys on holds the members listed now plus the
// members that left their source less than `removal_grace` ago. Those are
// `leaving`: the pools refuse their requests at once, as for a down server
// (a get is a miss, a write SERVER_ERROR), so their keys do not move to
// another server while the departure may still be a blip; when the grace
// ends they leave the ring and their keys move. A member listed again
// within the grace is simply back.
//
// Order, which decides ketama's ties, modula's listings and (before jump's
// own natural order) nothing else: with static servers only, configuration
// order (the list never changes). As soon as one source is dynamic
// (file:, dns+, dnssrv+), the natural order (hash::NaturalLess) of the
// members' "host:port" text, leaving members included at their place, so
// every pod that sees the same set builds the same ring whatever order DNS
// or the file gave. An address listed by two sources counts once (the first
// source's entry, with its weight and name).
//
// Thread safety: a Membership is immutable once published and shared by
// shared_ptr (its counters are relaxed atomics); MembershipTracker is a
// plain value used by one thread (the watcher's).
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "common/server_spec.h"
#include "proxy/upstream/placement.h"
#include "proxy/upstream/pool.h"

namespace strata::upstream {

// One member's counters, one ServerCounters per worker; kept from snapshot
// to snapshot while the member stays (by its address).
struct MemberCounters {
  explicit MemberCounters(size_t workers)
      : workers(workers), per_worker(new ServerCounters[workers]) {}
  size_t workers;
  std::unique_ptr<ServerCounters[]> per_worker;
};

struct Member {
  common::ServerSpec spec;  // what the placement hashes (DNS: the resolved IP)
  ResolvedServer resolved;  // label: spec.Address(); addr_len 0 if unresolvable
  bool leaving = false;     // left its source; refused until it leaves the ring
  std::shared_ptr<MemberCounters> counters;
};

struct Membership {
  uint64_t generation = 0;      // 1, 2, ...: each published snapshot
  std::vector<Member> members;  // in ring order (placement->servers())
  // Null when there is no member: every request fails at once.
  std::shared_ptr<const Placement> placement;
};

// The grace bookkeeping (pure; times in milliseconds of any monotonic
// clock).
class MembershipTracker {
 public:
  struct Entry {
    common::ServerSpec spec;
    bool leaving = false;
    uint64_t leave_at_ms = 0;  // leaving: when it leaves the ring
  };

  // `sorted`: order the ring naturally (a dynamic source exists); else keep
  // the listed order.
  MembershipTracker(uint64_t grace_ms, bool sorted) : grace_ms_(grace_ms), sorted_(sorted) {}

  // `listed`: every source's list, concatenated in entry order (duplicates
  // by address are dropped here, the first kept). Members no longer listed
  // start leaving (or leave at once with a grace of 0); members listed
  // again stop. Returns whether the ring changed (members, weights, names
  // or leaving flags).
  bool Update(const std::vector<common::ServerSpec>& listed, uint64_t now_ms);
  // Drops the leaving members whose grace has passed; whether any did.
  bool Expire(uint64_t now_ms);
  // When the next leaving member leaves the ring, if any.
  std::optional<uint64_t> NextExpiry() const;

  const std::vector<Entry>& ring() const { return ring_; }

 private:
  void Order();

  uint64_t grace_ms_;
  bool sorted_;
  std::vector<Entry> ring_;
};

}  // namespace strata::upstream
