// Test support for crash tests, in the style of Crashpad's
// test/multiprocess.h: run a scenario in a forked child, say how it must
// end, and collect what it left behind. Test-only; never linked into the
// sigrace command.
//
// Thread safety: call from the test's main thread only; RunInChild forks,
// so the parent must not have other threads running (gtest's main thread
// is alone). Not async-signal-safe.

#ifndef SIGRACE_TESTING_CRASH_TEST_UTIL_H_
#define SIGRACE_TESTING_CRASH_TEST_UTIL_H_

#include <sys/types.h>

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "base/files.h"

namespace sigrace::crashdump::testing {

struct ChildResult {
  bool exited = false;  // exit() / _exit()
  int exit_code = -1;
  bool signaled = false;  // killed by a signal
  int term_signal = 0;
  bool timed_out = false;  // still running at the bound: killed (deadlock)
  std::string stderr_text;
};

// Forks; the child runs `body` and _exit()s with its return value. The
// child's stderr goes to a file the parent reads back. A child still alive
// after `timeout_s` is SIGKILLed and reported as timed_out.
ChildResult RunInChild(const std::function<int()>& body, int timeout_s = 60);

// A fresh directory under $TMPDIR (or /tmp), removed by the destructor.
class TempDir {
 public:
  TempDir();
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::string& path() const { return path_; }
  // Entry names (no "." or ".."), sorted.
  std::vector<std::string> List() const;
  // Full paths of entries ending in `suffix`.
  std::vector<std::string> Files(const std::string& suffix) const;

 private:
  std::string path_;
};

std::string ReadWholeFile(const std::string& path);

// Fills buf with a deterministic pseudo-random pattern from `seed`, in
// place (no other copy of the pattern is made).
void FillSecret(uint8_t* buf, size_t len, uint64_t seed);

// True if `needle` occurs in `hay`. Never prints either.
bool Contains(const std::string& hay, const uint8_t* needle, size_t len);

// Busy loop that bumps *counter until *stop; noinline so it shows up in
// backtraces by name.
void BusyWorker(std::atomic<uint64_t>* counter, std::atomic<bool>* stop);

// Faults with a real SIGSEGV (a write through a null pointer); noinline so
// it shows up in backtraces by name.
void CrashHere();

// Path of the running test executable.
using ::sigrace::SelfExe;

// Runs a shell command, returns its exit status (-1 if it could not run)
// and its combined stdout+stderr in *output.
int RunCommand(const std::string& cmd, std::string* output);

// True if `tool` is on PATH.
bool HaveTool(const std::string& tool);

}  // namespace sigrace::crashdump::testing

#endif  // SIGRACE_TESTING_CRASH_TEST_UTIL_H_
