// Memory and process settings for code that holds key material offline:
// the oracle (key forms, the scan index) in `scan`, `gate`, `dump-info` and
// the stress driver.
//
//   - SecretAllocator<T>: a std allocator whose blocks are anonymous pages
//     marked MADV_DONTDUMP (no core dump of any kind holds them) and locked
//     (never written to swap), wiped before they are unmapped. mlock is
//     best effort: past RLIMIT_MEMLOCK the pages stay unlocked, still
//     MADV_DONTDUMP.
//   - MakeProcessUndumpable(): PR_SET_DUMPABLE 0 (no kernel core, no
//     ptrace by another user, /proc/PID/mem and friends owned by root),
//     RLIMIT_CORE 0 and /proc/self/coredump_filter 0. Call it first thing
//     in a command that will read a key, before any key byte is read.
//     Children started with exec get a dumpable process again; the core
//     limit and the filter are inherited (a key-holding worker writes its
//     own redacted dump, never a kernel core).
//
// Thread safety: the allocator is thread-safe (each block is its own
// mapping). MakeProcessUndumpable() acts on the whole process; call it
// from the main thread before other threads start. Not async-signal-safe.

#ifndef SIGRACE_BASE_SECRET_MEMORY_H_
#define SIGRACE_BASE_SECRET_MEMORY_H_

#include <cstddef>
#include <new>
#include <vector>

#include "base/status.h"

namespace sigrace {

// `bytes` (at least one page) of zeroed, MADV_DONTDUMP, locked-if-possible
// memory, or nullptr if it cannot be mapped or marked.
void* AllocateSecretPages(size_t bytes);
// Wipes, unlocks and unmaps a block of AllocateSecretPages(bytes).
void FreeSecretPages(void* p, size_t bytes);

template <typename T>
struct SecretAllocator {
  using value_type = T;
  SecretAllocator() = default;
  template <typename U>
  SecretAllocator(const SecretAllocator<U>&) {}  // NOLINT(runtime/explicit)
  T* allocate(size_t n) {
    if (n > static_cast<size_t>(-1) / sizeof(T)) throw std::bad_alloc();
    void* p = AllocateSecretPages(n * sizeof(T));
    if (p == nullptr) throw std::bad_alloc();
    return static_cast<T*>(p);
  }
  void deallocate(T* p, size_t n) { FreeSecretPages(p, n * sizeof(T)); }
  template <typename U>
  bool operator==(const SecretAllocator<U>&) const {
    return true;
  }
  template <typename U>
  bool operator!=(const SecretAllocator<U>&) const {
    return false;
  }
};

template <typename T>
using SecretVector = std::vector<T, SecretAllocator<T>>;

// PR_SET_DUMPABLE 0, RLIMIT_CORE 0 and coredump_filter 0 for this process.
// An error if any of them cannot be set (a missing coredump_filter file, a
// kernel without it, is not one).
Status MakeProcessUndumpable();

}  // namespace sigrace

#endif  // SIGRACE_BASE_SECRET_MEMORY_H_
