#include "stress/key_oracle.h"

#include <openssl/crypto.h>
#include <openssl/sha.h>

#include <chrono>
#include <nlohmann/json.hpp>

#include "signer/deterministic_keygen.h"

namespace sigrace::stress {
namespace {

std::string Digest(const uint8_t* der, size_t len) {
  std::string digest(SHA256_DIGEST_LENGTH, '\0');
  SHA256(der, len, reinterpret_cast<uint8_t*>(digest.data()));
  return digest;
}

}  // namespace

Status KeyOracle::AddKey(std::string& payload) {
  Status st = AddKeyBytes(payload);
  OPENSSL_cleanse(payload.data(), payload.size());
  return st;
}

Status KeyOracle::AddKeyBytes(const std::string& p) {
  if (p.size() < 2) return DataLossError("malformed key message");
  const size_t kid_len = static_cast<uint8_t>(p[0]) |
                         (static_cast<size_t>(static_cast<uint8_t>(p[1])) << 8);
  if (p.size() < 2 + kid_len) return DataLossError("malformed key message");
  const std::string kid = p.substr(2, kid_len);
  const uint8_t* der = reinterpret_cast<const uint8_t*>(p.data()) + 2 + kid_len;
  const size_t der_len = p.size() - 2 - kid_len;
  const std::string digest = Digest(der, der_len);
  auto an = announced_.find(kid);
  if (an != announced_.end()) {
    if (an->second.derived && an->second.derived_digest != digest) {
      return DataLossError("key " + kid +
                           " as handed over differs from the key derived "
                           "from its announcement");
    }
    an->second.received = true;
    streams_.insert({an->second.alg, an->second.stream_generation});
  }
  if (!received_kids_.insert(kid).second) return Status::Ok();
  return AddForms(der, der_len, kid, digest);
}

Status KeyOracle::AddAnnouncement(const std::string& payload) {
  const nlohmann::json j = nlohmann::json::parse(payload, nullptr, false);
  if (!j.is_object() || !j.contains("kid") || !j["kid"].is_string() ||
      !j.contains("alg") || !j["alg"].is_string() ||
      !j.contains("stream_generation") ||
      !j["stream_generation"].is_number_unsigned()) {
    return DataLossError("malformed key announcement");
  }
  StatusOr<signer::Alg> alg = signer::ParseAlg(j["alg"].get<std::string>());
  if (!alg.ok()) return DataLossError("key announcement: unknown alg");
  Announced a;
  a.alg = *alg;
  a.stream_generation = j["stream_generation"].get<uint64_t>();
  a.derivable = j.value("derivable", false);
  announced_.emplace(j["kid"].get<std::string>(), a);
  return Status::Ok();
}

Status KeyOracle::DeriveMissing() {
  unknown_ = 0;
  for (auto& [kid, a] : announced_) {
    if (a.received || a.derived) continue;
    if (streams_.count({a.alg, a.stream_generation}) > 0) continue;
    if (!a.derivable || !key_seed_) {
      ++unknown_;
      continue;
    }
    const signer::KeyStreamId id{*key_seed_, a.alg, a.stream_generation};
    const std::string& name = kid;
    Announced& entry = a;
    SIGRACE_RETURN_IF_ERROR(signer::TEST_DeriveKey(
        id, [&](const uint8_t* der, size_t len) -> Status {
          std::string digest = Digest(der, len);
          SIGRACE_RETURN_IF_ERROR(AddForms(der, len, name, digest));
          entry.derived_digest = std::move(digest);
          return Status::Ok();
        }));
    a.derived = true;
    streams_.insert({a.alg, a.stream_generation});
    derived_kids_.insert(kid);
  }
  return Status::Ok();
}

StatusOr<const crashdump::Scanner*> KeyOracle::scanner() {
  if (keys_.empty()) return InternalError("the worker handed over no key");
  if (dirty_ || !scanner_) {
    crashdump::ScanOptions so;
    so.min_fragment = min_fragment_;
    so.threads = 1;  // dumps are a few MiB; thread start-up would dominate
    so.report_anchors = false;
    const auto t0 = std::chrono::steady_clock::now();
    StatusOr<std::unique_ptr<crashdump::Scanner>> s =
        crashdump::Scanner::Create(keys_, so);
    if (!s.ok()) return s.status();
    scanner_ = std::move(*s);
    dirty_ = false;
    last_build_ms_ = std::chrono::duration<double, std::milli>(
                         std::chrono::steady_clock::now() - t0)
                         .count();
  }
  return scanner_.get();
}

size_t KeyOracle::TakeNewReceived() {
  const size_t n = received() - received_taken_;
  received_taken_ = received();
  return n;
}

// A key whose material the oracle already has (a --key-pool rotation, or a
// derived key handed over later) adds nothing to search for: the index
// stays as it is. The digest is kept, never the bytes.
Status KeyOracle::AddForms(const uint8_t* der, size_t der_len,
                           const std::string& kid, const std::string& digest) {
  if (!materials_.insert(digest).second) return Status::Ok();
  StatusOr<crashdump::KeyForms> forms =
      crashdump::KeyForms::FromBytes(der, der_len, kid);
  if (!forms.ok()) return forms.status();
  keys_.push_back(std::move(*forms));
  dirty_ = true;
  return Status::Ok();
}

}  // namespace sigrace::stress
