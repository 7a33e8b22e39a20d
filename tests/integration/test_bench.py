#!/usr/bin/python3
#  test_bench.py: `zkit bench` runs and reports every figure it promises.
#
#  Runs `zkit bench envelope --quick` and `zkit bench pipeline --quick` (the
#  CI mode) and checks the tables have both figures, the ratio (and, for the
#  envelope, allocation counts), and that --json parses. It asserts nothing
#  about speed: machines here are shared and noisy, and the benches' own
#  targets are informational.
#
#  This Source Code Form is subject to the terms of the Mozilla Public
#  License, v. 2.0. If a copy of the MPL was not distributed with this
#  file, You can obtain one at http://mozilla.org/MPL/2.0/.

import json
import math
import os
import re
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


# ---- zkit bench pipeline -------------------------------------------------------
#
# One --quick run for the table and one for --json; every size and mode must be
# there with the kit's figures, raw's and the ratio. Nothing about speed. The
# quick mode is small enough for the sanitizer build too.

PIPE_SIZES = (64, 256, 1024)
PIPE_ROWS = (("envelope", "raw"), ("envelope", "raw=wire"), ("fast", "raw"), ("reliable", "raw"))


def test_help_lists_pipeline():
    r = run("bench", "--help")
    assert r.returncode == 0 and "pipeline" in r.stdout, r


def test_pipeline_help():
    r = run("bench", "pipeline", "--help")
    assert r.returncode == 0, r
    for option in ("--quick", "--rounds", "--messages", "--sizes", "--modes", "--window",
                   "--json"):
        assert option in r.stdout, option


def test_pipeline_bad_options_are_usage_errors():
    for args in (
        ["--bogus"],
        ["--rounds", "4"],
        ["--sizes", ""],
        ["--sizes", "64,,256"],
        ["--sizes", "64,"],
        ["--sizes", "64,64"],
        ["--sizes", "sixty"],
        ["--sizes", "99999999999"],
        ["--modes", "fast,bogus"],
        ["--modes", ""],
        ["--modes"],
        ["--window", "0"],
        ["extra"],
    ):
        r = run("bench", "pipeline", *args)
        assert r.returncode == 2, (args, r)
        assert r.stderr, args


def parse_pipeline_table(out):
    """{(payload, mode, anchor): fields} from the table (anchor "-" for raw)."""
    lines = out.splitlines()
    header = next(i for i, l in enumerate(lines) if l.startswith("payload "))
    for title in ("mode", "wire B", "msg/s", "cpu ns", "anchor", "anchor msg/s",
                  "anchor cpu ns", "ratio", "target", "met", "lost"):
        assert title in lines[header], (title, lines[header])
    rows = {}
    for line in lines[header + 1:]:
        if not line.strip():
            break
        f = line.split()
        assert len(f) == 12, f
        rows[(int(f[0]), f[1], f[5])] = f
    return rows


def test_pipeline_quick_table():
    r = run("bench", "pipeline", "--quick")
    assert r.returncode == 0, r
    out = r.stdout
    assert out.startswith("bench pipeline: 5 rounds"), out
    assert "layout:" in out and "tcp://127.0.0.1" in out, out
    rows = parse_pipeline_table(out)
    redis = "redis     skipped" not in out
    expected = {(size, "raw", "-") for size in PIPE_SIZES}
    expected |= {(size, mode, anchor) for size in PIPE_SIZES for mode, anchor in PIPE_ROWS}
    if redis:
        expected |= {(size, "redis", "raw") for size in PIPE_SIZES}
    assert set(rows) == expected, sorted(rows)
    for (size, mode, anchor), f in rows.items():
        msg_s, cpu = number(f[3]), number(f[4])
        assert msg_s > 0 and cpu > 0, f
        lost = int(f[11])
        if mode == "raw":
            assert f[5:11] == ["-"] * 6, f
            assert int(f[2]) == size and lost == 0, f
            continue
        anchor_msg_s, anchor_cpu, ratio = number(f[6]), number(f[7]), number(f[8])
        assert anchor_msg_s > 0 and anchor_cpu > 0, f
        assert abs(ratio - msg_s / anchor_msg_s) <= 0.01 + 0.02 * ratio, f
        if anchor == "raw":  # the same raw figures as the size's raw row
            assert f[6:8] == rows[(size, "raw", "-")][3:5], f
        if f[9] == "-":
            assert f[10] == "-", f
        else:
            assert f[9].startswith(">=") and f[10] in ("yes", "no"), f
        if mode != "fast":
            assert lost == 0, f  # only fast mode may lose messages
    assert "targets" in out, out


def check_pipeline_figures(f):
    for key in ("msg_s", "cpu_ns", "wall_ns", "wall_min_ns", "wall_max_ns"):
        assert isinstance(f[key], (int, float)) and f[key] > 0, (key, f)
    assert f["wall_min_ns"] <= f["wall_ns"] <= f["wall_max_ns"], f
    assert f["messages"] > 0 and f["lost"] >= 0, f


def test_pipeline_quick_json():
    r = run("bench", "pipeline", "--quick", "--json")
    assert r.returncode == 0, r
    doc = json.loads(r.stdout)
    assert doc["suite"] == "pipeline" and doc["quick"] is True, doc
    assert doc["rounds"] >= 5 and doc["messages"] > 0 and doc["slow_messages"] > 0, doc
    assert doc["cpu_clock"] == "CLOCK_PROCESS_CPUTIME_ID", doc
    redis = doc["redis"]["measured"]
    if not redis:
        assert doc["redis"]["note"], doc
    assert [s["payload"] for s in doc["sizes"]] == list(PIPE_SIZES), doc
    for size in doc["sizes"]:
        check_pipeline_figures(size["raw"])
        check_pipeline_figures(size["raw_wire"])
        assert size["envelope_wire_bytes"] > size["payload"], size
        got = [(row["mode"], row["anchor"]) for row in size["rows"]]
        want = [(m, a.replace("=", "_")) for m, a in PIPE_ROWS]
        want += [("redis", "raw")] if redis else []
        assert got == want, got
        for row in size["rows"]:
            check_pipeline_figures(row["kit"])
            check_pipeline_figures(row["raw"])
            assert row["raw"] == size[row["anchor"]], row
            assert abs(row["ratio"] - row["kit"]["msg_s"] / row["raw"]["msg_s"]) \
                <= 0.01 + 0.02 * row["ratio"], row
            if row["target"] is not None:
                assert row["target"]["ratio"] > 0 and isinstance(row["target"]["met"], bool), row
            if row["mode"] != "fast":
                assert row["lost"] == 0, row
        if redis:
            assert size["fast_over_redis"] > 0, size


def test_pipeline_one_size_one_mode():
    r = run("bench", "pipeline", "--sizes", "100", "--modes", "fast", "--rounds", "5",
            "--messages", "1000", "--json")
    assert r.returncode == 0, r
    doc = json.loads(r.stdout)
    assert doc["modes"] == ["raw", "fast"], doc
    (size,) = doc["sizes"]
    assert size["payload"] == 100 and size["raw_wire"] is None, size
    assert [row["mode"] for row in size["rows"]] == ["fast"], size
    assert size["rows"][0]["target"] is None, size  # no target at 100 B


# ---- zkit bench spool ------------------------------------------------------------
#
# One --quick run for the table and one for --json: every workload row with the
# kit's rate and latency, its anchor's and the ratio; the redis row when a
# redis-server is installed, a note when not. Nothing about speed.

SPOOL_ROWS = (("fsync always", "1", "write+fdatasync"),
              ("fsync always, group commit", "50", "write+fdatasync"),
              ("device PUT->CONFIRMED, always", "50", "write+fdatasync"),
              ("fsync interval", "1", "write (no sync)"),
              ("fsync interval", "50", "write (no sync)"),
              ("fsync never", "1", "write (no sync)"),
              ("fsync never", "50", "write (no sync)"),
              ("replay (reader, warm)", "1", "read (same bytes)"))
SPOOL_REDIS_ROW = ("fsync always, group commit", "50", "redis appendfsync always")


def test_help_lists_spool():
    r = run("bench", "--help")
    assert r.returncode == 0 and "spool" in r.stdout, r


def test_spool_help():
    r = run("bench", "spool", "--help")
    assert r.returncode == 0, r
    for option in ("--quick", "--rounds", "--messages", "--size", "--producers", "--interval",
                   "--dir", "--json"):
        assert option in r.stdout, option


def test_spool_bad_options_are_usage_errors():
    for args in (["--bogus"], ["--rounds", "3"], ["--producers", "1"], ["--producers", "65"],
                 ["--size", "x"], ["--interval", "0"], ["--dir="], ["extra"]):
        r = run("bench", "spool", *args)
        assert r.returncode == 2, (args, r)
        assert r.stderr, args


def test_spool_quick_table():
    r = run("bench", "spool", "--quick")
    assert r.returncode == 0, r
    out = r.stdout
    assert out.startswith("bench spool: 128 B records (160 B on disk), 5 rounds"), out
    lines = out.splitlines()
    header = next(i for i, l in enumerate(lines) if l.startswith("workload "))
    for title in ("prod", "kit k/s", "p50 us", "p99 us", "anchor", "ratio", "target", "met"):
        assert title in lines[header], (title, lines[header])
    rows = {}
    for line in lines[header + 1:]:
        if not line.strip():
            break
        f = re.split(r"\s{2,}", line.strip())
        assert len(f) == 12, f
        rows[(f[0], f[1], f[5])] = f
    redis = "redis     skipped" not in out
    expected = set(SPOOL_ROWS) | ({SPOOL_REDIS_ROW} if redis else set())
    assert set(rows) == expected, sorted(rows)
    for key, f in rows.items():
        kit, anchor, ratio = number(f[2]), number(f[6]), number(f[9])
        assert kit > 0 and anchor > 0, f
        # The rates are printed rounded to one decimal (k/s): the ratio, taken
        # from the exact figures, must lie within what that rounding allows.
        half = 0.05
        low = (kit - half) / (anchor + half)
        high = (kit + half) / max(anchor - half, 1e-9)
        assert low * 0.98 - 0.02 <= ratio <= high * 1.02 + 0.02, f
        if key[0].startswith("replay"):
            assert f[3] == f[4] == f[7] == f[8] == "n/a", f
        else:
            for v in (f[3], f[4], f[7], f[8]):
                number(v)
        if f[10] == "-":
            assert f[11] == "-", f
        else:
            assert f[10].startswith(">=") and f[11] in ("yes", "no"), f
    assert "replay vs live" in out and "Targets" in out, out


def test_spool_quick_json():
    r = run("bench", "spool", "--quick", "--json")
    assert r.returncode == 0, r
    doc = json.loads(r.stdout)
    assert doc["suite"] == "spool" and doc["quick"] is True and doc["rounds"] >= 5, doc
    assert doc["record_bytes"] == 128 and doc["disk_record_bytes"] == 160, doc
    redis = doc["redis"]["measured"]
    if not redis:
        assert doc["redis"]["note"], doc
    got = [(row["workload"], str(row["producers"]), row["anchor"]) for row in doc["rows"]]
    want = list(SPOOL_ROWS)
    if redis:
        want.insert(2, SPOOL_REDIS_ROW)
    assert got == want, got
    for row in doc["rows"]:
        assert row["kit_messages"] > 0 and row["anchor_messages"] > 0, row
        for side in (row["kit"], row["anchor_figures"]):
            for key in ("msg_s", "wall_ns", "cpu_ns", "wall_min_ns", "wall_max_ns"):
                assert isinstance(side[key], (int, float)) and side[key] > 0, (key, row)
            assert side["wall_min_ns"] <= side["wall_ns"] <= side["wall_max_ns"], row
            if row["workload"].startswith("replay"):
                assert side["p50_ns"] is None and side["p99_ns"] is None, row
            else:
                assert 0 < side["p50_ns"] <= side["p99_ns"], row
        assert abs(row["ratio"] - row["kit"]["msg_s"] / row["anchor_figures"]["msg_s"]) \
            <= 0.01 + 0.02 * row["ratio"], row
        if row["target"] is not None:
            assert row["target"]["ratio"] > 0 and isinstance(row["target"]["met"], bool), row
    assert doc["replay_vs_live"] > 0, doc


# ---- zkit bench pubsub -----------------------------------------------------------
#
# One --quick run for the table and one for --json: every (subscribers, path)
# row with its figures, ratios and per-subscriber loss counts. Drop paths may
# lose (reported, not failed); NODROP paths must lose nothing. Nothing about
# speed.

PUBSUB_COUNTS = (1, 2, 4)
PUBSUB_PATHS = (("direct", "direct"), ("proxy", "zmq_proxy"),
                ("proxy_nodrop", "zmq_proxy-nodrop"), ("drop", "fwd-drop"),
                ("nodrop", "fwd-nodrop"))
PUBSUB_NODROP = ("zmq_proxy-nodrop", "fwd-nodrop")


def test_help_lists_pubsub():
    r = run("bench", "--help")
    assert r.returncode == 0 and "pubsub" in r.stdout, r


def test_pubsub_help():
    r = run("bench", "pubsub", "--help")
    assert r.returncode == 0, r
    for option in ("--quick", "--rounds", "--messages", "--subscribers", "--sizes", "--json"):
        assert option in r.stdout, option


def test_pubsub_bad_options_are_usage_errors():
    for args in (["--bogus"], ["--rounds", "4"], ["--subscribers", "0"],
                 ["--subscribers", "9"], ["--subscribers", "1,1"], ["--subscribers", "1,"],
                 ["--subscribers", ""], ["--subscribers"], ["--sizes", "x"],
                 ["--sizes", "64,,128"], ["--sizes", "99999999999"], ["extra"]):
        r = run("bench", "pubsub", *args)
        assert r.returncode == 2, (args, r)
        assert r.stderr, args


def test_pubsub_quick_table():
    r = run("bench", "pubsub", "--quick")
    assert r.returncode == 0, r
    out = r.stdout
    assert out.startswith("bench pubsub: 5 rounds"), out
    # Which ends are used is said, not implied.
    assert "publisher   raw XPUB" in out and "subscribers raw SUB" in out, out
    lines = out.splitlines()
    header = next(i for i, l in enumerate(lines) if l.startswith("payload "))
    for title in ("subs", "path", "msg/s/sub", "min sub", "cpu ns", "vs proxy", "vs direct",
                  "target", "met", "lost/sub"):
        assert title in lines[header], (title, lines[header])
    rows = {}
    for line in lines[header + 1:]:
        if not line.strip():
            break
        f = re.split(r"\s{2,}", line.strip())
        assert len(f) == 11, f
        rows[(int(f[0]), int(f[1]), f[2])] = f
    assert set(rows) == {(64, n, label) for n in PUBSUB_COUNTS for _, label in PUBSUB_PATHS}, \
        sorted(rows)
    for (_, subs, label), f in rows.items():
        msg_s, min_sub, cpu = number(f[3]), number(f[4]), number(f[5])
        assert msg_s > 0 and 0 < min_sub <= msg_s * 1.0001 and cpu > 0, f
        if label.startswith("zmq_proxy"):
            assert f[6] == "-", f
        else:
            anchor = "zmq_proxy-nodrop" if label == "fwd-nodrop" else "zmq_proxy"
            ratio = number(f[6])
            assert abs(ratio - msg_s / number(rows[(64, subs, anchor)][3])) \
                <= 0.01 + 0.02 * ratio, f
        if label == "direct":
            assert f[7] == "-", f
        else:
            ratio = number(f[7])
            assert abs(ratio - msg_s / number(rows[(64, subs, "direct")][3])) \
                <= 0.01 + 0.02 * ratio, f
        if label.startswith("fwd"):
            assert f[8].startswith(">=") and f[9] in ("yes", "no"), f
        else:
            assert f[8] == "-" and f[9] == "-", f
        lost = [int(v) for v in f[10].split(",")]
        assert len(lost) == subs and all(v >= 0 for v in lost), f
        if label in PUBSUB_NODROP:
            assert lost == [0] * subs, f
    assert "targets" in out, out


def test_pubsub_quick_json():
    r = run("bench", "pubsub", "--quick", "--json")
    assert r.returncode == 0, r
    doc = json.loads(r.stdout)
    assert doc["suite"] == "pubsub" and doc["quick"] is True and doc["rounds"] >= 5, doc
    assert doc["messages"] > 0 and doc["cpu_clock"] == "CLOCK_PROCESS_CPUTIME_ID", doc
    assert doc["publisher"] and doc["subscriber"], doc
    assert [(g["payload"], g["subscribers"]) for g in doc["groups"]] == \
        [(64, n) for n in PUBSUB_COUNTS], doc
    for g in doc["groups"]:
        assert g["wire_bytes"] > g["payload"], g
        assert [(row["path"], row["label"]) for row in g["rows"]] == list(PUBSUB_PATHS), g
        for row in g["rows"]:
            for key in ("msg_s_per_sub", "min_sub_msg_s", "msg_s_per_sub_lo",
                        "msg_s_per_sub_hi", "cpu_ns", "wall_ns"):
                assert isinstance(row[key], (int, float)) and row[key] > 0, (key, row)
            assert row["msg_s_per_sub_lo"] <= row["msg_s_per_sub"] <= row["msg_s_per_sub_hi"], row
            assert len(row["lost"]) == g["subscribers"], row
            assert row["lost_total"] == sum(row["lost"]), row
            if row["path"] in ("proxy", "proxy_nodrop"):
                assert row["vs_proxy"] is None, row
            else:
                assert row["vs_proxy"] > 0, row
            if row["path"] == "direct":
                assert row["vs_direct"] is None, row
            else:
                assert row["vs_direct"] > 0, row
            if row["path"] in ("drop", "nodrop"):
                assert row["target"]["ratio"] > 0 and isinstance(row["target"]["met"], bool), row
            else:
                assert row["target"] is None, row
            if row["path"] in ("proxy_nodrop", "nodrop"):
                assert row["lost_total"] == 0 and row["warmup_lost"] == 0, row


def test_pubsub_one_count_two_sizes():
    r = run("bench", "pubsub", "--subscribers", "3", "--sizes", "0,1024", "--rounds", "5",
            "--messages", "500", "--json")
    assert r.returncode == 0, r
    doc = json.loads(r.stdout)
    assert [(g["payload"], g["subscribers"]) for g in doc["groups"]] == [(0, 3), (1024, 3)], doc


def main():
    for name, fn in list(globals().items()):
        if name.startswith("test_") and callable(fn):
            check(name, fn)
    print(f"{passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
