#include "stress/report.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <set>

namespace sigrace::stress {

const char* VerdictName(Verdict verdict) {
  switch (verdict) {
    case Verdict::kClean:
      return "clean";
    case Verdict::kLeak:
      return "leak";
    case Verdict::kHarnessError:
      return "harness-error";
  }
  return "?";
}

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
  if (r.dump_size > 0) {
    ++dumps;
    dump_bytes += r.dump_size;
    dump_bytes_searched += r.dump_searched;
  }
  switch (r.verdict) {
    case Verdict::kClean:
      ++clean;
      ++cell->clean;
      break;
    case Verdict::kLeak:
      ++leaks;
      ++cell->leaks;
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
      c.verdict = c.leaks > 0 ? "fail" : c.harness_errors > 0 ? "error"
                                                               : "pass";
    } else {
      c.verdict = c.leaks > 0 ? "pass" : c.harness_errors > 0 ? "error"
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
}

double RunReport::TrialsPerSecond() const {
  return elapsed_s > 0 ? static_cast<double>(trials) / elapsed_s : 0;
}

namespace {

std::string Join(const std::vector<std::string>& v, const char* sep) {
  std::string s;
  for (const std::string& x : v) {
    if (!s.empty()) s += sep;
    s += x;
  }
  return s;
}

std::string Fmt(const char* fmt, double v) {
  char buf[64];
  std::snprintf(buf, sizeof(buf), fmt, v);
  return buf;
}

}  // namespace

std::string TextSummary(const RunReport& r) {
  const StressOptions& o = r.options;
  std::string s;
  char line[512];
  std::snprintf(line, sizeof(line),
                "%-16s %-6s %-5s %8s %6s %6s  %-32s %s\n", "variant", "alg",
                "mode", "trials", "leaks", "errors", "first leak",
                "verdict");
  s += line;
  for (const CellStats& c : r.cells) {
    std::string first = "-";
    if (c.first_leak) {
      first = "trial " + std::to_string(c.first_leak->plan.trial) + " (" +
              Fmt("%.2fs", c.first_leak->elapsed_s) + ")";
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
    if (!r.window.empty()) s += "  window:  " + r.window + "\n";
    s += "  dump:    " +
         (f.dump_path.empty() ? std::string("(not kept)") : f.dump_path) +
         "\n";
    s += "  replay:  " + c.first_leak_replay + "\n";
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
  s += Fmt("%.1f", r.TrialsPerSecond()) + " trials/s, " +
       std::to_string(r.dumps) + " dumps (" +
       Fmt("%.1f", static_cast<double>(r.dump_bytes) / 1048576.0) +
       " MiB; " +
       Fmt("%.1f", static_cast<double>(r.dump_bytes_searched) / 1048576.0) +
       " MiB read, the rest holes) in " + Fmt("%.1f", r.elapsed_s) +
       " s; seed " +
       std::to_string(o.seed) + "\n";
  s += r.verdict + "\n";
  return s;
}

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
  j["findings"] = r.findings_total;
  j["dump"] = r.dump_path;
  j["sidecar"] = r.sidecar_path;
  j["replay"] = ReplayCommand(o, r.plan);
  return j;
}

nlohmann::json ReportJson(const RunReport& r) {
  const StressOptions& o = r.options;
  nlohmann::json j;
  j["schema"] = "sigrace.stress.report/1";
  j["command"] = r.command;
  j["seed"] = o.seed;
  j["first_trial"] = o.FirstTrial();
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
  j["elapsed_s"] = r.elapsed_s;
  j["trials_per_s"] = r.TrialsPerSecond();
  j["totals"] = {{"trials", r.trials},         {"clean", r.clean},
                 {"leak", r.leaks},            {"harness_error", r.harness_errors},
                 {"dumps", r.dumps},           {"dump_bytes", r.dump_bytes},
                 {"dump_bytes_searched", r.dump_bytes_searched},
                 {"worker_restarts", r.worker_restarts}};
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
  j["dump"] = r.dump_path;
  j["dump_size"] = r.dump_size;
  j["replay"] = ReplayCommand(o, r.plan);
  nlohmann::json f = nlohmann::json::array();
  for (const LeakFinding& x : r.findings) {
    f.push_back({{"file_offset", x.file_offset},
                 {"vaddr", x.vaddr ? nlohmann::json(*x.vaddr)
                                   : nlohmann::json(nullptr)},
                 {"region", x.region},
                 {"form", x.form},
                 {"form_offset", x.form_offset},
                 {"length", x.length},
                 {"redacted", x.redacted}});
  }
  j["findings"] = f;
  j["findings_total"] = r.findings_total;
  return j;
}

namespace {

std::string XmlEscape(const std::string& in) {
  std::string out;
  for (char c : in) {
    switch (c) {
      case '&':
        out += "&amp;";
        break;
      case '<':
        out += "&lt;";
        break;
      case '>':
        out += "&gt;";
        break;
      case '"':
        out += "&quot;";
        break;
      case '\'':
        out += "&apos;";
        break;
      default:
        // Control characters other than tab/newline are not valid XML 1.0.
        if (static_cast<unsigned char>(c) < 0x20 && c != '\n' && c != '\t') {
          out += ' ';
        } else {
          out += c;
        }
    }
  }
  return out;
}

}  // namespace

std::string JUnitXml(const std::string& suite,
                     const std::vector<JUnitCase>& cases) {
  size_t failures = 0, errors = 0;
  double total = 0;
  for (const JUnitCase& c : cases) {
    if (!c.failure.empty()) ++failures;
    if (!c.error.empty()) ++errors;
    total += c.time_s;
  }
  std::string x = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n";
  x += "<testsuites name=\"" + XmlEscape(suite) + "\" tests=\"" +
       std::to_string(cases.size()) + "\" failures=\"" +
       std::to_string(failures) + "\" errors=\"" + std::to_string(errors) +
       "\" time=\"" + Fmt("%.3f", total) + "\">\n";
  x += "  <testsuite name=\"" + XmlEscape(suite) + "\" tests=\"" +
       std::to_string(cases.size()) + "\" failures=\"" +
       std::to_string(failures) + "\" errors=\"" + std::to_string(errors) +
       "\" time=\"" + Fmt("%.3f", total) + "\">\n";
  for (const JUnitCase& c : cases) {
    x += "    <testcase classname=\"" + XmlEscape(c.classname) +
         "\" name=\"" + XmlEscape(c.name) + "\" time=\"" +
         Fmt("%.3f", c.time_s) + "\"";
    if (c.failure.empty() && c.error.empty() && c.system_out.empty()) {
      x += "/>\n";
      continue;
    }
    x += ">\n";
    if (!c.failure.empty()) {
      x += "      <failure message=\"" + XmlEscape(c.failure) + "\">" +
           XmlEscape(c.failure) + "</failure>\n";
    }
    if (!c.error.empty()) {
      x += "      <error message=\"" + XmlEscape(c.error) + "\">" +
           XmlEscape(c.error) + "</error>\n";
    }
    if (!c.system_out.empty()) {
      x += "      <system-out>" + XmlEscape(c.system_out) +
           "</system-out>\n";
    }
    x += "    </testcase>\n";
  }
  x += "  </testsuite>\n</testsuites>\n";
  return x;
}

std::vector<JUnitCase> StressJUnitCases(const RunReport& r) {
  const StressOptions& o = r.options;
  std::vector<JUnitCase> out;
  const double per_trial =
      r.trials > 0 ? r.elapsed_s / static_cast<double>(r.trials) : 0;
  for (const CellStats& c : r.cells) {
    JUnitCase jc;
    jc.classname = "sigrace.stress." + c.variant;
    jc.name = c.variant + "/" + c.alg + "/" + c.mode;
    jc.time_s = per_trial * static_cast<double>(c.trials);
    const std::string range =
        "seed " + std::to_string(o.seed) + ", trials " +
        std::to_string(o.FirstTrial()) + ".." +
        std::to_string(o.FirstTrial() + r.trials - 1);
    if (c.verdict == "fail") {
      if (o.expect == Expect::kClean && c.first_leak) {
        const TrialResult& f = *c.first_leak;
        std::string forms;
        for (const std::string& s : f.Forms()) {
          forms += (forms.empty() ? "" : ",") + s;
        }
        jc.failure = "leak at seed " + std::to_string(f.plan.seed) +
                     " trial " + std::to_string(f.plan.trial) + " (" +
                     std::to_string(c.leaks) + " leaking of " +
                     std::to_string(c.trials) + "; forms " + forms +
                     "); replay: " + c.first_leak_replay;
      } else {
        jc.failure = "no leak in " + std::to_string(c.trials) +
                     " trials (" + range + "), expected a leak";
      }
    } else if (c.verdict == "error") {
      std::string first;
      for (const TrialResult& e : r.error_list) {
        if (e.plan.alg == c.alg) {
          first = "seed " + std::to_string(e.plan.seed) + " trial " +
                  std::to_string(e.plan.trial) + ": " + e.message;
          break;
        }
      }
      jc.error = std::to_string(c.harness_errors) +
                 " harness error(s), first at " + first;
    }
    if (c.first_leak) {
      jc.system_out = "first leak: seed " +
                      std::to_string(c.first_leak->plan.seed) + " trial " +
                      std::to_string(c.first_leak->plan.trial) +
                      "; replay: " + c.first_leak_replay;
    }
    out.push_back(jc);
  }
  return out;
}

Status WriteFileAtomic(const std::string& path, const std::string& text,
                       int mode) {
  const std::string tmp = path + ".tmp." + std::to_string(getpid());
  const int fd = open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC,
                      mode);
  if (fd < 0) return ErrnoError("open " + tmp, errno);
  size_t done = 0;
  while (done < text.size()) {
    const ssize_t n = write(fd, text.data() + done, text.size() - done);
    if (n < 0) {
      if (errno == EINTR) continue;
      const int e = errno;
      close(fd);
      unlink(tmp.c_str());
      return ErrnoError("write " + tmp, e);
    }
    done += static_cast<size_t>(n);
  }
  if (fsync(fd) != 0 || close(fd) != 0) {
    const int e = errno;
    unlink(tmp.c_str());
    return ErrnoError("close " + tmp, e);
  }
  if (rename(tmp.c_str(), path.c_str()) != 0) {
    const int e = errno;
    unlink(tmp.c_str());
    return ErrnoError("rename " + path, e);
  }
  return Status::Ok();
}

}  // namespace sigrace::stress
