// Tokens per second: raw OpenSSL vs the model signer with `fixed`; the
// cost of deterministic key generation (test builds) against random; and
// the cost of the registry's flight recorder (on vs off, same run).
//
// Raw: EVP_MD_CTX_new + EVP_DigestSignInit + EVP_DigestSign over a signing
// input of a token's size, with a key generated once and shared by every
// thread (as a server holds its key). Model: Signer::Sign, which also
// builds and encodes the header and payload, acquires the active key, runs
// the signature inside a SecretScope with the key heap, and scrubs.
// Target: model >= 0.95 x raw at 1 and 2 threads (compare the items/s of
// one run; the machine is shared and noisy).
//
// Run: cmake --preset bench -B /tmp/bb && ninja -C /tmp/bb signer_bench &&
//      /tmp/bb/bench/signer_bench
//
// Thread safety: each benchmark shares one key or one Signer between its
// threads, built once on first use.

#include <benchmark/benchmark.h>
#include <openssl/evp.h>
#include <time.h>

#include <cstdlib>
#include <memory>
#include <string>

#include "crashdump/registry/registry.h"
#include "signer/deterministic_keygen.h"
#include "signer/jws.h"
#include "signer/key_heap.h"
#include "signer/signer.h"

namespace sigrace::signer {
namespace {

EVP_PKEY* RawKey(Alg alg) {
  static EVP_PKEY* rsa =
      EVP_PKEY_Q_keygen(nullptr, nullptr, "RSA", size_t{2048});
  static EVP_PKEY* ed = EVP_PKEY_Q_keygen(nullptr, nullptr, "ED25519");
  return alg == Alg::kRs256 ? rsa : ed;
}

Signer* ModelSigner() {
  static Signer* s = [] {
    auto r = Signer::Create(SignerOptions{});
    if (!r.ok()) {
      fprintf(stderr, "sigrace: signer_bench: %s\n",
              r.status().ToString().c_str());
      std::_Exit(2);  // before any benchmark thread starts
    }
    return r->release();
  }();
  return s;
}

// A signing input the size of the model's tokens.
std::string TypicalInput(Alg alg) {
  Claims c;
  auto payload = jws::PayloadJson(c, 1767225600);
  return jws::SigningInput(jws::HeaderJson(alg, "eddsa-0123abcd-0"),
                           payload.ok() ? *payload : "{}");
}

void BM_Raw(benchmark::State& state, Alg alg) {
  EVP_PKEY* key = RawKey(alg);
  const std::string input = TypicalInput(alg);
  const EVP_MD* md = alg == Alg::kRs256 ? EVP_sha256() : nullptr;
  unsigned char sig[512];
  for (auto _ : state) {
    EVP_MD_CTX* ctx = EVP_MD_CTX_new();
    size_t len = sizeof(sig);
    if (EVP_DigestSignInit(ctx, nullptr, md, nullptr, key) != 1 ||
        EVP_DigestSign(ctx, sig, &len,
                       reinterpret_cast<const unsigned char*>(input.data()),
                       input.size()) != 1) {
      state.SkipWithError("EVP_DigestSign failed");
    }
    EVP_MD_CTX_free(ctx);
    benchmark::DoNotOptimize(sig);
  }
  state.SetItemsProcessed(state.iterations());
}

void BM_Fixed(benchmark::State& state, Alg alg) {
  Signer* s = ModelSigner();
  Claims c;
  for (auto _ : state) {
    auto tok = s->Sign(alg, c);
    if (!tok.ok()) state.SkipWithError(tok.status().message().c_str());
    benchmark::DoNotOptimize(tok);
  }
  state.SetItemsProcessed(state.iterations());
}

double ThreadCpuSeconds() {
  timespec ts;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) + ts.tv_nsec * 1e-9;
}

bool RawSignOnce(EVP_PKEY* key, const EVP_MD* md, const std::string& input) {
  unsigned char sig[512];
  size_t len = sizeof(sig);
  EVP_MD_CTX* ctx = EVP_MD_CTX_new();
  const bool ok =
      EVP_DigestSignInit(ctx, nullptr, md, nullptr, key) == 1 &&
      EVP_DigestSign(ctx, sig, &len,
                     reinterpret_cast<const unsigned char*>(input.data()),
                     input.size()) == 1;
  EVP_MD_CTX_free(ctx);
  benchmark::DoNotOptimize(sig);
  return ok;
}

// Raw and fixed in alternating batches on the same thread, each timed by
// the thread's own CPU clock: both see the same machine load, so their
// ratio holds on a shared, noisy machine where wall-clock rates do not.
// Counters: raw_per_s and fixed_per_s are tokens per CPU-second of one
// thread; ratio = fixed_per_s / raw_per_s.
void BM_Interleaved(benchmark::State& state, Alg alg) {
  constexpr int kBatch = 8;
  EVP_PKEY* key = RawKey(alg);
  Signer* s = ModelSigner();
  const std::string input = TypicalInput(alg);
  const EVP_MD* md = alg == Alg::kRs256 ? EVP_sha256() : nullptr;
  Claims c;
  double raw_s = 0;
  double fixed_s = 0;
  int64_t n = 0;
  for (auto _ : state) {
    double t0 = ThreadCpuSeconds();
    for (int i = 0; i < kBatch; ++i) {
      if (!RawSignOnce(key, md, input)) state.SkipWithError("raw failed");
    }
    double t1 = ThreadCpuSeconds();
    for (int i = 0; i < kBatch; ++i) {
      auto tok = s->Sign(alg, c);
      if (!tok.ok()) state.SkipWithError("fixed failed");
      benchmark::DoNotOptimize(tok);
    }
    double t2 = ThreadCpuSeconds();
    raw_s += t1 - t0;
    fixed_s += t2 - t1;
    n += kBatch;
  }
  const double raw_rate = raw_s > 0 ? n / raw_s : 0;
  const double fixed_rate = fixed_s > 0 ? n / fixed_s : 0;
  state.counters["raw_per_s"] =
      benchmark::Counter(raw_rate, benchmark::Counter::kAvgThreads);
  state.counters["fixed_per_s"] =
      benchmark::Counter(fixed_rate, benchmark::Counter::kAvgThreads);
  state.counters["ratio"] =
      benchmark::Counter(raw_rate > 0 ? fixed_rate / raw_rate : 0,
                         benchmark::Counter::kAvgThreads);
}

// The registry's flight recorder (crashdump/registry/registry.h): the
// fixed signer with the recorder on and off in alternating batches on one
// thread, each timed by the thread's CPU clock, as BM_Interleaved does.
// Counters: on_per_s, off_per_s (tokens per CPU-second), ratio = on / off
// (target: >= 0.99), events_per_token (recorder events one signature
// makes). One thread: the switch is process-wide.
void BM_FlightRecorder(benchmark::State& state, Alg alg) {
  const int batch = alg == Alg::kRs256 ? 8 : 64;
  Signer* s = ModelSigner();
  Claims c;
  double on_s = 0;
  double off_s = 0;
  int64_t n = 0;
  uint64_t events = 0;
  for (auto _ : state) {
    for (int pass = 0; pass < 2; ++pass) {
      // Alternate which half goes first, so neither always runs warm.
      const bool on = (pass == 0) == (n / batch % 2 == 0);
      crashdump::SetFlightRecorder(on);
      const uint64_t e0 = crashdump::FlightRecorderNext();
      const double t0 = ThreadCpuSeconds();
      for (int i = 0; i < batch; ++i) {
        auto tok = s->Sign(alg, c);
        if (!tok.ok()) state.SkipWithError("fixed failed");
        benchmark::DoNotOptimize(tok);
      }
      const double dt = ThreadCpuSeconds() - t0;
      if (on) {
        on_s += dt;
        events += crashdump::FlightRecorderNext() - e0;
      } else {
        off_s += dt;
      }
    }
    n += batch;
  }
  crashdump::SetFlightRecorder(true);
  const double on_rate = on_s > 0 ? n / on_s : 0;
  const double off_rate = off_s > 0 ? n / off_s : 0;
  state.counters["on_per_s"] = on_rate;
  state.counters["off_per_s"] = off_rate;
  state.counters["ratio"] = off_rate > 0 ? on_rate / off_rate : 0;
  state.counters["events_per_token"] =
      n > 0 ? static_cast<double>(events) / static_cast<double>(n) : 0;
}

// What the recorder adds to one registry transition: a SecretScope entered
// and left (two events with the recorder on, none off), in ns per pair.
// Beside BM_FlightRecorder's ratio, which the machine's noise blurs, this
// bounds the cost per token: events_per_token / 2 pairs of it.
void BM_ScopePair(benchmark::State& state, bool recorder) {
  crashdump::SetFlightRecorder(recorder);
  for (auto _ : state) {
    crashdump::SecretScope scope;
    benchmark::ClobberMemory();
  }
  crashdump::SetFlightRecorder(true);
}

// Key generation from OpenSSL's DRBG vs from a deterministic stream
// (SignerOptions::TEST_key_seed, test builds only): each iteration a new
// generation, so RSA's prime search varies as it does for random keys.
// Both inside a KeyAllocScope, as the signer generates.
void BM_Keygen(benchmark::State& state, Alg alg, bool deterministic) {
  if (deterministic && !kDeterministicKeygenBuild) {
    state.SkipWithError("deterministic keygen needs SIGRACE_ABLATION");
    return;
  }
  uint64_t generation = 0;
  for (auto _ : state) {
    KeyAllocScope alloc;
    const KeyStreamId id{0x5eed, alg, generation++};
    StatusOr<UniquePkey> k = GenerateKey(alg, deterministic ? &id : nullptr);
    if (!k.ok()) {
      state.SkipWithError(k.status().ToString().c_str());
      return;
    }
    benchmark::DoNotOptimize(k->get());
  }
}

BENCHMARK_CAPTURE(BM_Keygen, rs256_random, Alg::kRs256, false)
    ->Iterations(40)
    ->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(BM_Keygen, rs256_deterministic, Alg::kRs256, true)
    ->Iterations(40)
    ->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(BM_Keygen, eddsa_random, Alg::kEdDsa, false)
    ->Unit(benchmark::kMicrosecond);
BENCHMARK_CAPTURE(BM_Keygen, eddsa_deterministic, Alg::kEdDsa, true)
    ->Unit(benchmark::kMicrosecond);

BENCHMARK_CAPTURE(BM_Raw, rs256, Alg::kRs256)
    ->Threads(1)
    ->Threads(2)
    ->UseRealTime();
BENCHMARK_CAPTURE(BM_Fixed, rs256, Alg::kRs256)
    ->Threads(1)
    ->Threads(2)
    ->UseRealTime();
BENCHMARK_CAPTURE(BM_Raw, eddsa, Alg::kEdDsa)
    ->Threads(1)
    ->Threads(2)
    ->UseRealTime();
BENCHMARK_CAPTURE(BM_Fixed, eddsa, Alg::kEdDsa)
    ->Threads(1)
    ->Threads(2)
    ->UseRealTime();
BENCHMARK_CAPTURE(BM_Interleaved, rs256, Alg::kRs256)
    ->Threads(1)
    ->Threads(2)
    ->UseRealTime();
BENCHMARK_CAPTURE(BM_Interleaved, eddsa, Alg::kEdDsa)
    ->Threads(1)
    ->Threads(2)
    ->UseRealTime();

BENCHMARK_CAPTURE(BM_ScopePair, recorder_on, true)->Threads(1);
BENCHMARK_CAPTURE(BM_ScopePair, recorder_off, false)->Threads(1);
BENCHMARK_CAPTURE(BM_FlightRecorder, rs256, Alg::kRs256)
    ->Threads(1)
    ->MinTime(5.0)
    ->UseRealTime();
BENCHMARK_CAPTURE(BM_FlightRecorder, eddsa, Alg::kEdDsa)
    ->Threads(1)
    ->MinTime(5.0)
    ->UseRealTime();

}  // namespace
}  // namespace sigrace::signer

BENCHMARK_MAIN();
