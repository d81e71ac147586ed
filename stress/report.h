// The run report of `sigrace stress` (trials, cells, verdicts) and its
// reporters, one file per output format, shared with `sigrace repro`
// (stress/repro_report.h): report_text.cc (the summary table),
// report_json.cc (the JSON report and the JSON sidecar kept next to each
// leaking dump), report_junit.cc (JUnit XML).
//
// No key byte is ever part of any of these: a finding carries offsets,
// form names, lengths and region names only.
//
// JSON report schema ("sigrace.stress.report/1"), written by
// --report-json:
//   {
//     "schema": "sigrace.stress.report/1",
//     "command": "sigrace stress ...",       // argv as given
//     "run_id": "1a2b3c4d",   // in every kept dump's and sidecar's name
//     "build": "<GNU build id hex>",         // stress/shard.h BuildId()
//     "seed": 123, "first_trial": 0,
//     "shard": {"index": 0, "count": 1, "source": "" | "flag" | "gtest" |
//               "k8s"},                     // stress/shard.h
//     "options": {...},                      // every option that shapes
//                                            // the trials (OptionsJson);
//                                            // equal across the shards
//                                            // of one run
//     "variant": "fixed", "mode": "live" | "fatal",
//     "algs": ["rs256", "eddsa"], "injectors": ["failpoint", ...],
//     "failpoint": "" | "sign.after_acquire",  // --failpoint
//     "threads": 2, "rotate_every_ms": 250, "min_fragment": 16,
//     "expect": "clean" | "leak",
//     "window": "..." | "",                  // the variant's window
//     "start_time": "2026-12-06T23:34:20.123Z" | null,  // UTC, when the
//                                            // command started (IsoUtc)
//     "wall_s": 2.1,                         // its wall seconds, start to
//                                            // report (setup included)
//     "elapsed_s": 1.5, "trials_per_s": 120.0,
//     "totals": {"trials": N, "clean": N, "leak": N, "harness_error": N,
//                "dumps": N, "dump_bytes": N, "dump_bytes_searched": N,
//                "redactions_verified": N, "redacted_bytes_verified": N,
//                "redactions_not_applied": N,
//                "worker_restarts": N,
//                "keys_received": N, "keys_derived": N,
//                "trials_with_derived_keys": N, "keys_unknown": N,
//                "derive_s": 0.5},
//     "cells": [                             // one per variant x alg x mode
//       {"variant": "...", "alg": "rs256", "mode": "live",
//        "trials": N, "clean": N, "leaks": N, "harness_errors": N,
//        "first_leak": null | {                // the first leaking trial
//          "trial": N, "seed": S, "injector": "failpoint",
//          "failpoint": "sign.after_acquire", "hit": 3, "thread": "signer-1",
//          "elapsed_s": 0.4,                   // since the run started
//          "forms": ["rsa.p.le", ...], "regions": ["[heap]", ...],
//          "kinds": ["leak" | "redaction-not-applied" | "cover-check"],
//          "findings": N, "dump": "out/..core" | "", "sidecar": "...",
//          "keep_error": "..." (only when the dump could not be kept),
//          "keys": ["rs256-<run>-1", ...],      // kids of the findings
//          "keys_received": N, "keys_derived": N,  // the oracle's keys
//          "derived_keys": [...],               // which of `keys` it derived
//          "replay": "sigrace stress ... --seed S --trial N"},
//        "verdict": "pass" | "fail" | "error"}
//     ],
//     "leaks": [ {same fields as first_leak, plus "alg"} ],  // first 100
//     "harness_errors": [ {"trial": N, "seed": S, "message": "..."} ],
//     "evidence_lost": N,   // leaking dumps that could not be kept (exit 2)
//     "tsan": {"enabled": bool, "total": N, "by_type": {"data-race": N}},
//     "gate": null | {"mode": "fixed", "scanner": "oracle" | "legacy",
//              "released": N, "quarantined": N,
//              "quarantined_by_reason": {"key-found": N, ...},
//              "stopped": N},   // --through-gate (stress/driver.h)
//     "exit_code": 0 | 1 | 2,
//     "verdict": "one line, as printed"
//   }
//
// Leak sidecar ("sigrace.leak/1"), <dump>.json beside every kept dump:
//   {"schema": "sigrace.leak/1", "seed", "trial", "variant", "alg",
//    "mode", "injector", "failpoint", "hit", "thread", "delay_us",
//    "window", "run_id", "dump" ("" when not kept: --max-kept, or
//    "keep_error"), "dump_kept", "dump_size", "dump_sha256" (of the file
//    beside it, as kept), "replay",
//    "keys_received", "keys_derived", "keys_unknown",
//    "findings": [{"file_offset", "vaddr" (or null), "region", "form",
//                  "form_offset", "length", "redacted", "key" (a kid),
//                  "key_source": "received" | "derived"}],
//                  "form_offset", "length", "redacted", "kind"}],
//    "findings_total": N}
//
// Thread safety: values and pure functions; a RunReport is built on one
// thread. Not async-signal-safe.

#ifndef SIGRACE_STRESS_REPORT_H_
#define SIGRACE_STRESS_REPORT_H_

#include <cstdint>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "base/status.h"
#include "stress/options.h"
#include "stress/trial.h"

namespace sigrace::stress {

// One fragment of a private key form found in a dump.
struct LeakFinding {
  uint64_t file_offset = 0;
  std::optional<uint64_t> vaddr;
  std::string region;  // mapping name, "[stack tid N]", "note ...", ...
  std::string form;    // the form's name, e.g. "rsa.p.le64"
  uint64_t form_offset = 0;
  uint64_t length = 0;
  bool redacted = false;
  // The kid of the key whose form matched, and whether the oracle derived
  // that key itself (announced, never handed over) or received it.
  std::string key;
  bool key_derived = false;
  // What made it a leak: "leak" (a fragment outside every redaction
  // record), "redaction-not-applied" (a fragment where the dump records a
  // redaction its bytes do not show; crashdump::FindingKind), or
  // "cover-check" (a window the registry's cover check saw open).
  std::string kind;
};

enum class Verdict { kClean, kLeak, kHarnessError };

struct TrialResult {
  TrialPlan plan;
  Verdict verdict = Verdict::kHarnessError;
  std::string message;  // kHarnessError: why; else empty
  // Leaks only (redacted fragments are counted, not kept), first 64.
  std::vector<LeakFinding> findings;
  uint64_t findings_total = 0;
  // The dump's redaction records as the oracle checked them, byte for
  // byte (crashdump::ScanReport): verified as the marker, and not applied.
  uint64_t redactions_verified = 0;
  uint64_t redacted_bytes_verified = 0;
  uint64_t redactions_not_applied = 0;
  uint64_t dump_size = 0;
  uint64_t dump_searched = 0;  // bytes the oracle read (holes skipped)
  std::string dump_path;       // kept dump, or "" (deleted / in memory)
  std::string sidecar_path;    // leak sidecar, or ""
  std::string run_id;          // the run's id (RunReport::run_id)
  std::string dump_sha256;     // of the kept dump, hex
  // Non-empty: a leaking dump that was to be kept and could not be (the
  // evidence is lost: a harness error of the run).
  std::string keep_error;
  double elapsed_s = 0;  // since the run started, at the verdict
  double trial_ms = 0;
  // Live mode: where each indexed thread was when the dump froze it.
  std::vector<ThreadAt> freeze;
  // The keys the oracle judged the dump with: handed over by the worker,
  // and derived by the driver from the worker's announcements (a key a
  // fault inside its keygen kept from being handed over). `keys_unknown`:
  // announced, never handed over and not derivable (a build without
  // deterministic keygen, or --no-key-derivation); the dump was judged
  // without them. The *_new counts are the keys that arrived or were
  // derived for this trial (live workers keep their keys across trials).
  uint64_t keys_received = 0, keys_derived = 0, keys_unknown = 0;
  uint64_t keys_received_new = 0, keys_derived_new = 0;
  double derive_ms = 0;  // driver time spent deriving for this trial
  // --through-gate: what the gate did with the dump ("released",
  // "quarantined"; "" not through a gate), its reason for holding it
  // back, and whether a held-back dump held key material ("stopped").
  std::string gate_outcome;
  std::string gate_reason;
  bool gate_stopped = false;

  // Distinct form and region names of the leaking findings, sorted.
  std::vector<std::string> Forms() const;
  std::vector<std::string> Regions() const;
  std::vector<std::string> Kinds() const;  // LeakFinding::kind, sorted
};

struct CellStats {
  std::string variant, alg, mode;
  uint64_t trials = 0, clean = 0, leaks = 0, harness_errors = 0;
  std::optional<TrialResult> first_leak;
  std::string first_leak_replay;
  std::string verdict;  // pass, fail, error
};

struct TsanCounts {
  bool enabled = false;
  uint64_t total = 0;
  std::map<std::string, uint64_t> by_type;
};

struct RunReport {
  std::string command;
  // Names this run's kept dumps and sidecars (base/files.h NewRunId).
  std::string run_id;
  std::string build_id;  // stress::BuildId() of the driver, or ""
  StressOptions options;
  std::string window;
  double elapsed_s = 0;
  // When the command started (IsoUtc; "" unknown) and its wall seconds
  // from then to the report: set by the tool, not the driver.
  std::string start_time;
  double wall_s = 0;
  uint64_t trials = 0, clean = 0, leaks = 0, harness_errors = 0;
  uint64_t dumps = 0, dump_bytes = 0, dump_bytes_searched = 0;
  // Sums of the trials' redaction counts (TrialResult).
  uint64_t redactions_verified = 0, redacted_bytes_verified = 0,
           redactions_not_applied = 0;
  // Live mode: fresh worker processes started to bound the oracle's key
  // count (not counting restarts after a lost worker).
  uint64_t worker_restarts = 0;
  // Every key the oracles held, each counted once: handed over by the
  // workers, or derived by the driver; the trials that needed a derivation
  // and the time it took; announced keys judged without (TrialResult).
  uint64_t keys_received = 0, keys_derived = 0, trials_with_derived_keys = 0,
           keys_unknown = 0;
  double derive_s = 0;
  // --through-gate: dumps the gate released and held back (by reason),
  // and of those held back, the ones holding key material (stopped).
  bool through_gate = false;
  std::string gate_mode, gate_scanner;
  uint64_t gate_released = 0, gate_quarantined = 0, gate_stopped = 0;
  std::map<std::string, uint64_t> gate_quarantined_by_reason;
  std::vector<CellStats> cells;
  std::vector<TrialResult> leak_list;   // first 100
  std::vector<TrialResult> error_list;  // first 20
  // Leaking dumps that could not be kept (TrialResult::keep_error).
  uint64_t evidence_lost = 0;
  TsanCounts tsan;
  // --explore systematic: the census (instants seen per operation, capped
  // at --max-instants) and how many distinct instants the run visited.
  std::vector<OpInstants> census;
  uint64_t instants_seen = 0, instants_visited = 0;
  int exit_code = 2;
  std::string verdict;

  // Adds one trial's result to the totals, cells and lists.
  void Add(const TrialResult& result);
  // Sets exit_code, verdict and each cell's verdict from the expectation.
  void Finish();
  double TrialsPerSecond() const;
};

// report_text.cc: the summary table, as printed at the end of `sigrace
// stress`.
std::string TextSummary(const RunReport& report);
// report_json.cc: the JSON report (schema above) and a leak's sidecar.
// `unix_s` (seconds since the epoch) as UTC ISO-8601 with milliseconds:
// "2026-12-06T23:34:20.123Z". The start time of stress, repro and merged
// reports.
std::string IsoUtc(double unix_s);
// The current time in seconds since the epoch (system clock).
double UnixNow();

nlohmann::json ReportJson(const RunReport& report);
// The options that decide which trials run and how (not where output
// goes, nor the shard): `sigrace merge` refuses shards whose differ.
nlohmann::json OptionsJson(const StressOptions& o);
nlohmann::json SidecarJson(const TrialResult& r, const StressOptions& o,
                           const std::string& window);

// report_junit.cc: JUnit XML, one test case per cell (stress) or row
// (repro).
struct JUnitCase {
  std::string classname;
  std::string name;
  double time_s = 0;
  std::string failure;  // non-empty: a <failure> with this message
  std::string error;    // non-empty: an <error> with this message
  std::string system_out;
};
std::string JUnitXml(const std::string& suite,
                     const std::vector<JUnitCase>& cases);
std::vector<JUnitCase> StressJUnitCases(const RunReport& report);

// Helpers of the reporters: printf-style formatting of one double, and
// `v` joined with `sep`.
std::string FormatDouble(const char* fmt, double v);
std::string Join(const std::vector<std::string>& v, const char* sep);

}  // namespace sigrace::stress

#endif  // SIGRACE_STRESS_REPORT_H_
