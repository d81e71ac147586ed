// Symbol table for the crash path's backtrace. libunwind's
// unw_get_proc_name reads ELF images with malloc/free, which is not
// async-signal-safe; instead the function symbols of every loaded module
// are read from disk at install time into one private anonymous mapping
// (excluded from kernel dumps with MADV_DONTDUMP), and the handler only
// binary-searches it. Names stay mangled: demangling would cost install
// time and allocate.
//
// Thread safety: BuildSymbolTable and FreeSymbolTable are Not
// async-signal-safe, must not race with each other, and must not run while
// a dump is in progress (call them from the control thread that installs
// and uninstalls the handler). Symbolize may run concurrently with itself
// from any thread or signal handler.

#ifndef SIGRACE_CRASHDUMP_CAPTURE_SYMBOL_TABLE_H_
#define SIGRACE_CRASHDUMP_CAPTURE_SYMBOL_TABLE_H_

#include <cstddef>
#include <cstdint>

#include "base/status.h"

namespace sigrace::crashdump {

// Upper bound on the mapping that holds the table (symbols, modules and
// names). A process whose symbols do not fit gets an error; the handler then
// prints module+offset only.
inline constexpr size_t kSymbolTableCap = size_t{64} << 20;

// Reads the function symbols (.symtab, else .dynsym) of every module
// dl_iterate_phdr reports and replaces any previous table. Modules whose
// file cannot be read (the vDSO, a deleted library) keep their executable
// range so that their addresses still print as module+offset.
// Not async-signal-safe.
Status BuildSymbolTable();

// Releases the table; Symbolize then writes "??".
// Not async-signal-safe.
void FreeSymbolTable();

// Writes a NUL-terminated description of pc into out[0..cap): "name+0xOFF"
// when a function symbol covers pc (or, for a symbol of unknown size, is the
// nearest one below pc in the same module), else "module+0xOFF" (offset
// from the module's load bias) when pc is in a module's executable segment,
// else "??". With return_address, the lookup uses pc-1, so that a call that
// ends its function resolves to the caller; the printed offset is still
// that of pc. Returns the length written (truncated to fit).
// Safe to call from a signal handler.
size_t Symbolize(uint64_t pc, char* out, size_t cap,
                 bool return_address = false);

}  // namespace sigrace::crashdump

#endif  // SIGRACE_CRASHDUMP_CAPTURE_SYMBOL_TABLE_H_
