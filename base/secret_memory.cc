#include "base/secret_memory.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace sigrace {
namespace {

size_t PageRound(size_t bytes) {
  const size_t page = static_cast<size_t>(sysconf(_SC_PAGESIZE));
  if (bytes == 0) return page;
  return (bytes + page - 1) / page * page;
}

}  // namespace

void* AllocateSecretPages(size_t bytes) {
  const size_t len = PageRound(bytes);
  void* p = ::mmap(nullptr, len, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED) return nullptr;
  if (::madvise(p, len, MADV_DONTDUMP) != 0) {
    ::munmap(p, len);
    return nullptr;
  }
  // Best effort: RLIMIT_MEMLOCK may be small; the pages stay out of dumps
  // either way.
  (void)::mlock(p, len);
  return p;
}

void FreeSecretPages(void* p, size_t bytes) {
  if (p == nullptr) return;
  const size_t len = PageRound(bytes);
  explicit_bzero(p, len);
  (void)::munlock(p, len);
  ::munmap(p, len);
}

Status MakeProcessUndumpable() {
  if (::prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) != 0) {
    return ErrnoError("prctl(PR_SET_DUMPABLE, 0)", errno);
  }
  struct rlimit rl;
  if (::getrlimit(RLIMIT_CORE, &rl) != 0) {
    return ErrnoError("getrlimit(RLIMIT_CORE)", errno);
  }
  rl.rlim_cur = 0;
  if (::setrlimit(RLIMIT_CORE, &rl) != 0) {
    return ErrnoError("setrlimit(RLIMIT_CORE, 0)", errno);
  }
  const int fd = ::open("/proc/self/coredump_filter", O_WRONLY | O_CLOEXEC);
  if (fd < 0) {
    if (errno == ENOENT) return Status::Ok();
    return ErrnoError("open /proc/self/coredump_filter", errno);
  }
  const ssize_t n = ::write(fd, "0\n", 2);
  const int e = errno;
  ::close(fd);
  if (n != 2) return ErrnoError("write /proc/self/coredump_filter", e);
  return Status::Ok();
}

}  // namespace sigrace
