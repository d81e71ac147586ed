// RAND_METHOD, RAND_set_rand_method and the SHA512_* one-block API are
// deprecated in OpenSSL 3.0 but present; the redirect needs the first two,
// and the stream uses the third so its whole state sits in one key-heap
// block (EVP digests allocate contexts of their own).
#define OPENSSL_SUPPRESS_DEPRECATED 1

#include "signer/deterministic_keygen.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <openssl/sha.h>
#include <openssl/x509.h>

#include <algorithm>
#include <cstring>
#include <mutex>
#include <optional>

#include "crashdump/registry/registry.h"
#include "signer/key_heap.h"
#include "signer/vault.h"

namespace sigrace::signer {
namespace {

constexpr char kDomain[] = "sigrace.keygen-stream.v1";
constexpr size_t kWorkingBytes = 4096;

// One key's stream: block i = SHA-512(key || LE64(i)). Lives in the key
// heap; every byte is key material.
struct Stream {
  uint8_t key[SHA512_DIGEST_LENGTH];
  uint64_t counter;
  uint8_t block[SHA512_DIGEST_LENGTH];
  size_t pos;  // next unread byte of block; == sizeof(block): empty
  SHA512_CTX sha;
};

void PutLe64(uint8_t* out, uint64_t v) {
  for (int i = 0; i < 8; ++i) out[i] = static_cast<uint8_t>(v >> (8 * i));
}

// Unused (and not emitted) in builds without deterministic keygen.
[[maybe_unused]] void StreamInit(Stream* s, const KeyStreamId& id) {
  uint8_t in[sizeof(kDomain) + 8 + 1 + 8];
  memcpy(in, kDomain, sizeof(kDomain));
  PutLe64(in + sizeof(kDomain), id.key_seed);
  in[sizeof(kDomain) + 8] = id.alg == Alg::kRs256 ? 'R' : 'E';
  PutLe64(in + sizeof(kDomain) + 9, id.generation);
  SHA512_Init(&s->sha);
  SHA512_Update(&s->sha, in, sizeof(in));
  SHA512_Final(s->key, &s->sha);
  s->counter = 0;
  s->pos = sizeof(s->block);
}

void StreamRead(Stream* s, uint8_t* out, size_t n) {
  while (n > 0) {
    if (s->pos == sizeof(s->block)) {
      uint8_t ctr[8];
      PutLe64(ctr, s->counter++);
      SHA512_Init(&s->sha);
      SHA512_Update(&s->sha, s->key, sizeof(s->key));
      SHA512_Update(&s->sha, ctr, sizeof(ctr));
      SHA512_Final(s->block, &s->sha);
      s->pos = 0;
    }
    const size_t take = std::min(n, sizeof(s->block) - s->pos);
    memcpy(out, s->block + s->pos, take);
    OPENSSL_cleanse(s->block + s->pos, take);
    s->pos += take;
    out += take;
    n -= take;
  }
}

// The calling thread's open stream, or null. A pointer, not key material.
thread_local Stream* t_stream = nullptr;

int MethodBytes(unsigned char* buf, int num) {
  if (num < 0) return 0;
  if (Stream* s = t_stream) {
    StreamRead(s, buf, static_cast<size_t>(num));
    return 1;
  }
  // Everyone else: OpenSSL's own private DRBG, as RAND_priv_bytes would
  // have served them (a DRBG never calls back into the RAND method).
  EVP_RAND_CTX* drbg = RAND_get0_private(nullptr);
  if (drbg == nullptr) return 0;
  return EVP_RAND_generate(drbg, buf, static_cast<size_t>(num), 0, 0, nullptr,
                           0);
}

int MethodSeed(const void* /*buf*/, int /*num*/) { return 1; }
int MethodAdd(const void* /*buf*/, int /*num*/, double /*entropy*/) {
  return 1;
}
int MethodStatus() { return 1; }

const RAND_METHOD kMethod = {
    MethodSeed, MethodBytes, nullptr, MethodAdd, MethodBytes, MethodStatus,
};

[[maybe_unused]] Status InstallMethod() {
  static std::once_flag once;
  static bool ok = false;
  std::call_once(once, [] { ok = RAND_set_rand_method(&kMethod) == 1; });
  return ok ? Status::Ok() : InternalError("RAND_set_rand_method failed");
}

}  // namespace

void PkeyFree::operator()(EVP_PKEY* p) const { EVP_PKEY_free(p); }

DeterministicRandScope::DeterministicRandScope(const KeyStreamId& id) {
  if constexpr (!kDeterministicKeygenBuild) {
    status_ = FailedPreconditionError(
        "deterministic keygen is a test-build feature (SIGRACE_ABLATION)");
    return;
  } else {
    if (!InKeyAllocScope()) {
      status_ = FailedPreconditionError(
          "a key stream needs the caller's KeyAllocScope");
      return;
    }
    if (t_stream != nullptr) {
      status_ = FailedPreconditionError("key streams do not nest");
      return;
    }
    status_ = InstallMethod();
    if (!status_.ok()) return;
    auto* s = static_cast<Stream*>(OPENSSL_zalloc(sizeof(Stream)));
    if (s == nullptr) {
      status_ = ResourceExhaustedError("key stream allocation failed");
      return;
    }
    StreamInit(s, id);
    t_stream = s;
    open_ = true;
  }
}

DeterministicRandScope::~DeterministicRandScope() {
  if (!open_) return;
  Stream* s = t_stream;
  t_stream = nullptr;
  OPENSSL_clear_free(s, sizeof(Stream));
}

StatusOr<UniquePkey> GenerateKey(Alg alg, const KeyStreamId* id) {
  std::optional<DeterministicRandScope> stream;
  if (id != nullptr && kDeterministicKeygenBuild) {
    stream.emplace(*id);
    if (!stream->status().ok()) return stream->status();
  }
  UniquePkey pkey(alg == Alg::kRs256
                      ? EVP_PKEY_Q_keygen(nullptr, nullptr, "RSA", size_t{2048})
                      : EVP_PKEY_Q_keygen(nullptr, nullptr, "ED25519"));
  if (!pkey) return InternalError("key generation failed");
  return pkey;
}

StatusOr<size_t> EncodePkcs8(const EVP_PKEY* pkey, uint8_t* out, size_t cap) {
  struct P8Free {
    void operator()(PKCS8_PRIV_KEY_INFO* p) const {
      PKCS8_PRIV_KEY_INFO_free(p);
    }
  };
  std::unique_ptr<PKCS8_PRIV_KEY_INFO, P8Free> p8(EVP_PKEY2PKCS8(pkey));
  const int len = p8 ? i2d_PKCS8_PRIV_KEY_INFO(p8.get(), nullptr) : -1;
  if (len <= 0 || static_cast<size_t>(len) > cap) {
    return InternalError("PKCS#8 encoding failed");
  }
  crashdump::CheckCovered(out, static_cast<size_t>(len), "keygen.pkcs8");
  uint8_t* p = out;
  if (i2d_PKCS8_PRIV_KEY_INFO(p8.get(), &p) != len) {
    return InternalError("PKCS#8 encoding failed");
  }
  return static_cast<size_t>(len);
}

Status TEST_DeriveKey(
    const KeyStreamId& id,
    const std::function<Status(const uint8_t* der, size_t len)>& visit) {
  if constexpr (!kDeterministicKeygenBuild) {
    return FailedPreconditionError(
        "deterministic keygen is a test-build feature (SIGRACE_ABLATION)");
  }
  if (!visit) return InvalidArgumentError("TEST_DeriveKey: no visitor");
  KeyAllocScope alloc;
  crashdump::SecretScope secret;
  auto page = ProtectedPages::Map(kWorkingBytes, "signer.oracle");
  if (!page.ok()) return page.status();
  StatusOr<UniquePkey> pkey = GenerateKey(id.alg, &id);
  if (!pkey.ok()) return pkey.status();
  StatusOr<size_t> len =
      EncodePkcs8(pkey->get(), (*page)->data(), (*page)->size());
  if (!len.ok()) return len.status();
  pkey->reset();
  return visit((*page)->data(), *len);
}

}  // namespace sigrace::signer
