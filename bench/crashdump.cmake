# Crash-path speed: live dumps (memfd, file), freeze latency, and a fatal
# dump against the kernel's own core dump. include()d from
# bench/CMakeLists.txt.

add_executable(handler_bench handler_bench.cc)
target_link_libraries(handler_bench PRIVATE sigrace::crashdump_handler
                      sigrace::testing_crash_test_util benchmark::benchmark)
