#include "tsan/report_counter.h"

#include <cxxabi.h>
#include <dlfcn.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>

#include "tsan/options.h"

#if defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define SIGRACE_TSAN_RUNTIME 1
#endif
#endif

namespace sigrace::tsan {
namespace {

// Distinct TSan description strings seen so far. The runtime hands out
// pointers to its own static strings, one per report type, so the pointer
// identifies the type and classification can wait until snapshot time.
constexpr size_t kMaxDescriptions = 32;

// One report as the hook records it: raw PCs, symbolized later. A seqlock:
// `seq` is 0 while the hook writes the slot and the report's sequence
// number once it is complete.
struct RawRecord {
  uint64_t seq;
  const char* description;
  uint32_t nstacks;
  uint32_t nframes[kMaxStacksPerReport];
  uintptr_t pcs[kMaxStacksPerReport][kMaxFramesPerStack];
};

struct DescriptionCount {
  const char* description;
  uint64_t count;
};

// Written only by the hook, which runs uninstrumented and touches them with
// __atomic builtins; read by the uninstrumented copy functions below. TSan
// never sees these accesses, so the counter cannot report on itself (and
// cannot re-enter the runtime while it holds its report locks).
uint64_t g_reports;  // sequence number of the last report started
DescriptionCount g_descriptions[kMaxDescriptions];
uint64_t g_descriptions_overflow;
RawRecord g_ring[kMaxRecordedReports];

static_assert(sizeof(uint64_t) == sizeof(uintptr_t));

#define SIGRACE_NO_TSAN __attribute__((disable_sanitizer_instrumentation))

// A consistent copy of every counter, taken without instrumentation.
struct RawTotals {
  uint64_t reports;
  DescriptionCount descriptions[kMaxDescriptions];
  uint64_t descriptions_overflow;
};

SIGRACE_NO_TSAN void CopyTotals(RawTotals* out) {
  out->reports = __atomic_load_n(&g_reports, __ATOMIC_ACQUIRE);
  for (size_t i = 0; i < kMaxDescriptions; ++i) {
    out->descriptions[i].description =
        __atomic_load_n(&g_descriptions[i].description, __ATOMIC_ACQUIRE);
    out->descriptions[i].count =
        __atomic_load_n(&g_descriptions[i].count, __ATOMIC_RELAXED);
  }
  out->descriptions_overflow =
      __atomic_load_n(&g_descriptions_overflow, __ATOMIC_RELAXED);
}

// Copies ring slot of report `seq` if it still holds that report whole.
SIGRACE_NO_TSAN bool CopyRecord(uint64_t seq, RawRecord* out) {
  RawRecord& r = g_ring[seq % kMaxRecordedReports];
  if (__atomic_load_n(&r.seq, __ATOMIC_ACQUIRE) != seq) return false;
  out->seq = seq;
  out->description = __atomic_load_n(&r.description, __ATOMIC_RELAXED);
  out->nstacks = __atomic_load_n(&r.nstacks, __ATOMIC_RELAXED);
  for (size_t s = 0; s < kMaxStacksPerReport; ++s) {
    out->nframes[s] = __atomic_load_n(&r.nframes[s], __ATOMIC_RELAXED);
    for (size_t f = 0; f < kMaxFramesPerStack; ++f) {
      out->pcs[s][f] = __atomic_load_n(&r.pcs[s][f], __ATOMIC_RELAXED);
    }
  }
  __atomic_thread_fence(__ATOMIC_ACQUIRE);
  if (__atomic_load_n(&r.seq, __ATOMIC_RELAXED) != seq) return false;
  if (out->nstacks > kMaxStacksPerReport) return false;
  for (size_t s = 0; s < out->nstacks; ++s) {
    if (out->nframes[s] > kMaxFramesPerStack) return false;
  }
  return true;
}

// The baseline Reset() moves. Ordinary code, ordinary lock.
struct Baseline {
  uint64_t reports = 0;
  std::map<std::string, uint64_t> by_description;
};
std::mutex g_baseline_mu;
Baseline g_baseline;  // guarded by g_baseline_mu

// Symbolized names per PC; PCs of the main binary and of libraries that
// stay loaded keep their meaning for the life of the process.
std::mutex g_symbol_mu;
std::map<uintptr_t, std::vector<std::string>>* g_symbols;  // g_symbol_mu

}  // namespace
}  // namespace sigrace::tsan

#if defined(SIGRACE_TSAN_RUNTIME)

// The TSan runtime's debugging interface (compiler-rt
// lib/tsan/rtl/tsan_debugging.cpp, LLVM 14). It has no public header, so
// the prototypes are declared here, checked against the runtime's symbols
// (nm libclang_rt.tsan-x86_64.a).
extern "C" {
int __tsan_get_report_data(void* report, const char** description, int* count,
                           int* stack_count, int* mop_count, int* loc_count,
                           int* mutex_count, int* thread_count,
                           int* unique_tid_count, void** sleep_trace,
                           uintptr_t trace_size);
int __tsan_get_report_stack(void* report, uintptr_t idx, void** trace,
                            uintptr_t trace_size);
int __tsan_get_report_mop(void* report, uintptr_t idx, int* tid, void** addr,
                          int* size, int* write, int* atomic, void** trace,
                          uintptr_t trace_size);
void __sanitizer_symbolize_pc(void* pc, const char* fmt, char* out_buf,
                              size_t out_buf_size);
}

namespace sigrace::tsan {
namespace {

SIGRACE_NO_TSAN void CountDescription(const char* description) {
  for (size_t i = 0; i < kMaxDescriptions; ++i) {
    DescriptionCount& d = g_descriptions[i];
    const char* seen = __atomic_load_n(&d.description, __ATOMIC_ACQUIRE);
    if (seen == nullptr) {
      const char* expected = nullptr;
      if (__atomic_compare_exchange_n(&d.description, &expected, description,
                                      false, __ATOMIC_ACQ_REL,
                                      __ATOMIC_ACQUIRE)) {
        seen = description;
      } else {
        seen = expected;
      }
    }
    if (seen == description) {
      __atomic_fetch_add(&d.count, 1, __ATOMIC_RELAXED);
      return;
    }
  }
  __atomic_fetch_add(&g_descriptions_overflow, 1, __ATOMIC_RELAXED);
}

// Copies up to kMaxFramesPerStack PCs of `trace` (zero-terminated) into
// slot `s` of `r`.
SIGRACE_NO_TSAN void StoreStack(RawRecord& r, uint32_t s, void* const* trace) {
  uint32_t n = 0;
  while (n < kMaxFramesPerStack && trace[n] != nullptr) {
    __atomic_store_n(&r.pcs[s][n], reinterpret_cast<uintptr_t>(trace[n]),
                     __ATOMIC_RELAXED);
    ++n;
  }
  __atomic_store_n(&r.nframes[s], n, __ATOMIC_RELAXED);
}

}  // namespace
}  // namespace sigrace::tsan

// Called by the runtime once per printed report, after suppressions, on
// the reporting thread, with the runtime's report locks held. It records
// raw data only: no allocation, no locks, no symbolization, no
// instrumented access.
extern "C" __attribute__((visibility("default"), used)) SIGRACE_NO_TSAN void
__tsan_on_report(void* report) {
  using namespace sigrace::tsan;
  const char* description = nullptr;
  int count = 0, stack_count = 0, mop_count = 0, loc_count = 0;
  int mutex_count = 0, thread_count = 0, unique_tid_count = 0;
  void* sleep_trace[kMaxFramesPerStack + 1] = {};
  __tsan_get_report_data(report, &description, &count, &stack_count, &mop_count,
                         &loc_count, &mutex_count, &thread_count,
                         &unique_tid_count, sleep_trace, kMaxFramesPerStack);

  const uint64_t seq = __atomic_add_fetch(&g_reports, 1, __ATOMIC_ACQ_REL);
  RawRecord& r = g_ring[seq % kMaxRecordedReports];
  __atomic_store_n(&r.seq, 0, __ATOMIC_RELAXED);
  __atomic_thread_fence(__ATOMIC_RELEASE);
  __atomic_store_n(&r.description, description, __ATOMIC_RELAXED);
  uint32_t nstacks = 0;
  for (int i = 0; i < mop_count && nstacks < kMaxStacksPerReport; ++i) {
    void* trace[kMaxFramesPerStack + 1] = {};
    int tid = 0, size = 0, write = 0, atomic = 0;
    void* addr = nullptr;
    __tsan_get_report_mop(report, static_cast<uintptr_t>(i), &tid, &addr, &size,
                          &write, &atomic, trace, kMaxFramesPerStack);
    StoreStack(r, nstacks++, trace);
  }
  for (int i = 0; i < stack_count && nstacks < kMaxStacksPerReport; ++i) {
    void* trace[kMaxFramesPerStack + 1] = {};
    if (__tsan_get_report_stack(report, static_cast<uintptr_t>(i), trace,
                                kMaxFramesPerStack) == 0) {
      continue;
    }
    StoreStack(r, nstacks++, trace);
  }
  __atomic_store_n(&r.nstacks, nstacks, __ATOMIC_RELAXED);
  __atomic_store_n(&r.seq, seq, __ATOMIC_RELEASE);
  CountDescription(description);
}

namespace sigrace::tsan {
namespace {

constexpr bool kEnabled = true;

// "%f" renders the function name; an inlined PC yields one NUL-terminated
// name per inlined frame, innermost first, ended by an empty string.
std::vector<std::string> SymbolizeRaw(uintptr_t pc) {
  std::vector<std::string> names;
  char buf[4096];
  std::memset(buf, 0, sizeof(buf));
  __sanitizer_symbolize_pc(reinterpret_cast<void*>(pc), "%f", buf, sizeof(buf));
  const char* p = buf;
  const char* end = buf + sizeof(buf);
  while (p < end && *p != '\0') {
    std::string name(p, strnlen(p, static_cast<size_t>(end - p)));
    p += name.size() + 1;
    if (name != "<null>") names.push_back(std::move(name));
  }
  if (names.empty()) {
    // No debug info for that module: fall back to the dynamic symbol.
    Dl_info info;
    if (dladdr(reinterpret_cast<void*>(pc), &info) != 0 &&
        info.dli_sname != nullptr) {
      int status = 0;
      char* demangled =
          abi::__cxa_demangle(info.dli_sname, nullptr, nullptr, &status);
      names.emplace_back(status == 0 && demangled ? demangled : info.dli_sname);
      std::free(demangled);
    } else {
      names.emplace_back("?");
    }
  }
  return names;
}

}  // namespace
}  // namespace sigrace::tsan

#else  // !SIGRACE_TSAN_RUNTIME

namespace sigrace::tsan {
namespace {

constexpr bool kEnabled = false;

std::vector<std::string> SymbolizeRaw(uintptr_t) { return {"?"}; }

}  // namespace
}  // namespace sigrace::tsan

#endif  // SIGRACE_TSAN_RUNTIME

namespace sigrace::tsan {
namespace {

const std::vector<std::string>& Symbolize(uintptr_t pc) {
  std::lock_guard<std::mutex> lock(g_symbol_mu);
  if (g_symbols == nullptr) {
    g_symbols = new std::map<uintptr_t, std::vector<std::string>>();
  }
  auto it = g_symbols->find(pc);
  if (it == g_symbols->end()) {
    it = g_symbols->emplace(pc, SymbolizeRaw(pc)).first;
  }
  return it->second;
}

Report Expand(const RawRecord& raw) {
  Report report;
  report.sequence = raw.seq;
  report.description = raw.description ? raw.description : "?";
  report.type = ClassifyDescription(report.description);
  for (uint32_t s = 0; s < raw.nstacks; ++s) {
    std::vector<std::string> frames;
    uintptr_t last = 0;
    for (uint32_t f = 0; f < raw.nframes[s]; ++f) {
      const uintptr_t pc = raw.pcs[s][f];
      // The runtime lists an inlined call chain as several frames with one
      // PC; symbolizing that PC once yields the whole chain.
      if (pc == last) continue;
      last = pc;
      for (const std::string& name : Symbolize(pc)) frames.push_back(name);
    }
    report.stacks.push_back(std::move(frames));
  }
  return report;
}

}  // namespace

const char* ReportTypeName(ReportType type) {
  switch (type) {
    case ReportType::kDataRace:
      return "data_race";
    case ReportType::kHeapUseAfterFree:
      return "heap_use_after_free";
    case ReportType::kSignalUnsafeCall:
      return "signal_unsafe_call";
    case ReportType::kErrnoInSignalHandler:
      return "errno_in_signal_handler";
    case ReportType::kThreadLeak:
      return "thread_leak";
    case ReportType::kMutexMisuse:
      return "mutex_misuse";
    case ReportType::kLockOrderInversion:
      return "lock_order_inversion";
    case ReportType::kOther:
      return "other";
  }
  return "other";
}

ReportType ClassifyDescription(std::string_view d) {
  if (d == "data-race" || d == "data-race-vptr" || d == "external-race") {
    return ReportType::kDataRace;
  }
  if (d.starts_with("heap-use-after-free")) {
    return ReportType::kHeapUseAfterFree;
  }
  if (d == "signal-unsafe-call") return ReportType::kSignalUnsafeCall;
  if (d == "errno-in-signal-handler") {
    return ReportType::kErrnoInSignalHandler;
  }
  if (d == "thread-leak") return ReportType::kThreadLeak;
  if (d == "locked-mutex-destroy" || d.starts_with("mutex-")) {
    return ReportType::kMutexMisuse;
  }
  if (d.starts_with("lock-order-inversion")) {
    return ReportType::kLockOrderInversion;
  }
  return ReportType::kOther;
}

bool Counts::Touches(ReportType type, std::string_view needle) const {
  for (const Report& r : reports) {
    if (r.type != type) continue;
    for (const auto& stack : r.stacks) {
      for (const std::string& frame : stack) {
        if (frame.find(needle) != std::string::npos) return true;
      }
    }
  }
  return false;
}

bool Enabled() { return kEnabled; }

Counts Snapshot() {
  Counts counts;
  counts.enabled = kEnabled;
  if (!kEnabled) return counts;

  RawTotals totals;
  CopyTotals(&totals);
  Baseline base;
  {
    std::lock_guard<std::mutex> lock(g_baseline_mu);
    base = g_baseline;
  }
  for (const DescriptionCount& d : totals.descriptions) {
    if (d.description == nullptr) continue;
    uint64_t n = d.count;
    auto it = base.by_description.find(d.description);
    if (it != base.by_description.end()) n -= std::min(n, it->second);
    counts.by_type[static_cast<int>(ClassifyDescription(d.description))] += n;
  }
  const uint64_t overflow_base = base.by_description["<overflow>"];
  counts.by_type[static_cast<int>(ReportType::kOther)] +=
      totals.descriptions_overflow -
      std::min(totals.descriptions_overflow, overflow_base);
  for (uint64_t n : counts.by_type) counts.total += n;

  const uint64_t first = base.reports + 1;
  for (uint64_t seq = first; seq <= totals.reports; ++seq) {
    RawRecord raw;
    if (!CopyRecord(seq, &raw)) {
      ++counts.frames_dropped;
      continue;
    }
    counts.reports.push_back(Expand(raw));
  }
  return counts;
}

void Reset() {
  if (!kEnabled) return;
  RawTotals totals;
  CopyTotals(&totals);
  Baseline base;
  base.reports = totals.reports;
  for (const DescriptionCount& d : totals.descriptions) {
    if (d.description != nullptr) base.by_description[d.description] = d.count;
  }
  base.by_description["<overflow>"] = totals.descriptions_overflow;
  std::lock_guard<std::mutex> lock(g_baseline_mu);
  g_baseline = std::move(base);
}

uint64_t TotalSinceReset() { return Snapshot().total; }

bool RaceTouches(std::string_view needle) {
  return Snapshot().Touches(ReportType::kDataRace, needle);
}

std::string ToJson(const Counts& counts, size_t max_reports,
                   size_t max_frames) {
  nlohmann::json j;
  j["enabled"] = counts.enabled;
  j["total"] = counts.total;
  nlohmann::json by_type = nlohmann::json::object();
  for (int t = 0; t < kNumReportTypes; ++t) {
    by_type[ReportTypeName(static_cast<ReportType>(t))] = counts.by_type[t];
  }
  j["by_type"] = by_type;
  j["frames_dropped"] = counts.frames_dropped;
  nlohmann::json reports = nlohmann::json::array();
  const size_t skip = counts.reports.size() > max_reports
                          ? counts.reports.size() - max_reports
                          : 0;
  for (size_t i = skip; i < counts.reports.size(); ++i) {
    const Report& r = counts.reports[i];
    nlohmann::json stacks = nlohmann::json::array();
    for (const auto& stack : r.stacks) {
      const size_t n = std::min(stack.size(), max_frames);
      stacks.push_back(std::vector<std::string>(
          stack.begin(), stack.begin() + static_cast<ptrdiff_t>(n)));
    }
    reports.push_back({{"seq", r.sequence},
                       {"type", ReportTypeName(r.type)},
                       {"description", r.description},
                       {"stacks", stacks}});
  }
  j["reports"] = reports;
  return j.dump();
}

std::string CountsJson() { return ToJson(Snapshot()); }

const char* CompiledOptions() { return kEnabled ? kOptions : ""; }

}  // namespace sigrace::tsan
