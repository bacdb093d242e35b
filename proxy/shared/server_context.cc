#include "proxy/shared/server_context.h"

namespace strata::proxy {

const char* ConnStateName(ConnState state) {
  switch (state) {
    case ConnState::kListening:
      return "conn_listening";
    case ConnState::kRead:
      return "conn_read";
    case ConnState::kParseCmd:
      return "conn_parse_cmd";
    case ConnState::kNread:
      return "conn_nread";
    case ConnState::kSwallow:
      return "conn_swallow";
    case ConnState::kMwrite:
      return "conn_mwrite";
    case ConnState::kIoQueue:
      return "conn_io_queue";
  }
  return "conn_read";
}
}  // namespace strata::proxy
