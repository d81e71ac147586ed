#include "base/process.h"

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <thread>

extern char** environ;

namespace sigrace {

StatusOr<pid_t> SpawnProcess(const SpawnOptions& o) {
  if (o.argv.empty()) return InvalidArgumentError("spawn: empty argv");
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  if (!o.output_path.empty()) {
    posix_spawn_file_actions_addopen(&fa, STDOUT_FILENO, o.output_path.c_str(),
                                     O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW,
                                     0600);
    posix_spawn_file_actions_adddup2(&fa, STDOUT_FILENO, STDERR_FILENO);
  }
  for (const auto& [from, to] : o.fds) {
    posix_spawn_file_actions_adddup2(&fa, from, to);
  }
  std::vector<char*> argv;
  for (const std::string& a : o.argv)
    argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  pid_t pid = -1;
  const int rc = posix_spawn(&pid, argv[0], &fa, nullptr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&fa);
  if (rc != 0) return ErrnoError("spawn " + o.argv[0], rc);
  return pid;
}

int WaitProcess(pid_t pid, int timeout_ms, bool* killed) {
  using Clock = std::chrono::steady_clock;
  *killed = false;
  const auto deadline = Clock::now() + std::chrono::milliseconds(timeout_ms);
  int st = 0;
  while (true) {
    const pid_t r = waitpid(pid, &st, WNOHANG);
    if (r == pid) break;
    if (r < 0 && errno != EINTR) break;
    if (Clock::now() > deadline) {
      kill(pid, SIGKILL);
      while (waitpid(pid, &st, 0) < 0 && errno == EINTR) {
      }
      *killed = true;
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  return st;
}

void KillProcess(pid_t pid) {
  if (pid <= 0) return;
  kill(pid, SIGKILL);
  int st;
  while (waitpid(pid, &st, 0) < 0 && errno == EINTR) {
  }
}

int ExitCodeOf(int st) {
  if (WIFEXITED(st)) return WEXITSTATUS(st);
  return 128 + (WIFSIGNALED(st) ? WTERMSIG(st) : 0);
}

std::string WaitStatusText(int st) {
  if (WIFEXITED(st)) {
    return "exited with code " + std::to_string(WEXITSTATUS(st));
  }
  if (WIFSIGNALED(st)) {
    return std::string("died by signal ") + sigdescr_np(WTERMSIG(st));
  }
  return "ended with wait status " + std::to_string(st);
}

}  // namespace sigrace
