// The JSON reporter: the reports of `sigrace stress` and `sigrace repro`
// and the sidecar kept next to each leaking dump.

#include <chrono>
#include <cmath>
#include <ctime>
#include <set>
#include <string>
#include <vector>

#include "stress/report.h"
#include "stress/repro_report.h"

namespace sigrace::stress {
namespace {

nlohmann::json LeakJson(const TrialResult& r, const StressOptions& o) {
  nlohmann::json j;
  j["trial"] = r.plan.trial;
  j["seed"] = r.plan.seed;
  j["alg"] = r.plan.alg;
  j["injector"] = InjectorName(r.plan.injector);
  j["failpoint"] = r.plan.failpoint;
  j["hit"] = r.plan.hit;
  j["thread"] = r.plan.thread;
  j["elapsed_s"] = r.elapsed_s;
  j["forms"] = r.Forms();
  j["regions"] = r.Regions();
  j["kinds"] = r.Kinds();
  j["findings"] = r.findings_total;
  std::set<std::string> keys, derived;
  for (const LeakFinding& f : r.findings) {
    keys.insert(f.key);
    if (f.key_derived) derived.insert(f.key);
  }
  j["keys"] = keys;
  j["derived_keys"] = derived;
  j["keys_received"] = r.keys_received;
  j["keys_derived"] = r.keys_derived;
  j["dump"] = r.dump_path;
  j["sidecar"] = r.sidecar_path;
  if (!r.keep_error.empty()) j["keep_error"] = r.keep_error;
  j["replay"] = ReplayCommand(o, r.plan);
  return j;
}

nlohmann::json ReproRowJson(const ReproRow& r) {
  return {{"variant", r.spec.variant},
          {"alg", r.spec.alg},
          {"mode", r.spec.mode},
          {"race", r.spec.race},
          {"trials", r.trials},
          {"leaks", r.leaks},
          {"harness_errors", r.errors},
          {"first_leak", r.first_leak},
          {"window", r.spec.window},
          {"tsan", r.tsan},
          {"verdict", r.verdict},
          {"note", r.note},
          {"command", r.command},
          {"tsan_text", r.tsan_text},
          {"outcome", r.failed  ? "failed"
                      : r.error ? "error"
                                : "ok"},
          {"seconds", r.seconds}};
}

}  // namespace

std::string IsoUtc(double unix_s) {
  double whole = std::floor(unix_s);
  int ms = static_cast<int>(std::lround((unix_s - whole) * 1000));
  if (ms >= 1000) {
    whole += 1;
    ms -= 1000;
  }
  const time_t s = static_cast<time_t>(whole);
  struct tm tm = {};
  gmtime_r(&s, &tm);
  char date[32];
  std::strftime(date, sizeof(date), "%Y-%m-%dT%H:%M:%S", &tm);
  char buf[48];
  std::snprintf(buf, sizeof(buf), "%s.%03dZ", date, ms);
  return buf;
}

double UnixNow() {
  return std::chrono::duration<double>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

nlohmann::json OptionsJson(const StressOptions& o) {
  std::vector<std::string> inj;
  for (Injector i : o.injectors) inj.push_back(InjectorName(i));
  return {{"variant", o.variant},
          {"algs", o.algs},
          {"threads", o.threads},
          {"rotate_every_ms", o.rotate_every_ms},
          {"injectors", inj},
          {"failpoint", o.failpoint},
          {"mode", ModeName(o.mode)},
          {"trials", o.trials},
          {"duration_s", o.duration_s},
          {"seed", o.seed},
          {"trial", o.trial ? nlohmann::json(*o.trial) : nlohmann::json()},
          {"repeat", o.repeat},
          {"pin", o.pin_thread.empty()
                      ? std::string()
                      : o.pin_thread + ":" + std::to_string(o.pin_instant)},
          {"expect", ExpectName(o.expect)},
          {"keep_going", o.keep_going},
          {"min_fragment", o.min_fragment},
          {"trial_timeout_ms", o.trial_timeout_ms},
          {"max_delay_us", o.max_delay_us},
          {"rotation_share", o.rotation_share},
          {"explore", ExploreName(o.explore)},
          {"max_instants", o.max_instants},
          {"widen_us", o.widen_us},
          {"key_pool", o.key_pool},
          {"cover_check", o.cover_check},
          {"key_wait_ms", o.key_wait_ms},
          {"derive_keys", o.derive_keys}};
}

nlohmann::json ReportJson(const RunReport& r) {
  const StressOptions& o = r.options;
  nlohmann::json j;
  j["schema"] = "sigrace.stress.report/1";
  j["command"] = r.command;
  j["run_id"] = r.run_id;
  j["build"] = r.build_id;
  j["seed"] = o.seed;
  j["first_trial"] = o.FirstTrial();
  j["shard"] = {{"index", o.shard_index},
                {"count", o.shard_count},
                {"source", o.shard_source}};
  j["options"] = OptionsJson(o);
  // A replay (--trial N --repeat K): K runs of trial N; totals.leak of
  // them leaked.
  j["repeat"] = o.trial ? o.repeat : 0;
  j["variant"] = o.variant;
  j["mode"] = ModeName(o.mode);
  j["algs"] = o.algs;
  std::vector<std::string> inj;
  for (Injector i : o.injectors) inj.push_back(InjectorName(i));
  j["injectors"] = inj;
  j["failpoint"] = o.failpoint;
  j["threads"] = o.threads;
  j["rotate_every_ms"] = o.rotate_every_ms;
  j["min_fragment"] = o.min_fragment;
  j["expect"] = ExpectName(o.expect);
  j["window"] = r.window;
  j["start_time"] = r.start_time.empty() ? nlohmann::json(nullptr)
                                         : nlohmann::json(r.start_time);
  j["wall_s"] = r.wall_s;
  j["elapsed_s"] = r.elapsed_s;
  j["trials_per_s"] = r.TrialsPerSecond();
  j["totals"] = {{"trials", r.trials},
                 {"clean", r.clean},
                 {"leak", r.leaks},
                 {"harness_error", r.harness_errors},
                 {"dumps", r.dumps},
                 {"dump_bytes", r.dump_bytes},
                 {"dump_bytes_searched", r.dump_bytes_searched},
                 {"redactions_verified", r.redactions_verified},
                 {"redacted_bytes_verified", r.redacted_bytes_verified},
                 {"redactions_not_applied", r.redactions_not_applied},
                 {"worker_restarts", r.worker_restarts},
                 {"keys_received", r.keys_received},
                 {"keys_derived", r.keys_derived},
                 {"trials_with_derived_keys", r.trials_with_derived_keys},
                 {"keys_unknown", r.keys_unknown},
                 {"derive_s", r.derive_s}};
  // --through-gate: null when the dumps were judged directly.
  j["gate"] = r.through_gate
                  ? nlohmann::json{{"mode", r.gate_mode},
                                   {"scanner", r.gate_scanner},
                                   {"released", r.gate_released},
                                   {"quarantined", r.gate_quarantined},
                                   {"quarantined_by_reason",
                                    r.gate_quarantined_by_reason},
                                   {"stopped", r.gate_stopped}}
                  : nlohmann::json(nullptr);
  nlohmann::json cells = nlohmann::json::array();
  for (const CellStats& c : r.cells) {
    nlohmann::json cj;
    cj["variant"] = c.variant;
    cj["alg"] = c.alg;
    cj["mode"] = c.mode;
    cj["trials"] = c.trials;
    cj["clean"] = c.clean;
    cj["leaks"] = c.leaks;
    cj["harness_errors"] = c.harness_errors;
    cj["first_leak"] =
        c.first_leak ? LeakJson(*c.first_leak, o) : nlohmann::json(nullptr);
    cj["verdict"] = c.verdict;
    cells.push_back(cj);
  }
  j["cells"] = cells;
  nlohmann::json leaks = nlohmann::json::array();
  for (const TrialResult& l : r.leak_list) leaks.push_back(LeakJson(l, o));
  j["leaks"] = leaks;
  nlohmann::json errors = nlohmann::json::array();
  for (const TrialResult& e : r.error_list) {
    errors.push_back({{"trial", e.plan.trial},
                      {"seed", e.plan.seed},
                      {"alg", e.plan.alg},
                      {"injector", InjectorName(e.plan.injector)},
                      {"message", e.message}});
  }
  j["harness_errors"] = errors;
  j["evidence_lost"] = r.evidence_lost;
  if (r.options.explore == Explore::kSystematic) {
    nlohmann::json ops = nlohmann::json::array();
    for (const OpInstants& c : r.census) {
      ops.push_back({{"alg", c.alg}, {"op", c.op}, {"seen", c.seen}});
    }
    j["explore"] = {{"mode", "systematic"},
                    {"instants_seen", r.instants_seen},
                    {"instants_visited", r.instants_visited},
                    {"operations", ops}};
  }
  j["tsan"] = {{"enabled", r.tsan.enabled},
               {"total", r.tsan.total},
               {"by_type", r.tsan.by_type}};
  j["exit_code"] = r.exit_code;
  j["verdict"] = r.verdict;
  return j;
}

nlohmann::json SidecarJson(const TrialResult& r, const StressOptions& o,
                           const std::string& window) {
  nlohmann::json j;
  j["schema"] = "sigrace.leak/1";
  j["seed"] = r.plan.seed;
  j["trial"] = r.plan.trial;
  j["variant"] = o.variant;
  j["alg"] = r.plan.alg;
  j["mode"] = ModeName(o.mode);
  j["injector"] = InjectorName(r.plan.injector);
  j["failpoint"] = r.plan.failpoint;
  j["hit"] = r.plan.hit;
  j["thread"] = r.plan.thread;
  j["delay_us"] = r.plan.delay_us;
  j["window"] = window;
  j["run_id"] = r.run_id;
  j["dump"] = r.dump_path;  // "": not kept (--max-kept, or keep_error)
  j["dump_kept"] = !r.dump_path.empty();
  j["dump_size"] = r.dump_size;
  j["dump_sha256"] = r.dump_sha256;
  if (!r.keep_error.empty()) j["keep_error"] = r.keep_error;
  j["replay"] = ReplayCommand(o, r.plan);
  j["keys_received"] = r.keys_received;
  j["keys_derived"] = r.keys_derived;
  j["keys_unknown"] = r.keys_unknown;
  nlohmann::json f = nlohmann::json::array();
  for (const LeakFinding& x : r.findings) {
    f.push_back({{"file_offset", x.file_offset},
                 {"vaddr",
                  x.vaddr ? nlohmann::json(*x.vaddr) : nlohmann::json(nullptr)},
                 {"region", x.region},
                 {"form", x.form},
                 {"form_offset", x.form_offset},
                 {"length", x.length},
                 {"redacted", x.redacted},
                 {"key", x.key},
                 {"key_source", x.key_derived ? "derived" : "received"},
                 {"kind", x.kind}});
  }
  j["findings"] = f;
  j["findings_total"] = r.findings_total;
  // What the freeze saw (live mode): each thread inside a signature or
  // rotation, at which key-heap instant; and for each, the replay that
  // pins it there (a leak that needs that thread at that instant replays
  // with it; --repeat counts how often).
  nlohmann::json freeze = nlohmann::json::array();
  nlohmann::json pinned = nlohmann::json::array();
  for (const ThreadAt& t : r.freeze) {
    freeze.push_back(
        {{"thread", t.thread}, {"op", t.op}, {"instant", t.instant}});
    if (t.op == "idle" || t.instant == 0) continue;
    TrialPlan p = r.plan;
    PinPlan(t.thread, t.instant, &p);
    pinned.push_back(ReplayCommand(o, p));
  }
  j["freeze"] = freeze;
  j["pinned_replays"] = pinned;
  // The registry's state at the snapshot, as the oracle verified it in
  // the dump (each recorded redaction checked as marker bytes).
  j["registry"] = {{"redactions_verified", r.redactions_verified},
                   {"redacted_bytes_verified", r.redacted_bytes_verified},
                   {"redactions_not_applied", r.redactions_not_applied}};
  return j;
}

nlohmann::json ReproJson(const ReproResult& result) {
  nlohmann::json j;
  j["schema"] = "sigrace.repro.report/1";
  j["seed"] = result.seed;
  j["budget_s"] = result.budget_s;
  j["start_time"] = result.start_time.empty()
                        ? nlohmann::json(nullptr)
                        : nlohmann::json(result.start_time);
  j["wall_s"] = result.wall_s;
  j["elapsed_s"] = result.elapsed_s;
  j["tsan_binary"] = result.tsan_binary;
  j["run_id"] = result.run_id;
  j["logs_dir"] = result.logs_dir;
  j["build"] = result.build_id;
  j["shard"] = {{"index", result.shard_index}, {"count", result.shard_count}};
  if (!result.options.is_null()) j["options"] = result.options;
  nlohmann::json rows = nlohmann::json::array();
  for (const ReproRow& r : result.rows) rows.push_back(ReproRowJson(r));
  j["rows"] = rows;
  j["exit_code"] = result.exit_code;
  j["verdict"] = result.verdict;
  return j;
}

}  // namespace sigrace::stress
