// MADV_DONTDUMP on the signer's key pages: the vault's protected pages and
// the key heap's chunks, where the registry's cover is the other,
// independent protection of the same pages; and the guarded key cache of
// exposure_models.h, which the advice alone keeps out of dumps. Kernel
// core dumps leave such pages out, and so does sigrace's own writer (it
// honours the `dd` VmFlag).
//
// Thread safety: thread-safe. Not async-signal-safe (the crash path never
// calls it).

#ifndef SIGRACE_SIGNER_DONT_DUMP_H_
#define SIGRACE_SIGNER_DONT_DUMP_H_

#include <sys/mman.h>

#include <cstddef>

#include "base/ablation.h"

namespace sigrace::signer {

// Marks [addr, addr+len) (page-aligned) MADV_DONTDUMP. Best effort: a
// kernel that refuses leaves the registry's cover as the only one.
inline void AdviseDontDump(void* addr, size_t len) {
  // ABLATION (dontdump): the pages stay in dumps, the vault's and the key
  // heap's covered by the registry alone, the guarded key cache by
  // nothing.
  if (Ablated(Protection::kDontDump)) return;
  (void)madvise(addr, len, MADV_DONTDUMP);
}

}  // namespace sigrace::signer

#endif  // SIGRACE_SIGNER_DONT_DUMP_H_
