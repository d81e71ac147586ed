// Scanner throughput: GB/s of Scanner::Scan over 1 GiB in memory, with
// the full form set of an RSA-2048 key (plus the index of every window of
// every form), F = 16, on 1 and 2 threads, with the fastest probe loop the
// CPU has (path 0) or a named one. Four kinds of data:
//   random     bytes from a fixed-seed generator (every probe is a fresh
//              hash)
//   zeroheavy  3/4 zero pages, the rest random (what process cores mostly
//              hold)
//   real       non-key files from /usr/lib and /usr/bin concatenated and
//              repeated up to 1 GiB (code, text, tables, UTF-16 strings)
//   text       random printable ASCII (worst case for the text half of the
//              filter)
//   utf16      random letters and digits as UTF-16LE (worst case for the
//              probe loop: every 4-byte window is in some form)
// BM_ScanFile does the same through Scanner::ScanFile on a page-cached
// 1 GiB file (/tmp/sigrace-scanner-bench-N.bin): pread, a read_size step
// at a time, into per-thread L2-sized buffers, then the same search. The
// copy out of the page cache costs two to three times as much from 4 KiB
// folios as from 2 MiB ones, so the file is put in a named state first
// (argument `cache`):
//   0 as found  written once by an earlier run, in whatever state the page
//               cache and this machine's reclaim have left it since
//   1 fresh     written just now in large writes and synced, as a dump
//               writer leaves a dump it has just finished
//   2 re-read   synced, dropped from the page cache, read back once with
//               1 MiB reads, as a dump read from disk
// Its counter pmd_folio_pct is the share of the file the page cache holds
// in 2 MiB folios (see PmdFolioPercent).
// "Time" is wall-clock; "CPU" is the CPU time of all threads, so bytes per
// CPU second is the rate of one core whatever the thread count (on a
// shared machine the wall-clock rate of 2 threads is capped by the CPU the
// other processes leave).
// The counter "findings" must be 0: none of the data holds the key, so any
// finding is a false positive. `--fp-random GIB` and `--fp-real GIB` count
// false positives over larger files (see FalsePositives below).
//
// Run in the bench preset (Release):
//   cmake --preset bench -B /tmp/bb-scan && ninja -C /tmp/bb-scan
//   scanner_bench && /tmp/bb-scan/bench/scanner_bench
//   /tmp/bb-scan/bench/scanner_bench --fp-random 4
//   /tmp/bb-scan/bench/scanner_bench --fp-real 4

#include <benchmark/benchmark.h>
#include <dirent.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <openssl/rsa.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "crashdump/oracle/key_forms.h"
#include "crashdump/oracle/scanner.h"

namespace sigrace::crashdump {
namespace {

// The data size: 1 GiB, or `--size-mib N` (for valgrind --tool=callgrind,
// whose instruction counts per MiB are the repeatable measure on a loaded
// machine).
size_t kSize = size_t{1} << 30;  // NOLINT: set once by main, before any use

// Data buffers live on transparent huge pages, as ScanFile's read buffers
// do: on 4 KiB pages this virtual machine's TLB walks cost the scan 4x.
struct HugeBuffer {
  uint8_t* data = nullptr;
  size_t size = 0;
};

HugeBuffer Allocate(size_t size) {
  void* p = mmap(nullptr, size, PROT_READ | PROT_WRITE,
                 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED) std::abort();
  madvise(p, size, MADV_HUGEPAGE);
  return {static_cast<uint8_t*>(p), size};
}

std::vector<uint8_t> MakeRandom() {
  std::vector<uint8_t> v(kSize);  // copied to a HugeBuffer by Data()
  std::mt19937_64 rng(42);
  for (size_t i = 0; i < kSize; i += 8) {
    const uint64_t x = rng();
    std::memcpy(v.data() + i, &x, 8);
  }
  return v;
}

// Printable ASCII from a fixed-seed generator: every probe goes to the
// text half of the filter (the L2-resident one).
std::vector<uint8_t> MakeText() {
  std::vector<uint8_t> v(kSize);
  std::mt19937_64 rng(44);
  for (size_t i = 0; i < kSize; i += 8) {
    const uint64_t x = rng();
    for (size_t j = 0; j < 8; ++j) {
      v[i + j] = static_cast<uint8_t>(0x20 + ((x >> (8 * j)) & 0xff) % 95);
    }
  }
  return v;
}

// Random letters and digits as UTF-16LE (the strings of Java, .NET and
// Windows programs): every pair of them stands in some UTF-16LE base64
// form, so every probe is a 2-character window the filter passes.
std::vector<uint8_t> MakeUtf16() {
  static const char kAlnum[] =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
  std::vector<uint8_t> v(kSize, 0);
  std::mt19937_64 rng(45);
  for (size_t i = 0; i < kSize; i += 2) v[i] = kAlnum[rng() % 62];
  return v;
}

std::vector<uint8_t> MakeZeroHeavy() {
  std::vector<uint8_t> v(kSize, 0);
  std::mt19937_64 rng(43);
  for (size_t page = 0; page < kSize; page += 4096) {
    if (rng() % 4 != 0) continue;
    for (size_t i = 0; i < 4096; i += 8) {
      const uint64_t x = rng();
      std::memcpy(v.data() + page + i, &x, 8);
    }
  }
  return v;
}

// Calls visit(path, size) for each regular, non-empty file under `dir`
// (names sorted, depth <= 3) until visit returns false; returns false if it
// did. The "real" data of both the benchmarks and --fp-real.
bool WalkFiles(const std::string& dir, int depth,
               const std::function<bool(const std::string&, uint64_t)>& visit) {
  DIR* d = opendir(dir.c_str());
  if (d == nullptr) return true;
  std::vector<std::string> names;
  // One thread reads this DIR stream.
  while (dirent* e = readdir(d)) {  // NOLINT(concurrency-mt-unsafe)
    if (e->d_name[0] == '.') continue;
    names.push_back(e->d_name);
  }
  closedir(d);
  std::sort(names.begin(), names.end());
  for (const std::string& n : names) {
    const std::string path = dir + "/" + n;
    struct stat st;
    if (lstat(path.c_str(), &st) != 0) continue;
    if (S_ISDIR(st.st_mode) && depth < 3) {
      if (!WalkFiles(path, depth + 1, visit)) return false;
    } else if (S_ISREG(st.st_mode) && st.st_size > 0) {
      if (!visit(path, static_cast<uint64_t>(st.st_size))) return false;
    }
  }
  return true;
}

// Non-key data: the files under /usr/lib, then /usr/bin.
void WalkRealFiles(
    const std::function<bool(const std::string&, uint64_t)>& visit) {
  if (WalkFiles("/usr/lib", 0, visit)) WalkFiles("/usr/bin", 0, visit);
}

std::vector<uint8_t> MakeReal() {
  std::vector<uint8_t> v;
  v.reserve(kSize);
  WalkRealFiles([&v](const std::string& path, uint64_t size) {
    FILE* f = std::fopen(path.c_str(), "rb");
    if (f == nullptr) return true;
    const size_t want =
        static_cast<size_t>(std::min<uint64_t>(size, kSize - v.size()));
    const size_t at = v.size();
    v.resize(at + want);
    v.resize(at + std::fread(v.data() + at, 1, want, f));
    std::fclose(f);
    return v.size() < kSize;
  });
  const size_t have = v.size();
  while (have > 0 && v.size() < kSize) {
    const size_t n = std::min(have, kSize - v.size());
    v.insert(v.end(), v.begin(), v.begin() + static_cast<ptrdiff_t>(n));
  }
  return v;
}

const HugeBuffer& Data(int kind) {
  static HugeBuffer cache[5];
  if (cache[kind].data == nullptr) {
    std::vector<uint8_t> v = kind == 0   ? MakeRandom()
                             : kind == 1 ? MakeZeroHeavy()
                             : kind == 2 ? MakeReal()
                             : kind == 3 ? MakeText()
                                         : MakeUtf16();
    cache[kind] = Allocate(v.size());
    std::memcpy(cache[kind].data, v.data(), v.size());
  }
  return cache[kind];
}

// Writes `d` to `path` in 2 MiB writes and syncs it.
bool WriteSynced(const std::string& path, const HugeBuffer& d) {
  const int fd =
      open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return false;
  bool ok = true;
  constexpr size_t kStep = size_t{2} << 20;
  for (size_t at = 0; ok && at < d.size; at += kStep) {
    const size_t n = std::min(kStep, d.size - at);
    ok = write(fd, d.data + at, n) == static_cast<ssize_t>(n);
  }
  ok = ok && fdatasync(fd) == 0;
  close(fd);
  return ok;
}

// The same data as a page-cached file, for ScanFile.
std::string DataFile(int kind) {
  const std::string path =
      "/tmp/sigrace-scanner-bench-" + std::to_string(kind) + ".bin";
  struct stat st;
  if ((stat(path.c_str(), &st) != 0 ||
       static_cast<size_t>(st.st_size) != kSize) &&
      !WriteSynced(path, Data(kind))) {
    std::abort();
  }
  return path;
}

// The share of `path`'s 2 MiB blocks that the page cache holds as one
// 2 MiB folio (percent; -1 when the kernel cannot tell). ScanFile's copy
// out of the page cache costs about 60 ms per GiB from such folios and two
// to three times that from 4 KiB ones (which a file re-read after eviction
// mostly gets), so BM_ScanFile figures mean little without it. Maps the
// file, faults one page per block (a 2 MiB folio is then mapped by one
// PMD) and asks PAGEMAP_SCAN (Linux 6.7) which ranges are PMD-mapped; no
// data byte is read.
int PmdFolioPercent(const std::string& path) {
  struct PageRegion {
    uint64_t start, end, categories;
  };
  struct PmScanArg {
    uint64_t size, flags, start, end, walk_end, vec, vec_len, max_pages,
        category_inverted, category_mask, category_anyof_mask, return_mask;
  };
  constexpr unsigned long kPagemapScan = _IOWR('f', 16, PmScanArg);
  constexpr uint64_t kPageIsHuge = 1 << 6;
  constexpr size_t kBlock = size_t{2} << 20;
  const int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return -1;
  struct stat st;
  if (fstat(fd, &st) != 0 || st.st_size < static_cast<off_t>(kBlock)) {
    close(fd);
    return -1;
  }
  const size_t size = static_cast<size_t>(st.st_size) / kBlock * kBlock;
  // A 2 MiB-aligned address, so a block can be mapped by one PMD.
  void* area = mmap(nullptr, size + kBlock, PROT_NONE,
                    MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (area == MAP_FAILED) {
    close(fd);
    return -1;
  }
  auto* at = reinterpret_cast<uint8_t*>(
      (reinterpret_cast<uintptr_t>(area) + kBlock - 1) / kBlock * kBlock);
  int percent = -1;
  if (mmap(at, size, PROT_READ, MAP_SHARED | MAP_FIXED, fd, 0) != MAP_FAILED) {
    for (size_t b = 0; b < size; b += kBlock) {
      madvise(at + b, 4096, MADV_POPULATE_READ);
    }
    std::vector<PageRegion> regions(size / kBlock + 1);
    PmScanArg arg = {};
    arg.size = sizeof(arg);
    arg.start = reinterpret_cast<uint64_t>(at);
    arg.end = arg.start + size;
    arg.vec = reinterpret_cast<uint64_t>(regions.data());
    arg.vec_len = regions.size();
    arg.category_anyof_mask = kPageIsHuge;
    arg.return_mask = kPageIsHuge;
    const int pm = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
    const long n = pm < 0 ? -1 : ioctl(pm, kPagemapScan, &arg);
    if (pm >= 0) close(pm);
    if (n >= 0) {
      uint64_t huge = 0;
      for (long i = 0; i < n; ++i) huge += regions[i].end - regions[i].start;
      percent = static_cast<int>(huge * 100 / size);
    }
  }
  munmap(area, size + kBlock);
  close(fd);
  return percent;
}

const KeyForms& Rsa2048() {
  static KeyForms* forms = [] {
    EVP_PKEY* pkey = EVP_RSA_gen(2048);
    StatusOr<KeyForms> f = KeyForms::FromPkey(pkey, "bench");
    EVP_PKEY_free(pkey);
    if (!f.ok()) std::abort();
    return new KeyForms(std::move(f).value());
  }();
  return *forms;
}

void BM_Scan(benchmark::State& state) {
  const int kind = static_cast<int>(state.range(0));
  const int threads = static_cast<int>(state.range(1));
  const HugeBuffer& data = Data(kind);
  ScanOptions opt;
  opt.min_fragment = 16;
  opt.threads = threads;
  opt.probe_path = static_cast<ProbePath>(state.range(2));
  StatusOr<std::unique_ptr<Scanner>> s = Scanner::Create({Rsa2048()}, opt);
  if (!s.ok()) {
    state.SkipWithError(s.status().ToString().c_str());
    return;
  }
  size_t findings = 0;
  for (auto _ : state) {
    std::vector<Finding> f = (*s)->Scan(data.data, data.size);
    findings = f.size();
    benchmark::DoNotOptimize(f.data());
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations()) *
                          static_cast<int64_t>(data.size));
  state.counters["findings"] = static_cast<double>(findings);
  state.counters["forms"] = static_cast<double>(Rsa2048().forms().size());
  state.counters["windows"] = static_cast<double>((*s)->indexed_windows());
  state.counters["index_KiB"] =
      static_cast<double>((*s)->index_bytes()) / 1024.0;
  static const char* kNames[] = {"random", "zeroheavy", "real", "text",
                                 "utf16"};
  state.SetLabel(std::string(kNames[kind]) + " " +
                 ProbePathName((*s)->probe_path()));
}

// Syncs `path`, drops it from the page cache and reads it back once.
bool Reread(const std::string& path) {
  const int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return false;
  bool ok =
      fdatasync(fd) == 0 && posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED) == 0;
  std::vector<uint8_t> buf(size_t{1} << 20);
  for (ssize_t n = 1; ok && n > 0;) {
    n = read(fd, buf.data(), buf.size());
    ok = n >= 0;
  }
  close(fd);
  return ok;
}

// ScanFile on a 1 GiB page-cached file: pread into per-thread L2-sized
// buffers, then the same search.
void BM_ScanFile(benchmark::State& state) {
  const int kind = static_cast<int>(state.range(0));
  const std::string path = DataFile(kind);
  const int cache = static_cast<int>(state.range(2));
  if ((cache == 1 && !WriteSynced(path, Data(kind))) ||
      (cache == 2 && !Reread(path))) {
    state.SkipWithError(("cannot prepare " + path).c_str());
    return;
  }
  ScanOptions opt;
  opt.threads = static_cast<int>(state.range(1));
  if (state.range(3) > 0)
    opt.read_size = static_cast<size_t>(state.range(3)) << 10;
  StatusOr<std::unique_ptr<Scanner>> s = Scanner::Create({Rsa2048()}, opt);
  if (!s.ok()) {
    state.SkipWithError(s.status().ToString().c_str());
    return;
  }
  size_t findings = 0;
  for (auto _ : state) {
    StatusOr<ScanReport> r = (*s)->ScanFile(path);
    if (!r.ok()) {
      state.SkipWithError(r.status().ToString().c_str());
      return;
    }
    findings = r->findings.size();
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations()) *
                          static_cast<int64_t>(kSize));
  state.counters["findings"] = static_cast<double>(findings);
  state.counters["pmd_folio_pct"] = PmdFolioPercent(path);
  static const char* kNames[] = {"random", "zeroheavy", "real"};
  static const char* kCache[] = {"as found", "fresh", "re-read"};
  state.SetLabel(std::string(kNames[kind]) + ", " + kCache[cache]);
}

// cache: the page-cache state (see the top of the file); read_kib:
// ScanOptions::read_size in KiB (0: the default).
BENCHMARK(BM_ScanFile)
    ->ArgNames({"data", "threads", "cache", "read_kib"})
    ->ArgsProduct({{0, 2}, {1, 2}, {0, 1, 2}, {0}})
    ->Args({0, 1, 1, 128})
    ->Args({0, 1, 1, 512})
    ->Args({0, 1, 1, 1024})
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime()
    ->MeasureProcessCPUTime()
    ->MinTime(2.0);

// path: 0 auto (the fastest the CPU has), 1 generic, 2 bmi2, 3 avx512.
BENCHMARK(BM_Scan)
    ->ArgNames({"data", "threads", "path"})
    ->ArgsProduct({{0, 1, 2, 3, 4}, {1, 2}, {0}})
    ->Args({0, 1, 1})
    ->Args({0, 1, 2})
    ->Args({2, 1, 2})
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime()
    ->MeasureProcessCPUTime()
    ->MinTime(2.0);

// --- False-positive count: scanner_bench --fp-random GIB / --fp-real GIB.
// Writes (once) a file of GIB GiB of fixed-seed random bytes, or of
// /usr/lib and /usr/bin files concatenated without repeats (as many as
// there are, up to GIB GiB), and scans it with ScanFile on every CPU with
// the forms of an RSA-2048, an Ed25519 and a P-256 key, F = 16. None of
// the data holds these keys: every finding is a false positive. Prints the
// counts and the scan rate; exit 0 when there are none.

bool WriteRandomFile(const std::string& path, uint64_t size) {
  FILE* f = std::fopen(path.c_str(), "wb");
  if (f == nullptr) return false;
  std::mt19937_64 rng(20261129);
  std::vector<uint64_t> block(1 << 20);
  for (uint64_t done = 0; done < size;) {
    for (uint64_t& x : block) x = rng();
    const size_t n =
        static_cast<size_t>(std::min<uint64_t>(size - done, block.size() * 8));
    if (std::fwrite(block.data(), 1, n, f) != n) break;
    done += n;
  }
  return std::fclose(f) == 0;
}

int FalsePositives(const std::string& kind, uint64_t gib) {
  const uint64_t size = gib << 30;
  const std::string path =
      "/tmp/sigrace-scanner-fp-" + kind + "-" + std::to_string(gib) + ".bin";
  struct stat st;
  size_t files = 0;
  if (stat(path.c_str(), &st) != 0 ||
      (kind == "random" && static_cast<uint64_t>(st.st_size) != size)) {
    std::fprintf(stderr, "writing %s\n", path.c_str());
    if (kind == "random") {
      if (!WriteRandomFile(path, size)) return 2;
    } else {
      FILE* out = std::fopen(path.c_str(), "wb");
      if (out == nullptr) return 2;
      uint64_t written = 0;
      std::vector<uint8_t> buf(size_t{1} << 20);
      WalkRealFiles([&](const std::string& p, uint64_t) {
        FILE* f = std::fopen(p.c_str(), "rb");
        if (f == nullptr) return true;
        ++files;
        size_t got;
        while (written < size &&
               (got = std::fread(buf.data(), 1, buf.size(), f)) > 0) {
          const size_t n =
              static_cast<size_t>(std::min<uint64_t>(got, size - written));
          std::fwrite(buf.data(), 1, n, out);
          written += n;
        }
        std::fclose(f);
        return written < size;
      });
      std::fclose(out);
      std::fprintf(stderr, "%zu files\n", files);
    }
  }
  std::vector<KeyForms> keys = {Rsa2048()};
  for (const char* alg : {"ED25519", "P-256"}) {
    EVP_PKEY* k = std::string(alg) == "ED25519"
                      ? EVP_PKEY_Q_keygen(nullptr, nullptr, "ED25519")
                      : EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", "P-256");
    StatusOr<KeyForms> f = KeyForms::FromPkey(k, "fp");
    EVP_PKEY_free(k);
    if (!f.ok()) return 2;
    keys.push_back(std::move(f).value());
  }
  size_t forms = 0;
  for (const KeyForms& k : keys) forms += k.forms().size();
  ScanOptions opt;  // F = 16, one thread per CPU
  StatusOr<std::unique_ptr<Scanner>> s = Scanner::Create(keys, opt);
  if (!s.ok()) return 2;
  for (int rep = 0; rep < 2; ++rep) {  // the first run fills the page cache
    StatusOr<ScanReport> r = (*s)->ScanFile(path);
    if (!r.ok()) {
      std::fprintf(stderr, "%s\n", r.status().ToString().c_str());
      return 2;
    }
    std::printf(
        "%s: %llu bytes, %zu forms of 3 keys, F=16, path %s: findings %zu "
        "(leaks %zu, anchors %zu, not applied %zu), %.1f ms, %.2f GB/s\n",
        path.c_str(), static_cast<unsigned long long>(r->file_size), forms,
        ProbePathName((*s)->probe_path()), r->findings.size(), r->leaks,
        r->anchors, r->not_applied, r->seconds * 1e3,
        static_cast<double>(r->file_size) / r->seconds / 1e9);
    if (rep == 1) return r->findings.empty() ? 0 : 1;
  }
  return 0;
}

}  // namespace
}  // namespace sigrace::crashdump

int main(int argc, char** argv) {
  if (argc == 3 && (std::string(argv[1]) == "--fp-random" ||
                    std::string(argv[1]) == "--fp-real")) {
    const int gib = std::atoi(argv[2]);
    if (gib <= 0 || gib > 64) return 2;
    return sigrace::crashdump::FalsePositives(std::string(argv[1]).substr(5),
                                              static_cast<uint64_t>(gib));
  }
  if (argc >= 3 && std::string(argv[1]) == "--size-mib") {
    const int mib = std::atoi(argv[2]);
    if (mib <= 0 || mib > 1024) {
      std::fprintf(stderr, "--size-mib takes 1..1024\n");
      return 2;
    }
    sigrace::crashdump::kSize = static_cast<size_t>(mib) << 20;
    argv[2] = argv[0];
    argc -= 2;
    argv += 2;
  }
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
