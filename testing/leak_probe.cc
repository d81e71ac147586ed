#include "testing/leak_probe.h"

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <sys/mman.h>

#include <algorithm>
#include <cinttypes>
#include <cstdio>
#include <cstring>

#include "base/ablation.h"
#include "crashdump/registry/registry.h"
#include "signer/key_heap.h"

namespace sigrace::signer::testing {
namespace {

constexpr size_t kPage = 4096;
constexpr size_t kBufBytes = size_t{64} * 1024;
constexpr size_t kMaxMapping = size_t{1} << 30;

// The probe's own derivations run OpenSSL code whose frames may keep
// copies; scrub below the caller before a scan can see them.
__attribute__((noinline)) void ScrubBelow() {
  uint8_t area[64 * 1024];
  OPENSSL_cleanse(area, sizeof(area));
  asm volatile("" : : "r"(area) : "memory");
}

constexpr int kFilterBits = 20;

inline uint64_t FilterSlot(uint64_t v) {
  return (v * 0x9e3779b97f4a7c15ull) >> (64 - kFilterBits);
}

struct Interval {
  uintptr_t lo;
  uintptr_t hi;
};

}  // namespace

LeakProbe::LeakProbe() : filter_((size_t{1} << kFilterBits) / 64) {
  void* m = mmap(nullptr, kBufBytes, PROT_READ | PROT_WRITE,
                 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (m != MAP_FAILED) {
    buf_ = static_cast<uint8_t*>(m);
    cap_ = kBufBytes;
  }
}

LeakProbe::~LeakProbe() {
  if (buf_ != nullptr) {
    OPENSSL_cleanse(buf_, cap_);
    munmap(buf_, cap_);
  }
}

Status LeakProbe::AddForm(const std::string& name, const uint8_t* bytes,
                          size_t len) {
  if (buf_ == nullptr || used_ + len > cap_) {
    return ResourceExhaustedError("leak probe: form buffer full");
  }
  // `bytes` is already inside buf_ at used_ (derivations write in place).
  if (bytes != buf_ + used_) return InternalError("leak probe: misplaced form");
  forms_.push_back(Form{name, used_, len});
  const uint32_t fi = static_cast<uint32_t>(forms_.size() - 1);
  for (size_t o = 0; o + 8 <= len; ++o) {
    uint64_t v;
    memcpy(&v, bytes + o, 8);
    index_[v].emplace_back(fi, static_cast<uint32_t>(o));
    const uint64_t slot = FilterSlot(v);
    filter_[slot >> 6] |= uint64_t{1} << (slot & 63);
  }
  used_ += len;
  return Status::Ok();
}

__attribute__((noinline)) Status LeakProbe::AddKey(const OracleKey& key) {
  KeyAllocScope alloc;  // OpenSSL's BIGNUM copies land in the covered heap
  if (key.alg == Alg::kRs256) {
    struct Comp {
      const char* param;
      const char* name;
    };
    const Comp comps[] = {
        {OSSL_PKEY_PARAM_RSA_D, "d"},
        {OSSL_PKEY_PARAM_RSA_FACTOR1, "p"},
        {OSSL_PKEY_PARAM_RSA_FACTOR2, "q"},
        {OSSL_PKEY_PARAM_RSA_EXPONENT1, "dP"},
        {OSSL_PKEY_PARAM_RSA_EXPONENT2, "dQ"},
        {OSSL_PKEY_PARAM_RSA_COEFFICIENT1, "qInv"},
    };
    for (const Comp& c : comps) {
      BIGNUM* bn = nullptr;
      if (EVP_PKEY_get_bn_param(key.pkey, c.param, &bn) != 1) {
        return InternalError(std::string("leak probe: no RSA ") + c.name);
      }
      const int nb = BN_num_bytes(bn);
      const int le = (nb + 7) / 8 * 8;
      if (used_ + static_cast<size_t>(nb + le) > cap_) {
        BN_clear_free(bn);
        return ResourceExhaustedError("leak probe: form buffer full");
      }
      uint8_t* at = buf_ + used_;
      BN_bn2binpad(bn, at, nb);
      Status s = AddForm(std::string("rsa.") + c.name + ".be", at, nb);
      at = buf_ + used_;
      if (s.ok()) {
        BN_bn2lebinpad(bn, at, le);
        s = AddForm(std::string("rsa.") + c.name + ".le64", at, le);
      }
      BN_clear_free(bn);
      SIGRACE_RETURN_IF_ERROR(s);
    }
    return Status::Ok();
  }
  if (used_ + 32 + 64 + 32 + 32 > cap_) {
    return ResourceExhaustedError("leak probe: form buffer full");
  }
  uint8_t* seed = buf_ + used_;
  size_t len = 32;
  if (EVP_PKEY_get_raw_private_key(key.pkey, seed, &len) != 1 || len != 32) {
    return InternalError("leak probe: no Ed25519 seed");
  }
  SIGRACE_RETURN_IF_ERROR(AddForm("ed25519.seed", seed, 32));
  uint8_t* h = buf_ + used_;
  unsigned int hl = 0;
  if (EVP_Digest(seed, 32, h, &hl, EVP_sha512(), nullptr) != 1 || hl != 64) {
    return InternalError("leak probe: SHA-512 failed");
  }
  SIGRACE_RETURN_IF_ERROR(AddForm("ed25519.sha512", h, 64));
  uint8_t* s = buf_ + used_;
  memcpy(s, h, 32);
  s[0] &= 248;
  s[31] &= 63;
  s[31] |= 64;
  SIGRACE_RETURN_IF_ERROR(AddForm("ed25519.scalar.clamped", s, 32));
  uint8_t* pre = buf_ + used_;
  memcpy(pre, h + 32, 32);
  return AddForm("ed25519.prefix", pre, 32);
}

Status LeakProbe::AddSigner(const Signer& signer) {
  Status st =
      signer.TEST_VisitKeys([this](const OracleKey& k) { return AddKey(k); });
  ScrubBelow();
  return st;
}

__attribute__((no_sanitize("address", "thread"))) void LeakProbe::ScanRange(
    uintptr_t lo, uintptr_t hi, size_t min_len, const std::string& mapping,
    bool dontdump, std::vector<ProbeHit>* hits) const {
  uintptr_t q = (lo + 7) & ~uintptr_t{7};
  while (q + 8 <= hi) {
    const uint64_t v = *reinterpret_cast<const volatile uint64_t*>(q);
    const uint64_t slot = FilterSlot(v);
    if ((filter_[slot >> 6] & (uint64_t{1} << (slot & 63))) == 0) {
      q += 8;
      continue;
    }
    auto it = index_.find(v);
    if (it == index_.end()) {
      q += 8;
      continue;
    }
    size_t best = 0;
    uintptr_t best_at = 0;
    uint32_t best_form = 0;
    for (const auto& [fi, off] : it->second) {
      const Form& f = forms_[fi];
      const uint8_t* fb = buf_ + f.offset;
      size_t back = 0;
      while (q - back - 1 >= lo && off >= back + 1 &&
             *reinterpret_cast<const volatile uint8_t*>(q - back - 1) ==
                 fb[off - back - 1]) {
        ++back;
      }
      size_t fwd = 0;
      while (q + 8 + fwd < hi && off + 8 + fwd < f.len &&
             *reinterpret_cast<const volatile uint8_t*>(q + 8 + fwd) ==
                 fb[off + 8 + fwd]) {
        ++fwd;
      }
      const size_t m = back + 8 + fwd;
      if (m > best) {
        best = m;
        best_at = q - back;
        best_form = fi;
      }
    }
    if (best >= min_len) {
      hits->push_back(
          ProbeHit{best_at, best, forms_[best_form].name, mapping, dontdump});
      q = (best_at + best + 7) & ~uintptr_t{7};
    } else {
      q += 8;
    }
  }
}

std::vector<ProbeHit> LeakProbe::ScanUncovered(size_t min_len,
                                               DontDump dontdump) const {
  std::vector<ProbeHit> hits;
  if (min_len < 8) min_len = 8;
  std::vector<crashdump::RegionView> views(4096);
  size_t n = crashdump::SnapshotRegions(views.data(), views.size());
  views.resize(std::min(n, views.size()));
  std::vector<Interval> skip;
  for (const auto& v : views) skip.push_back({v.addr, v.addr + v.len});
  skip.push_back({reinterpret_cast<uintptr_t>(buf_),
                  reinterpret_cast<uintptr_t>(buf_) + cap_});
  std::sort(skip.begin(), skip.end(),
            [](const Interval& a, const Interval& b) { return a.lo < b.lo; });

  // smaps, not maps: the VmFlags line says which mappings are
  // MADV_DONTDUMP, as the dump writer reads it.
  FILE* f = fopen("/proc/self/smaps", "re");
  if (f == nullptr) return hits;
  struct Mapping {
    uintptr_t lo, hi;
    std::string name;
    bool rw = false;
    bool dontdump = false;
  };
  std::vector<Mapping> all;
  char line[1024];
  while (fgets(line, sizeof(line), f) != nullptr) {
    uintptr_t a = 0;
    uintptr_t b = 0;
    char perms[8] = {};
    int name_at = 0;
    if (sscanf(line, "%" SCNxPTR "-%" SCNxPTR " %7s %*s %*s %*s %n", &a, &b,
               perms, &name_at) >= 3) {
      std::string name = name_at > 0 ? std::string(line + name_at) : "";
      while (!name.empty() && (name.back() == '\n' || name.back() == ' ')) {
        name.pop_back();
      }
      all.push_back({a, b, name.empty() ? "[anon]" : name,
                     perms[0] == 'r' && perms[1] == 'w', false});
      continue;
    }
    if (strncmp(line, "VmFlags:", 8) == 0 && !all.empty()) {
      for (const char* p = line + 8; p[0] != '\0' && p[1] != '\0'; ++p) {
        if (p[0] == 'd' && p[1] == 'd' && p[-1] == ' ' &&
            (p[2] == ' ' || p[2] == '\n' || p[2] == '\0')) {
          all.back().dontdump = true;
        }
      }
    }
  }
  fclose(f);
  // The writer honours the advice unless `dontdump` is ablated.
  const bool skip_dontdump =
      dontdump == DontDump::kHonour && !Ablated(Protection::kDontDump);
  std::vector<Mapping> maps;
  for (const Mapping& m : all) {
    if (!m.rw || m.hi - m.lo > kMaxMapping) continue;
    if (m.name == "[vvar]" || m.name == "[vsyscall]") continue;
    if (m.dontdump && skip_dontdump) continue;
    maps.push_back(m);
  }

  for (const Mapping& m : maps) {
    std::vector<unsigned char> resident((m.hi - m.lo) / kPage);
    const bool have_residency = mincore(reinterpret_cast<void*>(m.lo),
                                        m.hi - m.lo, resident.data()) == 0;
    // Uncovered pieces of this mapping.
    std::vector<Interval> pieces;
    uintptr_t cur = m.lo;
    for (const Interval& s : skip) {
      if (s.hi <= cur || s.lo >= m.hi) continue;
      if (s.lo > cur) pieces.push_back({cur, s.lo});
      cur = std::max(cur, s.hi);
      if (cur >= m.hi) break;
    }
    if (cur < m.hi) pieces.push_back({cur, m.hi});
    for (const Interval& p : pieces) {
      // Scan runs of resident pages only (untouched pages hold nothing).
      uintptr_t run = p.lo;
      while (run < p.hi) {
        const size_t pi = (run - m.lo) / kPage;
        if (have_residency && (resident[pi] & 1) == 0) {
          run = std::min(p.hi, m.lo + (pi + 1) * kPage);
          continue;
        }
        uintptr_t end = run;
        while (end < p.hi) {
          const size_t pj = (end - m.lo) / kPage;
          if (have_residency && (resident[pj] & 1) == 0) break;
          end = std::min(p.hi, m.lo + (pj + 1) * kPage);
        }
        ScanRange(run, end, min_len, m.name, m.dontdump, &hits);
        run = end;
      }
    }
  }
  return hits;
}

std::string LeakProbe::Describe(const std::vector<ProbeHit>& hits) {
  std::string out;
  for (const ProbeHit& h : hits) {
    char b[64];
    snprintf(b, sizeof(b), "0x%" PRIxPTR "+%zu ", h.addr, h.len);
    out += b + h.form + "@" + h.mapping + "\n";
  }
  return out;
}

}  // namespace sigrace::signer::testing
