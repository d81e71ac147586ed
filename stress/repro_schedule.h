// `sigrace repro`, step 2: the schedule. Runs a plan's jobs
// (stress/repro_plan.h) as child processes: fixed's live jobs from the
// start, the others `jobs` at a time beside them, each with a
// --duration-s cap cut to what is left of the budget, and a hard bound
// (the cap plus a grace period) after which the job is killed. Collects
// each job's exit code, time, log tail and the JSON report it wrote.
//
// Thread safety: RunJobs runs on one thread and reaps every child of the
// process (waitpid(-1)): call it only where no other code waits for
// children. Not async-signal-safe.

#ifndef SIGRACE_STRESS_REPRO_SCHEDULE_H_
#define SIGRACE_STRESS_REPRO_SCHEDULE_H_

#include <cstddef>
#include <functional>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "stress/repro_plan.h"

namespace sigrace::stress {

// What one job did.
// Its members' moves do not throw; a throwing copy is a bug to surface.
struct JobOutcome {  // NOLINT(bugprone-exception-escape)
  bool started = false;
  std::string spawn_error;  // non-empty: it never started
  std::string command;      // the command line it ran
  int exit_code = -1;       // 128 + signal when a signal ended it
  bool killed = false;      // past its hard bound
  double seconds = 0;
  // The job's JSON report, null unless this run's job wrote one (an old
  // file at the report path is removed before the job starts).
  nlohmann::json report;
  std::string log_tail;  // the log's last two lines
};

struct ScheduleOptions {
  double budget_s = 270;
  uint32_t jobs = 2;  // besides fixed's live jobs
  // Seconds kept back at the end of the budget for the last rows to
  // finish and for the report.
  double margin_s = 12;
  // A job still running this long after its cap is killed.
  double grace_s = 90;
};

// The --duration-s cap of `job` when it starts with `left_s` seconds of
// the budget left: the rest of the budget (less the margin) for a
// rest-of-budget job, else its own cap bounded by that; at least 5 s.
double JobCap(const JobSpec& job, double left_s, double margin_s);

// Called as each job ends (or fails to start): its index in plan.jobs,
// how many have ended, and what it did.
using JobDone =
    std::function<void(size_t job, size_t finished, const JobOutcome& outcome)>;

// Runs every job of `plan` and returns their outcomes, indexed as
// plan.jobs; `*elapsed_s` gets the wall time.
std::vector<JobOutcome> RunJobs(const ReproPlan& plan,
                                const ScheduleOptions& options,
                                const JobDone& on_done, double* elapsed_s);

}  // namespace sigrace::stress

#endif  // SIGRACE_STRESS_REPRO_SCHEDULE_H_
