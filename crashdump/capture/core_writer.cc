#include "crashdump/capture/core_writer.h"

#include <elf.h>
#include <fcntl.h>
#include <sys/procfs.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/user.h>

#include <atomic>
#include <cstring>

#include "base/ablation.h"
#include "base/test_regression.h"
#include "crashdump/capture/signal_safe.h"
#include "crashdump/registry/registry.h"

namespace sigrace::crashdump {
namespace {

using ss::RawSyscall6;

constexpr uint64_t kPage = 4096;
// PN_XNUM (extended program header numbering) is not written.
// DEVIATION: the kernel switches to PN_XNUM past 65535 program headers;
// sigrace drops the mappings beyond that and says so in the meta note.
constexpr size_t kMaxPhnum = 65535;

constexpr uint32_t kFpXstateMagic1 = 0x46505853u;  // FP_XSTATE_MAGIC1
constexpr size_t kFxsaveSize = 512;
constexpr size_t kSwBytesOffset = 464;
constexpr size_t kXsaveHeaderEnd = 576;

uint64_t RoundUp(uint64_t v, uint64_t a) { return (v + a - 1) / a * a; }

// Copies [src, src+n) of our own memory into dst; bytes that cannot be read
// become zeros. Never faults.
void ReadOwnMemory(pid_t pid, char* dst, uint64_t src, size_t n) {
  size_t done = 0;
  while (done < n) {
    struct iovec local = {dst + done, n - done};
    struct iovec remote = {reinterpret_cast<void*>(src + done), n - done};
    const long r =
        RawSyscall6(SYS_process_vm_readv, pid, reinterpret_cast<long>(&local),
                    1, reinterpret_cast<long>(&remote), 1, 0);
    if (r > 0) {
      done += static_cast<size_t>(r);
      continue;
    }
    if (r == -4 /*EINTR*/) continue;
    // Unreadable page: zero up to the next page boundary and go on.
    const uint64_t addr = src + done;
    size_t skip = static_cast<size_t>(RoundUp(addr + 1, kPage) - addr);
    if (skip > n - done) skip = n - done;
    memset(dst + done, 0, skip);
    done += skip;
  }
}

void FillMarker(char* p, uint64_t vaddr, size_t n) {
  for (size_t i = 0; i < n; ++i) {
    p[i] = kRedactionMarker[(vaddr + i) % kRedactionMarkerLen];
  }
}

// TEST REGRESSION (register-record-skip-overwrite): the dump still records
// the thread's registers as redacted (dump_steps.cc), but they keep their
// values.
bool SkipRegisterOverwrite() {
  return TestRegressionOn(TestRegression::kRegisterRecordSkipOverwrite);
}

// Buffered, checksummed output; remembers the first error.
class Sink {
 public:
  explicit Sink(int fd) : fd_(fd) {}
  void Put(const void* data, size_t n) {
    if (error_ != 0) return;
    hasher_.Update(data, n);
    written_ += n;
    if (n >= sizeof(buf_) / 2) {
      Flush();
      Raw(data, n);
      return;
    }
    if (used_ + n > sizeof(buf_)) Flush();
    memcpy(buf_ + used_, data, n);
    used_ += n;
  }
  // n zero bytes as a hole (lseek), so untouched pages cost no I/O. The
  // checksum still covers them, without reading zeros (UpdateZeros).
  void Hole(size_t n) {
    if (error_ != 0 || n == 0) return;
    Flush();
    hasher_.UpdateZeros(n);
    written_ += n;
    pending_hole_ += n;  // one lseek for a run of holes, at the next write
  }
  void Zeros(size_t n) {
    static const char kZero[512] = {};
    while (n > 0) {
      const size_t k = n < sizeof(kZero) ? n : sizeof(kZero);
      Put(kZero, k);
      n -= k;
    }
  }
  void Flush() {
    if (used_ > 0 && error_ == 0) Raw(buf_, used_);
    used_ = 0;
  }
  // The trailer is outside the checksum.
  void PutUnchecked(const void* data, size_t n) {
    Flush();
    Raw(data, n);
    if (error_ == 0) trailer_ += n;
  }
  int error() const { return error_; }
  uint64_t written() const { return written_; }
  uint64_t total() const { return written_ + trailer_; }
  uint64_t checksum() const { return hasher_.Finish(); }

 private:
  void Raw(const void* data, size_t n) {
    if (error_ != 0) return;
    if (pending_hole_ > 0) {
      const long r = RawSyscall6(SYS_lseek, fd_,
                                 static_cast<long>(pending_hole_), SEEK_CUR);
      pending_hole_ = 0;
      if (r < 0) {
        error_ = static_cast<int>(-r);
        return;
      }
    }
    const long r = ss::WriteAll(fd_, data, n);
    if (r < 0) error_ = static_cast<int>(-r);
  }

  int fd_;
  int error_ = 0;
  uint64_t written_ = 0;
  uint64_t trailer_ = 0;
  SealHasherV2 hasher_;
  uint64_t pending_hole_ = 0;
  size_t used_ = 0;
  char buf_[8192];
};

// Note building into the caller's note buffer.
class NoteBuf {
 public:
  NoteBuf(char* buf, size_t cap) : buf_(buf), cap_(cap) {}
  // Reserves a note and returns its desc pointer (zeroed), or null.
  char* Add(const char* owner, uint32_t type, size_t desc_len) {
    const size_t namesz = ss::StrLen(owner) + 1;
    const size_t need = 12 + RoundUp(namesz, 4) + RoundUp(desc_len, 4);
    if (len_ + need > cap_) {
      overflow_ = true;
      return nullptr;
    }
    char* p = buf_ + len_;
    memset(p, 0, need);
    const uint32_t hdr[3] = {static_cast<uint32_t>(namesz),
                             static_cast<uint32_t>(desc_len), type};
    memcpy(p, hdr, 12);
    memcpy(p + 12, owner, namesz);
    len_ += need;
    return p + 12 + RoundUp(namesz, 4);
  }
  void AddCopy(const char* owner, uint32_t type, const void* d, size_t n) {
    char* p = Add(owner, type, n);
    if (p != nullptr && n > 0) memcpy(p, d, n);
  }
  size_t size() const { return len_; }
  bool overflow() const { return overflow_; }

 private:
  char* buf_;
  size_t cap_;
  size_t len_ = 0;
  bool overflow_ = false;
};

// The registry's flight recorder (kNoteFlightRecorder), oldest event
// first. Called with every other thread frozen, so the ring holds still;
// a slot a frozen writer left half-written is a kFlightTorn record. Labels
// are the registry's static strings, copied and cut to kFlightLabelLen.
void AddFlightRecorderNote(NoteBuf& nb, uint64_t fault_ns) {
  const uint64_t next = FlightRecorderNext();
  const uint64_t first = next > kFlightRingSize ? next - kFlightRingSize : 0;
  const size_t count = static_cast<size_t>(next - first);
  const size_t head = sizeof(FlightHeader) + sizeof(FlightFault);
  char* d = nb.Add(kSigraceNoteOwner, kNoteFlightRecorder,
                   head + count * sizeof(FlightRecord));
  if (d == nullptr) return;
  FlightHeader h{kFlightVersion, static_cast<uint32_t>(count),           next,
                 ss::NowNs(),    static_cast<uint32_t>(kFlightRingSize), 0};
  const FlightFault fault{fault_ns, 0};
  memcpy(d + sizeof(FlightHeader), &fault, sizeof(fault));
  char* rec = d + head;
  for (uint64_t i = first; i < next; ++i, rec += sizeof(FlightRecord)) {
    FlightRecord r;
    memset(&r, 0, sizeof(r));
    r.index = i;
    FlightEvent e;
    if (ReadFlightEvent(i, &e)) {
      r.time_ns = e.time_ns;
      r.addr = e.addr;
      r.len = e.len;
      r.prev_addr = e.prev_addr;
      r.prev_len = e.prev_len;
      r.tid = e.tid;
      r.kind = static_cast<uint32_t>(e.kind);
      r.region = e.region;
      if (e.label != nullptr) ss::CopyStr(r.label, sizeof(r.label), e.label);
    } else {
      r.kind = kFlightTorn;
      ++h.torn;
    }
    memcpy(rec, &r, sizeof(r));
  }
  memcpy(d, &h, sizeof(h));
}

void ZeroUnusedXstate(char* d, size_t size);
void ClearXstateBeyond(char* d, size_t carried);
size_t XstateNoteSize();
void AddXsaveLayoutNote(NoteBuf& nb);

void FillRegs(const ThreadCapture& t, user_regs_struct* r) {
  const greg_t* g = t.uc->uc_mcontext.gregs;
  auto u = [](greg_t v) { return static_cast<unsigned long long>(v); };
  r->r15 = u(g[REG_R15]);
  r->r14 = u(g[REG_R14]);
  r->r13 = u(g[REG_R13]);
  r->r12 = u(g[REG_R12]);
  r->rbp = u(g[REG_RBP]);
  r->rbx = u(g[REG_RBX]);
  r->r11 = u(g[REG_R11]);
  r->r10 = u(g[REG_R10]);
  r->r9 = u(g[REG_R9]);
  r->r8 = u(g[REG_R8]);
  r->rax = u(g[REG_RAX]);
  r->rcx = u(g[REG_RCX]);
  r->rdx = u(g[REG_RDX]);
  r->rsi = u(g[REG_RSI]);
  r->rdi = u(g[REG_RDI]);
  // DEVIATION: the signal frame does not carry orig_rax; the kernel writes
  // the syscall number for a thread stopped in a syscall. -1 says "not in a
  // syscall", which only affects syscall-restart display in gdb.
  r->orig_rax = ~0ull;
  r->rip = u(g[REG_RIP]);
  r->eflags = u(g[REG_EFL]);
  r->rsp = u(g[REG_RSP]);
  const uint64_t csgsfs = u(g[REG_CSGSFS]);
  r->cs = csgsfs & 0xffff;
  r->gs = (csgsfs >> 16) & 0xffff;
  r->fs = (csgsfs >> 32) & 0xffff;
  r->ss = (csgsfs >> 48) & 0xffff;
  if (r->ss == 0) r->ss = 0x2b;  // __USER_DS, when UC_SIGCONTEXT_SS is off
  if (r->cs == 0) r->cs = 0x33;  // __USER_CS
  r->fs_base = t.fs_base;
  r->gs_base = t.gs_base;
  r->ds = 0;
  r->es = 0;
  if (t.redact_registers && !SkipRegisterOverwrite()) {
    // Keep rip, rsp and rbp (gdb unwinds with them), segments and flags;
    // every data register becomes marker bytes.
    unsigned long long* data[] = {&r->r15, &r->r14, &r->r13,     &r->r12,
                                  &r->rbx, &r->r11, &r->r10,     &r->r9,
                                  &r->r8,  &r->rax, &r->rcx,     &r->rdx,
                                  &r->rsi, &r->rdi, &r->orig_rax};
    for (size_t i = 0; i < sizeof(data) / sizeof(data[0]); ++i) {
      FillMarker(reinterpret_cast<char*>(data[i]), i * 8, 8);
    }
  }
}

void AddThreadNotes(NoteBuf& nb, const CoreInput& in, const ThreadCapture& t,
                    bool first, const ProcMapping* maps, size_t nloads,
                    const char* pool) {
  const pid_t pid = ss::Getpid();
  const pid_t ppid = static_cast<pid_t>(RawSyscall6(SYS_getppid));
  const pid_t pgrp = static_cast<pid_t>(RawSyscall6(SYS_getpgid, 0));
  const pid_t sid = static_cast<pid_t>(RawSyscall6(SYS_getsid, 0));

  if (char* d = nb.Add("CORE", NT_PRSTATUS, sizeof(elf_prstatus))) {
    elf_prstatus st;
    memset(&st, 0, sizeof(st));
    st.pr_info.si_signo = in.signal;
    st.pr_cursig = static_cast<short>(in.signal);
    memcpy(&st.pr_sighold, &t.uc->uc_sigmask, sizeof(st.pr_sighold));
    st.pr_pid = t.tid;
    st.pr_ppid = ppid;
    st.pr_pgrp = pgrp;
    st.pr_sid = sid;
    FillRegs(t, reinterpret_cast<user_regs_struct*>(&st.pr_reg));
    st.pr_fpvalid = t.uc->uc_mcontext.fpregs != nullptr ? 1 : 0;
    memcpy(d, &st, sizeof(st));
  }
  if (first) {
    if (char* d = nb.Add("CORE", NT_PRPSINFO, sizeof(elf_prpsinfo))) {
      elf_prpsinfo ps;
      memset(&ps, 0, sizeof(ps));
      ps.pr_state = 0;
      ps.pr_sname = 'R';
      ps.pr_uid = static_cast<unsigned int>(RawSyscall6(SYS_getuid));
      ps.pr_gid = static_cast<unsigned int>(RawSyscall6(SYS_getgid));
      ps.pr_pid = pid;
      ps.pr_ppid = ppid;
      ps.pr_pgrp = pgrp;
      ps.pr_sid = sid;
      if (in.comm != nullptr) {
        size_t n = ss::StrLen(in.comm);
        while (n > 0 && in.comm[n - 1] == '\n') --n;
        if (n > sizeof(ps.pr_fname) - 1) n = sizeof(ps.pr_fname) - 1;
        memcpy(ps.pr_fname, in.comm, n);
      }
      size_t n = in.cmdline_len;
      if (n > sizeof(ps.pr_psargs) - 1) n = sizeof(ps.pr_psargs) - 1;
      for (size_t i = 0; i < n; ++i) {
        ps.pr_psargs[i] = in.cmdline[i] == '\0' ? ' ' : in.cmdline[i];
      }
      while (n > 0 && ps.pr_psargs[n - 1] == ' ') ps.pr_psargs[--n] = '\0';
      memcpy(d, &ps, sizeof(ps));
    }
    if (in.siginfo != nullptr) {
      nb.AddCopy("CORE", NT_SIGINFO, in.siginfo, sizeof(siginfo_t));
    } else {
      siginfo_t si;
      memset(&si, 0, sizeof(si));
      si.si_signo = in.signal;
      nb.AddCopy("CORE", NT_SIGINFO, &si, sizeof(si));
    }
    if (in.auxv_len > 0) nb.AddCopy("CORE", NT_AUXV, in.auxv, in.auxv_len);
    // NT_FILE: count, page size, {start, end, file page offset}[count],
    // then the NUL-terminated names.
    size_t nfiles = 0, names = 0;
    for (size_t i = 0; i < nloads; ++i) {
      if (maps[i].path_len > 0 && pool[maps[i].path_off] == '/') {
        ++nfiles;
        names += maps[i].path_len + 1u;
      }
    }
    const size_t desc = 16 + nfiles * 24 + names;
    if (char* d = nb.Add("CORE", NT_FILE, desc)) {
      // Note descriptors are only 4-byte aligned: store words by memcpy.
      auto put = [d](size_t word, uint64_t v) { memcpy(d + word * 8, &v, 8); };
      put(0, nfiles);
      put(1, kPage);
      size_t k = 0;
      char* s = d + 16 + nfiles * 24;
      for (size_t i = 0; i < nloads; ++i) {
        const ProcMapping& m = maps[i];
        if (m.path_len == 0 || pool[m.path_off] != '/') continue;
        put(2 + k * 3, m.start);
        put(2 + k * 3 + 1, m.end);
        put(2 + k * 3 + 2, m.offset / kPage);
        ++k;
        memcpy(s, pool + m.path_off, m.path_len);
        s[m.path_len] = '\0';
        s += m.path_len + 1;
      }
    }
  }
  const char* fp = reinterpret_cast<const char*>(t.uc->uc_mcontext.fpregs);
  if (fp == nullptr) return;
  if (char* d = nb.Add("CORE", NT_FPREGSET, kFxsaveSize)) {
    memcpy(d, fp, kFxsaveSize);
    memset(d + 416, 0, kSwBytesOffset - 416);  // unused; stale in a frame
    uint32_t m1;
    memcpy(&m1, fp + kSwBytesOffset, 4);
    if (m1 == kFpXstateMagic1) {
      // Legacy components in their initial state may be stale in a frame.
      uint64_t bv;
      memcpy(&bv, fp + kFxsaveSize, 8);
      if ((bv & 1) == 0) memset(d + 32, 0, 160 - 32);
      if ((bv & 2) == 0) memset(d + 160, 0, 416 - 160);
    }
    const bool redact_simd =
        (t.redact_registers || t.redact_simd) && !SkipRegisterOverwrite();
    if (redact_simd) FillMarker(d + 32, 0, 416 - 32);  // st0-7, xmm0-15
    // The sw_reserved bytes of a signal frame describe the frame, not the
    // registers; ptrace and the kernel's core leave them zero here.
    memset(d + kSwBytesOffset, 0, kFxsaveSize - kSwBytesOffset);
  }
  uint32_t magic1, xstate_size;
  uint64_t xfeatures;
  memcpy(&magic1, fp + kSwBytesOffset, 4);
  memcpy(&xfeatures, fp + kSwBytesOffset + 8, 8);
  memcpy(&xstate_size, fp + kSwBytesOffset + 16, 4);
  if (magic1 != kFpXstateMagic1 || xstate_size < kXsaveHeaderEnd ||
      xstate_size > 64 * 1024) {
    return;
  }
  // The note is as large as the kernel's: the XSAVE size of every feature
  // XCR0 enables (CPUID 0xD.0 EBX). gdb and eu-stack size the layout from
  // the XCR0 word at 464 and reject a shorter note. A signal frame may
  // carry less (features the thread never used, e.g. AMX tile data): the
  // rest stays in its initial state, zeros, its XSTATE_BV bits clear.
  size_t note_size = XstateNoteSize();
  if (note_size < xstate_size || note_size > size_t{64} * 1024)
    note_size = xstate_size;
  if (char* d = nb.Add("LINUX", NT_X86_XSTATE, note_size)) {
    memcpy(d, fp, xstate_size);  // Add() zeroed the rest
    // The kernel's NT_X86_XSTATE carries XCR0 (the user feature mask) in
    // the first word of sw_reserved (gdb reads it at offset 464); a signal
    // frame carries _fpx_sw_bytes there instead. Rewrite as the kernel does.
    memset(d + kSwBytesOffset, 0, kFxsaveSize - kSwBytesOffset);
    memcpy(d + kSwBytesOffset, &xfeatures, 8);
    if (note_size > xstate_size) ClearXstateBeyond(d, xstate_size);
    ZeroUnusedXstate(d, note_size);
    if ((t.redact_registers || t.redact_simd) && !SkipRegisterOverwrite()) {
      FillMarker(d + 32, 0, 416 - 32);
      FillMarker(d + kXsaveHeaderEnd, 0, note_size - kXsaveHeaderEnd);
    }
  }
}

bool PageIsZero(const char* p, size_t n) {
  uint64_t acc = 0;
  for (size_t i = 0; i + 8 <= n; i += 8) {
    uint64_t w;
    memcpy(&w, p + i, 8);
    acc |= w;
  }
  for (size_t i = n & ~size_t{7}; i < n; ++i) acc |= static_cast<uint8_t>(p[i]);
  return acc == 0;
}

// Writes a chunk, turning runs of all-zero pages into holes (the kernel
// leaves untouched pages as holes too, via FOLL_DUMP).
void PutWithHoles(Sink& sink, const char* buf, size_t n) {
  size_t i = 0;
  while (i < n) {
    const size_t len = n - i < kPage ? n - i : kPage;
    const bool zero = PageIsZero(buf + i, len);
    size_t j = i + len;
    while (j < n) {
      const size_t l2 = n - j < kPage ? n - j : kPage;
      if (PageIsZero(buf + j, l2) != zero) break;
      j += l2;
    }
    if (zero) {
      sink.Hole(j - i);
    } else {
      sink.Put(buf + i, j - i);
    }
    i = j;
  }
}

// Components of the XSAVE area that XSTATE_BV marks as in their initial
// state are not written by XSAVE: in a signal frame they hold whatever
// the stack held before (stale data, maybe secrets). The kernel's note
// carries init values (zeros) there; so does ours. Offsets from CPUID 0xD
// (standard, non-compacted format, as signal frames use).
// CPUID leaf 0xD sub-leaf i: size (a) and offset (b) of XSAVE component i,
// looked up once per process. In a VM every CPUID traps to the hypervisor
// (measured: the lookups per thread per dump were most of the writer's
// own CPU time), and the layout never changes while the process runs.
// Lock-free: a dump racing the first lookup computes the same values.
struct XstateComponent {
  std::atomic<uint32_t> size{0};
  std::atomic<uint32_t> offset{0};
};
static_assert(std::atomic<uint32_t>::is_always_lock_free);
static_assert(std::atomic<bool>::is_always_lock_free);
XstateComponent g_xstate[64];
// CPUID 0xD sub-leaf 0, EBX: the XSAVE area size for the features XCR0
// enables, which is the size of the kernel's NT_X86_XSTATE note.
std::atomic<uint32_t> g_xstate_note_size{0};
// XCR0 (xgetbv 0): the user features the kernel enabled; 0 without
// OSXSAVE.
std::atomic<uint64_t> g_xcr0{0};
std::atomic<bool> g_xstate_ready{false};

void LoadXstateLayout() {
  if (g_xstate_ready.load(std::memory_order_acquire)) return;
  {
    unsigned a, b, c, dd;
    __asm__ volatile("cpuid"
                     : "=a"(a), "=b"(b), "=c"(c), "=d"(dd)
                     : "a"(0xd), "c"(0));
    g_xstate_note_size.store(b, std::memory_order_relaxed);
  }
  {
    unsigned a, b, c, dd;
    __asm__ volatile("cpuid"
                     : "=a"(a), "=b"(b), "=c"(c), "=d"(dd)
                     : "a"(1), "c"(0));
    if ((c & (1u << 27)) != 0) {  // OSXSAVE: xgetbv may run
      unsigned lo, hi;
      __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
      g_xcr0.store((static_cast<uint64_t>(hi) << 32) | lo,
                   std::memory_order_relaxed);
    }
  }
  for (unsigned i = 2; i < 64; ++i) {
    unsigned a, b, c, dd;
    __asm__ volatile("cpuid"
                     : "=a"(a), "=b"(b), "=c"(c), "=d"(dd)
                     : "a"(0xd), "c"(i));
    g_xstate[i].size.store(a, std::memory_order_relaxed);
    g_xstate[i].offset.store(b, std::memory_order_relaxed);
  }
  g_xstate_ready.store(true, std::memory_order_release);
}

void ZeroUnusedXstate(char* d, size_t size) {
  uint64_t bv;
  memcpy(&bv, d + kFxsaveSize, 8);
  memset(d + 416, 0, kSwBytesOffset - 416);          // unused legacy bytes
  if ((bv & 1) == 0) memset(d + 32, 0, 160 - 32);    // x87 st0-7
  if ((bv & 2) == 0) memset(d + 160, 0, 416 - 160);  // xmm0-15
  memset(d + kFxsaveSize + 16, 0, kXsaveHeaderEnd - kFxsaveSize - 16);
  LoadXstateLayout();
  for (unsigned i = 2; i < 64; ++i) {
    if (bv & (1ull << i)) continue;
    const uint32_t a = g_xstate[i].size.load(std::memory_order_relaxed);
    const uint32_t b = g_xstate[i].offset.load(std::memory_order_relaxed);
    if (a == 0 || b < kXsaveHeaderEnd || b >= size) continue;
    const size_t len = b + a <= size ? a : size - b;
    memset(d + b, 0, len);
  }
}

size_t XstateNoteSize() {
  LoadXstateLayout();
  return g_xstate_note_size.load(std::memory_order_relaxed);
}

// NT_X86_XSAVE_LAYOUT, as the kernel writes it after every thread's notes
// (Linux 6.9 and later): for each extended feature XCR0 enables, its type,
// its size and its offset in the XSAVE area, and a flags word that is 0.
// A debugger that reads it takes the layout from the dump instead of
// assuming Intel's offsets, which this kind of AMD CPU does not use (gdb 13,
// which does not read it, calls such a CPU's XSTATE note "too small").
constexpr uint32_t kNtX86XsaveLayout = 0x205;

void AddXsaveLayoutNote(NoteBuf& nb) {
  LoadXstateLayout();
  const uint64_t xcr0 = g_xcr0.load(std::memory_order_relaxed);
  size_t n = 0;
  for (unsigned i = 2; i < 64; ++i) {
    if ((xcr0 & (1ull << i)) != 0 &&
        g_xstate[i].size.load(std::memory_order_relaxed) != 0) {
      ++n;
    }
  }
  if (n == 0) return;
  char* d = nb.Add("LINUX", kNtX86XsaveLayout, n * 16);
  if (d == nullptr) return;
  for (unsigned i = 2; i < 64; ++i) {
    const uint32_t size = g_xstate[i].size.load(std::memory_order_relaxed);
    if ((xcr0 & (1ull << i)) == 0 || size == 0) continue;
    const uint32_t rec[4] = {
        i, size, g_xstate[i].offset.load(std::memory_order_relaxed), 0};
    memcpy(d, rec, sizeof(rec));
    d += sizeof(rec);
  }
}

// Clears the XSTATE_BV bit of every component that does not lie wholly
// inside the first `carried` bytes (what the signal frame held): those
// bytes are zeros in the note, the component's initial state.
void ClearXstateBeyond(char* d, size_t carried) {
  uint64_t bv;
  memcpy(&bv, d + kFxsaveSize, 8);
  for (unsigned i = 2; i < 64; ++i) {
    if ((bv & (1ull << i)) == 0) continue;
    const uint32_t a = g_xstate[i].size.load(std::memory_order_relaxed);
    const uint32_t b = g_xstate[i].offset.load(std::memory_order_relaxed);
    if (b + a > carried) bv &= ~(1ull << i);
  }
  memcpy(d + kFxsaveSize, &bv, 8);
}

bool Overlaps(const CoreInput& in, uint64_t va, uint64_t n) {
  for (size_t i = 0; i < in.redaction_count; ++i) {
    const RedactionRecord& r = in.redactions[i];
    if (r.len == 0) continue;
    if (r.vaddr < va + n && va < r.vaddr + r.len) return true;
  }
  return false;
}

// Fills [s, e) of a kSecretStack range with the marker, except the
// preserved words (sorted) in it, which keep the bytes they hold in buf.
void FillSecretStack(const CoreInput& in, char* buf, uint64_t va, uint64_t s,
                     uint64_t e) {
  // First preserved word that may reach past s.
  size_t lo = 0, hi = in.preserved_count;
  while (lo < hi) {
    const size_t mid = lo + (hi - lo) / 2;
    if (in.preserved[mid].vaddr + 8 <= s) {
      lo = mid + 1;
    } else {
      hi = mid;
    }
  }
  uint64_t from = s;
  for (size_t i = lo; i < in.preserved_count && in.preserved[i].vaddr < e;
       ++i) {
    const uint64_t w = in.preserved[i].vaddr;
    if (w > from) FillMarker(buf + (from - va), from, w - from);
    if (w + 8 > from) from = w + 8 < e ? w + 8 : e;
  }
  if (from < e) FillMarker(buf + (from - va), from, e - from);
}

void ApplyRedactions(const CoreInput& in, char* buf, uint64_t va, size_t n) {
  // TEST REGRESSION (record-skip-overwrite): every memory range stays in
  // the redaction note, and its bytes stay as they are.
  if (TestRegressionOn(TestRegression::kRecordSkipOverwrite)) return;
  const uint64_t end = va + n;
  for (size_t i = 0; i < in.redaction_count; ++i) {
    const RedactionRecord& r = in.redactions[i];
    if (r.len == 0 ||
        r.kind == static_cast<uint32_t>(RedactionKind::kRegisters)) {
      continue;
    }
    const uint64_t rs = r.vaddr;
    const uint64_t re = r.vaddr + r.len < r.vaddr ? ~0ull : r.vaddr + r.len;
    if (re <= va || rs >= end) continue;
    const uint64_t s = rs > va ? rs : va;
    const uint64_t e = re < end ? re : end;
    if (r.kind == static_cast<uint32_t>(RedactionKind::kSecretStack)) {
      FillSecretStack(in, buf, va, s, e);
    } else {
      FillMarker(buf + (s - va), s, static_cast<size_t>(e - s));
    }
  }
}

}  // namespace

void WarmUpCoreWriter() { LoadXstateLayout(); }

uint64_t DumpSizeForMapping(const ProcMapping& m, const char* pool) {
  const uint64_t size = m.end - m.start;
  // The kernel always dumps special mappings such as the vDSO.
  if (m.special == ProcMappingSpecial::kVdso) return size;
  // DEVIATION: [vvar] and [vsyscall] are never read (reading vvar pages can
  // fault with time namespaces; vsyscall may be execute-only).
  if (m.special == ProcMappingSpecial::kVvar ||
      m.special == ProcMappingSpecial::kVsyscall) {
    return 0;
  }
  // Protection `dontdump` (its honouring): MADV_DONTDUMP pages stay out,
  // as with the kernel. Ablated, they are dumped like any other page (the
  // handler's own scratch and alternate stacks then hold the marker: they
  // are recorded redactions).
  bool honour_dontdump = m.dontdump;
  if (Ablated(Protection::kDontDump)) honour_dontdump = false;
  if (honour_dontdump || m.io) return 0;
  // DEVIATION: the kernel reads PROT_NONE mappings with FOLL_FORCE and
  // writes their (mostly hole) pages; sigrace writes no bytes for them, so
  // guard pages and reserved arenas cost nothing.
  if (!m.read) return 0;
  const bool has_file = m.inode != 0;
  if (m.shared) {
    // Bit 1 (anon shared) is in the default filter, bit 3 (file shared) is
    // not. DEVIATION: the kernel tests the shmem inode's link count; sigrace
    // counts memfd, /dev/zero and SysV segments as anonymous shared.
    if (!has_file) return size;
    if (m.path_len > 0) {
      const char* p = pool + m.path_off;
      auto starts = [&](const char* lit) {
        const size_t n = ss::StrLen(lit);
        return m.path_len >= n && memcmp(p, lit, n) == 0;
      };
      if (starts("/memfd:") || starts("/dev/zero") || starts("/SYSV")) {
        return size;
      }
    }
    return 0;
  }
  // Bit 0 (anon private): anonymous mappings, and file mappings that have
  // anonymous (copied-on-write) pages. The kernel tests vma->anon_vma; smaps
  // "Anonymous:" > 0 is the visible equivalent.
  if (!has_file || m.anonymous_kb > 0) return size;
  // Bit 4 (ELF headers): the first page of a file mapping that starts with
  // the ELF magic, so debuggers can identify the object (build id).
  if (m.offset == 0) {
    char magic[4];
    ReadOwnMemory(ss::Getpid(), magic, m.start, 4);
    if (memcmp(magic, ELFMAG, SELFMAG) == 0) return size < kPage ? size : kPage;
  }
  return 0;
}

bool WriteCore(const CoreInput& in, int fd, CoreOutput* out) {
  out->sealed = false;
  const ProcMapTable& mt = *in.maps;
  size_t nloads = mt.count;
  if (nloads + 1 > kMaxPhnum) nloads = kMaxPhnum - 1;
  out->loads = static_cast<uint32_t>(nloads);

  for (size_t i = 0; i < nloads; ++i) {
    in.dump_len[i] = DumpSizeForMapping(mt.maps[i], mt.pool);
  }

  NoteBuf nb(in.note_buf, in.note_cap);
  for (size_t i = 0; i < in.thread_count; ++i) {
    AddThreadNotes(nb, in, in.threads[i], i == 0, mt.maps, nloads, mt.pool);
  }
  AddXsaveLayoutNote(nb);
  {
    const size_t records = in.redaction_count * sizeof(RedactionRecord);
    const size_t words = in.preserved_count * sizeof(PreservedWord);
    const size_t n =
        sizeof(RedactionHeader) + records + sizeof(PreservedHeader) + words;
    if (char* d = nb.Add(kSigraceNoteOwner, kNoteRedactions, n)) {
      RedactionHeader h{kRedactionVersion,
                        static_cast<uint32_t>(in.redaction_count)};
      memcpy(d, &h, sizeof(h));
      if (records > 0) memcpy(d + sizeof(h), in.redactions, records);
      PreservedHeader ph{static_cast<uint32_t>(in.preserved_count), 0};
      memcpy(d + sizeof(h) + records, &ph, sizeof(ph));
      if (words > 0) {
        memcpy(d + sizeof(h) + records + sizeof(ph), in.preserved, words);
      }
    }
  }
  nb.AddCopy(kSigraceNoteOwner, kNoteMeta, in.meta, in.meta_len);
  nb.AddCopy(kSigraceNoteOwner, kNoteBacktrace, in.backtrace, in.backtrace_len);
  AddFlightRecorderNote(nb, in.fault_ns);
  if (nb.overflow()) {
    out->error = 105;  // ENOBUFS
    out->stage = "notes";
    return false;
  }

  const size_t phnum = nloads + 1;
  const uint64_t notes_off = sizeof(Elf64_Ehdr) + phnum * sizeof(Elf64_Phdr);
  const uint64_t data_off = RoundUp(notes_off + nb.size(), kPage);

  Sink sink(fd);
  Elf64_Ehdr eh;
  memset(&eh, 0, sizeof(eh));
  memcpy(eh.e_ident, ELFMAG, SELFMAG);
  eh.e_ident[EI_CLASS] = ELFCLASS64;
  eh.e_ident[EI_DATA] = ELFDATA2LSB;
  eh.e_ident[EI_VERSION] = EV_CURRENT;
  eh.e_ident[EI_OSABI] = ELFOSABI_NONE;
  eh.e_type = ET_CORE;
  eh.e_machine = EM_X86_64;
  eh.e_version = EV_CURRENT;
  eh.e_phoff = sizeof(Elf64_Ehdr);
  eh.e_ehsize = sizeof(Elf64_Ehdr);
  eh.e_phentsize = sizeof(Elf64_Phdr);
  eh.e_phnum = static_cast<Elf64_Half>(phnum);
  sink.Put(&eh, sizeof(eh));

  Elf64_Phdr ph;
  memset(&ph, 0, sizeof(ph));
  ph.p_type = PT_NOTE;
  ph.p_offset = notes_off;
  ph.p_filesz = nb.size();
  ph.p_align = 4;
  sink.Put(&ph, sizeof(ph));
  uint64_t off = data_off;
  for (size_t i = 0; i < nloads; ++i) {
    const ProcMapping& m = mt.maps[i];
    memset(&ph, 0, sizeof(ph));
    ph.p_type = PT_LOAD;
    ph.p_flags =
        (m.read ? PF_R : 0) | (m.write ? PF_W : 0) | (m.exec ? PF_X : 0);
    ph.p_offset = off;
    ph.p_vaddr = m.start;
    ph.p_filesz = in.dump_len[i];
    ph.p_memsz = m.end - m.start;
    ph.p_align = kPage;
    sink.Put(&ph, sizeof(ph));
    off += in.dump_len[i];
  }
  sink.Put(in.note_buf, nb.size());
  sink.Zeros(static_cast<size_t>(data_off - notes_off - nb.size()));

  const pid_t pid = ss::Getpid();
  // Pages of a private anonymous mapping that were never touched (neither
  // present nor swapped, per /proc/self/pagemap) are zeros: they become
  // holes without being read, as the kernel's FOLL_DUMP skips them.
  const long pagemap =
      RawSyscall6(SYS_open, reinterpret_cast<long>("/proc/self/pagemap"),
                  O_RDONLY | O_CLOEXEC);
  for (size_t i = 0; i < nloads && sink.error() == 0; ++i) {
    const ProcMapping& m = mt.maps[i];
    const bool anon_private = m.inode == 0 && !m.shared &&
                              m.special != ProcMappingSpecial::kVdso &&
                              pagemap >= 0 && in.pagemap_cap > 0;
    uint64_t va = m.start;
    const uint64_t end = m.start + in.dump_len[i];
    uint64_t win_start = 0;  // pagemap window [win_start, +win_n pages)
    size_t win_n = 0;
    while (va < end && sink.error() == 0) {
      uint64_t run = end - va < in.copy_cap ? end - va : in.copy_cap;
      bool absent = false;
      if (anon_private) {
        if (va < win_start || va >= win_start + win_n * kPage) {
          size_t want = static_cast<size_t>((end - va) / kPage);
          if (want > in.pagemap_cap) want = in.pagemap_cap;
          const long r = RawSyscall6(
              SYS_pread64, pagemap, reinterpret_cast<long>(in.pagemap_buf),
              static_cast<long>(want * 8), static_cast<long>(va / kPage * 8));
          win_start = va;
          win_n = r > 0 ? static_cast<size_t>(r) / 8 : 0;
        }
        size_t idx = static_cast<size_t>((va - win_start) / kPage);
        if (idx < win_n) {
          absent = (in.pagemap_buf[idx] & (3ull << 62)) == 0;
          size_t j = idx + 1;
          const size_t limit = absent ? win_n : idx + in.copy_cap / kPage;
          while (j < win_n && j < limit &&
                 ((in.pagemap_buf[j] & (3ull << 62)) == 0) == absent) {
            ++j;
          }
          run = (j - idx) * kPage;
          if (run > end - va) run = end - va;
          // A redacted range must read as the marker, never as a hole.
          if (absent && Overlaps(in, va, run)) {
            absent = false;
            if (run > in.copy_cap) run = in.copy_cap;
          }
        }
      }
      if (absent) {
        sink.Hole(static_cast<size_t>(run));
      } else {
        const size_t n = static_cast<size_t>(run);
        ReadOwnMemory(pid, in.copy_buf, va, n);
        ApplyRedactions(in, in.copy_buf, va, n);
        PutWithHoles(sink, in.copy_buf, n);
      }
      va += run;
    }
  }
  if (pagemap >= 0) RawSyscall6(SYS_close, pagemap);
  sink.Flush();
  if (sink.error() != 0) {
    out->error = sink.error();
    out->stage = "write";
    out->size = sink.total();
    return false;
  }
  if (in.before_seal != nullptr) in.before_seal();

  SealTrailer tr;
  memset(&tr, 0, sizeof(tr));
  memcpy(tr.magic, kSealMagicV2, sizeof(tr.magic));
  tr.content_size = sink.written();
  tr.checksum = sink.checksum();
  sink.PutUnchecked(&tr, sizeof(tr));
  out->size = sink.total();
  if (sink.error() != 0) {
    out->error = sink.error();
    out->stage = "seal";
    return false;
  }
  out->sealed = true;
  return true;
}

}  // namespace sigrace::crashdump
