// The scanner on real process dumps. A child process receives a private
// key as PEM through a pipe, loads it into OpenSSL 3, wipes the PEM, signs
// with the key, and then is dumped three ways: the kernel writes a core
// when it dies by SIGABRT, gdb's gcore dumps it alive, and sigrace's own
// handler writes a sealed dump when it aborts. The scanner must find p and
// q as little-endian 64-bit limbs (OpenSSL BIGNUM) and the Ed25519 seed.
//
// Every case is a pair: the same child loading a different key (one that
// the scanner does not know) must come out clean, while a scanner that
// knows that other key finds it in the same dump, so the clean verdict is
// not an empty dump.
//
// Key bytes are never printed: assertions look at findings (forms,
// offsets, lengths).

#include <fcntl.h>
#include <gtest/gtest.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include "crashdump/capture/handler.h"
#include "crashdump/oracle/key_forms.h"
#include "crashdump/oracle/scanner.h"
#include "testing/crash_test_util.h"

namespace sigrace::crashdump {
namespace {

using testing::TempDir;

struct PkeyFree {
  void operator()(EVP_PKEY* p) const { EVP_PKEY_free(p); }
};
using PkeyPtr = std::unique_ptr<EVP_PKEY, PkeyFree>;

enum class DumpKind { kKernel, kGcore, kHandler };

const char* Name(DumpKind k) {
  switch (k) {
    case DumpKind::kKernel:
      return "kernel core";
    case DumpKind::kGcore:
      return "gcore";
    case DumpKind::kHandler:
      return "sigrace handler dump";
  }
  return "?";
}

std::string Pem(EVP_PKEY* pkey) {
  BIO* bio = BIO_new(BIO_s_mem());
  PEM_write_bio_PrivateKey(bio, pkey, nullptr, nullptr, 0, nullptr, nullptr);
  char* p = nullptr;
  const long n = BIO_get_mem_data(bio, &p);
  std::string out(p, p + n);
  BIO_free(bio);
  return out;
}

// Runs in the child: read PEM from fd, load, wipe the text, sign. The key
// stays loaded, as a signer's would. Returns nullptr on failure.
EVP_PKEY* LoadAndSign(int fd) {
  std::string pem;
  char buf[4096];
  ssize_t n;
  while ((n = ::read(fd, buf, sizeof(buf))) > 0) pem.append(buf, n);
  ::close(fd);
  OPENSSL_cleanse(buf, sizeof(buf));
  BIO* bio = BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size()));
  EVP_PKEY* pkey = PEM_read_bio_PrivateKey(bio, nullptr, nullptr, nullptr);
  BIO_free(bio);
  OPENSSL_cleanse(pem.data(), pem.size());
  if (pkey == nullptr) return nullptr;
  EVP_MD_CTX* ctx = EVP_MD_CTX_new();
  const bool ed = EVP_PKEY_get_base_id(pkey) == EVP_PKEY_ED25519;
  static const unsigned char kMsg[] = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4In0";
  unsigned char sig[512];
  size_t siglen = sizeof(sig);
  if (EVP_DigestSignInit(ctx, nullptr, ed ? nullptr : EVP_sha256(), nullptr,
                         pkey) != 1 ||
      EVP_DigestSign(ctx, sig, &siglen, kMsg, sizeof(kMsg) - 1) != 1) {
    EVP_MD_CTX_free(ctx);
    return nullptr;
  }
  EVP_MD_CTX_free(ctx);
  return pkey;
}

constexpr int kKeyFd = 3;
constexpr int kReadyFd = 4;
constexpr char kChildEnv[] = "SIGRACE_SCANNER_CORE_CHILD";
constexpr char kDirEnv[] = "SIGRACE_SCANNER_CORE_DIR";

// The child: load the key, then be dumped. Never returns.
[[noreturn]] void ChildMain(const std::string& kind, const char* dir) {
  ::prctl(PR_SET_PDEATHSIG, SIGKILL);
  EVP_PKEY* pkey = LoadAndSign(kKeyFd);
  if (pkey == nullptr) ::_exit(3);
  if (kind == "gcore") {
#ifdef PR_SET_PTRACER
    ::prctl(PR_SET_PTRACER, PR_SET_PTRACER_ANY, 0, 0, 0);
#endif
    const char c = 'r';
    if (::write(kReadyFd, &c, 1) != 1) ::_exit(4);
    for (;;) ::pause();
  }
  ::close(kReadyFd);
  if (dir == nullptr || ::chdir(dir) != 0) ::_exit(5);
  struct rlimit rl = {0, 0};
  if (kind == "kernel") {
    rl.rlim_cur = rl.rlim_max = RLIM_INFINITY;
    if (::setrlimit(RLIMIT_CORE, &rl) != 0) {
      ::getrlimit(RLIMIT_CORE, &rl);
      rl.rlim_cur = rl.rlim_max;
      ::setrlimit(RLIMIT_CORE, &rl);
    }
  } else {
    // Only sigrace's dump: no kernel core next to it.
    ::setrlimit(RLIMIT_CORE, &rl);
    HandlerOptions ho;
    ho.target = DumpTarget::Directory(dir);
    ho.fatal = true;
    if (!InstallHandler(ho).ok()) ::_exit(6);
  }
  std::abort();
}

// Runs before gtest's main in the exec'd child.
const bool kIsChild = [] {
  const char* kind = std::getenv(kChildEnv);
  if (kind != nullptr) ChildMain(kind, std::getenv(kDirEnv));
  return false;
}();

// What a dump attempt produced: a path, or a reason to skip.
struct DumpOutcome {
  std::string path;
  std::string skip;
};

std::string FirstLine(const char* path) {
  std::ifstream in(path);
  std::string s;
  std::getline(in, s);
  return s;
}

// Forks a child that loads `pem` and is dumped by `kind` into dir.
DumpOutcome DumpChildHolding(const std::string& pem, DumpKind kind,
                             const TempDir& dir) {
  DumpOutcome out;
  if (kind == DumpKind::kKernel) {
    const std::string pattern = FirstLine("/proc/sys/kernel/core_pattern");
    if (pattern.empty() || pattern[0] == '|' ||
        pattern.find('/') != std::string::npos ||
        pattern.find('%') != std::string::npos) {
      out.skip = "kernel core_pattern '" + pattern +
                 "' does not write a plain file into the cwd";
      return out;
    }
  }
  if (kind == DumpKind::kGcore && !testing::HaveTool("gcore")) {
    out.skip = "gcore (gdb) is not installed";
    return out;
  }
  int key_pipe[2];
  int ready[2];
  if (::pipe(key_pipe) != 0 || ::pipe(ready) != 0) {
    out.skip = "pipe failed";
    return out;
  }
  // The PEM fits the pipe buffer: write it all before forking.
  if (::write(key_pipe[1], pem.data(), pem.size()) !=
      static_cast<ssize_t>(pem.size())) {
    out.skip = "pipe write failed";
    return out;
  }
  ::close(key_pipe[1]);
  // The child is a fresh exec of this binary, so it holds nothing of the
  // parent's memory (where every test key lives): only what the pipe hands
  // it. The static initializer below routes it to ChildMain.
  const pid_t pid = ::fork();
  if (pid == 0) {
    // Move both ends clear of 3 and 4 first so neither dup2 clobbers the
    // other.
    const int key_fd = ::fcntl(key_pipe[0], F_DUPFD, 100);
    const int ready_fd = ::fcntl(ready[1], F_DUPFD, 100);
    if (key_fd < 0 || ready_fd < 0) ::_exit(8);
    ::dup2(key_fd, kKeyFd);
    ::dup2(ready_fd, kReadyFd);
    // The test's only thread sets the environment its children inherit.
    ::setenv(kChildEnv,  // NOLINT(concurrency-mt-unsafe)
             kind == DumpKind::kKernel  ? "kernel"
             : kind == DumpKind::kGcore ? "gcore"
                                        : "handler",
             1);
    ::setenv(kDirEnv, dir.path().c_str(), 1);  // NOLINT(concurrency-mt-unsafe)
    char arg0[] = "scanner_core_test";
    char* argv[] = {arg0, nullptr};
    ::execv("/proc/self/exe", argv);
    ::_exit(7);
  }
  ::close(key_pipe[0]);
  ::close(ready[1]);
  if (pid < 0) {
    out.skip = "fork failed";
    return out;
  }
  if (kind == DumpKind::kGcore) {
    char c = 0;
    const bool up = ::read(ready[0], &c, 1) == 1;
    ::close(ready[0]);
    if (!up) {
      ::waitpid(pid, nullptr, 0);
      out.skip = "child did not load the key";
      return out;
    }
    const std::string base = dir.path() + "/gcore";
    std::string log;
    const int rc = testing::RunCommand(
        "gcore -o " + base + " " + std::to_string(pid), &log);
    ::kill(pid, SIGKILL);
    ::waitpid(pid, nullptr, 0);
    out.path = base + "." + std::to_string(pid);
    if (rc != 0 || ::access(out.path.c_str(), R_OK) != 0) {
      out.skip = "gcore could not attach (ptrace not permitted here?)";
      out.path.clear();
    }
    return out;
  }
  ::close(ready[0]);
  int status = 0;
  ::waitpid(pid, &status, 0);
  if (!WIFSIGNALED(status) || WTERMSIG(status) != SIGABRT) {
    out.skip =
        "child did not die by SIGABRT (status " + std::to_string(status) + ")";
    return out;
  }
  if (kind == DumpKind::kKernel && !WCOREDUMP(status)) {
    out.skip = "the kernel wrote no core (RLIMIT_CORE hard limit or policy)";
    return out;
  }
  const std::vector<std::string> files =
      kind == DumpKind::kKernel ? dir.Files("core") : dir.Files(".core");
  if (files.size() != 1) {
    out.skip = "expected one dump in " + dir.path() + ", found " +
               std::to_string(files.size());
    return out;
  }
  out.path = files[0];
  return out;
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

bool HasLeak(const ScanReport& r, const std::string& form) {
  for (const Finding& f : r.findings) {
    if (f.kind == FindingKind::kLeak && f.form == form && f.has_address) {
      return true;
    }
  }
  return false;
}

bool HasLeakOfPart(const ScanReport& r, const std::string& part) {
  for (const Finding& f : r.findings) {
    if (f.kind == FindingKind::kLeak && f.part == part) return true;
  }
  return false;
}

class ScannerCoreTest : public ::testing::TestWithParam<DumpKind> {
 protected:
  void SetUp() override {
#if defined(SIGRACE_ASAN) || defined(SIGRACE_TSAN)
    GTEST_SKIP() << "dumps of a sanitizer-instrumented child hold the "
                    "shadow reservations; covered by the default build";
#endif
  }
};

TEST_P(ScannerCoreTest, FindsRsaLimbsOfLoadedKey) {
  PkeyPtr key(EVP_RSA_gen(2048));
  PkeyPtr other(EVP_RSA_gen(2048));
  ASSERT_TRUE(key && other);
  std::unique_ptr<Scanner> scanner = ScannerFor(key.get());
  std::unique_ptr<Scanner> other_scanner = ScannerFor(other.get());

  // The child holds the key: p and q are found as limbs.
  {
    TempDir dir;
    DumpOutcome d = DumpChildHolding(Pem(key.get()), GetParam(), dir);
    if (!d.skip.empty()) GTEST_SKIP() << Name(GetParam()) << ": " << d.skip;
    StatusOr<ScanReport> r = scanner->ScanFile(d.path);
    ASSERT_TRUE(r.ok()) << r.status().ToString();
    EXPECT_NE(r->file_kind, FileKind::kRaw);
    EXPECT_EQ(r->file_kind == FileKind::kSigraceDump,
              GetParam() == DumpKind::kHandler);
    EXPECT_TRUE(HasLeak(*r, "rsa.p.le64")) << Name(GetParam());
    EXPECT_TRUE(HasLeak(*r, "rsa.q.le64")) << Name(GetParam());
    EXPECT_TRUE(HasLeak(*r, "rsa.d.le64")) << Name(GetParam());
    EXPECT_GT(r->leaks, 3u);
  }
  // The same child holding a key the scanner does not know: clean, yet
  // the other key's limbs are in that very dump.
  {
    TempDir dir;
    DumpOutcome d = DumpChildHolding(Pem(other.get()), GetParam(), dir);
    if (!d.skip.empty()) GTEST_SKIP() << Name(GetParam()) << ": " << d.skip;
    StatusOr<ScanReport> r = scanner->ScanFile(d.path);
    ASSERT_TRUE(r.ok()) << r.status().ToString();
    EXPECT_EQ(r->leaks, 0u) << Name(GetParam());
    EXPECT_EQ(r->anchors, 0u);
    StatusOr<ScanReport> o = other_scanner->ScanFile(d.path);
    ASSERT_TRUE(o.ok());
    EXPECT_TRUE(HasLeak(*o, "rsa.p.le64"));
  }
}

TEST_P(ScannerCoreTest, FindsEd25519SeedOfLoadedKey) {
  PkeyPtr key(EVP_PKEY_Q_keygen(nullptr, nullptr, "ED25519"));
  PkeyPtr other(EVP_PKEY_Q_keygen(nullptr, nullptr, "ED25519"));
  ASSERT_TRUE(key && other);
  std::unique_ptr<Scanner> scanner = ScannerFor(key.get());
  std::unique_ptr<Scanner> other_scanner = ScannerFor(other.get());
  {
    TempDir dir;
    DumpOutcome d = DumpChildHolding(Pem(key.get()), GetParam(), dir);
    if (!d.skip.empty()) GTEST_SKIP() << Name(GetParam()) << ": " << d.skip;
    StatusOr<ScanReport> r = scanner->ScanFile(d.path);
    ASSERT_TRUE(r.ok()) << r.status().ToString();
    EXPECT_TRUE(HasLeakOfPart(*r, "seed")) << Name(GetParam());
  }
  {
    TempDir dir;
    DumpOutcome d = DumpChildHolding(Pem(other.get()), GetParam(), dir);
    if (!d.skip.empty()) GTEST_SKIP() << Name(GetParam()) << ": " << d.skip;
    StatusOr<ScanReport> r = scanner->ScanFile(d.path);
    ASSERT_TRUE(r.ok()) << r.status().ToString();
    EXPECT_EQ(r->leaks, 0u) << Name(GetParam());
    StatusOr<ScanReport> o = other_scanner->ScanFile(d.path);
    ASSERT_TRUE(o.ok());
    EXPECT_TRUE(HasLeakOfPart(*o, "seed"));
  }
}

INSTANTIATE_TEST_SUITE_P(Dumps, ScannerCoreTest,
                         ::testing::Values(DumpKind::kKernel, DumpKind::kGcore,
                                           DumpKind::kHandler),
                         [](const ::testing::TestParamInfo<DumpKind>& i) {
                           switch (i.param) {
                             case DumpKind::kKernel:
                               return std::string("KernelCore");
                             case DumpKind::kGcore:
                               return std::string("Gcore");
                             case DumpKind::kHandler:
                               return std::string("SigraceHandler");
                           }
                           return std::string("Unknown");
                         });

}  // namespace
}  // namespace sigrace::crashdump
