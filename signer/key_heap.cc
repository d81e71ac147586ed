#include "signer/key_heap.h"

#include <openssl/crypto.h>
#include <sys/mman.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <new>
#include <utility>
#include <vector>

#include "base/ablation.h"
#include "base/failpoint.h"
#include "base/mutex.h"
#include "crashdump/registry/registry.h"
#include "signer/dont_dump.h"

namespace sigrace::signer {
namespace {

constexpr size_t kPage = 4096;
constexpr size_t kReserveBytes = size_t{512} << 20;
// A chunk is one guard page followed by its usable pages.
constexpr size_t kChunkBytes = size_t{1} << 20;
constexpr size_t kHeaderBytes = 16;
constexpr int kClasses = 12;  // 32 B .. 64 KiB
constexpr size_t kMinClassBytes = 32;
constexpr uint32_t kMagic = 0x6b686561;  // "khea"
// Frees of at most this many bytes are wiped with inline stores, larger
// ones with explicit_bzero.
constexpr size_t kInlineWipeBytes = 512;
constexpr uint16_t kLargeClass = 0xffff;

const char kHeapLabel[] = "signer.heap";

struct Arena;

// Lives in the first 16 bytes of every block.
struct Header {
  uint16_t cls;
  // Size-class blocks: the usable bytes handed out so far (the request, or
  // a larger in-place realloc), so the most the owner may have written.
  // The rest of the block is zero: fresh chunk pages are, and every free
  // wipes the header and these bytes (WipeFreedBlock).
  uint16_t granted;
  // Stored last with release, loaded first with acquire: a block is often
  // freed on another thread, handed over through OpenSSL's uninstrumented
  // reference counts, and this pairing is what orders the header (and the
  // owner arena's construction) before the free, for the hardware and for
  // TSan alike.
  std::atomic<uint32_t> magic;
  union {
    Arena* owner;        // size-class blocks
    size_t large_bytes;  // large runs: bytes from the header to the end
  };
};
static_assert(sizeof(Header) == kHeaderBytes);

struct FreeBlock {
  FreeBlock* next;
  uint32_t cls;
};

struct Arena {
  FreeBlock* local[kClasses] = {};  // owner thread only
  std::atomic<FreeBlock*> remote{nullptr};
  uint8_t* bump = nullptr;  // owner thread only
  uint8_t* bump_end = nullptr;
  Arena* pool_next = nullptr;
  // Live-block accounting without a shared read-modify-write on the hot
  // path: the owner thread alone writes `allocs` and `local_frees` (a
  // relaxed load and store, no lock prefix); frees from other threads add
  // to `remote_frees`. GetKeyHeapStats sums every arena. (One process-wide
  // counter cost two locked RMWs per allocation, on a cache line the
  // signing threads shared.)
  std::atomic<uint64_t> allocs{0};
  std::atomic<uint64_t> local_frees{0};
  std::atomic<uint64_t> remote_frees{0};
  Arena* all_next = nullptr;  // every arena ever made; under g_pool_mu
};

// Adds one to a counter only its owner thread writes.
void OwnerIncrement(std::atomic<uint64_t>* c) {
  c->store(c->load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
}

std::atomic<uintptr_t> g_base{0};
std::atomic<size_t> g_next{0};  // bytes of the reservation carved so far
std::atomic<bool> g_installed{false};
std::atomic<uint64_t> g_chunks{0};
std::atomic<uint64_t> g_mlock_failures{0};
// Live large runs (rare: keygen only); size-class blocks count per arena.
std::atomic<int64_t> g_live_large{0};
std::atomic<uint64_t> g_arenas{0};

Mutex g_pool_mu;
Arena* g_pool GUARDED_BY(g_pool_mu) = nullptr;
Arena* g_all_arenas GUARDED_BY(g_pool_mu) = nullptr;

Mutex g_large_mu;
// Freed large runs, wiped, kept for reuse: (header address, bytes).
std::vector<std::pair<uint8_t*, size_t>>* g_large_free GUARDED_BY(g_large_mu) =
    nullptr;

// Inside OpenSSL's signing code; see SignatureMark.
SIGRACE_FAILPOINT_DEFINE(kFpWindowShallowScope, "window.shallow_scope");

thread_local int t_scope_depth = 0;
thread_local int t_suspend_depth = 0;
// KeyAllocScopes this thread has open, whatever the model and suspension:
// what the thread asked for, against which the cover check judges where an
// allocation landed.
thread_local int t_open_scopes = 0;
thread_local int t_signature_depth = 0;

std::atomic<bool> g_process_wide_model{false};
// WINDOW (global-key-scope): the whole process shares this one flag. It is
// a plain bool on purpose: the variant reproduces the data race as well as
// the lost cover. Never touched under KeyScopeModel::kPerThread.
bool g_process_scope_flag = false;

// True when an OpenSSL allocation by this thread belongs in the key heap.
bool RouteToKeyHeap() {
  if (t_scope_depth > 0) return true;
  return t_suspend_depth == 0 &&
         g_process_wide_model.load(std::memory_order_relaxed) &&
         g_process_scope_flag;
}
thread_local Arena* t_arena = nullptr;

bool InReserve(const void* p) {
  const uintptr_t base = g_base.load(std::memory_order_relaxed);
  const uintptr_t a = reinterpret_cast<uintptr_t>(p);
  return base != 0 && a >= base && a < base + kReserveBytes;
}

size_t RoundUp(size_t n, size_t to) { return (n + to - 1) / to * to; }

// Carves `usable` bytes (page multiple) below a fresh guard page, makes them
// usable and publishes them. Returns nullptr when the reservation is spent.
uint8_t* CarveRun(size_t usable) {
  const uintptr_t base = g_base.load(std::memory_order_relaxed);
  if (base == 0) return nullptr;
  const size_t span = kPage + usable;
  const size_t off = g_next.fetch_add(span, std::memory_order_relaxed);
  if (off + span > kReserveBytes) return nullptr;
  uint8_t* p = reinterpret_cast<uint8_t*>(base + off + kPage);
  if (mprotect(p, usable, PROT_READ | PROT_WRITE) != 0) return nullptr;
  AdviseDontDump(p, usable);
  if (mlock(p, usable) != 0) {
    g_mlock_failures.fetch_add(1, std::memory_order_relaxed);
  }
  // Published for the life of the process: chunks are never returned.
  crashdump::PublishRegion(p, usable, kHeapLabel);
  g_chunks.fetch_add(1, std::memory_order_relaxed);
  return p;
}

struct ArenaReleaser {
  ~ArenaReleaser() {
    if (t_arena == nullptr) return;
    MutexLock l(&g_pool_mu);
    t_arena->pool_next = g_pool;
    g_pool = t_arena;
    t_arena = nullptr;
  }
};
thread_local ArenaReleaser t_releaser;

Arena* ThisArena() {
  if (t_arena != nullptr) return t_arena;
  (void)&t_releaser;  // registers the thread-exit hand-back
  {
    MutexLock l(&g_pool_mu);
    if (g_pool != nullptr) {
      t_arena = g_pool;
      g_pool = g_pool->pool_next;
      t_arena->pool_next = nullptr;
      return t_arena;
    }
  }
  t_arena = new (std::nothrow) Arena;
  if (t_arena != nullptr) {
    g_arenas.fetch_add(1, std::memory_order_relaxed);
    MutexLock l(&g_pool_mu);
    t_arena->all_next = g_all_arenas;
    g_all_arenas = t_arena;
  }
  return t_arena;
}

int ClassFor(size_t n) {
  size_t c = kMinClassBytes;
  for (int i = 0; i < kClasses; ++i, c <<= 1) {
    if (n + kHeaderBytes <= c) return i;
  }
  return -1;
}

size_t ClassBytes(int cls) { return kMinClassBytes << cls; }

void DrainRemote(Arena* a) {
  FreeBlock* b = a->remote.exchange(nullptr, std::memory_order_acquire);
  while (b != nullptr) {
    FreeBlock* next = b->next;
    b->next = a->local[b->cls];
    a->local[b->cls] = b;
    b = next;
  }
}

void* LargeAlloc(size_t n) {
  const size_t need = RoundUp(n + kHeaderBytes, kPage);
  uint8_t* p = nullptr;
  size_t got = 0;
  {
    MutexLock l(&g_large_mu);
    if (g_large_free != nullptr) {
      for (size_t i = 0; i < g_large_free->size(); ++i) {
        if ((*g_large_free)[i].second >= need) {
          p = (*g_large_free)[i].first;
          got = (*g_large_free)[i].second;
          g_large_free->erase(g_large_free->begin() +
                              static_cast<ptrdiff_t>(i));
          break;
        }
      }
    }
  }
  if (p == nullptr) {
    p = CarveRun(need);
    got = need;
  }
  if (p == nullptr) return nullptr;
  Header* h = reinterpret_cast<Header*>(p);
  h->cls = kLargeClass;
  h->granted = 0;
  h->large_bytes = got;
  h->magic.store(kMagic, std::memory_order_release);
  g_live_large.fetch_add(1, std::memory_order_relaxed);
  return p + kHeaderBytes;
}

void* HeapAlloc(size_t n) {
  if (n == 0) n = 1;
  const int cls = ClassFor(n);
  if (cls < 0) return LargeAlloc(n);
  Arena* a = ThisArena();
  if (a == nullptr) return nullptr;
  FreeBlock* b = a->local[cls];
  if (b == nullptr) {
    DrainRemote(a);
    b = a->local[cls];
  }
  uint8_t* p;
  if (b != nullptr) {
    a->local[cls] = b->next;
    p = reinterpret_cast<uint8_t*>(b);
  } else {
    const size_t bytes = ClassBytes(cls);
    if (a->bump == nullptr ||
        static_cast<size_t>(a->bump_end - a->bump) < bytes) {
      uint8_t* chunk = CarveRun(kChunkBytes - kPage);
      if (chunk == nullptr) return nullptr;
      a->bump = chunk;
      a->bump_end = chunk + (kChunkBytes - kPage);
    }
    p = a->bump;
    a->bump += bytes;
  }
  Header* h = reinterpret_cast<Header*>(p);
  h->cls = static_cast<uint16_t>(cls);
  h->granted = static_cast<uint16_t>(n);
  h->owner = a;
  h->magic.store(kMagic, std::memory_order_release);
  OwnerIncrement(&a->allocs);
  return p + kHeaderBytes;
}

// Wipes a freed block (header included) before it goes back on a free
// list: OpenSSL frees many key copies with a plain free (Montgomery
// contexts, BN_CTX pools, DER buffers), and the next owner of the block may
// read bytes it never wrote.
//
// `bytes` is the header plus what the block's owner may have written; the
// caller passes no less than that, and the rest of the block is already
// zero, so the whole block is zero afterwards.
void WipeFreedBlock(uint8_t* p, size_t bytes) {
  // ABLATION (key-heap-wipe): a freed block keeps its previous owner's
  // bytes until it is reused.
  if (Ablated(Protection::kKeyHeapWipe)) return;
  if (bytes > kInlineWipeBytes) {
    // explicit_bzero: a wipe the compiler may not drop, at memset's speed
    // (OpenSSL's x86-64 cleanse stores 8 bytes at a time).
    explicit_bzero(p, bytes);
    return;
  }
  // Most frees inside a signature are blocks of a few dozen bytes (about
  // 90 per Ed25519 token: contexts, name stacks, digest state), where the
  // calls into explicit_bzero and memset cost more than the stores.
  // Volatile 16-byte stores: the compiler may neither drop them nor turn
  // the loop into a memset call. Blocks are 32-byte aligned (classes are
  // multiples of 32 carved from page-aligned chunks).
  using Vec = long long __attribute__((vector_size(16)));
  for (size_t i = 0; i < bytes; i += sizeof(Vec)) {
    *reinterpret_cast<volatile Vec*>(p + i) = Vec{};
  }
}

// What a free wipes of a size-class block: the header and the bytes handed
// out, rounded up to the 16-byte store (never past the block).
size_t DirtyBytes(const Header* h) {
  return kHeaderBytes + RoundUp(h->granted, 16);
}

// Usable bytes of a key-heap block.
size_t BlockUsable(const Header* h) {
  if (h->cls == kLargeClass) return h->large_bytes - kHeaderBytes;
  return ClassBytes(static_cast<int>(h->cls)) - kHeaderBytes;
}

void HeapFree(void* ptr) {
  uint8_t* p = static_cast<uint8_t*>(ptr) - kHeaderBytes;
  Header* h = reinterpret_cast<Header*>(p);
  if (h->magic.load(std::memory_order_acquire) != kMagic)
    abort();  // broken invariant: not our block
  if (h->cls == kLargeClass) {
    g_live_large.fetch_sub(1, std::memory_order_relaxed);
    const size_t bytes = h->large_bytes;
    WipeFreedBlock(p, bytes);
    MutexLock l(&g_large_mu);
    if (g_large_free == nullptr) {
      g_large_free = new std::vector<std::pair<uint8_t*, size_t>>;
    }
    g_large_free->emplace_back(p, bytes);
    return;
  }
  const uint32_t cls = h->cls;
  Arena* owner = h->owner;
  // Every freed block is wiped, whoever frees it.
  WipeFreedBlock(p, DirtyBytes(h));
  FreeBlock* b = reinterpret_cast<FreeBlock*>(p);
  b->cls = cls;
  if (owner == t_arena) {
    b->next = owner->local[cls];
    owner->local[cls] = b;
    OwnerIncrement(&owner->local_frees);
    return;
  }
  owner->remote_frees.fetch_add(1, std::memory_order_relaxed);
  FreeBlock* head = owner->remote.load(std::memory_order_relaxed);
  do {
    b->next = head;
  } while (!owner->remote.compare_exchange_weak(
      head, b, std::memory_order_release, std::memory_order_relaxed));
}

// The cover check at an OpenSSL allocation (issue 13): the stack in use
// must lie inside the thread's SecretScope cover (shallow-scope), and an
// allocation made while the thread has a KeyAllocScope open must land in
// the key heap (heap-montgomery suspends the scope; global-key-scope loses
// it to another scope's exit). Out of line, so that with the check off the
// allocation path is the unchecked one plus CoverCheckMaybeOn()'s load.
// Its own frame stands for the stack in use: one frame deeper than
// MallocFn's, so it errs towards reporting.
__attribute__((noinline, cold)) void* CheckedAlloc(size_t n) {
  const bool to_key_heap = RouteToKeyHeap();
  void* p = to_key_heap ? HeapAlloc(n) : malloc(n);
  if (!crashdump::CoverCheckActive()) return p;
  crashdump::CheckSecretStackDepth(
      reinterpret_cast<uintptr_t>(__builtin_frame_address(0)));
  if (!to_key_heap && p != nullptr && t_open_scopes > 0) {
    crashdump::ReportCoverViolation(
        {kCheckKeyScopeAlloc,
         "allocated inside a KeyAllocScope, landed on the ordinary heap",
         kHeapLabel, reinterpret_cast<uintptr_t>(p), n, 0});
  }
  return p;
}

std::atomic<AllocObserver> g_alloc_observer{nullptr};
static_assert(std::atomic<AllocObserver>::is_always_lock_free);

void Observe(KeyHeapEvent e) {
  if (AllocObserver fn = g_alloc_observer.load(std::memory_order_relaxed)) {
    fn(e);
  }
}

void* MallocFn(size_t n, const char* /*file*/, int /*line*/) {
  Observe(KeyHeapEvent::kAlloc);
  if (t_signature_depth > 0) (void)SIGRACE_FAILPOINT(kFpWindowShallowScope);
  if (crashdump::CoverCheckMaybeOn()) return CheckedAlloc(n);
  if (RouteToKeyHeap()) return HeapAlloc(n);
  return malloc(n);
}

void FreeFn(void* p, const char* /*file*/, int /*line*/) {
  if (p == nullptr) return;
  if (InReserve(p)) {
    HeapFree(p);
  } else {
    free(p);
  }
  Observe(KeyHeapEvent::kFree);
}

void* ReallocFn(void* p, size_t n, const char* file, int line) {
  if (p == nullptr) return MallocFn(n, file, line);
  if (n == 0) {
    FreeFn(p, file, line);
    return nullptr;
  }
  if (!InReserve(p)) return realloc(p, n);
  // A key-heap block stays in the key heap, in or out of a scope.
  Header* h =
      reinterpret_cast<Header*>(static_cast<uint8_t*>(p) - kHeaderBytes);
  const size_t old = BlockUsable(h);
  if (n <= old) {
    if (h->cls != kLargeClass && n > h->granted) {
      // The owner may now write up to n bytes: the free must wipe them.
      // Stored again with release, so that a free on another thread (its
      // acquire load of the magic) sees the new size.
      h->granted = static_cast<uint16_t>(n);
      h->magic.store(kMagic, std::memory_order_release);
    }
    return p;
  }
  void* q = HeapAlloc(n);
  if (q == nullptr) return nullptr;
  memcpy(q, p, old);
  HeapFree(p);
  return q;
}

Mutex g_install_mu;

Status DoInstall() {
  MutexLock l(&g_install_mu);
  if (g_installed.load(std::memory_order_acquire)) return Status::Ok();
  if (CRYPTO_set_mem_functions(MallocFn, ReallocFn, FreeFn) != 1) {
    return FailedPreconditionError(
        "OpenSSL allocated memory before the signer could install its key "
        "heap (CRYPTO_set_mem_functions refused)");
  }
  void* base = mmap(nullptr, kReserveBytes, PROT_NONE,
                    MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (base == MAP_FAILED) {
    // The routing functions are in; with no reservation they serve every
    // request from malloc. Not fixed any more, so say so.
    return ErrnoError("mmap key heap reservation", errno);
  }
  g_base.store(reinterpret_cast<uintptr_t>(base), std::memory_order_relaxed);
  g_installed.store(true, std::memory_order_release);
  return Status::Ok();
}

// Installs before main(), ahead of any OpenSSL allocation the program makes.
__attribute__((constructor)) void InstallAtLoad() { (void)DoInstall(); }

}  // namespace

Status InstallKeyHeap() { return DoInstall(); }

bool KeyHeapInstalled() { return g_installed.load(std::memory_order_acquire); }

void SetKeyScopeModel(KeyScopeModel model) {
  g_process_wide_model.store(model == KeyScopeModel::kProcessWide,
                             std::memory_order_relaxed);
}

KeyScopeModel GetKeyScopeModel() {
  return g_process_wide_model.load(std::memory_order_relaxed)
             ? KeyScopeModel::kProcessWide
             : KeyScopeModel::kPerThread;
}

KeyAllocScope::KeyAllocScope()
    : process_wide_(g_process_wide_model.load(std::memory_order_relaxed)) {
  ++t_open_scopes;
  if (process_wide_) {
    g_process_scope_flag = true;
  } else {
    ++t_scope_depth;
  }
}

KeyAllocScope::~KeyAllocScope() {
  --t_open_scopes;
  if (process_wide_) {
    g_process_scope_flag = false;
  } else {
    --t_scope_depth;
  }
}

KeyAllocSuspend::KeyAllocSuspend()
    : saved_(t_scope_depth), saved_suspend_(t_suspend_depth) {
  t_scope_depth = 0;
  ++t_suspend_depth;
}
KeyAllocSuspend::~KeyAllocSuspend() {
  t_scope_depth = saved_;
  t_suspend_depth = saved_suspend_;
}

bool InKeyAllocScope() { return RouteToKeyHeap(); }

void TEST_SetAllocObserver(AllocObserver fn) {
  g_alloc_observer.store(fn, std::memory_order_relaxed);
}

SignatureMark::SignatureMark() { ++t_signature_depth; }
SignatureMark::~SignatureMark() { --t_signature_depth; }

KeyHeapStats GetKeyHeapStats() {
  KeyHeapStats s;
  s.chunks = g_chunks.load(std::memory_order_relaxed);
  s.mlock_failures = g_mlock_failures.load(std::memory_order_relaxed);
  int64_t live = g_live_large.load(std::memory_order_relaxed);
  {
    MutexLock l(&g_pool_mu);
    for (const Arena* a = g_all_arenas; a != nullptr; a = a->all_next) {
      live +=
          static_cast<int64_t>(a->allocs.load(std::memory_order_relaxed) -
                               a->local_frees.load(std::memory_order_relaxed) -
                               a->remote_frees.load(std::memory_order_relaxed));
    }
  }
  s.live_blocks = live > 0 ? static_cast<uint64_t>(live) : 0;
  s.arenas = g_arenas.load(std::memory_order_relaxed);
  return s;
}

bool TEST_InKeyHeap(const void* p) { return InReserve(p); }

}  // namespace sigrace::signer
