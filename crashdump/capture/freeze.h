// Internal to crashdump/capture/: freezing every other thread for a dump,
// and the per-dump watchdog.
//
// The owner (the thread that won the owner CAS) signals every thread it
// finds in /proc/self/task with the freeze signal (tgkill) and waits, with
// a bound, until each one has parked in its slot (ThreadSlot in
// handler_state.h) with its ucontext published. /proc/self/task is re-read
// until a whole pass finds no new thread (the multi-pass method of
// google-coredumper). A thread that blocks the freeze signal is given up
// on early (FreezeSignalStuck). ReleaseOthers wakes them all.
//
// Thread safety: the owner-side functions (FreezeOthers, ReleaseOthers,
// ArmWatchdog, DisarmWatchdog) run only on the owner thread, one dump at a
// time. ParkInSlot/OnFreezeSignal run on the frozen threads. Everything
// here is safe to call from a signal handler.

#ifndef SIGRACE_CRASHDUMP_CAPTURE_FREEZE_H_
#define SIGRACE_CRASHDUMP_CAPTURE_FREEZE_H_

#include <sys/types.h>
#include <ucontext.h>

#include <cstdint>

#include "crashdump/capture/handler_state.h"

namespace sigrace::crashdump::internal {

struct FreezeStats {
  uint32_t passes = 0;
  uint32_t timed_out = 0;
  uint32_t blocking = 0;  // gave up early: the freeze signal is blocked
};

// The slot the owner assigned to `tid` in this dump, or null.
// Safe to call from a signal handler.
ThreadSlot* FindSlot(pid_t tid);

// Parks the calling thread for dump `gen`: publishes its context and waits
// until the owner releases it (or the bound passes; the owner may be gone).
// Safe to call from a signal handler.
void ParkInSlot(ThreadSlot* slot, const ucontext_t* uc, uint32_t gen);

// The freeze signal: park if the dump in progress asked for this thread.
// Safe to call from a signal handler.
void OnFreezeSignal(const ucontext_t* uc);

// Marks the calling thread as inside OnSignal for the mark's life
// (g_in_handler), so the freeze waits for it rather than giving up on it.
// Safe to call from a signal handler.
class InHandlerMark {
 public:
  explicit InHandlerMark(pid_t tid);
  ~InHandlerMark();
  InHandlerMark(const InHandlerMark&) = delete;
  InHandlerMark& operator=(const InHandlerMark&) = delete;

 private:
  int slot_ = -1;
};

// Freezes every other thread: multi-pass, until a pass finds no new one.
// Owner only. Safe to call from a signal handler.
void FreezeOthers(pid_t pid, pid_t self, FreezeStats* st);

// Ends dump `gen`'s freeze and wakes every parked thread.
// Owner only. Safe to call from a signal handler.
void ReleaseOthers(uint32_t gen);

// A per-dump POSIX timer aimed at the owner thread (g_watchdog_sig); on
// expiry OnWatchdog abandons the dump through g_recover.
// Owner only. Safe to call from a signal handler.
void ArmWatchdog(pid_t self);
void DisarmWatchdog();

// The watchdog signal: jumps back to the dump's recovery point if the
// calling thread is the owner and recovery is armed.
// Safe to call from a signal handler.
void OnWatchdog();

}  // namespace sigrace::crashdump::internal

#endif  // SIGRACE_CRASHDUMP_CAPTURE_FREEZE_H_
