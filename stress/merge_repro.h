// `sigrace merge` of repro reports: the JSON reports of the N shards of
// one `sigrace repro --shard I/N --seed S` run ("sigrace.repro.report/1",
// stress/repro_report.h) combined into one repro result, which the repro
// reporters print, write as JSON and as JUnit exactly as repro does, with
// repro's exit code.
//
// Refused, with one line naming the reports (stress/merge.h
// CheckShardSet): reports of different builds, seeds or options (the
// report's "options": budgets, minimums, variants, algs, egress, threads,
// whether a TSan build ran), a shard missing or given twice, a report
// that is not a repro report or is already merged, and shards whose rows
// differ.
//
// How rows merge:
// - fixed's rows (race false, not gate/*): each shard ran its share of
//   the row's trials, so trials, leaks and harness errors are summed, the
//   first leak is the lowest trial among the shards, TSan counts (total,
//   by type, trials, leaks) are summed, and the row is judged again
//   against the whole run's minimums (--min-live-trials,
//   --min-fatal-trials, --min-tsan-trials), as repro judges an unsharded
//   row: LEAK when any shard leaked, SHORT when the summed trials fall
//   short, ERROR when any shard's row had no verdict. Each shard's notes
//   are kept, prefixed "shard I:" (a shard's own "N of M trials" note is
//   replaced by the merged count).
// - race rows, egress rows (gate/*) and n/a rows run whole in every
//   shard (tools/repro.cc): they are repeats, not parts. The merged row
//   is the lowest shard's (its trials, leaks and first leak: what the
//   unsharded run would show) when every shard agrees on the verdict;
//   when they do not, it is the first shard's row with the worst outcome
//   (a failure before a harness error) and its note names every shard's
//   verdict. So a race reproduced by the merge reproduced in every shard.
// The run's exit code and verdict line are repro's (RunExitCode) over the
// merged rows; the verdict says "(merged from N shards)".
//
// Thread safety: pure functions. Not async-signal-safe.

#ifndef SIGRACE_STRESS_MERGE_REPRO_H_
#define SIGRACE_STRESS_MERGE_REPRO_H_

#include <cstddef>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "base/status.h"
#include "stress/merge.h"
#include "stress/repro_verdict.h"

namespace sigrace::stress {

// NOLINTNEXTLINE(bugprone-exception-escape): json members; a plain value.
struct MergedRepro {
  ReproResult result;     // shard_index 0, shard_count N
  nlohmann::json shards;  // per shard: index, report, run_id, elapsed_s,
                          // exit_code
};

// InvalidArgument (one line) when the reports cannot be merged.
StatusOr<MergedRepro> MergeReproReports(const std::vector<ShardReport>& shards);

// The merged report: ReproJson of the result, with "command", "shard":
// {"index": null, "count": N, "source": "merge"} and "shards".
nlohmann::json MergedReproJson(const MergedRepro& merged,
                               const std::string& command);

}  // namespace sigrace::stress

#endif  // SIGRACE_STRESS_MERGE_REPRO_H_
