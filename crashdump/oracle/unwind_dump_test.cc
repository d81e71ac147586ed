// Redacted dumps unwind like unredacted ones. A child (a fresh exec of this
// binary) runs two threads, each inside a SecretScope a few frames deep:
// the main thread reads an RSA key's PKCS#8 DER from a pipe into a buffer
// on its secret stack and then faults (fatal dump) or asks for a live dump;
// the worker blocks in read() inside its scope. Between the main thread's
// scope and its fault lies a frame whose CFA is read from a stack word
// (DW_CFA_def_cfa_expression with a deref, as OpenSSL's assembly has). The same
// child is dumped by sigrace's handler and, with no handler and RLIMIT_CORE
// raised, by the kernel (core_pattern must write a plain `core` into the cwd;
// the child chdirs into a fresh directory).
//
// On the sigrace dump:
//   - gdb's `thread apply all bt` gives, for every thread, the frames the
//     handler's libunwind pass recorded (same pcs) and the function names
//     gdb gives for the kernel's unredacted core, down to main and
//     start_thread; never the marker as an address;
//   - gdb and eu-stack exit 0 and warn about nothing; readelf -n lists
//     every note;
//   - the oracle finds no fragment and no record not applied, and every
//     preserved word verifies; the kernel core of the same child holds the
//     key (so the clean verdict is not an empty stack);
//   - with the preserve-every-word test regression the writer keeps the
//     whole secret stacks: the oracle rejects the words that are not
//     addresses and reports the key there as redaction-not-applied.
//
// Key bytes are never printed: assertions look at findings and counts.

#include <fcntl.h>
#include <gtest/gtest.h>
#include <openssl/evp.h>
#include <openssl/x509.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <map>
#include <memory>
#include <regex>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "crashdump/capture/handler.h"
#include "crashdump/format/core_reader.h"
#include "crashdump/format/redaction_claims.h"
#include "crashdump/oracle/judgement.h"
#include "crashdump/oracle/key_forms.h"
#include "crashdump/oracle/scanner.h"
#include "crashdump/registry/registry.h"
#include "testing/crash_test_util.h"

namespace sigrace::crashdump::unwind_test {

// ---- The child. Named functions, never inlined, so every frame has a
// ---- name in both dumps.

constexpr int kKeyFd = 3;
constexpr char kChildEnv[] = "SIGRACE_UNWIND_CHILD";
constexpr char kDirEnv[] = "SIGRACE_UNWIND_DIR";

std::atomic<pid_t> g_worker_tid{0};
int g_block_fd = -1;  // read end of a pipe nobody writes

[[gnu::noinline]] void WorkerInner() {
  g_worker_tid.store(static_cast<pid_t>(::gettid()));
  char c;
  while (::read(g_block_fd, &c, 1) != 0) {
  }
  asm volatile("" ::: "memory");
}

[[gnu::noinline]] void WorkerMiddle() {
  WorkerInner();
  asm volatile("" ::: "memory");
}

[[gnu::noinline]] void WorkerOuter() {
  SecretScope scope;
  WorkerMiddle();
  asm volatile("" ::: "memory");
}

[[gnu::noinline]] void MainInner(bool live) {
  // The key's only copy in the child: this buffer on the secret stack.
  unsigned char der[4096];
  size_t n = 0;
  ssize_t r;
  while (n < sizeof(der) &&
         (r = ::read(kKeyFd, der + n, sizeof(der) - n)) > 0) {
    n += static_cast<size_t>(r);
  }
  ::close(kKeyFd);
  asm volatile("" : : "r"(der) : "memory");
  if (live) {
    if (!RequestLiveDump().ok()) ::_exit(11);
  } else {
    testing::CrashHere();
  }
  asm volatile("" : : "r"(der) : "memory");
}

bool g_live = false;

extern "C" void UnwindTestMainInnerThunk() { MainInner(g_live); }

}  // namespace sigrace::crashdump::unwind_test

// A frame whose CFA only a stack word gives, as in OpenSSL's bignum
// assembly: it realigns rsp, keeps its entry rsp at 40(%rsp) and says so
// with DW_CFA_def_cfa_expression (DW_OP_breg7 40; DW_OP_deref;
// DW_OP_plus_uconst 8). A debugger walks past it only if that word kept
// its value; it calls the function in %rdi.
extern "C" void UnwindTestCfaExprFrame(void (*fn)());
asm(R"(
  .text
  .globl UnwindTestCfaExprFrame
  .type UnwindTestCfaExprFrame,@function
UnwindTestCfaExprFrame:
  .cfi_startproc
  movq %rsp, %rax
  subq $96, %rsp
  andq $-32, %rsp
  movq %rax, 40(%rsp)
  .cfi_escape 0x0f,0x05,0x77,0x28,0x06,0x23,0x08
  call *%rdi
  movq 40(%rsp), %rsp
  .cfi_def_cfa %rsp, 8
  ret
  .cfi_endproc
  .size UnwindTestCfaExprFrame, .-UnwindTestCfaExprFrame
)");

namespace sigrace::crashdump::unwind_test {

[[gnu::noinline]] void MainMiddle(bool live) {
  g_live = live;
  UnwindTestCfaExprFrame(&UnwindTestMainInnerThunk);
  asm volatile("" ::: "memory");
}

[[gnu::noinline]] void MainOuter(bool live) {
  SecretScope scope;
  MainMiddle(live);
  asm volatile("" ::: "memory");
}

// True once thread `tid` sleeps in read(2) (syscall 0 on x86_64): the
// worker's place is then fixed, with no timing involved.
bool BlockedInRead(pid_t tid) {
  std::ifstream in("/proc/self/task/" + std::to_string(tid) + "/syscall");
  std::string first;
  in >> first;
  return first == "0";
}

// mode: "fatal" or "live" (sigrace's handler), "kernel" (no handler, the
// kernel's core of the same fault as "fatal").
[[noreturn]] void ChildMain(const std::string& mode, const char* dir) {
  ::prctl(PR_SET_PDEATHSIG, SIGKILL);
  if (dir == nullptr || ::chdir(dir) != 0) ::_exit(5);
  const bool kernel = mode == "kernel";
  const bool live = mode == "live";
  struct rlimit rl = {0, 0};
  if (kernel) {
    rl.rlim_cur = rl.rlim_max = RLIM_INFINITY;
    if (::setrlimit(RLIMIT_CORE, &rl) != 0) {
      ::getrlimit(RLIMIT_CORE, &rl);
      rl.rlim_cur = rl.rlim_max;
      ::setrlimit(RLIMIT_CORE, &rl);
    }
  } else {
    ::setrlimit(RLIMIT_CORE, &rl);
    HandlerOptions ho;
    ho.target = DumpTarget::Directory(dir);
    ho.fatal = !live;
    if (!InstallHandler(ho).ok()) ::_exit(6);
  }
  int p[2];
  if (::pipe(p) != 0) ::_exit(7);
  g_block_fd = p[0];
  std::thread(WorkerOuter).detach();
  pid_t tid;
  while ((tid = g_worker_tid.load()) == 0) ::sched_yield();
  while (!BlockedInRead(tid)) ::sched_yield();
  MainOuter(live);
  ::_exit(0);
}

// ---- The parent. ----

namespace {

using testing::TempDir;

struct PkeyFree {
  void operator()(EVP_PKEY* p) const { EVP_PKEY_free(p); }
};
using PkeyPtr = std::unique_ptr<EVP_PKEY, PkeyFree>;

std::string Pkcs8Der(EVP_PKEY* pkey) {
  PKCS8_PRIV_KEY_INFO* p8 = EVP_PKEY2PKCS8(pkey);
  if (p8 == nullptr) return {};
  unsigned char* der = nullptr;
  const int n = i2d_PKCS8_PRIV_KEY_INFO(p8, &der);
  PKCS8_PRIV_KEY_INFO_free(p8);
  if (n <= 0) return {};
  std::string out(reinterpret_cast<char*>(der), static_cast<size_t>(n));
  OPENSSL_clear_free(der, static_cast<size_t>(n));
  return out;
}

std::string FirstLine(const char* path) {
  std::ifstream in(path);
  std::string s;
  std::getline(in, s);
  return s;
}

struct DumpOutcome {
  std::string path;
  std::string skip;  // why there is none
};

// Runs the child in `mode` with the key's DER on fd 3 and collects its
// dump from `dir`. `regression` goes to SIGRACE_TEST_REGRESSION.
DumpOutcome RunChild(const std::string& der, const std::string& mode,
                     const TempDir& dir, const std::string& regression = "") {
  DumpOutcome out;
  if (mode == "kernel") {
    const std::string pattern = FirstLine("/proc/sys/kernel/core_pattern");
    if (pattern.empty() || pattern[0] == '|' ||
        pattern.find('/') != std::string::npos ||
        pattern.find('%') != std::string::npos) {
      out.skip = "kernel core_pattern '" + pattern +
                 "' does not write a plain file into the cwd";
      return out;
    }
  }
  int key_pipe[2];
  if (::pipe(key_pipe) != 0) {
    out.skip = "pipe failed";
    return out;
  }
  // The DER fits the pipe buffer: write it all before forking.
  if (::write(key_pipe[1], der.data(), der.size()) !=
      static_cast<ssize_t>(der.size())) {
    out.skip = "pipe write failed";
    return out;
  }
  ::close(key_pipe[1]);
  // A fresh exec: the child holds nothing of the parent's memory (where
  // the test key lives), only what the pipe hands it.
  const pid_t pid = ::fork();
  if (pid == 0) {
    const int key_fd = ::fcntl(key_pipe[0], F_DUPFD, 100);
    if (key_fd < 0) ::_exit(8);
    ::dup2(key_fd, kKeyFd);
    // The test's only thread sets the environment its child inherits.
    ::setenv(kChildEnv, mode.c_str(), 1);      // NOLINT(concurrency-mt-unsafe)
    ::setenv(kDirEnv, dir.path().c_str(), 1);  // NOLINT(concurrency-mt-unsafe)
    if (regression.empty()) {
      ::unsetenv("SIGRACE_TEST_REGRESSION");  // NOLINT(concurrency-mt-unsafe)
    } else {
      ::setenv("SIGRACE_TEST_REGRESSION",  // NOLINT(concurrency-mt-unsafe)
               regression.c_str(), 1);
    }
    char arg0[] = "unwind_dump_test";
    char* argv[] = {arg0, nullptr};
    ::execv("/proc/self/exe", argv);
    ::_exit(9);
  }
  ::close(key_pipe[0]);
  if (pid < 0) {
    out.skip = "fork failed";
    return out;
  }
  int status = 0;
  ::waitpid(pid, &status, 0);
  const bool live = mode == "live";
  if (live ? !(WIFEXITED(status) && WEXITSTATUS(status) == 0)
           : !(WIFSIGNALED(status) && WTERMSIG(status) == SIGSEGV)) {
    ADD_FAILURE() << mode << " child ended with status " << status;
    return out;
  }
  if (mode == "kernel" && !WCOREDUMP(status)) {
    out.skip = "the kernel wrote no core (RLIMIT_CORE hard limit or policy)";
    return out;
  }
  const std::vector<std::string> files =
      mode == "kernel" ? dir.Files("core") : dir.Files(".core");
  if (files.size() != 1) {
    ADD_FAILURE() << "expected one dump in " << dir.path() << ", found "
                  << files.size();
    return out;
  }
  out.path = files[0];
  return out;
}

struct Frame {
  uint64_t pc = 0;
  std::string name;
};

struct GdbThread {
  long lwp = 0;
  std::vector<Frame> frames;
};

struct GdbRun {
  int rc = -1;
  std::string out;
  std::vector<GdbThread> threads;  // gdb's order
  std::set<std::string> warnings;  // each kind once, numbers as N
};

GdbRun RunGdb(const std::string& core) {
  GdbRun g;
  g.rc = testing::RunCommand(
      "gdb -batch -nx -ex 'set print frame-arguments none' -ex 'set print "
      "frame-info location-and-address' -ex 'thread apply all bt' '" +
          testing::SelfExe() + "' '" + core + "' 2>&1",
      &g.out);
  static const std::regex kThread(R"(^Thread \d+ \(.*LWP (\d+)\))");
  static const std::regex kFrame(R"(^#(\d+)\s+(0x[0-9a-f]+) in (.+?) \()");
  std::istringstream in(g.out);
  std::string line;
  std::smatch m;
  while (std::getline(in, line)) {
    if (std::regex_search(line, m, kThread)) {
      g.threads.push_back({std::stol(m[1].str()), {}});
    } else if (!g.threads.empty() && std::regex_search(line, m, kFrame)) {
      g.threads.back().frames.push_back(
          {std::stoull(m[2].str(), nullptr, 16), m[3].str()});
    } else if (line.find("warning") != std::string::npos) {
      // One line per kind: thread ids and addresses become N.
      g.warnings.insert(std::regex_replace(line, std::regex("[0-9]+"), "N"));
    }
  }
  return g;
}

// The frames as an unwinder without inline information sees them: gdb
// shows a function inlined at a pc as a frame of its own, with the same
// pc as the one it is inlined into.
std::vector<uint64_t> PhysicalPcs(const GdbThread& t) {
  std::vector<uint64_t> pcs;
  for (const Frame& f : t.frames) {
    if (pcs.empty() || pcs.back() != f.pc) pcs.push_back(f.pc);
  }
  return pcs;
}

// The XSTATE note of the first thread: (size, XCR0 word at 464).
std::pair<uint64_t, uint64_t> XstateNote(const CoreReader& r) {
  for (const NoteInfo& n : r.notes()) {
    if (n.owner == "LINUX" && n.type == 0x202 && n.desc_size >= 472) {
      uint64_t xcr0;
      std::memcpy(&xcr0, r.data() + n.desc_offset + 464, 8);
      return {n.desc_size, xcr0};
    }
  }
  return {0, 0};
}

// The bytes of the NT_X86_XSAVE_LAYOUT note (0x205), empty if none.
std::string XsaveLayoutNote(const CoreReader& r) {
  for (const NoteInfo& n : r.notes()) {
    if (n.owner == "LINUX" && n.type == 0x205) {
      return std::string(
          reinterpret_cast<const char*>(r.data() + n.desc_offset), n.desc_size);
    }
  }
  return "";
}

// The handler's backtrace note by thread: the crashing thread's frames,
// then "thread TID" and each other thread's.
std::map<long, std::vector<uint64_t>> HandlerBacktraces(const CoreReader& r) {
  std::map<long, std::vector<uint64_t>> out;
  long tid = r.threads().empty() ? 0 : r.threads()[0].tid;
  std::istringstream in(r.backtrace());
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("thread ", 0) == 0) {
      tid = std::stol(line.substr(7));
    } else if (line.rfind('#', 0) == 0) {
      const size_t sp = line.find(' ');
      if (sp == std::string::npos) continue;
      out[tid].push_back(std::stoull(line.substr(sp + 1), nullptr, 16));
    }
  }
  return out;
}

std::vector<std::string> Names(const GdbThread& t) {
  std::vector<std::string> n;
  for (const Frame& f : t.frames) n.push_back(f.name);
  return n;
}

std::string Join(const std::vector<std::string>& v) {
  std::string s;
  for (const std::string& x : v) s += "  " + x + "\n";
  return s;
}

bool Has(const std::vector<std::string>& names, const std::string& what) {
  for (const std::string& n : names) {
    if (n.find(what) != std::string::npos) return true;
  }
  return false;
}

// The thread of `g` whose frames name `fn` (MainInner or WorkerInner).
const GdbThread* ThreadNaming(const GdbRun& g, const std::string& fn) {
  for (const GdbThread& t : g.threads) {
    if (Has(Names(t), fn)) return &t;
  }
  return nullptr;
}

// Frames from the first one naming `fn` down.
std::vector<std::string> From(const std::vector<std::string>& names,
                              const std::string& fn) {
  for (size_t i = 0; i < names.size(); ++i) {
    if (names[i].find(fn) != std::string::npos) {
      return {names.begin() + static_cast<long>(i), names.end()};
    }
  }
  return {};
}

std::unique_ptr<Scanner> ScannerFor(EVP_PKEY* pkey) {
  StatusOr<KeyForms> k = KeyForms::FromPkey(pkey, "test");
  EXPECT_TRUE(k.ok());
  std::vector<KeyForms> keys;
  keys.push_back(std::move(k).value());
  ScanOptions opt;
  opt.threads = 2;
  StatusOr<std::unique_ptr<Scanner>> s = Scanner::Create(std::move(keys), opt);
  EXPECT_TRUE(s.ok());
  return std::move(s).value();
}

size_t Count(const std::string& s, const std::string& what) {
  size_t n = 0;
  for (size_t p = s.find(what); p != std::string::npos;
       p = s.find(what, p + 1)) {
    ++n;
  }
  return n;
}

class UnwindDump : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    key_ = EVP_RSA_gen(2048);
    der_ = new std::string(Pkcs8Der(key_));
    kernel_dir_ = new TempDir();
    kernel_ = new DumpOutcome(RunChild(*der_, "kernel", *kernel_dir_));
    if (kernel_->path.empty()) return;
    kernel_gdb_ = new GdbRun(RunGdb(kernel_->path));
  }
  static void TearDownTestSuite() {
    delete kernel_gdb_;
    delete kernel_;
    delete kernel_dir_;
    if (der_ != nullptr) OPENSSL_cleanse(der_->data(), der_->size());
    delete der_;
    EVP_PKEY_free(key_);
  }
  void SetUp() override {
#if defined(SIGRACE_ASAN) || defined(SIGRACE_TSAN)
    GTEST_SKIP() << "dumps of a sanitizer-instrumented child hold the "
                    "shadow reservations; covered by the default build";
#endif
    if (!testing::HaveTool("gdb")) GTEST_SKIP() << "gdb not installed";
    ASSERT_NE(key_, nullptr);
    ASSERT_FALSE(der_->empty());
  }

  // Every check of a sigrace dump of `mode` against the kernel core.
  void CheckDump(const std::string& mode);

  static EVP_PKEY* key_;
  static std::string* der_;
  static TempDir* kernel_dir_;
  static DumpOutcome* kernel_;
  static GdbRun* kernel_gdb_;
};
EVP_PKEY* UnwindDump::key_ = nullptr;
std::string* UnwindDump::der_ = nullptr;
TempDir* UnwindDump::kernel_dir_ = nullptr;
DumpOutcome* UnwindDump::kernel_ = nullptr;
GdbRun* UnwindDump::kernel_gdb_ = nullptr;

void UnwindDump::CheckDump(const std::string& mode) {
  TempDir dir;
  const DumpOutcome d = RunChild(*der_, mode, dir);
  ASSERT_FALSE(d.path.empty()) << mode << ": no dump";
  StatusOr<std::unique_ptr<CoreReader>> reader = CoreReader::Open(d.path);
  ASSERT_TRUE(reader.ok()) << reader.status().ToString();
  const CoreReader& r = **reader;
  ASSERT_EQ(r.threads().size(), 2u);
  EXPECT_EQ(r.redaction_version(), kRedactionVersion);

  // gdb: exit 0, the marker never read as an address, and no warning
  // that the kernel's core of the same child does not draw too (gdb 13
  // assumes Intel's XSAVE offsets, so on a CPU that places PKRU
  // elsewhere it finds the kernel's own NT_X86_XSTATE "too small").
  const GdbRun g = RunGdb(d.path);
  EXPECT_EQ(g.rc, 0) << g.out;
  EXPECT_EQ(g.out.find("0x4445544341444552"), std::string::npos) << g.out;
  ASSERT_EQ(g.threads.size(), 2u) << g.out;
  if (kernel_gdb_ != nullptr) {
    for (const std::string& w : g.warnings) {
      EXPECT_EQ(kernel_gdb_->warnings.count(w), 1u)
          << "not drawn by the kernel's core: " << w << "\n"
          << g.out;
    }
    // The XSTATE note is the kernel's: its size, its XCR0.
    StatusOr<std::unique_ptr<CoreReader>> k = CoreReader::Open(kernel_->path);
    ASSERT_TRUE(k.ok()) << k.status().ToString();
    EXPECT_EQ(XstateNote(r), XstateNote(**k));
    EXPECT_NE(XstateNote(r).first, 0u);
    // The XSAVE layout note is the kernel's, byte for byte, where the
    // kernel writes one (6.9 and later).
    const std::string kernel_layout = XsaveLayoutNote(**k);
    if (!kernel_layout.empty()) {
      EXPECT_EQ(XsaveLayoutNote(r), kernel_layout);
    }
  } else {
    EXPECT_TRUE(g.warnings.empty()) << g.out;
  }

  // The handler's own unwind of every thread: the same pcs as gdb's.
  const std::map<long, std::vector<uint64_t>> hb = HandlerBacktraces(r);
  for (const GdbThread& t : g.threads) {
    auto it = hb.find(t.lwp);
    ASSERT_NE(it, hb.end()) << "no handler backtrace for " << t.lwp << "\n"
                            << r.backtrace();
    const std::vector<uint64_t> pcs = PhysicalPcs(t);
    ASSERT_GE(it->second.size(), pcs.size()) << g.out << r.backtrace();
    for (size_t i = 0; i < pcs.size(); ++i) {
      EXPECT_EQ(it->second[i], pcs[i])
          << "thread " << t.lwp << " frame " << i << "\n"
          << g.out << "\n"
          << r.backtrace();
    }
  }

  // The same frames and names as the kernel's unredacted core, down to
  // main and start_thread.
  const GdbThread* main_t = ThreadNaming(g, "MainInner");
  const GdbThread* worker_t = ThreadNaming(g, "WorkerInner");
  ASSERT_NE(main_t, nullptr) << g.out;
  ASSERT_NE(worker_t, nullptr) << g.out;
  EXPECT_EQ(main_t->lwp, r.threads()[0].tid);
  const std::vector<std::string> mn = Names(*main_t), wn = Names(*worker_t);
  EXPECT_EQ(mn.back(), "main") << Join(mn);
  EXPECT_TRUE(Has(wn, "start_thread")) << Join(wn);
  for (const char* fn :
       {"MainInner", "UnwindTestCfaExprFrame", "MainMiddle", "MainOuter"}) {
    EXPECT_TRUE(Has(mn, fn)) << fn << "\n" << Join(mn);
  }
  for (const char* fn : {"WorkerInner", "WorkerMiddle", "WorkerOuter"}) {
    EXPECT_TRUE(Has(wn, fn)) << fn << "\n" << Join(wn);
  }
  if (kernel_gdb_ == nullptr) {
    GTEST_SKIP() << "kernel core: " << kernel_->skip;
  }
  const GdbThread* kmain = ThreadNaming(*kernel_gdb_, "MainInner");
  const GdbThread* kworker = ThreadNaming(*kernel_gdb_, "WorkerInner");
  ASSERT_NE(kmain, nullptr) << kernel_gdb_->out;
  ASSERT_NE(kworker, nullptr) << kernel_gdb_->out;
  if (mode == "fatal") {
    EXPECT_EQ(mn, Names(*kmain)) << "sigrace:\n"
                                 << Join(mn) << "kernel:\n"
                                 << Join(Names(*kmain));
  } else {
    // A live dump is asked for where the kernel's core faults: the frames
    // above MainInner are the request's own.
    EXPECT_EQ(From(mn, "MainInner"), From(Names(*kmain), "MainInner"))
        << "sigrace:\n"
        << Join(mn) << "kernel:\n"
        << Join(Names(*kmain));
  }
  EXPECT_EQ(wn, Names(*kworker)) << "sigrace:\n"
                                 << Join(wn) << "kernel:\n"
                                 << Join(Names(*kworker));

  // eu-stack: exit 0, nothing on its error channel, both threads walked.
  if (testing::HaveTool("eu-stack")) {
    std::string out;
    const int rc =
        testing::RunCommand("eu-stack --core '" + d.path + "' --executable '" +
                                testing::SelfExe() + "' 2>&1",
                            &out);
    EXPECT_EQ(rc, 0) << out;
    EXPECT_EQ(out.find("eu-stack:"), std::string::npos) << out;
    EXPECT_EQ(Count(out, "TID "), 2u) << out;
    EXPECT_NE(out.find("MainInner"), std::string::npos) << out;
    EXPECT_NE(out.find("WorkerInner"), std::string::npos) << out;
  }
  // readelf: every note listed, no warning.
  if (testing::HaveTool("readelf")) {
    std::string out;
    EXPECT_EQ(testing::RunCommand("readelf -W -n '" + d.path + "' 2>&1", &out),
              0)
        << out;
    EXPECT_EQ(out.find("Warning"), std::string::npos) << out;
    static const std::regex kNote(R"(^\s+\S+\s+0x[0-9a-f]{8}\s)");
    std::istringstream in(out);
    std::string line;
    size_t notes = 0;
    while (std::getline(in, line)) notes += std::regex_search(line, kNote);
    EXPECT_EQ(notes, r.notes().size()) << out;
  }

  // The oracle: no fragment, nothing recorded and not applied, every
  // preserved word verified; and there are preserved words.
  std::unique_ptr<Scanner> scanner = ScannerFor(key_);
  StatusOr<ScanReport> rep = scanner->ScanFile(d.path);
  ASSERT_TRUE(rep.ok()) << rep.status().ToString();
  EXPECT_EQ(rep->leaks, 0u);
  EXPECT_EQ(rep->redactions_not_applied, 0u);
  EXPECT_TRUE(JudgeReport(*rep).clean()) << JudgeReport(*rep).reason;
  EXPECT_GE(r.preserved().size(), 4u);
  for (const PreservedCheck& c : CheckPreservedWords(r)) {
    EXPECT_TRUE(c.verified) << "word " << c.word << ": " << c.why;
  }
}

TEST_F(UnwindDump, KernelCoreHoldsTheKeyOnTheStack) {
  if (kernel_gdb_ == nullptr) GTEST_SKIP() << "kernel core: " << kernel_->skip;
  std::unique_ptr<Scanner> scanner = ScannerFor(key_);
  StatusOr<ScanReport> rep = scanner->ScanFile(kernel_->path);
  ASSERT_TRUE(rep.ok()) << rep.status().ToString();
  EXPECT_GT(rep->leaks, 0u);
  // The same frames as the sigrace dumps are compared with.
  EXPECT_NE(ThreadNaming(*kernel_gdb_, "MainInner"), nullptr)
      << kernel_gdb_->out;
  EXPECT_NE(ThreadNaming(*kernel_gdb_, "WorkerInner"), nullptr)
      << kernel_gdb_->out;
}

TEST_F(UnwindDump, FatalDumpUnwindsLikeKernelCore) { CheckDump("fatal"); }

TEST_F(UnwindDump, LiveDumpUnwindsLikeKernelCore) { CheckDump("live"); }

// Paired with the two above: a writer that keeps every word of the secret
// stacks (and lists each as preserved) is caught by the oracle's check of
// preserved words.
TEST_F(UnwindDump, PreserveEveryWordIsCaught) {
  TempDir dir;
  const DumpOutcome d = RunChild(*der_, "fatal", dir, "preserve-every-word");
  ASSERT_FALSE(d.path.empty());
  StatusOr<std::unique_ptr<CoreReader>> reader = CoreReader::Open(d.path);
  ASSERT_TRUE(reader.ok()) << reader.status().ToString();
  size_t rejected = 0;
  for (const PreservedCheck& c : CheckPreservedWords(**reader)) {
    rejected += !c.verified;
  }
  EXPECT_GT(rejected, 0u);
  std::unique_ptr<Scanner> scanner = ScannerFor(key_);
  StatusOr<ScanReport> rep = scanner->ScanFile(d.path);
  ASSERT_TRUE(rep.ok()) << rep.status().ToString();
  EXPECT_GT(rep->leaks, 0u);
  EXPECT_GT(rep->redactions_not_applied, 0u);
  size_t not_applied = 0;
  for (const Finding& f : rep->findings) {
    not_applied += f.kind == FindingKind::kRedactionNotApplied;
  }
  EXPECT_GT(not_applied, 0u);
  EXPECT_EQ(JudgeReport(*rep).verdict, DumpVerdict::kLeak);
}

}  // namespace
}  // namespace sigrace::crashdump::unwind_test

// The test's own main, so that the child's frames end in main as a
// program's do (and SIGRACE_TEST_REGRESSION is read before it runs).
int main(int argc, char** argv) {
  // NOLINTNEXTLINE(concurrency-mt-unsafe): one thread, before any other
  const char* mode = std::getenv(sigrace::crashdump::unwind_test::kChildEnv);
  if (mode != nullptr) {
    sigrace::crashdump::unwind_test::ChildMain(
        mode,
        std::getenv(  // NOLINT(concurrency-mt-unsafe)
            sigrace::crashdump::unwind_test::kDirEnv));
  }
  ::testing::InitGoogleTest(&argc, argv);
  return RUN_ALL_TESTS();
}
