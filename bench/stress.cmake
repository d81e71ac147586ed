# The stress driver's own costs: planning a trial and the control channel
# round trip that carries a key or a dump's memfd between the driver and
# its worker. (Trials/s of whole runs come from `sigrace stress`, which
# prints them.) include()d from bench/CMakeLists.txt.

add_executable(stress_bench stress_bench.cc)
target_link_libraries(stress_bench PRIVATE sigrace::stress_driver
                                           benchmark::benchmark)
