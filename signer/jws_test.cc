#include "signer/jws.h"

#include <gtest/gtest.h>
#include <openssl/evp.h>

#include <string>

namespace sigrace::signer::jws {
namespace {

TEST(Base64Url, Rfc4648Vectors) {
  // RFC 4648 section 10, with the URL-safe alphabet and no padding.
  EXPECT_EQ(Base64UrlEncode(""), "");
  EXPECT_EQ(Base64UrlEncode("f"), "Zg");
  EXPECT_EQ(Base64UrlEncode("fo"), "Zm8");
  EXPECT_EQ(Base64UrlEncode("foo"), "Zm9v");
  EXPECT_EQ(Base64UrlEncode("foob"), "Zm9vYg");
  EXPECT_EQ(Base64UrlEncode("fooba"), "Zm9vYmE");
  EXPECT_EQ(Base64UrlEncode("foobar"), "Zm9vYmFy");
  const uint8_t hi[] = {0xfb, 0xff, 0xbf};
  EXPECT_EQ(Base64UrlEncode(hi, sizeof(hi)), "-_-_");
}

TEST(Base64Url, AppendKeepsWhatIsThere) {
  std::string out = "hdr.";
  const std::string foobar = "foobar";
  Base64UrlEncodeAppend(reinterpret_cast<const uint8_t*>(foobar.data()), 5,
                        &out);
  EXPECT_EQ(out, "hdr.Zm9vYmE");
  Base64UrlEncodeAppend(reinterpret_cast<const uint8_t*>(foobar.data()), 0,
                        &out);
  EXPECT_EQ(out, "hdr.Zm9vYmE");
}

TEST(Base64Url, RoundTripAllByteValues) {
  std::string all;
  for (int i = 0; i < 256; ++i) all.push_back(static_cast<char>(i));
  for (size_t n = 0; n <= all.size(); n += 37) {
    const std::string in = all.substr(0, n);
    auto out = Base64UrlDecode(Base64UrlEncode(in));
    ASSERT_TRUE(out.ok());
    EXPECT_TRUE(*out == in) << "length " << n;
  }
}

TEST(Base64Url, RejectsMalformedInput) {
  EXPECT_FALSE(Base64UrlDecode("Zg==").ok());   // padding
  EXPECT_FALSE(Base64UrlDecode("Zm9v+").ok());  // standard alphabet
  EXPECT_FALSE(Base64UrlDecode("Zm9v/w").ok());
  EXPECT_FALSE(Base64UrlDecode("Z").ok());   // 1 mod 4
  EXPECT_FALSE(Base64UrlDecode("Zh").ok());  // non-canonical bits
  EXPECT_FALSE(Base64UrlDecode(std::string("Zm\0v", 4)).ok());
}

TEST(Payload, RegisteredClaimsAndMerge) {
  Claims c;
  c.iss = "issuer";
  c.aud = "audience";
  c.iat = 1000;
  c.ttl_seconds = 60;
  c.extra_json = R"({"sub":"alice","n":1})";
  auto p = PayloadJson(c, 5);
  ASSERT_TRUE(p.ok()) << p.status().ToString();
  EXPECT_EQ(*p, R"({"aud":"audience","exp":1060,"iat":1000,"iss":"issuer",)"
                R"("n":1,"sub":"alice"})");
  c.iat = 0;
  c.extra_json.clear();
  auto q = PayloadJson(c, 5);
  ASSERT_TRUE(q.ok());
  EXPECT_EQ(*q, R"({"aud":"audience","exp":65,"iat":5,"iss":"issuer"})");
}

TEST(Payload, EscapesWhatTheFastPathCannotTake) {
  Claims c;
  c.iss = "a\"b";
  c.aud = "caf\xc3\xa9";
  c.iat = 7;
  c.ttl_seconds = 1;
  auto p = PayloadJson(c, 0);
  ASSERT_TRUE(p.ok());
  EXPECT_EQ(*p,
            "{\"aud\":\"caf\xc3\xa9\",\"exp\":8,\"iat\":7,\"iss\":\"a\\\"b\"}");
}

TEST(Payload, BadClaimsAreErrors) {
  Claims c;
  c.extra_json = "{";
  EXPECT_EQ(PayloadJson(c, 1).status().code(), StatusCode::kInvalidArgument);
  c.extra_json = "[1,2]";
  EXPECT_EQ(PayloadJson(c, 1).status().code(), StatusCode::kInvalidArgument);
  for (const char* reserved : {"iss", "aud", "iat", "exp"}) {
    c.extra_json = std::string("{\"") + reserved + "\":1}";
    EXPECT_EQ(PayloadJson(c, 1).status().code(), StatusCode::kInvalidArgument)
        << reserved;
  }
  c.extra_json.clear();
  c.ttl_seconds = 0;
  EXPECT_FALSE(PayloadJson(c, 1).ok());
  c.ttl_seconds = INT64_MAX;
  c.iat = 10;
  EXPECT_FALSE(PayloadJson(c, 1).ok());
  c.ttl_seconds = 10;
  c.iat = -1;
  EXPECT_FALSE(PayloadJson(c, 1).ok());
  c.iat = 0;
  c.iss = "\xff\xfe";
  EXPECT_EQ(PayloadJson(c, 1).status().code(), StatusCode::kInvalidArgument);
}

TEST(Header, CarriesAlgTypKid) {
  EXPECT_EQ(HeaderJson(Alg::kRs256, "k1"),
            R"({"alg":"RS256","kid":"k1","typ":"JWT"})");
  EXPECT_EQ(HeaderJson(Alg::kEdDsa, "k2"),
            R"({"alg":"EdDSA","kid":"k2","typ":"JWT"})");
}

TEST(SignRaw, WrongKeyOrNullIsAnError) {
  std::string sig;
  EXPECT_FALSE(SignRaw(Alg::kRs256, nullptr, "x", &sig).ok());
  EXPECT_FALSE(VerifyRaw(Alg::kRs256, nullptr, "x", "y").ok());
  EXPECT_FALSE(CheckKeyMatches(Alg::kEdDsa, nullptr).ok());
  EVP_PKEY* ed = EVP_PKEY_Q_keygen(nullptr, nullptr, "ED25519");
  ASSERT_NE(ed, nullptr);
  EXPECT_FALSE(CheckKeyMatches(Alg::kRs256, ed).ok());
  EXPECT_TRUE(CheckKeyMatches(Alg::kEdDsa, ed).ok());
  EXPECT_FALSE(PublicJwk(Alg::kRs256, ed, "k").ok());
  ASSERT_TRUE(SignRaw(Alg::kEdDsa, ed, "msg", &sig).ok());
  EXPECT_TRUE(VerifyRaw(Alg::kEdDsa, ed, "msg", sig).ok());
  EXPECT_FALSE(VerifyRaw(Alg::kEdDsa, ed, "msh", sig).ok());
  EVP_PKEY_free(ed);
}

}  // namespace
}  // namespace sigrace::signer::jws
