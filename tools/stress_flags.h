// The flags of `sigrace stress` and of its hidden worker, `sigrace
// stress-child` (CLI11), and the worker's entry point. The options they
// set are resolved by stress::FinishStressOptions (stress/options.h).
//
// Thread safety: run on the main thread. Not async-signal-safe.

#ifndef SIGRACE_TOOLS_STRESS_FLAGS_H_
#define SIGRACE_TOOLS_STRESS_FLAGS_H_

#include <cstdint>
#include <string>

#include "base/status.h"
#include "stress/options.h"
#include "stress/shard.h"

namespace CLI {
class App;
}

namespace sigrace::stress {

// Registers every flag of `sigrace stress` on `app`, writing into `opts`
// and `text`. Call FinishStressOptions() after app.parse() to resolve what
// depends on several flags.
void AddStressFlags(CLI::App& app, StressOptions* opts, StressFlagText* text);

// --shard I/N and --shard-count N (stress/shard.h), shared by `sigrace
// stress` and `sigrace repro`.
struct ShardFlagText {
  std::string shard;
  uint32_t count = 0;
};
void AddShardFlags(CLI::App& app, ShardFlagText* text);
// Resolves the flags against the environment (getenv) and, under
// GoogleTest's protocol, touches GTEST_SHARD_STATUS_FILE.
StatusOr<ShardSpec> FinishShardFlags(const ShardFlagText& text);

// `sigrace stress-child`: parses the worker's flags and runs it
// (stress::RunStressWorker). Returns the process exit code.
int StressChildMain(int argc, char** argv);

}  // namespace sigrace::stress

#endif  // SIGRACE_TOOLS_STRESS_FLAGS_H_
