#include "stress/catalogue.h"

#include <algorithm>

#include "base/failpoint.h"
#include "signer/signer.h"
#include "stress/explore.h"

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
    e.trigger = v.trigger != nullptr ? v.trigger : "";
    e.hit = v.hit > 0 ? static_cast<uint32_t>(v.hit) : 0;
    e.data_race = v.data_race;
    if (e.trigger == "rotate-rs256") {
      e.algs = {"rs256"};
    } else if (e.trigger == "sign-eddsa") {
      e.algs = {"eddsa"};
    } else {
      e.algs = {"rs256", "eddsa"};
    }
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
  return InvalidArgumentError("unknown variant '" + name + "' (" + names + ")");
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

FailpointChoice WindowChoice(const VariantEntry& v) {
  FailpointChoice c = ChoiceFor(v.failpoint, v.path);
  c.fixed_hit = v.hit;
  c.max_hit = v.hit;
  c.algs = v.algs;
  // A signing window's hit counts evaluations inside one signature.
  c.per_signature = c.on_signer && v.hit > 1;
  return c;
}

StatusOr<std::vector<FailpointChoice>> FailpointChoices(
    const StressOptions& opts, const VariantEntry& variant) {
  const std::vector<std::string> names = failpoint::ListNames();
  std::vector<FailpointChoice> out;
  if (!opts.failpoint.empty()) {
    if (std::find(names.begin(), names.end(), opts.failpoint) == names.end()) {
      return InvalidArgumentError("unknown failpoint '" + opts.failpoint +
                                  "' (sigrace variants --failpoints lists "
                                  "them)");
    }
    bool window = false;
    for (const VariantEntry& e : Catalogue()) {
      if (e.race && e.failpoint == opts.failpoint) {
        out.push_back(WindowChoice(e));
        window = true;
      }
    }
    if (!window) out.push_back(ChoiceFor(opts.failpoint, ""));
  } else if (variant.race) {
    out.push_back(WindowChoice(variant));
  } else {
    // fixed: every window's site at its window hit (the same instants the
    // race variants leak at), and every other signing, key-generation,
    // load and rotation site at a random hit.
    for (const std::string& n : names) {
      bool window = false;
      for (const VariantEntry& e : Catalogue()) {
        if (e.race && e.failpoint == n) {
          out.push_back(WindowChoice(e));
          window = true;
        }
      }
      if (!window && (StartsWith(n, "sign.") || StartsWith(n, "rotate.") ||
                      StartsWith(n, "load.") || StartsWith(n, "keygen."))) {
        out.push_back(ChoiceFor(n, ""));
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
    std::erase_if(
        out, [](const FailpointChoice& c) { return c.thread == "rotator"; });
  }
  return out;
}

namespace {

Status ProbeSites(const std::vector<std::string>& algs,
                  std::vector<FailpointChoice>* sites) {
  std::vector<signer::Alg> parsed;
  for (const std::string& a : algs) {
    StatusOr<signer::Alg> alg = signer::ParseAlg(a);
    if (!alg.ok()) return alg.status();
    parsed.push_back(*alg);
  }
  signer::SignerOptions so;
  so.algs = parsed;
  StatusOr<std::unique_ptr<signer::Signer>> s = signer::Signer::Create(so);
  if (!s.ok()) return s.status();
  std::vector<std::vector<std::string>> reached(sites->size());
  for (size_t a = 0; a < parsed.size(); ++a) {
    // `callback` with no callback set counts evaluations and does nothing.
    std::string specs;
    for (const FailpointChoice& c : *sites) {
      specs += (specs.empty() ? "" : ";") + c.name + "=callback";
    }
    SIGRACE_RETURN_IF_ERROR(failpoint::Configure(specs));
    for (int i = 0; i < 2; ++i) {
      StatusOr<std::string> t = (*s)->Sign(parsed[a], signer::Claims{});
      if (!t.ok()) {
        failpoint::ClearAll();
        return t.status();
      }
    }
    Status rs = (*s)->Rotate(parsed[a]);
    if (!rs.ok()) {
      failpoint::ClearAll();
      return rs;
    }
    for (size_t i = 0; i < sites->size(); ++i) {
      if (failpoint::Hits((*sites)[i].name) > 0) reached[i].push_back(algs[a]);
    }
    failpoint::ClearAll();
  }
  std::vector<FailpointChoice> kept;
  for (size_t i = 0; i < sites->size(); ++i) {
    FailpointChoice c = (*sites)[i];
    std::vector<std::string> both;
    for (const std::string& a : reached[i]) {
      if (c.algs.empty() ||
          std::find(c.algs.begin(), c.algs.end(), a) != c.algs.end()) {
        both.push_back(a);
      }
    }
    if (both.empty()) continue;
    c.algs = both;
    kept.push_back(c);
  }
  *sites = kept;
  return Status::Ok();
}

}  // namespace

StatusOr<PlanInputs> MakePlanInputs(const StressOptions& opts,
                                    const VariantEntry& variant, bool probe) {
  PlanInputs in;
  in.seed = opts.seed;
  in.algs = opts.algs;
  in.injectors = opts.injectors;
  in.signer_threads = opts.threads;
  in.max_delay_us = opts.max_delay_us;
  in.rotation_share = opts.rotation_share;
  in.rotator = opts.rotate_every_ms > 0;
  in.explore = opts.explore;
  in.max_instants = opts.max_instants;
  in.widen_us = opts.widen_us;
  const bool alloc = std::find(opts.injectors.begin(), opts.injectors.end(),
                               Injector::kAlloc) != opts.injectors.end();
  if (probe && (alloc || opts.explore == Explore::kSystematic)) {
    StatusOr<std::vector<OpInstants>> census =
        CensusInstants(opts.algs, in.rotator, opts.key_pool);
    if (!census.ok()) return census.status();
    in.census = *census;
  }
  if (std::find(opts.injectors.begin(), opts.injectors.end(),
                Injector::kFailpoint) != opts.injectors.end()) {
    StatusOr<std::vector<FailpointChoice>> fps =
        FailpointChoices(opts, variant);
    if (!fps.ok()) return fps.status();
    in.failpoints = *fps;
    if (opts.injectors.size() == 1) {
      // Failpoint faults only: every algorithm of the run needs a site.
      for (const std::string& alg : opts.algs) {
        bool any = false;
        for (const FailpointChoice& c : in.failpoints) {
          if (c.algs.empty() ||
              std::find(c.algs.begin(), c.algs.end(), alg) != c.algs.end()) {
            any = true;
          }
        }
        if (!any) {
          return InvalidArgumentError("no failpoint of this run is on the " +
                                      alg + " path (choose --alg accordingly)");
        }
      }
    }
    if (probe && !variant.race && opts.failpoint.empty()) {
      SIGRACE_RETURN_IF_ERROR(ProbeSites(opts.algs, &in.failpoints));
      if (in.failpoints.empty()) {
        return InternalError(
            "no failpoint is reachable on the signing or "
            "rotation path");
      }
    }
  }
  return in;
}

}  // namespace sigrace::stress
