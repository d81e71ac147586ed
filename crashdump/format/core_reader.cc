#include "crashdump/format/core_reader.h"

#include <elf.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#include <algorithm>
#include <bit>
#include <cerrno>
#include <cstring>
#include <memory>
#include <string>
#include <utility>

#include "base/failpoint.h"
#include "base/hex.h"

namespace sigrace::crashdump {
namespace {
// Open() has the file open and its size: where a test changes the file
// under a reader.
SIGRACE_FAILPOINT_DEFINE(kFpReaderOpened, "reader.opened");
}  // namespace

// Multi-byte fields are copied out with memcpy and used as they are.
static_assert(std::endian::native == std::endian::little,
              "the reader decodes little-endian cores on a little-endian host");

namespace {

constexpr uint64_t kEhdrSize = sizeof(Elf64_Ehdr);
constexpr uint64_t kPhdrSize = sizeof(Elf64_Phdr);
constexpr uint64_t kNhdrSize = sizeof(Elf64_Nhdr);
constexpr uint64_t kTrailerSize = sizeof(SealTrailer);

// NT_PRSTATUS: struct elf_prstatus on 64-bit Linux. The fields before
// pr_reg have the same layout on every 64-bit architecture.
constexpr uint64_t kPrstatusCursig = 12;  // short pr_cursig
constexpr uint64_t kPrstatusPid = 32;     // pid_t pr_pid
constexpr uint64_t kPrstatusReg = 112;    // elf_gregset_t pr_reg
// x86_64 user_regs_struct: 27 longs; rbp is 4, rip 16, rsp 19.
constexpr uint64_t kX86RegsSize = uint64_t{27} * 8;
// aarch64 user_pt_regs: x0..x30, sp, pc, pstate.
constexpr uint64_t kArm64RegsSize = uint64_t{34} * 8;

// struct elf_prpsinfo on 64-bit Linux.
constexpr uint64_t kPrpsinfoSize = 136;
constexpr uint64_t kPrpsinfoPid = 24;
constexpr uint64_t kPrpsinfoPpid = 28;
constexpr uint64_t kPrpsinfoFname = 40;
constexpr uint64_t kPrpsinfoFnameLen = 16;
constexpr uint64_t kPrpsinfoArgs = 56;
constexpr uint64_t kPrpsinfoArgsLen = 80;

constexpr uint64_t kSiginfoSize = 128;  // sizeof(siginfo_t)
constexpr uint64_t kSiginfoAddr = 16;   // si_addr for fault signals

#ifndef NT_SIGINFO
constexpr uint32_t NT_SIGINFO = 0x53494749;
#endif
#ifndef NT_FILE
constexpr uint32_t NT_FILE = 0x46494c45;
#endif

// True if [off, off+len) lies inside [0, limit); no overflow possible.
bool InBounds(uint64_t off, uint64_t len, uint64_t limit) {
  return off <= limit && len <= limit - off;
}

bool CheckedAdd(uint64_t a, uint64_t b, uint64_t* out) {
  return !__builtin_add_overflow(a, b, out);
}

// Rounds up to `align` (a power of two); false on overflow.
bool AlignUp(uint64_t v, uint64_t align, uint64_t* out) {
  uint64_t t;
  if (!CheckedAdd(v, align - 1, &t)) return false;
  *out = t & ~(align - 1);
  return true;
}

template <typename T>
T Load(const uint8_t* p) {
  T v;
  std::memcpy(&v, p, sizeof(T));
  return v;
}

// A C string of at most `max` bytes: up to the first NUL, or all of them.
std::string BoundedString(const uint8_t* p, uint64_t max) {
  const void* nul = std::memchr(p, 0, max);
  size_t n = nul ? static_cast<size_t>(static_cast<const uint8_t*>(nul) - p)
                 : static_cast<size_t>(max);
  return std::string(reinterpret_cast<const char*>(p), n);
}

// Text notes: trailing NULs are padding, not content.
std::string_view TrimNuls(std::string_view s) {
  while (!s.empty() && s.back() == '\0') s.remove_suffix(1);
  return s;
}

}  // namespace

const char* SealStateName(SealState state) {
  switch (state) {
    case SealState::kSealed:
      return "sealed";
    case SealState::kUnsealed:
      return "unsealed";
    case SealState::kCorrupt:
      return "corrupt";
  }
  return "unknown";
}

std::string RedactionKindName(RedactionKind kind) {
  switch (kind) {
    case RedactionKind::kRange:
      return "range";
    case RedactionKind::kUpdatePrev:
      return "update-prev";
    case RedactionKind::kSecretStack:
      return "secret-stack";
    case RedactionKind::kRegisters:
      return "registers";
    case RedactionKind::kHandlerState:
      return "handler-state";
  }
  return "unknown(" + std::to_string(static_cast<uint32_t>(kind)) + ")";
}

std::string Mapping::Perms() const {
  std::string p = "---";
  if (flags & PF_R) p[0] = 'r';
  if (flags & PF_W) p[1] = 'w';
  if (flags & PF_X) p[2] = 'x';
  return p;
}

// Feeds [p, p + n) of this process's memory to `update` in chunks. A
// large input is usually a fresh file mapping (a dump just written to a
// memfd): touching it page by page through the mapping costs a page fault
// per page, and in a VM with shadow page tables a trap on top; the kernel
// copies it through process_vm_readv into a small buffer this thread keeps
// for about a third of that (measured here: 1.5 ms against 4.4 ms for a
// 2.6 MB dump). Small inputs, and any error, read the mapping directly.
template <typename Update>
static void ReadInChunks(const uint8_t* p, uint64_t n, Update update) {
  constexpr size_t kChunk = size_t{256} << 10;
  thread_local std::unique_ptr<uint8_t[]> buf;
  uint64_t done = 0;
  if (n >= (uint64_t{1} << 20)) {
    if (!buf) buf.reset(new uint8_t[kChunk]);
    const pid_t self = getpid();
    while (done < n) {
      const size_t want =
          n - done < kChunk ? static_cast<size_t>(n - done) : kChunk;
      struct iovec local = {buf.get(), want};
      struct iovec remote = {const_cast<uint8_t*>(p + done), want};
      const ssize_t got = process_vm_readv(self, &local, 1, &remote, 1, 0);
      if (got <= 0) break;  // the rest through the mapping
      update(buf.get(), static_cast<size_t>(got));
      done += static_cast<uint64_t>(got);
    }
  }
  if (done < n) update(p + done, static_cast<size_t>(n - done));
}

// Fills a CoreReader from its data_/size_. Every read of the input goes
// through a bounds check against content_ (ELF structures) or size_.
class CoreReader::Parser {
 public:
  Parser(CoreReader* r, const ReaderOptions& options)
      : r_(r), options_(options) {}

  Status Run() {
    SIGRACE_RETURN_IF_ERROR(CheckIdent());
    ReadSeal();
    if (options_.require_seal && r_->seal_.state != SealState::kSealed) {
      return DataLossError("dump is not sealed: " + r_->seal_.reason);
    }
    SIGRACE_RETURN_IF_ERROR(ReadHeader());
    SIGRACE_RETURN_IF_ERROR(ReadProgramHeaders());
    SIGRACE_RETURN_IF_ERROR(NameMappings());
    SIGRACE_RETURN_IF_ERROR(BuildIndices());
    return Status::Ok();
  }

 private:
  const uint8_t* at(uint64_t off) const { return r_->data_ + off; }

  Status CheckIdent() {
    if (r_->size_ < SELFMAG || std::memcmp(at(0), ELFMAG, SELFMAG) != 0) {
      return DataLossError("not an ELF file");
    }
    if (r_->size_ < EI_NIDENT) {
      return DataLossError("truncated ELF header: file has " +
                           std::to_string(r_->size_) + " bytes");
    }
    if (at(0)[EI_CLASS] != ELFCLASS64) {
      return DataLossError(at(0)[EI_CLASS] == ELFCLASS32
                               ? "32-bit ELF files are not supported"
                               : "bad ELF class " +
                                     std::to_string(at(0)[EI_CLASS]));
    }
    if (at(0)[EI_DATA] != ELFDATA2LSB) {
      return DataLossError("only little-endian ELF files are supported");
    }
    if (r_->size_ < kEhdrSize) {
      return DataLossError("truncated ELF header: file has " +
                           std::to_string(r_->size_) + " bytes, need " +
                           std::to_string(kEhdrSize));
    }
    return Status::Ok();
  }

  void ReadSeal() {
    SealInfo& seal = r_->seal_;
    seal.content_size = r_->size_;
    if (r_->size_ < kTrailerSize) {
      seal.state = SealState::kUnsealed;
      seal.reason = "unsealed (no sigrace trailer)";
      return;
    }
    const uint64_t trailer_off = r_->size_ - kTrailerSize;
    SealTrailer t;
    std::memcpy(&t, at(trailer_off), sizeof(t));
    seal = InspectSealTrailer(t, r_->size_);
    if (seal.state != SealState::kSealed) return;
    if (options_.verify_checksum) {
      SealHasherV2 v2;
      uint64_t v1 = kSealChecksumInit;
      auto update = [&](const uint8_t* d, size_t len) {
        if (seal.version == 2) {
          v2.Update(d, len);
        } else {
          v1 = SealChecksumUpdate(v1, d, len);
        }
      };
      auto zeros = [&](uint64_t n) {
        if (seal.version == 2) {
          v2.UpdateZeros(n);
        } else {
          v1 = SealChecksumZeros(v1, n);
        }
      };
      if (options_.data_extents == nullptr) {
        ReadInChunks(at(0), trailer_off, update);
      } else {
        // Holes read as zeros: fold them in without touching their pages.
        uint64_t pos = 0;
        for (const FileExtent& e : *options_.data_extents) {
          if (e.offset >= trailer_off) break;
          // Overlapping or out-of-order extents: read what is new only.
          const uint64_t start = std::max(e.offset, pos);
          const uint64_t end = std::min(trailer_off, e.offset + e.length);
          if (end <= start) continue;
          zeros(start - pos);
          ReadInChunks(at(start), end - start, update);
          pos = end;
        }
        zeros(trailer_off - pos);
      }
      const uint64_t sum = seal.version == 2 ? v2.Finish() : v1;
      seal.checksum_verified = true;
      if (sum != t.checksum) {
        seal.state = SealState::kCorrupt;
        seal.reason = "corrupt (checksum mismatch)";
        return;
      }
    }
    seal.state = SealState::kSealed;
    seal.reason.clear();
  }

  Status ReadHeader() {
    std::memcpy(&eh_, at(0), sizeof(eh_));
    if (eh_.e_type != ET_CORE) {
      return DataLossError("not a core file (ELF type " +
                           std::to_string(eh_.e_type) + ", want ET_CORE)");
    }
    r_->machine_ = eh_.e_machine;
    content_ = r_->seal_.content_size;
    if (content_ < kEhdrSize) {
      return DataLossError("ELF header overlaps the seal trailer");
    }
    phnum_ = eh_.e_phnum;
    if (phnum_ == PN_XNUM) {
      // More than 65534 segments: the count is in section header 0.
      if (eh_.e_shoff == 0 || eh_.e_shentsize != sizeof(Elf64_Shdr) ||
          !InBounds(eh_.e_shoff, sizeof(Elf64_Shdr), content_)) {
        return DataLossError("e_phnum is PN_XNUM but section header 0 at " +
                             std::to_string(eh_.e_shoff) +
                             " is missing or out of range");
      }
      Elf64_Shdr sh;
      std::memcpy(&sh, at(eh_.e_shoff), sizeof(sh));
      phnum_ = sh.sh_info;
    }
    if (phnum_ == 0) return DataLossError("core file has no program headers");
    if (phnum_ > options_.max_segments) {
      return DataLossError("too many program headers (" +
                           std::to_string(phnum_) + " > limit " +
                           std::to_string(options_.max_segments) + ")");
    }
    if (eh_.e_phentsize != kPhdrSize) {
      return DataLossError("bad e_phentsize " +
                           std::to_string(eh_.e_phentsize) + ", want " +
                           std::to_string(kPhdrSize));
    }
    // phnum_ < 2^32 and kPhdrSize = 56, so the product cannot overflow.
    const uint64_t table = phnum_ * kPhdrSize;
    if (!InBounds(eh_.e_phoff, table, content_)) {
      return DataLossError("program header table (" + std::to_string(phnum_) +
                           " entries at offset " + std::to_string(eh_.e_phoff) +
                           ") extends beyond the end of the content (" +
                           std::to_string(content_) + " bytes)");
    }
    r_->phoff_ = eh_.e_phoff;
    r_->phdrs_size_ = table;
    return Status::Ok();
  }

  Status ReadProgramHeaders() {
    for (uint64_t i = 0; i < phnum_; ++i) {
      Elf64_Phdr ph;
      std::memcpy(&ph, at(eh_.e_phoff + i * kPhdrSize), sizeof(ph));
      if (ph.p_type == PT_LOAD) {
        SIGRACE_RETURN_IF_ERROR(AddLoad(i, ph));
      } else if (ph.p_type == PT_NOTE) {
        SIGRACE_RETURN_IF_ERROR(ReadNoteSegment(i, ph));
      }
    }
    return Status::Ok();
  }

  Status AddLoad(uint64_t i, const Elf64_Phdr& ph) {
    const std::string where =
        "PT_LOAD (program header " + std::to_string(i) + ")";
    uint64_t end;
    if (!CheckedAdd(ph.p_vaddr, ph.p_memsz, &end)) {
      return DataLossError(where + ": address range " + Hex(ph.p_vaddr) +
                           " + " + Hex(ph.p_memsz) + " wraps");
    }
    if (ph.p_filesz > ph.p_memsz) {
      return DataLossError(where + ": p_filesz " + std::to_string(ph.p_filesz) +
                           " > p_memsz " + std::to_string(ph.p_memsz));
    }
    if (!InBounds(ph.p_offset, ph.p_filesz, content_)) {
      return DataLossError(where + ": file range [" +
                           std::to_string(ph.p_offset) + ", +" +
                           std::to_string(ph.p_filesz) +
                           ") extends beyond the end of the content (" +
                           std::to_string(content_) + " bytes)");
    }
    Mapping m;
    m.vaddr = ph.p_vaddr;
    m.memsz = ph.p_memsz;
    m.filesz = ph.p_filesz;
    m.offset = ph.p_offset;
    m.flags = ph.p_flags;
    m.phdr_index = static_cast<size_t>(i);
    r_->mappings_.push_back(std::move(m));
    return Status::Ok();
  }

  Status ReadNoteSegment(uint64_t i, const Elf64_Phdr& ph) {
    const std::string where =
        "PT_NOTE (program header " + std::to_string(i) + ")";
    if (!InBounds(ph.p_offset, ph.p_filesz, content_)) {
      return DataLossError(where + ": file range [" +
                           std::to_string(ph.p_offset) + ", +" +
                           std::to_string(ph.p_filesz) +
                           ") extends beyond the end of the content (" +
                           std::to_string(content_) + " bytes)");
    }
    // Core notes are padded to 4 bytes (the kernel and gdb write
    // p_align 4); honour an explicit 8.
    const uint64_t align = ph.p_align == 8 ? 8 : 4;
    const uint64_t seg_end = ph.p_offset + ph.p_filesz;
    uint64_t pos = ph.p_offset;
    while (pos < seg_end) {
      const std::string nwhere =
          where + ": note at offset " + std::to_string(pos);
      if (seg_end - pos < kNhdrSize) {
        return DataLossError(nwhere + ": truncated note header");
      }
      Elf64_Nhdr nh;
      std::memcpy(&nh, at(pos), sizeof(nh));
      uint64_t name_off = pos + kNhdrSize;
      uint64_t name_padded, desc_padded, desc_off, next;
      if (!AlignUp(nh.n_namesz, align, &name_padded) ||
          !AlignUp(nh.n_descsz, align, &desc_padded) ||
          !CheckedAdd(name_off, name_padded, &desc_off) ||
          !CheckedAdd(desc_off, desc_padded, &next)) {
        return DataLossError(nwhere + ": note sizes overflow");
      }
      if (!InBounds(name_off, nh.n_namesz, seg_end) ||
          !InBounds(desc_off, nh.n_descsz, seg_end)) {
        return DataLossError(nwhere + ": name size " +
                             std::to_string(nh.n_namesz) + " / desc size " +
                             std::to_string(nh.n_descsz) +
                             " extend beyond the note segment");
      }
      NoteInfo n;
      n.owner = BoundedString(at(name_off), nh.n_namesz);
      n.type = nh.n_type;
      n.offset = pos;
      n.desc_offset = desc_off;
      n.desc_size = nh.n_descsz;
      if (r_->notes_.size() >= options_.max_notes) {
        return DataLossError(nwhere + ": too many notes (limit " +
                             std::to_string(options_.max_notes) + ")");
      }
      r_->notes_.push_back(std::move(n));
      SIGRACE_RETURN_IF_ERROR(DecodeNote(r_->notes_.size() - 1, nwhere));
      // The last note's padding may run past the segment; nothing follows.
      pos = std::min(next, seg_end);
    }
    return Status::Ok();
  }

  Status DecodeNote(size_t index, const std::string& where) {
    NoteInfo& n = r_->notes_[index];
    const uint8_t* d = at(n.desc_offset);
    const uint64_t size = n.desc_size;
    if (n.owner == "CORE") {
      switch (n.type) {
        case NT_PRSTATUS:
          return DecodePrstatus(index, where);
        case NT_PRFPREG:
          AttachToThread(index);
          return Status::Ok();
        case NT_PRPSINFO:
          return DecodePrpsinfo(d, size, where);
        case NT_SIGINFO:
          return DecodeSiginfo(d, size, where);
        case NT_FILE:
          return DecodeFile(d, size, where);
        default:
          return Status::Ok();
      }
    }
    if (n.owner == "LINUX") {
      // NT_X86_XSTATE, NT_ARM_*, ...: more registers of the last thread.
      AttachToThread(index);
      return Status::Ok();
    }
    if (n.owner == kSigraceNoteOwner) {
      r_->has_sigrace_notes_ = true;
      const std::string_view text(reinterpret_cast<const char*>(d), size);
      switch (n.type) {
        case kNoteRedactions:
          return DecodeRedactions(d, size, where);
        case kNoteMeta:
          return DecodeMeta(TrimNuls(text), where);
        case kNoteBacktrace:
          r_->backtrace_.append(TrimNuls(text));
          return Status::Ok();
        default:
          return Status::Ok();  // a newer writer's note; skip it
      }
    }
    return Status::Ok();
  }

  void AttachToThread(size_t note_index) {
    if (r_->threads_.empty()) return;
    r_->notes_[note_index].thread_index =
        static_cast<int>(r_->threads_.size() - 1);
    r_->threads_.back().reg_notes.push_back(note_index);
  }

  Status DecodePrstatus(size_t index, const std::string& where) {
    NoteInfo& n = r_->notes_[index];
    const uint8_t* d = at(n.desc_offset);
    uint64_t regs_size = 0;
    if (r_->machine_ == EM_X86_64) regs_size = kX86RegsSize;
    if (r_->machine_ == EM_AARCH64) regs_size = kArm64RegsSize;
    const uint64_t need = kPrstatusReg + regs_size;
    if (n.desc_size < need) {
      return DataLossError(where + ": NT_PRSTATUS has " +
                           std::to_string(n.desc_size) + " bytes, need " +
                           std::to_string(need));
    }
    ThreadInfo t;
    t.tid = Load<int32_t>(d + kPrstatusPid);
    t.signal = Load<int16_t>(d + kPrstatusCursig);
    t.prstatus_note = index;
    t.reg_notes.push_back(index);
    t.regs_offset = n.desc_offset + kPrstatusReg;
    t.regs_size = regs_size;
    const uint8_t* regs = d + kPrstatusReg;
    if (r_->machine_ == EM_X86_64) {
      t.regs_known = true;
      t.bp = Load<uint64_t>(regs + uint64_t{4} * 8);
      t.pc = Load<uint64_t>(regs + uint64_t{16} * 8);
      t.sp = Load<uint64_t>(regs + uint64_t{19} * 8);
    } else if (r_->machine_ == EM_AARCH64) {
      t.regs_known = true;
      t.bp = Load<uint64_t>(regs + uint64_t{29} * 8);
      t.sp = Load<uint64_t>(regs + uint64_t{31} * 8);
      t.pc = Load<uint64_t>(regs + uint64_t{32} * 8);
    }
    n.thread_index = static_cast<int>(r_->threads_.size());
    r_->threads_.push_back(std::move(t));
    return Status::Ok();
  }

  Status DecodePrpsinfo(const uint8_t* d, uint64_t size,
                        const std::string& where) {
    if (size < kPrpsinfoSize) {
      return DataLossError(where + ": NT_PRPSINFO has " + std::to_string(size) +
                           " bytes, need " + std::to_string(kPrpsinfoSize));
    }
    ProcessInfo p;
    p.pid = Load<int32_t>(d + kPrpsinfoPid);
    p.ppid = Load<int32_t>(d + kPrpsinfoPpid);
    p.name = BoundedString(d + kPrpsinfoFname, kPrpsinfoFnameLen);
    p.args = BoundedString(d + kPrpsinfoArgs, kPrpsinfoArgsLen);
    while (!p.args.empty() && p.args.back() == ' ') p.args.pop_back();
    r_->process_ = std::move(p);
    return Status::Ok();
  }

  Status DecodeSiginfo(const uint8_t* d, uint64_t size,
                       const std::string& where) {
    if (size < kSiginfoSize) {
      return DataLossError(where + ": NT_SIGINFO has " + std::to_string(size) +
                           " bytes, need " + std::to_string(kSiginfoSize));
    }
    SigInfo s;
    s.signo = Load<int32_t>(d);
    s.errnum = Load<int32_t>(d + 4);
    s.code = Load<int32_t>(d + 8);
    s.addr = Load<uint64_t>(d + kSiginfoAddr);
    r_->siginfo_ = s;
    return Status::Ok();
  }

  // NT_FILE: count, page_size, count x {start, end, page offset}, then
  // count NUL-terminated names.
  Status DecodeFile(const uint8_t* d, uint64_t size, const std::string& where) {
    if (size < 16) {
      return DataLossError(where + ": NT_FILE has " + std::to_string(size) +
                           " bytes, need 16");
    }
    const uint64_t count = Load<uint64_t>(d);
    const uint64_t page_size = Load<uint64_t>(d + 8);
    if (count > (size - 16) / 24) {
      return DataLossError(where + ": NT_FILE count " + std::to_string(count) +
                           " does not fit in " + std::to_string(size) +
                           " bytes");
    }
    if (count > options_.max_records - files_.size()) {
      return DataLossError(where + ": too many NT_FILE entries (" +
                           std::to_string(count) + ", limit " +
                           std::to_string(options_.max_records) + ")");
    }
    uint64_t pos = 16 + count * 24;
    for (uint64_t i = 0; i < count; ++i) {
      const uint8_t* e = d + 16 + i * 24;
      FileEntry f;
      f.start = Load<uint64_t>(e);
      f.end = Load<uint64_t>(e + 8);
      const uint64_t pgoff = Load<uint64_t>(e + 16);
      if (f.end < f.start) {
        return DataLossError(where + ": NT_FILE entry " + std::to_string(i) +
                             " ends before it starts");
      }
      if (__builtin_mul_overflow(pgoff, page_size, &f.file_offset)) {
        return DataLossError(where + ": NT_FILE entry " + std::to_string(i) +
                             " file offset overflows");
      }
      if (pos >= size) {
        return DataLossError(where + ": NT_FILE names " + std::to_string(i) +
                             ".." + std::to_string(count - 1) + " missing");
      }
      const void* nul = std::memchr(d + pos, 0, size - pos);
      if (nul == nullptr) {
        return DataLossError(where + ": NT_FILE name " + std::to_string(i) +
                             " is not NUL-terminated");
      }
      const uint64_t len = static_cast<const uint8_t*>(nul) - (d + pos);
      f.name.assign(reinterpret_cast<const char*>(d + pos), len);
      pos += len + 1;
      files_.push_back(std::move(f));
    }
    return Status::Ok();
  }

  Status DecodeRedactions(const uint8_t* d, uint64_t size,
                          const std::string& where) {
    if (size < sizeof(RedactionHeader)) {
      return DataLossError(where + ": redaction note has " +
                           std::to_string(size) + " bytes, need " +
                           std::to_string(sizeof(RedactionHeader)));
    }
    RedactionHeader h;
    std::memcpy(&h, d, sizeof(h));
    if (h.version != kRedactionVersion && h.version != kRedactionVersion1) {
      return DataLossError(where + ": redaction note version " +
                           std::to_string(h.version) + ", want " +
                           std::to_string(kRedactionVersion1) + " or " +
                           std::to_string(kRedactionVersion));
    }
    r_->redaction_version_ = h.version;
    if (h.count > (size - sizeof(h)) / sizeof(RedactionRecord)) {
      return DataLossError(where + ": redaction count " +
                           std::to_string(h.count) + " does not fit in " +
                           std::to_string(size) + " bytes");
    }
    if (h.count > options_.max_records - r_->redactions_.size()) {
      return DataLossError(where + ": too many redaction records (" +
                           std::to_string(h.count) + ", limit " +
                           std::to_string(options_.max_records) + ")");
    }
    const size_t first_record = r_->redactions_.size();
    for (uint32_t i = 0; i < h.count; ++i) {
      RedactionRecord rec;
      std::memcpy(&rec, d + sizeof(h) + uint64_t{i} * sizeof(rec), sizeof(rec));
      uint64_t end;
      if (!CheckedAdd(rec.vaddr, rec.len, &end)) {
        return DataLossError(where + ": redaction record " + std::to_string(i) +
                             " range wraps");
      }
      Redaction r;
      r.kind = static_cast<RedactionKind>(rec.kind);
      r.vaddr = rec.vaddr;
      r.len = rec.len;
      r.tid = rec.tid;
      r.label = BoundedString(reinterpret_cast<const uint8_t*>(rec.label),
                              kRedactionLabelLen);
      r_->redactions_.push_back(std::move(r));
    }
    if (h.version == kRedactionVersion1) return Status::Ok();
    // Version 2: the preserved words follow the records.
    const uint64_t at = sizeof(h) + uint64_t{h.count} * sizeof(RedactionRecord);
    if (size - at < sizeof(PreservedHeader)) {
      return DataLossError(where +
                           ": redaction note version 2 has no "
                           "preserved-word header");
    }
    PreservedHeader ph;
    std::memcpy(&ph, d + at, sizeof(ph));
    const uint64_t words_at = at + sizeof(ph);
    if (ph.count > (size - words_at) / sizeof(PreservedWord)) {
      return DataLossError(where + ": preserved-word count " +
                           std::to_string(ph.count) + " does not fit in " +
                           std::to_string(size) + " bytes");
    }
    if (ph.count > options_.max_records - r_->preserved_.size()) {
      return DataLossError(where + ": too many preserved words (" +
                           std::to_string(ph.count) + ", limit " +
                           std::to_string(options_.max_records) + ")");
    }
    for (uint32_t i = 0; i < ph.count; ++i) {
      PreservedWord w;
      std::memcpy(&w, d + words_at + uint64_t{i} * sizeof(w), sizeof(w));
      if (w.record >= h.count) {
        return DataLossError(where + ": preserved word " + std::to_string(i) +
                             " names record " + std::to_string(w.record) +
                             " of " + std::to_string(h.count));
      }
      Preserved p;
      p.vaddr = w.vaddr;
      p.record = static_cast<uint32_t>(first_record + w.record);
      p.slot = static_cast<PreservedSlot>(w.slot);
      p.frame = w.frame;
      r_->preserved_.push_back(p);
    }
    return Status::Ok();
  }

  Status DecodeMeta(std::string_view text, const std::string& where) {
    size_t line_no = 0;
    while (!text.empty()) {
      ++line_no;
      const size_t nl = text.find('\n');
      std::string_view line = text.substr(0, nl);
      text.remove_prefix(nl == std::string_view::npos ? text.size() : nl + 1);
      if (line.empty()) continue;
      const size_t eq = line.find('=');
      if (eq == std::string_view::npos || eq == 0) {
        return DataLossError(where + ": meta line " + std::to_string(line_no) +
                             " is not key=value");
      }
      r_->meta_.emplace_back(std::string(line.substr(0, eq)),
                             std::string(line.substr(eq + 1)));
    }
    return Status::Ok();
  }

  Status NameMappings() {
    if (files_.empty()) return Status::Ok();
    std::sort(files_.begin(), files_.end(),
              [](const FileEntry& a, const FileEntry& b) {
                return a.start < b.start;
              });
    for (Mapping& m : r_->mappings_) {
      auto it = std::upper_bound(
          files_.begin(), files_.end(), m.vaddr,
          [](uint64_t v, const FileEntry& f) { return v < f.start; });
      if (it == files_.begin()) continue;
      --it;
      if (m.vaddr >= it->end) continue;
      m.name = it->name;
      // Cannot wrap: it->file_offset was checked; the delta is below
      // end - start. Saturate rather than wrap on a hostile sum.
      uint64_t off;
      if (!CheckedAdd(it->file_offset, m.vaddr - it->start, &off)) {
        off = UINT64_MAX;
      }
      m.name_offset = off;
    }
    return Status::Ok();
  }

  Status BuildIndices() {
    auto& maps = r_->mappings_;
    for (size_t i = 0; i < maps.size(); ++i) {
      if (maps[i].filesz > 0) r_->by_file_offset_.push_back(i);
      if (maps[i].memsz > 0) r_->by_vaddr_.push_back(i);
    }
    // Overlapping ranges would make offset <-> address ambiguous, and the
    // scanner's "where was it" answer with it; no real dumper writes them.
    std::sort(
        r_->by_file_offset_.begin(), r_->by_file_offset_.end(),
        [&](size_t a, size_t b) { return maps[a].offset < maps[b].offset; });
    for (size_t k = 1; k < r_->by_file_offset_.size(); ++k) {
      const Mapping& prev = maps[r_->by_file_offset_[k - 1]];
      const Mapping& cur = maps[r_->by_file_offset_[k]];
      if (cur.offset < prev.offset + prev.filesz) {
        return DataLossError("PT_LOAD (program header " +
                             std::to_string(cur.phdr_index) +
                             ") file bytes overlap program header " +
                             std::to_string(prev.phdr_index));
      }
    }
    std::sort(
        r_->by_vaddr_.begin(), r_->by_vaddr_.end(),
        [&](size_t a, size_t b) { return maps[a].vaddr < maps[b].vaddr; });
    for (size_t k = 1; k < r_->by_vaddr_.size(); ++k) {
      const Mapping& prev = maps[r_->by_vaddr_[k - 1]];
      const Mapping& cur = maps[r_->by_vaddr_[k]];
      if (cur.vaddr < prev.end()) {
        return DataLossError("PT_LOAD (program header " +
                             std::to_string(cur.phdr_index) +
                             ") addresses overlap program header " +
                             std::to_string(prev.phdr_index));
      }
    }
    auto& notes = r_->notes_;
    for (size_t i = 0; i < notes.size(); ++i) r_->notes_by_offset_.push_back(i);
    std::sort(
        r_->notes_by_offset_.begin(), r_->notes_by_offset_.end(),
        [&](size_t a, size_t b) { return notes[a].offset < notes[b].offset; });
    std::vector<std::pair<uint64_t, uint64_t>> ranges;
    for (const Redaction& red : r_->redactions_) {
      if (red.kind == RedactionKind::kRegisters || red.len == 0) continue;
      ranges.emplace_back(red.vaddr, red.vaddr + red.len);
    }
    std::sort(ranges.begin(), ranges.end());
    for (const auto& rg : ranges) {
      auto& merged = r_->redacted_ranges_;
      if (!merged.empty() && rg.first <= merged.back().second) {
        merged.back().second = std::max(merged.back().second, rg.second);
      } else {
        merged.push_back(rg);
      }
    }
    return Status::Ok();
  }

  struct FileEntry {
    uint64_t start = 0;
    uint64_t end = 0;
    uint64_t file_offset = 0;
    std::string name;
  };

  CoreReader* r_;
  const ReaderOptions options_;
  Elf64_Ehdr eh_{};
  uint64_t phnum_ = 0;
  uint64_t content_ = 0;
  std::vector<FileEntry> files_;
};

StatusOr<std::unique_ptr<CoreReader>> CoreReader::FromBuffer(
    const uint8_t* data, size_t size, ReaderOptions options) {
  std::unique_ptr<CoreReader> r(new CoreReader());
  r->data_ = data;
  r->size_ = size;
  if (size == 0) return DataLossError("empty file");
  Parser p(r.get(), options);
  SIGRACE_RETURN_IF_ERROR(p.Run());
  return r;
}

StatusOr<std::unique_ptr<CoreReader>> CoreReader::Open(const std::string& path,
                                                       ReaderOptions options) {
  // O_NONBLOCK: a FIFO without a writer is refused below, not waited on.
  const int fd = ::open(path.c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC);
  if (fd < 0) {
    const int e = errno;
    if (e == ENOENT) return NotFoundError("no such file");
    return ErrnoError("open", e);
  }
  struct stat st;
  if (::fstat(fd, &st) != 0) {
    const int e = errno;
    ::close(fd);
    return ErrnoError("fstat", e);
  }
  if (!S_ISREG(st.st_mode)) {
    ::close(fd);
    return DataLossError("not a regular file");
  }
  if (st.st_size == 0) {
    ::close(fd);
    return DataLossError("empty file");
  }
  if (SIGRACE_FAILPOINT(kFpReaderOpened)) {
    ::close(fd);
    return InternalError("failpoint reader.opened");
  }
  const size_t len = static_cast<size_t>(st.st_size);
  // The holes, for the checksum to skip and the copy not to read. Without
  // them, every byte is read.
  std::vector<FileExtent> extents;
  const std::vector<FileExtent>* copy_extents = nullptr;
  StatusOr<std::vector<FileExtent>> e = DataExtents(fd, len);
  if (e.ok()) {
    extents = std::move(e).value();
    copy_extents = &extents;
    if (options.verify_checksum && options.data_extents == nullptr) {
      options.data_extents = &extents;
    }
  }
  // A copy, not a mapping of the file: a file that shrinks while read is
  // an error here, not a SIGBUS later, and the parse sees one version.
  StatusOr<uint8_t*> image = ReadFileImage(fd, len, copy_extents);
  ::close(fd);
  if (!image.ok()) return image.status();
  void* base = *image;
  std::unique_ptr<CoreReader> r(new CoreReader());
  r->map_base_ = base;
  r->map_len_ = len;
  r->data_ = static_cast<const uint8_t*>(base);
  r->size_ = len;
  Parser p(r.get(), options);
  SIGRACE_RETURN_IF_ERROR(p.Run());
  return r;
}

SealInfo InspectSealTrailer(const SealTrailer& t, uint64_t file_size) {
  SealInfo seal;
  seal.content_size = file_size;
  if (file_size < kTrailerSize ||
      std::memcmp(t.magic, kSealMagicV1, kSealMagicPrefixLen) != 0) {
    seal.state = SealState::kUnsealed;
    seal.reason = "unsealed (no sigrace trailer)";
    return seal;
  }
  const uint64_t trailer_off = file_size - kTrailerSize;
  // The trailer magic claims the last bytes; the ELF content must not
  // reach into them whatever the rest of the trailer says.
  seal.content_size = trailer_off;
  seal.checksum = t.checksum;
  if (std::memcmp(t.magic, kSealMagicV2, sizeof(kSealMagicV2)) == 0) {
    seal.version = 2;
  } else if (std::memcmp(t.magic, kSealMagicV1, sizeof(kSealMagicV1)) == 0) {
    seal.version = 1;
  } else {
    std::string v;
    for (size_t i = kSealMagicPrefixLen;
         i < sizeof(t.magic) && t.magic[i] != '\0'; ++i) {
      const char c = t.magic[i];
      v += (c >= '!' && c <= '~') ? c : '?';
    }
    seal.state = SealState::kCorrupt;
    seal.reason = "corrupt (unknown seal version 'v" + v +
                  "'; this reader knows v1 and v2)";
    return seal;
  }
  if (t.content_size != trailer_off) {
    seal.state = SealState::kCorrupt;
    seal.reason =
        "corrupt (trailer content_size " + std::to_string(t.content_size) +
        " != " + std::to_string(trailer_off) + " bytes before the trailer)";
    return seal;
  }
  // No checksum covers these two words: a value other than zero is not
  // the writer's, whatever the checksum says.
  if (t.flags != 0 || t.reserved != 0) {
    seal.state = SealState::kCorrupt;
    seal.reason = std::string("corrupt (trailer ") +
                  (t.flags != 0 ? "flags" : "reserved") + " not zero)";
    return seal;
  }
  seal.state = SealState::kSealed;
  return seal;
}

StatusOr<uint64_t> DeclaredContentEnd(int fd, uint64_t size) {
  auto read_at = [fd](void* buf, size_t len, uint64_t off) -> Status {
    size_t done = 0;
    while (done < len) {
      const ssize_t n = ::pread(fd, static_cast<char*>(buf) + done, len - done,
                                static_cast<off_t>(off + done));
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) return ErrnoError("read", errno);
      if (n == 0) return DataLossError("file shrank while read");
      done += static_cast<size_t>(n);
    }
    return Status::Ok();
  };
  if (size < kEhdrSize) {
    return DataLossError("not an ELF core: " + std::to_string(size) +
                         " bytes, less than an ELF header");
  }
  Elf64_Ehdr eh;
  SIGRACE_RETURN_IF_ERROR(read_at(&eh, sizeof(eh), 0));
  if (std::memcmp(eh.e_ident, ELFMAG, SELFMAG) != 0) {
    return DataLossError("not an ELF file");
  }
  if (eh.e_ident[EI_CLASS] != ELFCLASS64 ||
      eh.e_ident[EI_DATA] != ELFDATA2LSB || eh.e_type != ET_CORE) {
    return DataLossError("not a 64-bit little-endian ELF core");
  }
  if (eh.e_phentsize != kPhdrSize) {
    return DataLossError("bad e_phentsize " + std::to_string(eh.e_phentsize));
  }
  uint64_t end = kEhdrSize;
  uint64_t phnum = eh.e_phnum;
  if (phnum == PN_XNUM) {
    uint64_t sh_end;
    if (eh.e_shoff == 0 ||
        !CheckedAdd(eh.e_shoff, sizeof(Elf64_Shdr), &sh_end) || sh_end > size) {
      return DataLossError(
          "e_phnum is PN_XNUM but section header 0 is "
          "missing or out of range");
    }
    Elf64_Shdr sh;
    SIGRACE_RETURN_IF_ERROR(read_at(&sh, sizeof(sh), eh.e_shoff));
    phnum = sh.sh_info;
    end = std::max(end, sh_end);
  }
  if (phnum == 0) return DataLossError("core file has no program headers");
  // phnum < 2^32, so the product does not overflow.
  uint64_t table_end;
  if (!CheckedAdd(eh.e_phoff, phnum * kPhdrSize, &table_end) ||
      table_end > size) {
    return DataLossError("program header table extends beyond the file");
  }
  end = std::max(end, table_end);
  // A bounded buffer, however many headers the file claims.
  constexpr uint64_t kBatch = 1024;
  std::vector<Elf64_Phdr> batch;
  for (uint64_t i = 0; i < phnum; i += kBatch) {
    const uint64_t n = std::min(kBatch, phnum - i);
    batch.resize(static_cast<size_t>(n));
    SIGRACE_RETURN_IF_ERROR(read_at(batch.data(),
                                    static_cast<size_t>(n * kPhdrSize),
                                    eh.e_phoff + i * kPhdrSize));
    for (const Elf64_Phdr& ph : batch) {
      if (ph.p_filesz == 0) continue;
      uint64_t seg_end;
      if (!CheckedAdd(ph.p_offset, ph.p_filesz, &seg_end)) {
        return DataLossError("program header " + std::to_string(i) +
                             ": file range wraps");
      }
      end = std::max(end, seg_end);
    }
  }
  return end;
}

StatusOr<std::vector<FileExtent>> DataExtents(int fd, uint64_t size) {
  std::vector<FileExtent> out;
  uint64_t pos = 0;
  while (pos < size) {
    const off_t data = ::lseek(fd, static_cast<off_t>(pos), SEEK_DATA);
    if (data < 0) {
      if (errno == ENXIO) break;  // only a hole from pos to the end
      if (errno == EINVAL || errno == EOPNOTSUPP) {
        // No hole support here: all of it is data.
        out.assign(1, FileExtent{0, size});
        return out;
      }
      return ErrnoError("lseek(SEEK_DATA)", errno);
    }
    if (static_cast<uint64_t>(data) >= size) break;
    const off_t hole = ::lseek(fd, data, SEEK_HOLE);
    if (hole < 0) return ErrnoError("lseek(SEEK_HOLE)", errno);
    const uint64_t end = std::min<uint64_t>(size, static_cast<uint64_t>(hole));
    if (end <= static_cast<uint64_t>(data)) {
      // A file system that answers nonsense: the rest is data.
      out.push_back(FileExtent{static_cast<uint64_t>(data),
                               size - static_cast<uint64_t>(data)});
      break;
    }
    out.push_back(FileExtent{static_cast<uint64_t>(data),
                             end - static_cast<uint64_t>(data)});
    pos = end;
  }
  return out;
}

StatusOr<uint8_t*> ReadFileImage(int fd, uint64_t size,
                                 const std::vector<FileExtent>* extents) {
  if (size == 0) return DataLossError("empty file");
  if (size > static_cast<uint64_t>(SIZE_MAX / 2)) {
    return ResourceExhaustedError("file too large");
  }
  const size_t len = static_cast<size_t>(size);
  void* p = ::mmap(nullptr, len, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (p == MAP_FAILED) return ErrnoError("mmap", errno);
  uint8_t* data = static_cast<uint8_t*>(p);
  const std::vector<FileExtent> all = {FileExtent{0, size}};
  for (const FileExtent& x : extents != nullptr ? *extents : all) {
    if (x.offset >= size) continue;
    const uint64_t end = std::min<uint64_t>(size, x.offset + x.length);
    uint64_t at = x.offset;
    while (at < end) {
      const size_t want =
          static_cast<size_t>(std::min<uint64_t>(end - at, uint64_t{1} << 30));
      const ssize_t n = ::pread(fd, data + at, want, static_cast<off_t>(at));
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) {
        const int err = errno;
        ::munmap(p, len);
        if (n < 0) return ErrnoError("read", err);
        return DataLossError("file shrank while read (" + std::to_string(at) +
                             " of " + std::to_string(size) + " bytes)");
      }
      at += static_cast<uint64_t>(n);
    }
  }
  // Extents taken after the file shrank end early: the size says so.
  struct stat st;
  if (::fstat(fd, &st) != 0) {
    const int err = errno;
    ::munmap(p, len);
    return ErrnoError("fstat", err);
  }
  if (static_cast<uint64_t>(st.st_size) != size) {
    ::munmap(p, len);
    return DataLossError("file " +
                         std::string(static_cast<uint64_t>(st.st_size) < size
                                         ? "shrank"
                                         : "grew") +
                         " while read (" + std::to_string(size) + " -> " +
                         std::to_string(st.st_size) + " bytes)");
  }
  return data;
}

CoreReader::~CoreReader() {
  if (map_base_ != nullptr) ::munmap(map_base_, map_len_);
}

std::optional<std::string> CoreReader::MetaValue(std::string_view key) const {
  for (auto it = meta_.rbegin(); it != meta_.rend(); ++it) {
    if (it->first == key) return it->second;
  }
  return std::nullopt;
}

std::optional<CoreReader::AddressAt> CoreReader::OffsetToAddress(
    uint64_t file_offset) const {
  auto it = std::upper_bound(
      by_file_offset_.begin(), by_file_offset_.end(), file_offset,
      [&](uint64_t off, size_t i) { return off < mappings_[i].offset; });
  if (it == by_file_offset_.begin()) return std::nullopt;
  const size_t i = *(it - 1);
  const Mapping& m = mappings_[i];
  if (file_offset - m.offset >= m.filesz) return std::nullopt;
  return AddressAt{i, m.vaddr + (file_offset - m.offset)};
}

std::optional<size_t> CoreReader::MappingForAddress(uint64_t vaddr) const {
  auto it = std::upper_bound(
      by_vaddr_.begin(), by_vaddr_.end(), vaddr,
      [&](uint64_t v, size_t i) { return v < mappings_[i].vaddr; });
  if (it == by_vaddr_.begin()) return std::nullopt;
  const size_t i = *(it - 1);
  if (vaddr - mappings_[i].vaddr >= mappings_[i].memsz) return std::nullopt;
  return i;
}

std::optional<uint64_t> CoreReader::AddressToOffset(uint64_t vaddr) const {
  const std::optional<size_t> i = MappingForAddress(vaddr);
  if (!i) return std::nullopt;
  const Mapping& m = mappings_[*i];
  const uint64_t delta = vaddr - m.vaddr;
  if (delta >= m.filesz) return std::nullopt;
  return m.offset + delta;
}

const uint8_t* CoreReader::MemoryAt(uint64_t vaddr, uint64_t len) const {
  const std::optional<size_t> i = MappingForAddress(vaddr);
  if (!i) return nullptr;
  const Mapping& m = mappings_[*i];
  const uint64_t delta = vaddr - m.vaddr;
  if (!InBounds(delta, len, m.filesz)) return nullptr;
  return data_ + m.offset + delta;
}

FileLocation CoreReader::Locate(uint64_t off) const {
  FileLocation loc;
  if (off < kEhdrSize) {
    loc.kind = FileLocation::Kind::kElfHeader;
    return loc;
  }
  if (off >= phoff_ && off - phoff_ < phdrs_size_) {
    loc.kind = FileLocation::Kind::kProgramHeaders;
    return loc;
  }
  if (off >= seal_.content_size && off < size_) {
    loc.kind = FileLocation::Kind::kTrailer;
    return loc;
  }
  if (auto a = OffsetToAddress(off)) {
    loc.kind = FileLocation::Kind::kLoad;
    loc.mapping_index = a->mapping_index;
    loc.vaddr = a->vaddr;
    return loc;
  }
  auto it = std::upper_bound(
      notes_by_offset_.begin(), notes_by_offset_.end(), off,
      [&](uint64_t o, size_t i) { return o < notes_[i].offset; });
  if (it != notes_by_offset_.begin()) {
    const NoteInfo& n = notes_[*(it - 1)];
    // desc_offset + desc_size was checked against the segment at parse.
    if (off < n.desc_offset + n.desc_size) {
      loc.kind = FileLocation::Kind::kNote;
      loc.note_index = *(it - 1);
      return loc;
    }
  }
  return loc;
}

bool CoreReader::IsRedacted(uint64_t vaddr, uint64_t len) const {
  uint64_t end;
  if (len == 0 || !CheckedAdd(vaddr, len, &end)) return false;
  auto it =
      std::upper_bound(redacted_ranges_.begin(), redacted_ranges_.end(), vaddr,
                       [](uint64_t v, const std::pair<uint64_t, uint64_t>& r) {
                         return v < r.first;
                       });
  if (it == redacted_ranges_.begin()) return false;
  --it;
  return end <= it->second;
}

std::vector<size_t> CoreReader::RedactionsOverlapping(uint64_t vaddr,
                                                      uint64_t len) const {
  std::vector<size_t> out;
  uint64_t end;
  if (len == 0) return out;
  if (!CheckedAdd(vaddr, len, &end)) end = UINT64_MAX;
  for (size_t i = 0; i < redactions_.size(); ++i) {
    const Redaction& r = redactions_[i];
    if (r.kind == RedactionKind::kRegisters || r.len == 0) continue;
    if (r.vaddr < end && vaddr < r.vaddr + r.len) out.push_back(i);
  }
  return out;
}

}  // namespace sigrace::crashdump
