// Tests for `sigrace token`: bad flags are a one-line error and exit 2.

#include "tools/token.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace sigrace::signer {
namespace {

// --- sigrace token --------------------------------------------------------

int RunToken(std::vector<std::string> args) {
  args.insert(args.begin(), "sigrace token");
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  return TokenMain(static_cast<int>(args.size()), argv.data());
}

TEST(TokenMain, BadFlagsExitTwo) {
  EXPECT_EQ(RunToken({}), 2);
  EXPECT_EQ(RunToken({"--alg", "es512"}), 2);
  EXPECT_EQ(RunToken({"--alg", "eddsa", "--variant", "nope"}), 2);
  EXPECT_EQ(RunToken({"--alg", "eddsa", "--claims", "{"}), 2);
  EXPECT_EQ(RunToken({"--alg", "eddsa", "--claims", "{\"iat\":1}"}), 2);
  EXPECT_EQ(RunToken({"--bogus"}), 2);
  EXPECT_EQ(RunToken({"--alg"}), 2);
  EXPECT_EQ(RunToken({"--alg", "eddsa", "extra"}), 2);
}

}  // namespace
}  // namespace sigrace::signer
