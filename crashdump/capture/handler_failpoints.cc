// The crash path's failpoint sites (declared in handler_state.h). Defined
// apart from the crash path because each Site registers itself with the
// failpoint table at load time, which allocates and locks.
// Not async-signal-safe (load-time code only; evaluating a disarmed site
// from the handler is one relaxed load).

#include "base/failpoint.h"
#include "crashdump/capture/handler_state.h"

namespace sigrace::crashdump::internal {

SIGRACE_FAILPOINT_DEFINE(kFpEntered, "handler.entered");
SIGRACE_FAILPOINT_DEFINE(kFpFreezePass, "handler.after_freeze_pass");
SIGRACE_FAILPOINT_DEFINE(kFpAfterFreeze, "handler.after_freeze");
SIGRACE_FAILPOINT_DEFINE(kFpAfterSnapshot, "handler.after_registry_snapshot");
SIGRACE_FAILPOINT_DEFINE(kFpBeforeWrite, "handler.before_write");
SIGRACE_FAILPOINT_DEFINE(kFpBeforeSeal, "handler.before_seal");
SIGRACE_FAILPOINT_DEFINE(kFpWaiterPoll, "handler.crash_waiter_poll");

}  // namespace sigrace::crashdump::internal
