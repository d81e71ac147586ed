// `sigrace explain DUMP [--key KEY | --derive | --seed S --trial T --alg A]
// [--json]`: one screen that says what a
// dump holds and why, instead of dump-info, scan, gdb, eu-stack and the
// registry's source read side by side:
//   - the fault: signal, code, address, the crashing thread (and its role
//     when the trial meta names it: "failpoint=NAME@HIT#ROLE");
//   - the crashing thread's backtrace from the handler's note, demangled,
//     with file:line where the files the dump names carry debug info
//     (addr2line, run here, never in the handler);
//   - each thread: pc and function, whether it was inside a SecretScope and
//     its registers redacted;
//   - the redactions: records and bytes per region name, and their ranges;
//   - the flight recorder (kNoteFlightRecorder): the registry's last
//     events before the dump, times relative to the fault (t=0: the
//     signal's entry into the handler, from a version 2 note; a version 1
//     note has no fault time, and t=0 is when the handler read the ring);
//   - with --key: the oracle's verdict (crashdump/oracle/judgement.h) and
//     each finding placed on that timeline: which range last covered its
//     address, which event took the cover away (or that none ever gave
//     it), by which thread, how long before the dump.
// No key byte is ever printed: findings carry form names, offsets, lengths
// and region names, as `scan` prints them.
//
// The keys of a `sigrace stress` dump are never on disk: --derive (or
// --seed S --trial T --alg A) makes them as the stress driver does, from
// the run's seed, the worker's first trial, the algorithm and generations
// 0..N-1 (--generations, raised to cover the key ids the sidecar's
// findings name), in this process made undumpable first, each key's DER in
// a locked, DONTDUMP page (stress/key_oracle.h). --derive reads those
// numbers from the sidecar DUMP.json (--sidecar FILE) that a kept dump
// has; the sidecar only says which key, the scan judges the bytes. Test
// builds only (signer/deterministic_keygen.h).
//
// Exit codes: 0 explained (whatever the verdict), 2 usage error or an
// unreadable dump or key, one line "sigrace: explain: ..." on stderr.
//
// JSON (--json; one object on stdout; addresses are "0x..." strings):
//   {"path", "file_size", "seal": {"state", "reason"},
//    "meta": {"variant", "mode", "trial", "seed", "failpoint", ...},
//    "fault": {"signo", "signal", "code", "addr", "tid", "role"} | null,
//    "backtrace": [{"frame", "pc", "function", "offset", "source"}],
//    "threads": [{"tid", "crashing", "in_secret_scope",
//                 "registers_redacted": "registers"|"simd-registers"|null,
//                 "pc", "function", "source"}],
//    "redactions": {"records", "by_region": [{"region", "kind",
//                   "records", "bytes", "ranges": [{"start", "len",
//                   "tid"}]}]},
//    "flight_recorder": {"capacity", "recorded", "in_dump", "torn",
//                        "fault_ns", "read_ns",
//                        "events": [{"index", "before_dump_ns",
//                                    "before_fault_ns" (null: no fault
//                                    time; negative: after it), "kind",
//                                    "tid", "label", "start", "len",
//                                    "prev_start", "prev_len"}]} | null,
//    "key_source": "file KEY" | "derived from seed ..." | null,
//    "verdict": {"verdict", "reason", "leaks"} | null,   (null without a key)
//    "findings": [{"kind", "form", "address", "length", "region",
//                  "label", "page", "page_offset",
//                  "event": (an event as in "events") | null,
//                  "explanation"}]}
//
// Thread safety: a command entry point; call it from one thread.
// Not async-signal-safe.

#ifndef SIGRACE_TOOLS_EXPLAIN_H_
#define SIGRACE_TOOLS_EXPLAIN_H_

namespace sigrace::crashdump {

// argv[0] is "sigrace explain". Returns the process exit code.
int ExplainMain(int argc, char** argv);

}  // namespace sigrace::crashdump

#endif  // SIGRACE_TOOLS_EXPLAIN_H_
