// Writes the fuzz seed corpus: small synthetic cores, one per shape the
// reader handles. Usage: core_seed_corpus DIR. The committed corpus in
// crashdump/format/fuzz/corpus/ is its output; rerun it after a format change.
//
// Thread safety: a command; single-threaded.
// Not async-signal-safe.

#include <elf.h>
#include <signal.h>

#include <cstdio>
#include <cstring>
#include <fstream>
#include <string>
#include <vector>

#include "crashdump/format/core_format.h"
#include "testing/synthetic_core.h"

namespace {

using sigrace::crashdump::RedactionKind;
using sigrace::crashdump::testing::SyntheticCore;

SyntheticCore Small() {
  SyntheticCore c;
  c.load_align = 16;
  c.threads.push_back({7, SIGSEGV, 0x401000, 0x7ffd00000100, 0x7ffd00000180});
  SyntheticCore::Load text;
  text.vaddr = 0x400000;
  text.memsz = 0x1000;
  text.flags = PF_R | PF_X;
  text.name = "/bin/signer";
  c.loads.push_back(text);
  SyntheticCore::Load heap;
  heap.vaddr = 0x7f0000000000;
  heap.bytes.assign(64, 0x11);
  heap.name = "/memfd:vault (deleted)";
  c.loads.push_back(heap);
  return c;
}

bool Write(const std::string& dir, const std::string& name,
           const std::vector<uint8_t>& bytes) {
  std::ofstream out(dir + "/" + name, std::ios::binary);
  out.write(reinterpret_cast<const char*>(bytes.data()),
            static_cast<std::streamsize>(bytes.size()));
  return static_cast<bool>(out);
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: core_seed_corpus DIR\n");
    return 2;
  }
  const std::string dir = argv[1];
  bool ok = true;

  SyntheticCore plain = Small();
  ok &= Write(dir, "plain-unsealed", plain.Build(false));

  SyntheticCore full = Small();
  full.threads.push_back({8, 0, 0x401100, 0x7ffd00000200, 0});
  SyntheticCore::Load stack;
  stack.vaddr = 0x7ffd00000000;
  stack.bytes.assign(48, 0x22);
  full.loads.push_back(stack);
  full.AddRedaction(RedactionKind::kRange, 0x7f0000000010, 32, 0, "vault");
  full.AddRedaction(RedactionKind::kSecretStack, 0x7ffd00000000, 16, 7,
                    "stack:7");
  full.AddRedaction(RedactionKind::kRegisters, 0, 0, 7, "regs:7");
  full.meta = "signal=11\nmode=live\nvariant=fixed\n";
  full.backtrace = "#0 0x401000 Sign+0x10\n";
  ok &= Write(dir, "sigrace-sealed", full.Build(true));

  SyntheticCore notes_only = Small();
  notes_only.loads.clear();
  notes_only.with_siginfo = false;
  notes_only.meta = "k=v\n";
  ok &= Write(dir, "notes-only", notes_only.Build(true));

  // PN_XNUM: the segment count lives in section header 0.
  std::vector<uint8_t> xnum = Small().Build(false);
  Elf64_Shdr sh{};
  sh.sh_info = 3;
  const uint64_t shoff = xnum.size();
  xnum.resize(xnum.size() + sizeof(sh));
  std::memcpy(xnum.data() + shoff, &sh, sizeof(sh));
  SyntheticCore::Put<uint16_t>(&xnum, offsetof(Elf64_Ehdr, e_phnum), PN_XNUM);
  SyntheticCore::Put<uint64_t>(&xnum, offsetof(Elf64_Ehdr, e_shoff), shoff);
  SyntheticCore::Put<uint16_t>(&xnum, offsetof(Elf64_Ehdr, e_shentsize),
                               sizeof(Elf64_Shdr));
  ok &= Write(dir, "pn-xnum", xnum);

  if (!ok) {
    std::fprintf(stderr, "core_seed_corpus: cannot write to %s\n", dir.c_str());
    return 2;
  }
  return 0;
}
