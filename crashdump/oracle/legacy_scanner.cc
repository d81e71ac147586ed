#include "crashdump/oracle/legacy_scanner.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <string>
#include <string_view>
#include <vector>

#include "crashdump/format/core_reader.h"

namespace sigrace::crashdump {
namespace {

// A DER TLV header at data[at]: tag, then a definite length of at most two
// length bytes (a key never needs more). On success *content is where the
// value starts and *len its length, inside [0, limit).
bool Tlv(const uint8_t* data, size_t limit, size_t at, uint8_t tag,
         size_t* content, size_t* len) {
  if (at + 2 > limit || data[at] != tag) return false;
  const uint8_t b = data[at + 1];
  size_t l = 0, h = 2;
  if (b < 0x80) {
    l = b;
  } else if (b == 0x81) {
    if (at + 3 > limit || data[at + 2] < 0x80) return false;
    l = data[at + 2];
    h = 3;
  } else if (b == 0x82) {
    if (at + 4 > limit) return false;
    l = (size_t{data[at + 2]} << 8) | data[at + 3];
    if (l < 0x100) return false;
    h = 4;
  } else {
    return false;
  }
  if (l > limit - at - h) return false;
  *content = at + h;
  *len = l;
  return true;
}

// RSAPrivateKey: SEQUENCE { 0, n, e, d, p, q, dP, dQ, qInv }.
size_t MatchPkcs1(const uint8_t* d, size_t size, size_t at) {
  size_t c, l;
  if (!Tlv(d, size, at, 0x30, &c, &l)) return 0;
  const size_t end = c + l;
  size_t ic, il;
  if (!Tlv(d, end, c, 0x02, &ic, &il) || il != 1 || d[ic] != 0) return 0;
  size_t pos = ic + il;
  for (int i = 0; i < 8; ++i) {
    if (!Tlv(d, end, pos, 0x02, &ic, &il) || il == 0) return 0;
    if (i == 0 && il < 64) return 0;  // n: at least 512 bits
    pos = ic + il;
  }
  return end - at;
}

constexpr uint8_t kOidRsa[] = {0x2a, 0x86, 0x48, 0x86, 0xf7,
                               0x0d, 0x01, 0x01, 0x01};
constexpr uint8_t kOidEc[] = {0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01};
constexpr uint8_t kOidEd25519[] = {0x2b, 0x65, 0x70};

// PrivateKeyInfo / OneAsymmetricKey: SEQUENCE { 0|1, SEQUENCE { OID, ... },
// OCTET STRING, ... }.
size_t MatchPkcs8(const uint8_t* d, size_t size, size_t at,
                  std::string* shape) {
  size_t c, l;
  if (!Tlv(d, size, at, 0x30, &c, &l)) return 0;
  const size_t end = c + l;
  size_t ic, il;
  if (!Tlv(d, end, c, 0x02, &ic, &il) || il != 1 || d[ic] > 1) return 0;
  size_t ac, al;
  if (!Tlv(d, end, ic + il, 0x30, &ac, &al)) return 0;
  size_t oc, ol;
  if (!Tlv(d, ac + al, ac, 0x06, &oc, &ol)) return 0;
  auto is = [&](const uint8_t* oid, size_t n) {
    return ol == n && std::memcmp(d + oc, oid, n) == 0;
  };
  size_t kc, kl;
  if (!Tlv(d, end, ac + al, 0x04, &kc, &kl) || kl == 0) return 0;
  if (is(kOidRsa, sizeof kOidRsa)) {
    if (MatchPkcs1(d, kc + kl, kc) == 0) return 0;
    *shape = "pkcs8-der(rsa)";
  } else if (is(kOidEc, sizeof kOidEc)) {
    *shape = "pkcs8-der(ec)";
  } else if (is(kOidEd25519, sizeof kOidEd25519)) {
    size_t sc, sl;
    if (!Tlv(d, kc + kl, kc, 0x04, &sc, &sl) || sl != 32) return 0;
    *shape = "pkcs8-der(ed25519)";
  } else {
    return 0;
  }
  return end - at;
}

bool IsB64(uint8_t c) {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
         (c >= '0' && c <= '9') || c == '+' || c == '/' || c == '=';
}
bool IsB64Url(uint8_t c) {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
         (c >= '0' && c <= '9') || c == '-' || c == '_';
}

const uint8_t* Find(const uint8_t* from, const uint8_t* end,
                    std::string_view what) {
  if (from >= end) return nullptr;
  return static_cast<const uint8_t*>(
      memmem(from, static_cast<size_t>(end - from), what.data(), what.size()));
}

void ScanPem(const uint8_t* d, size_t size, std::vector<LegacyFinding>* out) {
  const uint8_t* end = d + size;
  for (const uint8_t* p = Find(d, end, "-----BEGIN "); p != nullptr;
       p = Find(p + 1, end, "-----BEGIN ")) {
    // The label: up to the closing dashes on the same line.
    const uint8_t* label = p + 11;
    const uint8_t* close = Find(label, std::min(end, label + 48), "-----");
    if (close == nullptr) continue;
    const std::string_view name(reinterpret_cast<const char*>(label),
                                static_cast<size_t>(close - label));
    if (name.size() < 11 || name.substr(name.size() - 11) != "PRIVATE KEY") {
      continue;
    }
    const uint8_t* q = close + 5;
    size_t chars = 0;
    while (q < end && (IsB64(*q) || *q == '\n' || *q == '\r')) {
      chars += IsB64(*q) ? 1 : 0;
      ++q;
    }
    if (chars < 64) continue;  // armour without a body
    const uint8_t* tail = Find(q, std::min(end, q + 64), "-----\n");
    if (tail == nullptr) tail = Find(q, std::min(end, q + 64), "-----");
    if (tail != nullptr) q = tail + 5;
    out->push_back(
        {static_cast<uint64_t>(p - d), static_cast<uint64_t>(q - p), "pem"});
  }
}

void ScanJwk(const uint8_t* d, size_t size, std::vector<LegacyFinding>* out) {
  const uint8_t* end = d + size;
  constexpr size_t kObject = 1024;  // how far "kty" may sit from "d"
  for (const uint8_t* p = Find(d, end, "\"d\""); p != nullptr;
       p = Find(p + 1, end, "\"d\"")) {
    const uint8_t* q = p + 3;
    while (q < end && (*q == ' ' || *q == '\t' || *q == '\n')) ++q;
    if (q >= end || *q != ':') continue;
    ++q;
    while (q < end && (*q == ' ' || *q == '\t' || *q == '\n')) ++q;
    if (q >= end || *q != '"') continue;
    const uint8_t* v = ++q;
    while (q < end && IsB64Url(*q)) ++q;
    if (q >= end || *q != '"' || q - v < 16) continue;
    const uint8_t* lo =
        p - d > static_cast<ptrdiff_t>(kObject) ? p - kObject : d;
    const uint8_t* hi = std::min(end, q + kObject);
    if (Find(lo, hi, "\"kty\"") == nullptr) continue;
    out->push_back(
        {static_cast<uint64_t>(v - d), static_cast<uint64_t>(q - v), "jwk"});
  }
}

}  // namespace

std::vector<LegacyFinding> LegacyScan(const uint8_t* data, size_t size) {
  std::vector<LegacyFinding> out;
  if (data == nullptr || size == 0) return out;
  ScanPem(data, size, &out);
  ScanJwk(data, size, &out);
  // DER: every SEQUENCE tag is a candidate; a match is skipped over, so
  // the PKCS#1 inside a PKCS#8 is reported once, as the PKCS#8.
  for (size_t i = 0; i < size;) {
    const void* hit = std::memchr(data + i, 0x30, size - i);
    if (hit == nullptr) break;
    i = static_cast<size_t>(static_cast<const uint8_t*>(hit) - data);
    std::string shape;
    size_t n = MatchPkcs8(data, size, i, &shape);
    if (n == 0) {
      n = MatchPkcs1(data, size, i);
      shape = "pkcs1-der";
    }
    if (n != 0) {
      out.push_back({i, n, shape});
      i += n;
    } else {
      ++i;
    }
  }
  std::sort(out.begin(), out.end(),
            [](const LegacyFinding& a, const LegacyFinding& b) {
              return a.offset < b.offset;
            });
  return out;
}

StatusOr<ScanReport> LegacyScanFile(const std::string& path) {
  // O_NONBLOCK: a FIFO without a writer is refused below, not waited on.
  const int fd = ::open(path.c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC);
  if (fd < 0) return ErrnoError("open", errno);
  struct stat st;
  if (::fstat(fd, &st) != 0) {
    const int e = errno;
    ::close(fd);
    return ErrnoError("fstat", e);
  }
  if (!S_ISREG(st.st_mode)) {
    ::close(fd);
    return DataLossError("not a regular file");
  }
  ScanReport report;
  report.path = path;
  report.file_size = static_cast<uint64_t>(st.st_size);
  report.file_kind = FileKind::kRaw;
  if (st.st_size == 0) {
    ::close(fd);
    return report;
  }
  StatusOr<std::vector<FileExtent>> extents = DataExtents(fd, report.file_size);
  StatusOr<uint8_t*> image = ReadFileImage(
      fd, report.file_size, extents.ok() ? &extents.value() : nullptr);
  ::close(fd);
  if (!image.ok()) return image.status();
  const size_t size = static_cast<size_t>(report.file_size);
  for (const LegacyFinding& lf : LegacyScan(*image, size)) {
    Finding f;
    f.kind = FindingKind::kLeak;
    f.file_offset = lf.offset;
    f.length = lf.length;
    f.form = lf.shape;
    f.part = "";
    report.findings.push_back(std::move(f));
    ++report.leaks;
  }
  report.bytes_searched = report.file_size;
  ::munmap(*image, size);
  return report;
}

}  // namespace sigrace::crashdump
