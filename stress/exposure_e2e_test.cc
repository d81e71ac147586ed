// End to end, the load-path workload models of signer/exposure_models.h
// against real dumps: runs the built `sigrace` binary (SIGRACE_BIN) as a
// subprocess, as stress_test does. Each model comes as a pair at the same
// seed and the same forced fault (failpoint sign.begin, after the signer's
// first key load, so the model's exposure is in place whatever the
// schedule):
//
//  - `dontdump` switched off (SIGRACE_ABLATE): `sigrace stress --variant
//    fixed --expect leak` finds the whole PKCS#8 DER in a one-page mapping,
//    the guarded key cache; with it on, the same run is clean (the page is
//    not in the dump).
//  - `key-heap-wipe` switched off: it finds the DER from byte 16 on (the
//    record's filled header covers the first 16) in the key-event log on
//    the ordinary heap; with it on, the record's tail is zeros: clean.
//
// One algorithm per mode keeps the run short: EdDSA live, RS256 fatal.

#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cinttypes>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>

namespace {

std::string Bin() {
  const char* b = getenv("SIGRACE_BIN");
  return b != nullptr ? b : "";
}

class TempDir {
 public:
  TempDir() {
    char t[] = "/tmp/sigrace-exposure-test-XXXXXX";
    path_ = mkdtemp(t) != nullptr ? t : "/tmp";
  }
  ~TempDir() { (void)!system(("rm -rf '" + path_ + "'").c_str()); }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

std::string ReadAll(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

nlohmann::json ReadJson(const std::string& path) {
  return nlohmann::json::parse(ReadAll(path), nullptr, false);
}

struct Cell {
  const char* alg;
  const char* mode;
};
constexpr Cell kCells[] = {{"eddsa", "live"}, {"rs256", "fatal"}};

// `sigrace stress --variant fixed` at a fixed seed and fault, with
// `ablate` ("" for none) in the environment; returns the exit code.
int RunFixed(const std::string& ablate, const Cell& cell,
             const std::string& expect, const TempDir& d) {
  const std::string env =
      ablate.empty() ? "env -u SIGRACE_ABLATE " : "SIGRACE_ABLATE=" + ablate;
  const std::string cmd =
      env + " '" + Bin() + "' stress --variant fixed --alg " + cell.alg +
      " --mode " + cell.mode +
      " --injectors failpoint --failpoint sign.begin --trials 2 --seed 5 "
      "--expect " +
      expect + " --quiet --out '" + d.path() + "/out' --report-json '" +
      d.path() + "/r.json' >'" + d.path() + "/log' 2>&1";
  const int st = system(cmd.c_str());
  return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

// The findings of the first leaking trial (its sidecar), or null.
nlohmann::json FirstLeakFindings(const TempDir& d) {
  const nlohmann::json r = ReadJson(d.path() + "/r.json");
  if (!r.is_object()) return nullptr;
  const nlohmann::json& first = r["cells"][0]["first_leak"];
  if (!first.is_object()) return nullptr;
  const nlohmann::json s = ReadJson(first["sidecar"].get<std::string>());
  if (!s.is_object() || !s["findings"].is_array()) return nullptr;
  return s["findings"];
}

// "load 0xLO-0xHI rw-...": the mapping's size in bytes, or 0.
uint64_t RegionBytes(const std::string& region) {
  uint64_t lo = 0;
  uint64_t hi = 0;
  if (sscanf(region.c_str(), "load 0x%" SCNx64 "-0x%" SCNx64, &lo, &hi) != 2 ||
      hi <= lo) {
    return 0;
  }
  return hi - lo;
}

bool EndsWith(const std::string& s, const std::string& tail) {
  return s.size() >= tail.size() &&
         s.compare(s.size() - tail.size(), tail.size(), tail) == 0;
}

class ExposureE2E : public ::testing::Test {
 protected:
  void SetUp() override {
    // ctest sets it; a run without it must not pass by doing nothing.
    if (Bin().empty()) GTEST_FAIL() << "SIGRACE_BIN not set";
  }
};

TEST_F(ExposureE2E, DontDumpOffLeaksTheGuardedKeyCache) {
#if defined(SIGRACE_ASAN)
  // With the switch off the writer dumps every MADV_DONTDUMP mapping, and
  // ASan's shadow is terabytes of them (handler_test skips the same way).
  GTEST_SKIP() << "ASan's DONTDUMP shadow would be dumped";
#endif
  for (const Cell& c : kCells) {
    TempDir d;
    ASSERT_EQ(RunFixed("dontdump", c, "leak", d), 0)
        << c.alg << " " << c.mode << ":\n"
        << ReadAll(d.path() + "/log");
    const nlohmann::json f = FirstLeakFindings(d);
    ASSERT_TRUE(f.is_array() && !f.empty()) << c.alg << " " << c.mode;
    for (const auto& x : f) {
      const std::string form = x["form"].get<std::string>();
      const std::string region = x["region"].get<std::string>();
      // The whole DER, from its first byte, in a page of its own.
      EXPECT_TRUE(EndsWith(form, ".pkcs8.der")) << c.alg << ": " << form;
      EXPECT_EQ(x["form_offset"].get<uint64_t>(), 0u) << c.alg;
      EXPECT_EQ(RegionBytes(region), 4096u) << c.alg << ": " << region;
      EXPECT_FALSE(x["redacted"].get<bool>()) << c.alg;
    }
  }
}

TEST_F(ExposureE2E, KeyHeapWipeOffLeaksThroughTheKeyEventRecord) {
  for (const Cell& c : kCells) {
    TempDir d;
    ASSERT_EQ(RunFixed("key-heap-wipe", c, "leak", d), 0)
        << c.alg << " " << c.mode << ":\n"
        << ReadAll(d.path() + "/log");
    const nlohmann::json f = FirstLeakFindings(d);
    ASSERT_TRUE(f.is_array() && !f.empty()) << c.alg << " " << c.mode;
    for (const auto& x : f) {
      const std::string form = x["form"].get<std::string>();
      const uint64_t off = x["form_offset"].get<uint64_t>();
      const uint64_t len = x["length"].get<uint64_t>();
      // The DER past the record's 16 header bytes: for Ed25519 exactly the
      // seed (PKCS#8 bytes 16-47), for RSA the DER from byte 16 to its end.
      const bool seed = form == "ed25519.seed" && off == 0 && len == 32;
      const bool der = form == "rsa.pkcs8.der" && off == 16 && len > 1000;
      EXPECT_TRUE(seed || der)
          << c.alg << ": " << form << "+" << off << " (" << len << " bytes)";
      // The log, not a page of its own.
      EXPECT_GT(RegionBytes(x["region"].get<std::string>()), 4096u) << c.alg;
      EXPECT_FALSE(x["redacted"].get<bool>()) << c.alg;
    }
  }
}

// The pair of both tests above: the same seed and fault with every
// protection on. Both exposures are in place (the cache page and the log
// exist in every signer), and the dump holds neither: the page is left
// out, and the record's tail is zeros.
TEST_F(ExposureE2E, EveryProtectionOnIsCleanAtTheSameSeedAndFault) {
  for (const Cell& c : kCells) {
    TempDir d;
    EXPECT_EQ(RunFixed("", c, "clean", d), 0) << c.alg << " " << c.mode << ":\n"
                                              << ReadAll(d.path() + "/log");
  }
}

}  // namespace
