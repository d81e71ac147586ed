// Test-only: builds small ELF core files in memory that follow
// crashdump/format/core_format.h (standard CORE notes, sigrace notes, PT_LOADs
// and an optional seal trailer). Used by the reader's tests, to make the fuzz
// seed corpus, and by any test that needs a dump without crashing a
// process. Not the sigrace dump writer: it is never used on a crash path.
//
// The output is x86_64 (EM_X86_64), little-endian, laid out the way the
// kernel lays out a core: ELF header, program headers (PT_NOTE first), note
// data, then page-aligned PT_LOAD data, then the trailer.
//
// Thread safety: a SyntheticCore is a plain value; no shared state.
// Not async-signal-safe.

#ifndef SIGRACE_TESTING_SYNTHETIC_CORE_H_
#define SIGRACE_TESTING_SYNTHETIC_CORE_H_

#include <elf.h>

#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "crashdump/format/core_format.h"

namespace sigrace::crashdump::testing {

class SyntheticCore {
 public:
  struct Thread {
    int32_t tid = 0;
    int16_t signal = 0;
    uint64_t pc = 0;
    uint64_t sp = 0;
    uint64_t bp = 0;
  };
  struct Load {
    uint64_t vaddr = 0;
    std::vector<uint8_t> bytes;  // the file bytes (filesz)
    uint64_t memsz = 0;          // 0: same as bytes.size()
    uint32_t flags = PF_R | PF_W;
    std::string name;  // NT_FILE entry if not empty
  };
  struct RawNote {
    std::string owner;
    uint32_t type = 0;
    std::vector<uint8_t> desc;
  };
  // Where Build() put things, for tests that corrupt a file on purpose.
  struct Layout {
    uint64_t phoff = 0;
    uint64_t note_phdr = 0;  // file offset of the PT_NOTE program header
    uint64_t notes_offset = 0;
    uint64_t notes_size = 0;
    std::vector<uint64_t> note_offsets;  // header offset of each note
    std::vector<uint64_t> load_phdrs;    // file offset of each PT_LOAD phdr
    std::vector<uint64_t> load_offsets;  // file offset of each load's bytes
    uint64_t content_size = 0;
  };

  std::vector<Thread> threads;
  std::vector<Load> loads;
  std::vector<RedactionRecord> redactions;
  // Version 2 notes (the default) end with these; version 1 has none.
  std::vector<PreservedWord> preserved;
  uint32_t redaction_version = kRedactionVersion;
  std::string meta;       // "key=value\n" lines
  std::string backtrace;  // kNoteBacktrace text
  bool with_siginfo = true;
  int32_t sig_signo = 11;
  int32_t sig_code = 1;
  uint64_t fault_addr = 0;
  int32_t pid = 4242;
  std::string psargs = "synthetic --core";  // NT_PRPSINFO, at most 79 bytes
  std::vector<RawNote> extra_notes;         // appended after the sigrace notes
  // Alignment of each load's file bytes; the kernel uses the page size.
  // Fuzz seeds use a small one to stay small.
  uint64_t load_align = 4096;

  void AddRedaction(RedactionKind kind, uint64_t vaddr, uint64_t len,
                    int32_t tid, const std::string& label) {
    RedactionRecord r{};
    r.vaddr = vaddr;
    r.len = len;
    r.kind = static_cast<uint32_t>(kind);
    r.tid = tid;
    std::strncpy(r.label, label.c_str(), kRedactionLabelLen - 1);
    redactions.push_back(r);
  }

  // The complete file; sealed when `seal` is set.
  std::vector<uint8_t> Build(bool seal = true, Layout* layout = nullptr) const {
    std::vector<RawNote> notes;
    for (size_t i = 0; i < threads.size(); ++i) {
      notes.push_back({"CORE", NT_PRSTATUS, Prstatus(threads[i])});
      if (i == 0) {
        notes.push_back({"CORE", NT_PRPSINFO, Prpsinfo()});
        if (with_siginfo) notes.push_back({"CORE", 0x53494749, Siginfo()});
        notes.push_back({"CORE", 0x46494c45, FileNote()});
      }
      notes.push_back({"CORE", NT_PRFPREG, std::vector<uint8_t>(512, 0)});
    }
    if (!redactions.empty()) {
      const size_t records = redactions.size() * sizeof(RedactionRecord);
      const bool v1 = redaction_version == kRedactionVersion1;
      std::vector<uint8_t> d(
          sizeof(RedactionHeader) + records +
          (v1 ? 0
              : sizeof(PreservedHeader) +
                    preserved.size() * sizeof(PreservedWord)));
      RedactionHeader h{redaction_version,
                        static_cast<uint32_t>(redactions.size())};
      std::memcpy(d.data(), &h, sizeof(h));
      std::memcpy(d.data() + sizeof(h), redactions.data(), records);
      if (!v1) {
        PreservedHeader ph{static_cast<uint32_t>(preserved.size()), 0};
        std::memcpy(d.data() + sizeof(h) + records, &ph, sizeof(ph));
        if (!preserved.empty()) {
          std::memcpy(d.data() + sizeof(h) + records + sizeof(ph),
                      preserved.data(),
                      preserved.size() * sizeof(PreservedWord));
        }
      }
      notes.push_back({kSigraceNoteOwner, kNoteRedactions, d});
    }
    if (!meta.empty()) {
      notes.push_back({kSigraceNoteOwner, kNoteMeta,
                       std::vector<uint8_t>(meta.begin(), meta.end())});
    }
    if (!backtrace.empty()) {
      notes.push_back(
          {kSigraceNoteOwner, kNoteBacktrace,
           std::vector<uint8_t>(backtrace.begin(), backtrace.end())});
    }
    for (const RawNote& n : extra_notes) notes.push_back(n);

    Layout lay;
    const uint64_t phnum = 1 + loads.size();
    lay.phoff = sizeof(Elf64_Ehdr);
    lay.notes_offset = lay.phoff + phnum * sizeof(Elf64_Phdr);
    std::vector<uint8_t> note_bytes;
    for (const RawNote& n : notes) {
      lay.note_offsets.push_back(lay.notes_offset + note_bytes.size());
      Elf64_Nhdr nh{static_cast<Elf64_Word>(n.owner.size() + 1),
                    static_cast<Elf64_Word>(n.desc.size()), n.type};
      Append(&note_bytes, &nh, sizeof(nh));
      Append(&note_bytes, n.owner.c_str(), n.owner.size() + 1);
      Pad(&note_bytes, 4);
      Append(&note_bytes, n.desc.data(), n.desc.size());
      Pad(&note_bytes, 4);
    }
    lay.notes_size = note_bytes.size();
    uint64_t off = lay.notes_offset + note_bytes.size();
    for (const Load& l : loads) {
      off = (off + load_align - 1) & ~(load_align - 1);
      lay.load_offsets.push_back(off);
      off += l.bytes.size();
    }
    lay.content_size = off;

    std::vector<uint8_t> out(off, 0);
    Elf64_Ehdr eh{};
    std::memcpy(eh.e_ident, ELFMAG, SELFMAG);
    eh.e_ident[EI_CLASS] = ELFCLASS64;
    eh.e_ident[EI_DATA] = ELFDATA2LSB;
    eh.e_ident[EI_VERSION] = EV_CURRENT;
    eh.e_type = ET_CORE;
    eh.e_machine = EM_X86_64;
    eh.e_version = EV_CURRENT;
    eh.e_phoff = lay.phoff;
    eh.e_ehsize = sizeof(Elf64_Ehdr);
    eh.e_phentsize = sizeof(Elf64_Phdr);
    eh.e_phnum = static_cast<Elf64_Half>(phnum);
    std::memcpy(out.data(), &eh, sizeof(eh));

    Elf64_Phdr np{};
    np.p_type = PT_NOTE;
    np.p_offset = lay.notes_offset;
    np.p_filesz = note_bytes.size();
    np.p_align = 4;
    lay.note_phdr = lay.phoff;
    std::memcpy(out.data() + lay.phoff, &np, sizeof(np));
    std::memcpy(out.data() + lay.notes_offset, note_bytes.data(),
                note_bytes.size());
    for (size_t i = 0; i < loads.size(); ++i) {
      const Load& l = loads[i];
      Elf64_Phdr ph{};
      ph.p_type = PT_LOAD;
      ph.p_flags = l.flags;
      ph.p_offset = lay.load_offsets[i];
      ph.p_vaddr = l.vaddr;
      ph.p_filesz = l.bytes.size();
      ph.p_memsz = l.memsz ? l.memsz : l.bytes.size();
      ph.p_align = 4096;
      const uint64_t at = lay.phoff + (i + 1) * sizeof(Elf64_Phdr);
      lay.load_phdrs.push_back(at);
      std::memcpy(out.data() + at, &ph, sizeof(ph));
      if (!l.bytes.empty()) {
        std::memcpy(out.data() + lay.load_offsets[i], l.bytes.data(),
                    l.bytes.size());
      }
    }
    if (seal) Seal(&out);
    if (layout) *layout = lay;
    return out;
  }

  // Appends a trailer over the current bytes.
  static void Seal(std::vector<uint8_t>* file) {
    SealTrailer t{};
    std::memcpy(t.magic, kSealMagic, sizeof(kSealMagic));
    t.content_size = file->size();
    t.checksum =
        SealChecksumUpdate(kSealChecksumInit, file->data(), file->size());
    Append(file, &t, sizeof(t));
  }

  // Drops the trailer and seals again, after a test edited the content.
  static void Reseal(std::vector<uint8_t>* file) {
    file->resize(file->size() - sizeof(SealTrailer));
    Seal(file);
  }

  template <typename T>
  static void Put(std::vector<uint8_t>* file, uint64_t off, T v) {
    std::memcpy(file->data() + off, &v, sizeof(v));
  }

 private:
  static void Append(std::vector<uint8_t>* v, const void* p, size_t n) {
    const uint8_t* b = static_cast<const uint8_t*>(p);
    v->insert(v->end(), b, b + n);
  }
  static void Pad(std::vector<uint8_t>* v, size_t a) {
    while (v->size() % a) v->push_back(0);
  }

  static std::vector<uint8_t> Prstatus(const Thread& t) {
    std::vector<uint8_t> d(336, 0);  // x86_64 struct elf_prstatus
    std::memcpy(d.data() + 12, &t.signal, 2);
    std::memcpy(d.data() + 32, &t.tid, 4);
    std::memcpy(d.data() + 112 + uint64_t{4} * 8, &t.bp, 8);
    std::memcpy(d.data() + 112 + uint64_t{16} * 8, &t.pc, 8);
    std::memcpy(d.data() + 112 + uint64_t{19} * 8, &t.sp, 8);
    return d;
  }
  std::vector<uint8_t> Prpsinfo() const {
    std::vector<uint8_t> d(136, 0);
    std::memcpy(d.data() + 24, &pid, 4);
    std::memcpy(d.data() + 40, "synthetic", 9);
    std::memcpy(d.data() + 56, psargs.data(),
                std::min<size_t>(psargs.size(), 79));
    return d;
  }
  std::vector<uint8_t> Siginfo() const {
    std::vector<uint8_t> d(128, 0);
    std::memcpy(d.data(), &sig_signo, 4);
    std::memcpy(d.data() + 8, &sig_code, 4);
    std::memcpy(d.data() + 16, &fault_addr, 8);
    return d;
  }
  std::vector<uint8_t> FileNote() const {
    std::vector<uint8_t> d;
    uint64_t count = 0;
    for (const Load& l : loads) count += !l.name.empty();
    const uint64_t page = 4096;
    Append(&d, &count, 8);
    Append(&d, &page, 8);
    for (const Load& l : loads) {
      if (l.name.empty()) continue;
      const uint64_t end = l.vaddr + (l.memsz ? l.memsz : l.bytes.size());
      const uint64_t pgoff = 1;
      Append(&d, &l.vaddr, 8);
      Append(&d, &end, 8);
      Append(&d, &pgoff, 8);
    }
    for (const Load& l : loads) {
      if (!l.name.empty()) Append(&d, l.name.c_str(), l.name.size() + 1);
    }
    return d;
  }
};

}  // namespace sigrace::crashdump::testing

#endif  // SIGRACE_TESTING_SYNTHETIC_CORE_H_
