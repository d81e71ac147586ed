#include "crashdump/registry/registry.h"

#include <thread>
#include <vector>

#include <gtest/gtest.h>

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

}  // namespace
}  // namespace sigrace::crashdump
