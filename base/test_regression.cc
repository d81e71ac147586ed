#include "base/test_regression.h"

#include <unistd.h>

#include <array>
#include <cstdio>
#include <cstdlib>

namespace sigrace {

namespace test_regression_internal {
std::atomic<uint32_t> g_mask{0};
}  // namespace test_regression_internal

namespace {

constexpr std::array<const char*, static_cast<size_t>(TestRegression::kCount)>
    kNames = {"parse-via-heap-copy",
              "record-skip-overwrite",
              "register-record-skip-overwrite",
              "cover-narrowed-before-wipe",
              "slot-published-after-filled",
              "preserve-every-word"};

// Reads SIGRACE_TEST_REGRESSION before main(); an unknown name ends the
// process (a typo must not pass as "the harness caught nothing").
struct EnvReader {
  EnvReader() {
    // Before main(): no other thread can change the environment yet.
    // NOLINTNEXTLINE(concurrency-mt-unsafe)
    const char* env = std::getenv("SIGRACE_TEST_REGRESSION");
    if (env == nullptr || *env == '\0') return;
    const Status s = SetTestRegressions(env);
    if (!s.ok()) {
      std::fprintf(stderr, "sigrace: SIGRACE_TEST_REGRESSION: %s\n",
                   s.message().c_str());
      _exit(2);
    }
  }
};
const EnvReader g_env_reader;

}  // namespace

const char* TestRegressionName(TestRegression r) {
  const auto i = static_cast<size_t>(r);
  return i < kNames.size() ? kNames[i] : "?";
}

Status SetTestRegressions(std::string_view spec) {
  uint32_t mask = 0;
  while (!spec.empty()) {
    const size_t comma = spec.find(',');
    const std::string_view name = spec.substr(0, comma);
    spec = comma == std::string_view::npos ? std::string_view()
                                           : spec.substr(comma + 1);
    if (name.empty()) continue;
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
      return InvalidArgumentError("unknown test regression '" +
                                  std::string(name) + "' (known: " + known +
                                  ")");
    }
  }
  if (!kAblationBuild && mask != 0) {
    return FailedPreconditionError(
        "this build has no test regressions (configure with "
        "SIGRACE_ABLATION=ON)");
  }
  test_regression_internal::g_mask.store(mask, std::memory_order_relaxed);
  return Status::Ok();
}

std::string TestRegressionSpec() {
  std::string s;
  const uint32_t mask = test_regression_internal::g_mask.load();
  for (size_t i = 0; i < kNames.size(); ++i) {
    if ((mask >> i) & 1u) s += std::string(s.empty() ? "" : ",") + kNames[i];
  }
  return s;
}

}  // namespace sigrace
