#include "stress/cover_watch.h"

#include <atomic>
#include <cstdint>
#include <cstdio>
#include <string>

#include "base/mutex.h"
#include "crashdump/registry/registry.h"

namespace sigrace::stress {
namespace {

struct Watch {
  Mutex mu;
  uint64_t count GUARDED_BY(mu) = 0;
  bool have_first GUARDED_BY(mu) = false;
  crashdump::CoverViolation first GUARDED_BY(mu) = {};
};

Watch& TheWatch() {
  static Watch* w = new Watch();  // never destroyed: threads may outlive main
  return *w;
}

std::atomic<bool> g_running{false};

void OnViolation(const crashdump::CoverViolation& v, void* /*arg*/) {
  Watch& w = TheWatch();
  MutexLock lock(&w.mu);
  if (w.count++ == 0 || !w.have_first) {
    w.first = v;  // every field is a static string or a number
    w.have_first = true;
  }
}

}  // namespace

void StartCoverWatch() {
  crashdump::SetCoverViolationHook(&OnViolation, nullptr);
  crashdump::SetCoverCheck(crashdump::CoverCheckMode::kCount);
  g_running.store(true);
}

nlohmann::json TakeCoverReport() {
  if (!g_running.load()) return nullptr;
  Watch& w = TheWatch();
  MutexLock lock(&w.mu);
  nlohmann::json j;
  j["count"] = w.count;
  if (w.count > 0 && w.have_first) {
    j["first"] = {{"check", w.first.check ? w.first.check : "?"},
                  {"reason", w.first.reason ? w.first.reason : "?"},
                  {"label", w.first.label ? w.first.label : "?"},
                  {"addr", static_cast<uint64_t>(w.first.addr)},
                  {"len", static_cast<uint64_t>(w.first.len)},
                  {"offset", static_cast<uint64_t>(w.first.offset)}};
  }
  w.count = 0;
  w.have_first = false;
  return j;
}

}  // namespace sigrace::stress
