// `sigrace repro`'s egress rows: the other reading of the incident, where
// the race decided what left the secure environment and the scanner there
// did not know the key.
//
// Every row judges real dumps written by the crash handler in a child of
// this process (crashdump/capture): per algorithm, a dump of a child that
// never held the key ("clean") and a live dump of a child that holds a
// fresh key only as OpenSSL holds it after a signature (limbs, Montgomery
// copies, the Ed25519 expanded key; no PEM, no DER) and registers nothing
// ("leak"). The key is made after the clean child is forked and its forms
// are built after the leak child has exited, so neither dump holds any
// other form of it.
//
// Rows, per algorithm:
//   gate/<race mode>  the race mode's forced order (the failpoint
//                     gate.after_judge runs the writer inside the egress
//                     window): expects the leak RELEASED ("reproduced");
//   gate/fixed        the fixed gate under each of the same orders
//                     (unsealed, swap, held-open): expects nothing that
//                     leaks released ("clean"). In the unsealed order it
//                     refuses the dump on its headers, before the
//                     failpoint, so the writer never runs inside it;
//   gate/legacy       the leak dump through the fixed gate with the legacy
//                     scanner (expects it released) and with the oracle
//                     (expects it refused); the note names the forms.
// Released files are judged by the oracle on their bytes, never on the
// gate's decision.
//
// Thread safety: RunEgressRows forks and waits for its own children by pid,
// and arms process-wide failpoints: call it on one thread, while no other
// thread runs. Not async-signal-safe.

#ifndef SIGRACE_STRESS_REPRO_EGRESS_H_
#define SIGRACE_STRESS_REPRO_EGRESS_H_

#include <openssl/types.h>

#include <string>
#include <vector>

#include "base/status.h"
#include "crashdump/egress/gate.h"
#include "stress/repro_verdict.h"

namespace sigrace::stress {

// The forced order a gate row runs under.
struct EgressOrder {
  const char* name;    // "unsealed", "swap", "held-open"
  const char* window;  // what the writer does inside the window
};

struct EgressVariant {
  std::string name;  // "gate/judge-unsealed", ..., "gate/fixed",
                     // "gate/legacy"
  crashdump::GateMode mode = crashdump::GateMode::kFixed;
  std::string order;      // the forced order ("" for gate/legacy)
  std::string failpoint;  // where the writer runs ("" for gate/legacy)
  std::string window;     // one line: what races, where the failpoint sits
  bool race = false;
};

// The gate mode's name ("fixed", "judge-unsealed", ...).
const char* GateModeNameOf(crashdump::GateMode mode);

// Every egress variant: the race modes, then gate/fixed, then gate/legacy.
std::vector<EgressVariant> EgressCatalogue();
// True for a name EgressCatalogue() knows.
bool IsEgressVariant(const std::string& name);

struct EgressOptions {
  // The variants to run (names from EgressCatalogue; empty: all).
  std::vector<std::string> variants;
  std::vector<std::string> algs = {"rs256", "eddsa"};
  // Where the dumps and releases go (must exist; left for inspection).
  std::string work_dir;
  uint64_t seed = 0;  // carried into the rows' replay commands
  // The gate the gate/fixed rows run. kFixed except in tests, which put
  // a race mode here to show that the rows catch a gate that leaks.
  crashdump::GateMode fixed_mode = crashdump::GateMode::kFixed;
};

// Forks a child that (with `pkey`) signs once, so OpenSSL holds the key in
// its working forms, then writes one live dump into `dir` (which holds no
// other *.core) through the crash handler, registering nothing. Without
// `pkey` the child never holds a key. Returns the dump's path. The egress
// pipeline (stress/egress_pipeline.h) stages these dumps too.
StatusOr<std::string> LiveDumpOfChild(EVP_PKEY* pkey, const std::string& dir);

// Runs the rows; a row's own failure is in the row (failed or error). An
// error Status only for what stops every row (no work directory).
StatusOr<std::vector<ReproRow>> RunEgressRows(const EgressOptions& options);

}  // namespace sigrace::stress

#endif  // SIGRACE_STRESS_REPRO_EGRESS_H_
