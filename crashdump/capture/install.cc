// Install-time half of the redact-on-crash handler: validating options,
// mapping the scratch, opening the target, building the symbol table,
// warming libunwind, installing the signal actions and the per-thread
// alternate stacks; and the control-thread queries (LastDump, ...).
//
// Not async-signal-safe: everything in this file may allocate (Status
// messages, std::string, thread_local destructors) or call libc functions
// that take locks. Nothing here runs inside the signal handler; the crash
// path is handler.cc, freeze.cc and dump_steps.cc (checked by
// cmake/check_signal_safety.py).

#include <fcntl.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <time.h>
#include <ucontext.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>
#include <new>
#include <string>
#include <string_view>

#include "base/ablation.h"
#include "crashdump/capture/core_writer.h"
#include "crashdump/capture/dump_steps.h"
#include "crashdump/capture/handler.h"
#include "crashdump/capture/handler_state.h"
#include "crashdump/capture/signal_safe.h"
#include "crashdump/capture/symbol_table.h"

namespace sigrace::crashdump {

// The crash path's state is this file's to set up.
using namespace internal;  // NOLINT(google-build-using-namespace)

namespace {

#if defined(SIGRACE_TSAN)
// Forgets the calling thread's deferred-context copies (see g_foreign; the
// runtime unmaps them when the thread exits, and the range may then hold
// something else).
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

// Resolves lazily bound symbols and libunwind's caches at install time, so
// the crash path never runs the dynamic loader for the first time.
void WarmUp() {
  ucontext_t uc;
  getcontext(&uc);
  char buf[1024];
  (void)Backtrace(&uc, buf, sizeof(buf));
  (void)ss::NowNs();
  (void)ss::OnAltStack();
  (void)ss::ArchGetBase(ss::kArchGetFs);
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

namespace {

struct HandlerSignals {
  int req = 0;  // dump request
  int frz = 0;  // freeze
  int wd = 0;   // watchdog
};

Status ValidateOptions(const HandlerOptions& options, HandlerSignals* sigs) {
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
    return InvalidArgumentError(
        "dump-request, freeze and watchdog signals "
        "must differ");
  }
  *sigs = HandlerSignals{req, frz, wd};
  return Status::Ok();
}

// Opens the dump directory (or the first memfd) into *dirfd / *memfd.
Status OpenTarget(const DumpTarget& target, int* dirfd, int* memfd) {
  if (target.kind == DumpTarget::Kind::kDirectory) {
    *dirfd = open(target.directory.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (*dirfd < 0) {
      return ErrnoError("open dump directory " + target.directory, errno);
    }
  } else {
    *memfd = static_cast<int>(
        syscall(SYS_memfd_create, "sigrace-dump", MFD_CLOEXEC));
    if (*memfd < 0) return ErrnoError("memfd_create", errno);
  }
  return Status::Ok();
}

// Maps the crash path's scratch (MADV_DONTDUMP) into g_scratch.
Status MapScratch() {
  const size_t page = static_cast<size_t>(sysconf(_SC_PAGESIZE));
  const size_t size = (sizeof(Scratch) + page - 1) / page * page;
  void* mem = mmap(nullptr, size, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (mem == MAP_FAILED) return ErrnoError("mmap crash handler scratch", errno);
  madvise(mem, size, MADV_DONTDUMP);
  g_scratch = new (mem) Scratch;
  g_scratch_size = size;
  return Status::Ok();
}

// Appends "ablation=SPEC" to the static meta when a protection is off
// (base/ablation.h), starting a line; dropped if it does not fit.
void AppendAblationMeta() {
  const std::string spec = AblationSpec();
  if (spec.empty()) return;
  std::string line = "ablation=" + spec + "\n";
  if (g_static_meta_len > 0 && g_static_meta[g_static_meta_len - 1] != '\n') {
    line.insert(line.begin(), '\n');
  }
  if (g_static_meta_len + line.size() > sizeof(g_static_meta)) return;
  // A length-delimited buffer (g_static_meta_len), not a C string.
  // NOLINTNEXTLINE(bugprone-not-null-terminated-result)
  memcpy(g_static_meta + g_static_meta_len, line.data(), line.size());
  g_static_meta_len += line.size();
}

void CopyOptions(const HandlerOptions& options, const HandlerSignals& sigs,
                 int dirfd, int memfd) {
  g_fatal = options.fatal;
  g_freeze = options.freeze_threads;
  g_redact_simd = options.redact_simd_all_threads;
  g_req_sig = sigs.req;
  g_freeze_sig = sigs.frz;
  g_watchdog_sig = sigs.wd;
  g_watchdog_ms = options.watchdog_ms;
  g_freeze_timeout_ms = options.freeze_timeout_ms;
  g_on_dump = options.on_dump;
  g_kind = options.target.kind;
  g_dirfd = dirfd;
  g_memfd = memfd;
  ss::CopyStr(g_dir, sizeof(g_dir), options.target.directory.c_str());
  // Length-counted text, not a C string.
  // NOLINTNEXTLINE(bugprone-not-null-terminated-result)
  memcpy(g_static_meta, options.meta.data(), options.meta.size());
  g_static_meta_len = options.meta.size();
  // A dump taken with a protection switched off says so.
  AppendAblationMeta();
  g_owner.store(0);
  g_active_gen.store(0);
}

Status InstallAction(int sig, int flags, const sigset_t& mask) {
  struct sigaction sa;
  memset(&sa, 0, sizeof(sa));
  sa.sa_sigaction = &OnSignal;
  sa.sa_flags = SA_SIGINFO | SA_ONSTACK | flags;
  sa.sa_mask = mask;
  if (sigaction(sig, &sa, &g_old[sig]) != 0) {
    return ErrnoError("sigaction " + std::to_string(sig), errno);
  }
  g_have_old[sig] = true;
  return Status::Ok();
}

// Fault signals: SA_NODEFER so a fault inside the handler re-enters it and
// is caught (recovery) instead of killing the process outright. Blocked
// while handling: the freeze and dump-request signals (a crash waiter
// parks itself instead) and SIGXFSZ (a write past RLIMIT_FSIZE must fail
// with EFBIG, not kill the process).
Status InstallActions(const HandlerSignals& sigs) {
  sigset_t mask;
  sigemptyset(&mask);
  sigaddset(&mask, sigs.frz);
  sigaddset(&mask, sigs.req);
  sigaddset(&mask, SIGXFSZ);
  Status st;
  for (int sig : kCrashSignals) {
    st = InstallAction(sig, SA_NODEFER, mask);
    if (!st.ok()) return st;
  }
  SIGRACE_RETURN_IF_ERROR(InstallAction(sigs.req, SA_RESTART, mask));
  sigset_t freeze_mask;
  sigemptyset(&freeze_mask);
  sigaddset(&freeze_mask, sigs.frz);
  sigaddset(&freeze_mask, sigs.req);
  SIGRACE_RETURN_IF_ERROR(InstallAction(sigs.frz, SA_RESTART, freeze_mask));
  return InstallAction(sigs.wd, SA_RESTART, freeze_mask);
}

}  // namespace

Status InstallHandler(const HandlerOptions& options) {
  if (g_installed.load()) {
    return FailedPreconditionError("crash handler already installed");
  }
  HandlerSignals sigs;
  SIGRACE_RETURN_IF_ERROR(ValidateOptions(options, &sigs));
  int dirfd = -1, memfd = -1;
  SIGRACE_RETURN_IF_ERROR(OpenTarget(options.target, &dirfd, &memfd));
  Status st = MapScratch();
  if (!st.ok()) {
    if (dirfd >= 0) close(dirfd);
    if (memfd >= 0) close(memfd);
    return st;
  }
  CopyOptions(options, sigs, dirfd, memfd);

  st = InstallAltStackForThisThread();
  if (!st.ok()) {
    UninstallHandler();
    return st;
  }
  // Without a table the backtrace still prints module+offset (or ??), so a
  // failure here does not stop the install.
  (void)BuildSymbolTable();
  WarmUp();

  g_installed.store(true);
  st = InstallActions(sigs);
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

Status SetWatchdogMs(int ms) {
  if (ms <= 0) return InvalidArgumentError("watchdog must be positive");
  if (!g_installed.load()) {
    return FailedPreconditionError("no crash handler installed");
  }
  // Read when a dump arms its timer; a dump already running keeps the
  // bound it armed.
  __atomic_store_n(&g_watchdog_ms, ms, __ATOMIC_RELEASE);
  return Status::Ok();
}

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

// The tgkill is a raw syscall, but an error Status allocates its message.
Status RequestLiveDump(pid_t tid) {
  if (!g_installed.load()) {
    return FailedPreconditionError("crash handler not installed");
  }
  const pid_t target = tid == 0 ? ss::Gettid() : tid;
  const long r = ss::Tgkill(ss::Getpid(), target, g_req_sig);
  if (r < 0) return ErrnoError("tgkill dump request", static_cast<int>(-r));
  return Status::Ok();
}

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

}  // namespace sigrace::crashdump
