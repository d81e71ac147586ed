// Race-window tests. Each race variant is faulted exactly inside its window
// through the failpoint and hit its VariantInfo names (the same data the
// stress driver uses), and an in-process probe (leak_probe.h) looks for key
// fragments outside the registry's cover at that instant. Every window is
// tested in pairs: the variant exposes key material there, `fixed` exposes
// none at the same failpoint and hit. No dump and no timing: the failpoint
// decides the instant.

#include <gtest/gtest.h>

#include <memory>
#include <string>
#include <vector>

#include "base/failpoint.h"
#include "signer/signer.h"
#include "testing/leak_probe.h"

namespace sigrace::signer {
namespace {

using testing::LeakProbe;
using testing::ProbeHit;

std::unique_ptr<Signer> Make(Variant v, Alg alg) {
  SignerOptions o;
  o.variant = v;
  o.algs = {alg};
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

// Runs the variant's trigger once on a signer of `variant` with the
// window's failpoint armed as a probe at its hit. Sets *fired.
std::vector<ProbeHit> ProbeWindow(const VariantInfo& info, Variant variant,
                                  Alg alg, bool* fired) {
  *fired = false;
  std::unique_ptr<Signer> s = Make(variant, alg);
  if (s == nullptr) return {};
  const bool sign = std::string(info.trigger) == "sign-eddsa";
  // Signing windows are probed with forms derived beforehand: deriving
  // them inside OpenSSL's signing code would run OpenSSL re-entrantly.
  LeakProbe early;
  if (sign) {
    Status st = early.AddSigner(*s);
    EXPECT_TRUE(st.ok()) << st.ToString();
  }
  std::vector<ProbeHit> hits;
  EXPECT_TRUE(failpoint::SetCallback(info.failpoint, [&] {
                if (sign) {
                  hits = early.ScanUncovered();
                } else {
                  // The key being loaded already has its record, so the
                  // probe derives its forms too.
                  LeakProbe probe;
                  Status st = probe.AddSigner(*s);
                  EXPECT_TRUE(st.ok()) << st.ToString();
                  hits = probe.ScanUncovered();
                }
                *fired = true;
              }).ok());
  const std::string spec =
      std::string(info.failpoint) + "=callback@" + std::to_string(info.hit);
  EXPECT_TRUE(failpoint::Configure(spec).ok()) << spec;
  if (sign) {
    auto t = s->Sign(alg, Claims{});
    EXPECT_TRUE(t.ok()) << t.status().ToString();
  } else {
    Status st = s->Rotate(alg);
    EXPECT_TRUE(st.ok()) << st.ToString();
  }
  failpoint::ClearAll();
  return hits;
}

class WindowTest : public ::testing::TestWithParam<VariantInfo> {
 protected:
  void TearDown() override { failpoint::ClearAll(); }
};

// The race variant leaks inside its window: the harness can reproduce it.
TEST_P(WindowTest, VariantExposesKeyInsideItsWindow) {
  const VariantInfo& info = GetParam();
  for (Alg alg : TriggerAlgs(info)) {
    bool fired = false;
    auto hits = ProbeWindow(info, info.variant, alg, &fired);
    ASSERT_TRUE(fired) << info.failpoint << " did not fire";
    EXPECT_FALSE(hits.empty())
        << info.name << "/" << AlgName(alg) << ": no key fragment outside "
        << "the registry's cover at " << info.failpoint << "@" << info.hit;
  }
}

// `fixed` at the same failpoint and hit: nothing outside the cover.
TEST_P(WindowTest, FixedCoversKeyAtTheSameInstant) {
  const VariantInfo& info = GetParam();
  for (Alg alg : TriggerAlgs(info)) {
    bool fired = false;
    auto hits = ProbeWindow(info, Variant::kFixed, alg, &fired);
    ASSERT_TRUE(fired) << info.failpoint << " did not fire";
    EXPECT_TRUE(hits.empty())
        << "fixed/" << AlgName(alg) << " at " << info.failpoint << ":\n"
        << LeakProbe::Describe(hits);
  }
}

std::vector<VariantInfo> RaceVariants() {
  std::vector<VariantInfo> out;
  for (const VariantInfo& v : ListVariants()) {
    if (v.variant != Variant::kFixed) out.push_back(v);
  }
  return out;
}

INSTANTIATE_TEST_SUITE_P(Variants, WindowTest,
                         ::testing::ValuesIn(RaceVariants()),
                         [](const ::testing::TestParamInfo<VariantInfo>& p) {
                           std::string n = p.param.name;
                           for (char& c : n) {
                             if (c == '-') c = '_';
                           }
                           return n;
                         });

// `fixed` signing, probed at every OpenSSL allocation of an Ed25519 and an
// RS256 signature: the cover holds for the whole signature, not only at the
// shallow-scope variant's hit.
TEST(SignWindow, FixedCoversEverySigningAllocation) {
  for (Alg alg : {Alg::kEdDsa, Alg::kRs256}) {
    std::unique_ptr<Signer> s = Make(Variant::kFixed, alg);
    ASSERT_NE(s, nullptr);
    LeakProbe probe;
    ASSERT_TRUE(probe.AddSigner(*s).ok());
    int probes = 0;
    std::vector<ProbeHit> all;
    ASSERT_TRUE(failpoint::SetCallback("window.shallow_scope", [&] {
                  ++probes;
                  auto h = probe.ScanUncovered();
                  all.insert(all.end(), h.begin(), h.end());
                }).ok());
    ASSERT_TRUE(failpoint::Configure("window.shallow_scope=callback").ok());
    auto t = s->Sign(alg, Claims{});
    failpoint::ClearAll();
    ASSERT_TRUE(t.ok()) << t.status().ToString();
    EXPECT_GT(probes, 0);
    EXPECT_TRUE(all.empty()) << AlgName(alg) << ":\n"
                             << LeakProbe::Describe(all);
  }
}

// After signing and rotating under `fixed`, nothing of any key of the run
// (retired ones included) sits outside the cover.
TEST(SignWindow, FixedLeavesNothingAfterSignAndRotate) {
  SignerOptions o;
  auto s = Signer::Create(o);
  ASSERT_TRUE(s.ok()) << s.status().ToString();
  for (Alg alg : {Alg::kEdDsa, Alg::kRs256}) {
    ASSERT_TRUE((*s)->Sign(alg, Claims{}).ok());
    ASSERT_TRUE((*s)->Rotate(alg).ok());
    ASSERT_TRUE((*s)->Sign(alg, Claims{}).ok());
  }
  LeakProbe probe;
  ASSERT_TRUE(probe.AddSigner(**s).ok());
  // Two keys per alg: 4 Ed25519 forms and 12 RSA forms each.
  EXPECT_EQ(probe.form_count(), 2u * 4 + 2u * 12);
  auto hits = probe.ScanUncovered();
  EXPECT_TRUE(hits.empty()) << LeakProbe::Describe(hits);
}

}  // namespace
}  // namespace sigrace::signer
