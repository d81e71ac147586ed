// Reads /proc/self/smaps on the crash path: raw open/read into a caller
// buffer, a streaming line parser, results in a caller-owned fixed table.
// No allocation, no stdio.
//
// Thread safety: functions are reentrant; the table belongs to the caller.
// Everything here is safe to call from a signal handler.

#ifndef SIGRACE_CRASHDUMP_CAPTURE_PROC_MAPS_H_
#define SIGRACE_CRASHDUMP_CAPTURE_PROC_MAPS_H_

#include <cstddef>
#include <cstdint>

namespace sigrace::crashdump {

enum class ProcMappingSpecial : uint8_t {
  kNone = 0,
  kVdso,
  kVvar,
  kVsyscall,
  kStack,
  kHeap,
  kOther,  // any other "[name]"
};

struct ProcMapping {
  uint64_t start = 0;
  uint64_t end = 0;
  uint64_t offset = 0;  // file offset
  uint64_t inode = 0;
  uint64_t anonymous_kb = 0;  // smaps "Anonymous:"
  uint32_t path_off = 0;      // into ProcMapTable::pool
  uint16_t path_len = 0;      // 0: no path
  bool read = false, write = false, exec = false;
  bool shared = false;
  bool dontdump = false;  // VmFlags "dd" (MADV_DONTDUMP)
  bool io = false;        // VmFlags "io" or "pf": never read
  ProcMappingSpecial special = ProcMappingSpecial::kNone;
};

struct ProcMapTable {
  ProcMapping* maps = nullptr;
  size_t cap = 0;
  size_t count = 0;
  char* pool = nullptr;  // path bytes, not NUL-separated
  size_t pool_cap = 0;
  size_t pool_len = 0;
  bool truncated = false;  // more mappings (or paths) than fit
};

// Fills `table` from /proc/self/smaps using `buf` (at least 8 KiB) as the
// read buffer. Returns 0 or -errno.
// Safe to call from a signal handler.
long ReadSelfSmaps(ProcMapTable* table, char* buf, size_t buf_cap);

// Reads a whole small /proc file (auxv, cmdline, comm) into buf. Returns
// the byte count or -errno.
// Safe to call from a signal handler.
long ReadProcFile(const char* path, char* buf, size_t cap);

}  // namespace sigrace::crashdump

#endif  // SIGRACE_CRASHDUMP_CAPTURE_PROC_MAPS_H_
