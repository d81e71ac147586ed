// Named failpoints, in the style of FreeBSD fail(9) and fail-rs.
//
// A failpoint is a named spot in the code where a test or the stress driver
// can put a fault exactly: raise a signal, return an error, sleep, yield,
// or run a callback. Sites are defined once at namespace scope and
// evaluated where the window is:
//
//   SIGRACE_FAILPOINT_DEFINE(kFpAfterAcquire, "sign.after_acquire");
//   ...
//   if (SIGRACE_FAILPOINT(kFpAfterAcquire)) return InternalError("injected");
//
// A disabled failpoint costs one relaxed atomic load.
//
// Spec grammar (SIGRACE_FAILPOINTS environment variable, Configure()):
//   SPECS  := SPEC (';' SPEC)*
//   SPEC   := NAME '=' ACTION [ '@' HIT ] [ '*' COUNT ] [ '%' PROB ]
//             [ '#' THREAD ]
//   ACTION := off | error | yield | abort | pause
//           | raise(SIGNAME|NUMBER) | sleep(MS) | callback
//   HIT    := fire first at the HIT-th evaluation (1-based) that passes the
//             thread filter; default 1.
//   COUNT  := fire at most COUNT times from then on; default 1 when @HIT is
//             given, otherwise unlimited.
//   PROB   := probability in percent (0..100] that an eligible evaluation
//             fires; default 100. Random draws come from a per-failpoint
//             generator seeded by SetSeed(), so runs replay.
//   THREAD := only evaluations on a thread whose name (SetThreadName) is
//             THREAD count.
// Example: SIGRACE_FAILPOINTS='sign.after_acquire=raise(SIGSEGV)@1'
// An unknown name, action or malformed number is an InvalidArgument error.
// `pause` blocks the evaluating thread until Resume(name) or ClearAll().
//
// Thread safety: Configure/Clear/SetCallback/Resume are thread-safe and may
// run while other threads evaluate. Evaluation is thread-safe.
// Not async-signal-safe, except Evaluate() on a disarmed site (one relaxed
// load).

#ifndef SIGRACE_BASE_FAILPOINT_H_
#define SIGRACE_BASE_FAILPOINT_H_

#include <atomic>
#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "base/status.h"

namespace sigrace::failpoint {

class Site {
 public:
  // Registers the site at static-initialisation time. `name` must be a
  // string literal; names are unique across the program.
  explicit Site(const char* name);
  Site(const Site&) = delete;
  Site& operator=(const Site&) = delete;

  const char* name() const { return name_; }
  // True if the action was `error` and it fired: the caller returns an
  // error. Other actions act and return false.
  bool Evaluate() {
    if (!armed_.load(std::memory_order_relaxed)) return false;
    return EvaluateSlow();
  }

  // Implementation detail, public for the registry in failpoint.cc.
  std::atomic<bool> armed_{false};
  int index_ = -1;

 private:
  bool EvaluateSlow();
  const char* name_;
};
static_assert(std::atomic<bool>::is_always_lock_free);

// Parses and applies specs; all or nothing. Not async-signal-safe.
Status Configure(std::string_view specs);
// Configure(getenv("SIGRACE_FAILPOINTS")) if set; Ok if unset or empty.
Status ConfigureFromEnv();
// Disarms one failpoint; releases threads paused there.
Status Clear(std::string_view name);
// Disarms every failpoint and releases every paused thread; resets counts.
void ClearAll();
// Runs `fn` on the evaluating thread when a `callback` action fires.
Status SetCallback(std::string_view name, std::function<void()> fn);
// Releases threads paused at `name` (the failpoint stays armed).
Status Resume(std::string_view name);
// How many evaluations of `name` passed its filters, and how many fired.
uint64_t Hits(std::string_view name);
uint64_t Fired(std::string_view name);
// How many threads are paused at `name` right now.
int Paused(std::string_view name);
// Blocks until at least `n` threads are paused at `name`, or `timeout_ms`
// passes; returns whether they are. A bound, not a timing assertion: tests
// use it to wait for a thread to reach a window.
bool WaitPaused(std::string_view name, int n, int timeout_ms);
// Seeds every failpoint's random generator (for %PROB).
void SetSeed(uint64_t seed);
// Names this thread for '#THREAD' targeting ("signer-0", "rotator").
void SetThreadName(std::string_view name);
std::string ThreadName();
// Every defined failpoint name, sorted.
std::vector<std::string> ListNames();

}  // namespace sigrace::failpoint

#define SIGRACE_FAILPOINT_DEFINE(var, name) ::sigrace::failpoint::Site var(name)
#define SIGRACE_FAILPOINT(var) ((var).Evaluate())

#endif  // SIGRACE_BASE_FAILPOINT_H_
