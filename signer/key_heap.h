// The key heap: where OpenSSL's ordinary allocations go while the calling
// thread is inside a KeyAllocScope.
//
// OpenSSL copies key material onto its ordinary heap on its own: the RSA
// Montgomery contexts copy p and q on first use, keygen and parsing keep
// BN_CTX temporaries, a signature keeps digest and provider contexts, the
// KEK's AES key schedule lives in an EVP_CIPHER_CTX. Its secure heap takes
// only the BIGNUMs flagged secure, so those copies escape it. The signer
// therefore installs CRYPTO_set_mem_functions once per process: an
// allocation made inside a KeyAllocScope is served from the key heap, every
// other one goes to malloc. Frees and reallocs route by address.
//
// Layout: one PROT_NONE reservation; chunks are carved from it, each with a
// PROT_NONE guard page below it, made read-write, mlock'd where allowed,
// MADV_DONTDUMP, and published to the crashdump registry as "signer.heap"
// for the life of the process. Each thread takes its own arena (size-class
// free lists over its chunks), so the signing hot path takes no lock: a
// free from the owning thread goes to its local list, a free from another
// thread to the owner's lock-free remote stack. Every block is wiped when
// freed. Requests above the largest class take a dedicated run of chunks
// under a mutex (rare: keygen only).
//
// Thread safety: every function is thread-safe. KeyAllocScope is per
// thread, except under KeyScopeModel::kProcessWide, which is a race variant
// and races on purpose. Not async-signal-safe.

#ifndef SIGRACE_SIGNER_KEY_HEAP_H_
#define SIGRACE_SIGNER_KEY_HEAP_H_

#include <cstddef>
#include <cstdint>

#include "base/status.h"

namespace sigrace::signer {

// Installs the routing allocator into OpenSSL. Idempotent. Fails with
// FailedPrecondition when OpenSSL allocated before it could be installed
// (CRYPTO_set_mem_functions refuses once the first allocation happened);
// the signer library also tries from a static constructor, so this only
// fails if something allocated through OpenSSL even earlier.
Status InstallKeyHeap();
bool KeyHeapInstalled();

// Where KeyAllocScope keeps its state. kPerThread (a per-thread nesting
// depth) is the fix. kProcessWide is the `global-key-scope` race variant's
// window: one plain process-wide flag that every scope sets on entry and
// clears on exit, so the first scope to close, on any thread, turns the key
// heap off for every thread still inside one, and threads write the flag
// with no synchronisation (a data race ThreadSanitizer reports).
enum class KeyScopeModel { kPerThread, kProcessWide };
// Process-wide; Signer::Create sets it from its variant, so the last Signer
// created decides. A scope keeps the model it was opened under.
void SetKeyScopeModel(KeyScopeModel model);
KeyScopeModel GetKeyScopeModel();

// While an object lives, OpenSSL allocations made by this thread land in
// the key heap. Scopes nest (under kPerThread).
class KeyAllocScope {
 public:
  KeyAllocScope();
  ~KeyAllocScope();
  KeyAllocScope(const KeyAllocScope&) = delete;
  KeyAllocScope& operator=(const KeyAllocScope&) = delete;

 private:
  const bool process_wide_;
};

// Suspends the calling thread's KeyAllocScope (all nesting levels) while it
// lives. Used only by the `heap-montgomery` race variant.
class KeyAllocSuspend {
 public:
  KeyAllocSuspend();
  ~KeyAllocSuspend();
  KeyAllocSuspend(const KeyAllocSuspend&) = delete;
  KeyAllocSuspend& operator=(const KeyAllocSuspend&) = delete;

 private:
  int saved_;
  int saved_suspend_;
};

bool InKeyAllocScope();

// Marks the calling thread as inside a signature while it lives. Every
// OpenSSL allocation the thread makes meanwhile evaluates the failpoint
// "window.shallow_scope", so a test or the stress driver can fault inside
// OpenSSL's signing code, where the Ed25519 expanded key (az[64]) is on the
// stack; `@N` picks the N-th allocation.
class SignatureMark {
 public:
  SignatureMark();
  ~SignatureMark();
  SignatureMark(const SignatureMark&) = delete;
  SignatureMark& operator=(const SignatureMark&) = delete;
};

// The name under which the key heap reports to the registry's cover check
// (crashdump::SetCoverCheck): an OpenSSL allocation made while the calling
// thread has a KeyAllocScope open (suspended by KeyAllocSuspend, or lost
// under KeyScopeModel::kProcessWide) that landed outside the key heap. The
// same allocation hook also calls crashdump::CheckSecretStackDepth, which
// catches a SecretScope shallower than the stack OpenSSL uses. Both are
// sampled at allocations only: a frame that allocates nothing is not seen,
// and a realloc keeps its block on the heap it came from, unchecked.
inline constexpr char kCheckKeyScopeAlloc[] = "key-heap.alloc";

struct KeyHeapStats {
  uint64_t chunks;          // chunks mapped (each published)
  uint64_t mlock_failures;  // chunks mlock refused (EPERM/ENOMEM)
  uint64_t live_blocks;     // allocated and not yet freed
  uint64_t arenas;          // per-thread arenas created
};
KeyHeapStats GetKeyHeapStats();

// Test hook (issue 13): `fn` runs on the allocating thread at every OpenSSL
// allocation and free that passes through the key heap's memory functions,
// inside or outside a KeyAllocScope, before the block is handed out or after
// it is wiped. The stress harness counts these instants per operation,
// faults at the N-th one and widens windows with short delays there.
// nullptr removes it. Lock-free: one relaxed load when none is set.
enum class KeyHeapEvent { kAlloc, kFree };
using AllocObserver = void (*)(KeyHeapEvent event);
void TEST_SetAllocObserver(AllocObserver fn);

// True if p points into the key heap reservation.
bool TEST_InKeyHeap(const void* p);

}  // namespace sigrace::signer

#endif  // SIGRACE_SIGNER_KEY_HEAP_H_
