#include "stress/trial.h"

#include <algorithm>
#include <nlohmann/json.hpp>
#include <set>
#include <string>

namespace sigrace::stress {

const char* InjectorName(Injector injector) {
  switch (injector) {
    case Injector::kFailpoint:
      return "failpoint";
    case Injector::kAsync:
      return "async";
    case Injector::kUnrelated:
      return "unrelated";
    case Injector::kAlloc:
      return "alloc";
  }
  return "?";
}

StatusOr<Injector> ParseInjector(std::string_view name) {
  if (name == "failpoint") return Injector::kFailpoint;
  if (name == "async") return Injector::kAsync;
  if (name == "unrelated") return Injector::kUnrelated;
  if (name == "alloc") return Injector::kAlloc;
  return InvalidArgumentError("unknown injector '" + std::string(name) +
                              "' (failpoint, async, unrelated, alloc)");
}

const char* ExploreName(Explore explore) {
  return explore == Explore::kRandom ? "random" : "systematic";
}

StatusOr<Explore> ParseExplore(std::string_view name) {
  if (name == "random") return Explore::kRandom;
  if (name == "systematic") return Explore::kSystematic;
  return InvalidArgumentError("unknown --explore '" + std::string(name) +
                              "' (random, systematic)");
}

uint64_t SystematicTotal(const PlanInputs& in) {
  uint64_t total = 0;
  for (const OpInstants& o : in.census) {
    total += std::min(o.seen, in.max_instants);
  }
  return total;
}

StatusOr<std::vector<Injector>> ParseInjectorList(std::string_view list) {
  std::vector<Injector> out;
  std::set<Injector> seen;
  std::string_view rest = list;
  while (true) {
    const size_t comma = rest.find(',');
    const std::string_view one = rest.substr(0, comma);
    StatusOr<Injector> inj = ParseInjector(one);
    if (!inj.ok()) return inj.status();
    if (!seen.insert(*inj).second) {
      return InvalidArgumentError("injector '" + std::string(one) +
                                  "' given twice");
    }
    out.push_back(*inj);
    if (comma == std::string_view::npos) break;
    rest = rest.substr(comma + 1);
  }
  return out;
}

std::string InjectorListString(const std::vector<Injector>& injectors) {
  std::string s;
  for (Injector i : injectors) {
    if (!s.empty()) s += ',';
    s += InjectorName(i);
  }
  return s;
}

const char* ModeName(Mode mode) {
  return mode == Mode::kLive ? "live" : "fatal";
}

StatusOr<Mode> ParseMode(std::string_view name) {
  if (name == "live") return Mode::kLive;
  if (name == "fatal") return Mode::kFatal;
  return InvalidArgumentError("unknown mode '" + std::string(name) +
                              "' (live, fatal)");
}

std::string TrialPlan::FailpointSpec(const char* action) const {
  std::string spec = failpoint + "=" + action + "@" + std::to_string(hit);
  if (!thread.empty()) spec += "#" + thread;
  return spec;
}

std::string TrialPlan::Describe() const {
  std::string s = "seed " + std::to_string(seed) + " trial " +
                  std::to_string(trial) + " alg " + alg + " injector " +
                  InjectorName(injector);
  if (injector == Injector::kFailpoint) {
    s += " failpoint " + failpoint + "@" + std::to_string(hit);
    if (!thread.empty()) s += "#" + thread;
  } else if (injector == Injector::kAlloc) {
    s += " op " + op + (pinned ? " heap instant " : " instant ") +
         std::to_string(instant) + "#" + thread;
  } else {
    if (injector == Injector::kAsync) s += " target " + thread;
    s += " delay " + std::to_string(delay_us) + "us";
  }
  if (widen_us != 0) s += " widen " + std::to_string(widen_us) + "us";
  return s;
}

TrialPlan PlanTrial(const PlanInputs& in, uint64_t trial) {
  TrialPlan p;
  p.seed = in.seed;
  p.trial = trial;
  // Each field from its own stream (see the header): the order of these
  // draws does not matter, and must not.
  p.alg = in.algs[TrialRng(in.seed, trial, Field::kAlg).Below(in.algs.size())];
  p.injector = in.injectors[TrialRng(in.seed, trial, Field::kInjector)
                                .Below(in.injectors.size())];
  const uint32_t threads = in.signer_threads == 0 ? 1 : in.signer_threads;
  p.target_signer = static_cast<uint32_t>(
      TrialRng(in.seed, trial, Field::kThread).Below(threads));
  p.delay_us = static_cast<uint32_t>(
      TrialRng(in.seed, trial, Field::kDelay).Below(in.max_delay_us + 1));
  p.claims_seed = TrialRng(in.seed, trial, Field::kClaims).Next();
  if (in.widen_us != 0 && p.injector != Injector::kFailpoint) {
    p.widen_us = in.widen_us;
    p.widen_seed = TrialRng(in.seed, trial, Field::kWiden).Next();
  }
  if (p.injector == Injector::kAsync) {
    const uint64_t i = TrialRng(in.seed, trial, Field::kAsyncThread)
                           .Below(threads + (in.rotator ? 1 : 0));
    if (i < threads) {
      p.target_signer = static_cast<uint32_t>(i);
      p.thread = "signer-" + std::to_string(i);
    } else {
      p.thread = "rotator";
    }
  }
  const uint64_t total =
      in.explore == Explore::kSystematic ? SystematicTotal(in) : 0;
  if (total > 0) {
    // Every instant once, in census order, then round again.
    uint64_t k = trial % total;
    p.injector = Injector::kAlloc;
    p.widen_us = 0;
    for (const OpInstants& o : in.census) {
      const uint64_t n = std::min(o.seen, in.max_instants);
      if (k < n) {
        p.alg = o.alg;
        p.op = o.op;
        p.instant = static_cast<uint32_t>(k + 1);
        break;
      }
      k -= n;
    }
  } else if (p.injector == Injector::kAlloc) {
    const bool rotate =
        in.rotator && TrialRng(in.seed, trial, Field::kOp).Below(2) == 1;
    p.op = rotate ? "rotate" : "sign";
    uint32_t bound = in.max_instants == 0 ? 1 : in.max_instants;
    for (const OpInstants& o : in.census) {
      if (o.alg == p.alg && o.op == p.op && o.seen > 0) {
        bound = std::min(bound, o.seen);
      }
    }
    p.instant = static_cast<uint32_t>(
        TrialRng(in.seed, trial, Field::kInstant).Between(1, bound));
  }
  if (p.injector == Injector::kAlloc) {
    p.thread = p.op == "rotate" ? "rotator"
                                : "signer-" + std::to_string(p.target_signer);
  }
  // Only the sites the trial's algorithm reaches.
  std::vector<const FailpointChoice*> sites;
  for (const FailpointChoice& fp : in.failpoints) {
    if (fp.algs.empty() ||
        std::find(fp.algs.begin(), fp.algs.end(), p.alg) != fp.algs.end()) {
      sites.push_back(&fp);
    }
  }
  if (p.injector == Injector::kFailpoint && in.rotation_share >= 0) {
    std::vector<const FailpointChoice*> rotation, signing;
    for (const FailpointChoice* fp : sites) {
      (fp->on_signer ? signing : rotation).push_back(fp);
    }
    // 53 random bits -> [0, 1): the share is met to within 2^-53.
    const double u = static_cast<double>(
                         TrialRng(in.seed, trial, Field::kPath).Next() >> 11) *
                     0x1.0p-53;
    const bool on_rotation = u < in.rotation_share;
    std::vector<const FailpointChoice*>& group =
        on_rotation ? rotation : signing;
    if (!group.empty()) sites = group;
  }
  if (p.injector == Injector::kFailpoint && !sites.empty()) {
    const FailpointChoice& fp =
        *sites[TrialRng(in.seed, trial, Field::kFailpoint).Below(sites.size())];
    p.failpoint = fp.name;
    p.per_signature = fp.per_signature;
    p.hit = fp.fixed_hit != 0
                ? fp.fixed_hit
                : static_cast<uint32_t>(
                      TrialRng(in.seed, trial, Field::kHit)
                          .Between(1, fp.max_hit == 0 ? 1 : fp.max_hit));
    p.thread =
        fp.on_signer ? "signer-" + std::to_string(p.target_signer) : fp.thread;
  }
  return p;
}

void PinPlan(const std::string& thread, uint32_t instant, TrialPlan* p) {
  p->injector = Injector::kAlloc;
  p->thread = thread;
  p->op = thread == "rotator" ? "rotate" : "sign";
  if (thread.rfind("signer-", 0) == 0) {
    p->target_signer =
        static_cast<uint32_t>(std::stoul(thread.substr(sizeof("signer-") - 1)));
  }
  p->instant = instant;
  p->failpoint.clear();
  p->hit = 0;
  p->per_signature = false;
  p->delay_us = 0;
  p->widen_us = 0;
  p->pinned = true;
}

std::string PlanToJson(const TrialPlan& p) {
  return nlohmann::json{{"seed", p.seed},
                        {"trial", p.trial},
                        {"alg", p.alg},
                        {"injector", InjectorName(p.injector)},
                        {"failpoint", p.failpoint},
                        {"hit", p.hit},
                        {"thread", p.thread},
                        {"per_signature", p.per_signature},
                        {"target_signer", p.target_signer},
                        {"delay_us", p.delay_us},
                        {"claims_seed", p.claims_seed},
                        {"op", p.op},
                        {"instant", p.instant},
                        {"widen_us", p.widen_us},
                        {"widen_seed", p.widen_seed},
                        {"pinned", p.pinned}}
      .dump();
}

StatusOr<TrialPlan> PlanFromJson(std::string_view json) {
  const nlohmann::json j = nlohmann::json::parse(json, nullptr, false);
  if (!j.is_object()) return InvalidArgumentError("malformed trial plan");
  try {
    TrialPlan p;
    p.seed = j.at("seed").get<uint64_t>();
    p.trial = j.at("trial").get<uint64_t>();
    p.alg = j.at("alg").get<std::string>();
    StatusOr<Injector> inj = ParseInjector(j.at("injector").get<std::string>());
    if (!inj.ok()) return inj.status();
    p.injector = *inj;
    p.failpoint = j.at("failpoint").get<std::string>();
    p.hit = j.at("hit").get<uint32_t>();
    p.thread = j.at("thread").get<std::string>();
    p.per_signature = j.at("per_signature").get<bool>();
    p.target_signer = j.at("target_signer").get<uint32_t>();
    p.delay_us = j.at("delay_us").get<uint32_t>();
    p.claims_seed = j.at("claims_seed").get<uint64_t>();
    p.op = j.at("op").get<std::string>();
    p.instant = j.at("instant").get<uint32_t>();
    p.widen_us = j.at("widen_us").get<uint32_t>();
    p.widen_seed = j.at("widen_seed").get<uint64_t>();
    p.pinned = j.at("pinned").get<bool>();
    return p;
  } catch (const nlohmann::json::exception&) {
    return InvalidArgumentError("malformed trial plan");
  }
}

}  // namespace sigrace::stress
