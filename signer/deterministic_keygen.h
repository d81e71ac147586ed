// TEST-ONLY deterministic key generation, so that an oracle in another
// process can make a key the signer was still generating when it died.
//
// With SignerOptions::TEST_key_seed set, every fresh key of a Signer
// (Create's, each Rotate's, and each TEST_key_pool key) draws all of its
// randomness from a stream derived from (key seed, alg, stream generation):
// the RSA prime candidates and Miller-Rabin witnesses, the Ed25519 seed.
// TEST_DeriveKey() in any process of the same build makes the same key
// again. The stress driver uses it for a key the worker announced (the
// signer's TEST_on_keygen_begin hook) and never handed over, because the
// fault landed inside the keygen (docs/design.md, "How a verdict is
// reached").
//
// The redirect: a RAND_METHOD installed once per process (the first time a
// stream is opened), whose bytes() serves a thread that holds a
// DeterministicRandScope from that scope's stream and every other thread
// (and the same thread outside a scope) from OpenSSL's private DRBG
// (EVP_RAND_generate on RAND_get0_private, which does not come back
// through the method). OpenSSL 3.0's RAND_bytes_ex and RAND_priv_bytes_ex
// ask the installed method first; its keygens (RSA SP 800-56B, Ed25519)
// take every random byte through RAND_priv_bytes_ex.
//
// The stream is key material: its state (a SHA-512 key, the digest context
// and the current output block) is allocated inside the caller's
// KeyAllocScope, so in the key heap, and wiped when the scope ends; its
// output goes straight to OpenSSL's buffer.
//
// Builds without SIGRACE_ABLATION (production, `bench`) have none of it:
// kDeterministicKeygenBuild is false, TEST_key_seed is ignored, the RAND
// method is never installed, and TEST_DeriveKey fails.
//
// Thread safety: DeterministicRandScope is per thread; TEST_DeriveKey is
// thread-safe. Not async-signal-safe.

#ifndef SIGRACE_SIGNER_DETERMINISTIC_KEYGEN_H_
#define SIGRACE_SIGNER_DETERMINISTIC_KEYGEN_H_

#include <openssl/types.h>

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>

#include "base/ablation.h"
#include "base/status.h"
#include "signer/signer.h"

namespace sigrace::signer {

inline constexpr bool kDeterministicKeygenBuild = kAblationBuild;

// Names one key's random stream.
struct KeyStreamId {
  uint64_t key_seed = 0;
  Alg alg = Alg::kRs256;
  // The key's generation, or the pool index of a TEST_key_pool key.
  uint64_t generation = 0;
};

struct PkeyFree {
  void operator()(EVP_PKEY* p) const;
};
using UniquePkey = std::unique_ptr<EVP_PKEY, PkeyFree>;

// While it lives, RAND_bytes and RAND_priv_bytes on this thread draw from
// the stream of `id`. REQUIRES: the calling thread is inside a
// KeyAllocScope (the stream's state lives in the key heap); scopes do not
// nest. status() says whether the redirect is in place.
class DeterministicRandScope {
 public:
  explicit DeterministicRandScope(const KeyStreamId& id);
  ~DeterministicRandScope();
  DeterministicRandScope(const DeterministicRandScope&) = delete;
  DeterministicRandScope& operator=(const DeterministicRandScope&) = delete;
  const Status& status() const { return status_; }

 private:
  Status status_;
  bool open_ = false;
};

// A fresh key of `alg`: from the stream of *id when id is not null (and
// the build has deterministic keygen), else from OpenSSL's DRBG. The
// caller holds the KeyAllocScope and SecretScope.
StatusOr<UniquePkey> GenerateKey(Alg alg, const KeyStreamId* id);

// PKCS#8 PrivateKeyInfo DER of `pkey` into out[0..cap); returns its
// length. The encoder's temporaries are OpenSSL allocations: call it inside
// a KeyAllocScope. The signer's keygen and TEST_DeriveKey share it, so a
// derived key's DER is byte for byte the one the signer wrapped.
StatusOr<size_t> EncodePkcs8(const EVP_PKEY* pkey, uint8_t* out, size_t cap);

// TEST-ONLY ORACLE: generates the key of `id` (inside a KeyAllocScope and a
// SecretScope), encodes it as PKCS#8 into a locked, DONTDUMP page published
// as "signer.oracle", and calls `visit` with that DER, which is wiped when
// `visit` returns. Never print, log or write it. Returns visit's status.
// RSA-2048 costs as much as a keygen (about half a second here).
Status TEST_DeriveKey(
    const KeyStreamId& id,
    const std::function<Status(const uint8_t* der, size_t len)>& visit);

}  // namespace sigrace::signer

#endif  // SIGRACE_SIGNER_DETERMINISTIC_KEYGEN_H_
