// MetaReplyParser: reads the replies an upstream memcached (>= 1.6) sends
// to the meta requests strata makes of it (upstream_request.h), one after
// another off a byte stream, in the order the requests were sent.
//
// Replies understood (memcached 1.6.18's proto_text.c):
//   VA <size> <flags>*\r\n<data>\r\n   a value (mg v, ma v)
//   HD <flags>*\r\n                    success without a value
//   EN\r\n                             mg miss
//   NF NS EX <flags>*\r\n              not found, not stored, exists
//   OK\r\n                             flush_all
//   CLIENT_ERROR ...\r\n, SERVER_ERROR ...\r\n, ERROR\r\n
// The return flags strata reads are f<flags>, c<cas> and t<ttl> (-1 = no
// expiry), and the lease marks memcached adds by itself: W (this request
// won the right to recache), X (the item is stale), Z (a win was already
// handed out); others (k, O, b, s ...) are passed over. A line that is
// none of these is a protocol error: the connection is out of step with
// its requests and must be reset (kBroken).
//
// A request relayed for a client (a meta command through the pool) asks
// for the reply's line as it came (ValueSink::KeepsLine()): it is passed
// on byte for byte; such a request may also be an `me`, whose
// "ME <key> <k>=<v>..." line is a kHit.
//
// A value's bytes go to a ValueSink the caller supplies per reply (so
// they can land in a RAM item's memory without a second copy); the parser
// keeps only a line and the sink's position.
//
// Thread safety: none; one parser per upstream connection, on its loop.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace strata::upstream {

enum class ReplyKind : uint8_t {
  kValue,       // VA
  kHit,         // HD
  kMiss,        // EN
  kNotFound,    // NF
  kNotStored,   // NS
  kExists,      // EX
  kOk,          // OK (flush_all), MN (mn: a probe)
  kError,       // CLIENT_ERROR / SERVER_ERROR / ERROR: `line` is what to pass on
  kFailed,      // no reply: the connection failed or timed out (never parsed)
};

struct MetaReply {
  ReplyKind kind = ReplyKind::kFailed;
  uint32_t flags = 0;     // f
  uint64_t cas = 0;       // c
  int64_t ttl = -1;       // t: seconds left, -1 = none
  uint64_t value_len = 0; // VA <size>
  bool value_taken = false;  // the sink took the value's bytes
  bool won = false;       // W
  bool stale = false;     // X
  bool win_sent = false;  // Z
  // kError: the whole line without "\r\n"; any other kind too when the
  // sink KeepsLine() (a VA's header line, without its data).
  std::string line;
};

// Where a VA reply's data goes.
class ValueSink {
 public:
  // Called once per VA with its header parsed; returns a buffer of
  // `reply.value_len` bytes to fill, or null to drop the bytes.
  virtual char* ValueBuffer(const MetaReply& reply) = 0;
  // Whether the reply's line is kept in MetaReply::line for every kind.
  virtual bool KeepsLine() const { return false; }

 protected:
  ~ValueSink() = default;
};

class MetaReplyParser {
 public:
  enum class Status {
    kNeedMore,  // every byte given was used; no reply complete yet
    kReply,     // *reply is complete (consumed bytes were used)
    kBroken,    // not a reply strata understands: reset the connection
  };

  // Parses from `data`; *consumed gets the bytes used (all of them with
  // kNeedMore). `sink` (may be null: values are dropped) is asked for a
  // buffer once per VA reply, and must stay the same until kReply.
  Status Parse(std::string_view data, size_t* consumed, ValueSink* sink, MetaReply* reply);

  // Forgets a partial reply (after a reset).
  void Reset();

  // The longest reply line accepted (memcached's are far shorter).
  static constexpr size_t kMaxLine = 2048;

 private:
  Status ParseLine(std::string_view line, ValueSink* sink, MetaReply* reply);

  std::string line_;          // a line split across reads
  bool in_value_ = false;     // reading a VA's data block
  char* buf_ = nullptr;       // the sink's buffer (null: dropping)
  uint64_t got_ = 0;          // data bytes read so far (of value_len + 2)
  MetaReply pending_;         // the VA being read
};

}  // namespace strata::upstream
