#include "tools/stress.h"

#include <CLI/CLI.hpp>
#include <cstdio>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>

#include "base/failpoint.h"
#include "base/files.h"
#include "base/process.h"
#include "stress/catalogue.h"
#include "stress/driver.h"
#include "stress/egress_pipeline.h"
#include "stress/options.h"
#include "stress/report.h"
#include "stress/repro_egress.h"
#include "stress/shard.h"
#include "tools/stress_flags.h"

namespace sigrace::stress {
namespace {

std::string CommandLine(int argc, char** argv) {
  std::string s;
  for (int i = 0; i < argc; ++i) {
    if (i > 0) s += ' ';
    s += argv[i];
  }
  return s;
}

int Usage(const std::string& message) {
  std::fprintf(stderr, "sigrace: %s\n", message.c_str());
  return 2;
}

int EgressPipelineMain(const StressOptions& opts, const std::string& mode,
                       const std::string& scanner, const std::string& faults,
                       uint32_t inflight, uint32_t judge_timeout_ms) {
  PipelineOptions p;
  StatusOr<crashdump::GateMode> m = crashdump::ParseGateMode(mode);
  if (!m.ok()) return Usage(m.status().message());
  StatusOr<crashdump::GateScanner> sc = crashdump::ParseGateScanner(scanner);
  if (!sc.ok()) return Usage(sc.status().message());
  StatusOr<std::vector<EgressFault>> f = ParseEgressFaults(faults);
  if (!f.ok()) return Usage(f.status().message());
  Status st = CheckOutputDir(opts.out_dir);
  if (!st.ok()) return Usage(st.message());
  p.gate_mode = *m;
  p.scanner = *sc;
  p.faults = *f;
  p.out_dir = opts.out_dir;
  p.algs = opts.algs;
  p.trials = opts.trials;
  p.seed = opts.seed;
  p.trial = opts.trial;
  p.inflight = inflight;
  p.judge_timeout_ms = judge_timeout_ms;
  p.max_kept = opts.max_kept;
  p.quiet = opts.quiet;
  if (opts.expect_given) p.expect_leak = opts.expect == Expect::kLeak;
  const bool expect_leak =
      p.expect_leak.value_or(*m != crashdump::GateMode::kFixed ||
                             *sc == crashdump::GateScanner::kLegacy);
  p.stop_at_first_leak = expect_leak && !opts.keep_going;
  if (!opts.quiet) {
    std::printf(
        "sigrace stress --egress-pipeline: gate %s, scanner %s, "
        "faults %s, %llu trials, seed %llu, out %s\n",
        mode.c_str(), scanner.c_str(), EgressFaultList(p.faults).c_str(),
        static_cast<unsigned long long>(p.trials),
        static_cast<unsigned long long>(p.seed), p.out_dir.c_str());
    std::fflush(stdout);
  }
  StatusOr<PipelineReport> r = RunEgressPipeline(p);
  if (!r.ok()) return Usage("harness error: " + r.status().message());
  std::fputs(PipelineText(*r).c_str(), stdout);
  std::fflush(stdout);
  if (!opts.report_json.empty()) {
    st = WriteFileAtomic(opts.report_json, PipelineJson(*r));
    if (!st.ok()) return Usage(st.message());
  }
  return r->ExitCode();
}

}  // namespace

int StressMain(int argc, char** argv) {
  // SIGINT, SIGTERM: stop the workers, remove temporary files and
  // directories, die by the signal.
  InstallStopHandler();
  const double started = UnixNow();
  CLI::App app{
      "Runs signing threads, a rotation thread and fault injectors against "
      "the signer, one fault per trial. Every dump is scanned for every key "
      "the signer ever held; each trial is clean, a leak, or a harness "
      "error. Leaking dumps are kept in --out with a JSON sidecar; clean "
      "ones are deleted.\n\n"
      "Replay one trial: sigrace stress ... --seed S --trial N (the command "
      "is printed with every leak).\n\n"
      "Exit codes: 0 the expectation was met; 1 it was not (a leak under "
      "--expect clean, a TSan report under --expect clean in a TSan build, "
      "or no leak under --expect leak); 2 usage or harness error (a trial "
      "without a verdict is never counted as clean).",
      "sigrace stress"};
  StressOptions opts;
  StressFlagText text;
  ShardFlagText shard_text;
  AddStressFlags(app, &opts, &text);
  AddShardFlags(app, &shard_text);
  // The egress pipeline (stress/egress_pipeline.h).
  bool egress_pipeline = false, through_gate = false;
  std::string gate_mode = "fixed", gate_scanner = "oracle",
              egress_faults = "all";
  uint32_t inflight = 4, judge_timeout_ms = 60000;
  app.add_flag("--egress-pipeline", egress_pipeline,
               "Run the egress pipeline instead of the signer trials: "
               "writers stage real dumps (clean, or holding a key as OpenSSL "
               "holds it) into OUT/staging while an undumpable gate process "
               "watches it with inotify, judges each dump and releases it to "
               "OUT/outbox or quarantines it in OUT/quarantine with a reason. "
               "What reached the outbox is judged with the oracle: a key or a "
               "torn dump there is a leak. Uses --trials, --seed, --trial, "
               "--alg, --out, --expect, --keep-going, --max-kept, "
               "--report-json, --quiet");
  app.add_flag("--through-gate", through_gate,
               "Signer trials whose dumps leave only through the gate: each "
               "trial's dump is staged into OUT/staging, the gate process "
               "(as in --egress-pipeline, with --gate-mode, --gate-scanner, "
               "--judge-timeout-ms) releases it to OUT/outbox or quarantines "
               "it, and the trial leaks only if a released dump holds key "
               "material; held-back dumps are counted by reason. --expect "
               "defaults to clean");
  app.add_option(
         "--gate-mode", gate_mode,
         "--egress-pipeline, --through-gate: the gate (fixed, judge-unsealed, "
         "reopen-to-release, fail-open, rename-release, "
         "link-release)")
      ->capture_default_str();
  app.add_option("--gate-scanner", gate_scanner,
                 "--egress-pipeline, --through-gate: the gate's scanner "
                 "(oracle, legacy)")
      ->capture_default_str();
  app.add_option("--egress-faults", egress_faults,
                 "--egress-pipeline: faults each trial may draw (all, none, "
                 "or a list of writer-crash, enospc, torn, gate-crash, "
                 "scanner-error, unsealed, swap, held-open)")
      ->capture_default_str();
  app.add_option("--inflight", inflight,
                 "--egress-pipeline: trials in flight at once")
      ->capture_default_str()
      ->check(CLI::Range(1, 64));
  app.add_option("--judge-timeout-ms", judge_timeout_ms,
                 "--egress-pipeline, --through-gate: a staged dump not judged "
                 "this long "
                 "after its writer finished is a harness error")
      ->capture_default_str()
      ->check(CLI::Range(100, 600000));
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    if (e.get_exit_code() == 0) {
      app.exit(e);
      return 0;
    }
    return Usage(std::string(e.what()) + " (see sigrace stress --help)");
  }
  opts.seed_given = app.count("--seed") > 0;
  opts.trials_given = app.count("--trials") > 0;
  StatusOr<VariantEntry> variant = FindVariant(opts.variant);
  if (!variant.ok()) return Usage(variant.status().message());
  if (app.count("--alg") == 0) {
    // A window that opens on one algorithm's path only: run that one.
    for (const VariantEntry& e : Catalogue()) {
      const bool chosen = opts.failpoint.empty()
                              ? variant->race && e.name == variant->name
                              : e.race && e.failpoint == opts.failpoint;
      if (chosen && e.algs.size() == 1) text.alg = e.algs[0];
    }
  }
  Status st = FinishStressOptions(text, variant->race, &opts);
  if (!st.ok()) return Usage(st.message());
  if (egress_pipeline && through_gate) {
    return Usage(
        "--through-gate runs the signer trials; --egress-pipeline "
        "replaces them: choose one");
  }
  if (egress_pipeline) {
    return EgressPipelineMain(opts, gate_mode, gate_scanner, egress_faults,
                              inflight, judge_timeout_ms);
  }
  // A shared --out without the sticky bit: anyone could swap the evidence.
  st = CheckOutputDir(opts.out_dir);
  if (!st.ok()) return Usage(st.message());
  StatusOr<ShardSpec> shard = FinishShardFlags(shard_text);
  if (!shard.ok()) return Usage(shard.status().message());
  if (shard->sharded()) {
    if (opts.trial) {
      return Usage("--trial replays one trial and is not sharded (shard " +
                   shard->ToString() + " from " + shard->source + ")");
    }
    if (opts.trials <= shard->index) {
      return Usage("shard " + shard->ToString() + " of --trials " +
                   std::to_string(opts.trials) + " has no trial");
    }
    opts.shard_index = shard->index;
    opts.shard_count = shard->count;
    opts.shard_source = shard->source;
  }
  std::unique_ptr<GateService> gate;
  if (through_gate) {
    StatusOr<crashdump::GateMode> m = crashdump::ParseGateMode(gate_mode);
    if (!m.ok()) return Usage(m.status().message());
    StatusOr<crashdump::GateScanner> sc =
        crashdump::ParseGateScanner(gate_scanner);
    if (!sc.ok()) return Usage(sc.status().message());
    // What left through the gate is judged: a released key is the leak,
    // whatever the variant.
    if (!opts.expect_given) opts.expect = Expect::kClean;
    gate =
        std::make_unique<GateService>(opts.out_dir, *m, *sc, judge_timeout_ms);
  }
  // Reject a bad --failpoint and friends before any process starts.
  StatusOr<PlanInputs> in = MakePlanInputs(opts, *variant);
  if (!in.ok()) return Usage(in.status().message());

  if (!opts.quiet) {
    std::fprintf(stdout,
                 "sigrace stress: variant %s, mode %s, alg %s, injectors "
                 "%s, %u signing threads, rotate every %u ms, seed %llu\n",
                 opts.variant.c_str(), ModeName(opts.mode), text.alg.c_str(),
                 InjectorListString(opts.injectors).c_str(), opts.threads,
                 opts.rotate_every_ms,
                 static_cast<unsigned long long>(opts.seed));
    if (opts.shard_count > 1) {
      std::fprintf(stdout, "shard %u/%u (%s): %llu of %llu trials\n",
                   opts.shard_index, opts.shard_count,
                   opts.shard_source.c_str(),
                   static_cast<unsigned long long>(opts.TrialCount()),
                   static_cast<unsigned long long>(opts.trials));
    }
    if (variant->race) {
      std::fprintf(stdout, "window: %s (failpoint %s)\n",
                   variant->window.c_str(), variant->failpoint.c_str());
    }
    std::fflush(stdout);
  }
  StatusOr<RunReport> report =
      RunStress(opts, *variant, CommandLine(argc, argv), gate.get());
  gate.reset();  // the gate process is stopped before the report
  if (!report.ok()) return Usage("harness error: " + report.status().message());
  if (report->through_gate) {
    report->gate_mode = gate_mode;
    report->gate_scanner = gate_scanner;
  }
  report->build_id = BuildId();
  report->start_time = IsoUtc(started);
  report->wall_s = UnixNow() - started;
  std::fputs(TextSummary(*report).c_str(), stdout);
  std::fflush(stdout);
  if (!opts.report_json.empty()) {
    st = WriteFileAtomic(
        opts.report_json,
        ReportJson(*report).dump(2, ' ', false,
                                 nlohmann::json::error_handler_t::replace) +
            "\n");
    if (!st.ok()) return Usage(st.message());
  }
  if (!opts.junit.empty()) {
    st = WriteFileAtomic(opts.junit,
                         JUnitXml("sigrace.stress", StressJUnitCases(*report)));
    if (!st.ok()) return Usage(st.message());
  }
  return report->exit_code;
}

int VariantsMain(int argc, char** argv) {
  CLI::App app{
      "Lists the redaction-path variants: fixed, and each race "
      "variant with the one-line description of its window, the "
      "failpoint inside it, and whether the window is also a data "
      "race that ThreadSanitizer reports (\"race\") or one only the "
      "dump oracle can judge (\"no race\"); then the egress gate's "
      "variants (gate/*, the rows `sigrace repro` runs on real dumps): "
      "each race mode with the forced order that opens its window and the "
      "failpoint the writer runs at, the fixed gate under each order, and "
      "the legacy scanner.",
      "sigrace variants"};
  bool json = false, failpoints = false;
  app.add_flag("--json", json, "Print JSON instead of a table");
  app.add_flag("--failpoints", failpoints,
               "Also list every failpoint defined in this binary");
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    if (e.get_exit_code() == 0) {
      app.exit(e);
      return 0;
    }
    return Usage(std::string(e.what()) + " (see sigrace variants --help)");
  }
  const std::vector<VariantEntry> cat = Catalogue();
  if (json) {
    nlohmann::json j = nlohmann::json::array();
    for (const VariantEntry& v : cat) {
      j.push_back(
          {{"name", v.name},
           {"race", v.race},
           {"window", v.window},
           {"failpoint", v.failpoint},
           {"path", v.path},
           {"tsan", v.race ? (v.data_race ? "data race" : "no race") : "-"}});
    }
    nlohmann::json g = nlohmann::json::array();
    for (const EgressVariant& v : EgressCatalogue()) {
      g.push_back({{"name", v.name},
                   {"race", v.race},
                   {"order", v.order},
                   {"failpoint", v.failpoint},
                   {"window", v.window}});
    }
    nlohmann::json out = {{"variants", j}, {"gate_variants", g}};
    if (failpoints) out["failpoints"] = failpoint::ListNames();
    std::printf("%s\n", out.dump(2).c_str());
    return 0;
  }
  std::printf("%-16s %-7s %-26s %-9s %s\n", "variant", "path", "failpoint",
              "tsan", "window");
  for (const VariantEntry& v : cat) {
    std::printf("%-16s %-7s %-26s %-9s %s\n", v.name.c_str(),
                v.path.empty() ? "-" : v.path.c_str(),
                v.failpoint.empty() ? "-" : v.failpoint.c_str(),
                !v.race       ? "-"
                : v.data_race ? "race"
                              : "no race",
                v.race ? v.window.c_str()
                       : "no window: the redaction path closes every one");
  }
  std::printf("\n%-22s %-10s %-19s %s\n", "gate variant", "order", "failpoint",
              "window");
  for (const EgressVariant& v : EgressCatalogue()) {
    std::printf("%-22s %-10s %-19s %s\n", v.name.c_str(),
                v.order.empty() ? "-" : v.order.c_str(),
                v.failpoint.empty() ? "-" : v.failpoint.c_str(),
                v.window.c_str());
  }
  if (failpoints) {
    std::printf("\nfailpoints:\n");
    for (const std::string& n : failpoint::ListNames()) {
      std::printf("  %s\n", n.c_str());
    }
  }
  return 0;
}

}  // namespace sigrace::stress
