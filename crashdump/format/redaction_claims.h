// What a dump's redaction records claim about its own bytes: for each
// record, the runs of file bytes that read as the marker if the writer
// applied it, and the marker byte each must hold. The read side of the
// layout the writer (crashdump/capture/core_writer.cc) fills in; the oracle
// checks every claim byte for byte and trusts none (docs/design.md,
// "The oracle checks bytes, never claims").
//
// Address-bearing records (every kind but kRegisters): the bytes of
// [vaddr, vaddr + len) that lie in some mapping's file bytes; the byte at
// virtual address A must be kRedactionMarker[A % 16] (core_format.h).
// A kSecretStack record leaves out its verified preserved words (below),
// and only those.
//
// Preserved words (redaction note version 2): the writer keeps the
// return-address and saved-frame-pointer slots its unwinder read inside
// a secret stack, so debuggers can walk it. None is taken on trust. A
// preserved word is verified when
//   - it is 8-aligned, lies wholly inside its record's range, and that
//     record is a kSecretStack record;
//   - its 8 bytes are in the file (inside one mapping's file bytes);
//   - it is listed once;
//   - its value is an address of this dump: inside a PT_LOAD with PF_X
//     (code), or inside the PT_LOAD that holds the word (its stack).
// A word that fails any of these stays claimed as marker, so whatever it
// holds is a redaction not applied (and a fragment there is a leak of
// that kind). A key fragment cannot hide in verified words: each is one
// isolated 8-byte value constrained to a mapped address (its top 16 bits
// are those of a user address, its rest inside a mapping), and the
// scanner looks for fragments of at least 16 bytes everywhere anyway.
//
// kRegisters records (x86_64 only; the writer writes no other machine):
// the register notes of every thread with the record's tid. The label
// says which registers:
//   "simd-registers": NT_FPREGSET bytes [32, 416) (st0-7, xmm0-15) and
//     NT_X86_XSTATE bytes [32, 416) and [576, end) (every extended
//     component).
//   "registers", or any other label: the above, and the data registers of
//     NT_PRSTATUS pr_reg (r15, r14, r13, r12, then rbx through orig_rax;
//     rbp, rip, rsp, flags and segments are kept for unwinding).
// The writer's phases: the i-th data register in the order above (0 for
// r15 .. 14 for orig_rax) holds kRedactionMarker[(8 * i + j) % 16] in its
// byte j, so r15..r12 is one span and rbx..orig_rax another, each from
// phase 0; in the SIMD spans the byte at descriptor offset k holds
// kRedactionMarker[k % 16].
//
// Thread safety: pure functions over an immutable CoreReader.
// Not async-signal-safe (allocates).

#ifndef SIGRACE_CRASHDUMP_FORMAT_REDACTION_CLAIMS_H_
#define SIGRACE_CRASHDUMP_FORMAT_REDACTION_CLAIMS_H_

#include <cstddef>
#include <cstdint>
#include <vector>

#include "crashdump/format/core_format.h"
#include "crashdump/format/core_reader.h"

namespace sigrace::crashdump {

// A run of file bytes that must be the marker: the byte at
// offset + i must equal kRedactionMarker[(phase + i) % 16].
struct MarkerSpan {
  uint64_t offset = 0;
  uint64_t length = 0;
  uint32_t phase = 0;  // < kRedactionMarkerLen
};

struct RedactionClaim {
  size_t record = 0;              // index into CoreReader::redactions()
  std::vector<MarkerSpan> spans;  // in the order found; may overlap others'
  // Claimed bytes that are not in the file: an address range outside every
  // mapping's file bytes (withheld, e.g. MADV_DONTDUMP, or memsz > filesz),
  // a register record for a thread the dump does not hold, or the register
  // layout of a machine other than x86_64. Nothing to verify there.
  uint64_t absent_bytes = 0;
};

// The check of one preserved word (reader.preserved()[word]).
struct PreservedCheck {
  size_t word = 0;
  bool verified = false;
  // When not verified: "unaligned", "outside its record", "record is not a
  // secret stack", "not in the file", "listed twice", "not an address of
  // the dump". Empty when verified.
  const char* why = "";
};

// One check per entry of reader.preserved(), in the same order.
std::vector<PreservedCheck> CheckPreservedWords(const CoreReader& reader);

// One claim per record of reader.redactions(), in the same order.
std::vector<RedactionClaim> RedactionClaims(const CoreReader& reader);

// The number of bytes of `span` (inside reader.data()) that are not the
// marker, and in *first_bad (if not null) the file offset of the first
// one (unchanged when there is none).
uint64_t NonMarkerBytes(const uint8_t* data, const MarkerSpan& span,
                        uint64_t* first_bad = nullptr);

// The marker byte at phase `phase`.
inline uint8_t MarkerByte(uint64_t phase) {
  return static_cast<uint8_t>(kRedactionMarker[phase % kRedactionMarkerLen]);
}

}  // namespace sigrace::crashdump

#endif  // SIGRACE_CRASHDUMP_FORMAT_REDACTION_CLAIMS_H_
