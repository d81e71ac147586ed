// The outside anchors of the scanning figures, on the literal set sigrace
// searches: every F-byte window of every private form of a key whose bytes
// are all secret (the fragments `sigrace scan` reports at --min-fragment F).
//
//   literal_scan --key K [--min-fragment F] --hyperscan FILE
//       Hyperscan block mode over FILE read in 1 MiB chunks (F - 1 bytes
//       of overlap), every literal at once (built only where libhs is).
//   literal_scan --key K [--min-fragment F] --rg RG FILE
//       runs ripgrep (-F -c -a) over FILE with the literals it can express:
//       windows of ASCII forms without a line feed (ripgrep's patterns are
//       lines of UTF-8), fed to it through a pipe, never a file.
//
// Prints one JSON line: {"tool", "literals", "bytes", "seconds" (wall),
// "cpu_s" (the scan's CPU time), "matches"}
// (counts and times only; literals are key bytes and never leave this
// process except through the pipe to ripgrep). Exit 2 on bad input.
//
// Thread safety: single-threaded.

#include <fcntl.h>
#include <openssl/pem.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <set>
#include <string>
#include <vector>

#ifdef SIGRACE_HAVE_HYPERSCAN
#include <hs/hs.h>
#endif

#include "crashdump/oracle/key_forms.h"

namespace {

using sigrace::crashdump::FormEncoding;
using sigrace::crashdump::KeyForms;

int Fail(const std::string& msg) {
  fprintf(stderr, "literal_scan: %s\n", msg.c_str());
  return 2;
}

// CPU seconds of this process (all threads).
double CpuNow() {
  timespec ts;
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) + ts.tv_nsec * 1e-9;
}

double Now() {
  return std::chrono::duration<double>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

// Distinct windows; ascii_only keeps those ripgrep can take as lines.
// The set holds key bytes: wiped before it is freed.
struct Literals {
  std::set<std::string> set;
  ~Literals() {
    for (const std::string& s : set) {
      OPENSSL_cleanse(const_cast<char*>(s.data()), s.size());
    }
  }
};

void Collect(const KeyForms& key, size_t f, bool ascii_only, Literals* out) {
  for (const auto& form : key.forms()) {
    if (!form.is_private() || form.size() < f) continue;
    if (ascii_only && form.encoding() != FormEncoding::kAscii) continue;
    for (size_t i = 0; i + f <= form.size(); ++i) {
      if (form.SecretBytesIn(i, i + f) != f) continue;
      const char* p = reinterpret_cast<const char*>(form.data()) + i;
      if (ascii_only && memchr(p, '\n', f) != nullptr) continue;
      out->set.emplace(p, f);
    }
  }
}

#ifdef SIGRACE_HAVE_HYPERSCAN
int OnMatch(unsigned, unsigned long long, unsigned long long, unsigned,
            void* ctx) {
  ++*static_cast<uint64_t*>(ctx);
  return 0;
}

int RunHyperscan(const Literals& lits, const std::string& path) {
  std::vector<const char*> exprs;
  std::vector<size_t> lens;
  std::vector<unsigned> flags, ids;
  for (const std::string& s : lits.set) {
    exprs.push_back(s.data());
    lens.push_back(s.size());
    flags.push_back(0);
    ids.push_back(static_cast<unsigned>(ids.size()));
  }
  hs_database_t* db = nullptr;
  hs_compile_error_t* err = nullptr;
  const double c0 = Now();
  if (hs_compile_lit_multi(exprs.data(), flags.data(), ids.data(), lens.data(),
                           static_cast<unsigned>(exprs.size()), HS_MODE_BLOCK,
                           nullptr, &db, &err) != HS_SUCCESS) {
    std::string m = err != nullptr ? err->message : "unknown";
    hs_free_compile_error(err);
    return Fail("hyperscan compile: " + m);
  }
  const double compile_s = Now() - c0;
  hs_scratch_t* scratch = nullptr;
  if (hs_alloc_scratch(db, &scratch) != HS_SUCCESS) {
    return Fail("hyperscan scratch");
  }
  const int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return Fail("cannot open " + path);
  constexpr size_t kChunk = size_t{1} << 20;
  const size_t overlap = lits.set.empty() ? 0 : lits.set.begin()->size() - 1;
  std::vector<char> buf(kChunk + overlap);
  uint64_t matches = 0, bytes = 0;
  size_t carry = 0;
  const double t0 = Now();
  const double c_0 = CpuNow();
  for (;;) {
    const ssize_t r = read(fd, buf.data() + carry, kChunk);
    if (r < 0) return Fail("read " + path);
    if (r == 0) break;
    bytes += static_cast<uint64_t>(r);
    const size_t len = carry + static_cast<size_t>(r);
    hs_scan(db, buf.data(), static_cast<unsigned>(len), 0, scratch, OnMatch,
            &matches);
    carry = std::min(overlap, len);
    memmove(buf.data(), buf.data() + len - carry, carry);
  }
  const double secs = Now() - t0;
  const double cpu = CpuNow() - c_0;
  close(fd);
  hs_free_scratch(scratch);
  hs_free_database(db);
  printf(
      "{\"tool\": \"hyperscan\", \"literals\": %zu, \"bytes\": %llu, "
      "\"seconds\": %.6f, \"cpu_s\": %.6f, \"compile_s\": %.6f, "
      "\"matches\": %llu}\n",
      lits.set.size(), static_cast<unsigned long long>(bytes), secs, cpu,
      compile_s, static_cast<unsigned long long>(matches));
  return 0;
}
#endif

int RunRipgrep(const Literals& lits, const std::string& rg,
               const std::string& path) {
  int pats[2], out[2];
  if (pipe(pats) != 0 || pipe(out) != 0) return Fail("pipe");
  const double t0 = Now();
  const pid_t pid = fork();
  if (pid == 0) {
    dup2(out[1], 1);
    close(pats[1]);
    close(out[0]);
    const std::string pf = "/dev/fd/" + std::to_string(pats[0]);
    execl(rg.c_str(), "rg", "--no-config", "-F", "-c", "-a", "-j1", "-f",
          pf.c_str(), path.c_str(), static_cast<char*>(nullptr));
    _exit(127);
  }
  close(pats[0]);
  close(out[1]);
  std::string all;
  for (const std::string& s : lits.set) {
    all += s;
    all.push_back('\n');
  }
  size_t off = 0;
  while (off < all.size()) {
    const ssize_t w = write(pats[1], all.data() + off, all.size() - off);
    if (w <= 0) break;
    off += static_cast<size_t>(w);
  }
  OPENSSL_cleanse(all.data(), all.size());
  close(pats[1]);
  char count[64] = {};
  (void)!read(out[0], count, sizeof(count) - 1);
  close(out[0]);
  int st = 0;
  struct rusage ru = {};
  wait4(pid, &st, 0, &ru);
  const double secs = Now() - t0;
  const double cpu =
      static_cast<double>(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
      (ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) * 1e-6;
  // rg exits 1 when nothing matched: that is the expected result here.
  if (!WIFEXITED(st) || WEXITSTATUS(st) > 1) return Fail("ripgrep failed");
  struct stat sb;
  const uint64_t bytes =
      stat(path.c_str(), &sb) == 0 ? static_cast<uint64_t>(sb.st_size) : 0;
  printf(
      "{\"tool\": \"ripgrep\", \"literals\": %zu, \"bytes\": %llu, "
      "\"seconds\": %.6f, \"cpu_s\": %.6f, \"matches\": %lld}\n",
      lits.set.size(), static_cast<unsigned long long>(bytes), secs, cpu,
      atoll(count));
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  std::string key, rg, file;
  bool hyperscan = false;
  size_t f = 16;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--key" && i + 1 < argc) {
      key = argv[++i];
    } else if (a == "--min-fragment" && i + 1 < argc) {
      f = strtoul(argv[++i], nullptr, 10);
    } else if (a == "--rg" && i + 1 < argc) {
      rg = argv[++i];
    } else if (a == "--hyperscan") {
      hyperscan = true;
    } else if (!a.empty() && a[0] != '-' && file.empty()) {
      file = a;
    } else {
      return Fail("unknown argument '" + a + "'");
    }
  }
  if (key.empty() || file.empty() || f < 8 || f > 4096 ||
      (rg.empty() == !hyperscan)) {
    return Fail(
        "usage: literal_scan --key K [--min-fragment F] "
        "(--hyperscan | --rg RG) FILE");
  }
  auto forms = KeyForms::FromFile(key);
  if (!forms.ok()) return Fail(forms.status().ToString());
  Literals lits;
  Collect(*forms, f, !rg.empty(), &lits);
  if (!rg.empty()) return RunRipgrep(lits, rg, file);
#ifdef SIGRACE_HAVE_HYPERSCAN
  return RunHyperscan(lits, file);
#else
  return Fail("built without Hyperscan (libhyperscan-dev)");
#endif
}
