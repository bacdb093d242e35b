// Warm restart: the keys the RAM tier held at shutdown are saved beside the
// SSD file, and after a restart they are promoted back from SSD in the
// background, hottest first, so RAM's hit ratio recovers without waiting for
// traffic to find them again. The frequency sketch is saved too, so
// admission and the hot rewrite at reclaim do not start from nothing.
//
// The list is only useful with TieredCache::DemoteAll() (SIGTERM with
// tiers.ssd.demote_on_shutdown), which gives every RAM item a valid SSD
// record. A promotion checks the SSD index as any other does, so a list that
// is stale (the cache changed since) costs only wasted reads, never a wrong
// value.
//
// File (`<ssd path>.hot`): the line "strata-hot-keys 1\n", then for each key
// one length byte and the key, then the crc32c of all that (4 bytes, little
// endian). It is written under a temporary name, fsynced and renamed; it is
// read once and removed at startup. A missing, short or damaged file means
// a cold start.
//
// Thread safety: SaveHotKeys() and LoadHotKeys() may be called from any
// thread. A WarmUp runs on its own thread; its methods may be called from
// any thread.
#pragma once

#include <atomic>
#include <cstdint>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "common/status.h"
#include "tiers/ssd/block_device.h"
#include "tiers/tiered_cache.h"

namespace strata::tiers {

// The path of the hot-key list that belongs to an SSD file.
std::string HotKeysPath(const std::string& ssd_path);
// The path of the saved frequency sketch (same rules as the hot-key list:
// "strata-sketch 1\n", FrequencySketch::Serialize(), crc32c; read once).
std::string SketchPath(const std::string& ssd_path);

// Saves `sketch` to `path` atomically.
common::Status SaveSketch(const FrequencySketch& sketch, const std::string& path);
// Loads and removes the sketch at `path` into `sketch`. False when there is
// none or it does not fit (*why says why, for a file that exists).
bool LoadSketch(FrequencySketch* sketch, const std::string& path, std::string* why = nullptr);

// The CAS high-water mark saved at a stop: the largest CAS unique the
// process issued (same rules: "strata-cas 1\n", 8 bytes little endian,
// crc32c; read once). Items deleted or overwritten before the stop left no
// record of their uniques, so without it the next start could issue one
// again, and a client's `cas` holding it would pass against a value it
// never saw.
std::string CasPath(const std::string& ssd_path);
common::Status SaveCasHighWater(uint64_t cas, const std::string& path);
// Loads and removes it; nullopt when there is none (*why set for a file
// that exists but does not verify).
std::optional<uint64_t> LoadCasHighWater(const std::string& path, std::string* why = nullptr);
// What a start adds to the largest unique the SSD file holds when no saved
// high-water mark says where the last process stopped (a kill -9, an OOM
// kill): the uniques it issued after its last record reached the device
// are unknown, and 2^32 more stores than that between two records is not
// a workload (48-bit uniques: 65,536 such crashes before they wrap).
inline constexpr uint64_t kCrashCasMargin = uint64_t{1} << 32;

// Writes `keys` (hottest first) to `path` atomically.
common::Status SaveHotKeys(const std::vector<std::string>& keys, const std::string& path);

// Reads and removes the list at `path`. Empty when there is none; *why (if
// given) says why a file that exists was not used.
std::vector<std::string> LoadHotKeys(const std::string& path, std::string* why = nullptr);

struct WarmUpStats {
  uint64_t keys = 0;        // keys in the list
  uint64_t promoted = 0;    // put back in RAM
  uint64_t done = 0;        // keys gone through (promoted or not)
  bool finished = false;
  bool ram_full = false;    // stopped early: RAM reached its fill mark
  double seconds = 0;
};

// Promotes `keys` in order on a thread of its own with its own I/O queue,
// 64 reads at a time, until the list ends or the RAM tier is `fill` full
// (it never evicts what live traffic put there).
class WarmUp {
 public:
  WarmUp(TieredCache& cache, BlockDevice& device, std::vector<std::string> keys,
         double fill = 0.9);
  // Stops early (shutdown) and joins.
  ~WarmUp();
  WarmUp(const WarmUp&) = delete;
  WarmUp& operator=(const WarmUp&) = delete;

  // Blocks until the warm-up has finished (tests).
  void Wait();
  WarmUpStats stats() const;

 private:
  void Run();

  TieredCache& cache_;
  BlockDevice& device_;
  std::vector<std::string> keys_;
  double fill_;
  std::atomic<bool> stop_{false};
  std::atomic<uint64_t> promoted_{0};
  std::atomic<uint64_t> done_{0};
  std::atomic<bool> finished_{false};
  std::atomic<bool> ram_full_{false};
  std::atomic<int64_t> nanos_{0};
  std::thread thread_;
};

}  // namespace strata::tiers
