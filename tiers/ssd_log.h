// SsdLog: the SSD tier's log-structured store on a BlockDevice.
//
// The device is cut into regions (ssd_format.h) used as a circular log.
// Demoted items are appended, LZ4-compressed when that saves space, to the
// open region's buffer in RAM; the buffer is written to the device in large
// aligned chunks by a background writer thread with its own I/O queue (and
// the unwritten tail after 100 ms without a full chunk, so tombstones and
// flush markers are durable within that time), and
// records stay readable from the buffer until their write has landed. A
// compact SsdIndex maps each key's hash to its newest record. When the log
// wraps, the oldest region is reclaimed: its index entries are dropped and
// it is reused under a new sequence number (records from its earlier use
// then fail their checksum, so they can never come back).
//
// Deletes and overwrites call Remove(): the index entry goes at once and a
// tombstone is appended, so a restart does not bring the old value back.
// Flush() persists a flush marker. Recover() rebuilds the index from the
// device: regions in sequence order, records in order, tombstones and flush
// markers applied, expired records skipped, a torn or corrupt tail ending
// its region's scan.
//
// Reads: Read() answers at once from RAM (records not yet written) or
// queues an asynchronous read on the caller's IoQueue; on completion the
// record's checksum and full key are verified and the index is checked to
// still point at it. A mismatch, an I/O error or a stale entry is a miss
// (counted), never a wrong value.
//
// Write errors (ENOSPC, EIO) never stop the cache: the records of the
// failed write are dropped from the index (they become misses), the error
// is counted, and later writes go on. When the writer falls a whole region
// behind, demotions are dropped (counted) instead of blocking the caller.
//
// Thread safety: all public methods may be called from any thread. Read()
// requires that `queue` belongs to the calling thread; its completion runs
// on that thread during queue.Reap().
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "common/clock.h"
#include "common/status.h"
#include "tiers/block_device.h"
#include "tiers/item.h"
#include "tiers/ssd_format.h"
#include "tiers/ssd_index.h"

namespace strata::tiers {

struct SsdLogOptions {
  uint32_t region_size = 16u << 20;  // 1 MiB .. 64 MiB, a multiple of 4096
  bool compress = true;              // LZ4 when it saves space
  uint32_t write_chunk = 1u << 20;   // the open region is written in chunks of this size
  double rewrite_share = 1.0;        // most of a region rewritten per region reclaimed
};

struct SsdLogStats {
  uint64_t regions = 0;
  uint64_t index_entries = 0;
  uint64_t index_bytes = 0;
  uint64_t demoted_items = 0;
  uint64_t demoted_value_bytes = 0;   // value bytes before compression
  uint64_t stored_value_bytes = 0;    // value bytes as written
  uint64_t record_bytes = 0;          // bytes of records appended
  uint64_t device_bytes_written = 0;  // bytes the device accepted
  uint64_t tombstones = 0;
  uint64_t dropped_too_large = 0;
  uint64_t dropped_backlog = 0;       // the writer was a region behind
  uint64_t write_errors = 0;
  uint64_t read_errors = 0;
  uint64_t corrupt_records = 0;       // checksum or key mismatch on read
  uint64_t stale_reads = 0;           // the entry changed while the read was in flight
  uint64_t reads = 0;
  uint64_t hits = 0;
  uint64_t device_bytes_read = 0;     // bytes read from the device (block aligned)
  uint64_t reads_in_flight = 0;       // device reads issued, not yet completed
  uint64_t regions_reclaimed = 0;
  uint64_t entries_reclaimed = 0;     // index entries dropped by reclaim
  uint64_t records_rewritten = 0;     // live hot records moved to the head at reclaim
  uint64_t bytes_rewritten = 0;
};

// Receives a Read()'s outcome: the item, or an empty ref for a miss.
class SsdReadDone {
 public:
  virtual void OnSsdRead(ItemRef item) = 0;
  // The same, with the location the item was read from (a promotion checks
  // that the index still points there when it puts the item in RAM).
  virtual void OnSsdReadAt(ItemRef item, SsdLocation /*at*/) { OnSsdRead(std::move(item)); }

 protected:
  ~SsdReadDone() = default;
};

class SsdLog {
 public:
  SsdLog(const SsdLogOptions& options, BlockDevice& device, const common::Clock& clock);
  // Writes what is buffered and stops the writer.
  ~SsdLog();
  SsdLog(const SsdLog&) = delete;
  SsdLog& operator=(const SsdLog&) = delete;

  // Rebuilds the index from the device (blocking; call once, before use).
  common::Status Recover();

  // Appends `item` (a demotion). `still_current`, if given, is asked under
  // the log's lock right before the append (a newer version elsewhere makes
  // this one stale: it is skipped). Returns false if nothing was appended.
  bool Append(const Item& item, uint64_t hash,
              const std::function<bool()>& still_current = nullptr);
  // Forgets the key's SSD copy, if any, and persists a tombstone for it.
  // Returns true if there was one. `first`, if given, runs under the log's
  // lock before that (a delete removes the RAM copy there, so no append
  // can come between the two). It must not call back into the log.
  bool Remove(std::string_view key, uint64_t hash, const std::function<void()>& first = nullptr);
  // Decides, at reclaim, which live records are rewritten to the log's head
  // instead of dropped: called with the key's hash, the record's size and
  // whether it was read since it was written (a verified read marks it),
  // from the writer thread, without the log's lock; returns 0 to drop the
  // record, else a score. The highest scores are rewritten first, at most
  // SsdLogOptions::rewrite_share of a region per region reclaimed (which
  // bounds the write amplification). Setting it (or clearing it with
  // nullptr) waits for a reclaim that is using the previous one.
  void SetRewriteFilter(
      std::function<uint32_t(uint64_t hash, uint64_t bytes, bool accessed)> score);
  // The largest CAS unique Recover() found (0 if none).
  uint64_t max_recovered_cas() const { return max_recovered_cas_; }
  // Forgets every record and persists a flush marker.
  void Flush();
  bool Contains(uint64_t hash) const { return index_.Lookup(hash).has_value(); }
  // True if the key's newest record is still the one at `at`.
  bool StillAt(uint64_t hash, const SsdLocation& at) const { return index_.Lookup(hash) == at; }

  // Looks `key` up; calls done->OnSsdRead() now (miss, or a record still in
  // RAM) or from queue.Reap() once the device read completes. The caller
  // must Submit() the queue.
  void Read(std::string_view key, uint64_t hash, IoQueue& queue, SsdReadDone* done);

  // Writes every buffered record and waits until the device has them.
  void Sync();

  SsdLogStats Stats() const;
  uint32_t region_count() const { return region_count_; }
  // Bytes of the device the log uses.
  uint64_t capacity_bytes() const { return uint64_t{region_count_} * options_.region_size; }
  std::string_view device_mode() const { return device_.mode(); }

 private:
  struct Buffer;
  struct WriteJob {
    Buffer* buffer;
    size_t begin;  // byte range of the buffer (block aligned)
    size_t end;
  };
  class ReadOp;

  // A read of the record at `at` failed or did not verify: its entry goes,
  // and a tombstone is appended.
  void DropEntry(std::string_view key, uint64_t hash, const SsdLocation& at);
  // Appends one record under mu_; returns its location or nullopt.
  std::optional<SsdLocation> AppendLocked(uint64_t hash, const RecordMeta& meta,
                                          std::string_view key, std::string_view stored);
  // Seals the active buffer and opens the next region; false if the other
  // buffer is still being written.
  bool RotateLocked();
  void OpenRegionLocked(Buffer* b, uint32_t region);
  // Writer thread: drops the index entries of the region to open next,
  // releasing the lock for the scan. False if there was nothing to do.
  bool ReclaimAheadLocked(std::unique_lock<std::mutex>& lock);
  // Part of it: reads the region from the device (lock released) and
  // rewrites its live records that the filter keeps into the open region,
  // as far as that region has room (never rotating into the region being
  // reclaimed).
  void RewriteHotLocked(std::unique_lock<std::mutex>& lock, uint32_t region, uint64_t seq);
  // Queues writes of the active buffer's complete blocks (all blocks if
  // `tail`).
  void EnqueueLocked(Buffer* b, bool tail);
  void WriterLoop();
  ItemRef DecodeItem(uint64_t seq, const char* rec, size_t avail, std::string_view key,
                     bool* corrupt);

  SsdLogOptions options_;
  BlockDevice& device_;
  const common::Clock& clock_;
  uint32_t region_count_;
  SsdIndex index_;

  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::unique_ptr<Buffer> buffers_[2];
  Buffer* active_ = nullptr;
  std::vector<uint64_t> region_seq_;  // current sequence number of each region
  uint64_t next_seq_ = 1;
  uint64_t max_recovered_cas_ = 0;
  std::deque<WriteJob> jobs_;
  std::function<uint32_t(uint64_t, uint64_t, bool)> rewrite_filter_;
  bool rewrite_busy_ = false;  // the writer is calling rewrite_filter_
  uint32_t reclaim_next_ = UINT32_MAX;          // region for ReclaimAheadLocked()
  std::atomic<uint32_t> reclaiming_{UINT32_MAX};  // its scan is running
  uint32_t reclaimed_ = UINT32_MAX;             // entries already dropped...
  uint64_t reclaimed_seq_ = 0;                  // ...while it had this sequence number
  size_t reclaimed_entries_ = 0;
  bool stop_ = false;
  std::thread writer_;

  struct Counters;
  std::unique_ptr<Counters> c_;
};

}  // namespace strata::tiers
