// libFuzzer target for CoreReader: any byte string must either parse or
// fail with one clean kDataLoss line, and nothing a parsed reader returns
// may point outside the input. Built only with -DSIGRACE_FUZZ=ON (preset
// `fuzz`), with -fsanitize=fuzzer,address,undefined on this target and on
// the reader sources compiled into it.
//
// Thread safety: libFuzzer calls the entry point from one thread.
// Not async-signal-safe.

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <memory>

#include "crashdump/format/core_reader.h"

namespace {

using sigrace::StatusCode;
using sigrace::crashdump::CoreReader;
using sigrace::crashdump::FileLocation;
using sigrace::crashdump::ReaderOptions;

[[noreturn]] void Fail(const char* what) {
  std::fprintf(stderr, "core_reader_fuzz: invariant broken: %s\n", what);
  std::abort();
}

// Reads every byte of [p, p+n) so ASan checks the whole range.
uint8_t Touch(const uint8_t* p, uint64_t n) {
  uint8_t acc = 0;
  for (uint64_t i = 0; i < n; ++i) acc ^= p[i];
  return acc;
}

volatile uint8_t g_sink;

void Exercise(const uint8_t* data, size_t size, ReaderOptions options) {
  auto parsed = CoreReader::FromBuffer(data, size, options);
  if (!parsed.ok()) {
    const auto& st = parsed.status();
    if (st.code() != StatusCode::kDataLoss) Fail("error is not kDataLoss");
    if (st.message().empty()) Fail("empty error message");
    if (st.message().find('\n') != std::string::npos) Fail("multi-line error");
    return;
  }
  const CoreReader& r = **parsed;
  if (r.data() != data || r.size() != size) Fail("data/size");
  if (r.seal().content_size > size) Fail("content_size beyond the input");
  uint8_t acc = 0;
  for (const auto& n : r.notes()) {
    if (n.desc_offset > size || n.desc_size > size - n.desc_offset) {
      Fail("note desc outside the input");
    }
    acc ^= Touch(r.NoteDesc(n), n.desc_size);
  }
  for (const auto& t : r.threads()) {
    if (t.regs_offset > size || t.regs_size > size - t.regs_offset) {
      Fail("thread registers outside the input");
    }
  }
  for (size_t i = 0; i < r.mappings().size(); ++i) {
    const auto& m = r.mappings()[i];
    if (m.offset > size || m.filesz > size - m.offset) {
      Fail("mapping bytes outside the input");
    }
    const uint8_t* mem = r.MemoryAt(m.vaddr, m.filesz);
    if (m.filesz > 0) {
      if (mem != data + m.offset) Fail("MemoryAt disagrees with the mapping");
      acc ^= Touch(mem, m.filesz);
      const auto a = r.OffsetToAddress(m.offset + m.filesz - 1);
      if (!a || a->mapping_index != i) Fail("OffsetToAddress round trip");
      const auto off = r.AddressToOffset(a->vaddr);
      if (!off || *off != m.offset + m.filesz - 1) {
        Fail("AddressToOffset round trip");
      }
    }
    (void)r.MappingForAddress(m.vaddr);
    (void)r.AddressToOffset(m.end());
  }
  for (const auto& red : r.redactions()) {
    (void)r.IsRedacted(red.vaddr, red.len);
    (void)r.RedactionsOverlapping(red.vaddr, red.len + 1);
  }
  for (uint64_t off : {uint64_t{0}, uint64_t{size / 3}, uint64_t{size / 2},
                       uint64_t{size - 1}}) {
    const FileLocation loc = r.Locate(off);
    if (loc.kind == FileLocation::Kind::kNote &&
        loc.note_index >= r.notes().size()) {
      Fail("Locate note index");
    }
    if (loc.kind == FileLocation::Kind::kLoad &&
        loc.mapping_index >= r.mappings().size()) {
      Fail("Locate mapping index");
    }
  }
  (void)r.MetaValue("signal");
  acc ^= static_cast<uint8_t>(r.backtrace().size());
  g_sink = acc;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  Exercise(data, size, ReaderOptions{});
  // Without checksum verification a fuzzer-made trailer counts as a seal,
  // which reaches the sealed paths.
  Exercise(data, size,
           ReaderOptions{.require_seal = true, .verify_checksum = false});
  return 0;
}
