// `sigrace report --history DIR` on history dirs built from the reports of
// real `sigrace stress` runs (tiny --trials), copied once per night with
// figures set by the test and start times one day apart (file mtimes in
// the opposite order: the start time orders, mtime only for reports
// without one, and the output says so): the night whose
// trials/s was halved is flagged (exit 1), the same nights without it are
// not (exit 0), fewer than 6 nights say "too few nights", a change of build
// is marked, --json and --html carry the same, and bad input (empty dir,
// not JSON, another kind of report, mixed kinds, no such dir) is one line
// and exit 2.

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <ctime>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

namespace {

std::string Env(const char* name) {
  const char* v = getenv(name);
  return v != nullptr ? v : "";
}

std::string ReadAll(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

void WriteAll(const std::string& path, const std::string& text) {
  std::ofstream out(path, std::ios::binary);
  out << text;
}

int Sh(const std::string& cmd) {
  const int st = system(cmd.c_str());
  return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

// Runs `sigrace ARGS`, stdout to `out`, stderr to `err`.
int Sigrace(const std::string& args, const std::string& out,
            const std::string& err) {
  return Sh(Env("SIGRACE_BIN") + " " + args + " >'" + out + "' 2>'" + err +
            "'");
}

std::string IsoUtc(time_t t) {
  struct tm tm = {};
  gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%S.000Z", &tm);
  return buf;
}

void SetMtime(const std::string& path, time_t t) {
  struct timeval tv[2];
  tv[0].tv_sec = tv[1].tv_sec = t;
  tv[0].tv_usec = tv[1].tv_usec = 0;
  EXPECT_EQ(utimes(path.c_str(), tv), 0);
}

constexpr time_t kDay0 = 1700000000;
constexpr time_t kDay = 86400;

size_t Lines(const std::string& s) {
  size_t n = 0;
  for (char c : s) n += c == '\n';
  return n;
}

// The spread the figures keep over the nights (night 7's value: 10.1).
const double kPattern[] = {10, 11, 9, 10.5, 9.5, 10.2, 10.1};

class History : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    char tmpl[] = "/tmp/sigrace_history_XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    root_ = tmpl;
    // Three real stress reports (different seeds).
    for (int seed = 1; seed <= 3; ++seed) {
      const std::string r = root_ + "/real" + std::to_string(seed) + ".json";
      const int rc =
          Sh(Env("SIGRACE_BIN") +
             " stress --variant fixed --injectors failpoint "
             "--trials 2 --seed " +
             std::to_string(seed) + " --expect clean --quiet --out " + root_ +
             "/out --report-json " + r + " >'" + root_ + "/log' 2>&1");
      ASSERT_EQ(rc, 0) << ReadAll(root_ + "/log");
      real_.push_back(nlohmann::json::parse(ReadAll(r)));
      ASSERT_EQ(real_.back()["schema"], "sigrace.stress.report/1");
    }
  }
  static void TearDownTestSuite() { (void)!Sh("rm -rf '" + root_ + "'"); }

  void SetUp() override {
    if (Env("SIGRACE_BIN").empty()) GTEST_FAIL() << "SIGRACE_BIN not set";
    dir_ = root_ + "/" +
           ::testing::UnitTest::GetInstance()->current_test_info()->name();
    ASSERT_EQ(Sh("rm -rf '" + dir_ + "' && mkdir -p '" + dir_ + "/h'"), 0);
  }

  // Night `k` (0-based): a copy of a real report with its figures set from
  // kPattern (scaled by `rate_scale` for trials/s only), its start time
  // one day after night k-1's and its file mtime one day before it (the
  // opposite order).
  nlohmann::json WriteNight(int k, double rate_scale = 1,
                            const std::string& build = "") {
    nlohmann::json j = real_[k % real_.size()];
    const double p = kPattern[k];
    j["elapsed_s"] = 10.0;
    j["trials_per_s"] = p * rate_scale;
    j["totals"]["trials"] = 100;
    j["totals"]["leak"] = 0;
    j["totals"]["dumps"] = p * 10;
    j["totals"]["dump_bytes_searched"] = p * 1e6;
    if (!build.empty()) j["build"] = build;
    EXPECT_TRUE(j["start_time"].is_string()) << "the real report has none";
    j["start_time"] = IsoUtc(kDay0 + k * kDay);
    const std::string path =
        dir_ + "/h/night" + std::to_string(k + 1) + ".json";
    WriteAll(path, j.dump(2));
    SetMtime(path, kDay0 + (20 - k) * kDay);
    return j;
  }

  int Run(const std::string& extra = "") {
    return Sigrace("report --history " + dir_ + "/h " + extra, dir_ + "/out",
                   dir_ + "/err");
  }
  std::string Out() { return ReadAll(dir_ + "/out"); }
  std::string Err() { return ReadAll(dir_ + "/err"); }

  static std::string root_;
  static std::vector<nlohmann::json> real_;
  std::string dir_;
};

std::string History::root_;
std::vector<nlohmann::json> History::real_;

TEST_F(History, HalvedTrialsPerSecondOnTheLastNightIsFlagged) {
  for (int k = 0; k < 6; ++k) WriteNight(k);
  WriteNight(6, 0.5);  // 5.05 trials/s
  const int rc = Run("--json " + dir_ + "/h.json --html " + dir_ + "/h.html");
  EXPECT_EQ(rc, 1) << Out() << Err();
  const std::string out = Out();
  EXPECT_NE(out.find("flag: night 7 (night7.json) trials_per_s 5.05 outside "
                     "median 10.1"),
            std::string::npos)
      << out;
  EXPECT_NE(out.find("5.05!"), std::string::npos) << out;
  EXPECT_NE(out.find("7 nights, 1 flags"), std::string::npos) << out;
  EXPECT_EQ(out.find("too few nights"), std::string::npos) << out;
  const nlohmann::json j = nlohmann::json::parse(ReadAll(dir_ + "/h.json"));
  EXPECT_EQ(j["schema"], "sigrace.history/1");
  EXPECT_EQ(j["order"], "start_time");
  EXPECT_EQ(j["nights_by_mtime"], 0);
  EXPECT_NE(out.find("ordered by start time)"), std::string::npos) << out;
  ASSERT_EQ(j["nights"].size(), 7u);
  EXPECT_EQ(j["nights"][0]["path"], dir_ + "/h/night1.json");
  EXPECT_DOUBLE_EQ(j["nights"][6]["dumps_per_s"].get<double>(), 10.1);
  EXPECT_DOUBLE_EQ(j["nights"][6]["scan_bytes_per_s"].get<double>(), 1.01e6);
  ASSERT_EQ(j["flags"].size(), 1u);
  EXPECT_EQ(j["flags"][0]["figure"], "trials_per_s");
  EXPECT_EQ(j["flags"][0]["night"], 6);
  EXPECT_EQ(j["exit_code"], 1);
  const std::string html = ReadAll(dir_ + "/h.html");
  size_t svgs = 0;
  for (size_t at = html.find("<svg"); at != std::string::npos;
       at = html.find("<svg", at + 1)) {
    ++svgs;
  }
  EXPECT_EQ(svgs, 5u);  // one chart per figure
  EXPECT_EQ(html.find("class=\"flagged\""),
            html.rfind("class=\"flagged\""));  // one flagged point
  EXPECT_NE(html.find("data-figure=\"trials_per_s\""), std::string::npos);
  // Nothing fetched: the only URL is the SVG namespace.
  std::string rest = html;
  for (size_t at;
       (at = rest.find("http://www.w3.org/2000/svg")) != std::string::npos;) {
    rest.erase(at, 26);
  }
  EXPECT_EQ(rest.find("http"), std::string::npos);
  EXPECT_EQ(rest.find("<script"), std::string::npos);
}

// The trend page rendered by headless Chromium (as report_html_test does
// for the report page): no console message, a non-blank screenshot kept
// under the test's directory while it runs.
TEST_F(History, TrendPageRendersInChromium) {
  std::string chromium;
  for (const char* p : {"/usr/bin/chromium", "/usr/bin/chromium-browser"}) {
    if (access(p, X_OK) == 0) chromium = p;
  }
  if (chromium.empty()) {
    GTEST_SKIP() << "chromium is not installed: the page is checked by "
                    "HalvedTrialsPerSecondOnTheLastNightIsFlagged, not "
                    "rendered";
  }
  for (int k = 0; k < 6; ++k) WriteNight(k, 1, k >= 3 ? "other-build" : "");
  WriteNight(6, 0.5);
  ASSERT_EQ(Run("--html " + dir_ + "/h.html"), 1) << Out() << Err();
  const std::string png = dir_ + "/h.png", log = dir_ + "/chromium.log";
  ASSERT_EQ(Sh("HOME='" + dir_ + "' timeout 180 " + chromium +
               " --headless --no-sandbox --disable-gpu --no-first-run "
               "--window-size=900,1600 --screenshot='" +
               png + "' --enable-logging=stderr --v=0 'file://" + dir_ +
               "/h.html' >'" + log + "' 2>&1"),
            0)
      << ReadAll(log);
  std::istringstream lines(ReadAll(log));
  for (std::string line; std::getline(lines, line);) {
    if (line.find(":CONSOLE") != std::string::npos) {
      ADD_FAILURE() << "console: " << line;
    }
  }
  const std::string image = ReadAll(png);
  ASSERT_GE(image.size(), 8u) << "no screenshot";
  EXPECT_EQ(image.substr(0, 8), std::string("\x89PNG\r\n\x1a\n", 8));
  // A blank page compresses to a few KB; this one has a table and charts.
  EXPECT_GT(image.size(), 20000u) << png;
}

TEST_F(History, TheSameNightsWithoutTheOutlierAreNotFlagged) {
  for (int k = 0; k < 7; ++k) WriteNight(k);
  EXPECT_EQ(Run("--json " + dir_ + "/h.json"), 0) << Out() << Err();
  EXPECT_NE(Out().find("7 nights, 0 flags"), std::string::npos) << Out();
  EXPECT_EQ(Out().find('!'), std::string::npos) << Out();
  EXPECT_EQ(Out().find("changed"), std::string::npos) << Out();
  const nlohmann::json j = nlohmann::json::parse(ReadAll(dir_ + "/h.json"));
  EXPECT_TRUE(j["flags"].empty());
  EXPECT_EQ(j["exit_code"], 0);
}

TEST_F(History, FewerThanSixNightsAreTooFewAndNeverFlagged) {
  for (int k = 0; k < 4; ++k) WriteNight(k);
  WriteNight(4, 0.1);  // far off, but only 4 previous nights
  EXPECT_EQ(Run(), 0) << Out() << Err();
  for (const char* f :
       {"trials", "leaks", "trials_per_s", "dumps_per_s", "scan_bytes_per_s"}) {
    EXPECT_NE(Out().find(std::string(f) + ": too few nights"),
              std::string::npos)
        << f << "\n"
        << Out();
  }
  EXPECT_NE(Out().find("5 nights, 0 flags"), std::string::npos) << Out();
}

TEST_F(History, AChangeOfBuildIsMarkedOnTheTimeline) {
  for (int k = 0; k < 7; ++k) WriteNight(k, 1, k >= 3 ? "other-build" : "");
  EXPECT_EQ(Run("--json " + dir_ + "/h.json --html " + dir_ + "/h.html"), 0)
      << Out() << Err();
  EXPECT_NE(Out().find("build changed"), std::string::npos) << Out();
  const nlohmann::json j = nlohmann::json::parse(ReadAll(dir_ + "/h.json"));
  for (size_t i = 0; i < 7; ++i) {
    EXPECT_EQ(j["nights"][i]["change"], i == 3 ? "build" : "") << i;
  }
  EXPECT_NE(ReadAll(dir_ + "/h.html").find("class=\"change\""),
            std::string::npos);
}

// Reports of an older sigrace carry no start time: they are placed by
// file mtime, and the output says how many were.
TEST_F(History, ReportsWithoutStartTimeAreOrderedByMtimeAndSaidSo) {
  for (int k = 0; k < 7; ++k) {
    const std::string path =
        dir_ + "/h/night" + std::to_string(k + 1) + ".json";
    nlohmann::json j = WriteNight(k, k == 0 ? 0.5 : 1);
    j.erase("start_time");
    WriteAll(path, j.dump());
    // By mtime night 1 (the halved rate) is the newest.
    SetMtime(path, kDay0 + (20 - k) * kDay);
  }
  EXPECT_EQ(Run("--json " + dir_ + "/h.json"), 1) << Out() << Err();
  EXPECT_NE(Out().find("flag: night 7 (night1.json) trials_per_s 5 "),
            std::string::npos)
      << Out();
  EXPECT_NE(Out().find("ordered by file mtime: no report carries a start "
                       "time"),
            std::string::npos)
      << Out();
  EXPECT_NE(Out().find("(mtime)"), std::string::npos) << Out();
  const nlohmann::json j = nlohmann::json::parse(ReadAll(dir_ + "/h.json"));
  EXPECT_EQ(j["order"], "mtime");
  EXPECT_EQ(j["nights_by_mtime"], 7);
  EXPECT_TRUE(j["nights"][0]["start_time"].is_null());
}

// With start times, the same files are ordered by them, not by mtime:
// night 1 (the halved rate) is the oldest and nothing is flagged; one
// old report among them is placed by its mtime and counted.
TEST_F(History, StartTimeOrdersNightsWhoseMtimesRunBackwards) {
  for (int k = 0; k < 7; ++k) WriteNight(k, k == 0 ? 0.5 : 1);
  EXPECT_EQ(Run("--json " + dir_ + "/h.json"), 0) << Out() << Err();
  EXPECT_NE(Out().find("7 nights, 0 flags (ordered by start time)"),
            std::string::npos)
      << Out();
  nlohmann::json j = nlohmann::json::parse(ReadAll(dir_ + "/h.json"));
  EXPECT_EQ(j["nights"][0]["path"], dir_ + "/h/night1.json");
  EXPECT_EQ(j["nights"][6]["path"], dir_ + "/h/night7.json");
  EXPECT_EQ(j["nights"][0]["start_time"], IsoUtc(kDay0));
  // night8.json: an old report whose mtime falls between nights 3 and 4.
  nlohmann::json old = real_[0];
  old.erase("start_time");
  const std::string p8 = dir_ + "/h/night8.json";
  WriteAll(p8, old.dump());
  SetMtime(p8, kDay0 + 2 * kDay + 3600);
  EXPECT_NE(Run("--json " + dir_ + "/h.json"), 2) << Out() << Err();
  EXPECT_NE(Out().find("1 report(s) without one (older sigrace) placed by "
                       "file mtime"),
            std::string::npos)
      << Out();
  j = nlohmann::json::parse(ReadAll(dir_ + "/h.json"));
  EXPECT_EQ(j["order"], "start_time, mtime fallback");
  EXPECT_EQ(j["nights"][3]["path"], p8);
}

TEST_F(History, NightsAreOrderedByStartTimeNotByName) {
  for (int k = 0; k < 7; ++k) WriteNight(k);
  // night1.json becomes the newest night with a halved rate.
  nlohmann::json j = real_[0];
  j["elapsed_s"] = 10.0;
  j["trials_per_s"] = 5.0;
  j["totals"]["trials"] = 100;
  j["totals"]["leak"] = 0;
  j["totals"]["dumps"] = 101;
  j["totals"]["dump_bytes_searched"] = 1.01e7;
  j["start_time"] = IsoUtc(kDay0 + 9 * kDay);
  WriteAll(dir_ + "/h/night1.json", j.dump());
  EXPECT_EQ(Run(), 1) << Out() << Err();
  EXPECT_NE(Out().find("flag: night 7 (night1.json) trials_per_s 5 "),
            std::string::npos)
      << Out();
}

TEST_F(History, BadInputIsOneLineAndExitTwo) {
  // Empty dir.
  EXPECT_EQ(Run(), 2);
  EXPECT_NE(Err().find("empty dir"), std::string::npos) << Err();
  EXPECT_EQ(Lines(Err()), 1u) << Err();
  // No such dir.
  EXPECT_EQ(Sigrace("report --history " + dir_ + "/nope", dir_ + "/out",
                    dir_ + "/err"),
            2);
  EXPECT_EQ(Lines(Err()), 1u) << Err();
  EXPECT_NE(Err().find("not a directory"), std::string::npos) << Err();
  // Unreadable report: not JSON.
  for (int k = 0; k < 3; ++k) WriteNight(k);
  WriteAll(dir_ + "/h/broken.json", "{\"schema\": \"sigrace.stress");
  EXPECT_EQ(Run(), 2);
  EXPECT_NE(Err().find("broken.json: unreadable"), std::string::npos) << Err();
  EXPECT_EQ(Lines(Err()), 1u) << Err();
  // A report of another kind (a leak sidecar).
  WriteAll(dir_ + "/h/broken.json", "{\"schema\": \"sigrace.leak/1\"}");
  EXPECT_EQ(Run(), 2);
  EXPECT_NE(Err().find("broken.json: not a stress, merged or repro report"),
            std::string::npos)
      << Err();
  EXPECT_EQ(Lines(Err()), 1u) << Err();
  // A stress report whose totals are of the wrong type.
  nlohmann::json bad = real_[0];
  bad["totals"]["trials"] = "many";
  WriteAll(dir_ + "/h/broken.json", bad.dump());
  EXPECT_EQ(Run(), 2);
  EXPECT_NE(Err().find("broken.json: malformed report"), std::string::npos)
      << Err();
  EXPECT_EQ(Lines(Err()), 1u) << Err();
  // A start time that is not one.
  bad = real_[0];
  bad["start_time"] = "yesterday";
  WriteAll(dir_ + "/h/broken.json", bad.dump());
  EXPECT_EQ(Run(), 2);
  EXPECT_NE(Err().find("broken.json: start_time \"yesterday\" is not a UTC"),
            std::string::npos)
      << Err();
  EXPECT_EQ(Lines(Err()), 1u) << Err();
  // A repro report among stress reports.
  WriteAll(dir_ + "/h/broken.json",
           R"({"schema": "sigrace.repro.report/1", "build": "b",
               "elapsed_s": 5, "rows": [{"trials": 4, "leaks": 1}]})");
  EXPECT_EQ(Run(), 2);
  EXPECT_NE(Err().find("a repro report among stress reports"),
            std::string::npos)
      << Err();
  EXPECT_EQ(Lines(Err()), 1u) << Err();
  // Report arguments with --history.
  EXPECT_EQ(Run(dir_ + "/h/night1.json"), 2);
  EXPECT_EQ(Lines(Err()), 1u) << Err();
  // Nothing to do.
  EXPECT_EQ(Sigrace("report", dir_ + "/out", dir_ + "/err"), 2);
  EXPECT_EQ(Lines(Err()), 1u) << Err();
}

TEST_F(History, ReproReportsGiveTrialsLeaksAndRateOnly) {
  for (int k = 0; k < 3; ++k) {
    nlohmann::json j = {
        {"schema", "sigrace.repro.report/1"},
        {"build", "b"},
        {"elapsed_s", 10},
        {"rows",
         {{{"trials", 40}, {"leaks", 2}}, {{"trials", 60}, {"leaks", 0}}}}};
    WriteAll(dir_ + "/h/r" + std::to_string(k) + ".json", j.dump());
  }
  EXPECT_EQ(Run("--json " + dir_ + "/h.json"), 0) << Out() << Err();
  const nlohmann::json j = nlohmann::json::parse(ReadAll(dir_ + "/h.json"));
  ASSERT_EQ(j["nights"].size(), 3u);
  EXPECT_EQ(j["nights"][0]["kind"], "repro");
  EXPECT_EQ(j["nights"][0]["trials"], 100.0);
  EXPECT_EQ(j["nights"][0]["leaks"], 2.0);
  EXPECT_EQ(j["nights"][0]["trials_per_s"], 10.0);
  EXPECT_TRUE(j["nights"][0]["dumps_per_s"].is_null());
  EXPECT_TRUE(j["nights"][0]["scan_bytes_per_s"].is_null());
}

}  // namespace
