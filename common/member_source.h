// Where the upstream pool's members come from: one `upstream.servers` entry
// read as a membership source, spelled as the dskit clients (Loki, Mimir,
// Thanos, Cortex) spell them, and the format of a server file.
//
//   host:port[:weight][ name]       a static server (common/server_spec.h)
//   file:/path/to/servers           a file of servers, re-read on change
//   dns+host:port                   the A and AAAA records of host, each
//                                   address with that port, re-resolved
//   dnssrv+_port._proto.service     the SRV records of the name: each
//                                   target's A/AAAA addresses, with the
//                                   record's port, re-resolved
//
// A server file holds one server per line in the static entry's syntax
// (`host:port[:weight][ name]`); `#` starts a comment to the end of the
// line; blank lines and leading or trailing blanks are ignored. An address
// listed twice is an error, as in `upstream.servers`. At most
// kMaxServerFileBytes bytes and kMaxMembers servers.
//
// Thread safety: pure functions; MemberSource is a plain value.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "common/server_spec.h"
#include "common/status.h"

namespace strata::common {

inline constexpr size_t kMaxServerFileBytes = 1 << 20;
inline constexpr size_t kMaxMembers = 4096;

struct MemberSource {
  enum class Kind { kStatic, kFile, kDns, kDnsSrv };
  Kind kind = Kind::kStatic;
  ServerSpec server;   // kStatic: the server
  std::string target;  // kFile: the path; kDns: the host; kDnsSrv: the SRV name
  uint16_t port = 0;   // kDns: the port every address gets
  std::string text;    // the entry as written, for logs and metric labels

  bool dynamic() const { return kind != Kind::kStatic; }
};

// Parses one entry (see above). InvalidArgument with a message saying what
// was expected, e.g. `dns+ needs a port ("dns+host:port"), got "dns+mc"`
// (callers put the setting's path in front).
Result<MemberSource> ParseMemberSource(std::string_view text);

// Parses the text of a server file. InvalidArgument naming the 1-based line
// at fault ("line 3: port must be ..."); an empty list is not an error
// here (the caller decides what an empty file means).
Result<std::vector<ServerSpec>> ParseServerFile(std::string_view text);

}  // namespace strata::common
