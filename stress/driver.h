// The driver of `sigrace stress`: starts worker processes (stress/worker.h),
// asks them for trials, scans every dump with the oracle (every key the
// worker's signer ever held: handed over the control channel, or derived
// from the worker's announcement when a fault kept it from being handed
// over, stress/key_oracle.h), gives each
// trial its verdict, keeps leaking dumps with a JSON sidecar, deletes clean
// ones, and builds the RunReport. Kept files carry the run's id and are
// created exclusively (base/files.h); a leaking dump that cannot be kept
// is a harness error of the run. On SIGINT or SIGTERM the workers are
// killed and the temporary dump directory removed before the process
// dies by the signal (base/process.h InstallStopHandler).
//
//   live:  one worker for the whole run; each dump arrives as a memfd.
//   fatal: one worker per trial; it dies by the signal, and the driver
//          checks how it died (WIFSIGNALED, SIGSEGV), that the dump file is
//          sealed, and scans it.
//
// Thread safety: RunStress runs on one thread. Not async-signal-safe.

#ifndef SIGRACE_STRESS_DRIVER_H_
#define SIGRACE_STRESS_DRIVER_H_

#include <string>

#include "base/status.h"
#include "stress/catalogue.h"
#include "stress/options.h"
#include "stress/report.h"

namespace sigrace::stress {

// Runs the trials `opts` asks for and returns the finished report (exit
// code and verdict set). A Status error means the run could not start or
// lost its worker in a way no trial can be blamed for.
StatusOr<RunReport> RunStress(const StressOptions& opts,
                              const VariantEntry& variant,
                              const std::string& command);

}  // namespace sigrace::stress

#endif  // SIGRACE_STRESS_DRIVER_H_
