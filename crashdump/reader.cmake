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

# libFuzzer target (preset `fuzz`). The reader's sources are compiled into
# the fuzzer itself so that they carry the coverage instrumentation; every
# other target of the fuzz build is built normally.
if(SIGRACE_FUZZ)
  set(_fuzz_flags -fsanitize=fuzzer,address,undefined
                  -fno-sanitize-recover=undefined)
  add_executable(core_reader_fuzz fuzz/core_reader_fuzz.cc core_reader.cc)
  target_include_directories(core_reader_fuzz PRIVATE ${PROJECT_SOURCE_DIR})
  target_link_libraries(core_reader_fuzz PRIVATE sigrace::base)
  target_compile_options(core_reader_fuzz PRIVATE ${_fuzz_flags})
  target_link_options(core_reader_fuzz PRIVATE ${_fuzz_flags})

  # Regenerates crashdump/fuzz/corpus/: core_seed_corpus DIR.
  add_executable(core_seed_corpus fuzz/make_seed_corpus.cc)
  target_include_directories(core_seed_corpus PRIVATE ${PROJECT_SOURCE_DIR})

  # New inputs go to the build tree (the first directory), never to the
  # committed seeds; crash reproducers go to fuzz-artifacts/.
  set(_fuzz_work ${CMAKE_CURRENT_BINARY_DIR}/fuzz-work)
  set(_fuzz_artifacts ${CMAKE_CURRENT_BINARY_DIR}/fuzz-artifacts)
  file(MAKE_DIRECTORY ${_fuzz_work} ${_fuzz_artifacts})
  add_test(NAME core_reader_fuzz
           COMMAND core_reader_fuzz -runs=100000 -max_total_time=30
                   -max_len=65536 -artifact_prefix=${_fuzz_artifacts}/
                   ${_fuzz_work} ${CMAKE_CURRENT_SOURCE_DIR}/fuzz/corpus)
  set_tests_properties(core_reader_fuzz PROPERTIES LABELS fuzz TIMEOUT 300)
endif()

# The reader on a real sigrace dump: forks a child that installs the
# handler (async signals in a forked child: notsan, like handler_test).
sigrace_cc_test(
  NAME core_reader_dump_test
  SRCS core_reader_dump_test.cc
  DEPS sigrace::crashdump_reader sigrace::crashdump_dump_info
       sigrace::crashdump_handler sigrace::crashdump_crash_test_util
       nlohmann_json::nlohmann_json
  LABELS unit notsan
  ENVIRONMENT ASAN_OPTIONS=handle_segv=0:handle_abort=0)
