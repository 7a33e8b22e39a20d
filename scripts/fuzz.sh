#!/usr/bin/env bash
# Builds the libFuzzer targets with clang (warnings as errors: the library
# stays clean under a second compiler) and runs each for SECONDS (default 60),
# starting from its committed seed corpus. A finding fails the run and leaves
# the crashing input in build/fuzz/findings/ to be turned into a regression test.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-60}
jobs=$(nproc 2>/dev/null || echo 2)
cmake -S . -B build/fuzz -DCMAKE_C_COMPILER=clang -DCMAKE_BUILD_TYPE=Debug \
      -DZKIT_SANITIZE=address,undefined \
      -DZKIT_FUZZ=ON -DZKIT_WERROR=ON -DZKIT_BUILD_TESTS=OFF -DZKIT_BUILD_EXAMPLES=OFF >/dev/null
cmake --build build/fuzz -j "$jobs" $(cd tests/fuzz && for f in fuzz_*.c; do printf -- '--target %s ' "${f%.c}"; done)
mkdir -p build/fuzz/findings
for src in tests/fuzz/fuzz_*.c; do
  name=$(basename "$src" .c)
  seeds=tests/fuzz/corpus/${name#fuzz_}
  work=build/fuzz/corpus/${name#fuzz_}
  mkdir -p "$work"
  dict=()
  [[ -f tests/fuzz/msgpack.dict ]] && dict=(-dict=tests/fuzz/msgpack.dict)
  echo "fuzz: $name for ${seconds}s"
  log=build/fuzz/$name.log
  if ! build/fuzz/bin/"$name" "$work" "$seeds" "${dict[@]}" -max_total_time="$seconds" \
       -rss_limit_mb=2048 -artifact_prefix=build/fuzz/findings/ -print_final_stats=1 \
       >"$log" 2>&1; then
    tail -n 60 "$log" >&2
    echo "fuzz: $name found a failure; the input is in build/fuzz/findings/" >&2
    exit 1
  fi
  grep -E '^stat::(number_of_executed_units|peak_rss_mb)|^Done' "$log" || true
done
