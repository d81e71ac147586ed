// A harness thread: a pthread with a small stack (so live dumps stay small
// and trials fast), an alternate signal stack for the crash handler, and a
// failpoint thread name, set up before its body runs.
//
// Thread safety: Start/Join from one controlling thread; tid() from any.
// Not async-signal-safe.

#ifndef SIGRACE_STRESS_HARNESS_THREAD_H_
#define SIGRACE_STRESS_HARNESS_THREAD_H_

#include <pthread.h>
#include <sys/types.h>

#include <atomic>
#include <cstddef>
#include <functional>
#include <memory>
#include <string>

#include "base/status.h"

namespace sigrace::stress {

// Under ThreadSanitizer glibc places the runtime's per-thread state (about
// 134 KiB of static TLS) at the top of every thread's stack, and the
// runtime warns that a 128 KiB stack cannot hold it.
#if defined(SIGRACE_TSAN)
inline constexpr size_t kTlsAllowance = 256 * 1024;
#else
inline constexpr size_t kTlsAllowance = 0;
#endif

// Every stack page of every thread goes into each dump, so stacks are
// small: 128 KiB holds OpenSSL's deepest signing and key-generation chains
// (the signer's SecretScope covers 64 KiB below its frame).
inline constexpr size_t kHarnessStackBytes = size_t{128} * 1024 + kTlsAllowance;
// For threads that never sign (the unrelated-crash thread).
inline constexpr size_t kSmallStackBytes = size_t{64} * 1024 + kTlsAllowance;

class HarnessThread {
 public:
  // `private_stack`: the stack is this object's own mapping, unmapped at
  // Join(), never handed back to glibc's cache of thread stacks (which
  // would give a later thread whatever the body left on it).
  static StatusOr<std::unique_ptr<HarnessThread>> Start(
      std::string name, std::function<void()> body,
      size_t stack_bytes = kHarnessStackBytes, bool private_stack = false);
  ~HarnessThread();
  HarnessThread(const HarnessThread&) = delete;
  HarnessThread& operator=(const HarnessThread&) = delete;

  void Join();
  // The kernel thread id, once the thread runs (0 before).
  pid_t tid() const { return tid_.load(std::memory_order_acquire); }
  const std::string& name() const { return name_; }

 private:
  HarnessThread(std::string name, std::function<void()> body)
      : name_(std::move(name)), body_(std::move(body)) {}
  static void* Trampoline(void* self);

  std::string name_;
  std::function<void()> body_;
  pthread_t thread_{};
  bool joinable_ = false;
  void* stack_ = nullptr;
  size_t stack_len_ = 0;
  std::atomic<pid_t> tid_{0};
};

}  // namespace sigrace::stress

#endif  // SIGRACE_STRESS_HARNESS_THREAD_H_
