// Key forms: every representation a private key can take in a process's
// memory, derived from the key itself, for the dump scanner (the oracle).
//
// The measured fact behind the table: in a real OpenSSL 3 process an RSA
// key lives only as little-endian 64-bit BIGNUM limbs (p and q copied again
// into Montgomery contexts); no DER, PEM or big-endian copy exists. So the
// numeric forms come first, and the encodings (DER, PEM, base64, hex,
// UTF-16LE) cover keys that were read from files, logged or serialized.
//
// Form table (KeyForms::Table() returns it; `sigrace scan --list-forms`
// prints it). C is each private RSA component d, p, q, dP, dQ, qInv.
//
//   rsa.C.be          big-endian magnitude (BN_bn2bin)
//   rsa.C.le64        little-endian bytes padded with zeros to a multiple
//                     of 8: BIGNUM limb order on x86-64. LS-first 32-bit
//                     limbs (BIGNUM with 32-bit BN_ULONG) give a prefix of
//                     the same bytes, so le64 covers them.
//   rsa.C.w32         32-bit limbs, most significant limb first, each limb
//                     little-endian (int[] magnitudes such as Java's
//                     BigInteger, big-endian bytes read as 32-bit words)
//   rsa.C.b64url      base64url without padding (the JWK member)
//   rsa.n.{be,le64,w32}  ANCHOR: the public modulus (e is 3 bytes, shorter
//                     than any fragment, so it only shows inside DER forms)
//   rsa.pkcs1.der     RSAPrivateKey DER
//   rsa.pkcs8.der     PrivateKeyInfo DER
//   rsa.pkcs1.pem / rsa.pkcs8.pem  the PEM text, 64-column lines
//   X.b64@K           base64 of DER X from byte K (K = 0, 1, 2): all three
//                     alignments a fragment of a longer base64 text can have
//   X.hex / X.HEX     lower- and upper-case hex of DER X (it contains the
//                     hex of every component, as BN_bn2hex prints it)
//   ed25519.seed      the 32-byte private key (RFC 8032 k)
//   ed25519.sha512    SHA-512(seed), all 64 bytes, unclamped
//   ed25519.scalar    first half of SHA-512(seed), unclamped
//   ed25519.scalar.clamped  the same, clamped (the secret scalar s)
//   ed25519.prefix    second half of SHA-512(seed) (the nonce prefix)
//   ed25519.expanded  clamped scalar then prefix (ref10 / OpenSSL az[])
//   ed25519.seed_pub  seed then public key (NaCl/libsodium secret key)
//   ed25519.seed.b64url  the JWK "d" member
//   ed25519.pub       ANCHOR: the public key
//   ed25519.pkcs8.der, .pem, .b64@K, .hex, .HEX
//   ec.d.{be,le64,w32,b64url}  the EC private scalar (P-256 and any other
//                     named curve), be padded to the order size
//   ec.pub            ANCHOR: the uncompressed public point
//   ec.sec1.der, ec.pkcs8.der, their .pem, .b64@K, .hex, .HEX
//   T.u16             UTF-16LE of every text form T above (pem, b64, hex,
//                     b64url)
//
// Every byte of a form has a class: secret (derived from private key
// material, even partly, as a base64 character straddling a tag and a
// component is), public (n, e, the public key: anchors) or structure (DER
// tags and lengths, PEM armour, padding characters). The scanner reports a
// match as a leak only when at least F of its bytes are secret, so a DER
// header or a PEM armour line found in an unrelated file is never a leak.
//
// Forms hold key bytes. They live in memory only, are wiped on
// destruction, and must never be printed, logged or passed to a printing
// assertion (gtest EXPECT_EQ prints its operands on failure).
//
// Thread safety: KeyForms is a value; const methods are safe to call from
// several threads at once. Not async-signal-safe (allocates, calls
// OpenSSL).

#ifndef SIGRACE_CRASHDUMP_ORACLE_KEY_FORMS_H_
#define SIGRACE_CRASHDUMP_ORACLE_KEY_FORMS_H_

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "base/secret_memory.h"
#include "base/status.h"

typedef struct evp_pkey_st EVP_PKEY;

namespace sigrace::crashdump {

// A byte buffer that wipes itself (OPENSSL_cleanse) when destroyed or
// overwritten. Holds key bytes: never print it.
class SecretBytes {
 public:
  SecretBytes() = default;
  explicit SecretBytes(const std::vector<uint8_t>& bytes)
      : bytes_(bytes.begin(), bytes.end()) {}
  SecretBytes(const uint8_t* data, size_t size) : bytes_(data, data + size) {}
  SecretBytes(const SecretBytes&) = default;
  SecretBytes& operator=(const SecretBytes& other);
  SecretBytes(SecretBytes&& other) noexcept = default;
  SecretBytes& operator=(SecretBytes&& other) noexcept;
  ~SecretBytes();

  const uint8_t* data() const { return bytes_.data(); }
  size_t size() const { return bytes_.size(); }
  bool empty() const { return bytes_.empty(); }
  uint8_t operator[](size_t i) const { return bytes_[i]; }

 private:
  SecretVector<uint8_t> bytes_;  // MADV_DONTDUMP, locked pages
};

enum class ByteClass : uint8_t {
  kStructure = 0,  // encoding scaffolding; same for every key of the type
  kPublic = 1,     // public key material: an anchor, never a leak
  kSecret = 2,     // derived from private key material
};

// How the form's bytes look, which decides the index table that holds it.
enum class FormEncoding : uint8_t {
  kBinary = 0,   // raw numbers, DER
  kAscii = 1,    // printable text (PEM, base64, hex): bytes 0x0a..0x7e
  kUtf16le = 2,  // UTF-16LE of an ASCII text form
};

class Form {
 public:
  const std::string& name() const { return name_; }
  const std::string& description() const { return description_; }
  FormEncoding encoding() const { return encoding_; }
  size_t size() const { return bytes_.size(); }
  // True when any byte is secret; false for anchors (rsa.n.*, *.pub).
  bool is_private() const { return secret_total_ > 0; }
  // Borrowed view of key bytes. Never print it.
  const uint8_t* data() const { return bytes_.data(); }
  ByteClass byte_class(size_t i) const {
    return static_cast<ByteClass>(classes_[i]);
  }
  // Number of secret / public bytes in [begin, end).
  size_t SecretBytesIn(size_t begin, size_t end) const {
    return secret_prefix_[end] - secret_prefix_[begin];
  }
  size_t PublicBytesIn(size_t begin, size_t end) const {
    return public_prefix_[end] - public_prefix_[begin];
  }
  // The key component ("p", "d", "seed", "n", ...) the first secret (else
  // public, else any) byte of [begin, end) derives from; "" for structure.
  std::string_view PartIn(size_t begin, size_t end) const;

 private:
  friend class FormBuilder;
  std::string name_;
  std::string description_;
  FormEncoding encoding_ = FormEncoding::kBinary;
  SecretBytes bytes_;
  std::vector<uint8_t> classes_;  // ByteClass per byte
  std::vector<uint8_t> parts_;    // index into part_names_ per byte
  std::vector<std::string> part_names_;
  std::vector<uint32_t> secret_prefix_;
  std::vector<uint32_t> public_prefix_;
  size_t secret_total_ = 0;
};

// One row of the documented form table (no key bytes).
struct FormInfo {
  std::string name;
  std::string description;
  size_t size;
  bool is_private;
};

class KeyForms {
 public:
  // Derives every form of `pkey` (RSA, Ed25519, or EC on a named curve).
  // `key_id` names the key in findings (a file name, "signer-rs256", ...).
  static StatusOr<KeyForms> FromPkey(const EVP_PKEY* pkey, std::string key_id);
  // Parses PEM (PKCS#8, PKCS#1, SEC1) or DER PKCS#8 / type-specific DER.
  static StatusOr<KeyForms> FromBytes(const uint8_t* data, size_t size,
                                      std::string key_id);
  // Reads and parses a key file; key_id is the path.
  static StatusOr<KeyForms> FromFile(const std::string& path);

  const std::string& key_id() const { return key_id_; }
  // "RSA-2048", "Ed25519", "EC-prime256v1".
  const std::string& key_type() const { return key_type_; }
  const std::vector<Form>& forms() const { return forms_; }
  // Index of the form called `name`, or -1.
  int FindForm(std::string_view name) const;
  // The table rows, in scan-priority order (no key bytes).
  std::vector<FormInfo> Table() const;

 private:
  KeyForms() = default;
  friend class FormBuilder;

  std::string key_id_;
  std::string key_type_;
  std::vector<Form> forms_;
};

}  // namespace sigrace::crashdump

#endif  // SIGRACE_CRASHDUMP_ORACLE_KEY_FORMS_H_
