#!/usr/bin/env python3
"""Netlink request encoding: our struct builders beside pyroute2's message classes.

A registration costs the kernel two objects, a /128 route and a proxy
neighbour entry. This prints, in one run, how many such pairs per second each
encoder turns into request bytes (header included, no socket): ha.net.rtnl's
route_msg / proxy_neigh_msg beside pyroute2's rtmsg / ndmsg .encode(), with
the ratio; and the resident memory that importing pyroute2 adds over asyncio
(which the daemon loads anyway), each import measured in a fresh interpreter.
The two encoders are first checked to produce the same bytes. Nothing here is
asserted.

    python3 bench/bench_netlink.py [--seconds 0.5]
"""

from __future__ import annotations

import argparse
import os
import struct
import subprocess
import sys
import time
from ipaddress import IPv6Address

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from ha.net.rtnl import (  # noqa: E402
    NLM_F_ACK, NLM_F_REQUEST, ROUTE_TABLE, RTM_NEWNEIGH, RTM_NEWROUTE, proxy_neigh_msg,
    route_msg,
)

HOA = IPv6Address("2001:db8::beef")
OIF = 3
_HDR = struct.Struct("=IHHII")


def ours(seq: int) -> tuple[bytes, bytes]:
    out = []
    for kind, flags, body in (route_msg(RTM_NEWROUTE, HOA, OIF),
                              proxy_neigh_msg(RTM_NEWNEIGH, HOA, OIF)):
        out.append(_HDR.pack(16 + len(body), kind, NLM_F_REQUEST | NLM_F_ACK | flags, seq, 0)
                   + body)
    return out[0], out[1]


def pyroute2_pair():
    from pyroute2.netlink.rtnl.ndmsg import ndmsg
    from pyroute2.netlink.rtnl.rtmsg import rtmsg
    r_kind, r_flags, r_body = route_msg(RTM_NEWROUTE, HOA, OIF)
    n_kind, n_flags, n_body = proxy_neigh_msg(RTM_NEWNEIGH, HOA, OIF)
    # the same field values as our builders, read back from their fixed parts
    family, dst_len, src_len, tos, table, proto, scope, rtype, rflags = \
        struct.unpack_from("=BBBBBBBBI", r_body)
    _, _, _, ifindex, state, nflags, ntype = struct.unpack_from("=BBHiHBB", n_body)

    def encode(seq: int) -> tuple[bytes, bytes]:
        r = rtmsg()
        r["family"], r["dst_len"], r["src_len"], r["tos"] = family, dst_len, src_len, tos
        r["table"], r["proto"], r["scope"], r["type"], r["flags"] = \
            table, proto, scope, rtype, rflags
        r["attrs"] = [("RTA_TABLE", ROUTE_TABLE), ("RTA_DST", str(HOA)), ("RTA_OIF", OIF)]
        r["header"]["type"] = r_kind
        r["header"]["flags"] = NLM_F_REQUEST | NLM_F_ACK | r_flags
        r["header"]["sequence_number"] = seq
        r.encode()
        n = ndmsg()
        n["family"], n["ifindex"], n["state"], n["flags"], n["ndm_type"] = \
            family, ifindex, state, nflags, ntype
        n["attrs"] = [("NDA_DST", str(HOA))]
        n["header"]["type"] = n_kind
        n["header"]["flags"] = NLM_F_REQUEST | NLM_F_ACK | n_flags
        n["header"]["sequence_number"] = seq
        n.encode()
        return bytes(r.data), bytes(n.data)
    return encode


def rate(fn, seconds: float) -> float:
    """Calls of fn(seq) per second, best of three runs of about seconds/3 each."""
    n = 1
    while True:     # size a batch to about 20 ms
        t0 = time.perf_counter()
        for i in range(n):
            fn(i)
        if time.perf_counter() - t0 > 0.02:
            break
        n *= 2
    best = 0.0
    for _ in range(3):
        count, t0 = 0, time.perf_counter()
        while time.perf_counter() - t0 < seconds / 3:
            for i in range(n):
                fn(i)
            count += n
        best = max(best, count / (time.perf_counter() - t0))
    return best


_RSS = ("import {imports}\n"
        "for line in open('/proc/self/status'):\n"
        "    if line.startswith('VmRSS:'):\n"
        "        print(int(line.split()[1]))\n")


def rss_kib(imports: str) -> int:
    """VmRSS of a fresh interpreter after `import <imports>`."""
    out = subprocess.run([sys.executable, "-c", _RSS.format(imports=imports)],
                         capture_output=True, text=True, check=True)
    return int(out.stdout)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seconds", type=float, default=0.6, help="time per figure")
    args = p.parse_args(argv)

    theirs = pyroute2_pair()
    a, b = ours(7), theirs(7)
    same = a == b
    print(f"python {sys.version.split()[0]}, {args.seconds} s per figure, best of 3")
    print("same request bytes from both encoders:", "yes" if same else
          f"NO\n  ours     {a[0].hex()} {a[1].hex()}\n  pyroute2 {b[0].hex()} {b[1].hex()}")
    r_ours = rate(ours, args.seconds)
    r_theirs = rate(theirs, args.seconds)
    print(f"{r_ours:12,.0f} pairs/s  ha.net.rtnl route_msg + proxy_neigh_msg (struct)")
    print(f"{r_theirs:12,.0f} pairs/s  pyroute2 rtmsg + ndmsg .encode()")
    print(f"{r_ours / r_theirs:12.1f} x      ours over pyroute2")

    base = rss_kib("asyncio")
    full = rss_kib("asyncio, pyroute2")
    classes = rss_kib("asyncio, pyroute2.netlink.rtnl.rtmsg, pyroute2.netlink.rtnl.ndmsg")
    ours_rss = rss_kib("asyncio, ha.net.rtnl")
    print(f"{base / 1024:12.1f} MB RSS  import asyncio (the reference)")
    print(f"{(ours_rss - base) / 1024:+12.1f} MB      + ha.net.rtnl")
    print(f"{(classes - base) / 1024:+12.1f} MB      + pyroute2's rtmsg and ndmsg modules only")
    print(f"{(full - base) / 1024:+12.1f} MB      + import pyroute2")
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
