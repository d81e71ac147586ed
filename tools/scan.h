// `sigrace scan`: the oracle as a command.
//
//   sigrace scan --key KEY.pem [--key KEY2.pem ...] [--min-fragment N]
//                [--threads N] [--json] [--no-anchors] DUMP...
//   sigrace scan --list-forms [--key KEY.pem]
//
// Scans each DUMP (any file: a sigrace dump, a kernel or gcore core, or raw
// bytes) for every fragment of at least N bytes (default 16) of any form of
// the key (crashdump/oracle/key_forms.h has the table; --list-forms prints it
// with the form lengths of KEY, or of freshly generated example keys).
// Findings give the file offset, for ELF cores the address and the region
// or thread, the form and the fragment's offset and length within it.
// No key byte is ever printed.
//
// Every redaction record of an ELF core is checked byte for byte: a record
// counts only where the file's bytes are the marker. Each dump gets the
// verdict of crashdump/oracle/judgement.h (shared with the gate and the
// stress driver): clean, leak (a fragment anywhere, "redaction-not-applied"
// when it lies where a record claims the marker), or redaction-not-applied
// (no fragment, but a record whose bytes are not the marker: a writer
// fault, listed as a warning).
//
// Exit codes: 0 every dump clean; 1 a dump is not clean (a leak, or a
// redaction recorded and not applied); 2 error: bad flags, a key file that
// does not parse, an unreadable dump, a truncated core, a torn or unsealed
// sigrace dump. Every dump is still scanned and
// reported; an error wins over a leak because a dump that could not be
// judged must not pass. Errors are one line: "sigrace: scan: ...".
//
// Text output: one header line per dump, one line per finding, one summary
// line:
//   DUMP: sigrace-dump, 1048576 bytes, leak, 2 leaks, 1 anchors;
//         redactions: 12 recorded, 9 verified (4176 bytes), 1 not applied
//         (64 bytes), 2 unchecked
//     leak      off 0x2100 addr 0x5555555592a0 len 128 rsa.p.le64[0+128]
//               part p region load 0x555555559000-0x55555557a000 rw- [heap]
//     warning   redaction recorded, not applied: record 3 range vault: 64
//               of 64 bytes not the marker, first at off 0x3000
//   summary: 1 dumps, 1 not clean, 2 leaks, 1 redactions not applied,
//            1 anchors, 0 errors
// (each one line in the output).
//
// JSON schema (--json; one object on stdout). Addresses are strings
// "0x..." (64-bit values do not fit a JSON double); sizes, offsets and
// counts are numbers.
//   {
//     "min_fragment": n,
//     "keys": [{"id": s, "type": "RSA-2048"|"Ed25519"|"EC-prime256v1",
//               "forms": n}],
//     "dumps": [{
//       "path": s,
//       "status": "ok"|"error",
//       "error": s,                       (only when status is "error")
//       "file_kind": "raw"|"elf-core"|"sigrace-dump",
//       "file_size": n, "scan_seconds": x,
//       "verdict": "clean"|"leak"|"redaction-not-applied",
//       "leaks": n,                 (every leaking finding, both kinds)
//       "not_applied": n,           (findings "redaction-not-applied")
//       "anchors": n,
//       "redactions_recorded": n, "redactions_verified": n,
//       "redacted_bytes_verified": n, "redactions_not_applied": n,
//       "bytes_not_applied": n, "redactions_unchecked": n,
//                                   (ScanReport, crashdump/oracle/scanner.h)
//       "findings": [{
//         "kind": "leak"|"redaction-not-applied"|"anchor",
//         "file_offset": n, "length": n,
//         "key": n, "form": s, "part": s,
//         "form_offset": n, "secret_bytes": n, "other_forms": n,
//         "address": "0x..." | null,
//         "region": s, "tid": n, "redaction": s
//       }],
//       "unapplied_redactions": [{    (records whose bytes are not the
//         "record": n, "kind": s,      marker; no key bytes)
//         "label": s, "tid": n, "address": "0x...", "length": n,
//         "checked_bytes": n, "non_marker_bytes": n,
//         "first_file_offset": n
//       }]
//     }],
//     "leaks": n, "not_clean": n, "redactions_not_applied": n,
//     "errors": n, "exit_code": 0|1|2
//   }
//
// Thread safety: a command entry point; call it from one thread.
// Not async-signal-safe.

#ifndef SIGRACE_TOOLS_SCAN_H_
#define SIGRACE_TOOLS_SCAN_H_

namespace sigrace::crashdump {

// argv[0] is "sigrace scan". Returns the process exit code.
int ScanMain(int argc, char** argv);

}  // namespace sigrace::crashdump

#endif  // SIGRACE_TOOLS_SCAN_H_
