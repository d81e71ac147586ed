// End to end: `sigrace stress --through-gate` (the built binary,
// SIGRACE_BIN, as a subprocess). Each trial's real dump of a race variant,
// forced into its window by a failpoint, is staged for the inotify gate
// process; the trial is judged on what the gate released. Paired: the
// oracle gate holds the leaking dumps back (key-found, exit 0), the legacy
// scanner misses the in-memory forms and releases them (exit 1); the fixed
// signer's dumps are released clean; a dump the gate never judges is a
// harness error (exit 2). Deterministic: failpoints, no timing assertion.

#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>

#include "testing/crash_test_util.h"

namespace {

std::string Bin() {
  const char* b = getenv("SIGRACE_BIN");
  return b != nullptr ? b : "";
}

using sigrace::crashdump::testing::TempDir;

struct GateRun {
  int exit_code = -1;
  std::string report;  // the JSON report's text
  std::string log;
};

// `sigrace stress ARGS --through-gate` into a fresh --out.
GateRun RunThroughGate(const std::string& args, const std::string& env = "") {
  TempDir d;
  GateRun r;
  if (d.path().empty()) return r;
  const std::string json = d.path() + "/report.json";
  const std::string log = d.path() + "/log";
  const std::string cmd = env + " '" + Bin() + "' stress " + args +
                          " --through-gate --injectors failpoint --seed 7 "
                          "--trials 2 --quiet --out '" +
                          d.path() + "/out' --report-json '" + json + "' >'" +
                          log + "' 2>&1";
  const int st = system(cmd.c_str());
  r.exit_code = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
  std::ifstream in(json);
  std::stringstream ss;
  ss << in.rdbuf();
  r.report = ss.str();
  std::ifstream lin(log);
  std::stringstream ls;
  ls << lin.rdbuf();
  r.log = ls.str();
  return r;
}

uint64_t Num(const nlohmann::json& j, const char* a, const char* b) {
  if (!j.is_object() || !j.contains(a) || !j[a].is_object()) return 99999;
  return j[a].value(b, uint64_t{99999});
}

TEST(ThroughGateE2e, OracleGateHoldsTheLeakingDumpsBack) {
  ASSERT_FALSE(Bin().empty());
  const GateRun r =
      RunThroughGate("--variant heap-montgomery --gate-mode fixed");
  EXPECT_EQ(r.exit_code, 0) << r.log;
  const nlohmann::json j = nlohmann::json::parse(r.report, nullptr, false);
  ASSERT_TRUE(j.is_object()) << r.log;
  EXPECT_EQ(Num(j, "gate", "released"), 0u);
  EXPECT_EQ(Num(j, "gate", "quarantined"), 2u);
  EXPECT_EQ(Num(j, "gate", "stopped"), 2u);
  EXPECT_EQ(j["gate"]["quarantined_by_reason"].value("key-found", 0), 2);
  EXPECT_EQ(Num(j, "totals", "leak"), 0u);
}

TEST(ThroughGateE2e, LegacyScannerReleasesTheLeakingDumps) {
  ASSERT_FALSE(Bin().empty());
  const GateRun r = RunThroughGate(
      "--variant heap-montgomery --gate-mode fixed --gate-scanner legacy");
  EXPECT_EQ(r.exit_code, 1) << r.log;
  const nlohmann::json j = nlohmann::json::parse(r.report, nullptr, false);
  ASSERT_TRUE(j.is_object()) << r.log;
  EXPECT_EQ(Num(j, "gate", "released"), 2u);
  EXPECT_EQ(Num(j, "gate", "quarantined"), 0u);
  EXPECT_EQ(Num(j, "totals", "leak"), 2u);
  // The oracle names the in-memory form the legacy scanner missed.
  ASSERT_TRUE(j["leaks"].is_array() && !j["leaks"].empty());
  EXPECT_NE(j["leaks"][0].dump().find("rsa."), std::string::npos);
}

TEST(ThroughGateE2e, FixedSignerIsReleasedClean) {
  ASSERT_FALSE(Bin().empty());
  const GateRun r = RunThroughGate("--variant fixed");
  EXPECT_EQ(r.exit_code, 0) << r.log;
  const nlohmann::json j = nlohmann::json::parse(r.report, nullptr, false);
  ASSERT_TRUE(j.is_object()) << r.log;
  EXPECT_EQ(Num(j, "gate", "released"), 2u);
  EXPECT_EQ(Num(j, "gate", "quarantined"), 0u);
  EXPECT_EQ(Num(j, "totals", "leak"), 0u);
}

TEST(ThroughGateE2e, DumpNeverJudgedIsAHarnessError) {
  ASSERT_FALSE(Bin().empty());
  const GateRun r =
      RunThroughGate("--variant fixed --judge-timeout-ms 500",
                     "SIGRACE_FAILPOINTS=egress.gate_drop_event=error");
  EXPECT_EQ(r.exit_code, 2) << r.log;
  EXPECT_NE(r.log.find("not judged within 500 ms"), std::string::npos) << r.log;
}

TEST(ThroughGateE2e, WithoutTheFlagThereIsNoGate) {
  ASSERT_FALSE(Bin().empty());
  TempDir d;
  ASSERT_FALSE(d.path().empty());
  const std::string cmd = "'" + Bin() +
                          "' stress --variant fixed --injectors failpoint "
                          "--seed 7 --trials 1 --quiet --out '" +
                          d.path() + "' --report-json '" + d.path() +
                          "/r.json' >/dev/null 2>&1";
  const int st = system(cmd.c_str());
  EXPECT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 0);
  std::ifstream in(d.path() + "/r.json");
  std::stringstream ss;
  ss << in.rdbuf();
  const nlohmann::json j = nlohmann::json::parse(ss.str(), nullptr, false);
  ASSERT_TRUE(j.is_object());
  EXPECT_TRUE(j["gate"].is_null());
  EXPECT_NE(access((d.path() + "/staging").c_str(), F_OK), 0);
}

}  // namespace
