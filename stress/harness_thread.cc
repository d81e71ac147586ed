#include "stress/harness_thread.h"

#include <sys/mman.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "base/failpoint.h"
#include "crashdump/capture/handler.h"

namespace sigrace::stress {

StatusOr<std::unique_ptr<HarnessThread>> HarnessThread::Start(
    std::string name, std::function<void()> body, size_t stack_bytes,
    bool private_stack) {
  std::unique_ptr<HarnessThread> t(
      new HarnessThread(std::move(name), std::move(body)));
  pthread_attr_t attr;
  pthread_attr_init(&attr);
  if (private_stack) {
    void* m = mmap(nullptr, stack_bytes, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_STACK, -1, 0);
    if (m == MAP_FAILED) {
      pthread_attr_destroy(&attr);
      return ErrnoError("mmap thread stack", errno);
    }
    t->stack_ = m;
    t->stack_len_ = stack_bytes;
    pthread_attr_setstack(&attr, m, stack_bytes);
  } else {
    pthread_attr_setstacksize(&attr, stack_bytes);
  }
  const int rc = pthread_create(&t->thread_, &attr, &Trampoline, t.get());
  pthread_attr_destroy(&attr);
  if (rc != 0) {
    if (t->stack_ != nullptr) munmap(t->stack_, t->stack_len_);
    t->stack_ = nullptr;
    return ErrnoError("pthread_create " + t->name_, rc);
  }
  t->joinable_ = true;
  return t;
}

HarnessThread::~HarnessThread() { Join(); }

void HarnessThread::Join() {
  if (!joinable_) return;
  pthread_join(thread_, nullptr);
  joinable_ = false;
  if (stack_ != nullptr) {
    munmap(stack_, stack_len_);
    stack_ = nullptr;
  }
}

void* HarnessThread::Trampoline(void* arg) {
  HarnessThread* self = static_cast<HarnessThread*>(arg);
  // Every thread the harness creates gets an alternate stack first, so the
  // handler has room when the fault lands on it.
  (void)crashdump::InstallAltStackForThisThread();
  failpoint::SetThreadName(self->name_);
  self->tid_.store(gettid(), std::memory_order_release);
  self->body_();
  return nullptr;
}

}  // namespace sigrace::stress
