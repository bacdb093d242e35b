// A minimal leveled logger writing single lines to stderr, which is where a
// container runtime collects them. The level is set once at startup.
//
// Thread safety: Log() may be called from any thread; each call writes one
// whole line with one write(2).
#pragma once

#include <atomic>
#include <cstdarg>

namespace strata::common {

enum class LogLevel { kError = 0, kWarn = 1, kInfo = 2, kDebug = 3 };

void SetLogLevel(LogLevel level);
LogLevel GetLogLevel();
// printf-style; a newline is added.
void Log(LogLevel level, const char* format, ...) __attribute__((format(printf, 2, 3)));

}  // namespace strata::common
