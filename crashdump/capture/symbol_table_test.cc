#include "crashdump/capture/symbol_table.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdint>
#include <string>

namespace sigrace::crashdump {
namespace {

// Big enough that +3 stays inside it; noinline so it has its own symbol.
__attribute__((noinline)) int SymbolTableProbeFunction(int x) {
  volatile int v = x;
  for (int i = 0; i < 4; ++i) v = v * 3 + i;
  return v;
}

std::string Sym(uint64_t pc, bool return_address = false) {
  char buf[512];
  const size_t n = Symbolize(pc, buf, sizeof(buf), return_address);
  EXPECT_EQ(n, std::string(buf).size());
  return std::string(buf, n);
}

class SymbolTableTest : public ::testing::Test {
 protected:
  void SetUp() override { ASSERT_TRUE(BuildSymbolTable().ok()); }
  void TearDown() override { FreeSymbolTable(); }
};

TEST_F(SymbolTableTest, FunctionInMainExecutableResolvesWithOffset) {
  ASSERT_EQ(SymbolTableProbeFunction(1), 99);
  const auto pc = reinterpret_cast<uintptr_t>(&SymbolTableProbeFunction) + 3;
  const std::string s = Sym(pc);
  EXPECT_NE(s.find("SymbolTableProbeFunction"), std::string::npos) << s;
  EXPECT_NE(s.find("+0x3"), std::string::npos) << s;
  EXPECT_EQ(s.find("\n"), std::string::npos) << s;
}

TEST_F(SymbolTableTest, ReturnAddressLooksUpPreviousByteButPrintsRealOffset) {
  const auto start = reinterpret_cast<uintptr_t>(&SymbolTableProbeFunction);
  const std::string s = Sym(start + 4, /*return_address=*/true);
  EXPECT_NE(s.find("SymbolTableProbeFunctionEi+0x4"), std::string::npos) << s;
  // Names stay mangled. The first byte of a function, seen as a return
  // address, belongs to whatever precedes it.
  EXPECT_EQ(Sym(start, true).find("SymbolTableProbeFunctionEi+"),
            std::string::npos);
}

TEST_F(SymbolTableTest, LibcAddressResolves) {
  const auto pc = reinterpret_cast<uintptr_t>(&getpid);
  const std::string s = Sym(pc);
  EXPECT_NE(s, "??");
  EXPECT_TRUE(s.find("getpid") != std::string::npos ||
              s.find("libc") != std::string::npos)
      << s;
}

TEST_F(SymbolTableTest, UnmappedAddressIsUnknown) { EXPECT_EQ(Sym(1), "??"); }

TEST_F(SymbolTableTest, TruncatesToCapacity) {
  const auto pc = reinterpret_cast<uintptr_t>(&SymbolTableProbeFunction) + 3;
  char buf[8];
  const size_t n = Symbolize(pc, buf, sizeof(buf));
  EXPECT_EQ(n, 7u);
  EXPECT_EQ(buf[7], '\0');
}

TEST(SymbolTableNoTable, WithoutTableEverythingIsUnknown) {
  FreeSymbolTable();
  const auto pc = reinterpret_cast<uintptr_t>(&SymbolTableProbeFunction) + 3;
  char buf[64];
  Symbolize(pc, buf, sizeof(buf));
  EXPECT_EQ(std::string(buf), "??");
}

TEST(SymbolTableRebuild, RebuildReplacesTable) {
  ASSERT_TRUE(BuildSymbolTable().ok());
  ASSERT_TRUE(BuildSymbolTable().ok());
  const auto pc = reinterpret_cast<uintptr_t>(&SymbolTableProbeFunction) + 3;
  char buf[512];
  Symbolize(pc, buf, sizeof(buf));
  EXPECT_NE(std::string(buf).find("SymbolTableProbeFunction"),
            std::string::npos);
  FreeSymbolTable();
}

}  // namespace
}  // namespace sigrace::crashdump
