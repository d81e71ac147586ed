#include "tools/scan.h"

#include <openssl/evp.h>
#include <openssl/rsa.h>

#include <CLI/CLI.hpp>
#include <cctype>
#include <cstdio>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "base/files.h"
#include "base/hex.h"
#include "crashdump/oracle/judgement.h"
#include "crashdump/oracle/key_forms.h"
#include "crashdump/oracle/scanner.h"
#include "tools/common.h"

namespace sigrace::crashdump {
namespace {

// Region names, labels and paths come from the dump or the command line:
// escaped (tools/common.h) so they can neither drive the terminal nor
// break the JSON.
using tools::Printable;

std::string OneLine(std::string s) {
  for (char& c : s) {
    if (c == '\n' || c == '\r') c = ' ';
  }
  return s;
}

int Fail(const std::string& what) {
  std::fprintf(stderr, "sigrace: scan: %s\n", OneLine(Printable(what)).c_str());
  return 2;
}

bool Write(const std::string& s) {
  return std::fwrite(s.data(), 1, s.size(), stdout) == s.size();
}

int ListForms(const std::vector<std::string>& key_paths) {
  std::vector<KeyForms> keys;
  bool examples = key_paths.empty();
  if (examples) {
    // Example keys, generated here and dropped: the table's lengths are
    // those of a typical key of each type.
    struct PkeyFree {
      void operator()(EVP_PKEY* p) const { EVP_PKEY_free(p); }
    };
    std::unique_ptr<EVP_PKEY, PkeyFree> made[] = {
        std::unique_ptr<EVP_PKEY, PkeyFree>(EVP_RSA_gen(2048)),
        std::unique_ptr<EVP_PKEY, PkeyFree>(
            EVP_PKEY_Q_keygen(nullptr, nullptr, "ED25519")),
        std::unique_ptr<EVP_PKEY, PkeyFree>(
            EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", "P-256"))};
    for (auto& p : made) {
      if (!p) return Fail("cannot generate an example key");
      StatusOr<KeyForms> k = KeyForms::FromPkey(p.get(), "example");
      if (!k.ok()) return Fail(k.status().message());
      keys.push_back(std::move(k).value());
    }
  } else {
    for (const std::string& path : key_paths) {
      StatusOr<KeyForms> k = KeyForms::FromFile(path);
      if (!k.ok()) return Fail(k.status().message());
      keys.push_back(std::move(k).value());
    }
  }
  std::string out;
  for (const KeyForms& k : keys) {
    out += "# " + k.key_type() +
           (examples ? " (lengths of a freshly generated key)"
                     : " " + Printable(k.key_id())) +
           ": " + std::to_string(k.forms().size()) + " forms\n";
    out += "# kind     bytes  name                          description\n";
    for (const FormInfo& row : k.Table()) {
      char line[512];
      std::snprintf(line, sizeof(line), "%-8s %6zu  %-29s %s\n",
                    row.is_private ? "private" : "anchor", row.size,
                    row.name.c_str(), row.description.c_str());
      out += line;
    }
    out += "\n";
  }
  out +=
      "A finding is a leak when the maximal match holds at least F secret "
      "bytes;\nanchors (n, e, public keys) are reported, never leaks. No key "
      "byte is printed.\n";
  return Write(out) ? 0 : Fail("cannot write to stdout");
}

nlohmann::json FindingJson(const Finding& f) {
  nlohmann::json j;
  j["kind"] = FindingKindName(f.kind);
  j["file_offset"] = f.file_offset;
  j["length"] = f.length;
  j["key"] = f.key_index;
  j["form"] = f.form;
  j["part"] = f.part;
  j["form_offset"] = f.form_offset;
  j["secret_bytes"] = f.secret_bytes;
  j["other_forms"] = f.other_forms;
  j["address"] =
      f.has_address ? nlohmann::json(Hex(f.address)) : nlohmann::json(nullptr);
  j["region"] = Printable(f.region);
  j["tid"] = f.tid;
  j["redaction"] = Printable(f.redaction);
  return j;
}

std::string FindingText(const Finding& f) {
  std::string s = "  ";
  char head[128];
  std::snprintf(head, sizeof(head), "%-9s off %s", FindingKindName(f.kind),
                Hex(f.file_offset).c_str());
  s += head;
  if (f.has_address) s += " addr " + Hex(f.address);
  s += " len " + std::to_string(f.length) + " " + f.form + "[" +
       std::to_string(f.form_offset) + "+" + std::to_string(f.length) + "]";
  if (!f.part.empty()) s += " part " + f.part;
  if (f.other_forms) s += " (+" + std::to_string(f.other_forms) + " forms)";
  if (!f.region.empty()) s += " region " + Printable(f.region);
  if (!f.redaction.empty()) s += " redaction " + Printable(f.redaction);
  return s + "\n";
}

// A record not applied: a warning of its own, not a finding of the key.
nlohmann::json UnappliedJson(const UnappliedRedaction& u) {
  return {{"record", u.record},
          {"kind", RedactionKindName(u.kind)},
          {"label", Printable(u.label)},
          {"tid", u.tid},
          {"address", Hex(u.address)},
          {"length", u.length},
          {"checked_bytes", u.checked_bytes},
          {"non_marker_bytes", u.non_marker_bytes},
          {"first_file_offset", u.first_file_offset}};
}

std::string UnappliedText(const UnappliedRedaction& u) {
  return "  warning   redaction recorded, not applied: record " +
         std::to_string(u.record) + " " + RedactionKindName(u.kind) + " " +
         Printable(u.label) + (u.tid ? " tid " + std::to_string(u.tid) : "") +
         ": " + std::to_string(u.non_marker_bytes) + " of " +
         std::to_string(u.checked_bytes) +
         " bytes not the marker, first at off " + Hex(u.first_file_offset) +
         "\n";
}

// SARIF 2.1.0 (https://docs.oasis-open.org/sarif/sarif/v2.1.0/): one rule
// per finding kind, one artifact per dump, one result per finding with
// the dump as artifact and the finding's byte offset and length as
// region. Like the other outputs it names forms, regions, offsets and
// lengths, never key bytes.
struct SarifRule {
  const char* id;
  const char* name;
  const char* level;
  const char* text;
};
constexpr SarifRule kSarifRules[] = {
    {"sigrace/key-fragment", "KeyFragmentInDump", "error",
     "A fragment of an in-memory form of a private key is in the dump, "
     "outside every region the dump records as redacted."},
    {"sigrace/redaction-not-applied", "RedactionNotApplied", "error",
     "A fragment of a private key form sits where the dump records a "
     "redaction: the record was written, the redaction not applied."},
    {"sigrace/public-anchor", "PublicKeyAnchor", "note",
     "Public key material (modulus, exponent, public key) of a scanned "
     "key: never a leak, reported to show where the key's process was."},
};

size_t SarifRuleIndex(FindingKind kind) {
  switch (kind) {
    case FindingKind::kLeak:
      return 0;
    case FindingKind::kRedactionNotApplied:
      return 1;
    case FindingKind::kAnchor:
      return 2;
  }
  return 0;
}

// A path as a URI reference: absolute paths as file:// URIs, relative ones
// as relative references; every byte outside RFC 3986's unreserved set and
// '/' percent-encoded.
std::string PathUri(const std::string& path) {
  static const char kHex[] = "0123456789ABCDEF";
  std::string out = path.rfind('/', 0) == 0 ? "file://" : "";
  for (unsigned char c : path) {
    if (std::isalnum(c) || c == '-' || c == '.' || c == '_' || c == '~' ||
        c == '/') {
      out += static_cast<char>(c);
    } else {
      out += '%';
      out += kHex[c >> 4];
      out += kHex[c & 15];
    }
  }
  return out;
}

nlohmann::json SarifRulesJson() {
  nlohmann::json rules = nlohmann::json::array();
  for (const SarifRule& r : kSarifRules) {
    rules.push_back({{"id", r.id},
                     {"name", r.name},
                     {"shortDescription", {{"text", r.name}}},
                     {"fullDescription", {{"text", r.text}}},
                     {"defaultConfiguration", {{"level", r.level}}},
                     {"help",
                      {{"text", std::string(r.text) +
                                    " See `sigrace scan --list-forms` for "
                                    "the forms."}}}});
  }
  return rules;
}

nlohmann::json SarifResult(const Finding& f, const std::string& uri,
                           size_t artifact) {
  const size_t rule = SarifRuleIndex(f.kind);
  std::string text = std::string(FindingKindName(f.kind)) + ": " +
                     std::to_string(f.length) + " bytes of form " + f.form +
                     " (at form offset " + std::to_string(f.form_offset) +
                     ") at file offset " + std::to_string(f.file_offset);
  if (!f.region.empty()) text += " in region " + Printable(f.region);
  nlohmann::json props = {{"form", f.form},
                          {"formOffset", f.form_offset},
                          {"secretBytes", f.secret_bytes},
                          {"key", f.key_index},
                          {"region", Printable(f.region)},
                          {"tid", f.tid}};
  if (!f.part.empty()) props["part"] = f.part;
  if (f.has_address) props["address"] = Hex(f.address);
  if (!f.redaction.empty()) props["redaction"] = Printable(f.redaction);
  return {{"ruleId", kSarifRules[rule].id},
          {"ruleIndex", rule},
          // SARIF: a result whose kind is not "fail" has level "none".
          {"level",
           f.kind == FindingKind::kAnchor ? "none" : kSarifRules[rule].level},
          {"kind", f.kind == FindingKind::kAnchor ? "informational" : "fail"},
          {"message", {{"text", text}}},
          {"locations",
           {{{"physicalLocation",
              {{"artifactLocation", {{"uri", uri}, {"index", artifact}}},
               {"region",
                {{"byteOffset", f.file_offset}, {"byteLength", f.length}}}}}}}},
          {"partialFingerprints",
           {{"sigraceFinding/v1", f.form + ":" + std::to_string(f.form_offset) +
                                      ":" + std::to_string(f.length)}}},
          {"properties", props}};
}

}  // namespace

int ScanMain(int argc, char** argv) {
  CLI::App app(
      "Scan dumps (sigrace dumps, kernel or gcore cores, any file) for any "
      "fragment of any in-memory form of a private key, and check that every "
      "redaction the dump records is applied. Exit 0 clean, 1 leak or "
      "redaction not applied, 2 error. Never prints key bytes.",
      "sigrace scan");
  std::vector<std::string> key_paths;
  std::vector<std::string> dumps;
  size_t min_fragment = 16;
  int threads = 0;
  bool json = false;
  bool list_forms = false;
  bool no_anchors = false;
  bool raw = false;
  std::string sarif_path;
  app.add_option("--key", key_paths,
                 "private key file: PEM (PKCS#8, PKCS#1, SEC1) or DER; "
                 "repeat for several keys")
      ->allow_extra_args(false);
  app.add_option("--min-fragment", min_fragment,
                 "F: shortest run of form bytes reported (>= 8)")
      ->capture_default_str()
      ->check(tools::UintIn(8, 1048576));
  app.add_option("--threads", threads, "worker threads (0: one per CPU)")
      ->capture_default_str()
      ->check(tools::UintIn(0, 1024));
  app.add_flag("--json", json,
               "one JSON object on stdout (schema in tools/scan.h)");
  app.add_flag("--no-anchors", no_anchors, "do not report public-key anchors");
  app.add_flag("--raw", raw,
               "scan a file that looks like a damaged core dump (ELF magic "
               "or type altered, a seal trailer without an ELF header) as "
               "raw bytes; without it such a file is an error");
  app.add_flag("--list-forms", list_forms,
               "print the form table (names, descriptions, lengths) and exit");
  app.add_option("--sarif", sarif_path,
                 "also write the findings as SARIF 2.1.0 to this file (each "
                 "finding a result: the dump as artifact, its byte offset "
                 "and length as region)");
  app.add_option("DUMP", dumps, "files to scan");
  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    return Fail(std::string(e.what()) + " (see --help)");
  }
  if (list_forms) return ListForms(key_paths);
  if (key_paths.empty()) return Fail("--key is required (see --help)");
  if (dumps.empty()) return Fail("no DUMP given (see --help)");
  if (threads < 0) return Fail("--threads must be >= 0");

  ScanOptions opt;
  opt.min_fragment = min_fragment;
  opt.threads = threads;
  opt.report_anchors = !no_anchors;
  opt.raw_damaged = raw;
  StatusOr<std::unique_ptr<Scanner>> scanner =
      Scanner::FromKeyFiles(key_paths, opt);
  if (!scanner.ok()) return Fail(scanner.status().message());

  nlohmann::json jdumps = nlohmann::json::array();
  nlohmann::json sarif_artifacts = nlohmann::json::array();
  nlohmann::json sarif_results = nlohmann::json::array();
  nlohmann::json sarif_notes = nlohmann::json::array();
  size_t leaks = 0, unclean = 0, not_applied = 0, anchors = 0, errors = 0;
  std::string text;
  for (const std::string& path : dumps) {
    StatusOr<ScanReport> r = (*scanner)->ScanFile(path);
    if (!r.ok()) {
      ++errors;
      // The reader's messages do not repeat the path; ours sometimes do.
      std::string msg = r.status().message();
      if (msg.rfind(path, 0) != 0) msg = path + ": " + msg;
      Fail(msg);
      sarif_notes.push_back(
          {{"level", "error"},
           {"message", {{"text", Printable(OneLine(msg))}}},
           {"locations",
            {{{"physicalLocation",
               {{"artifactLocation", {{"uri", PathUri(path)}}}}}}}}});
      if (json) {
        jdumps.push_back({{"path", Printable(path)},
                          {"status", "error"},
                          {"error", Printable(OneLine(msg))}});
      }
      continue;
    }
    const Judgement j = JudgeReport(*r);
    const size_t artifact = sarif_artifacts.size();
    sarif_artifacts.push_back({{"location", {{"uri", PathUri(path)}}},
                               {"length", r->file_size},
                               {"roles", {"analysisTarget"}}});
    for (const Finding& f : r->findings) {
      sarif_results.push_back(SarifResult(f, PathUri(path), artifact));
    }
    leaks += r->leaks;
    unclean += j.clean() ? 0 : 1;
    not_applied += r->redactions_not_applied;
    anchors += r->anchors;
    if (json) {
      nlohmann::json jf = nlohmann::json::array();
      for (const Finding& f : r->findings) jf.push_back(FindingJson(f));
      nlohmann::json ju = nlohmann::json::array();
      for (const UnappliedRedaction& u : r->unapplied) {
        ju.push_back(UnappliedJson(u));
      }
      jdumps.push_back({{"path", Printable(path)},
                        {"status", "ok"},
                        {"file_kind", FileKindName(r->file_kind)},
                        {"file_size", r->file_size},
                        {"scan_seconds", r->seconds},
                        {"verdict", DumpVerdictName(j.verdict)},
                        {"leaks", r->leaks},
                        {"not_applied", r->not_applied},
                        {"anchors", r->anchors},
                        {"redactions_recorded", r->redactions_recorded},
                        {"redactions_verified", r->redactions_verified},
                        {"redacted_bytes_verified", r->redacted_bytes_verified},
                        {"redactions_not_applied", r->redactions_not_applied},
                        {"bytes_not_applied", r->bytes_not_applied},
                        {"redactions_unchecked", r->redactions_unchecked},
                        {"findings", jf},
                        {"unapplied_redactions", ju}});
    } else {
      text += Printable(path) + ": " + FileKindName(r->file_kind) + ", " +
              std::to_string(r->file_size) + " bytes, " +
              DumpVerdictName(j.verdict) + ", " + std::to_string(r->leaks) +
              " leaks, " + std::to_string(r->anchors) + " anchors; " +
              RedactionSummary(*r) + "\n";
      for (const Finding& f : r->findings) text += FindingText(f);
      for (const UnappliedRedaction& u : r->unapplied) {
        text += UnappliedText(u);
      }
    }
  }
  // Not clean (judgement.h): a leak, or a redaction recorded, not applied.
  const int code = errors ? 2 : unclean ? 1 : 0;
  if (json) {
    nlohmann::json jkeys = nlohmann::json::array();
    for (const KeyForms& k : (*scanner)->keys()) {
      jkeys.push_back({{"id", Printable(k.key_id())},
                       {"type", k.key_type()},
                       {"forms", k.forms().size()}});
    }
    const OracleReach& reach = (*scanner)->reach();
    nlohmann::json out = {{"min_fragment", min_fragment},
                          {"keys", jkeys},
                          {"reach",
                           {{"forms_indexed", reach.forms_indexed},
                            {"forms_total", reach.forms_total},
                            {"shortest_form", reach.shortest},
                            {"longest_form", reach.longest}}},
                          {"dumps", jdumps},
                          {"leaks", leaks},
                          {"not_clean", unclean},
                          {"redactions_not_applied", not_applied},
                          {"errors", errors},
                          {"exit_code", code}};
    text = out.dump(2, ' ', false, nlohmann::json::error_handler_t::replace) +
           "\n";
  } else {
    text += "summary: " + std::to_string(dumps.size()) + " dumps, " +
            std::to_string(unclean) + " not clean, " + std::to_string(leaks) +
            " leaks, " + std::to_string(not_applied) +
            " redactions not applied, " + std::to_string(anchors) +
            " anchors, " + std::to_string(errors) + " errors\n";
    const OracleReach& reach = (*scanner)->reach();
    text += "oracle: " + std::to_string((*scanner)->keys().size()) + " keys, " +
            std::to_string(reach.forms_indexed) + " of " +
            std::to_string(reach.forms_total) +
            " private forms indexed at min fragment " +
            std::to_string(min_fragment) + " (" +
            std::to_string(reach.shortest) + " to " +
            std::to_string(reach.longest) + " bytes)\n";
  }
  if (!sarif_path.empty()) {
    nlohmann::json sarif = {
        {"$schema",
         "https://docs.oasis-open.org/sarif/sarif/v2.1.0/errata01/os/schemas/"
         "sarif-schema-2.1.0.json"},
        {"version", "2.1.0"},
        {"runs",
         {{{"tool",
            {{"driver", {{"name", "sigrace"}, {"rules", SarifRulesJson()}}}}},
           {"invocations",
            {{{"executionSuccessful", errors == 0},
              {"exitCode", code},
              {"toolExecutionNotifications", sarif_notes}}}},
           {"artifacts", sarif_artifacts},
           {"results", sarif_results},
           {"properties",
            {{"minFragment", min_fragment},
             {"leaks", leaks},
             {"notClean", unclean}}}}}}};
    Status st = WriteFileAtomic(
        sarif_path,
        sarif.dump(2, ' ', false, nlohmann::json::error_handler_t::replace) +
            "\n");
    if (!st.ok()) return Fail(st.message());
  }
  if (!Write(text) || std::fflush(stdout) != 0) {
    return Fail("cannot write to stdout");
  }
  return code;
}

}  // namespace sigrace::crashdump
