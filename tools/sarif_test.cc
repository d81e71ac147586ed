// `sigrace scan --sarif`: the SARIF 2.1.0 log of a scan validates against
// the published schema (vendored in testing/sarif/, checked with Debian's
// python3-jsonschema), in a pair: a file holding an Ed25519 key's seed
// gives one error result at the seed's byte offset with the file as
// artifact; the same file without it gives none. The validator itself is
// shown to reject a broken log, and no key byte reaches the log.

#include <gtest/gtest.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

namespace {

std::string Env(const char* name) {
  const char* v = getenv(name);
  return v != nullptr ? v : "";
}

class TempDir {
 public:
  TempDir() {
    char t[] = "/tmp/sigrace-sarif-test-XXXXXX";
    path_ = mkdtemp(t) != nullptr ? t : "/tmp";
  }
  ~TempDir() { (void)!system(("rm -rf '" + path_ + "'").c_str()); }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

std::string ReadAll(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

int Sh(const std::string& cmd) {
  const int st = system(cmd.c_str());
  return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

// 0 valid, 1 invalid, 2 no validator.
int Validate(const std::string& schema, const std::string& log,
             const std::string& out) {
  return Sh(
      "/usr/bin/python3 -c 'import json,sys\n"
      "try:\n import jsonschema\nexcept ImportError:\n sys.exit(2)\n"
      "s=json.load(open(sys.argv[1]))\n"
      "jsonschema.Draft4Validator.check_schema(s)\n"
      "errs=list(jsonschema.Draft4Validator(s).iter_errors("
      "json.load(open(sys.argv[2]))))\n"
      "[print(e.message[:200]) for e in errs[:5]]\n"
      "sys.exit(1 if errs else 0)' '" +
      schema + "' '" + log + "' >'" + out + "' 2>&1");
}

class SarifTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (Env("SIGRACE_BIN").empty()) GTEST_FAIL() << "SIGRACE_BIN not set";
    if (Env("SIGRACE_SARIF_SCHEMA").empty()) {
      GTEST_FAIL() << "SIGRACE_SARIF_SCHEMA not set";
    }
    EVP_PKEY* k = EVP_PKEY_Q_keygen(nullptr, nullptr, "ED25519");
    ASSERT_NE(k, nullptr);
    key_ = d_.path() + "/key.pem";
    FILE* f = fopen(key_.c_str(), "w");
    ASSERT_NE(f, nullptr);
    ASSERT_EQ(PEM_write_PrivateKey(f, k, nullptr, nullptr, 0, nullptr, nullptr),
              1);
    fclose(f);
    size_t n = sizeof(seed_);
    ASSERT_EQ(EVP_PKEY_get_raw_private_key(k, seed_, &n), 1);
    ASSERT_EQ(n, sizeof(seed_));
    EVP_PKEY_free(k);
  }

  // A raw file of `size` bytes of 'x', with the seed at `offset` if >= 0.
  std::string MakeFile(const std::string& name, long offset) {
    std::string bytes(8192, 'x');
    if (offset >= 0) {
      bytes.replace(static_cast<size_t>(offset), sizeof(seed_),
                    reinterpret_cast<const char*>(seed_), sizeof(seed_));
    }
    const std::string p = d_.path() + "/" + name;
    std::ofstream(p, std::ios::binary) << bytes;
    return p;
  }

  int Scan(const std::string& file, const std::string& sarif) {
    return Sh("'" + Env("SIGRACE_BIN") + "' scan --key '" + key_ +
              "' --sarif '" + sarif + "' '" + file + "' >'" + d_.path() +
              "/scan.log' 2>&1");
  }

  TempDir d_;
  std::string key_;
  unsigned char seed_[32] = {};
};

TEST_F(SarifTest, LeakIsAResultAtItsByteOffsetAndValidates) {
  const long offset = 3001;
  const std::string file = MakeFile("leaky.bin", offset);
  const std::string sarif = d_.path() + "/leaky.sarif";
  EXPECT_EQ(Scan(file, sarif), 1) << ReadAll(d_.path() + "/scan.log");
  const std::string text = ReadAll(sarif);
  const nlohmann::json j = nlohmann::json::parse(text, nullptr, false);
  ASSERT_TRUE(j.is_object()) << text;
  EXPECT_EQ(j["version"], "2.1.0");
  ASSERT_EQ(j["runs"].size(), 1u);
  const nlohmann::json& run = j["runs"][0];
  ASSERT_EQ(run["artifacts"].size(), 1u);
  EXPECT_EQ(run["artifacts"][0]["location"]["uri"], "file://" + file);
  EXPECT_EQ(run["artifacts"][0]["length"], 8192);
  bool found = false;
  for (const auto& r : run["results"]) {
    if (r["ruleId"] != "sigrace/key-fragment") continue;
    const auto& loc = r["locations"][0]["physicalLocation"];
    EXPECT_EQ(loc["artifactLocation"]["index"], 0);
    EXPECT_EQ(r["level"], "error");
    if (loc["region"]["byteOffset"] == offset) {
      found = true;
      EXPECT_EQ(loc["region"]["byteLength"], 32);
      EXPECT_EQ(r["properties"]["form"].get<std::string>().rfind("ed25519", 0),
                0u)
          << r.dump();
    }
  }
  EXPECT_TRUE(found) << text;
  EXPECT_EQ(run["invocations"][0]["exitCode"], 1);
  // No key byte, raw or as hex.
  EXPECT_EQ(text.find(std::string(reinterpret_cast<const char*>(seed_), 16)),
            std::string::npos);
  std::string hex;
  for (int i = 0; i < 16; ++i) {
    char b[3];
    std::snprintf(b, sizeof(b), "%02x", seed_[i]);
    hex += b;
  }
  EXPECT_EQ(text.find(hex), std::string::npos);
  const std::string out = d_.path() + "/validate.log";
  EXPECT_EQ(Validate(Env("SIGRACE_SARIF_SCHEMA"), sarif, out), 0)
      << ReadAll(out);
}

TEST_F(SarifTest, CleanFileHasNoResultAndValidates) {
  const std::string file = MakeFile("clean.bin", -1);
  const std::string sarif = d_.path() + "/clean.sarif";
  EXPECT_EQ(Scan(file, sarif), 0) << ReadAll(d_.path() + "/scan.log");
  const nlohmann::json j =
      nlohmann::json::parse(ReadAll(sarif), nullptr, false);
  ASSERT_TRUE(j.is_object());
  EXPECT_TRUE(j["runs"][0]["results"].empty()) << j.dump(2);
  const std::string out = d_.path() + "/validate.log";
  EXPECT_EQ(Validate(Env("SIGRACE_SARIF_SCHEMA"), sarif, out), 0)
      << ReadAll(out);
}

// The vendored schema is the final published one (SARIF 2.1.0 Errata 01,
// OASIS Standard), not a draft, and the log's $schema names it.
TEST_F(SarifTest, SchemaIsTheFinalOneAndTheLogNamesIt) {
  const nlohmann::json schema = nlohmann::json::parse(
      ReadAll(Env("SIGRACE_SARIF_SCHEMA")), nullptr, false);
  ASSERT_TRUE(schema.is_object());
  const std::string id = schema.value("id", "");
  EXPECT_EQ(id,
            "https://docs.oasis-open.org/sarif/sarif/v2.1.0/errata01/os/"
            "schemas/sarif-schema-2.1.0.json");
  const std::string file = MakeFile("clean.bin", -1);
  const std::string sarif = d_.path() + "/clean.sarif";
  ASSERT_EQ(Scan(file, sarif), 0) << ReadAll(d_.path() + "/scan.log");
  const nlohmann::json j =
      nlohmann::json::parse(ReadAll(sarif), nullptr, false);
  ASSERT_TRUE(j.is_object());
  EXPECT_EQ(j.value("$schema", ""), id);
}

// The check above can fail: the same validator rejects a log whose region
// has a negative offset and whose version is wrong.
TEST_F(SarifTest, ValidatorRejectsABrokenLog) {
  const std::string file = MakeFile("leaky.bin", 100);
  const std::string sarif = d_.path() + "/leaky.sarif";
  ASSERT_EQ(Scan(file, sarif), 1);
  nlohmann::json j = nlohmann::json::parse(ReadAll(sarif), nullptr, false);
  ASSERT_TRUE(j.is_object());
  ASSERT_FALSE(j["runs"][0]["results"].empty());
  j["runs"][0]["results"][0]["locations"][0]["physicalLocation"]["region"]
   ["byteOffset"] = -5;
  j["version"] = "2.0.0";
  const std::string broken = d_.path() + "/broken.sarif";
  std::ofstream(broken) << j.dump();
  const std::string out = d_.path() + "/validate.log";
  EXPECT_EQ(Validate(Env("SIGRACE_SARIF_SCHEMA"), broken, out), 1)
      << ReadAll(out);
}

}  // namespace
