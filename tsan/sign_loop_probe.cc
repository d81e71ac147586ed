// Measures the ThreadSanitizer slowdown of the signing loop: the same
// binary built in the default and the tsan preset signs for a fixed number
// of tokens on T threads while one thread rotates, and prints one JSON line
// with the throughput. Compare the two lines; the ratio is the slowdown.
//
//   tsan_sign_loop_probe [--alg rs256|eddsa] [--threads T] [--tokens N]
//                        [--rotations R]
//
// Thread safety: a measurement program; the Signer is thread-safe.

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include "signer/signer.h"
#include "tsan/report_counter.h"

namespace {

int Usage() {
  std::fprintf(stderr,
               "usage: tsan_sign_loop_probe [--alg rs256|eddsa] "
               "[--threads T] [--tokens N] [--rotations R]\n");
  return 2;
}

bool ParseCount(const char* s, long max, long* out) {
  char* end = nullptr;
  const long v = std::strtol(s, &end, 10);
  if (end == s || *end != '\0' || v < 0 || v > max) return false;
  *out = v;
  return true;
}

}  // namespace

int main(int argc, char** argv) {
  using sigrace::signer::Alg;
  std::string alg_name = "eddsa";
  long threads = 2, tokens = 2000, rotations = 1;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (i + 1 >= argc) return Usage();
    const char* v = argv[++i];
    if (a == "--alg") {
      alg_name = v;
    } else if (a == "--threads") {
      if (!ParseCount(v, 64, &threads) || threads == 0) return Usage();
    } else if (a == "--tokens") {
      if (!ParseCount(v, 100000000, &tokens)) return Usage();
    } else if (a == "--rotations") {
      if (!ParseCount(v, 1000, &rotations)) return Usage();
    } else {
      return Usage();
    }
  }
  auto alg = sigrace::signer::ParseAlg(alg_name);
  if (!alg.ok()) {
    std::fprintf(stderr, "sigrace: %s\n", alg.status().ToString().c_str());
    return 2;
  }
  sigrace::signer::SignerOptions so;
  so.algs = {*alg};
  auto s = sigrace::signer::Signer::Create(so);
  if (!s.ok()) {
    std::fprintf(stderr, "sigrace: %s\n", s.status().ToString().c_str());
    return 2;
  }
  sigrace::signer::Signer* signer = s->get();

  const long per_thread = tokens / threads;
  std::vector<std::thread> workers;
  std::atomic<long> failures{0};
  const auto t0 = std::chrono::steady_clock::now();
  for (long t = 0; t < threads; ++t) {
    workers.emplace_back([&] {
      sigrace::signer::Claims claims;
      for (long n = 0; n < per_thread; ++n) {
        if (!signer->Sign(*alg, claims).ok()) failures.fetch_add(1);
      }
    });
  }
  std::thread rotator([&] {
    for (long r = 0; r < rotations; ++r) {
      if (!signer->Rotate(*alg).ok()) failures.fetch_add(1);
    }
  });
  for (std::thread& w : workers) w.join();
  rotator.join();
  const double secs =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - t0)
          .count();
  const long signed_tokens = per_thread * threads;
  std::printf(
      "{\"build\":\"%s\",\"alg\":\"%s\",\"threads\":%ld,\"tokens\":%ld,"
      "\"rotations\":%ld,\"seconds\":%.3f,\"tokens_per_second\":%.1f,"
      "\"failures\":%ld,\"tsan_reports\":%llu}\n",
      sigrace::tsan::Enabled() ? "tsan" : "default", alg_name.c_str(), threads,
      signed_tokens, rotations, secs,
      secs > 0 ? static_cast<double>(signed_tokens) / secs : 0.0,
      failures.load(),
      static_cast<unsigned long long>(sigrace::tsan::TotalSinceReset()));
  return failures.load() == 0 ? 0 : 1;
}
