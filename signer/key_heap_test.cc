#include "signer/key_heap.h"

#include <gtest/gtest.h>
#include <openssl/crypto.h>

#include <cstring>
#include <thread>
#include <vector>

#include "crashdump/registry/registry.h"

namespace sigrace::signer {
namespace {

bool AllZero(const uint8_t* p, size_t n) {
  for (size_t i = 0; i < n; ++i) {
    if (p[i] != 0) return false;
  }
  return true;
}

bool PublishedAsHeap(const void* addr, size_t len) {
  std::vector<crashdump::RegionView> v(4096);
  const size_t n = crashdump::SnapshotRegions(v.data(), v.size());
  const auto a = reinterpret_cast<uintptr_t>(addr);
  for (size_t i = 0; i < n && i < v.size(); ++i) {
    if (std::strcmp(v[i].label, "signer.heap") == 0 && a >= v[i].addr &&
        a + len <= v[i].addr + v[i].len) {
      return true;
    }
  }
  return false;
}

TEST(KeyHeap, InstalledBeforeMain) {
  EXPECT_TRUE(KeyHeapInstalled());
  EXPECT_TRUE(InstallKeyHeap().ok());  // idempotent
}

TEST(KeyHeap, ScopeRoutesOpenSslAllocations) {
  void* outside = OPENSSL_malloc(100);
  void* inside = nullptr;
  {
    KeyAllocScope scope;
    EXPECT_TRUE(InKeyAllocScope());
    inside = OPENSSL_malloc(100);
    {
      KeyAllocSuspend suspend;
      EXPECT_FALSE(InKeyAllocScope());
      void* suspended = OPENSSL_malloc(100);
      EXPECT_FALSE(TEST_InKeyHeap(suspended));
      OPENSSL_free(suspended);
    }
    EXPECT_TRUE(InKeyAllocScope());
  }
  EXPECT_FALSE(InKeyAllocScope());
  ASSERT_NE(outside, nullptr);
  ASSERT_NE(inside, nullptr);
  EXPECT_FALSE(TEST_InKeyHeap(outside));
  EXPECT_TRUE(TEST_InKeyHeap(inside));
  EXPECT_TRUE(PublishedAsHeap(inside, 100));
  EXPECT_EQ(reinterpret_cast<uintptr_t>(inside) % 16, 0u);
  OPENSSL_free(outside);
  OPENSSL_free(inside);  // freed outside the scope: routed by address
}

TEST(KeyHeap, FreedBlocksAreWiped) {
  for (size_t n : {size_t{1}, size_t{100}, size_t{5000}, size_t{200000}}) {
    uint8_t* p;
    {
      KeyAllocScope scope;
      p = static_cast<uint8_t*>(OPENSSL_malloc(n));
    }
    ASSERT_NE(p, nullptr);
    memset(p, 0x5a, n);
    EXPECT_FALSE(AllZero(p, n));
    OPENSSL_free(p);
    // Test hook: key-heap memory stays mapped after a free, so the bytes
    // the block held can be read back.
    EXPECT_TRUE(AllZero(p, n)) << "size " << n;
  }
}

// A free wipes what the block's owner was handed, and an in-place realloc
// hands out more of the same block: the free must wipe that too.
TEST(KeyHeap, InPlaceReallocGrowthIsWiped) {
  uint8_t* p;
  {
    KeyAllocScope scope;
    // 20 bytes: the 64-byte class (48 usable), so a realloc to 48 stays.
    p = static_cast<uint8_t*>(OPENSSL_malloc(20));
  }
  ASSERT_NE(p, nullptr);
  auto* q = static_cast<uint8_t*>(OPENSSL_realloc(p, 48));
  ASSERT_EQ(q, p) << "the realloc did not stay in place";
  memset(q, 0x5a, 48);
  OPENSSL_free(q);
  // Test hook: key-heap memory stays mapped after a free.
  EXPECT_TRUE(AllZero(q, 48));
}

TEST(KeyHeap, ReallocKeepsContentsAndStaysInHeap) {
  uint8_t* p;
  {
    KeyAllocScope scope;
    p = static_cast<uint8_t*>(OPENSSL_malloc(40));
  }
  ASSERT_NE(p, nullptr);
  for (int i = 0; i < 40; ++i) p[i] = static_cast<uint8_t>(i);
  // Outside any scope: a key-heap block still grows inside the key heap.
  auto* q = static_cast<uint8_t*>(OPENSSL_realloc(p, 3000));
  ASSERT_NE(q, nullptr);
  EXPECT_TRUE(TEST_InKeyHeap(q));
  bool same = true;
  for (int i = 0; i < 40; ++i) same = same && q[i] == static_cast<uint8_t>(i);
  EXPECT_TRUE(same);
  EXPECT_EQ(OPENSSL_realloc(q, 0), nullptr);
}

TEST(KeyHeap, CrossThreadFreesReturnToTheOwner) {
  const KeyHeapStats before = GetKeyHeapStats();
  std::vector<void*> blocks;
  std::thread owner([&] {
    KeyAllocScope scope;
    for (int i = 0; i < 64; ++i) blocks.push_back(OPENSSL_malloc(48));
  });
  owner.join();
  std::thread other([&] {
    for (void* b : blocks) OPENSSL_free(b);
  });
  other.join();
  // The owner's arena went back to the pool when its thread ended; a new
  // thread adopts it and drains the remote frees.
  std::thread again([&] {
    KeyAllocScope scope;
    void* b = OPENSSL_malloc(48);
    EXPECT_TRUE(TEST_InKeyHeap(b));
    OPENSSL_free(b);
  });
  again.join();
  EXPECT_EQ(GetKeyHeapStats().live_blocks, before.live_blocks);
}

}  // namespace
}  // namespace sigrace::signer
