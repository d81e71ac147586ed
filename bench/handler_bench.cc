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
  uint64_t bytes = 0, disk = 0, freeze_ns = 0, n = 0;
  for (auto _ : state) {
    if (!RequestLiveDump().ok()) state.SkipWithError("request failed");
    const DumpResult r = LastDump();
    if (!r.ok) {
      state.SkipWithError("dump failed");
      break;
    }
    bytes += r.size;
    freeze_ns += r.freeze_ns;
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

}  // namespace
}  // namespace sigrace::crashdump

BENCHMARK_MAIN();
