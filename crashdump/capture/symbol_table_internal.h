// Internal to crashdump/capture/: the layout of the symbol table that
// symbol_table_build.cc writes at install time and symbol_table.cc
// searches on the crash path.
//
// Thread safety: the table is built in private, made read-only, and then
// published with one atomic pointer (g_table); readers load it with
// acquire and never write.

#ifndef SIGRACE_CRASHDUMP_CAPTURE_SYMBOL_TABLE_INTERNAL_H_
#define SIGRACE_CRASHDUMP_CAPTURE_SYMBOL_TABLE_INTERNAL_H_

#include <atomic>
#include <cstddef>
#include <cstdint>

namespace sigrace::crashdump::internal {

struct Sym {
  uint64_t start;
  uint64_t size;
  uint32_t name;    // offset into the string pool
  uint32_t module;  // index into the module array
};

struct Module {
  uint64_t exec_lo;  // union of the PF_X PT_LOAD segments
  uint64_t exec_hi;
  uint64_t bias;
  uint32_t name;
  uint32_t pad;
};

// Everything lives in one mapping that starts with this header, so that a
// single atomic pointer publishes the whole table.
struct SymbolTable {
  size_t mapping_size;
  size_t nsyms;
  size_t nmods;
  const Sym* syms;
  const Module* mods;
  const char* strings;
};

// The published table, or null (defined in symbol_table.cc).
extern std::atomic<SymbolTable*> g_table;
static_assert(std::atomic<SymbolTable*>::is_always_lock_free);

}  // namespace sigrace::crashdump::internal

#endif  // SIGRACE_CRASHDUMP_CAPTURE_SYMBOL_TABLE_INTERNAL_H_
