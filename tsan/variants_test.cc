// The per-variant ThreadSanitizer suite: each race variant with the crash
// put into its window, and `fixed` under a bounded stress run with
// rotation, all with the redact-on-crash handler installed in live mode.
//
// How a trial runs: signer threads sign in a loop and a rotator thread
// rotates keys, every thread on its own alternate signal stack. The
// variant's window failpoint is armed with raise(SIGSEGV): TSan defers
// asynchronous signals to the next interceptor, so only a signal raised
// synchronously on the thread that is inside the window lands there. The
// handler (live) freezes the other threads, snapshots the registry, writes
// the dump to a memfd and resumes. The report counter then says what TSan
// saw during the trial.
//
// What TSan can and cannot see here is recorded per variant in
// kExpectations and explained in tsan/README.md. global-key-scope is a data
// race (one process-wide key-allocation flag written by every thread), and
// TSan must report it with key-heap frames. The other windows are ordering
// windows of one thread against the registry (lock-free atomics) or writes
// by uninstrumented OpenSSL, and the dump reads memory with
// process_vm_readv, which TSan does not observe, so TSan has no race to
// report there; the suite asserts the zero, so a change that makes such a
// window TSan-visible (or makes `fixed` report anything) fails here and
// gets looked at. Every trial asserts that the crash really landed in the
// window, so a zero is not the zero of a trial that never faulted, and the
// dump oracle (crashdump's scanner) must find the leak in the variant's
// dump and none in `fixed`'s at the same failpoint: under TSan every
// variant is reproduced, and the data-race one is also reported.
//
// Thread safety: a test; the Signer and the handler carry their own
// contracts.

#include <gtest/gtest.h>
#include <sched.h>
#include <signal.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <string>
#include <thread>
#include <vector>

#include "base/failpoint.h"
#include "crashdump/capture/handler.h"
#include "crashdump/oracle/key_forms.h"
#include "crashdump/oracle/scanner.h"
#include "signer/signer.h"
#include "tsan/report_counter.h"

namespace sigrace::tsan {
namespace {

using signer::Alg;
using signer::Variant;
using signer::VariantInfo;

pid_t Gettid() { return static_cast<pid_t>(syscall(SYS_gettid)); }

// Frames that belong to the redaction path: the registry, the handler and
// the signer's vault and key heap.
constexpr const char* kRedactionFrames[] = {
    "sigrace::crashdump::", "Registry", "Region",  "SecretScope",
    "ProtectedPages",       "Vault",    "KeyHeap", "KeyAlloc",
};

bool TouchesRedactionPath(const Counts& c) {
  for (const char* needle : kRedactionFrames) {
    if (c.Touches(ReportType::kDataRace, needle)) return true;
  }
  return false;
}

struct TrialOptions {
  Variant variant = Variant::kFixed;
  std::vector<Alg> algs = {Alg::kRs256};
  int signer_threads = 3;
  // The rotator rotates until the trial stops, at least `min_rotations` and
  // at most `max_rotations` times (a load-path window needs a rotation after
  // its failpoint is armed).
  int min_rotations = 1;
  int max_rotations = 40;
  // Injector phases, one at a time: each is a failpoint spec
  // ("name=raise(SIGSEGV)@1#thread") armed once the previous phase's dump
  // is done. Under TSan a dump takes a while, and a crash that lands while
  // another dump runs parks and adds no dump of its own, so overlapping
  // injectors would make the dump count depend on timing.
  std::vector<std::string> phases;
  // Each phase's hit count is counted from the start of a signature, as a
  // sign-path window's is (stress/worker.cc does the same): the phase is
  // armed from its target thread ("#thread") at the start of that thread's
  // next signature, not while the thread is somewhere inside one.
  bool phases_per_signature = false;
  // Then this many live-dump requests, one at a time, at signer threads.
  int dump_requests = 0;
  // Then this many crashes, one at a time, on a thread that neither signs
  // nor rotates (raise(SIGSEGV) on itself, synchronous) while the signers
  // and the rotator go on: the stress driver's "unrelated" injector.
  int unrelated_crashes = 0;
  // Failpoints whose fire counts the result sums.
  std::vector<std::string> watch;
  // Every key load (after its KeyAllocScope opened, at load.before_unwrap)
  // waits until a signer thread has finished a whole signature, so a
  // signature's scope entry and exit land inside the load. The wait is a
  // relaxed counter, which TSan does not count as synchronisation (its own
  // tests use an "invisible barrier" for the same reason): a mutex or a
  // failpoint pause here would order the two threads and hide the race the
  // trial is forcing.
  bool load_waits_for_a_signature = false;
  // Scan the last dump with the dump oracle (crashdump's scanner, every
  // key the signer has had), as the stress driver judges a trial.
  bool scan_last_dump = false;
};

struct TrialResult {
  bool ran = false;
  uint64_t dumps = 0;   // dump attempts during the trial
  uint64_t sealed = 0;  // of which sealed
  uint64_t tokens = 0;
  uint64_t rotations = 0;
  uint64_t watch_fired = 0;  // fires of TrialOptions::watch, summed
  crashdump::DumpResult last_dump;
  double create_s = 0;  // Signer::Create, before the trial proper
  double trial_s = 0;   // threads started to threads joined
  Counts tsan;
  // scan_last_dump: what the oracle found in the last dump.
  bool scanned = false;
  uint64_t leaks = 0;        // key fragments (every leak kind)
  uint64_t not_applied = 0;  // of those, inside a record whose bytes are
                             // not the marker
  std::string leak_forms;    // "form@region" of the first few, never bytes
};

class TsanVariants : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    crashdump::HandlerOptions o;
    o.target = crashdump::DumpTarget::Memfd();
    o.fatal = false;
    o.meta = "test=tsan_variants_test\n";
    const Status st = crashdump::InstallHandler(o);
    ASSERT_TRUE(st.ok()) << st.ToString();
  }
  static void TearDownTestSuite() { crashdump::UninstallHandler(); }

  void SetUp() override {
    ASSERT_TRUE(crashdump::HandlerInstalled());
    ASSERT_TRUE(Enabled()) << "tsan: not this build";
    ASSERT_TRUE(crashdump::InstallAltStackForThisThread().ok());
    failpoint::ClearAll();
  }
  void TearDown() override { failpoint::ClearAll(); }

 public:
  static TrialResult RunTrialForTest(const TrialOptions& t) {
    return RunTrial(t);
  }

 protected:
  static TrialResult RunTrial(const TrialOptions& t) {
    using Clock = std::chrono::steady_clock;
    TrialResult res;
    signer::SignerOptions so;
    so.variant = t.variant;
    so.algs = t.algs;
    const auto t0 = Clock::now();
    auto created = signer::Signer::Create(so);
    res.create_s = std::chrono::duration<double>(Clock::now() - t0).count();
    EXPECT_TRUE(created.ok()) << created.status().ToString();
    if (!created.ok()) return res;
    std::unique_ptr<signer::Signer> s = std::move(created).value();

    const uint64_t dumps_before = crashdump::DumpAttempts();
    const uint64_t sealed_before = crashdump::DumpCount();
    // Only what happens from here on counts: Create() ran before any
    // failpoint was armed and before the baseline.
    Reset();
    // A bound on every wait below, so a broken build fails instead of
    // hanging; no assertion depends on it.
    const auto deadline = Clock::now() + std::chrono::minutes(10);
    auto wait_dumps = [&](uint64_t n) {
      while (crashdump::DumpAttempts() - dumps_before < n &&
             Clock::now() < deadline) {
        usleep(1000);
      }
      return crashdump::DumpAttempts() - dumps_before >= n;
    };

    std::atomic<uint64_t> signatures{0};
    if (t.load_waits_for_a_signature) {
      EXPECT_TRUE(
          failpoint::SetCallback("load.before_unwrap", [&] {
            const uint64_t from = signatures.load(std::memory_order_relaxed);
            // +2: the signature under way may have begun before
            // the load; the next one begins and ends inside it.
            while (signatures.load(std::memory_order_relaxed) < from + 2 &&
                   Clock::now() < deadline) {
              sched_yield();
            }
          }).ok());
      EXPECT_TRUE(
          failpoint::Configure("load.before_unwrap=callback#rotator").ok());
    }

    const auto t1 = Clock::now();
    std::atomic<bool> stop{false};
    std::atomic<int> failures{0};
    std::atomic<int> rotations_done{0};
    std::vector<std::atomic<pid_t>> tids(static_cast<size_t>(t.signer_threads));
    std::vector<std::thread> threads;
    for (int i = 0; i < t.signer_threads; ++i) {
      threads.emplace_back([&, i] {
        if (!crashdump::InstallAltStackForThisThread().ok()) {
          failures.fetch_add(1);
          return;
        }
        failpoint::SetThreadName("signer-" + std::to_string(i));
        tids[static_cast<size_t>(i)].store(Gettid());
        signer::Claims claims;
        for (size_t n = 0; !stop.load(std::memory_order_acquire); ++n) {
          auto tok = s->Sign(t.algs[n % t.algs.size()], claims);
          if (!tok.ok()) failures.fetch_add(1);
          signatures.fetch_add(1, std::memory_order_relaxed);
        }
      });
    }
    threads.emplace_back([&] {
      if (!crashdump::InstallAltStackForThisThread().ok()) {
        failures.fetch_add(1);
        return;
      }
      failpoint::SetThreadName("rotator");
      for (int r = 0;
           r < t.max_rotations &&
           (r < t.min_rotations || !stop.load(std::memory_order_acquire));
           ++r) {
        if (!s->Rotate(t.algs[static_cast<size_t>(r) % t.algs.size()]).ok()) {
          failures.fetch_add(1);
        }
        rotations_done.fetch_add(1);
      }
    });

    uint64_t expected = 0;
    for (const std::string& phase : t.phases) {
      Status st;
      if (t.phases_per_signature) {
        const size_t hash = phase.rfind('#');
        const std::string thread =
            hash == std::string::npos ? "" : phase.substr(hash);
        st = failpoint::SetCallback(
            "sign.begin", [phase] { (void)failpoint::Configure(phase); });
        if (st.ok())
          st = failpoint::Configure("sign.begin=callback@1" + thread);
      } else {
        st = failpoint::Configure(phase);
      }
      EXPECT_TRUE(st.ok()) << phase << ": " << st.ToString();
      if (!st.ok()) break;
      EXPECT_TRUE(wait_dumps(++expected)) << "no dump from phase " << phase;
    }
    // Injector: live-dump requests aimed at signer threads. TSan delivers
    // them at the target's next interceptor, not mid-instruction.
    for (int d = 0; d < t.dump_requests; ++d) {
      const size_t i = static_cast<size_t>(d % t.signer_threads);
      pid_t tid = 0;
      while ((tid = tids[i].load()) == 0 && Clock::now() < deadline) {
        usleep(1000);
      }
      EXPECT_NE(tid, 0);
      if (tid == 0) break;
      EXPECT_TRUE(crashdump::RequestLiveDump(tid).ok());
      EXPECT_TRUE(wait_dumps(++expected)) << "no dump from request " << d;
    }
    if (t.unrelated_crashes > 0) {
      std::atomic<int> go{0};
      std::thread unrelated([&] {
        if (!crashdump::InstallAltStackForThisThread().ok()) {
          failures.fetch_add(1);
          return;
        }
        failpoint::SetThreadName("unrelated");
        for (int c = 1; c <= t.unrelated_crashes; ++c) {
          while (go.load(std::memory_order_acquire) < c &&
                 Clock::now() < deadline) {
            usleep(1000);
          }
          ::raise(SIGSEGV);
        }
      });
      for (int c = 1; c <= t.unrelated_crashes; ++c) {
        go.store(c, std::memory_order_release);
        EXPECT_TRUE(wait_dumps(++expected)) << "no dump from unrelated " << c;
      }
      unrelated.join();
    }
    stop.store(true, std::memory_order_release);
    for (std::thread& th : threads) th.join();
    for (const std::string& name : t.watch) {
      res.watch_fired += failpoint::Fired(name);
    }
    failpoint::ClearAll();

    res.trial_s = std::chrono::duration<double>(Clock::now() - t1).count();
    res.last_dump = crashdump::LastDump();
    res.ran = true;
    res.dumps = crashdump::DumpAttempts() - dumps_before;
    res.sealed = crashdump::DumpCount() - sealed_before;
    const signer::SignerStats st = s->Stats();
    res.tokens = st.tokens_signed;
    res.rotations = st.rotations;
    EXPECT_EQ(failures.load(), 0);
    res.tsan = Snapshot();
    if (t.scan_last_dump) ScanLastDump(*s, &res);
    return res;
  }

  // The dump oracle on the trial's last dump (a memfd the handler keeps
  // open until its next dump). Findings carry form names, offsets and
  // regions only.
  static void ScanLastDump(const signer::Signer& s, TrialResult* res) {
    ASSERT_GE(res->last_dump.memfd, 0) << "the last dump has no memfd";
    std::vector<crashdump::KeyForms> keys;
    Status st = s.TEST_VisitKeys([&](const signer::OracleKey& k) {
      StatusOr<crashdump::KeyForms> f = crashdump::KeyForms::FromBytes(
          k.pkcs8_der, k.pkcs8_len, std::string(k.kid));
      if (!f.ok()) return f.status();
      keys.push_back(std::move(*f));
      return Status::Ok();
    });
    ASSERT_TRUE(st.ok()) << st.ToString();
    ASSERT_FALSE(keys.empty());
    StatusOr<std::unique_ptr<crashdump::Scanner>> scanner =
        crashdump::Scanner::Create(std::move(keys), crashdump::ScanOptions{});
    ASSERT_TRUE(scanner.ok()) << scanner.status().ToString();
    StatusOr<crashdump::ScanReport> scan = (*scanner)->ScanFile(
        "/proc/self/fd/" + std::to_string(res->last_dump.memfd));
    ASSERT_TRUE(scan.ok()) << scan.status().ToString();
    res->scanned = true;
    for (const crashdump::Finding& f : scan->findings) {
      if (!crashdump::IsLeak(f.kind)) continue;
      if (f.kind == crashdump::FindingKind::kRedactionNotApplied) {
        ++res->not_applied;
      }
      if (res->leaks++ < 4) {
        res->leak_forms +=
            " " + f.form + "@" + (f.region.empty() ? "(raw)" : f.region);
      }
    }
  }
};

void PrintTrial(const char* name, const TrialResult& r) {
  std::fprintf(
      stderr,
      "tsan-trial %s: create=%.2fs trial=%.2fs dumps=%llu "
      "sealed=%llu tokens=%llu rotations=%llu last_dump_bytes=%llu "
      "last_dump_ms=%.1f freeze_ms=%.1f threads=%u unfrozen=%u "
      "blocking_freeze=%u\n"
      "  oracle: scanned=%d leaks=%llu not_applied=%llu%s\n"
      "  tsan=%s\n",
      name, r.create_s, r.trial_s, static_cast<unsigned long long>(r.dumps),
      static_cast<unsigned long long>(r.sealed),
      static_cast<unsigned long long>(r.tokens),
      static_cast<unsigned long long>(r.rotations),
      static_cast<unsigned long long>(r.last_dump.size),
      static_cast<double>(r.last_dump.total_ns) / 1e6,
      static_cast<double>(r.last_dump.freeze_ns) / 1e6, r.last_dump.threads,
      r.last_dump.threads_unfrozen, r.last_dump.threads_blocking_freeze,
      r.scanned ? 1 : 0, static_cast<unsigned long long>(r.leaks),
      static_cast<unsigned long long>(r.not_applied), r.leak_forms.c_str(),
      ToJson(r.tsan, 4).c_str());
}

const VariantInfo& Info(Variant v) {
  static const std::vector<VariantInfo> all = signer::ListVariants();
  for (const VariantInfo& i : all) {
    if (i.variant == v) return i;
  }
  ADD_FAILURE() << "variant missing from the catalogue";
  return all.front();
}

// The algorithms a window trial signs with. A sign-path window's hit
// count is counted in signatures of its trigger's algorithm only
// (shallow-scope: the 12th allocation inside an Ed25519 signature, where
// the expanded key is on the stack); a load-path window needs both keys,
// heap-montgomery's and global-key-scope's being RSA ones.
std::vector<Alg> AlgsFor(const VariantInfo& info) {
  if (std::string(info.trigger) == "sign-eddsa") return {Alg::kEdDsa};
  return {Alg::kRs256, Alg::kEdDsa};
}

// What TSan reports when the crash lands in each window (measured; see the
// file comment and tsan/README.md for why none is a data race TSan sees).
struct Expectation {
  Variant variant;
  bool tsan_sees_data_race;
  const char* why;
  bool load_waits_for_a_signature = false;
};
constexpr Expectation kExpectations[] = {
    {Variant::kPublishLate, false,
     "one thread writes the key bytes, then publishes; the crash is on "
     "that same thread, and the registry is atomics"},
    {Variant::kUnpublishEarly, false,
     "one thread unpublishes (atomic store), then wipes; the dumper reads "
     "memory with process_vm_readv, which TSan does not observe"},
    {Variant::kTornUpdate, false,
     "the torn update is two relaxed atomic stores; TSan reports no race "
     "between atomics"},
    {Variant::kShallowScope, false,
     "the expanded Ed25519 key on the crashing thread's own stack; no "
     "second thread touches it"},
    {Variant::kHeapMontgomery, false,
     "OpenSSL (uninstrumented) writes the Montgomery contexts; the dump "
     "reads them by syscall; no instrumented access on either side"},
    {Variant::kGlobalKeyScope, true,
     "the process-wide key-allocation flag is written by every thread's "
     "KeyAllocScope and read by the allocation hook, with no "
     "synchronisation: a signature's scope on a signer thread races with "
     "the rotator's load",
     /*load_waits_for_a_signature=*/true},
};

// One crash, raised synchronously by the window's failpoint on the thread
// inside the window, with `run_as` (the variant itself, or `fixed`, where
// the same failpoint fires at the same instant); the dump is scanned.
TrialOptions WindowTrialOptions(const Expectation& e, Variant run_as) {
  const VariantInfo& info = Info(e.variant);
  const std::string thread =
      std::string(info.path) == "sign" ? "signer-0" : "rotator";
  TrialOptions t;
  t.variant = run_as;
  t.algs = AlgsFor(info);
  t.phases = {std::string(info.failpoint) + "=raise(SIGSEGV)@" +
              std::to_string(info.hit > 0 ? info.hit : 1) + "#" + thread};
  t.phases_per_signature = std::string(info.path) == "sign";
  t.watch = {info.failpoint};
  t.load_waits_for_a_signature = e.load_waits_for_a_signature;
  t.scan_last_dump = true;
  return t;
}

void RunWindowTrial(const Expectation& e) {
  const VariantInfo& info = Info(e.variant);
  SCOPED_TRACE(info.name);
  const TrialResult r =
      TsanVariants::RunTrialForTest(WindowTrialOptions(e, e.variant));
  ASSERT_TRUE(r.ran);
  PrintTrial(info.name, r);
  // The race reproduced in the TSan build, by the dump oracle: key
  // fragments outside every redacted range of the window's dump. (Its pair,
  // `fixed` with the same failpoints firing and no leak, is
  // TsanVariants.FixedAt<Variant>Window.)
  ASSERT_TRUE(r.scanned);
  EXPECT_GE(r.leaks, 1u) << "no leak in the window's dump";
  // The crash landed in the window (the window's failpoint raised once, on
  // the thread inside it) and the handler made one sealed dump: the counts
  // below are those of a real fault in the window, not of a quiet run.
  EXPECT_EQ(r.watch_fired, 1u);
  EXPECT_EQ(r.dumps, 1u);
  EXPECT_EQ(r.sealed, 1u);
  if (e.tsan_sees_data_race) {
    EXPECT_GE(r.tsan.of(ReportType::kDataRace), 1u);
    EXPECT_TRUE(TouchesRedactionPath(r.tsan)) << ToJson(r.tsan);
  } else {
    // TSan-blind window (see `why`): the dump oracle catches this variant,
    // TSan cannot. A data race here means the window changed shape.
    EXPECT_EQ(r.tsan.of(ReportType::kDataRace), 0u) << e.why << "\n"
                                                    << ToJson(r.tsan);
  }
  // Other report types (signal-unsafe calls in the handler, ...) are the
  // handler's, the same in every variant; TsanFixed judges them.
}

TEST_F(TsanVariants, PublishLateWindowCrash) {
  RunWindowTrial(kExpectations[0]);
}
TEST_F(TsanVariants, UnpublishEarlyWindowCrash) {
  RunWindowTrial(kExpectations[1]);
}
TEST_F(TsanVariants, TornUpdateWindowCrash) {
  RunWindowTrial(kExpectations[2]);
}
TEST_F(TsanVariants, ShallowScopeWindowCrash) {
  RunWindowTrial(kExpectations[3]);
}
TEST_F(TsanVariants, HeapMontgomeryWindowCrash) {
  RunWindowTrial(kExpectations[4]);
}
TEST_F(TsanVariants, GlobalKeyScopeWindowCrash) {
  RunWindowTrial(kExpectations[5]);
}

// `fixed` under a bounded stress run: two algorithms, rotation of both,
// every window failpoint and a sign-path failpoint raising SIGSEGV
// synchronously, a live dump request from an injector thread
// (asynchronous: TSan delivers it at the target's next interceptor), and a
// crash on an unrelated thread while signatures are in flight. Zero
// reports of any type: data races,
// signal-unsafe calls and errno clobbering in the handler, mutex misuse.
// Thread leaks are reported at exit: ctest runs this with exitcode=66, so
// one fails the test after main returns.
class TsanFixed : public TsanVariants {};

TEST_F(TsanFixed, StressWithRotationAndInjectorsHasZeroReports) {
  TrialOptions t;
  t.variant = Variant::kFixed;
  t.algs = {Alg::kRs256, Alg::kEdDsa};
  t.signer_threads = 3;
  t.min_rotations = 2;
  // One crash per injector kind, one after another: a load-path window on
  // the rotator and a sign-path window on a signer (window failpoints fire
  // in `fixed` too, at the same instants as in their variants), raised
  // synchronously, one asynchronous dump request and one unrelated crash.
  // The run is bounded by dumps, not by time: how long a dump of a TSan
  // process takes depends on where the freeze finds the other threads.
  t.phases = {
      "window.torn_update=raise(SIGSEGV)@1#rotator",
      "window.shallow_scope=raise(SIGSEGV)@12#signer-1",
  };
  t.dump_requests = 1;
  t.unrelated_crashes = 1;
  t.watch = {"window.torn_update", "window.shallow_scope"};
  const TrialResult r = RunTrial(t);
  ASSERT_TRUE(r.ran);
  PrintTrial("fixed", r);
  EXPECT_EQ(r.watch_fired, 2u);
  EXPECT_EQ(r.dumps, 4u);
  EXPECT_EQ(r.sealed, r.dumps);
  EXPECT_GE(r.rotations, 2u);
  EXPECT_GT(r.tokens, 0u);
  EXPECT_EQ(r.tsan.total, 0u) << ToJson(r.tsan);
  // TSan's background thread runs with every signal blocked: the freeze
  // gives up on it after its grace period (crashdump/handler.cc) instead of
  // waiting out the freeze timeout in every dump. handler_test covers the
  // rule in the other builds; this is where it meets the real thread.
  EXPECT_GE(r.last_dump.threads_blocking_freeze, 1u);
}

// The pair of every window trial above: `fixed`, the same failpoint
// raising in the same window (window failpoints fire in `fixed` too), and
// the oracle finds no key fragment outside the redacted ranges of the dump
// (redacted ranges hold markers, not bytes). No data race either. One
// window per process, as for the variants: a TSan process maps more with
// every Signer it creates, and its dumps grow with it.
void RunFixedWindowTrial(const Expectation& e) {
  const VariantInfo& info = Info(e.variant);
  SCOPED_TRACE(info.name);
  const TrialResult r =
      TsanVariants::RunTrialForTest(WindowTrialOptions(e, Variant::kFixed));
  ASSERT_TRUE(r.ran);
  PrintTrial((std::string("fixed at ") + info.failpoint).c_str(), r);
  EXPECT_EQ(r.watch_fired, 1u);
  EXPECT_EQ(r.sealed, 1u);
  ASSERT_TRUE(r.scanned);
  EXPECT_EQ(r.leaks, 0u) << "leaked:" << r.leak_forms;
  EXPECT_EQ(r.tsan.of(ReportType::kDataRace), 0u) << ToJson(r.tsan);
}

const Expectation& ExpectationFor(Variant v) {
  for (const Expectation& e : kExpectations) {
    if (e.variant == v) return e;
  }
  ADD_FAILURE() << "no expectation";
  return kExpectations[0];
}

TEST_F(TsanVariants, FixedAtPublishLateWindow) {
  RunFixedWindowTrial(ExpectationFor(Variant::kPublishLate));
}
TEST_F(TsanVariants, FixedAtUnpublishEarlyWindow) {
  RunFixedWindowTrial(ExpectationFor(Variant::kUnpublishEarly));
}
TEST_F(TsanVariants, FixedAtTornUpdateWindow) {
  RunFixedWindowTrial(ExpectationFor(Variant::kTornUpdate));
}
TEST_F(TsanVariants, FixedAtShallowScopeWindow) {
  RunFixedWindowTrial(ExpectationFor(Variant::kShallowScope));
}
TEST_F(TsanVariants, FixedAtHeapMontgomeryWindow) {
  RunFixedWindowTrial(ExpectationFor(Variant::kHeapMontgomery));
}
TEST_F(TsanVariants, FixedAtGlobalKeyScopeWindow) {
  RunFixedWindowTrial(ExpectationFor(Variant::kGlobalKeyScope));
}

TEST_F(TsanVariants, EveryRaceVariantHasAnExpectation) {
  for (const VariantInfo& v : signer::ListVariants()) {
    if (v.variant == Variant::kFixed) continue;
    bool found = false;
    for (const Expectation& e : kExpectations) {
      if (e.variant != v.variant) continue;
      found = true;
      // What the catalogue tells `sigrace variants` and repro is what this
      // suite asserts.
      EXPECT_EQ(e.tsan_sees_data_race, v.data_race) << v.name;
    }
    EXPECT_TRUE(found) << v.name << " has no TSan expectation";
  }
}

}  // namespace
}  // namespace sigrace::tsan
