#include "crashdump/registry/registry.h"

#include <execinfo.h>
#include <pthread.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>

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
  // Cover check only (never read by Snapshot()): RegionContent, and for
  // kDeclared whether the owner says the range holds a secret now.
  std::atomic<uint32_t> content{0};
  std::atomic<uint32_t> holds_secret{0};
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

constexpr char kSecretStackLabel[] = "secret-stack";

pid_t RawGettid() { return static_cast<pid_t>(syscall(SYS_gettid)); }

Slot* Lookup(RegionHandle h) {
  if (!h.valid() || h.slot > kMaxRegions) return nullptr;
  Slot* s = &g_slots[h.slot - 1];
  if (s->generation.load(std::memory_order_relaxed) != h.generation) {
    return nullptr;
  }
  return s;
}

size_t SlotIndex(const Slot* s) { return static_cast<size_t>(s - g_slots); }

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

// ---- Flight recorder ----

struct FlightSlot {
  std::atomic<uint64_t> seq{0};  // 2*ticket+1 while written, 2*ticket+2 done
  std::atomic<uint64_t> time_ns{0};
  std::atomic<uint64_t> addr{0};
  std::atomic<uint64_t> len{0};
  std::atomic<uint64_t> prev_addr{0};
  std::atomic<uint64_t> prev_len{0};
  std::atomic<uint64_t> label{0};
  std::atomic<uint64_t> info{0};   // tid | kind << 32 | region << 40
  std::atomic<uint64_t> check{0};  // FlightCheck(ticket, fields)
};

FlightSlot g_ring[kFlightRingSize];
std::atomic<uint64_t> g_flight_next{0};
std::atomic<uint32_t> g_flight_on{1};

// The thread's id, cached (a syscall per event would cost more than the
// rest of the event). A forked child's only thread starts over.
thread_local pid_t t_flight_tid = 0;

// In a forked child (one thread, the forking one): the cached id is the
// parent's, and so is the tid of this thread's scope entry, which would
// make ThreadInSecretScope() miss the child's thread (its registers kept)
// and name a thread of the parent in the secret-stack record. Entries of
// the parent's other threads describe threads the child does not have.
void AfterForkInChild() {
  t_flight_tid = 0;
  const pid_t self = static_cast<pid_t>(syscall(SYS_gettid));
  for (size_t i = 0; i < kMaxScopeThreads; ++i) {
    ThreadEntry& e = g_threads[i];
    if (static_cast<int>(i) == t_entry) {
      e.tid.store(self, std::memory_order_release);
    } else if (e.tid.load(std::memory_order_relaxed) != 0) {
      e.nesting.store(0, std::memory_order_release);
      e.tid.store(0, std::memory_order_release);
    }
  }
}

pid_t FlightTid() {
  if (t_flight_tid == 0) t_flight_tid = static_cast<pid_t>(syscall(SYS_gettid));
  return t_flight_tid;
}

uint64_t MonotonicNs() {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<uint64_t>(ts.tv_sec) * 1000000000ull +
         static_cast<uint64_t>(ts.tv_nsec);
}

uint64_t FlightCheck(uint64_t ticket, const uint64_t (&w)[7]) {
  uint64_t h = ticket ^ 0x666c696768742d31ULL;
  for (uint64_t v : w) {
    h = (h ^ v) * 0x9e3779b97f4a7c15ULL;
    h ^= h >> 29;
  }
  return h;
}

void StoreFlightSlot(FlightSlot& s, uint64_t ticket, const uint64_t (&w)[7]) {
  s.seq.store(2 * ticket + 1, std::memory_order_relaxed);
  std::atomic_thread_fence(std::memory_order_release);
  s.time_ns.store(w[0], std::memory_order_relaxed);
  s.addr.store(w[1], std::memory_order_relaxed);
  s.len.store(w[2], std::memory_order_relaxed);
  s.prev_addr.store(w[3], std::memory_order_relaxed);
  s.prev_len.store(w[4], std::memory_order_relaxed);
  s.label.store(w[5], std::memory_order_relaxed);
  s.info.store(w[6], std::memory_order_relaxed);
  s.check.store(FlightCheck(ticket, w), std::memory_order_relaxed);
  s.seq.store(2 * ticket + 2, std::memory_order_release);
}

void EventWords(const FlightEvent& e, uint64_t (&w)[7]) {
  w[0] = e.time_ns;
  w[1] = e.addr;
  w[2] = e.len;
  w[3] = e.prev_addr;
  w[4] = e.prev_len;
  w[5] = reinterpret_cast<uintptr_t>(e.label);
  w[6] = static_cast<uint32_t>(e.tid) |
         (static_cast<uint64_t>(static_cast<uint32_t>(e.kind) & 0xff) << 32) |
         (static_cast<uint64_t>(e.region & 0xffffff) << 40);
}

void Record(FlightEventKind kind, uintptr_t addr, size_t len,
            uintptr_t prev_addr, size_t prev_len, const char* label,
            uint32_t region) {
  if (g_flight_on.load(std::memory_order_relaxed) == 0) return;
  const uint64_t ticket = g_flight_next.fetch_add(1, std::memory_order_relaxed);
  FlightEvent e;
  e.time_ns = MonotonicNs();
  e.addr = addr;
  e.len = len;
  e.prev_addr = prev_addr;
  e.prev_len = prev_len;
  e.label = label;
  e.tid = FlightTid();
  e.kind = kind;
  e.region = region;
  uint64_t w[7];
  EventWords(e, w);
  StoreFlightSlot(g_ring[ticket & (kFlightRingSize - 1)], ticket, w);
}

__attribute__((constructor)) void RegisterFlightFork() {
  pthread_atfork(nullptr, nullptr, &AfterForkInChild);
}

// ---- Cover check ----

constexpr size_t kNoSlot = ~size_t{0};

std::atomic<CoverViolationHook> g_hook{nullptr};
std::atomic<void*> g_hook_arg{nullptr};
std::atomic<uint64_t> g_violations{0};

CoverCheckMode ModeFromEnv() {
  const char* v = getenv("SIGRACE_COVER_CHECK");
  if (v == nullptr || *v == '\0' || strcmp(v, "off") == 0 ||
      strcmp(v, "0") == 0) {
    return CoverCheckMode::kOff;
  }
  if (strcmp(v, "count") == 0) return CoverCheckMode::kCount;
  if (strcmp(v, "abort") != 0 && strcmp(v, "on") != 0 && strcmp(v, "1") != 0) {
    fprintf(stderr,
            "sigrace: SIGRACE_COVER_CHECK=%s is not abort|count|off; "
            "taking abort\n",
            v);
  }
  return CoverCheckMode::kAbort;
}

// Reads the environment before main(), so a transition rarely has to.
__attribute__((constructor)) void ResolveAtLoad() {
  (void)cover_internal::Resolve();
}

// Is byte `a` covered by a live range other than slot `self`, or by a
// secret stack? If so, *end is where that cover ends. Racy against other
// writers by nature; every field is an atomic, so it is only imprecise.
bool CoveredElsewhere(uintptr_t a, size_t self, uintptr_t* end) {
  auto in = [&](uintptr_t lo, size_t len) {
    if (len == 0 || a < lo || a - lo >= len) return false;
    *end = lo + len;
    return true;
  };
  for (size_t i = 0; i < kMaxRegions; ++i) {
    if (i == self) continue;
    Slot& s = g_slots[i];
    const uint32_t st = s.state.load(std::memory_order_acquire);
    if (st == kLive && in(s.cur_addr.load(std::memory_order_relaxed),
                          s.cur_len.load(std::memory_order_relaxed))) {
      return true;
    }
    if (st == kUpdating && (in(s.prev_addr.load(std::memory_order_relaxed),
                               s.prev_len.load(std::memory_order_relaxed)) ||
                            in(s.next_addr.load(std::memory_order_relaxed),
                               s.next_len.load(std::memory_order_relaxed)))) {
      return true;
    }
  }
  for (size_t i = 0; i < kMaxScopeThreads; ++i) {
    ThreadEntry& e = g_threads[i];
    if (e.tid.load(std::memory_order_acquire) == 0 ||
        e.nesting.load(std::memory_order_acquire) == 0) {
      continue;
    }
    const uintptr_t hi = e.stack_hi.load(std::memory_order_relaxed);
    const size_t depth = e.depth.load(std::memory_order_relaxed);
    const uintptr_t lo = hi > depth ? hi - depth : 0;
    if (in(lo, hi - lo)) return true;
  }
  return false;
}

// First non-zero byte of [p, p+n) at or after offset `from`; n if none.
size_t FirstNonZero(const uint8_t* p, size_t n, size_t from) {
  size_t i = from;
  while (i < n && (reinterpret_cast<uintptr_t>(p + i) & 7) != 0) {
    if (p[i] != 0) return i;
    ++i;
  }
  for (; i + 8 <= n; i += 8) {
    uint64_t w;
    memcpy(&w, p + i, 8);
    if (w != 0) break;
  }
  for (; i < n; ++i) {
    if (p[i] != 0) return i;
  }
  return n;
}

// A range crossing the cover in one transition.
struct Crossing {
  const char* check;
  const char* label;
  uintptr_t range_addr;  // the range reported (old range when leaving,
  size_t range_len;      // new range when entering)
  RegionContent content;
  bool holds_secret;  // kDeclared only
  bool leaving;
};

// Checks the piece [lo, hi) of c's range, which crosses the cover. Returns
// false after reporting the first offending byte.
bool CheckPiece(const Crossing& c, uintptr_t lo, uintptr_t hi, size_t self) {
  if (lo >= hi) return true;
  if (c.content == RegionContent::kDeclared) {
    if (!c.leaving || !c.holds_secret) return true;
    uintptr_t end = 0;
    for (uintptr_t a = lo; a < hi; a = end) {
      if (!CoveredElsewhere(a, self, &end)) {
        ReportCoverViolation({c.check, "leaves the cover declared secret",
                              c.label, c.range_addr, c.range_len,
                              a - c.range_addr});
        return false;
      }
    }
    return true;
  }
  const uint8_t* p = reinterpret_cast<const uint8_t*>(lo);
  const size_t n = hi - lo;
  size_t i = 0;
  while ((i = FirstNonZero(p, n, i)) < n) {
    uintptr_t end = 0;
    if (CoveredElsewhere(lo + i, self, &end)) {
      i = end - lo;
      continue;
    }
    ReportCoverViolation(
        {c.check,
         c.leaving ? "leaves the cover unwiped (a byte is not zero)"
                   : "enters the cover holding data (a byte is not zero)",
         c.label, c.range_addr, c.range_len, lo + i - c.range_addr});
    return false;
  }
  return true;
}

// Checks the bytes of `from` that are not in `minus` ([a, a+l) ranges;
// minus may be empty): at most two pieces.
bool CheckDifference(const Crossing& c, uintptr_t from, size_t from_len,
                     uintptr_t minus, size_t minus_len, size_t self) {
  const uintptr_t f_end = from + from_len;
  if (minus_len == 0) return CheckPiece(c, from, f_end, self);
  const uintptr_t m_end = minus + minus_len;
  if (!CheckPiece(c, from, f_end < minus ? f_end : minus, self)) return false;
  return CheckPiece(c, from > m_end ? from : m_end, f_end, self);
}

// The cover of one slot goes from `old` to `next` (either may be empty).
// Entering bytes are checked against `next`'s range, leaving ones against
// `old`'s.
void CheckMove(const char* leave_check, const char* enter_check, const Slot& s,
               size_t self, uintptr_t old, size_t old_len, uintptr_t next,
               size_t next_len) {
  const Crossing base{
      leave_check,
      s.label.load(std::memory_order_relaxed),
      0,
      0,
      static_cast<RegionContent>(s.content.load(std::memory_order_relaxed)),
      s.holds_secret.load(std::memory_order_relaxed) != 0,
      false};
  Crossing leave = base;
  leave.range_addr = old;
  leave.range_len = old_len;
  leave.leaving = true;
  if (old_len != 0 &&
      !CheckDifference(leave, old, old_len, next, next_len, self)) {
    return;
  }
  Crossing enter = base;
  enter.check = enter_check;
  enter.range_addr = next;
  enter.range_len = next_len;
  if (next_len != 0) CheckDifference(enter, next, next_len, old, old_len, self);
}

}  // namespace

namespace cover_internal {
CoverCheckMode Resolve() {
  uint32_t m = g_mode.load(std::memory_order_acquire);
  if (m != kUnresolved) return static_cast<CoverCheckMode>(m);
  const uint32_t from_env = static_cast<uint32_t>(ModeFromEnv());
  // SetCoverCheck may have run meanwhile; it wins.
  if (g_mode.compare_exchange_strong(m, from_env, std::memory_order_acq_rel)) {
    return static_cast<CoverCheckMode>(from_env);
  }
  return static_cast<CoverCheckMode>(m);
}
}  // namespace cover_internal

const char* FlightEventKindName(FlightEventKind kind) {
  switch (kind) {
    case FlightEventKind::kPublish:
      return "publish";
    case FlightEventKind::kUpdate:
      return "update";
    case FlightEventKind::kUnpublish:
      return "unpublish";
    case FlightEventKind::kScopeEnter:
      return "scope-enter";
    case FlightEventKind::kScopeExit:
      return "scope-exit";
  }
  return "?";
}

uint64_t FlightRecorderNext() {
  return g_flight_next.load(std::memory_order_acquire);
}

bool ReadFlightEvent(uint64_t index, FlightEvent* out) {
  const FlightSlot& s = g_ring[index & (kFlightRingSize - 1)];
  const uint64_t want = 2 * index + 2;
  if (s.seq.load(std::memory_order_acquire) != want) return false;
  uint64_t w[7];
  w[0] = s.time_ns.load(std::memory_order_relaxed);
  w[1] = s.addr.load(std::memory_order_relaxed);
  w[2] = s.len.load(std::memory_order_relaxed);
  w[3] = s.prev_addr.load(std::memory_order_relaxed);
  w[4] = s.prev_len.load(std::memory_order_relaxed);
  w[5] = s.label.load(std::memory_order_relaxed);
  w[6] = s.info.load(std::memory_order_relaxed);
  const uint64_t check = s.check.load(std::memory_order_relaxed);
  std::atomic_thread_fence(std::memory_order_acquire);
  if (s.seq.load(std::memory_order_relaxed) != want) return false;
  if (check != FlightCheck(index, w)) return false;
  out->index = index;
  out->time_ns = w[0];
  out->addr = static_cast<uintptr_t>(w[1]);
  out->len = static_cast<size_t>(w[2]);
  out->prev_addr = static_cast<uintptr_t>(w[3]);
  out->prev_len = static_cast<size_t>(w[4]);
  out->label = reinterpret_cast<const char*>(static_cast<uintptr_t>(w[5]));
  out->tid = static_cast<pid_t>(static_cast<uint32_t>(w[6]));
  out->kind = static_cast<FlightEventKind>((w[6] >> 32) & 0xff);
  out->region = static_cast<uint32_t>(w[6] >> 40);
  return true;
}

void SetFlightRecorder(bool on) {
  g_flight_on.store(on ? 1 : 0, std::memory_order_relaxed);
}

bool FlightRecorderOn() {
  return g_flight_on.load(std::memory_order_relaxed) != 0;
}

void TEST_WriteTornFlightSlot(uint64_t index, const FlightEvent& e,
                              const uint64_t* finish_as) {
  FlightSlot& s = g_ring[index & (kFlightRingSize - 1)];
  uint64_t w[7];
  EventWords(e, w);
  if (finish_as == nullptr) {
    // A writer stopped between its first and last store.
    s.seq.store(2 * index + 1, std::memory_order_relaxed);
    std::atomic_thread_fence(std::memory_order_release);
    s.time_ns.store(w[0], std::memory_order_relaxed);
    s.addr.store(w[1], std::memory_order_relaxed);
    return;
  }
  // A later lap's writer finished the slot; then the stalled writer of an
  // earlier lap stores one more field: the sequence is whole, the fields
  // are not.
  StoreFlightSlot(s, *finish_as, w);
  s.addr.store(w[1] ^ 0x1000, std::memory_order_relaxed);
}

void SetCoverCheck(CoverCheckMode mode) {
  cover_internal::g_mode.store(static_cast<uint32_t>(mode),
                               std::memory_order_release);
}

CoverCheckMode GetCoverCheck() { return cover_internal::Resolve(); }

void SetCoverViolationHook(CoverViolationHook hook, void* arg) {
  g_hook_arg.store(arg, std::memory_order_relaxed);
  g_hook.store(hook, std::memory_order_release);
}

uint64_t CoverViolationCount() {
  return g_violations.load(std::memory_order_relaxed);
}

void ReportCoverViolation(const CoverViolation& v) {
  g_violations.fetch_add(1, std::memory_order_relaxed);
  if (CoverViolationHook hook = g_hook.load(std::memory_order_acquire)) {
    hook(v, g_hook_arg.load(std::memory_order_relaxed));
    return;
  }
  char line[512];
  const int n = snprintf(
      line, sizeof line,
      "sigrace cover check: %s: \"%s\" [0x%llx, +%zu) %s at offset %zu "
      "(tid %d)\n",
      v.check, v.label != nullptr ? v.label : "?",
      static_cast<unsigned long long>(v.addr), v.len, v.reason, v.offset,
      static_cast<int>(RawGettid()));
  if (n > 0) {
    const size_t len = static_cast<size_t>(n) < sizeof line
                           ? static_cast<size_t>(n)
                           : sizeof line - 1;
    (void)!write(STDERR_FILENO, line, len);
  }
  void* frames[64];
  const int depth = backtrace(frames, 64);
  backtrace_symbols_fd(frames, depth, STDERR_FILENO);
  if (cover_internal::Resolve() != CoverCheckMode::kCount) abort();
}

void CheckSecretStackDepth(uintptr_t frame) {
  if (!CoverCheckActive() || t_entry < 0) return;
  const ThreadEntry& e = g_threads[t_entry];
  if (e.nesting.load(std::memory_order_relaxed) == 0) return;
  const uintptr_t hi = e.stack_hi.load(std::memory_order_relaxed);
  const size_t depth = e.depth.load(std::memory_order_relaxed);
  const uintptr_t lo = hi > depth ? hi - depth : 0;
  if (frame >= lo) return;
  // The uncovered stack in use: from the frame up to the cover's floor.
  ReportCoverViolation({kCheckStackDepth,
                        "stack in use below the SecretScope's cover",
                        "secret-stack", frame, lo - frame, 0});
}

void CheckCovered(const void* addr, size_t len, const char* label) {
  if (!CoverCheckActive() || addr == nullptr || len == 0) return;
  const uintptr_t lo = reinterpret_cast<uintptr_t>(addr);
  uintptr_t end = 0;
  for (uintptr_t a = lo; a - lo < len; a = end) {
    if (!CoveredElsewhere(a, kNoSlot, &end)) {
      ReportCoverViolation({kCheckWriteUncovered,
                            "about to receive secret bytes outside the cover",
                            label, lo, len, a - lo});
      return;
    }
  }
}

RegionHandle PublishRegion(const void* addr, size_t len, const char* label,
                           RegionContent content) {
  if (addr == nullptr || len == 0) return {};
  if (CoverCheckMaybeOn() && CoverCheckActive()) {
    Slot probe;
    probe.label.store(label, std::memory_order_relaxed);
    probe.content.store(static_cast<uint32_t>(content),
                        std::memory_order_relaxed);
    CheckMove(kCheckPublish, kCheckPublish, probe, kNoSlot, 0, 0,
              reinterpret_cast<uintptr_t>(addr), len);
  }
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
    s.content.store(static_cast<uint32_t>(content), std::memory_order_relaxed);
    // A declared range may hold secrets until its owner says otherwise.
    s.holds_secret.store(content == RegionContent::kDeclared ? 1 : 0,
                         std::memory_order_relaxed);
    const uint32_t gen = s.generation.load(std::memory_order_relaxed) + 1;
    s.generation.store(gen, std::memory_order_relaxed);
    std::atomic_signal_fence(std::memory_order_release);
    s.state.store(kLive, std::memory_order_release);
    g_published.fetch_add(1, std::memory_order_relaxed);
    t_hint = i + 1;
    Record(FlightEventKind::kPublish, reinterpret_cast<uintptr_t>(addr), len, 0,
           0, label, i + 1);
    return RegionHandle{i + 1, gen};
  }
  return {};
}

void SetRegionHoldsSecret(RegionHandle handle, bool holds_secret) {
  Slot* s = Lookup(handle);
  if (s == nullptr) return;
  s->holds_secret.store(holds_secret ? 1 : 0, std::memory_order_relaxed);
}

void UnpublishRegion(RegionHandle handle) {
  Slot* s = Lookup(handle);
  if (s == nullptr) return;
  if (CoverCheckMaybeOn() && CoverCheckActive() &&
      s->state.load(std::memory_order_relaxed) == kLive) {
    CheckMove(kCheckUnpublish, kCheckUnpublish, *s, SlotIndex(s),
              s->cur_addr.load(std::memory_order_relaxed),
              s->cur_len.load(std::memory_order_relaxed), 0, 0);
  }
  uint32_t expected = kLive;
  if (!s->state.compare_exchange_strong(expected, kClaimed,
                                        std::memory_order_acq_rel)) {
    return;
  }
  s->generation.store(handle.generation + 1, std::memory_order_relaxed);
  const uintptr_t old_addr = s->cur_addr.load(std::memory_order_relaxed);
  const size_t old_len = s->cur_len.load(std::memory_order_relaxed);
  s->cur_addr.store(0, std::memory_order_relaxed);
  s->cur_len.store(0, std::memory_order_relaxed);
  std::atomic_signal_fence(std::memory_order_release);
  s->state.store(kFree, std::memory_order_release);
  g_published.fetch_sub(1, std::memory_order_relaxed);
  Record(FlightEventKind::kUnpublish, old_addr, old_len, 0, 0,
         s->label.load(std::memory_order_relaxed), handle.slot);
}

void UpdateRegion(RegionHandle handle, const void* addr, size_t len) {
  Slot* s = Lookup(handle);
  if (s == nullptr || addr == nullptr || len == 0) return;
  if (s->state.load(std::memory_order_relaxed) != kLive) return;
  if (CoverCheckMaybeOn() && CoverCheckActive()) {
    // The cover goes old -> old and new -> new; nothing else runs on this
    // thread in between, so checking both steps up front is the same.
    CheckMove(kCheckUpdateLeave, kCheckUpdateEnter, *s, SlotIndex(s),
              s->cur_addr.load(std::memory_order_relaxed),
              s->cur_len.load(std::memory_order_relaxed),
              reinterpret_cast<uintptr_t>(addr), len);
  }
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
  Record(FlightEventKind::kUpdate, reinterpret_cast<uintptr_t>(addr), len,
         s->prev_addr.load(std::memory_order_relaxed),
         s->prev_len.load(std::memory_order_relaxed),
         s->label.load(std::memory_order_relaxed), handle.slot);
}

void TEST_UpdateRegionTorn(RegionHandle handle, const void* addr, size_t len,
                           void (*between)()) {
  Slot* s = Lookup(handle);
  if (s == nullptr || addr == nullptr || len == 0) return;
  const uintptr_t next = reinterpret_cast<uintptr_t>(addr);
  const size_t old_len = s->cur_len.load(std::memory_order_relaxed);
  // Each store is a transition a reader can see; each is checked.
  if (CoverCheckMaybeOn() && CoverCheckActive()) {
    CheckMove(kCheckTornAddress, kCheckTornAddress, *s, SlotIndex(s),
              s->cur_addr.load(std::memory_order_relaxed), old_len, next,
              old_len);
  }
  // WINDOW (torn-update): the address moves first and the length follows;
  // a snapshot in between covers the new address with the old length.
  const uintptr_t old_addr = s->cur_addr.load(std::memory_order_relaxed);
  s->cur_addr.store(next, std::memory_order_relaxed);
  Record(FlightEventKind::kUpdate, next, old_len, old_addr, old_len,
         s->label.load(std::memory_order_relaxed), handle.slot);
  std::atomic_signal_fence(std::memory_order_seq_cst);
  if (between != nullptr) between();
  std::atomic_signal_fence(std::memory_order_seq_cst);
  if (CoverCheckMaybeOn() && CoverCheckActive()) {
    CheckMove(kCheckTornLength, kCheckTornLength, *s, SlotIndex(s), next,
              old_len, next, len);
  }
  s->cur_len.store(len, std::memory_order_relaxed);
  Record(FlightEventKind::kUpdate, next, len, next, old_len,
         s->label.load(std::memory_order_relaxed), handle.slot);
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
  if (n == 0) {
    const uintptr_t lo = stack_hi > stack_depth ? stack_hi - stack_depth : 0;
    Record(FlightEventKind::kScopeEnter, lo, stack_hi - lo, 0, 0,
           kSecretStackLabel, 0);
  }
}

void ExitSecretScope() {
  if (t_entry < 0) return;
  ThreadEntry& e = g_threads[t_entry];
  const uint32_t n = e.nesting.load(std::memory_order_relaxed);
  if (n == 0) return;
  e.nesting.store(n - 1, std::memory_order_release);
  if (n == 1) {
    const uintptr_t hi = e.stack_hi.load(std::memory_order_relaxed);
    const size_t depth = e.depth.load(std::memory_order_relaxed);
    const uintptr_t lo = hi > depth ? hi - depth : 0;
    Record(FlightEventKind::kScopeExit, lo, hi - lo, 0, 0, kSecretStackLabel,
           0);
  }
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
           s.cur_len.load(std::memory_order_relaxed), label, RegionKind::kRange,
           0);
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
    emit(lo, hi - lo, kSecretStackLabel, RegionKind::kSecretStack, tid);
  }
  return n;
}

size_t TEST_PublishedCount() {
  return g_published.load(std::memory_order_relaxed);
}

}  // namespace sigrace::crashdump
