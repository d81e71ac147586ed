// The egress pipeline on real dumps, one fault at a time, every trial
// drawing it (fault_share 100), so each run puts writer and gate in the
// faulting or racing order on every trial. Paired: the fixed gate
// releases nothing holding a key and quarantines every torn dump; the
// race mode (or fail-open, or the legacy scanner) under the same fault
// and order releases a leaking or torn dump.

#include "stress/egress_pipeline.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "testing/crash_test_util.h"

namespace sigrace::stress {
namespace {

using crashdump::GateMode;
using crashdump::GateScanner;
using crashdump::testing::TempDir;

PipelineReport RunPipeline(const TempDir& dir, const std::string& name,
                           GateMode mode, std::vector<EgressFault> faults,
                           uint64_t trials, uint32_t leak_share = 100,
                           GateScanner scanner = GateScanner::kOracle) {
  PipelineOptions o;
  o.out_dir = dir.path() + "/" + name;
  o.gate_mode = mode;
  o.scanner = scanner;
  o.faults = std::move(faults);
  o.fault_share = 100;
  o.leak_share = leak_share;
  o.trials = trials;
  o.seed = 16;
  o.algs = {"eddsa"};
  o.inflight = 2;
  o.quiet = true;
  StatusOr<PipelineReport> r = RunEgressPipeline(o);
  EXPECT_TRUE(r.ok()) << r.status().ToString();
  if (!r.ok()) return {};
  for (const std::string& e : r->harness_errors) ADD_FAILURE() << e;
  EXPECT_EQ(r->never_judged, 0u);
  EXPECT_EQ(r->trials, trials);
  return *r;
}

void ExpectFixedClean(const PipelineReport& r) {
  SCOPED_TRACE(PipelineText(r));
  EXPECT_EQ(r.leaks, 0u);
  EXPECT_EQ(r.torn_released, 0u);
  EXPECT_EQ(r.ExitCode(), 0);
}

TEST(EgressPipelineTest, FixedGateQuarantinesEveryTornDump) {
  TempDir dir;
  for (EgressFault f :
       {EgressFault::kWriterCrash, EgressFault::kEnospc, EgressFault::kTorn}) {
    SCOPED_TRACE(EgressFaultName(f));
    const PipelineReport r =
        RunPipeline(dir, std::string("fixed-") + EgressFaultName(f),
                    GateMode::kFixed, {f}, 4, 50);
    ExpectFixedClean(r);
    EXPECT_EQ(r.torn_staged, 4u);
    EXPECT_EQ(r.torn_quarantined, 4u);
    EXPECT_EQ(r.released, 0u);
    EXPECT_EQ(r.quarantined_by_reason.count("torn"), 1u);
  }
}

TEST(EgressPipelineTest, FailOpenReleasesTornDumps) {
  TempDir dir;
  const PipelineReport r = RunPipeline(
      dir, "fail-open-torn", GateMode::kFailOpen, {EgressFault::kTorn}, 4, 0);
  SCOPED_TRACE(PipelineText(r));
  EXPECT_GT(r.torn_released, 0u);
  EXPECT_LT(r.torn_quarantined, r.torn_staged);
}

TEST(EgressPipelineTest, GateCrashBetweenJudgmentAndReleaseIsJudgedAgain) {
  TempDir dir;
  const PipelineReport r =
      RunPipeline(dir, "fixed-gate-crash", GateMode::kFixed,
                  {EgressFault::kGateCrash}, 4, 50);
  SCOPED_TRACE(PipelineText(r));
  ExpectFixedClean(r);
  EXPECT_EQ(r.gate_restarts, 4u);
  // Every dump decided once by a gate that did not crash: nothing lost,
  // nothing released on a crashed gate's judgment.
  EXPECT_EQ(r.released + r.quarantined, 4u);
  EXPECT_EQ(r.judgments, 4u);
}

TEST(EgressPipelineTest, ScannerErrorFailsClosedInFixedGateOpenInFailOpen) {
  TempDir dir;
  const PipelineReport fixed = RunPipeline(dir, "fixed-scan", GateMode::kFixed,
                                           {EgressFault::kScannerError}, 3);
  ExpectFixedClean(fixed);
  EXPECT_EQ(fixed.quarantined_by_reason.at("scanner-error"), 3u);
  const PipelineReport open =
      RunPipeline(dir, "fail-open-scan", GateMode::kFailOpen,
                  {EgressFault::kScannerError}, 3);
  SCOPED_TRACE(PipelineText(open));
  EXPECT_EQ(open.leaks, 3u);
  EXPECT_EQ(open.ExitCode(), 0);  // a leak, as a race mode expects
}

struct RaceCase {
  GateMode mode;
  EgressFault order;
};

TEST(EgressPipelineTest, EveryRaceModeReleasesALeakUnderItsOrder) {
  TempDir dir;
  const RaceCase cases[] = {
      {GateMode::kJudgeUnsealed, EgressFault::kUnsealed},
      {GateMode::kFailOpen, EgressFault::kUnsealed},
      {GateMode::kReopenToRelease, EgressFault::kSwap},
      {GateMode::kRenameRelease, EgressFault::kHeldOpen},
      {GateMode::kLinkRelease, EgressFault::kHeldOpen},
  };
  int i = 0;
  for (const RaceCase& c : cases) {
    SCOPED_TRACE(std::string(EgressFaultName(c.order)) + " mode " +
                 std::to_string(static_cast<int>(c.mode)));
    const PipelineReport r =
        RunPipeline(dir, "race-" + std::to_string(i++), c.mode, {c.order}, 2);
    SCOPED_TRACE(PipelineText(r));
    EXPECT_EQ(r.leaks, 2u);
    ASSERT_FALSE(r.leak_list.empty());
    EXPECT_FALSE(r.leak_list[0].forms.empty());
  }
}

TEST(EgressPipelineTest, FixedGateCleanUnderEveryOrder) {
  TempDir dir;
  for (EgressFault order :
       {EgressFault::kUnsealed, EgressFault::kSwap, EgressFault::kHeldOpen}) {
    SCOPED_TRACE(EgressFaultName(order));
    const PipelineReport r =
        RunPipeline(dir, std::string("fixed-") + EgressFaultName(order),
                    GateMode::kFixed, {order}, 2);
    ExpectFixedClean(r);
    // The leaking dump the writer put in place was judged and held back.
    if (order != EgressFault::kUnsealed) {
      EXPECT_EQ(r.quarantined_by_reason.at("key-found"), 2u);
      EXPECT_EQ(r.released, 2u);  // the clean dump, from the gate's copy
    }
  }
}

TEST(EgressPipelineTest, LegacyScannerReleasesWhatTheOracleHoldsBack) {
  TempDir dir;
  const PipelineReport oracle =
      RunPipeline(dir, "oracle", GateMode::kFixed, {}, 2);
  ExpectFixedClean(oracle);
  EXPECT_EQ(oracle.quarantined_by_reason.at("key-found"), 2u);
  const PipelineReport legacy = RunPipeline(dir, "legacy", GateMode::kFixed, {},
                                            2, 100, GateScanner::kLegacy);
  SCOPED_TRACE(PipelineText(legacy));
  EXPECT_EQ(legacy.leaks, 2u);
}

// The harness's own check has teeth: a dump the gate never judges is a
// harness error (exit 2), never a clean trial.
PipelineReport RunUnjudged(const TempDir& dir, const std::string& name,
                           std::vector<EgressFault> faults,
                           const std::string& gate_failpoints) {
  PipelineOptions o;
  o.out_dir = dir.path() + "/" + name;
  o.faults = std::move(faults);
  o.fault_share = 100;
  o.trials = 2;
  o.seed = 16;
  o.algs = {"eddsa"};
  o.inflight = 1;
  o.quiet = true;
  o.judge_timeout_ms = 300;
  o.gate_failpoints = gate_failpoints;
  StatusOr<PipelineReport> r = RunEgressPipeline(o);
  EXPECT_TRUE(r.ok()) << r.status().ToString();
  return r.ok() ? *r : PipelineReport{};
}

TEST(EgressPipelineTest, ADumpNeverJudgedIsAHarnessError) {
  TempDir dir;
  const PipelineReport r =
      RunUnjudged(dir, "dropped", {}, "egress.gate_drop_event=error");
  EXPECT_EQ(r.never_judged, 2u);
  EXPECT_EQ(r.ExitCode(), 2);
}

// The restarted gate's rescan is what judges the dump its predecessor
// died on: without it, that dump is never judged.
TEST(EgressPipelineTest, WithoutTheRescanACrashedGatesDumpIsNeverJudged) {
  TempDir dir;
  const PipelineReport r =
      RunUnjudged(dir, "no-rescan", {EgressFault::kGateCrash},
                  "egress.gate_no_rescan=error");
  EXPECT_EQ(r.gate_restarts, 2u);
  EXPECT_EQ(r.never_judged, 2u);
  EXPECT_EQ(r.ExitCode(), 2);
}

TEST(EgressPipelineTest, PlanReplaysFromSeedAndTrial) {
  PipelineOptions o;
  o.seed = 7;
  for (uint64_t t = 0; t < 50; ++t) {
    EXPECT_EQ(PlanEgressTrial(o, t).Describe(),
              PlanEgressTrial(o, t).Describe());
  }
  EXPECT_FALSE(ParseEgressFaults("torn,bogus").ok());
  EXPECT_EQ(ParseEgressFaults("all")->size(), AllEgressFaults().size());
}

}  // namespace
}  // namespace sigrace::stress
