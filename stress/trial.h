// The trial model of `sigrace stress`: what one trial is, and how every
// random choice of a trial derives from (seed, trial).
//
// A trial is one fault, one dump, one verdict. Its choices (algorithm,
// injector, failpoint and hit count, target thread, delays, claims) are
// drawn from a counter-based generator: value i of field f of trial t is
// SplitMix64 of a hash of (seed, t, f, i). No state carries over from one
// trial to the next, so `--seed S --trial N` replays trial N alone with the
// same choices it had inside a long run, and each field draws from its own
// stream: narrowing --injectors or --alg to the ones a trial used leaves
// every other choice of that trial unchanged (the replay command relies on
// this).
//
// Thread safety: values and pure functions; safe from any thread.
// Not async-signal-safe (std::string).

#ifndef SIGRACE_STRESS_TRIAL_H_
#define SIGRACE_STRESS_TRIAL_H_

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "base/status.h"

namespace sigrace::stress {

// SplitMix64 finaliser (Steele, Lea, Flood 2014): a bijection with good
// avalanche, used as a counter-based generator.
constexpr uint64_t SplitMix64(uint64_t x) {
  x += 0x9e3779b97f4a7c15ULL;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}

// The key seed of a worker process (signer::SignerOptions::TEST_key_seed)
// from the run's seed and the worker's serial, the first trial it serves:
// the driver derives the same keys from the same two numbers, and a fatal
// trial replayed alone (--seed S --trial N) has the keys it had in the run.
constexpr uint64_t WorkerKeySeed(uint64_t seed, uint64_t serial) {
  return SplitMix64(SplitMix64(seed ^ 0x4b45592d53454544ULL) ^
                    SplitMix64(serial + 0x5745524b45525321ULL));
}

// Independent draw streams of a trial. Never renumber: recorded seeds and
// trial numbers replay only while these stay put.
enum class Field : uint64_t {
  kAlg = 1,
  kInjector = 2,
  kFailpoint = 3,
  kHit = 4,
  kThread = 5,
  kDelay = 6,
  kClaims = 7,
  kWorkload = 8,
  kPath = 9,          // signing or rotation path (with a rotation share only)
  kAsyncThread = 10,  // async: signing threads and the rotation thread
  kOp = 11,           // alloc: signature or rotation
  kInstant = 12,      // alloc: the N-th instant of the operation
  kWiden = 13,        // seed of the window-widening delays
};

// Draws of one field of one trial. Copyable; each copy replays the same
// sequence.
class TrialRng {
 public:
  TrialRng(uint64_t seed, uint64_t trial, Field field)
      : base_(SplitMix64(SplitMix64(seed ^ 0x5349475241434521ULL) ^
                         SplitMix64(trial * 0x2545f4914f6cdd1dULL +
                                    static_cast<uint64_t>(field)))) {}
  uint64_t Next() { return SplitMix64(base_ + 0x9e3779b97f4a7c15ULL * i_++); }
  // Uniform in [0, n); n > 0. Lemire's multiply-shift, bias < n / 2^64.
  uint64_t Below(uint64_t n) {
    return static_cast<uint64_t>((static_cast<unsigned __int128>(Next()) * n) >>
                                 64);
  }
  // Uniform in [lo, hi], lo <= hi.
  uint64_t Between(uint64_t lo, uint64_t hi) { return lo + Below(hi - lo + 1); }

 private:
  uint64_t base_;
  uint64_t i_ = 0;
};

// kAlloc: SIGSEGV on the target thread at the N-th instant (key-heap
// allocation or free, or failpoint evaluation) of a signature or rotation;
// see stress/explore.h.
enum class Injector { kFailpoint, kAsync, kUnrelated, kAlloc };
// kSystematic: trial t visits instant t of the enumeration of every instant
// of one signature and one rotation per algorithm (SystematicInstant).
enum class Explore { kRandom, kSystematic };
const char* ExploreName(Explore explore);
StatusOr<Explore> ParseExplore(std::string_view name);

// The instants one operation of one algorithm was seen to have (the
// driver's census, stress/explore.h).
struct OpInstants {
  std::string alg;
  std::string op;  // "sign" or "rotate"
  uint32_t seen = 0;
};

// Largest instant count visited per operation.
inline constexpr uint32_t kDefaultMaxInstants = 2000;
enum class Mode { kLive, kFatal };

const char* InjectorName(Injector injector);
StatusOr<Injector> ParseInjector(std::string_view name);
// "failpoint,async" -> {kFailpoint, kAsync}; duplicates are an error.
StatusOr<std::vector<Injector>> ParseInjectorList(std::string_view list);
std::string InjectorListString(const std::vector<Injector>& injectors);
const char* ModeName(Mode mode);
StatusOr<Mode> ParseMode(std::string_view name);

// A failpoint the driver may fault at, and the thread that evaluates it.
struct FailpointChoice {
  std::string name;
  // Thread name filter for the spec ("signer-" + index is filled in per
  // trial when `on_signer` is set; otherwise this exact name, e.g.
  // "rotator"). Empty: any thread.
  std::string thread;
  bool on_signer = false;
  // Largest hit count drawn for it: small for rare sites (rotation).
  uint32_t max_hit = 1;
  // Non-zero: always this hit (a window's evaluation inside the window).
  uint32_t fixed_hit = 0;
  // The hit counts evaluations within one signature, so the count starts
  // at the beginning of a signature (armed from "sign.begin").
  bool per_signature = false;
  // Algorithms whose signing or load path evaluates it; empty: both.
  std::vector<std::string> algs;
};

// What the plan draws from. `algs` and `injectors` are non-empty;
// `failpoints` is non-empty when kFailpoint is among the injectors.
struct PlanInputs {
  uint64_t seed = 0;
  std::vector<std::string> algs;  // "rs256", "eddsa"
  std::vector<Injector> injectors;
  std::vector<FailpointChoice> failpoints;
  uint32_t signer_threads = 2;
  // Upper bound of the async/unrelated delay, in microseconds.
  uint32_t max_delay_us = 4000;
  // < 0: a failpoint fault picks uniformly among the sites of the trial's
  // algorithm (most are on the rotation path). In [0, 1]: it lands on the
  // rotation path (rotation thread: keygen, load, rotate) with this
  // probability, and uniformly among that path's sites. A rotation-path
  // fault costs a key generation (RSA-2048: a few hundred ms here) and a
  // new key for the oracle; long live runs lower the share to fit.
  double rotation_share = -1;
  // A rotation thread exists: async and alloc faults may target it.
  bool rotator = false;
  Explore explore = Explore::kRandom;
  // alloc: the largest instant drawn (and visited per operation).
  uint32_t max_instants = kDefaultMaxInstants;
  // Bound of each widening delay, in microseconds; 0: no widening.
  uint32_t widen_us = 0;
  // Instants per operation (needed by kSystematic; bounds kAlloc draws).
  std::vector<OpInstants> census;
};

// Instants the systematic mode visits: sum of min(seen, max_instants).
uint64_t SystematicTotal(const PlanInputs& in);

// Every choice of one trial.
struct TrialPlan {
  uint64_t seed = 0;
  uint64_t trial = 0;
  std::string alg;
  Injector injector = Injector::kFailpoint;
  // kFailpoint: the site, its hit count and thread filter.
  std::string failpoint;
  uint32_t hit = 0;
  std::string thread;          // "signer-1", "rotator", or "" (any)
  bool per_signature = false;  // see FailpointChoice
  // kAsync: the signing thread to signal. kFailpoint: the signer index
  // used for `thread` when the site is on a signing thread.
  uint32_t target_signer = 0;
  // kAsync/kUnrelated: how long after the trial starts the fault lands.
  uint32_t delay_us = 0;
  // Seeds the claims the signing threads put in tokens during the trial.
  uint64_t claims_seed = 0;
  // kAlloc: the operation ("sign" or "rotate") and its instant (1-based);
  // the target thread is `thread`. kAsync: `thread` names the target too.
  std::string op;
  uint32_t instant = 0;
  // Window widening on every thread during the trial (not with kFailpoint).
  uint32_t widen_us = 0;
  uint64_t widen_seed = 0;
  // A pinned replay (--pin): kAlloc whose instants are key-heap events
  // only, as the freeze record counts them (stress/explore.h).
  bool pinned = false;

  // "name=raise(SIGSEGV)@H#thread" for failpoint::Configure.
  std::string FailpointSpec(const char* action = "raise(SIGSEGV)") const;
  // One line for logs and failure messages (no key material, ever).
  std::string Describe() const;
};

TrialPlan PlanTrial(const PlanInputs& in, uint64_t trial);

// Makes `plan` a pinned replay: the alloc injector on `thread` ("rotator"
// or "signer-I") at key-heap instant `instant` of its operation (a
// rotation on the rotator, a signature on a signing thread). The trial's
// algorithm and claims stay as planned.
void PinPlan(const std::string& thread, uint32_t instant, TrialPlan* plan);

// Where a thread was when a dump froze it (the worker's freeze record).
struct ThreadAt {
  std::string thread;    // "signer-I" or "rotator"
  std::string op;        // "sign", "rotate", or "idle"
  uint32_t instant = 0;  // key-heap instants of that operation so far
};

// The plan as the driver sends it to its worker ("T" message): the driver
// is the one place plans are made. Parse errors are InvalidArgument.
std::string PlanToJson(const TrialPlan& plan);
StatusOr<TrialPlan> PlanFromJson(std::string_view json);

}  // namespace sigrace::stress

#endif  // SIGRACE_STRESS_TRIAL_H_
