#include "tools/gate.h"

#include <CLI/CLI.hpp>
#include <cstdio>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <utility>
#include <vector>

#include "crashdump/egress/gate.h"
#include "crashdump/oracle/scanner.h"
#include "tools/common.h"

namespace sigrace::crashdump {
namespace {

using tools::Printable;

// One line: whatever the message carries (a path, a flag value) is escaped.
int Fail(const std::string& msg) {
  std::fprintf(stderr, "sigrace: gate: %s\n", Printable(msg).c_str());
  return 2;
}

}  // namespace

int GateMain(int argc, char** argv) {
  CLI::App app(
      "Decide whether dumps may leave the secure environment: a dump is "
      "released only if it is sealed and holds no fragment of any key, and "
      "the bytes released are the bytes judged. Exit 0 all released, 1 a "
      "dump refused, 2 error. Never prints key bytes.",
      "sigrace gate");
  std::vector<std::string> key_paths, dumps;
  std::string release_dir, mode_name = "fixed", scanner_name = "oracle";
  size_t min_fragment = 16;
  bool json = false, list_modes = false;
  app.add_option("--key", key_paths, "private key file (PEM or DER); repeat")
      ->allow_extra_args(false);
  app.add_option("--release-dir", release_dir,
                 "directory released dumps are written to (must exist)");
  app.add_option("--mode", mode_name,
                 "fixed, or a race mode: judge-unsealed, reopen-to-release, "
                 "fail-open, rename-release, link-release (--list-modes)")
      ->capture_default_str();
  app.add_option("--scanner", scanner_name,
                 "oracle (every form of the key; needs --key) or legacy (a "
                 "credential scanner of the kind that was in use: PEM, "
                 "PKCS#1/PKCS#8 DER, private JWK; blind to OpenSSL's "
                 "in-memory forms)")
      ->capture_default_str();
  app.add_option("--min-fragment", min_fragment,
                 "F: shortest run of form bytes that counts (>= 8)")
      ->capture_default_str()
      ->check(tools::UintIn(8, 1048576));
  app.add_flag("--json", json, "one JSON object on stdout");
  app.add_flag("--list-modes", list_modes, "list the gate modes and exit");
  app.add_option("DUMP", dumps, "dumps to judge");
  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    return Fail(std::string(e.what()) + " (see --help)");
  }
  if (list_modes) {
    for (const GateModeInfo& m : ListGateModes()) {
      std::printf("%-18s %s\n", m.name, m.window);
    }
    return 0;
  }
  StatusOr<GateMode> mode = ParseGateMode(mode_name);
  if (!mode.ok()) return Fail(mode.status().message());
  StatusOr<GateScanner> which = ParseGateScanner(scanner_name);
  if (!which.ok()) return Fail(which.status().message());
  if (key_paths.empty() && *which == GateScanner::kOracle) {
    return Fail("--key is required (see --help)");
  }
  if (release_dir.empty()) return Fail("--release-dir is required");
  if (dumps.empty()) return Fail("no DUMP given (see --help)");

  ScanOptions opt;
  opt.min_fragment = min_fragment;
  std::unique_ptr<Scanner> oracle;
  if (!key_paths.empty()) {
    StatusOr<std::unique_ptr<Scanner>> scanner =
        Scanner::FromKeyFiles(key_paths, opt);
    if (!scanner.ok()) return Fail(scanner.status().message());
    oracle = std::move(scanner).value();
  }
  GateOptions gate_options;
  gate_options.mode = *mode;
  gate_options.release_dir = release_dir;
  gate_options.scanner = *which;
  Gate gate(oracle.get(), gate_options);

  int exit_code = 0;
  nlohmann::json jdumps = nlohmann::json::array();
  for (const std::string& path : dumps) {
    StatusOr<GateDecision> d = gate.Submit(path);
    if (!d.ok()) {
      std::fprintf(stderr, "sigrace: gate: %s: %s\n", Printable(path).c_str(),
                   Printable(d.status().message()).c_str());
      jdumps.push_back({{"path", Printable(path)},
                        {"error", Printable(d.status().message())}});
      exit_code = 2;
      continue;
    }
    if (!d->released && exit_code == 0) exit_code = 1;
    if (json) {
      jdumps.push_back(
          {{"path", Printable(path)},
           {"released", d->released},
           {"released_path", Printable(d->released_path)},
           {"reason", Printable(d->reason)},
           {"verdict", DumpVerdictName(d->judgement.verdict)},
           {"leaks", d->report.leaks},
           {"not_applied", d->report.not_applied},
           {"redactions_recorded", d->report.redactions_recorded},
           {"redactions_verified", d->report.redactions_verified},
           {"redacted_bytes_verified", d->report.redacted_bytes_verified},
           {"redactions_not_applied", d->report.redactions_not_applied},
           {"bytes_not_applied", d->report.bytes_not_applied},
           {"redactions_unchecked", d->report.redactions_unchecked},
           {"judged_size", d->judged_size},
           {"released_size", d->released_size}});
    } else {
      // The redaction counts, when the dump was scanned at all.
      const std::string counts =
          d->report.path.empty() ? "" : "; " + RedactionSummary(d->report);
      if (d->released) {
        std::printf(
            "%s: released -> %s (%llu bytes)%s\n", Printable(path).c_str(),
            Printable(d->released_path).c_str(),
            static_cast<unsigned long long>(d->released_size), counts.c_str());
      } else {
        std::printf("%s: refused: %s%s\n", Printable(path).c_str(),
                    Printable(d->reason).c_str(), counts.c_str());
      }
    }
  }
  if (json) {
    nlohmann::json out = {{"mode", mode_name},
                          {"scanner", GateScannerName(*which)},
                          {"dumps", jdumps},
                          {"exit_code", exit_code}};
    // Every string above is Printable (ASCII); replace is the backstop
    // that keeps the writer from throwing on invalid UTF-8.
    std::printf("%s\n", out.dump(2, ' ', false,
                                 nlohmann::json::error_handler_t::replace)
                            .c_str());
  }
  return exit_code;
}

}  // namespace sigrace::crashdump
