#!/usr/bin/env bash
# Set-up and entry point for the two README commands.
#
#   scripts/sigrace-env.sh repro [ARGS...]  install, build default+tsan, run
#                                           `sigrace repro`
#   scripts/sigrace-env.sh test             install, then every check the
#                                           repo declares: format, layering,
#                                           the default workflow, clang-tidy,
#                                           the tsan, asan and fuzz
#                                           workflows, the bench build
#
# Installs missing Debian packages with apt-get (as root; idempotent, and it
# does not touch the network when every package is already present).
set -euo pipefail

cd "$(dirname "$0")/.."

PACKAGES=(
  clang-14 libclang-rt-14-dev lld-14 clang-format-14 clang-tidy-14 cmake
  ninja-build pkg-config
  libssl-dev openssl libgtest-dev libgmock-dev libbenchmark-dev
  libunwind-dev libcli11-dev nlohmann-json3-dev
  gdb elfutils binutils python3 python3-jwt
  python3-jsonschema python3-yaml yamllint chromium
)

install_packages() {
  local missing=()
  local p
  for p in "${PACKAGES[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null |
        grep -q 'install ok installed'; then
      missing+=("$p")
    fi
  done
  if ((${#missing[@]} == 0)); then
    return 0
  fi
  echo "sigrace: installing ${missing[*]}" >&2
  if [[ $(id -u) -ne 0 ]]; then
    echo "sigrace: missing packages and not root; run as root or install:" \
      "${missing[*]}" >&2
    exit 2
  fi
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}"
}

build() {
  local preset=$1
  cmake --preset "$preset" >/dev/null
  cmake --build --preset "$preset"
}

cmd=${1:-}
shift || true
case "$cmd" in
  repro)
    install_packages
    build default
    build tsan
    exec build/default/tools/sigrace repro "$@"
    ;;
  test)
    install_packages
    # Cheap checks first: a style or layering break fails in seconds.
    scripts/lint.sh format
    scripts/lint.sh layering
    cmake --workflow --preset default
    scripts/lint.sh tidy build/default
    cmake --workflow --preset tsan
    cmake --workflow --preset asan
    # The reader's libFuzzer target, briefly (about 30 s).
    cmake --workflow --preset fuzz
    # The benchmarks must build (they run by hand: rates are not tests).
    cmake --workflow --preset bench
    ;;
  setup)
    install_packages
    ;;
  *)
    echo "usage: scripts/sigrace-env.sh repro|test|setup [ARGS...]" >&2
    exit 2
    ;;
esac
