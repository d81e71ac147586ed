#!/usr/bin/env bash
# The repository's declared style and static checks, as CI runs them.
#
#   scripts/lint.sh format [--fix]  clang-format-14 over every tracked
#                                   .cc/.h (.clang-format); --fix rewrites
#   scripts/lint.sh tidy BUILD_DIR  clang-tidy-14 (.clang-tidy) over every
#                                   project source in BUILD_DIR's
#                                   compile_commands.json; any warning fails
#   scripts/lint.sh layering        cmake/check_layering.py
#
# Exit 0 clean, 1 findings, 2 usage error.
set -euo pipefail
cd "$(dirname "$0")/.."

usage() {
  echo "usage: scripts/lint.sh format [--fix] | tidy BUILD_DIR | layering" >&2
  exit 2
}

mode=${1:-}
case "$mode" in
  format)
    mapfile -t files < <(git ls-files '*.cc' '*.h')
    if [[ ${2:-} == --fix ]]; then
      clang-format-14 -i "${files[@]}"
      exit 0
    fi
    [[ $# -le 1 ]] || usage
    if ! clang-format-14 --dry-run --Werror "${files[@]}" 2>/tmp/sigrace-format.$$; then
      grep -E '^[^ ].*: (error|warning):' /tmp/sigrace-format.$$ | cut -d: -f1 |
        sort -u | sed 's/^/needs clang-format: /'
      rm -f /tmp/sigrace-format.$$
      echo "lint: run scripts/lint.sh format --fix" >&2
      exit 1
    fi
    rm -f /tmp/sigrace-format.$$
    echo "lint: ${#files[@]} files formatted as .clang-format says"
    ;;
  tidy)
    [[ $# -eq 2 && -f $2/compile_commands.json ]] || usage
    out=$(mktemp)
    trap 'rm -f "$out"' EXIT
    # Project sources only (not the build tree's generated files).
    run-clang-tidy-14 -p "$2" -quiet -j "$(nproc)" \
      "$(pwd)/(base|signer|crashdump|stress|tools|testing|tsan|bench)/.*\.cc$" \
      2>&1 | sed 's/\x1b\[[0-9;]*m//g' >"$out" || true
    if grep -qE '(warning|error): ' "$out"; then
      grep -E '(warning|error): ' "$out" | sort -u | sed "s#^$(pwd)/##"
      echo "lint: clang-tidy reported the findings above (.clang-tidy)" >&2
      exit 1
    fi
    echo "lint: clang-tidy clean over $(grep -c '"file"' "$2/compile_commands.json") translation units"
    ;;
  layering)
    exec python3 cmake/check_layering.py .
    ;;
  *)
    usage
    ;;
esac
