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
//  - GuardedKeyCacheModel (protection: `dontdump`). A copy of the key kept
//    for the key's whole life in guarded pages that MADV_DONTDUMP alone
//    keeps out of dumps, with no registry cover: libsodium's sodium_malloc
//    (guard pages, mlock, MADV_DONTDUMP) and key caches built like it do
//    exactly this. The model keeps the PKCS#8 DER the load parsed (a cache
//    to load the key again, into another library context, without the
//    KEK). Kernel core dumps and sigrace's writer leave the page out; with
//    the protection switched off it is dumped like any other page.
//  - KeyEventRecordModel (protection: `key-heap-wipe`). Every load appends
//    a fixed-size key-event record to a log on the ordinary heap, and two
//    common faults of serialising code meet there. The record's key check
//    value is computed over the PKCS#8 DER staged in a fixed-capacity
//    buffer (OPENSSL_malloc inside the load's key scope, so a key-heap
//    block) that is freed with a plain OPENSSL_free; the record is then
//    built in a buffer of the same type, filled in its header only, and
//    appended whole (capacity, not length). The key heap hands the record
//    the block the DER was freed from (same size class, LIFO free list,
//    same thread, no allocation between), so only the wipe on free keeps
//    the DER out of the record's unfilled tail, and so out of the log.
//
// Forms used: the Ed25519 seed (32 bytes) and RSA p as little-endian
// bytes (128 bytes for RSA-2048, the oracle's rsa.p.le64 form) for the
// signing models; the PKCS#8 DER (rsa.pkcs8.der, ed25519.pkcs8.der; the
// seed and every RSA component inside it) for the load models. Cost per
// signature: 0.5-1 us measured on a loaded 2-CPU machine (one read of the
// key through OpenSSL, a copy of at most 128 bytes, the move, two wipes).
// The load models run once per key load, never per signature: 1-6 us for
// the key-event record (SHA-256 over the DER, two key-heap blocks) and
// 31-40 us for the guarded cache (map, advise, mlock, and at retirement
// wipe, munlock, unmap: sodium_malloc's syscalls); every load also runs a
// warm-up signature (0.7 ms CPU for RSA-2048 in signer_bench).
//
// Thread safety: the signing models work on the calling thread's own
// stack, registers and scratch page. KeyEventRecordModel is thread-safe
// (the log takes a mutex); a GuardedKeyCache has one owner. Not
// async-signal-safe.

#ifndef SIGRACE_SIGNER_EXPOSURE_MODELS_H_
#define SIGRACE_SIGNER_EXPOSURE_MODELS_H_

#include <openssl/types.h>

#include <cstddef>
#include <cstdint>
#include <memory>

#include "base/status.h"
#include "signer/signer.h"
#include "signer/vault.h"

namespace sigrace::signer::exposure {

// The slice of a private form the models handle, at most.
inline constexpr size_t kSliceMaxBytes = 128;

// MODEL (stack residue). Call inside the signature's SecretScope and
// KeyAllocScope, before the scrub. Copies a private form of `pkey` into a
// 2 KiB local buffer, stages a copy in the calling thread's scratch page
// (published as "signer.model" for the thread's life) for
// SimdMoveOutsideScopeModel, and returns without wiping its frame.
// `der` (may be null): the PKCS#8 DER of the same key at the start of
// der_len bytes, when the caller holds a copy (GuardedKeyCacheModel's
// pages). An Ed25519 seed is then
// copied from it instead of being exported through OpenSSL's provider
// (EVP_PKEY_get_raw_private_key: about 3,100 instructions a call); the
// same 32 bytes land in the same places either way.
Status SigningStackResidueModel(Alg alg, EVP_PKEY* pkey,
                                const uint8_t* der = nullptr,
                                size_t der_len = 0);

// MODEL (SIMD registers outside a scope). Call outside any SecretScope.
// Moves the staged slice from one half of the scratch page to the other
// through xmm8-xmm15 (a short slice in the last of them), then wipes both
// halves; the registers keep the bytes. A no-op when nothing is staged.
void SimdMoveOutsideScopeModel();

// MODEL (guarded key cache). Call inside the load's KeyAllocScope and
// SecretScope with the PKCS#8 DER the load parsed. Returns guarded pages
// (mlock'd, MADV_DONTDUMP, not published) holding a copy of it; the caller
// keeps them for the key's life and drops them at retirement (wiped and
// unmapped).
StatusOr<std::unique_ptr<ProtectedPages>> GuardedKeyCacheModel(
    const uint8_t* der, size_t len);

// The key-event records' fixed size, and the bytes of each that the
// serialiser fills (the header: magic, version, alg, key check value).
inline constexpr size_t kKeyEventRecordBytes = 1536;
inline constexpr size_t kKeyEventFilledBytes = 24;

// MODEL (key-event record). Call inside the load's KeyAllocScope with the
// PKCS#8 DER the load parsed. Stages the DER in a key-heap block, hashes
// it, frees the block without wiping it, builds the record in a block of
// the same class and appends all kKeyEventRecordBytes of it to the
// process's key-event log (the last kKeyEventLogRecords loads).
Status KeyEventRecordModel(Alg alg, const uint8_t* der, size_t len);
inline constexpr size_t kKeyEventLogRecords = 16;

// TEST-ONLY: the key-event log's storage (fixed for the process's life)
// and the records in it; the tail of every record past the filled header
// is all zero; wipe and empty the log.
struct KeyEventLogView {
  uintptr_t addr;
  size_t bytes;
  size_t records;
};
KeyEventLogView TEST_KeyEventLog();
bool TEST_KeyEventTailsZero();
void TEST_ClearKeyEventLog();

}  // namespace sigrace::signer::exposure

#endif  // SIGRACE_SIGNER_EXPOSURE_MODELS_H_
