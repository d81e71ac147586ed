// The verdicts of `sigrace repro` on fixture rows: what each row's job
// outcomes (exit code, report) make of the row and of the whole run.

#include "stress/repro_verdict.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace sigrace::stress {
namespace {

// A `sigrace stress` report with these totals; a first leak when leaks > 0.
nlohmann::json StressReport(uint64_t trials, uint64_t leaks,
                            uint64_t harness_errors = 0) {
  nlohmann::json cell = {
      {"trials", trials}, {"leaks", leaks}, {"first_leak", nullptr}};
  if (leaks > 0) {
    cell["first_leak"] = {{"trial", 3},
                          {"elapsed_s", 0.5},
                          {"forms", {"rsa.p.le64"}},
                          {"regions", {"[heap]"}},
                          {"replay", "sigrace stress --seed 7 --trial 3"}};
  }
  return {{"totals",
           {{"trials", trials},
            {"leak", leaks},
            {"harness_error", harness_errors}}},
          {"cells", nlohmann::json::array({cell})}};
}

JobOutcome Finished(int exit_code, nlohmann::json report) {
  JobOutcome o;
  o.started = true;
  o.exit_code = exit_code;
  o.seconds = 1.5;
  o.command = "sigrace stress ...";
  o.report = std::move(report);
  o.log_tail = "last line of the log\n";
  return o;
}

// One row and its jobs, judged as repro judges them.
struct Fixture {
  std::vector<JobSpec> jobs;
  std::vector<JobOutcome> outcomes;
  VerdictLimits limits{.min_live = 100, .min_fatal = 10};

  int AddJob(JobOutcome o) {
    jobs.push_back(JobSpec{.log_path = "logs/job.log"});
    outcomes.push_back(std::move(o));
    return static_cast<int>(jobs.size()) - 1;
  }
  ReproRow Judge(const RowSpec& row) const {
    return JudgeRow(row, jobs, outcomes, limits);
  }
};

RowSpec Row(const char* variant, const char* mode, bool race) {
  RowSpec r;
  r.variant = variant;
  r.alg = "rs256";
  r.mode = mode;
  r.race = race;
  r.data_race = race;
  return r;
}

TEST(ReproVerdict, FixedRowWithALeakFails) {
  Fixture f;
  RowSpec row = Row("fixed", "fatal", false);
  row.job = f.AddJob(Finished(1, StressReport(10, 1)));
  const ReproRow r = f.Judge(row);
  EXPECT_EQ(r.verdict, "LEAK");
  EXPECT_FALSE(r.ok);
  EXPECT_TRUE(r.failed);
  EXPECT_EQ(r.leaks, 1u);
  ASSERT_TRUE(r.first_leak.is_object());
  EXPECT_EQ(r.first_leak.value("trial", 0), 3);
  EXPECT_EQ(RunExitCode({r}), 1);
}

TEST(ReproVerdict, FixedRowShortOfTrialsFails) {
  Fixture f;
  RowSpec row = Row("fixed", "live", false);
  row.job = f.AddJob(Finished(0, StressReport(40, 0)));
  row.more_jobs = {f.AddJob(Finished(0, StressReport(40, 0)))};
  const ReproRow r = f.Judge(row);
  EXPECT_EQ(r.trials, 80u);  // both parts of the row
  EXPECT_EQ(r.verdict, "SHORT");
  EXPECT_TRUE(r.failed);
  EXPECT_EQ(r.note, "80 of 100 trials within the budget\n");
}

TEST(ReproVerdict, RaceRowWithoutReproductionFails) {
  Fixture f;
  RowSpec row = Row("copy-before-publish", "live", true);
  row.job = f.AddJob(Finished(1, StressReport(20, 0)));
  const ReproRow r = f.Judge(row);
  EXPECT_EQ(r.verdict, "NOT REPRODUCED");
  EXPECT_FALSE(r.ok);
  EXPECT_TRUE(r.failed);
  EXPECT_EQ(RunExitCode({r}), 1);
}

TEST(ReproVerdict, TsanRowWithoutAReportFromThisRunFails) {
  Fixture f;
  f.limits.tsan_present = true;
  RowSpec row = Row("fixed", "live", false);
  row.job = f.AddJob(Finished(0, StressReport(100, 0)));
  // The TSan job ended but wrote no report in this run (the schedule
  // removes an old one first, so its outcome has a null report).
  row.tsan_job = f.AddJob(Finished(66, nullptr));
  const ReproRow r = f.Judge(row);
  EXPECT_EQ(r.verdict, "clean");  // the dump oracle's part passed
  EXPECT_EQ(r.tsan_text, "error");
  EXPECT_FALSE(r.ok);
  EXPECT_TRUE(r.error);
  EXPECT_NE(r.note.find("wrote no report"), std::string::npos);
  EXPECT_EQ(RunExitCode({r}), 2);
}

TEST(ReproVerdict, TsanReportOnFixedFails) {
  Fixture f;
  f.limits.tsan_present = true;
  RowSpec row = Row("fixed", "live", false);
  row.job = f.AddJob(Finished(0, StressReport(100, 0)));
  nlohmann::json tsan_report = StressReport(4, 0);
  tsan_report["tsan"] = {
      {"enabled", true}, {"total", 2}, {"by_type", {{"data_race", 2}}}};
  row.tsan_job = f.AddJob(Finished(1, tsan_report));
  const ReproRow r = f.Judge(row);
  EXPECT_EQ(r.verdict, "clean+TSAN");
  EXPECT_TRUE(r.failed);
  EXPECT_EQ(r.tsan_text, "2 in 4 tr");
  EXPECT_EQ(r.tsan.value("trials", 0), 4);
}

// "0 reports" means nothing without trials behind it: a TSan row of fixed
// with fewer trials than the floor fails, one with enough passes.
TEST(ReproVerdict, TsanFixedRowBelowItsTrialFloorIsShort) {
  Fixture f;
  f.limits.tsan_present = true;
  f.limits.min_tsan_fixed = 4;
  for (const uint64_t trials : {3u, 4u}) {
    RowSpec row = Row("fixed", "live", false);
    row.job = f.AddJob(Finished(0, StressReport(100, 0)));
    nlohmann::json tsan_report = StressReport(trials, 0);
    tsan_report["tsan"] = {{"enabled", true}, {"total", 0}, {"by_type", {}}};
    row.tsan_job = f.AddJob(Finished(0, tsan_report));
    const ReproRow r = f.Judge(row);
    EXPECT_EQ(r.tsan_text, "0 in " + std::to_string(trials) + " tr");
    if (trials < 4) {
      EXPECT_EQ(r.verdict, "clean+SHORT(tsan)");
      EXPECT_TRUE(r.failed);
      EXPECT_NE(r.note.find("3 of 4 trials"), std::string::npos) << r.note;
      EXPECT_EQ(RunExitCode({r}), 1);
    } else {
      EXPECT_EQ(r.verdict, "clean");
      EXPECT_TRUE(r.ok);
      EXPECT_EQ(RunExitCode({r}), 0);
    }
  }
}

TEST(ReproVerdict, CleanFixedAndReproducedVariantsPass) {
  Fixture f;
  f.limits.tsan_present = true;
  std::vector<ReproRow> rows;
  RowSpec fixed_fatal = Row("fixed", "fatal", false);
  fixed_fatal.job = f.AddJob(Finished(0, StressReport(10, 0)));
  rows.push_back(f.Judge(fixed_fatal));
  RowSpec fixed_live = Row("fixed", "live", false);
  fixed_live.job = f.AddJob(Finished(0, StressReport(100, 0)));
  nlohmann::json tsan_report = StressReport(4, 0);
  tsan_report["tsan"] = {{"enabled", true}, {"total", 0}, {"by_type", {}}};
  fixed_live.tsan_job = f.AddJob(Finished(0, tsan_report));
  rows.push_back(f.Judge(fixed_live));
  RowSpec race = Row("copy-before-publish", "fatal", true);
  race.job = f.AddJob(Finished(0, StressReport(2, 1)));
  rows.push_back(f.Judge(race));
  RowSpec other_alg = Row("eddsa-only", "live", true);
  other_alg.na = true;  // its window is on the other algorithm's path
  rows.push_back(f.Judge(other_alg));

  EXPECT_EQ(rows[0].verdict, "clean");
  EXPECT_EQ(rows[1].verdict, "clean");
  EXPECT_EQ(rows[1].tsan_text, "0 in 4 tr");
  EXPECT_EQ(rows[2].verdict, "reproduced");
  EXPECT_EQ(rows[3].verdict, "n/a");
  for (const ReproRow& r : rows) {
    EXPECT_TRUE(r.ok) << r.spec.variant << " " << r.spec.mode;
    EXPECT_FALSE(r.failed);
    EXPECT_FALSE(r.error);
  }
  EXPECT_EQ(RunExitCode(rows), 0);
  EXPECT_EQ(RunVerdictLine(0),
            "ok: every race variant reproduced and fixed stayed clean");
}

TEST(ReproVerdict, HarnessErrorIsExit2UnlessSomethingFailed) {
  Fixture f;
  RowSpec broken = Row("fixed", "fatal", false);
  broken.job = f.AddJob(Finished(2, nullptr));
  const ReproRow error_row = f.Judge(broken);
  EXPECT_EQ(error_row.verdict, "ERROR");
  EXPECT_TRUE(error_row.error);
  EXPECT_EQ(error_row.note, "last line of the log\n");
  EXPECT_EQ(RunExitCode({error_row}), 2);

  RowSpec race = Row("copy-before-publish", "live", true);
  race.job = f.AddJob(Finished(1, StressReport(20, 0)));
  const ReproRow failed_row = f.Judge(race);
  // A failure outranks a harness error: the run is judged, and it failed.
  EXPECT_EQ(RunExitCode({error_row, failed_row}), 1);
}

TEST(ReproVerdict, JobThatNeverStartedIsAnError) {
  Fixture f;
  JobOutcome never;
  never.spawn_error = "spawn /no/such/sigrace: No such file or directory";
  never.exit_code = 2;
  RowSpec row = Row("copy-before-publish", "fatal", true);
  row.job = f.AddJob(never);
  const ReproRow r = f.Judge(row);
  EXPECT_EQ(r.verdict, "ERROR");
  EXPECT_TRUE(r.error);
  EXPECT_EQ(r.note, never.spawn_error + "\n");
  EXPECT_EQ(r.trials, 0u);
}

TEST(ReproVerdict, MalformedReportCountsNoTrials) {
  Fixture f;
  RowSpec row = Row("fixed", "fatal", false);
  // Exit 0 with a report of another shape: no trials, so not clean.
  row.job = f.AddJob(Finished(0, nlohmann::json{{"totals", "oops"}}));
  const ReproRow r = f.Judge(row);
  EXPECT_EQ(r.trials, 0u);
  EXPECT_EQ(r.verdict, "SHORT");
  EXPECT_TRUE(r.failed);
}

// A row is judged only on what this run's job wrote: exit 0 without a
// report is no reproduction, and a TSan job without one is no TSan
// verdict; both are errors of the row, never clean.
TEST(ReproVerdict, JobThatWroteNoReportIsAnError) {
  Fixture f;
  RowSpec row = Row("copy-before-publish", "live", true);
  row.job = f.AddJob(Finished(0, nullptr));
  const ReproRow r = f.Judge(row);
  EXPECT_EQ(r.verdict, "ERROR");
  EXPECT_TRUE(r.error);
  EXPECT_FALSE(r.ok);
  EXPECT_NE(r.note.find("the job wrote no report (exit 0)"), std::string::npos)
      << r.note;
  EXPECT_EQ(RunExitCode({r}), 2);

  RowSpec with_tsan = Row("copy-before-publish", "live", true);
  with_tsan.job = f.AddJob(Finished(0, StressReport(2, 1)));
  with_tsan.tsan_job = f.AddJob(Finished(2, nullptr));
  const ReproRow t = f.Judge(with_tsan);
  EXPECT_EQ(t.verdict, "reproduced");
  EXPECT_EQ(t.tsan_text, "error");
  EXPECT_TRUE(t.error);
  EXPECT_FALSE(t.ok);
  EXPECT_EQ(RunExitCode({t}), 2);
}

}  // namespace
}  // namespace sigrace::stress
