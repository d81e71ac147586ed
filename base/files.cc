#include "base/files.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <vector>

namespace sigrace {

std::string SelfExe() {
  char buf[4096];
  const ssize_t n = readlink("/proc/self/exe", buf, sizeof(buf) - 1);
  if (n <= 0) return {};
  buf[n] = '\0';
  return buf;
}

std::string Dirname(const std::string& path) {
  const size_t s = path.rfind('/');
  if (s == std::string::npos) return ".";
  return s == 0 ? "/" : path.substr(0, s);
}

Status WriteFileAtomic(const std::string& path, const std::string& text,
                       int mode) {
  const std::string tmp = path + ".tmp." + std::to_string(getpid());
  // A leftover of an earlier process with this pid; O_EXCL below refuses
  // anything (a symlink included) that appears in between.
  unlink(tmp.c_str());
  const int fd = open(
      tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, mode);
  if (fd < 0) return ErrnoError("open " + tmp, errno);
  size_t done = 0;
  while (done < text.size()) {
    const ssize_t n = write(fd, text.data() + done, text.size() - done);
    if (n < 0) {
      if (errno == EINTR) continue;
      const int e = errno;
      close(fd);
      unlink(tmp.c_str());
      return ErrnoError("write " + tmp, e);
    }
    done += static_cast<size_t>(n);
  }
  if (fsync(fd) != 0 || close(fd) != 0) {
    const int e = errno;
    unlink(tmp.c_str());
    return ErrnoError("close " + tmp, e);
  }
  if (rename(tmp.c_str(), path.c_str()) != 0) {
    const int e = errno;
    unlink(tmp.c_str());
    return ErrnoError("rename " + path, e);
  }
  return Status::Ok();
}

StatusOr<int> OpenRegularFile(const std::string& path) {
  // O_NONBLOCK: opening a FIFO without a writer would block; the type is
  // checked before anything is read.
  const int fd = open(path.c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC);
  if (fd < 0) {
    if (errno == ENOENT) return NotFoundError(path + ": no such file");
    return ErrnoError("open " + path, errno);
  }
  struct stat st;
  if (fstat(fd, &st) != 0) {
    const int e = errno;
    close(fd);
    return ErrnoError("fstat " + path, e);
  }
  if (!S_ISREG(st.st_mode)) {
    close(fd);
    return InvalidArgumentError(path + ": not a regular file");
  }
  // Reads of a regular file do not block anyway; clear it for clarity.
  const int flags = fcntl(fd, F_GETFL);
  if (flags >= 0) (void)fcntl(fd, F_SETFL, flags & ~O_NONBLOCK);
  return fd;
}

StatusOr<std::string> ReadFile(const std::string& path) {
  StatusOr<int> opened = OpenRegularFile(path);
  if (!opened.ok()) return opened.status();
  const int fd = *opened;
  std::string out;
  std::vector<char> buf(1 << 16);
  while (true) {
    const ssize_t n = read(fd, buf.data(), buf.size());
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      const int e = errno;
      close(fd);
      return ErrnoError("read " + path, e);
    }
    if (n == 0) break;
    out.append(buf.data(), static_cast<size_t>(n));
  }
  close(fd);
  return out;
}

std::string LastLines(const std::string& path, int n) {
  StatusOr<std::string> text = ReadFile(path);
  if (!text.ok() || text->empty() || n <= 0) return "";
  const std::string& s = *text;
  // Start of the n-th line from the end (a missing final '\n' is added).
  size_t end = s.size();
  if (end > 0 && s[end - 1] == '\n') --end;
  size_t start = end;
  for (int seen = 0; start > 0; --start) {
    if (s[start - 1] == '\n' && ++seen == n) break;
  }
  return s.substr(start, end - start) + "\n";
}

}  // namespace sigrace
