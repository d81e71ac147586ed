#include "crashdump/registry/registry.h"

#include <gtest/gtest.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
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

// A thread inside a SecretScope that forks: in the child, its one thread
// is inside the scope under its own tid (so the handler redacts its
// registers), and the parent's other threads' scopes are gone.
TEST(Registry, ForkedChildKeepsItsScopeUnderItsOwnTid) {
  std::atomic<bool> entered{false}, stop{false};
  std::thread other([&] {
    SecretScope s;
    entered = true;
    while (!stop) std::this_thread::yield();
  });
  while (!entered) std::this_thread::yield();
  SecretScope scope;
  const pid_t pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    const pid_t self = static_cast<pid_t>(syscall(SYS_gettid));
    if (!ThreadInSecretScope(self)) _exit(1);
    size_t stacks = 0;
    for (const RegionView& v : Snapshot()) {
      if (v.kind != RegionKind::kSecretStack) continue;
      ++stacks;
      if (v.tid != self) _exit(2);
    }
    if (stacks != 1) _exit(3);
    const uint64_t first = FlightRecorderNext();
    { SecretScope inner; }  // nested: no event; then one of our own
    UnpublishRegion(PublishRegion(&stacks, sizeof stacks, "fork.child"));
    FlightEvent e;
    if (!ReadFlightEvent(first, &e) || e.tid != self) _exit(4);
    _exit(0);
  }
  int status = 0;
  ASSERT_EQ(waitpid(pid, &status, 0), pid);
  stop = true;
  other.join();
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0)
      << "child status " << status;
  // The parent is untouched: both threads' entries were its own.
  EXPECT_TRUE(ThreadInSecretScope(static_cast<pid_t>(syscall(SYS_gettid))));
}

// ---- Flight recorder ----

std::vector<FlightEvent> EventsSince(uint64_t first) {
  std::vector<FlightEvent> out;
  for (uint64_t i = first; i < FlightRecorderNext(); ++i) {
    FlightEvent e;
    if (ReadFlightEvent(i, &e)) out.push_back(e);
  }
  return out;
}

TEST(FlightRecorder, RecordsEachTransitionInOrder) {
  char a[32], b[64];
  const pid_t tid = static_cast<pid_t>(syscall(SYS_gettid));
  const uint64_t first = FlightRecorderNext();
  {
    SecretScope outer;
    SecretScope inner;  // nested: no event of its own
    RegionHandle h = PublishRegion(a, sizeof a, "flight.a");
    UpdateRegion(h, b, sizeof b);
    UnpublishRegion(h);
  }
  const std::vector<FlightEvent> ev = EventsSince(first);
  ASSERT_EQ(ev.size(), 5u);
  const FlightEventKind want[] = {
      FlightEventKind::kScopeEnter, FlightEventKind::kPublish,
      FlightEventKind::kUpdate, FlightEventKind::kUnpublish,
      FlightEventKind::kScopeExit};
  for (size_t i = 0; i < ev.size(); ++i) {
    EXPECT_EQ(ev[i].kind, want[i]) << i;
    EXPECT_EQ(ev[i].index, first + i);
    EXPECT_EQ(ev[i].tid, tid);
    if (i > 0) EXPECT_GE(ev[i].time_ns, ev[i - 1].time_ns);
  }
  EXPECT_STREQ(ev[0].label, "secret-stack");
  EXPECT_EQ(ev[0].len, kDefaultSecretStackDepth);
  EXPECT_EQ(ev[1].addr, reinterpret_cast<uintptr_t>(a));
  EXPECT_EQ(ev[1].len, sizeof a);
  EXPECT_STREQ(ev[1].label, "flight.a");
  EXPECT_EQ(ev[2].addr, reinterpret_cast<uintptr_t>(b));
  EXPECT_EQ(ev[2].len, sizeof b);
  EXPECT_EQ(ev[2].prev_addr, reinterpret_cast<uintptr_t>(a));
  EXPECT_EQ(ev[2].prev_len, sizeof a);
  EXPECT_EQ(ev[3].addr, reinterpret_cast<uintptr_t>(b));  // what it withdrew
  EXPECT_STREQ(ev[3].label, "flight.a");
  EXPECT_EQ(ev[1].region, ev[3].region);
  EXPECT_NE(ev[1].region, 0u);
  EXPECT_EQ(ev[4].addr, ev[0].addr);
}

TEST(FlightRecorder, WrapsAroundKeepingTheLastLap) {
  char buf[16];
  const uint64_t first = FlightRecorderNext();
  const size_t n = kFlightRingSize + kFlightRingSize / 2 + 3;  // odd count
  for (size_t i = 0; i < n; ++i) {
    RegionHandle h = PublishRegion(buf, 1 + i % sizeof buf, "flight.wrap");
    UnpublishRegion(h);
  }
  const uint64_t next = FlightRecorderNext();
  ASSERT_EQ(next - first, 2 * n);
  // The lap before the last is gone (its slots hold the newer events).
  FlightEvent e;
  for (uint64_t i = first; i < next - kFlightRingSize; ++i) {
    EXPECT_FALSE(ReadFlightEvent(i, &e)) << i;
  }
  // The last lap is whole and in order, whatever slot it starts at.
  for (uint64_t i = next - kFlightRingSize; i < next; ++i) {
    ASSERT_TRUE(ReadFlightEvent(i, &e)) << i;
    EXPECT_EQ(e.index, i);
    const uint64_t k = (i - first) / 2;  // the k-th publish/unpublish pair
    EXPECT_EQ(e.kind, (i - first) % 2 == 0 ? FlightEventKind::kPublish
                                           : FlightEventKind::kUnpublish);
    EXPECT_EQ(e.len, 1 + k % sizeof buf);
  }
  // An index not yet written is not read either.
  EXPECT_FALSE(ReadFlightEvent(next, &e));
}

TEST(FlightRecorder, TornSlotIsDetectedNeverReadMixed) {
  char buf[16];
  // Paired: the same slot written whole reads back.
  const uint64_t first = FlightRecorderNext();
  UnpublishRegion(PublishRegion(buf, sizeof buf, "flight.torn"));
  FlightEvent whole;
  ASSERT_TRUE(ReadFlightEvent(first, &whole));

  // A writer stopped mid-event (sequence odd): not read.
  FlightEvent e = whole;
  e.addr ^= 0x40;
  TEST_WriteTornFlightSlot(first, e, nullptr);
  FlightEvent out;
  EXPECT_FALSE(ReadFlightEvent(first, &out));

  // A later lap finished the slot, then a writer of an earlier lap stored
  // one more field: the sequence is whole and names the later ticket, the
  // fields are a mixture. The check word catches it.
  const uint64_t later = first + kFlightRingSize;
  TEST_WriteTornFlightSlot(first, whole, &later);
  EXPECT_FALSE(ReadFlightEvent(later, &out));
  EXPECT_FALSE(ReadFlightEvent(first, &out));
}

// Concurrent writers within one lap of the ring: every slot is claimed by
// exactly one writer, so after the joins every slot reads whole. (Beyond a
// lap, a writer preempted mid-slot can be overtaken by the next lap's
// writer of the same slot; that slot is torn by design and detected, see
// TornSlotIsDetectedNeverReadMixed, so a count past one lap would depend on
// scheduling.)
TEST(FlightRecorder, ManyThreadsLeaveNoTornSlot) {
  const uint64_t first = FlightRecorderNext();
  constexpr int kThreads = 4;
  constexpr int kEach = static_cast<int>(kFlightRingSize) / (kThreads * 4);
  std::vector<std::thread> ts;
  for (int t = 0; t < kThreads; ++t) {
    ts.emplace_back([] {
      char buf[8];
      for (int i = 0; i < kEach; ++i) {
        SecretScope scope;
        UnpublishRegion(PublishRegion(buf, sizeof buf, "flight.mt"));
      }
    });
  }
  for (std::thread& t : ts) t.join();
  const uint64_t next = FlightRecorderNext();
  ASSERT_EQ(next - first, uint64_t{kThreads} * kEach * 4);
  size_t read = 0;
  FlightEvent e;
  for (uint64_t i = next - kFlightRingSize; i < next; ++i) {
    read += ReadFlightEvent(i, &e) ? 1 : 0;
  }
  EXPECT_EQ(read, kFlightRingSize);
}

TEST(FlightRecorder, SwitchedOffRecordsNothing) {
  char buf[8];
  SetFlightRecorder(false);
  const uint64_t first = FlightRecorderNext();
  UnpublishRegion(PublishRegion(buf, sizeof buf, "flight.off"));
  { SecretScope scope; }
  EXPECT_EQ(FlightRecorderNext(), first);
  SetFlightRecorder(true);
  UnpublishRegion(PublishRegion(buf, sizeof buf, "flight.on"));
  EXPECT_EQ(FlightRecorderNext(), first + 2);
}

}  // namespace
}  // namespace sigrace::crashdump
