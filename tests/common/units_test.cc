// Tests of common/units.h (sizes and durations with units) and
// common/status.h (Status and Result<T>).

#include "common/units.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <limits>
#include <memory>
#include <string>

#include "common/status.h"

namespace strata::common {
namespace {

constexpr uint64_t kKiB = uint64_t{1} << 10;
constexpr uint64_t kMiB = uint64_t{1} << 20;
constexpr uint64_t kGiB = uint64_t{1} << 30;
constexpr uint64_t kTiB = uint64_t{1} << 40;
constexpr uint64_t kMax = std::numeric_limits<uint64_t>::max();

// ---------------------------------------------------------------------------
// ParseSize

TEST(ParseSizeTest, BareNumbersAreBytes) {
  EXPECT_EQ(ParseSize("0"), 0u);
  EXPECT_EQ(ParseSize("1"), 1u);
  EXPECT_EQ(ParseSize("1048576"), kMiB);
  EXPECT_EQ(ParseSize("007"), 7u);
  EXPECT_EQ(ParseSize("18446744073709551615"), kMax);
}

TEST(ParseSizeTest, EveryUnitIsBinary) {
  struct Case {
    const char* text;
    uint64_t bytes;
  };
  for (const Case& k : {
           Case{"5B", 5},          Case{"3k", 3 * kKiB},   Case{"3K", 3 * kKiB},
           Case{"3KB", 3 * kKiB},  Case{"3KiB", 3 * kKiB}, Case{"3m", 3 * kMiB},
           Case{"3M", 3 * kMiB},   Case{"3MB", 3 * kMiB},  Case{"3MiB", 3 * kMiB},
           Case{"3g", 3 * kGiB},   Case{"3G", 3 * kGiB},   Case{"3GB", 3 * kGiB},
           Case{"3GiB", 3 * kGiB}, Case{"3t", 3 * kTiB},   Case{"3T", 3 * kTiB},
           Case{"3TB", 3 * kTiB},  Case{"3TiB", 3 * kTiB}, Case{"256MiB", 256 * kMiB},
           Case{"64k", 64 * kKiB}, Case{"0MiB", 0},
       }) {
    SCOPED_TRACE(k.text);
    EXPECT_EQ(ParseSize(k.text), k.bytes);
  }
}

TEST(ParseSizeTest, SpacesAroundAreIgnored) {
  EXPECT_EQ(ParseSize(" 5 "), 5u);
  EXPECT_EQ(ParseSize("256 MiB"), 256 * kMiB);
  EXPECT_EQ(ParseSize("  2  k  "), 2 * kKiB);
}

TEST(ParseSizeTest, Rejections) {
  for (const char* text :
       {"",     " ",    "k",     "MiB", "-1",   "+1",  "1.5k", "1,5k", "1e3", "0x10", "1kb",
        "1kib", "1mib", "1 k b", "1Ki", "1PiB", "1 2", "lots", "1\t",  "\t1", "1_000"}) {
    SCOPED_TRACE(text);
    EXPECT_EQ(ParseSize(text), std::nullopt);
  }
}

TEST(ParseSizeTest, Overflow) {
  EXPECT_EQ(ParseSize("18446744073709551616"), std::nullopt);
  EXPECT_EQ(ParseSize("99999999999999999999999"), std::nullopt);
  // 2^34 GiB = 2^64 bytes does not fit; one less does.
  EXPECT_EQ(ParseSize("17179869184GiB"), std::nullopt);
  EXPECT_EQ(ParseSize("17179869183GiB"), kMax - kGiB + 1);
  EXPECT_EQ(ParseSize("16777216TiB"), std::nullopt);
  EXPECT_EQ(ParseSize("16777215TiB"), kMax - kTiB + 1);
}

TEST(ParseSizeTest, NotNulTerminated) {
  std::string_view text("12k34", 3);  // "12k"
  EXPECT_EQ(ParseSize(text), 12 * kKiB);
}

// ---------------------------------------------------------------------------
// ParseDurationMs

TEST(ParseDurationTest, EveryUnit) {
  struct Case {
    const char* text;
    uint64_t ms;
  };
  for (const Case& k : {Case{"1500ms", 1500}, Case{"0ms", 0}, Case{"30s", 30'000},
                        Case{"30", 30'000}, Case{"0", 0}, Case{"2m", 120'000},
                        Case{"3h", 10'800'000}, Case{"2d", 172'800'000}, Case{" 10 s ", 10'000}}) {
    SCOPED_TRACE(k.text);
    EXPECT_EQ(ParseDurationMs(k.text), k.ms);
  }
}

TEST(ParseDurationTest, Rejections) {
  for (const char* text : {"", " ", "s", "ms", "-1s", "1.5s", "1sec", "1S", "1M", "1H", "1us",
                           "1ns", "1w", "1y", "10x", "soon", "1m30s"}) {
    SCOPED_TRACE(text);
    EXPECT_EQ(ParseDurationMs(text), std::nullopt);
  }
}

TEST(ParseDurationTest, Overflow) {
  EXPECT_EQ(ParseDurationMs("18446744073709551615ms"), kMax);
  EXPECT_EQ(ParseDurationMs("18446744073709551616ms"), std::nullopt);
  EXPECT_EQ(ParseDurationMs("18446744073709551s"), 18446744073709551000u);
  EXPECT_EQ(ParseDurationMs("18446744073709552s"), std::nullopt);
  EXPECT_EQ(ParseDurationMs("18446744073709552"), std::nullopt);  // bare = seconds
  EXPECT_EQ(ParseDurationMs("307445734561826m"), std::nullopt);
  EXPECT_EQ(ParseDurationMs("5124095576031h"), std::nullopt);
  EXPECT_EQ(ParseDurationMs("213503982335d"), std::nullopt);
  EXPECT_EQ(ParseDurationMs("213503982334d"), uint64_t{213503982334} * 86'400'000);
}

// ---------------------------------------------------------------------------
// ParseDurationSeconds (the bench tools' --duration, --timeout, ...)

TEST(ParseDurationSecondsTest, FractionsAndUnits) {
  struct Case {
    const char* text;
    double seconds;
  };
  for (const Case& k : {Case{"10s", 10}, Case{"10.0s", 10}, Case{"10", 10}, Case{"0.5", 0.5},
                        Case{"500ms", 0.5}, Case{"1.5m", 90}, Case{"2m", 120}, Case{"1h", 3600},
                        Case{"1d", 86400}, Case{"+3s", 3}, Case{"2e3ms", 2}, Case{" 4 s ", 4},
                        Case{"0", 0}}) {
    SCOPED_TRACE(k.text);
    EXPECT_EQ(ParseDurationSeconds(k.text), k.seconds);
  }
}

TEST(ParseDurationSecondsTest, Rejections) {
  for (const char* text : {"", " ", "s", "ms", "-1s", "-0.5", "1sec", "1S", "1us", "10x", "soon",
                           "inf", "nan", "1e999s", "1m30s", ".s"}) {
    SCOPED_TRACE(text);
    EXPECT_EQ(ParseDurationSeconds(text), std::nullopt);
  }
}

// ---------------------------------------------------------------------------
// FormatSize

TEST(FormatSizeTest, LargestExactUnit) {
  EXPECT_EQ(FormatSize(0), "0B");
  EXPECT_EQ(FormatSize(1), "1B");
  EXPECT_EQ(FormatSize(1000), "1000B");
  EXPECT_EQ(FormatSize(1023), "1023B");
  EXPECT_EQ(FormatSize(kKiB), "1KiB");
  EXPECT_EQ(FormatSize(1536), "1536B");
  EXPECT_EQ(FormatSize(1536 * kKiB), "1536KiB");
  EXPECT_EQ(FormatSize(kMiB), "1MiB");
  EXPECT_EQ(FormatSize(256 * kMiB), "256MiB");
  EXPECT_EQ(FormatSize(kGiB), "1GiB");
  EXPECT_EQ(FormatSize(kTiB), "1TiB");
  EXPECT_EQ(FormatSize(kTiB << 10), "1024TiB");
  EXPECT_EQ(FormatSize(kMax), "18446744073709551615B");
  EXPECT_EQ(FormatSize(kMax - kKiB + 1), "18014398509481983KiB");
}

TEST(FormatSizeTest, RoundTripsThroughParseSize) {
  for (uint64_t bytes : {uint64_t{0}, uint64_t{1}, uint64_t{999}, kKiB, 3 * kKiB + 1, kMiB,
                         256 * kMiB, 5 * kGiB, 7 * kTiB, kMax, kMax - kGiB + 1}) {
    SCOPED_TRACE(bytes);
    EXPECT_EQ(ParseSize(FormatSize(bytes)), bytes);
  }
}

// ---------------------------------------------------------------------------
// Status

TEST(StatusTest, DefaultIsOk) {
  Status s;
  EXPECT_TRUE(s.ok());
  EXPECT_EQ(s.code(), StatusCode::kOk);
  EXPECT_EQ(s.message(), "");
  EXPECT_TRUE(Status::Ok().ok());
}

TEST(StatusTest, FactoriesSetCodeAndMessage) {
  struct Case {
    Status status;
    StatusCode code;
  };
  const Case cases[] = {
      {Status::InvalidArgument("a"), StatusCode::kInvalidArgument},
      {Status::NotFound("a"), StatusCode::kNotFound},
      {Status::OutOfRange("a"), StatusCode::kOutOfRange},
      {Status::ResourceExhausted("a"), StatusCode::kResourceExhausted},
      {Status::IoError("a"), StatusCode::kIoError},
      {Status::Unavailable("a"), StatusCode::kUnavailable},
      {Status::Internal("a"), StatusCode::kInternal},
      {Status(StatusCode::kAlreadyExists, "a"), StatusCode::kAlreadyExists},
  };
  for (const Case& k : cases) {
    EXPECT_FALSE(k.status.ok());
    EXPECT_EQ(k.status.code(), k.code);
    EXPECT_EQ(k.status.message(), "a");
  }
}

TEST(StatusTest, CopiesAreIndependent) {
  Status a = Status::IoError("disk");
  Status b = a;
  a = Status::Ok();
  EXPECT_TRUE(a.ok());
  EXPECT_EQ(b.code(), StatusCode::kIoError);
  EXPECT_EQ(b.message(), "disk");
}

// ---------------------------------------------------------------------------
// Result<T>

Result<int> Half(int n) {
  if (n % 2 != 0) return Status::InvalidArgument("odd");
  return n / 2;
}

TEST(ResultTest, HoldsAValue) {
  Result<int> r = Half(8);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r.value(), 4);
  EXPECT_EQ(*r, 4);
  EXPECT_TRUE(r.status().ok());
  EXPECT_EQ(r.status().code(), StatusCode::kOk);
  r.value() = 5;
  EXPECT_EQ(*r, 5);
}

TEST(ResultTest, HoldsAnError) {
  Result<int> r = Half(3);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(r.status().message(), "odd");
}

TEST(ResultTest, ArrowAndConst) {
  const Result<std::string> r = std::string("hello");
  EXPECT_EQ(r->size(), 5u);
  EXPECT_EQ(*r, "hello");
  EXPECT_EQ(r.value(), "hello");
}

TEST(ResultTest, MovesOutMoveOnlyValues) {
  Result<std::unique_ptr<int>> r = std::make_unique<int>(7);
  ASSERT_TRUE(r.ok());
  std::unique_ptr<int> p = std::move(r).value();
  ASSERT_NE(p, nullptr);
  EXPECT_EQ(*p, 7);
}

TEST(ResultTest, ValueTypeThatLooksLikeAStatusMessage) {
  // A Result<std::string> built from a Status is an error, not a string.
  Result<std::string> r = Status::NotFound("missing");
  EXPECT_FALSE(r.ok());
  EXPECT_EQ(r.status().message(), "missing");
}

#ifndef NDEBUG
TEST(ResultDeathTest, OkStatusIsNotAnError) {
  EXPECT_DEATH({ Result<int> r = Status::Ok(); }, "");
}
#endif

}  // namespace
}  // namespace strata::common
