// The egress rows of `sigrace repro` on real dumps: every gate race mode
// releases a leak under its forced order, the fixed gate under the same
// orders releases none, and the legacy scanner releases what the oracle
// refuses, naming the forms. The pair that gives the fixed rows their
// teeth: the same rows with a race mode standing in for the fixed gate
// fail. Then the command itself, with only egress rows.

#include "stress/repro_egress.h"

#include <gtest/gtest.h>
#include <sys/wait.h>

#include <cstdlib>
#include <fstream>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "stress/repro_report.h"
#include "testing/crash_test_util.h"

namespace sigrace::stress {
namespace {

using crashdump::testing::TempDir;

std::vector<ReproRow> RunRows(const EgressOptions& o) {
  StatusOr<std::vector<ReproRow>> rows = RunEgressRows(o);
  EXPECT_TRUE(rows.ok()) << rows.status().ToString();
  return rows.ok() ? *rows : std::vector<ReproRow>{};
}

std::string Describe(const ReproRow& r) {
  return r.spec.variant + " " + r.spec.alg + " " + r.spec.mode + ": " +
         r.verdict + "\n" + r.note;
}

TEST(ReproEgressTest, EveryRaceModeReproducesAndFixedStaysClean) {
  TempDir dir;
  EgressOptions o;
  o.work_dir = dir.path();
  const std::vector<ReproRow> rows = RunRows(o);
  // 5 race modes + 3 fixed orders + legacy, per algorithm.
  ASSERT_EQ(rows.size(), 18u);
  std::set<std::string> race_modes;
  for (const ReproRow& r : rows) {
    SCOPED_TRACE(Describe(r));
    EXPECT_FALSE(r.error);
    EXPECT_TRUE(r.ok);
    EXPECT_FALSE(r.failed);
    // The forced order happened: the writer ran inside the gate (the
    // fixed gate refuses an unsealed dump on its headers, before the
    // failpoint).
    if (r.spec.variant == "gate/fixed" && r.spec.mode == "unsealed") {
      EXPECT_NE(r.note.find("writer never ran; refused: not sealed"),
                std::string::npos);
    } else if (r.spec.variant != "gate/legacy") {
      EXPECT_NE(r.note.find("writer ran at gate.after_judge"),
                std::string::npos);
    }
    if (r.spec.variant == "gate/fixed") {
      EXPECT_EQ(r.verdict, "clean");
      EXPECT_EQ(r.leaks, 0u);
    } else {
      EXPECT_EQ(r.verdict, "reproduced");
      // The released bytes hold the key, by the oracle's count.
      EXPECT_GT(r.leaks, 0u);
      ASSERT_TRUE(r.first_leak.is_object());
      EXPECT_FALSE(r.first_leak["forms"].empty());
      if (r.spec.variant != "gate/legacy") race_modes.insert(r.spec.variant);
    }
  }
  EXPECT_EQ(race_modes.size(), 5u);
  EXPECT_EQ(RunExitCode(rows), 0);
}

// The legacy row names in-memory forms only: no PEM or DER of the key is
// in the dump (else the legacy scanner would have refused it).
TEST(ReproEgressTest, LegacyRowNamesInMemoryForms) {
  TempDir dir;
  EgressOptions o;
  o.work_dir = dir.path();
  o.variants = {"gate/legacy"};
  const std::vector<ReproRow> rows = RunRows(o);
  ASSERT_EQ(rows.size(), 2u);
  for (const ReproRow& r : rows) {
    SCOPED_TRACE(Describe(r));
    EXPECT_EQ(r.verdict, "reproduced");
    ASSERT_TRUE(r.first_leak.is_object());
    for (const auto& f : r.first_leak["forms"]) {
      const std::string form = f.get<std::string>();
      EXPECT_EQ(form.find("pem"), std::string::npos) << form;
      EXPECT_EQ(form.find("der"), std::string::npos) << form;
    }
  }
}

// A fixed gate that reopens its path to release: the swap and held-open
// rows must fail (the leak left), so these rows can catch a leaking gate.
TEST(ReproEgressTest, FixedRowsFailWhenTheFixedGateReopens) {
  TempDir dir;
  EgressOptions o;
  o.work_dir = dir.path();
  o.algs = {"eddsa"};
  o.variants = {"gate/fixed"};
  o.fixed_mode = crashdump::GateMode::kReopenToRelease;
  const std::vector<ReproRow> rows = RunRows(o);
  ASSERT_EQ(rows.size(), 3u);
  for (const ReproRow& r : rows) {
    SCOPED_TRACE(Describe(r));
    if (r.spec.mode == "unsealed") {
      // No seal, the scan refuses it: even this gate releases nothing.
      EXPECT_EQ(r.verdict, "clean");
    } else {
      EXPECT_EQ(r.verdict, "LEAK");
      EXPECT_TRUE(r.failed);
      EXPECT_GT(r.leaks, 0u);
    }
  }
  EXPECT_EQ(RunExitCode(rows), 1);
  // The failure reaches the JUnit and the JSON report.
  ReproResult result;
  result.rows = rows;
  int failures = 0;
  for (const JUnitCase& c : ReproJUnitCases(result)) {
    if (c.failure.find("LEAK") != std::string::npos) ++failures;
  }
  EXPECT_EQ(failures, 2);
  const nlohmann::json j = ReproJson(result);
  EXPECT_EQ(j["rows"][1].value("verdict", ""), "LEAK");
}

TEST(ReproEgressTest, BadInputIsAnError) {
  TempDir dir;
  EgressOptions o;
  o.work_dir = dir.path();
  o.variants = {"gate/sometimes"};
  EXPECT_EQ(RunEgressRows(o).status().code(), StatusCode::kInvalidArgument);
  o.variants.clear();
  o.work_dir = dir.path() + "/missing";
  EXPECT_EQ(RunEgressRows(o).status().code(), StatusCode::kInvalidArgument);
  EXPECT_TRUE(IsEgressVariant("gate/reopen-to-release"));
  EXPECT_FALSE(IsEgressVariant("reopen-to-release"));
}

// The command: only egress rows, a small budget; every row in the JSON
// report and the JUnit, exit 0.
TEST(ReproEgressTest, ReproCommandWithOnlyEgressRows) {
  const char* bin = getenv("SIGRACE_BIN");
  ASSERT_NE(bin, nullptr) << "SIGRACE_BIN not set";
  TempDir dir;
  const std::string json = dir.path() + "/repro.json";
  const std::string junit = dir.path() + "/repro.xml";
  const std::string cmd = std::string(bin) +
                          " repro --egress only --budget-s " +
                          "30 --tsan-bin none --seed 7 --out " + dir.path() +
                          "/out --report-json " + json + " --junit " + junit +
                          " > " + dir.path() + "/stdout 2>&1";
  const int status = std::system(cmd.c_str());
  ASSERT_TRUE(WIFEXITED(status));
  std::ifstream out(dir.path() + "/stdout");
  std::stringstream text;
  text << out.rdbuf();
  EXPECT_EQ(WEXITSTATUS(status), 0) << text.str();
  EXPECT_NE(text.str().find("gate/judge-unsealed"), std::string::npos);
  std::ifstream in(json);
  const nlohmann::json report = nlohmann::json::parse(in);
  EXPECT_EQ(report.value("exit_code", -1), 0);
  ASSERT_EQ(report["rows"].size(), 18u);
  for (const auto& row : report["rows"]) {
    const std::string v = row.value("variant", "");
    EXPECT_EQ(v.rfind("gate/", 0), 0u) << v;
    EXPECT_EQ(row.value("verdict", ""),
              v == "gate/fixed" ? "clean" : "reproduced")
        << v;
  }
  std::ifstream x(junit);
  std::stringstream xml;
  xml << x.rdbuf();
  EXPECT_NE(xml.str().find("gate/link-release/eddsa/held-open"),
            std::string::npos);
  EXPECT_EQ(xml.str().find("<failure"), std::string::npos);
}

}  // namespace
}  // namespace sigrace::stress
