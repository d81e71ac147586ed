// The dump scanner: the oracle that judges every dump. It knows the key
// exactly (KeyForms) and finds every fragment of at least F bytes of any
// form, anywhere in a file, at any alignment: ELF load segments, notes and
// register blocks, headers, slack, or a raw non-ELF file alike.
//
// Search (raw bytes, independent of any file format): every 4-byte window
// (W = 4) of every form goes into a filter; the data is probed with one
// W-byte load every S = F - W + 1 bytes (S = 13 for F = 16). A run of
// L >= F matching bytes spans S + W - 1 = F bytes, so it always covers one
// whole probed window. Each probe that passes the filter is looked up in
// the exact tables, verified against the form and extended both ways to
// the maximal match; only maximal matches of F bytes or more are reported,
// so a run of F - 1 bytes never is. The filter: a blocked Bloom filter over
// every distinct window (three bits of one 32-bit word each; split by what
// the window looks like, so the few thousand binary windows sit in an
// L1-sized half and text windows in an L2-sized one; its hash seed is
// chosen so zero pages and other fill patterns never pass unless a form
// holds them). The tables (binary forms; ASCII text forms; UTF-16LE forms)
// are 16-byte buckets of eight 16-bit fingerprints, then the exact
// windows. The UTF-16LE table is keyed by 8 bytes when F >= 11 (four bytes
// of UTF-16LE are only two characters, and every pair of hex digits
// recurs dozens of times in a hex form): a fragment of F >= 11 bytes that
// holds the probed window [p, p + 4) also holds [p, p + 8) or
// [p - 4, p + 4), and both are looked up. Forms shorter than F are not
// indexed: they cannot hold a fragment.
//
// The probe loop is compiled several times (ProbePath) and picked at run
// time; with AVX-512 it takes sixteen probes per vector in 32-bit lanes
// (byte permutes of 64-byte loads, one 32-bit multiply, one gather of
// filter words), four vectors per iteration so that four gathers are in
// flight.
// Every loop gives the same findings (scanner_test checks it).
//
// Parallel scan: the data is cut into chunks scanned by worker threads;
// probes stay inside their chunk but verification reads across chunk
// borders (the chunks overlap by whatever the match needs), so a fragment
// that crosses a border is found. Offsets are 64-bit; files over 4 GiB work.
// ScanFile reads the file with pread, never through a mapping (see
// ReadBuffer in scanner.cc for the measurements): each chunk is read a
// read_size step (256 KiB) at a time into a per-thread buffer that stays
// in L2 and slides along the chunk, keeping the longest form's length of
// bytes on either side of the probes.
//
// Classification: a maximal match is a LEAK when at least F of its bytes
// are secret-class bytes of the form (see key_forms.h), an ANCHOR when it
// is not a leak but holds F or more key-specific (secret or public) bytes,
// and is dropped otherwise (DER headers, PEM armour: identical for every
// key). Nothing the dump says about itself makes a leak less than a leak:
// the ELF layer (ScanFile) checks every redaction record byte for byte
// (crashdump/format/redaction_claims.h has what each record claims) and
// only names the kind of a leak lying where a record claims the marker
// but the bytes are not it: REDACTION-NOT-APPLIED, still a leak. The same
// check counts, per dump, the records verified as marker and the records
// not applied (a writer fault even without a key fragment); judgement.h
// turns a ScanReport into the verdict every consumer uses.
//
// Findings carry offsets, lengths, form names and region names, never key
// bytes.
//
// Thread safety: a Scanner is immutable after Create(); Scan() and
// ScanFile() are const and may run concurrently from several threads.
// Not async-signal-safe.

#ifndef SIGRACE_CRASHDUMP_ORACLE_SCANNER_H_
#define SIGRACE_CRASHDUMP_ORACLE_SCANNER_H_

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "base/status.h"
#include "crashdump/format/core_reader.h"
#include "crashdump/oracle/key_forms.h"

namespace sigrace::crashdump {

class CoreReader;

namespace internal {
struct ScanIndex;  // the window index; defined in scanner.cc
}  // namespace internal

// The compiled probe loops. Each visits the same probe grid, passes the
// same probes through the same filter and hands the survivors to the same
// verification, so all give the same findings; they differ only in speed.
enum class ProbePath {
  kAuto,     // the fastest this CPU runs (chosen at run time)
  kGeneric,  // any x86-64: four scalar probes per branch
  kBmi2,     // the scalar loop compiled with BMI2 shifts
  kAvx512,   // sixteen probes per vector: AVX-512 F/BW/VBMI, gathered
             // filter words
};
const char* ProbePathName(ProbePath path);

struct ScanOptions {
  // F: the shortest run of form bytes that counts. At least 8.
  size_t min_fragment = 16;
  // Worker threads; 0 = one per online CPU.
  int threads = 0;
  // Bytes of probes per work item handed to a thread.
  size_t chunk_size = size_t{16} << 20;
  // ScanFile: bytes read per read(2) into a thread's buffer (rounded down
  // to the probe stride). Small enough that the buffer stays in the core's
  // L2 cache, so the copy out of the page cache and the probes that follow
  // both hit L2.
  size_t read_size = size_t{256} << 10;
  // Report anchor matches (public n, public keys). Leaks are always
  // reported.
  bool report_anchors = true;
  // kAuto in production; a named path for tests and benchmarks. A path the
  // CPU lacks makes Create() fail.
  ProbePath probe_path = ProbePath::kAuto;
  // ScanFile on a file that looks like a damaged core (ELF magic or type
  // altered, a sigrace note owner or seal magic without a parseable ELF
  // header): false makes it a DataLoss error (a damaged dump is never
  // scanned as raw and reported clean); true scans it as raw bytes.
  bool raw_damaged = false;
};

// What the oracle can see with a given minimum fragment: the private forms
// long enough to hold one (indexed) and their lengths.
struct OracleReach {
  size_t forms_indexed = 0;  // private forms of at least min_fragment bytes
  size_t forms_total = 0;    // private forms of every key
  size_t shortest = 0;       // shortest indexed private form, bytes
  size_t longest = 0;        // longest indexed private form, bytes
};

enum class FindingKind {
  kLeak,  // secret bytes (anywhere, whatever the dump records)
  // Secret bytes where a redaction record claims the marker: the record
  // was written, the redaction not applied. A leak.
  kRedactionNotApplied,
  kAnchor,  // public key material (n, e, the public key): never a leak
};
// "leak", "redaction-not-applied", "anchor".
const char* FindingKindName(FindingKind kind);
// True for the kinds that are leaks: kLeak and kRedactionNotApplied.
bool IsLeak(FindingKind kind);

struct Finding {
  FindingKind kind = FindingKind::kLeak;
  uint64_t file_offset = 0;   // first matching byte in the file
  uint64_t length = 0;        // length of the maximal match
  uint32_t key_index = 0;     // into Scanner::keys()
  uint32_t form_index = 0;    // into keys()[key_index].forms()
  std::string form;           // form name, e.g. "rsa.p.le64"
  std::string part;           // key component, e.g. "p", "seed", "n"
  uint64_t form_offset = 0;   // offset of the fragment within the form
  uint64_t secret_bytes = 0;  // secret-class bytes in the match
  // Other matches folded into this one: other forms holding exactly these
  // bytes (the finding names the first in table order), and shorter
  // matches lying inside it (the PKCS#1 DER inside a PKCS#8 DER, the
  // base64 lines inside a PEM).
  uint32_t other_forms = 0;

  // ELF attribution (ScanFile on an ELF core; zero/empty otherwise).
  bool has_address = false;
  uint64_t address = 0;  // virtual address of file_offset
  std::string region;    // "load 0x7f..-0x7f.. rw-p /path", "note
                         // NT_PRSTATUS", "elf header", ...
  int32_t tid = 0;       // thread of a register note, or of a redaction
  // Label of a redaction record claiming the marker over the match (the
  // first whose bytes there are not the marker), " (partial)" appended
  // when part of the match lies outside every record's claim.
  std::string redaction;
};

// A redaction record whose claimed bytes are not all the marker: the
// writer recorded a redaction it did not apply. Offsets and counts only.
struct UnappliedRedaction {
  size_t record = 0;  // index into the dump's redaction records
  RedactionKind kind = RedactionKind::kRange;
  std::string label;
  int32_t tid = 0;
  uint64_t address = 0;            // record's vaddr (0 for kRegisters)
  uint64_t length = 0;             // record's len (0 for kRegisters)
  uint64_t checked_bytes = 0;      // claimed bytes present in the file
  uint64_t non_marker_bytes = 0;   // of those, bytes that are not the marker
  uint64_t first_file_offset = 0;  // first byte that is not the marker
};

// What ScanFile learned about the file itself.
enum class FileKind { kRaw, kElfCore, kSigraceDump };
const char* FileKindName(FileKind kind);

struct ScanReport {
  std::string path;
  uint64_t file_size = 0;
  FileKind file_kind = FileKind::kRaw;
  std::vector<Finding> findings;  // sorted by file_offset
  size_t leaks = 0;        // findings that are leaks (IsLeak), every kind
  size_t not_applied = 0;  // of those, kRedactionNotApplied
  size_t anchors = 0;
  // The dump's redaction records, each checked byte for byte (ELF cores;
  // all zero for raw files). Bytes are summed over records, so bytes two
  // records both claim count twice.
  size_t redactions_recorded = 0;
  // Records with claimed bytes in the file, every one of them the marker.
  size_t redactions_verified = 0;
  uint64_t redacted_bytes_verified = 0;  // claimed bytes that are the marker
  // Records with a claimed byte in the file that is not the marker: a
  // writer fault, with or without a key fragment there (listed below).
  size_t redactions_not_applied = 0;
  uint64_t bytes_not_applied = 0;  // claimed bytes that are not the marker
  // Records with no claimed byte in the file (withheld from the dump, e.g.
  // MADV_DONTDUMP; a thread not in the dump): nothing to verify.
  size_t redactions_unchecked = 0;
  std::vector<UnappliedRedaction> unapplied;  // one per record not applied
  double seconds = 0;                         // wall time of the byte search
  // Bytes the search read: the file's data extents, each widened by the
  // longest form on either side; the rest are holes (zeros), which hold
  // no fragment unless a form has a run of min_fragment zero bytes.
  uint64_t bytes_searched = 0;
};

class Scanner {
 public:
  // Builds the index over every form of every key. Fails on an empty key
  // list or min_fragment < 8.
  static StatusOr<std::unique_ptr<Scanner>> Create(std::vector<KeyForms> keys,
                                                   ScanOptions options);
  // Create() over the keys in `paths` (KeyForms::FromFile each). Fails on
  // the first file that does not parse, or on an empty list.
  static StatusOr<std::unique_ptr<Scanner>> FromKeyFiles(
      const std::vector<std::string>& paths, ScanOptions options);
  ~Scanner();
  Scanner(const Scanner&) = delete;
  Scanner& operator=(const Scanner&) = delete;

  // Raw search of [data, data + size). Offsets in findings are
  // base_offset + position. No ELF attribution; kinds are kLeak/kAnchor.
  std::vector<Finding> Scan(const uint8_t* data, size_t size,
                            uint64_t base_offset = 0) const;

  // Reads `path` (never maps it: a file that shrinks under the scan is a
  // DataLoss error, not SIGBUS) and scans all of it; an ELF core is read
  // once into a private copy that is parsed, verified and searched. For an
  // ELF core it adds
  // addresses, regions and redactions. A sigrace dump (it carries SIGRACE
  // notes or a seal) must carry a valid seal trailer, else DataLoss: a torn
  // dump is never scanned as clean. A kernel core whose segments run past
  // the end of the file is truncated: DataLoss.
  StatusOr<ScanReport> ScanFile(const std::string& path) const;

  const std::vector<KeyForms>& keys() const { return keys_; }
  const ScanOptions& options() const { return options_; }
  // The private forms min_fragment reaches (Create() refuses a minimum
  // fragment longer than every private form of some key: that key could
  // never be found).
  const OracleReach& reach() const { return reach_; }
  // Index statistics for benchmarks and --list-forms.
  size_t window_size() const;
  size_t probe_stride() const;
  size_t indexed_windows() const;
  size_t index_bytes() const;
  // The loop Scan() runs (never kAuto).
  ProbePath probe_path() const { return path_; }
  // Every path this CPU can run, kGeneric first, fastest last.
  static std::vector<ProbePath> AvailableProbePaths();

 private:
  Scanner(std::vector<KeyForms> keys, ScanOptions options);
  // The raw search of a whole file: each work item is read with pread, a
  // read_size step at a time, into a per-thread buffer that slides along
  // it keeping the longest form's length of bytes either side of the
  // probes.
  // `extents`: the file's data extents, or null to search all of it.
  StatusOr<std::vector<Finding>> ScanFd(int fd, const uint8_t* image,
                                        uint64_t size,
                                        const std::vector<FileExtent>* extents,
                                        const std::string& path,
                                        uint64_t* bytes_searched) const;
  // Sorts and de-duplicates the workers' findings, names their forms.
  std::vector<Finding> Merge(std::vector<std::vector<Finding>> results) const;
  // Checks every redaction record of an ELF core byte for byte, fills the
  // report's redaction counts, and attributes the findings (regions,
  // addresses, threads; kRedactionNotApplied where a record claims the
  // marker over secret bytes).
  void VerifyAndAttribute(const CoreReader& reader, ScanReport* report) const;

  std::vector<KeyForms> keys_;
  ScanOptions options_;
  std::unique_ptr<internal::ScanIndex> index_;
  ProbePath path_ = ProbePath::kGeneric;
  // No form holds min_fragment zero bytes in a row, so ScanFile may skip a
  // sparse file's holes.
  bool holes_hold_nothing_ = true;
  OracleReach reach_;
};

}  // namespace sigrace::crashdump

#endif  // SIGRACE_CRASHDUMP_ORACLE_SCANNER_H_
