// The verdict on one dump, decided from its ScanReport alone. `sigrace
// scan`, the egress gate and the stress driver all call JudgeReport(), so
// a dump one of them calls clean the others call clean too.
//
//   leak                   a fragment of a private form is in the dump
//                          (a finding of kind leak or redaction-not-applied;
//                          ScanReport::leaks > 0). Wherever it lies: a
//                          redaction record never excuses it.
//   redaction-not-applied  no fragment, but a redaction record claims the
//                          marker over bytes that are not the marker
//                          (ScanReport::redactions_not_applied > 0): the
//                          writer recorded a redaction and did not apply
//                          it. A word of a secret stack the writer lists
//                          as kept for unwinding is excused only when
//                          CheckPreservedWords verifies it (8-aligned,
//                          listed once, inside its record, holding a code
//                          or stack address of the dump's own PT_LOADs;
//                          crashdump/format/redaction_claims.h); any other
//                          kept word is claimed as marker and counts
//                          here (a fragment in it: a leak of this kind). The
//                          dump misdescribes itself, so it is not clean either:
//                          the bytes left in the clear are ones the signer
//                          called secret, and the key forms need not cover
//                          every secret they held.
//   clean                  neither.
//
// What each consumer does with a verdict that is not clean: `sigrace scan`
// exits 1; the gate refuses the dump; the stress driver fails the trial (a
// leak is a leaking trial; redaction-not-applied without a fragment has no
// trustworthy verdict and is a harness error, never counted as clean nor
// as a reproduced leak).
//
// Thread safety: pure functions. Not async-signal-safe (allocates).

#ifndef SIGRACE_CRASHDUMP_ORACLE_JUDGEMENT_H_
#define SIGRACE_CRASHDUMP_ORACLE_JUDGEMENT_H_

#include <cstddef>
#include <cstdint>
#include <string>

#include "crashdump/oracle/scanner.h"

namespace sigrace::crashdump {

enum class DumpVerdict {
  kClean,
  kLeak,
  kRedactionNotApplied,
};
// "clean", "leak", "redaction-not-applied".
const char* DumpVerdictName(DumpVerdict verdict);

struct Judgement {
  DumpVerdict verdict = DumpVerdict::kClean;
  size_t leaks = 0;        // leaking findings, every kind
  size_t not_applied = 0;  // of those, inside a record not applied
  size_t records_not_applied = 0;
  uint64_t bytes_not_applied = 0;
  // One line, no key bytes: "clean", "leak: 3 fragment(s), 1 where a
  // redaction is recorded, not applied", "redaction recorded, not applied:
  // 2 record(s), 64 byte(s) not the marker (no key fragment)".
  std::string reason;

  bool clean() const { return verdict == DumpVerdict::kClean; }
};

Judgement JudgeReport(const ScanReport& report);

// The report's redaction counts on one line, for text output:
// "redactions: 12 recorded, 9 verified (4176 bytes), 1 not applied (64
// bytes), 2 unchecked".
std::string RedactionSummary(const ScanReport& report);

}  // namespace sigrace::crashdump

#endif  // SIGRACE_CRASHDUMP_ORACLE_JUDGEMENT_H_
