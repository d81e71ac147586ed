#include "signer/exposure_models.h"

#include <openssl/bn.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rsa.h>

#include <cstdint>
#include <cstring>
#include <memory>

#include "crashdump/registry/registry.h"
#include "signer/vault.h"

namespace sigrace::signer::exposure {
namespace {

constexpr size_t kScratchBytes = 4096;
constexpr size_t kHalf = kScratchBytes / 2;
// What the stack model leaves below the signing frame: large enough to
// stand for a provider's frame, small enough to stay inside the scrub of
// either algorithm (signer.cc) with the calls made from it.
constexpr size_t kResidueFrameBytes = 2048;
static_assert(kSliceMaxBytes <= kResidueFrameBytes);
static_assert(kSliceMaxBytes <= kHalf);

// The calling thread's scratch page: a staged slice in the first half, the
// destination of the move in the second. Published for the thread's life,
// wiped after every move; released (wiped, unpublished, unmapped) when the
// thread exits.
thread_local std::unique_ptr<ProtectedPages> t_scratch;
thread_local size_t t_staged = 0;

Status Scratch(uint8_t** out) {
  if (t_scratch == nullptr) {
    auto p = ProtectedPages::Map(kScratchBytes, "signer.model");
    if (!p.ok()) return p.status();
    t_scratch = std::move(*p);
  }
  *out = t_scratch->data();
  return Status::Ok();
}

// Copies a private form of `pkey` into out[0..cap) and returns its length
// (at most kSliceMaxBytes): the Ed25519 seed, or the low bytes of RSA p,
// little-endian.
StatusOr<size_t> PrivateSlice(Alg alg, EVP_PKEY* pkey, uint8_t* out,
                              size_t cap) {
  if (alg == Alg::kEdDsa) {
    size_t len = cap;
    if (EVP_PKEY_get_raw_private_key(pkey, out, &len) != 1) {
      return InternalError("model: no Ed25519 private key");
    }
    return len < kSliceMaxBytes ? len : kSliceMaxBytes;
  }
  // The legacy accessor, not EVP_PKEY_get_bn_param: OpenSSL 3.0 checks
  // the CRT factors on every parameter read (about 40 us for RSA-2048),
  // while get0_RSA exports the key once into a cached legacy RSA, made
  // inside the caller's KeyAllocScope (the key heap) and freed with the
  // key.
#pragma clang diagnostic push
#pragma clang diagnostic ignored "-Wdeprecated-declarations"
  const RSA* rsa = EVP_PKEY_get0_RSA(pkey);
  const BIGNUM* p = nullptr;
  if (rsa != nullptr) RSA_get0_factors(rsa, &p, nullptr);
#pragma clang diagnostic pop
  if (p == nullptr) return InternalError("model: no RSA p");
  const int n = BN_num_bytes(p);
  if (n <= 0 || static_cast<size_t>(n) > cap ||
      BN_bn2lebinpad(p, out, n) != n) {
    return InternalError("model: RSA p does not fit");
  }
  const size_t len = static_cast<size_t>(n);
  return len < kSliceMaxBytes ? len : kSliceMaxBytes;
}

// Moves 128 bytes from src to dst through xmm8-xmm15 and leaves them there.
__attribute__((noinline)) void MoveThroughUpperXmm(const uint8_t* src,
                                                   uint8_t* dst) {
  static_assert(kSliceMaxBytes == size_t{8} * 16);
#if defined(__x86_64__)
  asm volatile(
      "movdqu 0(%0), %%xmm8\n\t"
      "movdqu 16(%0), %%xmm9\n\t"
      "movdqu 32(%0), %%xmm10\n\t"
      "movdqu 48(%0), %%xmm11\n\t"
      "movdqu 64(%0), %%xmm12\n\t"
      "movdqu 80(%0), %%xmm13\n\t"
      "movdqu 96(%0), %%xmm14\n\t"
      "movdqu 112(%0), %%xmm15\n\t"
      "movdqu %%xmm8, 0(%1)\n\t"
      "movdqu %%xmm9, 16(%1)\n\t"
      "movdqu %%xmm10, 32(%1)\n\t"
      "movdqu %%xmm11, 48(%1)\n\t"
      "movdqu %%xmm12, 64(%1)\n\t"
      "movdqu %%xmm13, 80(%1)\n\t"
      "movdqu %%xmm14, 96(%1)\n\t"
      "movdqu %%xmm15, 112(%1)\n\t"
      :
      : "r"(src), "r"(dst)
      : "memory", "xmm8", "xmm9", "xmm10", "xmm11", "xmm12", "xmm13", "xmm14",
        "xmm15");
#else
  memcpy(dst, src, kSliceMaxBytes);
#endif
}

}  // namespace

__attribute__((noinline)) Status SigningStackResidueModel(Alg alg,
                                                          EVP_PKEY* pkey) {
  uint8_t frame[kResidueFrameBytes];
  auto len = PrivateSlice(alg, pkey, frame, sizeof(frame));
  if (!len.ok()) return len.status();
  // Returns without wiping `frame`; the empty asm keeps the compiler from
  // dropping the stores as dead.
  asm volatile("" : : "r"(frame) : "memory");
  uint8_t* scratch = nullptr;
  SIGRACE_RETURN_IF_ERROR(Scratch(&scratch));
  // Right-aligned in the 128 bytes the move takes, so a short slice (the
  // Ed25519 seed) ends up in xmm14-xmm15, the registers least used.
  uint8_t* const stage = scratch + (kSliceMaxBytes - *len);
  crashdump::CheckCovered(stage, *len, "model.stage");
  memcpy(stage, frame, *len);
  t_staged = *len;
  return Status::Ok();
}

void SimdMoveOutsideScopeModel() {
  if (t_staged == 0 || t_scratch == nullptr) return;
  uint8_t* const scratch = t_scratch->data();
  MoveThroughUpperXmm(scratch, scratch + kHalf);
  OPENSSL_cleanse(scratch, kSliceMaxBytes);
  OPENSSL_cleanse(scratch + kHalf, kSliceMaxBytes);
  t_staged = 0;
}

}  // namespace sigrace::signer::exposure
