// The meta requests strata sends to an upstream memcached (>= 1.6), one
// function per classic command it stands for. Each returns the request
// line with its "\r\n"; an ms's value follows it (Request::set_body()).
// Keys were checked by strata's own parser (1..250 bytes, no spaces or
// control characters), so they go as they are (no base64).
//
//   get/gets      mg <key> v f c t              VA <n> f c t | EN
//   gat/gats      mg <key> v f c t T<exptime>   VA <n> f c t | EN
//   touch         mg <key> c T<exptime>         HD c | EN
//   set ... cas   ms <key> <n> F<flags> T<exptime> M<mode> [C<cas>]
//                                               HD | NS | EX | NF
//   delete        md <key>                      HD | NF
//   incr/decr     ma <key> v D<delta> M<I|D>    VA <n> | NF
//   flush_all     flush_all [<delay>]           OK
//   (a win token a get was handed by accident, given back)
//                 md <key> I C<cas>             HD | EX | NF
//
// The exptime is the client's, passed on as it came (memcached turns it
// into an expiry the same way for meta and classic commands).
//
// Thread safety: pure functions.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace strata::upstream {

enum class StoreMode : char {
  kSet = 'S',
  kAdd = 'E',
  kReplace = 'R',
  kAppend = 'A',
  kPrepend = 'P',
};

std::string MetaGetRequest(std::string_view key, const int64_t* touch_exptime = nullptr);
std::string MetaTouchRequest(std::string_view key, int64_t exptime);
// `cas` null = no compare (a cas command's unique, even 0, is compared).
std::string MetaSetRequest(std::string_view key, uint64_t value_len, uint32_t flags,
                           int64_t exptime, StoreMode mode, const uint64_t* cas);
std::string MetaDeleteRequest(std::string_view key);
std::string MetaArithRequest(std::string_view key, bool incr, uint64_t delta);
// Gives back the win token memcached hands any mg of a stale item (its
// W): marks the item stale again, which clears the token so the next
// meta client wins it, only if it is still the one with `cas`.
std::string MetaReturnWinRequest(std::string_view key, uint64_t cas);
// `delay` < 0: none.
std::string FlushAllRequest(int64_t delay);

}  // namespace strata::upstream
