// Scanner: a generated corpus. Fragments of every form are planted at
// seeded-random offsets and alignments in seeded-random data; every
// fragment of F bytes or more must be reported at its exact offset and
// length, none of F - 1 bytes, and nothing else (no false positives).
// Keys are generated per run; the corpus layout comes from a fixed seed.
// Key bytes are compared only through bool results.

#include "crashdump/oracle/scanner.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <openssl/evp.h>
#include <openssl/rsa.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <functional>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "crashdump/format/core_format.h"
#include "crashdump/format/core_reader.h"
#include "crashdump/format/redaction_claims.h"
#include "crashdump/oracle/judgement.h"
#include "testing/synthetic_core.h"

namespace sigrace::crashdump {
namespace {

// A file name of this process's own, so that two runs of this test (ctest
// -j, a --gtest_repeat loop beside it) never write each other's files.
std::string TempPath(const std::string& name) {
  return ::testing::TempDir() + "/" + name + "." + std::to_string(getpid());
}

struct PkeyFree {
  void operator()(EVP_PKEY* p) const { EVP_PKEY_free(p); }
};
using PkeyPtr = std::unique_ptr<EVP_PKEY, PkeyFree>;

std::vector<KeyForms> TestKeys() {
  std::vector<KeyForms> keys;
  PkeyPtr rsa(EVP_RSA_gen(2048));
  PkeyPtr ed(EVP_PKEY_Q_keygen(nullptr, nullptr, "ED25519"));
  PkeyPtr ec(EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", "P-256"));
  for (EVP_PKEY* k : {rsa.get(), ed.get(), ec.get()}) {
    StatusOr<KeyForms> f = KeyForms::FromPkey(k, "test");
    EXPECT_TRUE(f.ok()) << f.status().ToString();
    if (f.ok()) keys.push_back(std::move(f).value());
  }
  return keys;
}

// Expected class of a planted run of `form`.
FindingKind Expect(const Form& f, size_t off, size_t len, size_t fmin,
                   bool* reported) {
  const size_t sec = f.SecretBytesIn(off, off + len);
  const size_t pub = f.PublicBytesIn(off, off + len);
  *reported = sec + pub >= fmin;
  return sec >= fmin ? FindingKind::kLeak : FindingKind::kAnchor;
}

struct Plant {
  size_t pos;
  size_t len;
  uint32_t key;
  uint32_t form;
  size_t form_off;
};

// True when the planted bytes also stand somewhere else in some form.
bool OccursElsewhere(const std::vector<KeyForms>& keys, const Plant& p) {
  const Form& src = keys[p.key].forms()[p.form];
  const uint8_t* run = src.data() + p.form_off;
  size_t n = 0;
  for (const KeyForms& k : keys) {
    for (const Form& g : k.forms()) {
      for (size_t i = 0; i + p.len <= g.size(); ++i) {
        if (std::memcmp(g.data() + i, run, p.len) == 0 && ++n > 1) {
          return true;
        }
      }
    }
  }
  return false;
}

class Corpus {
 public:
  Corpus(const std::vector<KeyForms>& keys, size_t size, uint64_t seed)
      : keys_(keys), rng_(seed), data_(size) {
    for (size_t i = 0; i < size; i += 8) {
      const uint64_t v = rng_();
      std::memcpy(data_.data() + i, &v, std::min<size_t>(8, size - i));
    }
  }

  // Plants form bytes [off, off+len) at pos, with the bytes around them
  // chosen so no form continues the run: the match is exactly the plant.
  void PlantAt(size_t pos, uint32_t key, uint32_t form, size_t off,
               size_t len) {
    const Form& f = keys_[key].forms()[form];
    std::memcpy(data_.data() + pos, f.data() + off, len);
    if (pos > 0) data_[pos - 1] = Breaker(f.data() + off, len, /*before=*/true);
    if (pos + len < data_.size()) {
      data_[pos + len] = Breaker(f.data() + off, len, /*before=*/false);
    }
    plants_.push_back({pos, len, key, form, off});
  }

  std::vector<uint8_t>& data() { return data_; }
  const std::vector<uint8_t>& data() const { return data_; }
  const std::vector<Plant>& plants() const { return plants_; }
  std::mt19937_64& rng() { return rng_; }

 private:
  // A byte that differs from the byte next to every occurrence of the run
  // in every form.
  uint8_t Breaker(const uint8_t* run, size_t len, bool before) {
    bool used[256] = {};
    for (const KeyForms& k : keys_) {
      for (const Form& g : k.forms()) {
        for (size_t i = 0; i + len <= g.size(); ++i) {
          if (std::memcmp(g.data() + i, run, len) != 0) continue;
          if (before && i > 0) used[g.data()[i - 1]] = true;
          if (!before && i + len < g.size()) used[g.data()[i + len]] = true;
        }
      }
    }
    uint8_t b = static_cast<uint8_t>(rng_());
    while (used[b]) ++b;
    return b;
  }

  const std::vector<KeyForms>& keys_;
  std::mt19937_64 rng_;
  std::vector<uint8_t> data_;
  std::vector<Plant> plants_;
};

const Finding* FindAt(const std::vector<Finding>& fs, uint64_t off,
                      uint64_t len) {
  for (const Finding& f : fs) {
    if (f.file_offset == off && f.length == len) return &f;
  }
  return nullptr;
}

// True when every finding lies inside one plant, or overlaps a plant and
// is a true match in the data: its bytes equal the form's bytes at the
// offset it names. (Keys are fresh every run, and a plant's tail plus the
// byte after it can by chance continue another form, base64 above all;
// such a match is really in the data, so reporting it is right.) Anything
// else is a false positive; names the first (offsets and form names only).
::testing::AssertionResult InsidePlants(const std::vector<Finding>& fs,
                                        const Corpus& corpus,
                                        const std::vector<KeyForms>& keys) {
  const std::vector<uint8_t>& data = corpus.data();
  for (const Finding& x : fs) {
    bool inside = false, overlaps = false;
    for (const Plant& p : corpus.plants()) {
      inside |=
          x.file_offset >= p.pos && x.file_offset + x.length <= p.pos + p.len;
      overlaps |=
          x.file_offset < p.pos + p.len && p.pos < x.file_offset + x.length;
    }
    if (inside) continue;
    const Form& f = keys[x.key_index].forms()[x.form_index];
    const bool true_match =
        x.file_offset + x.length <= data.size() &&
        x.form_offset + x.length <= f.size() &&
        std::memcmp(data.data() + x.file_offset, f.data() + x.form_offset,
                    x.length) == 0;
    if (!overlaps || !true_match) {
      return ::testing::AssertionFailure()
             << "finding outside every plant at " << x.file_offset << " len "
             << x.length << " " << x.form << "+" << x.form_offset
             << (true_match ? " (bytes match, but it touches no plant)"
                            : " (bytes do not match the form)");
    }
  }
  return ::testing::AssertionSuccess();
}

// True when `got` and `want` hold the same findings, field by field and in
// the same order; names the first difference (offsets and form names only).
::testing::AssertionResult SameFindings(const std::vector<Finding>& got,
                                        const std::vector<Finding>& want) {
  if (got.size() != want.size()) {
    return ::testing::AssertionFailure()
           << got.size() << " findings, want " << want.size();
  }
  for (size_t i = 0; i < got.size(); ++i) {
    const Finding& a = got[i];
    const Finding& r = want[i];
    if (!(a.kind == r.kind && a.file_offset == r.file_offset &&
          a.length == r.length && a.key_index == r.key_index &&
          a.form_index == r.form_index && a.form_offset == r.form_offset &&
          a.secret_bytes == r.secret_bytes && a.other_forms == r.other_forms &&
          a.form == r.form && a.part == r.part)) {
      return ::testing::AssertionFailure()
             << "finding " << i << " at " << a.file_offset << " (" << a.form
             << ") differs from the one at " << r.file_offset << " (" << r.form
             << ")";
    }
  }
  return ::testing::AssertionSuccess();
}

class ScannerCorpusTest : public ::testing::TestWithParam<size_t> {};

TEST_P(ScannerCorpusTest, EveryFragmentFoundExactlyAndNothingElse) {
  const size_t fmin = GetParam();
  std::vector<KeyForms> keys = TestKeys();
  ASSERT_EQ(keys.size(), 3u);
  Corpus corpus(keys, size_t{4} << 20, /*seed=*/20260401 + fmin);
  // Every form of every key, twice: one fragment of exactly F bytes and one
  // of random length, at random form offsets and random (any alignment)
  // data positions, 96+ bytes apart.
  size_t pos = 40;
  for (uint32_t k = 0; k < keys.size(); ++k) {
    for (uint32_t fi = 0; fi < keys[k].forms().size(); ++fi) {
      const Form& f = keys[k].forms()[fi];
      if (f.size() < fmin) continue;
      for (int rep = 0; rep < 2; ++rep) {
        const size_t len =
            rep == 0 ? fmin
                     : fmin + corpus.rng()() %
                                  (std::min<size_t>(f.size(), 600) - fmin + 1);
        const size_t off = corpus.rng()() % (f.size() - len + 1);
        pos += 96 + corpus.rng()() % 4000;
        ASSERT_LT(pos + len + 1, corpus.data().size());
        corpus.PlantAt(pos, k, fi, off, len);
        pos += len;
      }
    }
  }
  ScanOptions opt;
  opt.min_fragment = fmin;
  opt.threads = 2;
  opt.chunk_size = 1 << 16;  // many chunk borders
  StatusOr<std::unique_ptr<Scanner>> s = Scanner::Create(keys, opt);
  ASSERT_TRUE(s.ok()) << s.status().ToString();
  const std::vector<Finding> fs =
      (*s)->Scan(corpus.data().data(), corpus.data().size());

  size_t expected = 0;
  for (const Plant& p : corpus.plants()) {
    const Form& f = keys[p.key].forms()[p.form];
    bool reported = false;
    const FindingKind kind = Expect(f, p.form_off, p.len, fmin, &reported);
    const Finding* hit = FindAt(fs, p.pos, p.len);
    if (!reported) {
      // Encoding scaffolding only (a DER header, PEM armour): never
      // reported, so an unrelated key file is not a finding. At small F a
      // run can also stand, by chance, where another form has key bytes
      // (8 bytes of UTF-16LE hex are 4 digits, 16 bits): a finding then.
      if (hit != nullptr && !OccursElsewhere(keys, p)) {
        ADD_FAILURE() << f.name() << " off " << p.form_off
                      << " reported, and it stands nowhere else";
      }
      continue;
    }
    ++expected;
    ASSERT_NE(hit, nullptr) << f.name() << " off " << p.form_off << " len "
                            << p.len << " at " << p.pos;
    // The same chance: a leak elsewhere outranks the anchor planted here.
    if (hit->kind != kind && !OccursElsewhere(keys, p)) {
      ADD_FAILURE() << f.name() << " off " << p.form_off << " reported as "
                    << FindingKindName(hit->kind) << ", not "
                    << FindingKindName(kind);
    }
    // The named form holds exactly these bytes at form_offset.
    const Form& named = keys[hit->key_index].forms()[hit->form_index];
    EXPECT_EQ(hit->form, named.name());
    EXPECT_TRUE(hit->form_offset + hit->length <= named.size() &&
                std::memcmp(named.data() + hit->form_offset,
                            corpus.data().data() + p.pos, p.len) == 0)
        << f.name() << " reported as " << hit->form;
  }
  // No false positives: every finding lies inside planted bytes. (Short
  // forms such as UTF-16 hex repeat 13-byte runs at other offsets by
  // chance, so a plant can hold a second, real match: a finding, but no
  // false positive.)
  EXPECT_GE(fs.size(), expected);
  EXPECT_TRUE(InsidePlants(fs, corpus, keys));
  EXPECT_GT(expected, 150u);
}

INSTANTIATE_TEST_SUITE_P(MinFragments, ScannerCorpusTest,
                         ::testing::Values(16, 13, 24, 64, 8, 10, 11));

TEST(Scanner, FragmentOneShortOfMinimumIsNotReported) {
  std::vector<KeyForms> keys = TestKeys();
  for (size_t fmin : {16u, 24u}) {
    Corpus corpus(keys, 1 << 20, /*seed=*/7 + fmin);
    const int p_le = keys[0].FindForm("rsa.p.le64");
    const int seed = keys[1].FindForm("ed25519.seed");
    const int b64 = keys[0].FindForm("rsa.pkcs8.b64@1");
    ASSERT_GE(p_le, 0);
    ASSERT_GE(seed, 0);
    ASSERT_GE(b64, 0);
    // F - 1 bytes at every alignment mod 16.
    size_t pos = 1000;
    for (int a = 0; a < 16; ++a) {
      pos = (pos + 200) / 16 * 16 + a;
      corpus.PlantAt(pos, 0, p_le, 3 + a, fmin - 1);
      pos += 300;
      corpus.PlantAt(pos, 1, seed, a % (32 - fmin + 1), fmin - 1);
      pos += 300;
      corpus.PlantAt(pos, 0, b64, 100 + a, fmin - 1);
    }
    ScanOptions opt;
    opt.min_fragment = fmin;
    StatusOr<std::unique_ptr<Scanner>> s = Scanner::Create(keys, opt);
    ASSERT_TRUE(s.ok());
    EXPECT_TRUE((*s)->Scan(corpus.data().data(), corpus.data().size()).empty())
        << "F=" << fmin;
    // The same places with F bytes are all found: the test can fail.
    Corpus full(keys, 1 << 20, /*seed=*/7 + fmin);
    for (const Plant& p : corpus.plants()) {
      full.PlantAt(p.pos, p.key, p.form, p.form_off, fmin);
    }
    const std::vector<Finding> fs =
        (*s)->Scan(full.data().data(), full.data().size());
    EXPECT_EQ(fs.size(), full.plants().size()) << "F=" << fmin;
    for (const Plant& p : full.plants()) {
      EXPECT_NE(FindAt(fs, p.pos, fmin), nullptr) << p.pos;
    }
  }
}

TEST(Scanner, FragmentAcrossChunkBorderIsFound) {
  std::vector<KeyForms> keys = TestKeys();
  Corpus corpus(keys, 2 << 20, /*seed=*/99);
  ScanOptions opt;
  opt.chunk_size = 1 << 16;
  opt.threads = 2;
  StatusOr<std::unique_ptr<Scanner>> s = Scanner::Create(keys, opt);
  ASSERT_TRUE(s.ok());
  const size_t chunk = (1 << 16) / (*s)->probe_stride() * (*s)->probe_stride();
  const int q = keys[0].FindForm("rsa.q.le64");
  // 16 bytes straddling borders at every split point 1..15, and a long one.
  ASSERT_GT(corpus.data().size(), 21 * chunk);
  for (int k = 1; k < 16; ++k) {
    corpus.PlantAt(k * chunk - k, 0, q, k, 16);
  }
  corpus.PlantAt(20 * chunk - 64, 0, q, 0, 128);
  // Fragments touching the very start and end of the data.
  corpus.PlantAt(0, 0, q, 50, 16);
  corpus.PlantAt(corpus.data().size() - 16, 0, q, 60, 16);
  const std::vector<Finding> fs =
      (*s)->Scan(corpus.data().data(), corpus.data().size());
  EXPECT_EQ(fs.size(), corpus.plants().size());
  for (const Plant& p : corpus.plants()) {
    const Finding* f = FindAt(fs, p.pos, p.len);
    ASSERT_NE(f, nullptr) << "at " << p.pos;
    EXPECT_EQ(f->form, "rsa.q.le64");
    EXPECT_EQ(f->part, "q");
    EXPECT_EQ(f->form_offset, p.form_off);
  }
  // One thread and one big chunk give the same answer.
  ScanOptions one;
  one.threads = 1;
  StatusOr<std::unique_ptr<Scanner>> s1 = Scanner::Create(keys, one);
  ASSERT_TRUE(s1.ok());
  EXPECT_EQ((*s1)->Scan(corpus.data().data(), corpus.data().size()).size(),
            fs.size());
  // The file path reads chunks into buffers that overlap by the longest
  // form: the same findings, border plants included.
  const std::string path = TempPath("scanner_chunks.bin");
  FILE* fp = std::fopen(path.c_str(), "wb");
  ASSERT_NE(fp, nullptr);
  std::fwrite(corpus.data().data(), 1, corpus.data().size(), fp);
  std::fclose(fp);
  StatusOr<ScanReport> file = (*s)->ScanFile(path);
  std::remove(path.c_str());
  ASSERT_TRUE(file.ok()) << file.status().ToString();
  ASSERT_EQ(file->findings.size(), fs.size());
  for (size_t i = 0; i < fs.size(); ++i) {
    EXPECT_EQ(file->findings[i].file_offset, fs[i].file_offset);
    EXPECT_EQ(file->findings[i].length, fs[i].length);
    EXPECT_EQ(file->findings[i].form, fs[i].form);
  }
  // Offsets carry base_offset (64-bit, past 4 GiB).
  const uint64_t base = uint64_t{5} << 30;
  const std::vector<Finding> shifted =
      (*s)->Scan(corpus.data().data(), corpus.data().size(), base);
  ASSERT_EQ(shifted.size(), fs.size());
  EXPECT_EQ(shifted[0].file_offset, fs[0].file_offset + base);
}

// Every compiled probe loop (scalar, BMI2, AVX-512 where the CPU has them)
// must give exactly the same findings: the vector loop takes its windows
// with a byte permute or a gather depending on the stride, masks short
// windows, and hands its last probes to the scalar loop, and each of those
// is a place to lose a fragment. One corpus per F, every form planted at
// F bytes, at F - 1 bytes and at a random length, at random offsets and
// alignments, across chunk borders and in the last bytes of the data.
TEST(ScannerPaths, EveryProbePathGivesTheSameFindings) {
  const std::vector<ProbePath> paths = Scanner::AvailableProbePaths();
  ASSERT_FALSE(paths.empty());
  EXPECT_EQ(paths.front(), ProbePath::kGeneric);
  std::string names;
  for (ProbePath p : paths) names += std::string(" ") + ProbePathName(p);
  ::testing::Test::RecordProperty("probe_paths", names);
  std::vector<KeyForms> keys = TestKeys();
  ASSERT_EQ(keys.size(), 3u);
  // W is 4. 16: S 13 (permuted windows, 8-byte UTF-16LE keys); 13: S 10;
  // 24: S 21 (gathered windows); 8: S 5 (4-byte UTF-16LE keys); 11: the
  // shortest F with 8-byte keys, where some fragments hold only the key at
  // p - 4; 40: S 37.
  for (size_t fmin : {16u, 13u, 24u, 8u, 11u, 40u}) {
    SCOPED_TRACE("F=" + std::to_string(fmin));
    Corpus corpus(keys, size_t{3} << 20, /*seed=*/31337 + fmin);
    std::vector<Plant> short_plants;  // F - 1 bytes: never reported
    size_t pos = 16;
    for (uint32_t k = 0; k < keys.size(); ++k) {
      for (uint32_t fi = 0; fi < keys[k].forms().size(); ++fi) {
        const Form& f = keys[k].forms()[fi];
        if (f.size() < fmin) continue;
        for (int rep = 0; rep < 3; ++rep) {
          size_t len = rep == 0 ? fmin : fmin - 1;
          if (rep == 2) {
            len = fmin +
                  corpus.rng()() % (std::min<size_t>(f.size(), 300) - fmin + 1);
          }
          const size_t off = corpus.rng()() % (f.size() - len + 1);
          pos += 40 + corpus.rng()() % 1500;
          ASSERT_LT(pos + len + 1, corpus.data().size() - 4096);
          corpus.PlantAt(pos, k, fi, off, len);
          if (rep == 1) short_plants.push_back(corpus.plants().back());
          pos += len;
        }
      }
    }
    // Chunk borders (chunks are 64 KiB rounded down to the stride) and the
    // tail, where the vector loop stops and the scalar loop finishes.
    ScanOptions opt;
    opt.min_fragment = fmin;
    opt.threads = 2;
    opt.chunk_size = 1 << 16;
    StatusOr<std::unique_ptr<Scanner>> probe = Scanner::Create(keys, opt);
    ASSERT_TRUE(probe.ok()) << probe.status().ToString();
    const size_t stride = (*probe)->probe_stride();
    const size_t chunk = (size_t{1} << 16) / stride * stride;
    const int q = keys[0].FindForm("rsa.q.le64");
    const int seed = keys[1].FindForm("ed25519.seed");
    ASSERT_GE(q, 0);
    ASSERT_GE(seed, 0);
    const size_t size = corpus.data().size();
    for (size_t b = 40; b < 46; ++b) {
      const size_t split = 1 + (b - 40) * 3 % fmin;
      corpus.PlantAt(b * chunk - split, 0, q, b % 40, fmin);
    }
    // F - 1 bytes, or all of the 32-byte seed when F - 1 is longer.
    corpus.PlantAt(size - 3000, 1, seed, 0,
                   std::min<size_t>(fmin - 1, keys[1].forms()[seed].size()));
    short_plants.push_back(corpus.plants().back());
    corpus.PlantAt(size - 2000, 0, q, 7, 40);
    corpus.PlantAt(size - 400, 0, q, 1, fmin);
    if (fmin + 3 <= 32) {
      corpus.PlantAt(size - 250, 1, seed, 3, fmin);
    } else {
      corpus.PlantAt(size - 250, 0, q, 3, fmin);
    }
    corpus.PlantAt(size - 128, 0, q, 9, fmin);
    corpus.PlantAt(size - fmin, 0, q, 60, fmin);

    std::vector<Finding> reference;
    for (ProbePath path : paths) {
      SCOPED_TRACE(ProbePathName(path));
      ScanOptions po = opt;
      po.probe_path = path;
      StatusOr<std::unique_ptr<Scanner>> s = Scanner::Create(keys, po);
      ASSERT_TRUE(s.ok()) << s.status().ToString();
      EXPECT_EQ((*s)->probe_path(), path);
      const std::vector<Finding> fs =
          (*s)->Scan(corpus.data().data(), corpus.data().size());
      // What every path must find: each reportable plant at its exact
      // offset and length; nothing of the F - 1 plants.
      size_t expected = 0;
      for (const Plant& p : corpus.plants()) {
        const Form& f = keys[p.key].forms()[p.form];
        bool reported = false;
        Expect(f, p.form_off, p.len, fmin, &reported);
        if (p.len < fmin) reported = false;
        const Finding* hit = FindAt(fs, p.pos, p.len);
        if (!reported) {
          // Not reportable where it was cut from; but a short run (4 hex
          // digits in UTF-16 are 8 bytes and 16 bits) can also stand, by
          // chance, at another offset of some form where it is. Only a run
          // found nowhere else must go unreported.
          if (hit != nullptr && !OccursElsewhere(keys, p)) {
            ADD_FAILURE() << f.name() << " len " << p.len
                          << " reported, and it stands nowhere else";
          }
          continue;
        }
        ++expected;
        EXPECT_NE(hit, nullptr) << f.name() << " off " << p.form_off << " len "
                                << p.len << " at " << p.pos;
      }
      // Below F = 13 the hex and UTF-16 forms hold the same short runs at
      // many offsets, so chance matches inside and next to the plants are
      // real findings: there the F - 1 plants are not checked.
      const bool exact = fmin >= 13;
      for (const Plant& p : short_plants) {
        if (!exact) break;
        for (const Finding& x : fs) {
          EXPECT_FALSE(x.file_offset < p.pos + p.len &&
                       p.pos < x.file_offset + x.length)
              << "F-1 plant reported at " << p.pos;
        }
      }
      EXPECT_GE(fs.size(), expected);
      EXPECT_GT(expected, 100u);
      EXPECT_TRUE(InsidePlants(fs, corpus, keys));
      if (path == paths.front()) {
        reference = fs;
        continue;
      }
      // The same findings as the generic loop, field by field.
      EXPECT_TRUE(SameFindings(fs, reference));
    }
  }
}

// Every form of every key, a fragment of F bytes starting at every address
// mod 64 (each position the vector loop's 64-byte loads and permutes can
// put it in), each one straddling a read border of ScanFile's sliding
// buffer with 1 to F - 1 of its bytes before the border. Every probe
// path finds all of them in memory (Scan, with work-item borders) and
// through ScanFile with 4 KiB reads on 1 and 2 threads, exactly where they
// were planted, and nothing else.
TEST(ScannerPaths, EveryFormAtEveryAlignmentAcrossReadBorders) {
  std::vector<KeyForms> keys = TestKeys();
  ASSERT_EQ(keys.size(), 3u);
  constexpr size_t kF = 16;
  ScanOptions opt;
  opt.min_fragment = kF;
  opt.chunk_size = 1 << 16;
  opt.read_size = 4096;
  StatusOr<std::unique_ptr<Scanner>> probe = Scanner::Create(keys, opt);
  ASSERT_TRUE(probe.ok()) << probe.status().ToString();
  const size_t stride = (*probe)->probe_stride();
  const size_t step = 4096 / stride * stride;  // read borders: k * step
  // Every (form, alignment) pair gets a read border of its own; a border
  // k * step sits at every residue mod 64 as k runs (step is odd).
  ASSERT_EQ(step % 2, 1u);
  size_t pairs = 0;
  for (const KeyForms& k : keys) {
    for (const Form& f : k.forms()) pairs += f.size() >= kF ? 64 : 0;
  }
  ASSERT_GT(pairs, 64u * 20);
  Corpus corpus(keys, (pairs + 2) * step + 8192, /*seed=*/6464);
  size_t border = 1;  // next unused border index
  size_t expected = 0;
  size_t eligible = 0;
  for (uint32_t k = 0; k < keys.size(); ++k) {
    for (uint32_t fi = 0; fi < keys[k].forms().size(); ++fi) {
      const Form& f = keys[k].forms()[fi];
      if (f.size() < kF) continue;
      // 64 borders in a row: border * step takes every residue mod 64, so
      // the fragments, `before` bytes ahead of them, start at every one.
      const size_t before = 1 + eligible++ % (kF - 1);
      uint64_t residues = 0;
      for (size_t j = 0; j < 64; ++j, ++border) {
        const size_t pos = border * step - before;
        residues |= uint64_t{1} << (pos % 64);
        const size_t off = corpus.rng()() % (f.size() - kF + 1);
        corpus.PlantAt(pos, k, fi, off, kF);
        bool reported = false;
        Expect(f, off, kF, kF, &reported);
        expected += reported ? 1 : 0;
      }
      ASSERT_EQ(residues, ~uint64_t{0}) << f.name();
    }
  }
  ASSERT_LT(border * step + 64, corpus.data().size());
  EXPECT_GT(expected, 64u * 20);
  const std::string path = TempPath("scanner_alignments.bin");
  FILE* fp = std::fopen(path.c_str(), "wb");
  ASSERT_NE(fp, nullptr);
  std::fwrite(corpus.data().data(), 1, corpus.data().size(), fp);
  std::fclose(fp);
  for (ProbePath p : Scanner::AvailableProbePaths()) {
    SCOPED_TRACE(ProbePathName(p));
    for (int threads : {1, 2}) {
      SCOPED_TRACE("threads " + std::to_string(threads));
      ScanOptions o = opt;
      o.probe_path = p;
      o.threads = threads;
      StatusOr<std::unique_ptr<Scanner>> s = Scanner::Create(keys, o);
      ASSERT_TRUE(s.ok()) << s.status().ToString();
      const std::vector<Finding> mem =
          (*s)->Scan(corpus.data().data(), corpus.data().size());
      StatusOr<ScanReport> file = (*s)->ScanFile(path);
      ASSERT_TRUE(file.ok()) << file.status().ToString();
      const std::vector<Finding>* both[] = {&mem, &file->findings};
      for (const std::vector<Finding>* fs : both) {
        size_t found = 0;
        for (const Plant& pl : corpus.plants()) {
          const Form& f = keys[pl.key].forms()[pl.form];
          bool reported = false;
          const FindingKind kind =
              Expect(f, pl.form_off, pl.len, kF, &reported);
          if (!reported) continue;
          const Finding* hit = FindAt(*fs, pl.pos, pl.len);
          if (hit == nullptr) {
            ADD_FAILURE() << f.name() << "+" << pl.form_off << " at " << pl.pos
                          << " (mod 64: " << pl.pos % 64 << ") not found";
            continue;
          }
          ++found;
          // The same bytes may stand in another form too, where they can be
          // secret: a leak then outranks the anchor. A leak stays a leak.
          if (kind == FindingKind::kLeak) {
            EXPECT_TRUE(IsLeak(hit->kind)) << f.name() << " at " << pl.pos;
          }
        }
        EXPECT_EQ(found, expected);
        EXPECT_TRUE(InsidePlants(*fs, corpus, keys));
      }
      EXPECT_TRUE(SameFindings(file->findings, mem));
    }
  }
  std::remove(path.c_str());
}

TEST(Scanner, ModulusIsAnAnchorNeverALeak) {
  std::vector<KeyForms> keys = TestKeys();
  Corpus corpus(keys, 1 << 20, /*seed=*/5);
  corpus.PlantAt(4096, 0, keys[0].FindForm("rsa.n.le64"), 0, 256);
  corpus.PlantAt(20000, 0, keys[0].FindForm("rsa.n.be"), 17, 40);
  corpus.PlantAt(40000, 1, keys[1].FindForm("ed25519.pub"), 0, 32);
  StatusOr<std::unique_ptr<Scanner>> s = Scanner::Create(keys, {});
  ASSERT_TRUE(s.ok());
  std::vector<Finding> fs =
      (*s)->Scan(corpus.data().data(), corpus.data().size());
  ASSERT_EQ(fs.size(), 3u);
  for (const Finding& f : fs) {
    EXPECT_EQ(f.kind, FindingKind::kAnchor) << f.form;
    EXPECT_EQ(f.secret_bytes, 0u);
  }
  EXPECT_EQ(fs[0].part, "n");
  ScanOptions quiet;
  quiet.report_anchors = false;
  StatusOr<std::unique_ptr<Scanner>> sq = Scanner::Create(keys, quiet);
  ASSERT_TRUE(sq.ok());
  EXPECT_TRUE((*sq)->Scan(corpus.data().data(), corpus.data().size()).empty());
}

TEST(Scanner, ZeroAndRepeatedPagesAreClean) {
  std::vector<KeyForms> keys = TestKeys();
  std::vector<uint8_t> data(size_t{8} << 20, 0);
  for (size_t i = 0; i < data.size(); i += 4096) {
    std::memset(data.data() + i, static_cast<int>((i / 4096) % 256), 2048);
  }
  StatusOr<std::unique_ptr<Scanner>> s = Scanner::Create(keys, {});
  ASSERT_TRUE(s.ok());
  EXPECT_TRUE((*s)->Scan(data.data(), data.size()).empty());
  // A fragment inside a zero page is still found.
  const int d = keys[0].FindForm("rsa.d.le64");
  const Form& f = keys[0].forms()[d];
  std::memcpy(data.data() + size_t{3} * 4096 + 3000, f.data() + 8, 16);
  const std::vector<Finding> fs = (*s)->Scan(data.data(), data.size());
  ASSERT_EQ(fs.size(), 1u);
  // The match is maximal: zero bytes of the form next to the planted run
  // (keys are fresh every run) continue it into the surrounding zeros.
  size_t back = 0, fwd = 0;
  while (back < 8 && f.data()[7 - back] == 0) ++back;
  while (24 + fwd < f.size() && f.data()[24 + fwd] == 0) ++fwd;
  EXPECT_EQ(fs[0].file_offset, 3u * 4096 + 3000 - back);
  EXPECT_EQ(fs[0].length, 16u + back + fwd);
  EXPECT_EQ(fs[0].kind, FindingKind::kLeak);
}

TEST(Scanner, RejectsBadOptions) {
  EXPECT_FALSE(Scanner::Create({}, {}).ok());
  ScanOptions tiny;
  tiny.min_fragment = 7;
  EXPECT_FALSE(Scanner::Create(TestKeys(), tiny).ok());
}

// ELF layer: a synthetic sigrace dump holding p's limbs in a load segment,
// in pairs: found as a leak without a redaction record; found as a leak
// (redaction-not-applied) with a record over bytes the writer did not
// overwrite, absent once the bytes really are the marker; and a leak again
// when the marker misses part of it. The oracle believes bytes, never the
// record.
class ScannerElfTest : public ::testing::Test {
 protected:
  void SetUp() override {
    keys_ = TestKeys();
    StatusOr<std::unique_ptr<Scanner>> s = Scanner::Create(keys_, {});
    ASSERT_TRUE(s.ok());
    scanner_ = std::move(s).value();
    p_ = keys_[0].FindForm("rsa.p.le64");
    core_.threads.push_back({1234, 11, 0x401000, 0x7ffd0000, 0x7ffd0100});
    testing::SyntheticCore::Load heap;
    heap.vaddr = kHeap;
    heap.bytes.assign(8192, 0);
    heap.name = "[heap]";
    const Form& f = keys_[0].forms()[p_];
    std::memcpy(heap.bytes.data() + 0x100, f.data(), f.size());
    core_.loads.push_back(heap);
  }

  StatusOr<ScanReport> ScanCore(bool seal = true, size_t cut = 0) {
    std::vector<uint8_t> bytes = core_.Build(seal);
    if (cut) bytes.resize(bytes.size() - cut);
    return ScanBytes(bytes);
  }
  StatusOr<ScanReport> ScanBytes(const std::vector<uint8_t>& bytes) {
    path_ = TempPath("scanner_elf_test.core");
    FILE* fp = std::fopen(path_.c_str(), "wb");
    EXPECT_NE(fp, nullptr);
    std::fwrite(bytes.data(), 1, bytes.size(), fp);
    std::fclose(fp);
    return scanner_->ScanFile(path_);
  }
  void TearDown() override { std::remove(path_.c_str()); }

  // What the writer does to a recorded range: the byte at address A
  // becomes kRedactionMarker[A % 16].
  // `shift` != 0 writes the marker at the wrong phase.
  void ApplyMarker(uint64_t vaddr, uint64_t len, uint64_t shift = 0) {
    std::vector<uint8_t>& heap = core_.loads[0].bytes;
    for (uint64_t a = vaddr; a < vaddr + len; ++a) {
      heap[a - kHeap] = MarkerByte(a + shift);
    }
  }

  static constexpr uint64_t kHeap = 0x555500000000;
  std::vector<KeyForms> keys_;
  std::unique_ptr<Scanner> scanner_;
  int p_ = -1;
  testing::SyntheticCore core_;
  std::string path_;
};

TEST_F(ScannerElfTest, KeyInLoadSegmentIsALeakWithAddress) {
  core_.meta = "variant=test\n";
  StatusOr<ScanReport> r = ScanCore();
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->file_kind, FileKind::kSigraceDump);
  ASSERT_EQ(r->leaks, 1u);
  const Finding& f = r->findings[0];
  EXPECT_EQ(f.form, "rsa.p.le64");
  EXPECT_TRUE(f.has_address);
  EXPECT_EQ(f.address, kHeap + 0x100);
  EXPECT_EQ(f.length, 128u);
  EXPECT_NE(f.region.find("[heap]"), std::string::npos) << f.region;
}

// Issue 13: a record over key bytes the writer did not overwrite used to
// turn the leak into "redacted". The record is a claim; the bytes are the
// key: a leak of its own kind, and the dump is judged leaking.
TEST_F(ScannerElfTest, RedactionRecordedNotAppliedIsALeak) {
  core_.AddRedaction(RedactionKind::kRange, kHeap + 0x100, 128, 0, "vault");
  StatusOr<ScanReport> r = ScanCore();
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  ASSERT_EQ(r->leaks, 1u);
  EXPECT_EQ(r->not_applied, 1u);
  const Finding& f = r->findings[0];
  EXPECT_EQ(f.kind, FindingKind::kRedactionNotApplied);
  EXPECT_STREQ(FindingKindName(f.kind), "redaction-not-applied");
  EXPECT_EQ(f.form, "rsa.p.le64");
  EXPECT_EQ(f.address, kHeap + 0x100);
  EXPECT_EQ(f.redaction, "vault");
  EXPECT_EQ(r->redactions_recorded, 1u);
  EXPECT_EQ(r->redactions_verified, 0u);
  EXPECT_EQ(r->redactions_not_applied, 1u);
  // A random key byte may equal the marker byte at its address.
  EXPECT_GE(r->bytes_not_applied, 1u);
  EXPECT_LE(r->bytes_not_applied, 128u);
  ASSERT_EQ(r->unapplied.size(), 1u);
  EXPECT_EQ(r->unapplied[0].label, "vault");
  EXPECT_EQ(r->unapplied[0].checked_bytes, 128u);
  const Judgement j = JudgeReport(*r);
  EXPECT_EQ(j.verdict, DumpVerdict::kLeak);
  EXPECT_EQ(j.not_applied, 1u);
  EXPECT_NE(j.reason.find("not applied"), std::string::npos) << j.reason;
}

// The pair: the same record with the range really overwritten by the
// marker: nothing found, the record verified, the dump clean.
TEST_F(ScannerElfTest, RedactionAppliedAsMarkerIsClean) {
  core_.AddRedaction(RedactionKind::kRange, kHeap + 0x100, 128, 0, "vault");
  ApplyMarker(kHeap + 0x100, 128);
  StatusOr<ScanReport> r = ScanCore();
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->leaks, 0u);
  EXPECT_EQ(r->redactions_recorded, 1u);
  EXPECT_EQ(r->redactions_verified, 1u);
  EXPECT_EQ(r->redacted_bytes_verified, 128u);
  EXPECT_EQ(r->redactions_not_applied, 0u);
  EXPECT_TRUE(r->unapplied.empty());
  EXPECT_EQ(JudgeReport(*r).verdict, DumpVerdict::kClean);
}

// The marker's phase is the address: the right bytes at the wrong phase
// are not the marker.
TEST_F(ScannerElfTest, MarkerAtTheWrongPhaseIsNotApplied) {
  core_.AddRedaction(RedactionKind::kRange, kHeap + 0x100, 128, 0, "vault");
  ApplyMarker(kHeap + 0x100, 128, /*shift=*/1);
  StatusOr<ScanReport> r = ScanCore();
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->leaks, 0u);
  EXPECT_EQ(r->redactions_not_applied, 1u);
  EXPECT_EQ(JudgeReport(*r).verdict, DumpVerdict::kRedactionNotApplied);
}

TEST_F(ScannerElfTest, RedactionMissingPartOfTheKeyIsStillALeak) {
  // The marker stops 16 bytes short: those 16 bytes are a leak, outside
  // any record.
  core_.AddRedaction(RedactionKind::kRange, kHeap + 0x100, 112, 0, "vault");
  ApplyMarker(kHeap + 0x100, 112);
  StatusOr<ScanReport> r = ScanCore();
  ASSERT_TRUE(r.ok());
  ASSERT_EQ(r->leaks, 1u);
  EXPECT_EQ(r->findings[0].kind, FindingKind::kLeak);
  EXPECT_EQ(r->findings[0].address, kHeap + 0x100 + 112);
  EXPECT_EQ(r->redactions_verified, 1u);
  // 15 bytes left are not.
  core_.redactions.clear();
  core_.AddRedaction(RedactionKind::kRange, kHeap + 0x100, 113, 0, "vault");
  ApplyMarker(kHeap + 0x100, 113);
  r = ScanCore();
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->leaks, 0u);
  EXPECT_EQ(r->redactions_verified, 1u);
  EXPECT_EQ(JudgeReport(*r).verdict, DumpVerdict::kClean);
}

// A record whose bytes are not the marker is a writer fault even where no
// key fragment lies (here: zeros): counted, listed, judged not clean;
// paired with the same record applied.
TEST_F(ScannerElfTest, RecordNotAppliedWithoutKeyIsAWriterFault) {
  core_.AddRedaction(RedactionKind::kRange, kHeap + 0x1000, 64, 0, "scratch");
  StatusOr<ScanReport> r = ScanCore();
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->leaks, 1u);  // p, outside the record
  EXPECT_EQ(r->not_applied, 0u);
  EXPECT_EQ(r->redactions_not_applied, 1u);
  EXPECT_EQ(r->bytes_not_applied, 64u);
  ASSERT_EQ(r->unapplied.size(), 1u);
  EXPECT_EQ(r->unapplied[0].address, kHeap + 0x1000);
  EXPECT_EQ(r->unapplied[0].non_marker_bytes, 64u);
  EXPECT_EQ(r->unapplied[0].first_file_offset,
            r->findings[0].file_offset - 0x100 + 0x1000);
  // Without the key there: the verdict is the writer fault alone.
  ApplyMarker(kHeap + 0x100, 128);  // (no record: just hides p)
  r = ScanCore();
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->leaks, 0u);
  Judgement j = JudgeReport(*r);
  EXPECT_EQ(j.verdict, DumpVerdict::kRedactionNotApplied);
  EXPECT_EQ(j.records_not_applied, 1u);
  EXPECT_FALSE(j.clean());
  ApplyMarker(kHeap + 0x1000, 64);
  r = ScanCore();
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->redactions_verified, 1u);
  EXPECT_EQ(JudgeReport(*r).verdict, DumpVerdict::kClean);
}

// A range outside every mapping's file bytes (withheld from the dump) has
// nothing to verify: unchecked, not a fault.
TEST_F(ScannerElfTest, RecordOfWithheldMemoryIsUnchecked) {
  core_.AddRedaction(RedactionKind::kHandlerState, 0x7f0000000000, 4096, 0,
                     "handler.scratch (not dumped)");
  ApplyMarker(kHeap + 0x100, 128);
  StatusOr<ScanReport> r = ScanCore();
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->redactions_unchecked, 1u);
  EXPECT_EQ(r->redactions_not_applied, 0u);
  EXPECT_EQ(JudgeReport(*r).verdict, DumpVerdict::kClean);
}

// Register notes (issue 13): a thread with a register redaction record
// whose NT_PRSTATUS still holds key bytes leaks; the old oracle excused
// every register note of such a thread.
class ScannerRegisterTest : public ScannerElfTest {
 protected:
  static constexpr int32_t kTid = 1234;
  static constexpr uint64_t kRbxOffset = uint64_t{5} * 8;  // in pr_reg

  // The built core with `fill` applied to its bytes, resealed.
  std::vector<uint8_t> Edited(
      const std::function<void(const CoreReader&, std::vector<uint8_t>*)>&
          fill) {
    ApplyMarker(kHeap + 0x100, 128);  // p stays out of the heap here
    std::vector<uint8_t> bytes = core_.Build(/*seal=*/false);
    {
      StatusOr<std::unique_ptr<CoreReader>> r =
          CoreReader::FromBuffer(bytes.data(), bytes.size());
      EXPECT_TRUE(r.ok()) << r.status().ToString();
      if (r.ok()) fill(**r, &bytes);
    }
    testing::SyntheticCore::Seal(&bytes);
    return bytes;
  }
  // 32 bytes of p's limbs into rbx, r11, r10, r9 of thread kTid.
  static void PlantKey(const Form& p, const CoreReader& r,
                       std::vector<uint8_t>* bytes) {
    const ThreadInfo& t = r.threads()[0];
    std::memcpy(bytes->data() + t.regs_offset + kRbxOffset, p.data(), 32);
  }
  // What the writer does to a thread in a SecretScope: data registers and
  // the SIMD bytes of NT_FPREGSET become the marker.
  static void MarkRegisters(const CoreReader& r, std::vector<uint8_t>* b) {
    const ThreadInfo& t = r.threads()[0];
    // r15, r14, r13, r12, then rbx .. orig_rax (rbp, word 4, is kept);
    // the i-th of them from phase 8 * i, as core_writer.cc fills them.
    uint64_t i = 0;
    for (uint64_t word = 0; word < 16; ++word) {
      if (word == 4) continue;
      for (uint64_t j = 0; j < 8; ++j) {
        (*b)[t.regs_offset + word * 8 + j] = MarkerByte(i * 8 + j);
      }
      ++i;
    }
    for (size_t ni : t.reg_notes) {
      const NoteInfo& n = r.notes()[ni];
      if (ni == t.prstatus_note) continue;
      for (uint64_t k = 32; k < 416 && k < n.desc_size; ++k) {
        (*b)[n.desc_offset + k] = MarkerByte(k);
      }
    }
  }
};

TEST_F(ScannerRegisterTest, RegisterRecordNotAppliedIsALeak) {
  core_.AddRedaction(RedactionKind::kRegisters, 0, 0, kTid, "registers");
  const Form& p = keys_[0].forms()[p_];
  StatusOr<ScanReport> r =
      ScanBytes(Edited([&](const CoreReader& cr, std::vector<uint8_t>* b) {
        PlantKey(p, cr, b);
      }));
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  ASSERT_EQ(r->leaks, 1u);
  const Finding& f = r->findings[0];
  EXPECT_EQ(f.kind, FindingKind::kRedactionNotApplied);
  EXPECT_EQ(f.tid, kTid);
  EXPECT_EQ(f.region.rfind("note NT_PRSTATUS", 0), 0u) << f.region;
  EXPECT_EQ(f.redaction, "registers");
  EXPECT_EQ(r->redactions_not_applied, 1u);
  EXPECT_EQ(JudgeReport(*r).verdict, DumpVerdict::kLeak);
}

TEST_F(ScannerRegisterTest, RegisterRecordAppliedIsClean) {
  core_.AddRedaction(RedactionKind::kRegisters, 0, 0, kTid, "registers");
  const Form& p = keys_[0].forms()[p_];
  StatusOr<ScanReport> r =
      ScanBytes(Edited([&](const CoreReader& cr, std::vector<uint8_t>* b) {
        PlantKey(p, cr, b);
        MarkRegisters(cr, b);
      }));
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->leaks, 0u);
  EXPECT_EQ(r->redactions_verified, 1u);
  // r15..r12 and rbx..orig_rax, then st0-7/xmm0-15 of NT_FPREGSET.
  EXPECT_EQ(r->redacted_bytes_verified, 15u * 8 + (416 - 32));
  EXPECT_EQ(JudgeReport(*r).verdict, DumpVerdict::kClean);
}

// A "simd-registers" record claims only the SIMD bytes: key bytes in the
// general registers are a plain leak, not excused by the thread's record.
TEST_F(ScannerRegisterTest, SimdRecordDoesNotCoverGeneralRegisters) {
  core_.AddRedaction(RedactionKind::kRegisters, 0, 0, kTid, "simd-registers");
  const Form& p = keys_[0].forms()[p_];
  StatusOr<ScanReport> r =
      ScanBytes(Edited([&](const CoreReader& cr, std::vector<uint8_t>* b) {
        PlantKey(p, cr, b);
        MarkRegisters(cr, b);
        // The general registers hold the key again, as outside a scope.
        PlantKey(p, cr, b);
      }));
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  ASSERT_EQ(r->leaks, 1u);
  EXPECT_EQ(r->findings[0].kind, FindingKind::kLeak);
  EXPECT_TRUE(r->findings[0].redaction.empty()) << r->findings[0].redaction;
  EXPECT_EQ(r->redactions_verified, 1u);  // its SIMD bytes are the marker
  EXPECT_EQ(r->redacted_bytes_verified, 416u - 32);
}

TEST_F(ScannerElfTest, KeyInNoteIsFound) {
  const int seed = keys_[1].FindForm("ed25519.seed");
  const Form& f = keys_[1].forms()[seed];
  testing::SyntheticCore::RawNote note{"CORE", 0x202,
                                       std::vector<uint8_t>(600, 0)};
  std::memcpy(note.desc.data() + 77, f.data(), 32);
  core_.extra_notes.push_back(note);
  StatusOr<ScanReport> r = ScanCore();
  ASSERT_TRUE(r.ok());
  ASSERT_EQ(r->leaks, 2u);
  // The zero fill after the seed may continue it into the public half of
  // "ed25519.seed_pub" (when the public key starts with zero bytes): the
  // finding then names that longer form, still at the seed's bytes.
  bool in_note = false;
  for (const Finding& x : r->findings) {
    if (x.form.rfind("ed25519.seed", 0) == 0 && x.form_offset == 0 &&
        x.length >= 32) {
      in_note = x.region.rfind("note", 0) == 0 && !x.has_address;
    }
  }
  EXPECT_TRUE(in_note) << [&] {
    std::string d;
    for (const Finding& x : r->findings) {
      d += x.form + " @ " + x.region + " len " + std::to_string(x.length) +
           " kind " + FindingKindName(x.kind) + "; ";
    }
    return d;
  }();
}

TEST_F(ScannerElfTest, UnsealedOrTruncatedSigraceDumpIsAnError) {
  core_.AddRedaction(RedactionKind::kRange, kHeap + 0x100, 128, 0, "vault");
  StatusOr<ScanReport> unsealed = ScanCore(/*seal=*/false);
  ASSERT_FALSE(unsealed.ok());
  EXPECT_EQ(unsealed.status().code(), StatusCode::kDataLoss);
  EXPECT_NE(unsealed.status().message().find("unsealed"), std::string::npos)
      << unsealed.status().message();
  StatusOr<ScanReport> cut = ScanCore(/*seal=*/true, /*cut=*/100);
  ASSERT_FALSE(cut.ok());
  EXPECT_EQ(cut.status().code(), StatusCode::kDataLoss);
}

TEST(ScannerFile, RawFileAndMissingFile) {
  std::vector<KeyForms> keys = TestKeys();
  StatusOr<std::unique_ptr<Scanner>> s = Scanner::Create(keys, {});
  ASSERT_TRUE(s.ok());
  const std::string path = TempPath("scanner_raw.bin");
  std::vector<uint8_t> data(100000, 'x');
  const Form& f = keys[0].forms()[keys[0].FindForm("rsa.pkcs8.pem")];
  std::memcpy(data.data() + 5000, f.data(), f.size());
  FILE* fp = std::fopen(path.c_str(), "wb");
  std::fwrite(data.data(), 1, data.size(), fp);
  std::fclose(fp);
  StatusOr<ScanReport> r = (*s)->ScanFile(path);
  std::remove(path.c_str());
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->file_kind, FileKind::kRaw);
  ASSERT_GE(r->leaks, 1u);
  EXPECT_EQ(r->findings[0].form, "rsa.pkcs8.pem");
  EXPECT_EQ(r->findings[0].length, f.size());
  StatusOr<ScanReport> missing = (*s)->ScanFile("/nonexistent/dump");
  EXPECT_FALSE(missing.ok());
}

// ScanFile reads each work item a read_size step at a time into a buffer
// that slides along it, keeping the longest form's length either side of
// the probes. Small steps put many read borders in a small file: 16-byte
// fragments straddle them at every split point, the longest form (longer
// than one step) is planted whole across several of them, so its
// extension needs bytes read by later steps, and fragments touch the
// first and last bytes of the file. ScanFile must give exactly what Scan
// of the same bytes in memory gives, for odd step sizes, on one and two
// threads.
TEST(ScannerFile, SmallReadsGiveTheSameFindingsAsScan) {
  std::vector<KeyForms> keys = TestKeys();
  ASSERT_EQ(keys.size(), 3u);
  Corpus corpus(keys, (size_t{3} << 20) + 777, /*seed=*/4242);
  ScanOptions opt;
  opt.chunk_size = 1 << 16;
  opt.read_size = 4096;
  StatusOr<std::unique_ptr<Scanner>> probe = Scanner::Create(keys, opt);
  ASSERT_TRUE(probe.ok()) << probe.status().ToString();
  const size_t stride = (*probe)->probe_stride();
  const size_t chunk = (size_t{1} << 16) / stride * stride;
  const size_t step = 4096 / stride * stride;
  const int q = keys[0].FindForm("rsa.q.le64");
  ASSERT_GE(q, 0);
  uint32_t longest = 0;
  for (uint32_t fi = 0; fi < keys[0].forms().size(); ++fi) {
    if (keys[0].forms()[fi].size() > keys[0].forms()[longest].size()) {
      longest = fi;
    }
  }
  const size_t long_len = keys[0].forms()[longest].size();
  ASSERT_GT(long_len, step);
  // Read borders inside work items 3..5 at split points 1..15, and the
  // work-item borders themselves.
  for (size_t k = 1; k < 16; ++k) {
    const size_t item = 3 + k % 3;
    corpus.PlantAt(item * chunk + k * step - k, 0, q, k, 16);
  }
  corpus.PlantAt(8 * chunk - 5, 0, q, 20, 16);
  corpus.PlantAt(9 * chunk - 11, 0, q, 30, 40);
  // The longest form, whole, from just before a read border, and again
  // across a work-item border.
  corpus.PlantAt(12 * chunk + 2 * step - 3, 0, longest, 0, long_len);
  corpus.PlantAt(20 * chunk - long_len / 2, 0, longest, 0, long_len);
  corpus.PlantAt(0, 0, q, 50, 16);
  corpus.PlantAt(corpus.data().size() - 16, 0, q, 60, 16);

  const std::vector<Finding> mem =
      (*probe)->Scan(corpus.data().data(), corpus.data().size());
  for (const Plant& p : corpus.plants()) {
    EXPECT_NE(FindAt(mem, p.pos, p.len), nullptr) << "at " << p.pos;
  }
  EXPECT_TRUE(InsidePlants(mem, corpus, keys));

  const std::string path = TempPath("scanner_small_reads.bin");
  FILE* fp = std::fopen(path.c_str(), "wb");
  ASSERT_NE(fp, nullptr);
  std::fwrite(corpus.data().data(), 1, corpus.data().size(), fp);
  std::fclose(fp);
  for (size_t read_size :
       {size_t{4096}, size_t{5000}, size_t{60000}, size_t{256} << 10}) {
    for (int threads : {1, 2}) {
      SCOPED_TRACE("read_size " + std::to_string(read_size) + " threads " +
                   std::to_string(threads));
      ScanOptions o = opt;
      o.read_size = read_size;
      o.threads = threads;
      StatusOr<std::unique_ptr<Scanner>> s = Scanner::Create(keys, o);
      ASSERT_TRUE(s.ok());
      StatusOr<ScanReport> file = (*s)->ScanFile(path);
      ASSERT_TRUE(file.ok()) << file.status().ToString();
      EXPECT_TRUE(SameFindings(file->findings, mem));
    }
  }
  std::remove(path.c_str());
}

// A sparse file (zero pages left as holes, as the handler writes dumps):
// ScanFile reads only the data extents, widened by the longest form, and
// gives exactly what Scan of the same bytes in memory gives: fragments at
// the first byte after a hole, ending at the last byte before one, on a
// lone data page among holes, and inside the data.
TEST(ScannerFile, SparseFileSkipsHolesAndGivesTheSameFindingsAsScan) {
  std::vector<KeyForms> keys = TestKeys();
  ASSERT_EQ(keys.size(), 3u);
  constexpr size_t kMiB = size_t{1} << 20;
  Corpus corpus(keys, 16 * kMiB, /*seed=*/777);
  std::vector<uint8_t>& d = corpus.data();
  // Data: [1 MiB, 1 MiB + 64 KiB), [9 MiB, 9 MiB + 12 KiB), the last page;
  // zeros elsewhere.
  auto zero = [&](size_t b, size_t e) { std::memset(d.data() + b, 0, e - b); };
  zero(0, kMiB);
  zero(kMiB + 65536, 9 * kMiB);
  zero(9 * kMiB + 12288, d.size() - 4096);
  const int q = keys[0].FindForm("rsa.q.le64");
  const int seed = keys[1].FindForm("ed25519.seed");
  ASSERT_GE(q, 0);
  ASSERT_GE(seed, 0);
  corpus.PlantAt(kMiB + 1, 0, q, 3, 40);            // just after a hole
  corpus.PlantAt(kMiB + 65536 - 17, 0, q, 70, 16);  // just before one
  corpus.PlantAt(kMiB + 20000, 1, seed, 0, 32);     // inside the data
  corpus.PlantAt(5 * kMiB + 100, 0, q, 10, 24);     // a lone page in holes
  corpus.PlantAt(9 * kMiB + 5000, 0, q, 0, 128);
  corpus.PlantAt(d.size() - 20, 0, q, 90, 19);  // the file's last bytes

  ScanOptions opt;
  opt.chunk_size = 1 << 16;
  StatusOr<std::unique_ptr<Scanner>> s = Scanner::Create(keys, opt);
  ASSERT_TRUE(s.ok()) << s.status().ToString();
  const std::vector<Finding> mem = (*s)->Scan(d.data(), d.size());
  for (const Plant& p : corpus.plants()) {
    EXPECT_NE(FindAt(mem, p.pos, p.len), nullptr) << "at " << p.pos;
  }
  EXPECT_TRUE(InsidePlants(mem, corpus, keys));

  const std::string path = TempPath("scanner_sparse.bin");
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
  ASSERT_GE(fd, 0);
  for (size_t off = 0; off < d.size(); off += 4096) {
    if (std::all_of(d.begin() + static_cast<ptrdiff_t>(off),
                    d.begin() + static_cast<ptrdiff_t>(off + 4096),
                    [](uint8_t b) { return b == 0; })) {
      continue;
    }
    ASSERT_EQ(::pwrite(fd, d.data() + off, 4096, static_cast<off_t>(off)),
              4096);
  }
  ASSERT_EQ(::ftruncate(fd, static_cast<off_t>(d.size())), 0);
  ::close(fd);
  for (int threads : {1, 2}) {
    SCOPED_TRACE("threads " + std::to_string(threads));
    ScanOptions o = opt;
    o.threads = threads;
    StatusOr<std::unique_ptr<Scanner>> t = Scanner::Create(keys, o);
    ASSERT_TRUE(t.ok());
    StatusOr<ScanReport> file = (*t)->ScanFile(path);
    ASSERT_TRUE(file.ok()) << file.status().ToString();
    EXPECT_TRUE(SameFindings(file->findings, mem));
    // ext4, xfs and tmpfs keep holes; where the file system does not, the
    // whole file is searched and only the findings are checked.
    if (file->bytes_searched < d.size()) {
      EXPECT_LT(file->bytes_searched, d.size() / 4);
    } else {
      std::fprintf(stderr, "note: no holes here; searched all %zu bytes\n",
                   d.size());
    }
  }
  std::remove(path.c_str());
}

}  // namespace
}  // namespace sigrace::crashdump
