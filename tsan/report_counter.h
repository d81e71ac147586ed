// ThreadSanitizer report counter: counts the reports the TSan runtime
// prints, by type, and keeps the top frames of each, so the harness reads
// numbers instead of parsing TSan's text output.
//
// It is built on the runtime's report hook (`__tsan_on_report`, called once
// for every report that is printed, i.e. after suppressions and TSan's own
// de-duplication of equal stacks) and its debugging API
// (`__tsan_get_report_data`, `__tsan_get_report_stack`,
// `__tsan_get_report_mop`). Frames are symbolized lazily, when a snapshot
// is taken, with `__sanitizer_symbolize_pc`, never inside the runtime.
//
// In a build without TSan the library still links: Enabled() is false and
// every count is zero, so a driver can print "tsan: not this build".
//
// Linking sigrace::tsan_counter into a TSan binary also links the runtime
// options and suppressions compiled from tsan/tsan.options and
// tsan/suppressions.txt (`__tsan_default_options`,
// `__tsan_default_suppressions`), so a binary run by hand gets them too.
//
// Reports TSan emits at process exit (thread leaks, and anything a
// destructor of a static object races on) happen after main() returns and
// cannot be read in-process; TSan then exits with its `exitcode` (66), which
// fails the ctest run instead.
//
// Thread safety: every function is thread-safe and may run while other
// threads produce reports. The hook side is lock-free (it runs inside the
// TSan runtime, under the runtime's own locks) and uninstrumented; a
// snapshot taken while a report is being recorded either includes it whole
// or not at all. Reset() does not erase anything: it moves a baseline, so
// later snapshots count only what came after it.
// Not async-signal-safe: nothing here may be called from the crash path.

#ifndef SIGRACE_TSAN_REPORT_COUNTER_H_
#define SIGRACE_TSAN_REPORT_COUNTER_H_

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace sigrace::tsan {

// Report types, grouped the way the harness judges them. TSan's own type
// string (e.g. "data-race-vptr", "mutex-double-lock") is kept per report in
// Report::description.
enum class ReportType : int {
  kDataRace = 0,          // data-race, data-race-vptr, external-race
  kHeapUseAfterFree,      // heap-use-after-free(-vptr)
  kSignalUnsafeCall,      // signal-unsafe-call (report_signal_unsafe=1)
  kErrnoInSignalHandler,  // errno-in-signal-handler
  kThreadLeak,            // thread-leak
  kMutexMisuse,           // locked-mutex-destroy, mutex-double-lock,
                          // mutex-invalid-access, mutex-bad-*unlock,
                          // mutex-bad-read-lock
  kLockOrderInversion,    // lock-order-inversion (potential deadlock)
  kOther,                 // any type this build does not know
};
inline constexpr int kNumReportTypes = 8;

// Stable snake-case name, used as the JSON key: "data_race",
// "signal_unsafe_call", "errno_in_signal_handler", "thread_leak",
// "mutex_misuse", "lock_order_inversion", "heap_use_after_free", "other".
const char* ReportTypeName(ReportType type);

// Maps TSan's description string ("data-race", ...) to a ReportType.
ReportType ClassifyDescription(std::string_view description);

// One report as recorded. Frames are demangled function names, innermost
// first, with inlined frames expanded; "?" when a PC does not symbolize.
struct Report {
  uint64_t sequence = 0;  // 1 for the first report of the process
  ReportType type = ReportType::kOther;
  std::string description;  // TSan's type string
  // One entry per access (the racing pair of a data race, in TSan's order)
  // followed by one per report stack (e.g. the signal-unsafe call's stack).
  // Thread-creation and allocation stacks are not kept: they say where a
  // thread or block came from, not who touched the memory.
  std::vector<std::vector<std::string>> stacks;
};

struct Counts {
  bool enabled = false;  // false: not a TSan build, every count is zero
  uint64_t total = 0;
  uint64_t by_type[kNumReportTypes] = {};
  // Reports counted but whose frames were not kept (the record ring holds
  // the most recent kMaxRecordedReports).
  uint64_t frames_dropped = 0;
  std::vector<Report> reports;  // oldest first

  uint64_t of(ReportType type) const { return by_type[static_cast<int>(type)]; }
  // True if some report of `type` has a frame whose function name contains
  // `needle`.
  bool Touches(ReportType type, std::string_view needle) const;
};

inline constexpr size_t kMaxRecordedReports = 128;
inline constexpr size_t kMaxFramesPerStack = 24;  // PCs, before inlining
inline constexpr size_t kMaxStacksPerReport = 4;

// True in a TSan build (the hook is linked and the runtime calls it).
bool Enabled();

// Everything reported since the last Reset() (or process start).
Counts Snapshot();

// Moves the baseline: later snapshots see only later reports.
void Reset();

// Reports since the last Reset(), all types.
uint64_t TotalSinceReset();

// Did any data-race report since the last Reset() have a frame (in either
// access stack) whose function name contains `needle`, e.g.
// "sigrace::crashdump" or "Registry"?
bool RaceTouches(std::string_view needle);

// {"enabled":true,"total":N,"by_type":{"data_race":N,...},
//  "frames_dropped":N,"reports":[{"seq":N,"type":"data_race",
//  "description":"data-race","stacks":[["fn",...],...]}]}
// `max_reports` bounds the "reports" array (the newest are kept) and
// `max_frames` each stack (the innermost are kept).
std::string ToJson(const Counts& counts, size_t max_reports = 16,
                   size_t max_frames = 8);
std::string CountsJson();

// The option string compiled into this binary from tsan/tsan.options
// (empty in a non-TSan build).
const char* CompiledOptions();

}  // namespace sigrace::tsan

#endif  // SIGRACE_TSAN_REPORT_COUNTER_H_
