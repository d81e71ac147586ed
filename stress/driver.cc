#include "stress/driver.h"

#include <dirent.h>
#include <fcntl.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/sha.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "base/failpoint.h"
#include "base/files.h"
#include "base/mutex.h"
#include "base/process.h"
#include "crashdump/oracle/judgement.h"
#include "crashdump/oracle/key_forms.h"
#include "crashdump/oracle/scanner.h"
#include "stress/channel.h"
#include "stress/key_oracle.h"
#include "stress/progress.h"
#include "stress/worker.h"
#include "tsan/report_counter.h"

namespace sigrace::stress {
namespace {

using Clock = std::chrono::steady_clock;

// Bound on a worker's set-up (key generation, handler install).
constexpr int kHelloTimeoutMs = 60000;

// What the stop path (SIGINT, SIGTERM: base/process.h InstallStopHandler)
// must undo: the worker processes running and the driver's temporary
// directories (fatal mode's dump directory holds complete dumps, key
// material included when a race won).
class StopState {
 public:
  void AddWorker(pid_t pid) {
    MutexLock l(&mu_);
    workers_.insert(pid);
  }
  void RemoveWorker(pid_t pid) {
    MutexLock l(&mu_);
    workers_.erase(pid);
  }
  void AddDir(const std::string& dir) {
    MutexLock l(&mu_);
    dirs_.insert(dir);
  }
  void RemoveDir(const std::string& dir) {
    MutexLock l(&mu_);
    dirs_.erase(dir);
  }
  // On the stop thread: kill the workers (nothing more gets written),
  // then empty and remove the directories. Keeps the lock: the driver
  // adds nothing after this.
  void Stop() NO_THREAD_SAFETY_ANALYSIS {
    mu_.Lock();
    for (pid_t pid : workers_) kill(pid, SIGKILL);
    for (pid_t pid : workers_) AwaitEnd(pid, 5000);
    for (const std::string& d : dirs_) {
      if (DIR* dp = opendir(d.c_str())) {
        while (dirent* e = readdir(dp)) {
          const std::string n = e->d_name;
          if (n != "." && n != "..") unlinkat(dirfd(dp), n.c_str(), 0);
        }
        closedir(dp);
      }
      rmdir(d.c_str());
    }
  }

 private:
  Mutex mu_;
  std::set<pid_t> workers_ GUARDED_BY(mu_);
  std::set<std::string> dirs_ GUARDED_BY(mu_);
};

StopState& Stopping() {
  static StopState* s = [] {
    auto* st = new StopState();
    AddStopCleanup([st] { st->Stop(); });
    return st;
  }();
  return *s;
}

// A worker process and the driver's end of its control channel.
class WorkerProcess {
 public:
  static StatusOr<std::unique_ptr<WorkerProcess>> Spawn(
      const std::vector<std::string>& args);
  ~WorkerProcess() {
    if (pid_ > 0) Stopping().RemoveWorker(pid_);
    KillProcess(pid_);
  }
  Channel& channel() { return *channel_; }
  pid_t pid() const { return pid_; }
  // Waits for the worker to end, at most timeout_ms, then kills it.
  // Returns the wait status; `killed` says whether the bound was hit.
  int Wait(int timeout_ms, bool* killed) {
    const int st = WaitProcess(pid_, timeout_ms, killed);
    Stopping().RemoveWorker(pid_);
    pid_ = -1;
    return st;
  }

 private:
  pid_t pid_ = -1;
  std::unique_ptr<Channel> channel_;
};

StatusOr<std::unique_ptr<WorkerProcess>> WorkerProcess::Spawn(
    const std::vector<std::string>& args) {
  int driver_end, worker_end;
  SIGRACE_RETURN_IF_ERROR(MakeChannelPair(&driver_end, &worker_end));
  // Move the worker's end clear of fd 3 so that dup2 onto 3 always clears
  // close-on-exec.
  const int high = fcntl(worker_end, F_DUPFD_CLOEXEC, 10);
  close(worker_end);
  if (high < 0) {
    close(driver_end);
    return ErrnoError("fcntl F_DUPFD_CLOEXEC", errno);
  }
  StatusOr<pid_t> pid =
      SpawnProcess({.argv = args, .fds = {{high, kWorkerControlFd}}});
  close(high);
  if (!pid.ok()) {
    close(driver_end);
    return pid.status();
  }
  auto w = std::unique_ptr<WorkerProcess>(new WorkerProcess());
  w->pid_ = *pid;
  Stopping().AddWorker(*pid);
  w->channel_ = std::make_unique<Channel>(driver_end);
  return w;
}

// tsan/tsan.options: exitcode=66.
constexpr int kTsanExitCode = 66;

// The worker's freeze record of a live trial ("freeze": [{thread, op,
// instant}]); malformed entries are dropped (it is a hint, not a verdict).
std::vector<ThreadAt> FreezeRecord(const nlohmann::json& result) {
  std::vector<ThreadAt> out;
  const auto it = result.find("freeze");
  if (it == result.end() || !it->is_array()) return out;
  for (const nlohmann::json& e : *it) {
    if (!e.is_object() || !e.value("thread", nlohmann::json()).is_string() ||
        !e.value("op", nlohmann::json()).is_string() ||
        !e.value("instant", nlohmann::json()).is_number_unsigned()) {
      continue;
    }
    out.push_back({e["thread"].get<std::string>(), e["op"].get<std::string>(),
                   e["instant"].get<uint32_t>()});
  }
  return out;
}

// The keep step of a leaking dump: an error here loses the evidence (a
// harness error of the run, exit 2).
SIGRACE_FAILPOINT_DEFINE(kFpKeepDump, "stress.keep_dump");

// Copies all of `fd` to the file `out` (a PendingFile's fd). All-zero
// blocks become holes, as they were in the dump (a TSan process's dump is
// over a GB, nearly all holes).
Status CopyFd(int fd, int out, const std::string& what) {
  std::vector<char> buf(1 << 20);
  off_t off = 0;
  while (true) {
    const ssize_t n = pread(fd, buf.data(), buf.size(), off);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return ErrnoError("read dump", errno);
    if (n == 0) break;
    bool zero = true;
    for (ssize_t i = 0; i < n && zero; i += 8) {
      uint64_t w = 0;
      std::memcpy(&w, buf.data() + i,
                  static_cast<size_t>(std::min<ssize_t>(8, n - i)));
      zero = w == 0;
    }
    if (zero) {
      off += n;
      if (lseek(out, off, SEEK_SET) < 0 || ftruncate(out, off) != 0) {
        return ErrnoError("extend " + what, errno);
      }
      continue;
    }
    ssize_t done = 0;
    while (done < n) {
      const ssize_t w =
          write(out, buf.data() + done, static_cast<size_t>(n - done));
      if (w < 0 && errno == EINTR) continue;
      if (w < 0) return ErrnoError("write " + what, errno);
      done += w;
    }
    off += n;
  }
  return Status::Ok();
}

// Copies all of `fd` to `path` through a PendingFile (exclusive random
// temporary name, 0600, fsync) and publishes it without replacing
// anything at `path`.
Status CopyFdToFile(int fd, const std::string& path) {
  StatusOr<std::unique_ptr<PendingFile>> f = PendingFile::Create(path, 0600);
  if (!f.ok()) return f.status();
  SIGRACE_RETURN_IF_ERROR(CopyFd(fd, (*f)->fd(), (*f)->temp_path()));
  return (*f)->Commit(/*replace=*/false);
}

// Moves the fatal dump at `from` (the driver's private directory) to
// `to`, never over an existing file; copies across file systems.
Status MoveDump(const std::string& from, const std::string& to) {
  if (renameat2(AT_FDCWD, from.c_str(), AT_FDCWD, to.c_str(),
                RENAME_NOREPLACE) == 0) {
    return Status::Ok();
  }
  if (errno != EXDEV) return ErrnoError("rename to " + to, errno);
  StatusOr<int> in = OpenRegularFile(from);
  if (!in.ok()) return in.status();
  Status st = CopyFdToFile(*in, to);
  close(*in);
  if (st.ok()) unlink(from.c_str());
  return st;
}

// Size and SHA-256 (hex) of the file at `path`, as its sidecar states.
Status HashFile(const std::string& path, uint64_t* size, std::string* hex) {
  StatusOr<int> fd = OpenRegularFile(path);
  if (!fd.ok()) return fd.status();
  std::unique_ptr<EVP_MD_CTX, void (*)(EVP_MD_CTX*)> ctx(EVP_MD_CTX_new(),
                                                         EVP_MD_CTX_free);
  if (!ctx || EVP_DigestInit_ex(ctx.get(), EVP_sha256(), nullptr) != 1) {
    close(*fd);
    return InternalError("sha256: digest set-up failed");
  }
  std::vector<unsigned char> buf(1 << 20);
  uint64_t total = 0;
  while (true) {
    const ssize_t n = read(*fd, buf.data(), buf.size());
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      const int e = errno;
      close(*fd);
      return ErrnoError("read " + path, e);
    }
    if (n == 0) break;
    EVP_DigestUpdate(ctx.get(), buf.data(), static_cast<size_t>(n));
    total += static_cast<uint64_t>(n);
  }
  close(*fd);
  unsigned char md[SHA256_DIGEST_LENGTH];
  EVP_DigestFinal_ex(ctx.get(), md, nullptr);
  static constexpr char kHex[] = "0123456789abcdef";
  hex->clear();
  for (unsigned char c : md) {
    hex->push_back(kHex[c >> 4]);
    hex->push_back(kHex[c & 15]);
  }
  *size = total;
  return Status::Ok();
}

class Driver {
 public:
  Driver(const StressOptions& opts, const VariantEntry& variant,
         const std::string& command, DumpGate* gate)
      : opts_(opts), variant_(variant), gate_(gate) {
    report_.command = command;
    report_.run_id = NewRunId();
    report_.options = opts;
    report_.window = variant.window;
  }

  StatusOr<RunReport> Run();

 private:
  // `serial`: the first trial the worker serves (its key seed's input).
  std::vector<std::string> WorkerArgs(const std::string& dump_dir,
                                      uint64_t serial) const;
  // The oracle of a worker with this serial.
  std::unique_ptr<KeyOracle> NewOracle(uint64_t serial) const;
  // Reads messages up to 'H'; keys go to `oracle`.
  Status AwaitHello(WorkerProcess& w, KeyOracle& oracle);
  StatusOr<RunReport> RunLive();
  StatusOr<RunReport> RunFatal();
  // Scans the dump at `path` (a file, or /proc/self/fd/N of a memfd),
  // fills the verdict, keeps a leaking dump (copied from `fd`, or moved
  // from `path`), deletes a clean fatal dump.
  void Judge(KeyOracle& oracle, const std::string& path, int fd,
             TrialResult* r);
  // Stages the dump in `fd` with the gate, awaits its decision and judges
  // the trial on it: a released dump with the oracle in the outbox
  // (Judge), a quarantined one counted as held back.
  void JudgeThroughGate(KeyOracle& oracle, int fd, TrialResult* r);
  bool Done(uint64_t trial_index) const;
  void Record(TrialResult r);

  const StressOptions opts_;
  const VariantEntry variant_;
  DumpGate* const gate_;  // --through-gate, else null
  // The oracle and key count the gate process judges with: a new oracle
  // or a new key restarts it.
  const KeyOracle* gate_oracle_ = nullptr;
  size_t gate_keys_ = 0;
  PlanInputs inputs_;
  RunReport report_;
  Clock::time_point start_;
  uint32_t kept_ = 0;
  uint64_t run_ = 0;  // index of the trial being run (a replay's run)
  std::unique_ptr<Progress> progress_;
  // SIGRACE_STRESS_DEBUG=1: per-trial records (timings, sizes; never key
  // bytes) on stderr.
  const bool debug_ = getenv("SIGRACE_STRESS_DEBUG") != nullptr;
};

std::unique_ptr<KeyOracle> Driver::NewOracle(uint64_t serial) const {
  std::optional<uint64_t> key_seed;
  if (opts_.derive_keys) key_seed = WorkerKeySeed(opts_.seed, serial);
  return std::make_unique<KeyOracle>(opts_.min_fragment, key_seed);
}

std::vector<std::string> Driver::WorkerArgs(const std::string& dump_dir,
                                            uint64_t serial) const {
  std::vector<std::string> a = {
      opts_.worker_bin.empty() ? SelfExe() : opts_.worker_bin,
      "stress-child",
      "--variant",
      opts_.variant,
      "--alg",
      opts_.algs.size() == 1 ? opts_.algs[0] : "both",
      "--threads",
      std::to_string(opts_.threads),
      "--rotate-every",
      std::to_string(opts_.rotate_every_ms),
      "--injectors",
      InjectorListString(opts_.injectors),
      "--mode",
      ModeName(opts_.mode),
      "--seed",
      std::to_string(opts_.seed),
      "--max-delay-us",
      std::to_string(opts_.max_delay_us),
      "--trial-timeout-ms",
      std::to_string(opts_.trial_timeout_ms),
      "--key-wait-ms",
      std::to_string(opts_.key_wait_ms),
      "--worker-serial",
      std::to_string(serial)};
  if (!opts_.failpoint.empty()) {
    a.push_back("--failpoint");
    a.push_back(opts_.failpoint);
  }
  if (opts_.key_pool != 0) {
    a.push_back("--key-pool");
    a.push_back(std::to_string(opts_.key_pool));
  }
  if (!dump_dir.empty()) {
    a.push_back("--dump-dir");
    a.push_back(dump_dir);
  }
  if (!opts_.cover_check) a.push_back("--no-cover-check");
  return a;
}

Status Driver::AwaitHello(WorkerProcess& w, KeyOracle& oracle) {
  while (true) {
    StatusOr<Message> m = w.channel().Recv(kHelloTimeoutMs);
    if (!m.ok()) {
      return InternalError("worker set-up: " + m.status().message());
    }
    if (m->fd >= 0) close(m->fd);
    switch (m->type) {
      case 'K':
        SIGRACE_RETURN_IF_ERROR(oracle.AddKey(m->payload));
        break;
      case 'A':
        SIGRACE_RETURN_IF_ERROR(oracle.AddAnnouncement(m->payload));
        break;
      case 'H':
        return Status::Ok();
      case 'E':
        return InternalError(m->payload);
      default:
        return InternalError("unexpected message from worker");
    }
  }
}

bool Driver::Done(uint64_t index) const {
  if (index >= opts_.TrialCount()) return true;
  if (opts_.duration_s > 0 &&
      std::chrono::duration<double>(Clock::now() - start_).count() >=
          opts_.duration_s) {
    return true;
  }
  // A replay's runs all count: its result is how often the trial leaks.
  if (opts_.expect == Expect::kLeak && !opts_.keep_going && opts_.repeat == 1 &&
      report_.leaks > 0) {
    // Stop once every algorithm of the run has leaked.
    for (const std::string& alg : opts_.algs) {
      bool leaked = false;
      for (const CellStats& c : report_.cells) {
        if (c.alg == alg && c.leaks > 0) leaked = true;
      }
      if (!leaked) return false;
    }
    return true;
  }
  return false;
}

void Driver::Record(TrialResult r) {
  r.elapsed_s = std::chrono::duration<double>(Clock::now() - start_).count();
  if (!opts_.quiet && r.verdict == Verdict::kLeak) {
    std::string forms;
    for (const std::string& f : r.Forms())
      forms += (forms.empty() ? "" : ",") + f;
    if (progress_) progress_->Done();
    std::fprintf(stderr, "sigrace: LEAK %s: %llu fragment(s) [%s]%s%s\n",
                 r.plan.Describe().c_str(),
                 static_cast<unsigned long long>(r.findings_total),
                 forms.c_str(), r.dump_path.empty() ? "" : " dump ",
                 r.dump_path.c_str());
  } else if (!opts_.quiet && r.verdict == Verdict::kHarnessError &&
             report_.harness_errors < 5) {
    if (progress_) progress_->Done();
    std::fprintf(stderr, "sigrace: harness error: %s: %s\n",
                 r.plan.Describe().c_str(), r.message.c_str());
  }
  report_.Add(r);
  if (progress_) {
    progress_->Update(report_.trials, report_.dumps, report_.leaks,
                      report_.harness_errors);
  }
}

void Driver::Judge(KeyOracle& oracle, const std::string& path, int fd,
                   TrialResult* r) {
  // Keys announced and never handed over (a fault inside their keygen):
  // made here, before the index is built.
  const auto td = Clock::now();
  const size_t derived_before = oracle.derived();
  Status ds = oracle.DeriveMissing();
  r->derive_ms =
      std::chrono::duration<double, std::milli>(Clock::now() - td).count();
  r->keys_received = oracle.received();
  r->keys_derived = oracle.derived();
  r->keys_unknown = oracle.unknown();
  r->keys_derived_new = oracle.derived() - derived_before;
  r->keys_received_new = oracle.TakeNewReceived();
  if (!ds.ok()) {
    r->verdict = Verdict::kHarnessError;
    r->message = "oracle: deriving an announced key: " + ds.message();
    return;
  }
  const auto t0 = Clock::now();
  StatusOr<const crashdump::Scanner*> scanner = oracle.scanner();
  if (!scanner.ok()) {
    r->verdict = Verdict::kHarnessError;
    r->message = "oracle: " + scanner.status().message();
    return;
  }
  const auto t1 = Clock::now();
  StatusOr<crashdump::ScanReport> scan = (*scanner)->ScanFile(path);
  if (debug_) {
    std::fprintf(
        stderr,
        "{\"driver\":1,\"trial\":%llu,\"index_ms\":%.3f,"
        "\"scanfile_ms\":%.3f,\"search_ms\":%.3f,\"keys\":%zu,"
        "\"keys_received\":%zu,\"keys_derived\":%zu,\"derive_ms\":%.1f}\n",
        static_cast<unsigned long long>(r->plan.trial),
        std::chrono::duration<double, std::milli>(t1 - t0).count(),
        std::chrono::duration<double, std::milli>(Clock::now() - t1).count(),
        scan.ok() ? scan->seconds * 1e3 : 0.0, oracle.size(), oracle.received(),
        oracle.derived(), r->derive_ms);
  }
  if (!scan.ok()) {
    // A torn or unsealed dump is never scanned as clean.
    r->verdict = Verdict::kHarnessError;
    r->message = "scan: " + scan.status().message();
    return;
  }
  r->dump_size = scan->file_size;
  r->dump_searched = scan->bytes_searched;
  r->redactions_verified = scan->redactions_verified;
  r->redacted_bytes_verified = scan->redacted_bytes_verified;
  r->redactions_not_applied = scan->redactions_not_applied;
  for (const crashdump::Finding& f : scan->findings) {
    if (!crashdump::IsLeak(f.kind)) continue;  // a record excuses nothing
    ++r->findings_total;
    if (r->findings.size() >= 64) continue;
    LeakFinding lf;
    lf.file_offset = f.file_offset;
    if (f.has_address) lf.vaddr = f.address;
    lf.region = f.region.empty() ? "(raw)" : f.region;
    if (f.tid != 0 && lf.region.find("tid") == std::string::npos) {
      lf.region += " tid " + std::to_string(f.tid);
    }
    lf.form = f.form;
    lf.form_offset = f.form_offset;
    lf.length = f.length;
    if (f.key_index < (*scanner)->keys().size()) {
      lf.key = (*scanner)->keys()[f.key_index].key_id();
      lf.key_derived = oracle.IsDerived(lf.key);
    }
    lf.kind = crashdump::FindingKindName(f.kind);
    r->findings.push_back(lf);
  }
  // The verdict `sigrace scan` and the gate give (oracle/judgement.h); a
  // record not applied without a fragment has no trustworthy verdict.
  const crashdump::Judgement j = crashdump::JudgeReport(*scan);
  r->verdict = j.verdict == crashdump::DumpVerdict::kLeak ? Verdict::kLeak
               : j.clean()                                ? Verdict::kClean
                           : Verdict::kHarnessError;
  if (r->verdict == Verdict::kHarnessError) r->message = "oracle: " + j.reason;
  if (r->verdict != Verdict::kLeak) return;
  r->run_id = report_.run_id;
  // The run id in the name: two runs sharing --out and seed never write
  // each other's evidence.
  const std::string base =
      opts_.out_dir + "/" + opts_.variant + "-" + r->plan.alg + "-" +
      ModeName(opts_.mode) + "-seed" + std::to_string(r->plan.seed) + "-trial" +
      std::to_string(r->plan.trial) +
      (opts_.repeat > 1 ? "-run" + std::to_string(run_) : std::string()) + "-" +
      report_.run_id + ".core";
  // --max-kept: past it a dump is not kept, by request (its sidecar still
  // is, with "dump": "").
  const bool keep = kept_ < opts_.max_kept;
  Status st = PrepareOutputDir(opts_.out_dir);
  if (keep) {
    if (st.ok() && SIGRACE_FAILPOINT(kFpKeepDump)) {
      st = InternalError("failpoint stress.keep_dump");
    }
    if (st.ok()) st = fd >= 0 ? CopyFdToFile(fd, base) : MoveDump(path, base);
    uint64_t size = 0;
    std::string sha256;
    if (st.ok()) st = HashFile(base, &size, &sha256);
    if (st.ok() && size != r->dump_size) {
      st = DataLossError("kept dump " + base + " has " + std::to_string(size) +
                         " bytes, the scanned one " +
                         std::to_string(r->dump_size));
    }
    if (st.ok()) {
      r->dump_path = base;
      r->dump_sha256 = sha256;
      ++kept_;
    } else {
      // The leak stands; its evidence is lost: a harness error of the run.
      r->keep_error = st.message();
      std::fprintf(stderr, "sigrace: keeping leaking dump: %s\n",
                   st.message().c_str());
    }
  }
  // The sidecar describes the file beside it (name, size, SHA-256, run
  // id), or says that no dump was kept.
  Status ss = WriteFileAtomic(
      base + ".json", SidecarJson(*r, opts_, variant_.window).dump(2) + "\n",
      0600, /*replace=*/false);
  if (ss.ok()) {
    r->sidecar_path = base + ".json";
  } else {
    if (keep && r->keep_error.empty()) r->keep_error = ss.message();
    std::fprintf(stderr, "sigrace: writing the leak's sidecar: %s\n",
                 ss.message().c_str());
  }
}

void Driver::JudgeThroughGate(KeyOracle& oracle, int fd, TrialResult* r) {
  auto error = [r](const std::string& m) {
    r->verdict = Verdict::kHarnessError;
    r->message = "gate: " + m;
  };
  const size_t derived_before = oracle.derived();
  Status st = oracle.DeriveMissing();
  if (!st.ok()) return error("deriving an announced key: " + st.message());
  StatusOr<const crashdump::Scanner*> scanner = oracle.scanner();
  if (!scanner.ok()) return error(scanner.status().message());
  if (gate_oracle_ != &oracle || gate_keys_ != oracle.size()) {
    // The gate process holds the keys known now (it is forked with them).
    st = gate_->Start(*scanner);
    if (!st.ok()) return error(st.message());
    gate_oracle_ = &oracle;
    gate_keys_ = oracle.size();
  }
  StatusOr<int> out = gate_->Stage(r->plan.trial, r->plan.alg);
  if (!out.ok()) return error(out.status().message());
  st = CopyFd(fd, *out, "staged dump");
  if (close(*out) != 0 && st.ok()) st = ErrnoError("close staged dump", errno);
  if (!st.ok()) return error(st.message());
  StatusOr<GateOutcome> o = gate_->Await(r->plan.trial);
  if (!o.ok()) return error(o.status().message());
  if (o->released) {
    r->gate_outcome = "released";
    if (o->path.empty()) return error("released dump not in the outbox");
    // The oracle on the bytes that left, never the gate's word.
    Judge(oracle, o->path, -1, r);
    unlink(o->path.c_str());  // a leak's dump was moved to --out by Judge
    return;
  }
  r->gate_outcome = "quarantined";
  r->gate_reason = o->reason;
  r->keys_received = oracle.received();
  r->keys_derived = oracle.derived();
  r->keys_unknown = oracle.unknown();
  r->keys_received_new = oracle.TakeNewReceived();
  r->keys_derived_new = oracle.derived() - derived_before;
  if (!o->path.empty()) {
    // Held back: a key in it was stopped, not leaked.
    StatusOr<crashdump::ScanReport> scan = (*scanner)->ScanFile(o->path);
    if (scan.ok()) {
      r->dump_size = scan->file_size;
      r->dump_searched = scan->bytes_searched;
      for (const crashdump::Finding& f : scan->findings) {
        if (crashdump::IsLeak(f.kind)) r->gate_stopped = true;
      }
    } else if (o->reason == "key-found") {
      r->gate_stopped = true;
    }
    unlink(o->path.c_str());  // its reason file stays
  }
  r->verdict = Verdict::kClean;
}

// A cover-check violation the worker reported with this trial (stress/
// cover_watch.h) fails it as a leak: the window opened, whether or not
// the fault landed in it. The finding names the check and the cover's
// label, never bytes.
void JudgeCoverReport(const nlohmann::json& cover, TrialResult* r) {
  if (!cover.is_object() || cover.value("count", uint64_t{0}) == 0) return;
  const nlohmann::json first = cover.value("first", nlohmann::json::object());
  LeakFinding lf;
  lf.vaddr = first.value("addr", uint64_t{0});
  lf.region = "cover " + first.value("label", std::string("?")) + " (" +
              first.value("reason", std::string("?")) + ")";
  lf.form = "cover-check:" + first.value("check", std::string("?"));
  lf.kind = "cover-check";
  lf.form_offset = first.value("offset", uint64_t{0});
  lf.length = first.value("len", uint64_t{0});
  r->findings.insert(r->findings.begin(), lf);
  r->findings_total += cover.value("count", uint64_t{0});
  if (r->verdict != Verdict::kHarnessError) r->verdict = Verdict::kLeak;
}

// Folds a finished worker's TSan counts (its last result) into the report.
void FoldWorkerTsan(const nlohmann::json& t, RunReport* report) {
  if (!t.is_object()) return;
  report->tsan.enabled = t.value("enabled", false);
  report->tsan.total += t.value("total", uint64_t{0});
  if (t.contains("by_type")) {
    for (auto& [k, v] : t["by_type"].items()) {
      report->tsan.by_type[k] += v.get<uint64_t>();
    }
  }
}

StatusOr<RunReport> Driver::RunLive() {
  std::unique_ptr<WorkerProcess> worker;
  std::unique_ptr<KeyOracle> oracle;
  nlohmann::json worker_tsan;
  double start_ms = 0;  // how long the last worker took to start
  // What the last new key cost the worker to hand over (it unwraps every
  // key it holds again; see Worker::SendNewKeys).
  double handover_ms = 0;
  // `serial`: the first trial the new worker serves.
  auto start_worker = [&](uint64_t serial) -> Status {
    const auto t0 = Clock::now();
    StatusOr<std::unique_ptr<WorkerProcess>> w =
        WorkerProcess::Spawn(WorkerArgs("", serial));
    if (!w.ok()) return w.status();
    worker = std::move(*w);
    oracle = NewOracle(serial);
    gate_oracle_ = nullptr;  // the gate judges with the new worker's keys
    worker_tsan = nlohmann::json();
    handover_ms = 0;
    Status st = AwaitHello(*worker, *oracle);
    start_ms =
        std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
    return st;
  };
  // Asks the worker to quit and checks that it did; a worker that does not
  // exit cleanly is a harness error of the run.
  auto finish_worker = [&](uint64_t next_trial) {
    (void)worker->channel().Send('Q', "");
    bool killed = false;
    const int ws = worker->Wait(20000, &killed);
    const uint64_t tsan_reports =
        worker_tsan.is_object() ? worker_tsan.value("total", uint64_t{0}) : 0;
    FoldWorkerTsan(worker_tsan, &report_);
    worker_tsan = nlohmann::json();
    // A TSan worker that reported anything exits with TSan's exitcode (66,
    // tsan/tsan.options): those reports are counted above and judged with
    // the run, so that exit is not a harness error.
    const bool tsan_exit = !killed && WIFEXITED(ws) &&
                           WEXITSTATUS(ws) == kTsanExitCode && tsan_reports > 0;
    if (!tsan_exit && (killed || !WIFEXITED(ws) || WEXITSTATUS(ws) != 0)) {
      TrialResult r;
      r.plan = PlanTrial(inputs_, next_trial);
      r.verdict = Verdict::kHarnessError;
      r.message = "worker did not exit cleanly: " +
                  (killed ? std::string("hung, killed") : WaitStatusText(ws));
      report_.harness_errors++;
      report_.error_list.push_back(r);
    }
  };
  SIGRACE_RETURN_IF_ERROR(start_worker(opts_.FirstTrial()));
  start_ = Clock::now();
  uint64_t index = 0;
  uint32_t restarts = 0;
  for (; !Done(index); ++index) {
    const uint64_t trial = opts_.TrialAt(index);
    run_ = index;
    TrialResult r;
    r.plan = PlanTrial(inputs_, trial);
    if (!opts_.pin_thread.empty()) {
      PinPlan(opts_.pin_thread, opts_.pin_instant, &r.plan);
    }
    const auto t0 = Clock::now();
    const size_t keys_before = oracle->size();
    Status st = worker->channel().Send('T', PlanToJson(r.plan));
    bool lost = !st.ok();
    while (!lost) {
      StatusOr<Message> m = worker->channel().Recv(
          static_cast<int>(opts_.trial_timeout_ms) + 30000);
      if (!m.ok()) {
        r.message = "worker: " + m.status().message();
        lost = true;
        break;
      }
      if (m->type == 'K' || m->type == 'A') {
        Status ks = m->type == 'K' ? oracle->AddKey(m->payload)
                                   : oracle->AddAnnouncement(m->payload);
        if (!ks.ok()) {
          r.message = "oracle: " + ks.message();
          lost = true;
          break;
        }
        continue;
      }
      if (m->type == 'E') {
        r.message = "worker: " + m->payload;
        lost = true;
        break;
      }
      if (m->type != 'R') {
        r.message = "unexpected message from worker";
        lost = true;
        break;
      }
      const nlohmann::json j =
          nlohmann::json::parse(m->payload, nullptr, false);
      // SIGRACE_STRESS_DEBUG=1: each trial's result record (no key bytes:
      // timings, dump size, threads) on stderr.
      if (debug_) {
        std::fprintf(stderr, "%s\n", m->payload.c_str());
      }
      if (!j.is_object()) {
        r.message = "malformed result from worker";
      } else if (j.value("plan", "") != r.plan.Describe()) {
        r.message =
            "worker planned a different trial (" + j.value("plan", "") + ")";
      } else if (!j.value("error", "").empty()) {
        r.message = j.value("error", "");
      } else if (m->fd < 0) {
        r.message = "dump arrived without its memfd";
      } else {
        r.freeze = FreezeRecord(j);
        if (gate_ != nullptr) {
          JudgeThroughGate(*oracle, m->fd, &r);
        } else {
          Judge(*oracle, "/proc/self/fd/" + std::to_string(m->fd), m->fd, &r);
        }
      }
      if (j.is_object())
        JudgeCoverReport(j.value("cover", nlohmann::json()), &r);
      if (j.is_object() && j.contains("tsan")) worker_tsan = j["tsan"];
      if (j.is_object() && keys_before != oracle->size()) {
        handover_ms = j.value("keys_ms", 0.0);
      }
      if (m->fd >= 0) close(m->fd);
      break;
    }
    if (!r.message.empty()) r.verdict = Verdict::kHarnessError;
    r.trial_ms =
        std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
    if (debug_) {
      std::fprintf(stderr, "{\"driver\":2,\"trial\":%llu,\"trial_ms\":%.3f}\n",
                   static_cast<unsigned long long>(trial), r.trial_ms);
    }
    if (lost) {
      // The worker is gone or out of step: say how it ended, start a new
      // one for the next trial (a bounded number of times).
      bool killed = false;
      const int ws = worker->Wait(2000, &killed);
      FoldWorkerTsan(worker_tsan, &report_);
      r.message += " (worker " +
                   std::string(killed ? "hung, killed" : WaitStatusText(ws)) +
                   ")";
      Record(r);
      if (++restarts > 3) {
        return InternalError("worker lost " + std::to_string(restarts) +
                             " times; last: " + r.message);
      }
      SIGRACE_RETURN_IF_ERROR(start_worker(trial + 1));
      continue;
    }
    Record(r);
    // Every key a worker ever held stays in its oracle (a retired key's
    // residue may sit in any later dump of that process), so each new key
    // costs work over all of them: the worker unwraps every key again to
    // hand the new one over, and the driver rebuilds the index. Once that
    // costs more than starting a fresh worker (a new exec: nothing of the
    // old keys is in its memory, so its oracle starts from its own keys),
    // start over.
    if (oracle->last_build_ms() + handover_ms > start_ms && !Done(index + 1)) {
      if (debug_) {
        std::fprintf(stderr,
                     "{\"driver\":3,\"recycle_after\":%llu,\"keys\":%zu,"
                     "\"index_ms\":%.1f,\"handover_ms\":%.1f,"
                     "\"start_ms\":%.1f}\n",
                     static_cast<unsigned long long>(trial), oracle->size(),
                     oracle->last_build_ms(), handover_ms, start_ms);
      }
      finish_worker(trial + 1);
      ++report_.worker_restarts;
      SIGRACE_RETURN_IF_ERROR(start_worker(trial + 1));
    }
  }
  finish_worker(opts_.TrialAt(index));
  return report_;
}

StatusOr<RunReport> Driver::RunFatal() {
  const char* tmp = getenv("TMPDIR");
  std::string templ =
      std::string(tmp && *tmp ? tmp : "/tmp") + "/sigrace-fatal-XXXXXX";
  if (mkdtemp(templ.data()) == nullptr) {
    return ErrnoError("mkdtemp " + templ, errno);
  }
  const std::string dir = templ;
  // SIGINT or SIGTERM empties and removes it (its dumps are complete).
  Stopping().AddDir(dir);
  struct DirGone {
    const std::string& dir;
    ~DirGone() {
      rmdir(dir.c_str());
      Stopping().RemoveDir(dir);
    }
  } dir_gone{dir};
  start_ = Clock::now();
  uint64_t index = 0;
  for (; !Done(index); ++index) {
    const uint64_t trial = opts_.TrialAt(index);
    run_ = index;
    TrialResult r;
    r.plan = PlanTrial(inputs_, trial);
    if (!opts_.pin_thread.empty()) {
      PinPlan(opts_.pin_thread, opts_.pin_instant, &r.plan);
    }
    const auto t0 = Clock::now();
    std::unique_ptr<KeyOracle> owned_oracle = NewOracle(trial);
    KeyOracle& oracle = *owned_oracle;
    StatusOr<std::unique_ptr<WorkerProcess>> w =
        WorkerProcess::Spawn(WorkerArgs(dir, trial));
    if (!w.ok()) return w.status();
    WorkerProcess& worker = **w;
    Status st = AwaitHello(worker, oracle);
    if (st.ok()) {
      st = worker.channel().Send('T', PlanToJson(r.plan));
    }
    std::string worker_error;
    // Keys keep coming (rotation) until the worker dies: EOF ends the
    // trial.
    while (st.ok()) {
      StatusOr<Message> m = worker.channel().Recv(
          static_cast<int>(opts_.trial_timeout_ms) + 10000);
      if (!m.ok()) {
        if (m.status().code() != StatusCode::kNotFound) st = m.status();
        break;
      }
      if (m->fd >= 0) close(m->fd);
      if (m->type == 'K') {
        st = oracle.AddKey(m->payload);
      } else if (m->type == 'A') {
        st = oracle.AddAnnouncement(m->payload);
      } else if (m->type == 'E') {
        worker_error = m->payload;
      }
    }
    bool killed = false;
    const int ws = worker.Wait(5000, &killed);
    const std::string prefix = "sigrace-" + std::to_string(worker.pid()) + "-";
    std::vector<std::string> dumps, partial;
    if (DIR* d = opendir(dir.c_str())) {
      while (dirent* e = readdir(d)) {
        const std::string n = e->d_name;
        if (n == "." || n == "..") continue;
        (n.size() > 5 && n.compare(n.size() - 5, 5, ".core") == 0 ? dumps
                                                                  : partial)
            .push_back(dir + "/" + n);
      }
      closedir(d);
    }
    if (!st.ok()) {
      r.message = st.message();
    } else if (!worker_error.empty()) {
      r.message = "worker: " + worker_error;
    } else if (killed) {
      r.message = "worker did not die within the bound (killed)";
    } else if (!WIFSIGNALED(ws) || WTERMSIG(ws) != SIGSEGV) {
      r.message =
          "worker " + WaitStatusText(ws) + ", expected death by " + "SIGSEGV";
    } else if (!partial.empty()) {
      r.message = "unsealed dump left behind (" +
                  partial[0].substr(dir.size() + 1) + ")";
    } else if (dumps.size() != 1) {
      r.message =
          "expected exactly one dump, found " + std::to_string(dumps.size());
    } else if (gate_ != nullptr) {
      StatusOr<int> in = OpenRegularFile(dumps[0]);
      if (in.ok()) {
        JudgeThroughGate(oracle, *in, &r);
        close(*in);
      } else {
        r.message = "gate: " + in.status().message();
      }
      gate_oracle_ = nullptr;  // this trial's oracle is gone after it
    } else {
      Judge(oracle, dumps[0], -1, &r);
    }
    if (!r.message.empty()) r.verdict = Verdict::kHarnessError;
    for (const std::string& p : dumps) unlink(p.c_str());
    for (const std::string& p : partial) unlink(p.c_str());
    r.trial_ms =
        std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
    Record(r);
  }
  return report_;
}

StatusOr<RunReport> Driver::Run() {
  StatusOr<PlanInputs> in = MakePlanInputs(opts_, variant_, /*probe=*/true);
  if (!in.ok()) return in.status();
  inputs_ = *in;
  // The probe above cleared every failpoint of this process; the driver's
  // own (stress.*) from SIGRACE_FAILPOINTS are armed again. The signer's
  // stay with the workers.
  if (const char* env = getenv("SIGRACE_FAILPOINTS")) {
    std::string mine;
    const std::string all = env;
    size_t at = 0;
    while (at <= all.size()) {
      const size_t end = std::min(all.find(';', at), all.size());
      const std::string spec = all.substr(at, end - at);
      if (spec.rfind("stress.", 0) == 0)
        mine += (mine.empty() ? "" : ";") + spec;
      at = end + 1;
    }
    if (!mine.empty()) SIGRACE_RETURN_IF_ERROR(failpoint::Configure(mine));
  }
  progress_ =
      std::make_unique<Progress>(opts_.progress && !opts_.quiet,
                                 opts_.variant + " " + ModeName(opts_.mode),
                                 opts_.TrialCount(), opts_.duration_s);
  StatusOr<RunReport> r = opts_.mode == Mode::kLive ? RunLive() : RunFatal();
  progress_->Done();
  if (!r.ok()) return r;
  if (opts_.explore == Explore::kSystematic) {
    report_.census = inputs_.census;
    for (const OpInstants& c : inputs_.census) report_.instants_seen += c.seen;
    report_.instants_visited =
        std::min<uint64_t>(report_.trials, SystematicTotal(inputs_));
  }
  report_.elapsed_s =
      std::chrono::duration<double>(Clock::now() - start_).count();
  report_.through_gate = gate_ != nullptr;
  // The driver's own TSan reports count too (a TSan build of the driver).
  if (tsan::Enabled()) {
    const tsan::Counts c = tsan::Snapshot();
    report_.tsan.enabled = true;
    report_.tsan.total += c.total;
    for (int i = 0; i < tsan::kNumReportTypes; ++i) {
      if (c.by_type[i] > 0) {
        report_.tsan
            .by_type[tsan::ReportTypeName(static_cast<tsan::ReportType>(i))] +=
            c.by_type[i];
      }
    }
  }
  report_.Finish();
  return report_;
}

}  // namespace

StatusOr<RunReport> RunStress(const StressOptions& opts,
                              const VariantEntry& variant,
                              const std::string& command, DumpGate* gate) {
  InstallStopHandler();
  Stopping();
  Driver d(opts, variant, command, gate);
  return d.Run();
}

}  // namespace sigrace::stress
