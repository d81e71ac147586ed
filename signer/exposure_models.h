// Workload models: code that runs in every signer, `fixed` included, and
// creates on purpose an exposure that one protection of the fixed path
// exists for, so that switching that protection off (base/ablation.h)
// makes the fixed signer leak in a stress run. They are models of what
// real signing code does, not fixes and not race variants: with every
// protection on, none of them leaks.
//
//  - SigningStackResidueModel (protection: `scrub`). Signing code of other
//    OpenSSL versions and providers leaves key-derived values on the stack
//    below its frame when it returns (ref10-style Ed25519 keeps the seed
//    and az[64] in locals; OpenSSL 3.0's EVP_PKEY_get_bn_param fetches a
//    BIGNUM through a 2 KiB stack buffer it never wipes). The model copies
//    a private form into a large local buffer inside the signature's
//    SecretScope and returns without wiping it. The signer's scrub, before
//    the scope ends, is what removes it.
//  - SimdMoveOutsideScopeModel (protection: `simd-outside-scope`). Key
//    material is moved between two covered buffers by a thread outside any
//    SecretScope (a vault re-wrap, an export to another protected page):
//    the memory stays covered, but the copy passes through vector
//    registers, which keep the bytes after it ends (glibc's memcpy leaves
//    them in xmm/ymm0-7, and in zmm16-31 on AVX-512 machines). The model
//    moves the slice the stack model staged through xmm8-xmm15, which
//    glibc's string functions rarely touch, so the bytes stay there until
//    the next signature's code overwrites them. Only the crash handler's
//    redaction of SIMD registers of threads outside a scope covers them.
//
// Forms used: the Ed25519 seed (32 bytes) and RSA p as little-endian
// bytes (128 bytes for RSA-2048, the oracle's rsa.p.le64 form). Cost per
// signature: 0.5-1 us measured on a loaded 2-CPU machine (one read of the
// key through OpenSSL, a copy of at most 128 bytes, the move, two wipes).
//
// Thread safety: each function works on the calling thread's own stack,
// registers and scratch page. Not async-signal-safe.

#ifndef SIGRACE_SIGNER_EXPOSURE_MODELS_H_
#define SIGRACE_SIGNER_EXPOSURE_MODELS_H_

#include <openssl/types.h>

#include <cstddef>

#include "base/status.h"
#include "signer/signer.h"

namespace sigrace::signer::exposure {

// The slice of a private form the models handle, at most.
inline constexpr size_t kSliceMaxBytes = 128;

// MODEL (stack residue). Call inside the signature's SecretScope and
// KeyAllocScope, before the scrub. Copies a private form of `pkey` into a
// 2 KiB local buffer, stages a copy in the calling thread's scratch page
// (published as "signer.model" for the thread's life) for
// SimdMoveOutsideScopeModel, and returns without wiping its frame.
Status SigningStackResidueModel(Alg alg, EVP_PKEY* pkey);

// MODEL (SIMD registers outside a scope). Call outside any SecretScope.
// Moves the staged slice from one half of the scratch page to the other
// through xmm8-xmm15 (a short slice in the last of them), then wipes both
// halves; the registers keep the bytes. A no-op when nothing is staged.
void SimdMoveOutsideScopeModel();

}  // namespace sigrace::signer::exposure

#endif  // SIGRACE_SIGNER_EXPOSURE_MODELS_H_
