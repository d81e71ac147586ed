// End to end, with the built `sigrace` (SIGRACE_BIN) as local processes:
// a run split into 4 shards (each shard given its index a different way:
// --shard, GoogleTest's variables, Kubernetes' JOB_COMPLETION_INDEX with
// SIGRACE_SHARD_COUNT or --shard-count), the shards run at once, `sigrace
// merge` combines their reports, and the merged report is compared with
// the same run unsharded: same trial count, same leaking trials with the
// same plans and window forms (failpoint injection), same verdict. A
// missing shard makes merge fail naming its index. Deterministic: every
// fault is a failpoint; nothing depends on timing.

#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>
#include <string>
#include <vector>

namespace {

std::string Bin() {
  const char* b = getenv("SIGRACE_BIN");
  return b != nullptr ? b : "";
}

class TempDir {
 public:
  TempDir() {
    char t[] = "/tmp/sigrace-shard-e2e-XXXXXX";
    path_ = mkdtemp(t) != nullptr ? t : "/tmp";
  }
  ~TempDir() { (void)!system(("rm -rf '" + path_ + "'").c_str()); }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

std::string ReadAll(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

nlohmann::json ReadJson(const std::string& path) {
  return nlohmann::json::parse(ReadAll(path), nullptr, false);
}

int Exit(int st) { return WIFEXITED(st) ? WEXITSTATUS(st) : -1; }

// `env` (VAR=value ..., may be empty) sigrace ARGS, output to `log`.
int RunSigrace(const std::string& env, const std::string& args,
               const std::string& log) {
  const std::string cmd =
      "env -u GTEST_TOTAL_SHARDS -u GTEST_SHARD_INDEX -u "
      "GTEST_SHARD_STATUS_FILE -u JOB_COMPLETION_INDEX -u "
      "SIGRACE_SHARD_COUNT " +
      env + " '" + Bin() + "' " + args + " >'" + log + "' 2>&1";
  return Exit(system(cmd.c_str()));
}

// NOLINTNEXTLINE(bugprone-exception-escape): json members; a test type.
struct Sharded {
  nlohmann::json whole, merged;
  std::vector<nlohmann::json> shards;
  int whole_rc = -1, merge_rc = -1;
  std::vector<int> shard_rc;
};

// Runs `args` unsharded and as 4 shards at once, and merges the shards.
Sharded RunSharded(const TempDir& d, const std::string& name,
                   const std::string& args) {
  Sharded s;
  const std::string p = d.path() + "/" + name;
  s.whole_rc = RunSigrace(
      "",
      args + " --out " + p + "-whole-out --report-json " + p + "-whole.json",
      p + "-whole.log");
  // One shell, four background processes, each shard's index given its
  // own way.
  const std::string status = p + "-gtest-status";
  const std::vector<std::pair<std::string, std::string>> how = {
      {"", "--shard 0/4"},
      {"GTEST_TOTAL_SHARDS=4 GTEST_SHARD_INDEX=1 GTEST_SHARD_STATUS_FILE=" +
           status,
       ""},
      {"JOB_COMPLETION_INDEX=2 SIGRACE_SHARD_COUNT=4", ""},
      {"JOB_COMPLETION_INDEX=3", "--shard-count 4"}};
  std::string script;
  for (size_t i = 0; i < how.size(); ++i) {
    const std::string sp = p + "-" + std::to_string(i);
    script +=
        "( env -u GTEST_TOTAL_SHARDS -u GTEST_SHARD_INDEX -u "
        "GTEST_SHARD_STATUS_FILE -u JOB_COMPLETION_INDEX -u "
        "SIGRACE_SHARD_COUNT " +
        how[i].first + " '" + Bin() + "' " + args + " " + how[i].second +
        " --out " + sp + "-out --report-json " + sp + ".json >" + sp +
        ".log 2>&1; echo $? >" + sp + ".rc ) & ";
  }
  script += "wait";
  EXPECT_EQ(Exit(system(("sh -c '" +
                         [&] {
                           std::string q;
                           for (char c : script) {
                             if (c == '\'') {
                               q += "'\\''";
                             } else {
                               q += c;
                             }
                           }
                           return q;
                         }() +
                         "'")
                            .c_str())),
            0);
  EXPECT_EQ(access(status.c_str(), F_OK), 0)
      << "GTEST_SHARD_STATUS_FILE was not touched";
  std::string reports;
  for (size_t i = 0; i < how.size(); ++i) {
    const std::string sp = p + "-" + std::to_string(i);
    s.shards.push_back(ReadJson(sp + ".json"));
    s.shard_rc.push_back(std::atoi(ReadAll(sp + ".rc").c_str()));
    EXPECT_TRUE(s.shards.back().is_object()) << ReadAll(sp + ".log");
    reports += " " + sp + ".json";
  }
  s.merge_rc =
      RunSigrace("",
                 "merge --quiet --json " + p + "-merged.json --junit " + p +
                     "-merged.xml" + reports,
                 p + "-merge.log");
  s.whole = ReadJson(p + "-whole.json");
  s.merged = ReadJson(p + "-merged.json");
  EXPECT_TRUE(s.whole.is_object()) << ReadAll(p + "-whole.log");
  EXPECT_TRUE(s.merged.is_object()) << ReadAll(p + "-merge.log");
  return s;
}

// What a leak's plan and window are: compared trial by trial.
std::map<uint64_t, std::string> LeakPlans(const nlohmann::json& report) {
  std::map<uint64_t, std::string> out;
  for (const auto& l : report["leaks"]) {
    std::string forms;
    for (const auto& f : l["forms"]) {
      const std::string s = f.get<std::string>();
      if (s == "rsa.p.le64" || s == "rsa.q.le64") forms += s + ",";
    }
    out[l["trial"].get<uint64_t>()] =
        l["alg"].get<std::string>() + " " + l["injector"].get<std::string>() +
        " " + l["failpoint"].get<std::string>() + "@" + l["hit"].dump() +
        " on " + l["thread"].get<std::string>() + " forms " + forms +
        " replay " + l["replay"].get<std::string>();
  }
  return out;
}

void ExpectShardFields(const Sharded& s) {
  const std::vector<std::string> sources = {"flag", "gtest", "k8s", "k8s"};
  for (size_t i = 0; i < s.shards.size(); ++i) {
    const nlohmann::json& r = s.shards[i];
    if (!r.is_object()) continue;
    EXPECT_EQ(r["shard"]["index"], i);
    EXPECT_EQ(r["shard"]["count"], 4);
    EXPECT_EQ(r["shard"]["source"], sources[i]);
    EXPECT_EQ(r["build"], s.whole["build"]);
    EXPECT_FALSE(r["build"].get<std::string>().empty());
    EXPECT_EQ(r["options"], s.whole["options"]);
  }
}

class ShardE2E : public ::testing::Test {
 protected:
  void SetUp() override {
    if (Bin().empty()) GTEST_FAIL() << "SIGRACE_BIN not set";
  }
  TempDir dir_;
};

// fixed under failpoint faults: 12 trials, clean either way.
TEST_F(ShardE2E, FourShardsOfAFixedRunMergeToTheUnshardedRun) {
  const Sharded s = RunSharded(
      dir_, "fixed",
      "stress --variant fixed --alg eddsa --injectors failpoint --trials 12 "
      "--seed 11 --expect clean --quiet --no-progress");
  ASSERT_TRUE(s.whole.is_object() && s.merged.is_object());
  ExpectShardFields(s);
  for (size_t i = 0; i < s.shards.size(); ++i) {
    EXPECT_EQ(s.shards[i]["totals"]["trials"], 3) << "shard " << i;
    EXPECT_EQ(s.shard_rc[i], 0) << "shard " << i;
  }
  EXPECT_EQ(s.whole["totals"]["trials"], 12);
  EXPECT_EQ(s.merged["totals"]["trials"], s.whole["totals"]["trials"]);
  EXPECT_EQ(s.merged["totals"]["leak"], s.whole["totals"]["leak"]);
  EXPECT_EQ(s.merged["totals"]["harness_error"], 0);
  EXPECT_EQ(s.merge_rc, s.whole_rc);
  EXPECT_EQ(s.merged["exit_code"], s.whole["exit_code"]);
  EXPECT_EQ(s.merged["verdict"].get<std::string>().rfind(
                s.whole["verdict"].get<std::string>(), 0),
            0u)
      << s.merged["verdict"] << " vs " << s.whole["verdict"];
  EXPECT_EQ(s.merged["cells"][0]["verdict"], s.whole["cells"][0]["verdict"]);
}

// heap-montgomery (its window stays open for the key's life) with its
// failpoint forced: every trial leaks, so every trial's plan and window
// forms are in the leak list and can be compared one by one.
TEST_F(ShardE2E, FourShardsOfARaceRunMergeToTheUnshardedRun) {
  const Sharded s = RunSharded(
      dir_, "race",
      "stress --variant heap-montgomery --injectors failpoint --trials 8 "
      "--seed 3 --expect leak --keep-going --quiet --no-progress");
  ASSERT_TRUE(s.whole.is_object() && s.merged.is_object());
  ExpectShardFields(s);
  EXPECT_EQ(s.whole["totals"]["trials"], 8);
  EXPECT_EQ(s.merged["totals"]["trials"], s.whole["totals"]["trials"]);
  EXPECT_EQ(s.merged["totals"]["leak"], s.whole["totals"]["leak"]);
  EXPECT_GE(s.whole["totals"]["leak"].get<int>(), 1);
  const auto whole = LeakPlans(s.whole);
  const auto merged = LeakPlans(s.merged);
  EXPECT_EQ(merged, whole);
  EXPECT_EQ(s.merged["cells"][0]["first_leak"]["trial"],
            s.whole["cells"][0]["first_leak"]["trial"]);
  EXPECT_EQ(s.merge_rc, 0);
  EXPECT_EQ(s.merge_rc, s.whole_rc);
  EXPECT_EQ(s.merged["exit_code"], s.whole["exit_code"]);
  const std::string xml = ReadAll(dir_.path() + "/race-merged.xml");
  EXPECT_NE(xml.find("heap-montgomery/rs256/live"), std::string::npos) << xml;

  // Shard 2 missing: merge names it and exits 2 with one line.
  const std::string p = dir_.path() + "/race";
  const std::string log = dir_.path() + "/missing.log";
  EXPECT_EQ(
      RunSigrace("", "merge " + p + "-0.json " + p + "-1.json " + p + "-3.json",
                 log),
      2);
  const std::string err = ReadAll(log);
  EXPECT_NE(err.find("missing shard(s) 2 of 4"), std::string::npos) << err;
  EXPECT_EQ(std::count(err.begin(), err.end(), '\n'), 1) << err;
  // Shard 1 twice.
  EXPECT_EQ(RunSigrace("",
                       "merge " + p + "-0.json " + p + "-1.json " + p +
                           "-1.json " + p + "-2.json " + p + "-3.json",
                       log),
            2);
  EXPECT_NE(ReadAll(log).find("shard 1/4 given twice"), std::string::npos)
      << ReadAll(log);
  // A shard of another run: its --trials differ.
  nlohmann::json other = ReadJson(p + "-3.json");
  other["options"]["trials"] = 9;
  std::ofstream(dir_.path() + "/other-3.json") << other.dump();
  EXPECT_EQ(RunSigrace("",
                       "merge " + p + "-0.json " + p + "-1.json " + p +
                           "-2.json " + dir_.path() + "/other-3.json",
                       log),
            2);
  EXPECT_NE(ReadAll(log).find("differ in trials"), std::string::npos)
      << ReadAll(log);
}

// Malformed or conflicting shard settings: one line, exit 2, nothing run.
TEST_F(ShardE2E, BadShardSettingsAreUsageErrors) {
  const std::string log = dir_.path() + "/bad.log";
  const std::string base =
      "stress --variant fixed --alg eddsa --trials 4 --seed 1 --quiet ";
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"", base + "--shard 4/4"},
      {"", base + "--shard 1/4 --shard-count 3"},
      {"", base + "--shard 1/4 --trial 2"},
      {"", base + "--shard 5/8"},  // --trials 4: shard 5 has no trial
      {"JOB_COMPLETION_INDEX=1", base},
      {"GTEST_TOTAL_SHARDS=4", base},
      {"GTEST_TOTAL_SHARDS=4 GTEST_SHARD_INDEX=1 JOB_COMPLETION_INDEX=2 "
       "SIGRACE_SHARD_COUNT=4",
       base},
  };
  for (const auto& [env, args] : cases) {
    EXPECT_EQ(RunSigrace(env, args, log), 2) << env << " " << args << "\n"
                                             << ReadAll(log);
    const std::string out = ReadAll(log);
    EXPECT_EQ(std::count(out.begin(), out.end(), '\n'), 1) << out;
    EXPECT_EQ(out.rfind("sigrace: ", 0), 0u) << out;
  }
}

}  // namespace
