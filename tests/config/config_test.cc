// Tests of config/: the YAML schema, validation messages, LoadFile() and the
// command line. Files are written under a fresh mkdtemp() directory that each
// test removes.

#include "config/config.h"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <initializer_list>
#include <string>
#include <vector>

namespace strata::config {
namespace {

using common::StatusCode;

constexpr uint64_t kKiB = uint64_t{1} << 10;
constexpr uint64_t kMiB = uint64_t{1} << 20;
constexpr uint64_t kGiB = uint64_t{1} << 30;

// Parses YAML that must be valid.
Config Parse(const std::string& yaml) {
  common::Result<Config> r = ParseYaml(yaml, "t.yaml");
  EXPECT_TRUE(r.ok()) << yaml << "\n-> " << r.status().message();
  return r.ok() ? r.value() : Config{};
}

// Parses YAML that must be rejected and returns the message.
std::string Error(const std::string& yaml) {
  common::Result<Config> r = ParseYaml(yaml, "t.yaml");
  EXPECT_FALSE(r.ok()) << yaml;
  if (r.ok()) return "";
  EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument) << r.status().message();
  return r.status().message();
}

// A directory from mkdtemp(), removed with its files when the test ends.
class TempDir {
 public:
  TempDir() {
    const char* tmp = std::getenv("TMPDIR");
    std::string pattern =
        std::string(tmp != nullptr && *tmp != '\0' ? tmp : "/tmp") + "/strata-config-test-XXXXXX";
    char* made = ::mkdtemp(pattern.data());
    EXPECT_NE(made, nullptr);
    path_ = pattern;
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  // Writes `content` to a file named `name` and returns its path.
  std::string Write(const std::string& name, const std::string& content) const {
    std::string file = path_ + "/" + name;
    std::ofstream out(file, std::ios::binary);
    out << content;
    EXPECT_TRUE(out.good());
    return file;
  }

  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

// Runs ParseCommandLine on {"strata", args...}.
common::Result<CommandLine> Cli(std::initializer_list<std::string> args) {
  std::vector<std::string> owned = {"strata"};
  owned.insert(owned.end(), args.begin(), args.end());
  std::vector<const char*> argv;
  for (const std::string& a : owned) argv.push_back(a.c_str());
  argv.push_back(nullptr);
  return ParseCommandLine(static_cast<int>(owned.size()), argv.data());
}

CommandLine CliOk(std::initializer_list<std::string> args) {
  common::Result<CommandLine> r = Cli(args);
  EXPECT_TRUE(r.ok()) << r.status().message();
  return r.ok() ? r.value() : CommandLine{};
}

std::string CliError(std::initializer_list<std::string> args) {
  common::Result<CommandLine> r = Cli(args);
  EXPECT_FALSE(r.ok());
  return r.ok() ? "" : r.status().message();
}

// A config with nothing set.
void ExpectEmpty(const Config& c) {
  EXPECT_FALSE(c.config_file);
  EXPECT_FALSE(c.server.listen);
  EXPECT_FALSE(c.server.port);
  EXPECT_FALSE(c.server.unix_socket);
  EXPECT_FALSE(c.server.unix_socket_mode);
  EXPECT_FALSE(c.server.workers);
  EXPECT_FALSE(c.server.max_connections);
  EXPECT_FALSE(c.server.enable_shutdown);
  EXPECT_FALSE(c.server.drain_timeout_ms);
  EXPECT_FALSE(c.server.max_output_buffer);
  EXPECT_FALSE(c.server.max_connection_memory);
  EXPECT_FALSE(c.tiers.ram.size);
  EXPECT_FALSE(c.tiers.ram.max_item_size);
  EXPECT_FALSE(c.metrics.enabled);
  EXPECT_FALSE(c.metrics.listen);
  EXPECT_FALSE(c.tiers.ram.eviction);
  EXPECT_FALSE(c.log.level);
}

// ---------------------------------------------------------------------------
// YAML: valid documents

TEST(ParseYamlTest, EmptyDocumentsAreEmptyConfigs) {
  for (const char* yaml :
       {"", "\n\n", "# only a comment\n", "# a\n# b\n", "---\n", "---\n...\n", "~\n", "null\n"}) {
    SCOPED_TRACE(yaml);
    ExpectEmpty(Parse(yaml));
  }
}

TEST(ParseYamlTest, EmptySectionsAreAllowed) {
  ExpectEmpty(Parse("server:\ntiers:\n  ram:\nlog:\n"));
  ExpectEmpty(Parse("server: {}\ntiers: {ram: {}}\nlog: {}\n"));
  ExpectEmpty(Parse("server:\n  # port: 1\n"));
}

TEST(ParseYamlTest, EverySetting) {
  Config c = Parse(R"(
server:
  listen: "::1"
  port: 11311
  unix_socket: /run/strata.sock
  unix_socket_mode: "0660"
  workers: 8
  max_connections: 100
  enable_shutdown: true
  drain_timeout: 1500ms
  max_output_buffer: 8MiB
tiers:
  ram:
    size: 2GiB
    max_item_size: 4MiB
    eviction: lru
log:
  level: debug
)");
  EXPECT_EQ(c.server.listen, "::1");
  EXPECT_EQ(c.server.port, 11311);
  EXPECT_EQ(c.server.unix_socket, "/run/strata.sock");
  EXPECT_EQ(c.server.unix_socket_mode, 0660u);
  EXPECT_EQ(c.server.workers, 8u);
  EXPECT_EQ(c.server.max_connections, 100u);
  EXPECT_EQ(c.server.enable_shutdown, true);
  EXPECT_EQ(c.server.drain_timeout_ms, 1500u);
  EXPECT_EQ(c.server.max_output_buffer, 8 * kMiB);
  EXPECT_EQ(c.tiers.ram.size, 2 * kGiB);
  EXPECT_EQ(c.tiers.ram.max_item_size, 4 * kMiB);
  EXPECT_EQ(c.tiers.ram.eviction, "lru");
  EXPECT_EQ(c.log.level, "debug");
  EXPECT_FALSE(c.config_file);  // ParseYaml does not read a file
}

TEST(ParseYamlTest, FlowStyleAndAnchorsWork) {
  Config c = Parse("server: {port: 1, workers: &n 4, max_connections: *n}\n");
  EXPECT_EQ(c.server.port, 1);
  EXPECT_EQ(c.server.workers, 4u);
  EXPECT_EQ(c.server.max_connections, 4u);
}

TEST(ParseYamlTest, SizesTakeUnitsAndPlainIntegersAreBytes) {
  struct Case {
    const char* text;
    uint64_t bytes;
  };
  for (const Case& k :
       {Case{"256MiB", 256 * kMiB}, Case{"64k", 64 * kKiB}, Case{"2097152", 2 * kMiB},
        Case{"\"2097152\"", 2 * kMiB}, Case{"1g", kGiB}, Case{"3 MiB", 3 * kMiB},
        Case{"1048576B", kMiB}, Case{"1TiB", kGiB << 10}}) {
    SCOPED_TRACE(k.text);
    Config c = Parse(std::string("server: {max_output_buffer: ") + k.text + "}\n");
    EXPECT_EQ(c.server.max_output_buffer, k.bytes);
  }
}

TEST(ParseYamlTest, DurationsTakeUnitsAndPlainIntegersAreSeconds) {
  struct Case {
    const char* text;
    uint64_t ms;
  };
  for (const Case& k : {Case{"30s", 30'000}, Case{"1500ms", 1500}, Case{"5", 5000}, Case{"0", 0},
                        Case{"2m", 120'000}, Case{"1h", 3'600'000}}) {
    SCOPED_TRACE(k.text);
    Config c = Parse(std::string("server: {drain_timeout: ") + k.text + "}\n");
    EXPECT_EQ(c.server.drain_timeout_ms, k.ms);
  }
}

TEST(ParseYamlTest, UnixSocketModeIsOctalWhateverItsForm) {
  struct Case {
    const char* text;
    uint32_t mode;
  };
  for (const Case& k :
       {Case{"\"0700\"", 0700}, Case{"\"700\"", 0700}, Case{"0700", 0700}, Case{"700", 0700},
        Case{"0o755", 0755}, Case{"\"0777\"", 0777}, Case{"0", 0}, Case{"\"00000600\"", 0600}}) {
    SCOPED_TRACE(k.text);
    Config c = Parse(std::string("server: {unix_socket_mode: ") + k.text + "}\n");
    EXPECT_EQ(c.server.unix_socket_mode, k.mode);
  }
}

TEST(ParseYamlTest, BoolsAreTrueOrFalse) {
  for (const char* t : {"true", "True", "TRUE"}) {
    EXPECT_EQ(Parse(std::string("server: {enable_shutdown: ") + t + "}").server.enable_shutdown,
              true);
  }
  for (const char* f : {"false", "False", "FALSE"}) {
    EXPECT_EQ(Parse(std::string("server: {enable_shutdown: ") + f + "}").server.enable_shutdown,
              false);
  }
}

TEST(ParseYamlTest, ListenAcceptsAddressLiteralsAndLocalhost) {
  for (const char* a : {"127.0.0.1", "0.0.0.0", "10.1.2.3", "\"::\"", "\"::1\"", "fe80::1",
                        "\"2001:db8::ff00:42:8329\"", "\"::ffff:192.0.2.1\"", "localhost"}) {
    SCOPED_TRACE(a);
    EXPECT_TRUE(Parse(std::string("server:\n  listen: ") + a + "\n").server.listen);
  }
}

TEST(ParseYamlTest, LimitsAreInclusive) {
  Config c = Parse(R"(
server: {port: 65535, workers: 256, max_connections: 4294967295, max_output_buffer: 1KiB}
tiers: {ram: {size: 1MiB, max_item_size: 1MiB}}
)");
  EXPECT_EQ(c.server.port, 65535);
  EXPECT_EQ(c.server.workers, 256u);
  EXPECT_EQ(c.server.max_connections, 4294967295u);
  EXPECT_EQ(c.server.max_output_buffer, kKiB);
  EXPECT_EQ(c.tiers.ram.size, kMiB);
  EXPECT_EQ(c.tiers.ram.max_item_size, kMiB);

  c = Parse(
      "server: {port: 0, workers: 0, max_connections: 1}\n"
      "tiers: {ram: {size: 1GiB, max_item_size: 1GiB}}\n");
  EXPECT_EQ(c.server.port, 0);
  EXPECT_EQ(c.server.workers, 0u);
  EXPECT_EQ(c.server.max_connections, 1u);
  EXPECT_EQ(c.tiers.ram.max_item_size, kGiB);
  EXPECT_EQ(Parse("tiers: {ram: {max_item_size: 1KiB}}").tiers.ram.max_item_size, kKiB);
}

TEST(ParseYamlTest, MaxItemSizeAloneIsNotCheckedAgainstAnUnsetSize) {
  // The RAM tier's default size is not config's to know.
  EXPECT_EQ(Parse("tiers: {ram: {max_item_size: 1GiB}}").tiers.ram.max_item_size, kGiB);
}

TEST(ParseYamlTest, EveryEnumValue) {
  for (const char* e : {"s3fifo", "lru"}) {
    EXPECT_EQ(Parse(std::string("tiers: {ram: {eviction: ") + e + "}}").tiers.ram.eviction, e);
  }
  for (const char* l : {"error", "warn", "info", "debug"}) {
    EXPECT_EQ(Parse(std::string("log: {level: ") + l + "}").log.level, l);
  }
}

// ---------------------------------------------------------------------------
// YAML: rejections, each with its exact message

TEST(ParseYamlErrorTest, BadSize) {
  EXPECT_EQ(Error("tiers:\n  ram:\n    size: lots\n"),
            "tiers.ram.size: expected a size like 256MiB, got \"lots\" (t.yaml:3:5)");
  EXPECT_EQ(Error("tiers: {ram: {size: 1.5GiB}}"),
            "tiers.ram.size: expected a size like 256MiB, got \"1.5GiB\" (t.yaml:1:15)");
  EXPECT_EQ(Error("tiers: {ram: {size: -1}}"),
            "tiers.ram.size: expected a size like 256MiB, got \"-1\" (t.yaml:1:15)");
  EXPECT_EQ(Error("tiers: {ram: {size: 99999999999999999999}}"),
            "tiers.ram.size: expected a size like 256MiB, got \"99999999999999999999\" "
            "(t.yaml:1:15)");
  EXPECT_EQ(Error("tiers: {ram: {size: 20000000TiB}}"),
            "tiers.ram.size: expected a size like 256MiB, got \"20000000TiB\" (t.yaml:1:15)");
}

TEST(ParseYamlErrorTest, RamSizeBelowOneMiB) {
  EXPECT_EQ(Error("tiers: {ram: {size: 1023KiB}}"),
            "tiers.ram.size: must be at least 1MiB, got \"1023KiB\" (t.yaml:1:15)");
  EXPECT_EQ(Error("tiers: {ram: {size: 0}}"),
            "tiers.ram.size: must be at least 1MiB, got \"0\" (t.yaml:1:15)");
}

TEST(ParseYamlErrorTest, MaxItemSizeOutOfRange) {
  EXPECT_EQ(Error("tiers: {ram: {max_item_size: 1023}}"),
            "tiers.ram.max_item_size: must be between 1KiB and 1GiB, got \"1023\" (t.yaml:1:15)");
  EXPECT_EQ(Error("tiers: {ram: {max_item_size: 2GiB}}"),
            "tiers.ram.max_item_size: must be between 1KiB and 1GiB, got \"2GiB\" (t.yaml:1:15)");
  EXPECT_EQ(Error("tiers: {ram: {max_item_size: big}}"),
            "tiers.ram.max_item_size: expected a size like 1MiB, got \"big\" (t.yaml:1:15)");
}

TEST(ParseYamlErrorTest, MaxItemSizeLargerThanRam) {
  EXPECT_EQ(Error("tiers:\n  ram:\n    max_item_size: 2MiB\n    size: 1MiB\n"),
            "tiers.ram.max_item_size: 2MiB is larger than tiers.ram.size (1MiB) (t.yaml:3:5)");
}

TEST(ParseYamlErrorTest, BadPort) {
  EXPECT_EQ(Error("server:\n  port: x\n"),
            "server.port: expected an integer 0..65535, got \"x\" (t.yaml:2:3)");
  for (const char* p : {"65536", "-1", "1.5", "0x10", "+80", "1e3", "yes", "\"\"", "1_000"}) {
    SCOPED_TRACE(p);
    EXPECT_EQ(Error(std::string("server: {port: ") + p + "}")
                  .rfind("server.port: expected an "
                         "integer 0..65535, got ",
                         0),
              0u);
  }
}

TEST(ParseYamlErrorTest, BadWorkersAndConnections) {
  EXPECT_EQ(Error("server: {workers: 257}"),
            "server.workers: expected an integer 0..256, got \"257\" (t.yaml:1:10)");
  EXPECT_EQ(Error("server: {workers: auto}"),
            "server.workers: expected an integer 0..256, got \"auto\" (t.yaml:1:10)");
  EXPECT_EQ(Error("server: {max_connections: 0}"),
            "server.max_connections: expected an integer 1..4294967295, got \"0\" (t.yaml:1:10)");
  EXPECT_EQ(Error("server: {max_connections: 4294967296}"),
            "server.max_connections: expected an integer 1..4294967295, got \"4294967296\" "
            "(t.yaml:1:10)");
}

TEST(ParseYamlErrorTest, BadBool) {
  EXPECT_EQ(Error("server: {enable_shutdown: yes}"),
            "server.enable_shutdown: expected true or false, got \"yes\" (t.yaml:1:10)");
  for (const char* b : {"on", "1", "0", "no", "y", "tRUE"}) {
    SCOPED_TRACE(b);
    EXPECT_NE(Error(std::string("server: {enable_shutdown: ") + b + "}").find("expected true or"),
              std::string::npos);
  }
}

TEST(ParseYamlErrorTest, BadListen) {
  EXPECT_EQ(Error("server: {listen: example.com}"),
            "server.listen: expected an IPv4 or IPv6 address or \"localhost\", got "
            "\"example.com\" (t.yaml:1:10)");
  for (const char* a : {"1.2.3", "256.0.0.1", "\"[::1]\"", "\"\"", "\"127.0.0.1 \"",
                        "\"fe80::1%eth0\"", "LOCALHOST", "\"127.0.0.1\\0x\""}) {
    SCOPED_TRACE(a);
    EXPECT_EQ(Error(std::string("server: {listen: ") + a + "}").rfind("server.listen: expected", 0),
              0u);
  }
}

TEST(ParseYamlErrorTest, BadUnixSocket) {
  EXPECT_EQ(Error("server: {unix_socket: \"\"}"),
            "server.unix_socket: expected a socket path, got \"\" (t.yaml:1:10)");
  EXPECT_EQ(Error("server: {unix_socket: \"/a\\0b\"}"),
            "server.unix_socket: socket path contains a NUL byte: \"/a\\x00b\" (t.yaml:1:10)");
  std::string longest = "/" + std::string(106, 's');  // 107 bytes fit
  EXPECT_EQ(Parse("server: {unix_socket: " + longest + "}").server.unix_socket, longest);
  std::string too_long = longest + "s";
  EXPECT_EQ(Error("server: {unix_socket: " + too_long + "}"),
            "server.unix_socket: socket path is 108 bytes, longer than the 107 a unix socket "
            "allows: \"/" +
                std::string(63, 's') + "...\" (t.yaml:1:10)");
}

TEST(ParseYamlErrorTest, BadUnixSocketMode) {
  EXPECT_EQ(Error("server: {unix_socket_mode: \"0800\"}"),
            "server.unix_socket_mode: expected octal permissions like \"0700\", at most 0777, "
            "got \"0800\" (t.yaml:1:10)");
  for (const char* m : {"1777", "\"01000\"", "448", "\"\"", "0o", "rwx", "-700", "0x1ff"}) {
    SCOPED_TRACE(m);
    EXPECT_EQ(Error(std::string("server: {unix_socket_mode: ") + m + "}")
                  .rfind("server.unix_socket_mode: expected octal permissions", 0),
              0u);
  }
}

TEST(ParseYamlErrorTest, BadDurationAndOutputBuffer) {
  EXPECT_EQ(Error("server: {drain_timeout: soon}"),
            "server.drain_timeout: expected a duration like 10s or 1500ms, got \"soon\" "
            "(t.yaml:1:10)");
  EXPECT_EQ(Error("server: {drain_timeout: 1.5s}"),
            "server.drain_timeout: expected a duration like 10s or 1500ms, got \"1.5s\" "
            "(t.yaml:1:10)");
  EXPECT_EQ(Error("server: {drain_timeout: -1s}"),
            "server.drain_timeout: expected a duration like 10s or 1500ms, got \"-1s\" "
            "(t.yaml:1:10)");
  EXPECT_EQ(Error("server: {max_output_buffer: 1023}"),
            "server.max_output_buffer: must be at least 1KiB, got \"1023\" (t.yaml:1:10)");
  EXPECT_EQ(Error("server: {max_output_buffer: huge}"),
            "server.max_output_buffer: expected a size like 64MiB, got \"huge\" (t.yaml:1:10)");
}

TEST(ParseYamlErrorTest, BadEnums) {
  EXPECT_EQ(Error("tiers: {ram: {eviction: fifo}}"),
            "tiers.ram.eviction: expected one of s3fifo, lru, got \"fifo\" (t.yaml:1:15)");
  EXPECT_EQ(Error("tiers: {ram: {eviction: LRU}}"),
            "tiers.ram.eviction: expected one of s3fifo, lru, got \"LRU\" (t.yaml:1:15)");
  EXPECT_EQ(Error("log:\n  level: trace\n"),
            "log.level: expected one of error, warn, info, debug, got \"trace\" (t.yaml:2:3)");
}

TEST(ParseYamlErrorTest, UnknownKeys) {
  EXPECT_EQ(Error("server:\n  bogus: 1\n"),
            "server.bogus: unknown key; expected one of listen, port, unix_socket, "
            "unix_socket_mode, workers, max_connections, enable_shutdown, drain_timeout, "
            "max_output_buffer, max_connection_memory, network_io (t.yaml:2:3)");
  EXPECT_EQ(Error("bogus: 1\n"),
            "bogus: unknown key; expected one of server, tiers, upstream, metrics, log "
            "(t.yaml:1:1)");
  EXPECT_EQ(Error("tiers: {hdd: {size: 1GiB}}"),
            "tiers.hdd: unknown key; expected one of ram, ssd (t.yaml:1:9)");
  EXPECT_EQ(Error("tiers: {ram: {Size: 1GiB}}"),
            "tiers.ram.Size: unknown key; expected one of size, max_item_size, eviction "
            "(t.yaml:1:15)");
  EXPECT_EQ(Error("log: {file: x}"), "log.file: unknown key; expected one of level (t.yaml:1:7)");
  // Odd keys are quoted so the path stays readable.
  EXPECT_EQ(Error("server: {\"a b\": 1}"),
            "server.\"a b\": unknown key; expected one of listen, port, unix_socket, "
            "unix_socket_mode, workers, max_connections, enable_shutdown, drain_timeout, "
            "max_output_buffer, max_connection_memory, network_io (t.yaml:1:10)");
  // An unknown key is an error even after valid ones, and even if null.
  EXPECT_EQ(Error("server: {port: 1, extra: }").rfind("server.extra: unknown key", 0), 0u);
  // YAML merge keys are not supported.
  EXPECT_EQ(Error("<<: {server: {}}").rfind("\"<<\": unknown key", 0), 0u);
}

TEST(ParseYamlErrorTest, DuplicateKeys) {
  EXPECT_EQ(Error("tiers:\n  ram:\n    size: 1GiB\n    size: 2GiB\n"),
            "tiers.ram: duplicate key \"size\" (t.yaml:4:5)");
  EXPECT_EQ(Error("server:\n  port: 1\nserver:\n  port: 2\n"),
            "top level: duplicate key \"server\" (t.yaml:3:1)");
  EXPECT_EQ(Error("server: {port: 1, port: 1}"), "server: duplicate key \"port\" (t.yaml:1:19)");
  // Quoting does not make a different key.
  EXPECT_EQ(Error("server:\n  port: 1\n  'port': 2\n"),
            "server: duplicate key \"port\" (t.yaml:3:3)");
  EXPECT_EQ(Error("log: {level: info}\nlog: {level: info}\n"),
            "top level: duplicate key \"log\" (t.yaml:2:1)");
  // Also when the first one was an empty section.
  EXPECT_EQ(Error("tiers:\ntiers:\n  ram: {}\n"),
            "top level: duplicate key \"tiers\" (t.yaml:2:1)");
}

TEST(ParseYamlErrorTest, WrongTypes) {
  EXPECT_EQ(Error("server:\n  port: {a: 1}\n"),
            "server.port: expected an integer 0..65535, got a map (t.yaml:2:3)");
  EXPECT_EQ(Error("server:\n  port: [1]\n"),
            "server.port: expected an integer 0..65535, got a sequence (t.yaml:2:3)");
  EXPECT_EQ(Error("server:\n  port:\n"),
            "server.port: expected an integer 0..65535, got null (t.yaml:2:3)");
  EXPECT_EQ(Error("tiers: {ram: {size: [1, 2]}}"),
            "tiers.ram.size: expected a size like 256MiB, got a sequence (t.yaml:1:15)");
  EXPECT_EQ(Error("log: {level: ~}"),
            "log.level: expected one of error, warn, info, debug, got null (t.yaml:1:7)");
  EXPECT_EQ(Error("server: {listen: [127.0.0.1]}"),
            "server.listen: expected an IPv4 or IPv6 address or \"localhost\", got a sequence "
            "(t.yaml:1:10)");
  EXPECT_EQ(Error("server: 5"), "server: expected a map, got \"5\" (t.yaml:1:1)");
  EXPECT_EQ(Error("server: [port]"), "server: expected a map, got a sequence (t.yaml:1:1)");
  EXPECT_EQ(Error("tiers:\n  ram: 1GiB\n"), "tiers.ram: expected a map, got \"1GiB\" (t.yaml:2:3)");
  EXPECT_EQ(Error("log: debug"), "log: expected a map, got \"debug\" (t.yaml:1:1)");
}

TEST(ParseYamlErrorTest, NonStringKeys) {
  EXPECT_EQ(Error("server: {[1]: 2}"),
            "server: expected a string key, got a sequence (t.yaml:1:10)");
  EXPECT_EQ(Error("{a: 1}: 2"), "top level: expected a string key, got a map (t.yaml:1:1)");
  EXPECT_EQ(Error("server: {port: 1,, workers: 2}"),
            "server: expected a string key, got null (t.yaml:1:18)");
}

TEST(ParseYamlErrorTest, TopLevelMustBeAMap) {
  EXPECT_EQ(Error("- port: 1\n"), "top level: expected a map, got a sequence (t.yaml:1:1)");
  EXPECT_EQ(Error("hello\n"), "top level: expected a map, got \"hello\" (t.yaml:1:1)");
}

TEST(ParseYamlErrorTest, SyntaxErrorsGiveOriginLineAndColumn) {
  EXPECT_EQ(Error("server:\n  port: [1\n"), "t.yaml:3:1: end of sequence flow not found");
  EXPECT_EQ(Error("server:\n  port: 1\n   workers: 2\n"), "t.yaml:3:11: illegal map value");
  EXPECT_EQ(Error("server:\n\tport: 1\n"), "t.yaml:2:6: illegal map value");
  EXPECT_EQ(Error("server: {port: 1\n"), "t.yaml:2:1: end of map flow not found");
  EXPECT_EQ(Error("server: *nowhere\n"), "t.yaml:1:9: the referenced anchor is not defined");
  EXPECT_EQ(Error("server: \"open"), "t.yaml:1:14: illegal EOF in scalar");
  EXPECT_EQ(Error("%YAML 1.2\n%YAML 1.2\n---\n"), "t.yaml:2:1: repeated YAML directive");
}

TEST(ParseYamlErrorTest, MoreThanOneDocument) {
  EXPECT_EQ(Error("---\nserver: {}\n---\nlog: {}\n"),
            "t.yaml:3:1: expected one YAML document, found more");
}

TEST(ParseYamlErrorTest, DeepNestingIsAnErrorNotACrash) {
  std::string deep = "server: " + std::string(100000, '[');
  common::Result<Config> r = ParseYaml(deep, "t.yaml");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().message().rfind("t.yaml:", 0), 0u) << r.status().message();
}

TEST(ParseYamlErrorTest, EmptyOriginIsNamed) {
  common::Result<Config> r = ParseYaml("server: {port: x}", "");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().message(),
            "server.port: expected an integer 0..65535, got \"x\" (<config>:1:10)");
}

TEST(ParseYamlErrorTest, ValuesInMessagesAreEscapedAndCut) {
  EXPECT_EQ(Error("log: {level: \"a\\\"b\\\\c\\td\\ne\\x01\\x7f\"}"),
            "log.level: expected one of error, warn, info, debug, got "
            "\"a\\\"b\\\\c\\td\\ne\\x01\\x7F\" (t.yaml:1:7)");
  EXPECT_EQ(Error("log: {level: " + std::string(100, 'x') + "}"),
            "log.level: expected one of error, warn, info, debug, got \"" + std::string(64, 'x') +
                "...\" (t.yaml:1:7)");
  // A cut never splits a UTF-8 character: 63 ASCII bytes, then a 2-byte "é".
  EXPECT_EQ(Error("log: {level: " + std::string(63, 'x') + "\xC3\xA9zz}"),
            "log.level: expected one of error, warn, info, debug, got \"" + std::string(63, 'x') +
                "...\" (t.yaml:1:7)");
}

TEST(ParseYamlErrorTest, FirstProblemInDocumentOrderWins) {
  EXPECT_EQ(Error("server: {port: x, bogus: 1}").rfind("server.port:", 0), 0u);
  EXPECT_EQ(Error("server: {bogus: 1, port: x}").rfind("server.bogus:", 0), 0u);
}

// ---------------------------------------------------------------------------
// LoadFile

TEST(LoadFileTest, DefaultConfigFileHasEveryDefault) {
  common::Result<Config> r = LoadFile(STRATA_DEFAULT_CONFIG);
  ASSERT_TRUE(r.ok()) << r.status().message();
  const Config& c = r.value();
  EXPECT_EQ(c.config_file, STRATA_DEFAULT_CONFIG);
  EXPECT_EQ(c.server.listen, "127.0.0.1");
  EXPECT_EQ(c.server.port, 11211);
  EXPECT_FALSE(c.server.unix_socket);
  EXPECT_EQ(c.server.unix_socket_mode, 0700u);
  EXPECT_EQ(c.server.workers, 0u);
  EXPECT_EQ(c.server.max_connections, 4096u);
  EXPECT_EQ(c.server.enable_shutdown, false);
  EXPECT_EQ(c.server.drain_timeout_ms, 10'000u);
  EXPECT_EQ(c.server.max_output_buffer, 64 * kMiB);
  EXPECT_EQ(c.server.max_connection_memory, 0u);  // auto
  EXPECT_EQ(c.server.network_io, "auto");
  EXPECT_EQ(c.tiers.ram.size, 256 * kMiB);
  EXPECT_EQ(c.tiers.ram.max_item_size, kMiB);
  EXPECT_EQ(c.tiers.ram.eviction, "s3fifo");
  EXPECT_EQ(c.metrics.enabled, true);
  EXPECT_EQ(c.metrics.listen, "127.0.0.1:9150");
  EXPECT_EQ(c.log.level, "info");
  EXPECT_EQ(c.upstream.servers, std::vector<common::ServerSpec>{});
  EXPECT_EQ(c.upstream.distribution, "ketama");
  EXPECT_EQ(c.upstream.near_cache_ttl_ms, 60'000u);
  EXPECT_EQ(c.upstream.forward_flush, false);
  EXPECT_EQ(c.upstream.connections_per_server, 1u);
  EXPECT_EQ(c.upstream.connect_timeout_ms, 100u);
  EXPECT_EQ(c.upstream.request_timeout_ms, 200u);
  EXPECT_EQ(c.upstream.down_after_timeouts, 3u);
  EXPECT_EQ(c.upstream.down_after_connect_failures, 1u);
  EXPECT_EQ(c.upstream.probe_interval_ms, 100u);
  EXPECT_EQ(c.upstream.probe_interval_max_ms, 10'000u);
  EXPECT_EQ(c.upstream.max_in_flight, 1024u);
  EXPECT_EQ(c.upstream.revalidate_idle_ms, 10'000u);
}

TEST(LoadFileTest, ReadsAFileAndRecordsItsPath) {
  TempDir dir;
  std::string path = dir.Write("a.yaml", "server:\n  port: 4000\n");
  common::Result<Config> r = LoadFile(path);
  ASSERT_TRUE(r.ok()) << r.status().message();
  EXPECT_EQ(r->server.port, 4000);
  EXPECT_EQ(r->config_file, path);
}

TEST(LoadFileTest, EmptyFileIsAnEmptyConfig) {
  TempDir dir;
  std::string path = dir.Write("empty.yaml", "");
  common::Result<Config> r = LoadFile(path);
  ASSERT_TRUE(r.ok()) << r.status().message();
  EXPECT_EQ(r->config_file, path);
  EXPECT_FALSE(r->server.port);
}

TEST(LoadFileTest, ErrorsNameTheFile) {
  TempDir dir;
  std::string bad = dir.Write("bad.yaml", "server:\n  port: x\n");
  common::Result<Config> r = LoadFile(bad);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().message(),
            "server.port: expected an integer 0..65535, got \"x\" (" + bad + ":2:3)");

  std::string broken = dir.Write("broken.yaml", "server: [\n");
  r = LoadFile(broken);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().message(), broken + ":2:1: end of sequence flow not found");
}

TEST(LoadFileTest, MissingFile) {
  TempDir dir;
  std::string path = dir.path() + "/nope.yaml";
  common::Result<Config> r = LoadFile(path);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kNotFound);
  EXPECT_EQ(r.status().message(), path + ": cannot open: No such file or directory");
}

TEST(LoadFileTest, Directory) {
  TempDir dir;
  common::Result<Config> r = LoadFile(dir.path());
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kIoError);
  EXPECT_EQ(r.status().message(), dir.path() + ": cannot read: is a directory");
}

TEST(LoadFileTest, UnreadableFile) {
  if (::geteuid() == 0) GTEST_SKIP() << "root reads any file";
  TempDir dir;
  std::string path = dir.Write("secret.yaml", "server: {}\n");
  ASSERT_EQ(::chmod(path.c_str(), 0), 0);
  common::Result<Config> r = LoadFile(path);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kIoError);
  EXPECT_EQ(r.status().message(), path + ": cannot open: Permission denied");
}

TEST(LoadFileTest, HugeFileIsRejected) {
  TempDir dir;
  // Exactly 1MiB of comments is fine, one byte more is not.
  std::string line = "#" + std::string(1022, 'x') + "\n";  // 1KiB
  std::string mib;
  for (int i = 0; i < 1024; ++i) mib += line;
  ASSERT_EQ(mib.size(), kMiB);
  EXPECT_TRUE(LoadFile(dir.Write("ok.yaml", mib)).ok());
  std::string path = dir.Write("huge.yaml", mib + "\n");
  common::Result<Config> r = LoadFile(path);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().message(), path + ": larger than 1MiB, not a config file");
}

// ---------------------------------------------------------------------------
// ParseCommandLine

TEST(CommandLineTest, NoArgumentsIsAnEmptyConfig) {
  CommandLine line = CliOk({});
  ExpectEmpty(line.config);
  EXPECT_FALSE(line.show_help);
  EXPECT_FALSE(line.show_version);
}

TEST(CommandLineTest, EveryShortFlag) {
  CommandLine line = CliOk({"-p", "11311", "-l", "0.0.0.0", "-m", "64", "-t", "4", "-c", "100",
                            "-I", "2m", "-s", "/tmp/s.sock", "-a", "0660", "-A", "-v"});
  const Config& c = line.config;
  EXPECT_EQ(c.server.port, 11311);
  EXPECT_EQ(c.server.listen, "0.0.0.0");
  EXPECT_EQ(c.tiers.ram.size, 64 * kMiB);
  EXPECT_EQ(c.server.workers, 4u);
  EXPECT_EQ(c.server.max_connections, 100u);
  EXPECT_EQ(c.tiers.ram.max_item_size, 2 * kMiB);
  EXPECT_EQ(c.server.unix_socket, "/tmp/s.sock");
  EXPECT_EQ(c.server.unix_socket_mode, 0660u);
  EXPECT_EQ(c.server.enable_shutdown, true);
  EXPECT_EQ(c.log.level, "debug");
  EXPECT_FALSE(c.config_file);
}

TEST(CommandLineTest, EveryLongFlag) {
  CommandLine line =
      CliOk({"--port", "11311", "--listen", "::1", "--memory-limit", "64", "--threads", "4",
             "--conn-limit", "100", "--max-item-size", "512k", "--unix-socket", "/tmp/s.sock",
             "--unix-mask", "700", "--enable-shutdown", "--verbose"});
  const Config& c = line.config;
  EXPECT_EQ(c.server.port, 11311);
  EXPECT_EQ(c.server.listen, "::1");
  EXPECT_EQ(c.tiers.ram.size, 64 * kMiB);
  EXPECT_EQ(c.server.workers, 4u);
  EXPECT_EQ(c.server.max_connections, 100u);
  EXPECT_EQ(c.tiers.ram.max_item_size, 512 * kKiB);
  EXPECT_EQ(c.server.unix_socket, "/tmp/s.sock");
  EXPECT_EQ(c.server.unix_socket_mode, 0700u);
  EXPECT_EQ(c.server.enable_shutdown, true);
  EXPECT_EQ(c.log.level, "debug");
}

TEST(CommandLineTest, EqualsAndGluedForms) {
  const Config c = CliOk({"--port=1", "-t2", "--listen=localhost", "-I1048576", "-m8",
                          "--unix-socket=/x", "-a0600"})
                       .config;
  EXPECT_EQ(c.server.port, 1);
  EXPECT_EQ(c.server.workers, 2u);
  EXPECT_EQ(c.server.listen, "localhost");
  EXPECT_EQ(c.tiers.ram.max_item_size, kMiB);
  EXPECT_EQ(c.tiers.ram.size, 8 * kMiB);
  EXPECT_EQ(c.server.unix_socket, "/x");
  EXPECT_EQ(c.server.unix_socket_mode, 0600u);
}

TEST(CommandLineTest, ShortFlagClusters) {
  Config c = CliOk({"-Av"}).config;
  EXPECT_EQ(c.server.enable_shutdown, true);
  EXPECT_EQ(c.log.level, "debug");
  c = CliOk({"-vv", "-Ap", "11311"}).config;
  EXPECT_EQ(c.log.level, "debug");
  EXPECT_EQ(c.server.port, 11311);
  c = CliOk({"-Ap11311"}).config;
  EXPECT_EQ(c.server.port, 11311);
  EXPECT_EQ(c.server.enable_shutdown, true);
}

TEST(CommandLineTest, MemcachedItemSizeForms) {
  struct Case {
    const char* text;
    uint64_t bytes;
  };
  for (const Case& k :
       {Case{"2m", 2 * kMiB}, Case{"512k", 512 * kKiB}, Case{"1048576", kMiB}, Case{"1M", kMiB},
        Case{"64K", 64 * kKiB}, Case{"1g", kGiB}, Case{"1KiB", kKiB}}) {
    SCOPED_TRACE(k.text);
    EXPECT_EQ(CliOk({"-m", "2048", "-I", k.text}).config.tiers.ram.max_item_size, k.bytes);
  }
}

TEST(CommandLineTest, LastFlagWins) {
  EXPECT_EQ(CliOk({"-p", "1", "--port", "2"}).config.server.port, 2);
}

TEST(CommandLineTest, HelpAndVersionStopParsing) {
  CommandLine line = CliOk({"-h"});
  EXPECT_TRUE(line.show_help);
  EXPECT_FALSE(line.show_version);
  EXPECT_TRUE(CliOk({"--help", "--bogus"}).show_help);
  EXPECT_TRUE(CliOk({"-p", "1", "-h", "-p", "x"}).show_help);
  EXPECT_TRUE(CliOk({"-vh"}).show_help);
  line = CliOk({"-V"});
  EXPECT_TRUE(line.show_version);
  EXPECT_FALSE(line.show_help);
  EXPECT_TRUE(CliOk({"--version"}).show_version);
  // The config file is not read when help is asked for.
  EXPECT_TRUE(CliOk({"--config", "/nonexistent/strata.yaml", "--help"}).show_help);
  // Errors before --help still count.
  EXPECT_EQ(CliError({"-p", "x", "--help"}), "-p: expected an integer 0..65535, got \"x\"");
}

TEST(CommandLineTest, DoubleDashEndsFlags) {
  EXPECT_EQ(CliOk({"-p", "1", "--"}).config.server.port, 1);
  EXPECT_EQ(CliError({"--", "-p"}), "unexpected argument \"-p\"");
}

TEST(CommandLineTest, ConfigFileThenFlagsWhateverTheOrder) {
  TempDir dir;
  std::string path = dir.Write("s.yaml",
                               "server:\n  port: 2000\n  workers: 3\n"
                               "tiers:\n  ram:\n    size: 64MiB\n    eviction: lru\n");
  for (const auto& args : std::vector<std::vector<std::string>>{
           {"-p", "1000", "--config", path},
           {"--config", path, "-p", "1000"},
           {"-C", path, "-p1000"},
           {"--config=" + path, "--port=1000"},
           {"-C" + path, "-p", "1000"},
       }) {
    std::vector<const char*> argv = {"strata"};
    for (const std::string& a : args) argv.push_back(a.c_str());
    common::Result<CommandLine> r = ParseCommandLine(static_cast<int>(argv.size()), argv.data());
    ASSERT_TRUE(r.ok()) << r.status().message();
    const Config& c = r->config;
    EXPECT_EQ(c.config_file, path);
    EXPECT_EQ(c.server.port, 1000);   // the flag wins
    EXPECT_EQ(c.server.workers, 3u);  // the file fills the rest
    EXPECT_EQ(c.tiers.ram.size, 64 * kMiB);
    EXPECT_EQ(c.tiers.ram.eviction, "lru");
  }
}

TEST(CommandLineTest, FlagsOverrideEveryFileSetting) {
  TempDir dir;
  std::string path = dir.Write("s.yaml", R"(
server: {listen: 127.0.0.1, port: 1, unix_socket: /a, unix_socket_mode: "0700", workers: 1,
         max_connections: 1, enable_shutdown: false}
tiers: {ram: {size: 1GiB, max_item_size: 1MiB}}
log: {level: error}
)");
  const Config c = CliOk({"-C", path, "-l", "::", "-p", "2",  "-s", "/b", "-a", "0600",
                          "-t", "2",  "-c", "2",  "-A", "-m", "2",  "-I", "2m", "-v"})
                       .config;
  EXPECT_EQ(c.server.listen, "::");
  EXPECT_EQ(c.server.port, 2);
  EXPECT_EQ(c.server.unix_socket, "/b");
  EXPECT_EQ(c.server.unix_socket_mode, 0600u);
  EXPECT_EQ(c.server.workers, 2u);
  EXPECT_EQ(c.server.max_connections, 2u);
  EXPECT_EQ(c.server.enable_shutdown, true);
  EXPECT_EQ(c.tiers.ram.size, 2 * kMiB);
  EXPECT_EQ(c.tiers.ram.max_item_size, 2 * kMiB);
  EXPECT_EQ(c.log.level, "debug");
}

TEST(CommandLineTest, ConfigFileErrorsComeThrough) {
  TempDir dir;
  std::string missing = dir.path() + "/missing.yaml";
  common::Result<CommandLine> r = Cli({"--config", missing});
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kNotFound);
  EXPECT_EQ(r.status().message(), missing + ": cannot open: No such file or directory");

  std::string bad = dir.Write("bad.yaml", "tiers: {ram: {size: lots}}\n");
  EXPECT_EQ(CliError({"-C", bad, "-p", "1"}),
            "tiers.ram.size: expected a size like 256MiB, got \"lots\" (" + bad + ":1:15)");
  // A flag cannot rescue an invalid file.
  EXPECT_EQ(CliError({"-C", bad, "-m", "64"}).rfind("tiers.ram.size: expected", 0), 0u);
}

TEST(CommandLineTest, EmptyConfigPath) {
  EXPECT_EQ(CliError({"--config="}), "--config: expected a file path, got \"\"");
  EXPECT_EQ(CliError({"-C", ""}), "-C: expected a file path, got \"\"");
}

TEST(CommandLineTest, NullArgumentsAreEmpty) {
  const char* argv[] = {"strata", "-p", nullptr, nullptr};
  common::Result<CommandLine> r = ParseCommandLine(3, argv);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().message(), "-p: expected an integer 0..65535, got \"\"");
  r = ParseCommandLine(0, argv);  // no argv[0] at all
  EXPECT_TRUE(r.ok());
}

TEST(CommandLineTest, ConfigGivenTwice) {
  EXPECT_EQ(CliError({"-C", "a.yaml", "--config", "b.yaml"}),
            "--config: config file given more than once");
  EXPECT_EQ(CliError({"--config=a", "-Cb"}), "-C: config file given more than once");
}

TEST(CommandLineTest, UnknownFlags) {
  EXPECT_EQ(CliError({"-x"}), "-x: unknown flag");
  EXPECT_EQ(CliError({"-p", "1", "-U", "0"}), "-U: unknown flag");
  EXPECT_EQ(CliError({"--bogus"}), "--bogus: unknown flag");
  EXPECT_EQ(CliError({"--bogus=1"}), "--bogus: unknown flag");
  EXPECT_EQ(CliError({"--Port", "1"}), "--Port: unknown flag");
  EXPECT_EQ(CliError({"--p", "1"}), "--p: unknown flag");  // no prefix matching
  EXPECT_EQ(CliError({"-Ax"}), "-x: unknown flag");
  EXPECT_EQ(CliError({"-\x01"}), "\"-\\x01\": unknown flag");
  EXPECT_EQ(CliError({"--a b"}), "\"--a b\": unknown flag");
}

TEST(CommandLineTest, UnexpectedArguments) {
  EXPECT_EQ(CliError({"foo"}), "unexpected argument \"foo\"");
  EXPECT_EQ(CliError({"-p", "1", "11211"}), "unexpected argument \"11211\"");
  EXPECT_EQ(CliError({"-"}), "unexpected argument \"-\"");
  EXPECT_EQ(CliError({""}), "unexpected argument \"\"");
}

TEST(CommandLineTest, MissingValues) {
  EXPECT_EQ(CliError({"-p"}), "-p: missing PORT");
  EXPECT_EQ(CliError({"--port"}), "--port: missing PORT");
  EXPECT_EQ(CliError({"-C"}), "-C: missing FILE");
  EXPECT_EQ(CliError({"-Am"}), "-m: missing MB");
  EXPECT_EQ(CliError({"--max-item-size"}), "--max-item-size: missing SIZE");
}

TEST(CommandLineTest, SwitchesTakeNoValue) {
  EXPECT_EQ(CliError({"--enable-shutdown=true"}), "--enable-shutdown: takes no value");
  EXPECT_EQ(CliError({"--verbose=1"}), "--verbose: takes no value");
  EXPECT_EQ(CliError({"--help=1"}), "--help: takes no value");
}

TEST(CommandLineTest, BadValuesNameTheFlag) {
  struct Case {
    std::vector<std::string> args;
    std::string message;
  };
  const Case cases[] = {
      {{"-p", "x"}, "-p: expected an integer 0..65535, got \"x\""},
      {{"--port=70000"}, "--port: expected an integer 0..65535, got \"70000\""},
      {{"--port="}, "--port: expected an integer 0..65535, got \"\""},
      {{"-l", "example.com"},
       "-l: expected an IPv4 or IPv6 address or \"localhost\", got \"example.com\""},
      {{"-m", "x"}, "-m: expected megabytes (an integer >= 1), got \"x\""},
      {{"-m", "0"}, "-m: expected megabytes (an integer >= 1), got \"0\""},
      {{"-m", "64m"}, "-m: expected megabytes (an integer >= 1), got \"64m\""},
      {{"-m", "17592186044416"},  // 2^44 MiB overflows 64 bits of bytes
       "-m: expected megabytes (an integer >= 1), got \"17592186044416\""},
      {{"--memory-limit", "-1"},
       "--memory-limit: expected megabytes (an integer >= 1), got \"-1\""},
      {{"-t", "300"}, "-t: expected an integer 0..256, got \"300\""},
      {{"--threads", "many"}, "--threads: expected an integer 0..256, got \"many\""},
      {{"-c", "0"}, "-c: expected an integer 1..4294967295, got \"0\""},
      {{"-I", "2g"}, "-I: must be between 1KiB and 1GiB, got \"2g\""},
      {{"-I", "512"}, "-I: must be between 1KiB and 1GiB, got \"512\""},
      {{"--max-item-size", "x"}, "--max-item-size: expected a size like 1MiB, got \"x\""},
      {{"-s", ""}, "-s: expected a socket path, got \"\""},
      {{"-a", "0800"}, "-a: expected octal permissions like \"0700\", at most 0777, got \"0800\""},
      {{"--unix-mask", "1777"},
       "--unix-mask: expected octal permissions like \"0700\", at most 0777, got \"1777\""},
  };
  for (const Case& k : cases) {
    std::vector<const char*> argv = {"strata"};
    for (const std::string& a : k.args) argv.push_back(a.c_str());
    common::Result<CommandLine> r = ParseCommandLine(static_cast<int>(argv.size()), argv.data());
    ASSERT_FALSE(r.ok()) << k.message;
    EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
    EXPECT_EQ(r.status().message(), k.message);
  }
}

TEST(CommandLineTest, LargestMegabytes) {
  // 2^44 - 1 MiB is the largest -m whose bytes fit in 64 bits.
  EXPECT_EQ(CliOk({"-m", "17592186044415"}).config.tiers.ram.size, uint64_t{17592186044415} << 20);
}

TEST(CommandLineTest, ItemSizeMustFitTheRamTier) {
  // Both from flags.
  EXPECT_EQ(CliError({"-m", "1", "-I", "2m"}),
            "-I: 2MiB is larger than the RAM tier size (-m 1MiB)");
  EXPECT_EQ(CliError({"-I", "2m", "--memory-limit", "1"}),
            "-I: 2MiB is larger than the RAM tier size (--memory-limit 1MiB)");
  EXPECT_TRUE(CliOk({"-m", "1", "-I", "1m"}).config.tiers.ram.max_item_size);

  TempDir dir;
  // -I against the file's size.
  std::string small = dir.Write("small.yaml", "tiers: {ram: {size: 1MiB}}\n");
  EXPECT_EQ(CliError({"-C", small, "--max-item-size=4m"}),
            "--max-item-size: 4MiB is larger than the RAM tier size (tiers.ram.size 1MiB)");
  // -m against the file's max_item_size.
  std::string big_items = dir.Write("big.yaml", "tiers: {ram: {max_item_size: 8MiB}}\n");
  EXPECT_EQ(CliError({"-m", "4", "-C", big_items}),
            "-m: 4MiB is smaller than tiers.ram.max_item_size (8MiB) in " + big_items);
  // A flag can also fix what would clash.
  std::string both = dir.Write("both.yaml", "tiers: {ram: {size: 64MiB, max_item_size: 8MiB}}\n");
  EXPECT_EQ(CliOk({"-C", both, "-m", "8"}).config.tiers.ram.size, 8 * kMiB);
  EXPECT_EQ(CliOk({"-C", both, "-m", "4", "-I", "1m"}).config.tiers.ram.size, 4 * kMiB);
}

// ---------------------------------------------------------------------------
// Usage

TEST(UsageTest, ListsEveryFlag) {
  const std::string usage = Usage();
  for (const char* flag :
       {"-C, --config FILE", "-p, --port PORT", "-l, --listen ADDR", "-s, --unix-socket PATH",
        "-a, --unix-mask MASK", "-t, --threads N", "-c, --conn-limit N", "-A, --enable-shutdown",
        "-m, --memory-limit MB", "-I, --max-item-size SIZE", "-v, --verbose", "-h, --help",
        "-V, --version"}) {
    EXPECT_NE(usage.find(flag), std::string::npos) << flag << "\n" << usage;
  }
  EXPECT_EQ(usage.rfind("Usage: strata [options]\n", 0), 0u);
  // Every line fits a terminal.
  size_t start = 0;
  while (start < usage.size()) {
    size_t end = usage.find('\n', start);
    if (end == std::string::npos) end = usage.size();
    EXPECT_LE(end - start, 80u) << usage.substr(start, end - start);
    start = end + 1;
  }
}

// ---------------------------------------------------------------------------
// metrics

TEST(MetricsConfigTest, YamlSettings) {
  Config c = Parse("metrics:\n  enabled: false\n  listen: 0.0.0.0:9150\n");
  EXPECT_EQ(c.metrics.enabled, false);
  EXPECT_EQ(c.metrics.listen, "0.0.0.0:9150");
  ExpectEmpty(Parse("metrics:\n"));
  for (const char* a : {"127.0.0.1:0", "localhost:9150", "10.1.2.3:65535"}) {
    SCOPED_TRACE(a);
    EXPECT_EQ(Parse(std::string("metrics: {listen: ") + a + "}").metrics.listen, a);
  }
}

TEST(MetricsConfigTest, YamlErrors) {
  EXPECT_EQ(Error("metrics:\n  listen: 9150\n"),
            "metrics.listen: expected an IPv4 address and port like 127.0.0.1:9150, got "
            "\"9150\" (t.yaml:2:3)");
  for (const char* bad : {"\"[::1]:9150\"", "\"::1:9150\"", "127.0.0.1:65536", "\"127.0.0.1:\"",
                          ":9150", "example.com:9150", "127.0.0.1:x", "\"127.0.0.1:-1\""}) {
    SCOPED_TRACE(bad);
    EXPECT_EQ(
        Error(std::string("metrics: {listen: ") + bad + "}").rfind("metrics.listen: expected", 0),
        0u);
  }
  EXPECT_EQ(Error("metrics: {enabled: yes}").rfind("metrics.enabled: expected true or false", 0),
            0u);
  EXPECT_EQ(Error("metrics: {port: 1}"),
            "metrics.port: unknown key; expected one of enabled, listen (t.yaml:1:11)");
}

TEST(MetricsConfigTest, MetricsListenFlag) {
  EXPECT_EQ(CliOk({"--metrics-listen", "127.0.0.1:0"}).config.metrics.listen, "127.0.0.1:0");
  EXPECT_EQ(CliOk({"--metrics-listen=0.0.0.0:9151"}).config.metrics.listen, "0.0.0.0:9151");
  EXPECT_EQ(CliError({"--metrics-listen", "nope"}),
            "--metrics-listen: expected an IPv4 address and port like 127.0.0.1:9150, got "
            "\"nope\"");
  EXPECT_EQ(CliError({"--metrics-listen"}), "--metrics-listen: missing ADDR:PORT");
  // It has no short form.
  EXPECT_EQ(CliError({"-M", "127.0.0.1:1"}), "-M: unknown flag");
  // The flag overrides the file, which keeps its other metrics settings.
  TempDir dir;
  std::string file = dir.Write("m.yaml", "metrics: {enabled: false, listen: 127.0.0.1:1}\n");
  Config c = CliOk({"--metrics-listen", "127.0.0.1:2", "-C", file}).config;
  EXPECT_EQ(c.metrics.listen, "127.0.0.1:2");
  EXPECT_EQ(c.metrics.enabled, false);
  EXPECT_NE(Usage().find("      --metrics-listen ADDR:PORT"), std::string::npos) << Usage();
}

}  // namespace
}  // namespace strata::config

namespace strata::config {
namespace {

TEST(SsdConfigTest, FullSectionParses) {
  auto c = ParseYaml(
      "tiers:\n  ssd:\n    path: /var/cache/strata.bin\n    size: 2GiB\n    region_size: 8MiB\n"
      "    compression: none\n    io: threadpool\n    admission: all\n    write_budget: 50MiB\n"
      "    promote_threshold: 0\n    large_item_percent: 25\n    demote_on_shutdown: false\n",
      "t.yaml");
  ASSERT_TRUE(c.ok()) << c.status().message();
  const SsdConfig& d = c->tiers.ssd;
  EXPECT_EQ(*d.path, "/var/cache/strata.bin");
  EXPECT_EQ(*d.size, 2ull << 30);
  EXPECT_EQ(*d.region_size, 8ull << 20);
  EXPECT_EQ(*d.compression, "none");
  EXPECT_EQ(*d.io, "threadpool");
  EXPECT_EQ(*d.admission, "all");
  EXPECT_EQ(*d.write_budget, 50ull << 20);
  EXPECT_EQ(*d.promote_threshold, 0u);
  EXPECT_EQ(*d.large_item_percent, 25u);
  EXPECT_FALSE(*d.demote_on_shutdown);
}

TEST(SsdConfigTest, RejectsIncompleteOrImpossibleSections) {
  auto err = [](const std::string& yaml) {
    auto c = ParseYaml(yaml, "t.yaml");
    return c.ok() ? std::string("ok") : c.status().message();
  };
  EXPECT_EQ(err("tiers: {ssd: {size: 1GiB}}").rfind("tiers.ssd.path: required", 0), 0u);
  EXPECT_EQ(err("tiers: {ssd: {path: /x}}").rfind("tiers.ssd.size: required", 0), 0u);
  EXPECT_EQ(err("tiers: {ssd: {path: /x, size: 32MiB}}")
                .rfind("tiers.ssd.size: must be at least 4 regions (4 x 16MiB)", 0),
            0u);
  EXPECT_EQ(err("tiers: {ssd: {path: /x, size: 8MiB, region_size: 2MiB}}"), "ok");
  EXPECT_EQ(err("tiers: {ssd: {path: /x, size: 1GiB, region_size: 100MiB}}")
                .rfind("tiers.ssd.region_size: must be a multiple of 4KiB between 1MiB and 64MiB", 0),
            0u);
  EXPECT_EQ(err("tiers: {ssd: {path: /x, size: 1GiB, compression: zstd}}")
                .rfind("tiers.ssd.compression: expected one of lz4, none", 0),
            0u);
  EXPECT_EQ(err("tiers: {ssd: {path: /x, size: 1GiB, io: aio}}")
                .rfind("tiers.ssd.io: expected one of auto, io_uring, threadpool", 0),
            0u);
  EXPECT_EQ(err("tiers: {ssd: {path: /x, size: 1GiB, promote_threshold: 16}}"),
            "tiers.ssd.promote_threshold: expected an integer 0..15, got \"16\" (t.yaml:1:37)");
  EXPECT_EQ(err("tiers: {ssd: {promote_threshold: 2}}").rfind("tiers.ssd.path: required", 0), 0u);
  EXPECT_EQ(err("tiers: {ssd: {path: /x, size: 1GiB, large_item_percent: 0}}"),
            "tiers.ssd.large_item_percent: expected an integer 1..100, got \"0\" (t.yaml:1:37)");
  EXPECT_EQ(err("tiers: {ssd: {path: /x, size: 1GiB, large_item_percent: 101}}"),
            "tiers.ssd.large_item_percent: expected an integer 1..100, got \"101\" (t.yaml:1:37)");
  EXPECT_EQ(err("tiers: {ssd: {large_item_percent: 10}}").rfind("tiers.ssd.path: required", 0), 0u);
  EXPECT_EQ(err("tiers: {ssd: {path: /x, size: 1000}}").rfind("tiers.ssd.size: must be a multiple of 4KiB", 0), 0u);
}

TEST(ServerConfigTest, NetworkIoTakesAutoIoUringOrSyscalls) {
  for (const char* mode : {"auto", "io_uring", "syscalls"}) {
    auto c = ParseYaml(std::string("server: {network_io: ") + mode + "}", "t.yaml");
    ASSERT_TRUE(c.ok()) << c.status().message();
    EXPECT_EQ(*c->server.network_io, mode);
  }
  auto bad = ParseYaml("server:\n  network_io: epoll\n", "t.yaml");
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.status().message(),
            "server.network_io: expected one of auto, io_uring, syscalls, got \"epoll\" (t.yaml:2:3)");
  const char* argv[] = {"strata", "--network-io", "syscalls"};
  auto line = ParseCommandLine(3, argv);
  ASSERT_TRUE(line.ok()) << line.status().message();
  EXPECT_EQ(*line->config.server.network_io, "syscalls");
  const char* bad_flag[] = {"strata", "--network-io", "fast"};
  auto refused = ParseCommandLine(3, bad_flag);
  ASSERT_FALSE(refused.ok());
  EXPECT_NE(refused.status().message().find("--network-io"), std::string::npos)
      << refused.status().message();
}

TEST(ServerConfigTest, MaxConnectionMemoryTakesASizeOrAuto) {
  auto c = ParseYaml("server: {max_connection_memory: 96MiB}", "t.yaml");
  ASSERT_TRUE(c.ok()) << c.status().message();
  EXPECT_EQ(c->server.max_connection_memory, 96 * kMiB);
  c = ParseYaml("server: {max_connection_memory: auto}", "t.yaml");
  ASSERT_TRUE(c.ok()) << c.status().message();
  EXPECT_EQ(c->server.max_connection_memory, 0u);
  c = ParseYaml("server: {max_connection_memory: 1MiB}", "t.yaml");  // the least
  ASSERT_TRUE(c.ok()) << c.status().message();
  EXPECT_EQ(c->server.max_connection_memory, kMiB);

  EXPECT_EQ(Error("server:\n  max_connection_memory: 1048575\n"),
            "server.max_connection_memory: must be at least 1MiB (or auto), got \"1048575\" "
            "(t.yaml:2:3)");
  EXPECT_EQ(Error("server: {max_connection_memory: 0}"),
            "server.max_connection_memory: must be at least 1MiB (or auto), got \"0\" "
            "(t.yaml:1:10)");
  EXPECT_EQ(Error("server: {max_connection_memory: lots}"),
            "server.max_connection_memory: expected a size like 64MiB, or auto, got \"lots\" "
            "(t.yaml:1:10)");
  EXPECT_EQ(Error("server: {max_connection_memory: [1]}"),
            "server.max_connection_memory: expected a size like 64MiB, or auto, got a sequence "
            "(t.yaml:1:10)");

  EXPECT_EQ(CliOk({"--max-connection-memory", "2GiB"}).config.server.max_connection_memory,
            2 * kGiB);
  EXPECT_EQ(CliOk({"--max-connection-memory=auto"}).config.server.max_connection_memory, 0u);
  EXPECT_EQ(CliError({"--max-connection-memory", "512k"}),
            "--max-connection-memory: must be at least 1MiB (or auto), got \"512k\"");
  // The flag overrides the file.
  TempDir dir;
  const std::string path = dir.Write("m.yaml", "server:\n  max_connection_memory: 64MiB\n");
  EXPECT_EQ(CliOk({"--max-connection-memory", "128MiB", "--config", path})
                .config.server.max_connection_memory,
            128 * kMiB);
  EXPECT_EQ(CliOk({"--config", path}).config.server.max_connection_memory, 64 * kMiB);
  EXPECT_NE(Usage().find("--max-connection-memory SIZE"), std::string::npos);
  EXPECT_NE(Usage().find("[server.max_connection_memory]"), std::string::npos);
}

TEST(SsdConfigTest, FlagsOverrideAndDisable) {
  const char* argv[] = {"strata", "--ssd-path", "/tmp/x.bin", "--ssd-size", "1GiB", "--ssd-io",
                        "io_uring"};
  auto line = ParseCommandLine(7, argv);
  ASSERT_TRUE(line.ok()) << line.status().message();
  EXPECT_EQ(*line->config.tiers.ssd.path, "/tmp/x.bin");
  EXPECT_EQ(*line->config.tiers.ssd.size, 1ull << 30);
  EXPECT_EQ(*line->config.tiers.ssd.io, "io_uring");
  const char* no_size[] = {"strata", "--ssd-path", "/tmp/x.bin"};
  auto bad = ParseCommandLine(3, no_size);
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.status().message().rfind("--ssd-path: needs --ssd-size", 0), 0u);
  const char* off[] = {"strata", "--ssd-path", "/tmp/x.bin", "--no-ssd"};
  auto disabled = ParseCommandLine(4, off);
  ASSERT_TRUE(disabled.ok());
  EXPECT_TRUE(disabled->config.tiers.ssd.disabled);
  EXPECT_FALSE(disabled->config.tiers.ssd.path);
}

// ---------------------------------------------------------------------------
// upstream

TEST(UpstreamConfigTest, Unset) {
  Config c = Parse("server: {port: 1}\n");
  EXPECT_FALSE(c.upstream.servers);
  EXPECT_FALSE(c.upstream.distribution);
  EXPECT_FALSE(c.upstream.near_cache_ttl_ms);
  EXPECT_FALSE(c.upstream.forward_flush);
  EXPECT_FALSE(c.upstream.connections_per_server);
  EXPECT_FALSE(Parse("upstream:\n").upstream.servers);
}

TEST(UpstreamConfigTest, EverySetting) {
  Config c = Parse(
      "upstream:\n"
      "  servers:\n"
      "    - 10.0.0.1:11211\n"
      "    - memcached-1.mc:22122:3\n"
      "    - \"[fd00::1]:11211:2 cache-c\"\n"
      "  distribution: ketama\n"
      "  near_cache_ttl: 5m\n"
      "  forward_flush: true\n"
      "  connections_per_server: 4\n");
  ASSERT_TRUE(c.upstream.servers);
  const std::vector<common::ServerSpec> want = {{"10.0.0.1", 11211, 1, ""},
                                                {"memcached-1.mc", 22122, 3, ""},
                                                {"fd00::1", 11211, 2, "cache-c"}};
  EXPECT_EQ(*c.upstream.servers, want);
  EXPECT_EQ(c.upstream.distribution, "ketama");
  EXPECT_EQ(c.upstream.near_cache_ttl_ms, 300'000u);
  EXPECT_EQ(c.upstream.forward_flush, true);
  EXPECT_EQ(c.upstream.connections_per_server, 4u);
}

TEST(UpstreamConfigTest, GoodValues) {
  for (const char* d : {"ketama", "rendezvous", "jump", "modula"}) {
    EXPECT_EQ(Parse(std::string("upstream: {distribution: ") + d + "}").upstream.distribution, d);
  }
  EXPECT_EQ(Parse("upstream: {near_cache_ttl: 0}").upstream.near_cache_ttl_ms, 0u);
  EXPECT_EQ(Parse("upstream: {near_cache_ttl: 1500ms}").upstream.near_cache_ttl_ms, 1500u);
  EXPECT_EQ(Parse("upstream: {near_cache_ttl: 30}").upstream.near_cache_ttl_ms, 30'000u);
  EXPECT_EQ(Parse("upstream: {near_cache_ttl: 30d}").upstream.near_cache_ttl_ms,
            30ull * 86'400'000);
  EXPECT_EQ(Parse("upstream: {connections_per_server: 64}").upstream.connections_per_server, 64u);
  EXPECT_EQ(Parse("upstream: {servers: []}").upstream.servers, std::vector<common::ServerSpec>{});
  EXPECT_EQ(Parse("upstream: {servers: }").upstream.servers, std::vector<common::ServerSpec>{});
  // Weights suit modula; ketama (also the default) takes weights and names.
  EXPECT_TRUE(Parse("upstream: {distribution: modula, servers: [a:1:3, b:1]}").upstream.servers);
  EXPECT_TRUE(Parse("upstream: {servers: [\"a:1:3 x\", b:1]}").upstream.servers);
  // Weight 1 written out is no weight.
  EXPECT_TRUE(Parse("upstream: {distribution: jump, servers: [a:1:1]}").upstream.servers);
}

TEST(UpstreamConfigTest, Timeouts) {
  Config c = Parse("upstream: {connect_timeout: 50ms, request_timeout: 2s}");
  EXPECT_EQ(c.upstream.connect_timeout_ms, 50u);
  EXPECT_EQ(c.upstream.request_timeout_ms, 2000u);
  EXPECT_EQ(Error("upstream: {request_timeout: 0}"),
            "upstream.request_timeout: must be 1ms..60s, got \"0\" (t.yaml:1:12)");
  EXPECT_EQ(Error("upstream: {connect_timeout: 2m}"),
            "upstream.connect_timeout: must be 1ms..60s, got \"2m\" (t.yaml:1:12)");
  EXPECT_EQ(Error("upstream: {connect_timeout: fast}"),
            "upstream.connect_timeout: expected a duration like 200ms, 1ms..60s, got "
            "\"fast\" (t.yaml:1:12)");
}

TEST(UpstreamConfigTest, DownMarkingAndProbes) {
  Config c = Parse(
      "upstream: {down_after_timeouts: 5, down_after_connect_failures: 2, "
      "probe_interval: 50ms, probe_interval_max: 30s, max_in_flight: 64}");
  EXPECT_EQ(c.upstream.down_after_timeouts, 5u);
  EXPECT_EQ(c.upstream.down_after_connect_failures, 2u);
  EXPECT_EQ(c.upstream.probe_interval_ms, 50u);
  EXPECT_EQ(c.upstream.probe_interval_max_ms, 30'000u);
  EXPECT_EQ(c.upstream.max_in_flight, 64u);
  EXPECT_EQ(Error("upstream: {down_after_timeouts: 0}"),
            "upstream.down_after_timeouts: expected an integer 1..1000, got \"0\" (t.yaml:1:12)");
  EXPECT_EQ(Error("upstream: {down_after_connect_failures: 1001}"),
            "upstream.down_after_connect_failures: expected an integer 1..1000, got \"1001\" "
            "(t.yaml:1:12)");
  EXPECT_EQ(Error("upstream: {probe_interval: 0ms}"),
            "upstream.probe_interval: must be 1ms..60s, got \"0ms\" (t.yaml:1:12)");
  EXPECT_EQ(Error("upstream: {probe_interval_max: 2m}"),
            "upstream.probe_interval_max: must be 1ms..60s, got \"2m\" (t.yaml:1:12)");
  EXPECT_EQ(Error("upstream: {max_in_flight: 0}"),
            "upstream.max_in_flight: expected an integer 1..1048576, got \"0\" (t.yaml:1:12)");
  EXPECT_EQ(Parse("upstream: {revalidate_idle: 0}").upstream.revalidate_idle_ms, 0u);
  EXPECT_EQ(Parse("upstream: {revalidate_idle: 1h}").upstream.revalidate_idle_ms, 3'600'000u);
  EXPECT_EQ(Error("upstream: {revalidate_idle: 2h}"),
            "upstream.revalidate_idle: must be at most 1h, got \"2h\" (t.yaml:1:12)");
  EXPECT_EQ(Error("upstream: {revalidate_idle: often}"),
            "upstream.revalidate_idle: expected a duration like 10s, at most 1h, or 0, got "
            "\"often\" (t.yaml:1:12)");
  EXPECT_EQ(Error("upstream: {max_in_flight: many}"),
            "upstream.max_in_flight: expected an integer 1..1048576, got \"many\" "
            "(t.yaml:1:12)");
}

TEST(UpstreamConfigTest, BadValues) {
  EXPECT_EQ(Error("upstream: {distribution: consistent}"),
            "upstream.distribution: expected one of ketama, rendezvous, jump, modula, got "
            "\"consistent\" (t.yaml:1:12)");
  EXPECT_EQ(Error("upstream: {near_cache_ttl: soon}"),
            "upstream.near_cache_ttl: expected a duration like 60s, at most 30d, or 0, got "
            "\"soon\" (t.yaml:1:12)");
  EXPECT_EQ(Error("upstream: {near_cache_ttl: 31d}"),
            "upstream.near_cache_ttl: must be at most 30d, got \"31d\" (t.yaml:1:12)");
  EXPECT_EQ(Error("upstream: {near_cache_ttl: -1s}"),
            "upstream.near_cache_ttl: expected a duration like 60s, at most 30d, or 0, got "
            "\"-1s\" (t.yaml:1:12)");
  EXPECT_EQ(Error("upstream: {forward_flush: yes}"),
            "upstream.forward_flush: expected true or false, got \"yes\" (t.yaml:1:12)");
  EXPECT_EQ(Error("upstream: {connections_per_server: 0}"),
            "upstream.connections_per_server: expected an integer 1..64, got \"0\" (t.yaml:1:12)");
  EXPECT_EQ(Error("upstream: {connections_per_server: 65}"),
            "upstream.connections_per_server: expected an integer 1..64, got \"65\" "
            "(t.yaml:1:12)");
  EXPECT_EQ(Error("upstream: {bogus: 1}"),
            "upstream.bogus: unknown key; expected one of servers, distribution, "
            "near_cache_ttl, forward_flush, connections_per_server, connect_timeout, "
            "request_timeout, down_after_timeouts, down_after_connect_failures, "
            "probe_interval, probe_interval_max, max_in_flight, revalidate_idle, dns_resolver, "
            "dns_refresh, file_refresh, removal_grace (t.yaml:1:12)");
  EXPECT_EQ(Error("upstream: [a]"), "upstream: expected a map, got a sequence (t.yaml:1:1)");
}

TEST(UpstreamConfigTest, MembershipSources) {
  Config c = Parse(
      "upstream:\n"
      "  servers:\n"
      "    - 10.0.0.1:11211\n"
      "    - file:/etc/strata/servers\n"
      "    - dns+memcached.ns.svc:11211\n"
      "    - dnssrv+_memcache._tcp.memcached.ns.svc.cluster.local\n"
      "  dns_resolver: 127.0.0.1:5353\n"
      "  dns_refresh: 10s\n"
      "  file_refresh: 500ms\n"
      "  removal_grace: 0\n");
  ASSERT_TRUE(c.upstream.servers);
  ASSERT_TRUE(c.upstream.sources);
  EXPECT_EQ(c.upstream.servers->size(), 1u);
  ASSERT_EQ(c.upstream.sources->size(), 4u);
  using Kind = common::MemberSource::Kind;
  EXPECT_EQ((*c.upstream.sources)[0].kind, Kind::kStatic);
  EXPECT_EQ((*c.upstream.sources)[1].kind, Kind::kFile);
  EXPECT_EQ((*c.upstream.sources)[1].target, "/etc/strata/servers");
  EXPECT_EQ((*c.upstream.sources)[2].kind, Kind::kDns);
  EXPECT_EQ((*c.upstream.sources)[2].target, "memcached.ns.svc");
  EXPECT_EQ((*c.upstream.sources)[2].port, 11211);
  EXPECT_EQ((*c.upstream.sources)[3].kind, Kind::kDnsSrv);
  EXPECT_EQ(c.upstream.dns_resolver, "127.0.0.1:5353");
  EXPECT_EQ(c.upstream.dns_refresh_ms, 10'000u);
  EXPECT_EQ(c.upstream.file_refresh_ms, 500u);
  EXPECT_EQ(c.upstream.removal_grace_ms, 0u);
  EXPECT_EQ(Parse("upstream: {dns_resolver: \"[::1]:53\"}").upstream.dns_resolver, "[::1]:53");
  EXPECT_EQ(Parse("upstream: {dns_resolver: \"\"}").upstream.dns_resolver, "");
}

TEST(UpstreamConfigTest, BadMembershipSources) {
  EXPECT_EQ(Error("upstream: {servers: [a:1, \"dns+mc\"]}"),
            "upstream.servers[1]: dns+ needs a port (\"dns+host:port\"), got \"dns+mc\" "
            "(t.yaml:1:27)");
  EXPECT_EQ(Error("upstream: {servers: [\"file:\"]}"),
            "upstream.servers[0]: file: needs a path (\"file:/etc/strata/servers\"), got "
            "\"file:\" (t.yaml:1:22)");
  EXPECT_EQ(Error("upstream: {servers: [\"dnssrv+bad name\"]}"),
            "upstream.servers[0]: dnssrv+ needs an SRV name "
            "(\"dnssrv+_memcache._tcp.memcached.ns.svc.cluster.local\"), got "
            "\"dnssrv+bad name\" (t.yaml:1:22)");
  EXPECT_EQ(Error("upstream: {servers: [\"file:/a\", \"file:/a\"]}"),
            "upstream.servers[1]: file:/a is listed twice (also upstream.servers[0]) "
            "(t.yaml:1:33)");
  EXPECT_EQ(Error("upstream: {dns_resolver: dns.local:53}"),
            "upstream.dns_resolver: expected an IP address and port like 10.96.0.10:53 or "
            "[fd00::a]:53, or \"\", got \"dns.local:53\" (t.yaml:1:12)");
  EXPECT_EQ(Error("upstream: {dns_resolver: 10.0.0.1}"),
            "upstream.dns_resolver: expected an IP address and port like 10.96.0.10:53 or "
            "[fd00::a]:53, or \"\", got \"10.0.0.1\" (t.yaml:1:12)");
  EXPECT_EQ(Error("upstream: {dns_refresh: 10ms}"),
            "upstream.dns_refresh: must be 100ms..1h, got \"10ms\" (t.yaml:1:12)");
  EXPECT_EQ(Error("upstream: {file_refresh: 2h}"),
            "upstream.file_refresh: must be 100ms..1h, got \"2h\" (t.yaml:1:12)");
  EXPECT_EQ(Error("upstream: {removal_grace: 2h}"),
            "upstream.removal_grace: must be at most 1h, got \"2h\" (t.yaml:1:12)");
  EXPECT_EQ(Error("upstream: {removal_grace: later}"),
            "upstream.removal_grace: expected a duration like 30s, at most 1h, or 0, got "
            "\"later\" (t.yaml:1:12)");
}

TEST(UpstreamConfigTest, BadServers) {
  EXPECT_EQ(Error("upstream: {servers: 10.0.0.1:11211}"),
            "upstream.servers: expected a list of servers, got \"10.0.0.1:11211\" (t.yaml:1:12)");
  EXPECT_EQ(Error("upstream: {servers: {a: 1}}"),
            "upstream.servers: expected a list of servers, got a map (t.yaml:1:12)");
  EXPECT_EQ(Error("upstream:\n  servers:\n    - 10.0.0.1:11211\n    - 10.0.0.2\n"),
            "upstream.servers[1]: expected \"host:port\", \"host:port:weight\" or "
            "\"host:port:weight name\", got \"10.0.0.2\" (t.yaml:4:7)");
  EXPECT_EQ(Error("upstream:\n  servers:\n    - a:1\n    - b:1\n    - c:0\n"),
            "upstream.servers[2]: port must be 1..65535, got \"0\" in \"c:0\" (t.yaml:5:7)");
  EXPECT_EQ(Error("upstream:\n  servers:\n    - [a, 1]\n"),
            "upstream.servers[0]: expected \"host:port\", \"host:port:weight\" or "
            "\"host:port:weight name\", got a sequence (t.yaml:3:7)");
  EXPECT_EQ(Error("upstream:\n  servers:\n    -\n"),
            "upstream.servers[0]: expected \"host:port\", \"host:port:weight\" or "
            "\"host:port:weight name\", got null (t.yaml:4:1)");
  EXPECT_EQ(Error("upstream: {servers: [a:1:0]}"),
            "upstream.servers[0]: weight must be 1..65535, got \"0\" in \"a:1:0\" (t.yaml:1:22)");
  EXPECT_EQ(Error("upstream:\n  servers: [a:1, b:2, \"a:1:4 x\"]\n"),
            "upstream.servers[2]: a:1 is listed twice (also upstream.servers[0]) (t.yaml:2:23)");
  EXPECT_EQ(Error("upstream: {servers: [\"[::1]:5\", \"[::1]:5:2\"]}"),
            "upstream.servers[1]: [::1]:5 is listed twice (also upstream.servers[0]) "
            "(t.yaml:1:33)");
}

TEST(UpstreamConfigTest, WeightsAndNamesMustSuitTheDistribution) {
  EXPECT_EQ(Error("upstream:\n  distribution: rendezvous\n  servers: [a:1, b:1:2]\n"),
            "upstream.servers[1]: weight 2: upstream.distribution rendezvous has no weights "
            "(its clients give every server one share); use ketama or modula (t.yaml:3:18)");
  // The order of the keys does not matter.
  EXPECT_EQ(Error("upstream:\n  servers: [a:1:2]\n  distribution: jump\n"),
            "upstream.servers[0]: weight 2: upstream.distribution jump has no weights (its "
            "clients give every server one share); use ketama or modula (t.yaml:2:13)");
  EXPECT_EQ(Error("upstream:\n  distribution: modula\n  servers: [\"a:1:2 alpha\"]\n"),
            "upstream.servers[0]: a server name (\"alpha\") is used only by "
            "upstream.distribution ketama, not modula (t.yaml:3:13)");
}

}  // namespace
}  // namespace strata::config
