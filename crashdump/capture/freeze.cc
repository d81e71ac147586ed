// Freezing every other thread for a dump, and the per-dump watchdog (see
// freeze.h). Crash path: everything here is async-signal-safe (raw
// syscalls, lock-free atomics, the scratch mapped at install).

#include "crashdump/capture/freeze.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/syscall.h>
#include <time.h>

#include <atomic>
#include <cstring>

#include "crashdump/capture/proc_maps.h"
#include "crashdump/capture/signal_safe.h"

namespace sigrace::crashdump::internal {
namespace {

using ss::NowNs;
using ss::RawSyscall6;

bool GenReached(uint32_t released, uint32_t gen) {
  return static_cast<int32_t>(released - gen) >= 0;
}

// One pass over /proc/self/task: signals every thread not yet in the table.
// Returns how many new threads it found.
int ScanAndSignal(pid_t pid, pid_t self) {
  const long fd =
      RawSyscall6(SYS_open, reinterpret_cast<long>("/proc/self/task"),
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
  ss::Text(path, sizeof(path))
      .Str("/proc/self/task/")
      .UDec(static_cast<uint32_t>(tid))
      .Str("/status");
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
      ss::SleepNs(20000);
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

long g_timer_id = -1;

}  // namespace

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
  slot->fs_base.store(ss::ArchGetBase(ss::kArchGetFs),
                      std::memory_order_relaxed);
  slot->gs_base.store(ss::ArchGetBase(ss::kArchGetGs),
                      std::memory_order_relaxed);
  slot->park_sp.store(reinterpret_cast<uintptr_t>(__builtin_frame_address(0)),
                      std::memory_order_relaxed);
  slot->on_altstack.store(ss::OnAltStack(), std::memory_order_relaxed);
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
    ss::FutexWait(&g_release_gen, rel, deadline - now);
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

InHandlerMark::InHandlerMark(pid_t tid) {
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

InHandlerMark::~InHandlerMark() {
  if (slot_ >= 0) g_in_handler[slot_].store(0, std::memory_order_release);
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
  ss::FutexWakeAll(&g_release_gen);
}

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
    g_recover_reason.store(kRecoverWatchdog, std::memory_order_relaxed);
    siglongjmp(g_recover, kRecoverWatchdog);
  }
}

}  // namespace sigrace::crashdump::internal
