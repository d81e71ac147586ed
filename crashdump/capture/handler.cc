// The signal entry of the redact-on-crash handler (sequence in handler.h):
// OnSignal decides who dumps (first crasher wins the owner CAS; the others
// wait as crash waiters), runs the dump (dump_steps.h) and then returns
// (live) or hands the signal on (fatal: ChainAndReraise).
//
// Crash path: everything in this file is async-signal-safe. Install-time
// code is in install.cc; freezing in freeze.cc; the dump's steps in
// dump_steps.cc; the shared state in handler_state.h.

#include "crashdump/capture/handler.h"

#include <signal.h>
#include <sys/syscall.h>
#include <ucontext.h>

#include <atomic>
#include <cerrno>
#include <cstring>

#include "crashdump/capture/dump_steps.h"
#include "crashdump/capture/freeze.h"
#include "crashdump/capture/handler_state.h"
#include "crashdump/capture/signal_safe.h"

namespace sigrace::crashdump {
namespace internal {
namespace {

using ss::NowNs;
using ss::RawSyscall6;

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
#endif

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
    ss::SleepNs(50000);
  }
  g_crash_waiters.fetch_sub(1, std::memory_order_relaxed);
  return owner_gone;
}

// A fault inside our own handler (SA_NODEFER lets it in): abandon the dump
// through the recovery point, or die by the signal if there is none.
void OnOwnFault(int sig, pid_t self, bool sent) {
  bool armed = true;
  if (g_recover_armed.compare_exchange_strong(armed, false)) {
    g_recover_reason.store(kRecoverFault, std::memory_order_relaxed);
    siglongjmp(g_recover, kRecoverFault);
  }
  ss::WriteStderr(
      "sigrace: fault outside the recoverable part of the crash handler\n");
  SetDefaultAction(sig);
  if (sent) ss::Tgkill(ss::Getpid(), self, sig);
}

// After the owner's dump. Live: release everyone and give up ownership.
// Fatal: frozen threads stay parked so nothing runs on while the process
// dies, unless an earlier handler takes over (it may return).
void EndDump(int sig, const siginfo_t* info, bool live,
             const DumpResult& result) {
  if (live) {
    ReleaseOthers(static_cast<uint32_t>(result.sequence));
    g_owner.store(0, std::memory_order_release);
    return;
  }
  if (g_have_old[sig] && (g_old[sig].sa_flags & SA_SIGINFO ||
                          (g_old[sig].sa_handler != SIG_DFL &&
                           g_old[sig].sa_handler != SIG_IGN))) {
    ReleaseOthers(static_cast<uint32_t>(result.sequence));
  }
  ChainAndReraise(sig, info);
}

}  // namespace

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
  // The dump's fault time (kNoteFlightRecorder's FlightFault), before any
  // wait for another thread's dump.
  const uint64_t entry_ns = NowNs();
  const pid_t self = ss::Gettid();
  const bool request = sig == g_req_sig;
  // Returning from a kernel-raised fault re-runs the faulting instruction,
  // so only requests and sent signals can be live.
  const bool sent = info == nullptr || info->si_code <= 0;
  const bool live = request || (!g_fatal && sent);

  if (g_owner.load(std::memory_order_acquire) == self) {
    OnOwnFault(sig, self, sent);
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
  RunDump(sig, info, uc, live, &result, entry_ns);
  if (g_on_dump != nullptr) g_on_dump(result);
  EndDump(sig, info, live, result);
  errno = saved_errno;
}

}  // namespace internal

uint64_t DumpCount() {
  return internal::g_dump_count.load(std::memory_order_relaxed);
}

uint64_t DumpAttempts() {
  return internal::g_attempts.load(std::memory_order_relaxed);
}

uint32_t TEST_CrashWaiters() {
  return internal::g_crash_waiters.load(std::memory_order_relaxed);
}

}  // namespace sigrace::crashdump
