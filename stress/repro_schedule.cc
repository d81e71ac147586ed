#include "stress/repro_schedule.h"

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <set>
#include <thread>

#include "base/files.h"
#include "base/mutex.h"
#include "base/process.h"

namespace sigrace::stress {
namespace {

using Clock = std::chrono::steady_clock;

// coreutils' nice: a niced row's worker processes inherit the niceness.
constexpr char kNiceBinary[] = "/usr/bin/nice";

std::string JoinArgs(const std::vector<std::string>& argv) {
  std::string s;
  for (const std::string& a : argv) {
    if (!s.empty()) s += ' ';
    s += a;
  }
  return s;
}

// The jobs running, for the stop path (SIGINT, SIGTERM): each gets
// SIGTERM, cleans up its own temporary files and workers, and ends; one
// that does not within the bound is killed.
constexpr int kStopGraceMs = 20000;

class RunningJobs {
 public:
  RunningJobs() {
    AddStopCleanup([this] { Stop(); });
  }
  void Add(pid_t pid) {
    MutexLock l(&mu_);
    pids_.insert(pid);
  }
  void Remove(pid_t pid) {
    MutexLock l(&mu_);
    pids_.erase(pid);
  }
  // Keeps the lock: nothing is started after this.
  void Stop() NO_THREAD_SAFETY_ANALYSIS {
    mu_.Lock();
    for (pid_t pid : pids_) kill(pid, SIGTERM);
    for (pid_t pid : pids_) {
      if (!AwaitEnd(pid, kStopGraceMs)) {
        kill(pid, SIGKILL);
        AwaitEnd(pid, 5000);
      }
    }
  }

 private:
  Mutex mu_;
  std::set<pid_t> pids_ GUARDED_BY(mu_);
};

RunningJobs& Jobs() {
  static RunningJobs* j = new RunningJobs();
  return *j;
}

struct Running {
  pid_t pid = -1;
  Clock::time_point started;
  Clock::time_point hard_deadline;
};

class Scheduler {
 public:
  Scheduler(const ReproPlan& plan, const ScheduleOptions& o,
            const JobDone& on_done)
      : plan_(plan),
        o_(o),
        on_done_(on_done),
        outcomes_(plan.jobs.size()),
        running_(plan.jobs.size()) {}

  std::vector<JobOutcome> Run(double* elapsed_s);

 private:
  // fixed's live rows and the niced background rows (fixed under TSan)
  // run from the start beside o_.jobs other rows.
  bool Unbounded(size_t i) const {
    return plan_.jobs[i].kind == JobKind::kFixedLive || plan_.jobs[i].nice > 0;
  }
  void StartReady();
  void Start(size_t i);
  void Finish(size_t i, int wait_status);
  void KillOverdue();

  const ReproPlan& plan_;
  const ScheduleOptions& o_;
  const JobDone& on_done_;
  std::vector<JobOutcome> outcomes_;
  std::vector<Running> running_;
  Clock::time_point deadline_;
  size_t next_ = 0;     // into plan_.order
  size_t bounded_ = 0;  // running jobs that count against o_.jobs
  size_t finished_ = 0;
};

void Scheduler::StartReady() {
  while (next_ < plan_.order.size() &&
         (Unbounded(plan_.order[next_]) || bounded_ < o_.jobs)) {
    Start(plan_.order[next_++]);
  }
}

void Scheduler::Start(size_t i) {
  const JobSpec& j = plan_.jobs[i];
  JobOutcome& out = outcomes_[i];
  const double left =
      std::chrono::duration<double>(deadline_ - Clock::now()).count();
  const double cap = JobCap(j, left, o_.margin_s);
  std::vector<std::string> argv;
  if (j.nice > 0) argv = {kNiceBinary, "-n", std::to_string(j.nice)};
  argv.push_back(j.binary);
  argv.push_back("stress");
  argv.insert(argv.end(), j.args.begin(), j.args.end());
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%.0f", cap);
  argv.push_back("--duration-s");
  argv.push_back(buf);
  out.command = JoinArgs(argv);
  // The report and log paths are in this run's own directory: nothing
  // there predates the job (the log is created exclusively).
  StatusOr<pid_t> pid = SpawnProcess({.argv = argv, .output_path = j.log_path});
  if (!pid.ok()) {
    out.spawn_error = pid.status().message();
    out.exit_code = 2;
    ++finished_;
    on_done_(i, finished_, out);
    return;
  }
  out.started = true;
  Jobs().Add(*pid);
  Running& r = running_[i];
  r.pid = *pid;
  r.started = Clock::now();
  r.hard_deadline = r.started + std::chrono::milliseconds(static_cast<int64_t>(
                                    (cap + o_.grace_s) * 1000));
  if (!Unbounded(i)) ++bounded_;
}

void Scheduler::Finish(size_t i, int wait_status) {
  const JobSpec& j = plan_.jobs[i];
  JobOutcome& out = outcomes_[i];
  Running& r = running_[i];
  out.seconds = std::chrono::duration<double>(Clock::now() - r.started).count();
  out.exit_code = ExitCodeOf(wait_status);
  Jobs().Remove(r.pid);
  r.pid = -1;
  StatusOr<std::string> text = ReadFile(j.report_path);
  if (text.ok()) out.report = nlohmann::json::parse(*text, nullptr, false);
  out.log_tail = LastLines(j.log_path, 2);
  if (!Unbounded(i)) --bounded_;
  ++finished_;
  on_done_(i, finished_, out);
}

void Scheduler::KillOverdue() {
  const auto now = Clock::now();
  for (size_t i = 0; i < running_.size(); ++i) {
    if (running_[i].pid > 0 && !outcomes_[i].killed &&
        now > running_[i].hard_deadline) {
      // Reaped by the wait loop, which then records the signal.
      kill(running_[i].pid, SIGKILL);
      outcomes_[i].killed = true;
    }
  }
}

std::vector<JobOutcome> Scheduler::Run(double* elapsed_s) {
  const auto start = Clock::now();
  deadline_ = start + std::chrono::milliseconds(
                          static_cast<int64_t>(o_.budget_s * 1000));
  while (finished_ < plan_.jobs.size()) {
    StartReady();
    if (finished_ == plan_.jobs.size()) break;
    int status = 0;
    const pid_t pid = waitpid(-1, &status, WNOHANG);
    if (pid < 0 && errno == EINTR) continue;
    if (pid < 0) break;  // no child left to wait for
    if (pid == 0) {
      KillOverdue();
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
      continue;
    }
    for (size_t i = 0; i < running_.size(); ++i) {
      if (running_[i].pid == pid) Finish(i, status);
    }
  }
  *elapsed_s = std::chrono::duration<double>(Clock::now() - start).count();
  return std::move(outcomes_);
}

}  // namespace

double JobCap(const JobSpec& job, double left_s, double margin_s) {
  // A rest-of-budget job runs until the end of the budget, less the
  // margin; it stops earlier once it reaches its trial count.
  const double cap = job.cap_is_rest ? left_s - margin_s
                                     : std::min(job.cap_s, left_s - margin_s);
  return std::max(cap, 5.0);
}

std::vector<JobOutcome> RunJobs(const ReproPlan& plan,
                                const ScheduleOptions& options,
                                const JobDone& on_done, double* elapsed_s) {
  return Scheduler(plan, options, on_done).Run(elapsed_s);
}

}  // namespace sigrace::stress
