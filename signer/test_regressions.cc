#include "signer/test_regressions.h"

#include <openssl/crypto.h>

#include <cstdlib>
#include <cstring>

namespace sigrace::signer {

const uint8_t* TEST_MaybeHeapCopy(const uint8_t* der, size_t n) {
  if (!TEST_RegressionOn(TestRegression::kParseViaHeapCopy)) return der;
  // TEST REGRESSION (parse-via-heap-copy): key bytes on the ordinary heap.
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
