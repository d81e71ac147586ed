// JWS compact serialization (RFC 7515) and public JWKs (RFC 7517, 8037).
//
// A token is BASE64URL(header) "." BASE64URL(payload) "." BASE64URL(sig),
// no padding. The header carries alg, typ and kid; the payload carries iss,
// aud, iat, exp plus the caller's claims. RS256 is RSASSA-PKCS1-v1_5 with
// SHA-256; EdDSA is Ed25519 (RFC 8037). Signing goes through OpenSSL 3's
// EVP_DigestSign with the key object the caller passes in; this file never
// sees key bytes.
//
// Thread safety: every function is thread-safe (EVP_PKEY objects may be
// shared between threads for signing). Not async-signal-safe.

#ifndef SIGRACE_SIGNER_JWS_H_
#define SIGRACE_SIGNER_JWS_H_

#include <openssl/types.h>

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "base/status.h"
#include "signer/signer.h"

namespace sigrace::signer::jws {

std::string Base64UrlEncode(const uint8_t* data, size_t len);
// Appends the encoding to *out (no temporary string: the signing hot path
// encodes the payload and the signature of every token into the token).
void Base64UrlEncodeAppend(const uint8_t* data, size_t len, std::string* out);
inline std::string Base64UrlEncode(std::string_view s) {
  return Base64UrlEncode(reinterpret_cast<const uint8_t*>(s.data()), s.size());
}
// Rejects padding, characters outside the URL-safe alphabet, and a length
// of 1 mod 4.
StatusOr<std::string> Base64UrlDecode(std::string_view s);

// {"alg":...,"kid":...,"typ":"JWT"}
std::string HeaderJson(Alg alg, std::string_view kid);
// {"aud":...,"exp":...,"iat":...,"iss":..., extra...}. `now` fills iat when
// claims.iat is 0.
StatusOr<std::string> PayloadJson(const Claims& claims, int64_t now);
// BASE64URL(header) "." BASE64URL(payload)
std::string SigningInput(std::string_view header_json,
                         std::string_view payload_json);

// Signs `input` with `pkey`, which must match `alg`. Appends the raw
// signature to *sig.
Status SignRaw(Alg alg, EVP_PKEY* pkey, std::string_view input,
               std::string* sig);
// Verifies a raw signature (used by tests and the warm-up self-check).
Status VerifyRaw(Alg alg, EVP_PKEY* pkey, std::string_view input,
                 std::string_view sig);

// One public JWK object as JSON text: {"kty":"RSA","n","e",...} or
// {"kty":"OKP","crv":"Ed25519","x",...}, with kid, alg and "use":"sig".
StatusOr<std::string> PublicJwk(Alg alg, const EVP_PKEY* pkey,
                                std::string_view kid);

// Does the key type of `pkey` match `alg` (RSA of 2048 bits, or Ed25519)?
Status CheckKeyMatches(Alg alg, const EVP_PKEY* pkey);

}  // namespace sigrace::signer::jws

#endif  // SIGRACE_SIGNER_JWS_H_
