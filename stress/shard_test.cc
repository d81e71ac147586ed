// Shards (stress/shard.h): where the shard comes from (flag, GoogleTest,
// Kubernetes) and every malformed or conflicting combination; that the N
// shards of a trial space are disjoint and cover it; and `sigrace merge`
// (stress/merge.h) on reports built by the JSON reporter: sums, verdicts,
// and the refusals (missing, duplicated, different build, seed, options).

#include "stress/shard.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdlib>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "stress/merge.h"
#include "stress/options.h"
#include "stress/report.h"

namespace sigrace::stress {
namespace {

EnvLookup Env(std::map<std::string, std::string> vars) {
  return [vars = std::move(vars)](const char* name) -> const char* {
    auto it = vars.find(name);
    return it == vars.end() ? nullptr : it->second.c_str();
  };
}

TEST(Shard, UnshardedWithoutFlagOrEnvironment) {
  StatusOr<ShardSpec> s = ResolveShard("", 0, Env({}));
  ASSERT_TRUE(s.ok()) << s.status().message();
  EXPECT_EQ(s->count, 1u);
  EXPECT_FALSE(s->sharded());
}

TEST(Shard, FlagGtestAndKubernetes) {
  StatusOr<ShardSpec> f = ResolveShard("2/5", 0, Env({}));
  ASSERT_TRUE(f.ok());
  EXPECT_EQ(f->index, 2u);
  EXPECT_EQ(f->count, 5u);
  EXPECT_EQ(f->source, "flag");
  StatusOr<ShardSpec> g = ResolveShard(
      "", 0, Env({{"GTEST_TOTAL_SHARDS", "4"}, {"GTEST_SHARD_INDEX", "3"}}));
  ASSERT_TRUE(g.ok());
  EXPECT_EQ(g->ToString(), "3/4");
  EXPECT_EQ(g->source, "gtest");
  StatusOr<ShardSpec> k = ResolveShard(
      "", 0,
      Env({{"JOB_COMPLETION_INDEX", "1"}, {"SIGRACE_SHARD_COUNT", "8"}}));
  ASSERT_TRUE(k.ok());
  EXPECT_EQ(k->ToString(), "1/8");
  EXPECT_EQ(k->source, "k8s");
  StatusOr<ShardSpec> kf =
      ResolveShard("", 6, Env({{"JOB_COMPLETION_INDEX", "5"}}));
  ASSERT_TRUE(kf.ok());
  EXPECT_EQ(kf->ToString(), "5/6");
  // Both conventions, agreeing.
  StatusOr<ShardSpec> both = ResolveShard("", 4,
                                          Env({{"GTEST_TOTAL_SHARDS", "4"},
                                               {"GTEST_SHARD_INDEX", "2"},
                                               {"JOB_COMPLETION_INDEX", "2"}}));
  ASSERT_TRUE(both.ok()) << both.status().message();
  EXPECT_EQ(both->ToString(), "2/4");
}

TEST(Shard, ExplicitFlagWinsOverTheEnvironment) {
  // Even an environment that would be an error on its own.
  StatusOr<ShardSpec> s = ResolveShard(
      "1/3", 0,
      Env({{"GTEST_TOTAL_SHARDS", "4"}, {"JOB_COMPLETION_INDEX", "9"}}));
  ASSERT_TRUE(s.ok()) << s.status().message();
  EXPECT_EQ(s->ToString(), "1/3");
  EXPECT_EQ(s->source, "flag");
}

TEST(Shard, MalformedConflictingOrOutOfRangeIsRefused) {
  const std::vector<std::pair<std::string, std::string>> flags = {
      {"3", "no '/'"},
      {"4/4", "I must be below N"},
      {"a/4", "two numbers"},
      {"1/0", "at least 1"},
      {"-1/4", "two numbers"},
      {"1/4/2", "two numbers"},
      {"0/1000001", "two numbers"}};
  for (const auto& [flag, why] : flags) {
    StatusOr<ShardSpec> s = ResolveShard(flag, 0, Env({}));
    ASSERT_FALSE(s.ok()) << flag;
    EXPECT_NE(s.status().message().find(why), std::string::npos)
        << flag << ": " << s.status().message();
    EXPECT_EQ(s.status().message().find('\n'), std::string::npos);
  }
  const std::vector<std::pair<std::map<std::string, std::string>, std::string>>
      envs = {
          {{{"GTEST_TOTAL_SHARDS", "4"}}, "without GTEST_SHARD_INDEX"},
          {{{"GTEST_SHARD_INDEX", "1"}}, "without GTEST_TOTAL_SHARDS"},
          {{{"GTEST_TOTAL_SHARDS", "4"}, {"GTEST_SHARD_INDEX", "4"}},
           "out of range"},
          {{{"GTEST_TOTAL_SHARDS", "0"}, {"GTEST_SHARD_INDEX", "0"}},
           "out of range"},
          {{{"GTEST_TOTAL_SHARDS", "x"}, {"GTEST_SHARD_INDEX", "0"}},
           "not a count"},
          {{{"JOB_COMPLETION_INDEX", "2"}}, "shard count is not"},
          {{{"JOB_COMPLETION_INDEX", "4"}, {"SIGRACE_SHARD_COUNT", "4"}},
           "out of range"},
          {{{"SIGRACE_SHARD_COUNT", "4"}}, "without JOB_COMPLETION_INDEX"},
          {{{"GTEST_TOTAL_SHARDS", "4"},
            {"GTEST_SHARD_INDEX", "1"},
            {"JOB_COMPLETION_INDEX", "2"},
            {"SIGRACE_SHARD_COUNT", "4"}},
           "conflict"},
      };
  for (const auto& [vars, why] : envs) {
    StatusOr<ShardSpec> s = ResolveShard("", 0, Env(vars));
    ASSERT_FALSE(s.ok()) << why;
    EXPECT_NE(s.status().message().find(why), std::string::npos)
        << s.status().message();
  }
  // --shard-count against the flag and against SIGRACE_SHARD_COUNT.
  EXPECT_FALSE(ResolveShard("1/4", 3, Env({})).ok());
  EXPECT_FALSE(ResolveShard("", 3,
                            Env({{"JOB_COMPLETION_INDEX", "1"},
                                 {"SIGRACE_SHARD_COUNT", "4"}}))
                   .ok());
  EXPECT_FALSE(ResolveShard("", 3, Env({})).ok());
}

TEST(Shard, StatusFileIsTouched) {
  char dir[] = "/tmp/sigrace-shard-test-XXXXXX";
  ASSERT_NE(mkdtemp(dir), nullptr);
  const std::string path = std::string(dir) + "/status";
  ASSERT_TRUE(
      TouchShardStatusFile(Env({{"GTEST_SHARD_STATUS_FILE", path}})).ok());
  EXPECT_EQ(access(path.c_str(), F_OK), 0);
  // Again: it exists, which is fine.
  EXPECT_TRUE(
      TouchShardStatusFile(Env({{"GTEST_SHARD_STATUS_FILE", path}})).ok());
  // A symlink is not followed.
  const std::string link = std::string(dir) + "/link";
  ASSERT_EQ(symlink((std::string(dir) + "/target").c_str(), link.c_str()), 0);
  EXPECT_FALSE(
      TouchShardStatusFile(Env({{"GTEST_SHARD_STATUS_FILE", link}})).ok());
  EXPECT_NE(access((std::string(dir) + "/target").c_str(), F_OK), 0);
  unlink(link.c_str());
  unlink(path.c_str());
  rmdir(dir);
}

// The shards' trial numbers are disjoint and together are 0..trials-1.
TEST(Shard, ShardsPartitionTheTrialSpace) {
  for (uint64_t trials : {1ull, 7ull, 100ull, 1001ull}) {
    for (uint32_t n : {1u, 2u, 3u, 4u, 7u}) {
      std::multiset<uint64_t> all;
      for (uint32_t i = 0; i < n; ++i) {
        StressOptions o;
        o.trials = trials;
        o.shard_index = i;
        o.shard_count = n;
        EXPECT_EQ(o.TrialCount(), ShardTrialCount(trials, i, n));
        for (uint64_t k = 0; k < o.TrialCount(); ++k) {
          EXPECT_EQ(o.TrialAt(k) % n, i);
          all.insert(o.TrialAt(k));
        }
      }
      ASSERT_EQ(all.size(), trials) << trials << " in " << n;
      uint64_t want = 0;
      for (uint64_t t : all) EXPECT_EQ(t, want++);
    }
  }
}

TEST(Shard, BuildIdIsStable) {
  EXPECT_FALSE(BuildId().empty());
  EXPECT_EQ(BuildId(), BuildId());
}

// A report of shard `index` of `count`, built by the JSON reporter: one
// trial per shard index below `trials`, leaking where `leaks` says.
nlohmann::json ShardReportJson(uint32_t index, uint32_t count, uint64_t trials,
                               const std::set<uint64_t>& leaks, Expect expect) {
  RunReport r;
  r.build_id = "b1";
  r.options.variant = "fixed";
  r.options.algs = {"eddsa"};
  r.options.seed = 7;
  r.options.trials = trials;
  r.options.expect = expect;
  r.options.shard_index = index;
  r.options.shard_count = count;
  r.options.shard_source = "flag";
  r.elapsed_s = 2;
  for (uint64_t k = 0; k < r.options.TrialCount(); ++k) {
    TrialResult t;
    t.plan.trial = r.options.TrialAt(k);
    t.plan.seed = 7;
    t.plan.alg = "eddsa";
    t.elapsed_s = static_cast<double>(k);
    if (leaks.count(t.plan.trial)) {
      t.verdict = Verdict::kLeak;
      LeakFinding f;
      f.form = "ed25519.seed";
      f.region = "[heap]";
      f.length = 32;
      f.kind = "leak";
      t.findings.push_back(f);
      t.findings_total = 1;
    } else {
      t.verdict = Verdict::kClean;
    }
    r.Add(t);
  }
  r.Finish();
  return ReportJson(r);
}

std::vector<ShardReport> Shards(uint32_t count, uint64_t trials,
                                const std::set<uint64_t>& leaks,
                                Expect expect) {
  std::vector<ShardReport> v;
  for (uint32_t i = 0; i < count; ++i) {
    v.push_back({"s" + std::to_string(i) + ".json",
                 ShardReportJson(i, count, trials, leaks, expect)});
  }
  return v;
}

TEST(Merge, SumsTrialsAndKeepsTheUnshardedVerdict) {
  // Clean run: the merged report equals the unsharded one in trials and
  // verdict.
  const nlohmann::json whole = ShardReportJson(0, 1, 10, {}, Expect::kClean);
  StatusOr<nlohmann::json> m =
      MergeReports(Shards(4, 10, {}, Expect::kClean), "sigrace merge");
  ASSERT_TRUE(m.ok()) << m.status().message();
  EXPECT_EQ((*m)["totals"]["trials"], whole["totals"]["trials"]);
  EXPECT_EQ((*m)["exit_code"], 0);
  EXPECT_EQ((*m)["verdict"].get<std::string>().rfind(
                whole["verdict"].get<std::string>(), 0),
            0u)
      << (*m)["verdict"];
  EXPECT_TRUE((*m)["shard"]["index"].is_null());
  EXPECT_EQ((*m)["shard"]["count"], 4);
  ASSERT_EQ((*m)["cells"].size(), 1u);
  EXPECT_EQ((*m)["cells"][0]["verdict"], "pass");
}

TEST(Merge, OneLeakingShardFailsACleanRun) {
  StatusOr<nlohmann::json> m =
      MergeReports(Shards(4, 10, {6, 9}, Expect::kClean), "sigrace merge");
  ASSERT_TRUE(m.ok()) << m.status().message();
  EXPECT_EQ((*m)["exit_code"], 1);
  EXPECT_EQ((*m)["totals"]["leak"], 2);
  // The first leak is the lowest trial, the leak list in trial order.
  EXPECT_EQ((*m)["cells"][0]["first_leak"]["trial"], 6);
  ASSERT_EQ((*m)["leaks"].size(), 2u);
  EXPECT_EQ((*m)["leaks"][0]["trial"], 6);
  EXPECT_EQ((*m)["leaks"][1]["trial"], 9);
  const std::vector<JUnitCase> cases = MergedJUnitCases(*m);
  ASSERT_EQ(cases.size(), 1u);
  EXPECT_NE(cases[0].failure.find("leak at trial 6"), std::string::npos);
}

TEST(Merge, ALeakInAnyShardMeetsExpectLeak) {
  // Shards without a leak fail alone; merged, the run reproduced.
  const std::vector<ShardReport> s = Shards(4, 8, {5}, Expect::kLeak);
  EXPECT_EQ(s[0].report["exit_code"], 1);
  StatusOr<nlohmann::json> m = MergeReports(s, "sigrace merge");
  ASSERT_TRUE(m.ok()) << m.status().message();
  EXPECT_EQ((*m)["exit_code"], 0);
  // And none anywhere: not reproduced.
  m = MergeReports(Shards(4, 8, {}, Expect::kLeak), "sigrace merge");
  ASSERT_TRUE(m.ok());
  EXPECT_EQ((*m)["exit_code"], 1);
}

TEST(Merge, NamesTheMissingShard) {
  std::vector<ShardReport> s = Shards(4, 10, {}, Expect::kClean);
  s.erase(s.begin() + 2);
  StatusOr<nlohmann::json> m = MergeReports(s, "sigrace merge");
  ASSERT_FALSE(m.ok());
  EXPECT_NE(m.status().message().find("missing shard(s) 2 of 4"),
            std::string::npos)
      << m.status().message();
}

TEST(Merge, NamesTheDuplicatedShard) {
  std::vector<ShardReport> s = Shards(4, 10, {}, Expect::kClean);
  s[3] = {"again.json", s[1].report};
  StatusOr<nlohmann::json> m = MergeReports(s, "sigrace merge");
  ASSERT_FALSE(m.ok());
  EXPECT_NE(m.status().message().find("shard 1/4 given twice: s1.json and "
                                      "again.json"),
            std::string::npos)
      << m.status().message();
}

TEST(Merge, RefusesDifferentBuildsSeedsOptionsOrCounts) {
  std::vector<ShardReport> s = Shards(2, 10, {}, Expect::kClean);
  {
    auto t = s;
    t[1].report["build"] = "b2";
    StatusOr<nlohmann::json> m = MergeReports(t, "m");
    ASSERT_FALSE(m.ok());
    EXPECT_NE(m.status().message().find("different builds"), std::string::npos);
  }
  {
    auto t = s;
    t[1].report["seed"] = 8;
    StatusOr<nlohmann::json> m = MergeReports(t, "m");
    ASSERT_FALSE(m.ok());
    EXPECT_NE(m.status().message().find("different seeds"), std::string::npos);
  }
  {
    auto t = s;
    t[1].report["options"]["threads"] = 4;
    StatusOr<nlohmann::json> m = MergeReports(t, "m");
    ASSERT_FALSE(m.ok());
    EXPECT_NE(m.status().message().find("differ in threads"), std::string::npos)
        << m.status().message();
  }
  {
    auto t = s;
    t.push_back({"x.json", ShardReportJson(2, 3, 10, {}, Expect::kClean)});
    StatusOr<nlohmann::json> m = MergeReports(t, "m");
    ASSERT_FALSE(m.ok());
    EXPECT_NE(m.status().message().find("different shard counts"),
              std::string::npos);
  }
  {
    auto t = s;
    t[0].report = nlohmann::json{{"schema", "sigrace.repro.report/1"}};
    EXPECT_FALSE(MergeReports(t, "m").ok());
  }
  // A merged report is not merged again.
  StatusOr<nlohmann::json> m = MergeReports(s, "m");
  ASSERT_TRUE(m.ok());
  EXPECT_FALSE(MergeReports({{"merged.json", *m}}, "m").ok());
}

}  // namespace
}  // namespace sigrace::stress
