# The dump scanner (the oracle), its key-form table and `sigrace scan`.
# include()d from crashdump/CMakeLists.txt.

sigrace_cc_library(
  NAME crashdump_scanner
  SRCS key_forms.cc scanner.cc
  HDRS key_forms.h scanner.h
  DEPS sigrace::base sigrace::crashdump_reader OpenSSL::Crypto
       Threads::Threads)

sigrace_cc_test(
  NAME key_forms_test
  SRCS key_forms_test.cc
  DEPS sigrace::crashdump_scanner
  LABELS unit)

sigrace_cc_test(
  NAME scanner_test
  SRCS scanner_test.cc
  DEPS sigrace::crashdump_scanner
  LABELS unit)

# `sigrace scan`; linked into the sigrace command by stress/.
sigrace_cc_library(
  NAME crashdump_scan_main
  SRCS scan_main.cc
  HDRS scan_main.h
  DEPS sigrace::crashdump_scanner CLI11::CLI11 nlohmann_json::nlohmann_json)

# Real dumps of a child that loaded a key: kernel core, gcore, sigrace
# handler; each paired with a child holding another key (clean).
sigrace_cc_test(
  NAME scanner_core_test
  SRCS scanner_core_test.cc
  DEPS sigrace::crashdump_scanner sigrace::crashdump_handler
       sigrace::crashdump_crash_test_util OpenSSL::Crypto
  LABELS unit notsan
  TIMEOUT 600
  ENVIRONMENT ASAN_OPTIONS=handle_segv=0:handle_abort=0)
