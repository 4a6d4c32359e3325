"""Test hosts as network namespaces: made by the tests, always removed.

Names carry the pid and a counter so two runs on one machine never collide.
Everything goes through the real `ip` tool and the real kernel.
"""

from __future__ import annotations

import itertools
import os
import shutil
import subprocess
import time

_counter = itertools.count()


def have_netns() -> str | None:
    """None when namespaces can be used here, else the reason they can't."""
    if os.geteuid() != 0:
        return "needs root for network namespaces"
    if shutil.which("ip") is None:
        return "needs iproute2's ip"
    return None


def unique(prefix: str) -> str:
    # interface names are limited to 15 characters
    return f"{prefix}{os.getpid() % 100000}{next(_counter)}"[:15]


def sh(*args: str, check: bool = True, ns: str | None = None, timeout: float = 30,
       **kw) -> subprocess.CompletedProcess:
    cmd = list(args)
    if ns:
        cmd = ["ip", "netns", "exec", ns, *cmd]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, **kw)
    if check and r.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed ({r.returncode}): {r.stderr.strip()}")
    return r


class Netns:
    """One namespace; `run` executes a command inside it."""

    def __init__(self, prefix: str = "dn"):
        self.name = unique(prefix)
        sh("ip", "netns", "add", self.name)
        self.run("ip", "link", "set", "lo", "up")
        for key in ("all", "default"):
            self.sysctl(f"net.ipv6.conf.{key}.accept_dad", "0")

    def run(self, *args: str, check: bool = True, timeout: float = 30, **kw):
        return sh(*args, check=check, ns=self.name, timeout=timeout, **kw)

    def popen(self, *args: str, **kw) -> subprocess.Popen:
        return subprocess.Popen(["ip", "netns", "exec", self.name, *args], **kw)

    def sysctl(self, key: str, value: str) -> None:
        self.run("sysctl", "-qw", f"{key}={value}")

    def delete(self) -> None:
        sh("ip", "netns", "del", self.name, check=False)


class Topology:
    """A set of namespaces, bridges and veth pairs torn down as one."""

    def __init__(self):
        self.hosts: dict[str, Netns] = {}
        self._links: list[str] = []

    def host(self, role: str) -> Netns:
        ns = Netns(role[:4])
        self.hosts[role] = ns
        return ns

    def link(self, a: Netns, a_if: str, b: Netns, b_if: str) -> None:
        """A veth pair with a_if in `a` and b_if in `b`, both up."""
        tmp_a, tmp_b = unique("va"), unique("vb")
        sh("ip", "link", "add", tmp_a, "type", "veth", "peer", "name", tmp_b)
        sh("ip", "link", "set", tmp_a, "netns", a.name)
        sh("ip", "link", "set", tmp_b, "netns", b.name)
        a.run("ip", "link", "set", tmp_a, "name", a_if)
        b.run("ip", "link", "set", tmp_b, "name", b_if)
        a.run("ip", "link", "set", a_if, "up")
        b.run("ip", "link", "set", b_if, "up")

    def teardown(self) -> None:
        for ns in self.hosts.values():
            ns.delete()
        self.hosts.clear()


def ra_pair(topo: Topology, rtr_role: str = "rtr", mn_role: str = "mn", *,
            addresses=("2001:db8::/64",), accept_ra: bool = True,
            solicit: bool = True) -> tuple[Netns, Netns]:
    """The RA tests' link: a router and a host joined on wlan0 (a veth pair).

    The router forwards and holds *addresses* on wlan0 (no DAD); the host does
    not forward, takes RAs into its kernel when *accept_ra*, and sends no Router
    Solicitations of its own unless *solicit* (a test that sends its own)."""
    rtr, mn = topo.host(rtr_role), topo.host(mn_role)
    topo.link(rtr, "wlan0", mn, "wlan0")
    rtr.sysctl("net.ipv6.conf.all.forwarding", "1")
    mn.sysctl("net.ipv6.conf.all.forwarding", "0")
    mn.sysctl("net.ipv6.conf.wlan0.accept_ra", "1" if accept_ra else "0")
    if not solicit:
        mn.sysctl("net.ipv6.conf.wlan0.router_solicitations", "0")
    for a in addresses:
        rtr.run("ip", "addr", "add", a, "dev", "wlan0", "nodad")
    return rtr, mn


def start_listener(ns: Netns, procs: list, *args: str, ready: str = "sniffing",
                   **kw) -> subprocess.Popen:
    """Start *args* in *ns* (text pipes) and wait for its first line to be *ready*:
    a sniffer must be listening before the sender starts. Fails with its stderr."""
    p = ns.popen(*args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kw)
    procs.append(p)
    line = p.stdout.readline().strip()
    if line != ready:
        p.kill()
        raise AssertionError(f"{args[0]} in {ns.name} did not start (said {line!r}): "
                             + p.communicate()[1][-2000:])
    return p


def kill_all(procs) -> None:
    """Kill and reap the processes a test started that are still running."""
    for p in procs:
        if p.poll() is None:
            p.kill()
            p.wait()


def wait_for(predicate, timeout: float = 5.0, interval: float = 0.05, what: str = "condition"):
    """Poll until predicate() is truthy; return its value or raise with `what`."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)
