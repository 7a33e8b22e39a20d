#!/usr/bin/python3
# test_pubsub_ops.py: the operating side of `zkit forwarder`, `zkit publisher`
# and `zkit subscriber`: the control endpoint's STATS against exactly the
# traffic sent (json and Prometheus), floods of malformed input into every
# bound socket, CURVE end to end, and PAUSE/RESUME.
#
#   ZKIT_BIN=build/bin/zkit ZKIT_BIN_DIR=build/bin /usr/bin/python3 \
#       tests/integration/test_pubsub_ops.py [NAME...]
#
# Python peers send the floods with unlimited send queues (SNDHWM 0) or on
# sockets that block rather than drop, so every message sent reaches the
# device and the bad-input counters can be checked exactly. Every wait has
# a deadline; the "nothing arrives while paused" checks are bounded waits
# by nature.
#
# This Source Code Form is subject to the terms of the Mozilla Public
# License, v. 2.0. If a copy of the MPL was not distributed with this
# file, You can obtain one at http://mozilla.org/MPL/2.0/.

import os
import random
import re
import socket
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import msgpack  # noqa: E402
import zmq  # noqa: E402

from zkit_testlib import (  # noqa: E402
    GARBAGE_KINDS,
    ZkitProcess,
    ZmqPeer,
    assert_silent,
    curve_client,
    envelope,
    flood_env,
    flood_garbage,
    free_tcp_port,
    keygen,
    metric,
    parse_prometheus,
    recv_frames,
    rss_kib,
    run_tests,
    run_zkit,
    send_frames,
    wait_for,
    zkit_stats,
)

ANY = "tcp://127.0.0.1:*"
CONTROL_RE = r"^zkit \w+: control (\S+)$"
FLOOD = int(os.environ.get("PS7_FLOOD", 100000))
RSS_LIMIT_KIB = 10 * 1024
COUNTED_KINDS = tuple(k for k in GARBAGE_KINDS if k != "oversized")


# ---- helpers ---------------------------------------------------------------------------


def measured_env():
    """flood_env() for a device whose RSS a flood test bounds, plus no
    allocation stacks under AddressSanitizer: its stack depot grows with
    every stack it has not seen (libzmq's I/O thread, unwound without frame
    pointers, yields many) and would read as growth. Errors are still
    caught; their reports name fewer frames."""
    env = flood_env()
    env["ASAN_OPTIONS"] += ":malloc_context_size=0"
    return env


def control_of(proc):
    return proc.wait_stderr(CONTROL_RE).group(1)


def forwarder(*extra, env=None):
    fwd = ZkitProcess(["forwarder", "--frontend", ANY, "--backend", ANY, "--control", ANY]
                      + list(extra), env=env)
    return fwd, fwd.wait_bound(index=0), fwd.wait_bound(index=1), control_of(fwd)


def publisher(*extra, env=None):
    pub = ZkitProcess(["publisher", "--bind", ANY, "--replay-bind", ANY, "--stdin", "--control",
                       ANY, "--name", "opsfeed", "--topic", "ops"] + list(extra), stdin=True,
                      env=env)
    data = pub.wait_bound()
    replay = pub.wait_stderr(r"^zkit publisher: replay (\S+)$").group(1)
    return pub, data, replay, control_of(pub)


def py_envelope(seq, src="py", body=None):
    return envelope(body if body is not None else b"body %d" % seq, seq=seq,
                    meta={"src": src})


def xpub(peer, connect=None, bind=False):
    """A python publisher that sees subscriptions, never drops (SNDHWM 0)."""
    s = peer.socket(zmq.XPUB, sndhwm=0)
    if bind:
        return s, peer.bind_random(s)
    s.connect(connect)
    return s, None


def wait_subscription(sock, prefix=b""):
    frames = recv_frames(sock)
    assert frames == [b"\x01" + prefix], frames


def sub_socket(peer, endpoint, prefix=b"", **opts):
    s = peer.socket(zmq.SUB, **opts)
    s.connect(endpoint)
    s.setsockopt(zmq.SUBSCRIBE, prefix)
    return s


def fed_forwarder(peer, *extra, env=None, sub_opts=None):
    """A forwarder between a python XPUB (at its frontend) and a python SUB
    to everything (at its backend), the subscription through: returns
    (fwd, pub, sub, front, back, control)."""
    fwd, front, back, control = forwarder(*extra, env=env)
    pub, _ = xpub(peer, front)
    sub = sub_socket(peer, back, **(sub_opts or {}))
    wait_subscription(pub)
    return fwd, pub, sub, front, back, control


def watched_publisher(peer, prefix, env=None):
    """A publisher with a python SUB to prefix on its feed, the subscription
    through: returns (pub, sub, data, replay, control)."""
    pub, data, replay, control = publisher(env=env)
    sub = sub_socket(peer, data, prefix)
    pub.wait_stderr(r"subscription \+'%s'" % prefix.decode())
    return pub, sub, data, replay, control


def fed_subscriber(peer, *extra):
    """A `zkit subscriber --format seq` connected to a python XPUB, the
    subscription through: returns (sub, pub, control)."""
    pub, ep = xpub(peer, bind=True)
    sub = ZkitProcess(["subscriber", "--connect", ep, "--control", ANY, "--format", "seq",
                       "--probe", "0"] + list(extra))
    control = control_of(sub)
    wait_subscription(pub)
    return sub, pub, control


def traffic(stats, socket):
    """(messages in, bytes in, messages out, bytes out) of one socket."""
    return tuple(metric(stats, name, socket=socket, dir=d)
                 for d in ("in", "out") for name in ("messages", "bytes"))


def prom_traffic(families, component, socket):
    """traffic() from a Prometheus rendering."""
    return tuple(prom_value(families, "zkit_%s_%s_total" % (component, name), socket=socket,
                            dir=d)
                 for d in ("in", "out") for name in ("messages", "bytes"))


def size(messages):
    return sum(len(f) for frames in messages for f in frames)


def control_request(endpoint, command):
    with ZmqPeer() as peer:
        req = peer.socket(zmq.REQ)
        req.connect(endpoint)
        send_frames(req, [command.encode()])
        return recv_frames(req)[0].decode()


def prometheus(endpoint):
    rc, out, err = run_zkit(["stats", endpoint, "--format", "prometheus"])
    assert rc == 0, err
    return parse_prometheus(out.decode())


def prom_value(families, family, **labels):
    samples = families[family]["samples"]
    for key, value in samples.items():
        if all((k, v) in key for k, v in labels.items()):
            return value
    raise AssertionError("no sample %s%r in %r" % (family, labels, samples))


def wait_stats(control, check, what, timeout=60):
    """Polls STATS until check(stats) holds; fails showing the last map."""
    last = {}

    def poll():
        last["stats"] = zkit_stats(control)
        return last["stats"] if check(last["stats"]) else None
    try:
        return wait_for(poll, timeout=timeout, what=what, interval=0.2)
    except AssertionError as exc:
        raise AssertionError("%s\nlast STATS: %r" % (exc, last.get("stats")))


def half_open(endpoint, rng):
    """Raw TCP connections that send nothing, random bytes, or a bit of a
    ZMTP greeting, then close."""
    host, port = endpoint[len("tcp://"):].rsplit(":", 1)
    for payload in (b"", bytes(rng.getrandbits(8) for _ in range(300)),
                    b"\xff\x00\x00\x00\x00\x00\x00\x00\x01\x7f\x03"):
        s = socket.create_connection((host, int(port)), timeout=5)
        if payload:
            s.sendall(payload)
        s.close()


def not_subscriptions(rng, count):
    """Messages a SUB-side peer can send that are not subscriptions: single
    frames whose first byte is not 0 or 1 (or empty), and multi-frame
    messages. Returns (messages, singles, multis)."""
    out, singles, multis = [], 0, 0
    for i in range(count):
        if i % 3 == 2:
            out.append([b"x"] * rng.randint(2, 20))
            multis += 1
        elif i % 7 == 0:
            out.append([b""])
            singles += 1
        else:
            first = rng.randint(2, 255)
            out.append([bytes([first]) + bytes(rng.getrandbits(8)
                                                for _ in range(rng.randint(0, 40)))])
            singles += 1
    return out, singles, multis


CHUNK = 5000
# Garbage sent during the warm-up, before the baseline RSS: the allocator
# (AddressSanitizer's in particular) grows its pools for the kinds of
# allocation a flood makes once; what the test checks is that the flood
# itself leaves nothing behind.
WARM = 20000
WARM_JUNK = WARM


def paced_garbage(sock, control, accounted, seed, count):
    """flood_garbage of count messages in chunks, each sent once the device
    has accounted for the ones before (accounted(stats) says how many since
    the caller's start): the python side never drops (SNDHWM 0 or a
    blocking socket), and the device never holds more than a chunk in
    flight, so its memory shows what it keeps, not a backlog."""
    sent = dict.fromkeys(COUNTED_KINDS, 0)
    done = 0
    while done < count:
        n = min(CHUNK, count - done)
        for kind, k in flood_garbage(sock, n, seed=seed + done, kinds=COUNTED_KINDS).items():
            sent[kind] += k
        done += n
        wait_stats(control, lambda s: accounted(s) >= done, "%d garbage messages seen" % done)
    return sent


def paced_junk(sock, control, accounted, messages):
    """The same for a list of messages."""
    for start in range(0, len(messages), CHUNK):
        for frames in messages[start:start + CHUNK]:
            sock.send_multipart(frames)
        end = min(start + CHUNK, len(messages))
        wait_stats(control, lambda s: accounted(s) >= end, "%d junk messages seen" % end)


def bad_sum(stats, socket):
    return sum(stats["counters"]["bad_input"]["socket"][socket]["reason"].values())


def oversized_flood(peer, kind, endpoint, size, count=3):
    s = peer.socket(kind)
    s.connect(endpoint)
    for _ in range(count):
        s.send(b"o" * size)
    return s


# ---- a. STATS matches the traffic ------------------------------------------------------


def test_forwarder_stats_match_traffic():
    with ZmqPeer() as peer:
        tap = peer.socket(zmq.PULL)
        tap_ep = peer.bind_random(tap)
        # A connected PUSH tap queues from the start: no copy is lost to
        # the connection not being up yet.
        fwd, pub, sub, _, _, control = fed_forwarder(
            peer, "--tap", tap_ep, "--tap-connect", "--tap-type", "push")
        feed = [[b"t.%d" % (seq % 3), py_envelope(seq)] for seq in range(1, 101)]
        bad = [[b"one frame"], [b"a", b"b", b"c"]]
        for frames in feed + bad:
            pub.send_multipart(frames)
        got = [recv_frames(sub) for _ in feed]
        tapped = [recv_frames(tap) for _ in feed]
        stats = wait_stats(control, lambda s: metric(s, "bad_input", socket="frontend",
                                                     reason="frames") == 2, "bad frames counted")
        fams = prometheus(control)
    assert got == feed and tapped == feed
    assert stats["component"] == "forwarder"
    # Every message the wire carried, the malformed ones too; the one
    # subscription went in at the backend and out (upstream) at the frontend.
    assert traffic(stats, "frontend") == (102, size(feed + bad), 1, 1), stats
    assert traffic(stats, "backend") == (1, 1, 100, size(feed))
    assert traffic(stats, "tap") == (0, 0, 100, size(feed))
    assert prom_traffic(fams, "forwarder", "frontend") == traffic(stats, "frontend")
    assert prom_traffic(fams, "forwarder", "backend") == traffic(stats, "backend")
    assert prom_traffic(fams, "forwarder", "tap") == traffic(stats, "tap")
    assert metric(stats, "subscriptions", op="subscribe") == 1
    assert metric(stats, "subscriptions", op="unsubscribe") == 0
    assert metric(stats, "dropped", reason="hwm") == 0
    assert metric(stats, "dropped", reason="tap") == 0
    assert metric(stats, "bad_input", socket="backend", reason="multipart") == 0
    assert metric(stats, "paused") == 0
    for name in ("messages", "bytes", "dropped", "nodrop_waits", "laggards", "subscriptions",
                 "bad_input", "connections", "paused"):
        assert name in stats["help"], name
    assert fams["zkit_forwarder_paused"]["type"] == "gauge"


def test_publisher_stats_match_traffic():
    with ZmqPeer() as peer:
        pub, sub, _, replay, control = watched_publisher(peer, b"ops")
        pub.write_stdin(b"".join(b"line %d\n" % i for i in range(50)))
        got = [recv_frames(sub) for _ in range(50)]
        dealer = peer.socket(zmq.DEALER)
        dealer.setsockopt(zmq.ROUTING_ID, b"asker")  # the ROUTER counts it
        dealer.connect(replay)
        requests = [[b"NOPE"], [b"FETCH", b"opsfeed", b"0", b"1", b"10"]]
        for frames in requests:
            send_frames(dealer, frames)
        answers = [recv_frames(dealer) for _ in range(11)]
        assert [a[0] for a in answers] == [b"REPLAY"] * 10 + [b"END"], answers
        stats = zkit_stats(control)
        fams = prometheus(control)
    assert stats["component"] == "publisher" and stats["name"] == "opsfeed", stats
    rid = len(b"asker")
    assert traffic(stats, "feed") == (1, len(b"\x01ops"), 50, size(got)), stats
    assert traffic(stats, "replay") == (2, size(requests) + 2 * rid, 11,
                                        size(answers) + 11 * rid)
    assert prom_traffic(fams, "publisher", "feed") == traffic(stats, "feed")
    assert prom_traffic(fams, "publisher", "replay") == traffic(stats, "replay")
    assert metric(stats, "last_seq") == 50
    assert metric(stats, "replay_messages") == 50
    assert metric(stats, "replay_first") == 1
    assert metric(stats, "requests", command="fetch") == 1
    assert metric(stats, "requests", command="probe") == 0
    assert metric(stats, "replayed") == 10
    assert metric(stats, "subscriptions", op="subscribe") == 1
    assert metric(stats, "prefixes") == 1
    assert metric(stats, "bad_input", socket="replay", reason="command") == 1
    assert prom_value(fams, "zkit_publisher_replayed_total", name="opsfeed") == 10
    assert prom_value(fams, "zkit_publisher_last_seq") == 50


def test_subscriber_stats_match_traffic():
    with ZmqPeer() as peer:
        router = peer.socket(zmq.ROUTER)
        replay_ep = peer.bind_random(router)
        sub, pub, control = fed_subscriber(peer, "--replay", replay_ep)
        feed = [[b"t", py_envelope(seq)] for seq in range(1, 21) if seq != 5]
        bad = [[b"only one frame"]] * 3 + [[b"t", b"\xc1 not an envelope"]]
        for frames in feed + bad:
            pub.send_multipart(frames)
        # The gap at 5 is fetched from the python replay endpoint.
        fetch = recv_frames(router)
        rid, request = fetch[0], fetch[1:]
        assert request[0] == b"FETCH" and request[3:] == [b"5", b"5"], fetch
        answer = [[b"REPLAY", b"t", py_envelope(5)],
                  [b"END", b"py", request[2], b"5", b"5", b"0", b"5", b"20"]]
        for frames in answer:
            send_frames(router, [rid] + frames)
        sub.wait_stdout_lines(20)
        stats = wait_stats(control, lambda s: metric(s, "bad_input", socket="feed",
                                                     reason="envelope") == 1,
                           "the bad envelope counted")
        fams = prometheus(control)
    assert traffic(stats, "feed") == (23, size(feed + bad), 0, 0), stats
    assert traffic(stats, "replay") == (2, size(answer), 1, size([request]))
    assert prom_traffic(fams, "subscriber", "feed") == traffic(stats, "feed")
    assert prom_traffic(fams, "subscriber", "replay") == traffic(stats, "replay")
    assert metric(stats, "received") == 20, stats  # the bad envelope was read too
    assert metric(stats, "delivered", kind="live") == 19
    assert metric(stats, "delivered", kind="recovered") == 1
    assert metric(stats, "gaps") == 1 and metric(stats, "missing") == 1
    assert metric(stats, "fetches") == 1 and metric(stats, "lost") == 0
    assert metric(stats, "bad_input", socket="feed", reason="frames") == 3
    assert metric(stats, "sources") == 1
    assert [p["id"] for p in stats["peers"]] == ["py"], stats["peers"]
    assert prom_value(fams, "zkit_subscriber_received_total") == 20


# ---- b. floods into every bound socket -------------------------------------------------


def test_forwarder_flood():
    rng = random.Random(7)
    with ZmqPeer() as peer:
        fwd, pub, sub, front, back, control = fed_forwarder(peer, env=measured_env(),
                                                            sub_opts={"rcvhwm": 0})
        xsub = peer.socket(zmq.XSUB, sndhwm=0)
        xsub.connect(back)

        def roundtrip(seq):
            pub.send_multipart([b"ok", py_envelope(seq)])
            while True:
                frames = recv_frames(sub)
                if frames[0] == b"ok":
                    return frames

        def front_seen(base):
            return lambda s: traffic(s, "frontend")[0] - base
        for seq in range(1, 201):  # warm-up: valid traffic, then some garbage
            roundtrip(seq)
        warm = paced_garbage(pub, control, front_seen(200), 1, WARM)
        warm_junk, warm_singles, warm_multis = not_subscriptions(rng, WARM_JUNK)
        paced_junk(xsub, control, lambda s: bad_sum(s, "backend"), warm_junk)
        base = 200 + WARM
        before = rss_kib(fwd.pid)
        # The frontend: garbage from a publisher (the frame-count kinds are
        # dropped and counted; two-frame garbage is forwarded untouched).
        sent = paced_garbage(pub, control, front_seen(base), 1000000, FLOOD)
        two_frames = sent["not_envelope"] + warm["not_envelope"]
        # The backend: what a subscriber-side peer can send that is not a
        # subscription, plus real subscribe/unsubscribe churn.
        junk, singles, multis = not_subscriptions(rng, FLOOD)
        paced_junk(xsub, control, lambda s: bad_sum(s, "backend") - WARM_JUNK, junk)
        for i in range(1000):
            xsub.send(b"\x01churn%d" % i)
            xsub.send(b"\x00churn%d" % i)
        frames_bad = FLOOD + WARM - two_frames
        singles += warm_singles
        multis += warm_multis

        def counted(s):
            return (metric(s, "bad_input", socket="frontend", reason="frames") == frames_bad
                    and metric(s, "bad_input", socket="backend", reason="not_subscription")
                    == singles
                    and metric(s, "bad_input", socket="backend", reason="multipart") == multis
                    and metric(s, "subscriptions", op="unsubscribe") >= 1000)
        stats = wait_stats(control, counted, "the flood counted (%d, %d, %d)"
                           % (frames_bad, singles, multis))
        # Every message read counts in; only the two-frame ones went out.
        assert traffic(stats, "frontend")[0] == 200 + WARM + FLOOD, stats
        assert traffic(stats, "backend")[2] == 200 + two_frames
        assert metric(stats, "subscriptions", op="subscribe") >= 1001
        # Then oversized frames (the backend takes 64 KiB at most, the
        # frontend 16 MiB + 64 KiB) and half-open connections. (Not counted:
        # random bytes on a raw connection can pass for a ZMTP/1.0 message.)
        oversized_flood(peer, zmq.XSUB, back, 70 * 1024)
        oversized_flood(peer, zmq.PUB, front, 17 * 1024 * 1024, count=2)
        half_open(front, rng)
        half_open(back, rng)
        # Valid traffic still flows end to end, and memory stayed bounded.
        for seq in range(201, 301):
            roundtrip(seq)
        after = rss_kib(fwd.pid)
    print("     forwarder RSS %d KiB after the warm-up, grew by %d KiB" % (before, after - before))
    assert after - before < RSS_LIMIT_KIB, (before, after)
    assert fwd.running()
    assert len(re.findall(r"ZKIT-FWD-BADINPUT", fwd.stderr())) < 200, "not rate-limited"


def test_publisher_flood():
    rng = random.Random(8)
    with ZmqPeer() as peer:
        pub, sub, data, replay, control = watched_publisher(peer, b"ops", env=measured_env())
        pub.write_stdin(b"".join(b"warm %d\n" % i for i in range(200)))
        for _ in range(200):
            recv_frames(sub)
        dealer = peer.socket(zmq.DEALER)
        dealer.connect(replay)
        xsub = peer.socket(zmq.XSUB, sndhwm=0)
        xsub.connect(data)
        warm = paced_garbage(dealer, control, lambda s: bad_sum(s, "replay"), 1, WARM)
        warm_junk, warm_singles, warm_multis = not_subscriptions(rng, WARM_JUNK)
        paced_junk(xsub, control, lambda s: bad_sum(s, "feed"), warm_junk)
        before = rss_kib(pub.pid)
        # The replay ROUTER: the whole garbage mix.
        sent = paced_garbage(dealer, control, lambda s: bad_sum(s, "replay") - WARM, 1000000,
                             FLOOD)
        # The XPUB: not subscriptions, and subscription churn.
        junk, singles, multis = not_subscriptions(rng, FLOOD)
        paced_junk(xsub, control, lambda s: bad_sum(s, "feed") - WARM_JUNK, junk)
        for i in range(1000):
            xsub.send(b"\x01churn%d" % i)
            xsub.send(b"\x00churn%d" % i)
        singles += warm_singles
        multis += warm_multis
        total = sum(sent.values()) + sum(warm.values())

        def counted(s):
            return (bad_sum(s, "replay") == total
                    and metric(s, "bad_input", socket="feed", reason="not_subscription") == singles
                    and metric(s, "bad_input", socket="feed", reason="multipart") == multis
                    and metric(s, "subscriptions", op="unsubscribe") >= 1000)
        stats = wait_stats(control, counted, "the flood counted (%d, %d, %d)"
                           % (total, singles, multis))
        assert metric(stats, "prefixes") == 1, stats
        assert metric(stats, "requests", command="fetch") == 0
        oversized_flood(peer, zmq.DEALER, replay, 70 * 1024)
        oversized_flood(peer, zmq.XSUB, data, 70 * 1024)
        half_open(data, rng)
        half_open(replay, rng)
        # The feed and the replay endpoint still work.
        pub.write_stdin(b"after\n")
        assert recv_frames(sub)[0] == b"ops"
        send_frames(dealer, [b"PROBE", b"opsfeed"])
        while True:
            answer = recv_frames(dealer)
            if answer[0] == b"STATUS":
                break
        assert answer[4] == b"201", answer
        after = rss_kib(pub.pid)
    print("     publisher RSS %d KiB after the warm-up, grew by %d KiB" % (before, after - before))
    assert after - before < RSS_LIMIT_KIB, (before, after)
    assert len(re.findall(r"ZKIT-P\w+-BAD", pub.stderr())) < 200, "not rate-limited"


def test_subscriber_flood():
    rng = random.Random(9)
    port = free_tcp_port()
    ep = "tcp://127.0.0.1:%d" % port
    sub = ZkitProcess(["subscriber", "--bind", ep, "--control", ANY, "--format", "seq",
                       "--no-recover", "--probe", "0"], env=measured_env())
    control = control_of(sub)
    sub.wait_stderr(r"^zkit subscriber: running")
    with ZmqPeer() as peer:
        pub, _ = xpub(peer, ep)
        wait_subscription(pub)
        for seq in range(1, 201):
            pub.send_multipart([b"t", py_envelope(seq)])
        sub.wait_stdout_lines(200)
        warm = paced_garbage(pub, control, lambda s: bad_sum(s, "feed"), 1, WARM)
        before = rss_kib(sub.pid)
        sent = paced_garbage(pub, control, lambda s: bad_sum(s, "feed") - WARM, 1000000, FLOOD)
        total = sum(sent.values()) + sum(warm.values())
        stats = wait_stats(control, lambda s: bad_sum(s, "feed") == total,
                           "the flood counted (%d)" % total)
        oversized_flood(peer, zmq.PUB, ep, 17 * 1024 * 1024, count=2)
        half_open(ep, rng)
        for seq in range(201, 211):
            pub.send_multipart([b"t", py_envelope(seq)])
        sub.wait_stdout_lines(210)
        after = rss_kib(sub.pid)
    print("     subscriber RSS %d KiB after the warm-up, grew by %d KiB" % (before, after - before))
    assert metric(stats, "delivered", kind="live") == 200, stats
    assert metric(stats, "bad_input", socket="feed", reason="envelope") \
        == sent["not_envelope"] + warm["not_envelope"]
    assert after - before < RSS_LIMIT_KIB, (before, after)
    assert len(re.findall(r"ZKIT-PUBSUB-BADFRAME", sub.stderr())) < 200, "not rate-limited"


# ---- c. CURVE end to end -----------------------------------------------------------------


def test_curve_publisher_forwarder_subscriber():
    """zkit publisher (CURVE client) -> zkit forwarder (CURVE server on both
    sides, allow list) -> zkit subscriber (CURVE client): the feed flows;
    python subscribers with an unlisted key, or with none, get nothing."""
    with tempfile.TemporaryDirectory() as d:
        keys = keygen(d, "fwd", "pub", "sub", "stranger")
        allow = os.path.join(d, "allow")
        os.mkdir(allow)
        for name in ("pub", "sub"):
            os.link(os.path.join(d, name), os.path.join(allow, name))
        fwd = ZkitProcess(["forwarder", "--frontend", ANY, "--backend", ANY,
                           "--curve-secret", os.path.join(d, "fwd_secret"),
                           "--curve-allow", allow])
        front, back = fwd.wait_bound(index=0), fwd.wait_bound(index=1)
        def client(name):
            return ["--curve-secret", os.path.join(d, name + "_secret"),
                    "--curve-server", os.path.join(d, "fwd")]
        sub = ZkitProcess(["subscriber", "--connect", back, "--format", "seq", "--probe", "0",
                           "--no-recover"] + client("sub"))
        with ZmqPeer() as peer:
            outsiders = []
            stranger = peer.socket(zmq.SUB)
            curve_client(stranger, keys["stranger"], keys["fwd"][0])
            plain = peer.socket(zmq.SUB)
            for s in (stranger, plain):
                s.connect(back)
                s.setsockopt(zmq.SUBSCRIBE, b"")
                outsiders.append(s)
            pub = ZkitProcess(["publisher", "--connect", front, "--stdin", "--name", "sec",
                               "--topic", "sec"] + client("pub"), stdin=True)
            pub.write_stdin(b"#wait\n" + b"".join(b"m%d\n" % i for i in range(20)))
            rows = [line.split() for line in sub.wait_stdout_lines(20)]
            assert [int(r[1]) for r in rows] == list(range(1, 21)), rows
            for s in outsiders:
                assert_silent(s, 0.3)


# ---- d. PAUSE / RESUME ---------------------------------------------------------------------


def test_forwarder_pause_resume():
    with ZmqPeer() as peer:
        fwd, pub, sub, _, _, control = fed_forwarder(peer)
        assert control_request(control, "PAUSE") == "OK paused"
        assert metric(zkit_stats(control), "paused") == 1
        for seq in range(1, 11):
            pub.send_multipart([b"p", py_envelope(seq)])
        assert_silent(sub, 0.5)
        assert traffic(zkit_stats(control), "frontend")[:2] == (0, 0)
        assert control_request(control, "RESUME") == "OK resumed"
        got = [recv_frames(sub) for _ in range(10)]
        assert [msgpack.unpackb(e)[2] for _, e in got] == list(range(1, 11))
        assert metric(zkit_stats(control), "paused") == 0
        assert control_request(control, "PAUSE now").startswith("ERROR")


def test_publisher_pause_resume():
    with ZmqPeer() as peer:
        pub, sub, _, _, control = watched_publisher(peer, b"")
        assert control_request(control, "PAUSE") == "OK paused"
        assert control_request(control, "PAUSE") == "OK paused"  # a repeat changes nothing
        pub.write_stdin(b"a\nb\nc\n")
        assert_silent(sub, 0.5)
        assert traffic(zkit_stats(control), "feed")[2:] == (0, 0)
        assert control_request(control, "RESUME") == "OK resumed"
        bodies = [msgpack.unpackb(recv_frames(sub)[1])[4] for _ in range(3)]
        assert bodies == [b"a", b"b", b"c"], bodies


def test_subscriber_pause_resume():
    with ZmqPeer() as peer:
        sub, pub, control = fed_subscriber(peer, "--no-recover")
        assert control_request(control, "PAUSE") == "OK paused"
        for seq in range(1, 6):
            pub.send_multipart([b"t", py_envelope(seq)])
        sub.assert_stays_running(0.5)
        assert sub.stdout() == b""
        assert metric(zkit_stats(control), "received") == 0
        assert control_request(control, "RESUME") == "OK resumed"
        sub.wait_stdout_lines(5)
        assert metric(zkit_stats(control), "received") == 5


if __name__ == "__main__":
    sys.exit(run_tests([
        test_forwarder_stats_match_traffic,
        test_publisher_stats_match_traffic,
        test_subscriber_stats_match_traffic,
        test_forwarder_flood,
        test_publisher_flood,
        test_subscriber_flood,
        test_curve_publisher_forwarder_subscriber,
        test_forwarder_pause_resume,
        test_publisher_pause_resume,
        test_subscriber_pause_resume,
    ], deadline=120))
