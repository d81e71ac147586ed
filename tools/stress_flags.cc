#include "tools/stress_flags.h"

#include <CLI/CLI.hpp>
#include <cstdlib>
#include <string>

#include "stress/worker.h"
#include "tools/common.h"

namespace sigrace::stress {

void AddStressFlags(CLI::App& app, StressOptions* o, StressFlagText* text) {
  app.add_option("--variant", o->variant,
                 "Redaction-path variant: fixed or a race variant "
                 "(sigrace variants lists them)")
      ->capture_default_str();
  app.add_option("--alg", text->alg,
                 "Signing algorithm: rs256, eddsa or both (each trial "
                 "draws one)")
      ->capture_default_str();
  app.add_option("--threads", o->threads, "Signing threads (1..64)")
      ->capture_default_str()
      ->check(tools::UintIn(1, 64));
  app.add_option("--rotate-every", o->rotate_every_ms,
                 "Milliseconds between key rotations on the rotation "
                 "thread; 0 never rotates")
      ->capture_default_str()
      ->check(tools::UintIn(0, 86400000));
  app.add_option("--injectors", text->injectors,
                 "Comma-separated fault injectors: failpoint (raise SIGSEGV "
                 "at a failpoint on a signing or rotation thread), async "
                 "(signal a random signing thread at a random moment), "
                 "unrelated (SIGSEGV on a harness thread while signatures "
                 "are in flight), alloc (SIGSEGV at the N-th key-heap "
                 "allocation, free or failpoint evaluation of a signature "
                 "or rotation, N from the seed). async picks among the "
                 "signing threads and the rotation thread")
      ->capture_default_str();
  app.add_option("--failpoint", o->failpoint,
                 "Fault only at this failpoint (default: the variant's "
                 "window failpoint; for fixed, a random signing or rotation "
                 "failpoint per trial)");
  app.add_option("--mode", text->mode,
                 "live: one worker process dumps and goes on; fatal: a "
                 "fresh process per trial really dies by the signal")
      ->capture_default_str();
  app.add_option("--trials", o->trials,
                 "Trials to run (with --duration-s: the most to run)")
      ->capture_default_str()
      ->check(tools::UintIn(1, 1000000000));
  app.add_option("--duration-s", o->duration_s,
                 "Run for this many seconds instead of a trial count")
      ->check(tools::RealIn(0.001, 604800));
  app.add_option("--seed", o->seed,
                 "Seed of every random choice (default: random, printed "
                 "at the start)")
      ->check(tools::UintIn(0, UINT64_MAX));
  app.add_option("--trial", o->trial, "Replay only this trial number of --seed")
      ->check(tools::UintIn(0, UINT64_MAX));
  app.add_option("--repeat", o->repeat,
                 "With --trial: run that trial K times and report how many "
                 "of the runs leaked (a leak that needs another thread at "
                 "one instant may not replay every time)")
      ->capture_default_str()
      ->check(tools::UintIn(1, 1000000));
  app.add_option("--pin", text->pin,
                 "THREAD:INSTANT (rotator:37, signer-0:12): every trial "
                 "faults on that thread at that key-heap instant of its "
                 "operation, where a leak's freeze record (its sidecar's "
                 "`freeze` and `pinned_replays`) says a thread was; for a "
                 "leak that needs a thread at one instant");
  app.add_option("--expect", text->expect,
                 "clean: any leak fails (exit 1); leak: no leak within the "
                 "budget fails (exit 1). Default: clean for fixed, leak for "
                 "a race variant");
  app.add_option("--min-fragment", o->min_fragment,
                 "Shortest fragment of a key form that counts, in bytes")
      ->capture_default_str()
      ->check(tools::UintIn(8, 4096));
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
      ->capture_default_str()
      ->check(tools::UintIn(0, 1000000));
  app.add_option("--trial-timeout-ms", o->trial_timeout_ms,
                 "Bound on one trial's wait for its dump; reaching it is a "
                 "harness error")
      ->capture_default_str()
      ->check(tools::UintIn(100, 600000));
  app.add_option("--max-delay-us", o->max_delay_us,
                 "Upper bound of the random delay before an async or "
                 "unrelated fault")
      ->capture_default_str()
      ->check(tools::UintIn(0, 10000000));
  app.add_option("--rotation-share", o->rotation_share,
                 "Probability that a failpoint fault lands on the rotation "
                 "path (key generation, load, rotate) rather than a "
                 "signing thread; default: uniform over all sites of the "
                 "trial's algorithm (most are on the rotation path). Each "
                 "rotation-path fault costs a key generation")
      ->check(tools::RealIn(0.0, 1.0));
  app.add_option("--explore", text->explore,
                 "random: faults drawn per trial; systematic: trial t "
                 "faults at instant t of one signature and one rotation per "
                 "algorithm (every key-heap allocation, free and failpoint "
                 "evaluation, at most --max-instants each), and the report "
                 "counts instants visited out of instants seen")
      ->capture_default_str();
  app.add_option("--max-instants", o->max_instants,
                 "Most instants per operation the alloc injector draws "
                 "from and the systematic mode visits")
      ->capture_default_str()
      ->check(tools::UintIn(1, 100000));
  app.add_option("--widen-us", o->widen_us,
                 "Window widening: at every key-heap allocation and free "
                 "(and failpoint, with the alloc injector) a seeded short "
                 "delay of up to this many microseconds or a yield, on "
                 "every thread (not in failpoint trials); 0: off")
      ->capture_default_str()
      ->check(tools::UintIn(0, 10000));
  app.add_option("--key-pool", o->key_pool,
                 "Each worker generates N keys per algorithm once and every "
                 "rotation takes its key material from them in turn (a new "
                 "kid each time; the PKCS#8 encoding, wrap, load, warm-up, "
                 "swap and retire still run). Leaves RSA key generation "
                 "(0.2-1 s per key here) out of the trials. 0: a fresh key "
                 "per rotation")
      ->capture_default_str()
      ->check(tools::UintIn(0, 64));
  app.add_option("--key-wait-ms", o->key_wait_ms,
                 "Live mode: after a dump, wait up to this long for a "
                 "rotation in flight to finish and hand its key over; a key "
                 "still unfinished then is derived by the driver from the "
                 "worker's announcement (test builds). 0: do not wait")
      ->capture_default_str()
      ->check(tools::UintIn(0, 600000));
  app.add_flag("--no-key-derivation{false}", o->derive_keys,
               "Judge dumps without the keys a worker announced and never "
               "handed over (test-only: shows what derivation adds)")
      ->group("");
  app.add_option("--worker-serial", o->worker_serial,
                 "Worker process: its serial (internal)")
      ->group("");
  app.add_option("--worker-bin", o->worker_bin,
                 "The sigrace binary that runs the worker processes "
                 "(default: this one; e.g. the TSan build)")
      ->group("");  // for `sigrace repro`
  app.add_flag("--no-progress{false}", o->progress,
               "No progress line on stderr (it is shown only on a "
               "terminal anyway)");
  app.add_flag("--quiet", o->quiet, "Print only the summary table");
  app.add_flag("--no-cover-check{false}", o->cover_check,
               "fixed, live mode: do not run the registry's cover check "
               "(by default a cover left unwiped, a publish over data or a "
               "key write outside the cover fails the trial when it "
               "happens)");
}

void AddShardFlags(CLI::App& app, ShardFlagText* text) {
  app.add_option("--shard", text->shard,
                 "I/N: run only shard I of N (0 <= I < N): the trials t "
                 "with t mod N == I, so the N shards together are exactly "
                 "the unsharded run (combine their reports with sigrace "
                 "merge). Without it, GoogleTest's GTEST_SHARD_INDEX and "
                 "GTEST_TOTAL_SHARDS, or Kubernetes' JOB_COMPLETION_INDEX "
                 "with --shard-count or SIGRACE_SHARD_COUNT, shard the run");
  app.add_option("--shard-count", text->count,
                 "Total shards for JOB_COMPLETION_INDEX (Kubernetes Indexed "
                 "Jobs); overrides nothing, must agree with --shard")
      ->check(tools::UintIn(1, kMaxShards));
}

StatusOr<ShardSpec> FinishShardFlags(const ShardFlagText& text) {
  const EnvLookup env = [](const char* name) { return std::getenv(name); };
  StatusOr<ShardSpec> s = ResolveShard(text.shard, text.count, env);
  if (!s.ok()) return s;
  SIGRACE_RETURN_IF_ERROR(TouchShardStatusFile(env));
  return s;
}

int StressChildMain(int argc, char** argv) {
  CLI::App app{
      "Worker process of `sigrace stress` (internal; started by "
      "the driver with a control channel on fd 3)."};
  StressOptions opts;
  StressFlagText text;
  std::string dump_dir;
  AddStressFlags(app, &opts, &text);
  app.add_option("--dump-dir", dump_dir, "Fatal mode: directory for dumps");
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e) == 0 ? 0 : 2;
  }
  opts.seed_given = app.count("--seed") > 0;
  opts.trials_given = app.count("--trials") > 0;
  return RunStressWorker(std::move(opts), text, dump_dir);
}

}  // namespace sigrace::stress
