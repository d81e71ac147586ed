// Definitions of the crash path's shared state (see handler_state.h). Data
// only: every object here is constant-initialised, so this file adds no
// code that runs at load time.

#include "crashdump/capture/handler_state.h"

namespace sigrace::crashdump::internal {

std::atomic<bool> g_installed{false};
Scratch* g_scratch = nullptr;
size_t g_scratch_size = 0;

std::atomic<pid_t> g_owner{0};
std::atomic<uint32_t> g_gen{0};
std::atomic<uint32_t> g_active_gen{0};
std::atomic<uint32_t> g_release_gen{0};
std::atomic<uint32_t> g_nslots{0};
std::atomic<uint32_t> g_crash_waiters{0};
std::atomic<pid_t> g_in_handler[kMaxThreads];
std::atomic<uint64_t> g_dump_count{0};
std::atomic<uint64_t> g_attempts{0};

bool g_fatal = true;
bool g_freeze = true;
bool g_redact_simd = true;
int g_req_sig = 0, g_freeze_sig = 0, g_watchdog_sig = 0;
int g_watchdog_ms = 10000;
int g_freeze_timeout_ms = 1000;
void (*g_on_dump)(const DumpResult&) = nullptr;
DumpTarget::Kind g_kind = DumpTarget::Kind::kDirectory;
int g_dirfd = -1;
int g_memfd = -1;
char g_dir[200];
char g_static_meta[4096];
size_t g_static_meta_len = 0;

struct sigaction g_old[NSIG];
bool g_have_old[NSIG];

sigjmp_buf g_recover;
std::atomic<bool> g_recover_armed{false};
std::atomic<int> g_recover_reason{0};
volatile int g_out_fd = -1;
char g_tmp_name[96];
char g_final_name[96];

std::atomic<uint32_t> g_last_seq{0};
DumpResult g_last;

std::atomic<uint32_t> g_trial_seq{0};
char g_trial_meta[kTrialMetaCap];
std::atomic<size_t> g_trial_len{0};

AltStackEntry g_altstacks[kMaxThreads];

#if defined(SIGRACE_TSAN)
ForeignContext g_foreign[kMaxForeignContexts];
#endif

}  // namespace sigrace::crashdump::internal
