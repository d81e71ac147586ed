// Symbols for the analysis side (`sigrace explain`, `dump-info`, `sigrace
// gdb`): demangling of the handler's backtrace lines, and file:line of
// addresses through addr2line (binutils) on the files a dump names. Never
// on the crash path: the handler writes mangled names and raw pcs.
//
// Thread safety: free functions with no shared state.
// Not async-signal-safe (allocates; SourceLines starts a process).

#ifndef SIGRACE_TOOLS_EXPLAIN_SYMBOLS_H_
#define SIGRACE_TOOLS_EXPLAIN_SYMBOLS_H_

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "crashdump/format/core_reader.h"

namespace sigrace::tools {

// abi::__cxa_demangle of a C++ symbol ("_ZN7sigrace..."); anything else
// (a C name, "??", a malformed mangling) comes back unchanged.
std::string Demangle(std::string_view symbol);

// One line of the handler's backtrace note, "#N 0xPC symbol+0xOFF", with
// the symbol demangled; a line of another shape comes back unchanged.
std::string DemangleBacktraceLine(std::string_view line);

struct BacktraceFrame {
  int number = 0;
  uint64_t pc = 0;
  std::string symbol;  // demangled; "" when the handler had none
  uint64_t offset = 0;
};

// The frames of a kNoteBacktrace text; lines of another shape are skipped.
std::vector<BacktraceFrame> ParseBacktrace(std::string_view text);

// Where an address of the dumped process lies in a file: the file the dump
// names (NT_FILE) and the address in that file's ELF address space
// (the mapping's offset in the file: position-independent code, load bias
// = start of the file's first mapping).
struct ModuleAddress {
  std::string path;
  uint64_t file_address = 0;
};
std::optional<ModuleAddress> ModuleFor(const crashdump::CoreReader& r,
                                       uint64_t addr);

// The executable the dump names: the file of its lowest file-backed
// mapping (Linux maps the executable first) or "" if there is none.
std::string ExecutableOf(const crashdump::CoreReader& r);

// Function and "file:line" of each address (addr2line -f -C -e FILE) for
// the addresses in files the dump names that exist here; an address
// addr2line cannot place ("??") has empty fields. `addresses` are of the
// dumped process; pass a return address minus one. One addr2line per file.
struct SourceInfo {
  std::string function;  // demangled; "" if unknown
  std::string source;    // "file:line"; "" without debug info
};
std::map<uint64_t, SourceInfo> Symbolize(
    const crashdump::CoreReader& r, const std::vector<uint64_t>& addresses);

}  // namespace sigrace::tools

#endif  // SIGRACE_TOOLS_EXPLAIN_SYMBOLS_H_
