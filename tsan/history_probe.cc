// Measures what history_size TSan needs: forces a race whose first access
// lies GAP recorded memory accesses back in the first thread's history,
// and prints 1 if TSan reported it, 0 if not. TSan v3 restores the older
// access's stack from the per-thread trace; when the access has fallen out
// of the trace it drops the race silently, so too small a history_size
// makes real races vanish from the count.
//
//   tsan_history_probe GAP                    prints 1 or 0, exits 0
//   tsan_history_probe --expect-reported GAP  exits 0 iff reported
//   tsan_history_probe --sign ALG N           the gap is N real signatures
//                                             (and --rotate: N rotations)
//                                             by the Signer, prints 1 or 0
//
// Measurement (tsan/tsan.options records the result):
//   for h in 0 1 2 3 4 5 6 7; do
//     TSAN_OPTIONS=history_size=$h:exitcode=0 tsan_history_probe GAP
//   done
//
// Thread safety: a test program; the race is the point.

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <thread>
#include <vector>

#include "signer/signer.h"
#include "tsan/report_counter.h"

// External linkage and volatile: the probe's stores are never read back,
// and the race must not be optimised away.
volatile long g_probe_word;

namespace {

__attribute__((noinline)) void TEST_ProbeFirstAccess() { g_probe_word = 1; }
__attribute__((noinline)) void TEST_ProbeSecondAccess() { g_probe_word = 2; }

// GAP instrumented stores, each one event in the thread's trace. The
// buffer is thread-private, so the gap itself races with nothing.
__attribute__((noinline)) void TEST_ProbeGap(std::vector<char>* buf, long gap) {
  const size_t mask = buf->size() - 1;
  volatile char* p = buf->data();
  for (long i = 0; i < gap; ++i) {
    p[static_cast<size_t>(i) & mask] = static_cast<char>(i);
  }
}

// The gap as the harness makes it: N signatures (or rotations) on the
// thread between its racy access and the other thread's.
std::unique_ptr<sigrace::signer::Signer> g_signer;
sigrace::signer::Alg g_alg = sigrace::signer::Alg::kEdDsa;
bool g_rotate = false;

__attribute__((noinline)) void TEST_ProbeSignGap(long n) {
  sigrace::signer::Claims claims;
  for (long i = 0; i < n; ++i) {
    const bool ok = g_rotate ? g_signer->Rotate(g_alg).ok()
                             : g_signer->Sign(g_alg, claims).ok();
    if (!ok) {
      std::fprintf(stderr, "tsan_history_probe: signer failed\n");
      std::_Exit(2);
    }
  }
}

}  // namespace

int main(int argc, char** argv) {
  bool expect = false;
  bool sign = false;
  int arg = 1;
  if (argc > 3 && (std::strcmp(argv[1], "--sign") == 0 ||
                   std::strcmp(argv[1], "--rotate") == 0)) {
    sign = true;
    g_rotate = std::strcmp(argv[1], "--rotate") == 0;
    auto alg = sigrace::signer::ParseAlg(argv[2]);
    if (!alg.ok()) {
      std::fprintf(stderr, "tsan_history_probe: bad ALG\n");
      return 2;
    }
    g_alg = *alg;
    sigrace::signer::SignerOptions so;
    so.algs = {g_alg};
    auto s = sigrace::signer::Signer::Create(so);
    if (!s.ok()) {
      std::fprintf(stderr, "tsan_history_probe: %s\n",
                   s.status().ToString().c_str());
      return 2;
    }
    g_signer = std::move(s).value();
    arg = 3;
  }
  if (argc > 1 && std::strcmp(argv[1], "--expect-reported") == 0) {
    expect = true;
    arg = 2;
  }
  if (arg >= argc) {
    std::fprintf(stderr, "usage: tsan_history_probe [--expect-reported] GAP\n");
    return 2;
  }
  char* end = nullptr;
  const long gap = std::strtol(argv[arg], &end, 10);
  if (end == argv[arg] || *end != '\0' || gap < 0) {
    std::fprintf(stderr, "tsan_history_probe: bad GAP '%s'\n", argv[arg]);
    return 2;
  }
  if (!sigrace::tsan::Enabled()) {
    std::fprintf(stderr, "tsan_history_probe: tsan: not this build\n");
    return 2;
  }

  std::vector<char> buf(1 << 20);
  std::atomic<int> done{0};
  sigrace::tsan::Reset();
  std::thread first([&] {
    TEST_ProbeFirstAccess();
    if (sign) {
      TEST_ProbeSignGap(gap);
    } else {
      TEST_ProbeGap(&buf, gap);
    }
    // Relaxed: no happens-before for TSan, so the two accesses race.
    done.store(1, std::memory_order_relaxed);
  });
  while (done.load(std::memory_order_relaxed) == 0) std::this_thread::yield();
  TEST_ProbeSecondAccess();
  first.join();

  const bool reported = sigrace::tsan::RaceTouches("TEST_ProbeFirstAccess") &&
                        sigrace::tsan::RaceTouches("TEST_ProbeSecondAccess");
  if (expect) {
    std::fprintf(stderr, "tsan_history_probe: gap %ld: %s\n", gap,
                 reported ? "reported" : "NOT reported (history too small)");
    // Exit status is the verdict; TSan's own exitcode for the (expected)
    // report is bypassed so it cannot turn a miss into a pass.
    std::fflush(stderr);
    std::_Exit(reported ? 0 : 1);
  }
  std::printf("%d\n", reported ? 1 : 0);
  std::fflush(stdout);
  std::_Exit(0);
}
