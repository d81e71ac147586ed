// `sigrace stress --egress-pipeline`: the egress gate as a service, under
// concurrent load and injected faults.
//
// Trial writers write dumps into <out>/staging while a gate process
// watches that directory with inotify (IN_CLOSE_WRITE, IN_MOVED_TO),
// judges each dump with the gate (crashdump/egress/gate.h) and releases it
// to <out>/outbox or moves it to <out>/quarantine with a reason file
// (unsealed, torn, scanner-error, key-found, refused). Writers and gate
// run at once; the driver (this process) starts the writers, plays the
// writer's side of the forced orders, and judges what reached the outbox
// with the oracle on its bytes, never on the gate's word.
//
// The dumps are real: per algorithm, a live dump of a child that never
// held the key ("clean") and one of a child that holds a fresh key only
// as OpenSSL holds it after a signature ("leak"), written by the crash
// handler once at start (stress/repro_egress.h LiveDumpOfChild). Each
// trial's writer stages a copy of one of them, so the gate sees thousands
// of dumps without thousands of dumping processes.
//
// The gate process is forked from the driver after the keys exist: it is
// undumpable (MakeProcessUndumpable) and the key forms it judges with live
// in locked, MADV_DONTDUMP pages (crashdump::SecretBytes). The driver
// never writes or prints key bytes either.
//
// Faults (each trial draws at most one from the enabled list, from the
// seed and the trial number alone, so --seed S --trial N replays it):
//   writer-crash   the writer child is SIGKILLed after N bytes (failpoint
//                  egress.writer_write=raise(SIGKILL)@K, N = (K-1) chunks)
//   enospc         simulated ENOSPC: the failpoint egress.writer_write
//                  returns ENOSPC from the writer's write; the writer
//                  gives up and leaves the partial file, as a crash
//                  handler on a full disk does
//   torn           the writer stops after N bytes and closes normally
//   gate-crash     the gate process is SIGKILLed at gate.after_judge,
//                  between judgment and release; the driver starts a new
//                  one, which judges again everything left in staging
//   scanner-error  the scanner fails on the dump (gate.scan_error)
//   unsealed       the dump's bytes up to the key, no seal, are staged;
//                  at gate.after_judge the writer finishes the file
//   swap           a clean dump is staged; at gate.after_judge the leak
//                  dump is renamed over its path
//   held-open      a clean dump is staged and the writer keeps it open;
//                  at gate.after_judge it rewrites it with the leak dump
// The last three are the gate's forced orders: at gate.after_judge the
// gate process asks the driver ('W' over a socketpair) to run the
// writer's step and waits for it, so the race happens at the same
// instant on every run.
//
// Verdicts: a released file holding key material is a leak; a released
// file without a valid seal (torn) is a leak of integrity; a dump still in
// staging when its trial times out was never judged (harness error).
//
// Thread safety: RunEgressPipeline forks (writers, the gate) and waits for
// its own children by pid: call it on one thread while no other runs.
// Not async-signal-safe.

#ifndef SIGRACE_STRESS_EGRESS_PIPELINE_H_
#define SIGRACE_STRESS_EGRESS_PIPELINE_H_

#include <sys/types.h>

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "base/status.h"
#include "crashdump/egress/gate.h"
#include "stress/channel.h"
#include "stress/driver.h"

namespace sigrace::stress {

enum class EgressFault {
  kNone,
  kWriterCrash,
  kEnospc,
  kTorn,
  kGateCrash,
  kScannerError,
  kUnsealed,
  kSwap,
  kHeldOpen,
};
const char* EgressFaultName(EgressFault fault);
// Every fault but kNone, in order.
std::vector<EgressFault> AllEgressFaults();
// "writer-crash,enospc,..." or "all"; "none" for no faults.
StatusOr<std::vector<EgressFault>> ParseEgressFaults(const std::string& text);
std::string EgressFaultList(const std::vector<EgressFault>& faults);

struct PipelineOptions {
  std::string out_dir = "sigrace-out";  // staging/, outbox/, quarantine/
  crashdump::GateMode gate_mode = crashdump::GateMode::kFixed;
  crashdump::GateScanner scanner = crashdump::GateScanner::kOracle;
  std::vector<std::string> algs = {"rs256", "eddsa"};
  std::vector<EgressFault> faults = AllEgressFaults();
  uint64_t trials = 1000;
  uint64_t seed = 0;
  std::optional<uint64_t> trial;  // replay exactly this trial
  // Trials in flight at once (writers running while the gate judges).
  uint32_t inflight = 4;
  // Percent of trials that draw a fault (from `faults`).
  uint32_t fault_share = 50;
  // Percent of trials without a forced order that stage the leak dump.
  uint32_t leak_share = 50;
  // A staged dump not judged this long after its writer finished is a
  // harness error.
  uint32_t judge_timeout_ms = 60000;
  // Stop at the first leak (the default when a leak is expected).
  bool stop_at_first_leak = false;
  uint32_t max_kept = 20;  // leaking released files kept in the outbox
  bool quiet = false;
  // Failpoint specs armed in every gate process (tests:
  // egress.gate_drop_event, egress.gate_no_rescan).
  std::string gate_failpoints;
  // Whether a released leak is expected (default: under a race mode or
  // the legacy scanner).
  std::optional<bool> expect_leak;
};

// One trial's draw: a pure function of (seed, trial, options).
struct EgressPlan {
  uint64_t trial = 0;
  std::string alg;
  bool leak = false;  // the staged dump (the last one, for the orders)
  EgressFault fault = EgressFault::kNone;
  uint32_t cut_chunk = 0;  // writer faults: the write call that fails (1..)
  std::string Describe() const;
};
EgressPlan PlanEgressTrial(const PipelineOptions& o, uint64_t trial);
// Bytes a writer writes per write(2); a writer fault at call K leaves
// (K - 1) * kWriterChunk bytes.
inline constexpr size_t kWriterChunk = size_t{64} * 1024;

struct EgressLeak {
  uint64_t trial = 0;
  std::string plan;   // EgressPlan::Describe()
  std::string file;   // the released file (kept) or "" (deleted)
  bool key = false;   // key material in the released bytes
  bool torn = false;  // released without a valid seal
  uint64_t fragments = 0;
  std::vector<std::string> forms;  // form names, never bytes
  double elapsed_s = 0;
  uint64_t dumps_before = 0;  // dumps judged when it was found
  std::string replay;
};

struct PipelineReport {
  std::string gate_mode, scanner, faults;
  uint64_t seed = 0;
  uint64_t trials = 0;
  uint64_t dumps_staged = 0;  // dumps the writers put into staging
  uint64_t judgments = 0;     // gate decisions (a re-judged dump counts
                              // each time)
  uint64_t released = 0;      // files that reached the outbox
  uint64_t quarantined = 0;
  std::map<std::string, uint64_t> quarantined_by_reason;
  uint64_t superseded = 0;  // judged, then changed under the gate: judged
                            // again, not moved
  std::map<std::string, uint64_t> faults_fired;
  uint64_t gate_restarts = 0;
  uint64_t torn_staged = 0;       // dumps the writer left torn
  uint64_t torn_quarantined = 0;  // of those, found in quarantine
  uint64_t leaks = 0;             // released files holding key material
  uint64_t torn_released = 0;     // released without a valid seal
  uint64_t never_judged = 0;
  std::vector<std::string> harness_errors;
  std::vector<EgressLeak> leak_list;  // first 50
  double elapsed_s = 0;
  bool expect_leak = false;
  // 0: as expected; 1: not (a leak under the fixed gate, none under a
  // race mode); 2: a harness error.
  int ExitCode() const;
};

StatusOr<PipelineReport> RunEgressPipeline(const PipelineOptions& options);

std::string PipelineText(const PipelineReport& report);
std::string PipelineJson(const PipelineReport& report);

// The command that replays one trial of this run.
std::string PipelineReplayCommand(const PipelineOptions& o, uint64_t trial);

// The pipeline's gate process as a service of the signer stress
// (`sigrace stress --through-gate`, stress/driver.h DumpGate): the same
// undumpable inotify gate on <out_dir>/staging, releasing to
// <out_dir>/outbox or quarantining in <out_dir>/quarantine, with no
// injected faults. Start forks it with the keys of `scanner` (again on
// each new key); Stage creates a trial's staging file exclusively; Await
// waits at most judge_timeout_ms for its decision.
class GateService : public DumpGate {
 public:
  GateService(const std::string& out_dir, crashdump::GateMode mode,
              crashdump::GateScanner scanner, uint32_t judge_timeout_ms);
  ~GateService() override;
  GateService(const GateService&) = delete;
  GateService& operator=(const GateService&) = delete;

  Status Start(const crashdump::Scanner* scanner) override;
  StatusOr<int> Stage(uint64_t trial, const std::string& alg) override;
  StatusOr<GateOutcome> Await(uint64_t trial) override;

 private:
  PipelineOptions o_;
  std::string out_dir_, staging_, outbox_, quarantine_;
  uint32_t judge_timeout_ms_;
  int staging_fd_ = -1;
  std::set<uint64_t> crashed_;  // unused: no gate-crash fault here
  pid_t pid_ = -1;
  std::unique_ptr<Channel> channel_;
};

}  // namespace sigrace::stress

#endif  // SIGRACE_STRESS_EGRESS_PIPELINE_H_
