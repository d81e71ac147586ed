// The flight recorder, `sigrace explain`, `sigrace gdb` and dump-info's
// demangling on real dumps. A forked child runs a real signer with a
// deterministic test key, installs the crash handler, and takes a live
// dump from inside a window's failpoint (the dump request is raised on the
// faulting thread, so the dump freezes the process at that instant). The
// parent derives the same key (signer/deterministic_keygen.h) into a key
// file for the oracle. notsan: forks and signals, like handler_test.

#include "tools/explain.h"

#include <dirent.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "base/failpoint.h"
#include "crashdump/capture/handler.h"
#include "crashdump/format/core_reader.h"
#include "crashdump/format/flight_recorder.h"
#include "crashdump/oracle/scanner.h"
#include "signer/deterministic_keygen.h"
#include "signer/signer.h"
#include "stress/catalogue.h"
#include "testing/crash_test_util.h"
#include "testing/real_dump.h"
#include "tools/dump_info.h"
#include "tools/explain_symbols.h"
#include "tools/gdb.h"

namespace sigrace::crashdump {
namespace {

using testing::RunInChild;
using testing::TempDir;

constexpr uint64_t kKeySeed = 0x5eed1e55;

// The dump a child takes when `failpoint` fires in a signer of `variant`
// (EdDSA) while `trigger` runs: "rotate" (the load path) or "sign".
// Returns the dump's path, "" on failure (a test failure is recorded).
std::string DumpAtFailpoint(const TempDir& dir, signer::Variant variant,
                            const std::string& failpoint,
                            const std::string& trigger, int hit) {
  const std::string dump_dir = dir.path() + "/dumps";
  mkdir(dump_dir.c_str(), 0700);
  const testing::ChildResult res = RunInChild([&]() -> int {
    signer::SignerOptions so;
    so.variant = variant;
    so.algs = {signer::Alg::kEdDsa};
    so.TEST_key_seed = kKeySeed;
    StatusOr<std::unique_ptr<signer::Signer>> s = signer::Signer::Create(so);
    if (!s.ok()) return 10;
    HandlerOptions ho;
    ho.target = DumpTarget::Directory(dump_dir);
    ho.fatal = false;
    ho.meta = "variant=" + std::string(signer::VariantName(variant)) + "\n";
    if (!InstallHandler(ho).ok()) return 11;
    const std::string role = trigger == "rotate" ? "rotator" : "signer-0";
    if (!SetTrialMeta("failpoint=" + failpoint + "@" + std::to_string(hit) +
                      "#" + role + "\n")
             .ok()) {
      return 12;
    }
    if (!failpoint::SetCallback(failpoint, [] { (void)RequestLiveDump(); })
             .ok() ||
        !failpoint::Configure(failpoint + "=callback@" + std::to_string(hit))
             .ok()) {
      return 13;
    }
    if (trigger == "rotate") {
      if (!(*s)->Rotate(signer::Alg::kEdDsa).ok()) return 14;
    } else {
      if (!(*s)->Sign(signer::Alg::kEdDsa, signer::Claims{}).ok()) return 14;
    }
    return DumpCount() == 1 ? 0 : 15;
  });
  EXPECT_TRUE(res.exited && res.exit_code == 0)
      << "child: exit " << res.exit_code << " stderr: " << res.stderr_text;
  std::string path;
  if (DIR* d = opendir(dump_dir.c_str())) {
    while (dirent* e = readdir(d)) {
      const std::string n = e->d_name;
      if (n.size() > 5 && n.substr(n.size() - 5) == ".core") {
        path = dump_dir + "/" + n;
      }
    }
    closedir(d);
  }
  EXPECT_FALSE(path.empty()) << "no dump in " << dump_dir;
  return path;
}

// The key of `generation` (0: Create's, 1: the first rotation's) as a
// PKCS#8 DER file, 0600, for the oracle.
std::string WriteKeyFile(const TempDir& dir, uint64_t generation) {
  const std::string path =
      dir.path() + "/key" + std::to_string(generation) + ".der";
  // Derived in a child: the key never passes through this process, whose
  // freed heap every later forked child (and its dump) would inherit.
  const testing::ChildResult res = RunInChild([&]() -> int {
    signer::KeyStreamId id;
    id.key_seed = kKeySeed;
    id.alg = signer::Alg::kEdDsa;
    id.generation = generation;
    Status st = signer::TEST_DeriveKey(id, [&](const uint8_t* der, size_t len) {
      const int fd =
          open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
      if (fd < 0) return InternalError("cannot create the key file");
      const bool ok = write(fd, der, len) == static_cast<ssize_t>(len);
      close(fd);
      return ok ? Status::Ok() : InternalError("short write");
    });
    return st.ok() ? 0 : 1;
  });
  EXPECT_TRUE(res.exited && res.exit_code == 0)
      << "key child: exit " << res.exit_code << " " << res.stderr_text;
  return path;
}

struct CmdRun {
  int code = -1;
  std::string out;
};

// Runs the command in a child whose stdout is a pipe read here: with
// --key it builds the key's forms, and a child forked by a later test must
// not inherit their freed heap.
CmdRun Call(int (*main_fn)(int, char**), std::vector<std::string> args) {
  CmdRun r;
  int p[2];
  if (pipe2(p, O_CLOEXEC) != 0) return r;
  // Nothing of this process's own output may reach the child's pipe.
  fflush(stdout);
  fflush(stderr);
  const pid_t pid = fork();
  if (pid < 0) {
    close(p[0]);
    close(p[1]);
    return r;
  }
  if (pid == 0) {
    dup2(p[1], STDOUT_FILENO);
    std::vector<char*> argv;
    for (std::string& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    const int code = main_fn(static_cast<int>(args.size()), argv.data());
    fflush(stdout);
    _exit(code);
  }
  close(p[1]);
  char buf[65536];
  for (;;) {
    const ssize_t n = read(p[0], buf, sizeof buf);
    if (n > 0) {
      r.out.append(buf, static_cast<size_t>(n));
    } else if (n == 0 || errno != EINTR) {
      break;
    }
  }
  close(p[0]);
  int status = 0;
  while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  r.code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  return r;
}

// ---- The flight recorder note in a real dump ----

TEST(FlightNote, WrittenAndReadBackFromALiveDumpInASigningWindow) {
  TempDir dir;
  // sign.before_digest: inside the signature's SecretScope, before
  // OpenSSL signs.
  const std::string path = DumpAtFailpoint(dir, signer::Variant::kFixed,
                                           "sign.before_digest", "sign", 1);
  ASSERT_FALSE(path.empty());
  StatusOr<std::unique_ptr<CoreReader>> r = CoreReader::Open(path);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  StatusOr<std::optional<FlightLog>> log = ReadFlightRecorder(**r);
  ASSERT_TRUE(log.ok()) << log.status().ToString();
  ASSERT_TRUE(log->has_value());
  const FlightLog& f = **log;
  EXPECT_EQ(f.capacity, 1024u);
  EXPECT_EQ(f.torn, 0u);
  ASSERT_FALSE(f.events.empty());
  EXPECT_EQ(f.events.back().index + 1, f.next);
  // The signer's key load published its pages (Create's key, before the
  // signature), and the crashing thread's last event is the signature's
  // SecretScope entry, whose stack the dump redacts.
  const int32_t tid = (*r)->threads()[0].tid;
  bool published = false;
  for (const FlightEntry& e : f.events) {
    published |= e.kind == kFlightPublish && !e.label.empty();
    EXPECT_LE(e.time_ns, f.read_ns);
  }
  EXPECT_TRUE(published);
  const FlightEntry* last = nullptr;
  for (const FlightEntry& e : f.events) {
    if (e.tid == tid) last = &e;
  }
  ASSERT_NE(last, nullptr);
  EXPECT_EQ(last->kind, kFlightScopeEnter);
  EXPECT_EQ(last->label, "secret-stack");
  bool redacted_stack = false;
  for (const Redaction& red : (*r)->redactions()) {
    redacted_stack |= red.kind == RedactionKind::kSecretStack &&
                      red.tid == tid && red.vaddr == last->addr &&
                      red.len == last->len;
  }
  EXPECT_TRUE(redacted_stack);

  // The note holds addresses and labels only: no fragment of the key the
  // signer holds (Create's, generation 0) in its bytes, while the oracle
  // does find that key in the signer's own pages of the same file when it
  // reads them raw (the pair: the search has teeth).
  const std::string key = WriteKeyFile(dir, 0);
  ScanOptions opt;
  StatusOr<std::unique_ptr<Scanner>> sc = Scanner::FromKeyFiles({key}, opt);
  ASSERT_TRUE(sc.ok()) << sc.status().ToString();
  const NoteInfo* note = nullptr;
  for (const NoteInfo& n : (*r)->notes()) {
    if (n.type == kNoteFlightRecorder && n.owner == kSigraceNoteOwner) {
      note = &n;
    }
  }
  ASSERT_NE(note, nullptr);
  size_t in_note = 0;
  for (const Finding& fd :
       (*sc)->Scan((*r)->NoteDesc(*note), note->desc_size)) {
    in_note += IsLeak(fd.kind) ? 1 : 0;
  }
  EXPECT_EQ(in_note, 0u);
  // The pair: the same scanner finds the key in the key file's bytes.
  const std::string der = testing::ReadWholeFile(key);
  size_t in_key_file = 0;
  for (const Finding& fd :
       (*sc)->Scan(reinterpret_cast<const uint8_t*>(der.data()), der.size())) {
    in_key_file += IsLeak(fd.kind) ? 1 : 0;
  }
  EXPECT_GT(in_key_file, 0u);
}

// ---- explain on leaking dumps and their fixed pairs ----

struct WindowCase {
  signer::Variant variant;
  const char* failpoint;
  const char* event;  // what explain must name for the finding
};

class ExplainWindow : public ::testing::TestWithParam<WindowCase> {};

TEST_P(ExplainWindow, LeakIsPlacedOnTheTimelineAndFixedNamesNoFinding) {
  const WindowCase& wc = GetParam();
  TempDir dir;
  const std::string leaky =
      DumpAtFailpoint(dir, wc.variant, wc.failpoint, "rotate", 1);
  ASSERT_FALSE(leaky.empty());
  // The same window's failpoint on `fixed`, dumped before this process
  // touches the key: a child forked after the key file was derived, or
  // after explain built the key's forms here, would carry their freed
  // heap into its dump, a leak of the test, not of the signer.
  TempDir fdir;
  const std::string clean =
      DumpAtFailpoint(fdir, signer::Variant::kFixed, wc.failpoint, "rotate", 1);
  ASSERT_FALSE(clean.empty());
  const std::string key = WriteKeyFile(dir, 1);  // the rotation's key

  CmdRun text = Call(ExplainMain, {"sigrace explain", leaky, "--key", key});
  ASSERT_EQ(text.code, 0) << text.out;
  EXPECT_NE(text.out.find("verdict:   leak"), std::string::npos) << text.out;
  EXPECT_NE(text.out.find("flight recorder ("), std::string::npos);
  EXPECT_NE(text.out.find("in signer.working page 0x"), std::string::npos)
      << text.out;
  EXPECT_NE(text.out.find(wc.event), std::string::npos) << text.out;
  EXPECT_NE(text.out.find("(the rotator, the crashing thread)"),
            std::string::npos)
      << text.out;
  std::printf("%s", text.out.c_str());  // the screen, for the log

  CmdRun js =
      Call(ExplainMain, {"sigrace explain", leaky, "--key", key, "--json"});
  ASSERT_EQ(js.code, 0);
  const nlohmann::json j = nlohmann::json::parse(js.out);
  EXPECT_EQ(j["verdict"]["verdict"], "leak");
  ASSERT_FALSE(j["findings"].empty());
  bool named = false;
  for (const auto& f : j["findings"]) {
    if (f["label"] == "signer.working" && !f["event"].is_null()) {
      named |= f["explanation"].get<std::string>().find(wc.event) !=
               std::string::npos;
    }
  }
  EXPECT_TRUE(named) << js.out;
  EXPECT_FALSE(j["flight_recorder"]["events"].empty());
  EXPECT_EQ(j["fault"]["role"], "rotator");

  // The fixed dump: no finding, nothing to place.
  const std::string fkey = WriteKeyFile(fdir, 1);
  CmdRun ftext = Call(ExplainMain, {"sigrace explain", clean, "--key", fkey});
  ASSERT_EQ(ftext.code, 0) << ftext.out;
  EXPECT_NE(ftext.out.find("verdict:   clean"), std::string::npos) << ftext.out;
  EXPECT_NE(ftext.out.find("findings (0):\n  none"), std::string::npos)
      << ftext.out;
  CmdRun fjs =
      Call(ExplainMain, {"sigrace explain", clean, "--key", fkey, "--json"});
  ASSERT_EQ(fjs.code, 0);
  const nlohmann::json fj = nlohmann::json::parse(fjs.out);
  EXPECT_EQ(fj["verdict"]["verdict"], "clean");
  EXPECT_TRUE(fj["findings"].empty());
}

INSTANTIATE_TEST_SUITE_P(
    Windows, ExplainWindow,
    ::testing::Values(WindowCase{signer::Variant::kUnpublishEarly,
                                 "window.unpublish_early",
                                 "was unpublished by thread"},
                      WindowCase{signer::Variant::kPublishLate,
                                 "window.publish_late",
                                 "unpublished by thread"}),
    [](const ::testing::TestParamInfo<WindowCase>& i) {
      std::string n = signer::VariantName(i.param.variant);
      for (char& ch : n) {
        if (ch == '-') ch = '_';
      }
      return n;
    });

// ---- explain on each race variant's first leak of a stress run ----
//
// For every race variant of the catalogue (stress/catalogue.h), the built
// `sigrace` (SIGRACE_BIN) runs a fatal stress trial whose failpoint fault
// lands inside the window, and keeps its first leaking dump with its
// sidecar; then `sigrace explain DUMP --derive --json` derives the key the
// sidecar names (the stress keys are never on disk) in its own process and
// places each finding on the flight recorder's timeline. This process
// never touches a key: the dumps are made and explained by subprocesses.
//
// What explain must name comes from the catalogue: the window's path
// ("load": the rotator's key load; "sign": a signature) and thread
// (stress::WindowChoice), and which registry event opens the window
// (WindowEvent below, from the window's failpoint).

std::string SigraceBin() {
  const char* b = std::getenv("SIGRACE_BIN");
  return b != nullptr ? b : "";
}

// The registry event a window's finding is placed relative to, by the
// window's failpoint; "" for a window the registry never sees (the key
// material lands on the ordinary heap, which no range covers).
std::string WindowEvent(const stress::VariantEntry& v) {
  if (v.path == "sign") return "scope-enter";  // the scope covers too little
  if (v.failpoint == "window.unpublish_early") return "unpublish";
  if (v.failpoint == "window.torn_update") return "update";
  if (v.failpoint == "window.publish_late") return "publish";
  return "";
}

int Shell(const std::string& cmd) {
  const int st = std::system(cmd.c_str());
  return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

nlohmann::json ReadJsonFile(const std::string& path) {
  return nlohmann::json::parse(testing::ReadWholeFile(path), nullptr, false);
}

uint64_t HexValue(const nlohmann::json& v) {
  return v.is_string()
             ? std::strtoull(v.get<std::string>().c_str(), nullptr, 16)
             : 0;
}

class ExplainVariant : public ::testing::TestWithParam<std::string> {};

TEST_P(ExplainVariant, FirstLeakIsPlacedRelativeToTheWindowsEvent) {
  if (SigraceBin().empty()) GTEST_FAIL() << "SIGRACE_BIN not set";
  StatusOr<stress::VariantEntry> v = stress::FindVariant(GetParam());
  ASSERT_TRUE(v.ok()) << v.status().ToString();
  ASSERT_TRUE(v->race);
  const stress::FailpointChoice choice = stress::WindowChoice(*v);
  // The cheaper algorithm where the window opens for both.
  const std::string alg =
      std::find(v->algs.begin(), v->algs.end(), "eddsa") != v->algs.end()
          ? "eddsa"
          : v->algs.front();
  TempDir dir;
  const std::string log = dir.path() + "/stress.log";
  const int code = Shell(
      "'" + SigraceBin() + "' stress --variant " + v->name + " --alg " + alg +
      " --mode fatal --injectors failpoint --expect leak --seed 7 --trials 1 "
      "--quiet --no-progress --out '" +
      dir.path() + "/out' --report-json '" + dir.path() + "/r.json' >'" + log +
      "' 2>&1");
  ASSERT_EQ(code, 0) << testing::ReadWholeFile(log);
  const nlohmann::json rep = ReadJsonFile(dir.path() + "/r.json");
  ASSERT_TRUE(rep.is_object());
  const nlohmann::json& first = rep["cells"][0]["first_leak"];
  ASSERT_TRUE(first.is_object()) << rep.dump();
  const std::string dump = first["dump"].get<std::string>();
  ASSERT_EQ(access(dump.c_str(), R_OK), 0) << dump;
  ASSERT_EQ(access((dump + ".json").c_str(), R_OK), 0) << "no sidecar";

  // The key comes from the sidecar: no --seed, no --alg, no key file.
  const std::string out = dir.path() + "/explain.json";
  ASSERT_EQ(Shell("'" + SigraceBin() + "' explain '" + dump +
                  "' --derive --json >'" + out + "' 2>'" + out + ".err'"),
            0)
      << testing::ReadWholeFile(out + ".err");
  const nlohmann::json j = ReadJsonFile(out);
  ASSERT_TRUE(j.is_object()) << testing::ReadWholeFile(out);
  EXPECT_EQ(j["verdict"]["verdict"], "leak") << j["verdict"].dump();
  ASSERT_TRUE(j["flight_recorder"].is_object());
  // The fault time is in the note; every placement is relative to it.
  ASSERT_NE(j["flight_recorder"]["fault_ns"].get<uint64_t>(), 0u);
  // The window's thread: the rotator, or one of the signing threads.
  const std::string role = j["fault"]["role"].get<std::string>();
  if (choice.on_signer) {
    EXPECT_EQ(role.rfind("signer-", 0), 0u) << role;
  } else {
    EXPECT_EQ(role, choice.thread);
  }
  const int64_t fault_tid = j["fault"]["tid"].get<int64_t>();
  ASSERT_FALSE(j["findings"].empty());
  // The backtrace is the crashing thread's alone: frames 0, 1, 2, ...
  ASSERT_FALSE(j["backtrace"].empty());
  for (size_t i = 0; i < j["backtrace"].size(); ++i) {
    EXPECT_EQ(j["backtrace"][i]["frame"].get<size_t>(), i);
  }

  const std::string want = WindowEvent(*v);
  const nlohmann::json& events = j["flight_recorder"]["events"];
  bool placed = false;
  std::string seen;
  for (const auto& f : j["findings"]) {
    const nlohmann::json& e = f["event"];
    seen += f["label"].get<std::string>() + ": " +
            f["explanation"].get<std::string>() + "\n";
    if (want.empty()) {
      // Heap windows: no range ever covered the finding's page, and the
      // crashing thread's own registry events (its load) are on the
      // timeline before the fault.
      bool crasher_before = false;
      for (const auto& ev : events) {
        crasher_before |= ev["tid"].get<int64_t>() == fault_tid &&
                          ev["before_fault_ns"].is_number() &&
                          ev["before_fault_ns"].get<int64_t>() > 0;
      }
      placed |= e.is_null() && f["address"].is_string() && crasher_before;
      continue;
    }
    // Placed on an event before the fault; by the crashing thread, except
    // for publish-late, whose window has no event (the page is not yet
    // published): the event is whichever last took a cover off it.
    if (e.is_null() || !e["before_fault_ns"].is_number() ||
        e["before_fault_ns"].get<int64_t>() <= 0 ||
        (want != "publish" && e["tid"].get<int64_t>() != fault_tid)) {
      continue;
    }
    const uint64_t a = HexValue(f["address"]);
    const uint64_t lo = HexValue(e["start"]);
    const uint64_t len = e["len"].get<uint64_t>();
    const bool inside = a >= lo && a - lo < len;
    if (want == "publish") {
      // Publish late: at the fault no publish covered the finding; the
      // last event holding its address (if any) took the cover away.
      std::string last_kind;
      for (const auto& ev : events) {
        const uint64_t s = HexValue(ev["start"]);
        if (ev["before_fault_ns"].is_number() &&
            ev["before_fault_ns"].get<int64_t>() > 0 && a >= s &&
            a - s < ev["len"].get<uint64_t>()) {
          last_kind = ev["kind"].get<std::string>();
        }
      }
      placed |= last_kind != "publish" && last_kind != "update";
    } else if (want == "scope-enter") {
      placed |= e["kind"] == want && a < lo;  // below the scope's cover
    } else {
      placed |= e["kind"] == want && (inside || want == "update");
    }
  }
  EXPECT_TRUE(placed) << v->name << " (" << want << "):\n" << seen;

  // The same screen as text, for the log: the fault line and the timeline.
  const std::string text = dir.path() + "/explain.txt";
  ASSERT_EQ(Shell("'" + SigraceBin() + "' explain '" + dump + "' --derive >'" +
                  text + "' 2>&1"),
            0);
  std::printf("%s", testing::ReadWholeFile(text).c_str());
}

std::vector<std::string> RaceVariants() {
  std::vector<std::string> out;
  for (const stress::VariantEntry& e : stress::Catalogue()) {
    if (e.race) out.push_back(e.name);
  }
  return out;
}

INSTANTIATE_TEST_SUITE_P(Catalogue, ExplainVariant,
                         ::testing::ValuesIn(RaceVariants()),
                         [](const ::testing::TestParamInfo<std::string>& i) {
                           std::string n = i.param;
                           for (char& ch : n) {
                             if (ch == '-') ch = '_';
                           }
                           return n;
                         });

TEST(Explain, WithoutKeyExplainsAndJudgesNothing) {
  TempDir dir;
  const testing::RealDump d = testing::MakeRealDump(dir);
  ASSERT_FALSE(d.path.empty());
  CmdRun text = Call(ExplainMain, {"sigrace explain", d.path});
  ASSERT_EQ(text.code, 0);
  EXPECT_NE(text.out.find("verdict:   not judged"), std::string::npos);
  EXPECT_NE(text.out.find(testing::kRealDumpLabel), std::string::npos);
  EXPECT_EQ(text.out.find("findings ("), std::string::npos);
  CmdRun js = Call(ExplainMain, {"sigrace explain", d.path, "--json"});
  ASSERT_EQ(js.code, 0);
  const nlohmann::json j = nlohmann::json::parse(js.out);
  EXPECT_TRUE(j["verdict"].is_null());
  EXPECT_FALSE(j["backtrace"].empty());
}

TEST(Explain, BadInputIsOneLineAndExitTwo) {
  TempDir dir;
  const std::string junk = dir.path() + "/junk";
  FILE* f = std::fopen(junk.c_str(), "w");
  ASSERT_NE(f, nullptr);
  std::fputs("not a core\n", f);
  std::fclose(f);
  for (const std::vector<std::string>& args :
       {std::vector<std::string>{"sigrace explain", dir.path() + "/missing"},
        std::vector<std::string>{"sigrace explain", junk},
        std::vector<std::string>{"sigrace explain", junk, "--key", junk},
        // Deriving: no sidecar beside the file; no algorithm; both a key
        // file and a seed; an unknown algorithm.
        std::vector<std::string>{"sigrace explain", junk, "--derive"},
        std::vector<std::string>{"sigrace explain", junk, "--seed", "7"},
        std::vector<std::string>{"sigrace explain", junk, "--seed", "7",
                                 "--key", junk},
        std::vector<std::string>{"sigrace explain", junk, "--seed", "7",
                                 "--alg", "md5"},
        std::vector<std::string>{"sigrace explain", "--bogus"}}) {
    ::testing::internal::CaptureStderr();
    CmdRun r = Call(ExplainMain, args);
    const std::string err = ::testing::internal::GetCapturedStderr();
    EXPECT_EQ(r.code, 2) << args.back();
    EXPECT_EQ(err.rfind("sigrace: explain: ", 0), 0u) << err;
    EXPECT_EQ(std::count(err.begin(), err.end(), '\n'), 1) << err;
    EXPECT_TRUE(r.out.empty());
  }
}

// ---- dump-info demangles; gdb --print ----

TEST(DumpInfo, BacktraceIsDemangled) {
  EXPECT_EQ(tools::DemangleBacktraceLine(
                "#3 0x55d0c0de1234 "
                "_ZN7sigrace6signer6Signer4Impl4LoadEPNS0_9KeyRecordE+0x206"),
            "#3 0x55d0c0de1234 "
            "sigrace::signer::Signer::Impl::Load(sigrace::signer::KeyRecord*)"
            "+0x206");
  EXPECT_EQ(tools::DemangleBacktraceLine("#4 0x7f00 start_thread+0x94"),
            "#4 0x7f00 start_thread+0x94");
  EXPECT_EQ(tools::DemangleBacktraceLine("#5 0x7f00 ??"), "#5 0x7f00 ??");
  EXPECT_EQ(tools::DemangleBacktraceLine("#6 0x7f00 _Zbroken+0x1"),
            "#6 0x7f00 _Zbroken+0x1");

  TempDir dir;
  const testing::RealDump d = testing::MakeRealDump(dir);
  ASSERT_FALSE(d.path.empty());
  CmdRun js = Call(DumpInfoMain, {"sigrace dump-info", d.path, "--json"});
  ASSERT_EQ(js.code, 0);
  const nlohmann::json j = nlohmann::json::parse(js.out);
  bool cxx = false;
  for (const auto& line : j["backtrace"]) {
    const std::string s = line.get<std::string>();
    EXPECT_EQ(s.find(" _Z"), std::string::npos) << s;
    cxx |= s.find("sigrace::") != std::string::npos;
  }
  EXPECT_TRUE(cxx) << js.out;
}

TEST(Gdb, PrintNamesTheExecutableLibrariesAndDump) {
  TempDir dir;
  const testing::RealDump d = testing::MakeRealDump(dir);
  ASSERT_FALSE(d.path.empty());
  char self[4096];
  const ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
  ASSERT_GT(n, 0);
  self[n] = '\0';
  CmdRun r = Call(GdbMain, {"sigrace gdb", d.path, "--print"});
  ASSERT_EQ(r.code, 0);
  EXPECT_EQ(r.out.rfind("'/usr/bin/gdb' '-q' '-iex' 'set sysroot /'", 0), 0u)
      << r.out;
  EXPECT_NE(r.out.find("'set solib-search-path "), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("'" + std::string(self) + "' '" + d.path + "'"),
            std::string::npos)
      << r.out;
  EXPECT_NE(r.out.find("'add-symbol-file /"), std::string::npos) << r.out;
  // The command line works: gdb loads the executable's symbols and the
  // libraries the dump names (libc's raise resolves).
  if (testing::HaveTool("gdb")) {
    std::string out;
    std::string line = r.out.substr(0, r.out.find('\n'));
    const int st = testing::RunCommand(
        line + " -batch -ex 'info address raise' -ex 'info symbol main'", &out);
    EXPECT_EQ(st, 0) << out;
    EXPECT_NE(out.find("Symbol \"raise\" is at 0x"), std::string::npos) << out;
    EXPECT_NE(out.find("main in section .text"), std::string::npos) << out;
  }
  ::testing::internal::CaptureStderr();
  CmdRun bad = Call(GdbMain, {"sigrace gdb", dir.path() + "/none", "--print"});
  const std::string err = ::testing::internal::GetCapturedStderr();
  EXPECT_EQ(bad.code, 2);
  EXPECT_EQ(err.rfind("sigrace: gdb: ", 0), 0u) << err;
}

}  // namespace
}  // namespace sigrace::crashdump
