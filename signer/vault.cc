#include "signer/vault.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <sys/mman.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cinttypes>
#include <cstdio>
#include <cstring>
#include <memory>

#include "base/mutex.h"
#include "signer/dont_dump.h"
#include "signer/key_heap.h"

namespace sigrace::signer {
namespace {

constexpr size_t kPage = 4096;
constexpr size_t kKekBytes = 32;
constexpr size_t kIvBytes = 12;
constexpr size_t kTagBytes = 16;
static_assert(kWrapOverhead == kIvBytes + kTagBytes);

std::atomic<bool> g_keep_mapped{false};

struct CipherCtxDeleter {
  void operator()(EVP_CIPHER_CTX* c) const { EVP_CIPHER_CTX_free(c); }
};
using CipherCtx = std::unique_ptr<EVP_CIPHER_CTX, CipherCtxDeleter>;

}  // namespace

StatusOr<std::unique_ptr<ProtectedPages>> ProtectedPages::Map(size_t bytes,
                                                              const char* label,
                                                              bool publish,
                                                              bool dontdump) {
  if (bytes == 0) return InvalidArgumentError("protected pages: zero size");
  const size_t size = (bytes + kPage - 1) / kPage * kPage;
  const size_t map_len = size + 2 * kPage;
  void* m =
      mmap(nullptr, map_len, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (m == MAP_FAILED) return ErrnoError("mmap protected pages", errno);
  uint8_t* map = static_cast<uint8_t*>(m);
  uint8_t* data = map + kPage;
  if (mprotect(data, size, PROT_READ | PROT_WRITE) != 0) {
    const int e = errno;
    munmap(map, map_len);
    return ErrnoError("mprotect protected pages", e);
  }
  // Kernel core dumps skip these pages; sigrace's own writer redacts them
  // through the registry instead.
  if (dontdump) AdviseDontDump(data, size);
  // EPERM (no CAP_IPC_LOCK, RLIMIT_MEMLOCK) or ENOMEM: keep going, record.
  const bool locked = mlock(data, size) == 0;
  std::unique_ptr<ProtectedPages> p(
      new ProtectedPages(map, map_len, data, size, label, locked));
  if (publish) p->Publish();
  return p;
}

ProtectedPages::ProtectedPages(uint8_t* map, size_t map_len, uint8_t* data,
                               size_t size, const char* label, bool mlocked)
    : map_(map),
      map_len_(map_len),
      data_(data),
      size_(size),
      label_(label),
      mlocked_(mlocked) {}

ProtectedPages::~ProtectedPages() {
  // Wipe while still covered, then withdraw the cover.
  Wipe();
  Unpublish();
  if (g_keep_mapped.load(std::memory_order_relaxed)) return;
  if (mlocked_) munlock(data_, size_);
  munmap(map_, map_len_);
}

void ProtectedPages::Publish() { PublishRange(data_, size_); }

void ProtectedPages::PublishRange(const uint8_t* addr, size_t len) {
  if (handle_.valid()) return;
  handle_ = crashdump::PublishRegion(addr, len, label_);
}

void ProtectedPages::Unpublish() {
  crashdump::UnpublishRegion(handle_);
  handle_ = {};
}

void ProtectedPages::MoveRegion(const uint8_t* addr, size_t len, bool torn,
                                void (*between)()) {
  if (!handle_.valid()) return;
  if (torn) {
    crashdump::TEST_UpdateRegionTorn(handle_, addr, len, between);
  } else {
    crashdump::UpdateRegion(handle_, addr, len);
  }
}

void ProtectedPages::Wipe() { OPENSSL_cleanse(data_, size_); }

void ProtectedPages::TEST_SetKeepMappedOnRelease(bool keep) {
  g_keep_mapped.store(keep, std::memory_order_relaxed);
}

StatusOr<std::unique_ptr<Vault>> Vault::Create() {
  auto pages = ProtectedPages::Map(kPage, "signer.vault");
  if (!pages.ok()) return pages.status();
  KeyAllocScope scope;
  crashdump::CheckCovered((*pages)->data(), kKekBytes, "vault.kek");
  if (RAND_priv_bytes((*pages)->data(), kKekBytes) != 1) {
    return InternalError("RAND_priv_bytes failed for the KEK");
  }
  return std::unique_ptr<Vault>(new Vault(std::move(*pages)));
}

StatusOr<std::vector<uint8_t>> Vault::Wrap(const uint8_t* plain, size_t len,
                                           std::string_view aad) const {
  if (plain == nullptr || len == 0) {
    return InvalidArgumentError("wrap: empty plaintext");
  }
  KeyAllocScope scope;
  std::vector<uint8_t> out(kIvBytes + len + kTagBytes);
  if (RAND_bytes(out.data(), kIvBytes) != 1) {
    return InternalError("wrap: RAND_bytes failed");
  }
  CipherCtx ctx(EVP_CIPHER_CTX_new());
  int n = 0;
  int fin = 0;
  if (!ctx ||
      EVP_EncryptInit_ex(ctx.get(), EVP_aes_256_gcm(), nullptr, pages_->data(),
                         out.data()) != 1 ||
      EVP_EncryptUpdate(ctx.get(), nullptr, &n,
                        reinterpret_cast<const uint8_t*>(aad.data()),
                        static_cast<int>(aad.size())) != 1 ||
      EVP_EncryptUpdate(ctx.get(), out.data() + kIvBytes, &n, plain,
                        static_cast<int>(len)) != 1 ||
      EVP_EncryptFinal_ex(ctx.get(), out.data() + kIvBytes + n, &fin) != 1 ||
      EVP_CIPHER_CTX_ctrl(ctx.get(), EVP_CTRL_GCM_GET_TAG, kTagBytes,
                          out.data() + kIvBytes + len) != 1) {
    return InternalError("wrap: AES-256-GCM failed");
  }
  return out;
}

StatusOr<size_t> Vault::Unwrap(const std::vector<uint8_t>& wrapped,
                               std::string_view aad, uint8_t* out,
                               size_t cap) const {
  if (wrapped.size() <= kWrapOverhead) {
    return InvalidArgumentError("unwrap: wrapped key too short");
  }
  const size_t len = wrapped.size() - kWrapOverhead;
  if (out == nullptr || cap < len) {
    return InvalidArgumentError("unwrap: output buffer too small");
  }
  // The plaintext is key material: its destination must be covered
  // before the first byte lands (publish-late opens its window here).
  crashdump::CheckCovered(out, len, "vault.unwrap");
  KeyAllocScope scope;
  CipherCtx ctx(EVP_CIPHER_CTX_new());
  int n = 0;
  int fin = 0;
  uint8_t tag[kTagBytes];
  memcpy(tag, wrapped.data() + kIvBytes + len, kTagBytes);
  const bool ok =
      ctx &&
      EVP_DecryptInit_ex(ctx.get(), EVP_aes_256_gcm(), nullptr, pages_->data(),
                         wrapped.data()) == 1 &&
      EVP_DecryptUpdate(ctx.get(), nullptr, &n,
                        reinterpret_cast<const uint8_t*>(aad.data()),
                        static_cast<int>(aad.size())) == 1 &&
      EVP_DecryptUpdate(ctx.get(), out, &n, wrapped.data() + kIvBytes,
                        static_cast<int>(len)) == 1 &&
      EVP_CIPHER_CTX_ctrl(ctx.get(), EVP_CTRL_GCM_SET_TAG, kTagBytes, tag) ==
          1 &&
      EVP_DecryptFinal_ex(ctx.get(), out + n, &fin) == 1;
  if (!ok) {
    OPENSSL_cleanse(out, len);
    return InvalidArgumentError("unwrap: authentication failed");
  }
  return len;
}

namespace {

Mutex g_secure_mu;
bool g_secure_tried GUARDED_BY(g_secure_mu) = false;
SecureHeapInfo g_secure_info GUARDED_BY(g_secure_mu);
StatusCode g_secure_code GUARDED_BY(g_secure_mu) = StatusCode::kOk;
std::string* g_secure_error GUARDED_BY(g_secure_mu) = nullptr;

// Finds the mapping of /proc/self/maps that contains `p`.
bool FindMapping(uintptr_t p, uintptr_t* lo, uintptr_t* hi) {
  FILE* f = fopen("/proc/self/maps", "re");
  if (f == nullptr) return false;
  char line[512];
  bool found = false;
  while (fgets(line, sizeof(line), f) != nullptr) {
    uintptr_t a = 0;
    uintptr_t b = 0;
    if (sscanf(line, "%" SCNxPTR "-%" SCNxPTR, &a, &b) != 2) continue;
    if (p >= a && p < b) {
      *lo = a;
      *hi = b;
      found = true;
      break;
    }
  }
  fclose(f);
  return found;
}

}  // namespace

StatusOr<SecureHeapInfo> EnableSecureHeap(size_t bytes) {
  if (bytes < 4096 || (bytes & (bytes - 1)) != 0) {
    return InvalidArgumentError(
        "secure heap size must be a power of two of at least 4096");
  }
  MutexLock l(&g_secure_mu);
  if (g_secure_tried) {
    if (g_secure_code != StatusCode::kOk) {
      return Status(g_secure_code, *g_secure_error);
    }
    return g_secure_info;
  }
  g_secure_tried = true;
  auto fail = [&](Status s) REQUIRES(g_secure_mu) {
    g_secure_code = s.code();
    g_secure_error = new std::string(s.message());
    return s;
  };
  const int r = CRYPTO_secure_malloc_init(bytes, 16);
  if (r == 0) {
    return fail(UnavailableError("CRYPTO_secure_malloc_init failed"));
  }
  void* probe = OPENSSL_secure_malloc(16);
  if (probe == nullptr || CRYPTO_secure_allocated(probe) != 1) {
    OPENSSL_secure_free(probe);
    return fail(InternalError("secure heap probe allocation failed"));
  }
  uintptr_t lo = 0;
  uintptr_t hi = 0;
  const bool found = FindMapping(reinterpret_cast<uintptr_t>(probe), &lo, &hi);
  OPENSSL_secure_free(probe);
  if (!found) {
    return fail(IoError("secure heap arena not found in /proc/self/maps"));
  }
  // Covered for the life of the process: the secure heap is never torn
  // down while the signer library is loaded. Declared content for the
  // cover check: OpenSSL keeps its free lists inside the arena, so its
  // bytes are not zero when it holds no secret.
  crashdump::PublishRegion(reinterpret_cast<const void*>(lo), hi - lo,
                           "openssl.secure_heap",
                           crashdump::RegionContent::kDeclared);
  g_secure_info.enabled = true;
  g_secure_info.mlocked = r == 1;
  g_secure_info.addr = lo;
  g_secure_info.len = hi - lo;
  return g_secure_info;
}

}  // namespace sigrace::signer
