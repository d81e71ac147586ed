// What every subcommand shares: the process hardening of commands that
// hold key material, SIGRACE_FAILPOINTS, and the one rule for printing
// text that came from a file or the command line.
//
// Thread safety: call from the main thread at the start of a command.
// Not async-signal-safe.

#ifndef SIGRACE_TOOLS_COMMON_H_
#define SIGRACE_TOOLS_COMMON_H_

#include <CLI/CLI.hpp>
#include <cstdint>
#include <string>
#include <string_view>

namespace sigrace::tools {

// For a command that will read a key (scan, gate, dump-info, the stress
// and repro drivers): makes this process undumpable (base/secret_memory.h)
// before any key is read. On failure prints "sigrace: COMMAND: ..." and
// returns false; the command exits 2.
bool HoldKeysUndumpable(const char* command);

// Applies SIGRACE_FAILPOINTS (base/failpoint.h). A bad spec prints
// "sigrace: COMMAND: SIGRACE_FAILPOINTS: ..." and returns false; the command
// exits 2.
bool ConfigureFailpointsFromEnv(const char* command);

// Every byte outside printable ASCII, and '\', escaped as \xNN (\\): text
// from a dump, a path or a flag can then neither drive the terminal, nor
// break a line-oriented report, nor make the JSON writer throw on invalid
// UTF-8. Paths, labels and names in every command's text and JSON output.
std::string Printable(std::string_view s);

// Flag checks for every number a command takes (->check(...)). CLI11's own
// conversion takes "-1" for an unsigned flag (strtoull wraps it), clamps an
// overflow, reads "010" as octal and "nan" as a double; these accept only
// a plain decimal in the range, and the error names the range:
//   "--trials: -1 is not an integer in [1, 1000000000]".
// Unsigned: digits only, at most `hi`, at least `lo`.
CLI::Validator UintIn(uint64_t lo, uint64_t hi);
// Finite decimal number (no nan, inf or hex) in [lo, hi].
CLI::Validator RealIn(double lo, double hi);

}  // namespace sigrace::tools

#endif  // SIGRACE_TOOLS_COMMON_H_
