#include "stress/repro_verdict.h"

namespace sigrace::stress {
namespace {

// obj[key], or null when obj is no object or has no such key (a report
// is input: it may be truncated or of another schema).
const nlohmann::json& Field(const nlohmann::json& obj, const char* key) {
  static const nlohmann::json kNull;
  if (!obj.is_object()) return kNull;
  const auto it = obj.find(key);
  return it == obj.end() ? kNull : *it;
}

uint64_t Count(const nlohmann::json& obj, const char* key) {
  const nlohmann::json& v = Field(obj, key);
  if (v.is_number_unsigned()) return v.get<uint64_t>();
  if (v.is_number_integer() && v.get<int64_t>() >= 0) {
    return static_cast<uint64_t>(v.get<int64_t>());
  }
  return 0;
}

// Adds the totals and the first leak of every job of the row; returns the
// row's exit code: its worst part (not run or 2, over 1, over 0). A part
// that ran and wrote no report counts as 2 (`*missing` names it): a row is
// judged only on what this run's jobs wrote. (A job that ended in 2 is an
// error anyway; its log says why.)
int SumParts(const RowSpec& spec, const std::vector<JobSpec>& jobs,
             const std::vector<JobOutcome>& outcomes, ReproRow* r,
             std::string* missing) {
  int row_exit = 0;
  std::vector<int> parts = {spec.job};
  parts.insert(parts.end(), spec.more_jobs.begin(), spec.more_jobs.end());
  for (int pj : parts) {
    const JobOutcome& o = outcomes[pj];
    const nlohmann::json& totals = Field(o.report, "totals");
    int e = o.exit_code;
    if (o.started && !o.report.is_object() && (e == 0 || e == 1)) {
      e = 2;
      *missing += "the job wrote no report (exit " +
                  std::to_string(o.exit_code) + "); log " + jobs[pj].log_path +
                  "\n";
    }
    if (e != 0 && (row_exit == 0 || e == 2 || e < 0)) row_exit = e;
    if (!totals.is_object()) continue;
    r->trials += Count(totals, "trials");
    r->leaks += Count(totals, "leak");
    r->errors += Count(totals, "harness_error");
    const nlohmann::json& cells = Field(o.report, "cells");
    if (!r->first_leak.is_object() && cells.is_array() && !cells.empty() &&
        Field(cells[0], "first_leak").is_object()) {
      r->first_leak = cells[0]["first_leak"];
    }
  }
  return row_exit;
}

void SetError(const JobOutcome& o, ReproRow* r) {
  r->verdict = "ERROR";
  r->error = true;
  r->note += o.spawn_error.empty() ? o.log_tail : o.spawn_error + "\n";
}

void JudgeRace(int row_exit, const JobOutcome& o, ReproRow* r) {
  if (row_exit == 0) {
    r->verdict = "reproduced";
    r->ok = true;
  } else if (row_exit == 1) {
    r->verdict = "NOT REPRODUCED";
    r->failed = true;
  } else {
    SetError(o, r);
  }
}

void JudgeFixed(int row_exit, const JobOutcome& o, const VerdictLimits& limits,
                ReproRow* r) {
  const uint64_t min =
      r->spec.mode == "live" ? limits.min_live : limits.min_fatal;
  if (row_exit == 0 && r->trials >= min) {
    r->verdict = "clean";
    r->ok = true;
  } else if (row_exit == 0) {
    r->verdict = "SHORT";
    r->note = std::to_string(r->trials) + " of " + std::to_string(min) +
              " trials within the budget\n";
    r->failed = true;
  } else if (row_exit == 1) {
    r->verdict = "LEAK";
    r->failed = true;
  } else {
    SetError(o, r);
  }
}

// A race row's TSan counts: said in the table and the notes, not a
// verdict (the dump oracle judges the race).
void NoteRaceTsan(uint64_t races, uint64_t tr, const std::string& log,
                  ReproRow* r) {
  if (!r->spec.data_race) {
    // An ordering window: TSan has nothing to report there and the dump
    // oracle is the judge (tsan/README.md). A race report here means the
    // window changed shape: said, not a verdict.
    r->tsan_text += " (no race)";
    if (races > 0) {
      r->note += "tsan build: " + std::to_string(races) +
                 " data race report(s) on an ordering window; look at the "
                 "stacks in " +
                 log + "\n";
    }
  } else if (races == 0) {
    r->tsan_text += " !";
    r->note +=
        "tsan build: this window is a data race TSan reports, and "
        "it saw none in " +
        std::to_string(tr) + " trial(s); tsan_variant_*_test forces it\n";
  }
}

// fixed under the TSan build: any TSan report or leaking dump fails it,
// and so do fewer than `min` trials (what "0 reports" rests on).
void JudgeFixedTsan(uint64_t reports, uint64_t leaks, uint64_t tr, uint64_t min,
                    const std::string& log, ReproRow* r) {
  if (leaks > 0) {
    // A leak in fixed is a regression in either build. (The TSan
    // runtime's own copies of deferred signal contexts, which leaked
    // once, are redacted by the handler.)
    r->tsan_text += " +" + std::to_string(leaks) + "L";
    r->note += "tsan build: " + std::to_string(leaks) + " leaking dump(s) in " +
               std::to_string(tr) + " trials; log " + log + "\n";
    r->verdict += "+LEAK(tsan)";
    r->ok = false;
    r->failed = true;
  }
  if (reports > 0) {
    r->verdict += "+TSAN";
    r->ok = false;
    r->failed = true;
  }
  if (tr < min) {
    r->verdict += "+SHORT(tsan)";
    r->note += "tsan build: " + std::to_string(tr) + " of " +
               std::to_string(min) + " trials within the budget; log " + log +
               "\n";
    r->ok = false;
    r->failed = true;
  }
}

void JudgeTsan(const JobOutcome& t, const std::string& log, uint64_t min,
               ReproRow* r) {
  if (!Field(t.report, "tsan").is_object()) {
    // No report from this run's TSan job: no TSan verdict, a harness
    // error of the row (never the previous run's file: each run has its
    // own log directory).
    r->tsan_text = "error";
    r->ok = false;
    r->error = true;
    r->note += "tsan build: the job wrote no report (exit " +
               std::to_string(t.exit_code) + "); log " + log + "\n";
    return;
  }
  r->tsan = Field(t.report, "tsan");
  const uint64_t tr = Count(Field(t.report, "totals"), "trials");
  const uint64_t leaks = Count(Field(t.report, "totals"), "leak");
  r->tsan["trials"] = tr;
  r->tsan["leaks"] = leaks;
  const uint64_t n = Count(r->tsan, "total");
  r->tsan_text = std::to_string(n) + " in " + std::to_string(tr) + " tr";
  const uint64_t races = Count(Field(r->tsan, "by_type"), "data_race");
  if (r->spec.race) {
    NoteRaceTsan(races, tr, log, r);
  } else {
    JudgeFixedTsan(n, leaks, tr, min, log, r);
  }
}

}  // namespace

ReproRow JudgeRow(const RowSpec& spec, const std::vector<JobSpec>& jobs,
                  const std::vector<JobOutcome>& outcomes,
                  const VerdictLimits& limits) {
  ReproRow r;
  r.spec = spec;
  if (spec.na) {
    r.verdict = "n/a";
    r.ok = true;
    return r;
  }
  const JobOutcome& main = outcomes[spec.job];
  r.command = main.command;
  r.seconds = main.seconds;
  std::string missing;
  const int row_exit = SumParts(spec, jobs, outcomes, &r, &missing);
  r.note += missing;
  if (spec.race) {
    JudgeRace(row_exit, main, &r);
  } else {
    JudgeFixed(row_exit, main, limits, &r);
  }
  if (spec.tsan_job >= 0) {
    JudgeTsan(outcomes[spec.tsan_job], jobs[spec.tsan_job].log_path,
              limits.min_tsan_fixed, &r);
  } else if (spec.mode == "live") {
    r.tsan_text = limits.tsan_present ? "-" : "no build";
  }
  return r;
}

int RunExitCode(const std::vector<ReproRow>& rows) {
  bool any_fail = false, any_error = false;
  for (const ReproRow& r : rows) {
    any_fail = any_fail || r.failed;
    any_error = any_error || r.error;
  }
  return any_fail ? 1 : any_error ? 2 : 0;
}

std::string RunVerdictLine(int exit_code) {
  switch (exit_code) {
    case 0:
      return "ok: every race variant reproduced and fixed stayed clean";
    case 1:
      return "FAIL: a race variant did not reproduce or fixed did not stay "
             "clean (see the table)";
    default:
      return "harness error in some row (see the notes)";
  }
}

std::vector<ReproRow> JudgeRows(const ReproPlan& plan,
                                const std::vector<JobOutcome>& outcomes,
                                const VerdictLimits& limits) {
  std::vector<ReproRow> rows;
  for (const RowSpec& spec : plan.rows) {
    rows.push_back(JudgeRow(spec, plan.jobs, outcomes, limits));
  }
  return rows;
}

}  // namespace sigrace::stress
