#include "stress/ablation_run.h"

#include <stdlib.h>

#include <chrono>
#include <cstdio>

#include "base/ablation.h"
#include "stress/catalogue.h"
#include "stress/driver.h"

namespace sigrace::stress {
namespace {

using Clock = std::chrono::steady_clock;

// The worker processes read SIGRACE_ABLATE before their main(); the driver
// sets it for them between runs, while it has no other thread.
void SetWorkerAblation(const std::string& spec) {
  if (spec.empty()) {
    unsetenv("SIGRACE_ABLATE");  // NOLINT(concurrency-mt-unsafe)
  } else {
    setenv("SIGRACE_ABLATE", spec.c_str(), 1);  // NOLINT(concurrency-mt-unsafe)
  }
}

AblationRow RunOne(const std::string& protection, const StressOptions& base,
                   const VariantEntry& fixed) {
  AblationRow row;
  row.protection = protection;
  StressOptions o = base;
  o.out_dir = base.out_dir + "/" + protection;
  for (char& c : o.out_dir) {
    if (c == ':') c = '_';
  }
  SetWorkerAblation(protection);
  const auto t0 = Clock::now();
  StatusOr<RunReport> r =
      RunStress(o, fixed, "sigrace ablate --protection " + protection);
  SetWorkerAblation("");
  row.seconds = std::chrono::duration<double>(Clock::now() - t0).count();
  if (!r.ok()) {
    row.note = r.status().message();
    return row;
  }
  row.trials = r->trials;
  if (r->leak_list.empty()) {
    row.status = r->harness_errors > 0 && r->trials == r->harness_errors
                     ? AblationStatus::kError
                     : AblationStatus::kUnobserved;
    if (row.status == AblationStatus::kError) {
      row.note = r->error_list.empty() ? "every trial was a harness error"
                                       : r->error_list[0].message;
    }
    return row;
  }
  const TrialResult& first = r->leak_list.front();
  row.status = AblationStatus::kLeaks;
  row.first_leak = first.plan.trial - o.FirstTrial() + 1;
  row.alg = first.plan.alg;
  if (!first.findings.empty()) {
    row.form = first.findings.front().form;
    row.region = first.findings.front().region;
  }
  row.replay =
      "SIGRACE_ABLATE=" + protection + " " + ReplayCommand(o, first.plan);
  return row;
}

}  // namespace

const char* AblationStatusName(AblationStatus s) {
  switch (s) {
    case AblationStatus::kLeaks:
      return "leaks";
    case AblationStatus::kUnobserved:
      return "unobserved";
    case AblationStatus::kError:
      return "error";
  }
  return "?";
}

std::vector<std::string> AllProtections() {
  std::vector<std::string> all;
  for (uint32_t i = 0; i < static_cast<uint32_t>(Protection::kCount); ++i) {
    all.emplace_back(ProtectionName(static_cast<Protection>(i)));
  }
  return all;
}

Status CheckProtections(const std::vector<std::string>& names) {
  if (!kAblationBuild) {
    return FailedPreconditionError(
        "this build has no ablation switches (configure with "
        "SIGRACE_ABLATION=ON; every preset but bench has them)");
  }
  for (const std::string& n : names) {
    // Validates the name in this process; the workers read it again.
    SIGRACE_RETURN_IF_ERROR(SetAblation(n));
  }
  return SetAblation("");
}

StatusOr<std::vector<AblationRow>> RunAblation(const AblationOptions& opts) {
  const std::vector<std::string> names =
      opts.protections.empty() ? AllProtections() : opts.protections;
  SIGRACE_RETURN_IF_ERROR(CheckProtections(names));
  StatusOr<VariantEntry> fixed = FindVariant("fixed");
  if (!fixed.ok()) return fixed.status();
  std::vector<AblationRow> rows;
  for (const std::string& n : names) {
    rows.push_back(RunOne(n, opts.stress, *fixed));
  }
  return rows;
}

int AblationExitCode(const std::vector<AblationRow>& rows) {
  int code = 0;
  for (const AblationRow& r : rows) {
    if (r.status == AblationStatus::kError) return 2;
    if (r.status == AblationStatus::kUnobserved) code = 1;
  }
  return code;
}

std::string AblationTable(const std::vector<AblationRow>& rows) {
  std::string out;
  char line[512];
  std::snprintf(line, sizeof(line), "%-24s %-10s %7s %10s  %-6s %s\n",
                "protection off", "status", "trials", "first leak", "alg",
                "form @ region");
  out += line;
  for (const AblationRow& r : rows) {
    const std::string first =
        r.status == AblationStatus::kLeaks ? std::to_string(r.first_leak) : "-";
    const std::string where =
        r.status == AblationStatus::kLeaks   ? r.form + " @ " + r.region
        : r.status == AblationStatus::kError ? r.note
                                             : "no leak within the budget";
    std::snprintf(line, sizeof(line), "%-24s %-10s %7llu %10s  %-6s %s\n",
                  r.protection.c_str(), AblationStatusName(r.status),
                  static_cast<unsigned long long>(r.trials), first.c_str(),
                  r.alg.empty() ? "-" : r.alg.c_str(), where.c_str());
    out += line;
  }
  return out;
}

nlohmann::json AblationJson(const std::vector<AblationRow>& rows,
                            const AblationOptions& opts) {
  nlohmann::json j;
  j["schema"] = "sigrace.ablation/1";
  j["seed"] = opts.stress.seed;
  j["mode"] = ModeName(opts.stress.mode);
  j["budget_trials"] = opts.stress.trials;
  j["budget_s"] = opts.stress.duration_s;
  j["exit_code"] = AblationExitCode(rows);
  nlohmann::json a = nlohmann::json::array();
  for (const AblationRow& r : rows) {
    nlohmann::json x;
    x["protection"] = r.protection;
    x["status"] = AblationStatusName(r.status);
    x["trials"] = r.trials;
    x["trials_to_first_leak"] = r.status == AblationStatus::kLeaks
                                    ? nlohmann::json(r.first_leak)
                                    : nlohmann::json(nullptr);
    x["alg"] = r.alg;
    x["form"] = r.form;
    x["region"] = r.region;
    x["replay"] = r.replay;
    x["note"] = r.note;
    x["seconds"] = r.seconds;
    a.push_back(x);
  }
  j["rows"] = a;
  return j;
}

}  // namespace sigrace::stress
