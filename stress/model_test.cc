// The trial model and the report writers: plans replay from (seed, trial),
// each field draws from its own stream, exit codes follow the expectation,
// and no report carries anything but names, offsets and lengths.

#include <gtest/gtest.h>

#include <set>
#include <string>
#include <vector>

#include "stress/options.h"
#include "stress/report.h"
#include "stress/trial.h"

namespace sigrace::stress {
namespace {

PlanInputs Inputs(std::vector<Injector> injectors,
                  std::vector<std::string> algs = {"rs256", "eddsa"}) {
  PlanInputs in;
  in.seed = 42;
  in.algs = algs;
  in.injectors = injectors;
  in.signer_threads = 4;
  FailpointChoice a;
  a.name = "sign.begin";
  a.on_signer = true;
  a.max_hit = 16;
  FailpointChoice b;
  b.name = "rotate.begin";
  b.thread = "rotator";
  b.max_hit = 2;
  in.failpoints = {a, b};
  return in;
}

TEST(TrialPlan, SameSeedAndTrialReplayTheSamePlan) {
  const PlanInputs in =
      Inputs({Injector::kFailpoint, Injector::kAsync, Injector::kUnrelated});
  for (uint64_t t = 0; t < 200; ++t) {
    EXPECT_EQ(PlanToJson(PlanTrial(in, t)), PlanToJson(PlanTrial(in, t)));
  }
}

TEST(TrialPlan, TrialsDiffer) {
  const PlanInputs in =
      Inputs({Injector::kFailpoint, Injector::kAsync, Injector::kUnrelated});
  int differ = 0;
  for (uint64_t t = 1; t < 100; ++t) {
    if (PlanToJson(PlanTrial(in, t)) != PlanToJson(PlanTrial(in, 0))) ++differ;
  }
  EXPECT_EQ(differ, 99);
}

// The replay command narrows --injectors and --alg to the trial's own;
// every other choice of the trial must stay put.
TEST(TrialPlan, NarrowingInjectorsAndAlgKeepsTheOtherChoices) {
  const PlanInputs all =
      Inputs({Injector::kFailpoint, Injector::kAsync, Injector::kUnrelated});
  for (uint64_t t = 0; t < 300; ++t) {
    const TrialPlan p = PlanTrial(all, t);
    const TrialPlan q = PlanTrial(Inputs({p.injector}, {p.alg}), t);
    EXPECT_EQ(PlanToJson(p), PlanToJson(q)) << "trial " << t;
  }
}

// --rotation-share puts that share of failpoint faults on the rotation
// path; the replay command carries it, so a replay draws the same site.
TEST(TrialPlan, RotationShareSetsTheRotationPathShare) {
  PlanInputs in = Inputs({Injector::kFailpoint});
  for (double share : {0.0, 0.25, 1.0}) {
    in.rotation_share = share;
    int rotation = 0;
    const int n = 4000;
    for (int t = 0; t < n; ++t) {
      const TrialPlan p = PlanTrial(in, static_cast<uint64_t>(t));
      if (p.thread == "rotator") ++rotation;
      EXPECT_EQ(PlanToJson(p), PlanToJson(PlanTrial(in, t)));
    }
    if (share == 0.0) {
      EXPECT_EQ(rotation, 0);
    } else if (share == 1.0) {
      EXPECT_EQ(rotation, n);
    } else {
      // Binomial(4000, 0.25): sd 27; 6 sd either side.
      EXPECT_GT(rotation, 1000 - 165);
      EXPECT_LT(rotation, 1000 + 165);
    }
  }
  StressOptions o;
  o.rotation_share = 0.25;
  const std::string cmd = ReplayCommand(o, PlanTrial(in, 3));
  EXPECT_NE(cmd.find(" --rotation-share 0.25 "), std::string::npos) << cmd;
  o.rotation_share = -1;
  EXPECT_EQ(ReplayCommand(o, PlanTrial(in, 3)).find("--rotation-share"),
            std::string::npos);
}

// The replay command carries --key-pool, so the replayed worker keeps the
// pooled key material's rotation path.
TEST(TrialPlan, ReplayCommandCarriesKeyPool) {
  PlanInputs in = Inputs({Injector::kFailpoint});
  StressOptions o;
  o.key_pool = 2;
  const std::string cmd = ReplayCommand(o, PlanTrial(in, 1));
  EXPECT_NE(cmd.find(" --key-pool 2 "), std::string::npos) << cmd;
  o.key_pool = 0;
  EXPECT_EQ(ReplayCommand(o, PlanTrial(in, 1)).find("--key-pool"),
            std::string::npos);
}

TEST(TrialPlan, FailpointSpecNamesHitAndThread) {
  PlanInputs in = Inputs({Injector::kFailpoint});
  for (uint64_t t = 0; t < 50; ++t) {
    const TrialPlan p = PlanTrial(in, t);
    ASSERT_FALSE(p.failpoint.empty());
    if (p.failpoint == "rotate.begin") {
      EXPECT_EQ(p.thread, "rotator");
      EXPECT_LE(p.hit, 2u);
    } else {
      EXPECT_EQ(p.thread, "signer-" + std::to_string(p.target_signer));
      EXPECT_LE(p.hit, 16u);
    }
    EXPECT_GE(p.hit, 1u);
    EXPECT_EQ(p.FailpointSpec(), p.failpoint + "=raise(SIGSEGV)@" +
                                     std::to_string(p.hit) + "#" + p.thread);
  }
}

TEST(TrialPlan, SitesOfTheOtherAlgorithmAreNeverDrawn) {
  PlanInputs in = Inputs({Injector::kFailpoint});
  in.failpoints[0].algs = {"eddsa"};
  for (uint64_t t = 0; t < 200; ++t) {
    const TrialPlan p = PlanTrial(in, t);
    if (p.alg == "rs256") EXPECT_EQ(p.failpoint, "rotate.begin");
  }
}

TEST(TrialPlan, JsonRoundTrip) {
  const TrialPlan p = PlanTrial(Inputs({Injector::kAsync}), 7);
  StatusOr<TrialPlan> q = PlanFromJson(PlanToJson(p));
  ASSERT_TRUE(q.ok());
  EXPECT_EQ(PlanToJson(*q), PlanToJson(p));
  EXPECT_FALSE(PlanFromJson("{\"trial\": 1}").ok());
  EXPECT_FALSE(PlanFromJson("not json").ok());
}

TEST(Injectors, ParseList) {
  EXPECT_TRUE(ParseInjectorList("failpoint,async,unrelated").ok());
  EXPECT_FALSE(ParseInjectorList("failpoint,failpoint").ok());
  EXPECT_FALSE(ParseInjectorList("cosmic-ray").ok());
  EXPECT_FALSE(ParseInjectorList("").ok());
}

TrialResult Result(Verdict v, const std::string& alg, uint64_t trial) {
  TrialResult r;
  r.plan.seed = 9;
  r.plan.trial = trial;
  r.plan.alg = alg;
  r.verdict = v;
  if (v == Verdict::kLeak) {
    LeakFinding f;
    f.file_offset = 4096;
    f.region = "load 0x1000-0x2000 rw-";
    f.form = "rsa.p.le64";
    f.length = 64;
    f.kind = "leak";
    r.findings.push_back(f);
    r.findings_total = 1;
  }
  if (v == Verdict::kHarnessError) r.message = "no dump";
  return r;
}

RunReport Report(Expect expect, std::vector<TrialResult> results) {
  RunReport rep;
  rep.options.expect = expect;
  rep.options.seed = 9;
  rep.options.algs = {"rs256"};
  for (const TrialResult& r : results) rep.Add(r);
  rep.Finish();
  return rep;
}

TEST(ExitCode, ExpectClean) {
  EXPECT_EQ(
      Report(Expect::kClean, {Result(Verdict::kClean, "rs256", 0)}).exit_code,
      0);
  EXPECT_EQ(Report(Expect::kClean, {Result(Verdict::kClean, "rs256", 0),
                                    Result(Verdict::kLeak, "rs256", 1)})
                .exit_code,
            1);
  // A harness error is never counted as clean.
  EXPECT_EQ(Report(Expect::kClean, {Result(Verdict::kClean, "rs256", 0),
                                    Result(Verdict::kHarnessError, "rs256", 1)})
                .exit_code,
            2);
  EXPECT_EQ(Report(Expect::kClean, {}).exit_code, 2);
}

TEST(ExitCode, ExpectLeak) {
  EXPECT_EQ(
      Report(Expect::kLeak, {Result(Verdict::kLeak, "rs256", 0)}).exit_code, 0);
  EXPECT_EQ(
      Report(Expect::kLeak, {Result(Verdict::kClean, "rs256", 0)}).exit_code,
      1);
  EXPECT_EQ(Report(Expect::kLeak, {Result(Verdict::kHarnessError, "rs256", 0)})
                .exit_code,
            2);
}

TEST(ExitCode, TsanReportFailsExpectClean) {
  RunReport rep;
  rep.options.expect = Expect::kClean;
  rep.options.algs = {"rs256"};
  rep.Add(Result(Verdict::kClean, "rs256", 0));
  rep.tsan.enabled = true;
  rep.tsan.total = 1;
  rep.Finish();
  EXPECT_EQ(rep.exit_code, 1);
}

TEST(Reports, JUnitNamesSeedAndTrialOfTheFirstLeak) {
  RunReport rep = Report(Expect::kClean, {Result(Verdict::kClean, "rs256", 0),
                                          Result(Verdict::kLeak, "rs256", 1)});
  rep.options.variant = "fixed";
  const std::string xml = JUnitXml("sigrace.stress", StressJUnitCases(rep));
  EXPECT_NE(xml.find("<testcase"), std::string::npos);
  EXPECT_NE(xml.find("leak at seed 9 trial 1"), std::string::npos) << xml;
  EXPECT_NE(xml.find("failures=\"1\""), std::string::npos);
}

TEST(Reports, JsonAndSidecarCarryNamesOffsetsLengths) {
  RunReport rep = Report(Expect::kLeak, {Result(Verdict::kLeak, "rs256", 3)});
  const nlohmann::json j = ReportJson(rep);
  EXPECT_EQ(j["schema"], "sigrace.stress.report/1");
  EXPECT_EQ(j["totals"]["leak"], 1);
  EXPECT_EQ(j["cells"][0]["first_leak"]["trial"], 3);
  EXPECT_EQ(j["cells"][0]["first_leak"]["kinds"], nlohmann::json({"leak"}));
  EXPECT_EQ(j["exit_code"], 0);
  const nlohmann::json s =
      SidecarJson(rep.leak_list[0], rep.options, "some window");
  EXPECT_EQ(s["schema"], "sigrace.leak/1");
  ASSERT_EQ(s["findings"].size(), 1u);
  EXPECT_EQ(s["findings"][0]["kind"], "leak");
  for (const auto& [key, value] : s["findings"][0].items()) {
    EXPECT_TRUE(key == "file_offset" || key == "vaddr" || key == "region" ||
                key == "form" || key == "form_offset" || key == "length" ||
                key == "redacted" || key == "key" || key == "key_source" ||
                key == "kind")
        << key;
  }
}

TEST(Replay, CommandNamesEverythingTheTrialDependsOn) {
  StressOptions o;
  o.variant = "shallow-scope";
  o.mode = Mode::kFatal;
  o.threads = 3;
  TrialPlan p;
  p.seed = 5;
  p.trial = 17;
  p.alg = "eddsa";
  p.injector = Injector::kFailpoint;
  EXPECT_EQ(ReplayCommand(o, p),
            "sigrace stress --variant shallow-scope --alg eddsa --mode fatal "
            "--injectors failpoint --threads 3 --seed 5 --trial 17");
}

// Issue 13: exploration plans.
PlanInputs ExploreInputs(std::vector<Injector> injectors) {
  PlanInputs in = Inputs(std::move(injectors));
  in.rotator = true;
  in.widen_us = 200;
  in.max_instants = 50;
  in.census = {{"rs256", "sign", 30},
               {"rs256", "rotate", 120},
               {"eddsa", "sign", 12},
               {"eddsa", "rotate", 0}};
  return in;
}

TEST(ExplorePlan, NewPlansReplayExactlyThroughJson) {
  const PlanInputs in =
      ExploreInputs({Injector::kFailpoint, Injector::kAsync, Injector::kAlloc});
  for (uint64_t t = 0; t < 300; ++t) {
    const TrialPlan p = PlanTrial(in, t);
    EXPECT_EQ(PlanToJson(p), PlanToJson(PlanTrial(in, t)));
    StatusOr<TrialPlan> back = PlanFromJson(PlanToJson(p));
    ASSERT_TRUE(back.ok());
    EXPECT_EQ(PlanToJson(*back), PlanToJson(p));
  }
}

TEST(ExplorePlan, AsyncFaultsReachTheRotationThreadAndEverySigner) {
  const PlanInputs in = ExploreInputs({Injector::kAsync});
  std::set<std::string> threads;
  for (uint64_t t = 0; t < 400; ++t) threads.insert(PlanTrial(in, t).thread);
  EXPECT_EQ(threads, (std::set<std::string>{"signer-0", "signer-1", "signer-2",
                                            "signer-3", "rotator"}));
  PlanInputs no_rotator = in;
  no_rotator.rotator = false;
  for (uint64_t t = 0; t < 400; ++t) {
    EXPECT_NE(PlanTrial(no_rotator, t).thread, "rotator");
  }
}

TEST(ExplorePlan, AllocInstantStaysWithinTheOperationsInstants) {
  PlanInputs in = ExploreInputs({Injector::kAlloc});
  std::set<std::string> ops;
  for (uint64_t t = 0; t < 500; ++t) {
    const TrialPlan p = PlanTrial(in, t);
    ops.insert(p.op);
    EXPECT_EQ(p.thread == "rotator", p.op == "rotate");
    uint32_t bound = in.max_instants;
    if (p.alg == "rs256" && p.op == "sign") bound = 30;
    if (p.alg == "eddsa" && p.op == "sign") bound = 12;
    EXPECT_GE(p.instant, 1u);
    EXPECT_LE(p.instant, bound) << p.Describe();
    EXPECT_NE(p.widen_seed, 0u);
  }
  EXPECT_EQ(ops, (std::set<std::string>{"sign", "rotate"}));
}

TEST(ExplorePlan, SystematicVisitsEveryInstantOnce) {
  PlanInputs in = ExploreInputs({Injector::kAsync});
  in.explore = Explore::kSystematic;
  // 30 + min(120, 50) + 12 + 0.
  ASSERT_EQ(SystematicTotal(in), 92u);
  std::set<std::string> seen;
  for (uint64_t t = 0; t < SystematicTotal(in); ++t) {
    const TrialPlan p = PlanTrial(in, t);
    EXPECT_EQ(p.injector, Injector::kAlloc);
    EXPECT_TRUE(
        seen.insert(p.alg + " " + p.op + " " + std::to_string(p.instant))
            .second)
        << p.Describe();
  }
  for (const OpInstants& o : in.census) {
    for (uint32_t i = 1; i <= std::min(o.seen, in.max_instants); ++i) {
      EXPECT_EQ(seen.count(o.alg + " " + o.op + " " + std::to_string(i)), 1u);
    }
  }
  // Then round again, the same order.
  EXPECT_EQ(PlanTrial(in, 92 + 40).instant, PlanTrial(in, 40).instant);
}

TEST(ExplorePlan, FlagsAreRangeChecked) {
  StressFlagText text;
  StressOptions o;
  o.seed_given = true;
  EXPECT_TRUE(FinishStressOptions(text, false, &o).ok());
  text.explore = "exhaustive";
  EXPECT_FALSE(FinishStressOptions(text, false, &o).ok());
  text.explore = "systematic";
  o.max_instants = 0;
  EXPECT_FALSE(FinishStressOptions(text, false, &o).ok());
  o.max_instants = 2000;
  o.widen_us = 10001;
  EXPECT_FALSE(FinishStressOptions(text, false, &o).ok());
  o.widen_us = 200;
  EXPECT_TRUE(FinishStressOptions(text, false, &o).ok());
  EXPECT_EQ(o.explore, Explore::kSystematic);
  text.injectors = "failpoint,alloc";
  EXPECT_TRUE(FinishStressOptions(text, false, &o).ok());
}

}  // namespace
}  // namespace sigrace::stress
