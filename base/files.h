// Small file helpers shared by the driver, the tools and the tests.
//
// Every file the harness creates goes through CreateExclusiveAt (directly
// or through PendingFile / WriteFileAtomic): relative to a directory fd,
// O_CREAT|O_EXCL|O_NOFOLLOW, so nothing planted at its name (a symlink, a
// file) is ever followed or reused. Temporary names carry a random part.
//
// Thread safety: each function is safe to call from any thread; the set
// of pending temporary files is guarded by a mutex. Not async-signal-safe.

#ifndef SIGRACE_BASE_FILES_H_
#define SIGRACE_BASE_FILES_H_

#include <memory>
#include <string>

#include "base/status.h"

namespace sigrace {

// The path of this executable (readlink /proc/self/exe), or "" if it
// cannot be read.
std::string SelfExe();

// The directory part of `path` ("." when it has none).
std::string Dirname(const std::string& path);

// The last component of `path` (after the last '/').
std::string Basename(const std::string& path);

// A short random id (8 hex digits, getrandom) that names one run's files
// and tells two runs sharing an output directory apart.
std::string NewRunId();

// Opens the directory `path` (O_RDONLY|O_DIRECTORY|O_CLOEXEC). The caller
// closes the fd.
StatusOr<int> OpenDir(const std::string& path);

// Creates `name` in the directory `dirfd` for writing, exclusively:
// O_CREAT|O_EXCL|O_NOFOLLOW|O_CLOEXEC, so an existing file or a symlink at
// that name is an error (EEXIST), never opened or followed. `name` must
// not contain '/'. The caller closes the fd.
StatusOr<int> CreateExclusiveAt(int dirfd, const std::string& name, int mode);

// Refuses an output directory others can plant files in: a group- or
// world-writable directory without the sticky bit (InvalidArgument with
// the reason), or a path that is not a directory. Ok if it does not exist
// (yet).
Status CheckOutputDir(const std::string& dir);

// Creates `dir` and its parents (0700) if missing, then CheckOutputDir.
Status PrepareOutputDir(const std::string& dir);

// A file written under a temporary name in its final directory
// (".NAME.RANDOM.tmp", created with CreateExclusiveAt) and published by
// Commit: fsync, then rename to `path`. Until then the temporary name is
// listed as pending: RemovePendingFilesForExit() removes it on SIGINT or
// SIGTERM. Destroyed uncommitted, it is removed.
class PendingFile {
 public:
  static StatusOr<std::unique_ptr<PendingFile>> Create(const std::string& path,
                                                       int mode);
  ~PendingFile();
  PendingFile(const PendingFile&) = delete;
  PendingFile& operator=(const PendingFile&) = delete;

  int fd() const { return fd_; }
  const std::string& temp_path() const { return tmp_path_; }
  // fsync, close, rename to the final path. `replace` false: fails with
  // EEXIST instead of replacing a file already there (RENAME_NOREPLACE).
  Status Commit(bool replace);

 private:
  PendingFile() = default;
  int dirfd_ = -1, fd_ = -1;
  std::string path_, name_, tmp_name_, tmp_path_;
};

// Writes `text` to `path` through a PendingFile (exclusive temporary
// name, no symlink followed), fsync and rename; `mode` 0644 (reports) or
// 0600 (dumps, sidecars). `replace` false: an existing `path` is an error.
Status WriteFileAtomic(const std::string& path, const std::string& text,
                       int mode = 0644, bool replace = true);

// The stop path (base/process.h InstallStopHandler): removes every pending
// temporary file and keeps any new one from being created or committed
// (the caller ends the process next).
void RemovePendingFilesForExit();

// Opens `path` read-only without blocking on a FIFO or a device, then
// refuses anything but a regular file (InvalidArgument "PATH: not a
// regular file"); NotFound if it does not exist. The caller closes the fd.
StatusOr<int> OpenRegularFile(const std::string& path);

// The whole file at `path` (OpenRegularFile: a FIFO, device or directory
// is refused, never waited on); NotFound if it does not exist.
StatusOr<std::string> ReadFile(const std::string& path);

// The last `n` lines of the file at `path`, each ending in '\n' ("" if the
// file cannot be read).
std::string LastLines(const std::string& path, int n);

}  // namespace sigrace

#endif  // SIGRACE_BASE_FILES_H_
