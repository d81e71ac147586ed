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
