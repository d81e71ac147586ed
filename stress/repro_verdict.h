// `sigrace repro`, step 3: the verdict. Judges each row of the table from
// its jobs' outcomes (stress/repro_schedule.h) and the whole run from its
// rows. Pure functions on data: nothing here reads a file or starts a
// process, so stress/repro_verdict_test.cc judges fixture rows.
//
// A row passes when its race variant reproduced (exit 0 of `sigrace
// stress --expect leak`), or when fixed stayed clean for at least the
// minimum trials with no TSan report and no leak in the TSan build. The
// run's exit code: 1 if any row failed, else 2 if any row had a harness
// error, else 0.
//
// Thread safety: values and pure functions. Not async-signal-safe.

#ifndef SIGRACE_STRESS_REPRO_VERDICT_H_
#define SIGRACE_STRESS_REPRO_VERDICT_H_

#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "stress/repro_plan.h"
#include "stress/repro_schedule.h"

namespace sigrace::stress {

struct ReproRow {
  RowSpec spec;
  uint64_t trials = 0, leaks = 0, errors = 0;
  nlohmann::json first_leak;  // null, or the stress report's first_leak
  nlohmann::json tsan;        // null, or the TSan job's counts
  std::string tsan_text = "-";
  std::string verdict;  // "reproduced", "clean", "LEAK", "n/a", ...
  std::string note;     // why, in lines ending in '\n'; "" if none
  bool ok = false;      // the row met its expectation
  bool failed = false;  // it did not: the run fails (exit 1)
  bool error = false;   // harness error: no verdict (exit 2)
  std::string command;  // the row's first job, "" when it has none
  double seconds = 0;   // its first job's wall time
};

// The minimum trials fixed must pass, and whether the TSan build ran.
struct VerdictLimits {
  uint64_t min_live = 10000;
  uint64_t min_fatal = 100;
  uint64_t min_tsan_fixed = 4;  // TSan trials fixed must pass per row
  bool tsan_present = false;
};

// The limits of shard options.shard_index of options.shard_count: each
// minimum is the share of fixed's trials that shard runs (repro_plan.cc).
VerdictLimits ShardLimits(const ReproOptions& options, bool tsan_present);

// NOLINTNEXTLINE(bugprone-exception-escape): json members; a plain value.
struct ReproResult {
  uint64_t seed = 0;
  double budget_s = 0;
  double elapsed_s = 0;
  // When the command started (IsoUtc; "" unknown) and its wall seconds.
  std::string start_time;
  double wall_s = 0;
  // The options that shape the rows (null: not recorded); equal across
  // the shards of one run, compared by `sigrace merge`.
  nlohmann::json options;
  std::string tsan_binary;  // "" when absent
  std::string out_dir;
  // This run's id and its own directory of row reports and logs
  // (<out>/logs/<run_id>): rows are judged only on what this run wrote.
  std::string run_id, logs_dir;
  uint32_t shard_index = 0, shard_count = 1;  // fixed's rows' shard
  std::string build_id;                       // stress::BuildId()
  std::vector<ReproRow> rows;
  int exit_code = 2;
  std::string verdict;  // one line, as printed
};

// Judges one row from the outcomes of every job of the plan (indexed as
// plan.jobs).
ReproRow JudgeRow(const RowSpec& row, const std::vector<JobSpec>& jobs,
                  const std::vector<JobOutcome>& outcomes,
                  const VerdictLimits& limits);

// 1 if any row failed, else 2 if any row had a harness error, else 0.
int RunExitCode(const std::vector<ReproRow>& rows);

// The run's one-line verdict for its exit code.
std::string RunVerdictLine(int exit_code);

// Every row of `plan`, judged, in the plan's order.
std::vector<ReproRow> JudgeRows(const ReproPlan& plan,
                                const std::vector<JobOutcome>& outcomes,
                                const VerdictLimits& limits);

}  // namespace sigrace::stress

#endif  // SIGRACE_STRESS_REPRO_VERDICT_H_
