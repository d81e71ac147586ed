// The crash path's half of the symbol table (see symbol_table.h): a binary
// search over the table that symbol_table_build.cc built at install time.
// Everything here is safe to call from a signal handler.

#include "crashdump/capture/symbol_table.h"

#include <atomic>

#include "crashdump/capture/signal_safe.h"
#include "crashdump/capture/symbol_table_internal.h"

namespace sigrace::crashdump {

namespace internal {
std::atomic<SymbolTable*> g_table{nullptr};
}  // namespace internal

namespace {

using internal::Module;
using internal::Sym;
using Table = internal::SymbolTable;

const Module* FindModule(const Table& t, uint64_t pc) {
  for (size_t i = 0; i < t.nmods; ++i) {
    if (pc >= t.mods[i].exec_lo && pc < t.mods[i].exec_hi) return &t.mods[i];
  }
  return nullptr;
}

}  // namespace

size_t Symbolize(uint64_t pc, char* out, size_t cap, bool return_address) {
  ss::Text text(out, cap);
  const Table* t = internal::g_table.load(std::memory_order_acquire);
  const uint64_t lookup = (return_address && pc > 0) ? pc - 1 : pc;
  if (t == nullptr) {
    text.Str("??");
    return text.size();
  }
  // Last symbol whose start is <= lookup.
  size_t lo = 0, hi = t->nsyms;
  while (lo < hi) {
    const size_t mid = lo + (hi - lo) / 2;
    if (t->syms[mid].start <= lookup) {
      lo = mid + 1;
    } else {
      hi = mid;
    }
  }
  const Module* mod = FindModule(*t, lookup);
  if (lo > 0) {
    // Aliases share a start; any of them that covers lookup will do.
    const uint64_t start = t->syms[lo - 1].start;
    for (size_t i = lo; i > 0 && t->syms[i - 1].start == start; --i) {
      const Sym& s = t->syms[i - 1];
      const bool covers = s.size != 0
                              ? lookup - s.start < s.size
                              : mod != nullptr && &t->mods[s.module] == mod;
      if (covers) {
        text.Str(t->strings + s.name).Ch('+').Hex(pc - s.start);
        return text.size();
      }
    }
  }
  if (mod != nullptr) {
    text.Str(t->strings + mod->name).Ch('+').Hex(pc - mod->bias);
    return text.size();
  }
  text.Str("??");
  return text.size();
}

}  // namespace sigrace::crashdump
