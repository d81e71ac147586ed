#include "testing/crash_test_util.h"

#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>

namespace sigrace::crashdump::testing {

ChildResult RunInChild(const std::function<int()>& body, int timeout_s) {
  ChildResult res;
  char tmpl[] = "/tmp/sigrace-child-stderr-XXXXXX";
  const int errfd = mkstemp(tmpl);
  if (errfd < 0) {
    res.stderr_text = "mkstemp failed";
    return res;
  }
  fflush(nullptr);
  const pid_t pid = fork();
  if (pid == 0) {
    dup2(errfd, 2);
    close(errfd);
    // No core from the kernel: the child's dump is sigrace's.
    struct rlimit no_core = {0, 0};
    setrlimit(RLIMIT_CORE, &no_core);
    int rc = body();
    _exit(rc);
  }
  close(errfd);
  if (pid < 0) {
    unlink(tmpl);
    res.stderr_text = "fork failed";
    return res;
  }
  int status = 0;
  const time_t start = time(nullptr);
  for (;;) {
    const pid_t r = waitpid(pid, &status, WNOHANG);
    if (r == pid) break;
    if (r < 0 && errno != EINTR) break;
    if (time(nullptr) - start > timeout_s) {
      kill(pid, SIGKILL);
      waitpid(pid, &status, 0);
      res.timed_out = true;
      break;
    }
    usleep(2000);
  }
  if (!res.timed_out) {
    if (WIFEXITED(status)) {
      res.exited = true;
      res.exit_code = WEXITSTATUS(status);
    } else if (WIFSIGNALED(status)) {
      res.signaled = true;
      res.term_signal = WTERMSIG(status);
    }
  }
  res.stderr_text = ReadWholeFile(tmpl);
  unlink(tmpl);
  return res;
}

TempDir::TempDir() {
  const char* base = getenv("TMPDIR");
  std::string t =
      std::string(base != nullptr && base[0] != '\0' ? base : "/tmp") +
      "/sigrace-dumps-XXXXXX";
  std::vector<char> buf(t.begin(), t.end());
  buf.push_back('\0');
  if (mkdtemp(buf.data()) != nullptr) path_ = buf.data();
}

TempDir::~TempDir() {
  if (path_.empty()) return;
  for (const std::string& n : List()) unlink((path_ + "/" + n).c_str());
  rmdir(path_.c_str());
}

std::vector<std::string> TempDir::List() const {
  std::vector<std::string> out;
  DIR* d = opendir(path_.c_str());
  if (d == nullptr) return out;
  while (dirent* e = readdir(d)) {
    const std::string n = e->d_name;
    if (n != "." && n != "..") out.push_back(n);
  }
  closedir(d);
  std::sort(out.begin(), out.end());
  return out;
}

std::vector<std::string> TempDir::Files(const std::string& suffix) const {
  std::vector<std::string> out;
  for (const std::string& n : List()) {
    if (n.size() >= suffix.size() &&
        n.compare(n.size() - suffix.size(), suffix.size(), suffix) == 0) {
      out.push_back(path_ + "/" + n);
    }
  }
  return out;
}

std::string ReadWholeFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

void FillSecret(uint8_t* buf, size_t len, uint64_t seed) {
  uint64_t x = seed * 0x9e3779b97f4a7c15ull + 1;
  for (size_t i = 0; i < len; ++i) {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    buf[i] = static_cast<uint8_t>(x >> 24);
  }
}

bool Contains(const std::string& hay, const uint8_t* needle, size_t len) {
  return memmem(hay.data(), hay.size(), needle, len) != nullptr;
}

__attribute__((noinline)) void BusyWorker(std::atomic<uint64_t>* counter,
                                          std::atomic<bool>* stop) {
  while (!stop->load(std::memory_order_relaxed)) {
    counter->fetch_add(1, std::memory_order_relaxed);
  }
}

__attribute__((noinline)) void CrashHere() {
  volatile int* p = nullptr;
  *p = 42;
  __asm__ volatile("" ::: "memory");
}

int RunCommand(const std::string& cmd, std::string* output) {
  output->clear();
  FILE* p = popen((cmd + " 2>&1").c_str(), "r");
  if (p == nullptr) return -1;
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof(buf), p)) > 0) output->append(buf, n);
  const int st = pclose(p);
  return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

bool HaveTool(const std::string& tool) {
  std::string out;
  return RunCommand("command -v " + tool, &out) == 0;
}

}  // namespace sigrace::crashdump::testing
