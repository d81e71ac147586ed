// The redact-on-crash handler: catches a fatal signal (or a dump request),
// freezes every other thread, snapshots the sensitive-region registry,
// writes a redacted ELF core dump, seals it, and then either lets the
// process die by the original signal (fatal) or resumes every thread
// (live).
//
// Sequence inside the handler (crash path):
//   1. The first crashing thread wins a CAS on the owner word; any other
//      thread that crashes meanwhile parks like a frozen thread and waits,
//      with a bound, for the owner to finish.
//   2. A watchdog timer aimed at the owner thread is armed; on expiry the
//      dump is abandoned (never sealed) and the handler goes on to step 8.
//   3. Freeze: every other thread gets the freeze signal with tgkill and
//      parks in the handler, leaving its ucontext where the owner reads it.
//      /proc/self/task is re-read (raw getdents64) until a whole pass finds
//      no new thread (the multi-pass method of google-coredumper).
//   4. Registry snapshot (crashdump::SnapshotRegions), after the freeze.
//   5. /proc/self/smaps and /proc/self/auxv are read with raw open/read.
//   6. Every captured thread is unwound with libunwind from its ucontext:
//      the backtrace note, and the slots inside secret stacks that the
//      unwind read a return address or saved frame pointer from (kept,
//      when they hold code or stack addresses, and listed in the
//      redaction note).
//   7. The ELF core is streamed to a temporary file (or a memfd), with
//      registered ranges, secret stacks (but their kept slots) and handler
//      state replaced by the marker; then the seal trailer, fsync and
//      rename.
//   8. Live: threads are released and the handler returns. Fatal: the
//      previous disposition (SIG_DFL if none) is restored and the signal
//      re-raised, so the process really dies by it (or the earlier handler
//      runs: chaining).
//
// Files: handler.cc is the signal entry (steps 1 and 8); freeze.cc steps
// 2-3; dump_steps.cc steps 4-7, one function per step; handler_state.h the
// state they share; install.cc everything done before a crash (Not
// async-signal-safe). cmake/check_signal_safety.py checks at build time
// that the crash-path objects call nothing outside signal_safe_allowlist.txt.
//
// Ablation (test builds, base/ablation.h; SIGRACE_ABLATE): each protection
// of the handler can be switched off at its one point, so an ablation run
// can show the fixed signer leaks without it. registry-cover and
// cover:LABEL (a range is neither redacted nor recorded) and secret-stack
// act in ListRedactions; scope-registers and simd-outside-scope where a
// thread's capture is set up (CaptureThreads); freeze in FreezeProcess;
// snapshot-after-freeze in the order of the steps (the snapshot moves
// before step 3); dontdump in the writer's DumpSizeForMapping (MADV_DONTDUMP
// pages are dumped). The meta note says "ablation=SPEC" for the spec active
// at install.
//
// Thread safety: InstallHandler/UninstallHandler/SetTrialMeta are
// Not async-signal-safe and must not race with each other (call them from
// one control thread). LastDump/DumpCount/RequestLiveDump may be called
// from any thread at any time.
//
// Failpoints inside the handler ("handler.entered",
// "handler.after_freeze_pass", "handler.after_freeze",
// "handler.after_registry_snapshot", "handler.before_write",
// "handler.before_seal") are evaluated on the crash path. A disarmed
// failpoint is one relaxed load and is async-signal-safe; an ARMED one is
// not (it takes the failpoint table's lock). Arm them only in tests that
// put a fault inside the handler on purpose. A fault raised inside the
// handler (raise(SIGSEGV) or a real one) is caught: the dump in progress is
// abandoned, reported, and never sealed.

#ifndef SIGRACE_CRASHDUMP_CAPTURE_HANDLER_H_
#define SIGRACE_CRASHDUMP_CAPTURE_HANDLER_H_

#include <sys/types.h>

#include <cstdint>
#include <string>
#include <string_view>
#include <utility>

#include "base/status.h"

namespace sigrace::crashdump {

// Where dumps go.
struct DumpTarget {
  enum class Kind {
    kDirectory,  // <directory>/sigrace-<pid>-<seq>.core, via a .tmp name
    kMemfd,      // a new memfd per dump; the previous one is closed
  };
  Kind kind = Kind::kDirectory;
  std::string directory;  // kDirectory only; must exist

  static DumpTarget Directory(std::string dir) {
    return DumpTarget{Kind::kDirectory, std::move(dir)};
  }
  static DumpTarget Memfd() { return DumpTarget{Kind::kMemfd, {}}; }
};

// What one dump attempt produced. Plain data; copied out with a seqlock.
struct DumpResult {
  uint64_t sequence = 0;  // 1 for the first attempt of the process
  bool ok = false;        // written and sealed
  bool sealed = false;    // the seal trailer was written
  int error = 0;          // errno of the failing step, 0 if ok
  char stage[32] = {};    // failing step: "open", "write", "fault", ...
  char path[256] = {};    // final file name (kDirectory), "" for memfd
  int memfd = -1;         // kMemfd: the fd holding the dump; else -1
  uint64_t size = 0;      // bytes including the trailer
  int signal = 0;         // signal that triggered the dump
  int si_code = 0;
  pid_t tid = 0;                  // the crashing (or dump-requesting) thread
  uint32_t threads = 0;           // threads in the dump (NT_PRSTATUS count)
  uint32_t threads_unfrozen = 0;  // threads that never acknowledged
  // Of those, the ones given up on early because they block the freeze
  // signal (ThreadSanitizer's background thread; a sigwait() thread).
  uint32_t threads_blocking_freeze = 0;
  uint32_t freeze_passes = 0;
  uint32_t mappings = 0;         // PT_LOAD count
  uint32_t redactions = 0;       // records in the redaction note
  uint32_t preserved_words = 0;  // secret-stack words kept for unwinding
  uint64_t freeze_ns = 0;        // time to freeze every other thread
  uint64_t maps_ns = 0;          // reading /proc/self/smaps, auxv, cmdline
  uint64_t unwind_ns = 0;        // the libunwind pass over every thread
  uint64_t write_ns = 0;         // writing and sealing the core
  uint64_t total_ns = 0;         // handler entry to sealed
};

struct HandlerOptions {
  DumpTarget target;
  // true: after a crash signal, restore the previous action and re-raise
  // (the process dies). false (live): return and continue. A live dump of
  // a synchronous fault (si_code > 0, SIGSEGV from a bad access) cannot
  // continue, since returning re-runs the faulting instruction; those are
  // always handled as fatal. The dump-request signal is always live.
  bool fatal = true;
  // Signal that asks for a live dump (RequestLiveDump). 0: SIGRTMIN+3.
  int dump_request_signal = 0;
  // Signal that parks other threads. 0: SIGRTMIN+4.
  int freeze_signal = 0;
  // Signal of the per-dump watchdog timer. 0: SIGRTMIN+5.
  int watchdog_signal = 0;
  // false opens the `no-freeze` race window on purpose: the handler
  // snapshots the registry and reads memory while other threads run on.
  // WINDOW: only for the race variant that models an unfrozen dumper.
  bool freeze_threads = true;
  // SIMD and x87 data registers (xmm/ymm/zmm, st) of EVERY thread become
  // marker bytes, not only those of threads inside a SecretScope. String
  // and memory functions (glibc's EVEX memcpy uses zmm16-31, which
  // vzeroall does not clear) leave the last bytes they copied there, so a
  // thread that left its scope long ago can still carry key bytes in them.
  // General registers of threads outside a scope are kept (8 bytes each,
  // shorter than any fragment the scanner counts) so gdb shows them.
  // false: SIMD registers are redacted only inside a SecretScope, as the
  // kernel would keep them (for studying register leaks).
  bool redact_simd_all_threads = true;
  // Bound on the whole handler; on expiry the dump is abandoned unsealed.
  int watchdog_ms = 10000;
  // Bound on waiting for one freeze pass to be acknowledged.
  int freeze_timeout_ms = 1000;
  // Static "key=value\n" text added to the meta note. Copied at install.
  std::string meta;
  // Called on the crashing thread after every dump attempt, inside the
  // handler: it must be async-signal-safe.
  void (*on_dump)(const DumpResult& result) = nullptr;
};

// Installs the handler for SIGSEGV, SIGBUS, SIGILL, SIGFPE, SIGABRT,
// SIGTRAP, SIGSYS and the dump-request signal, and gives the calling
// thread an alternate stack. Maps the scratch buffers (MADV_DONTDUMP),
// opens the target, and warms libunwind so nothing is loaded lazily later.
// Fails if already installed.
// Not async-signal-safe.
Status InstallHandler(const HandlerOptions& options);

// Restores the previous actions, frees the scratch and the target.
// Not async-signal-safe.
void UninstallHandler();

bool HandlerInstalled();

// Changes the watchdog bound (HandlerOptions::watchdog_ms) for the dumps
// that start after it; a dump in progress keeps the bound it armed.
// Not async-signal-safe.
Status SetWatchdogMs(int ms);

// Gives the calling thread an alternate signal stack (idempotent). Every
// thread the harness creates calls it first. The stack is MADV_DONTDUMP
// (it holds copies of registers) and is freed when the thread exits.
// Not async-signal-safe.
Status InstallAltStackForThisThread();

// Replaces the trial metadata (text "key=value\n" lines, at most 4 KiB)
// that the next dump puts in the meta note. A dump that catches the
// writer mid-copy records "meta_torn=1" instead.
// Not async-signal-safe (must not be called from a handler); lock-free.
Status SetTrialMeta(std::string_view meta);

// Sends the dump-request signal to thread `tid` of this process (tgkill).
// tid 0: the calling thread.
// Not async-signal-safe: the tgkill is a raw syscall, but an error Status
// allocates its message.
Status RequestLiveDump(pid_t tid = 0);

// Dump attempts that ended sealed.
// Safe to call from a signal handler.
uint64_t DumpCount();

// Dump attempts, sealed or not.
// Safe to call from a signal handler.
uint64_t DumpAttempts();

// The most recent dump attempt. In memfd mode the handler closes its memfd
// when the next dump starts; dup() it (or pass it over a socket) to keep
// it. Its bytes never change after the dump ends.
// Not async-signal-safe.
DumpResult LastDump();

// The resolved signal numbers (after 0 defaults), for tests and drivers.
int DumpRequestSignal();
int FreezeSignal();

// Crashing threads now waiting for another thread's dump (they lost the
// owner CAS). For tests that make a second thread crash mid-dump.
// Safe to call from a signal handler.
uint32_t TEST_CrashWaiters();

}  // namespace sigrace::crashdump

#endif  // SIGRACE_CRASHDUMP_CAPTURE_HANDLER_H_
