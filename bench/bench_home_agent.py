"""Registrations per second and memory of the real denalid, in namespaces.

    python3 bench/bench_home_agent.py [--bindings 5000] [--big 100000] [--dad-too]

The seed's topology (ha/lab/topology.py); denalid runs in the home agent's namespace
with the project's config (DAD off, the switch for trusted links, unless
--dad-too adds a run with it on). A load generator on the foreign link
sends Binding Updates for distinct home addresses from raw sockets, keeping
a window of them in flight, and counts the Binding Acknowledgements it reads
from an AF_PACKET socket. Printed beside each figure, from the same run:
an empty Python loop of the same count in the generator, and the RSS of a
bare interpreter that imports what the daemon imports.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))

# Run inside the mobile node's namespace: send BUs, count BAs with status 0.
GENERATOR = r"""
import json, select, socket, struct, sys, time
from ipaddress import IPv6Address
from ha.wire.ipv6 import build_bu_packet
from ha.wire.mobility import BindingUpdate, encode_mh
a = json.loads(sys.argv[1])
coa, ha = IPv6Address(a["coa"]), IPv6Address(a["ha"])
base = int(IPv6Address(a["base"]))
n, seq, window = a["n"], a["seq"], a["window"]
pkts = []
for i in range(n):
    hoa = IPv6Address(base + i)
    mh = encode_mh(BindingUpdate(sequence=seq, lifetime=a["lifetime"] // 4, ack=True,
                                 home_registration=True), hoa, ha)
    pkts.append(build_bu_packet(coa, ha, hoa, mh))
tx = socket.socket(socket.AF_INET6, socket.SOCK_RAW, socket.IPPROTO_RAW)
rx = socket.socket(socket.AF_PACKET, socket.SOCK_DGRAM, socket.htons(0x86DD))
rx.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 << 20)
# BA = IPv6 (40) + RH2 (24) + MH: status at MH offset 6
empty_start = time.perf_counter()
for _ in range(n):
    pass
empty = time.perf_counter() - empty_start
sent = acked = refused = 0
start = time.perf_counter()
deadline = start + a["timeout"]
dst = (str(ha), 0)
while acked + refused < n and time.perf_counter() < deadline:
    while sent < n and sent - acked - refused < window:
        tx.sendto(pkts[sent], dst)
        sent += 1
    r, _, _ = select.select([rx], [], [], 0.5)
    while r:
        try:
            data, addr = rx.recvfrom(2048, socket.MSG_DONTWAIT)
        except BlockingIOError:
            break
        if addr[2] == 4 or len(data) < 72 or data[6] != 43 or data[64 + 2] != 6:
            continue
        if data[64 + 6] == 0:
            acked += 1
        else:
            refused += 1
elapsed = time.perf_counter() - start
print(json.dumps({"sent": sent, "acked": acked, "refused": refused,
                  "seconds": elapsed, "empty_loop_seconds": empty}))
"""

IMPORT_FLOOR = r"""
import asyncio, resource
import ha.daemon.main, ha.daemon.service, ha.daemon.settings, ha.config.model, ha.daemon.home_agent, ha.core.registration
import ha.datapath.base, ha.datapath.user, ha.net.sockets, ha.core.home_agent, ha.daemon.console
import ha.wire.ipv6, ha.wire.mobility, ha.wire.icmpv6, radvd.service, radvd.config
print(int(open('/proc/self/status').read().split('VmRSS:')[1].split()[0]))
"""


def rss_kb(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def cpu_seconds(pid: int) -> tuple[float, float]:
    """(user, system) CPU seconds of `pid` so far."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    tick = os.sysconf("SC_CLK_TCK")
    return int(fields[11]) / tick, int(fields[12]) / tick


def daemon_pid(lab) -> int:
    # `ip netns exec` execs the interpreter, so the Popen pid is the daemon's
    return lab.daemon.pid


def load(lab, base: str, n: int, seq: int, window: int, lifetime: int = 3600,
         timeout: float = 120) -> dict:
    from ha.lab.topology import HA_HOME, MN_COA, run
    args = {"coa": str(MN_COA), "ha": str(HA_HOME), "base": base, "n": n, "seq": seq,
            "window": window, "lifetime": lifetime, "timeout": timeout}
    r = run([sys.executable, "-c", GENERATOR, json.dumps(args)], lab.mn,
            timeout=timeout + 60, cwd=os.path.dirname(HERE))
    return json.loads(r.stdout)


def run_case(dad: bool, n: int, big: int, window: int, proxy: str = "kernel") -> dict:
    from ha.lab.topology import SeedLab
    tmp = tempfile.mkdtemp(prefix="denali-bench-")
    conf = os.path.join(tmp, "denali.conf")
    from ha.config.model import DEFAULT_TEXT
    # one load generator, one care-of address: the rate limits of new bindings
    # (20/s per source /64 by default) off, and room for every binding
    text = DEFAULT_TEXT.replace(
        "[ha]\n", f"[ha]\n    dad = {'on' if dad else 'off'}\n    proxy_nd = {proxy}\n"
        f"    capacity = {n + big + 1000}\n    new_bindings_per_prefix_rate = 0\n"
        f"    new_bindings_rate = 0\n    packets_per_source_rate = 0\n", 1)
    # its thousands of home addresses are nobody's: open the built-in closed default
    text = text.replace("acl_default = deny", "acl_default = allow", 1)
    with open(conf, "w") as f:
        f.write(text)
    out = {"dad": dad, "proxy": proxy}
    with SeedLab() as lab:
        lab.start_daemon(conf, "-n", debug=0, log_path=os.path.join(tmp, "denalid.log"))
        lab.move_mn("remote")
        pid = daemon_pid(lab)
        out["rss_idle_kb"] = rss_kb(pid)
        for kind, seq in (("new", 1), ("refresh", 2)):
            u0, s0 = cpu_seconds(pid)
            out[kind] = load(lab, "2001:db8::1:0", n, seq, window)
            u1, s1 = cpu_seconds(pid)
            out[kind]["daemon_user"], out[kind]["daemon_sys"] = u1 - u0, s1 - s0
        out["bindings_after"] = json.loads(lab.console("stats json"))["bindings"]
        out["rss_after_n_kb"] = rss_kb(pid)
        if big:
            more = load(lab, "2001:db8::10:0", big - n, 1, window, timeout=600)
            out["big"] = more
            out["bindings_big"] = json.loads(lab.console("stats json"))["bindings"]
            out["rss_big_kb"] = rss_kb(pid)
    return out


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--bindings", type=int, default=5000)
    p.add_argument("--big", type=int, default=0, help="also grow to this many bindings")
    p.add_argument("--window", type=int, default=400, help="BUs in flight")
    p.add_argument("--dad-too", action="store_true")
    p.add_argument("--proxy", choices=("kernel", "daemon"), default="kernel",
                   help="who answers NS for away home addresses (ha.datapath.proxy_nd)")
    a = p.parse_args()
    floor = int(subprocess.run([sys.executable, "-c", IMPORT_FLOOR], capture_output=True,
                               text=True, cwd=os.path.dirname(HERE)).stdout)
    bare = int(subprocess.run([sys.executable, "-c",
                               "print(open('/proc/self/status').read().split('VmRSS:')[1]"
                               ".split()[0])"], capture_output=True, text=True).stdout)
    cases = [run_case(False, a.bindings, a.big, a.window, a.proxy)]
    if a.dad_too:
        cases.append(run_case(True, a.bindings, 0, a.window, a.proxy))
    print(f"bare interpreter RSS {bare / 1024:.1f} MB; the daemon's imports alone "
          f"{floor / 1024:.1f} MB (same run)")
    for c in cases:
        tag = ("DAD on " if c["dad"] else "DAD off") + f", proxy {c['proxy']}:"
        for kind in ("new", "refresh"):
            r = c[kind]
            rate = r["acked"] / r["seconds"] if r["seconds"] else 0
            empty_rate = a.bindings / r["empty_loop_seconds"] if r["empty_loop_seconds"] else 0
            print(f"{tag} {kind:<8} {r['acked']:>6}/{r['sent']} acked in {r['seconds']:.2f} s"
                  f" = {rate:,.0f}/s  (empty loop {empty_rate:,.0f}/s, ratio "
                  f"{empty_rate / rate if rate else float('inf'):,.0f}x)")
            cpu = (r["daemon_user"] + r["daemon_sys"]) / max(1, r["acked"])
            print(f"        daemon CPU {cpu * 1e6:,.0f} us per registration "
                  f"({r['daemon_user']:.2f} s user, {r['daemon_sys']:.2f} s system): "
                  f"{1 / cpu if cpu else 0:,.0f}/s on one free core")
        print(f"{tag} bindings held {c['bindings_after']}; daemon RSS idle "
              f"{c['rss_idle_kb'] / 1024:.1f} MB, at {c['bindings_after']} bindings "
              f"{c['rss_after_n_kb'] / 1024:.1f} MB")
        if "big" in c:
            r = c["big"]
            print(f"{tag} grown to {c['bindings_big']} bindings ({r['acked']} more at "
                  f"{r['acked'] / r['seconds']:,.0f}/s); RSS {c['rss_big_kb'] / 1024:.1f} MB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
