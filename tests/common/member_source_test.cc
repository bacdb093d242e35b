#include "common/member_source.h"

#include <gtest/gtest.h>

#include <string>

namespace strata::common {
namespace {

using Kind = MemberSource::Kind;

TEST(MemberSourceTest, StaticEntriesAreServers) {
  auto s = ParseMemberSource("10.0.0.1:11211:2 a");
  ASSERT_TRUE(s.ok()) << s.status().message();
  EXPECT_EQ(s->kind, Kind::kStatic);
  EXPECT_FALSE(s->dynamic());
  EXPECT_EQ(s->server, (ServerSpec{"10.0.0.1", 11211, 2, "a"}));
  EXPECT_EQ(s->text, "10.0.0.1:11211:2 a");
}

TEST(MemberSourceTest, DynamicEntries) {
  auto f = ParseMemberSource("file:/etc/strata/servers");
  ASSERT_TRUE(f.ok());
  EXPECT_EQ(f->kind, Kind::kFile);
  EXPECT_EQ(f->target, "/etc/strata/servers");
  EXPECT_TRUE(f->dynamic());

  auto d = ParseMemberSource("dns+memcached.ns.svc.cluster.local:11211");
  ASSERT_TRUE(d.ok());
  EXPECT_EQ(d->kind, Kind::kDns);
  EXPECT_EQ(d->target, "memcached.ns.svc.cluster.local");
  EXPECT_EQ(d->port, 11211);

  auto srv = ParseMemberSource("dnssrv+_memcache._tcp.memcached.ns.svc.cluster.local");
  ASSERT_TRUE(srv.ok());
  EXPECT_EQ(srv->kind, Kind::kDnsSrv);
  EXPECT_EQ(srv->target, "_memcache._tcp.memcached.ns.svc.cluster.local");
}

TEST(MemberSourceTest, BadEntries) {
  EXPECT_EQ(ParseMemberSource("file:").status().message(),
            "file: needs a path (\"file:/etc/strata/servers\"), got \"file:\"");
  EXPECT_EQ(ParseMemberSource("dns+mc").status().message(),
            "dns+ needs a port (\"dns+host:port\"), got \"dns+mc\"");
  EXPECT_FALSE(ParseMemberSource("dns+mc:0").ok());
  EXPECT_FALSE(ParseMemberSource("dns+mc:11211:2").ok());   // no weight
  EXPECT_FALSE(ParseMemberSource("dns+[::1]:11211").ok());  // a name, not an address
  EXPECT_FALSE(ParseMemberSource("dnssrv+").ok());
  EXPECT_FALSE(ParseMemberSource("dnssrv+a b").ok());
  EXPECT_FALSE(ParseMemberSource("nope").ok());
}

TEST(ServerFileTest, LinesCommentsAndBlanks) {
  auto list = ParseServerFile(
      "# the pool\n"
      "10.0.0.1:11211\n"
      "\n"
      "  10.0.0.2:11211:3   # heavier\r\n"
      "\t[fd00::1]:11211 cache-c\n"
      "mc-4.mc:22122");
  ASSERT_TRUE(list.ok()) << list.status().message();
  const std::vector<ServerSpec> want = {{"10.0.0.1", 11211, 1, ""},
                                        {"10.0.0.2", 11211, 3, ""},
                                        {"fd00::1", 11211, 1, "cache-c"},
                                        {"mc-4.mc", 22122, 1, ""}};
  EXPECT_EQ(*list, want);
}

TEST(ServerFileTest, EmptyIsNotAnErrorHere) {
  auto list = ParseServerFile("# nothing yet\n\n");
  ASSERT_TRUE(list.ok());
  EXPECT_TRUE(list->empty());
  EXPECT_TRUE(ParseServerFile("").ok());
}

TEST(ServerFileTest, ErrorsNameTheLine) {
  EXPECT_EQ(ParseServerFile("a:1\n\nb:0\n").status().message(),
            "line 3: port must be 1..65535, got \"0\" in \"b:0\"");
  EXPECT_EQ(ParseServerFile("a:1\n# x\na:1\n").status().message(), "line 3: a:1 is listed twice");
  EXPECT_FALSE(ParseServerFile("not a server at all\n").ok());
  EXPECT_FALSE(ParseServerFile(std::string(kMaxServerFileBytes + 1, '#')).ok());
}

}  // namespace
}  // namespace strata::common
