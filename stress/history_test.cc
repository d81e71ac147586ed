// The figures and the flag rule of `sigrace report --history`
// (stress/history.h) on reports built in the test: median and MAD, the
// boundary of the spread, a MAD of 0, "too few nights", the order by
// start time (mtime for reports without one), changes of build and options, and
// the kinds of report refused. tools/history_test runs the command on real
// stress reports.

#include "stress/history.h"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "stress/report.h"

namespace sigrace::stress {
namespace {

nlohmann::json Stress(double rate, double leaks = 0) {
  return {{"schema", "sigrace.stress.report/1"},
          {"build", "b1"},
          {"options", {{"seed", 1}, {"threads", 4}}},
          {"elapsed_s", 10.0},
          {"trials_per_s", rate},
          {"totals",
           {{"trials", 100},
            {"leak", leaks},
            {"dumps", 20},
            {"dump_bytes_searched", 5e6}}}};
}

std::vector<Night> Nights(const std::vector<nlohmann::json>& reports) {
  std::vector<Night> out;
  for (size_t i = 0; i < reports.size(); ++i) {
    StatusOr<Night> n = NightFromReport("n" + std::to_string(i) + ".json",
                                        reports[i], 1000.0 + i);
    EXPECT_TRUE(n.ok()) << n.status().message();
    if (n.ok()) out.push_back(*n);
  }
  return out;
}

TEST(History, MedianAndMad) {
  EXPECT_DOUBLE_EQ(Median({3, 1, 2}), 2);
  EXPECT_DOUBLE_EQ(Median({4, 1, 3, 2}), 2.5);
  EXPECT_DOUBLE_EQ(MedianAbsDeviation({10, 11, 9, 10.5, 9.5}), 0.5);
  EXPECT_DOUBLE_EQ(MedianAbsDeviation({7, 7, 7}), 0);
}

TEST(History, FiguresOfAStressReport) {
  std::vector<Night> n = Nights({Stress(12.5, 2)});
  ASSERT_EQ(n.size(), 1u);
  EXPECT_EQ(n[0].kind, "stress");
  EXPECT_DOUBLE_EQ(*n[0].value[0], 100);
  EXPECT_DOUBLE_EQ(*n[0].value[1], 2);
  EXPECT_DOUBLE_EQ(*n[0].value[2], 12.5);
  EXPECT_DOUBLE_EQ(*n[0].value[3], 2);
  EXPECT_DOUBLE_EQ(*n[0].value[4], 5e5);
}

// Previous nights 10, 11, 9, 10.5, 9.5: median 10, MAD 0.5, so the spread
// is [8.5, 11.5]: 11.5 stays, 11.6 and 8.4 are flagged.
TEST(History, FlaggedOnlyOutsideMedianPlusMinusThreeMad) {
  for (double last : {11.5, 8.5, 10.0}) {
    StatusOr<History> h =
        AnalyzeHistory(Nights({Stress(10), Stress(11), Stress(9), Stress(10.5),
                               Stress(9.5), Stress(last)}));
    ASSERT_TRUE(h.ok());
    EXPECT_TRUE(h->flags.empty()) << last;
    EXPECT_FALSE(h->too_few[2]);
  }
  for (double last : {11.6, 8.4, 5.0}) {
    StatusOr<History> h =
        AnalyzeHistory(Nights({Stress(10), Stress(11), Stress(9), Stress(10.5),
                               Stress(9.5), Stress(last)}));
    ASSERT_TRUE(h.ok());
    ASSERT_EQ(h->flags.size(), 1u) << last;
    EXPECT_EQ(h->flags[0].night, 5u);
    EXPECT_EQ(h->flags[0].figure, 2u);
    EXPECT_DOUBLE_EQ(h->flags[0].median, 10);
    EXPECT_DOUBLE_EQ(h->flags[0].mad, 0.5);
  }
}

// Leaks 0 for five nights (MAD 0): the first leak is flagged.
TEST(History, ZeroSpreadFlagsAnyChange) {
  StatusOr<History> h =
      AnalyzeHistory(Nights({Stress(10), Stress(10), Stress(10), Stress(10),
                             Stress(10), Stress(10, 1)}));
  ASSERT_TRUE(h.ok());
  ASSERT_EQ(h->flags.size(), 1u);
  EXPECT_EQ(h->flags[0].figure, 1u);
  EXPECT_NE(HistoryText(*h).find("1!"), std::string::npos);
}

TEST(History, FiveNightsAreTooFew) {
  StatusOr<History> h = AnalyzeHistory(
      Nights({Stress(10), Stress(11), Stress(9), Stress(10.5), Stress(0.1)}));
  ASSERT_TRUE(h.ok());
  EXPECT_TRUE(h->flags.empty());
  for (bool t : h->too_few) EXPECT_TRUE(t);
  EXPECT_NE(HistoryText(*h).find("trials_per_s: too few nights"),
            std::string::npos);
}

TEST(History, OrderedByMtimeAndChangesMarked) {
  std::vector<nlohmann::json> r = {Stress(1), Stress(2), Stress(3)};
  r[1]["options"]["seed"] = 9;  // the seed is not an option change
  r[2]["build"] = "b2";
  r[2]["options"]["threads"] = 8;
  std::vector<Night> n = Nights(r);
  n[0].mtime = 5000;  // the first report is the newest night
  StatusOr<History> h = AnalyzeHistory(n);
  ASSERT_TRUE(h.ok());
  EXPECT_EQ(h->nights[0].path, "n1.json");
  EXPECT_EQ(h->nights[1].path, "n2.json");
  EXPECT_EQ(h->nights[2].path, "n0.json");
  EXPECT_EQ(h->nights[0].change, "");
  EXPECT_EQ(h->nights[1].change, "build, options");
  EXPECT_EQ(h->nights[2].change, "build, options");
}

TEST(History, OtherKindsAndMixedKindsAreRefused) {
  EXPECT_FALSE(
      NightFromReport("a", {{"schema", "sigrace.ablation/1"}}, 0).ok());
  EXPECT_FALSE(NightFromReport("a", nlohmann::json::array(), 0).ok());
  nlohmann::json bad = Stress(1);
  bad["totals"]["dumps"] = "x";
  EXPECT_FALSE(NightFromReport("a", bad, 0).ok());
  StatusOr<Night> repro = NightFromReport(
      "r",
      {{"schema", "sigrace.repro.report/1"}, {"rows", nlohmann::json::array()}},
      0);
  ASSERT_TRUE(repro.ok());
  std::vector<Night> n = Nights({Stress(1)});
  n.push_back(*repro);
  EXPECT_FALSE(AnalyzeHistory(n).ok());
  EXPECT_FALSE(AnalyzeHistory({}).ok());
}

}  // namespace
TEST(History, StartTimeRoundTripsAndOrdersBeforeMtime) {
  EXPECT_EQ(IsoUtc(1700000000.25), "2023-11-14T22:13:20.250Z");
  ASSERT_TRUE(ParseIsoUtc("2023-11-14T22:13:20.250Z").has_value());
  EXPECT_DOUBLE_EQ(*ParseIsoUtc("2023-11-14T22:13:20.250Z"), 1700000000.25);
  EXPECT_DOUBLE_EQ(*ParseIsoUtc("2023-11-14T22:13:20+00:00"), 1700000000);
  EXPECT_FALSE(ParseIsoUtc("2023-11-14 22:13:20").has_value());
  EXPECT_FALSE(ParseIsoUtc("2023-11-14T22:13:20+02:00").has_value());
  EXPECT_FALSE(ParseIsoUtc("yesterday").has_value());
  std::vector<nlohmann::json> r = {Stress(1), Stress(2)};
  r[0]["start_time"] = "2023-11-15T00:00:00Z";  // the newer night
  r[1]["start_time"] = "2023-11-14T00:00:00Z";
  std::vector<Night> n = Nights(r);
  n[0].mtime = 1;  // mtimes say the opposite
  n[1].mtime = 2e9;
  StatusOr<History> h = AnalyzeHistory(n);
  ASSERT_TRUE(h.ok());
  EXPECT_EQ(h->nights[0].path, "n1.json");
  EXPECT_EQ(h->by_mtime, 0u);
  r[0]["start_time"] = 12;
  EXPECT_FALSE(NightFromReport("n", r[0], 0).ok());
}

}  // namespace sigrace::stress
