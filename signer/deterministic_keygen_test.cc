// Deterministic key generation (TEST_key_seed, TEST_DeriveKey): the same
// (seed, alg, generation) makes the same key in any process, every other
// input makes another key, the signer's keys are exactly the derived ones,
// and the redirect serves only the thread that opened a stream.
// Keys are compared by their public halves or by digests, never printed.

#include "signer/deterministic_keygen.h"

#include <gtest/gtest.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <openssl/sha.h>
#include <openssl/x509.h>

#include <array>
#include <atomic>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include "signer/key_heap.h"
#include "signer/signer.h"

namespace sigrace::signer {
namespace {

// SHA-256 of the public key (SubjectPublicKeyInfo DER), via the PKCS#8 DER
// the derivation hands over.
std::string PublicDigest(const uint8_t* der, size_t len) {
  const uint8_t* p = der;
  UniquePkey k(d2i_AutoPrivateKey(nullptr, &p, static_cast<long>(len)));
  if (!k) return "";
  uint8_t* pub = nullptr;
  const int n = i2d_PUBKEY(k.get(), &pub);
  if (n <= 0) return "";
  std::string md(SHA256_DIGEST_LENGTH, '\0');
  SHA256(pub, static_cast<size_t>(n), reinterpret_cast<uint8_t*>(md.data()));
  OPENSSL_free(pub);
  return md;
}

std::string PrivateDigest(const uint8_t* der, size_t len) {
  std::string md(SHA256_DIGEST_LENGTH, '\0');
  SHA256(der, len, reinterpret_cast<uint8_t*>(md.data()));
  return md;
}

struct Derived {
  std::string pub;   // digest of the public key
  std::string priv;  // digest of the PKCS#8 DER
};

Derived Derive(uint64_t seed, Alg alg, uint64_t generation) {
  Derived d;
  Status st = TEST_DeriveKey({seed, alg, generation},
                             [&](const uint8_t* der, size_t len) {
                               d.pub = PublicDigest(der, len);
                               d.priv = PrivateDigest(der, len);
                               return Status::Ok();
                             });
  EXPECT_TRUE(st.ok()) << st.ToString();
  EXPECT_FALSE(d.pub.empty());
  return d;
}

class DeterministicKeygen : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!kDeterministicKeygenBuild) {
      GTEST_SKIP() << "a build without SIGRACE_ABLATION generates at random";
    }
  }
};

TEST_F(DeterministicKeygen, SameStreamMakesTheSameKey) {
  for (Alg alg : {Alg::kEdDsa, Alg::kRs256}) {
    const Derived a = Derive(42, alg, 3);
    const Derived b = Derive(42, alg, 3);
    EXPECT_TRUE(a.pub == b.pub) << AlgName(alg);
    EXPECT_TRUE(a.priv == b.priv) << AlgName(alg);
  }
}

TEST_F(DeterministicKeygen, EveryOtherInputMakesAnotherKey) {
  for (Alg alg : {Alg::kEdDsa, Alg::kRs256}) {
    const Derived base = Derive(42, alg, 3);
    EXPECT_FALSE(base.pub == Derive(42, alg, 4).pub) << AlgName(alg);
    EXPECT_FALSE(base.pub == Derive(43, alg, 3).pub) << AlgName(alg);
  }
}

// The signer's keys (Create's, each rotation's) are the derived ones, and
// each was announced, with its generation, before it existed.
TEST_F(DeterministicKeygen, SignerKeysAreTheDerivedKeys) {
  for (Alg alg : {Alg::kEdDsa, Alg::kRs256}) {
    SignerOptions o;
    o.algs = {alg};
    o.TEST_key_seed = 7;
    std::vector<KeygenAnnouncement> heard;
    std::vector<std::string> heard_kids;
    Signer* signer = nullptr;
    o.TEST_on_keygen_begin = [&](const KeygenAnnouncement& a) {
      heard.push_back(a);
      heard_kids.emplace_back(a.kid);
      // Announced before the key is added: the signer does not list it.
      if (signer != nullptr) {
        for (const KeyInfo& k : signer->Keys()) EXPECT_NE(k.kid, a.kid);
      }
    };
    auto s = Signer::Create(o);
    ASSERT_TRUE(s.ok()) << s.status().ToString();
    signer = s->get();
    ASSERT_TRUE((*s)->Rotate(alg).ok());
    ASSERT_TRUE((*s)->Rotate(alg).ok());
    ASSERT_EQ(heard.size(), 3u);
    std::vector<std::string> digests(3);
    ASSERT_TRUE((*s)->TEST_VisitKeys([&](const OracleKey& k) {
                      EXPECT_LT(k.generation, 3u);
                      EXPECT_EQ(std::string(k.kid), heard_kids[k.generation]);
                      digests[k.generation] =
                          PrivateDigest(k.pkcs8_der, k.pkcs8_len);
                      return Status::Ok();
                    })
                    .ok());
    for (uint64_t g = 0; g < 3; ++g) {
      EXPECT_EQ(heard[g].generation, g);
      EXPECT_EQ(heard[g].stream_generation, g);
      EXPECT_TRUE(heard[g].derivable);
      EXPECT_EQ(heard[g].alg, alg);
      EXPECT_TRUE(digests[g] == Derive(7, alg, g).priv)
          << AlgName(alg) << " generation " << g;
    }
  }
}

// Pool keys come from the stream of their pool index; a generation past
// the pool names the index it reuses.
TEST_F(DeterministicKeygen, PoolKeysComeFromTheirIndexStream) {
  SignerOptions o;
  o.algs = {Alg::kEdDsa};
  o.TEST_key_seed = 9;
  o.TEST_key_pool = 2;
  std::vector<uint64_t> streams;
  o.TEST_on_keygen_begin = [&](const KeygenAnnouncement& a) {
    streams.push_back(a.stream_generation);
  };
  auto s = Signer::Create(o);
  ASSERT_TRUE(s.ok()) << s.status().ToString();
  for (int i = 0; i < 3; ++i) ASSERT_TRUE((*s)->Rotate(Alg::kEdDsa).ok());
  EXPECT_EQ(streams, (std::vector<uint64_t>{0, 1, 0, 1}));
  std::vector<std::string> digests;
  ASSERT_TRUE((*s)->TEST_VisitKeys([&](const OracleKey& k) {
                    digests.push_back(PrivateDigest(k.pkcs8_der, k.pkcs8_len));
                    return Status::Ok();
                  })
                  .ok());
  ASSERT_EQ(digests.size(), 4u);
  EXPECT_TRUE(digests[0] == Derive(9, Alg::kEdDsa, 0).priv);
  EXPECT_TRUE(digests[3] == Derive(9, Alg::kEdDsa, 1).priv);
}

// Without a seed the announcement says so, and keys are random: two
// signers never share one.
TEST_F(DeterministicKeygen, WithoutASeedKeysAreRandom) {
  std::vector<std::string> kids;
  std::vector<bool> derivable;
  SignerOptions o;
  o.algs = {Alg::kEdDsa};
  o.TEST_on_keygen_begin = [&](const KeygenAnnouncement& a) {
    derivable.push_back(a.derivable);
  };
  std::vector<std::string> digests;
  for (int i = 0; i < 2; ++i) {
    auto s = Signer::Create(o);
    ASSERT_TRUE(s.ok());
    ASSERT_TRUE((*s)->TEST_VisitKeys([&](const OracleKey& k) {
                      digests.push_back(
                          PrivateDigest(k.pkcs8_der, k.pkcs8_len));
                      return Status::Ok();
                    })
                    .ok());
  }
  ASSERT_EQ(digests.size(), 2u);
  EXPECT_FALSE(digests[0] == digests[1]);
  EXPECT_EQ(derivable, (std::vector<bool>{false, false}));
}

// The redirect serves the thread that opened a stream; another thread, and
// the same thread once the scope ends, draw from the DRBG. The stream's
// state is one block of the key heap while the scope lives.
TEST_F(DeterministicKeygen, OnlyTheOpeningThreadDrawsFromTheStream) {
  using Block = std::array<uint8_t, 48>;
  auto stream_output = [](Block* out, Block* other, Block* after) {
    KeyAllocScope alloc;
    const uint64_t blocks = GetKeyHeapStats().live_blocks;
    {
      DeterministicRandScope scope({5, Alg::kEdDsa, 0});
      ASSERT_TRUE(scope.status().ok()) << scope.status().ToString();
      EXPECT_EQ(GetKeyHeapStats().live_blocks, blocks + 1);
      ASSERT_EQ(RAND_priv_bytes(out->data(), static_cast<int>(out->size())), 1);
      if (other != nullptr) {
        std::thread t([&] {
          ASSERT_EQ(
              RAND_priv_bytes(other->data(), static_cast<int>(other->size())),
              1);
        });
        t.join();
      }
    }
    EXPECT_EQ(GetKeyHeapStats().live_blocks, blocks);
    if (after != nullptr) {
      ASSERT_EQ(RAND_bytes(after->data(), static_cast<int>(after->size())), 1);
    }
  };
  Block a{}, b{}, other{}, after{};
  stream_output(&a, &other, &after);
  stream_output(&b, nullptr, nullptr);
  EXPECT_EQ(memcmp(a.data(), b.data(), a.size()), 0);
  EXPECT_NE(memcmp(a.data(), other.data(), a.size()), 0);
  EXPECT_NE(memcmp(a.data(), after.data(), a.size()), 0);
}

TEST_F(DeterministicKeygen, AStreamNeedsAKeyScopeAndDoesNotNest) {
  {
    DeterministicRandScope outside({1, Alg::kEdDsa, 0});
    EXPECT_EQ(outside.status().code(), StatusCode::kFailedPrecondition);
  }
  KeyAllocScope alloc;
  DeterministicRandScope first({1, Alg::kEdDsa, 0});
  ASSERT_TRUE(first.status().ok());
  DeterministicRandScope second({1, Alg::kEdDsa, 1});
  EXPECT_EQ(second.status().code(), StatusCode::kFailedPrecondition);
}

}  // namespace
}  // namespace sigrace::signer
