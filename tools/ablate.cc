#include "tools/ablate.h"

#include <CLI/CLI.hpp>
#include <cstdio>
#include <string>
#include <vector>

#include "base/files.h"
#include "stress/ablation_run.h"
#include "stress/options.h"
#include "tools/common.h"

namespace sigrace::stress {
namespace {

int Usage(const std::string& message) {
  std::fprintf(stderr, "sigrace: ablate: %s\n", message.c_str());
  return 2;
}

}  // namespace

int AblateMain(int argc, char** argv) {
  CLI::App app{
      "Shows that every protection of the fixed redaction path pulls its "
      "weight: for each one, runs `sigrace stress --variant fixed` with "
      "that protection alone switched off (SIGRACE_ABLATE) until the first "
      "leak or the budget, and reports the trials to the first leak and "
      "what leaked (form and region; never bytes). A protection whose "
      "ablation does not leak is \"unobserved\": the workload lacks the "
      "exposure it exists for. Needs a test build (every preset but "
      "bench).\n\n"
      "Exit codes: 0 every protection leaked without itself; 1 at least "
      "one is unobserved; 2 usage or harness error.",
      "sigrace ablate"};
  AblationOptions opts;
  StressFlagText text;
  text.expect = "leak";
  opts.stress.trials = 2000;
  opts.stress.duration_s = 60;
  opts.stress.out_dir = "sigrace-ablate";
  std::string report_json;
  app.add_option("--protection", opts.protections,
                 "A protection to switch off (repeatable): registry-cover, "
                 "secret-stack, scope-registers, simd-outside-scope, scrub, "
                 "dontdump, key-heap-wipe, freeze, snapshot-after-freeze, "
                 "or cover:LABEL; default: every named protection");
  app.add_option("--trials", opts.stress.trials,
                 "Trials per protection at most")
      ->capture_default_str()
      ->check(tools::UintIn(1, 10000000));
  app.add_option("--duration-s", opts.stress.duration_s,
                 "Seconds per protection at most")
      ->capture_default_str()
      ->check(tools::RealIn(1, 86400));
  app.add_option("--alg", text.alg, "rs256, eddsa or both")
      ->capture_default_str();
  app.add_option("--mode", text.mode, "live or fatal")->capture_default_str();
  app.add_option("--seed", opts.stress.seed,
                 "Seed of every run (default: random, printed)")
      ->check(tools::UintIn(0, UINT64_MAX));
  app.add_option("--out", opts.stress.out_dir,
                 "Directory for leaking dumps, one subdirectory per "
                 "protection")
      ->capture_default_str();
  app.add_option("--report-json", report_json, "Write the table as JSON");
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    if (e.get_exit_code() == 0) {
      app.exit(e);
      return 0;
    }
    return Usage(std::string(e.what()) + " (see sigrace ablate --help)");
  }
  opts.stress.seed_given = app.count("--seed") > 0;
  opts.stress.trials_given = true;
  opts.stress.variant = "fixed";
  opts.stress.keep_going = false;
  opts.stress.max_kept = 1;
  // A leak here must be a dump's: the cover check would name the window
  // before the oracle could.
  opts.stress.cover_check = false;
  opts.stress.progress = false;
  opts.stress.quiet = true;
  Status st =
      FinishStressOptions(text, /*variant_is_race=*/false, &opts.stress);
  if (!st.ok()) return Usage(st.message());
  st = CheckOutputDir(opts.stress.out_dir);
  if (!st.ok()) return Usage(st.message());
  st = CheckProtections(opts.protections);
  if (!st.ok()) return Usage(st.message());
  std::fprintf(stdout,
               "sigrace ablate: fixed, mode %s, alg %s, seed %llu, budget "
               "%llu trials or %.0f s per protection\n",
               ModeName(opts.stress.mode), text.alg.c_str(),
               static_cast<unsigned long long>(opts.stress.seed),
               static_cast<unsigned long long>(opts.stress.trials),
               opts.stress.duration_s);
  std::fflush(stdout);
  StatusOr<std::vector<AblationRow>> rows = RunAblation(opts);
  if (!rows.ok()) return Usage(rows.status().message());
  std::fputs(AblationTable(*rows).c_str(), stdout);
  for (const AblationRow& r : *rows) {
    if (!r.replay.empty()) {
      std::fprintf(stdout, "replay %s: %s\n", r.protection.c_str(),
                   r.replay.c_str());
    }
  }
  const int code = AblationExitCode(*rows);
  std::fprintf(stdout, "%s\n",
               code == 0   ? "ok: every protection is needed by the workload"
               : code == 1 ? "FAIL: a protection's ablation leaked nothing "
                             "(unobserved: the workload lacks its exposure)"
                           : "error: an ablation run had no verdict");
  if (!report_json.empty()) {
    st = WriteFileAtomic(
        report_json,
        AblationJson(*rows, opts)
                .dump(2, ' ', false, nlohmann::json::error_handler_t::replace) +
            "\n");
    if (!st.ok()) return Usage(st.message());
  }
  return code;
}

}  // namespace sigrace::stress
