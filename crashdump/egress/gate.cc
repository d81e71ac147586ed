#include "crashdump/egress/gate.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <string>
#include <utility>

#include "base/failpoint.h"
#include "crashdump/format/core_reader.h"
#include "crashdump/oracle/judgement.h"
#include "crashdump/oracle/legacy_scanner.h"

namespace sigrace::crashdump {
namespace {

// After the gate has taken the bytes it will judge, before judging them.
SIGRACE_FAILPOINT_DEFINE(kFpAfterSnapshot, "gate.after_snapshot");
// After the judgment, before the release: the egress window.
SIGRACE_FAILPOINT_DEFINE(kFpAfterJudge, "gate.after_judge");
// The scanner fails on this dump (an injected scanner error: the fixed
// gate refuses the dump, fail-open releases it).
SIGRACE_FAILPOINT_DEFINE(kFpScanError, "gate.scan_error");

// How far a file may run past the end its ELF headers declare before it is
// refused as not a dump. The writer ends the content at the last segment's
// last byte (or the page-aligned end of the notes when there is no
// segment), so anything but a few bytes is not the writer's.
constexpr uint64_t kShapeSlackBytes = uint64_t{64} << 10;

constexpr GateModeInfo kModes[] = {
    {GateMode::kFixed, "fixed",
     "no window: judged on a kernel-sealed copy, released from that copy"},
    {GateMode::kJudgeUnsealed, "judge-unsealed",
     "egress: a dump still being written is judged on its bytes so far and "
     "released complete"},
    {GateMode::kReopenToRelease, "reopen-to-release",
     "egress: the dump is judged in place, then its path is opened again to "
     "release whatever sits there"},
    {GateMode::kFailOpen, "fail-open",
     "egress: a scanner error (a torn dump, an unreadable file) releases the "
     "dump instead of refusing it"},
    {GateMode::kRenameRelease, "rename-release",
     "egress: the judged file is renamed into the release directory; a "
     "writer still holding it changes the released bytes"},
    {GateMode::kLinkRelease, "link-release",
     "egress: the judged file is hard-linked into the release directory; a "
     "writer still holding it changes the released bytes"},
};

// Closes an fd on scope exit.
class Fd {
 public:
  explicit Fd(int fd = -1) : fd_(fd) {}
  ~Fd() {
    if (fd_ >= 0) close(fd_);
  }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  int get() const { return fd_; }

 private:
  int fd_;
};

Status CopyAll(int from, int to, uint64_t* copied) {
  char buf[1 << 16];
  *copied = 0;
  for (;;) {
    const ssize_t n = read(from, buf, sizeof buf);
    if (n < 0) {
      if (errno == EINTR) continue;
      return ErrnoError("gate: read", errno);
    }
    if (n == 0) return Status::Ok();
    for (ssize_t done = 0; done < n;) {
      const ssize_t w = write(to, buf + done, static_cast<size_t>(n - done));
      if (w < 0) {
        if (errno == EINTR) continue;
        return ErrnoError("gate: write", errno);
      }
      done += w;
    }
    *copied += static_cast<uint64_t>(n);
  }
}

// Copies the bytes of `extents` (clipped to `size`) from `from` to `to`,
// which is first sized to `size`: what lies between extents stays a hole.
Status CopyExtents(int from, int to, uint64_t size,
                   const std::vector<FileExtent>& extents) {
  if (ftruncate(to, static_cast<off_t>(size)) != 0) {
    return ErrnoError("gate: size the judged copy", errno);
  }
  char buf[1 << 16];
  for (const FileExtent& e : extents) {
    if (e.offset >= size) continue;
    const uint64_t end = std::min(size, e.offset + e.length);
    for (uint64_t at = e.offset; at < end;) {
      const size_t want =
          static_cast<size_t>(std::min<uint64_t>(end - at, sizeof buf));
      const ssize_t n = pread(from, buf, want, static_cast<off_t>(at));
      if (n < 0) {
        if (errno == EINTR) continue;
        return ErrnoError("gate: read", errno);
      }
      // The file shrank: the rest of the copy stays zeros, and its seal
      // check refuses it.
      if (n == 0) return Status::Ok();
      for (ssize_t done = 0; done < n;) {
        const ssize_t w = pwrite(to, buf + done, static_cast<size_t>(n - done),
                                 static_cast<off_t>(at) + done);
        if (w < 0) {
          if (errno == EINTR) continue;
          return ErrnoError("gate: write", errno);
        }
        done += w;
      }
      at += static_cast<uint64_t>(n);
    }
  }
  return Status::Ok();
}

std::string BaseName(const std::string& path) {
  const size_t slash = path.rfind('/');
  return slash == std::string::npos ? path : path.substr(slash + 1);
}

// Writes everything readable from `from` to dir/name: 0600, temporary
// name, fsync, rename. No partial file is left under the final name.
StatusOr<uint64_t> Release(int from, const std::string& dir,
                           const std::string& name) {
  const std::string final_path = dir + "/" + name;
  const std::string tmp_path = final_path + ".releasing";
  Fd out(open(tmp_path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600));
  if (out.get() < 0) return ErrnoError("gate: create " + tmp_path, errno);
  uint64_t copied = 0;
  Status s = CopyAll(from, out.get(), &copied);
  if (s.ok() && fsync(out.get()) != 0) s = ErrnoError("gate: fsync", errno);
  if (s.ok() && rename(tmp_path.c_str(), final_path.c_str()) != 0) {
    s = ErrnoError("gate: rename " + tmp_path, errno);
  }
  if (!s.ok()) {
    unlink(tmp_path.c_str());
    return s;
  }
  return copied;
}

// Releases everything readable from `from` under the name of `path` and
// records it in *d as a clean release.
Status ReleaseInto(int from, const std::string& dir, const std::string& path,
                   GateDecision* d) {
  StatusOr<uint64_t> released = Release(from, dir, BaseName(path));
  if (!released.ok()) return released.status();
  d->released = true;
  d->released_size = *released;
  d->released_path = dir + "/" + BaseName(path);
  d->reason = "clean";
  return Status::Ok();
}

// The gate's checks from headers alone: an error (exit 2 at the command
// line) for a file that is not a sigrace dump of this format, or whose
// apparent size is far beyond what its ELF headers declare (a sparse file
// of any size, a real dump padded out); a refusal in *refusal for a dump
// whose seal trailer is missing or malformed (still being written, torn,
// or altered). Reads a few hundred bytes however large the file claims to
// be.
Status CheckShape(int fd, uint64_t size, std::string* refusal) {
  StatusOr<uint64_t> declared = DeclaredContentEnd(fd, size);
  if (!declared.ok()) {
    return DataLossError("not a sigrace dump: " + declared.status().message());
  }
  if (size > *declared && size - *declared > kShapeSlackBytes) {
    return DataLossError("not a sigrace dump: apparent size " +
                         std::to_string(size) +
                         " bytes, but its ELF headers declare " +
                         std::to_string(*declared) + " (refused unread)");
  }
  SealTrailer t{};
  if (size >= sizeof t) {
    for (size_t done = 0; done < sizeof t;) {
      const ssize_t n =
          pread(fd, reinterpret_cast<char*>(&t) + done, sizeof t - done,
                static_cast<off_t>(size - sizeof t + done));
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) return ErrnoError("gate: read the seal trailer", errno);
      if (n == 0) break;  // shrank: what was read is not a trailer
      done += static_cast<size_t>(n);
    }
  }
  const SealInfo seal = InspectSealTrailer(t, size);
  if (seal.state != SealState::kSealed) {
    *refusal = "not sealed: dump is not sealed: " + seal.reason;
  }
  return Status::Ok();
}

}  // namespace

std::vector<GateModeInfo> ListGateModes() {
  return std::vector<GateModeInfo>(std::begin(kModes), std::end(kModes));
}

StatusOr<GateMode> ParseGateMode(std::string_view name) {
  for (const GateModeInfo& m : kModes) {
    if (name == m.name) return m.mode;
  }
  return InvalidArgumentError(
      "unknown gate mode '" + std::string(name) +
      "' (fixed, judge-unsealed, reopen-to-release, fail-open, "
      "rename-release, link-release)");
}

const char* GateScannerName(GateScanner scanner) {
  return scanner == GateScanner::kLegacy ? "legacy" : "oracle";
}

StatusOr<GateScanner> ParseGateScanner(std::string_view name) {
  if (name == "oracle") return GateScanner::kOracle;
  if (name == "legacy") return GateScanner::kLegacy;
  return InvalidArgumentError("unknown scanner '" + std::string(name) +
                              "' (oracle, legacy)");
}

StatusOr<ScanReport> Gate::ScanPath(const std::string& path) const {
  if (SIGRACE_FAILPOINT(kFpScanError)) {
    return InternalError("gate: scanner error (failpoint gate.scan_error)");
  }
  if (options_.scanner == GateScanner::kLegacy) return LegacyScanFile(path);
  return scanner_->ScanFile(path);
}

std::vector<Finding> Gate::ScanBytes(const uint8_t* data, size_t size) const {
  if (options_.scanner == GateScanner::kOracle) {
    return scanner_->Scan(data, size);
  }
  std::vector<Finding> out;
  for (const LegacyFinding& lf : LegacyScan(data, size)) {
    Finding f;
    f.kind = FindingKind::kLeak;
    f.file_offset = lf.offset;
    f.length = lf.length;
    f.form = lf.shape;
    out.push_back(std::move(f));
  }
  return out;
}

Gate::Gate(const Scanner* scanner, GateOptions options)
    : scanner_(scanner), options_(std::move(options)) {}

StatusOr<GateDecision> Gate::Submit(const std::string& path) const {
  if (scanner_ == nullptr && options_.scanner == GateScanner::kOracle) {
    return FailedPreconditionError("gate: no scanner");
  }
  struct stat st;
  if (stat(options_.release_dir.c_str(), &st) != 0 || !S_ISDIR(st.st_mode)) {
    return InvalidArgumentError("gate: release directory '" +
                                options_.release_dir + "' does not exist");
  }
  if (options_.mode == GateMode::kFixed) return SubmitFixed(path);
  return SubmitInPlace(path);
}

StatusOr<GateDecision> Gate::SubmitFixed(const std::string& path) const {
  // O_NONBLOCK: a FIFO without a writer is refused below, not waited on.
  Fd in(open(path.c_str(), O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC));
  if (in.get() < 0) return ErrnoError("gate: open " + path, errno);
  int copy = -1;
  StatusOr<GateDecision> d = JudgeSealedCopy(in.get(), path, &copy);
  Fd owned(copy);
  if (!d.ok() || !d->judgement.clean() || !d->reason.empty()) return d;
  if (lseek(copy, 0, SEEK_SET) != 0) {
    return ErrnoError("gate: rewind the judged copy", errno);
  }
  SIGRACE_RETURN_IF_ERROR(ReleaseInto(copy, options_.release_dir, path, &*d));
  return d;
}

StatusOr<GateDecision> Gate::JudgeFd(int fd, const std::string& name) const {
  if (scanner_ == nullptr && options_.scanner == GateScanner::kOracle) {
    return FailedPreconditionError("gate: no scanner");
  }
  int copy = -1;
  StatusOr<GateDecision> d = JudgeSealedCopy(fd, name, &copy);
  Fd owned(copy);
  if (d.ok() && d->reason.empty()) d->reason = "clean";
  return d;
}

StatusOr<GateDecision> Gate::JudgeSealedCopy(int in, const std::string& path,
                                             int* copy_out) const {
  struct stat st;
  if (fstat(in, &st) != 0) return ErrnoError("gate: fstat", errno);
  if (!S_ISREG(st.st_mode)) {
    return InvalidArgumentError("gate: " + path + " is not a regular file");
  }
  const uint64_t size = static_cast<uint64_t>(st.st_size);
  GateDecision d;
  d.judged_size = size;
  // Headers first, before a byte of content is copied: what is not a dump
  // of this format, or is far larger than its headers account for, is
  // refused unread.
  std::string refusal;
  SIGRACE_RETURN_IF_ERROR(CheckShape(in, size, &refusal));
  if (!refusal.empty()) {
    d.reason = refusal;
    return d;
  }
  StatusOr<std::vector<FileExtent>> extents = DataExtents(in, size);
  if (!extents.ok()) return extents.status();
  uint64_t data_bytes = 0;
  for (const FileExtent& e : *extents) data_bytes += e.length;
  if (data_bytes > options_.max_data_bytes) {
    return InvalidArgumentError(
        std::to_string(data_bytes) +
        " bytes of data, more than the gate's limit of " +
        std::to_string(options_.max_data_bytes));
  }
  // The judged copy: once sealed, no one (this process included) can
  // change, grow or shrink it, so judgment and release see the same bytes.
  // Only the data extents are copied; the holes stay holes in the memfd
  // and take no memory.
  const int copy =
      memfd_create("sigrace-gate", MFD_CLOEXEC | MFD_ALLOW_SEALING);
  if (copy < 0) return ErrnoError("gate: memfd_create", errno);
  *copy_out = copy;
  SIGRACE_RETURN_IF_ERROR(CopyExtents(in, copy, size, *extents));
  if (fcntl(copy, F_ADD_SEALS,
            F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE | F_SEAL_SEAL) != 0) {
    return ErrnoError("gate: seal the judged copy", errno);
  }
  SIGRACE_FAILPOINT(kFpAfterSnapshot);

  // The same checks again on the sealed copy, which cannot change: the
  // checks above were on a file that still could.
  refusal.clear();
  SIGRACE_RETURN_IF_ERROR(CheckShape(copy, size, &refusal));
  if (!refusal.empty()) {
    d.reason = refusal;
    return d;
  }
  const std::string copy_path = "/proc/self/fd/" + std::to_string(copy);
  // A dump without a valid sigrace seal is not complete: refuse it.
  ReaderOptions ro;
  ro.require_seal = true;
  StatusOr<std::unique_ptr<CoreReader>> reader =
      CoreReader::Open(copy_path, ro);
  if (!reader.ok()) {
    d.reason = "not sealed: " + reader.status().message();
    return d;
  }
  reader->reset();  // the scan below reads the copy itself
  StatusOr<ScanReport> report = ScanPath(copy_path);
  if (!report.ok()) return report.status();
  d.report = std::move(*report);
  d.report.path = path;
  SIGRACE_FAILPOINT(kFpAfterJudge);
  d.judgement = JudgeReport(d.report);
  if (!d.judgement.clean()) d.reason = d.judgement.reason;
  return d;
}

StatusOr<GateDecision> Gate::SubmitInPlace(const std::string& path) const {
  GateDecision d;
  struct stat st;
  if (stat(path.c_str(), &st) != 0) {
    return ErrnoError("gate: stat " + path, errno);
  }
  d.judged_size = static_cast<uint64_t>(st.st_size);
  if (options_.mode == GateMode::kJudgeUnsealed) {
    // WINDOW (judge-unsealed): no seal check; the bytes present now are
    // judged as raw bytes even if the writer has not finished.
    Fd in(open(path.c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC));
    if (in.get() < 0) return ErrnoError("gate: open " + path, errno);
    if (fstat(in.get(), &st) != 0) return ErrnoError("gate: fstat", errno);
    if (!S_ISREG(st.st_mode)) {
      return InvalidArgumentError("gate: " + path + " is not a regular file");
    }
    const size_t size = static_cast<size_t>(st.st_size);
    std::vector<Finding> findings;
    if (size > 0) {
      // A copy, not a mapping: a file that shrinks meanwhile is an error,
      // not SIGBUS.
      StatusOr<uint8_t*> image = ReadFileImage(in.get(), size, nullptr);
      if (!image.ok()) {
        return DataLossError("gate: " + path + ": " + image.status().message());
      }
      findings = ScanBytes(*image, size);
      munmap(*image, size);
    }
    d.report.path = path;
    d.report.file_size = size;
    for (Finding& f : findings) {
      if (f.kind == FindingKind::kLeak) ++d.report.leaks;
      d.report.findings.push_back(std::move(f));
    }
  } else {
    StatusOr<ScanReport> report = ScanPath(path);
    if (!report.ok()) {
      if (options_.mode != GateMode::kFailOpen) {
        d.reason = "not judged: " + report.status().message();
        return d;
      }
      // WINDOW (fail-open): the scanner could not judge the dump (here: a
      // dump still being written has no seal, and the scan refuses it), and
      // the gate lets it through as if clean.
      d.report.path = path;
    } else {
      d.report = std::move(*report);
    }
  }
  SIGRACE_FAILPOINT(kFpAfterJudge);
  d.judgement = JudgeReport(d.report);
  if (!d.judgement.clean()) {
    d.reason = d.judgement.reason;
    return d;
  }
  if (options_.mode == GateMode::kRenameRelease ||
      options_.mode == GateMode::kLinkRelease) {
    // WINDOW (rename-release, link-release): the judged inode itself
    // leaves; whoever holds it open (the writer) still changes its bytes.
    const std::string to = options_.release_dir + "/" + BaseName(path);
    const bool renamed = options_.mode == GateMode::kRenameRelease;
    if ((renamed ? rename(path.c_str(), to.c_str())
                 : link(path.c_str(), to.c_str())) != 0) {
      return ErrnoError(
          std::string("gate: ") + (renamed ? "rename " : "link ") + path,
          errno);
    }
    struct stat out;
    if (stat(to.c_str(), &out) != 0)
      return ErrnoError("gate: stat " + to, errno);
    d.released = true;
    d.released_path = to;
    d.released_size = static_cast<uint64_t>(out.st_size);
    d.reason = "clean";
    return d;
  }
  // WINDOW (judge-unsealed, reopen-to-release, fail-open): the release
  // opens the path again, so the bytes that leave are whatever is there
  // now, not what was judged.
  Fd again(open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (again.get() < 0) return ErrnoError("gate: reopen " + path, errno);
  SIGRACE_RETURN_IF_ERROR(
      ReleaseInto(again.get(), options_.release_dir, path, &d));
  return d;
}

}  // namespace sigrace::crashdump
