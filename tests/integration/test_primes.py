#!/usr/bin/python3
# test_primes.py: the primes example (examples/primes.c) counts exactly even
# when a worker is killed in the middle of the batch.
#
#   ZKIT_BIN_DIR=build/bin /usr/bin/python3 tests/integration/test_primes.py
#
# One worker starts alone, so it is certainly busy when the sink shows its
# first results; two more join, and the first is killed with SIGKILL. Its
# task in flight goes to another worker, and the sink's total must still be
# pi(10^8) = 5761455.
#
# This Source Code Form is subject to the terms of the Mozilla Public
# License, v. 2.0. If a copy of the MPL was not distributed with this
# file, You can obtain one at http://mozilla.org/MPL/2.0/.

import os
import re
import signal
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from zkit_testlib import ZkitProcess, bin_program, run_tests  # noqa: E402

ANY = "tcp://127.0.0.1:*"
RUN_TIMEOUT = 90.0


def primes(*args):
    return ZkitProcess([str(a) for a in args], program=bin_program("primes"))


def bound(process, role):
    return process.wait_stderr(r"^primes %s: bound (\S+)$" % role).group(1)


def test_primes_below_1e8_with_a_worker_killed():
    sink = primes("sink", "--bind", ANY)
    sink_ep = bound(sink, "sink")
    vent = primes("ventilator", "--bind", ANY, "--sink", sink_ep, "--limit", 10**8,
                  "--ranges", 4000)
    vent_ep = bound(vent, "ventilator")
    first = primes("worker", "--connect", vent_ep, "--sink", sink_ep)
    first.wait_stderr(r"^primes worker: started")

    sink.wait_stderr(r"^primes sink: (\d+)/(\d+) ranges done", RUN_TIMEOUT)
    others = [primes("worker", "--connect", vent_ep, "--sink", sink_ep) for _ in range(2)]
    for worker in others:
        worker.wait_stderr(r"^primes worker: started")
    assert sink.running(), "the batch ended before the kill:\n" + sink.stderr()
    first.send_signal(signal.SIGKILL)
    assert first.wait(RUN_TIMEOUT) == -signal.SIGKILL

    # The sink answers at once and tells the ventilator the batch is complete,
    # which also retires a range whose worker died before saying DONE.
    sink.wait_stdout_lines(2, RUN_TIMEOUT)
    out = sink.stdout().decode()
    assert "primes below 100000000: 5761455 (verified: pi(100000000) = 5761455)" in out, out
    assert re.search(r"^time: [\d.]+ s, ranges: 4000, tasks retried: \d+", out, re.M), out
    assert vent.wait(RUN_TIMEOUT) == 0, vent.stderr()
    sink.send_signal(signal.SIGTERM)
    assert sink.wait(RUN_TIMEOUT) == 0, sink.stderr()
    assert re.search(r"^primes ventilator: 4000 ranges done, 0 dead", vent.stderr(), re.M)
    for worker in others:
        worker.send_signal(signal.SIGTERM)
        assert worker.wait(RUN_TIMEOUT) == 0, worker.stderr()


def test_primes_usage():
    for args in ([], ["ventilator", "--bind", ANY], ["sink", "--limit", "x"], ["conductor"]):
        p = primes(*args)
        assert p.wait() == 2, (args, p.stderr())
        assert p.stderr().startswith("primes: ") or p.stderr().startswith("usage: "), p.stderr()
    p = primes("--help")
    assert p.wait() == 0 and p.stdout().startswith(b"usage: primes sink"), p.stdout()


TESTS = [
    test_primes_below_1e8_with_a_worker_killed,
    test_primes_usage,
]

if __name__ == "__main__":
    sys.exit(run_tests(TESTS, deadline=110.0))
