// The flight recorder note from hostile and well-formed bytes (synthetic
// cores); the note written by the real handler is read back in
// tools/explain_test.

#include "crashdump/format/flight_recorder.h"

#include <gtest/gtest.h>

#include <cstring>
#include <memory>
#include <vector>

#include "testing/synthetic_core.h"

namespace sigrace::crashdump {
namespace {

using testing::SyntheticCore;

std::vector<uint8_t> Note(uint32_t version, uint32_t count,
                          const std::vector<FlightRecord>& recs) {
  FlightHeader h{version, count, 77, 5000, 1024, 0};
  // Version 2 and later carry the fault time after the header.
  const size_t head =
      sizeof h + (version >= kFlightVersion ? sizeof(FlightFault) : 0);
  std::vector<uint8_t> d(head + recs.size() * sizeof(FlightRecord));
  memcpy(d.data(), &h, sizeof h);
  if (head > sizeof h) {
    const FlightFault fault{4900, 0};
    memcpy(d.data() + sizeof h, &fault, sizeof fault);
  }
  if (!recs.empty()) {
    memcpy(d.data() + head, recs.data(), recs.size() * sizeof recs[0]);
  }
  return d;
}

FlightRecord Rec(uint64_t index, uint32_t kind, const char* label) {
  FlightRecord r{};
  r.index = index;
  r.time_ns = 4000 + index;
  r.addr = 0x10000;
  r.len = 0x800;
  r.tid = 42;
  r.kind = kind;
  r.region = 3;
  strncpy(r.label, label, sizeof r.label);
  return r;
}

StatusOr<std::optional<FlightLog>> ReadWith(
    const std::vector<std::vector<uint8_t>>& notes,
    std::vector<uint8_t>* file) {
  SyntheticCore c;
  c.threads.push_back({42, 11, 0, 0, 0});
  for (const auto& n : notes) {
    c.extra_notes.push_back({kSigraceNoteOwner, kNoteFlightRecorder, n});
  }
  *file = c.Build();
  StatusOr<std::unique_ptr<CoreReader>> r =
      CoreReader::FromBuffer(file->data(), file->size());
  if (!r.ok()) return r.status();
  return ReadFlightRecorder(**r);
}

TEST(FlightRecorderNote, ParsesRecordsTornSlotsAndLongLabels) {
  FlightRecord torn{};
  torn.index = 75;
  torn.kind = kFlightTorn;
  FlightRecord full = Rec(76, kFlightUnpublish, "");
  memset(full.label, 'x', sizeof full.label);  // no NUL: cut at 48
  std::vector<uint8_t> file;
  auto log =
      ReadWith({Note(kFlightVersion, 3,
                     {Rec(74, kFlightPublish, "signer.working"), torn, full})},
               &file);
  ASSERT_TRUE(log.ok()) << log.status().ToString();
  ASSERT_TRUE(log->has_value());
  const FlightLog& f = **log;
  EXPECT_EQ(f.next, 77u);
  EXPECT_EQ(f.read_ns, 5000u);
  EXPECT_EQ(f.fault_ns, 4900u);
  EXPECT_EQ(f.capacity, 1024u);
  ASSERT_EQ(f.events.size(), 3u);
  EXPECT_EQ(f.events[0].label, "signer.working");
  EXPECT_EQ(FlightKindName(f.events[0].kind), "publish");
  EXPECT_TRUE(f.events[0].Holds(0x10000 + 0x7ff));
  EXPECT_FALSE(f.events[0].Holds(0x10000 + 0x800));
  EXPECT_TRUE(f.events[1].torn());
  EXPECT_FALSE(f.events[1].Holds(0));
  EXPECT_EQ(f.torn, 1u);
  EXPECT_EQ(f.events[2].label, std::string(kFlightLabelLen, 'x'));
}

TEST(FlightRecorderNote, VersionOneHasNoFaultTimeAndStillReads) {
  std::vector<uint8_t> file;
  auto log = ReadWith(
      {Note(kFlightVersionNoFault, 1, {Rec(5, kFlightPublish, "v1")})}, &file);
  ASSERT_TRUE(log.ok()) << log.status().ToString();
  ASSERT_TRUE(log->has_value());
  EXPECT_EQ((*log)->fault_ns, 0u);
  ASSERT_EQ((*log)->events.size(), 1u);
  EXPECT_EQ((*log)->events[0].label, "v1");
  EXPECT_EQ((*log)->events[0].index, 5u);
}

TEST(FlightRecorderNote, AbsentIsNotAnError) {
  std::vector<uint8_t> file;
  auto log = ReadWith({}, &file);
  ASSERT_TRUE(log.ok());
  EXPECT_FALSE(log->has_value());
}

TEST(FlightRecorderNote, MalformedNotesAreDataLoss) {
  std::vector<uint8_t> file;
  const std::vector<uint8_t> good =
      Note(kFlightVersion, 1, {Rec(1, kFlightPublish, "a")});
  std::vector<uint8_t> short_header(good.begin(), good.begin() + 16);
  // A version 2 header cut inside its fault time.
  std::vector<uint8_t> short_fault(good.begin(),
                                   good.begin() + sizeof(FlightHeader) + 8);
  const std::vector<std::vector<std::vector<uint8_t>>> bad = {
      {short_header},
      {short_fault},
      {Note(kFlightVersion, 2, {Rec(1, kFlightPublish, "a")})},  // count
      {Note(kFlightVersion, 0xffffffffu, {})},
      {Note(kFlightVersion + 1, 1, {Rec(1, kFlightPublish, "a")})},
      {good, good},  // two notes
  };
  for (size_t i = 0; i < bad.size(); ++i) {
    auto log = ReadWith(bad[i], &file);
    ASSERT_FALSE(log.ok()) << "case " << i;
    EXPECT_EQ(log.status().code(), StatusCode::kDataLoss) << "case " << i;
  }
  // The pair: the good note alone reads.
  auto log = ReadWith({good}, &file);
  ASSERT_TRUE(log.ok()) << log.status().ToString();
  EXPECT_EQ((*log)->events.size(), 1u);
}

}  // namespace
}  // namespace sigrace::crashdump
