#include "crashdump/registry/registry.h"

#include <gtest/gtest.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

namespace sigrace::crashdump {
namespace {

std::vector<RegionView> Snapshot() {
  std::vector<RegionView> v(kMaxRegions + kMaxScopeThreads);
  v.resize(SnapshotRegions(v.data(), v.size()));
  return v;
}

bool Covers(const std::vector<RegionView>& snap, const void* p, size_t n) {
  const uintptr_t a = reinterpret_cast<uintptr_t>(p);
  for (const RegionView& r : snap) {
    if (a >= r.addr && a + n <= r.addr + r.len) return true;
  }
  return false;
}

TEST(Registry, PublishUnpublish) {
  char buf[64];
  {
    ScopedRegion r(buf, sizeof buf, "test.buf");
    ASSERT_TRUE(r.published());
    EXPECT_TRUE(Covers(Snapshot(), buf, sizeof buf));
  }
  EXPECT_FALSE(Covers(Snapshot(), buf, sizeof buf));
}

TEST(Registry, RejectsEmptyAndStaleHandles) {
  char buf[8];
  EXPECT_FALSE(PublishRegion(buf, 0, "x").valid());
  EXPECT_FALSE(PublishRegion(nullptr, 8, "x").valid());
  RegionHandle h = PublishRegion(buf, sizeof buf, "x");
  UnpublishRegion(h);
  // The slot may be reused; the stale handle must not remove the new entry.
  RegionHandle h2 = PublishRegion(buf, sizeof buf, "y");
  UnpublishRegion(h);
  EXPECT_TRUE(Covers(Snapshot(), buf, sizeof buf));
  UnpublishRegion(h2);
  EXPECT_FALSE(Covers(Snapshot(), buf, sizeof buf));
}

TEST(Registry, FullTableFailsCleanly) {
  static char buf[kMaxRegions + 1];
  std::vector<RegionHandle> hs;
  for (size_t i = 0; i <= kMaxRegions; ++i) {
    hs.push_back(PublishRegion(buf + i, 1, "fill"));
  }
  EXPECT_FALSE(hs.back().valid());
  for (RegionHandle h : hs) UnpublishRegion(h);
  EXPECT_EQ(TEST_PublishedCount(), 0u);
}

TEST(Registry, UpdateMovesCover) {
  char a[32], b[64];
  ScopedRegion r(a, sizeof a, "moving");
  UpdateRegion(r.handle(), b, sizeof b);
  const auto snap = Snapshot();
  EXPECT_TRUE(Covers(snap, b, sizeof b));
  EXPECT_FALSE(Covers(snap, a, sizeof a));
}

// The torn update opens a window: a snapshot between its two stores covers
// the new address with the old length. The fixed UpdateRegion never does.
std::vector<RegionView>* g_between_snapshot = nullptr;
void SnapshotBetween() { *g_between_snapshot = Snapshot(); }

TEST(Registry, TornUpdateLeavesTailUncovered) {
  char a[16], b[256];
  ScopedRegion r(a, sizeof a, "moving");
  std::vector<RegionView> between;
  g_between_snapshot = &between;
  TEST_UpdateRegionTorn(r.handle(), b, sizeof b, &SnapshotBetween);
  EXPECT_TRUE(Covers(between, b, sizeof a));
  EXPECT_FALSE(Covers(between, b, sizeof b));
  // Once finished, the whole new range is covered.
  EXPECT_TRUE(Covers(Snapshot(), b, sizeof b));
}

TEST(Registry, SecretScopeCoversStackBelowEntry) {
  EXPECT_FALSE(InSecretScope());
  {
    SecretScope scope(4096);
    EXPECT_TRUE(InSecretScope());
    volatile char below[128];
    below[0] = 1;
    bool found = false;
    for (const RegionView& r : Snapshot()) {
      if (r.kind == RegionKind::kSecretStack) {
        found = found || Covers({r}, const_cast<char*>(below), 1);
      }
    }
    EXPECT_TRUE(found);
    {
      SecretScope nested(16);
      EXPECT_TRUE(InSecretScope());
    }
    EXPECT_TRUE(InSecretScope());
  }
  EXPECT_FALSE(InSecretScope());
  for (const RegionView& r : Snapshot()) {
    EXPECT_NE(r.kind, RegionKind::kSecretStack);
  }
}

TEST(Registry, ConcurrentPublishers) {
  constexpr int kThreads = 8, kIters = 2000;
  std::vector<std::thread> ts;
  for (int t = 0; t < kThreads; ++t) {
    ts.emplace_back([] {
      char buf[32];
      for (int i = 0; i < kIters; ++i) {
        ScopedRegion r(buf, sizeof buf, "worker");
        ASSERT_TRUE(r.published());
      }
    });
  }
  for (auto& t : ts) t.join();
  EXPECT_EQ(TEST_PublishedCount(), 0u);
}

// ---- Cover check ----

// What a test learns of a violation (never bytes).
struct Seen {
  std::string check;
  std::string label;
  uintptr_t addr;
  size_t len;
  size_t offset;
};

// Turns the check on (kCount, through a hook that records) for its life.
class CoverCheckOn {
 public:
  CoverCheckOn() {
    SetCoverViolationHook(&Record, &seen_);
    SetCoverCheck(CoverCheckMode::kCount);
  }
  ~CoverCheckOn() {
    SetCoverCheck(CoverCheckMode::kOff);
    SetCoverViolationHook(nullptr, nullptr);
  }
  CoverCheckOn(const CoverCheckOn&) = delete;
  CoverCheckOn& operator=(const CoverCheckOn&) = delete;
  const std::vector<Seen>& seen() const { return seen_; }

 private:
  static void Record(const CoverViolation& v, void* arg) {
    static_cast<std::vector<Seen>*>(arg)->push_back(
        {v.check, v.label, v.addr, v.len, v.offset});
  }
  std::vector<Seen> seen_;
};

// A fresh anonymous page: every byte zero, as the signer's pages start.
class FreshPage {
 public:
  FreshPage() {
    void* m = mmap(nullptr, kLen, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    p_ = m == MAP_FAILED ? nullptr : static_cast<uint8_t*>(m);
  }
  ~FreshPage() {
    if (p_ != nullptr) munmap(p_, kLen);
  }
  FreshPage(const FreshPage&) = delete;
  FreshPage& operator=(const FreshPage&) = delete;
  uint8_t* data() { return p_; }
  static constexpr size_t kLen = 4096;

 private:
  uint8_t* p_;
};

// Stand-in for secret bytes (a test pattern, not key material).
void Fill(uint8_t* p, size_t n) { memset(p, 0x5a, n); }

TEST(CoverCheck, OffByDefaultAndOffChecksNothing) {
  EXPECT_EQ(GetCoverCheck(), CoverCheckMode::kOff);
  FreshPage page;
  ASSERT_NE(page.data(), nullptr);
  Fill(page.data(), 64);
  const uint64_t before = CoverViolationCount();
  UnpublishRegion(PublishRegion(page.data(), 64, "test.off"));
  EXPECT_EQ(CoverViolationCount(), before);
}

TEST(CoverCheck, UnpublishOfUnwipedMemoryTrips) {
  FreshPage page;
  ASSERT_NE(page.data(), nullptr);
  CoverCheckOn on;
  RegionHandle h = PublishRegion(page.data(), 256, "test.unwiped");
  page.data()[100] = 7;
  UnpublishRegion(h);
  ASSERT_EQ(on.seen().size(), 1u);
  EXPECT_EQ(on.seen()[0].check, kCheckUnpublish);
  EXPECT_EQ(on.seen()[0].label, "test.unwiped");
  EXPECT_EQ(on.seen()[0].addr, reinterpret_cast<uintptr_t>(page.data()));
  EXPECT_EQ(on.seen()[0].len, 256u);
  EXPECT_EQ(on.seen()[0].offset, 100u);
  // The transition still happens: the check reports, it does not refuse.
  EXPECT_FALSE(Covers(Snapshot(), page.data(), 256));
}

TEST(CoverCheck, UnpublishOfWipedMemoryPasses) {
  FreshPage page;
  ASSERT_NE(page.data(), nullptr);
  CoverCheckOn on;
  RegionHandle h = PublishRegion(page.data(), 256, "test.wiped");
  Fill(page.data(), 256);
  memset(page.data(), 0, 256);
  UnpublishRegion(h);
  EXPECT_TRUE(on.seen().empty());
}

TEST(CoverCheck, PublishOverDataTrips) {
  FreshPage page;
  ASSERT_NE(page.data(), nullptr);
  Fill(page.data() + 32, 16);
  CoverCheckOn on;
  ScopedRegion r(page.data(), 128, "test.late");
  ASSERT_EQ(on.seen().size(), 1u);
  EXPECT_EQ(on.seen()[0].check, kCheckPublish);
  EXPECT_EQ(on.seen()[0].label, "test.late");
  EXPECT_EQ(on.seen()[0].offset, 32u);
  memset(page.data(), 0, FreshPage::kLen);
}

TEST(CoverCheck, PublishOverFreshMemoryPasses) {
  FreshPage page;
  ASSERT_NE(page.data(), nullptr);
  CoverCheckOn on;
  {
    ScopedRegion r(page.data(), FreshPage::kLen, "test.fresh");
    Fill(page.data(), 64);  // written while covered
    memset(page.data(), 0, 64);
  }
  EXPECT_TRUE(on.seen().empty());
}

TEST(CoverCheck, NarrowingUpdateOverUnwipedTailTrips) {
  FreshPage page;
  ASSERT_NE(page.data(), nullptr);
  uint8_t* p = page.data();
  CoverCheckOn on;
  ScopedRegion r(p, 2048, "test.narrow");
  Fill(p + 1024 + 10, 4);
  UpdateRegion(r.handle(), p, 1024);  // drops [1024, 2048)
  ASSERT_EQ(on.seen().size(), 1u);
  EXPECT_EQ(on.seen()[0].check, kCheckUpdateLeave);
  EXPECT_EQ(on.seen()[0].addr, reinterpret_cast<uintptr_t>(p));
  EXPECT_EQ(on.seen()[0].len, 2048u);
  EXPECT_EQ(on.seen()[0].offset, 1034u);
  memset(p, 0, 2048);
}

TEST(CoverCheck, NarrowingUpdateOverWipedTailPasses) {
  FreshPage page;
  ASSERT_NE(page.data(), nullptr);
  uint8_t* p = page.data();
  CoverCheckOn on;
  ScopedRegion r(p, 2048, "test.narrow");
  Fill(p, 2048);  // the kept part may hold data; the dropped part is wiped
  memset(p + 1024, 0, 1024);
  UpdateRegion(r.handle(), p, 1024);
  EXPECT_TRUE(on.seen().empty());
  memset(p, 0, 1024);
}

TEST(CoverCheck, WideningUpdateOverDataTrips) {
  FreshPage page;
  ASSERT_NE(page.data(), nullptr);
  uint8_t* p = page.data();
  CoverCheckOn on;
  ScopedRegion r(p + 2048, 2048, "test.widen");
  Fill(p + 2048, 2048);  // the old range's data re-covered: fine
  Fill(p + 5, 1);        // the added part holds data: not fine
  UpdateRegion(r.handle(), p, 4096);
  ASSERT_EQ(on.seen().size(), 1u);
  EXPECT_EQ(on.seen()[0].check, kCheckUpdateEnter);
  EXPECT_EQ(on.seen()[0].offset, 5u);
  memset(p, 0, 4096);
}

TEST(CoverCheck, WideningUpdateOverFreshMemoryPasses) {
  FreshPage page;
  ASSERT_NE(page.data(), nullptr);
  uint8_t* p = page.data();
  CoverCheckOn on;
  ScopedRegion r(p + 2048, 2048, "test.widen");
  Fill(p + 2048, 2048);
  UpdateRegion(r.handle(), p, 4096);
  EXPECT_TRUE(on.seen().empty());
  memset(p, 0, 4096);
}

// The signer's load, torn: the cover moves from the staging half to the
// whole page by address first; the address store alone drops the staging
// half, which still holds data.
TEST(CoverCheck, TornUpdateTripsAtItsAddressStore) {
  FreshPage page;
  ASSERT_NE(page.data(), nullptr);
  uint8_t* p = page.data();
  CoverCheckOn on;
  ScopedRegion r(p + 2048, 2048, "test.torn");
  Fill(p + 2048, 100);
  TEST_UpdateRegionTorn(r.handle(), p, 4096, nullptr);
  ASSERT_GE(on.seen().size(), 1u);
  EXPECT_EQ(on.seen()[0].check, kCheckTornAddress);
  EXPECT_EQ(on.seen()[0].addr, reinterpret_cast<uintptr_t>(p + 2048));
  EXPECT_EQ(on.seen()[0].offset, 0u);
  memset(p, 0, 4096);
}

// The same move by UpdateRegion opens nothing.
TEST(CoverCheck, UntornUpdateOfTheSameMovePasses) {
  FreshPage page;
  ASSERT_NE(page.data(), nullptr);
  uint8_t* p = page.data();
  CoverCheckOn on;
  ScopedRegion r(p + 2048, 2048, "test.torn");
  Fill(p + 2048, 100);
  UpdateRegion(r.handle(), p, 4096);
  EXPECT_TRUE(on.seen().empty());
  memset(p, 0, 4096);
}

// Bytes another range still covers neither leave nor enter the cover.
TEST(CoverCheck, BytesStillCoveredElsewhereDoNotCross) {
  FreshPage page;
  ASSERT_NE(page.data(), nullptr);
  uint8_t* p = page.data();
  CoverCheckOn on;
  ScopedRegion outer(p, 1024, "test.outer");
  Fill(p + 100, 100);
  UnpublishRegion(PublishRegion(p + 64, 256, "test.inner"));
  EXPECT_TRUE(on.seen().empty());
  memset(p, 0, 1024);
}

// A declared range: its bytes are not read; its owner's word is.
TEST(CoverCheck, DeclaredRangeTripsOnlyWhileDeclaredSecret) {
  FreshPage page;
  ASSERT_NE(page.data(), nullptr);
  uint8_t* p = page.data();
  Fill(p, 64);  // allocator metadata, say: non-zero, not secret
  CoverCheckOn on;
  RegionHandle h =
      PublishRegion(p, 1024, "test.arena", RegionContent::kDeclared);
  EXPECT_TRUE(on.seen().empty());  // entering is not checked
  UnpublishRegion(h);              // starts as "holds secret"
  ASSERT_EQ(on.seen().size(), 1u);
  EXPECT_EQ(on.seen()[0].check, kCheckUnpublish);
  EXPECT_EQ(on.seen()[0].label, "test.arena");
  h = PublishRegion(p, 1024, "test.arena", RegionContent::kDeclared);
  SetRegionHoldsSecret(h, false);
  UnpublishRegion(h);
  EXPECT_EQ(on.seen().size(), 1u);
  memset(p, 0, 64);
}

TEST(CoverCheck, WriteOutsideTheCoverTrips) {
  FreshPage page;
  ASSERT_NE(page.data(), nullptr);
  uint8_t* p = page.data();
  CoverCheckOn on;
  CheckCovered(p, 64, "test.write");
  ASSERT_EQ(on.seen().size(), 1u);
  EXPECT_EQ(on.seen()[0].check, kCheckWriteUncovered);
  EXPECT_EQ(on.seen()[0].offset, 0u);
  {
    ScopedRegion r(p, 32, "test.half");
    CheckCovered(p, 64, "test.write");  // the second half is uncovered
    ASSERT_EQ(on.seen().size(), 2u);
    EXPECT_EQ(on.seen()[1].offset, 32u);
    ScopedRegion r2(p + 32, 32, "test.other-half");
    CheckCovered(p, 64, "test.write");
    EXPECT_EQ(on.seen().size(), 2u);
  }
}

TEST(CoverCheck, StackBelowTheScopesCoverTrips) {
  CoverCheckOn on;
  volatile uint8_t deep[4096];
  deep[0] = 0;
  const uintptr_t low = reinterpret_cast<uintptr_t>(&deep[0]);
  {
    SecretScope scope;  // 64 KiB: this frame's locals are inside
    CheckSecretStackDepth(low);
    EXPECT_TRUE(on.seen().empty());
  }
  {
    SecretScope shallow(256);  // deep[0] is at least 4 KiB below the frame
    CheckSecretStackDepth(low);
    ASSERT_EQ(on.seen().size(), 1u);
    EXPECT_EQ(on.seen()[0].check, kCheckStackDepth);
    EXPECT_EQ(on.seen()[0].addr, low);
  }
  CheckSecretStackDepth(low);  // outside any scope: nothing to check
  EXPECT_EQ(on.seen().size(), 1u);
}

// Without a hook, kAbort prints one line (check, label, range, offset; no
// bytes) and the backtrace, then aborts.
TEST(CoverCheckDeathTest, AbortModePrintsOneLineAndAborts) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  FreshPage page;
  ASSERT_NE(page.data(), nullptr);
  EXPECT_DEATH(
      {
        SetCoverCheck(CoverCheckMode::kAbort);
        RegionHandle h = PublishRegion(page.data(), 64, "test.abort");
        page.data()[9] = 0x5a;
        UnpublishRegion(h);
      },
      "sigrace cover check: unpublish: \"test.abort\" \\[0x[0-9a-f]+, \\+64\\) "
      "leaves the cover unwiped \\(a byte is not zero\\) at offset 9");
}

// SIGRACE_COVER_CHECK is read once, before main(): a child started with it
// runs this test's other half.
TEST(CoverCheck, EnvironmentVariableSetsTheMode) {
  if (const char* want = getenv("SIGRACE_COVER_CHECK_TEST_EXPECT")) {
    EXPECT_EQ(static_cast<int>(GetCoverCheck()), atoi(want));
    return;
  }
  struct Case {
    const char* value;
    CoverCheckMode mode;
  };
  for (const Case& c : {Case{"count", CoverCheckMode::kCount},
                        Case{"abort", CoverCheckMode::kAbort},
                        Case{"off", CoverCheckMode::kOff}}) {
    const pid_t pid = fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
      // One thread; the exec'd child reads it.
      // NOLINTNEXTLINE(concurrency-mt-unsafe)
      setenv("SIGRACE_COVER_CHECK", c.value, 1);
      const std::string expect = std::to_string(static_cast<int>(c.mode));
      // NOLINTNEXTLINE(concurrency-mt-unsafe)
      setenv("SIGRACE_COVER_CHECK_TEST_EXPECT", expect.c_str(), 1);
      execl("/proc/self/exe", "registry_test",
            "--gtest_filter=CoverCheck.EnvironmentVariableSetsTheMode",
            static_cast<char*>(nullptr));
      _exit(127);
    }
    int status = 0;
    ASSERT_EQ(waitpid(pid, &status, 0), pid);
    EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0)
        << "SIGRACE_COVER_CHECK=" << c.value << ": status " << status;
  }
}

}  // namespace
}  // namespace sigrace::crashdump
