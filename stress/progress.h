// A one-line progress display on stderr, redrawn in place, shown only when
// stderr is a terminal: trials/s, dumps, leaks, harness errors, elapsed
// time and time left.
//
// Thread safety: one thread. Not async-signal-safe.

#ifndef SIGRACE_STRESS_PROGRESS_H_
#define SIGRACE_STRESS_PROGRESS_H_

#include <chrono>
#include <cstdint>
#include <string>

namespace sigrace::stress {

class Progress {
 public:
  // `total_trials` is the trial budget (UINT64_MAX: none); `duration_s` the
  // time budget (0: none). `enabled` is ANDed with isatty(2).
  Progress(bool enabled, std::string label, uint64_t total_trials,
           double duration_s);
  ~Progress();

  void Update(uint64_t trials, uint64_t dumps, uint64_t leaks, uint64_t errors,
              bool force = false);
  // Erases the line.
  void Done();
  bool enabled() const { return enabled_; }

 private:
  bool enabled_;
  bool drawn_ = false;
  std::string label_;
  uint64_t total_trials_;
  double duration_s_;
  std::chrono::steady_clock::time_point start_;
  std::chrono::steady_clock::time_point last_;
};

}  // namespace sigrace::stress

#endif  // SIGRACE_STRESS_PROGRESS_H_
