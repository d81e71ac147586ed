// The ThreadSanitizer runtime options and suppressions compiled into every
// TSan binary that links sigrace::tsan_counter. They are generated at
// configure time from tsan/tsan.options and tsan/suppressions.txt (one
// source of truth for the ctest ENVIRONMENT and for a binary run by hand).
// TSAN_OPTIONS in the environment still overrides any of them.
//
// Thread safety: constants only.

#ifndef SIGRACE_TSAN_OPTIONS_H_
#define SIGRACE_TSAN_OPTIONS_H_

namespace sigrace::tsan {

// "key=value:key=value..." as the runtime parses it (comments stripped).
extern const char kOptions[];
// The suppressions file, verbatim ('#' comments are TSan syntax too).
extern const char kSuppressions[];

}  // namespace sigrace::tsan

#endif  // SIGRACE_TSAN_OPTIONS_H_
