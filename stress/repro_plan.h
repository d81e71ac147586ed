// `sigrace repro`, step 1: the plan. Which rows the main job has (race
// variants x algorithms x modes, fixed's fatal and live rows, TSan rows
// when the tsan build is present), and the `sigrace stress` job behind
// each row: its arguments, its time cap and where it writes its report and
// log. Running the jobs is stress/repro_schedule.h; judging them is
// stress/repro_verdict.h.
//
// Thread safety: values and pure functions. Not async-signal-safe.

#ifndef SIGRACE_STRESS_REPRO_PLAN_H_
#define SIGRACE_STRESS_REPRO_PLAN_H_

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "base/status.h"
#include "stress/options.h"

namespace sigrace::stress {

struct VariantEntry;  // stress/catalogue.h

struct ReproOptions {
  double budget_s = 270;
  std::string out_dir = "sigrace-repro";
  std::string report_json;
  std::string junit;
  uint64_t seed = 0;
  uint64_t min_live = 10000;
  uint64_t min_fatal = 100;
  uint64_t race_live_trials = 20;
  uint64_t race_fatal_trials = 5;
  // A TSan trial of a race variant reproduces at trial 0; each TSan trial
  // costs seconds (a TSan process's dump is over a GB, mostly holes, and
  // threads in uninstrumented OpenSSL take the freeze signal late).
  uint64_t tsan_race_trials = 1;
  // fixed's TSan rows: at least this many trials (fewer is SHORT), and as
  // many more as the budget's slack allows (they run niced to the end of
  // the budget, so they take only what the other rows leave), at most
  // tsan_fixed_max.
  uint64_t tsan_fixed_trials = 4;
  uint64_t tsan_fixed_max = 100;
  // fixed's two live rows run from the start for the whole budget, beside
  // `jobs` other rows at a time.
  uint32_t jobs = 2;
  uint32_t threads = kDefaultThreads;
  std::string tsan_bin = "auto";      // auto, a path, or none
  std::vector<std::string> variants;  // empty: all
  std::vector<std::string> algs = {"rs256", "eddsa"};
  // --shard I/N (stress/shard.h): fixed's rows run shard I of their
  // trials; race rows run whole.
  uint32_t shard_index = 0;
  uint32_t shard_count = 1;
};

enum class JobKind { kRaceLive, kRaceFatal, kFixedFatal, kFixedLive, kTsan };

// One `sigrace stress` process.
struct JobSpec {
  JobKind kind = JobKind::kRaceLive;
  std::string variant, alg, mode;
  std::string binary;             // the sigrace that runs the job
  std::vector<std::string> args;  // after "stress"
  double cap_s = 0;               // --duration-s bound
  bool cap_is_rest = false;       // gets the rest of the budget
  int nice = 0;                   // > 0: runs under `nice -n`
  std::string report_path, log_path;
};

// One row of the table: a variant x algorithm x mode and its jobs.
struct RowSpec {
  std::string variant, alg, mode;
  std::string window;
  bool race = false;
  bool data_race = false;  // the window is one TSan reports
  bool na = false;         // the window is not on this algorithm's path: no job
  int job = -1;
  std::vector<int> more_jobs;  // fixed live: the other parts of the row
  int tsan_job = -1;           // live rows with the tsan build only
};

struct ReproPlan {
  std::vector<JobSpec> jobs;
  std::vector<RowSpec> rows;
  // Indexes into `jobs` in start order: fixed's live rows (they run from
  // the start, side by side), fixed's fatal rows (the longest of the
  // rest), then the race and TSan rows in the order added.
  std::vector<size_t> order;
};

// The variants named (all of the catalogue when `names` is empty);
// InvalidArgument for an unknown name.
StatusOr<std::vector<VariantEntry>> SelectVariants(
    const std::vector<std::string>& names);

// The TSan build of sigrace per --tsan-bin: "none" -> "", "auto" ->
// ../../tsan/tools/sigrace from `self`'s directory (build/default/tools/
// -> build/tsan/tools/) when it is an executable file, else "" (no TSan
// rows, and the report says so). A path the user gave must be an
// executable regular file: anything else is InvalidArgument, never a
// quiet run without TSan.
StatusOr<std::string> FindTsanBinary(const std::string& tsan_bin,
                                     const std::string& self);

// Rows and jobs for `variants`; job reports and logs go to `logs_dir`.
// `self` runs every job; `tsan` ("" when absent) runs the TSan rows'
// workers.
ReproPlan PlanRepro(const ReproOptions& options,
                    const std::vector<VariantEntry>& variants,
                    const std::string& self, const std::string& tsan,
                    const std::string& logs_dir);

}  // namespace sigrace::stress

#endif  // SIGRACE_STRESS_REPRO_PLAN_H_
