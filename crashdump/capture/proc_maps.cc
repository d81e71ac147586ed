#include "crashdump/capture/proc_maps.h"

#include <fcntl.h>
#include <sys/syscall.h>

#include "crashdump/capture/signal_safe.h"

namespace sigrace::crashdump {
namespace {

using ss::RawSyscall6;

bool IsHex(char c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'); }

uint64_t ParseHex(const char*& p, const char* end) {
  uint64_t v = 0;
  while (p < end && IsHex(*p)) {
    v = v * 16 + static_cast<uint64_t>(*p <= '9' ? *p - '0' : *p - 'a' + 10);
    ++p;
  }
  return v;
}

uint64_t ParseDec(const char*& p, const char* end) {
  uint64_t v = 0;
  while (p < end && *p >= '0' && *p <= '9') {
    v = v * 10 + static_cast<uint64_t>(*p - '0');
    ++p;
  }
  return v;
}

void SkipSpaces(const char*& p, const char* end) {
  while (p < end && (*p == ' ' || *p == '\t')) ++p;
}

bool StartsWith(const char* p, const char* end, const char* lit) {
  while (*lit != '\0') {
    if (p >= end || *p != *lit) return false;
    ++p;
    ++lit;
  }
  return true;
}

bool Equals(const char* p, size_t n, const char* lit) {
  size_t i = 0;
  for (; i < n; ++i) {
    if (lit[i] == '\0' || lit[i] != p[i]) return false;
  }
  return lit[i] == '\0';
}

// A header line: "start-end perms offset dev inode   path".
void ParseHeader(ProcMapTable* t, const char* p, const char* end) {
  if (t->count >= t->cap) {
    t->truncated = true;
    return;
  }
  ProcMapping m;
  m.start = ParseHex(p, end);
  if (p < end && *p == '-') ++p;
  m.end = ParseHex(p, end);
  SkipSpaces(p, end);
  if (end - p >= 4) {
    m.read = p[0] == 'r';
    m.write = p[1] == 'w';
    m.exec = p[2] == 'x';
    m.shared = p[3] == 's';
    p += 4;
  }
  SkipSpaces(p, end);
  m.offset = ParseHex(p, end);
  SkipSpaces(p, end);
  while (p < end && *p != ' ') ++p;  // dev
  SkipSpaces(p, end);
  m.inode = ParseDec(p, end);
  SkipSpaces(p, end);
  const size_t len = static_cast<size_t>(end - p);
  if (len > 0) {
    if (*p == '[') {
      if (Equals(p, len, "[vdso]")) {
        m.special = ProcMappingSpecial::kVdso;
      } else if (Equals(p, len, "[vvar]")) {
        m.special = ProcMappingSpecial::kVvar;
      } else if (Equals(p, len, "[vsyscall]")) {
        m.special = ProcMappingSpecial::kVsyscall;
      } else if (Equals(p, len, "[stack]")) {
        m.special = ProcMappingSpecial::kStack;
      } else if (Equals(p, len, "[heap]")) {
        m.special = ProcMappingSpecial::kHeap;
      } else {
        m.special = ProcMappingSpecial::kOther;
      }
    }
    if (len <= 0xffff && t->pool_len + len <= t->pool_cap) {
      for (size_t i = 0; i < len; ++i) t->pool[t->pool_len + i] = p[i];
      m.path_off = static_cast<uint32_t>(t->pool_len);
      m.path_len = static_cast<uint16_t>(len);
      t->pool_len += len;
    } else {
      t->truncated = true;
    }
  }
  t->maps[t->count++] = m;
}

void ParseKey(ProcMapTable* t, const char* p, const char* end) {
  if (t->count == 0) return;
  ProcMapping& m = t->maps[t->count - 1];
  if (StartsWith(p, end, "Anonymous:")) {
    p += 10;
    SkipSpaces(p, end);
    m.anonymous_kb = ParseDec(p, end);
  } else if (StartsWith(p, end, "VmFlags:")) {
    p += 8;
    while (p < end) {
      SkipSpaces(p, end);
      if (end - p >= 2) {
        if (p[0] == 'd' && p[1] == 'd') m.dontdump = true;
        if ((p[0] == 'i' && p[1] == 'o') || (p[0] == 'p' && p[1] == 'f')) {
          m.io = true;
        }
      }
      while (p < end && *p != ' ') ++p;
    }
  }
}

void ParseLine(ProcMapTable* t, const char* p, const char* end) {
  if (p == end) return;
  if (IsHex(*p)) {
    ParseHeader(t, p, end);
  } else {
    ParseKey(t, p, end);
  }
}

}  // namespace

long ReadSelfSmaps(ProcMapTable* t, char* buf, size_t cap) {
  t->count = 0;
  t->pool_len = 0;
  t->truncated = false;
  const long fd =
      RawSyscall6(SYS_open, reinterpret_cast<long>("/proc/self/smaps"),
                  O_RDONLY | O_CLOEXEC);
  if (fd < 0) return fd;
  size_t have = 0;
  long result = 0;
  for (;;) {
    if (have == cap) {
      // A line longer than the buffer: drop it (paths are < PATH_MAX and
      // the buffer is larger, so this is only hostile input).
      have = 0;
    }
    const long r = RawSyscall6(SYS_read, fd, reinterpret_cast<long>(buf + have),
                               static_cast<long>(cap - have));
    if (r == -4 /*EINTR*/) continue;
    if (r < 0) {
      result = r;
      break;
    }
    if (r == 0) {
      if (have > 0) ParseLine(t, buf, buf + have);
      break;
    }
    have += static_cast<size_t>(r);
    size_t start = 0;
    for (size_t i = 0; i < have; ++i) {
      if (buf[i] == '\n') {
        ParseLine(t, buf + start, buf + i);
        start = i + 1;
      }
    }
    for (size_t i = start; i < have; ++i) buf[i - start] = buf[i];
    have -= start;
  }
  RawSyscall6(SYS_close, fd);
  return result;
}

long ReadProcFile(const char* path, char* buf, size_t cap) {
  const long fd =
      RawSyscall6(SYS_open, reinterpret_cast<long>(path), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return fd;
  size_t have = 0;
  while (have < cap) {
    const long r = RawSyscall6(SYS_read, fd, reinterpret_cast<long>(buf + have),
                               static_cast<long>(cap - have));
    if (r == -4) continue;
    if (r <= 0) break;
    have += static_cast<size_t>(r);
  }
  RawSyscall6(SYS_close, fd);
  return static_cast<long>(have);
}

}  // namespace sigrace::crashdump
