// SsdLog: the SSD tier's log-structured store on a BlockDevice.
//
// The device is cut into regions (ssd_format.h) used as a circular log.
// Demoted items are appended, LZ4-compressed when that saves space, to the
// open region's buffer in RAM; a background writer thread with its own I/O
// queue writes the buffer to the device in large aligned chunks (and the
// unwritten tail after 100 ms without a full chunk), and records stay
// readable from the buffer until their write has landed. A compact
// SsdIndex maps each key's hash to its newest record.
//
// Invalidation and durability. Deletes and overwrites call Remove(): the
// index entry goes at once and a tombstone is appended (with a copy in the
// region's mirror); Flush() and FlushAt() append flush markers. Every
// invalidation has a log position; AckTicket(hash) is the position a write
// of that key must see on the device before it is acknowledged (the key's
// newest tombstone, the newest flush marker, or a reused region's new
// header), and 0 when nothing is pending. A caller that holds a reply for a
// ticket asks RequestCommit(): what is buffered is written at once (one
// write for every ticket asked meanwhile: a group commit), by the writer
// thread, or when it is idle by the asking worker on its own queue (inline
// commits: no thread hand-off), and the caller's listener is told when the
// position is durable. So an acknowledged
// delete or overwrite is never undone by a crash of the process (kill -9,
// OOM kill); against power loss the device's write cache decides (no
// flush is issued).
//
// Reclaim. When the log wraps, the region after the open one is reclaimed
// by a reclaim thread before it is reused: its live records are read back
// and rewritten at the log's head while the log's live bytes stay within
// `live_share` of its capacity (compaction: the SSD keeps what it has room
// for), and beyond that only the records the ReclaimHooks call hot (read
// since written and still warm), within a write budget; the rest are
// dropped (the hooks hear of each). Then the region is marked dead on the
// device, and only then are its index entries dropped.
//
// Recovery rebuilds the index from the device: regions in sequence order,
// records in order, tombstones and flush markers applied, expired records
// skipped. Damage costs only what it touches: a record whose header
// verifies but whose value does not is skipped (and hides older versions
// of its key); after a record whose header does not verify, the scan looks
// for the next one that does; the tombstones and flushes a damaged stretch
// held are taken from the region's mirror, and if the mirror cannot rule
// them out either, every older record is refused (a miss, never a value a
// tombstone or flush had hidden). A region whose header is damaged is read
// with the sequence number its neighbours imply, except the oldest, which
// may have been reclaimed. A file in another format version is discarded
// (a cold start, one log line).
//
// Reads: Read() answers at once from RAM (records not yet written) or
// queues an asynchronous read on the caller's IoQueue; on completion the
// record's checksums and full key are verified and the index is checked to
// still point at it. A mismatch, an I/O error or a stale entry is a miss
// (counted), never a wrong value.
//
// Large items (ssd_format.h). An item whose record would not fit in a
// region is appended as pieces of SsdLogOptions::large_piece_bytes (each
// compressed on its own), then a head record with their manifest; only the
// head is indexed, and only once every piece is appended and every piece's
// region still holds it. The value is never copied whole: one piece at a
// time is compressed and copied into the region buffer. Such an Append()
// does not drop the item when the writer is a region behind: it waits for
// the writer (blocking the calling thread for as long as the device takes
// to write the item). A large item may fill at most half of the log. It
// lives one trip through the log: when the region of any of its pieces is
// reclaimed (or fails to be written), its entry goes first; reclaim never
// rewrites it. Recovery indexes a head only if every piece's region still
// has the sequence number the manifest names; the pieces themselves are
// verified (checksum, key, cas, index, length) when they are read, so a
// damaged piece is a miss of that item (counted, its entry dropped, a
// tombstone appended), never a wrong value and never a neighbour's loss.
// A read issues up to large_reads_in_flight piece reads at once on the
// caller's queue and decodes one piece per completion (a bounded slice of
// the caller's loop); pieces still in the region buffers are copied from
// there. A thread's large reads allocate at most large_read_bytes of items
// at once; later ones wait, in order, for earlier ones to finish.
//
// Write errors (ENOSPC, EIO) never stop the cache: the records of the
// failed write are dropped from the index (they become misses), the error
// is counted and logged, and later writes go on. When the writer falls a
// whole region behind, demotions are dropped (counted) instead of blocking
// the caller.
//
// Lock order (common/mutex.h): the log's mutex comes first. The callbacks
// Append(), AppendAsync() and Remove() run under it may take the RAM tier's
// shard locks (and, under those, the index's); no caller may hold any of
// those. pending_mu_ (the AppendAsync() queue's entries) is a leaf.
//
// Thread safety: all public methods may be called from any thread. Read()
// requires that `queue` belongs to the calling thread; its completion runs
// on that thread during queue.Reap(). Listeners are called from the writer
// thread. AppendAsync()'s `later_current` runs on the log's large-append
// thread, under the log's lock.
#pragma once

#include <atomic>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <unordered_map>
#include <utility>
#include <vector>

#include "common/clock.h"
#include "common/mutex.h"
#include "common/status.h"
#include "tiers/item/item.h"
#include "tiers/ssd/block_device.h"
#include "tiers/ssd/ssd_format.h"
#include "tiers/ssd/ssd_index.h"

namespace strata::tiers {

struct SsdLogOptions {
  uint32_t region_size = 16u << 20;  // 1 MiB .. 64 MiB, a multiple of 4096
  bool compress = true;              // LZ4 when it saves space
  uint32_t write_chunk = 1u << 20;   // the open region is written in chunks of this size
  // Share of the log (less two regions) that live records may fill before
  // admission and reclaim choose by frequency; below it, everything
  // evicted is admitted and reclaim keeps every live record. Above it a
  // log-structured store rewrites more than it takes in: at 0.8, cleaning
  // a region rewrites at most 4 bytes per byte freed.
  double live_share = 0.8;
  // Beyond that, hot records are rewritten at reclaim, at most this share
  // of a region per region reclaimed.
  double rewrite_share = 1.0;
  // Large items: uncompressed bytes per piece (at most a quarter of a
  // region is used), and piece reads in flight per read.
  uint32_t large_piece_bytes = 1u << 20;
  uint32_t large_reads_in_flight = 8;
  // Bytes of large items AppendAsync() may hold queued (their values are
  // kept in memory until appended); beyond it, it refuses.
  uint64_t large_pending_bytes = 512ull << 20;
  // Bytes of large items one thread reads at once (each read allocates its
  // whole item first, before any connection is charged for it): a read
  // that would pass it waits for that thread's earlier ones, in order; one
  // always goes. strata sets it to max_item_size, so a worker's large
  // reads in flight stay within one of the memory formula's
  // 2 x max_item_size per worker.
  uint64_t large_read_bytes = 256ull << 20;
};

struct SsdLogStats {
  uint64_t regions = 0;
  uint64_t index_entries = 0;
  uint64_t index_bytes = 0;
  uint64_t live_bytes = 0;            // bytes of the records the index points at
  uint64_t capacity_bytes = 0;        // what live records may fill (live_share)
  uint64_t demoted_items = 0;
  uint64_t demoted_value_bytes = 0;   // value bytes before compression
  uint64_t stored_value_bytes = 0;    // value bytes as written
  uint64_t demoted_record_bytes = 0;  // bytes of demoted records
  uint64_t record_bytes = 0;          // bytes of records appended (all kinds)
  uint64_t device_bytes_written = 0;  // bytes the device accepted
  uint64_t tombstones = 0;
  uint64_t dropped_too_large = 0;
  uint64_t dropped_backlog = 0;       // the writer was a region behind
  uint64_t write_errors = 0;
  uint64_t read_errors = 0;
  uint64_t corrupt_records = 0;       // damaged records met by reads and by recovery
  uint64_t stale_reads = 0;           // the entry changed while the read was in flight
  uint64_t reads = 0;
  uint64_t hits = 0;
  uint64_t device_bytes_read = 0;     // bytes read from the device (block aligned)
  uint64_t reads_in_flight = 0;       // device reads issued, not yet completed
  uint64_t regions_reclaimed = 0;
  uint64_t entries_reclaimed = 0;     // index entries dropped by reclaim
  uint64_t records_rewritten = 0;     // live records moved to the head at reclaim
  uint64_t bytes_rewritten = 0;
  uint64_t commits = 0;               // group commits asked for by waiting writes
  uint64_t large_items = 0;           // large items indexed now
  uint64_t large_bytes = 0;           // bytes of their pieces' records
  uint64_t large_demoted = 0;         // large items appended (head indexed)
  uint64_t large_abandoned = 0;       // appends given up (changed, or a piece region reused)
  uint64_t large_dropped = 0;         // large items dropped for their pieces' regions
  uint64_t large_piece_reads = 0;     // piece reads issued to the device
  uint64_t large_pending_items = 0;   // queued by AppendAsync(), not appended yet
  uint64_t large_pending_bytes = 0;
  uint64_t large_refused = 0;         // AppendAsync() over large_pending_bytes
  uint64_t large_reads_waited = 0;    // large reads that waited for large_read_bytes
};

// What Recover() found.
struct SsdRecoveryStats {
  uint64_t items = 0;               // index entries after recovery
  uint64_t regions = 0;             // regions with records
  uint64_t damaged_records = 0;     // records that did not verify (adjacent ones count once)
  uint64_t torn_records = 0;        // the same in the newest region: a crash mid-write
  uint64_t damaged_headers = 0;     // region headers that did not verify
  uint64_t lost_regions = 0;        // regions given up for their damage
  uint64_t mirrored_invalidations = 0;  // tombstones/flushes taken from a mirror
  uint64_t refusals = 0;            // times older records were refused
  uint32_t discarded_format = 0;    // a file of this other format was discarded
  double seconds = 0;
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

// How reclaim judges the live records of a region it reuses; called from
// the reclaim thread without the log's lock.
struct ReclaimHooks {
  // A score for the record of `hash` (read since written or not): 0 for a
  // cold record, higher for hotter ones; the hottest are kept first.
  std::function<uint32_t(uint64_t hash, bool accessed)> score;
  // True if `bytes` more may be written for a record of this score (a
  // flash write budget; called only for records about to be kept).
  std::function<bool(uint64_t bytes, uint32_t score)> spend;
  // A live record that reclaim dropped.
  std::function<void(uint64_t hash)> dropped;
};

class SsdLog {
 public:
  SsdLog(const SsdLogOptions& options, BlockDevice& device, const common::Clock& clock);
  // Writes what is buffered and stops the writer and the reclaimer.
  ~SsdLog();
  SsdLog(const SsdLog&) = delete;
  SsdLog& operator=(const SsdLog&) = delete;

  // Rebuilds the index from the device (blocking; call once, before use).
  common::Status Recover() EXCLUDES(mu_);
  const SsdRecoveryStats& recovery() const { return recovery_; }
  // A delayed flush_all the log recorded and that had not taken effect
  // (absolute unix seconds, in the future), or 0.
  int64_t recovered_delayed_flush() const { return recovered_delayed_flush_; }

  // Appends `item` (a demotion). `still_current`, if given, is asked under
  // the log's lock right before the append (a newer version elsewhere makes
  // this one stale: it is skipped). Returns false if nothing was appended.
  bool Append(const Item& item, uint64_t hash, const std::function<bool()>& still_current = nullptr)
      EXCLUDES(mu_);
  // Forgets the key's SSD copy, if any, and appends a tombstone for it.
  // Returns true if there was one. `first`, if given, runs under the log's
  // lock before that (a delete removes the RAM copy there, so no append
  // can come between the two). It must not call back into the log.
  bool Remove(std::string_view key, uint64_t hash, const std::function<void()>& first = nullptr)
      EXCLUDES(mu_);
  // Forgets every record and appends a flush marker.
  void Flush() EXCLUDES(mu_);
  // Records a flush_all that takes effect at `at_unix` (0 cancels one), so
  // that a restart before then still has it (recovered_delayed_flush()).
  void FlushAt(int64_t at_unix) EXCLUDES(mu_);

  // True if `bytes` more of live records fit within live_share of the log.
  bool HasRoom(uint64_t bytes) const;
  void SetReclaimHooks(ReclaimHooks hooks) EXCLUDES(mu_);

  // Durability of invalidations (see the file comment). A ticket of 0
  // needs nothing.
  uint64_t AckTicket(uint64_t hash) const;
  bool Durable(uint64_t ticket) const {
    return durable_pos_.load(std::memory_order_acquire) >= ticket;
  }
  // Registers a listener (before serving): `notify` is called (from the
  // thread that completed the write) each time the durable position passes
  // what it asked for. With `inline_commits`, the listener gets an I/O
  // queue of its own: a commit it asks for while the writer thread is idle
  // is written from its own thread (RequestCommit() submits it; the caller
  // watches commit_event_fd() and calls ReapCommits()), which spares the
  // writer thread's two wake-ups per group commit. Such a listener's
  // thread must call RequestCommit(), ReapCommits() and
  // RemoveCommitListener().
  int AddCommitListener(std::function<void()> notify, bool inline_commits = false)
      EXCLUDES(mu_);
  // After this returns the listener is never called again (an inline
  // commit still in flight is waited for).
  void RemoveCommitListener(int listener) EXCLUDES(mu_);
  // Makes everything up to `ticket` durable as soon as possible and tells
  // `listener` when it is.
  void RequestCommit(uint64_t ticket, int listener) EXCLUDES(mu_);
  // An inline-commit listener's queue: readable when ReapCommits() has
  // completions to run. -1 for other listeners.
  int commit_event_fd(int listener) const EXCLUDES(mu_);
  void ReapCommits(int listener) EXCLUDES(mu_);

  // The largest CAS unique Recover() found (0 if none).
  uint64_t max_recovered_cas() const { return max_recovered_cas_; }
  // True if the index has the key, or AppendAsync() queued it.
  bool Contains(uint64_t hash) const EXCLUDES(mu_);
  // True if the key's newest record is still the one at `at` (for
  // kPendingLocation: it is still queued by AppendAsync()).
  bool StillAt(uint64_t hash, const SsdLocation& at) const EXCLUDES(mu_);

  // Large items (see the file comment). True if an item with these
  // lengths is stored as pieces and a head.
  bool IsLarge(size_t key_len, uint64_t value_len) const;
  // Where Read() says a large item still queued by AppendAsync() was read.
  static constexpr SsdLocation kPendingLocation{UINT32_MAX, 0, 0};
  enum class AsyncResult {
    kQueued,   // it will be appended, and reads find it meanwhile
    kSkipped,  // `now_current` said no
    kNoRoom,   // too large for the log, or over large_pending_bytes
  };
  // Queues a large item for the large-append thread, so the caller does
  // not wait for its pieces to be compressed and written. Until its head
  // is indexed, Read() answers with `item` itself (kPendingLocation),
  // Contains() and StillAt() count it, and Remove() or Flush() cancel it.
  // `now_current` is asked under the log's lock before it is queued,
  // `later_current` under the lock right before its head is appended (as
  // Append()'s `still_current`). The item's flags, expiry, CAS and bits
  // are taken now (readers may change the item's header fields, never its
  // value). If the append fails (the log cannot take it), the item is
  // gone: a miss, counted in large_abandoned.
  AsyncResult AppendAsync(ItemRef item, uint64_t hash, const std::function<bool()>& now_current,
                          std::function<bool()> later_current) EXCLUDES(mu_);

  // Looks `key` up; calls done->OnSsdRead() now (miss, or a record still in
  // RAM) or from queue.Reap() once the device read completes. The caller
  // must Submit() the queue.
  void Read(std::string_view key, uint64_t hash, IoQueue& queue, SsdReadDone* done) EXCLUDES(mu_);

  // Lets a reclaim under way (or asked for) finish, then writes every
  // buffered record and waits until the device has them. (Appends made
  // right after a Sync() thus find the next region reclaimed: a log that
  // wraps faster than the reclaimer keeps up drops that region's live
  // records instead of waiting.)
  void Sync() EXCLUDES(mu_);

  SsdLogStats Stats() const;
  uint32_t region_count() const { return region_count_; }
  // Bytes of the device the log uses.
  uint64_t capacity_bytes() const { return uint64_t{region_count_} * options_.region_size; }
  std::string_view device_mode() const { return device_.mode(); }

 private:
  struct Buffer;
  struct WriteJob;
  class ReadOp;
  class LargeReadOp;
  struct Scan;
  // A large item the index points at: its head and its pieces' regions.
  struct LargeEntry {
    SsdLocation head;
    std::vector<std::pair<uint32_t, uint64_t>> regions;  // (region, seq), distinct
    uint64_t bytes = 0;                                   // of its pieces' records
  };

  // Append() of an item too large for a region: `key` and `value` (which
  // must stay valid meanwhile) with the head `head` (HeadMeta()). With
  // `pending_id`, the item's AppendAsync() entry goes when its head is
  // indexed.
  bool AppendLarge(std::string_view key, std::string_view value, const RecordMeta& head,
                   uint64_t hash, const std::function<bool()>& still_current, uint64_t pending_id)
      EXCLUDES(mu_);
  static RecordMeta HeadMeta(const Item& item);
  // True if a large item of these lengths fits in half the log.
  bool FitsLarge(size_t key_len, uint64_t value_len) const;
  // The large-append thread: runs AppendAsync()'s jobs in order, at nice
  // 10 (background work: a worker sharing its CPU goes first).
  void LargeLoop() EXCLUDES(mu_);
  // Drops the AppendAsync() entry of `hash` if it is `id` (0: any).
  void ErasePendingLocked(uint64_t hash, uint64_t id) REQUIRES(mu_);
  // True if the AppendAsync() entry of `hash` is still `id`.
  bool PendingIs(uint64_t hash, uint64_t id) const EXCLUDES(pending_mu_);
  // AppendLocked(), but waits for the writer rather than drop the record
  // when the next region's buffer is still being written.
  std::optional<SsdLocation> AppendWaitLocked(uint64_t hash, const RecordMeta& meta,
                                              std::string_view key, std::string_view stored)
      REQUIRES(mu_);
  // Drops the large items with a piece in `region` while it has `seq`, or
  // their head in it, and forgets those whose entry is gone; returns how
  // many entries it removed.
  size_t DropLargeLocked(uint32_t region, uint64_t seq) REQUIRES(mu_);
  // Forgets the large item of `hash` if the index no longer points at it.
  void ForgetLargeLocked(uint64_t hash) REQUIRES(mu_);
  // Piece size for this region size.
  uint32_t PieceBytes() const;

  // Log position of byte `offset` of the region with sequence `seq`.
  uint64_t Position(uint64_t seq, size_t offset) const {
    return seq * options_.region_size + offset;
  }
  // A read of the record at `at` failed or did not verify: its entry goes,
  // and a tombstone is appended.
  void DropEntry(std::string_view key, uint64_t hash, const SsdLocation& at) EXCLUDES(mu_);
  // Appends one record under mu_; returns its location or nullopt. An
  // invalidation (tombstone, flush) also goes to the mirror and moves the
  // pending tickets.
  std::optional<SsdLocation> AppendLocked(uint64_t hash, const RecordMeta& meta,
                                          std::string_view key, std::string_view stored)
      REQUIRES(mu_);
  // Room left in the buffer for records, the mirror's blocks (with
  // `extra_entries` more) deducted.
  size_t RoomLocked(const Buffer* b, size_t extra_entries) const REQUIRES(mu_);
  // Seals the active buffer and opens the next region; false if the other
  // buffer is still being written.
  bool RotateLocked() REQUIRES(mu_);
  void OpenRegionLocked(Buffer* b, uint32_t region) REQUIRES(mu_);
  // Queues writes of the active buffer's complete blocks (all blocks if
  // `tail`) and of its mirror blocks not yet written.
  // With `take`, the job is moved there instead of queued (false: there
  // was nothing to write).
  bool EnqueueLocked(Buffer* b, bool tail, WriteJob* take = nullptr) REQUIRES(mu_);
  // The writer has something to do: stop, a job, or a commit to make (and
  // no listener's inline commit is in flight).
  bool WriterHasWorkLocked() const REQUIRES(mu_);
  // A commit is asked for that the open region's written tail does not
  // cover yet.
  bool CommitWantedLocked() const REQUIRES(mu_);
  void WriterLoop() EXCLUDES(mu_);
  // Runs the oldest queued job (the lock is released during the I/O).
  void RunJobLocked() REQUIRES(mu_);
  // After a job's writes (results[0]: its records' range, if any, then its
  // mirror blocks', if any; bytes written or -errno): counts them, drops
  // the records of a failed one, moves the durable position, tells the
  // listeners. writing_ ends.
  void FinishJobLocked(WriteJob& job, const int64_t* results) REQUIRES(mu_);
  class InlineCommit;
  void ReclaimerLoop() EXCLUDES(mu_);
  // Reclaims `region` (which had sequence `seq`): compaction, the dead
  // mark, then its index entries. Called with the lock held; releases it
  // for I/O.
  void ReclaimLocked(uint32_t region, uint64_t seq) REQUIRES(mu_);
  // Part of it: reads the region and rewrites the records to keep.
  // *rewritten_to receives the log position after the last copy (0: none).
  void CompactLocked(uint32_t region, uint64_t seq, uint64_t* rewritten_to) REQUIRES(mu_);
  // hooks_, for the reclaimer to call without the lock once it has set
  // hooks_busy_: SetReclaimHooks() waits for the flag to clear before it
  // replaces them. The analysis cannot see a flag protect data, hence
  // NO_THREAD_SAFETY_ANALYSIS.
  const ReclaimHooks& HooksWhileBusy() const NO_THREAD_SAFETY_ANALYSIS { return hooks_; }
  // Writes a dead header over `region` (which had sequence `seq`).
  bool MarkDead(IoQueue& queue, uint32_t region, uint64_t seq);
  // Waits (lock held; released while waiting) until position `pos` is on
  // the device.
  void WaitDurableLocked(uint64_t pos) REQUIRES(mu_);
  // Decodes the item record at `rec`; a large item's head yields no item
  // but *large_meta and *manifest (then *large is set).
  ItemRef DecodeItem(uint64_t seq, const char* rec, size_t avail, std::string_view key,
                     bool* corrupt, bool* large = nullptr, RecordMeta* large_meta = nullptr,
                     LargeManifest* manifest = nullptr);
  // Recovery of one region whose records verify with `seq` (in `data`,
  // `len` bytes read): applies them to the index. Returns where its valid
  // records end, and fills the mirror of the region.
  // `newest`: damage there is what a crash mid-write leaves (counted as torn).
  size_t ScanRegion(uint32_t region, uint64_t seq, const char* data, size_t len, bool newest,
                    Scan* scan);
  // True if some record or mirror block of the region verifies with `seq`.
  bool RegionVerifies(uint64_t seq, const char* data, size_t len) const;

  SsdLogOptions options_;
  BlockDevice& device_;
  const common::Clock& clock_;
  uint32_t region_count_;
  SsdIndex index_;
  uint64_t live_capacity_;  // bytes live records may fill (live_share)

  // First in the lock order (common/mutex.h). It also guards the two
  // Buffers (the analysis does not see that: their fields are not
  // annotated), except what a write job reads while the writer runs it
  // unlocked: the blocks it writes, which appends no longer touch, and the
  // buffer's region, which does not change while a job is pending.
  mutable common::Mutex mu_;
  common::CondVar cv_;                  // jobs, commits, durability, hooks
  common::CondVar reclaim_cv_;          // a region to reclaim, or stop
  std::unique_ptr<Buffer> buffers_[2];  // set by the constructor
  Buffer* active_ GUARDED_BY(mu_) = nullptr;
  // Current sequence number of each region.
  std::vector<uint64_t> region_seq_ GUARDED_BY(mu_);
  uint64_t next_seq_ GUARDED_BY(mu_) = 1;
  // Written by Recover() before the log is used, read without the lock.
  uint64_t max_recovered_cas_ = 0;
  int64_t recovered_delayed_flush_ = 0;
  SsdRecoveryStats recovery_;
  std::deque<WriteJob> jobs_ GUARDED_BY(mu_);
  bool writing_ GUARDED_BY(mu_) = false;  // the writer runs a job (lock released)
  // Read by the reclaimer without the lock while hooks_busy_ is set
  // (HooksWhileBusy()).
  ReclaimHooks hooks_ GUARDED_BY(mu_);
  bool hooks_busy_ GUARDED_BY(mu_) = false;             // the reclaimer is calling hooks_
  uint32_t reclaim_next_ GUARDED_BY(mu_) = UINT32_MAX;  // region for the reclaimer
  bool reclaim_running_ GUARDED_BY(mu_) = false;         // it works on one (Sync() waits)
  std::atomic<uint32_t> reclaiming_{UINT32_MAX};  // its index scan is running
  uint32_t reclaimed_ GUARDED_BY(mu_) = UINT32_MAX;  // entries already dropped...
  uint64_t reclaimed_seq_ GUARDED_BY(mu_) = 0;       // ...while it had this sequence number
  size_t reclaimed_entries_ GUARDED_BY(mu_) = 0;
  bool stop_ GUARDED_BY(mu_) = false;
  // Large items indexed, by key hash (possibly stale: checked against the
  // index), and the bytes of their pieces.
  std::unordered_map<uint64_t, LargeEntry> large_ GUARDED_BY(mu_);
  std::atomic<uint64_t> large_bytes_{0};
  // A region's sequence number once it is being reclaimed or a write to it
  // failed: a large item with a piece there is not indexed.
  std::vector<uint64_t> unusable_seq_ GUARDED_BY(mu_);
  // AppendAsync(): the items queued, by key hash, and the jobs.
  struct PendingLarge {
    ItemRef item;
    uint64_t id = 0;
    uint64_t bytes = 0;
  };
  struct LargeJob {
    ItemRef item;
    uint64_t hash = 0;
    uint64_t id = 0;
    RecordMeta head;
    std::function<bool()> current;
  };
  // A leaf lock (common/mutex.h): taken under mu_ or a RAM shard lock (by
  // StillAt(), from RamTier::StillCurrentAbsent()), or alone; nothing is
  // taken under it. The entries change with mu_ held too.
  mutable common::Mutex pending_mu_;
  std::unordered_map<uint64_t, PendingLarge> pending_large_ GUARDED_BY(pending_mu_);
  uint64_t pending_bytes_ GUARDED_BY(pending_mu_) = 0;
  std::deque<LargeJob> large_jobs_ GUARDED_BY(mu_);
  uint64_t pending_ids_ GUARDED_BY(mu_) = 0;
  std::atomic<uint64_t> pending_count_{0};  // pending_large_.size(), read without the lock
  bool stop_large_ GUARDED_BY(mu_) = false;
  common::CondVar large_cv_;  // a job for the large-append thread, or stop

  // Durability: positions are Position(seq, offset).
  static constexpr size_t kPendingSlots = 1 << 14;
  std::unique_ptr<std::atomic<uint64_t>[]> pending_;  // newest tombstone per hash slot
  std::atomic<uint64_t> barrier_pos_{0};  // newest flush marker or reused header
  std::atomic<uint64_t> durable_pos_{0};  // everything before it is on the device
  uint64_t commit_pos_ GUARDED_BY(mu_) = 0;  // asked for by RequestCommit()
  struct Listener {
    std::function<void()> notify;
    uint64_t wanted = 0;
    std::unique_ptr<IoQueue> queue;  // inline commits (AddCommitListener)
  };
  std::vector<Listener> listeners_ GUARDED_BY(mu_);

  IoQueue* writer_queue_ = nullptr;   // the writer thread's
  IoQueue* reclaim_queue_ = nullptr;  // the reclaim thread's
  std::thread writer_;
  std::thread reclaimer_;
  std::thread large_thread_;

  struct Counters;
  std::unique_ptr<Counters> c_;
};

}  // namespace strata::tiers
