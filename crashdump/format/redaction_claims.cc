#include "crashdump/format/redaction_claims.h"

#include <elf.h>

#include <algorithm>
#include <cstring>
#include <string>

namespace sigrace::crashdump {
namespace {

#ifndef NT_X86_XSTATE
constexpr uint32_t NT_X86_XSTATE = 0x202;
#endif

// x86_64 register notes as the writer redacts them (core_writer.cc,
// FillRegs and AddThreadNotes). Offsets are from the start of pr_reg (GP)
// or of the note descriptor (FPREGSET, XSTATE).
constexpr uint64_t kGpLowBegin = 0, kGpLowEnd = uint64_t{4} * 8;  // r15 .. r12
constexpr uint64_t kGpHighBegin = uint64_t{5} * 8,
                   kGpHighEnd = uint64_t{16} * 8;        // rbx .. orig_rax
constexpr uint64_t kLegacyBegin = 32, kLegacyEnd = 416;  // st0-7, xmm0-15
constexpr uint64_t kXsaveHeaderEnd = 576;  // extended components after it

constexpr char kSimdOnlyLabel[] = "simd-registers";

// Mappings with file bytes, sorted by address, and the largest end of
// file-backed bytes up to each (mappings of a hostile file may overlap).
struct AddressIndex {
  std::vector<size_t> order;
  std::vector<uint64_t> max_end;
};

uint64_t FileEnd(const Mapping& m) {
  return m.vaddr + std::min(m.filesz, m.memsz);  // end() does not wrap
}

AddressIndex IndexMappings(const CoreReader& reader) {
  AddressIndex ix;
  const std::vector<Mapping>& maps = reader.mappings();
  for (size_t i = 0; i < maps.size(); ++i) {
    if (std::min(maps[i].filesz, maps[i].memsz) > 0) ix.order.push_back(i);
  }
  std::sort(ix.order.begin(), ix.order.end(),
            [&](size_t a, size_t b) { return maps[a].vaddr < maps[b].vaddr; });
  uint64_t m = 0;
  for (size_t i : ix.order) {
    m = std::max(m, FileEnd(maps[i]));
    ix.max_end.push_back(m);
  }
  return ix;
}

// The mapping whose file bytes hold [va, va + n), or null.
const Mapping* FileMappingOf(const CoreReader& reader, const AddressIndex& ix,
                             uint64_t va, uint64_t n) {
  const std::vector<Mapping>& maps = reader.mappings();
  size_t k = static_cast<size_t>(
      std::upper_bound(ix.max_end.begin(), ix.max_end.end(), va) -
      ix.max_end.begin());
  for (; k < ix.order.size() && maps[ix.order[k]].vaddr <= va; ++k) {
    const Mapping& m = maps[ix.order[k]];
    if (va >= m.vaddr && va - m.vaddr <= std::min(m.filesz, m.memsz) &&
        std::min(m.filesz, m.memsz) - (va - m.vaddr) >= n) {
      return &m;
    }
  }
  return nullptr;
}

bool InMapping(const Mapping& m, uint64_t a) {
  return a >= m.vaddr && a - m.vaddr < m.memsz;
}

// Is `value` code (inside a PF_X mapping) or inside `stack`?
bool IsDumpAddress(const CoreReader& reader, const Mapping& stack,
                   uint64_t value) {
  if (InMapping(stack, value)) return true;
  for (const Mapping& m : reader.mappings()) {
    if ((m.flags & PF_X) != 0 && InMapping(m, value)) return true;
  }
  return false;
}

std::vector<PreservedCheck> CheckWords(const CoreReader& reader,
                                       const AddressIndex& ix) {
  const std::vector<Preserved>& words = reader.preserved();
  std::vector<PreservedCheck> out(words.size());
  // Listed twice: every listing of that address fails.
  std::vector<size_t> by_addr(words.size());
  for (size_t i = 0; i < words.size(); ++i) by_addr[i] = i;
  std::sort(by_addr.begin(), by_addr.end(), [&](size_t a, size_t b) {
    return words[a].vaddr < words[b].vaddr;
  });
  std::vector<bool> twice(words.size(), false);
  for (size_t i = 1; i < by_addr.size(); ++i) {
    if (words[by_addr[i]].vaddr == words[by_addr[i - 1]].vaddr) {
      twice[by_addr[i]] = twice[by_addr[i - 1]] = true;
    }
  }
  for (size_t i = 0; i < words.size(); ++i) {
    const Preserved& w = words[i];
    PreservedCheck& c = out[i];
    c.word = i;
    const Redaction& r = reader.redactions()[w.record];
    if (w.vaddr % 8 != 0) {
      c.why = "unaligned";
    } else if (r.kind != RedactionKind::kSecretStack) {
      c.why = "record is not a secret stack";
    } else if (w.vaddr < r.vaddr || w.vaddr - r.vaddr > r.len ||
               r.len - (w.vaddr - r.vaddr) < 8) {
      c.why = "outside its record";
    } else if (twice[i]) {
      c.why = "listed twice";
    } else if (const Mapping* m = FileMappingOf(reader, ix, w.vaddr, 8)) {
      uint64_t value;
      std::memcpy(&value, reader.data() + m->offset + (w.vaddr - m->vaddr), 8);
      if (IsDumpAddress(reader, *m, value)) {
        c.verified = true;
      } else {
        c.why = "not an address of the dump";
      }
    } else {
      c.why = "not in the file";
    }
  }
  return out;
}

void ClaimAddressRange(const CoreReader& reader, const AddressIndex& ix,
                       const Redaction& r, const std::vector<uint64_t>& holes,
                       RedactionClaim* claim) {
  const uint64_t begin = r.vaddr;
  const uint64_t end = r.vaddr + r.len;  // checked not to wrap at Open()
  const std::vector<Mapping>& maps = reader.mappings();
  // The first mapping that may reach past `begin`.
  size_t k = static_cast<size_t>(
      std::upper_bound(ix.max_end.begin(), ix.max_end.end(), begin) -
      ix.max_end.begin());
  uint64_t covered_to = begin, present = 0;
  for (; k < ix.order.size() && maps[ix.order[k]].vaddr < end; ++k) {
    const Mapping& m = maps[ix.order[k]];
    const uint64_t s = std::max(begin, m.vaddr);
    const uint64_t e = std::min(end, FileEnd(m));
    if (s >= e) continue;
    // Split around the verified preserved words (sorted vaddrs).
    uint64_t from = s;
    for (auto h =
             std::lower_bound(holes.begin(), holes.end(), s > 7 ? s - 7 : 0);
         h != holes.end() && *h < e; ++h) {
      if (*h > from) {
        claim->spans.push_back(
            {m.offset + (from - m.vaddr), *h - from,
             static_cast<uint32_t>(from % kRedactionMarkerLen)});
      }
      from = std::max(from, std::min(e, *h + 8));
    }
    if (from < e) {
      claim->spans.push_back(
          {m.offset + (from - m.vaddr), e - from,
           static_cast<uint32_t>(from % kRedactionMarkerLen)});
    }
    // Present bytes, counted once where mappings overlap.
    if (e > covered_to) {
      present += e - std::max(s, covered_to);
      covered_to = e;
    }
  }
  claim->absent_bytes = r.len - present;
}

// Adds the part of [begin, end) (offsets into the note's descriptor) that
// the descriptor holds; its first byte holds the marker at `phase`.
void ClaimNoteBytes(const NoteInfo& n, uint64_t begin, uint64_t end,
                    uint64_t phase, RedactionClaim* claim) {
  end = std::min(end, n.desc_size);
  if (begin >= end) return;
  claim->spans.push_back({n.desc_offset + begin, end - begin,
                          static_cast<uint32_t>(phase % kRedactionMarkerLen)});
}

void ClaimRegisters(const CoreReader& reader, const Redaction& r,
                    RedactionClaim* claim) {
  if (reader.machine() != EM_X86_64) return;  // no layout known: absent
  const bool gp = r.label != kSimdOnlyLabel;
  for (const ThreadInfo& t : reader.threads()) {
    if (t.tid != r.tid) continue;
    for (size_t ni : t.reg_notes) {
      const NoteInfo& n = reader.notes()[ni];
      if (ni == t.prstatus_note) {
        if (!gp || t.regs_size < kGpHighEnd) continue;
        const uint64_t regs = t.regs_offset - n.desc_offset;
        // Each span starts at register 0 or 4 of the writer's list: phase 0.
        ClaimNoteBytes(n, regs + kGpLowBegin, regs + kGpLowEnd, 0, claim);
        ClaimNoteBytes(n, regs + kGpHighBegin, regs + kGpHighEnd, 0, claim);
      } else if (n.owner == "CORE" && n.type == NT_PRFPREG) {
        ClaimNoteBytes(n, kLegacyBegin, kLegacyEnd, kLegacyBegin, claim);
      } else if (n.owner == "LINUX" && n.type == NT_X86_XSTATE) {
        ClaimNoteBytes(n, kLegacyBegin, kLegacyEnd, kLegacyBegin, claim);
        ClaimNoteBytes(n, kXsaveHeaderEnd, n.desc_size, kXsaveHeaderEnd, claim);
      }
    }
  }
}

}  // namespace

std::vector<PreservedCheck> CheckPreservedWords(const CoreReader& reader) {
  return CheckWords(reader, IndexMappings(reader));
}

std::vector<RedactionClaim> RedactionClaims(const CoreReader& reader) {
  std::vector<RedactionClaim> claims;
  claims.reserve(reader.redactions().size());
  const AddressIndex ix = IndexMappings(reader);
  // Verified preserved words, by address: left out of every kSecretStack
  // claim (a word verified against one secret-stack record is a return
  // address or frame pointer in any overlapping one too), never out of
  // another kind's.
  std::vector<uint64_t> holes;
  for (const PreservedCheck& c : CheckWords(reader, ix)) {
    if (c.verified) holes.push_back(reader.preserved()[c.word].vaddr);
  }
  std::sort(holes.begin(), holes.end());
  const std::vector<uint64_t> no_holes;
  for (size_t i = 0; i < reader.redactions().size(); ++i) {
    const Redaction& r = reader.redactions()[i];
    RedactionClaim c;
    c.record = i;
    if (r.kind == RedactionKind::kRegisters) {
      ClaimRegisters(reader, r, &c);
    } else {
      ClaimAddressRange(
          reader, ix, r,
          r.kind == RedactionKind::kSecretStack ? holes : no_holes, &c);
    }
    claims.push_back(std::move(c));
  }
  return claims;
}

uint64_t NonMarkerBytes(const uint8_t* data, const MarkerSpan& span,
                        uint64_t* first_bad) {
  // The marker twice, so that any phase has 16 contiguous expected bytes.
  uint8_t twice[2 * kRedactionMarkerLen];
  std::memcpy(twice, kRedactionMarker, kRedactionMarkerLen);
  std::memcpy(twice + kRedactionMarkerLen, kRedactionMarker,
              kRedactionMarkerLen);
  const uint8_t* p = data + span.offset;
  uint64_t bad = 0;
  for (uint64_t i = 0; i < span.length; i += kRedactionMarkerLen) {
    const size_t n = static_cast<size_t>(
        std::min<uint64_t>(kRedactionMarkerLen, span.length - i));
    const uint8_t* want = twice + (span.phase + i) % kRedactionMarkerLen;
    if (std::memcmp(p + i, want, n) == 0) continue;
    for (size_t j = 0; j < n; ++j) {
      if (p[i + j] == want[j]) continue;
      if (bad++ == 0 && first_bad != nullptr) *first_bad = span.offset + i + j;
    }
  }
  return bad;
}

}  // namespace sigrace::crashdump
