// One dump attempt, one function per step (the order is in dump_steps.h).
// Crash path: everything here is async-signal-safe. No malloc, no stdio,
// no locks; memory comes from the scratch mapped at install, text is built
// with ss::Text, files are touched with raw syscalls.

#include "crashdump/capture/dump_steps.h"

#include <fcntl.h>
#include <setjmp.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <time.h>

#define UNW_LOCAL_ONLY
#include <libunwind.h>

#include <atomic>
#include <cerrno>
#include <cstring>

#include "base/ablation.h"
#include "base/test_regression.h"
#include "crashdump/capture/core_writer.h"
#include "crashdump/capture/handler_state.h"
#include "crashdump/capture/signal_safe.h"
#include "crashdump/capture/symbol_table.h"
#include "crashdump/registry/registry.h"

namespace sigrace::crashdump::internal {
namespace {

using ss::NowNs;
using ss::RawSyscall6;

const char* ErrnoText(int e) {
  switch (e) {
    case ENOSPC:
      return "no space left on device";
    case EFBIG:
      return "file too large (RLIMIT_FSIZE)";
    case EDQUOT:
      return "disk quota exceeded";
    case EIO:
      return "input/output error";
    case EFAULT:
      return "fault inside the crash handler";
    case ETIMEDOUT:
      return "crash handler watchdog expired";
    case EACCES:
      return "permission denied";
    case ENOENT:
      return "no such file or directory";
    case EEXIST:
      return "file exists";
    case ENOBUFS:
      return "scratch buffer too small";
    default:
      return "error";
  }
}

void SetError(DumpResult* r, int error, const char* stage) {
  r->error = error;
  ss::CopyStr(r->stage, sizeof(r->stage), stage);
}

void AddRedaction(size_t* n, uint64_t vaddr, uint64_t len, RedactionKind kind,
                  pid_t tid, const char* label) {
  if (*n >= kMaxRedactions) return;
  RedactionRecord& r = g_scratch->redactions[(*n)++];
  memset(&r, 0, sizeof(r));
  r.vaddr = vaddr;
  r.len = len;
  r.kind = static_cast<uint32_t>(kind);
  r.tid = tid;
  ss::CopyStr(r.label, sizeof(r.label), label != nullptr ? label : "");
}

// Handler state on a thread's ordinary stack: from the deepest handler frame
// up to the interrupted rsp minus the red zone (signal frame, saved
// registers, handler locals). On an alternate stack nothing is needed here:
// the alternate stacks are MADV_DONTDUMP and recorded separately.
void AddHandlerStackRedaction(size_t* n, pid_t tid, const ucontext_t* uc,
                              uintptr_t low, bool on_altstack) {
  if (on_altstack || uc == nullptr) return;
  const uintptr_t rsp = static_cast<uintptr_t>(uc->uc_mcontext.gregs[REG_RSP]);
  if (rsp <= kRedZone || low >= rsp - kRedZone) return;
  AddRedaction(n, low, rsp - kRedZone - low, RedactionKind::kHandlerState, tid,
               "handler.signal-frame");
}

ThreadCapture& AddCapture(DumpContext* d, pid_t tid, const ucontext_t* uc,
                          uint64_t fs_base, uint64_t gs_base) {
  ThreadCapture& c = g_scratch->captures[d->nthreads++];
  c.tid = tid;
  c.uc = uc;
  c.fs_base = fs_base;
  c.gs_base = gs_base;
  const bool in_scope = ThreadInSecretScope(tid);
  // Protection `scope-registers`: every data register of a thread inside a
  // SecretScope (GP and SIMD). Ablated, such a thread keeps all of them.
  c.redact_registers = in_scope;
  if (Ablated(Protection::kScopeRegisters)) c.redact_registers = false;
  // Protection `simd-outside-scope`: the SIMD registers of every other
  // thread (a memcpy or a hash leaves its last words there).
  c.redact_simd = g_redact_simd && !in_scope;
  if (Ablated(Protection::kSimdOutsideScope)) c.redact_simd = false;
  return c;
}

void ReadTrialMeta(ss::Text& t) {
  const uint32_t s1 = g_trial_seq.load(std::memory_order_acquire);
  if (s1 & 1) {
    // The writer is frozen mid-copy.
    t.Str("meta_torn=1\n");
    return;
  }
  const size_t len = g_trial_len.load(std::memory_order_relaxed);
  t.Bytes(g_trial_meta, len < kTrialMetaCap ? len : kTrialMetaCap);
  std::atomic_thread_fence(std::memory_order_acquire);
  if (g_trial_seq.load(std::memory_order_relaxed) != s1) {
    t.Str("\nmeta_torn=1\n");
  } else if (len > 0 && g_trial_meta[len - 1] != '\n') {
    t.Ch('\n');
  }
}

// Opens the output. Returns the fd or -errno.
long OpenOutput(uint64_t seq, pid_t pid) {
  if (g_kind == DumpTarget::Kind::kMemfd) {
    // A fresh memfd per dump: whoever holds a dup of the previous one (a
    // driver that got it over a socket) keeps those bytes unchanged.
    const long fd = RawSyscall6(
        SYS_memfd_create, reinterpret_cast<long>("sigrace-dump"), MFD_CLOEXEC);
    if (fd < 0) return fd;
    if (g_memfd >= 0) RawSyscall6(SYS_close, g_memfd);
    g_memfd = static_cast<int>(fd);
    return g_memfd;
  }
  ss::Text tmp(g_tmp_name, sizeof(g_tmp_name));
  tmp.Str(".sigrace-")
      .UDec(static_cast<uint64_t>(pid))
      .Ch('-')
      .UDec(seq)
      .Str(".core.tmp");
  ss::Text fin(g_final_name, sizeof(g_final_name));
  fin.Str("sigrace-")
      .UDec(static_cast<uint64_t>(pid))
      .Ch('-')
      .UDec(seq)
      .Str(".core");
  return RawSyscall6(SYS_openat, g_dirfd, reinterpret_cast<long>(g_tmp_name),
                     O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC,
                     0600);
}

// ---- UnwindThreads helpers. ----

// The mapping holding `a` (maps ascend by start, as smaps lists them), or
// null.
const ProcMapping* MappingOf(const ProcMapTable& mt, uint64_t a) {
  size_t lo = 0, hi = mt.count;
  while (lo < hi) {
    const size_t mid = lo + (hi - lo) / 2;
    if (mt.maps[mid].end <= a) {
      lo = mid + 1;
    } else {
      hi = mid;
    }
  }
  if (lo < mt.count && mt.maps[lo].start <= a && a < mt.maps[lo].end) {
    return &mt.maps[lo];
  }
  return nullptr;
}

// Reads 8 bytes of our own memory; false if they cannot be read.
bool ReadWord(pid_t pid, uint64_t addr, uint64_t* value) {
  struct iovec local = {value, 8};
  struct iovec remote = {reinterpret_cast<void*>(addr), 8};
  return RawSyscall6(SYS_process_vm_readv, pid, reinterpret_cast<long>(&local),
                     1, reinterpret_cast<long>(&remote), 1, 0) == 8;
}

// The kSecretStack record of thread `tid` that holds [addr, addr + 8), or
// -1; -1 too if any record of another kind overlaps the word (its bytes
// are that record's marker).
long SecretStackRecordOf(const DumpContext* d, pid_t tid, uint64_t addr) {
  long found = -1;
  for (size_t i = 0; i < d->nred; ++i) {
    const RedactionRecord& r = g_scratch->redactions[i];
    if (r.len == 0 ||
        r.kind == static_cast<uint32_t>(RedactionKind::kRegisters)) {
      continue;
    }
    if (!(r.vaddr < addr + 8 && addr < r.vaddr + r.len)) continue;
    if (r.kind != static_cast<uint32_t>(RedactionKind::kSecretStack)) {
      return -1;
    }
    if (r.tid == tid && addr >= r.vaddr && addr + 8 <= r.vaddr + r.len &&
        found < 0) {
      found = static_cast<long>(i);
    }
  }
  return found;
}

// Adds the slot libunwind read `reg` from, if it is a word of one of the
// thread's secret stacks holding code or a stack address (the same test
// the oracle applies, crashdump/format/redaction_claims.h).
void MaybePreserve(DumpContext* d, unw_cursor_t* cursor, int reg,
                   PreservedSlot slot, pid_t tid, int frame) {
  unw_save_loc_t loc;
  if (unw_get_save_loc(cursor, reg, &loc) != 0 || loc.type != UNW_SLT_MEMORY) {
    return;
  }
  const uint64_t addr = static_cast<uint64_t>(loc.u.addr);
  if (addr % 8 != 0) return;
  const long rec = SecretStackRecordOf(d, tid, addr);
  if (rec < 0) return;
  const ProcMapping* home = MappingOf(d->maps, addr);
  uint64_t value = 0;
  if (home == nullptr || !ReadWord(d->pid, addr, &value)) return;
  const ProcMapping* target = MappingOf(d->maps, value);
  if (target == nullptr || (target != home && !target->exec)) return;
  if (d->npreserved >= kMaxPreserved) return;
  PreservedWord& w = g_scratch->preserved[d->npreserved++];
  w.vaddr = addr;
  w.record = static_cast<uint32_t>(rec);
  w.slot = static_cast<uint16_t>(slot);
  w.frame = static_cast<uint16_t>(frame);
}

// Adds the words of frame [sp, cfa) (the frame's own stack, below its
// caller's) inside the thread's secret stacks that hold cfa - 8: the entry
// rsp that a DW_CFA_def_cfa_expression of the `deref` form reads to find
// the CFA (OpenSSL's bignum assembly keeps it there). libunwind evaluates
// such an expression without reporting the slot; a debugger needs it.
// Such a word holds a stack address, nothing else.
void PreserveSavedStackPointer(DumpContext* d, pid_t tid, uint64_t sp,
                               uint64_t cfa, int frame) {
  if (cfa <= sp || cfa - sp > (uint64_t{1} << 20) || sp % 8 != 0) return;
  uint64_t chunk[64];
  for (uint64_t a = sp; a < cfa; a += sizeof(chunk)) {
    const uint64_t n = cfa - a < sizeof(chunk) ? cfa - a : sizeof(chunk);
    struct iovec local = {chunk, static_cast<size_t>(n)};
    struct iovec remote = {reinterpret_cast<void*>(a), static_cast<size_t>(n)};
    if (RawSyscall6(
            SYS_process_vm_readv, d->pid, reinterpret_cast<long>(&local), 1,
            reinterpret_cast<long>(&remote), 1, 0) != static_cast<long>(n)) {
      return;
    }
    for (uint64_t k = 0; k < n / 8; ++k) {
      if (chunk[k] != cfa - 8) continue;
      const uint64_t addr = a + k * 8;
      const long rec = SecretStackRecordOf(d, tid, addr);
      if (rec < 0 || d->npreserved >= kMaxPreserved) continue;
      PreservedWord& w = g_scratch->preserved[d->npreserved++];
      w.vaddr = addr;
      w.record = static_cast<uint32_t>(rec);
      w.slot = static_cast<uint16_t>(PreservedSlot::kSavedStackPointer);
      w.frame = static_cast<uint16_t>(frame);
    }
  }
}

// TEST REGRESSION (preserve-every-word): every word of every secret stack
// is listed as preserved, so the writer keeps the whole stack as it is.
bool PreserveEveryWord() {
  return TestRegressionOn(TestRegression::kPreserveEveryWord);
}

void PreserveWholeStacks(DumpContext* d) {
  for (size_t i = 0; i < d->nred; ++i) {
    const RedactionRecord& r = g_scratch->redactions[i];
    if (r.kind != static_cast<uint32_t>(RedactionKind::kSecretStack)) continue;
    for (uint64_t a = (r.vaddr + 7) / 8 * 8; a + 8 <= r.vaddr + r.len; a += 8) {
      if (d->npreserved >= kMaxPreserved) return;
      PreservedWord& w = g_scratch->preserved[d->npreserved++];
      w.vaddr = a;
      w.record = static_cast<uint32_t>(i);
      w.slot = static_cast<uint16_t>(PreservedSlot::kReturnAddress);
      w.frame = 0;
    }
  }
}

// Sorts the preserved words by address (insertion sort: a handful per
// frame, nearly in order) and drops repeats (a frame that does not save
// rbp leaves its caller's slot where the previous frame found it).
void SortPreserved(DumpContext* d) {
  PreservedWord* p = g_scratch->preserved;
  for (size_t i = 1; i < d->npreserved; ++i) {
    const PreservedWord w = p[i];
    size_t j = i;
    while (j > 0 && p[j - 1].vaddr > w.vaddr) {
      p[j] = p[j - 1];
      --j;
    }
    p[j] = w;
  }
  size_t n = 0;
  for (size_t i = 0; i < d->npreserved; ++i) {
    if (n > 0 && p[n - 1].vaddr == p[i].vaddr) continue;
    p[n++] = p[i];
  }
  d->npreserved = n;
}

// One thread's frames as "#N 0xPC name+0xOFF" lines into t; with `d`
// set, also the preserved words of its secret stacks. With `maps`, a pc
// outside every executable mapping is not printed and ends the walk: an
// unwind gone astray reads its "pcs" from stack words, which may be key
// bytes, and the note is not redacted.
void UnwindOne(const ucontext_t* uc, ss::Text& t, DumpContext* d, pid_t tid,
               const ProcMapTable* maps) {
  unw_cursor_t cursor;
  unw_context_t* ctx =
      const_cast<unw_context_t*>(reinterpret_cast<const unw_context_t*>(uc));
  if (unw_init_local2(&cursor, ctx, UNW_INIT_SIGNAL_FRAME) != 0) {
    t.Str("# libunwind could not start from the signal context\n");
    return;
  }
  for (int i = 0; i < kMaxBacktraceFrames; ++i) {
    unw_word_t ip = 0;
    unw_get_reg(&cursor, UNW_REG_IP, &ip);
    if (maps != nullptr) {
      const ProcMapping* m = MappingOf(*maps, static_cast<uint64_t>(ip));
      if (m == nullptr || !m->exec) {
        t.Ch('#').UDec(static_cast<uint64_t>(i));
        t.Str(" (pc outside code, not printed)\n");
        break;
      }
    }
    // unw_get_proc_name would read ELF images with malloc; the table built
    // at install time is searched instead. Frames above the first hold
    // return addresses, which may already lie past the caller's end.
    char name[256];
    Symbolize(static_cast<uint64_t>(ip), name, sizeof(name),
              /*return_address=*/i > 0);
    t.Ch('#').UDec(static_cast<uint64_t>(i)).Ch(' ').Hex(ip).Ch(' ');
    t.Str(name);
    t.Ch('\n');
    unw_word_t sp = 0;
    unw_get_reg(&cursor, UNW_REG_SP, &sp);
    if (unw_step(&cursor) <= 0) break;
    // The cursor is now at frame i + 1: where its rip (the return address
    // into it) and its rbp were saved is what a debugger reads too.
    if (d != nullptr) {
      MaybePreserve(d, &cursor, UNW_X86_64_RIP, PreservedSlot::kReturnAddress,
                    tid, i + 1);
      MaybePreserve(d, &cursor, UNW_X86_64_RBP, PreservedSlot::kFramePointer,
                    tid, i + 1);
      // Frame i's CFA is frame i + 1's stack pointer.
      unw_word_t cfa = 0;
      unw_get_reg(&cursor, UNW_REG_SP, &cfa);
      PreserveSavedStackPointer(d, tid, static_cast<uint64_t>(sp),
                                static_cast<uint64_t>(cfa), i);
    }
  }
}

void FillCoreInput(DumpContext* d, CoreInput* in) {
  Scratch& sc = *g_scratch;
  in->threads = sc.captures;
  in->thread_count = d->nthreads;
  in->signal = d->sig;
  in->siginfo = d->info;
  in->maps = &d->maps;
  in->redactions = sc.redactions;
  in->redaction_count = d->nred;
  in->preserved = sc.preserved;
  in->preserved_count = d->npreserved;
  in->auxv = sc.auxv;
  in->auxv_len = d->auxv_len > 0 ? static_cast<size_t>(d->auxv_len) : 0;
  in->cmdline = sc.cmdline;
  in->cmdline_len =
      d->cmdline_len > 0 ? static_cast<size_t>(d->cmdline_len) : 0;
  in->comm = sc.comm;
  in->meta = sc.meta;
  in->meta_len = d->meta_len;
  in->backtrace = sc.backtrace;
  in->backtrace_len = d->backtrace_len;
  in->fault_ns = d->entry_ns;
  in->note_buf = sc.note_buf;
  in->note_cap = sizeof(sc.note_buf);
  in->copy_buf = sc.copy_buf;
  in->copy_cap = sizeof(sc.copy_buf);
  in->dump_len = sc.dump_len;
  in->pagemap_buf = sc.pagemap;
  in->pagemap_cap = sizeof(sc.pagemap) / sizeof(sc.pagemap[0]);
}

void BeforeSealHook() {
  if (SIGRACE_FAILPOINT(kFpBeforeSeal)) {
    // An `error` action: nothing to return through here; the fault and
    // pause actions already acted.
  }
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
                     reinterpret_cast<long>(&zero),
                     sizeof(uint64_t)) == SIGXFSZ) {
  }
}

void ReportFailure(const DumpResult& r) {
  char line[256];
  ss::Text t(line, sizeof(line));
  t.Str("sigrace: crash dump ")
      .UDec(r.sequence)
      .Str(" failed at ")
      .Str(r.stage)
      .Str(": ")
      .Str(ErrnoText(r.error))
      .Str(" (errno ")
      .Dec(r.error)
      .Str("); no sealed dump was written\n");
  ss::WriteAll(2, t.data(), t.size());
}

void PublishResult(const DumpResult& r) {
  const uint32_t s = g_last_seq.load(std::memory_order_relaxed);
  g_last_seq.store(s + 1, std::memory_order_relaxed);
  std::atomic_thread_fence(std::memory_order_release);
  memcpy(static_cast<void*>(&g_last), &r, sizeof(r));
  g_last_seq.store(s + 2, std::memory_order_release);
}

// The steps between the recovery point and its end, in order.
void RunSteps(DumpContext* d) {
  // Protection `snapshot-after-freeze`: no writer moves under the
  // snapshot. Ablated, the snapshot is taken before the freeze, and a
  // thread that publishes, moves or enters a scope before it is parked is
  // not covered ("handler.entered" then lies between the two).
  bool snapshot_first = false;
  if (Ablated(Protection::kSnapshotAfterFreeze)) snapshot_first = true;
  if (snapshot_first) SnapshotRegistry(d);
  (void)SIGRACE_FAILPOINT(kFpEntered);
  FreezeProcess(d);
  (void)SIGRACE_FAILPOINT(kFpAfterFreeze);
  if (!snapshot_first) SnapshotRegistry(d);
  (void)SIGRACE_FAILPOINT(kFpAfterSnapshot);
  CaptureThreads(d);
  ListRedactions(d);
  ReadProcessFacts(d);
  UnwindThreads(d);
  BuildMetaNote(d);
  (void)SIGRACE_FAILPOINT(kFpBeforeWrite);
  if (!OpenDumpFile(d)) return;
  if (!WriteCoreFile(d)) return;
  SealDump(d);
}

}  // namespace

void RunDump(int sig, siginfo_t* info, ucontext_t* uc, bool live, DumpResult* r,
             uint64_t entry_ns) {
  DumpContext d;
  d.entry_ns = entry_ns;
  d.sig = sig;
  d.info = info;
  d.uc = uc;
  d.live = live;
  d.r = r;
  d.entry_sp = reinterpret_cast<uintptr_t>(__builtin_frame_address(0));
  BeginAttempt(&d);
  // Unchanged from here on, so still valid after siglongjmp.
  const uint64_t t0 = d.t0;
  ArmWatchdog(d.self);
  g_recover_reason.store(0, std::memory_order_relaxed);
  if (sigsetjmp(g_recover, 1) == 0) {
    g_recover_armed.store(true, std::memory_order_release);
    RunSteps(&d);
  } else {
    RecordAbandoned(r);
  }
  FinishAttempt(r, t0);
}

void BeginAttempt(DumpContext* d) {
  d->pid = ss::Getpid();
  d->self = ss::Gettid();
  d->t0 = NowNs();
  d->gen = g_gen.fetch_add(1, std::memory_order_relaxed) + 1;
  g_attempts.fetch_add(1, std::memory_order_relaxed);
  DumpResult* r = d->r;
  memset(static_cast<void*>(r), 0, sizeof(*r));
  r->sequence = d->gen;
  r->memfd = -1;
  r->signal = d->sig;
  r->si_code = d->info != nullptr ? d->info->si_code : 0;
  r->tid = d->self;
  g_tmp_name[0] = '\0';
  g_out_fd = -1;
  d->owner_on_alt = ss::OnAltStack();
  g_nslots.store(0, std::memory_order_relaxed);
}

void FreezeProcess(DumpContext* d) {
  d->frozen = g_freeze;
  // Protection `freeze`: ablated, every other thread runs on while the
  // dump is taken, as with the no-freeze window below.
  if (Ablated(Protection::kFreeze)) d->frozen = false;
  if (d->frozen) {
    g_active_gen.store(d->gen, std::memory_order_release);
    FreezeOthers(d->pid, d->self, &d->freeze);
  }
  // else WINDOW (no-freeze): the registry is read and memory copied while
  // every other thread runs on; only for the race variant that models it.
  DumpResult* r = d->r;
  r->freeze_ns = NowNs() - d->t0;
  r->freeze_passes = d->freeze.passes;
  r->threads_unfrozen = d->freeze.timed_out + d->freeze.blocking;
  r->threads_blocking_freeze = d->freeze.blocking;
}

void SnapshotRegistry(DumpContext* d) {
  // After the freeze, so no writer moves under us.
  d->nviews = SnapshotRegions(g_scratch->regions, kMaxRegionViews);
  if (d->nviews > kMaxRegionViews) d->nviews = kMaxRegionViews;
}

void CaptureThreads(DumpContext* d) {
  AddCapture(d, d->self, d->uc, ss::ArchGetBase(ss::kArchGetFs),
             ss::ArchGetBase(ss::kArchGetGs));
  const uint32_t nslots = g_nslots.load(std::memory_order_acquire);
  for (uint32_t i = 0; i < nslots; ++i) {
    ThreadSlot& s = g_scratch->slots[i];
    if (s.state.load(std::memory_order_acquire) != kSlotParked) continue;
    const ThreadCapture& c =
        AddCapture(d, s.tid.load(std::memory_order_relaxed),
                   s.uc.load(std::memory_order_relaxed),
                   s.fs_base.load(std::memory_order_relaxed),
                   s.gs_base.load(std::memory_order_relaxed));
    const uintptr_t psp = s.park_sp.load(std::memory_order_relaxed);
    AddHandlerStackRedaction(&d->nred, c.tid, c.uc,
                             psp > kParkStackUse ? psp - kParkStackUse : 0,
                             s.on_altstack.load(std::memory_order_relaxed));
  }
  d->r->threads = static_cast<uint32_t>(d->nthreads);
  AddHandlerStackRedaction(
      &d->nred, d->self, d->uc,
      d->entry_sp > kOwnerStackUse ? d->entry_sp - kOwnerStackUse : 0,
      d->owner_on_alt);
}

// Alternate stacks and scratch are MADV_DONTDUMP: recorded so the scanner
// knows they were withheld, never present in a PT_LOAD.
void ListRedactions(DumpContext* d) {
  Scratch& sc = *g_scratch;
  for (size_t i = 0; i < d->nviews; ++i) {
    const RegionView& v = sc.regions[i];
    if (v.kind == RegionKind::kSecretStack) {
      // Protection `secret-stack`: the stack below a SecretScope's entry.
      if (Ablated(Protection::kSecretStack)) continue;
    } else if (CoverAblated(v.label)) {
      // Protection `registry-cover` (every range) or `cover:LABEL` (the
      // ranges published under LABEL): ablated, the range is neither
      // redacted nor recorded, so the dump holds its bytes as they are.
      continue;
    }
    RedactionKind k = RedactionKind::kRange;
    if (v.kind == RegionKind::kUpdatePrev) k = RedactionKind::kUpdatePrev;
    if (v.kind == RegionKind::kSecretStack) k = RedactionKind::kSecretStack;
    AddRedaction(&d->nred, v.addr, v.len, k, v.tid, v.label);
  }
  for (size_t i = 0; i < d->nthreads; ++i) {
    const ThreadCapture& c = sc.captures[i];
    if (c.redact_registers) {
      AddRedaction(&d->nred, 0, 0, RedactionKind::kRegisters, c.tid,
                   "registers");
    } else if (c.redact_simd) {
      AddRedaction(&d->nred, 0, 0, RedactionKind::kRegisters, c.tid,
                   "simd-registers");
    }
  }
  for (const AltStackEntry& e : g_altstacks) {
    const uintptr_t a = e.addr.load(std::memory_order_acquire);
    if (a == 0) continue;
    AddRedaction(&d->nred, a, e.len.load(std::memory_order_relaxed),
                 RedactionKind::kHandlerState,
                 e.tid.load(std::memory_order_relaxed),
                 "handler.altstack (not dumped)");
  }
#if defined(SIGRACE_TSAN)
  for (const ForeignContext& f : g_foreign) {
    const uintptr_t a = f.addr.load(std::memory_order_acquire);
    if (a == 0) continue;
    AddRedaction(&d->nred, a, sizeof(ucontext_t), RedactionKind::kHandlerState,
                 f.tid.load(std::memory_order_relaxed),
                 "tsan.deferred-signal-context");
  }
#endif
  AddRedaction(&d->nred, reinterpret_cast<uintptr_t>(g_scratch), g_scratch_size,
               RedactionKind::kHandlerState, 0, "handler.scratch (not dumped)");
  d->r->redactions = static_cast<uint32_t>(d->nred);
}

void ReadProcessFacts(DumpContext* d) {
  Scratch& sc = *g_scratch;
  const uint64_t maps_t0 = NowNs();
  d->maps.maps = sc.maps;
  d->maps.cap = kMaxMappings;
  d->maps.pool = sc.path_pool;
  d->maps.pool_cap = sizeof(sc.path_pool);
  ReadSelfSmaps(&d->maps, sc.read_buf, sizeof(sc.read_buf));
  d->auxv_len = ReadProcFile("/proc/self/auxv", sc.auxv, sizeof(sc.auxv));
  d->cmdline_len =
      ReadProcFile("/proc/self/cmdline", sc.cmdline, sizeof(sc.cmdline));
  const long comm_len =
      ReadProcFile("/proc/self/comm", sc.comm, sizeof(sc.comm) - 1);
  sc.comm[comm_len > 0 ? comm_len : 0] = '\0';
  d->r->maps_ns = NowNs() - maps_t0;
}

void BuildMetaNote(DumpContext* d) {
  const FreezeStats& fst = d->freeze;
  ss::Text meta(g_scratch->meta, sizeof(g_scratch->meta));
  meta.Str("signal=").Dec(d->sig).Ch('\n');
  meta.Str("si_code=").Dec(d->r->si_code).Ch('\n');
  meta.Str("pid=").Dec(d->pid).Ch('\n');
  meta.Str("tid=").Dec(d->self).Ch('\n');
  meta.Str("mode=").Str(d->live ? "live" : "fatal").Ch('\n');
  meta.Str("sequence=").UDec(d->gen).Ch('\n');
  meta.Str("freeze=").Str(d->frozen ? "on" : "off").Ch('\n');
  meta.Str("threads=").UDec(d->nthreads).Ch('\n');
  meta.Str("threads_unfrozen=").UDec(fst.timed_out + fst.blocking).Ch('\n');
  meta.Str("threads_blocking_freeze=").UDec(fst.blocking).Ch('\n');
  meta.Str("freeze_passes=").UDec(fst.passes).Ch('\n');
  meta.Str("freeze_ns=").UDec(d->r->freeze_ns).Ch('\n');
  meta.Str("regions=").UDec(d->nviews).Ch('\n');
  meta.Str("preserved_words=").UDec(d->npreserved).Ch('\n');
  meta.Str("mappings=").UDec(d->maps.count).Ch('\n');
  if (d->maps.truncated) meta.Str("mappings_truncated=1\n");
  if (d->maps.count + 1 > 65535) meta.Str("phnum_truncated=1\n");
  meta.Bytes(g_static_meta, g_static_meta_len);
  if (g_static_meta_len > 0 && g_static_meta[g_static_meta_len - 1] != '\n') {
    meta.Ch('\n');
  }
  ReadTrialMeta(meta);
  d->meta_len = meta.size();
}

size_t Backtrace(const ucontext_t* uc, char* buf, size_t cap) {
  ss::Text t(buf, cap);
  UnwindOne(uc, t, nullptr, 0, nullptr);
  return t.size();
}

void UnwindThreads(DumpContext* d) {
  const uint64_t unwind_t0 = NowNs();
  Scratch& sc = *g_scratch;
  d->npreserved = 0;
  ss::Text t(sc.backtrace, sizeof(sc.backtrace));
  // Protection `secret-stack` ablated: no secret-stack record, nothing to
  // keep inside one.
  const bool every = PreserveEveryWord();
  for (size_t i = 0; i < d->nthreads; ++i) {
    const ThreadCapture& c = sc.captures[i];
    if (c.uc == nullptr) continue;
    if (i > 0) t.Str("thread ").UDec(static_cast<uint64_t>(c.tid)).Ch('\n');
    // Only a thread with a secret stack has slots to keep.
    bool secret = false;
    for (size_t k = 0; k < d->nred && !secret; ++k) {
      const RedactionRecord& r = sc.redactions[k];
      secret = r.tid == c.tid &&
               r.kind == static_cast<uint32_t>(RedactionKind::kSecretStack);
    }
    UnwindOne(c.uc, t, every || !secret ? nullptr : d, c.tid, &d->maps);
  }
  if (every) PreserveWholeStacks(d);
  SortPreserved(d);
  d->backtrace_len = t.size();
  d->r->preserved_words = static_cast<uint32_t>(d->npreserved);
  d->r->unwind_ns = NowNs() - unwind_t0;
}

bool OpenDumpFile(DumpContext* d) {
  d->fd = OpenOutput(d->gen, d->pid);
  if (d->fd < 0) {
    SetError(d->r, static_cast<int>(-d->fd), "open");
    return false;
  }
  g_out_fd = static_cast<int>(d->fd);
  return true;
}

bool WriteCoreFile(DumpContext* d) {
  CoreInput in;
  FillCoreInput(d, &in);
  in.before_seal = &BeforeSealHook;
  CoreOutput out;
  const uint64_t write_t0 = NowNs();
  const bool ok = WriteCore(in, static_cast<int>(d->fd), &out);
  DumpResult* r = d->r;
  r->write_ns = NowNs() - write_t0;
  r->size = out.size;
  r->mappings = out.loads;
  if (!ok) SetError(r, out.error, out.stage);
  return ok;
}

void SealDump(DumpContext* d) {
  DumpResult* r = d->r;
  if (g_kind != DumpTarget::Kind::kDirectory) {
    r->sealed = true;
    r->memfd = g_memfd;
    g_out_fd = -1;
    return;
  }
  long rc = RawSyscall6(SYS_fsync, d->fd);
  if (rc < 0) {
    SetError(r, static_cast<int>(-rc), "fsync");
    return;
  }
  RawSyscall6(SYS_close, d->fd);
  g_out_fd = -1;
  rc = RawSyscall6(SYS_renameat, g_dirfd, reinterpret_cast<long>(g_tmp_name),
                   g_dirfd, reinterpret_cast<long>(g_final_name));
  if (rc < 0) {
    SetError(r, static_cast<int>(-rc), "rename");
    return;
  }
  g_tmp_name[0] = '\0';
  RawSyscall6(SYS_fsync, g_dirfd);
  r->sealed = true;
  ss::Text p(r->path, sizeof(r->path));
  p.Str(g_dir).Ch('/').Str(g_final_name);
}

void RecordAbandoned(DumpResult* r) {
  const int reason = g_recover_reason.load(std::memory_order_relaxed);
  const bool watchdog = reason == kRecoverWatchdog;
  SetError(r, watchdog ? ETIMEDOUT : EFAULT, watchdog ? "watchdog" : "fault");
  r->sealed = false;
}

void FinishAttempt(DumpResult* r, uint64_t t0) {
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

}  // namespace sigrace::crashdump::internal
