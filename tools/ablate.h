// `sigrace ablate`: every protection of the fixed path switched off in
// turn (stress/ablation_run.h). Returns the process exit code: 0 every
// protection leaked without itself, 1 one is unobserved, 2 usage or
// harness error.
//
// Thread safety: runs on the main thread. Not async-signal-safe.

#ifndef SIGRACE_TOOLS_ABLATE_H_
#define SIGRACE_TOOLS_ABLATE_H_

namespace sigrace::stress {

int AblateMain(int argc, char** argv);

}  // namespace sigrace::stress

#endif  // SIGRACE_TOOLS_ABLATE_H_
