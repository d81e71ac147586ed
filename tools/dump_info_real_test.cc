// `sigrace dump-info` on a real sigrace dump (a forked child installs the
// handler and takes a live dump): notsan, like the handler's own tests.

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <string>

#include "testing/crash_test_util.h"
#include "testing/real_dump.h"
#include "tools/dump_info.h"

namespace sigrace::crashdump {
namespace {

using testing::kRealDumpLabel;
using testing::kRealDumpRegionLen;
using testing::MakeRealDump;
using testing::RealDump;
using testing::TempDir;

TEST(CoreReaderRealDump, DumpInfoPrintsRealDump) {
  TempDir dir;
  const RealDump d = MakeRealDump(dir);
  ASSERT_FALSE(d.path.empty());
  std::string prog = "sigrace dump-info", path = d.path, json = "--json",
              req = "--require-seal";
  char* argv[] = {prog.data(), path.data(), json.data(), req.data(), nullptr};
  ::testing::internal::CaptureStdout();
  const int code = DumpInfoMain(4, argv);
  const std::string out = ::testing::internal::GetCapturedStdout();
  ASSERT_EQ(code, 0);
  const nlohmann::json j = nlohmann::json::parse(out);
  EXPECT_EQ(j["seal"]["state"], "sealed");
  EXPECT_EQ(j["has_sigrace_notes"], true);
  EXPECT_GE(j["threads"].size(), 1u);
  EXPECT_GT(j["mappings"].size(), 3u);
  bool found = false;
  for (const auto& red : j["redactions"]) {
    found |= red["label"] == kRealDumpLabel && red["len"] == kRealDumpRegionLen;
  }
  EXPECT_TRUE(found);
}

}  // namespace
}  // namespace sigrace::crashdump
