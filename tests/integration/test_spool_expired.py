#!/usr/bin/python3
# test_spool_expired.py: the spool device (`zkit spool run`) learns which
# consumers liveness presumed dead from the dispatcher (next_expired), not by
# rescanning its list: this pins what a user sees of that.
#
#   ZKIT_BIN=build/bin/zkit ZKIT_BIN_DIR=build/bin /usr/bin/python3 \
#       tests/integration/test_spool_expired.py [NAME...]
#
# Three consumers take a record each and go silent: consumers_expired counts
# exactly 3, the consumers gauge and the STATS peers list drop them, the log
# says "presumed dead" once for each, and their records reach a live
# consumer as attempt 2. A dead consumer that says READY again is a consumer
# again (listed, delivered to) and the expiry count stays exact.
#
# This Source Code Form is subject to the terms of the Mozilla Public
# License, v. 2.0. If a copy of the MPL was not distributed with this
# file, You can obtain one at http://mozilla.org/MPL/2.0/.

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import zmq  # noqa: E402

from zkit_testlib import (SLOW, Deadline, ZmqPeer, envelope, metric, recv_frames,  # noqa: E402
                          run_tests, unpack_envelope)

from test_spool_device import remove_tmpdirs  # noqa: E402
from test_spool_ops import Device, recv_confirmed_ids  # noqa: E402


def next_deliver(cons, timeout=15):
    """The next DELIVER's envelope on cons (heartbeats skipped)."""
    deadline = Deadline(timeout * SLOW)
    while True:
        frames = recv_frames(cons, deadline.remaining() or 0.001)
        if frames == [b"HEARTBEAT"]:
            continue
        assert frames[0] == b"DELIVER" and len(frames) == 2, frames
        return frames[1]


def peer_ids(stats):
    return sorted(p["id"] for p in stats["peers"])


def test_silent_consumers_expire_exactly_once_each():
    dev = Device("--heartbeat", "100", "--liveness", "3", "--verbose")
    with ZmqPeer() as peer:
        prod = peer.socket(zmq.DEALER, routing_id=b"producer-1")
        prod.connect(dev.in_ep)
        frames = [envelope(b"record %d" % i, seq=i + 1) for i in range(3)]
        for f in frames:
            prod.send_multipart([b"PUT", f])
        recv_confirmed_ids(prod, 3)

        # Three consumers with credit 1 take one record each, then say
        # nothing more: no HEARTBEAT, no ACK.
        silent = []
        for name in (b"silent-1", b"silent-2", b"silent-3"):
            cons = peer.socket(zmq.DEALER, routing_id=name)
            cons.connect(dev.out_ep)
            cons.send_multipart([b"READY", b"1"])
            assert unpack_envelope(next_deliver(cons))[5]["att"] == 1
            silent.append(cons)

        s = dev.wait_stats(lambda s: metric(s, "consumers_expired") == 3, "3 expiries")
        assert metric(s, "consumers") == 0, s
        assert metric(s, "consumers_ready") == 3, s
        assert metric(s, "consumers_gone") == 0, s
        assert peer_ids(s) == [], s["peers"]
        for i in range(3):
            dev.proc.wait_stderr(r"ZKIT-SPOOL-DEVICE-CONSUMER spool: consumer \S+ presumed dead "
                                 r"\(no heartbeat\)", 10 * SLOW, index=i)

        # A live consumer gets the three records again, as attempt 2.
        live = peer.socket(zmq.DEALER, routing_id=b"live")
        live.connect(dev.out_ep)
        live.send_multipart([b"READY", b"10"])
        got = []
        for _ in range(3):
            env = unpack_envelope(next_deliver(live))
            assert env[5]["att"] == 2, env
            got.append(env[1])
            live.send_multipart([b"ACK", env[1]])
        assert sorted(got) == sorted(f[4:20] for f in frames)
        dev.wait_stats(lambda s: metric(s, "acked") == 3, "3 acks")

        # silent-1 comes back: a consumer again, and still exactly 3 expiries.
        live.send_multipart([b"DISCONNECT"])
        dev.wait_stats(lambda s: metric(s, "consumers_gone") == 1, "live gone")
        prod.send_multipart([b"PUT", envelope(b"after", seq=10)])
        recv_confirmed_ids(prod, 1)
        back = silent[0]
        back.send_multipart([b"READY", b"1"])
        env = unpack_envelope(next_deliver(back))
        assert env[4] == b"after" and env[5]["att"] == 1, env
        back.send_multipart([b"ACK", env[1]])
        s = dev.wait_stats(lambda s: metric(s, "acked") == 4, "4 acks")
        assert metric(s, "consumers_expired") == 3, s
        assert metric(s, "consumers_ready") == 5, s
        assert metric(s, "consumers_gone") == 1, s
        assert metric(s, "consumers") == 1, s
        assert peer_ids(s) == ["silent-1"], s["peers"]
    dev.stop()


def main():
    try:
        return run_tests([
            test_silent_consumers_expire_exactly_once_each,
        ], deadline=120.0 * SLOW)
    finally:
        remove_tmpdirs()


if __name__ == "__main__":
    sys.exit(main())
