// The dump is a real ELF core: gdb, readelf and eu-stack open it. Each
// tool has its own ctest entry (core_gdb_test, core_readelf_test,
// core_eustack_test); a missing tool skips with a message.
//
// The dump comes from a child of this test binary that runs three worker
// threads and then faults in CrashHere(); the tools get this binary as the
// executable, so every frame symbolizes.

#include <gtest/gtest.h>
#include <signal.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <atomic>
#include <memory>
#include <regex>
#include <string>
#include <thread>

#include "crashdump/capture/handler.h"
#include "testing/crash_test_util.h"

namespace sigrace::crashdump {
namespace {

using testing::RunCommand;

constexpr int kWorkers = 3;

int CrashingChild(const std::string& dir) {
  HandlerOptions o;
  o.target = DumpTarget::Directory(dir);
  o.fatal = true;
  if (!InstallHandler(o).ok()) return 10;
  static std::atomic<uint64_t> counters[kWorkers];
  static std::atomic<bool> stop{false};
  static std::atomic<int> started{0};
  for (int i = 0; i < kWorkers; ++i) {
    std::thread([i] {
      (void)InstallAltStackForThisThread();
      started.fetch_add(1);
      testing::BusyWorker(&counters[i], &stop);
    }).detach();
  }
  while (started.load() < kWorkers) sched_yield();
  testing::CrashHere();
  return 20;
}

class CoreTools : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new testing::TempDir();
    const std::string d = dir_->path();
    testing::ChildResult c =
        testing::RunInChild([&] { return CrashingChild(d); });
    if (c.signaled && c.term_signal == SIGSEGV) {
      const auto cores = dir_->Files(".core");
      if (cores.size() == 1) dump_ = new std::string(cores[0]);
    }
  }
  static void TearDownTestSuite() {
    delete dump_;
    dump_ = nullptr;
    delete dir_;
    dir_ = nullptr;
  }
  void SetUp() override {
    ASSERT_NE(dump_, nullptr) << "the crashing child left no dump";
  }
  static size_t Count(const std::string& s, const std::string& what) {
    size_t n = 0;
    for (size_t p = s.find(what); p != std::string::npos;
         p = s.find(what, p + 1)) {
      ++n;
    }
    return n;
  }

  static testing::TempDir* dir_;
  static std::string* dump_;
};
testing::TempDir* CoreTools::dir_ = nullptr;
std::string* CoreTools::dump_ = nullptr;

TEST_F(CoreTools, GdbShowsEveryThreadSymbolized) {
  if (!testing::HaveTool("gdb")) GTEST_SKIP() << "gdb not installed";
  std::string out;
  const int rc = RunCommand(
      "gdb -batch -nx -ex 'info threads' -ex "
      "'thread apply all bt' '" +
          testing::SelfExe() + "' '" + *dump_ + "'",
      &out);
  EXPECT_EQ(rc, 0) << out;
  EXPECT_EQ(Count(out, "\nThread "), static_cast<size_t>(kWorkers + 1)) << out;
  EXPECT_NE(out.find("CrashHere"), std::string::npos) << out;
  // Every worker's backtrace names BusyWorker; `info threads` names it
  // again for a worker stopped in BusyWorker itself rather than in the
  // inlined fetch_add, so the count is at least one per worker.
  EXPECT_GE(Count(out, "BusyWorker"), static_cast<size_t>(kWorkers)) << out;
  EXPECT_NE(out.find("SIGSEGV"), std::string::npos) << out;
  EXPECT_EQ(out.find("warning: Couldn't find general-purpose registers"),
            std::string::npos)
      << out;
}

TEST_F(CoreTools, ReadelfReadsEveryNote) {
  if (!testing::HaveTool("readelf")) GTEST_SKIP() << "readelf not installed";
  std::string out;
  EXPECT_EQ(RunCommand("readelf -W -n '" + *dump_ + "'", &out), 0) << out;
  EXPECT_EQ(Count(out, "NT_PRSTATUS"), static_cast<size_t>(kWorkers + 1))
      << out;
  for (const char* n : {"NT_PRPSINFO", "NT_SIGINFO", "NT_AUXV", "NT_FILE",
                        "NT_FPREGSET", "NT_X86_XSTATE", "SIGRACE"}) {
    EXPECT_NE(out.find(n), std::string::npos) << n << "\n" << out;
  }
  EXPECT_EQ(out.find("Warning"), std::string::npos) << out;
  EXPECT_EQ(RunCommand("readelf -W -h -l '" + *dump_ + "'", &out), 0) << out;
  EXPECT_NE(out.find("CORE (Core file)"), std::string::npos) << out;
  EXPECT_EQ(out.find("Warning"), std::string::npos) << out;
}

TEST_F(CoreTools, EuStackUnwindsEveryThread) {
  if (!testing::HaveTool("eu-stack")) GTEST_SKIP() << "eu-stack not installed";
  std::string out;
  const int rc = RunCommand("eu-stack --core '" + *dump_ + "' --executable '" +
                                testing::SelfExe() + "'",
                            &out);
  EXPECT_EQ(rc, 0) << out;
  EXPECT_EQ(Count(out, "TID "), static_cast<size_t>(kWorkers + 1)) << out;
  EXPECT_NE(out.find("CrashHere"), std::string::npos) << out;
  // Every worker's backtrace names BusyWorker; `info threads` names it
  // again for a worker stopped in BusyWorker itself rather than in the
  // inlined fetch_add, so the count is at least one per worker.
  EXPECT_GE(Count(out, "BusyWorker"), static_cast<size_t>(kWorkers)) << out;
}

}  // namespace
}  // namespace sigrace::crashdump
