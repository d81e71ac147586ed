# Scanner throughput (GB/s on 1 GiB, RSA-2048 forms, F = 16).
# include()d from bench/CMakeLists.txt.

add_executable(scanner_bench scanner_bench.cc)
target_link_libraries(scanner_bench PRIVATE sigrace::crashdump_scanner
                                            OpenSSL::Crypto benchmark::benchmark)

# The scanning figures' outside anchors (Hyperscan, ripgrep) on the same
# literal set; Hyperscan only where libhyperscan-dev is installed.
add_executable(literal_scan literal_scan.cc)
target_link_libraries(literal_scan PRIVATE sigrace::crashdump_scanner
                                           OpenSSL::Crypto)
find_library(SIGRACE_HS_LIB hs)
find_path(SIGRACE_HS_INCLUDE hs/hs.h)
if(SIGRACE_HS_LIB AND SIGRACE_HS_INCLUDE)
  target_compile_definitions(literal_scan PRIVATE SIGRACE_HAVE_HYPERSCAN=1)
  target_include_directories(literal_scan SYSTEM PRIVATE ${SIGRACE_HS_INCLUDE})
  target_link_libraries(literal_scan PRIVATE ${SIGRACE_HS_LIB})
endif()
