// Sensitive-region registry: what the signer tells the crash handler to
// redact. This is the one crashdump/ header that signer/ includes; keep it
// small.
//
// Two kinds of entry:
//   - ranges: [addr, addr+len) with a static label ("vault.arena");
//   - secret scopes: "while this thread is inside this scope, its
//     registers and the `stack_depth` bytes of stack below the scope's
//     entry hold secrets" (SecretScope).
//
// Thread safety: every writer function is lock-free and may be called from
// any thread concurrently; there is no global lock on the signing hot path.
// Snapshot() is lock-free and safe to call from a signal handler; it gives a
// consistent view only while every writer is frozen (the handler freezes all
// other threads first). A writer frozen in the middle of Update() is
// covered: the snapshot holds both its old and its new range.
//
// Memory ordering: a slot's fields are written with relaxed stores and then
// published by a release store of its state/sequence word; Snapshot()
// acquire-loads the word before reading the fields. A signal fence keeps the
// compiler from moving field stores across the state store, since the reader
// may be a signal handler on the writer's own thread.

#ifndef SIGRACE_CRASHDUMP_REGISTRY_REGISTRY_H_
#define SIGRACE_CRASHDUMP_REGISTRY_REGISTRY_H_

#include <sys/types.h>

#include <atomic>
#include <cstddef>
#include <cstdint>

namespace sigrace::crashdump {

inline constexpr size_t kMaxRegions = 1024;
inline constexpr size_t kMaxScopeThreads = 512;
inline constexpr size_t kDefaultSecretStackDepth = size_t{64} * 1024;

static_assert(std::atomic<uint64_t>::is_always_lock_free);
static_assert(std::atomic<uintptr_t>::is_always_lock_free);
static_assert(std::atomic<pid_t>::is_always_lock_free);

// Opaque handle to a published range. Value 0 means "not published".
struct RegionHandle {
  uint32_t slot = 0;        // slot index + 1
  uint32_t generation = 0;  // guards against a stale handle
  bool valid() const { return slot != 0; }
};

enum class RegionKind : uint32_t {
  kRange = 1,        // a published range
  kUpdatePrev = 2,   // the old range of a slot frozen mid-Update()
  kSecretStack = 3,  // stack of a thread inside a SecretScope
};

// One entry of a snapshot. `tid` is set for kSecretStack only.
struct RegionView {
  uintptr_t addr;
  size_t len;
  const char* label;  // static string
  RegionKind kind;
  pid_t tid;
};

// Publishes [addr, addr+len) for redaction. `label` must be a string with
// static storage duration. Returns an invalid handle when the table is full
// or len is 0.
// Safe to call from a signal handler.
RegionHandle PublishRegion(const void* addr, size_t len, const char* label);

// Withdraws a range. A stale or invalid handle is ignored.
// Safe to call from a signal handler.
void UnpublishRegion(RegionHandle handle);

// Moves a published range. Until it returns, a snapshot covers both the old
// and the new range.
// Safe to call from a signal handler.
void UpdateRegion(RegionHandle handle, const void* addr, size_t len);

// Moves a published range by writing its address and length in place, with
// no cover for the interval between the two stores: a snapshot taken in
// between sees the new address with the old length. This opens a window on
// purpose; it exists for the `torn-update` race variant only.
// Safe to call from a signal handler.
void TEST_UpdateRegionTorn(RegionHandle handle, const void* addr, size_t len,
                           void (*between)());

// RAII range publication.
class ScopedRegion {
 public:
  ScopedRegion() = default;
  ScopedRegion(const void* addr, size_t len, const char* label)
      : handle_(PublishRegion(addr, len, label)) {}
  ~ScopedRegion() { Reset(); }
  ScopedRegion(ScopedRegion&& o) noexcept : handle_(o.handle_) {
    o.handle_ = {};
  }
  ScopedRegion& operator=(ScopedRegion&& o) noexcept {
    if (this != &o) {
      Reset();
      handle_ = o.handle_;
      o.handle_ = {};
    }
    return *this;
  }
  ScopedRegion(const ScopedRegion&) = delete;
  ScopedRegion& operator=(const ScopedRegion&) = delete;

  void Reset() {
    UnpublishRegion(handle_);
    handle_ = {};
  }
  bool published() const { return handle_.valid(); }
  RegionHandle handle() const { return handle_; }

 private:
  RegionHandle handle_;
};

// Low-level scope entry/exit; SecretScope is the way to call them.
// Safe to call from a signal handler (no allocation after the thread's
// first scope, which claims a table slot with a CAS).
void EnterSecretScope(uintptr_t stack_hi, size_t stack_depth);
void ExitSecretScope();

// Declares that, while this object lives, the calling thread's registers
// and the `stack_depth` bytes of stack below the frame of the function that
// declares it (its locals included) hold secrets. Scopes nest; the
// outermost one's entry point counts. The constructor is always inlined so
// that __builtin_frame_address(0) names the declaring function's frame.
// Safe to call from a signal handler.
class SecretScope {
 public:
  [[gnu::always_inline]] explicit SecretScope(
      size_t stack_depth = kDefaultSecretStackDepth) {
    EnterSecretScope(reinterpret_cast<uintptr_t>(__builtin_frame_address(0)),
                     stack_depth);
  }
  ~SecretScope() { ExitSecretScope(); }
  SecretScope(const SecretScope&) = delete;
  SecretScope& operator=(const SecretScope&) = delete;
};

// True if the calling thread is inside a SecretScope.
// Safe to call from a signal handler.
bool InSecretScope();

// Is thread `tid` inside a SecretScope? Used by the handler to decide
// whether to redact that thread's registers.
// Safe to call from a signal handler.
bool ThreadInSecretScope(pid_t tid);

// Copies the live entries into out[0..cap). Returns the number of entries
// that exist, which may exceed cap (then out holds the first cap).
// Safe to call from a signal handler.
size_t SnapshotRegions(RegionView* out, size_t cap);

// Number of ranges currently published (for tests and diagnostics).
size_t TEST_PublishedCount();

}  // namespace sigrace::crashdump

#endif  // SIGRACE_CRASHDUMP_REGISTRY_REGISTRY_H_
