// Key placement over the upstream pool: which server owns a key. Each
// distribution reproduces, key for key, the placement of the client library
// that applications already use against the same pool, so a pod that moves
// from talking to the pool directly to talking through strata finds every
// key where it was (tests/upstream/golden/ pins each one with vectors made by
// those libraries).
//
//   kKetama      libmemcached's weighted ketama (pylibmc's ketama_weighted),
//                which twemproxy with `hash: md5`, `distribution: ketama`
//                also computes. Each server gets
//                  floor(w/W * 160/4 * n + 1e-10) * 4   points
//                (w its weight, W the sum of weights, n the number of
//                servers; float arithmetic as in both C sources), made as
//                that many/4 MD5 digests of "NAME-i" (i = 0, 1, ...), each
//                split into four little-endian 32-bit points. NAME is the
//                server's explicit name if it has one (twemproxy), else
//                "host" when the port is 11211, else "host:port". A key goes
//                to the first point >= the key's MD5 (first 4 bytes,
//                little-endian), wrapping to the first point; points of
//                equal value keep server order (glibc's stable qsort).
//   kRendezvous  pymemcache's HashClient (RendezvousHash) with str keys:
//                the server with the highest murmur3_32(seed 0) of
//                "host:port-KEY" wins (host without IPv6 brackets), a tie
//                going to the greater "host:port" text. pymemcache hashes
//                the low byte of each character: for a UTF-8 key that is
//                one byte per code point (hash::PymemcacheText).
//   kJump        dskit's MemcachedJumpHashSelector (Loki, Mimir, Thanos,
//                Cortex): servers numbered in the natural order of their
//                "host:port" text (hash::NaturalLess; IPv6 as "[h]:port"),
//                then JumpHash(XXH64(key), n); one server takes every key.
//   kModula      gomemcache's ServerList: CRC-32 (IEEE) of the key's first
//                256 bytes (gomemcache copies the key into a 256-byte
//                buffer), modulo the number of listings; one listing takes
//                every key. A server of weight w is listed w times in a
//                row, as a gomemcache user gives it w shares.
//
// Weights are honoured by ketama and modula only; explicit names only by
// ketama. Build() rejects what a distribution cannot express rather than
// placing keys where no client would.
//
// Thread safety: a built Placement is immutable; Pick() and servers() are
// const and safe from any number of threads at once.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/server_spec.h"
#include "common/status.h"

namespace strata::upstream {

using common::ParseServerSpec;
using common::ServerSpec;

enum class Distribution { kKetama, kRendezvous, kJump, kModula };

// "ketama", "rendezvous", "jump", "modula".
std::string_view DistributionName(Distribution d);
// The inverse of DistributionName; InvalidArgument otherwise.
common::Result<Distribution> ParseDistribution(std::string_view name);

class Placement {
 public:
  // Builds the placement of `servers` (in configuration order) under `d`.
  // InvalidArgument, with a message starting "<path>[i]: " where one entry
  // is at fault (path names the list in messages), when: the list is empty; an address (host:port)
  // is listed twice; a weight other than 1 is given to rendezvous or jump; a name is given to
  // anything but ketama; two ketama servers hash by the same name; two jump addresses are equal in
  // the natural order (the order of their buckets would be ambiguous).
  static common::Result<Placement> Build(Distribution d, std::vector<ServerSpec> servers,
                                         std::string_view path = "servers");

  // The index into servers() of the server that owns `key` (any bytes).
  size_t Pick(std::string_view key) const;

  const std::vector<ServerSpec>& servers() const { return servers_; }
  Distribution distribution() const { return distribution_; }

 private:
  struct Point {
    uint32_t value;
    uint32_t server;
  };

  Placement(Distribution d, std::vector<ServerSpec> servers)
      : distribution_(d), servers_(std::move(servers)) {}

  size_t PickKetama(std::string_view key) const;
  size_t PickRendezvous(std::string_view key) const;
  size_t PickJump(std::string_view key) const;
  size_t PickModula(std::string_view key) const;
  // Rendezvous: server i's node text, "host:port".
  std::string_view Node(size_t i) const;

  Distribution distribution_;
  std::vector<ServerSpec> servers_;
  std::vector<Point> continuum_;       // ketama: sorted by value
  std::vector<std::string> prefixes_;  // rendezvous: "host:port-" per server
  std::vector<uint32_t> order_;        // jump: bucket -> server; modula: listing -> server
};

}  // namespace strata::upstream
