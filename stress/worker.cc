#include "stress/worker.h"

#include <semaphore.h>
#include <signal.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <memory>
#include <nlohmann/json.hpp>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "base/failpoint.h"
#include "base/mutex.h"
#include "base/status.h"
#include "crashdump/capture/handler.h"
#include "signer/signer.h"
#include "stress/catalogue.h"
#include "stress/channel.h"
#include "stress/cover_watch.h"
#include "stress/explore.h"
#include "stress/harness_thread.h"
#include "stress/options.h"
#include "stress/trial.h"
#include "tsan/report_counter.h"

namespace sigrace::stress {
namespace {

using Clock = std::chrono::steady_clock;

// Evaluated by Signer::Sign() before anything else of a signature.
constexpr char kSignBegin[] = "sign.begin";

// The freeze record: the handler's on_dump hook runs on the dumping thread
// while every other thread is still frozen, and copies where each indexed
// thread was (lock-free loads and stores only: async-signal-safe).
ThreadPosition g_freeze_positions[kMaxExploreThreads];
std::atomic<int> g_freeze_threads{0};
std::atomic<uint64_t> g_freeze_sequence{0};
static_assert(std::atomic<uint64_t>::is_always_lock_free);

void RecordFreezePositions(const crashdump::DumpResult& result) {
  ExploreSnapshotPositions(g_freeze_positions,
                           g_freeze_threads.load(std::memory_order_relaxed));
  g_freeze_sequence.store(result.sequence, std::memory_order_release);
}

nlohmann::json TsanJson() {
  const tsan::Counts c = tsan::Snapshot();
  nlohmann::json by_type = nlohmann::json::object();
  for (int i = 0; i < tsan::kNumReportTypes; ++i) {
    if (c.by_type[i] > 0) {
      by_type[tsan::ReportTypeName(static_cast<tsan::ReportType>(i))] =
          c.by_type[i];
    }
  }
  return {{"enabled", c.enabled}, {"total", c.total}, {"by_type", by_type}};
}

class Worker {
 public:
  Worker(StressOptions opts, VariantEntry variant, std::string dump_dir)
      : opts_(std::move(opts)),
        variant_(std::move(variant)),
        dump_dir_(std::move(dump_dir)),
        channel_(kWorkerControlFd) {}

  ~Worker() { Stop(); }

  Status Setup();
  // Serves trials until 'Q' or EOF. Returns the exit code.
  int Serve();

 private:
  Status StartThreads();
  void Stop();
  void WaitForTrial();
  void SignLoop(int index);
  void RotateLoop();
  void UnrelatedLoop();
  // Sends every key the driver has not seen yet. Cheap when nothing
  // changed: the key list (public facts) is compared first.
  Status SendNewKeys();
  Status SendNewKeysLocked() REQUIRES(keys_mu_);
  // Tells the driver a key is about to be generated ('A'), so it can
  // derive the key if it is never handed over.
  void AnnounceKey(const signer::KeygenAnnouncement& a);
  // Live mode, after a dump: waits up to --key-wait-ms for a rotation in
  // flight to end. False if one is still running at the bound.
  bool WaitForRotation();
  Status RunTrial(const TrialPlan& plan);
  // Sleeps d, or less when *kick > 0 (then takes one from it). False when
  // stopping.
  bool SleepUnlessStopped(std::chrono::microseconds d,
                          std::atomic<int>* kick = nullptr);

  const StressOptions opts_;
  const VariantEntry variant_;
  const std::string dump_dir_;
  Channel channel_;

  std::unique_ptr<signer::Signer> signer_;
  std::vector<signer::Alg> algs_;
  std::vector<std::unique_ptr<HarnessThread>> signers_;
  std::unique_ptr<HarnessThread> rotator_;
  std::unique_ptr<HarnessThread> unrelated_;
  sem_t unrelated_go_;
  bool sem_ready_ = false;
  std::atomic<uint32_t> unrelated_delay_us_{0};

  std::atomic<bool> stop_{false};
  // The workload runs only while a trial is open, so the driver's scan of
  // the previous dump does not compete with it for the CPU.
  std::atomic<bool> running_{false};
  std::atomic<int> alg_index_{0};
  std::atomic<uint64_t> claims_seed_{0};
  std::atomic<uint64_t> sign_errors_{0};
  std::atomic<uint64_t> tokens_{0};
  std::atomic<uint32_t> warmed_{0};  // signing threads past their first
  std::atomic<uint64_t> rotate_errors_{0};
  // Rotations asked for now: a fault armed on the rotation path need not
  // wait for the next --rotate-every period.
  std::atomic<int> rotate_now_{0};
  // Rotations begun: an async fault on the rotation thread is timed from
  // the start of one.
  std::atomic<uint64_t> rotations_begun_{0};
  // A Rotate() call is in flight (set before the rotator rechecks
  // running_, so a trial that ended either sees it or stops it).
  std::atomic<bool> rotating_{false};

  Mutex keys_mu_;
  std::set<std::string> sent_kids_ GUARDED_BY(keys_mu_);
  size_t keys_seen_ GUARDED_BY(keys_mu_) = 0;
  uint64_t rotations_seen_ GUARDED_BY(keys_mu_) = UINT64_MAX;
};

Status Worker::Setup() {
  for (const std::string& a : opts_.algs) {
    StatusOr<signer::Alg> alg = signer::ParseAlg(a);
    if (!alg.ok()) return alg.status();
    algs_.push_back(*alg);
  }
  // The cover check watches fixed from its first key load on (a race
  // variant trips it by design; a fatal worker could not report it).
  if (opts_.cover_check && variant_.variant == signer::Variant::kFixed &&
      opts_.mode == Mode::kLive) {
    StartCoverWatch();
  }
  signer::SignerOptions so;
  so.variant = variant_.variant;
  so.algs = algs_;
  so.TEST_key_pool = opts_.key_pool;
  // Keys the driver can make itself from the same two numbers (test
  // builds; others ignore the seed and announce keys as not derivable).
  so.TEST_key_seed = WorkerKeySeed(opts_.seed, opts_.worker_serial);
  so.TEST_on_keygen_begin = [this](const signer::KeygenAnnouncement& a) {
    AnnounceKey(a);
  };
  // A fatal child dies inside the trial: a key born in a rotation that
  // faults in a load-path window must reach the driver before the load.
  if (opts_.mode == Mode::kFatal) {
    so.TEST_on_key_added = [this] { (void)SendNewKeys(); };
  }
  StatusOr<std::unique_ptr<signer::Signer>> s = signer::Signer::Create(so);
  if (!s.ok()) return s.status();
  signer_ = std::move(*s);
  // SIGRACE_FAILPOINTS in the worker's environment arms failpoints beside
  // the trial's (armed after Create: they act on the workload only). Tests
  // use it to hold a rotation inside a window (`pause`) past its dump.
  SIGRACE_RETURN_IF_ERROR(failpoint::ConfigureFromEnv());

  crashdump::HandlerOptions ho;
  ho.fatal = opts_.mode == Mode::kFatal;
  ho.target = ho.fatal ? crashdump::DumpTarget::Directory(dump_dir_)
                       : crashdump::DumpTarget::Memfd();
  g_freeze_threads.store(
      std::min<int>(static_cast<int>(opts_.threads) + 1, kMaxExploreThreads));
  ho.on_dump = &RecordFreezePositions;
  ho.meta = "variant=" + variant_.name + "\nmode=" + ModeName(opts_.mode) +
            "\nseed=" + std::to_string(opts_.seed) + "\n";
  SIGRACE_RETURN_IF_ERROR(crashdump::InstallHandler(ho));
  ExploreInstall();

  // Every key the worker holds reaches the driver before any fault.
  SIGRACE_RETURN_IF_ERROR(SendNewKeys());
  SIGRACE_RETURN_IF_ERROR(StartThreads());
  nlohmann::json hello;
  hello["pid"] = getpid();
  hello["window"] = variant_.window;
  nlohmann::json tids = nlohmann::json::array();
  for (const auto& t : signers_) tids.push_back(t->tid());
  hello["signer_tids"] = tids;
  hello["tsan"] = tsan::Enabled();
  return channel_.Send('H', hello.dump());
}

Status Worker::StartThreads() {
  if (sem_init(&unrelated_go_, 0, 0) != 0) {
    return ErrnoError("sem_init", errno);
  }
  sem_ready_ = true;
  for (uint32_t i = 0; i < opts_.threads; ++i) {
    StatusOr<std::unique_ptr<HarnessThread>> t =
        HarnessThread::Start("signer-" + std::to_string(i),
                             [this, i] { SignLoop(static_cast<int>(i)); });
    if (!t.ok()) return t.status();
    signers_.push_back(std::move(*t));
  }
  if (opts_.rotate_every_ms > 0) {
    StatusOr<std::unique_ptr<HarnessThread>> t =
        HarnessThread::Start("rotator", [this] { RotateLoop(); });
    if (!t.ok()) return t.status();
    rotator_ = std::move(*t);
  }
  StatusOr<std::unique_ptr<HarnessThread>> t = HarnessThread::Start(
      "unrelated", [this] { UnrelatedLoop(); }, kSmallStackBytes);
  if (!t.ok()) return t.status();
  unrelated_ = std::move(*t);
  // The driver needs every signing thread's tid for async faults.
  const auto deadline = Clock::now() + std::chrono::seconds(10);
  for (const auto& th : signers_) {
    while (th->tid() == 0) {
      if (Clock::now() > deadline) {
        return InternalError("signing thread did not start");
      }
      std::this_thread::sleep_for(std::chrono::microseconds(100));
    }
  }
  while (warmed_.load(std::memory_order_acquire) < signers_.size()) {
    if (Clock::now() > deadline) {
      return InternalError("signing thread did not sign its first token");
    }
    std::this_thread::sleep_for(std::chrono::microseconds(100));
  }
  return Status::Ok();
}

void Worker::Stop() {
  stop_.store(true);
  // A thread paused at a failpoint (SIGRACE_FAILPOINTS) must not hold the
  // exit.
  failpoint::ClearAll();
  // A thread between its stop_ check and its wait sees the value change.
  running_.store(true, std::memory_order_release);
  running_.notify_all();
  if (sem_ready_) sem_post(&unrelated_go_);
  for (auto& t : signers_) t->Join();
  if (rotator_) rotator_->Join();
  if (unrelated_) unrelated_->Join();
  signers_.clear();
  rotator_.reset();
  unrelated_.reset();
  if (sem_ready_) {
    sem_destroy(&unrelated_go_);
    sem_ready_ = false;
  }
  if (crashdump::HandlerInstalled()) crashdump::UninstallHandler();
}

bool Worker::SleepUnlessStopped(std::chrono::microseconds d,
                                std::atomic<int>* kick) {
  const auto end = Clock::now() + d;
  while (!stop_.load(std::memory_order_relaxed)) {
    const auto now = Clock::now();
    if (now >= end) return true;
    if (kick != nullptr && kick->load() > 0) {
      kick->fetch_sub(1);
      return true;
    }
    std::this_thread::sleep_for(std::min<Clock::duration>(
        end - now, std::chrono::microseconds(kick ? 500 : 10000)));
  }
  return false;
}

void Worker::WaitForTrial() {
  // Blocks in the kernel (futex) between trials, so idle signing threads
  // take no CPU from the driver's scan; Stop() and RunTrial() wake them.
  while (!running_.load(std::memory_order_acquire) &&
         !stop_.load(std::memory_order_relaxed)) {
    running_.wait(false, std::memory_order_acquire);
  }
}

void Worker::SignLoop(int index) {
  ExploreSetThreadIndex(index);
  uint64_t n = 0;
  bool warm = false;
  while (!stop_.load(std::memory_order_relaxed)) {
    // One signature before the first trial: a thread's first signature
    // makes allocations no later one makes (per-thread set-up), which
    // would shift a window's per-signature hit count in trial 0 only.
    if (warm) WaitForTrial();
    const signer::Alg alg =
        algs_[static_cast<size_t>(alg_index_.load(std::memory_order_relaxed)) %
              algs_.size()];
    // Varied claims: every token differs, from the trial's claims seed.
    const uint64_t r = SplitMix64(claims_seed_.load(std::memory_order_relaxed) ^
                                  (static_cast<uint64_t>(index) << 48) ^ n++);
    signer::Claims c;
    c.ttl_seconds = 60 + static_cast<int64_t>(r % 3600);
    c.extra_json = "{\"sub\":\"user-" + std::to_string(r % 100000) +
                   "\",\"scope\":\"" + ((r >> 20) % 2 ? "read" : "write") +
                   "\",\"n\":" + std::to_string(n) + "}";
    ExploreOpBegin();
    StatusOr<std::string> token = signer_->Sign(alg, c);
    ExploreOpEnd();
    if (token.ok()) {
      tokens_.fetch_add(1, std::memory_order_relaxed);
    } else {
      sign_errors_.fetch_add(1, std::memory_order_relaxed);
    }
    if (!warm) {
      warm = true;
      warmed_.fetch_add(1, std::memory_order_release);
    }
  }
}

void Worker::RotateLoop() {
  ExploreSetThreadIndex(static_cast<int>(opts_.threads));
  while (SleepUnlessStopped(std::chrono::milliseconds(opts_.rotate_every_ms),
                            &rotate_now_)) {
    // Rotate the key the trial signs with, so a fault on the load or
    // rotation path lands on the trial's algorithm.
    WaitForTrial();
    if (stop_.load()) break;
    // Dekker with RunTrial's end: it clears running_ and then waits while
    // rotating_ is set, so either it waits for this rotation or the
    // rotation does not start.
    rotating_.store(true);
    if (!running_.load()) {
      rotating_.store(false);
      continue;
    }
    const signer::Alg alg =
        algs_[static_cast<size_t>(alg_index_.load(std::memory_order_relaxed)) %
              algs_.size()];
    rotations_begun_.fetch_add(1);
    ExploreOpBegin();
    const Status rs = signer_->Rotate(alg);
    ExploreOpEnd();
    if (!rs.ok()) rotate_errors_.fetch_add(1, std::memory_order_relaxed);
    // A fatal child dies with the trial: hand every new key over as soon
    // as Rotate() returns. (A fault inside Rotate() after keygen starts
    // and before TEST_on_key_added dies before that; the driver derives
    // such a key from its announcement.)
    if (opts_.mode == Mode::kFatal) (void)SendNewKeys();
    rotating_.store(false);
  }
}

void Worker::UnrelatedLoop() {
  while (true) {
    while (sem_wait(&unrelated_go_) != 0 && errno == EINTR) {
    }
    if (stop_.load()) return;
    SleepUnlessStopped(std::chrono::microseconds(
        unrelated_delay_us_.load(std::memory_order_relaxed)));
    if (stop_.load()) return;
    // A crash on a thread that has nothing to do with signing, while the
    // signing threads are mid-signature.
    raise(SIGSEGV);
  }
}

void Worker::AnnounceKey(const signer::KeygenAnnouncement& a) {
  nlohmann::json j;
  j["kid"] = std::string(a.kid);
  j["alg"] = a.alg == signer::Alg::kRs256 ? "rs256" : "eddsa";
  j["generation"] = a.generation;
  j["stream_generation"] = a.stream_generation;
  j["derivable"] = a.derivable;
  // A lost announcement only costs the driver a key it cannot derive.
  (void)channel_.Send('A', j.dump());
}

bool Worker::WaitForRotation() {
  const auto bound =
      Clock::now() + std::chrono::milliseconds(opts_.key_wait_ms);
  while (rotating_.load()) {
    if (Clock::now() >= bound) return false;
    std::this_thread::sleep_for(std::chrono::microseconds(200));
  }
  return true;
}

Status Worker::SendNewKeys() {
  MutexLock lock(&keys_mu_);
  // Public facts first: most trials add no key, and then no thread starts.
  if (signer_->Keys().size() == keys_seen_ &&
      signer_->Stats().rotations == rotations_seen_) {
    return Status::Ok();
  }
  // The visit unwraps every key again and leaves whatever the signer leaves
  // in the registers and on the stack of the thread that runs it (seen:
  // RSA dQ/qInv/PKCS#1 fragments deep on that stack). A short-lived thread
  // on a private stack takes both with it (exit, munmap), so the oracle
  // adds no residue of its own to later dumps.
  Status result;
  StatusOr<std::unique_ptr<HarnessThread>> t = HarnessThread::Start(
      "oracle",
      [this, &result] {
        keys_mu_.AssertHeld();  // held by the caller, which joins below
        result = SendNewKeysLocked();
      },
      kHarnessStackBytes, /*private_stack=*/true);
  if (!t.ok()) return t.status();
  (*t)->Join();
  return result;
}

Status Worker::SendNewKeysLocked() {
  const signer::SignerStats stats = signer_->Stats();
  const std::vector<signer::KeyInfo> keys = signer_->Keys();
  if (keys.size() == keys_seen_ && stats.rotations == rotations_seen_) {
    return Status::Ok();
  }
  // Only the keys not sent yet are unwrapped again.
  auto want = [&](std::string_view kid) {
    keys_mu_.AssertHeld();
    return sent_kids_.count(std::string(kid)) == 0;
  };
  Status st = signer_->TEST_VisitKeys(
      [&](const signer::OracleKey& k) {
        keys_mu_.AssertHeld();  // the visit runs inside this call, under lock
        const std::string kid(k.kid);
        if (kid.size() > 0xffff) return InternalError("kid too long");
        std::string header(2, '\0');
        header[0] = static_cast<char>(kid.size() & 0xff);
        header[1] = static_cast<char>(kid.size() >> 8);
        header += kid;
        // The DER goes out straight from the signer's published oracle page:
        // no copy of it is made in this process.
        SIGRACE_RETURN_IF_ERROR(channel_.Send(
            'K', header,
            std::string_view(reinterpret_cast<const char*>(k.pkcs8_der),
                             k.pkcs8_len)));
        sent_kids_.insert(kid);
        return Status::Ok();
      },
      want);
  if (st.ok()) {
    keys_seen_ = keys.size();
    rotations_seen_ = stats.rotations;
  }
  return st;
}

Status Worker::RunTrial(const TrialPlan& plan) {
  const uint64_t trial = plan.trial;
  const bool on_rotator =
      plan.thread == "rotator" &&
      (plan.injector == Injector::kAsync || plan.injector == Injector::kAlloc);
  if ((plan.injector == Injector::kAsync ||
       plan.injector == Injector::kAlloc) &&
      (on_rotator ? rotator_ == nullptr
                  : plan.target_signer >= signers_.size())) {
    return InvalidArgumentError(
        "plan targets a signing or rotation thread that does "
        "not exist");
  }
  int alg_index = 0;
  for (size_t i = 0; i < opts_.algs.size(); ++i) {
    if (opts_.algs[i] == plan.alg) alg_index = static_cast<int>(i);
  }
  alg_index_.store(alg_index);
  claims_seed_.store(plan.claims_seed);
  std::string meta = "trial=" + std::to_string(trial) + "\nalg=" + plan.alg +
                     "\ninjector=" + InjectorName(plan.injector) + "\n";
  if (plan.injector == Injector::kFailpoint) {
    meta += "failpoint=" + plan.failpoint + "@" + std::to_string(plan.hit) +
            "#" + plan.thread + "\n";
  }
  if (plan.injector == Injector::kAlloc) {
    meta += "instant=" + plan.op + "@" + std::to_string(plan.instant) + "#" +
            plan.thread + "\n";
  }
  SIGRACE_RETURN_IF_ERROR(crashdump::SetTrialMeta(meta));
  if (plan.injector != Injector::kFailpoint &&
      (plan.widen_us != 0 || plan.injector == Injector::kAlloc)) {
    ExploreArming arm;
    if (plan.injector == Injector::kAlloc) {
      arm.target = on_rotator ? static_cast<int>(opts_.threads)
                              : static_cast<int>(plan.target_signer);
      arm.instant = plan.instant;
    }
    arm.widen_us = plan.widen_us;
    arm.widen_seed = plan.widen_seed;
    // A pinned replay counts key-heap instants only, as the freeze record
    // it came from did.
    arm.failpoints = !plan.pinned;
    SIGRACE_RETURN_IF_ERROR(ExploreArm(arm));
  }
  if (opts_.mode == Mode::kFatal) SIGRACE_RETURN_IF_ERROR(SendNewKeys());

  const uint64_t before = crashdump::DumpAttempts();
  const auto start = Clock::now();
  running_.store(true, std::memory_order_release);
  running_.notify_all();
  std::string error;
  switch (plan.injector) {
    case Injector::kFailpoint: {
      Status st;
      if (plan.per_signature) {
        // The window's hit counts evaluations inside one signature: arm it
        // from the target thread at the start of its next signature, so
        // the count starts there.
        const std::string spec = plan.FailpointSpec();
        st = failpoint::SetCallback(
            kSignBegin, [spec] { (void)failpoint::Configure(spec); });
        if (st.ok()) {
          st = failpoint::Configure(std::string(kSignBegin) + "=callback@1#" +
                                    plan.thread);
        }
      } else {
        st = failpoint::Configure(plan.FailpointSpec());
      }
      if (st.ok() && plan.thread == "rotator") {
        rotate_now_.store(static_cast<int>(plan.hit));
      }
      if (!st.ok()) error = "failpoint: " + st.message();
      break;
    }
    case Injector::kAsync: {
      if (on_rotator) {
        // Timed from the start of a rotation (key load included).
        const uint64_t begun = rotations_begun_.load();
        rotate_now_.store(1);
        const auto bound = Clock::now() + std::chrono::seconds(5);
        while (rotations_begun_.load() == begun && Clock::now() < bound) {
          std::this_thread::sleep_for(std::chrono::microseconds(50));
        }
      }
      std::this_thread::sleep_for(std::chrono::microseconds(plan.delay_us));
      const pid_t tid =
          on_rotator ? rotator_->tid() : signers_[plan.target_signer]->tid();
      if (opts_.mode == Mode::kLive) {
        Status st = crashdump::RequestLiveDump(tid);
        if (!st.ok()) error = "dump request: " + st.message();
      } else if (syscall(SYS_tgkill, getpid(), tid, SIGSEGV) != 0) {
        error = "tgkill: " + ErrnoText(errno);
      }
      break;
    }
    case Injector::kUnrelated:
      unrelated_delay_us_.store(plan.delay_us);
      sem_post(&unrelated_go_);
      break;
    case Injector::kAlloc:
      // Armed above; the target's next operation counts from its start.
      if (on_rotator) rotate_now_.store(1);
      break;
  }
  nlohmann::json r;
  r["trial"] = trial;
  r["plan"] = plan.Describe();
  if (error.empty()) {
    const auto deadline =
        start + std::chrono::milliseconds(opts_.trial_timeout_ms);
    // DumpAttempts() counts a dump when it starts; LastDump() shows it
    // once it has ended (sealed or not).
    auto pause = std::chrono::microseconds(20);
    while (crashdump::LastDump().sequence <= before &&
           Clock::now() < deadline) {
      std::this_thread::sleep_for(pause);
      // An instant beyond the rotation's wraps into the next one.
      if (plan.injector == Injector::kAlloc && on_rotator &&
          rotate_now_.load() == 0) {
        rotate_now_.store(1);
      }
      // Capped low: the signing threads run on until running_ drops.
      pause = std::min<std::chrono::microseconds>(
          pause * 2, std::chrono::microseconds(200));
    }
    if (crashdump::LastDump().sequence <= before) {
      error = "no dump within " + std::to_string(opts_.trial_timeout_ms) +
              " ms (fault never landed)";
    }
  }
  // seq_cst: the rotator's check of running_ after it sets rotating_
  // pairs with this store and WaitForRotation's load (Dekker).
  running_.store(false);
  rotate_now_.store(0);
  ExploreDisarm();
  if (plan.injector == Injector::kFailpoint) {
    if (plan.per_signature) (void)failpoint::Clear(kSignBegin);
    (void)failpoint::Clear(plan.failpoint);
  }
  if (opts_.mode == Mode::kFatal) {
    // The process dies in the handler; reaching here means it did not.
    return InternalError(error.empty() ? "fatal fault did not kill the "
                                         "worker"
                                       : error);
  }
  const crashdump::DumpResult d = crashdump::LastDump();
  const uint64_t attempts = crashdump::DumpAttempts() - before;
  r["wall_ms"] =
      std::chrono::duration<double, std::milli>(Clock::now() - start).count();
  r["attempts"] = attempts;
  r["ok"] = d.ok;
  r["sealed"] = d.sealed;
  r["stage"] = d.stage;
  r["errno"] = d.error;
  r["size"] = d.size;
  r["signal"] = d.signal;
  r["si_code"] = d.si_code;
  r["tid"] = d.tid;
  r["threads"] = d.threads;
  r["threads_unfrozen"] = d.threads_unfrozen;
  r["threads_blocking_freeze"] = d.threads_blocking_freeze;
  r["handler_ms"] = static_cast<double>(d.total_ns) / 1e6;
  r["freeze_us"] = static_cast<double>(d.freeze_ns) / 1e3;
  r["maps_ms"] = static_cast<double>(d.maps_ns) / 1e6;
  r["write_ms"] = static_cast<double>(d.write_ns) / 1e6;
  r["tokens"] = tokens_.load();
  r["sign_errors"] = sign_errors_.load();
  r["rotate_errors"] = rotate_errors_.load();
  r["tsan"] = TsanJson();
  r["cover"] = TakeCoverReport();
  if (g_freeze_sequence.load(std::memory_order_acquire) == d.sequence) {
    nlohmann::json freeze = nlohmann::json::array();
    const int n = g_freeze_threads.load(std::memory_order_relaxed);
    for (int i = 0; i < n; ++i) {
      const ThreadPosition& t = g_freeze_positions[i];
      const bool rotator = i == static_cast<int>(opts_.threads);
      freeze.push_back({{"thread", rotator ? std::string("rotator")
                                           : "signer-" + std::to_string(i)},
                        {"op", !t.in_op  ? "idle"
                               : rotator ? "rotate"
                                         : "sign"},
                        {"instant", t.instant}});
    }
    r["freeze"] = freeze;
  }
  if (error.empty() && attempts != 1) {
    error = "expected exactly one dump, got " + std::to_string(attempts);
  }
  if (error.empty() && !d.ok) {
    error = std::string("dump failed at ") + d.stage + ": " +
            (d.error != 0 ? ErrnoText(d.error) : std::string("no errno"));
  }
  r["error"] = error;
  // Keys born since the last trial (rotation) go out after the dump and
  // before its verdict, so the oracle always covers the dump it judges. A
  // rotation the dump caught mid-way finishes first (bounded), so its key
  // goes out too; one that does not finish in time was announced, and the
  // driver derives its key.
  const auto wait_start = Clock::now();
  r["rotation_unfinished"] = !WaitForRotation();
  r["key_wait_ms"] =
      std::chrono::duration<double, std::milli>(Clock::now() - wait_start)
          .count();
  const auto keys_start = Clock::now();
  SIGRACE_RETURN_IF_ERROR(SendNewKeys());
  r["keys_ms"] =
      std::chrono::duration<double, std::milli>(Clock::now() - keys_start)
          .count();
  r["post_ms"] =
      std::chrono::duration<double, std::milli>(Clock::now() - start).count() -
      r["wall_ms"].get<double>();
  return channel_.Send('R', r.dump(), {},
                       error.empty() && d.memfd >= 0 ? d.memfd : -1);
}

int Worker::Serve() {
  while (true) {
    StatusOr<Message> m = channel_.Recv(-1);
    if (!m.ok()) return m.status().code() == StatusCode::kNotFound ? 0 : 2;
    if (m->fd >= 0) close(m->fd);
    if (m->type == 'Q') return 0;
    if (m->type != 'T') {
      (void)channel_.Send('E', "unexpected control message");
      return 2;
    }
    StatusOr<TrialPlan> plan = PlanFromJson(m->payload);
    if (!plan.ok()) {
      (void)channel_.Send('E', plan.status().message());
      return 2;
    }
    Status st = RunTrial(*plan);
    if (!st.ok()) {
      (void)channel_.Send('E', st.message());
      return 2;
    }
  }
}

}  // namespace

int RunStressWorker(StressOptions opts, const StressFlagText& text,
                    const std::string& dump_dir) {
  StatusOr<VariantEntry> variant = FindVariant(opts.variant);
  Status st = variant.ok() ? FinishStressOptions(text, variant->race, &opts)
                           : variant.status();
  if (!st.ok()) {
    Channel ch(kWorkerControlFd);
    (void)ch.Send('E', st.message());
    std::fprintf(stderr, "sigrace: %s\n", st.message().c_str());
    return 2;
  }
  if (opts.mode == Mode::kFatal && dump_dir.empty()) {
    Channel ch(kWorkerControlFd);
    (void)ch.Send('E', "fatal mode needs --dump-dir");
    return 2;
  }
  Worker worker(opts, *variant, dump_dir);
  st = worker.Setup();
  if (!st.ok()) {
    Channel ch(dup(kWorkerControlFd));
    (void)ch.Send('E', "worker set-up: " + st.message());
    std::fprintf(stderr, "sigrace: worker set-up: %s\n", st.message().c_str());
    return 2;
  }
  return worker.Serve();
}

}  // namespace sigrace::stress
