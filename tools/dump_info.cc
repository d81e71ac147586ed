#include "tools/dump_info.h"

#include <elf.h>
#include <signal.h>

#include <CLI/CLI.hpp>
#include <cinttypes>
#include <cstdio>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>

#include "base/hex.h"
#include "base/status.h"
#include "crashdump/format/core_reader.h"
#include "tools/common.h"
#include "tools/explain_symbols.h"

namespace sigrace::crashdump {
namespace {

// Dump-controlled text: every byte outside printable ASCII escaped
// (tools/common.h).
using tools::Printable;

// The process's arguments (NT_PRPSINFO pr_psargs) may carry a secret (a
// key given on a command line): only the program is printed, escaped and
// cut to kMaxProgram bytes; the other arguments are counted, never shown.
constexpr size_t kMaxProgram = 64;
struct ArgsSummary {
  std::string program;
  size_t more = 0;        // arguments after the program
  size_t more_bytes = 0;  // their bytes
};

ArgsSummary SummarizeArgs(std::string_view args) {
  ArgsSummary s;
  const size_t sp = args.find(' ');
  std::string_view program = args.substr(0, sp);
  s.program = Printable(program.substr(0, kMaxProgram));
  if (program.size() > kMaxProgram) s.program += "...";
  if (sp == std::string_view::npos) return s;
  std::string_view rest = args.substr(sp + 1);
  s.more_bytes = rest.size();
  bool in_word = false;
  for (char c : rest) {
    if (c != ' ' && !in_word) ++s.more;
    in_word = c != ' ';
  }
  return s;
}

std::string Hex16(uint64_t v) {
  char buf[24];
  std::snprintf(buf, sizeof(buf), "0x%016" PRIx64, v);
  return buf;
}

const char* SignalName(int sig) {
  switch (sig) {
    case SIGHUP:
      return "SIGHUP";
    case SIGINT:
      return "SIGINT";
    case SIGQUIT:
      return "SIGQUIT";
    case SIGILL:
      return "SIGILL";
    case SIGTRAP:
      return "SIGTRAP";
    case SIGABRT:
      return "SIGABRT";
    case SIGBUS:
      return "SIGBUS";
    case SIGFPE:
      return "SIGFPE";
    case SIGKILL:
      return "SIGKILL";
    case SIGUSR1:
      return "SIGUSR1";
    case SIGSEGV:
      return "SIGSEGV";
    case SIGUSR2:
      return "SIGUSR2";
    case SIGPIPE:
      return "SIGPIPE";
    case SIGALRM:
      return "SIGALRM";
    case SIGTERM:
      return "SIGTERM";
    case SIGSTOP:
      return "SIGSTOP";
    case SIGSYS:
      return "SIGSYS";
    default:
      return "";
  }
}

std::string SignalLabel(int sig) {
  if (sig == 0) return "-";
  const char* name = SignalName(sig);
  if (*name) return name;
  if (sig >= SIGRTMIN && sig <= SIGRTMAX) {
    return "SIGRTMIN+" + std::to_string(sig - SIGRTMIN);
  }
  return "signal " + std::to_string(sig);
}

std::string MachineName(uint16_t m) {
  switch (m) {
    case EM_X86_64:
      return "x86_64";
    case EM_AARCH64:
      return "aarch64";
    default:
      return "machine " + std::to_string(m);
  }
}

// Backtrace text as lines, without empty ones, symbols demangled.
std::vector<std::string> Lines(std::string_view text) {
  std::vector<std::string> out;
  while (!text.empty()) {
    const size_t nl = text.find('\n');
    std::string_view line = text.substr(0, nl);
    if (!line.empty()) {
      out.push_back(Printable(tools::DemangleBacktraceLine(line)));
    }
    if (nl == std::string_view::npos) break;
    text.remove_prefix(nl + 1);
  }
  return out;
}

std::string SealLine(const SealInfo& s) {
  if (s.state == SealState::kSealed) {
    return std::string("sealed (v") + std::to_string(s.version) +
           ", checksum " + Hex(s.checksum) +
           (s.checksum_verified ? ", verified)" : ", not verified)");
  }
  return s.reason;
}

nlohmann::json ToJson(const std::string& path, const CoreReader& r) {
  using nlohmann::json;
  json j;
  j["path"] = Printable(path);
  j["file_size"] = r.size();
  j["machine"] = MachineName(r.machine());
  const SealInfo& s = r.seal();
  j["seal"] = {{"state", SealStateName(s.state)},
               {"reason", s.reason},
               {"version", s.version},
               {"content_size", s.content_size},
               {"checksum", Hex(s.checksum)},
               {"checksum_verified", s.checksum_verified}};
  if (r.process()) {
    const ProcessInfo& p = *r.process();
    const ArgsSummary a = SummarizeArgs(p.args);
    j["process"] = {{"pid", p.pid},
                    {"ppid", p.ppid},
                    {"name", Printable(p.name)},
                    {"program", a.program},
                    {"more_args", a.more},
                    {"more_args_bytes", a.more_bytes}};
  } else {
    j["process"] = nullptr;
  }
  if (r.siginfo()) {
    const SigInfo& si = *r.siginfo();
    j["siginfo"] = {{"signo", si.signo},
                    {"signal", SignalName(si.signo)},
                    {"code", si.code},
                    {"errno", si.errnum},
                    {"addr", Hex(si.addr)}};
  } else {
    j["siginfo"] = nullptr;
  }
  j["threads"] = json::array();
  for (size_t i = 0; i < r.threads().size(); ++i) {
    const ThreadInfo& t = r.threads()[i];
    j["threads"].push_back({{"index", i},
                            {"tid", t.tid},
                            {"signal", t.signal},
                            {"signal_name", SignalName(t.signal)},
                            {"crashing", i == 0},
                            {"regs_known", t.regs_known},
                            {"pc", Hex(t.pc)},
                            {"sp", Hex(t.sp)},
                            {"bp", Hex(t.bp)}});
  }
  j["mappings"] = json::array();
  for (size_t i = 0; i < r.mappings().size(); ++i) {
    const Mapping& m = r.mappings()[i];
    j["mappings"].push_back({{"index", i},
                             {"start", Hex(m.vaddr)},
                             {"end", Hex(m.end())},
                             {"size", m.memsz},
                             {"perms", m.Perms()},
                             {"file_offset", m.offset},
                             {"file_size", m.filesz},
                             {"name", Printable(m.name)},
                             {"name_offset", m.name_offset}});
  }
  j["redactions"] = json::array();
  for (const Redaction& red : r.redactions()) {
    j["redactions"].push_back({{"kind", RedactionKindName(red.kind)},
                               {"label", Printable(red.label)},
                               {"start", Hex(red.vaddr)},
                               {"end", Hex(red.vaddr + red.len)},
                               {"len", red.len},
                               {"tid", red.tid}});
  }
  j["meta"] = json::array();
  for (const auto& [k, v] : r.meta()) {
    j["meta"].push_back({{"key", Printable(k)}, {"value", Printable(v)}});
  }
  j["backtrace"] = Lines(r.backtrace());
  j["has_sigrace_notes"] = r.has_sigrace_notes();
  return j;
}

std::string ToText(const std::string& path, const CoreReader& r) {
  std::string o;
  char buf[512];
  o += "dump:     " + Printable(path) + " (" + std::to_string(r.size()) +
       " bytes)\n";
  o += "seal:     " + SealLine(r.seal()) + "\n";
  o += "machine:  " + MachineName(r.machine()) + "\n";
  if (r.process()) {
    const ProcessInfo& p = *r.process();
    const ArgsSummary a = SummarizeArgs(p.args);
    o += "process:  pid " + std::to_string(p.pid) + ", ppid " +
         std::to_string(p.ppid) + ", name \"" + Printable(p.name) +
         "\", program \"" + a.program + "\" + " + std::to_string(a.more) +
         " arguments (" + std::to_string(a.more_bytes) + " bytes, not shown)\n";
  }
  if (r.siginfo()) {
    const SigInfo& si = *r.siginfo();
    o += "signal:   " + SignalLabel(si.signo) + " (" +
         std::to_string(si.signo) + "), code " + std::to_string(si.code) +
         ", addr " + Hex(si.addr) + "\n";
  }

  o += "\nthreads (" + std::to_string(r.threads().size()) +
       "; the first is the crashing thread):\n";
  std::snprintf(buf, sizeof(buf), "  %3s %8s  %-10s %-18s %-18s %s\n", "#",
                "tid", "signal", "pc", "sp", "bp");
  o += buf;
  for (size_t i = 0; i < r.threads().size(); ++i) {
    const ThreadInfo& t = r.threads()[i];
    const std::string regs = t.regs_known ? "" : " (registers not decoded)";
    std::snprintf(buf, sizeof(buf), "  %3zu %8d  %-10s %-18s %-18s %s%s\n", i,
                  t.tid, SignalLabel(t.signal).c_str(), Hex16(t.pc).c_str(),
                  Hex16(t.sp).c_str(), Hex16(t.bp).c_str(), regs.c_str());
    o += buf;
  }

  o += "\nmappings (" + std::to_string(r.mappings().size()) + "):\n";
  std::snprintf(buf, sizeof(buf), "  %-37s %12s %-4s %12s %12s  %s\n",
                "address range", "size", "perm", "file offset", "in file",
                "name");
  o += buf;
  for (const Mapping& m : r.mappings()) {
    const std::string range = Hex16(m.vaddr) + "-" + Hex16(m.end());
    std::string name = Printable(m.name);
    if (!m.name.empty() && m.name_offset != 0) {
      name += " @" + Hex(m.name_offset);
    }
    std::snprintf(buf, sizeof(buf),
                  "  %-37s %12" PRIu64 " %-4s %12" PRIu64 " %12" PRIu64 "  ",
                  range.c_str(), m.memsz, m.Perms().c_str(), m.offset,
                  m.filesz);
    o += buf + name + "\n";
  }

  o += "\nredactions (" + std::to_string(r.redactions().size()) + "):\n";
  for (const Redaction& red : r.redactions()) {
    std::string range = red.kind == RedactionKind::kRegisters
                            ? std::string("registers")
                            : Hex16(red.vaddr) + "-" +
                                  Hex16(red.vaddr + red.len) + " (" +
                                  std::to_string(red.len) + " bytes)";
    std::snprintf(buf, sizeof(buf), "  %-13s tid %-8d %-50s ",
                  RedactionKindName(red.kind).c_str(), red.tid, range.c_str());
    o += buf + std::string("\"") + Printable(red.label) + "\"\n";
  }

  o += "\nmeta (" + std::to_string(r.meta().size()) + "):\n";
  for (const auto& [k, v] : r.meta()) {
    o += "  " + Printable(k) + "=" + Printable(v) + "\n";
  }
  const std::vector<std::string> bt = Lines(r.backtrace());
  o += "\nbacktrace (" + std::to_string(bt.size()) + " frames):\n";
  for (const std::string& line : bt) o += "  " + line + "\n";
  if (!r.has_sigrace_notes()) {
    o += "\n(no sigrace notes: not a sigrace dump, or written by another "
         "dumper)\n";
  }
  return o;
}

int Fail(const std::string& path, const std::string& reason) {
  std::fprintf(stderr, "sigrace: dump-info: %s: %s\n", Printable(path).c_str(),
               Printable(reason).c_str());
  return 2;
}

}  // namespace

int DumpInfoMain(int argc, char** argv) {
  CLI::App app(
      "Print what the reader sees in a dump: seal state, threads, mappings, "
      "redactions, metadata and backtrace. Never prints memory contents.",
      "sigrace dump-info");
  std::string path;
  bool json = false;
  bool require_seal = false;
  app.add_option("DUMP", path, "dump file (ELF core)")->required();
  app.add_flag("--json", json,
               "one JSON object on stdout (schema in "
               "tools/dump_info.h)");
  app.add_flag("--require-seal", require_seal,
               "exit 2 unless the dump carries a valid seal trailer");
  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    // The message echoes the argument: escaped like every path.
    std::fprintf(stderr, "sigrace: dump-info: %s (see --help)\n",
                 Printable(e.what()).c_str());
    return 2;
  }

  ReaderOptions options;
  options.require_seal = require_seal;
  StatusOr<std::unique_ptr<CoreReader>> reader =
      CoreReader::Open(path, options);
  if (!reader.ok()) return Fail(path, reader.status().message());
  const CoreReader& r = **reader;
  std::string out;
  if (json) {
    out = ToJson(path, r).dump(2, ' ', false,
                               nlohmann::json::error_handler_t::replace) +
          "\n";
  } else {
    out = ToText(path, r);
  }
  if (std::fwrite(out.data(), 1, out.size(), stdout) != out.size() ||
      std::fflush(stdout) != 0) {
    return Fail(path, "cannot write to stdout");
  }
  return 0;
}

}  // namespace sigrace::crashdump
