// The merge of repro shard reports (stress/merge_repro.h) on reports built
// in the test: fixed's rows summed and judged against the whole run's
// minimums, whole rows taken from the lowest shard when the shards agree
// and the worst with every verdict named when they do not, and the
// refusals (missing, duplicated shard, other options, builds, rows).
// stress/merge_repro_e2e_test runs it on real `sigrace repro` shards.

#include "stress/merge_repro.h"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace sigrace::stress {
namespace {

using nlohmann::json;

json Row(const std::string& variant, const std::string& mode, bool race,
         uint64_t trials, uint64_t leaks, const std::string& verdict,
         const std::string& outcome, const json& first_leak = json()) {
  return {
      {"variant", variant},  {"alg", "rs256"},           {"mode", mode},
      {"race", race},        {"trials", trials},         {"leaks", leaks},
      {"harness_errors", 0}, {"first_leak", first_leak}, {"window", ""},
      {"tsan", nullptr},     {"verdict", verdict},       {"note", ""},
      {"command", "c"},      {"tsan_text", "no build"},  {"outcome", outcome},
      {"seconds", 1.0}};
}

// Shard `index` of 4 of a run with min_live 8: fixed live ran 2 trials,
// the race row reproduced at trial 0. Read back from its text, as merge
// reads a report (counts are unsigned).
json Shard(uint64_t index) {
  const json j = {
      {"schema", "sigrace.repro.report/1"},
      {"seed", 7},
      {"budget_s", 60.0},
      {"start_time", "2026-12-06T23:00:0" + std::to_string(index) + ".000Z"},
      {"wall_s", 10.0},
      {"elapsed_s", 9.0 + static_cast<double>(index)},
      {"tsan_binary", ""},
      {"run_id", "r" + std::to_string(index)},
      {"logs_dir", "/o" + std::to_string(index) + "/logs/r"},
      {"build", "b"},
      {"shard", {{"index", index}, {"count", 4}}},
      {"options",
       {{"min_live_trials", 8},
        {"min_fatal_trials", 4},
        {"min_tsan_trials", 4},
        {"tsan", false}}},
      {"rows",
       {Row("fixed", "live", false, 2, 0, "clean", "ok"),
        Row("use-after-zero", "live", true, 1, 1, "reproduced", "ok",
            {{"trial", 0}, {"replay", "r"}})}},
      {"exit_code", 0},
      {"verdict", "ok"}};
  return json::parse(j.dump());
}

std::vector<ShardReport> Four() {
  std::vector<ShardReport> s;
  for (uint64_t i : {2, 0, 3, 1}) {  // any order
    s.push_back({"s" + std::to_string(i) + ".json", Shard(i)});
  }
  return s;
}

TEST(MergeRepro, FixedRowsSumAndRaceRowsAreOneShards) {
  StatusOr<MergedRepro> m = MergeReproReports(Four());
  ASSERT_TRUE(m.ok()) << m.status().message();
  const ReproResult& r = m->result;
  ASSERT_EQ(r.rows.size(), 2u);
  EXPECT_EQ(r.rows[0].trials, 8u);
  EXPECT_EQ(r.rows[0].verdict, "clean");
  EXPECT_TRUE(r.rows[0].ok);
  EXPECT_EQ(r.rows[1].trials, 1u);  // ran whole in each shard: not summed
  EXPECT_EQ(r.rows[1].leaks, 1u);
  EXPECT_EQ(r.rows[1].verdict, "reproduced");
  EXPECT_EQ(r.exit_code, 0);
  EXPECT_EQ(r.verdict,
            "ok: every race variant reproduced and fixed stayed clean "
            "(merged from 4 shards)");
  EXPECT_EQ(r.start_time, "2026-12-06T23:00:00.000Z");
  EXPECT_DOUBLE_EQ(r.wall_s, 13.0);  // shard 3 ends at :03 + 10 s
  EXPECT_DOUBLE_EQ(r.elapsed_s, 12.0);
  const json j = MergedReproJson(*m, "sigrace merge ...");
  EXPECT_TRUE(j["shard"]["index"].is_null());
  EXPECT_EQ(j["shard"]["count"], 4);
  EXPECT_EQ(j["shards"].size(), 4u);
  EXPECT_EQ(j["shards"][0]["report"], "s0.json");
  EXPECT_EQ(j["rows"][0]["outcome"], "ok");
  EXPECT_EQ(j["options"]["min_live_trials"], 8);
}

// The whole run needs 8 live trials: a shard that ran 1 of its 2 makes
// the merged row SHORT, judged on the sum, not on any shard's share.
TEST(MergeRepro, FixedRowShortOfTheWholeMinimumFails) {
  std::vector<ShardReport> s = Four();
  s[0].report["rows"][0]["trials"] = 1u;
  s[0].report["rows"][0]["verdict"] = "SHORT";
  s[0].report["rows"][0]["outcome"] = "failed";
  s[0].report["rows"][0]["note"] = "1 of 2 trials within the budget\n";
  StatusOr<MergedRepro> m = MergeReproReports(s);
  ASSERT_TRUE(m.ok()) << m.status().message();
  EXPECT_EQ(m->result.rows[0].trials, 7u);
  EXPECT_EQ(m->result.rows[0].verdict, "SHORT");
  EXPECT_EQ(m->result.rows[0].note,
            "7 of 8 trials within the budget (all shards)\n");
  EXPECT_EQ(m->result.exit_code, 1);
}

TEST(MergeRepro, ALeakInOneShardIsALeakOfTheRowWithItsFirstTrial) {
  std::vector<ShardReport> s = Four();
  for (size_t i : {1, 3}) {
    json& row = s[i].report["rows"][0];
    row["leaks"] = 1u;
    row["verdict"] = "LEAK";
    row["outcome"] = "failed";
    row["first_leak"] = {{"trial", i == 1 ? 5u : 3u}};  // shards 0 and 1
  }
  StatusOr<MergedRepro> m = MergeReproReports(s);
  ASSERT_TRUE(m.ok()) << m.status().message();
  EXPECT_EQ(m->result.rows[0].verdict, "LEAK");
  EXPECT_EQ(m->result.rows[0].leaks, 2u);
  EXPECT_EQ(m->result.rows[0].first_leak["trial"], 3);
  EXPECT_EQ(m->result.exit_code, 1);
}

TEST(MergeRepro, ShardsThatDisagreeOnARaceRowFailItAndAreNamed) {
  std::vector<ShardReport> s = Four();
  json& row = s[2].report["rows"][1];  // shard 3
  row["leaks"] = 0u;
  row["verdict"] = "NOT REPRODUCED";
  row["outcome"] = "failed";
  StatusOr<MergedRepro> m = MergeReproReports(s);
  ASSERT_TRUE(m.ok()) << m.status().message();
  EXPECT_EQ(m->result.rows[1].verdict, "NOT REPRODUCED");
  EXPECT_NE(m->result.rows[1].note.find(
                "shard 0 reproduced, shard 1 reproduced, shard 2 reproduced, "
                "shard 3 NOT REPRODUCED"),
            std::string::npos)
      << m->result.rows[1].note;
  EXPECT_EQ(m->result.exit_code, 1);
}

TEST(MergeRepro, AMissingShardIsNamed) {
  std::vector<ShardReport> s = Four();
  s.erase(s.begin() + 3);  // shard 1
  StatusOr<MergedRepro> m = MergeReproReports(s);
  ASSERT_FALSE(m.ok());
  EXPECT_EQ(m.status().message(), "missing shard(s) 1 of 4 (have 3)");
}

TEST(MergeRepro, ADuplicatedShardIsNamed) {
  std::vector<ShardReport> s = Four();
  s[3] = {"again.json", Shard(2)};
  StatusOr<MergedRepro> m = MergeReproReports(s);
  ASSERT_FALSE(m.ok());
  EXPECT_EQ(m.status().message(),
            "shard 2/4 given twice: s2.json and again.json");
}

TEST(MergeRepro, OtherOptionsBuildsSeedsRowsAndKindsAreRefused) {
  std::vector<ShardReport> s = Four();
  s[1].report["options"]["min_live_trials"] = 9;
  StatusOr<MergedRepro> m = MergeReproReports(s);
  ASSERT_FALSE(m.ok());
  EXPECT_EQ(m.status().message(),
            "different options: s2.json and s0.json differ in min_live_trials");
  s = Four();
  s[1].report["build"] = "other";
  EXPECT_NE(MergeReproReports(s).status().message().find("different builds"),
            std::string::npos);
  s = Four();
  s[1].report["seed"] = 8;
  EXPECT_NE(MergeReproReports(s).status().message().find("different seeds"),
            std::string::npos);
  s = Four();
  s[1].report["rows"][1]["variant"] = "other";
  EXPECT_NE(MergeReproReports(s).status().message().find("different rows"),
            std::string::npos);
  s = Four();
  s[1].report["schema"] = "sigrace.stress.report/1";
  EXPECT_EQ(MergeReproReports(s).status().message(),
            "s0.json: not a sigrace repro report (schema "
            "sigrace.repro.report/1)");
  s = Four();
  s[1].report.erase("options");
  EXPECT_NE(
      MergeReproReports(s).status().message().find("report has no \"options\""),
      std::string::npos);
}

}  // namespace
}  // namespace sigrace::stress
