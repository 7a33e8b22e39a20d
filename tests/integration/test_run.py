#!/usr/bin/python3
# test_run.py: `zkit run TOPOLOGY.zpl`, several devices in one process.
#
#   ZKIT_BIN=build/bin/zkit /usr/bin/python3 tests/integration/test_run.py [NAME...]
#
# Traffic end to end through topologies started from a file: publisher ->
# root forwarder -> edge forwarder -> subscriber; clients -> balancer ->
# workers; ventilator -> worker -> sink (both in the topology); producer ->
# spool -> consumer. SIGTERM mid-stream into a spool device with nothing
# downstream: exit 0, and after a restart on the same file every message
# the producer saw confirmed arrives (by id). SIGHUP: a device added to the
# file starts, removed stops, changed restarts, unchanged keeps running
# (its connections stay up), an invalid edit is refused with the old
# topology still serving. Bad files: a table of (file, message), exit 2,
# nothing started. Every example topology passes --check. Counters through
# `zkit stats` on a control endpoint named in the file: the forwarder's
# messages and bytes per socket and direction match exactly what went through.
#
# Every wait is on an event (a log line, a reply, output) with a deadline.
#
# This Source Code Form is subject to the terms of the Mozilla Public
# License, v. 2.0. If a copy of the MPL was not distributed with this
# file, You can obtain one at http://mozilla.org/MPL/2.0/.

import glob
import json
import os
import re
import shutil
import signal
import socket
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from zkit_testlib import (Deadline, ZkitProcess, ZmqPeer, envelope,  # noqa: E402
                          SLOW, free_tcp_port, metric, recv_frames, run_tests, run_zkit, wait_for,
                          zkit_cat, zkit_stats, zmq)

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


T = 10.0 * SLOW  # any single wait
_tmpdirs = []


def tmpdir():
    d = tempfile.mkdtemp(prefix="zkit-run-")
    _tmpdirs.append(d)
    return d


def write(path, text):
    with open(path, "w") as f:
        f.write(text)
    return path


def ports(n):
    """n distinct free ports (racy by nature; only for fixed endpoints a
    restart must find again)."""
    out = set()
    while len(out) < n:
        out.add(free_tcp_port())
    return sorted(out)


def start_run(path, *extra):
    p = ZkitProcess(["run"] + list(extra) + [path])
    p.wait_stderr(r"^zkit run: running \d+ device", T)
    return p


def started(p, kind, name, index=0):
    """The endpoints of a 'started KIND NAME key EP key EP ...' line."""
    m = p.wait_stderr(r"^zkit run: started %s %s (.*)$" % (kind, re.escape(name)), T, index)
    words = m.group(1).split()
    return dict(zip(words[0::2], words[1::2]))


def stop_run(p, timeout=None, signum=signal.SIGTERM):
    p.send_signal(signum)
    rc = p.wait(timeout or T)
    assert rc == 0, (rc, p.stderr())
    assert "zkit run: stopped\n" in p.stderr(), p.stderr()


def stderr_count(p, pattern):
    return len(re.findall(pattern, p.stderr(), re.M))


# ---- python peers ---------------------------------------------------------------


def pubsub_pair(peer, frontend, backend):
    """A PUB connected to a forwarder's frontend and a SUB (everything) to
    its backend."""
    pub = peer.socket(zmq.PUB)
    pub.connect(frontend)
    sub = peer.socket(zmq.SUB)
    sub.setsockopt(zmq.SUBSCRIBE, b"")
    sub.connect(backend)
    return pub, sub


def pubsub_roundtrip(pub, sub, count, tag=b"t", heard=None):
    """Publishes [topic, envelope] messages (what the forwarder takes)
    until the subscriber hears one (slow joiner through the tree), then
    count numbered ones; returns the numbers received, in order. Every
    message the subscriber received (probes too) is appended to the list
    heard when one is given: with one subscriber, exactly what went
    through the forwarder (a PUB drops what it has no subscriber for)."""
    heard = [] if heard is None else heard

    def receive(timeout_ms):
        if not sub.poll(timeout_ms):
            return None
        heard.append(sub.recv_multipart())
        return heard[-1]

    probe = Deadline(T)
    while True:
        pub.send_multipart([tag + b"-probe", envelope(b"probe")])
        if receive(50):
            break
        assert not probe.expired(), "no message through the tree"
    while receive(200):  # probes still in flight
        pass
    frames = {}
    for i in range(count):
        env = envelope(b"%s %d" % (tag, i), seq=i + 1)
        frames[env] = i
        pub.send_multipart([tag, env])
    got = []
    deadline = Deadline(T)
    while len(got) < count and not deadline.expired():
        msg = receive(100)
        if msg and msg[0] == tag:
            got.append(frames[msg[1]])
    return got


def ppp_serve(sockets, replies_wanted, clients, deadline):
    """Runs Paranoid Pirate workers (DEALER sockets, READY already sent)
    and REQ clients in one loop until replies_wanted replies arrived."""
    poller = zmq.Poller()
    for s in sockets + [c for c, _ in clients]:
        poller.register(s, zmq.POLLIN)
    served = {id(s): 0 for s in sockets}
    replies = []
    last_hb = time.monotonic()
    while len(replies) < replies_wanted:
        assert not deadline.expired(), "replies: %d of %d" % (len(replies), replies_wanted)
        for s, _ in poller.poll(100):
            if s in sockets:
                frames = s.recv_multipart()
                if len(frames) >= 3:
                    s.send_multipart(frames[:-1] + [b"W:" + frames[-1]])
                    served[id(s)] += 1
            else:
                replies.append(s.recv())
                for c, queue in clients:
                    if c is s and queue:
                        c.send(queue.pop(0))
        if time.monotonic() - last_hb > 0.3:
            for s in sockets:
                s.send(b"\x02")  # PPP heartbeat
            last_hb = time.monotonic()
    return replies, served


# ---- end to end -----------------------------------------------------------------


def test_pubsub_tree_end_to_end():
    d = tmpdir()
    mid = ports(1)[0]
    path = write(os.path.join(d, "tree.zpl"), """\
# a root forwarder feeding an edge forwarder
forwarder
    root
        frontend = tcp://127.0.0.1:*
        backend = tcp://127.0.0.1:%d
    edge
        frontend_connect = tcp://127.0.0.1:%d
        backend = tcp://127.0.0.1:*
""" % (mid, mid))
    p = start_run(path)
    root, edge = started(p, "forwarder", "root"), started(p, "forwarder", "edge")
    # downstream first: the edge starts before the root that feeds it
    assert p.stderr().index("started forwarder edge") < p.stderr().index("started forwarder root")
    with ZmqPeer() as peer:
        pub, sub = pubsub_pair(peer, root["frontend"], edge["backend"])
        got = pubsub_roundtrip(pub, sub, 200)
        assert got == list(range(200)), got[:10]
    stop_run(p)
    err = p.stderr()
    # upstream first: the root stops before the edge it feeds
    assert err.index("stopped forwarder root") < err.index("stopped forwarder edge"), err


def test_balancer_end_to_end():
    d = tmpdir()
    path = write(os.path.join(d, "lb.zpl"), """\
balancer
    lb
        frontend = tcp://127.0.0.1:*
        backend = tcp://127.0.0.1:*
        dead_letter = %s
        verbose = true
""" % os.path.join(d, "dead"))
    p = start_run(path)
    lb = started(p, "balancer", "lb")
    with ZmqPeer() as peer:
        workers = []
        for _ in range(2):
            w = peer.socket(zmq.DEALER)
            w.connect(lb["backend"])
            w.send(b"\x01")  # READY
            workers.append(w)
        # both registered before the first request, so both get a share
        wait_for(lambda: len(re.findall(r"ZKIT-BALANCER-WORKER .* ready", p.stderr())) == 2, T,
                 "two workers ready")
        clients = []
        for c in range(3):
            s = peer.socket(zmq.REQ)
            s.connect(lb["frontend"])
            queue = [b"c%d-%d" % (c, i) for i in range(40)]
            s.send(queue.pop(0))
            clients.append((s, queue))
        replies, served = ppp_serve(workers, 120, clients, Deadline(3 * T))
    assert sorted(replies) == sorted(b"W:c%d-%d" % (c, i) for c in range(3) for i in range(40))
    assert all(n > 0 for n in served.values()), served  # both workers had a share
    stop_run(p, signum=signal.SIGINT)


def test_pipeline_worker_and_sink_end_to_end():
    d = tmpdir()
    vent_port, sink_port = ports(2)
    out = os.path.join(d, "results.txt")
    path = write(os.path.join(d, "pipe.zpl"), """\
worker
    w1
        connect = tcp://127.0.0.1:%d
        sink = tcp://127.0.0.1:%d
        exec = tr a-z A-Z
        window = 2
sink
    results
        bind = tcp://127.0.0.1:%d
        output = %s
""" % (vent_port, sink_port, sink_port, out))
    p = start_run(path)
    started(p, "sink", "results")
    started(p, "worker", "w1")
    tasks = b"".join(b"task %d\n" % i for i in range(1, 51))
    vent = ZkitProcess(["ventilator", "--bind", "tcp://127.0.0.1:%d" % vent_port, "--sink",
                        "tcp://127.0.0.1:%d" % sink_port, "--batch", "b1"], stdin=tasks)
    assert vent.wait(3 * T) == 0, vent.stderr()
    lines = sorted(open(out).read().splitlines())
    assert lines == sorted("TASK %d" % i for i in range(1, 51)), lines[:5]
    stop_run(p)
    err = p.stderr()
    assert err.index("stopped worker w1") < err.index("stopped sink results"), err


def spool_zpl(d, in_port, out_port, extra=""):
    return write(os.path.join(d, "spool.zpl"), """\
spool
    buffer
        in = tcp://127.0.0.1:%d
        out = tcp://127.0.0.1:%d
        dir = %s
%s""" % (in_port, out_port, os.path.join(d, "spool"), extra))


def body(i):
    return b"message %06d" % i


def test_spool_sigterm_mid_stream_loses_nothing():
    """A reliable producer sends N into a spool device run by zkit run,
    nothing downstream; SIGTERM mid-stream: exit 0 promptly. zkit run again
    on the same file: the producer gets every message confirmed, and the
    consumer then gets all N, each id once."""
    n = 3000
    d = tmpdir()
    in_port, out_port = ports(2)
    path = spool_zpl(d, in_port, out_port)
    p = start_run(path)
    started(p, "spool", "buffer")
    lines = b"".join(body(i) + b"\n" for i in range(1, n + 1))
    prod = zkit_cat("--push", "--reliable", "--connect", "tcp://127.0.0.1:%d" % in_port,
                    "--file", "-", "--window", "100", "--resend", "500", "--interval", "1",
                    "--timeout", str(int(60000 * SLOW)), stdin=lines)

    def unacked():
        rc, out, err = run_zkit(["spool", "inspect", os.path.join(d, "spool"), "--format",
                                 "json"], T)
        return json.loads(out).get("unacked", 0) if rc == 0 else 0

    wait_for(lambda: unacked() >= 200, T, "200 messages stored")
    t0 = time.monotonic()
    p.send_signal(signal.SIGTERM)
    assert p.wait(T) == 0, p.stderr()
    stop_seconds = time.monotonic() - t0
    assert "stopped spool buffer" in p.stderr()
    assert prod.running(), "the producer finished before SIGTERM: not mid-stream"
    # the producer keeps resending what is unconfirmed; the same file again
    p2 = start_run(path)
    m = p2.wait_stderr(r"started spool buffer .* unacked=(\d+)", T)
    assert int(m.group(1)) >= 200, m.group(0)
    assert prod.wait(60 * SLOW) == 0, prod.stderr()
    cons = zkit_cat("--pull", "--reliable", "--connect", "tcp://127.0.0.1:%d" % out_port,
                    "--count", str(n), "--timeout", str(int(30000 * SLOW)))
    assert cons.wait(60 * SLOW) == 0, cons.stderr()
    docs = [json.loads(line) for line in cons.stdout().splitlines() if line.strip()]
    bodies = sorted(doc["body"].encode() for doc in docs)
    assert bodies == [body(i) for i in range(1, n + 1)], "got %d" % len(bodies)
    assert len({doc["id"] for doc in docs}) == n
    stop_run(p2)
    assert stop_seconds < 5 * SLOW, stop_seconds


# ---- reload ---------------------------------------------------------------------


def test_sighup_add_remove_change_and_refuse_invalid():
    d = tmpdir()
    a_mid, b_front = ports(2)
    base = """\
forwarder
    a
        frontend = tcp://127.0.0.1:*
        backend = tcp://127.0.0.1:*
"""
    path = write(os.path.join(d, "t.zpl"), base)
    p = start_run(path)
    a = started(p, "forwarder", "a")
    with ZmqPeer() as peer:
        pub, sub = pubsub_pair(peer, a["frontend"], a["backend"])
        assert pubsub_roundtrip(pub, sub, 20, b"a") == list(range(20))

        # add b: it starts, a is untouched (its subscriber hears on)
        added = base + """\
    b
        frontend = tcp://127.0.0.1:%d
        backend = tcp://127.0.0.1:*
""" % b_front
        write(path, added)
        p.send_signal(signal.SIGHUP)
        b = started(p, "forwarder", "b")
        p.wait_stderr(r"reload: 1 unchanged, 1 added, 0 removed, 0 restarted", T)
        assert stderr_count(p, r"started forwarder a ") == 1
        assert b["frontend"] == "tcp://127.0.0.1:%d" % b_front
        pub_b, sub_b = pubsub_pair(peer, b["frontend"], b["backend"])
        assert pubsub_roundtrip(pub_b, sub_b, 20, b"b") == list(range(20))
        sent = [[b"a2", envelope(b"a2 %d" % i, seq=i + 1)] for i in range(5)]
        for msg in sent:  # a's old connections were never dropped
            pub.send_multipart(msg)
        assert [recv_frames(sub, T) for _ in range(5)] == sent

        # an invalid edit: refused, both keep serving
        write(path, added + "        hwm = lots\n")
        p.send_signal(signal.SIGHUP)
        p.wait_stderr(r"reload: .*t\.zpl:\d+: forwarder/b/hwm: wants a number.*; the running "
                      r"topology stays", T)
        assert pubsub_roundtrip(pub_b, sub_b, 10, b"b3") == list(range(10))

        # change a (hwm), remove b: a restarts, b stops and frees its port
        write(path, base + "        hwm = 500\n")
        p.send_signal(signal.SIGHUP)
        p.wait_stderr(r"reload: forwarder a changed: restarting", T)
        p.wait_stderr(r"reload: forwarder b removed: stopping", T)
        p.wait_stderr(r"reload: 0 unchanged, 0 added, 1 removed, 1 restarted", T)
        assert "stopped forwarder b" in p.stderr()
        assert stderr_count(p, r"started forwarder a ") == 2
        probe = socket.socket()
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        wait_for(lambda: _can_bind(b_front), T, "b's port free")
        probe.close()
    stop_run(p)


def _can_bind(port):
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        s.bind(("127.0.0.1", port))
        return True
    except OSError:
        return False
    finally:
        s.close()


# ---- config errors --------------------------------------------------------------

OK_FWD = "        frontend = tcp://127.0.0.1:*\n        backend = tcp://127.0.0.1:*\n"

BAD_FILES = [
    # (file text, message regex); FILE stands for the file's path
    ("forwarder\n    a\n" + OK_FWD + "        hwm = 12x\n",
     r"FILE:5: forwarder/a/hwm: wants a number from 0 to 2147483647, not '12x'"),
    ("forwarder\n    a\n" + OK_FWD + "        bogus = 1\n",
     r"FILE:5: forwarder/a/bogus: unknown key 'bogus'"),
    ("forwarder\n    a\n        frontend = tcp://127.0.0.1:*\n",
     r"FILE:2: forwarder/a: backend: missing required key: backend or backend_connect"),
    ("balancer\n    lb\n        frontend = tcp://127.0.0.1:*\n",
     r"FILE:2: balancer/lb: missing required key 'backend'"),
    ("spool\n    s\n        in = tcp://127.0.0.1:*\n        out = tcp://127.0.0.1:*\n",
     r"FILE:2: spool/s: missing required key 'dir'"),
    ("forwarder\n    a\n" + OK_FWD + "    a\n" + OK_FWD,
     r"FILE:5: forwarder/a: duplicate device name 'a'"),
    ("forwarder\n    x\n" + OK_FWD + "balancer\n    x\n" + OK_FWD,
     r"FILE:6: balancer/x: duplicate device name 'x' \(also forwarder/x\)"),
    ("forwarder\n    a\n" + OK_FWD + "        hwm = 1\n        hwm = 2\n",
     r"FILE:6: forwarder/a/hwm: given twice"),
    ("forwarder\n    a\n" + OK_FWD + "        policy = fast\n",
     r"FILE:5: forwarder/a/policy: is drop, disconnect or nodrop, not 'fast'"),
    ("forwarder\n    a\n" + OK_FWD + "        tap_connect = maybe\n",
     r"FILE:5: forwarder/a/tap_connect: wants true or false, not 'maybe'"),
    ("defaults\n    hwm = -1\nforwarder\n    a\n" + OK_FWD,
     r"FILE:2: defaults/hwm: wants a number"),
    ("defaults\n    colour = red\nforwarder\n    a\n" + OK_FWD,
     r"FILE:2: defaults/colour: unknown key 'colour' \(no device kind takes it\)"),
    ("forwardr\n    a\n" + OK_FWD, r"FILE:1: forwardr: unknown section 'forwardr'"),
    ("forwarder\n   a\n", r"FILE:2: not valid ZPL: indent"),
    ("", r"FILE: no devices"),
    ("spool\n    s\n        in = tcp://127.0.0.1:*\n        out = tcp://127.0.0.1:*\n"
     "        dir = /tmp/x\n        max_bytes = 1k\n        segment_size = 4k\n",
     r"FILE:6: spool/s/max_bytes: must hold at least two segments"),
    ("spool\n    s\n        in = tcp://127.0.0.1:*\n        out = tcp://127.0.0.1:*\n"
     "        dir = /tmp/x\n    t\n        in = tcp://127.0.0.1:*\n"
     "        out = tcp://127.0.0.1:*\n        dir = /tmp/x\n",
     r"FILE:6: spool/t: directory /tmp/x is also used by spool/s"),
    ("forwarder\n    a\n" + OK_FWD + "        ip_allow = 127.0.0.1\n    b\n" + OK_FWD,
     None),  # valid: b uses no ZAP at all
    ("forwarder\n    a\n" + OK_FWD + "        ip_allow = 127.0.0.1\n    b\n" + OK_FWD +
     "        ip_allow = 10.0.0.1\n",
     r"FILE:6: forwarder/b: curve_allow, ip_allow and ip_deny differ from forwarder/a's"),
    ("worker\n    w\n        connect = tcp://127.0.0.1:1\n        sink = tcp://127.0.0.1:2\n",
     r"FILE:2: worker/w: missing required key 'exec'"),
    ("sink\n    s\n        bind = tcp://127.0.0.1:*\n        output = \n",
     r"FILE:4: sink/s/output: empty value"),
    ("defaults\n    liveness = 500\nbalancer\n    lb\n" + OK_FWD,
     r"FILE:2: defaults/liveness: wants a number from 1 to 100, not '500' \(for balancer/lb\)"),
    ("forwarder\n    a/b\n" + OK_FWD, r"FILE:2: forwarder/a/b: a device name is 1 to 64"),
]


def test_bad_files_exit_2_and_start_nothing():
    d = tmpdir()
    for i, (text, message) in enumerate(BAD_FILES):
        path = write(os.path.join(d, "bad%d.zpl" % i), text)
        for args in (["run", "--check", path], ["run", path]):
            if message is None and args[1] != "--check":
                continue
            rc, out, err = run_zkit(args, T)
            if message is None:
                assert rc == 0, (text, err)
                continue
            pattern = message.replace("FILE", re.escape(path))
            assert rc == 2, (args, text, rc, err)
            assert re.search(r"^zkit run: " + pattern, err, re.M), (text, pattern, err)
            assert "started" not in err, err
    rc, out, err = run_zkit(["run", os.path.join(d, "missing.zpl")], T)
    assert rc == 2 and "cannot read" in err, err
    rc, out, err = run_zkit(["run"], T)
    assert rc == 2 and "the topology file is required" in err, err
    rc, out, err = run_zkit(["run", "--frobnicate", "x.zpl"], T)
    assert rc == 2 and "unknown option '--frobnicate'" in err, err


def test_start_failure_stops_the_others_exit_1():
    d = tmpdir()
    with ZmqPeer() as peer:
        taken = peer.socket(zmq.PULL)
        port = peer.bind_random(taken).rsplit(":", 1)[1]
        path = write(os.path.join(d, "busy.zpl"), """\
forwarder
    ok
        frontend = tcp://127.0.0.1:*
        backend = tcp://127.0.0.1:*
    busy
        frontend = tcp://127.0.0.1:%s
        backend = tcp://127.0.0.1:*
""" % port)
        rc, out, err = run_zkit(["run", path], T)
    assert rc == 1, (rc, err)
    assert "cannot start forwarder busy" in err, err
    if "started forwarder ok" in err:
        assert "stopped forwarder ok" in err, err


def test_examples_pass_check_and_help():
    examples = sorted(glob.glob(os.path.join(ROOT, "examples", "topologies", "*.zpl")))
    assert len(examples) >= 3, examples
    for path in examples:
        rc, out, err = run_zkit(["run", "--check", path], T)
        assert rc == 0, (path, err)
        assert b"valid" in out, out
    rc, out, err = run_zkit(["run", "--help"], T)
    assert rc == 0
    for word in (b"forwarder", b"balancer", b"spool", b"worker", b"sink", b"SIGHUP",
                 b"frontend_connect", b"dead_letter"):
        assert word in out, word
    rc, out, err = run_zkit(["--help"], T)
    assert b"run " in out


# ---- operations: counters through the control endpoint --------------------------


def test_stats_on_control_endpoint_from_the_file():
    d = tmpdir()
    path = write(os.path.join(d, "ctl.zpl"), """\
forwarder
    f
        frontend = tcp://127.0.0.1:*
        backend = tcp://127.0.0.1:*
        control = tcp://127.0.0.1:*
spool
    buffer
        in = tcp://127.0.0.1:*
        out = tcp://127.0.0.1:*
        dir = %s
        control = tcp://127.0.0.1:*
""" % os.path.join(d, "spool"))
    p = start_run(path)
    f = started(p, "forwarder", "f")
    sp = started(p, "spool", "buffer")
    ctl = p.wait_stderr(r"^zkit run: forwarder f: control (tcp://\S+)$", T).group(1)
    assert not ctl.endswith(":*"), "control endpoint not resolved: " + ctl
    with ZmqPeer() as peer:
        pub, sub = pubsub_pair(peer, f["frontend"], f["backend"])
        heard = []
        assert pubsub_roundtrip(pub, sub, 100, b"s", heard) == list(range(100))
        msgs, size = len(heard), sum(len(frame) for msg in heard for frame in msg)
        probes = [None]

        def counted():
            probes[0] = zkit_stats(ctl)
            return metric(probes[0], "messages", socket="backend", dir="out") >= msgs

        wait_for(counted, T, "%d messages counted" % msgs)
        stats = probes[0]
        assert stats["component"] == "forwarder", stats
        # zkit run hands the component's own counters through: every message
        # in at the frontend and out at the backend, byte for byte; the one
        # subscription (b"\x01", 1 byte) in at the backend and up the frontend
        want = {("frontend", "in"): (msgs, size), ("backend", "out"): (msgs, size),
                ("backend", "in"): (1, 1), ("frontend", "out"): (1, 1)}
        for (sock, way), (n, b) in want.items():
            got = (metric(stats, "messages", socket=sock, dir=way),
                   metric(stats, "bytes", socket=sock, dir=way))
            assert got == (n, b), (sock, way, got, (n, b), stats["counters"])
        assert metric(stats, "dropped", reason="hwm") == 0, stats
    # the spool device: exactly what a reliable producer sent, under its name
    sp_ctl = p.wait_stderr(r"^zkit run: spool buffer: control (tcp://\S+)$", T).group(1)
    prod = zkit_cat("--push", "--reliable", "--connect", sp["in"], "--file", "-",
                    stdin=b"".join(body(i) + b"\n" for i in range(25)))
    assert prod.wait(T) == 0, prod.stderr()
    stats = zkit_stats(sp_ctl)
    assert stats["name"] == "buffer", stats
    for name in ("puts", "stored", "confirmed"):
        assert metric(stats, name) == 25, (name, stats["counters"])
    assert metric(stats, "delivered") == 0, stats
    # its traffic, per socket: every PUT in at "in" (answered there), and
    # nothing at "out", where no consumer connected
    assert metric(stats, "messages", socket="in", dir="in") == metric(stats, "puts"), stats
    assert metric(stats, "bytes", socket="in", dir="in") > 25 * len(body(0)), stats
    assert metric(stats, "messages", socket="in", dir="out") >= 1, stats
    for way in ("in", "out"):
        for name in ("messages", "bytes"):
            assert metric(stats, name, socket="out", dir=way) == 0, (name, way, stats)
    stop_run(p)


def main():
    try:
        return run_tests([
            test_bad_files_exit_2_and_start_nothing,
            test_examples_pass_check_and_help,
            test_pubsub_tree_end_to_end,
            test_balancer_end_to_end,
            test_pipeline_worker_and_sink_end_to_end,
            test_spool_sigterm_mid_stream_loses_nothing,
            test_sighup_add_remove_change_and_refuse_invalid,
            test_start_failure_stops_the_others_exit_1,
            test_stats_on_control_endpoint_from_the_file,
        ], deadline=120.0 * SLOW)
    finally:
        for d in _tmpdirs:
            shutil.rmtree(d, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
