#!/usr/bin/env bash
# Installs the Debian packages zkit needs, and nothing when they are all there.
#   scripts/deps.sh build   what building the library and the program needs
#   scripts/deps.sh test    that, plus what the tests, fuzzing and format check need
# As root it runs apt-get itself; otherwise it prints the exact command and fails.
set -euo pipefail

build_pkgs=(cmake make gcc pkg-config libzmq3-dev libczmq-dev libmsgpack-dev libcmocka-dev)
# iproute2: `ip netns` and veth pairs for tests/integration/test_multihost.py.
test_pkgs=(python3 python3-zmq python3-msgpack clang libclang-rt-dev clang-format iproute2)

case "${1:-test}" in
  build) wanted=("${build_pkgs[@]}") ;;
  test) wanted=("${build_pkgs[@]}" "${test_pkgs[@]}") ;;
  *) echo "usage: scripts/deps.sh [build|test]" >&2; exit 2 ;;
esac

if ! command -v dpkg-query >/dev/null 2>&1; then
  echo "zkit: this script installs Debian packages; on another system install: ${wanted[*]}" >&2
  exit 1
fi

missing=()
for pkg in "${wanted[@]}"; do
  status=$(dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null || true)
  [[ "$status" == "install ok installed" ]] || missing+=("$pkg")
done
[[ ${#missing[@]} -eq 0 ]] && exit 0

if [[ $(id -u) -ne 0 ]]; then
  echo "zkit: missing Debian packages: ${missing[*]}" >&2
  echo "zkit: install them with:" >&2
  echo "  sudo apt-get update && sudo apt-get install -y ${missing[*]}" >&2
  exit 1
fi

echo "zkit: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq >/dev/null
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
