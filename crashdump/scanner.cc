#include "crashdump/scanner.h"

#include <immintrin.h>
#include <openssl/crypto.h>
#include <fcntl.h>
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

#include "base/mutex.h"
#include "base/thread_annotations.h"
#include "crashdump/core_reader.h"

namespace sigrace::crashdump {

const char* FindingKindName(FindingKind kind) {
  switch (kind) {
    case FindingKind::kLeak:
      return "leak";
    case FindingKind::kRedacted:
      return "redacted";
    case FindingKind::kAnchor:
      return "anchor";
  }
  return "?";
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
constexpr uint64_t kBitMul = 0xD6E8FEB86659FD93ULL;
constexpr uint64_t kHighBits = 0x8080808080808080ULL;
constexpr uint64_t kOddBytes = 0xFF00FF00FF00FF00ULL;
constexpr uint64_t kEvenBytes = 0x00FF00FF00FF00FFULL;
constexpr int kSlots = 8;
// The widest window W. A narrower window means a wider stride
// (S = F - W + 1) and fewer probes; 5 bytes are still specific enough that
// real data rarely matches one (at 4, every pair of UTF-16 base64
// characters would). Measured on RSA-2048, F = 16: W 8 (S 9) to W 6
// (S 11) took the AVX-512 loop from 8.1 to 9.1 GiB/s on random data; W 5
// (S 12) then gained 7% on random and 10% on real data (/usr/lib files)
// over W 6, where the filter passed 25 and 19 probes per MiB (W 6: 29 and
// 26); W 4 passed 33 per MiB of real data and was slower than W 5.
constexpr size_t kMaxWindow = 5;

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

  bool Build(std::vector<Entry> entries, int bits) {
    bits_ = bits;
    shift_ = 64 - bits;
    const size_t nb = size_t{1} << bits;
    buckets_.assign(nb, Bucket{});
    std::sort(entries.begin(), entries.end(),
              [this](const Entry& a, const Entry& b) {
                const uint64_t ba = BucketOf(a.value), bb = BucketOf(b.value);
                if (ba != bb) return ba < bb;
                if (a.value != b.value) return a.value < b.value;
                if (a.form != b.form) return a.form < b.form;
                return a.offset < b.offset;
              });
    start_.assign(nb + 1, 0);
    for (const Entry& e : entries) ++start_[BucketOf(e.value) + 1];
    for (size_t i = 0; i < nb; ++i) start_[i + 1] += start_[i];
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
    const __m128i eq = _mm_cmpeq_epi16(bucket, _mm_set1_epi16(fp));
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
    return buckets_.size() * sizeof(Bucket) +
           start_.size() * 4 + entries_.size() * sizeof(Entry);
  }

 private:
  int bits_ = 0;
  int shift_ = 64;
  std::vector<Bucket> buckets_;
  std::vector<uint32_t> start_;
  std::vector<Entry> entries_;
};

// Zero-filled 64-bit words on a transparent huge page where the kernel
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
    const size_t bytes = (n * 8 + kHuge - 1) / kHuge * kHuge;
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
    data_ = reinterpret_cast<uint64_t*>(aligned);
    size_ = n;
    bytes_ = bytes;
    return true;
  }
  uint64_t* data() { return data_; }
  const uint64_t* data() const { return data_; }
  size_t size() const { return size_; }

 private:
  static constexpr size_t kHuge = size_t{2} << 20;
  void Release() {
    if (data_ != nullptr) ::munmap(data_, bytes_);
    data_ = nullptr;
    size_ = bytes_ = 0;
  }
  uint64_t* data_ = nullptr;
  size_t size_ = 0;
  size_t bytes_ = 0;
};

// The first, cheapest test, shared by all tables: a blocked Bloom filter,
// three bits of one 64-bit word per distinct window. It is two filters in
// one array, split by what the probed bytes look like (ClassOf): "text"
// windows (no byte has its top bit set and no two neighbouring bytes are
// zero: ASCII, UTF-16LE) and "binary" ones (everything else, zero fill
// included). The binary forms of a key (limbs, big-endian, DER) are a few
// thousand windows, so the binary half, at 64 bits per window, is
// L1-resident (32 KiB for RSA-2048) and random, compressed or pointer-rich
// data probes almost only that half; the text forms (hex, base64, PEM and
// their UTF-16LE) are the bulk and live in the L2-resident text half. A
// random probe passes about 0.05% of the time. The hash input is XORed
// with a seed chosen so that the fill patterns of real memory (zero pages,
// 0xff, spaces, 0xcc/0xaa poison) do not pass unless a form holds them.
class Filter {
 public:
  // 1 (text) when no byte has its top bit set and no two neighbouring
  // bytes of the window are zero: ASCII forms hold no zero byte and
  // UTF-16LE forms only every other one, while the small integers and
  // pointers of binary data are full of zero pairs; those go to the
  // L1-sized binary half. `pairs` has the top bit of bytes 0..W-2.
  static uint64_t ClassOf(uint64_t v, uint64_t pairs) {
    // Top bit of each zero byte, exact while no byte exceeds 0x7f.
    const uint64_t zero = ~(v + ~kHighBits) & kHighBits;
    return ((v & kHighBits) | (zero & (zero >> 8) & pairs)) == 0 ? 1 : 0;
  }
  uint64_t ClassOf(uint64_t v) const { return ClassOf(v, pairs_); }

  // False when out of memory. `w`: window bytes.
  bool Build(const std::vector<uint64_t>& distinct, size_t w) {
    pairs_ = kHighBits & ((uint64_t{1} << (8 * (w - 1))) - 1);
    size_t count[2] = {0, 0};
    for (uint64_t v : distinct) ++count[ClassOf(v)];
    // About 64 bits per window in both halves: the binary half stays
    // L1-sized, and at 32 bits per window the text half passed twice the
    // probes of real data to the tables for no measurable gain in speed.
    static constexpr size_t kBitsPerValue[2] = {64, 64};
    int bits[2];
    for (int c = 0; c < 2; ++c) {
      bits[c] = 12;
      while ((size_t{1} << bits[c]) < count[c] * kBitsPerValue[c] &&
             bits[c] < 26) {
        ++bits[c];
      }
      mask_[c] = (size_t{1} << (bits[c] - 6)) - 1;
    }
    // One shift for both halves: the word index is the top bits of the
    // hash cut to the half's size.
    shift_ = 64 - (std::max(bits[0], bits[1]) - 6);
    base_[0] = 0;
    base_[1] = mask_[0] + 1;
    static constexpr uint64_t kFills[] = {
        0, ~uint64_t{0}, 0x2020202020202020ULL, 0xccccccccccccccccULL,
        0xaaaaaaaaaaaaaaaaULL, 0x0101010101010101ULL};
    for (uint64_t attempt = 0;; ++attempt) {
      seed_ = attempt * 0xA0761D6478BD642FULL;
      if (!words_.Assign(mask_[0] + 1 + mask_[1] + 1)) return false;
      for (uint64_t v : distinct) Set(v);
      bool clean = true;
      for (uint64_t fill : kFills) {
        if (Test(fill) &&
            !std::binary_search(distinct.begin(), distinct.end(), fill)) {
          clean = false;
        }
      }
      if (clean || attempt == 64) break;
    }
    return true;
  }
  // The probe loops compute exactly this, in their own instructions.
  bool Test(uint64_t v) const {
    const uint64_t c = ClassOf(v);
    const uint64_t h = (v ^ seed_) * kBitMul;
    const uint64_t w = words_.data()[((h >> shift_) & mask_[c]) + base_[c]];
    return (w >> ((h >> (shift_ - 6)) & 63)) &
           (w >> ((h >> (shift_ - 12)) & 63)) &
           (w >> ((h >> (shift_ - 18)) & 63)) & 1;
  }
  const uint64_t* words() const { return words_.data(); }
  // Word index of hash h in class c (0 binary, 1 text):
  // ((h >> shift) & mask(c)) + base(c); the three bit numbers are the
  // three groups of six hash bits under the shift.
  uint64_t shift() const { return shift_; }
  uint64_t mask(int c) const { return mask_[c]; }
  uint64_t base(int c) const { return base_[c]; }
  uint64_t seed() const { return seed_; }
  uint64_t pairs() const { return pairs_; }
  size_t bytes() const { return words_.size() * 8; }

 private:
  void Set(uint64_t v) {
    const uint64_t c = ClassOf(v);
    const uint64_t h = (v ^ seed_) * kBitMul;
    words_.data()[((h >> shift_) & mask_[c]) + base_[c]] |=
        (uint64_t{1} << ((h >> (shift_ - 6)) & 63)) |
        (uint64_t{1} << ((h >> (shift_ - 12)) & 63)) |
        (uint64_t{1} << ((h >> (shift_ - 18)) & 63));
  }
  uint64_t shift_ = 64;
  uint64_t mask_[2] = {0, 0};
  uint64_t base_[2] = {0, 0};
  uint64_t seed_ = 0;
  uint64_t pairs_ = 0;
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
  size_t w = 8;       // window bytes
  size_t stride = 9;  // probe spacing
  uint64_t mask = ~uint64_t{0};
  Filter filter;     // in front of all three tables
  Table tables[3];  // binary, ascii, utf16
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
  std::unique_ptr<Scanner> s(new Scanner(std::move(keys), options));
  auto idx = std::make_unique<ScanIndex>();
  const size_t f = options.min_fragment;
  idx->w = std::min<size_t>(kMaxWindow, (f + 1) / 2);
  idx->stride = f - idx->w + 1;
  idx->mask = idx->w == 8 ? ~uint64_t{0} : ((uint64_t{1} << (8 * idx->w)) - 1);

  std::vector<Entry> per_table[3];
  for (uint32_t k = 0; k < s->keys_.size(); ++k) {
    const std::vector<Form>& forms = s->keys_[k].forms();
    for (uint32_t fi = 0; fi < forms.size(); ++fi) {
      const Form& form = forms[fi];
      const uint32_t gid = static_cast<uint32_t>(idx->forms.size());
      idx->forms.push_back({k, fi, &form});
      idx->max_form = std::max(idx->max_form, form.size());
      if (form.size() < idx->w) continue;
      const int t = static_cast<int>(form.encoding());
      for (size_t o = 0; o + idx->w <= form.size(); ++o) {
        uint64_t v = 0;
        std::memcpy(&v, form.data() + o, idx->w);
        per_table[t].push_back({v, gid, static_cast<uint32_t>(o)});
      }
    }
  }
  std::vector<uint64_t> distinct;
  for (int t = 0; t < 3; ++t) {
    for (const Entry& e : per_table[t]) distinct.push_back(e.value);
  }
  std::sort(distinct.begin(), distinct.end());
  distinct.erase(std::unique(distinct.begin(), distinct.end()),
                 distinct.end());
  const bool built = idx->filter.Build(distinct, idx->w);
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
    std::vector<Entry>().swap(per_table[t]);
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
      __builtin_cpu_supports("avx512dq") &&
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

  void Verify(size_t p, uint64_t v, const Table& t);
  void Slow(size_t p, uint64_t v);
  void Probe(size_t begin, size_t end);
};

}  // namespace

// Out of line from the probe loop: runs only on a fingerprint hit.
__attribute__((noinline)) void Worker::Verify(size_t p, uint64_t v,
                                              const Table& t) {
  const auto [lo, hi] = t.Lookup(v);
  const size_t w = idx->w;
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
  const Table& bin = idx->tables[0];
  if (bin.MayContain(v)) Verify(p, v, bin);
  if ((v & kHighBits) == 0) {
    // Text-looking bytes: UTF-16LE (every other byte zero) or ASCII.
    const Table& t = ((v & kOddBytes) == 0 || (v & kEvenBytes) == 0)
                         ? idx->tables[2]
                         : idx->tables[1];
    if (!t.empty() && t.MayContain(v)) Verify(p, v, t);
  }
  if (active.size() > 64) {
    std::erase_if(active, [p](const Active& a) { return a.end <= p; });
  }
}

// The scalar hot loop, compiled three times: for any x86-64, with BMI2
// (shifts by a register without the CL dance), and inside the AVX-512 loop
// for its last probes. Locals only; four probes per branch. A probe leaves
// the loop only when the filter passes it. kFull: the window is all eight
// loaded bytes (else they are masked to W).
template <bool kFull>
__attribute__((always_inline)) inline void ProbeLoop(Worker* wk, size_t begin,
                                                     size_t end) {
  const ScanIndex* idx = wk->idx;
  const size_t stride = idx->stride;
  const uint64_t* words = idx->filter.words();
  const uint64_t shift = idx->filter.shift();
  const uint64_t mask_bin = idx->filter.mask(0);
  const uint64_t mask_text = idx->filter.mask(1);
  const uint64_t* text_words = words + idx->filter.base(1);
  const uint64_t seed = idx->filter.seed();
  const uint64_t pairs = idx->filter.pairs();
  const uint64_t mask = idx->mask;
  const uint8_t* d = wk->data;
  auto load = [&](size_t at) {
    uint64_t v;
    std::memcpy(&v, d + at, 8);
    return kFull ? v : (v & mask);
  };
  auto flag = [&](uint64_t v) -> uint64_t {
    // Filter::Test, with the class picked by conditional moves.
    const bool text = Filter::ClassOf(v, pairs) != 0;
    const uint64_t* base = text ? text_words : words;
    const uint64_t h = (v ^ seed) * kBitMul;
    const uint64_t w = base[(h >> shift) & (text ? mask_text : mask_bin)];
    // A rotate takes its count mod 64: bit 0 of w rotated right by b is
    // bit (b mod 64) of w.
    return std::rotr(w, static_cast<int>(h >> (shift - 6))) &
           std::rotr(w, static_cast<int>(h >> (shift - 12))) &
           std::rotr(w, static_cast<int>(h >> (shift - 18))) & 1;
  };
  size_t p = begin;
  for (; p + 3 * stride < end; p += 4 * stride) {
    const uint64_t v0 = load(p);
    const uint64_t v1 = load(p + stride);
    const uint64_t v2 = load(p + 2 * stride);
    const uint64_t v3 = load(p + 3 * stride);
    const uint64_t f0 = flag(v0);
    const uint64_t f1 = flag(v1);
    const uint64_t f2 = flag(v2);
    const uint64_t f3 = flag(v3);
    if (f0 | f1 | f2 | f3) [[unlikely]] {
      if (f0) wk->Slow(p, v0);
      if (f1) wk->Slow(p + stride, v1);
      if (f2) wk->Slow(p + 2 * stride, v2);
      if (f3) wk->Slow(p + 3 * stride, v3);
    }
  }
  for (; p < end; p += stride) {
    const uint64_t v = load(p);
    if (flag(v)) wk->Slow(p, v);
  }
}

template <bool kFull>
__attribute__((target("bmi2"), noinline)) void ProbeLoopBmi2(Worker* wk,
                                                              size_t begin,
                                                              size_t end) {
  ProbeLoop<kFull>(wk, begin, end);
}

template <bool kFull>
__attribute__((noinline)) void ProbeLoopGeneric(Worker* wk, size_t begin,
                                                size_t end) {
  ProbeLoop<kFull>(wk, begin, end);
}

#define SIGRACE_AVX512 "avx512f,avx512bw,avx512dq,avx512vbmi,bmi2"

// The constants of the vector loop.
struct Avx512Consts {
  __m512i perm;   // window k byte j <- data byte k * S + j
  __m512i offs;   // k * S, for the data gather
  __mmask64 keep;  // window bytes below W
  __m512i mask;   // window mask per 64-bit lane
  __m512i seed;
  __m512i mul;
  __m512i high;   // kHighBits
  __m512i low;    // ~kHighBits
  __m512i pairs;  // Filter::pairs()
  __m128i sh_word, sh_bit1, sh_bit2, sh_bit3;
  __m512i mask_bin, mask_text, text_base;
};

// The eight windows at p, p + S, ..., p + 7S.
template <bool kFull, bool kPermute>
__attribute__((target(SIGRACE_AVX512), always_inline)) inline __m512i
Avx512Windows(const Avx512Consts& c, const uint8_t* at) {
  if constexpr (kPermute) {
    const __m512i a = _mm512_loadu_si512(at);
    const __m512i b = _mm512_loadu_si512(at + 64);
    return kFull ? _mm512_permutex2var_epi8(a, c.perm, b)
                   : _mm512_maskz_permutex2var_epi8(c.keep, a, c.perm, b);
  } else {
    const __m512i v = _mm512_i64gather_epi64(c.offs, at, 1);
    return kFull ? v : _mm512_and_si512(v, c.mask);
  }
}

// Bit k set when window k passes the filter (Filter::Test, eight at once).
__attribute__((target(SIGRACE_AVX512), always_inline)) inline __mmask8
Avx512Flags(const Avx512Consts& c, const long long* words, __m512i v) {
  // Filter::ClassOf, eight at once.
  const __m512i zero =
      _mm512_andnot_si512(_mm512_add_epi64(v, c.low), c.high);
  const __m512i pair = _mm512_ternarylogic_epi64(
      zero, _mm512_srli_epi64(zero, 8), c.pairs, 0x80);
  const __mmask8 text = _mm512_mask_testn_epi64_mask(
      _mm512_testn_epi64_mask(v, c.high), pair, pair);
  const __m512i h = _mm512_mullo_epi64(_mm512_xor_si512(v, c.seed), c.mul);
  const __m512i top = _mm512_srl_epi64(h, c.sh_word);
  const __m512i at = _mm512_mask_add_epi64(
      _mm512_and_si512(top, c.mask_bin), text,
      _mm512_and_si512(top, c.mask_text), c.text_base);
  const __m512i word = _mm512_i64gather_epi64(at, words, 8);
  // Rotates take their counts mod 64, as the scalar loop's do.
  const __m512i t = _mm512_ternarylogic_epi64(
      _mm512_rorv_epi64(word, _mm512_srl_epi64(h, c.sh_bit1)),
      _mm512_rorv_epi64(word, _mm512_srl_epi64(h, c.sh_bit2)),
      _mm512_rorv_epi64(word, _mm512_srl_epi64(h, c.sh_bit3)), 0x80);
  return _mm512_test_epi64_mask(t, _mm512_set1_epi64(1));
}

__attribute__((target(SIGRACE_AVX512), noinline)) void Avx512Slow(
    Worker* wk, size_t at, size_t stride, __m512i v, __mmask8 hit) {
  alignas(64) uint64_t vs[8];
  _mm512_store_si512(vs, v);
  for (unsigned m = hit; m != 0; m &= m - 1) {
    const unsigned k = static_cast<unsigned>(__builtin_ctz(m));
    wk->Slow(at + k * stride, vs[k]);
  }
}

// Eight probes per vector, the same hash and filter words as ProbeLoop: a
// probe leaves the vector loop exactly when the scalar filter would pass
// it, so the findings are the same. The eight windows p, p + S, ...,
// p + 7S come out of two 64-byte loads with one byte permute while they
// fit in 128 bytes (S <= 17, F <= 24), else from a gather of the data; the
// eight filter words come from one gather (the filter is cache-resident).
// Probes the vector loop cannot take (the last ones before `end`, or too
// near the end of the data) go through the scalar loop.
template <bool kFull, bool kPermute>
__attribute__((target(SIGRACE_AVX512), noinline)) void ProbeLoopAvx512(
    Worker* wk, size_t begin, size_t end) {
  const ScanIndex* idx = wk->idx;
  const size_t stride = idx->stride;
  const long long* words =
      reinterpret_cast<const long long*>(idx->filter.words());
  const uint8_t* d = wk->data;
  alignas(64) uint8_t perm[64];
  alignas(64) int64_t offs[8];
  uint64_t keep = 0;
  for (size_t i = 0; i < 64; ++i) {
    perm[i] = static_cast<uint8_t>(kPermute ? (i / 8) * stride + i % 8 : 0);
    if (i % 8 < idx->w) keep |= uint64_t{1} << i;
  }
  for (size_t k = 0; k < 8; ++k) offs[k] = static_cast<int64_t>(k * stride);
  Avx512Consts c;
  c.perm = _mm512_load_si512(perm);
  c.offs = _mm512_load_si512(offs);
  c.keep = keep;
  c.mask = _mm512_set1_epi64(static_cast<long long>(idx->mask));
  c.seed = _mm512_set1_epi64(static_cast<long long>(idx->filter.seed()));
  c.mul = _mm512_set1_epi64(static_cast<long long>(kBitMul));
  c.high = _mm512_set1_epi64(static_cast<long long>(kHighBits));
  c.low = _mm512_set1_epi64(static_cast<long long>(~kHighBits));
  c.pairs = _mm512_set1_epi64(static_cast<long long>(idx->filter.pairs()));
  const auto shift = static_cast<long long>(idx->filter.shift());
  c.sh_word = _mm_cvtsi64_si128(shift);
  c.sh_bit1 = _mm_cvtsi64_si128(shift - 6);
  c.sh_bit2 = _mm_cvtsi64_si128(shift - 12);
  c.sh_bit3 = _mm_cvtsi64_si128(shift - 18);
  c.mask_bin = _mm512_set1_epi64(static_cast<long long>(idx->filter.mask(0)));
  c.mask_text =
      _mm512_set1_epi64(static_cast<long long>(idx->filter.mask(1)));
  c.text_base =
      _mm512_set1_epi64(static_cast<long long>(idx->filter.base(1)));
  const size_t step = 8 * stride;
  // Bytes one vector reads from its first probe on.
  const size_t reach = kPermute ? 128 : 7 * stride + 8;
  size_t p = begin;
  // kVectors vectors per iteration: the loop waits on its filter-word
  // gathers, so more of them in flight is faster (measured on RSA-2048,
  // F = 16, one core: 2 per iteration 9.3 GB/s on random data, 4 13.2,
  // 6 13.5, 8 13.3).
  constexpr size_t kVectors = 6;
  if (wk->size >= reach + (kVectors - 1) * step) {
    // Last p whose kVectors vectors fit in the data.
    const size_t data_last = wk->size - reach - (kVectors - 1) * step;
    while (p + (kVectors - 1) * step + 7 * stride < end && p <= data_last) {
      __m512i v[kVectors];
      __mmask8 h[kVectors];
      unsigned any = 0;
#pragma clang loop unroll(full)
      for (size_t i = 0; i < kVectors; ++i) {
        v[i] = Avx512Windows<kFull, kPermute>(c, d + p + i * step);
      }
#pragma clang loop unroll(full)
      for (size_t i = 0; i < kVectors; ++i) {
        h[i] = Avx512Flags(c, words, v[i]);
        any |= h[i];
      }
      if (any != 0) [[unlikely]] {
        for (size_t i = 0; i < kVectors; ++i) {
          if (h[i]) Avx512Slow(wk, p + i * step, stride, v[i], h[i]);
        }
      }
      p += kVectors * step;
    }
  }
  if (p < end) ProbeLoop<kFull>(wk, p, end);
}

#undef SIGRACE_AVX512

void Worker::Probe(size_t begin, size_t end) {
  // Probes at begin, begin + stride, ... while the window fits in the data
  // and the probe starts before `end`. The loop loads 8 bytes per probe,
  // so the last few probes of the data go through the careful tail.
  const size_t w = idx->w;
  const size_t stride = idx->stride;
  if (size < w) return;
  const size_t last = std::min(end, size - w + 1);  // exclusive
  size_t p = begin;
  if (size >= 8 && p < size - 8 + 1) {
    const size_t fast_end = std::min(last, size - 8 + 1);
    const bool full = w == 8;
    const bool permute = 7 * stride + 8 <= 128;
    switch (path) {
      case ProbePath::kAvx512:
        if (permute) {
          full ? ProbeLoopAvx512<true, true>(this, p, fast_end)
                 : ProbeLoopAvx512<false, true>(this, p, fast_end);
        } else {
          full ? ProbeLoopAvx512<true, false>(this, p, fast_end)
                 : ProbeLoopAvx512<false, false>(this, p, fast_end);
        }
        break;
      case ProbePath::kBmi2:
        full ? ProbeLoopBmi2<true>(this, p, fast_end)
               : ProbeLoopBmi2<false>(this, p, fast_end);
        break;
      default:
        full ? ProbeLoopGeneric<true>(this, p, fast_end)
               : ProbeLoopGeneric<false>(this, p, fast_end);
        break;
    }
    // Continue on the probe grid after the fast part.
    if (fast_end > p) p += (fast_end - p + stride - 1) / stride * stride;
  }
  for (; p < last; p += stride) {
    uint64_t v = 0;
    std::memcpy(&v, data + p, w);
    Slow(p, v & idx->mask);
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

// A per-thread read buffer on a transparent huge page. Why ScanFile reads
// rather than maps: on the virtual machine this was measured on, the first
// user access to each 4 KiB page of a fresh file mapping costs about 2 us
// (470 ms per GiB after MADV_POPULATE_READ), more than copying the same
// page out of the page cache (130-180 ms per GiB for 4 KiB page-cache
// folios, about 60 for 2 MiB ones). Even 2 MiB folios mapped by PMD cost
// 230-250 ms per GiB on a process's first access (29 ms once the same
// process had mapped them before, which a benchmark loop would show and a
// `sigrace scan` run never sees). And a mapping turns a file shrinking
// under the scan into SIGBUS where a read returns a short count.
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

// Reads [offset, offset + n) of the file into `to`; a short read means
// the file shrank while scanned.
Status ReadFully(int fd, uint8_t* to, size_t n, uint64_t offset,
                 const std::string& path) {
  size_t got = 0;
  while (got < n) {
    const ssize_t r = ::pread(fd, to + got, n - got,
                              static_cast<off_t>(offset + got));
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) return ErrnoError(path + ": read", errno);
    if (r == 0) return DataLossError(path + ": file shrank while scanned");
    got += static_cast<size_t>(r);
  }
  return Status::Ok();
}

}  // namespace

StatusOr<std::vector<Finding>> Scanner::ScanFd(
    int fd, uint64_t size, const std::vector<FileExtent>* extents,
    const std::string& path, uint64_t* bytes_searched) const {
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
  const size_t chunk = std::max<size_t>(options_.chunk_size / stride, 1) * stride;
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
    Worker wk{&idx,    buf.data(), 0, 0, options_.min_fragment,
              options_.report_anchors, path_, &results[t], {}};
    for (uint64_t c = next.fetch_add(1, std::memory_order_relaxed);
         c < nchunks; c = next.fetch_add(1, std::memory_order_relaxed)) {
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
          Status st = ReadFully(fd, buf.data() + (hi - lo),
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
        (kept[cover].kind == FindingKind::kLeak || kept[cover].kind == f.kind)) {
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

// A read-only mapping of a whole file, unmapped on destruction.
class MappedFile {
 public:
  static StatusOr<std::unique_ptr<MappedFile>> Open(const std::string& path) {
    const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
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
    std::unique_ptr<MappedFile> m(new MappedFile);
    m->size_ = static_cast<uint64_t>(st.st_size);
    if (m->size_ > 0) {
      void* p = ::mmap(nullptr, m->size_, PROT_READ, MAP_PRIVATE, fd, 0);
      if (p == MAP_FAILED) {
        const int e = errno;
        ::close(fd);
        return ErrnoError(path + ": mmap", e);
      }
      m->data_ = static_cast<const uint8_t*>(p);
    }
    m->fd_ = fd;
    return m;
  }
  ~MappedFile() {
    if (data_ != nullptr) ::munmap(const_cast<uint8_t*>(data_), size_);
    if (fd_ >= 0) ::close(fd_);
  }
  int fd() const { return fd_; }
  const uint8_t* data() const { return data_; }
  uint64_t size() const { return size_; }

 private:
  MappedFile() = default;
  const uint8_t* data_ = nullptr;
  uint64_t size_ = 0;
  int fd_ = -1;
};

std::string Hex(uint64_t v) {
  char buf[24];
  std::snprintf(buf, sizeof(buf), "0x%llx", static_cast<unsigned long long>(v));
  return buf;
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

bool IsElfCore(const uint8_t* d, uint64_t size) {
  return size >= 18 && d[0] == 0x7f && d[1] == 'E' && d[2] == 'L' &&
         d[3] == 'F' && d[16] == 4 && d[17] == 0;  // e_type ET_CORE (LE)
}

}  // namespace

void Scanner::Attribute(const CoreReader& reader,
                        std::vector<Finding>* findings) const {
  const size_t f_min = options_.min_fragment;
  for (Finding& f : *findings) {
    const FileLocation loc = reader.Locate(f.file_offset);
    switch (loc.kind) {
      case FileLocation::Kind::kElfHeader:
        f.region = "elf header";
        break;
      case FileLocation::Kind::kProgramHeaders:
        f.region = "program headers";
        break;
      case FileLocation::Kind::kTrailer:
        f.region = "seal trailer";
        break;
      case FileLocation::Kind::kOther:
        f.region = "unclaimed file bytes";
        break;
      case FileLocation::Kind::kNote: {
        const NoteInfo& n = reader.notes()[loc.note_index];
        f.region = "note " + NoteTypeName(n);
        if (n.thread_index >= 0) {
          f.tid = reader.threads()[n.thread_index].tid;
          f.region += " tid " + std::to_string(f.tid);
          // Register notes of a thread whose registers were redacted.
          if (f.kind == FindingKind::kLeak) {
            for (const Redaction& r : reader.redactions()) {
              if (r.kind == RedactionKind::kRegisters && r.tid == f.tid) {
                f.kind = FindingKind::kRedacted;
                f.redaction = r.label;
                break;
              }
            }
          }
        }
        break;
      }
      case FileLocation::Kind::kLoad: {
        const Mapping& m = reader.mappings()[loc.mapping_index];
        f.has_address = true;
        f.address = loc.vaddr;
        f.region = "load " + Hex(m.vaddr) + "-" + Hex(m.end()) + " " +
                   m.Perms() + (m.name.empty() ? "" : " " + m.name);
        // The part of the match inside this mapping's file bytes.
        const uint64_t in_map =
            std::min<uint64_t>(f.length, m.offset + m.filesz - f.file_offset);
        const std::vector<size_t> over =
            reader.RedactionsOverlapping(f.address, in_map);
        if (over.empty()) break;
        f.redaction = reader.redactions()[over[0]].label;
        if (f.kind != FindingKind::kLeak) break;
        // A leak stays a leak when a stretch outside every redaction still
        // holds F secret bytes.
        const Form& form = keys_[f.key_index].forms()[f.form_index];
        std::vector<std::pair<uint64_t, uint64_t>> cover;
        for (size_t i : over) {
          const Redaction& r = reader.redactions()[i];
          const uint64_t b = std::max(r.vaddr, f.address) - f.address;
          const uint64_t e = std::min(r.vaddr + r.len, f.address + in_map) -
                             f.address;
          cover.emplace_back(b, e);
        }
        std::sort(cover.begin(), cover.end());
        bool leak = false;
        uint64_t pos = 0;
        auto check = [&](uint64_t b, uint64_t e) {
          if (e > b && form.SecretBytesIn(f.form_offset + b,
                                          f.form_offset + e) >= f_min) {
            leak = true;
          }
        };
        for (const auto& [b, e] : cover) {
          check(pos, b);
          pos = std::max(pos, e);
        }
        check(pos, f.length);  // includes any part past the mapping
        if (!leak) {
          f.kind = FindingKind::kRedacted;
        } else {
          f.redaction += " (partial)";
        }
        break;
      }
    }
  }
}

StatusOr<ScanReport> Scanner::ScanFile(const std::string& path) const {
  StatusOr<std::unique_ptr<MappedFile>> file = MappedFile::Open(path);
  if (!file.ok()) return file.status();
  const uint8_t* data = (*file)->data();
  const uint64_t size = (*file)->size();
  ScanReport report;
  report.path = path;
  report.file_size = size;
  std::unique_ptr<CoreReader> reader;
  // Dumps are sparse: only the data extents are read, by the checksum and
  // by the search. If the file system cannot say, all of it is.
  const StatusOr<std::vector<FileExtent>> extents =
      DataExtents((*file)->fd(), size);
  if (IsElfCore(data, size)) {
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
  const bool skip_holes =
      extents.ok() && holes_hold_nothing_;
  StatusOr<std::vector<Finding>> found =
      ScanFd((*file)->fd(), size, skip_holes ? &*extents : nullptr, path,
             &report.bytes_searched);
  if (!found.ok()) return found.status();
  report.findings = std::move(found).value();
  report.seconds = std::chrono::duration<double>(
                       std::chrono::steady_clock::now() - t0)
                       .count();
  if (reader) Attribute(*reader, &report.findings);
  for (const Finding& f : report.findings) {
    switch (f.kind) {
      case FindingKind::kLeak:
        ++report.leaks;
        break;
      case FindingKind::kRedacted:
        ++report.redacted;
        break;
      case FindingKind::kAnchor:
        ++report.anchors;
        break;
    }
  }
  return report;
}

}  // namespace sigrace::crashdump
