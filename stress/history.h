// `sigrace report --history DIR`: trends over nights from the JSON reports
// kept in one directory (one report per night: stress, merged or repro
// reports, stress/report.h and stress/repro_report.h).
//
// Nights are ordered by the start time the report carries ("start_time",
// UTC ISO-8601); a report without one (written by an older sigrace) is
// placed by its file's mtime instead, and the output says how many were;
// ties by file name. Per night, the figures the report carries:
// trials, leaks, trials/s, dumps/s and scan rate (dump bytes searched per
// second of the run). Repro reports carry no dump counts: their dumps/s and
// scan rate are absent.
//
// A night's figure is flagged when it lies outside median +- 3 x MAD of
// that figure over all previous nights (at least kMinPrevious of them;
// fewer: "too few nights", no flag). With a MAD of 0 any value other than
// the median is flagged. A change of build or of options (seed excluded)
// from one night to the next is marked on the timeline.
//
// Thread safety: pure functions, except LoadHistory (reads the directory).
// Not async-signal-safe.

#ifndef SIGRACE_STRESS_HISTORY_H_
#define SIGRACE_STRESS_HISTORY_H_

#include <cstddef>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "base/status.h"

namespace sigrace::stress {

inline constexpr size_t kMinPrevious = 5;

// The figures, in column order.
inline constexpr const char* kFigures[] = {"trials", "leaks", "trials_per_s",
                                           "dumps_per_s", "scan_bytes_per_s"};
inline constexpr size_t kFigureCount = 5;

struct Night {
  std::string path;
  double mtime = 0;  // seconds since the epoch
  // The report's start_time in seconds since the epoch; none: an older
  // report, placed by mtime.
  std::optional<double> start;
  double When() const { return start.value_or(mtime); }
  std::string kind;  // "stress", "merged" or "repro"
  std::string build;
  std::string options;  // canonical JSON of the options (seed excluded)
  std::optional<double> value[kFigureCount];
  std::string change;  // "", "build", "options" or "build, options"
};

struct HistoryFlag {
  size_t night = 0;
  size_t figure = 0;
  double value = 0, median = 0, mad = 0;
};

struct History {
  std::vector<Night> nights;
  std::vector<HistoryFlag> flags;
  // Per figure: true when no night had kMinPrevious previous values.
  bool too_few[kFigureCount] = {};
  // Nights without a start time, placed by file mtime.
  size_t by_mtime = 0;
};

// The figures of one report. InvalidArgument (one line) when it is not a
// stress, merged or repro report, or a field has the wrong type.
StatusOr<Night> NightFromReport(const std::string& path,
                                const nlohmann::json& report, double mtime);

// Orders the nights, marks changes of build/options and flags figures.
// InvalidArgument when there are no nights or stress and repro reports
// are mixed.
StatusOr<History> AnalyzeHistory(std::vector<Night> nights);

// Every *.json file of `dir` (other files are ignored).
StatusOr<History> LoadHistory(const std::string& dir);

// "2026-12-06T23:34:20.123Z" (fraction optional; "Z" or "+00:00") as
// seconds since the epoch; none when it is not such a UTC time.
std::optional<double> ParseIsoUtc(const std::string& text);

// Median and median absolute deviation of `v` (not empty).
double Median(std::vector<double> v);
double MedianAbsDeviation(const std::vector<double>& v);

std::string HistoryText(const History& h);
nlohmann::json HistoryJson(const History& h);
// One self-contained page: a table and one inline-SVG chart per figure.
std::string HistoryHtml(const History& h);

}  // namespace sigrace::stress

#endif  // SIGRACE_STRESS_HISTORY_H_
