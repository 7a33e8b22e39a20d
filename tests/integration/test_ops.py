#!/usr/bin/python3
# test_ops.py: process-level tests of the operating tools: `zkit keygen`,
# `zkit stats` (against a python control endpoint that answers STATS with a
# map following docs/control-protocol.md) and the faultproxy test helper
# (driven with plain python sockets).
#
#   ZKIT_BIN=build/bin/zkit ZKIT_BIN_DIR=build/bin /usr/bin/python3 \
#       tests/integration/test_ops.py [NAME...]
#
# Every wait has a deadline; the few "nothing arrives" checks are bounded
# waits by nature.
#
# This Source Code Form is subject to the terms of the Mozilla Public
# License, v. 2.0. If a copy of the MPL was not distributed with this
# file, You can obtain one at http://mozilla.org/MPL/2.0/.

import json
import os
import re
import select
import signal
import socket
import stat
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import msgpack  # noqa: E402
import zmq  # noqa: E402
import zmq.auth  # noqa: E402

from zkit_testlib import (  # noqa: E402
    Deadline,
    TestTimeout,
    ZkitProcess,
    ZmqPeer,
    parse_prometheus,
    run_tests,
    run_zkit,
)

# ---- zkit keygen --------------------------------------------------------------------


def read_cert(path):
    with open(path) as f:
        text = f.read()
    keys = dict(re.findall(r'^\s*(public-key|secret-key)\s*=\s*"(.{40})"\s*$', text, re.M))
    return text, keys


def test_keygen_files_and_modes():
    with tempfile.TemporaryDirectory() as d:
        rc, out, err = run_zkit(["keygen", "alice", "--dir", d])
        assert rc == 0, err
        public_key = out.decode().strip()
        assert len(public_key) == 40, out
        pub_path, sec_path = os.path.join(d, "alice"), os.path.join(d, "alice_secret")
        assert stat.S_IMODE(os.stat(sec_path).st_mode) == 0o600, oct(os.stat(sec_path).st_mode)
        assert not stat.S_IMODE(os.stat(pub_path).st_mode) & 0o022
        _, pub = read_cert(pub_path)
        _, sec = read_cert(sec_path)
        assert pub == {"public-key": public_key}, pub  # no secret in the public file
        assert sec["public-key"] == public_key
        # A real keypair, readable by another implementation (pyzmq).
        p1, s1 = zmq.auth.load_certificate(sec_path)
        p2, s2 = zmq.auth.load_certificate(pub_path)
        assert p1 == p2 == public_key.encode() and s2 is None
        assert zmq.curve_public(s1) == p1
        # Nothing else left behind (temporary files).
        assert sorted(os.listdir(d)) == ["alice", "alice_secret"], os.listdir(d)


def test_keygen_refuses_overwrite():
    with tempfile.TemporaryDirectory() as d:
        assert run_zkit(["keygen", "bob", "--dir", d])[0] == 0
        before = {n: open(os.path.join(d, n), "rb").read() for n in os.listdir(d)}
        rc, out, err = run_zkit(["keygen", "bob", "--dir", d])
        assert rc == 1 and "exists" in err and out == b"", (rc, out, err)
        after = {n: open(os.path.join(d, n), "rb").read() for n in os.listdir(d)}
        assert before == after
        # Only the secret there (the public one lost): still refused.
        os.unlink(os.path.join(d, "bob"))
        rc, _, err = run_zkit(["keygen", "bob", "--dir", d])
        assert rc == 1 and "bob_secret exists" in err, err
        assert sorted(os.listdir(d)) == ["bob_secret"]
        # --force replaces both with a new pair.
        rc, out, err = run_zkit(["keygen", "bob", "--dir", d, "--force"])
        assert rc == 0, err
        _, sec = read_cert(os.path.join(d, "bob_secret"))
        _, pub = read_cert(os.path.join(d, "bob"))
        assert sec["public-key"] == pub["public-key"] == out.decode().strip()
        assert before["bob_secret"] != open(os.path.join(d, "bob_secret"), "rb").read()
        assert stat.S_IMODE(os.stat(os.path.join(d, "bob_secret")).st_mode) == 0o600


def test_keygen_usage_errors():
    with tempfile.TemporaryDirectory() as d:
        for args in (["keygen"], ["keygen", "a/b"], ["keygen", ".hidden"], ["keygen", "x", "y"],
                     ["keygen", "--bogus", "x"]):
            rc, _, err = run_zkit(args + ["--dir", d])
            assert rc == 2, (args, rc, err)
        rc, _, err = run_zkit(["keygen", "x", "--dir", os.path.join(d, "missing")])
        assert rc == 1 and "not a directory" in err, err
        assert os.listdir(d) == []


# ---- zkit stats -----------------------------------------------------------------------

NAME = 'lb "east"\\1\n'  # quote, backslash and newline: escaping is tested


def stats_map(requests):
    now = int(time.time() * 1e6)
    return {
        "schema": 1,
        "component": "balancer",
        "name": NAME,
        "time_us": now,
        "uptime_us": 3723_500_000,
        "counters": {
            "requests": requests,
            "frames_dropped": {"reason": {"bad_frame": 3, "oversize": 1}},
            "bytes": {"socket": {"backend": {"dir": {"out": 7}},
                                 "frontend": {"dir": {"in": 100, "out": 40}}}},
        },
        "gauges": {
            "queue_depth": -3,
            "in_flight": {"socket": {"backend": 5}},
        },
        "help": {"requests": "Requests handled\\by the balancer\nsecond line"},
        "peers": [{"id": "worker-1", "last_seen_us": now - 1_500_000},
                  {"id": "0x00ff", "last_seen_us": now - 7200_000_000}],
        "peers_omitted": 0,
        "future": {"readers": ["ignore", "unknown", "keys"]},
    }


class ControlServer:
    """A python control endpoint: a ROUTER answering REQ-style requests.
    reply(frame_bytes) -> reply bytes, or None to stay silent."""

    def __init__(self, reply=None, setup=None):
        self.peer = ZmqPeer()
        self.sock = self.peer.socket(zmq.ROUTER)
        if setup:
            setup(self.sock)  # before the bind: e.g. CURVE
        self.endpoint = self.peer.bind_random(self.sock)
        self.requests = 0
        self.reply = reply or self.default_reply
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def default_reply(self, command):
        if command == b"STATS":
            return msgpack.packb(stats_map(self.requests), use_bin_type=True)
        if command == b"PING":
            return b"PONG"
        return b"ERROR unknown command"

    def run(self):
        while not self.stop.is_set():
            if not self.sock.poll(50):
                continue
            frames = self.sock.recv_multipart()
            self.requests += 1
            answer = self.reply(frames[-1])
            if answer is not None:
                self.sock.send_multipart(frames[:-1] + [answer])

    def close(self):
        self.stop.set()
        self.thread.join(5)
        self.peer.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False


def test_stats_table():
    with ControlServer() as server:
        rc, out, err = run_zkit(["stats", server.endpoint])
        assert rc == 0, err
        text = out.decode()
        lines = text.split("\n")
        assert "component  balancer" in lines, text
        assert 'name       lb "east"\\1\\x0a' in lines, text  # control bytes escaped
        assert "uptime     1h02m" in lines, text
        row = {l.split()[0]: l.split()[-1] for l in lines if len(l.split()) >= 2}
        assert row["requests"] == "1"
        assert row["frames_dropped{reason=bad_frame}"] == "3"
        assert row["frames_dropped{reason=oversize}"] == "1"
        assert row["bytes{socket=frontend,dir=in}"] == "100"
        assert row["queue_depth"] == "-3"
        assert row["in_flight{socket=backend}"] == "5"
        assert re.search(r"^worker-1 +1\.5s ago$", text, re.M), text
        assert re.search(r"^0x00ff +2h00m ago$", text, re.M), text


def test_stats_json():
    with ControlServer() as server:
        rc, out, err = run_zkit(["stats", server.endpoint, "--format", "json"])
        assert rc == 0, err
        assert out.count(b"\n") == 1  # one object, one line
        obj = json.loads(out.decode("utf-8"))  # strict
        want = stats_map(0)
        for key in ("time_us", "peers"):
            del obj[key], want[key]
        want["counters"]["requests"] = 1
        assert obj == want, obj


def test_stats_prometheus():
    with ControlServer() as server:
        rc, out, err = run_zkit(["stats", server.endpoint, "--format", "prometheus"])
        assert rc == 0, err
        families = parse_prometheus(out.decode("utf-8"))

    def value(family, **labels):
        key = tuple(sorted(dict(labels, name=NAME).items()))
        return families[family]["samples"][key]

    p = "zkit_balancer_"
    assert families[p + "requests_total"]["type"] == "counter"
    want_help = "Requests handled\\by the balancer\nsecond line"
    assert families[p + "requests_total"]["help"] == want_help
    assert value(p + "requests_total") == 1
    assert value(p + "frames_dropped_total", reason="bad_frame") == 3
    assert value(p + "frames_dropped_total", reason="oversize") == 1
    assert value(p + "bytes_total", socket="frontend", dir="in") == 100
    assert value(p + "bytes_total", socket="frontend", dir="out") == 40
    assert value(p + "bytes_total", socket="backend", dir="out") == 7
    assert families[p + "queue_depth"]["type"] == "gauge"
    assert value(p + "queue_depth") == -3
    assert value(p + "in_flight", socket="backend") == 5
    assert value(p + "uptime_seconds") == 3723.5
    assert value(p + "peers") == 2
    seen = value(p + "peer_last_seen_timestamp_seconds", peer="worker-1")
    assert abs(seen - (time.time() - 1.5)) < 60
    assert len(families[p + "bytes_total"]["samples"]) == 3


def test_prometheus_parser_is_strict():
    """The checker above rejects what node_exporter would."""
    good = '# HELP zkit_x_total a\\\\b\n# TYPE zkit_x_total counter\nzkit_x_total{a="1"} 2\n'
    parse_prometheus(good)
    bad = [
        good.replace("counter", "gauge").replace("_total", ""),  # fine as a gauge...
        good.replace('{a="1"}', '{a="1\\x"}'),        # unknown escape
        good.replace("# TYPE zkit_x_total counter\n", ""),  # no TYPE
        good.replace("zkit_x_total", "zkit_x"),       # counter without _total
        good + 'zkit_x_total{a="1"} 3\n',              # repeated series
        good.replace(" 2\n", " 2 1700000000\n"),       # a timestamp
        good[:-1],                                     # no final newline
        good.replace('a="1"', 'a="1",a="2"'),          # repeated label
    ]
    parse_prometheus(bad[0])
    for text in bad[1:]:
        try:
            parse_prometheus(text)
        except AssertionError:
            continue
        raise AssertionError("accepted: %r" % text)


def test_stats_watch_then_sigint():
    with ControlServer() as server:
        with ZkitProcess(["stats", server.endpoint, "--format", "json", "--watch", "0.05"]) as p:
            lines = p.wait_stdout_lines(2)
            first, second = (json.loads(line) for line in lines)
            assert second["counters"]["requests"] > first["counters"]["requests"]
            p.send_signal(signal.SIGINT)
            assert p.wait() == 0, p.stderr()


def test_stats_timeout_and_bad_replies():
    with ControlServer(reply=lambda command: None) as silent:
        start = time.monotonic()
        rc, out, err = run_zkit(["stats", silent.endpoint, "--timeout", "300"])
        assert rc == 1 and out == b"", (rc, out, err)
        assert "no reply from %s within 300 ms" % silent.endpoint in err, err
        assert time.monotonic() - start < 5
    with ControlServer(reply=lambda command: b"ERROR not supported") as refusing:
        rc, out, err = run_zkit(["stats", refusing.endpoint])
        assert rc == 1 and '"ERROR not supported"' in err, err
    replies = [msgpack.packb([1, 2, 3]), b"\xc1garbage", msgpack.packb({"schema": 1}),
               msgpack.packb(dict(stats_map(0), schema=2)),
               msgpack.packb(dict(stats_map(0), counters={"x": -1}))]
    for reply in replies:
        with ControlServer(reply=lambda command, r=reply: r) as odd:
            rc, out, err = run_zkit(["stats", odd.endpoint, "--format", "prometheus"])
            assert rc == 1 and out == b"" and "not STATS" in err, (reply, rc, err)
    rc, _, err = run_zkit(["stats", "tcp://127.0.0.1:1", "--format", "yaml"])
    assert rc == 2, err


def test_stats_over_curve():
    """Keys from zkit keygen secure the control connection: the right server
    key gets STATS, a wrong one gets no reply (the handshake fails)."""
    with tempfile.TemporaryDirectory() as d:
        for name in ("device", "ops", "other"):
            assert run_zkit(["keygen", name, "--dir", d])[0] == 0
        public, secret = zmq.auth.load_certificate(os.path.join(d, "device_secret"))

        def curve_server(sock):
            sock.curve_secretkey = secret
            sock.curve_publickey = public
            sock.curve_server = True

        with ControlServer(setup=curve_server) as server:
            base = ["stats", server.endpoint, "--format", "json",
                    "--curve-secret", os.path.join(d, "ops_secret")]
            rc, out, err = run_zkit(base + ["--curve-server", os.path.join(d, "device")])
            assert rc == 0, err
            assert json.loads(out)["component"] == "balancer"
            rc, out, err = run_zkit(base + ["--curve-server", os.path.join(d, "other"),
                                            "--timeout", "300"])
            assert rc == 1 and "no reply" in err, (rc, err)
            rc, out, err = run_zkit(["stats", server.endpoint, "--curve-secret",
                                     os.path.join(d, "ops_secret")])
            assert rc == 2 and "--curve-secret needs" in err, (rc, err)


# ---- faultproxy -------------------------------------------------------------------------


def faultproxy_bin():
    path = os.path.join(os.environ.get("ZKIT_BIN_DIR", ""), "faultproxy")
    if not os.access(path, os.X_OK):
        raise RuntimeError("set ZKIT_BIN_DIR to the directory holding faultproxy")
    return path


class FaultProxy:
    """faultproxy in front of target_port; command() waits for its answer."""

    def __init__(self, target_port):
        self.proc = ZkitProcess(["127.0.0.1:%d" % target_port], stdin=True,
                                program=faultproxy_bin())
        self.lines = 1
        first = self.proc.wait_stdout_lines(1)[0].decode()
        m = re.fullmatch(r"listening (\d+)", first)
        assert m, first
        self.port = int(m.group(1))

    def command(self, text):
        self.proc.write_stdin(text.encode() + b"\n")
        self.lines += 1
        return self.proc.wait_stdout_lines(self.lines)[-1].decode()

    def close(self):
        self.proc.kill()


def listener():
    srv = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    srv.bind(("127.0.0.1", 0))
    srv.listen(64)
    return srv


def connect_pair(proxy, srv):
    """A client connected through the proxy and the server's side of it,
    with one round trip done so both legs are known to be up."""
    client = socket.create_connection(("127.0.0.1", proxy.port), timeout=10)
    srv.settimeout(10)
    server, _ = srv.accept()
    server.settimeout(10)
    client.sendall(b"ping")
    assert recv_exactly(server, 4) == b"ping"
    server.sendall(b"pong")
    assert recv_exactly(client, 4) == b"pong"
    return client, server


def recv_exactly(sock, size):
    data = b""
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        if not chunk:
            raise AssertionError("end of stream after %d of %d bytes" % (len(data), size))
        data += chunk
    return data


def assert_nothing(sock, seconds):
    readable, _, _ = select.select([sock], [], [], seconds)
    assert not readable, "data or close arrived: %r" % sock.recv(100)


def test_faultproxy_pause_resume():
    srv = listener()
    proxy = FaultProxy(srv.getsockname()[1])
    try:
        client, server = connect_pair(proxy, srv)
        assert proxy.command("pause") == "ok pause"
        client.sendall(b"held up")
        server.sendall(b"held back")
        assert_nothing(server, 0.3)
        assert_nothing(client, 0.1)
        # A connection made while paused is accepted but carries nothing.
        late = socket.create_connection(("127.0.0.1", proxy.port), timeout=10)
        late_server, _ = srv.accept()
        late.sendall(b"late")
        assert_nothing(late_server, 0.1)
        assert re.fullmatch(r"status connections=2 accepted=2 paused=1 delay=0",
                            proxy.command("status"))
        assert proxy.command("resume") == "ok resume"
        assert recv_exactly(server, 7) == b"held up"
        assert recv_exactly(client, 9) == b"held back"
        late_server.settimeout(10)
        assert recv_exactly(late_server, 4) == b"late"
        for s in (client, server, late, late_server):
            s.close()
    finally:
        proxy.close()
        srv.close()


def test_faultproxy_drop_and_reset():
    srv = listener()
    proxy = FaultProxy(srv.getsockname()[1])
    try:
        client, server = connect_pair(proxy, srv)
        assert proxy.command("drop") == "ok drop"
        assert client.recv(100) == b""  # an orderly close, both sides
        assert server.recv(100) == b""
        client.close()
        server.close()

        client, server = connect_pair(proxy, srv)
        assert proxy.command("reset") == "ok reset"
        for s in (client, server):
            try:
                data = s.recv(100)
            except ConnectionResetError:
                continue
            raise AssertionError("no reset, got %r" % data)
        client.close()
        server.close()
        # The proxy carries new connections afterwards.
        client, server = connect_pair(proxy, srv)
        client.close()
        server.close()
        assert proxy.command("bogus") == "error unknown command"
    finally:
        proxy.close()
        srv.close()


def test_faultproxy_half_close_and_target_reset():
    srv = listener()
    proxy = FaultProxy(srv.getsockname()[1])
    try:
        client, server = connect_pair(proxy, srv)
        client.shutdown(socket.SHUT_WR)
        assert server.recv(100) == b""  # the end of stream passed on
        server.sendall(b"still open")  # the other way still works
        assert recv_exactly(client, 10) == b"still open"
        server.close()
        assert client.recv(100) == b""
        client.close()
        # The target resets: the client sees a reset too.
        client, server = connect_pair(proxy, srv)
        server.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
        server.close()
        try:
            data = client.recv(100)
            raise AssertionError("no reset, got %r" % data)
        except ConnectionResetError:
            pass
        client.close()
    finally:
        proxy.close()
        srv.close()


def test_faultproxy_delay():
    srv = listener()
    proxy = FaultProxy(srv.getsockname()[1])
    try:
        client, server = connect_pair(proxy, srv)
        assert proxy.command("delay 300") == "ok delay 300"
        start = time.monotonic()
        client.sendall(b"slow")
        assert recv_exactly(server, 4) == b"slow"
        assert time.monotonic() - start >= 0.29
        assert proxy.command("delay 0") == "ok delay 0"
        assert proxy.command("delay x") == "error delay needs milliseconds"
        client.close()
        server.close()
    finally:
        proxy.close()
        srv.close()


def test_faultproxy_many_connections_large_transfers():
    """Twenty connections at once, 1 MiB each way per connection, through an
    echo server: partial writes and the queue limit are exercised."""
    srv = listener()
    stop = threading.Event()

    def echo(conn):
        with conn:
            while True:
                data = conn.recv(65536)
                if not data:
                    conn.shutdown(socket.SHUT_WR)
                    return
                conn.sendall(data)

    def serve():
        srv.settimeout(0.1)
        while not stop.is_set():
            try:
                conn, _ = srv.accept()
            except socket.timeout:
                continue
            conn.settimeout(30)
            threading.Thread(target=echo, args=(conn,), daemon=True).start()

    acceptor = threading.Thread(target=serve, daemon=True)
    acceptor.start()
    proxy = FaultProxy(srv.getsockname()[1])
    try:
        size = 1024 * 1024
        results = {}

        def client(n):
            payload = os.urandom(size)
            s = socket.create_connection(("127.0.0.1", proxy.port), timeout=30)
            sender = threading.Thread(
                target=lambda: (s.sendall(payload), s.shutdown(socket.SHUT_WR)))
            sender.start()
            got = bytearray()
            while True:
                chunk = s.recv(65536)
                if not chunk:
                    break
                got += chunk
            sender.join(30)
            s.close()
            results[n] = bytes(got) == payload

        threads = [threading.Thread(target=client, args=(n,)) for n in range(20)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(50)
        assert results == {n: True for n in range(20)}, results
        # Every connection ended both ways and was closed by the proxy.
        deadline = Deadline(10)
        while proxy.command("status") != "status connections=0 accepted=20 paused=0 delay=0":
            if deadline.expired():
                raise TestTimeout(proxy.command("status"))
    finally:
        stop.set()
        proxy.close()
        acceptor.join(5)
        srv.close()


if __name__ == "__main__":
    sys.exit(run_tests([
        test_keygen_files_and_modes,
        test_keygen_refuses_overwrite,
        test_keygen_usage_errors,
        test_stats_table,
        test_stats_json,
        test_prometheus_parser_is_strict,
        test_stats_prometheus,
        test_stats_watch_then_sigint,
        test_stats_timeout_and_bad_replies,
        test_stats_over_curve,
        test_faultproxy_pause_resume,
        test_faultproxy_drop_and_reset,
        test_faultproxy_half_close_and_target_reset,
        test_faultproxy_delay,
        test_faultproxy_many_connections_large_transfers,
    ]))
