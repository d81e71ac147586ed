# Wrapper functions in the style of Abseil's absl_cc_library/absl_cc_test:
# one call declares a library or a test, with its sources listed by hand.

include_guard(GLOBAL)

# sigrace_cc_library(NAME name SRCS ... HDRS ... DEPS ...)
function(sigrace_cc_library)
  cmake_parse_arguments(ARG "" "NAME" "SRCS;HDRS;DEPS" ${ARGN})
  if(ARG_SRCS)
    add_library(${ARG_NAME} STATIC ${ARG_SRCS} ${ARG_HDRS})
    target_include_directories(${ARG_NAME} PUBLIC ${PROJECT_SOURCE_DIR})
    target_link_libraries(${ARG_NAME} PUBLIC ${ARG_DEPS})
  else()
    add_library(${ARG_NAME} INTERFACE ${ARG_HDRS})
    target_include_directories(${ARG_NAME} INTERFACE ${PROJECT_SOURCE_DIR})
    target_link_libraries(${ARG_NAME} INTERFACE ${ARG_DEPS})
  endif()
  add_library(sigrace::${ARG_NAME} ALIAS ${ARG_NAME})
endfunction()

# sigrace_test_executable(TARGET LABELS ...)
# Records that tests with these labels run TARGET, so that the sanitizer
# presets build only what their test presets run (sigrace_test_aggregates).
# sigrace_cc_test calls it; a target behind a hand-written add_test (an
# executable, or objects a test reads) must be named here too: a test whose
# target was not built fails loudly, never passes.
function(sigrace_test_executable target)
  set_property(GLOBAL APPEND PROPERTY SIGRACE_TEST_EXECUTABLES ${target})
  set_property(TARGET ${target} PROPERTY SIGRACE_TEST_LABELS ${ARGN})
endfunction()

# Defines two targets, called once at the end of the top-level list file:
#   unit_tests  every executable a `unit` test runs, and sigrace (the asan
#               preset runs `-L unit`)
#   tsan_tests  every executable a test without `notsan` runs, and sigrace
#               (the tsan preset excludes `notsan`)
function(sigrace_test_aggregates)
  add_custom_target(unit_tests)
  add_custom_target(tsan_tests)
  add_dependencies(unit_tests sigrace)
  add_dependencies(tsan_tests sigrace)
  get_property(executables GLOBAL PROPERTY SIGRACE_TEST_EXECUTABLES)
  foreach(t IN LISTS executables)
    get_property(labels TARGET ${t} PROPERTY SIGRACE_TEST_LABELS)
    if("unit" IN_LIST labels)
      add_dependencies(unit_tests ${t})
    endif()
    if(NOT "notsan" IN_LIST labels)
      add_dependencies(tsan_tests ${t})
    endif()
  endforeach()
endfunction()

# sigrace_cc_test(NAME name SRCS ... DEPS ... LABELS unit;notsan
#                 [TIMEOUT s] [ENVIRONMENT K=V ...])
# Every test gets at least one label; test presets select by label.
function(sigrace_cc_test)
  cmake_parse_arguments(ARG "" "NAME;TIMEOUT" "SRCS;DEPS;LABELS;ENVIRONMENT"
                        ${ARGN})
  if(NOT ARG_LABELS)
    message(FATAL_ERROR "sigrace_cc_test(${ARG_NAME}): LABELS is required")
  endif()
  add_executable(${ARG_NAME} ${ARG_SRCS})
  target_link_libraries(${ARG_NAME} PRIVATE ${ARG_DEPS} GTest::gtest
                                            GTest::gtest_main)
  # One ctest entry per executable keeps ctest fast; gtest filters work as
  # usual through the executable.
  add_test(NAME ${ARG_NAME} COMMAND ${ARG_NAME})
  sigrace_test_executable(${ARG_NAME} ${ARG_LABELS})
  if(NOT ARG_TIMEOUT)
    set(ARG_TIMEOUT 300)
  endif()
  set_tests_properties(${ARG_NAME} PROPERTIES LABELS "${ARG_LABELS}"
                                              TIMEOUT ${ARG_TIMEOUT})
  if(ARG_ENVIRONMENT)
    set_tests_properties(${ARG_NAME} PROPERTIES ENVIRONMENT
                                                "${ARG_ENVIRONMENT}")
  endif()
endfunction()
