// PrefixStats: memcached's "stats detail": while it is on, per key prefix
// (the bytes before a key's first ':'; keys without one are not counted)
// the number of gets, of hits among them, of sets and of deletes, dumped as
// memcached 1.6.18's stats_prefix.c dumps them:
// "PREFIX <prefix> get <n> hit <n> set <n> del <n>\r\n" per prefix, then
// "END\r\n", in the same order (its 256 buckets by MurmurHash3 of the
// prefix, each newest first) and with the same matching quirk (a key whose
// prefix begins an already counted prefix of the same bucket counts there).
//
// Invariant: at most kMaxPrefixes prefixes are kept; keys with new prefixes
// beyond that are not counted (memcached has no cap), so clients cannot grow
// it without bound.
//
// Thread safety: every method may be called from any thread; one mutex (a
// leaf), which the Record*() methods take only while detail is on.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "common/mutex.h"

namespace strata::proxy {

class PrefixStats {
 public:
  static constexpr size_t kMaxPrefixes = 100'000;
  static constexpr size_t kBuckets = 256;  // memcached's PREFIX_HASH_SIZE
  static constexpr char kDelimiter = ':';  // memcached's default -D

  PrefixStats() : buckets_(kBuckets) {}

  // `stats detail on|off`.
  void SetEnabled(bool on) { enabled_.store(on, std::memory_order_relaxed); }
  bool enabled() const { return enabled_.load(std::memory_order_relaxed); }

  // Count one get of `key` (a hit or not), one store, one delete; nothing
  // while disabled.
  void RecordGet(std::string_view key, bool hit) EXCLUDES(mu_);
  void RecordSet(std::string_view key) EXCLUDES(mu_);
  void RecordDelete(std::string_view key) EXCLUDES(mu_);

  // `stats reset`: forgets every prefix.
  void Clear() EXCLUDES(mu_);

  // `stats detail dump`: the PREFIX lines and "END\r\n".
  std::string Dump() const EXCLUDES(mu_);

  // memcached's MurmurHash3_x86_32 (seed 0), which orders the dump.
  static uint32_t Murmur3(std::string_view data);

 private:
  struct Entry {
    std::string prefix;
    uint64_t gets = 0;
    uint64_t hits = 0;
    uint64_t sets = 0;
    uint64_t deletes = 0;
  };
  // The entry counting `key`, created if new; null if the key has no
  // prefix or the table is full.
  Entry* Find(std::string_view key) REQUIRES(mu_);

  std::atomic<bool> enabled_{false};
  mutable common::Mutex mu_;
  std::vector<std::vector<Entry>> buckets_ GUARDED_BY(mu_);  // each oldest first
  size_t count_ GUARDED_BY(mu_) = 0;
};

}  // namespace strata::proxy
