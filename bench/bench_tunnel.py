"""Datapath figures, each beside a reference measured in the same run (root, namespaces).

    CN 2001:db8::c --home-- HA --foreign-- MN  (CoA 2001:db8:1::100, HoA 2001:db8::beef)

1. Packets: CN <-> HoA through the user-space tunnel vs CN <-> CoA plainly
   forwarded by the same HA. Flood ping (RTT, round trips/s) and a UDP blaster
   each way (packets/s delivered). The MN's end of the tunnel is the same
   Python TUN helper the tests use, so the tunnel figure pays user space twice.
2. Kernel state: N bindings (route + proxy entry) added per second by the
   datapath (batched netlink, every add_binding in flight at once), by the
   same socket awaiting each binding in turn, and by pyroute2's sync IPRoute
   one request at a time.

    python3 bench/bench_tunnel.py [--bindings 5000] [--seconds 2]
"""

from __future__ import annotations

import argparse
import asyncio
import ctypes
import os
import re
import subprocess
import sys
import threading
import time
from ipaddress import IPv6Address

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, ".."))
sys.path.insert(0, os.path.join(HERE, "..", "tests"))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "netns"))

from nslib import Topology, have_netns  # noqa: E402

HA_HOME, HA_FOREIGN = "2001:db8::", "2001:db8:1::1"
CN, HOA, COA = "2001:db8::c", "2001:db8::beef", "2001:db8:1::100"

BLAST = r"""
import socket, sys, time
dst, seconds, src = sys.argv[1], float(sys.argv[2]), sys.argv[3]
s = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
s.bind((src, 0))
payload = b"x" * 64
n, end = 0, time.monotonic() + seconds
while time.monotonic() < end:
    for _ in range(100):
        try:
            s.sendto(payload, (dst, 9999)); n += 1
        except OSError:
            pass
print(n)
"""

COUNT = r"""
import socket, sys, time
s = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 22)
s.bind((sys.argv[1], 9999))
print("ready", flush=True)
s.settimeout(5)
n, first, last = 0, None, None
try:
    while True:
        s.recv(2048)
        last = time.monotonic(); first = first or last; n += 1
        s.settimeout(0.5)
except socket.timeout:
    pass
print(n, (last - first) if n > 1 else 0)
"""

_libc = ctypes.CDLL(None, use_errno=True)


class NsLoop:
    """An asyncio loop on a thread inside one network namespace."""

    def __init__(self, ns_name: str):
        self.loop = asyncio.new_event_loop()
        ready = threading.Event()

        def main():
            fd = os.open(f"/run/netns/{ns_name}", os.O_RDONLY)
            assert _libc.setns(fd, 0x40000000) == 0
            os.close(fd)
            asyncio.set_event_loop(self.loop)
            ready.set()
            self.loop.run_forever()

        self.thread = threading.Thread(target=main, daemon=True)
        self.thread.start()
        ready.wait()

    def run(self, coro, timeout: float = 600):
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def call(self, fn, *args):
        async def wrap():
            return fn(*args)
        return self.run(wrap())

    def stop(self):
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)


def in_ns_thread(ns_name: str, fn):
    """fn() on a fresh thread inside the namespace (pyroute2's sync API runs its own loop)."""
    out = {}

    def main():
        fd = os.open(f"/run/netns/{ns_name}", os.O_RDONLY)
        assert _libc.setns(fd, 0x40000000) == 0
        os.close(fd)
        try:
            out["r"] = fn()
        except BaseException as e:
            out["e"] = e

    t = threading.Thread(target=main)
    t.start()
    t.join()
    if "e" in out:
        raise out["e"]
    return out["r"]


def flood_ping(ns, dst: str, count: int = 3000):
    out = ns.run("ping", "-6", "-f", "-q", "-c", str(count), "-w", "20", dst, check=False).stdout
    m = re.search(r"(\d+) received.*time (\d+)ms", out)
    rtt = re.search(r"= [\d.]+/([\d.]+)/", out)
    received, ms = int(m.group(1)), int(m.group(2))
    return received / (ms / 1000) if ms else 0.0, float(rtt.group(1)) if rtt else float("nan")


def blast(src_ns, src: str, dst_ns, dst: str, seconds: float):
    rx = dst_ns.popen(sys.executable, "-c", COUNT, dst, stdout=subprocess.PIPE, text=True)
    assert rx.stdout.readline().strip() == "ready"
    sent = int(src_ns.run(sys.executable, "-c", BLAST, dst, str(seconds), src, timeout=60).stdout)
    n, span = rx.communicate(timeout=30)[0].split()
    n, span = int(n), float(span)
    return sent / seconds, (n / span if span else 0.0), n / max(sent, 1)


def setup():
    topo = Topology()
    ha, cn, mn = topo.host("ha"), topo.host("cn"), topo.host("mn")
    topo.link(ha, "home0", cn, "eth0")
    topo.link(ha, "fore0", mn, "eth0")
    ha.run("ip", "-6", "addr", "add", f"{HA_HOME}/64", "dev", "home0", "nodad")
    ha.run("ip", "-6", "addr", "add", f"{HA_FOREIGN}/64", "dev", "fore0", "nodad")
    cn.run("ip", "-6", "addr", "add", f"{CN}/64", "dev", "eth0", "nodad")
    cn.run("ip", "-6", "route", "add", "2001:db8:1::/64", "via", HA_HOME)
    mn.run("ip", "-6", "addr", "add", f"{COA}/64", "dev", "eth0", "nodad")
    mn.run("ip", "-6", "route", "add", f"{HA_HOME}/128", "via", HA_FOREIGN)
    mn.run("ip", "-6", "route", "add", "2001:db8::c/128", "via", HA_FOREIGN, "src", COA)
    return topo, ha, cn, mn


def bench_packets(ha, cn, mn, nsloop, seconds: float):
    from test_datapath import MN_HELPER
    from ha.datapath.factory import open_datapath
    dp = nsloop.run(open_datapath("home0", IPv6Address(HA_HOME), backend="user"))
    helper = mn.popen(sys.executable, "-c", MN_HELPER, COA, COA, HA_HOME, HOA,
                      stdout=subprocess.PIPE, text=True)
    try:
        assert helper.stdout.readline().strip() == "ready"
        # the MN: traffic from the HoA into its tunnel, from the CoA plainly to the CN
        mn.run("ip", "-6", "rule", "add", "from", HOA, "lookup", "100")
        mn.run("ip", "-6", "route", "add", "default", "dev", "mnt0", "table", "100")
        nsloop.run(dp.add_binding(IPv6Address(HOA), IPv6Address(COA)))
        cn.run("ping", "-6", "-c", "2", "-i", "0.2", HOA, check=False)  # resolve neighbours
        cn.run("ping", "-6", "-c", "2", "-i", "0.2", COA, check=False)
        print("\n== packets (64-byte payloads) ==")
        print(f"{'path':<28}{'flood ping rtt/s':>18}{'avg rtt ms':>12}")
        for name, dst in (("plain forwarded CN->CoA", COA), ("tunnel CN->HoA", HOA)):
            pps, rtt = flood_ping(cn, dst)
            print(f"{name:<28}{pps:>18.0f}{rtt:>12.3f}")
        print(f"{'UDP blaster':<28}{'sent/s':>12}{'delivered/s':>14}{'delivered':>11}")
        rows = (("plain CN->CoA", cn, CN, mn, COA), ("tunnel CN->HoA", cn, CN, mn, HOA),
                ("plain CoA->CN", mn, COA, cn, CN), ("reverse tunnel HoA->CN", mn, HOA, cn, CN))
        for name, src_ns, src, dst_ns, dst in rows:
            sent, got, frac = blast(src_ns, src, dst_ns, dst, seconds)
            print(f"{name:<28}{sent:>12.0f}{got:>14.0f}{frac:>10.0%}")
        print("datapath counters:", nsloop.call(dict, dp.counters))
    finally:
        helper.kill()
        helper.wait()
        nsloop.run(dp.close())


def bench_bindings(ha, nsloop, n: int):
    from ha.datapath.factory import open_datapath
    base = int(IPv6Address("2001:db8::2:0"))
    hoas = [IPv6Address(base + i) for i in range(n)]
    coa = IPv6Address(COA)
    print(f"\n== kernel state for {n} bindings (route + proxy entry each) ==")

    async def batched(dp):
        t = time.perf_counter()
        await asyncio.gather(*(dp.add_binding(h, coa) for h in hoas))
        add = time.perf_counter() - t
        sends = dp.rtnl.sends
        t = time.perf_counter()
        await asyncio.gather(*(dp.remove_binding(h, coa) for h in hoas))
        return add, time.perf_counter() - t, sends

    async def one_by_one(dp):
        t = time.perf_counter()
        for h in hoas:
            await dp.add_binding(h, coa)
        add = time.perf_counter() - t
        t = time.perf_counter()
        for h in hoas:
            await dp.remove_binding(h, coa)
        return add, time.perf_counter() - t, 0

    for name, how in (("datapath, all in flight", batched),
                      ("datapath, awaited in turn", one_by_one)):
        # NAs every 60 s: the three announcements per binding are a cost of their own
        dp = nsloop.run(open_datapath("home0", IPv6Address(HA_HOME), backend="user",
                                      na_interval=60))
        try:
            s0 = dp.rtnl.sends
            add, rem, _ = nsloop.run(how(dp))
            sends = dp.rtnl.sends - s0
            print(f"{name:<30} add {n / add:>8.0f}/s   remove {n / rem:>8.0f}/s"
                  f"   netlink writes {sends}")
        finally:
            nsloop.run(dp.close())

    def pyroute2_sync():
        from pyroute2 import IPRoute
        import socket as so
        home = so.if_nametoindex("home0")
        ipr = IPRoute()
        try:
            idx = home  # no dummy module here; the out interface costs the same
            t = time.perf_counter()
            for h in hoas:
                ipr.route("add", dst=f"{h}/128", oif=idx, table=6275)
                ipr.neigh("add", dst=str(h), ifindex=home, flags=0x08, state=0x80)
            add = time.perf_counter() - t
            t = time.perf_counter()
            for h in hoas:
                ipr.route("del", dst=f"{h}/128", oif=idx, table=6275)
                ipr.neigh("del", dst=str(h), ifindex=home, flags=0x08)
            rem = time.perf_counter() - t
            return add, rem
        finally:
            ipr.close()

    add, rem = in_ns_thread(ha.name, pyroute2_sync)
    print(f"{'pyroute2 sync IPRoute':<30} add {n / add:>8.0f}/s   remove {n / rem:>8.0f}/s"
          f"   netlink writes {4 * n}")


def bench_memory():
    print("\n== RSS after import (fresh interpreter, this machine's python3) ==")
    # VmRSS, not ru_maxrss: the latter keeps the forking parent's size across exec
    code = ("import {m}, re; print(int(re.search(r'VmRSS:\\s+(\\d+)', "
            "open('/proc/self/status').read()).group(1)) // 1024)")
    root = os.path.join(HERE, "..")
    for m in ("asyncio", "ha.datapath.user", "ha.datapath.kernel", "pyroute2"):
        mb = subprocess.run([sys.executable, "-c", code.format(m=m)], cwd=root,
                            capture_output=True, text=True).stdout.strip()
        print(f"{m:<30}{mb:>6} MB")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--bindings", type=int, default=5000)
    ap.add_argument("--seconds", type=float, default=2.0)
    args = ap.parse_args()
    reason = have_netns()
    if reason:
        sys.exit(f"bench_tunnel: {reason}")
    topo, ha, cn, mn = setup()
    nsloop = NsLoop(ha.name)
    try:
        bench_packets(ha, cn, mn, nsloop, args.seconds)
        bench_bindings(ha, nsloop, args.bindings)
        bench_memory()
    finally:
        nsloop.stop()
        topo.teardown()


if __name__ == "__main__":
    main()
