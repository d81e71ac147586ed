# The core reader, `sigrace dump-info`, and the reader's fuzz target.
# include()d from crashdump/CMakeLists.txt.

sigrace_cc_library(
  NAME crashdump_reader
  SRCS core_reader.cc
  HDRS core_reader.h core_format.h
  DEPS sigrace::base)

sigrace_cc_test(
  NAME core_reader_test
  SRCS core_reader_test.cc
  DEPS sigrace::crashdump_reader Threads::Threads
  LABELS unit)
