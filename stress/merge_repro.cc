#include "stress/merge_repro.h"

#include <algorithm>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "stress/repro_report.h"

namespace sigrace::stress {
namespace {

using nlohmann::json;

uint64_t U(const json& j, const char* key) { return JsonUint(j, key); }
double D(const json& j, const char* key) { return JsonDouble(j, key); }

std::string S(const json& j, const char* key) {
  return j.is_object() && j.contains(key) && j[key].is_string()
             ? j[key].get<std::string>()
             : "";
}

std::string RowKey(const json& row) {
  return S(row, "variant") + " " + S(row, "alg") + " " + S(row, "mode");
}

// One row of a shard's report as repro judged it.
ReproRow RowFromJson(const json& j) {
  ReproRow r;
  r.spec.variant = S(j, "variant");
  r.spec.alg = S(j, "alg");
  r.spec.mode = S(j, "mode");
  r.spec.window = S(j, "window");
  r.spec.race = j.value("race", false);
  r.trials = U(j, "trials");
  r.leaks = U(j, "leaks");
  r.errors = U(j, "harness_errors");
  r.first_leak = j.value("first_leak", json());
  r.tsan = j.value("tsan", json());
  r.tsan_text = j.contains("tsan_text") ? S(j, "tsan_text") : "-";
  r.verdict = S(j, "verdict");
  r.spec.na = r.verdict == "n/a";
  r.note = S(j, "note");
  r.command = S(j, "command");
  r.seconds = D(j, "seconds");
  const std::string outcome = S(j, "outcome");
  r.failed = outcome == "failed";
  r.error = outcome == "error";
  r.ok = outcome == "ok";
  return r;
}

// Whole rows: race rows, egress rows and n/a rows run whole in every
// shard (tools/repro.cc).
bool RunsWhole(const ReproRow& r) {
  return r.spec.race || r.spec.na || r.spec.variant.rfind("gate/", 0) == 0;
}

// 2 failed, 1 error, 0 ok: the order RunExitCode weighs them in.
int Worst(const ReproRow& r) { return r.failed ? 2 : r.error ? 1 : 0; }

ReproRow MergeWhole(const std::vector<ReproRow>& parts,
                    const std::vector<uint64_t>& index) {
  size_t pick = 0;
  bool agree = true;
  for (size_t i = 1; i < parts.size(); ++i) {
    agree = agree && parts[i].verdict == parts[0].verdict &&
            Worst(parts[i]) == Worst(parts[0]);
    if (Worst(parts[i]) > Worst(parts[pick])) pick = i;
  }
  ReproRow r = parts[pick];
  if (!agree) {
    std::string who;
    for (size_t i = 0; i < parts.size(); ++i) {
      who += (i ? ", " : "") + std::string("shard ") +
             std::to_string(index[i]) + " " + parts[i].verdict;
    }
    r.note +=
        "the shards disagree on this row (each ran it whole): " + who + "\n";
  }
  return r;
}

// Every line of `note` prefixed "shard I: ", but a shard's own shortage
// line (the merged count replaces it).
std::string ShardNotes(const std::string& note, uint64_t index) {
  std::string out, line;
  for (size_t at = 0; at < note.size();) {
    size_t nl = note.find('\n', at);
    if (nl == std::string::npos) nl = note.size();
    line = note.substr(at, nl - at);
    at = nl + 1;
    if (line.empty()) continue;
    if (line.find(" trials within the budget") != std::string::npos &&
        line.rfind("tsan build:", 0) != 0) {
      continue;
    }
    out += "shard " + std::to_string(index) + ": " + line + "\n";
  }
  return out;
}

// The summed TSan counts of the parts, and whether one part had a TSan
// job that wrote no report.
json SumTsan(const std::vector<ReproRow>& parts, bool* tsan_error) {
  json t;
  for (const ReproRow& p : parts) {
    if (p.tsan_text == "error") *tsan_error = true;
    if (!p.tsan.is_object()) continue;
    if (!t.is_object()) {
      t = {{"enabled", p.tsan.value("enabled", false)},
           {"total", 0},
           {"by_type", json::object()},
           {"trials", 0},
           {"leaks", 0}};
    }
    for (const char* k : {"total", "trials", "leaks"}) {
      t[k] = U(t, k) + U(p.tsan, k);
    }
    if (p.tsan.contains("by_type") && p.tsan["by_type"].is_object()) {
      for (auto it = p.tsan["by_type"].begin(); it != p.tsan["by_type"].end();
           ++it) {
        t["by_type"][it.key()] =
            U(t["by_type"], it.key().c_str()) +
            (it->is_number_unsigned() ? it->get<uint64_t>() : 0);
      }
    }
  }
  return t;
}

// fixed's row: the parts summed and judged against the whole run's
// minimums (repro_verdict.cc JudgeFixed, JudgeFixedTsan).
ReproRow MergeFixed(const std::vector<ReproRow>& parts,
                    const std::vector<uint64_t>& index,
                    const VerdictLimits& limits) {
  ReproRow r;
  r.spec = parts[0].spec;
  r.command = parts[0].command;
  bool part_error = false;
  std::string shard_notes;
  for (size_t i = 0; i < parts.size(); ++i) {
    const ReproRow& p = parts[i];
    r.trials += p.trials;
    r.leaks += p.leaks;
    r.errors += p.errors;
    r.seconds = std::max(r.seconds, p.seconds);
    if (p.first_leak.is_object() &&
        (!r.first_leak.is_object() ||
         U(p.first_leak, "trial") < U(r.first_leak, "trial"))) {
      r.first_leak = p.first_leak;
    }
    // The main part's verdict ("ERROR" with or without TSan suffixes).
    part_error = part_error || p.verdict.rfind("ERROR", 0) == 0;
    shard_notes += ShardNotes(p.note, index[i]);
  }
  const uint64_t min =
      r.spec.mode == "live" ? limits.min_live : limits.min_fatal;
  if (part_error) {
    r.verdict = "ERROR";
    r.error = true;
  } else if (r.leaks > 0) {
    r.verdict = "LEAK";
    r.failed = true;
  } else if (r.trials >= min) {
    r.verdict = "clean";
    r.ok = true;
  } else {
    r.verdict = "SHORT";
    r.note = std::to_string(r.trials) + " of " + std::to_string(min) +
             " trials within the budget (all shards)\n";
    r.failed = true;
  }
  bool tsan_error = false;
  r.tsan = SumTsan(parts, &tsan_error);
  if (tsan_error) {
    r.tsan_text = "error";
    r.ok = false;
    r.error = true;
  } else if (r.tsan.is_object()) {
    const uint64_t n = U(r.tsan, "total"), tr = U(r.tsan, "trials"),
                   leaks = U(r.tsan, "leaks");
    r.tsan_text = std::to_string(n) + " in " + std::to_string(tr) + " tr";
    if (leaks > 0) {
      r.tsan_text += " +" + std::to_string(leaks) + "L";
      r.verdict += "+LEAK(tsan)";
    }
    if (n > 0) r.verdict += "+TSAN";
    if (tr < limits.min_tsan_fixed) {
      r.verdict += "+SHORT(tsan)";
      r.note += "tsan build: " + std::to_string(tr) + " of " +
                std::to_string(limits.min_tsan_fixed) +
                " trials within the budget (all shards)\n";
    }
    if (leaks > 0 || n > 0 || tr < limits.min_tsan_fixed) {
      r.ok = false;
      r.failed = true;
    }
  } else {
    r.tsan_text = parts[0].tsan_text;
  }
  r.note += shard_notes;
  return r;
}

// The whole run's minimums, from the shards' common options.
VerdictLimits Limits(const json& options) {
  VerdictLimits l;
  l.min_live = U(options, "min_live_trials");
  l.min_fatal = U(options, "min_fatal_trials");
  l.min_tsan_fixed = U(options, "min_tsan_trials");
  l.tsan_present = options.value("tsan", false);
  return l;
}

// `values` joined by "+", or the one value they all share.
std::string Joined(const std::vector<std::string>& values) {
  std::set<std::string> distinct(values.begin(), values.end());
  if (distinct.size() == 1) return values[0];
  std::string out;
  for (const std::string& v : values) out += (out.empty() ? "" : "+") + v;
  return out;
}

}  // namespace

StatusOr<MergedRepro> MergeReproReports(const std::vector<ShardReport>& input) {
  std::vector<ShardReport> shards = input;
  SIGRACE_RETURN_IF_ERROR(CheckShardSet(
      shards, kReproSchema, {"shard", "options", "build", "seed", "rows"}));
  std::sort(shards.begin(), shards.end(),
            [](const ShardReport& a, const ShardReport& b) {
              return a.report["shard"]["index"].get<uint64_t>() <
                     b.report["shard"]["index"].get<uint64_t>();
            });
  std::vector<uint64_t> index;
  // rows[k][i]: row k of shard i; every shard has the same rows in the
  // same order (one plan: same options).
  std::vector<std::vector<ReproRow>> rows;
  for (ShardReport& s : shards) {
    const json& r = s.report;
    index.push_back(r["shard"]["index"].get<uint64_t>());
    if (!r["rows"].is_array()) {
      return InvalidArgumentError(s.path + ": malformed report (rows)");
    }
    const json& first_rows = shards[0].report["rows"];
    if (r["rows"].size() != first_rows.size()) {
      return InvalidArgumentError("different rows: " + shards[0].path +
                                  " has " + std::to_string(first_rows.size()) +
                                  ", " + s.path + " has " +
                                  std::to_string(r["rows"].size()));
    }
    for (size_t k = 0; k < r["rows"].size(); ++k) {
      const json& row = r["rows"][k];
      if (!row.is_object() || RowKey(row) != RowKey(first_rows[k])) {
        return InvalidArgumentError(
            "different rows: row " + std::to_string(k + 1) + " is " +
            RowKey(first_rows[k]) + " in " + shards[0].path + ", " +
            RowKey(row) + " in " + s.path);
      }
      if (rows.size() <= k) rows.emplace_back();
      rows[k].push_back(RowFromJson(row));
    }
  }
  const json& first = shards[0].report;
  const VerdictLimits limits = Limits(first["options"]);
  MergedRepro m;
  ReproResult& res = m.result;
  for (const std::vector<ReproRow>& parts : rows) {
    res.rows.push_back(RunsWhole(parts[0]) ? MergeWhole(parts, index)
                                           : MergeFixed(parts, index, limits));
  }
  std::vector<std::string> run_ids, out_dirs, logs_dirs;
  m.shards = json::array();
  for (size_t i = 0; i < shards.size(); ++i) {
    const json& r = shards[i].report;
    res.elapsed_s = std::max(res.elapsed_s, D(r, "elapsed_s"));
    run_ids.push_back(S(r, "run_id"));
    // logs_dir is <out>/logs/<run_id>.
    const std::string logs = S(r, "logs_dir");
    const size_t cut = logs.rfind("/logs/");
    out_dirs.push_back(cut == std::string::npos ? "-" : logs.substr(0, cut));
    logs_dirs.push_back(S(r, "logs_dir"));
    m.shards.push_back({{"index", index[i]},
                        {"report", shards[i].path},
                        {"run_id", S(r, "run_id")},
                        {"logs_dir", S(r, "logs_dir")},
                        {"elapsed_s", D(r, "elapsed_s")},
                        {"exit_code", r.value("exit_code", 2)}});
  }
  json times;
  SetStartAndWall(shards, &times);
  res.start_time = times["start_time"].is_string()
                       ? times["start_time"].get<std::string>()
                       : "";
  res.wall_s = D(times, "wall_s");
  res.seed = U(first, "seed");
  res.budget_s = D(first, "budget_s");
  res.tsan_binary = S(first, "tsan_binary");
  res.run_id = Joined(run_ids);
  res.out_dir = Joined(out_dirs);
  res.logs_dir = Joined(logs_dirs);
  res.shard_index = 0;
  res.shard_count = static_cast<uint32_t>(shards.size());
  res.build_id = S(first, "build");
  res.options = first["options"];
  res.exit_code = RunExitCode(res.rows);
  res.verdict = RunVerdictLine(res.exit_code) + " (merged from " +
                std::to_string(shards.size()) + " shards)";
  return m;
}

json MergedReproJson(const MergedRepro& m, const std::string& command) {
  json j = ReproJson(m.result);
  j["command"] = command;
  j["shard"] = {
      {"index", nullptr}, {"count", m.result.shard_count}, {"source", "merge"}};
  j["shards"] = m.shards;
  return j;
}

}  // namespace sigrace::stress
