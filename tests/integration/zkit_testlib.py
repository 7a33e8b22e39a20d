# zkit_testlib.py: shared helpers for zkit's process-level tests.
#
# The tests drive the real zkit program (found through ZKIT_BIN, or the
# zkit binary in ZKIT_BIN_DIR) and talk to it with python3-zmq and
# python3-msgpack as an independent peer. Everything here synchronises on
# events (a line on stderr, a message received, a process exit) with a
# deadline; nothing sleeps for a fixed time and hopes.
#
#   ZkitProcess   start a zkit process, read its stdout and stderr in the
#                 background, wait for a stderr line, for stdout lines, for
#                 its exit; always killed when the test ends
#   Deadline      a point in time to wait until
#   ZmqPeer       python sockets that close with linger 0 when the test ends
#   recv_frames   receive a multipart message or fail at a deadline
#   envelope      build a zkit envelope frame with msgpack, independently of C
#   run_tests     run test functions, each with a hard deadline, print
#                 "N passed, M failed" and return the exit status
#   bin_program   another program of the build (an example), from
#                 ZKIT_BIN_DIR or beside ZKIT_BIN
#   children_of   the processes a process started (to check for zombies)
#   processes_running  processes with an exact command line (stragglers)
#   zkit_stats    one STATS round from a control endpoint (`zkit stats --format
#                 json`), and metric() to read a sample out of it
#   parse_prometheus  a strict reader of the text exposition format
#   rss_kib       a process's resident memory
#   SLOW          1, or 3 when the zkit program is an ASan build: scale waits
#   flood_env     ASAN_OPTIONS for a device whose memory a test measures
#   keygen        `zkit keygen` some names; curve_client: a python socket
#                 as a CURVE client with one of those keys
#   flood_garbage send a mix of malformed messages (random bytes, wrong frame
#                 counts, empty, truncated MessagePack, oversized) to a socket
#
# Run the suites with /usr/bin/python3 (Debian's, which has zmq and msgpack).
#
# This Source Code Form is subject to the terms of the Mozilla Public
# License, v. 2.0. If a copy of the MPL was not distributed with this
# file, You can obtain one at http://mozilla.org/MPL/2.0/.

import json
import math
import os
import random
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import traceback

try:
    import msgpack
    import zmq
    import zmq.auth
except ImportError as exc:  # pragma: no cover - environment problem
    sys.stderr.write("zkit_testlib: %s; run the tests with /usr/bin/python3\n" % exc)
    raise

DEFAULT_TIMEOUT = 10.0  # seconds any single wait may take
BOUND_RE = re.compile(r"^zkit (?:\w+): bound (\S+)$")


class TestTimeout(AssertionError):
    """A wait reached its deadline. Subclasses AssertionError: a test fails."""


class Deadline:
    """A point in time: Deadline(2.0) is two seconds from now."""

    def __init__(self, seconds):
        self.end = time.monotonic() + seconds

    def remaining(self):
        return max(0.0, self.end - time.monotonic())

    def remaining_ms(self):
        return int(self.remaining() * 1000)

    def expired(self):
        return time.monotonic() >= self.end


def zkit_bin():
    """The zkit program under test: $ZKIT_BIN, else $ZKIT_BIN_DIR/zkit."""
    path = os.environ.get("ZKIT_BIN")
    if not path and os.environ.get("ZKIT_BIN_DIR"):
        path = os.path.join(os.environ["ZKIT_BIN_DIR"], "zkit")
    if not path or not os.access(path, os.X_OK):
        raise RuntimeError("set ZKIT_BIN to the zkit program (got %r)" % path)
    return path


_live_processes = set()


class ZkitProcess:
    """A running zkit program.

    ZkitProcess(["cat", "--pull", ...]) starts it with stdout and stderr
    captured by reader threads; stdin is a pipe when stdin= gives bytes to
    write (then closed) or stdin=True keeps it open for write_stdin(), else
    /dev/null. Use it as a context manager, or rely on run_tests, to make
    sure it is killed when the test ends."""

    def __init__(self, args, stdin=None, env=None, program=None):
        self.args = [program or zkit_bin()] + [str(a) for a in args]
        self._cond = threading.Condition()
        self._stdout = bytearray()
        self._stderr = bytearray()
        self._eof = {"stdout": False, "stderr": False}
        full_env = dict(os.environ)
        if env:
            full_env.update(env)
        self.proc = subprocess.Popen(
            self.args,
            stdin=subprocess.PIPE if stdin is not None else subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=full_env,
        )
        _live_processes.add(self)
        self._threads = [
            threading.Thread(target=self._reader, args=(self.proc.stdout, "stdout"), daemon=True),
            threading.Thread(target=self._reader, args=(self.proc.stderr, "stderr"), daemon=True),
        ]
        for t in self._threads:
            t.start()
        if isinstance(stdin, (bytes, bytearray)):
            data = bytes(stdin)
            t = threading.Thread(target=self._writer, args=(data,), daemon=True)
            t.start()
            self._threads.append(t)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.kill()
        return False

    # ---- background I/O ----------------------------------------------------

    def _reader(self, pipe, name):
        buf = self._stdout if name == "stdout" else self._stderr
        fd = pipe.fileno()
        while True:
            try:
                chunk = os.read(fd, 65536)
            except OSError:
                chunk = b""
            with self._cond:
                if not chunk:
                    self._eof[name] = True
                    self._cond.notify_all()
                    return
                buf.extend(chunk)
                self._cond.notify_all()

    def _writer(self, data):
        try:
            self.proc.stdin.write(data)
            self.proc.stdin.close()
        except (BrokenPipeError, OSError):
            pass

    def write_stdin(self, data, close=False):
        """Writes to the process's stdin (started with stdin=True)."""
        self.proc.stdin.write(data)
        self.proc.stdin.flush()
        if close:
            self.proc.stdin.close()

    # ---- what it printed ---------------------------------------------------

    def stdout(self):
        """Everything read from stdout so far (bytes)."""
        with self._cond:
            return bytes(self._stdout)

    def stderr(self):
        """Everything read from stderr so far, decoded (errors replaced)."""
        with self._cond:
            return self._stderr.decode("utf-8", "replace")

    def stderr_lines(self):
        """Complete lines read from stderr so far."""
        text = self.stderr()
        lines = text.split("\n")
        return lines[:-1]

    def _wait_until(self, check, timeout, what):
        """Waits until check() (called under the lock) returns non-None."""
        deadline = Deadline(timeout)
        with self._cond:
            while True:
                result = check()
                if result is not None:
                    return result
                if self._eof["stdout"] and self._eof["stderr"]:
                    # Both pipes closed: nothing more can arrive.
                    result = check()
                    if result is not None:
                        return result
                    raise TestTimeout("%s: process ended first (rc %s)\n%s" % (
                        what, self.proc.poll(), self._describe()))
                if deadline.expired():
                    raise TestTimeout("%s: nothing after %.1fs\n%s" % (what, timeout, self._describe()))
                self._cond.wait(min(0.1, deadline.remaining()) or 0.001)

    def _describe(self):
        return "  command: %s\n  stderr: %r\n  stdout: %r" % (
            " ".join(self.args), self._stderr.decode("utf-8", "replace")[-2000:],
            bytes(self._stdout[-500:]))

    def wait_stderr(self, pattern, timeout=DEFAULT_TIMEOUT, index=0):
        """Waits for the index-th complete stderr line matching the regex
        pattern (re.search); returns the match."""
        regex = re.compile(pattern) if isinstance(pattern, str) else pattern

        def check():
            lines = self._stderr.decode("utf-8", "replace").split("\n")[:-1]
            found = [m for m in (regex.search(line) for line in lines) if m]
            return found[index] if len(found) > index else None

        return self._wait_until(check, timeout, "waiting for stderr /%s/" % regex.pattern)

    def wait_stderr_where(self, pattern, predicate, timeout=DEFAULT_TIMEOUT):
        """Waits for the first complete stderr line matching the regex
        pattern for which predicate(match) is true; returns the match. For
        progress lines: wait_stderr_where(r"progress (\\d+)/", lambda m:
        int(m.group(1)) >= 10)."""
        regex = re.compile(pattern) if isinstance(pattern, str) else pattern

        def check():
            for line in self._stderr.decode("utf-8", "replace").split("\n")[:-1]:
                m = regex.search(line)
                if m and predicate(m):
                    return m
            return None

        return self._wait_until(check, timeout, "waiting for stderr /%s/ (with a condition)"
                                % regex.pattern)

    def wait_bound(self, timeout=DEFAULT_TIMEOUT, index=0):
        """Waits for the index-th 'zkit ...: bound ENDPOINT' line; returns the
        endpoint with its port resolved."""
        return self.wait_stderr(BOUND_RE, timeout, index).group(1)

    def wait_stdout_bytes(self, size, timeout=DEFAULT_TIMEOUT):
        """Waits until stdout holds at least size bytes; returns all of it."""
        return self._wait_until(
            lambda: bytes(self._stdout) if len(self._stdout) >= size else None,
            timeout, "waiting for %d bytes on stdout" % size)

    def wait_stdout_lines(self, count, timeout=DEFAULT_TIMEOUT):
        """Waits for count complete stdout lines; returns them (bytes, no
        newline)."""
        def check():
            lines = bytes(self._stdout).split(b"\n")[:-1]
            return lines[:count] if len(lines) >= count else None

        return self._wait_until(check, timeout, "waiting for %d stdout lines" % count)

    # ---- its life ------------------------------------------------------------

    def running(self):
        return self.proc.poll() is None

    def wait(self, timeout=DEFAULT_TIMEOUT):
        """Waits for the exit and for the output pipes to drain; returns the
        exit status. Kills the process and fails when the deadline passes."""
        try:
            rc = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise TestTimeout("process still running after %.1fs\n%s" % (timeout, self._describe()))
        for t in self._threads:
            t.join(timeout)
        return rc

    def assert_stays_running(self, seconds):
        """Fails if the process exits within seconds: for checking that it
        waits for something (a peer, a message) rather than giving up."""
        try:
            rc = self.proc.wait(seconds)
        except subprocess.TimeoutExpired:
            return
        raise AssertionError("process exited early (rc %s)\n%s" % (rc, self._describe()))

    def send_signal(self, signum):
        if self.running():
            self.proc.send_signal(signum)

    @property
    def pid(self):
        return self.proc.pid

    def kill(self):
        """Kills the process if it still runs and reaps it. Idempotent."""
        if self.proc.poll() is None:
            try:
                self.proc.kill()
            except OSError:
                pass
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            pass
        for t in self._threads:
            t.join(1)
        for pipe in (self.proc.stdin, self.proc.stdout, self.proc.stderr):
            if pipe:
                try:
                    pipe.close()
                except OSError:
                    pass
        _live_processes.discard(self)


def bin_program(name):
    """Another program of the build, e.g. the primes example:
    $ZKIT_BIN_DIR/name, else beside $ZKIT_BIN."""
    directory = os.environ.get("ZKIT_BIN_DIR") or os.path.dirname(zkit_bin())
    path = os.path.join(directory, name)
    if not os.access(path, os.X_OK):
        raise RuntimeError("%s not found in %s (set ZKIT_BIN_DIR)" % (name, directory))
    return path


def children_of(pid):
    """The pids of the live (or zombie) processes whose parent is pid, as
    (pid, state, command) tuples, read from /proc. Linux only."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % entry, "rb") as f:
                stat = f.read().decode("utf-8", "replace")
        except OSError:
            continue  # it ended while we looked
        # "pid (comm) state ppid ...": comm may hold spaces and parentheses.
        comm_end = stat.rfind(")")
        fields = stat[comm_end + 2:].split()
        if len(fields) >= 2 and int(fields[1]) == pid:
            found.append((int(entry), fields[0], stat[stat.find("(") + 1:comm_end]))
    return found


def processes_running(*argv):
    """The pids of processes whose command line is exactly argv (e.g.
    "sleep", "31.4159"), for finding a straggler a test started with a
    unique argument. Zombies have no command line and are not counted."""
    wanted = b"".join(str(a).encode() + b"\0" for a in argv)
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open("/proc/%s/cmdline" % entry, "rb") as f:
                if f.read() == wanted:
                    found.append(int(entry))
        except OSError:
            continue
    return found


def zkit_cat(*args, **kwargs):
    """ZkitProcess(["cat", *args]): shorthand for the cat subcommand."""
    return ZkitProcess(["cat"] + list(args), **kwargs)


def run_zkit(args, timeout=DEFAULT_TIMEOUT, stdin=None):
    """Runs zkit to completion; returns (exit status, stdout bytes, stderr
    text)."""
    with ZkitProcess(args, stdin=stdin) as p:
        rc = p.wait(timeout)
        return rc, p.stdout(), p.stderr()


# ---- ports and python peers ----------------------------------------------------


def free_tcp_port(host="127.0.0.1"):
    """A TCP port nothing listens on right now. Racy by nature (another
    process may take it before you do): use it only when the test needs a
    port before anyone binds, and prefer reading a 'bound' line."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        s.bind((host, 0))
        return s.getsockname()[1]
    finally:
        s.close()


class ZmqPeer:
    """Python sockets for one test: peer.socket(zmq.PUSH) makes a socket with
    LINGER 0 and the given options; close() (or the with block, or
    run_tests) closes them all."""

    _live = set()

    def __init__(self):
        self.ctx = zmq.Context()
        self.sockets = []
        ZmqPeer._live.add(self)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False

    def socket(self, kind, **options):
        s = self.ctx.socket(kind)
        s.setsockopt(zmq.LINGER, 0)
        for name, value in options.items():
            s.setsockopt(getattr(zmq, name.upper()), value)
        self.sockets.append(s)
        return s

    def bind_random(self, sock, host="127.0.0.1"):
        """Binds sock to an ephemeral TCP port; returns the endpoint."""
        port = sock.bind_to_random_port("tcp://%s" % host)
        return "tcp://%s:%d" % (host, port)

    def close(self):
        for s in self.sockets:
            s.close(0)
        self.sockets = []
        if self.ctx is not None:
            self.ctx.term()
            self.ctx = None
        ZmqPeer._live.discard(self)


def recv_frames(sock, timeout=DEFAULT_TIMEOUT):
    """Receives one multipart message (a list of bytes) or fails at the
    deadline."""
    if not sock.poll(int(timeout * 1000), zmq.POLLIN):
        raise TestTimeout("no message after %.1fs" % timeout)
    return sock.recv_multipart()


def recv_frame(sock, timeout=DEFAULT_TIMEOUT):
    """Receives a single-frame message and returns its bytes."""
    frames = recv_frames(sock, timeout)
    if len(frames) != 1:
        raise AssertionError("expected one frame, got %d: %r" % (len(frames), frames))
    return frames[0]


def send_frames(sock, frames, timeout=DEFAULT_TIMEOUT):
    """Sends a multipart message once the socket can take it, or fails."""
    if not sock.poll(int(timeout * 1000), zmq.POLLOUT):
        raise TestTimeout("socket not writable after %.1fs" % timeout)
    sock.send_multipart(frames)


def assert_silent(sock, seconds):
    """Fails if a message arrives within seconds (for checking a filter)."""
    if sock.poll(int(seconds * 1000), zmq.POLLIN):
        raise AssertionError("unexpected message: %r" % (sock.recv_multipart(),))


def wait_for(predicate, timeout=DEFAULT_TIMEOUT, what="condition", interval=0.005):
    """Polls predicate() until it returns a true value, which is returned.
    For state that offers no event to wait on."""
    deadline = Deadline(timeout)
    while True:
        value = predicate()
        if value:
            return value
        if deadline.expired():
            raise TestTimeout("%s not met after %.1fs" % (what, timeout))
        time.sleep(interval)


# ---- envelopes, built independently of the C codec --------------------------------


def envelope(body=b"", seq=1, meta=None, id=None, ts=None, extra=(), version=1):
    """The bytes of a zkit envelope [version, id, seq, ts, body, meta?, extra...].
    meta None omits the map (unless extra elements need it in place)."""
    items = [version, id if id is not None else os.urandom(16), seq,
             ts if ts is not None else int(time.time() * 1e6), body]
    if meta is not None or extra:
        items.append(meta if meta is not None else {})
    items.extend(extra)
    return msgpack.packb(items, use_bin_type=True)


def unpack_envelope(frame):
    """Decodes an envelope frame with msgpack; returns the list (str as str,
    bin as bytes)."""
    return msgpack.unpackb(frame, raw=False)


# ---- the runner ------------------------------------------------------------------


def _alarm(signum, frame):
    raise TestTimeout("test deadline reached")


def _cleanup():
    for p in list(_live_processes):
        p.kill()
    for peer in list(ZmqPeer._live):
        try:
            peer.close()
        except Exception:  # pragma: no cover - best effort
            pass


def run_tests(tests, deadline=60.0, argv=None):
    """Runs each test function with a hard deadline (SIGALRM), kills the
    processes and closes the sockets it left, prints one line per test and
    'N passed, M failed'. Command-line arguments select tests by substring.
    Returns the exit status: 0 when all selected tests passed."""
    argv = sys.argv[1:] if argv is None else argv
    selected = [t for t in tests if not argv or any(a in t.__name__ for a in argv)]
    passed = failed = 0
    old = signal.signal(signal.SIGALRM, _alarm)
    try:
        for test in selected:
            start = time.monotonic()
            signal.setitimer(signal.ITIMER_REAL, deadline)
            try:
                test()
            except Exception:
                signal.setitimer(signal.ITIMER_REAL, 0)
                failed += 1
                print("FAIL %s (%.2fs)" % (test.__name__, time.monotonic() - start), flush=True)
                traceback.print_exc(file=sys.stdout)
                sys.stdout.flush()
            else:
                signal.setitimer(signal.ITIMER_REAL, 0)
                passed += 1
                print("ok   %s (%.2fs)" % (test.__name__, time.monotonic() - start), flush=True)
            finally:
                signal.setitimer(signal.ITIMER_REAL, 0)
                _cleanup()
    finally:
        signal.signal(signal.SIGALRM, old)
    print("%d passed, %d failed" % (passed, failed), flush=True)
    return 0 if failed == 0 and passed > 0 else 1


# ---- operating: stats, memory, hostile input --------------------------------------


def zkit_stats(endpoint, *extra, timeout=DEFAULT_TIMEOUT):
    """One STATS round from a device's control endpoint, through the real
    `zkit stats EP --format json`; returns the decoded map."""
    rc, out, err = run_zkit(["stats", endpoint, "--format", "json"] + list(extra), timeout)
    assert rc == 0, "zkit stats %s: exit %s: %s" % (endpoint, rc, err)
    lines = out.decode().splitlines()
    assert len(lines) == 1, lines
    return json.loads(lines[0])


def metric(stats, name, **labels):
    """The value of one sample of a counter or gauge in a STATS map, following
    the label levels in the order given (metric(s, "msgs", socket="in")); 0
    when the metric or the sample is absent (counters start absent)."""
    tree = stats["counters"].get(name, stats["gauges"].get(name))
    for label, value in labels.items():
        if tree is None:
            return 0
        assert isinstance(tree, dict) and list(tree) == [label], (name, label, tree)
        tree = tree[label].get(value)
    if tree is None:
        return 0
    assert isinstance(tree, int), (name, labels, tree)
    return tree


def sanitized():
    """True when the zkit program is an AddressSanitizer build (much slower:
    tests scale their deadlines by SLOW)."""
    try:
        out = subprocess.run(["ldd", zkit_bin()], stdout=subprocess.PIPE,
                             stderr=subprocess.DEVNULL, timeout=10).stdout
    except (OSError, RuntimeError, subprocess.SubprocessError):
        return False
    return b"libasan" in out


SLOW = 3.0 if sanitized() else 1.0


def flood_env():
    """The environment for a device whose memory growth a test bounds: under
    ASan, freed memory sits in a quarantine (256 MiB by default) and reads as
    growth; 1 MiB keeps the bound meaningful. Pass as ZkitProcess(env=...)."""
    opts = os.environ.get("ASAN_OPTIONS", "")
    return {"ASAN_OPTIONS": (opts + ":" if opts else "") + "quarantine_size_mb=1"}


def keygen(directory, *names):
    """Runs `zkit keygen NAME --dir directory` for each name (files NAME and
    NAME_secret); returns {name: (public, secret)} as zmq.auth loads them."""
    keys = {}
    for name in names:
        rc, _, err = run_zkit(["keygen", name, "--dir", directory])
        assert rc == 0, err
        keys[name] = zmq.auth.load_certificate(os.path.join(directory, name + "_secret"))
    return keys


def curve_client(sock, keys, server_public):
    """Makes python socket sock a CURVE client: keys = (public, secret) of its
    own certificate, server_public the server's public key (bytes, Z85)."""
    sock.curve_publickey, sock.curve_secretkey = keys
    sock.curve_serverkey = server_public


def rss_kib(pid):
    """The resident set size of process pid, in KiB (VmRSS)."""
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError("no VmRSS for %d" % pid)


GARBAGE_KINDS = ("random", "empty", "many_frames", "truncated_msgpack", "not_envelope",
                 "unknown_command", "oversized")


def garbage_message(rng, kind, oversize=0):
    """One malformed multipart message (a list of frames) of the given kind.
    "unknown_command" is garbage for most sockets, but [x, "", y] is a valid
    request with an address frame for a ROUTER device that accepts address
    stacks (the balancer's frontend): leave that kind out there."""
    if kind == "random":
        return [bytes(rng.getrandbits(8) for _ in range(rng.randint(1, 64)))]
    if kind == "empty":
        return [b""]
    if kind == "many_frames":
        return [b"x"] * rng.randint(3, 40)
    if kind == "truncated_msgpack":
        whole = msgpack.packb([1, b"\x00" * 16, 1, 0, {}, b"body"], use_bin_type=True)
        return [whole[: rng.randint(1, len(whole) - 1)]]
    if kind == "not_envelope":
        return [msgpack.packb({"hello": "world"}), b"trailing"]
    if kind == "unknown_command":
        return [b"\xff\xfeNOPE", b"", b"ZZZZ"]
    if kind == "oversized":
        return [b"o" * oversize]
    raise ValueError(kind)


def flood_garbage(sock, count, seed=1, kinds=GARBAGE_KINDS, oversize=0, timeout=60.0):
    """Sends count malformed messages on sock (connected to the device), a
    deterministic mix of kinds; "oversized" only when oversize > 0 (a frame
    above the device's ZMQ_MAXMSGSIZE: libzmq drops the connection, the
    socket reconnects). Blocks at the high-water mark like any sender, up to
    timeout in all. Returns {kind: messages sent}."""
    rng = random.Random(seed)
    kinds = [k for k in kinds if k != "oversized" or oversize > 0]
    sent = dict.fromkeys(kinds, 0)
    deadline = Deadline(timeout)
    sock.setsockopt(zmq.SNDTIMEO, 1000)
    for i in range(count):
        kind = kinds[i % len(kinds)]
        frames = garbage_message(rng, kind, oversize)
        while True:
            try:
                sock.send_multipart(frames)
                break
            except zmq.Again:
                if deadline.expired():
                    raise TestTimeout("flood_garbage: the device stopped reading after %d" % i)
        sent[kind] += 1
    return sent


# A strict reader of the Prometheus text exposition format (version 0.0.4):
# what node_exporter's textfile collector accepts, and a little more strict.
METRIC_NAME = r"[a-zA-Z_:][a-zA-Z0-9_:]*"
LABEL_NAME = r"[a-zA-Z_][a-zA-Z0-9_]*"
LABEL_VALUE = r'"(?:[^"\\\n]|\\[\\"n])*"'
VALUE = r"[-+]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][-+]?[0-9]+)?|[-+]?Inf|NaN"
SAMPLE_RE = re.compile(r"^(%s)(?:\{((?:%s=%s)(?:,%s=%s)*)\})? (%s)$" % (
    METRIC_NAME, LABEL_NAME, LABEL_VALUE, LABEL_NAME, LABEL_VALUE, VALUE))
LABEL_RE = re.compile(r"(%s)=(%s)" % (LABEL_NAME, LABEL_VALUE))
HELP_RE = re.compile(r"^# HELP (%s) ((?:[^\\\n]|\\[\\n])*)$" % METRIC_NAME)
TYPE_RE = re.compile(r"^# TYPE (%s) (counter|gauge|histogram|summary|untyped)$" % METRIC_NAME)


def unescape(text):
    return re.sub(r"\\(.)", lambda m: {"n": "\n"}.get(m.group(1), m.group(1)), text)


def parse_prometheus(text):
    """Returns {family: {"help", "type", "samples": {labels tuple: value}}};
    fails on any line that does not follow the grammar or the rules."""
    assert text.endswith("\n"), "the last line must end with a newline"
    families, current, closed = {}, None, set()
    for number, line in enumerate(text[:-1].split("\n"), 1):
        where = "line %d: %r" % (number, line)
        m = HELP_RE.match(line)
        if m:
            name = m.group(1)
            assert name not in families, "second HELP for " + where
            if current:
                closed.add(current)
            current = name
            families[name] = {"help": unescape(m.group(2)), "type": None, "samples": {}}
            continue
        m = TYPE_RE.match(line)
        if m:
            assert m.group(1) == current and families[current]["type"] is None, where
            assert not families[current]["samples"], "TYPE after samples: " + where
            families[current]["type"] = m.group(2)
            continue
        m = SAMPLE_RE.match(line)
        assert m, "not a HELP, TYPE or sample line: " + where
        name = m.group(1)
        assert name == current, "sample outside its family (or family reopened): " + where
        assert name not in closed, where
        family = families[name]
        assert family["type"] in ("counter", "gauge"), where
        labels = tuple((k, unescape(v[1:-1])) for k, v in LABEL_RE.findall(m.group(2) or ""))
        names = [k for k, _ in labels]
        assert len(set(names)) == len(names), "repeated label: " + where
        assert not any(k.startswith("__") for k in names), where
        key = tuple(sorted(labels))
        assert key not in family["samples"], "repeated series: " + where
        value = float(m.group(3))
        if family["type"] == "counter":
            assert name.endswith("_total"), "counter without _total: " + where
            assert value >= 0 and not math.isnan(value), where
        family["samples"][key] = value
    for name, family in families.items():
        assert name.startswith("zkit_"), name
        assert family["type"], "no TYPE for " + name
    return families


