// `sigrace gate`: the egress gate as a command.
//
//   sigrace gate --key KEY.pem [--key ...] --release-dir DIR
//                [--mode fixed|judge-unsealed|reopen-to-release]
//                [--min-fragment N] [--json] DUMP...
//   sigrace gate --list-modes
//
// For each DUMP the gate decides whether it may leave: it must be sealed
// and judged clean by crashdump/oracle/judgement.h: no fragment of any key,
// every recorded redaction applied (crashdump/egress/gate.h). A released
// dump is written to DIR under its own name. One line per dump, with the
// redaction counts of a scanned dump:
//   DUMP: released -> DIR/NAME (N bytes); redactions: 12 recorded, ...
//   DUMP: refused: leak: 3 fragment(s); redactions: ...
//   DUMP: refused: redaction recorded, not applied: 1 record(s), ...
//   DUMP: refused: not sealed: ...
// --json prints one object: {"mode": s, "dumps": [{"path": s,
//   "released": b, "released_path": s, "reason": s,
//   "verdict": "clean"|"leak"|"redaction-not-applied", "leaks": n,
//   "not_applied": n, "redactions_recorded": n, "redactions_verified": n,
//   "redacted_bytes_verified": n, "redactions_not_applied": n,
//   "bytes_not_applied": n, "redactions_unchecked": n,
//   "judged_size": n, "released_size": n}], "exit_code": n}
// (the counts are ScanReport's, crashdump/oracle/scanner.h).
// No key byte is ever printed.
//
// Exit codes: 0 every dump released; 1 a dump was refused (leak, redaction
// not applied, or not sealed); 2 error (bad flags, key file, unreadable
// dump, release failed).
//
// Thread safety: a command entry point; call it from one thread.
// Not async-signal-safe.

#ifndef SIGRACE_TOOLS_GATE_H_
#define SIGRACE_TOOLS_GATE_H_

namespace sigrace::crashdump {

int GateMain(int argc, char** argv);

}  // namespace sigrace::crashdump

#endif  // SIGRACE_TOOLS_GATE_H_
