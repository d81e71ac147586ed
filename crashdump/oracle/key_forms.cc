#include "crashdump/oracle/key_forms.h"

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/encoder.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <memory>
#include <utility>

#include "base/files.h"

namespace sigrace::crashdump {

SecretBytes& SecretBytes::operator=(const SecretBytes& other) {
  if (this != &other) {
    if (!bytes_.empty()) OPENSSL_cleanse(bytes_.data(), bytes_.size());
    bytes_ = other.bytes_;
  }
  return *this;
}

SecretBytes& SecretBytes::operator=(SecretBytes&& other) noexcept {
  if (this != &other) {
    if (!bytes_.empty()) OPENSSL_cleanse(bytes_.data(), bytes_.size());
    bytes_ = std::move(other.bytes_);
    other.bytes_.clear();
  }
  return *this;
}

SecretBytes::~SecretBytes() {
  if (!bytes_.empty()) OPENSSL_cleanse(bytes_.data(), bytes_.size());
}

std::string_view Form::PartIn(size_t begin, size_t end) const {
  end = std::min(end, classes_.size());
  for (uint8_t want : {uint8_t{2}, uint8_t{1}, uint8_t{0}}) {
    for (size_t i = begin; i < end; ++i) {
      if (classes_[i] == want) {
        const uint8_t p = parts_[i];
        return p < part_names_.size() ? std::string_view(part_names_[p])
                                      : std::string_view();
      }
    }
  }
  return {};
}

namespace {

struct BnFree {
  void operator()(BIGNUM* bn) const { BN_clear_free(bn); }
};
using BnPtr = std::unique_ptr<BIGNUM, BnFree>;

// A labelled byte string under construction: bytes plus a class and a part
// index per byte. Wiped on destruction.
struct Labelled {
  std::vector<uint8_t> bytes;
  std::vector<uint8_t> cls;
  std::vector<uint8_t> part;

  Labelled() = default;
  Labelled(const Labelled&) = default;
  Labelled(Labelled&&) = default;
  Labelled& operator=(Labelled&&) = default;
  ~Labelled() {
    if (!bytes.empty()) OPENSSL_cleanse(bytes.data(), bytes.size());
  }
  void Push(uint8_t b, uint8_t c, uint8_t p) {
    bytes.push_back(b);
    cls.push_back(c);
    part.push_back(p);
  }
  void PushText(std::string_view s) {
    for (char ch : s) Push(static_cast<uint8_t>(ch), 0, 0);
  }
};

constexpr uint8_t kStruct = static_cast<uint8_t>(ByteClass::kStructure);
constexpr uint8_t kPub = static_cast<uint8_t>(ByteClass::kPublic);
constexpr uint8_t kSec = static_cast<uint8_t>(ByteClass::kSecret);

Labelled Uniform(const uint8_t* data, size_t n, uint8_t cls, uint8_t part) {
  Labelled out;
  for (size_t i = 0; i < n; ++i) out.Push(data[i], cls, part);
  return out;
}

// Big-endian magnitude of `bn`, left-padded with zeros to `min_len`.
std::vector<uint8_t> BnToBe(const BIGNUM* bn, size_t min_len = 0) {
  const size_t n = std::max<size_t>(BN_num_bytes(bn), min_len);
  std::vector<uint8_t> out(n);
  if (n > 0) BN_bn2binpad(bn, out.data(), static_cast<int>(n));
  return out;
}

void Wipe(std::vector<uint8_t>& v) {
  if (!v.empty()) OPENSSL_cleanse(v.data(), v.size());
}

// Little-endian, zero-padded to a multiple of 8: the BIGNUM limb array.
Labelled Le64(const std::vector<uint8_t>& be, uint8_t cls, uint8_t part) {
  Labelled out;
  for (size_t i = be.size(); i > 0; --i) out.Push(be[i - 1], cls, part);
  while (out.bytes.size() % 8 != 0) out.Push(0, cls, part);
  return out;
}

// 32-bit limbs, most significant first, each limb little-endian.
Labelled W32(const std::vector<uint8_t>& be, uint8_t cls, uint8_t part) {
  std::vector<uint8_t> padded((4 - be.size() % 4) % 4, 0);
  padded.insert(padded.end(), be.begin(), be.end());
  Labelled out;
  for (size_t w = 0; w < padded.size(); w += 4) {
    for (int k = 3; k >= 0; --k) out.Push(padded[w + k], cls, part);
  }
  Wipe(padded);
  return out;
}

constexpr char kB64[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
constexpr char kB64Url[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

// Base64 of src[start:]. A character takes the highest class of the bytes
// its six bits come from, so a character straddling a tag and a secret
// byte counts as secret.
Labelled Base64(const Labelled& src, size_t start, bool url, bool pad) {
  const char* alphabet = url ? kB64Url : kB64;
  Labelled out;
  const size_t n = src.bytes.size();
  for (size_t g = start; g < n; g += 3) {
    const size_t have = std::min<size_t>(3, n - g);
    uint32_t v = 0;
    uint8_t c[3] = {0, 0, 0};
    uint8_t p[3] = {0, 0, 0};
    for (size_t k = 0; k < 3; ++k) {
      v <<= 8;
      if (k < have) {
        v |= src.bytes[g + k];
        c[k] = src.cls[g + k];
        p[k] = src.part[g + k];
      }
    }
    // Character j of the group takes bits from bytes (j*6)/8 .. (j*6+5)/8.
    auto label = [&](int j, uint8_t* cls, uint8_t* part) {
      const int b0 = (j * 6) / 8;
      const int b1 = std::min<int>((j * 6 + 5) / 8, static_cast<int>(have) - 1);
      *cls = c[b0];
      *part = p[b0];
      if (b1 > b0 && c[b1] > *cls) {
        *cls = c[b1];
        *part = p[b1];
      }
    };
    const int chars = static_cast<int>(have) + 1;
    for (int j = 0; j < 4; ++j) {
      if (j < chars) {
        uint8_t cls, part;
        label(j, &cls, &part);
        out.Push(static_cast<uint8_t>(alphabet[(v >> (18 - 6 * j)) & 63]), cls,
                 part);
      } else if (pad) {
        out.Push('=', kStruct, 0);
      }
    }
    v = 0;
  }
  return out;
}

Labelled Hex(const Labelled& src, bool upper) {
  const char* digits = upper ? "0123456789ABCDEF" : "0123456789abcdef";
  Labelled out;
  for (size_t i = 0; i < src.bytes.size(); ++i) {
    out.Push(static_cast<uint8_t>(digits[src.bytes[i] >> 4]), src.cls[i],
             src.part[i]);
    out.Push(static_cast<uint8_t>(digits[src.bytes[i] & 15]), src.cls[i],
             src.part[i]);
  }
  return out;
}

// PEM as OpenSSL writes it: 64-column base64 lines, '\n' line ends.
Labelled Pem(const Labelled& der, std::string_view label) {
  Labelled out;
  out.PushText("-----BEGIN ");
  out.PushText(label);
  out.PushText("-----\n");
  Labelled body = Base64(der, 0, /*url=*/false, /*pad=*/true);
  for (size_t i = 0; i < body.bytes.size(); ++i) {
    out.Push(body.bytes[i], body.cls[i], body.part[i]);
    if (i % 64 == 63 || i + 1 == body.bytes.size()) out.Push('\n', 0, 0);
  }
  out.PushText("-----END ");
  out.PushText(label);
  out.PushText("-----\n");
  return out;
}

// Each character becomes two bytes; the zero high byte shares the
// character's class so F counts form bytes, as for every other form.
Labelled Utf16(const Labelled& src) {
  Labelled out;
  for (size_t i = 0; i < src.bytes.size(); ++i) {
    out.Push(src.bytes[i], src.cls[i], src.part[i]);
    out.Push(0, src.cls[i], src.part[i]);
  }
  return out;
}

// Marks every occurrence of `needle` inside `der` with (cls, part). The
// needles are key components (random, 16+ bytes) or short public values
// searched as full DER TLVs, so they land where the encoder put them.
void Mark(Labelled* der, const std::vector<uint8_t>& needle, uint8_t cls,
          uint8_t part, size_t skip_prefix = 0) {
  if (needle.empty() || needle.size() > der->bytes.size()) return;
  const uint8_t* base = der->bytes.data();
  size_t pos = 0;
  while (pos + needle.size() <= der->bytes.size()) {
    const void* hit = memmem(base + pos, der->bytes.size() - pos, needle.data(),
                             needle.size());
    if (hit == nullptr) break;
    const size_t at = static_cast<const uint8_t*>(hit) - base;
    for (size_t i = at + skip_prefix; i < at + needle.size(); ++i) {
      der->cls[i] = cls;
      der->part[i] = part;
    }
    pos = at + needle.size();
  }
}

// DER INTEGER TLV for a non-negative big-endian magnitude.
std::vector<uint8_t> DerInteger(const std::vector<uint8_t>& be) {
  std::vector<uint8_t> content;
  if (be.empty() || (be[0] & 0x80)) content.push_back(0);
  content.insert(content.end(), be.begin(), be.end());
  std::vector<uint8_t> tlv = {0x02};
  const size_t n = content.size();
  if (n < 0x80) {
    tlv.push_back(static_cast<uint8_t>(n));
  } else if (n < 0x100) {
    tlv.push_back(0x81);
    tlv.push_back(static_cast<uint8_t>(n));
  } else {
    tlv.push_back(0x82);
    tlv.push_back(static_cast<uint8_t>(n >> 8));
    tlv.push_back(static_cast<uint8_t>(n));
  }
  tlv.insert(tlv.end(), content.begin(), content.end());
  Wipe(content);
  return tlv;
}

StatusOr<std::vector<uint8_t>> Encode(const EVP_PKEY* pkey,
                                      const char* structure) {
  OSSL_ENCODER_CTX* ctx = OSSL_ENCODER_CTX_new_for_pkey(
      pkey, EVP_PKEY_KEYPAIR, "DER", structure, nullptr);
  if (ctx == nullptr || OSSL_ENCODER_CTX_get_num_encoders(ctx) == 0) {
    OSSL_ENCODER_CTX_free(ctx);
    ERR_clear_error();
    return InternalError(std::string("no DER encoder for ") + structure);
  }
  unsigned char* buf = nullptr;
  size_t len = 0;
  const int ok = OSSL_ENCODER_to_data(ctx, &buf, &len);
  OSSL_ENCODER_CTX_free(ctx);
  if (!ok || buf == nullptr) {
    ERR_clear_error();
    return InternalError(std::string("DER encoding failed for ") + structure);
  }
  std::vector<uint8_t> out(buf, buf + len);
  OPENSSL_clear_free(buf, len);
  return out;
}

StatusOr<BnPtr> GetBn(const EVP_PKEY* pkey, const char* name) {
  BIGNUM* bn = nullptr;
  if (!EVP_PKEY_get_bn_param(pkey, name, &bn) || bn == nullptr) {
    ERR_clear_error();
    return InvalidArgumentError(std::string("key lacks parameter ") + name);
  }
  return BnPtr(bn);
}

}  // namespace

// Accumulates forms for one key.
class FormBuilder {
 public:
  // Part 0 is "": the part of structure bytes.
  explicit FormBuilder(KeyForms* out) : out_(out), parts_{""} {}

  uint8_t Part(const std::string& name) {
    for (size_t i = 0; i < parts_.size(); ++i) {
      if (parts_[i] == name) return static_cast<uint8_t>(i);
    }
    parts_.push_back(name);
    return static_cast<uint8_t>(parts_.size() - 1);
  }

  void Add(std::string name, std::string description, FormEncoding enc,
           Labelled&& src) {
    Form f;
    f.name_ = std::move(name);
    f.description_ = std::move(description);
    f.encoding_ = enc;
    const size_t n = src.bytes.size();
    f.secret_prefix_.resize(n + 1, 0);
    f.public_prefix_.resize(n + 1, 0);
    for (size_t i = 0; i < n; ++i) {
      f.secret_prefix_[i + 1] = f.secret_prefix_[i] + (src.cls[i] == kSec);
      f.public_prefix_[i + 1] = f.public_prefix_[i] + (src.cls[i] == kPub);
    }
    f.secret_total_ = f.secret_prefix_[n];
    f.classes_ = src.cls;
    f.parts_ = src.part;
    // Into MADV_DONTDUMP pages; the heap copy is wiped.
    f.bytes_ = SecretBytes(src.bytes);
    Wipe(src.bytes);
    src.bytes.clear();
    out_->forms_.push_back(std::move(f));
  }

  // Text forms get their UTF-16LE twin added by Finish(), after every
  // one-byte form, so duplicate matches resolve to the plainer form.
  void AddText(std::string name, std::string description, Labelled&& src) {
    text_.push_back({name, description, src});
    Add(std::move(name), std::move(description), FormEncoding::kAscii,
        std::move(src));
  }

  // PKCS#1/SEC1/PKCS#8 DER plus its PEM, base64 at 3 alignments and hex.
  void AddDerFamily(const std::string& prefix, const std::string& what,
                    const std::string& pem_label, Labelled&& der) {
    Labelled copy = der;
    Add(prefix + ".der", what + " DER", FormEncoding::kBinary, std::move(copy));
    AddText(prefix + ".pem", what + " PEM (" + pem_label + ")",
            Pem(der, pem_label));
    for (size_t k = 0; k < 3; ++k) {
      AddText(prefix + ".b64@" + std::to_string(k),
              "base64 of " + what + " DER from byte " + std::to_string(k),
              Base64(der, k, /*url=*/false, /*pad=*/true));
    }
    AddText(prefix + ".hex", "lower-case hex of " + what + " DER",
            Hex(der, false));
    AddText(prefix + ".HEX", "upper-case hex of " + what + " DER",
            Hex(der, true));
  }

  void SetKeyType(std::string type) { out_->key_type_ = std::move(type); }

  void Finish() {
    for (Text& t : text_) {
      Add(t.name + ".u16", "UTF-16LE of " + t.name, FormEncoding::kUtf16le,
          Utf16(t.src));
    }
    text_.clear();
    for (Form& f : out_->forms_) f.part_names_ = parts_;
  }

 private:
  struct Text {
    std::string name;
    std::string description;
    Labelled src;
  };
  KeyForms* out_;
  std::vector<std::string> parts_;
  std::vector<Text> text_;
};

namespace {

Status BuildRsa(const EVP_PKEY* pkey, FormBuilder& b) {
  struct Comp {
    const char* param;
    const char* name;
    const char* jwk;
  };
  static constexpr Comp kSecretComps[] = {
      {OSSL_PKEY_PARAM_RSA_D, "d", "d"},
      {OSSL_PKEY_PARAM_RSA_FACTOR1, "p", "p"},
      {OSSL_PKEY_PARAM_RSA_FACTOR2, "q", "q"},
      {OSSL_PKEY_PARAM_RSA_EXPONENT1, "dP", "dp"},
      {OSSL_PKEY_PARAM_RSA_EXPONENT2, "dQ", "dq"},
      {OSSL_PKEY_PARAM_RSA_COEFFICIENT1, "qInv", "qi"},
  };
  StatusOr<BnPtr> n = GetBn(pkey, OSSL_PKEY_PARAM_RSA_N);
  StatusOr<BnPtr> e = GetBn(pkey, OSSL_PKEY_PARAM_RSA_E);
  if (!n.ok()) return n.status();
  if (!e.ok()) return e.status();
  std::vector<std::vector<uint8_t>> be;
  for (const Comp& c : kSecretComps) {
    StatusOr<BnPtr> bn = GetBn(pkey, c.param);
    if (!bn.ok()) {
      return InvalidArgumentError("RSA key has no private component " +
                                  std::string(c.name) +
                                  " (a public key cannot be scanned for)");
    }
    be.push_back(BnToBe(bn->get()));
  }
  const std::vector<uint8_t> n_be = BnToBe(n->get());
  const std::vector<uint8_t> e_be = BnToBe(e->get());

  for (size_t i = 0; i < be.size(); ++i) {
    const Comp& c = kSecretComps[i];
    const uint8_t part = b.Part(c.name);
    const std::string base = std::string("rsa.") + c.name;
    b.Add(base + ".be", std::string("RSA ") + c.name + ", big-endian",
          FormEncoding::kBinary,
          Uniform(be[i].data(), be[i].size(), kSec, part));
    b.Add(base + ".le64",
          std::string("RSA ") + c.name +
              ", little-endian 64-bit limbs (OpenSSL BIGNUM on x86-64)",
          FormEncoding::kBinary, Le64(be[i], kSec, part));
    b.Add(base + ".w32",
          std::string("RSA ") + c.name +
              ", 32-bit limbs most significant first, each little-endian",
          FormEncoding::kBinary, W32(be[i], kSec, part));
  }
  const uint8_t n_part = b.Part("n");
  b.Add("rsa.n.be", "ANCHOR: RSA modulus n, big-endian", FormEncoding::kBinary,
        Uniform(n_be.data(), n_be.size(), kPub, n_part));
  b.Add("rsa.n.le64", "ANCHOR: RSA modulus n, little-endian 64-bit limbs",
        FormEncoding::kBinary, Le64(n_be, kPub, n_part));
  b.Add("rsa.n.w32", "ANCHOR: RSA modulus n, 32-bit limbs MS first",
        FormEncoding::kBinary, W32(n_be, kPub, n_part));

  for (const char* structure : {"type-specific", "PrivateKeyInfo"}) {
    StatusOr<std::vector<uint8_t>> der = Encode(pkey, structure);
    if (!der.ok()) return der.status();
    Labelled lab = Uniform(der->data(), der->size(), kStruct, 0);
    Wipe(*der);
    Mark(&lab, DerInteger(n_be), kPub, n_part, /*skip_prefix=*/4);
    Mark(&lab, DerInteger(e_be), kPub, b.Part("e"), /*skip_prefix=*/2);
    for (size_t i = 0; i < be.size(); ++i) {
      Mark(&lab, be[i], kSec, b.Part(kSecretComps[i].name));
    }
    const bool pkcs1 = std::strcmp(structure, "type-specific") == 0;
    b.AddDerFamily(pkcs1 ? "rsa.pkcs1" : "rsa.pkcs8",
                   pkcs1 ? "PKCS#1 RSAPrivateKey" : "PKCS#8 PrivateKeyInfo",
                   pkcs1 ? "RSA PRIVATE KEY" : "PRIVATE KEY", std::move(lab));
  }
  for (size_t i = 0; i < be.size(); ++i) {
    const Comp& c = kSecretComps[i];
    const uint8_t part = b.Part(c.name);
    Labelled raw = Uniform(be[i].data(), be[i].size(), kSec, part);
    b.AddText(
        std::string("rsa.") + c.name + ".b64url",
        std::string("RSA ") + c.name + ", base64url (JWK \"" + c.jwk + "\")",
        Base64(raw, 0, /*url=*/true, /*pad=*/false));
  }
  for (auto& v : be) Wipe(v);
  b.SetKeyType("RSA-" + std::to_string(EVP_PKEY_get_bits(pkey)));
  return Status::Ok();
}

Status BuildEd25519(const EVP_PKEY* pkey, FormBuilder& b) {
  uint8_t seed[32];
  uint8_t pub[32];
  size_t seed_len = sizeof(seed);
  size_t pub_len = sizeof(pub);
  if (!EVP_PKEY_get_raw_private_key(pkey, seed, &seed_len) || seed_len != 32) {
    ERR_clear_error();
    return InvalidArgumentError(
        "Ed25519 key has no private part (a public key cannot be scanned "
        "for)");
  }
  if (!EVP_PKEY_get_raw_public_key(pkey, pub, &pub_len) || pub_len != 32) {
    ERR_clear_error();
    OPENSSL_cleanse(seed, sizeof(seed));
    return InternalError("Ed25519 public key unavailable");
  }
  uint8_t h[64];
  unsigned int h_len = 0;
  if (!EVP_Digest(seed, 32, h, &h_len, EVP_sha512(), nullptr) || h_len != 64) {
    ERR_clear_error();
    OPENSSL_cleanse(seed, sizeof(seed));
    return InternalError("SHA-512 failed");
  }
  uint8_t clamped[32];
  std::memcpy(clamped, h, 32);
  clamped[0] &= 248;
  clamped[31] &= 127;
  clamped[31] |= 64;

  const uint8_t p_seed = b.Part("seed");
  const uint8_t p_scalar = b.Part("scalar");
  const uint8_t p_prefix = b.Part("prefix");
  const uint8_t p_pub = b.Part("pub");
  b.Add("ed25519.seed", "Ed25519 private key (seed)", FormEncoding::kBinary,
        Uniform(seed, 32, kSec, p_seed));
  {
    Labelled l = Uniform(h, 32, kSec, p_scalar);
    Labelled r = Uniform(h + 32, 32, kSec, p_prefix);
    l.bytes.insert(l.bytes.end(), r.bytes.begin(), r.bytes.end());
    l.cls.insert(l.cls.end(), r.cls.begin(), r.cls.end());
    l.part.insert(l.part.end(), r.part.begin(), r.part.end());
    b.Add("ed25519.sha512", "SHA-512(seed), unclamped, all 64 bytes",
          FormEncoding::kBinary, std::move(l));
  }
  b.Add("ed25519.scalar", "Ed25519 secret scalar, unclamped",
        FormEncoding::kBinary, Uniform(h, 32, kSec, p_scalar));
  b.Add("ed25519.scalar.clamped", "Ed25519 secret scalar s, clamped",
        FormEncoding::kBinary, Uniform(clamped, 32, kSec, p_scalar));
  b.Add("ed25519.prefix", "Ed25519 nonce prefix (second half of SHA-512)",
        FormEncoding::kBinary, Uniform(h + 32, 32, kSec, p_prefix));
  {
    Labelled l = Uniform(clamped, 32, kSec, p_scalar);
    for (int i = 32; i < 64; ++i) l.Push(h[i], kSec, p_prefix);
    b.Add("ed25519.expanded", "clamped scalar then prefix (expanded key)",
          FormEncoding::kBinary, std::move(l));
  }
  {
    Labelled l = Uniform(seed, 32, kSec, p_seed);
    for (int i = 0; i < 32; ++i) l.Push(pub[i], kPub, p_pub);
    b.Add("ed25519.seed_pub", "seed then public key (NaCl secret key)",
          FormEncoding::kBinary, std::move(l));
  }
  b.Add("ed25519.pub", "ANCHOR: Ed25519 public key", FormEncoding::kBinary,
        Uniform(pub, 32, kPub, p_pub));
  StatusOr<std::vector<uint8_t>> der = Encode(pkey, "PrivateKeyInfo");
  if (!der.ok()) return der.status();
  Labelled lab = Uniform(der->data(), der->size(), kStruct, 0);
  Wipe(*der);
  Mark(&lab, std::vector<uint8_t>(seed, seed + 32), kSec, p_seed);
  Mark(&lab, std::vector<uint8_t>(pub, pub + 32), kPub, p_pub);
  b.AddDerFamily("ed25519.pkcs8", "PKCS#8 PrivateKeyInfo", "PRIVATE KEY",
                 std::move(lab));
  {
    Labelled raw = Uniform(seed, 32, kSec, p_seed);
    b.AddText("ed25519.seed.b64url", "Ed25519 seed, base64url (JWK \"d\")",
              Base64(raw, 0, /*url=*/true, /*pad=*/false));
  }
  OPENSSL_cleanse(seed, sizeof(seed));
  OPENSSL_cleanse(h, sizeof(h));
  OPENSSL_cleanse(clamped, sizeof(clamped));
  b.SetKeyType("Ed25519");
  return Status::Ok();
}

Status BuildEc(const EVP_PKEY* pkey, FormBuilder& b) {
  StatusOr<BnPtr> priv = GetBn(pkey, OSSL_PKEY_PARAM_PRIV_KEY);
  if (!priv.ok()) {
    return InvalidArgumentError(
        "EC key has no private scalar (a public key cannot be scanned for)");
  }
  char group[64] = {0};
  size_t group_len = 0;
  if (!EVP_PKEY_get_utf8_string_param(pkey, OSSL_PKEY_PARAM_GROUP_NAME, group,
                                      sizeof(group), &group_len)) {
    ERR_clear_error();
    return InvalidArgumentError("EC key is not on a named curve");
  }
  const size_t order_bytes = (EVP_PKEY_get_bits(pkey) + 7) / 8;
  std::vector<uint8_t> d = BnToBe(priv->get(), order_bytes);
  std::vector<uint8_t> pub(256);
  size_t pub_len = 0;
  if (!EVP_PKEY_get_octet_string_param(pkey, OSSL_PKEY_PARAM_ENCODED_PUBLIC_KEY,
                                       pub.data(), pub.size(), &pub_len)) {
    ERR_clear_error();
    pub_len = 0;
  }
  pub.resize(pub_len);
  const uint8_t p_d = b.Part("d");
  const uint8_t p_pub = b.Part("pub");
  b.Add("ec.d.be", "EC private scalar, big-endian, order-size",
        FormEncoding::kBinary, Uniform(d.data(), d.size(), kSec, p_d));
  // The BIGNUM holds the scalar without leading zero bytes.
  std::vector<uint8_t> trimmed = BnToBe(priv->get());
  b.Add("ec.d.le64", "EC private scalar, little-endian 64-bit limbs",
        FormEncoding::kBinary, Le64(trimmed, kSec, p_d));
  b.Add("ec.d.w32", "EC private scalar, 32-bit limbs MS first",
        FormEncoding::kBinary, W32(trimmed, kSec, p_d));
  if (!pub.empty()) {
    b.Add("ec.pub", "ANCHOR: EC public point, uncompressed",
          FormEncoding::kBinary, Uniform(pub.data(), pub.size(), kPub, p_pub));
  }
  for (const char* structure : {"type-specific", "PrivateKeyInfo"}) {
    StatusOr<std::vector<uint8_t>> der = Encode(pkey, structure);
    if (!der.ok()) return der.status();
    Labelled lab = Uniform(der->data(), der->size(), kStruct, 0);
    Wipe(*der);
    Mark(&lab, d, kSec, p_d);
    Mark(&lab, pub, kPub, p_pub);
    const bool sec1 = std::strcmp(structure, "type-specific") == 0;
    b.AddDerFamily(sec1 ? "ec.sec1" : "ec.pkcs8",
                   sec1 ? "SEC1 ECPrivateKey" : "PKCS#8 PrivateKeyInfo",
                   sec1 ? "EC PRIVATE KEY" : "PRIVATE KEY", std::move(lab));
  }
  {
    Labelled raw = Uniform(d.data(), d.size(), kSec, p_d);
    b.AddText("ec.d.b64url", "EC private scalar, base64url (JWK \"d\")",
              Base64(raw, 0, /*url=*/true, /*pad=*/false));
  }
  Wipe(d);
  Wipe(trimmed);
  b.SetKeyType(std::string("EC-") + group);
  return Status::Ok();
}

}  // namespace

StatusOr<KeyForms> KeyForms::FromPkey(const EVP_PKEY* pkey,
                                      std::string key_id) {
  if (pkey == nullptr) return InvalidArgumentError("no key");
  KeyForms out;
  out.key_id_ = std::move(key_id);
  FormBuilder b(&out);
  Status st;
  switch (EVP_PKEY_get_base_id(pkey)) {
    case EVP_PKEY_RSA:
    case EVP_PKEY_RSA_PSS:
      st = BuildRsa(pkey, b);
      break;
    case EVP_PKEY_ED25519:
      st = BuildEd25519(pkey, b);
      break;
    case EVP_PKEY_EC:
      st = BuildEc(pkey, b);
      break;
    default:
      return InvalidArgumentError(
          "unsupported key type (RSA, Ed25519 and EC are supported)");
  }
  if (!st.ok()) return st;
  b.Finish();
  return out;
}

namespace {
// Never prompt for a passphrase: an encrypted key is an error here.
int NoPassphrase(char*, int, int, void*) { return -1; }

struct PkeyFree {
  void operator()(EVP_PKEY* p) const { EVP_PKEY_free(p); }
};
}  // namespace

StatusOr<KeyForms> KeyForms::FromBytes(const uint8_t* data, size_t size,
                                       std::string key_id) {
  std::unique_ptr<EVP_PKEY, PkeyFree> pkey;
  static constexpr char kPemStart[] = "-----BEGIN";
  const bool pem =
      size >= 10 && memmem(data, std::min<size_t>(size, 4096), kPemStart,
                           sizeof(kPemStart) - 1) != nullptr;
  if (pem) {
    BIO* bio = BIO_new_mem_buf(data, static_cast<int>(size));
    if (bio == nullptr) return InternalError("BIO_new_mem_buf failed");
    pkey.reset(PEM_read_bio_PrivateKey(bio, nullptr, NoPassphrase, nullptr));
    // A second key in the same file would be left unsearched: refused.
    std::unique_ptr<EVP_PKEY, PkeyFree> another;
    if (pkey) {
      another.reset(
          PEM_read_bio_PrivateKey(bio, nullptr, NoPassphrase, nullptr));
    }
    BIO_free(bio);
    if (another) {
      ERR_clear_error();
      return InvalidArgumentError(
          "key " + key_id +
          " holds more than one private key; give each with its own --key");
    }
  } else {
    const unsigned char* p = data;
    pkey.reset(d2i_AutoPrivateKey(nullptr, &p, static_cast<long>(size)));
    const size_t used = static_cast<size_t>(p - data);
    if (pkey && used < size) {
      const unsigned char* q = p;
      std::unique_ptr<EVP_PKEY, PkeyFree> another(
          d2i_AutoPrivateKey(nullptr, &q, static_cast<long>(size - used)));
      if (another) {
        ERR_clear_error();
        return InvalidArgumentError(
            "key " + key_id +
            " holds more than one private key; give each with its own --key");
      }
    }
  }
  ERR_clear_error();
  if (!pkey) {
    return InvalidArgumentError(
        "key " + key_id +
        " does not parse as an unencrypted PEM or DER private key");
  }
  return FromPkey(pkey.get(), std::move(key_id));
}

StatusOr<KeyForms> KeyForms::FromFile(const std::string& path) {
  // A FIFO, a device or a directory is refused before any read (one that
  // never ends would hang the oracle).
  StatusOr<int> opened = OpenRegularFile(path);
  if (!opened.ok()) {
    return InvalidArgumentError("key " + opened.status().message());
  }
  const int fd = *opened;
  constexpr size_t kMaxKeyFile = size_t{1} << 20;
  // The file's bytes are key bytes: read straight into MADV_DONTDUMP pages
  // (wiped when freed).
  SecretVector<uint8_t> buf(kMaxKeyFile + 1);
  size_t got = 0;
  while (got < buf.size()) {
    const ssize_t n = ::read(fd, buf.data() + got, buf.size() - got);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      const int e = errno;
      ::close(fd);
      return ErrnoError("read key " + path, e);
    }
    if (n == 0) break;
    got += static_cast<size_t>(n);
  }
  ::close(fd);
  if (got > kMaxKeyFile) {
    return InvalidArgumentError("key " + path + " is larger than 1 MiB");
  }
  return FromBytes(buf.data(), got, path);
}

int KeyForms::FindForm(std::string_view name) const {
  for (size_t i = 0; i < forms_.size(); ++i) {
    if (forms_[i].name() == name) return static_cast<int>(i);
  }
  return -1;
}

std::vector<FormInfo> KeyForms::Table() const {
  std::vector<FormInfo> rows;
  rows.reserve(forms_.size());
  for (const Form& f : forms_) {
    rows.push_back({f.name(), f.description(), f.size(), f.is_private()});
  }
  return rows;
}

}  // namespace sigrace::crashdump
