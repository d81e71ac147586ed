// `sigrace report --html` on the report of a real `sigrace repro` run
// (fixed and one race variant, small budgets): the page is one
// self-contained file (nothing fetched), carries the verdict, the table,
// the timeline, where each finding sat and a replay command per leak, and
// Debian's headless Chromium renders it with no console message; the
// screenshot is kept under the build tree (SIGRACE_ARTIFACT_DIR) as the
// test's artifact. A page with a script error is shown to produce the
// console line the check looks for. Skipped (GTEST_SKIP, saying so) only
// when no chromium is installed.

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
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

int Sh(const std::string& cmd) {
  const int st = system(cmd.c_str());
  return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

std::string Chromium() {
  for (const char* p : {"/usr/bin/chromium", "/usr/bin/chromium-browser"}) {
    if (access(p, X_OK) == 0) return p;
  }
  return "";
}

// Renders `page` to `png`; the browser's log (console messages included)
// goes to `log`. Returns chromium's exit code.
int Render(const std::string& page, const std::string& png,
           const std::string& log, const std::string& home) {
  return Sh("HOME='" + home + "' timeout 180 " + Chromium() +
            " --headless --no-sandbox --disable-gpu --no-first-run "
            "--window-size=1400,2400 --screenshot='" +
            png + "' --enable-logging=stderr --v=0 'file://" + page + "' >'" +
            log + "' 2>&1");
}

std::vector<std::string> ConsoleLines(const std::string& log) {
  std::vector<std::string> out;
  std::istringstream in(ReadAll(log));
  for (std::string line; std::getline(in, line);) {
    if (line.find(":CONSOLE") != std::string::npos) out.push_back(line);
  }
  return out;
}

class ReportHtml : public ::testing::Test {
 protected:
  void SetUp() override {
    if (Env("SIGRACE_BIN").empty()) GTEST_FAIL() << "SIGRACE_BIN not set";
    if (Env("SIGRACE_ARTIFACT_DIR").empty()) {
      GTEST_FAIL() << "SIGRACE_ARTIFACT_DIR not set";
    }
    dir_ = Env("SIGRACE_ARTIFACT_DIR");
    (void)!Sh("rm -rf '" + dir_ + "' && mkdir -p '" + dir_ + "/home'");
  }
  std::string dir_;
};

TEST_F(ReportHtml, ReproReportRendersInChromiumWithoutConsoleErrors) {
  const std::string bin = Env("SIGRACE_BIN");
  const std::string out = dir_ + "/repro";
  const std::string report = dir_ + "/repro.json";
  const int rc = Sh(
      "'" + bin +
      "' repro --variant fixed --variant heap-montgomery --alg rs256 "
      "--seed 5 --budget-s 120 --min-live-trials 6 --min-fatal-trials 2 "
      "--race-live-trials 4 --race-fatal-trials 2 --tsan-bin none --out '" +
      out + "' --report-json '" + report + "' >'" + dir_ + "/repro.log' 2>&1");
  EXPECT_EQ(rc, 0) << ReadAll(dir_ + "/repro.log");
  const nlohmann::json j =
      nlohmann::json::parse(ReadAll(report), nullptr, false);
  ASSERT_TRUE(j.is_object()) << ReadAll(dir_ + "/repro.log");

  const std::string page = dir_ + "/report.html";
  ASSERT_EQ(Sh("'" + bin + "' report --html '" + page + "' '" + report +
               "' >'" + dir_ + "/report.log' 2>&1"),
            0)
      << ReadAll(dir_ + "/report.log");
  const std::string html = ReadAll(page);
  // Self-contained: no script, style, image or link fetched from anywhere.
  for (const char* ref : {"src=", "<link rel=\"stylesheet", "@import",
                          "url(http", "href=\"http"}) {
    EXPECT_EQ(html.find(ref), std::string::npos) << ref;
  }
  EXPECT_NE(html.find("id=\"verdict\" class=\"verdict ok\">PASS"),
            std::string::npos);
  EXPECT_NE(html.find("<svg"), std::string::npos);
  for (const auto& row : j["rows"]) {
    EXPECT_NE(html.find("<td>" + row["variant"].get<std::string>() + "</td>"),
              std::string::npos);
    // A met row is shown as met.
    const std::string v = row["verdict"];
    EXPECT_NE(html.find("<td class=\"ok\">" + v + "</td>"), std::string::npos)
        << v;
    if (row["first_leak"].is_object()) {
      const std::string replay = row["first_leak"]["replay"];
      std::string esc;
      for (char c : replay)
        esc += c == '"' ? std::string("&quot;") : std::string(1, c);
      EXPECT_NE(html.find(esc), std::string::npos) << replay;
    }
  }
  // The run's start time is shown; with no TSan build the section says
  // why it has no counts rather than showing an empty table, and the
  // TSan column shows repro's cell ("no build" on the live rows).
  ASSERT_TRUE(j["start_time"].is_string());
  EXPECT_NE(html.find("started " + j["start_time"].get<std::string>()),
            std::string::npos);
  EXPECT_NE(html.find("id=\"tsan-none\""), std::string::npos);
  EXPECT_EQ(html.find("id=\"tsan\""), std::string::npos);
  EXPECT_NE(html.find(">no build</td>"), std::string::npos);
  // Where the race's finding sat: read from its sidecar.
  EXPECT_NE(html.find("class=\"findings\""), std::string::npos);
  EXPECT_NE(html.find("rsa.p.le64"), std::string::npos);

  const std::string chromium = Chromium();
  if (chromium.empty()) {
    GTEST_SKIP() << "chromium is not installed (scripts/sigrace-env.sh "
                    "setup installs it): the page was built and checked, "
                    "not rendered";
  }
  // The check can fail: a page with a script error logs a console line.
  const std::string bad = dir_ + "/bad.html";
  std::ofstream(bad) << "<!DOCTYPE html><html><body><script>"
                        "undefinedFunction();</script></body></html>";
  ASSERT_EQ(Render(bad, dir_ + "/bad.png", dir_ + "/bad.log", dir_ + "/home"),
            0)
      << ReadAll(dir_ + "/bad.log");
  EXPECT_FALSE(ConsoleLines(dir_ + "/bad.log").empty())
      << ReadAll(dir_ + "/bad.log");

  const std::string png = dir_ + "/report.png";
  ASSERT_EQ(Render(page, png, dir_ + "/chromium.log", dir_ + "/home"), 0)
      << ReadAll(dir_ + "/chromium.log");
  for (const std::string& line : ConsoleLines(dir_ + "/chromium.log")) {
    ADD_FAILURE() << "console: " << line;
  }
  struct stat st {};
  ASSERT_EQ(stat(png.c_str(), &st), 0) << "no screenshot";
  const std::string head = ReadAll(png).substr(0, 8);
  EXPECT_EQ(head, std::string("\x89PNG\r\n\x1a\n", 8));
  // A blank page compresses to a few KB; this one has tables and text.
  EXPECT_GT(st.st_size, 20000) << png;
  std::printf("screenshot: %s (%lld bytes)\n", png.c_str(),
              static_cast<long long>(st.st_size));
}

}  // namespace
