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
// Before those jobs start, the egress rows run in this process
// (stress/repro_egress.h): each gate race mode under its forced order, the
// fixed gate under the same orders, and the legacy scanner against the
// oracle, per algorithm, on real dumps of a child; the rest of the budget
// goes to the jobs. --egress only|skip selects them.
//
// This file parses the flags and prints; the plan, the schedule, the
// verdicts and the reports are stress/repro_*.h (JSON schema in
// stress/repro_report.h).

#include <sys/stat.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "base/files.h"
#include "base/process.h"
#include "base/status.h"
#include "stress/catalogue.h"
#include "stress/repro_egress.h"
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
    "Egress rows (gate/*, first, in this process, a few seconds): per "
    "algorithm, real dumps of a child (one that never held the key, one "
    "that holds it only as OpenSSL does after a signature) go through "
    "each gate race mode under its forced order (the writer runs at the "
    "failpoint gate.after_judge) and must release a leaking dump; through "
    "the fixed gate under the same orders, which must release nothing "
    "that leaks; and through the legacy scanner (must release it) and the "
    "oracle (must refuse it), naming the forms. Released files are judged "
    "by the oracle on their bytes. `sigrace variants` lists them.\n\n"
    "Exit codes: 0 every race variant reproduced and fixed stayed clean "
    "(no leak, no TSan report, enough trials); 1 otherwise; 2 usage or "
    "harness error.";

void AddReproFlags(CLI::App& app, ReproOptions* o, std::string* alg,
                   std::string* egress) {
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
                 "Only these variants (repeatable; default: all); gate/* "
                 "names select egress rows. Naming only signer variants "
                 "skips the egress rows, naming only gate/* ones skips the "
                 "others");
  app.add_option("--alg", *alg, "rs256, eddsa or both")->capture_default_str();
  app.add_option("--egress", *egress,
                 "with (egress rows and the others), only (egress rows "
                 "alone), or skip (no egress rows)")
      ->capture_default_str();
}

// Which rows run: the signer variants and the egress variants named.
struct RowChoice {
  bool signer = true, egress = true;
  std::vector<std::string> gate_variants;  // empty: all
};

int Fail(const std::string& message) {
  std::fprintf(stderr, "sigrace: %s\n", message.c_str());
  return 2;
}

// Parses argv into *o. Returns -1 to go on, else the exit code.
int ParseReproFlags(int argc, char** argv, ReproOptions* o, RowChoice* rows) {
  CLI::App app{kReproHelp, "sigrace repro"};
  std::string alg = "both", egress = "with";
  ShardFlagText shard_text;
  AddReproFlags(app, o, &alg, &egress);
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
  if (egress != "with" && egress != "only" && egress != "skip") {
    return Fail("unknown --egress '" + egress + "' (with, only, skip)");
  }
  // --variant: gate/* names go to the egress rows, the rest to the jobs.
  std::vector<std::string> signer_names;
  for (const std::string& v : o->variants) {
    (v.rfind("gate/", 0) == 0 ? rows->gate_variants : signer_names)
        .push_back(v);
  }
  for (const std::string& v : rows->gate_variants) {
    if (!IsEgressVariant(v)) return Fail("unknown variant '" + v + "'");
  }
  o->variants = signer_names;
  if (!o->variants.empty() || !rows->gate_variants.empty()) {
    rows->signer = !o->variants.empty();
    rows->egress = !rows->gate_variants.empty();
  }
  if (egress == "only") {
    if (!o->variants.empty()) {
      return Fail("--egress only with signer variants named (see --help)");
    }
    rows->signer = false;
    rows->egress = true;
  } else if (egress == "skip") {
    if (!rows->gate_variants.empty()) {
      return Fail("--egress skip with gate/* variants named (see --help)");
    }
    rows->egress = false;
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

// What shapes the rows, compared across the shards of one run by `sigrace
// merge`: not the seed (compared on its own), the output paths, --jobs
// (scheduling only) or the TSan binary's path (only whether one ran).
nlohmann::json ReproOptionsJson(const ReproOptions& o, const RowChoice& rows,
                                bool tsan_present) {
  return {{"budget_s", o.budget_s},
          {"min_live_trials", o.min_live},
          {"min_fatal_trials", o.min_fatal},
          {"min_tsan_trials", o.tsan_fixed_trials},
          {"race_live_trials", o.race_live_trials},
          {"race_fatal_trials", o.race_fatal_trials},
          {"threads", o.threads},
          {"variants", o.variants},
          {"gate_variants", rows.gate_variants},
          {"algs", o.algs},
          {"signer_rows", rows.signer},
          {"egress_rows", rows.egress},
          {"tsan", tsan_present}};
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
  const double started = UnixNow();
  ReproOptions o;
  RowChoice choice;
  if (const int rc = ParseReproFlags(argc, argv, &o, &choice); rc >= 0) {
    return rc;
  }
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

  ReproResult result;
  // The egress rows first, in this process, before any child job runs
  // (RunJobs reaps every child; these wait for their own).
  double egress_s = 0;
  if (choice.egress) {
    const auto start = std::chrono::steady_clock::now();
    EgressOptions eo;
    eo.variants = choice.gate_variants;
    eo.algs = o.algs;
    eo.seed = o.seed;
    eo.work_dir = logs + "/egress";
    if (mkdir(eo.work_dir.c_str(), 0700) != 0) {
      return Fail("mkdir " + eo.work_dir + ": " + ErrnoText(errno));
    }
    StatusOr<std::vector<ReproRow>> egress = RunEgressRows(eo);
    if (!egress.ok()) return Fail(egress.status().message());
    egress_s =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start)
            .count();
    for (ReproRow& r : *egress) {
      std::fprintf(stderr, "[egress] %s %s %s: %s\n", r.spec.variant.c_str(),
                   r.spec.alg.c_str(), r.spec.mode.c_str(), r.verdict.c_str());
      result.rows.push_back(std::move(r));
    }
  }
  ReproPlan plan;
  if (choice.signer) plan = PlanRepro(o, *variants, self, tsan, logs);
  auto on_done = [&plan](size_t job, size_t finished, const JobOutcome& out) {
    if (!out.spawn_error.empty()) {
      std::fprintf(stderr, "sigrace: %s\n", out.spawn_error.c_str());
      return;
    }
    std::fputs(
        ReproJobLine(plan.jobs[job], finished, plan.jobs.size(), out).c_str(),
        stderr);
  };
  const std::vector<JobOutcome> outcomes = RunJobs(
      plan, {.budget_s = std::max(o.budget_s - egress_s, 1.0), .jobs = o.jobs},
      on_done, &result.elapsed_s);
  result.elapsed_s += egress_s;
  for (ReproRow& r : JudgeRows(plan, outcomes, ShardLimits(o, !tsan.empty()))) {
    result.rows.push_back(std::move(r));
  }
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
  result.options = ReproOptionsJson(o, choice, !tsan.empty());
  result.start_time = IsoUtc(started);
  result.wall_s = UnixNow() - started;
  std::fputs(ReproText(result).c_str(), stdout);
  std::fflush(stdout);
  return WriteReports(o, result);
}

}  // namespace sigrace::stress
