#!/usr/bin/python3
# test_faults_multihop.py: the faults of test_multihost.py without root: each
# hop of a chain of zkit devices passes through the faultproxy helper on
# loopback, which stalls it (pause: like a pulled cable, connections stay
# open and carry nothing), closes it (drop) or resets it (reset: TCP RST),
# mid-stream.
#
#   ZKIT_BIN=build/bin/zkit ZKIT_BIN_DIR=build/bin /usr/bin/python3 \
#       tests/integration/test_faults_multihop.py [NAME...]
#
# What the tests prove:
#   - store and forward: a reliable producer -> spool device -> [proxy] ->
#     reliable consumer. The consumer's hop is stalled until the device gives
#     the consumer up, then closed, then reset, each while messages flow: the
#     producer gets every message confirmed, the consumer ends with every one
#     of them (de-duplicated by id: the protocol is at-least-once), and the
#     spool ends with nothing unacknowledged;
#   - pub/sub: publisher -> [proxy 1] -> forwarder -> [proxy 2] -> subscriber,
#     and the subscriber's replay side channel -> [proxy 3] -> publisher. The
#     subscriber's hop stalls until the forwarder drops, while the replay hop
#     is stalled too and then reset with the subscriber's FETCH in it; then
#     the feed's first hop is reset and the subscriber's hop closed, mid
#     stream. The subscriber reports the gaps, fetches them again through the
#     replay hop (retrying the lost FETCH) and ends with every seq exactly
#     once, bodies intact, nothing reported lost.
#
# This Source Code Form is subject to the terms of the Mozilla Public
# License, v. 2.0. If a copy of the MPL was not distributed with this
# file, You can obtain one at http://mozilla.org/MPL/2.0/.

import os
import re
import shutil
import signal
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from multihop_lib import (check_feed, json_lines, lines_for, stall_consumer,  # noqa: E402
                          subscriber_stats, wait_consumer_complete)
from zkit_testlib import (SLOW, ZkitProcess, bin_program, run_tests, wait_for,  # noqa: E402
                          zkit_cat)

BOUND_PORT_RE = re.compile(r":(\d+)$")


class FaultProxy:
    """faultproxy in front of 127.0.0.1:target_port; command() waits for its
    answer ("ok COMMAND"), so the fault is in effect when it returns."""

    def __init__(self, target_port):
        self.proc = ZkitProcess(["127.0.0.1:%d" % target_port], stdin=True,
                                program=bin_program("faultproxy"))
        self.lines = 1
        first = self.proc.wait_stdout_lines(1, 10 * SLOW)[0].decode()
        m = re.fullmatch(r"listening (\d+)", first)
        assert m, first
        self.port = int(m.group(1))
        self.ep = "tcp://127.0.0.1:%d" % self.port

    def command(self, text):
        self.proc.write_stdin(text.encode() + b"\n")
        self.lines += 1
        answer = self.proc.wait_stdout_lines(self.lines, 10 * SLOW)[-1].decode()
        assert answer == "ok " + text, answer
        return answer


def port_of(endpoint):
    return int(BOUND_PORT_RE.search(endpoint).group(1))


# ---- store and forward ------------------------------------------------------------------


def test_spool_consumer_hop_faults_lose_nothing_confirmed():
    step = 1000
    total = 4 * step
    d = tempfile.mkdtemp(prefix="zkit-mhf-spool-")
    try:
        # A short heartbeat: a stalled consumer is given up after 3 x 200 ms.
        dev = ZkitProcess(["spool", "--in", "tcp://127.0.0.1:*", "--out", "tcp://127.0.0.1:*",
                           "--dir", d, "--heartbeat", "200", "-v"])
        in_ep = dev.wait_bound(10 * SLOW, 0)
        out_ep = dev.wait_bound(10 * SLOW, 1)
        proxy = FaultProxy(port_of(out_ep))
        prod = zkit_cat("--push", "--reliable", "--connect", in_ep, "--file", "-",
                        "--timeout", str(int(60000 * SLOW)), stdin=True)
        cons = zkit_cat("--pull", "--reliable", "--connect", proxy.ep, "--window", "50")
        ready = r"ZKIT-SPOOL-DEVICE-CONSUMER .*a consumer is ready"

        # Stall: the device hears nothing, gives the consumer up, and hands
        # what it held to the queue again; the producer goes on meanwhile.
        stall_consumer(dev, prod, cons, step, lambda: proxy.command("pause"),
                       lambda: proxy.command("resume"))
        dev.wait_stderr(ready, 30 * SLOW, 1)  # it came back
        cons.wait_stdout_lines(step + step // 2, 30 * SLOW)

        # Closed, then reset, each with messages in flight: the consumer's
        # DEALER reconnects through the proxy and is registered again.
        prod.write_stdin(lines_for(2 * step + 1, 3 * step, 200))
        cons.wait_stdout_lines(2 * step + step // 4, 30 * SLOW)
        proxy.command("drop")
        dev.wait_stderr(ready, 30 * SLOW, 2)
        prod.write_stdin(lines_for(3 * step + 1, total, 200), close=True)
        cons.wait_stdout_lines(3 * step + step // 4, 30 * SLOW)
        proxy.command("reset")
        dev.wait_stderr(ready, 30 * SLOW, 3)
        assert prod.wait(60 * SLOW) == 0, prod.stderr()  # every message confirmed

        dups = wait_consumer_complete(cons, d, total)
        print("   spool through pause, drop, reset: %d messages, %d duplicates" % (total, dups))
    finally:
        shutil.rmtree(d, ignore_errors=True)


# ---- pub/sub over three hops ----------------------------------------------------------------


class Feed:
    """The publisher's input: numbered 2 KiB bodies, and '#sync' to learn
    the last seq handed to the XPUB (exact: this publisher is lossy, never
    blocks)."""

    def __init__(self, pub):
        self.pub = pub
        self.sent = 0
        self.syncs = 0

    def publish(self, count):
        self.pub.write_stdin(lines_for(self.sent + 1, self.sent + count, 2048))
        self.sent += count

    def sync(self):
        self.syncs += 1
        self.pub.write_stdin(b"#sync s%d\n" % self.syncs)
        m = self.pub.wait_stderr(r"^zkit publisher: sync s%d last-seq=(\d+)$" % self.syncs,
                                 30 * SLOW)
        assert int(m.group(1)) == self.sent, (m.group(0), self.sent)
        return self.sent


FWD_STATS_RE = r"^zkit forwarder: stats msgs_in=(\d+) .*\bdrops_hwm=(\d+)"


def test_feed_hop_faults_recovered_through_replay_hop():
    pub = ZkitProcess(["publisher", "--bind", "tcp://127.0.0.1:*", "--stdin", "--name", "feed",
                       "--topic", "t", "--replay-bind", "tcp://127.0.0.1:*", "--hold",
                       "--hwm", "100000"], stdin=True)
    pub_ep = pub.wait_bound(10 * SLOW)
    replay_ep = pub.wait_stderr(r"^zkit publisher: replay (\S+)$", 10 * SLOW).group(1)
    hop1 = FaultProxy(port_of(pub_ep))
    fwd = ZkitProcess(["forwarder", "--frontend-connect", hop1.ep, "--backend",
                       "tcp://127.0.0.1:*", "--hwm", "10", "--stats-interval", "50"])
    hop2 = FaultProxy(port_of(fwd.wait_bound(10 * SLOW)))
    hop3 = FaultProxy(port_of(replay_ep))
    # The replay endpoint the publisher announces is its own; this subscriber
    # is told to use the one behind proxy 3 instead.
    sub = ZkitProcess(["subscriber", "--connect", hop2.ep, "--no-learn-replay",
                       "--replay", hop3.ep, "--hwm", "10", "--fetch-timeout", "1000"])
    pub.wait_stderr(r"^zkit publisher: subscription \+''$", 20 * SLOW)
    feed = Feed(pub)

    feed.publish(500)
    sub.wait_stdout_lines(500, 30 * SLOW)

    # The subscriber's hop stalls (and its replay hop with it): publish until
    # the forwarder, having read everything, had to drop for it.
    hop3.command("pause")
    hop2.command("pause")
    for _ in range(20):
        feed.publish(1000)
        last = feed.sync()
        m = fwd.wait_stderr_where(FWD_STATS_RE, lambda m: int(m.group(1)) >= last, 30 * SLOW)
        if int(m.group(2)) > 0:
            break
    else:
        raise AssertionError("the forwarder never dropped: %s" % m.group(0))
    hop2.command("resume")
    feed.publish(200)
    sub.wait_stderr(r"^zkit subscriber: gap src=feed ", 30 * SLOW)
    # Its FETCH sits in the stalled replay hop: reset it, so the FETCH is
    # lost and only the retry can recover the gap.
    hop3.command("reset")
    hop3.command("resume")

    # The feed's first hop is reset, then the subscriber's hop is closed,
    # each mid-stream: what they carried, and what was published while the
    # forwarder and the subscriber reconnected, is fetched.
    feed.publish(500)
    hop1.command("reset")
    feed.publish(500)
    feed.sync()
    hop2.command("drop")
    feed.publish(500)
    total = feed.sync()

    def all_there():
        return len({d["seq"] for d in json_lines(sub)}) >= total

    wait_for(all_there, 60 * SLOW, "every seq at the subscriber", 0.1)
    sub.send_signal(signal.SIGINT)
    rc = sub.wait(30 * SLOW)
    assert rc == 0, "subscriber exit %s (3: lost some)\n%s" % (rc, sub.stderr()[-3000:])
    kinds = check_feed(json_lines(sub), total, "feed", in_order=False)
    stats = subscriber_stats(sub)
    assert kinds["recovered"] > 0 and stats["lost"] == 0 and stats["gaps"] > 0, (kinds, stats)
    print("   feed through pause, reset, drop: %s, stats %s" % (
        dict(kinds), {k: stats[k] for k in ("gaps", "fetches", "fetch_timeouts", "duplicates")}))


def main():
    return run_tests([
        test_spool_consumer_hop_faults_lose_nothing_confirmed,
        test_feed_hop_faults_recovered_through_replay_hop,
    ], deadline=120.0 * SLOW)


if __name__ == "__main__":
    sys.exit(main())
