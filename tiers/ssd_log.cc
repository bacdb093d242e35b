#include "tiers/ssd_log.h"

#include <algorithm>
#include <chrono>
#include <cstring>

#include "common/hash.h"
#include "common/log.h"
#include "tiers/ssd_format.h"

namespace strata::tiers {
namespace {

constexpr size_t kBlock = 4096;
size_t AlignDown(size_t v) { return v / kBlock * kBlock; }
size_t AlignUp(size_t v) { return (v + kBlock - 1) / kBlock * kBlock; }

// One blocking I/O on a private queue (startup and the writer thread).
int64_t BlockingIo(IoQueue& q, bool write, uint64_t offset, char* buf, size_t len) {
  struct Done : IoCompletion {
    int64_t result = 0;
    void OnIoComplete(int64_t r) override { result = r; }
  } done;
  if (write) {
    q.Write(offset, buf, len, &done);
  } else {
    q.Read(offset, buf, len, &done);
  }
  DrainQueue(q);
  return done.result;
}

}  // namespace

struct SsdLog::Counters {
  std::atomic<uint64_t> demoted_items{0}, demoted_value_bytes{0}, stored_value_bytes{0},
      record_bytes{0}, device_bytes_written{0}, tombstones{0}, dropped_too_large{0},
      dropped_backlog{0}, write_errors{0}, read_errors{0}, corrupt_records{0}, stale_reads{0},
      reads{0}, hits{0}, regions_reclaimed{0}, entries_reclaimed{0}, device_bytes_read{0},
      reads_in_flight{0}, records_rewritten{0}, bytes_rewritten{0};
};

struct SsdLog::Buffer {
  std::unique_ptr<char, AlignedFree> data;
  uint32_t region = UINT32_MAX;
  uint64_t seq = 0;
  size_t fill = 0;      // bytes used: header and records
  size_t enqueued = 0;  // bytes handed to the writer (block aligned)
  int pending = 0;      // write jobs not completed
  bool failed = false;  // a write failed: no more appends to this region
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
    buf_ = AllocateAligned(len_);
  }
  void Issue(IoQueue& queue) {
    log_->c_->reads_in_flight.fetch_add(1, std::memory_order_relaxed);
    queue.Read(dev_offset_, buf_.get(), len_, this);
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
      bool corrupt = false;
      item = log_->DecodeItem(seq_, buf_.get() + (loc_.offset - begin_), loc_.size, key_, &corrupt);
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
  size_t begin_ = 0;
  size_t len_ = 0;
  uint64_t dev_offset_ = 0;
  std::unique_ptr<char, AlignedFree> buf_;
};

SsdLog::SsdLog(const SsdLogOptions& options, BlockDevice& device, const common::Clock& clock)
    : options_(options),
      device_(device),
      clock_(clock),
      region_count_(static_cast<uint32_t>(
          std::min<uint64_t>(device.size() / options.region_size, kMaxIndexedRegions))),
      c_(std::make_unique<Counters>()) {
  region_seq_.assign(region_count_, 0);
  for (auto& b : buffers_) {
    b = std::make_unique<Buffer>();
    b->data = AllocateAligned(options_.region_size);
  }
  writer_ = std::thread([this] { WriterLoop(); });
}

SsdLog::~SsdLog() {
  Sync();
  {
    std::lock_guard lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  writer_.join();
}

common::Status SsdLog::Recover() {
  if (region_count_ < 4) {
    return common::Status::InvalidArgument("the SSD tier needs at least 4 regions");
  }
  auto queue = device_.NewQueue(4);
  auto block = AllocateAligned(kBlock);
  std::vector<std::pair<uint64_t, uint32_t>> found;  // (seq, region)
  for (uint32_t r = 0; r < region_count_; ++r) {
    int64_t n = BlockingIo(*queue, false, uint64_t{r} * options_.region_size, block.get(), kBlock);
    RegionHeader h;
    if (n == static_cast<int64_t>(kBlock) && DecodeRegionHeader(block.get(), &h) &&
        h.region_size == options_.region_size && h.seq != 0) {
      found.emplace_back(h.seq, r);
    }
  }
  std::sort(found.begin(), found.end());
  index_.Clear();
  int64_t now = clock_.NowSeconds();
  auto region = AllocateAligned(options_.region_size);
  uint32_t last_region = region_count_ - 1;
  size_t last_end = 0;  // where the newest region's valid records end (0: unusable)
  for (auto [seq, r] : found) {
    int64_t n = BlockingIo(*queue, false, uint64_t{r} * options_.region_size, region.get(),
                           options_.region_size);
    if (n < static_cast<int64_t>(kBlock)) {
      c_->read_errors.fetch_add(1, std::memory_order_relaxed);
      continue;
    }
    region_seq_[r] = seq;
    next_seq_ = seq + 1;
    last_region = r;
    last_end = 0;
    size_t off = kRegionHeaderSize;
    DecodedRecord rec;
    while (off < static_cast<size_t>(n) &&
           DecodeRecord(seq, region.get() + off, static_cast<size_t>(n) - off, &rec)) {
      uint64_t hash = common::HashKey(rec.key);
      switch (rec.meta.type) {
        case RecordType::kItem:
          max_recovered_cas_ = std::max(max_recovered_cas_, rec.meta.cas);
          if (rec.meta.exptime != 0 && static_cast<int64_t>(rec.meta.exptime) <= now) {
            index_.Remove(hash);
          } else {
            // Marked read: whether it was is not on the device, and a record
            // the sketch (restored at a warm restart) still calls warm is
            // worth one more pass through the log.
            index_.Insert(hash, {r, static_cast<uint32_t>(off), static_cast<uint32_t>(rec.size)},
                          /*accessed=*/true);
          }
          break;
        case RecordType::kTombstone:
          index_.Remove(hash);
          break;
        case RecordType::kFlush:
          index_.Clear();
          break;
      }
      off += rec.size;
    }
    if (n == static_cast<int64_t>(options_.region_size)) last_end = off;
  }
  std::lock_guard lock(mu_);
  Buffer* b = buffers_[0].get();
  if (last_end > 0 && last_end + kBlock < options_.region_size && !found.empty()) {
    // The newest region goes on where its records end, so a restart does
    // not leave the rest of it unused. Its tail is zeroed on the device
    // first: nothing the scan stopped at (a torn write) can come back
    // after the records appended from now on.
    std::memcpy(b->data.get(), region.get(), last_end);
    std::memset(b->data.get() + last_end, 0, options_.region_size - last_end);
    size_t from = AlignDown(last_end);
    int64_t w = BlockingIo(*queue, true, uint64_t{last_region} * options_.region_size + from,
                           b->data.get() + from, options_.region_size - from);
    if (w == static_cast<int64_t>(options_.region_size - from)) {
      b->region = last_region;
      b->seq = region_seq_[last_region];
      b->fill = last_end;
      b->enqueued = from;
      b->failed = false;
      active_ = b;
      reclaim_next_ = (last_region + 1) % region_count_;
      cv_.notify_all();
      return common::Status::Ok();
    }
    c_->write_errors.fetch_add(1, std::memory_order_relaxed);
  }
  OpenRegionLocked(b, (last_region + 1) % region_count_);
  active_ = b;
  return common::Status::Ok();
}

void SsdLog::OpenRegionLocked(Buffer* b, uint32_t region) {
  // The writer thread usually dropped this region's index entries already,
  // off the lock (ReclaimAhead); else it is done here.
  while (reclaiming_.load(std::memory_order_acquire) == region) std::this_thread::yield();
  size_t dropped = 0;
  if (reclaimed_ == region && reclaimed_seq_ == region_seq_[region]) {
    dropped = reclaimed_entries_;
  } else {
    dropped = index_.RemoveRegion(region);
  }
  reclaimed_ = UINT32_MAX;
  if (region_seq_[region] != 0) {
    c_->regions_reclaimed.fetch_add(1, std::memory_order_relaxed);
    c_->entries_reclaimed.fetch_add(dropped, std::memory_order_relaxed);
  }
  region_seq_[region] = next_seq_++;
  b->region = region;
  b->seq = region_seq_[region];
  // Only the header is cleared: the padding after the last record is zeroed
  // when a tail is written (EnqueueLocked).
  std::memset(b->data.get(), 0, kRegionHeaderSize);
  EncodeRegionHeader({b->seq, options_.region_size, static_cast<uint64_t>(clock_.NowSeconds())},
                     b->data.get());
  b->fill = kRegionHeaderSize;
  b->enqueued = 0;
  b->failed = false;
  // The next region to open is the oldest: its entries go ahead of time.
  reclaim_next_ = (region + 1) % region_count_;
  cv_.notify_all();
}

bool SsdLog::ReclaimAheadLocked(std::unique_lock<std::mutex>& lock) {
  uint32_t region = reclaim_next_;
  reclaim_next_ = UINT32_MAX;
  if (region == UINT32_MAX || active_ == nullptr || active_->region == region) return false;
  uint64_t seq = region_seq_[region];
  if (rewrite_filter_ && seq != 0) {
    RewriteHotLocked(lock, region, seq);
    // The region may have been opened while the lock was released.
    if (region_seq_[region] != seq || active_->region == region) return true;
  }
  if (seq != 0) {
    // The region's header is erased on the device before its entries go:
    // a restart must not bring back records whose entries were dropped
    // (a key written since, whose new version never reached the SSD, would
    // read its old value). If the erase fails, the rotation reclaims it.
    lock.unlock();
    auto zero = AllocateAligned(kBlock);
    int64_t w = -1;
    if (zero) {
      std::memset(zero.get(), 0, kBlock);
      auto queue = device_.NewQueue(1);
      w = BlockingIo(*queue, true, uint64_t{region} * options_.region_size, zero.get(), kBlock);
    }
    lock.lock();
    if (w != static_cast<int64_t>(kBlock)) {
      c_->write_errors.fetch_add(1, std::memory_order_relaxed);
      return true;
    }
    if (region_seq_[region] != seq || active_->region == region) return true;
  }
  reclaiming_.store(region, std::memory_order_release);
  lock.unlock();
  // Only AppendLocked() adds entries, and only to the open region: none can
  // appear here meanwhile. Reads of this region's records become misses a
  // region early.
  size_t dropped = index_.RemoveRegion(region);
  reclaiming_.store(UINT32_MAX, std::memory_order_release);
  lock.lock();
  if (region_seq_[region] == seq) {  // not opened meanwhile
    reclaimed_ = region;
    reclaimed_seq_ = seq;
    reclaimed_entries_ = dropped;
  }
  return true;
}

bool SsdLog::RotateLocked() {
  Buffer* other = active_ == buffers_[0].get() ? buffers_[1].get() : buffers_[0].get();
  if (other->pending > 0) return false;
  EnqueueLocked(active_, /*tail=*/true);
  OpenRegionLocked(other, (active_->region + 1) % region_count_);
  active_ = other;
  // The new header goes to the device at once: the region's old records
  // (their entries are gone) must not come back at a restart.
  EnqueueLocked(active_, /*tail=*/true);
  cv_.notify_all();
  return true;
}

void SsdLog::SetRewriteFilter(
    std::function<uint32_t(uint64_t hash, uint64_t bytes, bool accessed)> score) {
  std::unique_lock lock(mu_);
  cv_.wait(lock, [this] { return !rewrite_busy_; });
  rewrite_filter_ = std::move(score);
}

void SsdLog::RewriteHotLocked(std::unique_lock<std::mutex>& lock, uint32_t region, uint64_t seq) {
  if (!rewrite_filter_) return;
  rewrite_busy_ = true;
  const auto& filter = rewrite_filter_;  // not replaced while busy
  lock.unlock();
  struct Candidate {
    uint64_t hash;
    SsdLocation at;
    DecodedRecord rec;
    uint32_t score;
  };
  std::vector<Candidate> keep;
  auto data = AllocateAligned(options_.region_size);
  int64_t n = -1;
  if (data) {
    auto queue = device_.NewQueue(1);
    n = BlockingIo(*queue, false, uint64_t{region} * options_.region_size, data.get(),
                   options_.region_size);
  }
  int64_t now = clock_.NowSeconds();
  size_t off = kRegionHeaderSize;
  DecodedRecord rec;
  while (n > 0 && off < static_cast<size_t>(n) &&
         DecodeRecord(seq, data.get() + off, static_cast<size_t>(n) - off, &rec)) {
    SsdLocation at{region, static_cast<uint32_t>(off), static_cast<uint32_t>(rec.size)};
    off += rec.size;
    if (rec.meta.type != RecordType::kItem) continue;
    if (rec.meta.exptime != 0 && static_cast<int64_t>(rec.meta.exptime) <= now) continue;
    uint64_t hash = common::HashKey(rec.key);
    bool accessed = false;
    if (index_.Lookup(hash, &accessed) != at) continue;  // superseded or deleted
    uint32_t score = filter(hash, rec.size, accessed);
    if (score == 0) continue;
    keep.push_back({hash, at, rec, score});
  }
  // Hottest first, within the share of a region.
  std::stable_sort(keep.begin(), keep.end(),
                   [](const Candidate& a, const Candidate& b) { return a.score > b.score; });
  size_t room = static_cast<size_t>(options_.rewrite_share * options_.region_size);
  size_t taken = 0, bytes = 0;
  while (taken < keep.size() && bytes + keep[taken].rec.size <= room) bytes += keep[taken++].rec.size;
  keep.resize(taken);
  lock.lock();
  rewrite_busy_ = false;
  cv_.notify_all();
  if (region_seq_[region] != seq) return;  // reopened meanwhile: its records are gone
  for (const Candidate& c : keep) {
    if (active_ == nullptr || active_->failed ||
        active_->fill + c.rec.size > options_.region_size) {
      break;  // no room without rotating (into this very region)
    }
    if (index_.Lookup(c.hash) != c.at) continue;  // changed while unlocked
    auto loc = AppendLocked(c.hash, c.rec.meta, c.rec.key, c.rec.stored);
    if (!loc) break;
    index_.Insert(c.hash, *loc);
    c_->records_rewritten.fetch_add(1, std::memory_order_relaxed);
    c_->bytes_rewritten.fetch_add(c.rec.size, std::memory_order_relaxed);
  }
}

void SsdLog::EnqueueLocked(Buffer* b, bool tail) {
  size_t end = tail ? AlignUp(b->fill) : AlignDown(b->fill);
  if (end <= b->enqueued) return;
  // Zero padding after the last record: a scan stops there.
  if (tail) std::memset(b->data.get() + b->fill, 0, end - b->fill);
  jobs_.push_back({b, b->enqueued, end});
  ++b->pending;
  // A partial last block is written again once more records fill it.
  b->enqueued = AlignDown(b->fill);
  cv_.notify_all();
}

std::optional<SsdLocation> SsdLog::AppendLocked(uint64_t, const RecordMeta& meta,
                                                std::string_view key, std::string_view stored) {
  if (active_ == nullptr) return std::nullopt;  // not recovered yet
  size_t size = RecordSize(key.size(), stored.size());
  // After a failed write, recovery stops scanning the region there: later
  // records go to a fresh region.
  bool rotate = active_->failed || active_->fill + size > options_.region_size;
  if (rotate && !RotateLocked()) {
    c_->dropped_backlog.fetch_add(1, std::memory_order_relaxed);
    return std::nullopt;
  }
  EncodeRecord(active_->seq, meta, key, stored, active_->data.get() + active_->fill);
  SsdLocation loc{active_->region, static_cast<uint32_t>(active_->fill), static_cast<uint32_t>(size)};
  active_->fill += size;
  c_->record_bytes.fetch_add(size, std::memory_order_relaxed);
  if (active_->fill - active_->enqueued >= options_.write_chunk) EnqueueLocked(active_, false);
  return loc;
}

bool SsdLog::Append(const Item& item, uint64_t hash, const std::function<bool()>& still_current) {
  std::string compressed;
  bool lz4 = options_.compress && CompressLz4(item.ValueView(), &compressed);
  std::string_view stored = lz4 ? std::string_view(compressed) : item.ValueView();
  if (RecordSize(item.key_len, stored.size()) > options_.region_size - kRegionHeaderSize) {
    c_->dropped_too_large.fetch_add(1, std::memory_order_relaxed);
    return false;
  }
  Codec codec = lz4 ? Codec::kLz4 : Codec::kNone;
  RecordMeta meta{RecordType::kItem, codec, item.Flags(), item.exptime, item.Cas(), item.value_len};
  std::lock_guard lock(mu_);
  if (still_current && !still_current()) return false;
  auto loc = AppendLocked(hash, meta, item.Key(), stored);
  if (!loc) return false;
  index_.Insert(hash, *loc);
  c_->demoted_items.fetch_add(1, std::memory_order_relaxed);
  c_->demoted_value_bytes.fetch_add(item.value_len, std::memory_order_relaxed);
  c_->stored_value_bytes.fetch_add(stored.size(), std::memory_order_relaxed);
  return true;
}

void SsdLog::DropEntry(std::string_view key, uint64_t hash, const SsdLocation& at) {
  std::lock_guard lock(mu_);
  if (!index_.RemoveIf(hash, at)) return;
  // The record may read fine after a restart (a transient error): the
  // tombstone keeps it from coming back over a newer version.
  if (AppendLocked(hash, {RecordType::kTombstone, Codec::kNone, 0, 0, 0, 0}, key, "")) {
    c_->tombstones.fetch_add(1, std::memory_order_relaxed);
  }
}

bool SsdLog::Remove(std::string_view key, uint64_t hash, const std::function<void()>& first) {
  std::lock_guard lock(mu_);
  if (first) first();
  if (!index_.Remove(hash)) return false;
  // The tombstone keeps the old record from coming back after a restart.
  if (AppendLocked(hash, {RecordType::kTombstone, Codec::kNone, 0, 0, 0, 0}, key, "")) {
    c_->tombstones.fetch_add(1, std::memory_order_relaxed);
  }
  return true;
}

void SsdLog::Flush() {
  std::lock_guard lock(mu_);
  index_.Clear();
  AppendLocked(0, {RecordType::kFlush, Codec::kNone, 0, 0, 0, 0}, "", "");
  if (active_ != nullptr) EnqueueLocked(active_, /*tail=*/true);  // durable at once
}

void SsdLog::Read(std::string_view key, uint64_t hash, IoQueue& queue, SsdReadDone* done) {
  c_->reads.fetch_add(1, std::memory_order_relaxed);
  std::unique_lock lock(mu_);
  auto loc = index_.Lookup(hash);
  if (!loc) {
    lock.unlock();
    done->OnSsdRead({});
    return;
  }
  for (auto& b : buffers_) {
    bool in_ram = (b.get() == active_ || b->pending > 0) && b->region == loc->region &&
                  b->seq == region_seq_[loc->region];
    if (!in_ram) continue;
    bool corrupt = false;
    ItemRef item = DecodeItem(b->seq, b->data.get() + loc->offset, loc->size, key, &corrupt);
    if (item) index_.MarkAccessed(hash, *loc);
    lock.unlock();
    if (item) c_->hits.fetch_add(1, std::memory_order_relaxed);
    done->OnSsdReadAt(std::move(item), *loc);
    return;
  }
  uint64_t seq = region_seq_[loc->region];
  lock.unlock();
  (new ReadOp(this, key, hash, *loc, seq, done))->Issue(queue);
}

ItemRef SsdLog::DecodeItem(uint64_t seq, const char* rec, size_t avail, std::string_view key,
                           bool* corrupt) {
  DecodedRecord d;
  if (!DecodeRecord(seq, rec, avail, &d)) {
    *corrupt = true;
    return {};
  }
  if (d.meta.type != RecordType::kItem || d.key != key) {
    *corrupt = d.meta.type == RecordType::kItem;  // another key: a tag collision or damage
    return {};
  }
  if (d.meta.exptime != 0 && static_cast<int64_t>(d.meta.exptime) <= clock_.NowSeconds()) {
    return {};
  }
  if (d.meta.cas > kMaxCas) return {};  // not a unique this version issues
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
  return ref;
}

void SsdLog::Sync() {
  std::unique_lock lock(mu_);
  if (active_ != nullptr) EnqueueLocked(active_, /*tail=*/true);
  cv_.wait(lock, [this] {
    return jobs_.empty() && buffers_[0]->pending == 0 && buffers_[1]->pending == 0;
  });
}

void SsdLog::WriterLoop() {
  auto queue = device_.NewQueue(4);
  for (;;) {
    WriteJob job;
    {
      std::unique_lock lock(mu_);
      // After 100 ms without a full chunk, the open region's tail is
      // written anyway: tombstones and flush markers must not wait for
      // more records to become durable.
      if (!cv_.wait_for(lock, std::chrono::milliseconds(100), [this] {
            return stop_ || !jobs_.empty() || reclaim_next_ != UINT32_MAX;
          })) {
        if (active_ != nullptr && active_->fill > active_->enqueued) {
          EnqueueLocked(active_, /*tail=*/true);
        }
        if (jobs_.empty()) continue;
      }
      // Reclaim ahead (with its hot rewrite, which reads the region back)
      // only when no write is queued: demotions never wait for it. If the
      // log reaches the region first, the rotation reclaims it.
      if (jobs_.empty() && reclaim_next_ != UINT32_MAX && !stop_ && ReclaimAheadLocked(lock)) {
        continue;
      }
      if (jobs_.empty()) {
        if (stop_) return;
        continue;
      }
      job = jobs_.front();
      jobs_.pop_front();
    }
    size_t len = job.end - job.begin;
    uint64_t offset = uint64_t{job.buffer->region} * options_.region_size + job.begin;
    int64_t n = BlockingIo(*queue, true, offset, job.buffer->data.get() + job.begin, len);
    {
      std::lock_guard lock(mu_);
      if (n == static_cast<int64_t>(len)) {
        c_->device_bytes_written.fetch_add(len, std::memory_order_relaxed);
      } else {
        // The records in the failed range are not on the device: they
        // become misses, and the region takes no more records. The cache
        // goes on.
        uint64_t errors = c_->write_errors.fetch_add(1, std::memory_order_relaxed);
        index_.RemoveRange(job.buffer->region, static_cast<uint32_t>(job.begin),
                           static_cast<uint32_t>(job.end));
        job.buffer->failed = true;
        if ((errors & (errors - 1)) == 0) {  // 1st, 2nd, 4th, 8th ... error
          common::Log(common::LogLevel::kError, "SSD write of %zu bytes at %llu failed: %s (%llu errors)",
                      len, static_cast<unsigned long long>(offset),
                      n < 0 ? std::strerror(static_cast<int>(-n)) : "short write",
                      static_cast<unsigned long long>(errors + 1));
        }
      }
      --job.buffer->pending;
    }
    cv_.notify_all();
  }
}

SsdLogStats SsdLog::Stats() const {
  SsdLogStats s;
  auto get = [](const std::atomic<uint64_t>& a) { return a.load(std::memory_order_relaxed); };
  s.regions = region_count_;
  s.records_rewritten = get(c_->records_rewritten);
  s.bytes_rewritten = get(c_->bytes_rewritten);
  s.index_entries = index_.size();
  s.index_bytes = index_.memory_bytes();
  s.demoted_items = get(c_->demoted_items);
  s.demoted_value_bytes = get(c_->demoted_value_bytes);
  s.stored_value_bytes = get(c_->stored_value_bytes);
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
  return s;
}

}  // namespace strata::tiers
