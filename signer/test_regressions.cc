#include "signer/test_regressions.h"

#include <openssl/crypto.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string_view>

namespace sigrace::signer {
namespace {

int ReadRegression() {
#if defined(SIGRACE_ABLATION)
  const char* v = std::getenv("SIGRACE_TEST_REGRESSION");
  if (v == nullptr || *v == '\0') return -1;
  if (std::string_view(v) == "parse-via-heap-copy") {
    return static_cast<int>(TestRegression::kParseViaHeapCopy);
  }
  std::fprintf(stderr, "sigrace: unknown SIGRACE_TEST_REGRESSION '%s'\n", v);
#endif
  return -1;
}

}  // namespace

bool TEST_RegressionOn(TestRegression r) {
  static const int on = ReadRegression();
  return on == static_cast<int>(r);
}

const uint8_t* TEST_MaybeHeapCopy(const uint8_t* der, size_t n) {
  if (!TEST_RegressionOn(TestRegression::kParseViaHeapCopy)) return der;
  // TEST-ONLY SEEDED REGRESSION: key bytes on the ordinary heap.
  auto* copy = static_cast<uint8_t*>(std::malloc(n));
  if (copy == nullptr) return der;
  std::memcpy(copy, der, n);
  return copy;
}

void TEST_ReleaseHeapCopy(const uint8_t* copy, const uint8_t* der, size_t n) {
  if (copy == der) return;
  auto* p = const_cast<uint8_t*>(copy);
  OPENSSL_cleanse(p, n);
  std::free(p);
}

}  // namespace sigrace::signer
