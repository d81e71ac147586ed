// Test-only seeded regressions (issue 13): windows put back into the fixed
// signer on purpose, at run time, so a test can show that the stress
// harness finds a window nobody placed a failpoint in.
//
// SIGRACE_TEST_REGRESSION=NAME (read once, on first use) switches one on;
// it exists only in builds with SIGRACE_ABLATION (every preset but bench).
// An unknown name is ignored with a line on stderr.
//
//   parse-via-heap-copy: Load() parses the key from a copy of its PKCS#8
//     bytes in an ordinary malloc'd buffer, outside every cover, wiped and
//     freed right after the parse. The window is the parse (dozens of
//     OpenSSL allocations, no failpoint inside).
//
// Thread safety: thread-safe. Not async-signal-safe.

#ifndef SIGRACE_SIGNER_TEST_REGRESSIONS_H_
#define SIGRACE_SIGNER_TEST_REGRESSIONS_H_

#include <cstddef>
#include <cstdint>

namespace sigrace::signer {

enum class TestRegression { kParseViaHeapCopy };

// True if the environment switched `r` on (always false without
// SIGRACE_ABLATION).
bool TEST_RegressionOn(TestRegression r);

// parse-via-heap-copy: returns `der` itself when the regression is off,
// else a malloc'd copy that TEST_ReleaseHeapCopy wipes and frees.
const uint8_t* TEST_MaybeHeapCopy(const uint8_t* der, size_t n);
void TEST_ReleaseHeapCopy(const uint8_t* copy, const uint8_t* der, size_t n);

}  // namespace sigrace::signer

#endif  // SIGRACE_SIGNER_TEST_REGRESSIONS_H_
