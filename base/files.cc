#include "base/files.h"

#include <fcntl.h>
#include <stdio.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <set>
#include <vector>

#include "base/mutex.h"

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

std::string Basename(const std::string& path) {
  const size_t s = path.rfind('/');
  return s == std::string::npos ? path : path.substr(s + 1);
}

std::string NewRunId() {
  uint32_t v = 0;
  if (getrandom(&v, sizeof(v), 0) != static_cast<ssize_t>(sizeof(v))) {
    // No entropy source: the pid and the clock still tell runs apart.
    v = static_cast<uint32_t>(getpid()) * 2654435761u ^
        static_cast<uint32_t>(time(nullptr));
  }
  char buf[16];
  std::snprintf(buf, sizeof(buf), "%08x", v);
  return buf;
}

StatusOr<int> OpenDir(const std::string& path) {
  const int fd = open(path.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return ErrnoError("open directory " + path, errno);
  return fd;
}

StatusOr<int> CreateExclusiveAt(int dirfd, const std::string& name, int mode) {
  if (name.empty() || name.find('/') != std::string::npos) {
    return InvalidArgumentError("not a file name: " + name);
  }
  const int fd =
      openat(dirfd, name.c_str(),
             O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, mode);
  if (fd < 0) return ErrnoError("create " + name, errno);
  return fd;
}

Status CheckOutputDir(const std::string& dir) {
  struct stat st;
  if (stat(dir.c_str(), &st) != 0) {
    if (errno == ENOENT) return Status::Ok();
    return ErrnoError("stat " + dir, errno);
  }
  if (!S_ISDIR(st.st_mode)) {
    return InvalidArgumentError("output directory " + dir +
                                " is not a directory");
  }
  if ((st.st_mode & (S_IWGRP | S_IWOTH)) != 0 && (st.st_mode & S_ISVTX) == 0) {
    char mode[8];
    std::snprintf(mode, sizeof(mode), "%04o",
                  static_cast<unsigned>(st.st_mode & 07777));
    return InvalidArgumentError(
        "output directory " + dir + " (mode " + mode +
        ") is group- or world-writable without the sticky bit: others "
        "could replace the evidence; use a private directory or chmod +t");
  }
  return Status::Ok();
}

Status PrepareOutputDir(const std::string& dir) {
  std::string cur;
  for (size_t i = 0; i <= dir.size(); ++i) {
    if (i == dir.size() || (dir[i] == '/' && i > 0)) {
      cur = dir.substr(0, i);
      if (mkdir(cur.c_str(), 0700) != 0 && errno != EEXIST) {
        return ErrnoError("mkdir " + cur, errno);
      }
    }
  }
  return CheckOutputDir(dir);
}

namespace {

// Temporary files not yet committed or removed, by full path; `g_stopping`
// once the stop path has removed them.
Mutex g_pending_mu;
std::set<std::string>* g_pending GUARDED_BY(g_pending_mu) = nullptr;

std::set<std::string>& Pending() REQUIRES(g_pending_mu) {
  if (g_pending == nullptr) g_pending = new std::set<std::string>();
  return *g_pending;
}

}  // namespace

StatusOr<std::unique_ptr<PendingFile>> PendingFile::Create(
    const std::string& path, int mode) {
  auto p = std::unique_ptr<PendingFile>(new PendingFile());
  p->path_ = path;
  p->name_ = Basename(path);
  const std::string dir = Dirname(path);
  StatusOr<int> d = OpenDir(dir);
  if (!d.ok()) return d.status();
  p->dirfd_ = *d;
  MutexLock l(&g_pending_mu);
  // A random part: no name to plant a link at ahead of time; O_EXCL
  // refuses one planted anyway.
  for (int attempt = 0; attempt < 16; ++attempt) {
    p->tmp_name_ = "." + p->name_ + "." + NewRunId() + ".tmp";
    const int fd =
        openat(p->dirfd_, p->tmp_name_.c_str(),
               O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, mode);
    if (fd >= 0) {
      p->fd_ = fd;
      p->tmp_path_ = (dir == "/" ? "" : dir) + "/" + p->tmp_name_;
      Pending().insert(p->tmp_path_);
      return p;
    }
    if (errno != EEXIST) {
      return ErrnoError("create " + dir + "/" + p->tmp_name_, errno);
    }
  }
  return InternalError("create a temporary file in " + dir +
                       ": every name taken");
}

PendingFile::~PendingFile() {
  if (fd_ >= 0) close(fd_);
  if (!tmp_path_.empty()) {
    MutexLock l(&g_pending_mu);
    unlinkat(dirfd_, tmp_name_.c_str(), 0);
    Pending().erase(tmp_path_);
  }
  if (dirfd_ >= 0) close(dirfd_);
}

Status PendingFile::Commit(bool replace) {
  if (fsync(fd_) != 0) return ErrnoError("fsync " + tmp_path_, errno);
  const int rc = close(fd_);
  fd_ = -1;
  if (rc != 0) return ErrnoError("close " + tmp_path_, errno);
  MutexLock l(&g_pending_mu);
  const int r = renameat2(dirfd_, tmp_name_.c_str(), dirfd_, name_.c_str(),
                          replace ? 0 : RENAME_NOREPLACE);
  if (r != 0) return ErrnoError("rename to " + path_, errno);
  Pending().erase(tmp_path_);
  tmp_path_.clear();
  return Status::Ok();
}

Status WriteFileAtomic(const std::string& path, const std::string& text,
                       int mode, bool replace) {
  StatusOr<std::unique_ptr<PendingFile>> f = PendingFile::Create(path, mode);
  if (!f.ok()) return f.status();
  size_t done = 0;
  while (done < text.size()) {
    const ssize_t n = write((*f)->fd(), text.data() + done, text.size() - done);
    if (n < 0) {
      if (errno == EINTR) continue;
      return ErrnoError("write " + (*f)->temp_path(), errno);
    }
    done += static_cast<size_t>(n);
  }
  return (*f)->Commit(replace);
}

void RemovePendingFilesForExit() NO_THREAD_SAFETY_ANALYSIS {
  // Locked for good: no temporary file is created or committed after this.
  g_pending_mu.Lock();
  if (g_pending == nullptr) return;
  for (const std::string& p : *g_pending) unlink(p.c_str());
  g_pending->clear();
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
