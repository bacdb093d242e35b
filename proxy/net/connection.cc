#include "proxy/net/connection.h"

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "common/log.h"
#include "proxy/net/worker.h"
#include "proxy/protocol/base64.h"

namespace strata::proxy {
namespace {

// A receive gets at least this much room: the unread bytes move to the
// buffer's front, and if that is not enough the buffer doubles.
constexpr size_t kMinReadSpace = 512;
// Keys a waiting connection may promote from SSD, or fetch from the
// upstream pool, ahead of the commands that ask for them
// (Connection::ReadAhead).
constexpr size_t kReadAheadKeys = 64;
// Once this much of a data block is still to come and the read buffer is
// drained, the socket reads it straight into the item instead of through
// the buffer (about the buffer's size: fewer receives, no second copy).
constexpr uint64_t kDirectReadThreshold = 4 * 1024;
// Most bytes one receive into an item, or one send, moves. The kernel copies
// them (and faults in a fresh item's pages) on the worker's loop: unbounded,
// one receive of a 64 MiB value took up to the socket's 32 MiB buffer at
// once, over 10 ms in which no other connection was served. 2 MiB is about
// 0.2-0.5 ms of copying; 512 KiB cost large replies from RAM 10-15 % more
// CPU per byte (bench/large_values.py) for no p99 gain that showed.
constexpr size_t kMaxBytesPerOp = size_t{2} << 20;

// What a storage command will hold (its item) while its data block
// arrives, for the connection memory gate; at most half the cap, so a
// store larger than the cap still runs when the cap is half free.
uint64_t StoreBytes(const Command& cmd, uint64_t limit) {
  switch (cmd.type) {
    case CommandType::kSet:
    case CommandType::kAdd:
    case CommandType::kReplace:
    case CommandType::kAppend:
    case CommandType::kPrepend:
    case CommandType::kCas:
      return std::min<uint64_t>(tiers::Item::SizeFor(cmd.key.size(), cmd.flags, cmd.value_len),
                                limit / 2);
    case CommandType::kMetaSet:
      return std::min<uint64_t>(
          tiers::Item::SizeFor(cmd.key.size(), cmd.meta.client_flags, cmd.value_len), limit / 2);
    default:
      return 0;
  }
}

std::string SockAddrString(const struct sockaddr_storage& ss) {
  char host[64] = "";
  int port = 0;
  if (ss.ss_family == AF_INET) {
    auto* sin = reinterpret_cast<const struct sockaddr_in*>(&ss);
    uv_ip4_name(sin, host, sizeof(host));
    port = ntohs(sin->sin_port);
    return "tcp:" + std::string(host) + ":" + std::to_string(port);
  }
  if (ss.ss_family == AF_INET6) {
    auto* sin6 = reinterpret_cast<const struct sockaddr_in6*>(&ss);
    uv_ip6_name(sin6, host, sizeof(host));
    port = ntohs(sin6->sin6_port);
    return "tcp6:[" + std::string(host) + "]:" + std::to_string(port);
  }
  return "unknown";
}

// Get-family commands look keys up: their latency's tier label says where
// they were found (ram, ssd or miss); every other command's is none.
bool LooksUpKeys(CommandType type) {
  return type == CommandType::kGet || type == CommandType::kGets || type == CommandType::kGat ||
         type == CommandType::kGats;
}

}  // namespace

Connection::Connection(Worker& worker, Kind kind, int fd)
    : worker_(worker),
      ctx_(worker.ctx()),
      dispatcher_(worker.dispatcher()),
      stats_(worker.stats()),
      kind_(kind),
      fd_(fd),
      measure_latency_(ctx_.options.measure_latency) {
  // Cannot fail for a socket on Linux (it only sets O_NONBLOCK, already set).
  uv_poll_init(worker_.loop(), &poll_, fd_);
  handle()->data = this;
  out_.ShareSpareBlocks(worker_.text_blocks());
  async_.waiter = this;
  async_.io = worker_.io();
  async_.near = worker_.near_cache();
  if (async_.near != nullptr) {
    prefetches_ = std::make_shared<Prefetches>();
    async_.prefetches = prefetches_.get();
  }
}

void Connection::Start(const std::string& listen_addr) {
  if (kind_ == Kind::kTcp) {
    int one = 1;
    setsockopt(fd_, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    struct sockaddr_storage peer;
    socklen_t len = sizeof(peer);
    if (getpeername(fd_, reinterpret_cast<struct sockaddr*>(&peer), &len) == 0) {
      info_.addr = SockAddrString(peer);
    }
  } else {
    info_.addr = "unix:" + ctx_.options.unix_socket;
  }
  info_.listen_addr = listen_addr;
  ctx_.conns.Add(fd_, &info_);
  registered_ = true;
  ctx_.curr_connections.fetch_add(1, std::memory_order_relaxed);
  stats_.Add(Counter::kTotalConnections);
  reading_ = true;
  UpdatePoll();
}

void Connection::Reject() {
  // memcached (maxconns_fast) tells the client and closes at once.
  static const char kMsg[] = "ERROR Too many open connections\r\n";
  [[maybe_unused]] ssize_t n = ::send(fd_, kMsg, sizeof(kMsg) - 1, MSG_DONTWAIT | MSG_NOSIGNAL);
  stats_.Add(Counter::kRejectedConnections);
  Close();
}

void Connection::Drain() {
  draining_ = true;
  reading_ = false;
  UpdatePoll();
  close_after_flush_ = true;
  if (!write_in_flight_) Flush();
}

void Connection::Close() {
  if (closing_) return;
  closing_ = true;
  reading_ = false;
  want_writable_ = false;
  if (over_output_cap_) {
    over_output_cap_ = false;
    worker_.NoteOverOutputCap(-1);
  }
  // What it holds is freed once the close completes, in this loop
  // iteration (or when its SSD reads are done).
  worker_.memory().Charge(-static_cast<int64_t>(held_));
  held_ = 0;
  worker_.ReleaseStream(this);
  uv_close(handle(), OnClose);  // stops the poll
}

void Connection::UpdatePoll() {
  if (closing_) return;
  // A poll armed for reading stays armed when the connection stops reading
  // (it waits for the SSD or the upstream pool, or holds replies back):
  // OnPoll() disarms it if the client sends more meanwhile. At pipeline 1
  // it never does, which saves an epoll_ctl to disarm and one to rearm on
  // every wait.
  if (!reading_ && !want_writable_ && poll_events_ == UV_READABLE) return;
  ApplyPoll((reading_ ? UV_READABLE : 0) | (want_writable_ ? UV_WRITABLE : 0));
}

void Connection::ApplyPoll(int events) {
  if (events == poll_events_) return;
  poll_events_ = events;
  if (events == 0) {
    uv_poll_stop(&poll_);
  } else {
    uv_poll_start(&poll_, events, OnPoll);
  }
}

void Connection::OnPoll(uv_poll_t* p, int status, int events) {
  auto* self = static_cast<Connection*>(p->data);
  if (self->closing_) return;
  if (status < 0) {
    self->Close();
    return;
  }
  if ((events & UV_WRITABLE) && self->want_writable_) {
    self->want_writable_ = false;
    self->UpdatePoll();
    self->PublishState();
    self->Flush();
  }
  if (events & UV_READABLE) {
    if (self->reading_) {
      self->worker_.QueueRecv(self);
    } else {
      self->ApplyPoll(self->want_writable_ ? UV_WRITABLE : 0);  // armed lazily
    }
  }
}

void Connection::OnClose(uv_handle_t* h) {
  auto* self = static_cast<Connection*>(h->data);
  self->worker_.ForgetBatches(self);
  if (self->registered_) {
    // Before close(): another worker may get the same fd number at once.
    self->ctx_.conns.Remove(self->fd_);
    self->ctx_.curr_connections.fetch_sub(1, std::memory_order_relaxed);
  }
  ::close(self->fd_);
  self->fd_ = -1;
  if (self->rbuf_ && self->rbuf_size_ == Worker::kReadBufferSize) {
    self->worker_.ReturnReadBuffer(std::move(self->rbuf_));
  }
  if (self->async_.pending > 0) {
    // SSD reads still point into this connection: it goes when they are
    // done (OnIoDone).
    self->zombie_ = true;
    self->worker_.AddZombie();
    self->worker_.Unlink(self);
    return;
  }
  self->worker_.Unlink(self);
  delete self;
}

void Connection::WaitForIo() {
  ReadAhead();
  worker_.AddIoWaiter(this);
  waiting_io_ = true;
  reading_ = false;
  UpdatePoll();
}

void Connection::ReadAhead() {
  tiers::IoQueue* io = async_.io;
  NearCache* near = async_.near;
  if ((io == nullptr && near == nullptr) || reading_data_) return;
  size_t pos = std::max(rstart_, read_ahead_to_);
  size_t keys = 0;
  Command c;
  while (pos < rend_ && keys < kReadAheadKeys) {
    ParseResult r = ParseCommand(std::string_view(rbuf_.get() + pos, rend_ - pos), &c);
    if (r.status != ParseStatus::kCommand) return;
    size_t next = pos + r.consumed;
    switch (c.type) {
      case CommandType::kGet:
      case CommandType::kGets:
      case CommandType::kGat:
      case CommandType::kGats: {
        if (c.bad_key_index >= 0) return;
        std::string_view key;
        std::string_view rest = c.keys;
        while (NextKey(&rest, &key) && keys < kReadAheadKeys) {
          if (io != nullptr && dispatcher_.ReadAhead(key, *io, worker_.BeginReadAhead())) {
            ++keys;
            continue;
          }
          if (io != nullptr) worker_.CancelReadAhead();
          // Neither tier has it: fetched ahead from the pool (not for
          // gat/gats, which change the key there).
          if (near != nullptr && (c.type == CommandType::kGet || c.type == CommandType::kGets) &&
              dispatcher_.Prefetch(key, *near, *prefetches_)) {
            ++keys;
          }
        }
        if (NextKey(&rest, &key)) return;  // over the limit: the command runs its own batches
        break;
      }
      case CommandType::kSet:
      case CommandType::kAdd:
      case CommandType::kReplace:
      case CommandType::kAppend:
      case CommandType::kPrepend:
      case CommandType::kCas:
      case CommandType::kMetaSet:
        next += uint64_t{c.value_len} + 2;
        if (next > rend_) return;
        break;
      case CommandType::kError:
        if (!c.swallow) return;
        next += uint64_t{c.value_len} + 2;  // a refused ms: its data block is dropped
        if (next > rend_) return;
        break;
      case CommandType::kMetaGet: {
        // A pipeline of meta gets (quiet mode: many, then mn) reads ahead
        // as gets do; the mg that finds its key promoted counts an SSD hit.
        char decoded[kMaxKeyLength];
        const std::string_view key =
            c.meta.key_binary ? std::string_view(decoded, Base64Decode(c.key, decoded)) : c.key;
        if (dispatcher_.ReadAhead(key, *io, worker_.BeginReadAhead())) {
          ++keys;
        } else {
          worker_.CancelReadAhead();
        }
        break;
      }
      case CommandType::kDelete:
      case CommandType::kIncr:
      case CommandType::kDecr:
      case CommandType::kTouch:
      case CommandType::kMetaDelete:
      case CommandType::kMetaArithmetic:
      case CommandType::kMetaDebug:
      case CommandType::kMetaNoop:
        break;
      default:
        return;
    }
    pos = next;
    read_ahead_to_ = pos;
  }
}

void Connection::OnIoDone() {
  if (zombie_) {
    if (async_.pending == 0) {
      Worker& worker = worker_;
      delete this;
      worker.ZombieGone();
    }
    return;
  }
  waiting_io_ = false;
  worker_.RemoveIoWaiter(this);
  BeginBatch();
  bool was_store = async_.waiting == AsyncState::Waiting::kStore;
  Outcome o = dispatcher_.Resume(cmd_, out_, &store_, &async_);
  switch (o) {
    case Outcome::kWaitIo:
      WaitForIo();
      break;
    case Outcome::kPaused:
      get_in_progress_ = true;
      Pause();
      break;
    case Outcome::kClose:
      close_after_flush_ = true;
      break;
    case Outcome::kReadData:
      reading_data_ = true;
      break;
    case Outcome::kDone:
      get_in_progress_ = false;
      break;
  }
  if (was_store && o != Outcome::kWaitIo) store_ = PendingStore{};
  if (!was_store && (o == Outcome::kDone || o == Outcome::kClose)) {
    // Its time, from the batch it arrived in to now, includes the SSD read.
    CountCommand(cmd_.type, pending_start_ns_, pending_ram_hits_, pending_ssd_hits_);
  }
  if (o != Outcome::kWaitIo && o != Outcome::kPaused) pending_ssd_hits_ = UINT64_MAX;
  ProcessInput();
  EndBatch();
  if (!waiting_io_ && !paused_ && !closing_ && !draining_ && !close_after_flush_ && !reading_ &&
      !memory_waiting) {
    reading_ = true;
    UpdatePoll();
  }
  MaybeReleaseReadBuffer();
  UpdateHeld();
}

bool Connection::MemoryFull(const AsyncState&) {
  UpdateHeld();
  return worker_.memory().Over();
}

uint64_t Connection::HeldNow() const {
  auto item_bytes = [](const tiers::Item& item) -> uint64_t {
    return tiers::Item::SizeFor(item.key_len, item.Flags(), item.value_len);
  };
  uint64_t n = (rbuf_ ? rbuf_size_ : 0) + out_.held_bytes();
  if (store_.item) n += item_bytes(*store_.item);
  for (const AsyncState::Slot& slot : async_.slots) {
    if (slot.item) n += item_bytes(*slot.item);
  }
  return n;
}

void Connection::UpdateHeld() {
  if (closing_) return;
  uint64_t now = HeldNow();
  // The worker's one streaming value (see Worker::ClaimStream) is not
  // charged: a value larger than the cap can then be fetched without
  // holding every other connection back.
  const size_t first = out_.value_bytes() >= kStreamMinBytes ? out_.FirstValueBytes() : 0;
  if (first >= kStreamMinBytes && worker_.ClaimStream(this)) {
    now -= first;
  } else {
    worker_.ReleaseStream(this);
  }
  if (now == held_) return;
  worker_.memory().Charge(static_cast<int64_t>(now) - static_cast<int64_t>(held_));
  held_ = now;
}

bool Connection::MemoryGate(uint64_t more) {
  UpdateHeld();
  if (!worker_.memory().WouldExceed(more)) return false;
  if (!memory_waiting) {
    stats_.Add(Counter::kConnMemoryStalls);
    worker_.WaitForMemory(this);
  }
  if (reading_) {
    reading_ = false;
    UpdatePoll();
  }
  return true;
}

void Connection::ResumeAfterMemory() {
  if (closing_) return;
  BeginBatch();
  ProcessInput();
  EndBatch();
  if (!memory_waiting && !waiting_io_ && !paused_ && !closing_ && !draining_ &&
      !close_after_flush_ && !reading_) {
    reading_ = true;
    UpdatePoll();
    worker_.QueueRecv(this);  // bytes may have arrived while it waited
  }
  MaybeReleaseReadBuffer();
  UpdateHeld();
}

size_t Connection::ReadBufferGrowth() const {
  // PrepareReadBuffer()'s choices, without making them.
  if (reading_data_ && store_.item && rstart_ == rend_ &&
      store_.remaining >= kDirectReadThreshold) {
    return 0;
  }
  if (!rbuf_) return Worker::kReadBufferSize;
  const size_t unread = rend_ - rstart_;
  return rbuf_size_ - unread < kMinReadSpace ? rbuf_size_ : 0;
}

void Connection::OnDurable() {
  if (closing_) return;
  Flush();
}

void Connection::PrepareReadBuffer(char** buf, size_t* len) {
  direct_read_ = false;
  if (reading_data_ && store_.item && rstart_ == rend_ && store_.remaining >= kDirectReadThreshold) {
    tiers::Item* item = store_.item.get();
    uint64_t total = uint64_t{item->value_len} + 2;
    char* dst = item->MutableValue() + (total - store_.remaining);
    *buf = dst;
    *len = static_cast<size_t>(std::min<uint64_t>(store_.remaining, kMaxBytesPerOp));
    direct_read_ = true;
    return;
  }
  if (rstart_ == rend_) rstart_ = rend_ = read_ahead_to_ = 0;
  if (!rbuf_) {
    rbuf_ = worker_.TakeReadBuffer();
    rbuf_size_ = Worker::kReadBufferSize;
  }
  if (rbuf_size_ - rend_ < kMinReadSpace) {
    if (rstart_ > 0) {
      std::memmove(rbuf_.get(), rbuf_.get() + rstart_, rend_ - rstart_);
      rend_ -= rstart_;
      read_ahead_to_ = read_ahead_to_ > rstart_ ? read_ahead_to_ - rstart_ : 0;
      rstart_ = 0;
    }
    if (rbuf_size_ - rend_ < kMinReadSpace) {
      // A long line (a multi-get of many keys): double the buffer.
      std::unique_ptr<char[]> bigger(new char[rbuf_size_ * 2]);
      std::memcpy(bigger.get(), rbuf_.get(), rend_);
      rbuf_ = std::move(bigger);
      rbuf_size_ *= 2;
    }
  }
  *buf = rbuf_.get() + rend_;
  *len = rbuf_size_ - rend_;
  // memcached reads a command line into a 16 KiB buffer: take no more of a
  // line than it would hold, so the 2048-byte rule judges the same bytes
  // (only a get line grows past it).
  const size_t pending = rend_ - rstart_;
  if (!reading_data_ && pending < kReadBufferSize) *len = std::min(*len, kReadBufferSize - pending);
}

void Connection::MaybeReleaseReadBuffer() {
  // Nothing left to parse, and no command whose fields point into it.
  if (!rbuf_ || rstart_ != rend_ || reading_data_ || get_in_progress_ || waiting_io_ || paused_) {
    return;
  }
  if (rbuf_size_ == Worker::kReadBufferSize) worker_.ReturnReadBuffer(std::move(rbuf_));
  rbuf_.reset();
  rbuf_size_ = 0;
  rstart_ = rend_ = read_ahead_to_ = 0;
}

bool Connection::PrepareRecv(NetOp* op) {
  if (closing_ || !reading_) return false;
  const size_t growth = ReadBufferGrowth();
  if (growth > 0 && MemoryGate(growth)) return false;
  char* buf = nullptr;
  size_t len = 0;
  PrepareReadBuffer(&buf, &len);
  op->kind = NetOp::Kind::kRecv;
  op->fd = fd_;
  op->buf = buf;
  op->len = len;
  op->owner = this;
  return true;
}

void Connection::OnRecv(const NetOp& op) {
  const ssize_t nread = op.result;
  if (closing_) {
    direct_read_ = false;
    return;
  }
  if (nread == -EAGAIN || nread == -EWOULDBLOCK || nread == -EINTR) {
    direct_read_ = false;  // nothing arrived after all; the poll fires again
    if (nread != -EINTR && read_incomplete_) {
      // The bytes that came together are all in: a line still without its
      // newline is judged by the 2048-byte rule now.
      read_incomplete_ = false;
      BeginBatch();
      ProcessInput();
      EndBatch();
      MaybeReleaseReadBuffer();
    }
    return;
  }
  if (nread <= 0) {
    // EOF or error: replies owed to a client that has gone cannot be sent.
    direct_read_ = false;
    Close();
    return;
  }
  stats_.Add(Counter::kBytesRead, static_cast<uint64_t>(nread));
  ++progress_;
  // A receive that filled what it was given may have left more of the same
  // bytes in the socket (memcached would have read them in one go).
  read_incomplete_ = !direct_read_ && static_cast<size_t>(nread) == op.len;
  BeginBatch();
  if (direct_read_) {
    direct_read_ = false;
    store_.remaining -= static_cast<uint64_t>(nread);
    if (store_.remaining == 0) FinishDataBlock();
  } else {
    rend_ += static_cast<size_t>(nread);
  }
  ProcessInput();
  EndBatch();
  // A full buffer: more may be waiting, so it is read again in the next batch.
  if (static_cast<size_t>(nread) == op.len && reading_) worker_.QueueRecv(this);
  MaybeReleaseReadBuffer();
  UpdateHeld();
}

void Connection::BeginBatch() {
  if (measure_latency_) batch_.Begin(batch_.open() ? 0 : uv_hrtime());
}

void Connection::EndBatch() {
  if (measure_latency_) batch_.End(batch_.depth() == 1 ? uv_hrtime() : 0, &stats_.latency());
}

void Connection::CountCommand(CommandType type, uint64_t start_ns, uint64_t ram_hits_before,
                              uint64_t ssd_hits_before) {
  if (!measure_latency_) return;
  // A get-family command hit in RAM if it moved the worker's RAM-hit count
  // (it ran without interruption; a multi-get that paused had returned
  // values, so it hit either way).
  metrics::TierLabel tier = metrics::TierLabel::kNone;
  if (LooksUpKeys(type)) {
    // A command any of whose keys the SSD tier served is labelled ssd: its
    // time includes the device read.
    if (ssd_hits_before != UINT64_MAX && stats_.Get(Counter::kSsdHits) != ssd_hits_before) {
      tier = metrics::TierLabel::kSsd;
    } else {
      tier = stats_.Get(Counter::kRamHits) != ram_hits_before ? metrics::TierLabel::kRam
                                                              : metrics::TierLabel::kMiss;
    }
  }
  batch_.Add(type, tier, start_ns);
}

void Connection::FinishDataBlock() {
  reading_data_ = false;
  CountCommand(store_.type, pending_start_ns_, 0);
  if (!store_.item) return;  // swallowed
  const tiers::Item* item = store_.item.get();
  const char* end = item->Value() + item->value_len;
  bool terminated = end[0] == '\r' && end[1] == '\n';
  if (dispatcher_.CompleteStore(store_, terminated, out_, &async_) == Outcome::kWaitIo) {
    WaitForIo();  // store_ is kept for Resume()
    return;
  }
  store_ = PendingStore{};
}

void Connection::ProcessInput() {
  while (!closing_ && !paused_ && !close_after_flush_ && !waiting_io_) {
    if (get_in_progress_) {
      if (MemoryGate(0)) break;
      Outcome o = dispatcher_.ContinueGet(cmd_, out_, &async_);
      if (o == Outcome::kPaused) {
        Pause();
        break;
      }
      if (o == Outcome::kWaitIo) {
        if (pending_ssd_hits_ == UINT64_MAX) pending_ssd_hits_ = stats_.Get(Counter::kSsdHits);
        WaitForIo();
        break;
      }
      get_in_progress_ = false;
      CountCommand(cmd_.type, pending_start_ns_, pending_ram_hits_, pending_ssd_hits_);
      pending_ssd_hits_ = UINT64_MAX;
      continue;
    }
    if (reading_data_) {
      size_t avail = rend_ - rstart_;
      size_t take = static_cast<size_t>(std::min<uint64_t>(avail, store_.remaining));
      if (store_.item) {
        tiers::Item* item = store_.item.get();
        uint64_t total = uint64_t{item->value_len} + 2;
        if (take > 0) {
          std::memcpy(item->MutableValue() + (total - store_.remaining), rbuf_.get() + rstart_,
                      take);
        }
      }
      rstart_ += take;
      store_.remaining -= take;
      if (store_.remaining > 0) break;
      FinishDataBlock();
      continue;
    }
    if (rstart_ == rend_) break;
    // memcached's 2048-byte rule applies once the bytes read together are
    // all buffered; until then a line may be as long as its 16 KiB buffer.
    ParseResult r = ParseCommand(std::string_view(rbuf_.get() + rstart_, rend_ - rstart_), &cmd_,
                                 read_incomplete_ ? kReadBufferSize - 1 : kLineLimit);
    if (r.status == ParseStatus::kNeedMore) {
      // Make sure the rest is read (or found absent) so the line is judged.
      if (read_incomplete_ && rend_ - rstart_ > kLineLimit) worker_.QueueRecv(this);
      break;
    }
    if (r.status == ParseStatus::kClose) {
      close_after_flush_ = true;
      break;
    }
    // Not consumed yet: a command held back is parsed again when it runs.
    if (MemoryGate(StoreBytes(cmd_, worker_.memory().pool().limit()))) break;
    rstart_ += r.consumed;
    info_.last_cmd_unix.store(ctx_.clock->NowSeconds(), std::memory_order_relaxed);
    info_.state.store(ConnState::kParseCmd, std::memory_order_relaxed);
    const uint64_t ram_hits = measure_latency_ ? stats_.Get(Counter::kRamHits) : 0;
    // A get whose keys a read-ahead promoted counts SSD hits without waiting.
    const uint64_t ssd_hits = measure_latency_ ? stats_.Get(Counter::kSsdHits) : UINT64_MAX;
    switch (dispatcher_.Execute(cmd_, out_, &store_, &async_)) {
      case Outcome::kDone:
        CountCommand(cmd_.type, batch_.start_ns(), ram_hits, ssd_hits);
        break;
      case Outcome::kReadData:
        reading_data_ = true;
        pending_start_ns_ = batch_.start_ns();
        break;
      case Outcome::kPaused:
        get_in_progress_ = true;
        pending_start_ns_ = batch_.start_ns();
        pending_ram_hits_ = ram_hits;
        Pause();
        break;
      case Outcome::kClose:
        CountCommand(cmd_.type, batch_.start_ns(), ram_hits);
        close_after_flush_ = true;
        break;
      case Outcome::kWaitIo:
        pending_start_ns_ = batch_.start_ns();
        pending_ram_hits_ = ram_hits;
        pending_ssd_hits_ = stats_.Get(Counter::kSsdHits);
        WaitForIo();
        break;
    }
    if (!paused_ && out_.bytes() > ctx_.options.output_high_watermark) Pause();
  }
  if (!CheckOutputCap()) return;
  if (close_after_flush_ && reading_) {
    reading_ = false;
    UpdatePoll();
  }
  PublishState();
  Flush();
}

bool Connection::CheckOutputCap() {
  // Text (composed replies, copied small values) counts at once: reading is
  // paused above output_high_watermark, so only a single command's reply
  // can pass the cap. Values sent from their items' memory count only
  // while the client reads nothing: a client that reads fetches any value
  // up to max_item_size; one that stops is closed by the worker's tick
  // (Worker::CloseStalledOutput).
  if (out_.text_bytes() > ctx_.options.max_output_buffer) {
    common::Log(common::LogLevel::kWarn,
                "closing %s: %zu reply bytes queued, over the cap (server.max_output_buffer)",
                info_.addr.c_str(), out_.text_bytes());
    Close();
    return false;
  }
  const bool over = out_.bytes() > ctx_.options.max_output_buffer;
  if (over != over_output_cap_) {
    over_output_cap_ = over;
    worker_.NoteOverOutputCap(over ? 1 : -1);
  }
  return true;
}

void Connection::PublishState() {
  ConnState state = ConnState::kRead;
  if (waiting_io_) {
    state = ConnState::kIoQueue;
  } else if (reading_data_) {
    state = store_.item ? ConnState::kNread : ConnState::kSwallow;
  } else if (paused_ || want_writable_) {
    state = ConnState::kMwrite;
  }
  info_.state.store(state, std::memory_order_relaxed);
}

void Connection::Pause() {
  paused_ = true;
  reading_ = false;
  UpdatePoll();
}

void Connection::MaybeResume() {
  if (!paused_ || closing_ || out_.bytes() > ctx_.options.output_high_watermark / 2) return;
  paused_ = false;
  BeginBatch();
  ProcessInput();
  EndBatch();
  if (!paused_ && !closing_ && !draining_ && !close_after_flush_ && !reading_ && !waiting_io_ &&
      !memory_waiting) {
    reading_ = true;
    UpdatePoll();
  }
  MaybeReleaseReadBuffer();
}

void Connection::Flush() {
  if (closing_ || write_in_flight_ || want_writable_) return;
  if (!out_.empty()) {
    if (async_.ack_ticket != 0) {
      // An acknowledged write must not be undone by a crash: its
      // invalidation reaches the device first.
      if (!worker_.Durable(async_.ack_ticket)) {
        worker_.WaitDurable(this, async_.ack_ticket);
        return;
      }
      async_.ack_ticket = 0;
    }
    worker_.QueueSend(this);  // OnSend() comes back here
    return;
  }
  if (paused_) {
    MaybeResume();
    return;
  }
  if (close_after_flush_ && !get_in_progress_ && !waiting_io_) Close();
}

bool Connection::PrepareSend(NetOp* op, struct iovec* iov) {
  if (closing_ || write_in_flight_ || want_writable_ || out_.empty()) return false;
  size_t total = 0;
  size_t n = out_.Gather(iov, kMaxIov, &total, kMaxBytesPerOp);
  out_.Seal(n);
  inflight_bytes_ = total;
  write_in_flight_ = true;
  op->kind = NetOp::Kind::kSend;
  op->fd = fd_;
  op->msg = {};
  op->msg.msg_iov = iov;
  op->msg.msg_iovlen = n;
  op->owner = this;
  return true;
}

void Connection::OnSend(const NetOp& op) {
  write_in_flight_ = false;
  const size_t total = std::exchange(inflight_bytes_, 0);
  const ssize_t r = op.result;
  if (r < 0 && r != -EAGAIN && r != -EWOULDBLOCK && r != -EINTR) {
    out_.Unseal();
    Close();  // the client has gone (EPIPE, ECONNRESET)
    return;
  }
  const size_t written = r > 0 ? static_cast<size_t>(r) : 0;
  if (written > 0) {
    stats_.Add(Counter::kBytesWritten, written);
    out_.Consume(written);
    ++progress_;
  }
  out_.Unseal();
  UpdateHeld();
  if (closing_) return;
  if (over_output_cap_ && !CheckOutputCap()) return;
  if (written < total && r != -EINTR) {
    // The socket is full: the rest goes when the client has read.
    want_writable_ = true;
    UpdatePoll();
    PublishState();
    return;
  }
  Flush();
}

}  // namespace strata::proxy
