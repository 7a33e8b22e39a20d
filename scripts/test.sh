#!/usr/bin/env bash
# Sets everything up and runs every test: warnings-as-errors build + ctest, the
# same suites under AddressSanitizer and UndefinedBehaviorSanitizer, the format
# check, an install + find_package consumer build, the fuzzers for a bounded
# time, and the benchmarks in quick mode (they prove they run; speed is not
# asserted). Any failure stops the run with a non-zero exit.
#   ZKIT_FUZZ_SECONDS   seconds per fuzz target (default 60; 0 skips fuzzing)
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
jobs=$(nproc 2>/dev/null || echo 2)

step() { printf '\n==> %s\n' "$*"; }

step "dependencies"
scripts/deps.sh test

step "format check (.clang-format)"
mapfile -t sources < <(git ls-files -co --exclude-standard -- '*.c' '*.h' 2>/dev/null \
                         || find include patterns tools tests examples -name '*.[ch]')
existing=()
for f in "${sources[@]}"; do [[ -f "$f" ]] && existing+=("$f"); done
clang-format --dry-run --Werror "${existing[@]}"

step "build (-Wall -Wextra -Werror) and test"
cmake -S . -B build/test -DCMAKE_BUILD_TYPE=RelWithDebInfo -DZKIT_WERROR=ON >/dev/null
cmake --build build/test -j "$jobs"
ctest --test-dir build/test --output-on-failure -j "$jobs"

step "build and test under AddressSanitizer + UndefinedBehaviorSanitizer"
cmake -S . -B build/asan -DCMAKE_BUILD_TYPE=Debug -DZKIT_WERROR=ON \
      -DZKIT_SANITIZE=address,undefined >/dev/null
cmake --build build/asan -j "$jobs"
ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
  ctest --test-dir build/asan --output-on-failure -j "$jobs"

step "install, then build a consumer with find_package(zkit) and pkg-config"
prefix=$root/build/install
rm -rf "$prefix"
cmake --install build/test --prefix "$prefix" >/dev/null
cmake -S tests/install_consumer -B build/consumer -DCMAKE_PREFIX_PATH="$prefix" >/dev/null
cmake --build build/consumer -j "$jobs" >/dev/null
LD_LIBRARY_PATH=$prefix/lib build/consumer/consumer_cmake
PKG_CONFIG_PATH=$prefix/lib/pkgconfig \
  cc -o build/consumer/consumer_pc tests/install_consumer/consumer.c \
     $(PKG_CONFIG_PATH=$prefix/lib/pkgconfig pkg-config --cflags --libs libzkit)
LD_LIBRARY_PATH=$prefix/lib build/consumer/consumer_pc

fuzz_seconds=${ZKIT_FUZZ_SECONDS:-60}
if [[ "$fuzz_seconds" != 0 ]]; then
  step "fuzz each target for ${fuzz_seconds}s (libFuzzer, clang)"
  scripts/fuzz.sh "$fuzz_seconds"
fi

step "benchmarks, quick mode (they must run; speed is not asserted here)"
for suite in $(build/test/bin/zkit bench --list); do
  build/test/bin/zkit bench "$suite" --quick
done

step "all tests passed"
