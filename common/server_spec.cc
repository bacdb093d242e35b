#include "common/server_spec.h"

#include <arpa/inet.h>
#include <netinet/in.h>

#include <optional>

namespace strata::common {
namespace {

constexpr size_t kMaxHost = 253;  // a DNS name's limit
constexpr size_t kMaxName = 255;
constexpr size_t kQuoteLimit = 80;

// `text` in double quotes, non-printable bytes as \xNN, cut at 80 bytes.
std::string Quote(std::string_view text) {
  std::string out = "\"";
  bool cut = text.size() > kQuoteLimit;
  if (cut) text = text.substr(0, kQuoteLimit);
  for (char c : text) {
    auto byte = static_cast<unsigned char>(c);
    if (c == '"' || c == '\\') {
      out += '\\';
      out += c;
    } else if (byte < 0x20 || byte >= 0x7F) {
      static constexpr char kHex[] = "0123456789ABCDEF";
      out += "\\x";
      out += kHex[byte >> 4];
      out += kHex[byte & 0xF];
    } else {
      out += c;
    }
  }
  out += cut ? "...\"" : "\"";
  return out;
}

std::optional<uint32_t> ParseNumber(std::string_view text, uint32_t lo, uint32_t hi) {
  if (text.empty() || text.size() > 10) return std::nullopt;
  uint64_t value = 0;
  for (char c : text) {
    if (c < '0' || c > '9') return std::nullopt;
    value = value * 10 + static_cast<uint64_t>(c - '0');
  }
  if (value < lo || value > hi) return std::nullopt;
  return static_cast<uint32_t>(value);
}

bool IsHostChar(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
         c == '-' || c == '_';
}

bool IsSpace(char c) { return c == ' ' || c == '\t'; }

}  // namespace

std::string ServerSpec::Address() const {
  std::string port_text = std::to_string(port);
  if (host.find(':') != std::string::npos) return "[" + host + "]:" + port_text;
  return host + ":" + port_text;
}

Result<ServerSpec> ParseServerSpec(std::string_view text) {
  const std::string in = " in " + Quote(text);
  auto fail = [&](std::string detail) -> Status {
    return Status::InvalidArgument(std::move(detail) + in);
  };
  const std::string kForms =
      "expected \"host:port\", \"host:port:weight\" or \"host:port:weight name\", got ";

  // Address [ws name]: the name is whatever follows the first run of blanks.
  size_t blank = 0;
  while (blank < text.size() && !IsSpace(text[blank])) ++blank;
  std::string_view address = text.substr(0, blank);
  std::string_view name;
  if (blank < text.size()) {
    size_t start = blank;
    while (start < text.size() && IsSpace(text[start])) ++start;
    name = text.substr(start);
    if (name.empty()) return fail("trailing blanks after the address");
    for (char c : name) {
      auto byte = static_cast<unsigned char>(c);
      if (byte <= 0x20 || byte >= 0x7F) {
        return fail("a server name is printable ASCII without spaces, got " + Quote(name));
      }
    }
    if (name.size() > kMaxName) {
      return fail("a server name is at most " + std::to_string(kMaxName) + " bytes");
    }
  }
  if (address.empty()) return Status::InvalidArgument(kForms + Quote(text));

  ServerSpec spec;
  std::string_view rest;  // ":port[:weight]"
  if (address.front() == '[') {
    size_t close = address.find(']');
    if (close == std::string_view::npos) return fail("an IPv6 address misses its \"]\"");
    std::string host(address.substr(1, close - 1));
    in6_addr v6{};
    if (host.find('\0') != std::string::npos || inet_pton(AF_INET6, host.c_str(), &v6) != 1) {
      return fail("expected an IPv6 address in brackets, got " + Quote(host));
    }
    spec.host = std::move(host);
    rest = address.substr(close + 1);
    if (rest.empty() || rest.front() != ':') return fail("expected \":port\" after \"]\"");
  } else {
    size_t colon = address.find(':');
    if (colon == std::string_view::npos) return Status::InvalidArgument(kForms + Quote(text));
    std::string_view host = address.substr(0, colon);
    rest = address.substr(colon);
    if (rest.find(':', 1) != std::string_view::npos &&
        rest.find(':', rest.find(':', 1) + 1) != std::string_view::npos) {
      return fail("an IPv6 address needs brackets, like [::1]:11211");
    }
    if (host.empty()) return fail("the host is empty");
    if (host.size() > kMaxHost) {
      return fail("a host is at most " + std::to_string(kMaxHost) + " bytes");
    }
    for (char c : host) {
      if (!IsHostChar(c)) {
        return fail("expected a host name or IPv4 address ([A-Za-z0-9._-]), got " + Quote(host));
      }
    }
    spec.host = std::string(host);
  }

  rest.remove_prefix(1);  // the ':' before the port
  size_t colon = rest.find(':');
  std::string_view port = rest.substr(0, colon);
  std::optional<uint32_t> port_value = ParseNumber(port, 1, 65535);
  if (!port_value) return fail("port must be 1..65535, got " + Quote(port));
  spec.port = static_cast<uint16_t>(*port_value);
  if (colon != std::string_view::npos) {
    std::string_view weight = rest.substr(colon + 1);
    std::optional<uint32_t> weight_value = ParseNumber(weight, 1, kMaxServerWeight);
    if (!weight_value) {
      return fail("weight must be 1.." + std::to_string(kMaxServerWeight) + ", got " +
                  Quote(weight));
    }
    spec.weight = *weight_value;
  }
  spec.name = std::string(name);
  return spec;
}

}  // namespace strata::common
