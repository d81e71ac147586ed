#include "tools/token.h"

#include <CLI/CLI.hpp>
#include <cstdio>
#include <string>

#include "signer/signer.h"

namespace sigrace::signer {
namespace {

int Fail(const std::string& why) {
  std::fprintf(stderr, "sigrace: token: %s\n", why.c_str());
  return 2;
}

// CLI11 messages may span lines; the contract is one line.
std::string OneLine(std::string s) {
  for (char& c : s) {
    if (c == '\n' || c == '\r') c = ' ';
  }
  while (!s.empty() && s.back() == ' ') s.pop_back();
  return s;
}

}  // namespace

int TokenMain(int argc, char** argv) {
  CLI::App app(
      "Sign one JWS token with a fresh key and print it, then the "
      "public JWK set.",
      argc > 0 ? argv[0] : "sigrace token");
  std::string alg_name;
  std::string claims_json;
  std::string variant_name = "fixed";
  bool list_variants = false;
  app.add_option("--alg", alg_name, "rs256 or eddsa");
  app.add_option("--claims", claims_json,
                 "extra claims, a JSON object (not iss/aud/iat/exp)");
  app.add_option("--variant", variant_name,
                 "redaction-path variant (see --list-variants)");
  app.add_flag("--list-variants", list_variants,
               "print the variant catalogue and exit");
  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    return Fail(OneLine(e.what()));
  }
  if (list_variants) {
    for (const VariantInfo& v : ListVariants()) {
      std::printf("%-16s %-24s %s\n", v.name,
                  v.failpoint[0] != '\0' ? v.failpoint : "-", v.window);
    }
    return 0;
  }
  if (alg_name.empty()) return Fail("--alg is required (rs256 or eddsa)");
  auto alg = ParseAlg(alg_name);
  if (!alg.ok()) return Fail(alg.status().message());
  auto variant = ParseVariant(variant_name);
  if (!variant.ok()) return Fail(variant.status().message());

  SignerOptions opts;
  opts.variant = *variant;
  opts.algs = {*alg};
  auto signer = Signer::Create(opts);
  if (!signer.ok()) return Fail(signer.status().message());
  Claims claims;
  claims.extra_json = claims_json;
  auto token = (*signer)->Sign(*alg, claims);
  if (!token.ok()) return Fail(token.status().message());
  std::printf("%s\n%s\n", token->c_str(), (*signer)->PublicJwks().c_str());
  return std::fflush(stdout) == 0 ? 0 : 2;
}

}  // namespace sigrace::signer
