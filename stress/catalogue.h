// The variant catalogue as the driver sees it: the signer's variants
// (signer::ListVariants) with the failpoint inside each window, and the
// failpoints the driver may fault at for a given run.
//
// Thread safety: values and pure functions. Not async-signal-safe.

#ifndef SIGRACE_STRESS_CATALOGUE_H_
#define SIGRACE_STRESS_CATALOGUE_H_

#include <string>
#include <vector>

#include "base/status.h"
#include "signer/signer.h"
#include "stress/options.h"
#include "stress/trial.h"

namespace sigrace::stress {

struct VariantEntry {
  std::string name;
  signer::Variant variant = signer::Variant::kFixed;
  std::string window;     // one line; "" for fixed
  std::string failpoint;  // the site inside the window; "" for fixed
  std::string path;       // "load", "rotate", "sign"
  std::string trigger;    // "rotate", "rotate-rs256", "sign-eddsa"
  uint32_t hit = 0;       // the failpoint's evaluation inside the window
  // Algorithms whose path opens the window ("rs256", "eddsa").
  std::vector<std::string> algs;
  bool race = false;
  // TSan reports the window as a data race (VariantInfo::data_race).
  bool data_race = false;
};

// `fixed` first, then every race variant.
std::vector<VariantEntry> Catalogue();
StatusOr<VariantEntry> FindVariant(const std::string& name);

// Which thread evaluates failpoint `name` during a run: signing sites run
// on "signer-<i>"; key generation, load and rotation sites on "rotator"
// (keys are made and loaded at Create() before any fault is armed, then
// only by Rotate()).
FailpointChoice ChoiceFor(const std::string& name, const std::string& path);
// The choice for a window's failpoint: its hit and algorithms too.
FailpointChoice WindowChoice(const VariantEntry& v);

// The sites a failpoint fault may land on in this run: --failpoint if
// given; else the race variant's window site; else (fixed) every signing,
// key-load and rotation site, the race windows' sites included.
StatusOr<std::vector<FailpointChoice>> FailpointChoices(
    const StressOptions& opts, const VariantEntry& variant);

// Everything PlanTrial needs (the driver plans; the worker executes).
//
// With `probe`, fixed's random sites are first probed: a throw-away signer
// (in this process, which is never dumped) signs and rotates once per
// algorithm with every site armed to count only, and a site joins an
// algorithm's list only if that algorithm's path evaluates it. A fault
// armed where no thread ever passes would end its trial without a verdict.
StatusOr<PlanInputs> MakePlanInputs(const StressOptions& opts,
                                    const VariantEntry& variant,
                                    bool probe = false);

}  // namespace sigrace::stress

#endif  // SIGRACE_STRESS_CATALOGUE_H_
