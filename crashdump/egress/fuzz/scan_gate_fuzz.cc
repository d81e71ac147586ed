// libFuzzer target for the oracle's scan and the gate's judgment on hostile
// dumps: the bytes go into a memfd (no file name, nothing on disk), then
//   1. the raw scan (Scanner::Scan) of the bytes,
//   2. the ELF scan (Scanner::ScanFile) of the memfd, and
//   3. the fixed gate's judgment (Gate::JudgeFd: header checks, sealed
//      copy, reader, scan, verdict; no release)
// must each return a result or one clean line, every finding must lie
// inside the input, and the gate must never judge clean bytes in which the
// raw scan finds a leak. The key is a test key made from a fixed seed at
// start-up, in this process only; nothing prints key bytes.
// Built only with -DSIGRACE_FUZZ=ON (preset `fuzz`); the reader, scanner,
// judgement and gate sources are compiled into the target so that they
// carry the coverage instrumentation.
//
// Thread safety: libFuzzer calls the entry point from one thread; the
// scanner runs one worker thread.
// Not async-signal-safe.

#include <openssl/evp.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "base/status.h"
#include "crashdump/egress/gate.h"
#include "crashdump/oracle/judgement.h"
#include "crashdump/oracle/key_forms.h"
#include "crashdump/oracle/scanner.h"

namespace {

using sigrace::StatusOr;
using sigrace::crashdump::Finding;
using sigrace::crashdump::Gate;
using sigrace::crashdump::GateDecision;
using sigrace::crashdump::GateMode;
using sigrace::crashdump::GateOptions;
using sigrace::crashdump::IsLeak;
using sigrace::crashdump::KeyForms;
using sigrace::crashdump::Scanner;
using sigrace::crashdump::ScanOptions;
using sigrace::crashdump::ScanReport;

[[noreturn]] void Fail(const char* what) {
  std::fprintf(stderr, "scan_gate_fuzz: invariant broken: %s\n", what);
  std::abort();
}

void CheckMessage(const std::string& m) {
  if (m.empty()) Fail("empty error message");
  if (m.find('\n') != std::string::npos) Fail("multi-line error");
}

void CheckFindings(const std::vector<Finding>& findings, size_t size) {
  for (const Finding& f : findings) {
    if (f.length == 0) Fail("empty finding");
    if (f.file_offset > size || f.length > size - f.file_offset) {
      Fail("finding outside the input");
    }
  }
}

const Scanner* g_scanner = nullptr;
const Gate* g_gate = nullptr;

// A fixed Ed25519 test key: its seed is 32 bytes of a counter pattern,
// known to anyone who reads this file, and used nowhere else.
void Init() {
  uint8_t seed[32];
  for (size_t i = 0; i < sizeof seed; ++i) {
    seed[i] = static_cast<uint8_t>(0x5a ^ (i * 7));
  }
  EVP_PKEY* pkey =
      EVP_PKEY_new_raw_private_key(EVP_PKEY_ED25519, nullptr, seed, 32);
  if (pkey == nullptr) Fail("test key");
  StatusOr<KeyForms> forms = KeyForms::FromPkey(pkey, "fuzz-test-key");
  EVP_PKEY_free(pkey);
  if (!forms.ok()) Fail("key forms");
  std::vector<KeyForms> keys;
  keys.push_back(std::move(forms).value());
  ScanOptions options;
  options.threads = 1;
  options.chunk_size = size_t{1} << 20;
  StatusOr<std::unique_ptr<Scanner>> scanner =
      Scanner::Create(std::move(keys), options);
  if (!scanner.ok()) Fail("scanner");
  g_scanner = scanner->release();
  // JudgeFd never releases, so the release directory is never used.
  GateOptions gate_options;
  gate_options.mode = GateMode::kFixed;
  gate_options.max_data_bytes = uint64_t{1} << 24;
  g_gate = new Gate(g_scanner, gate_options);
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  Init();
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  // 1. The raw search.
  const std::vector<Finding> raw = g_scanner->Scan(data, size);
  CheckFindings(raw, size);
  size_t raw_leaks = 0;
  for (const Finding& f : raw) raw_leaks += IsLeak(f.kind) ? 1 : 0;

  const int fd = memfd_create("scan-gate-fuzz", MFD_CLOEXEC);
  if (fd < 0) Fail("memfd_create");
  for (size_t done = 0; done < size;) {
    const ssize_t n = write(fd, data + done, size - done);
    if (n <= 0) Fail("write to the memfd");
    done += static_cast<size_t>(n);
  }

  // 2. The ELF-aware scan of the same bytes, as `sigrace scan` runs it.
  StatusOr<ScanReport> report =
      g_scanner->ScanFile("/proc/self/fd/" + std::to_string(fd));
  if (!report.ok()) {
    CheckMessage(report.status().message());
  } else {
    if (report->file_size != size) Fail("report file_size");
    CheckFindings(report->findings, size);
    if (report->leaks < raw_leaks) Fail("ScanFile lost a raw leak");
  }

  // 3. The gate's judgment, as `sigrace gate` makes it.
  StatusOr<GateDecision> d = g_gate->JudgeFd(fd, "fuzz-input");
  if (!d.ok()) {
    CheckMessage(d.status().message());
  } else {
    if (d->reason.empty()) Fail("decision without a reason");
    CheckFindings(d->report.findings, size);
    const bool clean = d->reason == "clean";
    if (clean && !d->judgement.clean()) Fail("clean reason, unclean verdict");
    if (clean && raw_leaks > 0) Fail("gate judged a leaking input clean");
    if (clean && (!report.ok() || report->leaks > 0)) {
      Fail("gate judged clean what scan did not");
    }
  }
  close(fd);
  return 0;
}
