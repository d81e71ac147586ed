// The flags of `sigrace stress` and of its hidden worker, `sigrace
// stress-child` (CLI11), and the worker's entry point. The options they
// set are resolved by stress::FinishStressOptions (stress/options.h).
//
// Thread safety: run on the main thread. Not async-signal-safe.

#ifndef SIGRACE_TOOLS_STRESS_FLAGS_H_
#define SIGRACE_TOOLS_STRESS_FLAGS_H_

#include "stress/options.h"

namespace CLI {
class App;
}

namespace sigrace::stress {

// Registers every flag of `sigrace stress` on `app`, writing into `opts`
// and `text`. Call FinishStressOptions() after app.parse() to resolve what
// depends on several flags.
void AddStressFlags(CLI::App& app, StressOptions* opts, StressFlagText* text);

// `sigrace stress-child`: parses the worker's flags and runs it
// (stress::RunStressWorker). Returns the process exit code.
int StressChildMain(int argc, char** argv);

}  // namespace sigrace::stress

#endif  // SIGRACE_TOOLS_STRESS_FLAGS_H_
