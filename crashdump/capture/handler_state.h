// Internal to crashdump/capture/: the state the crash path shares between
// its steps (handler.cc, freeze.cc, dump_steps.cc) and the install-time
// code that sets it up (install.cc). Not a public header.
//
// Thread safety: everything here lives in static storage and is touched
// from signal handlers. Fields written only at install time (the options
// block, g_scratch, the target fds) are written before the handler is
// installed (sigaction orders them) and are read-only on the crash path.
// Everything that is written while a handler may run is a lock-free
// std::atomic (static_asserts below) or is owned by the one thread that
// won the owner CAS (g_owner), or is published with a seqlock.
// Every variable and function declared here is safe to use from a signal
// handler, unless its comment says otherwise.

#ifndef SIGRACE_CRASHDUMP_CAPTURE_HANDLER_STATE_H_
#define SIGRACE_CRASHDUMP_CAPTURE_HANDLER_STATE_H_

#include <setjmp.h>
#include <signal.h>
#include <sys/types.h>
#include <ucontext.h>

#include <atomic>
#include <cstddef>
#include <cstdint>

#include "base/failpoint.h"
#include "crashdump/capture/core_writer.h"
#include "crashdump/capture/handler.h"
#include "crashdump/capture/proc_maps.h"
#include "crashdump/format/core_format.h"
#include "crashdump/registry/registry.h"

namespace sigrace::crashdump::internal {

// ---- Failpoints on the crash path (defined in handler_failpoints.cc). ----
// Disarmed: one relaxed load each (safe in a signal handler). Armed: they
// take the failpoint table's lock, so only tests that fault the handler on
// purpose arm them.
extern failpoint::Site kFpEntered;        // "handler.entered"
extern failpoint::Site kFpFreezePass;     // "handler.after_freeze_pass"
extern failpoint::Site kFpAfterFreeze;    // "handler.after_freeze"
extern failpoint::Site kFpAfterSnapshot;  // "handler.after_registry_snapshot"
extern failpoint::Site kFpBeforeWrite;    // "handler.before_write"
extern failpoint::Site kFpBeforeSeal;     // "handler.before_seal"
// Once per poll of a crash waiter (a test holds it off the CPU with it).
extern failpoint::Site kFpWaiterPoll;  // "handler.crash_waiter_poll"

// ---- Sizes and bounds. ----

constexpr size_t kMaxThreads = 4096;
constexpr size_t kMaxMappings = 32768;
constexpr size_t kMaxRegionViews = 2 * kMaxRegions + kMaxScopeThreads;
constexpr size_t kMaxRedactions = kMaxRegionViews + 3 * kMaxThreads + 8;
constexpr size_t kAltStackSize = size_t{256} * 1024;
constexpr size_t kTrialMetaCap = 4096;
constexpr size_t kMetaCap = size_t{16} * 1024;
// Every captured thread's backtrace (64 frames of up to ~300 bytes for the
// crashing thread; the rest share what is left, and are cut off beyond).
constexpr size_t kBacktraceCap = size_t{256} * 1024;
// Preserved words of the secret stacks (two per frame and thread at most,
// unless the preserve-every-word test regression lists whole ranges).
constexpr size_t kMaxPreserved = 32768;
constexpr int kMaxFreezePasses = 64;
// How long a silent thread gets before its signal mask is looked at.
constexpr uint64_t kBlockedGraceNs = 20'000'000;
constexpr int kMaxBacktraceFrames = 64;
// Below-entry stack bytes assumed used by the handler when it runs on a
// thread's ordinary stack (a thread without an alternate stack).
constexpr uintptr_t kOwnerStackUse = uintptr_t{128} * 1024;
constexpr uintptr_t kParkStackUse = 2048;
constexpr uintptr_t kRedZone = 128;

// Every atomic type the handler touches must be lock-free: a lock inside
// std::atomic could be held by the interrupted thread.
static_assert(std::atomic<pid_t>::is_always_lock_free);
static_assert(std::atomic<int>::is_always_lock_free);
static_assert(std::atomic<uint32_t>::is_always_lock_free);
static_assert(std::atomic<uint64_t>::is_always_lock_free);
static_assert(std::atomic<size_t>::is_always_lock_free);
static_assert(std::atomic<bool>::is_always_lock_free);
static_assert(std::atomic<uintptr_t>::is_always_lock_free);
static_assert(std::atomic<const ucontext_t*>::is_always_lock_free);

// ---- Per-thread freeze slots. ----

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
  PreservedWord preserved[kMaxPreserved];
  char dirents[16384];
  uint64_t pagemap[8192];
  char copy_buf[1 << 20];
  char note_buf[48 << 20];
};

// ---- State shared with the crash path (handler_state.cc). ----

extern std::atomic<bool> g_installed;
extern Scratch* g_scratch;
extern size_t g_scratch_size;

extern std::atomic<pid_t> g_owner;
extern std::atomic<uint32_t> g_gen;          // dump attempts, 1-based
extern std::atomic<uint32_t> g_active_gen;   // the dump now freezing, or 0
extern std::atomic<uint32_t> g_release_gen;  // futex word: last released
extern std::atomic<uint32_t> g_nslots;
extern std::atomic<uint32_t> g_crash_waiters;
// Threads now inside OnSignal (tid; 0 = free). The handler's mask blocks
// the freeze signal, so a crash waiter, or a thread still leaving its park
// of the previous dump, looks from its status file like a thread that can
// never answer; it answers all the same (the waiter parks by polling, the
// leaving thread takes the queued signal on its way out). The freeze gives
// up early only on threads that are not in here.
extern std::atomic<pid_t> g_in_handler[kMaxThreads];
extern std::atomic<uint64_t> g_dump_count;
extern std::atomic<uint64_t> g_attempts;

// Options, copied at install (InstallHandler writes them before any
// handler is installed; the crash path only reads them).
extern bool g_fatal;
extern bool g_freeze;
extern bool g_redact_simd;
extern int g_req_sig, g_freeze_sig, g_watchdog_sig;
extern int g_watchdog_ms;
extern int g_freeze_timeout_ms;
extern void (*g_on_dump)(const DumpResult&);
extern DumpTarget::Kind g_kind;
extern int g_dirfd;
extern int g_memfd;
extern char g_dir[200];
extern char g_static_meta[4096];
extern size_t g_static_meta_len;

inline constexpr int kCrashSignals[] = {SIGSEGV, SIGBUS,  SIGILL, SIGFPE,
                                        SIGABRT, SIGTRAP, SIGSYS};
extern struct sigaction g_old[NSIG];
extern bool g_have_old[NSIG];

// Recovery from a fault or watchdog inside the handler.
enum : int { kRecoverFault = 1, kRecoverWatchdog = 2 };
extern sigjmp_buf g_recover;
extern std::atomic<bool> g_recover_armed;
extern std::atomic<int> g_recover_reason;  // kRecoverFault, kRecoverWatchdog
extern volatile int g_out_fd;              // open dump fd, for cleanup
extern char g_tmp_name[96];
extern char g_final_name[96];

// Last result, published with a seqlock.
extern std::atomic<uint32_t> g_last_seq;
extern DumpResult g_last;

// Trial metadata, published with a seqlock.
extern std::atomic<uint32_t> g_trial_seq;
extern char g_trial_meta[kTrialMetaCap];
extern std::atomic<size_t> g_trial_len;

extern AltStackEntry g_altstacks[kMaxThreads];

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
extern ForeignContext g_foreign[kMaxForeignContexts];
#endif

// The handler of every signal InstallHandler installs: the crash signals,
// the dump-request, freeze and watchdog signals (handler.cc).
// Safe to call from a signal handler (it is one).
void OnSignal(int sig, siginfo_t* info, void* ucv);

}  // namespace sigrace::crashdump::internal

#endif  // SIGRACE_CRASHDUMP_CAPTURE_HANDLER_STATE_H_
