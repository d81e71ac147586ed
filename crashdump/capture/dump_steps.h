// Internal to crashdump/capture/: one dump attempt, one function per step.
// The owner thread (the one that won the owner CAS in handler.cc) calls
// RunDump, which runs, in this order:
//
//   BeginAttempt        number the attempt, reset the result
//   -- recovery point: a fault or the watchdog jumps back here --
//   FreezeProcess       park every other thread (freeze.h)
//   SnapshotRegistry    copy the sensitive-region registry, after the freeze
//   CaptureThreads      the crashing thread first, then every parked one
//   ListRedactions      registry ranges, registers, handler state
//   ReadProcessFacts    /proc/self/smaps, auxv, cmdline, comm
//   BuildMetaNote       key=value lines (never key material)
//   UnwindThreads       libunwind from every captured thread's ucontext:
//                       the backtrace note, and the preserved words of the
//                       secret stacks (the slots that unwinding reads)
//   OpenDumpFile        a .tmp file in the directory, or a fresh memfd
//   WriteCoreFile       the ELF core with the seal trailer (core_writer.h)
//   SealDump            fsync and rename (directory), or hand out the memfd
//   -- after the recovery point --
//   RecordAbandoned     only after a fault or the watchdog
//   FinishAttempt       discard what is unsealed, count, report, publish
//
// Failpoints between the steps keep their names: "handler.entered",
// "handler.after_freeze", "handler.after_registry_snapshot",
// "handler.before_write", "handler.before_seal".
//
// Thread safety: only the owner thread runs these, one dump at a time; the
// state they share is the DumpContext on the owner's stack and the crash
// path state in handler_state.h. Every function declared here is safe to
// call from a signal handler.

#ifndef SIGRACE_CRASHDUMP_CAPTURE_DUMP_STEPS_H_
#define SIGRACE_CRASHDUMP_CAPTURE_DUMP_STEPS_H_

#include <signal.h>
#include <sys/types.h>
#include <ucontext.h>

#include <cstddef>
#include <cstdint>

#include "crashdump/capture/freeze.h"
#include "crashdump/capture/handler.h"
#include "crashdump/capture/proc_maps.h"

namespace sigrace::crashdump::internal {

// One dump attempt's working state, on the owner's stack (RunDump's frame).
struct DumpContext {
  // Set by RunDump and BeginAttempt.
  int sig = 0;
  siginfo_t* info = nullptr;
  const ucontext_t* uc = nullptr;
  bool live = false;
  pid_t pid = 0;
  pid_t self = 0;
  uint64_t t0 = 0;            // handler entry, NowNs()
  uint64_t entry_ns = 0;      // signal entry (before the owner CAS)
  uint32_t gen = 0;           // this attempt's sequence number
  uintptr_t entry_sp = 0;     // RunDump's frame: the owner's handler stack
  bool owner_on_alt = false;  // the owner runs on its alternate stack
  DumpResult* r = nullptr;
  // Filled in by the steps.
  bool frozen = false;  // other threads were frozen (meta "freeze")
  FreezeStats freeze;
  size_t nviews = 0;    // registry views in g_scratch->regions
  size_t nthreads = 0;  // captures in g_scratch->captures
  size_t nred = 0;      // records in g_scratch->redactions
  ProcMapTable maps;
  long auxv_len = 0;
  long cmdline_len = 0;
  size_t meta_len = 0;
  size_t backtrace_len = 0;
  size_t npreserved = 0;  // words in g_scratch->preserved, by vaddr
  long fd = -1;           // the open output
};

// The whole dump attempt; fills `r`. Owner only. `entry_ns`: NowNs() at
// the signal's entry into the handler, the dump's fault time.
// Safe to call from a signal handler.
void RunDump(int sig, siginfo_t* info, ucontext_t* uc, bool live, DumpResult* r,
             uint64_t entry_ns);

// Numbers the attempt and resets `d->r` and the per-dump globals.
// Safe to call from a signal handler.
void BeginAttempt(DumpContext* d);

// Freezes every other thread (unless the no-freeze window is configured
// or the `freeze` protection is ablated).
// Safe to call from a signal handler.
void FreezeProcess(DumpContext* d);

// Copies the registry into g_scratch->regions.
// Safe to call from a signal handler.
void SnapshotRegistry(DumpContext* d);

// Fills g_scratch->captures, and redacts the handler's own frames on each
// thread's ordinary stack.
// Safe to call from a signal handler.
void CaptureThreads(DumpContext* d);

// Appends the registry ranges, register redactions, alternate stacks and
// the scratch to g_scratch->redactions.
// Safe to call from a signal handler.
void ListRedactions(DumpContext* d);

// Reads /proc/self/smaps, auxv, cmdline and comm into the scratch.
// Safe to call from a signal handler.
void ReadProcessFacts(DumpContext* d);

// Writes the meta note text into g_scratch->meta.
// Safe to call from a signal handler.
void BuildMetaNote(DumpContext* d);

// Writes "#N 0xPC name+0xOFF" lines for the context `uc` into buf.
// Returns the length. Symbols come from the table built at install.
// Safe to call from a signal handler.
size_t Backtrace(const ucontext_t* uc, char* buf, size_t cap);

// Unwinds every captured thread with libunwind: writes the backtrace note
// (the crashing thread's frames, then "thread TID" and the frames of each
// other thread) into g_scratch->backtrace, and lists in
// g_scratch->preserved the words of kSecretStack ranges that the unwind
// read as a saved return address or frame pointer, each 8-aligned, inside
// that thread's secret-stack record and no record of another kind, its
// value inside an executable mapping or the word's own mapping (the
// thread's stack). Sorted by address, no word twice. Needs the maps
// (ReadProcessFacts) and the redaction list (ListRedactions).
// Safe to call from a signal handler.
void UnwindThreads(DumpContext* d);

// Opens the output; false (with the result's error and stage set) if it
// cannot.
// Safe to call from a signal handler.
bool OpenDumpFile(DumpContext* d);

// Streams the core and its seal trailer to the output; false on failure.
// Safe to call from a signal handler.
bool WriteCoreFile(DumpContext* d);

// Makes the written dump visible under its final name (fsync, rename,
// fsync of the directory) or hands out the memfd.
// Safe to call from a signal handler.
void SealDump(DumpContext* d);

// Records a dump abandoned by a fault or the watchdog.
// Safe to call from a signal handler.
void RecordAbandoned(DumpResult* r);

// Disarms the watchdog, removes an unsealed output, counts, reports a
// failure on stderr and publishes the result (LastDump).
// Safe to call from a signal handler.
void FinishAttempt(DumpResult* r, uint64_t t0);

}  // namespace sigrace::crashdump::internal

#endif  // SIGRACE_CRASHDUMP_CAPTURE_DUMP_STEPS_H_
