// Exploration of windows nobody named (issue 13): the instants of one
// operation (a signature, or a rotation with its key load) on one thread.
//
// An instant is an OpenSSL allocation or free through the key heap's memory
// functions (signer::TEST_SetAllocObserver), or a failpoint evaluation
// while the explore hooks arm every site with a counting callback. The
// worker brackets each signature and rotation with ExploreOpBegin/End; on
// the armed target thread the instants of the operation are counted, and
// the N-th one raises SIGSEGV there (the `alloc` injector and the
// systematic mode). Every instant on every thread may also be widened: a
// seeded, bounded delay or yield, so a window with no failpoint inside is
// stretched until an async fault lands in it.
//
// Thread safety: ExploreArm/ExploreDisarm/ExploreInstall from one control
// thread; the per-instant hook runs on any thread and is lock-free.
// Not async-signal-safe.

#ifndef SIGRACE_STRESS_EXPLORE_H_
#define SIGRACE_STRESS_EXPLORE_H_

#include <cstdint>
#include <string>
#include <vector>

#include "base/status.h"
#include "stress/trial.h"

namespace sigrace::stress {

// Installs the key-heap observer (idempotent).
void ExploreInstall();
// Names the calling thread's index: signing thread i is i, the rotation
// thread is the number of signing threads.
void ExploreSetThreadIndex(int index);

struct ExploreArming {
  int target = -1;        // thread index whose operations count; -1: none
  uint32_t instant = 0;   // fault at this instant (1-based); 0: count only
  uint32_t widen_us = 0;  // 0: no widening
  uint64_t widen_seed = 0;
  bool failpoints = false;  // count failpoint evaluations as instants
};
// Arms for one trial (failpoints: every signer site, sign./load./keygen./
// rotate./window., gets a counting callback; never the handler's own).
Status ExploreArm(const ExploreArming& a);
// Disarms; clears the failpoint callbacks it set.
void ExploreDisarm();
// True once the armed instant raised its fault.
bool ExploreFired();

// Brackets one operation on the calling thread.
void ExploreOpBegin();
// Ends it; returns its instant count (0 when not counted). If the armed
// instant lies beyond the operation's instants, it wraps to one inside for
// the next operation.
uint32_t ExploreOpEnd();

// Where each thread was: every thread with an index keeps, lock-free, whether
// it is inside an operation and how many key-heap instants (allocations and
// frees; never failpoint evaluations) that operation has passed. The crash
// handler's on_dump hook copies them while the other threads are frozen,
// so a dump records which thread was where, and a replay can pin that
// thread there (the alloc injector at that instant, failpoints uncounted).
inline constexpr int kMaxExploreThreads = 65;  // 64 signers + the rotator
struct ThreadPosition {
  int index = -1;        // -1: no such thread
  bool in_op = false;    // inside a signature or rotation
  uint32_t instant = 0;  // key-heap instants of that operation so far
};
// Copies the positions of threads 0..n-1 (n <= kMaxExploreThreads). Lock-
// free loads only: safe in a signal handler.
void ExploreSnapshotPositions(ThreadPosition* out, int n);

// Counts the instants of one signature (the second of a fresh signer) and
// one rotation per algorithm, in this process, with a throwaway signer.
StatusOr<std::vector<OpInstants>> CensusInstants(
    const std::vector<std::string>& algs, bool rotation, uint32_t key_pool);

}  // namespace sigrace::stress

#endif  // SIGRACE_STRESS_EXPLORE_H_
