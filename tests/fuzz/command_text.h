// A readable, complete rendering of a parsed proxy::Command, so that tests
// and fuzzers can compare two parses field by field (views by content, not
// by address) and print the difference when they disagree.
//
// Thread safety: pure functions.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "proxy/protocol/protocol.h"

namespace strata::proxy {

inline const char* CommandTypeName(CommandType t) {
  switch (t) {
    case CommandType::kError:
      return "error";
    case CommandType::kGet:
      return "get";
    case CommandType::kGets:
      return "gets";
    case CommandType::kGat:
      return "gat";
    case CommandType::kGats:
      return "gats";
    case CommandType::kSet:
      return "set";
    case CommandType::kAdd:
      return "add";
    case CommandType::kReplace:
      return "replace";
    case CommandType::kAppend:
      return "append";
    case CommandType::kPrepend:
      return "prepend";
    case CommandType::kCas:
      return "cas";
    case CommandType::kDelete:
      return "delete";
    case CommandType::kIncr:
      return "incr";
    case CommandType::kDecr:
      return "decr";
    case CommandType::kTouch:
      return "touch";
    case CommandType::kFlushAll:
      return "flush_all";
    case CommandType::kVersion:
      return "version";
    case CommandType::kVerbosity:
      return "verbosity";
    case CommandType::kQuit:
      return "quit";
    case CommandType::kStats:
      return "stats";
    case CommandType::kCacheMemlimit:
      return "cache_memlimit";
    case CommandType::kShutdown:
      return "shutdown";
    case CommandType::kMetaNoop:
      return "mn";
    case CommandType::kMetaGet:
      return "mg";
    case CommandType::kMetaSet:
      return "ms";
    case CommandType::kMetaDelete:
      return "md";
    case CommandType::kMetaArithmetic:
      return "ma";
    case CommandType::kMetaDebug:
      return "me";
    case CommandType::kFixedReply:
      return "fixed_reply";
    case CommandType::kLruCrawler:
      return "lru_crawler";
  }
  return "?";
}

inline const char* CrawlerOpName(CrawlerOp op) {
  switch (op) {
    case CrawlerOp::kNone:
      return "none";
    case CrawlerOp::kCrawl:
      return "crawl";
    case CrawlerOp::kMetadump:
      return "metadump";
    case CrawlerOp::kEnable:
      return "enable";
    case CrawlerOp::kDisable:
      return "disable";
  }
  return "?";
}

inline bool IsStorage(CommandType t) {
  return t == CommandType::kSet || t == CommandType::kAdd || t == CommandType::kReplace ||
         t == CommandType::kAppend || t == CommandType::kPrepend || t == CommandType::kCas;
}

// Whether a data block (value_len bytes and "\r\n") follows the command
// line: the classic storage commands, ms, and an ms refused with its data
// to swallow.
inline bool HasDataBlock(const Command& cmd) {
  return IsStorage(cmd.type) || cmd.type == CommandType::kMetaSet ||
         (cmd.type == CommandType::kError && cmd.swallow);
}

inline bool IsGetFamily(CommandType t) {
  return t == CommandType::kGet || t == CommandType::kGets || t == CommandType::kGat ||
         t == CommandType::kGats;
}

// Whether two parses are the same command: every field equal, views by
// content.
inline bool SameCommand(const Command& a, const Command& b) {
  if (a.type != b.type || a.noreply != b.noreply || a.crawler != b.crawler || a.reply != b.reply ||
      a.key != b.key || a.keys != b.keys || a.bad_key_index != b.bad_key_index ||
      a.flags != b.flags || a.exptime != b.exptime || a.has_exptime != b.has_exptime ||
      a.value_len != b.value_len || a.cas_unique != b.cas_unique || a.delta != b.delta ||
      a.number != b.number || a.nargs != b.nargs || a.swallow != b.swallow ||
      a.meta_tokens != b.meta_tokens) {
    return false;
  }
  const MetaFlags& m = a.meta;
  const MetaFlags& n = b.meta;
  if (m.vivify != n.vivify || m.new_ttl != n.new_ttl || m.recache != n.recache ||
      m.value != n.value || m.no_update != n.no_update || m.set_stale != n.set_stale ||
      m.key_binary != n.key_binary || m.has_cas != n.has_cas || m.mode != n.mode ||
      m.locked != n.locked || m.ttl != n.ttl || m.vivify_ttl != n.vivify_ttl ||
      m.recache_ttl != n.recache_ttl || m.client_flags != n.client_flags || m.cas != n.cas ||
      m.delta != n.delta || m.initial != n.initial) {
    return false;
  }
  for (size_t i = 0; i < a.nargs && i < Command::kKeptArgs; ++i) {
    if (a.args[i] != b.args[i]) return false;
  }
  return true;
}

// Every field of `cmd`, one "name=value" per field; views are quoted with
// their bytes escaped.
inline std::string DescribeCommand(const Command& cmd) {
  auto quote = [](std::string_view v) {
    std::string s = "\"";
    for (char c : v) {
      auto u = static_cast<unsigned char>(c);
      if (u < 0x20 || u >= 0x7f || c == '"' || c == '\\') {
        static const char kHex[] = "0123456789abcdef";
        s += "\\x";
        s += kHex[u >> 4];
        s += kHex[u & 15];
      } else {
        s += c;
      }
    }
    return s + "\"";
  };
  std::string s = CommandTypeName(cmd.type);
  s += " noreply=" + std::to_string(cmd.noreply);
  s += std::string(" crawler=") + CrawlerOpName(cmd.crawler);
  s += " reply=" + quote(cmd.reply);
  s += " key=" + quote(cmd.key);
  s += " keys=" + quote(cmd.keys);
  s += " bad_key_index=" + std::to_string(cmd.bad_key_index);
  s += " flags=" + std::to_string(cmd.flags);
  s += " exptime=" + std::to_string(cmd.exptime);
  s += " has_exptime=" + std::to_string(cmd.has_exptime);
  s += " value_len=" + std::to_string(cmd.value_len);
  s += " cas_unique=" + std::to_string(cmd.cas_unique);
  s += " delta=" + std::to_string(cmd.delta);
  s += " number=" + std::to_string(cmd.number);
  const MetaFlags& m = cmd.meta;
  s += " swallow=" + std::to_string(cmd.swallow);
  s += " meta_tokens=" + quote(cmd.meta_tokens);
  s += " meta={N=" + std::to_string(m.vivify) + ":" + std::to_string(m.vivify_ttl) +
       " T=" + std::to_string(m.new_ttl) + ":" + std::to_string(m.ttl) +
       " R=" + std::to_string(m.recache) + ":" + std::to_string(m.recache_ttl) +
       " v=" + std::to_string(m.value) + " u=" + std::to_string(m.no_update) +
       " I=" + std::to_string(m.set_stale) + " b=" + std::to_string(m.key_binary) +
       " C=" + std::to_string(m.has_cas) + ":" + std::to_string(m.cas) +
       " locked=" + std::to_string(m.locked) + " M=" + std::to_string(static_cast<int>(m.mode)) +
       " F=" + std::to_string(m.client_flags) + " D=" + std::to_string(m.delta) +
       " J=" + std::to_string(m.initial) + "}";
  s += " args=[";
  for (size_t i = 0; i < cmd.nargs && i < Command::kKeptArgs; ++i) {
    if (i > 0) s += ",";
    s += quote(cmd.args[i]);
  }
  s += "]";
  return s;
}

}  // namespace strata::proxy
