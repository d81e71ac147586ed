// `sigrace merge` of stress reports (repro reports: stress/merge_repro.h):
// the JSON reports of the N shards of one stress run
// (stress/shard.h) combined into one report of the same schema
// ("sigrace.stress.report/1", stress/report.h) and one exit code, as if
// the run had not been sharded: totals and cells summed, each cell's first
// leak the lowest trial number among the shards, the leak and error lists
// in trial order, and the verdict decided by the same rules
// (RunReport::Finish).
//
// Refused, with one line naming the reports: reports of different builds,
// seeds or options (OptionsJson), a shard missing or given twice, a report
// that is not a stress report, or one that is already merged.
//
// Differences from an unsharded run's report: start_time is the earliest
// shard's and wall_s runs from it to the last shard's end; elapsed_s is
// the longest shard's; trials_per_s is the shards' rates summed (their
// throughput together); a leak's elapsed_s is within its shard; the merged
// report has "shard": {"index": null, "count": N, "source": "merge"} and a
// "shards" list (each shard's report path, command, elapsed_s, exit_code).
//
// Thread safety: pure functions. Not async-signal-safe.

#ifndef SIGRACE_STRESS_MERGE_H_
#define SIGRACE_STRESS_MERGE_H_

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "base/status.h"
#include "stress/report.h"

namespace sigrace::stress {

struct ShardReport {
  std::string path;  // for messages
  nlohmann::json report;
};

inline constexpr char kStressSchema[] = "sigrace.stress.report/1";
inline constexpr char kReproSchema[] = "sigrace.repro.report/1";

// A report's field read leniently: 0 when `j` is not an object, the key
// is missing or holds another type (the shard checks refuse such reports
// before any figure is read).
uint64_t JsonUint(const nlohmann::json& j, const char* key);
double JsonDouble(const nlohmann::json& j, const char* key);

// Checks that `shards` are reports of `schema` with every key of `keys`
// and a "shard": {index, count}, of one run (same build, seed, options and
// shard count) and together every shard once. InvalidArgument (one line)
// naming the reports, or the shard missing or given twice.
Status CheckShardSet(std::vector<ShardReport>& shards,
                     const std::string& schema,
                     const std::vector<const char*>& keys);

// The merged report's "start_time" (the earliest shard's; null when no
// shard has one) and "wall_s" (from it to the last shard's end).
void SetStartAndWall(const std::vector<ShardReport>& shards,
                     nlohmann::json* out);

// InvalidArgument (one line) when the reports cannot be merged.
StatusOr<nlohmann::json> MergeReports(const std::vector<ShardReport>& shards,
                                      const std::string& command);

// One JUnit test case per cell of a (merged) stress report.
std::vector<JUnitCase> MergedJUnitCases(const nlohmann::json& merged);

}  // namespace sigrace::stress

#endif  // SIGRACE_STRESS_MERGE_H_
