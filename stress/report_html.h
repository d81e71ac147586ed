// The HTML reporter of `sigrace report --html`: stress reports (one shard,
// or merged by `sigrace merge`), repro reports and ablation reports (by
// their "schema") rendered as one self-contained page: inline CSS, inline
// SVG, one small inline script for the copy buttons; nothing is fetched.
//
// The page: the verdict at the top; the variant x algorithm x mode table
// (trials, leaks, leak rate, time to first leak, TSan reports, verdict); a
// timeline of leaks over the run (SVG, one lane per row); where in the
// dump each finding sat (a strip of the dump with the finding's byte
// offset marked, its region, form, length and kind, from the leak's
// sidecar when it can be read); the TSan counts by report type; the
// ablation table when an ablation report is given; and the replay command
// of every leak, copyable.
//
// No key byte reaches the page: it is built from the reports and
// sidecars, which carry offsets, form names, lengths and region names
// only.
//
// Thread safety: pure functions, except that RenderHtml reads sidecar
// files. Not async-signal-safe.

#ifndef SIGRACE_STRESS_REPORT_HTML_H_
#define SIGRACE_STRESS_REPORT_HTML_H_

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "base/status.h"

namespace sigrace::stress {

struct HtmlInput {
  std::string path;  // shown on the page
  nlohmann::json report;
  // Leak sidecars by their path (filled by RenderHtml when read_sidecars
  // is set; a test may fill it).
  std::vector<std::pair<std::string, nlohmann::json>> sidecars;
};

// InvalidArgument when an input is not a report this renders.
StatusOr<std::string> RenderHtml(std::vector<HtmlInput> inputs,
                                 bool read_sidecars);

// `s` with &, <, >, " and ' escaped.
std::string HtmlEscape(const std::string& s);

}  // namespace sigrace::stress

#endif  // SIGRACE_STRESS_REPORT_HTML_H_
