// Seeded test regressions: bugs of the fixed redaction path put back on
// purpose, at run time, so a test can show that the harness catches each
// one, and by the mechanism expected (docs/design.md, "Seeded
// regressions"). Where an ablation switch (base/ablation.h) removes a
// protection, a test regression breaks one the way a careless edit would:
// a statement moved, a step recorded and skipped. Each is a few lines at
// the real place, marked `// TEST REGRESSION`.
//
// Builds configured with SIGRACE_ABLATION=ON (every preset but `bench`)
// read SIGRACE_TEST_REGRESSION once, before main():
//
//   SIGRACE_TEST_REGRESSION=NAME[,NAME...]
//
//   parse-via-heap-copy (signer/signer.cc, Load): the key is parsed from a
//     copy of its PKCS#8 bytes in an ordinary malloc'd buffer, outside
//     every cover, wiped and freed right after the parse. A window with no
//     failpoint inside; found by the alloc injector.
//   record-skip-overwrite (crashdump/capture/core_writer.cc): the writer
//     records every memory range in the redaction note and leaves its
//     bytes as they are. Found by the oracle as a leak of kind
//     redaction-not-applied.
//   register-record-skip-overwrite (core_writer.cc): the same for the
//     register records: the data and SIMD registers of a thread keep their
//     values. Found by the oracle as records not applied.
//   cover-narrowed-before-wipe (signer/signer.cc, Load): the cover is
//     narrowed to the parse slot before the staging slot is wiped. Found by
//     the registry's cover check (update.leave).
//   slot-published-after-filled (signer/signer.cc, Load): the staging slot
//     is published after the unwrap fills it, with no failpoint between.
//     Found by the registry's cover check (write.uncovered).
//   preserve-every-word (crashdump/capture/dump_steps.cc, UnwindThreads):
//     every word of every secret stack is listed as preserved for
//     unwinding, so the writer keeps those stacks as they are. Found by the
//     oracle's check of preserved words (crashdump/format/
//     redaction_claims.h): the words that are not code or stack addresses
//     are redactions not applied, their fragments leaks of that kind.
//
// An unknown name prints one line to stderr and exits 2. Without
// SIGRACE_ABLATION every query is a constant false and the environment
// variable is ignored; a production build has no switch.
//
// Thread safety: the switches are set before main() (or by a test before
// it starts threads) and only read afterwards. TestRegressionOn() and
// TestRegressionName() are safe to call from a signal handler.

#ifndef SIGRACE_BASE_TEST_REGRESSION_H_
#define SIGRACE_BASE_TEST_REGRESSION_H_

#include <atomic>
#include <cstdint>
#include <string>
#include <string_view>

#include "base/ablation.h"
#include "base/status.h"

namespace sigrace {

enum class TestRegression : uint32_t {
  kParseViaHeapCopy,
  kRecordSkipOverwrite,
  kRegisterRecordSkipOverwrite,
  kCoverNarrowedBeforeWipe,
  kSlotPublishedAfterFilled,
  kPreserveEveryWord,
  kCount,
};

// "parse-via-heap-copy", "record-skip-overwrite",
// "register-record-skip-overwrite", "cover-narrowed-before-wipe",
// "slot-published-after-filled", "preserve-every-word". Safe to call from
// a signal handler.
const char* TestRegressionName(TestRegression r);

namespace test_regression_internal {
// Defined in test_regression.cc, not inline: every user of
// TestRegressionOn() then links that object, and with it the reader of
// the environment (an inline mask would let a binary ignore the variable).
extern std::atomic<uint32_t> g_mask;
static_assert(std::atomic<uint32_t>::is_always_lock_free);
}  // namespace test_regression_internal

// True when regression `r` is switched on: one relaxed load of a lock-free
// atomic, no call (the crash path's allowlist lists the mask as data).
// Safe to call from a signal handler.
inline bool TestRegressionOn(TestRegression r) {
  if constexpr (!kAblationBuild) return false;
  return (test_regression_internal::g_mask.load(std::memory_order_relaxed) >>
          static_cast<uint32_t>(r)) &
         1u;
}

// Sets the switches from a SIGRACE_TEST_REGRESSION spec ("" switches every
// one off). InvalidArgument on an unknown name (nothing changes), or
// FailedPrecondition in a build without SIGRACE_ABLATION when the spec is
// not empty. For tests and the environment reader; call before threads
// start. Not async-signal-safe.
Status SetTestRegressions(std::string_view spec);

// The active spec in canonical form ("" when none is on), for reports.
// Not async-signal-safe.
std::string TestRegressionSpec();

}  // namespace sigrace

#endif  // SIGRACE_BASE_TEST_REGRESSION_H_
