#include "base/status.h"

#include <gtest/gtest.h>

#include <cerrno>

namespace sigrace {
namespace {

TEST(Status, OkByDefault) {
  Status s;
  EXPECT_TRUE(s.ok());
  EXPECT_EQ(s.ToString(), "ok");
}

TEST(Status, CarriesCodeAndMessage) {
  Status s = DataLossError("dump.core: truncated at offset 64");
  EXPECT_FALSE(s.ok());
  EXPECT_EQ(s.code(), StatusCode::kDataLoss);
  EXPECT_EQ(s.ToString(), "data-loss: dump.core: truncated at offset 64");
}

TEST(Status, ErrnoErrorNamesTheCause) {
  Status s = ErrnoError("open /nonexistent", ENOENT);
  EXPECT_EQ(s.code(), StatusCode::kIoError);
  EXPECT_EQ(s.message(), "open /nonexistent: No such file or directory");
}

StatusOr<int> Half(int x) {
  if (x % 2 != 0) return InvalidArgumentError("odd");
  return x / 2;
}

Status UseHalf(int x, int* out) {
  StatusOr<int> h = Half(x);
  if (!h.ok()) return h.status();
  *out = *h;
  return Status::Ok();
}

TEST(StatusOr, ValueAndError) {
  int out = 0;
  EXPECT_TRUE(UseHalf(8, &out).ok());
  EXPECT_EQ(out, 4);
  Status s = UseHalf(7, &out);
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace sigrace
