// Hex formatting of integers for reports and error messages ("0x1f").
//
// Thread safety: a pure function. Not async-signal-safe (it allocates);
// the crash path has its own formatter (crashdump/capture/signal_safe.h).

#ifndef SIGRACE_BASE_HEX_H_
#define SIGRACE_BASE_HEX_H_

#include <cstdint>
#include <cstdio>
#include <string>

namespace sigrace {

// "0x" and the lowercase hex digits of `v`, no leading zeros ("0x0").
inline std::string Hex(uint64_t v) {
  char buf[24];
  std::snprintf(buf, sizeof(buf), "0x%llx", static_cast<unsigned long long>(v));
  return buf;
}

}  // namespace sigrace

#endif  // SIGRACE_BASE_HEX_H_
