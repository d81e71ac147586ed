// Shards: one seed's trial space split over N processes or machines, so
// that the union of the N shards is exactly the unsharded run (trial t
// belongs to shard t mod N; a trial's plan depends only on the seed and t,
// stress/trial.h). Where the shard comes from, in order:
//
//   --shard I/N                       explicit; wins over the environment
//   GTEST_TOTAL_SHARDS, GTEST_SHARD_INDEX
//                                     GoogleTest's protocol (Bazel's test
//                                     runner sets it); GTEST_SHARD_STATUS_FILE
//                                     is touched to say the protocol is
//                                     understood
//   JOB_COMPLETION_INDEX with --shard-count N or SIGRACE_SHARD_COUNT
//                                     Kubernetes Indexed Jobs
//
// Two environment conventions that disagree, an index without a count, a
// count without an index, or an index out of range are errors (one line,
// exit 2 in the tools).
//
// The build id (BuildId) names the binary a shard ran, so that `sigrace
// merge` refuses to combine reports of different builds.
//
// Thread safety: pure functions, except TouchShardStatusFile (creates a
// file) and BuildId (reads this process's image once; thread-safe). Not
// async-signal-safe.

#ifndef SIGRACE_STRESS_SHARD_H_
#define SIGRACE_STRESS_SHARD_H_

#include <cstdint>
#include <functional>
#include <string>

#include "base/status.h"

namespace sigrace::stress {

inline constexpr uint32_t kMaxShards = 100000;

struct ShardSpec {
  uint32_t index = 0;
  uint32_t count = 1;  // 1: not sharded
  // Where it came from: "" (not sharded), "flag", "gtest", "k8s".
  std::string source;

  bool sharded() const { return count > 1; }
  // "I/N".
  std::string ToString() const;
};

// The environment as ResolveShard reads it (getenv in the tools; a map in
// tests). Returns nullptr for an unset variable.
using EnvLookup = std::function<const char*(const char*)>;

// Resolves the shard from `--shard` (text, "" if not given), `--shard-count`
// (0 if not given) and the environment. InvalidArgument, naming the flag or
// variable, on anything malformed, conflicting or out of range.
StatusOr<ShardSpec> ResolveShard(const std::string& shard_flag,
                                 uint32_t shard_count_flag,
                                 const EnvLookup& env);

// GoogleTest's protocol: if GTEST_SHARD_STATUS_FILE is set, create it (or
// leave it as it is if it exists; a symlink is never followed).
Status TouchShardStatusFile(const EnvLookup& env);

// Trials of the first `trials` trial numbers that belong to `shard`.
uint64_t ShardTrialCount(uint64_t trials, uint32_t index, uint32_t count);

// This binary's GNU build id as hex, or, when the image has none, a hash
// of the executable's bytes prefixed "fnv1a64:". Computed once.
const std::string& BuildId();

}  // namespace sigrace::stress

#endif  // SIGRACE_STRESS_SHARD_H_
