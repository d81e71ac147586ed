#include "stress/repro_egress.h"

#include <dirent.h>
#include <fcntl.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <fstream>
#include <functional>
#include <memory>
#include <set>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include "base/failpoint.h"
#include "crashdump/capture/handler.h"
#include "crashdump/oracle/key_forms.h"
#include "crashdump/oracle/scanner.h"

namespace sigrace::stress {
namespace {

using crashdump::Finding;
using crashdump::FindingKind;
using crashdump::Gate;
using crashdump::GateDecision;
using crashdump::GateMode;
using crashdump::GateOptions;
using crashdump::GateScanner;
using crashdump::Scanner;

constexpr char kWindowFailpoint[] = "gate.after_judge";

constexpr EgressOrder kOrders[] = {
    {"unsealed",
     "the dump is still being written (its bytes up to the key, no seal) "
     "when the gate judges it; the writer finishes at gate.after_judge"},
    {"swap",
     "the path holds a clean dump when judged; at gate.after_judge the "
     "leaking dump is renamed over it"},
    {"held-open",
     "the writer holds the judged (clean) file open; at gate.after_judge "
     "it rewrites it, through that descriptor, with the leaking dump"},
};

const char* OrderFor(GateMode mode) {
  switch (mode) {
    case GateMode::kJudgeUnsealed:
    case GateMode::kFailOpen:
      return "unsealed";
    case GateMode::kReopenToRelease:
      return "swap";
    case GateMode::kRenameRelease:
    case GateMode::kLinkRelease:
      return "held-open";
    case GateMode::kFixed:
      break;
  }
  return "";
}

const char* OrderWindow(const std::string& order) {
  for (const EgressOrder& o : kOrders) {
    if (order == o.name) return o.window;
  }
  return "";
}

std::string ReadAll(const std::string& path, bool* ok) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream s;
  s << in.rdbuf();
  *ok = static_cast<bool>(in) || in.eof();
  return std::move(s).str();
}

void Wipe(std::string* bytes) {
  if (!bytes->empty()) OPENSSL_cleanse(bytes->data(), bytes->size());
  bytes->clear();
}

// Writes bytes[0, len) to `path`: a new file (created exclusively), or,
// with `finish`, over the start of the file this row already wrote.
// Never through a symlink.
bool WriteFile(const std::string& path, const std::string& bytes, size_t len,
               bool finish = false) {
  const int flags = finish
                        ? O_WRONLY | O_NOFOLLOW | O_CLOEXEC
                        : O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC;
  const int fd = open(path.c_str(), flags, 0600);
  if (fd < 0) return false;
  len = std::min(len, bytes.size());
  bool ok = true;
  for (size_t done = 0; done < len && ok;) {
    const ssize_t w = write(fd, bytes.data() + done, len - done);
    if (w < 0 && errno == EINTR) continue;
    ok = w > 0;
    if (ok) done += static_cast<size_t>(w);
  }
  return close(fd) == 0 && ok;
}

Status MakeDir(const std::string& path) {
  if (mkdir(path.c_str(), 0700) != 0 && errno != EEXIST) {
    return ErrnoError("mkdir " + path, errno);
  }
  return Status::Ok();
}

// The only *.core file in `dir`, or "".
std::string OnlyCore(const std::string& dir) {
  std::string found;
  int n = 0;
  if (DIR* d = opendir(dir.c_str())) {
    while (const dirent* e = readdir(d)) {
      const std::string name = e->d_name;
      if (name.size() > 5 && name.compare(name.size() - 5, 5, ".core") == 0) {
        found = dir + "/" + name;
        ++n;
      }
    }
    closedir(d);
  }
  return n == 1 ? found : std::string();
}

// Forks a child that (with `pkey`) signs once, so OpenSSL holds the key in
// its working forms, then writes one live dump into `dir` through the
// crash handler, registering nothing. Without `pkey` the child holds no
// key. Returns the dump's path.
StatusOr<std::string> DumpChild(EVP_PKEY* pkey, const std::string& dir) {
  const pid_t pid = fork();
  if (pid < 0) return ErrnoError("fork", errno);
  if (pid == 0) {
    if (pkey != nullptr) {
      EVP_MD_CTX* ctx = EVP_MD_CTX_new();
      const bool ed = EVP_PKEY_get_base_id(pkey) == EVP_PKEY_ED25519;
      static const unsigned char kMsg[] = "sigrace egress row";
      unsigned char sig[512];
      size_t sig_len = sizeof sig;
      if (ctx == nullptr ||
          EVP_DigestSignInit(ctx, nullptr, ed ? nullptr : EVP_sha256(), nullptr,
                             pkey) != 1 ||
          EVP_DigestSign(ctx, sig, &sig_len, kMsg, sizeof kMsg - 1) != 1) {
        _exit(10);
      }
      EVP_MD_CTX_free(ctx);
    }
    crashdump::HandlerOptions o;
    o.fatal = false;
    o.target = crashdump::DumpTarget::Directory(dir);
    if (!crashdump::InstallHandler(o).ok()) _exit(11);
    if (!crashdump::RequestLiveDump().ok() || !crashdump::LastDump().ok) {
      _exit(12);
    }
    _exit(0);
  }
  int status = 0;
  while (waitpid(pid, &status, 0) < 0) {
    if (errno != EINTR) return ErrnoError("waitpid", errno);
  }
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    return InternalError("dump child failed (status " + std::to_string(status) +
                         ")");
  }
  std::string path = OnlyCore(dir);
  if (path.empty()) return InternalError("dump child left no dump in " + dir);
  return path;
}

// One algorithm's dumps and its oracle.
struct AlgDumps {
  std::string clean, leak;
  std::unique_ptr<Scanner> oracle;
  uint64_t first_leak_offset = 0;  // of the leak dump
};

StatusOr<AlgDumps> MakeDumps(const std::string& alg, const std::string& dir) {
  AlgDumps out;
  SIGRACE_RETURN_IF_ERROR(MakeDir(dir + "/clean"));
  SIGRACE_RETURN_IF_ERROR(MakeDir(dir + "/leak"));
  // The clean child is forked before the key exists.
  StatusOr<std::string> clean = DumpChild(nullptr, dir + "/clean");
  if (!clean.ok()) return clean.status();
  out.clean = *clean;
  EVP_PKEY* pkey =
      alg == "rs256" ? EVP_PKEY_Q_keygen(nullptr, nullptr, "RSA", size_t{2048})
                     : EVP_PKEY_Q_keygen(nullptr, nullptr, "ED25519");
  if (pkey == nullptr) return InternalError("keygen " + alg + " failed");
  StatusOr<std::string> leak = DumpChild(pkey, dir + "/leak");
  if (!leak.ok()) {
    EVP_PKEY_free(pkey);
    return leak.status();
  }
  out.leak = *leak;
  // The key's forms (DER, PEM among them) exist only from here on, in this
  // process, after both children are gone.
  StatusOr<crashdump::KeyForms> forms =
      crashdump::KeyForms::FromPkey(pkey, "egress-" + alg);
  EVP_PKEY_free(pkey);
  if (!forms.ok()) return forms.status();
  std::vector<crashdump::KeyForms> keys;
  keys.push_back(std::move(forms).value());
  StatusOr<std::unique_ptr<Scanner>> scanner =
      Scanner::Create(std::move(keys), crashdump::ScanOptions{});
  if (!scanner.ok()) return scanner.status();
  out.oracle = std::move(scanner).value();
  return out;
}

// The oracle's leaks in the bytes of `path` (no seal required: a released
// file is judged as the raw bytes that left), and their form names.
struct Bytewise {
  bool read = false;
  uint64_t leaks = 0;
  uint64_t first_offset = UINT64_MAX;
  std::vector<std::string> forms;
};

Bytewise JudgeBytes(const Scanner& oracle, const std::string& path) {
  Bytewise b;
  std::string bytes = ReadAll(path, &b.read);
  std::set<std::string> forms;
  for (const Finding& f : oracle.Scan(
           reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size())) {
    if (f.kind != FindingKind::kLeak) continue;
    ++b.leaks;
    b.first_offset = std::min(b.first_offset, f.file_offset);
    forms.insert(f.form);
  }
  Wipe(&bytes);
  b.forms.assign(forms.begin(), forms.end());
  return b;
}

std::string ReplayCommand(const EgressOptions& o, const std::string& variant,
                          const std::string& alg) {
  return "sigrace repro --egress only --variant " + variant + " --alg " + alg +
         " --seed " + std::to_string(o.seed);
}

nlohmann::json LeakJson(const EgressOptions& o, const std::string& variant,
                        const std::string& alg, const std::string& injector,
                        const std::string& site, const Bytewise& b,
                        const std::string& dump) {
  return {{"trial", 0},
          {"seed", o.seed},
          {"elapsed_s", 0.0},
          {"injector", injector},
          {"failpoint", site},
          {"hit", site.empty() ? 0 : 1},
          {"thread", site.empty() ? "" : "gate"},
          {"forms", b.forms},
          {"regions", nlohmann::json::array()},
          {"dump", dump},
          {"replay", ReplayCommand(o, variant, alg)}};
}

std::string JoinForms(const std::vector<std::string>& forms) {
  std::string s;
  for (const std::string& f : forms) s += (s.empty() ? "" : ", ") + f;
  return s.empty() ? "(none)" : s;
}

// Arms gate.after_judge to run `writer` once.
Status ArmWriter(std::function<void()> writer) {
  SIGRACE_RETURN_IF_ERROR(
      failpoint::SetCallback(kWindowFailpoint, std::move(writer)));
  return failpoint::Configure(std::string(kWindowFailpoint) + "=callback@1");
}

// A gate row: `mode` under `order` on this algorithm's dumps.
ReproRow GateRow(const EgressOptions& o, const EgressVariant& v,
                 const std::string& alg, const AlgDumps& dumps,
                 const std::string& row_dir) {
  ReproRow r;
  r.spec.variant = v.name;
  r.spec.alg = alg;
  r.spec.mode = v.order;
  r.spec.window = v.window;
  r.spec.race = v.race;
  r.command = ReplayCommand(o, v.name, alg);
  r.trials = 1;
  const auto error = [&r](const std::string& why) {
    failpoint::ClearAll();
    r.verdict = "ERROR";
    r.error = true;
    r.note = why + "\n";
    return r;
  };
  const std::string stage = row_dir + "/staging", out = row_dir + "/released";
  if (Status st = MakeDir(row_dir); !st.ok()) return error(st.message());
  if (Status st = MakeDir(stage); !st.ok()) return error(st.message());
  if (Status st = MakeDir(out); !st.ok()) return error(st.message());
  const std::string path = stage + "/dump.core";
  bool read_ok = false;
  // The writer's bytes: the whole leaking dump. Held only for the row.
  auto leak = std::make_shared<std::string>(ReadAll(dumps.leak, &read_ok));
  struct Wiper {
    std::shared_ptr<std::string> s;
    ~Wiper() { Wipe(s.get()); }
  } wiper{leak};
  if (!read_ok) return error("cannot read " + dumps.leak);
  int held_fd = -1;
  Status armed = Status::Ok();
  if (v.order == "unsealed") {
    // The bytes up to the first leak, no seal yet: what the gate sees of a
    // dump still being written.
    if (!WriteFile(path, *leak, dumps.first_leak_offset)) {
      return error("cannot write " + path);
    }
    armed = ArmWriter([path, leak] { WriteFile(path, *leak, SIZE_MAX, true); });
  } else if (v.order == "swap") {
    bool ok = false;
    std::string clean = ReadAll(dumps.clean, &ok);
    if (!ok || !WriteFile(path, clean, SIZE_MAX)) {
      return error("cannot stage " + dumps.clean);
    }
    const std::string other = stage + "/other.core";
    if (!WriteFile(other, *leak, SIZE_MAX)) return error("cannot stage leak");
    armed = ArmWriter([other, path] { ::rename(other.c_str(), path.c_str()); });
  } else {  // held-open
    bool ok = false;
    std::string clean = ReadAll(dumps.clean, &ok);
    if (!ok || !WriteFile(path, clean, SIZE_MAX)) {
      return error("cannot stage " + dumps.clean);
    }
    held_fd = open(path.c_str(), O_WRONLY | O_CLOEXEC);
    if (held_fd < 0) return error("cannot hold " + path + " open");
    const int fd = held_fd;
    armed = ArmWriter([fd, leak] {
      if (ftruncate(fd, 0) != 0) return;
      for (size_t done = 0; done < leak->size();) {
        const ssize_t w = pwrite(fd, leak->data() + done, leak->size() - done,
                                 static_cast<off_t>(done));
        if (w <= 0) return;
        done += static_cast<size_t>(w);
      }
    });
  }
  if (!armed.ok()) {
    if (held_fd >= 0) close(held_fd);
    return error(armed.message());
  }
  GateOptions go;
  go.mode = v.race ? v.mode : o.fixed_mode;
  go.release_dir = out;
  Gate gate(dumps.oracle.get(), go);
  StatusOr<GateDecision> d = gate.Submit(path);
  const std::string fired_at =
      failpoint::Fired(kWindowFailpoint) > 0 ? kWindowFailpoint : "";
  failpoint::ClearAll();
  if (held_fd >= 0) close(held_fd);
  if (!d.ok()) return error("gate: " + d.status().message());
  Bytewise released;
  if (d->released) {
    released = JudgeBytes(*dumps.oracle, d->released_path);
    if (!released.read) return error("cannot read " + d->released_path);
  }
  r.leaks = released.leaks;
  const std::string what =
      d->released
          ? "released " + std::to_string(d->released_size) + " bytes (judged " +
                std::to_string(d->judged_size) + "), the oracle finds " +
                std::to_string(released.leaks) + " leak(s) in them"
          : "refused: " + d->reason;
  r.note = std::string(GateModeNameOf(go.mode)) + " gate, writer " +
           (fired_at.empty() ? "never ran" : "ran at " + fired_at) + "; " +
           what + "\n";
  if (released.leaks > 0) {
    r.first_leak = LeakJson(o, v.name, alg, "failpoint", fired_at, released,
                            d->released_path);
  }
  if (v.race) {
    r.ok = released.leaks > 0;
    r.verdict = r.ok ? "reproduced" : "NOT REPRODUCED";
  } else {
    r.ok = released.leaks == 0;
    r.verdict = r.ok ? "clean" : "LEAK";
  }
  r.failed = !r.ok;
  return r;
}

// gate/legacy: the leak dump through the fixed gate, legacy scanner then
// oracle.
ReproRow LegacyRow(const EgressOptions& o, const EgressVariant& v,
                   const std::string& alg, const AlgDumps& dumps,
                   const std::string& row_dir) {
  ReproRow r;
  r.spec.variant = v.name;
  r.spec.alg = alg;
  r.spec.mode = "memory";
  r.spec.window = v.window;
  r.spec.race = true;
  r.command = ReplayCommand(o, v.name, alg);
  r.trials = 1;
  const auto error = [&r](const std::string& why) {
    r.verdict = "ERROR";
    r.error = true;
    r.note = why + "\n";
    return r;
  };
  const std::string lout = row_dir + "/legacy", oout = row_dir + "/oracle";
  for (const std::string& d : {row_dir, lout, oout}) {
    if (Status st = MakeDir(d); !st.ok()) return error(st.message());
  }
  GateOptions lo;
  lo.mode = GateMode::kFixed;
  lo.release_dir = lout;
  lo.scanner = GateScanner::kLegacy;
  StatusOr<GateDecision> l = Gate(nullptr, lo).Submit(dumps.leak);
  if (!l.ok()) return error("legacy gate: " + l.status().message());
  GateOptions oo;
  oo.mode = GateMode::kFixed;
  oo.release_dir = oout;
  StatusOr<GateDecision> g = Gate(dumps.oracle.get(), oo).Submit(dumps.leak);
  if (!g.ok()) return error("oracle gate: " + g.status().message());
  Bytewise released;
  if (l->released) {
    released = JudgeBytes(*dumps.oracle, l->released_path);
    if (!released.read) return error("cannot read " + l->released_path);
  }
  // What the oracle gate saw, to name the forms when the legacy gate
  // refused (and so released nothing to judge).
  std::set<std::string> seen;
  for (const Finding& f : g->report.findings) {
    if (f.kind == FindingKind::kLeak) seen.insert(f.form);
  }
  r.leaks = released.leaks;
  r.note =
      std::string("legacy gate: ") +
      (l->released
           ? "released; the oracle finds " + std::to_string(released.leaks) +
                 " leak(s) in it, forms " + JoinForms(released.forms)
           : "refused: " + l->reason) +
      "\n  oracle gate: " +
      (g->released ? "released" : "refused: " + g->reason) +
      "; forms it found: " +
      JoinForms(std::vector<std::string>(seen.begin(), seen.end())) + "\n";
  if (released.leaks > 0) {
    r.first_leak = LeakJson(o, v.name, alg, "legacy-scanner", "", released,
                            l->released_path);
  }
  r.ok = l->released && released.leaks > 0 && !g->released;
  r.verdict = r.ok ? "reproduced" : "NOT REPRODUCED";
  r.failed = !r.ok;
  return r;
}

}  // namespace

const char* GateModeNameOf(GateMode mode) {
  for (const crashdump::GateModeInfo& m : crashdump::ListGateModes()) {
    if (m.mode == mode) return m.name;
  }
  return "?";
}

std::vector<EgressVariant> EgressCatalogue() {
  std::vector<EgressVariant> out;
  for (const crashdump::GateModeInfo& m : crashdump::ListGateModes()) {
    if (m.mode == GateMode::kFixed) continue;
    const std::string order = OrderFor(m.mode);
    out.push_back(
        {std::string("gate/") + m.name, m.mode, order, kWindowFailpoint,
         std::string(m.window) + "; forced: " + OrderWindow(order), true});
  }
  for (const EgressOrder& ord : kOrders) {
    const bool unsealed = std::string(ord.name) == "unsealed";
    out.push_back(
        {"gate/fixed", GateMode::kFixed, ord.name, kWindowFailpoint,
         std::string("no window (judged and released from a sealed "
                     "copy); forced: ") +
             ord.window +
             (unsealed ? " (this gate refuses the unsealed dump on its "
                         "headers, before the failpoint: the writer never "
                         "runs inside it)"
                       : ""),
         false});
  }
  out.push_back({"gate/legacy", GateMode::kFixed, "", "",
                 "scanner: the legacy credential scanner (PEM, PKCS#1/PKCS#8 "
                 "DER, private JWK) judges a dump that holds the key only in "
                 "OpenSSL's in-memory forms",
                 true});
  return out;
}

bool IsEgressVariant(const std::string& name) {
  for (const EgressVariant& v : EgressCatalogue()) {
    if (v.name == name) return true;
  }
  return false;
}

StatusOr<std::string> LiveDumpOfChild(EVP_PKEY* pkey, const std::string& dir) {
  return DumpChild(pkey, dir);
}

StatusOr<std::vector<ReproRow>> RunEgressRows(const EgressOptions& options) {
  for (const std::string& n : options.variants) {
    if (!IsEgressVariant(n)) {
      return InvalidArgumentError("unknown egress variant '" + n + "'");
    }
  }
  struct stat st;
  if (stat(options.work_dir.c_str(), &st) != 0 || !S_ISDIR(st.st_mode)) {
    return InvalidArgumentError("no directory " + options.work_dir);
  }
  const auto wanted = [&options](const std::string& name) {
    return options.variants.empty() ||
           std::find(options.variants.begin(), options.variants.end(), name) !=
               options.variants.end();
  };
  std::vector<ReproRow> rows;
  for (const std::string& alg : options.algs) {
    const std::string dir = options.work_dir + "/" + alg;
    SIGRACE_RETURN_IF_ERROR(MakeDir(dir));
    StatusOr<AlgDumps> dumps = MakeDumps(alg, dir);
    Bytewise in_leak;
    if (dumps.ok()) in_leak = JudgeBytes(*dumps->oracle, dumps->leak);
    std::string setup_error;
    if (!dumps.ok()) {
      setup_error = dumps.status().message();
    } else if (!in_leak.read || in_leak.leaks == 0) {
      // Every row rests on the leak dump holding the key.
      setup_error = "the oracle finds no key in the leak dump " + dumps->leak;
    } else {
      dumps->first_leak_offset = in_leak.first_offset;
    }
    for (const EgressVariant& v : EgressCatalogue()) {
      if (!wanted(v.name)) continue;
      const std::string row_dir =
          dir + "/" + v.name.substr(5) + (v.order.empty() ? "" : "-" + v.order);
      if (!setup_error.empty()) {
        ReproRow r;
        r.spec.variant = v.name;
        r.spec.alg = alg;
        r.spec.mode = v.order.empty() ? "memory" : v.order;
        r.spec.window = v.window;
        r.spec.race = v.race;
        r.verdict = "ERROR";
        r.error = true;
        r.note = setup_error + "\n";
        rows.push_back(std::move(r));
        continue;
      }
      const auto start = std::chrono::steady_clock::now();
      rows.push_back(v.order.empty()
                         ? LegacyRow(options, v, alg, *dumps, row_dir)
                         : GateRow(options, v, alg, *dumps, row_dir));
      rows.back().seconds = std::chrono::duration<double>(
                                std::chrono::steady_clock::now() - start)
                                .count();
    }
  }
  return rows;
}

}  // namespace sigrace::stress
