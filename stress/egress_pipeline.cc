#include "stress/egress_pipeline.h"

#include <dirent.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <poll.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <memory>
#include <nlohmann/json.hpp>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "base/failpoint.h"
#include "base/files.h"
#include "base/process.h"
#include "base/secret_memory.h"
#include "crashdump/format/core_reader.h"
#include "crashdump/oracle/key_forms.h"
#include "crashdump/oracle/scanner.h"
#include "stress/channel.h"
#include "stress/repro_egress.h"
#include "stress/trial.h"

namespace sigrace::stress {
namespace {

using Clock = std::chrono::steady_clock;
using crashdump::Scanner;

// Every write(2) of a trial writer. Armed per writer: raise(SIGKILL)@K (the
// writer crashes after K-1 chunks) or error@K (simulated ENOSPC).
SIGRACE_FAILPOINT_DEFINE(kFpWriterWrite, "egress.writer_write");

// Test-only: the gate drops the event (a dump it never judges), and a new
// gate skips what an earlier one left in staging.
SIGRACE_FAILPOINT_DEFINE(kFpGateDropEvent, "egress.gate_drop_event");
SIGRACE_FAILPOINT_DEFINE(kFpGateNoRescan, "egress.gate_no_rescan");

constexpr char kAfterJudge[] = "gate.after_judge";
constexpr char kScanError[] = "gate.scan_error";

struct FaultName {
  EgressFault fault;
  const char* name;
};
constexpr FaultName kFaultNames[] = {
    {EgressFault::kNone, "none"},
    {EgressFault::kWriterCrash, "writer-crash"},
    {EgressFault::kEnospc, "enospc"},
    {EgressFault::kTorn, "torn"},
    {EgressFault::kGateCrash, "gate-crash"},
    {EgressFault::kScannerError, "scanner-error"},
    {EgressFault::kUnsealed, "unsealed"},
    {EgressFault::kSwap, "swap"},
    {EgressFault::kHeldOpen, "held-open"},
};

bool IsWriterFault(EgressFault f) {
  return f == EgressFault::kWriterCrash || f == EgressFault::kEnospc ||
         f == EgressFault::kTorn;
}
bool IsOrder(EgressFault f) {
  return f == EgressFault::kUnsealed || f == EgressFault::kSwap ||
         f == EgressFault::kHeldOpen;
}

std::string TrialPrefix(uint64_t trial) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "t%010llu-",
                static_cast<unsigned long long>(trial));
  return buf;
}

// The trial of a staged name "tNNNNNNNNNN-ALG.core", or nullopt.
std::optional<uint64_t> TrialOf(const std::string& name) {
  if (name.size() < 13 || name[0] != 't' || name[11] != '-') return {};
  uint64_t t = 0;
  for (size_t i = 1; i < 11; ++i) {
    if (name[i] < '0' || name[i] > '9') return {};
    t = t * 10 + static_cast<uint64_t>(name[i] - '0');
  }
  return t;
}

bool EndsWith(const std::string& s, const char* suffix) {
  const std::string x = suffix;
  return s.size() >= x.size() &&
         s.compare(s.size() - x.size(), x.size(), x) == 0;
}

std::vector<std::string> ListDir(const std::string& dir) {
  std::vector<std::string> out;
  if (DIR* d = opendir(dir.c_str())) {
    while (const dirent* e = readdir(d)) {
      const std::string n = e->d_name;
      if (n != "." && n != "..") out.push_back(n);
    }
    closedir(d);
  }
  std::sort(out.begin(), out.end());
  return out;
}

// A dump's bytes: held in MADV_DONTDUMP pages (the leak dump holds a key).
using Bytes = SecretVector<uint8_t>;

StatusOr<Bytes> ReadBytes(const std::string& path) {
  StatusOr<int> fd = OpenRegularFile(path);
  if (!fd.ok()) return fd.status();
  struct stat st;
  if (fstat(*fd, &st) != 0) {
    const int e = errno;
    close(*fd);
    return ErrnoError("fstat " + path, e);
  }
  Bytes b(static_cast<size_t>(st.st_size));
  size_t done = 0;
  while (done < b.size()) {
    const ssize_t n = read(*fd, b.data() + done, b.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    done += static_cast<size_t>(n);
  }
  close(*fd);
  b.resize(done);
  return b;
}

bool WriteAllAt(int fd, const uint8_t* p, size_t n, off_t at) {
  size_t done = 0;
  while (done < n) {
    const ssize_t w =
        pwrite(fd, p + done, n - done, at + static_cast<off_t>(done));
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) return false;
    done += static_cast<size_t>(w);
  }
  return true;
}

Status MakeDir(const std::string& path) {
  if (mkdir(path.c_str(), 0700) != 0 && errno != EEXIST) {
    return ErrnoError("mkdir " + path, errno);
  }
  return Status::Ok();
}

// A fresh or empty directory: a dump left in staging by an earlier run
// would be judged as this run's.
Status EmptyDir(const std::string& path) {
  SIGRACE_RETURN_IF_ERROR(MakeDir(path));
  SIGRACE_RETURN_IF_ERROR(CheckOutputDir(path));
  if (!ListDir(path).empty()) {
    return InvalidArgumentError(path +
                                " is not empty (an earlier run's files; "
                                "remove them or choose another --out)");
  }
  return Status::Ok();
}

struct AlgDumps {
  Bytes clean, leak;
  uint64_t first_leak = 0;  // offset of the first key byte in `leak`
};

// ---------------------------------------------------------------- the gate

// The gate process's state (the process is forked; the callback at
// gate.after_judge reaches it through this pointer).
struct GateProc {
  const PipelineOptions* o = nullptr;
  const Scanner* scanner = nullptr;
  const std::set<uint64_t>* crashed = nullptr;
  std::string staging, outbox, quarantine;
  Channel* ch = nullptr;
  EgressPlan plan;  // of the dump being judged
};
GateProc* g_gate = nullptr;

[[noreturn]] void GateExit(int code) { _exit(code); }

// gate.after_judge in the gate process: the crash fault, and the forced
// orders' writer step (run by the driver while the gate waits).
void GateWindow() {
  GateProc& g = *g_gate;
  if (g.plan.fault == EgressFault::kGateCrash &&
      g.crashed->count(g.plan.trial) == 0) {
    (void)g.ch->Send('X', std::to_string(g.plan.trial));
    raise(SIGKILL);
  }
  if (!IsOrder(g.plan.fault)) return;
  if (!g.ch->Send('W', std::to_string(g.plan.trial)).ok()) GateExit(0);
  for (;;) {
    StatusOr<Message> m = g.ch->Recv(-1);
    if (!m.ok()) GateExit(0);
    if (m->fd >= 0) close(m->fd);
    if (m->type == 'w') return;
    if (m->type == 'Q') GateExit(0);
  }
}

// Why a refused dump was refused, from the decision and the file itself.
std::string Classify(const StatusOr<crashdump::GateDecision>& d,
                     const std::string& path) {
  if (d.ok() && (d->report.leaks > 0 ||
                 d->judgement.verdict == crashdump::DumpVerdict::kLeak)) {
    return "key-found";
  }
  StatusOr<int> fd = OpenRegularFile(path);
  if (fd.ok()) {
    struct stat st;
    std::string shape;
    if (fstat(*fd, &st) == 0) {
      StatusOr<uint64_t> declared =
          crashdump::DeclaredContentEnd(*fd, static_cast<uint64_t>(st.st_size));
      if (!declared.ok() || static_cast<uint64_t>(st.st_size) < *declared) {
        shape = "torn";
      }
    }
    close(*fd);
    if (!shape.empty()) return shape;
    crashdump::ReaderOptions ro;
    ro.require_seal = true;
    if (!crashdump::CoreReader::Open(path, ro).ok()) return "unsealed";
  }
  if (!d.ok() || d->reason.rfind("not judged", 0) == 0) return "scanner-error";
  return "refused";
}

bool SameFile(const struct stat& a, const struct stat& b) {
  return a.st_ino == b.st_ino && a.st_dev == b.st_dev &&
         a.st_size == b.st_size && a.st_mtim.tv_sec == b.st_mtim.tv_sec &&
         a.st_mtim.tv_nsec == b.st_mtim.tv_nsec;
}

// Judges the staged file `name`, then releases it (the gate did), moves it
// to quarantine with a reason file, or, if it changed under the gate,
// leaves it for the judgment its new event brings.
void JudgeOne(const crashdump::Gate& gate, const std::string& name) {
  GateProc& g = *g_gate;
  if (name.empty() || name[0] == '.' || !EndsWith(name, ".core")) return;
  const std::optional<uint64_t> trial = TrialOf(name);
  if (!trial) return;
  if (SIGRACE_FAILPOINT(kFpGateDropEvent)) return;
  const std::string path = g.staging + "/" + name;
  struct stat before;
  if (lstat(path.c_str(), &before) != 0 || !S_ISREG(before.st_mode)) return;
  g.plan = PlanEgressTrial(*g.o, *trial);
  if (g.plan.fault == EgressFault::kScannerError) {
    (void)failpoint::Configure(std::string(kScanError) + "=error");
  }
  StatusOr<crashdump::GateDecision> d = gate.Submit(path);
  (void)failpoint::Clear(kScanError);
  struct stat after;
  const bool gone = lstat(path.c_str(), &after) != 0;
  const bool same = !gone && SameFile(before, after);
  nlohmann::json j = {{"trial", *trial}, {"name", name}};
  if (d.ok() && d->released) {
    if (same) unlink(path.c_str());
    j["outcome"] = "released";
    j["reason"] = "clean";
  } else {
    const std::string cls = Classify(d, path);
    j["class"] = cls;
    j["reason"] = d.ok() ? d->reason : d.status().message();
    if (same) {
      // The reason file first: once the dump is in quarantine, it has one.
      std::string target = name;
      for (int i = 1;
           access((g.quarantine + "/" + target).c_str(), F_OK) == 0 ||
           access((g.quarantine + "/" + target + ".reason").c_str(), F_OK) == 0;
           ++i) {
        target = name + "." + std::to_string(i);
      }
      (void)WriteFileAtomic(g.quarantine + "/" + target + ".reason",
                            j.dump() + "\n", 0600, /*replace=*/false);
      if (renameat2(AT_FDCWD, path.c_str(), AT_FDCWD,
                    (g.quarantine + "/" + target).c_str(),
                    RENAME_NOREPLACE) == 0) {
        j["outcome"] = "quarantined";
      } else {
        j["outcome"] = "error";
        j["reason"] = ErrnoError("quarantine", errno).message();
      }
    } else {
      j["outcome"] = "superseded";
    }
  }
  if (!g.ch->Send('D', j.dump()).ok()) GateExit(0);
}

[[noreturn]] void GateMain(GateProc g, int fd) {
  Channel ch(fd);
  g.ch = &ch;
  g_gate = &g;
  failpoint::ClearAll();
  if (!g.o->gate_failpoints.empty() &&
      !failpoint::Configure(g.o->gate_failpoints).ok()) {
    (void)ch.Send('E', "gate: bad failpoints " + g.o->gate_failpoints);
    GateExit(2);
  }
  if (Status st = MakeProcessUndumpable(); !st.ok()) {
    (void)ch.Send('E', "gate: " + st.message());
    GateExit(2);
  }
  crashdump::GateOptions go;
  go.mode = g.o->gate_mode;
  go.scanner = g.o->scanner;
  go.release_dir = g.outbox;
  const crashdump::Gate gate(g.scanner, go);
  const int in = inotify_init1(IN_CLOEXEC | IN_NONBLOCK);
  if (in < 0 || inotify_add_watch(in, g.staging.c_str(),
                                  IN_CLOSE_WRITE | IN_MOVED_TO) < 0) {
    (void)ch.Send('E',
                  ErrnoError("gate: inotify on " + g.staging, errno).message());
    GateExit(2);
  }
  if (!failpoint::SetCallback(kAfterJudge, GateWindow).ok() ||
      !failpoint::Configure(std::string(kAfterJudge) + "=callback").ok()) {
    (void)ch.Send('E', "gate: cannot arm gate.after_judge");
    GateExit(2);
  }
  // After the watch is up: whatever an earlier gate left unjudged (it
  // crashed) is judged again, never released on its earlier judgment.
  std::deque<std::string> queue;
  if (!SIGRACE_FAILPOINT(kFpGateNoRescan)) {
    for (const std::string& n : ListDir(g.staging)) queue.push_back(n);
  }
  if (!ch.Send('H', std::to_string(queue.size())).ok()) GateExit(0);
  alignas(inotify_event) char buf[64 * 1024];
  for (;;) {
    while (!queue.empty()) {
      const std::string n = std::move(queue.front());
      queue.pop_front();
      JudgeOne(gate, n);
    }
    pollfd p[2] = {{in, POLLIN, 0}, {fd, POLLIN, 0}};
    if (poll(p, 2, -1) < 0) {
      if (errno == EINTR) continue;
      GateExit(2);
    }
    if (p[1].revents != 0) {
      StatusOr<Message> m = ch.Recv(0);
      if (!m.ok() && m.status().code() != StatusCode::kUnavailable) GateExit(0);
      if (m.ok() && m->type == 'Q') GateExit(0);
    }
    if (p[0].revents != 0) {
      for (;;) {
        const ssize_t n = read(in, buf, sizeof buf);
        if (n <= 0) break;
        for (ssize_t at = 0; at < n;) {
          const auto* e = reinterpret_cast<const inotify_event*>(buf + at);
          if (e->len > 0) queue.emplace_back(e->name);
          at += static_cast<ssize_t>(sizeof(inotify_event) + e->len);
        }
      }
    }
  }
}

// Forks the gate process with `g` and waits for its hello: on success
// `*pid` and `*channel` are the driver's handles on it. Shared by the
// pipeline and GateService (the signer stress through the gate).
Status StartGateProcess(GateProc g, pid_t* pid_out,
                        std::unique_ptr<Channel>* channel) {
  int mine = -1, theirs = -1;
  SIGRACE_RETURN_IF_ERROR(MakeChannelPair(&mine, &theirs));
  const pid_t pid = fork();
  if (pid < 0) {
    const int e = errno;
    close(mine);
    close(theirs);
    return ErrnoError("fork the gate", e);
  }
  if (pid == 0) {
    // The gate holds no descriptor of the driver's: a writer's descriptor
    // held here would keep its IN_CLOSE_WRITE from ever firing.
    const long max_fd = std::min<long>(sysconf(_SC_OPEN_MAX), 65536);
    for (int fd = 3; fd < max_fd; ++fd) {
      if (fd != theirs) close(fd);
    }
    GateMain(std::move(g), theirs);
  }
  close(theirs);
  *pid_out = pid;
  *channel = std::make_unique<Channel>(mine);
  StatusOr<Message> m = (*channel)->Recv(60000);
  if (!m.ok())
    return InternalError("gate did not start: " + m.status().message());
  if (m->type == 'E') return InternalError(m->payload);
  if (m->type != 'H') return InternalError("gate: unexpected first message");
  return Status::Ok();
}

// Asks the gate process to quit and waits for it.
void StopGateProcess(pid_t* pid, std::unique_ptr<Channel>* channel) {
  if (*pid <= 0) return;
  if (*channel) (void)(*channel)->Send('Q', "");
  channel->reset();
  int ws = 0;
  waitpid(*pid, &ws, 0);
  *pid = -1;
}

// The three directories of a gate, fresh or emptied.
Status MakeGateDirs(const std::string& out_dir, std::string* staging,
                    std::string* outbox, std::string* quarantine) {
  SIGRACE_RETURN_IF_ERROR(PrepareOutputDir(out_dir));
  *staging = out_dir + "/staging";
  *outbox = out_dir + "/outbox";
  *quarantine = out_dir + "/quarantine";
  SIGRACE_RETURN_IF_ERROR(EmptyDir(*staging));
  SIGRACE_RETURN_IF_ERROR(EmptyDir(*outbox));
  return EmptyDir(*quarantine);
}

// -------------------------------------------------------------- the driver

struct Pending {
  EgressPlan plan;
  std::string name;
  pid_t writer = -1;
  bool writer_done = false;
  int held_fd = -1;  // held-open: the writer's descriptor
  bool window_done = false;
  bool torn = false;  // the writer left the dump torn
  std::string error;
  Clock::time_point since;
};

class Pipeline {
 public:
  explicit Pipeline(const PipelineOptions& o) : o_(o) {
    report_.gate_mode = GateModeNameOf(o.gate_mode);
    report_.scanner = crashdump::GateScannerName(o.scanner);
    report_.faults = EgressFaultList(o.faults);
    report_.seed = o.seed;
    report_.expect_leak =
        o.expect_leak.value_or(o.gate_mode != crashdump::GateMode::kFixed ||
                               o.scanner == crashdump::GateScanner::kLegacy);
  }
  ~Pipeline() {
    for (auto& [t, p] : pending_) {
      if (p.held_fd >= 0) close(p.held_fd);
      if (p.writer > 0) {
        kill(p.writer, SIGKILL);
        waitpid(p.writer, nullptr, 0);
      }
    }
    StopGate();
    if (staging_fd_ >= 0) close(staging_fd_);
  }

  StatusOr<PipelineReport> Run();

 private:
  Status Setup();
  Status StartGate();
  void StopGate();
  Status StartTrial(uint64_t trial);
  Status Pump(int timeout_ms);
  void CountDecision(const std::string& payload);
  void Window(uint64_t trial);
  void Reap();
  void CheckDone();
  void Finish(Pending& p, bool timed_out);
  const AlgDumps& DumpsOf(const std::string& alg) const {
    return dumps_.at(alg);
  }
  uint64_t Chunks(const Bytes& b) const {
    return std::max<uint64_t>(1, (b.size() + kWriterChunk - 1) / kWriterChunk);
  }

  const PipelineOptions o_;
  PipelineReport report_;
  std::string staging_, outbox_, quarantine_;
  int staging_fd_ = -1;
  std::map<std::string, AlgDumps> dumps_;
  std::unique_ptr<Scanner> oracle_;
  std::set<uint64_t> crashed_;  // trials whose gate crash has fired
  pid_t gate_pid_ = -1;
  std::unique_ptr<Channel> gate_;
  std::map<uint64_t, Pending> pending_;
  uint32_t kept_ = 0;
  uint32_t unexpected_gate_deaths_ = 0;
  Clock::time_point start_;
};

Status Pipeline::Setup() {
  SIGRACE_RETURN_IF_ERROR(
      MakeGateDirs(o_.out_dir, &staging_, &outbox_, &quarantine_));
  StatusOr<int> sfd = OpenDir(staging_);
  if (!sfd.ok()) return sfd.status();
  staging_fd_ = *sfd;
  // The real dumps, made in a private directory and read into memory.
  std::string tmp = o_.out_dir + "/.egress-dumps-XXXXXX";
  if (mkdtemp(tmp.data()) == nullptr)
    return ErrnoError("mkdtemp " + tmp, errno);
  struct Cleanup {
    std::string dir;
    ~Cleanup() {
      for (const std::string& sub : {"clean", "leak"}) {
        for (const std::string& n : ListDir(dir + "/" + sub)) {
          unlink((dir + "/" + sub + "/" + n).c_str());
        }
        rmdir((dir + "/" + sub).c_str());
      }
      rmdir(dir.c_str());
    }
  } cleanup{tmp};
  // Every clean child is forked before any key exists.
  for (const std::string& alg : o_.algs) {
    const std::string dir = tmp + "/clean/" + alg;
    SIGRACE_RETURN_IF_ERROR(MakeDir(tmp + "/clean"));
    SIGRACE_RETURN_IF_ERROR(MakeDir(dir));
    StatusOr<std::string> p = LiveDumpOfChild(nullptr, dir);
    if (!p.ok()) return p.status();
    StatusOr<Bytes> b = ReadBytes(*p);
    unlink(p->c_str());
    rmdir(dir.c_str());
    if (!b.ok()) return b.status();
    dumps_[alg].clean = std::move(*b);
  }
  std::vector<crashdump::KeyForms> keys;
  for (const std::string& alg : o_.algs) {
    EVP_PKEY* pkey =
        alg == "rs256"
            ? EVP_PKEY_Q_keygen(nullptr, nullptr, "RSA", size_t{2048})
            : EVP_PKEY_Q_keygen(nullptr, nullptr, "ED25519");
    if (pkey == nullptr) return InternalError("keygen " + alg + " failed");
    const std::string dir = tmp + "/leak/" + alg;
    Status st = MakeDir(tmp + "/leak");
    if (st.ok()) st = MakeDir(dir);
    StatusOr<std::string> p =
        st.ok() ? LiveDumpOfChild(pkey, dir) : StatusOr<std::string>(st);
    if (!p.ok()) {
      EVP_PKEY_free(pkey);
      return p.status();
    }
    StatusOr<Bytes> b = ReadBytes(*p);
    unlink(p->c_str());
    rmdir(dir.c_str());
    if (!b.ok()) {
      EVP_PKEY_free(pkey);
      return b.status();
    }
    dumps_[alg].leak = std::move(*b);
    // The key's forms exist only from here on, after the child is gone.
    StatusOr<crashdump::KeyForms> forms =
        crashdump::KeyForms::FromPkey(pkey, "egress-" + alg);
    EVP_PKEY_free(pkey);
    if (!forms.ok()) return forms.status();
    keys.push_back(std::move(forms).value());
  }
  StatusOr<std::unique_ptr<Scanner>> scanner =
      Scanner::Create(std::move(keys), crashdump::ScanOptions{});
  if (!scanner.ok()) return scanner.status();
  oracle_ = std::move(scanner).value();
  for (auto& [alg, d] : dumps_) {
    uint64_t first = UINT64_MAX;
    for (const crashdump::Finding& f :
         oracle_->Scan(d.leak.data(), d.leak.size())) {
      if (f.kind == crashdump::FindingKind::kLeak) {
        first = std::min(first, f.file_offset);
      }
    }
    if (first == UINT64_MAX) {
      return InternalError("the " + alg +
                           " leak dump holds no key form the oracle finds");
    }
    d.first_leak = first;
    for (const crashdump::Finding& f :
         oracle_->Scan(d.clean.data(), d.clean.size())) {
      if (f.kind == crashdump::FindingKind::kLeak) {
        return InternalError("the " + alg + " clean dump holds a key form");
      }
    }
  }
  return Status::Ok();
}

Status Pipeline::StartGate() {
  GateProc g;
  g.o = &o_;
  g.scanner = oracle_.get();
  g.crashed = &crashed_;
  g.staging = staging_;
  g.outbox = outbox_;
  g.quarantine = quarantine_;
  return StartGateProcess(std::move(g), &gate_pid_, &gate_);
}

void Pipeline::StopGate() { StopGateProcess(&gate_pid_, &gate_); }

Status Pipeline::StartTrial(uint64_t trial) {
  Pending p;
  p.plan = PlanEgressTrial(o_, trial);
  p.name = TrialPrefix(trial) + p.plan.alg + ".core";
  p.since = Clock::now();
  const AlgDumps& d = DumpsOf(p.plan.alg);
  report_.faults_fired[EgressFaultName(p.plan.fault)]++;
  const EgressFault f = p.plan.fault;
  if (IsOrder(f)) {
    // The driver is this trial's writer: it plays the writer's step of the
    // order when the gate reaches its window.
    const Bytes& first = f == EgressFault::kUnsealed ? d.leak : d.clean;
    const size_t len = f == EgressFault::kUnsealed
                           ? static_cast<size_t>(d.first_leak)
                           : first.size();
    StatusOr<int> fd = CreateExclusiveAt(staging_fd_, p.name, 0600);
    if (!fd.ok()) return fd.status();
    int held = -1;
    if (f == EgressFault::kHeldOpen) {
      held = openat(staging_fd_, p.name.c_str(),
                    O_WRONLY | O_NOFOLLOW | O_CLOEXEC);
    }
    const bool ok = WriteAllAt(*fd, first.data(), len, 0);
    close(*fd);  // IN_CLOSE_WRITE: the gate takes it from here
    if (!ok) {
      if (held >= 0) close(held);
      return ErrnoError("write " + p.name, errno);
    }
    p.held_fd = held;
    p.writer_done = true;
    report_.dumps_staged++;
  } else {
    const Bytes& bytes = p.plan.leak ? d.leak : d.clean;
    const uint64_t k = 1 + p.plan.cut_chunk % Chunks(bytes);
    std::string spec;
    if (f == EgressFault::kWriterCrash) {
      spec = "egress.writer_write=raise(SIGKILL)@" + std::to_string(k);
    } else if (f == EgressFault::kEnospc) {
      spec = "egress.writer_write=error@" + std::to_string(k);
    }
    const size_t limit = f == EgressFault::kTorn
                             ? static_cast<size_t>((k - 1) * kWriterChunk)
                             : bytes.size();
    p.torn = IsWriterFault(f);
    const pid_t pid = fork();
    if (pid < 0) return ErrnoError("fork a writer", errno);
    if (pid == 0) {
      failpoint::ClearAll();
      if (!spec.empty() && !failpoint::Configure(spec).ok()) _exit(20);
      StatusOr<int> fd = CreateExclusiveAt(staging_fd_, p.name, 0600);
      if (!fd.ok()) _exit(21);
      for (size_t at = 0; at < limit;) {
        if (SIGRACE_FAILPOINT(kFpWriterWrite)) {
          // Simulated ENOSPC: the write fails as on a full disk; the
          // writer gives up and leaves what it wrote.
          close(*fd);
          _exit(3);
        }
        const size_t n = std::min(kWriterChunk, limit - at);
        if (!WriteAllAt(*fd, bytes.data() + at, n, static_cast<off_t>(at))) {
          _exit(22);
        }
        at += n;
      }
      _exit(close(*fd) == 0 ? 0 : 23);
    }
    p.writer = pid;
    report_.dumps_staged++;
    if (p.torn) report_.torn_staged++;
  }
  pending_.emplace(trial, std::move(p));
  return Status::Ok();
}

// The writer's step of a forced order, while the gate waits in its window.
void Pipeline::Window(uint64_t trial) {
  auto it = pending_.find(trial);
  if (it != pending_.end() && !it->second.window_done) {
    Pending& p = it->second;
    p.window_done = true;
    const Bytes& leak = DumpsOf(p.plan.alg).leak;
    if (p.plan.fault == EgressFault::kUnsealed) {
      // The writer finishes the dump it was writing.
      const int fd = openat(staging_fd_, p.name.c_str(),
                            O_WRONLY | O_NOFOLLOW | O_CLOEXEC);
      if (fd >= 0) {
        if (!WriteAllAt(fd, leak.data(), leak.size(), 0)) {
          p.error = "window: finishing " + p.name + " failed";
        }
        close(fd);
      }
    } else if (p.plan.fault == EgressFault::kSwap) {
      // The next dump, written aside and renamed over the judged path.
      const std::string aside = "." + p.name + ".swap";
      StatusOr<int> fd = CreateExclusiveAt(staging_fd_, aside, 0600);
      if (fd.ok()) {
        const bool ok = WriteAllAt(*fd, leak.data(), leak.size(), 0);
        close(*fd);
        if (!ok || renameat(staging_fd_, aside.c_str(), staging_fd_,
                            p.name.c_str()) != 0) {
          p.error = "window: swapping " + p.name + " failed";
          unlinkat(staging_fd_, aside.c_str(), 0);
        } else {
          report_.dumps_staged++;
        }
      } else {
        p.error = "window: " + fd.status().message();
      }
    } else if (p.plan.fault == EgressFault::kHeldOpen && p.held_fd >= 0) {
      // The writer rewrites the file it still holds open.
      if (!WriteAllAt(p.held_fd, leak.data(), leak.size(), 0) ||
          ftruncate(p.held_fd, static_cast<off_t>(leak.size())) != 0) {
        p.error = "window: rewriting " + p.name + " failed";
      } else {
        report_.dumps_staged++;
      }
      close(p.held_fd);
      p.held_fd = -1;
    }
  }
  (void)gate_->Send('w', "");
}

// One gate decision ('D'): counted by outcome; an outcome the gate does
// not define is a harness error, whenever it arrives.
void Pipeline::CountDecision(const std::string& payload) {
  const nlohmann::json j = nlohmann::json::parse(payload, nullptr, false);
  report_.judgments++;
  const std::string outcome = j.is_object() ? j.value("outcome", "") : "";
  if (outcome == "quarantined") {
    report_.quarantined++;
    report_.quarantined_by_reason[j.value("class", "?")]++;
  } else if (outcome == "superseded") {
    report_.superseded++;
  } else if (outcome != "released") {
    report_.harness_errors.push_back(
        "gate: " + (j.is_object() ? j.value("reason", "") : payload));
  }
}

Status Pipeline::Pump(int timeout_ms) {
  StatusOr<Message> m = gate_->Recv(timeout_ms);
  if (m.ok()) {
    if (m->fd >= 0) close(m->fd);
    if (m->type == 'W') {
      Window(std::strtoull(m->payload.c_str(), nullptr, 10));
    } else if (m->type == 'X') {
      crashed_.insert(std::strtoull(m->payload.c_str(), nullptr, 10));
    } else if (m->type == 'D') {
      CountDecision(m->payload);
    } else if (m->type == 'E') {
      return InternalError(m->payload);
    }
    return Status::Ok();
  }
  if (m.status().code() == StatusCode::kUnavailable) return Status::Ok();
  // The gate is gone: a crash fault, or a harness error. A new gate
  // judges again whatever is left in staging.
  int ws = 0;
  waitpid(gate_pid_, &ws, 0);
  gate_pid_ = -1;
  gate_.reset();
  const bool planned = WIFSIGNALED(ws) && WTERMSIG(ws) == SIGKILL;
  if (!planned && ++unexpected_gate_deaths_ > 3) {
    return InternalError("gate died: " + WaitStatusText(ws));
  }
  if (!planned)
    report_.harness_errors.push_back("gate died: " + WaitStatusText(ws));
  report_.gate_restarts++;
  return StartGate();
}

void Pipeline::Reap() {
  for (auto& [t, p] : pending_) {
    if (p.writer <= 0) continue;
    int ws = 0;
    const pid_t r = waitpid(p.writer, &ws, WNOHANG);
    if (r == 0) continue;
    p.writer = -1;
    p.writer_done = true;
    p.since = Clock::now();
    const EgressFault f = p.plan.fault;
    const bool expected = f == EgressFault::kWriterCrash
                              ? WIFSIGNALED(ws) && WTERMSIG(ws) == SIGKILL
                          : f == EgressFault::kEnospc
                              ? WIFEXITED(ws) && WEXITSTATUS(ws) == 3
                              : WIFEXITED(ws) && WEXITSTATUS(ws) == 0;
    if (r < 0 || !expected) {
      p.error = "writer " + (r < 0 ? std::string("lost") : WaitStatusText(ws)) +
                " (" + p.plan.Describe() + ")";
    }
  }
}

void Pipeline::CheckDone() {
  std::set<uint64_t> staged;
  for (const std::string& n : ListDir(staging_)) {
    if (n.empty() || n[0] == '.') continue;
    if (std::optional<uint64_t> t = TrialOf(n)) staged.insert(*t);
  }
  const auto now = Clock::now();
  for (auto it = pending_.begin(); it != pending_.end();) {
    Pending& p = it->second;
    const bool waiting = staged.count(it->first) > 0;
    const bool timed_out =
        waiting &&
        std::chrono::duration<double, std::milli>(now - p.since).count() >
            o_.judge_timeout_ms;
    if (!p.writer_done || (waiting && !timed_out)) {
      ++it;
      continue;
    }
    Finish(p, timed_out);
    it = pending_.erase(it);
  }
}

void Pipeline::Finish(Pending& p, bool timed_out) {
  report_.trials++;
  if (p.held_fd >= 0) {
    close(p.held_fd);
    p.held_fd = -1;
  }
  if (!p.error.empty()) report_.harness_errors.push_back(p.error);
  if (timed_out) {
    report_.never_judged++;
    report_.harness_errors.push_back("never judged: " + p.name + " (" +
                                     p.plan.Describe() + ")");
  }
  const std::string prefix = TrialPrefix(p.plan.trial);
  bool released_any = false;
  for (const std::string& n : ListDir(outbox_)) {
    if (n.rfind(prefix, 0) != 0) continue;
    const std::string path = outbox_ + "/" + n;
    released_any = true;
    report_.released++;
    StatusOr<Bytes> b = ReadBytes(path);
    if (!b.ok()) {
      report_.harness_errors.push_back("outbox: " + b.status().message());
      continue;
    }
    // The oracle on the bytes that left, never the gate's word.
    EgressLeak leak;
    std::set<std::string> forms;
    for (const crashdump::Finding& f : oracle_->Scan(b->data(), b->size())) {
      if (f.kind != crashdump::FindingKind::kLeak) continue;
      ++leak.fragments;
      forms.insert(f.form);
    }
    b->clear();
    crashdump::ReaderOptions ro;
    ro.require_seal = true;
    leak.key = leak.fragments > 0;
    leak.torn = !crashdump::CoreReader::Open(path, ro).ok();
    if (!leak.key && !leak.torn) {
      unlink(path.c_str());
      continue;
    }
    if (leak.key) report_.leaks++;
    if (leak.torn) report_.torn_released++;
    leak.trial = p.plan.trial;
    leak.plan = p.plan.Describe();
    leak.forms.assign(forms.begin(), forms.end());
    leak.elapsed_s =
        std::chrono::duration<double>(Clock::now() - start_).count();
    leak.dumps_before = report_.judgments;
    leak.replay = PipelineReplayCommand(o_, p.plan.trial);
    if (kept_ < o_.max_kept) {
      leak.file = path;
      ++kept_;
    } else {
      unlink(path.c_str());
    }
    if (!o_.quiet) {
      std::string fs;
      for (const std::string& f : leak.forms) fs += (fs.empty() ? "" : ",") + f;
      std::fprintf(stderr, "sigrace: RELEASED %s %s: %s%s [%s]; replay: %s\n",
                   leak.key ? "LEAK" : "TORN DUMP", leak.plan.c_str(),
                   n.c_str(), leak.torn ? " (no valid seal)" : "", fs.c_str(),
                   leak.replay.c_str());
    }
    if (report_.leak_list.size() < 50) report_.leak_list.push_back(leak);
  }
  bool quarantined_any = false;
  for (const std::string& n : ListDir(quarantine_)) {
    if (n.rfind(prefix, 0) != 0 || EndsWith(n, ".reason")) continue;
    quarantined_any = true;
    unlink((quarantine_ + "/" + n).c_str());  // its reason file stays
  }
  if (p.torn && quarantined_any && !released_any) report_.torn_quarantined++;
}

StatusOr<PipelineReport> Pipeline::Run() {
  SIGRACE_RETURN_IF_ERROR(MakeProcessUndumpable());
  SIGRACE_RETURN_IF_ERROR(Setup());
  SIGRACE_RETURN_IF_ERROR(StartGate());
  start_ = Clock::now();
  const uint64_t first = o_.trial ? *o_.trial : 0;
  const uint64_t end = o_.trial ? *o_.trial + 1 : o_.trials;
  uint64_t next = first;
  while (next < end || !pending_.empty()) {
    const bool stop =
        o_.stop_at_first_leak && report_.leaks + report_.torn_released > 0;
    while (!stop && next < end && pending_.size() < o_.inflight) {
      SIGRACE_RETURN_IF_ERROR(StartTrial(next++));
    }
    if (stop) next = end;
    SIGRACE_RETURN_IF_ERROR(Pump(5));
    Reap();
    CheckDone();
  }
  // Every decision the gate sent before it stops.
  (void)gate_->Send('Q', "");
  for (;;) {
    StatusOr<Message> m = gate_->Recv(30000);
    if (!m.ok()) break;
    if (m->fd >= 0) close(m->fd);
    if (m->type == 'D') CountDecision(m->payload);
  }
  StopGate();
  report_.elapsed_s =
      std::chrono::duration<double>(Clock::now() - start_).count();
  return report_;
}

}  // namespace

GateService::GateService(const std::string& out_dir, crashdump::GateMode mode,
                         crashdump::GateScanner scanner,
                         uint32_t judge_timeout_ms)
    : out_dir_(out_dir), judge_timeout_ms_(judge_timeout_ms) {
  // No faults: every staged dump is judged as it is (PlanEgressTrial
  // draws kNone), so the gate's failpoint window never waits for a writer.
  o_.out_dir = out_dir;
  o_.gate_mode = mode;
  o_.scanner = scanner;
  o_.faults.clear();
  // The gate's own test failpoints (egress.gate_*) from SIGRACE_FAILPOINTS
  // are armed in the gate process (e.g. a dropped event: never judged).
  if (const char* env = getenv("SIGRACE_FAILPOINTS")) {
    const std::string all = env;
    size_t at = 0;
    while (at <= all.size()) {
      const size_t end = std::min(all.find(';', at), all.size());
      const std::string spec = all.substr(at, end - at);
      if (spec.rfind("egress.gate_", 0) == 0) {
        o_.gate_failpoints += (o_.gate_failpoints.empty() ? "" : ";") + spec;
      }
      at = end + 1;
    }
  }
}

GateService::~GateService() {
  StopGateProcess(&pid_, &channel_);
  if (staging_fd_ >= 0) close(staging_fd_);
}

Status GateService::Start(const crashdump::Scanner* scanner) {
  StopGateProcess(&pid_, &channel_);
  if (staging_fd_ < 0) {
    SIGRACE_RETURN_IF_ERROR(
        MakeGateDirs(out_dir_, &staging_, &outbox_, &quarantine_));
    StatusOr<int> sfd = OpenDir(staging_);
    if (!sfd.ok()) return sfd.status();
    staging_fd_ = *sfd;
  }
  GateProc g;
  g.o = &o_;
  g.scanner = scanner;
  g.crashed = &crashed_;
  g.staging = staging_;
  g.outbox = outbox_;
  g.quarantine = quarantine_;
  return StartGateProcess(std::move(g), &pid_, &channel_);
}

StatusOr<int> GateService::Stage(uint64_t trial, const std::string& alg) {
  if (staging_fd_ < 0 || !channel_) return InternalError("gate not started");
  if (alg.empty() || alg.find('/') != std::string::npos || alg[0] == '.') {
    return InvalidArgumentError("bad algorithm name for a staged dump");
  }
  return CreateExclusiveAt(staging_fd_, TrialPrefix(trial) + alg + ".core",
                           0600);
}

StatusOr<GateOutcome> GateService::Await(uint64_t trial) {
  if (!channel_) return InternalError("gate not started");
  const auto deadline =
      Clock::now() + std::chrono::milliseconds(judge_timeout_ms_);
  for (;;) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
                          deadline - Clock::now())
                          .count();
    if (left <= 0) break;
    StatusOr<Message> m = channel_->Recv(static_cast<int>(left));
    if (!m.ok()) {
      if (m.status().code() == StatusCode::kUnavailable) break;
      int ws = 0;
      waitpid(pid_, &ws, 0);
      pid_ = -1;
      channel_.reset();
      return InternalError("gate died: " + WaitStatusText(ws));
    }
    if (m->fd >= 0) close(m->fd);
    if (m->type == 'E') return InternalError(m->payload);
    if (m->type != 'D') continue;
    const nlohmann::json j = nlohmann::json::parse(m->payload, nullptr, false);
    if (!j.is_object() || j.value("trial", uint64_t{0}) != trial) continue;
    const std::string outcome = j.value("outcome", "");
    const std::string prefix = TrialPrefix(trial);
    GateOutcome o;
    if (outcome == "released") {
      o.released = true;
      for (const std::string& n : ListDir(outbox_)) {
        if (n.rfind(prefix, 0) == 0) o.path = outbox_ + "/" + n;
      }
      return o;
    }
    if (outcome == "quarantined") {
      o.reason = j.value("class", "refused");
      for (const std::string& n : ListDir(quarantine_)) {
        if (n.rfind(prefix, 0) == 0 && !EndsWith(n, ".reason")) {
          o.path = quarantine_ + "/" + n;
        }
      }
      return o;
    }
    return InternalError("gate: " + outcome + ": " + j.value("reason", ""));
  }
  // Never judged: it does not stay in staging for a later gate to judge.
  for (const std::string& n : ListDir(staging_)) {
    if (n.rfind(TrialPrefix(trial), 0) == 0) {
      (void)unlinkat(staging_fd_, n.c_str(), 0);
    }
  }
  return InternalError("dump of trial " + std::to_string(trial) +
                       " not judged within " +
                       std::to_string(judge_timeout_ms_) + " ms");
}

const char* EgressFaultName(EgressFault fault) {
  for (const FaultName& f : kFaultNames) {
    if (f.fault == fault) return f.name;
  }
  return "?";
}

std::vector<EgressFault> AllEgressFaults() {
  std::vector<EgressFault> out;
  for (const FaultName& f : kFaultNames) {
    if (f.fault != EgressFault::kNone) out.push_back(f.fault);
  }
  return out;
}

StatusOr<std::vector<EgressFault>> ParseEgressFaults(const std::string& text) {
  if (text == "all") return AllEgressFaults();
  std::vector<EgressFault> out;
  if (text == "none") return out;
  size_t at = 0;
  while (at <= text.size()) {
    const size_t end = std::min(text.find(',', at), text.size());
    const std::string item = text.substr(at, end - at);
    bool found = false;
    for (const FaultName& f : kFaultNames) {
      if (f.fault != EgressFault::kNone && item == f.name) {
        if (std::find(out.begin(), out.end(), f.fault) == out.end()) {
          out.push_back(f.fault);
        }
        found = true;
      }
    }
    if (!found) {
      return InvalidArgumentError(
          "unknown egress fault '" + item +
          "' (writer-crash, enospc, torn, gate-crash, scanner-error, "
          "unsealed, swap, held-open, all, none)");
    }
    at = end + 1;
  }
  return out;
}

std::string EgressFaultList(const std::vector<EgressFault>& faults) {
  if (faults.empty()) return "none";
  std::string s;
  for (EgressFault f : faults)
    s += (s.empty() ? "" : ",") + std::string(EgressFaultName(f));
  return s;
}

std::string EgressPlan::Describe() const {
  std::string s = "trial " + std::to_string(trial) + " " + alg + " " +
                  (leak ? "leak" : "clean") + " dump";
  if (fault != EgressFault::kNone) {
    s += ", fault " + std::string(EgressFaultName(fault));
  }
  return s;
}

EgressPlan PlanEgressTrial(const PipelineOptions& o, uint64_t trial) {
  uint64_t x = SplitMix64(SplitMix64(o.seed ^ 0x4547524553532121ULL) ^
                          SplitMix64(trial + 0x6761746521212121ULL));
  auto next = [&x] {
    x = SplitMix64(x + 0x9e3779b97f4a7c15ULL);
    return x;
  };
  EgressPlan p;
  p.trial = trial;
  p.alg = o.algs.empty() ? "rs256" : o.algs[next() % o.algs.size()];
  p.leak = next() % 100 < o.leak_share;
  // A fault in fault_share percent of the trials, the kinds equally likely.
  if (!o.faults.empty() && next() % 100 < o.fault_share) {
    p.fault = o.faults[next() % o.faults.size()];
  }
  p.cut_chunk = static_cast<uint32_t>(next());
  if (IsOrder(p.fault)) p.leak = true;
  return p;
}

int PipelineReport::ExitCode() const {
  if (!harness_errors.empty() || never_judged > 0) return 2;
  const bool leaked = leaks + torn_released > 0;
  return leaked == expect_leak ? 0 : 1;
}

std::string PipelineReplayCommand(const PipelineOptions& o, uint64_t trial) {
  std::string algs;
  for (const std::string& a : o.algs) algs += (algs.empty() ? "" : ",") + a;
  return "sigrace stress --egress-pipeline --gate-mode " +
         std::string(GateModeNameOf(o.gate_mode)) + " --gate-scanner " +
         crashdump::GateScannerName(o.scanner) + " --egress-faults " +
         EgressFaultList(o.faults) + " --alg " +
         (o.algs.size() == 2 ? std::string("both") : algs) + " --seed " +
         std::to_string(o.seed) + " --trial " + std::to_string(trial);
}

std::string PipelineText(const PipelineReport& r) {
  std::string s;
  char buf[512];
  std::snprintf(buf, sizeof buf,
                "egress pipeline: gate %s, scanner %s, faults %s, seed %llu\n",
                r.gate_mode.c_str(), r.scanner.c_str(), r.faults.c_str(),
                static_cast<unsigned long long>(r.seed));
  s += buf;
  std::snprintf(buf, sizeof buf,
                "trials %llu, dumps staged %llu, gate judgments %llu, "
                "released %llu, quarantined %llu, superseded %llu\n",
                static_cast<unsigned long long>(r.trials),
                static_cast<unsigned long long>(r.dumps_staged),
                static_cast<unsigned long long>(r.judgments),
                static_cast<unsigned long long>(r.released),
                static_cast<unsigned long long>(r.quarantined),
                static_cast<unsigned long long>(r.superseded));
  s += buf;
  s += "quarantined by reason:";
  if (r.quarantined_by_reason.empty()) s += " none";
  for (const auto& [k, v] : r.quarantined_by_reason) {
    s += " " + k + " " + std::to_string(v);
  }
  s += "\nfaults drawn:";
  for (const auto& [k, v] : r.faults_fired) {
    s += " " + k + " " + std::to_string(v);
  }
  std::snprintf(buf, sizeof buf,
                "\ngate restarts %llu; torn dumps staged %llu, quarantined "
                "%llu\n",
                static_cast<unsigned long long>(r.gate_restarts),
                static_cast<unsigned long long>(r.torn_staged),
                static_cast<unsigned long long>(r.torn_quarantined));
  s += buf;
  std::snprintf(buf, sizeof buf,
                "leaks in outbox: %llu (key material), %llu torn dump(s) "
                "released; never judged %llu; harness errors %zu\n",
                static_cast<unsigned long long>(r.leaks),
                static_cast<unsigned long long>(r.torn_released),
                static_cast<unsigned long long>(r.never_judged),
                r.harness_errors.size());
  s += buf;
  for (size_t i = 0; i < r.harness_errors.size() && i < 5; ++i) {
    s += "  harness error: " + r.harness_errors[i] + "\n";
  }
  if (!r.leak_list.empty()) {
    const EgressLeak& l = r.leak_list.front();
    std::snprintf(buf, sizeof buf,
                  "first released leak (%s): %s after %llu judgments, %.2f s\n",
                  l.key ? "key material" : "torn dump", l.plan.c_str(),
                  static_cast<unsigned long long>(l.dumps_before), l.elapsed_s);
    s += buf;
  }
  const int code = r.ExitCode();
  std::snprintf(buf, sizeof buf,
                "wall time %.1f s; verdict: %s (expected %s)\n", r.elapsed_s,
                code == 2                       ? "HARNESS ERROR"
                : r.leaks + r.torn_released > 0 ? "LEAK RELEASED"
                                                : "nothing leaking released",
                r.expect_leak ? "a leak" : "clean");
  s += buf;
  return s;
}

std::string PipelineJson(const PipelineReport& r) {
  nlohmann::json leaks = nlohmann::json::array();
  for (const EgressLeak& l : r.leak_list) {
    leaks.push_back({{"trial", l.trial},
                     {"plan", l.plan},
                     {"file", l.file},
                     {"key", l.key},
                     {"torn", l.torn},
                     {"fragments", l.fragments},
                     {"forms", l.forms},
                     {"elapsed_s", l.elapsed_s},
                     {"dumps_before", l.dumps_before},
                     {"replay", l.replay}});
  }
  nlohmann::json j = {{"egress_pipeline",
                       {{"gate_mode", r.gate_mode},
                        {"scanner", r.scanner},
                        {"faults", r.faults},
                        {"seed", r.seed},
                        {"trials", r.trials},
                        {"dumps_staged", r.dumps_staged},
                        {"judgments", r.judgments},
                        {"released", r.released},
                        {"quarantined", r.quarantined},
                        {"quarantined_by_reason", r.quarantined_by_reason},
                        {"superseded", r.superseded},
                        {"faults_drawn", r.faults_fired},
                        {"gate_restarts", r.gate_restarts},
                        {"torn_staged", r.torn_staged},
                        {"torn_quarantined", r.torn_quarantined},
                        {"leaks_in_outbox", r.leaks},
                        {"torn_released", r.torn_released},
                        {"never_judged", r.never_judged},
                        {"harness_errors", r.harness_errors},
                        {"leaks", leaks},
                        {"elapsed_s", r.elapsed_s},
                        {"expect", r.expect_leak ? "leak" : "clean"},
                        {"exit_code", r.ExitCode()}}}};
  return j.dump(2) + "\n";
}

StatusOr<PipelineReport> RunEgressPipeline(const PipelineOptions& options) {
  if (options.algs.empty()) return InvalidArgumentError("no algorithm");
  for (const std::string& a : options.algs) {
    if (a != "rs256" && a != "eddsa") {
      return InvalidArgumentError("unknown algorithm '" + a + "'");
    }
  }
  if (options.inflight == 0)
    return InvalidArgumentError("inflight must be > 0");
  Pipeline p(options);
  return p.Run();
}

}  // namespace sigrace::stress
