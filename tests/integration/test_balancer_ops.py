# test_balancer_ops.py: operating `zkit balancer` (and zkit_service_worker /
# zkit_client through examples/hashsvc): its control endpoint, CURVE, hostile
# input and PAUSE/RESUME, against the real programs.
#
# Clients are python REQ/DEALER sockets and workers python RFC 6 (Paranoid
# Pirate) workers, run as threads of this process, plus hashsvc for the C
# classes. What each test proves:
#   test_stats_match_traffic
#       after 40 requests through one RFC 6 worker and a few known bad
#       messages on each socket, every counter and gauge `zkit stats` shows
#       (json) is exactly what was sent; messages/bytes{socket,dir} of the
#       frontend equal what the clients sent and got, those of the backend
#       what the worker (heartbeats included) and a stranger sent and got,
#       routing id frames included; the worker is listed as a peer with a
#       recent last-seen; `--format prometheus` parses and carries the same
#       values; PING answers PONG.
#   test_service_worker_stats
#       a hashsvc worker (zkit_service_worker) with --control reports its
#       requests/replies exactly after a hashsvc client (zkit_client) ran 25
#       requests, its connection, credit and the balancer as its peer; its
#       messages/bytes on socket "balancer" mirror exactly the balancer's
#       backend counters (in <-> out); PAUSE is refused there ("not
#       supported").
#   test_flood_is_counted_and_survived
#       100,000 malformed messages into the frontend ROUTER and 100,000 into
#       the backend ROUTER, oversized frames on both and half-open TCP
#       connections: the balancer still answers requests, its RSS grows by
#       less than 10 MiB, and bad_messages{socket,reason} equals exactly what
#       a model of the protocol's parser predicts for the messages sent.
#   test_curve_end_to_end
#       with --curve-secret/--curve-allow: python and zkit (hashsvc) clients
#       and workers with allowed keys work end to end; a client with an
#       unlisted key or no key gets no reply, an unlisted worker is never
#       registered, and nothing of theirs is even counted as bad input.
#   test_pause_holds_and_resume_delivers
#       PAUSE: 30 requests queue (queued=30, none reaches the worker) while
#       the worker stays registered through several heartbeat x liveness
#       periods; RESUME: all 30 are answered, none lost or duplicated; both
#       changes logged as ZKIT-CONTROL-PAUSED/RESUMED.
#
# Every wait is on an event or a polled state with a deadline.
#
# This Source Code Form is subject to the terms of the Mozilla Public
# License, v. 2.0. If a copy of the MPL was not distributed with this
# file, You can obtain one at http://mozilla.org/MPL/2.0/.

import os
import random
import shutil
import socket
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import zmq  # noqa: E402

from zkit_testlib import (  # noqa: E402
    GARBAGE_KINDS, SLOW, Deadline, ZkitProcess, ZmqPeer, assert_silent, bin_program,
    curve_client, flood_env, flood_garbage, garbage_message, keygen, metric, parse_prometheus,
    recv_frames, rss_kib, run_tests, run_zkit, send_frames, wait_for, zkit_stats)

HB = 200  # ms: the balancer's heartbeat
LIVENESS = 5
PPP_READY = b"\x01"
PPP_HEARTBEAT = b"\x02"
REASONS = ("frames", "command", "field", "route", "envelope")
COUNTERS = ("requests", "duplicates", "dispatched", "replies", "unroutable", "late_replies",
            "requeued", "nacks", "dead_letters", "dead_letter_errors", "overloaded",
            "workers_ready", "workers_expired", "workers_gone", "unknown_worker")
GAUGES = ("workers", "queued", "in_flight", "paused")
MAXMSGSIZE = 16 * 1024 * 1024 + 64 * 1024


# ---- helpers -------------------------------------------------------------------------


class Balancer:
    """`zkit balancer` on ephemeral ports with a control endpoint."""

    def __init__(self, *extra, env=None):
        self.proc = ZkitProcess(["balancer", "--frontend", "tcp://127.0.0.1:*", "--backend",
                                 "tcp://127.0.0.1:*", "--heartbeat", str(HB), "--liveness",
                                 str(LIVENESS), "--control", "tcp://127.0.0.1:*"] + list(extra),
                                env=env)
        self.frontend = self.proc.wait_bound(index=0)
        self.backend = self.proc.wait_bound(index=1)
        self.control = self.proc.wait_stderr(r"^zkit balancer: control (\S+)$").group(1)
        self.stats_args = []

    def stats(self):
        return zkit_stats(self.control, *self.stats_args)

    def wait_stat(self, name, value, what=None, **labels):
        return wait_for(lambda: metric(self.stats(), name, **labels) == value, what=what or
                        "%s == %s" % (name, value), interval=0.05)


class PPPWorker(threading.Thread):
    """An RFC 6 worker in a thread: READY, a heartbeat every HB ms, echoes
    each request as b"echo:" + body. curve: ((public, secret), server_public).
    traffic(): (messages, bytes) it sent and received so far."""

    def __init__(self, endpoint, curve=None, routing_id=None):
        super().__init__(daemon=True)
        self.ctx = zmq.Context()
        self.sock = self.ctx.socket(zmq.DEALER)
        self.sock.setsockopt(zmq.LINGER, 0)
        if routing_id:
            self.sock.routing_id = routing_id
        if curve:
            curve_client(self.sock, *curve)
        self.sock.connect(endpoint)
        self.served = 0
        self.heartbeats = 0  # heartbeats received from the balancer
        self.lock = threading.Lock()
        self.sent = [0, 0]  # messages, bytes
        self.got = [0, 0]
        self.stopping = threading.Event()
        self.start()

    def send(self, frames):
        """Sends without blocking: a worker that cannot connect (a refused
        CURVE key) must still notice stop(). Returns whether it was sent."""
        try:
            self.sock.send_multipart(frames, zmq.NOBLOCK)
        except zmq.Again:
            return False
        with self.lock:
            self.sent[0] += 1
            self.sent[1] += sum(len(f) for f in frames)
        return True

    def traffic(self):
        """((messages, bytes) sent, (messages, bytes) received), at once."""
        with self.lock:
            return tuple(self.sent), tuple(self.got)

    def run(self):
        ready = False
        next_hb = time.monotonic() + HB / 1000.0
        while not self.stopping.is_set():
            if not ready:
                ready = self.send([PPP_READY])
            if self.sock.poll(20):
                frames = self.sock.recv_multipart()
                with self.lock:
                    self.got[0] += 1
                    self.got[1] += sum(len(f) for f in frames)
                if frames == [PPP_HEARTBEAT]:
                    self.heartbeats += 1
                elif len(frames) >= 3:
                    if self.send(frames[:-1] + [b"echo:" + frames[-1]]):
                        self.served += 1
            if time.monotonic() >= next_hb:
                self.send([PPP_HEARTBEAT])
                next_hb = time.monotonic() + HB / 1000.0
        self.sock.close(0)
        self.ctx.term()

    def stop(self):
        self.stopping.set()
        self.join(10)
        assert not self.is_alive(), "worker thread did not stop"


def request(peer, endpoint, body, curve=None, timeout=10.0, routing_id=None):
    """One REQ round trip; returns the reply frames. curve as PPPWorker's."""
    sock = peer.socket(zmq.REQ)
    if routing_id:
        sock.routing_id = routing_id
    if curve:
        curve_client(sock, *curve)
    sock.connect(endpoint)
    send_frames(sock, [body])
    reply = recv_frames(sock, timeout)
    sock.close(0)
    return reply


def control(endpoint, command, timeout=10.0):
    with ZmqPeer() as peer:
        sock = peer.socket(zmq.REQ)
        sock.connect(endpoint)
        send_frames(sock, [command])
        return recv_frames(sock, timeout)[0]


def model_frontend(frames):
    """What the balancer does with frames from a client (routing id
    included): a reason from REASONS, or "request"."""
    if len(frames) > 32:
        return "frames"
    delim = next((i for i in range(1, len(frames)) if frames[i] == b""), None)
    if delim is None or delim > 8:
        return "route"
    parts = len(frames) - delim - 1
    return "frames" if parts == 0 or parts > 16 else "request"


def model_backend(frames):
    """The same for frames from a peer that never said READY (routing id
    excluded): a reason, "unknown_worker", or the name of a valid command
    the flood must not contain."""
    if len(frames) + 1 > 32:
        return "frames"
    if len(frames) >= 3:
        if len(frames[0]) != 16:
            return "field"
        if frames[1] != b"":
            return "route"
        return "frames" if len(frames) - 2 > 16 else "reply"
    cmd = frames[0][0] if len(frames[0]) == 1 else -1
    if cmd == 1:
        return "ready"
    if cmd in (2, 4):
        return "unknown_worker" if len(frames) == 1 else "frames"
    if cmd == 3:
        if len(frames) != 2:
            return "frames"
        return "field" if len(frames[1]) != 16 else "nack"
    return "command"


def expected_flood(count, seed, kinds, model, extra_frames=()):
    """Replays flood_garbage's messages through a model; returns {outcome: n}."""
    rng = random.Random(seed)
    kinds = [k for k in kinds if k != "oversized"]
    out = {}
    for i in range(count):
        frames = list(extra_frames) + garbage_message(rng, kinds[i % len(kinds)])
        outcome = model(frames)
        out[outcome] = out.get(outcome, 0) + 1
    return out


def half_open(endpoint, rng):
    """Raw TCP connections that never speak ZMTP properly: one silent, one
    that sends random bytes and closes, one that sends a ZMTP greeting
    prefix and stalls. Returns the ones left open."""
    host, port = endpoint[len("tcp://"):].rsplit(":", 1)
    left = []
    for mode in ("silent", "random", "greeting"):
        s = socket.create_connection((host, int(port)), timeout=10)
        if mode == "random":
            s.sendall(bytes(rng.getrandbits(8) for _ in range(200)))
            s.close()
            continue
        if mode == "greeting":
            s.sendall(b"\xff\x00\x00\x00\x00\x00\x00\x00\x01\x7f\x03")
        left.append(s)
    return left


def bad_counts(stats, side):
    return {r: metric(stats, "bad_messages", socket=side, reason=r) for r in REASONS}


def traffic(stats, sock):
    """((messages, bytes) in, (messages, bytes) out) of socket sock."""
    return tuple((metric(stats, "messages", socket=sock, dir=d),
                  metric(stats, "bytes", socket=sock, dir=d)) for d in ("in", "out"))


def wire(messages, rid):
    """(messages, bytes) a ROUTER counts for messages (lists of frames) of
    one peer: each carries the peer's routing id frame on the ROUTER side."""
    return len(messages), sum(len(rid) + sum(len(f) for f in m) for m in messages)


def plus_rid(counts, rid):
    """A DEALER peer's own (messages, bytes) as its ROUTER counts them."""
    return counts[0], counts[1] + counts[0] * len(rid)


# ---- a. stats -------------------------------------------------------------------------


def test_stats_match_traffic():
    lb = Balancer()
    assert control(lb.control, b"PING") == b"PONG"
    worker = PPPWorker(lb.backend, routing_id=b"worker-1")
    # What the frontend's peers sent and got, as frame lists with the
    # routing id each peer has on the balancer's ROUTER.
    fe_in, fe_out = [], []
    try:
        lb.wait_stat("workers", 1)
        with ZmqPeer() as peer:
            for i in range(40):
                body = b"r%d-" % i + b"x" * i
                rid = b"client-%d" % i
                assert request(peer, lb.frontend, body, routing_id=rid) == [b"echo:" + body]
                fe_in.append([rid, b"", body])
                fe_out.append([rid, b"", b"echo:" + body])
            # Known bad messages. Frontend: 3 without a delimiter (route), 2
            # with no content (frames). Backend, from a stranger: 2 unknown
            # commands, 1 heartbeat (unknown worker), 1 short NACK (frames),
            # 1 reply with a 3-byte handle (field), 1 reply with no empty
            # frame after its handle (route).
            fe = peer.socket(zmq.DEALER, routing_id=b"bad-client")
            fe.connect(lb.frontend)
            for frames in [[b"no delimiter"]] * 3 + [[b""]] * 2:
                send_frames(fe, frames)
                fe_in.append([b"bad-client"] + frames)
            be = peer.socket(zmq.DEALER, routing_id=b"stranger")
            be.connect(lb.backend)
            be_bad = ([b"\x09"], [b"\x05"], [PPP_HEARTBEAT], [b"\x03"], [b"abc", b"", b"x"],
                      [b"h" * 16, b"nonempty", b"x"])
            for frames in be_bad:
                send_frames(be, frames)
            lb.wait_stat("bad_messages", 1, socket="backend", reason="route")
            lb.wait_stat("bad_messages", 2, socket="frontend", reason="frames")

        # messages/bytes per socket and direction: the frontend's exactly
        # what the clients sent and got; the backend's exactly what the
        # worker sent and got (heartbeats included: they go on, so the
        # worker's log and STATS are compared until they agree) plus the
        # stranger's bad messages, all with their routing id.
        def backend_agrees(st):
            w_sent, w_got = worker.traffic()
            bad = wire(be_bad, b"stranger")
            want_in = plus_rid(w_sent, b"worker-1")
            return traffic(st, "backend") == ((want_in[0] + bad[0], want_in[1] + bad[1]),
                                              plus_rid(w_got, b"worker-1"))

        wait_for(lambda: backend_agrees(lb.stats()), what="backend traffic == the worker's",
                 interval=0.05)
        s = lb.stats()
        assert traffic(s, "frontend") == (wire(fe_in, b""), wire(fe_out, b"")), s["counters"]
        assert s["component"] == "balancer" and s["name"] == "balancer", s
        want = dict.fromkeys(COUNTERS, 0)
        want.update(requests=40, dispatched=40, replies=40, workers_ready=1, unknown_worker=1)
        assert {k: metric(s, k) for k in COUNTERS} == want, s["counters"]
        assert {k: metric(s, k) for k in GAUGES} == {"workers": 1, "queued": 0, "in_flight": 0,
                                                     "paused": 0}, s["gauges"]
        assert bad_counts(s, "frontend") == {"frames": 2, "command": 0, "field": 0, "route": 3,
                                             "envelope": 0}
        assert bad_counts(s, "backend") == {"frames": 1, "command": 2, "field": 1, "route": 1,
                                            "envelope": 0}
        for name in COUNTERS + GAUGES + ("bad_messages", "messages", "bytes"):
            assert s["help"].get(name), name
        assert len(s["peers"]) == 1, s["peers"]
        age = s["time_us"] - s["peers"][0]["last_seen_us"]
        assert 0 <= age < 30 * 1000000, s["peers"]

        # Heartbeats keep moving the backend's traffic: the exposition is
        # read between two JSON rounds, and each of its counters must lie
        # between theirs (exactly equal on the quiet frontend).
        before = lb.stats()
        rc, out, err = run_zkit(["stats", lb.control, "--format", "prometheus"])
        assert rc == 0, err
        after = lb.stats()
        fam = parse_prometheus(out.decode())
        name = (("name", "balancer"),)
        assert fam["zkit_balancer_requests_total"]["samples"][name] == 40
        assert fam["zkit_balancer_replies_total"]["samples"][name] == 40
        assert fam["zkit_balancer_workers"]["samples"][name] == 1
        bad = fam["zkit_balancer_bad_messages_total"]["samples"]
        assert len(bad) == 10, bad
        key = tuple(sorted(name + (("socket", "frontend"), ("reason", "route"))))
        assert bad[key] == 3, bad
        assert fam["zkit_balancer_peers"]["samples"][name] == 1
        for sock in ("frontend", "backend"):
            low, high = traffic(before, sock), traffic(after, sock)
            for i, d in enumerate(("in", "out")):
                key = tuple(sorted(name + (("socket", sock), ("dir", d))))
                msgs = fam["zkit_balancer_messages_total"]["samples"][key]
                size = fam["zkit_balancer_bytes_total"]["samples"][key]
                assert low[i][0] <= msgs <= high[i][0], (sock, d, low, msgs, high)
                assert low[i][1] <= size <= high[i][1], (sock, d, low, size, high)
        assert traffic(before, "frontend") == traffic(after, "frontend")
        assert traffic(s, "frontend")[0] == wire(fe_in, b"")
    finally:
        worker.stop()


def test_service_worker_stats():
    lb = Balancer()
    hashsvc = bin_program("hashsvc")
    worker = ZkitProcess(["--worker", lb.backend, "--credit", "2", "--control",
                          "tcp://127.0.0.1:*"], program=hashsvc)
    ctl = worker.wait_stderr(r"^hashsvc worker: control (\S+)$").group(1)
    lb.wait_stat("workers", 1)
    client = ZkitProcess(["--client", lb.frontend, "--count", "25"], program=hashsvc)
    assert client.wait() == 0, client.stderr()
    assert b"25 requests, 0 failures" in client.stdout()
    s = zkit_stats(ctl)
    assert s["component"] == "service_worker", s
    assert {k: metric(s, k) for k in ("requests", "replies", "failures", "reconnects",
                                      "bad_messages")} == {
        "requests": 25, "replies": 25, "failures": 0, "reconnects": 0, "bad_messages": 0}, s
    assert {k: metric(s, k) for k in ("connected", "credit", "running", "queued")} == {
        "connected": 1, "credit": 2, "running": 0, "queued": 0}, s
    assert [p["id"] for p in s["peers"]] == [lb.backend], s["peers"]
    assert control(ctl, b"PAUSE") == b"ERROR not supported"
    b = lb.stats()
    assert metric(b, "requests") == metric(b, "replies") == 25, b["counters"]
    # Its link to the balancer: what it counts out the balancer counts in on
    # the backend, and the other way, message for message and byte for byte
    # (+ the 5-byte routing id libzmq gives the worker's DEALER on the
    # ROUTER side). Heartbeats go on both ways: compare until they agree.
    # At least 25 requests in and 25 replies plus READY out.
    def link_agrees():
        w = traffic(zkit_stats(ctl), "balancer")
        be = traffic(lb.stats(), "backend")
        return w[0][0] >= 25 and w[1][0] >= 26 and \
            be == (plus_rid(w[1], b"12345"), plus_rid(w[0], b"12345"))

    wait_for(link_agrees, what="the worker's link counted as the balancer's backend",
             interval=0.05)
    assert metric(s, "messages", socket="balancer", dir="in") >= 25, s["counters"]


# ---- b. hostile input -------------------------------------------------------------------


def test_flood_is_counted_and_survived():
    count, seed_fe, seed_be = 100000, 11, 12
    # On the frontend "unknown_command" ([x][""][y]) is a well-formed request
    # behind a proxy's address frame, not garbage: it is left out there.
    fe_kinds = [k for k in GARBAGE_KINDS if k != "unknown_command"]
    want_fe = expected_flood(count, seed_fe, fe_kinds, model_frontend, [b"rid"])
    want_be = expected_flood(count, seed_be, GARBAGE_KINDS, model_backend)
    # The seeds are chosen so that no message happens to be valid input.
    assert "request" not in want_fe, want_fe
    assert not set(want_be) & {"ready", "reply", "nack"}, want_be
    warm = 2000
    want_warm_fe = expected_flood(warm, 1, fe_kinds, model_frontend, [b"rid"])
    want_warm_be = expected_flood(warm, 2, GARBAGE_KINDS, model_backend)

    lb = Balancer(env=flood_env())
    worker = PPPWorker(lb.backend)
    rng = random.Random(3)
    try:
        lb.wait_stat("workers", 1)
        with ZmqPeer() as peer:
            def flood(endpoint, n, seed, kinds):
                sock = peer.socket(zmq.DEALER, sndhwm=10000)
                sock.connect(endpoint)
                flood_garbage(sock, n, seed=seed, kinds=kinds, timeout=120.0)
                return sock

            def oversized(endpoint):
                sock = peer.socket(zmq.DEALER)
                sock.connect(endpoint)
                send_frames(sock, [b"o" * (MAXMSGSIZE + 1)])
                return sock

            # Warm-up: the same kinds of traffic, so what the allocator and
            # libzmq keep for good is there before the first measurement.
            flood(lb.frontend, warm, 1, fe_kinds)
            flood(lb.backend, warm, 2, GARBAGE_KINDS)
            for i in range(20):
                assert request(peer, lb.frontend, b"warm%d" % i) == [b"echo:warm%d" % i]
            lb.wait_stat("bad_messages", want_warm_be.get("command", 0), socket="backend",
                         reason="command")
            before = rss_kib(lb.proc.pid)

            opened = half_open(lb.frontend, rng) + half_open(lb.backend, rng)
            oversized(lb.frontend)
            oversized(lb.backend)
            flood(lb.frontend, count, seed_fe, fe_kinds)
            flood(lb.backend, count, seed_be, GARBAGE_KINDS)
            oversized(lb.frontend)
            oversized(lb.backend)
            # Valid traffic still flows, with the half-open connections up.
            for i in range(20):
                assert request(peer, lb.frontend, b"after%d" % i) == [b"echo:after%d" % i]

            def total(*wants):
                out = {}
                for w in wants:
                    for k, v in w.items():
                        out[k] = out.get(k, 0) + v
                return out

            all_fe, all_be = total(want_warm_fe, want_fe), total(want_warm_be, want_be)
            want_bad_fe = {r: all_fe.get(r, 0) for r in REASONS}
            want_bad_be = {r: all_be.get(r, 0) for r in REASONS}
            # Every message of both floods is accounted for, under one reason.
            assert sum(want_bad_fe.values()) == warm + count, want_bad_fe
            assert sum(want_bad_be.values()) + all_be.get("unknown_worker", 0) == warm + count
            # Every message was sent before the requests above were answered,
            # but on other connections: wait until all are counted.
            wait_for(lambda: bad_counts(lb.stats(), "backend") == want_bad_be and
                     bad_counts(lb.stats(), "frontend") == want_bad_fe,
                     timeout=60.0, what="flood counted", interval=0.2)
            after = rss_kib(lb.proc.pid)
            s = lb.stats()
            assert metric(s, "unknown_worker") == all_be.get("unknown_worker", 0), s
            assert metric(s, "requests") == metric(s, "replies") == 40, s["counters"]
            assert metric(s, "workers") == 1 and metric(s, "workers_ready") == 1, s
            assert after - before < 10 * 1024, "RSS grew from %d to %d KiB" % (before, after)
            print("  flood: frontend %s, backend %s, RSS %d -> %d KiB" % (
                want_bad_fe, want_bad_be, before, after), flush=True)
            for s_ in opened:
                s_.close()
        assert lb.proc.running()
        # Logged, but rate-limited: far fewer lines than dropped messages.
        lines = [ln for ln in lb.proc.stderr_lines() if "ZKIT-BALANCER-BADFRAME" in ln]
        assert 1 <= len(lines) < 200, len(lines)
    finally:
        worker.stop()


# ---- c. CURVE -----------------------------------------------------------------------------


def test_curve_end_to_end():
    d = tempfile.mkdtemp(prefix="zkit-lb-curve-")
    try:
        keys, allow = os.path.join(d, "keys"), os.path.join(d, "allow")
        os.mkdir(keys)
        os.mkdir(allow)
        pairs = keygen(keys, "balancer", "client", "worker", "cclient", "cworker", "ops",
                       "stranger")
        for name in ("client", "worker", "cclient", "cworker", "ops"):
            shutil.copy(os.path.join(keys, name), os.path.join(allow, name))

        def k(name):
            return os.path.join(keys, name)

        def curve(name):
            return pairs[name], pairs["balancer"][0]

        lb = Balancer("--curve-secret", k("balancer_secret"), "--curve-allow", allow)
        lb.stats_args = ["--curve-secret", k("ops_secret"), "--curve-server", k("balancer")]
        worker = PPPWorker(lb.backend, curve=curve("worker"))
        stranger_worker = PPPWorker(lb.backend, curve=curve("stranger"))
        hashsvc = bin_program("hashsvc")
        try:
            lb.wait_stat("workers", 1)
            with ZmqPeer() as peer:
                # A python client with an allowed key: its requests go to the
                # python worker (the only worker yet).
                for i in range(5):
                    body = b"secret%d" % i
                    assert request(peer, lb.frontend, body, curve=curve("client")) == \
                        [b"echo:" + body]
                # zkit_service_worker and zkit_client with allowed keys; the
                # echo worker leaves first, so every hash request reaches
                # hashsvc.
                worker.stop()
                lb.wait_stat("workers", 0)
                cworker = ZkitProcess(["--worker", lb.backend, "--curve-secret",
                                       k("cworker_secret"), "--curve-server", k("balancer")],
                                      program=hashsvc)
                lb.wait_stat("workers", 1)
                client = ZkitProcess(["--client", lb.frontend, "--count", "20",
                                      "--curve-secret", k("cclient_secret"), "--curve-server",
                                      k("balancer")], program=hashsvc)
                assert client.wait() == 0, client.stderr()
                assert b"20 requests, 0 failures" in client.stdout()
                # Strangers: an unlisted key, and no key at all.
                for c in (curve("stranger"), None):
                    sock = peer.socket(zmq.REQ)
                    if c:
                        curve_client(sock, *c)
                    sock.connect(lb.frontend)
                    send_frames(sock, [b"let me in"])
                    assert_silent(sock, 1.0)
                plain = ZkitProcess(["--client", lb.frontend, "--count", "1", "--timeout",
                                     "300", "--retries", "1"], program=hashsvc)
                assert plain.wait() == 1
                assert b"1 requests, 1 failures" in plain.stdout()
                s = lb.stats()
                assert metric(s, "requests") == metric(s, "replies") == 25, s["counters"]
                assert metric(s, "workers") == 1 and metric(s, "workers_ready") == 2, s
                assert metric(s, "workers_gone") == 1, s
                assert bad_counts(s, "frontend") == dict.fromkeys(REASONS, 0)
                assert bad_counts(s, "backend") == dict.fromkeys(REASONS, 0)
                assert metric(s, "unknown_worker") == 0
                assert stranger_worker.served == 0 and stranger_worker.heartbeats == 0
                cworker.send_signal(15)
                cworker.wait()
        finally:
            worker.stop()
            stranger_worker.stop()
        # The control endpoint is CURVE too: no reply without the keys.
        rc, _, err = run_zkit(["stats", lb.control, "--timeout", "300"])
        assert rc == 1 and "no reply" in err, (rc, err)
    finally:
        shutil.rmtree(d, ignore_errors=True)


# ---- d. PAUSE / RESUME ------------------------------------------------------------------


def test_pause_holds_and_resume_delivers():
    lb = Balancer()
    worker = PPPWorker(lb.backend)
    n = 30
    try:
        lb.wait_stat("workers", 1)
        assert control(lb.control, b"PAUSE") == b"OK paused"
        assert control(lb.control, b"PAUSE") == b"OK paused"
        assert control(lb.control, b"PAUSE now").startswith(b"ERROR")
        lb.proc.wait_stderr(r"ZKIT-CONTROL-PAUSED balancer balancer: dispatching paused "
                            r"until RESUME")
        with ZmqPeer() as peer:
            client = peer.socket(zmq.DEALER)
            client.connect(lb.frontend)
            for i in range(n):
                send_frames(client, [b"", b"held%d" % i])
            lb.wait_stat("queued", n)
            # Paused for several liveness periods: the worker hears the
            # heartbeats and stays registered, and gets no request.
            hb = worker.heartbeats
            wait_for(lambda: worker.heartbeats >= hb + 2 * LIVENESS, timeout=30.0,
                     what="heartbeats while paused")
            s = lb.stats()
            assert metric(s, "paused") == 1 and metric(s, "workers") == 1, s
            assert metric(s, "workers_expired") == 0 and metric(s, "dispatched") == 0, s
            assert worker.served == 0
            assert_silent(client, 0.2)
            assert control(lb.control, b"RESUME") == b"OK resumed"
            got = set()
            deadline = Deadline(30.0)
            while len(got) < n:
                frames = recv_frames(client, deadline.remaining())
                assert frames[0] == b"" and frames[1].startswith(b"echo:held"), frames
                assert frames[1] not in got, frames
                got.add(frames[1])
            assert got == {b"echo:held%d" % i for i in range(n)}
            s = lb.stats()
            assert metric(s, "requests") == metric(s, "replies") == metric(s, "dispatched") == n
            assert metric(s, "queued") == 0 and metric(s, "paused") == 0, s
            assert metric(s, "requeued") == 0 and metric(s, "dead_letters") == 0, s
            lb.proc.wait_stderr(r"ZKIT-CONTROL-RESUMED balancer balancer: dispatching resumed")
    finally:
        worker.stop()


if __name__ == "__main__":
    sys.exit(run_tests([test_stats_match_traffic, test_service_worker_stats,
                        test_flood_is_counted_and_survived, test_curve_end_to_end,
                        test_pause_holds_and_resume_delivers], deadline=240.0 * SLOW))
