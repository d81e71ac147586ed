// CoreReader: reads an ELF core file (a sigrace dump, a kernel core or a
// gcore file) through a read-only mapping and lists what it holds: threads,
// memory mappings, sigrace redaction records, metadata, the backtrace, the
// signal and the seal state. It maps file offsets to virtual addresses and
// back, so the scanner can say where in the process a fragment sat and
// whether that range was recorded as redacted.
//
// The input is untrusted: a dump may be truncated, torn or built to hurt the
// reader. Open() checks every offset, size, count and alignment it uses
// with overflow-safe arithmetic before touching the bytes; anything out of
// bounds or inconsistent yields a kDataLoss Status with a one-line message.
// No accessor reads outside the checked ranges after Open() succeeds.
//
// Supported: ELFCLASS64, little-endian, ET_CORE. Registers are decoded for
// x86_64 and aarch64; on other machines threads carry tid and signal only
// (regs_known == false). PN_XNUM (more than 65534 segments) is followed to
// section header 0, as the kernel writes it.
//
// The format of sigrace's own notes and of the seal trailer is
// crashdump/format/core_format.h.
//
// Open() maps the file; a file that shrinks while mapped makes later reads
// fault (SIGBUS). Dumps are renamed into place complete, and the gate hands
// out sealed dumps only, so nothing truncates a file a reader holds.
//
// Thread safety: a CoreReader is immutable after Open()/FromBuffer(); any
// number of threads may call its const methods at once.
// Not async-signal-safe (allocates, mmap); never use it on the crash path.

#ifndef SIGRACE_CRASHDUMP_FORMAT_CORE_READER_H_
#define SIGRACE_CRASHDUMP_FORMAT_CORE_READER_H_

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "base/status.h"
#include "crashdump/format/core_format.h"

namespace sigrace::crashdump {

// A byte range of a file that may hold data; what lies between two extents
// is a hole, which reads as zeros.
struct FileExtent {
  uint64_t offset = 0;
  uint64_t length = 0;
};

// The data extents of the first `size` bytes of `fd`, in order, from
// lseek(SEEK_DATA/SEEK_HOLE). A file system without them gives one extent,
// the whole range. Dumps are sparse (untouched and zero pages are holes; a
// dump of a ThreadSanitizer process is over 1 GB apparent and a few MB of
// data), so readers that skip holes read only the data.
StatusOr<std::vector<FileExtent>> DataExtents(int fd, uint64_t size);

// A private copy of the first `size` bytes of `fd` in a fresh anonymous
// mapping (the caller frees it with munmap(data, size)): only `extents`
// are read when given (the holes stay zero pages and take no memory),
// else all of it. A file that ends before `size` (shrunk while read) is a
// kDataLoss error; a mapping of the file itself would turn that into
// SIGBUS. The copy does not change whatever happens to the file after.
StatusOr<uint8_t*> ReadFileImage(int fd, uint64_t size,
                                 const std::vector<FileExtent>* extents);

struct ReaderOptions {
  // Sealing is sigrace's contract: a caller that will act on a dump (scan
  // it, release it) sets this, and Open() then fails with kDataLoss unless
  // the trailer is present and its checksum matches.
  bool require_seal = false;
  // Verifying the checksum reads every byte once (v2 about 10 GB/s; v1,
  // byte-wise FNV-1a, about 1 GB/s).
  // Only a caller that never trusts the seal state may turn it off; the
  // state is then kSealed on a matching magic and content_size alone, and
  // SealInfo::checksum_verified says so.
  bool verify_checksum = true;
  // The file's data extents (DataExtents()), or null: the checksum then
  // skips the holes between them instead of reading their zeros. Open()
  // fills it in itself; a FromBuffer() caller that has the fd may pass it.
  // Must outlive the call.
  const std::vector<FileExtent>* data_extents = nullptr;
  // Bounds on what a file may make the reader allocate, so a small hostile
  // file cannot claim millions of entries that each cost far more memory
  // than the bytes describing them. The defaults are far above any real
  // dump (the kernel's vm.max_map_count defaults to 65530). Exceeding one
  // is a kDataLoss error.
  uint64_t max_segments = uint64_t{1} << 20;  // program headers
  uint64_t max_notes = uint64_t{1} << 21;
  uint64_t max_records = uint64_t{1} << 20;  // NT_FILE entries, redactions
};

enum class SealState {
  kSealed,    // trailer present, content_size and checksum match
  kUnsealed,  // no trailer (plain kernel or gcore core, or a torn write)
  kCorrupt,   // trailer magic present but size or checksum disagrees
};

// "sealed", "unsealed", "corrupt".
const char* SealStateName(SealState state);

struct SealInfo {
  SealState state = SealState::kUnsealed;
  // Why the dump is not sealed, e.g. "unsealed (no sigrace trailer)" or
  // "corrupt (checksum mismatch)"; empty when sealed.
  std::string reason;
  // Bytes the ELF content may occupy: file size minus the trailer when the
  // trailer magic is present, else the file size. Every segment must lie
  // inside it.
  uint64_t content_size = 0;
  uint64_t checksum = 0;  // from the trailer; 0 without one
  bool checksum_verified = false;
  // Seal version from the trailer magic (1 or 2, core_format.h); 0 without
  // a trailer. Any other version is kCorrupt with the version in `reason`.
  uint32_t version = 0;
};

// The trailer rule every reader of a seal applies (the reader, the gate):
// magic of a known version, content_size equal to the bytes before the
// trailer, and flags and reserved zero (no checksum covers them, so any
// other value is not the writer's). `t` is the last sizeof(SealTrailer)
// bytes of a file of `file_size` bytes. kSealed here means the trailer is
// well formed; the checksum is not checked (checksum_verified false).
SealInfo InspectSealTrailer(const SealTrailer& t, uint64_t file_size);

// Reads only the ELF header and the program headers of the `size`-byte
// file `fd` (pread, a bounded buffer) and returns the end of the furthest
// byte they declare: the headers themselves, section header 0 under
// PN_XNUM, and every segment's p_offset + p_filesz. A sigrace dump's
// content ends there (the writer puts the trailer right after the last
// segment), so a file far larger is not a dump of this format, whatever
// else it holds; a caller can refuse it without reading its bytes.
// kDataLoss when the file is not a 64-bit little-endian ELF core or a
// header lies outside the file.
StatusOr<uint64_t> DeclaredContentEnd(int fd, uint64_t size);

// One ELF note, wherever it is. Offsets are file offsets.
struct NoteInfo {
  std::string owner;    // "CORE", "LINUX", "SIGRACE", ...
  uint32_t type = 0;    // NT_PRSTATUS, kNoteMeta, ...
  uint64_t offset = 0;  // of the note header
  uint64_t desc_offset = 0;
  uint64_t desc_size = 0;
  // Index into threads() of the thread this note describes (NT_PRSTATUS and
  // the register notes that follow it), or -1.
  int thread_index = -1;
};

struct ThreadInfo {
  int32_t tid = 0;          // pr_pid
  int32_t signal = 0;       // pr_cursig: the signal that stopped this thread
  bool regs_known = false;  // false: machine not decoded, pc/sp/bp are 0
  uint64_t pc = 0;
  uint64_t sp = 0;
  uint64_t bp = 0;                // rbp on x86_64, x29 on aarch64
  size_t prstatus_note = 0;       // index into notes()
  std::vector<size_t> reg_notes;  // NT_PRSTATUS, NT_FPREGSET, XSTATE...
  uint64_t regs_offset = 0;       // file offset of pr_reg in NT_PRSTATUS
  uint64_t regs_size = 0;
};

struct Mapping {
  uint64_t vaddr = 0;
  uint64_t memsz = 0;
  uint64_t filesz = 0;  // bytes present in the file; may be < memsz
  uint64_t offset = 0;  // file offset of those bytes
  uint32_t flags = 0;   // PF_R | PF_W | PF_X
  size_t phdr_index = 0;
  // From NT_FILE when an entry covers vaddr; empty otherwise.
  std::string name;
  uint64_t name_offset = 0;  // offset into `name` the mapping starts at

  uint64_t end() const { return vaddr + memsz; }  // checked not to wrap
  std::string Perms() const;                      // "rwx", "r--", ...
};

struct Redaction {
  RedactionKind kind = RedactionKind::kRange;  // may hold an unknown value
  uint64_t vaddr = 0;
  uint64_t len = 0;  // vaddr + len checked not to wrap
  int32_t tid = 0;
  std::string label;  // bytes up to the first NUL (at most 48)
};

// A word of a kSecretStack range the writer says it kept (redaction note
// version 2; core_format.h PreservedWord). Unverified: RedactionClaims
// checks each one.
struct Preserved {
  uint64_t vaddr = 0;
  uint32_t record = 0;  // index into redactions(); checked < its size
  PreservedSlot slot = PreservedSlot::kReturnAddress;  // may be unknown
  uint16_t frame = 0;
};

// "range", "update-prev", "secret-stack", "registers", "handler-state" or
// "unknown(N)".
std::string RedactionKindName(RedactionKind kind);

// From NT_PRPSINFO.
struct ProcessInfo {
  int32_t pid = 0;
  int32_t ppid = 0;
  std::string name;  // pr_fname, up to 16 bytes
  std::string args;  // pr_psargs, up to 80 bytes
};

struct SigInfo {
  int32_t signo = 0;
  int32_t errnum = 0;
  int32_t code = 0;
  uint64_t addr = 0;  // si_addr; meaningful for SIGSEGV/SIGBUS/SIGILL/SIGFPE
};

// Where a file offset falls.
struct FileLocation {
  enum class Kind {
    kElfHeader,
    kProgramHeaders,
    kNote,     // inside notes()[note_index] (header, name or desc)
    kLoad,     // inside mappings()[mapping_index] at `vaddr`
    kTrailer,  // inside the seal trailer
    kOther,    // padding, section headers, or unclaimed bytes
  };
  Kind kind = Kind::kOther;
  size_t note_index = 0;
  size_t mapping_index = 0;
  uint64_t vaddr = 0;
};

class CoreReader {
 public:
  // Maps `path` read-only (MAP_PRIVATE) and parses it. Errors: kNotFound
  // (no such file), kIoError (open/stat/mmap failed), kDataLoss (anything
  // wrong with the content, or not sealed when options.require_seal).
  // Messages are one line and do not repeat the path.
  static StatusOr<std::unique_ptr<CoreReader>> Open(const std::string& path,
                                                    ReaderOptions options = {});

  // Parses bytes the caller owns; no copy. The buffer must outlive the
  // reader. For tests and the fuzzer.
  static StatusOr<std::unique_ptr<CoreReader>> FromBuffer(
      const uint8_t* data, size_t size, ReaderOptions options = {});

  ~CoreReader();
  CoreReader(const CoreReader&) = delete;
  CoreReader& operator=(const CoreReader&) = delete;

  // The whole file, notes and trailer included, for scanning raw bytes.
  const uint8_t* data() const { return data_; }
  uint64_t size() const { return size_; }

  uint16_t machine() const { return machine_; }  // e_machine
  const SealInfo& seal() const { return seal_; }
  const std::vector<NoteInfo>& notes() const { return notes_; }
  // NT_PRSTATUS order; threads()[0] is the crashing thread.
  const std::vector<ThreadInfo>& threads() const { return threads_; }
  // PT_LOAD order (as in the file; real cores ascend by vaddr).
  const std::vector<Mapping>& mappings() const { return mappings_; }
  const std::vector<Redaction>& redactions() const { return redactions_; }
  // Preserved words of the secret-stack ranges (version 2 notes).
  const std::vector<Preserved>& preserved() const { return preserved_; }
  // The redaction note's version (0 without one).
  uint32_t redaction_version() const { return redaction_version_; }
  // kNoteMeta lines in file order.
  const std::vector<std::pair<std::string, std::string>>& meta() const {
    return meta_;
  }
  // The last value for `key`, if any.
  std::optional<std::string> MetaValue(std::string_view key) const;
  // kNoteBacktrace text, verbatim (concatenated if several notes).
  const std::string& backtrace() const { return backtrace_; }
  const std::optional<SigInfo>& siginfo() const { return siginfo_; }
  const std::optional<ProcessInfo>& process() const { return process_; }
  // True if the dump carries at least one SIGRACE note.
  bool has_sigrace_notes() const { return has_sigrace_notes_; }

  // The bytes of a note's descriptor (bounds checked at Open()).
  const uint8_t* NoteDesc(const NoteInfo& note) const {
    return data_ + note.desc_offset;
  }

  // Which mapping's file bytes hold `file_offset`, and at which address.
  // nullopt if the offset is not inside any PT_LOAD's file bytes.
  struct AddressAt {
    size_t mapping_index;
    uint64_t vaddr;
  };
  std::optional<AddressAt> OffsetToAddress(uint64_t file_offset) const;

  // The file offset holding the byte at `vaddr`; nullopt if no mapping
  // covers it or the mapping's bytes at vaddr are not in the file
  // (memsz > filesz, e.g. a read-only text segment the dumper skipped).
  std::optional<uint64_t> AddressToOffset(uint64_t vaddr) const;

  // Index of the mapping whose [vaddr, vaddr+memsz) holds `vaddr`.
  std::optional<size_t> MappingForAddress(uint64_t vaddr) const;

  // Pointer to `len` bytes of process memory at `vaddr` if all of them lie
  // in one mapping's file bytes; nullptr otherwise.
  const uint8_t* MemoryAt(uint64_t vaddr, uint64_t len) const;

  // Classifies any file offset < size().
  FileLocation Locate(uint64_t file_offset) const;

  // True if every byte of [vaddr, vaddr+len) is inside the union of the
  // address-bearing redaction records (every kind but kRegisters). len 0
  // is never redacted.
  bool IsRedacted(uint64_t vaddr, uint64_t len) const;
  // Indices into redactions() of the address-bearing records that overlap
  // [vaddr, vaddr+len).
  std::vector<size_t> RedactionsOverlapping(uint64_t vaddr, uint64_t len) const;

 private:
  class Parser;
  CoreReader() = default;

  const uint8_t* data_ = nullptr;
  uint64_t size_ = 0;
  void* map_base_ = nullptr;  // owned mmap, or null for FromBuffer
  size_t map_len_ = 0;

  uint16_t machine_ = 0;
  SealInfo seal_;
  std::vector<NoteInfo> notes_;
  std::vector<ThreadInfo> threads_;
  std::vector<Mapping> mappings_;
  std::vector<Redaction> redactions_;
  std::vector<Preserved> preserved_;
  uint32_t redaction_version_ = 0;
  std::vector<std::pair<std::string, std::string>> meta_;
  std::string backtrace_;
  std::optional<SigInfo> siginfo_;
  std::optional<ProcessInfo> process_;
  bool has_sigrace_notes_ = false;

  // Sorted indices for the lookups above (built once, at parse time).
  std::vector<size_t> by_file_offset_;  // mappings with filesz > 0
  std::vector<size_t> by_vaddr_;        // mappings with memsz > 0
  std::vector<size_t> notes_by_offset_;
  // Merged, sorted [start, end) ranges of address-bearing redactions.
  std::vector<std::pair<uint64_t, uint64_t>> redacted_ranges_;
  uint64_t phoff_ = 0;
  uint64_t phdrs_size_ = 0;
};

}  // namespace sigrace::crashdump

#endif  // SIGRACE_CRASHDUMP_FORMAT_CORE_READER_H_
