# multihop_lib.py: what the multi-hop fault suites share (test_multihost.py,
# across network namespaces, and test_faults_multihop.py, through the
# faultproxy helper on loopback): message bodies that say which message they
# are, the checks of what a subscriber or a reliable consumer printed, and
# the spool scenario both run (a consumer cut off mid-stream, then back).
#
# This Source Code Form is subject to the terms of the Mozilla Public
# License, v. 2.0. If a copy of the MPL was not distributed with this
# file, You can obtain one at http://mozilla.org/MPL/2.0/.

import collections
import json
import os
import re
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from zkit_testlib import SLOW, run_zkit, wait_for  # noqa: E402


def body_for(n, size=0):
    """The body (bytes, no newline) of message n, padded with a pattern that
    depends on n up to size bytes, so a body can be checked byte for byte."""
    head = b"m %d " % n
    pad = bytes(((n * 131 + k * 7) % 26) + 97 for k in range(max(0, size - len(head))))
    return head + pad


def lines_for(first, last, size=0):
    """Bodies first..last as input lines for `zkit publisher --stdin` or
    `zkit cat --file -`."""
    return b"".join(body_for(n, size) + b"\n" for n in range(first, last + 1))


def body_number(body):
    """The n of a body made by body_for, checked against what body_for makes."""
    if isinstance(body, str):
        body = body.encode()
    n = int(body.split()[1])
    assert body == body_for(n, len(body)), "corrupt body for %d: %r" % (n, body[:60])
    return n


def json_lines(proc):
    """The JSON documents a zkit process printed, one per complete line."""
    docs = []
    for line in proc.stdout().split(b"\n")[:-1]:
        if line.strip():
            docs.append(json.loads(line))
    return docs


def check_feed(docs, count, src, in_order):
    """A subscriber's JSON output (--format json) holds every seq 1..count of
    src exactly once, each with the body published as message seq; with
    in_order, also in seq order and all live. Returns a Counter of kinds."""
    seqs = []
    for d in docs:
        assert d["src"] == src, d
        assert body_number(d["body"]) == d["seq"], d
        seqs.append(d["seq"])
    dup = [s for s, k in collections.Counter(seqs).items() if k > 1]
    assert not dup, "seqs delivered twice: %s" % dup[:20]
    missing = sorted(set(range(1, count + 1)) - set(seqs))
    assert not missing, "%d seqs missing, first %s" % (len(missing), missing[:20])
    assert len(seqs) == count, (len(seqs), count)
    kinds = collections.Counter(d["kind"] for d in docs)
    if in_order:
        assert seqs == list(range(1, count + 1)), "not in order"
        assert kinds == {"live": count}, kinds
    return kinds


def subscriber_stats(proc):
    """The k=v counters of the 'zkit subscriber: stats' line at exit."""
    m = re.search(r"^zkit subscriber: stats (.*)$", proc.stderr(), re.M)
    assert m, proc.stderr()
    return {k: int(v) for k, v in (w.split("=", 1) for w in m.group(1).split())}


def consumer_numbers(docs):
    """What a reliable consumer printed (zkit cat --pull --reliable, json),
    de-duplicated by envelope id (delivery is at-least-once): returns
    ({n: id}, duplicates). Fails when one id carries two bodies, or two ids
    the same body (the producer's message was stored twice)."""
    by_id, by_n, dups = {}, {}, 0
    for d in docs:
        n = body_number(d["body"])
        if d["id"] in by_id:
            assert by_id[d["id"]] == n, "id %s with two bodies" % d["id"]
            dups += 1
            continue
        by_id[d["id"]] = n
        assert n not in by_n, "message %d stored twice (ids %s, %s)" % (n, by_n[n], d["id"])
        by_n[n] = d["id"]
    return by_n, dups


def stall_consumer(dev, prod, cons, step, cut, mend):
    """A spool device dev between a reliable producer prod (stdin) and a
    reliable consumer cons: messages 1..step go in and the consumer prints
    half of them; then cut() takes the consumer's link away while the
    producer sends step+1..2*step, until the device presumes the consumer
    dead (it hands what the consumer held to the queue again); then mend()."""
    prod.write_stdin(lines_for(1, step, 200))
    cons.wait_stdout_lines(step // 2, 30 * SLOW)
    cut()
    prod.write_stdin(lines_for(step + 1, 2 * step, 200))
    dev.wait_stderr(r"ZKIT-SPOOL-DEVICE-CONSUMER .*presumed dead", 30 * SLOW)
    mend()


def wait_consumer_complete(cons, directory, total):
    """Waits until the reliable consumer cons (zkit cat --pull --reliable,
    json) printed every message 1..total and the spool in directory holds
    nothing unacknowledged (the consumer's acks arrived too). Returns how
    many duplicates it printed (delivery is at-least-once)."""

    def all_there():
        by_n, _ = consumer_numbers(json_lines(cons))
        return len(by_n) == total

    wait_for(all_there, 60 * SLOW, "the consumer holding every confirmed message", 0.1)
    by_n, dups = consumer_numbers(json_lines(cons))
    assert sorted(by_n) == list(range(1, total + 1))
    wait_for(lambda: spool_unacked(directory) == 0, 30 * SLOW, "every record acknowledged", 0.2)
    return dups


def spool_unacked(directory):
    """The spool's unacknowledged record count (zkit spool inspect)."""
    rc, out, err = run_zkit(["spool", "inspect", directory, "--format", "json"], 30 * SLOW)
    assert rc == 0, err
    return json.loads(out)["unacked"]


def forwarder_counter(name, least):
    """A predicate for wait_stderr_where on a forwarder's periodic stats line:
    counter name at least least."""
    return (r"^zkit forwarder: stats .*\b%s=(\d+)" % name, lambda m: int(m.group(1)) >= least)

