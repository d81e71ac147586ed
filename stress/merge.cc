#include "stress/merge.h"

#include <algorithm>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "stress/history.h"
#include "stress/options.h"

namespace sigrace::stress {

uint64_t JsonUint(const nlohmann::json& j, const char* key) {
  return j.is_object() && j.contains(key) && j[key].is_number_unsigned()
             ? j[key].get<uint64_t>()
             : 0;
}

double JsonDouble(const nlohmann::json& j, const char* key) {
  return j.is_object() && j.contains(key) && j[key].is_number()
             ? j[key].get<double>()
             : 0;
}

namespace {

using nlohmann::json;

// The first key (dotted) where a and b differ, or "".
std::string FirstDifference(const json& a, const json& b,
                            const std::string& prefix) {
  if (a.is_object() && b.is_object()) {
    std::set<std::string> keys;
    for (auto it = a.begin(); it != a.end(); ++it) keys.insert(it.key());
    for (auto it = b.begin(); it != b.end(); ++it) keys.insert(it.key());
    for (const std::string& k : keys) {
      const json na = a.contains(k) ? a[k] : json();
      const json nb = b.contains(k) ? b[k] : json();
      const std::string d =
          FirstDifference(na, nb, prefix.empty() ? k : prefix + "." + k);
      if (!d.empty()) return d;
    }
    return "";
  }
  return a == b ? "" : (prefix.empty() ? "(whole)" : prefix);
}

std::string Short(const json& v) {
  std::string s = v.dump();
  if (s.size() > 40) s = s.substr(0, 37) + "...";
  return s;
}

uint64_t U(const json& j, const char* key) { return JsonUint(j, key); }
double D(const json& j, const char* key) { return JsonDouble(j, key); }

// Non-const: a missing key reads as null (operator[] inserts it).
Status CheckOne(ShardReport& s, const std::string& schema,
                const std::vector<const char*>& keys) {
  json& r = s.report;
  if (!r.is_object() || r.value("schema", "") != schema) {
    const std::string kind = schema == kStressSchema ? "stress" : "repro";
    return InvalidArgumentError(s.path + ": not a sigrace " + kind +
                                " report (schema " + schema + ")");
  }
  for (const char* k : keys) {
    if (!r.contains(k)) {
      return InvalidArgumentError(s.path + ": report has no \"" +
                                  std::string(k) +
                                  "\" (written by an older sigrace?)");
    }
  }
  json& sh = r["shard"];
  if (!sh.is_object() || !sh["index"].is_number_unsigned() ||
      !sh["count"].is_number_unsigned() || sh["count"].get<uint64_t>() == 0 ||
      sh["index"].get<uint64_t>() >= sh["count"].get<uint64_t>()) {
    return InvalidArgumentError(
        s.path +
        ": \"shard\" is not {index, count} (a merged report is not "
        "merged again)");
  }
  return Status::Ok();
}

}  // namespace

Status CheckShardSet(std::vector<ShardReport>& shards,
                     const std::string& schema,
                     const std::vector<const char*>& keys) {
  if (shards.empty()) return InvalidArgumentError("no report to merge");
  for (ShardReport& s : shards) {
    SIGRACE_RETURN_IF_ERROR(CheckOne(s, schema, keys));
  }
  ShardReport& first = shards[0];
  for (size_t i = 1; i < shards.size(); ++i) {
    ShardReport& s = shards[i];
    for (const char* k : {"build", "seed"}) {
      if (s.report[k] != first.report[k]) {
        return InvalidArgumentError(
            std::string("different ") + (k[0] == 'b' ? "builds" : "seeds") +
            ": " + first.path + " has " + Short(first.report[k]) + ", " +
            s.path + " has " + Short(s.report[k]));
      }
    }
    const std::string d =
        FirstDifference(first.report["options"], s.report["options"], "");
    if (!d.empty()) {
      return InvalidArgumentError("different options: " + first.path + " and " +
                                  s.path + " differ in " + d);
    }
    if (s.report["shard"]["count"] != first.report["shard"]["count"]) {
      return InvalidArgumentError(
          "different shard counts: " + first.path + " is of " +
          Short(first.report["shard"]["count"]) + ", " + s.path + " of " +
          Short(s.report["shard"]["count"]));
    }
  }
  const uint64_t n = first.report["shard"]["count"].get<uint64_t>();
  std::map<uint64_t, std::string> seen;
  for (const ShardReport& s : shards) {
    const uint64_t i = s.report["shard"]["index"].get<uint64_t>();
    auto [it, fresh] = seen.emplace(i, s.path);
    if (!fresh) {
      return InvalidArgumentError(
          "shard " + std::to_string(i) + "/" + std::to_string(n) +
          " given twice: " + it->second + " and " + s.path);
    }
  }
  std::string missing;
  for (uint64_t i = 0; i < n; ++i) {
    if (seen.count(i) == 0) {
      if (!missing.empty()) missing += ",";
      missing += std::to_string(i);
    }
  }
  if (!missing.empty()) {
    return InvalidArgumentError("missing shard(s) " + missing + " of " +
                                std::to_string(n) + " (have " +
                                std::to_string(seen.size()) + ")");
  }
  return Status::Ok();
}

namespace {

// The options RunReport::Finish reads.
StressOptions FinishOptions(const json& o) {
  StressOptions so;
  so.variant = o.value("variant", "");
  so.algs = o.value("algs", std::vector<std::string>{});
  so.expect =
      o.value("expect", "clean") == "leak" ? Expect::kLeak : Expect::kClean;
  if (o.contains("trial") && o["trial"].is_number_unsigned()) {
    so.trial = o["trial"].get<uint64_t>();
  }
  so.mode = o.value("mode", "live") == "fatal" ? Mode::kFatal : Mode::kLive;
  return so;
}

json SortedByTrial(std::vector<json> v, size_t cap) {
  std::stable_sort(v.begin(), v.end(), [](const json& a, const json& b) {
    return U(a, "trial") < U(b, "trial");
  });
  if (v.size() > cap) v.resize(cap);
  return json(v);
}

}  // namespace

void SetStartAndWall(const std::vector<ShardReport>& shards, json* out) {
  std::optional<double> first, last;
  for (const ShardReport& s : shards) {
    const json& r = s.report;
    if (!r.contains("start_time") || !r["start_time"].is_string()) continue;
    const std::optional<double> t =
        ParseIsoUtc(r["start_time"].get<std::string>());
    if (!t) continue;
    const double end = *t + D(r, "wall_s");
    first = first ? std::min(*first, *t) : *t;
    last = last ? std::max(*last, end) : end;
  }
  (*out)["start_time"] = first ? json(IsoUtc(*first)) : json(nullptr);
  (*out)["wall_s"] = first ? *last - *first : 0.0;
}

StatusOr<json> MergeReports(const std::vector<ShardReport>& input,
                            const std::string& command) {
  std::vector<ShardReport> shards = input;
  SIGRACE_RETURN_IF_ERROR(
      CheckShardSet(shards, kStressSchema,
                    {"shard", "options", "build", "seed", "totals", "cells",
                     "leaks", "harness_errors", "tsan"}));
  for (ShardReport& s : shards) {
    json& r = s.report;
    if (!r["cells"].is_array() || !r["leaks"].is_array() ||
        !r["harness_errors"].is_array() || !r["totals"].is_object()) {
      return InvalidArgumentError(s.path + ": malformed report");
    }
  }

  std::vector<ShardReport*> order;
  for (ShardReport& s : shards) order.push_back(&s);
  std::sort(order.begin(), order.end(), [](ShardReport* a, ShardReport* b) {
    return a->report["shard"]["index"].get<uint64_t>() <
           b->report["shard"]["index"].get<uint64_t>();
  });
  json& first = order[0]->report;

  json out = first;  // run-level fields: seed, variant, options, window, ...
  out["command"] = command;
  out["shard"] = {{"index", nullptr},
                  {"count", first["shard"]["count"]},
                  {"source", "merge"}};
  out["first_trial"] = 0;
  SetStartAndWall(shards, &out);

  // Totals: every count summed (derive_s too).
  json totals = json::object();
  double elapsed = 0, rate = 0;
  json shard_list = json::array();
  std::vector<json> leaks, errors;
  json tsan = {{"enabled", false}, {"total", 0}, {"by_type", json::object()}};
  uint64_t visited = 0, seen = 0;
  // Cells keyed by variant/alg/mode, in first-seen order.
  std::vector<std::string> cell_order;
  std::map<std::string, json> cells;
  for (ShardReport* s : order) {
    json& r = s->report;
    for (auto it = r["totals"].begin(); it != r["totals"].end(); ++it) {
      if (!it->is_number()) continue;
      if (it->is_number_unsigned()) {
        totals[it.key()] = U(totals, it.key().c_str()) + it->get<uint64_t>();
      } else {
        totals[it.key()] = D(totals, it.key().c_str()) + it->get<double>();
      }
    }
    elapsed = std::max(elapsed, D(r, "elapsed_s"));
    rate += D(r, "trials_per_s");
    shard_list.push_back({{"index", r["shard"]["index"]},
                          {"report", s->path},
                          {"command", r.value("command", "")},
                          {"source", r["shard"].value("source", "")},
                          {"elapsed_s", D(r, "elapsed_s")},
                          {"trials", U(r["totals"], "trials")},
                          {"exit_code", r.value("exit_code", 2)}});
    for (const json& l : r["leaks"]) leaks.push_back(l);
    for (const json& e : r["harness_errors"]) errors.push_back(e);
    json& t = r["tsan"];
    if (t.is_object()) {
      tsan["enabled"] =
          tsan["enabled"].get<bool>() || t.value("enabled", false);
      tsan["total"] = U(tsan, "total") + U(t, "total");
      if (t.contains("by_type") && t["by_type"].is_object()) {
        for (auto it = t["by_type"].begin(); it != t["by_type"].end(); ++it) {
          tsan["by_type"][it.key()] =
              U(tsan["by_type"], it.key().c_str()) +
              (it->is_number_unsigned() ? it->get<uint64_t>() : 0);
        }
      }
    }
    if (r.contains("explore") && r["explore"].is_object()) {
      visited += U(r["explore"], "instants_visited");
      seen = U(r["explore"], "instants_seen");
    }
    for (json& c : r["cells"]) {
      const std::string key = c.value("variant", "") + "/" +
                              c.value("alg", "") + "/" + c.value("mode", "");
      auto it = cells.find(key);
      if (it == cells.end()) {
        cell_order.push_back(key);
        cells[key] = c;
        continue;
      }
      json& m = it->second;
      for (const char* k : {"trials", "clean", "leaks", "harness_errors"}) {
        m[k] = U(m, k) + U(c, k);
      }
      if (c["first_leak"].is_object() &&
          (!m["first_leak"].is_object() ||
           U(c["first_leak"], "trial") < U(m["first_leak"], "trial"))) {
        m["first_leak"] = c["first_leak"];
      }
    }
  }
  out["totals"] = totals;
  out["elapsed_s"] = elapsed;
  out["trials_per_s"] = rate;
  out["shards"] = shard_list;
  out["leaks"] = SortedByTrial(leaks, 100);
  out["harness_errors"] = SortedByTrial(errors, 20);
  out["tsan"] = tsan;
  if (out.contains("explore") && out["explore"].is_object()) {
    out["explore"]["instants_visited"] = std::min(visited, seen);
  }

  // The verdict, by the rules of an unsharded run.
  RunReport rr;
  rr.options = FinishOptions(first["options"]);
  rr.trials = U(totals, "trials");
  rr.leaks = U(totals, "leak");
  rr.harness_errors = U(totals, "harness_error");
  rr.tsan.enabled = tsan["enabled"].get<bool>();
  rr.tsan.total = U(tsan, "total");
  for (const std::string& key : cell_order) {
    const json& c = cells[key];
    CellStats cs;
    cs.variant = c.value("variant", "");
    cs.alg = c.value("alg", "");
    cs.mode = c.value("mode", "");
    cs.trials = U(c, "trials");
    cs.clean = U(c, "clean");
    cs.leaks = U(c, "leaks");
    cs.harness_errors = U(c, "harness_errors");
    rr.cells.push_back(cs);
  }
  rr.Finish();
  json cells_out = json::array();
  for (const CellStats& cs : rr.cells) {
    const std::string key = cs.variant + "/" + cs.alg + "/" + cs.mode;
    json c = cells.count(key) ? cells[key] : json{{"variant", cs.variant},
                                                  {"alg", cs.alg},
                                                  {"mode", cs.mode},
                                                  {"trials", 0},
                                                  {"clean", 0},
                                                  {"leaks", 0},
                                                  {"harness_errors", 0},
                                                  {"first_leak", nullptr}};
    c["verdict"] = cs.verdict;
    cells_out.push_back(c);
  }
  out["cells"] = cells_out;
  out["exit_code"] = rr.exit_code;
  out["verdict"] =
      rr.verdict + " (merged from " + std::to_string(order.size()) + " shards)";
  return out;
}

std::vector<JUnitCase> MergedJUnitCases(const json& merged_in) {
  json merged = merged_in;  // a missing key reads as null
  std::vector<JUnitCase> out;
  const double elapsed = D(merged, "elapsed_s");
  const uint64_t trials = U(merged["totals"], "trials");
  for (json& c : merged["cells"]) {
    JUnitCase jc;
    const std::string variant = c.value("variant", "");
    jc.classname = "sigrace.stress." + variant;
    jc.name = variant + "/" + c.value("alg", "") + "/" + c.value("mode", "");
    jc.time_s = trials > 0 ? elapsed * static_cast<double>(U(c, "trials")) /
                                 static_cast<double>(trials)
                           : 0;
    const std::string v = c.value("verdict", "error");
    const std::string counts = std::to_string(U(c, "leaks")) + " leaking of " +
                               std::to_string(U(c, "trials")) +
                               " trials, seed " +
                               std::to_string(U(merged, "seed"));
    if (v == "fail") {
      jc.failure = c["first_leak"].is_object()
                       ? "leak at trial " +
                             std::to_string(U(c["first_leak"], "trial")) +
                             " (" + counts +
                             "); replay: " + c["first_leak"].value("replay", "")
                       : "no leak (" + counts + "), expected a leak";
    } else if (v == "error") {
      jc.error = std::to_string(U(c, "harness_errors")) +
                 " trial(s) without a verdict (" + counts + ")";
    }
    jc.system_out = counts;
    out.push_back(jc);
  }
  return out;
}

}  // namespace sigrace::stress
