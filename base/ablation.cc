#include "base/ablation.h"

#include <unistd.h>

#include <array>
#include <cstdio>
#include <cstdlib>
#include <cstring>

namespace sigrace {
namespace {

constexpr std::array<const char*, static_cast<size_t>(Protection::kCount)>
    kNames = {"registry-cover",     "secret-stack", "scope-registers",
              "simd-outside-scope", "scrub",        "dontdump",
              "key-heap-wipe",      "freeze",       "snapshot-after-freeze"};

// Labels switched off one by one (cover:LABEL). Written before threads
// start, read by the registry and the crash handler.
constexpr size_t kMaxLabels = 8;
constexpr size_t kLabelCap = 64;
char g_labels[kMaxLabels][kLabelCap];
std::atomic<uint32_t> g_label_count{0};

// Reads SIGRACE_ABLATE before main(); an unknown name ends the process.
struct EnvReader {
  EnvReader() {
    // Before main(): no other thread can change the environment yet.
    const char* env =
        std::getenv("SIGRACE_ABLATE");  // NOLINT(concurrency-mt-unsafe)
    if (env == nullptr || *env == '\0') return;
    const Status s = SetAblation(env);
    if (!s.ok()) {
      std::fprintf(stderr, "sigrace: SIGRACE_ABLATE: %s\n",
                   s.message().c_str());
      _exit(2);
    }
  }
};
const EnvReader g_env_reader;

}  // namespace

const char* ProtectionName(Protection p) {
  const auto i = static_cast<size_t>(p);
  return i < kNames.size() ? kNames[i] : "?";
}

namespace ablation_internal {
bool CoverLabelAblated(const char* label) {
  if (label == nullptr) return false;
  const uint32_t n = g_label_count.load(std::memory_order_acquire);
  for (uint32_t i = 0; i < n && i < kMaxLabels; ++i) {
    if (std::strncmp(g_labels[i], label, kLabelCap) == 0) return true;
  }
  return false;
}
}  // namespace ablation_internal

Status SetAblation(std::string_view spec) {
  uint32_t mask = 0;
  uint32_t labels = 0;
  char parsed[kMaxLabels][kLabelCap] = {};
  while (!spec.empty()) {
    const size_t comma = spec.find(',');
    const std::string_view name = spec.substr(0, comma);
    spec = comma == std::string_view::npos ? std::string_view()
                                           : spec.substr(comma + 1);
    if (name.empty()) continue;
    if (name.substr(0, 6) == "cover:") {
      const std::string_view label = name.substr(6);
      if (label.empty() || label.size() >= kLabelCap) {
        return InvalidArgumentError("bad cover label in '" + std::string(name) +
                                    "'");
      }
      if (labels == kMaxLabels) {
        return InvalidArgumentError("more than 8 cover: labels");
      }
      std::memcpy(parsed[labels++], label.data(), label.size());
      continue;
    }
    bool found = false;
    for (size_t i = 0; i < kNames.size(); ++i) {
      if (name == kNames[i]) {
        mask |= 1u << i;
        found = true;
      }
    }
    if (!found) {
      std::string known;
      for (const char* k : kNames)
        known += std::string(known.empty() ? "" : ", ") + k;
      return InvalidArgumentError("unknown protection '" + std::string(name) +
                                  "' (known: " + known + ", cover:LABEL)");
    }
  }
  if (!kAblationBuild && (mask != 0 || labels != 0)) {
    return FailedPreconditionError(
        "this build has no ablation switches (configure with "
        "SIGRACE_ABLATION=ON)");
  }
  std::memcpy(g_labels, parsed, sizeof(g_labels));
  g_label_count.store(labels, std::memory_order_release);
  ablation_internal::g_mask.store(mask, std::memory_order_relaxed);
  return Status::Ok();
}

std::string AblationSpec() {
  std::string s;
  const uint32_t mask = ablation_internal::g_mask.load();
  for (size_t i = 0; i < kNames.size(); ++i) {
    if ((mask >> i) & 1u) s += std::string(s.empty() ? "" : ",") + kNames[i];
  }
  const uint32_t n = g_label_count.load();
  for (uint32_t i = 0; i < n && i < kMaxLabels; ++i) {
    s += std::string(s.empty() ? "" : ",") + "cover:" + g_labels[i];
  }
  return s;
}

}  // namespace sigrace
