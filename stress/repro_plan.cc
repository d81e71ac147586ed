#include "stress/repro_plan.h"

#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <climits>
#include <cstdlib>
#include <utility>

#include "base/files.h"
#include "stress/catalogue.h"
#include "stress/repro_verdict.h"
#include "stress/shard.h"

namespace sigrace::stress {
namespace {

// --rotation-share and --key-pool of fixed's live rows (see
// AddFixedLiveJobs).
constexpr char kRs256RotationShare[] = "0.25";
constexpr char kEddsaRotationShare[] = "0.25";
constexpr char kFixedLiveKeyPool[] = "2";
constexpr uint64_t kFixedLiveParts = 2;
// fixed's TSan rows run at this niceness: they take the CPU the other
// rows leave, not theirs.
constexpr int kTsanFixedNice = 19;

// What one job adds to the arguments every job shares.
struct JobRequest {
  JobKind kind;
  std::string variant, alg, mode;
  std::vector<std::string> args;
  double cap_s = 0;
  bool cap_is_rest = false;
  int nice = 0;
  std::string binary;
  std::string seed;        // "": the run's seed
  std::string tag_suffix;  // tells a row's parts apart
  // fixed's rows: run only this process's shard of their trials
  // (ReproOptions::shard_count). Race rows stop at their first leak and
  // run whole in every shard.
  bool sharded = false;
};

class Planner {
 public:
  Planner(const ReproOptions& o, const std::string& self,
          const std::string& tsan, const std::string& logs)
      : o_(o), self_(self), tsan_(tsan), logs_(logs) {}

  ReproPlan Plan(const std::vector<VariantEntry>& variants);

 private:
  int AddJob(JobRequest req);
  void AddRaceRows(const VariantEntry& v);
  void AddFixedRows(const VariantEntry& v, std::vector<size_t>* live_rows);
  void AddTsanJobs();
  void AddFixedLiveJobs(size_t row);
  void Order();

  const ReproOptions& o_;
  const std::string self_, tsan_, logs_;
  ReproPlan plan_;
};

int Planner::AddJob(JobRequest req) {
  JobSpec j;
  j.kind = req.kind;
  j.variant = req.variant;
  j.alg = req.alg;
  j.mode = req.mode;
  j.binary = req.binary;
  const std::string tag = req.variant + "-" + req.alg + "-" + req.mode +
                          (req.kind == JobKind::kTsan ? "-tsan" : "") +
                          req.tag_suffix;
  j.report_path = logs_ + "/" + tag + ".json";
  j.log_path = logs_ + "/" + tag + ".log";
  j.args = {
      "--variant",     req.variant,
      "--alg",         req.alg,
      "--mode",        req.mode,
      "--seed",        req.seed.empty() ? std::to_string(o_.seed) : req.seed,
      "--threads",     std::to_string(o_.threads),
      "--out",         o_.out_dir,
      "--report-json", j.report_path,
      "--quiet",       "--no-progress"};
  j.args.insert(j.args.end(), req.args.begin(), req.args.end());
  if (req.sharded && o_.shard_count > 1) {
    j.args.push_back("--shard");
    j.args.push_back(std::to_string(o_.shard_index) + "/" +
                     std::to_string(o_.shard_count));
  }
  j.cap_s = req.cap_s;
  j.cap_is_rest = req.cap_is_rest;
  j.nice = req.nice;
  plan_.jobs.push_back(std::move(j));
  return static_cast<int>(plan_.jobs.size()) - 1;
}

void Planner::AddRaceRows(const VariantEntry& v) {
  for (const std::string& a : o_.algs) {
    for (const char* mode : {"live", "fatal"}) {
      RowSpec r;
      r.variant = v.name;
      r.alg = a;
      r.mode = mode;
      r.race = true;
      r.data_race = v.data_race;
      r.window = v.window;
      if (std::find(v.algs.begin(), v.algs.end(), a) == v.algs.end()) {
        // The window is on the other algorithm's path: nothing to run.
        r.na = true;
        plan_.rows.push_back(r);
        continue;
      }
      const bool live = r.mode == "live";
      r.job = AddJob(
          {.kind = live ? JobKind::kRaceLive : JobKind::kRaceFatal,
           .variant = v.name,
           .alg = a,
           .mode = mode,
           .args = {"--injectors", "failpoint", "--expect", "leak", "--trials",
                    std::to_string(live ? o_.race_live_trials
                                        : o_.race_fatal_trials)},
           .cap_s = live ? 30.0 : 40.0,
           .binary = self_});
      plan_.rows.push_back(r);
    }
  }
}

// fixed's injector mix (issue 13): the default mix plus `alloc`.
constexpr char kFixedInjectors[] = "failpoint,async,unrelated,alloc";
void Planner::AddFixedRows(const VariantEntry& v,
                           std::vector<size_t>* live_rows) {
  for (const std::string& a : o_.algs) {
    RowSpec r;
    r.variant = v.name;
    r.alg = a;
    r.mode = "fatal";
    // A fatal RS256 trial is a fresh process with its own RSA keygen
    // (0.5-1.5 s here), and a fault on the rotation path would pay a
    // second one: with --key-pool 1 the rotation re-runs encode, wrap,
    // load, warm-up, swap and retire on the first key's material under a
    // new kid (measured: 2.5 -> 3.8 fatal RS256 trials/s).
    r.job = AddJob(
        {.kind = JobKind::kFixedFatal,
         .variant = v.name,
         .alg = a,
         .mode = "fatal",
         .args = {"--expect", "clean", "--trials", std::to_string(o_.min_fatal),
                  "--key-pool", "1", "--injectors", kFixedInjectors},
         .cap_s = std::max(20.0, o_.budget_s * 0.6),
         .binary = self_,
         .sharded = true});
    plan_.rows.push_back(r);
    r.job = -1;
    r.mode = "live";
    live_rows->push_back(plan_.rows.size());
    plan_.rows.push_back(r);
  }
}

void Planner::AddTsanJobs() {
  for (RowSpec& r : plan_.rows) {
    if (r.mode != "live" || r.na) continue;
    // The TSan build runs the worker (signer, handler, workload: what
    // TSan checks); this build's driver scans its dumps uninstrumented.
    // A TSan process's dump is over a GB (the runtime's reserved regions,
    // mostly holes); the table gets the counts, the log the regions, and
    // the dump itself is left out.
    const std::vector<std::string> common = {
        "--keep-going", "--trial-timeout-ms", "30000", "--worker-bin",
        tsan_,          "--max-kept",         "0"};
    JobRequest req{.kind = JobKind::kTsan,
                   .variant = r.variant,
                   .alg = r.alg,
                   .mode = "live",
                   .binary = self_};
    if (r.race) {
      req.args = {"--injectors", "failpoint",
                  "--expect",    "leak",
                  "--trials",    std::to_string(o_.tsan_race_trials)};
      req.cap_s = 40.0;
    } else {
      // fixed under TSan gets the weight of its live rows: every injector
      // (async on the rotation thread too, alloc instants inside OpenSSL),
      // the rotation share and key pool of the live rows, the cover check
      // (on by default for fixed live workers), and the budget's slack:
      // it runs niced to the end of the budget, at least
      // tsan_fixed_trials trials (fewer is SHORT), at most tsan_fixed_max.
      req.args = {
          "--injectors",
          kFixedInjectors,
          "--rotation-share",
          r.alg == "rs256" ? kRs256RotationShare : kEddsaRotationShare,
          "--key-pool",
          kFixedLiveKeyPool,
          "--expect",
          "clean",
          "--trials",
          std::to_string(std::max(o_.tsan_fixed_max, o_.tsan_fixed_trials))};
      req.cap_is_rest = true;
      req.nice = kTsanFixedNice;
      req.sharded = true;
    }
    req.args.insert(req.args.end(), common.begin(), common.end());
    r.tsan_job = AddJob(std::move(req));
  }
}

void Planner::AddFixedLiveJobs(size_t row) {
  RowSpec& r = plan_.rows[row];
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
  const char* share =
      r.alg == "rs256" ? kRs256RotationShare : kEddsaRotationShare;
  // Two workers per row, each with half the trials and its own seed
  // (seed, seed + 1): a trial waits on its random fault delay and on the
  // driver's scan, so one worker leaves a core partly idle.
  for (uint64_t part = 0; part < kFixedLiveParts; ++part) {
    const uint64_t n =
        (o_.min_live + kFixedLiveParts - 1 - part) / kFixedLiveParts;
    const int j =
        AddJob({.kind = JobKind::kFixedLive,
                .variant = r.variant,
                .alg = r.alg,
                .mode = "live",
                // Issue 13: async faults on the rotation thread too, and faults
                // at the N-th key-heap instant of a signature or rotation, so a
                // window no failpoint names is reached. No widening here: its
                // delays cost about a quarter of the rows' trials within the
                // default budget on 2 loaded cores (measured).
                .args = {"--expect", "clean", "--trials", std::to_string(n),
                         "--rotation-share", share, "--key-pool",
                         kFixedLiveKeyPool, "--injectors", kFixedInjectors},
                .cap_s = 0,
                .cap_is_rest = true,
                .binary = self_,
                .seed = std::to_string(o_.seed + part),
                .tag_suffix = part == 0 ? "" : "-" + std::to_string(part + 1),
                .sharded = true});
    if (part == 0) {
      r.job = j;
    } else {
      r.more_jobs.push_back(j);
    }
  }
}

void Planner::Order() {
  std::vector<size_t>& order = plan_.order;
  // fixed's live rows and the niced background rows start at once; then
  // fixed's fatal rows, then the rest in plan order.
  auto background = [this](size_t i) {
    return plan_.jobs[i].kind == JobKind::kFixedLive || plan_.jobs[i].nice > 0;
  };
  for (size_t i = 0; i < plan_.jobs.size(); ++i) {
    if (background(i)) order.push_back(i);
  }
  for (size_t i = 0; i < plan_.jobs.size(); ++i) {
    if (plan_.jobs[i].kind == JobKind::kFixedFatal) order.push_back(i);
  }
  for (size_t i = 0; i < plan_.jobs.size(); ++i) {
    if (!background(i) && plan_.jobs[i].kind != JobKind::kFixedFatal) {
      order.push_back(i);
    }
  }
}

ReproPlan Planner::Plan(const std::vector<VariantEntry>& variants) {
  // Planned in this order: the race rows, fixed's fatal rows, the TSan
  // jobs, and last fixed's live jobs (Order() sets the order they start
  // in).
  for (const VariantEntry& v : variants) {
    if (v.race) AddRaceRows(v);
  }
  std::vector<size_t> fixed_live_rows;
  for (const VariantEntry& v : variants) {
    if (!v.race) AddFixedRows(v, &fixed_live_rows);
  }
  if (!tsan_.empty()) AddTsanJobs();
  for (size_t row : fixed_live_rows) AddFixedLiveJobs(row);
  Order();
  return std::move(plan_);
}

}  // namespace

StatusOr<std::vector<VariantEntry>> SelectVariants(
    const std::vector<std::string>& names) {
  if (names.empty()) return Catalogue();
  std::vector<VariantEntry> out;
  for (const std::string& v : names) {
    StatusOr<VariantEntry> e = FindVariant(v);
    if (!e.ok()) return e.status();
    out.push_back(*e);
  }
  return out;
}

StatusOr<std::string> FindTsanBinary(const std::string& tsan_bin,
                                     const std::string& self) {
  if (tsan_bin == "none") return std::string();
  const bool given = tsan_bin != "auto";
  const std::string p =
      given ? tsan_bin : Dirname(self) + "/../../tsan/tools/sigrace";
  const auto refuse = [&](const std::string& why) -> StatusOr<std::string> {
    if (!given) return std::string();
    return InvalidArgumentError("--tsan-bin " + p + ": " + why +
                                " (give the TSan build of sigrace, auto or "
                                "none)");
  };
  char real[PATH_MAX];
  if (realpath(p.c_str(), real) == nullptr) return refuse(ErrnoText(errno));
  struct stat st;
  if (stat(real, &st) != 0) return refuse(ErrnoText(errno));
  if (!S_ISREG(st.st_mode)) return refuse("not a regular file");
  if (access(real, X_OK) != 0) return refuse("not executable");
  return std::string(real);
}

ReproPlan PlanRepro(const ReproOptions& options,
                    const std::vector<VariantEntry>& variants,
                    const std::string& self, const std::string& tsan,
                    const std::string& logs_dir) {
  return Planner(options, self, tsan, logs_dir).Plan(variants);
}

VerdictLimits ShardLimits(const ReproOptions& o, bool tsan_present) {
  const auto share = [&](uint64_t n) {
    return ShardTrialCount(n, o.shard_index, o.shard_count);
  };
  uint64_t live = 0;
  for (uint64_t part = 0; part < kFixedLiveParts; ++part) {
    live += share((o.min_live + kFixedLiveParts - 1 - part) / kFixedLiveParts);
  }
  return {.min_live = live,
          .min_fatal = share(o.min_fatal),
          .min_tsan_fixed = share(o.tsan_fixed_trials),
          .tsan_present = tsan_present};
}

}  // namespace sigrace::stress
