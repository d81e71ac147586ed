// The legacy credential scanner: a scanner of the kind that was in use
// where the incident's dump was examined. It knows what a key looks like
// in a file, not what it looks like in a process:
//   - PEM armour: a "-----BEGIN ... PRIVATE KEY-----" line followed by a
//     base64 body (RSA, EC, PKCS#8, encrypted PKCS#8, OpenSSH);
//   - PKCS#1 DER: an RSAPrivateKey SEQUENCE of INTEGER version 0 and eight
//     INTEGERs (n of at least 512 bits), all inside the SEQUENCE;
//   - PKCS#8 DER: a PrivateKeyInfo / OneAsymmetricKey SEQUENCE of INTEGER
//     version 0 or 1, an AlgorithmIdentifier SEQUENCE holding a known OID
//     (rsaEncryption, id-ecPublicKey, Ed25519) and an OCTET STRING private
//     key (for Ed25519, the inner OCTET STRING of 32 bytes);
//   - a private JWK: a "d" member with a base64url value of at least 16
//     characters in an object that also has "kty".
// It does not know OpenSSL's in-memory forms (little-endian BIGNUM limbs,
// the Montgomery copies of p and q, the Ed25519 expanded key), which is
// all a real OpenSSL 3 process holds: on the dump of a signer it finds
// nothing. It needs no key: it looks for shapes, not for one key's bytes.
//
// Findings carry offsets, lengths and shape names, never the bytes.
//
// Thread safety: stateless; any number of threads may call it at once.
// Not async-signal-safe.

#ifndef SIGRACE_CRASHDUMP_ORACLE_LEGACY_SCANNER_H_
#define SIGRACE_CRASHDUMP_ORACLE_LEGACY_SCANNER_H_

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "base/status.h"
#include "crashdump/oracle/scanner.h"

namespace sigrace::crashdump {

struct LegacyFinding {
  uint64_t offset = 0;  // first byte of the shape
  uint64_t length = 0;
  // "pem", "pkcs1-der", "pkcs8-der(rsa)", "pkcs8-der(ec)",
  // "pkcs8-der(ed25519)", "jwk"
  std::string shape;
};

// Every private-key shape in [data, data + size), in offset order.
std::vector<LegacyFinding> LegacyScan(const uint8_t* data, size_t size);

// Reads `path` (its data extents; never a mapping) and scans every byte as
// raw bytes. The report holds one kLeak finding per shape (form = the
// shape name, no key index) and file_kind kRaw; nothing else is checked.
StatusOr<ScanReport> LegacyScanFile(const std::string& path);

}  // namespace sigrace::crashdump

#endif  // SIGRACE_CRASHDUMP_ORACLE_LEGACY_SCANNER_H_
