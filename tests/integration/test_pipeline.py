#!/usr/bin/python3
# test_pipeline.py: process-level tests of the pipeline devices, `zkit
# ventilator`, `zkit worker --exec` and `zkit sink`, as users run them.
#
#   ZKIT_BIN=build/bin/zkit /usr/bin/python3 tests/integration/test_pipeline.py [NAME...]
#
# Real processes only: tasks go in on the ventilator's stdin, results come
# out of the sink's file. Every wait is for an event (a "bound" line, a
# progress line, an exit) with a deadline; nothing sleeps for a fixed time.
#
# This Source Code Form is subject to the terms of the Mozilla Public
# License, v. 2.0. If a copy of the MPL was not distributed with this
# file, You can obtain one at http://mozilla.org/MPL/2.0/.

import os
import random
import re
import select
import signal
import string
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from pipeline_lib import Workdir  # noqa: E402
from zkit_testlib import (  # noqa: E402
    TestTimeout,
    ZkitProcess,
    children_of,
    free_tcp_port,
    processes_running,
    run_tests,
    run_zkit,
    wait_for,
)

ANY = "tcp://127.0.0.1:*"
# Peers are presumed dead after 250 ms x 4: a killed worker's task comes
# back within a second, not the default three.
HEARTBEAT = ["--heartbeat", "250", "--liveness", "4"]
# Generous: the suite also runs under AddressSanitizer on a busy machine.
RUN_TIMEOUT = 90.0
PROGRESS_RE = r"^zkit sink: progress (\d+)/(\d+|\?)"
SQUARE = "read x; echo $((x*x))"


def start_sink(output, *extra):
    """A sink without a grace period, unless extra gives one: with no worker
    killed, no result can come again after the batch is complete."""
    sink = ZkitProcess(["sink", "--bind", ANY, "--output", output, "--progress", "lines",
                        "--grace", "0"] + list(extra))
    return sink, sink.wait_bound()


def start_ventilator(sink_ep, tasks, *extra, bind=ANY):
    """Starts a ventilator reading tasks (bytes) on stdin."""
    vent = ZkitProcess(["ventilator", "--bind", bind, "--sink", sink_ep] + list(extra),
                       stdin=tasks)
    return vent, vent.wait_bound()


def start_worker(vent_ep, sink_ep, command, *extra):
    worker = ZkitProcess(["worker", "--connect", vent_ep, "--sink", sink_ep, "--exec", command]
                         + list(extra))
    worker.wait_stderr(r"^zkit worker: started")
    return worker


def lines_of(numbers):
    return "".join("%s\n" % n for n in numbers).encode()


def read_lines(path):
    with open(path, "rb") as f:
        data = f.read()
    assert data == b"" or data.endswith(b"\n"), data[-100:]
    return data.split(b"\n")[:-1]


def stop_worker(worker, idle=True):
    """No child left behind (zombie or not) when idle; then SIGTERM and a
    clean exit."""
    if idle:
        wait_for(lambda: children_of(worker.pid) == [], 10,
                 "no children of the worker (%r)" % (children_of(worker.pid),))
    worker.send_signal(signal.SIGTERM)
    rc = worker.wait(RUN_TIMEOUT)
    assert rc == 0, worker.stderr()
    assert re.search(r"^zkit worker: stopped: \d+ tasks", worker.stderr(), re.M), worker.stderr()


def summary_line(process, name):
    m = re.search(r"^zkit %s: batch \S+ \w[\w ]*: .*$" % name, process.stderr(), re.M)
    assert m, process.stderr()
    return m.group(0)


# ---- (a) reliable: a worker killed mid-run ---------------------------------------


def test_reliable_2000_tasks_worker_killed():
    """2,000 tasks through three exec workers; one is killed with SIGKILL once
    the sink shows results: every result arrives exactly once, correct."""
    total = 2000
    with Workdir() as wd:
        out = wd.file("results.txt")
        # A task whose result was stored just before its worker died is
        # retired by the sink's COMPLETE; the sink then exits as soon as the
        # ventilator confirms it, long before this grace bound.
        sink, sink_ep = start_sink(out, "--grace", "60000")
        vent, vent_ep = start_ventilator(sink_ep, lines_of(range(1, total + 1)), *HEARTBEAT)
        workers = [start_worker(vent_ep, sink_ep, SQUARE, *HEARTBEAT) for _ in range(3)]

        # The event: the sink has stored some results, not all.
        sink.wait_stderr_where(PROGRESS_RE, lambda m: int(m.group(1)) >= 1, RUN_TIMEOUT)
        assert sink.running(), "the batch ended before the kill: %s" % sink.stderr()
        workers[0].send_signal(signal.SIGKILL)
        assert workers[0].wait(RUN_TIMEOUT) == -signal.SIGKILL

        sink.wait_stderr(r"^zkit sink: batch \S+ complete", RUN_TIMEOUT)
        assert vent.wait(RUN_TIMEOUT) == 0, vent.stderr()
        # No SIGTERM: the ventilator's OK to COMPLETE ends the grace period.
        assert sink.wait(RUN_TIMEOUT) == 0, sink.stderr()
        results = [int(line) for line in read_lines(out)]
        assert len(results) == total, len(results)
        assert sorted(results) == [i * i for i in range(1, total + 1)]
        line = summary_line(sink, "sink")
        assert "complete: %d/%d results, 0 dead" % (total, total) in line, line
        line = summary_line(vent, "ventilator")
        assert "%d tasks, %d done, 0 dead" % (total, total) in line, line
        print("     " + line, flush=True)  # how many attempts the kill cost
        for worker in workers[1:]:
            stop_worker(worker)


# ---- (a') the last DONE lost, the sink gone ----------------------------------------


def read_fifo(fd, size, timeout):
    """Reads up to size bytes from a non-blocking fd, until EOF or the
    deadline (TestTimeout)."""
    deadline = time.monotonic() + timeout
    data = b""
    while len(data) < size:
        left = deadline - time.monotonic()
        if left <= 0:
            raise TestTimeout("%d of %d bytes from the fifo" % (len(data), size))
        readable, _, _ = select.select([fd], [], [], left)
        if not readable:
            continue
        try:
            chunk = os.read(fd, size - len(data))
        except BlockingIOError:
            continue
        if not chunk:
            break
        data += chunk
    return data


def test_ventilator_completes_when_the_last_done_is_lost():
    """A worker is frozen (SIGSTOP) while the sink stores its result, so its
    DONE never goes out, and the sink, with --grace 0, exits as soon as the
    batch is complete. The ventilator must still end at once with status 0:
    the sink told it the batch was complete (COMPLETE), and it retired the
    task no DONE will ever come for, even though the task went to another
    worker whose result no one acknowledges any more."""
    # Larger than a pipe holds: the sink's write of the result blocks until
    # the test reads it all, so the ACK cannot reach the worker before it is
    # frozen. No sleep, no race.
    body = b"x" * (1 << 20)
    with Workdir() as wd:
        fifo = wd.file("results.fifo")
        os.mkfifo(fifo)
        # Non-blocking, so opening does not wait for the writer (nor hang
        # when the sink fails to start); the sink opens it before it binds.
        fd = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)
        processes = []
        try:
            sink, sink_ep = start_sink(fifo)
            processes.append(sink)
            vent, vent_ep = start_ventilator(sink_ep, body + b"\n", *HEARTBEAT)
            processes.append(vent)
            first = start_worker(vent_ep, sink_ep, "cat", *HEARTBEAT)
            processes.append(first)
            # The event: the sink is writing the result, so it has the RESULT,
            # and it acknowledges it only when the write is done.
            stored = read_fifo(fd, 1, RUN_TIMEOUT)
            first.send_signal(signal.SIGSTOP)
            second = start_worker(vent_ep, sink_ep, "cat", *HEARTBEAT)
            processes.append(second)
            stored += read_fifo(fd, len(body) + 1 - len(stored), RUN_TIMEOUT)
            assert stored == body + b"\n", len(stored)

            assert sink.wait(RUN_TIMEOUT) == 0, sink.stderr()
            assert "complete: 1/1 results, 0 dead" in summary_line(sink, "sink")
            # Promptly: COMPLETE went out as the batch completed. Before it
            # existed, the ventilator waited here for ever.
            assert vent.wait(15) == 0, vent.stderr()
            line = summary_line(vent, "ventilator")
            assert "1 tasks, 1 done, 0 dead" in line, line
        finally:
            os.close(fd)
            for process in processes:
                process.kill()  # SIGKILL ends the frozen worker too


# ---- (b) a poison task ends as a dead letter -------------------------------------


def test_poison_task_is_dead_lettered():
    """A task whose command always fails is retried max-attempts times, then
    reported with its reason; the batch still ends, with exit status 3."""
    tasks = [str(i) for i in range(1, 31)]
    tasks.insert(15, "poison")  # task seq 16
    command = ('read x; if [ "$x" = poison ]; then '
               'echo "cannot digest $x, attempt $ZKIT_TASK_ATTEMPT of task $ZKIT_TASK_SEQ" >&2; '
               'exit 3; fi; echo "ok $x"')
    with Workdir() as wd:
        out = wd.file("results.txt")
        sink, sink_ep = start_sink(out)
        # --wait: the whole input is read before the first task goes out.
        vent, vent_ep = start_ventilator(sink_ep, lines_of(tasks), "--max-attempts", "3",
                                         "--batch", "poison-test", "--wait", *HEARTBEAT)
        workers = [start_worker(vent_ep, sink_ep, command, *HEARTBEAT) for _ in range(2)]

        assert sink.wait(RUN_TIMEOUT) == 3, sink.stderr()
        assert vent.wait(RUN_TIMEOUT) == 3, vent.stderr()
        assert sorted(read_lines(out)) == sorted(b"ok %d" % i for i in range(1, 31))
        line = summary_line(sink, "sink")
        assert "batch poison-test complete: 30/31 results, 1 dead" in line, line
        dead = re.findall(r"^zkit sink: dead letter: task (\d+) \(id [0-9a-f]{32}\) "
                          r"after (\d+) attempts: (.*)$", sink.stderr(), re.M)
        assert len(dead) == 1, sink.stderr()
        seq, attempts, reason = dead[0]
        assert (seq, attempts) == ("16", "3"), dead
        assert "exit status 3: cannot digest poison, attempt 3 of task 16" in reason, reason
        assert "1 dead" in summary_line(vent, "ventilator")
        for worker in workers:
            stop_worker(worker)


# ---- (c) fast mode ----------------------------------------------------------------


def test_fast_mode_end_to_end():
    """--fast everywhere: PUSH/PULL, no acknowledgements; with no failure
    every result arrives, and the sink completes on the announced total."""
    total = 500
    with Workdir() as wd:
        out = wd.file("results.txt")
        sink, sink_ep = start_sink(out, "--fast")
        # Workers first, connecting to the port the ventilator will bind: a
        # fast ventilator hands everything to whoever is connected.
        vent_ep = "tcp://127.0.0.1:%d" % free_tcp_port()
        workers = [start_worker(vent_ep, sink_ep, 'read x; echo "$x done"', "--fast")
                   for _ in range(2)]
        tasks = wd.file("tasks.txt")
        with open(tasks, "wb") as f:
            f.write(lines_of(range(total)))
        vent, _ = start_ventilator(sink_ep, None, "--fast", "--file", tasks, bind=vent_ep)
        assert sink.wait(RUN_TIMEOUT) == 0, sink.stderr()
        assert vent.wait(RUN_TIMEOUT) == 0, vent.stderr()
        assert sorted(read_lines(out)) == sorted(b"%d done" % i for i in range(total))
        for worker in workers:
            stop_worker(worker)


# ---- (d) usage and help -----------------------------------------------------------

USAGE_ERRORS = {
    "ventilator": [
        [],
        ["--bind", ANY],
        ["--bind", ANY, "--sink", ANY, "--max-attempts", "-1"],
        ["--bind", ANY, "--sink", ANY, "--heartbeat", "soon"],
        ["--bind", ANY, "--sink", ANY, "--batch", "x" * 65],
        ["--bind", ANY, "--sink", ANY, "--bogus"],
        ["--bind", ANY, "--sink", ANY, "stray"],
        ["--bind"],
    ],
    "worker": [
        [],
        ["--connect", ANY, "--sink", ANY],
        ["--connect", ANY, "--sink", ANY, "--exec", "cat", "--window", "0"],
        ["--connect", ANY, "--sink", ANY, "--exec", "cat", "--exec-timeout", "1s"],
        ["--connect", ANY, "--sink", ANY, "--exec", ""],
        ["--connect", ANY, "--sink", ANY, "--exec", "cat", "-x"],
    ],
    "sink": [
        [],
        ["--bind", ANY],
        ["--bind", ANY, "--output", "-", "--progress", "fancy"],
        ["--bind", ANY, "--output", "-", "--batch-timeout", "0"],
        ["--bind", ANY, "--output", "-", "--fast=yes"],
    ],
}


def test_usage_errors_exit_2_with_one_line():
    for command, cases in USAGE_ERRORS.items():
        for args in cases:
            rc, out, err = run_zkit([command] + args)
            lines = err.splitlines()
            assert rc == 2, (command, args, rc, err)
            assert out == b"", (command, args, out)
            assert len(lines) == 1, (command, args, err)
            assert lines[0].startswith("zkit %s: " % command), lines
            assert lines[0].endswith("(see 'zkit %s --help')" % command), lines


def test_help_exits_0_on_stdout():
    for command in ("ventilator", "worker", "sink"):
        rc, out, err = run_zkit([command, "--help"])
        assert rc == 0 and err == "", (command, rc, err)
        text = out.decode()
        assert text.startswith("usage: zkit %s " % command), text
        assert "Exit status:" in text, text
    rc, out, _ = run_zkit(["--help"])
    assert rc == 0
    for command in ("ventilator", "worker", "sink"):
        assert re.search(r"^  %s\s" % command, out.decode(), re.M), out


def test_start_failures_exit_1():
    """A bind that fails, an input that cannot be opened: exit 1, one line."""
    with Workdir() as wd:
        sink, sink_ep = start_sink(wd.file("a.txt"))
        rc, _, err = run_zkit(["sink", "--bind", sink_ep, "--output", wd.file("b.txt")])
        assert rc == 1 and "cannot start" in err, (rc, err)
        rc, _, err = run_zkit(["ventilator", "--bind", ANY, "--sink", sink_ep,
                               "--file", wd.file("missing")])
        assert rc == 1 and "cannot open" in err, (rc, err)
        rc, _, err = run_zkit(["sink", "--bind", ANY, "--output", wd.file("no/such/dir")])
        assert rc == 1 and "cannot open" in err, (rc, err)
        # No lines, no batch: a batch of 0 tasks would leave the sink waiting.
        for wait in ([], ["--wait"]):
            rc, _, err = run_zkit(["ventilator", "--bind", ANY, "--sink", sink_ep] + wait,
                                  stdin=b"")
            assert rc == 1 and "stdin has no lines" in err, (rc, err)


# ---- (e) the exec handler -----------------------------------------------------------


def test_exec_big_bodies_through_cat():
    """1 MiB bodies through cat, two at a time: the handler writes stdin and
    reads stdout at once (a pipe holds 64 KiB), so nothing deadlocks; and a
    command that reads only part of its input (head) is not an error."""
    rng = random.Random(7)
    alphabet = (string.ascii_letters + string.digits).encode()
    bodies = [bytes(rng.choice(alphabet) for _ in range(1 << 20)) for _ in range(4)]
    with Workdir() as wd:
        for command, expect in (("cat", bodies), ("head -c 10", [b[:10] for b in bodies])):
            out = wd.file("results-%s.txt" % command.split()[0])
            sink, sink_ep = start_sink(out)
            vent, vent_ep = start_ventilator(sink_ep, b"\n".join(bodies) + b"\n")
            worker = start_worker(vent_ep, sink_ep, command, "--window", "2")
            assert sink.wait(RUN_TIMEOUT) == 0, sink.stderr()
            assert vent.wait(RUN_TIMEOUT) == 0, vent.stderr()
            assert sorted(read_lines(out)) == sorted(expect), command
            stop_worker(worker)


def test_exec_failure_reasons():
    """Exit status with the first line of stderr, a signal, a timeout that
    kills the command's whole process group; no zombie, no straggler."""
    marker = "31.%d" % random.randrange(10000, 99999)  # a unique sleep argument
    command = ('read x; case "$x" in '
               'exit3) echo "three happened" >&2; echo more >&2; exit 3;; '
               'signal) kill -9 $$;; '
               'sleep) sleep %s; echo late;; '
               'bg) sleep %s & echo "left a child";; '
               '*) echo "fine $x";; esac' % (marker, marker))
    with Workdir() as wd:
        out = wd.file("results.txt")
        sink, sink_ep = start_sink(out)
        vent, vent_ep = start_ventilator(sink_ep, b"ok\nexit3\nsignal\nsleep\nbg\n",
                                         "--max-attempts", "1")
        worker = start_worker(vent_ep, sink_ep, command, "--exec-timeout", "700", "--window", "3")
        assert sink.wait(RUN_TIMEOUT) == 3, sink.stderr()
        assert vent.wait(RUN_TIMEOUT) == 3, vent.stderr()
        assert sorted(read_lines(out)) == [b"fine ok", b"left a child"]
        reasons = dict(re.findall(r"^zkit sink: dead letter: task (\d+) .*? after 1 attempts: (.*)$",
                                  sink.stderr(), re.M))
        assert set(reasons) == {"2", "3", "4"}, sink.stderr()
        assert reasons["2"].endswith("exit status 3: three happened"), reasons
        assert reasons["3"].endswith("killed by signal 9"), reasons
        assert reasons["4"].endswith("timed out after 700 ms"), reasons
        # The timed-out sleep and the one left in the background are gone.
        wait_for(lambda: not processes_running("sleep", marker), 10, "sleep %s to end" % marker)
        stop_worker(worker)


def test_worker_sigterm_kills_running_command():
    """SIGTERM while a command runs: the command's group is killed and the
    worker exits 0 at once instead of waiting for it."""
    marker = "32.%d" % random.randrange(10000, 99999)
    with Workdir() as wd:
        sink, sink_ep = start_sink(wd.file("results.txt"))
        vent, vent_ep = start_ventilator(sink_ep, b"one\n")
        worker = start_worker(vent_ep, sink_ep, "sleep %s" % marker)
        wait_for(lambda: processes_running("sleep", marker), RUN_TIMEOUT, "the command to start")
        stop_worker(worker, idle=False)  # well before the 32 s sleep ends
        wait_for(lambda: not processes_running("sleep", marker), 10, "sleep %s to end" % marker)


def test_sink_refuses_results_it_cannot_write():
    """Output on /dev/full: every write fails (ENOSPC), so nothing is
    acknowledged; the batch times out listing the missing task seqs."""
    sink, sink_ep = start_sink("/dev/full", "--batch-timeout", "2000")
    vent, vent_ep = start_ventilator(sink_ep, b"a\nb\nc\n")
    start_worker(vent_ep, sink_ep, "cat")
    assert sink.wait(RUN_TIMEOUT) == 1, sink.stderr()
    err = sink.stderr()
    assert "No space left on device" in err, err
    assert re.search(r"^zkit sink: 3 missing, task seqs: 1 2 3$", err, re.M), err
    assert "timed out: 0/3 results" in summary_line(sink, "sink")


TESTS = [
    test_reliable_2000_tasks_worker_killed,
    test_ventilator_completes_when_the_last_done_is_lost,
    test_poison_task_is_dead_lettered,
    test_fast_mode_end_to_end,
    test_usage_errors_exit_2_with_one_line,
    test_help_exits_0_on_stdout,
    test_start_failures_exit_1,
    test_exec_big_bodies_through_cat,
    test_exec_failure_reasons,
    test_worker_sigterm_kills_running_command,
    test_sink_refuses_results_it_cannot_write,
]

if __name__ == "__main__":
    sys.exit(run_tests(TESTS, deadline=110.0))
