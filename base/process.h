// Child-process supervision: start a program with posix_spawn, wait for it
// with a bound, kill and reap it, and say how it ended.
//
// Thread safety: each function is safe to call from any thread; a pid is
// reaped by exactly one caller (the one that started it). Not
// async-signal-safe.

#ifndef SIGRACE_BASE_PROCESS_H_
#define SIGRACE_BASE_PROCESS_H_

#include <sys/types.h>

#include <string>
#include <utility>
#include <vector>

#include "base/status.h"

namespace sigrace {

struct SpawnOptions {
  // argv[0] is the program's path (no PATH search).
  std::vector<std::string> argv;
  // Non-empty: the child's stdout and stderr go to this file (created 0600
  // or truncated; a symlink is not followed).
  std::string output_path;
  // {parent fd, child fd}: the child gets the parent's fd under this
  // number, close-on-exec cleared.
  std::vector<std::pair<int, int>> fds;
};

// Starts the program; the child inherits the environment.
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

}  // namespace sigrace

#endif  // SIGRACE_BASE_PROCESS_H_
