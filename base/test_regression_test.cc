#include "base/test_regression.h"

#include <gtest/gtest.h>

namespace sigrace {
namespace {

class TestRegressionTest : public ::testing::Test {
 protected:
  void TearDown() override { ASSERT_TRUE(SetTestRegressions("").ok()); }
};

TEST_F(TestRegressionTest, NoneOnByDefault) {
  for (uint32_t i = 0; i < static_cast<uint32_t>(TestRegression::kCount); ++i) {
    EXPECT_FALSE(TestRegressionOn(static_cast<TestRegression>(i))) << i;
  }
  EXPECT_EQ(TestRegressionSpec(), "");
}

TEST_F(TestRegressionTest, NamesSwitchOnTheirRegressionOnly) {
  if (!kAblationBuild) GTEST_SKIP() << "built without SIGRACE_ABLATION";
  ASSERT_TRUE(
      SetTestRegressions("record-skip-overwrite,slot-published-after-filled")
          .ok());
  EXPECT_TRUE(TestRegressionOn(TestRegression::kRecordSkipOverwrite));
  EXPECT_TRUE(TestRegressionOn(TestRegression::kSlotPublishedAfterFilled));
  EXPECT_FALSE(TestRegressionOn(TestRegression::kParseViaHeapCopy));
  EXPECT_FALSE(TestRegressionOn(TestRegression::kRegisterRecordSkipOverwrite));
  EXPECT_EQ(TestRegressionSpec(),
            "record-skip-overwrite,slot-published-after-filled");
  ASSERT_TRUE(SetTestRegressions("").ok());
  EXPECT_FALSE(TestRegressionOn(TestRegression::kRecordSkipOverwrite));
}

TEST_F(TestRegressionTest, EveryNameRoundTrips) {
  if (!kAblationBuild) GTEST_SKIP() << "built without SIGRACE_ABLATION";
  for (uint32_t i = 0; i < static_cast<uint32_t>(TestRegression::kCount); ++i) {
    const auto r = static_cast<TestRegression>(i);
    ASSERT_TRUE(SetTestRegressions(TestRegressionName(r)).ok())
        << TestRegressionName(r);
    EXPECT_TRUE(TestRegressionOn(r));
    EXPECT_EQ(TestRegressionSpec(), TestRegressionName(r));
  }
}

TEST_F(TestRegressionTest, UnknownNameIsAnErrorAndChangesNothing) {
  if (!kAblationBuild) GTEST_SKIP() << "built without SIGRACE_ABLATION";
  ASSERT_TRUE(SetTestRegressions("parse-via-heap-copy").ok());
  const Status s = SetTestRegressions("record-skip-overwrite,record-skip");
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("'record-skip'"), std::string::npos)
      << s.message();
  EXPECT_TRUE(TestRegressionOn(TestRegression::kParseViaHeapCopy));
  EXPECT_FALSE(TestRegressionOn(TestRegression::kRecordSkipOverwrite));
}

TEST_F(TestRegressionTest, BuildWithoutSwitchesRefusesASpec) {
  if (kAblationBuild) GTEST_SKIP() << "built with SIGRACE_ABLATION";
  EXPECT_EQ(SetTestRegressions("record-skip-overwrite").code(),
            StatusCode::kFailedPrecondition);
  EXPECT_FALSE(TestRegressionOn(TestRegression::kRecordSkipOverwrite));
}

}  // namespace
}  // namespace sigrace
