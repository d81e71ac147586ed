// The legacy credential scanner on real key material (an RSA-2048 and an
// Ed25519 key made here, their forms from key_forms): every shape it knows
// is found where it was planted and nothing is found in the same buffer
// without it; a buffer holding only OpenSSL's in-memory forms of the same
// keys (little-endian limbs, the Montgomery copies of p and q, the Ed25519
// expanded key) is clean to it, and the oracle finds every one of them.
// Buffers are wiped after use; no assertion prints key bytes.

#include "crashdump/oracle/legacy_scanner.h"

#include <gtest/gtest.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>

#include <cstring>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "crashdump/oracle/key_forms.h"
#include "crashdump/oracle/scanner.h"

namespace sigrace::crashdump {
namespace {

constexpr size_t kBuf = 16384;
constexpr size_t kAt = 1000;

class LegacyScannerTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    EVP_PKEY* rsa = EVP_PKEY_Q_keygen(nullptr, nullptr, "RSA", size_t{2048});
    EVP_PKEY* ed = EVP_PKEY_Q_keygen(nullptr, nullptr, "ED25519");
    ASSERT_NE(rsa, nullptr);
    ASSERT_NE(ed, nullptr);
    auto r = KeyForms::FromPkey(rsa, "legacy-rsa");
    auto e = KeyForms::FromPkey(ed, "legacy-ed");
    EVP_PKEY_free(rsa);
    EVP_PKEY_free(ed);
    ASSERT_TRUE(r.ok()) << r.status().ToString();
    ASSERT_TRUE(e.ok()) << e.status().ToString();
    rsa_ = new KeyForms(std::move(r).value());
    ed_ = new KeyForms(std::move(e).value());
  }
  static void TearDownTestSuite() {
    delete rsa_;
    delete ed_;
    rsa_ = ed_ = nullptr;
  }

  static const Form& FormOf(const KeyForms& k, const char* name) {
    const int i = k.FindForm(name);
    EXPECT_GE(i, 0) << name;
    return k.forms()[i < 0 ? 0 : static_cast<size_t>(i)];
  }

  // A filler that holds no shape: repeating bytes that are neither a DER
  // SEQUENCE tag nor text.
  static std::vector<uint8_t> Filler() {
    std::vector<uint8_t> b(kBuf);
    for (size_t i = 0; i < b.size(); ++i) {
      b[i] = static_cast<uint8_t>(0x80 + (i * 13) % 0x70);
    }
    return b;
  }

  static std::vector<LegacyFinding> ScanOf(const std::vector<uint8_t>& b) {
    return LegacyScan(b.data(), b.size());
  }

  static void Wipe(std::vector<uint8_t>* b) {
    OPENSSL_cleanse(b->data(), b->size());
  }

  // Plants `form` at kAt, expects one finding of `shape` there; then the
  // same buffer with it wiped back to filler: nothing.
  static void PlantedFoundAbsentClean(const Form& form, const char* shape) {
    std::vector<uint8_t> b = Filler();
    ASSERT_LT(kAt + form.size(), b.size());
    std::memcpy(b.data() + kAt, form.data(), form.size());
    const std::vector<LegacyFinding> found = ScanOf(b);
    Wipe(&b);
    ASSERT_EQ(found.size(), 1u) << shape;
    EXPECT_EQ(found[0].shape, shape);
    EXPECT_EQ(found[0].offset, kAt) << shape;
    EXPECT_GE(found[0].length + 2, form.size()) << shape;
    EXPECT_TRUE(ScanOf(Filler()).empty()) << shape;
  }

  static KeyForms* rsa_;
  static KeyForms* ed_;
};
KeyForms* LegacyScannerTest::rsa_ = nullptr;
KeyForms* LegacyScannerTest::ed_ = nullptr;

TEST_F(LegacyScannerTest, FindsPem) {
  PlantedFoundAbsentClean(FormOf(*rsa_, "rsa.pkcs8.pem"), "pem");
  PlantedFoundAbsentClean(FormOf(*rsa_, "rsa.pkcs1.pem"), "pem");
  PlantedFoundAbsentClean(FormOf(*ed_, "ed25519.pkcs8.pem"), "pem");
}

TEST_F(LegacyScannerTest, FindsPkcs1Der) {
  PlantedFoundAbsentClean(FormOf(*rsa_, "rsa.pkcs1.der"), "pkcs1-der");
}

TEST_F(LegacyScannerTest, FindsPkcs8Der) {
  PlantedFoundAbsentClean(FormOf(*rsa_, "rsa.pkcs8.der"), "pkcs8-der(rsa)");
  PlantedFoundAbsentClean(FormOf(*ed_, "ed25519.pkcs8.der"),
                          "pkcs8-der(ed25519)");
}

TEST_F(LegacyScannerTest, FindsPrivateJwk) {
  const Form& d = FormOf(*ed_, "ed25519.seed.b64url");
  const std::string head = "{\"kty\":\"OKP\",\"crv\":\"Ed25519\",\"d\":\"";
  std::vector<uint8_t> b = Filler();
  std::memcpy(b.data() + kAt, head.data(), head.size());
  std::memcpy(b.data() + kAt + head.size(), d.data(), d.size());
  b[kAt + head.size() + d.size()] = '"';
  b[kAt + head.size() + d.size() + 1] = '}';
  const std::vector<LegacyFinding> found = ScanOf(b);
  // The same object without "kty": not a JWK to it.
  std::memcpy(b.data() + kAt + 2, "ktx", 3);
  const std::vector<LegacyFinding> no_kty = ScanOf(b);
  Wipe(&b);
  ASSERT_EQ(found.size(), 1u);
  EXPECT_EQ(found[0].shape, "jwk");
  EXPECT_EQ(found[0].offset, kAt + head.size());
  EXPECT_EQ(found[0].length, d.size());
  EXPECT_TRUE(no_kty.empty());
}

// What a real OpenSSL 3 process holds: limbs, limbs again (the Montgomery
// copies of p and q), and the expanded Ed25519 key. The legacy scanner
// finds none; the oracle, over the same bytes, finds every one.
TEST_F(LegacyScannerTest, MissesInMemoryFormsTheOracleFinds) {
  std::vector<uint8_t> b = Filler();
  size_t at = 64;
  size_t planted = 0;
  for (const char* name :
       {"rsa.d.le64", "rsa.p.le64", "rsa.q.le64", "rsa.p.le64", "rsa.q.le64",
        "rsa.dP.le64", "rsa.dQ.le64", "rsa.qInv.le64"}) {
    const Form& f = FormOf(*rsa_, name);
    ASSERT_LT(at + f.size() + 64, b.size());
    std::memcpy(b.data() + at, f.data(), f.size());
    at += f.size() + 64;
    ++planted;
  }
  const Form& expanded = FormOf(*ed_, "ed25519.expanded");
  ASSERT_LT(at + expanded.size(), b.size());
  std::memcpy(b.data() + at, expanded.data(), expanded.size());
  ++planted;

  const std::vector<LegacyFinding> legacy = ScanOf(b);
  std::vector<KeyForms> keys = {*rsa_, *ed_};
  auto oracle = Scanner::Create(std::move(keys), ScanOptions{});
  ASSERT_TRUE(oracle.ok()) << oracle.status().ToString();
  size_t leaks = 0;
  for (const Finding& f : (*oracle)->Scan(b.data(), b.size())) {
    leaks += IsLeak(f.kind) ? 1 : 0;
  }
  Wipe(&b);
  EXPECT_TRUE(legacy.empty()) << legacy.size() << " shape(s), first "
                              << (legacy.empty() ? "" : legacy[0].shape);
  EXPECT_GE(leaks, planted);
}

}  // namespace
}  // namespace sigrace::crashdump
