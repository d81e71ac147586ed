// `sigrace dump-info DUMP [--json] [--require-seal]`: prints what the core
// reader sees in a dump: seal state, process, signal, threads, mappings,
// redaction records, trial metadata and the backtrace (C++ names
// demangled). It never prints memory contents (no PT_LOAD byte, no
// register beyond pc/sp/bp).
//
// Strings that come from the dump (labels, names, meta, backtrace) are
// printed with every byte outside printable ASCII escaped as \xNN
// (tools/common.h), so a hostile dump cannot drive the terminal and the
// JSON is always valid. The process's arguments are not printed beyond
// the program: a key passed on a command line would be.
//
// Exit codes: 0 the dump was read (whatever its seal state, unless
// --require-seal), 2 usage error or unreadable dump, with one line
// "sigrace: dump-info: <path>: <reason>" on stderr.
//
// JSON schema (--json; one object on stdout). Addresses are strings
// "0x..." because 64-bit values do not fit a JSON double; sizes and
// offsets are numbers.
//   {
//     "path": string, "file_size": number, "machine": string,
//     "seal": {"state": "sealed"|"unsealed"|"corrupt",
//              "reason": string ("" when sealed),
//              "version": number (1 or 2; 0 without a trailer),
//              "content_size": number, "checksum": "0x...",
//              "checksum_verified": bool},
//     "process": {"pid": n, "ppid": n, "name": s,
//                 "program": s,           (first argument, at most 64
//                                          bytes, escaped)
//                 "more_args": n, "more_args_bytes": n} | null,
//                 (the other arguments are counted, never printed: a
//                 command line may carry a key)
//     "siginfo": {"signo": n, "signal": "SIGSEGV", "code": n, "errno": n,
//                 "addr": "0x..."} | null,
//     "threads": [{"index": n, "tid": n, "signal": n,
//                  "signal_name": "SIGSEGV" | "", "crashing": bool,
//                  "regs_known": bool, "pc": "0x...", "sp": "0x...",
//                  "bp": "0x..."}],
//     "mappings": [{"index": n, "start": "0x...", "end": "0x...",
//                   "size": n, "perms": "rwx", "file_offset": n,
//                   "file_size": n, "name": s, "name_offset": n}],
//     "redactions": [{"kind": "range"|"update-prev"|"secret-stack"|
//                     "registers"|"handler-state"|"unknown(N)",
//                     "label": s, "start": "0x...", "end": "0x...",
//                     "len": n, "tid": n}],
//     "meta": [{"key": s, "value": s}],   (file order; keys may repeat)
//     "backtrace": [s, ...],               (one frame line each, C++
//                                           symbols demangled)
//     "has_sigrace_notes": bool
//   }
//
// Thread safety: a command entry point; call it from one thread.
// Not async-signal-safe.

#ifndef SIGRACE_TOOLS_DUMP_INFO_H_
#define SIGRACE_TOOLS_DUMP_INFO_H_

namespace sigrace::crashdump {

// argv[0] is "sigrace dump-info". Returns the process exit code.
int DumpInfoMain(int argc, char** argv);

}  // namespace sigrace::crashdump

#endif  // SIGRACE_TOOLS_DUMP_INFO_H_
