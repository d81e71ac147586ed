// Small file helpers shared by the driver, the tools and the tests.
//
// Thread safety: each function is safe to call from any thread (no shared
// state). Not async-signal-safe.

#ifndef SIGRACE_BASE_FILES_H_
#define SIGRACE_BASE_FILES_H_

#include <string>

#include "base/status.h"

namespace sigrace {

// The path of this executable (readlink /proc/self/exe), or "" if it
// cannot be read.
std::string SelfExe();

// The directory part of `path` ("." when it has none).
std::string Dirname(const std::string& path);

// Writes `text` to `path` through a temporary name created exclusively
// (no symlink followed), fsync and rename; `mode` 0644 (reports) or 0600
// (dumps, sidecars).
Status WriteFileAtomic(const std::string& path, const std::string& text,
                       int mode = 0644);

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
