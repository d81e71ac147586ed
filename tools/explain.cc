#include "tools/explain.h"

#include <signal.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <cinttypes>
#include <cstdio>
#include <fstream>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>
#include <sstream>
#include <string>
#include <string_view>
#include <vector>

#include "base/hex.h"
#include "base/secret_memory.h"
#include "crashdump/format/core_reader.h"
#include "crashdump/format/flight_recorder.h"
#include "crashdump/oracle/judgement.h"
#include "crashdump/oracle/scanner.h"
#include "signer/deterministic_keygen.h"
#include "signer/signer.h"
#include "stress/key_oracle.h"
#include "stress/trial.h"
#include "tools/common.h"
#include "tools/explain_symbols.h"

namespace sigrace::crashdump {
namespace {

using nlohmann::json;
using tools::Printable;

constexpr uint64_t kPageSize = 4096;
// Findings explained one by one in the text; the JSON lists all.
constexpr size_t kMaxTextFindings = 12;
// Flight-recorder events shown in the text (the last ones, plus every
// event a finding names).
constexpr size_t kTimelineTail = 16;

int Fail(const std::string& what) {
  std::string line = Printable(what);
  for (char& c : line) {
    if (c == '\n' || c == '\r') c = ' ';
  }
  std::fprintf(stderr, "sigrace: explain: %s\n", line.c_str());
  return 2;
}

const char* SignalName(int sig) {
  switch (sig) {
    case SIGSEGV:
      return "SIGSEGV";
    case SIGBUS:
      return "SIGBUS";
    case SIGABRT:
      return "SIGABRT";
    case SIGILL:
      return "SIGILL";
    case SIGFPE:
      return "SIGFPE";
    case SIGTRAP:
      return "SIGTRAP";
    case SIGKILL:
      return "SIGKILL";
    case SIGTERM:
      return "SIGTERM";
    default:
      break;
  }
  if (sig >= SIGRTMIN && sig <= SIGRTMAX) return "SIGRTMIN+n (dump request)";
  return "";
}

std::string SignalLabel(int sig) {
  const char* n = SignalName(sig);
  if (sig >= SIGRTMIN && sig <= SIGRTMAX) {
    return "SIGRTMIN+" + std::to_string(sig - SIGRTMIN) +
           " (live dump request)";
  }
  return *n ? n : "signal " + std::to_string(sig);
}

std::string CodeLabel(int signo, int code) {
  switch (code) {
    case SI_USER:
      return "SI_USER (kill)";
    case SI_TKILL:
      return "SI_TKILL (tgkill/raise)";
    case SI_QUEUE:
      return "SI_QUEUE";
    case SI_TIMER:
      return "SI_TIMER";
    default:
      break;
  }
  if (signo == SIGSEGV && code == SEGV_MAPERR) return "SEGV_MAPERR";
  if (signo == SIGSEGV && code == SEGV_ACCERR) return "SEGV_ACCERR";
  if (signo == SIGBUS && code == BUS_ADRERR) return "BUS_ADRERR";
  return std::to_string(code);
}

// "3.2 us", "152 us", "1.30 ms", "2.10 s".
std::string Duration(uint64_t ns) {
  char b[32];
  if (ns < 1000) {
    std::snprintf(b, sizeof b, "%" PRIu64 " ns", ns);
  } else if (ns < 10000) {
    std::snprintf(b, sizeof b, "%.1f us", static_cast<double>(ns) / 1e3);
  } else if (ns < 1000000) {
    std::snprintf(b, sizeof b, "%.0f us", static_cast<double>(ns) / 1e3);
  } else if (ns < 1000000000) {
    std::snprintf(b, sizeof b, "%.2f ms", static_cast<double>(ns) / 1e6);
  } else {
    std::snprintf(b, sizeof b, "%.2f s", static_cast<double>(ns) / 1e9);
  }
  return b;
}

struct Context {
  const CoreReader* r = nullptr;
  std::optional<FlightLog> flight;
  int32_t crash_tid = 0;
  std::string role;              // of the crashing thread, from the trial meta
  std::set<int32_t> scope_tids;  // threads inside a SecretScope
  // Threads whose registers are redacted: "registers" (all of them, inside
  // a SecretScope) or "simd-registers" (the SIMD data registers only).
  std::map<int32_t, std::string> register_tids;
};

// The timeline's zero: the signal's entry into the handler (a version 2
// note), else the instant the handler read the ring.
uint64_t ZeroNs(const Context& c) {
  if (!c.flight) return 0;
  return c.flight->fault_ns != 0 ? c.flight->fault_ns : c.flight->read_ns;
}

// "the fault" (the signal's entry) or "the dump" (a note without it).
const char* ZeroName(const Context& c) {
  return c.flight && c.flight->fault_ns != 0 ? "the fault" : "the dump";
}

// Nanoseconds from `e` to the timeline's zero; 0 for an event after it.
uint64_t BeforeDump(const Context& c, const FlightEntry& e) {
  const uint64_t zero = ZeroNs(c);
  return zero > e.time_ns ? zero - e.time_ns : 0;
}

bool AfterZero(const Context& c, const FlightEntry& e) {
  return !e.torn() && e.time_ns > ZeroNs(c);
}

// "3.2 us before the fault", "1.1 us after the fault".
std::string When(const Context& c, const FlightEntry& e) {
  if (AfterZero(c, e)) {
    return Duration(e.time_ns - ZeroNs(c)) + " after " + ZeroName(c);
  }
  return Duration(BeforeDump(c, e)) + " before " + ZeroName(c);
}

std::string Who(const Context& c, int32_t tid) {
  std::string s = "thread " + std::to_string(tid);
  if (tid == c.crash_tid) {
    s += c.role.empty()
             ? " (the crashing thread)"
             : " (the " + Printable(c.role) + ", the crashing thread)";
  }
  return s;
}

std::string Range(uint64_t a, uint64_t len) {
  return "[" + Hex(a) + ", +" + std::to_string(len) + ")";
}

// Is `e` the last valid event of its thread in the log?
bool LastOfThread(const Context& c, const FlightEntry& e) {
  for (const FlightEntry& o : c.flight->events) {
    if (!o.torn() && o.tid == e.tid && o.index > e.index) return false;
  }
  return true;
}

struct Placement {
  const FlightEntry* event = nullptr;
  std::string label;  // the range's label at the address or page
  uint64_t page = 0;
  std::string explanation;
};

// A finding no range ever held, on a thread's live stack (between its sp
// and the top of the stack's mapping): placed relative to that thread's
// SecretScope, the cover a stack has. Nullopt when it is on no stack.
std::optional<Placement> OnThreadStack(const Context& c, const Finding& f,
                                       uint64_t page) {
  const Mapping* map = nullptr;
  for (const Mapping& m : c.r->mappings()) {
    if (f.address >= m.vaddr && f.address - m.vaddr < m.memsz) map = &m;
  }
  if (map == nullptr) return std::nullopt;
  for (const ThreadInfo& t : c.r->threads()) {
    if (!t.regs_known || t.sp < map->vaddr || t.sp - map->vaddr >= map->memsz ||
        f.address < t.sp) {
      continue;
    }
    Placement p;
    p.page = page;
    p.label = "stack of thread " + std::to_string(t.tid);
    const FlightEntry* scope = nullptr;  // its last scope event
    for (const FlightEntry& e : c.flight->events) {
      if (!e.torn() && e.tid == t.tid &&
          (e.kind == kFlightScopeEnter || e.kind == kFlightScopeExit)) {
        scope = &e;
      }
    }
    const std::string depth =
        std::to_string(f.address - t.sp) + " bytes above its sp";
    if (scope == nullptr) {
      p.explanation = "on the stack of " + Who(c, t.tid) + ", " + depth +
                      "; the recorder holds no SecretScope of that thread: "
                      "the frame that held it ran outside any scope";
    } else if (scope->kind == kFlightScopeEnter) {
      p.event = scope;
      p.explanation =
          "on the stack of " + Who(c, t.tid) + ", " + depth + ", " +
          (f.address < scope->addr
               ? std::to_string(scope->addr - f.address) +
                     " bytes below the cover its SecretScope took"
               : std::string("outside the cover its SecretScope took")) +
          " (" + Range(scope->addr, scope->len) + ", entered " +
          When(c, *scope) +
          "): the frames called below the scope's cover hold it";
    } else {
      p.event = scope;
      p.explanation = "on the stack of " + Who(c, t.tid) + ", " + depth +
                      "; its SecretScope " + Range(scope->addr, scope->len) +
                      " was left " + When(c, *scope) +
                      " and the bytes stayed, not wiped";
    }
    return p;
  }
  return std::nullopt;
}

Placement Place(const Context& c, const Finding& f) {
  Placement p;
  p.page = f.address & ~(kPageSize - 1);
  if (!c.flight) {
    p.explanation =
        "the dump has no flight recorder note: no timeline to place it on";
    return p;
  }
  const FlightEntry* hold = nullptr;  // last event whose range holds it
  const FlightEntry* page = nullptr;  // last range event on its page
  for (const FlightEntry& e : c.flight->events) {
    if (e.torn()) continue;
    if (e.Holds(f.address)) hold = &e;
    const bool range_event = e.kind == kFlightPublish ||
                             e.kind == kFlightUpdate ||
                             e.kind == kFlightUnpublish;
    auto on_page = [&](uint64_t a, uint64_t l) {
      return l != 0 && a < p.page + kPageSize && p.page < a + l;
    };
    if (range_event &&
        (on_page(e.addr, e.len) ||
         (e.kind == kFlightUpdate && on_page(e.prev_addr, e.prev_len)))) {
      page = &e;
    }
  }
  auto describe = [&](const FlightEntry& e) {
    std::string s = Who(c, e.tid) + ", " + When(c, e);
    if (e.tid == c.crash_tid && LastOfThread(c, e)) {
      s += " (its last registry event before the fault)";
    }
    return s;
  };
  if (hold != nullptr) {
    const FlightEntry& e = *hold;
    p.event = hold;
    p.label = e.label;
    const std::string what = "\"" + Printable(e.label) + "\" ";
    if (e.kind == kFlightUnpublish) {
      p.explanation = "the range " + what + Range(e.addr, e.len) +
                      " was unpublished by " + describe(e) +
                      "; no event covered it again, yet the bytes are in "
                      "the clear: the wipe had not run over them when the "
                      "cover went, or they were written there after it";
    } else if (e.kind == kFlightScopeExit) {
      p.explanation = Who(c, e.tid) + " left its SecretScope (stack " +
                      Range(e.addr, e.len) + ") " + When(c, e) +
                      "; the bytes stayed on its stack, not wiped";
    } else if (e.kind == kFlightUpdate && !(e.len != 0 && f.address >= e.addr &&
                                            f.address - e.addr < e.len)) {
      p.explanation = "the cover " + what + "moved away from it, from " +
                      Range(e.prev_addr, e.prev_len) + " to " +
                      Range(e.addr, e.len) + ", by " + describe(e) +
                      "; the bytes it left were not wiped";
    } else {
      p.explanation =
          "the range " + what + Range(e.addr, e.len) + " was " +
          (e.kind == kFlightUpdate       ? "moved over it"
           : e.kind == kFlightScopeEnter ? "entered as a secret stack"
                                         : "published") +
          " by " + describe(e) + " and still covered it at " + ZeroName(c) +
          ", yet the dump "
          "holds the bytes in the clear: the redaction was "
          "not applied there";
    }
    return p;
  }
  if (const std::optional<Placement> st = OnThreadStack(c, f, p.page)) {
    return *st;
  }
  if (page != nullptr) {
    const FlightEntry& e = *page;
    p.event = page;
    p.label = e.label;
    p.explanation =
        "no range covered this address at any event the "
        "recorder holds; on its page, \"" +
        Printable(e.label) + "\" " + Range(e.addr, e.len) + " was last " +
        (e.kind == kFlightPublish     ? "published"
         : e.kind == kFlightUnpublish ? "unpublished"
                                      : "moved") +
        " by " + describe(e) +
        ": the bytes were written outside the cover (it was "
        "not yet published over them)";
    return p;
  }
  uint64_t oldest = 0;
  for (const FlightEntry& e : c.flight->events) {
    if (!e.torn()) {
      oldest = BeforeDump(c, e);
      break;
    }
  }
  p.explanation = "no event in the recorder (" +
                  std::to_string(c.flight->events.size()) +
                  " events, the "
                  "oldest " +
                  Duration(oldest) + " before " + ZeroName(c) +
                  ") touched this page: it was never "
                  "published, or only before the recorder's window";
  return p;
}

// A name cut for the screen (template-heavy C++ names run to hundreds of
// characters; --json keeps them whole).
std::string Shorten(const std::string& fn) {
  constexpr size_t kMax = 120;
  return fn.size() <= kMax ? fn : fn.substr(0, kMax - 3) + "...";
}

// The handler names a frame by its symbol table; a frame it could only
// place in a file ("libc.so.6+0x8aeec") is named by addr2line instead.
bool HandlerNamed(const tools::BacktraceFrame& f) {
  return !f.symbol.empty() && f.symbol.find(".so") == std::string::npos;
}

json EventJson(const Context& c, const FlightEntry& e) {
  return {
      {"index", e.index},
      {"before_dump_ns", BeforeDump(c, e)},
      {"before_fault_ns", c.flight && c.flight->fault_ns != 0 && !e.torn()
                              ? json(static_cast<int64_t>(c.flight->fault_ns) -
                                     static_cast<int64_t>(e.time_ns))
                              : json(nullptr)},
      {"kind", FlightKindName(e.kind)},
      {"tid", e.tid},
      {"label", Printable(e.label)},
      {"start", Hex(e.addr)},
      {"len", e.len},
      {"prev_start", Hex(e.prev_addr)},
      {"prev_len", e.prev_len}};
}

std::string EventLine(const Context& c, const FlightEntry& e, bool mark) {
  char b[320];
  if (e.torn()) {
    std::snprintf(b, sizeof b, "  %c #%-7" PRIu64 " (torn slot)\n",
                  mark ? '*' : ' ', e.index);
    return b;
  }
  std::string range = Range(e.addr, e.len);
  if (e.kind == kFlightUpdate) {
    range = Range(e.prev_addr, e.prev_len) + " -> " + range;
  }
  const std::string t =
      (AfterZero(c, e) ? "t+" : "t-") +
      Duration(AfterZero(c, e) ? e.time_ns - ZeroNs(c) : BeforeDump(c, e));
  std::snprintf(b, sizeof b, "  %c #%-7" PRIu64 " %-12s tid %-7d %-11s ",
                mark ? '*' : ' ', e.index, t.c_str(), e.tid,
                FlightKindName(e.kind).c_str());
  return b + Printable(e.label) + " " + range + "\n";
}

// Which keys to derive for a dump of `sigrace stress` (its keys are made
// from the run's seed and never written anywhere): the worker's key seed
// comes from the run's seed and the worker's serial (stress/trial.h
// WorkerKeySeed), each key from that, its algorithm and its generation
// (signer/deterministic_keygen.h).
struct DeriveSpec {
  std::optional<uint64_t> seed;
  std::optional<uint64_t> serial;  // the worker's first trial
  std::vector<std::string> algs;   // "rs256", "eddsa"
  uint64_t generations = 2;        // 0 .. generations-1 of each alg
  std::string sidecar;             // where the spec came from, if anywhere
};

// The sidecar `sigrace stress` writes beside a kept dump (schema
// sigrace.leak/1). Only which key to derive is read from it: seed, trial,
// alg and the kids its findings name ("ALG-RUN-GENERATION"); the scan
// judges the dump's bytes against the derived key, whatever it says.
Status ReadSidecar(const std::string& path, DeriveSpec* spec) {
  std::ifstream in(path);
  if (!in) return NotFoundError("cannot read the sidecar " + path);
  std::stringstream ss;
  ss << in.rdbuf();
  const json j = json::parse(ss.str(), nullptr, false);
  if (!j.is_object() || j.value("schema", std::string()) != "sigrace.leak/1") {
    return InvalidArgumentError(path + " is not a sigrace.leak/1 sidecar");
  }
  if (!spec->seed && j.contains("seed") && j["seed"].is_number_unsigned()) {
    spec->seed = j["seed"].get<uint64_t>();
  }
  // A fatal trial's worker serves that trial only: its serial is the trial.
  // A live worker's serial is the first trial it served (--trial).
  if (!spec->serial && j.contains("trial") && j["trial"].is_number_unsigned() &&
      j.value("mode", std::string()) == "fatal") {
    spec->serial = j["trial"].get<uint64_t>();
  }
  if (spec->algs.empty() && j.contains("alg") && j["alg"].is_string()) {
    spec->algs.push_back(j["alg"].get<std::string>());
  }
  if (j.contains("findings") && j["findings"].is_array()) {
    for (const json& f : j["findings"]) {
      if (!f.is_object() || !f.contains("key") || !f["key"].is_string()) {
        continue;
      }
      const std::string kid = f["key"].get<std::string>();
      const size_t dash = kid.find('-');
      const size_t last = kid.rfind('-');
      if (dash == std::string::npos || last + 1 >= kid.size()) continue;
      const std::string alg = kid.substr(0, dash);
      if (!signer::ParseAlg(alg).ok()) continue;
      const std::string digits = kid.substr(last + 1);
      if (digits.size() > 2 ||
          digits.find_first_not_of("0123456789") != std::string::npos) {
        continue;
      }
      const uint64_t gen = std::stoull(digits);
      if (std::find(spec->algs.begin(), spec->algs.end(), alg) ==
          spec->algs.end()) {
        spec->algs.push_back(alg);
      }
      spec->generations = std::max(spec->generations, gen + 1);
    }
  }
  spec->sidecar = path;
  return Status::Ok();
}

// Derives the keys of `spec` into a KeyOracle (the stress driver's: each
// key is made in this process's key heap, its DER in a locked, DONTDUMP
// page wiped once its forms are built). This process is made undumpable
// first.
StatusOr<std::unique_ptr<stress::KeyOracle>> DeriveKeys(const DeriveSpec& spec,
                                                        uint32_t min_fragment) {
  if (!signer::kDeterministicKeygenBuild) {
    return FailedPreconditionError(
        "this build cannot derive keys (configure with SIGRACE_ABLATION)");
  }
  SIGRACE_RETURN_IF_ERROR(MakeProcessUndumpable());
  auto oracle = std::make_unique<stress::KeyOracle>(
      min_fragment, stress::WorkerKeySeed(*spec.seed, spec.serial.value_or(0)));
  for (const std::string& alg : spec.algs) {
    for (uint64_t g = 0; g < spec.generations; ++g) {
      const json a = {{"kid", alg + "-derived-" + std::to_string(g)},
                      {"alg", alg},
                      {"generation", g},
                      {"stream_generation", g},
                      {"derivable", true}};
      SIGRACE_RETURN_IF_ERROR(oracle->AddAnnouncement(a.dump()));
    }
  }
  SIGRACE_RETURN_IF_ERROR(oracle->DeriveMissing());
  return oracle;
}

std::string SpecText(const DeriveSpec& d) {
  std::string algs;
  for (const std::string& a : d.algs) algs += (algs.empty() ? "" : ",") + a;
  return "derived from seed " + std::to_string(*d.seed) + ", worker " +
         std::to_string(d.serial.value_or(0)) + ", " + algs +
         " generations 0-" + std::to_string(d.generations - 1) +
         (d.sidecar.empty() ? ""
                            : " (which key: " + Printable(d.sidecar) + ")");
}

}  // namespace

int ExplainMain(int argc, char** argv) {
  CLI::App app(
      "Explain a dump on one screen: the fault, the crashing thread's "
      "backtrace (demangled, file:line where debug info exists), each "
      "thread's state, the redactions, the registry's flight recorder "
      "(times before the fault), and with a key each finding placed on that "
      "timeline. The key: --key FILE, or for a kept `sigrace stress` dump, "
      "whose keys are never on disk, --derive (the sidecar DUMP.json says "
      "which) or --seed S --trial T --alg A. Never prints key bytes. Exit 0 "
      "explained, 2 error.",
      "sigrace explain");
  std::string path;
  std::string key_path;
  bool json_out = false;
  size_t min_fragment = 16;
  app.add_option("DUMP", path, "dump file (ELF core)")->required();
  app.add_option("--key", key_path,
                 "private key file (PEM or DER): scan the dump and place "
                 "each finding on the timeline");
  app.add_option("--min-fragment", min_fragment,
                 "shortest run of form bytes reported (>= 8)")
      ->capture_default_str()
      ->check(tools::UintIn(8, 1048576));
  app.add_flag("--json", json_out,
               "one JSON object on stdout (schema in tools/explain.h)");
  // Keys of `sigrace stress` dumps: never on disk, derived here.
  DeriveSpec derive;
  bool from_sidecar = false;
  std::string sidecar;
  uint64_t seed = 0;
  uint64_t trial = 0;
  std::string alg;
  CLI::Option* seed_opt = app.add_option(
      "--seed", seed,
      "derive the keys of a `sigrace stress --seed S` worker instead of "
      "reading a key file (test builds: the keys come from the run's seed; "
      "the process is made undumpable and holds them in locked, DONTDUMP "
      "memory)");
  CLI::Option* trial_opt = app.add_option(
      "--trial", trial,
      "with --seed: the worker's first trial (a fatal dump's trial; the "
      "sidecar gives it)");
  CLI::Option* alg_opt = app.add_option(
      "--alg", alg, "with --seed: the keys' algorithm (rs256|eddsa)");
  app.add_option("--generations", derive.generations,
                 "with --seed: derive generations 0..N-1 of each key "
                 "(Create's key and the rotations after it)")
      ->capture_default_str()
      ->check(tools::UintIn(1, 64));
  app.add_flag("--derive", from_sidecar,
               "derive the keys the sidecar DUMP.json (or --sidecar) of a "
               "kept stress dump names: its seed, trial, alg and the key "
               "ids of its findings; it only says which key, the scan "
               "judges the dump's bytes");
  app.add_option("--sidecar", sidecar,
                 "with --derive or --seed: the stress sidecar to read "
                 "(default DUMP.json)");
  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    return Fail(std::string(e.what()) + " (see --help)");
  }

  const bool deriving = from_sidecar || seed_opt->count() > 0;
  if (deriving && !key_path.empty()) {
    return Fail("--key and --seed/--derive exclude each other");
  }
  if (!deriving &&
      (trial_opt->count() > 0 || alg_opt->count() > 0 || !sidecar.empty())) {
    return Fail("--trial, --alg and --sidecar go with --seed or --derive");
  }
  if (seed_opt->count() > 0) derive.seed = seed;
  if (trial_opt->count() > 0) derive.serial = trial;
  if (alg_opt->count() > 0) {
    if (!signer::ParseAlg(alg).ok()) {
      return Fail("--alg: unknown algorithm '" + alg + "' (rs256|eddsa)");
    }
    derive.algs.push_back(alg);
  }
  if (deriving) {
    const std::string sc = sidecar.empty() ? path + ".json" : sidecar;
    if (from_sidecar || !sidecar.empty() || access(sc.c_str(), R_OK) == 0) {
      const Status st = ReadSidecar(sc, &derive);
      if (!st.ok()) return Fail(st.message());
    }
    if (!derive.seed) return Fail("no seed: give --seed S");
    if (derive.algs.empty()) return Fail("no algorithm: give --alg A");
  }

  StatusOr<std::unique_ptr<CoreReader>> reader = CoreReader::Open(path);
  if (!reader.ok()) return Fail(path + ": " + reader.status().message());
  const CoreReader& r = **reader;
  StatusOr<std::optional<FlightLog>> flight = ReadFlightRecorder(r);
  if (!flight.ok()) return Fail(path + ": " + flight.status().message());

  std::optional<ScanReport> scan;
  std::unique_ptr<Scanner> scanner;
  std::unique_ptr<stress::KeyOracle> derived;
  std::string key_source = key_path.empty() ? "" : "file " + key_path;
  if (deriving) {
    StatusOr<std::unique_ptr<stress::KeyOracle>> o =
        DeriveKeys(derive, static_cast<uint32_t>(min_fragment));
    if (!o.ok()) return Fail("deriving the keys: " + o.status().message());
    derived = std::move(o).value();
    StatusOr<const Scanner*> sc = derived->scanner();
    if (!sc.ok()) return Fail("deriving the keys: " + sc.status().message());
    StatusOr<ScanReport> rep = (*sc)->ScanFile(path);
    if (!rep.ok()) return Fail(path + ": " + rep.status().message());
    scan = std::move(rep).value();
    key_source = SpecText(derive);
  } else if (!key_path.empty()) {
    ScanOptions opt;
    opt.min_fragment = min_fragment;
    StatusOr<std::unique_ptr<Scanner>> s =
        Scanner::FromKeyFiles({key_path}, opt);
    if (!s.ok()) return Fail(s.status().message());
    scanner = std::move(s).value();
    StatusOr<ScanReport> rep = scanner->ScanFile(path);
    if (!rep.ok()) return Fail(path + ": " + rep.status().message());
    scan = std::move(rep).value();
  }

  Context c;
  c.r = &r;
  c.flight = std::move(flight).value();
  if (!r.threads().empty()) c.crash_tid = r.threads()[0].tid;
  for (const char* k : {"failpoint", "instant"}) {
    if (std::optional<std::string> v = r.MetaValue(k)) {
      const size_t hash = v->rfind('#');
      if (hash != std::string::npos) c.role = v->substr(hash + 1);
    }
  }
  for (const Redaction& red : r.redactions()) {
    if (red.kind == RedactionKind::kSecretStack) c.scope_tids.insert(red.tid);
    if (red.kind == RedactionKind::kRegisters) {
      c.register_tids[red.tid] = red.label;
    }
  }

  // Symbols: the backtrace's pcs (return addresses minus one) and every
  // thread's pc.
  // The note holds the crashing thread's frames, then a "thread TID" line
  // and the frames of each other thread: the backtrace shown is the first.
  std::string_view crash_bt = r.backtrace();
  for (size_t at = 0; at < crash_bt.size();) {
    if (crash_bt.compare(at, 7, "thread ") == 0) {
      crash_bt = crash_bt.substr(0, at);
      break;
    }
    const size_t nl = crash_bt.find('\n', at);
    at = nl == std::string_view::npos ? crash_bt.size() : nl + 1;
  }
  const std::vector<tools::BacktraceFrame> frames =
      tools::ParseBacktrace(crash_bt);
  std::vector<uint64_t> addrs;
  for (const tools::BacktraceFrame& f : frames) {
    addrs.push_back(f.number == 0 || f.pc == 0 ? f.pc : f.pc - 1);
  }
  for (const ThreadInfo& t : r.threads()) {
    if (t.regs_known) addrs.push_back(t.pc);
  }
  const std::map<uint64_t, tools::SourceInfo> sym = tools::Symbolize(r, addrs);
  auto source_of = [&](uint64_t a) -> tools::SourceInfo {
    auto it = sym.find(a);
    return it != sym.end() ? it->second : tools::SourceInfo{};
  };

  // Redactions by region name.
  struct Group {
    std::string label;
    std::string kind;
    size_t records = 0;
    uint64_t bytes = 0;
    std::vector<const Redaction*> ranges;
  };
  std::vector<Group> groups;
  for (const Redaction& red : r.redactions()) {
    const std::string label = red.kind == RedactionKind::kRegisters
                                  ? std::string("registers")
                                  : red.label;
    const std::string kind = RedactionKindName(red.kind);
    Group* g = nullptr;
    for (Group& o : groups) {
      if (o.label == label && o.kind == kind) g = &o;
    }
    if (g == nullptr) {
      groups.push_back({label, kind, 0, 0, {}});
      g = &groups.back();
    }
    ++g->records;
    g->bytes += red.len;
    g->ranges.push_back(&red);
  }

  // Findings (leaks only; anchors are public) and their placements.
  std::vector<const Finding*> findings;
  if (scan) {
    for (const Finding& f : scan->findings) {
      if (IsLeak(f.kind)) findings.push_back(&f);
    }
  }
  std::vector<Placement> places;
  for (const Finding* f : findings) {
    if (f->has_address) {
      places.push_back(Place(c, *f));
    } else {
      Placement p;
      p.explanation = "in " + Printable(f->region) +
                      ", not in process memory: no timeline to place it on";
      places.push_back(p);
    }
  }
  std::optional<Judgement> verdict;
  if (scan) verdict = JudgeReport(*scan);

  const std::optional<SigInfo>& si = r.siginfo();
  std::string out;
  if (json_out) {
    json j;
    j["path"] = Printable(path);
    j["file_size"] = r.size();
    j["seal"] = {{"state", SealStateName(r.seal().state)},
                 {"reason", Printable(r.seal().reason)}};
    json meta = json::object();
    for (const auto& [k, v] : r.meta()) meta[Printable(k)] = Printable(v);
    j["meta"] = meta;
    if (si) {
      j["fault"] = {{"signo", si->signo}, {"signal", SignalName(si->signo)},
                    {"code", si->code},   {"addr", Hex(si->addr)},
                    {"tid", c.crash_tid}, {"role", Printable(c.role)}};
    } else {
      j["fault"] = nullptr;
    }
    j["backtrace"] = json::array();
    for (const tools::BacktraceFrame& f : frames) {
      const tools::SourceInfo s =
          source_of(f.number == 0 || f.pc == 0 ? f.pc : f.pc - 1);
      j["backtrace"].push_back(
          {{"frame", f.number},
           {"pc", Hex(f.pc)},
           {"function",
            Printable(HandlerNamed(f) || s.function.empty() ? f.symbol
                                                            : s.function)},
           {"offset", f.offset},
           {"source",
            s.source.empty() ? json(nullptr) : json(Printable(s.source))}});
    }
    j["threads"] = json::array();
    for (size_t i = 0; i < r.threads().size(); ++i) {
      const ThreadInfo& t = r.threads()[i];
      const tools::SourceInfo s =
          t.regs_known ? source_of(t.pc) : tools::SourceInfo{};
      j["threads"].push_back(
          {{"tid", t.tid},
           {"crashing", i == 0},
           {"in_secret_scope", c.scope_tids.count(t.tid) != 0},
           {"registers_redacted",
            c.register_tids.count(t.tid) != 0
                ? json(Printable(c.register_tids.at(t.tid)))
                : json(nullptr)},
           {"pc", Hex(t.pc)},
           {"function", Printable(s.function)},
           {"source",
            s.source.empty() ? json(nullptr) : json(Printable(s.source))}});
    }
    json by = json::array();
    for (const Group& g : groups) {
      json ranges = json::array();
      for (const Redaction* red : g.ranges) {
        ranges.push_back(
            {{"start", Hex(red->vaddr)}, {"len", red->len}, {"tid", red->tid}});
      }
      by.push_back({{"region", Printable(g.label)},
                    {"kind", g.kind},
                    {"records", g.records},
                    {"bytes", g.bytes},
                    {"ranges", ranges}});
    }
    j["redactions"] = {{"records", r.redactions().size()}, {"by_region", by}};
    if (c.flight) {
      json ev = json::array();
      for (const FlightEntry& e : c.flight->events) {
        ev.push_back(EventJson(c, e));
      }
      j["flight_recorder"] = {{"capacity", c.flight->capacity},
                              {"recorded", c.flight->next},
                              {"in_dump", c.flight->events.size()},
                              {"torn", c.flight->torn},
                              {"fault_ns", c.flight->fault_ns},
                              {"read_ns", c.flight->read_ns},
                              {"events", ev}};
    } else {
      j["flight_recorder"] = nullptr;
    }
    j["key_source"] =
        key_source.empty() ? json(nullptr) : json(Printable(key_source));
    if (verdict) {
      j["verdict"] = {{"verdict", DumpVerdictName(verdict->verdict)},
                      {"reason", verdict->reason},
                      {"leaks", verdict->leaks}};
    } else {
      j["verdict"] = nullptr;
    }
    j["findings"] = json::array();
    for (size_t i = 0; i < findings.size(); ++i) {
      const Finding& f = *findings[i];
      const Placement& p = places[i];
      j["findings"].push_back(
          {{"kind", FindingKindName(f.kind)},
           {"form", f.form},
           {"address", f.has_address ? json(Hex(f.address)) : json(nullptr)},
           {"length", f.length},
           {"region", Printable(f.region)},
           {"label", Printable(p.label)},
           {"page", f.has_address ? json(Hex(p.page)) : json(nullptr)},
           {"page_offset",
            f.has_address ? json(f.address - p.page) : json(nullptr)},
           {"event",
            p.event != nullptr ? EventJson(c, *p.event) : json(nullptr)},
           {"explanation", p.explanation}});
    }
    out = j.dump(2, ' ', false, json::error_handler_t::replace) + "\n";
  } else {
    out += "dump:      " + Printable(path) + " (" + std::to_string(r.size()) +
           " bytes, " + SealStateName(r.seal().state) + ")\n";
    std::string trial;
    for (const char* k :
         {"variant", "mode", "alg", "trial", "seed", "failpoint", "instant"}) {
      if (std::optional<std::string> v = r.MetaValue(k)) {
        trial +=
            std::string(trial.empty() ? "" : ", ") + k + " " + Printable(*v);
      }
    }
    if (!trial.empty()) out += "trial:     " + trial + "\n";
    if (si) {
      out += "fault:     " + SignalLabel(si->signo) + ", code " +
             CodeLabel(si->signo, si->code) + ", addr " + Hex(si->addr) +
             ", in " + Who(c, c.crash_tid) + "\n";
    }
    if (!key_source.empty())
      out += "key:       " + Printable(key_source) + "\n";
    if (verdict) {
      // The reason starts with the verdict ("clean", "leak: 2 ...").
      out += "verdict:   " + verdict->reason + "\n";
    } else {
      out += "verdict:   not judged (give --key KEY to scan for the key)\n";
    }

    out += "\nbacktrace of thread " + std::to_string(c.crash_tid) +
           " (the handler's, " + std::to_string(frames.size()) + " frames):\n";
    for (const tools::BacktraceFrame& f : frames) {
      const tools::SourceInfo s =
          source_of(f.number == 0 || f.pc == 0 ? f.pc : f.pc - 1);
      char b[64];
      std::snprintf(b, sizeof b, "  #%-2d %s  ", f.number, Hex(f.pc).c_str());
      const bool named = HandlerNamed(f);
      std::string fn = named ? f.symbol : s.function;
      if (fn.empty()) fn = f.symbol.empty() ? "??" : f.symbol;
      out += b + Printable(Shorten(fn));
      if (named || fn == f.symbol) out += "+" + Hex(f.offset);
      if (!s.source.empty()) out += "  at " + Printable(s.source);
      out += "\n";
    }

    out += "\nthreads (" + std::to_string(r.threads().size()) + "):\n";
    for (size_t i = 0; i < r.threads().size(); ++i) {
      const ThreadInfo& t = r.threads()[i];
      const tools::SourceInfo s =
          t.regs_known ? source_of(t.pc) : tools::SourceInfo{};
      const auto regs = c.register_tids.find(t.tid);
      const std::string redacted = regs == c.register_tids.end() ? "-"
                                   : regs->second == "registers"
                                       ? "regs redacted"
                                       : "simd redacted";
      char b[128];
      std::snprintf(b, sizeof b, "  tid %-7d %-9s %-14s %-13s pc %s ", t.tid,
                    i == 0 ? "crashing" : "frozen",
                    c.scope_tids.count(t.tid) ? "in SecretScope" : "-",
                    redacted.c_str(), Hex(t.pc).c_str());
      out += b + Printable(s.function.empty() ? "??" : s.function);
      if (!s.source.empty()) out += "  at " + Printable(s.source);
      out += "\n";
    }

    out += "\nredactions (" + std::to_string(r.redactions().size()) +
           " records):\n";
    for (const Group& g : groups) {
      char b[160];
      std::snprintf(
          b, sizeof b, "  %-30s %-13s %4zu records %10" PRIu64 " bytes ",
          Printable(g.label).c_str(), g.kind.c_str(), g.records, g.bytes);
      out += b;
      size_t shown = 0;
      for (const Redaction* red : g.ranges) {
        if (red->kind == RedactionKind::kRegisters) {
          out += (shown++ ? "," : "") + std::string(" tid ") +
                 std::to_string(red->tid);
        } else if (shown < 3) {
          out += (shown++ ? ", " : "") + Range(red->vaddr, red->len);
        }
      }
      if (g.kind != "registers" && g.ranges.size() > 3) {
        out += ", ...";
      }
      out += "\n";
    }

    // The places the findings point at, for the timeline's marks.
    std::set<uint64_t> marked;
    for (const Placement& p : places) {
      if (p.event != nullptr) marked.insert(p.event->index);
    }
    if (c.flight) {
      const std::vector<FlightEntry>& ev = c.flight->events;
      out += "\nflight recorder (" + std::to_string(c.flight->next) +
             " events recorded, the last " + std::to_string(ev.size()) +
             " in the dump, " + std::to_string(c.flight->torn) + " torn; ";
      if (c.flight->fault_ns != 0) {
        out +=
            "t-: before the fault, the signal's entry into the handler; "
            "the handler read the ring " +
            Duration(c.flight->read_ns > c.flight->fault_ns
                         ? c.flight->read_ns - c.flight->fault_ns
                         : 0) +
            " after it, every other thread frozen):\n";
      } else {
        out +=
            "t-: before the handler read it, every other thread "
            "frozen; the note has no fault time):\n";
      }
      const size_t from =
          ev.size() > kTimelineTail ? ev.size() - kTimelineTail : 0;
      bool gap = false;
      bool fault_shown = c.flight->fault_ns == 0;
      const std::string fault_line =
          "  > the fault: " + (si ? SignalLabel(si->signo) : std::string("")) +
          " in " + Who(c, c.crash_tid) + "\n";
      for (size_t i = 0; i < ev.size(); ++i) {
        const bool mark = marked.count(ev[i].index) != 0;
        if (i < from && !mark) {
          gap = true;
          continue;
        }
        if (gap) {
          out += "    ...\n";
          gap = false;
        }
        if (!fault_shown && AfterZero(c, ev[i])) {
          out += fault_line;
          fault_shown = true;
        }
        out += EventLine(c, ev[i], mark);
      }
      if (!fault_shown) out += fault_line;
    } else {
      out += "\nflight recorder: none in this dump\n";
    }

    if (scan) {
      out += "\nfindings (" + std::to_string(findings.size()) + "):\n";
      if (findings.empty()) {
        out += "  none: no fragment of the key in the dump\n";
      }
      for (size_t i = 0; i < findings.size() && i < kMaxTextFindings; ++i) {
        const Finding& f = *findings[i];
        const Placement& p = places[i];
        std::string head = "  " + Printable(f.form) + " (" +
                           std::to_string(f.length) + " bytes";
        if (f.kind != FindingKind::kLeak) {
          head += std::string(", ") + FindingKindName(f.kind);
        }
        head += ")";
        if (f.has_address) {
          head += " at " + Hex(f.address) + " (+" +
                  std::to_string(f.address - p.page) + " in " +
                  (p.label.empty() ? std::string("page")
                                   : Printable(p.label) + " page") +
                  " " + Hex(p.page) + ")";
        }
        out += head + ":\n      " + p.explanation + "\n";
      }
      if (findings.size() > kMaxTextFindings) {
        out += "  ... and " +
               std::to_string(findings.size() - kMaxTextFindings) +
               " more (--json lists every one)\n";
      }
    }
  }
  if (std::fwrite(out.data(), 1, out.size(), stdout) != out.size() ||
      std::fflush(stdout) != 0) {
    return Fail("cannot write to stdout");
  }
  return 0;
}

}  // namespace sigrace::crashdump
