// Status and StatusOr: the error currency across module boundaries.
//
// Functions that can fail return a Status (a code plus a one-line message)
// or a StatusOr<T>; no exception crosses a module boundary. The message is
// what a user sees after "sigrace: ", so it names the thing that was wrong.
// It never contains key bytes.
//
// Thread safety: values; a Status is safe to copy between threads.
// Not async-signal-safe (messages allocate).

#ifndef SIGRACE_BASE_STATUS_H_
#define SIGRACE_BASE_STATUS_H_

#include <cassert>
#include <optional>
#include <string>
#include <string_view>
#include <utility>

namespace sigrace {

enum class StatusCode {
  kOk = 0,
  kInvalidArgument,     // bad flag, malformed spec, wrong key type
  kNotFound,            // no such file, failpoint, variant
  kFailedPrecondition,  // called in the wrong state
  kDataLoss,            // truncated, unsealed or hostile dump
  kResourceExhausted,   // disk full, RLIMIT_FSIZE, table full
  kIoError,             // a syscall failed
  kUnavailable,         // a tool or feature absent on this machine
  kInternal,            // a broken invariant that did not abort
};

const char* StatusCodeName(StatusCode code);

class [[nodiscard]] Status {
 public:
  Status() = default;
  Status(StatusCode code, std::string message)
      : code_(code), message_(std::move(message)) {}

  static Status Ok() { return Status(); }

  bool ok() const { return code_ == StatusCode::kOk; }
  StatusCode code() const { return code_; }
  const std::string& message() const { return message_; }
  // "invalid-argument: message", or "ok".
  std::string ToString() const;

 private:
  StatusCode code_ = StatusCode::kOk;
  std::string message_;
};

inline Status InvalidArgumentError(std::string m) {
  return Status(StatusCode::kInvalidArgument, std::move(m));
}
inline Status NotFoundError(std::string m) {
  return Status(StatusCode::kNotFound, std::move(m));
}
inline Status FailedPreconditionError(std::string m) {
  return Status(StatusCode::kFailedPrecondition, std::move(m));
}
inline Status DataLossError(std::string m) {
  return Status(StatusCode::kDataLoss, std::move(m));
}
inline Status ResourceExhaustedError(std::string m) {
  return Status(StatusCode::kResourceExhausted, std::move(m));
}
inline Status IoError(std::string m) {
  return Status(StatusCode::kIoError, std::move(m));
}
inline Status UnavailableError(std::string m) {
  return Status(StatusCode::kUnavailable, std::move(m));
}
inline Status InternalError(std::string m) {
  return Status(StatusCode::kInternal, std::move(m));
}
// strerror(errno_value), thread-safe (strerror_r).
std::string ErrnoText(int errno_value);
// IoError with strerror(errno_value) appended: "open /x: No such file".
Status ErrnoError(std::string_view what, int errno_value);

template <typename T>
class [[nodiscard]] StatusOr {
 public:
  StatusOr(Status status) : status_(std::move(status)) {  // NOLINT
    assert(!status_.ok() && "StatusOr built from an ok Status");
    if (status_.ok()) status_ = InternalError("StatusOr from ok Status");
  }
  StatusOr(T value) : value_(std::move(value)) {}  // NOLINT

  bool ok() const { return status_.ok(); }
  const Status& status() const { return status_; }

  T& value() & {
    assert(ok());
    return *value_;
  }
  const T& value() const& {
    assert(ok());
    return *value_;
  }
  T&& value() && {
    assert(ok());
    return std::move(*value_);
  }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }

 private:
  Status status_;
  std::optional<T> value_;
};

}  // namespace sigrace

#define SIGRACE_RETURN_IF_ERROR(expr)                  \
  do {                                                 \
    ::sigrace::Status sigrace_status_ = (expr);        \
    if (!sigrace_status_.ok()) return sigrace_status_; \
  } while (0)

#endif  // SIGRACE_BASE_STATUS_H_
