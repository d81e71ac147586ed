// The JUnit reporter: one test case per cell of `sigrace stress` and per
// row of `sigrace repro`.

#include <string>
#include <vector>

#include "stress/report.h"
#include "stress/repro_report.h"

namespace sigrace::stress {
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
       "\" time=\"" + FormatDouble("%.3f", total) + "\">\n";
  x += "  <testsuite name=\"" + XmlEscape(suite) + "\" tests=\"" +
       std::to_string(cases.size()) + "\" failures=\"" +
       std::to_string(failures) + "\" errors=\"" + std::to_string(errors) +
       "\" time=\"" + FormatDouble("%.3f", total) + "\">\n";
  for (const JUnitCase& c : cases) {
    x += "    <testcase classname=\"" + XmlEscape(c.classname) + "\" name=\"" +
         XmlEscape(c.name) + "\" time=\"" + FormatDouble("%.3f", c.time_s) +
         "\"";
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
      x += "      <system-out>" + XmlEscape(c.system_out) + "</system-out>\n";
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
        "seed " + std::to_string(o.seed) +
        (o.trial ? ", trial " + std::to_string(*o.trial) + " x " +
                       std::to_string(r.trials) + " run(s)"
                 : ", trials " + std::to_string(o.FirstTrial()) + ".." +
                       std::to_string(o.FirstTrial() + r.trials - 1));
    if (c.verdict == "fail") {
      if (o.expect == Expect::kClean && c.first_leak) {
        const TrialResult& f = *c.first_leak;
        std::string forms;
        for (const std::string& s : f.Forms()) {
          forms += (forms.empty() ? "" : ",") + s;
        }
        jc.failure = "leak at seed " + std::to_string(f.plan.seed) + " trial " +
                     std::to_string(f.plan.trial) + " (" +
                     std::to_string(c.leaks) + " leaking of " +
                     std::to_string(c.trials) + "; forms " + forms +
                     "); replay: " + c.first_leak_replay;
      } else {
        jc.failure = "no leak in " + std::to_string(c.trials) + " trials (" +
                     range + "), expected a leak";
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

std::vector<JUnitCase> ReproJUnitCases(const ReproResult& result) {
  std::vector<JUnitCase> cases;
  for (const ReproRow& r : result.rows) {
    JUnitCase c;
    c.classname = "sigrace.repro." + r.spec.variant;
    c.name = r.spec.variant + "/" + r.spec.alg + "/" + r.spec.mode;
    c.time_s = r.seconds;
    const std::string where =
        "seed " + std::to_string(result.seed) +
        (r.first_leak.is_object()
             ? " trial " +
                   std::to_string(r.first_leak.value("trial", uint64_t{0}))
             : "");
    if (r.error) {
      c.error = r.verdict + " (" + where + "): " + r.note;
    } else if (!r.ok) {
      c.failure = r.verdict + " (" + where + ", " + std::to_string(r.trials) +
                  " trials): " +
                  (r.first_leak.is_object() ? r.first_leak.value("replay", "")
                                            : r.command) +
                  (r.note.empty() ? "" : "\n" + r.note);
    }
    cases.push_back(c);
  }
  return cases;
}

}  // namespace sigrace::stress
