#include "base/status.h"

#include <cstring>

namespace sigrace {

const char* StatusCodeName(StatusCode code) {
  switch (code) {
    case StatusCode::kOk:
      return "ok";
    case StatusCode::kInvalidArgument:
      return "invalid-argument";
    case StatusCode::kNotFound:
      return "not-found";
    case StatusCode::kFailedPrecondition:
      return "failed-precondition";
    case StatusCode::kDataLoss:
      return "data-loss";
    case StatusCode::kResourceExhausted:
      return "resource-exhausted";
    case StatusCode::kIoError:
      return "io-error";
    case StatusCode::kUnavailable:
      return "unavailable";
    case StatusCode::kInternal:
      return "internal";
  }
  return "unknown";
}

std::string Status::ToString() const {
  if (ok()) return "ok";
  return std::string(StatusCodeName(code_)) + ": " + message_;
}

std::string ErrnoText(int errno_value) {
  char buf[128];
  // GNU strerror_r returns the message pointer, which may not be buf.
  return strerror_r(errno_value, buf, sizeof buf);
}

Status ErrnoError(std::string_view what, int errno_value) {
  return IoError(std::string(what) + ": " + ErrnoText(errno_value));
}

}  // namespace sigrace
