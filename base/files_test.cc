#include "base/files.h"

#include <dirent.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <string>
#include <vector>

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

// A fresh directory under the test's temp dir.
std::string FreshDir(const char* name) {
  const std::string d = TempPath(name);
  (void)!system(("rm -rf '" + d + "'").c_str());
  EXPECT_EQ(mkdir(d.c_str(), 0700), 0);
  return d;
}

std::vector<std::string> Names(const std::string& dir) {
  std::vector<std::string> out;
  if (DIR* d = opendir(dir.c_str())) {
    while (dirent* e = readdir(d)) {
      const std::string n = e->d_name;
      if (n != "." && n != "..") out.push_back(n);
    }
    closedir(d);
  }
  return out;
}

TEST(Files, CreateExclusiveAtNeverFollowsOrReusesAName) {
  const std::string d = FreshDir("excl");
  const std::string target = d + "/target";
  ASSERT_TRUE(WriteFileAtomic(target, "untouched").ok());
  ASSERT_EQ(symlink(target.c_str(), (d + "/link").c_str()), 0);
  StatusOr<int> dir = OpenDir(d);
  ASSERT_TRUE(dir.ok());
  EXPECT_FALSE(CreateExclusiveAt(*dir, "link", 0600).ok());
  EXPECT_FALSE(CreateExclusiveAt(*dir, "target", 0600).ok());
  EXPECT_FALSE(CreateExclusiveAt(*dir, "../escape", 0600).ok());
  StatusOr<int> fd = CreateExclusiveAt(*dir, "new", 0600);
  ASSERT_TRUE(fd.ok());
  close(*fd);
  close(*dir);
  EXPECT_EQ(*ReadFile(target), "untouched");
  (void)!system(("rm -rf '" + d + "'").c_str());
}

TEST(Files, WriteFileAtomicLeavesNoTemporaryAndCanRefuseToReplace) {
  const std::string d = FreshDir("atomic");
  const std::string p = d + "/kept.core";
  ASSERT_TRUE(WriteFileAtomic(p, "one", 0600, /*replace=*/false).ok());
  EXPECT_FALSE(WriteFileAtomic(p, "two", 0600, /*replace=*/false).ok());
  EXPECT_EQ(*ReadFile(p), "one");
  EXPECT_EQ(Names(d), std::vector<std::string>{"kept.core"});
  (void)!system(("rm -rf '" + d + "'").c_str());
}

TEST(Files, SharedOutputDirNeedsTheStickyBit) {
  const std::string d = FreshDir("outdir");
  EXPECT_TRUE(CheckOutputDir(d).ok());
  EXPECT_TRUE(CheckOutputDir(d + "/not-yet").ok());
  ASSERT_EQ(chmod(d.c_str(), 0777), 0);
  Status st = CheckOutputDir(d);
  EXPECT_EQ(st.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(st.message().find("sticky"), std::string::npos) << st.message();
  ASSERT_EQ(chmod(d.c_str(), 0770), 0);
  EXPECT_FALSE(CheckOutputDir(d).ok());
  ASSERT_EQ(chmod(d.c_str(), 01777), 0);
  EXPECT_TRUE(CheckOutputDir(d).ok());
  ASSERT_TRUE(WriteFileAtomic(d + "/file", "x").ok());
  EXPECT_FALSE(CheckOutputDir(d + "/file").ok());
  (void)!system(("rm -rf '" + d + "'").c_str());
}

TEST(Files, RunIdsDiffer) {
  const std::string a = NewRunId(), b = NewRunId();
  EXPECT_EQ(a.size(), 8u);
  EXPECT_NE(a, b);
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

// A child's output file is created exclusively: a file (or link) already
// at its name is an error, and it stays as it was.
TEST(Process, OutputFileIsNeverReused) {
  const std::string out = TempPath("reused.log");
  ASSERT_TRUE(WriteFileAtomic(out, "earlier run\n").ok());
  StatusOr<pid_t> pid = SpawnProcess(
      {.argv = {"/bin/sh", "-c", "echo hello"}, .output_path = out});
  if (pid.ok()) {
    bool killed = false;
    WaitProcess(*pid, 10000, &killed);
  }
  EXPECT_FALSE(pid.ok());
  EXPECT_EQ(*ReadFile(out), "earlier run\n");
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
