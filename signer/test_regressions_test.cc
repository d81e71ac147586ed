// The seeded test regressions of the signer's Load() (base/test_regression.h)
// against the registry's cover check, in pairs: with the regression on, a
// rotation of the fixed signer trips the check that names its window, at
// the instant it opens (no fault, no dump); with it off, the same rotation
// trips nothing.
//
//   cover-narrowed-before-wipe  -> update.leave on "signer.working": the
//     narrowing drops the staging slot from the cover while it still holds
//     the unwrapped PKCS#8 bytes.
//   slot-published-after-filled -> write.uncovered on "vault.unwrap": the
//     unwrap writes key bytes into a slot no cover holds yet (the late
//     publish then trips publish on "signer.working" too).
//
// parse-via-heap-copy is not caught here: its copy is a plain malloc (not
// OpenSSL's allocator, so no key-heap hook sees it) outside every cover,
// and no registry transition touches it; the stress harness's alloc
// injector finds it in a dump (stress/stress_test.cc,
// AllocInjectorFindsAWindowNoFailpointNames).

#include <gtest/gtest.h>

#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "base/test_regression.h"
#include "crashdump/registry/registry.h"
#include "signer/signer.h"

namespace sigrace::signer {
namespace {

struct Seen {
  std::string check;
  std::string label;
};

// The check on (kCount, through a recording hook) for the object's life.
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
  std::string Describe() const {
    std::map<std::string, int> n;
    for (const Seen& s : seen()) ++n[s.check + " \"" + s.label + "\""];
    std::string out;
    for (const auto& [k, v] : n) {
      out += "  " + k + " x" + std::to_string(v) + "\n";
    }
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

// Rotates the fixed signer once per algorithm with the check on (after
// Create, whose loads run with it off) and returns what tripped.
std::vector<Seen> RotateFixedUnderCheck(const char* regression,
                                        std::string* describe) {
  EXPECT_TRUE(SetTestRegressions(regression).ok()) << regression;
  SignerOptions o;
  o.variant = Variant::kFixed;
  o.algs = {Alg::kEdDsa, Alg::kRs256};
  o.TEST_key_pool = 1;  // the stress workers' setting; no RSA keygen per load
  auto s = Signer::Create(o);
  EXPECT_TRUE(s.ok()) << s.status().ToString();
  if (!s.ok()) return {};
  std::vector<Seen> seen;
  {
    CoverCheckOn on;
    for (Alg alg : o.algs) {
      EXPECT_TRUE((*s)->Rotate(alg).ok());
      EXPECT_TRUE((*s)->Sign(alg, Claims{}).ok());
    }
    seen = on.seen();
    *describe = on.Describe();
  }
  s->reset();
  EXPECT_TRUE(SetTestRegressions("").ok());
  return seen;
}

class SignerTestRegression : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!kAblationBuild) GTEST_SKIP() << "built without SIGRACE_ABLATION";
  }
  void TearDown() override { ASSERT_TRUE(SetTestRegressions("").ok()); }
};

TEST_F(SignerTestRegression, CoverNarrowedBeforeWipeTripsUpdateLeave) {
  std::string d;
  const std::vector<Seen> seen =
      RotateFixedUnderCheck("cover-narrowed-before-wipe", &d);
  // One trip per rotation (per algorithm), each the narrowing.
  ASSERT_EQ(seen.size(), 2u) << d;
  for (const Seen& s : seen) {
    EXPECT_EQ(s.check, crashdump::kCheckUpdateLeave) << d;
    EXPECT_EQ(s.label, "signer.working") << d;
  }
}

TEST_F(SignerTestRegression, SlotPublishedAfterFilledTripsWriteUncovered) {
  std::string d;
  const std::vector<Seen> seen =
      RotateFixedUnderCheck("slot-published-after-filled", &d);
  ASSERT_FALSE(seen.empty()) << d;
  EXPECT_EQ(seen[0].check, crashdump::kCheckWriteUncovered) << d;
  EXPECT_EQ(seen[0].label, "vault.unwrap") << d;
  bool publish = false;
  for (const Seen& s : seen) {
    publish |=
        s.check == crashdump::kCheckPublish && s.label == "signer.working";
  }
  EXPECT_TRUE(publish) << d;
}

// The pair of both: the same rotations with no regression trip nothing.
TEST_F(SignerTestRegression, FixedWithoutRegressionTripsNothing) {
  std::string d;
  EXPECT_TRUE(RotateFixedUnderCheck("", &d).empty()) << d;
}

}  // namespace
}  // namespace sigrace::signer
