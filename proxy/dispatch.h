// Dispatcher: runs parsed commands against the tiered cache and composes
// memcached 1.6.18's exact replies into a connection's OutputQueue.
//
// Storage commands are two-phase: Execute() returns kReadData with a
// PendingStore whose item the connection fills with the data block, then
// CompleteStore() publishes it. Get-family commands stream: ContinueGet()
// emits keys until the queue passes a watermark, then returns kPaused and
// resumes later where it stopped, so a multi-get of thousands of keys never
// builds one giant buffer.
//
// Thread safety: one Dispatcher per worker thread; not shared.
#pragma once

#include <cstdint>

#include "proxy/output_queue.h"
#include "proxy/protocol.h"
#include "proxy/server_context.h"
#include "tiers/item.h"

namespace strata::proxy {

// A store waiting for its data block.
struct PendingStore {
  tiers::ItemRef item;        // empty when the data is to be swallowed
  CommandType type = CommandType::kSet;
  uint64_t cas_unique = 0;
  bool noreply = false;
  uint64_t remaining = 0;     // bytes of data block (value + "\r\n") still to read
};

enum class Outcome {
  kDone,      // reply (if any) is queued
  kReadData,  // read the data block into PendingStore (or swallow it)
  kPaused,    // a get stopped at the output watermark; call ContinueGet later
  kClose,     // close the connection after flushing (quit, shutdown)
};

class Dispatcher {
 public:
  Dispatcher(ServerContext& ctx, WorkerStats& stats) : ctx_(ctx), stats_(stats) {}

  // Runs `cmd`. For kReadData, *store describes the data block to read.
  Outcome Execute(Command& cmd, OutputQueue& out, PendingStore* store);

  // Continues a get-family command; cmd.keys holds the keys not yet done.
  Outcome ContinueGet(Command& cmd, OutputQueue& out);

  // Finishes a store whose data block was read; `terminated` tells whether
  // the block ended in "\r\n".
  void CompleteStore(PendingStore& store, bool terminated, OutputQueue& out);

  // memcached's realtime(): the client's exptime as absolute unix seconds
  // (0 = never; negative or past = already expired).
  uint32_t AbsoluteExptime(int32_t exptime) const;

 private:
  void Reply(OutputQueue& out, bool noreply, std::string_view line);
  void Stats(const Command& cmd, OutputQueue& out);
  void StatsGeneral(OutputQueue& out);
  void StatsSettings(OutputQueue& out);
  void StatsItems(OutputQueue& out);
  void StatsSlabs(OutputQueue& out);
  void StatsConns(OutputQueue& out);

  ServerContext& ctx_;
  WorkerStats& stats_;
};

}  // namespace strata::proxy
