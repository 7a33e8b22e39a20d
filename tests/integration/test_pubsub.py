#!/usr/bin/python3
# test_pubsub.py: process-level tests of zkit's PUB/SUB fan-out: `zkit
# forwarder`, `zkit publisher` and `zkit subscriber`, with python3-zmq and
# python3-msgpack as the independent peer.
#
#   ZKIT_BIN=build/bin/zkit /usr/bin/python3 tests/integration/test_pubsub.py [NAME...]
#
# Every wait has a deadline and every test a hard one; processes synchronise
# on events (a 'bound' line, a subscription line, a stats line, messages
# received, an exit), never on fixed sleeps.
#
# This Source Code Form is subject to the terms of the Mozilla Public
# License, v. 2.0. If a copy of the MPL was not distributed with this
# file, You can obtain one at http://mozilla.org/MPL/2.0/.

import os
import re
import signal
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import zmq  # noqa: E402

from zkit_testlib import (  # noqa: E402
    Deadline,
    ZkitProcess,
    ZmqPeer,
    envelope,
    run_tests,
    run_zkit,
    unpack_envelope,
    wait_for,
    zkit_bin,
)

ANY = "tcp://127.0.0.1:*"
# --probe for a subscriber whose test asserts how each message arrived (live,
# no gap): far beyond any test. A PROBE is answered over the replay channel,
# which skips the forwarders and can overtake the feed; with the 1 s default,
# a machine loaded enough to hold the feed up for a second turns messages
# still on their way into a gap, fetched and delivered "recovered" (their
# live copies dropped as duplicates). Subscribers that need the probe (a tail
# to find) keep it and assert what holds on either path.
NO_PROBE = ["--probe", 600000]
# For the subscriber that must keep up with a feed while another is stalled:
# no limit on its own queue. Its application thread prints every message to
# a pipe this script drains; on a loaded machine that can stall it for a
# while, its 1000-message SUB queue fills, and the forwarder rightly drops
# for it too. Unbounded, its queue is drained by libzmq's I/O thread alone,
# so it is as fast as the tests say it is, whatever the load.
FAST = ["--hwm", 0] + NO_PROBE
STATS_RE = re.compile(r"^zkit (forwarder|subscriber|publisher): stats (.*)$")
EVENT_RE = re.compile(r"^zkit subscriber: (gap|lost|recovered|restart) (.*)$")


# ---- helpers -----------------------------------------------------------------------


def parse_kv(text):
    """'a=1 b=x' -> {'a': 1, 'b': 'x'} (numbers as int)."""
    out = {}
    for item in text.split():
        key, _, value = item.partition("=")
        out[key] = int(value) if value.isdigit() else value
    return out


def stats_lines(proc):
    return [parse_kv(m.group(2)) for m in (STATS_RE.match(l) for l in proc.stderr_lines()) if m]


def last_stats(proc):
    found = stats_lines(proc)
    assert found, "no stats line\n" + proc.stderr()
    return found[-1]


def fresh_stats(proc, timeout=10.0):
    """Asks a forwarder for its counters (SIGUSR1) and returns the line that
    answers it."""
    seen = len(stats_lines(proc))
    proc.send_signal(signal.SIGUSR1)
    proc.wait_stderr(r"^zkit forwarder: stats ", timeout=timeout, index=seen)
    return stats_lines(proc)[seen]


def events(proc, kind=None):
    out = []
    for line in proc.stderr_lines():
        m = EVENT_RE.match(line)
        if m and (kind is None or m.group(1) == kind):
            ev = parse_kv(m.group(2))
            ev["kind"] = m.group(1)
            out.append(ev)
    return out


def merged(ranges):
    """Sorted, merged list of (from, to) ranges."""
    out = []
    for lo, hi in sorted(ranges):
        if out and lo <= out[-1][1] + 1:
            out[-1] = (out[-1][0], max(out[-1][1], hi))
        else:
            out.append((lo, hi))
    return out


def seq_lines(proc):
    """stdout of `zkit subscriber --format seq`: [(src, seq, kind)]."""
    rows = []
    for line in proc.stdout().decode().splitlines():
        src, seq, kind = line.split(" ")
        rows.append((src, int(seq), kind))
    return rows


def s_saved_next(path):
    """The next seq saved in a one-source state file, or None."""
    try:
        with open(path) as f:
            fields = f.read().split("\t")
        return int(fields[2]) if len(fields) >= 4 else None
    except (OSError, ValueError):
        return None


def forwarder(*extra):
    fwd = ZkitProcess(["forwarder", "--frontend", ANY, "--backend", ANY] + list(extra))
    front = fwd.wait_bound(index=0)
    back = fwd.wait_bound(index=1)
    return fwd, front, back


# ---- acceptance 1: an independent peer through the forwarder, no-drop -------------------


def test_independent_peer_20000_through_nodrop_forwarder():
    """A python XPUB publishes 20 000 envelopes (1 KiB bodies) through `zkit
    forwarder --policy nodrop` to a python SUB behind a small queue. The SUB
    stops reading after 1000 until the forwarder reports that it had to wait
    (the no-drop path, not luck); then every envelope arrives, seqs
    contiguous, ids unique, and the forwarder's counters (asked with SIGUSR1)
    agree with what was sent, message for message and byte for byte."""
    total = 20000
    fwd, front, back = forwarder("--policy", "nodrop", "--hwm", "100")
    epoch = int(time.time() * 1e6)
    sent = {"messages": 0, "bytes": 0, "error": None}

    def publish():
        try:
            ctx = zmq.Context.instance()
            pub = ctx.socket(zmq.XPUB)
            pub.setsockopt(zmq.LINGER, 5000)
            pub.setsockopt(zmq.XPUB_NODROP, 1)
            pub.setsockopt(zmq.SNDHWM, 100)
            pub.setsockopt(zmq.SNDTIMEO, 30000)
            pub.connect(front)
            # The subscription reaching us is the signal to start: the
            # subscriber is there, nothing is lost to the slow-joiner race.
            if not pub.poll(10000, zmq.POLLIN):
                raise AssertionError("no subscription reached the publisher")
            assert pub.recv() == b"\x01ticks."
            for seq in range(1, total + 1):
                env = envelope((b"price %d " % seq).ljust(1024, b"."), seq=seq,
                               meta={"src": "py-feed", "hdr": {"zkit-epoch": epoch}})
                pub.send_multipart([b"ticks.ACME", env])
                sent["messages"] += 1
                sent["bytes"] += len(b"ticks.ACME") + len(env)
            pub.close()
        except Exception as exc:  # reported by the main thread
            sent["error"] = exc

    with ZmqPeer() as peer:
        sub = peer.socket(zmq.SUB, rcvhwm=100)
        sub.setsockopt(zmq.SUBSCRIBE, b"ticks.")
        sub.connect(back)
        thread = threading.Thread(target=publish, daemon=True)
        thread.start()
        seqs, ids = [], set()
        deadline = Deadline(90)
        while len(seqs) < total:
            assert not deadline.expired(), "received %d of %d" % (len(seqs), total)
            if not sub.poll(200, zmq.POLLIN):
                assert sent["error"] is None, sent["error"]
                continue
            topic, frame = sub.recv_multipart()
            assert topic == b"ticks.ACME"
            items = unpack_envelope(frame)
            seqs.append(items[2])
            ids.add(items[1])
            if len(seqs) == 1000:
                # A stalled reader: the forwarder must wait for it, not drop.
                wait_for(lambda: fresh_stats(fwd)["nodrop_waits"] >= 1, timeout=30,
                         what="the forwarder waiting for the stalled reader", interval=0.05)
        thread.join(30)
        assert sent["error"] is None, sent["error"]
        assert seqs == list(range(1, total + 1)), "seqs not contiguous"
        assert len(ids) == total
        assert sent["messages"] == total
        st = fresh_stats(fwd)
        assert st["msgs_in"] == total and st["msgs_out"] == total, st
        assert st["bytes_in"] == sent["bytes"] and st["bytes_out"] == sent["bytes"], (st, sent)
        assert st["drops_hwm"] == 0 and st["drops_shutdown"] == 0, st
        assert st["subscribe"] == 1 and st["nodrop_waits"] >= 1, st


# ---- acceptance 2: a stalled subscriber does not cost the others -----------------------


def test_stalled_subscriber_recovers_while_fast_one_loses_nothing():
    """Two subscribers on one forwarder (drop policy); one is stopped
    (SIGSTOP) before 20 000 messages of 1 KiB are published. The fast one
    receives every message live, with no gap. The forwarder counts the
    drops it made for the stalled one. Resumed (SIGCONT), the stalled one
    reports its gap and recovers all of it from the publisher's replay
    buffer: every seq exactly once, none lost."""
    total = 20000
    fwd, front, back = forwarder("--stats-interval", "50")
    fast = ZkitProcess(["subscriber", "--connect", back, "--subscribe", "tick",
                        "--format", "seq", "--count", total, "--timeout", 60000] + FAST)
    slow = ZkitProcess(["subscriber", "--connect", back, "--subscribe", "tick",
                        "--format", "seq", "--count", total, "--timeout", 90000])
    fwd.wait_stderr(r"stats .* subscribe=2 ")  # both are subscribed at the forwarder
    slow.send_signal(signal.SIGSTOP)
    pub = ZkitProcess(["publisher", "--connect", front, "--replay-bind", ANY,
                       "--topic", "tick", "--count", total, "--size", 1024, "--rate", 10000,
                       "--nodrop", "--wait-subscriber", "--hold"])
    try:
        assert fast.wait(60) == 0, fast.stderr()
        rows = seq_lines(fast)
        assert [r[1] for r in rows] == list(range(1, total + 1))
        assert all(r[2] == "live" for r in rows)
        fs = last_stats(fast)
        assert fs["gaps"] == 0 and fs["lost"] == 0 and fs["recovered"] == 0, fs
        st = fresh_stats(fwd)
        assert st["msgs_in"] == total and st["msgs_out"] == total, st
        assert st["drops_hwm"] >= 1, st  # the stalled one's queue overflowed
    finally:
        slow.send_signal(signal.SIGCONT)
    assert slow.wait(90) == 0, slow.stderr()
    rows = seq_lines(slow)
    assert sorted(r[1] for r in rows) == list(range(1, total + 1)), "not every seq exactly once"
    ss = last_stats(slow)
    assert ss["gaps"] >= 1 and ss["recovered"] >= 1 and ss["lost"] == 0, ss
    assert ss["recovered"] == ss["missing"], ss
    # Every seq delivered once. Its tail is found by a probe, which may also
    # fetch messages still queued for it live: those come twice and the
    # second copy is a duplicate, so received + recovered may exceed total
    # by the duplicates, never by more, and never fall short.
    assert ss["delivered"] == total, ss
    assert ss["received"] + ss["recovered"] - ss["duplicates"] <= total, ss
    assert ss["received"] + ss["recovered"] >= total, ss
    kinds = {r[2] for r in rows}
    assert "recovered" in kinds and "live" in kinds, kinds
    # each gap was reported before anything filled it, and recovered whole
    gaps = events(slow, "gap")
    assert gaps, slow.stderr()
    assert sum(e["to"] - e["from"] + 1 for e in gaps) == ss["missing"]
    assert sum(e["count"] for e in events(slow, "recovered")) == ss["recovered"]
    pub.send_signal(signal.SIGTERM)
    assert pub.wait(30) == 0
    ps = last_stats(pub)
    assert ps["replayed"] >= ss["recovered"], ps


# ---- acceptance 3: a killed subscriber catches up on restart --------------------------


def test_killed_subscriber_catches_up_and_reports_what_was_evicted():
    """A subscriber with a state file is killed (-9) after 500 messages. 3000
    more are published while it is down; the publisher's replay buffer holds
    the last 1000. Restarted with the same state file, it recovers 2501..3500,
    reports exactly 501..2500 as lost (evicted), then goes on live with the
    next 100. Run 1 + run 2 + lost = every seq, once."""
    capacity = 1000
    fwd, front, back = forwarder()
    state = tempfile.NamedTemporaryFile(prefix="zkit-sub-state-", delete=False)
    state.close()
    os.unlink(state.name)  # a fresh subscriber: no state yet
    pub = ZkitProcess(["publisher", "--connect", front, "--replay-bind", ANY, "--name", "feed",
                       "--topic", "px", "--stdin", "--replay-capacity", capacity],
                      stdin=True)
    try:
        run1 = ZkitProcess(["subscriber", "--connect", back, "--subscribe", "px",
                            "--format", "seq", "--state", state.name])
        pub.wait_stderr(r"subscription \+'px'")
        pub.write_stdin(b"".join(b"tick %d\n" % i for i in range(1, 501)))
        run1.wait_stdout_lines(500, timeout=30)
        # A message is printed, then its position saved: kill it once the
        # position is saved too (killed between the two, the message would
        # be delivered again after the restart: at-least-once).
        wait_for(lambda: s_saved_next(state.name) == 501, what="position 501 saved")
        run1.send_signal(signal.SIGKILL)
        run1.wait(10)
        got1 = [r[1] for r in seq_lines(run1)]
        assert got1 == list(range(1, 501)), got1[-5:]

        # it is gone when its subscription is: nothing published now reaches it
        pub.wait_stderr(r"subscription -'px'")
        pub.write_stdin(b"".join(b"tick %d\n" % i for i in range(501, 3501)) + b"#sync down\n")
        pub.wait_stderr(r"sync down last-seq=3500", timeout=30)

        # No silence probe: the resume's own PROBE (sent at start whatever
        # --probe says) is the path under test, and 3501..3600 must come live
        # for recovered to be exactly 1000.
        run2 = ZkitProcess(["subscriber", "--connect", back, "--subscribe", "px",
                            "--format", "seq", "--state", state.name,
                            "--count", 3100, "--timeout", 60000] + NO_PROBE)
        run2.wait_stderr(r"resume src=feed epoch=\d+ next=501")
        pub.wait_stderr(r"subscription \+'px'", index=1)
        # Publish on only once it has caught up: new messages would push more
        # of the missed ones out of the 1000-message buffer meanwhile (and
        # it would report exactly those lost too).
        run2.wait_stderr(r"recovered src=feed .* to=3500 ", timeout=30)
        pub.write_stdin(b"".join(b"tick %d\n" % i for i in range(3501, 3601)))
        rc = run2.wait(60)
        assert rc == 3, "exit %s (3: done with losses)\n%s" % (rc, run2.stderr())
        got2 = [r[1] for r in seq_lines(run2)]
        want = set(range(2501, 3601))
        assert sorted(got2) == sorted(want), (sorted(set(got2) - want)[:10],
                                              sorted(want - set(got2))[:10], run2.stderr())
        assert len(set(got2)) == len(got2)
        lost = events(run2, "lost")
        assert all(e["reason"] == "evicted" for e in lost), lost
        assert merged((e["from"], e["to"]) for e in lost) == [(501, 2500)], lost
        st = last_stats(run2)
        assert st["lost"] == 2000 and st["recovered"] == 1000, st
        covered = set(got1) | set(got2) | set(range(501, 2501))
        assert covered == set(range(1, 3601))
        # the state file moved on: a third run would resume after 3600
        assert s_saved_next(state.name) == 3601
    finally:
        pub.kill()
        if os.path.exists(state.name):
            os.unlink(state.name)


# ---- more: topology, tap, snapshot, policies -------------------------------------------


def test_chained_forwarders_with_tap():
    """A feed through two chained forwarders (the second's frontend connects
    to the first's backend), nodrop at every hop, reaches a zkit subscriber
    whole, live and in order, and a python PULL on the first forwarder's tap
    gets a copy of every message, frames unchanged."""
    total = 2000
    with ZmqPeer() as peer:
        tap = peer.socket(zmq.PULL)
        tap_ep = peer.bind_random(tap)
        # nodrop at every hop: the chain delivers everything live, in order
        fwd1, front1, back1 = forwarder("--tap", tap_ep, "--tap-connect", "--tap-type", "push",
                                        "--policy", "nodrop")
        fwd2 = ZkitProcess(["forwarder", "--frontend-connect", back1, "--backend", ANY,
                            "--policy", "nodrop"])
        back2 = fwd2.wait_bound(index=0)
        sub = ZkitProcess(["subscriber", "--connect", back2, "--format", "seq",
                           "--count", total, "--timeout", 30000] + NO_PROBE)
        pub = ZkitProcess(["publisher", "--connect", front1, "--replay-bind", ANY,
                           "--topic", "a.b", "--count", total, "--wait-subscriber",
                           "--nodrop", "--hold"])
        copies = []  # drained while the feed runs, as a capture tool would
        deadline = Deadline(30)
        while len(copies) < total and not deadline.expired():
            if tap.poll(100, zmq.POLLIN):
                copies.append(tap.recv_multipart())
        assert len(copies) == total
        assert sub.wait(30) == 0, sub.stderr()
        assert [r[1] for r in seq_lines(sub)] == list(range(1, total + 1))
        assert last_stats(sub)["gaps"] == 0
        assert all(c[0] == b"a.b" for c in copies)
        assert [unpack_envelope(c[1])[2] for c in copies] == list(range(1, total + 1))
        st1, st2 = fresh_stats(fwd1), fresh_stats(fwd2)
        assert st1["tap_msgs"] == total and st1["tap_drops"] == 0, st1
        assert st1["msgs_out"] == total and st2["msgs_out"] == total, (st1, st2)


def test_snapshot_gives_last_values_to_the_new_subscriber_only():
    """A publisher with a last-value cache: a subscriber started later with
    --snapshot gets the current value of each topic under its prefix (and
    nothing older), then the live feed without a gap; one that was already
    there gets nothing twice."""
    fwd, front, back = forwarder("--stats-interval", "50")
    pub = ZkitProcess(["publisher", "--connect", front, "--replay-bind", ANY, "--name", "lvc",
                       "--topic", "px.A", "--stdin", "--lvc"], stdin=True)
    replay = pub.wait_stderr(r"^zkit publisher: replay (\S+)$").group(1)
    early = ZkitProcess(["subscriber", "--connect", back, "--subscribe", "px.", "--format", "seq",
                         "--count", 4, "--timeout", 20000])
    pub.wait_stderr(r"subscription \+'px.'")
    pub.write_stdin(b"a1\n#topic px.B\nb1\n#topic px.A\na2\n#topic other\no1\n#sync s\n")
    pub.wait_stderr(r"sync s last-seq=4")
    early.wait_stdout_lines(3)
    late = ZkitProcess(["subscriber", "--connect", back, "--subscribe", "px.", "--format",
                        "json", "--snapshot", "--replay", replay, "--count", 1,
                        "--timeout", 20000] + NO_PROBE)
    late.wait_stdout_lines(2)
    # the publisher already has 'px.' from the forwarder: the second
    # subscription shows at the forwarder, which passes it on at once
    fwd.wait_stderr(r"stats .* subscribe=2 ")
    pub.write_stdin(b"#topic px.C\nc1\n")
    assert late.wait(20) == 0, late.stderr()
    import json
    rows = [json.loads(l) for l in late.stdout().decode().splitlines()]
    snap = sorted((r["topic"], r["body"], r["seq"]) for r in rows if r["kind"] == "snapshot")
    assert snap == [("px.A", "a2", 3), ("px.B", "b1", 2)], rows
    assert [(r["topic"], r["seq"], r["kind"]) for r in rows if r["kind"] != "snapshot"] == \
        [("px.C", 5, "live")], rows
    st = last_stats(late)
    assert st["gaps"] == 0 and st["lost"] == 0, st
    assert early.wait(20) == 0, early.stderr()
    assert [r[1] for r in seq_lines(early)] == [1, 2, 3, 5]  # 4 is not its topic
    es = last_stats(early)
    assert es["snapshot"] == 0 and es["filtered"] == 1 and es["lost"] == 0, es


def test_disconnect_policy_drops_the_laggard_which_recovers():
    """With --policy disconnect a subscriber that stops reading is cut off
    once its connection stays full; resumed, it reconnects and recovers what
    it missed from the replay buffer. The other subscriber is untouched."""
    total = 20000
    # Room for 5,000 queued messages per subscriber (half a second of the
    # feed): the stopped one still fills it and is cut off, while the fast
    # one rides out a starved CPU on a loaded machine without a drop.
    fwd, front, back = forwarder("--policy", "disconnect", "--laggard-ms", "300", "--hwm",
                                 "5000", "--stats-interval", "50")
    fast = ZkitProcess(["subscriber", "--connect", back, "--format", "seq", "--count", total,
                        "--timeout", 60000] + FAST)
    slow = ZkitProcess(["subscriber", "--connect", back, "--format", "seq", "--count", total,
                        "--timeout", 90000])
    fwd.wait_stderr(r"stats .* subscribe=2 ")
    slow.send_signal(signal.SIGSTOP)
    pub = ZkitProcess(["publisher", "--connect", front, "--replay-bind", ANY, "--count", total,
                       "--size", 1024, "--rate", 10000, "--nodrop", "--wait-subscriber",
                       "--hold"])
    try:
        assert fast.wait(60) == 0, fast.stderr()
        fwd.wait_stderr(r"stats .* laggards=1 ", timeout=20)
        assert last_stats(fast)["gaps"] == 0
    finally:
        slow.send_signal(signal.SIGCONT)
    assert slow.wait(90) == 0, slow.stderr()
    assert sorted(r[1] for r in seq_lines(slow)) == list(range(1, total + 1))
    ss = last_stats(slow)
    assert ss["lost"] == 0 and ss["recovered"] >= 1, ss
    pub.kill()


def test_fanout_example():
    """examples/fanout.c: a feed through two chained forwarders to three
    subscribers, one slow. It checks its own result (exit 0): the slow one
    recovered every tick it missed, the fast ones never saw a gap."""
    bin_dir = os.environ.get("ZKIT_BIN_DIR") or os.path.dirname(zkit_bin())
    path = os.path.join(bin_dir, "fanout")
    if not os.access(path, os.X_OK):
        print("    (no %s: examples not built)" % path)
        return
    with ZkitProcess(["5000"], program=path) as example:
        rc = example.wait(60)
        out = example.stdout().decode()
        assert rc == 0, out + example.stderr()
        assert "the fast ones never saw a gap" in out, out


def test_usage_errors():
    """Bad command lines exit 2 with a one-line reason."""
    for args, text in [
        (["forwarder", "--backend", ANY], "--frontend"),
        (["forwarder", "--frontend", ANY, "--backend", ANY, "--policy", "maybe"], "--policy"),
        (["publisher", "--count", "1"], "--bind or --connect"),
        (["publisher", "--bind", ANY], "--count or --stdin"),
        (["publisher", "--bind", ANY, "--count", "1", "--lvc"], "--lvc needs --replay-bind"),
        (["subscriber", "--format", "json"], "--connect or --bind"),
        (["subscriber", "--connect", ANY, "--format", "xml"], "--format"),
    ]:
        rc, out, err = run_zkit(args)
        assert rc == 2, (args, rc, err)
        assert text in err, (args, err)
    rc, out, err = run_zkit(["forwarder", "--help"])
    assert rc == 0 and b"--policy" in out


if __name__ == "__main__":
    sys.exit(run_tests([
        test_independent_peer_20000_through_nodrop_forwarder,
        test_stalled_subscriber_recovers_while_fast_one_loses_nothing,
        test_killed_subscriber_catches_up_and_reports_what_was_evicted,
        test_chained_forwarders_with_tap,
        test_snapshot_gives_last_values_to_the_new_subscriber_only,
        test_disconnect_policy_drops_the_laggard_which_recovers,
        test_fanout_example,
        test_usage_errors,
    ], deadline=180))
