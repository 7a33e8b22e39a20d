#!/usr/bin/python3
# test_spool_faults.py: process-level fault tests of the spool, driven through
# the spool_tool helper (tests/helpers/spool_tool.c).
#
#   ZKIT_BIN_DIR=build/bin /usr/bin/python3 tests/integration/test_spool_faults.py [NAME...]
#
# kill -9: an appender (mostly with fsync always) prints each acknowledged
# seq the moment its append returns; it is killed with SIGKILL after K of
# them (K random), the spool is reopened (recovery) and dumped, and every
# acknowledged seq must be there with its payload intact, nothing corrupt may
# be delivered, and seqs must be contiguous. Cycles: ZKIT_SPOOL_KILL_CYCLES
# (default 200), stopping early once ZKIT_SPOOL_KILL_BUDGET seconds (default
# 40) are spent, so the suite stays under a minute on a slow or sanitized
# build. Payloads are checked independently of the C code: a CRC-32C written
# here in Python, and the self-describing byte pattern spool_tool writes.
#
# This Source Code Form is subject to the terms of the Mozilla Public
# License, v. 2.0. If a copy of the MPL was not distributed with this
# file, You can obtain one at http://mozilla.org/MPL/2.0/.

import os
import random
import re
import shutil
import struct
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from zkit_testlib import ZkitProcess, run_tests  # noqa: E402

STATS_RE = re.compile(r"^stats (.*)$", re.M)

# ---- CRC-32C, independently of the C code ------------------------------------------


def _crc32c_table():
    table = []
    for i in range(256):
        crc = i
        for _ in range(8):
            crc = (crc >> 1) ^ (0x82F63B78 if crc & 1 else 0)
        table.append(crc)
    return table


_TABLE = _crc32c_table()


def crc32c(data):
    crc = 0xFFFFFFFF
    table = _TABLE
    for byte in data:
        crc = (crc >> 8) ^ table[(crc ^ byte) & 0xFF]
    return crc ^ 0xFFFFFFFF


assert crc32c(b"123456789") == 0xE3069283

# ---- driving spool_tool ---------------------------------------------------------------


def tool_path():
    bin_dir = os.environ.get("ZKIT_BIN_DIR")
    if not bin_dir and os.environ.get("ZKIT_BIN"):
        bin_dir = os.path.dirname(os.environ["ZKIT_BIN"])
    path = os.path.join(bin_dir or "", "spool_tool")
    if not os.access(path, os.X_OK):
        raise RuntimeError("spool_tool not found: set ZKIT_BIN_DIR (got %r)" % path)
    return path


def run_tool(args, timeout=30):
    """Runs spool_tool to completion: (exit status, stdout text, stderr text)."""
    proc = subprocess.run([tool_path()] + [str(a) for a in args], stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, timeout=timeout)
    return proc.returncode, proc.stdout.decode(), proc.stderr.decode("utf-8", "replace")


def parse_stats(stderr):
    m = STATS_RE.search(stderr)
    assert m, "no stats line in %r" % stderr
    return {k: int(v) for k, v in (kv.split("=") for kv in m.group(1).split())}


def check_payload(payload):
    """The pattern spool_tool writes: run id, counter, length, then
    (counter * 131 + k * 7) mod 256 for byte k >= 20."""
    assert len(payload) >= 20, "payload of %d bytes" % len(payload)
    counter, length = struct.unpack_from("<QI", payload, 8)
    assert length == len(payload), "length field %d for %d bytes" % (length, len(payload))
    want = bytes(((counter * 131 + k * 7) & 0xFF) for k in range(20, len(payload)))
    assert payload[20:] == want, "payload pattern broken (counter %d)" % counter


def dump(spool_dir, payload_from=None, read_only=False):
    """Returns ({seq: (size, crc, payload or None)} in order as a list of
    seqs, the dict, the stats)."""
    args = ["dump", spool_dir]
    if read_only:
        args.append("--read-only")
    if payload_from is not None:
        args += ["--payload-from", payload_from]
    rc, out, err = run_tool(args)
    assert rc == 0, "dump failed (%d): %s" % (rc, err)
    order, records = [], {}
    for line in out.splitlines():
        parts = line.split()
        seq, size, crc = int(parts[0]), int(parts[1]), int(parts[2], 16)
        payload = bytes.fromhex(parts[3]) if len(parts) > 3 else None
        if payload is not None:
            assert len(payload) == size
            assert crc32c(payload) == crc, "seq %d: CRC mismatch" % seq
            check_payload(payload)
        order.append(seq)
        records[seq] = (size, crc, payload)
    return order, records, parse_stats(err)


def segment_records(path):
    """[(offset, end, seq)] of the well-formed records of a segment file, up
    to the first one that is not (a torn tail)."""
    data = open(path, "rb").read()
    out, off = [], 64
    while off + 32 <= len(data):
        magic, size, seq = struct.unpack_from("<IIQ", data, off)
        end = off + 32 + ((size + 7) & ~7)
        if magic != 0x1E524B5A or end > len(data):
            break
        out.append((off, end, seq))
        off = end
    return out, len(data)


def tear_after(spool_dir, last_acked, rng):
    """Damages the newest segment after its last acknowledged record, as a
    machine crash during a write could: cuts it inside an unacknowledged
    record, or appends garbage. Returns 1 when it left a torn tail."""
    segs = sorted(f for f in os.listdir(spool_dir) if f.endswith(".zseg"))
    path = os.path.join(spool_dir, segs[-1])
    records, size = segment_records(path)
    safe = 64
    for off, end, seq in records:
        if seq <= last_acked:
            safe = end
    if rng.random() < 0.5 and size > safe + 1:
        at = rng.randrange(safe + 1, size)
        with open(path, "r+b") as f:
            f.truncate(at)
        # A cut exactly between two records leaves nothing torn.
        return 0 if at in {end for _, end, _ in records} else 1
    with open(path, "ab") as f:
        f.write(bytes(rng.randrange(256) for _ in range(rng.randint(1, 200))))
    return 1


def acked_lines(proc):
    """(seq, crc, size) for every complete line the appender printed."""
    acked = []
    for line in proc.stdout().split(b"\n")[:-1]:
        seq, crc, size = line.split()
        acked.append((int(seq), int(crc, 16), int(size)))
    return acked


# ---- the tests ---------------------------------------------------------------------------


def test_kill9_cycles_lose_nothing_acknowledged():
    cycles = int(os.environ.get("ZKIT_SPOOL_KILL_CYCLES", "200"))
    budget = float(os.environ.get("ZKIT_SPOOL_KILL_BUDGET", "40"))
    seed = int(os.environ.get("ZKIT_SPOOL_KILL_SEED", str(int(time.time()))))
    rng = random.Random(seed)
    spool_dir = tempfile.mkdtemp(prefix="zkit-spool-kill-")
    started = time.monotonic()
    acked = {}  # seq -> (crc, size), over all cycles
    done = torn = cut = 0
    try:
        for cycle in range(cycles):
            if cycle and time.monotonic() - started > budget:
                break
            threads = rng.choice([1, 1, 2, 4])
            k = rng.randint(1, 60)
            # Mostly fsync always. A kill -9 is a crash of the process, not of
            # the machine, so under every policy an acknowledged append
            # survives it; without syncs the appender spends its time in
            # writes, where a kill can tear a record.
            fsync = rng.choice(["always"] * 6 + ["never"] * 3 + ["interval:5"])
            if fsync != "always":
                k = rng.randint(1, 300)
            proc = ZkitProcess(["append", spool_dir, 0, "--fsync", fsync, "--segment-size",
                                rng.choice([8192, 65536]), "--threads", threads, "--max-size",
                                rng.choice([2000, 70000]), "--seed", rng.randrange(1 << 30)],
                               program=tool_path())
            try:
                proc.wait_stdout_lines(k, timeout=30)
            finally:
                proc.kill()  # SIGKILL, then reaped
            assert proc.proc.returncode == -9, "appender ended by itself: %s" % proc.stderr()
            new = acked_lines(proc)
            assert len(new) >= k
            first_new = min(seq for seq, _, _ in new)
            for seq, crc, size in new:
                if seq in acked:
                    raise AssertionError("cycle %d: seq %d acknowledged twice" % (cycle, seq))
                acked[seq] = (crc, size)

            # Now and then, what a machine crash could add under fsync always:
            # a torn write or garbage after the last acknowledged record.
            if fsync == "always" and rng.random() < 0.3:
                torn += tear_after(spool_dir, max(acked), rng)

            # Reopen (recovery) and dump; payloads of this cycle's records are
            # checked byte by byte in Python.
            order, records, stats = dump(spool_dir, payload_from=first_new)
            assert order == list(range(1, len(order) + 1)), \
                "cycle %d: seqs not contiguous: %r" % (cycle, order[:5])
            assert stats["quarantined"] == 0 and stats["bad_segments"] == 0, stats
            cut += stats["torn"]
            for seq, (crc, size) in acked.items():
                assert seq in records, "cycle %d: acknowledged seq %d lost" % (cycle, seq)
                assert records[seq][:2] == (size, crc), \
                    "cycle %d: seq %d changed: %r != %r" % (cycle, seq, records[seq][:2], (size, crc))
            # Recovery twice gives the same result; and now and then a full
            # verify of every segment.
            if cycle % 10 == 0:
                order2, records2, stats2 = dump(spool_dir, read_only=True)
                assert order2 == order
                assert {s: r[:2] for s, r in records2.items()} == \
                    {s: r[:2] for s, r in records.items()}
                assert stats2["torn"] == 0, stats2
                rc, out, err = run_tool(["verify", spool_dir])
                assert rc == 0, "verify: %s %s" % (out, err)
            done += 1
        print("  %d kill -9 cycles in %.1fs (seed %d): %d acknowledged records, all intact; "
              "%d torn tails made, %d cut by recovery"
              % (done, time.monotonic() - started, seed, len(acked), torn, cut), flush=True)
        assert cut >= torn
        assert done >= min(cycles, 20), "only %d cycles ran" % done
    finally:
        shutil.rmtree(spool_dir, ignore_errors=True)


def test_corruption_on_disk_is_quarantined_not_delivered():
    spool_dir = tempfile.mkdtemp(prefix="zkit-spool-corrupt-")
    try:
        rc, out, err = run_tool(["append", spool_dir, 40, "--fsync", "never", "--segment-size",
                                 "1000000", "--seed", 7])
        assert rc == 0, err
        appended = [line.split() for line in out.splitlines()]
        assert len(appended) == 40
        seg = os.path.join(spool_dir, "%016x.zseg" % 1)
        data = bytearray(open(seg, "rb").read())
        # Walk the records (32-byte headers, 8-byte aligned) to find seq 20.
        off, seq = 64, 1
        while seq < 20:
            (size,) = struct.unpack_from("<I", data, off + 4)
            off += 32 + ((size + 7) & ~7)
            seq += 1
        assert struct.unpack_from("<Q", data, off + 8)[0] == 20
        data[off + 40] ^= 0x01  # a bit in the payload of seq 20
        open(seg, "wb").write(bytes(data))

        for attempt in range(2):
            order, records, stats = dump(spool_dir, payload_from=1)
            assert order == [s for s in range(1, 41) if s != 20]
            assert stats["quarantined"] == (1 if attempt == 0 else 0), stats
            assert stats["quarantined_records"] == (1 if attempt == 0 else 0), stats
            quarantine = open(os.path.join(spool_dir, "quarantine")).read().splitlines()
            assert len(quarantine) == 1, quarantine
            fields = quarantine[0].split()
            assert fields[0] == "%016x.zseg" % 1 and int(fields[1]) == off, fields
            assert (int(fields[3]), int(fields[4])) == (20, 21), fields
        rc, out, err = run_tool(["verify", spool_dir])
        assert rc == 1, out  # the region is still there, known, reported
        assert "bad_regions=1" in out and "records=39" in out, out
    finally:
        shutil.rmtree(spool_dir, ignore_errors=True)


def test_small_filesystem_full():
    """A 1 MiB tmpfs: the appender gets a clear error (ENOSPC), everything it
    acknowledged is there, and once space returns appends go on. Needs root
    and mount; skipped otherwise."""
    mount_dir = tempfile.mkdtemp(prefix="zkit-spool-tmpfs-")
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", mount_dir],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL).returncode == 0
    if not mounted:
        os.rmdir(mount_dir)
        print("  skipped: cannot mount a tmpfs here (not root?)", flush=True)
        return
    try:
        spool_dir = os.path.join(mount_dir, "spool")
        rc, out, err = run_tool(["append", spool_dir, 100000, "--fsync", "always",
                                 "--segment-size", 65536, "--max-size", 20000, "--seed", 3])
        assert rc == 1, "append should have failed: %s" % err
        assert "No space left on device" in err, err
        acked = [line.split() for line in out.splitlines()]
        assert len(acked) > 100
        order, records, stats = dump(spool_dir)
        assert order == list(range(1, len(order) + 1))
        for seq, crc, size in acked:
            assert records[int(seq)][:2] == (int(size), int(crc, 16)), seq
        assert stats["torn"] == 0 and stats["quarantined"] == 0, stats
        # Space returns: acknowledge and retire most of it, append again.
        rc, _, err = run_tool(["ack"] + [spool_dir] + [str(s) for s in order[:-10]])
        assert rc == 0, err
        rc, out, err = run_tool(["append", spool_dir, 50, "--fsync", "always",
                                 "--segment-size", 65536, "--seed", 4])
        assert rc == 0, err
        assert int(out.splitlines()[0].split()[0]) == order[-1] + 1
    finally:
        subprocess.run(["umount", mount_dir])
        os.rmdir(mount_dir)


TESTS = [
    test_kill9_cycles_lose_nothing_acknowledged,
    test_corruption_on_disk_is_quarantined_not_delivered,
    test_small_filesystem_full,
]

if __name__ == "__main__":
    sys.exit(run_tests(TESTS, deadline=float(os.environ.get("ZKIT_SPOOL_KILL_BUDGET", "40")) + 60))
