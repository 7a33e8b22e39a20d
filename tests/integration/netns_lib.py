# netns_lib.py: hosts for multi-host tests, as Linux network namespaces.
#
# A Lan is a few "hosts" (network namespaces) plugged into one "switch" (a
# namespace holding a bridge) by veth pairs, all in one private subnet:
#
#     host a (10.77.0.1, eth0) --veth-- [ switch: br0 ] --veth-- host b (10.77.0.2)
#                                          |      |
#                                       host c   host d ...
#
# Everything is created inside namespaces this run owns ("zkmh<pid>-..."),
# with `ip -n NS`, so the host's own network configuration is never touched:
# no interface, address, route or sysctl of the initial namespace changes.
# Deleting the namespaces deletes their veths. A run that died without
# cleaning up leaves namespaces named after a pid that is gone; the next run
# deletes them (remove_leftovers).
#
#   available()       None when namespaces can be made here, else the reason
#   Lan(["a", "b"])   the hosts; lan.ip("a"), lan.cmd("a", [...]) (a command
#                     line that runs inside host a), lan.link_down("a") /
#                     link_up("a") (host a's cable: its eth0), lan.close()
#
# Needs root (CAP_SYS_ADMIN and CAP_NET_ADMIN) and iproute2.
#
# This Source Code Form is subject to the terms of the Mozilla Public
# License, v. 2.0. If a copy of the MPL was not distributed with this
# file, You can obtain one at http://mozilla.org/MPL/2.0/.

import os
import re
import shutil
import subprocess

PREFIX = "zkmh"  # every namespace this module makes starts with it
SUBNET = "10.77.0"
NETNS_DIR = "/run/netns"
_NAME_RE = re.compile(r"^%s(\d+)-" % PREFIX)


def _ip(*args, check=True, timeout=30):
    """Runs `ip ARGS`; returns the completed process. Raises with ip's
    message when check and it fails."""
    r = subprocess.run(["ip"] + [str(a) for a in args], stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, timeout=timeout)
    if check and r.returncode != 0:
        raise RuntimeError("ip %s: exit %d: %s" % (" ".join(map(str, args)), r.returncode,
                                                   r.stderr.decode(errors="replace").strip()))
    return r


def _pid_alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _namespaces():
    r = _ip("netns", "list", check=False)
    names = []
    for line in r.stdout.decode(errors="replace").splitlines():
        if line.strip():
            names.append(line.split()[0])
    return names


def remove_leftovers():
    """Deletes the namespaces of earlier runs whose process is gone (a run
    killed before its cleanup). Returns their names."""
    removed = []
    for name in _namespaces():
        m = _NAME_RE.match(name)
        if m and int(m.group(1)) != os.getpid() and not _pid_alive(int(m.group(1))):
            _kill_processes_in(name)
            _ip("netns", "delete", name, check=False)
            removed.append(name)
    return removed


def remove_mine():
    """Deletes every namespace this process made that is still there (the
    last resort of a run that ends early)."""
    tag = "%s%d-" % (PREFIX, os.getpid())
    for name in _namespaces():
        if name.startswith(tag):
            _kill_processes_in(name)
            _ip("netns", "delete", name, check=False)


def _kill_processes_in(ns):
    """SIGKILLs what still runs in namespace ns (a namespace lives on while a
    process uses it, even once its name is deleted)."""
    r = _ip("netns", "pids", ns, check=False)
    for word in r.stdout.decode().split():
        if word.isdigit() and int(word) != os.getpid():
            try:
                os.kill(int(word), 9)
            except OSError:
                pass


def available():
    """None when this machine lets us make namespaces and veth pairs, else a
    short reason (not root, no ip, the kernel refused)."""
    if os.geteuid() != 0:
        return "running as uid %d" % os.geteuid()
    if not shutil.which("ip"):
        return "no 'ip' program (install iproute2)"
    probe = "%s%d-probe" % (PREFIX, os.getpid())
    try:
        _ip("netns", "add", probe)
    except (RuntimeError, OSError, subprocess.SubprocessError) as exc:
        return "ip netns add failed: %s" % exc
    try:
        _ip("-n", probe, "link", "add", "p0", "type", "veth", "peer", "name", "p1")
        _ip("-n", probe, "link", "add", "br0", "type", "bridge")
    except (RuntimeError, OSError, subprocess.SubprocessError) as exc:
        return "veth or bridge in a namespace failed: %s" % exc
    finally:
        _ip("netns", "delete", probe, check=False)
    return None


class Lan:
    """Hosts in one subnet behind a bridge. Host i (0-based, in the order
    given) has address SUBNET.(i+1)/24 on its eth0."""

    def __init__(self, hosts, tcp_wmem_max=None):
        remove_leftovers()
        self.tag = "%s%d" % (PREFIX, os.getpid())
        self.hosts = list(hosts)
        self.switch = self.tag + "-sw"
        self.created = []
        try:
            self._make_ns(self.switch)
            _ip("-n", self.switch, "link", "add", "br0", "type", "bridge")
            _ip("-n", self.switch, "link", "set", "br0", "up")
            for i, h in enumerate(self.hosts):
                ns = self.ns(h)
                self._make_ns(ns)
                port = "p-%s" % h
                # Both ends are made in the switch, the host's end moved into
                # the host at once: nothing appears in our own namespace.
                _ip("-n", self.switch, "link", "add", port, "type", "veth",
                    "peer", "name", "eth0", "netns", ns)
                _ip("-n", self.switch, "link", "set", port, "master", "br0", "up")
                _ip("-n", ns, "addr", "add", "%s/24" % self.ip(h), "dev", "eth0")
                _ip("-n", ns, "link", "set", "eth0", "up")
                if tcp_wmem_max:
                    # A namespace has its own TCP sysctls: a small send buffer
                    # makes a stalled connection fill up (and a publisher drop)
                    # after a known amount of data.
                    subprocess.run(["ip", "netns", "exec", ns, "sysctl", "-q", "-w",
                                    "net.ipv4.tcp_wmem=4096 16384 %d" % tcp_wmem_max],
                                   check=True, timeout=30)
        except BaseException:
            self.close()
            raise

    def _make_ns(self, ns):
        _ip("netns", "add", ns)
        self.created.append(ns)
        _ip("-n", ns, "link", "set", "lo", "up")

    def ns(self, host):
        return "%s-%s" % (self.tag, host)

    def ip(self, host):
        return "%s.%d" % (SUBNET, self.hosts.index(host) + 1)

    def cmd(self, host, argv):
        """The command line that runs argv inside host."""
        return ["netns", "exec", self.ns(host)] + [str(a) for a in argv]

    def link_down(self, host):
        """Pulls host's cable: its eth0 goes down (its connected route goes
        with it; packets to and from it are lost, connections stay open)."""
        _ip("-n", self.ns(host), "link", "set", "eth0", "down")

    def link_up(self, host):
        """Plugs the cable back: eth0 up (the kernel puts the subnet's route
        back)."""
        _ip("-n", self.ns(host), "link", "set", "eth0", "up")

    def link_state(self, host):
        r = _ip("-n", self.ns(host), "-br", "link", "show", "eth0")
        return r.stdout.decode()

    def close(self):
        """Kills what runs in the hosts and deletes every namespace (their
        veths go with them). Idempotent, never raises."""
        for ns in reversed(self.created):
            try:
                _kill_processes_in(ns)
                _ip("netns", "delete", ns, check=False)
            except Exception:  # pragma: no cover - best effort
                pass
        self.created = []
