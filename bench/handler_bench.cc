// Crash-path speed: what a dump costs.
//   BM_LiveDumpMemfd/T    live dump of this process (T busy threads plus
//                         a 64 MiB heap of non-zero data) into a memfd:
//                         time per dump, MB/s of dump bytes.
//   BM_LiveDumpFile/T     the same into a directory (tmp name, fsync,
//                         rename); the file is removed after each dump.
//   BM_Freeze/T           freeze latency (counter freeze_us) with T other
//                         threads busy; the dump itself is in the time.
//   BM_FatalDump/kernel   a child with the same 64 MiB and 8 threads
//   BM_FatalDump/sigrace  dies by SIGSEGV; the time is from "crash now" to
//                         reaped, the counter MB/s is dump bytes over it.
//                         kernel: ulimit -c, the kernel's core_pattern;
//                         sigrace: the fatal handler, dumps to a directory.
// Counters: dump_MB (apparent size), disk_MB (allocated blocks; holes are
// free), MB_per_s (apparent size / time).
//
//   BM_DumpCompare/M/MB/T  the same process (MB MiB, T threads) dumped by
//                         the kernel, sigrace fatal, sigrace live, gcore.
//
//   cmake --preset bench -B /tmp/bb-crash && ninja -C /tmp/bb-crash
//   handler_bench && /tmp/bb-crash/bench/handler_bench

#include <benchmark/benchmark.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "crashdump/capture/handler.h"
#include "testing/crash_test_util.h"

namespace sigrace::crashdump {
namespace {

constexpr size_t kHeapBytes = 64u << 20;

// Non-zero data, so holes do not flatter the figures.
std::vector<uint8_t>* Heap() {
  static std::vector<uint8_t>* heap = [] {
    auto* v = new std::vector<uint8_t>(kHeapBytes);
    uint64_t x = 88172645463325252ull;
    for (size_t i = 0; i < v->size(); i += 8) {
      x ^= x << 13;
      x ^= x >> 7;
      x ^= x << 17;
      memcpy(v->data() + i, &x, 8);
    }
    return v;
  }();
  return heap;
}

class Workers {
 public:
  explicit Workers(int n) : counters_(static_cast<size_t>(n)) {
    for (int i = 0; i < n; ++i) {
      threads_.emplace_back([this, i] {
        (void)InstallAltStackForThisThread();
        started_.fetch_add(1);
        testing::BusyWorker(&counters_[static_cast<size_t>(i)], &stop_);
      });
    }
    while (started_.load() < n) std::this_thread::yield();
  }
  ~Workers() {
    stop_ = true;
    for (auto& t : threads_) t.join();
  }

 private:
  std::vector<std::atomic<uint64_t>> counters_;
  std::atomic<bool> stop_{false};
  std::atomic<int> started_{0};
  std::vector<std::thread> threads_;
};

bool Install(const DumpTarget& target) {
  if (HandlerInstalled()) UninstallHandler();
  HandlerOptions o;
  o.target = target;
  o.fatal = false;
  return InstallHandler(o).ok();
}

void LiveDump(benchmark::State& state, bool to_file) {
  Heap();
  testing::TempDir dir;
  if (!Install(to_file ? DumpTarget::Directory(dir.path())
                       : DumpTarget::Memfd())) {
    state.SkipWithError("install failed");
    return;
  }
  Workers w(static_cast<int>(state.range(0)));
  uint64_t bytes = 0, disk = 0, freeze_ns = 0, unwind_ns = 0, total_ns = 0,
           n = 0;
  for (auto _ : state) {
    if (!RequestLiveDump().ok()) state.SkipWithError("request failed");
    const DumpResult r = LastDump();
    if (!r.ok) {
      state.SkipWithError("dump failed");
      break;
    }
    bytes += r.size;
    freeze_ns += r.freeze_ns;
    unwind_ns += r.unwind_ns;
    total_ns += r.total_ns;
    ++n;
    struct stat st;
    if (to_file) {
      state.PauseTiming();
      if (stat(r.path, &st) == 0)
        disk += static_cast<uint64_t>(st.st_blocks) * 512;
      unlink(r.path);
      state.ResumeTiming();
    } else if (fstat(r.memfd, &st) == 0) {
      disk += static_cast<uint64_t>(st.st_blocks) * 512;
    }
  }
  UninstallHandler();
  if (n == 0) return;
  state.SetBytesProcessed(static_cast<int64_t>(bytes));
  state.counters["dump_MB"] = static_cast<double>(bytes) / n / 1e6;
  state.counters["disk_MB"] = static_cast<double>(disk) / n / 1e6;
  state.counters["freeze_us"] = static_cast<double>(freeze_ns) / n / 1e3;
  // The unwind pass (every thread walked with libunwind, the words that
  // unwinding reads kept inside secret stacks) and its share of the dump.
  state.counters["unwind_us"] = static_cast<double>(unwind_ns) / n / 1e3;
  state.counters["unwind_share"] =
      total_ns > 0 ? static_cast<double>(unwind_ns) / total_ns : 0;
  state.counters["threads"] = static_cast<double>(state.range(0) + 1);
}

void BM_LiveDumpMemfd(benchmark::State& state) { LiveDump(state, false); }
void BM_LiveDumpFile(benchmark::State& state) { LiveDump(state, true); }
BENCHMARK(BM_LiveDumpMemfd)
    ->Arg(8)
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();
BENCHMARK(BM_LiveDumpFile)
    ->Arg(8)
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();

void BM_Freeze(benchmark::State& state) { LiveDump(state, false); }
BENCHMARK(BM_Freeze)
    ->Arg(2)
    ->Arg(8)
    ->Arg(32)
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();

// A child with the heap and 8 threads dies by SIGSEGV; kernel or sigrace
// writes the dump. Time: from the child's "crashing now" to reaped.
void BM_FatalDump(benchmark::State& state) {
  const bool sigrace = state.range(0) == 1;
  state.SetLabel(sigrace ? "sigrace" : "kernel");
  if (!sigrace) {
    char pattern[256] = {};
    int fd = open("/proc/sys/kernel/core_pattern", O_RDONLY);
    if (fd >= 0) {
      (void)!read(fd, pattern, sizeof(pattern) - 1);
      close(fd);
    }
    if (pattern[0] == '|') {
      state.SkipWithError("core_pattern pipes to a helper; no kernel file");
      return;
    }
  }
  Heap();
  uint64_t bytes = 0, disk = 0, n = 0;
  for (auto _ : state) {
    state.PauseTiming();
    testing::TempDir dir;
    int pipefd[2];
    if (pipe(pipefd) != 0) break;
    const pid_t pid = fork();
    if (pid == 0) {
      close(pipefd[0]);
      if (chdir(dir.path().c_str()) != 0) _exit(3);
      struct rlimit rl = {sigrace ? 0 : RLIM_INFINITY,
                          sigrace ? 0 : RLIM_INFINITY};
      setrlimit(RLIMIT_CORE, &rl);
      if (sigrace) {
        HandlerOptions o;
        o.target = DumpTarget::Directory(dir.path());
        o.fatal = true;
        if (!InstallHandler(o).ok()) _exit(4);
      }
      static Workers* w = new Workers(8);
      (void)w;
      (void)!write(pipefd[1], "x", 1);
      testing::CrashHere();
      _exit(5);
    }
    close(pipefd[1]);
    char c;
    state.ResumeTiming();
    (void)!read(pipefd[0], &c, 1);
    int status = 0;
    waitpid(pid, &status, 0);
    state.PauseTiming();
    close(pipefd[0]);
    for (const std::string& name : dir.List()) {
      struct stat st;
      if (stat((dir.path() + "/" + name).c_str(), &st) == 0) {
        bytes += static_cast<uint64_t>(st.st_size);
        disk += static_cast<uint64_t>(st.st_blocks) * 512;
      }
    }
    ++n;
    state.ResumeTiming();
  }
  if (n == 0) return;
  state.SetBytesProcessed(static_cast<int64_t>(bytes));
  state.counters["dump_MB"] = static_cast<double>(bytes) / n / 1e6;
  state.counters["disk_MB"] = static_cast<double>(disk) / n / 1e6;
}
BENCHMARK(BM_FatalDump)
    ->Arg(0)
    ->Arg(1)
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime()
    ->Iterations(5);

// The same process dumped four ways, by size and thread count:
// BM_DumpCompare/method/MB/threads, method 0 kernel (fatal, core_pattern
// file), 1 sigrace fatal, 2 sigrace live dump to a directory (the process
// goes on), 3 gdb's gcore (the process goes on). A fresh child per
// iteration holds MB MiB of non-zero heap and `threads` busy threads; the
// time is from the request (crash now, live request, gcore started) to the
// dump complete (reaped, the handler's reply, gcore exited). Skipped when
// gcore is not installed or core_pattern pipes to a helper.
enum DumpMethod {
  kKernel = 0,
  kSigraceFatal = 1,
  kSigraceLive = 2,
  kGcore = 3
};

bool CorePatternIsFile() {
  char pattern[256] = {};
  int fd = open("/proc/sys/kernel/core_pattern", O_RDONLY);
  if (fd >= 0) {
    (void)!read(fd, pattern, sizeof(pattern) - 1);
    close(fd);
  }
  return pattern[0] != '|';
}

std::string GcorePath() {
  for (const char* p : {"/usr/bin/gcore", "/usr/local/bin/gcore"}) {
    if (access(p, X_OK) == 0) return p;
  }
  return "";
}

// The child: fill the heap, start the threads, install the handler the
// method needs, say "ready", then crash or serve one live request.
[[noreturn]] void DumpChild(int method, size_t mb, int threads,
                            const std::string& dir, int ready_fd,
                            int request_fd) {
  if (chdir(dir.c_str()) != 0) _exit(3);
  struct rlimit rl = {method == kKernel ? RLIM_INFINITY : 0,
                      method == kKernel ? RLIM_INFINITY : 0};
  setrlimit(RLIMIT_CORE, &rl);
  const size_t bytes = mb << 20;
  auto* heap = static_cast<uint8_t*>(malloc(bytes));
  if (heap == nullptr) _exit(6);
  uint64_t x = 88172645463325252ull;
  for (size_t i = 0; i < bytes; i += 8) {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    memcpy(heap + i, &x, 8);
  }
  // Escapes, so that the compiler keeps the allocation and its stores.
  [[maybe_unused]] static uint8_t* volatile g_heap;
  g_heap = heap;
  benchmark::DoNotOptimize(heap);
  if (method == kSigraceFatal || method == kSigraceLive) {
    HandlerOptions o;
    o.target = DumpTarget::Directory(dir);
    o.fatal = method == kSigraceFatal;
    if (!InstallHandler(o).ok()) _exit(4);
  }
  static Workers* w = new Workers(threads);
  (void)w;
  (void)!write(ready_fd, "r", 1);
  char c;
  if (read(request_fd, &c, 1) != 1) _exit(7);
  if (method == kKernel || method == kSigraceFatal) testing::CrashHere();
  if (method == kSigraceLive) {
    const bool ok = RequestLiveDump().ok() && LastDump().ok;
    (void)!write(ready_fd, ok ? "d" : "e", 1);
  }
  // gcore: wait to be killed.
  for (;;) pause();
}

void BM_DumpCompare(benchmark::State& state) {
  const int method = static_cast<int>(state.range(0));
  const size_t mb = static_cast<size_t>(state.range(1));
  const int threads = static_cast<int>(state.range(2));
  static const char* const kNames[] = {"kernel", "sigrace-fatal",
                                       "sigrace-live", "gcore"};
  state.SetLabel(kNames[method]);
  if (method == kKernel && !CorePatternIsFile()) {
    state.SkipWithError("core_pattern pipes to a helper; no kernel file");
    return;
  }
  const std::string gcore = GcorePath();
  if (method == kGcore && gcore.empty()) {
    state.SkipWithError("gcore not installed");
    return;
  }
  uint64_t bytes = 0, disk = 0, n = 0;
  for (auto _ : state) {
    state.PauseTiming();
    testing::TempDir dir;
    int ready[2], request[2];
    if (pipe(ready) != 0 || pipe(request) != 0) break;
    const pid_t pid = fork();
    if (pid == 0) {
      close(ready[0]);
      close(request[1]);
      DumpChild(method, mb, threads, dir.path(), ready[1], request[0]);
    }
    close(ready[1]);
    close(request[0]);
    char c = 0;
    if (read(ready[0], &c, 1) != 1) {
      state.SkipWithError("child did not start");
      waitpid(pid, nullptr, 0);
      break;
    }
    bool ok = true;
    state.ResumeTiming();
    if (method == kGcore) {
      const std::string prefix = dir.path() + "/gcore";
      const std::string pid_s = std::to_string(pid);
      const pid_t g = fork();
      if (g == 0) {
        int null = open("/dev/null", O_WRONLY);
        dup2(null, 1);
        dup2(null, 2);
        execl(gcore.c_str(), "gcore", "-o", prefix.c_str(), pid_s.c_str(),
              static_cast<char*>(nullptr));
        _exit(127);
      }
      int gst = 0;
      waitpid(g, &gst, 0);
      ok = WIFEXITED(gst) && WEXITSTATUS(gst) == 0;
    } else {
      (void)!write(request[1], "d", 1);
      if (method == kSigraceLive) {
        ok = read(ready[0], &c, 1) == 1 && c == 'd';
      } else {
        waitpid(pid, nullptr, 0);
      }
    }
    state.PauseTiming();
    if (method == kSigraceLive || method == kGcore) {
      kill(pid, SIGKILL);
      waitpid(pid, nullptr, 0);
    }
    close(ready[0]);
    close(request[1]);
    for (const std::string& name : dir.List()) {
      struct stat st;
      if (stat((dir.path() + "/" + name).c_str(), &st) == 0 &&
          S_ISREG(st.st_mode)) {
        bytes += static_cast<uint64_t>(st.st_size);
        disk += static_cast<uint64_t>(st.st_blocks) * 512;
      }
    }
    ++n;
    state.ResumeTiming();
    if (!ok) {
      state.SkipWithError("dump failed");
      break;
    }
  }
  if (n == 0) return;
  state.SetBytesProcessed(static_cast<int64_t>(bytes));
  state.counters["dump_MB"] = static_cast<double>(bytes) / n / 1e6;
  state.counters["disk_MB"] = static_cast<double>(disk) / n / 1e6;
  state.counters["heap_MB"] = static_cast<double>(mb);
  state.counters["threads"] = static_cast<double>(threads + 1);
}
// Sizes at 8 threads, and thread counts at 64 MiB; the methods alternate
// within each cell. bench/compare filters and repeats these.
void DumpCompareArgs(benchmark::internal::Benchmark* b) {
  for (int64_t mb : {64, 256, 1024}) {
    for (int64_t m = 0; m < 4; ++m) b->Args({m, mb, 8});
  }
  for (int64_t t : {2, 16, 64}) {
    for (int64_t m = 0; m < 4; ++m) b->Args({m, 64, t});
  }
}
BENCHMARK(BM_DumpCompare)
    ->Apply(DumpCompareArgs)
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime()
    ->Iterations(1);

}  // namespace
}  // namespace sigrace::crashdump

BENCHMARK_MAIN();
