// End to end, with the built `sigrace` (SIGRACE_BIN) as local processes:
// a small `sigrace repro` (fixed and one race variant, RS256, no TSan
// build, race rows forced by their failpoints) run unsharded and as 4
// shards (--shard I/4, same --seed), `sigrace merge` of the 4 repro
// reports compared with the unsharded run: the same rows in the same
// order with the same verdicts, fixed's trials summed to the unsharded
// count, race rows' first leak at the same trial, the same exit code; the
// JUnit has one case per row. A missing shard makes merge fail naming its
// index; a duplicated one names both reports. Deterministic: fixed's
// trial counts are fixed by --min-*-trials (far inside the budget), race
// rows leak at their forced failpoint.

#include <gtest/gtest.h>
#include <sys/wait.h>

#include <cstdlib>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

namespace {

std::string Bin() {
  const char* b = getenv("SIGRACE_BIN");
  return b != nullptr ? b : "";
}

std::string ReadAll(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

nlohmann::json ReadJson(const std::string& path) {
  return nlohmann::json::parse(ReadAll(path), nullptr, false);
}

int Sh(const std::string& cmd) {
  const int st = system(cmd.c_str());
  return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

// The environment of a shard runner would shard the run on its own.
const char kCleanEnv[] =
    "env -u GTEST_TOTAL_SHARDS -u GTEST_SHARD_INDEX -u "
    "GTEST_SHARD_STATUS_FILE -u JOB_COMPLETION_INDEX -u SIGRACE_SHARD_COUNT ";

const char kRepro[] =
    " repro --variant fixed --variant heap-montgomery --alg rs256 --seed 5 "
    "--budget-s 120 --min-live-trials 8 --min-fatal-trials 4 "
    "--race-live-trials 4 --race-fatal-trials 2 --tsan-bin none --jobs 1";

class MergeReproE2E : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    char t[] = "/tmp/sigrace-merge-repro-XXXXXX";
    ASSERT_NE(mkdtemp(t), nullptr);
    dir_ = t;
    // The unsharded run and the 4 shards, two processes at a time.
    std::string script;
    for (int i = -1; i < 4; ++i) {
      const std::string name = i < 0 ? "whole" : "s" + std::to_string(i);
      const std::string p = dir_ + "/" + name;
      script += std::string("( ") + kCleanEnv + "'" + Bin() + "'" + kRepro +
                (i < 0 ? "" : " --shard " + std::to_string(i) + "/4") +
                " --out '" + p + "-out' --report-json '" + p +
                ".json' --junit '" + p + ".xml' >'" + p +
                ".log' 2>&1; echo $? >'" + p + ".rc' ) & ";
      if (i == 0 || i == 2) script += "wait; ";
    }
    script += "wait";
    ASSERT_EQ(Sh(script), 0);
  }
  static void TearDownTestSuite() { (void)!Sh("rm -rf '" + dir_ + "'"); }

  void SetUp() override {
    if (Bin().empty()) GTEST_FAIL() << "SIGRACE_BIN not set";
  }

  static std::string P(const std::string& name) { return dir_ + "/" + name; }
  static int Rc(const std::string& name) {
    return std::atoi(ReadAll(P(name + ".rc")).c_str());
  }
  // sigrace merge over shards `which` (e.g. {0, 1, 2, 3}).
  static int Merge(const std::vector<std::string>& reports,
                   const std::string& tag) {
    std::string args;
    for (const std::string& r : reports) args += " '" + P(r) + "'";
    return Sh(std::string(kCleanEnv) + "'" + Bin() + "' merge" + args +
              " --json '" + P(tag + ".json") + "' --junit '" + P(tag + ".xml") +
              "' >'" + P(tag + ".out") + "' 2>'" + P(tag + ".err") + "'");
  }

  static std::string dir_;
};

std::string MergeReproE2E::dir_;

TEST_F(MergeReproE2E, FourShardsMergeToTheUnshardedVerdict) {
  ASSERT_EQ(Rc("whole"), 0) << ReadAll(P("whole.log"));
  for (int i = 0; i < 4; ++i) {
    const std::string s = "s" + std::to_string(i);
    ASSERT_EQ(Rc(s), 0) << ReadAll(P(s + ".log"));
  }
  const int rc = Merge({"s2.json", "s0.json", "s3.json", "s1.json"}, "merged");
  EXPECT_EQ(rc, Rc("whole")) << ReadAll(P("merged.err"));
  const nlohmann::json whole = ReadJson(P("whole.json"));
  const nlohmann::json merged = ReadJson(P("merged.json"));
  ASSERT_TRUE(whole.is_object());
  ASSERT_TRUE(merged.is_object()) << ReadAll(P("merged.err"));
  EXPECT_EQ(merged["schema"], "sigrace.repro.report/1");
  EXPECT_EQ(merged["exit_code"], whole["exit_code"]);
  EXPECT_EQ(merged["seed"], whole["seed"]);
  EXPECT_TRUE(merged["shard"]["index"].is_null());
  EXPECT_EQ(merged["shard"]["count"], 4);
  EXPECT_EQ(merged["shards"].size(), 4u);
  ASSERT_TRUE(merged["start_time"].is_string());
  ASSERT_EQ(merged["rows"].size(), whole["rows"].size());
  bool fixed_seen = false, race_seen = false;
  for (size_t k = 0; k < whole["rows"].size(); ++k) {
    const nlohmann::json& w = whole["rows"][k];
    const nlohmann::json& m = merged["rows"][k];
    SCOPED_TRACE(w.dump());
    EXPECT_EQ(m["variant"], w["variant"]);
    EXPECT_EQ(m["alg"], w["alg"]);
    EXPECT_EQ(m["mode"], w["mode"]);
    EXPECT_EQ(m["verdict"], w["verdict"]);
    EXPECT_EQ(m["outcome"], w["outcome"]);
    EXPECT_EQ(m["leaks"], w["leaks"]);
    if (w["race"].get<bool>()) {
      race_seen = true;
      EXPECT_EQ(w["verdict"], "reproduced");
      ASSERT_TRUE(m["first_leak"].is_object());
      EXPECT_EQ(m["first_leak"]["trial"], w["first_leak"]["trial"]);
      EXPECT_EQ(m["first_leak"]["forms"], w["first_leak"]["forms"]);
      EXPECT_EQ(m["trials"], w["trials"]);
    } else {
      fixed_seen = true;
      EXPECT_EQ(w["verdict"], "clean");
      // Each shard ran a share; the shares add up to the unsharded count.
      uint64_t sum = 0;
      for (int i = 0; i < 4; ++i) {
        const nlohmann::json s = ReadJson(P("s" + std::to_string(i) + ".json"));
        const uint64_t t = s["rows"][k]["trials"].get<uint64_t>();
        EXPECT_LT(t, w["trials"].get<uint64_t>());
        sum += t;
      }
      EXPECT_EQ(sum, w["trials"].get<uint64_t>());
      EXPECT_EQ(m["trials"], w["trials"]);
    }
  }
  EXPECT_TRUE(fixed_seen);
  EXPECT_TRUE(race_seen);
  // The printed table is repro's, with the merged verdict line.
  const std::string out = ReadAll(P("merged.out"));
  EXPECT_NE(out.find("first leak"), std::string::npos) << out;
  EXPECT_NE(out.find("(merged from 4 shards)"), std::string::npos) << out;
  // JUnit: one case per row, as repro writes it.
  const std::string xml = ReadAll(P("merged.xml"));
  size_t cases = 0;
  for (size_t at = xml.find("<testcase"); at != std::string::npos;
       at = xml.find("<testcase", at + 1)) {
    ++cases;
  }
  EXPECT_EQ(cases, whole["rows"].size()) << xml;
  EXPECT_EQ(xml.find("<failure"), std::string::npos) << xml;
}

TEST_F(MergeReproE2E, AMissingShardFailsWithItsIndex) {
  EXPECT_EQ(Merge({"s0.json", "s1.json", "s3.json"}, "missing"), 2);
  EXPECT_EQ(ReadAll(P("missing.err")),
            "sigrace: missing shard(s) 2 of 4 (have 3)\n");
}

TEST_F(MergeReproE2E, ADuplicatedShardFailsNamingBothReports) {
  EXPECT_EQ(Sh("cp '" + P("s1.json") + "' '" + P("copy.json") + "'"), 0);
  EXPECT_EQ(
      Merge({"s0.json", "s1.json", "s2.json", "s3.json", "copy.json"}, "dup"),
      2);
  EXPECT_EQ(ReadAll(P("dup.err")),
            "sigrace: shard 1/4 given twice: " + P("s1.json") + " and " +
                P("copy.json") + "\n");
}

// A repro report and a stress report are not one run.
TEST_F(MergeReproE2E, AStressReportAmongReproReportsIsRefused) {
  nlohmann::json j = ReadJson(P("s3.json"));
  j["schema"] = "sigrace.stress.report/1";
  std::ofstream(P("stress.json")) << j.dump();
  EXPECT_EQ(Merge({"s0.json", "s1.json", "s2.json", "stress.json"}, "kind"), 2);
  EXPECT_NE(ReadAll(P("kind.err"))
                .find("stress.json: not a sigrace repro "
                      "report"),
            std::string::npos)
      << ReadAll(P("kind.err"));
}

}  // namespace
