// The reporters of `sigrace repro` (stress/repro_verdict.h), beside those
// of `sigrace stress` in the same files: report_text.cc, report_json.cc,
// report_junit.cc.
//
// JSON report schema ("sigrace.repro.report/1", --report-json):
//   {"schema", "seed", "budget_s", "start_time" (UTC ISO-8601 when the
//    command started, or null), "wall_s" (its wall seconds), "elapsed_s"
//    (the rows' time), "tsan_binary" (or ""),
//    "run_id", "logs_dir" (<out>/logs/<run_id>: this run's row reports),
//    "build", "shard": {"index", "count"} (fixed's rows ran that shard
//    of their trials; race rows run whole in every shard), "options"
//    (what shapes the rows: budgets, minimums, variants, algs, egress,
//    threads, whether a TSan build ran; equal across shards),
//    "rows": [{"variant", "alg", "mode", "race": bool, "trials", "leaks",
//              "harness_errors", "first_leak": null | {trial, seed,
//              injector, failpoint, forms, regions, dump, replay, ...},
//              "window", "tsan": null | {"total", "by_type", "trials",
//              "leaks"}, "verdict", "note", "command", "tsan_text" (the
//              table's TSan cell), "outcome": "ok" | "failed" | "error",
//              "seconds"}],
//    "exit_code", "verdict"}
// Egress rows (stress/repro_egress.h) have the same shape: variant
// "gate/<mode>", "gate/fixed" or "gate/legacy"; mode the forced order
// ("unsealed", "swap", "held-open") or "memory"; trials 1; leaks the
// oracle's count in the released bytes; first_leak's injector
// "failpoint" (failpoint "gate.after_judge") or "legacy-scanner", dump
// the released file; note what the gate did.
//
// No key byte is part of any of these (the rows carry what the stress
// reports carry: offsets, form and region names).
//
// Thread safety: pure functions. Not async-signal-safe.

#ifndef SIGRACE_STRESS_REPRO_REPORT_H_
#define SIGRACE_STRESS_REPRO_REPORT_H_

#include <cstddef>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "stress/report.h"
#include "stress/repro_plan.h"
#include "stress/repro_schedule.h"
#include "stress/repro_verdict.h"

namespace sigrace::stress {

// report_text.cc: the two lines printed before the jobs start.
std::string ReproStartText(const ReproOptions& options,
                           const std::string& tsan_binary);
// The line printed (on stderr) as each job ends: "[3/20] variant alg mode
// (tsan): exit 0 in 12.3 s".
std::string ReproJobLine(const JobSpec& job, size_t finished, size_t total,
                         const JobOutcome& outcome);
// The first leak of each row, the notes, the table and the verdict line.
std::string ReproText(const ReproResult& result);

// report_json.cc: the JSON report (schema above).
nlohmann::json ReproJson(const ReproResult& result);

// report_junit.cc: one test case per row; a failing row's failure text
// says why (its verdict, seed, trials, the replay or its command, note).
std::vector<JUnitCase> ReproJUnitCases(const ReproResult& result);

}  // namespace sigrace::stress

#endif  // SIGRACE_STRESS_REPRO_REPORT_H_
