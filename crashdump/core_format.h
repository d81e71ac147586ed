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
//   kNoteMeta: text, "key=value\n" lines (signal, si_code, pid, tid,
//     mode, variant, trial, seed, ...). Never key material.
//   kNoteBacktrace: text, one "#N 0xPC symbol+0xOFF\n" line per frame of
//     the crashing thread, symbolized with libunwind at dump time.
//
// Redacted bytes are replaced by kRedactionMarker repeated, aligned so
// that the byte at virtual address A is kRedactionMarker[A % 16].
//
// Seal: the last sizeof(SealTrailer) bytes of a complete dump. A dump
// without a valid trailer (wrong magic, content_size != file size minus
// trailer, checksum mismatch) is torn and is never scanned as clean.
//
// Thread safety: constants and pure functions. Everything here is safe to
// call from a signal handler.

#ifndef SIGRACE_CRASHDUMP_CORE_FORMAT_H_
#define SIGRACE_CRASHDUMP_CORE_FORMAT_H_

#include <cstddef>
#include <cstdint>

namespace sigrace::crashdump {

inline constexpr char kSigraceNoteOwner[] = "SIGRACE";  // namesz 8 with NUL

inline constexpr uint32_t kNoteRedactions = 0x53520001;
inline constexpr uint32_t kNoteMeta = 0x53520002;
inline constexpr uint32_t kNoteBacktrace = 0x53520003;

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

inline constexpr uint32_t kRedactionVersion = 1;
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

inline constexpr char kSealMagic[16] = {'S', 'I', 'G', 'R', 'A', 'C',
                                        'E', '-', 'S', 'E', 'A', 'L',
                                        '-', 'v', '1', '\0'};

struct SealTrailer {
  char magic[16];         // kSealMagic
  uint64_t content_size;  // bytes before the trailer
  uint64_t checksum;      // SealChecksum over those bytes
  uint64_t flags;         // reserved, 0
  uint64_t reserved;      // 0
};
static_assert(sizeof(SealTrailer) == 48);

// FNV-1a 64, streaming: start from kSealChecksumInit and feed the content
// in any chunking. Detects torn and altered dumps; not a MAC.
inline constexpr uint64_t kSealChecksumInit = 0xcbf29ce484222325ULL;
// Not instrumented under TSan: it reads only the writer's or reader's own
// buffer, and per-byte instrumentation made a dump of a TSan process take
// minutes.
#if defined(__clang__)
__attribute__((no_sanitize("thread")))
#endif
inline uint64_t SealChecksumUpdate(uint64_t state, const void* data,
                                   size_t len) {
  const unsigned char* p = static_cast<const unsigned char*>(data);
  for (size_t i = 0; i < len; ++i) {
    state ^= p[i];
    state *= 0x100000001b3ULL;
  }
  return state;
}

}  // namespace sigrace::crashdump

#endif  // SIGRACE_CRASHDUMP_CORE_FORMAT_H_
