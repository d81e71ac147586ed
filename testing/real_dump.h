// A real sigrace dump for the reader's and dump-info's tests: a forked
// child installs the handler, publishes one region filled with a seeded
// secret, and takes a live dump into a directory.
//
// Thread safety: call from the test's main thread (it forks). Test-only.

#ifndef SIGRACE_TESTING_REAL_DUMP_H_
#define SIGRACE_TESTING_REAL_DUMP_H_

#include <sys/types.h>

#include <cstddef>
#include <cstdint>
#include <string>

#include "testing/crash_test_util.h"

namespace sigrace::crashdump::testing {

inline constexpr size_t kRealDumpRegionLen = 80;  // not a multiple of 16
inline constexpr uint64_t kRealDumpSeed = 0x0dd5eed;
inline constexpr const char* kRealDumpLabel = "reader.region";

struct RealDump {
  std::string path;     // empty when the child failed (a test failure is
                        // recorded)
  uint64_t region = 0;  // address of the published region
  pid_t pid = 0;
};

// Makes one sealed live dump in `dir`; the region's page is mapped before
// the fork, so parent and child agree on its address.
RealDump MakeRealDump(const TempDir& dir);

}  // namespace sigrace::crashdump::testing

#endif  // SIGRACE_TESTING_REAL_DUMP_H_
