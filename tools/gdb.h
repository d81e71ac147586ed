// `sigrace gdb DUMP [--print] [--gdb PATH]`: starts gdb on a dump with the
// executable the dump names (its NT_FILE mapping at the lowest address),
// the sysroot "/" and a solib-search-path of every directory the dump's
// libraries come from, so gdb loads the same files the process had mapped;
// and each library the dump names, by add-symbol-file at the address the
// dump maps it, for when gdb cannot read the dynamic linker's list from
// the dumped memory.
// Prints what to type next (to stderr), then replaces itself with gdb.
// --print prints only the command line, shell-quoted on one line, and
// exits 0 (for scripts and tests).
//
// Exit codes: gdb's own once started; 2 for a usage error, an unreadable
// dump, or a dump whose executable is not on this machine ("sigrace: gdb:
// ..." on stderr).
//
// Thread safety: a command entry point; call it from one thread.
// Not async-signal-safe.

#ifndef SIGRACE_TOOLS_GDB_H_
#define SIGRACE_TOOLS_GDB_H_

#include <string>
#include <vector>

#include "base/status.h"

namespace sigrace::crashdump {

// The gdb argv for `dump` (argv[0] is `gdb_path`).
StatusOr<std::vector<std::string>> GdbCommandLine(const std::string& dump,
                                                  const std::string& gdb_path);

// argv[0] is "sigrace gdb". Returns the process exit code.
int GdbMain(int argc, char** argv);

}  // namespace sigrace::crashdump

#endif  // SIGRACE_TOOLS_GDB_H_
