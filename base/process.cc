#include "base/process.h"

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <map>
#include <thread>

#include "base/files.h"
#include "base/mutex.h"

extern char** environ;

namespace sigrace {

StatusOr<pid_t> SpawnProcess(const SpawnOptions& o) {
  if (o.argv.empty()) return InvalidArgumentError("spawn: empty argv");
  int out = -1;
  if (!o.output_path.empty()) {
    StatusOr<int> dir = OpenDir(Dirname(o.output_path));
    if (!dir.ok()) return dir.status();
    StatusOr<int> f = CreateExclusiveAt(*dir, Basename(o.output_path), 0600);
    close(*dir);
    if (!f.ok())
      return Status(f.status().code(),
                    o.output_path + ": " + f.status().message());
    out = *f;
  }
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  if (out >= 0) {
    posix_spawn_file_actions_adddup2(&fa, out, STDOUT_FILENO);
    posix_spawn_file_actions_adddup2(&fa, out, STDERR_FILENO);
  }
  for (const auto& [from, to] : o.fds) {
    posix_spawn_file_actions_adddup2(&fa, from, to);
  }
  // The stop handler blocks SIGINT and SIGTERM in this process; a child
  // gets them back, at their default action.
  posix_spawnattr_t attr;
  posix_spawnattr_init(&attr);
  sigset_t none, stop;
  sigemptyset(&none);
  sigemptyset(&stop);
  sigaddset(&stop, SIGINT);
  sigaddset(&stop, SIGTERM);
  posix_spawnattr_setsigmask(&attr, &none);
  posix_spawnattr_setsigdefault(&attr, &stop);
  posix_spawnattr_setflags(&attr,
                           POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
  std::vector<char*> argv;
  for (const std::string& a : o.argv)
    argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  pid_t pid = -1;
  const int rc = posix_spawn(&pid, argv[0], &fa, &attr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&fa);
  posix_spawnattr_destroy(&attr);
  if (out >= 0) close(out);
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

bool AwaitEnd(pid_t pid, int timeout_ms) {
  using Clock = std::chrono::steady_clock;
  const auto deadline = Clock::now() + std::chrono::milliseconds(timeout_ms);
  while (true) {
    siginfo_t info;
    std::memset(&info, 0, sizeof(info));
    const int r = waitid(P_PID, static_cast<id_t>(pid), &info,
                         WEXITED | WNOWAIT | WNOHANG);
    if (r != 0 && errno != EINTR) return true;  // reaped by its owner
    if (r == 0 && info.si_pid == pid) return true;
    if (Clock::now() > deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
}

namespace {

Mutex g_stop_mu;
std::map<int, std::function<void()>>* g_cleanups GUARDED_BY(g_stop_mu) =
    nullptr;
int g_next_cleanup GUARDED_BY(g_stop_mu) = 0;

void StopThread(sigset_t set) {
  int sig = 0;
  while (sigwait(&set, &sig) != 0) {
  }
  {
    MutexLock l(&g_stop_mu);
    if (g_cleanups != nullptr) {
      for (auto it = g_cleanups->rbegin(); it != g_cleanups->rend(); ++it) {
        it->second();
      }
    }
  }
  RemovePendingFilesForExit();
  // Die by the signal: default action, unblocked on this thread.
  signal(sig, SIG_DFL);
  sigset_t one;
  sigemptyset(&one);
  sigaddset(&one, sig);
  pthread_sigmask(SIG_UNBLOCK, &one, nullptr);
  raise(sig);
  _exit(128 + sig);
}

}  // namespace

void InstallStopHandler() {
  static bool installed = false;
  {
    MutexLock l(&g_stop_mu);
    if (installed) return;
    installed = true;
  }
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
  std::thread(StopThread, set).detach();
}

int AddStopCleanup(std::function<void()> cleanup) {
  MutexLock l(&g_stop_mu);
  if (g_cleanups == nullptr) {
    g_cleanups = new std::map<int, std::function<void()>>();
  }
  const int id = g_next_cleanup++;
  (*g_cleanups)[id] = std::move(cleanup);
  return id;
}

void RemoveStopCleanup(int id) {
  MutexLock l(&g_stop_mu);
  if (g_cleanups != nullptr) g_cleanups->erase(id);
}

}  // namespace sigrace
