// `sigrace repro`: the main job. For every race variant and both
// algorithms it reproduces the race in live and fatal mode with the fault
// forced into the window; for `fixed` it runs mixed injectors for at least
// --min-live-trials live and --min-fatal-trials fatal trials per algorithm
// and expects zero leaks; it adds TSan verdicts from the tsan build when
// that build is present. Every row is one `sigrace stress` run in its own
// process (a variant is chosen once per process, at Create()), each
// writing its JSON report, which repro reads. fixed's two live rows start
// first and run until they reach --min-live-trials or the budget ends;
// the other rows run two at a time beside them (--jobs), so they are done
// well before the budget ends and both cores stay busy while a row waits
// on a process start or a timeout.
//
// This file parses the flags and prints; the plan, the schedule, the
// verdicts and the reports are stress/repro_*.h (JSON schema in
// stress/repro_report.h).

#include <sys/stat.h>

#include <CLI/CLI.hpp>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "base/files.h"
#include "base/process.h"
#include "base/status.h"
#include "stress/catalogue.h"
#include "stress/repro_plan.h"
#include "stress/repro_report.h"
#include "stress/repro_schedule.h"
#include "stress/repro_verdict.h"
#include "stress/shard.h"
#include "tools/common.h"
#include "tools/stress.h"
#include "tools/stress_flags.h"

namespace sigrace::stress {
namespace {

constexpr char kReproHelp[] =
    "The main job. For every race variant and both algorithms it "
    "reproduces the race in live and fatal mode (fault forced into the "
    "window by its failpoint) and reports the first leaking trial: its "
    "window, form, region, dump path and the one-line command that "
    "replays it. For fixed it runs every injector (failpoint, async on "
    "signing and rotation threads, unrelated, alloc; live rows with "
    "the registry's cover check on) for at least --min-live-trials live "
    "and --min-fatal-trials fatal trials per algorithm and expects zero "
    "leaks. With the tsan build present (build/tsan/tools/sigrace next "
    "to this build) it adds the ThreadSanitizer report count per variant "
    "and algorithm, with the trials it rests on (fixed's TSan rows run "
    "fixed's injectors and cover check, niced, to the end of the budget, "
    "at least --min-tsan-trials); otherwise it says so. It ends with one "
    "table: "
    "variant x algorithm x mode, with trials, leaks, first leak, TSan "
    "reports and verdict.\n\n"
    "Exit codes: 0 every race variant reproduced and fixed stayed clean "
    "(no leak, no TSan report, enough trials); 1 otherwise; 2 usage or "
    "harness error.";

void AddReproFlags(CLI::App& app, ReproOptions* o, std::string* alg) {
  app.add_option("--budget-s", o->budget_s,
                 "Wall-clock budget; fixed's live runs get what the other "
                 "rows leave (they stop early at --min-live-trials)")
      ->capture_default_str()
      ->check(tools::RealIn(1, 604800));
  app.add_option("--out", o->out_dir,
                 "Directory for leaking dumps, sidecars and per-row logs")
      ->capture_default_str();
  app.add_option("--report-json", o->report_json,
                 "Write the JSON report here (schema in "
                 "stress/repro_report.h)");
  app.add_option("--junit", o->junit,
                 "Write JUnit XML here (one test case per row)");
  app.add_option("--seed", o->seed, "Seed for every row (default: random)")
      ->check(tools::UintIn(0, UINT64_MAX));
  app.add_option("--min-live-trials", o->min_live,
                 "Live trials per algorithm fixed must pass")
      ->capture_default_str()
      ->check(tools::UintIn(1, 1000000000));
  app.add_option("--min-fatal-trials", o->min_fatal,
                 "Fatal trials per algorithm fixed must pass")
      ->capture_default_str()
      ->check(tools::UintIn(1, 1000000000));
  app.add_option("--min-tsan-trials", o->tsan_fixed_trials,
                 "TSan trials per algorithm fixed must pass (its TSan rows "
                 "run niced beside the others to the end of the budget, so "
                 "they usually run more)")
      ->capture_default_str()
      ->check(tools::UintIn(1, 1000000));
  app.add_option("--race-live-trials", o->race_live_trials,
                 "Most live trials to reproduce one race row")
      ->capture_default_str()
      ->check(tools::UintIn(1, 1000000));
  app.add_option("--race-fatal-trials", o->race_fatal_trials,
                 "Most fatal trials to reproduce one race row")
      ->capture_default_str()
      ->check(tools::UintIn(1, 1000000));
  app.add_option("--jobs", o->jobs,
                 "Rows run at once besides fixed's live rows (those run "
                 "from the start, two workers per algorithm)")
      ->capture_default_str()
      ->check(tools::UintIn(1, 64));
  app.add_option("--threads", o->threads, "Signing threads per row")
      ->capture_default_str()
      ->check(tools::UintIn(1, 64));
  app.add_option("--tsan-bin", o->tsan_bin,
                 "TSan build of sigrace: auto (../../tsan/tools/sigrace "
                 "from this binary), a path, or none")
      ->capture_default_str();
  app.add_option("--variant", o->variants,
                 "Only these variants (repeatable; default: all)");
  app.add_option("--alg", *alg, "rs256, eddsa or both")->capture_default_str();
}

int Fail(const std::string& message) {
  std::fprintf(stderr, "sigrace: %s\n", message.c_str());
  return 2;
}

// Parses argv into *o. Returns -1 to go on, else the exit code.
int ParseReproFlags(int argc, char** argv, ReproOptions* o) {
  CLI::App app{kReproHelp, "sigrace repro"};
  std::string alg = "both";
  ShardFlagText shard_text;
  AddReproFlags(app, o, &alg);
  AddShardFlags(app, &shard_text);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    if (e.get_exit_code() == 0) {
      app.exit(e);
      return 0;
    }
    return Fail(std::string(e.what()) + " (see sigrace repro --help)");
  }
  if (alg == "both") {
    o->algs = {"rs256", "eddsa"};
  } else if (alg == "rs256" || alg == "eddsa") {
    o->algs = {alg};
  } else {
    return Fail("unknown --alg '" + alg + "' (rs256, eddsa, both)");
  }
  if (app.count("--seed") == 0) o->seed = RandomSeed();
  // fixed's rows run this shard of their trials (every shard needs the
  // same --seed); race rows run whole in every shard.
  StatusOr<ShardSpec> shard = FinishShardFlags(shard_text);
  if (!shard.ok()) return Fail(shard.status().message());
  if (shard->sharded() && app.count("--seed") == 0) {
    return Fail("a sharded repro needs --seed (the same in every shard)");
  }
  o->shard_index = shard->index;
  o->shard_count = shard->count;
  return -1;
}

int WriteReports(const ReproOptions& o, const ReproResult& result) {
  if (!o.report_json.empty()) {
    Status st = WriteFileAtomic(
        o.report_json,
        ReproJson(result).dump(2, ' ', false,
                               nlohmann::json::error_handler_t::replace) +
            "\n");
    if (!st.ok()) return Fail(st.message());
  }
  if (!o.junit.empty()) {
    Status st = WriteFileAtomic(
        o.junit, JUnitXml("sigrace.repro", ReproJUnitCases(result)));
    if (!st.ok()) return Fail(st.message());
  }
  return result.exit_code;
}

}  // namespace

int ReproMain(int argc, char** argv) {
  // SIGINT, SIGTERM: every running row gets SIGTERM (each cleans up its
  // own), then repro dies by the signal.
  InstallStopHandler();
  ReproOptions o;
  if (const int rc = ParseReproFlags(argc, argv, &o); rc >= 0) return rc;
  StatusOr<std::vector<VariantEntry>> variants = SelectVariants(o.variants);
  if (!variants.ok()) return Fail(variants.status().message());
  const std::string self = SelfExe();
  StatusOr<std::string> found_tsan = FindTsanBinary(o.tsan_bin, self);
  if (!found_tsan.ok()) return Fail(found_tsan.status().message());
  const std::string tsan = *found_tsan;
  // Each run has its own directory of row reports and logs, created
  // here (never an earlier run's): a row is judged only on what this run
  // wrote.
  if (Status st = CheckOutputDir(o.out_dir); !st.ok()) {
    return Fail(st.message());
  }
  if (Status st = PrepareOutputDir(o.out_dir + "/logs"); !st.ok()) {
    return Fail(st.message());
  }
  std::string run_id, logs;
  for (int attempt = 0; attempt < 8 && logs.empty(); ++attempt) {
    run_id = NewRunId();
    const std::string d = o.out_dir + "/logs/" + run_id;
    if (mkdir(d.c_str(), 0700) == 0) {
      logs = d;
    } else if (errno != EEXIST) {
      return Fail("mkdir " + d + ": " + ErrnoText(errno));
    }
  }
  if (logs.empty()) return Fail("no fresh log directory in " + o.out_dir);
  std::fputs(ReproStartText(o, tsan).c_str(), stdout);
  std::fprintf(stdout, "run id %s; row reports and logs in %s\n",
               run_id.c_str(), logs.c_str());
  std::fflush(stdout);

  const ReproPlan plan = PlanRepro(o, *variants, self, tsan, logs);
  auto on_done = [&plan](size_t job, size_t finished, const JobOutcome& out) {
    if (!out.spawn_error.empty()) {
      std::fprintf(stderr, "sigrace: %s\n", out.spawn_error.c_str());
      return;
    }
    std::fputs(
        ReproJobLine(plan.jobs[job], finished, plan.jobs.size(), out).c_str(),
        stderr);
  };
  ReproResult result;
  const std::vector<JobOutcome> outcomes =
      RunJobs(plan, {.budget_s = o.budget_s, .jobs = o.jobs}, on_done,
              &result.elapsed_s);
  result.rows = JudgeRows(plan, outcomes, ShardLimits(o, !tsan.empty()));
  result.exit_code = RunExitCode(result.rows);
  result.verdict = RunVerdictLine(result.exit_code);
  result.seed = o.seed;
  result.budget_s = o.budget_s;
  result.tsan_binary = tsan;
  result.shard_index = o.shard_index;
  result.shard_count = o.shard_count;
  result.build_id = BuildId();
  result.out_dir = o.out_dir;
  result.run_id = run_id;
  result.logs_dir = logs;
  std::fputs(ReproText(result).c_str(), stdout);
  std::fflush(stdout);
  return WriteReports(o, result);
}

}  // namespace sigrace::stress
