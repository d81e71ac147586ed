// The `sigrace` command: dispatches to subcommands.
//
// Each subcommand is a function taking its own argv (argv[0] is
// "sigrace SUBCOMMAND") and returning the process exit code:
// 0 success, 1 the expectation was not met / a leak was found,
// 2 usage or harness error (one line on stderr).

#include <cstdio>
#include <cstring>
#include <string>
#include <string_view>

#include "tools/ablate.h"
#include "tools/common.h"
#include "tools/dump_info.h"
#include "tools/explain.h"
#include "tools/gate.h"
#include "tools/gdb.h"
#include "tools/merge.h"
#include "tools/scan.h"
#include "tools/stress.h"
#include "tools/stress_flags.h"
#include "tools/token.h"

namespace {

struct Command {
  const char* name;
  const char* summary;
  int (*run)(int argc, char** argv);
  // Reads a key or drives processes that do (the oracle's processes):
  // made undumpable before it runs (tools/common.h).
  bool holds_keys;
};

constexpr Command kCommands[] = {
    {"dump-info",
     "print what a dump holds: seal, threads, mappings, "
     "redactions",
     sigrace::crashdump::DumpInfoMain, true},
    {"explain",
     "one screen: fault, backtrace, threads, redactions, timeline; "
     "--key places each finding on it",
     sigrace::crashdump::ExplainMain, true},
    {"gdb", "start gdb on a dump with the executable and libraries it names",
     sigrace::crashdump::GdbMain, false},
    {"token",
     "sign one JWS token (rs256|eddsa) and print it with the "
     "public JWK set",
     sigrace::signer::TokenMain, false},
    {"scan",
     "scan dumps for any fragment of a private key (exit 1 on a "
     "leak)",
     sigrace::crashdump::ScanMain, true},
    {"gate", "release a dump only if sealed and clean, exactly as judged",
     sigrace::crashdump::GateMain, true},
    {"stress",
     "run signing threads and fault injectors; scan every dump "
     "for the key",
     sigrace::stress::StressMain, true},
    {"repro", "the main job: reproduce every race variant, confirm fixed",
     sigrace::stress::ReproMain, true},
    {"merge", "combine the JSON reports of a sharded run into one verdict",
     sigrace::stress::MergeMain, false},
    {"report",
     "render JSON reports as one HTML page, or trends over nights "
     "(--history)",
     sigrace::stress::ReportMain, false},
    {"variants", "list the redaction-path variants and their windows",
     sigrace::stress::VariantsMain, false},
    {"ablate",
     "switch each protection of fixed off in turn; show each one is "
     "needed",
     sigrace::stress::AblateMain, true},
    // Hidden (summary nullptr): the worker process `sigrace stress` starts.
    // It holds the signer's keys and must be dumped, by its own handler.
    {"stress-child", nullptr, sigrace::stress::StressChildMain, false},
    {nullptr, nullptr, nullptr, false},
};

void PrintUsage(FILE* out) {
  std::fprintf(out,
               "usage: sigrace COMMAND [ARGS...]\n"
               "\n"
               "A race-condition regression harness for a token signer's\n"
               "redaction path.\n"
               "\n"
               "Commands:\n");
  for (const Command& c : kCommands) {
    if (c.name == nullptr || c.summary == nullptr) continue;
    std::fprintf(out, "  %-10s %s\n", c.name, c.summary);
  }
  std::fprintf(out,
               "\n"
               "Run 'sigrace COMMAND --help' for a command's flags.\n"
               "Exit codes: 0 ok, 1 expectation not met or leak found,\n"
               "2 usage or harness error.\n");
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    PrintUsage(stderr);
    return 2;
  }
  const std::string_view cmd = argv[1];
  if (cmd == "--help" || cmd == "-h" || cmd == "help") {
    PrintUsage(stdout);
    return 0;
  }
  for (const Command& c : kCommands) {
    if (c.name != nullptr && cmd == c.name) {
      if (c.holds_keys && !sigrace::tools::HoldKeysUndumpable(c.name)) {
        return 2;
      }
      // Every entry point: the signer's (token, the stress worker), the
      // oracle's (scan, gate) and the drivers, which reject a bad spec
      // before they start a worker.
      if (!sigrace::tools::ConfigureFailpointsFromEnv(c.name)) return 2;
      std::string prog = std::string("sigrace ") + c.name;
      argv[1] = prog.data();
      return c.run(argc - 1, argv + 1);
    }
  }
  std::fprintf(stderr, "sigrace: unknown command '%s' (see sigrace --help)\n",
               argv[1]);
  return 2;
}
