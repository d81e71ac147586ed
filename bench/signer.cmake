# Signing throughput: raw OpenSSL EVP_DigestSign with a preloaded key vs the
# model signer (`fixed`), RS256 and EdDSA, 1 and 2 threads.
# include()d from bench/CMakeLists.txt.

add_executable(signer_bench signer_bench.cc)
target_link_libraries(signer_bench PRIVATE sigrace::signer OpenSSL::Crypto
                                           benchmark::benchmark)
