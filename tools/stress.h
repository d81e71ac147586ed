// Entry points of the `sigrace` subcommands that stress/ owns:
//   sigrace stress       the stress driver (live or fatal trials)
//   sigrace repro        the main job: reproduce every race, confirm fixed
//   sigrace variants     the variant catalogue
//   sigrace stress-child the driver's worker process (hidden;
//                        tools/stress_flags.h)
// Each returns the process exit code: 0 expectation met, 1 not met,
// 2 usage or harness error.
//
// Thread safety: each runs on the main thread. Not async-signal-safe.

#ifndef SIGRACE_TOOLS_STRESS_H_
#define SIGRACE_TOOLS_STRESS_H_

namespace sigrace::stress {

int StressMain(int argc, char** argv);
int ReproMain(int argc, char** argv);
int VariantsMain(int argc, char** argv);

}  // namespace sigrace::stress

#endif  // SIGRACE_TOOLS_STRESS_H_
