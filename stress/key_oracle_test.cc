// The driver's key oracle: an announced key never handed over is derived
// (and only then), its material is not derived twice, a derived key handed
// over later must be the same key, and an announced key it cannot derive is
// counted, not ignored. Keys are compared by digest inside the oracle and
// never printed here.

#include "stress/key_oracle.h"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <string>

#include "signer/deterministic_keygen.h"

namespace sigrace::stress {
namespace {

constexpr uint64_t kSeed = 11;

std::string Announcement(const std::string& kid, uint64_t stream,
                         bool derivable = true) {
  return nlohmann::json{{"kid", kid},
                        {"alg", "eddsa"},
                        {"generation", stream},
                        {"stream_generation", stream},
                        {"derivable", derivable}}
      .dump();
}

// A 'K' payload holding the key of stream (kSeed, EdDSA, stream).
std::string KeyMessage(const std::string& kid, uint64_t stream) {
  std::string p;
  p.push_back(static_cast<char>(kid.size() & 0xff));
  p.push_back(static_cast<char>(kid.size() >> 8));
  p += kid;
  Status st = signer::TEST_DeriveKey(
      {kSeed, signer::Alg::kEdDsa, stream},
      [&](const uint8_t* der, size_t len) {
        p.append(reinterpret_cast<const char*>(der), len);
        return Status::Ok();
      });
  EXPECT_TRUE(st.ok()) << st.ToString();
  return p;
}

class KeyOracleTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!signer::kDeterministicKeygenBuild) {
      GTEST_SKIP() << "a build without SIGRACE_ABLATION derives nothing";
    }
  }
};

TEST_F(KeyOracleTest, AnnouncedKeyNeverHandedOverIsDerived) {
  KeyOracle o(16, kSeed);
  std::string k0 = KeyMessage("eddsa-r-0", 0);
  ASSERT_TRUE(o.AddAnnouncement(Announcement("eddsa-r-0", 0)).ok());
  ASSERT_TRUE(o.AddKey(k0).ok());
  ASSERT_TRUE(o.AddAnnouncement(Announcement("eddsa-r-1", 1)).ok());
  ASSERT_TRUE(o.DeriveMissing().ok());
  EXPECT_EQ(o.received(), 1u);
  EXPECT_EQ(o.derived(), 1u);
  EXPECT_EQ(o.unknown(), 0u);
  EXPECT_EQ(o.size(), 2u);
  EXPECT_TRUE(o.IsDerived("eddsa-r-1"));
  EXPECT_FALSE(o.IsDerived("eddsa-r-0"));
  // Once derived, not again.
  ASSERT_TRUE(o.DeriveMissing().ok());
  EXPECT_EQ(o.derived(), 1u);
  // Handed over later, it is the same key: accepted, no new material.
  std::string k1 = KeyMessage("eddsa-r-1", 1);
  ASSERT_TRUE(o.AddKey(k1).ok());
  EXPECT_EQ(o.received(), 2u);
  EXPECT_EQ(o.size(), 2u);
  EXPECT_EQ(o.TakeNewReceived(), 2u);
  EXPECT_EQ(o.TakeNewReceived(), 0u);
  ASSERT_TRUE(o.scanner().ok());
  EXPECT_EQ((*o.scanner())->keys().size(), 2u);
}

TEST_F(KeyOracleTest, ADerivedKeyHandedOverDifferentlyIsAnError) {
  KeyOracle o(16, kSeed);
  ASSERT_TRUE(o.AddAnnouncement(Announcement("eddsa-r-1", 1)).ok());
  ASSERT_TRUE(o.DeriveMissing().ok());
  std::string other = KeyMessage("eddsa-r-1", 2);  // another stream's key
  const Status st = o.AddKey(other);
  EXPECT_EQ(st.code(), StatusCode::kDataLoss) << st.ToString();
  EXPECT_NE(st.message().find("eddsa-r-1"), std::string::npos);
}

TEST_F(KeyOracleTest, OnlyKeysNotHandedOverAreDerived) {
  KeyOracle o(16, kSeed);
  ASSERT_TRUE(o.AddAnnouncement(Announcement("eddsa-r-0", 0)).ok());
  std::string k0 = KeyMessage("eddsa-r-0", 0);
  ASSERT_TRUE(o.AddKey(k0).ok());
  // A pool key: another kid whose material is stream 0's, already held.
  ASSERT_TRUE(o.AddAnnouncement(Announcement("eddsa-r-2", 0)).ok());
  ASSERT_TRUE(o.DeriveMissing().ok());
  EXPECT_EQ(o.derived(), 0u);
  EXPECT_EQ(o.unknown(), 0u);
  EXPECT_EQ(o.size(), 1u);
}

TEST_F(KeyOracleTest, AnnouncedKeysItCannotDeriveAreCounted) {
  KeyOracle no_seed(16, std::nullopt);
  ASSERT_TRUE(no_seed.AddAnnouncement(Announcement("eddsa-r-1", 1)).ok());
  ASSERT_TRUE(no_seed.DeriveMissing().ok());
  EXPECT_EQ(no_seed.derived(), 0u);
  EXPECT_EQ(no_seed.unknown(), 1u);
  KeyOracle random_key(16, kSeed);
  ASSERT_TRUE(random_key
                  .AddAnnouncement(Announcement("eddsa-r-1", 1,
                                                /*derivable=*/false))
                  .ok());
  ASSERT_TRUE(random_key.DeriveMissing().ok());
  EXPECT_EQ(random_key.derived(), 0u);
  EXPECT_EQ(random_key.unknown(), 1u);
}

TEST_F(KeyOracleTest, MalformedAnnouncementsAreRefused) {
  KeyOracle o(16, kSeed);
  const std::string bad_alg =
      R"({"kid":"k","alg":"es256","stream_generation":0})";
  const std::string bad_stream =
      R"({"kid":"k","alg":"eddsa","stream_generation":-1})";
  for (const std::string& bad :
       {std::string(), std::string("[]"), std::string(R"({"kid":1})"), bad_alg,
        bad_stream}) {
    EXPECT_EQ(o.AddAnnouncement(bad).code(), StatusCode::kDataLoss) << bad;
  }
}

}  // namespace
}  // namespace sigrace::stress
