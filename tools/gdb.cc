#include "tools/gdb.h"

#include <unistd.h>

#include <CLI/CLI.hpp>
#include <cstdio>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "crashdump/format/core_reader.h"
#include "tools/common.h"
#include "tools/explain_symbols.h"

namespace sigrace::crashdump {
namespace {

int Fail(const std::string& what) {
  std::string line = tools::Printable(what);
  std::fprintf(stderr, "sigrace: gdb: %s\n", line.c_str());
  return 2;
}

// Single-quoted for a POSIX shell.
std::string Quote(const std::string& s) {
  std::string out = "'";
  for (char ch : s) {
    if (ch == '\'') {
      out += "'\\''";
    } else {
      out += ch;
    }
  }
  return out + "'";
}

}  // namespace

StatusOr<std::vector<std::string>> GdbCommandLine(const std::string& dump,
                                                  const std::string& gdb_path) {
  StatusOr<std::unique_ptr<CoreReader>> reader = CoreReader::Open(dump);
  if (!reader.ok()) return reader.status();
  const CoreReader& r = **reader;
  const std::string exe = tools::ExecutableOf(r);
  if (exe.empty()) {
    return NotFoundError("the dump names no executable (no NT_FILE note)");
  }
  if (access(exe.c_str(), R_OK) != 0) {
    return NotFoundError("the executable the dump names, " + exe +
                         ", is not readable here");
  }
  // Every directory a mapped shared object came from, in address order,
  // and each object's load bias (its mapping at file offset 0).
  std::vector<std::string> dirs;
  std::vector<std::pair<std::string, uint64_t>> libs;
  std::set<std::string> seen;
  for (const Mapping& m : r.mappings()) {
    if (m.name.empty() || m.name[0] != '/' || m.name == exe) continue;
    if (m.name.find(".so") == std::string::npos) continue;
    const std::string dir = m.name.substr(0, m.name.rfind('/'));
    if (!dir.empty() && seen.insert(dir).second) dirs.push_back(dir);
    if (m.name_offset == 0 && seen.insert(m.name).second &&
        access(m.name.c_str(), R_OK) == 0) {
      libs.push_back({m.name, m.vaddr});
    }
  }
  std::string search;
  for (const std::string& d : dirs) search += (search.empty() ? "" : ":") + d;
  std::vector<std::string> argv = {gdb_path, "-q", "-iex", "set sysroot /"};
  if (!search.empty()) {
    argv.push_back("-iex");
    argv.push_back("set solib-search-path " + search);
  }
  argv.push_back(exe);
  argv.push_back(dump);
  // gdb finds a core's libraries through the dynamic linker's list in the
  // dumped memory; where it cannot read it ("No shared libraries loaded"),
  // the files the dump names at the addresses it names still give every
  // frame its symbols. add-symbol-file asks to confirm, hence confirm off.
  if (!libs.empty()) {
    argv.push_back("-ex");
    argv.push_back("set confirm off");
    for (const auto& [path, base] : libs) {
      char off[32];
      std::snprintf(off, sizeof off, "0x%llx",
                    static_cast<unsigned long long>(base));
      argv.push_back("-ex");
      argv.push_back("add-symbol-file " + path + " -o " + off);
    }
    argv.push_back("-ex");
    argv.push_back("set confirm on");
  }
  return argv;
}

int GdbMain(int argc, char** argv) {
  CLI::App app(
      "Start gdb on a dump with the executable and libraries it names, and "
      "say what to type next.",
      "sigrace gdb");
  std::string dump;
  std::string gdb_path = "/usr/bin/gdb";
  bool print_only = false;
  app.add_option("DUMP", dump, "dump file (ELF core)")->required();
  app.add_option("--gdb", gdb_path, "the gdb to run")->capture_default_str();
  app.add_flag("--print", print_only,
               "print the gdb command line (shell-quoted) and exit");
  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    std::string what = e.what();
    for (char& ch : what) {
      if (ch == '\n') ch = ' ';
    }
    return Fail(what + " (see --help)");
  }
  StatusOr<std::vector<std::string>> cmd = GdbCommandLine(dump, gdb_path);
  if (!cmd.ok()) return Fail(dump + ": " + cmd.status().message());
  std::string line;
  for (const std::string& a : *cmd)
    line += (line.empty() ? "" : " ") + Quote(a);
  if (print_only) {
    std::printf("%s\n", line.c_str());
    return std::fflush(stdout) == 0 ? 0 : 2;
  }
  std::fprintf(
      stderr,
      "sigrace: gdb: %s\n"
      "Then type:\n"
      "  bt                      the crashing thread's backtrace\n"
      "  info threads            every thread the dump froze\n"
      "  thread apply all bt     every thread's backtrace\n"
      "  p $_siginfo             the fault (signal, code, address)\n"
      "  frame N / info locals   one frame (secret ranges read as "
      "\"SIGRACE:REDACTED\")\n"
      "  info registers          (marker bytes in a thread that was inside a "
      "SecretScope)\n"
      "`sigrace explain DUMP` says the same on one screen, with the "
      "registry's timeline.\n",
      tools::Printable(line).c_str());
  std::fflush(stderr);
  std::vector<char*> args;
  for (std::string& a : *cmd) args.push_back(a.data());
  args.push_back(nullptr);
  execv(args[0], args.data());
  return Fail(std::string("cannot start ") + gdb_path);
}

}  // namespace sigrace::crashdump
