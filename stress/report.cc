#include "stress/report.h"

#include <algorithm>
#include <cstdio>
#include <set>

namespace sigrace::stress {

std::vector<std::string> TrialResult::Forms() const {
  std::set<std::string> s;
  for (const LeakFinding& f : findings) s.insert(f.form);
  return {s.begin(), s.end()};
}

std::vector<std::string> TrialResult::Regions() const {
  std::set<std::string> s;
  for (const LeakFinding& f : findings) s.insert(f.region);
  return {s.begin(), s.end()};
}

std::vector<std::string> TrialResult::Kinds() const {
  std::set<std::string> s;
  for (const LeakFinding& f : findings) s.insert(f.kind);
  return {s.begin(), s.end()};
}

void RunReport::Add(const TrialResult& r) {
  ++trials;
  CellStats* cell = nullptr;
  for (CellStats& c : cells) {
    if (c.alg == r.plan.alg) cell = &c;
  }
  if (cell == nullptr) {
    CellStats c;
    c.variant = options.variant;
    c.alg = r.plan.alg;
    c.mode = ModeName(options.mode);
    cells.push_back(c);
    cell = &cells.back();
  }
  ++cell->trials;
  keys_received += r.keys_received_new;
  keys_derived += r.keys_derived_new;
  keys_unknown += r.keys_unknown;
  if (r.keys_derived_new > 0) ++trials_with_derived_keys;
  derive_s += r.derive_ms / 1e3;
  if (r.dump_size > 0) {
    ++dumps;
    dump_bytes += r.dump_size;
    dump_bytes_searched += r.dump_searched;
    redactions_verified += r.redactions_verified;
    redacted_bytes_verified += r.redacted_bytes_verified;
    redactions_not_applied += r.redactions_not_applied;
  }
  if (r.gate_outcome == "released") ++gate_released;
  if (r.gate_outcome == "quarantined") {
    ++gate_quarantined;
    ++gate_quarantined_by_reason[r.gate_reason];
    if (r.gate_stopped) ++gate_stopped;
  }
  switch (r.verdict) {
    case Verdict::kClean:
      ++clean;
      ++cell->clean;
      break;
    case Verdict::kLeak:
      ++leaks;
      ++cell->leaks;
      if (!r.keep_error.empty()) ++evidence_lost;
      if (!cell->first_leak) {
        cell->first_leak = r;
        cell->first_leak_replay = ReplayCommand(options, r.plan);
      }
      if (leak_list.size() < 100) leak_list.push_back(r);
      break;
    case Verdict::kHarnessError:
      ++harness_errors;
      ++cell->harness_errors;
      if (error_list.size() < 20) error_list.push_back(r);
      break;
  }
}

void RunReport::Finish() {
  // Cells in the order of --alg, so tables line up run to run.
  std::vector<CellStats> ordered;
  for (const std::string& alg : options.algs) {
    bool found = false;
    for (const CellStats& c : cells) {
      if (c.alg == alg) {
        ordered.push_back(c);
        found = true;
      }
    }
    if (!found) {
      CellStats c;
      c.variant = options.variant;
      c.alg = alg;
      c.mode = ModeName(options.mode);
      ordered.push_back(c);
    }
  }
  if (options.algs.size() > 1 && options.trial) {
    // A replay runs one trial: only its algorithm's cell exists.
    std::erase_if(ordered, [](const CellStats& c) { return c.trials == 0; });
  }
  cells = ordered;
  bool any_cell_unmet = false;
  for (CellStats& c : cells) {
    if (options.expect == Expect::kClean) {
      c.verdict = c.leaks > 0            ? "fail"
                  : c.harness_errors > 0 ? "error"
                                         : "pass";
    } else {
      c.verdict = c.leaks > 0            ? "pass"
                  : c.harness_errors > 0 ? "error"
                                         : "fail";
    }
    if (c.verdict != "pass") any_cell_unmet = true;
  }
  const uint64_t tsan_reports = tsan.enabled ? tsan.total : 0;
  if (trials == 0) {
    exit_code = 2;
    verdict = "harness error: no trial ran";
  } else if (options.expect == Expect::kClean) {
    if (leaks > 0) {
      exit_code = 1;
      verdict = "FAIL: " + std::to_string(leaks) + " leaking dump(s) in " +
                std::to_string(trials) + " trials, expected clean";
    } else if (harness_errors > 0) {
      exit_code = 2;
      verdict = "harness error: " + std::to_string(harness_errors) +
                " trial(s) had no verdict; not counted as clean";
    } else if (tsan_reports > 0) {
      exit_code = 1;
      verdict = "FAIL: " + std::to_string(tsan_reports) +
                " ThreadSanitizer report(s), expected clean";
    } else {
      exit_code = 0;
      verdict = "ok: " + std::to_string(trials) + " trials, no leak";
    }
  } else {
    bool errors_in_unmet = false;
    for (const CellStats& c : cells) {
      if (c.verdict == "error") errors_in_unmet = true;
    }
    if (!any_cell_unmet) {
      exit_code = 0;
      verdict = "ok: leak reproduced (" + std::to_string(leaks) +
                " leaking dump(s) in " + std::to_string(trials) + " trials)";
    } else if (errors_in_unmet) {
      exit_code = 2;
      verdict = "harness error: " + std::to_string(harness_errors) +
                " trial(s) had no verdict and the leak did not reproduce";
    } else {
      exit_code = 1;
      verdict = "FAIL: no leak in " + std::to_string(trials) +
                " trials, expected a leak";
    }
  }
  if (evidence_lost > 0) {
    // A leak whose dump is gone cannot be opened, replayed from its
    // sidecar or handed on: whatever else the run found, it failed its
    // job.
    exit_code = 2;
    verdict = "harness error: " + std::to_string(evidence_lost) +
              " leaking dump(s) could not be kept (evidence lost; see "
              "keep_error); " +
              verdict;
  }
}

double RunReport::TrialsPerSecond() const {
  return elapsed_s > 0 ? static_cast<double>(trials) / elapsed_s : 0;
}

std::string FormatDouble(const char* fmt, double v) {
  char buf[64];
  std::snprintf(buf, sizeof(buf), fmt, v);
  return buf;
}

std::string Join(const std::vector<std::string>& v, const char* sep) {
  std::string s;
  for (const std::string& x : v) {
    if (!s.empty()) s += sep;
    s += x;
  }
  return s;
}

}  // namespace sigrace::stress
