// `sigrace stress-child`: the worker process of `sigrace stress`. Hidden
// from `sigrace --help`; the driver fork+execs it (a fresh exec, so it also
// works under TSan, which stops checking after a multi-threaded fork).
//
// It holds everything that gets dumped: the signer with the run's variant,
// the crash handler (live: memfd target; fatal: a file in --dump-dir), K
// signing threads, the rotation thread and the injectors. It runs the
// trials the driver asks for over the control channel (stress/channel.h)
// and never holds a derived key form, so its dumps judge the signer alone.
//
// Thread safety: the entry point runs on the main thread of its own
// process. Not async-signal-safe.

#ifndef SIGRACE_STRESS_WORKER_H_
#define SIGRACE_STRESS_WORKER_H_

namespace sigrace::stress {

// The fd number the control channel has in the worker.
inline constexpr int kWorkerControlFd = 3;

int StressChildMain(int argc, char** argv);

}  // namespace sigrace::stress

#endif  // SIGRACE_STRESS_WORKER_H_
