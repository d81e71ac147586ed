// The ablation run's verdict on fixture rows: an unobserved protection is
// never a pass, an error outranks it, and the JSON carries the trials to
// the first leak only for a leak.

#include "stress/ablation_run.h"

#include <gtest/gtest.h>

namespace sigrace::stress {
namespace {

AblationRow Row(const char* name, AblationStatus s, uint64_t first = 0) {
  AblationRow r;
  r.protection = name;
  r.status = s;
  r.trials = 10;
  r.first_leak = first;
  return r;
}

TEST(AblationRun, EveryProtectionLeakingIsExitZero) {
  EXPECT_EQ(AblationExitCode({Row("scrub", AblationStatus::kLeaks, 3),
                              Row("freeze", AblationStatus::kLeaks, 9)}),
            0);
}

TEST(AblationRun, UnobservedIsAFailureNotAPass) {
  EXPECT_EQ(AblationExitCode({Row("scrub", AblationStatus::kLeaks, 3),
                              Row("dontdump", AblationStatus::kUnobserved)}),
            1);
}

TEST(AblationRun, ErrorOutranksUnobserved) {
  EXPECT_EQ(AblationExitCode({Row("dontdump", AblationStatus::kUnobserved),
                              Row("freeze", AblationStatus::kError)}),
            2);
}

TEST(AblationRun, JsonHasFirstLeakOnlyForALeak) {
  AblationOptions o;
  const nlohmann::json j =
      AblationJson({Row("scrub", AblationStatus::kLeaks, 3),
                    Row("dontdump", AblationStatus::kUnobserved)},
                   o);
  ASSERT_EQ(j["rows"].size(), 2u);
  EXPECT_EQ(j["rows"][0]["trials_to_first_leak"], 3u);
  EXPECT_EQ(j["rows"][0]["status"], "leaks");
  EXPECT_TRUE(j["rows"][1]["trials_to_first_leak"].is_null());
  EXPECT_EQ(j["rows"][1]["status"], "unobserved");
  EXPECT_EQ(j["exit_code"], 1);
}

TEST(AblationRun, UnknownProtectionIsRejectedBeforeAnyRun) {
  const Status s = CheckProtections({"scrub", "scrubb"});
  EXPECT_FALSE(s.ok());
  EXPECT_NE(s.message().find("scrubb"), std::string::npos);
}

TEST(AblationRun, ListsEveryProtection) {
  const std::vector<std::string> all = AllProtections();
  EXPECT_EQ(all.size(), static_cast<size_t>(Protection::kCount));
  EXPECT_TRUE(CheckProtections(all).ok());
}

}  // namespace
}  // namespace sigrace::stress
