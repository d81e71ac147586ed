#include "tools/common.h"

#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstdlib>

#include "base/failpoint.h"
#include "base/secret_memory.h"
#include "base/status.h"

namespace sigrace::tools {

bool HoldKeysUndumpable(const char* command) {
  const Status st = MakeProcessUndumpable();
  if (st.ok()) return true;
  std::fprintf(stderr, "sigrace: %s: %s\n", command,
               Printable(st.message()).c_str());
  return false;
}

bool ConfigureFailpointsFromEnv(const char* command) {
  const Status st = failpoint::ConfigureFromEnv();
  if (st.ok()) return true;
  std::fprintf(stderr, "sigrace: %s: %s\n", command,
               Printable(st.message()).c_str());
  return false;
}

std::string Printable(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (unsigned char c : s) {
    if (c == '\\') {
      out += "\\\\";
    } else if (c >= 0x20 && c < 0x7f) {
      out += static_cast<char>(c);
    } else {
      char buf[8];
      std::snprintf(buf, sizeof(buf), "\\x%02x", c);
      out += buf;
    }
  }
  return out;
}

namespace {

std::string RangeText(uint64_t lo, uint64_t hi) {
  return "[" + std::to_string(lo) + ", " + std::to_string(hi) + "]";
}

std::string RealText(double v) {
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%g", v);
  return buf;
}

}  // namespace

CLI::Validator UintIn(uint64_t lo, uint64_t hi) {
  const std::string range = RangeText(lo, hi);
  return CLI::Validator(
      [lo, hi, range](std::string& in) -> std::string {
        const std::string bad =
            Printable(in) + " is not an integer in " + range;
        if (in.empty() || in.size() > 20) return bad;
        uint64_t v = 0;
        for (char c : in) {
          if (c < '0' || c > '9') return bad;
          const uint64_t d = static_cast<uint64_t>(c - '0');
          if (v > (UINT64_MAX - d) / 10) return bad;  // overflow
          v = v * 10 + d;
        }
        if (v < lo || v > hi) return bad;
        // What CLI11 converts next: the same value, without a leading zero
        // it would read as octal.
        in = std::to_string(v);
        return std::string();
      },
      "INT in " + range);
}

CLI::Validator RealIn(double lo, double hi) {
  const std::string range = "[" + RealText(lo) + ", " + RealText(hi) + "]";
  return CLI::Validator(
      [lo, hi, range](std::string& in) -> std::string {
        const std::string bad = Printable(in) + " is not a number in " + range;
        if (in.empty() || in.size() > 64) return bad;
        for (char c : in) {
          // Decimal notation only: no "nan", "inf", "0x1p3".
          if (!((c >= '0' && c <= '9') || c == '.' || c == '-' || c == '+' ||
                c == 'e' || c == 'E')) {
            return bad;
          }
        }
        errno = 0;
        char* end = nullptr;
        const double v = std::strtod(in.c_str(), &end);
        if (end != in.c_str() + in.size() || errno == ERANGE ||
            !std::isfinite(v) || v < lo || v > hi) {
          return bad;
        }
        return std::string();
      },
      "NUMBER in " + range);
}

}  // namespace sigrace::tools
