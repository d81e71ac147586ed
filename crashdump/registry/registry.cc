#include "crashdump/registry/registry.h"

#include <sys/syscall.h>
#include <unistd.h>

namespace sigrace::crashdump {
namespace {

// Slot states. A slot is read by Snapshot() only in kLive or kUpdating.
enum : uint32_t {
  kFree = 0,
  kClaimed = 1,   // being filled or emptied; not covered
  kLive = 2,      // cur_* is the range
  kUpdating = 3,  // prev_* and next_* are both covered
};

struct Slot {
  std::atomic<uint32_t> state{kFree};
  std::atomic<uint32_t> generation{0};
  std::atomic<uintptr_t> cur_addr{0};
  std::atomic<size_t> cur_len{0};
  std::atomic<uintptr_t> prev_addr{0};
  std::atomic<size_t> prev_len{0};
  std::atomic<uintptr_t> next_addr{0};
  std::atomic<size_t> next_len{0};
  std::atomic<const char*> label{nullptr};
};

struct ThreadEntry {
  std::atomic<pid_t> tid{0};
  std::atomic<uintptr_t> stack_hi{0};
  std::atomic<size_t> depth{0};
  std::atomic<uint32_t> nesting{0};
};

static_assert(std::atomic<uint32_t>::is_always_lock_free);
static_assert(std::atomic<size_t>::is_always_lock_free);
static_assert(std::atomic<const char*>::is_always_lock_free);

// Static storage: no allocation, usable from the crash path at any time.
Slot g_slots[kMaxRegions];
ThreadEntry g_threads[kMaxScopeThreads];
std::atomic<size_t> g_published{0};

// Per-thread search start, so threads publishing at once rarely contend
// on the same slot. Initial-exec TLS in the executable: signal-safe.
thread_local uint32_t t_hint = 0;
thread_local int t_entry = -1;

pid_t RawGettid() { return static_cast<pid_t>(syscall(SYS_gettid)); }

Slot* Lookup(RegionHandle h) {
  if (!h.valid() || h.slot > kMaxRegions) return nullptr;
  Slot* s = &g_slots[h.slot - 1];
  if (s->generation.load(std::memory_order_relaxed) != h.generation) {
    return nullptr;
  }
  return s;
}

// Releases the calling thread's scope entry when the thread exits.
struct EntryReleaser {
  ~EntryReleaser() {
    if (t_entry >= 0) {
      ThreadEntry& e = g_threads[t_entry];
      e.nesting.store(0, std::memory_order_release);
      e.tid.store(0, std::memory_order_release);
      t_entry = -1;
    }
  }
};
thread_local EntryReleaser t_releaser;

ThreadEntry* ClaimEntry() {
  if (t_entry >= 0) return &g_threads[t_entry];
  const pid_t tid = RawGettid();
  for (size_t i = 0; i < kMaxScopeThreads; ++i) {
    pid_t expected = 0;
    if (g_threads[i].tid.compare_exchange_strong(expected, tid,
                                                 std::memory_order_acq_rel)) {
      t_entry = static_cast<int>(i);
      // Touch the releaser so its destructor is registered (once, outside
      // any signal handler in practice: the first scope of a thread).
      (void)&t_releaser;
      return &g_threads[i];
    }
  }
  return nullptr;
}

}  // namespace

RegionHandle PublishRegion(const void* addr, size_t len, const char* label) {
  if (addr == nullptr || len == 0) return {};
  const uint32_t start = t_hint;
  for (uint32_t n = 0; n < kMaxRegions; ++n) {
    const uint32_t i = (start + n) % kMaxRegions;
    Slot& s = g_slots[i];
    uint32_t expected = kFree;
    if (s.state.load(std::memory_order_relaxed) != kFree ||
        !s.state.compare_exchange_strong(expected, kClaimed,
                                         std::memory_order_acquire)) {
      continue;
    }
    s.cur_addr.store(reinterpret_cast<uintptr_t>(addr),
                     std::memory_order_relaxed);
    s.cur_len.store(len, std::memory_order_relaxed);
    s.label.store(label, std::memory_order_relaxed);
    const uint32_t gen = s.generation.load(std::memory_order_relaxed) + 1;
    s.generation.store(gen, std::memory_order_relaxed);
    std::atomic_signal_fence(std::memory_order_release);
    s.state.store(kLive, std::memory_order_release);
    g_published.fetch_add(1, std::memory_order_relaxed);
    t_hint = i + 1;
    return RegionHandle{i + 1, gen};
  }
  return {};
}

void UnpublishRegion(RegionHandle handle) {
  Slot* s = Lookup(handle);
  if (s == nullptr) return;
  uint32_t expected = kLive;
  if (!s->state.compare_exchange_strong(expected, kClaimed,
                                        std::memory_order_acq_rel)) {
    return;
  }
  s->generation.store(handle.generation + 1, std::memory_order_relaxed);
  s->cur_addr.store(0, std::memory_order_relaxed);
  s->cur_len.store(0, std::memory_order_relaxed);
  std::atomic_signal_fence(std::memory_order_release);
  s->state.store(kFree, std::memory_order_release);
  g_published.fetch_sub(1, std::memory_order_relaxed);
}

void UpdateRegion(RegionHandle handle, const void* addr, size_t len) {
  Slot* s = Lookup(handle);
  if (s == nullptr || addr == nullptr || len == 0) return;
  if (s->state.load(std::memory_order_relaxed) != kLive) return;
  // Both the old and the new range are written before the state says
  // "updating", so a reader that sees kUpdating sees two whole ranges.
  s->prev_addr.store(s->cur_addr.load(std::memory_order_relaxed),
                     std::memory_order_relaxed);
  s->prev_len.store(s->cur_len.load(std::memory_order_relaxed),
                    std::memory_order_relaxed);
  s->next_addr.store(reinterpret_cast<uintptr_t>(addr),
                     std::memory_order_relaxed);
  s->next_len.store(len, std::memory_order_relaxed);
  std::atomic_signal_fence(std::memory_order_release);
  s->state.store(kUpdating, std::memory_order_release);
  s->cur_addr.store(reinterpret_cast<uintptr_t>(addr),
                    std::memory_order_relaxed);
  s->cur_len.store(len, std::memory_order_relaxed);
  std::atomic_signal_fence(std::memory_order_release);
  s->state.store(kLive, std::memory_order_release);
}

void TEST_UpdateRegionTorn(RegionHandle handle, const void* addr, size_t len,
                           void (*between)()) {
  Slot* s = Lookup(handle);
  if (s == nullptr || addr == nullptr || len == 0) return;
  // WINDOW (torn-update): the address moves first and the length follows;
  // a snapshot in between covers the new address with the old length.
  s->cur_addr.store(reinterpret_cast<uintptr_t>(addr),
                    std::memory_order_relaxed);
  std::atomic_signal_fence(std::memory_order_seq_cst);
  if (between != nullptr) between();
  std::atomic_signal_fence(std::memory_order_seq_cst);
  s->cur_len.store(len, std::memory_order_relaxed);
}

void EnterSecretScope(uintptr_t stack_hi, size_t stack_depth) {
  ThreadEntry* e = ClaimEntry();
  if (e == nullptr) return;
  const uint32_t n = e->nesting.load(std::memory_order_relaxed);
  if (n == 0) {
    e->stack_hi.store(stack_hi, std::memory_order_relaxed);
    e->depth.store(stack_depth, std::memory_order_relaxed);
    std::atomic_signal_fence(std::memory_order_release);
  }
  e->nesting.store(n + 1, std::memory_order_release);
}

void ExitSecretScope() {
  if (t_entry < 0) return;
  ThreadEntry& e = g_threads[t_entry];
  const uint32_t n = e.nesting.load(std::memory_order_relaxed);
  if (n > 0) e.nesting.store(n - 1, std::memory_order_release);
}

bool InSecretScope() {
  return t_entry >= 0 &&
         g_threads[t_entry].nesting.load(std::memory_order_acquire) > 0;
}

bool ThreadInSecretScope(pid_t tid) {
  for (size_t i = 0; i < kMaxScopeThreads; ++i) {
    if (g_threads[i].tid.load(std::memory_order_acquire) == tid) {
      return g_threads[i].nesting.load(std::memory_order_acquire) > 0;
    }
  }
  return false;
}

size_t SnapshotRegions(RegionView* out, size_t cap) {
  size_t n = 0;
  auto emit = [&](uintptr_t a, size_t l, const char* label, RegionKind k,
                  pid_t tid) {
    if (a == 0 || l == 0) return;
    if (n < cap) out[n] = RegionView{a, l, label, k, tid};
    ++n;
  };
  for (size_t i = 0; i < kMaxRegions; ++i) {
    Slot& s = g_slots[i];
    const uint32_t st = s.state.load(std::memory_order_acquire);
    const char* label = s.label.load(std::memory_order_relaxed);
    if (st == kLive) {
      emit(s.cur_addr.load(std::memory_order_relaxed),
           s.cur_len.load(std::memory_order_relaxed), label,
           RegionKind::kRange, 0);
    } else if (st == kUpdating) {
      emit(s.prev_addr.load(std::memory_order_relaxed),
           s.prev_len.load(std::memory_order_relaxed), label,
           RegionKind::kUpdatePrev, 0);
      emit(s.next_addr.load(std::memory_order_relaxed),
           s.next_len.load(std::memory_order_relaxed), label,
           RegionKind::kRange, 0);
    }
  }
  for (size_t i = 0; i < kMaxScopeThreads; ++i) {
    ThreadEntry& e = g_threads[i];
    const pid_t tid = e.tid.load(std::memory_order_acquire);
    if (tid == 0 || e.nesting.load(std::memory_order_acquire) == 0) continue;
    const uintptr_t hi = e.stack_hi.load(std::memory_order_relaxed);
    const size_t depth = e.depth.load(std::memory_order_relaxed);
    const uintptr_t lo = hi > depth ? hi - depth : 0;
    emit(lo, hi - lo, "secret-stack", RegionKind::kSecretStack, tid);
  }
  return n;
}

size_t TEST_PublishedCount() {
  return g_published.load(std::memory_order_relaxed);
}

}  // namespace sigrace::crashdump
