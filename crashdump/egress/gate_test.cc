// The egress gate against real sigrace dumps of a child process: one that
// holds an Ed25519 seed unregistered (leaks), one with the same seed
// registered (redacted), and one with the 32 bytes before the seed
// registered (the seed leaks beside a real record). Every race-mode test is
// paired with the fixed gate under the same forced interleaving, and the
// release is judged by scanning the released file, so no test can pass by
// finding nothing. The gate believes bytes, never the dump's records: a
// record widened over the seed and resealed, or a synthetic record over
// bytes never overwritten, is refused; the same record over bytes that
// really are the marker is released.

#include "crashdump/egress/gate.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <openssl/evp.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstddef>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "base/ablation.h"
#include "base/failpoint.h"
#include "base/test_regression.h"
#include "crashdump/capture/handler.h"
#include "crashdump/format/core_format.h"
#include "crashdump/format/core_reader.h"
#include "crashdump/format/redaction_claims.h"
#include "crashdump/oracle/judgement.h"
#include "crashdump/oracle/key_forms.h"
#include "crashdump/oracle/scanner.h"
#include "crashdump/registry/registry.h"
#include "testing/crash_test_util.h"
#include "testing/synthetic_core.h"

namespace sigrace::crashdump {
namespace {

using testing::RunInChild;
using testing::TempDir;

constexpr size_t kSeedLen = 32;
constexpr uint64_t kSeedPattern = 0x6a7e2021;

constexpr size_t kAdjacentLen = 32;
constexpr char kAdjacentLabel[] = "test.before_seed";

// Child body: an Ed25519 seed in an anonymous page, then a live dump; then
// the same seed registered, and a second live dump; then only the 32 bytes
// before it registered, and a third. The seed never leaves the child
// except inside the first and third dumps.
int ThreeDumpsChild(const std::string& leak_dir, const std::string& clean_dir,
                    const std::string& adjacent_dir,
                    const std::string& skip_dir) {
  uint8_t* page =
      static_cast<uint8_t*>(mmap(nullptr, 4096, PROT_READ | PROT_WRITE,
                                 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
  if (page == MAP_FAILED) return 10;
  uint8_t* seed = page + 256;
  testing::FillSecret(seed, kSeedLen, kSeedPattern);
  HandlerOptions o;
  o.fatal = false;
  o.target = DumpTarget::Directory(leak_dir);
  if (!InstallHandler(o).ok()) return 11;
  if (!RequestLiveDump().ok() || !LastDump().ok) return 12;
  UninstallHandler();
  o.target = DumpTarget::Directory(clean_dir);
  if (!InstallHandler(o).ok()) return 13;
  {
    ScopedRegion region(seed, kSeedLen, "test.ed25519_seed");
    if (!RequestLiveDump().ok() || !LastDump().ok) return 14;
  }
  UninstallHandler();
  o.target = DumpTarget::Directory(adjacent_dir);
  if (!InstallHandler(o).ok()) return 15;
  {
    ScopedRegion region(seed - kAdjacentLen, kAdjacentLen, kAdjacentLabel);
    if (!RequestLiveDump().ok() || !LastDump().ok) return 16;
  }
  UninstallHandler();
  // Test builds: the seeded regression record-skip-overwrite (a writer
  // that records the seed's range and leaves its bytes), the seed
  // registered as for the clean dump.
  if (kAblationBuild) {
    if (!SetTestRegressions("record-skip-overwrite").ok()) return 17;
    o.target = DumpTarget::Directory(skip_dir);
    if (!InstallHandler(o).ok()) return 18;
    {
      ScopedRegion region(seed, kSeedLen, "test.ed25519_seed");
      if (!RequestLiveDump().ok() || !LastDump().ok) return 19;
    }
    UninstallHandler();
    if (!SetTestRegressions("").ok()) return 20;
  }
  return 0;
}

std::string OnlyDump(const TempDir& dir) {
  const auto files = dir.Files(".core");
  return files.size() == 1 ? files[0] : std::string();
}

class GateTest : public ::testing::Test {
 protected:
  // Derived fixtures share one pair of dumps: gtest calls SetUpTestSuite
  // once per suite, and a later fork would inherit this process's freed
  // oracle memory.
  static void SetUpTestSuite() {
    if (scanner_ != nullptr) return;
    leak_dir_ = new TempDir;
    clean_dir_ = new TempDir;
    adjacent_dir_ = new TempDir;
    skip_dir_ = new TempDir;
    // Fork before this process has built any form of the key, so the
    // child's memory holds the seed only where the child put it.
    const auto r = RunInChild([&] {
      return ThreeDumpsChild(leak_dir_->path(), clean_dir_->path(),
                             adjacent_dir_->path(), skip_dir_->path());
    });
    ASSERT_TRUE(r.exited && r.exit_code == 0)
        << "dump child failed: exit " << r.exit_code << " signal "
        << r.term_signal << "\n"
        << r.stderr_text;
    // The oracle: the same seed, rebuilt here as an OpenSSL key.
    uint8_t seed[kSeedLen];
    testing::FillSecret(seed, kSeedLen, kSeedPattern);
    EVP_PKEY* pkey =
        EVP_PKEY_new_raw_private_key(EVP_PKEY_ED25519, nullptr, seed, kSeedLen);
    OPENSSL_cleanse(seed, sizeof seed);
    ASSERT_NE(pkey, nullptr);
    auto forms = KeyForms::FromPkey(pkey, "gate-test");
    EVP_PKEY_free(pkey);
    ASSERT_TRUE(forms.ok()) << forms.status().ToString();
    std::vector<KeyForms> keys;
    keys.push_back(std::move(forms).value());
    auto scanner = Scanner::Create(std::move(keys), ScanOptions{});
    ASSERT_TRUE(scanner.ok()) << scanner.status().ToString();
    scanner_ = std::move(scanner).value().release();
  }
  void TearDown() override { failpoint::ClearAll(); }

  std::string LeakDump() const { return OnlyDump(*leak_dir_); }
  std::string CleanDump() const { return OnlyDump(*clean_dir_); }
  std::string AdjacentDump() const { return OnlyDump(*adjacent_dir_); }
  std::string SkipOverwriteDump() const { return OnlyDump(*skip_dir_); }

  // Leaks the oracle finds in a file (its seal is not required: a
  // released file is judged as the raw bytes that left).
  size_t LeaksIn(const std::string& path) const {
    const std::string bytes = testing::ReadWholeFile(path);
    size_t leaks = 0;
    for (const Finding& f : scanner_->Scan(
             reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size())) {
      if (f.kind == FindingKind::kLeak) ++leaks;
    }
    return leaks;
  }

  static TempDir* leak_dir_;
  static TempDir* clean_dir_;
  static TempDir* adjacent_dir_;
  static TempDir* skip_dir_;
  static Scanner* scanner_;
  friend class GateEnvironment;
};
TempDir* GateTest::leak_dir_ = nullptr;
TempDir* GateTest::clean_dir_ = nullptr;
TempDir* GateTest::adjacent_dir_ = nullptr;
TempDir* GateTest::skip_dir_ = nullptr;
Scanner* GateTest::scanner_ = nullptr;

// Removes the shared dumps after the last suite.
class GateEnvironment : public ::testing::Environment {
 public:
  void TearDown() override {
    delete GateTest::scanner_;
    delete GateTest::leak_dir_;
    delete GateTest::clean_dir_;
    delete GateTest::adjacent_dir_;
  }
};
const ::testing::Environment* const kGateEnv =
    ::testing::AddGlobalTestEnvironment(new GateEnvironment);

void CopyFile(const std::string& from, const std::string& to, size_t len) {
  const std::string bytes = testing::ReadWholeFile(from);
  std::ofstream out(to, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(),
            static_cast<std::streamsize>(std::min(len, bytes.size())));
}

// The pair that gives every other test its teeth: the oracle sees the seed
// in the unregistered dump and not in the registered one.
TEST_F(GateTest, OracleSeesSeedOnlyWithoutRedaction) {
  ASSERT_FALSE(LeakDump().empty());
  ASSERT_FALSE(CleanDump().empty());
  EXPECT_GT(LeaksIn(LeakDump()), 0u);
  EXPECT_EQ(LeaksIn(CleanDump()), 0u);
}

TEST_F(GateTest, FixedReleasesRedactedDumpByteForByte) {
  TempDir out;
  Gate gate(scanner_, GateOptions{GateMode::kFixed, out.path()});
  auto d = gate.Submit(CleanDump());
  ASSERT_TRUE(d.ok()) << d.status().ToString();
  EXPECT_TRUE(d->released) << d->reason;
  EXPECT_EQ(d->report.leaks, 0u);
  EXPECT_TRUE(testing::ReadWholeFile(d->released_path) ==
              testing::ReadWholeFile(CleanDump()));
  struct stat st;
  ASSERT_EQ(stat(d->released_path.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
}

TEST_F(GateTest, FixedRefusesLeakingDump) {
  TempDir out;
  Gate gate(scanner_, GateOptions{GateMode::kFixed, out.path()});
  auto d = gate.Submit(LeakDump());
  ASSERT_TRUE(d.ok()) << d.status().ToString();
  EXPECT_FALSE(d->released);
  EXPECT_GT(d->report.leaks, 0u);
  EXPECT_NE(d->reason.find("leak"), std::string::npos);
  EXPECT_TRUE(out.List().empty());
}

// A dump still being written: the prefix before the seed, no trailer. The
// writer finishes inside the egress window (after judgment, before
// release), forced by the gate.after_judge failpoint.
class UnsealedTest : public GateTest {
 protected:
  void SetUp() override {
    const std::string bytes = testing::ReadWholeFile(LeakDump());
    uint64_t first = bytes.size();
    for (const Finding& f : scanner_->Scan(
             reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size())) {
      if (f.kind == FindingKind::kLeak) first = std::min(first, f.file_offset);
    }
    ASSERT_LT(first, bytes.size());
    path_ = work_.path() + "/in-progress.core";
    CopyFile(LeakDump(), path_, first);
    ASSERT_EQ(LeaksIn(path_), 0u);
    std::string path = path_, full = LeakDump();
    ASSERT_TRUE(failpoint::SetCallback("gate.after_judge", [path, full] {
                  CopyFile(full, path, SIZE_MAX);
                }).ok());
    ASSERT_TRUE(failpoint::Configure("gate.after_judge=callback@1").ok());
  }
  TempDir work_, out_;
  std::string path_;
};

TEST_F(UnsealedTest, JudgeUnsealedReleasesTheLeak) {
  Gate gate(scanner_, GateOptions{GateMode::kJudgeUnsealed, out_.path()});
  auto d = gate.Submit(path_);
  ASSERT_TRUE(d.ok()) << d.status().ToString();
  ASSERT_TRUE(d->released) << d->reason;
  EXPECT_EQ(d->report.leaks, 0u);               // judged clean...
  EXPECT_GT(LeaksIn(d->released_path), 0u);     // ...released leaking
  EXPECT_GT(d->released_size, d->judged_size);  // not the judged bytes
}

TEST_F(UnsealedTest, FixedRefusesUnsealedDump) {
  Gate gate(scanner_, GateOptions{GateMode::kFixed, out_.path()});
  auto d = gate.Submit(path_);
  ASSERT_TRUE(d.ok()) << d.status().ToString();
  EXPECT_FALSE(d->released);
  EXPECT_NE(d->reason.find("not sealed"), std::string::npos) << d->reason;
  EXPECT_TRUE(out_.List().empty());
}

// The path holds the redacted dump when judged; inside the egress window
// the leaking dump is renamed over it.
class SwapTest : public GateTest {
 protected:
  void SetUp() override {
    path_ = work_.path() + "/dump.core";
    CopyFile(CleanDump(), path_, SIZE_MAX);
    const std::string swap = work_.path() + "/other.core";
    CopyFile(LeakDump(), swap, SIZE_MAX);
    std::string path = path_;
    ASSERT_TRUE(failpoint::SetCallback("gate.after_judge", [swap, path] {
                  ::rename(swap.c_str(), path.c_str());
                }).ok());
    ASSERT_TRUE(failpoint::Configure("gate.after_judge=callback@1").ok());
  }
  TempDir work_, out_;
  std::string path_;
};

TEST_F(SwapTest, ReopenToReleaseReleasesTheLeak) {
  Gate gate(scanner_, GateOptions{GateMode::kReopenToRelease, out_.path()});
  auto d = gate.Submit(path_);
  ASSERT_TRUE(d.ok()) << d.status().ToString();
  ASSERT_TRUE(d->released) << d->reason;
  EXPECT_EQ(d->report.leaks, 0u);
  EXPECT_GT(LeaksIn(d->released_path), 0u);
}

TEST_F(SwapTest, FixedReleasesOnlyWhatItJudged) {
  Gate gate(scanner_, GateOptions{GateMode::kFixed, out_.path()});
  auto d = gate.Submit(path_);
  ASSERT_TRUE(d.ok()) << d.status().ToString();
  ASSERT_TRUE(d->released) << d->reason;
  EXPECT_EQ(failpoint::Fired("gate.after_judge"), 1u);  // the swap happened
  EXPECT_EQ(LeaksIn(d->released_path), 0u);
  EXPECT_TRUE(testing::ReadWholeFile(d->released_path) ==
              testing::ReadWholeFile(CleanDump()));
}

// Issue 13: the oracle and the gate believe bytes, never the dump's own
// records. A tampered copy of a real dump: the record before the seed
// widened over it (the seed's bytes left as they are, or overwritten with
// the marker), resealed the way the writer seals (v2 trailer).
class TamperedDumpTest : public GateTest {
 protected:
  // Widens kAdjacentLabel's record by kSeedLen; with `mark`, writes the
  // marker over the seed as the writer would have. Returns the path.
  std::string Tamper(bool mark) {
    std::string bytes = testing::ReadWholeFile(AdjacentDump());
    auto* data = reinterpret_cast<uint8_t*>(bytes.data());
    StatusOr<std::unique_ptr<CoreReader>> reader =
        CoreReader::FromBuffer(data, bytes.size());
    EXPECT_TRUE(reader.ok()) << reader.status().ToString();
    if (!reader.ok()) return "";
    const std::vector<Redaction>& reds = (*reader)->redactions();
    size_t index = reds.size();
    for (size_t i = 0; i < reds.size(); ++i) {
      if (reds[i].label == kAdjacentLabel) index = i;
    }
    EXPECT_LT(index, reds.size()) << "no record " << kAdjacentLabel;
    uint64_t record_at = 0;
    for (const NoteInfo& n : (*reader)->notes()) {
      if (n.owner == kSigraceNoteOwner && n.type == kNoteRedactions) {
        record_at = n.desc_offset + sizeof(RedactionHeader) +
                    index * sizeof(RedactionRecord);
      }
    }
    EXPECT_NE(record_at, 0u);
    if (index == reds.size() || record_at == 0) return "";
    const uint64_t seed = reds[index].vaddr + reds[index].len;
    const uint64_t len = reds[index].len + kSeedLen;
    std::memcpy(data + record_at + offsetof(RedactionRecord, len), &len,
                sizeof len);
    if (mark) {
      const std::optional<uint64_t> off = (*reader)->AddressToOffset(seed);
      EXPECT_TRUE(off.has_value());
      if (!off) return "";
      for (uint64_t i = 0; i < kSeedLen; ++i) {
        data[*off + i] = MarkerByte(seed + i);
      }
    }
    // Reseal: the v2 checksum over everything before the trailer.
    SealTrailer t{};
    const size_t content = bytes.size() - sizeof(SealTrailer);
    std::memcpy(t.magic, kSealMagicV2, sizeof t.magic);
    t.content_size = content;
    t.checksum = SealChecksumV2(data, content);
    std::memcpy(data + content, &t, sizeof t);
    const std::string path =
        work_.path() + (mark ? "/widened-marked.core" : "/widened.core");
    std::ofstream out(path, std::ios::binary | std::ios::trunc);
    out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
    return out.good() ? path : "";
  }
  TempDir work_, out_;
};

// The untampered dump: the record before the seed is applied and verified,
// and the seed beside it is a plain leak.
TEST_F(TamperedDumpTest, SeedBesideARealRecordLeaks) {
  StatusOr<ScanReport> r = scanner_->ScanFile(AdjacentDump());
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_GT(r->leaks, 0u);
  EXPECT_EQ(r->not_applied, 0u);
  EXPECT_EQ(r->redactions_not_applied, 0u);
  EXPECT_GT(r->redactions_verified, 0u);
  EXPECT_EQ(JudgeReport(*r).verdict, DumpVerdict::kLeak);
}

TEST_F(TamperedDumpTest, WidenedRecordOverTheSeedStillLeaks) {
  const std::string path = Tamper(/*mark=*/false);
  ASSERT_FALSE(path.empty());
  StatusOr<ScanReport> r = scanner_->ScanFile(path);
  ASSERT_TRUE(r.ok()) << r.status().ToString();  // the seal holds
  EXPECT_GT(r->leaks, 0u);
  EXPECT_GT(r->not_applied, 0u);
  bool named = false;
  for (const Finding& f : r->findings) {
    if (f.kind == FindingKind::kRedactionNotApplied) {
      named |= f.redaction.rfind(kAdjacentLabel, 0) == 0;
    }
  }
  EXPECT_TRUE(named);
  EXPECT_EQ(r->redactions_not_applied, 1u);
  EXPECT_EQ(JudgeReport(*r).verdict, DumpVerdict::kLeak);
  Gate gate(scanner_, GateOptions{GateMode::kFixed, out_.path()});
  auto d = gate.Submit(path);
  ASSERT_TRUE(d.ok()) << d.status().ToString();
  EXPECT_FALSE(d->released);
  EXPECT_EQ(d->judgement.verdict, DumpVerdict::kLeak);
  EXPECT_NE(d->reason.find("not applied"), std::string::npos) << d->reason;
  EXPECT_TRUE(out_.List().empty());
}

// The seeded regression record-skip-overwrite (base/test_regression.h): a
// writer that records the seed's range and leaves its bytes. The scan and
// the gate (what `sigrace scan` and `sigrace gate` run) find the seed
// where the dump claims the marker: a leak of kind redaction-not-applied,
// refused. Its pair is the clean dump above (same seed, same record, the
// bytes overwritten): clean and released.
TEST_F(TamperedDumpTest, RecordSkipOverwriteDumpIsALeakForScanAndGate) {
  if (!kAblationBuild) GTEST_SKIP() << "no test regressions in this build";
  const std::string path = SkipOverwriteDump();
  ASSERT_FALSE(path.empty());
  StatusOr<ScanReport> r = scanner_->ScanFile(path);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_GT(r->leaks, 0u);
  EXPECT_EQ(r->not_applied, r->leaks);
  EXPECT_GE(r->redactions_not_applied, 1u);
  EXPECT_EQ(JudgeReport(*r).verdict, DumpVerdict::kLeak);
  Gate gate(scanner_, GateOptions{GateMode::kFixed, out_.path()});
  auto d = gate.Submit(path);
  ASSERT_TRUE(d.ok()) << d.status().ToString();
  EXPECT_FALSE(d->released);
  EXPECT_NE(d->reason.find("not applied"), std::string::npos) << d->reason;
  EXPECT_TRUE(out_.List().empty());

  StatusOr<ScanReport> clean = scanner_->ScanFile(CleanDump());
  ASSERT_TRUE(clean.ok()) << clean.status().ToString();
  EXPECT_EQ(clean->leaks, 0u);
  EXPECT_EQ(clean->redactions_not_applied, 0u);
  EXPECT_EQ(JudgeReport(*clean).verdict, DumpVerdict::kClean);
}

// The pair: the same widened record over bytes that really are the marker.
TEST_F(TamperedDumpTest, WidenedRecordOverMarkerBytesIsClean) {
  const std::string path = Tamper(/*mark=*/true);
  ASSERT_FALSE(path.empty());
  Gate gate(scanner_, GateOptions{GateMode::kFixed, out_.path()});
  auto d = gate.Submit(path);
  ASSERT_TRUE(d.ok()) << d.status().ToString();
  EXPECT_TRUE(d->released) << d->reason;
  EXPECT_EQ(d->report.leaks, 0u);
  EXPECT_EQ(d->report.redactions_not_applied, 0u);
  EXPECT_GT(d->report.redactions_verified, 0u);
  EXPECT_EQ(LeaksIn(d->released_path), 0u);
}

// A synthetic dump with a record over the seed: refused while the seed's
// bytes are still there, released once they are the marker.
TEST_F(GateTest, SyntheticRecordNotAppliedIsRefused) {
  constexpr uint64_t kHeap = 0x555500000000, kAt = kHeap + 0x200;
  const KeyForms& key = scanner_->keys()[0];
  const Form& seed = key.forms()[key.FindForm("ed25519.seed")];
  testing::SyntheticCore core;
  core.threads.push_back({4242, 11, 0x401000, 0x7ffd0000, 0x7ffd0100});
  testing::SyntheticCore::Load heap;
  heap.vaddr = kHeap;
  heap.bytes.assign(4096, 0);
  heap.name = "[heap]";
  std::memcpy(heap.bytes.data() + (kAt - kHeap), seed.data(), seed.size());
  core.loads.push_back(heap);
  core.AddRedaction(RedactionKind::kRange, kAt, seed.size(), 0, "vault");
  TempDir work, out;
  auto write = [&](const std::string& name) {
    const std::vector<uint8_t> bytes = core.Build();
    const std::string path = work.path() + "/" + name;
    std::ofstream f(path, std::ios::binary | std::ios::trunc);
    f.write(reinterpret_cast<const char*>(bytes.data()),
            static_cast<std::streamsize>(bytes.size()));
    return path;
  };
  Gate gate(scanner_, GateOptions{GateMode::kFixed, out.path()});
  auto refused = gate.Submit(write("not-applied.core"));
  ASSERT_TRUE(refused.ok()) << refused.status().ToString();
  EXPECT_FALSE(refused->released);
  EXPECT_EQ(refused->judgement.verdict, DumpVerdict::kLeak);
  ASSERT_EQ(refused->report.leaks, 1u);
  EXPECT_EQ(refused->report.findings[0].kind,
            FindingKind::kRedactionNotApplied);
  EXPECT_EQ(refused->report.findings[0].redaction, "vault");
  EXPECT_TRUE(out.List().empty());

  std::vector<uint8_t>& bytes = core.loads[0].bytes;
  for (uint64_t i = 0; i < seed.size(); ++i) {
    bytes[kAt - kHeap + i] = MarkerByte(kAt + i);
  }
  auto released = gate.Submit(write("applied.core"));
  ASSERT_TRUE(released.ok()) << released.status().ToString();
  EXPECT_TRUE(released->released) << released->reason;
  EXPECT_EQ(released->judgement.verdict, DumpVerdict::kClean);
  EXPECT_EQ(released->report.redactions_verified, 1u);
  EXPECT_EQ(released->report.redacted_bytes_verified, seed.size());
}

// Peak resident memory of this process so far, in KiB (VmHWM).
uint64_t PeakRssKib() {
  std::ifstream f("/proc/self/status");
  std::string line;
  while (std::getline(f, line)) {
    if (line.rfind("VmHWM:", 0) == 0) return std::stoull(line.substr(6));
  }
  return 0;
}
uint64_t RssKib() {
  std::ifstream f("/proc/self/status");
  std::string line;
  while (std::getline(f, line)) {
    if (line.rfind("VmRSS:", 0) == 0) return std::stoull(line.substr(6));
  }
  return 0;
}

constexpr uint64_t kGiB = uint64_t{1} << 30;

// Submits `path` to the fixed gate in a forked child and checks there that
// the gate refused it with an error (exit 2 at the command line) whose
// message holds `want`, and that the child's peak RSS grew by less than
// 64 MiB while it did: the gate read headers, not the apparent size.
void ExpectRefusedUnread(const Scanner* scanner, const std::string& path,
                         const std::string& want) {
  const auto r = RunInChild([&] {
    TempDir out;
    const uint64_t before = RssKib();
    Gate gate(scanner, GateOptions{GateMode::kFixed, out.path()});
    StatusOr<GateDecision> d = gate.Submit(path);
    const uint64_t grown = PeakRssKib() - before;
    if (d.ok()) {
      std::fprintf(stderr, "judged, not an error: %s\n", d->reason.c_str());
      return 3;
    }
    if (d.status().message().find(want) == std::string::npos) {
      std::fprintf(stderr, "message: %s\n", d.status().message().c_str());
      return 4;
    }
    if (grown > (uint64_t{64} << 10)) {
      std::fprintf(stderr, "peak RSS grew by %llu KiB\n",
                   static_cast<unsigned long long>(grown));
      return 5;
    }
    return out.List().empty() ? 0 : 6;
  });
  EXPECT_TRUE(r.exited && r.exit_code == 0)
      << "exit " << r.exit_code << " signal " << r.term_signal << ": "
      << r.stderr_text;
}

// A sparse 1 GiB file is not a dump: refused from its first bytes, without
// the gate holding a gigabyte.
TEST_F(GateTest, SparseGigabyteFileIsRefusedUnread) {
  TempDir work;
  const std::string path = work.path() + "/sparse.core";
  const int fd = open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL, 0600);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(ftruncate(fd, static_cast<off_t>(kGiB)), 0);
  close(fd);
  ExpectRefusedUnread(scanner_, path, "not a sigrace dump");
}

// A real dump padded with a sparse gigabyte: as truncate -s 1G leaves it
// (the trailer no longer at the end), and resealed over the padding (a
// valid v2 seal): both refused from the headers, since the ELF headers
// account for a few hundred KiB.
TEST_F(GateTest, RealDumpPaddedSparseIsRefusedUnread) {
  TempDir work;
  const std::string bytes = testing::ReadWholeFile(CleanDump());
  ASSERT_GT(bytes.size(), sizeof(SealTrailer));
  const std::string padded = work.path() + "/padded.core";
  CopyFile(CleanDump(), padded, SIZE_MAX);
  ASSERT_EQ(truncate(padded.c_str(), static_cast<off_t>(kGiB)), 0);
  ExpectRefusedUnread(scanner_, padded, "apparent size");

  const size_t content = bytes.size() - sizeof(SealTrailer);
  const std::string resealed = work.path() + "/resealed.core";
  CopyFile(CleanDump(), resealed, content);
  SealHasherV2 h;
  h.Update(reinterpret_cast<const uint8_t*>(bytes.data()), content);
  h.UpdateZeros(kGiB - sizeof(SealTrailer) - content);
  SealTrailer t{};
  std::memcpy(t.magic, kSealMagicV2, sizeof t.magic);
  t.content_size = kGiB - sizeof(SealTrailer);
  t.checksum = h.Finish();
  const int fd = open(resealed.c_str(), O_WRONLY | O_CLOEXEC);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(
      pwrite(fd, &t, sizeof t, static_cast<off_t>(kGiB - sizeof(SealTrailer))),
      static_cast<ssize_t>(sizeof t));
  close(fd);
  // The seal itself holds: only the size gives it away.
  auto sealed = CoreReader::Open(resealed, {.require_seal = true});
  ASSERT_TRUE(sealed.ok()) << sealed.status().ToString();
  sealed->reset();
  ExpectRefusedUnread(scanner_, resealed, "apparent size");
}

// The seal trailer's flags and reserved words are covered by no checksum:
// the gate refuses a real sealed dump with a bit flipped in either; the
// unflipped dump is released (FixedReleasesRedactedDumpByteForByte).
TEST_F(GateTest, TrailerFlagsOrReservedSetIsRefused) {
  const std::string good = testing::ReadWholeFile(CleanDump());
  ASSERT_GT(good.size(), sizeof(SealTrailer));
  const size_t trailer = good.size() - sizeof(SealTrailer);
  TempDir work, out;
  Gate gate(scanner_, GateOptions{GateMode::kFixed, out.path()});
  struct Flip {
    size_t at;
    const char* name;
  };
  for (const Flip& f : {Flip{offsetof(SealTrailer, flags), "flags"},
                        Flip{offsetof(SealTrailer, reserved), "reserved"}}) {
    std::string bytes = good;
    bytes[trailer + f.at + 3] ^= 0x10;
    const std::string path = work.path() + "/" + f.name + ".core";
    std::ofstream(path, std::ios::binary) << bytes;
    auto d = gate.Submit(path);
    ASSERT_TRUE(d.ok()) << d.status().ToString();
    EXPECT_FALSE(d->released) << f.name;
    EXPECT_NE(d->reason.find(f.name), std::string::npos) << d->reason;
  }
  EXPECT_TRUE(out.List().empty());
  auto clean = gate.Submit(CleanDump());
  ASSERT_TRUE(clean.ok()) << clean.status().ToString();
  EXPECT_TRUE(clean->released) << clean->reason;
}

// fail-open: the dump is still being written when the gate scans it (no
// seal: the scan refuses it); the writer finishes inside the egress
// window. The fail-open gate releases the leak; the fixed gate, under the
// same order, refuses the unsealed dump.
TEST_F(UnsealedTest, FailOpenReleasesTheLeak) {
  Gate gate(scanner_, GateOptions{GateMode::kFailOpen, out_.path()});
  auto d = gate.Submit(path_);
  ASSERT_TRUE(d.ok()) << d.status().ToString();
  ASSERT_TRUE(d->released) << d->reason;
  EXPECT_EQ(failpoint::Fired("gate.after_judge"), 1u);
  EXPECT_GT(LeaksIn(d->released_path), 0u);
}

TEST_F(UnsealedTest, FixedRefusesWhatFailOpenReleases) {
  Gate gate(scanner_, GateOptions{GateMode::kFixed, out_.path()});
  auto d = gate.Submit(path_);
  ASSERT_TRUE(d.ok()) << d.status().ToString();
  EXPECT_FALSE(d->released);
  EXPECT_TRUE(out_.List().empty());
}

// The writer still holds the judged file open (an fd taken before the
// judgment) and, inside the egress window, writes the leaking dump through
// it. rename-release and link-release hand out that very inode from
// another directory: the leak leaves. The fixed gate releases its sealed
// copy: the judged, redacted bytes.
class HeldOpenTest : public GateTest {
 protected:
  void SetUp() override {
    path_ = work_.path() + "/dump.core";
    CopyFile(CleanDump(), path_, SIZE_MAX);
    fd_ = open(path_.c_str(), O_WRONLY | O_CLOEXEC);
    ASSERT_GE(fd_, 0);
    const int fd = fd_;
    const std::string leak = testing::ReadWholeFile(LeakDump());
    ASSERT_TRUE(failpoint::SetCallback("gate.after_judge", [fd, leak] {
                  if (ftruncate(fd, 0) != 0) return;
                  if (pwrite(fd, leak.data(), leak.size(), 0) !=
                      static_cast<ssize_t>(leak.size())) {
                    return;
                  }
                }).ok());
    ASSERT_TRUE(failpoint::Configure("gate.after_judge=callback@1").ok());
  }
  void TearDown() override {
    if (fd_ >= 0) close(fd_);
    GateTest::TearDown();
  }
  void ExpectReleasesTheLeak(GateMode mode) {
    Gate gate(scanner_, GateOptions{mode, out_.path()});
    auto d = gate.Submit(path_);
    ASSERT_TRUE(d.ok()) << d.status().ToString();
    ASSERT_TRUE(d->released) << d->reason;
    EXPECT_EQ(d->report.leaks, 0u);  // judged clean...
    EXPECT_EQ(failpoint::Fired("gate.after_judge"), 1u);
    EXPECT_GT(LeaksIn(d->released_path), 0u);  // ...released leaking
  }
  TempDir work_, out_;
  std::string path_;
  int fd_ = -1;
};

TEST_F(HeldOpenTest, RenameReleaseReleasesTheLeak) {
  ExpectReleasesTheLeak(GateMode::kRenameRelease);
}

TEST_F(HeldOpenTest, LinkReleaseReleasesTheLeak) {
  ExpectReleasesTheLeak(GateMode::kLinkRelease);
}

TEST_F(HeldOpenTest, FixedReleasesOnlyWhatItJudged) {
  Gate gate(scanner_, GateOptions{GateMode::kFixed, out_.path()});
  auto d = gate.Submit(path_);
  ASSERT_TRUE(d.ok()) << d.status().ToString();
  ASSERT_TRUE(d->released) << d->reason;
  EXPECT_EQ(failpoint::Fired("gate.after_judge"), 1u);  // the write happened
  EXPECT_GT(LeaksIn(path_), 0u);                        // at the path
  EXPECT_EQ(LeaksIn(d->released_path), 0u);             // not released
  EXPECT_TRUE(testing::ReadWholeFile(d->released_path) ==
              testing::ReadWholeFile(CleanDump()));
}

// The scanner that missed the key: the legacy credential scanner judges
// the leaking dump (the seed as OpenSSL holds it, no PEM, no DER) clean and
// the fixed gate releases it; the oracle, same gate, refuses it.
TEST_F(GateTest, LegacyScannerReleasesWhatTheOracleRefuses) {
  TempDir legacy_out, oracle_out;
  GateOptions lo{GateMode::kFixed, legacy_out.path()};
  lo.scanner = GateScanner::kLegacy;
  Gate legacy(nullptr, lo);
  auto l = legacy.Submit(LeakDump());
  ASSERT_TRUE(l.ok()) << l.status().ToString();
  EXPECT_TRUE(l->released) << l->reason;
  EXPECT_EQ(l->report.leaks, 0u);
  EXPECT_GT(LeaksIn(l->released_path), 0u);

  Gate oracle(scanner_, GateOptions{GateMode::kFixed, oracle_out.path()});
  auto o = oracle.Submit(LeakDump());
  ASSERT_TRUE(o.ok()) << o.status().ToString();
  EXPECT_FALSE(o->released);
  EXPECT_TRUE(oracle_out.List().empty());
}

// The legacy gate is not blind to everything: the same redacted dump with
// the key's PKCS#8 DER written into a loaded segment (resealed) is refused
// by it.
TEST_F(GateTest, LegacyScannerRefusesAPlantedPkcs8) {
  std::string bytes = testing::ReadWholeFile(CleanDump());
  auto* data = reinterpret_cast<uint8_t*>(bytes.data());
  auto reader = CoreReader::FromBuffer(data, bytes.size());
  ASSERT_TRUE(reader.ok()) << reader.status().ToString();
  const KeyForms& key = scanner_->keys()[0];
  const Form& der = key.forms()[key.FindForm("ed25519.pkcs8.der")];
  uint64_t at = 0;
  for (const Mapping& m : (*reader)->mappings()) {
    if (m.filesz >= 4096 && m.name.empty()) {
      at = m.offset + 512;
      break;
    }
  }
  ASSERT_NE(at, 0u);
  std::memcpy(data + at, der.data(), der.size());
  const size_t content = bytes.size() - sizeof(SealTrailer);
  SealTrailer t{};
  std::memcpy(t.magic, kSealMagicV2, sizeof t.magic);
  t.content_size = content;
  t.checksum = SealChecksumV2(data, content);
  std::memcpy(data + content, &t, sizeof t);
  TempDir work, out;
  const std::string path = work.path() + "/planted.core";
  std::ofstream(path, std::ios::binary) << bytes;
  OPENSSL_cleanse(bytes.data(), bytes.size());
  GateOptions lo{GateMode::kFixed, out.path()};
  lo.scanner = GateScanner::kLegacy;
  Gate legacy(nullptr, lo);
  auto refused = legacy.Submit(path);
  ASSERT_TRUE(refused.ok()) << refused.status().ToString();
  EXPECT_FALSE(refused->released);
  ASSERT_GE(refused->report.leaks, 1u);
  EXPECT_EQ(refused->report.findings[0].form, "pkcs8-der(ed25519)");
  auto clean = legacy.Submit(CleanDump());
  ASSERT_TRUE(clean.ok()) << clean.status().ToString();
  EXPECT_TRUE(clean->released) << clean->reason;
}

TEST_F(GateTest, BadInputIsAnError) {
  TempDir out;
  Gate gate(scanner_, GateOptions{GateMode::kFixed, out.path()});
  EXPECT_FALSE(gate.Submit("/nonexistent/dump.core").ok());
  EXPECT_FALSE(gate.Submit(out.path()).ok());  // a directory
  Gate nowhere(scanner_, GateOptions{GateMode::kFixed, "/nonexistent"});
  auto d = nowhere.Submit(CleanDump());
  EXPECT_EQ(d.status().code(), StatusCode::kInvalidArgument);
  EXPECT_FALSE(ParseGateMode("sometimes").ok());
  EXPECT_TRUE(ParseGateMode("reopen-to-release").ok());
  EXPECT_TRUE(ParseGateMode("judge-unsealed").ok());
  for (const char* name : {"fail-open", "rename-release", "link-release"}) {
    EXPECT_TRUE(ParseGateMode(name).ok()) << name;
  }
  EXPECT_TRUE(ParseGateScanner("legacy").ok());
  EXPECT_FALSE(ParseGateScanner("regex").ok());
}

}  // namespace
}  // namespace sigrace::crashdump
