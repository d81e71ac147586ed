#include "signer/exposure_models.h"

#include <openssl/bn.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rsa.h>

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <vector>

#include "base/mutex.h"
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
// An Ed25519 PrivateKeyInfo (RFC 8410, as OpenSSL writes it): this
// prefix, then the 32-byte seed. Its outer length (0x2e) fixes the whole
// DER at 48 bytes, so a buffer that holds more (a page) may follow it.
constexpr uint8_t kEd25519Pkcs8Prefix[] = {0x30, 0x2e, 0x02, 0x01, 0x00, 0x30,
                                           0x05, 0x06, 0x03, 0x2b, 0x65, 0x70,
                                           0x04, 0x22, 0x04, 0x20};
constexpr size_t kEd25519SeedBytes = 32;

StatusOr<size_t> PrivateSlice(Alg alg, EVP_PKEY* pkey, const uint8_t* der,
                              size_t der_len, uint8_t* out, size_t cap) {
  if (alg == Alg::kEdDsa && der != nullptr &&
      der_len >= sizeof(kEd25519Pkcs8Prefix) + kEd25519SeedBytes &&
      cap >= kEd25519SeedBytes &&
      memcmp(der, kEd25519Pkcs8Prefix, sizeof(kEd25519Pkcs8Prefix)) == 0) {
    memcpy(out, der + sizeof(kEd25519Pkcs8Prefix), kEd25519SeedBytes);
    return kEd25519SeedBytes;
  }
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

// The fixed-capacity buffer the load's serialising code uses for every
// message it builds (a staged key, a key-event record): OPENSSL_malloc'd,
// not zeroed; `len` says how much of `data` is meant.
struct Blob {
  uint32_t len;
  uint32_t kind;
  uint8_t data[kKeyEventRecordBytes - 8];
};
static_assert(sizeof(Blob) == kKeyEventRecordBytes);
constexpr uint32_t kBlobStagedKey = 1;
constexpr uint32_t kBlobKeyEvent = 2;
constexpr uint8_t kKeyEventMagic[4] = {'S', 'R', 'K', 'E'};
constexpr size_t kKcvBytes = 8;
// The record: magic, version, alg, two reserved bytes, the key check value.
constexpr size_t kKeyEventHeaderBytes = 4 + 1 + 1 + 2 + kKcvBytes;
static_assert(offsetof(Blob, data) + kKeyEventHeaderBytes ==
              kKeyEventFilledBytes);

// The key-event log: kKeyEventLogRecords records on the ordinary heap,
// outside every cover, oldest overwritten first. Its storage is allocated
// once and never moves.
struct KeyEventLog {
  Mutex mu;
  std::vector<uint8_t> ring GUARDED_BY(mu);
  size_t next GUARDED_BY(mu) = 0;
  size_t records GUARDED_BY(mu) = 0;
};

KeyEventLog& Log() {
  static KeyEventLog* log = [] {
    auto* l = new KeyEventLog;
    MutexLock lock(&l->mu);
    l->ring.assign(kKeyEventLogRecords * kKeyEventRecordBytes, 0);
    return l;
  }();
  return *log;
}

}  // namespace

__attribute__((noinline)) Status SigningStackResidueModel(Alg alg,
                                                          EVP_PKEY* pkey,
                                                          const uint8_t* der,
                                                          size_t der_len) {
  uint8_t frame[kResidueFrameBytes];
  auto len = PrivateSlice(alg, pkey, der, der_len, frame, sizeof(frame));
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

StatusOr<std::unique_ptr<ProtectedPages>> GuardedKeyCacheModel(
    const uint8_t* der, size_t len) {
  if (der == nullptr || len == 0) {
    return InvalidArgumentError("key cache: no key");
  }
  // Guard pages, mlock, MADV_DONTDUMP, and no registry cover: dumps leave
  // the page out because of the advice alone.
  auto pages = ProtectedPages::Map(len, "signer.key_cache", /*publish=*/false,
                                   /*dontdump=*/true);
  if (!pages.ok()) return pages.status();
  memcpy((*pages)->data(), der, len);
  return pages;
}

Status KeyEventRecordModel(Alg alg, const uint8_t* der, size_t len) {
  if (der == nullptr || len == 0 || len > sizeof(Blob::data)) {
    return InvalidArgumentError("key event: key does not fit its buffer");
  }
  // The key check value: the DER staged in a message buffer and hashed.
  auto* staged = static_cast<Blob*>(OPENSSL_malloc(sizeof(Blob)));
  if (staged == nullptr) return InternalError("key event: out of memory");
  staged->len = static_cast<uint32_t>(len);
  staged->kind = kBlobStagedKey;
  crashdump::CheckCovered(staged->data, len, "model.key_event.staged");
  memcpy(staged->data, der, len);
  uint8_t digest[EVP_MAX_MD_SIZE];
  unsigned int digest_len = 0;
  const bool hashed = EVP_Digest(staged->data, staged->len, digest, &digest_len,
                                 EVP_sha256(), nullptr) == 1 &&
                      digest_len >= kKcvBytes;
  // A plain free, trusting the allocator: the DER stays in the block unless
  // the heap wipes it.
  OPENSSL_free(staged);
  if (!hashed) return InternalError("key event: SHA-256 failed");

  // The record: a message buffer of the same type, so the same size class
  // (and, on this thread's LIFO free list, the block just freed). Only the
  // header is filled.
  auto* rec = static_cast<Blob*>(OPENSSL_malloc(sizeof(Blob)));
  if (rec == nullptr) return InternalError("key event: out of memory");
  rec->len = kKeyEventHeaderBytes;
  rec->kind = kBlobKeyEvent;
  memcpy(rec->data, kKeyEventMagic, sizeof(kKeyEventMagic));
  rec->data[4] = 1;  // version
  rec->data[5] = alg == Alg::kRs256 ? 1 : 2;
  rec->data[6] = 0;
  rec->data[7] = 0;
  memcpy(rec->data + 8, digest, kKcvBytes);
  OPENSSL_cleanse(digest, sizeof(digest));
  {
    // The length bug: the whole buffer goes to the log, not rec->len bytes.
    KeyEventLog& log = Log();
    MutexLock l(&log.mu);
    memcpy(log.ring.data() + log.next * kKeyEventRecordBytes, rec,
           sizeof(Blob));
    log.next = (log.next + 1) % kKeyEventLogRecords;
    if (log.records < kKeyEventLogRecords) ++log.records;
  }
  OPENSSL_free(rec);
  return Status::Ok();
}

KeyEventLogView TEST_KeyEventLog() {
  KeyEventLog& log = Log();
  MutexLock l(&log.mu);
  return KeyEventLogView{reinterpret_cast<uintptr_t>(log.ring.data()),
                         log.ring.size(), log.records};
}

bool TEST_KeyEventTailsZero() {
  KeyEventLog& log = Log();
  MutexLock l(&log.mu);
  for (size_t r = 0; r < log.records; ++r) {
    const uint8_t* rec = log.ring.data() + r * kKeyEventRecordBytes;
    for (size_t i = kKeyEventFilledBytes; i < kKeyEventRecordBytes; ++i) {
      if (rec[i] != 0) return false;
    }
  }
  return true;
}

void TEST_ClearKeyEventLog() {
  KeyEventLog& log = Log();
  MutexLock l(&log.mu);
  OPENSSL_cleanse(log.ring.data(), log.ring.size());
  log.next = 0;
  log.records = 0;
}

}  // namespace sigrace::signer::exposure
