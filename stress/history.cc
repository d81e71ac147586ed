#include "stress/history.h"

#include <sys/stat.h>

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdio>
#include <ctime>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "base/files.h"
#include "stress/report.h"
#include "stress/report_html.h"

namespace sigrace::stress {
namespace {

using nlohmann::json;

// A number field of `j` (absent or null: nullopt). Throws on another type.
std::optional<double> Num(const json& j, const char* key) {
  if (!j.is_object() || !j.contains(key) || j[key].is_null()) {
    return std::nullopt;
  }
  if (!j[key].is_number()) {
    throw json::type_error::create(302, std::string(key) + " not a number", &j);
  }
  return j[key].get<double>();
}

std::optional<double> Rate(std::optional<double> n,
                           std::optional<double> seconds) {
  if (!n || !seconds || *seconds <= 0) return std::nullopt;
  return *n / *seconds;
}

std::string Fmt(const std::optional<double>& v) {
  if (!v) return "-";
  char buf[64];
  // Whole numbers and large ones without a fraction, the rest to 3 digits.
  if ((*v == std::floor(*v) && std::fabs(*v) < 1e15) || std::fabs(*v) >= 1000) {
    std::snprintf(buf, sizeof(buf), "%.0f", *v);
  } else {
    std::snprintf(buf, sizeof(buf), "%.3g", *v);
  }
  return buf;
}

std::string Utc(double t) {
  const time_t s = static_cast<time_t>(t);
  struct tm tm;
  gmtime_r(&s, &tm);
  char buf[32];
  std::strftime(buf, sizeof(buf), "%Y-%m-%d %H:%M", &tm);
  return buf;
}

std::string Base(const std::string& p) {
  return std::filesystem::path(p).filename().string();
}

bool Flagged(const History& h, size_t night, size_t figure) {
  for (const HistoryFlag& f : h.flags) {
    if (f.night == night && f.figure == figure) return true;
  }
  return false;
}

// Where the nights' times come from, for the output.
std::string OrderText(const History& h) {
  if (h.by_mtime == 0) return "ordered by start time";
  if (h.by_mtime == h.nights.size()) {
    return "ordered by file mtime: no report carries a start time";
  }
  return "ordered by start time; " + std::to_string(h.by_mtime) +
         " report(s) without one (older sigrace) placed by file mtime";
}

std::string WhenText(const Night& n) {
  return Utc(n.When()) + (n.start ? "" : " (mtime)");
}

}  // namespace

std::optional<double> ParseIsoUtc(const std::string& text) {
  int y = 0, mo = 0, d = 0, h = 0, mi = 0, s = 0, used = 0;
  if (std::sscanf(text.c_str(), "%4d-%2d-%2dT%2d:%2d:%2d%n", &y, &mo, &d, &h,
                  &mi, &s, &used) != 6 ||
      used != 19 || mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 ||
      s > 60) {
    return std::nullopt;
  }
  double frac = 0;
  size_t i = 19;
  if (i < text.size() && text[i] == '.') {
    double scale = 0.1;
    for (++i; i < text.size() &&
              std::isdigit(static_cast<unsigned char>(text[i])) != 0;
         ++i) {
      frac += (text[i] - '0') * scale;
      scale /= 10;
    }
  }
  const std::string zone = text.substr(i);
  if (zone != "Z" && zone != "+00:00") return std::nullopt;
  struct tm tm = {};
  tm.tm_year = y - 1900;
  tm.tm_mon = mo - 1;
  tm.tm_mday = d;
  tm.tm_hour = h;
  tm.tm_min = mi;
  tm.tm_sec = s;
  return static_cast<double>(timegm(&tm)) + frac;
}

double Median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  const size_t n = v.size();
  return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

double MedianAbsDeviation(const std::vector<double>& v) {
  const double m = Median(v);
  std::vector<double> d;
  for (double x : v) d.push_back(std::fabs(x - m));
  return Median(d);
}

StatusOr<Night> NightFromReport(const std::string& path, const json& r,
                                double mtime) {
  Night n;
  n.path = path;
  n.mtime = mtime;
  if (r.is_object() && r.contains("start_time") && !r["start_time"].is_null()) {
    const json& t = r["start_time"];
    n.start = t.is_string() ? ParseIsoUtc(t.get<std::string>()) : std::nullopt;
    if (!n.start) {
      return InvalidArgumentError(path + ": start_time " + t.dump() +
                                  " is not a UTC ISO-8601 time");
    }
  }
  const std::string schema =
      r.is_object() && r.contains("schema") && r["schema"].is_string()
          ? r["schema"].get<std::string>()
          : "";
  try {
    if (schema == "sigrace.stress.report/1") {
      const json& shard = r.value("shard", json::object());
      n.kind = shard.is_object() && shard.value("source", json()) == "merge"
                   ? "merged"
                   : "stress";
      n.build = r.value("build", "");
      json opts = r.value("options", json::object());
      if (opts.is_object()) opts.erase("seed");
      n.options = opts.dump();
      const json& t = r.at("totals");
      const std::optional<double> elapsed = Num(r, "elapsed_s");
      n.value[0] = Num(t, "trials");
      n.value[1] = Num(t, "leak");
      n.value[2] = Num(r, "trials_per_s");
      if (!n.value[2]) n.value[2] = Rate(n.value[0], elapsed);
      n.value[3] = Rate(Num(t, "dumps"), elapsed);
      n.value[4] = Rate(Num(t, "dump_bytes_searched"), elapsed);
    } else if (schema == "sigrace.repro.report/1") {
      n.kind = "repro";
      n.build = r.value("build", "");
      json opts = {{"budget_s", r.value("budget_s", json())},
                   {"tsan_binary", r.value("tsan_binary", json())},
                   {"shard", r.value("shard", json())}};
      n.options = opts.dump();
      double trials = 0, leaks = 0;
      for (const json& row : r.at("rows")) {
        trials += Num(row, "trials").value_or(0);
        leaks += Num(row, "leaks").value_or(0);
      }
      n.value[0] = trials;
      n.value[1] = leaks;
      n.value[2] = Rate(trials, Num(r, "elapsed_s"));
    } else {
      return InvalidArgumentError(
          path + ": not a stress, merged or repro report (schema \"" + schema +
          "\")");
    }
  } catch (const json::exception& e) {
    return InvalidArgumentError(path + ": malformed report: " + e.what());
  }
  return n;
}

StatusOr<History> AnalyzeHistory(std::vector<Night> nights) {
  if (nights.empty()) return InvalidArgumentError("no reports");
  std::stable_sort(nights.begin(), nights.end(),
                   [](const Night& a, const Night& b) {
                     if (a.When() != b.When()) return a.When() < b.When();
                     return a.path < b.path;
                   });
  const bool repro = nights[0].kind == "repro";
  for (const Night& n : nights) {
    if ((n.kind == "repro") != repro) {
      return InvalidArgumentError(n.path + ": a " + n.kind + " report among " +
                                  nights[0].kind + " reports (" +
                                  nights[0].path + ")");
    }
  }
  History h;
  for (const Night& n : nights) h.by_mtime += n.start ? 0 : 1;
  for (size_t i = 1; i < nights.size(); ++i) {
    std::string c;
    if (nights[i].build != nights[i - 1].build) c = "build";
    if (nights[i].options != nights[i - 1].options) {
      c += c.empty() ? "options" : ", options";
    }
    nights[i].change = c;
  }
  for (size_t f = 0; f < kFigureCount; ++f) {
    h.too_few[f] = true;
    std::vector<double> previous;
    for (size_t i = 0; i < nights.size(); ++i) {
      const std::optional<double>& v = nights[i].value[f];
      if (!v) continue;
      if (previous.size() >= kMinPrevious) {
        h.too_few[f] = false;
        const double med = Median(previous);
        const double mad = MedianAbsDeviation(previous);
        if (std::fabs(*v - med) > 3 * mad) {
          h.flags.push_back({i, f, *v, med, mad});
        }
      }
      previous.push_back(*v);
    }
  }
  std::sort(h.flags.begin(), h.flags.end(),
            [](const HistoryFlag& a, const HistoryFlag& b) {
              return a.night != b.night ? a.night < b.night
                                        : a.figure < b.figure;
            });
  h.nights = std::move(nights);
  return h;
}

StatusOr<History> LoadHistory(const std::string& dir) {
  std::error_code ec;
  if (!std::filesystem::is_directory(dir, ec)) {
    return InvalidArgumentError(dir + ": not a directory");
  }
  std::vector<Night> nights;
  std::filesystem::directory_iterator it(dir, ec), end;
  if (ec) return InvalidArgumentError(dir + ": " + ec.message());
  for (; it != end; it.increment(ec)) {
    if (ec) return InvalidArgumentError(dir + ": " + ec.message());
    const std::filesystem::path p = it->path();
    if (p.extension() != ".json") continue;
    struct stat st;
    if (::stat(p.c_str(), &st) != 0 || !S_ISREG(st.st_mode)) continue;
    StatusOr<std::string> text = ReadFile(p.string());
    if (!text.ok()) {
      return InvalidArgumentError(p.string() +
                                  ": unreadable: " + text.status().message());
    }
    json j = json::parse(*text, nullptr, false);
    if (j.is_discarded()) {
      return InvalidArgumentError(p.string() + ": unreadable: not JSON");
    }
    const double mtime = static_cast<double>(st.st_mtim.tv_sec) +
                         static_cast<double>(st.st_mtim.tv_nsec) * 1e-9;
    StatusOr<Night> n = NightFromReport(p.string(), j, mtime);
    if (!n.ok()) return n.status();
    nights.push_back(std::move(*n));
  }
  if (nights.empty()) {
    return InvalidArgumentError(dir + ": no JSON reports (empty dir)");
  }
  return AnalyzeHistory(std::move(nights));
}

std::string HistoryText(const History& h) {
  std::string out;
  char buf[512];
  std::snprintf(buf, sizeof(buf), "%-3s %-24s %-24s %-7s", "#", "start (UTC)",
                "report", "kind");
  out += buf;
  for (const char* f : kFigures) {
    std::snprintf(buf, sizeof(buf), " %17s", f);
    out += buf;
  }
  out += "  change\n";
  for (size_t i = 0; i < h.nights.size(); ++i) {
    const Night& n = h.nights[i];
    std::snprintf(buf, sizeof(buf), "%-3zu %-24s %-24s %-7s", i + 1,
                  WhenText(n).c_str(), Base(n.path).c_str(), n.kind.c_str());
    out += buf;
    for (size_t f = 0; f < kFigureCount; ++f) {
      const std::string cell = Fmt(n.value[f]) + (Flagged(h, i, f) ? "!" : " ");
      std::snprintf(buf, sizeof(buf), " %17s", cell.c_str());
      out += buf;
    }
    out += n.change.empty() ? "\n" : "  " + n.change + " changed\n";
  }
  out += "\n";
  for (size_t f = 0; f < kFigureCount; ++f) {
    if (h.too_few[f]) {
      std::snprintf(buf, sizeof(buf),
                    "%s: too few nights (%zu previous nights needed)\n",
                    kFigures[f], kMinPrevious);
      out += buf;
    }
  }
  for (const HistoryFlag& fl : h.flags) {
    std::snprintf(buf, sizeof(buf),
                  "flag: night %zu (%s) %s %s outside median %s +- 3 x MAD "
                  "%s\n",
                  fl.night + 1, Base(h.nights[fl.night].path).c_str(),
                  kFigures[fl.figure], Fmt(fl.value).c_str(),
                  Fmt(fl.median).c_str(), Fmt(fl.mad).c_str());
    out += buf;
  }
  std::snprintf(buf, sizeof(buf), "%zu nights, %zu flags (%s)\n",
                h.nights.size(), h.flags.size(), OrderText(h).c_str());
  out += buf;
  return out;
}

json HistoryJson(const History& h) {
  json j;
  j["schema"] = "sigrace.history/1";
  j["order"] = h.by_mtime == 0                 ? "start_time"
               : h.by_mtime == h.nights.size() ? "mtime"
                                               : "start_time, mtime fallback";
  j["nights_by_mtime"] = h.by_mtime;
  j["min_previous"] = kMinPrevious;
  json nights = json::array();
  for (const Night& n : h.nights) {
    json nj = {{"path", n.path},
               {"mtime", n.mtime},
               {"start_time", n.start ? json(IsoUtc(*n.start)) : json(nullptr)},
               {"kind", n.kind},
               {"build", n.build},
               {"change", n.change}};
    for (size_t f = 0; f < kFigureCount; ++f) {
      nj[kFigures[f]] = n.value[f] ? json(*n.value[f]) : json(nullptr);
    }
    nights.push_back(nj);
  }
  j["nights"] = nights;
  json too_few = json::array();
  for (size_t f = 0; f < kFigureCount; ++f) {
    if (h.too_few[f]) too_few.push_back(kFigures[f]);
  }
  j["too_few_nights"] = too_few;
  json flags = json::array();
  for (const HistoryFlag& fl : h.flags) {
    flags.push_back({{"night", fl.night},
                     {"path", h.nights[fl.night].path},
                     {"figure", kFigures[fl.figure]},
                     {"value", fl.value},
                     {"median", fl.median},
                     {"mad", fl.mad}});
  }
  j["flags"] = flags;
  j["exit_code"] = h.flags.empty() ? 0 : 1;
  return j;
}

std::string HistoryHtml(const History& h) {
  std::string out =
      "<!doctype html>\n<html><head><meta charset=\"utf-8\">"
      "<title>sigrace history</title><style>"
      "body{font:14px sans-serif;margin:1.5em}"
      "table{border-collapse:collapse}td,th{border:1px solid #ccc;"
      "padding:2px 6px;text-align:right}.flag{background:#fdd;"
      "font-weight:bold}.chart{margin:1em 0}</style></head><body>\n"
      "<h1>sigrace history</h1>\n";
  char buf[512];
  std::snprintf(buf, sizeof(buf),
                "<p id=\"summary\">%zu nights, %zu flags (%s; flag: outside "
                "median &plusmn; 3 &times; MAD of the previous nights, at "
                "least %zu of them)</p>\n",
                h.nights.size(), h.flags.size(), OrderText(h).c_str(),
                kMinPrevious);
  out += buf;
  out +=
      "<table><tr><th>#</th><th>start (UTC)</th><th>report</th>"
      "<th>kind</th>";
  for (const char* f : kFigures) out += std::string("<th>") + f + "</th>";
  out += "<th>change</th></tr>\n";
  for (size_t i = 0; i < h.nights.size(); ++i) {
    const Night& n = h.nights[i];
    out += "<tr><td>" + std::to_string(i + 1) + "</td><td>" +
           HtmlEscape(WhenText(n)) + "</td><td>" + HtmlEscape(Base(n.path)) +
           "</td><td>" + HtmlEscape(n.kind) + "</td>";
    for (size_t f = 0; f < kFigureCount; ++f) {
      const bool fl = Flagged(h, i, f);
      out += std::string(fl ? "<td class=\"flag\">" : "<td>") +
             HtmlEscape(Fmt(n.value[f])) + (fl ? "!" : "") + "</td>";
    }
    out += "<td>" + HtmlEscape(n.change) + "</td></tr>\n";
  }
  out += "</table>\n";
  const double w = 640, ht = 160, pad = 30;
  const size_t count = h.nights.size();
  auto x_of = [&](size_t i) {
    return count < 2 ? w / 2 : pad + (w - 2 * pad) * i / (count - 1);
  };
  for (size_t f = 0; f < kFigureCount; ++f) {
    out += std::string("<div class=\"chart\"><h2>") + kFigures[f] + "</h2>";
    if (h.too_few[f]) out += "<p>too few nights</p>";
    double lo = 0, hi = 0;
    bool any = false;
    for (const Night& n : h.nights) {
      if (!n.value[f]) continue;
      lo = any ? std::min(lo, *n.value[f]) : *n.value[f];
      hi = any ? std::max(hi, *n.value[f]) : *n.value[f];
      any = true;
    }
    if (!any) {
      out += "<p>not in these reports</p></div>\n";
      continue;
    }
    if (hi == lo) hi = lo + 1;
    auto y_of = [&](double v) {
      return ht - pad - (ht - 2 * pad) * (v - lo) / (hi - lo);
    };
    std::snprintf(buf, sizeof(buf),
                  "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%.0f\" "
                  "height=\"%.0f\" data-figure=\"%s\">"
                  "<rect width=\"100%%\" height=\"100%%\" fill=\"#fafafa\"/>",
                  w, ht, kFigures[f]);
    out += buf;
    for (size_t i = 0; i < count; ++i) {
      if (h.nights[i].change.empty()) continue;
      std::snprintf(buf, sizeof(buf),
                    "<line class=\"change\" x1=\"%.1f\" x2=\"%.1f\" y1=\"5\" "
                    "y2=\"%.0f\" stroke=\"#888\" stroke-dasharray=\"4 3\">"
                    "<title>%s changed</title></line>",
                    x_of(i) - (x_of(i) - x_of(i - 1)) / 2,
                    x_of(i) - (x_of(i) - x_of(i - 1)) / 2, ht - 5,
                    HtmlEscape(h.nights[i].change).c_str());
      out += buf;
    }
    std::string points;
    for (size_t i = 0; i < count; ++i) {
      if (!h.nights[i].value[f]) continue;
      std::snprintf(buf, sizeof(buf), "%.1f,%.1f ", x_of(i),
                    y_of(*h.nights[i].value[f]));
      points += buf;
    }
    out +=
        "<polyline fill=\"none\" stroke=\"#36c\" stroke-width=\"2\" "
        "points=\"" +
        points + "\"/>";
    for (size_t i = 0; i < count; ++i) {
      if (!h.nights[i].value[f]) continue;
      const bool fl = Flagged(h, i, f);
      std::snprintf(buf, sizeof(buf),
                    "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"%d\" fill=\"%s\"%s>"
                    "<title>night %zu: %s</title></circle>",
                    x_of(i), y_of(*h.nights[i].value[f]), fl ? 6 : 3,
                    fl ? "#d22" : "#36c", fl ? " class=\"flagged\"" : "", i + 1,
                    HtmlEscape(Fmt(h.nights[i].value[f])).c_str());
      out += buf;
    }
    std::snprintf(buf, sizeof(buf),
                  "<text x=\"2\" y=\"%.0f\" font-size=\"10\">%s</text>"
                  "<text x=\"2\" y=\"%.0f\" font-size=\"10\">%s</text></svg>",
                  pad - 4, HtmlEscape(Fmt(hi)).c_str(), ht - pad + 12,
                  HtmlEscape(Fmt(lo)).c_str());
    out += buf;
    out += "</div>\n";
  }
  out += "<h2>Flags</h2><ul id=\"flags\">";
  for (const HistoryFlag& fl : h.flags) {
    out += "<li>night " + std::to_string(fl.night + 1) + " (" +
           HtmlEscape(Base(h.nights[fl.night].path)) + ") " +
           kFigures[fl.figure] + " " + HtmlEscape(Fmt(fl.value)) +
           " outside median " + HtmlEscape(Fmt(fl.median)) +
           " &plusmn; 3 &times; MAD " + HtmlEscape(Fmt(fl.mad)) + "</li>";
  }
  out += "</ul></body></html>\n";
  return out;
}

}  // namespace sigrace::stress
