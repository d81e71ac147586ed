#include "base/failpoint.h"

#include <sched.h>
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <charconv>
#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <cstring>
#include <map>
#include <thread>

#include "base/mutex.h"

namespace sigrace::failpoint {
namespace {

enum class Kind {
  kOff,
  kError,
  kYield,
  kAbort,
  kPause,
  kRaise,
  kSleep,
  kCallback
};

struct Config {
  Kind kind = Kind::kOff;
  int signal = 0;
  int sleep_ms = 0;
  uint64_t hit = 1;    // first eligible evaluation that fires (1-based)
  uint64_t count = 0;  // max fires; 0 = unlimited
  int prob = 100;      // percent
  std::string thread;  // empty = any thread
};

struct State {
  Config config;
  uint64_t hits = 0;
  uint64_t fired = 0;
  uint64_t rng = 0;
  int paused = 0;
  uint64_t resume_gen = 0;
  std::function<void()> callback;
};

// All failpoint state lives behind one mutex: configuration is rare, and
// the hot path only reaches it when a failpoint is armed.
struct Table {
  Mutex mu;
  std::condition_variable_any cv;
  std::vector<Site*> sites GUARDED_BY(mu);
  std::vector<State> states GUARDED_BY(mu);
  uint64_t seed GUARDED_BY(mu) = 0x5eed;
};

Table& GetTable() {
  static Table* t = new Table;  // never destroyed: sites outlive main
  return *t;
}

thread_local std::string t_thread_name;

uint64_t SplitMix(uint64_t& x) {
  uint64_t z = (x += 0x9e3779b97f4a7c15ULL);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

uint64_t NameHash(const char* s) {
  uint64_t h = 0xcbf29ce484222325ULL;
  for (; *s; ++s) h = (h ^ static_cast<unsigned char>(*s)) * 0x100000001b3ULL;
  return h;
}

std::string_view Trim(std::string_view s) {
  while (!s.empty() &&
         (s.front() == ' ' || s.front() == '\t' || s.front() == '\n')) {
    s.remove_prefix(1);
  }
  while (!s.empty() &&
         (s.back() == ' ' || s.back() == '\t' || s.back() == '\n')) {
    s.remove_suffix(1);
  }
  return s;
}

bool ParseUint(std::string_view s, uint64_t* out) {
  if (s.empty()) return false;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), *out);
  return ec == std::errc() && p == s.data() + s.size();
}

struct SignalName {
  const char* name;
  int number;
};
constexpr SignalName kSignals[] = {
    {"SIGSEGV", SIGSEGV},
    {"SIGBUS", SIGBUS},
    {"SIGILL", SIGILL},
    {"SIGFPE", SIGFPE},
    {"SIGABRT", SIGABRT},
    {"SIGTRAP", SIGTRAP},
    {"SIGSYS", SIGSYS},
    {"SIGUSR1", SIGUSR1},
    {"SIGUSR2", SIGUSR2},
    {"SIGTERM", SIGTERM},
    {"SIGKILL", SIGKILL},
    // Stops the process where it stands, for a test to inspect or change
    // what it holds (tools/cli_test.cc).
    {"SIGSTOP", SIGSTOP},
};

bool ParseSignal(std::string_view s, int* out) {
  uint64_t n = 0;
  if (ParseUint(s, &n)) {
    if (n == 0 || n > 64) return false;
    *out = static_cast<int>(n);
    return true;
  }
  for (const SignalName& sig : kSignals) {
    if (s == sig.name || s == sig.name + 3) {
      *out = sig.number;
      return true;
    }
  }
  return false;
}

Status SpecError(std::string_view spec, std::string_view why) {
  return InvalidArgumentError("failpoint spec '" + std::string(spec) +
                              "': " + std::string(why));
}

Status ParseAction(std::string_view spec, std::string_view a, Config* c) {
  auto arg = [&](std::string_view prefix, std::string_view* out) {
    if (a.size() < prefix.size() + 2 || a.substr(0, prefix.size()) != prefix ||
        a[prefix.size()] != '(' || a.back() != ')') {
      return false;
    }
    *out = a.substr(prefix.size() + 1, a.size() - prefix.size() - 2);
    return true;
  };
  std::string_view inner;
  if (a == "off") {
    c->kind = Kind::kOff;
  } else if (a == "error" || a == "return") {
    c->kind = Kind::kError;
  } else if (a == "yield") {
    c->kind = Kind::kYield;
  } else if (a == "abort") {
    c->kind = Kind::kAbort;
  } else if (a == "pause") {
    c->kind = Kind::kPause;
  } else if (a == "callback") {
    c->kind = Kind::kCallback;
  } else if (arg("raise", &inner)) {
    c->kind = Kind::kRaise;
    if (!ParseSignal(inner, &c->signal)) {
      return SpecError(spec, "unknown signal '" + std::string(inner) + "'");
    }
  } else if (arg("sleep", &inner)) {
    c->kind = Kind::kSleep;
    uint64_t ms = 0;
    if (!ParseUint(inner, &ms) || ms > 600000) {
      return SpecError(spec, "sleep takes milliseconds, 0..600000");
    }
    c->sleep_ms = static_cast<int>(ms);
  } else {
    return SpecError(spec, "unknown action '" + std::string(a) +
                               "' (off, error, yield, abort, pause, callback, "
                               "raise(SIG), sleep(MS))");
  }
  return Status::Ok();
}

// Parses "NAME=ACTION[@HIT][*COUNT][%PROB][#THREAD]".
Status ParseSpec(std::string_view spec, std::string* name, Config* c) {
  const size_t eq = spec.find('=');
  if (eq == std::string_view::npos) return SpecError(spec, "missing '='");
  *name = std::string(Trim(spec.substr(0, eq)));
  if (name->empty()) return SpecError(spec, "empty failpoint name");
  std::string_view rest = Trim(spec.substr(eq + 1));
  // The action ends at the first modifier outside parentheses.
  size_t end = 0;
  int depth = 0;
  for (; end < rest.size(); ++end) {
    const char ch = rest[end];
    if (ch == '(') ++depth;
    if (ch == ')') --depth;
    if (depth == 0 && (ch == '@' || ch == '*' || ch == '%' || ch == '#')) {
      break;
    }
  }
  SIGRACE_RETURN_IF_ERROR(ParseAction(spec, Trim(rest.substr(0, end)), c));
  bool have_hit = false, have_count = false;
  rest.remove_prefix(end);
  while (!rest.empty()) {
    const char mod = rest[0];
    rest.remove_prefix(1);
    size_t next = mod == '#' ? rest.size() : rest.find_first_of("@*%#");
    if (next == std::string_view::npos) next = rest.size();
    const std::string_view val = Trim(rest.substr(0, next));
    rest.remove_prefix(next);
    uint64_t n = 0;
    switch (mod) {
      case '@':
        if (!ParseUint(val, &n) || n == 0) {
          return SpecError(spec, "@HIT must be a whole number >= 1");
        }
        c->hit = n;
        have_hit = true;
        break;
      case '*':
        if (!ParseUint(val, &n) || n == 0) {
          return SpecError(spec, "*COUNT must be a whole number >= 1");
        }
        c->count = n;
        have_count = true;
        break;
      case '%':
        if (!ParseUint(val, &n) || n == 0 || n > 100) {
          return SpecError(spec, "%PROB must be a percentage 1..100");
        }
        c->prob = static_cast<int>(n);
        break;
      case '#':
        if (val.empty()) return SpecError(spec, "#THREAD needs a name");
        c->thread = std::string(val);
        break;
    }
  }
  if (have_hit && !have_count) c->count = 1;
  return Status::Ok();
}

int FindLocked(Table& t, std::string_view name) REQUIRES(t.mu) {
  for (size_t i = 0; i < t.sites.size(); ++i) {
    if (name == t.sites[i]->name()) return static_cast<int>(i);
  }
  return -1;
}

Status UnknownName(std::string_view name) {
  return InvalidArgumentError("unknown failpoint '" + std::string(name) +
                              "' (sigrace failpoints lists them)");
}

void ResetStateLocked(Table& t, int i, const Config& c) REQUIRES(t.mu) {
  State& s = t.states[i];
  s.config = c;
  s.hits = 0;
  s.fired = 0;
  s.rng = t.seed ^ NameHash(t.sites[i]->name());
  s.resume_gen++;
  t.sites[i]->armed_.store(c.kind != Kind::kOff, std::memory_order_relaxed);
}

}  // namespace

Site::Site(const char* name) : name_(name) {
  Table& t = GetTable();
  MutexLock lock(&t.mu);
  index_ = static_cast<int>(t.sites.size());
  t.sites.push_back(this);
  t.states.emplace_back();
  t.states.back().rng = t.seed ^ NameHash(name);
}

bool Site::EvaluateSlow() {
  Table& t = GetTable();
  Config c;
  std::function<void()> callback;
  {
    MutexLock lock(&t.mu);
    State& s = t.states[index_];
    if (s.config.kind == Kind::kOff) return false;
    if (!s.config.thread.empty() && s.config.thread != t_thread_name) {
      return false;
    }
    ++s.hits;
    if (s.hits < s.config.hit) return false;
    if (s.config.count != 0 && s.fired >= s.config.count) return false;
    if (s.config.prob < 100 &&
        static_cast<int>(SplitMix(s.rng) % 100) >= s.config.prob) {
      return false;
    }
    ++s.fired;
    c = s.config;
    if (c.kind == Kind::kCallback) callback = s.callback;
    if (c.kind == Kind::kPause) {
      const uint64_t gen = s.resume_gen;
      ++s.paused;
      t.cv.notify_all();
      std::unique_lock<std::mutex> ul(t.mu.native(), std::adopt_lock);
      // The predicate runs with t.mu held (the condition variable's contract).
      t.cv.wait(ul, [&] {
        t.mu.AssertHeld();
        return t.states[index_].resume_gen != gen;
      });
      ul.release();
      --t.states[index_].paused;
      t.cv.notify_all();
      return false;
    }
  }
  switch (c.kind) {
    case Kind::kError:
      return true;
    case Kind::kYield:
      sched_yield();
      return false;
    case Kind::kAbort:
      std::abort();
    case Kind::kRaise:
      // raise() is thread-directed: the fault lands on this thread, inside
      // the window, which is the point of the failpoint.
      ::raise(c.signal);
      return false;
    case Kind::kSleep:
      std::this_thread::sleep_for(std::chrono::milliseconds(c.sleep_ms));
      return false;
    case Kind::kCallback:
      if (callback) callback();
      return false;
    case Kind::kOff:
    case Kind::kPause:
      return false;
  }
  return false;
}

Status Configure(std::string_view specs) {
  std::vector<std::pair<std::string, Config>> parsed;
  std::string_view rest = specs;
  while (!rest.empty()) {
    const size_t semi = rest.find(';');
    const std::string_view one = Trim(
        rest.substr(0, semi == std::string_view::npos ? rest.size() : semi));
    rest = semi == std::string_view::npos ? std::string_view()
                                          : rest.substr(semi + 1);
    if (one.empty()) continue;
    std::string name;
    Config c;
    SIGRACE_RETURN_IF_ERROR(ParseSpec(one, &name, &c));
    parsed.emplace_back(std::move(name), std::move(c));
  }
  Table& t = GetTable();
  MutexLock lock(&t.mu);
  for (const auto& [name, c] : parsed) {
    if (FindLocked(t, name) < 0) return UnknownName(name);
  }
  for (const auto& [name, c] : parsed) {
    ResetStateLocked(t, FindLocked(t, name), c);
  }
  t.cv.notify_all();
  return Status::Ok();
}

Status ConfigureFromEnv() {
  // Read at start-up, before the process starts threads that could
  // change the environment.
  const char* env = std::getenv(  // NOLINT(concurrency-mt-unsafe)
      "SIGRACE_FAILPOINTS");
  if (env == nullptr || *env == '\0') return Status::Ok();
  Status s = Configure(env);
  if (!s.ok()) {
    return InvalidArgumentError("SIGRACE_FAILPOINTS: " + s.message());
  }
  return s;
}

Status Clear(std::string_view name) {
  Table& t = GetTable();
  MutexLock lock(&t.mu);
  const int i = FindLocked(t, name);
  if (i < 0) return UnknownName(name);
  ResetStateLocked(t, i, Config{});
  t.cv.notify_all();
  return Status::Ok();
}

void ClearAll() {
  Table& t = GetTable();
  MutexLock lock(&t.mu);
  for (size_t i = 0; i < t.sites.size(); ++i) {
    ResetStateLocked(t, static_cast<int>(i), Config{});
  }
  t.cv.notify_all();
}

Status SetCallback(std::string_view name, std::function<void()> fn) {
  Table& t = GetTable();
  MutexLock lock(&t.mu);
  const int i = FindLocked(t, name);
  if (i < 0) return UnknownName(name);
  t.states[i].callback = std::move(fn);
  return Status::Ok();
}

Status Resume(std::string_view name) {
  Table& t = GetTable();
  MutexLock lock(&t.mu);
  const int i = FindLocked(t, name);
  if (i < 0) return UnknownName(name);
  t.states[i].resume_gen++;
  t.cv.notify_all();
  return Status::Ok();
}

uint64_t Hits(std::string_view name) {
  Table& t = GetTable();
  MutexLock lock(&t.mu);
  const int i = FindLocked(t, name);
  return i < 0 ? 0 : t.states[i].hits;
}

uint64_t Fired(std::string_view name) {
  Table& t = GetTable();
  MutexLock lock(&t.mu);
  const int i = FindLocked(t, name);
  return i < 0 ? 0 : t.states[i].fired;
}

int Paused(std::string_view name) {
  Table& t = GetTable();
  MutexLock lock(&t.mu);
  const int i = FindLocked(t, name);
  return i < 0 ? 0 : t.states[i].paused;
}

bool WaitPaused(std::string_view name, int n, int timeout_ms) {
  Table& t = GetTable();
  MutexLock lock(&t.mu);
  const int i = FindLocked(t, name);
  if (i < 0) return false;
  std::unique_lock<std::mutex> ul(t.mu.native(), std::adopt_lock);
  const bool ok = t.cv.wait_for(ul, std::chrono::milliseconds(timeout_ms), [&] {
    t.mu.AssertHeld();
    return t.states[i].paused >= n;
  });
  ul.release();
  return ok;
}

void SetSeed(uint64_t seed) {
  Table& t = GetTable();
  MutexLock lock(&t.mu);
  t.seed = seed;
  for (size_t i = 0; i < t.sites.size(); ++i) {
    t.states[i].rng = seed ^ NameHash(t.sites[i]->name());
  }
}

void SetThreadName(std::string_view name) { t_thread_name = name; }
std::string ThreadName() { return t_thread_name; }

std::vector<std::string> ListNames() {
  Table& t = GetTable();
  MutexLock lock(&t.mu);
  std::vector<std::string> names;
  for (const Site* s : t.sites) names.emplace_back(s->name());
  std::sort(names.begin(), names.end());
  return names;
}

}  // namespace sigrace::failpoint
