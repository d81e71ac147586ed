#include "base/ablation.h"

#include <gtest/gtest.h>

namespace sigrace {
namespace {

class AblationTest : public ::testing::Test {
 protected:
  void TearDown() override { ASSERT_TRUE(SetAblation("").ok()); }
};

TEST_F(AblationTest, EverythingOnByDefault) {
  for (uint32_t i = 0; i < static_cast<uint32_t>(Protection::kCount); ++i) {
    EXPECT_FALSE(Ablated(static_cast<Protection>(i))) << i;
  }
  EXPECT_FALSE(CoverAblated("vault.arena"));
  EXPECT_EQ(AblationSpec(), "");
}

TEST_F(AblationTest, NamesSwitchOffTheirProtectionOnly) {
  if (!kAblationBuild) GTEST_SKIP() << "built without SIGRACE_ABLATION";
  ASSERT_TRUE(SetAblation("scrub,cover:vault.arena").ok());
  EXPECT_TRUE(Ablated(Protection::kScrub));
  EXPECT_FALSE(Ablated(Protection::kFreeze));
  EXPECT_TRUE(CoverAblated("vault.arena"));
  EXPECT_FALSE(CoverAblated("signer.working"));
  EXPECT_FALSE(CoverAblated(nullptr));
  EXPECT_EQ(AblationSpec(), "scrub,cover:vault.arena");
  ASSERT_TRUE(SetAblation("registry-cover").ok());
  EXPECT_FALSE(Ablated(Protection::kScrub));
  EXPECT_TRUE(CoverAblated("signer.working"));
}

TEST_F(AblationTest, EveryNameRoundTrips) {
  if (!kAblationBuild) GTEST_SKIP() << "built without SIGRACE_ABLATION";
  for (uint32_t i = 0; i < static_cast<uint32_t>(Protection::kCount); ++i) {
    const auto p = static_cast<Protection>(i);
    ASSERT_TRUE(SetAblation(ProtectionName(p)).ok()) << ProtectionName(p);
    EXPECT_TRUE(Ablated(p));
    EXPECT_EQ(AblationSpec(), ProtectionName(p));
  }
}

TEST_F(AblationTest, UnknownNameIsAnErrorAndChangesNothing) {
  if (!kAblationBuild) GTEST_SKIP() << "built without SIGRACE_ABLATION";
  ASSERT_TRUE(SetAblation("freeze").ok());
  const Status s = SetAblation("scrub,frieze");
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("frieze"), std::string::npos);
  EXPECT_TRUE(Ablated(Protection::kFreeze));
  EXPECT_FALSE(Ablated(Protection::kScrub));
  EXPECT_FALSE(SetAblation("cover:").ok());
}

TEST_F(AblationTest, BuildWithoutSwitchesRefusesASpec) {
  if (kAblationBuild) GTEST_SKIP() << "built with SIGRACE_ABLATION";
  EXPECT_EQ(SetAblation("scrub").code(), StatusCode::kFailedPrecondition);
  EXPECT_FALSE(Ablated(Protection::kScrub));
}

}  // namespace
}  // namespace sigrace
