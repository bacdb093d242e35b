#include "common/member_source.h"

#include <string>
#include <unordered_set>

namespace strata::common {
namespace {

constexpr std::string_view kFile = "file:";
constexpr std::string_view kDns = "dns+";
constexpr std::string_view kDnsSrv = "dnssrv+";

bool StartsWith(std::string_view s, std::string_view p) { return s.substr(0, p.size()) == p; }

bool IsBlank(char c) { return c == ' ' || c == '\t' || c == '\r'; }

std::string_view Trim(std::string_view s) {
  while (!s.empty() && IsBlank(s.front())) s.remove_prefix(1);
  while (!s.empty() && IsBlank(s.back())) s.remove_suffix(1);
  return s;
}

bool IsNameChar(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
         c == '-' || c == '_';
}

// A DNS name: 1..253 bytes of [A-Za-z0-9._-].
bool IsDnsName(std::string_view s) {
  if (s.empty() || s.size() > 253) return false;
  for (char c : s) {
    if (!IsNameChar(c)) return false;
  }
  return true;
}

std::string Quoted(std::string_view s) {
  if (s.size() > 80) return "\"" + std::string(s.substr(0, 80)) + "...\"";
  return "\"" + std::string(s) + "\"";
}

}  // namespace

Result<MemberSource> ParseMemberSource(std::string_view text) {
  MemberSource src;
  src.text = std::string(text);
  if (StartsWith(text, kFile)) {
    std::string_view path = text.substr(kFile.size());
    if (path.empty() || path.find('\0') != std::string_view::npos) {
      return Status::InvalidArgument("file: needs a path (\"file:/etc/strata/servers\"), got " +
                                     Quoted(text));
    }
    src.kind = MemberSource::Kind::kFile;
    src.target = std::string(path);
    return src;
  }
  if (StartsWith(text, kDnsSrv)) {
    std::string_view name = text.substr(kDnsSrv.size());
    if (!IsDnsName(name)) {
      return Status::InvalidArgument(
          "dnssrv+ needs an SRV name (\"dnssrv+_memcache._tcp.memcached.ns.svc.cluster.local\"), "
          "got " +
          Quoted(text));
    }
    src.kind = MemberSource::Kind::kDnsSrv;
    src.target = std::string(name);
    return src;
  }
  if (StartsWith(text, kDns)) {
    std::string_view rest = text.substr(kDns.size());
    const size_t colon = rest.rfind(':');
    if (colon == std::string_view::npos) {
      return Status::InvalidArgument("dns+ needs a port (\"dns+host:port\"), got " + Quoted(text));
    }
    Result<ServerSpec> spec = ParseServerSpec(rest);
    if (!spec.ok()) return Status::InvalidArgument("dns+" + spec.status().message());
    if (spec->weight != 1 || !spec->name.empty() || !IsDnsName(spec->host)) {
      return Status::InvalidArgument(
          "dns+ takes a DNS name and a port (\"dns+host:port\"), no weight or name, got " +
          Quoted(text));
    }
    src.kind = MemberSource::Kind::kDns;
    src.target = spec->host;
    src.port = spec->port;
    return src;
  }
  Result<ServerSpec> spec = ParseServerSpec(text);
  if (!spec.ok()) return spec.status();
  src.server = std::move(spec).value();
  return src;
}

Result<std::vector<ServerSpec>> ParseServerFile(std::string_view text) {
  if (text.size() > kMaxServerFileBytes) {
    return Status::InvalidArgument("larger than " + std::to_string(kMaxServerFileBytes) + " bytes");
  }
  std::vector<ServerSpec> out;
  std::unordered_set<std::string> seen;
  size_t line_no = 0;
  while (!text.empty()) {
    ++line_no;
    const size_t nl = text.find('\n');
    std::string_view line = text.substr(0, nl);
    text.remove_prefix(nl == std::string_view::npos ? text.size() : nl + 1);
    const size_t hash = line.find('#');
    if (hash != std::string_view::npos) line = line.substr(0, hash);
    line = Trim(line);
    if (line.empty()) continue;
    const std::string where = "line " + std::to_string(line_no) + ": ";
    Result<ServerSpec> spec = ParseServerSpec(line);
    if (!spec.ok()) return Status::InvalidArgument(where + spec.status().message());
    if (!seen.insert(spec->Address()).second) {
      return Status::InvalidArgument(where + spec->Address() + " is listed twice");
    }
    if (out.size() == kMaxMembers) {
      return Status::InvalidArgument(where + "more than " + std::to_string(kMaxMembers) +
                                     " servers");
    }
    out.push_back(std::move(spec).value());
  }
  return out;
}

}  // namespace strata::common
