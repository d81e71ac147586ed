// Options of `sigrace stress` (and of its hidden worker, `sigrace
// stress-child`). The flags that set them are defined in
// tools/stress_flags.h; this file resolves and checks them.
//
// Thread safety: values; parse on one thread, then share read-only.
// Not async-signal-safe.

#ifndef SIGRACE_STRESS_OPTIONS_H_
#define SIGRACE_STRESS_OPTIONS_H_

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "base/status.h"
#include "stress/trial.h"

namespace sigrace::stress {

enum class Expect { kClean, kLeak };
const char* ExpectName(Expect expect);

inline constexpr uint32_t kDefaultThreads = 2;
inline constexpr uint32_t kDefaultRotateEveryMs = 1000;
inline constexpr uint32_t kDefaultMinFragment = 16;
inline constexpr uint64_t kDefaultTrials = 1000;
inline constexpr const char* kDefaultInjectors = "failpoint,async,unrelated";
// Upper bound of the async/unrelated delay. The signing threads burn both
// cores for the whole delay, so it is what a live trial costs most; a few
// RS256 signatures (about 1-2 ms each here) are enough for the fault to
// land at a random point of one.
inline constexpr uint32_t kDefaultMaxDelayUs = 4000;

struct StressOptions {
  std::string variant = "fixed";
  std::vector<std::string> algs = {"rs256", "eddsa"};  // "rs256", "eddsa"
  uint32_t threads = kDefaultThreads;
  uint32_t rotate_every_ms = kDefaultRotateEveryMs;  // 0: never rotate
  std::vector<Injector> injectors = {Injector::kFailpoint, Injector::kAsync,
                                     Injector::kUnrelated};
  // --failpoint: fault only at this site (else the variant's window site,
  // or for `fixed` a random signing/rotation site per trial).
  std::string failpoint;
  Mode mode = Mode::kLive;
  uint64_t trials = kDefaultTrials;
  double duration_s = 0;  // > 0: run until then (trials is then a cap)
  bool trials_given = false;
  uint64_t seed = 0;
  bool seed_given = false;
  std::optional<uint64_t> trial;  // replay exactly this trial
  // With `trial`: run it this many times and count how often it leaks
  // (a leak that needs another thread at one instant does not replay
  // every time).
  uint32_t repeat = 1;
  // --pin THREAD:INSTANT: every trial becomes a pinned replay (PinPlan):
  // that thread faults at that key-heap instant of its operation, where a
  // leak's freeze record says it was.
  std::string pin_thread;
  uint32_t pin_instant = 0;
  Expect expect = Expect::kClean;
  bool expect_given = false;
  uint32_t min_fragment = kDefaultMinFragment;
  std::string out_dir = "sigrace-out";
  std::string report_json;
  std::string junit;
  bool keep_going = false;  // --expect leak: go on after the first leak
  uint32_t max_kept = 20;   // leaking dumps kept on disk at most
  // A fault on the rotation path waits for an RSA-2048 key generation,
  // which takes seconds on a loaded 2-core machine.
  uint32_t trial_timeout_ms = 15000;
  uint32_t max_delay_us = kDefaultMaxDelayUs;
  double rotation_share = -1;  // see PlanInputs::rotation_share
  // Window exploration (issue 13; stress/explore.h): systematic visits
  // every instant of one signature and one rotation per algorithm.
  Explore explore = Explore::kRandom;
  uint32_t max_instants = kDefaultMaxInstants;  // 1..100000
  uint32_t widen_us = 0;                        // 0..10000; 0: off
  // Keys per algorithm each worker generates once and cycles through its
  // rotations (signer::SignerOptions::TEST_key_pool); 0: every rotation
  // generates a fresh key.
  uint32_t key_pool = 0;
  // The sigrace binary the worker processes run (default: this one).
  // `sigrace repro` runs a TSan build's worker under a regular driver, so
  // the oracle's scan of a TSan process's large dumps is not instrumented.
  std::string worker_bin;
  // `fixed` only: the worker runs the registry's cover check
  // (crashdump::SetCoverCheck, counting) and a violation (a cover left
  // unwiped, a publish over data, a key write outside the cover) fails the
  // trial at the instant the window opens, whatever the fault's timing.
  // Live mode only (a fatal worker dies before it can report).
  bool cover_check = true;
  // Live mode: after a dump the worker waits up to this long for a
  // rotation in flight to finish, so its key is handed over rather than
  // derived; 0 hands over at once (a key still being made is derived).
  uint32_t key_wait_ms = 10000;
  // The driver derives each key a worker announced and never handed over
  // (signer::TEST_DeriveKey) before it judges a dump. Test-only switch
  // (--no-key-derivation): judge without them, as before announcements.
  bool derive_keys = true;
  // Worker only: its serial (the first trial it serves), which with the
  // seed makes its key seed (WorkerKeySeed).
  uint64_t worker_serial = 0;
  bool progress = true;  // only when stderr is a terminal
  bool quiet = false;
  // Shard `shard_index` of `shard_count` (stress/shard.h): this process
  // runs the trials t < trials with t mod shard_count == shard_index.
  uint32_t shard_index = 0;
  uint32_t shard_count = 1;
  std::string shard_source;  // "", "flag", "gtest", "k8s"

  // First trial number, how many trials to run at most, and the trial
  // number of the index-th run (every run of a replay is the same trial).
  uint64_t FirstTrial() const { return TrialAt(0); }
  uint64_t TrialCount() const {
    if (trial) return repeat;
    if (trials <= shard_index) return 0;
    return (trials - shard_index + shard_count - 1) / shard_count;
  }
  uint64_t TrialAt(uint64_t index) const {
    return trial ? *trial : shard_index + index * shard_count;
  }
};

// The flags that stay text until FinishStressOptions reads them (their
// meaning depends on each other and on the variant).
struct StressFlagText {
  std::string injectors = kDefaultInjectors;
  std::string alg = "both";
  std::string mode = "live";
  std::string expect;  // "": from the variant
  std::string explore = "random";
  std::string pin;  // THREAD:INSTANT, or ""
};

// Parses the textual flags, fills defaults (a random seed, --expect from
// the variant), and checks combinations. InvalidArgument on any problem.
Status FinishStressOptions(const StressFlagText& text, bool variant_is_race,
                           StressOptions* opts);

// The one-line command that replays `plan` alone:
// "sigrace stress --variant V --alg A --mode M --injectors I ... --seed S
// --trial N". Flags that shape the trial's state (threads, rotation,
// failpoint) are added when they differ from the defaults. Under a seeded
// test regression (base/test_regression.h) the command starts with
// "SIGRACE_TEST_REGRESSION=NAME ".
std::string ReplayCommand(const StressOptions& opts, const TrialPlan& plan);

// A seed from the system's entropy source.
uint64_t RandomSeed();

}  // namespace sigrace::stress

#endif  // SIGRACE_STRESS_OPTIONS_H_
