#include "stress/explore.h"

#include <sched.h>
#include <signal.h>
#include <time.h>

#include <atomic>
#include <memory>

#include "base/failpoint.h"
#include "signer/key_heap.h"
#include "signer/signer.h"

namespace sigrace::stress {
namespace {

std::atomic<uint64_t> g_generation{0};
std::atomic<int> g_target{-1};
std::atomic<uint32_t> g_instant{0};
std::atomic<uint32_t> g_widen_us{0};
std::atomic<uint64_t> g_widen_seed{0};
std::atomic<bool> g_fired{false};
std::atomic<bool> g_failpoints{false};

// Each indexed thread's position (ExploreSnapshotPositions).
struct PositionSlot {
  std::atomic<bool> in_op{false};
  std::atomic<uint32_t> instant{0};
};
PositionSlot g_positions[kMaxExploreThreads];
static_assert(std::atomic<uint32_t>::is_always_lock_free);
static_assert(std::atomic<bool>::is_always_lock_free);

PositionSlot* SlotOf(int index) {
  return index >= 0 && index < kMaxExploreThreads ? &g_positions[index]
                                                  : nullptr;
}

struct ThreadState {
  int index = -1;
  bool in_op = false;
  uint32_t count = 0;
  uint64_t generation = 0;
  uint64_t rng = 0;
  uint64_t draws = 0;
};
thread_local ThreadState t_state;

void Widen(uint32_t max_us) {
  ThreadState& t = t_state;
  const uint64_t gen = g_generation.load(std::memory_order_relaxed);
  if (t.generation != gen) {
    t.generation = gen;
    t.rng = SplitMix64(g_widen_seed.load(std::memory_order_relaxed) ^
                       (static_cast<uint64_t>(t.index + 1) << 40));
    t.draws = 0;
  }
  const uint64_t r = SplitMix64(t.rng + 0x9e3779b97f4a7c15ULL * t.draws++);
  switch (r & 7) {
    case 0: {
      const uint64_t us = (r >> 8) % (max_us + 1);
      const timespec ts{0, static_cast<long>(us * 1000)};
      nanosleep(&ts, nullptr);
      break;
    }
    case 1:
      sched_yield();
      break;
    default:
      break;
  }
}

void OnInstant() {
  const uint32_t w = g_widen_us.load(std::memory_order_relaxed);
  if (w != 0) Widen(w);
  ThreadState& t = t_state;
  if (!t.in_op) return;
  ++t.count;
  const uint32_t n = g_instant.load(std::memory_order_relaxed);
  if (n != 0 && t.count == n && !g_fired.exchange(true)) raise(SIGSEGV);
}

void OnHeapEvent(signer::KeyHeapEvent /*event*/) {
  if (PositionSlot* slot = SlotOf(t_state.index)) {
    if (slot->in_op.load(std::memory_order_relaxed)) {
      slot->instant.store(slot->instant.load(std::memory_order_relaxed) + 1,
                          std::memory_order_relaxed);
    }
  }
  OnInstant();
}

// The signer's failpoints only: the crash handler's own sites
// (handler.*) and the gate's must stay disarmed, or the handler would take
// the failpoint table's lock (held, perhaps, by a thread it froze) and run
// the instant hook inside a dump.
std::vector<std::string> SignerFailpoints() {
  std::vector<std::string> out;
  for (const std::string& name : failpoint::ListNames()) {
    for (const char* prefix :
         {"sign.", "load.", "keygen.", "rotate.", "window."}) {
      if (name.rfind(prefix, 0) == 0) {
        out.push_back(name);
        break;
      }
    }
  }
  return out;
}

}  // namespace

void ExploreInstall() { signer::TEST_SetAllocObserver(&OnHeapEvent); }

void ExploreSetThreadIndex(int index) { t_state.index = index; }

Status ExploreArm(const ExploreArming& a) {
  g_fired.store(false);
  g_target.store(a.target);
  g_instant.store(a.instant);
  g_widen_seed.store(a.widen_seed);
  g_generation.fetch_add(1);
  g_widen_us.store(a.widen_us);
  g_failpoints.store(a.failpoints);
  if (a.failpoints) {
    std::string specs;
    for (const std::string& name : SignerFailpoints()) {
      SIGRACE_RETURN_IF_ERROR(
          failpoint::SetCallback(name, [] { OnInstant(); }));
      specs += (specs.empty() ? "" : ";") + name + "=callback";
    }
    SIGRACE_RETURN_IF_ERROR(failpoint::Configure(specs));
  }
  return Status::Ok();
}

void ExploreDisarm() {
  g_target.store(-1);
  g_instant.store(0);
  g_widen_us.store(0);
  if (g_failpoints.exchange(false)) {
    for (const std::string& name : SignerFailpoints()) {
      (void)failpoint::Clear(name);
      (void)failpoint::SetCallback(name, nullptr);
    }
  }
}

bool ExploreFired() { return g_fired.load(); }

void ExploreOpBegin() {
  ThreadState& t = t_state;
  if (PositionSlot* slot = SlotOf(t.index)) {
    slot->instant.store(0, std::memory_order_relaxed);
    slot->in_op.store(true, std::memory_order_release);
  }
  t.count = 0;
  t.in_op = t.index >= 0 && g_target.load() == t.index;
}

uint32_t ExploreOpEnd() {
  ThreadState& t = t_state;
  if (PositionSlot* slot = SlotOf(t.index)) {
    slot->in_op.store(false, std::memory_order_release);
  }
  if (!t.in_op) return 0;
  t.in_op = false;
  const uint32_t n = g_instant.load();
  if (n > t.count && t.count > 0 && !g_fired.load()) {
    g_instant.store((n - 1) % t.count + 1);
  }
  return t.count;
}

void ExploreSnapshotPositions(ThreadPosition* out, int n) {
  for (int i = 0; i < n && i < kMaxExploreThreads; ++i) {
    out[i].index = i;
    out[i].in_op = g_positions[i].in_op.load(std::memory_order_acquire);
    out[i].instant = g_positions[i].instant.load(std::memory_order_relaxed);
  }
}

StatusOr<std::vector<OpInstants>> CensusInstants(
    const std::vector<std::string>& algs, bool rotation, uint32_t key_pool) {
  std::vector<signer::Alg> parsed;
  for (const std::string& a : algs) {
    StatusOr<signer::Alg> alg = signer::ParseAlg(a);
    if (!alg.ok()) return alg.status();
    parsed.push_back(*alg);
  }
  signer::SignerOptions so;
  so.algs = parsed;
  so.TEST_key_pool = key_pool;
  StatusOr<std::unique_ptr<signer::Signer>> s = signer::Signer::Create(so);
  if (!s.ok()) return s.status();
  ExploreInstall();
  const int saved = t_state.index;
  ExploreSetThreadIndex(0);
  SIGRACE_RETURN_IF_ERROR(ExploreArm({.target = 0, .failpoints = true}));
  std::vector<OpInstants> out;
  Status st;
  for (size_t a = 0; a < parsed.size() && st.ok(); ++a) {
    uint32_t count = 0;
    for (int i = 0; i < 2 && st.ok(); ++i) {
      ExploreOpBegin();
      StatusOr<std::string> tok = (*s)->Sign(parsed[a], signer::Claims{});
      count = ExploreOpEnd();
      if (!tok.ok()) st = tok.status();
    }
    out.push_back({algs[a], "sign", count});
    if (rotation && st.ok()) {
      ExploreOpBegin();
      st = (*s)->Rotate(parsed[a]);
      out.push_back({algs[a], "rotate", ExploreOpEnd()});
    }
  }
  ExploreDisarm();
  ExploreSetThreadIndex(saved);
  if (!st.ok()) return st;
  return out;
}

}  // namespace sigrace::stress
