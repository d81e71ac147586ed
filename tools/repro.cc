// `sigrace repro`: the main job. For every race variant and both
// algorithms it reproduces the race in live and fatal mode with the fault
// forced into the window; for `fixed` it runs mixed injectors for at least
// --min-live-trials live and --min-fatal-trials fatal trials per algorithm
// and expects zero leaks; it adds TSan verdicts from the tsan build when
// that build is present. Every row is one `sigrace stress` run in its own
// process (a variant is chosen once per process, at Create()), each
// writing its JSON report, which repro reads. fixed's two live rows start
// first and run until they reach --min-live-trials or the budget ends;
// the other rows run two at a time beside them (--jobs 4), so they are done
// well before the budget ends and both cores stay busy while a row waits
// on a process start or a timeout.
//
// JSON report schema ("sigrace.repro.report/1", --report-json):
//   {"schema", "seed", "budget_s", "elapsed_s", "tsan_binary" (or ""),
//    "rows": [{"variant", "alg", "mode", "race": bool, "trials", "leaks",
//              "harness_errors", "first_leak": null | {trial, seed,
//              injector, failpoint, forms, regions, dump, replay, ...},
//              "window", "tsan": null | {"total", "by_type", "trials"},
//              "verdict", "note", "command"}],
//    "exit_code", "verdict"}

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <climits>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include "stress/catalogue.h"
#include "stress/driver.h"
#include "stress/options.h"
#include "stress/report.h"
#include "tools/stress.h"

extern char** environ;

namespace sigrace::stress {
namespace {

using Clock = std::chrono::steady_clock;

struct ReproOptions {
  double budget_s = 270;
  std::string out_dir = "sigrace-repro";
  std::string report_json;
  std::string junit;
  uint64_t seed = 0;
  uint64_t min_live = 10000;
  uint64_t min_fatal = 100;
  uint64_t race_live_trials = 20;
  uint64_t race_fatal_trials = 5;
  // A TSan trial of a race variant reproduces at trial 0; each TSan trial
  // costs seconds (a TSan process's dump is over a GB, mostly holes, and
  // threads in uninstrumented OpenSSL take the freeze signal late).
  uint64_t tsan_race_trials = 1;
  uint64_t tsan_fixed_trials = 4;
  // fixed's two live rows run from the start for the whole budget, beside
  // two other rows at a time.
  uint32_t jobs = 2;  // besides fixed's live rows
  uint32_t threads = kDefaultThreads;
  std::string tsan_bin = "auto";
  std::vector<std::string> variants;  // empty: all
  std::vector<std::string> algs = {"rs256", "eddsa"};
};

enum class JobKind { kRaceLive, kRaceFatal, kFixedFatal, kFixedLive, kTsan };

// --rotation-share and --key-pool of fixed's live rows (see where they
// are added).
constexpr char kRs256RotationShare[] = "0.25";
constexpr char kEddsaRotationShare[] = "0.25";
constexpr char kFixedLiveKeyPool[] = "2";
constexpr uint64_t kFixedLiveParts = 2;
// Seconds kept back at the end of the budget for the last rows to finish
// and for the report.
constexpr double kBudgetMarginS = 12;

struct Job {
  JobKind kind;
  std::string variant, alg, mode;
  std::string binary;
  std::vector<std::string> args;  // after "stress"
  double cap_s = 0;               // --duration-s bound
  bool cap_is_rest = false;       // gets the rest of the budget
  std::string report_path, log_path;
  pid_t pid = -1;
  Clock::time_point started;
  double seconds = 0;
  int exit_code = -1;
  bool done = false;
  nlohmann::json report;
  std::string command;
};

std::string Dirname(const std::string& p) {
  const size_t s = p.rfind('/');
  return s == std::string::npos ? "." : p.substr(0, s);
}

std::string FindTsanBinary(const ReproOptions& o) {
  if (o.tsan_bin == "none") return "";
  std::string p = o.tsan_bin;
  if (p == "auto") {
    // build/default/tools/sigrace -> build/tsan/tools/sigrace
    p = Dirname(SelfExe()) + "/../../tsan/tools/sigrace";
  }
  char real[PATH_MAX];
  if (realpath(p.c_str(), real) == nullptr) return "";
  if (access(real, X_OK) != 0) return "";
  return real;
}

std::string Quote(const std::vector<std::string>& argv) {
  std::string s;
  for (const std::string& a : argv) {
    if (!s.empty()) s += ' ';
    s += a;
  }
  return s;
}

Status StartJob(Job& j, double cap_s) {
  std::vector<std::string> argv = {j.binary, "stress"};
  argv.insert(argv.end(), j.args.begin(), j.args.end());
  if (cap_s > 0) {
    char buf[32];
    std::snprintf(buf, sizeof(buf), "%.0f", cap_s);
    argv.push_back("--duration-s");
    argv.push_back(buf);
  }
  j.command = Quote(argv);
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_addopen(&fa, STDOUT_FILENO, j.log_path.c_str(),
                                   O_WRONLY | O_CREAT | O_TRUNC, 0600);
  posix_spawn_file_actions_adddup2(&fa, STDOUT_FILENO, STDERR_FILENO);
  std::vector<char*> cargv;
  for (std::string& a : argv) cargv.push_back(a.data());
  cargv.push_back(nullptr);
  const int rc = posix_spawn(&j.pid, argv[0].c_str(), &fa, nullptr,
                             cargv.data(), environ);
  posix_spawn_file_actions_destroy(&fa);
  if (rc != 0) return ErrnoError("spawn " + argv[0], rc);
  j.started = Clock::now();
  return Status::Ok();
}

void FinishJob(Job& j, int status) {
  j.done = true;
  j.seconds = std::chrono::duration<double>(Clock::now() - j.started).count();
  j.exit_code = WIFEXITED(status) ? WEXITSTATUS(status)
                                  : 128 + (WIFSIGNALED(status) ? WTERMSIG(status)
                                                               : 0);
  std::ifstream in(j.report_path);
  if (in) {
    std::stringstream ss;
    ss << in.rdbuf();
    j.report = nlohmann::json::parse(ss.str(), nullptr, false);
  }
}

std::string LastLines(const std::string& path, int n) {
  std::ifstream in(path);
  std::vector<std::string> lines;
  std::string l;
  while (std::getline(in, l)) lines.push_back(l);
  std::string out;
  for (size_t i = lines.size() > static_cast<size_t>(n) ? lines.size() - n : 0;
       i < lines.size(); ++i) {
    out += lines[i] + "\n";
  }
  return out;
}

struct Row {
  std::string variant, alg, mode;
  bool race = false;
  bool data_race = false;  // the window is one TSan reports
  int job = -1;
  std::vector<int> more_jobs;  // fixed live: the other parts of the row
  int tsan_job = -1;  // live rows only
  uint64_t trials = 0, leaks = 0, errors = 0;
  nlohmann::json first_leak;
  std::string window;
  std::string tsan_text = "-";
  nlohmann::json tsan;
  std::string verdict, note;
  bool ok = false, error = false;
  bool na = false;  // the window is not on this algorithm's path
};

}  // namespace

int ReproMain(int argc, char** argv) {
  CLI::App app{
      "The main job. For every race variant and both algorithms it "
      "reproduces the race in live and fatal mode (fault forced into the "
      "window by its failpoint) and reports the first leaking trial: its "
      "window, form, region, dump path and the one-line command that "
      "replays it. For fixed it runs every injector (failpoint, async, "
      "unrelated) for at least --min-live-trials live and "
      "--min-fatal-trials fatal trials per algorithm and expects zero "
      "leaks. With the tsan build present (build/tsan/tools/sigrace next "
      "to this build) it adds the ThreadSanitizer report count per variant "
      "and algorithm; otherwise it says so. It ends with one table: "
      "variant x algorithm x mode, with trials, leaks, first leak, TSan "
      "reports and verdict.\n\n"
      "Exit codes: 0 every race variant reproduced and fixed stayed clean "
      "(no leak, no TSan report, enough trials); 1 otherwise; 2 usage or "
      "harness error.",
      "sigrace repro"};
  ReproOptions o;
  app.add_option("--budget-s", o.budget_s,
                 "Wall-clock budget; fixed's live runs get what the other "
                 "rows leave (they stop early at --min-live-trials)")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  app.add_option("--out", o.out_dir,
                 "Directory for leaking dumps, sidecars and per-row logs")
      ->capture_default_str();
  app.add_option("--report-json", o.report_json,
                 "Write the JSON report here (schema in stress/repro.cc)");
  app.add_option("--junit", o.junit,
                 "Write JUnit XML here (one test case per row)");
  app.add_option("--seed", o.seed, "Seed for every row (default: random)");
  app.add_option("--min-live-trials", o.min_live,
                 "Live trials per algorithm fixed must pass")
      ->capture_default_str();
  app.add_option("--min-fatal-trials", o.min_fatal,
                 "Fatal trials per algorithm fixed must pass")
      ->capture_default_str();
  app.add_option("--race-live-trials", o.race_live_trials,
                 "Most live trials to reproduce one race row")
      ->capture_default_str();
  app.add_option("--race-fatal-trials", o.race_fatal_trials,
                 "Most fatal trials to reproduce one race row")
      ->capture_default_str();
  app.add_option("--jobs", o.jobs,
                 "Rows run at once besides fixed's live rows (those run "
                 "from the start, two workers per algorithm)")
      ->capture_default_str()
      ->check(CLI::Range(1, 64));
  app.add_option("--threads", o.threads, "Signing threads per row")
      ->capture_default_str()
      ->check(CLI::Range(1, 64));
  app.add_option("--tsan-bin", o.tsan_bin,
                 "TSan build of sigrace: auto (../../tsan/tools/sigrace "
                 "from this binary), a path, or none")
      ->capture_default_str();
  app.add_option("--variant", o.variants,
                 "Only these variants (repeatable; default: all)");
  std::string alg = "both";
  app.add_option("--alg", alg, "rs256, eddsa or both")->capture_default_str();
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    if (e.get_exit_code() == 0) {
      app.exit(e);
      return 0;
    }
    std::fprintf(stderr, "sigrace: %s (see sigrace repro --help)\n", e.what());
    return 2;
  }
  if (alg == "both") {
    o.algs = {"rs256", "eddsa"};
  } else if (alg == "rs256" || alg == "eddsa") {
    o.algs = {alg};
  } else {
    std::fprintf(stderr, "sigrace: unknown --alg '%s' (rs256, eddsa, both)\n",
                 alg.c_str());
    return 2;
  }
  if (app.count("--seed") == 0) o.seed = RandomSeed();
  std::vector<VariantEntry> variants;
  if (o.variants.empty()) {
    variants = Catalogue();
  } else {
    for (const std::string& v : o.variants) {
      StatusOr<VariantEntry> e = FindVariant(v);
      if (!e.ok()) {
        std::fprintf(stderr, "sigrace: %s\n", e.status().message().c_str());
        return 2;
      }
      variants.push_back(*e);
    }
  }
  const std::string self = SelfExe();
  const std::string tsan = FindTsanBinary(o);
  const std::string logs = o.out_dir + "/logs";
  for (const std::string& d : {o.out_dir, logs}) {
    if (mkdir(d.c_str(), 0700) != 0 && errno != EEXIST) {
      std::fprintf(stderr, "sigrace: mkdir %s: %s\n", d.c_str(),
                   strerror(errno));
      return 2;
    }
  }
  const std::string seed = std::to_string(o.seed);
  std::printf("sigrace repro: seed %s, budget %.0f s, %u row(s) at once "
              "besides fixed's live rows\n",
              seed.c_str(), o.budget_s, o.jobs);
  std::printf("tsan: %s\n",
              tsan.empty() ? "tsan build not present (looked for "
                             "../../tsan/tools/sigrace next to this "
                             "binary; build the tsan preset to add the "
                             "TSan column)"
                           : ("using " + tsan).c_str());
  std::fflush(stdout);

  std::vector<Job> jobs;
  std::vector<Row> rows;
  auto add_job = [&](JobKind kind, const VariantEntry& v, const std::string& a,
                     const std::string& mode, std::vector<std::string> args,
                     double cap, bool rest, const std::string& binary,
                     const std::string& job_seed = "",
                     const std::string& tag_suffix = "") {
    Job j;
    j.kind = kind;
    j.variant = v.name;
    j.alg = a;
    j.mode = mode;
    j.binary = binary;
    const std::string tag = v.name + "-" + a + "-" + mode +
                            (kind == JobKind::kTsan ? "-tsan" : "") +
                            tag_suffix;
    j.report_path = logs + "/" + tag + ".json";
    j.log_path = logs + "/" + tag + ".log";
    std::vector<std::string> common = {
        "--variant", v.name, "--alg", a, "--mode", mode,
        "--seed", job_seed.empty() ? seed : job_seed,
        "--threads", std::to_string(o.threads),
        "--out", o.out_dir, "--report-json", j.report_path,
        "--quiet", "--no-progress"};
    common.insert(common.end(), args.begin(), args.end());
    j.args = common;
    j.cap_s = cap;
    j.cap_is_rest = rest;
    jobs.push_back(j);
    return static_cast<int>(jobs.size()) - 1;
  };
  // Order: the short race rows first, then fixed's fatal rows, TSan, and
  // last fixed's live rows, which take whatever budget is left.
  for (const VariantEntry& v : variants) {
    if (!v.race) continue;
    for (const std::string& a : o.algs) {
      for (const char* mode : {"live", "fatal"}) {
        Row r;
        r.variant = v.name;
        r.alg = a;
        r.mode = mode;
        r.race = true;
        r.data_race = v.data_race;
        r.window = v.window;
        if (std::find(v.algs.begin(), v.algs.end(), a) == v.algs.end()) {
          // The window is on the other algorithm's path: nothing to run.
          r.na = true;
          rows.push_back(r);
          continue;
        }
        const bool live = std::string(mode) == "live";
        r.job = add_job(live ? JobKind::kRaceLive : JobKind::kRaceFatal, v, a,
                        mode,
                        {"--injectors", "failpoint", "--expect", "leak",
                         "--trials",
                         std::to_string(live ? o.race_live_trials
                                             : o.race_fatal_trials)},
                        live ? 30 : 40, false, self);
        rows.push_back(r);
      }
    }
  }
  std::vector<size_t> fixed_live_rows;
  for (const VariantEntry& v : variants) {
    if (v.race) continue;
    for (const std::string& a : o.algs) {
      Row r;
      r.variant = v.name;
      r.alg = a;
      r.mode = "fatal";
      // A fatal RS256 trial is a fresh process with its own RSA keygen
      // (0.5-1.5 s here), and a fault on the rotation path would pay a
      // second one: with --key-pool 1 the rotation re-runs encode, wrap,
      // load, warm-up, swap and retire on the first key's material under a
      // new kid (measured: 2.5 -> 3.8 fatal RS256 trials/s).
      r.job = add_job(JobKind::kFixedFatal, v, a, "fatal",
                      {"--expect", "clean", "--trials",
                       std::to_string(o.min_fatal), "--key-pool", "1"},
                      std::max(20.0, o.budget_s * 0.6), false, self);
      rows.push_back(r);
      r.mode = "live";
      fixed_live_rows.push_back(rows.size());
      rows.push_back(r);
    }
  }
  if (!tsan.empty()) {
    for (Row& r : rows) {
      if (r.mode != "live" || r.na) continue;
      StatusOr<VariantEntry> v = FindVariant(r.variant);
      const bool race = v->race;
      // The TSan build runs the worker (signer, handler, workload: what
      // TSan checks); this build's driver scans its dumps uninstrumented.
      r.tsan_job = add_job(
          JobKind::kTsan, *v, r.alg, "live",
          {"--injectors", race ? "failpoint" : "failpoint,unrelated",
           "--expect", race ? "leak" : "clean", "--keep-going", "--trials",
           std::to_string(race ? o.tsan_race_trials : o.tsan_fixed_trials),
           "--trial-timeout-ms", "30000", "--worker-bin", tsan,
           // A TSan process's dump is over a GB (the runtime's reserved
           // regions, mostly holes); the table gets the counts, the log
           // the regions, and the dump itself is left out.
           "--max-kept", "0"},
          race ? 40 : 60, false, self);
    }
  }
  for (size_t i : fixed_live_rows) {
    StatusOr<VariantEntry> v = FindVariant(rows[i].variant);
    // A rotation-path fault used to cost a key generation and a new key
    // for the oracle (an RSA-2048 keygen is a few hundred ms here, against
    // about 10 ms for a whole trial). fixed's long live rows therefore run
    // with --key-pool: each worker generates two keys per algorithm once,
    // and every rotation re-runs encode, wrap, load, warm-up, swap and
    // retire on their material under a new kid; the oracle already knows
    // the material, so its index stays as it is. A quarter of the
    // failpoint faults land on the rotation path (where five of the six
    // windows are), the rest on signing threads. The fatal rows, the race
    // rows and `sigrace stress` keep fresh keys and the uniform choice.
    const char* share = rows[i].alg == "rs256" ? kRs256RotationShare
                                               : kEddsaRotationShare;
    // Two workers per row, each with half the trials and its own seed
    // (seed, seed + 1): a trial waits on its random fault delay and on the
    // driver's scan, so one worker leaves a core partly idle.
    for (uint64_t part = 0; part < kFixedLiveParts; ++part) {
      const uint64_t n = (o.min_live + kFixedLiveParts - 1 - part) /
                         kFixedLiveParts;
      const int j = add_job(
          JobKind::kFixedLive, *v, rows[i].alg, "live",
          {"--expect", "clean", "--trials", std::to_string(n),
           "--rotation-share", share, "--key-pool", kFixedLiveKeyPool},
          0, true, self, std::to_string(o.seed + part),
          part == 0 ? "" : "-" + std::to_string(part + 1));
      if (part == 0) {
        rows[i].job = j;
      } else {
        rows[i].more_jobs.push_back(j);
      }
    }
  }

  // Start order: the rest-of-budget rows (fixed live) first, so they run
  // from the start side by side; then fixed's fatal rows, the longest of
  // the rest (they stop at their trial count or their cap); then the race
  // rows and the TSan rows in the order added.
  std::vector<size_t> order;
  for (JobKind k : {JobKind::kFixedLive, JobKind::kFixedFatal}) {
    for (size_t i = 0; i < jobs.size(); ++i) {
      if (jobs[i].kind == k) order.push_back(i);
    }
  }
  for (size_t i = 0; i < jobs.size(); ++i) {
    if (jobs[i].kind != JobKind::kFixedLive &&
        jobs[i].kind != JobKind::kFixedFatal) {
      order.push_back(i);
    }
  }
  const auto start = Clock::now();
  const auto deadline =
      start + std::chrono::milliseconds(static_cast<int64_t>(o.budget_s * 1000));
  size_t next = 0, running = 0, finished = 0;
  while (finished < jobs.size()) {
    while (next < jobs.size() &&
           (jobs[order[next]].kind == JobKind::kFixedLive ||
            running < o.jobs)) {
      Job& j = jobs[order[next++]];
      double left =
          std::chrono::duration<double>(deadline - Clock::now()).count();
      double cap = j.cap_s;
      if (j.cap_is_rest) {
        // Until the end of the budget, less the margin; they stop earlier
        // once they reach --min-live-trials.
        cap = left - kBudgetMarginS;
      } else {
        cap = std::min(cap, left - kBudgetMarginS);
      }
      cap = std::max(cap, 5.0);
      Status st = StartJob(j, cap);
      if (!st.ok()) {
        std::fprintf(stderr, "sigrace: %s\n", st.message().c_str());
        j.done = true;
        j.exit_code = 2;
        ++finished;
        continue;
      }
      if (j.kind != JobKind::kFixedLive) ++running;
    }
    int status = 0;
    const pid_t pid = waitpid(-1, &status, 0);
    if (pid < 0) {
      if (errno == EINTR) continue;
      break;
    }
    for (Job& j : jobs) {
      if (j.pid == pid && !j.done) {
        FinishJob(j, status);
        if (j.kind != JobKind::kFixedLive) --running;
        ++finished;
        std::fprintf(stderr, "[%zu/%zu] %s %s %s%s: exit %d in %.1f s\n",
                     finished, jobs.size(), j.variant.c_str(), j.alg.c_str(),
                     j.mode.c_str(), j.kind == JobKind::kTsan ? " (tsan)" : "",
                     j.exit_code, j.seconds);
      }
    }
  }
  const double elapsed =
      std::chrono::duration<double>(Clock::now() - start).count();

  // Verdicts.
  bool any_fail = false, any_error = false;
  for (Row& r : rows) {
    if (r.na) {
      r.verdict = "n/a";
      r.tsan_text = "-";
      r.ok = true;
      continue;
    }
    const Job& j = jobs[r.job];
    // The row's exit code: its worst part (not run or 2, over 1, over 0).
    int row_exit = 0;
    std::vector<int> parts = {r.job};
    parts.insert(parts.end(), r.more_jobs.begin(), r.more_jobs.end());
    for (int pj : parts) {
      const nlohmann::json& rep = jobs[pj].report;
      const int e = jobs[pj].exit_code;
      if (e != 0 && (row_exit == 0 || e == 2 || e < 0)) row_exit = e;
      if (!rep.is_object() || !rep.contains("totals")) continue;
      r.trials += rep["totals"].value("trials", uint64_t{0});
      r.leaks += rep["totals"].value("leak", uint64_t{0});
      r.errors += rep["totals"].value("harness_error", uint64_t{0});
      if (!r.first_leak.is_object() && rep.contains("cells") &&
          !rep["cells"].empty() &&
          rep["cells"][0]["first_leak"].is_object()) {
        r.first_leak = rep["cells"][0]["first_leak"];
      }
    }
    if (r.race) {
      if (row_exit == 0) {
        r.verdict = "reproduced";
        r.ok = true;
      } else if (row_exit == 1) {
        r.verdict = "NOT REPRODUCED";
        any_fail = true;
      } else {
        r.verdict = "ERROR";
        r.error = true;
        r.note = LastLines(j.log_path, 2);
      }
    } else {
      const uint64_t min = r.mode == "live" ? o.min_live : o.min_fatal;
      if (row_exit == 0 && r.trials >= min) {
        r.verdict = "clean";
        r.ok = true;
      } else if (row_exit == 0) {
        r.verdict = "SHORT";
        r.note = std::to_string(r.trials) + " of " + std::to_string(min) +
                 " trials within the budget\n";
        any_fail = true;
      } else if (row_exit == 1) {
        r.verdict = "LEAK";
        any_fail = true;
      } else {
        r.verdict = "ERROR";
        r.error = true;
        r.note = LastLines(j.log_path, 2);
      }
    }
    if (r.tsan_job >= 0) {
      const Job& t = jobs[r.tsan_job];
      if (t.report.is_object() && t.report.contains("tsan")) {
        r.tsan = t.report["tsan"];
        r.tsan["trials"] = t.report["totals"].value("trials", uint64_t{0});
        const uint64_t tsan_leaks =
            t.report["totals"].value("leak", uint64_t{0});
        r.tsan["leaks"] = tsan_leaks;
        const uint64_t n = r.tsan.value("total", uint64_t{0});
        r.tsan_text = std::to_string(n) + " in " +
                      std::to_string(r.tsan["trials"].get<uint64_t>()) + " tr";
        const uint64_t races = r.tsan.contains("by_type")
                                   ? r.tsan["by_type"].value("data_race",
                                                             uint64_t{0})
                                   : 0;
        const uint64_t tr = r.tsan["trials"].get<uint64_t>();
        if (r.race && !r.data_race) {
          // An ordering window: TSan has nothing to report there and the
          // dump oracle is the judge (tsan/README.md). A race report here
          // means the window changed shape: said, not a verdict.
          r.tsan_text += " (no race)";
          if (races > 0) {
            r.note += "tsan build: " + std::to_string(races) +
                      " data race report(s) on an ordering window; look at "
                      "the stacks in " + t.log_path + "\n";
          }
        } else if (r.race && races == 0) {
          r.tsan_text += " !";
          r.note += "tsan build: this window is a data race TSan reports, "
                    "and it saw none in " + std::to_string(tr) +
                    " trial(s); tsan_variant_*_test forces it\n";
        }
        if (!r.race && tsan_leaks > 0) {
          // A leak in fixed is a regression in either build. (The TSan
          // runtime's own copies of deferred signal contexts, which leaked
          // once, are redacted by the handler.)
          r.tsan_text += " +" + std::to_string(tsan_leaks) + "L";
          r.note += "tsan build: " + std::to_string(tsan_leaks) +
                    " leaking dump(s) in " + std::to_string(tr) +
                    " trials; log " + t.log_path + "\n";
          r.verdict += "+LEAK(tsan)";
          r.ok = false;
          any_fail = true;
        }
        if (!r.race && n > 0) {
          r.verdict += "+TSAN";
          r.ok = false;
          any_fail = true;
        }
      } else {
        r.tsan_text = "error";
        if (!r.race) {
          r.error = true;
          any_error = true;
        }
      }
    } else if (r.mode == "live") {
      r.tsan_text = tsan.empty() ? "no build" : "-";
    }
    if (r.error) any_error = true;
  }
  const int exit_code = any_fail ? 1 : any_error ? 2 : 0;

  // The first leak of each race row, then the table.
  std::printf("\n");
  for (const Row& r : rows) {
    if (!r.first_leak.is_object()) continue;
    const nlohmann::json& f = r.first_leak;
    std::string forms, regions;
    for (const auto& x : f["forms"]) forms += (forms.empty() ? "" : ", ") + x.get<std::string>();
    for (const auto& x : f["regions"]) {
      regions += (regions.empty() ? "" : "; ") + x.get<std::string>();
    }
    std::printf("%s %s %s: first leak at trial %llu (%.2f s)\n",
                r.variant.c_str(), r.alg.c_str(), r.mode.c_str(),
                static_cast<unsigned long long>(f.value("trial", uint64_t{0})),
                f.value("elapsed_s", 0.0));
    if (!r.window.empty()) std::printf("  window: %s\n", r.window.c_str());
    std::printf("  fault:  %s %s@%llu %s\n",
                f.value("injector", "").c_str(), f.value("failpoint", "").c_str(),
                static_cast<unsigned long long>(f.value("hit", uint64_t{0})),
                f.value("thread", "").c_str());
    std::printf("  form:   %s\n  region: %s\n  dump:   %s\n  replay: %s\n",
                forms.c_str(), regions.c_str(),
                f.value("dump", "").empty() ? "(not kept)"
                                            : f.value("dump", "").c_str(),
                f.value("replay", "").c_str());
  }
  for (const Row& r : rows) {
    if (!r.note.empty()) {
      std::printf("%s %s %s: %s%s", r.variant.c_str(), r.alg.c_str(),
                  r.mode.c_str(), r.note.c_str(),
                  r.note.back() == '\n' ? "" : "\n");
    }
  }
  std::printf("\n%-16s %-6s %-5s %8s %6s  %-18s %-22s %s\n", "variant", "alg",
              "mode", "trials", "leaks", "first leak", "tsan", "verdict");
  for (const Row& r : rows) {
    std::string first = "-";
    if (r.first_leak.is_object()) {
      char buf[64];
      std::snprintf(buf, sizeof(buf), "trial %llu (%.1fs)",
                    static_cast<unsigned long long>(
                        r.first_leak.value("trial", uint64_t{0})),
                    r.first_leak.value("elapsed_s", 0.0));
      first = buf;
    }
    std::printf("%-16s %-6s %-5s %8llu %6llu  %-18s %-22s %s\n",
                r.variant.c_str(), r.alg.c_str(), r.mode.c_str(),
                static_cast<unsigned long long>(r.trials),
                static_cast<unsigned long long>(r.leaks), first.c_str(),
                r.tsan_text.c_str(), r.verdict.c_str());
  }
  std::printf("(tsan: reports from the tsan build's trials of the row; "
              "\"(no race)\": a window that is no data race, which TSan "
              "cannot see and the oracle judges (tsan/README.md); \"!\": a "
              "data-race window TSan did not report this time)\n");
  std::string verdict =
      exit_code == 0
          ? "ok: every race variant reproduced and fixed stayed clean"
          : exit_code == 1 ? "FAIL: a race variant did not reproduce or "
                             "fixed did not stay clean (see the table)"
                           : "harness error in some row (see the notes)";
  std::printf("\n%s (%.0f s; logs and dumps in %s)\n", verdict.c_str(),
              elapsed, o.out_dir.c_str());
  std::fflush(stdout);

  if (!o.report_json.empty() || !o.junit.empty()) {
    nlohmann::json jr;
    jr["schema"] = "sigrace.repro.report/1";
    jr["seed"] = o.seed;
    jr["budget_s"] = o.budget_s;
    jr["elapsed_s"] = elapsed;
    jr["tsan_binary"] = tsan;
    nlohmann::json rj = nlohmann::json::array();
    std::vector<JUnitCase> cases;
    for (const Row& r : rows) {
      rj.push_back({{"variant", r.variant},
                    {"alg", r.alg},
                    {"mode", r.mode},
                    {"race", r.race},
                    {"trials", r.trials},
                    {"leaks", r.leaks},
                    {"harness_errors", r.errors},
                    {"first_leak", r.first_leak},
                    {"window", r.window},
                    {"tsan", r.tsan.is_null() ? nlohmann::json(nullptr) : r.tsan},
                    {"verdict", r.verdict},
                    {"note", r.note},
                    {"command", r.na ? "" : jobs[r.job].command}});
      JUnitCase c;
      c.classname = "sigrace.repro." + r.variant;
      c.name = r.variant + "/" + r.alg + "/" + r.mode;
      c.time_s = r.na ? 0 : jobs[r.job].seconds;
      const std::string where =
          "seed " + seed + (r.first_leak.is_object()
                                ? " trial " + std::to_string(r.first_leak.value(
                                                  "trial", uint64_t{0}))
                                : "");
      if (r.error) {
        c.error = r.verdict + " (" + where + "): " + r.note;
      } else if (!r.ok) {
        c.failure = r.verdict + " (" + where + ", " +
                    std::to_string(r.trials) + " trials): " +
                    (r.first_leak.is_object()
                         ? r.first_leak.value("replay", "")
                         : (r.na ? "" : jobs[r.job].command));
      }
      cases.push_back(c);
    }
    jr["rows"] = rj;
    jr["exit_code"] = exit_code;
    jr["verdict"] = verdict;
    if (!o.report_json.empty()) {
      Status st = WriteFileAtomic(o.report_json, jr.dump(2) + "\n");
      if (!st.ok()) {
        std::fprintf(stderr, "sigrace: %s\n", st.message().c_str());
        return 2;
      }
    }
    if (!o.junit.empty()) {
      Status st = WriteFileAtomic(o.junit, JUnitXml("sigrace.repro", cases));
      if (!st.ok()) {
        std::fprintf(stderr, "sigrace: %s\n", st.message().c_str());
        return 2;
      }
    }
  }
  return exit_code;
}

}  // namespace sigrace::stress
