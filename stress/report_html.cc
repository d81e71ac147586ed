// The HTML reporter (stress/report_html.h).

#include "stress/report_html.h"

#include <algorithm>
#include <cstdio>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "base/files.h"

namespace sigrace::stress {
namespace {

using nlohmann::json;

struct Leak {
  uint64_t trial = 0;
  double elapsed_s = 0;
  std::string alg, injector, failpoint, forms, regions, replay, sidecar, dump;
};

struct Row {
  std::string source;  // the report's path
  std::string variant, alg, mode, verdict;
  uint64_t trials = 0, leaks = 0, errors = 0;
  std::optional<Leak> first_leak;
  std::string tsan = "-";
  bool tsan_row = false;  // a repro row with its own TSan counts
  std::vector<Leak> leak_list;
  double run_s = 0;  // the run's length (the timeline's scale)
};

struct Run {
  std::string path, schema, verdict;
  int exit_code = 2;
  uint64_t seed = 0;
  std::string shard;       // "2/4", "merged 4", ""
  json tsan;               // {"enabled", "total", "by_type"} or null
  std::string start_time;  // UTC ISO-8601, "" in older reports
  double wall_s = 0;
  std::string tsan_binary;  // repro: "" when it ran without the TSan build
};

// "shard 2/4", "merged from 4 shards" or "" (not sharded).
std::string ShardText(const json& r) {
  if (!r.is_object() || !r.contains("shard") || !r["shard"].is_object()) {
    return "";
  }
  const json& sh = r["shard"];
  const auto u = [&](const char* k) {
    return sh.contains(k) && sh[k].is_number_unsigned() ? sh[k].get<uint64_t>()
                                                        : 0;
  };
  if (sh.contains("index") && sh["index"].is_null()) {
    return "merged from " + std::to_string(u("count")) + " shards";
  }
  if (u("count") > 1) {
    return "shard " + std::to_string(u("index")) + "/" +
           std::to_string(u("count"));
  }
  return "";
}

std::string FormatWall(double s) {
  char buf[48];
  std::snprintf(buf, sizeof(buf), "%.1f s wall", s);
  return buf;
}

uint64_t U(const json& j, const char* k) {
  return j.is_object() && j.contains(k) && j[k].is_number_unsigned()
             ? j[k].get<uint64_t>()
             : 0;
}
double D(const json& j, const char* k) {
  return j.is_object() && j.contains(k) && j[k].is_number() ? j[k].get<double>()
                                                            : 0;
}
std::string S(const json& j, const char* k) {
  return j.is_object() && j.contains(k) && j[k].is_string()
             ? j[k].get<std::string>()
             : std::string();
}
std::string JoinStrings(const json& j, const char* k) {
  std::string s;
  if (!j.is_object() || !j.contains(k) || !j[k].is_array()) return s;
  for (const json& x : j[k]) {
    if (!x.is_string()) continue;
    if (!s.empty()) s += ", ";
    s += x.get<std::string>();
  }
  return s;
}
std::string Fmt(const char* f, double v) {
  char b[64];
  std::snprintf(b, sizeof(b), f, v);
  return b;
}

Leak LeakOf(const json& l) {
  Leak x;
  x.trial = U(l, "trial");
  x.elapsed_s = D(l, "elapsed_s");
  x.alg = S(l, "alg");
  x.injector = S(l, "injector");
  x.failpoint = S(l, "failpoint");
  x.forms = JoinStrings(l, "forms");
  x.regions = JoinStrings(l, "regions");
  x.replay = S(l, "replay");
  x.sidecar = S(l, "sidecar");
  x.dump = S(l, "dump");
  return x;
}

// Stress cells say pass/fail/error, repro rows reproduced/clean (met) or
// NOT REPRODUCED/LEAK/SHORT/ERROR, run lines "ok: ..." or "FAIL: ...",
// ablation rows leaks/unobserved/error.
std::string VerdictClass(const std::string& v) {
  if (v == "pass" || v == "reproduced" || v == "clean" || v == "leaks" ||
      v.rfind("ok", 0) == 0) {
    return "ok";
  }
  if (v == "error" || v == "ERROR" || v.rfind("harness", 0) == 0) return "err";
  return "bad";
}

void AddStress(HtmlInput& in, std::vector<Run>* runs, std::vector<Row>* rows) {
  json& r = in.report;  // non-const: a missing key reads as null
  Run run{.path = in.path,
          .schema = S(r, "schema"),
          .verdict = S(r, "verdict"),
          .exit_code = r.value("exit_code", 2),
          .seed = U(r, "seed")};
  run.shard = ShardText(r);
  run.start_time = S(r, "start_time");
  run.wall_s = D(r, "wall_s");
  run.tsan = r.value("tsan", json());
  runs->push_back(run);
  const bool tsan_on = run.tsan.is_object() && run.tsan.value("enabled", false);
  for (const json& c : r.value("cells", json::array())) {
    Row row;
    row.source = in.path;
    row.variant = S(c, "variant");
    row.alg = S(c, "alg");
    row.mode = S(c, "mode");
    row.verdict = S(c, "verdict");
    row.trials = U(c, "trials");
    row.leaks = U(c, "leaks");
    row.errors = U(c, "harness_errors");
    row.run_s = D(r, "elapsed_s");
    if (c.contains("first_leak") && c["first_leak"].is_object()) {
      row.first_leak = LeakOf(c["first_leak"]);
    }
    row.tsan = tsan_on ? std::to_string(U(run.tsan, "total")) + " (run)"
                       : std::string("-");
    for (const json& l : r.value("leaks", json::array())) {
      if (S(l, "alg") == row.alg) row.leak_list.push_back(LeakOf(l));
    }
    if (row.leak_list.empty() && row.first_leak) {
      row.leak_list.push_back(*row.first_leak);
    }
    rows->push_back(row);
  }
}

void AddRepro(HtmlInput& in, std::vector<Run>* runs, std::vector<Row>* rows) {
  const json& r = in.report;
  runs->push_back({.path = in.path,
                   .schema = S(r, "schema"),
                   .verdict = S(r, "verdict"),
                   .exit_code = r.value("exit_code", 2),
                   .seed = U(r, "seed"),
                   .shard = ShardText(r),
                   .tsan = json(),
                   .start_time = S(r, "start_time"),
                   .wall_s = D(r, "wall_s"),
                   .tsan_binary = S(r, "tsan_binary")});
  for (const json& x : r.value("rows", json::array())) {
    Row row;
    row.source = in.path;
    row.variant = S(x, "variant");
    row.alg = S(x, "alg");
    row.mode = S(x, "mode");
    row.verdict = S(x, "verdict");
    row.trials = U(x, "trials");
    row.leaks = U(x, "leaks");
    row.errors = U(x, "harness_errors");
    row.run_s = D(r, "elapsed_s");
    if (x.contains("first_leak") && x["first_leak"].is_object()) {
      row.first_leak = LeakOf(x["first_leak"]);
      if (row.first_leak->alg.empty()) row.first_leak->alg = row.alg;
      row.leak_list.push_back(*row.first_leak);
    }
    if (x.contains("tsan") && x["tsan"].is_object()) {
      row.tsan = std::to_string(U(x["tsan"], "total"));
      row.tsan_row = true;
    }
    // The cell as repro printed it ("no build", "0 in 12 tr (no race)").
    if (!S(x, "tsan_text").empty()) row.tsan = S(x, "tsan_text");
    rows->push_back(row);
  }
}

const char kStyle[] = R"(
body{font:14px/1.4 system-ui,sans-serif;margin:24px;color:#1b1f24}
h1{font-size:20px;margin:0 0 8px}h2{font-size:16px;margin:28px 0 8px}
.verdict{padding:12px 16px;border-radius:6px;font-size:16px;font-weight:600}
.ok{background:#dafbe1;color:#116329}.bad{background:#ffebe9;color:#a40e26}
.err{background:#fff8c5;color:#7d4e00}
table{border-collapse:collapse;margin:4px 0}
td,th{border:1px solid #d0d7de;padding:3px 8px;text-align:left}
td.n{text-align:right;font-variant-numeric:tabular-nums}
th{background:#f6f8fa}code{font:12px ui-monospace,monospace}
.cmd{display:flex;gap:6px;align-items:center;margin:4px 0}
.cmd code{background:#f6f8fa;padding:4px 6px;border-radius:4px;
user-select:all;overflow-x:auto;white-space:pre;max-width:1100px}
.muted{color:#57606a}
)";

const char kScript[] = R"(
document.querySelectorAll('button.copy').forEach(function(b){
  b.addEventListener('click',function(){
    var t=document.getElementById(b.dataset.target).textContent;
    var done=function(){b.textContent='copied';};
    if(navigator.clipboard){navigator.clipboard.writeText(t).then(done,
      function(){window.getSelection().selectAllChildren(
        document.getElementById(b.dataset.target));});}
  });
});
)";

std::string Td(const std::string& s, bool num = false) {
  return std::string(num ? "<td class=\"n\">" : "<td>") + HtmlEscape(s) +
         "</td>";
}

std::string Timeline(const std::vector<Row>& rows) {
  double span = 0;
  size_t lanes = 0;
  for (const Row& r : rows) {
    span = std::max(span, r.run_s);
    for (const Leak& l : r.leak_list) span = std::max(span, l.elapsed_s);
  }
  if (span <= 0) span = 1;
  const int left = 230, width = 640, lane_h = 18;
  std::string lanes_svg;
  for (const Row& r : rows) {
    const int y = 24 + static_cast<int>(lanes) * lane_h;
    lanes_svg += "<text x=\"4\" y=\"" + std::to_string(y + 4) +
                 "\" font-size=\"11\">" +
                 HtmlEscape(r.variant + " " + r.alg + " " + r.mode) +
                 "</text><line x1=\"" + std::to_string(left) + "\" x2=\"" +
                 std::to_string(left + width) + "\" y1=\"" + std::to_string(y) +
                 "\" y2=\"" + std::to_string(y) + "\" stroke=\"#d0d7de\"/>";
    for (const Leak& l : r.leak_list) {
      const int x = left + static_cast<int>(l.elapsed_s / span * width);
      lanes_svg += "<circle cx=\"" + std::to_string(x) + "\" cy=\"" +
                   std::to_string(y) + "\" r=\"4\" fill=\"#cf222e\"><title>" +
                   HtmlEscape("trial " + std::to_string(l.trial) + " at " +
                              Fmt("%.3f", l.elapsed_s) + " s: " + l.forms) +
                   "</title></circle>";
    }
    ++lanes;
  }
  const int height = 40 + static_cast<int>(lanes) * lane_h;
  std::string axis;
  for (int k = 0; k <= 4; ++k) {
    const int x = left + width * k / 4;
    axis += "<text x=\"" + std::to_string(x) + "\" y=\"" +
            std::to_string(height - 4) +
            "\" font-size=\"10\" text-anchor=\"middle\">" +
            Fmt("%.1f s", span * k / 4) + "</text>";
  }
  return "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"" +
         std::to_string(left + width + 30) + "\" height=\"" +
         std::to_string(height) +
         "\" role=\"img\" aria-label=\"leaks over "
         "time\">" +
         lanes_svg + axis + "</svg>";
}

std::string DumpStrip(const json& sidecar) {
  const double size =
      static_cast<double>(std::max<uint64_t>(U(sidecar, "dump_size"), 1));
  const int width = 600;
  std::string marks;
  for (const json& f : sidecar.value("findings", json::array())) {
    const int x = static_cast<int>(static_cast<double>(U(f, "file_offset")) /
                                   size * width);
    marks += "<rect x=\"" + std::to_string(std::min(x, width - 2)) +
             "\" y=\"2\" width=\"2\" height=\"16\" fill=\"#cf222e\"><title>" +
             HtmlEscape(S(f, "form") + " at offset " +
                        std::to_string(U(f, "file_offset")) + " (" +
                        S(f, "region") + ")") +
             "</title></rect>";
  }
  return "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"" +
         std::to_string(width) +
         "\" height=\"20\"><rect x=\"0\" y=\"2\" width=\"" +
         std::to_string(width) + "\" height=\"16\" fill=\"#eaeef2\"/>" + marks +
         "</svg>";
}

}  // namespace

std::string HtmlEscape(const std::string& s) {
  std::string o;
  o.reserve(s.size());
  for (char c : s) {
    switch (c) {
      case '&':
        o += "&amp;";
        break;
      case '<':
        o += "&lt;";
        break;
      case '>':
        o += "&gt;";
        break;
      case '"':
        o += "&quot;";
        break;
      case '\'':
        o += "&#39;";
        break;
      default:
        o += c;
    }
  }
  return o;
}

StatusOr<std::string> RenderHtml(std::vector<HtmlInput> inputs,
                                 bool read_sidecars) {
  std::vector<Run> runs;
  std::vector<Row> rows;
  std::vector<const json*> ablations;
  for (HtmlInput& in : inputs) {
    const std::string schema = S(in.report, "schema");
    if (schema == "sigrace.stress.report/1") {
      AddStress(in, &runs, &rows);
    } else if (schema == "sigrace.repro.report/1") {
      AddRepro(in, &runs, &rows);
    } else if (schema == "sigrace.ablation/1") {
      ablations.push_back(&in.report);
      runs.push_back({.path = in.path,
                      .schema = schema,
                      .verdict = "ablation",
                      .exit_code = in.report.value("exit_code", 2),
                      .seed = U(in.report, "seed"),
                      .shard = "",
                      .tsan = json()});
    } else {
      return InvalidArgumentError(
          in.path + ": not a sigrace stress, repro or ablation report");
    }
  }
  // Sidecars of every leak shown, read once.
  std::vector<std::pair<std::string, json>> sidecars;
  for (HtmlInput& in : inputs) {
    for (auto& s : in.sidecars) sidecars.push_back(s);
  }
  auto sidecar_of = [&](const std::string& path) -> const json* {
    for (auto& [p, j] : sidecars) {
      if (p == path) return &j;
    }
    if (!read_sidecars || path.empty()) return nullptr;
    StatusOr<std::string> t = ReadFile(path);
    json j = t.ok() ? json::parse(*t, nullptr, false) : json();
    if (!j.is_object()) return nullptr;
    sidecars.emplace_back(path, std::move(j));
    return &sidecars.back().second;
  };

  int worst = 0;
  for (const Run& r : runs) worst = std::max(worst, r.exit_code);
  std::string h =
      "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\">"
      "<meta name=\"viewport\" content=\"width=device-width\">"
      "<title>sigrace report</title><link rel=\"icon\" href=\"data:,\">"
      "<style>" +
      std::string(kStyle) + "</style></head><body><h1>sigrace report</h1>";
  h += "<div id=\"verdict\" class=\"verdict " +
       std::string(worst == 0   ? "ok"
                   : worst == 1 ? "bad"
                                : "err") +
       "\">" +
       (worst == 0   ? "PASS"
        : worst == 1 ? "FAIL"
                     : "ERROR") +
       " (exit " + std::to_string(worst) + ")</div><ul>";
  for (const Run& r : runs) {
    h += "<li><span class=\"" + VerdictClass(r.verdict) + "\">" +
         HtmlEscape(r.verdict) + "</span> <span class=\"muted\">" +
         HtmlEscape(
             r.path + " (" + r.schema + ", seed " + std::to_string(r.seed) +
             (r.shard.empty() ? "" : ", " + r.shard) +
             (r.start_time.empty()
                  ? ""
                  : ", started " + r.start_time + ", " + FormatWall(r.wall_s)) +
             ")") +
         "</span></li>";
  }
  h += "</ul>";

  // The table.
  h += "<h2>Variant &times; algorithm &times; mode</h2><table id=\"cells\">"
       "<tr><th>variant</th><th>alg</th><th>mode</th><th>trials</th>"
       "<th>leaks</th><th>leak rate</th><th>errors</th><th>first leak "
       "(trial)</th><th>time to first leak</th><th>TSan reports</th>"
       "<th>verdict</th></tr>";
  for (const Row& r : rows) {
    const double rate = r.trials > 0 ? static_cast<double>(r.leaks) /
                                           static_cast<double>(r.trials)
                                     : 0;
    h += "<tr>" + Td(r.variant) + Td(r.alg) + Td(r.mode) +
         Td(std::to_string(r.trials), true) +
         Td(std::to_string(r.leaks), true) +
         Td(Fmt("%.2f%%", rate * 100), true) +
         Td(std::to_string(r.errors), true) +
         Td(r.first_leak ? std::to_string(r.first_leak->trial) : "-", true) +
         Td(r.first_leak ? Fmt("%.3f s", r.first_leak->elapsed_s) : "-", true) +
         Td(r.tsan, true) + "<td class=\"" + VerdictClass(r.verdict) + "\">" +
         HtmlEscape(r.verdict) + "</td></tr>";
  }
  h += "</table>";

  h += "<h2>Leaks over the run</h2>" + Timeline(rows) +
       "<p class=\"muted\">One lane per row; a dot per leaking trial at the "
       "time since its run (or shard) started.</p>";

  // Where each finding sat.
  h += "<h2>Where in the dump</h2>";
  size_t shown = 0;
  for (const Row& r : rows) {
    for (const Leak& l : r.leak_list) {
      if (++shown > 50) break;
      h += "<h3>" +
           HtmlEscape(r.variant + " " + r.alg + " " + r.mode + ", trial " +
                      std::to_string(l.trial) + " (" + l.injector +
                      (l.failpoint.empty() ? "" : " " + l.failpoint) + ")") +
           "</h3>";
      const json* sc = sidecar_of(l.sidecar);
      if (sc == nullptr) {
        h += "<p>forms " + HtmlEscape(l.forms) + "; regions " +
             HtmlEscape(l.regions) +
             " <span class=\"muted\">(sidecar not readable)</span></p>";
        continue;
      }
      h += DumpStrip(*sc) +
           "<table class=\"findings\"><tr><th>region</th>"
           "<th>form</th><th>file offset</th><th>length</th><th>kind</th>"
           "</tr>";
      size_t n = 0;
      for (const json& f : sc->value("findings", json::array())) {
        if (++n > 16) break;
        h += "<tr>" + Td(S(f, "region")) + Td(S(f, "form")) +
             Td(std::to_string(U(f, "file_offset")), true) +
             Td(std::to_string(U(f, "length")), true) + Td(S(f, "kind")) +
             "</tr>";
      }
      h += "</table><p class=\"muted\">" +
           HtmlEscape(std::to_string(U(*sc, "findings_total")) +
                      " finding(s) in a dump of " +
                      std::to_string(U(*sc, "dump_size")) + " bytes" +
                      (l.dump.empty() ? "" : ": " + l.dump)) +
           "</p>";
    }
  }
  if (shown == 0) h += "<p>No leak.</p>";

  // TSan: a table when some report has counts, else why it has none.
  std::string tsan_rows;
  for (const Run& r : runs) {
    if (!r.tsan.is_object()) continue;
    std::string types;
    const json by_type = r.tsan.value("by_type", json::object());
    for (auto it = by_type.begin(); it != by_type.end(); ++it) {
      types += (types.empty() ? "" : ", ") + it.key() + " " + it->dump();
    }
    tsan_rows += "<tr>" + Td(r.path) +
                 Td(r.tsan.value("enabled", false) ? "yes" : "no") +
                 Td(std::to_string(U(r.tsan, "total")), true) + Td(types) +
                 "</tr>";
  }
  for (const Row& r : rows) {
    if (!r.tsan_row) continue;
    tsan_rows += "<tr>" + Td(r.variant + " " + r.alg + " " + r.mode) +
                 Td("yes") + Td(r.tsan, true) + Td("") + "</tr>";
  }
  h += "<h2>ThreadSanitizer</h2>";
  if (!tsan_rows.empty()) {
    h += "<table id=\"tsan\"><tr><th>report</th><th>enabled</th>"
         "<th>total</th><th>by type</th></tr>" +
         tsan_rows + "</table>";
  } else {
    bool repro_without = false;
    for (const Run& r : runs) {
      repro_without = repro_without || (r.schema == "sigrace.repro.report/1" &&
                                        r.tsan_binary.empty());
    }
    h += std::string("<p id=\"tsan-none\" class=\"muted\">No TSan counts: ") +
         (repro_without
              ? "the repro ran without the TSan build (none found next to "
                "its binary, or --tsan-bin none)."
              : "these runs were not built with ThreadSanitizer.") +
         "</p>";
  }

  if (!ablations.empty()) {
    h += "<h2>Ablation</h2><table id=\"ablation\"><tr><th>protection</th>"
         "<th>status</th><th>trials</th><th>trials to first leak</th>"
         "<th>alg</th><th>form</th><th>region</th></tr>";
    for (const json* a : ablations) {
      for (const json& x : a->value("rows", json::array())) {
        h += "<tr>" + Td(S(x, "protection")) + "<td class=\"" +
             VerdictClass(S(x, "status")) + "\">" + HtmlEscape(S(x, "status")) +
             "</td>" + Td(std::to_string(U(x, "trials")), true) +
             Td(x.value("trials_to_first_leak", json()).is_null()
                    ? "-"
                    : std::to_string(U(x, "trials_to_first_leak")),
                true) +
             Td(S(x, "alg")) + Td(S(x, "form")) + Td(S(x, "region")) + "</tr>";
      }
    }
    h += "</table>";
  }

  // Replay commands.
  h += "<h2>Replay</h2>";
  size_t id = 0;
  std::set<std::string> done;
  auto add_cmd = [&](const std::string& label, const std::string& cmd) {
    if (cmd.empty() || !done.insert(cmd).second) return;
    const std::string el = "cmd" + std::to_string(id++);
    h += "<div class=\"cmd\"><span>" + HtmlEscape(label) +
         "</span><code id=\"" + el + "\">" + HtmlEscape(cmd) +
         "</code><button class=\"copy\" data-target=\"" + el +
         "\">copy</button></div>";
  };
  for (const Row& r : rows) {
    for (const Leak& l : r.leak_list) {
      add_cmd(r.variant + " " + r.alg + " " + r.mode + " trial " +
                  std::to_string(l.trial),
              l.replay);
    }
  }
  for (const json* a : ablations) {
    for (const json& x : a->value("rows", json::array())) {
      add_cmd("ablation " + S(x, "protection"), S(x, "replay"));
    }
  }
  if (id == 0) h += "<p>No leak to replay.</p>";
  h += "<script>" + std::string(kScript) + "</script></body></html>\n";
  return h;
}

}  // namespace sigrace::stress
