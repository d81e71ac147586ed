#include "stress/progress.h"

#include <unistd.h>

#include <algorithm>
#include <cstdio>

namespace sigrace::stress {

Progress::Progress(bool enabled, std::string label, uint64_t total_trials,
                   double duration_s)
    : enabled_(enabled && isatty(STDERR_FILENO) == 1),
      label_(std::move(label)),
      total_trials_(total_trials),
      duration_s_(duration_s),
      start_(std::chrono::steady_clock::now()),
      last_(start_) {}

Progress::~Progress() { Done(); }

void Progress::Update(uint64_t trials, uint64_t dumps, uint64_t leaks,
                      uint64_t errors, bool force) {
  if (!enabled_) return;
  const auto now = std::chrono::steady_clock::now();
  if (!force && now - last_ < std::chrono::milliseconds(250)) return;
  last_ = now;
  const double elapsed = std::chrono::duration<double>(now - start_).count();
  const double rate = elapsed > 0 ? static_cast<double>(trials) / elapsed : 0;
  double left = -1;
  if (duration_s_ > 0) left = std::max(0.0, duration_s_ - elapsed);
  if (total_trials_ != UINT64_MAX && rate > 0) {
    const double by_count =
        static_cast<double>(total_trials_ - std::min(trials, total_trials_)) /
        rate;
    left = left < 0 ? by_count : std::min(left, by_count);
  }
  char left_text[32] = "?";
  if (left >= 0) std::snprintf(left_text, sizeof(left_text), "%.0fs", left);
  std::fprintf(stderr,
               "\r\033[K%s  %llu trials  %.1f/s  dumps %llu  leaks %llu  "
               "errors %llu  elapsed %.0fs  left %s",
               label_.c_str(), static_cast<unsigned long long>(trials), rate,
               static_cast<unsigned long long>(dumps),
               static_cast<unsigned long long>(leaks),
               static_cast<unsigned long long>(errors), elapsed, left_text);
  std::fflush(stderr);
  drawn_ = true;
}

void Progress::Done() {
  if (enabled_ && drawn_) {
    std::fprintf(stderr, "\r\033[K");
    std::fflush(stderr);
    drawn_ = false;
  }
}

}  // namespace sigrace::stress
