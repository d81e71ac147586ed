#include "testing/real_dump.h"

#include <gtest/gtest.h>
#include <sys/mman.h>

#include "crashdump/capture/handler.h"
#include "crashdump/registry/registry.h"

namespace sigrace::crashdump::testing {

RealDump MakeRealDump(const TempDir& dir) {
  RealDump d;
  void* page = ::mmap(nullptr, 4096, PROT_READ | PROT_WRITE,
                      MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (page == MAP_FAILED) return d;
  uint8_t* region = static_cast<uint8_t*>(page) + 131;  // odd on purpose
  d.region = reinterpret_cast<uint64_t>(region);
  ChildResult c = RunInChild([&] {
    HandlerOptions o;
    o.target = DumpTarget::Directory(dir.path());
    o.fatal = false;
    o.meta = "test=real_dump\n";
    if (!InstallHandler(o).ok()) return 10;
    FillSecret(region, kRealDumpRegionLen, kRealDumpSeed);
    ScopedRegion published(region, kRealDumpRegionLen, kRealDumpLabel);
    if (!RequestLiveDump().ok()) return 11;
    return LastDump().ok ? 0 : 12;
  });
  ::munmap(page, 4096);
  EXPECT_TRUE(c.exited && c.exit_code == 0)
      << "child: exit " << c.exit_code << " signal " << c.term_signal << ": "
      << c.stderr_text;
  const auto cores = dir.Files(".core");
  EXPECT_EQ(cores.size(), 1u);
  if (cores.size() == 1) d.path = cores[0];
  return d;
}

}  // namespace sigrace::crashdump::testing
