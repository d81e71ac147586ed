// The text reporter: the summary tables of `sigrace stress` and `sigrace
// repro`, as printed.

#include <cstdarg>
#include <cstdio>
#include <set>
#include <string>

#include "stress/report.h"
#include "stress/repro_report.h"

namespace sigrace::stress {
namespace {

__attribute__((format(printf, 1, 2))) std::string Sprintf(const char* fmt,
                                                          ...) {
  char buf[1024];
  va_list ap;
  va_start(ap, fmt);
  const int n = std::vsnprintf(buf, sizeof(buf), fmt, ap);
  va_end(ap);
  if (n < 0) return "";
  if (static_cast<size_t>(n) < sizeof(buf)) return std::string(buf, n);
  std::string out(static_cast<size_t>(n) + 1, '\0');
  va_start(ap, fmt);
  std::vsnprintf(out.data(), out.size(), fmt, ap);
  va_end(ap);
  out.resize(static_cast<size_t>(n));
  return out;
}

unsigned long long U64(const nlohmann::json& obj, const char* key) {
  return obj.value(key, uint64_t{0});
}

// The strings of obj[key] joined with `sep` ("" when there is no array).
std::string JoinField(const nlohmann::json& obj, const char* key,
                      const char* sep) {
  std::vector<std::string> v;
  const auto it = obj.find(key);
  if (it != obj.end() && it->is_array()) {
    for (const nlohmann::json& x : *it) {
      if (x.is_string()) v.push_back(x.get<std::string>());
    }
  }
  return Join(v, sep);
}

std::string FirstLeakText(const ReproRow& r) {
  const RowSpec& s = r.spec;
  const nlohmann::json& f = r.first_leak;
  std::string out = Sprintf("%s %s %s: first leak at trial %llu (%.2f s)\n",
                            s.variant.c_str(), s.alg.c_str(), s.mode.c_str(),
                            U64(f, "trial"), f.value("elapsed_s", 0.0));
  if (!s.window.empty()) out += "  window: " + s.window + "\n";
  out += Sprintf("  fault:  %s %s@%llu %s\n", f.value("injector", "").c_str(),
                 f.value("failpoint", "").c_str(), U64(f, "hit"),
                 f.value("thread", "").c_str());
  const std::string dump = f.value("dump", "");
  out += "  form:   " + JoinField(f, "forms", ", ") +
         "\n  region: " + JoinField(f, "regions", "; ") +
         "\n  dump:   " + (dump.empty() ? "(not kept)" : dump) +
         "\n  replay: " + f.value("replay", "") + "\n";
  return out;
}

std::string TableText(const std::vector<ReproRow>& rows) {
  std::string out =
      Sprintf("\n%-22s %-6s %-9s %8s %6s  %-18s %-22s %s\n", "variant", "alg",
              "mode", "trials", "leaks", "first leak", "tsan", "verdict");
  for (const ReproRow& r : rows) {
    std::string first = "-";
    if (r.first_leak.is_object()) {
      first = Sprintf("trial %llu (%.1fs)", U64(r.first_leak, "trial"),
                      r.first_leak.value("elapsed_s", 0.0));
    }
    out +=
        Sprintf("%-22s %-6s %-9s %8llu %6llu  %-18s %-22s %s\n",
                r.spec.variant.c_str(), r.spec.alg.c_str(), r.spec.mode.c_str(),
                static_cast<unsigned long long>(r.trials),
                static_cast<unsigned long long>(r.leaks), first.c_str(),
                r.tsan_text.c_str(), r.verdict.c_str());
  }
  return out;
}

}  // namespace

std::string TextSummary(const RunReport& r) {
  const StressOptions& o = r.options;
  std::string s;
  char line[512];
  std::snprintf(line, sizeof(line), "%-16s %-6s %-5s %8s %6s %6s  %-32s %s\n",
                "variant", "alg", "mode", "trials", "leaks", "errors",
                "first leak", "verdict");
  s += line;
  for (const CellStats& c : r.cells) {
    std::string first = "-";
    if (c.first_leak) {
      first = "trial " + std::to_string(c.first_leak->plan.trial) + " (" +
              FormatDouble("%.2fs", c.first_leak->elapsed_s) + ")";
    }
    std::snprintf(line, sizeof(line),
                  "%-16s %-6s %-5s %8llu %6llu %6llu  %-32s %s\n",
                  c.variant.c_str(), c.alg.c_str(), c.mode.c_str(),
                  static_cast<unsigned long long>(c.trials),
                  static_cast<unsigned long long>(c.leaks),
                  static_cast<unsigned long long>(c.harness_errors),
                  first.c_str(), c.verdict.c_str());
    s += line;
  }
  for (const CellStats& c : r.cells) {
    if (!c.first_leak) continue;
    const TrialResult& f = *c.first_leak;
    s += "first leak (" + c.alg + "): " + f.plan.Describe() + "\n";
    s += "  forms:   " + Join(f.Forms(), ", ") + " (" +
         std::to_string(f.findings_total) + " fragment(s))\n";
    s += "  regions: " + Join(f.Regions(), ", ") + "\n";
    std::set<std::string> keys;
    for (const LeakFinding& x : f.findings) {
      keys.insert(x.key + (x.key_derived ? " (derived)" : ""));
    }
    s += "  keys:    " + Join({keys.begin(), keys.end()}, ", ") + "\n";
    if (!r.window.empty()) s += "  window:  " + r.window + "\n";
    s += "  dump:    " +
         (f.dump_path.empty() ? std::string("(not kept)") : f.dump_path) + "\n";
    s += "  replay:  " + c.first_leak_replay + "\n";
  }
  if (o.trial && o.repeat > 1) {
    s += "replay: trial " + std::to_string(*o.trial) + " leaked in " +
         std::to_string(r.leaks) + " of " + std::to_string(r.trials) +
         " run(s)\n";
  }
  for (const TrialResult& e : r.error_list) {
    s += "harness error: " + e.plan.Describe() + ": " + e.message + "\n";
  }
  if (r.tsan.enabled) {
    s += "tsan: " + std::to_string(r.tsan.total) + " report(s)";
    for (const auto& [type, n] : r.tsan.by_type) {
      s += " " + type + "=" + std::to_string(n);
    }
    s += "\n";
  }
  if (o.explore == Explore::kSystematic) {
    s += "systematic: " + std::to_string(r.instants_visited) + " of " +
         std::to_string(r.instants_seen) + " instants visited (";
    for (size_t i = 0; i < r.census.size(); ++i) {
      s += (i ? ", " : "") + r.census[i].alg + " " + r.census[i].op + " " +
           std::to_string(r.census[i].seen);
    }
    s += " seen)\n";
  }
  if (r.through_gate) {
    // What left through the gate was judged; what it held back is counted.
    s += "gate " + r.gate_mode + ", scanner " + r.gate_scanner + ": " +
         std::to_string(r.gate_released) + " dump(s) released, " +
         std::to_string(r.gate_quarantined) + " held back";
    std::string by;
    for (const auto& [reason, n] : r.gate_quarantined_by_reason) {
      by += (by.empty() ? "" : ", ") + reason + " " + std::to_string(n);
    }
    if (!by.empty()) s += " (" + by + ")";
    s += "; " + std::to_string(r.gate_stopped) +
         " held back holding key material (stopped)\n";
  }
  s += "keys: " + std::to_string(r.keys_received) + " received, " +
       std::to_string(r.keys_derived) + " derived (" +
       std::to_string(r.trials_with_derived_keys) + " trial(s), " +
       FormatDouble("%.1f", r.derive_s) + " s)";
  if (r.keys_unknown > 0) {
    s += ", " + std::to_string(r.keys_unknown) +
         " announced key(s) judged without (not derivable)";
  }
  s += "\n";
  s += FormatDouble("%.1f", r.TrialsPerSecond()) + " trials/s, " +
       std::to_string(r.dumps) + " dumps (" +
       FormatDouble("%.1f", static_cast<double>(r.dump_bytes) / 1048576.0) +
       " MiB; " +
       FormatDouble("%.1f",
                    static_cast<double>(r.dump_bytes_searched) / 1048576.0) +
       " MiB read, the rest holes) in " + FormatDouble("%.1f", r.elapsed_s) +
       " s; seed " + std::to_string(o.seed) + "; run id " + r.run_id + "\n";
  for (const TrialResult& l : r.leak_list) {
    if (!l.keep_error.empty()) {
      s += "evidence lost: trial " + std::to_string(l.plan.trial) +
           " leaked and its dump could not be kept: " + l.keep_error + "\n";
    }
  }
  s += r.verdict + "\n";
  return s;
}

std::string ReproStartText(const ReproOptions& o, const std::string& tsan) {
  std::string out = Sprintf(
      "sigrace repro: seed %llu, budget %.0f s, %u row(s) at once besides "
      "fixed's live rows\n",
      static_cast<unsigned long long>(o.seed), o.budget_s, o.jobs);
  out += "tsan: " +
         (tsan.empty() ? std::string("tsan build not present (looked for "
                                     "../../tsan/tools/sigrace next to this "
                                     "binary; build the tsan preset to add "
                                     "the TSan column)")
                       : "using " + tsan) +
         "\n";
  return out;
}

std::string ReproJobLine(const JobSpec& j, size_t finished, size_t total,
                         const JobOutcome& o) {
  return Sprintf("[%zu/%zu] %s %s %s%s: exit %d in %.1f s\n", finished, total,
                 j.variant.c_str(), j.alg.c_str(), j.mode.c_str(),
                 j.kind == JobKind::kTsan ? " (tsan)" : "", o.exit_code,
                 o.seconds);
}

std::string ReproText(const ReproResult& result) {
  std::string out = "\n";
  for (const ReproRow& r : result.rows) {
    if (r.first_leak.is_object()) out += FirstLeakText(r);
  }
  for (const ReproRow& r : result.rows) {
    if (r.note.empty()) continue;
    out += r.spec.variant + " " + r.spec.alg + " " + r.spec.mode + ": " +
           r.note + (r.note.back() == '\n' ? "" : "\n");
  }
  out += TableText(result.rows);
  out +=
      "(tsan: reports from the tsan build's trials of the row; \"(no "
      "race)\": a window that is no data race, which TSan cannot see and the "
      "oracle judges (tsan/README.md); \"!\": a data-race window TSan did "
      "not report this time)\n";
  out +=
      Sprintf("\n%s (%.0f s; run id %s; dumps in %s, row logs in %s)\n",
              result.verdict.c_str(), result.elapsed_s, result.run_id.c_str(),
              result.out_dir.c_str(), result.logs_dir.c_str());
  return out;
}

}  // namespace sigrace::stress
