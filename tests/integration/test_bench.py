#!/usr/bin/python3
#  test_bench.py: `zkit bench` runs and reports every figure it promises.
#
#  Runs `zkit bench envelope --quick` (the CI mode) and checks the table has
#  both figures, the ratio and allocation counts, and that --json parses. It
#  asserts nothing about speed: machines here are shared and noisy, and the
#  bench's own targets are informational.
#
#  This Source Code Form is subject to the terms of the Mozilla Public
#  License, v. 2.0. If a copy of the MPL was not distributed with this
#  file, You can obtain one at http://mozilla.org/MPL/2.0/.

import json
import math
import os
import subprocess
import sys

ZKIT = os.environ.get("ZKIT_BIN", "zkit")
TIMEOUT = 120  # generous: proves the run ends, not how fast

passed = 0
failed = 0


def run(*args):
    return subprocess.run([ZKIT, *args], capture_output=True, text=True, timeout=TIMEOUT)


def check(name, fn):
    global passed, failed
    try:
        fn()
        passed += 1
        print(f"ok   {name}")
    except Exception as e:  # a failed check or an unexpected error
        failed += 1
        print(f"FAIL {name}: {type(e).__name__}: {e}")


def number(text):
    value = float(text.rstrip("x"))
    assert math.isfinite(value) and value >= 0, text
    return value


def is_sanitized(out):
    return "n/a (sanitizer build)" in out


# ---- usage -------------------------------------------------------------------


def test_help_lists_suites():
    r = run("bench", "--help")
    assert r.returncode == 0, r
    assert "envelope" in r.stdout, r.stdout
    assert "--quick" in r.stdout, r.stdout


def test_no_suite_is_usage_error():
    r = run("bench")
    assert r.returncode == 2, r
    assert "envelope" in r.stderr, r.stderr


def test_unknown_suite_is_usage_error():
    r = run("bench", "no-such-suite")
    assert r.returncode == 2, r
    assert "no-such-suite" in r.stderr, r.stderr


def test_suite_help():
    r = run("bench", "envelope", "--help")
    assert r.returncode == 0, r
    for option in ("--quick", "--rounds", "--messages", "--body", "--json"):
        assert option in r.stdout, option


def test_bad_options_are_usage_errors():
    for args in (
        ["--bogus"],
        ["--rounds", "2"],  # fewer than the 5 rounds the method requires
        ["--rounds", "seven"],
        ["--rounds"],
        ["--messages", "-5"],
        ["--body", "1x"],
        ["--body=99999999999"],
        ["extra"],
    ):
        r = run("bench", "envelope", *args)
        assert r.returncode == 2, (args, r)
        assert r.stderr, args


# ---- the table ---------------------------------------------------------------


def parse_table(out):
    """Rows of the main table by op name, and the series rows by body label."""
    lines = out.splitlines()
    header = next(i for i, l in enumerate(lines) if l.startswith("op "))
    titles = lines[header]
    for title in ("zkit ns", "msgpack-c ns", "ratio", "x faster", "cpu ns", "zkit allocs",
                  "msgpack-c allocs", "target"):
        assert title in titles, (title, titles)
    ops = {}
    for line in lines[header + 1:header + 3]:
        fields = line.split()
        ops[fields[0]] = fields
    body_header = next(i for i, l in enumerate(lines) if l.startswith("body "))
    series = {}
    for line in lines[body_header + 1:body_header + 4]:
        fields = line.split()
        series[" ".join(fields[:2])] = fields[2:]
    return ops, series


def test_quick_table():
    r = run("bench", "envelope", "--quick")
    assert r.returncode == 0, r
    out = r.stdout
    assert out.startswith("bench envelope: body 64 B, 5 rounds"), out
    ops, series = parse_table(out)
    assert set(ops) == {"encode", "decode"}, ops
    for op, f in ops.items():
        # op, zkit ns, cpu ns, msgpack-c ns, cpu ns, ratio, x faster, allocs x2, target
        zkit_ns, zkit_cpu, anchor_ns, anchor_cpu, ratio = (number(v) for v in f[1:6])
        faster = number(f[6])
        assert f[6].endswith("x"), f
        assert zkit_ns > 0 and anchor_ns > 0, f
        assert abs(ratio - zkit_ns / anchor_ns) <= 0.01 + 0.02 * ratio, f
        assert abs(faster - anchor_ns / zkit_ns) <= 0.01 + 0.02 * faster, f
        if is_sanitized(out):
            assert f[7] == "n/a" and f[8] == "n/a", f
        else:
            number(f[7])
            number(f[8])
        assert " ".join(f[9:]) in ("met", "not met"), f
    assert set(series) == {"64 B", "1 KiB", "64 KiB"}, series
    for label, f in series.items():
        assert len(f) == 6, (label, f)
        for v in f:
            number(v)
    assert "flat: zkit decode at 64 KiB" in out, out
    assert "allocations:" in out and "targets" in out, out


def test_other_body_sizes():
    for body in ("0", "1024"):
        r = run("bench", "envelope", "--quick", "--body", body, "--rounds", "5",
                "--messages", "2000")
        assert r.returncode == 0, (body, r)
        ops, _ = parse_table(r.stdout)
        assert set(ops) == {"encode", "decode"}, ops


# ---- JSON --------------------------------------------------------------------


def check_side(side, sanitized):
    for key in ("wall_ns", "cpu_ns", "wall_min_ns", "wall_max_ns"):
        assert isinstance(side[key], (int, float)) and side[key] > 0, (key, side)
    assert side["wall_min_ns"] <= side["wall_ns"] <= side["wall_max_ns"], side
    if sanitized:
        assert side["allocs"] is None, side
    else:
        assert isinstance(side["allocs"], (int, float)) and side["allocs"] >= 0, side


def test_quick_json():
    r = run("bench", "envelope", "--quick", "--json")
    assert r.returncode == 0, r
    doc = json.loads(r.stdout)
    assert doc["suite"] == "envelope", doc
    assert doc["rounds"] >= 5 and doc["messages"] > 0 and doc["body"] == 64, doc
    assert doc["quick"] is True, doc
    sanitized = not doc["allocs_counted"]
    if sanitized:
        assert doc["allocs_note"] == "n/a (sanitizer build)", doc
    assert [op["op"] for op in doc["ops"]] == ["encode", "decode"], doc
    for op in doc["ops"]:
        check_side(op["zkit"], sanitized)
        check_side(op["msgpack_c"], sanitized)
        assert op["ratio"] > 0 and op["x_faster"] > 0, op
        assert isinstance(op["target"]["met"], bool), op
    assert [b["body"] for b in doc["decode_by_body"]] == [64, 1024, 65536], doc
    for b in doc["decode_by_body"]:
        check_side(b["zkit"], sanitized)
        check_side(b["msgpack_c"], sanitized)
        assert b["ratio"] > 0, b
    assert doc["decode_flat"]["factor"] > 0, doc
    assert isinstance(doc["decode_flat"]["met"], bool), doc
    assert isinstance(doc["same_bytes"], bool), doc


def main():
    for name, fn in list(globals().items()):
        if name.startswith("test_") and callable(fn):
            check(name, fn)
    print(f"{passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
