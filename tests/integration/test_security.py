#!/usr/bin/python3
# test_security.py: the security acceptance test of issue 7, against a real
# `zkit forwarder` (CURVE server on its frontend and backend, with an allow
# list), a real `zkit publisher` (CURVE client of the forwarder) and python
# subscribers:
#
#   1. a subscriber whose key is allowed receives the feed;
#   2. 1,000 attempts with a key not in the list and
#   3. 1,000 attempts without a key (plaintext) each reach the handshake,
#      fail it, and receive nothing, while the allowed subscriber keeps
#      receiving;
#   4. a canary in the payload crosses the wire encrypted: a TCP relay that
#      records every byte between an allowed subscriber and the forwarder
#      never sees it, though the subscriber gets the message; the same relay
#      in front of a forwarder without CURVE does see it (the control);
#   5. after the allowed subscriber's certificate is removed from the allow
#      directory and the forwarder got SIGHUP, a new connection with that
#      key is refused (connections already made may stay: docs/security.md).
#
#   ZKIT_BIN=build/bin/zkit ZKIT_BIN_DIR=build/bin /usr/bin/python3 \
#       tests/integration/test_security.py [NAME...]
#
# An attempt is a fresh SUB socket (its own TCP connection and handshake),
# watched through a socket monitor until the handshake fails, then given a
# further bounded wait in which a message would arrive if one could. The
# attempts run in batches of parallel sockets to keep the test short.
#
# This Source Code Form is subject to the terms of the Mozilla Public
# License, v. 2.0. If a copy of the MPL was not distributed with this
# file, You can obtain one at http://mozilla.org/MPL/2.0/.

import os
import resource
import secrets
import socket
import sys
import tempfile
import threading

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import zmq  # noqa: E402
from zmq.utils.monitor import parse_monitor_message  # noqa: E402

from zkit_testlib import (  # noqa: E402
    Deadline,
    ZkitProcess,
    ZmqPeer,
    curve_client,
    keygen,
    run_tests,
    wait_for,
)

ANY = "tcp://127.0.0.1:*"
ATTEMPTS = int(os.environ.get("ZKIT_SECURITY_ATTEMPTS", 1000))
BATCH = 100           # sockets handshaking at once
GRACE_MS = 150        # after the handshake failed: a message would show by now
RATE = 200            # messages per second the publisher sends
HANDSHAKE_FAILED = (zmq.EVENT_HANDSHAKE_FAILED_AUTH | zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL
                    | zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL)
CANARY = b"zkitcanary" + secrets.token_hex(6).encode()


# ---- helpers ---------------------------------------------------------------------------


def raise_fd_limit():
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = min(hard, 8192) if hard != resource.RLIM_INFINITY else 8192
    if soft < want:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))


class Setup:
    """Keys, an allow directory, a CURVE forwarder and a CURVE publisher."""

    def __init__(self, d):
        self.d = d
        self.keys = keygen(d, "fwd", "pub", "allowed", "stranger")
        self.allow = os.path.join(d, "allow")
        os.mkdir(self.allow)
        for name in ("pub", "allowed"):
            os.link(os.path.join(d, name), os.path.join(self.allow, name))
        self.fwd = ZkitProcess(["forwarder", "--frontend", ANY, "--backend", ANY,
                                "--curve-secret", os.path.join(d, "fwd_secret"),
                                "--curve-allow", self.allow])
        self.front = self.fwd.wait_bound(index=0)
        self.back = self.fwd.wait_bound(index=1)
        self.pub = ZkitProcess(["publisher", "--connect", self.front, "--name", "secfeed",
                                "--topic", CANARY.decode(), "--count", "100000000",
                                "--rate", str(RATE), "--wait-subscriber",
                                "--curve-secret", os.path.join(d, "pub_secret"),
                                "--curve-server", os.path.join(d, "fwd")])


    def client(self, name):
        """Configures a socket as a CURVE client of the forwarder with name's
        keys."""
        return lambda sock: curve_client(sock, self.keys[name], self.keys["fwd"][0])


class Receiver(threading.Thread):
    """A subscriber on its own thread: counts what it receives."""

    def __init__(self, peer, endpoint, configure):
        super().__init__(daemon=True)
        self.sock = peer.socket(zmq.SUB)
        configure(self.sock)
        self.sock.setsockopt(zmq.SUBSCRIBE, b"")
        self.sock.connect(endpoint)
        self.count = 0
        self.canary_seen = False
        self.stop = threading.Event()
        self.start()

    def run(self):
        while not self.stop.is_set():
            if self.sock.poll(50, zmq.POLLIN):
                frames = self.sock.recv_multipart()
                self.count += 1
                self.canary_seen = self.canary_seen or CANARY in frames[0]

    def close(self):
        self.stop.set()
        self.join(5)


def attempts(ctx, endpoint, count, configure):
    """count fresh connections, BATCH at a time. Each must fail its
    handshake (seen by the monitor) and receive no message in the grace
    that follows. Returns (messages received, {event: attempts})."""
    received, events = 0, {}
    done = 0
    while done < count:
        n = min(BATCH, count - done)
        socks, monitors = [], []
        for _ in range(n):
            s = ctx.socket(zmq.SUB)
            s.setsockopt(zmq.LINGER, 0)
            s.setsockopt(zmq.RECONNECT_IVL, 60000)  # one handshake per attempt
            configure(s)
            monitors.append(s.get_monitor_socket(HANDSHAKE_FAILED
                                                 | zmq.EVENT_HANDSHAKE_SUCCEEDED))
            s.setsockopt(zmq.SUBSCRIBE, b"")
            s.connect(endpoint)
            socks.append(s)
        poller = zmq.Poller()
        for m in monitors:
            poller.register(m, zmq.POLLIN)
        for s in socks:
            poller.register(s, zmq.POLLIN)
        failed = {}
        deadline = Deadline(30)
        while len(failed) < n and not deadline.expired():
            for sock, _ in poller.poll(100):
                if sock in socks:
                    sock.recv_multipart()
                    received += 1
                    continue
                event = parse_monitor_message(sock.recv_multipart())["event"]
                assert event != zmq.EVENT_HANDSHAKE_SUCCEEDED, "a handshake succeeded"
                failed.setdefault(monitors.index(sock), event)
        assert len(failed) == n, "%d of %d handshakes did not fail in time" % (n - len(failed), n)
        # The bounded wait: the feed runs at RATE/s, so a socket that had got
        # through would hold messages by now.
        grace = Deadline(GRACE_MS / 1000.0)
        while not grace.expired():
            for sock, _ in poller.poll(max(1, grace.remaining_ms())):
                if sock in socks:
                    sock.recv_multipart()
                    received += 1
                else:
                    sock.recv_multipart()
        for event in failed.values():
            events[event] = events.get(event, 0) + 1
        for s in socks:
            s.disable_monitor()
            s.close(0)
        for m in monitors:
            m.close(0)
        done += n
    return received, events


class Relay:
    """A TCP relay that records every byte both ways."""

    def __init__(self, upstream):
        host, port = upstream[len("tcp://"):].rsplit(":", 1)
        self.upstream = (host, int(port))
        self.listener = socket.socket()
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(8)
        self.endpoint = "tcp://127.0.0.1:%d" % self.listener.getsockname()[1]
        self.lock = threading.Lock()
        self.recorded = bytearray()
        self.conns = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            server = socket.create_connection(self.upstream)
            self.conns += [client, server]
            threading.Thread(target=self._pump, args=(client, server), daemon=True).start()
            threading.Thread(target=self._pump, args=(server, client), daemon=True).start()

    def _pump(self, src, dst):
        while True:
            try:
                data = src.recv(65536)
            except OSError:
                data = b""
            if not data:
                for s in (src, dst):
                    try:
                        s.shutdown(socket.SHUT_RDWR)
                    except OSError:
                        pass
                return
            with self.lock:
                self.recorded += data
            try:
                dst.sendall(data)
            except OSError:
                return

    def data(self):
        with self.lock:
            return bytes(self.recorded)

    def close(self):
        self.listener.close()
        for s in self.conns:
            try:
                s.close()
            except OSError:
                pass


# ---- the acceptance -----------------------------------------------------------------------


def test_allow_list_refuses_and_encrypts():
    raise_fd_limit()
    with tempfile.TemporaryDirectory() as d, ZmqPeer() as peer:
        st = Setup(d)
        # 1. the allowed subscriber receives the feed.
        allowed = Receiver(peer, st.back, st.client("allowed"))
        try:
            wait_for(lambda: allowed.count >= 5, timeout=20, what="the allowed subscriber fed")
            assert allowed.canary_seen
            # 2 and 3: unlisted key, no key.
            before = allowed.count
            got, events = attempts(peer.ctx, st.back, ATTEMPTS,
                                   st.client("stranger"))
            assert got == 0, "an unlisted key received %d messages" % got
            assert set(events) == {zmq.EVENT_HANDSHAKE_FAILED_AUTH}, events
            got, events = attempts(peer.ctx, st.back, ATTEMPTS, lambda s: None)
            assert got == 0, "a plaintext subscriber received %d messages" % got
            assert sum(events.values()) == ATTEMPTS, events
            # Meanwhile the allowed subscriber kept receiving.
            wait_for(lambda: allowed.count > before + 5, what="the feed flowing meanwhile")
            assert st.fwd.running() and st.pub.running()

            # 4. the canary is not on the wire.
            relay = Relay(st.back)
            try:
                tapped = Receiver(peer, relay.endpoint, st.client("allowed"))
                wait_for(lambda: tapped.canary_seen and tapped.count >= 5, timeout=20,
                         what="the canary through the relay")
                tapped.close()
                recorded = relay.data()
            finally:
                relay.close()
            assert len(recorded) > 5 * len(CANARY), len(recorded)
            assert CANARY not in recorded, "the canary crossed the wire in clear"

            # 5. revoke: remove the certificate, SIGHUP, and a new connection
            # with that key is refused.
            os.unlink(os.path.join(st.allow, "allowed"))
            st.fwd.send_signal(1)  # SIGHUP
            st.fwd.wait_stderr(r"ZKIT-SECURITY-RELOAD: .*1 removed")
            got, events = attempts(peer.ctx, st.back, 20,
                                   st.client("allowed"))
            assert got == 0 and set(events) == {zmq.EVENT_HANDSHAKE_FAILED_AUTH}, (got, events)
        finally:
            allowed.close()


def test_relay_sees_canary_without_curve():
    """The control for part 4: the same relay in front of a plaintext
    forwarder records the canary, so the sniffing does work."""
    fwd = ZkitProcess(["forwarder", "--frontend", ANY, "--backend", ANY])
    front, back = fwd.wait_bound(index=0), fwd.wait_bound(index=1)
    ZkitProcess(["publisher", "--connect", front, "--name", "plainfeed", "--topic",
                 CANARY.decode(), "--count", "100000000", "--rate", str(RATE),
                 "--wait-subscriber"])
    relay = Relay(back)
    try:
        with ZmqPeer() as peer:
            sub = Receiver(peer, relay.endpoint, lambda s: None)
            try:
                wait_for(lambda: sub.canary_seen, timeout=20, what="the canary received")
            finally:
                sub.close()
        wait_for(lambda: CANARY in relay.data(), what="the canary recorded")
    finally:
        relay.close()


if __name__ == "__main__":
    sys.exit(run_tests([
        test_allow_list_refuses_and_encrypts,
        test_relay_sees_canary_without_curve,
    ], deadline=150))
