#include "tools/explain_symbols.h"

#include <cxxabi.h>
#include <errno.h>
#include <fcntl.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>

#include "base/process.h"

namespace sigrace::tools {
namespace {

std::optional<uint64_t> ParseHex(std::string_view s) {
  if (s.size() < 3 || s[0] != '0' || (s[1] != 'x' && s[1] != 'X')) {
    return std::nullopt;
  }
  uint64_t v = 0;
  for (char c : s.substr(2)) {
    int d;
    if (c >= '0' && c <= '9') {
      d = c - '0';
    } else if (c >= 'a' && c <= 'f') {
      d = c - 'a' + 10;
    } else if (c >= 'A' && c <= 'F') {
      d = c - 'A' + 10;
    } else {
      return std::nullopt;
    }
    if (v >> 60) return std::nullopt;
    v = v << 4 | static_cast<uint64_t>(d);
  }
  return v;
}

// "#N 0xPC rest": N, PC and rest; nullopt for another shape.
struct LineParts {
  int number;
  uint64_t pc;
  std::string_view rest;  // "symbol+0xOFF", "??" or empty
};
std::optional<LineParts> SplitLine(std::string_view line) {
  if (line.empty() || line[0] != '#') return std::nullopt;
  const size_t sp = line.find(' ');
  if (sp == std::string_view::npos || sp < 2) return std::nullopt;
  int n = 0;
  for (char c : line.substr(1, sp - 1)) {
    if (c < '0' || c > '9' || n > 100000) return std::nullopt;
    n = n * 10 + (c - '0');
  }
  std::string_view tail = line.substr(sp + 1);
  const size_t sp2 = tail.find(' ');
  const std::optional<uint64_t> pc = ParseHex(tail.substr(0, sp2));
  if (!pc) return std::nullopt;
  return LineParts{n, *pc,
                   sp2 == std::string_view::npos ? std::string_view()
                                                 : tail.substr(sp2 + 1)};
}

// "symbol+0xOFF" into symbol and offset.
void SplitSymbol(std::string_view rest, std::string_view* sym, uint64_t* off) {
  *sym = rest;
  *off = 0;
  const size_t plus = rest.rfind("+0x");
  if (plus == std::string_view::npos) return;
  if (std::optional<uint64_t> o = ParseHex(rest.substr(plus + 1))) {
    *sym = rest.substr(0, plus);
    *off = *o;
  }
}

}  // namespace

std::string Demangle(std::string_view symbol) {
  if (symbol.size() < 3 || symbol.substr(0, 2) != "_Z") {
    return std::string(symbol);
  }
  const std::string s(symbol);
  int status = 0;
  std::unique_ptr<char, void (*)(void*)> out(
      abi::__cxa_demangle(s.c_str(), nullptr, nullptr, &status), &free);
  if (status != 0 || !out) return s;
  return out.get();
}

std::string DemangleBacktraceLine(std::string_view line) {
  const std::optional<LineParts> p = SplitLine(line);
  if (!p || p->rest.empty()) return std::string(line);
  std::string_view sym;
  uint64_t off = 0;
  SplitSymbol(p->rest, &sym, &off);
  const std::string head(line.substr(0, line.size() - p->rest.size()));
  return head + Demangle(sym) +
         std::string(p->rest.substr(sym.size(), p->rest.size() - sym.size()));
}

std::vector<BacktraceFrame> ParseBacktrace(std::string_view text) {
  std::vector<BacktraceFrame> out;
  while (!text.empty()) {
    const size_t nl = text.find('\n');
    const std::string_view line = text.substr(0, nl);
    if (std::optional<LineParts> p = SplitLine(line)) {
      BacktraceFrame f;
      f.number = p->number;
      f.pc = p->pc;
      std::string_view sym;
      SplitSymbol(p->rest, &sym, &f.offset);
      if (sym != "??") f.symbol = Demangle(sym);
      out.push_back(std::move(f));
    }
    if (nl == std::string_view::npos) break;
    text.remove_prefix(nl + 1);
  }
  return out;
}

std::optional<ModuleAddress> ModuleFor(const crashdump::CoreReader& r,
                                       uint64_t addr) {
  const std::optional<size_t> mi = r.MappingForAddress(addr);
  if (!mi) return std::nullopt;
  const crashdump::Mapping& m = r.mappings()[*mi];
  if (m.name.empty() || m.name[0] != '/') return std::nullopt;
  // The file's load bias: the start of its mapping at file offset 0.
  uint64_t base = 0;
  bool found = false;
  for (const crashdump::Mapping& o : r.mappings()) {
    if (o.name == m.name && o.name_offset == 0) {
      if (!found || o.vaddr < base) base = o.vaddr;
      found = true;
    }
  }
  if (!found || addr < base) return std::nullopt;
  return ModuleAddress{m.name, addr - base};
}

std::string ExecutableOf(const crashdump::CoreReader& r) {
  const crashdump::Mapping* best = nullptr;
  for (const crashdump::Mapping& m : r.mappings()) {
    if (m.name.empty() || m.name[0] != '/' || m.name_offset != 0) continue;
    if (best == nullptr || m.vaddr < best->vaddr) best = &m;
  }
  return best != nullptr ? best->name : "";
}

namespace {

// Runs argv with stdout into a string (stderr to /dev/null); "" on error.
std::string RunForOutput(const std::vector<std::string>& argv) {
  int fds[2];
  if (pipe2(fds, O_CLOEXEC) != 0) return "";
  const int devnull = open("/dev/null", O_WRONLY | O_CLOEXEC);
  SpawnOptions o;
  o.argv = argv;
  o.fds = {{fds[1], 1}};
  if (devnull >= 0) o.fds.push_back({devnull, 2});
  StatusOr<pid_t> pid = SpawnProcess(o);
  close(fds[1]);
  if (devnull >= 0) close(devnull);
  std::string out;
  if (pid.ok()) {
    char buf[4096];
    ssize_t n;
    while ((n = read(fds[0], buf, sizeof buf)) > 0 ||
           (n < 0 && errno == EINTR)) {
      if (n > 0) out.append(buf, static_cast<size_t>(n));
      if (out.size() > (size_t{16} << 20)) break;
    }
    bool killed = false;
    WaitProcess(*pid, 30000, &killed);
  }
  close(fds[0]);
  return out;
}

}  // namespace

std::map<uint64_t, SourceInfo> Symbolize(
    const crashdump::CoreReader& r, const std::vector<uint64_t>& addresses) {
  std::map<std::string, std::vector<std::pair<uint64_t, uint64_t>>> by_file;
  for (uint64_t a : addresses) {
    if (std::optional<ModuleAddress> m = ModuleFor(r, a)) {
      by_file[m->path].push_back({a, m->file_address});
    }
  }
  std::map<uint64_t, SourceInfo> out;
  for (const auto& [path, addrs] : by_file) {
    if (access(path.c_str(), R_OK) != 0) continue;
    std::vector<std::string> argv = {"/usr/bin/addr2line", "-f", "-C", "-e",
                                     path};
    for (const auto& a : addrs) {
      char hex[32];
      std::snprintf(hex, sizeof hex, "0x%llx",
                    static_cast<unsigned long long>(a.second));
      argv.push_back(hex);
    }
    const std::string text = RunForOutput(argv);
    size_t pos = 0;
    auto next_line = [&]() {
      if (pos >= text.size()) return std::string();
      size_t nl = text.find('\n', pos);
      if (nl == std::string::npos) nl = text.size();
      std::string line = text.substr(pos, nl - pos);
      pos = nl + 1;
      return line;
    };
    for (const auto& a : addrs) {
      if (pos >= text.size()) break;
      SourceInfo info;
      info.function = next_line();
      std::string line = next_line();
      if (info.function == "??") info.function.clear();
      // "path:line (discriminator N)"
      const size_t disc = line.find(" (discriminator");
      if (disc != std::string::npos) line.resize(disc);
      const bool unknown = line.empty() || line.rfind("??", 0) == 0 ||
                           line.size() < 2 ||
                           line.substr(line.size() - 2) == ":0" ||
                           line.substr(line.size() - 2) == ":?";
      if (!unknown) info.source = line;
      out[a.first] = info;
    }
  }
  return out;
}

}  // namespace sigrace::tools
