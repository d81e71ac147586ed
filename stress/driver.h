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
// Through the gate (`--through-gate`, a DumpGate): each trial's dump is
// copied into the gate's staging directory instead, and the trial is
// judged on what the gate did with it: a released dump is scanned with the
// oracle in the outbox (a key there is the trial's leak); a quarantined
// one is held back (counted by reason; holding a key, it was "stopped").
//
// Thread safety: RunStress runs on one thread. Not async-signal-safe.

#ifndef SIGRACE_STRESS_DRIVER_H_
#define SIGRACE_STRESS_DRIVER_H_

#include <cstdint>
#include <string>

#include "base/status.h"
#include "crashdump/oracle/scanner.h"
#include "stress/catalogue.h"
#include "stress/options.h"
#include "stress/report.h"

namespace sigrace::stress {

// What a gate did with one staged dump.
struct GateOutcome {
  bool released = false;
  std::string path;    // the dump in the outbox or in quarantine ("": gone)
  std::string reason;  // quarantined: unsealed, torn, key-found, ...
};

// An egress gate the driver stages each trial's dump into (implemented by
// stress/egress_pipeline.h GateService: an inotify gate process).
class DumpGate {
 public:
  virtual ~DumpGate() = default;
  // (Re)starts the gate process judging with `scanner`'s keys (the keys
  // the driver knows when the dump is staged).
  virtual Status Start(const crashdump::Scanner* scanner) = 0;
  // A new staging file for this trial's dump, created exclusively; the
  // caller writes it and closes it (the gate takes it from the close).
  virtual StatusOr<int> Stage(uint64_t trial, const std::string& alg) = 0;
  // The gate's decision on the trial's staged dump; an error if none came
  // within the gate's timeout (a harness error of the trial).
  virtual StatusOr<GateOutcome> Await(uint64_t trial) = 0;
};

// Runs the trials `opts` asks for and returns the finished report (exit
// code and verdict set). A Status error means the run could not start or
// lost its worker in a way no trial can be blamed for.
StatusOr<RunReport> RunStress(const StressOptions& opts,
                              const VariantEntry& variant,
                              const std::string& command,
                              DumpGate* gate = nullptr);

}  // namespace sigrace::stress

#endif  // SIGRACE_STRESS_DRIVER_H_
