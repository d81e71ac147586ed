#include "crashdump/oracle/scanner.h"

#include <fcntl.h>
#include <immintrin.h>
#include <openssl/crypto.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <bit>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <thread>
#include <utility>

#include "base/failpoint.h"
#include "base/hex.h"
#include "base/mutex.h"
#include "base/secret_memory.h"
#include "base/thread_annotations.h"
#include "crashdump/format/core_reader.h"
#include "crashdump/format/redaction_claims.h"

namespace sigrace::crashdump {

namespace {
// Evaluated when ScanFile has opened a file and taken its size, with the
// index (every form of every key) built: where a test holds a scanning
// process, or changes the file under it.
SIGRACE_FAILPOINT_DEFINE(kFpScanFile, "scan.before_file");
}  // namespace

const char* FindingKindName(FindingKind kind) {
  switch (kind) {
    case FindingKind::kLeak:
      return "leak";
    case FindingKind::kRedactionNotApplied:
      return "redaction-not-applied";
    case FindingKind::kAnchor:
      return "anchor";
  }
  return "?";
}

bool IsLeak(FindingKind kind) {
  return kind == FindingKind::kLeak ||
         kind == FindingKind::kRedactionNotApplied;
}

const char* ProbePathName(ProbePath path) {
  switch (path) {
    case ProbePath::kAuto:
      return "auto";
    case ProbePath::kGeneric:
      return "generic";
    case ProbePath::kBmi2:
      return "bmi2";
    case ProbePath::kAvx512:
      return "avx512";
  }
  return "?";
}

const char* FileKindName(FileKind kind) {
  switch (kind) {
    case FileKind::kRaw:
      return "raw";
    case FileKind::kElfCore:
      return "elf-core";
    case FileKind::kSigraceDump:
      return "sigrace-dump";
  }
  return "?";
}

namespace {

constexpr uint64_t kHashMul = 0x9E3779B97F4A7C15ULL;
// A second, independent hash for the bit filter in front of the buckets.
constexpr uint32_t kBitMul = 0x9E3779B1u;
constexpr uint64_t kHighBits = 0x8080808080808080ULL;
constexpr uint32_t kHighBits32 = 0x80808080u;
constexpr uint64_t kOddBytes = 0xFF00FF00FF00FF00ULL;
constexpr uint64_t kEvenBytes = 0x00FF00FF00FF00FFULL;
constexpr int kSlots = 8;
// The window W: four bytes, one 32-bit lane. A narrower window means a
// wider stride (S = F - W + 1) and fewer probes; docs/scanner.md has the
// measurements that chose 4.
constexpr size_t kWindow = 4;

struct alignas(16) Bucket {
  uint16_t fp[kSlots];
};

struct Entry {
  uint64_t value;
  uint32_t form;    // global form id
  uint32_t offset;  // window start within the form
};

// One hash table: 2^bits buckets of eight 16-bit fingerprints (a filter
// that fits in cache), plus the exact entries grouped by bucket.
class Table {
 public:
  Table() = default;
  Table(const Table&) = delete;
  Table& operator=(const Table&) = delete;
  // The exact windows are key bytes.
  ~Table() {
    if (!entries_.empty()) {
      OPENSSL_cleanse(entries_.data(), entries_.size() * sizeof(Entry));
    }
  }

  bool Build(SecretVector<Entry> entries, int bits) {
    bits_ = bits;
    shift_ = 64 - bits;
    const size_t nb = size_t{1} << bits;
    buckets_.assign(nb, Bucket{});
    // Grouped by bucket with a counting sort (a comparison sort that
    // hashed both sides of every comparison was most of Create's time),
    // then each bucket's few entries in (value, form, offset) order.
    start_.assign(nb + 1, 0);
    for (const Entry& e : entries) ++start_[BucketOf(e.value) + 1];
    for (size_t i = 0; i < nb; ++i) start_[i + 1] += start_[i];
    {
      SecretVector<Entry> grouped(entries.size());
      std::vector<uint32_t> fill(start_.begin(), start_.end() - 1);
      for (const Entry& e : entries) grouped[fill[BucketOf(e.value)]++] = e;
      // The exact windows are key bytes.
      OPENSSL_cleanse(entries.data(), entries.size() * sizeof(Entry));
      entries.swap(grouped);
    }
    for (size_t i = 0; i < nb; ++i) {
      std::sort(entries.begin() + static_cast<ptrdiff_t>(start_[i]),
                entries.begin() + static_cast<ptrdiff_t>(start_[i + 1]),
                [](const Entry& a, const Entry& b) {
                  if (a.value != b.value) return a.value < b.value;
                  if (a.form != b.form) return a.form < b.form;
                  return a.offset < b.offset;
                });
    }
    // Distinct fingerprints per bucket; more than kSlots distinct values in
    // one bucket means the table is too small.
    for (size_t i = 0; i < entries.size(); ++i) {
      if (i > 0 && entries[i].value == entries[i - 1].value) continue;
      const uint64_t b = BucketOf(entries[i].value);
      const uint16_t fp = FingerprintOf(entries[i].value);
      Bucket& bk = buckets_[b];
      int slot = 0;
      while (slot < kSlots && bk.fp[slot] != 0 && bk.fp[slot] != fp) ++slot;
      if (slot == kSlots) {
        OPENSSL_cleanse(entries.data(), entries.size() * sizeof(Entry));
        return false;
      }
      bk.fp[slot] = fp;
    }
    entries_ = std::move(entries);
    return true;
  }

  uint64_t BucketOf(uint64_t v) const { return (v * kHashMul) >> shift_; }
  uint16_t FingerprintOf(uint64_t v) const {
    const uint16_t fp = static_cast<uint16_t>((v * kHashMul) >> (shift_ - 16));
    return fp == 0 ? 1 : fp;
  }

  // True when the bucket of `v` holds v's fingerprint.
  bool MayContain(uint64_t v) const {
    const uint64_t m = v * kHashMul;
    const uint64_t b = m >> shift_;
    uint16_t fp = static_cast<uint16_t>(m >> (shift_ - 16));
    fp = fp == 0 ? 1 : fp;
    const __m128i bucket =
        _mm_load_si128(reinterpret_cast<const __m128i*>(&buckets_[b]));
    const __m128i eq =
        _mm_cmpeq_epi16(bucket, _mm_set1_epi16(static_cast<int16_t>(fp)));
    return _mm_movemask_epi8(eq) != 0;
  }

  // The exact entries whose value is v.
  std::pair<const Entry*, const Entry*> Lookup(uint64_t v) const {
    const uint64_t b = BucketOf(v);
    const Entry* lo = entries_.data() + start_[b];
    const Entry* hi = entries_.data() + start_[b + 1];
    while (lo < hi && lo->value != v) ++lo;
    const Entry* end = lo;
    while (end < hi && end->value == v) ++end;
    return {lo, end};
  }

  bool empty() const { return entries_.empty(); }
  size_t entries() const { return entries_.size(); }
  size_t bytes() const {
    return buckets_.size() * sizeof(Bucket) + start_.size() * 4 +
           entries_.size() * sizeof(Entry);
  }

 private:
  int bits_ = 0;
  int shift_ = 64;
  std::vector<Bucket> buckets_;
  std::vector<uint32_t> start_;
  SecretVector<Entry> entries_;  // key bytes: MADV_DONTDUMP, locked
};

// Zero-filled 32-bit words on a transparent huge page where the kernel
// grants one. The probe loops read the filter at random: on 4 KiB pages
// its words span dozens of pages, and on this virtual machine the TLB
// misses cost more than the loads.
class HugeWords {
 public:
  HugeWords() = default;
  HugeWords(const HugeWords&) = delete;
  HugeWords& operator=(const HugeWords&) = delete;
  ~HugeWords() { Release(); }

  bool Assign(size_t n) {
    Release();
    const size_t bytes = (n * 4 + kHuge - 1) / kHuge * kHuge;
    // Twice the size, to cut a 2 MiB-aligned stretch out of it.
    void* p = ::mmap(nullptr, bytes + kHuge, PROT_READ | PROT_WRITE,
                     MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) return false;
    const uintptr_t raw = reinterpret_cast<uintptr_t>(p);
    const uintptr_t aligned = (raw + kHuge - 1) / kHuge * kHuge;
    if (aligned > raw) ::munmap(p, aligned - raw);
    const size_t tail = raw + bytes + kHuge - (aligned + bytes);
    if (tail > 0) ::munmap(reinterpret_cast<void*>(aligned + bytes), tail);
    ::madvise(reinterpret_cast<void*>(aligned), bytes, MADV_HUGEPAGE);
    // Derived from key bytes: out of any dump of this process.
    ::madvise(reinterpret_cast<void*>(aligned), bytes, MADV_DONTDUMP);
    data_ = reinterpret_cast<uint32_t*>(aligned);
    size_ = n;
    bytes_ = bytes;
    return true;
  }
  uint32_t* data() { return data_; }
  const uint32_t* data() const { return data_; }
  size_t size() const { return size_; }

 private:
  static constexpr size_t kHuge = size_t{2} << 20;
  void Release() {
    if (data_ != nullptr) ::munmap(data_, bytes_);
    data_ = nullptr;
    size_ = bytes_ = 0;
  }
  uint32_t* data_ = nullptr;
  size_t size_ = 0;
  size_t bytes_ = 0;
};

// The first, cheapest test, shared by all tables: a blocked Bloom filter,
// three bits of one 32-bit word per distinct window. It is two filters in
// one array, split by what the probed bytes look like (ClassOf): "text"
// windows (no byte has its top bit set and no two neighbouring bytes are
// zero: ASCII, UTF-16LE) and "binary" ones (everything else, zero fill
// included). The binary forms of a key (limbs, big-endian, DER) are a few
// thousand windows, so the binary half, at 64 bits per window, is
// L1-resident (32 KiB for RSA-2048) and random, compressed or pointer-rich
// data probes almost only that half; the text forms (hex, base64, PEM and
// their UTF-16LE) are the bulk and live in the L2-resident text half. The
// hash input is XORed with a seed chosen so that the fill patterns of real
// memory (zero pages, 0xff, spaces, 0xcc/0xaa poison) do not pass unless a
// form holds them.
//
// The hash of window v: h = (v ^ seed) * kBitMul in 32 bits, then
// m = h ^ (h >> 16). The word index is the top bits of m (cut to the
// half's size), the three bit numbers are its bits 0-4, 5-9 and 10-14; the
// index never reaches below bit 15.
class Filter {
 public:
  // 1 (text) when no byte has its top bit set and no two neighbouring
  // bytes of the window are zero: ASCII forms hold no zero byte and
  // UTF-16LE forms only every other one, while the small integers and
  // pointers of binary data are full of zero pairs; those go to the
  // L1-sized binary half. `pairs` has the top bit of bytes 0..W-2.
  static uint32_t ClassOf(uint32_t v, uint32_t pairs) {
    // Top bit of each zero byte, exact while no byte exceeds 0x7f.
    const uint32_t zero = ~(v + ~kHighBits32) & kHighBits32;
    return ((v & kHighBits32) | (zero & (zero >> 8) & pairs)) == 0 ? 1 : 0;
  }
  uint32_t ClassOf(uint32_t v) const { return ClassOf(v, pairs_); }
  static uint32_t Mix(uint32_t v, uint32_t seed) {
    const uint32_t h = (v ^ seed) * kBitMul;
    return h ^ (h >> 16);
  }

  // False when out of memory. `distinct`: the 4-byte windows. Also set, for
  // the slow path only: `binary`, the windows of binary forms, in the
  // binary half whatever their class (Slow tests that half before the
  // binary table); `keys8`, the 8-byte keys of the UTF-16LE table, in the
  // text half (Test8).
  bool Build(const SecretVector<uint64_t>& distinct,
             const SecretVector<uint64_t>& binary,
             const SecretVector<uint64_t>& keys8) {
    pairs_ = kHighBits32 & ((uint32_t{1} << (8 * (kWindow - 1))) - 1);
    size_t count[2] = {0, 0};
    for (uint64_t v : distinct) ++count[ClassOf(static_cast<uint32_t>(v))];
    // The extra values each half holds, counted like the windows.
    std::vector<uint32_t> extra[2];
    for (uint64_t v : binary) {
      if (ClassOf(static_cast<uint32_t>(v)) == 1) {
        extra[0].push_back(static_cast<uint32_t>(v));
      }
    }
    for (uint64_t k : keys8) extra[1].push_back(Fold8(k));
    for (int c = 0; c < 2; ++c) {
      std::sort(extra[c].begin(), extra[c].end());
      extra[c].erase(std::unique(extra[c].begin(), extra[c].end()),
                     extra[c].end());
      count[c] += extra[c].size();
    }
    // About 64 bits per window in both halves: the binary half stays
    // L1-sized, and at 32 bits per window the text half passed twice the
    // probes of real data to the tables for no measurable gain in speed.
    // The index takes at most 17 bits, above the bit numbers (a 512 KiB
    // half); more windows than that holds at 64 bits each get fewer.
    static constexpr size_t kBitsPerValue[2] = {64, 64};
    int bits[2];
    for (int c = 0; c < 2; ++c) {
      bits[c] = 10;
      while ((size_t{1} << bits[c]) < count[c] * kBitsPerValue[c] &&
             bits[c] < 22) {
        ++bits[c];
      }
      mask_[c] = (uint32_t{1} << (bits[c] - 5)) - 1;
    }
    // One shift for both halves: the word index is the top bits of m cut
    // to the half's size.
    shift_ = 32 - (std::max(bits[0], bits[1]) - 5);
    base_[0] = 0;
    base_[1] = mask_[0] + 1;
    static constexpr uint32_t kFills[] = {
        0, ~uint32_t{0}, 0x20202020u, 0xccccccccu, 0xaaaaaaaau, 0x01010101u};
    for (uint32_t attempt = 0;; ++attempt) {
      seed_ = attempt * 0x8D4BA64Du;
      if (!words_.Assign(size_t{mask_[0]} + 1 + mask_[1] + 1)) return false;
      for (uint64_t v : distinct) Set(static_cast<uint32_t>(v));
      for (int c = 0; c < 2; ++c) {
        for (uint32_t v : extra[c]) SetIn(v, c);
      }
      bool clean = true;
      for (uint32_t fill : kFills) {
        if (Test(fill) && !std::binary_search(distinct.begin(), distinct.end(),
                                              uint64_t{fill})) {
          clean = false;
        }
      }
      if (clean || attempt == 64) break;
    }
    for (int c = 0; c < 2; ++c) {
      OPENSSL_cleanse(extra[c].data(), extra[c].size() * sizeof(uint32_t));
    }
    return true;
  }
  // The probe loops compute exactly this, in their own instructions.
  bool Test(uint32_t v) const { return TestIn(v, ClassOf(v)); }
  // Whether v may be a window set in half c.
  bool TestIn(uint32_t v, uint32_t c) const {
    const uint32_t m = Mix(v, seed_);
    const uint32_t w = words_.data()[((m >> shift_) & mask_[c]) + base_[c]];
    return (w >> (m & 31)) & (w >> ((m >> 5) & 31)) & (w >> ((m >> 10) & 31)) &
           1;
  }
  // Whether k may be an 8-byte key of the UTF-16LE table.
  bool Test8(uint64_t k) const { return TestIn(Fold8(k), 1); }
  const uint32_t* words() const { return words_.data(); }
  // Word index of mix m in class c (0 binary, 1 text):
  // ((m >> shift) & mask(c)) + base(c).
  uint32_t shift() const { return shift_; }
  uint32_t mask(int c) const { return mask_[c]; }
  uint32_t base(int c) const { return base_[c]; }
  uint32_t seed() const { return seed_; }
  uint32_t pairs() const { return pairs_; }
  size_t bytes() const { return words_.size() * 4; }

 private:
  // 64 bits to 32 for Mix. The UTF-16LE of ASCII has 7 live bits in each
  // 16, so the high half is multiplied and rotated across the low half's
  // dead bits before they are combined.
  static uint32_t Fold8(uint64_t k) {
    return static_cast<uint32_t>(k) ^
           std::rotl(static_cast<uint32_t>(k >> 32) * 0x85EBCA6Bu, 15);
  }
  void Set(uint32_t v) { SetIn(v, ClassOf(v)); }
  void SetIn(uint32_t v, uint32_t c) {
    const uint32_t m = Mix(v, seed_);
    words_.data()[((m >> shift_) & mask_[c]) + base_[c]] |=
        (uint32_t{1} << (m & 31)) | (uint32_t{1} << ((m >> 5) & 31)) |
        (uint32_t{1} << ((m >> 10) & 31));
  }
  uint32_t shift_ = 32;
  uint32_t mask_[2] = {0, 0};
  uint32_t base_[2] = {0, 0};
  uint32_t seed_ = 0;
  uint32_t pairs_ = 0;
  HugeWords words_;
};

// A match already reported by this worker, so later probes on the same
// diagonal inside it are skipped.
struct Active {
  uint32_t form;
  int64_t diag;  // data position minus form position
  uint64_t end;  // one past the last matching data byte
};

}  // namespace

namespace internal {

struct ScanIndex {
  size_t w = 4;  // window bytes
  // Window bytes of the UTF-16LE table: 8 when F >= 11. Four bytes of
  // UTF-16LE are two characters, and every pair of hex digits recurs
  // dozens of times in a hex form's UTF-16LE: on binaries, whose 16-bit
  // tables look like such pairs, 4-byte keys sent 7 million probes per GiB
  // to verification. A fragment of F >= 11 bytes holding the probe window
  // [p, p + 4) also holds [p, p + 8) or [p - 4, p + 4), so Slow looks both
  // up.
  size_t w16 = 4;
  size_t stride = 13;  // probe spacing
  Filter filter;       // in front of all three tables
  Table tables[3];     // binary, ascii, utf16
  struct FormRef {
    uint32_t key;
    uint32_t form;
    const Form* f;
  };
  std::vector<FormRef> forms;
  size_t windows = 0;
  size_t max_form = 0;  // longest form: bounds any match
};

}  // namespace internal

using internal::ScanIndex;

namespace {

// True when some form holds `n` zero bytes in a row: then a file hole could
// hold a fragment and must be searched like data.
bool FormsHoldZeroRun(const std::vector<KeyForms>& keys, size_t n) {
  for (const KeyForms& k : keys) {
    for (const Form& f : k.forms()) {
      size_t run = 0;
      for (size_t i = 0; i < f.size(); ++i) {
        run = f.data()[i] == 0 ? run + 1 : 0;
        if (run >= n) return true;
      }
    }
  }
  return false;
}

}  // namespace

Scanner::Scanner(std::vector<KeyForms> keys, ScanOptions options)
    : keys_(std::move(keys)), options_(options) {}

Scanner::~Scanner() = default;

size_t Scanner::window_size() const { return index_->w; }
size_t Scanner::probe_stride() const { return index_->stride; }
size_t Scanner::indexed_windows() const { return index_->windows; }
size_t Scanner::index_bytes() const {
  return index_->filter.bytes() + index_->tables[0].bytes() +
         index_->tables[1].bytes() + index_->tables[2].bytes();
}

StatusOr<std::unique_ptr<Scanner>> Scanner::FromKeyFiles(
    const std::vector<std::string>& paths, ScanOptions options) {
  std::vector<KeyForms> keys;
  for (const std::string& path : paths) {
    StatusOr<KeyForms> k = KeyForms::FromFile(path);
    if (!k.ok()) return k.status();
    keys.push_back(std::move(k).value());
  }
  return Create(std::move(keys), options);
}

StatusOr<std::unique_ptr<Scanner>> Scanner::Create(std::vector<KeyForms> keys,
                                                   ScanOptions options) {
  if (keys.empty()) return InvalidArgumentError("scanner needs a key");
  if (options.min_fragment < 8 || options.min_fragment > (1u << 20)) {
    return InvalidArgumentError("min fragment must be between 8 and 1048576");
  }
  if (options.chunk_size < (1u << 16)) options.chunk_size = 1u << 16;
  if (options.read_size < (1u << 12)) options.read_size = 1u << 12;
  // A minimum fragment no private form of a key reaches makes the oracle
  // blind to that key: every dump would pass. Refused.
  OracleReach reach;
  for (const KeyForms& k : keys) {
    size_t longest_of_key = 0;
    for (const Form& form : k.forms()) {
      if (!form.is_private()) continue;
      ++reach.forms_total;
      longest_of_key = std::max(longest_of_key, form.size());
      if (form.size() < options.min_fragment) continue;
      ++reach.forms_indexed;
      reach.shortest = reach.shortest == 0
                           ? form.size()
                           : std::min(reach.shortest, form.size());
      reach.longest = std::max(reach.longest, form.size());
    }
    if (longest_of_key < options.min_fragment) {
      return InvalidArgumentError(
          "min fragment " + std::to_string(options.min_fragment) +
          " is longer than every private form of key " + k.key_id() +
          " (longest " + std::to_string(longest_of_key) +
          " bytes): the oracle could never find it");
    }
  }
  std::unique_ptr<Scanner> s(new Scanner(std::move(keys), options));
  s->reach_ = reach;
  auto idx = std::make_unique<ScanIndex>();
  const size_t f = options.min_fragment;
  // F >= 8, so a fragment always holds a whole window.
  idx->w = kWindow;
  idx->stride = f - idx->w + 1;
  idx->w16 = f >= 11 ? 8 : idx->w;

  // Window bytes are key bytes: they live only in MADV_DONTDUMP pages.
  SecretVector<Entry> per_table[3];
  for (uint32_t k = 0; k < s->keys_.size(); ++k) {
    const std::vector<Form>& forms = s->keys_[k].forms();
    for (uint32_t fi = 0; fi < forms.size(); ++fi) {
      const Form& form = forms[fi];
      const uint32_t gid = static_cast<uint32_t>(idx->forms.size());
      idx->forms.push_back({k, fi, &form});
      idx->max_form = std::max(idx->max_form, form.size());
      // A form shorter than F holds no fragment.
      if (form.size() < f) continue;
      const int t = static_cast<int>(form.encoding());
      const size_t w = t == 2 ? idx->w16 : idx->w;
      for (size_t o = 0; o + w <= form.size(); ++o) {
        uint64_t v = 0;
        std::memcpy(&v, form.data() + o, w);
        per_table[t].push_back({v, gid, static_cast<uint32_t>(o)});
      }
    }
  }
  // The filter holds every W-byte window of every form, whatever the
  // width of its table's keys.
  SecretVector<uint64_t> distinct;
  for (const ScanIndex::FormRef& ref : idx->forms) {
    const Form& form = *ref.f;
    if (form.size() < f) continue;
    for (size_t o = 0; o + idx->w <= form.size(); ++o) {
      uint64_t v = 0;
      std::memcpy(&v, form.data() + o, idx->w);
      distinct.push_back(v);
    }
  }
  std::sort(distinct.begin(), distinct.end());
  distinct.erase(std::unique(distinct.begin(), distinct.end()), distinct.end());
  SecretVector<uint64_t> binary;
  for (const Entry& e : per_table[0]) binary.push_back(e.value);
  SecretVector<uint64_t> keys8;
  if (idx->w16 != idx->w) {
    for (const Entry& e : per_table[2]) keys8.push_back(e.value);
  }
  const bool built = idx->filter.Build(distinct, binary, keys8);
  OPENSSL_cleanse(binary.data(), binary.size() * sizeof(uint64_t));
  OPENSSL_cleanse(keys8.data(), keys8.size() * sizeof(uint64_t));
  OPENSSL_cleanse(distinct.data(), distinct.size() * sizeof(uint64_t));
  if (!built) return ResourceExhaustedError("no memory for scanner filter");
  for (int t = 0; t < 3; ++t) {
    idx->windows += per_table[t].size();
    // About two distinct values per bucket; grow on overflow.
    size_t distinct = per_table[t].size();
    int bits = 4;
    while ((size_t{1} << bits) * 2 < distinct && bits < 24) ++bits;
    while (!idx->tables[t].Build(per_table[t], bits)) {
      if (++bits > 26) return InternalError("scanner index overflow");
    }
    // Window bytes are key bytes.
    OPENSSL_cleanse(per_table[t].data(), per_table[t].size() * sizeof(Entry));
    SecretVector<Entry>().swap(per_table[t]);
  }
  s->index_ = std::move(idx);
  s->holes_hold_nothing_ = !FormsHoldZeroRun(s->keys_, options.min_fragment);
  const std::vector<ProbePath> paths = AvailableProbePaths();
  if (options.probe_path == ProbePath::kAuto) {
    s->path_ = paths.back();
  } else if (std::find(paths.begin(), paths.end(), options.probe_path) !=
             paths.end()) {
    s->path_ = options.probe_path;
  } else {
    return InvalidArgumentError(std::string("this CPU cannot run the ") +
                                ProbePathName(options.probe_path) +
                                " probe loop");
  }
  return s;
}

std::vector<ProbePath> Scanner::AvailableProbePaths() {
  std::vector<ProbePath> paths = {ProbePath::kGeneric};
  __builtin_cpu_init();
  if (__builtin_cpu_supports("bmi2")) paths.push_back(ProbePath::kBmi2);
  // The vector loop also runs BMI2 code for its tail.
  if (__builtin_cpu_supports("bmi2") && __builtin_cpu_supports("avx512f") &&
      __builtin_cpu_supports("avx512bw") &&
      __builtin_cpu_supports("avx512vbmi")) {
    paths.push_back(ProbePath::kAvx512);
  }
  return paths;
}

namespace {

struct Worker {
  const ScanIndex* idx;  // NOLINT: borrowed
  const uint8_t* data;
  size_t size;
  uint64_t base;
  size_t min_fragment;
  bool report_anchors;
  ProbePath path;
  std::vector<Finding>* out;
  std::vector<Active> active;

  void Verify(size_t p, uint64_t v, const Table& t, size_t w);
  void Slow(size_t p, uint64_t v);
  void Probe(size_t begin, size_t end);
};

}  // namespace

// Out of line from the probe loop: runs only on a fingerprint hit.
__attribute__((noinline)) void Worker::Verify(size_t p, uint64_t v,
                                              const Table& t, size_t w) {
  const auto [lo, hi] = t.Lookup(v);
  for (const Entry* e = lo; e < hi; ++e) {
    const int64_t diag = static_cast<int64_t>(p) - e->offset;
    bool seen = false;
    for (const Active& a : active) {
      if (a.form == e->form && a.diag == diag && a.end >= p + w) {
        seen = true;
        break;
      }
    }
    if (seen) continue;
    const auto& ref = idx->forms[e->form];
    const Form& form = *ref.f;
    const uint8_t* fd = form.data();
    // Extend left, then right, to the maximal match.
    size_t l = 0;
    while (l < e->offset && l < p && data[p - 1 - l] == fd[e->offset - 1 - l]) {
      ++l;
    }
    size_t r = 0;
    const size_t fmax = form.size() - e->offset - w;
    const size_t dmax = size - p - w;
    const uint8_t* dr = data + p + w;
    const uint8_t* fr = fd + e->offset + w;
    const size_t rmax = std::min(fmax, dmax);
    while (r < rmax && dr[r] == fr[r]) ++r;
    const size_t start = p - l;
    const size_t len = l + w + r;
    // Short matches are not remembered: they are cheap to meet again, and
    // in real data one common window can start thousands of them, which
    // would make this list long and every verification slow.
    if (len < min_fragment) continue;
    active.push_back({e->form, diag, start + len});
    const size_t fo = e->offset - l;
    const size_t secret = form.SecretBytesIn(fo, fo + len);
    FindingKind kind;
    if (secret >= min_fragment) {
      kind = FindingKind::kLeak;
    } else if (secret + form.PublicBytesIn(fo, fo + len) >= min_fragment) {
      if (!report_anchors) continue;
      kind = FindingKind::kAnchor;
    } else {
      continue;  // encoding scaffolding only
    }
    Finding fnd;
    fnd.kind = kind;
    fnd.file_offset = base + start;
    fnd.length = len;
    fnd.key_index = ref.key;
    fnd.form_index = ref.form;
    fnd.form_offset = fo;
    fnd.secret_bytes = secret;
    out->push_back(std::move(fnd));
  }
}

// A probe that passed the filter: the tables' fingerprint buckets, then
// the exact windows.
void Worker::Slow(size_t p, uint64_t v) {
  const size_t w = idx->w;
  const Filter& fl = idx->filter;
  const Table& bin = idx->tables[0];
  // Every binary-form window is in the filter's binary half, L1-resident,
  // so most text-looking probes skip the binary table's buckets.
  if (fl.TestIn(static_cast<uint32_t>(v), 0) && bin.MayContain(v)) {
    Verify(p, v, bin, w);
  }
  if ((v & kHighBits) == 0) {
    // Text-looking bytes: UTF-16LE (every other byte zero) or ASCII.
    if ((v & kOddBytes) == 0 || (v & kEvenBytes) == 0) {
      const Table& t = idx->tables[2];
      const size_t w16 = idx->w16;
      if (t.empty()) {
        // No UTF-16LE form.
      } else if (w16 == w) {
        if (t.MayContain(v)) Verify(p, v, t, w);
      } else {
        uint64_t v16;
        if (p + w16 <= size) {
          std::memcpy(&v16, data + p, 8);
          if (fl.Test8(v16) && t.MayContain(v16)) Verify(p, v16, t, w16);
        }
        if (p >= w16 - w) {
          std::memcpy(&v16, data + p - (w16 - w), 8);
          if (fl.Test8(v16) && t.MayContain(v16)) {
            Verify(p - (w16 - w), v16, t, w16);
          }
        }
      }
    } else {
      const Table& t = idx->tables[1];
      if (!t.empty() && t.MayContain(v)) Verify(p, v, t, w);
    }
  }
  if (active.size() > 64) {
    std::erase_if(active, [p](const Active& a) { return a.end <= p; });
  }
}

// The scalar hot loop, compiled three times: for any x86-64, with BMI2
// (shifts by a register without the CL dance), and inside the AVX-512 loop
// for its last probes. Locals only; four probes per branch. A probe leaves
// the loop only when the filter passes it. The window is the kWindow (4)
// bytes at the probe.
__attribute__((always_inline)) inline void ProbeLoop(Worker* wk, size_t begin,
                                                     size_t end) {
  const ScanIndex* idx = wk->idx;
  const size_t stride = idx->stride;
  const uint32_t* words = idx->filter.words();
  const uint32_t shift = idx->filter.shift();
  const uint32_t mask_bin = idx->filter.mask(0);
  const uint32_t mask_text = idx->filter.mask(1);
  const uint32_t* text_words = words + idx->filter.base(1);
  const uint32_t seed = idx->filter.seed();
  const uint32_t pairs = idx->filter.pairs();
  const uint8_t* d = wk->data;
  auto load = [&](size_t at) {
    uint32_t v;
    std::memcpy(&v, d + at, 4);
    return v;
  };
  auto flag = [&](uint32_t v) -> uint32_t {
    // Filter::Test, with the class picked by conditional moves.
    const bool text = Filter::ClassOf(v, pairs) != 0;
    const uint32_t* base = text ? text_words : words;
    const uint32_t m = Filter::Mix(v, seed);
    const uint32_t w = base[(m >> shift) & (text ? mask_text : mask_bin)];
    return (w >> (m & 31)) & (w >> ((m >> 5) & 31)) & (w >> ((m >> 10) & 31)) &
           1;
  };
  size_t p = begin;
  for (; p + 3 * stride < end; p += 4 * stride) {
    const uint32_t v0 = load(p);
    const uint32_t v1 = load(p + stride);
    const uint32_t v2 = load(p + 2 * stride);
    const uint32_t v3 = load(p + 3 * stride);
    const uint32_t f0 = flag(v0);
    const uint32_t f1 = flag(v1);
    const uint32_t f2 = flag(v2);
    const uint32_t f3 = flag(v3);
    if (f0 | f1 | f2 | f3) [[unlikely]] {
      if (f0) wk->Slow(p, v0);
      if (f1) wk->Slow(p + stride, v1);
      if (f2) wk->Slow(p + 2 * stride, v2);
      if (f3) wk->Slow(p + 3 * stride, v3);
    }
  }
  for (; p < end; p += stride) {
    const uint32_t v = load(p);
    if (flag(v)) wk->Slow(p, v);
  }
}

__attribute__((target("bmi2"), noinline)) void ProbeLoopBmi2(Worker* wk,
                                                             size_t begin,
                                                             size_t end) {
  ProbeLoop(wk, begin, end);
}

__attribute__((noinline)) void ProbeLoopGeneric(Worker* wk, size_t begin,
                                                size_t end) {
  ProbeLoop(wk, begin, end);
}

#define SIGRACE_AVX512 "avx512f,avx512bw,avx512vbmi,bmi2"

// The constants of the vector loop.
struct Avx512Consts {
  __m512i perm;  // window k byte j <- byte (k mod 8) * S + j of its half
  __m512i offs;  // k * S, for the data gather
  __m512i seed;
  __m512i mul;
  __m512i high;   // kHighBits32
  __m512i low;    // ~kHighBits32
  __m512i pairs;  // Filter::pairs()
  __m128i sh_word;
  __m512i mask_bin, mask_text, text_base;
  __m512i next, prev;  // k * S + 4 and k * S - 4, for Avx512Utf16
};

// The sixteen windows at p, p + S, ..., p + 15S, one per 32-bit lane.
// kPermute: windows 0-7 come from the 128 bytes at p and windows 8-15 from
// the 128 bytes at p + 8S, one byte permute each (7S + 4 <= 128).
template <bool kPermute>
__attribute__((target(SIGRACE_AVX512), always_inline)) inline __m512i
Avx512Windows(const Avx512Consts& c, const uint8_t* at, size_t half) {
  if constexpr (kPermute) {
    const __m512i lo = _mm512_permutex2var_epi8(_mm512_loadu_si512(at), c.perm,
                                                _mm512_loadu_si512(at + 64));
    const __m512i hi =
        _mm512_permutex2var_epi8(_mm512_loadu_si512(at + half), c.perm,
                                 _mm512_loadu_si512(at + half + 64));
    return _mm512_mask_blend_epi32(0xff00, lo, hi);
  } else {
    return _mm512_i32gather_epi32(c.offs, at, 1);
  }
}

// The three-bit test of Filter::TestIn on mixes m whose word indices are
// `at`, for the lanes in `lanes` (the others are not loaded).
__attribute__((target(SIGRACE_AVX512), always_inline)) inline __mmask16
Avx512Bits(const int* words, __mmask16 lanes, __m512i at, __m512i m) {
  const __m512i word =
      _mm512_mask_i32gather_epi32(_mm512_setzero_si512(), lanes, at, words, 4);
  // Rotates take their counts mod 32, as the scalar loop masks them.
  const __m512i t = _mm512_ternarylogic_epi32(
      _mm512_rorv_epi32(word, m),
      _mm512_rorv_epi32(word, _mm512_srli_epi32(m, 5)),
      _mm512_rorv_epi32(word, _mm512_srli_epi32(m, 10)), 0x80);
  return _mm512_mask_test_epi32_mask(lanes, t, _mm512_set1_epi32(1));
}

// Filter::Mix, sixteen at once.
__attribute__((target(SIGRACE_AVX512), always_inline)) inline __m512i Avx512Mix(
    const Avx512Consts& c, __m512i v) {
  const __m512i h = _mm512_mullo_epi32(_mm512_xor_si512(v, c.seed), c.mul);
  return _mm512_xor_si512(h, _mm512_srli_epi32(h, 16));
}

// Bit k set when window k passes the filter (Filter::Test, sixteen at
// once).
__attribute__((target(SIGRACE_AVX512), always_inline)) inline __mmask16
Avx512Flags(const Avx512Consts& c, const int* words, __m512i v) {
  // Filter::ClassOf, sixteen at once.
  const __m512i zero = _mm512_andnot_si512(_mm512_add_epi32(v, c.low), c.high);
  const __m512i pair = _mm512_ternarylogic_epi32(
      zero, _mm512_srli_epi32(zero, 8), c.pairs, 0x80);
  const __mmask16 text = _mm512_mask_testn_epi32_mask(
      _mm512_testn_epi32_mask(v, c.high), pair, pair);
  const __m512i m = Avx512Mix(c, v);
  const __m512i top = _mm512_srl_epi32(m, c.sh_word);
  const __m512i at =
      _mm512_mask_add_epi32(_mm512_and_si512(top, c.mask_bin), text,
                            _mm512_and_si512(top, c.mask_text), c.text_base);
  return Avx512Bits(words, 0xffff, at, m);
}

// Of the passing lanes `hit` of the windows `v` at `at`, drops the
// UTF-16LE-looking ones that Worker::Slow would drop with 8-byte keys:
// those whose window is in no binary form's half (Filter::TestIn(v, 0))
// and whose keys at p and p - 4 both fail Filter::Test8. Four bytes of
// UTF-16LE text are two characters, which nearly every pair of letters
// and digits passes, so without this such text left the loop at every
// probe. Needs 4 bytes before the first window and 8 from the last.
__attribute__((target(SIGRACE_AVX512), always_inline)) inline __mmask16
Avx512Utf16(const Avx512Consts& c, const int* words, const uint8_t* at,
            __m512i v, __mmask16 hit) {
  // Slow's test: no top bit set, and every odd or every even byte zero.
  const __mmask16 text = _mm512_testn_epi32_mask(v, c.high);
  const __mmask16 u16 =
      text & (_mm512_testn_epi32_mask(
                  v, _mm512_set1_epi32(static_cast<int>(0xff00ff00u))) |
              _mm512_testn_epi32_mask(v, _mm512_set1_epi32(0x00ff00ff)));
  const __mmask16 lanes = hit & u16;
  if (lanes == 0) return hit;
  const __m512i zero = _mm512_setzero_si512();
  // The binary half, whatever the window's class.
  const __m512i m0 = Avx512Mix(c, v);
  const __m512i at0 =
      _mm512_and_si512(_mm512_srl_epi32(m0, c.sh_word), c.mask_bin);
  const __mmask16 keep0 = Avx512Bits(words, lanes, at0, m0);
  // Filter::Fold8 of the keys [p, p + 8) and [p - 4, p + 4), then Mix.
  const __m512i mul8 = _mm512_set1_epi32(static_cast<int>(0x85EBCA6Bu));
  const __m512i next = _mm512_mask_i32gather_epi32(zero, lanes, c.next, at, 1);
  const __m512i prev = _mm512_mask_i32gather_epi32(zero, lanes, c.prev, at, 1);
  const __m512i fa =
      _mm512_xor_si512(v, _mm512_rol_epi32(_mm512_mullo_epi32(next, mul8), 15));
  const __m512i fb =
      _mm512_xor_si512(prev, _mm512_rol_epi32(_mm512_mullo_epi32(v, mul8), 15));
  const __m512i ma = Avx512Mix(c, fa);
  const __m512i mb = Avx512Mix(c, fb);
  const __m512i ata = _mm512_add_epi32(
      _mm512_and_si512(_mm512_srl_epi32(ma, c.sh_word), c.mask_text),
      c.text_base);
  const __m512i atb = _mm512_add_epi32(
      _mm512_and_si512(_mm512_srl_epi32(mb, c.sh_word), c.mask_text),
      c.text_base);
  const __mmask16 keep = keep0 | Avx512Bits(words, lanes, ata, ma) |
                         Avx512Bits(words, lanes, atb, mb);
  return (hit & ~lanes) | (lanes & keep);
}

__attribute__((target(SIGRACE_AVX512), noinline)) void Avx512Slow(
    Worker* wk, size_t at, size_t stride, __m512i v, __mmask16 hit) {
  alignas(64) uint32_t vs[16];
  _mm512_store_si512(vs, v);
  for (unsigned m = hit; m != 0; m &= m - 1) {
    const unsigned k = static_cast<unsigned>(__builtin_ctz(m));
    wk->Slow(at + k * stride, vs[k]);
  }
}

// Out of the loop, so that its registers stay the loop's: Avx512Utf16,
// then Avx512Slow on what is left.
__attribute__((target(SIGRACE_AVX512), noinline)) void Avx512Utf16Slow(
    Worker* wk, const Avx512Consts& c, const int* words, size_t at,
    size_t stride, __m512i v, __mmask16 hit) {
  hit = Avx512Utf16(c, words, wk->data + at, v, hit);
  if (hit != 0) Avx512Slow(wk, at, stride, v, hit);
}

// Sixteen probes per vector, the same hash and filter words as ProbeLoop:
// a probe leaves the vector loop exactly when the scalar filter would pass
// it, so the findings are the same. The windows come out of byte permutes
// while eight of them fit in 128 bytes (7S + 4 <= 128: F <= 20), else from a
// gather of the data; the sixteen filter words come from one gather (the
// filter is cache-resident). Probes the vector loop cannot take (the last
// ones before `end`, or too near the end of the data) go through the
// scalar loop.
// Its speed per lane width and window: docs/scanner.md.
template <bool kPermute>
__attribute__((target(SIGRACE_AVX512), noinline)) void ProbeLoopAvx512(
    Worker* wk, size_t begin, size_t end) {
  const ScanIndex* idx = wk->idx;
  const size_t stride = idx->stride;
  const int* words = reinterpret_cast<const int*>(idx->filter.words());
  const uint8_t* d = wk->data;
  alignas(64) uint8_t perm[64];
  alignas(64) int32_t offs[16];
  for (size_t i = 0; i < 64; ++i) {
    perm[i] = static_cast<uint8_t>(kPermute ? (i / 4 % 8) * stride + i % 4 : 0);
  }
  for (size_t k = 0; k < 16; ++k) offs[k] = static_cast<int32_t>(k * stride);
  Avx512Consts c;
  c.perm = _mm512_load_si512(perm);
  c.offs = _mm512_load_si512(offs);
  c.seed = _mm512_set1_epi32(static_cast<int>(idx->filter.seed()));
  c.mul = _mm512_set1_epi32(static_cast<int>(kBitMul));
  c.high = _mm512_set1_epi32(static_cast<int>(kHighBits32));
  c.low = _mm512_set1_epi32(static_cast<int>(~kHighBits32));
  c.pairs = _mm512_set1_epi32(static_cast<int>(idx->filter.pairs()));
  c.sh_word = _mm_cvtsi32_si128(static_cast<int>(idx->filter.shift()));
  c.mask_bin = _mm512_set1_epi32(static_cast<int>(idx->filter.mask(0)));
  c.mask_text = _mm512_set1_epi32(static_cast<int>(idx->filter.mask(1)));
  c.text_base = _mm512_set1_epi32(static_cast<int>(idx->filter.base(1)));
  c.next = _mm512_add_epi32(c.offs, _mm512_set1_epi32(4));
  c.prev = _mm512_sub_epi32(c.offs, _mm512_set1_epi32(4));
  // 8-byte UTF-16LE keys: the loop drops what Slow would (Avx512Utf16).
  const bool keys8 = idx->w16 == 8;
  const size_t half = 8 * stride;
  const size_t step = 16 * stride;
  // Bytes one vector reads from its first probe on.
  // (Avx512Utf16 reads up to 15S + 8.)
  const size_t reach =
      std::max(kPermute ? half + 128 : 15 * stride + 4, 15 * stride + 8);
  size_t p = begin;
  // kVectors vectors per iteration: the loop waits on its filter-word
  // gathers, so more of them in flight is faster (4 and 6 measured the
  // same; 2 and 8 slower).
  constexpr size_t kVectors = 4;
  if (wk->size >= reach + (kVectors - 1) * step) {
    // Last p whose kVectors vectors fit in the data.
    const size_t data_last = wk->size - reach - (kVectors - 1) * step;
    while (p + (kVectors - 1) * step + 15 * stride < end && p <= data_last) {
      __m512i v[kVectors];
      __mmask16 h[kVectors];
      unsigned any = 0;
#pragma clang loop unroll(full)
      for (size_t i = 0; i < kVectors; ++i) {
        v[i] = Avx512Windows<kPermute>(c, d + p + i * step, half);
      }
#pragma clang loop unroll(full)
      for (size_t i = 0; i < kVectors; ++i) {
        h[i] = Avx512Flags(c, words, v[i]);
        any |= h[i];
      }
      if (any != 0) [[unlikely]] {
        for (size_t i = 0; i < kVectors; ++i) {
          if (h[i] == 0) continue;
          const size_t at = p + i * step;
          if (keys8 && at >= 4) {
            Avx512Utf16Slow(wk, c, words, at, stride, v[i], h[i]);
          } else {
            Avx512Slow(wk, at, stride, v[i], h[i]);
          }
        }
      }
      p += kVectors * step;
    }
  }
  if (p < end) ProbeLoop(wk, p, end);
}

#undef SIGRACE_AVX512

void Worker::Probe(size_t begin, size_t end) {
  // Probes at begin, begin + stride, ... while the window fits in the data
  // and the probe starts before `end`. The last probes of the data go
  // through the careful tail, which loads only the window's bytes.
  const size_t w = idx->w;
  const size_t stride = idx->stride;
  if (size < w) return;
  const size_t last = std::min(end, size - w + 1);  // exclusive
  size_t p = begin;
  if (size >= 8 && p < size - 8 + 1) {
    const size_t fast_end = std::min(last, size - 8 + 1);
    const bool permute = 7 * stride + 4 <= 128;
    switch (path) {
      case ProbePath::kAvx512:
        permute ? ProbeLoopAvx512<true>(this, p, fast_end)
                : ProbeLoopAvx512<false>(this, p, fast_end);
        break;
      case ProbePath::kBmi2:
        ProbeLoopBmi2(this, p, fast_end);
        break;
      default:
        ProbeLoopGeneric(this, p, fast_end);
        break;
    }
    // Continue on the probe grid after the fast part.
    if (fast_end > p) p += (fast_end - p + stride - 1) / stride * stride;
  }
  for (; p < last; p += stride) {
    uint64_t v = 0;
    std::memcpy(&v, data + p, w);
    Slow(p, v);
  }
}

namespace {

int ThreadCount(int requested, size_t nchunks) {
  int threads = requested;
  if (threads <= 0) {
    threads =
        static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  }
  return static_cast<int>(
      std::min<size_t>(threads, std::max<size_t>(1, nchunks)));
}

// Runs body(thread_index) on `threads` threads, the caller being thread 0.
template <typename Body>
void RunPool(int threads, Body body) {
  if (threads <= 1) {
    body(0);
    return;
  }
  std::vector<std::thread> pool;
  pool.reserve(threads - 1);
  for (int t = 1; t < threads; ++t) pool.emplace_back(body, t);
  body(0);
  for (std::thread& th : pool) th.join();
}

}  // namespace

std::vector<Finding> Scanner::Scan(const uint8_t* data, size_t size,
                                   uint64_t base_offset) const {
  const ScanIndex& idx = *index_;
  // Chunk starts are multiples of the stride, so the probe grid is the same
  // however the data is cut.
  const size_t chunk = options_.chunk_size / idx.stride * idx.stride;
  const size_t nchunks = size == 0 ? 0 : (size + chunk - 1) / chunk;
  const int threads = ThreadCount(options_.threads, nchunks);
  std::vector<std::vector<Finding>> results(threads);
  std::atomic<size_t> next{0};
  RunPool(threads, [&](int t) {
    Worker wk{&idx,
              data,
              size,
              base_offset,
              options_.min_fragment,
              options_.report_anchors,
              path_,
              &results[t],
              {}};
    for (size_t c = next.fetch_add(1, std::memory_order_relaxed); c < nchunks;
         c = next.fetch_add(1, std::memory_order_relaxed)) {
      wk.active.clear();
      const size_t b = c * chunk;
      wk.Probe(b, std::min(size, b + chunk));
    }
  });
  return Merge(std::move(results));
}

namespace {

// A per-thread read buffer on a transparent huge page. ScanFile reads
// rather than maps: a fresh mapping of a just-written dump costs more than
// the copy (docs/scanner.md has the figures), and a mapping turns a file
// shrinking under the scan into SIGBUS where a read returns a short count.
class ReadBuffer {
 public:
  explicit ReadBuffer(size_t size) : size_((size + kHuge - 1) / kHuge * kHuge) {
    void* p = ::mmap(nullptr, size_, PROT_READ | PROT_WRITE,
                     MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) {
      size_ = 0;
      return;
    }
    ::madvise(p, size_, MADV_HUGEPAGE);
    // Holds dump bytes, key fragments among them.
    ::madvise(p, size_, MADV_DONTDUMP);
    data_ = static_cast<uint8_t*>(p);
  }
  ~ReadBuffer() {
    if (data_ != nullptr) ::munmap(data_, size_);
  }
  ReadBuffer(const ReadBuffer&) = delete;
  ReadBuffer& operator=(const ReadBuffer&) = delete;
  uint8_t* data() { return data_; }

 private:
  static constexpr size_t kHuge = size_t{2} << 20;
  uint8_t* data_ = nullptr;
  size_t size_;
};

// The first error any worker met; later ones are dropped.
class FirstError {
 public:
  void Set(Status s) {
    MutexLock l(&mu_);
    if (status_.ok()) status_ = std::move(s);
  }
  Status Get() {
    MutexLock l(&mu_);
    return status_;
  }

 private:
  Mutex mu_;
  Status status_ GUARDED_BY(mu_);
};

// Reads [offset, offset + n) of the file (of its copy `image` when there
// is one) into `to`; a short read means the file shrank while scanned.
Status ReadFully(int fd, const uint8_t* image, uint8_t* to, size_t n,
                 uint64_t offset, const std::string& path) {
  if (image != nullptr) {
    std::memcpy(to, image + offset, n);
    return Status::Ok();
  }
  size_t got = 0;
  while (got < n) {
    const ssize_t r =
        ::pread(fd, to + got, n - got, static_cast<off_t>(offset + got));
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) return ErrnoError(path + ": read", errno);
    if (r == 0) return DataLossError(path + ": file shrank while scanned");
    got += static_cast<size_t>(r);
  }
  return Status::Ok();
}

}  // namespace

StatusOr<std::vector<Finding>> Scanner::ScanFd(
    int fd, const uint8_t* image, uint64_t size,
    const std::vector<FileExtent>* extents, const std::string& path,
    uint64_t* bytes_searched) const {
  const ScanIndex& idx = *index_;
  // A maximal match is never longer than the longest form, so a match
  // through a probe lies within `margin` bytes either side of it.
  const size_t margin = (idx.max_form + 63) / 64 * 64;
  // Work items (chunk) are handed to threads; each is read `step` bytes at
  // a time into a small buffer that slides along it, keeping `margin`
  // bytes of what it held on either side of the probes. The copy out of
  // the page cache then lands in the core's L2 and the probe loop reads it
  // there: with 16 MiB reads the copy and the probes both went to DRAM.
  // Both are multiples of the stride, so every probe stays on the file's
  // probe grid.
  const size_t stride = idx.stride;
  const size_t chunk =
      std::max<size_t>(options_.chunk_size / stride, 1) * stride;
  const size_t step = std::min(
      chunk, std::max<size_t>(options_.read_size / stride, 1) * stride);
  // What to search: each data extent widened by `margin` on either side
  // (a match holding a byte of data lies within it; one wholly in a hole
  // is impossible, see FormsHoldZeroRun), from a probe-grid point; ranges
  // less than a chunk apart are joined, so a gap of zeros that small is
  // read rather than cut into more work items. Without extents: all.
  struct Range {
    uint64_t begin, end;
  };
  std::vector<Range> ranges;
  if (extents == nullptr) {
    if (size > 0) ranges.push_back({0, size});
  } else {
    for (const FileExtent& x : *extents) {
      if (x.length == 0 || x.offset >= size) continue;
      const uint64_t from = x.offset > margin ? x.offset - margin : 0;
      const Range r{from / stride * stride,
                    std::min<uint64_t>(size, x.offset + x.length + margin)};
      if (!ranges.empty() && r.begin <= ranges.back().end + chunk) {
        ranges.back().end = std::max(ranges.back().end, r.end);
      } else {
        ranges.push_back(r);
      }
    }
  }
  // Work items: pieces of `chunk` bytes of each range, on the probe grid.
  struct Piece {
    uint64_t begin, end;
  };
  std::vector<Piece> pieces;
  uint64_t searched = 0;
  for (const Range& r : ranges) {
    searched += r.end - r.begin;
    for (uint64_t b = r.begin; b < r.end; b += chunk) {
      pieces.push_back({b, std::min<uint64_t>(r.end, b + chunk)});
    }
  }
  if (bytes_searched != nullptr) *bytes_searched = searched;
  const uint64_t nchunks = pieces.size();
  const int threads = ThreadCount(options_.threads, nchunks);
  std::vector<std::vector<Finding>> results(threads);
  std::atomic<uint64_t> next{0};
  FirstError error;
  RunPool(threads, [&](int t) {
    ReadBuffer buf(2 * margin + step);
    if (buf.data() == nullptr) {
      error.Set(ResourceExhaustedError(path + ": no memory for read buffer"));
      return;
    }
    Worker wk{&idx,
              buf.data(),
              0,
              0,
              options_.min_fragment,
              options_.report_anchors,
              path_,
              &results[t],
              {}};
    for (uint64_t c = next.fetch_add(1, std::memory_order_relaxed); c < nchunks;
         c = next.fetch_add(1, std::memory_order_relaxed)) {
      const uint64_t b = pieces[c].begin;
      const uint64_t e = pieces[c].end;
      // The buffer holds file bytes [lo, hi).
      uint64_t lo = b >= margin ? b - margin : 0;
      uint64_t hi = lo;
      wk.active.clear();
      for (uint64_t sb = b; sb < e; sb += step) {
        const uint64_t se = std::min<uint64_t>(e, sb + step);
        const uint64_t keep_from = sb >= margin ? sb - margin : 0;
        if (keep_from > lo) {
          // Slide: keep [keep_from, hi), the bytes a match through the next
          // probes can reach back into.
          const size_t shift = static_cast<size_t>(keep_from - lo);
          std::memmove(buf.data(), buf.data() + shift,
                       static_cast<size_t>(hi - keep_from));
          lo = keep_from;
          // Matches already reported keep their place in the slid buffer.
          std::erase_if(wk.active,
                        [shift](const Active& a) { return a.end <= shift; });
          for (Active& a : wk.active) {
            a.diag -= static_cast<int64_t>(shift);
            a.end -= shift;
          }
        }
        const uint64_t want = std::min<uint64_t>(size, se + margin);
        if (want > hi) {
          Status st = ReadFully(fd, image, buf.data() + (hi - lo),
                                static_cast<size_t>(want - hi), hi, path);
          if (!st.ok()) {
            error.Set(std::move(st));
            return;
          }
          hi = want;
        }
        wk.size = static_cast<size_t>(hi - lo);
        wk.base = lo;
        wk.Probe(static_cast<size_t>(sb - lo), static_cast<size_t>(se - lo));
      }
    }
  });
  Status st = error.Get();
  if (!st.ok()) return st;
  return Merge(std::move(results));
}

std::vector<Finding> Scanner::Merge(
    std::vector<std::vector<Finding>> results) const {
  std::vector<Finding> all;
  for (auto& r : results) {
    for (Finding& f : r) all.push_back(std::move(f));
  }
  // One finding per distinct byte range: the same maximal match seen from
  // two chunks, or by two forms holding the same bytes (the first form in
  // table order names it).
  std::sort(all.begin(), all.end(), [](const Finding& a, const Finding& b) {
    if (a.file_offset != b.file_offset) return a.file_offset < b.file_offset;
    if (a.length != b.length) return a.length > b.length;
    if (a.key_index != b.key_index) return a.key_index < b.key_index;
    if (a.form_index != b.form_index) return a.form_index < b.form_index;
    return a.form_offset < b.form_offset;
  });
  std::vector<Finding> out;
  for (size_t i = 0; i < all.size(); ++i) {
    if (!out.empty() && out.back().file_offset == all[i].file_offset &&
        out.back().length == all[i].length) {
      const Finding& prev = out.back();
      if (prev.key_index != all[i].key_index ||
          prev.form_index != all[i].form_index) {
        // Count each other form once even if seen from several chunks.
        bool dup = i > 0 && all[i - 1].key_index == all[i].key_index &&
                   all[i - 1].form_index == all[i].form_index &&
                   all[i - 1].file_offset == all[i].file_offset &&
                   all[i - 1].length == all[i].length;
        if (!dup) ++out.back().other_forms;
      }
      // A leak outranks an anchor for the same bytes.
      if (all[i].kind == FindingKind::kLeak &&
          out.back().kind != FindingKind::kLeak) {
        const uint32_t others = out.back().other_forms;
        out.back() = std::move(all[i]);
        out.back().other_forms = others;
      }
      continue;
    }
    out.push_back(std::move(all[i]));
  }
  // A match lying inside a longer one (a PKCS#1 DER inside the PKCS#8
  // around it, one base64 line inside a whole PEM) is the same copy of the
  // key: it is folded into the longer finding.
  std::vector<Finding> kept;
  uint64_t cover_end = 0;
  size_t cover = 0;
  for (Finding& f : out) {
    const uint64_t end = f.file_offset + f.length;
    if (!kept.empty() && end <= cover_end &&
        (kept[cover].kind == FindingKind::kLeak ||
         kept[cover].kind == f.kind)) {
      kept[cover].other_forms += 1 + f.other_forms;
      continue;
    }
    kept.push_back(std::move(f));
    if (end > cover_end) {
      cover_end = end;
      cover = kept.size() - 1;
    }
  }
  out = std::move(kept);
  for (Finding& f : out) {
    const Form& form = keys_[f.key_index].forms()[f.form_index];
    f.form = form.name();
    f.part = std::string(form.PartIn(f.form_offset, f.form_offset + f.length));
  }
  return out;
}

namespace {

// An open regular file and its size; its bytes are read, never mapped (a
// mapping turns a file that shrinks under the scan into SIGBUS).
class OpenedFile {
 public:
  static StatusOr<std::unique_ptr<OpenedFile>> Open(const std::string& path) {
    // O_NONBLOCK: a FIFO without a writer is refused below, not waited on.
    const int fd = ::open(path.c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0) {
      if (errno == ENOENT) return NotFoundError(path + ": no such file");
      return ErrnoError(path + ": open", errno);
    }
    struct stat st;
    if (::fstat(fd, &st) != 0) {
      const int e = errno;
      ::close(fd);
      return ErrnoError(path + ": stat", e);
    }
    if (!S_ISREG(st.st_mode)) {
      ::close(fd);
      return InvalidArgumentError(path + ": not a regular file");
    }
    std::unique_ptr<OpenedFile> m(new OpenedFile);
    m->size_ = static_cast<uint64_t>(st.st_size);
    m->fd_ = fd;
    return m;
  }
  ~OpenedFile() {
    if (image_ != nullptr) ::munmap(image_, size_);
    if (fd_ >= 0) ::close(fd_);
  }
  int fd() const { return fd_; }
  uint64_t size() const { return size_; }
  // The file's bytes, read once (ReadFileImage): what is parsed, verified
  // and searched is this copy.
  Status ReadImage(const std::vector<FileExtent>* extents) {
    StatusOr<uint8_t*> d = ReadFileImage(fd_, size_, extents);
    if (!d.ok()) return d.status();
    image_ = *d;
    // Dump bytes, key fragments among them.
    ::madvise(image_, size_, MADV_DONTDUMP);
    return Status::Ok();
  }
  const uint8_t* image() const { return image_; }

 private:
  OpenedFile() = default;
  uint8_t* image_ = nullptr;
  uint64_t size_ = 0;
  int fd_ = -1;
};

// The first bytes of the file (fewer if it is shorter).
std::string ReadHead(int fd, size_t n) {
  std::string out(n, '\0');
  size_t got = 0;
  while (got < n) {
    const ssize_t r =
        ::pread(fd, out.data() + got, n - got, static_cast<off_t>(got));
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) break;
    got += static_cast<size_t>(r);
  }
  out.resize(got);
  return out;
}

std::string NoteTypeName(const NoteInfo& n) {
  if (n.owner == kSigraceNoteOwner) {
    switch (n.type) {
      case kNoteRedactions:
        return "SIGRACE redactions";
      case kNoteMeta:
        return "SIGRACE meta";
      case kNoteBacktrace:
        return "SIGRACE backtrace";
    }
    return "SIGRACE " + Hex(n.type);
  }
  switch (n.type) {
    case 1:
      return "NT_PRSTATUS";
    case 2:
      return "NT_FPREGSET";
    case 3:
      return "NT_PRPSINFO";
    case 6:
      return "NT_AUXV";
    case 0x202:
      return "NT_X86_XSTATE";
    case 0x53494749:
      return "NT_SIGINFO";
    case 0x46494c45:
      return "NT_FILE";
  }
  return n.owner + " " + Hex(n.type);
}

bool IsElfCore(const std::string& head) {
  const auto* d = reinterpret_cast<const uint8_t*>(head.data());
  return head.size() >= 18 && d[0] == 0x7f && d[1] == 'E' && d[2] == 'L' &&
         d[3] == 'F' && d[16] == 4 && d[17] == 0;  // e_type ET_CORE (LE)
}

// Why a file that is not an ELF core looks like a damaged one (a dump
// whose ELF magic or type was altered, or a sigrace dump whose header no
// longer parses), or "" when it looks like anything else (raw bytes, an
// ELF executable or library). `tail` is the file's last 48 bytes.
std::string DamagedCoreReason(const std::string& head,
                              const std::string& tail) {
  const auto* d = reinterpret_cast<const uint8_t*>(head.data());
  if (tail.size() == sizeof(SealTrailer) &&
      std::memcmp(tail.data(), kSealMagicV2, kSealMagicPrefixLen) == 0) {
    return "it ends in a sigrace seal trailer but is not an ELF core";
  }
  if (head.size() < 18) return "";
  const uint16_t type = static_cast<uint16_t>(d[16] | (d[17] << 8));
  const bool magic = d[0] == 0x7f && d[1] == 'E' && d[2] == 'L' && d[3] == 'F';
  if (magic) {
    // Relocatable, executable, shared object: a binary, searched as bytes.
    if (type == 1 || type == 2 || type == 3) return "";
    return "ELF magic with type " + std::to_string(type) +
           " (not a core, an executable or a library)";
  }
  const int magic_bytes =
      (d[0] == 0x7f) + (d[1] == 'E') + (d[2] == 'L') + (d[3] == 'F');
  // An ELF64 little-endian version-1 ident, or the core type, around a
  // damaged magic.
  const bool ident = d[4] == 2 && d[5] == 1 && d[6] == 1;
  if (magic_bytes >= 2 && (ident || type == 4)) {
    return "a damaged ELF magic around an ELF core header";
  }
  if (magic_bytes >= 1 && ident && type == 4) {
    return "an ELF core header with a damaged magic";
  }
  return "";
}

std::string ReadTail(int fd, uint64_t size, size_t n) {
  if (size < n) return "";
  std::string out(n, '\0');
  size_t got = 0;
  while (got < n) {
    const ssize_t r = ::pread(fd, out.data() + got, n - got,
                              static_cast<off_t>(size - n + got));
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) return "";
    got += static_cast<size_t>(r);
  }
  return out;
}

}  // namespace

namespace {

// A claimed span and its record, in file-offset order.
struct ClaimedSpan {
  MarkerSpan span;
  size_t record = 0;
};

// Where in the file a finding lies, by name (no redaction logic).
void AttributeRegion(const CoreReader& reader, Finding* f) {
  const FileLocation loc = reader.Locate(f->file_offset);
  switch (loc.kind) {
    case FileLocation::Kind::kElfHeader:
      f->region = "elf header";
      break;
    case FileLocation::Kind::kProgramHeaders:
      f->region = "program headers";
      break;
    case FileLocation::Kind::kTrailer:
      f->region = "seal trailer";
      break;
    case FileLocation::Kind::kOther:
      f->region = "unclaimed file bytes";
      break;
    case FileLocation::Kind::kNote: {
      const NoteInfo& n = reader.notes()[loc.note_index];
      f->region = "note " + NoteTypeName(n);
      if (n.thread_index >= 0) {
        f->tid = reader.threads()[n.thread_index].tid;
        f->region += " tid " + std::to_string(f->tid);
      }
      break;
    }
    case FileLocation::Kind::kLoad: {
      const Mapping& m = reader.mappings()[loc.mapping_index];
      f->has_address = true;
      f->address = loc.vaddr;
      f->region = "load " + Hex(m.vaddr) + "-" + Hex(m.end()) + " " +
                  m.Perms() + (m.name.empty() ? "" : " " + m.name);
      break;
    }
  }
}

}  // namespace

void Scanner::VerifyAndAttribute(const CoreReader& reader,
                                 ScanReport* report) const {
  // Every record, byte for byte: what it claims is the marker, is it?
  const std::vector<RedactionClaim> claims = RedactionClaims(reader);
  std::vector<ClaimedSpan> spans;
  report->redactions_recorded = claims.size();
  for (const RedactionClaim& c : claims) {
    const Redaction& r = reader.redactions()[c.record];
    UnappliedRedaction u;
    u.record = c.record;
    u.kind = r.kind;
    u.label = r.label;
    u.tid = r.tid;
    u.address = r.vaddr;
    u.length = r.len;
    for (const MarkerSpan& s : c.spans) {
      uint64_t first = 0;
      const uint64_t bad = NonMarkerBytes(reader.data(), s, &first);
      if (bad > 0 && u.non_marker_bytes == 0) u.first_file_offset = first;
      u.checked_bytes += s.length;
      u.non_marker_bytes += bad;
      spans.push_back({s, c.record});
    }
    report->redacted_bytes_verified += u.checked_bytes - u.non_marker_bytes;
    report->bytes_not_applied += u.non_marker_bytes;
    if (u.checked_bytes == 0) {
      ++report->redactions_unchecked;
    } else if (u.non_marker_bytes == 0) {
      ++report->redactions_verified;
    } else {
      ++report->redactions_not_applied;
      report->unapplied.push_back(std::move(u));
    }
  }
  std::sort(spans.begin(), spans.end(),
            [](const ClaimedSpan& a, const ClaimedSpan& b) {
              return a.span.offset < b.span.offset;
            });
  std::vector<uint64_t> max_end;  // largest span end up to each span
  for (const ClaimedSpan& c : spans) {
    max_end.push_back(std::max(max_end.empty() ? 0 : max_end.back(),
                               c.span.offset + c.span.length));
  }

  // Each finding: where it lies, and which record claims the marker over
  // it. A record never makes a leak less than a leak; a leak where a
  // record claims the marker is named for it.
  for (Finding& f : report->findings) {
    AttributeRegion(reader, &f);
    const uint64_t f_end = f.file_offset + f.length;
    size_t k = static_cast<size_t>(
        std::upper_bound(max_end.begin(), max_end.end(), f.file_offset) -
        max_end.begin());
    const ClaimedSpan* first = nullptr;
    const ClaimedSpan* unapplied = nullptr;
    uint64_t covered = 0, covered_to = f.file_offset;
    for (; k < spans.size() && spans[k].span.offset < f_end; ++k) {
      const MarkerSpan& s = spans[k].span;
      const uint64_t b = std::max(s.offset, f.file_offset);
      const uint64_t e = std::min(s.offset + s.length, f_end);
      if (b >= e) continue;
      if (first == nullptr) first = &spans[k];
      const MarkerSpan part{b, e - b,
                            static_cast<uint32_t>((s.phase + (b - s.offset)) %
                                                  kRedactionMarkerLen)};
      if (unapplied == nullptr && NonMarkerBytes(reader.data(), part) > 0) {
        unapplied = &spans[k];
      }
      if (e > covered_to) {
        covered += e - std::max(b, covered_to);
        covered_to = e;
      }
    }
    const ClaimedSpan* named = unapplied != nullptr ? unapplied : first;
    if (named == nullptr) continue;
    f.redaction = reader.redactions()[named->record].label;
    if (covered < f.length) f.redaction += " (partial)";
    if (unapplied != nullptr && IsLeak(f.kind)) {
      f.kind = FindingKind::kRedactionNotApplied;
    }
  }
}

StatusOr<ScanReport> Scanner::ScanFile(const std::string& path) const {
  StatusOr<std::unique_ptr<OpenedFile>> file = OpenedFile::Open(path);
  if (!file.ok()) return file.status();
  if (SIGRACE_FAILPOINT(kFpScanFile)) {
    return InternalError(path + ": failpoint scan.before_file");
  }
  const uint64_t size = (*file)->size();
  ScanReport report;
  report.path = path;
  report.file_size = size;
  std::unique_ptr<CoreReader> reader;
  // Dumps are sparse: only the data extents are read, by the checksum and
  // by the search. If the file system cannot say, all of it is.
  const StatusOr<std::vector<FileExtent>> extents =
      DataExtents((*file)->fd(), size);
  const std::string head = ReadHead((*file)->fd(), 64);
  if (!IsElfCore(head) && !options_.raw_damaged) {
    const std::string why = DamagedCoreReason(
        head, ReadTail((*file)->fd(), size, sizeof(SealTrailer)));
    if (!why.empty()) {
      return DataLossError(path + ": looks like a damaged core dump (" + why +
                           "); not scanned as raw bytes (--raw to scan it "
                           "anyway)");
    }
  }
  if (IsElfCore(head)) {
    // An ELF core is parsed, verified and searched in one copy of its
    // bytes: a file that changes under the scan cannot show the search
    // other bytes than the reader saw, nor shrink into a SIGBUS.
    Status read = (*file)->ReadImage(extents.ok() ? &*extents : nullptr);
    if (!read.ok()) return DataLossError(path + ": " + read.message());
    const uint8_t* data = (*file)->image();
    // The checksum is checked below, only for sigrace dumps: a kernel or
    // gcore core has no seal to check.
    ReaderOptions ro;
    ro.verify_checksum = false;
    StatusOr<std::unique_ptr<CoreReader>> r =
        CoreReader::FromBuffer(data, size, ro);
    if (!r.ok()) {
      return DataLossError(path + ": " + r.status().message());
    }
    reader = std::move(r).value();
    const bool sigrace = reader->has_sigrace_notes() ||
                         reader->seal().state != SealState::kUnsealed;
    if (sigrace) {
      ReaderOptions strict;
      strict.require_seal = true;
      // The checksum folds the holes in without reading them.
      if (extents.ok()) strict.data_extents = &*extents;
      StatusOr<std::unique_ptr<CoreReader>> sealed =
          CoreReader::FromBuffer(data, size, strict);
      if (!sealed.ok()) {
        return DataLossError(path + ": torn or unsealed sigrace dump (" +
                             sealed.status().message() +
                             "); it is never scanned as clean");
      }
      reader = std::move(sealed).value();
      report.file_kind = FileKind::kSigraceDump;
    } else {
      report.file_kind = FileKind::kElfCore;
    }
  }
  const auto t0 = std::chrono::steady_clock::now();
  const bool skip_holes = extents.ok() && holes_hold_nothing_;
  StatusOr<std::vector<Finding>> found =
      ScanFd((*file)->fd(), (*file)->image(), size,
             skip_holes ? &*extents : nullptr, path, &report.bytes_searched);
  if (!found.ok()) return found.status();
  report.findings = std::move(found).value();
  report.seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - t0)
          .count();
  if (reader) VerifyAndAttribute(*reader, &report);
  for (const Finding& f : report.findings) {
    if (IsLeak(f.kind)) ++report.leaks;
    if (f.kind == FindingKind::kRedactionNotApplied) ++report.not_applied;
    if (f.kind == FindingKind::kAnchor) ++report.anchors;
  }
  return report;
}

}  // namespace sigrace::crashdump
