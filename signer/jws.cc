#include "signer/jws.h"

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/evp.h>

#include <memory>
#include <nlohmann/json.hpp>

namespace sigrace::signer::jws {
namespace {

using nlohmann::json;

constexpr char kAlphabet[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

int DecodeChar(char c) {
  if (c >= 'A' && c <= 'Z') return c - 'A';
  if (c >= 'a' && c <= 'z') return c - 'a' + 26;
  if (c >= '0' && c <= '9') return c - '0' + 52;
  if (c == '-') return 62;
  if (c == '_') return 63;
  return -1;
}

struct MdCtxDeleter {
  void operator()(EVP_MD_CTX* c) const { EVP_MD_CTX_free(c); }
};
using MdCtx = std::unique_ptr<EVP_MD_CTX, MdCtxDeleter>;
struct BnDeleter {
  void operator()(BIGNUM* b) const { BN_free(b); }
};
using Bn = std::unique_ptr<BIGNUM, BnDeleter>;

const EVP_MD* DigestFor(Alg alg) {
  return alg == Alg::kRs256 ? EVP_sha256() : nullptr;
}

// JSON text of a value; nlohmann throws on invalid UTF-8, which a caller's
// iss or aud may carry. Nothing here lets an exception escape.
StatusOr<std::string> Dump(const json& j) {
  try {
    return j.dump();
  } catch (const json::exception&) {
    return InvalidArgumentError("claims: a string is not valid UTF-8");
  }
}

// Printable ASCII with nothing JSON must escape.
bool PlainJsonString(std::string_view s) {
  for (char c : s) {
    if (c < 0x20 || c > 0x7e || c == '"' || c == '\\') return false;
  }
  return true;
}

}  // namespace

std::string Base64UrlEncode(const uint8_t* data, size_t len) {
  std::string out;
  Base64UrlEncodeAppend(data, len, &out);
  return out;
}

void Base64UrlEncodeAppend(const uint8_t* data, size_t len, std::string* out) {
  // Sized once and written through a pointer: the signing hot path encodes
  // the payload and the signature of every token.
  const size_t at = out->size();
  out->resize(at + len / 3 * 4 + (len % 3 == 0 ? 0 : len % 3 + 1));
  char* o = out->data() + at;
  size_t i = 0;
  for (; i + 3 <= len; i += 3) {
    const uint32_t v =
        (uint32_t{data[i]} << 16) | (uint32_t{data[i + 1]} << 8) | data[i + 2];
    o[0] = kAlphabet[(v >> 18) & 63];
    o[1] = kAlphabet[(v >> 12) & 63];
    o[2] = kAlphabet[(v >> 6) & 63];
    o[3] = kAlphabet[v & 63];
    o += 4;
  }
  if (len - i == 1) {
    const uint32_t v = uint32_t{data[i]} << 16;
    o[0] = kAlphabet[(v >> 18) & 63];
    o[1] = kAlphabet[(v >> 12) & 63];
  } else if (len - i == 2) {
    const uint32_t v = (uint32_t{data[i]} << 16) | (uint32_t{data[i + 1]} << 8);
    o[0] = kAlphabet[(v >> 18) & 63];
    o[1] = kAlphabet[(v >> 12) & 63];
    o[2] = kAlphabet[(v >> 6) & 63];
  }
}

StatusOr<std::string> Base64UrlDecode(std::string_view s) {
  if (s.size() % 4 == 1) {
    return InvalidArgumentError("base64url: impossible length");
  }
  std::string out;
  out.reserve(s.size() * 3 / 4);
  uint32_t acc = 0;
  int bits = 0;
  for (char c : s) {
    const int v = DecodeChar(c);
    if (v < 0) return InvalidArgumentError("base64url: invalid character");
    acc = (acc << 6) | static_cast<uint32_t>(v);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out.push_back(static_cast<char>((acc >> bits) & 0xff));
    }
  }
  // Leftover bits must be zero (canonical encoding).
  if (bits > 0 && (acc & ((1u << bits) - 1)) != 0) {
    return InvalidArgumentError("base64url: non-canonical trailing bits");
  }
  return out;
}

std::string HeaderJson(Alg alg, std::string_view kid) {
  json h = {{"alg", AlgName(alg)}, {"typ", "JWT"}, {"kid", std::string(kid)}};
  auto s = Dump(h);
  return s.ok() ? *s : std::string();
}

StatusOr<std::string> PayloadJson(const Claims& claims, int64_t now) {
  if (claims.ttl_seconds <= 0) {
    return InvalidArgumentError("claims: ttl_seconds must be positive");
  }
  if (claims.iat < 0) return InvalidArgumentError("claims: iat is negative");
  const int64_t iat = claims.iat != 0 ? claims.iat : now;
  if (iat > INT64_MAX - claims.ttl_seconds) {
    return InvalidArgumentError("claims: iat + ttl overflows");
  }
  // The common token (no extra claims, plain ASCII iss and aud) skips the
  // JSON library: this is on the signing hot path. Same bytes as the
  // library's sorted dump.
  if (claims.extra_json.empty() && PlainJsonString(claims.iss) &&
      PlainJsonString(claims.aud)) {
    std::string out;
    out.reserve(64 + claims.iss.size() + claims.aud.size());
    out += "{\"aud\":\"";
    out += claims.aud;
    out += "\",\"exp\":";
    out += std::to_string(iat + claims.ttl_seconds);
    out += ",\"iat\":";
    out += std::to_string(iat);
    out += ",\"iss\":\"";
    out += claims.iss;
    out += "\"}";
    return out;
  }
  json p = json::object();
  if (!claims.extra_json.empty()) {
    json extra = json::parse(claims.extra_json, nullptr, false);
    if (extra.is_discarded()) {
      return InvalidArgumentError("claims: extra claims are not valid JSON");
    }
    if (!extra.is_object()) {
      return InvalidArgumentError("claims: extra claims must be a JSON object");
    }
    for (const char* reserved : {"iss", "aud", "iat", "exp"}) {
      if (extra.contains(reserved)) {
        return InvalidArgumentError(std::string("claims: extra claims may not "
                                                "set '") +
                                    reserved + "'");
      }
    }
    p = std::move(extra);
  }
  p["iss"] = claims.iss;
  p["aud"] = claims.aud;
  p["iat"] = iat;
  p["exp"] = iat + claims.ttl_seconds;
  return Dump(p);
}

std::string SigningInput(std::string_view header_json,
                         std::string_view payload_json) {
  std::string out = Base64UrlEncode(header_json);
  out.push_back('.');
  out += Base64UrlEncode(payload_json);
  return out;
}

Status CheckKeyMatches(Alg alg, const EVP_PKEY* pkey) {
  if (pkey == nullptr) return InvalidArgumentError("no key");
  if (alg == Alg::kRs256) {
    if (!EVP_PKEY_is_a(pkey, "RSA")) {
      return InvalidArgumentError("RS256 needs an RSA key");
    }
    if (EVP_PKEY_get_bits(pkey) != 2048) {
      return InvalidArgumentError("RS256 key must be RSA-2048");
    }
    return Status::Ok();
  }
  if (!EVP_PKEY_is_a(pkey, "ED25519")) {
    return InvalidArgumentError("EdDSA needs an Ed25519 key");
  }
  return Status::Ok();
}

Status SignRaw(Alg alg, EVP_PKEY* pkey, std::string_view input,
               std::string* sig) {
  if (pkey == nullptr || sig == nullptr) {
    return InvalidArgumentError("sign: no key or no output");
  }
  MdCtx ctx(EVP_MD_CTX_new());
  if (!ctx || EVP_DigestSignInit(ctx.get(), nullptr, DigestFor(alg), nullptr,
                                 pkey) != 1) {
    return InternalError("sign: EVP_DigestSignInit failed");
  }
  const auto* in = reinterpret_cast<const uint8_t*>(input.data());
  // The key's largest signature (RSA: the modulus size; Ed25519: 64), not
  // a size-only EVP_DigestSign call: one provider round trip less.
  const int max = EVP_PKEY_get_size(pkey);
  if (max <= 0) return InternalError("sign: key has no signature size");
  size_t len = static_cast<size_t>(max);
  const size_t at = sig->size();
  sig->resize(at + len);
  if (EVP_DigestSign(ctx.get(), reinterpret_cast<uint8_t*>(sig->data() + at),
                     &len, in, input.size()) != 1) {
    sig->resize(at);
    return InternalError("sign: EVP_DigestSign failed");
  }
  sig->resize(at + len);
  return Status::Ok();
}

Status VerifyRaw(Alg alg, EVP_PKEY* pkey, std::string_view input,
                 std::string_view sig) {
  if (pkey == nullptr) return InvalidArgumentError("verify: no key");
  MdCtx ctx(EVP_MD_CTX_new());
  if (!ctx || EVP_DigestVerifyInit(ctx.get(), nullptr, DigestFor(alg), nullptr,
                                   pkey) != 1) {
    return InternalError("verify: EVP_DigestVerifyInit failed");
  }
  if (EVP_DigestVerify(
          ctx.get(), reinterpret_cast<const uint8_t*>(sig.data()), sig.size(),
          reinterpret_cast<const uint8_t*>(input.data()), input.size()) != 1) {
    return InvalidArgumentError("verify: bad signature");
  }
  return Status::Ok();
}

StatusOr<std::string> PublicJwk(Alg alg, const EVP_PKEY* pkey,
                                std::string_view kid) {
  SIGRACE_RETURN_IF_ERROR(CheckKeyMatches(alg, pkey));
  json k;
  if (alg == Alg::kRs256) {
    BIGNUM* n_raw = nullptr;
    BIGNUM* e_raw = nullptr;
    if (EVP_PKEY_get_bn_param(pkey, OSSL_PKEY_PARAM_RSA_N, &n_raw) != 1 ||
        EVP_PKEY_get_bn_param(pkey, OSSL_PKEY_PARAM_RSA_E, &e_raw) != 1) {
      BN_free(n_raw);
      BN_free(e_raw);
      return InternalError("jwk: cannot read the RSA public key");
    }
    Bn n(n_raw);
    Bn e(e_raw);
    std::string nb(static_cast<size_t>(BN_num_bytes(n.get())), '\0');
    std::string eb(static_cast<size_t>(BN_num_bytes(e.get())), '\0');
    BN_bn2bin(n.get(), reinterpret_cast<uint8_t*>(nb.data()));
    BN_bn2bin(e.get(), reinterpret_cast<uint8_t*>(eb.data()));
    k = {
        {"kty", "RSA"}, {"n", Base64UrlEncode(nb)}, {"e", Base64UrlEncode(eb)}};
  } else {
    uint8_t pub[32];
    size_t len = sizeof(pub);
    if (EVP_PKEY_get_raw_public_key(pkey, pub, &len) != 1 || len != 32) {
      return InternalError("jwk: cannot read the Ed25519 public key");
    }
    k = {{"kty", "OKP"}, {"crv", "Ed25519"}, {"x", Base64UrlEncode(pub, len)}};
  }
  k["kid"] = std::string(kid);
  k["alg"] = AlgName(alg);
  k["use"] = "sig";
  return Dump(k);
}

}  // namespace sigrace::signer::jws
