#include "stress/catalogue.h"

#include <algorithm>

#include "base/failpoint.h"

namespace sigrace::stress {

std::vector<VariantEntry> Catalogue() {
  std::vector<VariantEntry> out;
  for (const signer::VariantInfo& v : signer::ListVariants()) {
    VariantEntry e;
    e.name = v.name;
    e.variant = v.variant;
    e.window = v.window != nullptr ? v.window : "";
    e.failpoint = v.failpoint != nullptr ? v.failpoint : "";
    e.path = v.path != nullptr && std::string(v.path) != "-" ? v.path : "";
    e.race = v.variant != signer::Variant::kFixed;
    out.push_back(e);
  }
  return out;
}

StatusOr<VariantEntry> FindVariant(const std::string& name) {
  std::string names;
  for (const VariantEntry& e : Catalogue()) {
    if (e.name == name) return e;
    names += (names.empty() ? "" : ", ") + e.name;
  }
  return InvalidArgumentError("unknown variant '" + name + "' (" + names +
                              ")");
}

namespace {

bool StartsWith(const std::string& s, const char* prefix) {
  return s.rfind(prefix, 0) == 0;
}

}  // namespace

FailpointChoice ChoiceFor(const std::string& name, const std::string& path) {
  FailpointChoice c;
  c.name = name;
  const bool on_rotator = path == "rotate" || path == "load" ||
                          (path.empty() && (StartsWith(name, "rotate.") ||
                                            StartsWith(name, "load.") ||
                                            StartsWith(name, "keygen.")));
  if (on_rotator) {
    c.thread = "rotator";
    // A rotation is rare next to a signature: fault at one of the first
    // two so the trial ends within one or two --rotate-every periods.
    c.max_hit = 2;
  } else {
    c.on_signer = true;
    c.max_hit = 16;
  }
  return c;
}

StatusOr<std::vector<FailpointChoice>> FailpointChoices(
    const StressOptions& opts, const VariantEntry& variant) {
  const std::vector<std::string> names = failpoint::ListNames();
  std::vector<FailpointChoice> out;
  if (!opts.failpoint.empty()) {
    if (std::find(names.begin(), names.end(), opts.failpoint) ==
        names.end()) {
      return InvalidArgumentError("unknown failpoint '" + opts.failpoint +
                                  "' (sigrace variants --failpoints lists "
                                  "them)");
    }
    std::string path;
    for (const VariantEntry& e : Catalogue()) {
      if (e.failpoint == opts.failpoint) path = e.path;
    }
    out.push_back(ChoiceFor(opts.failpoint, path));
  } else if (variant.race) {
    out.push_back(ChoiceFor(variant.failpoint, variant.path));
  } else {
    for (const std::string& n : names) {
      std::string path;
      for (const VariantEntry& e : Catalogue()) {
        if (e.failpoint == n) path = e.path;
      }
      if (!path.empty() || StartsWith(n, "sign.") ||
          StartsWith(n, "rotate.") || StartsWith(n, "load.") ||
          StartsWith(n, "keygen.")) {
        out.push_back(ChoiceFor(n, path));
      }
    }
    if (out.empty()) {
      return InternalError("no signing or rotation failpoint is defined");
    }
  }
  if (opts.rotate_every_ms == 0) {
    for (const FailpointChoice& c : out) {
      if (c.thread == "rotator" && out.size() == 1) {
        return InvalidArgumentError("failpoint '" + c.name +
                                    "' is on the rotation path; "
                                    "--rotate-every 0 never reaches it");
      }
    }
    std::erase_if(out,
                  [](const FailpointChoice& c) { return c.thread == "rotator"; });
  }
  return out;
}

StatusOr<PlanInputs> MakePlanInputs(const StressOptions& opts,
                                    const VariantEntry& variant) {
  PlanInputs in;
  in.seed = opts.seed;
  in.algs = opts.algs;
  in.injectors = opts.injectors;
  in.signer_threads = opts.threads;
  in.max_delay_us = opts.max_delay_us;
  if (std::find(opts.injectors.begin(), opts.injectors.end(),
                Injector::kFailpoint) != opts.injectors.end()) {
    StatusOr<std::vector<FailpointChoice>> fps =
        FailpointChoices(opts, variant);
    if (!fps.ok()) return fps.status();
    in.failpoints = *fps;
  }
  return in;
}

}  // namespace sigrace::stress
