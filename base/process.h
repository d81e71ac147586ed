// Child-process supervision: start a program with posix_spawn, wait for it
// with a bound, kill and reap it, and say how it ended; and the stop path
// of a command that is interrupted (SIGINT, SIGTERM).
//
// Thread safety: each function is safe to call from any thread; a pid is
// reaped by exactly one caller (the one that started it). Not
// async-signal-safe.

#ifndef SIGRACE_BASE_PROCESS_H_
#define SIGRACE_BASE_PROCESS_H_

#include <sys/types.h>

#include <functional>
#include <string>
#include <utility>
#include <vector>

#include "base/status.h"

namespace sigrace {

struct SpawnOptions {
  // argv[0] is the program's path (no PATH search).
  std::vector<std::string> argv;
  // Non-empty: the child's stdout and stderr go to this file, created 0600
  // exclusively (base/files.h CreateExclusiveAt: an existing file or a
  // symlink at that name is an error, never truncated or followed).
  std::string output_path;
  // {parent fd, child fd}: the child gets the parent's fd under this
  // number, close-on-exec cleared.
  std::vector<std::pair<int, int>> fds;
};

// Starts the program; the child inherits the environment, with SIGINT and
// SIGTERM unblocked and at their default action (whatever the stop
// handler did to this process).
StatusOr<pid_t> SpawnProcess(const SpawnOptions& options);

// Waits for `pid` to end, at most `timeout_ms`, then kills it (SIGKILL)
// and reaps it. Returns the wait status; `*killed` says whether the bound
// was hit.
int WaitProcess(pid_t pid, int timeout_ms, bool* killed);

// Kills `pid` (SIGKILL) and reaps it.
void KillProcess(pid_t pid);

// The process exit code a shell would show: the exit status, or 128 plus
// the signal that ended it.
int ExitCodeOf(int wait_status);

// "exited with code N", "died by signal Segmentation fault", ...
std::string WaitStatusText(int wait_status);

// Waits (at most `timeout_ms`) until `pid` has ended without reaping it
// (waitid WNOWAIT): whoever started it still reaps it. True if it ended
// or is no longer a child.
bool AwaitEnd(pid_t pid, int timeout_ms);

// The stop path. Blocks SIGINT and SIGTERM in the calling thread (call it
// on the main thread before any other thread starts; the threads it
// starts inherit the mask) and starts a thread that waits for them. On
// the first, that thread runs every registered cleanup, newest first,
// removes the pending temporary files (base/files.h PendingFile), and
// ends the process by the same signal at its default action, so the
// parent sees 128+sig. Calling it again does nothing.
void InstallStopHandler();

// Registers `cleanup` to run on the stop path; returns its id. A cleanup
// runs on the stop thread while the others go on: it takes the locks of
// what it touches.
int AddStopCleanup(std::function<void()> cleanup);
void RemoveStopCleanup(int id);

}  // namespace sigrace

#endif  // SIGRACE_BASE_PROCESS_H_
