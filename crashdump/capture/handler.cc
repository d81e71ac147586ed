#include "crashdump/capture/handler.h"

#include <fcntl.h>
#include <linux/futex.h>
#include <setjmp.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <ucontext.h>
#include <unistd.h>

#define UNW_LOCAL_ONLY
#include <libunwind.h>

#include <atomic>
#include <cerrno>
#include <cstring>
#include <new>

#include "base/failpoint.h"
#include "crashdump/format/core_format.h"
#include "crashdump/capture/core_writer.h"
#include "crashdump/capture/proc_maps.h"
#include "crashdump/registry/registry.h"
#include "crashdump/capture/signal_safe.h"
#include "crashdump/capture/symbol_table.h"

namespace sigrace::crashdump {
namespace {

using ss::NowNs;
using ss::RawSyscall6;

// Failpoints on the crash path. Disarmed: one relaxed load each (safe in a
// signal handler). Armed: they take the failpoint table's lock, so only
// tests that fault the handler on purpose arm them.
SIGRACE_FAILPOINT_DEFINE(kFpEntered, "handler.entered");
SIGRACE_FAILPOINT_DEFINE(kFpFreezePass, "handler.after_freeze_pass");
SIGRACE_FAILPOINT_DEFINE(kFpAfterFreeze, "handler.after_freeze");
SIGRACE_FAILPOINT_DEFINE(kFpAfterSnapshot, "handler.after_registry_snapshot");
SIGRACE_FAILPOINT_DEFINE(kFpBeforeWrite, "handler.before_write");
SIGRACE_FAILPOINT_DEFINE(kFpBeforeSeal, "handler.before_seal");
// Once per poll of a crash waiter (a test holds it off the CPU with it).
SIGRACE_FAILPOINT_DEFINE(kFpWaiterPoll, "handler.crash_waiter_poll");

constexpr size_t kMaxThreads = 4096;
constexpr size_t kMaxMappings = 32768;
constexpr size_t kMaxRegionViews = 2 * kMaxRegions + kMaxScopeThreads;
constexpr size_t kMaxRedactions = kMaxRegionViews + 3 * kMaxThreads + 8;
constexpr size_t kAltStackSize = size_t{256} * 1024;
constexpr size_t kTrialMetaCap = 4096;
constexpr size_t kMetaCap = size_t{16} * 1024;
constexpr size_t kBacktraceCap = size_t{16} * 1024;
constexpr int kMaxFreezePasses = 64;
// How long a silent thread gets before its signal mask is looked at.
constexpr uint64_t kBlockedGraceNs = 20'000'000;
constexpr int kMaxBacktraceFrames = 64;
// Below-entry stack bytes assumed used by the handler when it runs on a
// thread's ordinary stack (a thread without an alternate stack).
constexpr uintptr_t kOwnerStackUse = uintptr_t{128} * 1024;
constexpr uintptr_t kParkStackUse = 2048;
constexpr uintptr_t kRedZone = 128;

static_assert(std::atomic<pid_t>::is_always_lock_free);
static_assert(std::atomic<uint32_t>::is_always_lock_free);
static_assert(std::atomic<uint64_t>::is_always_lock_free);
static_assert(std::atomic<bool>::is_always_lock_free);
static_assert(std::atomic<uintptr_t>::is_always_lock_free);
static_assert(std::atomic<const ucontext_t*>::is_always_lock_free);

enum : uint32_t {
  kSlotSignaled = 1,  // freeze signal sent, no answer yet
  kSlotParked = 2,    // parked; uc and friends are valid
  kSlotGone = 3,      // exited before it could be signalled
  kSlotTimedOut = 4,  // never answered within the pass bound
  kSlotBlocking = 5,  // blocks the freeze signal: it cannot answer
};

struct ThreadSlot {
  std::atomic<pid_t> tid{0};
  std::atomic<uint32_t> state{0};
  std::atomic<const ucontext_t*> uc{nullptr};
  std::atomic<uint64_t> fs_base{0};
  std::atomic<uint64_t> gs_base{0};
  std::atomic<uintptr_t> park_sp{0};
  std::atomic<bool> on_altstack{false};
};

struct AltStackEntry {
  std::atomic<pid_t> tid{0};
  std::atomic<uintptr_t> addr{0};
  std::atomic<size_t> len{0};
};

// Everything the crash path writes, mapped once at install. MADV_DONTDUMP:
// it holds copies of registers and memory, so it never enters a dump.
struct Scratch {
  ThreadSlot slots[kMaxThreads];
  ThreadCapture captures[kMaxThreads];
  RegionView regions[kMaxRegionViews];
  RedactionRecord redactions[kMaxRedactions];
  ProcMapping maps[kMaxMappings];
  uint64_t dump_len[kMaxMappings];
  char path_pool[2 << 20];
  char read_buf[64 << 10];
  char auxv[8192];
  char cmdline[4096];
  char comm[64];
  char meta[kMetaCap];
  char backtrace[kBacktraceCap];
  char dirents[16384];
  uint64_t pagemap[8192];
  char copy_buf[1 << 20];
  char note_buf[48 << 20];
};

// ---- State shared with the crash path (static storage, lock-free). ----

std::atomic<bool> g_installed{false};
Scratch* g_scratch = nullptr;
size_t g_scratch_size = 0;

std::atomic<pid_t> g_owner{0};
std::atomic<uint32_t> g_gen{0};           // dump attempts, 1-based
std::atomic<uint32_t> g_active_gen{0};    // the dump now freezing, or 0
std::atomic<uint32_t> g_release_gen{0};   // futex word: last released
std::atomic<uint32_t> g_nslots{0};
std::atomic<uint32_t> g_crash_waiters{0};
// Threads now inside OnSignal (tid; 0 = free). The handler's mask blocks
// the freeze signal, so a crash waiter, or a thread still leaving its park
// of the previous dump, looks from its status file like a thread that can
// never answer; it answers all the same (the waiter parks by polling, the
// leaving thread takes the queued signal on its way out). The freeze gives
// up early only on threads that are not in here.
std::atomic<pid_t> g_in_handler[kMaxThreads];
std::atomic<uint64_t> g_dump_count{0};
std::atomic<uint64_t> g_attempts{0};

// Options, copied at install.
bool g_fatal = true;
bool g_freeze = true;
bool g_redact_simd = true;
int g_req_sig = 0, g_freeze_sig = 0, g_watchdog_sig = 0;
int g_watchdog_ms = 10000;
int g_freeze_timeout_ms = 1000;
void (*g_on_dump)(const DumpResult&) = nullptr;
DumpTarget::Kind g_kind = DumpTarget::Kind::kDirectory;
int g_dirfd = -1;
int g_memfd = -1;
char g_dir[200];
char g_static_meta[4096];
size_t g_static_meta_len = 0;

constexpr int kCrashSignals[] = {SIGSEGV, SIGBUS,  SIGILL, SIGFPE,
                                 SIGABRT, SIGTRAP, SIGSYS};
struct sigaction g_old[NSIG];
bool g_have_old[NSIG];

// Recovery from a fault or watchdog inside the handler.
sigjmp_buf g_recover;
std::atomic<bool> g_recover_armed{false};
std::atomic<int> g_recover_reason{0};  // 1 fault, 2 watchdog
volatile int g_out_fd = -1;            // open dump fd, for cleanup
char g_tmp_name[96];
char g_final_name[96];

// Last result, published with a seqlock.
std::atomic<uint32_t> g_last_seq{0};
DumpResult g_last;

// Trial metadata, published with a seqlock.
std::atomic<uint32_t> g_trial_seq{0};
char g_trial_meta[kTrialMetaCap];
std::atomic<size_t> g_trial_len{0};

AltStackEntry g_altstacks[kMaxThreads];

#if defined(SIGRACE_TSAN)
// ThreadSanitizer defers a signal that arrives while its thread is not at
// a point the runtime can take it (inside code it does not instrument,
// such as OpenSSL, or in its own bookkeeping): its handler copies the
// kernel's signal context into the runtime's per-thread ThreadSignalContext
// (one slot per signal number, never cleared) and calls ours later with a
// pointer to that copy. The copy is sizeof(ucontext_t) bytes, which reads
// past the kernel's ucontext into the FP state, so it holds xmm0-15: key
// bytes when the thread was inside a signature (seen: RSA dP limbs in
// `fixed` dumps of the TSan build). That memory is the runtime's, outside
// any redaction. Every such copy the handler is handed is recorded here
// and redacted in every later dump; each thread takes one freeze signal
// when it sets up its alternate stack (PrimeDeferredContext), so its
// freeze slot is known before any dump needs it.
constexpr size_t kMaxForeignContexts = 2048;
struct ForeignContext {
  std::atomic<pid_t> tid{0};
  std::atomic<uintptr_t> addr{0};
};
ForeignContext g_foreign[kMaxForeignContexts];
#endif

// ---- Small helpers (all async-signal-safe). ----

void WriteStderr(const char* s) { ss::WriteAll(2, s, ss::StrLen(s)); }

void CopyStr(char* dst, size_t cap, const char* src) {
  size_t i = 0;
  for (; src[i] != '\0' && i + 1 < cap; ++i) dst[i] = src[i];
  dst[i] = '\0';
}

const char* ErrnoText(int e) {
  switch (e) {
    case ENOSPC: return "no space left on device";
    case EFBIG: return "file too large (RLIMIT_FSIZE)";
    case EDQUOT: return "disk quota exceeded";
    case EIO: return "input/output error";
    case EFAULT: return "fault inside the crash handler";
    case ETIMEDOUT: return "crash handler watchdog expired";
    case EACCES: return "permission denied";
    case ENOENT: return "no such file or directory";
    case EEXIST: return "file exists";
    case ENOBUFS: return "scratch buffer too small";
    default: return "error";
  }
}

void FutexWait(std::atomic<uint32_t>* word, uint32_t val, uint64_t ns) {
  struct timespec ts;
  ts.tv_sec = static_cast<time_t>(ns / 1000000000ull);
  ts.tv_nsec = static_cast<long>(ns % 1000000000ull);
  RawSyscall6(SYS_futex, reinterpret_cast<long>(word),
              FUTEX_WAIT_PRIVATE, val, reinterpret_cast<long>(&ts));
}

void FutexWakeAll(std::atomic<uint32_t>* word) {
  RawSyscall6(SYS_futex, reinterpret_cast<long>(word), FUTEX_WAKE_PRIVATE,
              0x7fffffff);
}

void SleepNs(uint64_t ns) {
  struct timespec ts = {0, static_cast<long>(ns)};
  RawSyscall6(SYS_nanosleep, reinterpret_cast<long>(&ts), 0);
}

uint64_t ArchGetBase(int code) {
  uint64_t v = 0;
  RawSyscall6(SYS_arch_prctl, code, reinterpret_cast<long>(&v));
  return v;
}

bool OnAltStack() {
  stack_t cur;
  if (RawSyscall6(SYS_sigaltstack, 0, reinterpret_cast<long>(&cur)) != 0) {
    return false;
  }
  return (cur.ss_flags & SS_ONSTACK) != 0;
}

#if defined(SIGRACE_TSAN)
// Records `uc` if it is not a kernel signal frame (those lie on the
// thread's alternate stack, or on its stack just above the handler).
void NoteForeignContext(const ucontext_t* uc) {
  const uintptr_t a = reinterpret_cast<uintptr_t>(uc);
  if (a == 0) return;
  const uintptr_t sp = reinterpret_cast<uintptr_t>(__builtin_frame_address(0));
  if (a >= sp && a - sp < kOwnerStackUse) return;
  stack_t cur;
  if (RawSyscall6(SYS_sigaltstack, 0, reinterpret_cast<long>(&cur)) == 0 &&
      (cur.ss_flags & SS_DISABLE) == 0) {
    const uintptr_t lo = reinterpret_cast<uintptr_t>(cur.ss_sp);
    if (a >= lo && a - lo < cur.ss_size) return;
  }
  const pid_t self = ss::Gettid();
  for (ForeignContext& f : g_foreign) {
    if (f.addr.load(std::memory_order_acquire) == a) return;
  }
  for (ForeignContext& f : g_foreign) {
    pid_t expected = 0;
    if (f.tid.compare_exchange_strong(expected, self,
                                      std::memory_order_acq_rel)) {
      f.addr.store(a, std::memory_order_release);
      return;
    }
  }
}

// Forgets the calling thread's copies (the runtime unmaps them when the
// thread exits; the range may then hold something else).
void ForgetForeignContexts() {
  const pid_t self = ss::Gettid();
  for (ForeignContext& f : g_foreign) {
    if (f.tid.load(std::memory_order_acquire) == self) {
      f.addr.store(0, std::memory_order_release);
      f.tid.store(0, std::memory_order_release);
    }
  }
}
#endif

bool GenReached(uint32_t released, uint32_t gen) {
  return static_cast<int32_t>(released - gen) >= 0;
}

ThreadSlot* FindSlot(pid_t tid) {
  const uint32_t n = g_nslots.load(std::memory_order_acquire);
  for (uint32_t i = 0; i < n && i < kMaxThreads; ++i) {
    if (g_scratch->slots[i].tid.load(std::memory_order_relaxed) == tid) {
      return &g_scratch->slots[i];
    }
  }
  return nullptr;
}

// Parks the calling thread for dump `gen`: publishes its context and waits
// until the owner releases it (or the bound passes; the owner may be gone).
void ParkInSlot(ThreadSlot* slot, const ucontext_t* uc, uint32_t gen) {
  slot->uc.store(uc, std::memory_order_relaxed);
  slot->fs_base.store(ArchGetBase(0x1003 /*ARCH_GET_FS*/),
                      std::memory_order_relaxed);
  slot->gs_base.store(ArchGetBase(0x1004 /*ARCH_GET_GS*/),
                      std::memory_order_relaxed);
  slot->park_sp.store(reinterpret_cast<uintptr_t>(__builtin_frame_address(0)),
                      std::memory_order_relaxed);
  slot->on_altstack.store(OnAltStack(), std::memory_order_relaxed);
  uint32_t expected = kSlotSignaled;
  // Release: the owner acquires the state and then reads the fields.
  if (!slot->state.compare_exchange_strong(expected, kSlotParked,
                                           std::memory_order_acq_rel)) {
    return;  // the owner gave up on us (timed out): do not park
  }
  const uint64_t deadline =
      NowNs() + static_cast<uint64_t>(g_watchdog_ms + 2000) * 1000000ull;
  for (;;) {
    const uint32_t rel = g_release_gen.load(std::memory_order_acquire);
    if (GenReached(rel, gen)) return;
    const uint64_t now = NowNs();
    if (now >= deadline) return;
    FutexWait(&g_release_gen, rel, deadline - now);
  }
}

// The freeze signal: park if the dump in progress asked for this thread.
void OnFreezeSignal(const ucontext_t* uc) {
  const uint32_t gen = g_active_gen.load(std::memory_order_acquire);
  if (gen == 0) return;  // stale signal from a finished dump
  ThreadSlot* slot = FindSlot(ss::Gettid());
  if (slot == nullptr) return;
  ParkInSlot(slot, uc, gen);
}

// ---- Freezing (owner side). ----

struct FreezeStats {
  uint32_t passes = 0;
  uint32_t timed_out = 0;
  uint32_t blocking = 0;  // gave up early: the freeze signal is blocked
};

// One pass over /proc/self/task: signals every thread not yet in the table.
// Returns how many new threads it found.
int ScanAndSignal(pid_t pid, pid_t self) {
  const long fd = RawSyscall6(SYS_open,
                              reinterpret_cast<long>("/proc/self/task"),
                              O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return 0;
  int found = 0;
  for (;;) {
    const long n = RawSyscall6(SYS_getdents64, fd,
                               reinterpret_cast<long>(g_scratch->dirents),
                               sizeof(g_scratch->dirents));
    if (n <= 0) break;
    for (long off = 0; off < n;) {
      const char* rec = g_scratch->dirents + off;
      uint16_t reclen;
      memcpy(&reclen, rec + 16, 2);
      const char* name = rec + 19;
      off += reclen;
      if (reclen == 0) break;
      pid_t tid = 0;
      bool numeric = name[0] != '\0';
      for (const char* p = name; *p != '\0'; ++p) {
        if (*p < '0' || *p > '9') {
          numeric = false;
          break;
        }
        tid = tid * 10 + (*p - '0');
      }
      if (!numeric || tid == self || FindSlot(tid) != nullptr) continue;
      const uint32_t i = g_nslots.load(std::memory_order_relaxed);
      if (i + 1 >= kMaxThreads) continue;  // captures[0] is the owner
      ThreadSlot& s = g_scratch->slots[i];
      s.uc.store(nullptr, std::memory_order_relaxed);
      s.state.store(kSlotSignaled, std::memory_order_relaxed);
      s.tid.store(tid, std::memory_order_relaxed);
      // Publish the slot before the signal: the target looks itself up.
      g_nslots.store(i + 1, std::memory_order_release);
      ++found;
      if (ss::Tgkill(pid, tid, g_freeze_sig) < 0) {
        s.state.store(kSlotGone, std::memory_order_release);
      }
    }
  }
  RawSyscall6(SYS_close, fd);
  return found;
}

// Marks the calling thread as inside OnSignal for the mark's life.
class InHandlerMark {
 public:
  explicit InHandlerMark(pid_t tid) {
    for (size_t i = 0; i < kMaxThreads; ++i) {
      pid_t expected = 0;
      if (g_in_handler[i].load(std::memory_order_relaxed) == 0 &&
          g_in_handler[i].compare_exchange_strong(expected, tid,
                                                  std::memory_order_acq_rel)) {
        slot_ = static_cast<int>(i);
        return;
      }
    }
  }
  ~InHandlerMark() {
    if (slot_ >= 0) g_in_handler[slot_].store(0, std::memory_order_release);
  }
  InHandlerMark(const InHandlerMark&) = delete;
  InHandlerMark& operator=(const InHandlerMark&) = delete;

 private:
  int slot_ = -1;
};

bool InsideHandler(pid_t tid) {
  for (size_t i = 0; i < kMaxThreads; ++i) {
    if (g_in_handler[i].load(std::memory_order_acquire) == tid) return true;
  }
  return false;
}

// The hex mask after `key` ("\nSigBlk:") in a status file, or false.
bool StatusMask(const char* buf, size_t len, const char* key, size_t key_len,
                uint64_t* mask) {
  for (size_t i = 0; i + key_len <= len; ++i) {
    if (memcmp(buf + i, key, key_len) != 0) continue;
    const char* h = buf + i + key_len;
    while (*h == ' ' || *h == '\t') ++h;
    uint64_t m = 0;
    int digits = 0;
    for (;; ++h, ++digits) {
      int d;
      if (*h >= '0' && *h <= '9') {
        d = *h - '0';
      } else if (*h >= 'a' && *h <= 'f') {
        d = *h - 'a' + 10;
      } else {
        break;
      }
      m = (m << 4) | static_cast<uint64_t>(d);
    }
    if (digits == 0) return false;
    *mask = m;
    return true;
  }
  return false;
}

// True when thread `tid` cannot take the freeze signal until it changes its
// mask: the signal is blocked (SigBlk) and still waits in the thread's own
// pending set (SigPnd), from /proc/self/task/TID/status. A thread that
// lives with every signal blocked (a sigwait() thread; ThreadSanitizer's
// background thread) never answers. False when the file cannot be read or
// parsed, so the thread is waited for as before.
bool FreezeSignalStuck(pid_t tid) {
  if (g_freeze_sig < 1 || g_freeze_sig > 64) return false;
  char path[64];
  ss::Text(path, sizeof(path)).Str("/proc/self/task/").UDec(
      static_cast<uint32_t>(tid)).Str("/status");
  char* buf = g_scratch->read_buf;
  const long n = ReadProcFile(path, buf, sizeof(g_scratch->read_buf) - 1);
  if (n < 0) return false;
  const size_t len = static_cast<size_t>(n);
  buf[len] = '\0';
  static constexpr char kBlk[] = "\nSigBlk:";
  static constexpr char kPnd[] = "\nSigPnd:";
  uint64_t blocked = 0, pending = 0;
  if (!StatusMask(buf, len, kBlk, sizeof(kBlk) - 1, &blocked) ||
      !StatusMask(buf, len, kPnd, sizeof(kPnd) - 1, &pending)) {
    return false;
  }
  const uint64_t bit = uint64_t{1} << (g_freeze_sig - 1);
  return (blocked & bit) != 0 && (pending & bit) != 0;
}

void WaitForAcks(uint64_t timeout_ns, FreezeStats* st) {
  const uint64_t start = NowNs();
  const uint64_t deadline = start + timeout_ns;
  bool checked_masks = false;
  for (int spin = 0;; ++spin) {
    bool pending = false;
    const uint32_t n = g_nslots.load(std::memory_order_relaxed);
    for (uint32_t i = 0; i < n; ++i) {
      if (g_scratch->slots[i].state.load(std::memory_order_acquire) ==
          kSlotSignaled) {
        pending = true;
        break;
      }
    }
    if (!pending) return;
    const uint64_t now = NowNs();
    if (now >= deadline) break;
    // Once, after a grace period that any thread merely between two
    // instructions, or briefly masking signals (pthread_create does),
    // answers within: a thread still silent whose freeze signal is blocked
    // and pending, and which is not inside our own handler, is given up on
    // now instead of at the deadline. It is counted apart from the
    // timed-out ones, and like them it runs on while the dump is written
    // and its registers are not in it.
    if (!checked_masks && now - start >= kBlockedGraceNs) {
      checked_masks = true;
      for (uint32_t i = 0; i < n; ++i) {
        ThreadSlot& slot = g_scratch->slots[i];
        const pid_t tid = slot.tid.load(std::memory_order_relaxed);
        if (slot.state.load(std::memory_order_acquire) != kSlotSignaled ||
            InsideHandler(tid) || !FreezeSignalStuck(tid)) {
          continue;
        }
        uint32_t expected = kSlotSignaled;
        if (slot.state.compare_exchange_strong(expected, kSlotBlocking,
                                               std::memory_order_acq_rel)) {
          ++st->blocking;
        }
      }
      continue;
    }
    if (spin < 64) {
      RawSyscall6(SYS_sched_yield);
    } else {
      SleepNs(20000);
    }
  }
  const uint32_t n = g_nslots.load(std::memory_order_relaxed);
  for (uint32_t i = 0; i < n; ++i) {
    uint32_t expected = kSlotSignaled;
    if (g_scratch->slots[i].state.compare_exchange_strong(
            expected, kSlotTimedOut, std::memory_order_acq_rel)) {
      ++st->timed_out;
    }
  }
}

// Freezes every other thread: multi-pass, until a pass finds no new one.
void FreezeOthers(pid_t pid, pid_t self, FreezeStats* st) {
  const uint64_t pass_ns =
      static_cast<uint64_t>(g_freeze_timeout_ms) * 1000000ull;
  for (int pass = 0; pass < kMaxFreezePasses; ++pass) {
    ++st->passes;
    const int found = ScanAndSignal(pid, self);
    WaitForAcks(pass_ns, st);
    (void)SIGRACE_FAILPOINT(kFpFreezePass);
    if (found == 0) break;
  }
}

void ReleaseOthers(uint32_t gen) {
  g_active_gen.store(0, std::memory_order_release);
  g_release_gen.store(gen, std::memory_order_release);
  FutexWakeAll(&g_release_gen);
}

// ---- Watchdog: a per-dump POSIX timer aimed at the owner thread. ----

long g_timer_id = -1;

void ArmWatchdog(pid_t self) {
  struct sigevent sev;
  memset(&sev, 0, sizeof(sev));
  sev.sigev_notify = SIGEV_THREAD_ID;
  sev.sigev_signo = g_watchdog_sig;
  sev._sigev_un._tid = self;
  int id = -1;
  if (RawSyscall6(SYS_timer_create, CLOCK_MONOTONIC,
                  reinterpret_cast<long>(&sev),
                  reinterpret_cast<long>(&id)) != 0) {
    g_timer_id = -1;
    return;
  }
  g_timer_id = id;
  struct itimerspec its;
  memset(&its, 0, sizeof(its));
  its.it_value.tv_sec = g_watchdog_ms / 1000;
  its.it_value.tv_nsec = static_cast<long>(g_watchdog_ms % 1000) * 1000000L;
  RawSyscall6(SYS_timer_settime, id, 0, reinterpret_cast<long>(&its), 0);
}

void DisarmWatchdog() {
  if (g_timer_id >= 0) RawSyscall6(SYS_timer_delete, g_timer_id);
  g_timer_id = -1;
}

void OnWatchdog() {
  if (g_owner.load(std::memory_order_acquire) != ss::Gettid()) return;
  bool armed = true;
  if (g_recover_armed.compare_exchange_strong(armed, false)) {
    g_recover_reason.store(2, std::memory_order_relaxed);
    siglongjmp(g_recover, 2);
  }
}

// ---- Dump content helpers. ----

void AddRedaction(size_t* n, uint64_t vaddr, uint64_t len, RedactionKind kind,
                  pid_t tid, const char* label) {
  if (*n >= kMaxRedactions) return;
  RedactionRecord& r = g_scratch->redactions[(*n)++];
  memset(&r, 0, sizeof(r));
  r.vaddr = vaddr;
  r.len = len;
  r.kind = static_cast<uint32_t>(kind);
  r.tid = tid;
  CopyStr(r.label, sizeof(r.label), label != nullptr ? label : "");
}

// Handler state on a thread's ordinary stack: from the deepest handler frame
// up to the interrupted rsp minus the red zone (signal frame, saved
// registers, handler locals). On an alternate stack nothing is needed here:
// the alternate stacks are MADV_DONTDUMP and recorded separately.
void AddHandlerStackRedaction(size_t* n, pid_t tid, const ucontext_t* uc,
                              uintptr_t low, bool on_altstack) {
  if (on_altstack || uc == nullptr) return;
  const uintptr_t rsp =
      static_cast<uintptr_t>(uc->uc_mcontext.gregs[REG_RSP]);
  if (rsp <= kRedZone || low >= rsp - kRedZone) return;
  AddRedaction(n, low, rsp - kRedZone - low, RedactionKind::kHandlerState,
               tid, "handler.signal-frame");
}

void ReadTrialMeta(ss::Text& t) {
  const uint32_t s1 = g_trial_seq.load(std::memory_order_acquire);
  if (s1 & 1) {
    // The writer is frozen mid-copy.
    t.Str("meta_torn=1\n");
    return;
  }
  const size_t len = g_trial_len.load(std::memory_order_relaxed);
  const size_t start = t.size();
  t.Bytes(g_trial_meta, len < kTrialMetaCap ? len : kTrialMetaCap);
  std::atomic_thread_fence(std::memory_order_acquire);
  if (g_trial_seq.load(std::memory_order_relaxed) != s1) {
    (void)start;
    t.Str("\nmeta_torn=1\n");
  } else if (len > 0 && g_trial_meta[len - 1] != '\n') {
    t.Ch('\n');
  }
}

size_t Backtrace(const ucontext_t* uc, char* buf, size_t cap) {
  ss::Text t(buf, cap);
  unw_cursor_t cursor;
  unw_context_t* ctx =
      const_cast<unw_context_t*>(reinterpret_cast<const unw_context_t*>(uc));
  if (unw_init_local2(&cursor, ctx, UNW_INIT_SIGNAL_FRAME) != 0) {
    t.Str("# libunwind could not start from the signal context\n");
    return t.size();
  }
  for (int i = 0; i < kMaxBacktraceFrames; ++i) {
    unw_word_t ip = 0;
    unw_get_reg(&cursor, UNW_REG_IP, &ip);
    // unw_get_proc_name would read ELF images with malloc; the table built
    // at install time is searched instead. Frames above the first hold
    // return addresses, which may already lie past the caller's end.
    char name[256];
    Symbolize(static_cast<uint64_t>(ip), name, sizeof(name),
              /*return_address=*/i > 0);
    t.Ch('#').UDec(static_cast<uint64_t>(i)).Ch(' ').Hex(ip).Ch(' ');
    t.Str(name);
    t.Ch('\n');
    if (unw_step(&cursor) <= 0) break;
  }
  return t.size();
}

void PublishResult(const DumpResult& r) {
  const uint32_t s = g_last_seq.load(std::memory_order_relaxed);
  g_last_seq.store(s + 1, std::memory_order_relaxed);
  std::atomic_thread_fence(std::memory_order_release);
  memcpy(static_cast<void*>(&g_last), &r, sizeof(r));
  g_last_seq.store(s + 2, std::memory_order_release);
}

void ReportFailure(const DumpResult& r) {
  char line[256];
  ss::Text t(line, sizeof(line));
  t.Str("sigrace: crash dump ").UDec(r.sequence).Str(" failed at ")
      .Str(r.stage).Str(": ").Str(ErrnoText(r.error)).Str(" (errno ")
      .Dec(r.error).Str("); no sealed dump was written\n");
  ss::WriteAll(2, t.data(), t.size());
}

// Opens the output. Returns the fd or -errno.
long OpenOutput(uint64_t seq, pid_t pid) {
  if (g_kind == DumpTarget::Kind::kMemfd) {
    // A fresh memfd per dump: whoever holds a dup of the previous one (a
    // driver that got it over a socket) keeps those bytes unchanged.
    const long fd = RawSyscall6(SYS_memfd_create,
                                reinterpret_cast<long>("sigrace-dump"),
                                MFD_CLOEXEC);
    if (fd < 0) return fd;
    if (g_memfd >= 0) RawSyscall6(SYS_close, g_memfd);
    g_memfd = static_cast<int>(fd);
    return g_memfd;
  }
  ss::Text tmp(g_tmp_name, sizeof(g_tmp_name));
  tmp.Str(".sigrace-").UDec(static_cast<uint64_t>(pid)).Ch('-').UDec(seq)
      .Str(".core.tmp");
  ss::Text fin(g_final_name, sizeof(g_final_name));
  fin.Str("sigrace-").UDec(static_cast<uint64_t>(pid)).Ch('-').UDec(seq)
      .Str(".core");
  return RawSyscall6(SYS_openat, g_dirfd, reinterpret_cast<long>(g_tmp_name),
                     O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
}

// Removes whatever an abandoned dump left, so nothing unsealed lingers.
void DiscardOutput() {
  const int fd = g_out_fd;
  g_out_fd = -1;
  if (g_kind == DumpTarget::Kind::kMemfd) {
    if (g_memfd >= 0) RawSyscall6(SYS_ftruncate, g_memfd, 0);
    return;
  }
  if (fd >= 0) RawSyscall6(SYS_close, fd);
  if (g_tmp_name[0] != '\0') {
    RawSyscall6(SYS_unlinkat, g_dirfd, reinterpret_cast<long>(g_tmp_name), 0);
  }
}

// Consumes a SIGXFSZ that a write past RLIMIT_FSIZE left pending (blocked
// in the handler's mask), so a live process does not die of it afterwards.
void DrainSigxfsz() {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGXFSZ);
  struct timespec zero = {0, 0};
  while (RawSyscall6(SYS_rt_sigtimedwait, reinterpret_cast<long>(&set), 0,
                     reinterpret_cast<long>(&zero), sizeof(uint64_t)) ==
         SIGXFSZ) {
  }
}

void BeforeSealHook() {
  if (SIGRACE_FAILPOINT(kFpBeforeSeal)) {
    // An `error` action: nothing to return through here; the fault and
    // pause actions already acted.
  }
}

// The dump itself, run by the owner. Fills `r`.
void RunDump(int sig, siginfo_t* info, ucontext_t* uc, bool live,
             DumpResult* r) {
  const pid_t pid = ss::Getpid();
  const pid_t self = ss::Gettid();
  const uint64_t t0 = NowNs();
  const uint32_t gen = g_gen.fetch_add(1, std::memory_order_relaxed) + 1;
  g_attempts.fetch_add(1, std::memory_order_relaxed);
  memset(static_cast<void*>(r), 0, sizeof(*r));
  r->sequence = gen;
  r->memfd = -1;
  r->signal = sig;
  r->si_code = info != nullptr ? info->si_code : 0;
  r->tid = self;
  g_tmp_name[0] = '\0';
  g_out_fd = -1;
  const uintptr_t entry_sp =
      reinterpret_cast<uintptr_t>(__builtin_frame_address(0));
  const bool owner_on_alt = OnAltStack();
  g_nslots.store(0, std::memory_order_relaxed);

  ArmWatchdog(self);
  g_recover_reason.store(0, std::memory_order_relaxed);
  if (sigsetjmp(g_recover, 1) == 0) {
    g_recover_armed.store(true, std::memory_order_release);
    (void)SIGRACE_FAILPOINT(kFpEntered);

    FreezeStats fst;
    if (g_freeze) {
      g_active_gen.store(gen, std::memory_order_release);
      FreezeOthers(pid, self, &fst);
    }
    // else WINDOW (no-freeze): the registry is read and memory copied while
    // every other thread runs on; only for the race variant that models it.
    r->freeze_ns = NowNs() - t0;
    r->freeze_passes = fst.passes;
    r->threads_unfrozen = fst.timed_out + fst.blocking;
    r->threads_blocking_freeze = fst.blocking;
    (void)SIGRACE_FAILPOINT(kFpAfterFreeze);

    // Registry snapshot: after the freeze, so no writer moves under us.
    Scratch& sc = *g_scratch;
    size_t nviews = SnapshotRegions(sc.regions, kMaxRegionViews);
    if (nviews > kMaxRegionViews) nviews = kMaxRegionViews;
    (void)SIGRACE_FAILPOINT(kFpAfterSnapshot);

    // Threads: the crashing one first, then every parked one.
    size_t nthreads = 0;
    ThreadCapture& me = sc.captures[nthreads++];
    me.tid = self;
    me.uc = uc;
    me.fs_base = ArchGetBase(0x1003);
    me.gs_base = ArchGetBase(0x1004);
    me.redact_registers = ThreadInSecretScope(self);
    me.redact_simd = g_redact_simd;
    size_t nred = 0;
    const uint32_t nslots = g_nslots.load(std::memory_order_acquire);
    for (uint32_t i = 0; i < nslots; ++i) {
      ThreadSlot& s = sc.slots[i];
      if (s.state.load(std::memory_order_acquire) != kSlotParked) continue;
      ThreadCapture& c = sc.captures[nthreads++];
      c.tid = s.tid.load(std::memory_order_relaxed);
      c.uc = s.uc.load(std::memory_order_relaxed);
      c.fs_base = s.fs_base.load(std::memory_order_relaxed);
      c.gs_base = s.gs_base.load(std::memory_order_relaxed);
      c.redact_registers = ThreadInSecretScope(c.tid);
      c.redact_simd = g_redact_simd;
      const uintptr_t psp = s.park_sp.load(std::memory_order_relaxed);
      AddHandlerStackRedaction(&nred, c.tid, c.uc,
                               psp > kParkStackUse ? psp - kParkStackUse : 0,
                               s.on_altstack.load(std::memory_order_relaxed));
    }
    r->threads = static_cast<uint32_t>(nthreads);
    AddHandlerStackRedaction(&nred, self, uc,
                             entry_sp > kOwnerStackUse
                                 ? entry_sp - kOwnerStackUse
                                 : 0,
                             owner_on_alt);

    // Redaction list: registry ranges, secret stacks, registers, handler
    // state (alternate stacks and scratch are MADV_DONTDUMP: recorded so
    // the scanner knows they were withheld, never present in a PT_LOAD).
    for (size_t i = 0; i < nviews; ++i) {
      const RegionView& v = sc.regions[i];
      RedactionKind k = RedactionKind::kRange;
      if (v.kind == RegionKind::kUpdatePrev) k = RedactionKind::kUpdatePrev;
      if (v.kind == RegionKind::kSecretStack) k = RedactionKind::kSecretStack;
      AddRedaction(&nred, v.addr, v.len, k, v.tid, v.label);
    }
    for (size_t i = 0; i < nthreads; ++i) {
      if (sc.captures[i].redact_registers) {
        AddRedaction(&nred, 0, 0, RedactionKind::kRegisters,
                     sc.captures[i].tid, "registers");
      } else if (sc.captures[i].redact_simd) {
        AddRedaction(&nred, 0, 0, RedactionKind::kRegisters,
                     sc.captures[i].tid, "simd-registers");
      }
    }
    for (size_t i = 0; i < kMaxThreads; ++i) {
      const uintptr_t a = g_altstacks[i].addr.load(std::memory_order_acquire);
      if (a == 0) continue;
      AddRedaction(&nred, a, g_altstacks[i].len.load(std::memory_order_relaxed),
                   RedactionKind::kHandlerState,
                   g_altstacks[i].tid.load(std::memory_order_relaxed),
                   "handler.altstack (not dumped)");
    }
#if defined(SIGRACE_TSAN)
    for (const ForeignContext& f : g_foreign) {
      const uintptr_t a = f.addr.load(std::memory_order_acquire);
      if (a == 0) continue;
      AddRedaction(&nred, a, sizeof(ucontext_t), RedactionKind::kHandlerState,
                   f.tid.load(std::memory_order_relaxed),
                   "tsan.deferred-signal-context");
    }
#endif
    AddRedaction(&nred, reinterpret_cast<uintptr_t>(g_scratch), g_scratch_size,
                 RedactionKind::kHandlerState, 0,
                 "handler.scratch (not dumped)");
    r->redactions = static_cast<uint32_t>(nred);

    // Process facts.
    const uint64_t maps_t0 = NowNs();
    ProcMapTable mt;
    mt.maps = sc.maps;
    mt.cap = kMaxMappings;
    mt.pool = sc.path_pool;
    mt.pool_cap = sizeof(sc.path_pool);
    ReadSelfSmaps(&mt, sc.read_buf, sizeof(sc.read_buf));
    long auxv_len = ReadProcFile("/proc/self/auxv", sc.auxv, sizeof(sc.auxv));
    long cmd_len =
        ReadProcFile("/proc/self/cmdline", sc.cmdline, sizeof(sc.cmdline));
    long comm_len =
        ReadProcFile("/proc/self/comm", sc.comm, sizeof(sc.comm) - 1);
    sc.comm[comm_len > 0 ? comm_len : 0] = '\0';
    r->maps_ns = NowNs() - maps_t0;

    // Meta note (key=value lines; never key material).
    ss::Text meta(sc.meta, sizeof(sc.meta));
    meta.Str("signal=").Dec(sig).Ch('\n');
    meta.Str("si_code=").Dec(r->si_code).Ch('\n');
    meta.Str("pid=").Dec(pid).Ch('\n');
    meta.Str("tid=").Dec(self).Ch('\n');
    meta.Str("mode=").Str(live ? "live" : "fatal").Ch('\n');
    meta.Str("sequence=").UDec(gen).Ch('\n');
    meta.Str("freeze=").Str(g_freeze ? "on" : "off").Ch('\n');
    meta.Str("threads=").UDec(nthreads).Ch('\n');
    meta.Str("threads_unfrozen=").UDec(fst.timed_out + fst.blocking).Ch('\n');
    meta.Str("threads_blocking_freeze=").UDec(fst.blocking).Ch('\n');
    meta.Str("freeze_passes=").UDec(fst.passes).Ch('\n');
    meta.Str("freeze_ns=").UDec(r->freeze_ns).Ch('\n');
    meta.Str("regions=").UDec(nviews).Ch('\n');
    meta.Str("mappings=").UDec(mt.count).Ch('\n');
    if (mt.truncated) meta.Str("mappings_truncated=1\n");
    if (mt.count + 1 > 65535) meta.Str("phnum_truncated=1\n");
    meta.Bytes(g_static_meta, g_static_meta_len);
    if (g_static_meta_len > 0 && g_static_meta[g_static_meta_len - 1] != '\n') {
      meta.Ch('\n');
    }
    ReadTrialMeta(meta);

    const size_t bt_len = Backtrace(uc, sc.backtrace, sizeof(sc.backtrace));

    (void)SIGRACE_FAILPOINT(kFpBeforeWrite);

    const long fd = OpenOutput(gen, pid);
    if (fd < 0) {
      r->error = static_cast<int>(-fd);
      CopyStr(r->stage, sizeof(r->stage), "open");
    } else {
      g_out_fd = static_cast<int>(fd);
      CoreInput in;
      in.threads = sc.captures;
      in.thread_count = nthreads;
      in.signal = sig;
      in.siginfo = info;
      in.maps = &mt;
      in.redactions = sc.redactions;
      in.redaction_count = nred;
      in.auxv = sc.auxv;
      in.auxv_len = auxv_len > 0 ? static_cast<size_t>(auxv_len) : 0;
      in.cmdline = sc.cmdline;
      in.cmdline_len = cmd_len > 0 ? static_cast<size_t>(cmd_len) : 0;
      in.comm = sc.comm;
      in.meta = sc.meta;
      in.meta_len = meta.size();
      in.backtrace = sc.backtrace;
      in.backtrace_len = bt_len;
      in.note_buf = sc.note_buf;
      in.note_cap = sizeof(sc.note_buf);
      in.copy_buf = sc.copy_buf;
      in.copy_cap = sizeof(sc.copy_buf);
      in.dump_len = sc.dump_len;
      in.pagemap_buf = sc.pagemap;
      in.pagemap_cap = sizeof(sc.pagemap) / sizeof(sc.pagemap[0]);
      in.before_seal = &BeforeSealHook;
      CoreOutput out;
      const uint64_t write_t0 = NowNs();
      const bool ok = WriteCore(in, static_cast<int>(fd), &out);
      r->write_ns = NowNs() - write_t0;
      r->size = out.size;
      r->mappings = out.loads;
      if (!ok) {
        r->error = out.error;
        CopyStr(r->stage, sizeof(r->stage), out.stage);
      } else if (g_kind == DumpTarget::Kind::kDirectory) {
        long rc = RawSyscall6(SYS_fsync, fd);
        if (rc < 0) {
          r->error = static_cast<int>(-rc);
          CopyStr(r->stage, sizeof(r->stage), "fsync");
        } else {
          RawSyscall6(SYS_close, fd);
          g_out_fd = -1;
          rc = RawSyscall6(SYS_renameat, g_dirfd,
                           reinterpret_cast<long>(g_tmp_name), g_dirfd,
                           reinterpret_cast<long>(g_final_name));
          if (rc < 0) {
            r->error = static_cast<int>(-rc);
            CopyStr(r->stage, sizeof(r->stage), "rename");
          } else {
            g_tmp_name[0] = '\0';
            RawSyscall6(SYS_fsync, g_dirfd);
            r->sealed = true;
            ss::Text p(r->path, sizeof(r->path));
            p.Str(g_dir).Ch('/').Str(g_final_name);
          }
        }
      } else {
        r->sealed = true;
        r->memfd = g_memfd;
        g_out_fd = -1;
      }
    }
  } else {
    const int reason = g_recover_reason.load(std::memory_order_relaxed);
    r->error = reason == 2 ? ETIMEDOUT : EFAULT;
    CopyStr(r->stage, sizeof(r->stage), reason == 2 ? "watchdog" : "fault");
    r->sealed = false;
  }
  g_recover_armed.store(false, std::memory_order_release);
  DisarmWatchdog();
  if (!r->sealed) {
    DiscardOutput();
    if (r->error == EFBIG) DrainSigxfsz();
    r->path[0] = '\0';
    r->memfd = -1;
  }
  r->ok = r->sealed;
  r->total_ns = NowNs() - t0;
  if (r->ok) {
    g_dump_count.fetch_add(1, std::memory_order_relaxed);
  } else {
    ReportFailure(*r);
  }
  PublishResult(*r);
}

// Sets `sig` to its default action in the kernel directly: a sanitizer
// runtime intercepts sigaction() and keeps its own deadly-signal handler in
// place of SIG_DFL (TSan's then reports a re-raised SIGSEGV as a fault at
// the sender's pid and exits 66), so the process would not die by the
// signal and the kernel would write no core.
void SetDefaultAction(int sig) {
  struct KernelSigaction {
    unsigned long handler;  // SIG_DFL
    unsigned long flags;
    unsigned long restorer;
    uint64_t mask;
  } k = {};
  RawSyscall6(SYS_rt_sigaction, sig, reinterpret_cast<long>(&k), 0,
              sizeof(k.mask));
}

// Hands the signal to whatever was installed before us (SIG_DFL if
// nothing), so the process dies by it or the earlier handler runs.
void ChainAndReraise(int sig, const siginfo_t* info) {
  struct sigaction sa;
  if (g_have_old[sig]) {
    sa = g_old[sig];
  } else {
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = SIG_DFL;
  }
  // An ignored fault would spin forever on the faulting instruction.
  if (!(sa.sa_flags & SA_SIGINFO) && sa.sa_handler == SIG_IGN) {
    sa.sa_handler = SIG_DFL;
  }
  if (!(sa.sa_flags & SA_SIGINFO) && sa.sa_handler == SIG_DFL) {
    SetDefaultAction(sig);
  } else {
    sigaction(sig, &sa, nullptr);
  }
  // A fault the kernel raised repeats when we return; a signal somebody
  // sent (kill, raise, abort) must be sent again.
  if (info == nullptr || info->si_code <= 0) {
    ss::Tgkill(ss::Getpid(), ss::Gettid(), sig);
  }
}

// A crashing thread that lost the CAS: park like a frozen thread for the
// owner (it cannot take the freeze signal, which the handler's mask blocks)
// and wait for the owner to finish, with a bound.
bool WaitAsCrashWaiter(const ucontext_t* uc, uint64_t deadline) {
  const pid_t self = ss::Gettid();
  g_crash_waiters.fetch_add(1, std::memory_order_relaxed);
  bool owner_gone = false;
  while (NowNs() < deadline) {
    if (g_owner.load(std::memory_order_acquire) == 0) {
      owner_gone = true;
      break;
    }
    const uint32_t gen = g_active_gen.load(std::memory_order_acquire);
    if (gen != 0) {
      ThreadSlot* slot = FindSlot(self);
      if (slot != nullptr &&
          slot->state.load(std::memory_order_acquire) == kSlotSignaled) {
        ParkInSlot(slot, uc, gen);
        continue;
      }
    }
    (void)SIGRACE_FAILPOINT(kFpWaiterPoll);
    SleepNs(50000);
  }
  g_crash_waiters.fetch_sub(1, std::memory_order_relaxed);
  return owner_gone;
}

void OnSignal(int sig, siginfo_t* info, void* ucv) {
  const int saved_errno = errno;
  const InHandlerMark mark(ss::Gettid());
  ucontext_t* uc = static_cast<ucontext_t*>(ucv);
#if defined(SIGRACE_TSAN)
  NoteForeignContext(uc);
#endif
  if (sig == g_freeze_sig) {
    OnFreezeSignal(uc);
    errno = saved_errno;
    return;
  }
  if (sig == g_watchdog_sig) {
    OnWatchdog();
    errno = saved_errno;
    return;
  }
  const pid_t self = ss::Gettid();
  const bool request = sig == g_req_sig;
  // Returning from a kernel-raised fault re-runs the faulting instruction,
  // so only requests and sent signals can be live.
  const bool sent = info == nullptr || info->si_code <= 0;
  const bool live = request || (!g_fatal && sent);

  if (g_owner.load(std::memory_order_acquire) == self) {
    // A fault inside our own handler (SA_NODEFER lets it in).
    bool armed = true;
    if (g_recover_armed.compare_exchange_strong(armed, false)) {
      g_recover_reason.store(1, std::memory_order_relaxed);
      siglongjmp(g_recover, 1);
    }
    WriteStderr("sigrace: fault outside the recoverable part of the crash "
                "handler\n");
    SetDefaultAction(sig);
    if (sent) ss::Tgkill(ss::Getpid(), self, sig);
    return;
  }

  const uint64_t deadline =
      NowNs() + static_cast<uint64_t>(g_watchdog_ms + 1000) * 1000000ull;
  for (;;) {
    pid_t expected = 0;
    if (g_owner.compare_exchange_strong(expected, self,
                                        std::memory_order_acq_rel)) {
      break;
    }
    // Another thread is dumping. Wait for it, then (live) try again so this
    // crash gets its own dump, or (bound passed) go on without a dump.
    if (!WaitAsCrashWaiter(uc, deadline)) {
      if (!live) ChainAndReraise(sig, info);
      errno = saved_errno;
      return;
    }
  }

  DumpResult result;
  RunDump(sig, info, uc, live, &result);
  if (g_on_dump != nullptr) g_on_dump(result);

  if (live) {
    ReleaseOthers(static_cast<uint32_t>(result.sequence));
    g_owner.store(0, std::memory_order_release);
    errno = saved_errno;
    return;
  }
  // Fatal: frozen threads stay parked so nothing runs on while the process
  // dies, unless an earlier handler takes over (it may return).
  if (g_have_old[sig] && (g_old[sig].sa_flags & SA_SIGINFO ||
                          (g_old[sig].sa_handler != SIG_DFL &&
                           g_old[sig].sa_handler != SIG_IGN))) {
    ReleaseOthers(static_cast<uint32_t>(result.sequence));
  }
  ChainAndReraise(sig, info);
  errno = saved_errno;
}

// Resolves lazily bound symbols and libunwind's caches at install time, so
// the crash path never runs the dynamic loader for the first time.
void WarmUp() {
  ucontext_t uc;
  getcontext(&uc);
  char buf[1024];
  (void)Backtrace(&uc, buf, sizeof(buf));
  (void)NowNs();
  (void)OnAltStack();
  (void)ArchGetBase(0x1003);
  WarmUpCoreWriter();
  sigset_t set;
  sigemptyset(&set);
}

struct AltStackOwner {
  void* base = nullptr;  // guard page + stack
  size_t size = 0;
  int entry = -1;
  ~AltStackOwner() {
#if defined(SIGRACE_TSAN)
    ForgetForeignContexts();
#endif
    if (base == nullptr) return;
    stack_t ss_off;
    memset(&ss_off, 0, sizeof(ss_off));
    ss_off.ss_flags = SS_DISABLE;
    sigaltstack(&ss_off, nullptr);
    if (entry >= 0) {
      g_altstacks[entry].addr.store(0, std::memory_order_release);
      g_altstacks[entry].tid.store(0, std::memory_order_release);
    }
    munmap(base, size);
    base = nullptr;
  }
};
thread_local AltStackOwner t_altstack;

// See g_foreign: has the runtime defer one freeze signal (a raw tgkill is
// asynchronous to it) and deliver it at the next intercepted call, so the
// handler learns where this thread's freeze slot is. Outside a dump the
// freeze signal does nothing else.
void PrimeDeferredContext() {
#if defined(SIGRACE_TSAN)
  if (!g_installed.load() || g_freeze_sig == 0) return;
  ss::Tgkill(ss::Getpid(), ss::Gettid(), g_freeze_sig);
  struct timespec zero = {0, 0};
  nanosleep(&zero, nullptr);
#endif
}

}  // namespace

Status InstallAltStackForThisThread() {
  if (t_altstack.base != nullptr) return Status::Ok();
  const size_t page = static_cast<size_t>(sysconf(_SC_PAGESIZE));
  const size_t size = kAltStackSize + page;
  void* base = mmap(nullptr, size, PROT_READ | PROT_WRITE,
                    MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (base == MAP_FAILED) return ErrnoError("mmap alternate stack", errno);
  // Guard page at the low end: an overflow faults instead of scribbling.
  mprotect(base, page, PROT_NONE);
  // It holds saved registers of every signal this thread takes.
  madvise(base, size, MADV_DONTDUMP);
  stack_t st;
  memset(&st, 0, sizeof(st));
  st.ss_sp = static_cast<char*>(base) + page;
  st.ss_size = kAltStackSize;
  if (sigaltstack(&st, nullptr) != 0) {
    const int e = errno;
    munmap(base, size);
    return ErrnoError("sigaltstack", e);
  }
  t_altstack.base = base;
  t_altstack.size = size;
  const pid_t tid = ss::Gettid();
  for (size_t i = 0; i < kMaxThreads; ++i) {
    pid_t expected = 0;
    if (g_altstacks[i].tid.compare_exchange_strong(expected, tid)) {
      g_altstacks[i].len.store(size, std::memory_order_relaxed);
      g_altstacks[i].addr.store(reinterpret_cast<uintptr_t>(base),
                                std::memory_order_release);
      t_altstack.entry = static_cast<int>(i);
      break;
    }
  }
  PrimeDeferredContext();
  return Status::Ok();
}

Status InstallHandler(const HandlerOptions& options) {
  if (g_installed.load()) {
    return FailedPreconditionError("crash handler already installed");
  }
  if (options.target.kind == DumpTarget::Kind::kDirectory) {
    if (options.target.directory.empty()) {
      return InvalidArgumentError("dump directory is empty");
    }
    if (options.target.directory.size() >= sizeof(g_dir)) {
      return InvalidArgumentError("dump directory path too long: " +
                                  options.target.directory);
    }
  }
  if (options.meta.size() >= sizeof(g_static_meta)) {
    return InvalidArgumentError("handler meta longer than 4 KiB");
  }
  if (options.watchdog_ms <= 0 || options.freeze_timeout_ms <= 0) {
    return InvalidArgumentError("watchdog and freeze timeouts must be > 0");
  }
  const int req = options.dump_request_signal != 0 ? options.dump_request_signal
                                                   : SIGRTMIN + 3;
  const int frz =
      options.freeze_signal != 0 ? options.freeze_signal : SIGRTMIN + 4;
  const int wd =
      options.watchdog_signal != 0 ? options.watchdog_signal : SIGRTMIN + 5;
  for (int s : {req, frz, wd}) {
    if (s <= 0 || s >= NSIG || s == SIGKILL || s == SIGSTOP) {
      return InvalidArgumentError("bad handler signal number " +
                                  std::to_string(s));
    }
    for (int c : kCrashSignals) {
      if (s == c) {
        return InvalidArgumentError("handler signal " + std::to_string(s) +
                                    " collides with a crash signal");
      }
    }
  }
  if (req == frz || req == wd || frz == wd) {
    return InvalidArgumentError("dump-request, freeze and watchdog signals "
                                "must differ");
  }

  // Target.
  int dirfd = -1, memfd = -1;
  if (options.target.kind == DumpTarget::Kind::kDirectory) {
    dirfd = open(options.target.directory.c_str(),
                 O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dirfd < 0) {
      return ErrnoError("open dump directory " + options.target.directory,
                        errno);
    }
  } else {
    memfd = static_cast<int>(syscall(SYS_memfd_create, "sigrace-dump",
                                     MFD_CLOEXEC));
    if (memfd < 0) return ErrnoError("memfd_create", errno);
  }

  // Scratch.
  const size_t page = static_cast<size_t>(sysconf(_SC_PAGESIZE));
  const size_t size = (sizeof(Scratch) + page - 1) / page * page;
  void* mem = mmap(nullptr, size, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (mem == MAP_FAILED) {
    const int e = errno;
    if (dirfd >= 0) close(dirfd);
    if (memfd >= 0) close(memfd);
    return ErrnoError("mmap crash handler scratch", e);
  }
  madvise(mem, size, MADV_DONTDUMP);
  g_scratch = new (mem) Scratch;
  g_scratch_size = size;

  g_fatal = options.fatal;
  g_freeze = options.freeze_threads;
  g_redact_simd = options.redact_simd_all_threads;
  g_req_sig = req;
  g_freeze_sig = frz;
  g_watchdog_sig = wd;
  g_watchdog_ms = options.watchdog_ms;
  g_freeze_timeout_ms = options.freeze_timeout_ms;
  g_on_dump = options.on_dump;
  g_kind = options.target.kind;
  g_dirfd = dirfd;
  g_memfd = memfd;
  CopyStr(g_dir, sizeof(g_dir), options.target.directory.c_str());
  // Length-counted text, not a C string.
  memcpy(g_static_meta, options.meta.data(),  // NOLINT(bugprone-not-null-terminated-result)
         options.meta.size());
  g_static_meta_len = options.meta.size();
  g_owner.store(0);
  g_active_gen.store(0);

  Status st = InstallAltStackForThisThread();
  if (!st.ok()) {
    UninstallHandler();
    return st;
  }
  // Without a table the backtrace still prints module+offset (or ??), so a
  // failure here does not stop the install.
  (void)BuildSymbolTable();
  WarmUp();

  // Fault signals: SA_NODEFER so a fault inside the handler re-enters it
  // and is caught (recovery) instead of killing the process outright.
  // Blocked while handling: the freeze and dump-request signals (a crash
  // waiter parks itself instead) and SIGXFSZ (a write past RLIMIT_FSIZE
  // must fail with EFBIG, not kill the process).
  sigset_t mask;
  sigemptyset(&mask);
  sigaddset(&mask, frz);
  sigaddset(&mask, req);
  sigaddset(&mask, SIGXFSZ);
  auto install = [&](int sig, int flags, const sigset_t& m) -> Status {
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_sigaction = &OnSignal;
    sa.sa_flags = SA_SIGINFO | SA_ONSTACK | flags;
    sa.sa_mask = m;
    if (sigaction(sig, &sa, &g_old[sig]) != 0) {
      return ErrnoError("sigaction " + std::to_string(sig), errno);
    }
    g_have_old[sig] = true;
    return Status::Ok();
  };
  g_installed.store(true);
  for (int sig : kCrashSignals) {
    st = install(sig, SA_NODEFER, mask);
    if (!st.ok()) break;
  }
  if (st.ok()) st = install(req, SA_RESTART, mask);
  sigset_t freeze_mask;
  sigemptyset(&freeze_mask);
  sigaddset(&freeze_mask, frz);
  sigaddset(&freeze_mask, req);
  if (st.ok()) st = install(frz, SA_RESTART, freeze_mask);
  if (st.ok()) st = install(wd, SA_RESTART, freeze_mask);
  if (!st.ok()) {
    UninstallHandler();
    return st;
  }
  PrimeDeferredContext();
  return Status::Ok();
}

void UninstallHandler() {
  for (int sig = 1; sig < NSIG; ++sig) {
    if (g_have_old[sig]) {
      sigaction(sig, &g_old[sig], nullptr);
      g_have_old[sig] = false;
    }
  }
  g_installed.store(false);
  if (g_dirfd >= 0) close(g_dirfd);
  if (g_memfd >= 0) close(g_memfd);
  g_dirfd = g_memfd = -1;
  if (g_scratch != nullptr) {
    g_scratch->~Scratch();
    munmap(g_scratch, g_scratch_size);
    g_scratch = nullptr;
  }
  FreeSymbolTable();
}

bool HandlerInstalled() { return g_installed.load(); }

Status SetTrialMeta(std::string_view meta) {
  if (meta.size() > kTrialMetaCap) {
    return InvalidArgumentError("trial meta longer than 4 KiB");
  }
  const uint32_t s = g_trial_seq.load(std::memory_order_relaxed);
  g_trial_seq.store(s + 1, std::memory_order_relaxed);
  std::atomic_thread_fence(std::memory_order_release);
  std::atomic_signal_fence(std::memory_order_seq_cst);
  memcpy(g_trial_meta, meta.data(), meta.size());
  g_trial_len.store(meta.size(), std::memory_order_relaxed);
  std::atomic_signal_fence(std::memory_order_seq_cst);
  g_trial_seq.store(s + 2, std::memory_order_release);
  return Status::Ok();
}

Status RequestLiveDump(pid_t tid) {
  if (!g_installed.load()) {
    return FailedPreconditionError("crash handler not installed");
  }
  const pid_t target = tid == 0 ? ss::Gettid() : tid;
  const long r = ss::Tgkill(ss::Getpid(), target, g_req_sig);
  if (r < 0) return ErrnoError("tgkill dump request", static_cast<int>(-r));
  return Status::Ok();
}

uint64_t DumpCount() { return g_dump_count.load(std::memory_order_relaxed); }
uint64_t DumpAttempts() { return g_attempts.load(std::memory_order_relaxed); }

DumpResult LastDump() {
  DumpResult r;
  for (;;) {
    const uint32_t s1 = g_last_seq.load(std::memory_order_acquire);
    if (s1 & 1) continue;
    memcpy(static_cast<void*>(&r), &g_last, sizeof(r));
    std::atomic_thread_fence(std::memory_order_acquire);
    if (g_last_seq.load(std::memory_order_relaxed) == s1) return r;
  }
}

int DumpRequestSignal() { return g_req_sig; }
int FreezeSignal() { return g_freeze_sig; }

uint32_t TEST_CrashWaiters() {
  return g_crash_waiters.load(std::memory_order_relaxed);
}

}  // namespace sigrace::crashdump
