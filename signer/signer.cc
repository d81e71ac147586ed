#include "signer/signer.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <openssl/x509.h>
#include <sched.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cctype>
#include <cstring>
#include <ctime>
#include <optional>
#include <thread>

#include "base/ablation.h"
#include "base/failpoint.h"
#include "base/mutex.h"
#include "crashdump/registry/registry.h"
#include "signer/deterministic_keygen.h"
#include "signer/exposure_models.h"
#include "signer/jws.h"
#include "signer/key_heap.h"
#include "signer/test_regressions.h"
#include "signer/vault.h"

// WHERE PLAINTEXT KEY MATERIAL LIVES, and what `fixed` does about each.
//
// Load (Create and Rotate unwrap a wrapped key; TEST_VisitKeys the same):
//  1. KEK: "signer.vault" ProtectedPages (guard pages, mlock, DONTDUMP,
//     published for the Signer's life, OPENSSL_cleanse on release).
//  2. KEK key schedule and GCM state: the EVP_CIPHER_CTX that Wrap/Unwrap
//     allocate inside a KeyAllocScope, so in the published key heap
//     ("signer.heap"); OpenSSL clear-frees it and the key heap wipes every
//     freed block again.
//  3. Unwrapped PKCS#8 DER: a "signer.working" page. fixed publishes the
//     staging slot BEFORE the unwrap writes to it [publish-late opens
//     this], moves the cover with UpdateRegion, which covers old and new
//     until it returns [torn-update opens this], and wipes the page BEFORE
//     unpublishing it [unpublish-early opens this].
//  4. Parsed key: the Ed25519 private key is allocated from OpenSSL's
//     secure heap (published as "openssl.secure_heap"). The RSA private
//     BIGNUMs (d, p, q, dP, dQ, qInv) are NOT: measured with OpenSSL 3.0,
//     the PKCS#8 decoder does not set BN_FLG_SECURE on them (keygen does:
//     see 8), so they are ordinary OpenSSL allocations, which the load's
//     KeyAllocScope puts in the key heap.
//  5. Decoder scratch and BN_CTX temporaries: ordinary OpenSSL
//     allocations inside the load's KeyAllocScope, so in the key heap.
//  6. RSA Montgomery contexts: OpenSSL builds mont_p/mont_q lazily on the
//     first private operation and copies p and q into them with plain
//     OPENSSL_malloc (not the secure heap). fixed runs a warm-up signature
//     inside the load's KeyAllocScope so they are built in the key heap
//     for the key's whole life [heap-montgomery opens this]. The RSA
//     blinding values are built by the same warm-up. The KeyAllocScope is
//     a per-thread nesting depth, so neither the parse's inner scope
//     closing nor a signature ending on another thread turns it off
//     [global-key-scope opens this: one process-wide flag].
//  7. Registers and stack of the loading thread: the load runs inside a
//     crashdump::SecretScope.
//
// Keygen (Create and Rotate, before the wrap):
//  8. The fresh EVP_PKEY and keygen temporaries (prime candidates,
//     BN_CTX): RSA keygen uses a secure BN_CTX for part of its work, and
//     OpenSSL 3.0's SP 800-56B keygen allocates the resulting private
//     numbers secure (measured: a dump at keygen.after_generate with only
//     the secure heap's cover off holds the fresh key's limbs; with only
//     the key heap's off it does not); the rest are ordinary allocations
//     inside the keygen's KeyAllocScope, so in the key heap. The PKCS#8
//     encoding (and the PKCS8_PRIV_KEY_INFO holding the inner key DER): a
//     published "signer.working" page and the key heap. The freshly made
//     key object is freed after the wrap; the key heap wipes its blocks.
//     With SignerOptions::TEST_key_pool the key objects are made once, in
//     Init(), inside the same KeyAllocScope and SecretScope, and kept in
//     the key heap for the Signer's life.
//  9. The DRBG that produced the key: OpenSSL's heap, outside our cover.
//     It is not key material: the DRBG updates its state after every
//     generate (SP 800-90A backtracking resistance), so the state left
//     behind cannot reproduce the key. With SignerOptions::TEST_key_seed
//     (test builds) the key comes from a deterministic stream instead,
//     whose state is key material: one key-heap block inside the keygen's
//     KeyAllocScope, wiped when the keygen ends (deterministic_keygen.h).
//
// Signing:
// 10. The key object: as 4 and 6; read only.
// 11. Per-signature OpenSSL state: EVP_MD_CTX, the provider's signature
//     context, SHA-512 contexts (Ed25519 hashes the seed and then the
//     nonce prefix through a heap digest context), BN_CTX temporaries and
//     the modexp power table (RSA CRT): all allocated inside the
//     signature's KeyAllocScope, so in the signing thread's key-heap arena
//     (no lock), wiped on free.
// 12. Stack: ossl_ed25519_sign keeps the expanded key (clamped scalar and
//     nonce prefix, az[64]) on the stack for most of the signature
//     (measured: present at its 12th and 13th allocations); RSA's modexp
//     may keep CRT values in other radixes on the stack (rsaz); the
//     deepest signing stack measured is 3.7 KiB (Ed25519) and 13 KiB
//     (RSA-2048). The signature runs inside a SecretScope
//     covering registers and 64 KiB of stack, deep enough for OpenSSL's
//     frames [shallow-scope opens this: it covers only the signer's own
//     frame]. OpenSSL wipes az[] before it returns; fixed also scrubs the
//     stack below the signing frame and the vector registers BEFORE the
//     scope ends, for the key-derived values OpenSSL leaves (radix-16
//     scalar digits, message schedules).
// 13. Registers: covered by the SecretScope while signing; the scrub
//     zeroes ymm registers (vzeroall) since SHA-512 and AES leave
//     key-derived words there; general registers are caller-saved junk
//     overwritten by the next calls or restored callee-saved values.
//
// Rotation:
// 14. Two key objects live at once (new active, old draining): both as 4
//     and 6. The old one is freed only after its in-flight count drops to
//     zero; the secure heap clear-frees its BIGNUMs and the key heap wipes
//     its Montgomery contexts. The wrapped copy at rest (ciphertext) is
//     kept for TEST_VisitKeys.
//
// Workload models (exposure_models.h), in every variant:
// 15. A copy of the PKCS#8 DER in guarded pages for the key's life: mlock'd,
//     MADV_DONTDUMP, not published; dumps leave it out by the advice alone.
// 16. A key-event log on the ordinary heap: each record's unfilled tail is
//     whatever its key-heap block held before, the DER the load freed
//     there; the key heap's wipe on free makes it zeros.
//
// Not key material, on the ordinary heap: wrapped keys (ciphertext), kids,
// JWKs, tokens, signatures.

namespace sigrace::signer {
namespace {

// Key load.
SIGRACE_FAILPOINT_DEFINE(kFpLoadBeforeUnwrap, "load.before_unwrap");
SIGRACE_FAILPOINT_DEFINE(kFpLoadAfterUnwrap, "load.after_unwrap");
SIGRACE_FAILPOINT_DEFINE(kFpLoadAfterMove, "load.after_move");
SIGRACE_FAILPOINT_DEFINE(kFpLoadAfterParse, "load.after_parse");
SIGRACE_FAILPOINT_DEFINE(kFpLoadAfterWarmup, "load.after_warmup");
SIGRACE_FAILPOINT_DEFINE(kFpLoadAfterWipe, "load.after_wipe");
// Key generation.
SIGRACE_FAILPOINT_DEFINE(kFpKeygenAfterGenerate, "keygen.after_generate");
SIGRACE_FAILPOINT_DEFINE(kFpKeygenAfterEncode, "keygen.after_encode");
SIGRACE_FAILPOINT_DEFINE(kFpKeygenAfterWrap, "keygen.after_wrap");
// Rotation.
SIGRACE_FAILPOINT_DEFINE(kFpRotateBegin, "rotate.begin");
SIGRACE_FAILPOINT_DEFINE(kFpRotateAfterLoad, "rotate.after_load");
SIGRACE_FAILPOINT_DEFINE(kFpRotateAfterSwap, "rotate.after_swap");
SIGRACE_FAILPOINT_DEFINE(kFpRotateBeforeRetire, "rotate.before_retire");
SIGRACE_FAILPOINT_DEFINE(kFpRotateAfterRetire, "rotate.after_retire");
// Signing.
SIGRACE_FAILPOINT_DEFINE(kFpSignBegin, "sign.begin");
SIGRACE_FAILPOINT_DEFINE(kFpSignAfterAcquire, "sign.after_acquire");
SIGRACE_FAILPOINT_DEFINE(kFpSignBeforeDigest, "sign.before_digest");
SIGRACE_FAILPOINT_DEFINE(kFpSignAfterDigest, "sign.after_digest");
SIGRACE_FAILPOINT_DEFINE(kFpSignAfterRelease, "sign.after_release");
// Race windows. Each is evaluated in every variant at the same instant;
// only in its own variant is key material uncovered there.
SIGRACE_FAILPOINT_DEFINE(kFpWindowPublishLate, "window.publish_late");
SIGRACE_FAILPOINT_DEFINE(kFpWindowTornUpdate, "window.torn_update");
SIGRACE_FAILPOINT_DEFINE(kFpWindowHeapMontgomery, "window.heap_montgomery");
SIGRACE_FAILPOINT_DEFINE(kFpWindowUnpublishEarly, "window.unpublish_early");
SIGRACE_FAILPOINT_DEFINE(kFpWindowGlobalKeyScope, "window.global_key_scope");
// "window.shallow_scope" is defined in key_heap.cc: it sits in the
// allocation hook, inside OpenSSL's signing code.

// OpenSSL 3.0's ossl_ed25519_sign makes its 12th and 13th allocations of a
// signature (the digest re-inits for the nonce and for H(R,A,M)) while
// az[64] is on its stack. window_test pins this number.
constexpr int kShallowScopeHit = 12;

constexpr VariantInfo kVariants[] = {
    {Variant::kFixed, "fixed",
     "none: key material is covered from before it is written until after "
     "it is wiped",
     "", "-", "", 0, false},
    {Variant::kPublishLate, "publish-late",
     "load: unwrapped PKCS#8 bytes sit in the working page before the page "
     "is published",
     "window.publish_late", "load", "rotate", 1, false},
    {Variant::kUnpublishEarly, "unpublish-early",
     "load: the working page is unpublished before it is wiped",
     "window.unpublish_early", "load", "rotate", 1, false},
    {Variant::kTornUpdate, "torn-update",
     "load: the cover moves to the whole working page by a torn update; "
     "between its address and length stores the staging slot is uncovered",
     "window.torn_update", "load", "rotate", 1, false},
    {Variant::kShallowScope, "shallow-scope",
     "sign: the signature's SecretScope covers only the signer's own frame, "
     "not OpenSSL's frames below it, where Ed25519 keeps the expanded key "
     "during the signature",
     "window.shallow_scope", "sign", "sign-eddsa", kShallowScopeHit, false},
    {Variant::kHeapMontgomery, "heap-montgomery",
     "load: the warm-up signature runs outside the key heap, so the RSA "
     "Montgomery contexts copy p and q to the ordinary heap for the key's "
     "life",
     "window.heap_montgomery", "load", "rotate-rs256", 1, false},
    {Variant::kGlobalKeyScope, "global-key-scope",
     "load: the key-allocation scope is one process-wide flag, not a "
     "per-thread depth; the first scope to close (the parse's, or a "
     "signature's on any thread) turns the key heap off mid-load, and the "
     "warm-up's Montgomery copies of p and q land on the ordinary heap",
     "window.global_key_scope", "load", "rotate-rs256", 1, true},
};

constexpr size_t kWorkingBytes = 4096;
constexpr size_t kSlotBytes = kWorkingBytes / 2;  // parse slot, staging slot
constexpr size_t kScrubEdDsaBytes = size_t{8} * 1024;
constexpr size_t kScrubRs256Bytes = size_t{32} * 1024;
static_assert(kScrubRs256Bytes < crashdump::kDefaultSecretStackDepth);
// What the shallow-scope variant covers: this module's own frame only.
constexpr size_t kShallowScopeBytes = 256;
constexpr char kWarmupInput[] = "sigrace warm-up";

using Pkey = UniquePkey;

size_t AlgIndex(Alg alg) { return alg == Alg::kRs256 ? 0 : 1; }

std::string Lower(std::string_view s) {
  std::string out(s);
  for (char& c : out)
    c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

Status Injected(const char* name) {
  return InternalError(std::string("failpoint ") + name + " injected an error");
}

// Zeroes the stack a signature used below the caller's frame, and the
// vector registers. noinline so its frame starts where the signing frames
// started. kBytes is about twice the deepest signing stack measured with
// OpenSSL 3.0 (Ed25519 3.7 KiB, RSA-2048 13 KiB, painted-stack method).
// explicit_bzero, not OPENSSL_cleanse: both are stores the compiler may
// not drop, but OpenSSL's x86-64 cleanse stores 8 bytes at a time (about
// 1,000 instructions for 8 KiB), glibc's memset streams vector stores.
template <size_t kBytes>
__attribute__((noinline)) void ScrubStackAndRegisters() {
  uint8_t area[kBytes];
  explicit_bzero(area, sizeof(area));
  asm volatile("" : : "r"(area) : "memory");
#if defined(__x86_64__)
  if (__builtin_cpu_supports("avx")) {
    asm volatile("vzeroall"
                 :
                 :
                 : "memory", "xmm0", "xmm1", "xmm2", "xmm3", "xmm4", "xmm5",
                   "xmm6", "xmm7", "xmm8", "xmm9", "xmm10", "xmm11", "xmm12",
                   "xmm13", "xmm14", "xmm15");
  }
#endif
}

void TornBetween() { (void)SIGRACE_FAILPOINT(kFpWindowTornUpdate); }

// Parses PKCS#8 DER. The parse opens its own KeyAllocScope so that the
// private numbers it allocates land in the key heap whoever calls it (the
// load, and the oracle's UnwrapToKey).
StatusOr<Pkey> ParsePrivateKey(const uint8_t* der, size_t len) {
  KeyAllocScope alloc;
  const uint8_t* p = der;
  Pkey pkey(d2i_AutoPrivateKey(nullptr, &p, static_cast<long>(len)));
  if (!pkey) return InternalError("wrapped key does not parse");
  return pkey;
}

}  // namespace

const char* AlgName(Alg alg) { return alg == Alg::kRs256 ? "RS256" : "EdDSA"; }

StatusOr<Alg> ParseAlg(std::string_view name) {
  const std::string l = Lower(name);
  if (l == "rs256") return Alg::kRs256;
  if (l == "eddsa") return Alg::kEdDsa;
  return InvalidArgumentError("unknown alg '" + std::string(name) +
                              "' (rs256, eddsa)");
}

StatusOr<Variant> ParseVariant(std::string_view name) {
  for (const VariantInfo& v : kVariants) {
    if (name == v.name) return v.variant;
  }
  std::string names;
  for (const VariantInfo& v : kVariants) {
    if (!names.empty()) names += ", ";
    names += v.name;
  }
  return NotFoundError("unknown variant '" + std::string(name) + "' (" + names +
                       ")");
}

const char* VariantName(Variant variant) {
  for (const VariantInfo& v : kVariants) {
    if (v.variant == variant) return v.name;
  }
  return nullptr;
}

std::vector<VariantInfo> ListVariants() {
  return std::vector<VariantInfo>(std::begin(kVariants), std::end(kVariants));
}

// Per-thread-slot counters on their own cache lines: signing threads on
// different slots never write the same line, so the hot path has no
// shared-write contention. Readers sum the slots.
constexpr int kSlots = 16;
struct alignas(64) PaddedCounter {
  std::atomic<int64_t> v{0};
};
static_assert(std::atomic<int64_t>::is_always_lock_free);

int ThreadSlot() {
  static std::atomic<int> next{0};
  thread_local const int slot =
      next.fetch_add(1, std::memory_order_relaxed) % kSlots;
  return slot;
}

// One key of the run. Never freed while the Signer lives, so a signer that
// loses the acquire race may still touch `inflight`.
struct KeyRecord {
  Alg alg;
  std::string kid;
  uint64_t generation = 0;
  std::vector<uint8_t> wrapped;  // ciphertext under the KEK
  std::string jwk;               // public JWK JSON
  std::string header_b64;        // BASE64URL of the JWS header: per key
  // Written before the record is published through Impl::active_; freed by
  // the rotator only once inflight reads zero after the swap.
  EVP_PKEY* pkey = nullptr;
  // exposure::GuardedKeyCacheModel's pages, from the load to retirement.
  std::unique_ptr<ProtectedPages> key_cache;
  PaddedCounter inflight[kSlots];
  std::atomic<bool> retired{false};
};

class Signer::Impl {
 public:
  explicit Impl(const SignerOptions& opts)
      : variant_(opts.variant),
        on_key_added_(opts.TEST_on_key_added),
        on_keygen_begin_(opts.TEST_on_keygen_begin),
        key_seed_(kDeterministicKeygenBuild ? opts.TEST_key_seed
                                            : std::nullopt) {}
  ~Impl();

  Status Init(const SignerOptions& opts);
  StatusOr<std::string> Sign(Alg alg, const Claims& claims);
  Status Rotate(Alg alg);
  std::string PublicJwks() const;
  StatusOr<std::string> ActiveKid(Alg alg) const;
  std::vector<KeyInfo> Keys() const;
  SignerStats Stats() const;
  Status VisitKeys(const std::function<Status(const OracleKey&)>& visit,
                   const std::function<bool(std::string_view kid)>& want) const;
  Variant variant() const { return variant_; }

 private:
  StatusOr<std::unique_ptr<KeyRecord>> Generate(Alg alg, uint64_t generation);
  // A fresh key, or (SignerOptions::TEST_key_pool) the pool key for
  // `generation`, with a reference of its own.
  StatusOr<Pkey> NewKeyMaterial(Alg alg, uint64_t generation);
  Status Load(KeyRecord* rec);
  StatusOr<Pkey> UnwrapToKey(const KeyRecord& rec, ProtectedPages* page,
                             size_t* der_len) const;
  KeyRecord* Acquire(Alg alg, int slot);
  Status SignInScope(Alg alg, EVP_PKEY* pkey, const ProtectedPages* key_cache,
                     std::string_view input, std::string* sig);
  void Retire(KeyRecord* rec);
  // Records are kept from the moment their key is wrapped, so the oracle
  // knows a key even if its load then fails.
  void AddRecord(std::unique_ptr<KeyRecord> rec) {
    MutexLock l(&records_mu_);
    records_.push_back(std::move(rec));
  }
  bool Provisioned(Alg alg) const {
    return active_[AlgIndex(alg)].load(std::memory_order_acquire) != nullptr;
  }

  const Variant variant_;
  const std::function<void()> on_key_added_;
  const std::function<void(const KeygenAnnouncement&)> on_keygen_begin_;
  // SignerOptions::TEST_key_seed; always empty without deterministic
  // keygen in the build.
  const std::optional<uint64_t> key_seed_;
  std::unique_ptr<Vault> vault_;
  SecureHeapInfo secure_heap_;
  std::string run_id_;

  std::array<std::atomic<KeyRecord*>, 2> active_{};
  Mutex rotate_mu_;  // serialises Rotate()
  // SignerOptions::TEST_key_pool keys per algorithm (read-only after Init).
  std::vector<Pkey> pool_[2];
  mutable Mutex records_mu_;
  std::vector<std::unique_ptr<KeyRecord>> records_ GUARDED_BY(records_mu_);
  std::array<uint64_t, 2> next_generation_ GUARDED_BY(rotate_mu_) = {0, 0};

  PaddedCounter tokens_[kSlots];
  std::atomic<uint64_t> rotations_{0};
  std::atomic<uint64_t> retired_{0};
};

Signer::Impl::~Impl() {
  MutexLock l(&records_mu_);
  for (auto& rec : records_) {
    if (rec->pkey != nullptr) {
      EVP_PKEY_free(rec->pkey);
      rec->pkey = nullptr;
    }
  }
}

Status Signer::Impl::Init(const SignerOptions& opts) {
  SIGRACE_RETURN_IF_ERROR(InstallKeyHeap());
  SetKeyScopeModel(opts.variant == Variant::kGlobalKeyScope
                       ? KeyScopeModel::kProcessWide
                       : KeyScopeModel::kPerThread);
  auto sh = EnableSecureHeap(opts.secure_heap_bytes);
  if (!sh.ok()) return sh.status();
  secure_heap_ = *sh;
  auto vault = Vault::Create();
  if (!vault.ok()) return vault.status();
  vault_ = std::move(*vault);
  uint8_t id[4];
  if (RAND_bytes(id, sizeof(id)) != 1) {
    return InternalError("RAND_bytes failed for the run id");
  }
  static constexpr char kHex[] = "0123456789abcdef";
  for (uint8_t b : id) {
    run_id_.push_back(kHex[b >> 4]);
    run_id_.push_back(kHex[b & 15]);
  }
  for (Alg alg : opts.algs) {
    KeyAllocScope alloc;
    crashdump::SecretScope secret;
    for (size_t i = 0; i < opts.TEST_key_pool; ++i) {
      const KeyStreamId id{key_seed_.value_or(0), alg, i};
      auto k = GenerateKey(alg, key_seed_ ? &id : nullptr);
      if (!k.ok()) return k.status();
      pool_[AlgIndex(alg)].push_back(std::move(*k));
    }
  }
  MutexLock rl(&rotate_mu_);
  for (Alg alg : opts.algs) {
    if (Provisioned(alg)) continue;
    const uint64_t gen = next_generation_[AlgIndex(alg)]++;
    auto rec = Generate(alg, gen);
    if (!rec.ok()) return rec.status();
    KeyRecord* raw = rec->get();
    AddRecord(std::move(*rec));
    SIGRACE_RETURN_IF_ERROR(Load(raw));
    active_[AlgIndex(alg)].store(raw, std::memory_order_seq_cst);
  }
  return Status::Ok();
}

StatusOr<Pkey> Signer::Impl::NewKeyMaterial(Alg alg, uint64_t generation) {
  const std::vector<Pkey>& pool = pool_[AlgIndex(alg)];
  if (!pool.empty()) {
    EVP_PKEY* k = pool[generation % pool.size()].get();
    if (EVP_PKEY_up_ref(k) != 1) return InternalError("EVP_PKEY_up_ref");
    return Pkey(k);
  }
  const KeyStreamId id{key_seed_.value_or(0), alg, generation};
  return GenerateKey(alg, key_seed_ ? &id : nullptr);
}

StatusOr<std::unique_ptr<KeyRecord>> Signer::Impl::Generate(
    Alg alg, uint64_t generation) {
  auto rec = std::make_unique<KeyRecord>();
  rec->alg = alg;
  rec->generation = generation;
  rec->kid =
      Lower(AlgName(alg)) + "-" + run_id_ + "-" + std::to_string(generation);
  rec->header_b64 = jws::Base64UrlEncode(jws::HeaderJson(alg, rec->kid));
  if (on_keygen_begin_) {
    // Before any key byte exists: an oracle that hears of the key now can
    // make it itself if this process dies before it is handed over.
    const size_t pool = pool_[AlgIndex(alg)].size();
    on_keygen_begin_(
        KeygenAnnouncement{alg, rec->kid, generation, key_seed_.has_value(),
                           pool > 0 ? generation % pool : generation});
  }

  KeyAllocScope alloc;
  crashdump::SecretScope secret;
  auto made = NewKeyMaterial(alg, generation);
  if (!made.ok()) return made.status();
  Pkey pkey = std::move(*made);
  if (SIGRACE_FAILPOINT(kFpKeygenAfterGenerate)) {
    return Injected("keygen.after_generate");
  }
  auto page = ProtectedPages::Map(kWorkingBytes, "signer.working");
  if (!page.ok()) return page.status();
  auto len = EncodePkcs8(pkey.get(), (*page)->data(), kSlotBytes);
  if (!len.ok()) return len.status();
  if (SIGRACE_FAILPOINT(kFpKeygenAfterEncode)) {
    return Injected("keygen.after_encode");
  }
  auto wrapped = vault_->Wrap((*page)->data(), *len, rec->kid);
  if (!wrapped.ok()) return wrapped.status();
  rec->wrapped = std::move(*wrapped);
  if (SIGRACE_FAILPOINT(kFpKeygenAfterWrap)) {
    return Injected("keygen.after_wrap");
  }
  auto jwk = jws::PublicJwk(alg, pkey.get(), rec->kid);
  if (!jwk.ok()) return jwk.status();
  rec->jwk = std::move(*jwk);
  return rec;
}

// Unwraps rec into the fixed-layout working page and parses it. Used by the
// oracle, which always runs the fixed sequence.
StatusOr<Pkey> Signer::Impl::UnwrapToKey(const KeyRecord& rec,
                                         ProtectedPages* page,
                                         size_t* der_len) const {
  auto n = vault_->Unwrap(rec.wrapped, rec.kid, page->data(), page->size());
  if (!n.ok()) return n.status();
  auto pkey = ParsePrivateKey(page->data(), *n);
  if (!pkey.ok()) return pkey.status();
  SIGRACE_RETURN_IF_ERROR(jws::CheckKeyMatches(rec.alg, pkey->get()));
  *der_len = *n;
  return pkey;
}

Status Signer::Impl::Load(KeyRecord* rec) {
  KeyAllocScope alloc;
  crashdump::SecretScope secret;
  if (SIGRACE_FAILPOINT(kFpLoadBeforeUnwrap)) {
    return Injected("load.before_unwrap");
  }
  // The working page stays in dumps (no MADV_DONTDUMP): like the buffers of
  // the incident, redaction through the registry is its only cover, so a
  // window in that redaction is a window in the dump. The vault and the
  // oracle page keep DONTDUMP as defence in depth.
  auto mapped = ProtectedPages::Map(kWorkingBytes, "signer.working",
                                    /*publish=*/false, /*dontdump=*/false);
  if (!mapped.ok()) return mapped.status();
  std::unique_ptr<ProtectedPages> page = std::move(*mapped);
  uint8_t* const parse_slot = page->data();
  uint8_t* const staging = page->data() + kSlotBytes;

  // The cover follows the bytes: it starts on the staging slot, where GCM
  // writes plaintext it has not authenticated yet.
  const bool publish_late = variant_ == Variant::kPublishLate;
  // TEST REGRESSION (slot-published-after-filled): published after the
  // unwrap fills the slot, with no failpoint between.
  const bool publish_after =
      TEST_RegressionOn(TestRegression::kSlotPublishedAfterFilled);
  if (!publish_late && !publish_after) page->PublishRange(staging, kSlotBytes);
  auto n = vault_->Unwrap(rec->wrapped, rec->kid, staging, kSlotBytes);
  if (!n.ok()) return n.status();
  if (publish_after) page->PublishRange(staging, kSlotBytes);
  // WINDOW (publish-late): the unwrapped PKCS#8 bytes are in the staging
  // slot, and the page is not published until the line after the failpoint.
  if (SIGRACE_FAILPOINT(kFpWindowPublishLate)) {
    return Injected("window.publish_late");
  }
  if (publish_late) page->PublishRange(staging, kSlotBytes);
  if (SIGRACE_FAILPOINT(kFpLoadAfterUnwrap)) {
    return Injected("load.after_unwrap");
  }

  // Authenticated bytes move to the parse slot: widen the cover to the
  // whole page, copy, wipe the staging slot, narrow the cover.
  // WINDOW (torn-update): the widening is a torn update; between its
  // address and length stores the cover is [page, page + slot), which
  // leaves the staging slot and its plaintext uncovered.
  const bool torn = variant_ == Variant::kTornUpdate;
  page->MoveRegion(page->data(), page->size(), torn, &TornBetween);
  if (!torn) TornBetween();
  crashdump::CheckCovered(parse_slot, *n, "load.parse_slot");
  memcpy(parse_slot, staging, *n);
  // TEST REGRESSION (cover-narrowed-before-wipe): the narrowing runs
  // before the staging slot is wiped.
  const bool narrow_first =
      TEST_RegressionOn(TestRegression::kCoverNarrowedBeforeWipe);
  if (narrow_first) page->MoveRegion(parse_slot, kSlotBytes, false, nullptr);
  OPENSSL_cleanse(staging, kSlotBytes);
  if (!narrow_first) {
    page->MoveRegion(parse_slot, kSlotBytes, /*torn=*/false, nullptr);
  }
  if (SIGRACE_FAILPOINT(kFpLoadAfterMove)) return Injected("load.after_move");

  const uint8_t* der = TEST_MaybeHeapCopy(parse_slot, *n);  // test-only
  auto parsed = ParsePrivateKey(der, *n);
  TEST_ReleaseHeapCopy(der, parse_slot, *n);  // test-only
  if (!parsed.ok()) return parsed.status();
  Pkey pkey = std::move(*parsed);
  SIGRACE_RETURN_IF_ERROR(jws::CheckKeyMatches(rec->alg, pkey.get()));
  // WORKLOAD MODELS (exposure_models.h): a key-event record built in the
  // key-heap block the DER was just freed from, and a copy of the DER kept
  // in pages that only MADV_DONTDUMP keeps out of dumps.
  SIGRACE_RETURN_IF_ERROR(
      exposure::KeyEventRecordModel(rec->alg, parse_slot, *n));
  auto key_cache = exposure::GuardedKeyCacheModel(parse_slot, *n);
  if (!key_cache.ok()) return key_cache.status();
  if (SIGRACE_FAILPOINT(kFpLoadAfterParse)) {
    return Injected("load.after_parse");
  }

  {
    // WINDOW (heap-montgomery): the warm-up runs with the key heap
    // suspended, so the Montgomery contexts OpenSSL builds on this first
    // private operation copy p and q to the ordinary heap, uncovered for
    // the key's whole life.
    std::optional<KeyAllocSuspend> suspend;
    if (variant_ == Variant::kHeapMontgomery) suspend.emplace();
    std::string sig;
    SIGRACE_RETURN_IF_ERROR(
        jws::SignRaw(rec->alg, pkey.get(), kWarmupInput, &sig));
    SIGRACE_RETURN_IF_ERROR(
        jws::VerifyRaw(rec->alg, pkey.get(), kWarmupInput, sig));
  }
  if (SIGRACE_FAILPOINT(kFpWindowHeapMontgomery)) {
    return Injected("window.heap_montgomery");
  }
  // WINDOW (global-key-scope): under the process-wide flag the parse's own
  // scope cleared it on exit (and any signature ending on another thread
  // clears it too), so the warm-up above ran outside the key heap and its
  // Montgomery copies of p and q are on the ordinary heap.
  if (SIGRACE_FAILPOINT(kFpWindowGlobalKeyScope)) {
    return Injected("window.global_key_scope");
  }
  if (SIGRACE_FAILPOINT(kFpLoadAfterWarmup)) {
    return Injected("load.after_warmup");
  }

  // WINDOW (unpublish-early): the working page is unpublished while its
  // parse slot still holds the PKCS#8 bytes; the wipe comes after the
  // failpoint.
  if (variant_ == Variant::kUnpublishEarly) page->Unpublish();
  if (SIGRACE_FAILPOINT(kFpWindowUnpublishEarly)) {
    return Injected("window.unpublish_early");
  }
  page->Wipe();
  page.reset();
  if (SIGRACE_FAILPOINT(kFpLoadAfterWipe)) return Injected("load.after_wipe");

  rec->pkey = pkey.release();
  rec->key_cache = std::move(*key_cache);
  return Status::Ok();
}

KeyRecord* Signer::Impl::Acquire(Alg alg, int slot) {
  std::atomic<KeyRecord*>& active = active_[AlgIndex(alg)];
  for (;;) {
    KeyRecord* k = active.load(std::memory_order_seq_cst);
    k->inflight[slot].v.fetch_add(1, std::memory_order_seq_cst);
    // Still active after the increment: the rotator has not swapped yet, or
    // swapped later and will see the increment when it sums the slots
    // before it retires k (both sides are seq_cst: Dekker's pattern).
    if (active.load(std::memory_order_seq_cst) == k) return k;
    k->inflight[slot].v.fetch_sub(1, std::memory_order_release);
  }
}

__attribute__((noinline)) Status Signer::Impl::SignInScope(
    Alg alg, EVP_PKEY* pkey, const ProtectedPages* key_cache,
    std::string_view input, std::string* sig) {
  // WINDOW (shallow-scope): the scope covers only kShallowScopeBytes below
  // this frame, so OpenSSL's signing frames further down (ossl_ed25519_sign
  // keeps the expanded key az[64] there until it returns) are uncovered.
  // The window's failpoint fires on OpenSSL's allocations during the
  // signature (SignatureMark, key_heap.cc).
  crashdump::SecretScope secret(variant_ == Variant::kShallowScope
                                    ? kShallowScopeBytes
                                    : crashdump::kDefaultSecretStackDepth);
  KeyAllocScope alloc;
  if (SIGRACE_FAILPOINT(kFpSignBeforeDigest)) {
    return Injected("sign.before_digest");
  }
  Status st;
  {
    SignatureMark mark;
    st = jws::SignRaw(alg, pkey, input, sig);
  }
  if (st.ok() && SIGRACE_FAILPOINT(kFpSignAfterDigest)) {
    st = Injected("sign.after_digest");
  }
  // WORKLOAD MODEL (exposure_models.h): key bytes left on the stack below
  // this frame, as other providers' signing code leaves them; the scrub
  // below is what removes them. The key's cached DER (item 15) is live
  // until retirement, which waits for this signature.
  if (st.ok()) {
    st = exposure::SigningStackResidueModel(
        alg, pkey, key_cache != nullptr ? key_cache->data() : nullptr,
        key_cache != nullptr ? key_cache->size() : 0);
  }
  // OpenSSL wipes az[] itself, but its frames keep other key-derived
  // values (ge_scalarmult_base's signed radix-16 digits, SHA-512 message
  // schedules): scrub them while the scope still covers them.
  // ABLATION (scrub): the stack below this frame and the vector registers
  // keep what the signature left there when the scope ends.
  if (!Ablated(Protection::kScrub)) {
    if (alg == Alg::kRs256) {
      ScrubStackAndRegisters<kScrubRs256Bytes>();
    } else {
      ScrubStackAndRegisters<kScrubEdDsaBytes>();
    }
  }
  return st;
}

StatusOr<std::string> Signer::Impl::Sign(Alg alg, const Claims& claims) {
  if (alg != Alg::kRs256 && alg != Alg::kEdDsa) {
    return InvalidArgumentError("unknown alg");
  }
  if (!Provisioned(alg)) {
    return FailedPreconditionError(std::string("no ") + AlgName(alg) +
                                   " key in this signer");
  }
  if (SIGRACE_FAILPOINT(kFpSignBegin)) return Injected("sign.begin");
  auto payload = jws::PayloadJson(claims, static_cast<int64_t>(time(nullptr)));
  if (!payload.ok()) return payload.status();

  const int slot = ThreadSlot();
  KeyRecord* k = Acquire(alg, slot);
  struct Release {
    std::atomic<int64_t>* c;
    ~Release() { c->fetch_sub(1, std::memory_order_release); }
  } release{&k->inflight[slot].v};
  if (SIGRACE_FAILPOINT(kFpSignAfterAcquire)) {
    return Injected("sign.after_acquire");
  }
  std::string token;
  token.reserve(k->header_b64.size() + payload->size() * 4 / 3 + 350);
  token += k->header_b64;
  token.push_back('.');
  jws::Base64UrlEncodeAppend(reinterpret_cast<const uint8_t*>(payload->data()),
                             payload->size(), &token);
  std::string sig;
  sig.reserve(256);
  Status st = SignInScope(alg, k->pkey, k->key_cache.get(), token, &sig);
  // WORKLOAD MODEL (exposure_models.h): key bytes moved between covered
  // buffers outside any SecretScope, through vector registers that keep
  // them.
  exposure::SimdMoveOutsideScopeModel();
  if (!st.ok()) return st;
  tokens_[slot].v.fetch_add(1, std::memory_order_relaxed);
  token.push_back('.');
  jws::Base64UrlEncodeAppend(reinterpret_cast<const uint8_t*>(sig.data()),
                             sig.size(), &token);
  return token;
}

void Signer::Impl::Retire(KeyRecord* rec) {
  for (;;) {
    int64_t sum = 0;
    for (const PaddedCounter& c : rec->inflight) {
      sum += c.v.load(std::memory_order_seq_cst);
    }
    if (sum == 0) break;
    std::this_thread::yield();
  }
  EVP_PKEY_free(rec->pkey);
  rec->pkey = nullptr;
  rec->key_cache.reset();
  rec->retired.store(true, std::memory_order_release);
  retired_.fetch_add(1, std::memory_order_relaxed);
}

Status Signer::Impl::Rotate(Alg alg) {
  if (alg != Alg::kRs256 && alg != Alg::kEdDsa) {
    return InvalidArgumentError("unknown alg");
  }
  MutexLock l(&rotate_mu_);
  if (!Provisioned(alg)) {
    return FailedPreconditionError(std::string("no ") + AlgName(alg) +
                                   " key in this signer");
  }
  if (SIGRACE_FAILPOINT(kFpRotateBegin)) return Injected("rotate.begin");
  const uint64_t gen = next_generation_[AlgIndex(alg)]++;
  auto rec = Generate(alg, gen);
  if (!rec.ok()) return rec.status();
  KeyRecord* fresh = rec->get();
  AddRecord(std::move(*rec));
  if (on_key_added_) on_key_added_();
  SIGRACE_RETURN_IF_ERROR(Load(fresh));
  if (SIGRACE_FAILPOINT(kFpRotateAfterLoad)) {
    // The new key stays loaded but inactive; it is freed with the Signer.
    return Injected("rotate.after_load");
  }
  KeyRecord* old =
      active_[AlgIndex(alg)].exchange(fresh, std::memory_order_seq_cst);
  rotations_.fetch_add(1, std::memory_order_relaxed);
  // From here on the old key must be retired whatever a failpoint says, or
  // an error return would leave it loaded forever.
  const bool fail_after_swap = SIGRACE_FAILPOINT(kFpRotateAfterSwap);
  const bool fail_before_retire = SIGRACE_FAILPOINT(kFpRotateBeforeRetire);
  Retire(old);
  if (fail_after_swap) return Injected("rotate.after_swap");
  if (fail_before_retire) return Injected("rotate.before_retire");
  if (SIGRACE_FAILPOINT(kFpRotateAfterRetire)) {
    return Injected("rotate.after_retire");
  }
  return Status::Ok();
}

std::string Signer::Impl::PublicJwks() const {
  std::string out = "{\"keys\":[";
  MutexLock l(&records_mu_);
  bool first = true;
  for (const auto& rec : records_) {
    if (!first) out.push_back(',');
    first = false;
    out += rec->jwk;
  }
  out += "]}";
  return out;
}

StatusOr<std::string> Signer::Impl::ActiveKid(Alg alg) const {
  if (alg != Alg::kRs256 && alg != Alg::kEdDsa) {
    return InvalidArgumentError("unknown alg");
  }
  KeyRecord* k = active_[AlgIndex(alg)].load(std::memory_order_acquire);
  if (k == nullptr) {
    return FailedPreconditionError(std::string("no ") + AlgName(alg) +
                                   " key in this signer");
  }
  return k->kid;
}

std::vector<KeyInfo> Signer::Impl::Keys() const {
  std::vector<KeyInfo> out;
  MutexLock l(&records_mu_);
  for (const auto& rec : records_) {
    const bool active = active_[AlgIndex(rec->alg)].load(
                            std::memory_order_acquire) == rec.get();
    out.push_back(KeyInfo{rec->alg, rec->kid, rec->generation, active,
                          rec->retired.load(std::memory_order_acquire)});
  }
  return out;
}

SignerStats Signer::Impl::Stats() const {
  SignerStats s;
  s.vault_mlocked = vault_ != nullptr && vault_->mlocked();
  s.secure_heap_enabled = secure_heap_.enabled;
  s.tokens_signed = 0;
  for (const PaddedCounter& c : tokens_) {
    s.tokens_signed +=
        static_cast<uint64_t>(c.v.load(std::memory_order_relaxed));
  }
  s.rotations = rotations_.load(std::memory_order_relaxed);
  s.keys_retired = retired_.load(std::memory_order_relaxed);
  s.heap_chunks = GetKeyHeapStats().chunks;
  return s;
}

Status Signer::Impl::VisitKeys(
    const std::function<Status(const OracleKey&)>& visit,
    const std::function<bool(std::string_view kid)>& want) const {
  if (!visit) return InvalidArgumentError("TEST_VisitKeys: no visitor");
  std::vector<const KeyRecord*> recs;
  {
    MutexLock l(&records_mu_);
    for (const auto& r : records_) {
      if (!want || want(r->kid)) recs.push_back(r.get());
    }
  }
  for (const KeyRecord* rec : recs) {
    KeyAllocScope alloc;
    crashdump::SecretScope secret;
    auto page = ProtectedPages::Map(kWorkingBytes, "signer.oracle");
    if (!page.ok()) return page.status();
    size_t len = 0;
    auto pkey = UnwrapToKey(*rec, page->get(), &len);
    if (!pkey.ok()) return pkey.status();
    OracleKey key{rec->alg,
                  rec->kid,
                  rec->generation,
                  rec->retired.load(std::memory_order_acquire),
                  pkey->get(),
                  (*page)->data(),
                  len};
    SIGRACE_RETURN_IF_ERROR(visit(key));
  }
  return Status::Ok();
}

Signer::Signer(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Signer::~Signer() = default;

StatusOr<std::unique_ptr<Signer>> Signer::Create(const SignerOptions& opts) {
  if (VariantName(opts.variant) == nullptr) {
    return InvalidArgumentError("unknown variant value");
  }
  if (opts.algs.empty()) {
    return InvalidArgumentError("signer options name no algorithm");
  }
  for (Alg a : opts.algs) {
    if (a != Alg::kRs256 && a != Alg::kEdDsa) {
      return InvalidArgumentError("unknown alg value in signer options");
    }
  }
  auto impl = std::make_unique<Impl>(opts);
  SIGRACE_RETURN_IF_ERROR(impl->Init(opts));
  return std::unique_ptr<Signer>(new Signer(std::move(impl)));
}

StatusOr<std::string> Signer::Sign(Alg alg, const Claims& claims) {
  return impl_->Sign(alg, claims);
}
Status Signer::Rotate(Alg alg) { return impl_->Rotate(alg); }
std::string Signer::PublicJwks() const { return impl_->PublicJwks(); }
StatusOr<std::string> Signer::ActiveKid(Alg alg) const {
  return impl_->ActiveKid(alg);
}
std::vector<KeyInfo> Signer::Keys() const { return impl_->Keys(); }
SignerStats Signer::Stats() const { return impl_->Stats(); }
Variant Signer::variant() const { return impl_->variant(); }
Status Signer::TEST_VisitKeys(
    const std::function<Status(const OracleKey&)>& visit) const {
  return impl_->VisitKeys(visit, nullptr);
}
Status Signer::TEST_VisitKeys(
    const std::function<Status(const OracleKey&)>& visit,
    const std::function<bool(std::string_view kid)>& want) const {
  return impl_->VisitKeys(visit, want);
}

}  // namespace sigrace::signer
