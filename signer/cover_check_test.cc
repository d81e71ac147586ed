// The registry's cover check (crashdump::SetCoverCheck) driven through the
// signer. Each race variant trips it at a named check when its trigger runs
// once with the check on, and before the window's failpoint fires: the
// window is caught at the instant it opens, with no fault and no dump.
// `fixed` never trips it, over many signatures and rotations of every
// algorithm, concurrent signing and the oracle's visits included.

#include <gtest/gtest.h>
#include <openssl/crypto.h>

#include <atomic>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "base/failpoint.h"
#include "crashdump/registry/registry.h"
#include "signer/key_heap.h"
#include "signer/signer.h"

namespace sigrace::signer {
namespace {

// What a test learns of a violation (never bytes).
struct Seen {
  std::string check;
  std::string label;
};

// Turns the check on (kCount, through a recording hook) for its life.
// The hook may run on any thread.
class CoverCheckOn {
 public:
  CoverCheckOn() {
    crashdump::SetCoverViolationHook(&Record, this);
    crashdump::SetCoverCheck(crashdump::CoverCheckMode::kCount);
  }
  ~CoverCheckOn() {
    crashdump::SetCoverCheck(crashdump::CoverCheckMode::kOff);
    crashdump::SetCoverViolationHook(nullptr, nullptr);
  }
  CoverCheckOn(const CoverCheckOn&) = delete;
  CoverCheckOn& operator=(const CoverCheckOn&) = delete;

  std::vector<Seen> seen() const {
    std::lock_guard<std::mutex> l(mu_);
    return seen_;
  }
  size_t count() const {
    std::lock_guard<std::mutex> l(mu_);
    return seen_.size();
  }
  std::string Describe() const {
    std::map<std::string, int> n;
    for (const Seen& s : seen()) ++n[s.check + " \"" + s.label + "\""];
    std::string out;
    for (const auto& [k, v] : n)
      out += "  " + k + " x" + std::to_string(v) + "\n";
    return out;
  }

 private:
  static void Record(const crashdump::CoverViolation& v, void* arg) {
    auto* self = static_cast<CoverCheckOn*>(arg);
    std::lock_guard<std::mutex> l(self->mu_);
    self->seen_.push_back({v.check, v.label});
  }
  mutable std::mutex mu_;
  std::vector<Seen> seen_;
};

std::unique_ptr<Signer> Make(Variant v, std::vector<Alg> algs,
                             size_t key_pool = 0) {
  SignerOptions o;
  o.variant = v;
  o.algs = std::move(algs);
  o.TEST_key_pool = key_pool;
  auto s = Signer::Create(o);
  EXPECT_TRUE(s.ok()) << s.status().ToString();
  return s.ok() ? std::move(*s) : nullptr;
}

std::vector<Alg> TriggerAlgs(const VariantInfo& info) {
  const std::string t = info.trigger;
  if (t == "rotate") return {Alg::kEdDsa, Alg::kRs256};
  if (t == "rotate-rs256") return {Alg::kRs256};
  if (t == "sign-eddsa") return {Alg::kEdDsa};
  ADD_FAILURE() << "unknown trigger " << t;
  return {};
}

// The first check each race variant trips, and the label it names.
struct Expected {
  const char* check;
  const char* label;
};
Expected ExpectedTrip(Variant v) {
  switch (v) {
    case Variant::kPublishLate:
      // The unwrap writes into the unpublished staging slot; the late
      // publish then trips crashdump::kCheckPublish as well.
      return {crashdump::kCheckWriteUncovered, "vault.unwrap"};
    case Variant::kUnpublishEarly:
      return {crashdump::kCheckUnpublish, "signer.working"};
    case Variant::kTornUpdate:
      return {crashdump::kCheckTornAddress, "signer.working"};
    case Variant::kShallowScope:
      return {crashdump::kCheckStackDepth, "secret-stack"};
    case Variant::kHeapMontgomery:
    case Variant::kGlobalKeyScope:
      return {kCheckKeyScopeAlloc, "signer.heap"};
    case Variant::kFixed:
      break;
  }
  return {"", ""};
}

class CoverCheckVariant : public ::testing::TestWithParam<VariantInfo> {
 protected:
  void TearDown() override { failpoint::ClearAll(); }
};

TEST_P(CoverCheckVariant, TripsBeforeItsWindowsFailpoint) {
  const VariantInfo& info = GetParam();
  const Expected want = ExpectedTrip(info.variant);
  for (Alg alg : TriggerAlgs(info)) {
    SCOPED_TRACE(std::string(info.name) + "/" + AlgName(alg));
    // Created with the check off: heap-montgomery and global-key-scope
    // open their windows in Create's loads too.
    std::unique_ptr<Signer> s = Make(info.variant, {alg});
    ASSERT_NE(s, nullptr);
    CoverCheckOn on;
    size_t at_failpoint = 0;
    bool fired = false;
    ASSERT_TRUE(failpoint::SetCallback(info.failpoint, [&] {
                  fired = true;
                  at_failpoint = on.count();
                }).ok());
    ASSERT_TRUE(failpoint::Configure(std::string(info.failpoint) +
                                     "=callback@" + std::to_string(info.hit))
                    .ok());
    if (std::string(info.trigger) == "sign-eddsa") {
      auto t = s->Sign(alg, Claims{});
      EXPECT_TRUE(t.ok()) << t.status().ToString();
    } else {
      Status st = s->Rotate(alg);
      EXPECT_TRUE(st.ok()) << st.ToString();
    }
    failpoint::ClearAll();
    ASSERT_TRUE(fired) << info.failpoint << " did not fire";
    const std::vector<Seen> seen = on.seen();
    ASSERT_FALSE(seen.empty()) << "the cover check did not trip";
    EXPECT_EQ(seen[0].check, want.check) << on.Describe();
    EXPECT_EQ(seen[0].label, want.label) << on.Describe();
    EXPECT_GT(at_failpoint, 0u)
        << "the check tripped only after " << info.failpoint << "\n"
        << on.Describe();
  }
}

std::vector<VariantInfo> RaceVariants() {
  std::vector<VariantInfo> out;
  for (const VariantInfo& v : ListVariants()) {
    if (v.variant != Variant::kFixed) out.push_back(v);
  }
  return out;
}

INSTANTIATE_TEST_SUITE_P(Variants, CoverCheckVariant,
                         ::testing::ValuesIn(RaceVariants()),
                         [](const ::testing::TestParamInfo<VariantInfo>& p) {
                           std::string n = p.param.name;
                           for (char& c : n) {
                             if (c == '-') c = '_';
                           }
                           return n;
                         });

// Every variant the catalogue lists has an expected trip: a new variant
// must say where the check catches it.
TEST(CoverCheck, EveryRaceVariantHasANamedTrip) {
  for (const VariantInfo& v : RaceVariants()) {
    EXPECT_STRNE(ExpectedTrip(v.variant).check, "") << v.name;
  }
}

// `fixed`, check on from Create on: fresh keys (keygen, PKCS#8, wrap,
// load) and rotations of every algorithm, signatures, the oracle's visits.
TEST(CoverCheck, FixedNeverTripsWithFreshKeys) {
  CoverCheckOn on;
  std::unique_ptr<Signer> s = Make(Variant::kFixed, {Alg::kRs256, Alg::kEdDsa});
  ASSERT_NE(s, nullptr);
  for (int round = 0; round < 2; ++round) {
    for (Alg alg : {Alg::kRs256, Alg::kEdDsa}) {
      for (int i = 0; i < 25; ++i) ASSERT_TRUE(s->Sign(alg, Claims{}).ok());
      ASSERT_TRUE(s->Rotate(alg).ok());
    }
  }
  ASSERT_TRUE(
      s->TEST_VisitKeys([](const OracleKey&) { return Status::Ok(); }).ok());
  s.reset();  // retirement and teardown are transitions too
  EXPECT_EQ(on.count(), 0u) << on.Describe();
}

// `fixed` with pool keys (the stress driver's setting): many rotations of
// each algorithm while three threads sign.
TEST(CoverCheck, FixedNeverTripsUnderConcurrentSigningAndRotation) {
  CoverCheckOn on;
  std::unique_ptr<Signer> s =
      Make(Variant::kFixed, {Alg::kRs256, Alg::kEdDsa}, /*key_pool=*/2);
  ASSERT_NE(s, nullptr);
  std::atomic<bool> stop{false};
  std::atomic<int> failures{0};
  std::vector<std::thread> signers;
  for (int t = 0; t < 3; ++t) {
    signers.emplace_back([&, t] {
      const Alg alg = t % 2 == 0 ? Alg::kEdDsa : Alg::kRs256;
      while (!stop.load(std::memory_order_relaxed)) {
        if (!s->Sign(alg, Claims{}).ok()) failures.fetch_add(1);
      }
    });
  }
  for (int i = 0; i < 12; ++i) {
    EXPECT_TRUE(s->Rotate(Alg::kEdDsa).ok());
    EXPECT_TRUE(s->Rotate(Alg::kRs256).ok());
  }
  stop.store(true);
  for (auto& t : signers) t.join();
  EXPECT_EQ(failures.load(), 0);
  s.reset();
  EXPECT_EQ(on.count(), 0u) << on.Describe();
}

// The key-heap check on its own: an allocation inside a KeyAllocScope must
// land in the key heap.
TEST(CoverCheck, SuspendedKeyScopeAllocationTrips) {
  CoverCheckOn on;
  void* outside = OPENSSL_malloc(64);  // no scope: the ordinary heap is right
  void* inside = nullptr;
  void* suspended = nullptr;
  {
    KeyAllocScope scope;
    inside = OPENSSL_malloc(64);
    EXPECT_EQ(on.count(), 0u);
    KeyAllocSuspend suspend;
    suspended = OPENSSL_malloc(64);
  }
  OPENSSL_free(outside);
  OPENSSL_free(inside);
  OPENSSL_free(suspended);
  const std::vector<Seen> seen = on.seen();
  ASSERT_EQ(seen.size(), 1u) << on.Describe();
  EXPECT_EQ(seen[0].check, kCheckKeyScopeAlloc);
}

TEST(CoverCheck, ProcessWideScopeLostToAnInnerExitTrips) {
  const KeyScopeModel saved = GetKeyScopeModel();
  CoverCheckOn on;
  SetKeyScopeModel(KeyScopeModel::kProcessWide);
  {
    KeyAllocScope outer;
    { KeyAllocScope inner; }  // clears the one flag
    OPENSSL_free(OPENSSL_malloc(64));
  }
  SetKeyScopeModel(KeyScopeModel::kPerThread);
  {
    KeyAllocScope outer;
    { KeyAllocScope inner; }
    OPENSSL_free(OPENSSL_malloc(64));
  }
  SetKeyScopeModel(saved);
  const std::vector<Seen> seen = on.seen();
  ASSERT_EQ(seen.size(), 1u) << on.Describe();
  EXPECT_EQ(seen[0].check, kCheckKeyScopeAlloc);
}

}  // namespace
}  // namespace sigrace::signer
