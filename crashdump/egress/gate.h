// The egress gate: decides whether a dump may leave the secure environment,
// and releases exactly the bytes it judged.
//
// This models the second reading of the incident: the race was not in what
// entered the dump but in what was allowed out. A dump can be judged while
// it is still being written, or judged under one name and then released by
// opening that name again, so the bytes that leave are not the bytes that
// were judged. The fixed gate closes both windows:
//   0. it reads the ELF and program headers and the seal trailer first: a
//      file that is not a dump of this format, or whose apparent size is
//      far beyond what its headers declare (a sparse 1 GiB file, a dump
//      padded out), is an error before any content is read; the copy
//      below takes the data extents only, so memory follows the data,
//      not the apparent size;
//   1. it copies the dump into a memfd and seals it (F_SEAL_WRITE, SHRINK,
//      GROW, SEAL): from then on the kernel guarantees the bytes cannot
//      change;
//   2. it requires the sigrace seal trailer on that copy (a dump still
//      being written has none, so it is refused, never judged clean);
//   3. it scans that copy with the oracle and judges it with JudgeReport
//      (oracle/judgement.h): a leak, or a redaction recorded and not
//      applied, is refused; and
//   4. it releases from that same copy (0600, temporary name, fsync,
//      rename), never from the original path.
//
// The race modes reopen one window each (WINDOW comments in gate.cc).
// Either mode may judge with the oracle (default) or with the legacy
// credential scanner (GateScanner), which misses a key held the way
// OpenSSL holds it: the other reading of the incident's egress.
//
// Thread safety: a Gate is immutable after construction; Submit() may run
// from several threads at once (each call uses its own descriptors).
// Not async-signal-safe.

#ifndef SIGRACE_CRASHDUMP_EGRESS_GATE_H_
#define SIGRACE_CRASHDUMP_EGRESS_GATE_H_

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "base/status.h"
#include "crashdump/oracle/judgement.h"
#include "crashdump/oracle/scanner.h"

namespace sigrace::crashdump {

enum class GateMode {
  kFixed,
  // WINDOW: the seal is not required; a dump still being written is judged
  // on the bytes present so far and released later, complete.
  kJudgeUnsealed,
  // WINDOW: the dump is judged in place, then the path is opened again to
  // release it; whatever sits at the path by then leaves.
  kReopenToRelease,
  // WINDOW: judged in place; a scanner error (a torn dump, an unreadable
  // file) releases the dump instead of refusing it.
  kFailOpen,
  // WINDOW: judged in place, then released by renaming the judged file
  // into the release directory: the inode that leaves is the one judged,
  // but whoever still holds it open can change its bytes after the
  // judgment.
  kRenameRelease,
  // WINDOW: as kRenameRelease, released by a hard link to the judged file.
  kLinkRelease,
};

// Which scanner judges the dump.
enum class GateScanner {
  kOracle,  // the full scanner (oracle/scanner.h): every form of the key
  // A credential scanner of the kind that was in use
  // (oracle/legacy_scanner.h): PEM, PKCS#1/PKCS#8 DER, private JWK; blind
  // to OpenSSL's in-memory forms.
  kLegacy,
};
// "oracle", "legacy".
const char* GateScannerName(GateScanner scanner);
StatusOr<GateScanner> ParseGateScanner(std::string_view name);

struct GateModeInfo {
  GateMode mode;
  const char* name;    // "fixed", "judge-unsealed", "reopen-to-release",
                       // "fail-open", "rename-release", "link-release"
  const char* window;  // one line
};
std::vector<GateModeInfo> ListGateModes();
StatusOr<GateMode> ParseGateMode(std::string_view name);

struct GateOptions {
  GateMode mode = GateMode::kFixed;
  std::string release_dir;  // must exist; released dumps land here
  GateScanner scanner = GateScanner::kOracle;
  // The most data (bytes in the file's data extents; holes are free) the
  // fixed gate copies to judge one dump; a file with more is an error. The
  // gate's memory is bounded by this and by the data, never by a file's
  // apparent size.
  uint64_t max_data_bytes = uint64_t{16} << 30;
};

struct GateDecision {
  bool released = false;
  std::string released_path;  // set when released
  // Why it was refused (the judgement's reason, e.g. "leak: 3
  // fragment(s)", or "not sealed: ..."), or "clean" when released.
  std::string reason;
  ScanReport report;    // the scan (findings carry no key bytes)
  Judgement judgement;  // JudgeReport(report); clean when not judged
  uint64_t judged_size = 0;
  uint64_t released_size = 0;
};

class Gate {
 public:
  // `scanner` is borrowed and must outlive the gate; it may be null when
  // options.scanner is kLegacy (that scanner needs no key).
  Gate(const Scanner* scanner, GateOptions options);

  // Judges the dump at `path` and releases it if it is sealed and judged
  // clean (no leak, every recorded redaction applied). A refusal is an ok
  // StatusOr with released == false; a Status error means the gate could not
  // decide (unreadable file, full disk).
  StatusOr<GateDecision> Submit(const std::string& path) const;

  // The fixed gate's judgment of the open file `fd` without a release
  // (the fuzz target, and callers that release elsewhere): the same
  // checks, copy, seal, scan and verdict as Submit() in kFixed mode.
  // `name` is what the decision and messages call it. reason is "clean"
  // when Submit() would release it.
  StatusOr<GateDecision> JudgeFd(int fd, const std::string& name) const;

  const GateOptions& options() const { return options_; }

 private:
  StatusOr<GateDecision> SubmitFixed(const std::string& path) const;
  // Checks the headers of `in`, copies its data extents into a sealed memfd
  // (*copy_out, the caller closes it; -1 when none was made), and judges
  // that copy. reason is empty when clean.
  StatusOr<GateDecision> JudgeSealedCopy(int in, const std::string& path,
                                         int* copy_out) const;
  StatusOr<GateDecision> SubmitInPlace(const std::string& path) const;
  // The configured scanner over a file (the oracle's ScanFile, or the
  // legacy scanner's) and over bytes.
  StatusOr<ScanReport> ScanPath(const std::string& path) const;
  std::vector<Finding> ScanBytes(const uint8_t* data, size_t size) const;

  const Scanner* scanner_;
  GateOptions options_;
};

}  // namespace sigrace::crashdump

#endif  // SIGRACE_CRASHDUMP_EGRESS_GATE_H_
