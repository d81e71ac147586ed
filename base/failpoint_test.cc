#include "base/failpoint.h"

#include <gtest/gtest.h>
#include <signal.h>

#include <atomic>
#include <thread>
#include <vector>

namespace sigrace::failpoint {
namespace {

SIGRACE_FAILPOINT_DEFINE(kFpA, "test.a");
SIGRACE_FAILPOINT_DEFINE(kFpB, "test.b");
SIGRACE_FAILPOINT_DEFINE(kFpPause, "test.pause");

class FailpointTest : public ::testing::Test {
 protected:
  void TearDown() override { ClearAll(); }
};

// Evaluates kFpA n times and returns the 1-based evaluations that fired.
std::vector<int> FiredAt(int n) {
  std::vector<int> fired;
  for (int i = 1; i <= n; ++i) {
    if (SIGRACE_FAILPOINT(kFpA)) fired.push_back(i);
  }
  return fired;
}

TEST_F(FailpointTest, DisarmedNeverFires) {
  EXPECT_TRUE(FiredAt(10).empty());
  EXPECT_FALSE(kFpA.armed_.load());
}

TEST_F(FailpointTest, FiresAtChosenHitOnce) {
  ASSERT_TRUE(Configure("test.a=error@3").ok());
  EXPECT_EQ(FiredAt(10), (std::vector<int>{3}));
  EXPECT_EQ(Hits("test.a"), 10u);
  EXPECT_EQ(Fired("test.a"), 1u);
}

TEST_F(FailpointTest, HitAndCount) {
  ASSERT_TRUE(Configure("test.a=error@2*3").ok());
  EXPECT_EQ(FiredAt(10), (std::vector<int>{2, 3, 4}));
}

TEST_F(FailpointTest, EveryHitWithoutModifiers) {
  ASSERT_TRUE(Configure("test.a=error").ok());
  EXPECT_EQ(FiredAt(3), (std::vector<int>{1, 2, 3}));
}

TEST_F(FailpointTest, ProbabilityReplaysWithSeed) {
  SetSeed(42);
  ASSERT_TRUE(Configure("test.a=error%30").ok());
  const std::vector<int> first = FiredAt(200);
  SetSeed(42);
  ASSERT_TRUE(Configure("test.a=error%30").ok());
  const std::vector<int> second = FiredAt(200);
  EXPECT_EQ(first, second);
  // 30% of 200: a seeded draw, so this bound is fixed, not statistical.
  EXPECT_GT(first.size(), 20u);
  EXPECT_LT(first.size(), 120u);
}

TEST_F(FailpointTest, FiresOnlyOnTargetThread) {
  ASSERT_TRUE(Configure("test.a=error@2#worker-1").ok());
  std::vector<int> fired0, fired1;
  std::thread t0([&] {
    SetThreadName("worker-0");
    fired0 = FiredAt(5);
  });
  t0.join();
  std::thread t1([&] {
    SetThreadName("worker-1");
    fired1 = FiredAt(5);
  });
  t1.join();
  EXPECT_TRUE(fired0.empty());
  EXPECT_EQ(fired1, (std::vector<int>{2}));
  // Evaluations on other threads do not count toward @HIT.
  EXPECT_EQ(Hits("test.a"), 5u);
}

volatile sig_atomic_t g_got_signal = 0;
void OnUsr1(int) { g_got_signal = 1; }

TEST_F(FailpointTest, RaiseDeliversSignalOnEvaluatingThread) {
  struct sigaction sa = {}, old = {};
  sa.sa_handler = OnUsr1;
  ASSERT_EQ(sigaction(SIGUSR1, &sa, &old), 0);
  ASSERT_TRUE(Configure("test.b=raise(SIGUSR1)@1").ok());
  g_got_signal = 0;
  EXPECT_FALSE(SIGRACE_FAILPOINT(kFpB));
  EXPECT_EQ(g_got_signal, 1);
  sigaction(SIGUSR1, &old, nullptr);
}

TEST_F(FailpointTest, CallbackRuns) {
  int calls = 0;
  ASSERT_TRUE(SetCallback("test.b", [&] { ++calls; }).ok());
  ASSERT_TRUE(Configure("test.b=callback@2").ok());
  for (int i = 0; i < 4; ++i) SIGRACE_FAILPOINT(kFpB);
  EXPECT_EQ(calls, 1);
}

TEST_F(FailpointTest, PauseHoldsThreadUntilResume) {
  ASSERT_TRUE(Configure("test.pause=pause@1").ok());
  std::atomic<bool> passed{false};
  std::thread t([&] {
    SIGRACE_FAILPOINT(kFpPause);
    passed = true;
  });
  ASSERT_TRUE(WaitPaused("test.pause", 1, 10000));
  EXPECT_FALSE(passed.load());
  ASSERT_TRUE(Resume("test.pause").ok());
  t.join();
  EXPECT_TRUE(passed.load());
}

TEST_F(FailpointTest, MalformedSpecsAreErrors) {
  const char* bad[] = {
      "test.a",                 // no '='
      "=error",                 // no name
      "test.a=explode",         // unknown action
      "test.a=raise(SIGNOPE)",  // unknown signal
      "test.a=raise(SIGSEGV",   // unbalanced
      "test.a=sleep(x)",        // not a number
      "test.a=error@0",         // hits are 1-based
      "test.a=error@-1",
      "test.a=error%0",
      "test.a=error%101",
      "test.a=error*0",
      "test.a=error#",
      "no.such.failpoint=error",
  };
  for (const char* spec : bad) {
    Status s = Configure(spec);
    EXPECT_EQ(s.code(), StatusCode::kInvalidArgument) << spec;
    EXPECT_FALSE(s.message().empty()) << spec;
  }
}

TEST_F(FailpointTest, ConfigureIsAllOrNothing) {
  EXPECT_FALSE(Configure("test.a=error;no.such=error").ok());
  EXPECT_FALSE(kFpA.armed_.load());
}

TEST_F(FailpointTest, SeveralSpecsAndOff) {
  ASSERT_TRUE(Configure(" test.a=error ; test.b=yield ").ok());
  EXPECT_TRUE(kFpA.armed_.load());
  EXPECT_TRUE(kFpB.armed_.load());
  ASSERT_TRUE(Configure("test.a=off").ok());
  EXPECT_FALSE(kFpA.armed_.load());
}

TEST_F(FailpointTest, ListsDefinedNames) {
  const std::vector<std::string> names = ListNames();
  EXPECT_NE(std::find(names.begin(), names.end(), "test.pause"), names.end());
}

TEST_F(FailpointTest, EnvironmentVariable) {
  // The test's only thread changes the environment.
  // NOLINTBEGIN(concurrency-mt-unsafe)
  setenv("SIGRACE_FAILPOINTS", "test.a=error@1", 1);
  ASSERT_TRUE(ConfigureFromEnv().ok());
  EXPECT_EQ(FiredAt(3), (std::vector<int>{1}));
  setenv("SIGRACE_FAILPOINTS", "test.a=bogus", 1);
  Status s = ConfigureFromEnv();
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("SIGRACE_FAILPOINTS"), std::string::npos);
  unsetenv("SIGRACE_FAILPOINTS");
  // NOLINTEND(concurrency-mt-unsafe)
}

}  // namespace
}  // namespace sigrace::failpoint
