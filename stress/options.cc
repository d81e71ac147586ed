#include "stress/options.h"

#include <sys/random.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <string>

#include "base/ablation.h"
#include "base/test_regression.h"

namespace sigrace::stress {

const char* ExpectName(Expect expect) {
  return expect == Expect::kClean ? "clean" : "leak";
}

namespace {

// "rotator:N" or "signer-I:N" (I < --threads, N >= 1; the rotator needs
// rotations).
Status ParsePin(const std::string& text, StressOptions* o) {
  const auto bad = [&](const std::string& why) {
    return InvalidArgumentError("--pin '" + text + "': " + why +
                                " (THREAD:INSTANT, THREAD rotator or "
                                "signer-I, as a leak's sidecar names it)");
  };
  const size_t colon = text.rfind(':');
  if (colon == std::string::npos) return bad("no ':'");
  const std::string thread = text.substr(0, colon);
  const std::string n = text.substr(colon + 1);
  const auto digits = [](const std::string& d) {
    return !d.empty() && d.size() <= 9 &&
           d.find_first_not_of("0123456789") == std::string::npos;
  };
  if (!digits(n) || std::stoul(n) == 0)
    return bad("instant must be 1..999999999");
  if (thread == "rotator") {
    if (o->rotate_every_ms == 0)
      return bad("no rotation thread (--rotate-every 0)");
  } else if (thread.rfind("signer-", 0) == 0 && digits(thread.substr(7))) {
    if (std::stoul(thread.substr(7)) >= o->threads) {
      return bad("no such signing thread with --threads " +
                 std::to_string(o->threads));
    }
  } else {
    return bad("unknown thread");
  }
  o->pin_thread = thread;
  o->pin_instant = static_cast<uint32_t>(std::stoul(n));
  return Status::Ok();
}

}  // namespace

Status FinishStressOptions(const StressFlagText& text, bool variant_is_race,
                           StressOptions* o) {
  const std::string& injectors_text = text.injectors;
  const std::string& alg_text = text.alg;
  const std::string& mode_text = text.mode;
  const std::string& expect_text = text.expect;
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
  if (o->repeat != 1 && !o->trial) {
    return InvalidArgumentError(
        "--repeat needs --trial (it re-runs one trial)");
  }
  if (o->repeat == 0 || o->repeat > 100000) {
    return InvalidArgumentError("--repeat must be in 1..100000");
  }
  if (!text.pin.empty()) {
    SIGRACE_RETURN_IF_ERROR(ParsePin(text.pin, o));
  }
  StatusOr<Explore> explore = ParseExplore(text.explore);
  if (!explore.ok()) return explore.status();
  o->explore = *explore;
  if (o->max_instants == 0 || o->max_instants > 100000) {
    return InvalidArgumentError("--max-instants must be in 1..100000");
  }
  if (o->widen_us > 10000) {
    return InvalidArgumentError("--widen-us must be in 0..10000");
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
  if (o.explore != Explore::kRandom) {
    cmd += std::string(" --explore ") + ExploreName(o.explore);
  }
  if (o.max_instants != kDefaultMaxInstants && p.injector == Injector::kAlloc) {
    cmd += " --max-instants " + std::to_string(o.max_instants);
  }
  if (p.widen_us != 0) cmd += " --widen-us " + std::to_string(p.widen_us);
  if (o.key_pool != 0) {
    cmd += " --key-pool " + std::to_string(o.key_pool);
  }
  if (o.min_fragment != kDefaultMinFragment) {
    cmd += " --min-fragment " + std::to_string(o.min_fragment);
  }
  cmd += " --seed " + std::to_string(p.seed) + " --trial " +
         std::to_string(p.trial);
  if (p.pinned) {
    cmd += " --pin " + p.thread + ":" + std::to_string(p.instant);
  }
  // A trial found under a seeded test regression replays only with it.
  const std::string regression = TestRegressionSpec();
  if (!regression.empty()) {
    cmd = "SIGRACE_TEST_REGRESSION=" + regression + " " + cmd;
  }
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
