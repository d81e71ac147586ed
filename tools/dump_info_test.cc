#include "tools/dump_info.h"

#include <elf.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <stdlib.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "crashdump/format/core_format.h"
#include "testing/synthetic_core.h"

namespace sigrace::crashdump {
namespace {

using testing::SyntheticCore;

// A distinctive memory pattern; dump-info must never print memory, so it
// must not appear in any output.
constexpr char kMemoryPattern[] = "MEMORY-CONTENT-MUST-NOT-BE-PRINTED";

class DumpInfoTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/sigrace-dump-info-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  std::string Write(const std::string& name, const std::vector<uint8_t>& b) {
    const std::string path = dir_ + "/" + name;
    std::ofstream out(path, std::ios::binary);
    out.write(reinterpret_cast<const char*>(b.data()),
              static_cast<std::streamsize>(b.size()));
    return path;
  }

  struct Run {
    int code;
    std::string out;
    std::string err;
  };
  Run RunInfo(std::vector<std::string> args) {
    args.insert(args.begin(), "sigrace dump-info");
    std::vector<char*> argv;
    for (std::string& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    ::testing::internal::CaptureStdout();
    ::testing::internal::CaptureStderr();
    Run r;
    r.code = DumpInfoMain(static_cast<int>(args.size()), argv.data());
    r.out = ::testing::internal::GetCapturedStdout();
    r.err = ::testing::internal::GetCapturedStderr();
    return r;
  }

  static SyntheticCore Core() {
    SyntheticCore c;
    c.threads.push_back(
        {501, SIGSEGV, 0x401234, 0x7ffd00000f00, 0x7ffd00000f80});
    c.threads.push_back({502, 0, 0x401999, 0x7ffd00000800, 0});
    SyntheticCore::Load heap;
    heap.vaddr = 0x7f0000001000;
    heap.bytes.assign(0x1000, 0);
    std::memcpy(heap.bytes.data() + 64, kMemoryPattern, sizeof(kMemoryPattern));
    heap.name = "/memfd:heap (deleted)";
    c.loads.push_back(heap);
    c.AddRedaction(RedactionKind::kRange, 0x7f0000001100, 0x40, 0,
                   "vault.rsa\x1b[31m");  // an escape sequence, to be defused
    c.AddRedaction(RedactionKind::kRegisters, 0, 0, 501, "regs:501");
    c.meta = "signal=11\nvariant=fixed\nseed=99\n";
    c.backtrace = "#0 0x401234 Sign+0x14\n#1 0x401400 main+0x20\n";
    c.fault_addr = 0x10;
    return c;
  }

  std::string dir_;
};

TEST_F(DumpInfoTest, PrintsEverySectionAsText) {
  const std::string path = Write("dump", Core().Build(true));
  Run r = RunInfo({path});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.err, "");
  for (const char* want :
       {"seal:     sealed (v1, checksum 0x", ", verified)", "machine:  x86_64",
        "signal:   SIGSEGV (11), code 1, addr 0x10", "threads (2;",
        "501  SIGSEGV    0x0000000000401234 0x00007ffd00000f00",
        "0x00007f0000001000-0x00007f0000002000", "rw-",
        "/memfd:heap (deleted) @0x1000", "redactions (2):", "range",
        "\"vault.rsa\\x1b[31m\"", "registers", "regs:501", "variant=fixed",
        "backtrace (2 frames):", "#1 0x401400 main+0x20"}) {
    EXPECT_NE(r.out.find(want), std::string::npos) << "missing: " << want;
  }
  EXPECT_EQ(r.out.find('\x1b'), std::string::npos);
  EXPECT_TRUE(r.out.find(kMemoryPattern) == std::string::npos);
}

TEST_F(DumpInfoTest, PrintsJsonFollowingTheSchema) {
  const std::string path = Write("dump", Core().Build(false));
  Run r = RunInfo({path, "--json"});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_TRUE(r.out.find(kMemoryPattern) == std::string::npos);
  const nlohmann::json j = nlohmann::json::parse(r.out);
  EXPECT_EQ(j["path"], path);
  EXPECT_EQ(j["seal"]["state"], "unsealed");
  EXPECT_EQ(j["seal"]["version"], 0);
  EXPECT_EQ(j["seal"]["reason"], "unsealed (no sigrace trailer)");
  EXPECT_EQ(j["machine"], "x86_64");
  EXPECT_EQ(j["siginfo"]["signal"], "SIGSEGV");
  EXPECT_EQ(j["siginfo"]["addr"], "0x10");
  ASSERT_EQ(j["threads"].size(), 2u);
  EXPECT_EQ(j["threads"][0]["tid"], 501);
  EXPECT_EQ(j["threads"][0]["crashing"], true);
  EXPECT_EQ(j["threads"][0]["pc"], "0x401234");
  EXPECT_EQ(j["threads"][1]["crashing"], false);
  ASSERT_EQ(j["mappings"].size(), 1u);
  EXPECT_EQ(j["mappings"][0]["start"], "0x7f0000001000");
  EXPECT_EQ(j["mappings"][0]["size"], 0x1000);
  EXPECT_EQ(j["mappings"][0]["perms"], "rw-");
  EXPECT_EQ(j["mappings"][0]["name"], "/memfd:heap (deleted)");
  ASSERT_EQ(j["redactions"].size(), 2u);
  EXPECT_EQ(j["redactions"][0]["kind"], "range");
  EXPECT_EQ(j["redactions"][0]["label"], "vault.rsa\\x1b[31m");
  EXPECT_EQ(j["redactions"][0]["len"], 0x40);
  EXPECT_EQ(j["redactions"][1]["kind"], "registers");
  EXPECT_EQ(j["redactions"][1]["tid"], 501);
  ASSERT_EQ(j["meta"].size(), 3u);
  EXPECT_EQ(j["meta"][2]["key"], "seed");
  EXPECT_EQ(j["meta"][2]["value"], "99");
  ASSERT_EQ(j["backtrace"].size(), 2u);
  EXPECT_EQ(j["has_sigrace_notes"], true);
}

TEST_F(DumpInfoTest, BadInputGivesOneLineAndExitTwo) {
  const std::string text = Write("text", {'h', 'i', '\n'});
  Run r = RunInfo({text});
  EXPECT_EQ(r.code, 2);
  EXPECT_EQ(r.out, "");
  EXPECT_EQ(r.err, "sigrace: dump-info: " + text + ": not an ELF file\n");

  std::vector<uint8_t> f = Core().Build(true);
  const std::string truncated =
      Write("truncated", std::vector<uint8_t>(f.begin(), f.begin() + 900));
  r = RunInfo({truncated, "--json"});
  EXPECT_EQ(r.code, 2);
  EXPECT_EQ(r.out, "");
  EXPECT_EQ(r.err.rfind("sigrace: dump-info: " + truncated + ": ", 0), 0u)
      << r.err;
  EXPECT_EQ(r.err.find('\n'), r.err.size() - 1) << r.err;

  r = RunInfo({dir_ + "/absent"});
  EXPECT_EQ(r.code, 2);
  EXPECT_EQ(r.err, "sigrace: dump-info: " + dir_ + "/absent: no such file\n");

  r = RunInfo({});
  EXPECT_EQ(r.code, 2);
  EXPECT_EQ(r.err.rfind("sigrace: dump-info: ", 0), 0u) << r.err;
  EXPECT_EQ(r.err.find('\n'), r.err.size() - 1) << r.err;

  r = RunInfo({text, "--bogus"});
  EXPECT_EQ(r.code, 2);
  EXPECT_EQ(r.err.find('\n'), r.err.size() - 1) << r.err;
}

TEST_F(DumpInfoTest, RequireSealRejectsUnsealedAndCorruptDumps) {
  const std::string unsealed = Write("unsealed", Core().Build(false));
  Run r = RunInfo({unsealed});
  EXPECT_EQ(r.code, 0);  // informational by default
  r = RunInfo({unsealed, "--require-seal"});
  EXPECT_EQ(r.code, 2);
  EXPECT_EQ(r.err, "sigrace: dump-info: " + unsealed +
                       ": dump is not sealed: unsealed (no sigrace trailer)\n");

  std::vector<uint8_t> f = Core().Build(true);
  f[f.size() - sizeof(SealTrailer) - 1] ^= 0x20;
  const std::string corrupt = Write("corrupt", f);
  r = RunInfo({corrupt});
  EXPECT_EQ(r.code, 0);
  EXPECT_NE(r.out.find("seal:     corrupt (checksum mismatch)"),
            std::string::npos);
  r = RunInfo({corrupt, "--require-seal"});
  EXPECT_EQ(r.code, 2);
  EXPECT_NE(r.err.find("checksum mismatch"), std::string::npos);

  const std::string sealed = Write("sealed", Core().Build(true));
  EXPECT_EQ(RunInfo({sealed, "--require-seal"}).code, 0);
}

TEST_F(DumpInfoTest, HelpExitsZero) {
  Run r = RunInfo({"--help"});
  EXPECT_EQ(r.code, 0);
  EXPECT_NE(r.out.find("--json"), std::string::npos);
}

}  // namespace
}  // namespace sigrace::crashdump
