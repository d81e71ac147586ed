// The sigrace dump format: a real ELF core file (ET_CORE) plus sigrace's
// own notes and a seal trailer. Shared by the writer (crash path) and the
// reader; a change here changes both.
//
// Layout of a dump file:
//   ELF header | program headers | PT_NOTE data | PT_LOAD data ... | trailer
//
// Standard notes (owner "CORE", or "LINUX" for NT_X86_XSTATE), as the
// kernel writes them: NT_PRSTATUS per thread (crashing thread first),
// NT_PRPSINFO, NT_FPREGSET (= NT_PRFPREG), NT_X86_XSTATE, NT_SIGINFO,
// NT_AUXV, NT_FILE.
//
// sigrace notes (owner kSigraceNoteOwner):
//   kNoteRedactions: RedactionHeader then RedactionRecord[count]. Every
//     range whose bytes the dump replaced with the marker, and every thread
//     whose registers were replaced (kind kRegisters, vaddr = len = 0).
//     Version 2 (written) goes on with PreservedHeader then
//     PreservedWord[count]: the 8-byte words inside kSecretStack ranges
//     that keep their value because unwinding reads them (a return
//     address or a saved frame pointer that the handler's libunwind pass
//     read, or a saved stack pointer a frame's CFA is computed from;
//     each pointing into code or into that thread's stack). Every other
//     byte of the range is the marker. Version 1 (still read) has no
//     preserved words.
//   kNoteMeta: text, "key=value\n" lines (signal, si_code, pid, tid,
//     mode, variant, trial, seed, ...). Never key material.
//   kNoteBacktrace: text, one "#N 0xPC symbol+0xOFF\n" line per frame of
//     the crashing thread, symbolized with libunwind at dump time; then,
//     for every other captured thread, a "thread TID\n" line followed by
//     that thread's frames in the same form.
//   kNoteFlightRecorder: FlightHeader, FlightFault (the monotonic time
//     of the signal's entry into the handler), then FlightRecord[count]: the
//     registry's last events (publish, update, unpublish, scope enter and
//     exit), oldest first, read from its ring after every other thread was
//     frozen. Addresses, lengths, thread ids, timestamps and label strings
//     only; never the bytes of a range.
//
// Redacted bytes are replaced by kRedactionMarker repeated, aligned so
// that the byte at virtual address A is kRedactionMarker[A % 16].
//
// Seal: the last sizeof(SealTrailer) bytes of a complete dump. A dump
// without a valid trailer (wrong magic, content_size != file size minus
// trailer, checksum mismatch) is torn and is never scanned as clean. The
// trailer's magic carries the seal version (v1 FNV-1a, v2 word-wise; see
// below).
//
// Thread safety: constants and pure functions. Everything here is safe to
// call from a signal handler.

#ifndef SIGRACE_CRASHDUMP_FORMAT_CORE_FORMAT_H_
#define SIGRACE_CRASHDUMP_FORMAT_CORE_FORMAT_H_

#include <cstddef>
#include <cstdint>

namespace sigrace::crashdump {

inline constexpr char kSigraceNoteOwner[] = "SIGRACE";  // namesz 8 with NUL

inline constexpr uint32_t kNoteRedactions = 0x53520001;
inline constexpr uint32_t kNoteMeta = 0x53520002;
inline constexpr uint32_t kNoteBacktrace = 0x53520003;
inline constexpr uint32_t kNoteFlightRecorder = 0x53520004;

// Exactly 16 bytes, no NUL in the pattern.
inline constexpr char kRedactionMarker[17] = "SIGRACE:REDACTED";
inline constexpr size_t kRedactionMarkerLen = 16;

enum class RedactionKind : uint32_t {
  kRange = 1,         // a range the signer published
  kUpdatePrev = 2,    // the old range of a slot frozen mid-update
  kSecretStack = 3,   // stack below a SecretScope's entry
  kRegisters = 4,     // a thread's registers (vaddr = len = 0, tid set)
  kHandlerState = 5,  // the handler's own scratch / saved contexts
};

// The version the writer writes; the reader also reads kRedactionVersion1.
inline constexpr uint32_t kRedactionVersion = 2;
inline constexpr uint32_t kRedactionVersion1 = 1;
inline constexpr size_t kRedactionLabelLen = 48;

struct RedactionHeader {
  uint32_t version;  // kRedactionVersion
  uint32_t count;
};

struct RedactionRecord {
  uint64_t vaddr;
  uint64_t len;
  uint32_t kind;  // RedactionKind
  int32_t tid;    // thread, for kSecretStack and kRegisters; else 0
  char label[kRedactionLabelLen];  // NUL-terminated, truncated
};
static_assert(sizeof(RedactionHeader) == 8);
static_assert(sizeof(RedactionRecord) == 72);

// What a preserved word is to the unwinder.
enum class PreservedSlot : uint16_t {
  kReturnAddress = 1,  // where a caller's rip was saved (a call's push)
  kFramePointer = 2,   // where a caller's rbp was saved
  // A saved stack pointer a frame's CFA is computed from (hand-written
  // assembly such as OpenSSL's bignum code keeps its entry rsp on the
  // stack and says so with a DW_CFA_def_cfa_expression): the word inside
  // the frame that holds the CFA minus 8.
  kSavedStackPointer = 3,
};

// Version 2: follows the records.
struct PreservedHeader {
  uint32_t count;
  uint32_t reserved;  // 0
};

// One 8-byte word of a kSecretStack range that holds its own value. The
// oracle keeps none of it on trust: the word must lie, 8-aligned, inside
// record `record` (a kSecretStack record), and its value must be an
// address of the dump: inside an executable PT_LOAD, or inside the PT_LOAD
// that holds the word itself (the thread's stack). Any other preserved
// word is claimed as marker like the rest of the range
// (crashdump/format/redaction_claims.h).
struct PreservedWord {
  uint64_t vaddr;   // 8-aligned
  uint32_t record;  // index of its kSecretStack RedactionRecord
  uint16_t slot;    // PreservedSlot
  uint16_t frame;   // the unwinder's frame number on that thread
};
static_assert(sizeof(PreservedHeader) == 8);
static_assert(sizeof(PreservedWord) == 16);
// Version 2 (written): FlightHeader, FlightFault, then the records.
// Version 1 (still read): FlightHeader, then the records; no fault time.
inline constexpr uint32_t kFlightVersion = 2;
inline constexpr uint32_t kFlightVersionNoFault = 1;
inline constexpr size_t kFlightLabelLen = 48;

// FlightRecord::kind: the registry's FlightEventKind, or kFlightTorn for a
// slot the writer found being written or torn (its other fields are 0).
inline constexpr uint32_t kFlightPublish = 1;
inline constexpr uint32_t kFlightUpdate = 2;
inline constexpr uint32_t kFlightUnpublish = 3;
inline constexpr uint32_t kFlightScopeEnter = 4;
inline constexpr uint32_t kFlightScopeExit = 5;
inline constexpr uint32_t kFlightTorn = 0xffffffffu;

struct FlightHeader {
  uint32_t version;   // kFlightVersion
  uint32_t count;     // records that follow
  uint64_t next;      // the ring's next event index (events ever recorded)
  uint64_t read_ns;   // CLOCK_MONOTONIC when the ring was read (frozen)
  uint32_t capacity;  // the ring's size
  uint32_t torn;      // records of kind kFlightTorn
};

struct FlightRecord {
  uint64_t index;    // the event's number since the process started
  uint64_t time_ns;  // CLOCK_MONOTONIC
  uint64_t addr;     // the range after the event (update: the new range)
  uint64_t len;
  uint64_t prev_addr;  // update: the range before it; else 0
  uint64_t prev_len;
  int32_t tid;
  uint32_t kind;    // kFlight* above
  uint32_t region;  // the registry slot + 1 of a range; 0 for scopes
  uint32_t reserved;
  char label[kFlightLabelLen];  // NUL-terminated, truncated
};
// Version 2: follows the header. The handler's entry on the crashing
// thread, on the same clock as the records' time_ns, so a reader can say
// how long before the fault each event happened.
struct FlightFault {
  uint64_t fault_ns;  // CLOCK_MONOTONIC at signal entry; 0: unknown
  uint64_t reserved;
};
static_assert(sizeof(FlightHeader) == 32);
static_assert(sizeof(FlightFault) == 16);
static_assert(sizeof(FlightRecord) == 112);

// The seal trailer's magic names its version; the reader accepts both
// versions below and rejects any other "SIGRACE-SEAL-v" with a clear error.
//   v1: FNV-1a 64 byte by byte (about 0.5-1 GB/s: a dependent multiply per
//       byte). Still read; still written by the fuzz corpus's synthetic
//       dumps (testing/synthetic_core.h).
//   v2: SealHasherV2 below, word-wise in four lanes (about 10 GB/s). The
//       writer writes v2.
inline constexpr char kSealMagicV1[16] = {'S', 'I', 'G', 'R', 'A', 'C',
                                          'E', '-', 'S', 'E', 'A', 'L',
                                          '-', 'v', '1', '\0'};
inline constexpr char kSealMagicV2[16] = {'S', 'I', 'G', 'R', 'A', 'C',
                                          'E', '-', 'S', 'E', 'A', 'L',
                                          '-', 'v', '2', '\0'};
// The magic prefix shared by every version ("SIGRACE-SEAL-v").
inline constexpr size_t kSealMagicPrefixLen = 14;
// The version the writer writes.
inline constexpr uint32_t kSealVersion = 2;
// Version 1 names, kept for the v1 writers above.
inline constexpr const char (&kSealMagic)[16] = kSealMagicV1;

struct SealTrailer {
  char magic[16];         // kSealMagicV2 (or kSealMagicV1)
  uint64_t content_size;  // bytes before the trailer
  uint64_t checksum;      // the version's checksum over those bytes
  uint64_t flags;         // reserved, 0
  uint64_t reserved;      // 0
};
static_assert(sizeof(SealTrailer) == 48);

// v1: FNV-1a 64, streaming: start from kSealChecksumInit and feed the
// content in any chunking. Detects torn and altered dumps; not a MAC.
inline constexpr uint64_t kSealChecksumInit = 0xcbf29ce484222325ULL;
// Not instrumented under TSan: it reads only the writer's or reader's own
// buffer, and per-byte instrumentation made a dump of a TSan process take
// minutes.
#if defined(__clang__)
__attribute__((no_sanitize("thread")))
#endif
inline uint64_t
SealChecksumUpdate(uint64_t state, const void* data, size_t len) {
  const unsigned char* p = static_cast<const unsigned char*>(data);
  for (size_t i = 0; i < len; ++i) {
    state ^= p[i];
    state *= 0x100000001b3ULL;
  }
  return state;
}

// As SealChecksumUpdate() over n zero bytes, without reading any: a zero
// byte only multiplies the state by the FNV prime.
inline uint64_t SealChecksumZeros(uint64_t state, uint64_t n) {
  uint64_t base = 0x100000001b3ULL;
  for (; n != 0; n >>= 1) {
    if (n & 1) state *= base;
    base *= base;
  }
  return state;
}

// v2: the content is read as little-endian 64-bit words, word i going to
// lane i % 4; each lane is a polynomial hash mod 2^64,
//   lane = lane * kP + Mix(word),  Mix(w) = (w ^ (w >> 32)) * kM,
// and the final value folds the four lanes and the byte count through a
// SplitMix64 finaliser. A trailing partial block is zero-padded (the byte
// count tells the padding apart). The four lanes are independent multiply
// chains, so the CPU overlaps them; the byte-wise v1 waits on one multiply
// per byte. Mix(0) == 0, so n zero bytes (a file hole) multiply each lane
// by kP^(n/32): O(log n), no bytes read. The xor-shift lets high bits of a
// word reach low bits of the lane, so two flipped top bits do not cancel.
// Detects torn and altered dumps; not a MAC.
// Safe to call from a signal handler (no allocation, no locks).
class SealHasherV2 {
 public:
  static constexpr uint64_t kP = 0x9e3779b97f4a7c15ULL;  // odd
  static constexpr uint64_t kM = 0xbf58476d1ce4e5b9ULL;  // odd
  static constexpr size_t kBlock = 32;

#if defined(__clang__)
  __attribute__((no_sanitize("thread")))
#endif
  void
  Update(const void* data, size_t len) {
    const unsigned char* p = static_cast<const unsigned char*>(data);
    total_ += len;
    if (tail_len_ > 0) {
      const size_t take = len < kBlock - tail_len_ ? len : kBlock - tail_len_;
      __builtin_memcpy(tail_ + tail_len_, p, take);
      tail_len_ += take;
      p += take;
      len -= take;
      if (tail_len_ < kBlock) return;
      Block(tail_);
      tail_len_ = 0;
    }
    uint64_t a = lane_[0], b = lane_[1], c = lane_[2], d = lane_[3];
    for (; len >= kBlock; p += kBlock, len -= kBlock) {
      uint64_t w[4];
      __builtin_memcpy(w, p, kBlock);
      a = a * kP + Mix(w[0]);
      b = b * kP + Mix(w[1]);
      c = c * kP + Mix(w[2]);
      d = d * kP + Mix(w[3]);
    }
    lane_[0] = a;
    lane_[1] = b;
    lane_[2] = c;
    lane_[3] = d;
    if (len > 0) {
      __builtin_memcpy(tail_, p, len);
      tail_len_ = len;
    }
  }

  // As Update() over n zero bytes, without reading any.
  void UpdateZeros(uint64_t n) {
    static constexpr unsigned char kZero[kBlock] = {};
    if (tail_len_ > 0) {
      const size_t take =
          n < kBlock - tail_len_ ? static_cast<size_t>(n) : kBlock - tail_len_;
      Update(kZero, take);
      n -= take;
    }
    total_ += n / kBlock * kBlock;
    uint64_t f = 1, base = kP;
    for (uint64_t e = n / kBlock; e != 0; e >>= 1) {
      if (e & 1) f *= base;
      base *= base;
    }
    for (uint64_t& l : lane_) l *= f;
    if (n % kBlock != 0) Update(kZero, static_cast<size_t>(n % kBlock));
  }

#if defined(__clang__)
  __attribute__((no_sanitize("thread")))
#endif
  uint64_t
  Finish() const {
    SealHasherV2 h = *this;
    if (h.tail_len_ > 0) {
      __builtin_memset(h.tail_ + h.tail_len_, 0, kBlock - h.tail_len_);
      h.Block(h.tail_);
    }
    uint64_t x = h.total_ ^ 0x53494752414345ULL;
    for (uint64_t l : h.lane_) x = Fold(x ^ l);
    return x;
  }

  uint64_t bytes() const { return total_; }

 private:
  static uint64_t Mix(uint64_t w) { return (w ^ (w >> 32)) * kM; }
  static uint64_t Fold(uint64_t x) {  // SplitMix64 finaliser
    x += 0x9e3779b97f4a7c15ULL;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
    return x ^ (x >> 31);
  }
#if defined(__clang__)
  __attribute__((no_sanitize("thread")))
#endif
  void
  Block(const unsigned char* p) {
    uint64_t w[4];
    __builtin_memcpy(w, p, kBlock);
    for (int i = 0; i < 4; ++i) lane_[i] = lane_[i] * kP + Mix(w[i]);
  }

  uint64_t lane_[4] = {0x736967726163652dULL, 0x7365616c2d763221ULL,
                       0x0123456789abcdefULL, 0xfedcba9876543210ULL};
  unsigned char tail_[kBlock] = {};
  size_t tail_len_ = 0;
  uint64_t total_ = 0;
};

// One-shot v2 checksum of a buffer.
inline uint64_t SealChecksumV2(const void* data, size_t len) {
  SealHasherV2 h;
  h.Update(data, len);
  return h.Finish();
}

}  // namespace sigrace::crashdump

#endif  // SIGRACE_CRASHDUMP_FORMAT_CORE_FORMAT_H_
