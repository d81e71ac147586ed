// The workload models of exposure_models.h, each paired with the
// protection it exists for: the exposure is there when the protection is
// switched off (base/ablation.h) and absent when it is on. The in-process
// leak probe (testing/leak_probe.h) judges memory; no bytes are printed.
// The SIMD model's protection lives in the crash handler (redaction of
// SIMD registers of threads outside a scope): here the test shows that
// the model leaves key bytes in the registers and none in memory; the
// stress ablation run judges it on real dumps. The guarded key cache's
// protection is MADV_DONTDUMP and the dump writer's honouring of it: here
// the tests show that the advice is the page's only cover; the end-to-end
// pair (stress/exposure_e2e_test.cc) shows the writer leaving it out.

#include "signer/exposure_models.h"

#include <gtest/gtest.h>
#include <openssl/crypto.h>

#include <cstdint>
#include <memory>
#include <vector>

#include "base/ablation.h"
#include "signer/signer.h"
#include "testing/leak_probe.h"

namespace sigrace::signer {
namespace {

using testing::LeakProbe;
using testing::ProbeHit;

std::unique_ptr<Signer> Make(Alg alg) {
  SignerOptions o;
  o.algs = {alg};
  auto s = Signer::Create(o);
  EXPECT_TRUE(s.ok()) << s.status().ToString();
  return s.ok() ? std::move(*s) : nullptr;
}

// Signs once with the signing frames pushed 16 KiB below the caller's, so
// the probe, run from the caller afterwards, does not overwrite what the
// signature left below its frame.
__attribute__((noinline)) bool SignDeep(Signer* s, Alg alg) {
  volatile uint8_t pad[16 * 1024];
  pad[0] = 0;
  asm volatile("" : : "r"(pad) : "memory");
  return s->Sign(alg, Claims{}).ok();
}

std::vector<ProbeHit> OnStack(const std::vector<ProbeHit>& hits) {
  std::vector<ProbeHit> out;
  for (const ProbeHit& h : hits) {
    if (h.mapping == "[stack]") out.push_back(h);
  }
  return out;
}

class ExposureModels : public ::testing::TestWithParam<Alg> {
 protected:
  void SetUp() override {
    if (!kAblationBuild) GTEST_SKIP() << "built without SIGRACE_ABLATION";
  }
  void TearDown() override {
    exposure::TEST_ClearKeyEventLog();
    ASSERT_TRUE(SetAblation("").ok());
  }
};

// The pair for `scrub`: without it, the stack model's key bytes stay on
// the stack below the signing frame once the signature's scope has ended.
TEST_P(ExposureModels, StackResidueLeaksWithoutScrub) {
  std::unique_ptr<Signer> s = Make(GetParam());
  ASSERT_NE(s, nullptr);
  LeakProbe probe;
  ASSERT_TRUE(probe.AddSigner(*s).ok());
  ASSERT_TRUE(SetAblation("scrub").ok());
  ASSERT_TRUE(SignDeep(s.get(), GetParam()));
  const auto hits = OnStack(probe.ScanUncovered());
  EXPECT_FALSE(hits.empty())
      << AlgName(GetParam()) << ": no key fragment on the stack";
}

TEST_P(ExposureModels, StackResidueScrubbedBeforeScopeEnds) {
  std::unique_ptr<Signer> s = Make(GetParam());
  ASSERT_NE(s, nullptr);
  LeakProbe probe;
  ASSERT_TRUE(probe.AddSigner(*s).ok());
  ASSERT_TRUE(SetAblation("").ok());
  ASSERT_TRUE(SignDeep(s.get(), GetParam()));
  const auto hits = probe.ScanUncovered();
  EXPECT_TRUE(hits.empty()) << AlgName(GetParam()) << ":\n"
                            << LeakProbe::Describe(hits);
}

// Stores xmm8-xmm15 to out[0..128), then zeroes them.
__attribute__((noinline)) void TakeUpperXmm(uint8_t* out) {
#if defined(__x86_64__)
  asm volatile(
      "movdqu %%xmm8, 0(%0)\n\t"
      "movdqu %%xmm9, 16(%0)\n\t"
      "movdqu %%xmm10, 32(%0)\n\t"
      "movdqu %%xmm11, 48(%0)\n\t"
      "movdqu %%xmm12, 64(%0)\n\t"
      "movdqu %%xmm13, 80(%0)\n\t"
      "movdqu %%xmm14, 96(%0)\n\t"
      "movdqu %%xmm15, 112(%0)\n\t"
      "pxor %%xmm8, %%xmm8\n\tpxor %%xmm9, %%xmm9\n\t"
      "pxor %%xmm10, %%xmm10\n\tpxor %%xmm11, %%xmm11\n\t"
      "pxor %%xmm12, %%xmm12\n\tpxor %%xmm13, %%xmm13\n\t"
      "pxor %%xmm14, %%xmm14\n\tpxor %%xmm15, %%xmm15\n\t"
      :
      : "r"(out)
      : "memory", "xmm8", "xmm9", "xmm10", "xmm11", "xmm12", "xmm13", "xmm14",
        "xmm15");
#else
  (void)out;
#endif
}

// The SIMD model's exposure: after a signature, outside any scope, the
// signing thread's vector registers hold a fragment of a private form,
// while memory holds none (the scratch page is wiped and covered). Only
// the crash handler's SIMD redaction covers it (`simd-outside-scope`).
TEST_P(ExposureModels, SimdMoveLeavesKeyOnlyInVectorRegisters) {
#if !defined(__x86_64__)
  GTEST_SKIP() << "the model uses xmm8-xmm15";
#endif
  std::unique_ptr<Signer> s = Make(GetParam());
  ASSERT_NE(s, nullptr);
  LeakProbe probe;
  ASSERT_TRUE(probe.AddSigner(*s).ok());
  // Allocated before the signature: nothing may run between it and the
  // register read but the return path of Sign().
  std::vector<uint8_t> regs(exposure::kSliceMaxBytes);
  auto token = s->Sign(GetParam(), Claims{});
  TakeUpperXmm(regs.data());
  ASSERT_TRUE(token.ok()) << token.status().ToString();
  const auto hits = probe.ScanUncovered();
  OPENSSL_cleanse(regs.data(), regs.size());
  const uintptr_t lo = reinterpret_cast<uintptr_t>(regs.data());
  size_t in_regs = 0;
  std::vector<ProbeHit> elsewhere;
  for (const ProbeHit& h : hits) {
    if (h.addr >= lo && h.addr < lo + regs.size()) {
      ++in_regs;
    } else {
      elsewhere.push_back(h);
    }
  }
  EXPECT_GT(in_regs, 0u) << AlgName(GetParam())
                         << ": xmm8-xmm15 hold no key fragment";
  EXPECT_TRUE(elsewhere.empty()) << LeakProbe::Describe(elsewhere);
}

std::vector<ProbeHit> Where(const std::vector<ProbeHit>& hits, bool dontdump) {
  std::vector<ProbeHit> out;
  for (const ProbeHit& h : hits) {
    if (h.dontdump == dontdump) out.push_back(h);
  }
  return out;
}

// The pair for `dontdump`, with it on: the guarded key cache holds the key
// outside every registry cover, in MADV_DONTDUMP pages, so a scan that
// reads those pages anyway finds it there, and a scan that leaves them out
// as the dump writer does finds nothing at all.
TEST_P(ExposureModels, GuardedKeyCacheLeftOutOnlyByDontDump) {
  std::unique_ptr<Signer> s = Make(GetParam());
  ASSERT_NE(s, nullptr);
  LeakProbe probe;
  ASSERT_TRUE(probe.AddSigner(*s).ok());
  const auto all = probe.ScanUncovered(16, testing::DontDump::kInclude);
  EXPECT_FALSE(Where(all, /*dontdump=*/true).empty())
      << AlgName(GetParam()) << ": no key fragment in MADV_DONTDUMP pages";
  const auto dumped = probe.ScanUncovered();
  EXPECT_TRUE(dumped.empty()) << AlgName(GetParam()) << ":\n"
                              << LeakProbe::Describe(dumped);
}

// `dontdump` switched off: the cache's pages are ordinary ones, outside
// every cover, and hold the key.
TEST_P(ExposureModels, GuardedKeyCacheExposedWithoutDontDump) {
  ASSERT_TRUE(SetAblation("dontdump").ok());
  std::unique_ptr<Signer> s = Make(GetParam());
  ASSERT_NE(s, nullptr);
  LeakProbe probe;
  ASSERT_TRUE(probe.AddSigner(*s).ok());
  const auto hits = probe.ScanUncovered();
  EXPECT_FALSE(Where(hits, /*dontdump=*/false).empty())
      << AlgName(GetParam()) << ": no key fragment in the key cache";
  // Nothing else of the key escaped: the other hits' pages are the cache's.
  const auto all = probe.ScanUncovered(16, testing::DontDump::kInclude);
  EXPECT_TRUE(Where(all, /*dontdump=*/true).empty())
      << LeakProbe::Describe(Where(all, true));
}

std::vector<ProbeHit> InLog(const std::vector<ProbeHit>& hits) {
  const exposure::KeyEventLogView log = exposure::TEST_KeyEventLog();
  std::vector<ProbeHit> out;
  for (const ProbeHit& h : hits) {
    if (h.addr >= log.addr && h.addr < log.addr + log.bytes) out.push_back(h);
  }
  return out;
}

// The pair for `key-heap-wipe`, with it on: the record's block is the one
// the staged DER was freed from, wiped, so every record's unfilled tail is
// zeros and the log holds no key fragment.
TEST_P(ExposureModels, KeyEventRecordTailZeroWithTheWipe) {
  exposure::TEST_ClearKeyEventLog();
  std::unique_ptr<Signer> s = Make(GetParam());
  ASSERT_NE(s, nullptr);
  EXPECT_EQ(exposure::TEST_KeyEventLog().records, 1u);
  EXPECT_TRUE(exposure::TEST_KeyEventTailsZero());
  LeakProbe probe;
  ASSERT_TRUE(probe.AddSigner(*s).ok());
  const auto hits = probe.ScanUncovered();
  EXPECT_TRUE(hits.empty()) << AlgName(GetParam()) << ":\n"
                            << LeakProbe::Describe(hits);
}

// `key-heap-wipe` switched off: the record's tail holds the DER the load
// freed into the same block, and the log, on the ordinary heap, holds a
// private form.
TEST_P(ExposureModels, KeyEventRecordCarriesTheKeyWithoutTheWipe) {
  ASSERT_TRUE(SetAblation("key-heap-wipe").ok());
  exposure::TEST_ClearKeyEventLog();
  std::unique_ptr<Signer> s = Make(GetParam());
  ASSERT_NE(s, nullptr);
  EXPECT_EQ(exposure::TEST_KeyEventLog().records, 1u);
  EXPECT_FALSE(exposure::TEST_KeyEventTailsZero());
  LeakProbe probe;
  ASSERT_TRUE(probe.AddSigner(*s).ok());
  EXPECT_FALSE(InLog(probe.ScanUncovered()).empty())
      << AlgName(GetParam()) << ": no key fragment in the key-event log";
}

INSTANTIATE_TEST_SUITE_P(Algs, ExposureModels,
                         ::testing::Values(Alg::kEdDsa, Alg::kRs256),
                         [](const ::testing::TestParamInfo<Alg>& p) {
                           return std::string(AlgName(p.param));
                         });

}  // namespace
}  // namespace sigrace::signer
