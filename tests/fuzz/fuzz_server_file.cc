// Fuzzes common::ParseServerFile (the upstream pool's `file:` membership
// source, re-read while strata serves) and common::ParseMemberSource over
// arbitrary text. Checks, for every input:
//   - no crash, no overrun (ASan), no unbounded work;
//   - a parsed list has at most kMaxMembers servers, each address once,
//     each port 1..65535 and weight 1..65535, and each server's own text
//     form (Address(), weight, name) parses back to the same server;
//   - an error names a line that exists ("line N: ...", 1 <= N <= lines),
//     or the size limit.
#include <cstddef>
#include <cstdint>
#include <set>
#include <string>
#include <string_view>

#include "common/member_source.h"
#include "tests/fuzz/fuzz_check.h"

namespace strata::common {
namespace {

void Check(std::string_view text) {
  Result<std::vector<ServerSpec>> list = ParseServerFile(text);
  if (!list.ok()) {
    const std::string& m = list.status().message();
    if (m.rfind("line ", 0) == 0) {
      const size_t n = std::stoul(m.substr(5));
      size_t lines = 1;
      for (char c : text) lines += c == '\n';
      FUZZ_CHECK(n >= 1 && n <= lines, m);
    } else {
      FUZZ_CHECK(text.size() > kMaxServerFileBytes, m);
    }
  } else {
    FUZZ_CHECK(list->size() <= kMaxMembers);
    std::set<std::string> seen;
    for (const ServerSpec& s : *list) {
      FUZZ_CHECK(seen.insert(s.Address()).second, s.Address());
      FUZZ_CHECK(s.port >= 1 && s.weight >= 1 && s.weight <= kMaxServerWeight);
      std::string again = s.Address() + ":" + std::to_string(s.weight);
      if (!s.name.empty()) again += " " + s.name;
      Result<ServerSpec> back = ParseServerSpec(again);
      FUZZ_CHECK(back.ok() && *back == s, again);
    }
  }
  // The first line as an upstream.servers entry.
  const std::string_view first = text.substr(0, text.find('\n'));
  Result<MemberSource> src = ParseMemberSource(first);
  if (src.ok()) {
    FUZZ_CHECK(src->text == first);
    if (src->dynamic()) FUZZ_CHECK(!src->target.empty());
  }
}

}  // namespace
}  // namespace strata::common

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  strata::common::Check(std::string_view(reinterpret_cast<const char*>(data), size));
  return 0;
}
