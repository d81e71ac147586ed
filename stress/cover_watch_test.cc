// The worker's cover watch: a registry violation reaches the next report
// once, with the check and the cover's label and no bytes; a clean
// transition reports nothing.

#include "stress/cover_watch.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <cstring>

#include "crashdump/registry/registry.h"

namespace sigrace::stress {
namespace {

TEST(CoverWatch, PublishOverDataIsReportedOnceThenCleared) {
  StartCoverWatch();
  (void)TakeCoverReport();  // whatever came before this test
  alignas(64) static uint8_t buf[64];

  // The protection: a cover published over fresh (zero) memory, wiped
  // before it is dropped, reports nothing.
  std::memset(buf, 0, sizeof(buf));
  crashdump::RegionHandle h =
      crashdump::PublishRegion(buf, sizeof(buf), "test.watch");
  crashdump::UnpublishRegion(h);
  nlohmann::json clean = TakeCoverReport();
  ASSERT_TRUE(clean.is_object());
  EXPECT_EQ(clean["count"], 0u);
  EXPECT_FALSE(clean.contains("first"));

  // Without it: published after the data is written.
  buf[10] = 0x5a;
  h = crashdump::PublishRegion(buf, sizeof(buf), "test.watch");
  std::memset(buf, 0, sizeof(buf));
  crashdump::UnpublishRegion(h);
  nlohmann::json dirty = TakeCoverReport();
  ASSERT_TRUE(dirty.is_object());
  EXPECT_EQ(dirty["count"], 1u);
  ASSERT_TRUE(dirty.contains("first"));
  EXPECT_EQ(dirty["first"]["label"], "test.watch");
  EXPECT_EQ(dirty["first"]["check"], crashdump::kCheckPublish);
  EXPECT_EQ(dirty["first"]["offset"], 10u);
  EXPECT_EQ(dirty["first"]["len"], sizeof(buf));
  EXPECT_EQ(TakeCoverReport()["count"], 0u);
  crashdump::SetCoverCheck(crashdump::CoverCheckMode::kOff);
}

}  // namespace
}  // namespace sigrace::stress
