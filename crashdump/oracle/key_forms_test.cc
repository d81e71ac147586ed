// Key forms: each form is checked against an independent derivation or a
// round trip through OpenSSL. Key bytes are only ever compared with bool
// results (memcmp), never handed to a printing assertion.

#include "crashdump/oracle/key_forms.h"

#include <gtest/gtest.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>

#include <cstring>
#include <memory>
#include <set>
#include <string>
#include <vector>

namespace sigrace::crashdump {
namespace {

struct PkeyFree {
  void operator()(EVP_PKEY* p) const { EVP_PKEY_free(p); }
};
using PkeyPtr = std::unique_ptr<EVP_PKEY, PkeyFree>;

PkeyPtr GenRsa(int bits) { return PkeyPtr(EVP_RSA_gen(bits)); }
PkeyPtr GenEd25519() {
  return PkeyPtr(EVP_PKEY_Q_keygen(nullptr, nullptr, "ED25519"));
}
PkeyPtr GenP256() {
  return PkeyPtr(EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", "P-256"));
}

const Form& Get(const KeyForms& k, const std::string& name) {
  const int i = k.FindForm(name);
  EXPECT_GE(i, 0) << "missing form " << name;
  return k.forms()[i < 0 ? 0 : i];
}

std::vector<uint8_t> Bytes(const Form& f) {
  return std::vector<uint8_t>(f.data(), f.data() + f.size());
}

bool SameBytes(const Form& f, const std::vector<uint8_t>& v) {
  return f.size() == v.size() && std::memcmp(f.data(), v.data(), v.size()) == 0;
}

std::vector<uint8_t> BnBe(const EVP_PKEY* pkey, const char* param) {
  BIGNUM* bn = nullptr;
  EXPECT_EQ(EVP_PKEY_get_bn_param(pkey, param, &bn), 1);
  std::vector<uint8_t> out(BN_num_bytes(bn));
  BN_bn2bin(bn, out.data());
  BN_clear_free(bn);
  return out;
}

std::vector<uint8_t> Pem(const EVP_PKEY* pkey) {
  BIO* bio = BIO_new(BIO_s_mem());
  EXPECT_EQ(PEM_write_bio_PrivateKey(bio, pkey, nullptr, nullptr, 0, nullptr,
                                     nullptr),
            1);
  char* p = nullptr;
  const long n = BIO_get_mem_data(bio, &p);
  std::vector<uint8_t> out(p, p + n);
  BIO_free(bio);
  return out;
}

TEST(KeyForms, RsaNumericFormsMatchIndependentDerivation) {
  PkeyPtr pkey = GenRsa(2048);
  ASSERT_TRUE(pkey);
  StatusOr<KeyForms> k = KeyForms::FromPkey(pkey.get(), "test");
  ASSERT_TRUE(k.ok()) << k.status().ToString();
  EXPECT_EQ(k->key_type(), "RSA-2048");
  const struct {
    const char* param;
    const char* name;
  } comps[] = {{OSSL_PKEY_PARAM_RSA_D, "d"},
               {OSSL_PKEY_PARAM_RSA_FACTOR1, "p"},
               {OSSL_PKEY_PARAM_RSA_FACTOR2, "q"},
               {OSSL_PKEY_PARAM_RSA_EXPONENT1, "dP"},
               {OSSL_PKEY_PARAM_RSA_EXPONENT2, "dQ"},
               {OSSL_PKEY_PARAM_RSA_COEFFICIENT1, "qInv"},
               {OSSL_PKEY_PARAM_RSA_N, "n"}};
  for (const auto& c : comps) {
    SCOPED_TRACE(c.name);
    const std::vector<uint8_t> be = BnBe(pkey.get(), c.param);
    const std::string base = std::string("rsa.") + c.name;
    EXPECT_TRUE(SameBytes(Get(*k, base + ".be"), be));
    // le64: BN_bn2lebinpad to a multiple of 8 is the limb array.
    BIGNUM* bn = nullptr;
    ASSERT_EQ(EVP_PKEY_get_bn_param(pkey.get(), c.param, &bn), 1);
    std::vector<uint8_t> le((be.size() + 7) / 8 * 8);
    ASSERT_GT(BN_bn2lebinpad(bn, le.data(), static_cast<int>(le.size())), 0);
    // The limbs themselves: BN_ULONG words in memory are exactly le.
    EXPECT_TRUE(SameBytes(Get(*k, base + ".le64"), le));
    EXPECT_EQ(Get(*k, base + ".le64").size() % 8, 0u);
    // w32: words of the big-endian number, most significant first, each
    // stored little-endian.
    std::vector<uint8_t> bepad(be.size() % 4 ? 4 - be.size() % 4 : 0, 0);
    bepad.insert(bepad.end(), be.begin(), be.end());
    std::vector<uint8_t> w32;
    for (size_t i = 0; i < bepad.size(); i += 4) {
      uint32_t word = (uint32_t{bepad[i]} << 24) |
                      (uint32_t{bepad[i + 1]} << 16) |
                      (uint32_t{bepad[i + 2]} << 8) | bepad[i + 3];
      uint8_t mem[4];
      std::memcpy(mem, &word, 4);  // host order: x86-64 little-endian
      w32.insert(w32.end(), mem, mem + 4);
    }
    EXPECT_TRUE(SameBytes(Get(*k, base + ".w32"), w32));
    BN_clear_free(bn);
    const bool is_private = std::string(c.name) != "n";
    EXPECT_EQ(Get(*k, base + ".be").is_private(), is_private);
  }
}

TEST(KeyForms, RsaDerAndPemRoundTrip) {
  PkeyPtr pkey = GenRsa(2048);
  StatusOr<KeyForms> k = KeyForms::FromPkey(pkey.get(), "test");
  ASSERT_TRUE(k.ok());
  for (const char* der_name : {"rsa.pkcs1.der", "rsa.pkcs8.der"}) {
    SCOPED_TRACE(der_name);
    const Form& der = Get(*k, der_name);
    const unsigned char* p = der.data();
    PkeyPtr back(
        d2i_AutoPrivateKey(nullptr, &p, static_cast<long>(der.size())));
    ASSERT_TRUE(back);
    EXPECT_EQ(EVP_PKEY_eq(back.get(), pkey.get()), 1);
    // Tags and lengths are structure; the whole is mostly secret.
    EXPECT_EQ(der.byte_class(0), ByteClass::kStructure);
    EXPECT_GT(der.SecretBytesIn(0, der.size()), 128u * 5 + 250);
    EXPECT_GE(der.PublicBytesIn(0, der.size()), 256u);
    // base64 at three alignments decodes to the DER from byte K.
    for (int a = 0; a < 3; ++a) {
      const Form& b64 = Get(
          *k, std::string(der_name).substr(0, 9) + ".b64@" + std::to_string(a));
      std::vector<uint8_t> dec(b64.size());
      const int n =
          EVP_DecodeBlock(dec.data(), b64.data(), static_cast<int>(b64.size()));
      ASSERT_GT(n, 0);
      const size_t want = der.size() - a;
      EXPECT_TRUE(std::memcmp(dec.data(), der.data() + a, want) == 0);
    }
  }
  // Our PEM text is byte for byte what OpenSSL writes.
  EXPECT_TRUE(SameBytes(Get(*k, "rsa.pkcs8.pem"), Pem(pkey.get())));
  // The PEM parses back as the same key.
  StatusOr<KeyForms> again =
      KeyForms::FromBytes(Get(*k, "rsa.pkcs1.pem").data(),
                          Get(*k, "rsa.pkcs1.pem").size(), "pkcs1");
  ASSERT_TRUE(again.ok()) << again.status().ToString();
  EXPECT_TRUE(
      SameBytes(Get(*again, "rsa.p.le64"), Bytes(Get(*k, "rsa.p.le64"))));
  // The PEM armour line is structure, the body secret where it encodes d.
  const Form& pem = Get(*k, "rsa.pkcs8.pem");
  EXPECT_EQ(pem.SecretBytesIn(0, 27), 0u);
  EXPECT_EQ(pem.PartIn(0, 27), "");
  // Hex: two characters per DER byte, both cases.
  const Form& hex = Get(*k, "rsa.pkcs8.hex");
  const Form& HEX = Get(*k, "rsa.pkcs8.HEX");
  EXPECT_EQ(hex.size(), 2 * Get(*k, "rsa.pkcs8.der").size());
  bool all_lower = true, all_upper = true;
  for (size_t i = 0; i < hex.size(); ++i) {
    all_lower &= std::strchr("0123456789abcdef", hex.data()[i]) != nullptr;
    all_upper &= std::strchr("0123456789ABCDEF", HEX.data()[i]) != nullptr;
  }
  EXPECT_TRUE(all_lower);
  EXPECT_TRUE(all_upper);
}

TEST(KeyForms, TextFormsHaveUtf16Twins) {
  PkeyPtr pkey = GenRsa(2048);
  StatusOr<KeyForms> k = KeyForms::FromPkey(pkey.get(), "test");
  ASSERT_TRUE(k.ok());
  size_t texts = 0;
  for (const Form& f : k->forms()) {
    if (f.encoding() != FormEncoding::kAscii) continue;
    ++texts;
    const Form& u = Get(*k, f.name() + ".u16");
    EXPECT_EQ(u.encoding(), FormEncoding::kUtf16le);
    ASSERT_EQ(u.size(), 2 * f.size());
    bool ok = true;
    for (size_t i = 0; i < f.size(); ++i) {
      ok &= u.data()[2 * i] == f.data()[i] && u.data()[2 * i + 1] == 0;
    }
    EXPECT_TRUE(ok) << f.name();
    EXPECT_EQ(u.SecretBytesIn(0, u.size()), 2 * f.SecretBytesIn(0, f.size()));
  }
  // pem x2, b64 x6, hex x4, b64url x6.
  EXPECT_EQ(texts, 18u);
  std::set<std::string> names;
  for (const FormInfo& row : k->Table()) {
    EXPECT_TRUE(names.insert(row.name).second) << "duplicate " << row.name;
  }
}

TEST(KeyForms, JwkMembersAreBase64url) {
  PkeyPtr pkey = GenRsa(2048);
  StatusOr<KeyForms> k = KeyForms::FromPkey(pkey.get(), "test");
  ASSERT_TRUE(k.ok());
  const std::vector<uint8_t> p = BnBe(pkey.get(), OSSL_PKEY_PARAM_RSA_FACTOR1);
  const Form& f = Get(*k, "rsa.p.b64url");
  std::string std_b64(f.data(), f.data() + f.size());
  for (char& c : std_b64) {
    if (c == '-') c = '+';
    if (c == '_') c = '/';
  }
  while (std_b64.size() % 4) std_b64 += '=';
  std::vector<uint8_t> dec(std_b64.size());
  ASSERT_GT(EVP_DecodeBlock(dec.data(),
                            reinterpret_cast<const uint8_t*>(std_b64.data()),
                            static_cast<int>(std_b64.size())),
            0);
  EXPECT_TRUE(std::memcmp(dec.data(), p.data(), p.size()) == 0);
  EXPECT_EQ(std::memchr(f.data(), '=', f.size()), nullptr);
}

TEST(KeyForms, Ed25519Expansion) {
  PkeyPtr pkey = GenEd25519();
  ASSERT_TRUE(pkey);
  StatusOr<KeyForms> k = KeyForms::FromPkey(pkey.get(), "ed");
  ASSERT_TRUE(k.ok()) << k.status().ToString();
  EXPECT_EQ(k->key_type(), "Ed25519");
  uint8_t seed[32];
  size_t len = 32;
  ASSERT_EQ(EVP_PKEY_get_raw_private_key(pkey.get(), seed, &len), 1);
  EXPECT_TRUE(SameBytes(Get(*k, "ed25519.seed"),
                        std::vector<uint8_t>(seed, seed + 32)));
  uint8_t h[64];
  ASSERT_EQ(EVP_Digest(seed, 32, h, nullptr, EVP_sha512(), nullptr), 1);
  EXPECT_TRUE(
      SameBytes(Get(*k, "ed25519.sha512"), std::vector<uint8_t>(h, h + 64)));
  EXPECT_TRUE(
      SameBytes(Get(*k, "ed25519.scalar"), std::vector<uint8_t>(h, h + 32)));
  EXPECT_TRUE(SameBytes(Get(*k, "ed25519.prefix"),
                        std::vector<uint8_t>(h + 32, h + 64)));
  const Form& clamped = Get(*k, "ed25519.scalar.clamped");
  EXPECT_EQ(clamped.data()[0] & 7, 0);
  EXPECT_EQ(clamped.data()[31] & 0xc0, 0x40);
  EXPECT_TRUE(std::memcmp(clamped.data() + 1, h + 1, 30) == 0);
  EXPECT_FALSE(Get(*k, "ed25519.pub").is_private());
  const Form& sp = Get(*k, "ed25519.seed_pub");
  EXPECT_EQ(sp.SecretBytesIn(0, 64), 32u);
  EXPECT_EQ(sp.PublicBytesIn(0, 64), 32u);
  EXPECT_EQ(sp.PartIn(40, 64), "pub");
  EXPECT_EQ(sp.PartIn(20, 64), "seed");
  const Form& der = Get(*k, "ed25519.pkcs8.der");
  EXPECT_EQ(der.SecretBytesIn(0, der.size()), 32u);
}

TEST(KeyForms, P256Scalar) {
  PkeyPtr pkey = GenP256();
  ASSERT_TRUE(pkey);
  StatusOr<KeyForms> k = KeyForms::FromPkey(pkey.get(), "ec");
  ASSERT_TRUE(k.ok()) << k.status().ToString();
  EXPECT_EQ(k->key_type(), "EC-prime256v1");
  EXPECT_EQ(Get(*k, "ec.d.be").size(), 32u);
  const Form& sec1 = Get(*k, "ec.sec1.der");
  EXPECT_EQ(sec1.SecretBytesIn(0, sec1.size()), 32u);
  EXPECT_GE(sec1.PublicBytesIn(0, sec1.size()), 64u);
  EXPECT_FALSE(Get(*k, "ec.pub").is_private());
}

TEST(KeyForms, ParsesPemAndDerFiles) {
  PkeyPtr pkey = GenEd25519();
  const std::vector<uint8_t> pem = Pem(pkey.get());
  StatusOr<KeyForms> a = KeyForms::FromBytes(pem.data(), pem.size(), "pem");
  ASSERT_TRUE(a.ok()) << a.status().ToString();
  const Form& der = Get(*a, "ed25519.pkcs8.der");
  StatusOr<KeyForms> b = KeyForms::FromBytes(der.data(), der.size(), "der");
  ASSERT_TRUE(b.ok()) << b.status().ToString();
  EXPECT_TRUE(
      SameBytes(Get(*b, "ed25519.seed"), Bytes(Get(*a, "ed25519.seed"))));
}

TEST(KeyForms, RejectsWhatIsNotAPrivateKey) {
  const std::string junk = "not a key at all, just text\n";
  StatusOr<KeyForms> a = KeyForms::FromBytes(
      reinterpret_cast<const uint8_t*>(junk.data()), junk.size(), "junk");
  ASSERT_FALSE(a.ok());
  EXPECT_EQ(a.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(a.status().message().find("does not parse"), std::string::npos);

  // A public key is not enough to scan for a private one.
  PkeyPtr pkey = GenRsa(2048);
  BIO* bio = BIO_new(BIO_s_mem());
  ASSERT_EQ(PEM_write_bio_PUBKEY(bio, pkey.get()), 1);
  char* p = nullptr;
  const long n = BIO_get_mem_data(bio, &p);
  StatusOr<KeyForms> pub =
      KeyForms::FromBytes(reinterpret_cast<const uint8_t*>(p), n, "pub");
  BIO_free(bio);
  EXPECT_FALSE(pub.ok());

  // Truncated PEM.
  const std::vector<uint8_t> pem = Pem(pkey.get());
  StatusOr<KeyForms> cut =
      KeyForms::FromBytes(pem.data(), pem.size() / 2, "cut");
  EXPECT_FALSE(cut.ok());

  StatusOr<KeyForms> missing = KeyForms::FromFile("/nonexistent/key.pem");
  ASSERT_FALSE(missing.ok());
  EXPECT_NE(missing.status().message().find("/nonexistent/key.pem"),
            std::string::npos);
}

}  // namespace
}  // namespace sigrace::crashdump
