#include "base/files.h"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <string>

#include "base/hex.h"
#include "base/process.h"

namespace sigrace {
namespace {

std::string TempPath(const char* name) {
  return testing::TempDir() + "/" + name + "." + std::to_string(getpid());
}

TEST(Files, WriteFileAtomicWritesWithTheModeAndReplaces) {
  const std::string p = TempPath("report.json");
  ASSERT_TRUE(WriteFileAtomic(p, "first\n", 0600).ok());
  ASSERT_TRUE(WriteFileAtomic(p, "second\n", 0600).ok());
  StatusOr<std::string> text = ReadFile(p);
  ASSERT_TRUE(text.ok());
  EXPECT_EQ(*text, "second\n");
  struct stat st;
  ASSERT_EQ(stat(p.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  unlink(p.c_str());
}

TEST(Files, WriteFileAtomicFailsInAMissingDirectory) {
  EXPECT_FALSE(WriteFileAtomic("/nonexistent-dir/x.json", "x").ok());
}

TEST(Files, ReadFileOfAMissingFileIsNotFound) {
  StatusOr<std::string> text = ReadFile(TempPath("missing"));
  ASSERT_FALSE(text.ok());
  EXPECT_EQ(text.status().code(), StatusCode::kNotFound);
}

TEST(Files, LastLines) {
  const std::string p = TempPath("log");
  ASSERT_TRUE(WriteFileAtomic(p, "a\nb\nc\n").ok());
  EXPECT_EQ(LastLines(p, 2), "b\nc\n");
  EXPECT_EQ(LastLines(p, 5), "a\nb\nc\n");
  ASSERT_TRUE(WriteFileAtomic(p, "a\nno newline").ok());
  EXPECT_EQ(LastLines(p, 1), "no newline\n");
  EXPECT_EQ(LastLines(TempPath("missing"), 2), "");
  unlink(p.c_str());
}

TEST(Files, DirnameAndSelfExe) {
  EXPECT_EQ(Dirname("build/tools/sigrace"), "build/tools");
  EXPECT_EQ(Dirname("sigrace"), ".");
  EXPECT_EQ(Dirname("/sigrace"), "/");
  const std::string self = SelfExe();
  ASSERT_FALSE(self.empty());
  EXPECT_EQ(access(self.c_str(), X_OK), 0);
}

TEST(Hex, Formats) {
  EXPECT_EQ(Hex(0), "0x0");
  EXPECT_EQ(Hex(0x1f), "0x1f");
  EXPECT_EQ(Hex(UINT64_MAX), "0xffffffffffffffff");
}

TEST(Process, ExitCodeAndOutputFile) {
  const std::string out = TempPath("child.log");
  StatusOr<pid_t> pid = SpawnProcess(
      {.argv = {"/bin/sh", "-c", "echo hello; exit 3"}, .output_path = out});
  ASSERT_TRUE(pid.ok()) << pid.status().message();
  bool killed = true;
  const int st = WaitProcess(*pid, 10000, &killed);
  EXPECT_FALSE(killed);
  EXPECT_EQ(ExitCodeOf(st), 3);
  EXPECT_EQ(WaitStatusText(st), "exited with code 3");
  EXPECT_EQ(LastLines(out, 1), "hello\n");
  unlink(out.c_str());
}

TEST(Process, WaitKillsAtTheBound) {
  StatusOr<pid_t> pid = SpawnProcess({.argv = {"/bin/sleep", "30"}});
  ASSERT_TRUE(pid.ok()) << pid.status().message();
  bool killed = false;
  const int st = WaitProcess(*pid, 50, &killed);
  EXPECT_TRUE(killed);
  EXPECT_EQ(ExitCodeOf(st), 128 + 9);
}

TEST(Process, SpawnOfAMissingProgramFails) {
  StatusOr<pid_t> pid = SpawnProcess({.argv = {"/nonexistent/sigrace"}});
  EXPECT_FALSE(pid.ok());
}

}  // namespace
}  // namespace sigrace
