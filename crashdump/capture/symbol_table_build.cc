// Builds the crash path's symbol table at install time (see
// symbol_table.h): reads the function symbols of every loaded module from
// disk into one read-only mapping and publishes it.
// Not async-signal-safe: it allocates (std::vector, std::string), opens and
// maps files and calls dl_iterate_phdr. The crash path's half, Symbolize,
// is in symbol_table.cc.

#include <elf.h>
#include <fcntl.h>
#include <link.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstring>
#include <new>
#include <string>
#include <vector>

#include "crashdump/capture/symbol_table.h"
#include "crashdump/capture/symbol_table_internal.h"

namespace sigrace::crashdump {
namespace {

using internal::g_table;
using internal::Module;
using internal::Sym;
using Table = internal::SymbolTable;

struct Builder {
  std::vector<Sym> syms;
  std::vector<Module> mods;
  std::string strings;
  Status status;

  uint32_t AddString(const char* s, size_t n) {
    const size_t off = strings.size();
    strings.append(s, n);
    strings.push_back('\0');
    return static_cast<uint32_t>(off);
  }
};

// Reads the function symbols of the ELF file at path; a file that cannot
// be read or parsed contributes no symbols (its module range still counts).
void ReadElfSymbols(const char* path, uint64_t bias, uint32_t module,
                    Builder& b) {
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return;
  struct stat st;
  if (fstat(fd, &st) != 0 ||
      st.st_size < static_cast<off_t>(sizeof(Elf64_Ehdr))) {
    close(fd);
    return;
  }
  const size_t fsize = static_cast<size_t>(st.st_size);
  void* map = mmap(nullptr, fsize, PROT_READ, MAP_PRIVATE, fd, 0);
  close(fd);
  if (map == MAP_FAILED) return;
  const auto* base = static_cast<const unsigned char*>(map);
  const auto* eh = reinterpret_cast<const Elf64_Ehdr*>(base);
  auto in_file = [&](uint64_t off, uint64_t len) {
    return off <= fsize && len <= fsize - off;
  };
  if (memcmp(eh->e_ident, ELFMAG, SELFMAG) != 0 ||
      eh->e_ident[EI_CLASS] != ELFCLASS64 ||
      eh->e_shentsize != sizeof(Elf64_Shdr) ||
      !in_file(eh->e_shoff, uint64_t{eh->e_shnum} * sizeof(Elf64_Shdr))) {
    munmap(map, fsize);
    return;
  }
  const auto* sh = reinterpret_cast<const Elf64_Shdr*>(base + eh->e_shoff);
  const Elf64_Shdr* symtab = nullptr;
  const Elf64_Shdr* dynsym = nullptr;
  for (unsigned i = 0; i < eh->e_shnum; ++i) {
    if (sh[i].sh_type == SHT_SYMTAB && symtab == nullptr) symtab = &sh[i];
    if (sh[i].sh_type == SHT_DYNSYM && dynsym == nullptr) dynsym = &sh[i];
  }
  const Elf64_Shdr* table = symtab != nullptr ? symtab : dynsym;
  if (table != nullptr && table->sh_link < eh->e_shnum &&
      table->sh_entsize == sizeof(Elf64_Sym) &&
      in_file(table->sh_offset, table->sh_size)) {
    const Elf64_Shdr& strsh = sh[table->sh_link];
    if (in_file(strsh.sh_offset, strsh.sh_size) && strsh.sh_size > 0) {
      const char* str = reinterpret_cast<const char*>(base + strsh.sh_offset);
      const auto* syms =
          reinterpret_cast<const Elf64_Sym*>(base + table->sh_offset);
      const size_t n = table->sh_size / sizeof(Elf64_Sym);
      for (size_t i = 0; i < n; ++i) {
        const Elf64_Sym& s = syms[i];
        if (ELF64_ST_TYPE(s.st_info) != STT_FUNC || s.st_value == 0 ||
            s.st_shndx == SHN_UNDEF || s.st_name >= strsh.sh_size) {
          continue;
        }
        const char* name = str + s.st_name;
        const size_t len = strnlen(name, strsh.sh_size - s.st_name);
        if (len == 0) continue;
        if (b.strings.size() + len + 1 > kSymbolTableCap) {
          b.status =
              ResourceExhaustedError("symbol table: names exceed the size cap");
          break;
        }
        b.syms.push_back(
            {bias + s.st_value, s.st_size, b.AddString(name, len), module});
      }
    }
  }
  munmap(map, fsize);
}

int OnModule(struct dl_phdr_info* info, size_t, void* arg) {
  Builder& b = *static_cast<Builder*>(arg);
  if (!b.status.ok()) return 1;
  uint64_t lo = UINT64_MAX, hi = 0;
  for (unsigned i = 0; i < info->dlpi_phnum; ++i) {
    const ElfW(Phdr)& ph = info->dlpi_phdr[i];
    if (ph.p_type != PT_LOAD || (ph.p_flags & PF_X) == 0) continue;
    lo = std::min<uint64_t>(lo, info->dlpi_addr + ph.p_vaddr);
    hi = std::max<uint64_t>(hi, info->dlpi_addr + ph.p_vaddr + ph.p_memsz);
  }
  if (lo >= hi) return 0;
  const bool main_exe =
      info->dlpi_name == nullptr || info->dlpi_name[0] == '\0';
  std::string path = main_exe ? "/proc/self/exe" : info->dlpi_name;
  std::string shown = path;
  if (main_exe) {
    char buf[4096];
    const ssize_t n = readlink("/proc/self/exe", buf, sizeof(buf) - 1);
    if (n > 0) shown.assign(buf, static_cast<size_t>(n));
  }
  const size_t slash = shown.rfind('/');
  if (slash != std::string::npos) shown.erase(0, slash + 1);
  const uint32_t module = static_cast<uint32_t>(b.mods.size());
  b.mods.push_back(
      {lo, hi, info->dlpi_addr, b.AddString(shown.data(), shown.size()), 0});
  ReadElfSymbols(path.c_str(), info->dlpi_addr, module, b);
  return b.status.ok() ? 0 : 1;
}

constexpr size_t AlignUp(size_t v, size_t a) { return (v + a - 1) & ~(a - 1); }

void Release(Table* t) {
  if (t != nullptr) munmap(t, t->mapping_size);
}

}  // namespace

Status BuildSymbolTable() {
  Builder b;
  dl_iterate_phdr(&OnModule, &b);
  SIGRACE_RETURN_IF_ERROR(b.status);
  std::sort(b.syms.begin(), b.syms.end(),
            [](const Sym& x, const Sym& y) { return x.start < y.start; });

  const size_t syms_off = AlignUp(sizeof(Table), alignof(Sym));
  const size_t mods_off =
      AlignUp(syms_off + b.syms.size() * sizeof(Sym), alignof(Module));
  const size_t str_off = mods_off + b.mods.size() * sizeof(Module);
  const size_t total = AlignUp(str_off + b.strings.size() + 1,
                               static_cast<size_t>(sysconf(_SC_PAGESIZE)));
  if (total > kSymbolTableCap) {
    return ResourceExhaustedError("symbol table: " + std::to_string(total) +
                                  " bytes exceeds the cap of " +
                                  std::to_string(kSymbolTableCap));
  }
  void* mem = mmap(nullptr, total, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (mem == MAP_FAILED) return ErrnoError("mmap symbol table", errno);
  // Symbol names are not secrets, but the table is the handler's own state
  // and has no place in the process's kernel core.
  (void)madvise(mem, total, MADV_DONTDUMP);
  auto* base = static_cast<char*>(mem);
  auto* syms = reinterpret_cast<Sym*>(base + syms_off);
  if (!b.syms.empty()) {
    memcpy(static_cast<void*>(syms), b.syms.data(),
           b.syms.size() * sizeof(Sym));
  }
  if (!b.mods.empty()) {
    memcpy(base + mods_off, b.mods.data(), b.mods.size() * sizeof(Module));
  }
  memcpy(base + str_off, b.strings.data(), b.strings.size());
  base[str_off + b.strings.size()] = '\0';
  auto* t = new (mem) Table{total,
                            b.syms.size(),
                            b.mods.size(),
                            syms,
                            reinterpret_cast<const Module*>(base + mods_off),
                            base + str_off};
  // Read-only from here on: a stray write on the crash path faults instead
  // of corrupting names.
  (void)mprotect(mem, total, PROT_READ);
  Release(g_table.exchange(t, std::memory_order_acq_rel));
  return Status::Ok();
}

void FreeSymbolTable() {
  Release(g_table.exchange(nullptr, std::memory_order_acq_rel));
}

}  // namespace sigrace::crashdump
