// `sigrace stress-child`: the worker process of `sigrace stress`. Hidden
// from `sigrace --help`; the driver fork+execs it (a fresh exec, so it also
// works under TSan, which stops checking after a multi-threaded fork).
//
// It holds everything that gets dumped: the signer with the run's variant,
// the crash handler (live: memfd target; fatal: a file in --dump-dir), K
// signing threads, the rotation thread and the injectors. It runs the
// trials the driver asks for over the control channel (stress/channel.h)
// and never holds a derived key form, so its dumps judge the signer alone.
// Its signer's keys come from the key seed WorkerKeySeed(--seed,
// --worker-serial) in test builds; it announces each key before its keygen
// starts and hands it over once added (stress/key_oracle.h says how the
// driver uses both).
//
// Thread safety: the entry point runs on the main thread of its own
// process. Not async-signal-safe.

#ifndef SIGRACE_STRESS_WORKER_H_
#define SIGRACE_STRESS_WORKER_H_

#include <string>

#include "stress/options.h"

namespace sigrace::stress {

// The fd number the control channel has in the worker.
inline constexpr int kWorkerControlFd = 3;

// Runs the worker with options parsed by `sigrace stress-child`
// (tools/stress_flags.h): resolves them, installs the handler, starts the
// threads and serves trials until the driver quits. Returns the process
// exit code (0, or 2 on a set-up or channel error, also sent to the driver
// as an 'E' message when the channel is up).
int RunStressWorker(StressOptions opts, const StressFlagText& text,
                    const std::string& dump_dir);

}  // namespace sigrace::stress

#endif  // SIGRACE_STRESS_WORKER_H_
