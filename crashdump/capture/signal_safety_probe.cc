// A deliberate violation for signal_safety_rejects_malloc_test: this object
// calls malloc, so cmake/check_signal_safety.py must reject it. It keeps
// the check from passing by finding nothing (for instance if nm printed
// nothing). Built as an OBJECT library; never linked into anything.

#include <cstdlib>

namespace sigrace::crashdump::internal {

void* TEST_SignalSafetyProbe(size_t n) { return std::malloc(n); }

}  // namespace sigrace::crashdump::internal
