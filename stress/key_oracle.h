// The stress driver's oracle: every private key a worker's signer has held,
// and a scanner over all of their forms (crashdump/oracle).
//
// Where its keys come from (docs/design.md, "How a verdict is reached"):
//   'K' handed over: PKCS#8 DER over the worker's channel, straight from
//       the signer's oracle page; the received bytes are wiped once the
//       forms are derived.
//   'A' announced: before each key's generation starts the worker names it
//       (kid, alg, generation, the stream its material comes from). A key
//       announced and never handed over (a fault inside its keygen, encode
//       or wrap, or a live rotation still running after its dump) is made
//       here by DeriveMissing() from the worker's key seed
//       (signer::TEST_DeriveKey: the keygen runs in this process's key
//       heap, the DER lands in a locked, DONTDUMP page and is wiped once
//       the forms are derived). RSA-2048 costs a keygen, so only those keys
//       are derived. A derived key handed over later must be the same key,
//       byte for byte (compared by SHA-256), or the oracle is wrong: an
//       error.
// Forms of either origin live in KeyForms (wiped on destruction); only
// digests of the DER are kept.
//
// Thread safety: one thread (the driver's). Not async-signal-safe.

#ifndef SIGRACE_STRESS_KEY_ORACLE_H_
#define SIGRACE_STRESS_KEY_ORACLE_H_

#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "base/status.h"
#include "crashdump/oracle/key_forms.h"
#include "crashdump/oracle/scanner.h"
#include "signer/signer.h"

namespace sigrace::stress {

class KeyOracle {
 public:
  // `key_seed`: the worker's (WorkerKeySeed); nullopt derives nothing.
  KeyOracle(uint32_t min_fragment, std::optional<uint64_t> key_seed)
      : min_fragment_(min_fragment), key_seed_(key_seed) {}

  // A 'K' payload: u16 kid length (little-endian), kid, DER. Wipes
  // `payload` whatever the outcome.
  Status AddKey(std::string& payload);
  // An 'A' payload: {"kid","alg","generation","stream_generation",
  // "derivable"}.
  Status AddAnnouncement(const std::string& payload);

  // Derives every announced key that was neither handed over nor derived
  // yet, unless its material is already held under another kid (a
  // --key-pool key). Announced keys it cannot derive (not derivable, or no
  // key seed) are counted in unknown(). Call before judging a dump.
  Status DeriveMissing();

  // The scanner over every key held; rebuilt when keys were added.
  StatusOr<const crashdump::Scanner*> scanner();

  // Distinct key materials in the index.
  size_t size() const { return keys_.size(); }
  // Kids handed over; kids derived here; announced kids judged without at
  // the last DeriveMissing().
  size_t received() const { return received_kids_.size(); }
  size_t derived() const { return derived_kids_.size(); }
  size_t unknown() const { return unknown_; }
  // Kids handed over since the last call.
  size_t TakeNewReceived();
  bool IsDerived(const std::string& kid) const {
    return derived_kids_.count(kid) > 0;
  }
  // Wall time of the last index build (every key's forms, from scratch).
  double last_build_ms() const { return last_build_ms_; }

 private:
  struct Announced {
    signer::Alg alg = signer::Alg::kRs256;
    uint64_t stream_generation = 0;
    bool derivable = false;
    bool received = false;
    bool derived = false;
    std::string derived_digest;  // SHA-256 of the derived DER (no bytes)
  };

  Status AddKeyBytes(const std::string& payload);
  // Adds the forms of one key's DER under `kid`, unless its material is
  // already in the index.
  Status AddForms(const uint8_t* der, size_t der_len, const std::string& kid,
                  const std::string& digest);

  uint32_t min_fragment_;
  std::optional<uint64_t> key_seed_;
  std::map<std::string, Announced> announced_;          // by kid
  std::set<std::pair<signer::Alg, uint64_t>> streams_;  // material held
  std::set<std::string> received_kids_;
  std::set<std::string> derived_kids_;
  size_t unknown_ = 0;
  size_t received_taken_ = 0;
  std::set<std::string> materials_;  // SHA-256 of each key's PKCS#8 DER
  std::vector<crashdump::KeyForms> keys_;
  std::unique_ptr<crashdump::Scanner> scanner_;
  bool dirty_ = false;
  double last_build_ms_ = 0;
};

}  // namespace sigrace::stress

#endif  // SIGRACE_STRESS_KEY_ORACLE_H_
