// TEST-ONLY: an in-process probe that looks for fragments of a Signer's
// private keys in this process's writable memory, outside every range the
// crashdump registry covers at the instant of the scan. It lets signer
// tests show, without a crash or a dump, that a race variant's window
// really exposes key material and that `fixed` exposes none at the same
// instant (the pair the conventions ask for). The real oracle is
// crashdump's scanner over real dumps; this probe stays within signer/.
//
// Forms: RSA d, p, q, dP, dQ, qInv as big-endian bytes and as
// little-endian 64-bit limbs; Ed25519 seed, SHA-512(seed), the clamped
// scalar and the nonce prefix. PKCS#8 DER is covered through these (its
// private part is the big-endian components, or the seed). A hit is a run
// of at least `min_len` bytes equal to a run of one form.
//
// Pages advised MADV_DONTDUMP (the `dd` VmFlag) are skipped by default, as
// the kernel's core dumps and sigrace's writer leave them out, unless the
// `dontdump` protection is ablated (base/ablation.h), with which the writer
// dumps them; DontDump::kInclude scans them anyway, for a test that shows
// what only the advice keeps out.
//
// The forms live in an mmap'd buffer the scan skips, and are wiped when the
// probe is destroyed. Hits carry an address, the form name, the match
// length and the mapping name; never bytes. Never print the forms.
//
// Thread safety: not thread-safe. The scan reads other threads' memory;
// call it while they are paused (failpoint `pause`) or idle.
// Not async-signal-safe.

#ifndef SIGRACE_TESTING_LEAK_PROBE_H_
#define SIGRACE_TESTING_LEAK_PROBE_H_

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "base/status.h"
#include "signer/signer.h"

namespace sigrace::signer::testing {

struct ProbeHit {
  uintptr_t addr;
  size_t len;
  std::string form;       // e.g. "rsa.p.le64", "ed25519.seed"
  std::string mapping;    // "[stack]", "[heap]", "[anon]", a path
  bool dontdump = false;  // the mapping is MADV_DONTDUMP
};

// Whether ScanUncovered reads MADV_DONTDUMP mappings: kHonour as the dump
// writer does (skips them unless `dontdump` is ablated), kInclude always.
enum class DontDump { kHonour, kInclude };

class LeakProbe {
 public:
  LeakProbe();
  ~LeakProbe();
  LeakProbe(const LeakProbe&) = delete;
  LeakProbe& operator=(const LeakProbe&) = delete;

  // Derives the forms of every key the signer has had (TEST_VisitKeys).
  Status AddSigner(const Signer& signer);
  size_t form_count() const { return forms_.size(); }

  // Every fragment of >= min_len bytes outside the registry's cover (and,
  // with kHonour, outside pages a dump leaves out).
  std::vector<ProbeHit> ScanUncovered(
      size_t min_len = 16, DontDump dontdump = DontDump::kHonour) const;

  // "rsa.p.le64@[heap]" lines, for a failure message (no bytes).
  static std::string Describe(const std::vector<ProbeHit>& hits);

 private:
  struct Form {
    std::string name;
    size_t offset;  // into the buffer
    size_t len;
  };
  Status AddForm(const std::string& name, const uint8_t* bytes, size_t len);
  Status AddKey(const OracleKey& key);
  void ScanRange(uintptr_t lo, uintptr_t hi, size_t min_len,
                 const std::string& mapping, bool dontdump,
                 std::vector<ProbeHit>* hits) const;

  uint8_t* buf_ = nullptr;
  size_t cap_ = 0;
  size_t used_ = 0;
  std::vector<Form> forms_;
  // Every 8-byte window of every form: value -> (form, offset in form).
  std::unordered_map<uint64_t, std::vector<std::pair<uint32_t, uint32_t>>>
      index_;
  // One bit per hashed 8-byte window: most memory words miss here and never
  // reach the hash map, which keeps a scan of an ASan process fast.
  std::vector<uint64_t> filter_;
};

}  // namespace sigrace::signer::testing

#endif  // SIGRACE_TESTING_LEAK_PROBE_H_
