#include "signer/signer.h"

#include <gtest/gtest.h>
#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/param_build.h>
#include <openssl/pem.h>
#include <openssl/sha.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "base/failpoint.h"
#include "crashdump/registry/registry.h"
#include "signer/jws.h"

namespace sigrace::signer {
namespace {

using nlohmann::json;

struct PkeyDeleter {
  void operator()(EVP_PKEY* p) const { EVP_PKEY_free(p); }
};
using Pkey = std::unique_ptr<EVP_PKEY, PkeyDeleter>;

std::unique_ptr<Signer> MakeSigner(Variant v = Variant::kFixed) {
  SignerOptions o;
  o.variant = v;
  auto s = Signer::Create(o);
  EXPECT_TRUE(s.ok()) << s.status().ToString();
  return s.ok() ? std::move(*s) : nullptr;
}

// Builds a public key from one JWK (only public members are read).
Pkey KeyFromJwk(const json& jwk) {
  auto bytes = [&](const char* m) {
    auto d = jws::Base64UrlDecode(jwk.at(m).get<std::string>());
    return d.ok() ? *d : std::string();
  };
  if (jwk.at("kty") == "OKP") {
    const std::string x = bytes("x");
    return Pkey(EVP_PKEY_new_raw_public_key(
        EVP_PKEY_ED25519, nullptr, reinterpret_cast<const uint8_t*>(x.data()),
        x.size()));
  }
  const std::string n = bytes("n");
  const std::string e = bytes("e");
  BIGNUM* bn = BN_bin2bn(reinterpret_cast<const uint8_t*>(n.data()),
                         static_cast<int>(n.size()), nullptr);
  BIGNUM* be = BN_bin2bn(reinterpret_cast<const uint8_t*>(e.data()),
                         static_cast<int>(e.size()), nullptr);
  OSSL_PARAM_BLD* bld = OSSL_PARAM_BLD_new();
  OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_N, bn);
  OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_E, be);
  OSSL_PARAM* params = OSSL_PARAM_BLD_to_param(bld);
  EVP_PKEY_CTX* ctx = EVP_PKEY_CTX_new_from_name(nullptr, "RSA", nullptr);
  EVP_PKEY* pkey = nullptr;
  if (ctx == nullptr || EVP_PKEY_fromdata_init(ctx) != 1 ||
      EVP_PKEY_fromdata(ctx, &pkey, EVP_PKEY_PUBLIC_KEY, params) != 1) {
    pkey = nullptr;
  }
  EVP_PKEY_CTX_free(ctx);
  OSSL_PARAM_free(params);
  OSSL_PARAM_BLD_free(bld);
  BN_free(bn);
  BN_free(be);
  return Pkey(pkey);
}

// Test data; a throwing copy ends the test, as it should.
struct Parsed {  // NOLINT(bugprone-exception-escape)
  json header;
  json payload;
  std::string input;
  std::string sig;
};

bool ParseToken(const std::string& token, Parsed* out) {
  const size_t a = token.find('.');
  const size_t b = token.find('.', a + 1);
  if (a == std::string::npos || b == std::string::npos) return false;
  auto h = jws::Base64UrlDecode(token.substr(0, a));
  auto p = jws::Base64UrlDecode(token.substr(a + 1, b - a - 1));
  auto s = jws::Base64UrlDecode(token.substr(b + 1));
  if (!h.ok() || !p.ok() || !s.ok()) return false;
  out->header = json::parse(*h, nullptr, false);
  out->payload = json::parse(*p, nullptr, false);
  out->input = token.substr(0, b);
  out->sig = *s;
  return !out->header.is_discarded() && !out->payload.is_discarded();
}

// Verifies `token` against the JWK of its kid in `jwks`.
Status VerifyToken(const std::string& token, const std::string& jwks_text) {
  Parsed t;
  if (!ParseToken(token, &t)) return InvalidArgumentError("malformed token");
  const json jwks = json::parse(jwks_text, nullptr, false);
  if (jwks.is_discarded()) return InvalidArgumentError("malformed JWKS");
  for (const json& k : jwks.at("keys")) {
    if (k.at("kid") != t.header.at("kid")) continue;
    if (k.at("alg") != t.header.at("alg")) {
      return InvalidArgumentError("alg mismatch");
    }
    Pkey pub = KeyFromJwk(k);
    if (!pub) return InternalError("JWK does not build a key");
    const Alg alg = k.at("alg") == "RS256" ? Alg::kRs256 : Alg::kEdDsa;
    return jws::VerifyRaw(alg, pub.get(), t.input, t.sig);
  }
  return NotFoundError("kid not in JWKS");
}

TEST(Signer, RoundTripEachAlgorithm) {
  auto s = MakeSigner();
  ASSERT_NE(s, nullptr);
  for (Alg alg : {Alg::kRs256, Alg::kEdDsa}) {
    Claims c;
    c.extra_json = R"({"sub":"alice"})";
    auto tok = s->Sign(alg, c);
    ASSERT_TRUE(tok.ok()) << tok.status().ToString();
    Parsed t;
    ASSERT_TRUE(ParseToken(*tok, &t));
    EXPECT_EQ(t.header.at("alg"), AlgName(alg));
    EXPECT_EQ(t.header.at("typ"), "JWT");
    EXPECT_EQ(t.header.at("kid"), *s->ActiveKid(alg));
    EXPECT_EQ(t.payload.at("iss"), "sigrace");
    EXPECT_EQ(t.payload.at("aud"), "sigrace-verifier");
    EXPECT_EQ(t.payload.at("sub"), "alice");
    EXPECT_EQ(
        t.payload.at("exp").get<int64_t>() - t.payload.at("iat").get<int64_t>(),
        300);
    EXPECT_EQ(t.sig.size(), alg == Alg::kRs256 ? 256u : 64u);
    EXPECT_TRUE(VerifyToken(*tok, s->PublicJwks()).ok());
    // The pair: a token with one flipped signature bit does not verify.
    std::string bad = *tok;
    bad[bad.size() - 3] = bad[bad.size() - 3] == 'A' ? 'B' : 'A';
    EXPECT_FALSE(VerifyToken(bad, s->PublicJwks()).ok());
  }
  EXPECT_EQ(s->Stats().tokens_signed, 2u);
  EXPECT_TRUE(s->Stats().secure_heap_enabled);
}

TEST(Signer, JwksHasOnlyPublicMembers) {
  auto s = MakeSigner();
  ASSERT_NE(s, nullptr);
  const json jwks = json::parse(s->PublicJwks());
  ASSERT_EQ(jwks.at("keys").size(), 2u);
  for (const json& k : jwks.at("keys")) {
    for (const char* priv : {"d", "p", "q", "dp", "dq", "qi"}) {
      EXPECT_FALSE(k.contains(priv)) << priv;
    }
    EXPECT_EQ(k.at("use"), "sig");
  }
}

// --- verification by JWT implementations nobody here wrote ---------------

bool HavePyJwt() {
  return access("/usr/bin/python3", X_OK) == 0 &&
         std::system("/usr/bin/python3 -c 'import jwt' >/dev/null 2>&1") == 0;
}

bool HaveOpensslCli() {
  return std::system("openssl version >/dev/null 2>&1") == 0;
}

std::string TempDir() {
  char tmpl[] = "/tmp/sigrace-signer-test-XXXXXX";
  const char* d = mkdtemp(tmpl);
  return d != nullptr ? d : "";
}

void WriteFile(const std::string& path, const std::string& data) {
  std::ofstream(path, std::ios::binary) << data;
}

int RunShell(const std::string& cmd) {
  const int rc = std::system(cmd.c_str());
  return WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
}

constexpr char kPyVerify[] = R"PY(
import json, sys, jwt
token = open(sys.argv[1]).read().strip()
jwks = json.load(open(sys.argv[2]))
kid = jwt.get_unverified_header(token)["kid"]
jwk = [k for k in jwks["keys"] if k["kid"] == kid][0]
key = jwt.PyJWK.from_dict(jwk).key
claims = jwt.decode(token, key, algorithms=[jwk["alg"]],
                    audience="sigrace-verifier", issuer="sigrace")
sys.exit(0 if claims.get("sub") == "bob" else 3)
)PY";

int PyJwtVerify(const std::string& dir, const std::string& token,
                const std::string& jwks) {
  WriteFile(dir + "/verify.py", kPyVerify);
  WriteFile(dir + "/token", token);
  WriteFile(dir + "/jwks.json", jwks);
  return RunShell("/usr/bin/python3 " + dir + "/verify.py " + dir + "/token " +
                  dir + "/jwks.json 2>/dev/null");
}

int OpensslVerify(const std::string& dir, Alg alg, const std::string& token,
                  const std::string& jwks_text) {
  Parsed t;
  if (!ParseToken(token, &t)) return -1;
  const json jwks = json::parse(jwks_text);
  Pkey pub;
  for (const json& k : jwks.at("keys")) {
    if (k.at("kid") == t.header.at("kid")) pub = KeyFromJwk(k);
  }
  if (!pub) return -1;
  FILE* f = fopen((dir + "/pub.pem").c_str(), "w");
  if (f == nullptr) return -1;
  PEM_write_PUBKEY(f, pub.get());
  fclose(f);
  WriteFile(dir + "/input", t.input);
  WriteFile(dir + "/sig", t.sig);
  const std::string q = " >/dev/null 2>&1";
  if (alg == Alg::kRs256) {
    return RunShell("openssl dgst -sha256 -verify " + dir +
                    "/pub.pem -signature " + dir + "/sig " + dir + "/input" +
                    q);
  }
  return RunShell("openssl pkeyutl -verify -pubin -inkey " + dir +
                  "/pub.pem -rawin -in " + dir + "/input -sigfile " + dir +
                  "/sig" + q);
}

TEST(Signer, ExternalVerification) {
  const bool py = HavePyJwt();
  const bool cli = HaveOpensslCli();
  if (!py && !cli) {
    GTEST_SKIP() << "no external JWT verifier: install python3-jwt (PyJWT "
                    "for /usr/bin/python3) or the openssl command line";
  }
  auto s = MakeSigner();
  ASSERT_NE(s, nullptr);
  const std::string dir = TempDir();
  ASSERT_FALSE(dir.empty());
  for (Alg alg : {Alg::kRs256, Alg::kEdDsa}) {
    Claims c;
    c.extra_json = R"({"sub":"bob"})";
    auto tok = s->Sign(alg, c);
    ASSERT_TRUE(tok.ok());
    std::string bad = *tok;
    bad[bad.size() - 3] = bad[bad.size() - 3] == 'A' ? 'B' : 'A';
    const std::string jwks = s->PublicJwks();
    if (py) {
      EXPECT_EQ(PyJwtVerify(dir, *tok, jwks), 0) << "PyJWT, " << AlgName(alg);
      EXPECT_NE(PyJwtVerify(dir, bad, jwks), 0) << "PyJWT accepted a "
                                                << "tampered token";
    }
    if (cli) {
      EXPECT_EQ(OpensslVerify(dir, alg, *tok, jwks), 0)
          << "openssl CLI, " << AlgName(alg);
      EXPECT_NE(OpensslVerify(dir, alg, bad, jwks), 0)
          << "openssl CLI accepted a tampered signature";
    }
  }
  RunShell("rm -rf " + dir);
}

// --- rotation -------------------------------------------------------------

// Rotation under concurrent signing: a signature that starts after the r-th
// rotation of its alg has completed must use a key of generation >= r, and
// every token verifies against the JWK set.
TEST(Signer, RotationUnderConcurrentSigning) {
  auto s = MakeSigner();
  ASSERT_NE(s, nullptr);
  constexpr int kRotations = 3;
  std::atomic<int> done[2] = {0, 0};
  std::atomic<bool> stop{false};
  struct Rec {
    Alg alg;
    int before;
    std::string token;
  };
  constexpr int kSigners = 2;
  std::vector<std::vector<Rec>> recs(kSigners);
  std::vector<std::thread> signers;
  for (int i = 0; i < kSigners; ++i) {
    signers.emplace_back([&, i] {
      failpoint::SetThreadName("signer-" + std::to_string(i));
      int n = 0;
      while (!stop.load() || n < 20) {
        const Alg alg = (n + i) % 2 == 0 ? Alg::kEdDsa : Alg::kRs256;
        const int before = done[alg == Alg::kRs256 ? 0 : 1].load();
        auto tok = s->Sign(alg, Claims{});
        ASSERT_TRUE(tok.ok()) << tok.status().ToString();
        recs[i].push_back(Rec{alg, before, *tok});
        ++n;
      }
    });
  }
  for (int r = 1; r <= kRotations; ++r) {
    for (Alg alg : {Alg::kRs256, Alg::kEdDsa}) {
      const std::string old_kid = *s->ActiveKid(alg);
      ASSERT_TRUE(s->Rotate(alg).ok());
      done[alg == Alg::kRs256 ? 0 : 1].store(r);
      for (const KeyInfo& k : s->Keys()) {
        if (k.kid == old_kid) {
          EXPECT_TRUE(k.retired) << "Rotate returned before retiring";
        }
      }
    }
  }
  stop.store(true);
  for (auto& t : signers) t.join();

  std::map<std::string, uint64_t> generation;
  for (const KeyInfo& k : s->Keys()) generation[k.kid] = k.generation;
  EXPECT_EQ(generation.size(), 2u * (kRotations + 1));
  const std::string jwks = s->PublicJwks();
  size_t total = 0;
  for (const auto& per : recs) {
    for (const Rec& r : per) {
      Parsed t;
      ASSERT_TRUE(ParseToken(r.token, &t));
      const std::string kid = t.header.at("kid");
      ASSERT_EQ(generation.count(kid), 1u);
      EXPECT_GE(generation[kid], static_cast<uint64_t>(r.before))
          << "signed with a key retired before the signature started";
      EXPECT_TRUE(VerifyToken(r.token, jwks).ok());
      ++total;
    }
  }
  EXPECT_GE(total, static_cast<size_t>(kSigners * 20));
  EXPECT_EQ(s->Stats().rotations, 2u * kRotations);
  EXPECT_EQ(s->Stats().keys_retired, 2u * kRotations);
}

// Retirement waits for an in-flight signature: a signer paused right after
// acquiring the active key holds retirement off however long it pauses.
TEST(Signer, RetirementWaitsForInFlightSignature) {
  auto s = MakeSigner();
  ASSERT_NE(s, nullptr);
  const std::string old_kid = *s->ActiveKid(Alg::kEdDsa);
  ASSERT_TRUE(failpoint::Configure("sign.after_acquire=pause@1").ok());
  std::string token;
  std::thread signer([&] {
    auto t = s->Sign(Alg::kEdDsa, Claims{});
    ASSERT_TRUE(t.ok()) << t.status().ToString();
    token = *t;
  });
  while (failpoint::Paused("sign.after_acquire") == 0) {
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  std::thread rotator([&] { ASSERT_TRUE(s->Rotate(Alg::kEdDsa).ok()); });
  // Wait for the swap; the rotator then waits on the paused signature.
  while (*s->ActiveKid(Alg::kEdDsa) == old_kid) {
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  for (const KeyInfo& k : s->Keys()) {
    if (k.kid == old_kid) {
      EXPECT_FALSE(k.retired);
      EXPECT_FALSE(k.active);
    }
  }
  ASSERT_TRUE(failpoint::Resume("sign.after_acquire").ok());
  signer.join();
  rotator.join();
  failpoint::ClearAll();
  for (const KeyInfo& k : s->Keys()) {
    if (k.kid == old_kid) EXPECT_TRUE(k.retired);
  }
  Parsed t;
  ASSERT_TRUE(ParseToken(token, &t));
  EXPECT_EQ(t.header.at("kid"), old_kid);
  EXPECT_TRUE(VerifyToken(token, s->PublicJwks()).ok());
}

// Rotation frees what it built: many rotations do not grow the key heap
// (freed blocks are wiped and reused), so a long stress run cannot exhaust
// it or the registry's slots.
// TEST_key_pool: rotations take their key material from the pool in turn
// (generation g and g + N share it), each with a new kid, and still sign;
// TEST_VisitKeys with a filter unwraps only the kids it accepts.
TEST(Signer, KeyPoolCyclesMaterialUnderNewKids) {
  for (Alg alg : {Alg::kEdDsa, Alg::kRs256}) {
    SignerOptions o;
    o.algs = {alg};
    o.TEST_key_pool = 2;
    auto s = Signer::Create(o);
    ASSERT_TRUE(s.ok()) << s.status().ToString();
    for (int i = 0; i < 4; ++i) {
      ASSERT_TRUE((*s)->Rotate(alg).ok());
      ASSERT_TRUE((*s)->Sign(alg, Claims{}).ok());
    }
    // Digests only: the DER is key material and must not be printed.
    std::vector<std::string> digest;
    std::vector<std::string> kids;
    ASSERT_TRUE((*s)->TEST_VisitKeys([&](const OracleKey& k) {
                      uint8_t md[SHA256_DIGEST_LENGTH];
                      SHA256(k.pkcs8_der, k.pkcs8_len, md);
                      digest.emplace_back(reinterpret_cast<char*>(md),
                                          sizeof(md));
                      kids.emplace_back(k.kid);
                      return Status::Ok();
                    })
                    .ok());
    ASSERT_EQ(digest.size(), 5u);  // Create's key and four rotations
    EXPECT_EQ(std::set<std::string>(kids.begin(), kids.end()).size(), 5u);
    for (size_t g = 0; g + 2 < digest.size(); ++g) {
      EXPECT_TRUE(digest[g] == digest[g + 2]) << "generation " << g;
      EXPECT_FALSE(digest[g] == digest[g + 1]) << "generation " << g;
    }
    int visited = 0;
    ASSERT_TRUE(
        (*s)->TEST_VisitKeys(
                [&](const OracleKey& k) {
                  EXPECT_EQ(std::string(k.kid), kids.back());
                  ++visited;
                  return Status::Ok();
                },
                [&](std::string_view kid) { return kid == kids.back(); })
            .ok());
    EXPECT_EQ(visited, 1);
  }
}

TEST(Signer, RotationReusesTheKeyHeap) {
  SignerOptions o;
  o.algs = {Alg::kEdDsa};
  auto s = Signer::Create(o);
  ASSERT_TRUE(s.ok());
  for (int i = 0; i < 10; ++i) ASSERT_TRUE((*s)->Rotate(Alg::kEdDsa).ok());
  const uint64_t chunks = (*s)->Stats().heap_chunks;
  const size_t regions = crashdump::TEST_PublishedCount();
  for (int i = 0; i < 200; ++i) {
    ASSERT_TRUE((*s)->Rotate(Alg::kEdDsa).ok());
    ASSERT_TRUE((*s)->Sign(Alg::kEdDsa, Claims{}).ok());
  }
  EXPECT_LE((*s)->Stats().heap_chunks, chunks + 1);
  EXPECT_EQ(crashdump::TEST_PublishedCount(), regions);
  EXPECT_EQ((*s)->Stats().keys_retired, 210u);
}

// --- the oracle -------------------------------------------------------------

TEST(Signer, OracleVisitsEveryKeyOfTheRun) {
  auto s = MakeSigner();
  ASSERT_NE(s, nullptr);
  ASSERT_TRUE(s->Rotate(Alg::kEdDsa).ok());
  ASSERT_TRUE(s->Rotate(Alg::kRs256).ok());
  const json jwks = json::parse(s->PublicJwks());
  int visited = 0;
  int retired = 0;
  Status st = s->TEST_VisitKeys([&](const OracleKey& k) {
    ++visited;
    if (k.retired) ++retired;
    // The DER parses to the same key as the borrowed EVP_PKEY, and its
    // public half is the JWK published under the kid.
    const uint8_t* p = k.pkcs8_der;
    Pkey from_der(
        d2i_AutoPrivateKey(nullptr, &p, static_cast<long>(k.pkcs8_len)));
    EXPECT_TRUE(from_der != nullptr);
    EXPECT_EQ(EVP_PKEY_eq(from_der.get(), k.pkey), 1);
    for (const json& j : jwks.at("keys")) {
      if (j.at("kid") == std::string(k.kid)) {
        Pkey pub = KeyFromJwk(j);
        EXPECT_EQ(EVP_PKEY_eq(pub.get(), k.pkey), 1) << k.kid;
      }
    }
    return Status::Ok();
  });
  EXPECT_TRUE(st.ok()) << st.ToString();
  EXPECT_EQ(visited, 4);
  EXPECT_EQ(retired, 2);
  // A visitor's error stops the visit and comes back.
  int calls = 0;
  st = s->TEST_VisitKeys([&](const OracleKey&) {
    ++calls;
    return InternalError("stop");
  });
  EXPECT_EQ(st.code(), StatusCode::kInternal);
  EXPECT_EQ(calls, 1);
}

// --- bad input ------------------------------------------------------------

TEST(Signer, BadInputsAreStatusErrors) {
  EXPECT_EQ(ParseAlg("es256").status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(ParseAlg("").status().code(), StatusCode::kInvalidArgument);
  EXPECT_TRUE(ParseAlg("RS256").ok());
  EXPECT_TRUE(ParseAlg("EdDSA").ok());
  EXPECT_EQ(ParseVariant("Fixed").status().code(), StatusCode::kNotFound);
  EXPECT_EQ(ParseVariant("").status().code(), StatusCode::kNotFound);
  EXPECT_EQ(VariantName(static_cast<Variant>(99)), nullptr);

  SignerOptions o;
  o.algs.clear();
  EXPECT_EQ(Signer::Create(o).status().code(), StatusCode::kInvalidArgument);
  o.algs = {static_cast<Alg>(7)};
  EXPECT_EQ(Signer::Create(o).status().code(), StatusCode::kInvalidArgument);
  o.algs = {Alg::kEdDsa};
  o.variant = static_cast<Variant>(42);
  EXPECT_EQ(Signer::Create(o).status().code(), StatusCode::kInvalidArgument);
  o.variant = Variant::kFixed;
  o.secure_heap_bytes = 3000;
  EXPECT_EQ(Signer::Create(o).status().code(), StatusCode::kInvalidArgument);
  o.secure_heap_bytes = size_t{1} << 20;

  auto s = Signer::Create(o);  // EdDSA only
  ASSERT_TRUE(s.ok());
  EXPECT_EQ((*s)->Sign(Alg::kRs256, Claims{}).status().code(),
            StatusCode::kFailedPrecondition);
  EXPECT_EQ((*s)->Rotate(Alg::kRs256).code(), StatusCode::kFailedPrecondition);
  EXPECT_EQ((*s)->ActiveKid(Alg::kRs256).status().code(),
            StatusCode::kFailedPrecondition);
  EXPECT_EQ((*s)->Sign(static_cast<Alg>(5), Claims{}).status().code(),
            StatusCode::kInvalidArgument);
  EXPECT_EQ((*s)->Rotate(static_cast<Alg>(5)).code(),
            StatusCode::kInvalidArgument);
  Claims bad;
  bad.extra_json = "{\"exp\":0}";
  EXPECT_EQ((*s)->Sign(Alg::kEdDsa, bad).status().code(),
            StatusCode::kInvalidArgument);
  bad.extra_json = "not json";
  EXPECT_EQ((*s)->Sign(Alg::kEdDsa, bad).status().code(),
            StatusCode::kInvalidArgument);
  EXPECT_EQ((*s)->TEST_VisitKeys(nullptr).code(), StatusCode::kInvalidArgument);
  EXPECT_TRUE((*s)->Sign(Alg::kEdDsa, Claims{}).ok());
}

// An error injected at any step of load, keygen, rotation or signing comes
// back as a status, and the signer still signs afterwards.
TEST(Signer, InjectedErrorAtEveryStepIsAStatus) {
  auto s = MakeSigner();
  ASSERT_NE(s, nullptr);
  const char* rotate_steps[] = {
      "rotate.begin",
      "keygen.after_generate",
      "keygen.after_encode",
      "keygen.after_wrap",
      "load.before_unwrap",
      "window.publish_late",
      "load.after_unwrap",
      "load.after_move",
      "load.after_parse",
      "window.heap_montgomery",
      "window.global_key_scope",
      "load.after_warmup",
      "window.unpublish_early",
      "load.after_wipe",
      "rotate.after_load",
      "rotate.after_swap",
      "rotate.before_retire",
      "rotate.after_retire",
  };
  for (const char* fp : rotate_steps) {
    ASSERT_TRUE(failpoint::Configure(std::string(fp) + "=error@1").ok()) << fp;
    EXPECT_FALSE(s->Rotate(Alg::kEdDsa).ok()) << fp;
    failpoint::ClearAll();
    EXPECT_TRUE(s->Sign(Alg::kEdDsa, Claims{}).ok()) << "after " << fp;
  }
  const char* sign_steps[] = {"sign.begin", "sign.after_acquire",
                              "sign.before_digest", "sign.after_digest"};
  for (const char* fp : sign_steps) {
    ASSERT_TRUE(failpoint::Configure(std::string(fp) + "=error@1").ok()) << fp;
    EXPECT_FALSE(s->Sign(Alg::kRs256, Claims{}).ok()) << fp;
    failpoint::ClearAll();
    EXPECT_TRUE(s->Sign(Alg::kRs256, Claims{}).ok()) << "after " << fp;
  }
  EXPECT_TRUE(s->Rotate(Alg::kEdDsa).ok());
  const std::string jwks = s->PublicJwks();
  auto tok = s->Sign(Alg::kEdDsa, Claims{});
  ASSERT_TRUE(tok.ok());
  EXPECT_TRUE(VerifyToken(*tok, jwks).ok());
}

TEST(Signer, VariantCatalogue) {
  const auto all = ListVariants();
  ASSERT_GE(all.size(), 5u);  // fixed and at least four race variants
  EXPECT_STREQ(all[0].name, "fixed");
  std::vector<std::string> names = failpoint::ListNames();
  for (const VariantInfo& v : all) {
    auto parsed = ParseVariant(v.name);
    ASSERT_TRUE(parsed.ok()) << v.name;
    EXPECT_EQ(*parsed, v.variant);
    EXPECT_STREQ(VariantName(v.variant), v.name);
    EXPECT_GT(strlen(v.window), 0u);
    if (v.variant == Variant::kFixed) continue;
    EXPECT_NE(std::find(names.begin(), names.end(), v.failpoint), names.end())
        << v.failpoint << " is not a defined failpoint";
    EXPECT_GE(v.hit, 1);
  }
}

}  // namespace
}  // namespace sigrace::signer
