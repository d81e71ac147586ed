#include "crashdump/oracle/judgement.h"

namespace sigrace::crashdump {

const char* DumpVerdictName(DumpVerdict verdict) {
  switch (verdict) {
    case DumpVerdict::kClean:
      return "clean";
    case DumpVerdict::kLeak:
      return "leak";
    case DumpVerdict::kRedactionNotApplied:
      return "redaction-not-applied";
  }
  return "?";
}

Judgement JudgeReport(const ScanReport& report) {
  Judgement j;
  // Counted from the findings, not taken from the report's totals, so a
  // report assembled by hand (the gate's raw race mode) is judged alike.
  for (const Finding& f : report.findings) {
    if (IsLeak(f.kind)) ++j.leaks;
    if (f.kind == FindingKind::kRedactionNotApplied) ++j.not_applied;
  }
  j.records_not_applied = report.redactions_not_applied;
  j.bytes_not_applied = report.bytes_not_applied;
  if (j.leaks > 0) {
    j.verdict = DumpVerdict::kLeak;
    j.reason = "leak: " + std::to_string(j.leaks) + " fragment(s)";
    if (j.not_applied > 0) {
      j.reason += ", " + std::to_string(j.not_applied) +
                  " where a redaction is recorded, not applied";
    }
  } else if (j.records_not_applied > 0) {
    j.verdict = DumpVerdict::kRedactionNotApplied;
    j.reason = "redaction recorded, not applied: " +
               std::to_string(j.records_not_applied) + " record(s), " +
               std::to_string(j.bytes_not_applied) +
               " byte(s) not the marker (no key fragment)";
  } else {
    j.reason = "clean";
  }
  return j;
}

std::string RedactionSummary(const ScanReport& report) {
  return "redactions: " + std::to_string(report.redactions_recorded) +
         " recorded, " + std::to_string(report.redactions_verified) +
         " verified (" + std::to_string(report.redacted_bytes_verified) +
         " bytes), " + std::to_string(report.redactions_not_applied) +
         " not applied (" + std::to_string(report.bytes_not_applied) +
         " bytes), " + std::to_string(report.redactions_unchecked) +
         " unchecked";
}

}  // namespace sigrace::crashdump
