#include "common/server_spec.h"

#include <gtest/gtest.h>

#include <string>

namespace strata::common {
namespace {

ServerSpec Parse(const std::string& text) {
  Result<ServerSpec> spec = ParseServerSpec(text);
  EXPECT_TRUE(spec.ok()) << text << ": " << spec.status().message();
  return spec.ok() ? *spec : ServerSpec{};
}

std::string Error(const std::string& text) {
  Result<ServerSpec> spec = ParseServerSpec(text);
  EXPECT_FALSE(spec.ok()) << text;
  return spec.ok() ? "" : spec.status().message();
}

TEST(ServerSpecTest, HostPort) {
  EXPECT_EQ(Parse("10.0.0.1:11211"), (ServerSpec{"10.0.0.1", 11211, 1, ""}));
  EXPECT_EQ(Parse("memcached-0.mc.default.svc:22122"),
            (ServerSpec{"memcached-0.mc.default.svc", 22122, 1, ""}));
  EXPECT_EQ(Parse("Cache_1:1"), (ServerSpec{"Cache_1", 1, 1, ""}));
  EXPECT_EQ(Parse("h:65535"), (ServerSpec{"h", 65535, 1, ""}));
}

TEST(ServerSpecTest, WeightAndName) {
  EXPECT_EQ(Parse("10.0.0.1:11211:3"), (ServerSpec{"10.0.0.1", 11211, 3, ""}));
  EXPECT_EQ(Parse("10.0.0.1:11211:2 cache-a"), (ServerSpec{"10.0.0.1", 11211, 2, "cache-a"}));
  EXPECT_EQ(Parse("10.0.0.1:11211 \t server1"), (ServerSpec{"10.0.0.1", 11211, 1, "server1"}));
  EXPECT_EQ(Parse("h:1:65535"), (ServerSpec{"h", 1, 65535, ""}));
}

TEST(ServerSpecTest, Ipv6InBrackets) {
  EXPECT_EQ(Parse("[::1]:11211"), (ServerSpec{"::1", 11211, 1, ""}));
  EXPECT_EQ(Parse("[fd00::7]:22122:4 six"), (ServerSpec{"fd00::7", 22122, 4, "six"}));
  EXPECT_EQ(Parse("[::1]:11211").Address(), "[::1]:11211");
  EXPECT_EQ(Parse("10.0.0.1:11211:5 x").Address(), "10.0.0.1:11211");
}

TEST(ServerSpecTest, Rejects) {
  EXPECT_EQ(Error("10.0.0.1"),
            "expected \"host:port\", \"host:port:weight\" or \"host:port:weight name\", got "
            "\"10.0.0.1\"");
  EXPECT_EQ(Error(""),
            "expected \"host:port\", \"host:port:weight\" or \"host:port:weight name\", got \"\"");
  EXPECT_EQ(Error("10.0.0.1:0"), "port must be 1..65535, got \"0\" in \"10.0.0.1:0\"");
  EXPECT_EQ(Error("10.0.0.1:65536"), "port must be 1..65535, got \"65536\" in \"10.0.0.1:65536\"");
  EXPECT_EQ(Error("10.0.0.1:"), "port must be 1..65535, got \"\" in \"10.0.0.1:\"");
  EXPECT_EQ(Error("10.0.0.1:x"), "port must be 1..65535, got \"x\" in \"10.0.0.1:x\"");
  EXPECT_EQ(Error("10.0.0.1:+1"), "port must be 1..65535, got \"+1\" in \"10.0.0.1:+1\"");
  EXPECT_EQ(Error("h:1:0"), "weight must be 1..65535, got \"0\" in \"h:1:0\"");
  EXPECT_EQ(Error("h:1:65536"), "weight must be 1..65535, got \"65536\" in \"h:1:65536\"");
  EXPECT_EQ(Error("h:1:"), "weight must be 1..65535, got \"\" in \"h:1:\"");
  EXPECT_EQ(Error("h:1:2:3"), "an IPv6 address needs brackets, like [::1]:11211 in \"h:1:2:3\"");
  EXPECT_EQ(Error("::1:11211"),
            "an IPv6 address needs brackets, like [::1]:11211 in \"::1:11211\"");
  EXPECT_EQ(Error(":11211"), "the host is empty in \":11211\"");
  EXPECT_EQ(Error("h/x:1"),
            "expected a host name or IPv4 address ([A-Za-z0-9._-]), got \"h/x\" in \"h/x:1\"");
  EXPECT_EQ(Error("[::1:11211"), "an IPv6 address misses its \"]\" in \"[::1:11211\"");
  EXPECT_EQ(Error("[::1]"), "expected \":port\" after \"]\" in \"[::1]\"");
  EXPECT_EQ(Error("[zz]:1"), "expected an IPv6 address in brackets, got \"zz\" in \"[zz]:1\"");
  EXPECT_EQ(Error("h:1 "), "trailing blanks after the address in \"h:1 \"");
  EXPECT_EQ(Error("h:1 a b"),
            "a server name is printable ASCII without spaces, got \"a b\" in \"h:1 a b\"");
  EXPECT_EQ(Error("h:1 caf\xC3\xA9"),
            "a server name is printable ASCII without spaces, got \"caf\\xC3\\xA9\" in "
            "\"h:1 caf\\xC3\\xA9\"");
  EXPECT_EQ(Error(" h:1"),
            "expected \"host:port\", \"host:port:weight\" or \"host:port:weight name\", got "
            "\" h:1\"");
  EXPECT_NE(Error("h:1 " + std::string(256, 'n')).find("at most 255 bytes"), std::string::npos);
  EXPECT_NE(Error(std::string(254, 'h') + ":1").find("at most 253 bytes"), std::string::npos);
  EXPECT_NE(Error(std::string("h\0x:1", 5)).find("expected a host name"), std::string::npos);
}

}  // namespace
}  // namespace strata::common
