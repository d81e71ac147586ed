// The registry's cover check (crashdump/registry/registry.h) as a stress
// worker runs it: counting, never aborting, and keeping the first
// violation since the last report for the trial that reports it. A
// violation is a window opening (a cover left unwiped, a publish over
// data, a key write outside the cover), caught at that instant whatever
// the fault's timing; the driver fails the trial on it.
//
// Thread safety: StartCoverWatch() once, before the signer starts threads;
// the hook runs on whichever thread makes the transition; TakeCoverReport()
// from any thread. Not async-signal-safe.

#ifndef SIGRACE_STRESS_COVER_WATCH_H_
#define SIGRACE_STRESS_COVER_WATCH_H_

#include <nlohmann/json.hpp>

namespace sigrace::stress {

// Turns the check on (count mode) with a hook that records violations.
void StartCoverWatch();

// Violations since the previous call: {"count": N} and, when N > 0,
// "first": {"check", "reason", "label", "addr", "len", "offset"} (never
// bytes). Returns null when the watch is not running.
nlohmann::json TakeCoverReport();

}  // namespace sigrace::stress

#endif  // SIGRACE_STRESS_COVER_WATCH_H_
