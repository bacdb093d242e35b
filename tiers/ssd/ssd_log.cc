#include "tiers/ssd/ssd_log.h"

#include <sched.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <deque>

#include "common/hash.h"
#include "common/log.h"
#include "tiers/ssd/ssd_format.h"

namespace strata::tiers {
namespace {

constexpr size_t kBlock = kBlockSize;
// The large-append thread's nice value if SCHED_IDLE is refused (LargeLoop()).
constexpr int kLargeThreadNice = 10;
size_t AlignDown(size_t v) { return v / kBlock * kBlock; }
size_t AlignUp(size_t v) { return (v + kBlock - 1) / kBlock * kBlock; }

// Blocking I/O on a private queue (startup, the writer and the reclaimer):
// up to two requests at once; returns each one's result.
struct IoRequest {
  bool write = false;
  uint64_t offset = 0;
  char* buf = nullptr;
  size_t len = 0;
  int64_t result = 0;
};

// At most this many at once (a write job's records and its mirror blocks).
constexpr size_t kMaxBlockingIo = 2;

void BlockingIo(IoQueue& q, IoRequest* reqs, size_t n) {
  struct Done : IoCompletion {
    IoRequest* req = nullptr;
    void OnIoComplete(int64_t r) override { req->result = r; }
  } done[kMaxBlockingIo];
  if (n > kMaxBlockingIo) std::abort();
  for (size_t i = 0; i < n; ++i) {
    done[i].req = &reqs[i];
    if (reqs[i].write) {
      q.Write(reqs[i].offset, reqs[i].buf, reqs[i].len, &done[i]);
    } else {
      q.Read(reqs[i].offset, reqs[i].buf, reqs[i].len, &done[i]);
    }
  }
  DrainQueue(q);
}

int64_t BlockingIo(IoQueue& q, bool write, uint64_t offset, char* buf, size_t len) {
  IoRequest r{write, offset, buf, len, 0};
  BlockingIo(q, &r, 1);
  return r.result;
}

bool Expired(uint32_t exptime, int64_t now) {
  return exptime != 0 && static_cast<int64_t>(exptime) <= now;
}

}  // namespace

struct SsdLog::Counters {
  std::atomic<uint64_t> demoted_items{0}, demoted_value_bytes{0}, stored_value_bytes{0},
      demoted_record_bytes{0}, record_bytes{0}, device_bytes_written{0}, tombstones{0},
      dropped_too_large{0}, dropped_backlog{0}, write_errors{0}, read_errors{0},
      corrupt_records{0}, stale_reads{0}, reads{0}, hits{0}, regions_reclaimed{0},
      entries_reclaimed{0}, device_bytes_read{0}, reads_in_flight{0}, records_rewritten{0},
      bytes_rewritten{0}, commits{0}, large_demoted{0}, large_abandoned{0}, large_dropped{0},
      large_piece_reads{0}, large_refused{0}, large_reads_waited{0};
};

struct SsdLog::Buffer {
  std::unique_ptr<char, AlignedFree> data;  // the region's image
  uint32_t region = UINT32_MAX;
  uint64_t seq = 0;
  size_t fill = 0;       // bytes used: header and records
  size_t enqueued = 0;   // bytes handed to the writer (block aligned)
  size_t tail_fill = 0;  // `fill` when the tail was last handed to the writer
  int pending = 0;       // write jobs not completed
  bool failed = false;   // a write failed: no more appends to this region
  bool sealed = false;   // its seal record is appended: no more records
  // The blank block after the mirror's last one that was queued (its
  // index), or SIZE_MAX.
  size_t spare_block = SIZE_MAX;
  std::vector<MirrorEntry> mirror;  // the region's invalidations, in order
  size_t mirror_enqueued = 0;       // entries handed to the writer
};

struct SsdLog::WriteJob {
  Buffer* buffer = nullptr;
  size_t begin = 0;  // records: a block-aligned range of the region (may be empty)
  size_t end = 0;
  // The range's bytes, copied when queued, for a tail write of the open
  // region: appends go on filling its partial last block in the buffer
  // while the job writes it. (All of the range, not only that block: one
  // request, so a crash mid-write leaves a prefix written, never a hole.)
  std::unique_ptr<char, AlignedFree> copy;
  // Mirror blocks (and the blank spare after them), encoded when queued.
  std::unique_ptr<char, AlignedFree> mirror;
  size_t mirror_offset = 0;
  size_t mirror_len = 0;
  uint64_t durable_to = 0;  // log position durable once written
};

namespace {

// The writes of a write job (SsdLog::WriteJob, a private type named here
// only by deduction): its records' range, then its mirror blocks. Returns
// how many (at most kMaxBlockingIo).
template <typename Job>
size_t JobRequests(size_t region_size, const Job& job, IoRequest* reqs) {
  const uint64_t base = uint64_t{job.buffer->region} * region_size;
  size_t n = 0;
  if (job.end > job.begin) {
    char* from = job.copy ? job.copy.get() : job.buffer->data.get() + job.begin;
    reqs[n++] = {true, base + job.begin, from, job.end - job.begin, 0};
  }
  if (job.mirror) reqs[n++] = {true, base + job.mirror_offset, job.mirror.get(), job.mirror_len, 0};
  return n;
}

}  // namespace

// A group commit written from a listener's own queue: the job and the
// completions of its (one or two) writes.
class SsdLog::InlineCommit {
 public:
  InlineCommit(SsdLog* log, WriteJob job) : log_(log), job_(std::move(job)) {}

  void Submit(IoQueue& queue) {
    IoRequest reqs[kMaxBlockingIo];
    n_ = JobRequests(log_->options_.region_size, job_, reqs);
    left_ = n_;
    for (size_t i = 0; i < n_; ++i) {
      done_[i].self = this;
      done_[i].index = i;
      queue.Write(reqs[i].offset, reqs[i].buf, reqs[i].len, &done_[i]);
    }
    queue.Submit();
  }

 private:
  struct Done final : IoCompletion {
    InlineCommit* self = nullptr;
    size_t index = 0;
    void OnIoComplete(int64_t result) override { self->Complete(index, result); }
  };

  void Complete(size_t index, int64_t result) {
    results_[index] = result;
    if (--left_ > 0) return;
    {
      common::MutexLock lock(&log_->mu_);
      log_->FinishJobLocked(job_, results_);
    }
    delete this;
  }

  SsdLog* log_;
  WriteJob job_;
  Done done_[kMaxBlockingIo];
  int64_t results_[kMaxBlockingIo] = {};
  size_t n_ = 0;
  size_t left_ = 0;
};

namespace {

// Buffers for large items' piece reads, and for reads of records of
// kMappedBufferBytes (1 MiB) or more. A read into a fresh mapping costs a
// page fault per 4 KiB (the kernel pins the pages for the direct read) and
// an munmap after it: more CPU than the piece's checksum and copy
// together, which is what held 64 MiB gets well under fio's bandwidth. So
// a large read keeps its buffers from piece to piece, and a thread keeps
// the buffers of its finished reads for the next ones: at most
// kKeptPieceBuffers (about 8.5 MiB with 1 MiB pieces), and only on a
// thread that has read a record of a MiB or more. (Dropping them whenever
// a thread had no large read under way cost a fifth of the 64 MiB gets'
// throughput.)
constexpr size_t kKeptPieceBuffers = 8;
constexpr size_t kPieceBufferGranule = size_t{64} << 10;

struct PieceBuffer {
  std::unique_ptr<char, AlignedFree> data;
  size_t capacity = 0;
};

class PieceBufferCache {
 public:
  PieceBuffer Take(size_t len) {
    for (size_t i = kept_.size(); i-- > 0;) {
      if (kept_[i].capacity >= len) {
        PieceBuffer b = std::move(kept_[i]);
        kept_[i] = std::move(kept_.back());
        kept_.pop_back();
        return b;
      }
    }
    const size_t capacity = (len + kPieceBufferGranule - 1) / kPieceBufferGranule *
                            kPieceBufferGranule;
    return PieceBuffer{AllocateAligned(capacity), capacity};
  }
  void Give(PieceBuffer b) {
    if (b.data && kept_.size() < kKeptPieceBuffers) kept_.push_back(std::move(b));
  }

 private:
  std::vector<PieceBuffer> kept_;
};

PieceBufferCache& PieceBuffers() {
  thread_local PieceBufferCache cache;
  return cache;
}

// The large reads of one thread that hold their items, and those waiting
// for room under SsdLogOptions::large_read_bytes (LargeReadOp::Start()).
template <typename Op>
struct LargeReadGate {
  uint64_t bytes = 0;  // of the items of the reads under way
  std::deque<Op*> waiting;
  bool starting = false;  // in Release()'s loop
};

}  // namespace

// A large item's read: its pieces, up to large_reads_in_flight at once on
// the caller's queue, each verified and decoded into the item as its read
// completes (one piece's work per completion). Pieces still in a region
// buffer are taken from there. Deletes itself after telling `done`.
class SsdLog::LargeReadOp {
 public:
  LargeReadOp(SsdLog* log, std::string key, uint64_t hash, SsdLocation at, const RecordMeta& meta,
              LargeManifest manifest, IoQueue& queue, SsdReadDone* done)
      : log_(log),
        key_(std::move(key)),
        hash_(hash),
        at_(at),
        meta_(meta),
        manifest_(std::move(manifest)),
        queue_(queue),
        done_(done),
        slots_(std::max<uint32_t>(1, log->options_.large_reads_in_flight)) {}

  // Allocates the item and reads its pieces, or waits behind the thread's
  // other large reads until their items leave room under large_read_bytes.
  void Start() {
    Gate& gate = ThreadGate();
    if (gate.bytes > 0 &&
        (!gate.waiting.empty() || gate.bytes + Bytes() > log_->options_.large_read_bytes)) {
      log_->c_->large_reads_waited.fetch_add(1, std::memory_order_relaxed);
      gate.waiting.push_back(this);
      return;
    }
    Begin();
  }

 private:
  using Gate = LargeReadGate<LargeReadOp>;
  static Gate& ThreadGate() {
    thread_local Gate gate;
    return gate;
  }
  uint64_t Bytes() const { return key_.size() + uint64_t{meta_.value_len}; }

  // Starts the waiting reads that now fit (after a read finished).
  static void Release() {
    Gate& gate = ThreadGate();
    if (gate.starting) return;  // a read that began below finished at once
    gate.starting = true;
    while (!gate.waiting.empty()) {
      LargeReadOp* next = gate.waiting.front();
      if (gate.bytes > 0 && gate.bytes + next->Bytes() > next->log_->options_.large_read_bytes) {
        break;
      }
      gate.waiting.pop_front();
      next->Begin();
    }
    gate.starting = false;
  }

  void Begin() {
    ThreadGate().bytes += Bytes();
    Item* item = Item::Create(key_, meta_.flags, meta_.exptime, meta_.value_len);
    if (item == nullptr) {
      failed_ = true;
      no_memory_ = true;
    } else {
      item_ = ItemRef::Adopt(item);
      item->SetCas(meta_.cas);
      item->stale = (meta_.item_bits & kItemStale) != 0 ? 1 : 0;
      item->win_sent = (meta_.item_bits & kItemWinSent) != 0 ? 1 : 0;
      item->key_binary = (meta_.item_bits & kItemKeyBinary) != 0 ? 1 : 0;
      item->fetched = (meta_.item_bits & kItemFetched) != 0 ? 1 : 0;
    }
    for (Slot& slot : slots_) slot.op = this;
    Pump();
  }

  struct Slot final : IoCompletion {
    LargeReadOp* op = nullptr;
    size_t piece = 0;
    size_t skip = 0;  // bytes before the piece's record in the aligned read
    bool busy = false;
    PieceBuffer buf;
    void OnIoComplete(int64_t result) override { op->Completed(this, result); }
  };

  // Issues piece reads while slots are free; when every piece is in (or
  // one failed) and nothing is in flight, finishes.
  void Pump() {
    bool issued = false;
    while (!failed_ && next_ < manifest_.pieces.size()) {
      Slot* slot = nullptr;
      for (Slot& s : slots_) {
        if (!s.busy) {
          slot = &s;
          break;
        }
      }
      if (slot == nullptr) break;
      const size_t i = next_++;
      if (FromBuffers(i)) continue;
      const LargePiece& p = manifest_.pieces[i];
      const size_t begin = AlignDown(p.offset);
      const size_t len = AlignUp(size_t{p.offset} + p.size) - begin;
      if (slot->buf.capacity < len) {  // none yet, or a smaller piece's
        slot->buf = {};
        slot->buf = PieceBuffers().Take(len);
      }
      if (!slot->buf.data) {
        failed_ = true;
        no_memory_ = true;
        break;
      }
      slot->piece = i;
      slot->skip = p.offset - begin;
      slot->busy = true;
      ++in_flight_;
      log_->c_->reads_in_flight.fetch_add(1, std::memory_order_relaxed);
      log_->c_->large_piece_reads.fetch_add(1, std::memory_order_relaxed);
      queue_.Read(uint64_t{p.region} * log_->options_.region_size + begin, slot->buf.data.get(),
                  len, slot);
      issued = true;
    }
    if (issued) queue_.Submit();
    if (in_flight_ == 0 && (failed_ || next_ == manifest_.pieces.size())) Finish();
  }

  // A piece still in a region buffer is decoded from there (true).
  bool FromBuffers(size_t i) {
    const LargePiece& p = manifest_.pieces[i];
    common::MutexLock lock(&log_->mu_);
    for (auto& b : log_->buffers_) {
      if ((b.get() == log_->active_ || b->pending > 0) && b->region == p.region &&
          b->seq == p.seq && size_t{p.offset} + p.size <= b->fill) {
        if (!Decode(i, b->data.get() + p.offset, p.size)) failed_ = true;
        return true;
      }
    }
    return false;
  }

  // Verifies piece `i`'s record and decodes it into the item.
  bool Decode(size_t i, const char* rec, size_t avail) {
    const LargePiece& p = manifest_.pieces[i];
    DecodedRecord d;
    if (DecodeRecord(p.seq, rec, avail, &d) != RecordCheck::kValid ||
        d.meta.type != RecordType::kPiece || d.key != key_ || d.meta.cas != meta_.cas ||
        d.meta.flags != i || d.meta.value_len != p.value_len || d.size != p.size) {
      return false;
    }
    const uint64_t at = uint64_t{i} * manifest_.piece_bytes;
    if (!item_ || at + p.value_len > meta_.value_len) return false;
    char* dst = item_->MutableValue() + at;
    if (d.meta.codec == Codec::kLz4) return DecompressLz4(d.stored, dst, p.value_len);
    std::memcpy(dst, d.stored.data(), d.stored.size());
    return true;
  }

  void Completed(Slot* slot, int64_t result) {
    --in_flight_;
    log_->c_->reads_in_flight.fetch_sub(1, std::memory_order_relaxed);
    slot->busy = false;
    if (result > 0) {
      log_->c_->device_bytes_read.fetch_add(static_cast<uint64_t>(result),
                                            std::memory_order_relaxed);
    }
    const LargePiece& p = manifest_.pieces[slot->piece];
    if (result < static_cast<int64_t>(slot->skip + p.size)) {
      read_error_ = true;
      failed_ = true;
    } else if (!failed_ && !Decode(slot->piece, slot->buf.data.get() + slot->skip, p.size)) {
      failed_ = true;
    }
    Pump();
  }

  void Finish() {
    PieceBufferCache& buffers = PieceBuffers();
    for (Slot& slot : slots_) buffers.Give(std::move(slot.buf));
    ItemRef item;
    Counters& c = *log_->c_;
    if (!failed_) {
      if (log_->index_.MarkAccessed(hash_, at_)) {
        item = std::move(item_);
        c.hits.fetch_add(1, std::memory_order_relaxed);
      } else {
        c.stale_reads.fetch_add(1, std::memory_order_relaxed);
      }
    } else if (!no_memory_) {
      if (log_->index_.Lookup(hash_) != at_) {
        // Overwritten, deleted or reclaimed (a piece's region reused) while
        // it was read.
        c.stale_reads.fetch_add(1, std::memory_order_relaxed);
      } else {
        (read_error_ ? c.read_errors : c.corrupt_records).fetch_add(1, std::memory_order_relaxed);
        log_->DropEntry(key_, hash_, at_);
      }
    }
    SsdReadDone* done = done_;
    SsdLocation at = at_;
    ThreadGate().bytes -= Bytes();
    delete this;
    done->OnSsdReadAt(std::move(item), at);
    Release();
  }

  SsdLog* log_;
  std::string key_;
  uint64_t hash_;
  SsdLocation at_;
  RecordMeta meta_;
  LargeManifest manifest_;
  IoQueue& queue_;
  SsdReadDone* done_;
  std::vector<Slot> slots_;
  ItemRef item_;
  size_t next_ = 0;       // the next piece to fetch
  size_t in_flight_ = 0;  // device reads not completed
  bool failed_ = false;
  bool no_memory_ = false;  // a miss, not damage
  bool read_error_ = false;
};

class SsdLog::ReadOp final : public IoCompletion {
 public:
  ReadOp(SsdLog* log, std::string_view key, uint64_t hash, SsdLocation loc, uint64_t seq,
         SsdReadDone* done)
      : log_(log), key_(key), hash_(hash), loc_(loc), seq_(seq), done_(done) {
    uint64_t start = uint64_t{loc.region} * log->options_.region_size;
    begin_ = AlignDown(loc.offset);
    len_ = AlignUp(loc.offset + loc.size) - begin_;
    dev_offset_ = start + begin_;
    // A mapping of its own from kMappedBufferBytes up: the thread's kept
    // buffers then (see PieceBufferCache).
    buf_ = len_ >= kMappedBufferBytes ? PieceBuffers().Take(len_)
                                      : PieceBuffer{AllocateAligned(len_), len_};
  }
  ~ReadOp() {
    if (buf_.capacity >= kMappedBufferBytes) PieceBuffers().Give(std::move(buf_));
  }
  void Issue(IoQueue& queue) {
    queue_ = &queue;
    log_->c_->reads_in_flight.fetch_add(1, std::memory_order_relaxed);
    queue.Read(dev_offset_, buf_.data.get(), len_, this);
  }

  void OnIoComplete(int64_t result) override {
    log_->c_->reads_in_flight.fetch_sub(1, std::memory_order_relaxed);
    if (result > 0) {
      log_->c_->device_bytes_read.fetch_add(static_cast<uint64_t>(result),
                                            std::memory_order_relaxed);
    }
    ItemRef item;
    if (result < static_cast<int64_t>(loc_.offset + loc_.size - begin_)) {
      log_->c_->read_errors.fetch_add(1, std::memory_order_relaxed);
      log_->DropEntry(key_, hash_, loc_);
    } else {
      bool corrupt = false, large = false;
      RecordMeta meta;
      LargeManifest manifest;
      item = log_->DecodeItem(seq_, buf_.data.get() + (loc_.offset - begin_), loc_.size, key_,
                              &corrupt, &large, &meta, &manifest);
      if (large) {
        // A large item's head: its pieces are read next.
        SsdLog* log = log_;
        auto* op = new LargeReadOp(log, std::move(key_), hash_, loc_, meta, std::move(manifest),
                                   *queue_, done_);
        delete this;
        op->Start();
        return;
      }
      if (corrupt) {
        log_->c_->corrupt_records.fetch_add(1, std::memory_order_relaxed);
        log_->DropEntry(key_, hash_, loc_);
      } else if (item && !log_->index_.MarkAccessed(hash_, loc_)) {
        // Overwritten, deleted or reclaimed while the read was in flight.
        // (Otherwise the record is now marked read: reclaim keeps it.)
        log_->c_->stale_reads.fetch_add(1, std::memory_order_relaxed);
        item.Reset();
      }
    }
    if (item) log_->c_->hits.fetch_add(1, std::memory_order_relaxed);
    SsdReadDone* done = done_;
    SsdLocation at = loc_;
    delete this;
    done->OnSsdReadAt(std::move(item), at);
  }

 private:
  SsdLog* log_;
  std::string key_;
  uint64_t hash_;
  SsdLocation loc_;
  uint64_t seq_;
  SsdReadDone* done_;
  IoQueue* queue_ = nullptr;
  size_t begin_ = 0;
  size_t len_ = 0;
  uint64_t dev_offset_ = 0;
  PieceBuffer buf_;
};

SsdLog::SsdLog(const SsdLogOptions& options, BlockDevice& device, const common::Clock& clock)
    : options_(options),
      device_(device),
      clock_(clock),
      region_count_(static_cast<uint32_t>(
          std::min<uint64_t>(device.size() / options.region_size, kMaxIndexedRegions))),
      index_(region_count_),
      live_capacity_(static_cast<uint64_t>(
          options.live_share * static_cast<double>(region_count_ > 2 ? region_count_ - 2 : 0) *
          static_cast<double>(options.region_size - kRegionHeaderSize))),
      pending_(std::make_unique<std::atomic<uint64_t>[]>(kPendingSlots)),
      c_(std::make_unique<Counters>()) {
  region_seq_.assign(region_count_, 0);
  unusable_seq_.assign(region_count_, 0);
  for (auto& b : buffers_) {
    b = std::make_unique<Buffer>();
    b->data = AllocateAligned(options_.region_size);
  }
  writer_ = std::thread([this] { WriterLoop(); });
  reclaimer_ = std::thread([this] { ReclaimerLoop(); });
  large_thread_ = std::thread([this] { LargeLoop(); });
}

SsdLog::~SsdLog() {
  {
    // Large items still queued are written first.
    common::MutexLock lock(&mu_);
    stop_large_ = true;
    large_cv_.NotifyAll();
  }
  large_thread_.join();
  {
    // A clean stop: recovery then counts damage in this region as damage,
    // not as a write a crash tore.
    common::MutexLock lock(&mu_);
    if (active_ != nullptr && !active_->failed && !active_->sealed &&
        RoomLocked(active_, 0) >= RecordSize(0, 0)) {
      AppendLocked(0, {RecordType::kClean}, "", "");
    }
  }
  Sync();
  {
    common::MutexLock lock(&mu_);
    stop_ = true;
  }
  cv_.NotifyAll();
  reclaim_cv_.NotifyAll();
  writer_.join();
  reclaimer_.join();
}

// ---------------------------------------------------------------- recovery

struct SsdLog::Scan {
  int64_t now = 0;
  int64_t delayed_flush = 0;  // newest delayed flush seen (0: none or cancelled)
  // The region just scanned, to go on appending to it (the newest).
  std::vector<MirrorEntry> mirror;
  bool mirror_damaged = false;
  bool sealed = false;
  uint32_t accounted = 0;  // invalidations of the region applied
  // Stretches that did not verify (a torn write, in the newest region):
  // [begin, end), the key of a record whose header verified, and the
  // invalidations accounted for before it.
  struct Torn {
    size_t begin;
    size_t end;
    std::string key;
    uint32_t accounted;
  };
  std::vector<Torn> torn;
  // Each region's sequence number if its header is live, else 0: a large
  // item's head is recovered only if its pieces' regions still hold them.
  std::vector<uint64_t> live_seq;
  std::vector<std::pair<uint64_t, LargeEntry>> large;  // heads indexed
};

bool SsdLog::RegionVerifies(uint64_t seq, const char* data, size_t len) const {
  DecodedRecord rec;
  if (len > kRegionHeaderSize &&
      DecodeRecord(seq, data + kRegionHeaderSize, len - kRegionHeaderSize, &rec) !=
          RecordCheck::kInvalid) {
    return true;
  }
  size_t r = options_.region_size;
  if (len >= r) {
    MirrorEntry entries[kMirrorEntriesPerBlock];
    bool blank = false;
    if (DecodeMirrorBlock(seq, 0, data + r - kBlock, entries, &blank) >= 0) return true;
  }
  return false;
}

size_t SsdLog::ScanRegion(uint32_t region, uint64_t seq, const char* data, size_t len,
                          bool newest, Scan* scan) {
  const size_t r = options_.region_size;
  // Damage in the newest region is a write a crash tore, unless the process
  // stopped cleanly (its last record is then a clean mark).
  uint64_t damaged = 0;
  bool clean = false;
  // The mirror: blocks from the region's end down, up to the blank spare
  // block after the last one. A block that does not verify is a damaged
  // mirror block if the next one does (its entries are unknown); otherwise
  // it ends the mirror (a damaged last block or spare: its entries, if it
  // had any, are unknown too).
  std::vector<MirrorEntry> mirror;
  std::vector<bool> known;
  MirrorEntry block_entries[kMirrorEntriesPerBlock];
  size_t front_end = std::min(len, r - kBlock);  // the spare block at least
  auto block_at = [&](uint32_t k) { return data + r - kBlock * (k + 1); };
  for (uint32_t k = 0; (k + 2) * kBlock + kRegionHeaderSize <= r && r <= len; ++k) {
    bool blank = false;
    int n = DecodeMirrorBlock(seq, k, block_at(k), block_entries, &blank);
    if (n >= 0) {
      mirror.insert(mirror.end(), block_entries, block_entries + n);
      known.resize(known.size() + static_cast<size_t>(n), true);
      front_end = std::min(len, r - kBlock * (k + 2));
      if (static_cast<size_t>(n) < kMirrorEntriesPerBlock) break;
      continue;
    }
    if (blank) break;
    scan->mirror_damaged = true;
    ++damaged;
    mirror.resize(mirror.size() + kMirrorEntriesPerBlock);
    known.resize(known.size() + kMirrorEntriesPerBlock, false);
    front_end = std::min(len, r - kBlock * (k + 1));
    bool next_blank = false;
    if ((k + 3) * kBlock + kRegionHeaderSize > r ||
        DecodeMirrorBlock(seq, k + 1, block_at(k + 1), block_entries, &next_blank) < 0) {
      break;
    }
  }
  // Applies mirror entries [from, to): invalidations whose records were
  // lost. False if one of them is unknown (the caller refuses older data).
  auto apply_mirror = [&](size_t from, size_t to) {
    bool all_known = true;
    for (size_t i = from; i < to; ++i) {
      if (i >= mirror.size() || !known[i]) {
        all_known = false;
        continue;
      }
      ++recovery_.mirrored_invalidations;
      const MirrorEntry& e = mirror[i];
      switch (e.type) {
        case RecordType::kTombstone:
          index_.Remove(e.hash);
          break;
        case RecordType::kFlush:
          index_.Clear();
          scan->delayed_flush = 0;
          break;
        case RecordType::kDelayedFlush:
          scan->delayed_flush = e.exptime;
          break;
        default:
          break;
      }
    }
    return all_known;
  };
  auto refuse = [&] {
    // An invalidation may be lost: nothing older can be trusted.
    index_.Clear();
    ++recovery_.refusals;
  };

  // Every record says how many invalidations its region held up to it: those
  // the front of the region does not show (their records lost, or carried
  // only by the mirror, as after a torn tail) are taken from the mirror, in
  // order, when a record or the region's end shows they existed.
  size_t off = kRegionHeaderSize;
  size_t valid_end = off;
  size_t accounted = 0;  // invalidations of the region applied so far
  auto account_to = [&](size_t count) {
    if (count <= accounted) return;
    if (!apply_mirror(accounted, count)) refuse();
    accounted = count;
  };
  bool sealed = false;
  DecodedRecord rec;
  while (off + kRecordHeaderSize <= front_end && !sealed) {
    RecordCheck check = DecodeRecord(seq, data + off, front_end - off, &rec);
    if (check == RecordCheck::kInvalid) {
      // Look for the next record that verifies.
      size_t next = off + kRecordAlign;
      while (next + kRecordHeaderSize <= front_end &&
             DecodeRecord(seq, data + next, front_end - next, &rec) == RecordCheck::kInvalid) {
        next += kRecordAlign;
      }
      if (next + kRecordHeaderSize > front_end) break;  // the tail: handled below
      ++damaged;
      scan->torn.push_back({off, next, {}, static_cast<uint32_t>(accounted)});
      off = next;
      continue;  // decoded again above, now as a record
    }
    account_to(rec.meta.mirror_count - (IsInvalidation(rec.meta.type) ? 1 : 0));
    uint64_t hash = common::HashKey(rec.key);
    if (check == RecordCheck::kDamagedValue) {
      // The header says truthfully which key it was: older versions of the
      // key must not come back.
      ++damaged;
      scan->torn.push_back({off, off + rec.size, std::string(rec.key),
                            static_cast<uint32_t>(accounted)});
      index_.Remove(hash);
    } else {
      switch (rec.meta.type) {
        case RecordType::kItem:
          max_recovered_cas_ = std::max(max_recovered_cas_, rec.meta.cas);
          if (Expired(rec.meta.exptime, scan->now)) {
            index_.Remove(hash);
          } else {
            // Marked read: whether it was is not on the device, and a record
            // the sketch (restored at a warm restart) still calls warm is
            // worth one more pass through the log.
            index_.Insert(hash, {region, static_cast<uint32_t>(off), static_cast<uint32_t>(rec.size)},
                          /*accessed=*/true);
          }
          break;
        case RecordType::kLarge: {
          max_recovered_cas_ = std::max(max_recovered_cas_, rec.meta.cas);
          LargeManifest m;
          LargeEntry e;
          e.head = {region, static_cast<uint32_t>(off), static_cast<uint32_t>(rec.size)};
          bool ok = !Expired(rec.meta.exptime, scan->now) &&
                    DecodeManifest(rec.stored, rec.meta.value_len, &m);
          for (size_t i = 0; ok && i < m.pieces.size(); ++i) {
            const LargePiece& piece = m.pieces[i];
            ok = piece.region < region_count_ && scan->live_seq[piece.region] == piece.seq &&
                 uint64_t{piece.offset} + piece.size <= r;
            e.bytes += piece.size;
            if (e.regions.empty() || e.regions.back().first != piece.region) {
              e.regions.emplace_back(piece.region, piece.seq);
            }
          }
          if (ok) {
            index_.Insert(hash, e.head, /*accessed=*/true);
            scan->large.emplace_back(hash, std::move(e));
          } else {
            index_.Remove(hash);  // its pieces are gone: so is this version
          }
          break;
        }
        case RecordType::kPiece:
          break;  // read through its head's manifest
        case RecordType::kTombstone:
          index_.Remove(hash);
          break;
        case RecordType::kFlush:
          index_.Clear();
          scan->delayed_flush = 0;
          break;
        case RecordType::kDelayedFlush:
          scan->delayed_flush = rec.meta.exptime;
          break;
        case RecordType::kSeal:
          sealed = true;
          break;
        case RecordType::kSkip:
          // A stretch a crash tore, marked by an earlier recovery; with a key,
          // a record of it whose value was torn.
          if (!rec.key.empty()) index_.Remove(hash);
          break;
        case RecordType::kClean:
          break;
      }
    }
    clean = rec.meta.type == RecordType::kClean;
    accounted = std::max<size_t>(accounted, rec.meta.mirror_count);
    off += rec.size;
    valid_end = off;
  }
  // Past the last record that verifies (an unsealed region's tail, where a
  // crash tears writes), the invalidations the mirror knows, up to its first
  // unknown entry, are applied. Whether a damaged mirror block held more
  // cannot be told, and is not held against the older records: only damage
  // to both a tombstone and its copy there would hide one.
  size_t known_prefix = 0;
  while (known_prefix < mirror.size() && known[known_prefix]) ++known_prefix;
  if (!sealed && known_prefix > accounted) {
    ++damaged;
    account_to(known_prefix);
  }
  scan->mirror.assign(mirror.begin(), mirror.begin() + std::max(accounted, known_prefix));
  if (known_prefix < scan->mirror.size()) scan->mirror_damaged = true;
  scan->sealed = sealed;
  scan->accounted = static_cast<uint32_t>(std::max(accounted, known_prefix));
  if (newest && !clean) {
    recovery_.torn_records += damaged;
  } else {
    recovery_.damaged_records += damaged;
    scan->torn.clear();  // damage, not a torn write: it stays as it is
  }
  return valid_end;
}

common::Status SsdLog::Recover() {
  if (region_count_ < 4) {
    return common::Status::InvalidArgument("the SSD tier needs at least 4 regions");
  }
  const int64_t t0 = clock_.MonotonicNanos();
  const size_t r = options_.region_size;
  auto queue = device_.NewQueue(4);
  auto block = AllocateAligned(kBlock);
  auto region = AllocateAligned(r);
  if (!block || !region) return common::Status::Unavailable("out of memory for recovery");
  index_.Clear();
  recovery_ = {};

  // 1. Every region's header.
  enum class Kind { kLive, kDead, kBlank, kDamaged };
  std::vector<Kind> kind(region_count_, Kind::kBlank);
  std::vector<uint64_t> seq(region_count_, 0);
  uint32_t other_format = 0;
  bool resized = false;
  for (uint32_t p = 0; p < region_count_; ++p) {
    int64_t n = BlockingIo(*queue, false, uint64_t{p} * r, block.get(), kBlock);
    if (n != static_cast<int64_t>(kBlock)) {
      c_->read_errors.fetch_add(1, std::memory_order_relaxed);
      kind[p] = Kind::kDamaged;
      continue;
    }
    RegionHeader h;
    uint32_t version = 0;
    switch (DecodeRegionHeader(block.get(), &h, &version)) {
      case HeaderKind::kValid:
        if (h.region_size != r || h.region_count != region_count_) {
          resized = true;
        } else {
          kind[p] = h.state == RegionState::kDead ? Kind::kDead : Kind::kLive;
          seq[p] = h.seq;
        }
        break;
      case HeaderKind::kOtherFormat:
        other_format = version;
        break;
      case HeaderKind::kBlank:
        kind[p] = Kind::kBlank;
        break;
      case HeaderKind::kDamaged:
        kind[p] = Kind::kDamaged;
        break;
    }
  }
  // Sequence numbers follow positions: region p only ever has seq = p + 1
  // (mod the region count). A header whose seq breaks that is damage.
  for (uint32_t p = 0; p < region_count_; ++p) {
    if ((kind[p] == Kind::kLive || kind[p] == Kind::kDead) && (seq[p] - 1) % region_count_ != p) {
      kind[p] = Kind::kDamaged;
      seq[p] = 0;
    }
  }

  auto discard = [&](const char* why) {
    common::Log(common::LogLevel::kWarn, "SSD tier: %s: the cache file is discarded (a cold start)",
                why);
    std::memset(block.get(), 0, kBlock);
    for (uint32_t p = 0; p < region_count_; ++p) {
      if (BlockingIo(*queue, true, uint64_t{p} * r, block.get(), kBlock) !=
          static_cast<int64_t>(kBlock)) {
        c_->write_errors.fetch_add(1, std::memory_order_relaxed);
      }
      kind[p] = Kind::kBlank;
      seq[p] = 0;
    }
  };
  if (other_format != 0) {
    char why[96];
    std::snprintf(why, sizeof(why), "it is in on-device format %u, this strata writes %u",
                  other_format, kFormatVersion);
    discard(why);
    recovery_.discarded_format = other_format;
  } else if (resized) {
    discard("it was written with another region size or tiers.ssd.size");
  }

  // 2. The newest region, and what every position must hold.
  uint64_t newest = 0;
  uint32_t head = 0;
  for (uint32_t p = 0; p < region_count_; ++p) {
    if (seq[p] > newest) {
      newest = seq[p];
      head = p;
    }
  }
  auto expected = [&](uint32_t p) -> uint64_t {  // 0: never written
    uint64_t back = (uint64_t{head} + region_count_ - p) % region_count_;
    return newest > back ? newest - back : 0;
  };
  // Records older than this sequence number are refused: something that
  // may have hidden them is lost.
  uint64_t refuse_below = 0;
  const uint64_t file_bytes = device_.preexisting_bytes();
  const uint32_t intact_regions = static_cast<uint32_t>(std::min<uint64_t>(
      region_count_, file_bytes / r));
  if (newest != 0 && intact_regions < region_count_ && head + 1 >= intact_regions) {
    // The file was shorter than the log (truncated), and the newest region
    // left is its last: the regions after it may have held newer records.
    common::Log(common::LogLevel::kWarn,
                "SSD tier: the cache file was truncated after its newest region: nothing in "
                "it can be trusted");
    refuse_below = UINT64_MAX;
  }

  // 3. Damaged and blank headers.
  for (uint32_t p = 0; p < region_count_; ++p) {
    if (kind[p] != Kind::kDamaged && kind[p] != Kind::kBlank) continue;
    bool truncated = p >= intact_regions;
    uint64_t want = expected(p);
    if (kind[p] == Kind::kBlank && want == 0 && !truncated) continue;  // never written
    if (!truncated) ++recovery_.damaged_headers;
    // Read with the sequence numbers it can have had.
    int64_t n = truncated ? -1
                          : BlockingIo(*queue, false, uint64_t{p} * r, region.get(), r);
    bool newer = newest != 0 && p == (head + 1) % region_count_;
    uint64_t found = 0;
    if (n == static_cast<int64_t>(r)) {
      if (want != 0 && RegionVerifies(want, region.get(), r)) found = want;
      if (newer && RegionVerifies(newest + 1, region.get(), r)) found = newest + 1;
      if (newest == 0 && RegionVerifies(p + 1, region.get(), r)) found = p + 1;
    }
    if (found != 0 && found == want && newer) {
      // The oldest region, right after the newest: it may have been
      // reclaimed (its dead mark damaged). Its records are the oldest;
      // giving them up hides nothing.
      ++recovery_.lost_regions;
      continue;
    }
    if (found != 0) {
      kind[p] = Kind::kLive;
      seq[p] = found;
      if (found > newest) {
        newest = found;
        head = p;
      }
      continue;
    }
    if (kind[p] == Kind::kBlank && want == 0) continue;
    // Lost: whatever it held is gone, invalidations included.
    ++recovery_.lost_regions;
    if (newer || want == 0) {
      refuse_below = UINT64_MAX;  // it may have been the newest
    } else {
      refuse_below = std::max(refuse_below, want);
    }
  }
  if (refuse_below != 0) ++recovery_.refusals;

  // 4. Records, in log order.
  std::vector<std::pair<uint64_t, uint32_t>> order;
  for (uint32_t p = 0; p < region_count_; ++p) {
    if (kind[p] == Kind::kLive || kind[p] == Kind::kDead) order.emplace_back(seq[p], p);
  }
  std::sort(order.begin(), order.end());
  Scan scan;
  scan.now = clock_.NowSeconds();
  scan.live_seq.assign(region_count_, 0);
  for (uint32_t p = 0; p < region_count_; ++p) {
    if (kind[p] == Kind::kLive) scan.live_seq[p] = seq[p];
  }
  uint32_t last_region = region_count_ - 1;
  size_t last_end = 0;  // where the newest region's valid records end (0: unusable)
  for (auto [s, p] : order) {
    last_region = p;
    last_end = 0;
    if (kind[p] == Kind::kDead || s < refuse_below) continue;
    int64_t n = BlockingIo(*queue, false, uint64_t{p} * r, region.get(), r);
    if (n < static_cast<int64_t>(kBlock)) {
      c_->read_errors.fetch_add(1, std::memory_order_relaxed);
      continue;
    }
    scan.mirror_damaged = false;
    scan.torn.clear();
    size_t end = ScanRegion(p, s, region.get(), static_cast<size_t>(n), p == head, &scan);
    ++recovery_.regions;
    if (n == static_cast<int64_t>(r) && !scan.mirror_damaged) last_end = end;
  }
  c_->corrupt_records.fetch_add(recovery_.damaged_records, std::memory_order_relaxed);
  if (scan.delayed_flush > scan.now) {
    recovered_delayed_flush_ = scan.delayed_flush;
  } else if (scan.delayed_flush != 0) {
    // Its time came while strata was down (or before it noticed): it
    // covers everything the log holds.
    index_.Clear();
  }
  recovery_.items = index_.size();

  // 5. Go on where the log ends.
  {
  common::MutexLock lock(&mu_);
  for (auto [s, p] : order) {
    region_seq_[p] = s;
    next_seq_ = s + 1;
  }
  large_.clear();
  large_bytes_.store(0, std::memory_order_relaxed);
  for (auto& [hash, e] : scan.large) {
    if (index_.Lookup(hash) != e.head) continue;  // superseded, deleted or flushed since
    large_bytes_.fetch_add(e.bytes, std::memory_order_relaxed);
    large_[hash] = std::move(e);
  }
  Buffer* b = buffers_[0].get();
  const size_t mirror_room = kBlock * (MirrorBlocks(scan.mirror.size()) + 1);
  bool resumed = false;
  const bool newest_scanned = last_end > 0 && !order.empty() && last_region == head &&
                              region_seq_[last_region] >= refuse_below;
  if (newest_scanned && (!scan.torn.empty() || scan.sealed || scan.mirror_damaged)) {
    // The newest region is not appended to again: a crash tore its tail
    // (the torn stretches become skip records, so later scans do not count
    // them as damage) or it was sealed already. A seal after its records
    // says nothing was lost after them.
    char* image = region.get();
    size_t from = last_end, to = last_end;
    for (const Scan::Torn& t : scan.torn) {
      if (t.end - t.begin < kRecordHeaderSize + t.key.size() || t.end > last_end) continue;
      EncodeSkipRecord(region_seq_[last_region], t.end - t.begin, t.key.size(), t.accounted,
                       image + t.begin);
      from = std::min(from, t.begin);
    }
    if (!scan.sealed && last_end + RecordSize(0, 0) + mirror_room <= r) {
      RecordMeta seal{RecordType::kSeal};
      seal.mirror_count = scan.accounted;
      EncodeRecord(region_seq_[last_region], seal, "", "", image + last_end);
      to = last_end + RecordSize(0, 0);
    }
    if (!scan.sealed) {
      // The mirror as recovery took it (a torn block rewritten), the rest
      // of the region blank.
      const size_t blocks = MirrorBlocks(scan.mirror.size());
      std::memset(image + to, 0, r - kBlock * blocks - to);
      for (size_t k = 0; k < blocks; ++k) {
        size_t first = k * kMirrorEntriesPerBlock;
        EncodeMirrorBlock(region_seq_[last_region], static_cast<uint32_t>(k),
                          &scan.mirror[first],
                          std::min(kMirrorEntriesPerBlock, scan.mirror.size() - first),
                          image + r - kBlock * (k + 1));
      }
      to = r;
    }
    from = AlignDown(from);
    to = AlignUp(to);
    if (to > from &&
        BlockingIo(*queue, true, uint64_t{last_region} * r + from, image + from, to - from) !=
            static_cast<int64_t>(to - from)) {
      c_->write_errors.fetch_add(1, std::memory_order_relaxed);
    }
  } else if (newest_scanned && last_end + kBlock + mirror_room < r) {
    // The newest region goes on where its records end, so a restart does
    // not leave the rest of it unused. Everything after its records (up to
    // its mirror blocks, the blank spare included) is zeroed on the device
    // first: nothing the scan stopped at can come back after the records
    // appended from now on.
    std::memcpy(b->data.get(), region.get(), last_end);
    std::memset(b->data.get() + last_end, 0, r - last_end);
    size_t from = AlignDown(last_end);
    size_t to = r - kBlock * MirrorBlocks(scan.mirror.size());
    int64_t w = BlockingIo(*queue, true, uint64_t{last_region} * r + from, b->data.get() + from,
                           to - from);
    if (w == static_cast<int64_t>(to - from)) {
      b->region = last_region;
      b->seq = region_seq_[last_region];
      b->fill = last_end;
      b->enqueued = from;
      b->tail_fill = last_end;
      b->failed = false;
      b->sealed = false;
      b->mirror = std::move(scan.mirror);
      b->spare_block = MirrorBlocks(b->mirror.size());  // zeroed above
      b->mirror_enqueued = b->mirror.size();
      active_ = b;
      resumed = true;
    } else {
      c_->write_errors.fetch_add(1, std::memory_order_relaxed);
    }
  }
  if (!resumed) {
    OpenRegionLocked(b, order.empty() ? 0 : (last_region + 1) % region_count_);
    active_ = b;
    EnqueueLocked(b, /*tail=*/true);
  }
  // Everything recovered is on the device; a region opened now is not yet
  // (its header is queued).
  durable_pos_.store(Position(active_->seq, resumed ? active_->fill : 0),
                     std::memory_order_release);
  reclaim_next_ = (active_->region + 1) % region_count_;
  reclaim_cv_.NotifyAll();
  if (recovery_.refusals > 0) {
    // What was refused stays refused: a later recovery, which may no longer
    // see the damage that decided it (the log moves on), sees this marker.
    AppendLocked(0, {RecordType::kFlush}, "", "");
    EnqueueLocked(active_, /*tail=*/true);
  }
  cv_.NotifyAll();
  }
  Sync();
  recovery_.seconds = static_cast<double>(clock_.MonotonicNanos() - t0) / 1e9;
  return common::Status::Ok();
}

// ------------------------------------------------------------ the open region

void SsdLog::OpenRegionLocked(Buffer* b, uint32_t region) {
  // The reclaimer usually dropped this region's index entries already, off
  // the lock, after marking it dead on the device; else it is done here.
  while (reclaiming_.load(std::memory_order_acquire) == region) std::this_thread::yield();
  size_t dropped = 0;
  const bool reclaimed = reclaimed_ == region && reclaimed_seq_ == region_seq_[region];
  if (reclaimed) {
    dropped = reclaimed_entries_;
  } else {
    dropped = index_.RemoveRegion(region);
  }
  reclaimed_ = UINT32_MAX;
  const bool reused = region_seq_[region] != 0;
  if (reused) {
    c_->large_dropped.fetch_add(DropLargeLocked(region, region_seq_[region]),
                                std::memory_order_relaxed);
  }
  if (reused) {
    c_->regions_reclaimed.fetch_add(1, std::memory_order_relaxed);
    c_->entries_reclaimed.fetch_add(dropped, std::memory_order_relaxed);
  }
  // Sequence numbers follow positions (Recover() relies on it).
  uint64_t seq = next_seq_;
  while ((seq - 1) % region_count_ != region) ++seq;
  next_seq_ = seq + 1;
  region_seq_[region] = seq;
  b->region = region;
  b->seq = seq;
  // Only the header and the mirror's spare block are cleared: the padding
  // after the last record is zeroed when a tail is written (EnqueueLocked).
  std::memset(b->data.get(), 0, kRegionHeaderSize);
  std::memset(b->data.get() + options_.region_size - kBlock, 0, kBlock);
  EncodeRegionHeader({b->seq, options_.region_size, region_count_, RegionState::kLive,
                      static_cast<uint64_t>(clock_.NowSeconds())},
                     b->data.get());
  b->fill = kRegionHeaderSize;
  b->enqueued = 0;
  b->tail_fill = 0;
  b->failed = false;
  b->sealed = false;
  b->spare_block = SIZE_MAX;
  b->mirror.clear();
  b->mirror_enqueued = 0;
  if (reused && !reclaimed) {
    // Its old records are on the device under a valid header until the new
    // one lands: writes of keys they held wait for it.
    uint64_t pos = Position(seq, kRegionHeaderSize);
    if (barrier_pos_.load(std::memory_order_relaxed) < pos) {
      barrier_pos_.store(pos, std::memory_order_release);
    }
  }
  // The next region to open is the oldest: it is reclaimed ahead.
  reclaim_next_ = (region + 1) % region_count_;
  reclaim_cv_.NotifyAll();
}

size_t SsdLog::RoomLocked(const Buffer* b, size_t extra_entries) const {
  // The mirror's blocks, the blank spare after them and the seal record.
  size_t reserved = kBlock * (MirrorBlocks(b->mirror.size() + extra_entries) + 1) +
                    RecordSize(0, 0);
  size_t limit = options_.region_size - reserved;
  return b->fill < limit ? limit - b->fill : 0;
}

bool SsdLog::RotateLocked() {
  Buffer* other = active_ == buffers_[0].get() ? buffers_[1].get() : buffers_[0].get();
  if (other->pending > 0) return false;
  if (!active_->failed && !active_->sealed) {
    // The seal says where the region's records end and how many
    // invalidations its mirror holds.
    RecordMeta seal{RecordType::kSeal};
    seal.mirror_count = static_cast<uint32_t>(active_->mirror.size());
    EncodeRecord(active_->seq, seal, "", "", active_->data.get() + active_->fill);
    active_->fill += RecordSize(0, 0);
    active_->sealed = true;
  }
  EnqueueLocked(active_, /*tail=*/true);
  OpenRegionLocked(other, (active_->region + 1) % region_count_);
  active_ = other;
  // The new header goes to the device at once: the region's old records
  // (their entries are gone) must not come back at a restart.
  EnqueueLocked(active_, /*tail=*/true);
  cv_.NotifyAll();
  return true;
}

bool SsdLog::EnqueueLocked(Buffer* b, bool tail, WriteJob* take) {
  const size_t r = options_.region_size;
  size_t end = tail ? AlignUp(b->fill) : AlignDown(b->fill);
  bool records = end > b->enqueued;
  const size_t used = MirrorBlocks(b->mirror.size());
  bool mirror = b->mirror.size() > b->mirror_enqueued || b->spare_block != used;
  if (!records && !mirror && !(tail && b->fill > b->tail_fill)) return false;
  WriteJob job;
  job.buffer = b;
  if (tail) {
    // Zero padding after the last record: a scan stops there. A sealed
    // region is zeroed up to its mirror, so nothing stale lies after its
    // records.
    size_t zero_to = end;
    if (b->sealed) zero_to = r - kBlock * (MirrorBlocks(b->mirror.size()) + 1);
    std::memset(b->data.get() + b->fill, 0, zero_to - b->fill);
    end = std::max(end, zero_to);
    records = end > b->enqueued;
    b->tail_fill = b->fill;
  }
  if (records) {
    job.begin = b->enqueued;
    job.end = end;
    if (tail && !b->sealed && AlignDown(b->fill) < end) {
      // Written from a copy: the buffer's last block takes the next records
      // while the writer thread (or the kernel) reads it.
      job.copy = AllocateAligned(end - job.begin);
      std::memcpy(job.copy.get(), b->data.get() + job.begin, end - job.begin);
    }
  }
  if (mirror) {
    // Blocks first..used-1 (block k lies at r - kBlock * (k + 1)), and when
    // the mirror has grown into a new block, the blank spare block below
    // them; the job's buffer starts at the lowest address.
    const bool spare = b->spare_block != used;
    const size_t first = std::min(b->mirror_enqueued / kMirrorEntriesPerBlock, used);
    const size_t blocks = used - first + (spare ? 1 : 0);
    const size_t low = used + (spare ? 1 : 0);  // blocks below the job's range
    job.mirror = AllocateAligned(blocks * kBlock);
    std::memset(job.mirror.get(), 0, blocks * kBlock);
    for (size_t k = first; k < used; ++k) {
      size_t from = k * kMirrorEntriesPerBlock;
      size_t count = std::min(kMirrorEntriesPerBlock, b->mirror.size() - from);
      char* dst = job.mirror.get() + (low - 1 - k) * kBlock;
      EncodeMirrorBlock(b->seq, static_cast<uint32_t>(k), &b->mirror[from], count, dst);
      // The region's image too (a recovered region is resumed from it).
      std::memcpy(b->data.get() + r - kBlock * (k + 1), dst, kBlock);
    }
    job.mirror_offset = r - kBlock * low;
    job.mirror_len = blocks * kBlock;
    b->mirror_enqueued = b->mirror.size();
    b->spare_block = used;
  }
  job.durable_to = Position(b->seq, tail ? b->fill : AlignDown(b->fill));
  ++b->pending;
  // A partial last block is written again once more records fill it.
  b->enqueued = std::max(b->enqueued, AlignDown(b->fill));
  if (b->sealed) b->enqueued = end;
  if (take != nullptr) {
    *take = std::move(job);
    return true;
  }
  jobs_.push_back(std::move(job));
  cv_.NotifyAll();
  return true;
}

std::optional<SsdLocation> SsdLog::AppendLocked(uint64_t hash, const RecordMeta& meta,
                                                std::string_view key, std::string_view stored) {
  if (active_ == nullptr) return std::nullopt;  // not recovered yet
  const bool inv = IsInvalidation(meta.type);
  size_t size = RecordSize(key.size(), stored.size());
  // After a failed write, recovery stops trusting the region there: later
  // records go to a fresh region.
  if (active_->failed || active_->sealed || RoomLocked(active_, inv ? 1 : 0) < size) {
    if (!RotateLocked()) {
      c_->dropped_backlog.fetch_add(1, std::memory_order_relaxed);
      return std::nullopt;
    }
    if (RoomLocked(active_, inv ? 1 : 0) < size) return std::nullopt;
  }
  Buffer* b = active_;
  RecordMeta m = meta;
  if (inv) {
    b->mirror.push_back({static_cast<uint32_t>(b->fill), meta.type, meta.exptime, hash});
  }
  m.mirror_count = static_cast<uint32_t>(b->mirror.size());
  EncodeRecord(b->seq, m, key, stored, b->data.get() + b->fill);
  SsdLocation loc{b->region, static_cast<uint32_t>(b->fill), static_cast<uint32_t>(size)};
  b->fill += size;
  c_->record_bytes.fetch_add(size, std::memory_order_relaxed);
  if (inv) {
    // Writes this invalidation covers wait until it is on the device.
    uint64_t pos = Position(b->seq, b->fill);
    std::atomic<uint64_t>& slot =
        meta.type == RecordType::kTombstone ? pending_[hash & (kPendingSlots - 1)] : barrier_pos_;
    if (slot.load(std::memory_order_relaxed) < pos) slot.store(pos, std::memory_order_release);
  }
  if (b->fill - b->enqueued >= options_.write_chunk) EnqueueLocked(b, false);
  return loc;
}

bool SsdLog::Append(const Item& item, uint64_t hash, const std::function<bool()>& still_current) {
  if (IsLarge(item.key_len, item.value_len)) {
    return AppendLarge(item.Key(), item.ValueView(), HeadMeta(item), hash, still_current, 0);
  }
  std::string compressed;
  bool lz4 = options_.compress && CompressLz4(item.ValueView(), &compressed);
  std::string_view stored = lz4 ? std::string_view(compressed) : item.ValueView();
  size_t size = RecordSize(item.key_len, stored.size());
  if (size > options_.region_size - kRegionHeaderSize - kBlock - RecordSize(0, 0)) {
    c_->dropped_too_large.fetch_add(1, std::memory_order_relaxed);
    return false;
  }
  Codec codec = lz4 ? Codec::kLz4 : Codec::kNone;
  RecordMeta meta{RecordType::kItem, codec,         0, item.Flags(), item.exptime,
                  item.Cas(),        item.value_len};
  meta.item_bits = static_cast<uint8_t>(
      (item.stale ? kItemStale : 0) | (item.win_sent ? kItemWinSent : 0) |
      (item.key_binary ? kItemKeyBinary : 0) | (item.fetched ? kItemFetched : 0));
  common::MutexLock lock(&mu_);
  if (still_current && !still_current()) return false;
  auto loc = AppendLocked(hash, meta, item.Key(), stored);
  if (!loc) return false;
  index_.Insert(hash, *loc);
  ForgetLargeLocked(hash);
  c_->demoted_items.fetch_add(1, std::memory_order_relaxed);
  c_->demoted_value_bytes.fetch_add(item.value_len, std::memory_order_relaxed);
  c_->stored_value_bytes.fetch_add(stored.size(), std::memory_order_relaxed);
  c_->demoted_record_bytes.fetch_add(size, std::memory_order_relaxed);
  return true;
}

// ------------------------------------------------------------- large items

uint32_t SsdLog::PieceBytes() const {
  return std::max<uint32_t>(4096, std::min(options_.large_piece_bytes, options_.region_size / 4));
}

std::optional<SsdLocation> SsdLog::AppendWaitLocked(uint64_t hash, const RecordMeta& meta,
                                                    std::string_view key,
                                                    std::string_view stored) {
  const size_t size = RecordSize(key.size(), stored.size());
  for (;;) {
    if (stop_ || active_ == nullptr) return std::nullopt;
    const bool rotate = active_->failed || active_->sealed || RoomLocked(active_, 0) < size;
    Buffer* other = active_ == buffers_[0].get() ? buffers_[1].get() : buffers_[0].get();
    if (!rotate || other->pending == 0) return AppendLocked(hash, meta, key, stored);
    // The other buffer is still being written: wait for the writer.
    EnqueueLocked(active_, /*tail=*/false);
    cv_.NotifyAll();
    cv_.Wait(mu_);
  }
}

RecordMeta SsdLog::HeadMeta(const Item& item) {
  RecordMeta head{RecordType::kLarge, Codec::kNone, 0, item.Flags(), item.exptime, item.Cas(),
                  item.value_len};
  head.item_bits = static_cast<uint8_t>(
      (item.stale ? kItemStale : 0) | (item.win_sent ? kItemWinSent : 0) |
      (item.key_binary ? kItemKeyBinary : 0) | (item.fetched ? kItemFetched : 0));
  return head;
}

bool SsdLog::FitsLarge(size_t key_len, uint64_t value_len) const {
  const uint32_t piece_bytes = PieceBytes();
  const uint64_t count = (value_len + piece_bytes - 1) / piece_bytes;
  // At most half of the log: its first pieces must still be there when its
  // head is appended (uncompressed pieces, a piece's waste per region).
  const uint64_t per_region =
      (options_.region_size - kRegionHeaderSize - 2 * kBlock) / RecordSize(key_len, piece_bytes);
  return per_region != 0 && count <= per_region * (region_count_ / 2);
}

bool SsdLog::IsLarge(size_t key_len, uint64_t value_len) const {
  const size_t max_record =
      options_.region_size - kRegionHeaderSize - 2 * kBlock - RecordSize(0, 0);
  return kRecordHeaderSize + key_len + value_len > max_record;
}

bool SsdLog::AppendLarge(std::string_view key, std::string_view value, const RecordMeta& head,
                         uint64_t hash, const std::function<bool()>& still_current,
                         uint64_t pending_id) {
  const uint32_t piece_bytes = PieceBytes();
  const uint64_t count = (value.size() + piece_bytes - 1) / piece_bytes;
  if (!FitsLarge(key.size(), value.size())) {
    c_->dropped_too_large.fetch_add(1, std::memory_order_relaxed);
    return false;
  }
  {
    common::MutexLock lock(&mu_);
    if (still_current && !still_current()) return false;
  }
  LargeManifest m;
  m.piece_bytes = piece_bytes;
  m.pieces.reserve(count);
  std::string compressed;
  uint64_t record_bytes = 0, stored_bytes = 0;
  for (uint64_t i = 0; i < count; ++i) {
    std::string_view part = value.substr(i * piece_bytes, piece_bytes);
    // Compressed off the lock, one piece at a time.
    const bool lz4 = options_.compress && CompressLz4(part, &compressed);
    std::string_view stored = lz4 ? std::string_view(compressed) : part;
    RecordMeta meta{RecordType::kPiece, lz4 ? Codec::kLz4 : Codec::kNone};
    meta.flags = static_cast<uint32_t>(i);
    meta.cas = head.cas;
    meta.value_len = static_cast<uint32_t>(part.size());
    common::MutexLock lock(&mu_);
    auto loc = AppendWaitLocked(hash, meta, key, stored);
    if (!loc) {
      c_->large_abandoned.fetch_add(1, std::memory_order_relaxed);
      return false;
    }
    m.pieces.push_back(
        {region_seq_[loc->region], loc->region, loc->offset, loc->size, meta.value_len});
    record_bytes += loc->size;
    stored_bytes += stored.size();
  }
  const std::string manifest = EncodeManifest(m);
  common::MutexLock lock(&mu_);
  if (still_current && !still_current()) return false;
  auto loc = AppendWaitLocked(hash, head, key, manifest);
  LargeEntry e;
  bool ok = loc.has_value();
  for (const LargePiece& piece : m.pieces) {
    // A piece whose region was reclaimed (or failed, or reused) meanwhile:
    // the head, if written, names a sequence number the region no longer
    // has, so recovery does not take it either.
    if (region_seq_[piece.region] != piece.seq || unusable_seq_[piece.region] == piece.seq) {
      ok = false;
    }
    if (e.regions.empty() || e.regions.back().first != piece.region) {
      e.regions.emplace_back(piece.region, piece.seq);
    }
  }
  if (!ok) {
    c_->large_abandoned.fetch_add(1, std::memory_order_relaxed);
    return false;
  }
  e.head = *loc;
  e.bytes = record_bytes;
  index_.Insert(hash, *loc);
  // Indexed and no longer pending in one step: a reader finds one or the
  // other.
  if (pending_id != 0) ErasePendingLocked(hash, pending_id);
  ForgetLargeLocked(hash);
  large_bytes_.fetch_add(e.bytes, std::memory_order_relaxed);
  large_[hash] = std::move(e);
  c_->large_demoted.fetch_add(1, std::memory_order_relaxed);
  c_->demoted_items.fetch_add(1, std::memory_order_relaxed);
  c_->demoted_value_bytes.fetch_add(value.size(), std::memory_order_relaxed);
  c_->stored_value_bytes.fetch_add(stored_bytes, std::memory_order_relaxed);
  c_->demoted_record_bytes.fetch_add(record_bytes + loc->size, std::memory_order_relaxed);
  return true;
}

// ------------------------------------------------- large items, in the back

SsdLog::AsyncResult SsdLog::AppendAsync(ItemRef item, uint64_t hash,
                                        const std::function<bool()>& now_current,
                                        std::function<bool()> later_current) {
  if (!FitsLarge(item->key_len, item->value_len)) {
    c_->dropped_too_large.fetch_add(1, std::memory_order_relaxed);
    return AsyncResult::kNoRoom;
  }
  const uint64_t bytes = item->key_len + uint64_t{item->value_len};
  common::MutexLock lock(&mu_);
  if (now_current && !now_current()) return AsyncResult::kSkipped;
  if (stop_ || active_ == nullptr) return AsyncResult::kNoRoom;
  const uint64_t id = ++pending_ids_;
  LargeJob job{item, hash, id, HeadMeta(*item), std::move(later_current)};
  {
    common::MutexLock p(&pending_mu_);
    auto old = pending_large_.find(hash);
    const uint64_t replaced = old != pending_large_.end() ? old->second.bytes : 0;
    if (pending_bytes_ - replaced + bytes > options_.large_pending_bytes) {
      c_->large_refused.fetch_add(1, std::memory_order_relaxed);
      return AsyncResult::kNoRoom;
    }
    if (old == pending_large_.end()) pending_count_.fetch_add(1, std::memory_order_release);
    pending_bytes_ = pending_bytes_ - replaced + bytes;
    pending_large_[hash] = {std::move(item), id, bytes};  // a replaced job finds its id gone
  }
  large_jobs_.push_back(std::move(job));
  large_cv_.NotifyAll();
  return AsyncResult::kQueued;
}

void SsdLog::ErasePendingLocked(uint64_t hash, uint64_t id) {
  ItemRef gone;  // released after the leaf lock
  {
    common::MutexLock p(&pending_mu_);
    auto it = pending_large_.find(hash);
    if (it == pending_large_.end() || (id != 0 && it->second.id != id)) return;
    pending_bytes_ -= it->second.bytes;
    gone = std::move(it->second.item);
    pending_large_.erase(it);
    pending_count_.fetch_sub(1, std::memory_order_release);
  }
  cv_.NotifyAll();  // Sync() waits for the pending items
}

bool SsdLog::PendingIs(uint64_t hash, uint64_t id) const {
  common::MutexLock p(&pending_mu_);
  auto it = pending_large_.find(hash);
  return it != pending_large_.end() && it->second.id == id;
}

void SsdLog::LargeLoop() {
  // Compressing and checksumming a large item is background work. Under
  // SCHED_IDLE any worker that wakes on this CPU preempts this thread at
  // once (at nice 10 a worker could still wait a slice of up to several
  // ms behind it, which is what held small requests' p99 above 2 ms), and
  // the thread still runs whenever the CPU would otherwise idle. Lowering a
  // thread's policy needs no privilege; if it fails, nice 10 is the
  // fallback, and a failure of that leaves the process's priority.
  const auto tid = static_cast<pid_t>(syscall(SYS_gettid));
  sched_param idle{};
  if (sched_setscheduler(tid, SCHED_IDLE, &idle) != 0) {
    setpriority(PRIO_PROCESS, static_cast<id_t>(tid), kLargeThreadNice);
  }
  common::MutexLock lock(&mu_);
  for (;;) {
    while (!stop_large_ && large_jobs_.empty()) large_cv_.Wait(mu_);
    if (large_jobs_.empty()) break;  // stopping, and nothing is left
    LargeJob job = std::move(large_jobs_.front());
    large_jobs_.pop_front();
    if (!PendingIs(job.hash, job.id)) {
      // Deleted or replaced meanwhile. Sync() may be waiting for the queue
      // to empty (the erase that removed its entry woke it while the job
      // was still queued): tell it.
      cv_.NotifyAll();
      continue;
    }
    mu_.Unlock();
    // Asked under the lock right before the head is appended.
    auto current = [&] { return PendingIs(job.hash, job.id) && (!job.current || job.current()); };
    const bool ok = AppendLarge(job.item->Key(), job.item->ValueView(), job.head, job.hash,
                                current, job.id);
    mu_.Lock();
    if (!ok && PendingIs(job.hash, job.id)) {
      c_->large_abandoned.fetch_add(1, std::memory_order_relaxed);
    }
    ErasePendingLocked(job.hash, job.id);  // (done already if it was indexed)
  }
}

void SsdLog::ForgetLargeLocked(uint64_t hash) {
  auto it = large_.find(hash);
  if (it == large_.end() || index_.Lookup(hash) == it->second.head) return;
  large_bytes_.fetch_sub(it->second.bytes, std::memory_order_relaxed);
  large_.erase(it);
}

size_t SsdLog::DropLargeLocked(uint32_t region, uint64_t seq) {
  size_t dropped = 0;
  for (auto it = large_.begin(); it != large_.end();) {
    const LargeEntry& e = it->second;
    const bool current = index_.Lookup(it->first) == e.head;
    bool hit = !current || e.head.region == region;
    for (const auto& [p, s] : e.regions) hit = hit || (p == region && s == seq);
    if (!hit) {
      ++it;
      continue;
    }
    if (current && index_.RemoveIf(it->first, e.head)) ++dropped;
    large_bytes_.fetch_sub(e.bytes, std::memory_order_relaxed);
    it = large_.erase(it);
  }
  return dropped;
}

void SsdLog::DropEntry(std::string_view key, uint64_t hash, const SsdLocation& at) {
  common::MutexLock lock(&mu_);
  if (!index_.RemoveIf(hash, at)) return;
  ForgetLargeLocked(hash);
  // The record may read fine after a restart (a transient error): the
  // tombstone keeps it from coming back over a newer version.
  if (AppendLocked(hash, {RecordType::kTombstone}, key, "")) {
    c_->tombstones.fetch_add(1, std::memory_order_relaxed);
  }
}

bool SsdLog::Remove(std::string_view key, uint64_t hash, const std::function<void()>& first) {
  common::MutexLock lock(&mu_);
  if (first) first();
  uint64_t pending = 0;  // its AppendAsync() entry's id
  if (pending_count_.load(std::memory_order_acquire) > 0) {
    common::MutexLock p(&pending_mu_);
    auto it = pending_large_.find(hash);
    if (it != pending_large_.end() && it->second.item->Key() == key) pending = it->second.id;
  }
  // Queued for the large-append thread: it is not appended now.
  if (pending != 0) ErasePendingLocked(hash, pending);
  if (!index_.Remove(hash)) return pending != 0;
  ForgetLargeLocked(hash);
  // The tombstone keeps the old record from coming back after a restart.
  if (AppendLocked(hash, {RecordType::kTombstone}, key, "")) {
    c_->tombstones.fetch_add(1, std::memory_order_relaxed);
  }
  return true;
}

void SsdLog::Flush() {
  common::MutexLock lock(&mu_);
  index_.Clear();
  large_.clear();
  large_bytes_.store(0, std::memory_order_relaxed);
  std::vector<uint64_t> pending;
  {
    common::MutexLock p(&pending_mu_);
    for (const auto& [hash, entry] : pending_large_) pending.push_back(hash);
  }
  for (uint64_t hash : pending) ErasePendingLocked(hash, 0);
  AppendLocked(0, {RecordType::kFlush}, "", "");
  if (active_ != nullptr) EnqueueLocked(active_, /*tail=*/true);  // durable at once
}

void SsdLog::FlushAt(int64_t at_unix) {
  common::MutexLock lock(&mu_);
  RecordMeta meta{RecordType::kDelayedFlush};
  meta.exptime = static_cast<uint32_t>(std::clamp<int64_t>(at_unix, 0, UINT32_MAX));
  AppendLocked(0, meta, "", "");
  if (active_ != nullptr) EnqueueLocked(active_, /*tail=*/true);
}

bool SsdLog::Contains(uint64_t hash) const {
  if (index_.Lookup(hash).has_value()) return true;
  if (pending_count_.load(std::memory_order_acquire) == 0) return false;
  common::MutexLock p(&pending_mu_);
  return pending_large_.count(hash) != 0;
}

bool SsdLog::StillAt(uint64_t hash, const SsdLocation& at) const {
  if (at != kPendingLocation) return index_.Lookup(hash) == at;
  common::MutexLock p(&pending_mu_);
  return pending_large_.count(hash) != 0;
}

bool SsdLog::HasRoom(uint64_t bytes) const {
  return index_.live_bytes() + large_bytes_.load(std::memory_order_relaxed) + bytes <=
         live_capacity_;
}

// -------------------------------------------------------------- durability

uint64_t SsdLog::AckTicket(uint64_t hash) const {
  uint64_t t = std::max(pending_[hash & (kPendingSlots - 1)].load(std::memory_order_acquire),
                        barrier_pos_.load(std::memory_order_acquire));
  return t > durable_pos_.load(std::memory_order_acquire) ? t : 0;
}

int SsdLog::AddCommitListener(std::function<void()> notify, bool inline_commits) {
  // Two writes in flight at most: one job's records and mirror blocks.
  std::unique_ptr<IoQueue> queue = inline_commits ? device_.NewQueue(kMaxBlockingIo) : nullptr;
  common::MutexLock lock(&mu_);
  listeners_.push_back({std::move(notify), 0, std::move(queue)});
  return static_cast<int>(listeners_.size() - 1);
}

void SsdLog::RemoveCommitListener(int listener) {
  IoQueue* queue = nullptr;
  {
    common::MutexLock lock(&mu_);
    Listener& l = listeners_[static_cast<size_t>(listener)];
    l.notify = nullptr;
    l.wanted = 0;
    queue = l.queue.get();
  }
  // An inline commit in flight completes (and ends writing_) first. Only
  // this thread touches the queue, and the slot keeps it until then.
  if (queue != nullptr) DrainQueue(*queue);
  common::MutexLock lock(&mu_);
  listeners_[static_cast<size_t>(listener)] = {};
}

int SsdLog::commit_event_fd(int listener) const {
  common::MutexLock lock(&mu_);
  const Listener& l = listeners_[static_cast<size_t>(listener)];
  return l.queue ? l.queue->event_fd() : -1;
}

void SsdLog::ReapCommits(int listener) {
  IoQueue* queue = nullptr;
  {
    common::MutexLock lock(&mu_);
    queue = listeners_[static_cast<size_t>(listener)].queue.get();
  }
  if (queue != nullptr) queue->Reap();  // completions take the lock themselves
}

void SsdLog::RequestCommit(uint64_t ticket, int listener) {
  common::MutexLock lock(&mu_);
  Listener& l = listeners_[static_cast<size_t>(listener)];
  if (!l.notify) return;
  if (Durable(ticket)) {
    l.notify();
    return;
  }
  l.wanted = std::max(l.wanted, ticket);
  if (ticket > commit_pos_) {
    commit_pos_ = ticket;
    c_->commits.fetch_add(1, std::memory_order_relaxed);
  }
  if (l.queue && !writing_ && jobs_.empty() && CommitWantedLocked()) {
    // The writer thread is idle: the commit is written from here.
    WriteJob job;
    if (EnqueueLocked(active_, /*tail=*/true, &job)) {
      writing_ = true;
      (new InlineCommit(this, std::move(job)))->Submit(*l.queue);
      return;
    }
  }
  cv_.NotifyAll();
}

void SsdLog::WaitDurableLocked(uint64_t pos) {
  if (Durable(pos)) return;
  commit_pos_ = std::max(commit_pos_, pos);
  cv_.NotifyAll();
  while (!stop_ && !Durable(pos)) cv_.Wait(mu_);
}

// ------------------------------------------------------------------ writer

void SsdLog::Sync() {
  common::MutexLock lock(&mu_);
  while (!stop_ && (!large_jobs_.empty() || pending_count_.load(std::memory_order_acquire) > 0)) {
    cv_.Wait(mu_);
  }
  while (!stop_ && (reclaim_running_ || reclaim_next_ != UINT32_MAX)) cv_.Wait(mu_);
  if (active_ != nullptr) EnqueueLocked(active_, /*tail=*/true);
  while (!(jobs_.empty() && !writing_ && buffers_[0]->pending == 0 && buffers_[1]->pending == 0)) {
    cv_.Wait(mu_);
  }
}

void SsdLog::RunJobLocked() {
  WriteJob job = std::move(jobs_.front());
  jobs_.pop_front();
  writing_ = true;
  mu_.Unlock();
  IoRequest reqs[kMaxBlockingIo];
  const size_t n = JobRequests(options_.region_size, job, reqs);
  BlockingIo(*writer_queue_, reqs, n);
  int64_t results[kMaxBlockingIo] = {};
  for (size_t i = 0; i < n; ++i) results[i] = reqs[i].result;
  mu_.Lock();
  FinishJobLocked(job, results);
}

void SsdLog::FinishJobLocked(WriteJob& job, const int64_t* results) {
  writing_ = false;
  IoRequest reqs[kMaxBlockingIo];
  const size_t n = JobRequests(options_.region_size, job, reqs);
  for (size_t i = 0; i < n; ++i) {
    if (results[i] == static_cast<int64_t>(reqs[i].len)) {
      c_->device_bytes_written.fetch_add(reqs[i].len, std::memory_order_relaxed);
      continue;
    }
    // The records in the failed range are not on the device: they become
    // misses, and the region takes no more records. The cache goes on.
    uint64_t errors = c_->write_errors.fetch_add(1, std::memory_order_relaxed);
    if (i == 0 && job.end > job.begin) {
      index_.RemoveRange(job.buffer->region, static_cast<uint32_t>(job.begin),
                         static_cast<uint32_t>(job.end));
    }
    job.buffer->failed = true;
    // Large items with a piece there are lost.
    unusable_seq_[job.buffer->region] = job.buffer->seq;
    c_->large_dropped.fetch_add(DropLargeLocked(job.buffer->region, job.buffer->seq),
                                std::memory_order_relaxed);
    if ((errors & (errors - 1)) == 0) {  // 1st, 2nd, 4th, 8th ... error
      common::Log(common::LogLevel::kError,
                  "SSD write of %zu bytes at %llu failed: %s (%llu errors); invalidations in "
                  "it may not survive a restart",
                  reqs[i].len, static_cast<unsigned long long>(reqs[i].offset),
                  results[i] < 0 ? std::strerror(static_cast<int>(-results[i])) : "short write",
                  static_cast<unsigned long long>(errors + 1));
    }
  }
  // Replies waiting for this position go on even after an error (the
  // device is failing; the error is counted and logged above).
  if (durable_pos_.load(std::memory_order_relaxed) < job.durable_to) {
    durable_pos_.store(job.durable_to, std::memory_order_release);
  }
  --job.buffer->pending;
  const uint64_t durable = durable_pos_.load(std::memory_order_relaxed);
  for (Listener& l : listeners_) {
    if (l.wanted != 0 && l.wanted <= durable) {
      l.wanted = 0;
      if (l.notify) l.notify();
    }
  }
  cv_.NotifyAll();
}

bool SsdLog::CommitWantedLocked() const {
  return commit_pos_ > durable_pos_.load(std::memory_order_relaxed) && active_ != nullptr &&
         Position(active_->seq, active_->tail_fill) < commit_pos_;
}

bool SsdLog::WriterHasWorkLocked() const {
  // While a listener's inline commit is in flight (writing_), nothing else
  // is written: writes keep their order on the device.
  return stop_ || (!writing_ && (!jobs_.empty() || CommitWantedLocked()));
}

void SsdLog::WriterLoop() {
  auto queue = device_.NewQueue(4);
  writer_queue_ = queue.get();
  common::MutexLock lock(&mu_);
  for (;;) {
    // After 100 ms without a full chunk, the open region's tail is written
    // anyway. (std::condition_variable::wait_for with a predicate, spelled
    // out so the analysis sees the predicate read under the lock.)
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(100);
    bool has_work = true;
    while (!WriterHasWorkLocked()) {
      if (cv_.WaitUntil(mu_, deadline) == std::cv_status::timeout) {
        has_work = WriterHasWorkLocked();
        break;
      }
    }
    if (!has_work) {
      if (!writing_ && active_ != nullptr &&
          (active_->fill > active_->tail_fill || active_->mirror.size() > active_->mirror_enqueued)) {
        EnqueueLocked(active_, /*tail=*/true);
      }
    }
    if (writing_) {  // an inline commit in flight (stop_ woke us)
      while (writing_) cv_.Wait(mu_);
      continue;
    }
    // A group commit: everything buffered so far, in one write.
    if (CommitWantedLocked()) EnqueueLocked(active_, /*tail=*/true);
    if (!jobs_.empty()) {
      RunJobLocked();
      continue;
    }
    if (stop_) break;
  }
  writer_queue_ = nullptr;
}

// ----------------------------------------------------------------- reclaim

void SsdLog::ReclaimerLoop() {
  auto queue = device_.NewQueue(2);
  reclaim_queue_ = queue.get();
  common::MutexLock lock(&mu_);
  for (;;) {
    while (!stop_ && reclaim_next_ == UINT32_MAX) reclaim_cv_.Wait(mu_);
    if (stop_) break;
    uint32_t region = reclaim_next_;
    reclaim_next_ = UINT32_MAX;
    reclaim_running_ = true;
    if (active_ != nullptr && active_->region != region && region_seq_[region] != 0) {
      ReclaimLocked(region, region_seq_[region]);  // (seq 0: never written)
    }
    reclaim_running_ = false;
    cv_.NotifyAll();  // Sync() waits for it
  }
  reclaim_queue_ = nullptr;
}

void SsdLog::ReclaimLocked(uint32_t region, uint64_t seq) {
  // Large items with a piece here die now, before any of it is overwritten
  // (they are never rewritten), and none is indexed with a piece here from
  // now on.
  unusable_seq_[region] = seq;
  c_->large_dropped.fetch_add(DropLargeLocked(region, seq), std::memory_order_relaxed);
  if (index_.region_bytes(region) > 0) {
    uint64_t rewritten_to = 0;
    CompactLocked(region, seq, &rewritten_to);
    if (region_seq_[region] != seq || active_->region == region) return;  // reopened meanwhile
    // The copies must be on the device before the originals are dead.
    if (rewritten_to != 0) WaitDurableLocked(rewritten_to);
    if (stop_ || region_seq_[region] != seq || active_->region == region) return;
  }
  // Dead on the device before its entries go: a restart must not bring back
  // records whose entries were dropped (a key written since, whose new
  // version never reached the SSD, would read its old value).
  reclaiming_.store(region, std::memory_order_release);
  mu_.Unlock();
  bool ok = MarkDead(*reclaim_queue_, region, seq);
  // Only AppendLocked() adds entries, and only to the open region: none can
  // appear here meanwhile. Reads of this region's records become misses a
  // region early.
  size_t dropped = ok ? index_.RemoveRegion(region) : 0;
  reclaiming_.store(UINT32_MAX, std::memory_order_release);
  mu_.Lock();
  if (!ok) {
    c_->write_errors.fetch_add(1, std::memory_order_relaxed);
    return;  // the rotation reclaims it (behind a barrier)
  }
  if (region_seq_[region] == seq) {  // not opened meanwhile
    reclaimed_ = region;
    reclaimed_seq_ = seq;
    reclaimed_entries_ = dropped;
  }
}

bool SsdLog::MarkDead(IoQueue& queue, uint32_t region, uint64_t seq) {
  auto block = AllocateAligned(kBlock);
  if (!block) return false;
  EncodeRegionHeader({seq, options_.region_size, region_count_, RegionState::kDead,
                      static_cast<uint64_t>(clock_.NowSeconds())},
                     block.get());
  return BlockingIo(queue, true, uint64_t{region} * options_.region_size, block.get(), kBlock) ==
         static_cast<int64_t>(kBlock);
}

void SsdLog::SetReclaimHooks(ReclaimHooks hooks) {
  common::MutexLock lock(&mu_);
  while (hooks_busy_) cv_.Wait(mu_);
  hooks_ = std::move(hooks);
}

void SsdLog::CompactLocked(uint32_t region, uint64_t seq, uint64_t* rewritten_to) {
  const size_t r = options_.region_size;
  hooks_busy_ = true;
  const ReclaimHooks& hooks = HooksWhileBusy();  // not replaced while busy
  // Bytes of this region's records that may be kept while the log's live
  // bytes stay within live_capacity_; hot records may also fill a region's
  // rewrite share.
  const uint64_t live = index_.live_bytes() + large_bytes_.load(std::memory_order_relaxed);
  const uint64_t here = index_.region_bytes(region);
  const uint64_t others = live > here ? live - here : 0;
  const uint64_t room_keep = live_capacity_ > others ? live_capacity_ - others : 0;
  const uint64_t hot_room = static_cast<uint64_t>(options_.rewrite_share *
                                                  static_cast<double>(r - kRegionHeaderSize));
  mu_.Unlock();
  struct Candidate {
    uint64_t hash;
    SsdLocation at;
    DecodedRecord rec;
    uint32_t score;
  };
  std::vector<Candidate> live_records;
  auto data = AllocateAligned(r);
  int64_t n = data ? BlockingIo(*reclaim_queue_, false, uint64_t{region} * r, data.get(), r) : -1;
  int64_t now = clock_.NowSeconds();
  size_t off = kRegionHeaderSize;
  DecodedRecord rec;
  while (n > 0 && off + kRecordHeaderSize <= static_cast<size_t>(n)) {
    RecordCheck check = DecodeRecord(seq, data.get() + off, static_cast<size_t>(n) - off, &rec);
    if (check == RecordCheck::kInvalid) break;
    SsdLocation at{region, static_cast<uint32_t>(off), static_cast<uint32_t>(rec.size)};
    off += rec.size;
    if (check != RecordCheck::kValid || rec.meta.type != RecordType::kItem) continue;
    if (Expired(rec.meta.exptime, now)) continue;
    uint64_t hash = common::HashKey(rec.key);
    bool accessed = false;
    if (index_.Lookup(hash, &accessed) != at) continue;  // superseded or deleted
    uint32_t score = hooks.score ? hooks.score(hash, accessed) : 0;
    live_records.push_back({hash, at, rec, score});
  }
  // Hottest first; the cold in log order.
  std::stable_sort(live_records.begin(), live_records.end(),
                   [](const Candidate& a, const Candidate& b) { return a.score > b.score; });
  std::vector<Candidate> keep;
  uint64_t kept = 0;
  for (Candidate& c : live_records) {
    uint64_t limit = c.score > 0 ? std::max(room_keep, hot_room) : room_keep;
    if (kept + c.rec.size <= limit && (!hooks.spend || hooks.spend(c.rec.size, c.score))) {
      kept += c.rec.size;
      keep.push_back(c);
    } else if (hooks.dropped) {
      hooks.dropped(c.hash);
    }
  }
  mu_.Lock();
  hooks_busy_ = false;
  cv_.NotifyAll();
  if (region_seq_[region] != seq) return;  // reopened meanwhile: its records are gone
  for (const Candidate& c : keep) {
    if (active_ == nullptr || active_->failed || active_->sealed ||
        RoomLocked(active_, 0) < c.rec.size) {
      break;  // no room without rotating (into this very region)
    }
    if (index_.Lookup(c.hash) != c.at) continue;  // changed while unlocked
    RecordMeta meta = c.rec.meta;
    auto loc = AppendLocked(c.hash, meta, c.rec.key, c.rec.stored);
    if (!loc) break;
    index_.Insert(c.hash, *loc);
    *rewritten_to = Position(active_->seq, active_->fill);
    c_->records_rewritten.fetch_add(1, std::memory_order_relaxed);
    c_->bytes_rewritten.fetch_add(c.rec.size, std::memory_order_relaxed);
  }
}

// ------------------------------------------------------------------- reads

void SsdLog::Read(std::string_view key, uint64_t hash, IoQueue& queue, SsdReadDone* done) {
  c_->reads.fetch_add(1, std::memory_order_relaxed);
  common::ReleasableMutexLock lock(&mu_);
  ItemRef pending;
  if (pending_count_.load(std::memory_order_acquire) > 0) {
    common::MutexLock p(&pending_mu_);
    auto it = pending_large_.find(hash);
    if (it != pending_large_.end() && it->second.item->Key() == key) pending = it->second.item;
  }
  if (pending) {
    // A large item still being appended: its value is in memory.
    ItemRef item = std::move(pending);
    lock.Unlock();
    if (item->exptime != 0 && static_cast<int64_t>(item->exptime) <= clock_.NowSeconds()) {
      done->OnSsdReadAt({}, kPendingLocation);  // expired meanwhile: a miss
      return;
    }
    c_->hits.fetch_add(1, std::memory_order_relaxed);
    done->OnSsdReadAt(std::move(item), kPendingLocation);
    return;
  }
  auto loc = index_.Lookup(hash);
  if (!loc) {
    lock.Unlock();
    done->OnSsdRead({});
    return;
  }
  for (auto& b : buffers_) {
    bool in_ram = (b.get() == active_ || b->pending > 0) && b->region == loc->region &&
                  b->seq == region_seq_[loc->region];
    if (!in_ram) continue;
    bool corrupt = false, large = false;
    RecordMeta meta;
    LargeManifest manifest;
    ItemRef item = DecodeItem(b->seq, b->data.get() + loc->offset, loc->size, key, &corrupt,
                              &large, &meta, &manifest);
    if (large) {
      lock.Unlock();
      (new LargeReadOp(this, std::string(key), hash, *loc, meta, std::move(manifest), queue, done))
          ->Start();
      return;
    }
    if (item) index_.MarkAccessed(hash, *loc);
    lock.Unlock();
    if (item) c_->hits.fetch_add(1, std::memory_order_relaxed);
    done->OnSsdReadAt(std::move(item), *loc);
    return;
  }
  uint64_t seq = region_seq_[loc->region];
  lock.Unlock();
  (new ReadOp(this, key, hash, *loc, seq, done))->Issue(queue);
}

ItemRef SsdLog::DecodeItem(uint64_t seq, const char* rec, size_t avail, std::string_view key,
                           bool* corrupt, bool* large, RecordMeta* large_meta,
                           LargeManifest* manifest) {
  DecodedRecord d;
  if (DecodeRecord(seq, rec, avail, &d) != RecordCheck::kValid) {
    *corrupt = true;
    return {};
  }
  const bool is_item = d.meta.type == RecordType::kItem || d.meta.type == RecordType::kLarge;
  if (!is_item || d.key != key) {
    *corrupt = is_item;  // another key: a tag collision or damage
    return {};
  }
  if (Expired(d.meta.exptime, clock_.NowSeconds())) return {};
  if (d.meta.cas > kMaxCas) return {};  // not a unique this version issues
  if (d.meta.type == RecordType::kLarge) {
    if (large == nullptr || !DecodeManifest(d.stored, d.meta.value_len, manifest)) {
      *corrupt = large != nullptr;
      return {};
    }
    *large = true;
    *large_meta = d.meta;
    return {};
  }
  Item* item = Item::Create(key, d.meta.flags, d.meta.exptime, d.meta.value_len);
  if (item == nullptr) return {};
  ItemRef ref = ItemRef::Adopt(item);
  if (d.meta.codec == Codec::kLz4) {
    if (!DecompressLz4(d.stored, item->MutableValue(), d.meta.value_len)) {
      *corrupt = true;
      return {};
    }
  } else {
    std::memcpy(item->MutableValue(), d.stored.data(), d.stored.size());
  }
  item->SetCas(d.meta.cas);
  item->stale = (d.meta.item_bits & kItemStale) != 0 ? 1 : 0;
  item->win_sent = (d.meta.item_bits & kItemWinSent) != 0 ? 1 : 0;
  item->key_binary = (d.meta.item_bits & kItemKeyBinary) != 0 ? 1 : 0;
  item->fetched = (d.meta.item_bits & kItemFetched) != 0 ? 1 : 0;
  return ref;
}

SsdLogStats SsdLog::Stats() const {
  SsdLogStats s;
  auto get = [](const std::atomic<uint64_t>& a) { return a.load(std::memory_order_relaxed); };
  s.regions = region_count_;
  s.records_rewritten = get(c_->records_rewritten);
  s.bytes_rewritten = get(c_->bytes_rewritten);
  s.index_entries = index_.size();
  s.index_bytes = index_.memory_bytes();
  s.live_bytes = index_.live_bytes() + large_bytes_.load(std::memory_order_relaxed);
  s.large_bytes = large_bytes_.load(std::memory_order_relaxed);
  {
    common::MutexLock lock(&mu_);
    s.large_items = large_.size();
  }
  {
    common::MutexLock p(&pending_mu_);
    s.large_pending_items = pending_large_.size();
    s.large_pending_bytes = pending_bytes_;
  }
  s.large_refused = get(c_->large_refused);
  s.large_reads_waited = get(c_->large_reads_waited);
  s.large_demoted = get(c_->large_demoted);
  s.large_abandoned = get(c_->large_abandoned);
  s.large_dropped = get(c_->large_dropped);
  s.large_piece_reads = get(c_->large_piece_reads);
  s.capacity_bytes = live_capacity_;
  s.demoted_items = get(c_->demoted_items);
  s.demoted_value_bytes = get(c_->demoted_value_bytes);
  s.stored_value_bytes = get(c_->stored_value_bytes);
  s.demoted_record_bytes = get(c_->demoted_record_bytes);
  s.record_bytes = get(c_->record_bytes);
  s.device_bytes_written = get(c_->device_bytes_written);
  s.tombstones = get(c_->tombstones);
  s.dropped_too_large = get(c_->dropped_too_large);
  s.dropped_backlog = get(c_->dropped_backlog);
  s.write_errors = get(c_->write_errors);
  s.read_errors = get(c_->read_errors);
  s.corrupt_records = get(c_->corrupt_records);
  s.stale_reads = get(c_->stale_reads);
  s.reads = get(c_->reads);
  s.hits = get(c_->hits);
  s.regions_reclaimed = get(c_->regions_reclaimed);
  s.entries_reclaimed = get(c_->entries_reclaimed);
  s.device_bytes_read = get(c_->device_bytes_read);
  s.reads_in_flight = get(c_->reads_in_flight);
  s.commits = get(c_->commits);
  return s;
}

}  // namespace strata::tiers
