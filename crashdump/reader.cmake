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

# `sigrace dump-info`; linked into the sigrace command by stress/.
sigrace_cc_library(
  NAME crashdump_dump_info
  SRCS dump_info_main.cc
  HDRS dump_info_main.h
  DEPS sigrace::crashdump_reader CLI11::CLI11 nlohmann_json::nlohmann_json)

sigrace_cc_test(
  NAME dump_info_test
  SRCS dump_info_test.cc
  DEPS sigrace::crashdump_dump_info nlohmann_json::nlohmann_json
  LABELS unit)
