// The ablation run: for each protection of the fixed path (base/ablation.h)
// run `fixed` with that one protection switched off and see whether it
// leaks, and after how many trials. A protection whose ablation does not
// leak within the budget is "unobserved": the workload lacks the exposure
// it exists for, and it could rot unseen. Never reported as passed.
//
// Thread safety: RunAblation() runs on the main thread of a process that
// holds no key itself (the stress driver's); it sets SIGRACE_ABLATE in the
// environment its worker processes inherit. Not async-signal-safe.

#ifndef SIGRACE_STRESS_ABLATION_RUN_H_
#define SIGRACE_STRESS_ABLATION_RUN_H_

#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "base/ablation.h"
#include "base/status.h"
#include "stress/options.h"

namespace sigrace::stress {

struct AblationOptions {
  // Protection names (ProtectionName) or cover:LABEL; empty: every one.
  std::vector<std::string> protections;
  // The stress run each protection gets: variant fixed, expect leak, stops
  // at the first leak. Its trials/duration are the per-protection budget.
  StressOptions stress;
};

enum class AblationStatus { kLeaks, kUnobserved, kError };
const char* AblationStatusName(AblationStatus s);  // "leaks", ...

struct AblationRow {
  std::string protection;
  AblationStatus status = AblationStatus::kError;
  uint64_t trials = 0;       // trials run
  uint64_t first_leak = 0;   // trials up to and including the first leak
  std::string alg;           // of the first leaking trial
  std::string form, region;  // of its first finding (never bytes)
  std::string replay;        // command that replays the leaking trial
  std::string note;          // kError: why
  double seconds = 0;
};

// Every protection name the build knows, in enum order.
std::vector<std::string> AllProtections();

// InvalidArgument naming the first unknown name; FailedPrecondition in a
// build without switches.
Status CheckProtections(const std::vector<std::string>& names);

// Runs one stress run per protection. InvalidArgument for an unknown name
// (before anything runs); FailedPrecondition in a build without switches.
StatusOr<std::vector<AblationRow>> RunAblation(const AblationOptions& opts);

// 0 every protection leaked without itself; 1 one is unobserved; 2 an
// error.
int AblationExitCode(const std::vector<AblationRow>& rows);
std::string AblationTable(const std::vector<AblationRow>& rows);
nlohmann::json AblationJson(const std::vector<AblationRow>& rows,
                            const AblationOptions& opts);

}  // namespace sigrace::stress

#endif  // SIGRACE_STRESS_ABLATION_RUN_H_
