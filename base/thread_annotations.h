// Clang thread-safety annotations (-Wthread-safety), as in Abseil's
// base/thread_annotations.h and Google Benchmark's src/mutex.h.
//
// Thread safety: macros only.

#ifndef SIGRACE_BASE_THREAD_ANNOTATIONS_H_
#define SIGRACE_BASE_THREAD_ANNOTATIONS_H_

#if defined(__clang__)
#define SIGRACE_TSA(x) __attribute__((x))
#else
#define SIGRACE_TSA(x)
#endif

#define CAPABILITY(x) SIGRACE_TSA(capability(x))
#define SCOPED_CAPABILITY SIGRACE_TSA(scoped_lockable)
#define GUARDED_BY(x) SIGRACE_TSA(guarded_by(x))
#define PT_GUARDED_BY(x) SIGRACE_TSA(pt_guarded_by(x))
#define ACQUIRED_BEFORE(...) SIGRACE_TSA(acquired_before(__VA_ARGS__))
#define ACQUIRED_AFTER(...) SIGRACE_TSA(acquired_after(__VA_ARGS__))
#define REQUIRES(...) SIGRACE_TSA(requires_capability(__VA_ARGS__))
#define REQUIRES_SHARED(...) \
  SIGRACE_TSA(requires_shared_capability(__VA_ARGS__))
#define ACQUIRE(...) SIGRACE_TSA(acquire_capability(__VA_ARGS__))
#define ACQUIRE_SHARED(...) SIGRACE_TSA(acquire_shared_capability(__VA_ARGS__))
#define RELEASE(...) SIGRACE_TSA(release_capability(__VA_ARGS__))
#define RELEASE_SHARED(...) SIGRACE_TSA(release_shared_capability(__VA_ARGS__))
#define RELEASE_GENERIC(...) \
  SIGRACE_TSA(release_generic_capability(__VA_ARGS__))
#define TRY_ACQUIRE(...) SIGRACE_TSA(try_acquire_capability(__VA_ARGS__))
#define EXCLUDES(...) SIGRACE_TSA(locks_excluded(__VA_ARGS__))
#define ASSERT_CAPABILITY(x) SIGRACE_TSA(assert_capability(x))
#define RETURN_CAPABILITY(x) SIGRACE_TSA(lock_returned(x))
#define NO_THREAD_SAFETY_ANALYSIS SIGRACE_TSA(no_thread_safety_analysis)

#endif  // SIGRACE_BASE_THREAD_ANNOTATIONS_H_
