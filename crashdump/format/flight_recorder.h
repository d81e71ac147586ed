// The flight recorder note (kNoteFlightRecorder, core_format.h) as the
// reader sees it: the registry's last events before the dump, oldest first.
//
// The note comes from an untrusted file: its header and record count are
// checked against the note's size, labels are cut at their first NUL or at
// kFlightLabelLen, and kinds the reader does not know are kept as numbers.
//
// Thread safety: pure functions of a CoreReader (immutable after Open()).
// Not async-signal-safe (allocates).

#ifndef SIGRACE_CRASHDUMP_FORMAT_FLIGHT_RECORDER_H_
#define SIGRACE_CRASHDUMP_FORMAT_FLIGHT_RECORDER_H_

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "base/status.h"
#include "crashdump/format/core_reader.h"

namespace sigrace::crashdump {

struct FlightEntry {
  uint64_t index = 0;
  uint64_t time_ns = 0;  // CLOCK_MONOTONIC of the dumped process
  uint64_t addr = 0;
  uint64_t len = 0;
  uint64_t prev_addr = 0;  // update only
  uint64_t prev_len = 0;
  int32_t tid = 0;
  uint32_t kind = 0;  // kFlight* (core_format.h); kFlightTorn: no fields
  uint32_t region = 0;
  std::string label;

  bool torn() const { return kind == kFlightTorn; }
  // Does the event's range (or, for an update, its old range) hold `a`?
  bool Holds(uint64_t a) const;
};

struct FlightLog {
  uint64_t next = 0;     // events the process recorded in all
  uint64_t read_ns = 0;  // when the handler read the ring
  // When the signal entered the handler on the crashing thread (version 2
  // notes); 0 in a version 1 note. Same clock as FlightEntry::time_ns.
  uint64_t fault_ns = 0;
  uint32_t capacity = 0;
  uint32_t torn = 0;
  std::vector<FlightEntry> events;  // oldest first
};

// "publish", "update", "unpublish", "scope-enter", "scope-exit", "torn",
// or "unknown(N)".
std::string FlightKindName(uint32_t kind);

// The dump's flight recorder: nullopt without the note (a dump of an older
// writer, a kernel core), kDataLoss if the note is malformed (a second
// note, a short header, a count beyond the note, an unknown version).
StatusOr<std::optional<FlightLog>> ReadFlightRecorder(const CoreReader& r);

}  // namespace sigrace::crashdump

#endif  // SIGRACE_CRASHDUMP_FORMAT_FLIGHT_RECORDER_H_
