// The model signer: JWS compact tokens (RS256, EdDSA) signed with real
// OpenSSL 3 keys that live in a protected key vault, with a redaction path
// chosen at run time (`fixed` or one of the race variants).
//
// Key lifecycle: keys are generated per run (never read from or written to
// disk), wrapped at rest under a key-encryption key in the vault, and
// unwrapped only to load or rotate. Signing uses the loaded key object; it
// takes no global lock and unwraps nothing per token.
//
// Regions this module publishes to crashdump's registry (labels):
//   "signer.vault"        KEK and wrapped keys (guarded, mlock'd, DONTDUMP)
//   "signer.working"      a working page while it holds unwrapped key bytes
//   "signer.oracle"       the page TEST_VisitKeys unwraps into
//   "signer.heap"         each chunk of the arena that receives OpenSSL's
//                         allocations made inside a key scope
//   "openssl.secure_heap" OpenSSL's secure heap arena
// plus crashdump::SecretScope (registers and stack) around every signature.
// Every range but the secure heap is published fresh (zero) and wiped to
// zero before it leaves the cover, as the registry's cover check
// (crashdump::SetCoverCheck) requires; the secure heap is published with
// declared content (OpenSSL's free lists live in it) and never withdrawn.
//
// Thread safety: a Signer is thread-safe. Sign() may run on any number of
// threads at once and concurrently with Rotate(); Rotate() calls serialise
// among themselves. PublicJwks(), Keys(), Stats() and TEST_VisitKeys() may
// run at any time. The destructor must not race any other call.
// Not async-signal-safe: nothing here may be called from the crash path.

#ifndef SIGRACE_SIGNER_SIGNER_H_
#define SIGRACE_SIGNER_SIGNER_H_

#include <openssl/types.h>

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "base/status.h"

namespace sigrace::signer {

enum class Alg { kRs256, kEdDsa };

// The JWS "alg" value: "RS256" or "EdDSA".
const char* AlgName(Alg alg);
// Accepts "rs256" and "eddsa" (any case; also the JWS names).
StatusOr<Alg> ParseAlg(std::string_view name);

// The redaction-path variant. Every race variant is the fixed code with one
// window opened at one spot; the spot carries a failpoint (see
// VariantInfo::failpoint) that fires in every variant, so a test can fault
// at the same instant in `fixed` (no leak expected) and in the race variant
// (leak expected). There is no "stale stack after the scope" variant:
// OpenSSL 3.0 wipes az[] before ossl_ed25519_sign returns, so the stack
// exposure is reproduced during the signature (kShallowScope).
enum class Variant {
  kFixed,
  kPublishLate,     // unwrapped key bytes land before the page is published
  kUnpublishEarly,  // working page unpublished before it is wiped
  kTornUpdate,      // working range moved with a torn registry update
  kShallowScope,    // signature's SecretScope too shallow for OpenSSL
  kHeapMontgomery,  // RSA Montgomery contexts built on the ordinary heap
  kGlobalKeyScope,  // one process-wide key-allocation flag (a data race)
};

// How to fault inside a variant's window deterministically: arm
// `failpoint` as "<failpoint>=raise(SIGSEGV)@<hit>" (or any action), then
// run `trigger` once on one thread:
//   "rotate"        Rotate(alg) for either alg (the window is in the load
//                   of the new key; Create's loads pass it too)
//   "rotate-rs256"  Rotate(Alg::kRs256)
//   "sign-eddsa"    Sign(Alg::kEdDsa, ...)
// The same failpoint fires at the same instant under `fixed`, where
// nothing may leak.
struct VariantInfo {
  Variant variant;
  const char* name;       // "fixed", "publish-late", ...
  const char* window;     // one line: what is uncovered, and when
  const char* failpoint;  // the failpoint inside the window ("" for fixed)
  const char* path;       // where the window is: "load" or "sign"
  const char* trigger;    // see above ("" for fixed)
  int hit;                // evaluation of `failpoint` inside the window
  // The window is also a data race that ThreadSanitizer reports (a plain
  // location two threads touch unordered). The others are ordering windows
  // of one thread against the registry, or writes by uninstrumented
  // OpenSSL: TSan has nothing to report there, and the dump oracle is
  // their only judge (tsan/README.md says why, per variant).
  bool data_race;
};

StatusOr<Variant> ParseVariant(std::string_view name);
const char* VariantName(Variant variant);
// `fixed` first, then every race variant.
std::vector<VariantInfo> ListVariants();

// Registered claims come from the fields; `extra_json` (a JSON object, may
// be empty) is merged in and must not name iss, aud, iat or exp.
struct Claims {
  std::string iss = "sigrace";
  std::string aud = "sigrace-verifier";
  int64_t iat = 0;  // 0 means now
  int64_t ttl_seconds = 300;
  std::string extra_json;
};

// TEST-ONLY ORACLE: a key about to be generated (SignerOptions::
// TEST_on_keygen_begin). No key bytes: `kid` is borrowed for the call.
struct KeygenAnnouncement {
  Alg alg;
  std::string_view kid;
  uint64_t generation;  // 0 for the key made at Create(), +1 per Rotate()
  // The key's material comes from the stream (TEST_key_seed, alg,
  // stream_generation): signer::TEST_DeriveKey with these makes it again
  // (signer/deterministic_keygen.h). False when keygen is random (no
  // TEST_key_seed, or a build without deterministic keygen).
  bool derivable;
  // `generation`, or with TEST_key_pool the pool key's index (generation
  // modulo the pool size): keys that share it share their material.
  uint64_t stream_generation;
};

struct SignerOptions {
  Variant variant = Variant::kFixed;
  // Keys provisioned at Create(); Sign() with another alg is an error.
  std::vector<Alg> algs = {Alg::kRs256, Alg::kEdDsa};
  // Size of OpenSSL's secure heap (power of two). It is process-wide: the
  // first Signer of the process sets it up.
  size_t secure_heap_bytes = size_t{1} << 20;
  // TEST-ONLY ORACLE hook: runs on the rotating thread once a new key is
  // generated and wrapped, before it is loaded, so an oracle in another
  // process learns the key even if this process dies inside the load (a
  // fatal fault in a load-path window). May call TEST_VisitKeys().
  std::function<void()> TEST_on_key_added;
  // TEST-ONLY: when N > 0, Create() generates N keys per algorithm once,
  // and every key (the first and each rotation's) takes its key material
  // from them in turn. Each rotation still gets its own kid and runs the
  // whole path: PKCS#8 encoding, wrap, unwrap, load, warm-up, swap, retire
  // and wipe; only the key generation is left out. A stress run measures
  // the redaction path, and RSA-2048 generation (0.2-1 s here) would
  // otherwise be most of its time. The pool keys live in the key heap.
  size_t TEST_key_pool = 0;
  // TEST-ONLY: every fresh key (Create's, each Rotate's, each pool key)
  // draws its randomness from a stream derived from (this seed, alg,
  // generation) instead of OpenSSL's DRBG, so another process can make the
  // same key with TEST_DeriveKey (signer/deterministic_keygen.h). Keys made
  // so are test keys: anyone who knows the seed has them. Ignored by
  // builds without SIGRACE_ABLATION, which always generate at random.
  std::optional<uint64_t> TEST_key_seed;
  // TEST-ONLY ORACLE hook: runs on the generating thread (Create's or the
  // rotating one) before each key's generation starts, so an oracle in
  // another process learns of a key that a fault inside its keygen, encode
  // or wrap then keeps from ever being added (TEST_on_key_added never runs
  // for it) and can derive it. Runs under the rotation lock: must not call
  // Rotate().
  std::function<void(const KeygenAnnouncement&)> TEST_on_keygen_begin;
};

// Public facts about one key of the run (no key bytes).
struct KeyInfo {
  Alg alg;
  std::string kid;
  uint64_t generation;  // 0 for the key made at Create(), +1 per Rotate()
  bool active;
  bool retired;  // retirement complete: key object freed and wiped
};

struct SignerStats {
  bool vault_mlocked;        // mlock succeeded (EPERM/ENOMEM are recorded)
  bool secure_heap_enabled;  // CRYPTO_secure_malloc_init succeeded
  uint64_t tokens_signed;
  uint64_t rotations;
  uint64_t keys_retired;
  uint64_t heap_chunks;  // "signer.heap" chunks mapped so far
};

// TEST-ONLY ORACLE view of one private key. Every pointer is borrowed for
// the duration of the visit callback only; the DER sits in the published
// "signer.oracle" page and is wiped when the callback returns. Never print,
// log or write any of it.
struct OracleKey {
  Alg alg;
  std::string_view kid;
  uint64_t generation;
  bool retired;
  const EVP_PKEY* pkey;      // built inside a key scope
  const uint8_t* pkcs8_der;  // PKCS#8 PrivateKeyInfo
  size_t pkcs8_len;
};

class Signer {
 public:
  // Sets up the vault, generates and loads one key per opts.algs.
  static StatusOr<std::unique_ptr<Signer>> Create(const SignerOptions& opts);
  ~Signer();
  Signer(const Signer&) = delete;
  Signer& operator=(const Signer&) = delete;

  // Signs one token with the active key of `alg`.
  StatusOr<std::string> Sign(Alg alg, const Claims& claims);

  // Generates a new key for `alg`, loads it, makes it active, then waits
  // for every in-flight signature on the old key to finish and retires it
  // (frees and wipes the key object). Returns after retirement completes.
  Status Rotate(Alg alg);

  // {"keys":[...]} with every key of the run (active and retired, since
  // tokens signed before a rotation stay valid until they expire).
  std::string PublicJwks() const;
  StatusOr<std::string> ActiveKid(Alg alg) const;
  std::vector<KeyInfo> Keys() const;
  SignerStats Stats() const;
  Variant variant() const;

  // TEST-ONLY ORACLE: visits every private key that has existed in this
  // Signer (the active ones and every retired one), for the dump scanner.
  // Retired keys are unwrapped again from their wrapped copy at rest.
  // Stops at the first non-ok status from `visit` and returns it.
  Status TEST_VisitKeys(
      const std::function<Status(const OracleKey&)>& visit) const;
  // The same, for the keys whose kid `want` accepts; the others are not
  // unwrapped at all (an oracle that already has them).
  Status TEST_VisitKeys(
      const std::function<Status(const OracleKey&)>& visit,
      const std::function<bool(std::string_view kid)>& want) const;

  class Impl;

 private:
  explicit Signer(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace sigrace::signer

#endif  // SIGRACE_SIGNER_SIGNER_H_
