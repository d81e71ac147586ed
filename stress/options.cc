#include "stress/options.h"

#include <sys/random.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <string>

#include <CLI/CLI.hpp>

namespace sigrace::stress {

const char* ExpectName(Expect expect) {
  return expect == Expect::kClean ? "clean" : "leak";
}

void AddStressFlags(CLI::App& app, StressOptions* o,
                    std::string* injectors_text, std::string* alg_text,
                    std::string* mode_text, std::string* expect_text) {
  app.add_option("--variant", o->variant,
                 "Redaction-path variant: fixed or a race variant "
                 "(sigrace variants lists them)")
      ->capture_default_str();
  app.add_option("--alg", *alg_text,
                 "Signing algorithm: rs256, eddsa or both (each trial "
                 "draws one)")
      ->capture_default_str();
  app.add_option("--threads", o->threads, "Signing threads (1..64)")
      ->capture_default_str()
      ->check(CLI::Range(1, 64));
  app.add_option("--rotate-every", o->rotate_every_ms,
                 "Milliseconds between key rotations on the rotation "
                 "thread; 0 never rotates")
      ->capture_default_str();
  app.add_option("--injectors", *injectors_text,
                 "Comma-separated fault injectors: failpoint (raise SIGSEGV "
                 "at a failpoint on a signing or rotation thread), async "
                 "(signal a random signing thread at a random moment), "
                 "unrelated (SIGSEGV on a harness thread while signatures "
                 "are in flight)")
      ->capture_default_str();
  app.add_option("--failpoint", o->failpoint,
                 "Fault only at this failpoint (default: the variant's "
                 "window failpoint; for fixed, a random signing or rotation "
                 "failpoint per trial)");
  app.add_option("--mode", *mode_text,
                 "live: one worker process dumps and goes on; fatal: a "
                 "fresh process per trial really dies by the signal")
      ->capture_default_str();
  app.add_option("--trials", o->trials,
                 "Trials to run (with --duration-s: the most to run)")
      ->capture_default_str();
  app.add_option("--duration-s", o->duration_s,
                 "Run for this many seconds instead of a trial count")
      ->check(CLI::PositiveNumber);
  app.add_option("--seed", o->seed,
                 "Seed of every random choice (default: random, printed "
                 "at the start)");
  app.add_option("--trial", o->trial,
                 "Replay only this trial number of --seed");
  app.add_option("--expect", *expect_text,
                 "clean: any leak fails (exit 1); leak: no leak within the "
                 "budget fails (exit 1). Default: clean for fixed, leak for "
                 "a race variant");
  app.add_option("--min-fragment", o->min_fragment,
                 "Shortest fragment of a key form that counts, in bytes")
      ->capture_default_str()
      ->check(CLI::Range(8, 4096));
  app.add_option("--out", o->out_dir,
                 "Directory for leaking dumps and their JSON sidecars "
                 "(created when the first leak is kept)")
      ->capture_default_str();
  app.add_option("--report-json", o->report_json,
                 "Write the JSON report here (schema in stress/report.h)");
  app.add_option("--junit", o->junit,
                 "Write JUnit XML here (one test case per variant x alg x "
                 "mode)");
  app.add_flag("--keep-going", o->keep_going,
               "With --expect leak, go on after the first leak (for "
               "rates)");
  app.add_option("--max-kept", o->max_kept,
                 "Keep at most this many leaking dumps on disk (sidecars "
                 "are always written)")
      ->capture_default_str();
  app.add_option("--trial-timeout-ms", o->trial_timeout_ms,
                 "Bound on one trial's wait for its dump; reaching it is a "
                 "harness error")
      ->capture_default_str()
      ->check(CLI::Range(100, 600000));
  app.add_option("--max-delay-us", o->max_delay_us,
                 "Upper bound of the random delay before an async or "
                 "unrelated fault")
      ->capture_default_str();
  app.add_option("--rotation-share", o->rotation_share,
                 "Probability that a failpoint fault lands on the rotation "
                 "path (key generation, load, rotate) rather than a "
                 "signing thread; default: uniform over all sites of the "
                 "trial's algorithm (most are on the rotation path). Each "
                 "rotation-path fault costs a key generation")
      ->check(CLI::Range(0.0, 1.0));
  app.add_option("--key-pool", o->key_pool,
                 "Each worker generates N keys per algorithm once and every "
                 "rotation takes its key material from them in turn (a new "
                 "kid each time; the PKCS#8 encoding, wrap, load, warm-up, "
                 "swap and retire still run). Leaves RSA key generation "
                 "(0.2-1 s per key here) out of the trials. 0: a fresh key "
                 "per rotation")
      ->capture_default_str()
      ->check(CLI::Range(0, 64));
  app.add_option("--worker-bin", o->worker_bin,
                 "The sigrace binary that runs the worker processes "
                 "(default: this one; e.g. the TSan build)")
      ->group("");  // for `sigrace repro`
  app.add_flag("--no-progress{false}", o->progress,
               "No progress line on stderr (it is shown only on a "
               "terminal anyway)");
  app.add_flag("--quiet", o->quiet, "Print only the summary table");
}

Status FinishStressOptions(const std::string& injectors_text,
                           const std::string& alg_text,
                           const std::string& mode_text,
                           const std::string& expect_text,
                           bool variant_is_race, StressOptions* o) {
  StatusOr<std::vector<Injector>> inj = ParseInjectorList(injectors_text);
  if (!inj.ok()) return inj.status();
  o->injectors = *inj;
  if (alg_text == "both") {
    o->algs = {"rs256", "eddsa"};
  } else if (alg_text == "rs256" || alg_text == "eddsa") {
    o->algs = {alg_text};
  } else {
    return InvalidArgumentError("unknown --alg '" + alg_text +
                                "' (rs256, eddsa, both)");
  }
  StatusOr<Mode> mode = ParseMode(mode_text);
  if (!mode.ok()) return mode.status();
  o->mode = *mode;
  if (!o->worker_bin.empty() && access(o->worker_bin.c_str(), X_OK) != 0) {
    return InvalidArgumentError("--worker-bin '" + o->worker_bin +
                                "' is not an executable file");
  }
  if (expect_text.empty()) {
    o->expect = variant_is_race ? Expect::kLeak : Expect::kClean;
  } else if (expect_text == "clean") {
    o->expect = Expect::kClean;
    o->expect_given = true;
  } else if (expect_text == "leak") {
    o->expect = Expect::kLeak;
    o->expect_given = true;
  } else {
    return InvalidArgumentError("unknown --expect '" + expect_text +
                                "' (clean, leak)");
  }
  if (!o->failpoint.empty() &&
      std::find(o->injectors.begin(), o->injectors.end(),
                Injector::kFailpoint) == o->injectors.end()) {
    return InvalidArgumentError(
        "--failpoint needs the failpoint injector in --injectors");
  }
  if (o->trials == 0 && o->duration_s <= 0 && !o->trial) {
    return InvalidArgumentError("--trials 0 runs nothing");
  }
  if (o->duration_s > 0 && !o->trials_given) {
    o->trials = UINT64_MAX;
  }
  if (o->trial && !o->seed_given) {
    return InvalidArgumentError("--trial needs the --seed it came from");
  }
  if (!o->seed_given) o->seed = RandomSeed();
  return Status::Ok();
}

std::string ReplayCommand(const StressOptions& o, const TrialPlan& p) {
  std::string cmd = "sigrace stress --variant " + o.variant + " --alg " +
                    p.alg + " --mode " + ModeName(o.mode) + " --injectors " +
                    InjectorName(p.injector);
  if (o.threads != kDefaultThreads) {
    cmd += " --threads " + std::to_string(o.threads);
  }
  if (o.rotate_every_ms != kDefaultRotateEveryMs) {
    cmd += " --rotate-every " + std::to_string(o.rotate_every_ms);
  }
  if (!o.failpoint.empty() && p.injector == Injector::kFailpoint) {
    cmd += " --failpoint " + o.failpoint;
  }
  if (o.max_delay_us != kDefaultMaxDelayUs &&
      p.injector != Injector::kFailpoint) {
    cmd += " --max-delay-us " + std::to_string(o.max_delay_us);
  }
  if (o.rotation_share >= 0 && p.injector == Injector::kFailpoint &&
      o.failpoint.empty()) {
    char share[32];
    std::snprintf(share, sizeof(share), "%.17g", o.rotation_share);
    cmd += std::string(" --rotation-share ") + share;
  }
  if (o.key_pool != 0) {
    cmd += " --key-pool " + std::to_string(o.key_pool);
  }
  if (o.min_fragment != kDefaultMinFragment) {
    cmd += " --min-fragment " + std::to_string(o.min_fragment);
  }
  cmd += " --seed " + std::to_string(p.seed) + " --trial " +
         std::to_string(p.trial);
  return cmd;
}

uint64_t RandomSeed() {
  uint64_t seed = 0;
  if (getrandom(&seed, sizeof(seed), 0) != sizeof(seed)) {
    seed = static_cast<uint64_t>(
        std::chrono::steady_clock::now().time_since_epoch().count());
  }
  // Small enough to type back in, large enough not to collide.
  return seed % 1000000000000ULL;
}

}  // namespace sigrace::stress
