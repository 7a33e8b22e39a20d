#!/usr/bin/env bash
# Sets up, builds, and runs the main demo: zkit cat processes wired together,
# envelopes flowing from two producers into one receiver that prints them.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh build
cmake -S . -B build/demo -DCMAKE_BUILD_TYPE=Release -DZKIT_BUILD_TESTS=OFF >/dev/null
cmake --build build/demo -j "$(nproc 2>/dev/null || echo 2)" >/dev/null
zkit=build/demo/bin/zkit

tmp=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$tmp"' EXIT

echo "# a receiver: PULL, bound to a free port, prints every envelope as JSON"
"$zkit" cat --pull --bind 'tcp://127.0.0.1:*' --count 6 --timeout 10000 --format json \
  >"$tmp/received" 2>"$tmp/receiver.err" &
receiver=$!
for _ in $(seq 100); do
  endpoint=$(sed -n 's/^zkit cat: bound //p' "$tmp/receiver.err")
  [[ -n "$endpoint" ]] && break
  sleep 0.05
done
[[ -n "$endpoint" ]] || { cat "$tmp/receiver.err" >&2; exit 1; }
echo "#   listening on $endpoint"

echo "# two producers: PUSH, three envelopes each, seq 1..3 per producer (src)"
"$zkit" cat --push --connect "$endpoint" --src sensor-a --data 'temperature=21.5' --count 3 &
printf 'hello\nfrom a file\nvia stdin\n' |
  "$zkit" cat --push --connect "$endpoint" --src sensor-b --file - &
wait "$receiver"
echo "# what the receiver printed (one envelope per line):"
cat "$tmp/received"
