#!/usr/bin/python3
#  test_envelope_interop.py: the envelope codec against an independent
#  MessagePack implementation (python3-msgpack), through tests/helpers/envelope_tool.
#
#  - what C encodes, Python decodes to exactly [1, id, seq, ts, body, meta],
#    and Python's own packing of those values gives the very same bytes;
#  - what Python encodes (unknown keys, extra elements, str and bin forms),
#    C decodes to exactly the expected fields, or the expected error;
#  - C's decode -> re-encode keeps unknown keys and extra elements byte-exact.
#
#  Run with Debian's /usr/bin/python3 (it has msgpack); ZKIT_BIN_DIR names the
#  directory holding envelope_tool. Prints "N passed, M failed"; exits non-zero
#  on any failure.
#
#  This Source Code Form is subject to the terms of the Mozilla Public
#  License, v. 2.0. If a copy of the MPL was not distributed with this
#  file, You can obtain one at http://mozilla.org/MPL/2.0/.

import json
import os
import struct
import subprocess
import sys
import traceback

import msgpack

BIN_DIR = os.environ.get("ZKIT_BIN_DIR")
if not BIN_DIR:
    sys.exit("ZKIT_BIN_DIR is not set (ctest sets it to <build>/bin)")
TOOL = os.path.join(BIN_DIR, "envelope_tool")
if not os.access(TOOL, os.X_OK):
    sys.exit(f"{TOOL} is missing: build the envelope_tool target first")

UINT64_MAX = 2**64 - 1
INT64_MAX = 2**63 - 1
INT64_MIN = -(2**63)


def pack(obj):
    return msgpack.packb(obj, use_bin_type=True)


def unpack(data):
    return msgpack.unpackb(data, raw=False, strict_map_key=False)


def frames_to_stream(frames):
    return b"".join(struct.pack(">I", len(f)) + f for f in frames)


def stream_to_frames(data):
    frames, pos = [], 0
    while pos < len(data):
        (size,) = struct.unpack_from(">I", data, pos)
        frames.append(data[pos + 4 : pos + 4 + size])
        pos += 4 + size
    assert pos == len(data), "torn frame stream from envelope_tool"
    return frames


def tool(mode, frames=()):
    proc = subprocess.run(
        [TOOL, mode], input=frames_to_stream(frames), stdout=subprocess.PIPE, timeout=60
    )
    assert proc.returncode == 0, f"envelope_tool {mode} exited {proc.returncode}"
    return proc.stdout


def c_decode(frames):
    lines = tool("decode", frames).decode("utf-8").splitlines()
    assert len(lines) == len(frames), f"{len(lines)} lines for {len(frames)} frames"
    return [json.loads(line) for line in lines]


def c_reencode(frames):
    return stream_to_frames(tool("reencode", frames))


def ident(first):
    return bytes((first + i) & 0xFF for i in range(16))


def envelope(id_, seq, ts, body, meta=None, extras=()):
    items = [1, id_, seq, ts, body]
    if meta is not None or extras:
        items.append({} if meta is None else meta)
    items.extend(extras)
    return pack(items)


# The JSON line envelope_tool prints for a decoded envelope.
def expected(id_, seq, ts, body, meta=None, unknown=(), extra_count=0, extra_raw=b""):
    return {
        "v": 1,
        "id": id_.hex(),
        "seq": seq,
        "ts": ts,
        "body": body.hex(),
        "meta": meta or {},
        "unknown": [[k, raw.hex()] for k, raw in unknown],
        "extra": {"count": extra_count, "raw": extra_raw.hex()},
    }


def nested(depth):
    value = 1
    for _ in range(depth):
        value = [value]
    return value


# ---- C encodes, Python decodes ---------------------------------------------

BYTES = bytes(i % 251 for i in range(70000))

C_CASES = [
    [1, ident(0x00), 1, 1700000000000000, b"hello"],
    [1, ident(0xF0), 0, 0, b""],
    [1, ident(0x10), UINT64_MAX, 2**32, b"\x00"],
    [
        1,
        ident(0x20),
        128,
        65536,
        BYTES[:256],
        {
            "src": "sensor-a",
            "ttl": 60000,
            "att": 1,
            "topic": "weather.eu",
            "batch": b"\xde\xad\xbe\xef",
            "reply": "tcp://127.0.0.1:5555",
            "corr": "req-42",
            "ct": "application/json",
            "hdr": {"user": "alice", "sig": b"\x01\x02", "neg": -129, "big": INT64_MAX,
                    "min": INT64_MIN},
        },
    ],
    [1, ident(0x30), 2, 3, b"", {"src": "\u00fc-unicode", "batch": "batch-7", "corr": b"\x00\x01"}],
    [1, ident(0x40), 65535, 2**32 - 1, BYTES, {"topic": "x" * 300}],
    [1, ident(0x50), 255, 256, b"", {"ttl": UINT64_MAX, "att": 0}],
]


def test_c_encodes_what_python_reads():
    frames = stream_to_frames(tool("encode"))
    assert len(frames) == len(C_CASES), f"{len(frames)} frames, expected {len(C_CASES)}"
    for i, (frame, want) in enumerate(zip(frames, C_CASES)):
        got = unpack(frame)
        assert got == want, f"case {i + 1}: C wrote {got!r}, expected {want!r}"
        assert isinstance(got[1], bytes) and len(got[1]) == 16, f"case {i + 1}: id not bin16"
        assert isinstance(got[4], bytes), f"case {i + 1}: body not bin"
        if len(got) > 5:
            for key in ("batch", "corr"):
                if key in want[5]:
                    assert type(got[5][key]) is type(want[5][key]), f"case {i + 1}: {key} form"
        # Smallest forms and canonical key order: Python packs the same bytes.
        assert pack(want) == frame, f"case {i + 1}: not the canonical smallest encoding"


def test_c_reads_its_own_frames():
    frames = stream_to_frames(tool("encode"))
    lines = c_decode(frames)
    for i, (line, case) in enumerate(zip(lines, C_CASES)):
        assert "error" not in line, f"case {i + 1}: {line}"
        assert line["seq"] == case[2] and line["ts"] == case[3], f"case {i + 1}: {line}"
        assert bytes.fromhex(line["body"]) == case[4], f"case {i + 1}: body"


# ---- Python encodes, C decodes ---------------------------------------------

def test_python_basic():
    frames = [
        envelope(ident(1), 1, 2, b"payload"),
        envelope(ident(2), UINT64_MAX, 0, b""),
        envelope(ident(3), 127, 128, BYTES),
        # An int8 form for a positive seq, as some encoders write it.
        b"\x95\x01\xc4\x10" + ident(4) + b"\xd0\x05\xd1\x01\x00\xc4\x00",
    ]
    want = [
        expected(ident(1), 1, 2, b"payload"),
        expected(ident(2), UINT64_MAX, 0, b""),
        expected(ident(3), 127, 128, BYTES),
        expected(ident(4), 5, 256, b""),
    ]
    assert c_decode(frames) == want, "basic envelopes"


def test_python_every_meta_key():
    meta = {
        "src": "producer-\u00e9",
        "ttl": 2**32,
        "att": 3,
        "topic": "a.b.c",
        "batch": b"\x00\xff",
        "reply": "inproc://reply",
        "corr": "corr-id",
        "ct": 'text/plain; q="1"\n',
        "hdr": {"s": "v", "b": b"\x01", "i": -1, "max": INT64_MAX, "min": INT64_MIN, "z": 0},
    }
    got = c_decode([envelope(ident(5), 9, 10, b"x", meta)])[0]
    want = expected(
        ident(5),
        9,
        10,
        b"x",
        {
            "src": "producer-\u00e9",
            "ttl": 2**32,
            "att": 3,
            "topic": "a.b.c",
            "batch": {"bin": "00ff"},
            "reply": "inproc://reply",
            "corr": {"str": "corr-id"},
            "ct": 'text/plain; q="1"\n',
            "hdr": [
                ["s", {"str": "v"}],
                ["b", {"bin": "01"}],
                ["i", {"int": -1}],
                ["max", {"int": INT64_MAX}],
                ["min", {"int": INT64_MIN}],
                ["z", {"int": 0}],
            ],
        },
    )
    assert got == want, f"every meta key: {got}"


def test_python_batch_and_corr_forms():
    frames = [
        envelope(ident(6), 1, 1, b"", {"batch": "as-str", "corr": b"as-bin"}),
        envelope(ident(6), 1, 1, b"", {"batch": b"as-bin", "corr": "as-str"}),
    ]
    got = c_decode(frames)
    assert got[0]["meta"] == {"batch": {"str": "as-str"}, "corr": {"bin": b"as-bin".hex()}}
    assert got[1]["meta"] == {"batch": {"bin": b"as-bin".hex()}, "corr": {"str": "as-str"}}


def test_python_unknown_keys_and_extras():
    unknown_value = [1, {"a": None}, 2.5]
    meta = {"src": "s", "zz-new": unknown_value, "x-float": 3.5, "x-ext": msgpack.ExtType(5, b"ab")}
    extras = ["future", [True, None]]
    frame = envelope(ident(7), 1, 2, b"b", meta, extras)
    got = c_decode([frame])[0]
    want = expected(
        ident(7),
        1,
        2,
        b"b",
        {"src": "s"},
        unknown=[
            ("zz-new", pack(unknown_value)),
            ("x-float", pack(3.5)),
            ("x-ext", pack(msgpack.ExtType(5, b"ab"))),
        ],
        extra_count=2,
        extra_raw=pack("future") + pack([True, None]),
    )
    assert got == want, f"unknown keys and extras: {got}"


def test_python_seven_elements_without_meta():
    frame = pack([1, ident(8), 3, 4, b"", {}, "six", 7])
    got = c_decode([frame])[0]
    assert got == expected(ident(8), 3, 4, b"", extra_count=2, extra_raw=pack("six") + pack(7))


def test_python_errors():
    # The default nesting limit (16) is inclusive.
    assert "error" not in c_decode([envelope(ident(9), 1, 1, b"", {"deep": nested(16)})])[0]
    good_head = [1, ident(9), 1, 1, b""]
    cases = [
        (b"", "empty frame"),
        (pack({"not": "array"}), "envelope is not a MessagePack array"),
        (pack("string"), "envelope is not a MessagePack array"),
        (pack([1, ident(9), 1, 1]), "envelope has fewer than 5 elements"),
        (pack([]), "envelope has fewer than 5 elements"),
        (pack([2, ident(9), 1, 1, b""]), "unsupported envelope version"),
        (pack([0, ident(9), 1, 1, b""]), "unsupported envelope version"),
        (pack([1, ident(9)[:15], 1, 1, b""]), "id is not 16 bytes"),
        (pack([1, "0123456789abcdef", 1, 1, b""]), "field has the wrong type"),
        (pack([1, ident(9), -1, 1, b""]), "field has the wrong type"),
        (pack([1, ident(9), 1, 1.5, b""]), "field has the wrong type"),
        (pack([1, ident(9), 1, 1, "str body"]), "field has the wrong type"),
        (pack(good_head + [None]), "field has the wrong type"),
        (pack(good_head + [{"ttl": "10"}]), "field has the wrong type"),
        (pack(good_head + [{"src": b"bin"}]), "field has the wrong type"),
        (pack(good_head + [{"hdr": {"k": None}}]), "field has the wrong type"),
        (pack(good_head + [{"hdr": {"k": UINT64_MAX}}]), "field has the wrong type"),
        (pack(good_head + [{1: "int key"}]), "key is not a string"),
        (pack(good_head + [{"hdr": {2: "v"}}]), "key is not a string"),
        (pack(good_head) + b"\x00", "trailing bytes after the envelope"),
        (pack(good_head + [{"src": "abc"}])[:-1], "truncated input"),
        (b"\xdd\xff\xff\xff\xff", "truncated input"),
        (pack(good_head + [{}])[:-1] + b"\xdf\xff\xff\xff\xff", "truncated input"),
        (pack(good_head + [{"deep": nested(17)}]),
         "entries, string length or nesting beyond the limit"),
        (pack(good_head + [{"topic": "t" * 65537}]),
         "entries, string length or nesting beyond the limit"),
        (pack(good_head + [{f"k{i}": i for i in range(65)}]),
         "entries, string length or nesting beyond the limit"),
    ]
    # Repeated keys cannot come from a dict: splice the bytes by hand.
    head = pack(good_head)
    head = b"\x96" + head[1:]
    cases += [
        (head + b"\x82" + pack("src") + pack("a") + pack("src") + pack("b"), "repeated key"),
        (head + b"\x82" + pack("new") + pack(1) + pack("new") + pack(2), "repeated key"),
        (head + b"\x81" + pack("hdr") + b"\x82" + pack("k") + pack(1) + pack("k") + pack(2),
         "repeated key"),
    ]
    got = c_decode([frame for frame, _ in cases])
    for (frame, text), line in zip(cases, got):
        assert line.get("error") == text, f"{frame[:40].hex()}: expected '{text}', got {line}"
        assert line.get("detail"), f"{frame[:40].hex()}: no detail in {line}"


# ---- re-encode keeps what it does not understand ---------------------------

def test_reencode_is_byte_exact():
    frames = [
        # canonical order: known keys first, unknown ones after, then extras
        envelope(ident(10), 1, 2, b"body",
                 {"src": "s", "ttl": 5, "hdr": {"k": "v"}, "zz": [1, 2], "yy": {"m": None}},
                 ["extra", {"x": 1}]),
        envelope(ident(11), 3, 4, b"", {"future": 1.25}),
        envelope(ident(12), 5, 6, b"", None, [b"seventh"]),
        # non-minimal encodings inside unknown values survive as they are
        b"\x96\x01\xc4\x10" + ident(13) + b"\x01\x02\xc4\x00"
        + b"\x81" + b"\xd9\x03new" + b"\xcd\x00\x05",
    ]
    out = c_reencode(frames)
    assert len(out) == len(frames)
    for i, (frame, again) in enumerate(zip(frames, out)):
        assert again == frame, f"frame {i}: {frame.hex()} came back as {again.hex()}"


def test_reencode_moves_unknown_keys_after_known():
    meta_in = {"zz": [1, {"q": b"\x00"}], "src": "s", "yy": -3, "ttl": 9}
    frame = envelope(ident(14), 1, 2, b"", meta_in, [[1, [2, [3]]]])
    (again,) = c_reencode([frame])
    decoded = unpack(again)
    assert decoded == unpack(frame), "re-encoded values differ"
    assert list(decoded[5].keys()) == ["src", "ttl", "zz", "yy"], list(decoded[5].keys())
    for key in ("zz", "yy"):
        assert pack(key) + pack(meta_in[key]) in again, f"{key} not kept byte for byte"


def test_reencode_of_a_bad_frame_is_empty():
    out = c_reencode([b"\xc1", envelope(ident(15), 1, 1, b"ok")])
    assert out[0] == b"" and unpack(out[1])[4] == b"ok"


def main():
    tests = [(name, fn) for name, fn in sorted(globals().items())
             if name.startswith("test_") and callable(fn)]
    passed = failed = 0
    for name, fn in tests:
        try:
            fn()
            passed += 1
            print(f"ok   {name}")
        except Exception:
            failed += 1
            print(f"FAIL {name}")
            traceback.print_exc()
    print(f"{passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
