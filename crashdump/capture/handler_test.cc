// Crash tests for the handler: each scenario runs in a forked child that
// must end in a stated way (exit code or death by a given signal); the
// parent then opens what it left behind with the core reader.

#include "crashdump/capture/handler.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <malloc.h>
#include <sched.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "base/ablation.h"
#include "base/failpoint.h"
#include "crashdump/format/core_format.h"
#include "crashdump/format/core_reader.h"
#include "crashdump/registry/registry.h"
#include "testing/crash_test_util.h"

namespace sigrace::crashdump {
namespace {

using testing::ChildResult;
using testing::Contains;
using testing::FillSecret;
using testing::RunInChild;
using testing::TempDir;

constexpr size_t kSecretLen = 64;
constexpr uint64_t kSeed = 0x5eed2026;

// The seed of planted secret `n` in the running test: each test plants its
// own secrets. A dump the parent read earlier leaves its bytes in freed
// heap, which every child forked later inherits and dumps; with one secret
// per test an absence test cannot find another test's leftovers.
uint64_t Seed(uint64_t n) {
  const ::testing::TestInfo* t =
      ::testing::UnitTest::GetInstance()->current_test_info();
  const std::string name = std::string(t->test_suite_name()) + "." + t->name();
  return kSeed + n + 0x100 * std::hash<std::string>{}(name);
}

pid_t Gettid() { return static_cast<pid_t>(syscall(SYS_gettid)); }

std::unique_ptr<CoreReader> OpenSealed(const std::string& path) {
  auto r = CoreReader::Open(path, ReaderOptions{.require_seal = true});
  EXPECT_TRUE(r.ok()) << path << ": " << r.status().ToString();
  if (!r.ok()) return nullptr;
  return std::move(r).value();
}

// The one dump `dir` must hold, opened with its seal checked; null (and a
// test failure) when there is not exactly one or it does not open.
std::unique_ptr<CoreReader> OnlySealedDump(const testing::TempDir& dir) {
  const auto cores = dir.Files(".core");
  EXPECT_EQ(cores.size(), 1u);
  if (cores.size() != 1) return nullptr;
  return OpenSealed(cores[0]);
}

// Switches off the protections named in `spec` (base/ablation.h) in a
// child, before it installs the handler or starts a thread.
bool Ablate(const char* spec) { return SetAblation(spec).ok(); }

// A planted secret remade in the parent to search a dump for, wiped when it
// goes: a child forked later inherits the parent's stack, and a stale copy
// in a dead frame there would be found in that child's dump.
class Remade {
 public:
  Remade(uint64_t seed, size_t len = kSecretLen) : len_(len) {
    FillSecret(buf_, len_, seed);
  }
  ~Remade() { explicit_bzero(buf_, sizeof(buf_)); }
  Remade(const Remade&) = delete;
  Remade& operator=(const Remade&) = delete;
  bool In(const std::string& hay) const { return Contains(hay, buf_, len_); }

 private:
  uint8_t buf_[kSecretLen];
  size_t len_;
};

// Whether the one dump in `dir` holds the `len` bytes FillSecret makes
// from `seed` (never printed).
bool DumpHoldsSecret(const TempDir& dir, uint64_t seed,
                     size_t len = kSecretLen) {
  const auto cores = dir.Files(".core");
  EXPECT_EQ(cores.size(), 1u);
  if (cores.size() != 1) return false;
  return Remade(seed, len).In(testing::ReadWholeFile(cores[0]));
}

HandlerOptions DirOptions(const TempDir& dir, bool fatal) {
  HandlerOptions o;
  o.target = DumpTarget::Directory(dir.path());
  o.fatal = fatal;
  o.meta = "test=handler_test\n";
  return o;
}

// Child body: a secret in an anonymous page, registered or not, then a live
// dump. Exit 0 if the dump sealed.
int SecretDumpChild(const TempDir& dir, bool register_it, const char* ablate) {
  if (!Ablate(ablate)) return 9;
  if (!InstallHandler(DirOptions(dir, /*fatal=*/false)).ok()) return 10;
  void* page = mmap(nullptr, 4096, PROT_READ | PROT_WRITE,
                    MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (page == MAP_FAILED) return 11;
  uint8_t* secret = static_cast<uint8_t*>(page) + 128;
  FillSecret(secret, kSecretLen, Seed(0));
  ScopedRegion region;
  if (register_it) region = ScopedRegion(secret, kSecretLen, "test.secret");
  if (!RequestLiveDump().ok()) return 12;
  const DumpResult r = LastDump();
  if (!r.ok || !r.sealed) return 13;
  // Where the secret sat, for the parent (an address, not key material).
  std::FILE* f = std::fopen((dir.path() + "/addr").c_str(), "w");
  if (f == nullptr) return 14;
  std::fprintf(
      f, "%llu\n",
      static_cast<unsigned long long>(reinterpret_cast<uintptr_t>(secret)));
  std::fclose(f);
  return 0;
}

struct SecretDump {
  ChildResult child;
  std::string bytes;
  uint64_t addr = 0;
  std::unique_ptr<CoreReader> reader;
};

SecretDump MakeSecretDump(const TempDir& dir, bool register_it,
                          const char* ablate = "") {
  SecretDump d;
  d.child =
      RunInChild([&] { return SecretDumpChild(dir, register_it, ablate); });
  const auto cores = dir.Files(".core");
  if (cores.size() != 1) return d;
  d.bytes = testing::ReadWholeFile(cores[0]);
  d.addr = std::stoull(testing::ReadWholeFile(dir.path() + "/addr"));
  d.reader = OpenSealed(cores[0]);
  return d;
}

TEST(HandlerRedaction, RegisteredSecretAbsentFromDump) {
  TempDir dir;
  SecretDump d = MakeSecretDump(dir, /*register_it=*/true);
  ASSERT_TRUE(d.child.exited) << d.child.stderr_text;
  ASSERT_EQ(d.child.exit_code, 0) << d.child.stderr_text;
  ASSERT_NE(d.reader, nullptr);
  const Remade secret(Seed(0));
  EXPECT_FALSE(secret.In(d.bytes)) << "registered secret found in the dump";
  // The page itself is in the dump, holding the marker where the secret was.
  const uint8_t* mem = d.reader->MemoryAt(d.addr, kSecretLen);
  ASSERT_NE(mem, nullptr);
  bool marker = true;
  for (size_t i = 0; i < kSecretLen; ++i) {
    marker &=
        mem[i] == static_cast<uint8_t>(
                      kRedactionMarker[(d.addr + i) % kRedactionMarkerLen]);
  }
  EXPECT_TRUE(marker) << "redacted bytes are not the marker";
  EXPECT_TRUE(d.reader->IsRedacted(d.addr, kSecretLen));
  bool labelled = false;
  for (const auto& r : d.reader->redactions()) {
    labelled |= r.label == "test.secret" && r.kind == RedactionKind::kRange;
  }
  EXPECT_TRUE(labelled);
}

TEST(HandlerRedaction, UnregisteredSecretPresentInDump) {
  TempDir dir;
  SecretDump d = MakeSecretDump(dir, /*register_it=*/false);
  ASSERT_TRUE(d.child.exited) << d.child.stderr_text;
  ASSERT_EQ(d.child.exit_code, 0) << d.child.stderr_text;
  ASSERT_NE(d.reader, nullptr);
  const Remade secret(Seed(0));
  EXPECT_TRUE(secret.In(d.bytes))
      << "unregistered secret missing: the dump does not capture anon memory";
  EXPECT_FALSE(d.reader->IsRedacted(d.addr, kSecretLen));
}

// ---- Ablation switches (base/ablation.h) ----
// Each switch is paired with its protection's test above or beside it:
// with the switch off the planted secret is absent (that test), with the
// protection ablated it is present, unredacted and unrecorded.

#define SKIP_WITHOUT_ABLATION() \
  if (!kAblationBuild) GTEST_SKIP() << "built without SIGRACE_ABLATION"

// Registered range, `cover:LABEL` or `registry-cover` ablated: the range is
// neither redacted nor recorded. Paired: RegisteredSecretAbsentFromDump.
void ExpectCoverAblated(const char* spec) {
  TempDir dir;
  SecretDump d = MakeSecretDump(dir, /*register_it=*/true, spec);
  ASSERT_TRUE(d.child.exited) << d.child.stderr_text;
  ASSERT_EQ(d.child.exit_code, 0) << d.child.stderr_text;
  ASSERT_NE(d.reader, nullptr);
  const Remade secret(Seed(0));
  EXPECT_TRUE(secret.In(d.bytes))
      << spec << ": the ablated cover still redacted the secret";
  EXPECT_FALSE(d.reader->IsRedacted(d.addr, kSecretLen));
  for (const auto& r : d.reader->redactions()) {
    EXPECT_NE(r.label, "test.secret") << spec << ": ablated cover recorded";
  }
  EXPECT_EQ(d.reader->MetaValue("ablation").value_or(""), spec);
}

TEST(HandlerAblation, CoverLabelAblatedLeavesRangeInDump) {
  SKIP_WITHOUT_ABLATION();
  ExpectCoverAblated("cover:test.secret");
}

TEST(HandlerAblation, RegistryCoverAblatedLeavesRangeInDump) {
  SKIP_WITHOUT_ABLATION();
  ExpectCoverAblated("registry-cover");
}

// Another label's switch leaves this cover alone.
TEST(HandlerAblation, OtherCoverLabelAblatedKeepsRangeRedacted) {
  SKIP_WITHOUT_ABLATION();
  TempDir dir;
  SecretDump d = MakeSecretDump(dir, /*register_it=*/true, "cover:other");
  ASSERT_TRUE(d.child.exited && d.child.exit_code == 0) << d.child.stderr_text;
  ASSERT_NE(d.reader, nullptr);
  const Remade secret(Seed(0));
  EXPECT_FALSE(secret.In(d.bytes));
  EXPECT_TRUE(d.reader->IsRedacted(d.addr, kSecretLen));
}

// A secret on the stack of a thread inside a SecretScope (in the frame that
// declares the scope, below its entry) is redacted by the scope's stack
// cover; with `secret-stack` ablated it is in the dump.
std::atomic<bool> g_stack_ready{false};
std::atomic<bool> g_stack_stop{false};

__attribute__((noinline)) void HoldSecretOnScopeStack() {
  SecretScope scope;
  alignas(16) uint8_t buf[kSecretLen];
  FillSecret(buf, sizeof(buf), Seed(4));
  g_stack_ready.store(true);
  while (!g_stack_stop.load(std::memory_order_relaxed)) {
  }
  volatile uint8_t* v = buf;
  for (size_t i = 0; i < sizeof(buf); ++i) v[i] = 0;
}

int StackSecretChild(const TempDir& dir, const char* ablate) {
  if (!Ablate(ablate)) return 9;
  if (!InstallHandler(DirOptions(dir, false)).ok()) return 10;
  std::atomic<pid_t> tid{0};
  std::thread t([&] {
    (void)InstallAltStackForThisThread();
    tid = Gettid();
    HoldSecretOnScopeStack();
  });
  while (!g_stack_ready.load()) sched_yield();
  if (!RequestLiveDump().ok()) return 12;
  g_stack_stop = true;
  t.join();
  if (!LastDump().ok) return 13;
  std::FILE* f = std::fopen((dir.path() + "/tid").c_str(), "w");
  if (f == nullptr) return 14;
  std::fprintf(f, "%d\n", tid.load());
  std::fclose(f);
  return 0;
}

// Whether the dump records a secret-stack redaction for the child's thread.
bool SecretStackRecorded(const TempDir& dir) {
  auto reader = OnlySealedDump(dir);
  if (reader == nullptr) return false;
  const int tid = std::stoi(testing::ReadWholeFile(dir.path() + "/tid"));
  bool recorded = false;
  for (const auto& r : reader->redactions()) {
    recorded |= r.kind == RedactionKind::kSecretStack && r.tid == tid;
  }
  return recorded;
}

TEST(HandlerRedaction, SecretOnScopeStackAbsentFromDump) {
  TempDir dir;
  ChildResult c = RunInChild([&] { return StackSecretChild(dir, ""); });
  ASSERT_TRUE(c.exited && c.exit_code == 0) << c.stderr_text;
  EXPECT_FALSE(DumpHoldsSecret(dir, Seed(4)));
  EXPECT_TRUE(SecretStackRecorded(dir));
}

TEST(HandlerAblation, SecretStackAblatedLeavesScopeStackInDump) {
  SKIP_WITHOUT_ABLATION();
  TempDir dir;
  ChildResult c =
      RunInChild([&] { return StackSecretChild(dir, "secret-stack"); });
  ASSERT_TRUE(c.exited && c.exit_code == 0) << c.stderr_text;
  EXPECT_TRUE(DumpHoldsSecret(dir, Seed(4)));
  EXPECT_FALSE(SecretStackRecorded(dir));
}

// Threads in a SecretScope get their data registers replaced; rip, rsp and
// rbp stay so the stack still unwinds. Paired: a thread outside any scope
// keeps its registers.
int SecretScopeChild(const TempDir& dir, bool in_scope,
                     const char* ablate = "") {
  if (!Ablate(ablate)) return 9;
  if (!InstallHandler(DirOptions(dir, false)).ok()) return 10;
  std::atomic<bool> ready{false}, stop{false};
  std::atomic<pid_t> tid{0};
  std::thread t([&] {
    (void)InstallAltStackForThisThread();
    tid = Gettid();
    std::unique_ptr<SecretScope> scope;
    if (in_scope) scope = std::make_unique<SecretScope>();
    std::atomic<uint64_t> n{0};
    ready = true;
    testing::BusyWorker(&n, &stop);
  });
  while (!ready) sched_yield();
  if (!RequestLiveDump().ok()) return 12;
  stop = true;
  t.join();
  if (!LastDump().ok) return 13;
  std::FILE* f = std::fopen((dir.path() + "/tid").c_str(), "w");
  std::fprintf(f, "%d\n", tid.load());
  std::fclose(f);
  return 0;
}

// Returns {records a kRegisters redaction for tid, r15..rdi are marker}.
std::pair<bool, bool> RegisterRedaction(const TempDir& dir) {
  auto reader = OnlySealedDump(dir);
  if (reader == nullptr) return {false, false};
  const int tid = std::stoi(testing::ReadWholeFile(dir.path() + "/tid"));
  bool recorded = false;
  for (const auto& r : reader->redactions()) {
    recorded |= r.kind == RedactionKind::kRegisters && r.tid == tid &&
                r.label == "registers";
  }
  bool marker = false;
  for (const auto& t : reader->threads()) {
    if (t.tid != tid) continue;
    EXPECT_NE(t.pc, 0u);
    EXPECT_NE(t.sp, 0u);
    const uint8_t* regs = reader->data() + t.regs_offset;
    // user_regs_struct starts r15, r14, r13, r12, rbp, rbx, ...
    marker = memcmp(regs, kRedactionMarker, 8) == 0;
  }
  return {recorded, marker};
}

TEST(HandlerRedaction, SecretScopeThreadRegistersRedacted) {
  TempDir dir;
  ChildResult c = RunInChild([&] { return SecretScopeChild(dir, true); });
  ASSERT_TRUE(c.exited && c.exit_code == 0) << c.stderr_text;
  auto [recorded, marker] = RegisterRedaction(dir);
  EXPECT_TRUE(recorded);
  EXPECT_TRUE(marker);
}

TEST(HandlerRedaction, ThreadOutsideSecretScopeKeepsRegisters) {
  TempDir dir;
  ChildResult c = RunInChild([&] { return SecretScopeChild(dir, false); });
  ASSERT_TRUE(c.exited && c.exit_code == 0) << c.stderr_text;
  auto [recorded, marker] = RegisterRedaction(dir);
  EXPECT_FALSE(recorded);
  EXPECT_FALSE(marker);
}

// `scope-registers` ablated: a thread inside a scope keeps every register.
// Paired: SecretScopeThreadRegistersRedacted.
TEST(HandlerAblation, ScopeRegistersAblatedKeepsScopeThreadRegisters) {
  SKIP_WITHOUT_ABLATION();
  TempDir dir;
  ChildResult c = RunInChild(
      [&] { return SecretScopeChild(dir, true, "scope-registers"); });
  ASSERT_TRUE(c.exited && c.exit_code == 0) << c.stderr_text;
  auto [recorded, marker] = RegisterRedaction(dir);
  EXPECT_FALSE(recorded);
  EXPECT_FALSE(marker);
}

// MADV_DONTDUMP pages (the `dd` VmFlag) stay out of the dump, as with the
// kernel. Paired: the same secret in an ordinary page is in the dump.
int DontDumpChild(const TempDir& dir, bool dontdump, const char* ablate = "") {
  if (!Ablate(ablate)) return 9;
  if (!InstallHandler(DirOptions(dir, false)).ok()) return 10;
  void* page = mmap(nullptr, 4096, PROT_READ | PROT_WRITE,
                    MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (page == MAP_FAILED) return 11;
  if (dontdump && madvise(page, 4096, MADV_DONTDUMP) != 0) return 12;
  FillSecret(static_cast<uint8_t*>(page) + 64, kSecretLen, Seed(1));
  if (!RequestLiveDump().ok()) return 13;
  return LastDump().ok ? 0 : 14;
}

TEST(HandlerCapture, DontDumpPageLeftOut) {
  TempDir dir;
  ChildResult c = RunInChild([&] { return DontDumpChild(dir, true); });
  ASSERT_TRUE(c.exited && c.exit_code == 0) << c.stderr_text;
  EXPECT_FALSE(DumpHoldsSecret(dir, Seed(1)));
}

// `dontdump` ablated: the writer dumps MADV_DONTDUMP pages. Paired:
// DontDumpPageLeftOut.
TEST(HandlerAblation, DontDumpAblatedPageCaptured) {
  SKIP_WITHOUT_ABLATION();
#if defined(SIGRACE_ASAN)
  // ASan's shadow memory is terabytes of MADV_DONTDUMP reservations: with
  // the switch off the dump would try to hold them all (the watchdog ends
  // it). The switch is shown in the default build.
  GTEST_SKIP() << "ASan's DONTDUMP shadow would be dumped";
#endif
  TempDir dir;
  ChildResult c =
      RunInChild([&] { return DontDumpChild(dir, true, "dontdump"); });
  ASSERT_TRUE(c.exited && c.exit_code == 0) << c.stderr_text;
  EXPECT_TRUE(DumpHoldsSecret(dir, Seed(1)));
  // The handler's own MADV_DONTDUMP memory (scratch, alternate stacks) is
  // then dumped too, as the marker its records claim.
  auto reader = OnlySealedDump(dir);
  ASSERT_NE(reader, nullptr);
  bool scratch_checked = false;
  for (const auto& r : reader->redactions()) {
    if (r.label != "handler.scratch (not dumped)") continue;
    scratch_checked = true;
    EXPECT_TRUE(reader->IsRedacted(r.vaddr, r.len));
  }
  EXPECT_TRUE(scratch_checked);
}

TEST(HandlerCapture, OrdinaryPageCaptured) {
  TempDir dir;
  ChildResult c = RunInChild([&] { return DontDumpChild(dir, false); });
  ASSERT_TRUE(c.exited && c.exit_code == 0) << c.stderr_text;
  EXPECT_TRUE(DumpHoldsSecret(dir, Seed(1)));
}

// A thread created after the first /proc/self/task pass (here: by a
// failpoint callback between passes) is found by the next pass and frozen:
// the multi-pass scan closes the thread-creation race.
std::atomic<bool> g_late_stop{false};
std::atomic<uint64_t> g_late_counter{0};

int LateThreadChild(const TempDir& dir) {
  if (!InstallHandler(DirOptions(dir, false)).ok()) return 10;
  static std::thread* late = nullptr;
  if (!failpoint::SetCallback("handler.after_freeze_pass",
                              [] {
                                late = new std::thread([] {
                                  // Created inside the handler, it inherits the
                                  // handler's mask; an ordinary thread would
                                  // not have the freeze signal blocked.
                                  sigset_t none;
                                  sigemptyset(&none);
                                  pthread_sigmask(SIG_SETMASK, &none, nullptr);
                                  (void)InstallAltStackForThisThread();
                                  testing::BusyWorker(&g_late_counter,
                                                      &g_late_stop);
                                });
                              })
           .ok() ||
      !failpoint::Configure("handler.after_freeze_pass=callback@1").ok()) {
    return 11;
  }
  std::atomic<bool> stop{false};
  std::atomic<uint64_t> n{0};
  std::thread t([&] {
    (void)InstallAltStackForThisThread();
    testing::BusyWorker(&n, &stop);
  });
  if (!RequestLiveDump().ok()) return 12;
  const DumpResult r = LastDump();
  stop = true;
  g_late_stop = true;
  t.join();
  if (late != nullptr) late->join();
  if (!r.ok) return 13;
  if (late == nullptr) return 14;
  if (r.threads_unfrozen != 0) return 15;
  return r.threads == 3 && r.freeze_passes >= 2 ? 0 : 16;
}

TEST(HandlerFreeze, ThreadCreatedDuringFreezeIsInDump) {
  TempDir dir;
  ChildResult c = RunInChild([&] { return LateThreadChild(dir); });
  ASSERT_FALSE(c.timed_out) << c.stderr_text;
  ASSERT_TRUE(c.exited) << c.stderr_text;
  EXPECT_EQ(c.exit_code, 0) << c.stderr_text;
  auto reader = OnlySealedDump(dir);
  ASSERT_NE(reader, nullptr);
  EXPECT_EQ(reader->threads().size(), 3u);
}

// A writer moves a registered secret during the dump, the way the signer
// moves key material (UpdateRegion over both places, copy, wipe the old
// place). A failpoint callback inside the handler lets it go and waits for
// it, with a bound (a frozen writer never answers). Each protection that
// keeps the snapshot true to memory is shown by where the move happens:
//   - at "handler.after_registry_snapshot" the writer is frozen: nothing
//     moves; with `freeze` ablated it moves after the snapshot and the
//     secret's new place is not covered;
//   - at "handler.entered" the writer moves before the freeze and the
//     snapshot (after the freeze) covers the new place; with
//     `snapshot-after-freeze` ablated the snapshot was taken before.
std::atomic<bool> g_move_go{false};
std::atomic<bool> g_move_done{false};
std::atomic<bool> g_move_stop{false};

int MovingSecretChild(const TempDir& dir, const char* site,
                      const char* ablate) {
  if (!Ablate(ablate)) return 9;
  if (!InstallHandler(DirOptions(dir, false)).ok()) return 10;
  void* mem = mmap(nullptr, size_t{2} * 4096, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (mem == MAP_FAILED) return 11;
  uint8_t* from = static_cast<uint8_t*>(mem) + 256;
  uint8_t* to = static_cast<uint8_t*>(mem) + 4096 + 512;
  FillSecret(from, kSecretLen, Seed(5));
  const RegionHandle h = PublishRegion(from, kSecretLen, "test.moving");
  if (!h.valid()) return 12;
  std::thread t([&] {
    (void)InstallAltStackForThisThread();
    while (!g_move_go.load() && !g_move_stop.load()) {
    }
    if (g_move_stop.load()) return;
    UpdateRegion(h, to, kSecretLen);
    memcpy(to, from, kSecretLen);
    volatile uint8_t* v = from;
    for (size_t i = 0; i < kSecretLen; ++i) v[i] = 0;
    g_move_done.store(true);
    while (!g_move_stop.load()) {
    }
  });
  if (!failpoint::SetCallback(
           site,
           [] {
             g_move_go.store(true);
             const auto until = std::chrono::steady_clock::now() +
                                std::chrono::milliseconds(300);
             while (!g_move_done.load() &&
                    std::chrono::steady_clock::now() < until) {
             }
           })
           .ok() ||
      !failpoint::Configure(std::string(site) + "=callback@1").ok()) {
    return 13;
  }
  if (!RequestLiveDump().ok()) return 14;
  const DumpResult r = LastDump();
  g_move_stop = true;
  t.join();
  if (!r.ok) return 15;
  return 0;
}

TEST(HandlerFreeze, SecretMovedDuringDumpWaitsForTheFreeze) {
  TempDir dir;
  ChildResult c = RunInChild([&] {
    return MovingSecretChild(dir, "handler.after_registry_snapshot", "");
  });
  ASSERT_TRUE(c.exited && c.exit_code == 0) << c.stderr_text;
  EXPECT_FALSE(DumpHoldsSecret(dir, Seed(5)));
  auto reader = OnlySealedDump(dir);
  ASSERT_NE(reader, nullptr);
  EXPECT_EQ(reader->MetaValue("freeze").value_or(""), "on");
  EXPECT_EQ(reader->threads().size(), 2u);
}

TEST(HandlerAblation, FreezeAblatedSecretMovedDuringDumpLeaks) {
  SKIP_WITHOUT_ABLATION();
  TempDir dir;
  ChildResult c = RunInChild([&] {
    return MovingSecretChild(dir, "handler.after_registry_snapshot", "freeze");
  });
  ASSERT_TRUE(c.exited && c.exit_code == 0) << c.stderr_text;
  EXPECT_TRUE(DumpHoldsSecret(dir, Seed(5)));
  auto reader = OnlySealedDump(dir);
  ASSERT_NE(reader, nullptr);
  EXPECT_EQ(reader->MetaValue("freeze").value_or(""), "off");
  EXPECT_EQ(reader->threads().size(), 1u);
}

TEST(HandlerFreeze, SecretMovedBeforeFreezeIsCoveredBySnapshot) {
  TempDir dir;
  ChildResult c =
      RunInChild([&] { return MovingSecretChild(dir, "handler.entered", ""); });
  ASSERT_TRUE(c.exited && c.exit_code == 0) << c.stderr_text;
  EXPECT_FALSE(DumpHoldsSecret(dir, Seed(5)));
}

TEST(HandlerAblation, SnapshotBeforeFreezeMissesSecretMovedMeanwhile) {
  SKIP_WITHOUT_ABLATION();
  TempDir dir;
  ChildResult c = RunInChild([&] {
    return MovingSecretChild(dir, "handler.entered", "snapshot-after-freeze");
  });
  ASSERT_TRUE(c.exited && c.exit_code == 0) << c.stderr_text;
  EXPECT_TRUE(DumpHoldsSecret(dir, Seed(5)));
}

// SIMD registers of a thread OUTSIDE any SecretScope: a secret left in
// xmm15 (as a memcpy leaves the last bytes it moved) is redacted by
// default, and present when the option is off (so the capture is real).
std::atomic<bool> g_simd_ready{false};
std::atomic<bool> g_simd_stop{false};

__attribute__((noinline)) void HoldSecretInXmm15(uint64_t seed = Seed(2)) {
  alignas(16) uint8_t buf[16];
  FillSecret(buf, sizeof(buf), seed);
  __asm__ volatile("movdqu (%0), %%xmm15" : : "r"(buf) : "xmm15", "memory");
  // Wipe without a call: a first call through the PLT runs the lazy
  // binder, which XSAVEs every register (xmm15 too) onto this stack.
  volatile uint8_t* v = buf;
  for (size_t i = 0; i < sizeof(buf); ++i) v[i] = 0;
  g_simd_ready.store(true);
  // No calls from here on: nothing may reuse xmm15.
  while (!g_simd_stop.load(std::memory_order_relaxed)) {
  }
  __asm__ volatile("pxor %%xmm15, %%xmm15" : : : "xmm15");
}

// `in_scope`: the thread holds the secret inside a SecretScope, in xmm15
// under Seed(3).
int SimdChild(const TempDir& dir, bool redact_all, const char* ablate = "",
              bool in_scope = false) {
  if (!Ablate(ablate)) return 9;
  HandlerOptions o = DirOptions(dir, false);
  o.redact_simd_all_threads = redact_all;
  if (!InstallHandler(o).ok()) return 10;
  std::thread t([in_scope] {
    (void)InstallAltStackForThisThread();
    if (in_scope) {
      SecretScope scope;
      HoldSecretInXmm15(Seed(3));
    } else {
      HoldSecretInXmm15();
    }
  });
  while (!g_simd_ready.load()) sched_yield();
  if (!RequestLiveDump().ok()) return 12;
  g_simd_stop = true;
  t.join();
  return LastDump().ok ? 0 : 13;
}

TEST(HandlerRedaction, SimdSecretOutsideScopeRedactedByDefault) {
  TempDir dir;
  ChildResult c = RunInChild([&] { return SimdChild(dir, true); });
  ASSERT_TRUE(c.exited && c.exit_code == 0) << c.stderr_text;
  EXPECT_FALSE(DumpHoldsSecret(dir, Seed(2), 16));
}

// `simd-outside-scope` ablated: as with the option off. Paired:
// SimdSecretOutsideScopeRedactedByDefault.
TEST(HandlerAblation, SimdOutsideScopeAblatedLeavesSimdSecret) {
  SKIP_WITHOUT_ABLATION();
  TempDir dir;
  ChildResult c =
      RunInChild([&] { return SimdChild(dir, true, "simd-outside-scope"); });
  ASSERT_TRUE(c.exited && c.exit_code == 0) << c.stderr_text;
  EXPECT_TRUE(DumpHoldsSecret(dir, Seed(2), 16));
}

// A thread inside a scope: its SIMD registers are redacted as part of its
// registers, even with the outside-scope redaction off; ablating
// `scope-registers` leaves them.
TEST(HandlerRedaction, SimdSecretInsideScopeRedacted) {
  TempDir dir;
  ChildResult c = RunInChild([&] { return SimdChild(dir, false, "", true); });
  ASSERT_TRUE(c.exited && c.exit_code == 0) << c.stderr_text;
  EXPECT_FALSE(DumpHoldsSecret(dir, Seed(3), 16));
}

TEST(HandlerAblation, ScopeRegistersAblatedLeavesSimdSecretInsideScope) {
  SKIP_WITHOUT_ABLATION();
  TempDir dir;
  ChildResult c =
      RunInChild([&] { return SimdChild(dir, true, "scope-registers", true); });
  ASSERT_TRUE(c.exited && c.exit_code == 0) << c.stderr_text;
  EXPECT_TRUE(DumpHoldsSecret(dir, Seed(3), 16));
}

TEST(HandlerRedaction, SimdSecretPresentWhenOptionOff) {
  TempDir dir;
  ChildResult c = RunInChild([&] { return SimdChild(dir, false); });
  ASSERT_TRUE(c.exited && c.exit_code == 0) << c.stderr_text;
  EXPECT_TRUE(DumpHoldsSecret(dir, Seed(2), 16));
}

// A fatal crash: the child must die by SIGSEGV and leave one sealed dump
// holding every thread.
int FatalChild(const TempDir& dir, int workers) {
  if (!InstallHandler(DirOptions(dir, true)).ok()) return 10;
  static std::atomic<uint64_t> counters[64];
  static std::atomic<bool> stop{false};
  static std::atomic<int> started{0};
  for (int i = 0; i < workers; ++i) {
    std::thread([i] {
      (void)InstallAltStackForThisThread();
      started.fetch_add(1);
      testing::BusyWorker(&counters[i], &stop);
    }).detach();
  }
  while (started.load() < workers) sched_yield();
  testing::CrashHere();
  return 20;  // not reached
}

TEST(HandlerFatal, CrashDiesBySigsegvLeavingSealedDump) {
  TempDir dir;
  ChildResult c = RunInChild([&] { return FatalChild(dir, 3); });
  ASSERT_FALSE(c.timed_out) << "child hung: " << c.stderr_text;
  ASSERT_TRUE(c.signaled) << "exit " << c.exit_code << ": " << c.stderr_text;
  EXPECT_EQ(c.term_signal, SIGSEGV);
  const auto cores = dir.Files(".core");
  ASSERT_EQ(cores.size(), 1u);
  EXPECT_TRUE(dir.Files(".tmp").empty());
  struct stat st;
  ASSERT_EQ(stat(cores[0].c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  auto reader = OpenSealed(cores[0]);
  ASSERT_NE(reader, nullptr);
  ASSERT_EQ(reader->threads().size(), 4u);
  EXPECT_EQ(reader->threads()[0].signal, SIGSEGV);
  ASSERT_TRUE(reader->siginfo().has_value());
  EXPECT_EQ(reader->siginfo()->signo, SIGSEGV);
  EXPECT_EQ(reader->siginfo()->addr, 0u);
  EXPECT_NE(reader->backtrace().find("CrashHere"), std::string::npos)
      << reader->backtrace();
  EXPECT_EQ(reader->MetaValue("mode").value_or(""), "fatal");
  EXPECT_EQ(reader->MetaValue("test").value_or(""), "handler_test");
  EXPECT_EQ(reader->MetaValue("threads_unfrozen").value_or(""), "0");
}

// A live dump while 8 threads are busy: every thread is in the dump and
// every thread makes progress afterwards.
int LiveEightChild(const TempDir& dir) {
  if (!InstallHandler(DirOptions(dir, false)).ok()) return 10;
  constexpr int kWorkers = 8;
  std::atomic<uint64_t> counters[kWorkers];
  std::atomic<bool> stop{false};
  std::atomic<int> started{0};
  std::vector<std::thread> threads;
  for (int i = 0; i < kWorkers; ++i) {
    counters[i] = 0;
    threads.emplace_back([&, i] {
      (void)InstallAltStackForThisThread();
      started.fetch_add(1);
      testing::BusyWorker(&counters[i], &stop);
    });
  }
  while (started.load() < kWorkers) sched_yield();
  if (!SetTrialMeta("trial=7\nseed=42\n").ok()) return 11;
  if (!RequestLiveDump().ok()) return 12;
  const DumpResult r = LastDump();
  if (!r.ok) return 13;
  if (r.threads != kWorkers + 1) return 14;
  // Every worker runs on: each counter moves past its post-dump value.
  uint64_t after[kWorkers];
  for (int i = 0; i < kWorkers; ++i) after[i] = counters[i].load();
  for (int i = 0; i < kWorkers; ++i) {
    while (counters[i].load() == after[i]) sched_yield();
  }
  stop = true;
  for (auto& t : threads) t.join();
  return 0;
}

TEST(HandlerLive, EveryThreadInDumpAndRunsOn) {
  TempDir dir;
  ChildResult c = RunInChild([&] { return LiveEightChild(dir); });
  ASSERT_FALSE(c.timed_out) << "a thread never resumed: " << c.stderr_text;
  ASSERT_TRUE(c.exited) << c.stderr_text;
  ASSERT_EQ(c.exit_code, 0) << c.stderr_text;
  auto reader = OnlySealedDump(dir);
  ASSERT_NE(reader, nullptr);
  size_t prstatus = 0;
  for (const auto& n : reader->notes()) {
    prstatus += n.owner == "CORE" && n.type == 1 /*NT_PRSTATUS*/;
  }
  EXPECT_EQ(prstatus, 9u);
  EXPECT_EQ(reader->MetaValue("mode").value_or(""), "live");
  EXPECT_EQ(reader->MetaValue("trial").value_or(""), "7");
  EXPECT_EQ(reader->MetaValue("seed").value_or(""), "42");
  EXPECT_FALSE(reader->MetaValue("meta_torn").has_value());
  // Symbolized (mangled names: demangling allocates, so it is left to the
  // reader): the dump request came through RequestLiveDump.
  EXPECT_NE(reader->backtrace().find("RequestLiveDump"), std::string::npos)
      << reader->backtrace();
}

// A thread that blocks the freeze signal (as a sigwait() thread, or
// ThreadSanitizer's background thread, does) cannot answer it. The dump
// gives up on it once its mask shows that, instead of at the freeze
// timeout, and says so in the meta; the thread is not in the dump and runs
// on. The timeout here is longer than RunInChild's, so a handler that
// waits it out fails the test as a hang.
int BlockingThreadChild(const TempDir& dir) {
  HandlerOptions o = DirOptions(dir, false);
  o.freeze_timeout_ms = 600'000;
  o.watchdog_ms = 900'000;
  if (!InstallHandler(o).ok()) return 10;
  std::atomic<bool> stop{false};
  std::atomic<bool> blocked{false};
  std::atomic<uint64_t> busy{0};
  std::thread blocker([&] {
    sigset_t all;
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, nullptr);
    blocked = true;
    while (!stop.load()) usleep(1000);
  });
  std::thread worker([&] {
    (void)InstallAltStackForThisThread();
    testing::BusyWorker(&busy, &stop);
  });
  while (!blocked.load()) sched_yield();
  if (!RequestLiveDump().ok()) return 11;
  const DumpResult r = LastDump();
  stop = true;
  blocker.join();
  worker.join();
  if (!r.ok) return 12;
  if (r.threads_blocking_freeze != 1) return 13;
  if (r.threads_unfrozen != 1) return 14;
  if (r.threads != 2) return 15;  // the requester and the busy worker
  return 0;
}

TEST(HandlerFreeze, ThreadBlockingTheFreezeSignalIsGivenUpOnEarly) {
  TempDir dir;
  ChildResult c = RunInChild([&] { return BlockingThreadChild(dir); }, 60);
  ASSERT_FALSE(c.timed_out) << "the dump waited for a thread that blocks "
                               "the freeze signal: "
                            << c.stderr_text;
  ASSERT_TRUE(c.exited) << c.stderr_text;
  ASSERT_EQ(c.exit_code, 0) << c.stderr_text;
  auto reader = OnlySealedDump(dir);
  ASSERT_NE(reader, nullptr);
  EXPECT_EQ(reader->threads().size(), 2u);
  EXPECT_EQ(reader->MetaValue("threads_unfrozen").value_or(""), "1");
  EXPECT_EQ(reader->MetaValue("threads_blocking_freeze").value_or(""), "1");
}

// A fault inside the handler abandons that dump (nothing sealed, nothing
// left behind) and the process goes on; the next dump seals. Exactly one
// dump file, no deadlock.
int FaultInHandlerChild(const TempDir& dir) {
  if (!InstallHandler(DirOptions(dir, false)).ok()) return 10;
  if (!failpoint::Configure("handler.after_freeze=raise(SIGSEGV)@1").ok()) {
    return 11;
  }
  std::atomic<bool> stop{false};
  std::atomic<uint64_t> n{0};
  std::thread t([&] {
    (void)InstallAltStackForThisThread();
    testing::BusyWorker(&n, &stop);
  });
  if (!RequestLiveDump().ok()) return 12;
  const DumpResult first = LastDump();
  if (first.ok || first.sealed) return 13;
  if (std::strcmp(first.stage, "fault") != 0) return 14;
  if (!RequestLiveDump().ok()) return 15;
  const DumpResult second = LastDump();
  if (!second.ok) return 16;
  stop = true;
  t.join();
  if (DumpAttempts() != 2 || DumpCount() != 1) return 17;
  return 0;
}

TEST(HandlerFault, FaultInsideHandlerAbandonsDumpAndNextSeals) {
  TempDir dir;
  ChildResult c = RunInChild([&] { return FaultInHandlerChild(dir); });
  ASSERT_FALSE(c.timed_out) << "deadlock: " << c.stderr_text;
  ASSERT_TRUE(c.exited) << c.stderr_text;
  EXPECT_EQ(c.exit_code, 0) << c.stderr_text;
  EXPECT_NE(c.stderr_text.find("sigrace: crash dump 1 failed at fault"),
            std::string::npos)
      << c.stderr_text;
  EXPECT_EQ(dir.Files(".core").size(), 1u);
  EXPECT_TRUE(dir.Files(".tmp").empty());
}

// A second thread crashes while the first is inside the handler: it waits
// (parked, so it is in the dump), exactly one dump is written, and the
// process dies by SIGSEGV without deadlock.
std::atomic<bool> g_release_second{false};

// `slow_waiter`: the second crasher's first poll sleeps 200 ms, far past
// the freeze's 20 ms grace. Inside our handler its freeze signal is blocked
// (the handler's mask) and pending, as for a thread that can never answer;
// it still must be waited for and be in the dump.
int SecondCrasherChild(const TempDir& dir, bool slow_waiter = false) {
  HandlerOptions o = DirOptions(dir, true);
  o.freeze_timeout_ms = 30'000;
  if (!InstallHandler(o).ok()) return 10;
  if (slow_waiter &&
      !failpoint::Configure("handler.crash_waiter_poll=sleep(200)@1").ok()) {
    return 12;
  }
  if (!failpoint::SetCallback(
           "handler.entered",
           [] {
             g_release_second.store(true);
             // Wait (bounded) until the second crasher is inside the handler.
             for (int i = 0; i < 5000 && TEST_CrashWaiters() == 0; ++i) {
               usleep(1000);
             }
           })
           .ok() ||
      !failpoint::Configure("handler.entered=callback@1").ok()) {
    return 11;
  }
  std::thread([] {
    (void)InstallAltStackForThisThread();
    while (!g_release_second.load()) sched_yield();
    testing::CrashHere();
  }).detach();
  testing::CrashHere();
  return 20;
}

// Both crashers are in the one dump: the second one parked as a waiter,
// however long it was kept off the CPU.
void ExpectOneDumpWithBothCrashers(bool slow_waiter) {
  TempDir dir;
  ChildResult c =
      RunInChild([&] { return SecondCrasherChild(dir, slow_waiter); });
  ASSERT_FALSE(c.timed_out) << "deadlock: " << c.stderr_text;
  ASSERT_TRUE(c.signaled) << "exit " << c.exit_code << ": " << c.stderr_text;
  EXPECT_EQ(c.term_signal, SIGSEGV);
  auto reader = OnlySealedDump(dir);
  ASSERT_NE(reader, nullptr);
  EXPECT_EQ(reader->threads().size(), 2u);
  EXPECT_EQ(reader->MetaValue("threads_unfrozen").value_or(""), "0");
  EXPECT_EQ(reader->MetaValue("threads_blocking_freeze").value_or(""), "0");
}

TEST(HandlerFault, SecondCrasherDuringDumpMakesOneDump) {
  ExpectOneDumpWithBothCrashers(false);
}

TEST(HandlerFault, SlowCrashWaiterIsWaitedForNotGivenUp) {
  ExpectOneDumpWithBothCrashers(true);
}

// A crash while another thread holds the malloc arena lock: the handler
// never allocates, so it finishes. malloc_stats() prints with the arena
// lock held; the stream's write function parks the thread right there.
std::atomic<bool> g_in_malloc_lock{false};

ssize_t BlockingWrite(void*, const char*, size_t) {
  g_in_malloc_lock.store(true);
  for (;;) pause();
}

int MallocLockChild(const TempDir& dir) {
  if (!InstallHandler(DirOptions(dir, true)).ok()) return 10;
  cookie_io_functions_t io = {nullptr, &BlockingWrite, nullptr, nullptr};
  FILE* blocking = fopencookie(nullptr, "w", io);
  if (blocking == nullptr) return 11;
  setvbuf(blocking, nullptr, _IONBF, 0);
  std::thread([blocking] {
    (void)InstallAltStackForThisThread();
    stderr = blocking;  // malloc_stats() prints to stderr
    malloc_stats();
  }).detach();
  while (!g_in_malloc_lock.load()) sched_yield();
  testing::CrashHere();
  return 20;
}

TEST(HandlerFault, CrashWhileAnotherThreadHoldsMallocLock) {
#if defined(SIGRACE_ASAN)
  GTEST_SKIP() << "ASan replaces glibc malloc; malloc_stats holds no lock";
#endif
  TempDir dir;
  ChildResult c = RunInChild([&] { return MallocLockChild(dir); });
  ASSERT_FALSE(c.timed_out) << "deadlock: " << c.stderr_text;
  ASSERT_TRUE(c.signaled) << "exit " << c.exit_code << ": " << c.stderr_text;
  EXPECT_EQ(c.term_signal, SIGSEGV);
  auto reader = OnlySealedDump(dir);
  ASSERT_NE(reader, nullptr);
  EXPECT_EQ(reader->threads().size(), 2u);
}

// Out of space: RLIMIT_FSIZE below the dump size makes the write fail with
// EFBIG. The failure is reported (result and one stderr line), the process
// lives on (SIGXFSZ does not kill it), and no file is left behind. Paired:
// the same child without the limit writes a sealed dump.
int FileSizeChild(const TempDir& dir, bool limit) {
  if (limit) {
    struct rlimit rl = {rlim_t{256} * 1024, rlim_t{256} * 1024};
    if (setrlimit(RLIMIT_FSIZE, &rl) != 0) return 9;
  }
  if (!InstallHandler(DirOptions(dir, false)).ok()) return 10;
  if (!RequestLiveDump().ok()) return 12;
  const DumpResult r = LastDump();
  if (!limit) return r.ok ? 0 : 13;
  if (r.ok || r.sealed) return 14;
  if (r.error != EFBIG) return 15;
  if (std::strcmp(r.stage, "write") != 0) return 16;
  if (r.path[0] != '\0') return 17;
  return 0;
}

TEST(HandlerDisk, FileSizeLimitFailsClearlyAndLeavesNoFile) {
  TempDir dir;
  ChildResult c = RunInChild([&] { return FileSizeChild(dir, true); });
  ASSERT_TRUE(c.exited) << "signal " << c.term_signal << ": " << c.stderr_text;
  EXPECT_EQ(c.exit_code, 0) << c.stderr_text;
  EXPECT_NE(c.stderr_text.find("sigrace: crash dump 1 failed at write: file "
                               "too large"),
            std::string::npos)
      << c.stderr_text;
  EXPECT_TRUE(dir.List().empty()) << "left: " << dir.List().size();
}

TEST(HandlerDisk, WithoutLimitTheSameDumpSeals) {
  TempDir dir;
  ChildResult c = RunInChild([&] { return FileSizeChild(dir, false); });
  ASSERT_TRUE(c.exited) << c.stderr_text;
  EXPECT_EQ(c.exit_code, 0) << c.stderr_text;
  const auto cores = dir.Files(".core");
  ASSERT_EQ(cores.size(), 1u);
  struct stat st;
  ASSERT_EQ(stat(cores[0].c_str(), &st), 0);
  EXPECT_GT(st.st_size, 256 * 1024) << "dump too small to test the limit";
  EXPECT_NE(OpenSealed(cores[0]), nullptr);
}

// Out of space for real: a 256 KiB tmpfs (in a private mount namespace of
// the child) fills up mid-dump. ENOSPC is reported, the temporary file is
// removed, nothing is left that could pass for a dump. Skips where mount
// namespaces are not allowed.
constexpr int kSkipCode = 77;

int TinyTmpfsChild(const TempDir& dir) {
  if (unshare(CLONE_NEWNS) != 0) return kSkipCode;
  if (mount("none", "/", nullptr, MS_REC | MS_PRIVATE, nullptr) != 0) {
    return kSkipCode;
  }
  if (mount("tmpfs", dir.path().c_str(), "tmpfs", 0, "size=256k") != 0) {
    return kSkipCode;
  }
  if (!InstallHandler(DirOptions(dir, false)).ok()) return 10;
  if (!RequestLiveDump().ok()) return 12;
  const DumpResult r = LastDump();
  if (r.ok || r.sealed) return 13;
  if (r.error != ENOSPC) return 14;
  if (!dir.List().empty()) return 15;  // inside the namespace: the tmpfs
  return 0;
}

TEST(HandlerDisk, FullFilesystemFailsClearlyAndLeavesNoFile) {
  TempDir dir;
  ChildResult c = RunInChild([&] { return TinyTmpfsChild(dir); });
  ASSERT_TRUE(c.exited) << c.stderr_text;
  if (c.exit_code == kSkipCode) {
    GTEST_SKIP() << "cannot mount a tmpfs in a private mount namespace here";
  }
  EXPECT_EQ(c.exit_code, 0) << c.stderr_text;
  EXPECT_NE(c.stderr_text.find("failed at write: no space left on device"),
            std::string::npos)
      << c.stderr_text;
}

// The watchdog bounds the handler: a handler stuck at a paused failpoint is
// abandoned (never sealed), threads are released, the next dump works.
int WatchdogChild(const TempDir& dir) {
  HandlerOptions o = DirOptions(dir, false);
  o.watchdog_ms = 300;
  if (!InstallHandler(o).ok()) return 10;
  if (!failpoint::Configure("handler.after_freeze=pause@1").ok()) return 11;
  std::atomic<bool> stop{false};
  std::atomic<uint64_t> n{0};
  std::thread t([&] {
    (void)InstallAltStackForThisThread();
    testing::BusyWorker(&n, &stop);
  });
  if (!RequestLiveDump().ok()) return 12;
  const DumpResult first = LastDump();
  if (first.ok || std::strcmp(first.stage, "watchdog") != 0) return 13;
  const uint64_t before = n.load();
  while (n.load() == before) sched_yield();  // the worker was released
  // The first dump's expiry is forced (it is paused); the second must not
  // depend on finishing within 300 ms on a loaded machine.
  if (!SetWatchdogMs(60000).ok()) return 16;
  if (!RequestLiveDump().ok()) return 14;
  if (!LastDump().ok) return 15;
  stop = true;
  t.join();
  return 0;
}

TEST(HandlerWatchdog, StuckHandlerIsAbandonedAndProcessRunsOn) {
  TempDir dir;
  ChildResult c = RunInChild([&] { return WatchdogChild(dir); });
  ASSERT_FALSE(c.timed_out) << c.stderr_text;
  ASSERT_TRUE(c.exited) << c.stderr_text;
  EXPECT_EQ(c.exit_code, 0) << c.stderr_text;
  EXPECT_NE(c.stderr_text.find("watchdog expired"), std::string::npos);
  EXPECT_EQ(dir.Files(".core").size(), 1u);
  EXPECT_TRUE(dir.Files(".tmp").empty());
}

// Live dumps to a memfd: many dumps, no disk, each one sealed.
int MemfdChild() {
  HandlerOptions o;
  o.target = DumpTarget::Memfd();
  o.fatal = false;
  if (!InstallHandler(o).ok()) return 10;
  std::vector<int> kept;
  for (int i = 0; i < 20; ++i) {
    if (!RequestLiveDump().ok()) return 11;
    const DumpResult r = LastDump();
    if (!r.ok || r.memfd < 0 || r.path[0] != '\0') return 12;
    std::string path = "/proc/self/fd/" + std::to_string(r.memfd);
    auto reader = CoreReader::Open(path, ReaderOptions{.require_seal = true});
    if (!reader.ok()) return 13;
    if ((*reader)->size() != r.size) return 14;
    kept.push_back(dup(r.memfd));
  }
  // Later dumps leave earlier ones alone: every kept dup is still sealed.
  for (int fd : kept) {
    auto reader = CoreReader::Open("/proc/self/fd/" + std::to_string(fd),
                                   ReaderOptions{.require_seal = true});
    if (!reader.ok()) return 16;
    close(fd);
  }
  return DumpCount() == 20 ? 0 : 15;
}

TEST(HandlerMemfd, RepeatedLiveDumpsAreSealed) {
  ChildResult c = RunInChild([&] { return MemfdChild(); });
  ASSERT_TRUE(c.exited) << c.stderr_text;
  EXPECT_EQ(c.exit_code, 0) << c.stderr_text;
}

// Chaining: a handler installed earlier still runs after the dump.
std::atomic<int> g_previous_ran{0};

int ChainChild(const TempDir& dir) {
  struct sigaction sa;
  memset(&sa, 0, sizeof(sa));
  sa.sa_handler = [](int) {
    g_previous_ran.store(1);
    _exit(33);
  };
  sigaction(SIGABRT, &sa, nullptr);
  if (!InstallHandler(DirOptions(dir, true)).ok()) return 10;
  abort();
}

TEST(HandlerFatal, ChainsToPreviousHandler) {
  TempDir dir;
  ChildResult c = RunInChild([&] { return ChainChild(dir); });
  ASSERT_TRUE(c.exited) << c.stderr_text;
  EXPECT_EQ(c.exit_code, 33);
  EXPECT_EQ(dir.Files(".core").size(), 1u);
}

TEST(HandlerApi, BadOptionsAreRejected) {
  HandlerOptions o;
  o.target = DumpTarget::Directory("");
  EXPECT_EQ(InstallHandler(o).code(), StatusCode::kInvalidArgument);
  o.target = DumpTarget::Directory("/nonexistent/sigrace/dir");
  EXPECT_FALSE(InstallHandler(o).ok());
  o.target = DumpTarget::Memfd();
  o.dump_request_signal = SIGSEGV;
  EXPECT_EQ(InstallHandler(o).code(), StatusCode::kInvalidArgument);
  EXPECT_FALSE(HandlerInstalled());
  EXPECT_FALSE(RequestLiveDump().ok());
}

}  // namespace
}  // namespace sigrace::crashdump
