// The reader and `sigrace dump-info` on a real sigrace dump: a forked child
// installs the handler, publishes a region and takes a live dump; the
// parent reads the sealed file. The handler's own tests check what the
// handler put in; these check what the reader gets out, including offset
// mapping, marker placement and damage to a real file.

#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include "crashdump/capture/handler.h"
#include "crashdump/format/core_format.h"
#include "crashdump/format/core_reader.h"
#include "crashdump/registry/registry.h"
#include "testing/crash_test_util.h"
#include "testing/real_dump.h"

namespace sigrace::crashdump {
namespace {

using testing::ChildResult;
using testing::RunInChild;
using testing::TempDir;

using testing::kRealDumpRegionLen;
using testing::MakeRealDump;
using testing::RealDump;

std::vector<uint8_t> ReadBytes(const std::string& path) {
  const std::string s = testing::ReadWholeFile(path);
  return std::vector<uint8_t>(s.begin(), s.end());
}

TEST(CoreReaderRealDump, ReadsSealedSigraceDump) {
  TempDir dir;
  const RealDump d = MakeRealDump(dir);
  ASSERT_FALSE(d.path.empty());
  auto opened = CoreReader::Open(d.path, {.require_seal = true});
  ASSERT_TRUE(opened.ok()) << opened.status().ToString();
  const CoreReader& r = **opened;

  EXPECT_EQ(r.seal().state, SealState::kSealed);
  EXPECT_TRUE(r.seal().checksum_verified);
  EXPECT_TRUE(r.has_sigrace_notes());
  ASSERT_GE(r.threads().size(), 1u);
  EXPECT_TRUE(r.threads()[0].regs_known);
  EXPECT_NE(r.threads()[0].pc, 0u);
  EXPECT_EQ(r.MetaValue("test").value_or(""), "real_dump");
  ASSERT_TRUE(r.process().has_value());
  EXPECT_EQ(r.threads()[0].tid, r.process()->pid);

  // The published region is recorded, covered, and holds the marker in
  // its address-aligned phase.
  const Redaction* rec = nullptr;
  for (const Redaction& red : r.redactions()) {
    if (red.label == testing::kRealDumpLabel) rec = &red;
  }
  ASSERT_NE(rec, nullptr) << "no redaction record for the region";
  EXPECT_EQ(rec->kind, RedactionKind::kRange);
  EXPECT_EQ(rec->vaddr, d.region);
  EXPECT_EQ(rec->len, kRealDumpRegionLen);
  EXPECT_TRUE(r.IsRedacted(d.region, kRealDumpRegionLen));
  EXPECT_FALSE(r.IsRedacted(d.region - 1, kRealDumpRegionLen));
  EXPECT_FALSE(r.IsRedacted(d.region + 1, kRealDumpRegionLen));
  const uint8_t* mem = r.MemoryAt(d.region, kRealDumpRegionLen);
  ASSERT_NE(mem, nullptr) << "region not in the dump's file bytes";
  bool marker_in_phase = true;
  for (size_t i = 0; i < kRealDumpRegionLen; ++i) {
    marker_in_phase &=
        mem[i] == static_cast<uint8_t>(kRedactionMarker[(d.region + i) % 16]);
  }
  EXPECT_TRUE(marker_in_phase);

  // Offsets and addresses map both ways across every mapping, and each
  // thread's registers are located in its own note.
  size_t with_bytes = 0;
  for (size_t i = 0; i < r.mappings().size(); ++i) {
    const Mapping& m = r.mappings()[i];
    if (m.filesz == 0) continue;
    ++with_bytes;
    for (uint64_t delta : {uint64_t{0}, m.filesz / 2, m.filesz - 1}) {
      auto a = r.OffsetToAddress(m.offset + delta);
      ASSERT_TRUE(a.has_value());
      EXPECT_EQ(a->mapping_index, i);
      EXPECT_EQ(a->vaddr, m.vaddr + delta);
      EXPECT_EQ(r.AddressToOffset(m.vaddr + delta), m.offset + delta);
    }
  }
  EXPECT_GT(with_bytes, 3u);
  for (size_t t = 0; t < r.threads().size(); ++t) {
    const FileLocation loc = r.Locate(r.threads()[t].regs_offset);
    ASSERT_EQ(loc.kind, FileLocation::Kind::kNote);
    EXPECT_EQ(r.notes()[loc.note_index].thread_index, static_cast<int>(t));
  }
  const std::string exe = testing::SelfExe();
  bool named = false;
  for (const Mapping& m : r.mappings()) named |= m.name == exe;
  EXPECT_TRUE(named) << "no mapping named " << exe;
}

TEST(CoreReaderRealDump, DamagedRealDumpIsCorruptOrRejected) {
  TempDir dir;
  const RealDump d = MakeRealDump(dir);
  ASSERT_FALSE(d.path.empty());
  const std::vector<uint8_t> good = ReadBytes(d.path);
  ASSERT_GT(good.size(), sizeof(SealTrailer));
  {
    std::vector<uint8_t> f = good;
    f[f.size() / 2] ^= 0x01;  // one bit anywhere in the content
    auto r = CoreReader::FromBuffer(f.data(), f.size());
    ASSERT_TRUE(r.ok()) << r.status().ToString();
    EXPECT_EQ((*r)->seal().state, SealState::kCorrupt);
    auto sealed =
        CoreReader::FromBuffer(f.data(), f.size(), {.require_seal = true});
    EXPECT_EQ(sealed.status().code(), StatusCode::kDataLoss);
  }
  // Cut anywhere before the end of the content: always an error, never a
  // read past the cut (sanitizer builds check the exact-size copy).
  auto r0 = CoreReader::FromBuffer(good.data(), good.size());
  ASSERT_TRUE(r0.ok());
  const uint64_t content = (*r0)->seal().content_size;
  std::vector<uint64_t> cuts = {1, 63, 64, 65, content / 2, content - 1};
  // Inside the first notes and at the end of the first loads (each cut
  // copies the prefix, so a handful keeps sanitizer builds quick).
  const auto& notes = (*r0)->notes();
  for (size_t i = 0; i < notes.size() && i < 4; ++i) {
    cuts.push_back(notes[i].desc_offset + 1);
  }
  const auto& maps = (*r0)->mappings();
  for (size_t i = 0, n = 0; i < maps.size() && n < 4; ++i) {
    if (maps[i].filesz == 0) continue;
    cuts.push_back(maps[i].offset + maps[i].filesz - 1);
    ++n;
  }
  for (uint64_t cut : cuts) {
    if (cut >= content) continue;
    std::unique_ptr<uint8_t[]> buf(new uint8_t[cut]);
    std::memcpy(buf.get(), good.data(), cut);
    auto r = CoreReader::FromBuffer(buf.get(), cut);
    EXPECT_FALSE(r.ok()) << "cut at " << cut << " parsed";
    if (!r.ok()) EXPECT_EQ(r.status().code(), StatusCode::kDataLoss);
  }
}

// The trailer's flags and reserved words are covered by no checksum: the
// reader requires them zero (seal v1 and v2). A bit flipped in either of a
// real sealed dump makes it corrupt; the unflipped dump is sealed.
TEST(CoreReaderRealDump, TrailerFlagsAndReservedMustBeZero) {
  TempDir dir;
  const RealDump d = MakeRealDump(dir);
  ASSERT_FALSE(d.path.empty());
  const std::vector<uint8_t> good = ReadBytes(d.path);
  ASSERT_GT(good.size(), sizeof(SealTrailer));
  const size_t trailer = good.size() - sizeof(SealTrailer);
  auto ok =
      CoreReader::FromBuffer(good.data(), good.size(), {.require_seal = true});
  ASSERT_TRUE(ok.ok()) << ok.status().ToString();
  EXPECT_EQ((*ok)->seal().state, SealState::kSealed);
  EXPECT_EQ((*ok)->seal().version, 2u);
  struct Flip {
    size_t field;
    const char* name;
  };
  for (const Flip& flip : {Flip{offsetof(SealTrailer, flags), "flags"},
                           Flip{offsetof(SealTrailer, reserved), "reserved"}}) {
    for (int bit : {0, 63}) {
      std::vector<uint8_t> f = good;
      f[trailer + flip.field + bit / 8] ^=
          static_cast<uint8_t>(1u << (bit % 8));
      auto r = CoreReader::FromBuffer(f.data(), f.size());
      ASSERT_TRUE(r.ok()) << r.status().ToString();
      EXPECT_EQ((*r)->seal().state, SealState::kCorrupt) << flip.name << bit;
      EXPECT_NE((*r)->seal().reason.find(flip.name), std::string::npos)
          << (*r)->seal().reason;
      auto sealed =
          CoreReader::FromBuffer(f.data(), f.size(), {.require_seal = true});
      EXPECT_EQ(sealed.status().code(), StatusCode::kDataLoss) << flip.name;
    }
  }
}

// The same rule on a v1 trailer (still read), and in InspectSealTrailer,
// the one function the reader and the gate share.
TEST(CoreReaderRealDump, V1TrailerFlagsMustBeZeroToo) {
  TempDir dir;
  const RealDump d = MakeRealDump(dir);
  ASSERT_FALSE(d.path.empty());
  std::vector<uint8_t> f = ReadBytes(d.path);
  const size_t content = f.size() - sizeof(SealTrailer);
  SealTrailer t{};
  std::memcpy(t.magic, kSealMagicV1, sizeof t.magic);
  t.content_size = content;
  t.checksum = SealChecksumUpdate(kSealChecksumInit, f.data(), content);
  std::memcpy(f.data() + content, &t, sizeof t);
  auto v1 = CoreReader::FromBuffer(f.data(), f.size(), {.require_seal = true});
  ASSERT_TRUE(v1.ok()) << v1.status().ToString();
  EXPECT_EQ((*v1)->seal().version, 1u);
  EXPECT_EQ(InspectSealTrailer(t, f.size()).state, SealState::kSealed);
  t.flags = 1;
  EXPECT_EQ(InspectSealTrailer(t, f.size()).state, SealState::kCorrupt);
  std::memcpy(f.data() + content, &t, sizeof t);
  auto bad = CoreReader::FromBuffer(f.data(), f.size(), {.require_seal = true});
  EXPECT_EQ(bad.status().code(), StatusCode::kDataLoss);
}

// DeclaredContentEnd on a real dump: the content ends exactly where its
// headers say (the writer's layout), read from headers alone.
TEST(CoreReaderRealDump, DeclaredContentEndIsTheContentSize) {
  TempDir dir;
  const RealDump d = MakeRealDump(dir);
  ASSERT_FALSE(d.path.empty());
  auto r = CoreReader::Open(d.path, {.require_seal = true});
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  const int fd = open(d.path.c_str(), O_RDONLY | O_CLOEXEC);
  ASSERT_GE(fd, 0);
  StatusOr<uint64_t> end = DeclaredContentEnd(fd, (*r)->size());
  close(fd);
  ASSERT_TRUE(end.ok()) << end.status().ToString();
  EXPECT_LE(*end, (*r)->seal().content_size);
  EXPECT_LT((*r)->seal().content_size - *end, 4096u);
}

}  // namespace
}  // namespace sigrace::crashdump
