// The canary: deliberate bugs that ThreadSanitizer MUST report and the
// report counter MUST count, with frames naming the canary functions. It is
// what keeps "zero reports" meaningful for the `fixed` suite: if the
// options, the suppressions or the counter ever blind TSan to races in our
// own code, these tests fail.
//
// Built only in the tsan preset. The process reports on purpose, so ctest
// runs it with exitcode=0 and the counter is the judge.
//
// Determinism: each race is forced, not hoped for. The first access runs on
// one thread, then a relaxed atomic store (which gives TSan no
// happens-before edge) lets the second thread make the conflicting access.
// TSan reports such a pair every time while the first access is still in
// the thread's history (tsan/tsan.options, history_size). TSan reports a
// given pair of stacks once per process, so every test races on its own
// variable from its own functions.

#include <gtest/gtest.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <thread>
#include <vector>

#include "base/mutex.h"
#include "tsan/report_counter.h"

namespace sigrace::tsan {

// Written and never read back by the tests, so the stores must not be dead
// ones the compiler may drop: external linkage.
char g_canary_buffer[64];
char g_canary_source[64];

namespace {

// Relaxed on purpose: it orders nothing for TSan, so the accesses on either
// side of it race.
void SignalRelaxed(std::atomic<int>* flag) {
  flag->store(1, std::memory_order_relaxed);
}
void WaitRelaxed(std::atomic<int>* flag) {
  while (flag->load(std::memory_order_relaxed) == 0) std::this_thread::yield();
}

// --- plain data race ---------------------------------------------------------

long g_canary_word;

__attribute__((noinline)) void TEST_CanaryRacyWrite(long v) {
  g_canary_word = v;
}
__attribute__((noinline)) long TEST_CanaryRacyRead() { return g_canary_word; }

TEST(Canary, PlainDataRaceIsReportedAndCounted) {
  Reset();
  std::atomic<int> written{0};
  std::thread writer([&] {
    TEST_CanaryRacyWrite(42);
    SignalRelaxed(&written);
  });
  WaitRelaxed(&written);
  volatile long seen = TEST_CanaryRacyRead();
  (void)seen;
  writer.join();

  const Counts c = Snapshot();
  ASSERT_TRUE(c.enabled);
  EXPECT_GE(c.of(ReportType::kDataRace), 1u);
  EXPECT_TRUE(c.Touches(ReportType::kDataRace, "TEST_CanaryRacyWrite"));
  EXPECT_TRUE(c.Touches(ReportType::kDataRace, "TEST_CanaryRacyRead"));
  EXPECT_TRUE(RaceTouches("sigrace::tsan::"));
  // Nothing else: a stray report type here means the canary itself is
  // broken, not that TSan works.
  EXPECT_EQ(c.total, c.of(ReportType::kDataRace));
}

// --- a race through an interceptor called from our code ----------------------
// The libcrypto suppression (called_from_lib) and the rejected
// ignore_noninstrumented_modules=1 both work on interceptor calls. This
// canary proves that memcpy() called from OUR code is still checked
// (ignore_noninstrumented_modules=1 makes it invisible, measured).

__attribute__((noinline)) void TEST_CanaryCopyInto() {
  std::memcpy(g_canary_buffer, g_canary_source, sizeof(g_canary_buffer));
}
__attribute__((noinline)) void TEST_CanaryPoke() { g_canary_buffer[7] = 1; }

TEST(Canary, RaceThroughInterceptedMemcpyIsReported) {
  Reset();
  std::atomic<int> copied{0};
  std::thread copier([&] {
    TEST_CanaryCopyInto();
    SignalRelaxed(&copied);
  });
  WaitRelaxed(&copied);
  TEST_CanaryPoke();
  copier.join();

  const Counts c = Snapshot();
  EXPECT_GE(c.of(ReportType::kDataRace), 1u);
  EXPECT_TRUE(c.Touches(ReportType::kDataRace, "TEST_CanaryCopyInto"));
  EXPECT_TRUE(c.Touches(ReportType::kDataRace, "TEST_CanaryPoke"));
}

// --- signal-unsafe call in a handler (report_signal_unsafe=1) ----------------

void* volatile g_canary_alloc;

__attribute__((noinline)) void TEST_CanaryUnsafeHandler(int) {
  // malloc is not async-signal-safe: exactly what the crash handler must
  // never do. volatile keeps the compiler from eliding the pair.
  g_canary_alloc = std::malloc(64);
  std::free(g_canary_alloc);
}

TEST(Canary, MallocInSynchronousSignalHandlerIsCounted) {
  Reset();
  struct sigaction sa = {};
  struct sigaction old = {};
  sa.sa_handler = TEST_CanaryUnsafeHandler;
  sigemptyset(&sa.sa_mask);
  ASSERT_EQ(sigaction(SIGSEGV, &sa, &old), 0);
  // raise() to the calling thread is delivered synchronously under TSan,
  // the same way the suite's failpoints put a crash into a window.
  ASSERT_EQ(raise(SIGSEGV), 0);
  ASSERT_EQ(sigaction(SIGSEGV, &old, nullptr), 0);

  const Counts c = Snapshot();
  EXPECT_GE(c.of(ReportType::kSignalUnsafeCall), 1u);
  EXPECT_TRUE(
      c.Touches(ReportType::kSignalUnsafeCall, "TEST_CanaryUnsafeHandler"));
  EXPECT_EQ(c.of(ReportType::kDataRace), 0u);
}

// --- errno clobbered by a handler of an asynchronous signal ------------------

std::atomic<int> g_errno_handler_ran{0};

__attribute__((noinline)) void TEST_CanaryErrnoHandler(int) {
  // close(-1) sets errno to EBADF and does not restore it.
  close(-1);
  g_errno_handler_ran.store(1, std::memory_order_release);
}

TEST(Canary, ErrnoClobberedInAsyncSignalHandlerIsCounted) {
  Reset();
  struct sigaction sa = {};
  struct sigaction old = {};
  sa.sa_handler = TEST_CanaryErrnoHandler;
  sigemptyset(&sa.sa_mask);
  ASSERT_EQ(sigaction(SIGUSR1, &sa, &old), 0);
  // Sent from another thread, so TSan treats it as asynchronous (it checks
  // errno only then) and delivers it at this thread's next interceptor.
  const pthread_t target = pthread_self();
  std::thread sender([target] { pthread_kill(target, SIGUSR1); });
  sender.join();
  // Waiting for delivery, not timing: the bound only keeps a broken build
  // from hanging.
  for (int i = 0; i < 10000 && g_errno_handler_ran.load() == 0; ++i) {
    usleep(100);
  }
  ASSERT_EQ(g_errno_handler_ran.load(), 1);
  ASSERT_EQ(sigaction(SIGUSR1, &old, nullptr), 0);

  const Counts c = Snapshot();
  EXPECT_GE(c.of(ReportType::kErrnoInSignalHandler), 1u);
}

// --- clean workloads: zero reports -------------------------------------------

TEST(Clean, SynchronisedWorkloadYieldsZeroReports) {
  Reset();
  Mutex mu;
  long total = 0;  // guarded by mu
  std::atomic<long> atomic_total{0};
  std::vector<long> slots(8, 0);
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 2000; ++i) {
        {
          MutexLock lock(&mu);
          ++total;
        }
        atomic_total.fetch_add(1, std::memory_order_relaxed);
        slots[static_cast<size_t>(t)] += i;  // thread-private slot
      }
    });
  }
  for (std::thread& t : threads) t.join();
  {
    MutexLock lock(&mu);
    EXPECT_EQ(total, 8000);
  }
  EXPECT_EQ(atomic_total.load(), 8000);

  const Counts c = Snapshot();
  EXPECT_EQ(c.total, 0u) << CountsJson();
}

// OpenSSL is not instrumented. Without the called_from_lib suppression,
// this workload (threads signing with a shared key while another thread
// swaps and frees keys) produced false data-race reports in libcrypto's
// free/memcpy/rwlock calls (14 reports in 12 runs). With the suppression it
// must be clean, while the canaries above stay red.
EVP_PKEY* GenerateEd25519() {
  EVP_PKEY_CTX* ctx = EVP_PKEY_CTX_new_id(EVP_PKEY_ED25519, nullptr);
  EVP_PKEY* key = nullptr;
  if (ctx != nullptr && EVP_PKEY_keygen_init(ctx) == 1) {
    EVP_PKEY_keygen(ctx, &key);
  }
  EVP_PKEY_CTX_free(ctx);
  return key;
}

TEST(Clean, OpenSslSharedKeyWorkloadYieldsZeroReports) {
  Reset();
  Mutex mu;
  EVP_PKEY* active = GenerateEd25519();  // guarded by mu
  ASSERT_NE(active, nullptr);
  std::atomic<int> signatures{0};
  std::vector<std::thread> signers;
  for (int t = 0; t < 3; ++t) {
    signers.emplace_back([&] {
      for (int i = 0; i < 40; ++i) {
        EVP_PKEY* key;
        {
          MutexLock lock(&mu);
          key = active;
          EVP_PKEY_up_ref(key);
        }
        EVP_MD_CTX* md = EVP_MD_CTX_new();
        unsigned char sig[64];
        size_t sig_len = sizeof(sig);
        const unsigned char msg[] = "sigrace canary";
        if (EVP_DigestSignInit(md, nullptr, nullptr, nullptr, key) == 1 &&
            EVP_DigestSign(md, sig, &sig_len, msg, sizeof(msg)) == 1) {
          signatures.fetch_add(1);
        }
        EVP_MD_CTX_free(md);
        EVP_PKEY_free(key);
      }
    });
  }
  for (int r = 0; r < 10; ++r) {
    EVP_PKEY* next = GenerateEd25519();
    ASSERT_NE(next, nullptr);
    EVP_PKEY* old;
    {
      MutexLock lock(&mu);
      old = active;
      active = next;
    }
    EVP_PKEY_free(old);
  }
  for (std::thread& t : signers) t.join();
  EVP_PKEY_free(active);
  EXPECT_EQ(signatures.load(), 120);

  const Counts c = Snapshot();
  EXPECT_EQ(c.total, 0u) << CountsJson();
}

}  // namespace
}  // namespace sigrace::tsan
