#include "proxy/upstream/meta_reply.h"

#include <charconv>
#include <cstring>
#include <utility>

namespace strata::upstream {
namespace {

template <typename T>
bool ParseNumber(std::string_view s, T* out) {
  if (s.empty()) return false;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), *out);
  return ec == std::errc() && p == s.data() + s.size();
}

// The return flags after the code (and after VA's size): f, c, t and the
// lease marks W, X, Z; others (k, O, b, s ...) are accepted and ignored.
bool ParseFlags(std::string_view rest, MetaReply* reply) {
  while (!rest.empty()) {
    size_t sp = rest.find(' ');
    std::string_view tok = rest.substr(0, sp);
    rest = sp == std::string_view::npos ? std::string_view() : rest.substr(sp + 1);
    if (tok.empty()) continue;
    std::string_view v = tok.substr(1);
    switch (tok[0]) {
      case 'f':
        if (!ParseNumber(v, &reply->flags)) return false;
        break;
      case 'c':
        if (!ParseNumber(v, &reply->cas)) return false;
        break;
      case 't':
        if (!ParseNumber(v, &reply->ttl)) return false;
        break;
      case 'W':
        reply->won = v.empty();
        break;
      case 'X':
        reply->stale = v.empty();
        break;
      case 'Z':
        reply->win_sent = v.empty();
        break;
      default:
        break;
    }
  }
  return true;
}

}  // namespace

void MetaReplyParser::Reset() {
  line_.clear();
  in_value_ = false;
  buf_ = nullptr;
  got_ = 0;
  pending_ = MetaReply{};
}

MetaReplyParser::Status MetaReplyParser::Parse(std::string_view data, size_t* consumed,
                                               ValueSink* sink, MetaReply* reply) {
  size_t pos = 0;
  while (pos < data.size() || in_value_) {
    if (in_value_) {
      const uint64_t want = pending_.value_len + 2;
      const size_t n = static_cast<size_t>(std::min<uint64_t>(want - got_, data.size() - pos));
      // The data's bytes into the sink's buffer; the "\r\n" after them is
      // checked, not stored.
      for (size_t i = 0; i < n;) {
        const uint64_t at = got_ + i;
        if (at < pending_.value_len) {
          const size_t chunk =
              static_cast<size_t>(std::min<uint64_t>(pending_.value_len - at, n - i));
          if (buf_ != nullptr) std::memcpy(buf_ + at, data.data() + pos + i, chunk);
          i += chunk;
        } else {
          const char expect = at == pending_.value_len ? '\r' : '\n';
          if (data[pos + i] != expect) {
            *consumed = pos + i;
            return Status::kBroken;
          }
          ++i;
        }
      }
      got_ += n;
      pos += n;
      if (got_ < want) {
        *consumed = pos;
        return Status::kNeedMore;
      }
      in_value_ = false;
      pending_.value_taken = buf_ != nullptr;
      *reply = std::move(pending_);
      pending_ = MetaReply{};
      buf_ = nullptr;
      got_ = 0;
      *consumed = pos;
      return Status::kReply;
    }
    const char* start = data.data() + pos;
    const void* nl = std::memchr(start, '\n', data.size() - pos);
    if (nl == nullptr) {
      line_.append(start, data.size() - pos);
      *consumed = data.size();
      return line_.size() > kMaxLine ? Status::kBroken : Status::kNeedMore;
    }
    const size_t len = static_cast<size_t>(static_cast<const char*>(nl) - start);
    pos += len + 1;
    std::string_view line;
    if (line_.empty()) {
      line = std::string_view(start, len);
    } else {
      line_.append(start, len);
      line = line_;
    }
    if (line.size() > kMaxLine || line.empty() || line.back() != '\r') {
      *consumed = pos;
      return Status::kBroken;
    }
    line.remove_suffix(1);
    MetaReply parsed;
    Status s = ParseLine(line, sink, &parsed);
    line_.clear();
    if (s == Status::kBroken) {
      *consumed = pos;
      return s;
    }
    if (s == Status::kReply) {
      *reply = std::move(parsed);
      *consumed = pos;
      return s;
    }
    // kNeedMore: a VA header; its data follows (loop).
  }
  *consumed = pos;
  return Status::kNeedMore;
}

MetaReplyParser::Status MetaReplyParser::ParseLine(std::string_view line, ValueSink* sink,
                                                   MetaReply* reply) {
  auto error_line = [&](std::string_view prefix) {
    return line.size() >= prefix.size() && line.substr(0, prefix.size()) == prefix;
  };
  if (line == "ERROR" || error_line("CLIENT_ERROR ") || error_line("SERVER_ERROR ")) {
    reply->kind = ReplyKind::kError;
    reply->line = std::string(line);
    return Status::kReply;
  }
  const bool keep = sink != nullptr && sink->KeepsLine();
  if (line == "OK" || line == "MN") {
    reply->kind = ReplyKind::kOk;
    if (keep) reply->line = std::string(line);
    return Status::kReply;
  }
  if (line.size() < 2 || (line.size() > 2 && line[2] != ' ')) return Status::kBroken;
  std::string_view code = line.substr(0, 2);
  std::string_view rest = line.size() > 3 ? line.substr(3) : std::string_view();
  if (code == "VA") {
    size_t sp = rest.find(' ');
    if (!ParseNumber(rest.substr(0, sp), &pending_.value_len)) return Status::kBroken;
    if (!ParseFlags(sp == std::string_view::npos ? std::string_view() : rest.substr(sp + 1),
                    &pending_)) {
      return Status::kBroken;
    }
    pending_.kind = ReplyKind::kValue;
    if (keep) pending_.line = std::string(line);
    buf_ = sink != nullptr ? sink->ValueBuffer(pending_) : nullptr;
    in_value_ = true;
    got_ = 0;
    return Status::kNeedMore;
  }
  if (code == "ME" && keep) {
    // A relayed me's debug line ("ME <key> exp=... la=... cas=..."): passed
    // on as it is, its fields are not return flags.
    reply->kind = ReplyKind::kHit;
    reply->line = std::string(line);
    return Status::kReply;
  }
  if (code == "HD") {
    reply->kind = ReplyKind::kHit;
  } else if (code == "EN") {
    reply->kind = ReplyKind::kMiss;
  } else if (code == "NF") {
    reply->kind = ReplyKind::kNotFound;
  } else if (code == "NS") {
    reply->kind = ReplyKind::kNotStored;
  } else if (code == "EX") {
    reply->kind = ReplyKind::kExists;
  } else {
    return Status::kBroken;
  }
  if (keep) reply->line = std::string(line);
  return ParseFlags(rest, reply) ? Status::kReply : Status::kBroken;
}

}  // namespace strata::upstream
