#!/usr/bin/python3
# test_pipeline_ops.py: the operating side of the pipeline devices, `zkit
# ventilator`, `zkit worker` and `zkit sink`, as users run them: the control
# endpoint (`zkit stats` in json and prometheus form, PAUSE/RESUME), CURVE
# with keys made by `zkit keygen`, and garbage floods into every bound
# socket (the ventilator's worker socket, the sink's socket).
#
#   ZKIT_BIN=build/bin/zkit ZKIT_BIN_DIR=build/bin /usr/bin/python3 \
#       tests/integration/test_pipeline_ops.py [NAME...]
#
# Every wait is for an event (a stderr line, a counter in STATS, an exit)
# with a deadline. The "nothing arrives" checks are bounded by another
# event that proves the device went on working meanwhile (heartbeats).
#
# This Source Code Form is subject to the terms of the Mozilla Public
# License, v. 2.0. If a copy of the MPL was not distributed with this
# file, You can obtain one at http://mozilla.org/MPL/2.0/.

import os
import shutil
import socket
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import zmq  # noqa: E402
from zmq.utils.monitor import recv_monitor_message  # noqa: E402

from pipeline_lib import Workdir  # noqa: E402
from zkit_testlib import (  # noqa: E402
    Deadline,
    TestTimeout,
    ZkitProcess,
    ZmqPeer,
    envelope,
    flood_env,
    flood_garbage,
    keygen,
    metric,
    parse_prometheus,
    recv_frame,
    recv_frames,
    rss_kib,
    run_tests,
    run_zkit,
    send_frames,
    unpack_envelope,
    wait_for,
    zkit_stats,
)

ANY = "tcp://127.0.0.1:*"
HEARTBEAT = ["--heartbeat", "500", "--liveness", "6"]
SQUARE = "read x; echo $((x*x))"
# Generous: the suite also runs under AddressSanitizer on a busy machine.
RUN_TIMEOUT = 90.0
FLOOD = 100000
OVERSIZE = 17 * 1024 * 1024  # above the devices' 16 MiB + 64 KiB receive limit


def control_line(process, cmd):
    return process.wait_stderr(r"^zkit %s: control (\S+)$" % cmd, RUN_TIMEOUT).group(1)


def start_sink(output, *extra, env=None):
    sink = ZkitProcess(["sink", "--bind", ANY, "--output", output, "--progress", "none",
                        "--grace", "0", "--control", ANY] + list(extra), env=env)
    ep = sink.wait_bound(RUN_TIMEOUT)
    return sink, ep, control_line(sink, "sink")


def start_ventilator(sink_ep, *extra, env=None):
    """A ventilator whose stdin stays open: its batch stays open (the test
    writes lines) until the test closes it."""
    vent = ZkitProcess(["ventilator", "--bind", ANY, "--sink", sink_ep, "--batch", "b1",
                        "--control", ANY] + HEARTBEAT + list(extra), stdin=True, env=env)
    ep = vent.wait_bound(RUN_TIMEOUT)
    return vent, ep, control_line(vent, "ventilator")


def start_worker(vent_ep, sink_ep, *extra):
    worker = ZkitProcess(["worker", "--connect", vent_ep, "--sink", sink_ep, "--exec", SQUARE,
                          "--control", ANY] + HEARTBEAT + list(extra))
    worker.wait_stderr(r"^zkit worker: started", RUN_TIMEOUT)
    return worker, control_line(worker, "worker")


def lines_of(numbers):
    return "".join("%d\n" % n for n in numbers).encode()


def squares_in(path):
    with open(path, "rb") as f:
        return sorted(int(x) for x in f.read().split(b"\n")[:-1])


def dropped(stats):
    """input_dropped summed over its reasons."""
    tree = stats["counters"].get("input_dropped", {})
    return sum(tree["reason"].values()) if tree else 0


def wait_metric(ep, name, predicate, what, *extra, timeout=RUN_TIMEOUT, **labels):
    """Asks for STATS until predicate(value) holds; returns the stats."""
    found = {}

    def check():
        found["stats"] = zkit_stats(ep, *extra)
        return predicate(metric(found["stats"], name, **labels))

    try:
        wait_for(check, timeout, what, interval=0.05)
    except TestTimeout:
        raise TestTimeout("%s: last %s = %r" % (what, name, metric(found["stats"], name, **labels)))
    return found["stats"]


def control(peer, ep, command, *setup):
    """One request from a REQ socket; returns the reply text."""
    s = peer.socket(zmq.REQ)
    for f in setup:
        f(s)
    s.connect(ep)
    s.send(command.encode())
    reply = recv_frame(s, RUN_TIMEOUT).decode()
    s.close(0)
    return reply


def finish(vent, sink, numbers):
    """Closes the batch: every result stored exactly once, both exit 0."""
    vent.write_stdin(b"", close=True)
    assert vent.wait(RUN_TIMEOUT) == 0, vent.stderr()
    assert sink.wait(RUN_TIMEOUT) == 0, sink.stderr()
    return [n * n for n in numbers]


# ---- (a) STATS match the traffic ------------------------------------------------------

# What docs/pipeline-protocol.md, section 8.3, lists: every metric there, nothing else.
BATCH_GAUGES = {"batch_tasks", "batch_done", "batch_dead", "batch_retried", "batch_duplicates",
                "batch_gaps", "batch_started_us", "batch_elapsed_us", "batch_complete"}
METRICS = {
    "ventilator": (
        {"input_dropped", "readies", "disconnects_sent", "duplicate_done", "stale_fail",
         "send_failed", "sink_oks", "sink_completes", "sink_retired", "tasks_submitted",
         "task_attempts", "tasks_acked", "late_acks", "nacks", "tasks_requeued",
         "tasks_dead_lettered", "duplicate_acks", "rejected_acks", "stale_nacks",
         "workers_expired", "workers_gone"},
        {"workers", "paused", "tasks_queued", "tasks_in_flight", "dead_pending",
         "workers_registered", "workers_available"} | BATCH_GAUGES),
    "worker": (
        {"tasks", "tasks_succeeded", "tasks_failed", "reconnects", "task_gaps", "input_dropped",
         "readies_sent", "disconnects_received", "heartbeats_received", "results_sent", "acks",
         "acks_unknown", "results_abandoned", "tasks_overloaded"},
        {"paused", "connected", "tasks_waiting", "results_unacked", "outbox", "handlers"}),
    "sink": (
        {"input_dropped", "results", "results_stored", "results_refused", "results_duplicate",
         "acks_sent", "oks_sent", "completes_sent", "completes_confirmed", "dead_letters"},
        {"batches", "batches_completing"} | BATCH_GAUGES),
}


TRAFFIC = {"messages", "bytes"}  # labels socket and dir (core/traffic.h)
SOCKETS = {"ventilator": {"workers", "sink"}, "worker": {"ventilator", "sink"}, "sink": {"bind"}}


def check_names(stats):
    counters, gauges = METRICS[stats["component"]]
    counters = counters | TRAFFIC
    for name in TRAFFIC:
        tree = stats["counters"][name]["socket"]
        assert set(tree) == SOCKETS[stats["component"]], (name, tree)
        assert all(set(t["dir"]) == {"in", "out"} for t in tree.values()), (name, tree)
    mine = {k for k in stats["counters"] if not k.startswith("control_")}
    assert mine == counters, (stats["component"], mine ^ counters)
    assert set(stats["gauges"]) == gauges, (stats["component"], set(stats["gauges"]) ^ gauges)
    assert set(stats["help"]) >= counters | gauges, set(stats["help"]) ^ (counters | gauges)


def test_stats_match_traffic():
    """20 tasks through 2 workers: every device's counters say exactly that,
    in json and in the Prometheus form."""
    n = 20
    with Workdir() as wd:
        out = wd.file("out")
        sink, sink_ep, sink_ctl = start_sink(out)
        vent, vent_ep, vent_ctl = start_ventilator(sink_ep)
        workers = [start_worker(vent_ep, sink_ep) for _ in range(2)]
        wait_metric(vent_ctl, "workers", lambda v: v == 2, "two workers registered")
        vent.write_stdin(lines_of(range(1, n + 1)))
        ss = wait_metric(sink_ctl, "results_stored", lambda v: v == n, "results stored")
        # A DONE follows the sink's ACK: the ventilator retires the last ones
        # a moment later.
        vs = wait_metric(vent_ctl, "tasks_acked", lambda v: v == n, "tasks retired")
        ws = [zkit_stats(ctl) for _, ctl in workers]

        assert vs["component"] == "ventilator" and ss["component"] == "sink"
        for stats in [vs, ss] + ws:
            check_names(stats)
        for name, value in [("tasks_submitted", n), ("task_attempts", n), ("tasks_acked", n),
                            ("nacks", 0), ("duplicate_done", 0), ("send_failed", 0),
                            ("tasks_queued", 0), ("tasks_in_flight", 0), ("workers", 2),
                            ("paused", 0), ("sink_retired", 0), ("stale_fail", 0)]:
            assert metric(vs, name) == value, (name, metric(vs, name), vs)
        assert metric(vs, "batch_done", batch="b1") == n
        assert vs["gauges"]["batch_tasks"] == {"batch": {"b1": 0}}  # open: total not known
        assert metric(vs, "tasks_requeued", reason="peer_died") == 0
        assert dropped(vs) == 0, vs
        # The workers as peers, heard from lately (by the ventilator's clock).
        assert len(vs["peers"]) == 2 and vs["peers_omitted"] == 0, vs["peers"]
        for p in vs["peers"]:
            assert 0 < vs["time_us"] - p["last_seen_us"] < 60_000_000, (p, vs["time_us"])

        assert sum(metric(w, "tasks") for w in ws) == n
        assert sum(metric(w, "tasks_succeeded") for w in ws) == n
        assert sum(metric(w, "acks") for w in ws) == n
        for w in ws:
            assert w["component"] == "worker" and w["name"].startswith("worker-"), w["name"]
            assert metric(w, "tasks_failed") == 0 and metric(w, "connected") == 1
            assert metric(w, "results_sent") >= metric(w, "acks")  # resends only if slow
            assert metric(w, "readies_sent") >= 1 and dropped(w) == 0

        assert metric(ss, "results_stored") == n
        assert metric(ss, "results") == n + metric(ss, "results_duplicate")
        assert metric(ss, "acks_sent") == metric(ss, "results")
        assert metric(ss, "results_refused") == 0 and metric(ss, "dead_letters") == 0
        assert metric(ss, "batch_done", batch="b1") == n
        assert metric(ss, "batches") == 1 and dropped(ss) == 0

        # The same numbers in the Prometheus exposition format.
        for ep, component, stats, names in [
                (vent_ctl, "ventilator", vs, ["tasks_acked", "task_attempts", "readies"]),
                (sink_ctl, "sink", ss, ["results_stored", "acks_sent", "results"])]:
            rc, text, err = run_zkit(["stats", ep, "--format", "prometheus"])
            assert rc == 0, err
            fams = parse_prometheus(text.decode())
            for name in names:
                fam = fams["zkit_%s_%s_total" % (component, name)]
                assert fam["type"] == "counter" and fam["help"], fam
                assert fam["samples"] == {(("name", component),): float(metric(stats, name))}, \
                    (name, fam)
            dropped_fam = fams["zkit_%s_input_dropped_total" % component]
            assert len(dropped_fam["samples"]) == 7 and set(dropped_fam["samples"].values()) == {0}
            done = fams["zkit_%s_batch_done" % component]
            assert done["type"] == "gauge"
            assert done["samples"] == {(("batch", "b1"), ("name", component)): float(n)}, done

        # What the workers and the ventilator sent the sink is what it took in
        # (once a resent BATCH still on its way has arrived); its bytes add
        # the routing id (1 to 255 bytes) the sink's ROUTER puts in front.
        seen = {}

        def sink_took_all():
            senders = [zkit_stats(ctl) for _, ctl in workers] + [zkit_stats(vent_ctl)]
            seen["took"] = traffic(zkit_stats(sink_ctl), "bind")["in"]
            seen["sent"] = tuple(map(sum, zip(*[traffic(x, "sink")["out"] for x in senders])))
            return seen["took"][0] == seen["sent"][0]

        wait_for(sink_took_all, RUN_TIMEOUT, "the sink's input is what was sent to it", 0.1)
        (msgs, took), (_, sent) = seen["took"], seen["sent"]
        assert msgs >= n and sent + msgs <= took <= sent + 255 * msgs, seen
        rc, text, err = run_zkit(["stats", sink_ctl, "--format", "prometheus"])
        assert rc == 0, err
        fam = parse_prometheus(text.decode())["zkit_sink_messages_total"]
        ss = zkit_stats(sink_ctl)
        for d in ("in", "out"):
            key = (("dir", d), ("name", "sink"), ("socket", "bind"))
            assert fam["samples"][key] == float(metric(ss, "messages", socket="bind", dir=d)), fam

        assert finish(vent, sink, range(1, n + 1)) == squares_in(out)


# ---- (a) messages and bytes per socket, exactly ------------------------------------------
#
# The test is every peer of the device, so it knows each message and byte
# that crossed a socket: what it sent is the device's "in", what it received
# the device's "out". A ROUTER's counts include the peer's routing id frame,
# which the device's libzmq delivers (in) and takes (out) as a frame of the
# message. Heartbeats are set far apart, so that none is sent meanwhile.

QUIET = ["--heartbeat", "600000", "--liveness", "10"]


def size(frames):
    return sum(len(f) for f in frames)


def traffic(stats, sock):
    """{dir: (messages, bytes)} of one socket in STATS."""
    return {d: (metric(stats, "messages", socket=sock, dir=d),
                metric(stats, "bytes", socket=sock, dir=d)) for d in ("in", "out")}


class Tally:
    """Messages and bytes a test peer sent or received on one link;
    rid_bytes is the routing id the device's ROUTER adds to each."""

    def __init__(self, rid_bytes=0):
        self.rid_bytes = rid_bytes
        self.msgs = 0
        self.bytes = 0

    def add(self, frames):
        self.msgs += 1
        self.bytes += self.rid_bytes + size(frames)
        return frames

    def send(self, sock, frames):
        send_frames(sock, frames)
        self.add(frames)

    def recv(self, sock, skip=0):
        """Receives a message; skip leading frames (our own ROUTER's routing
        id) that the device did not send."""
        frames = recv_frames(sock, RUN_TIMEOUT)
        self.add(frames[skip:])
        return frames

    def value(self):
        return (self.msgs, self.bytes)


def wait_traffic(ctl, sock, sent, received, drain=None):
    """Waits until STATS of sock say exactly in = sent, out = received;
    drain(), when given, first takes in what else the device sent."""
    got, want = {}, {}

    def check():
        if drain:
            drain()
        want.update({"in": sent.value(), "out": received.value()})
        got["t"] = traffic(zkit_stats(ctl), sock)
        return got["t"] == want

    try:
        wait_for(check, RUN_TIMEOUT, "traffic of %s" % sock, interval=0.05)
    except TestTimeout:
        raise TestTimeout("%s: STATS %r, test %r" % (sock, got["t"], want))


def test_traffic_exact_sink():
    """The sink's socket: a ventilator's BATCH and DEAD (each answered OK)
    and a worker's malformed RESULT and unknown command, from the test."""
    with Workdir() as wd, ZmqPeer() as peer:
        sink, sink_ep, sink_ctl = start_sink(wd.file("out"))
        vent = peer.socket(zmq.DEALER, routing_id=b"V-test")
        work = peer.socket(zmq.DEALER, routing_id=b"worker-7")
        vent.connect(sink_ep)
        work.connect(sink_ep)
        sent_v, sent_w, received = Tally(6), Tally(8), Tally(6)
        task_id = os.urandom(16)
        sent_v.send(vent, [b"BATCH", b"t", b"0"])
        assert received.recv(vent) == [b"OK", b"t:0"]
        sent_v.send(vent, [b"DEAD", b"t", task_id, b"1", b"3", b"NACKED: no"])
        assert received.recv(vent) == [b"OK", task_id.hex().encode()]
        sent_w.send(work, [b"RESULT", b"\x93not an envelope"])
        sent_w.send(work, [b"FROB", b"x" * 100])
        sent = Tally()
        sent.msgs, sent.bytes = sent_v.msgs + sent_w.msgs, sent_v.bytes + sent_w.bytes
        wait_traffic(sink_ctl, "bind", sent, received)
        ss = zkit_stats(sink_ctl)
        assert dropped(ss) == 2 and metric(ss, "oks_sent") == 2, ss["counters"]


def test_traffic_exact_ventilator():
    """The ventilator's two sockets: the test is its sink (a ROUTER the
    ventilator connects to) and its one worker (a DEALER)."""
    with ZmqPeer() as peer:
        sink = peer.socket(zmq.ROUTER)
        sink_ep = peer.bind_random(sink)
        vent, vent_ep, vent_ctl = start_ventilator(sink_ep, *QUIET)
        work = peer.socket(zmq.DEALER, routing_id=b"W-test")
        work.connect(vent_ep)
        from_sink, to_sink, from_work, to_work = Tally(), Tally(), Tally(6), Tally(6)
        from_work.send(work, [b"READY", b"1"])
        from_work.send(work, [b"\x00garbage"])
        wait_metric(vent_ctl, "workers", lambda v: v == 1, "the test's worker registered")
        vent.write_stdin(lines_of([3, 4]))
        # The batch (opened by the first task) announced, and confirmed: its
        # BATCH comes behind our ROUTER's routing id.
        frames = to_sink.recv(sink, skip=1)
        assert frames[1:] == [b"BATCH", b"b1", b"0"], frames
        ok = [b"OK", b"b1:0"]
        send_frames(sink, [frames[0]] + ok)
        from_sink.add(ok)  # the ventilator's DEALER sees no routing id
        for _ in range(2):
            task = to_work.recv(work)
            assert task[0] == b"TASK" and len(task) == 2, task
            from_work.send(work, [b"DONE", unpack_id(task[1])])
        wait_metric(vent_ctl, "tasks_acked", lambda v: v == 2, "both tasks retired")
        wait_traffic(vent_ctl, "workers", from_work, to_work)
        wait_traffic(vent_ctl, "sink", from_sink, to_sink)
        vs = zkit_stats(vent_ctl)
        assert dropped(vs) == 1 and metric(vs, "sink_oks") == 1, vs["counters"]


def test_traffic_exact_worker():
    """The worker's two links: the test is its ventilator and its sink (both
    ROUTERs the worker connects to)."""
    with ZmqPeer() as peer:
        vent, sink = peer.socket(zmq.ROUTER), peer.socket(zmq.ROUTER)
        vent_ep, sink_ep = peer.bind_random(vent), peer.bind_random(sink)
        worker, worker_ctl = start_worker(vent_ep, sink_ep, *QUIET)
        from_vent, to_vent, from_sink, to_sink = Tally(), Tally(), Tally(), Tally()
        ready = to_vent.recv(vent, skip=1)
        assert ready[1] == b"READY", ready
        rid = ready[0]
        task_id = os.urandom(16)
        task = [b"TASK", envelope(b"9", seq=1, id=task_id,
                                  meta={"batch": "t", "att": 1, "src": "py"})]
        send_frames(vent, [rid] + task)
        from_vent.add(task)
        send_frames(vent, [rid, b"NOPE"])  # unknown: dropped, but it came in
        from_vent.add([b"NOPE"])
        result = to_sink.recv(sink, skip=1)
        assert result[1] == b"RESULT", result
        ack = [b"ACK", task_id]
        send_frames(sink, [result[0]] + ack)
        from_sink.add(ack)
        done = to_vent.recv(vent, skip=1)
        assert done[1:] == [b"DONE", task_id], done
        wait_metric(worker_ctl, "acks", lambda v: v == 1, "the result acknowledged")
        wait_traffic(worker_ctl, "ventilator", from_vent, to_vent)
        # A RESULT resent before our ACK came is received here too.
        def drain():
            while sink.poll(0, zmq.POLLIN):
                to_sink.recv(sink, skip=1)

        wait_traffic(worker_ctl, "sink", from_sink, to_sink, drain)
        ws = zkit_stats(worker_ctl)
        assert dropped(ws) == 1 and metric(ws, "tasks_succeeded") == 1, ws["counters"]


def unpack_id(frame):
    """The id (16 bytes) of an envelope frame."""
    return bytes(unpack_envelope(frame)[1])


# ---- (b) floods of garbage into every bound socket -------------------------------------


def wait_disconnect(monitor, timeout=RUN_TIMEOUT):
    """Waits for the peer (the device) to drop our connection."""
    deadline = Deadline(timeout)
    while not deadline.expired():
        if monitor.poll(int(max(1, deadline.remaining_ms())), zmq.POLLIN):
            if recv_monitor_message(monitor)["event"] == zmq.EVENT_DISCONNECTED:
                return
    raise TestTimeout("the device never dropped the oversized sender")


def send_oversized(peer, ep, count=3):
    """Frames above the device's ZMQ_MAXMSGSIZE: libzmq drops the connection
    before the device sees them (our socket reconnects for the next)."""
    s = peer.socket(zmq.DEALER)
    monitor = s.get_monitor_socket(zmq.EVENT_DISCONNECTED)
    try:
        s.connect(ep)
        flood_garbage(s, count, kinds=("oversized",), oversize=OVERSIZE, timeout=RUN_TIMEOUT)
        wait_disconnect(monitor)
    finally:
        s.disable_monitor()
        monitor.close(0)  # not the peer's: it would hold up the context's end


def half_open(ep):
    """Raw TCP connections: silent, random bytes, and connect-then-close.
    Returns the ones left open (closed by the caller)."""
    host, port = ep[len("tcp://"):].rsplit(":", 1)
    kept = []
    for i in range(6):
        s = socket.create_connection((host, int(port)), timeout=10)
        if i % 3 == 1:
            s.sendall(os.urandom(512))
        if i % 3 == 2:
            s.close()
        else:
            kept.append(s)
    return kept


def flood(peer, ep, ctl, process, label, kind=zmq.DEALER):
    """100,000 malformed messages into ep; returns the STATS that counted
    them all."""
    s = peer.socket(kind)
    s.connect(ep)
    sent = flood_garbage(s, FLOOD, seed=7, timeout=RUN_TIMEOUT)
    assert sum(sent.values()) == FLOOD, sent
    stats = {}

    def counted():
        stats["s"] = zkit_stats(ctl)
        return dropped(stats["s"]) >= FLOOD

    wait_for(counted, RUN_TIMEOUT, "%s counted the flood" % label, interval=0.1)
    # Every malformed message is counted once, under one reason.
    assert dropped(stats["s"]) == FLOOD, stats["s"]["counters"]["input_dropped"]
    assert process.running(), process.stderr()
    return stats["s"]


def test_flood_ventilator_and_sink():
    with Workdir() as wd, ZmqPeer() as peer:
        out = wd.file("out")
        # ASan's quarantine would read as growth: keep it small.
        env = flood_env()
        sink, sink_ep, sink_ctl = start_sink(out, env=env)
        vent, vent_ep, vent_ctl = start_ventilator(sink_ep, env=env)
        worker, worker_ctl = start_worker(vent_ep, sink_ep)
        # Warm-up: a few tasks end to end, then the baseline memory.
        vent.write_stdin(lines_of(range(1, 6)))
        wait_metric(sink_ctl, "results_stored", lambda v: v == 5, "warm-up stored")
        rss = {"vent": rss_kib(vent.pid), "sink": rss_kib(sink.pid)}

        vs = flood(peer, vent_ep, vent_ctl, vent, "the ventilator")
        ss = flood(peer, sink_ep, sink_ctl, sink, "the sink")
        send_oversized(peer, vent_ep)
        send_oversized(peer, sink_ep)
        kept = half_open(vent_ep) + half_open(sink_ep)

        grown = {"vent": rss_kib(vent.pid) - rss["vent"], "sink": rss_kib(sink.pid) - rss["sink"]}
        assert all(g < 10 * 1024 for g in grown.values()), (grown, rss)
        # Reasons a reader can tell apart; the wrong socket is no reason here.
        for stats in (vs, ss):
            reasons = stats["counters"]["input_dropped"]["reason"]
            assert reasons["command"] > 0 and reasons["frames"] > 0, reasons
        # Logged, but at most once a second per device: never a line per message.
        for process in (vent, sink):
            lines = [x for x in process.stderr_lines() if "ZKIT-PIPE-BADFRAME" in x]
            assert 1 <= len(lines) < 200, len(lines)

        # Valid work still flows end to end, with the half-open connections up.
        vent.write_stdin(lines_of(range(6, 11)))
        wait_metric(sink_ctl, "results_stored", lambda v: v == 10, "stored after the flood")
        vs = zkit_stats(vent_ctl)
        assert metric(vs, "tasks_acked") >= 5 and metric(vs, "workers") == 1, vs
        assert dropped(zkit_stats(worker_ctl)) == 0
        assert finish(vent, sink, range(1, 11)) == squares_in(out)
        for s in kept:
            s.close()


def test_flood_fast_sink():
    """Fast mode's sink is a PULL: the same flood, then a fast batch."""
    with Workdir() as wd, ZmqPeer() as peer:
        out = wd.file("out")
        sink, sink_ep, sink_ctl = start_sink(out, "--fast")
        flood(peer, sink_ep, sink_ctl, sink, "the fast sink", kind=zmq.PUSH)
        vent = ZkitProcess(["ventilator", "--fast", "--bind", ANY, "--sink", sink_ep,
                            "--control", ANY], stdin=lines_of(range(1, 11)))
        vent_ep = vent.wait_bound(RUN_TIMEOUT)
        start_worker(vent_ep, sink_ep, "--fast")
        assert vent.wait(RUN_TIMEOUT) == 0, vent.stderr()
        assert sink.wait(RUN_TIMEOUT) == 0, sink.stderr()
        assert squares_in(out) == [n * n for n in range(1, 11)]


# ---- (c) CURVE ----------------------------------------------------------------------------


def test_curve_end_to_end_and_strangers_refused():
    n = 10
    with Workdir() as wd, ZmqPeer() as peer:
        keys, allow = wd.file("keys"), wd.file("allow")
        os.mkdir(keys)
        os.mkdir(allow)
        keygen(keys, "server", "worker", "admin", "stranger")
        server_pub, server_sec, worker_pub, worker_sec, admin_pub, admin_sec, _, stranger_sec = [
            os.path.join(keys, name + tail)
            for name in ("server", "worker", "admin", "stranger") for tail in ("", "_secret")]
        # The ventilator connects to the sink with the servers' key pair.
        for pub in (server_pub, worker_pub, admin_pub):
            shutil.copy(pub, allow)
        admin = ["--curve-secret", admin_sec, "--curve-server", server_pub]
        server = ["--curve-secret", server_sec, "--curve-allow", allow]

        out = wd.file("out")
        sink, sink_ep, sink_ctl = start_sink(out, *server)
        vent, vent_ep, vent_ctl = start_ventilator(sink_ep, *server, "--curve-server", server_pub)
        worker, worker_ctl = start_worker(vent_ep, sink_ep, "--curve-secret", worker_sec,
                                          "--curve-server", server_pub)
        stranger, stranger_ctl = start_worker(vent_ep, sink_ep, "--curve-secret", stranger_sec,
                                              "--curve-server", server_pub)
        # Plaintext peers: they speak the protocol, but no handshake completes.
        plain_vent = peer.socket(zmq.DEALER)
        plain_vent.connect(vent_ep)
        plain_vent.send_multipart([b"READY", b"1"])
        plain_sink = peer.socket(zmq.DEALER)
        plain_sink.connect(sink_ep)
        plain_sink.send_multipart([b"BATCH", b"intruder", b"5"])

        wait_metric(vent_ctl, "workers", lambda v: v == 1, "the allowed worker registered",
                    *admin)
        vent.write_stdin(lines_of(range(1, n + 1)))
        wait_metric(sink_ctl, "results_stored", lambda v: v == n, "results stored", *admin)
        vs = zkit_stats(vent_ctl, *admin)
        ss = zkit_stats(sink_ctl, *admin)
        # Only the allowed worker: one peer, nothing from the others at all.
        assert metric(vs, "workers") == 1 and len(vs["peers"]) == 1, vs["peers"]
        assert dropped(vs) == 0 and dropped(ss) == 0
        assert metric(ss, "batches") == 1, ss  # no "intruder" batch
        assert metric(zkit_stats(worker_ctl), "tasks") == n
        st = zkit_stats(stranger_ctl)
        assert metric(st, "tasks") == 0 and metric(st, "acks") == 0, st
        # The control endpoints of the servers are CURVE too: no key, no answer.
        rc, _, _ = run_zkit(["stats", vent_ctl, "--timeout", "500"], timeout=RUN_TIMEOUT)
        assert rc != 0
        assert not plain_vent.poll(0, zmq.POLLIN) and not plain_sink.poll(0, zmq.POLLIN)

        assert finish(vent, sink, range(1, n + 1)) == squares_in(out)
        assert not plain_vent.poll(0, zmq.POLLIN) and not plain_sink.poll(0, zmq.POLLIN)


# ---- (d) PAUSE and RESUME ---------------------------------------------------------------


def test_pause_resume():
    with Workdir() as wd, ZmqPeer() as peer:
        out = wd.file("out")
        sink, sink_ep, sink_ctl = start_sink(out)
        vent, vent_ep, vent_ctl = start_ventilator(sink_ep)
        worker, worker_ctl = start_worker(vent_ep, sink_ep)
        wait_metric(vent_ctl, "workers", lambda v: v == 1, "worker registered")

        # The sink has no PAUSE.
        assert control(peer, sink_ctl, "PAUSE") == "ERROR not supported"

        # Ventilator paused: tasks are taken in and stay queued.
        assert control(peer, vent_ctl, "PAUSE") == "OK paused"
        assert metric(zkit_stats(vent_ctl), "paused") == 1
        vent.write_stdin(lines_of(range(1, 6)))
        wait_metric(vent_ctl, "tasks_queued", lambda v: v == 5, "tasks queued while paused")
        # Several loop turns later (the worker heard heartbeats meanwhile),
        # still nothing handed out.
        beats = metric(zkit_stats(worker_ctl), "heartbeats_received")
        wait_metric(worker_ctl, "heartbeats_received", lambda v: v >= beats + 3,
                    "heartbeats while paused")
        vs = zkit_stats(vent_ctl)
        assert metric(vs, "task_attempts") == 0 and metric(vs, "tasks_queued") == 5, vs
        assert metric(zkit_stats(worker_ctl), "tasks") == 0
        assert control(peer, vent_ctl, "RESUME") == "OK resumed"
        wait_metric(sink_ctl, "results_stored", lambda v: v == 5, "stored after RESUME")
        wait_metric(vent_ctl, "tasks_acked", lambda v: v == 5, "retired after RESUME")

        # Worker paused: it leaves the ventilator, which keeps the new tasks.
        assert control(peer, worker_ctl, "PAUSE") == "OK paused"
        assert control(peer, worker_ctl, "PAUSE") == "OK paused"  # no change, same answer
        wait_metric(vent_ctl, "workers", lambda v: v == 0, "paused worker gone")
        ws = zkit_stats(worker_ctl)
        assert metric(ws, "paused") == 1 and metric(ws, "connected") == 0, ws
        vent.write_stdin(lines_of(range(6, 11)))
        wait_metric(vent_ctl, "tasks_queued", lambda v: v == 5, "queued, no worker")
        assert metric(zkit_stats(worker_ctl), "tasks") == 5
        assert control(peer, worker_ctl, "RESUME") == "OK resumed"
        wait_metric(sink_ctl, "results_stored", lambda v: v == 10, "stored after worker RESUME")
        ws = zkit_stats(worker_ctl)
        assert metric(ws, "paused") == 0 and metric(ws, "tasks") == 10, ws
        assert metric(ws, "reconnects") == 0  # a pause is not a presumed death

        assert finish(vent, sink, range(1, 11)) == squares_in(out)


def test_control_endpoint_help_and_usage():
    for cmd in ("ventilator", "worker", "sink"):
        rc, out, _ = run_zkit([cmd, "--help"])
        assert rc == 0 and b"--control EP" in out and b"--curve-allow" in out, out
    # A bound socket with a secret needs --curve-allow: refused at start.
    with Workdir() as wd:
        keys = wd.file("keys")
        os.mkdir(keys)
        keygen(keys, "server")
        sec = os.path.join(keys, "server_secret")
        rc, _, err = run_zkit(["sink", "--bind", ANY, "--output", wd.file("o"),
                               "--curve-secret", sec])
        assert rc == 1 and "cannot start" in err, (rc, err)


if __name__ == "__main__":
    sys.exit(run_tests([
        test_stats_match_traffic,
        test_traffic_exact_sink,
        test_traffic_exact_ventilator,
        test_traffic_exact_worker,
        test_flood_ventilator_and_sink,
        test_flood_fast_sink,
        test_curve_end_to_end_and_strangers_refused,
        test_pause_resume,
        test_control_endpoint_help_and_usage,
    ], deadline=240.0))
