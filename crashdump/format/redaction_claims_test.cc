// The check of preserved words (redaction note version 2): a word the
// writer says it kept for unwinding is left out of its secret-stack claim
// only when it is an 8-aligned, once-listed word of that record holding a
// code or stack address of the dump; any other stays claimed as marker.
// Synthetic dumps, so each rule is tried on its own.

#include "crashdump/format/redaction_claims.h"

#include <elf.h>
#include <gtest/gtest.h>

#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "crashdump/format/core_reader.h"
#include "testing/synthetic_core.h"

namespace sigrace::crashdump {
namespace {

using testing::SyntheticCore;

constexpr uint64_t kCode = 0x400000;
constexpr uint64_t kStack = 0x7ff000000000;
constexpr uint64_t kRecBegin = kStack + 0x100, kRecEnd = kStack + 0x300;
constexpr uint64_t kHeap = 0x10000000;  // mapped, not executable
constexpr uint64_t kNotAnAddress = 0x1122334455667788ULL;

void Put(std::vector<uint8_t>* bytes, uint64_t off, uint64_t v) {
  std::memcpy(bytes->data() + off, &v, 8);
}

struct Built {
  std::vector<uint8_t> file;
  std::unique_ptr<CoreReader> reader;
};

// A dump with a code mapping, a heap mapping and a stack whose secret-stack
// record [kRecBegin, kRecEnd) is the marker except the words `values`
// gives (offset from kStack, value), with `words` listed as preserved.
Built Build(const std::vector<std::pair<uint64_t, uint64_t>>& values,
            const std::vector<PreservedWord>& words,
            uint32_t version = kRedactionVersion) {
  SyntheticCore c;
  c.threads.push_back({77, 11, kCode + 0x10, kStack + 0x100, kStack + 0x200});
  c.loads.push_back(
      {kCode, std::vector<uint8_t>(0x1000, 0x90), 0, PF_R | PF_X, "/bin/code"});
  c.loads.push_back(
      {kHeap, std::vector<uint8_t>(0x1000, 0), 0, PF_R | PF_W, ""});
  std::vector<uint8_t> stack(0x2000, 0);
  for (uint64_t a = kRecBegin; a < kRecEnd; ++a) {
    stack[a - kStack] = MarkerByte(a % kRedactionMarkerLen);
  }
  for (const auto& [off, v] : values) Put(&stack, off, v);
  c.loads.push_back({kStack, stack, 0, PF_R | PF_W, ""});
  c.AddRedaction(RedactionKind::kSecretStack, kRecBegin, kRecEnd - kRecBegin,
                 77, "secret-stack");
  c.AddRedaction(RedactionKind::kRange, kHeap, 0x100, 0, "range");
  c.preserved = words;
  c.redaction_version = version;
  Built b;
  b.file = c.Build();
  auto r = CoreReader::FromBuffer(b.file.data(), b.file.size());
  EXPECT_TRUE(r.ok()) << r.status().ToString();
  if (r.ok()) b.reader = std::move(r).value();
  return b;
}

PreservedWord Word(uint64_t vaddr, uint32_t record = 0) {
  return {vaddr, record, static_cast<uint16_t>(PreservedSlot::kReturnAddress),
          1};
}

// Bytes of record `i`'s claim that are not the marker.
uint64_t NotMarker(const Built& b, size_t i) {
  uint64_t n = 0;
  const std::vector<RedactionClaim> claims = RedactionClaims(*b.reader);
  for (const MarkerSpan& s : claims[i].spans) {
    n += NonMarkerBytes(b.reader->data(), s);
  }
  return n;
}

TEST(PreservedWords, CodeAndStackAddressesAreLeftOutOfTheClaim) {
  const uint64_t ret = kRecBegin + 0x08, fp = kRecBegin + 0x10;
  Built b =
      Build({{ret - kStack, kCode + 0x123}, {fp - kStack, kStack + 0x280}},
            {Word(ret), Word(fp)});
  ASSERT_NE(b.reader, nullptr);
  ASSERT_EQ(b.reader->preserved().size(), 2u);
  for (const PreservedCheck& c : CheckPreservedWords(*b.reader)) {
    EXPECT_TRUE(c.verified) << c.why;
  }
  EXPECT_EQ(NotMarker(b, 0), 0u);
  // The claim covers the rest of the record: 16 bytes fewer.
  uint64_t claimed = 0;
  const std::vector<RedactionClaim> claims = RedactionClaims(*b.reader);
  for (const MarkerSpan& s : claims[0].spans) {
    claimed += s.length;
  }
  EXPECT_EQ(claimed, kRecEnd - kRecBegin - 16);
}

// Paired with the test above: the same words unlisted are bytes not the
// marker, so the check is what keeps them out, nothing else.
TEST(PreservedWords, UnlistedWordsAreNotApplied) {
  const uint64_t ret = kRecBegin + 0x08, fp = kRecBegin + 0x10;
  Built b =
      Build({{ret - kStack, kCode + 0x123}, {fp - kStack, kStack + 0x280}}, {});
  ASSERT_NE(b.reader, nullptr);
  EXPECT_EQ(NotMarker(b, 0), 16u);
}

TEST(PreservedWords, EveryOtherWordStaysClaimed) {
  const uint64_t data = kRecBegin + 0x20;  // not an address
  const uint64_t heap = kRecBegin + 0x28;  // mapped, not code, not stack
  const uint64_t unaligned = kRecBegin + 0x31;
  const uint64_t outside = kRecEnd + 0x10;  // beyond the record
  const uint64_t twice = kRecBegin + 0x40;
  const uint64_t edge = kRecEnd - 4;  // straddles the record's end
  Built b =
      Build({{data - kStack, kNotAnAddress},
             {heap - kStack, kHeap + 8},
             {twice - kStack, kCode + 1}},
            {Word(data), Word(heap), Word(unaligned), Word(outside),
             Word(twice), Word(twice), Word(edge & ~7ULL), Word(kHeap, 1)});
  ASSERT_NE(b.reader, nullptr);
  const std::vector<PreservedCheck> checks = CheckPreservedWords(*b.reader);
  ASSERT_EQ(checks.size(), 8u);
  EXPECT_STREQ(checks[0].why, "not an address of the dump");
  EXPECT_STREQ(checks[1].why, "not an address of the dump");
  EXPECT_STREQ(checks[2].why, "unaligned");
  EXPECT_STREQ(checks[3].why, "outside its record");
  EXPECT_STREQ(checks[4].why, "listed twice");
  EXPECT_STREQ(checks[5].why, "listed twice");
  // kRecEnd - 8 is inside the record: it verifies only if an address.
  EXPECT_STREQ(checks[6].why, "not an address of the dump");
  EXPECT_STREQ(checks[7].why, "record is not a secret stack");
  for (const PreservedCheck& c : checks) EXPECT_FALSE(c.verified);
  // Every listed word is still claimed: the three non-marker values count.
  EXPECT_EQ(NotMarker(b, 0), 24u);
}

TEST(PreservedWords, VersionOneNotesHaveNone) {
  Built b = Build({}, {}, kRedactionVersion1);
  ASSERT_NE(b.reader, nullptr);
  EXPECT_EQ(b.reader->redaction_version(), kRedactionVersion1);
  EXPECT_TRUE(b.reader->preserved().empty());
  EXPECT_EQ(b.reader->redactions().size(), 2u);
  EXPECT_EQ(NotMarker(b, 0), 0u);
}

TEST(PreservedWords, HostileListsAreRejected) {
  // A word naming a record the note does not have.
  SyntheticCore c;
  c.threads.push_back({77, 11, kCode, kStack, kStack});
  c.AddRedaction(RedactionKind::kSecretStack, kRecBegin, 0x100, 77, "s");
  c.preserved.push_back(Word(kRecBegin, 5));
  std::vector<uint8_t> f = c.Build();
  auto r = CoreReader::FromBuffer(f.data(), f.size());
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("names record 5 of 1"), std::string::npos)
      << r.status().message();
}

}  // namespace
}  // namespace sigrace::crashdump
