// Small async-signal-safe helpers for the crash path: raw syscalls that
// glibc does not wrap (or wraps with locks), bounded string building, and a
// monotonic clock. Nothing here allocates, locks, or touches errno of the
// interrupted code (callers save and restore errno at handler entry).
//
// Thread safety: every function is reentrant.
// Everything here is safe to call from a signal handler.

#ifndef SIGRACE_CRASHDUMP_CAPTURE_SIGNAL_SAFE_H_
#define SIGRACE_CRASHDUMP_CAPTURE_SIGNAL_SAFE_H_

#include <linux/futex.h>
#include <signal.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <atomic>
#include <cstddef>
#include <cstdint>

namespace sigrace::crashdump::ss {

// Raw syscall returning -errno on failure instead of touching errno.
// Safe to call from a signal handler.
inline long RawSyscall6(long n, long a1 = 0, long a2 = 0, long a3 = 0,
                        long a4 = 0, long a5 = 0, long a6 = 0) {
#if defined(__x86_64__)
  long ret;
  register long r10 __asm__("r10") = a4;
  register long r8 __asm__("r8") = a5;
  register long r9 __asm__("r9") = a6;
  __asm__ volatile("syscall"
                   : "=a"(ret)
                   : "a"(n), "D"(a1), "S"(a2), "d"(a3), "r"(r10), "r"(r8),
                     "r"(r9)
                   : "rcx", "r11", "memory");
  return ret;
#else
#error "sigrace's crash path supports x86_64 only"
#endif
}

inline pid_t Gettid() { return static_cast<pid_t>(RawSyscall6(SYS_gettid)); }
inline pid_t Getpid() { return static_cast<pid_t>(RawSyscall6(SYS_getpid)); }
inline long Tgkill(pid_t pid, pid_t tid, int sig) {
  return RawSyscall6(SYS_tgkill, pid, tid, sig);
}

// Monotonic nanoseconds (vDSO-free: a raw syscall, so it works even if the
// vDSO data page is unreadable).
inline uint64_t NowNs() {
  struct timespec ts;
  RawSyscall6(SYS_clock_gettime, CLOCK_MONOTONIC, reinterpret_cast<long>(&ts));
  return static_cast<uint64_t>(ts.tv_sec) * 1000000000ull +
         static_cast<uint64_t>(ts.tv_nsec);
}

inline size_t StrLen(const char* s) {
  size_t n = 0;
  while (s[n] != '\0') ++n;
  return n;
}

// Copies the NUL-terminated src into dst[0..cap), truncating; always
// NUL-terminates (cap > 0).
inline void CopyStr(char* dst, size_t cap, const char* src) {
  size_t i = 0;
  for (; src[i] != '\0' && i + 1 < cap; ++i) dst[i] = src[i];
  dst[i] = '\0';
}

// Sleeps while *word == val, at most ns nanoseconds (FUTEX_WAIT_PRIVATE).
inline void FutexWait(std::atomic<uint32_t>* word, uint32_t val, uint64_t ns) {
  struct timespec ts;
  ts.tv_sec = static_cast<time_t>(ns / 1000000000ull);
  ts.tv_nsec = static_cast<long>(ns % 1000000000ull);
  RawSyscall6(SYS_futex, reinterpret_cast<long>(word), FUTEX_WAIT_PRIVATE, val,
              reinterpret_cast<long>(&ts));
}

inline void FutexWakeAll(std::atomic<uint32_t>* word) {
  RawSyscall6(SYS_futex, reinterpret_cast<long>(word), FUTEX_WAKE_PRIVATE,
              0x7fffffff);
}

// ns must be below one second.
inline void SleepNs(uint64_t ns) {
  struct timespec ts = {0, static_cast<long>(ns)};
  RawSyscall6(SYS_nanosleep, reinterpret_cast<long>(&ts), 0);
}

// arch_prctl(ARCH_GET_FS / ARCH_GET_GS); 0 on failure.
inline constexpr int kArchGetFs = 0x1003;
inline constexpr int kArchGetGs = 0x1004;
inline uint64_t ArchGetBase(int code) {
  uint64_t v = 0;
  RawSyscall6(SYS_arch_prctl, code, reinterpret_cast<long>(&v));
  return v;
}

// True when the calling thread runs on its alternate signal stack.
inline bool OnAltStack() {
  stack_t cur;
  if (RawSyscall6(SYS_sigaltstack, 0, reinterpret_cast<long>(&cur)) != 0) {
    return false;
  }
  return (cur.ss_flags & SS_ONSTACK) != 0;
}

// Writes all of buf to fd, retrying on EINTR and short writes. Returns 0 or
// -errno.
inline long WriteAll(int fd, const void* buf, size_t len) {
  const char* p = static_cast<const char*>(buf);
  while (len > 0) {
    long r = RawSyscall6(SYS_write, fd, reinterpret_cast<long>(p),
                         static_cast<long>(len));
    if (r == -4 /*EINTR*/) continue;
    if (r < 0) return r;
    if (r == 0) return -5;  // EIO: no progress
    p += r;
    len -= static_cast<size_t>(r);
  }
  return 0;
}

inline void WriteStderr(const char* s) { WriteAll(2, s, StrLen(s)); }

// Bounded text builder over a caller-owned buffer. Always NUL-terminated;
// silently truncates.
class Text {
 public:
  Text(char* buf, size_t cap) : buf_(buf), cap_(cap) {
    if (cap_ > 0) buf_[0] = '\0';
  }
  Text& Str(const char* s) {
    while (*s != '\0') Ch(*s++);
    return *this;
  }
  Text& Bytes(const char* s, size_t n) {
    for (size_t i = 0; i < n; ++i) Ch(s[i]);
    return *this;
  }
  Text& Ch(char c) {
    if (len_ + 1 < cap_) {
      buf_[len_++] = c;
      buf_[len_] = '\0';
    }
    return *this;
  }
  Text& Dec(int64_t v) {
    if (v < 0) {
      Ch('-');
      return UDec(static_cast<uint64_t>(-(v + 1)) + 1);
    }
    return UDec(static_cast<uint64_t>(v));
  }
  Text& UDec(uint64_t v) {
    char tmp[24];
    int n = 0;
    do {
      tmp[n++] = static_cast<char>('0' + v % 10);
      v /= 10;
    } while (v != 0);
    while (n > 0) Ch(tmp[--n]);
    return *this;
  }
  Text& Hex(uint64_t v) {
    Str("0x");
    char tmp[16];
    int n = 0;
    do {
      tmp[n++] = "0123456789abcdef"[v & 15];
      v >>= 4;
    } while (v != 0);
    while (n > 0) Ch(tmp[--n]);
    return *this;
  }
  size_t size() const { return len_; }
  const char* data() const { return buf_; }

 private:
  char* buf_;
  size_t cap_;
  size_t len_ = 0;
};

}  // namespace sigrace::crashdump::ss

#endif  // SIGRACE_CRASHDUMP_CAPTURE_SIGNAL_SAFE_H_
