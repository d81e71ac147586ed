# The egress gate: judge a dump on a kernel-sealed copy, release that copy.
# include()d from crashdump/CMakeLists.txt.

sigrace_cc_library(
  NAME crashdump_gate
  SRCS gate.cc
  HDRS gate.h
  DEPS sigrace::crashdump_scanner sigrace::crashdump_reader sigrace::base)

sigrace_cc_test(
  NAME gate_test
  SRCS gate_test.cc
  DEPS sigrace::crashdump_gate sigrace::crashdump_handler
       sigrace::crashdump_crash_test_util OpenSSL::Crypto
  LABELS unit notsan
  ENVIRONMENT ASAN_OPTIONS=handle_segv=0:handle_abort=0)

# `sigrace gate`; linked into the sigrace command by stress/.
sigrace_cc_library(
  NAME crashdump_gate_main
  SRCS gate_main.cc
  HDRS gate_main.h
  DEPS sigrace::crashdump_gate CLI11::CLI11 nlohmann_json::nlohmann_json)
