// The built `sigrace` binary (SIGRACE_BIN) against hostile input and
// hostile surroundings, as a user runs it: every case ends in a verdict or
// one line "sigrace: ..." and exit 2, never a crash, a hang or a silent
// pass; the oracle's own processes leave no core.

#include <dirent.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "testing/crash_test_util.h"
#include "testing/synthetic_core.h"

namespace {

using sigrace::crashdump::testing::ReadWholeFile;
using sigrace::crashdump::testing::SyntheticCore;
using sigrace::crashdump::testing::TempDir;

std::string Bin() {
  const char* b = getenv("SIGRACE_BIN");
  return b != nullptr ? b : "";
}

struct Result {
  bool exited = false;
  int code = -1;
  int sig = 0;
  bool core = false;  // WCOREDUMP
  std::string out, err;
};

struct RunOptions {
  std::vector<std::string> env;  // "NAME=VALUE", added
  std::string cwd;
  bool core_unlimited = false;
  int timeout_s = 120;
};

// Starts `sigrace ARGS` with stdout and stderr to files in `dir`.
pid_t Start(const std::vector<std::string>& args, const RunOptions& o,
            const std::string& dir) {
  const std::string out = dir + "/.stdout", err = dir + "/.stderr";
  const pid_t pid = fork();
  if (pid != 0) return pid;
  setpgid(0, 0);  // a timeout kills the workers too
  // A fresh file each run (the test's own temp dir), never through a link.
  unlink(out.c_str());
  unlink(err.c_str());
  const int fo =
      open(out.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW, 0600);
  const int fe =
      open(err.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW, 0600);
  if (fo < 0 || fe < 0) _exit(126);
  dup2(fo, 1);
  dup2(fe, 2);
  const int devnull = open("/dev/null", O_RDONLY);
  if (devnull >= 0) dup2(devnull, 0);
  if (!o.cwd.empty() && chdir(o.cwd.c_str()) != 0) _exit(126);
  if (o.core_unlimited) {
    struct rlimit rl = {RLIM_INFINITY, RLIM_INFINITY};
    if (setrlimit(RLIMIT_CORE, &rl) != 0) _exit(125);
  }
  // The forked child, single-threaded, before exec.
  for (const std::string& e : o.env) {
    putenv(const_cast<char*>(e.c_str()));  // NOLINT(concurrency-mt-unsafe)
  }
  std::vector<std::string> all = {Bin()};
  all.insert(all.end(), args.begin(), args.end());
  std::vector<char*> argv;
  for (std::string& a : all) argv.push_back(a.data());
  argv.push_back(nullptr);
  execv(argv[0], argv.data());
  _exit(127);
}

Result Wait(pid_t pid, const std::string& dir, int timeout_s) {
  Result r;
  int st = 0;
  for (int i = 0; i < timeout_s * 100; ++i) {
    const pid_t w = waitpid(pid, &st, WNOHANG);
    if (w == pid) break;
    if (i + 1 == timeout_s * 100) {
      kill(-pid, SIGKILL);
      waitpid(pid, &st, 0);
      ADD_FAILURE() << "timed out (a hang)";
    }
    usleep(10000);
  }
  r.exited = WIFEXITED(st);
  r.code = r.exited ? WEXITSTATUS(st) : -1;
  r.sig = WIFSIGNALED(st) ? WTERMSIG(st) : 0;
  r.core = WIFSIGNALED(st) && WCOREDUMP(st);
  r.out = ReadWholeFile(dir + "/.stdout");
  r.err = ReadWholeFile(dir + "/.stderr");
  return r;
}

Result RunSigrace(const std::vector<std::string>& args,
                  const RunOptions& o = {}) {
  TempDir io;
  return Wait(Start(args, o, io.path()), io.path(), o.timeout_s);
}

std::string Describe(const Result& r) {
  return "exit " + std::to_string(r.code) + " signal " + std::to_string(r.sig) +
         " stderr: " + r.err;
}

// One line "sigrace: ..." and exit 2.
void ExpectUsageError(const Result& r, const std::string& what) {
  EXPECT_TRUE(r.exited) << what << ": " << Describe(r);
  EXPECT_EQ(r.code, 2) << what << ": " << Describe(r);
  EXPECT_EQ(r.err.rfind("sigrace", 0), 0u) << what << ": " << r.err;
  EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1)
      << what << ": " << r.err;
}

// A fresh Ed25519 key as PKCS#8 PEM at `path`.
void WriteKey(const std::string& path) {
  EVP_PKEY* k = EVP_PKEY_Q_keygen(nullptr, nullptr, "ED25519");
  ASSERT_NE(k, nullptr);
  FILE* f = fopen(path.c_str(), "w");
  ASSERT_NE(f, nullptr);
  ASSERT_EQ(PEM_write_PrivateKey(f, k, nullptr, nullptr, 0, nullptr, nullptr),
            1);
  fclose(f);
  EVP_PKEY_free(k);
}

void WriteFile(const std::string& path, const std::string& bytes) {
  FILE* f = fopen(path.c_str(), "wb");
  ASSERT_NE(f, nullptr);
  ASSERT_EQ(fwrite(bytes.data(), 1, bytes.size(), f), bytes.size());
  fclose(f);
}

class CliTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (Bin().empty()) GTEST_FAIL() << "SIGRACE_BIN not set";
    key_ = dir_.path() + "/key.pem";
    WriteKey(key_);
    raw_ = dir_.path() + "/raw.bin";
    WriteFile(raw_, std::string(4096, 'x'));
  }
  TempDir dir_;
  std::string key_, raw_;
};

// --- SIGRACE_FAILPOINTS ----------------------------------------------------

// The README's example (its SIGRACE_FAILPOINTS line, read from README.md)
// faults the signer where it says.
TEST_F(CliTest, ReadmeFailpointExampleFaults) {
  const char* readme_path = getenv("SIGRACE_README");
  ASSERT_NE(readme_path, nullptr);
  const std::string readme = ReadWholeFile(readme_path);
  const size_t at = readme.find("    SIGRACE_FAILPOINTS='");
  ASSERT_NE(at, std::string::npos) << "no example in README.md";
  const std::string line = readme.substr(at, readme.find('\n', at) - at);
  const size_t q1 = line.find('\''), q2 = line.find('\'', q1 + 1);
  const std::string spec = line.substr(q1 + 1, q2 - q1 - 1);
  std::istringstream rest(line.substr(q2 + 1));
  std::string word;
  rest >> word;
  ASSERT_EQ(word, "sigrace") << line;
  std::vector<std::string> args;
  while (rest >> word) args.push_back(word);
  ASSERT_FALSE(args.empty()) << line;
  RunOptions o;
  o.env = {"SIGRACE_FAILPOINTS=" + spec};
  o.cwd = dir_.path();
  const Result r = RunSigrace(args, o);
  EXPECT_EQ(r.sig, SIGSEGV) << spec << ": " << Describe(r);
  EXPECT_EQ(r.out.find("eyJ"), std::string::npos);  // no token printed
  // Without it, the same command signs.
  const Result ok = RunSigrace(args);
  EXPECT_EQ(ok.code, 0) << Describe(ok);
  EXPECT_NE(ok.out.find("eyJ"), std::string::npos);
}

TEST_F(CliTest, BadFailpointSpecIsAUsageError) {
  for (const char* spec :
       {"no.such.failpoint=error", "sign.after_acquire=bogus",
        "sign.after_acquire=raise(SIGNOPE)", "sign.after_acquire=error@x"}) {
    RunOptions o;
    o.env = {std::string("SIGRACE_FAILPOINTS=") + spec};
    for (const std::vector<std::string>& cmd :
         std::vector<std::vector<std::string>>{
             {"token", "--alg", "eddsa"},
             {"scan", "--key", key_, raw_},
             {"stress", "--variant", "fixed", "--trials", "1", "--quiet"}}) {
      const Result r = RunSigrace(cmd, o);
      ExpectUsageError(r, std::string(spec) + " " + cmd[0]);
      EXPECT_NE(r.err.find("SIGRACE_FAILPOINTS"), std::string::npos) << r.err;
    }
  }
}

// --- the oracle's own processes leave no core -----------------------------

// A scan stopped (SIGSTOP at a failpoint) while its index holds every form
// of the key, with `ulimit -c unlimited` and a core pattern that writes to
// the working directory: its filter and core limit are 0, and a SIGSEGV
// then leaves no core.
TEST_F(CliTest, ScanProcessLeavesNoCore) {
  TempDir cwd;
  RunOptions o;
  o.cwd = cwd.path();
  o.core_unlimited = true;
  o.env = {"SIGRACE_FAILPOINTS=scan.before_file=raise(SIGSTOP)@1"};
  TempDir io;
  const pid_t pid = Start({"scan", "--key", key_, raw_}, o, io.path());
  ASSERT_GT(pid, 0);
  int st = 0;
  ASSERT_EQ(waitpid(pid, &st, WUNTRACED), pid);
  ASSERT_TRUE(WIFSTOPPED(st)) << "scan did not stop at scan.before_file";
  const std::string proc = "/proc/" + std::to_string(pid);
  EXPECT_EQ(ReadWholeFile(proc + "/coredump_filter"), "00000000\n");
  const std::string limits = ReadWholeFile(proc + "/limits");
  const size_t at = limits.find("Max core file size");
  ASSERT_NE(at, std::string::npos);
  std::istringstream line(limits.substr(at + 18, limits.find('\n', at)));
  std::string soft;
  line >> soft;
  EXPECT_EQ(soft, "0") << limits.substr(at, 80);
  kill(pid, SIGSEGV);
  kill(pid, SIGCONT);
  const Result r = Wait(pid, io.path(), 60);
  EXPECT_EQ(r.sig, SIGSEGV) << Describe(r);
  EXPECT_FALSE(r.core) << "the kernel wrote a core of the scanning process";
  for (const std::string& name : cwd.List()) {
    EXPECT_EQ(name.rfind("core", 0), std::string::npos) << name;
  }
}

// --- numbers ----------------------------------------------------------------

// Every numeric flag is range-checked, the range in the one-line error: no
// wrapped "-1", no clamped overflow, no NaN or infinity.
TEST_F(CliTest, NumericFlagsOutOfRangeAreUsageErrors) {
  const std::string out = dir_.path() + "/out";
  const std::string two64 = "18446744073709551616";
  struct Case {
    std::vector<std::string> base;
    std::vector<std::pair<std::string, std::string>> hostile;
  };
  const std::vector<Case> cases = {
      {{"stress", "--variant", "fixed", "--quiet", "--out", out},
       {{"--trials", "-1"},          {"--trials", two64},
        {"--trials", "0"},           {"--seed", "-1"},
        {"--seed", two64},           {"--trial", "-1"},
        {"--duration-s", "nan"},     {"--duration-s", "inf"},
        {"--duration-s", "-1"},      {"--rotation-share", "nan"},
        {"--rotation-share", "1.5"}, {"--rotation-share", "-0.5"},
        {"--threads", "0x10"},       {"--repeat", "0"},
        {"--max-kept", "-1"},        {"--rotate-every", "-1"},
        {"--max-delay-us", two64},   {"--key-pool", "65"},
        {"--min-fragment", "4"},     {"--widen-us", "-1"}}},
      {{"repro", "--out", out, "--tsan-bin", "none"},
       {{"--budget-s", "nan"},
        {"--budget-s", "inf"},
        {"--budget-s", "-5"},
        {"--seed", "-1"},
        {"--min-live-trials", "-1"},
        {"--min-fatal-trials", two64},
        {"--race-live-trials", "0"},
        {"--jobs", "0"}}},
      {{"ablate", "--out", out},
       {{"--trials", "-1"}, {"--duration-s", "nan"}, {"--seed", two64}}},
      {{"scan", "--key", key_, raw_},
       {{"--min-fragment", "-1"},
        {"--min-fragment", two64},
        {"--min-fragment", "7"},
        {"--threads", "99999999999"}}},
      {{"gate", "--key", key_, "--release-dir", out, raw_},
       {{"--min-fragment", "-1"}, {"--min-fragment", "nan"}}},
  };
  for (const Case& c : cases) {
    for (const auto& [flag, value] : c.hostile) {
      std::vector<std::string> args = c.base;
      args.push_back(flag);
      args.push_back(value);
      RunOptions o;
      o.timeout_s = 30;
      const Result r = RunSigrace(args, o);
      const std::string what = c.base[0] + " " + flag + " " + value;
      ExpectUsageError(r, what);
      EXPECT_NE(r.err.find(flag), std::string::npos) << what << ": " << r.err;
      EXPECT_NE(r.err.find(" in ["), std::string::npos)
          << what << ": " << r.err;
    }
  }
}

// --- bad input never crashes ----------------------------------------------

// A path that is not UTF-8: the gate's JSON stays valid (the JSON writer
// would throw on it), its text escapes it as scan does.
// Paths are escaped by one rule (tools/common.h Printable) in every
// output of gate, scan and dump-info: text, JSON and the one-line error.
// Two classes of gate outcome: a refusal (an ELF core with no seal, exit
// 1: text and JSON on stdout) and an error (not a dump at all, exit 2: the
// stderr line and the JSON "error" entry).
TEST_F(CliTest, GateEscapesNonUtf8Paths) {
  const std::string weird = "\xff\xfe\x1b[31m";
  const std::string escaped = "\\xff\\xfe\\x1b[31m";
  SyntheticCore c;
  c.threads.push_back({501, SIGSEGV, 0x401234, 0x7ffd00000f00, 0});
  c.meta = "variant=fixed\n";  // a sigrace dump, torn before its seal
  const std::vector<uint8_t> unsealed = c.Build(/*seal=*/false);
  const std::string bad = dir_.path() + "/dump" + weird + ".core";
  WriteFile(bad, std::string(unsealed.begin(), unsealed.end()));
  const std::string junk = dir_.path() + "/junk" + weird + ".core";
  WriteFile(junk, std::string(4096, 'x'));
  TempDir rel;
  const Result j = RunSigrace(
      {"gate", "--key", key_, "--release-dir", rel.path(), "--json", bad});
  EXPECT_TRUE(j.exited) << Describe(j);
  EXPECT_EQ(j.code, 1) << Describe(j);  // refused: not a sealed dump
  const nlohmann::json out = nlohmann::json::parse(j.out, nullptr, false);
  ASSERT_FALSE(out.is_discarded()) << j.out;
  const std::string path = out["dumps"][0]["path"];
  EXPECT_NE(path.find(escaped), std::string::npos) << path;
  const Result t =
      RunSigrace({"gate", "--key", key_, "--release-dir", rel.path(), bad});
  EXPECT_EQ(t.code, 1) << Describe(t);
  EXPECT_EQ(t.out.find('\xff'), std::string::npos);
  EXPECT_EQ(t.out.find('\x1b'), std::string::npos);
  EXPECT_NE(t.out.find(escaped), std::string::npos) << t.out;

  const Result e =
      RunSigrace({"gate", "--key", key_, "--release-dir", rel.path(), junk});
  ExpectUsageError(e, "gate on a file that is not a dump");
  EXPECT_EQ(e.err.find('\xff'), std::string::npos) << e.err;
  EXPECT_EQ(e.err.find('\x1b'), std::string::npos) << e.err;
  EXPECT_NE(e.err.find(escaped), std::string::npos) << e.err;
  const Result ej = RunSigrace(
      {"gate", "--key", key_, "--release-dir", rel.path(), "--json", junk});
  EXPECT_EQ(ej.code, 2) << Describe(ej);
  const nlohmann::json eout = nlohmann::json::parse(ej.out, nullptr, false);
  ASSERT_FALSE(eout.is_discarded()) << ej.out;
  const std::string epath = eout["dumps"][0]["path"];
  const std::string emsg = eout["dumps"][0]["error"];
  EXPECT_NE(epath.find(escaped), std::string::npos) << epath;
  EXPECT_EQ(emsg.find('\x1b'), std::string::npos) << emsg;

  // scan and dump-info on the same file: the same escaping.
  for (const std::vector<std::string>& args :
       {std::vector<std::string>{"scan", "--key", key_, bad},
        std::vector<std::string>{"dump-info", "--require-seal", bad}}) {
    const Result r = RunSigrace(args);
    ExpectUsageError(r, args[0] + " on an unsealed dump");
    EXPECT_EQ(r.err.find('\x1b'), std::string::npos) << r.err;
    EXPECT_NE(r.err.find(escaped), std::string::npos) << args[0] << r.err;
  }
  // A bad argument is echoed in the usage error: escaped too.
  const Result u = RunSigrace({"dump-info", bad, "--no-such" + weird});
  ExpectUsageError(u, "dump-info with a bad flag");
  EXPECT_EQ(u.err.find('\x1b'), std::string::npos) << u.err;
  EXPECT_EQ(u.err.find('\xff'), std::string::npos) << u.err;
}

// A sparse 1 GiB file given to the gate: one line, exit 2, quickly, and
// the gate's peak RSS stays far below the file's apparent size.
TEST_F(CliTest, GateRefusesSparseGigabyteUnread) {
  const std::string path = dir_.path() + "/sparse.core";
  const int fd = open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL, 0600);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(ftruncate(fd, off_t{1} << 30), 0);
  close(fd);
  TempDir rel, io;
  const pid_t pid =
      Start({"gate", "--key", key_, "--release-dir", rel.path(), path}, {},
            io.path());
  int st = 0;
  struct rusage ru {};
  ASSERT_EQ(wait4(pid, &st, 0, &ru), pid);
  ASSERT_TRUE(WIFEXITED(st));
  Result r;
  r.exited = true;
  r.code = WEXITSTATUS(st);
  r.out = ReadWholeFile(io.path() + "/.stdout");
  r.err = ReadWholeFile(io.path() + "/.stderr");
  ExpectUsageError(r, "gate on a sparse 1 GiB file");
  EXPECT_NE(r.err.find("not a sigrace dump"), std::string::npos) << r.err;
  EXPECT_LT(ru.ru_maxrss, 128 * 1024) << "peak RSS KiB";  // KiB on Linux
}

// A dump that shrinks while `scan` or `dump-info` reads it: one line and
// exit 2, not SIGBUS. The reader is stopped (SIGSTOP at a failpoint) with
// the file open and its size taken; the test cuts the file and resumes it.
TEST_F(CliTest, FileShrinkingUnderTheReaderIsAnError) {
  SyntheticCore c;
  c.threads.push_back({501, SIGSEGV, 0x401234, 0x7ffd00000f00, 0});
  SyntheticCore::Load heap;
  heap.vaddr = 0x7f0000000000;
  heap.bytes.assign(1 << 20, 0x5a);
  c.loads.push_back(heap);
  c.meta = "variant=fixed\n";
  const std::vector<uint8_t> bytes = c.Build(/*seal=*/true);
  struct Case {
    std::vector<std::string> args;
    const char* failpoint;
  };
  const std::string dump = dir_.path() + "/shrinks.core";
  for (const Case& k : {Case{{"scan", "--key", key_, dump}, "scan.before_file"},
                        Case{{"dump-info", dump}, "reader.opened"}}) {
    WriteFile(dump, std::string(bytes.begin(), bytes.end()));
    // Whole, it reads.
    const Result whole = RunSigrace(k.args);
    EXPECT_EQ(whole.code, 0) << k.args[0] << ": " << Describe(whole);
    RunOptions o;
    o.env = {std::string("SIGRACE_FAILPOINTS=") + k.failpoint +
             "=raise(SIGSTOP)@1"};
    TempDir io;
    const pid_t pid = Start(k.args, o, io.path());
    int st = 0;
    ASSERT_EQ(waitpid(pid, &st, WUNTRACED), pid);
    ASSERT_TRUE(WIFSTOPPED(st)) << k.args[0] << " did not stop";
    ASSERT_EQ(truncate(dump.c_str(), 8192), 0);
    kill(pid, SIGCONT);
    const Result r = Wait(pid, io.path(), 60);
    ExpectUsageError(r, k.args[0] + " on a file that shrank");
    EXPECT_NE(r.err.find("shrank"), std::string::npos) << r.err;
  }
}

// --- FIFOs and other non-regular inputs -----------------------------------

// A FIFO given as a dump or a key is refused at once (one line, exit 2):
// opening it would wait for a writer that never comes.
TEST_F(CliTest, FifoInputsAreRefusedNotWaitedOn) {
  const std::string fifo = dir_.path() + "/fifo";
  ASSERT_EQ(mkfifo(fifo.c_str(), 0600), 0);
  TempDir rel;
  const std::vector<std::vector<std::string>> cmds = {
      {"scan", "--key", key_, fifo},
      {"scan", "--key", fifo, raw_},
      {"dump-info", fifo},
      {"gate", "--key", key_, "--release-dir", rel.path(), fifo},
      {"gate", "--key", fifo, "--release-dir", rel.path(), raw_},
      {"scan", "--key", "/dev/zero", raw_},
  };
  for (const auto& args : cmds) {
    RunOptions o;
    o.timeout_s = 20;
    const Result r = RunSigrace(args, o);
    std::string what;
    for (const auto& a : args) what += a + " ";
    ExpectUsageError(r, what);
    EXPECT_NE(r.err.find("not a regular file"), std::string::npos)
        << what << ": " << r.err;
  }
}

// --- repro --tsan-bin --------------------------------------------------------

// A TSan binary the user named that does not work is an error; `auto`
// still falls back to no TSan rows when there is no TSan build.
TEST_F(CliTest, ReproTsanBinGivenMustWork) {
  const std::string noexec = dir_.path() + "/not-executable";
  WriteFile(noexec, "#!/bin/sh\n");
  for (const std::string& bad :
       {std::string("/nonexistent/sigrace"), dir_.path(), noexec}) {
    RunOptions o;
    o.timeout_s = 30;
    const Result r =
        RunSigrace({"repro", "--tsan-bin", bad, "--out", dir_.path() + "/out",
                    "--budget-s", "5", "--variant", "fixed", "--alg", "eddsa"},
                   o);
    ExpectUsageError(r, "--tsan-bin " + bad);
    EXPECT_NE(r.err.find("--tsan-bin"), std::string::npos) << r.err;
  }
}

// --- the oracle's reach ------------------------------------------------------

// A minimum fragment longer than every private form of the key would make
// the oracle blind; a key file holding two keys would leave one unsearched.
TEST_F(CliTest, OracleThatCannotSeeTheKeyIsRefused) {
  const Result blind =
      RunSigrace({"scan", "--key", key_, "--min-fragment", "100000", raw_});
  ExpectUsageError(blind, "scan --min-fragment 100000");
  EXPECT_NE(blind.err.find("longer than every private form"), std::string::npos)
      << blind.err;
  TempDir rel;
  const Result gate = RunSigrace({"gate", "--key", key_, "--min-fragment",
                                  "100000", "--release-dir", rel.path(), raw_});
  ExpectUsageError(gate, "gate --min-fragment 100000");

  // The reach is printed: text and JSON.
  const Result text = RunSigrace({"scan", "--key", key_, raw_});
  EXPECT_EQ(text.code, 0) << Describe(text);
  EXPECT_NE(text.out.find("private forms indexed at min fragment 16"),
            std::string::npos)
      << text.out;
  const Result json = RunSigrace({"scan", "--json", "--key", key_, raw_});
  const nlohmann::json j = nlohmann::json::parse(json.out, nullptr, false);
  ASSERT_FALSE(j.is_discarded()) << json.out;
  EXPECT_GT(j["reach"]["forms_indexed"].get<int>(), 0);
  EXPECT_GE(j["reach"]["longest_form"].get<int>(),
            j["reach"]["shortest_form"].get<int>());
  EXPECT_GE(j["reach"]["shortest_form"].get<int>(), 16);

  const std::string key2 = dir_.path() + "/key2.pem";
  WriteKey(key2);
  const std::string both = dir_.path() + "/two-keys.pem";
  WriteFile(both, ReadWholeFile(key_) + ReadWholeFile(key2));
  const Result two = RunSigrace({"scan", "--key", both, raw_});
  ExpectUsageError(two, "scan --key with two keys");
  EXPECT_NE(two.err.find("more than one private key"), std::string::npos)
      << two.err;
}

// --- damaged dumps, note strings --------------------------------------------

// A sigrace dump whose ELF magic or type was damaged is an error, not a
// clean raw scan; --raw asks for the raw scan. An ELF binary is still
// searched as bytes.
TEST_F(CliTest, DamagedCoreIsNotScannedAsRaw) {
  SyntheticCore c;
  c.threads.push_back({501, SIGSEGV, 0x401234, 0x7ffd00000f00, 0});
  SyntheticCore::Load heap;
  heap.vaddr = 0x7f0000000000;
  heap.bytes.assign(4096, 0x11);
  c.loads.push_back(heap);
  c.meta = "variant=fixed\n";
  const std::vector<uint8_t> good = c.Build(/*seal=*/true);
  struct Damage {
    const char* name;
    size_t offset;
    uint8_t value;
  };
  for (const Damage& d : {Damage{"magic", 0, 0x00}, Damage{"magic", 1, 'X'},
                          Damage{"type", 16, 0x00}, Damage{"type", 16, 0x09}}) {
    std::vector<uint8_t> bad = good;
    bad[d.offset] = d.value;
    const std::string path = dir_.path() + "/damaged.core";
    WriteFile(path, std::string(bad.begin(), bad.end()));
    const Result r = RunSigrace({"scan", "--key", key_, path});
    ExpectUsageError(r, std::string("damaged ") + d.name);
    EXPECT_NE(r.err.find("damaged core"), std::string::npos) << r.err;
    const Result raw = RunSigrace({"scan", "--raw", "--key", key_, path});
    EXPECT_EQ(raw.code, 0) << Describe(raw);
    EXPECT_NE(raw.out.find(": raw,"), std::string::npos) << raw.out;
  }
  // An executable is bytes to search, not a damaged dump.
  const Result self = RunSigrace({"scan", "--key", key_, Bin()});
  EXPECT_EQ(self.code, 0) << Describe(self);
}

// dump-info never prints the process's arguments beyond the program: a key
// given on a command line would be printed.
TEST_F(CliTest, DumpInfoDoesNotPrintArguments) {
  SyntheticCore c;
  c.threads.push_back({501, SIGSEGV, 0x401234, 0x7ffd00000f00, 0});
  c.psargs = "signer --key-hex 3082025c0201000281810c0ffee";
  const std::vector<uint8_t> bytes = c.Build(/*seal=*/true);
  const std::string path = dir_.path() + "/args.core";
  WriteFile(path, std::string(bytes.begin(), bytes.end()));
  const Result text = RunSigrace({"dump-info", path});
  EXPECT_EQ(text.code, 0) << Describe(text);
  EXPECT_EQ(text.out.find("3082025c"), std::string::npos) << text.out;
  EXPECT_EQ(text.out.find("--key-hex"), std::string::npos) << text.out;
  EXPECT_NE(text.out.find("program \"signer\" + 2 arguments (37 bytes"),
            std::string::npos)
      << text.out;
  const Result json = RunSigrace({"dump-info", "--json", path});
  EXPECT_EQ(json.out.find("3082025c"), std::string::npos) << json.out;
  const nlohmann::json j = nlohmann::json::parse(json.out, nullptr, false);
  ASSERT_FALSE(j.is_discarded());
  EXPECT_EQ(j["process"]["program"], "signer");
  EXPECT_EQ(j["process"]["more_args"], 2);
}

// --- output files ------------------------------------------------------------

// A race variant whose forced window leaks at trial 0 (rs256, live and
// fatal).
constexpr char kLeakVariant[] = "heap-montgomery";

std::vector<std::string> ListDir(const std::string& dir) {
  std::vector<std::string> out;
  if (DIR* d = opendir(dir.c_str())) {
    while (dirent* e = readdir(d)) {
      const std::string n = e->d_name;
      if (n != "." && n != "..") out.push_back(n);
    }
    closedir(d);
  }
  std::sort(out.begin(), out.end());
  return out;
}

bool EndsWith(const std::string& s, const std::string& tail) {
  return s.size() >= tail.size() &&
         s.compare(s.size() - tail.size(), tail.size(), tail) == 0;
}

// Every path under `dir` (recursive) whose name ends in `tail` or starts
// with `head`.
void FindNames(const std::string& dir, const std::string& tail,
               const std::string& head, std::vector<std::string>* found) {
  for (const std::string& n : ListDir(dir)) {
    const std::string p = dir + "/" + n;
    if (EndsWith(n, tail) || (!head.empty() && n.rfind(head, 0) == 0)) {
      found->push_back(p);
    }
    struct stat st;
    if (lstat(p.c_str(), &st) == 0 && S_ISDIR(st.st_mode)) {
      FindNames(p, tail, head, found);
    }
  }
}

std::string Sha256Hex(const std::string& bytes) {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int n = 0;
  EVP_Digest(bytes.data(), bytes.size(), md, &n, EVP_sha256(), nullptr);
  static constexpr char kHex[] = "0123456789abcdef";
  std::string s;
  for (unsigned int i = 0; i < n; ++i) {
    s.push_back(kHex[md[i] >> 4]);
    s.push_back(kHex[md[i] & 15]);
  }
  return s;
}

nlohmann::json ReadJsonFile(const std::string& path) {
  return nlohmann::json::parse(ReadWholeFile(path), nullptr, false);
}

// The stress run that leaks at trial 0 and keeps its dump in `out`.
std::vector<std::string> LeakRun(const std::string& out,
                                 const std::string& report) {
  return {
      "stress",  "--variant",     kLeakVariant,  "--alg",     "rs256",
      "--mode",  "live",          "--injectors", "failpoint", "--trials",
      "3",       "--seed",        "4",           "--expect",  "leak",
      "--quiet", "--no-progress", "--out",       out,         "--report-json",
      report};
}

// A shared --out (mode 1777) with a symlink planted at every name a kept
// dump, its temporary file or its sidecar could have been written
// through: the run keeps its dump as a regular file of its own, and the
// link's target stays untouched. (The run keeps its evidence; a name taken
// by someone else is never written through.)
TEST_F(CliTest, KeptDumpNeverGoesThroughAPlantedLink) {
  const std::string out = dir_.path() + "/shared";
  ASSERT_EQ(mkdir(out.c_str(), 0700), 0);
  ASSERT_EQ(chmod(out.c_str(), 01777), 0);
  const std::string target = dir_.path() + "/victim";
  WriteFile(target, "untouched\n");
  std::vector<std::string> links;
  for (int t = 0; t < 3; ++t) {
    const std::string base = out + "/" + kLeakVariant +
                             "-rs256-live-seed4-trial" + std::to_string(t) +
                             ".core";
    const std::string n = base + ".tmp";
    ASSERT_EQ(symlink(target.c_str(), n.c_str()), 0) << n;
    links.push_back(n);
  }
  const std::string report = dir_.path() + "/r.json";
  RunOptions o;
  o.timeout_s = 300;
  const Result r = RunSigrace(LeakRun(out, report), o);
  EXPECT_EQ(r.code, 0) << Describe(r);
  // Compared, never printed: written through, it would hold a leaking
  // dump.
  const std::string after = ReadWholeFile(target);
  EXPECT_TRUE(after == "untouched\n")
      << "the link's target was written (" << after.size() << " bytes)";
  for (const std::string& l : links) {
    struct stat st;
    ASSERT_EQ(lstat(l.c_str(), &st), 0) << l;
    EXPECT_TRUE(S_ISLNK(st.st_mode)) << l;
  }
  size_t kept = 0;
  for (const std::string& n : ListDir(out)) {
    struct stat st;
    ASSERT_EQ(lstat((out + "/" + n).c_str(), &st), 0);
    if (!EndsWith(n, ".core")) continue;
    EXPECT_TRUE(S_ISREG(st.st_mode)) << n;
    EXPECT_EQ(st.st_mode & 0777, 0600u) << n;
    ++kept;
  }
  EXPECT_EQ(kept, 1u) << "the run keeps its evidence";
}

// A group- or world-writable --out without the sticky bit lets anyone
// swap the evidence: every command with an output directory refuses it,
// one line and exit 2, before it runs anything.
TEST_F(CliTest, SharedOutDirWithoutStickyBitIsRefused) {
  const std::string out = dir_.path() + "/open";
  ASSERT_EQ(mkdir(out.c_str(), 0700), 0);
  ASSERT_EQ(chmod(out.c_str(), 0777), 0);
  for (const std::vector<std::string>& args :
       {std::vector<std::string>{"stress", "--variant", "fixed", "--alg",
                                 "eddsa", "--trials", "1", "--quiet",
                                 "--no-progress", "--out", out},
        std::vector<std::string>{"repro", "--variant", "fixed", "--alg",
                                 "eddsa", "--tsan-bin", "none", "--budget-s",
                                 "5", "--out", out},
        std::vector<std::string>{"ablate", "--protection", "scrub", "--trials",
                                 "1", "--out", out}}) {
    RunOptions o;
    o.timeout_s = 60;
    const Result r = RunSigrace(args, o);
    ExpectUsageError(r, args[0]);
    EXPECT_NE(r.err.find("sticky"), std::string::npos) << r.err;
  }
  EXPECT_TRUE(ListDir(out).empty()) << "nothing written into it";
}

// Two runs with one --out and one seed both keep a dump (each under its
// own run id), and every sidecar describes the dump beside it: its path,
// size, SHA-256 and run id.
TEST_F(CliTest, TwoRunsSharingOutKeepTheirOwnEvidence) {
  const std::string out = dir_.path() + "/out";
  std::set<std::string> run_ids;
  for (int i = 0; i < 2; ++i) {
    const std::string report = dir_.path() + "/r" + std::to_string(i) + ".json";
    RunOptions o;
    o.timeout_s = 300;
    const Result r = RunSigrace(LeakRun(out, report), o);
    ASSERT_EQ(r.code, 0) << Describe(r);
    const nlohmann::json j = ReadJsonFile(report);
    ASSERT_TRUE(j.is_object());
    EXPECT_TRUE(j.contains("run_id")) << "no run id in the report";
    const std::string id = j.value("run_id", "");
    run_ids.insert(id);
    EXPECT_NE(r.out.find("run id " + id), std::string::npos) << r.out;
  }
  EXPECT_EQ(run_ids.size(), 2u);
  std::vector<std::string> dumps;
  for (const std::string& n : ListDir(out)) {
    if (EndsWith(n, ".core")) dumps.push_back(out + "/" + n);
  }
  ASSERT_EQ(dumps.size(), 2u) << "one dump per run";
  std::set<std::string> seen_ids;
  for (const std::string& d : dumps) {
    const nlohmann::json s = ReadJsonFile(d + ".json");
    ASSERT_TRUE(s.is_object()) << d;
    const std::string bytes = ReadWholeFile(d);
    EXPECT_EQ(s.value("dump", ""), d);
    EXPECT_EQ(s.value("dump_size", uint64_t{0}), bytes.size()) << d;
    EXPECT_EQ(s.value("dump_sha256", ""), Sha256Hex(bytes)) << d;
    const std::string id = s.value("run_id", "");
    EXPECT_TRUE(run_ids.count(id)) << d << ": " << id;
    EXPECT_NE(d.find("-" + id + ".core"), std::string::npos) << d;
    seen_ids.insert(id);
  }
  EXPECT_EQ(seen_ids, run_ids);
}

// repro judges a row only on what this run wrote: a stale "clean" TSan
// report where the row used to write, and a TSan build that exits without
// writing one, make the row an error (exit 2), never clean.
TEST_F(CliTest, ReproRowWithoutItsReportIsNotClean) {
  const std::string out = dir_.path() + "/out";
  ASSERT_EQ(mkdir(out.c_str(), 0700), 0);
  ASSERT_EQ(mkdir((out + "/logs").c_str(), 0700), 0);
  const nlohmann::json stale = {
      {"totals", {{"trials", 1}, {"leak", 1}, {"harness_error", 0}}},
      {"tsan",
       {{"enabled", true}, {"total", 1}, {"by_type", {{"data_race", 1}}}}},
      {"exit_code", 0}};
  const std::string stale_path =
      out + "/logs/" + kLeakVariant + "-rs256-live-tsan.json";
  WriteFile(stale_path, stale.dump());
  const std::string tsan = dir_.path() + "/tsan-sigrace";
  WriteFile(tsan, "#!/bin/sh\nexit 0\n");
  ASSERT_EQ(chmod(tsan.c_str(), 0755), 0);
  const std::string report = dir_.path() + "/repro.json";
  RunOptions o;
  o.timeout_s = 400;
  const Result r = RunSigrace(
      {"repro", "--variant", kLeakVariant, "--alg", "rs256", "--tsan-bin", tsan,
       "--budget-s", "120", "--out", out, "--report-json", report},
      o);
  EXPECT_TRUE(r.exited) << Describe(r);
  EXPECT_EQ(r.code, 2) << Describe(r) << r.out;
  EXPECT_NE(r.out.find("wrote no report"), std::string::npos) << r.out;
  const nlohmann::json j = ReadJsonFile(report);
  ASSERT_TRUE(j.is_object());
  bool live_row = false;
  for (const nlohmann::json& row : j["rows"]) {
    if (row.value("mode", "") != "live") continue;
    live_row = true;
    EXPECT_EQ(row.value("verdict", ""), "reproduced");
    EXPECT_TRUE(row["tsan"].is_null()) << row.dump();
    EXPECT_NE(row.value("note", "").find("wrote no report"), std::string::npos)
        << row.dump();
  }
  EXPECT_TRUE(live_row);
  // The stale file is neither read nor removed; this run's reports are in
  // its own directory.
  EXPECT_EQ(ReadJsonFile(stale_path), stale);
  EXPECT_EQ(j.value("logs_dir", ""),
            out + "/logs/" + j.value("run_id", std::string("?")));
}

// A leak whose dump cannot be kept (the keep step fails: its failpoint)
// is a harness error: exit 2, said in the text and the JSON; the same run
// without the failpoint keeps the dump and exits 0.
TEST_F(CliTest, LeakWhoseDumpCannotBeKeptIsAHarnessError) {
  const std::string out = dir_.path() + "/out";
  const std::string report = dir_.path() + "/r.json";
  RunOptions o;
  o.timeout_s = 300;
  o.env = {"SIGRACE_FAILPOINTS=stress.keep_dump=error"};
  const Result r = RunSigrace(LeakRun(out, report), o);
  EXPECT_TRUE(r.exited) << Describe(r);
  EXPECT_EQ(r.code, 2) << Describe(r) << r.out;
  EXPECT_NE(r.out.find("evidence lost"), std::string::npos) << r.out;
  const nlohmann::json j = ReadJsonFile(report);
  ASSERT_TRUE(j.is_object()) << "no report";
  EXPECT_EQ(j.value("exit_code", -1), 2);
  EXPECT_GE(j.value("evidence_lost", uint64_t{0}), 1u);
  ASSERT_FALSE(j["leaks"].empty());
  EXPECT_EQ(j["leaks"][0].value("dump", "?"), "");
  EXPECT_NE(j["leaks"][0].value("keep_error", ""), "");
  // The pair: kept without the failpoint.
  const std::string report2 = dir_.path() + "/r2.json";
  const Result ok =
      RunSigrace(LeakRun(dir_.path() + "/out2", report2), {.timeout_s = 300});
  EXPECT_EQ(ok.code, 0) << Describe(ok);
  const nlohmann::json k = ReadJsonFile(report2);
  ASSERT_TRUE(k.is_object());
  EXPECT_EQ(k.value("evidence_lost", uint64_t{1}), 0u);
  EXPECT_NE(k["leaks"][0].value("dump", ""), "");
}

// Starts a fatal stress run with TMPDIR=`tmp`, waits (polling the file
// system, bounded) until `ready` holds for its sigrace-fatal-* directory,
// sends SIGTERM, and expects the run to die by it leaving no
// sigrace-fatal-* directory and no .tmp file in `tmp` or `out`.
void ExpectSigtermCleansUp(
    const std::vector<std::string>& args, const std::vector<std::string>& env,
    const std::string& tmp, const std::string& out,
    const std::function<bool(const std::string&)>& ready) {
  RunOptions o;
  o.env = env;
  o.env.push_back("TMPDIR=" + tmp);
  TempDir io;
  const pid_t pid = Start(args, o, io.path());
  bool seen = false;
  for (int i = 0; i < 12000 && !seen; ++i) {
    for (const std::string& n : ListDir(tmp)) {
      if (n.rfind("sigrace-fatal-", 0) == 0 && ready(tmp + "/" + n)) {
        seen = true;
      }
    }
    if (!seen) usleep(10000);
  }
  EXPECT_TRUE(seen) << "the run never got there";
  ASSERT_EQ(kill(pid, SIGTERM), 0);
  const Result r = Wait(pid, io.path(), 60);
  EXPECT_TRUE(r.sig == SIGTERM || r.code == 128 + SIGTERM) << Describe(r);
  std::vector<std::string> left;
  FindNames(tmp, ".tmp", "sigrace-fatal-", &left);
  FindNames(out, ".tmp", "", &left);
  EXPECT_TRUE(left.empty()) << left.size() << " left, first " << left[0];
}

// SIGTERM as soon as a fatal run's dump directory exists (its first worker
// starting): the driver kills the worker, removes the directory and dies
// by the signal.
TEST_F(CliTest, SigtermRemovesTheFatalDumpDirectory) {
  const std::string tmp = dir_.path() + "/tmpdir";
  ASSERT_EQ(mkdir(tmp.c_str(), 0700), 0);
  ExpectSigtermCleansUp(
      {"stress", "--variant", "fixed", "--alg", "eddsa", "--mode", "fatal",
       "--trials", "100000", "--seed", "3", "--quiet", "--no-progress", "--out",
       dir_.path() + "/out"},
      {}, tmp, dir_.path() + "/out", [](const std::string&) { return true; });
}

// SIGTERM while a complete leaking dump sits in the fatal dump directory
// (the driver held at its keep step by a `pause` failpoint): the dump is
// removed with the directory.
TEST_F(CliTest, SigtermRemovesACompleteDumpWaitingToBeKept) {
  const std::string tmp = dir_.path() + "/tmpdir";
  ASSERT_EQ(mkdir(tmp.c_str(), 0700), 0);
  std::vector<std::string> args =
      LeakRun(dir_.path() + "/out", dir_.path() + "/r.json");
  std::replace(args.begin(), args.end(), std::string("live"),
               std::string("fatal"));
  ExpectSigtermCleansUp(args, {"SIGRACE_FAILPOINTS=stress.keep_dump=pause"},
                        tmp, dir_.path() + "/out", [](const std::string& d) {
                          for (const std::string& n : ListDir(d)) {
                            if (EndsWith(n, ".core")) return true;
                          }
                          return false;
                        });
  EXPECT_FALSE(ReadWholeFile(dir_.path() + "/r.json").size() > 0);
}

// SIGTERM to repro while its rows run: each row gets SIGTERM and cleans up
// (no sigrace-fatal-* directory, no .tmp), none is left running, and repro
// dies by the signal.
TEST_F(CliTest, ReproSigtermStopsAndCleansItsRows) {
  const std::string tmp = dir_.path() + "/tmpdir";
  const std::string out = dir_.path() + "/out";
  ASSERT_EQ(mkdir(tmp.c_str(), 0700), 0);
  RunOptions o;
  o.env = {"TMPDIR=" + tmp};
  TempDir io;
  const pid_t pid =
      Start({"repro", "--variant", kLeakVariant, "--alg", "rs256", "--tsan-bin",
             "none", "--budget-s", "120", "--out", out},
            o, io.path());
  bool seen = false;
  for (int i = 0; i < 12000 && !seen; ++i) {
    for (const std::string& n : ListDir(tmp)) {
      if (n.rfind("sigrace-fatal-", 0) == 0) seen = true;
    }
    if (!seen) usleep(10000);
  }
  ASSERT_TRUE(seen) << "no row started a fatal run";
  ASSERT_EQ(kill(pid, SIGTERM), 0);
  const Result r = Wait(pid, io.path(), 60);
  EXPECT_TRUE(r.sig == SIGTERM || r.code == 128 + SIGTERM) << Describe(r);
  // Every process of the run's group (its rows and their workers) ends.
  bool group_gone = false;
  for (int i = 0; i < 500 && !group_gone; ++i) {
    group_gone = kill(-pid, 0) != 0 && errno == ESRCH;
    if (!group_gone) usleep(10000);
  }
  if (!group_gone) kill(-pid, SIGKILL);
  EXPECT_TRUE(group_gone) << "a row outlived repro";
  std::vector<std::string> left;
  FindNames(tmp, ".tmp", "sigrace-fatal-", &left);
  FindNames(out, ".tmp", "", &left);
  EXPECT_TRUE(left.empty()) << left.size() << " left, first " << left[0];
}

}  // namespace
