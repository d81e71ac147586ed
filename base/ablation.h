// Ablation switches: every protection of the fixed redaction path can be
// switched off in a test build, so that an ablation run can show that the
// fixed signer leaks without it (docs/design.md, "every protection pulls
// its weight"). A protection that no workload needs can rot unseen.
//
// Builds configured with SIGRACE_ABLATION=ON (every preset but `bench`)
// read SIGRACE_ABLATE once, before main():
//
//   SIGRACE_ABLATE=NAME[,NAME...]      e.g. scrub,cover:vault.arena
//
// NAME is a protection name (ProtectionName) or `cover:LABEL`, which drops
// the registry cover published under that label. An unknown name prints one
// line to stderr and exits 2 (a typo must not pass as "still clean").
// Without SIGRACE_ABLATION every query is a constant false and the
// environment variable is ignored; a production build has no switch.
// Their counterpart, bugs of the fixed path put back rather than
// protections taken away, is base/test_regression.h.
//
// Thread safety: the switches are set before main() (or by a test before
// it starts threads) and only read afterwards. Ablated() and
// CoverAblated() are safe to call from a signal handler.

#ifndef SIGRACE_BASE_ABLATION_H_
#define SIGRACE_BASE_ABLATION_H_

#include <atomic>
#include <cstdint>
#include <string>
#include <string_view>

#include "base/status.h"

namespace sigrace {

enum class Protection : uint32_t {
  kRegistryCover,        // every registry range cover (cover:LABEL: one)
  kSecretStack,          // the stack cover of a SecretScope
  kScopeRegisters,       // register redaction of threads inside a scope
  kSimdOutsideScope,     // SIMD register redaction of threads outside one
  kScrub,                // the stack and register scrub after a signature
  kDontDump,             // MADV_DONTDUMP on key pages (and its honouring)
  kKeyHeapWipe,          // the key heap's wipe on free
  kFreeze,               // the handler freezes every other thread
  kSnapshotAfterFreeze,  // the registry snapshot is taken after the freeze
  kCount,
};

// "registry-cover", "secret-stack", "scope-registers",
// "simd-outside-scope", "scrub", "dontdump", "key-heap-wipe", "freeze",
// "snapshot-after-freeze". Safe to call from a signal handler.
const char* ProtectionName(Protection p);

// True when the build has ablation switches at all.
constexpr bool kAblationBuild =
#if defined(SIGRACE_ABLATION) && SIGRACE_ABLATION
    true;
#else
    false;
#endif

namespace ablation_internal {
inline std::atomic<uint32_t> g_mask{0};
static_assert(std::atomic<uint32_t>::is_always_lock_free);
bool CoverLabelAblated(const char* label);
}  // namespace ablation_internal

// True when protection `p` is switched off. Safe to call from a signal
// handler.
inline bool Ablated(Protection p) {
  if constexpr (!kAblationBuild) return false;
  return (ablation_internal::g_mask.load(std::memory_order_relaxed) >>
          static_cast<uint32_t>(p)) &
         1u;
}

// True when the cover published under `label` is switched off (by
// `registry-cover` or by `cover:LABEL`). Safe to call from a signal
// handler.
inline bool CoverAblated(const char* label) {
  if constexpr (!kAblationBuild) return false;
  return Ablated(Protection::kRegistryCover) ||
         ablation_internal::CoverLabelAblated(label);
}

// Sets the switches from a SIGRACE_ABLATE spec ("" switches everything
// back on). InvalidArgument on an unknown name, or FailedPrecondition in a
// build without SIGRACE_ABLATION when the spec is not empty. For tests and
// the environment reader; call before threads start. Not
// async-signal-safe.
Status SetAblation(std::string_view spec);

// The active spec in canonical form ("" when nothing is off), for reports.
// Not async-signal-safe.
std::string AblationSpec();

}  // namespace sigrace

#endif  // SIGRACE_BASE_ABLATION_H_
