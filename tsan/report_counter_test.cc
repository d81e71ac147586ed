// Unit tests of the report counter that hold in every build. Races that
// must be counted live in canary_test.cc (tsan preset only), because a
// report makes the process exit with TSan's exitcode.

#include "tsan/report_counter.h"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <string>

namespace sigrace::tsan {
namespace {

#if defined(__has_feature)
#if __has_feature(thread_sanitizer)
constexpr bool kTsanBuild = true;
#else
constexpr bool kTsanBuild = false;
#endif
#else
constexpr bool kTsanBuild = false;
#endif

TEST(ReportCounter, EnabledExactlyInTsanBuilds) {
  EXPECT_EQ(Enabled(), kTsanBuild);
  EXPECT_EQ(Snapshot().enabled, kTsanBuild);
  // The compiled-in options exist exactly when the runtime can read them.
  EXPECT_EQ(std::string(CompiledOptions()).empty(), !kTsanBuild);
}

TEST(ReportCounter, CompiledOptionsCarryTheSuiteSettings) {
  if (!kTsanBuild) GTEST_SKIP() << "tsan: not this build";
  const std::string opts = CompiledOptions();
  EXPECT_NE(opts.find("report_signal_unsafe=1"), std::string::npos);
  EXPECT_NE(opts.find("halt_on_error=0"), std::string::npos);
  EXPECT_NE(opts.find("history_size="), std::string::npos);
  EXPECT_EQ(opts.find('#'), std::string::npos);  // comments stripped
}

TEST(ReportCounter, CleanProcessCountsNothing) {
  Reset();
  const Counts c = Snapshot();
  EXPECT_EQ(c.total, 0u);
  for (int t = 0; t < kNumReportTypes; ++t) EXPECT_EQ(c.by_type[t], 0u);
  EXPECT_TRUE(c.reports.empty());
  EXPECT_FALSE(RaceTouches("sigrace"));
  EXPECT_EQ(TotalSinceReset(), 0u);
}

TEST(ReportCounter, ClassifiesEveryTsanReportType) {
  // The strings of compiler-rt's ReportTypeDescription (LLVM 14).
  struct Case {
    const char* description;
    ReportType type;
  };
  const Case cases[] = {
      {"data-race", ReportType::kDataRace},
      {"data-race-vptr", ReportType::kDataRace},
      {"external-race", ReportType::kDataRace},
      {"heap-use-after-free", ReportType::kHeapUseAfterFree},
      {"heap-use-after-free-vptr", ReportType::kHeapUseAfterFree},
      {"thread-leak", ReportType::kThreadLeak},
      {"locked-mutex-destroy", ReportType::kMutexMisuse},
      {"mutex-double-lock", ReportType::kMutexMisuse},
      {"mutex-invalid-access", ReportType::kMutexMisuse},
      {"mutex-bad-unlock", ReportType::kMutexMisuse},
      {"mutex-bad-read-lock", ReportType::kMutexMisuse},
      {"mutex-bad-read-unlock", ReportType::kMutexMisuse},
      {"signal-unsafe-call", ReportType::kSignalUnsafeCall},
      {"errno-in-signal-handler", ReportType::kErrnoInSignalHandler},
      {"lock-order-inversion", ReportType::kLockOrderInversion},
      {"something-new", ReportType::kOther},
  };
  for (const Case& c : cases) {
    EXPECT_EQ(ClassifyDescription(c.description), c.type) << c.description;
  }
}

TEST(ReportCounter, JsonHasEveryTypeAndTheEnabledFlag) {
  Counts c;
  c.enabled = true;
  c.by_type[static_cast<int>(ReportType::kDataRace)] = 3;
  c.by_type[static_cast<int>(ReportType::kSignalUnsafeCall)] = 1;
  c.total = 4;
  for (int i = 0; i < 5; ++i) {
    Report r;
    r.sequence = static_cast<uint64_t>(i) + 1;
    r.type = ReportType::kDataRace;
    r.description = "data-race";
    r.stacks = {{"sigrace::crashdump::Frame", "caller"}};
    c.reports.push_back(r);
  }
  const nlohmann::json j = nlohmann::json::parse(ToJson(c, 2));
  EXPECT_EQ(j["enabled"], true);
  EXPECT_EQ(j["total"], 4);
  EXPECT_EQ(j["by_type"]["data_race"], 3);
  EXPECT_EQ(j["by_type"]["signal_unsafe_call"], 1);
  EXPECT_EQ(j["by_type"].size(), static_cast<size_t>(kNumReportTypes));
  ASSERT_EQ(j["reports"].size(), 2u);
  EXPECT_EQ(j["reports"][0]["seq"], 4);  // the newest are kept
  EXPECT_EQ(j["reports"][1]["stacks"][0][0], "sigrace::crashdump::Frame");
  EXPECT_TRUE(c.Touches(ReportType::kDataRace, "crashdump::"));
  EXPECT_FALSE(c.Touches(ReportType::kSignalUnsafeCall, "crashdump::"));
  EXPECT_FALSE(c.Touches(ReportType::kDataRace, "Registry"));
}

TEST(ReportCounter, NotThisBuildJsonIsStillWellFormed) {
  const nlohmann::json j = nlohmann::json::parse(CountsJson());
  EXPECT_EQ(j["enabled"], kTsanBuild);
  EXPECT_EQ(j["total"], 0);
}

}  // namespace
}  // namespace sigrace::tsan
