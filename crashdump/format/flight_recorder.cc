#include "crashdump/format/flight_recorder.h"

#include <cstring>

namespace sigrace::crashdump {

bool FlightEntry::Holds(uint64_t a) const {
  if (torn()) return false;
  if (len != 0 && a >= addr && a - addr < len) return true;
  return kind == kFlightUpdate && prev_len != 0 && a >= prev_addr &&
         a - prev_addr < prev_len;
}

std::string FlightKindName(uint32_t kind) {
  switch (kind) {
    case kFlightPublish:
      return "publish";
    case kFlightUpdate:
      return "update";
    case kFlightUnpublish:
      return "unpublish";
    case kFlightScopeEnter:
      return "scope-enter";
    case kFlightScopeExit:
      return "scope-exit";
    case kFlightTorn:
      return "torn";
    default:
      return "unknown(" + std::to_string(kind) + ")";
  }
}

StatusOr<std::optional<FlightLog>> ReadFlightRecorder(const CoreReader& r) {
  const NoteInfo* note = nullptr;
  for (const NoteInfo& n : r.notes()) {
    if (n.owner != kSigraceNoteOwner || n.type != kNoteFlightRecorder) {
      continue;
    }
    if (note != nullptr) {
      return DataLossError("flight recorder: more than one note");
    }
    note = &n;
  }
  if (note == nullptr) return std::optional<FlightLog>();
  const uint8_t* d = r.NoteDesc(*note);
  const uint64_t size = note->desc_size;
  if (size < sizeof(FlightHeader)) {
    return DataLossError("flight recorder: note shorter than its header");
  }
  FlightHeader h;
  memcpy(&h, d, sizeof(h));
  if (h.version != kFlightVersion && h.version != kFlightVersionNoFault) {
    return DataLossError("flight recorder: unknown version " +
                         std::to_string(h.version));
  }
  uint64_t head = sizeof(FlightHeader);
  FlightFault fault{0, 0};
  if (h.version == kFlightVersion) {
    if (size < head + sizeof(FlightFault)) {
      return DataLossError("flight recorder: note shorter than its header");
    }
    memcpy(&fault, d + head, sizeof(fault));
    head += sizeof(FlightFault);
  }
  if (h.count > (size - head) / sizeof(FlightRecord)) {
    return DataLossError("flight recorder: " + std::to_string(h.count) +
                         " records do not fit a " + std::to_string(size) +
                         "-byte note");
  }
  FlightLog log;
  log.next = h.next;
  log.read_ns = h.read_ns;
  log.fault_ns = fault.fault_ns;
  log.capacity = h.capacity;
  log.events.reserve(h.count);
  for (uint32_t i = 0; i < h.count; ++i) {
    FlightRecord rec;
    memcpy(&rec, d + head + i * sizeof(FlightRecord), sizeof(rec));
    FlightEntry e;
    e.index = rec.index;
    e.kind = rec.kind;
    if (!e.torn()) {
      e.time_ns = rec.time_ns;
      e.addr = rec.addr;
      e.len = rec.len;
      e.prev_addr = rec.prev_addr;
      e.prev_len = rec.prev_len;
      e.tid = rec.tid;
      e.region = rec.region;
      e.label.assign(rec.label, strnlen(rec.label, sizeof(rec.label)));
      // A range that wraps is not a range: keep the event, drop the range.
      if (e.addr + e.len < e.addr) e.len = 0;
      if (e.prev_addr + e.prev_len < e.prev_addr) e.prev_len = 0;
    } else {
      ++log.torn;
    }
    log.events.push_back(std::move(e));
  }
  return std::optional<FlightLog>(std::move(log));
}

}  // namespace sigrace::crashdump
