#include "tools/merge.h"

#include <CLI/CLI.hpp>
#include <cstdio>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "base/files.h"
#include "stress/history.h"
#include "stress/merge.h"
#include "stress/merge_repro.h"
#include "stress/report.h"
#include "stress/report_html.h"
#include "stress/repro_report.h"

namespace sigrace::stress {
namespace {

int Usage(const std::string& message) {
  std::fprintf(stderr, "sigrace: %s\n", message.c_str());
  return 2;
}

// Parses argv with `app`. Returns -1 to go on, else the exit code.
int Parse(CLI::App& app, int argc, char** argv, const char* name) {
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    if (e.get_exit_code() == 0) {
      app.exit(e);
      return 0;
    }
    return Usage(std::string(e.what()) + " (see sigrace " + name + " --help)");
  }
  return -1;
}

StatusOr<nlohmann::json> ReadJson(const std::string& path) {
  StatusOr<std::string> text = ReadFile(path);
  if (!text.ok()) return text.status();
  nlohmann::json j = nlohmann::json::parse(*text, nullptr, false);
  if (j.is_discarded()) return InvalidArgumentError(path + ": not JSON");
  return j;
}

std::string Dump(const nlohmann::json& j) {
  return j.dump(2, ' ', false, nlohmann::json::error_handler_t::replace) + "\n";
}

// Repro shards: the merged result printed, written and exited as repro
// does (stress/merge_repro.h).
int MergeRepro(const std::vector<ShardReport>& shards,
               const std::string& command, const std::string& json_out,
               const std::string& junit_out, bool quiet) {
  StatusOr<MergedRepro> merged = InvalidArgumentError("");
  try {
    merged = MergeReproReports(shards);
  } catch (const nlohmann::json::exception& e) {
    return Usage("malformed report: " + std::string(e.what()));
  }
  if (!merged.ok()) return Usage(merged.status().message());
  const ReproResult& r = merged->result;
  std::fputs((quiet ? r.verdict + "\n" : ReproText(r)).c_str(), stdout);
  if (!json_out.empty()) {
    Status st =
        WriteFileAtomic(json_out, Dump(MergedReproJson(*merged, command)));
    if (!st.ok()) return Usage(st.message());
  }
  if (!junit_out.empty()) {
    Status st = WriteFileAtomic(junit_out,
                                JUnitXml("sigrace.repro", ReproJUnitCases(r)));
    if (!st.ok()) return Usage(st.message());
  }
  return r.exit_code;
}

}  // namespace

int MergeMain(int argc, char** argv) {
  CLI::App app{
      "Combines the JSON reports of the shards of one `sigrace stress "
      "--shard I/N` or `sigrace repro --shard I/N --seed S` run into one "
      "report (same schema) and one exit code, as the unsharded run would "
      "have given. Refuses reports of different builds, seeds or options "
      "and names any shard missing or given twice.\n\n"
      "Repro shards: fixed's rows ran a share of their trials each, so "
      "their counts are summed and judged against the whole run's "
      "minimums; race, gate/* and n/a rows ran whole in every shard, so "
      "the merged row is the lowest shard's when every shard agrees, "
      "else the worst one with every shard's verdict in its note. The "
      "table, JSON and JUnit are repro's.\n\n"
      "Exit codes: the merged run's (0 expectation met, 1 not met); 2 "
      "usage error, reports that cannot be merged, or a harness error.",
      "sigrace merge"};
  std::vector<std::string> inputs;
  std::string json_out, junit_out;
  bool quiet = false;
  app.add_option("reports", inputs, "REPORT.json of every shard")->required();
  app.add_option("--json", json_out, "Write the merged JSON report here");
  app.add_option("--junit", junit_out,
                 "Write JUnit XML here (one case per "
                 "variant x alg x mode)");
  app.add_flag("--quiet", quiet, "Print only the verdict line");
  if (const int rc = Parse(app, argc, argv, "merge"); rc >= 0) return rc;
  std::vector<ShardReport> shards;
  for (const std::string& p : inputs) {
    StatusOr<nlohmann::json> j = ReadJson(p);
    if (!j.ok()) return Usage(j.status().message());
    shards.push_back({p, std::move(*j)});
  }
  std::string command = "sigrace merge";
  for (const std::string& p : inputs) command += " " + p;
  if (shards[0].report.is_object() &&
      shards[0].report.value("schema", "") == kReproSchema) {
    return MergeRepro(shards, command, json_out, junit_out, quiet);
  }
  StatusOr<nlohmann::json> merged = InvalidArgumentError("");
  try {
    merged = MergeReports(shards, command);
  } catch (const nlohmann::json::exception& e) {
    // A field of the wrong type in a report.
    return Usage("malformed report: " + std::string(e.what()));
  }
  if (!merged.ok()) return Usage(merged.status().message());
  const nlohmann::json& m = *merged;
  if (!quiet) {
    std::printf("%-16s %-6s %-6s %10s %8s %8s  %s\n", "variant", "alg", "mode",
                "trials", "leaks", "errors", "verdict");
    for (const nlohmann::json& c : m["cells"]) {
      std::printf(
          "%-16s %-6s %-6s %10llu %8llu %8llu  %s\n",
          c.value("variant", "").c_str(), c.value("alg", "").c_str(),
          c.value("mode", "").c_str(),
          static_cast<unsigned long long>(c.value("trials", 0ull)),
          static_cast<unsigned long long>(c.value("leaks", 0ull)),
          static_cast<unsigned long long>(c.value("harness_errors", 0ull)),
          c.value("verdict", "").c_str());
    }
  }
  std::printf("%s\n", m.value("verdict", "").c_str());
  if (!json_out.empty()) {
    Status st = WriteFileAtomic(json_out, Dump(m));
    if (!st.ok()) return Usage(st.message());
  }
  if (!junit_out.empty()) {
    std::string xml;
    try {
      xml = JUnitXml("sigrace.stress", MergedJUnitCases(m));
    } catch (const nlohmann::json::exception& e) {
      return Usage("malformed report: " + std::string(e.what()));
    }
    Status st = WriteFileAtomic(junit_out, xml);
    if (!st.ok()) return Usage(st.message());
  }
  return m.value("exit_code", 2);
}

int ReportMain(int argc, char** argv) {
  CLI::App app{
      "Renders stress, merged or repro JSON reports as one self-contained "
      "HTML page (no network: inline CSS and SVG): the verdict, the "
      "variant x algorithm x mode table with leak rate and time to first "
      "leak, a timeline of leaks, where each finding sat in its dump, TSan "
      "counts, the ablation table when present, and the replay command "
      "of every leak. With --history DIR: trends over nights from the "
      "reports kept in DIR, outliers flagged (see --history).",
      "sigrace report"};
  std::vector<std::string> inputs;
  std::string html_out, history_dir, json_out;
  app.add_option("reports", inputs, "REPORT.json files");
  app.add_option("--html", html_out,
                 "Write the page here (with --history: the trend page, one "
                 "inline-SVG chart per figure)");
  app.add_option(
      "--history", history_dir,
      "Trends over nights from the *.json reports in DIR (stress, merged "
      "or repro; one per night). Nights are ordered by the start time each "
      "report carries (an older report without one is placed by its file "
      "mtime, and the output says so). Per night: trials, leaks, trials/s, "
      "dumps/s, scan rate (dump bytes searched per second). A figure "
      "outside median +- 3 x MAD of the previous nights (at least 5, else "
      "\"too few nights\") is flagged; build or options changes are marked. "
      "Exit 0 no flag, 1 a figure flagged, 2 bad input.");
  app.add_option("--json", json_out, "With --history: write the trends here");
  if (const int rc = Parse(app, argc, argv, "report"); rc >= 0) return rc;
  if (!history_dir.empty()) {
    if (!inputs.empty()) {
      return Usage("--history takes no REPORT.json arguments");
    }
    StatusOr<History> h = LoadHistory(history_dir);
    if (!h.ok()) return Usage(h.status().message());
    std::fputs(HistoryText(*h).c_str(), stdout);
    if (!json_out.empty()) {
      Status st = WriteFileAtomic(json_out, Dump(HistoryJson(*h)));
      if (!st.ok()) return Usage(st.message());
    }
    if (!html_out.empty()) {
      Status st = WriteFileAtomic(html_out, HistoryHtml(*h));
      if (!st.ok()) return Usage(st.message());
    }
    return h->flags.empty() ? 0 : 1;
  }
  if (inputs.empty() || html_out.empty()) {
    return Usage(
        "give REPORT.json files and --html OUT, or --history DIR (see "
        "sigrace report --help)");
  }
  if (!json_out.empty()) return Usage("--json needs --history");
  std::vector<HtmlInput> in;
  for (const std::string& p : inputs) {
    StatusOr<nlohmann::json> j = ReadJson(p);
    if (!j.ok()) return Usage(j.status().message());
    in.push_back({p, std::move(*j), {}});
  }
  StatusOr<std::string> page = InvalidArgumentError("");
  try {
    page = RenderHtml(in, /*read_sidecars=*/true);
  } catch (const nlohmann::json::exception& e) {
    return Usage("malformed report: " + std::string(e.what()));
  }
  if (!page.ok()) return Usage(page.status().message());
  Status st = WriteFileAtomic(html_out, *page);
  if (!st.ok()) return Usage(st.message());
  std::printf("%s\n", html_out.c_str());
  return 0;
}

}  // namespace sigrace::stress
