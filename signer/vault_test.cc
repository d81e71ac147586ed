#include "signer/vault.h"

#include <gtest/gtest.h>
#include <openssl/crypto.h>

#include <cstring>
#include <string>
#include <vector>

#include "crashdump/registry/registry.h"
#include "signer/key_heap.h"

namespace sigrace::signer {
namespace {

bool AllZero(const uint8_t* p, size_t n) {
  for (size_t i = 0; i < n; ++i) {
    if (p[i] != 0) return false;
  }
  return true;
}

// Is [addr, addr+len) inside one range the registry publishes now, under
// `label`?
bool Covered(const void* addr, size_t len, const char* label) {
  std::vector<crashdump::RegionView> v(4096);
  const size_t n = crashdump::SnapshotRegions(v.data(), v.size());
  const auto a = reinterpret_cast<uintptr_t>(addr);
  for (size_t i = 0; i < n && i < v.size(); ++i) {
    if (v[i].kind != crashdump::RegionKind::kRange) continue;
    if (std::strcmp(v[i].label, label) != 0) continue;
    if (a >= v[i].addr && a + len <= v[i].addr + v[i].len) return true;
  }
  return false;
}

class KeepMapped {
 public:
  KeepMapped() { ProtectedPages::TEST_SetKeepMappedOnRelease(true); }
  ~KeepMapped() { ProtectedPages::TEST_SetKeepMappedOnRelease(false); }
};

TEST(ProtectedPages, PublishedWhileAliveWipedOnRelease) {
  KeepMapped keep;
  auto pages = ProtectedPages::Map(10000, "test.pages");
  ASSERT_TRUE(pages.ok()) << pages.status().ToString();
  uint8_t* data = (*pages)->data();
  const size_t size = (*pages)->size();
  EXPECT_EQ(size % 4096, 0u);
  EXPECT_GE(size, 10000u);
  EXPECT_TRUE(Covered(data, size, "test.pages"));
  memset(data, 0xa5, size);
  EXPECT_FALSE(AllZero(data, size));  // the pair: bytes are there before
  pages->reset();
  EXPECT_TRUE(AllZero(data, size));
  EXPECT_FALSE(Covered(data, 1, "test.pages"));
}

TEST(ProtectedPages, PublishRangeAndMove) {
  auto pages = ProtectedPages::Map(4096, "test.range", /*publish=*/false);
  ASSERT_TRUE(pages.ok());
  ProtectedPages& p = **pages;
  EXPECT_FALSE(p.published());
  EXPECT_FALSE(Covered(p.data(), 1, "test.range"));
  p.PublishRange(p.data() + 2048, 2048);
  EXPECT_TRUE(Covered(p.data() + 2048, 2048, "test.range"));
  EXPECT_FALSE(Covered(p.data(), 1, "test.range"));
  p.MoveRegion(p.data(), 4096, /*torn=*/false, nullptr);
  EXPECT_TRUE(Covered(p.data(), 4096, "test.range"));
  p.Unpublish();
  EXPECT_FALSE(Covered(p.data(), 1, "test.range"));
}

TEST(ProtectedPages, ZeroSizeIsAnError) {
  EXPECT_EQ(ProtectedPages::Map(0, "x").status().code(),
            StatusCode::kInvalidArgument);
}

TEST(Vault, WrapUnwrapRoundTrip) {
  auto v = Vault::Create();
  ASSERT_TRUE(v.ok()) << v.status().ToString();
  const std::string plain = "not a key, just test bytes of some length";
  auto w = (*v)->Wrap(reinterpret_cast<const uint8_t*>(plain.data()),
                      plain.size(), "kid-1");
  ASSERT_TRUE(w.ok());
  EXPECT_EQ(w->size(), plain.size() + kWrapOverhead);
  // Ciphertext, not the plaintext.
  EXPECT_TRUE(memmem(w->data(), w->size(), plain.data(), 8) == nullptr);
  std::vector<uint8_t> out(plain.size());
  auto n = (*v)->Unwrap(*w, "kid-1", out.data(), out.size());
  ASSERT_TRUE(n.ok()) << n.status().ToString();
  EXPECT_EQ(*n, plain.size());
  EXPECT_TRUE(memcmp(out.data(), plain.data(), plain.size()) == 0);
}

TEST(Vault, TamperedOrMisusedUnwrapIsAnError) {
  auto v = Vault::Create();
  ASSERT_TRUE(v.ok());
  const uint8_t plain[40] = {1, 2, 3};
  auto w = (*v)->Wrap(plain, sizeof(plain), "kid");
  ASSERT_TRUE(w.ok());
  std::vector<uint8_t> out(64, 0x77);
  EXPECT_FALSE((*v)->Unwrap(*w, "other-kid", out.data(), out.size()).ok());
  EXPECT_TRUE(AllZero(out.data(), sizeof(plain)));  // wiped after failure
  std::vector<uint8_t> bad = *w;
  bad[20] ^= 1;
  EXPECT_FALSE((*v)->Unwrap(bad, "kid", out.data(), out.size()).ok());
  bad = *w;
  bad.back() ^= 1;  // tag
  EXPECT_FALSE((*v)->Unwrap(bad, "kid", out.data(), out.size()).ok());
  EXPECT_FALSE((*v)->Unwrap(*w, "kid", out.data(), 10).ok());
  EXPECT_FALSE((*v)->Unwrap(*w, "kid", nullptr, 64).ok());
  EXPECT_FALSE(
      (*v)->Unwrap(std::vector<uint8_t>(kWrapOverhead), "kid", out.data(), 64)
          .ok());
  EXPECT_FALSE((*v)->Wrap(nullptr, 4, "kid").ok());
  EXPECT_FALSE((*v)->Wrap(plain, 0, "kid").ok());
  // Another vault has another KEK.
  auto v2 = Vault::Create();
  ASSERT_TRUE(v2.ok());
  EXPECT_FALSE((*v2)->Unwrap(*w, "kid", out.data(), out.size()).ok());
}

TEST(Vault, KekPagesPublishedAndWipedOnRelease) {
  KeepMapped keep;
  auto v = Vault::Create();
  ASSERT_TRUE(v.ok());
  const uint8_t* kek = (*v)->TEST_pages().data();
  const size_t size = (*v)->TEST_pages().size();
  EXPECT_TRUE(Covered(kek, size, "signer.vault"));
  EXPECT_FALSE(AllZero(kek, 32));  // a KEK is there
  v->reset();
  EXPECT_TRUE(AllZero(kek, size));
}

TEST(SecureHeap, EnabledAndPublished) {
  EXPECT_FALSE(EnableSecureHeap(3000).ok());  // not a power of two
  auto info = EnableSecureHeap(size_t{1} << 20);
  ASSERT_TRUE(info.ok()) << info.status().ToString();
  EXPECT_TRUE(info->enabled);
  EXPECT_EQ(CRYPTO_secure_malloc_initialized(), 1);
  void* p = OPENSSL_secure_malloc(64);
  ASSERT_NE(p, nullptr);
  EXPECT_TRUE(Covered(p, 64, "openssl.secure_heap"));
  OPENSSL_secure_free(p);
  EXPECT_EQ(info->len, size_t{1} << 20);
}

}  // namespace
}  // namespace sigrace::signer
