#!/usr/bin/python3
# test_spool_ops.py: operating the store-and-forward device (`zkit spool
# run`): its control endpoint, CURVE on its sockets, hostile input.
#
#   ZKIT_BIN=build/bin/zkit ZKIT_BIN_DIR=build/bin /usr/bin/python3 \
#       tests/integration/test_spool_ops.py [NAME...]
#
# a. `zkit stats` (json and prometheus) shows exactly the traffic sent:
#    PUTs, pushes, records and bytes appended, confirmed, delivered (and
#    their bytes), acked, the backlog gauge, the consumer as a peer, and
#    messages/bytes{socket,dir} of in, in_push and out equal to every
#    message (routing id frame included) the python peers sent and got.
# b. 100,000 malformed messages into each bound socket (--in, --in-push,
#    --out), oversized frames and half-open TCP connections: the device's
#    bad_messages counters report every malformed message by socket, RSS
#    grows less than 10 MiB, and reliable traffic (zkit cat --reliable)
#    still flows with nothing accepted lost.
# c. CURVE: with --curve-secret and --curve-allow every bound socket (and
#    the control endpoint) admits only the listed keys; unlisted and
#    plaintext peers get nothing stored, nothing delivered.
# d. PAUSE: deliveries stop while producers are still confirmed and the
#    lag_records gauge counts the backlog; RESUME delivers all of it.
#
# Every wait is on an event with a deadline; the "nothing arrives" checks
# are bounded waits by nature.
#
# This Source Code Form is subject to the terms of the Mozilla Public
# License, v. 2.0. If a copy of the MPL was not distributed with this
# file, You can obtain one at http://mozilla.org/MPL/2.0/.

import json
import os
import random
import shutil
import signal
import socket
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import zmq  # noqa: E402

from zkit_testlib import (SLOW, Deadline, TestTimeout, ZkitProcess, ZmqPeer,  # noqa: E402
                          curve_client, envelope, flood_env, flood_garbage, keygen, metric,
                          parse_prometheus, recv_frames, rss_kib, run_tests, run_zkit,
                          unpack_envelope, zkit_cat, zkit_stats)

from test_spool_device import remove_tmpdirs, tmpdir as _tmpdir  # noqa: E402

FLOOD = 100000


def tmpdir():
    return _tmpdir("zkit-spoolops-")


class Device:
    """`zkit spool run` on ephemeral ports with a control endpoint."""

    def __init__(self, *extra, push=False, env=None):
        self.dir = tmpdir()
        args = ["spool", "run", "--in", "tcp://127.0.0.1:*", "--out", "tcp://127.0.0.1:*",
                "--dir", self.dir, "--control", "tcp://127.0.0.1:*"]
        if push:
            args += ["--in-push", "tcp://127.0.0.1:*"]
        self.proc = ZkitProcess(args + [str(a) for a in extra], env=env)
        self.in_ep = self.proc.wait_bound(10 * SLOW, 0)
        self.out_ep = self.proc.wait_bound(10 * SLOW, 1)
        self.push_ep = self.proc.wait_bound(10 * SLOW, 2) if push else None
        self.control = self.proc.wait_stderr(r"zkit spool: control (\S+)", 10 * SLOW).group(1)
        self.proc.wait_stderr(r"zkit spool: spool .*: unacked=0", 10 * SLOW)
        self.stats_args = []

    def stats(self):
        return zkit_stats(self.control, *self.stats_args, timeout=15 * SLOW)

    def wait_stats(self, predicate, what, timeout=30):
        """Polls STATS (a zkit process each time, hence the interval) until
        predicate(stats) holds; returns that map."""
        deadline = Deadline(timeout * SLOW)
        while True:
            s = self.stats()
            if predicate(s):
                return s
            if deadline.expired():
                raise TestTimeout("waiting for %s; last stats: %s" % (what, json.dumps(s)))
            time.sleep(0.05)

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        assert self.proc.wait(15 * SLOW) == 0, self.proc.stderr()


def bad_total(stats, sock):
    return sum(metric(stats, "bad_messages", socket=sock, reason=r)
               for r in ("frames", "command", "field", "envelope"))


def control_request(endpoint, command, peer, setup=None):
    req = peer.socket(zmq.REQ)
    if setup:
        setup(req)
    req.connect(endpoint)
    req.send(command)
    reply = recv_frames(req, 10 * SLOW)
    req.close(0)
    assert len(reply) == 1, reply
    return reply[0]


def recv_seen(sock, deadline, seen):
    """The next message's frames, also appended to seen unless it is None
    (a test that counts the traffic keeps every message there)."""
    frames = recv_frames(sock, deadline.remaining() or 0.001)
    if seen is not None:
        seen.append(frames)
    return frames


def recv_confirmed_ids(sock, count, timeout=15, seen=None):
    """The ids of CONFIRMED messages until count came (see recv_seen)."""
    ids = []
    deadline = Deadline(timeout * SLOW)
    while len(ids) < count:
        frames = recv_seen(sock, deadline, seen)
        assert frames[0] == b"CONFIRMED", frames
        ids += [frames[1][i:i + 16] for i in range(0, len(frames[1]), 16)]
    return ids


def consume(cons, count, timeout=15, ack=True, seen=None):
    """Receives count DELIVERs on a registered python consumer (heartbeats
    skipped), acking each; returns the raw envelope frames. Every message
    received, heartbeats too, goes to seen (see recv_seen)."""
    frames_seen = []
    deadline = Deadline(timeout * SLOW)
    while len(frames_seen) < count:
        frames = recv_seen(cons, deadline, seen)
        if frames == [b"HEARTBEAT"]:
            continue
        assert frames[0] == b"DELIVER" and len(frames) == 2, frames
        frames_seen.append(frames[1])
        if ack:
            cons.send_multipart([b"ACK", unpack_envelope(frames[1])[1]])
    return frames_seen


def lines_within(proc, count, seconds):
    """True when proc printed count stdout lines within seconds."""
    try:
        proc.wait_stdout_lines(count, seconds)
        return True
    except TestTimeout:
        return False


def produce_reliable(in_ep, bodies, *extra):
    """zkit cat --push --reliable: exits 0 once every line is confirmed."""
    prod = zkit_cat("--push", "--reliable", "--connect", in_ep, "--file", "-",
                    "--timeout", str(int(30000 * SLOW)), *extra,
                    stdin=b"".join(b + b"\n" for b in bodies))
    assert prod.wait(45 * SLOW) == 0, prod.stderr()


def consume_reliable(out_ep, count):
    cons = zkit_cat("--pull", "--reliable", "--connect", out_ep, "--count", str(count),
                    "--timeout", str(int(30000 * SLOW)))
    return cons


def bodies_of(cons):
    return sorted(json.loads(line)["body"].encode() for line in cons.stdout().splitlines()
                  if line.strip())


# ---- a. the counters match the traffic --------------------------------------------


def wire(messages, rid=b""):
    """(messages, bytes) the device counts for these messages (lists of
    frames) on its side of the socket: a ROUTER adds the peer's routing id."""
    return len(messages), sum(len(rid) + sum(len(f) for f in m) for m in messages)


def traffic(stats, sock):
    """{dir: (messages, bytes)} of socket sock in a STATS map."""
    return {d: (metric(stats, "messages", socket=sock, dir=d),
                metric(stats, "bytes", socket=sock, dir=d)) for d in ("in", "out")}


def test_stats_match_traffic_exactly():
    dev = Device(push=True)
    rng = random.Random(7)
    # Every message each python peer sent and received, for the traffic
    # counters: sent[sock] / recvd[sock] are lists of frame lists.
    sent = {"in": [], "in_push": [], "out": []}
    recvd = {"in": [], "out": []}
    with ZmqPeer() as peer:
        prod = peer.socket(zmq.DEALER, routing_id=b"producer-1")
        prod.connect(dev.in_ep)
        frames = [envelope(bytes(rng.getrandbits(8) for _ in range(rng.randint(0, 300))),
                           seq=i + 1) for i in range(50)]
        for f in frames:
            prod.send_multipart([b"PUT", f])
            sent["in"].append([b"PUT", f])
        ids = recv_confirmed_ids(prod, 50, seen=recvd["in"])
        assert sorted(ids) == sorted(f[4:20] for f in frames)
        push = peer.socket(zmq.PUSH)
        push.connect(dev.push_ep)
        pushed = [envelope(b"pushed %d" % i, seq=100 + i) for i in range(5)]
        for f in pushed:
            push.send(f)
            sent["in_push"].append([f])
        # A resent PUT is confirmed from the dedup window, not stored.
        prod.send_multipart([b"PUT", frames[0]])
        sent["in"].append([b"PUT", frames[0]])
        assert recv_confirmed_ids(prod, 1, seen=recvd["in"]) == [frames[0][4:20]]
        cons = peer.socket(zmq.DEALER, routing_id=b"consumer-1")
        cons.connect(dev.out_ep)
        cons.send_multipart([b"READY", b"100"])
        sent["out"].append([b"READY", b"100"])
        delivered = consume(cons, 55, seen=recvd["out"])
        sent["out"] += [[b"ACK", unpack_envelope(f)[1]] for f in delivered]
        assert sorted(unpack_envelope(f)[1] for f in delivered) == \
            sorted(f[4:20] for f in frames + pushed)
        s = dev.wait_stats(lambda s: metric(s, "acked") == 55, "55 acks")

        # messages/bytes per socket and direction: exactly what the peers
        # sent and received (the ROUTERs count the routing id frame too).
        # The device heartbeats the consumer meanwhile, so the consumer
        # takes in what is waiting before each look until the two agree.
        def out_agrees(st):
            while cons.poll(0):
                recvd["out"].append(cons.recv_multipart())
            return traffic(st, "out")["out"] == wire(recvd["out"], b"consumer-1")

        t = dev.wait_stats(out_agrees, "the consumer's traffic")
        assert traffic(t, "in") == {"in": wire(sent["in"], b"producer-1"),
                                    "out": wire(recvd["in"], b"producer-1")}, t["counters"]
        assert traffic(t, "in_push") == {"in": wire(sent["in_push"]), "out": (0, 0)}, \
            t["counters"]
        assert traffic(t, "out")["in"] == wire(sent["out"], b"consumer-1"), t["counters"]
        assert traffic(t, "out")["out"][0] >= 55, t["counters"]
        assert sum(len(m[1]) for m in recvd["out"] if m[0] == b"DELIVER") == \
            metric(t, "delivered_bytes")

    stored_bytes = sum(len(f) for f in frames + pushed)
    want_counters = {
        "puts": 51, "pushes": 5, "stored": 55, "stored_bytes": stored_bytes, "confirmed": 51,
        "duplicates": 1, "delivered": 55, "delivered_bytes": sum(len(f) for f in delivered),
        "acked": 55, "spool_appends": 55, "spool_append_bytes": stored_bytes,
        "consumers_ready": 1, "push_dropped": 0, "nacks": 0, "requeued": 0, "dead_letters": 0,
        "duplicate_acks": 0, "unknown_consumer": 0,
    }
    got = {k: metric(s, k) for k in want_counters}
    assert got == want_counters, (got, want_counters)
    assert all(k in s["counters"] for k in want_counters), sorted(s["counters"])
    for reason in ("full", "nospace", "failed", "toobig", "error"):
        assert metric(s, "rejected", reason=reason) == 0
    for sock in ("in", "in_push", "out"):
        assert bad_total(s, sock) == 0, s["counters"]["bad_messages"]
    want_gauges = {"lag_records": 0, "in_flight": 0, "queued": 0, "held": 0, "consumers": 1,
                   "paused": 0, "spool_next_seq": 56, "spool_newest_seq": 55}
    assert {k: metric(s, k) for k in want_gauges} == want_gauges, s["gauges"]
    assert metric(s, "spool_bytes") >= stored_bytes, s["gauges"]
    assert s["component"] == "spool" and s["name"] == "spool", s
    assert [p["id"] for p in s["peers"]] == ["consumer-1"], s["peers"]
    assert abs(s["peers"][0]["last_seen_us"] - s["time_us"]) < 60e6, s
    assert all(s["help"].get(k) for k in list(s["counters"]) + list(s["gauges"])
               if not k.startswith("control_")), s["help"]

    # The same values in the Prometheus text format.
    rc, out, err = run_zkit(["stats", dev.control, "--format", "prometheus"], 15 * SLOW)
    assert rc == 0, err
    families = parse_prometheus(out.decode())

    def prom(family, **labels):
        key = tuple(sorted(dict(labels, name="spool").items()))
        return families["zkit_spool_" + family]["samples"][key]

    for k, v in want_counters.items():
        assert prom(k + "_total") == v, (k, v)
    for k, v in want_gauges.items():
        assert prom(k) == v, (k, v)
    assert prom("bad_messages_total", socket="in_push", reason="envelope") == 0
    for sock, want in (("in", wire(sent["in"], b"producer-1")), ("in_push", wire(sent["in_push"])),
                       ("out", wire(sent["out"], b"consumer-1"))):
        assert (prom("messages_total", socket=sock, dir="in"),
                prom("bytes_total", socket=sock, dir="in")) == want, sock
    assert prom("messages_total", socket="in", dir="out") == len(recvd["in"])
    assert families["zkit_spool_lag_records"]["type"] == "gauge"
    assert families["zkit_spool_stored_bytes_total"]["type"] == "counter"
    dev.stop()


# ---- b. hostile input ---------------------------------------------------------------


def half_open_connections(endpoint, rng):
    """Raw TCP connections that send nothing, or random bytes, then close."""
    host, port = endpoint[len("tcp://"):].rsplit(":", 1)
    for i in range(20):
        s = socket.create_connection((host, int(port)), timeout=5)
        if i % 2:
            s.sendall(bytes(rng.getrandbits(8) for _ in range(rng.randint(1, 200))))
        s.close()


def oversized(peer, kind, endpoint, size, count=3):
    """Frames above the socket's ZMQ_MAXMSGSIZE: libzmq drops the connection."""
    s = peer.socket(kind)
    s.connect(endpoint)
    for _ in range(count):
        s.send(b"o" * size)
    return s


def test_flood_of_garbage_into_every_bound_socket():
    dev = Device(push=True, env=flood_env())
    pid = dev.proc.pid
    # Warm-up: reliable traffic end to end, so that the baseline RSS holds
    # the buffers normal traffic needs.
    warm = [b"warm %d" % i for i in range(200)]
    cons = consume_reliable(dev.out_ep, 200)
    produce_reliable(dev.in_ep, warm)
    assert cons.wait(45 * SLOW) == 0, cons.stderr()
    assert bodies_of(cons) == sorted(warm)
    dev.wait_stats(lambda s: metric(s, "lag_records") == 0, "the warm-up acked")
    before = rss_kib(pid)

    rng = random.Random(11)
    with ZmqPeer() as peer:
        targets = [("in", zmq.DEALER, dev.in_ep, 17 << 20),
                   ("in_push", zmq.PUSH, dev.push_ep, 17 << 20),
                   ("out", zmq.DEALER, dev.out_ep, 100 << 10)]
        for seed, (name, kind, ep, big) in enumerate(targets):
            s = peer.socket(kind, sndhwm=10000)
            s.connect(ep)
            sent = flood_garbage(s, FLOOD, seed=seed + 1, timeout=60 * SLOW)
            assert sum(sent.values()) == FLOOD, sent
        s = dev.wait_stats(lambda s: all(bad_total(s, n) >= FLOOD for n, *_ in targets),
                           "the flood counted", timeout=60)
        for name, *_ in targets:
            assert bad_total(s, name) == FLOOD, (name, s["counters"]["bad_messages"])
        # Frames above MAXMSGSIZE and raw TCP connections: libzmq drops them
        # (random bytes may pass for a ZMTP 1.0 peer's messages, which are
        # then counted as bad: no exact count after this point).
        for name, kind, ep, big in targets:
            oversized(peer, kind, ep, big)
            half_open_connections(ep, rng)
        # Each reason the device could tell apart has its share.
        assert metric(s, "bad_messages", socket="in", reason="command") > 0
        assert metric(s, "bad_messages", socket="in", reason="frames") > 0
        assert metric(s, "bad_messages", socket="in", reason="envelope") > 0
        assert metric(s, "bad_messages", socket="in_push", reason="envelope") > 0
        assert metric(s, "bad_messages", socket="out", reason="command") > 0
        s = dev.stats()
        assert metric(s, "stored") == 200 and metric(s, "consumers") == 0, s

    # Reliable traffic still flows, nothing accepted is lost.
    after_bodies = [b"after %d" % i for i in range(300)]
    cons = consume_reliable(dev.out_ep, 300)
    produce_reliable(dev.in_ep, after_bodies)
    assert cons.wait(45 * SLOW) == 0, cons.stderr()
    assert bodies_of(cons) == sorted(after_bodies)
    s = dev.wait_stats(lambda s: metric(s, "lag_records") == 0, "everything acked")
    assert metric(s, "stored") == 500 and metric(s, "confirmed") == 500, s["counters"]
    assert metric(s, "acked") == 500, s["counters"]
    growth = rss_kib(pid) - before
    print("     RSS %d KiB after the warm-up, grew by %d KiB" % (before, growth))
    assert growth < 10 * 1024, "RSS grew by %d KiB" % growth
    # The logs were rate-limited: far fewer lines than bad messages.
    lines = [ln for ln in dev.proc.stderr_lines() if "ZKIT-SPOOL-DEVICE-BADFRAME" in ln]
    assert 0 < len(lines) < 1000, len(lines)
    dev.stop()


# ---- c. CURVE -----------------------------------------------------------------------


def test_curve_on_every_bound_socket():
    keys = tmpdir()
    allow = os.path.join(keys, "allow")
    os.mkdir(allow)
    k = keygen(keys, "device", "producer", "consumer", "ops", "stranger")
    device, producer, consumer, stranger = k["device"], k["producer"], k["consumer"], \
        k["stranger"]
    for name in ("producer", "consumer", "ops"):
        shutil.copy(os.path.join(keys, name), allow)
    dev = Device("--curve-secret", os.path.join(keys, "device_secret"), "--curve-allow", allow,
                 push=True)
    dev.stats_args = ["--curve-secret", os.path.join(keys, "ops_secret"),
                      "--curve-server", os.path.join(keys, "device")]
    server = device[0]
    with ZmqPeer() as peer:
        # Unlisted key and no key at all, on every socket: nothing gets in.
        intruders = []
        for mine in (stranger, None):
            p = peer.socket(zmq.DEALER)
            q = peer.socket(zmq.PUSH)
            c = peer.socket(zmq.DEALER)
            for s in (p, q, c):
                if mine:
                    curve_client(s, mine, server)
            p.connect(dev.in_ep)
            q.connect(dev.push_ep)
            c.connect(dev.out_ep)
            p.send_multipart([b"PUT", envelope(b"intruder", seq=1)], zmq.NOBLOCK)
            c.send_multipart([b"READY", b"10"], zmq.NOBLOCK)
            intruders += [p, c]
        # Allowed keys: end to end on --in, --in-push and --out.
        prod = peer.socket(zmq.DEALER)
        curve_client(prod, producer, server)
        prod.connect(dev.in_ep)
        frames = [envelope(b"secret %d" % i, seq=i + 1) for i in range(10)]
        for f in frames:
            prod.send_multipart([b"PUT", f])
        assert sorted(recv_confirmed_ids(prod, 10)) == sorted(f[4:20] for f in frames)
        push = peer.socket(zmq.PUSH)
        curve_client(push, producer, server)
        push.connect(dev.push_ep)
        push.send(envelope(b"pushed secret", seq=20))
        cons = peer.socket(zmq.DEALER)
        curve_client(cons, consumer, server)
        cons.connect(dev.out_ep)
        cons.send_multipart([b"READY", b"100"])
        got = consume(cons, 11)
        assert sorted(unpack_envelope(f)[4] for f in got) == \
            sorted([b"secret %d" % i for i in range(10)] + [b"pushed secret"])
        s = dev.wait_stats(lambda s: metric(s, "acked") == 11, "11 acks")
        assert metric(s, "stored") == 11 and metric(s, "consumers") == 1, s["counters"]
        for s_ in intruders:
            assert not s_.poll(500), "an intruder got a reply"
        s = dev.stats()
        assert metric(s, "stored") == 11 and metric(s, "consumers_ready") == 1, s["counters"]
    # The control endpoint is secured too: no key, no STATS.
    rc, _, err = run_zkit(["stats", dev.control, "--format", "json", "--timeout", "1000"],
                          15 * SLOW)
    assert rc != 0, err
    dev.stop()


# ---- d. PAUSE and RESUME ------------------------------------------------------------


def test_pause_holds_deliveries_and_resume_delivers_the_backlog():
    dev = Device()
    with ZmqPeer() as peer:
        reply = control_request(dev.control, b"PAUSE", peer)
        assert reply == b"OK paused", reply
        cons = consume_reliable(dev.out_ep, 100)
        dev.wait_stats(lambda s: metric(s, "consumers") == 1, "the consumer registered")
        bodies = [b"held %d" % i for i in range(100)]
        produce_reliable(dev.in_ep, bodies)  # confirmed while paused
        s = dev.stats()
        assert metric(s, "paused") == 1 and metric(s, "stored") == 100, s
        assert metric(s, "confirmed") == 100 and metric(s, "lag_records") == 100, s
        assert metric(s, "delivered") == 0 and metric(s, "in_flight") == 0, s
        # Still nothing after a while (a bounded wait: it is about absence).
        assert not lines_within(cons, 1, 1.0), cons.stdout()
        assert metric(dev.stats(), "delivered") == 0
        assert control_request(dev.control, b"PAUSE extra", peer).startswith(b"ERROR")
        assert control_request(dev.control, b"RESUME", peer) == b"OK resumed"
        assert cons.wait(45 * SLOW) == 0, cons.stderr()
        assert bodies_of(cons) == sorted(bodies)
        s = dev.wait_stats(lambda s: metric(s, "lag_records") == 0, "the backlog acked")
        assert metric(s, "paused") == 0 and metric(s, "delivered") == 100, s
    out = dev.proc.stderr()
    assert "ZKIT-CONTROL-PAUSED spool device spool: deliveries paused until RESUME" in out, out
    assert "ZKIT-CONTROL-RESUMED spool device spool: deliveries resumed" in out, out
    dev.stop()


def main():
    try:
        return run_tests([
            test_stats_match_traffic_exactly,
            test_flood_of_garbage_into_every_bound_socket,
            test_curve_on_every_bound_socket,
            test_pause_holds_deliveries_and_resume_delivers_the_backlog,
        ], deadline=240.0 * SLOW)
    finally:
        remove_tmpdirs()


if __name__ == "__main__":
    sys.exit(main())
