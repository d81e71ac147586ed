// Costs the stress driver adds per trial, next to the dump and the scan:
// deriving a trial's plan from (seed, trial), and one control-channel
// round trip with a payload the size of an RSA-2048 PKCS#8 key record
// (random bytes here, never a key).

#include <benchmark/benchmark.h>
#include <unistd.h>

#include <string>

#include "stress/channel.h"
#include "stress/trial.h"

namespace sigrace::stress {
namespace {

void BM_PlanTrial(benchmark::State& state) {
  PlanInputs in;
  in.seed = 1;
  in.algs = {"rs256", "eddsa"};
  in.injectors = {Injector::kFailpoint, Injector::kAsync, Injector::kUnrelated};
  for (int i = 0; i < 24; ++i) {
    FailpointChoice c;
    c.name = "site." + std::to_string(i);
    c.on_signer = i % 2 == 0;
    c.thread = c.on_signer ? "" : "rotator";
    c.max_hit = 16;
    in.failpoints.push_back(c);
  }
  uint64_t t = 0;
  for (auto _ : state) {
    TrialPlan p = PlanTrial(in, t++);
    benchmark::DoNotOptimize(p);
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_PlanTrial);

void BM_ChannelRoundTrip(benchmark::State& state) {
  int a, b;
  if (!MakeChannelPair(&a, &b).ok()) {
    state.SkipWithError("socketpair");
    return;
  }
  Channel left(a), right(b);
  const std::string payload(static_cast<size_t>(state.range(0)), 'x');
  for (auto _ : state) {
    if (!left.Send('K', payload).ok()) state.SkipWithError("send");
    StatusOr<Message> m = right.Recv(1000);
    if (!m.ok()) state.SkipWithError("recv");
    benchmark::DoNotOptimize(m);
  }
  state.SetBytesProcessed(state.iterations() * state.range(0));
}
BENCHMARK(BM_ChannelRoundTrip)->Arg(1218)->Arg(48);

}  // namespace
}  // namespace sigrace::stress

BENCHMARK_MAIN();
