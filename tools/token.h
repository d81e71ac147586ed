// `sigrace token --alg rs256|eddsa [--claims JSON] [--variant NAME]`:
// signs one token with a fresh per-run key and prints it, then the public
// JWK set, so any JWT library can verify it. `--list-variants` prints the
// variant catalogue (name and window) instead.
//
// Output: line 1 the token, line 2 the JWK set ({"keys":[...]}). Nothing
// else on stdout; never any private key byte.
// Exit codes: 0 printed, 2 usage or signer error with one line
// "sigrace: token: <reason>" on stderr.
//
// Thread safety: runs on the calling thread; not reentrant (owns stdout).
// Not async-signal-safe.

#ifndef SIGRACE_TOOLS_TOKEN_H_
#define SIGRACE_TOOLS_TOKEN_H_

namespace sigrace::signer {

int TokenMain(int argc, char** argv);

}  // namespace sigrace::signer

#endif  // SIGRACE_TOOLS_TOKEN_H_
