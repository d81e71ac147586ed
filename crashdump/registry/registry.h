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
//
// Cover check (off by default; SetCoverCheck or SIGRACE_COVER_CHECK): every
// writer checks, at the instant of its transition, that the transition
// opens no window, as a sanitizer would:
//   - bytes that LEAVE the cover (UnpublishRegion; the part of the old range
//     an UpdateRegion drops; each store of TEST_UpdateRegionTorn, which is
//     a transition of its own) must already be wiped;
//   - bytes that ENTER the cover (PublishRegion; the part an UpdateRegion
//     adds) must not yet hold data.
// Bytes still covered by another live range or secret stack neither leave
// nor enter. What "wiped" and "holds no data" mean depends on the range's
// RegionContent, chosen at publish:
//   - kZeroWhenClear (the default): the range holds no secret exactly when
//     every byte is zero. Sound for the ranges the signer publishes because
//     they start as fresh anonymous mappings (the kernel hands out zero
//     pages: ProtectedPages, key-heap chunks carved from a PROT_NONE
//     reservation that is never reused) and are wiped to zero
//     (OPENSSL_cleanse, explicit zeroing) before they leave the cover. A
//     non-zero byte is reported even if it is not key material: the check
//     cannot tell, so it asks for zero.
//   - kDeclared: the bytes say nothing, because the range holds non-zero
//     bytes that are not secret (an allocator arena: OpenSSL's secure heap
//     keeps its free lists inside the arena). Its owner declares the state
//     with SetRegionHoldsSecret(); it starts as "holds secret". Leaving the
//     cover while declared secret is a violation; entering is not checked.
// The secret stacks of SecretScope are not content-checked on entry or
// exit: the stack below a scope's entry holds non-zero bytes that are not
// secrets (return addresses, saved registers, other code's dead frames)
// and the frames above the stack pointer are live. Their window is a depth
// too shallow for the code running in the scope, which
// CheckSecretStackDepth() catches at the instant a frame goes below the
// cover (the signer calls it from its OpenSSL allocation hook).
// A violation prints one line (check, label, range, offset of the first
// offending byte, never the bytes) and the thread's backtrace to stderr,
// then aborts (kAbort) or goes on (kCount); a hook set with
// SetCoverViolationHook() is called instead of both. With the check on,
// writers read the range and may print and abort: they are then NOT
// async-signal-safe and each range must be readable at its transitions.
// Readers (SnapshotRegions, InSecretScope, ThreadInSecretScope) never check.
// With the check off, a writer pays one relaxed atomic load.
//
// fork(): in the child, the forking thread's scope entry takes the child
// thread's tid (a pthread_atfork handler), and the entries of the parent's
// other threads are dropped: the child has none of those threads.

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

// How the cover check reads a range (see the header comment).
enum class RegionContent : uint32_t {
  kZeroWhenClear = 0,  // no secret in it exactly when every byte is zero
  kDeclared = 1,       // the owner declares it (SetRegionHoldsSecret)
};

// Publishes [addr, addr+len) for redaction. `label` must be a string with
// static storage duration. Returns an invalid handle when the table is full
// or len is 0.
// Safe to call from a signal handler (with the cover check off).
RegionHandle PublishRegion(
    const void* addr, size_t len, const char* label,
    RegionContent content = RegionContent::kZeroWhenClear);

// For a kDeclared range: whether it holds secret bytes now. Ignored for
// other ranges and stale handles.
// Safe to call from a signal handler.
void SetRegionHoldsSecret(RegionHandle handle, bool holds_secret);

// Withdraws a range. A stale or invalid handle is ignored.
// Safe to call from a signal handler (with the cover check off).
void UnpublishRegion(RegionHandle handle);

// Moves a published range. Until it returns, a snapshot covers both the old
// and the new range.
// Safe to call from a signal handler (with the cover check off).
void UpdateRegion(RegionHandle handle, const void* addr, size_t len);

// Moves a published range by writing its address and length in place, with
// no cover for the interval between the two stores: a snapshot taken in
// between sees the new address with the old length. This opens a window on
// purpose; it exists for the `torn-update` race variant only. The cover
// check sees two transitions: old -> (addr, old len) -> (addr, len).
// Safe to call from a signal handler (with the cover check off).
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

// ---- Flight recorder ----
//
// The registry keeps a ring of its last kFlightRingSize events: publish,
// update, unpublish, and the outermost SecretScope's enter and exit, each
// with the thread, the label (a static string), the range and a
// CLOCK_MONOTONIC timestamp. The crash handler copies the ring into the
// dump (kNoteFlightRecorder), so a dump says what the registry did just
// before the fault. It holds addresses and label pointers only, never the
// bytes of a range.
//
// Writers: one relaxed fetch_add claims a ticket (the event's index), the
// slot is ticket % kFlightRingSize; the slot's sequence word goes odd, the
// fields are stored relaxed, a check word over the ticket and the fields
// is stored, and the sequence goes even (release). No lock, no allocation.
// Readers (ReadFlightEvent) accept a slot only if its sequence is the
// even value of the ticket they expect both before and after reading the
// fields, and the check word matches: a slot being written, overwritten
// by a later lap, or written by two laps at once (a writer stalled for a
// whole lap) is reported torn, never returned mixed.

inline constexpr size_t kFlightRingSize = 1024;  // a power of two
static_assert((kFlightRingSize & (kFlightRingSize - 1)) == 0);

enum class FlightEventKind : uint32_t {
  kPublish = 1,     // addr/len: the range published
  kUpdate = 2,      // addr/len: the new range; prev_*: the old one
  kUnpublish = 3,   // addr/len: the range withdrawn
  kScopeEnter = 4,  // addr/len: the secret stack the outermost scope covers
  kScopeExit = 5,   // addr/len: the secret stack it covered
};

// "publish", "update", "unpublish", "scope-enter", "scope-exit", "?".
const char* FlightEventKindName(FlightEventKind kind);

struct FlightEvent {
  uint64_t index = 0;    // ticket: 0 for the process's first event
  uint64_t time_ns = 0;  // CLOCK_MONOTONIC
  uintptr_t addr = 0;
  size_t len = 0;
  uintptr_t prev_addr = 0;  // kUpdate only
  size_t prev_len = 0;
  const char* label = nullptr;  // static string; "secret-stack" for scopes
  pid_t tid = 0;
  FlightEventKind kind = FlightEventKind::kPublish;
  uint32_t region = 0;  // the range's slot + 1 (its handle's slot); 0 scope
};

// Index the next event will take (= events recorded since start).
// Safe to call from a signal handler.
uint64_t FlightRecorderNext();

// Copies event `index` into *out if the ring still holds it whole. false
// if it was overwritten, is being written, or is torn.
// Safe to call from a signal handler.
bool ReadFlightEvent(uint64_t index, FlightEvent* out);

// On by default. Off, a writer pays one relaxed load and records nothing.
// For the benchmark that measures the recorder's cost.
// Safe to call from a signal handler.
void SetFlightRecorder(bool on);
bool FlightRecorderOn();

// TEST-ONLY: writes the first half of event `index`'s slot (sequence odd,
// fields of `e`) and stops, as a writer interrupted mid-event leaves it;
// with `finish_as` set, then finishes the slot as ticket *finish_as (a
// second writer of the same slot one lap later), leaving a mixture.
void TEST_WriteTornFlightSlot(uint64_t index, const FlightEvent& e,
                              const uint64_t* finish_as);

// ---- Cover check ----

enum class CoverCheckMode : uint32_t { kOff = 0, kCount = 1, kAbort = 2 };

// Process-wide. Until the first call, the mode comes from the environment
// variable SIGRACE_COVER_CHECK, read once ("abort" or "on" or "1": kAbort;
// "count": kCount; "off", "0" or unset: kOff; anything else: a one-line
// warning and kAbort, so a typo never turns the check off silently).
// Not async-signal-safe.
void SetCoverCheck(CoverCheckMode mode);
CoverCheckMode GetCoverCheck();

// Names of the checks, as CoverViolation::check and the report show them.
inline constexpr char kCheckPublish[] = "publish";
inline constexpr char kCheckUnpublish[] = "unpublish";
inline constexpr char kCheckUpdateEnter[] = "update.enter";
inline constexpr char kCheckUpdateLeave[] = "update.leave";
inline constexpr char kCheckTornAddress[] = "torn-update.address-store";
inline constexpr char kCheckTornLength[] = "torn-update.length-store";
inline constexpr char kCheckStackDepth[] = "scope.stack-depth";
inline constexpr char kCheckWriteUncovered[] = "write.uncovered";

struct CoverViolation {
  const char* check;   // kCheck* above, or an owner's check name
  const char* reason;  // one phrase: "leaves the cover unwiped", ...
  const char* label;   // the range's label
  uintptr_t addr;      // the range the transition moves across the cover
  size_t len;
  size_t offset;  // of the first offending byte, from addr
};

// Called for each violation instead of printing and aborting (tests).
// nullptr restores the default. Not async-signal-safe.
using CoverViolationHook = void (*)(const CoverViolation& v, void* arg);
void SetCoverViolationHook(CoverViolationHook hook, void* arg);

// Violations seen since the process started (any mode, hook or not).
uint64_t CoverViolationCount();

// Reports a violation found by a check outside the registry (the signer's
// key heap) through the same mode, hook and report format.
// Not async-signal-safe.
void ReportCoverViolation(const CoverViolation& v);

namespace cover_internal {
inline constexpr uint32_t kUnresolved = 0xffffffffu;
// CoverCheckMode, or kUnresolved before the environment was read.
inline std::atomic<uint32_t> g_mode{kUnresolved};
static_assert(std::atomic<uint32_t>::is_always_lock_free);
// Reads the environment if not done yet; returns the mode.
CoverCheckMode Resolve();
}  // namespace cover_internal

// The hot-path test: false only when the check is known to be off. One
// relaxed load. A caller that gets true asks CoverCheckActive().
// Safe to call from a signal handler.
inline bool CoverCheckMaybeOn() {
  return cover_internal::g_mode.load(std::memory_order_relaxed) !=
         static_cast<uint32_t>(CoverCheckMode::kOff);
}
// Not async-signal-safe (the first call may read the environment).
inline bool CoverCheckActive() {
  return CoverCheckMaybeOn() &&
         cover_internal::Resolve() != CoverCheckMode::kOff;
}

// If the calling thread is inside a SecretScope and `frame` (an address on
// its stack, e.g. __builtin_frame_address(0) of the caller) lies below the
// scope's covered depth, reports a kCheckStackDepth violation. A no-op with
// the check off. Not async-signal-safe (with the check on).
void CheckSecretStackDepth(uintptr_t frame);

// A writer of secret bytes calls this just before it writes them to
// [addr, addr+len): every byte must already be covered (by a live range or
// the calling thread's secret stack), or a kCheckWriteUncovered violation
// names `label` and the first uncovered byte. This catches a window that
// opens with a write rather than with a transition (publish-late: the
// unwrap writes before the page is published). A no-op with the check off.
// Not async-signal-safe (with the check on).
void CheckCovered(const void* addr, size_t len, const char* label);

}  // namespace sigrace::crashdump

#endif  // SIGRACE_CRASHDUMP_REGISTRY_REGISTRY_H_
