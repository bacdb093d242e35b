#include "proxy/upstream/meta_request.h"

namespace strata::upstream {

std::string MetaGetRequest(std::string_view key, const int64_t* touch_exptime) {
  std::string s;
  s.reserve(key.size() + 32);
  s += "mg ";
  s += key;
  s += " v f c t";
  if (touch_exptime != nullptr) {
    s += " T";
    s += std::to_string(*touch_exptime);
  }
  s += "\r\n";
  return s;
}

std::string MetaTouchRequest(std::string_view key, int64_t exptime) {
  std::string s = "mg ";
  s += key;
  s += " c T";
  s += std::to_string(exptime);
  s += "\r\n";
  return s;
}

std::string MetaSetRequest(std::string_view key, uint64_t value_len, uint32_t flags,
                           int64_t exptime, StoreMode mode, const uint64_t* cas) {
  std::string s = "ms ";
  s += key;
  s += ' ';
  s += std::to_string(value_len);
  s += " F";
  s += std::to_string(flags);
  s += " T";
  s += std::to_string(exptime);
  s += " M";
  s += static_cast<char>(mode);
  if (cas != nullptr) {
    s += " C";
    s += std::to_string(*cas);
  }
  s += "\r\n";
  return s;
}

std::string MetaDeleteRequest(std::string_view key) {
  std::string s = "md ";
  s += key;
  s += "\r\n";
  return s;
}

std::string MetaArithRequest(std::string_view key, bool incr, uint64_t delta) {
  std::string s = "ma ";
  s += key;
  s += " v D";
  s += std::to_string(delta);
  s += incr ? " MI\r\n" : " MD\r\n";
  return s;
}

std::string MetaReturnWinRequest(std::string_view key, uint64_t cas) {
  std::string s = MetaDeleteRequest(key);
  s.insert(s.size() - 2, " I C" + std::to_string(cas));
  return s;
}

std::string FlushAllRequest(int64_t delay) {
  if (delay < 0) return "flush_all\r\n";
  return "flush_all " + std::to_string(delay) + "\r\n";
}

}  // namespace strata::upstream
