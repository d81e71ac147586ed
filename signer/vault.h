// The key vault: protected pages, the key-encryption key, and OpenSSL's
// secure heap.
//
// ProtectedPages is an mmap'd run of pages between two PROT_NONE guard
// pages, mlock'd where allowed (EPERM/ENOMEM are recorded, not fatal),
// MADV_DONTDUMP, published to the crashdump registry under a static label,
// and wiped with OPENSSL_cleanse (which the compiler cannot drop) before it
// is unpublished and unmapped.
//
// Vault holds the KEK (AES-256, from RAND_priv_bytes) in ProtectedPages and
// wraps keys at rest with AES-256-GCM: wrapped = iv(12) | ct | tag(16), the
// kid as associated data. The wrapped bytes are ciphertext and live on the
// ordinary heap. Wrap/Unwrap run inside a KeyAllocScope so the cipher
// context (which holds the KEK's key schedule) lands in the key heap.
//
// EnableSecureHeap() turns on CRYPTO_secure_malloc_init once per process and
// publishes its arena as "openssl.secure_heap". The arena's range is found
// with a probe: OPENSSL_secure_malloc returns a pointer inside the arena,
// and the read-write mapping in /proc/self/maps that contains it is exactly
// the arena, because OpenSSL puts a PROT_NONE guard page on either side,
// which splits it into its own VMA.
//
// Thread safety: ProtectedPages is not thread-safe (one owner). Vault's
// Wrap/Unwrap are thread-safe (the KEK is read-only after Create).
// EnableSecureHeap is thread-safe. Not async-signal-safe.

#ifndef SIGRACE_SIGNER_VAULT_H_
#define SIGRACE_SIGNER_VAULT_H_

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string_view>
#include <utility>
#include <vector>

#include "base/status.h"
#include "crashdump/registry/registry.h"

namespace sigrace::signer {

class ProtectedPages {
 public:
  // Maps at least `bytes` (rounded up to pages). Publishes at once unless
  // `publish` is false (the caller then calls Publish()).
  // `dontdump` false leaves the pages in core dumps, so redaction through
  // the registry is their only cover (the working page: see signer.cc).
  static StatusOr<std::unique_ptr<ProtectedPages>> Map(size_t bytes,
                                                       const char* label,
                                                       bool publish = true,
                                                       bool dontdump = true);
  // Wipes, unpublishes, unmaps.
  ~ProtectedPages();
  ProtectedPages(const ProtectedPages&) = delete;
  ProtectedPages& operator=(const ProtectedPages&) = delete;

  uint8_t* data() { return data_; }
  const uint8_t* data() const { return data_; }
  size_t size() const { return size_; }
  bool mlocked() const { return mlocked_; }
  const char* label() const { return label_; }

  // Publishes the whole pages, or only [addr, addr+len) inside them. A
  // no-op if already published.
  void Publish();
  void PublishRange(const uint8_t* addr, size_t len);
  void Unpublish();
  bool published() const { return handle_.valid(); }
  crashdump::RegionHandle handle() const { return handle_; }
  // Moves the published range to [addr, addr+len), which must lie inside
  // these pages. `torn` uses crashdump::TEST_UpdateRegionTorn with
  // `between` (the torn-update race variant); otherwise UpdateRegion.
  void MoveRegion(const uint8_t* addr, size_t len, bool torn,
                  void (*between)());
  // OPENSSL_cleanse over every usable byte.
  void Wipe();

  // Test hook: while set, destruction wipes and unpublishes but leaves the
  // pages mapped (and leaked) so a test can read back what release left.
  static void TEST_SetKeepMappedOnRelease(bool keep);

 private:
  ProtectedPages(uint8_t* map, size_t map_len, uint8_t* data, size_t size,
                 const char* label, bool mlocked);

  uint8_t* map_;
  size_t map_len_;
  uint8_t* data_;
  size_t size_;
  const char* label_;
  bool mlocked_;
  crashdump::RegionHandle handle_;
};

inline constexpr size_t kWrapOverhead = 12 + 16;

class Vault {
 public:
  static StatusOr<std::unique_ptr<Vault>> Create();

  // AES-256-GCM under the KEK; `aad` is bound to the ciphertext.
  StatusOr<std::vector<uint8_t>> Wrap(const uint8_t* plain, size_t len,
                                      std::string_view aad) const;
  // Writes the plaintext to out[0..cap) and returns its length. A wrong
  // tag, aad or a short buffer is an error and leaves out wiped. With the
  // registry's cover check on, out[0..len) must already be covered.
  StatusOr<size_t> Unwrap(const std::vector<uint8_t>& wrapped,
                          std::string_view aad, uint8_t* out, size_t cap) const;

  bool mlocked() const { return pages_->mlocked(); }
  // Test hook: where the KEK lives.
  const ProtectedPages& TEST_pages() const { return *pages_; }

 private:
  explicit Vault(std::unique_ptr<ProtectedPages> pages)
      : pages_(std::move(pages)) {}
  std::unique_ptr<ProtectedPages> pages_;  // KEK at offset 0
};

struct SecureHeapInfo {
  bool enabled = false;
  bool mlocked = false;  // CRYPTO_secure_malloc_init returned 1, not 2
  uintptr_t addr = 0;
  size_t len = 0;
};
// Idempotent; the first call's size wins. `bytes` must be a power of two.
StatusOr<SecureHeapInfo> EnableSecureHeap(size_t bytes);

}  // namespace sigrace::signer

#endif  // SIGRACE_SIGNER_VAULT_H_
