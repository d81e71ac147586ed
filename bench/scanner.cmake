# Scanner throughput (GB/s on 1 GiB, RSA-2048 forms, F = 16).
# include()d from bench/CMakeLists.txt.

add_executable(scanner_bench scanner_bench.cc)
target_link_libraries(scanner_bench PRIVATE sigrace::crashdump_scanner
                                            OpenSSL::Crypto benchmark::benchmark)
