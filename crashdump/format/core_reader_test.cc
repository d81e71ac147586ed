#include "crashdump/format/core_reader.h"

#include <elf.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <pthread.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "crashdump/format/core_format.h"
#include "testing/synthetic_core.h"

namespace sigrace::crashdump {
namespace {

using testing::SyntheticCore;

// Owns an exactly sized heap copy of the input, so that a sanitizer build
// flags any read past its end, and the reader made from it.
struct Parsed {
  std::unique_ptr<uint8_t[]> bytes;
  StatusOr<std::unique_ptr<CoreReader>> reader = InternalError("unset");

  bool ok() const { return reader.ok(); }
  const Status& status() const { return reader.status(); }
  const CoreReader& r() const { return **reader; }
};

Parsed Parse(const std::vector<uint8_t>& file, ReaderOptions options = {}) {
  Parsed p;
  p.bytes.reset(new uint8_t[file.size() ? file.size() : 1]);
  if (!file.empty()) std::memcpy(p.bytes.get(), file.data(), file.size());
  p.reader = CoreReader::FromBuffer(p.bytes.get(), file.size(), options);
  return p;
}

// A clean error is kDataLoss with a single non-empty line.
void ExpectCleanError(const Parsed& p, const std::string& contains) {
  ASSERT_FALSE(p.ok()) << "expected an error containing '" << contains << "'";
  EXPECT_EQ(p.status().code(), StatusCode::kDataLoss) << p.status().ToString();
  EXPECT_FALSE(p.status().message().empty());
  EXPECT_EQ(p.status().message().find('\n'), std::string::npos)
      << p.status().message();
  EXPECT_NE(p.status().message().find(contains), std::string::npos)
      << "message: " << p.status().message();
}

constexpr uint64_t kHeapAddr = 0x7f0000001000;
constexpr uint64_t kTextAddr = 0x400000;
constexpr uint64_t kStackAddr = 0x7ffd00000000;

SyntheticCore MakeCore() {
  SyntheticCore c;
  c.threads.push_back({101, SIGSEGV, 0x401234, 0x7ffd00000f00, 0x7ffd00000f80});
  c.threads.push_back({102, 0, 0x401999, 0x7ffd00000800, 0});
  SyntheticCore::Load text;
  text.vaddr = kTextAddr;
  text.memsz = 0x2000;  // none of it in the file, as for read-only text
  text.flags = PF_R | PF_X;
  text.name = "/usr/bin/signer";
  c.loads.push_back(text);
  SyntheticCore::Load heap;
  heap.vaddr = kHeapAddr;
  heap.bytes.assign(0x1000, 0xab);
  c.loads.push_back(heap);
  SyntheticCore::Load stack;
  stack.vaddr = kStackAddr;
  stack.bytes.assign(0x1000, 0xcd);
  c.loads.push_back(stack);
  c.AddRedaction(RedactionKind::kRange, kHeapAddr + 0x100, 0x40, 0,
                 "vault.rsa");
  c.AddRedaction(RedactionKind::kRange, kHeapAddr + 0x140, 0x20, 0,
                 "vault.rsa.tail");
  c.AddRedaction(RedactionKind::kSecretStack, kStackAddr + 0x800, 0x100, 101,
                 "stack:101");
  c.AddRedaction(RedactionKind::kRegisters, 0, 0, 101, "regs:101");
  c.meta = "signal=11\nmode=live\nvariant=fixed\ntrial=7\n";
  c.backtrace = "#0 0x401234 Sign+0x14\n#1 0x401400 main+0x20\n";
  c.fault_addr = 0xdead0000;
  return c;
}

TEST(CoreReader, ReadsSyntheticSigraceDump) {
  SyntheticCore::Layout lay;
  const std::vector<uint8_t> file = MakeCore().Build(true, &lay);
  Parsed p = Parse(file, {.require_seal = true});
  ASSERT_TRUE(p.ok()) << p.status().ToString();
  const CoreReader& r = p.r();

  EXPECT_EQ(r.machine(), EM_X86_64);
  EXPECT_EQ(r.seal().state, SealState::kSealed);
  EXPECT_TRUE(r.seal().checksum_verified);
  EXPECT_EQ(r.seal().content_size, lay.content_size);
  EXPECT_TRUE(r.has_sigrace_notes());

  ASSERT_EQ(r.threads().size(), 2u);
  EXPECT_EQ(r.threads()[0].tid, 101);
  EXPECT_EQ(r.threads()[0].signal, SIGSEGV);
  EXPECT_TRUE(r.threads()[0].regs_known);
  EXPECT_EQ(r.threads()[0].pc, 0x401234u);
  EXPECT_EQ(r.threads()[0].sp, 0x7ffd00000f00u);
  EXPECT_EQ(r.threads()[0].bp, 0x7ffd00000f80u);
  EXPECT_EQ(r.threads()[1].tid, 102);
  EXPECT_EQ(r.threads()[1].pc, 0x401999u);
  // NT_PRSTATUS plus the NT_PRFPREG that follows it.
  EXPECT_EQ(r.threads()[1].reg_notes.size(), 2u);
  EXPECT_EQ(r.threads()[0].regs_size, 27u * 8);

  ASSERT_EQ(r.mappings().size(), 3u);
  EXPECT_EQ(r.mappings()[0].vaddr, kTextAddr);
  EXPECT_EQ(r.mappings()[0].memsz, 0x2000u);
  EXPECT_EQ(r.mappings()[0].filesz, 0u);
  EXPECT_EQ(r.mappings()[0].Perms(), "r-x");
  EXPECT_EQ(r.mappings()[0].name, "/usr/bin/signer");
  EXPECT_EQ(r.mappings()[0].name_offset, 4096u);
  EXPECT_EQ(r.mappings()[1].Perms(), "rw-");
  EXPECT_EQ(r.mappings()[1].offset, lay.load_offsets[1]);
  EXPECT_EQ(r.mappings()[1].name, "");

  ASSERT_EQ(r.redactions().size(), 4u);
  EXPECT_EQ(r.redactions()[0].kind, RedactionKind::kRange);
  EXPECT_EQ(r.redactions()[0].label, "vault.rsa");
  EXPECT_EQ(r.redactions()[2].kind, RedactionKind::kSecretStack);
  EXPECT_EQ(r.redactions()[2].tid, 101);
  EXPECT_EQ(r.redactions()[3].kind, RedactionKind::kRegisters);

  ASSERT_EQ(r.meta().size(), 4u);
  EXPECT_EQ(r.meta()[1].first, "mode");
  EXPECT_EQ(r.MetaValue("variant"), "fixed");
  EXPECT_EQ(r.MetaValue("absent"), std::nullopt);
  EXPECT_EQ(r.backtrace(), "#0 0x401234 Sign+0x14\n#1 0x401400 main+0x20\n");

  ASSERT_TRUE(r.siginfo().has_value());
  EXPECT_EQ(r.siginfo()->signo, 11);
  EXPECT_EQ(r.siginfo()->code, 1);
  EXPECT_EQ(r.siginfo()->addr, 0xdead0000u);
  ASSERT_TRUE(r.process().has_value());
  EXPECT_EQ(r.process()->pid, 4242);
  EXPECT_EQ(r.process()->name, "synthetic");
  EXPECT_EQ(r.process()->args, "synthetic --core");
  EXPECT_EQ(r.data(), p.bytes.get());
  EXPECT_EQ(r.size(), file.size());
}

TEST(CoreReader, MapsOffsetsAndAddressesBothWays) {
  SyntheticCore::Layout lay;
  Parsed p = Parse(MakeCore().Build(true, &lay));
  ASSERT_TRUE(p.ok()) << p.status().ToString();
  const CoreReader& r = p.r();

  const uint64_t heap_off = lay.load_offsets[1];
  auto a = r.OffsetToAddress(heap_off + 0x123);
  ASSERT_TRUE(a.has_value());
  EXPECT_EQ(a->mapping_index, 1u);
  EXPECT_EQ(a->vaddr, kHeapAddr + 0x123);
  EXPECT_EQ(r.AddressToOffset(kHeapAddr + 0x123), heap_off + 0x123);
  EXPECT_EQ(r.AddressToOffset(kStackAddr + 0xfff), lay.load_offsets[2] + 0xfff);
  // One past the mapping, and a mapping with no file bytes.
  EXPECT_FALSE(r.OffsetToAddress(heap_off + 0x1000).has_value() &&
               r.OffsetToAddress(heap_off + 0x1000)->mapping_index == 1);
  EXPECT_EQ(r.AddressToOffset(kHeapAddr + 0x1000), std::nullopt);
  EXPECT_EQ(r.MappingForAddress(kTextAddr + 0x10), 0u);
  EXPECT_EQ(r.AddressToOffset(kTextAddr + 0x10), std::nullopt);
  EXPECT_EQ(r.AddressToOffset(0x10), std::nullopt);
  EXPECT_EQ(r.OffsetToAddress(0), std::nullopt);

  EXPECT_EQ(r.MemoryAt(kHeapAddr, 0x1000), r.data() + heap_off);
  EXPECT_EQ(r.MemoryAt(kHeapAddr + 1, 0x1000), nullptr);
  EXPECT_EQ(r.MemoryAt(kTextAddr, 1), nullptr);

  EXPECT_EQ(r.Locate(3).kind, FileLocation::Kind::kElfHeader);
  EXPECT_EQ(r.Locate(lay.phoff + 60).kind, FileLocation::Kind::kProgramHeaders);
  FileLocation n = r.Locate(lay.note_offsets[2] + 20);
  EXPECT_EQ(n.kind, FileLocation::Kind::kNote);
  EXPECT_EQ(n.note_index, 2u);
  FileLocation regs = r.Locate(r.threads()[1].regs_offset + 8);
  EXPECT_EQ(regs.kind, FileLocation::Kind::kNote);
  EXPECT_EQ(r.notes()[regs.note_index].thread_index, 1);
  FileLocation load = r.Locate(heap_off + 7);
  EXPECT_EQ(load.kind, FileLocation::Kind::kLoad);
  EXPECT_EQ(load.mapping_index, 1u);
  EXPECT_EQ(load.vaddr, kHeapAddr + 7);
  EXPECT_EQ(r.Locate(r.size() - 1).kind, FileLocation::Kind::kTrailer);
  // Padding between the notes and the first page-aligned load.
  EXPECT_EQ(r.Locate(heap_off - 1).kind, FileLocation::Kind::kOther);
}

TEST(CoreReader, TellsRedactedFromUnredactedRanges) {
  Parsed p = Parse(MakeCore().Build());
  ASSERT_TRUE(p.ok()) << p.status().ToString();
  const CoreReader& r = p.r();
  // Two adjacent records cover [0x100, 0x160) together.
  EXPECT_TRUE(r.IsRedacted(kHeapAddr + 0x100, 0x60));
  EXPECT_TRUE(r.IsRedacted(kHeapAddr + 0x130, 0x20));
  EXPECT_FALSE(r.IsRedacted(kHeapAddr + 0x0ff, 0x10));
  EXPECT_FALSE(r.IsRedacted(kHeapAddr + 0x150, 0x20));
  EXPECT_FALSE(r.IsRedacted(kHeapAddr + 0x100, 0));
  EXPECT_TRUE(r.IsRedacted(kStackAddr + 0x800, 0x100));
  // kRegisters records carry no range and cover nothing.
  EXPECT_FALSE(r.IsRedacted(0, 1));
  EXPECT_FALSE(r.IsRedacted(UINT64_MAX, 2));
  EXPECT_EQ(r.RedactionsOverlapping(kHeapAddr + 0x13f, 2),
            (std::vector<size_t>{0, 1}));
  EXPECT_TRUE(r.RedactionsOverlapping(kHeapAddr, 0x100).empty());
}

TEST(CoreReader, SealStates) {
  const SyntheticCore c = MakeCore();
  {
    Parsed p = Parse(c.Build(/*seal=*/false));
    ASSERT_TRUE(p.ok()) << p.status().ToString();
    EXPECT_EQ(p.r().seal().state, SealState::kUnsealed);
    EXPECT_EQ(p.r().seal().reason, "unsealed (no sigrace trailer)");
    ExpectCleanError(Parse(c.Build(false), {.require_seal = true}),
                     "dump is not sealed: unsealed (no sigrace trailer)");
  }
  {
    std::vector<uint8_t> f = c.Build(true);
    f[f.size() - 100] ^= 1;  // a load byte: the checksum no longer matches
    Parsed p = Parse(f);
    ASSERT_TRUE(p.ok()) << p.status().ToString();
    EXPECT_EQ(p.r().seal().state, SealState::kCorrupt);
    EXPECT_EQ(p.r().seal().reason, "corrupt (checksum mismatch)");
    ExpectCleanError(Parse(f, {.require_seal = true}), "checksum mismatch");
    // Without verification only the shape of the trailer is checked.
    Parsed nv = Parse(f, {.verify_checksum = false});
    ASSERT_TRUE(nv.ok());
    EXPECT_EQ(nv.r().seal().state, SealState::kSealed);
    EXPECT_FALSE(nv.r().seal().checksum_verified);
  }
  {
    std::vector<uint8_t> f = c.Build(true);
    SyntheticCore::Put<uint64_t>(&f, f.size() - sizeof(SealTrailer) + 16,
                                 f.size());  // content_size
    Parsed p = Parse(f);
    ASSERT_TRUE(p.ok()) << p.status().ToString();
    EXPECT_EQ(p.r().seal().state, SealState::kCorrupt);
    ExpectCleanError(Parse(f, {.require_seal = true}), "content_size");
  }
  {
    // A torn write: the trailer arrived but some content did not.
    std::vector<uint8_t> f = c.Build(true);
    std::vector<uint8_t> torn(f.begin(), f.begin() + 4096);
    torn.insert(torn.end(), f.end() - sizeof(SealTrailer), f.end());
    Parsed p = Parse(torn);
    ExpectCleanError(p, "extends beyond the end of the content");
  }
}

// Re-seals `f` (a sealed synthetic core) with a v2 trailer.
std::vector<uint8_t> ResealV2(std::vector<uint8_t> f) {
  f.resize(f.size() - sizeof(SealTrailer));
  SealTrailer t{};
  std::memcpy(t.magic, kSealMagicV2, sizeof(t.magic));
  t.content_size = f.size();
  t.checksum = SealChecksumV2(f.data(), f.size());
  const uint8_t* p = reinterpret_cast<const uint8_t*>(&t);
  f.insert(f.end(), p, p + sizeof(t));
  return f;
}

TEST(CoreReader, SealVersionsOneAndTwoAreRead) {
  const std::vector<uint8_t> v1 = MakeCore().Build(true);
  {
    Parsed p = Parse(v1, {.require_seal = true});
    ASSERT_TRUE(p.ok()) << p.status().ToString();
    EXPECT_EQ(p.r().seal().version, 1u);
    EXPECT_TRUE(p.r().seal().checksum_verified);
  }
  std::vector<uint8_t> v2 = ResealV2(v1);
  {
    Parsed p = Parse(v2, {.require_seal = true});
    ASSERT_TRUE(p.ok()) << p.status().ToString();
    EXPECT_EQ(p.r().seal().version, 2u);
    EXPECT_TRUE(p.r().seal().checksum_verified);
  }
  // One bit anywhere in the content, even the top bit of a word, breaks
  // the v2 checksum; so do two top bits in the same lane.
  const size_t content = v2.size() - sizeof(SealTrailer);
  for (size_t off : {content / 2, content / 2 + 7, content - 1}) {
    std::vector<uint8_t> f = v2;
    f[off] ^= 0x80;
    Parsed p = Parse(f);
    ASSERT_TRUE(p.ok()) << off;
    EXPECT_EQ(p.r().seal().reason, "corrupt (checksum mismatch)") << off;
  }
  {
    std::vector<uint8_t> f = v2;
    f[content - 33] ^= 0x80;
    f[content - 1] ^= 0x80;
    EXPECT_EQ(Parse(f).r().seal().state, SealState::kCorrupt);
  }
  {
    // A v1 checksum under a v2 magic does not pass.
    std::vector<uint8_t> f = v1;
    std::memcpy(f.data() + f.size() - sizeof(SealTrailer), kSealMagicV2, 16);
    EXPECT_EQ(Parse(f).r().seal().reason, "corrupt (checksum mismatch)");
  }
  {
    std::vector<uint8_t> f = v2;
    f[f.size() - sizeof(SealTrailer) + 14] = '9';
    Parsed p = Parse(f);
    ASSERT_TRUE(p.ok());
    EXPECT_EQ(p.r().seal().state, SealState::kCorrupt);
    EXPECT_EQ(p.r().seal().reason,
              "corrupt (unknown seal version 'v9'; this reader knows v1 and "
              "v2)");
    ExpectCleanError(Parse(f, {.require_seal = true}),
                     "unknown seal version 'v9'");
  }
}

// The writer feeds the v2 checksum in arbitrary pieces and turns zero runs
// into UpdateZeros(); every split must give the one-shot value.
TEST(SealHasherV2, ChunkingAndZeroRunsGiveTheOneShotValue) {
  std::vector<uint8_t> data(3 * 4096 + 77);
  uint64_t x = 12345;
  for (size_t i = 0; i < data.size(); ++i) {
    x = x * 6364136223846793005ULL + 1442695040888963407ULL;
    data[i] = static_cast<uint8_t>(x >> 56);
  }
  // Zero runs at odd places and lengths.
  std::memset(data.data() + 5, 0, 3);
  std::memset(data.data() + 4096, 0, 4096);
  std::memset(data.data() + 9000, 0, 33);
  const uint64_t want = SealChecksumV2(data.data(), data.size());
  for (size_t piece : {size_t{1}, size_t{3}, size_t{31}, size_t{32}, size_t{33},
                       size_t{4096}, size_t{5000}}) {
    SealHasherV2 h;
    for (size_t i = 0; i < data.size(); i += piece) {
      const size_t n = std::min(piece, data.size() - i);
      bool zero = true;
      for (size_t k = 0; k < n; ++k) zero = zero && data[i + k] == 0;
      if (zero) {
        h.UpdateZeros(n);
      } else {
        h.Update(data.data() + i, n);
      }
    }
    EXPECT_EQ(h.bytes(), data.size());
    EXPECT_EQ(h.Finish(), want) << "piece " << piece;
  }
  // Trailing zeros and length both count.
  std::vector<uint8_t> longer = data;
  longer.push_back(0);
  EXPECT_NE(SealChecksumV2(longer.data(), longer.size()), want);
}

TEST(SealChecksumV1, ZeroRunsGiveTheByteWiseValue) {
  const std::vector<uint8_t> zeros(70000, 0);
  for (uint64_t start : {kSealChecksumInit, uint64_t{0x1234567890abcdefULL}}) {
    for (size_t n : {size_t{0}, size_t{1}, size_t{2}, size_t{31}, size_t{4096},
                     size_t{69999}}) {
      EXPECT_EQ(SealChecksumZeros(start, n),
                SealChecksumUpdate(start, zeros.data(), n))
          << n;
    }
  }
}

// A sparse dump on disk: the zero pages of a large load are holes. Open()
// folds the holes into the checksum without reading them, and the verdict
// is the one a full read gives: sealed when intact, corrupt when a byte of
// data changes, or when a byte appears inside what was a hole.
class SparseDump : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/sigrace-sparse-XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  // Writes `f`, leaving every all-zero 4 KiB page as a hole.
  std::string WriteSparse(const std::vector<uint8_t>& f, const char* name) {
    const std::string path = dir_ + "/" + name;
    const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
    EXPECT_GE(fd, 0);
    for (size_t off = 0; off < f.size(); off += 4096) {
      const size_t n = std::min<size_t>(4096, f.size() - off);
      if (std::all_of(f.begin() + static_cast<ptrdiff_t>(off),
                      f.begin() + static_cast<ptrdiff_t>(off + n),
                      [](uint8_t b) { return b == 0; })) {
        continue;
      }
      EXPECT_EQ(::pwrite(fd, f.data() + off, n, static_cast<off_t>(off)),
                static_cast<ssize_t>(n));
    }
    EXPECT_EQ(::ftruncate(fd, static_cast<off_t>(f.size())), 0);
    ::close(fd);
    return path;
  }

  static std::vector<FileExtent> Extents(const std::string& path) {
    const int fd = ::open(path.c_str(), O_RDONLY);
    struct stat st;
    ::fstat(fd, &st);
    StatusOr<std::vector<FileExtent>> e =
        DataExtents(fd, static_cast<uint64_t>(st.st_size));
    ::close(fd);
    EXPECT_TRUE(e.ok()) << e.status().ToString();
    return e.ok() ? *e : std::vector<FileExtent>{};
  }

  std::string dir_;
};

TEST_F(SparseDump, HolesAreFoldedIntoTheSealWithoutBeingRead) {
  SyntheticCore c = MakeCore();
  SyntheticCore::Load big;
  big.vaddr = 0x7f0000100000;
  big.bytes.assign(size_t{3} << 20, 0);
  big.bytes[0x1234] = 0x5a;                 // data in its first page
  big.bytes[(size_t{2} << 20) + 9] = 0xa5;  // and one in the middle
  c.loads.push_back(big);
  SyntheticCore::Layout lay;
  const std::vector<uint8_t> v1 = c.Build(true, &lay);
  const std::vector<uint8_t> v2 = ResealV2(v1);
  const uint64_t big_off = lay.load_offsets.back();
  for (const auto* f : {&v1, &v2}) {
    SCOPED_TRACE(f == &v1 ? "v1" : "v2");
    const std::string path = WriteSparse(*f, "dump.core");
    const std::vector<FileExtent> extents = Extents(path);
    ASSERT_FALSE(extents.empty());
    if (extents.size() >= 3) {
      uint64_t data = 0;
      for (const FileExtent& e : extents) data += e.length;
      EXPECT_LT(data, f->size() / 4) << "the zero pages were not holes";
    } else {
      std::fprintf(stderr, "note: this file system keeps no holes\n");
    }
    {
      auto r = CoreReader::Open(path, {.require_seal = true});
      ASSERT_TRUE(r.ok()) << r.status().ToString();
      EXPECT_TRUE((*r)->seal().checksum_verified);
    }
    {
      // One byte of data changed: corrupt, as a full read would say.
      std::vector<uint8_t> g = *f;
      g[big_off + 0x1234] ^= 0x01;
      const std::string p2 = WriteSparse(g, "data-changed.core");
      auto r = CoreReader::Open(p2);
      ASSERT_TRUE(r.ok()) << r.status().ToString();
      EXPECT_EQ((*r)->seal().reason, "corrupt (checksum mismatch)");
    }
    {
      // A byte where the writer left a hole: that page is data now, is read,
      // and breaks the checksum.
      std::vector<uint8_t> g = *f;
      g[big_off + (size_t{1} << 20) + 77] = 0x01;
      const std::string p3 = WriteSparse(g, "hole-filled.core");
      auto r = CoreReader::Open(p3);
      ASSERT_TRUE(r.ok()) << r.status().ToString();
      EXPECT_EQ((*r)->seal().reason, "corrupt (checksum mismatch)");
    }
    // The same bytes from a buffer (no extents) agree.
    Parsed p = Parse(*f, {.require_seal = true});
    EXPECT_TRUE(p.ok()) << p.status().ToString();
  }
}

// What lies outside the data extents is never read: a buffer with junk
// where the extents say "hole" still verifies, given the extents; read
// whole, the junk breaks the checksum. Overlapping extents read each byte
// once.
TEST(CoreReader, ChecksumReadsOnlyTheDataExtents) {
  SyntheticCore c = MakeCore();
  SyntheticCore::Load big;
  big.vaddr = 0x7f0000100000;
  big.bytes.assign(size_t{1} << 20, 0);
  big.bytes[100] = 0x5a;
  c.loads.push_back(big);
  SyntheticCore::Layout lay;
  for (bool v2 : {false, true}) {
    SCOPED_TRACE(v2 ? "v2" : "v1");
    std::vector<uint8_t> f = c.Build(true, &lay);
    if (v2) f = ResealV2(std::move(f));
    const uint64_t hole_at = lay.load_offsets.back() + 4096;
    const uint64_t hole_len = (uint64_t{1} << 20) - 8192;
    const std::vector<FileExtent> extents = {
        {0, hole_at},
        {hole_at - 100, 50},  // overlaps the first: nothing new
        {hole_at + hole_len, f.size() - hole_at - hole_len}};
    std::vector<uint8_t> junk = f;
    for (uint64_t i = 0; i < hole_len; i += 4096) junk[hole_at + i] = 0x77;
    Parsed p = Parse(junk, {.require_seal = true, .data_extents = &extents});
    ASSERT_TRUE(p.ok()) << p.status().ToString();
    EXPECT_TRUE(p.r().seal().checksum_verified);
    EXPECT_EQ(Parse(junk).r().seal().reason, "corrupt (checksum mismatch)");
  }
}

// Every prefix of a valid dump shorter than its content is an error, and
// each is reported without reading past the prefix (run under the asan
// preset, the exact-size copy in Parse() catches any stray read).
TEST(CoreReader, TruncatedAtEveryLengthIsAnError) {
  SyntheticCore::Layout lay;
  const std::vector<uint8_t> f = MakeCore().Build(true, &lay);
  for (size_t len = 0; len < lay.content_size; ++len) {
    Parsed p = Parse(std::vector<uint8_t>(f.data(), f.data() + len));
    ASSERT_FALSE(p.ok()) << "prefix of " << len << " bytes parsed";
    ASSERT_EQ(p.status().code(), StatusCode::kDataLoss) << len;
    ASSERT_EQ(p.status().message().find('\n'), std::string::npos);
  }
  // Cut exactly where the trailer starts: a complete but unsealed core.
  Parsed p = Parse(std::vector<uint8_t>(f.data(), f.data() + lay.content_size));
  ASSERT_TRUE(p.ok()) << p.status().ToString();
  EXPECT_EQ(p.r().seal().state, SealState::kUnsealed);
  // A few boundaries with the message they must give.
  auto prefix = [&](size_t n) {
    return Parse(std::vector<uint8_t>(f.data(), f.data() + n));
  };
  ExpectCleanError(prefix(0), "empty file");
  ExpectCleanError(prefix(3), "not an ELF file");
  ExpectCleanError(prefix(10), "truncated ELF header");
  ExpectCleanError(prefix(63), "truncated ELF header: file has 63 bytes");
  ExpectCleanError(prefix(64), "program header table");
  ExpectCleanError(prefix(lay.notes_offset), "PT_NOTE");
  ExpectCleanError(prefix(lay.notes_offset + lay.notes_size), "PT_LOAD");
}

TEST(CoreReader, RejectsNonCoreInput) {
  const std::string text = "hello, this is not an ELF core file\n";
  ExpectCleanError(Parse(std::vector<uint8_t>(text.begin(), text.end())),
                   "not an ELF file");
  std::vector<uint8_t> f = MakeCore().Build(false);
  std::vector<uint8_t> f32 = f;
  f32[EI_CLASS] = ELFCLASS32;
  ExpectCleanError(Parse(f32), "32-bit ELF files are not supported");
  std::vector<uint8_t> fbe = f;
  fbe[EI_DATA] = ELFDATA2MSB;
  ExpectCleanError(Parse(fbe), "little-endian");
  std::vector<uint8_t> fexec = f;
  SyntheticCore::Put<uint16_t>(&fexec, offsetof(Elf64_Ehdr, e_type), ET_EXEC);
  ExpectCleanError(Parse(fexec), "not a core file (ELF type 2");
}

TEST(CoreReader, RejectsHostileProgramHeaderTable) {
  const std::vector<uint8_t> base = MakeCore().Build(false);
  {
    std::vector<uint8_t> f = base;
    SyntheticCore::Put<uint64_t>(&f, offsetof(Elf64_Ehdr, e_phoff),
                                 0xfffffffffffffff0ULL);
    ExpectCleanError(Parse(f), "program header table");
  }
  {
    std::vector<uint8_t> f = base;
    SyntheticCore::Put<uint16_t>(&f, offsetof(Elf64_Ehdr, e_phnum), 0xfffe);
    ExpectCleanError(Parse(f), "program header table (65534 entries");
  }
  {
    std::vector<uint8_t> f = base;
    SyntheticCore::Put<uint16_t>(&f, offsetof(Elf64_Ehdr, e_phnum), 0);
    ExpectCleanError(Parse(f), "no program headers");
  }
  {
    std::vector<uint8_t> f = base;
    SyntheticCore::Put<uint16_t>(&f, offsetof(Elf64_Ehdr, e_phentsize), 32);
    ExpectCleanError(Parse(f), "bad e_phentsize 32");
  }
  {
    // PN_XNUM with no section header to hold the real count.
    std::vector<uint8_t> f = base;
    SyntheticCore::Put<uint16_t>(&f, offsetof(Elf64_Ehdr, e_phnum), PN_XNUM);
    SyntheticCore::Put<uint64_t>(&f, offsetof(Elf64_Ehdr, e_shoff),
                                 0xfffffffffffffff0ULL);
    SyntheticCore::Put<uint16_t>(&f, offsetof(Elf64_Ehdr, e_shentsize),
                                 sizeof(Elf64_Shdr));
    ExpectCleanError(Parse(f), "PN_XNUM");
  }
  {
    // PN_XNUM whose section header claims 2^32-1 segments.
    std::vector<uint8_t> f = base;
    Elf64_Shdr sh{};
    sh.sh_info = 0xffffffffu;
    const uint64_t shoff = f.size();
    f.resize(f.size() + sizeof(sh));
    std::memcpy(f.data() + shoff, &sh, sizeof(sh));
    SyntheticCore::Put<uint16_t>(&f, offsetof(Elf64_Ehdr, e_phnum), PN_XNUM);
    SyntheticCore::Put<uint64_t>(&f, offsetof(Elf64_Ehdr, e_shoff), shoff);
    SyntheticCore::Put<uint16_t>(&f, offsetof(Elf64_Ehdr, e_shentsize),
                                 sizeof(Elf64_Shdr));
    ExpectCleanError(Parse(f), "too many program headers (4294967295 > limit");
    ExpectCleanError(Parse(f, {.max_segments = 0xffffffffu}),
                     "program header table (4294967295 entries");
  }
}

// A small file must not make the reader allocate without bound.
TEST(CoreReader, EnforcesAllocationLimits) {
  const std::vector<uint8_t> f = MakeCore().Build(false);
  ASSERT_TRUE(Parse(f).ok());
  ExpectCleanError(Parse(f, {.max_segments = 2}),
                   "too many program headers (4 > limit 2)");
  ExpectCleanError(Parse(f, {.max_notes = 3}), "too many notes (limit 3)");
  ExpectCleanError(Parse(f, {.max_records = 0}),
                   "too many NT_FILE entries (1, limit 0)");
  ExpectCleanError(Parse(f, {.max_records = 2}),
                   "too many redaction records (4, limit 2)");
  EXPECT_TRUE(
      Parse(f, {.max_segments = 4, .max_notes = 10, .max_records = 4}).ok());
}

TEST(CoreReader, FollowsPnXnumToSectionHeaderZero) {
  SyntheticCore::Layout lay;
  std::vector<uint8_t> f = MakeCore().Build(false, &lay);
  Elf64_Shdr sh{};
  sh.sh_info = 4;  // PT_NOTE + 3 PT_LOAD
  const uint64_t shoff = f.size();
  f.resize(f.size() + sizeof(sh));
  std::memcpy(f.data() + shoff, &sh, sizeof(sh));
  SyntheticCore::Put<uint16_t>(&f, offsetof(Elf64_Ehdr, e_phnum), PN_XNUM);
  SyntheticCore::Put<uint64_t>(&f, offsetof(Elf64_Ehdr, e_shoff), shoff);
  SyntheticCore::Put<uint16_t>(&f, offsetof(Elf64_Ehdr, e_shentsize),
                               sizeof(Elf64_Shdr));
  Parsed p = Parse(f);
  ASSERT_TRUE(p.ok()) << p.status().ToString();
  EXPECT_EQ(p.r().mappings().size(), 3u);
  EXPECT_EQ(p.r().threads().size(), 2u);
}

TEST(CoreReader, RejectsHostileLoadSegments) {
  SyntheticCore::Layout lay;
  const std::vector<uint8_t> base = MakeCore().Build(false, &lay);
  const uint64_t heap = lay.load_phdrs[1];
  {
    std::vector<uint8_t> f = base;  // filesz runs past EOF
    SyntheticCore::Put<uint64_t>(&f, heap + offsetof(Elf64_Phdr, p_filesz),
                                 0x100000);
    SyntheticCore::Put<uint64_t>(&f, heap + offsetof(Elf64_Phdr, p_memsz),
                                 0x100000);
    ExpectCleanError(Parse(f), "extends beyond the end of the content");
  }
  {
    std::vector<uint8_t> f = base;  // offset + filesz wraps
    SyntheticCore::Put<uint64_t>(&f, heap + offsetof(Elf64_Phdr, p_offset),
                                 0xffffffffffffff00ULL);
    ExpectCleanError(Parse(f), "PT_LOAD (program header 2)");
  }
  {
    std::vector<uint8_t> f = base;  // vaddr + memsz wraps
    SyntheticCore::Put<uint64_t>(&f, heap + offsetof(Elf64_Phdr, p_vaddr),
                                 0xfffffffffffff800ULL);
    ExpectCleanError(Parse(f), "wraps");
  }
  {
    std::vector<uint8_t> f = base;
    SyntheticCore::Put<uint64_t>(&f, heap + offsetof(Elf64_Phdr, p_memsz), 16);
    ExpectCleanError(Parse(f), "p_filesz 4096 > p_memsz 16");
  }
  {
    std::vector<uint8_t> f = base;  // the stack's bytes alias the heap's
    SyntheticCore::Put<uint64_t>(
        &f, lay.load_phdrs[2] + offsetof(Elf64_Phdr, p_offset),
        lay.load_offsets[1] + 8);
    ExpectCleanError(Parse(f), "file bytes overlap");
  }
  {
    std::vector<uint8_t> f = base;
    SyntheticCore::Put<uint64_t>(
        &f, lay.load_phdrs[2] + offsetof(Elf64_Phdr, p_vaddr), kHeapAddr + 8);
    ExpectCleanError(Parse(f), "addresses overlap");
  }
  {
    // The trailer is not content: a load reaching into it is rejected.
    std::vector<uint8_t> f = MakeCore().Build(false, &lay);
    SyntheticCore::Put<uint64_t>(
        &f, lay.load_phdrs[2] + offsetof(Elf64_Phdr, p_filesz), 0x1010);
    SyntheticCore::Put<uint64_t>(
        &f, lay.load_phdrs[2] + offsetof(Elf64_Phdr, p_memsz), 0x1010);
    SyntheticCore::Seal(&f);
    ExpectCleanError(Parse(f), "extends beyond the end of the content");
  }
}

TEST(CoreReader, RejectsHostileNotes) {
  SyntheticCore::Layout lay;
  const std::vector<uint8_t> base = MakeCore().Build(false, &lay);
  const uint64_t first = lay.note_offsets[0];
  {
    std::vector<uint8_t> f = base;  // n_namesz at its maximum
    SyntheticCore::Put<uint32_t>(&f, first, 0xffffffffu);
    ExpectCleanError(Parse(f), "extend beyond the note segment");
  }
  {
    std::vector<uint8_t> f = base;  // n_descsz at its maximum
    SyntheticCore::Put<uint32_t>(&f, first + 4, 0xfffffffdu);
    ExpectCleanError(Parse(f), "extend beyond the note segment");
  }
  {
    std::vector<uint8_t> f = base;  // the segment ends inside a note header
    SyntheticCore::Put<uint64_t>(&f,
                                 lay.note_phdr + offsetof(Elf64_Phdr, p_filesz),
                                 lay.note_offsets[1] - lay.notes_offset + 6);
    ExpectCleanError(Parse(f), "truncated note header");
  }
  {
    std::vector<uint8_t> f = base;  // PT_NOTE beyond EOF
    SyntheticCore::Put<uint64_t>(
        &f, lay.note_phdr + offsetof(Elf64_Phdr, p_offset), f.size() - 4);
    ExpectCleanError(Parse(f), "PT_NOTE (program header 0)");
  }
  {
    std::vector<uint8_t> f = base;  // NT_PRSTATUS too short to hold regs
    SyntheticCore::Put<uint32_t>(&f, first + 4, 200);
    ExpectCleanError(Parse(f), "NT_PRSTATUS has 200 bytes, need 328");
  }
}

// Builds a core with one extra SIGRACE (or CORE) note and parses it.
Parsed ParseWithNote(const std::string& owner, uint32_t type,
                     const std::vector<uint8_t>& desc) {
  SyntheticCore c = MakeCore();
  c.extra_notes.push_back({owner, type, desc});
  return Parse(c.Build(false));
}

template <typename T>
void AppendPod(std::vector<uint8_t>* v, const T& x) {
  const uint8_t* p = reinterpret_cast<const uint8_t*>(&x);
  v->insert(v->end(), p, p + sizeof(T));
}

TEST(CoreReader, RejectsHostileRedactionNotes) {
  {
    std::vector<uint8_t> d;
    AppendPod(&d, RedactionHeader{kRedactionVersion1, 0x40000000u});
    ExpectCleanError(ParseWithNote(kSigraceNoteOwner, kNoteRedactions, d),
                     "redaction count 1073741824 does not fit in 8 bytes");
  }
  {
    std::vector<uint8_t> d;
    AppendPod(&d, RedactionHeader{kRedactionVersion1, 0xffffffffu});
    RedactionRecord rec{};
    AppendPod(&d, rec);
    ExpectCleanError(ParseWithNote(kSigraceNoteOwner, kNoteRedactions, d),
                     "redaction count 4294967295");
  }
  {
    std::vector<uint8_t> d;
    AppendPod(&d, RedactionHeader{99, 0});
    ExpectCleanError(ParseWithNote(kSigraceNoteOwner, kNoteRedactions, d),
                     "redaction note version 99");
  }
  {
    ExpectCleanError(
        ParseWithNote(kSigraceNoteOwner, kNoteRedactions, {1, 0, 0}),
        "redaction note has 3 bytes");
  }
  {
    std::vector<uint8_t> d;
    AppendPod(&d, RedactionHeader{kRedactionVersion1, 1});
    RedactionRecord rec{};
    rec.vaddr = 0xfffffffffffffff0ULL;
    rec.len = 0x20;
    rec.kind = 1;
    AppendPod(&d, rec);
    ExpectCleanError(ParseWithNote(kSigraceNoteOwner, kNoteRedactions, d),
                     "redaction record 0 range wraps");
  }
  {
    // A label with no NUL is cut at 48 bytes, not read beyond.
    std::vector<uint8_t> d;
    AppendPod(&d, RedactionHeader{kRedactionVersion1, 1});
    RedactionRecord rec{};
    rec.kind = 77;  // unknown kinds are kept, and named as unknown
    rec.vaddr = 0x1000;
    rec.len = 1;
    std::memset(rec.label, 'L', sizeof(rec.label));
    AppendPod(&d, rec);
    Parsed p = ParseWithNote(kSigraceNoteOwner, kNoteRedactions, d);
    ASSERT_TRUE(p.ok()) << p.status().ToString();
    ASSERT_EQ(p.r().redactions().size(), 5u);
    EXPECT_EQ(p.r().redactions()[4].label, std::string(48, 'L'));
    EXPECT_EQ(RedactionKindName(p.r().redactions()[4].kind), "unknown(77)");
  }
}

TEST(CoreReader, RejectsHostileMetaAndFileNotes) {
  const std::string bad = "signal=11\nnot a pair\n";
  ExpectCleanError(ParseWithNote(kSigraceNoteOwner, kNoteMeta,
                                 std::vector<uint8_t>(bad.begin(), bad.end())),
                   "meta line 2 is not key=value");
  {
    // Meta padded with NULs and without a final newline still parses.
    const std::string ok = std::string("seed=5\nvariant=fixed") + '\0' + '\0';
    Parsed p = ParseWithNote(kSigraceNoteOwner, kNoteMeta,
                             std::vector<uint8_t>(ok.begin(), ok.end()));
    ASSERT_TRUE(p.ok()) << p.status().ToString();
    EXPECT_EQ(p.r().MetaValue("seed"), "5");
    EXPECT_EQ(p.r().MetaValue("variant"), "fixed");
  }
  const uint32_t kNtFile = 0x46494c45;
  {
    std::vector<uint8_t> d;
    AppendPod(&d, uint64_t{0x0aaaaaaaaaaaaaaaULL});  // count
    AppendPod(&d, uint64_t{4096});
    ExpectCleanError(ParseWithNote("CORE", kNtFile, d), "NT_FILE count");
  }
  {
    std::vector<uint8_t> d;
    AppendPod(&d, uint64_t{1});
    AppendPod(&d, uint64_t{4096});
    AppendPod(&d, uint64_t{0x1000});
    AppendPod(&d, uint64_t{0x2000});
    AppendPod(&d, uint64_t{0});
    ExpectCleanError(ParseWithNote("CORE", kNtFile, d),
                     "NT_FILE names 0..0 missing");
    d.push_back('x');  // a name with no NUL
    ExpectCleanError(ParseWithNote("CORE", kNtFile, d), "not NUL-terminated");
  }
  {
    std::vector<uint8_t> d;
    AppendPod(&d, uint64_t{1});
    AppendPod(&d, uint64_t{1ULL << 40});  // page size
    AppendPod(&d, uint64_t{0x1000});
    AppendPod(&d, uint64_t{0x2000});
    AppendPod(&d, uint64_t{1ULL << 30});  // times page size overflows
    d.push_back('x');
    d.push_back(0);
    ExpectCleanError(ParseWithNote("CORE", kNtFile, d), "offset overflows");
  }
  ExpectCleanError(ParseWithNote("CORE", 0x53494749, std::vector<uint8_t>(8)),
                   "NT_SIGINFO has 8 bytes, need 128");
  ExpectCleanError(ParseWithNote("CORE", NT_PRPSINFO, std::vector<uint8_t>(8)),
                   "NT_PRPSINFO has 8 bytes");
  // An unknown sigrace note type is skipped, for newer writers.
  EXPECT_TRUE(ParseWithNote(kSigraceNoteOwner, 0x535200ff, {1, 2, 3}).ok());
}

// --- Files on disk ---------------------------------------------------------

class TempDir {
 public:
  TempDir() {
    char tmpl[] = "/tmp/sigrace-reader-test-XXXXXX";
    const char* d = ::mkdtemp(tmpl);
    path_ = d ? d : "";
  }
  ~TempDir() {
    if (!path_.empty()) std::filesystem::remove_all(path_);
  }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

void WriteFile(const std::string& path, const std::vector<uint8_t>& bytes) {
  std::ofstream out(path, std::ios::binary);
  out.write(reinterpret_cast<const char*>(bytes.data()),
            static_cast<std::streamsize>(bytes.size()));
}

TEST(CoreReader, OpensFilesAndReportsFileErrors) {
  TempDir dir;
  ASSERT_FALSE(dir.path().empty());
  const std::string path = dir.path() + "/dump";
  WriteFile(path, MakeCore().Build(true));
  auto r = CoreReader::Open(path, {.require_seal = true});
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ((*r)->threads().size(), 2u);
  EXPECT_EQ((*r)->seal().state, SealState::kSealed);

  auto missing = CoreReader::Open(dir.path() + "/absent");
  EXPECT_EQ(missing.status().code(), StatusCode::kNotFound);
  EXPECT_EQ(missing.status().message(), "no such file");
  auto directory = CoreReader::Open(dir.path());
  EXPECT_EQ(directory.status().code(), StatusCode::kDataLoss);
  EXPECT_EQ(directory.status().message(), "not a regular file");
  WriteFile(dir.path() + "/empty", {});
  EXPECT_EQ(CoreReader::Open(dir.path() + "/empty").status().message(),
            "empty file");
  // An executable is ELF, but not a core.
  auto exe = CoreReader::Open("/proc/self/exe");
  EXPECT_EQ(exe.status().code(), StatusCode::kDataLoss);
  EXPECT_NE(exe.status().message().find("not a core file"), std::string::npos)
      << exe.status().message();
}

// A core file with 64-bit offsets past 4 GiB: a sparse file, so it costs no
// disk. The heap load sits beyond the 4 GiB mark.
TEST(CoreReader, ReadsOffsetsBeyondFourGiB) {
  TempDir dir;
  SyntheticCore c = MakeCore();
  SyntheticCore::Layout lay;
  std::vector<uint8_t> f = c.Build(false, &lay);
  const uint64_t far = (uint64_t{5} << 30);  // 5 GiB
  const uint64_t heap_phdr = lay.load_phdrs[1];
  const uint64_t stack_phdr = lay.load_phdrs[2];
  SyntheticCore::Put<uint64_t>(&f, heap_phdr + offsetof(Elf64_Phdr, p_offset),
                               far);
  SyntheticCore::Put<uint64_t>(&f, stack_phdr + offsetof(Elf64_Phdr, p_offset),
                               far + 0x1000);
  const std::string path = dir.path() + "/big";
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(::pwrite(fd, f.data(), f.size(), 0),
            static_cast<ssize_t>(f.size()));
  std::vector<uint8_t> page(0x1000, 0x5a);
  ASSERT_EQ(::pwrite(fd, page.data(), page.size(), far), 0x1000);
  ASSERT_EQ(::pwrite(fd, page.data(), page.size(), far + 0x1000), 0x1000);
  ::close(fd);
  auto r = CoreReader::Open(path);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ((*r)->size(), far + 0x2000);
  EXPECT_EQ((*r)->AddressToOffset(kHeapAddr + 0x10), far + 0x10);
  auto a = (*r)->OffsetToAddress(far + 0x1010);
  ASSERT_TRUE(a.has_value());
  EXPECT_EQ(a->vaddr, kStackAddr + 0x10);
  const uint8_t* mem = (*r)->MemoryAt(kStackAddr + 0xff0, 0x10);
  ASSERT_NE(mem, nullptr);
  EXPECT_EQ(mem[0], 0x5a);
}

// --- Real cores --------------------------------------------------------------

// A recognisable, non-secret pattern placed in an anonymous mapping before
// fork, so the child holds it at the same address.
constexpr char kCanary[] = "sigrace-reader-canary-0123456789";

struct Canary {
  uint8_t* page = nullptr;
  Canary() {
    void* p = ::mmap(nullptr, 4096, PROT_READ | PROT_WRITE,
                     MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    page = p == MAP_FAILED ? nullptr : static_cast<uint8_t*>(p);
    if (page) std::memcpy(page + 128, kCanary, sizeof(kCanary));
  }
  ~Canary() {
    if (page) ::munmap(page, 4096);
  }
  uint64_t addr() const { return reinterpret_cast<uint64_t>(page) + 128; }
};

void ExpectCanaryAt(const CoreReader& r, uint64_t addr) {
  const uint8_t* mem = r.MemoryAt(addr, sizeof(kCanary));
  ASSERT_NE(mem, nullptr) << "canary address not in the core's file bytes";
  EXPECT_TRUE(std::memcmp(mem, kCanary, sizeof(kCanary)) == 0);
}

std::string ReadProcFile(const char* path) {
  std::ifstream in(path);
  std::string s;
  std::getline(in, s);
  return s;
}

void* Park(void*) {
  for (;;) ::pause();
  return nullptr;
}

// A kernel-written core of a child that dies by SIGSEGV.
TEST(CoreReader, ReadsKernelCore) {
  const std::string pattern = ReadProcFile("/proc/sys/kernel/core_pattern");
  if (pattern.empty() || pattern[0] == '|' ||
      pattern.find('/') != std::string::npos ||
      pattern.find('%') != std::string::npos) {
    GTEST_SKIP() << "kernel core_pattern '" << pattern
                 << "' does not write a plain file into the cwd";
  }
  TempDir dir;
  Canary canary;
  ASSERT_NE(canary.page, nullptr);
  const pid_t pid = ::fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    struct rlimit rl = {RLIM_INFINITY, RLIM_INFINITY};
    if (::setrlimit(RLIMIT_CORE, &rl) != 0) {
      rl.rlim_cur = rl.rlim_max = 64 << 20;
      ::setrlimit(RLIMIT_CORE, &rl);
    }
    if (::chdir(dir.path().c_str()) != 0) ::_exit(3);
    pthread_t t;
    ::pthread_create(&t, nullptr, Park, nullptr);
    ::signal(SIGSEGV, SIG_DFL);
    ::raise(SIGSEGV);
    ::_exit(4);
  }
  int status = 0;
  ASSERT_EQ(::waitpid(pid, &status, 0), pid);
  ASSERT_TRUE(WIFSIGNALED(status)) << "child status " << status;
  ASSERT_EQ(WTERMSIG(status), SIGSEGV);
  if (!WCOREDUMP(status)) {
    GTEST_SKIP() << "the kernel wrote no core (RLIMIT_CORE hard limit or "
                    "container policy)";
  }
  std::string path;
  for (const auto& e : std::filesystem::directory_iterator(dir.path())) {
    path = e.path().string();
  }
  ASSERT_FALSE(path.empty()) << "WCOREDUMP set but no core in the cwd";
  auto r = CoreReader::Open(path);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  const CoreReader& core = **r;
  EXPECT_EQ(core.seal().state, SealState::kUnsealed);
  EXPECT_EQ(core.seal().reason, "unsealed (no sigrace trailer)");
  EXPECT_FALSE(core.has_sigrace_notes());
  EXPECT_FALSE(CoreReader::Open(path, {.require_seal = true}).ok());
  // The child's two threads, plus any a sanitizer runtime started.
  ASSERT_GE(core.threads().size(), 2u);
  EXPECT_EQ(core.threads()[0].tid, pid);
  EXPECT_EQ(core.threads()[0].signal, SIGSEGV);
  EXPECT_NE(core.threads()[0].pc, 0u);
  EXPECT_NE(core.threads()[0].sp, 0u);
  ASSERT_TRUE(core.siginfo().has_value());
  EXPECT_EQ(core.siginfo()->signo, SIGSEGV);
  ASSERT_TRUE(core.process().has_value());
  EXPECT_EQ(core.process()->pid, pid);
  // The stack pointer of the crashing thread is inside a dumped mapping.
  EXPECT_TRUE(core.AddressToOffset(core.threads()[0].sp).has_value());
  ExpectCanaryAt(core, canary.addr());
  // NT_FILE names the test binary.
  const std::string exe = std::filesystem::read_symlink("/proc/self/exe");
  bool named = false;
  for (const Mapping& m : core.mappings()) named |= m.name == exe;
  EXPECT_TRUE(named) << "no mapping named " << exe;
}

// gdb's gcore on a live child with three threads.
TEST(CoreReader, ReadsGcoreOfLiveChild) {
#if defined(SIGRACE_ASAN) || defined(SIGRACE_TSAN)
  // gdb dumps the sanitizer's shadow reservations: a sparse file of
  // terabytes, minutes of work, and the child's pages read back as zeros.
  GTEST_SKIP() << "gcore of a sanitizer-instrumented child is not usable; "
                  "covered by the default build";
#endif
  if (::access("/usr/bin/gcore", X_OK) != 0 &&
      // NOLINTNEXTLINE(concurrency-mt-unsafe): the test is single-threaded
      std::system("command -v gcore >/dev/null 2>&1") != 0) {
    GTEST_SKIP() << "gcore (gdb) is not installed";
  }
  TempDir dir;
  Canary canary;
  ASSERT_NE(canary.page, nullptr);
  int ready[2];
  ASSERT_EQ(::pipe(ready), 0);
  const pid_t pid = ::fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    ::close(ready[0]);
#ifdef PR_SET_PTRACER
    ::prctl(PR_SET_PTRACER, PR_SET_PTRACER_ANY, 0, 0, 0);
#endif
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);
    // pthread_create returns after the clone, so both threads exist by
    // the time the parent hears "ready".
    for (int i = 0; i < 2; ++i) {
      pthread_t t;
      ::pthread_create(&t, nullptr, Park, nullptr);
    }
    const char c = 'r';
    if (::write(ready[1], &c, 1) != 1) ::_exit(3);
    for (;;) ::pause();
  }
  ::close(ready[1]);
  char c;
  ASSERT_EQ(::read(ready[0], &c, 1), 1);
  ::close(ready[0]);
  const std::string out = dir.path() + "/gcore";
  const std::string cmd = "gcore -o " + out + " " + std::to_string(pid) + " >" +
                          dir.path() + "/gcore.log 2>&1";
  // NOLINTNEXTLINE(concurrency-mt-unsafe): the test is single-threaded
  const int rc = std::system(cmd.c_str());
  ::kill(pid, SIGKILL);
  ::waitpid(pid, nullptr, 0);
  const std::string path = out + "." + std::to_string(pid);
  if (rc != 0 || ::access(path.c_str(), R_OK) != 0) {
    GTEST_SKIP() << "gcore could not attach (ptrace not permitted here?), rc="
                 << rc;
  }
  auto r = CoreReader::Open(path);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  const CoreReader& core = **r;
  EXPECT_EQ(core.seal().state, SealState::kUnsealed);
  ASSERT_EQ(core.threads().size(), 3u);
  std::set<int32_t> tids;
  for (const ThreadInfo& t : core.threads()) {
    tids.insert(t.tid);
    EXPECT_TRUE(t.regs_known);
    EXPECT_NE(t.pc, 0u);
  }
  EXPECT_EQ(tids.size(), 3u);
  EXPECT_TRUE(tids.count(pid));
  EXPECT_GT(core.mappings().size(), 5u);
  ExpectCanaryAt(core, canary.addr());
  // Every mapping's file bytes map back to it.
  for (size_t i = 0; i < core.mappings().size(); ++i) {
    const Mapping& m = core.mappings()[i];
    if (m.filesz == 0) continue;
    auto a = core.OffsetToAddress(m.offset + m.filesz - 1);
    ASSERT_TRUE(a.has_value());
    EXPECT_EQ(a->mapping_index, i);
    EXPECT_EQ(a->vaddr, m.vaddr + m.filesz - 1);
  }
}

}  // namespace
}  // namespace sigrace::crashdump
