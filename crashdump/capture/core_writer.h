// The ELF core writer: turns a frozen process (thread contexts, the smaps
// table, the redaction list, sigrace's notes) into an ET_CORE file streamed
// to an fd, with every redacted range replaced by the marker, followed by
// the seal trailer (core_format.h).
//
// The file follows the layout the Linux kernel writes (fs/binfmt_elf.c):
// ELF header, program headers (PT_NOTE then one PT_LOAD per mapping), the
// note data, the load data page-aligned, so gdb, readelf and eu-stack open
// it. Deviations from the kernel are marked "DEVIATION" in core_writer.cc;
// in short:
//   - a seal trailer follows the ELF content (ELF readers ignore it);
//   - PROT_NONE, [vvar] and [vsyscall] mappings get a PT_LOAD with no file
//     bytes; beyond 65534 mappings the rest are dropped (no PN_XNUM);
//   - shared memory counts as anonymous by name (memfd, /dev/zero, SysV);
//   - orig_rax is -1, pr_utime/pr_stime and pr_sigpend are 0 (a signal
//     frame does not carry them);
//   - a thread that never answered the freeze signal (it blocks it) has no
//     NT_PRSTATUS; meta "threads_unfrozen" counts them;
//   - alternate signal stacks and the handler's scratch are MADV_DONTDUMP
//     (they hold copies of registers) and so carry no bytes; the redaction
//     note records them as kHandlerState.
//
// Memory is copied with process_vm_readv on our own pid, so a page that
// vanished or cannot be read becomes zeros instead of a fault.
//
// Thread safety: WriteCore uses only its arguments; callers give each call
// its own buffers. The caller must have frozen every other thread, or the
// memory read is a moving target.
// Everything here is safe to call from a signal handler.

#ifndef SIGRACE_CRASHDUMP_CAPTURE_CORE_WRITER_H_
#define SIGRACE_CRASHDUMP_CAPTURE_CORE_WRITER_H_

#include <signal.h>
#include <sys/types.h>
#include <ucontext.h>

#include <cstddef>
#include <cstdint>

#include "crashdump/capture/proc_maps.h"
#include "crashdump/format/core_format.h"

namespace sigrace::crashdump {

struct ThreadCapture {
  pid_t tid = 0;
  const ucontext_t* uc = nullptr;  // the interrupted context
  uint64_t fs_base = 0;
  uint64_t gs_base = 0;
  bool redact_registers = false;  // inside a SecretScope: GP and SIMD
  bool redact_simd = false;       // SIMD/x87 data registers only
};

struct CoreInput {
  const ThreadCapture* threads = nullptr;  // [0] is the crashing thread
  size_t thread_count = 0;
  int signal = 0;
  const siginfo_t* siginfo = nullptr;  // the crashing thread's
  ProcMapTable* maps = nullptr;        // dump sizes are decided here
  const RedactionRecord* redactions = nullptr;
  size_t redaction_count = 0;
  // Words of kSecretStack ranges that keep their value (unwinding reads
  // them), ascending by vaddr, each 8-aligned and inside no record of
  // another kind. Written to the redaction note (version 2).
  const PreservedWord* preserved = nullptr;
  size_t preserved_count = 0;
  const char* auxv = nullptr;
  size_t auxv_len = 0;
  const char* cmdline = nullptr;  // NUL-separated, as /proc/self/cmdline
  size_t cmdline_len = 0;
  const char* comm = nullptr;  // NUL-terminated
  const char* meta = nullptr;  // kNoteMeta text
  size_t meta_len = 0;
  const char* backtrace = nullptr;  // kNoteBacktrace text
  size_t backtrace_len = 0;
  // CLOCK_MONOTONIC at the signal's entry into the handler: the flight
  // recorder note's FlightFault (0: unknown).
  uint64_t fault_ns = 0;
  // Scratch owned by the caller.
  char* note_buf = nullptr;
  size_t note_cap = 0;
  char* copy_buf = nullptr;  // memory copy chunk, a multiple of 4096
  size_t copy_cap = 0;
  uint64_t* dump_len = nullptr;     // one per mapping (maps->cap entries)
  uint64_t* pagemap_buf = nullptr;  // /proc/self/pagemap entries
  size_t pagemap_cap = 0;           // in entries
  // Called between content and seal, so tests can fault there; may be null.
  void (*before_seal)() = nullptr;
};

struct CoreOutput {
  uint64_t size = 0;  // bytes written, trailer included
  uint32_t loads = 0;
  bool sealed = false;
  int error = 0;           // positive errno
  const char* stage = "";  // failing step
};

// Looks up what the writer needs from the CPU once (the XSAVE layout), so
// the first dump does not pay for it. Optional: WriteCore looks it up on
// first use otherwise.
// Not async-signal-safe by contract (call it at install time), though it
// only runs CPUID.
void WarmUpCoreWriter();

// Writes the core and its seal trailer to `fd` from the current offset.
// Returns true if the file is complete and sealed.
// Safe to call from a signal handler.
bool WriteCore(const CoreInput& in, int fd, CoreOutput* out);

// Kernel default coredump_filter (0x33) applied to one mapping: how many
// bytes from its start the dump holds. Reads 4 bytes of the mapping for the
// ELF-header rule.
// Safe to call from a signal handler.
uint64_t DumpSizeForMapping(const ProcMapping& m, const char* pool);

}  // namespace sigrace::crashdump

#endif  // SIGRACE_CRASHDUMP_CAPTURE_CORE_WRITER_H_
