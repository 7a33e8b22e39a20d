#!/usr/bin/python3
# test_cat.py: process-level tests of `zkit cat`, with python3-zmq and
# python3-msgpack as the independent peer.
#
#   ZKIT_BIN=build/bin/zkit /usr/bin/python3 tests/integration/test_cat.py [NAME...]
#
# Every wait has a deadline and every test a hard one; processes synchronise
# on events (the "bound" line on stderr, messages received, exits), never on
# fixed sleeps.
#
# This Source Code Form is subject to the terms of the Mozilla Public
# License, v. 2.0. If a copy of the MPL was not distributed with this
# file, You can obtain one at http://mozilla.org/MPL/2.0/.

import base64
import json
import os
import random
import re
import signal
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import msgpack  # noqa: E402
import zmq  # noqa: E402

from zkit_testlib import (  # noqa: E402
    ZkitProcess,
    ZmqPeer,
    assert_silent,
    envelope,
    free_tcp_port,
    recv_frame,
    recv_frames,
    run_tests,
    run_zkit,
    send_frames,
    unpack_envelope,
    wait_for,
    zkit_cat,
    zkit_stats,
)

BAD_RE = re.compile(r"^zkit cat: bad frame \((\d+) bytes\): (.+?): (.+)$")
ANY = "tcp://127.0.0.1:*"


def b64(data):
    return base64.b64encode(data).decode("ascii")


def json_lines(lines):
    # json.loads is strict by default: a raw control character in a string
    # fails, so this also checks the escaping.
    return [json.loads(line.decode("utf-8")) for line in lines]


def bad_lines(stderr_text):
    return [line for line in stderr_text.split("\n") if "bad frame" in line]


def assert_envelope_json(obj, frame_items):
    """obj (printed by zkit cat) matches the envelope list sent."""
    version, id_, seq, ts, body = frame_items[:5]
    assert obj["v"] == version, obj
    assert obj["id"] == id_.hex(), obj
    assert re.fullmatch(r"[0-9a-f]{32}", obj["id"]), obj
    assert obj["seq"] == seq, obj
    assert obj["ts"] == ts, obj
    assert obj["body"] == body.decode("utf-8"), obj


# ---- acceptance ------------------------------------------------------------------


def test_push_delivers_before_and_after_receiver_binds():
    """(1) A push started before anyone binds delivers all three envelopes to a
    receiver that binds a second later."""
    ep = "tcp://127.0.0.1:%d" % free_tcp_port()
    with ZmqPeer() as peer:
        p = zkit_cat("--push", "--connect", ep, "--data", "hello", "--count", "3")
        # Nothing is bound yet: it must wait for a peer, not exit or drop.
        p.assert_stays_running(1.0)
        pull = peer.socket(zmq.PULL)
        pull.bind(ep)
        frames = [recv_frame(pull) for _ in range(3)]
        now = time.time()
        assert p.wait() == 0
        assert p.stderr() == "", p.stderr()
        ids = set()
        for i, frame in enumerate(frames):
            items = msgpack.unpackb(frame, raw=False)
            assert len(items) in (5, 6), items
            assert items[0] == 1
            assert isinstance(items[1], bytes) and len(items[1]) == 16
            assert items[2] == i + 1, items
            assert abs(items[3] / 1e6 - now) < 5.0, (items[3], now)
            assert items[4] == b"hello"
            if len(items) == 6:
                assert items[5]["src"] == "cat-%d" % p.proc.pid, items[5]
            ids.add(items[1])
        assert len(ids) == 3


def test_pull_skips_garbage_and_prints_valid():
    """(2) Garbage frames are reported one line each on stderr and skipped;
    the two valid envelopes are printed as JSON; exit 0 after --count 2."""
    good = envelope(b"ok", seq=1)
    rng = random.Random(20240601)
    garbage = [
        (b"", r"empty"),
        (good[: len(good) // 2], r"truncated"),
        (b"\xdd\xff\xff\xff\xff", r"truncated|limit|fewer"),
        (bytes([0xC1]) + bytes(rng.randrange(256) for _ in range(40)), r"."),
        (envelope(b"x", version=2), r"version"),
        (msgpack.packb([1, b"short", 1, 1, b"x"], use_bin_type=True), r"id is not 16 bytes"),
        (msgpack.packb({"v": 1, "body": b"x"}, use_bin_type=True), r"not a MessagePack array"),
    ]
    valid = [
        (1, os.urandom(16), 7, 1_700_000_000_000_000, b"first"),
        (1, os.urandom(16), 8, 1_700_000_000_000_001, b"second"),
    ]
    with ZmqPeer() as peer:
        p = zkit_cat("--pull", "--bind", ANY, "--count", "2", "--format", "json")
        ep = p.wait_bound()
        push = peer.socket(zmq.PUSH)
        push.connect(ep)
        for frame, _ in garbage:
            send_frames(push, [frame])
        for items in valid:
            send_frames(push, [msgpack.packb(list(items), use_bin_type=True)])
        lines = p.wait_stdout_lines(2)
        assert p.wait() == 0
        out = p.stdout().split(b"\n")
        assert out[-1] == b"" and len(out) == 3, out
        for obj, items in zip(json_lines(lines), valid):
            assert_envelope_json(obj, items)
        bad = bad_lines(p.stderr())
        assert len(bad) == len(garbage), p.stderr()
        for line, (frame, reason) in zip(bad, garbage):
            m = BAD_RE.match(line)
            assert m, line
            assert int(m.group(1)) == len(frame), (line, len(frame))
            assert re.search(reason, m.group(2)), (line, reason)
            assert m.group(3).strip(), line
        other = [l for l in p.stderr_lines() if "bad frame" not in l and " bound " not in l]
        assert other == [], other


# ---- output formats ----------------------------------------------------------------


def test_formats_raw_hex_msgpack_byte_exact():
    frames = [envelope(b"alpha", seq=1, meta={"src": "py"}), envelope(b"be\x00ta\xff\n", seq=2)]
    expected = {
        "raw": b"alpha\n" + b"be\x00ta\xff\n" + b"\n",
        "hex": (frames[0].hex() + "\n" + frames[1].hex() + "\n").encode(),
        "msgpack": frames[0] + frames[1],
    }
    with ZmqPeer() as peer:
        procs = {}
        for fmt in expected:
            procs[fmt] = zkit_cat("--pull", "--bind", ANY, "--count", "2", "--format", fmt)
        for fmt, p in procs.items():
            push = peer.socket(zmq.PUSH)
            push.connect(p.wait_bound())
            for f in frames:
                send_frames(push, [f])
        for fmt, p in procs.items():
            assert p.wait() == 0, (fmt, p.stderr())
            assert p.stdout() == expected[fmt], (fmt, p.stdout(), expected[fmt])
        # The msgpack output is a stream another decoder reads back.
        unpacker = msgpack.Unpacker(raw=False)
        unpacker.feed(procs["msgpack"].stdout())
        bodies = [items[4] for items in unpacker]
        assert bodies == [b"alpha", b"be\x00ta\xff\n"]


def test_json_body_utf8_and_base64():
    valid = [b"plain ascii", "h\u00e9llo \u20ac \U0001F600".encode(), b"", b'q"b\\s/\x01\x1f\n\t\r\x7f',
             "\ufeff\uffff".encode()]
    invalid = [
        b"\xff",
        b"\xc0\xaf",  # overlong '/'
        b"\xc1\xbf",  # overlong
        b"\xe0\x80\xaf",  # overlong, 3 bytes
        b"\xf0\x80\x80\xaf",  # overlong, 4 bytes
        b"\xed\xa0\x80",  # surrogate U+D800
        b"\xed\xbf\xbf",  # surrogate U+DFFF
        b"\xf4\x90\x80\x80",  # U+110000
        b"\xf5\x80\x80\x80",
        b"\xf8\x88\x80\x80\x80",
        b"abc\xe2\x82",  # truncated sequence
        b"\x80",  # stray continuation byte
        b"ok\xc3(",  # bad continuation
    ]
    bodies = valid + invalid
    with ZmqPeer() as peer:
        p = zkit_cat("--pull", "--bind", ANY, "--count", str(len(bodies)))
        push = peer.socket(zmq.PUSH)
        push.connect(p.wait_bound())
        for i, body in enumerate(bodies):
            send_frames(push, [envelope(body, seq=i + 1)])
        objs = json_lines(p.wait_stdout_lines(len(bodies)))
        assert p.wait() == 0
        for obj, body in zip(objs, bodies):
            if body in valid:
                assert obj.get("body") == body.decode("utf-8"), (obj, body)
                assert "body_base64" not in obj
            else:
                assert "body" not in obj, (obj, body)
                assert base64.b64decode(obj["body_base64"]) == body, (obj, body)


def test_json_meta_hdr_unknown_and_extra():
    meta = {
        "src": "py-src",
        "ttl": 5000,
        "att": 2,
        "topic": "t/1",
        "batch": b"\x01\x02",
        "reply": "tcp://somewhere:1",
        "corr": "c-1",
        "ct": "text/plain",
        "hdr": {"k": "v", "b": b"\x00\xff", "n": -5},
        "zz": [1, -2, 1.5, None, True, b"\x00\x01", {"a": "b", 7: "seven"}],
        "x-str": "s\u00e9",
    }
    frame = envelope(b"with meta", seq=9, meta=meta, extra=("future", {"k": 1}))
    with ZmqPeer() as peer:
        p = zkit_cat("--pull", "--bind", ANY, "--count", "1")
        push = peer.socket(zmq.PUSH)
        push.connect(p.wait_bound())
        send_frames(push, [frame])
        (obj,) = json_lines(p.wait_stdout_lines(1))
        assert p.wait() == 0, p.stderr()
    assert obj["body"] == "with meta"
    assert obj["src"] == "py-src"
    assert obj["ttl"] == 5000
    assert obj["att"] == 2
    assert obj["topic"] == "t/1"
    assert obj["batch"] == {"base64": b64(b"\x01\x02")}
    assert obj["reply"] == "tcp://somewhere:1"
    assert obj["corr"] == "c-1"
    assert obj["ct"] == "text/plain"
    assert obj["hdr"] == {"k": "v", "b": {"base64": b64(b"\x00\xff")}, "n": -5}, obj["hdr"]
    assert obj["unknown"] == {
        "zz": [1, -2, 1.5, None, True, {"base64": b64(b"\x00\x01")}, {"a": "b", "7": "seven"}],
        "x-str": "s\u00e9",
    }, obj["unknown"]
    assert obj["extra"] == ["future", {"k": 1}], obj["extra"]


# ---- socket patterns ---------------------------------------------------------------


def test_sub_filters_topics_with_xpub_peer():
    """zkit sub connects to a python XPUB; the XPUB sees the subscriptions
    arrive (no slow-joiner sleep), then publishes; only matching topics print."""
    with ZmqPeer() as peer:
        xpub = peer.socket(zmq.XPUB)
        ep = peer.bind_random(xpub)
        p = zkit_cat("--sub", "--connect", ep, "--subscribe", "news", "--subscribe", "alert",
                     "--count", "3", "--format", "json")
        subs = {recv_frame(xpub), recv_frame(xpub)}
        assert subs == {b"\x01news", b"\x01alert"}, subs
        sent = [
            (b"sports", b"s1"),
            (b"news.uk", b"n1"),
            (b"weather", b"w1"),
            (b"alert!", b"a1"),
            (b"news", b"n2"),
        ]
        for topic, body in sent:
            send_frames(xpub, [topic, envelope(body, meta={"topic": topic.decode()})])
        send_frames(xpub, [b"news-without-envelope"])  # one frame: not [topic][envelope]
        send_frames(xpub, [b"news", envelope(b"n3")])
        objs = json_lines(p.wait_stdout_lines(3))
        assert p.wait() == 0, p.stderr()
        got = [(o["frame_topic"], o["body"], o["topic"]) for o in objs]
        assert got == [("news.uk", "n1", "news.uk"), ("alert!", "a1", "alert!"),
                       ("news", "n2", "news")], got
        assert bad_lines(p.stderr()) == [], p.stderr()


def test_sub_reports_single_frame_message():
    with ZmqPeer() as peer:
        xpub = peer.socket(zmq.XPUB)
        ep = peer.bind_random(xpub)
        p = zkit_cat("--sub", "--connect", ep, "--count", "1")
        assert recv_frame(xpub) == b"\x01"
        send_frames(xpub, [b"lonely frame"])
        send_frames(xpub, [b"", envelope(b"ok")])
        (obj,) = json_lines(p.wait_stdout_lines(1))
        assert obj["frame_topic"] == "" and obj["body"] == "ok"
        assert p.wait() == 0
        (line,) = bad_lines(p.stderr())
        m = BAD_RE.match(line)
        assert m and m.group(2) == "wrong number of frames", line
        assert "expected [topic][envelope], got 1 frame" in m.group(3), line


def test_pub_topic_frame_and_sigterm():
    """zkit pub repeats with --interval until killed; a python SUB sees the
    topic frame and the meta topic; SIGTERM stops it cleanly."""
    with ZmqPeer() as peer:
        sub = peer.socket(zmq.SUB)
        sub.setsockopt(zmq.SUBSCRIBE, b"tick")
        ep = peer.bind_random(sub)
        p = zkit_cat("--pub", "--connect", ep, "--topic", "tick", "--data", "hi", "--interval", "20",
                     "--src", "ticker")
        topic, frame = recv_frames(sub)
        assert topic == b"tick"
        items = unpack_envelope(frame)
        assert items[4] == b"hi"
        assert items[5]["topic"] == "tick" and items[5]["src"] == "ticker", items
        # It keeps going: the next one has a higher seq.
        topic2, frame2 = recv_frames(sub)
        assert unpack_envelope(frame2)[2] > items[2]
        p.send_signal(signal.SIGTERM)
        assert p.wait() == 0
        assert p.stderr() == "", p.stderr()


def test_req_rep_between_two_cats():
    rep = zkit_cat("--rep", "--bind", ANY, "--count", "3", "--format", "json")
    ep = rep.wait_bound()
    req = zkit_cat("--req", "--connect", ep, "--data", "ping", "--count", "3", "--timeout", "10000",
                   "--format", "json")
    requests = json_lines(rep.wait_stdout_lines(3))
    replies = json_lines(req.wait_stdout_lines(3))
    assert req.wait() == 0, req.stderr()
    assert rep.wait() == 0, rep.stderr()
    assert [r["seq"] for r in requests] == [1, 2, 3]
    for request, reply in zip(requests, replies):
        assert request["body"] == "ping"
        assert request["src"] == "cat-%d" % req.proc.pid
        assert reply["body"] == "ping"  # echoed
        assert reply["src"] == "cat-%d" % rep.proc.pid
        assert base64.b64decode(reply["corr"]["base64"]).hex() == request["id"], (request, reply)
        assert reply["id"] != request["id"]


def test_rep_data_reply_and_bad_request():
    """A python REQ: a bad request gets an error reply (REP must answer), a
    valid one gets --data with corr set; only the valid one counts."""
    with ZmqPeer() as peer:
        p = zkit_cat("--rep", "--bind", ANY, "--count", "1", "--data", "pong")
        req = peer.socket(zmq.REQ)
        req.connect(p.wait_bound())
        send_frames(req, [b"\x00garbage"])
        err = unpack_envelope(recv_frame(req))
        assert err[4] == b"" and "bad request" in err[5]["hdr"]["error"], err
        request_id = os.urandom(16)
        send_frames(req, [envelope(b"ping", id=request_id)])
        reply = unpack_envelope(recv_frame(req))
        assert reply[4] == b"pong" and reply[5]["corr"] == request_id, reply
        assert p.wait() == 0, p.stderr()
        assert len(bad_lines(p.stderr())) == 1


def test_dealer_router_between_two_cats():
    router = zkit_cat("--router", "--bind", ANY, "--data", "ack", "--count", "2")
    ep = router.wait_bound()
    dealer = zkit_cat("--dealer", "--connect", ep, "--data", "hi", "--count", "2", "--timeout",
                      "10000")
    received = json_lines(router.wait_stdout_lines(2))
    acks = json_lines(dealer.wait_stdout_lines(2))
    assert router.wait() == 0, router.stderr()
    assert dealer.wait() == 0, dealer.stderr()
    assert [r["body"] for r in received] == ["hi", "hi"]
    assert received[0]["peer"] == received[1]["peer"]
    assert re.fullmatch(r"(?:[0-9a-f]{2})+", received[0]["peer"]), received[0]
    for request, ack in zip(received, acks):
        assert ack["body"] == "ack"
        assert base64.b64decode(ack["corr"]["base64"]).hex() == request["id"]


def test_router_answers_python_req_and_dealer():
    """Router strips [id] or [id][""] and replies through the same route."""
    with ZmqPeer() as peer:
        p = zkit_cat("--router", "--bind", ANY, "--data", "ack", "--count", "2")
        ep = p.wait_bound()
        req = peer.socket(zmq.REQ)
        req.connect(ep)
        dealer = peer.socket(zmq.DEALER, routing_id=b"D1")
        dealer.connect(ep)
        send_frames(req, [envelope(b"from req")])
        assert unpack_envelope(recv_frame(req))[4] == b"ack"
        send_frames(dealer, [envelope(b"from dealer")])
        assert unpack_envelope(recv_frame(dealer))[4] == b"ack"
        objs = json_lines(p.wait_stdout_lines(2))
        assert p.wait() == 0
        assert [o["body"] for o in objs] == ["from req", "from dealer"]
        assert objs[1]["peer"] == b"D1".hex()


def test_raw_interop_both_ways():
    with ZmqPeer() as peer:
        # python -> zkit: plain frames printed undecoded.
        push = peer.socket(zmq.PUSH)
        ep = peer.bind_random(push)
        p = zkit_cat("--pull", "--raw", "--connect", ep, "--count", "2", "--format", "raw")
        send_frames(push, [b"plain one"])
        send_frames(push, [b"plain\x00two"])
        assert p.wait() == 0, p.stderr()
        assert p.stdout() == b"plain one\nplain\x00two\n"

        # zkit -> python: --data goes out as is.
        pull = peer.socket(zmq.PULL)
        ep2 = peer.bind_random(pull)
        rc, out, err = run_zkit(["cat", "--push", "--raw", "--connect", ep2, "--data", "hello raw"])
        assert rc == 0, err
        assert recv_frames(pull) == [b"hello raw"]

        # Multipart frames as JSON and hex.
        pushj, pushh = peer.socket(zmq.PUSH), peer.socket(zmq.PUSH)
        pj = zkit_cat("--pull", "--raw", "--connect", peer.bind_random(pushj), "--count", "1",
                      "--format", "json")
        ph = zkit_cat("--pull", "--raw", "--connect", peer.bind_random(pushh), "--count", "1",
                      "--format", "hex")
        send_frames(pushj, [b"a", b"\xff"])
        send_frames(pushh, [b"a", b"\xff"])
        assert pj.wait() == 0 and ph.wait() == 0
        assert json.loads(pj.stdout()) == {"frames": ["a", {"base64": "/w=="}]}
        assert ph.stdout() == b"61 ff\n"


def test_file_stdin_100_lines():
    lines = ["line %03d %s" % (i, "x" * (i % 7)) for i in range(100)]
    with ZmqPeer() as peer:
        pull = peer.socket(zmq.PULL)
        ep = peer.bind_random(pull)
        data = ("\n".join(lines) + "\n").encode()
        p = zkit_cat("--push", "--connect", ep, "--file", "-", stdin=data)
        got = [unpack_envelope(recv_frame(pull)) for _ in range(100)]
        assert p.wait() == 0, p.stderr()
        assert [g[4].decode() for g in got] == lines
        assert [g[2] for g in got] == list(range(1, 101))
        assert len({g[1] for g in got}) == 100


def test_file_path_with_count_and_no_trailing_newline():
    with tempfile.NamedTemporaryFile("wb", suffix=".txt", delete=False) as f:
        f.write(b"one\ntwo\n\nfour\nfive")
        path = f.name
    try:
        with ZmqPeer() as peer:
            pull = peer.socket(zmq.PULL)
            ep = peer.bind_random(pull)
            rc, _, err = run_zkit(["cat", "--push", "--connect", ep, "--file", path, "--count", "4"])
            assert rc == 0, err
            got = [unpack_envelope(recv_frame(pull))[4] for _ in range(4)]
            assert got == [b"one", b"two", b"", b"four"]
            assert_silent(pull, 0.2)
            rc, _, err = run_zkit(["cat", "--push", "--connect", ep, "--file", path])
            assert rc == 0, err
            got = [unpack_envelope(recv_frame(pull))[4] for _ in range(5)]
            assert got[-1] == b"five"
    finally:
        os.unlink(path)


# ---- usage, timeouts, signals ------------------------------------------------------


def test_usage_errors_exit_2():
    ep = "tcp://127.0.0.1:1"
    cases = [
        [],
        ["--connect", ep, "--data", "x"],
        ["--push", "--pull", "--connect", ep, "--data", "x"],
        ["--push", "--connect", ep, "--data", "x", "--count", "abc"],
        ["--push", "--connect", ep, "--data", "x", "--count", "0"],
        ["--push", "--connect", ep, "--data", "x", "--count", "-1"],
        ["--push", "--connect", ep, "--data", "x", "--count", ""],
        ["--push", "--connect", ep, "--data", "x", "--count", "3x"],
        ["--push", "--connect", ep, "--data", "x", "--count"],
        ["--pull"],
        ["--push", "--connect", ep],
        ["--pull", "--bind", ep, "--format", "xml"],
        ["--pull", "--bind", ep, "--data", "x"],
        ["--push", "--connect", ep, "--data", "x", "--subscribe", "a"],
        ["--push", "--connect", ep, "--data", "x", "--file", "-"],
        ["--push", "--connect", ep, "--data", "x", "--interval", "soon"],
        ["--push", "--connect", ep, "--data", "x", "--bogus"],
        ["--push", "--connect", ep, "--data", "x", "stray"],
        ["--push", "--connect", ep, "--data", "x", "--hdr", "novalue"],
        ["--push", "--connect", ep, "--data", "x", "--raw", "--hdr", "a=b"],
    ]
    for args in cases:
        rc, out, err = run_zkit(["cat"] + args)
        assert rc == 2, (args, rc, err)
        assert out == b"", (args, out)
        assert err.startswith("zkit cat: ") and err.endswith("\n") and err.count("\n") == 1, (args, err)


def test_help_exits_0():
    rc, out, err = run_zkit(["cat", "--help"])
    assert rc == 0 and err == "", (rc, err)
    text = out.decode()
    assert text.startswith("usage: zkit cat")
    for option in ["--push", "--pull", "--pub", "--sub", "--req", "--rep", "--dealer", "--router",
                   "--bind", "--connect", "--data", "--file", "--count", "--interval", "--topic",
                   "--subscribe", "--timeout", "--raw", "--format", "--src", "--quiet", "--delay",
                   "Slow joiners"]:
        assert option in text, option


def test_receive_timeout_with_count_unmet_exits_1():
    with ZmqPeer() as peer:
        p = zkit_cat("--pull", "--bind", ANY, "--count", "3", "--timeout", "1500")
        push = peer.socket(zmq.PUSH)
        push.connect(p.wait_bound())
        send_frames(push, [envelope(b"only one")])
        assert p.wait() == 1
        assert len(p.stdout().splitlines()) == 1
        assert "zkit cat: timeout: received 1 of 3" in p.stderr_lines(), p.stderr()


def test_receive_timeout_without_count_exits_0():
    p = zkit_cat("--pull", "--bind", ANY, "--timeout", "200")
    p.wait_bound()
    assert p.wait() == 0
    assert p.stdout() == b""


def test_req_timeout_and_send_timeout_exit_1():
    with ZmqPeer() as peer:
        router = peer.socket(zmq.ROUTER)
        ep = peer.bind_random(router)
        p = zkit_cat("--req", "--connect", ep, "--data", "anyone?", "--timeout", "300")
        recv_frames(router)  # the request arrived; nobody answers
        assert p.wait() == 1
        assert "zkit cat: timeout: received 0 of 1" in p.stderr_lines(), p.stderr()
    # A bound push with no peer cannot hand its message to anyone.
    p = zkit_cat("--push", "--bind", ANY, "--data", "x", "--timeout", "300")
    assert p.wait() == 1
    assert "zkit cat: timeout: sent 0 of 1" in p.stderr_lines(), p.stderr()


def test_sigint_stops_receiver_and_lingering_sender():
    p = zkit_cat("--pull", "--bind", ANY)
    p.wait_bound()
    p.send_signal(signal.SIGINT)
    assert p.wait(5) == 0
    assert len(p.stderr_lines()) == 1, p.stderr()  # the bound line, nothing more
    # A push waiting for a peer that never comes: SIGINT ends the wait.
    s = zkit_cat("--push", "--connect", "tcp://127.0.0.1:%d" % free_tcp_port(), "--data", "x")
    s.assert_stays_running(0.5)
    s.send_signal(signal.SIGINT)
    assert s.wait(5) == 0
    assert s.stderr() == "", s.stderr()
    # A push blocked reading lines from a stdin that stays open.
    with ZmqPeer() as peer:
        pull = peer.socket(zmq.PULL)
        f = zkit_cat("--push", "--connect", peer.bind_random(pull), "--file", "-", stdin=True)
        f.write_stdin(b"first line\n")
        assert unpack_envelope(recv_frame(pull))[4] == b"first line"
        f.send_signal(signal.SIGINT)
        assert f.wait(5) == 0
        assert f.stderr() == "", f.stderr()


def test_bad_frame_lines_are_capped():
    with ZmqPeer() as peer:
        p = zkit_cat("--pull", "--bind", ANY, "--count", "1", "--format", "raw")
        push = peer.socket(zmq.PUSH)
        push.connect(p.wait_bound())
        for _ in range(150):
            send_frames(push, [b""])
        send_frames(push, [envelope(b"finally")])
        assert p.wait() == 0
        assert p.stdout() == b"finally\n"
        assert len(bad_lines(p.stderr())) == 101, p.stderr()  # 100 + the summary
        assert "zkit cat: 150 bad frames in total, 50 not shown" in p.stderr_lines()


def test_quiet_prints_only_the_summary():
    with ZmqPeer() as peer:
        push = peer.socket(zmq.PUSH)
        ep = peer.bind_random(push)
        p = zkit_cat("--pull", "--connect", ep, "--count", "1", "--quiet", "--format", "raw")
        send_frames(push, [b"junk"])
        send_frames(push, [envelope(b"fine")])
        assert p.wait() == 0
        assert p.stdout() == b"fine\n"
        assert p.stderr_lines() == ["zkit cat: 1 bad frames in total, 1 not shown"], p.stderr()


def test_curve_between_two_cats():
    """CURVE: a pull that binds with an allow-list takes an allowed push and
    nothing from an unlisted key or a plaintext push; one socket cannot both
    bind and connect when secured."""
    with tempfile.TemporaryDirectory() as tmp:
        allow = os.path.join(tmp, "allow")
        os.mkdir(allow)
        for name in ("server", "alice", "mallory"):
            rc, _, err = run_zkit(["keygen", name, "--dir", tmp])
            assert rc == 0, err
        os.rename(os.path.join(tmp, "alice"), os.path.join(allow, "alice"))
        key = lambda name: os.path.join(tmp, name)  # noqa: E731
        pull = zkit_cat("--pull", "--bind", "tcp://127.0.0.1:*", "--format", "raw",
                        "--curve-secret", key("server_secret"), "--curve-allow", allow)
        ep = pull.wait_bound()
        refused = [
            zkit_cat("--push", "--connect", ep, "--data", "mallory", "--timeout", "1500",
                     "--curve-secret", key("mallory_secret"), "--curve-server", key("server")),
            zkit_cat("--push", "--connect", ep, "--data", "plaintext", "--timeout", "1500"),
        ]
        alice = zkit_cat("--push", "--connect", ep, "--data", "alice",
                         "--curve-secret", key("alice_secret"), "--curve-server", key("server"))
        assert alice.wait() == 0, alice.stderr()
        assert pull.wait_stdout_lines(1) == [b"alice"]
        # The refused senders never get a session (libzmq drops what they
        # queued once the server refuses the handshake, or at --timeout).
        # Once they have exited their message can no longer arrive.
        for p in refused:
            p.wait()
        assert pull.stdout() == b"alice\n", pull.stdout()
        rc, _, err = run_zkit(["cat", "--pull", "--bind", "tcp://127.0.0.1:*", "--connect",
                               ep, "--curve-secret", key("server_secret"),
                               "--curve-allow", allow])
        assert rc == 2 and "CURVE server and a client" in err, (rc, err)


def test_reliable_push_sends_what_a_pipe_has_so_far():
    """A reliable push reading a pipe sends each line as it arrives: with its
    input momentarily empty it keeps sending, confirming and resending
    instead of blocking on the next line (a stdio getline in the loop froze
    everything already read until more input came)."""
    with tempfile.TemporaryDirectory() as tmp:
        dev = ZkitProcess(["spool", "--in", "tcp://127.0.0.1:*", "--out", "tcp://127.0.0.1:*",
                           "--dir", tmp, "--control", "tcp://127.0.0.1:*"])
        in_ep = dev.wait_bound()
        control = dev.wait_stderr(r"^zkit spool: control (\S+)$").group(1)
        # A window larger than the input: the producer asks for more lines.
        prod = zkit_cat("--push", "--reliable", "--connect", in_ep, "--file", "-",
                        "--window", "100", stdin=True)
        prod.write_stdin(b"one\ntwo\nthree\n")
        wait_for(lambda: zkit_stats(control)["counters"].get("stored") == 3, what="3 stored")
        prod.write_stdin(b"four\nfive")  # the last line without its newline
        wait_for(lambda: zkit_stats(control)["counters"].get("stored") == 4, what="4 stored")
        prod.write_stdin(b"\n", close=True)
        assert prod.wait() == 0, prod.stderr()
        assert zkit_stats(control)["counters"]["stored"] == 5


TESTS = [
    test_push_delivers_before_and_after_receiver_binds,
    test_pull_skips_garbage_and_prints_valid,
    test_formats_raw_hex_msgpack_byte_exact,
    test_json_body_utf8_and_base64,
    test_json_meta_hdr_unknown_and_extra,
    test_sub_filters_topics_with_xpub_peer,
    test_sub_reports_single_frame_message,
    test_pub_topic_frame_and_sigterm,
    test_req_rep_between_two_cats,
    test_rep_data_reply_and_bad_request,
    test_dealer_router_between_two_cats,
    test_router_answers_python_req_and_dealer,
    test_raw_interop_both_ways,
    test_file_stdin_100_lines,
    test_file_path_with_count_and_no_trailing_newline,
    test_usage_errors_exit_2,
    test_help_exits_0,
    test_receive_timeout_with_count_unmet_exits_1,
    test_receive_timeout_without_count_exits_0,
    test_req_timeout_and_send_timeout_exit_1,
    test_sigint_stops_receiver_and_lingering_sender,
    test_bad_frame_lines_are_capped,
    test_quiet_prints_only_the_summary,
    test_curve_between_two_cats,
    test_reliable_push_sends_what_a_pipe_has_so_far,
]

if __name__ == "__main__":
    sys.exit(run_tests(TESTS, deadline=60.0))
