// The signer's side of the seeded test regressions (base/test_regression.h,
// docs/design.md "Seeded regressions"): helpers that keep each one to a
// line or two at its place in signer.cc.
//
//   parse-via-heap-copy: Load() parses the key from a copy of its PKCS#8
//     bytes in an ordinary malloc'd buffer, outside every cover, wiped and
//     freed right after the parse. The window is the parse (dozens of
//     OpenSSL allocations, no failpoint inside).
//   cover-narrowed-before-wipe, slot-published-after-filled: statement
//     orders in Load(), queried there with TestRegressionOn().
//
// Thread safety: thread-safe. Not async-signal-safe.

#ifndef SIGRACE_SIGNER_TEST_REGRESSIONS_H_
#define SIGRACE_SIGNER_TEST_REGRESSIONS_H_

#include <cstddef>
#include <cstdint>

#include "base/test_regression.h"

namespace sigrace::signer {

// True if the environment (or SetTestRegressions) switched `r` on; always
// false without SIGRACE_ABLATION.
inline bool TEST_RegressionOn(TestRegression r) { return TestRegressionOn(r); }

// parse-via-heap-copy: returns `der` itself when the regression is off,
// else a malloc'd copy that TEST_ReleaseHeapCopy wipes and frees.
const uint8_t* TEST_MaybeHeapCopy(const uint8_t* der, size_t n);
void TEST_ReleaseHeapCopy(const uint8_t* copy, const uint8_t* der, size_t n);

}  // namespace sigrace::signer

#endif  // SIGRACE_SIGNER_TEST_REGRESSIONS_H_
